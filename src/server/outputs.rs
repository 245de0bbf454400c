//! What a publisher's media feeds besides live players: the file outputs (HLS now; DASH and
//! recording later), one set per published stream, chosen from the application's settings.
//! Each output turns media into [`FileOp`]s; [`Storage`] performs them.

use std::collections::HashMap;

use crate::conf::Settings;
use crate::hls::segmenter::HlsStream;
use crate::hls::{FileOp, Now};
use crate::io::{NoStorage, Storage};
use crate::live::StreamKey;

use super::{LogLevel, LogLine};

struct HlsOutput {
    stream: HlsStream,
    /// The last batch failed (disk full, permissions): logged once until writes succeed again.
    failing: bool,
    /// Still fed by a publisher (false: finished, kept until its cleanup is done).
    live: bool,
}

/// The file outputs of every stream this worker publishes or recently published.
pub struct Outputs {
    storage: Box<dyn Storage>,
    hls: HashMap<StreamKey, HlsOutput>,
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
            hls: HashMap::new(),
            ops: Vec::new(),
            wall_offset: 0,
        }
    }

    pub fn io_stats(&self) -> crate::io::IoStats {
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

    /// A publisher started `key`: open (or reopen, for a republish) its file outputs.
    pub fn publish(
        &mut self,
        key: &StreamKey,
        settings: &Settings,
        mono_ms: u64,
        random: &mut dyn FnMut(&mut [u8]),
    ) {
        if !settings.hls.enabled || settings.hls.path.is_empty() {
            return;
        }
        let now = self.now(mono_ms);
        if let Some(out) = self.hls.get_mut(key) {
            out.stream.restart(now, random);
            out.live = true;
            return;
        }
        let path = HlsStream::playlist_path(&settings.hls, &key.name);
        let previous = self.storage.read_small(&path);
        let stream = HlsStream::new(
            &settings.hls,
            &key.app,
            &key.name,
            previous.as_deref(),
            random,
        );
        self.hls.insert(
            key.clone(),
            HlsOutput {
                stream,
                failing: false,
                live: true,
            },
        );
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
        let Some(out) = self.hls.get_mut(key) else {
            return;
        };
        out.stream
            .on_media(video, timestamp, tag, now, &mut self.ops);
        let committed = self
            .ops
            .iter()
            .any(|op| matches!(op, FileOp::Commit { .. }));
        flush(&mut *self.storage, &mut self.ops, key, out, logs);
        if committed {
            self.share_variant_info(key);
        }
    }

    /// Variants of one master playlist are separate streams: each tells the others what it
    /// measured, so whichever writes the master fills in every entry, not only its own.
    fn share_variant_info(&mut self, key: &StreamKey) {
        let Some(out) = self.hls.get(key) else {
            return;
        };
        let Some((base, suffix)) = out.stream.variant_of() else {
            return;
        };
        let (base, suffix) = (base.to_string(), suffix.to_string());
        let info = out.stream.variant_info();
        for (other_key, other) in self.hls.iter_mut() {
            if other_key.app != key.app || other_key.server != key.server || other_key == key {
                continue;
            }
            if other.stream.variant_of().is_some_and(|(b, _)| b == base) {
                other.stream.set_sibling_info(&suffix, info.clone());
            }
        }
    }

    pub fn metadata(&mut self, key: &StreamKey, payload: &[u8]) {
        if let Some(out) = self.hls.get_mut(key) {
            out.stream.on_metadata(payload);
        }
    }

    /// The publisher left: end the outputs (the playlist gets `#EXT-X-ENDLIST`); they stay
    /// until their cleanup is done.
    pub fn unpublish(&mut self, key: &StreamKey, mono_ms: u64, logs: &mut Vec<LogLine>) {
        let now = self.now(mono_ms);
        let Some(out) = self.hls.get_mut(key) else {
            return;
        };
        out.stream.finish(now, &mut self.ops);
        out.live = false;
        flush(&mut *self.storage, &mut self.ops, key, out, logs);
    }

    /// Deferred work (deletions after their grace period). Returns the delay until the next
    /// call, or None when nothing is pending.
    pub fn housekeeping(&mut self, mono_ms: u64, logs: &mut Vec<LogLine>) -> Option<u64> {
        let now = self.now(mono_ms);
        let mut next: Option<u64> = None;
        let mut done = Vec::new();
        for (key, out) in self.hls.iter_mut() {
            let due = out.stream.on_tick(now, &mut self.ops);
            flush(&mut *self.storage, &mut self.ops, key, out, logs);
            match due {
                Some(at) => {
                    let delay = at.saturating_sub(mono_ms).max(1);
                    next = Some(next.map_or(delay, |n| n.min(delay)));
                }
                None if !out.live && out.stream.is_done() => done.push(key.clone()),
                None => {}
            }
        }
        for key in done {
            self.hls.remove(&key);
        }
        next
    }
}

/// Performs the ops an output produced; a failure is logged once (not per frame) until writes
/// succeed again, and never stops live playback.
fn flush(
    storage: &mut dyn Storage,
    ops: &mut Vec<FileOp>,
    key: &StreamKey,
    out: &mut HlsOutput,
    logs: &mut Vec<LogLine>,
) {
    if ops.is_empty() {
        return;
    }
    match storage.apply(ops) {
        Ok(()) => {
            // Recovery means a whole segment made it to disk, not just a file opened.
            let committed = ops.iter().any(|op| matches!(op, FileOp::Commit { .. }));
            if out.failing && committed {
                out.failing = false;
                logs.push(LogLine {
                    level: LogLevel::Warn,
                    client: None,
                    text: format!("hls: \"{}/{}\": writing again", key.app, key.name),
                });
            }
        }
        Err(e) => {
            out.stream.on_write_failed(&e.path);
            if !out.failing {
                out.failing = true;
                logs.push(LogLine {
                    level: LogLevel::Error,
                    client: None,
                    text: format!(
                        "hls: \"{}/{}\": {e}; live playback goes on",
                        key.app, key.name
                    ),
                });
            }
        }
    }
    ops.clear();
}
