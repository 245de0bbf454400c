//! What a publisher's media feeds besides live players: the file outputs of its application
//! (HLS, DASH; recording later), built once per published stream from the application's
//! settings and fed in order. Each output turns media into [`FileOp`]s; [`Storage`] performs
//! them, as jobs off the event loop in the module.
//!
//! Each output has its own queue and at most one job in flight, so its operations happen in
//! the order it asked for them (a playlist is written only after the segment it lists is
//! whole), and it hears back in that order ([`FileOutput::on_written`],
//! [`FileOutput::on_write_failed`]). A stalled disk cannot grow memory without bound: past
//! [`MAX_QUEUED_BYTES`] of one output's data waiting, what it writes next is dropped, whole
//! segments at a time and unlisted, until the queue has drained.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use bytes::Bytes;

use crate::conf::{DashSettings, HlsContainer, HlsSettings, HlsType, Settings};
use crate::dash::segmenter::{audio_track, video_track, DashStream, Role};
use crate::files::{FileOp, FileOutput, Now};
use crate::hls::segmenter::HlsStream;
use crate::io::{IoDone, IoJob, IoStats, NoStorage, OpenFiles, Storage};
use crate::live::StreamKey;
use crate::media::flv::{self, AudioPacket, FourCc};
use crate::record::{RecordEvent, Recorder, RecordingNow};
use crate::segment::names::is_valid_name;

use super::record::RecordOwner;
use super::{LogLevel, LogLine};

/// Most bytes of one output's file data waiting for the disk (queued or being written). A
/// batch that arrives when the queue is empty is always taken, however large (a DASH segment
/// is handed over whole).
pub const MAX_QUEUED_BYTES: usize = 64 * 1024 * 1024;
/// Appends wait to be handed to the thread pool until the next operation of another kind (a
/// segment's commit at its cut, a manifest), the worker's next flush (every
/// [`APPEND_FLUSH_MS`], when all streams' waiting appends go together), or until this many
/// bytes wait. Every job costs thread wake-ups, context switches and a notification back on
/// the event loop. Measured with 32 publishers (HLS + DASH, `gop_cache off`, worker CPU s per
/// publisher-minute / peak RSS): 16 KiB 0.184 / 16.9 MB, 64 KiB 0.14 / 19.5 MB, 256 KiB
/// 0.15 / 24.4 MB. A segment is not listed before its commit, so waiting delays nothing a
/// viewer sees.
pub const APPEND_HOLD_BYTES: usize = 64 * 1024;
/// The same for the CMAF outputs (DASH, fMP4 HLS, renditions) of a stream with `gop_cache`
/// on: their appends are the video spool, slices of the publisher's payloads that the GOP
/// cache holds anyway, so waiting costs no memory. They wait for the segment's cut or up to
/// this many bytes; at the cut, what waited goes from memory straight into the segment
/// instead of through the spool file and back (see `io::perform`). The [`APPEND_FLUSH_MS`]
/// flush hands over only the appends of earlier GOPs (a segment longer than a GOP), whose
/// payloads the GOP cache no longer holds: a spool is no playable file, so writing the rest
/// early would save nothing from a crash.
/// Measured with one 2.5 Mbit/s publisher (HLS + DASH, worker CPU s per publisher-minute):
/// 0.255 at 64 KiB, 0.21 at 1 MiB with the flush.
pub const SHARED_APPEND_HOLD_BYTES: usize = 1024 * 1024;
/// How often the worker hands over every stream's waiting appends (see [`APPEND_HOLD_BYTES`]),
/// so a slow stream's data reaches the disk within this time (a recording, a crash). Memory
/// is bounded by the bytes held, not by this. Every flush is a thread-pool job per output:
/// at 100 ms, one 2.5 Mbit/s publisher with HLS + DASH cost 0.33-0.36 worker CPU s per
/// minute, at 1 s 0.26 (the C module: 0.14-0.27 in the same runs).
pub const APPEND_FLUSH_MS: u64 = 1000;

/// One kind of file output. An enum rather than a trait object so that what is specific to
/// one kind (HLS variants sharing their measurements) stays reachable.
enum Output {
    Hls(Box<HlsStream>),
    /// HLS with fMP4 (CMAF) segments: the CMAF segmenter writing HLS playlists.
    HlsFmp4(Box<DashStream>),
    /// Another video track of a multitrack publisher, listed by the stream's CMAF HLS.
    /// (The slot id of the CMAF output that lists it, the rendition.)
    Rendition(u64, Box<DashStream>),
    Dash(Box<DashStream>),
    Record(Box<Recorder>),
}

impl Output {
    fn file(&mut self) -> &mut dyn FileOutput {
        match self {
            Output::Hls(h) => h.as_mut(),
            Output::HlsFmp4(d) | Output::Dash(d) | Output::Rendition(_, d) => d.as_mut(),
            Output::Record(r) => r.as_mut(),
        }
    }

    fn label(&self) -> &'static str {
        match self {
            Output::Hls(_) | Output::HlsFmp4(_) => "hls",
            Output::Rendition(..) => "rendition",
            Output::Dash(_) => "dash",
            Output::Record(_) => "record",
        }
    }

    /// How its appends wait to be handed over, given whether the GOP cache holds the
    /// stream's recent payloads.
    fn append_hold(&self, payloads_cached: bool) -> AppendHold {
        match self {
            Output::HlsFmp4(_) | Output::Rendition(..) | Output::Dash(_) if payloads_cached => {
                AppendHold::SharedPayloads
            }
            // MPEG-TS packets and FLV tags are copies made for the file.
            _ => AppendHold::Copies,
        }
    }
}

/// How an output's appends wait to be handed to the IO ring.
#[derive(Clone, Copy, PartialEq, Eq)]
enum AppendHold {
    /// Copies made for the file: up to [`APPEND_HOLD_BYTES`], all handed over by the flush.
    Copies,
    /// Slices of payloads the GOP cache holds: up to [`SHARED_APPEND_HOLD_BYTES`], the current
    /// GOP's waiting for the cut.
    SharedPayloads,
}

impl AppendHold {
    fn bytes(self) -> usize {
        match self {
            AppendHold::Copies => APPEND_HOLD_BYTES,
            AppendHold::SharedPayloads => SHARED_APPEND_HOLD_BYTES,
        }
    }
}

/// An operation waiting for the IO ring; `own` when the output asked for it (and hears back
/// about it), not when this module added it to clean up after a loss.
struct Queued {
    op: FileOp,
    own: bool,
}

/// What is in flight for one output.
struct InFlight {
    /// For each operation of the job, whether it is the output's own.
    own: Vec<bool>,
    bytes: usize,
    /// The job commits one of the output's segments.
    commits: bool,
}

/// Operations dropped because the queue was full, remembered until the queue has drained.
#[derive(Default)]
struct Overflow {
    /// The output's own operations that were dropped (its journal holds them).
    ops: Vec<FileOp>,
    bytes: usize,
}

struct Slot {
    id: u64,
    output: Output,
    /// The last job failed (disk full, permissions): logged once until a segment is whole on
    /// disk again.
    failing: bool,
    queue: VecDeque<Queued>,
    /// Data bytes queued or in flight.
    queued_bytes: usize,
    in_flight: Option<InFlight>,
    /// The output's open files, here while no job is in flight.
    files: Option<OpenFiles>,
    overflow: Option<Overflow>,
    /// How appends wait to be handed over together.
    hold: AppendHold,
    /// How many queued operations came before the latest video keyframe's: appends of an
    /// earlier GOP, whose payloads the GOP cache no longer holds.
    gop_mark: usize,
}

impl Slot {
    /// `payloads_cached`: the GOP cache holds the stream's recent payloads.
    fn new(id: u64, output: Output, payloads_cached: bool) -> Self {
        Slot {
            id,
            hold: output.append_hold(payloads_cached),
            gop_mark: 0,
            output,
            failing: false,
            queue: VecDeque::new(),
            queued_bytes: 0,
            in_flight: None,
            files: Some(OpenFiles::default()),
            overflow: None,
        }
    }

    /// Nothing queued, in flight or waiting to be reported.
    fn is_idle(&self) -> bool {
        self.queue.is_empty() && self.in_flight.is_none() && self.overflow.is_none()
    }
}

/// The outputs of one stream: still fed by a publisher, or finished and kept until their
/// cleanup is done.
struct StreamOutputs {
    slots: Vec<Slot>,
    live: bool,
    /// Who publishes (or last published) the stream, for what recordings report.
    owner: Option<Rc<RecordOwner>>,
    /// `gop_cache` is on: the stream's recent payloads are held anyway.
    payloads_cached: bool,
    /// HLS in MPEG-TS that turns fMP4 at the first codec TS cannot carry.
    hls_container: Option<ContainerChoice>,
}

/// What `hls_container` decides for a stream whose HLS is MPEG-TS so far.
struct ContainerChoice {
    /// `auto`: these settings make the fMP4 output; `mpegts`: `None`, the codec is left out
    /// (said once).
    fmp4: Option<(HlsSettings, PathBuf)>,
    /// The fMP4 HLS lists the DASH output's segments ([`hls_fits_dash`]).
    beside_dash: bool,
    /// The last sequence header of each kind (video, audio), replayed into the fMP4 output.
    headers: [Option<(u32, Bytes)>; 2],
    warned: bool,
}

/// The codec of a message that MPEG-TS segments cannot carry here but fMP4 can (HEVC, AV1,
/// VP9, Opus, FLAC, AC-3, E-AC-3), read from sequence headers (and AC-3 frames, which have
/// none). Cheap: only Enhanced RTMP headers (and legacy id 12, HEVC) are parsed.
fn needs_fmp4(video: bool, tag: &[u8]) -> Option<&'static str> {
    let b0 = *tag.first()?;
    if video {
        if b0 & 0x80 == 0 && b0 & 0x0f != 12 {
            return None;
        }
        if other_track_header(true, tag).is_some() {
            // Another video track: an ABR ladder, which only CMAF HLS lists.
            return Some("multitrack video");
        }
        let t = flv::parse_video(tag).ok()?;
        let cmaf = matches!(
            t.codec.fourcc(),
            Some(FourCc::HVC1) | Some(FourCc::AV01) | Some(FourCc::VP09)
        );
        (cmaf && t.is_sequence_header()).then(|| t.codec.name())
    } else {
        if b0 >> 4 != 9 {
            return None;
        }
        if other_track_header(false, tag).is_some() {
            return Some("multitrack audio");
        }
        let t = flv::parse_audio(tag).ok()?;
        let cmaf = matches!(
            t.codec.fourcc(),
            Some(FourCc::OPUS) | Some(FourCc::FLAC) | Some(FourCc::AC3) | Some(FourCc::EAC3)
        );
        let header = t.is_sequence_header() || t.packet == AudioPacket::Frame;
        (cmaf && header).then(|| t.codec.name())
    }
}

/// Whether fMP4 HLS can list the DASH output's segments: the same cuts and window (the
/// example config's), else each writes its own.
fn hls_fits_dash(hls: &HlsSettings, dash: &DashSettings) -> bool {
    hls.fragment_ms == dash.fragment_ms
        && hls.playlist_length_ms == dash.playlist_length_ms
        && hls.cleanup == dash.cleanup
        && hls.hls_type == HlsType::Live
}

/// Whether a message is a sequence header (what an fMP4 output started later must see).
fn is_sequence_header(video: bool, tag: &[u8]) -> bool {
    // Every message of a stream whose HLS may still turn fMP4 comes here: legacy tags are
    // told by two bytes, only Enhanced RTMP ones are parsed.
    let (Some(&b0), Some(&b1)) = (tag.first(), tag.get(1)) else {
        return false;
    };
    let enhanced = if video { b0 & 0x80 != 0 } else { b0 >> 4 == 9 };
    if !enhanced {
        let has_packet_type = if video {
            matches!(b0 & 0x0f, 7 | 12)
        } else {
            b0 >> 4 == 10
        };
        return has_packet_type && b1 == 0;
    }
    if video {
        flv::parse_video(tag).is_ok_and(|t| t.is_sequence_header() && video_track(&t) == Some(0))
    } else {
        flv::parse_audio(tag).is_ok_and(|t| t.is_sequence_header() && audio_track(&t) == Some(0))
    }
}

/// The file outputs of every stream this worker publishes or recently published.
pub struct Outputs {
    io: Io,
    streams: HashMap<StreamKey, StreamOutputs>,
    ops: Vec<FileOp>,
    /// Unix ms minus monotonic ms, from the last wall-clock reading.
    wall_offset: i64,
    next_slot_id: u64,
    /// Local time zone (minutes east of UTC), for `record_suffix` patterns.
    tz_offset_min: i32,
    /// What recorders reported, for the worker to act on (callbacks, statuses, logs).
    record_events: Vec<(Rc<RecordOwner>, RecordEvent)>,
}

/// The IO ring as the outputs see it: where jobs go, and what came back.
struct Io {
    storage: Box<dyn Storage>,
    /// [`MAX_QUEUED_BYTES`] (smaller in tests).
    max_queued_bytes: usize,
    stats: IoStats,
    /// Jobs submitted whose result has not come back.
    jobs_in_flight: usize,
}

impl Default for Outputs {
    fn default() -> Self {
        Outputs::new(Box::new(NoStorage))
    }
}

impl Outputs {
    pub fn new(storage: Box<dyn Storage>) -> Self {
        Outputs {
            io: Io {
                storage,
                max_queued_bytes: MAX_QUEUED_BYTES,
                stats: IoStats::default(),
                jobs_in_flight: 0,
            },
            streams: HashMap::new(),
            ops: Vec::new(),
            wall_offset: 0,
            next_slot_id: 1,
            tz_offset_min: 0,
            record_events: Vec::new(),
        }
    }

    pub fn set_tz_offset(&mut self, minutes: i32) {
        self.tz_offset_min = minutes;
    }

    /// What recorders reported since the last call.
    pub fn take_record_events(&mut self) -> Vec<(Rc<RecordOwner>, RecordEvent)> {
        std::mem::take(&mut self.record_events)
    }

    /// The recorders of a stream published (again) by `owner`: (name, settings) of each.
    /// Recorders a republish finds are already there (restarted by [`Outputs::publish`]).
    pub fn add_recorders<'a>(
        &mut self,
        key: &StreamKey,
        recorders: impl Iterator<Item = (&'a str, &'a Settings)>,
        owner: Rc<RecordOwner>,
        logs: &mut Vec<LogLine>,
    ) {
        let probe = self.io.storage.existing_recording();
        let tz = self.tz_offset_min;
        let mut new_slots = Vec::new();
        let existing = self.streams.get(key).is_some_and(|s| {
            s.slots
                .iter()
                .any(|slot| matches!(slot.output, Output::Record(_)))
        });
        if !existing {
            for (name, settings) in recorders {
                if !is_valid_name(&key.name) {
                    let what = "the stream name cannot name a file; not recorded".to_string();
                    logs.push(stream_line(LogLevel::Warn, "record", key, what));
                    return;
                }
                let rec = Recorder::new(name, &settings.record, &key.name, tz, probe);
                new_slots.push(Slot::new(
                    self.next_slot_id(),
                    Output::Record(Box::new(rec)),
                    false,
                ));
            }
        }
        let stream = self
            .streams
            .entry(key.clone())
            .or_insert_with(|| StreamOutputs {
                slots: Vec::new(),
                live: true,
                owner: None,
                payloads_cached: false,
                hls_container: None,
            });
        stream.slots.extend(new_slots);
        stream.owner = Some(owner);
    }

    /// `/control/record/start|stop` on recorder `recorder` of `key`: `None` when the stream
    /// has no such recorder here, else the path of the file started or stopped (`None`:
    /// nothing to do, a file was already open, or none was).
    pub fn record_control(
        &mut self,
        key: &StreamKey,
        recorder: &str,
        start: bool,
        mono_ms: u64,
        logs: &mut Vec<LogLine>,
    ) -> Option<Option<PathBuf>> {
        let now = self.now(mono_ms);
        let stream = self.streams.get_mut(key).filter(|s| s.live)?;
        let owner = stream.owner.clone();
        for slot in &mut stream.slots {
            let Output::Record(rec) = &mut slot.output else {
                continue;
            };
            if rec.name() != recorder {
                continue;
            }
            let path = if start {
                rec.start(now, &mut self.ops)
            } else {
                rec.stop(&mut self.ops)
            };
            self.io.enqueue(slot, key, &mut self.ops, logs);
            collect_events(slot, owner.as_ref(), &mut self.record_events);
            return Some(path);
        }
        None
    }

    /// What each recorder of `key` is writing now.
    pub fn recordings(&self, key: &StreamKey) -> Vec<RecordingNow> {
        self.streams.get(key).map_or_else(Vec::new, |s| {
            s.slots
                .iter()
                .filter_map(|slot| match &slot.output {
                    Output::Record(r) => r.now_recording(),
                    _ => None,
                })
                .collect()
        })
    }

    /// File IO performed so far for this worker's outputs (ops, bytes, slowest operation).
    pub fn io_stats(&self) -> IoStats {
        self.io.stats
    }

    /// Whether file work is queued or in flight (the worker must not exit before it is done).
    /// Hands a VOD read to the storage (the thread pool in the module).
    pub fn submit_vod(&mut self, job: crate::vod::VodJob) -> Option<crate::vod::VodDone> {
        self.io.storage.submit_vod(job)
    }

    pub fn io_pending(&self) -> bool {
        self.io.jobs_in_flight > 0
            || self
                .streams
                .values()
                .any(|s| s.slots.iter().any(|slot| !slot.is_idle()))
    }

    /// A job submitted earlier came back (from the thread pool).
    pub fn io_done(&mut self, done: IoDone, logs: &mut Vec<LogLine>) {
        for (key, stream) in self.streams.iter_mut() {
            if let Some(slot) = stream.slots.iter_mut().find(|s| s.id == done.output) {
                self.io.finish_job(slot, key, done, logs);
                self.io.pump(slot, key, logs);
                collect_events(slot, stream.owner.as_ref(), &mut self.record_events);
                return;
            }
        }
        // Its stream is gone (cannot happen while a job is in flight); count it back.
        self.io.jobs_in_flight = self.io.jobs_in_flight.saturating_sub(1);
        self.io.stats.add(done.stats);
    }

    fn next_slot_id(&mut self) -> u64 {
        let id = self.next_slot_id;
        self.next_slot_id += 1;
        id
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
        let mut hls_container = None;
        let dash_on = settings.dash.enabled && !settings.dash.path.is_empty();
        let beside_dash = dash_on && hls_fits_dash(&settings.hls, &settings.dash);
        let mut attach = None;
        if settings.hls.enabled && !settings.hls.path.is_empty() {
            let path = HlsStream::playlist_path(&settings.hls, &key.name);
            // LL-HLS parts are fMP4: a low-latency stream is CMAF from its start.
            let fmp4 = settings.hls.container == HlsContainer::Fmp4 || settings.hls.low_latency;
            if fmp4 && beside_dash {
                attach = Some((settings.hls.clone(), path));
            } else {
                let output = if fmp4 {
                    let cmaf = DashStream::new_hls(&settings.hls, path, &key.app, &key.name);
                    Output::HlsFmp4(Box::new(cmaf))
                } else {
                    let previous = self.io.storage.read_small(&path);
                    let hls = HlsStream::new(
                        &settings.hls,
                        &key.app,
                        &key.name,
                        previous.as_deref(),
                        random,
                    );
                    hls_container = Some(ContainerChoice {
                        fmp4: (settings.hls.container == HlsContainer::Auto)
                            .then(|| (settings.hls.clone(), path)),
                        beside_dash,
                        headers: [None, None],
                        warned: false,
                    });
                    Output::Hls(Box::new(hls))
                };
                slots.push(Slot::new(
                    self.next_slot_id(),
                    output,
                    settings.live.gop_cache,
                ));
            }
        }
        if dash_on {
            let path = DashStream::manifest_path(&settings.dash, &key.name);
            let previous = self.io.storage.read_small(&path);
            let mut dash =
                DashStream::new(&settings.dash, &key.app, &key.name, previous.as_deref());
            let mut ops = Vec::new();
            if let Some((hls, playlist)) = attach {
                dash.attach_hls(&hls, playlist, now, &mut ops);
            }
            let output = Output::Dash(Box::new(dash));
            let mut slot = Slot::new(self.next_slot_id(), output, settings.live.gop_cache);
            slot.queue
                .extend(ops.into_iter().map(|op| Queued { op, own: true }));
            slots.push(slot);
        }
        if !slots.is_empty() {
            self.streams.insert(
                key.clone(),
                StreamOutputs {
                    slots,
                    live: true,
                    owner: None,
                    payloads_cached: settings.live.gop_cache,
                    hls_container,
                },
            );
        }
    }

    pub fn media(
        &mut self,
        key: &StreamKey,
        video: bool,
        timestamp: u32,
        tag: &bytes::Bytes,
        mono_ms: u64,
        logs: &mut Vec<LogLine>,
    ) {
        let now = self.now(mono_ms);
        let Some(stream) = self.streams.get_mut(key) else {
            return;
        };
        // What a new fMP4 HLS output asked for while it was fed the headers seen so far.
        let mut switched: Option<(u64, Vec<FileOp>)> = None;
        if let Some(choice) = stream.hls_container.as_mut() {
            let event = (video, timestamp, tag, now);
            if let Some(done) = choose_container(choice, &mut stream.slots, key, event, logs) {
                stream.hls_container = None;
                switched = done;
            }
        }
        {
            if let Some(k) = new_rendition(&stream.slots, video, tag) {
                // Each CMAF output (fMP4 HLS, DASH) lists renditions written where it is.
                let made: Vec<(u64, DashStream)> = stream
                    .slots
                    .iter()
                    .filter_map(|s| match &s.output {
                        Output::HlsFmp4(d) | Output::Dash(d) => Some((s.id, d.rendition(k)?)),
                        _ => None,
                    })
                    .collect();
                for (main, rendition) in made {
                    let id = self.next_slot_id;
                    self.next_slot_id += 1;
                    let output = Output::Rendition(main, Box::new(rendition));
                    stream
                        .slots
                        .push(Slot::new(id, output, stream.payloads_cached));
                }
            }
        }
        let mut share = false;
        let mut renditions_changed = false;
        // Where the GOP cache starts again (it keeps the main track's GOP, see `live::hub`).
        let keyframe = video
            && stream.payloads_cached
            && crate::live::hub::classify(crate::live::frame::FrameKind::Video, tag).keyframe;
        for slot in &mut stream.slots {
            if let Some((_, ops)) = switched.take_if(|(id, _)| *id == slot.id) {
                self.ops.extend(ops);
            }
            if keyframe {
                slot.gop_mark = slot.queue.len();
            }
            slot.output
                .file()
                .on_media(video, timestamp, tag, now, &mut self.ops);
            let committed = self
                .ops
                .iter()
                .any(|op| matches!(op, FileOp::Commit { .. }));
            share |= committed && matches!(slot.output, Output::Hls(_));
            renditions_changed |= committed && matches!(slot.output, Output::Rendition(..));
            self.io.enqueue(slot, key, &mut self.ops, logs);
            collect_events(slot, stream.owner.as_ref(), &mut self.record_events);
        }
        if renditions_changed {
            share_renditions(&mut stream.slots, now);
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
            self.io.enqueue(slot, key, &mut self.ops, logs);
            collect_events(slot, stream.owner.as_ref(), &mut self.record_events);
        }
    }

    /// Deferred work (deletions after their grace period) and the flush of waiting appends.
    /// Returns the delay until the next call, or None when nothing is pending.
    pub fn housekeeping(&mut self, mono_ms: u64, logs: &mut Vec<LogLine>) -> Option<u64> {
        let now = self.now(mono_ms);
        let mut next: Option<u64> = None;
        let mut done = Vec::new();
        for (key, stream) in self.streams.iter_mut() {
            let mut all_done = !stream.live;
            let mut renditions_changed = false;
            for slot in &mut stream.slots {
                let due = slot.output.file().on_tick(now, &mut self.ops);
                renditions_changed |= matches!(slot.output, Output::Rendition(..))
                    && self
                        .ops
                        .iter()
                        .any(|op| matches!(op, FileOp::Commit { .. }));
                self.io.enqueue(slot, key, &mut self.ops, logs);
                self.io.flush(slot, key, logs);
                collect_events(slot, stream.owner.as_ref(), &mut self.record_events);
                if let Some(at) = due {
                    let delay = at.saturating_sub(mono_ms).max(1);
                    next = Some(next.map_or(delay, |n| n.min(delay)));
                }
                all_done &= slot.output.file().is_done() && slot.is_idle();
            }
            if renditions_changed {
                share_renditions(&mut stream.slots, now);
            }
            if all_done {
                done.push(key.clone());
            }
            if stream.live {
                // Appends keep coming: flush them again soon.
                next = Some(next.map_or(APPEND_FLUSH_MS, |n| n.min(APPEND_FLUSH_MS)));
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

/// `hls_container` at a message of a stream whose HLS is MPEG-TS: with `auto`, a codec TS
/// cannot carry turns the HLS output into fMP4 (fed the sequence headers seen so far; the
/// message itself follows); with `mpegts`, it is said once that the codec is left out.
/// `Some` when nothing is left to decide, with the slot that became fMP4 and what its new
/// output asked for.
fn choose_container(
    choice: &mut ContainerChoice,
    slots: &mut Vec<Slot>,
    key: &StreamKey,
    (video, timestamp, tag, now): (bool, u32, &Bytes, Now),
    logs: &mut Vec<LogLine>,
) -> Option<Option<(u64, Vec<FileOp>)>> {
    let Some(codec) = needs_fmp4(video, tag) else {
        if is_sequence_header(video, tag) {
            if let Some(slot) = choice.headers.get_mut(usize::from(!video)) {
                *slot = Some((timestamp, tag.clone()));
            }
        }
        return None;
    };
    let Some((settings, path)) = choice.fmp4.take() else {
        if !choice.warned {
            choice.warned = true;
            let what = format!(
                "{codec} cannot go into MPEG-TS segments (hls_container mpegts): left out of HLS"
            );
            logs.push(stream_line(LogLevel::Warn, "hls", key, what));
        }
        return None;
    };
    let Some(at) = slots
        .iter()
        .position(|s| matches!(s.output, Output::Hls(_)))
    else {
        return Some(None);
    };
    let dash = slots
        .iter()
        .position(|s| matches!(s.output, Output::Dash(_)));
    let ts_idle = slots.get(at).is_some_and(Slot::is_idle);
    if let (true, Some(d), true) = (choice.beside_dash, dash, ts_idle) {
        // One set of segments: the DASH output lists them as HLS too.
        let mut ops = Vec::new();
        let mut id = None;
        if let Some(slot) = slots.get_mut(d) {
            if let Output::Dash(dash) = &mut slot.output {
                dash.attach_hls(&settings, path, now, &mut ops);
                id = Some(slot.id);
            }
        }
        slots.remove(at);
        let what = format!(
            "{codec}: HLS of this stream lists the DASH segments (fMP4, hls_container auto)"
        );
        logs.push(stream_line(LogLevel::Notice, "hls", key, what));
        return Some(id.map(|id| (id, ops)));
    }
    let Some(slot) = slots.get_mut(at) else {
        return Some(None);
    };
    let mut cmaf = DashStream::new_hls(&settings, path, &key.app, &key.name);
    let mut ops = Vec::new();
    for (is_video, header) in [(true, &choice.headers[0]), (false, &choice.headers[1])] {
        if let Some((ts, data)) = header {
            cmaf.on_media(is_video, *ts, data, now, &mut ops);
        }
    }
    slot.output = Output::HlsFmp4(Box::new(cmaf));
    let what = format!("{codec}: HLS of this stream is fMP4 (CMAF) segments (hls_container auto)");
    logs.push(stream_line(LogLevel::Notice, "hls", key, what));
    Some(Some((slot.id, ops)))
}

/// Most renditions of other video tracks one stream gets (a multitrack ladder has 3 to 5).
pub const MAX_RENDITIONS: usize = 8;

/// The track id of a sequence header of a track other than 0 (of a multitrack publisher).
fn other_track_header(video: bool, tag: &[u8]) -> Option<u8> {
    // Only Enhanced RTMP headers can be multitrack.
    let b0 = *tag.first()?;
    if video {
        if b0 & 0x80 == 0 {
            return None;
        }
        let t = flv::parse_video(tag).ok()?;
        video_track(&t).filter(|k| *k > 0 && t.is_sequence_header())
    } else {
        if b0 >> 4 != 9 {
            return None;
        }
        let t = flv::parse_audio(tag).ok()?;
        audio_track(&t).filter(|k| *k > 0 && t.is_sequence_header())
    }
}

/// The rendition a multitrack sequence header of a track with none yet asks for.
fn new_rendition(slots: &[Slot], video: bool, tag: &[u8]) -> Option<Role> {
    let k = other_track_header(video, tag)?;
    let k = if video {
        Role::Video(k)
    } else {
        Role::Audio(k)
    };
    let mut tracks: Vec<Role> = slots
        .iter()
        .filter_map(|s| match &s.output {
            Output::Rendition(_, r) => Some(r.role()),
            _ => None,
        })
        .collect();
    tracks.sort_unstable();
    tracks.dedup();
    (!tracks.contains(&k) && tracks.len() < MAX_RENDITIONS).then_some(k)
}

/// Tells each CMAF output what its renditions list now (for its multivariant playlist and
/// MPD).
/// MPD), and each rendition where its fellow tracks are (for its LL-HLS rendition reports).
fn share_renditions(slots: &mut [Slot], now: Now) {
    let entries: Vec<(u64, Role, _)> = slots
        .iter()
        .filter_map(|s| match &s.output {
            Output::Rendition(main, r) => Some((*main, r.role(), r.rendition_entry(now)?)),
            _ => None,
        })
        .collect();
    // Every track of each publisher: (its main output's slot, its slot, name, what it lists).
    let tracks: Vec<(u64, u64, String, Vec<crate::dash::mpd::AdaptationSet>)> = slots
        .iter()
        .filter_map(|s| match &s.output {
            Output::HlsFmp4(d) | Output::Dash(d) => Some((s.id, s.id, d)),
            Output::Rendition(main, r) => Some((*main, s.id, r)),
            _ => None,
        })
        .map(|(main, id, d)| (main, id, d.stream_name().to_owned(), d.track_sets(now)))
        .collect();
    for slot in slots.iter_mut() {
        match &mut slot.output {
            Output::HlsFmp4(d) | Output::Dash(d) => {
                for (_, k, entry) in entries.iter().filter(|(main, ..)| *main == slot.id) {
                    d.set_rendition(*k, entry.clone());
                }
            }
            Output::Rendition(main, r) => {
                let peers = tracks
                    .iter()
                    .filter(|(m, id, ..)| m == main && *id != slot.id)
                    .flat_map(|(_, _, name, sets)| sets.iter().map(|s| (name.clone(), s.clone())))
                    .collect();
                r.set_peers(peers);
            }
            _ => {}
        }
    }
}

fn hls_of(slots: &[Slot]) -> Option<&HlsStream> {
    slots.iter().find_map(|s| match &s.output {
        Output::Hls(h) => Some(h.as_ref()),
        _ => None,
    })
}

/// Moves what a recorder reported to `events`, with who published its stream.
fn collect_events(
    slot: &mut Slot,
    owner: Option<&Rc<RecordOwner>>,
    events: &mut Vec<(Rc<RecordOwner>, RecordEvent)>,
) {
    if let (Output::Record(rec), Some(owner)) = (&mut slot.output, owner) {
        events.extend(rec.take_events().into_iter().map(|e| (owner.clone(), e)));
    }
}

/// Bytes of file data in `ops`.
fn data_bytes(ops: &[FileOp]) -> usize {
    ops.iter()
        .map(|op| match op {
            FileOp::Append { data, .. }
            | FileOp::WriteAtomic { data, .. }
            | FileOp::WriteAt { data, .. } => data.len(),
            _ => 0,
        })
        .sum()
}

/// `op` without its data: what is remembered of a dropped operation.
fn without_data(op: FileOp) -> FileOp {
    match op {
        FileOp::Append { path, .. } => FileOp::Append {
            path,
            data: Default::default(),
        },
        FileOp::WriteAtomic { path, .. } => FileOp::WriteAtomic {
            path,
            data: Default::default(),
        },
        other => other,
    }
}

fn push_unique(list: &mut Vec<PathBuf>, path: PathBuf) {
    if !list.contains(&path) {
        list.push(path);
    }
}

fn stream_line(level: LogLevel, label: &str, key: &StreamKey, what: String) -> LogLine {
    LogLine {
        level,
        client: None,
        text: format!("{label}: \"{}/{}\": {what}", key.app, key.name),
    }
}

impl Io {
    /// Queues what an output asked for and starts a job if none is in flight.
    fn enqueue(
        &mut self,
        slot: &mut Slot,
        key: &StreamKey,
        ops: &mut Vec<FileOp>,
        logs: &mut Vec<LogLine>,
    ) {
        if ops.is_empty() {
            return;
        }
        let bytes = data_bytes(ops);
        if let Some(overflow) = &mut slot.overflow {
            overflow.bytes += bytes;
            overflow.ops.extend(ops.drain(..).map(without_data));
            return;
        }
        if slot.queued_bytes > 0 && slot.queued_bytes + bytes > self.max_queued_bytes {
            let what = format!(
                "the disk is {} MB behind; dropping whole segments until it catches up \
                 (live playback goes on)",
                slot.queued_bytes / (1024 * 1024)
            );
            logs.push(stream_line(LogLevel::Warn, slot.output.label(), key, what));
            slot.overflow = Some(Overflow {
                ops: ops.drain(..).map(without_data).collect(),
                bytes,
            });
            return;
        }
        slot.queued_bytes += bytes;
        slot.queue
            .extend(ops.drain(..).map(|op| Queued { op, own: true }));
        self.pump(slot, key, logs);
    }

    /// Starts the next job of `slot` unless one is in flight; a job performed at once is
    /// finished here, and the next one started. Appends alone wait (see [`APPEND_HOLD_BYTES`]).
    fn pump(&mut self, slot: &mut Slot, key: &StreamKey, logs: &mut Vec<LogLine>) {
        self.start_jobs(slot, key, logs, false);
    }

    /// Hands over `slot`'s waiting appends too (the periodic flush); for an output whose
    /// appends wait for their cut, only those of earlier GOPs.
    fn flush(&mut self, slot: &mut Slot, key: &StreamKey, logs: &mut Vec<LogLine>) {
        if slot.hold == AppendHold::Copies {
            self.start_jobs(slot, key, logs, true);
            return;
        }
        let earlier = slot.gop_mark.min(slot.queue.len());
        if earlier > 0 && slot.in_flight.is_none() && slot.overflow.is_none() {
            let selected = (0..slot.queue.len()).map(|i| i < earlier).collect();
            self.submit(slot, key, logs, selected);
        }
        self.pump(slot, key, logs);
    }

    fn start_jobs(
        &mut self,
        slot: &mut Slot,
        key: &StreamKey,
        logs: &mut Vec<LogLine>,
        flush: bool,
    ) {
        while slot.in_flight.is_none() {
            if slot.queue.is_empty() {
                match slot.overflow.take() {
                    Some(overflow) => {
                        let what = format!(
                            "the disk caught up; {} MB of segments were dropped",
                            overflow.bytes.div_ceil(1024 * 1024)
                        );
                        logs.push(stream_line(LogLevel::Warn, slot.output.label(), key, what));
                        lose(slot, overflow.ops);
                        continue;
                    }
                    None => return,
                }
            }
            if !flush
                && slot.overflow.is_none()
                && only_small_appends(&slot.queue, slot.hold.bytes())
            {
                // More media follows, the cut's commit, which sends all, or the flush.
                return;
            }
            let mut selected = vec![true; slot.queue.len()];
            if slot.hold == AppendHold::SharedPayloads && !flush && slot.overflow.is_none() {
                // The next segment's first appends (its spool), queued with its predecessor's
                // cut, wait for its own cut too: the IO ring then writes them straight into it.
                selected = unconsumed_writes(&slot.queue)
                    .into_iter()
                    .map(|waits| !waits)
                    .collect();
                if !selected.contains(&true) {
                    // Appends alone, over the byte bound: they all go.
                    selected = vec![true; slot.queue.len()];
                }
            }
            self.submit(slot, key, logs, selected);
        }
    }

    /// Hands the `selected` queued operations of `slot` to the IO ring as one job (none may
    /// be in flight), the others staying queued in order; a job performed at once is
    /// finished here.
    fn submit(
        &mut self,
        slot: &mut Slot,
        key: &StreamKey,
        logs: &mut Vec<LogLine>,
        selected: Vec<bool>,
    ) {
        let mut own = Vec::new();
        let mut ops = Vec::new();
        let mut commits = false;
        let mut stay = VecDeque::new();
        let mut before_mark = 0;
        for (i, q) in slot.queue.drain(..).enumerate() {
            if !selected.get(i).copied().unwrap_or(true) {
                before_mark += usize::from(i < slot.gop_mark);
                stay.push_back(q);
                continue;
            }
            commits |= q.own && matches!(q.op, FileOp::Commit { .. });
            own.push(q.own);
            ops.push(q.op);
        }
        slot.queue = stay;
        slot.gop_mark = before_mark;
        let bytes = data_bytes(&ops);
        slot.in_flight = Some(InFlight {
            own,
            bytes,
            commits,
        });
        let files = slot.files.take().unwrap_or_default();
        self.jobs_in_flight += 1;
        let job = IoJob {
            output: slot.id,
            ops,
            files,
        };
        if let Some(done) = self.storage.submit(job) {
            self.finish_job(slot, key, done, logs);
        }
    }

    /// What became of `slot`'s job: tell its output, and after a failure drop what was asked
    /// for behind the failed operation (it was asked for by an output that did not know).
    fn finish_job(
        &mut self,
        slot: &mut Slot,
        key: &StreamKey,
        done: IoDone,
        logs: &mut Vec<LogLine>,
    ) {
        self.jobs_in_flight = self.jobs_in_flight.saturating_sub(1);
        self.stats.add(done.stats);
        let Some(flight) = slot.in_flight.take() else {
            return;
        };
        slot.files = Some(done.files);
        slot.queued_bytes = slot.queued_bytes.saturating_sub(flight.bytes);
        let own_done = flight
            .own
            .iter()
            .take(done.done)
            .filter(|own| **own)
            .count();
        slot.output.file().on_written(own_done);
        let label = slot.output.label();
        let Some(failure) = done.failure else {
            if slot.failing && flight.commits {
                slot.failing = false;
                logs.push(stream_line(
                    LogLevel::Warn,
                    label,
                    key,
                    "writing again".into(),
                ));
            }
            return;
        };
        if flight.own.get(done.done).copied().unwrap_or(false) {
            slot.output.file().on_write_failed(&failure.path);
        }
        let rest_own = flight.own.iter().skip(done.done + 1).copied();
        let mut lost: Vec<FileOp> = Vec::new();
        let mut kept: Vec<FileOp> = Vec::new();
        for (op, own) in done.rest.into_iter().zip(rest_own) {
            if own {
                lost.push(op)
            } else {
                kept.push(op)
            }
        }
        slot.gop_mark = 0;
        for q in slot.queue.drain(..) {
            if q.own {
                lost.push(q.op)
            } else {
                kept.push(q.op)
            }
        }
        if let Some(overflow) = slot.overflow.take() {
            lost.extend(overflow.ops);
        }
        slot.queued_bytes = 0;
        slot.queue
            .extend(kept.into_iter().map(|op| Queued { op, own: false }));
        lose(slot, lost);
        if !slot.failing {
            slot.failing = true;
            logs.push(stream_line(
                LogLevel::Error,
                label,
                key,
                format!("{failure}; live playback goes on"),
            ));
        }
    }
}

/// Whether `queue` holds nothing but opens and appends of fewer than `hold` bytes: such a job
/// waits for more (see [`APPEND_HOLD_BYTES`]).
fn only_small_appends(queue: &VecDeque<Queued>, hold: usize) -> bool {
    let mut bytes = 0;
    for q in queue {
        match &q.op {
            FileOp::Append { data, .. } => bytes += data.len(),
            op if is_open_or_append(op) => {}
            _ => return false,
        }
    }
    bytes < hold
}

fn is_open_or_append(op: &FileOp) -> bool {
    matches!(
        op,
        FileOp::Open { .. } | FileOp::OpenRecording { .. } | FileOp::Append { .. }
    )
}

/// For each queued operation, whether it opens or appends to a file that no later operation
/// in `queue` commits, copies, links, closes or deletes: the start of a file (a segment's
/// spool) whose cut is still to come. Such operations can wait for a later job without
/// changing what any operation of this one sees.
fn unconsumed_writes(queue: &VecDeque<Queued>) -> Vec<bool> {
    let mut consumed: HashSet<&Path> = HashSet::new();
    let mut waits = vec![false; queue.len()];
    for (q, wait) in queue.iter().zip(waits.iter_mut()).rev() {
        if is_open_or_append(&q.op) {
            *wait = !consumed.contains(q.op.path());
            continue;
        }
        consumed.insert(q.op.path());
        match &q.op {
            FileOp::AppendFrom { from, .. } | FileOp::Link { from, .. } => {
                consumed.insert(from);
            }
            FileOp::Commit { to, .. } => {
                consumed.insert(to);
            }
            _ => {}
        }
    }
    waits
}

/// `lost` (the output's own operations, in the order it asked for them) will never be
/// performed: the output forgets what they wrote, what they left open is abandoned, and the
/// deletions among them still happen (nothing lists those files any more).
fn lose(slot: &mut Slot, lost: Vec<FileOp>) {
    let mut failed: Vec<PathBuf> = Vec::new();
    let mut abandon: Vec<PathBuf> = Vec::new();
    let mut keep: Vec<PathBuf> = Vec::new();
    let mut cleanup: Vec<FileOp> = Vec::new();
    for op in lost {
        match op {
            FileOp::Open { path }
            | FileOp::Append { path, .. }
            | FileOp::AppendFrom { path, .. }
            | FileOp::Flush { path } => {
                push_unique(&mut abandon, path.clone());
                push_unique(&mut failed, path);
            }
            FileOp::Commit { path, to } => {
                push_unique(&mut abandon, path);
                push_unique(&mut failed, to);
            }
            FileOp::CreateDir { path }
            | FileOp::WriteAtomic { path, .. }
            | FileOp::Link { path, .. } => {
                push_unique(&mut failed, path);
            }
            FileOp::Delete { path } => {
                // The first lost operation is where the output's journal is cut.
                if failed.is_empty() {
                    failed.push(path.clone());
                }
                cleanup.push(FileOp::Delete { path });
            }
            FileOp::Abort { path } => push_unique(&mut abandon, path),
            FileOp::OpenRecording { path, .. }
            | FileOp::WriteAt { path, .. }
            | FileOp::Close { path } => {
                push_unique(&mut keep, path.clone());
                push_unique(&mut failed, path);
            }
        }
    }
    for path in &failed {
        slot.output.file().on_write_failed(path);
    }
    // A recording is closed where it is, never deleted (what it holds is playable).
    abandon.retain(|path| !keep.contains(path));
    let closes = keep.into_iter().map(|path| FileOp::Close { path });
    let aborts = abandon
        .into_iter()
        .map(|path| FileOp::Abort { path })
        .chain(closes);
    slot.queue
        .extend(aborts.chain(cleanup).map(|op| Queued { op, own: false }));
}

#[cfg(test)]
#[path = "outputs_tests.rs"]
mod tests;
