//! What a publisher's media feeds besides live players: the file outputs of its application
//! (HLS; DASH next; recording later), built once per published stream from the application's
//! settings and fed in order. Each output turns media into [`FileOp`]s; [`Storage`] performs
//! them.

use std::collections::HashMap;

use crate::conf::Settings;
use crate::dash::segmenter::DashStream;
use crate::files::{FileOp, FileOutput, Now};
use crate::hls::segmenter::HlsStream;
use crate::io::{IoStats, NoStorage, Storage};
use crate::live::StreamKey;

use super::{LogLevel, LogLine};

/// One kind of file output. An enum rather than a trait object so that what is specific to
/// one kind (HLS variants sharing their measurements) stays reachable.
enum Output {
    Hls(Box<HlsStream>),
    Dash(Box<DashStream>),
}

impl Output {
    fn file(&mut self) -> &mut dyn FileOutput {
        match self {
            Output::Hls(h) => h.as_mut(),
            Output::Dash(d) => d.as_mut(),
        }
    }

    fn label(&self) -> &'static str {
        match self {
            Output::Hls(_) => "hls",
            Output::Dash(_) => "dash",
        }
    }
}

struct Slot {
    output: Output,
    /// The last batch failed (disk full, permissions): logged once until a segment is whole
    /// on disk again.
    failing: bool,
}

/// The outputs of one stream: still fed by a publisher, or finished and kept until their
/// cleanup is done.
struct StreamOutputs {
    slots: Vec<Slot>,
    live: bool,
}

/// The file outputs of every stream this worker publishes or recently published.
pub struct Outputs {
    storage: Box<dyn Storage>,
    streams: HashMap<StreamKey, StreamOutputs>,
    ops: Vec<FileOp>,
    /// Unix ms minus monotonic ms, from the last wall-clock reading.
    wall_offset: i64,
}

impl Default for Outputs {
    fn default() -> Self {
        Outputs::new(Box::new(NoStorage))
    }
}

impl Outputs {
    pub fn new(storage: Box<dyn Storage>) -> Self {
        Outputs {
            storage,
            streams: HashMap::new(),
            ops: Vec::new(),
            wall_offset: 0,
        }
    }

    pub fn io_stats(&self) -> IoStats {
        self.storage.stats()
    }

    pub fn sync_wall_clock(&mut self, mono_ms: u64, unix_ms: u64) {
        self.wall_offset = unix_ms as i64 - mono_ms as i64;
    }

    fn now(&self, mono_ms: u64) -> Now {
        Now {
            mono_ms,
            unix_ms: (mono_ms as i64 + self.wall_offset).max(0) as u64,
        }
    }

    /// A publisher started `key`: reopen its outputs (a republish) or build them from the
    /// application's settings.
    pub fn publish(
        &mut self,
        key: &StreamKey,
        settings: &Settings,
        mono_ms: u64,
        random: &mut dyn FnMut(&mut [u8]),
    ) {
        let now = self.now(mono_ms);
        if let Some(stream) = self.streams.get_mut(key) {
            for slot in &mut stream.slots {
                slot.output.file().restart(now, random);
            }
            stream.live = true;
            return;
        }
        let mut slots = Vec::new();
        if settings.hls.enabled && !settings.hls.path.is_empty() {
            let path = HlsStream::playlist_path(&settings.hls, &key.name);
            let previous = self.storage.read_small(&path);
            let hls = HlsStream::new(
                &settings.hls,
                &key.app,
                &key.name,
                previous.as_deref(),
                random,
            );
            slots.push(Slot {
                output: Output::Hls(Box::new(hls)),
                failing: false,
            });
        }
        if settings.dash.enabled && !settings.dash.path.is_empty() {
            let path = DashStream::manifest_path(&settings.dash, &key.name);
            let previous = self.storage.read_small(&path);
            let dash = DashStream::new(&settings.dash, &key.app, &key.name, previous.as_deref());
            slots.push(Slot {
                output: Output::Dash(Box::new(dash)),
                failing: false,
            });
        }
        if !slots.is_empty() {
            self.streams
                .insert(key.clone(), StreamOutputs { slots, live: true });
        }
    }

    pub fn media(
        &mut self,
        key: &StreamKey,
        video: bool,
        timestamp: u32,
        tag: &[u8],
        mono_ms: u64,
        logs: &mut Vec<LogLine>,
    ) {
        let now = self.now(mono_ms);
        let Some(stream) = self.streams.get_mut(key) else {
            return;
        };
        let mut share = false;
        for slot in &mut stream.slots {
            slot.output
                .file()
                .on_media(video, timestamp, tag, now, &mut self.ops);
            let committed = self
                .ops
                .iter()
                .any(|op| matches!(op, FileOp::Commit { .. }));
            share |= committed && matches!(slot.output, Output::Hls(_));
            flush(&mut *self.storage, &mut self.ops, key, slot, logs);
        }
        if share {
            self.share_variant_info(key);
        }
    }

    pub fn metadata(&mut self, key: &StreamKey, payload: &[u8]) {
        if let Some(stream) = self.streams.get_mut(key) {
            for slot in &mut stream.slots {
                slot.output.file().on_metadata(payload);
            }
        }
    }

    /// The publisher left: end the outputs (final playlists and manifests); they stay until
    /// their cleanup is done.
    pub fn unpublish(&mut self, key: &StreamKey, mono_ms: u64, logs: &mut Vec<LogLine>) {
        let now = self.now(mono_ms);
        let Some(stream) = self.streams.get_mut(key) else {
            return;
        };
        stream.live = false;
        for slot in &mut stream.slots {
            slot.output.file().finish(now, &mut self.ops);
            flush(&mut *self.storage, &mut self.ops, key, slot, logs);
        }
    }

    /// Deferred work (deletions after their grace period). Returns the delay until the next
    /// call, or None when nothing is pending.
    pub fn housekeeping(&mut self, mono_ms: u64, logs: &mut Vec<LogLine>) -> Option<u64> {
        let now = self.now(mono_ms);
        let mut next: Option<u64> = None;
        let mut done = Vec::new();
        for (key, stream) in self.streams.iter_mut() {
            let mut all_done = !stream.live;
            for slot in &mut stream.slots {
                let due = slot.output.file().on_tick(now, &mut self.ops);
                flush(&mut *self.storage, &mut self.ops, key, slot, logs);
                if let Some(at) = due {
                    let delay = at.saturating_sub(mono_ms).max(1);
                    next = Some(next.map_or(delay, |n| n.min(delay)));
                }
                all_done &= slot.output.file().is_done();
            }
            if all_done {
                done.push(key.clone());
            }
        }
        for key in done {
            self.streams.remove(&key);
        }
        next
    }

    /// Variants of one HLS master playlist are separate streams: each tells the others what
    /// it measured, so whichever writes the master fills in every entry, not only its own.
    fn share_variant_info(&mut self, key: &StreamKey) {
        let Some(own) = self.streams.get(key).and_then(|s| hls_of(&s.slots)) else {
            return;
        };
        let Some((base, suffix)) = own.variant_of() else {
            return;
        };
        let (base, suffix) = (base.to_string(), suffix.to_string());
        let info = own.variant_info();
        for (other_key, other) in self.streams.iter_mut() {
            if other_key.app != key.app || other_key.server != key.server || other_key == key {
                continue;
            }
            for slot in &mut other.slots {
                if let Output::Hls(h) = &mut slot.output {
                    if h.variant_of().is_some_and(|(b, _)| b == base) {
                        h.set_sibling_info(&suffix, info.clone());
                    }
                }
            }
        }
    }
}

fn hls_of(slots: &[Slot]) -> Option<&HlsStream> {
    slots.iter().find_map(|s| match &s.output {
        Output::Hls(h) => Some(h.as_ref()),
        Output::Dash(_) => None,
    })
}

/// Performs the ops an output produced. A failure is logged once (not per frame) until a
/// segment is whole on disk again, the output forgets what it lost, and live playback is never
/// affected.
fn flush(
    storage: &mut dyn Storage,
    ops: &mut Vec<FileOp>,
    key: &StreamKey,
    slot: &mut Slot,
    logs: &mut Vec<LogLine>,
) {
    if ops.is_empty() {
        return;
    }
    let label = slot.output.label();
    match storage.apply(ops) {
        Ok(()) => {
            let committed = ops.iter().any(|op| matches!(op, FileOp::Commit { .. }));
            if slot.failing && committed {
                slot.failing = false;
                logs.push(LogLine {
                    level: LogLevel::Warn,
                    client: None,
                    text: format!("{label}: \"{}/{}\": writing again", key.app, key.name),
                });
            }
        }
        Err(e) => {
            slot.output.file().on_write_failed(&e.path);
            if !slot.failing {
                slot.failing = true;
                logs.push(LogLine {
                    level: LogLevel::Error,
                    client: None,
                    text: format!(
                        "{label}: \"{}/{}\": {e}; live playback goes on",
                        key.app, key.name
                    ),
                });
            }
        }
    }
    ops.clear();
}
