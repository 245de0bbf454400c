//! The HLS segmenter of one published stream: cut policy, segment files, media and master
//! playlists, AES-128 keys and cleanup. It returns [`FileOp`]s; the IO ring performs them in
//! order, so the order here is the on-disk guarantee:
//!
//! - a segment is written under `<final>.part` (`Open`, `Append` in chunks of about
//!   [`APPEND_CHUNK_BYTES`]) and renamed (`Commit`) before the playlist that lists it is
//!   written (`WriteAtomic`); a key file is written when its first segment is opened, so
//!   before any playlist references it;
//! - a segment is deleted only after it left the playlist and a grace period passed
//!   ([`HlsStream::on_tick`]); after the stream ends, its last playlist stays for
//!   [`retention::FINAL_CLEANUP_FACTOR`] × `hls_playlist_length` and is deleted *before* its
//!   segments.
//!
//! Choices (beyond the C module, see the issue):
//! - Timeline: see [`crate::segment::timeline`]. TS timestamps stay continuous across
//!   timestamp jumps and publisher restarts within one `HlsStream`; the first segment after a
//!   jump carries one `#EXT-X-DISCONTINUITY` (several jumps before the next cut still give
//!   one).
//! - Cuts ([`crate::segment::cut`], with `hls_max_fragment` as the max): at the first
//!   keyframe once `hls_fragment` has passed (or, `aligned`, once the publisher's timestamp
//!   enters a new multiple of `hls_fragment`); any frame at `hls_max_fragment` forces a cut.
//!   A segment that did not start on a keyframe is closed at the next keyframe whatever its
//!   length, to get back onto keyframes quickly; while such a segment is listed,
//!   `#EXT-X-INDEPENDENT-SEGMENTS` is left out. Audio-only: cut by duration at any audio
//!   frame.
//! - Window: `hls_playlist_length / hls_fragment` segments as the C module, but never fewer
//!   than three target durations of media (RFC 8216 §6.2.2). `hls_type event` never drops.
//! - Target duration: ceiling of the longest listed segment (never below an `EXTINF`).
//! - Cleanup grace for a segment leaving the window: max(`hls_playlist_length`, 3 × target
//!   duration, duration of the window then listed) ([`retention::Grace`]).
//! - AES-128: one key per `hls_fragments_per_key` segments (0: per session), key id = media
//!   sequence number of its first segment; every segment is encrypted with IV = its own
//!   media sequence number and gets its own `EXT-X-KEY` line with that IV (the C module reuses
//!   the first segment's IV for all segments of a key; per-segment IVs avoid CBC IV reuse).
//! - Codecs TS cannot carry here (anything but H.264 video, AAC/MP3 audio) are skipped:
//!   with `hls_container auto` such a stream's HLS is the CMAF segmenter's instead
//!   ([`crate::dash::segmenter::DashStream::new_hls`]); with `mpegts` one line says so. Frames before their
//!   sequence header are dropped; a track that appears later switches the PMT at the next
//!   keyframe, with a discontinuity.
//! - Fragment names must not repeat within a stream (a repeat would overwrite a listed file
//!   or be hit by a pending delete): a `timestamp`/`system` id (after granularity) not above
//!   the previous one becomes previous + 1.
//! - `#EXT-X-PROGRAM-DATE-TIME` is always written: with `hls_datetime timestamp` from the
//!   publisher's timestamp (its low 32 bits of Unix ms, as the fork does); otherwise the wall
//!   clock, anchored at the first segment and followed through stream time, re-anchored when
//!   it drifts more than [`PDT_MAX_DRIFT_MS`] from the clock.
//! - The master playlist of `hls_variant` is written when its text changes; the entry of
//!   this stream gets the measured attributes the config leaves out. It is never deleted
//!   (other variants' streams share it).
//! - Keys for rotation after the stream starts come from a generator seeded by `random` at
//!   `new`/`restart` (see [`super::keys`]).

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::keys::{CbcEncryptor, KeyGenerator, BLOCK};
use super::playlist::{self, KeyTag, MediaHeader, SegmentEntry, VariantEntry, VariantInfo};
use super::ts::{TsAudio, TsMuxer, TsTracks};
use super::{FileOp, Now};
use crate::conf::{HlsDatetime, HlsNaming, HlsSettings, HlsSlicing, HlsType};
use crate::media::avc::{self, SpsInfo};
use crate::media::flv::{
    self, AacConfig, AudioPacket, AvcConfig, FourCc, MultitrackKind, VideoPacket,
};
use crate::media::metadata::{self, CodecId};
use crate::segment::cut::{Boundary, CutPolicy, Decision, SegmentSoFar};
use crate::segment::journal::Journal;
use crate::segment::names::{basename, is_valid_name};
use crate::segment::retention::{self, Grace, Retention};
use crate::segment::timeline::{Mapped, Timeline, Track, BACKWARD_TOLERANCE_MS};
use crate::segment::{
    AAC_FRAME_SAMPLES, APPEND_CHUNK_BYTES, DEFAULT_VIDEO_STEP_MS, MAX_AUDIO_FRAME, MAX_CTS_MS,
    PART_SUFFIX,
};

thread_local! {
    /// One Annex B buffer for all the streams of a worker: streams are fed one message at a
    /// time, and a buffer per stream would keep its largest keyframe allocated for good.
    static ANNEXB_SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}
/// A scratch buffer grown past this (an outsized keyframe) is given back after use.
const ANNEXB_SCRATCH_KEPT: usize = 1024 * 1024;

/// Wall-clock drift (ms) after which the program date is re-anchored to the clock.
pub const PDT_MAX_DRIFT_MS: u64 = 2000;
/// How far audio may run ahead of video and still wait in the buffer for its segment.
const MAX_AUDIO_LEAD_MS: u64 = 1000;

/// Bounds on the audio PES buffer (`hls_audio_buffer_size`).
pub const MIN_AUDIO_BUFFER: usize = 8 * 1024;
pub const MAX_AUDIO_BUFFER: usize = 16 * 1024 * 1024;
/// Samples per frame used for timing of MPEG-1 layer III (AAC: [`AAC_FRAME_SAMPLES`]).
const MP3_FRAME_SAMPLES: u64 = 1152;

use crate::segment::names::uri_escape;

/// Trailing decimal digits before `suffix` (`name-12.ts` -> 12).
fn trailing_number(uri: &str, suffix: &str) -> Option<u64> {
    let stem = uri.strip_suffix(suffix)?;
    let digits = stem.len() - stem.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    if digits == 0 || digits > 20 {
        return None;
    }
    stem[stem.len() - digits..].parse().ok()
}

/// Where a stream's files go and how the playlist names them (the C module's layout).
#[derive(Debug, Clone)]
struct Layout {
    name: String,
    nested: bool,
    path: PathBuf,
    key_path: PathBuf,
    base_url: String,
    key_url: String,
    playlist: PathBuf,
    dir: PathBuf,
    key_dir: PathBuf,
}

impl Layout {
    fn new(settings: &HlsSettings, name: &str) -> Self {
        let path = PathBuf::from(&settings.path);
        let key_path = if settings.key_path.is_empty() {
            path.clone()
        } else {
            PathBuf::from(&settings.key_path)
        };
        let playlist = HlsStream::playlist_path(settings, name);
        let dir = playlist
            .parent()
            .map_or_else(|| path.clone(), Path::to_path_buf);
        let key_dir = if settings.nested {
            key_path.join(name)
        } else {
            key_path
                .join(name)
                .parent()
                .map_or_else(|| key_path.clone(), Path::to_path_buf)
        };
        Layout {
            name: name.to_owned(),
            nested: settings.nested,
            path,
            key_path,
            base_url: settings.base_url.clone(),
            key_url: settings.key_url.clone(),
            playlist,
            dir,
            key_dir,
        }
    }

    fn segment_path(&self, id: u64) -> PathBuf {
        if self.nested {
            self.path.join(&self.name).join(format!("{id}.ts"))
        } else {
            self.path.join(format!("{}-{id}.ts", self.name))
        }
    }

    /// `uri_prefix` + name part + separator + `<id>.<ext>`, as the C module builds them; with
    /// no prefix the URI is relative to the playlist's directory.
    fn uri(&self, prefix: &str, id: u64, ext: &str) -> String {
        match (self.nested, prefix.is_empty()) {
            (true, true) => format!("{id}.{ext}"),
            (true, false) => format!("{prefix}{}/{id}.{ext}", uri_escape(&self.name)),
            (false, true) => format!("{}-{id}.{ext}", uri_escape(basename(&self.name))),
            (false, false) => format!("{prefix}{}-{id}.{ext}", uri_escape(&self.name)),
        }
    }

    fn segment_uri(&self, id: u64) -> String {
        self.uri(&self.base_url, id, "ts")
    }

    fn key_file(&self, id: u64) -> PathBuf {
        if self.nested {
            self.key_path.join(&self.name).join(format!("{id}.key"))
        } else {
            self.key_path.join(format!("{}-{id}.key", self.name))
        }
    }

    fn key_uri(&self, id: u64) -> String {
        self.uri(&self.key_url, id, "key")
    }
}

/// A listed segment.
#[derive(Debug, Clone)]
struct Segment {
    entry: SegmentEntry,
    seq: u64,
    /// File on disk, when known (restored entries of another layout have none).
    path: Option<PathBuf>,
    key_path: Option<PathBuf>,
    independent: bool,
    bytes: u64,
    video_frames: u64,
}

/// The key of the segments being written.
#[derive(Debug, Clone)]
struct CurrentKey {
    key: [u8; BLOCK],
    uri: String,
    path: PathBuf,
}

#[derive(Debug)]
struct KeyState {
    generator: KeyGenerator,
    current: Option<CurrentKey>,
    /// Segments that may still use `current` before a new key.
    frags_left: u64,
}

/// The segment being written.
#[derive(Debug)]
struct OpenSegment {
    seq: u64,
    path: PathBuf,
    part: PathBuf,
    uri: String,
    start_out: u64,
    start_src: i64,
    end_out: u64,
    discontinuity: bool,
    independent: bool,
    program_date_ms: u64,
    key: Option<(KeyTag, PathBuf)>,
    cipher: Option<CbcEncryptor>,
    /// Muxed bytes not yet appended (plain text).
    buf: Vec<u8>,
    bytes: u64,
    frames: u64,
    video_frames: u64,
}

/// A segment cut at a keyframe but not yet committed. Publishers interleave loosely: audio
/// that plays just before a keyframe often arrives after it. Written into the new segment, it
/// would start that segment ~100 ms before its video, a hole players seek over (hls.js:
/// `bufferSeekOverHole`); so it goes into this segment until audio reaches the cut or video
/// runs [`MAX_AUDIO_LEAD_MS`] past it. The TS continuity counters stay in order because audio
/// only ever moves from this segment to the next.
struct Closing {
    seg: OpenSegment,
    end_out: u64,
    /// False once the new segment got audio: later audio can no longer come here.
    accepts_audio: bool,
}

/// What an operation handed to the IO ring is to this stream (see [`Journal`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    /// A directory for segments or keys.
    Dir,
    /// An operation on the file of segment `seq` (its media sequence number).
    Segment(u64),
    /// The media playlist: when lost, the one on disk still lists what the stream dropped.
    Playlist,
    /// The master playlist, keys, deletions, aborts: nothing to undo when lost.
    Other,
}

/// Hands `op` to the IO ring through `ops`, journalled with its effect.
fn emit(journal: &mut Journal<Effect>, ops: &mut Vec<FileOp>, op: FileOp, effect: Effect) {
    journal.record(&op, effect);
    ops.push(op);
}

/// The HLS output of one published stream. See the module docs.
pub struct HlsStream {
    settings: HlsSettings,
    app: String,
    name: String,
    /// False for a name that cannot be a file name or an empty `hls_path`: nothing is written.
    valid: bool,
    layout: Layout,
    /// Master playlist path and the suffix of this stream's `hls_variant` entry.
    variant: Option<(PathBuf, String)>,
    last_master: Option<String>,
    /// Measured attributes of the other variants of the same base name (from their streams).
    siblings: HashMap<String, VariantInfo>,

    cut: CutPolicy,
    timeline: Timeline,
    avc: Option<AvcConfig>,
    sps: Option<SpsInfo>,
    aac: Option<AacConfig>,
    /// Audio kind seen (AAC sequence header or MP3 frame).
    audio_kind: Option<TsAudio>,
    /// Audio kind announced by onMetaData before any frame (MP3 has no sequence header).
    audio_hint: Option<TsAudio>,
    meta_frame_rate: Option<f64>,
    muxer: Option<TsMuxer>,
    /// What the IO ring has not yet reported performed (failure recovery).
    journal: Journal<Effect>,

    cur: Option<OpenSegment>,
    /// The segment just cut at a keyframe, kept open for audio that arrives after the keyframe
    /// but plays before it (see [`Closing`]).
    closing: Option<Closing>,
    pending_discontinuity: bool,
    /// `hls_continuous off` after a restart: the next commit replaces the listed segments.
    drop_listed_on_commit: bool,
    last_video_out: Option<u64>,
    video_step_ms: u64,
    /// `aligned` slicing: the period of the first keyframe seen before the first segment.
    aligned_first_period: Option<i64>,

    abuf: Vec<u8>,
    abuf_pts: u64,
    /// (pts, end offset in `abuf`) of each buffered audio frame, so a cut can split them.
    abuf_frames: Vec<(u64, usize)>,
    aframe_base: u64,
    aframe_num: u64,
    /// Duration of the last audio frame (90 kHz): a frame that straddles a cut goes after it.
    aframe_dur: u64,

    segments: VecDeque<Segment>,
    discontinuity_sequence: u64,
    next_seq: u64,
    last_id: Option<u64>,
    dirs_created: bool,
    keys: Option<KeyState>,
    pdt_anchor: Option<(u64, u64)>,

    retention: Retention,
    finished: bool,
    /// Operations produced where no `ops` was at hand (`restart`), emitted at the next call.
    queued: Vec<FileOp>,
}

impl std::fmt::Debug for HlsStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HlsStream")
            .field("app", &self.app)
            .field("name", &self.name)
            .field("listed", &self.segments.len())
            .field("next_seq", &self.next_seq)
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl HlsStream {
    /// A publisher started `name` in application `app`. `previous_playlist`: the stream's
    /// media playlist found on disk; with `hls_continuous` its numbering goes on and its
    /// segments stay listed, followed by a discontinuity. `random` seeds the key generator.
    pub fn new(
        settings: &HlsSettings,
        app: &str,
        name: &str,
        previous_playlist: Option<&str>,
        random: &mut dyn FnMut(&mut [u8]),
    ) -> Self {
        let valid = is_valid_name(name) && !settings.path.is_empty();
        let layout = Layout::new(settings, name);
        let variant = settings
            .variants
            .iter()
            .find(|v| name.len() > v.suffix.len() && name.ends_with(v.suffix.as_str()))
            .map(|v| {
                let base = &name[..name.len() - v.suffix.len()];
                (
                    PathBuf::from(&settings.path).join(format!("{base}.m3u8")),
                    v.suffix.clone(),
                )
            });
        let muxdelay = settings.muxdelay_ms.min(1000);
        let start_out = BACKWARD_TOLERANCE_MS as u64 + muxdelay;
        let boundary = match settings.slicing {
            HlsSlicing::Plain => Boundary::Duration,
            HlsSlicing::Aligned => Boundary::Aligned,
        };
        let cut = CutPolicy::new(settings.fragment_ms, settings.max_fragment_ms, boundary);
        let keys = settings.keys.then(|| KeyState {
            generator: KeyGenerator::new(random),
            current: None,
            frags_left: 0,
        });
        let mut s = HlsStream {
            settings: settings.clone(),
            app: app.to_owned(),
            name: name.to_owned(),
            valid,
            layout,
            variant,
            last_master: None,
            siblings: HashMap::new(),
            cut,
            timeline: Timeline::new(start_out, cut.max_ms()),
            avc: None,
            sps: None,
            aac: None,
            audio_kind: None,
            audio_hint: None,
            meta_frame_rate: None,
            muxer: None,
            journal: Journal::default(),
            cur: None,
            closing: None,
            pending_discontinuity: false,
            drop_listed_on_commit: false,
            last_video_out: None,
            video_step_ms: DEFAULT_VIDEO_STEP_MS,
            aligned_first_period: None,
            abuf: Vec::new(),
            abuf_pts: 0,
            abuf_frames: Vec::new(),
            aframe_base: 0,
            aframe_num: 0,
            aframe_dur: 0,
            segments: VecDeque::new(),
            discontinuity_sequence: 0,
            next_seq: 0,
            last_id: None,
            dirs_created: false,
            keys,
            pdt_anchor: None,
            retention: Retention::new(),
            finished: false,
            queued: Vec::new(),
        };
        if let (true, true, Some(text)) = (valid, settings.continuous, previous_playlist) {
            s.restore(text);
        }
        s
    }

    /// Where the media playlist lives: `<hls_path>/<name>.m3u8`, or
    /// `<hls_path>/<name>/<hls_nested_index_filename>.m3u8` with `hls_nested`.
    pub fn playlist_path(settings: &HlsSettings, name: &str) -> PathBuf {
        let path = PathBuf::from(&settings.path);
        if settings.nested {
            let index = if settings.nested_index_filename.is_empty() {
                "index"
            } else {
                settings.nested_index_filename.as_str()
            };
            path.join(name).join(format!("{index}.m3u8"))
        } else {
            path.join(format!("{name}.m3u8"))
        }
    }

    /// Whether the stream writes anything (its name and `hls_path` are usable).
    pub fn is_valid(&self) -> bool {
        self.valid
    }

    /// Picks up the previous session's playlist (`hls_continuous`).
    fn restore(&mut self, text: &str) {
        let Ok(p) = playlist::parse_media(text) else {
            return;
        };
        let Some(next) = p.media_sequence.checked_add(p.segments.len() as u64) else {
            return;
        };
        for (i, entry) in p.segments.into_iter().enumerate() {
            // Cannot overflow: media_sequence + len was checked above.
            let seq = p.media_sequence + i as u64;
            let id = trailing_number(&entry.uri, ".ts")
                .filter(|id| self.layout.segment_uri(*id) == entry.uri);
            if let Some(id) = id {
                self.last_id = Some(self.last_id.map_or(id, |l| l.max(id)));
            }
            let key_path = entry.key.as_ref().and_then(|k| {
                trailing_number(&k.uri, ".key")
                    .filter(|kid| self.layout.key_uri(*kid) == k.uri)
                    .map(|kid| self.layout.key_file(kid))
            });
            self.segments.push_back(Segment {
                path: id.map(|id| self.layout.segment_path(id)),
                key_path,
                seq,
                entry,
                independent: true,
                bytes: 0,
                video_frames: 0,
            });
        }
        self.discontinuity_sequence = p.discontinuity_sequence;
        self.next_seq = next;
        self.pending_discontinuity = !self.segments.is_empty();
    }

    fn active(&self) -> bool {
        self.valid && !self.finished
    }

    fn deletes_enabled(&self) -> bool {
        self.settings.cleanup && self.settings.hls_type == HlsType::Live
    }

    /// One audio (`video == false`) or video message of the publisher: an FLV tag body and
    /// its RTMP timestamp.
    pub fn on_media(
        &mut self,
        video: bool,
        timestamp: u32,
        tag: &[u8],
        now: Now,
        ops: &mut Vec<FileOp>,
    ) {
        ops.append(&mut self.queued);
        if !self.active() {
            return;
        }
        if video {
            self.on_video(timestamp, tag, now, ops);
        } else {
            self.on_audio(timestamp, tag, now, ops);
        }
    }

    /// The publisher's onMetaData (any AMF0 data message payload): frame rate for the master
    /// playlist, and MP3 announced before its first frame.
    pub fn on_metadata(&mut self, payload: &[u8]) {
        let meta = metadata::parse_metadata(payload);
        if let Some(r) = meta.frame_rate {
            self.meta_frame_rate = Some(r);
        }
        if meta.audio_codec.is_some_and(CodecId::is_mp3) {
            self.audio_hint = Some(TsAudio::Mp3);
        }
    }

    fn desired_tracks(&self) -> TsTracks {
        TsTracks {
            video: self.avc.is_some(),
            audio: self.audio_kind.or(self.audio_hint),
        }
    }

    fn muxer_tracks(&self) -> Option<TsTracks> {
        self.muxer.as_ref().map(TsMuxer::tracks)
    }

    fn on_rebase(&mut self) {
        self.pending_discontinuity = true;
        self.aframe_num = 0;
        self.last_video_out = None;
    }

    fn on_video(&mut self, timestamp: u32, tag: &[u8], now: Now, ops: &mut Vec<FileOp>) {
        let Ok(t) = flv::parse_video(tag) else { return };
        if t.codec.fourcc() != Some(FourCc::AVC1) {
            return;
        }
        if let Some(m) = t.multitrack {
            if m.kind != MultitrackKind::OneTrack || m.first_track_id != 0 {
                return;
            }
        }
        let body = tag.get(t.body_offset..).unwrap_or_default();
        match t.packet {
            VideoPacket::SequenceHeader => {
                if let Ok(cfg) = flv::parse_avc_decoder_config(body) {
                    self.sps = cfg.sps.first().and_then(|s| avc::parse_sps(s));
                    self.avc = Some(cfg);
                }
                return;
            }
            VideoPacket::Frame => {}
            _ => return,
        }
        ANNEXB_SCRATCH.with_borrow_mut(|annexb| {
            let Some(cfg) = self.avc.as_ref() else { return };
            annexb.clear();
            if avc::avcc_to_annexb(body, cfg, annexb).is_ok() {
                self.on_video_frame(&t, timestamp, annexb, now, ops);
            }
            if annexb.capacity() > ANNEXB_SCRATCH_KEPT {
                *annexb = Vec::new();
            }
        });
    }

    /// One frame of video, converted to Annex B.
    fn on_video_frame(
        &mut self,
        t: &flv::VideoTag,
        timestamp: u32,
        annexb: &[u8],
        now: Now,
        ops: &mut Vec<FileOp>,
    ) {
        let key = t.is_keyframe();
        let m = self.timeline.map(Track::Video, timestamp);
        if m.rebased {
            self.on_rebase();
        }
        if let Some(last) = self.last_video_out {
            let step = m.out_ms.saturating_sub(last);
            if (1..=1000).contains(&step) {
                self.video_step_ms = step;
            }
        }
        self.last_video_out = Some(m.out_ms);
        if self
            .closing
            .as_ref()
            .is_some_and(|c| m.out_ms >= c.end_out.saturating_add(MAX_AUDIO_LEAD_MS))
        {
            self.commit_closing(now, ops);
        }

        self.video_cut(m, key, now, ops);

        let delay = self.settings.max_audio_delay_ms.saturating_mul(90);
        let dts = m.out_ms.saturating_mul(90);
        let cts = u64::try_from(t.composition_time_ms.clamp(0, MAX_CTS_MS)).unwrap_or(0);
        let pts = dts.saturating_add(cts * 90);
        if !self.muxer_tracks().is_some_and(|t| t.video) || self.cur.is_none() {
            return;
        }
        if !self.abuf.is_empty() && dts >= self.abuf_pts.saturating_add(delay) {
            // Audio ahead of this frame waits: it may belong after the next keyframe.
            self.flush_audio_before(dts.saturating_add(1));
        }
        let (Some(cur), Some(muxer)) = (self.cur.as_mut(), self.muxer.as_mut()) else {
            return;
        };
        muxer.write_video(pts, dts, key, annexb, &mut cur.buf);
        cur.frames += 1;
        cur.video_frames += 1;
        cur.end_out = cur.end_out.max(m.out_ms + self.video_step_ms);
        self.append_ready(ops);
    }

    /// `aligned`: whether the first segment may start at `src_ms` (see [`CutPolicy::may_start`]).
    fn aligned_ready(&mut self, src_ms: i64) -> bool {
        self.cut.may_start(&mut self.aligned_first_period, src_ms)
    }

    /// The open segment as the cut policy sees it at `m`. TS segments are streamed out in
    /// appends, so they are never full.
    fn so_far(cur: &OpenSegment, m: Mapped) -> SegmentSoFar {
        SegmentSoFar {
            length_ms: m.out_ms.saturating_sub(cur.start_out),
            start_src_ms: cur.start_src,
            independent: cur.independent,
            full: false,
        }
    }

    fn video_cut(&mut self, m: Mapped, key: bool, now: Now, ops: &mut Vec<FileOp>) {
        let Some(cur) = self.cur.as_ref() else {
            if key && self.aligned_ready(m.src_ms) {
                self.open_segment(now, m, true, ops);
            }
            return;
        };
        let tracks_changed = self.muxer_tracks() != Some(self.desired_tracks());
        let has_video = self.muxer_tracks().is_some_and(|t| t.video);
        let restart = self.pending_discontinuity || tracks_changed;
        // A forced cut needs a video track in the muxer (else the keyframe brings it in).
        let cut = match self
            .cut
            .video(&Self::so_far(cur, m), m.src_ms, key, restart)
        {
            Decision::Keep => false,
            Decision::AtKeyframe => true,
            Decision::Forced => has_video,
        };
        if cut {
            let has_audio = self.muxer_tracks().is_some_and(|t| t.audio.is_some());
            if key && has_audio && !self.pending_discontinuity && !tracks_changed {
                self.defer_close(now, m.out_ms, ops);
            } else {
                self.close_segment(now, m.out_ms, false, ops);
            }
            self.open_segment(now, m, key, ops);
        }
    }

    /// Cuts the open segment at `end_out` and keeps it as [`Closing`] for late audio.
    fn defer_close(&mut self, now: Now, end_out: u64, ops: &mut Vec<FileOp>) {
        self.commit_closing(now, ops);
        self.flush_audio_before(self.audio_cut_point(end_out));
        if let Some(seg) = self.cur.take() {
            self.next_seq = seg.seq.saturating_add(1);
            self.closing = Some(Closing {
                seg,
                end_out,
                accepts_audio: true,
            });
        }
    }

    /// Commits the segment waiting for late audio, if any.
    fn commit_closing(&mut self, now: Now, ops: &mut Vec<FileOp>) {
        if let Some(c) = self.closing.take() {
            self.commit_segment(c.seg, now, c.end_out, false, ops);
        }
    }

    /// Late audio (ending by the last cut) goes into the closing segment; audio after it,
    /// or video well past it, commits that segment. Returns whether `pts` was taken.
    fn late_audio(&mut self, pts: u64, frame: &[&[u8]], now: Now, ops: &mut Vec<FileOp>) -> bool {
        let Some(end_out) = self.closing.as_ref().map(|c| c.end_out) else {
            return false;
        };
        let cut = self.audio_cut_point(end_out);
        let Some(c) = self.closing.as_mut() else {
            return false;
        };
        if !c.accepts_audio || pts >= cut {
            self.commit_closing(now, ops);
            return false;
        }
        let Some(muxer) = self.muxer.as_mut() else {
            return false;
        };
        let data = frame.concat();
        muxer.write_audio(pts, &data, &mut c.seg.buf);
        c.seg.frames += 1;
        true
    }

    fn audio_cut(&mut self, m: Mapped, now: Now, ops: &mut Vec<FileOp>) {
        let video_mode = self.avc.is_some() || self.muxer_tracks().is_some_and(|t| t.video);
        let Some(cur) = self.cur.as_ref() else {
            if !video_mode && self.aligned_ready(m.src_ms) {
                self.open_segment(now, m, true, ops);
            }
            return;
        };
        let seg = Self::so_far(cur, m);
        let cut = if video_mode {
            self.cut.forced(&seg)
        } else {
            let restart =
                self.pending_discontinuity || self.muxer_tracks() != Some(self.desired_tracks());
            self.cut.audio_only(&seg, m.src_ms, restart)
        };
        if cut {
            self.close_segment(now, m.out_ms, false, ops);
            // An audio frame starts a video stream's segment only on a forced cut.
            self.open_segment(now, m, !video_mode, ops);
        }
    }

    fn on_audio(&mut self, timestamp: u32, tag: &[u8], now: Now, ops: &mut Vec<FileOp>) {
        let Ok(t) = flv::parse_audio(tag) else { return };
        if let Some(m) = t.multitrack {
            if m.kind != MultitrackKind::OneTrack || m.first_track_id != 0 {
                return;
            }
        }
        let kind = match t.codec.fourcc() {
            Some(FourCc::MP4A) => TsAudio::Aac,
            Some(FourCc::MP3) => TsAudio::Mp3,
            _ => return,
        };
        let body = tag.get(t.body_offset..).unwrap_or_default();
        match (kind, t.packet) {
            (TsAudio::Aac, AudioPacket::SequenceHeader) => {
                self.aac = flv::parse_audio_specific_config(body)
                    .ok()
                    .filter(|c| avc::adts_header(c, 0).is_some() && c.sample_rate > 0);
                if self.aac.is_some() {
                    self.audio_kind = Some(TsAudio::Aac);
                }
                return;
            }
            (_, AudioPacket::Frame) => {}
            _ => return,
        }
        if body.is_empty() || body.len() > MAX_AUDIO_FRAME {
            return;
        }
        let (header, rate, samples) = match kind {
            TsAudio::Aac => {
                let Some(cfg) = self.aac.as_ref() else { return };
                let Some(h) = avc::adts_header(cfg, body.len()) else {
                    return;
                };
                (Some(h), u64::from(cfg.sample_rate), AAC_FRAME_SAMPLES)
            }
            TsAudio::Mp3 => {
                self.audio_kind = Some(TsAudio::Mp3);
                let rate = t.legacy.map_or(44_100, |l| l.sample_rate);
                (None, u64::from(rate.max(1)), MP3_FRAME_SAMPLES)
            }
        };
        let m = self.timeline.map(Track::Audio, timestamp);
        if m.rebased {
            self.on_rebase();
        }
        self.audio_cut(m, now, ops);
        if self.cur.is_none() || self.muxer_tracks().and_then(|t| t.audio) != Some(kind) {
            return;
        }

        // hls_sync: snap AAC timestamps (1 ms RTMP resolution) to the sample clock.
        let mut pts = m.out_ms.saturating_mul(90);
        let sync = self.settings.sync_ms.saturating_mul(90);
        if kind == TsAudio::Aac && sync > 0 {
            let est = self.aframe_base.saturating_add(
                u64::try_from(
                    u128::from(self.aframe_num) * u128::from(samples) * 90_000 / u128::from(rate),
                )
                .unwrap_or(u64::MAX),
            );
            if self.aframe_num > 0 && est.abs_diff(pts) <= sync {
                pts = est;
            } else {
                self.aframe_base = pts;
                self.aframe_num = 0;
            }
            self.aframe_num += 1;
        }

        self.aframe_dur = samples * 90_000 / rate;
        let adts: &[u8] = header.as_ref().map_or(&[], |h| &h[..]);
        if self.late_audio(pts, &[adts, body], now, ops) {
            return;
        }

        let frame_len = body.len() + header.map_or(0, |h| h.len());
        let cap = usize::try_from(self.settings.audio_buffer_size)
            .unwrap_or(MAX_AUDIO_BUFFER)
            .clamp(MIN_AUDIO_BUFFER, MAX_AUDIO_BUFFER);
        let delay = self.settings.max_audio_delay_ms.saturating_mul(90);
        if !self.abuf.is_empty() {
            if pts < self.abuf_pts || self.abuf.len() + frame_len > cap {
                self.flush_audio();
            } else if pts >= self.abuf_pts.saturating_add(delay) {
                // With video, audio that runs ahead of it stays buffered (bounded by `cap`)
                // until video catches up, so a keyframe cut can still move it to its segment.
                match self.last_video_out {
                    Some(v) => {
                        // Bounded: if video stalls, audio more than a second ahead goes out.
                        let lead_limit = pts.saturating_sub(MAX_AUDIO_LEAD_MS * 90);
                        let video_limit = v.saturating_mul(90).saturating_add(1);
                        self.flush_audio_before(video_limit.max(lead_limit));
                    }
                    None => self.flush_audio(),
                }
            }
        }
        if self.abuf.is_empty() {
            self.abuf_pts = pts;
        }
        if let Some(h) = header {
            self.abuf.extend_from_slice(&h);
        }
        self.abuf.extend_from_slice(body);
        self.abuf_frames.push((pts, self.abuf.len()));
        if let Some(cur) = self.cur.as_mut() {
            cur.frames += 1;
            let dur = samples * 1000 / rate;
            cur.end_out = cur.end_out.max(m.out_ms + dur.max(1));
        }
        if delay == 0 {
            self.flush_audio();
        }
        self.append_ready(ops);
    }

    /// Writes the buffered audio as one PES into the open segment.
    fn flush_audio(&mut self) {
        if self.abuf.is_empty() {
            return;
        }
        if let (Some(cur), Some(muxer)) = (self.cur.as_mut(), self.muxer.as_mut()) {
            muxer.write_audio(self.abuf_pts, &self.abuf, &mut cur.buf);
            if let Some(c) = self.closing.as_mut() {
                c.accepts_audio = false;
            }
        }
        self.abuf.clear();
        self.abuf_frames.clear();
    }

    /// Audio frames starting at or after this point (90 kHz) go into the segment that starts at
    /// `cut_ms`: those that end after the cut, so each segment's audio starts with its video,
    /// never after it (a start hole players stall on).
    fn audio_cut_point(&self, cut_ms: u64) -> u64 {
        cut_ms
            .saturating_mul(90)
            .saturating_sub(self.aframe_dur)
            .saturating_add(1)
    }

    /// Writes the buffered audio frames that start before `cut` (90 kHz) into the open segment
    /// and keeps the rest for the next one. Publishers often send audio ahead of the video it
    /// goes with: without the split, audio just after a keyframe would land in the segment
    /// before it, and the new segment would start with a hole in its audio (players seek over
    /// it, hls.js reports `bufferSeekOverHole`).
    fn flush_audio_before(&mut self, cut: u64) {
        let Some(split) = self.abuf_frames.iter().position(|&(pts, _)| pts >= cut) else {
            self.flush_audio();
            return;
        };
        // Nothing before the cut when the first frame is already after it.
        let Some(&(_, at)) = split.checked_sub(1).and_then(|i| self.abuf_frames.get(i)) else {
            return;
        };
        let rest = self.abuf.split_off(at);
        let rest_frames: Vec<(u64, usize)> = self
            .abuf_frames
            .drain(split..)
            .map(|(pts, end)| (pts, end - at))
            .collect();
        self.flush_audio();
        // `split` found a frame, so `rest_frames` starts with it.
        if let Some(&(pts, _)) = rest_frames.first() {
            self.abuf_pts = pts;
        }
        self.abuf = rest;
        self.abuf_frames = rest_frames;
    }

    /// Hands whole chunks of the open segment to the IO ring (encrypted when keyed).
    fn append_ready(&mut self, ops: &mut Vec<FileOp>) {
        let Some(cur) = self.cur.as_mut() else { return };
        if cur.buf.len() < APPEND_CHUNK_BYTES {
            return;
        }
        let n = if cur.cipher.is_some() {
            cur.buf.len() / BLOCK * BLOCK
        } else {
            cur.buf.len()
        };
        let mut rest = Vec::with_capacity(APPEND_CHUNK_BYTES + 4096);
        rest.extend_from_slice(cur.buf.get(n..).unwrap_or_default());
        let mut chunk = std::mem::replace(&mut cur.buf, rest);
        chunk.truncate(n);
        if let Some(c) = cur.cipher.as_mut() {
            c.encrypt_blocks(&mut chunk);
        }
        cur.bytes += chunk.len() as u64;
        let op = FileOp::Append {
            path: cur.part.clone(),
            data: Bytes::from(chunk),
        };
        emit(&mut self.journal, ops, op, Effect::Segment(cur.seq));
    }

    /// Fragment file id for a new segment (naming, granularity, never repeating).
    fn fragment_id(&self, seq: u64, src_ms: i64, now: Now) -> u64 {
        let raw = match self.settings.naming {
            HlsNaming::Sequential => seq,
            HlsNaming::Timestamp => u64::try_from(src_ms.max(0)).unwrap_or(0).saturating_mul(90),
            HlsNaming::System => now.unix_ms,
        };
        let g = self.settings.naming_granularity;
        let id = raw.checked_div(g).map_or(raw, |q| q * g);
        match self.last_id {
            Some(last) if id <= last => last.saturating_add(1),
            _ => id,
        }
    }

    /// `#EXT-X-PROGRAM-DATE-TIME` of a segment starting at `m`.
    fn program_date(&mut self, m: Mapped, now: Now) -> u64 {
        if self.settings.datetime == HlsDatetime::Timestamp {
            const SPAN: i128 = 1 << 32;
            let now_ms = i128::from(now.unix_ms);
            let low = i128::from(m.src_ms).rem_euclid(SPAN);
            let base = now_ms - now_ms.rem_euclid(SPAN) + low;
            let best = [base - SPAN, base, base + SPAN]
                .into_iter()
                .filter(|c| *c >= 0)
                .min_by_key(|c| (c - now_ms).abs())
                .unwrap_or(0);
            return u64::try_from(best).unwrap_or(0);
        }
        let est = self
            .pdt_anchor
            .map(|(out, unix)| unix.saturating_add(m.out_ms.saturating_sub(out)));
        match est {
            Some(e)
                if m.out_ms >= self.pdt_anchor.map_or(0, |a| a.0)
                    && e.abs_diff(now.unix_ms) <= PDT_MAX_DRIFT_MS =>
            {
                e
            }
            _ => {
                self.pdt_anchor = Some((m.out_ms, now.unix_ms));
                now.unix_ms
            }
        }
    }

    fn open_segment(&mut self, now: Now, m: Mapped, independent: bool, ops: &mut Vec<FileOp>) {
        let tracks = self.desired_tracks();
        if !tracks.video && tracks.audio.is_none() {
            return;
        }
        let muxdelay = self.settings.muxdelay_ms.min(1000).saturating_mul(90);
        let muxer = self.muxer.get_or_insert_with(|| {
            let mut mx = TsMuxer::new(tracks);
            mx.set_pcr_delay(muxdelay);
            mx
        });
        let retracked = muxer.tracks() != tracks;
        muxer.set_tracks(tracks);

        let discontinuity = (self.pending_discontinuity || retracked)
            && !self.segments.is_empty()
            && !self.drop_listed_on_commit;
        self.pending_discontinuity = false;

        if !self.dirs_created {
            self.dirs_created = true;
            let op = FileOp::CreateDir {
                path: self.layout.dir.clone(),
            };
            emit(&mut self.journal, ops, op, Effect::Dir);
            if self.keys.is_some() && self.layout.key_dir != self.layout.dir {
                let op = FileOp::CreateDir {
                    path: self.layout.key_dir.clone(),
                };
                emit(&mut self.journal, ops, op, Effect::Dir);
            }
        }

        let seq = self.next_seq;
        let id = self.fragment_id(seq, m.src_ms, now);
        self.last_id = Some(id);
        let path = self.layout.segment_path(id);
        let mut part = path.clone().into_os_string();
        part.push(PART_SUFFIX);
        let part = PathBuf::from(part);

        let mut key = None;
        let mut cipher = None;
        if let Some(ks) = self.keys.as_mut() {
            let per_key = self.settings.fragments_per_key;
            let current = match ks.current.take() {
                Some(c) if ks.frags_left > 0 => {
                    if per_key > 0 {
                        ks.frags_left -= 1;
                    }
                    c
                }
                _ => {
                    let k = ks.generator.next_key();
                    let c = CurrentKey {
                        key: k,
                        uri: self.layout.key_uri(seq),
                        path: self.layout.key_file(seq),
                    };
                    let op = FileOp::WriteAtomic {
                        path: c.path.clone(),
                        data: Bytes::copy_from_slice(&k),
                    };
                    emit(&mut self.journal, ops, op, Effect::Other);
                    ks.frags_left = if per_key == 0 { u64::MAX } else { per_key - 1 };
                    c
                }
            };
            let iv = u128::from(seq);
            cipher = Some(CbcEncryptor::new(&current.key, iv));
            key = Some((
                KeyTag {
                    uri: current.uri.clone(),
                    iv: Some(iv),
                },
                current.path.clone(),
            ));
            ks.current = Some(current);
        }

        let program_date_ms = self.program_date(m, now);
        let op = FileOp::Open { path: part.clone() };
        emit(&mut self.journal, ops, op, Effect::Segment(seq));
        let mut buf = Vec::with_capacity(APPEND_CHUNK_BYTES + 4096);
        if let Some(mx) = self.muxer.as_mut() {
            mx.write_tables(&mut buf);
        }
        self.cur = Some(OpenSegment {
            seq,
            uri: self.layout.segment_uri(id),
            path,
            part,
            start_out: m.out_ms,
            start_src: m.src_ms,
            end_out: m.out_ms,
            discontinuity,
            independent,
            program_date_ms,
            key,
            cipher,
            buf,
            bytes: 0,
            frames: 0,
            video_frames: 0,
        });
    }

    /// Closes the open segment at `end_out` (commit, list, trim, playlists). Returns whether
    /// the playlist was written.
    fn close_segment(
        &mut self,
        now: Now,
        end_out: u64,
        ended: bool,
        ops: &mut Vec<FileOp>,
    ) -> bool {
        self.commit_closing(now, ops);
        if ended {
            self.flush_audio();
        } else {
            let cut = if self.muxer_tracks().is_some_and(|t| t.video) {
                self.audio_cut_point(end_out)
            } else {
                end_out.saturating_mul(90)
            };
            self.flush_audio_before(cut);
        }
        let Some(cur) = self.cur.take() else {
            return false;
        };
        self.commit_segment(cur, now, end_out, ended, ops)
    }

    /// Finishes a detached segment: its file is committed and listed, the playlists written.
    fn commit_segment(
        &mut self,
        mut cur: OpenSegment,
        now: Now,
        end_out: u64,
        ended: bool,
        ops: &mut Vec<FileOp>,
    ) -> bool {
        if cur.frames == 0 {
            let op = FileOp::Abort { path: cur.part };
            emit(&mut self.journal, ops, op, Effect::Other);
            return false;
        }
        let mut tail = std::mem::take(&mut cur.buf);
        if let Some(c) = cur.cipher.as_mut() {
            c.finish(&mut tail);
        }
        cur.bytes += tail.len() as u64;
        if !tail.is_empty() {
            let op = FileOp::Append {
                path: cur.part.clone(),
                data: Bytes::from(tail),
            };
            emit(&mut self.journal, ops, op, Effect::Segment(cur.seq));
        }
        let op = FileOp::Commit {
            path: cur.part,
            to: cur.path.clone(),
        };
        emit(&mut self.journal, ops, op, Effect::Segment(cur.seq));
        if std::mem::take(&mut self.drop_listed_on_commit) {
            let grace = self.grace_ms();
            while let Some(old) = self.segments.pop_front() {
                if old.entry.discontinuity {
                    self.discontinuity_sequence = self.discontinuity_sequence.saturating_add(1);
                }
                self.schedule_delete(old, now.mono_ms.saturating_add(grace));
            }
        }
        let (key, key_path) = match cur.key {
            Some((tag, path)) => (Some(tag), Some(path)),
            None => (None, None),
        };
        self.segments.push_back(Segment {
            entry: SegmentEntry {
                uri: cur.uri,
                duration_ms: end_out.saturating_sub(cur.start_out),
                discontinuity: cur.discontinuity,
                program_date_ms: Some(cur.program_date_ms),
                key,
            },
            seq: cur.seq,
            path: Some(cur.path),
            key_path,
            independent: cur.independent,
            bytes: cur.bytes,
            video_frames: cur.video_frames,
        });
        self.next_seq = self.next_seq.max(cur.seq.saturating_add(1));
        self.trim_window(now);
        self.write_playlist(ended, now, ops);
        self.write_master(ops);
        true
    }

    fn target_ms(&self) -> u64 {
        playlist::target_duration(self.segments.iter().map(|s| &s.entry)) * 1000
    }

    fn listed_ms(&self) -> u64 {
        self.segments.iter().map(|s| s.entry.duration_ms).sum()
    }

    /// How long a segment that left the playlist stays on disk (see [`Grace`] for the HLS
    /// measures).
    fn grace_ms(&self) -> u64 {
        retention::grace_ms(Grace {
            window_ms: self.settings.playlist_length_ms,
            longest_ms: self.target_ms(),
            listed_ms: self.listed_ms(),
            refresh_ms: 0,
        })
    }

    /// Drops segments beyond the window (live only) and schedules their deletion.
    fn trim_window(&mut self, now: Now) {
        if self.settings.hls_type == HlsType::Event {
            return;
        }
        let winfrags = self
            .settings
            .playlist_length_ms
            .checked_div(self.settings.fragment_ms)
            .unwrap_or(u64::MAX)
            .max(1);
        let grace = self.grace_ms();
        loop {
            if (self.segments.len() as u64) <= winfrags {
                break;
            }
            let min_ms = self.target_ms().saturating_mul(3);
            let front = self.segments.front().map_or(0, |s| s.entry.duration_ms);
            if self.listed_ms().saturating_sub(front) < min_ms {
                break;
            }
            let Some(old) = self.segments.pop_front() else {
                break;
            };
            if old.entry.discontinuity {
                self.discontinuity_sequence = self.discontinuity_sequence.saturating_add(1);
            }
            self.schedule_delete(old, now.mono_ms.saturating_add(grace));
        }
    }

    fn key_in_use(&self, path: &Path) -> bool {
        self.segments
            .iter()
            .any(|s| s.key_path.as_deref() == Some(path))
            || self
                .cur
                .iter()
                .chain(self.closing.as_ref().map(|c| &c.seg))
                .any(|c| c.key.as_ref().is_some_and(|k| k.1 == path))
            || self
                .keys
                .as_ref()
                .and_then(|k| k.current.as_ref())
                .is_some_and(|c| c.path == path)
    }

    fn schedule_delete(&mut self, seg: Segment, due_ms: u64) {
        if !self.deletes_enabled() {
            return;
        }
        if let Some(path) = seg.path {
            self.retention.schedule(due_ms, path);
        }
        if let Some(k) = seg.key_path {
            if !self.key_in_use(&k) {
                self.retention.schedule(due_ms, k);
            }
        }
    }

    fn write_playlist(&mut self, ended: bool, now: Now, ops: &mut Vec<FileOp>) {
        let header = MediaHeader {
            media_sequence: self.segments.front().map_or(self.next_seq, |s| s.seq),
            discontinuity_sequence: self.discontinuity_sequence,
            event: self.settings.hls_type == HlsType::Event,
            independent_segments: self.segments.iter().all(|s| s.independent),
            ended,
        };
        let text = playlist::render_media(&header, self.segments.iter().map(|s| &s.entry));
        let op = FileOp::WriteAtomic {
            path: self.layout.playlist.clone(),
            data: Bytes::from(text),
        };
        emit(&mut self.journal, ops, op, Effect::Playlist);
        self.retention
            .manifest_written(now.mono_ms.saturating_add(self.grace_ms()));
    }

    /// What this stream measured about itself (for the master playlist).
    pub fn variant_info(&self) -> VariantInfo {
        let tracks = self.muxer_tracks().unwrap_or(TsTracks {
            video: false,
            audio: None,
        });
        let bandwidth = self
            .segments
            .iter()
            .filter(|s| s.bytes > 0 && s.entry.duration_ms > 0)
            .map(|s| s.bytes.saturating_mul(8000) / s.entry.duration_ms)
            .max();
        let mut codecs = Vec::new();
        if let (true, Some(cfg)) = (tracks.video, self.avc.as_ref()) {
            codecs.push(avc::avc_codec_string(cfg));
        }
        match (tracks.audio, self.aac.as_ref()) {
            (Some(TsAudio::Aac), Some(cfg)) => codecs.push(avc::aac_codec_string(cfg)),
            (Some(TsAudio::Mp3), _) => codecs.push(avc::mp3_codec_string().to_owned()),
            _ => {}
        }
        let (frames, ms) = self
            .segments
            .iter()
            .filter(|s| s.video_frames > 0)
            .fold((0u64, 0u64), |(f, d), s| {
                (f + s.video_frames, d + s.entry.duration_ms)
            });
        let measured =
            (ms > 0).then(|| (frames as f64 * 1000.0 / ms as f64 * 1000.0).round() / 1000.0);
        let video = tracks.video;
        VariantInfo {
            bandwidth,
            resolution: self.sps.filter(|_| video).map(|s| (s.width, s.height)),
            codecs: (!codecs.is_empty()).then(|| codecs.join(",")),
            frame_rate: if video {
                self.sps
                    .and_then(|s| s.frame_rate)
                    .or(self.meta_frame_rate)
                    .or(measured)
            } else {
                None
            },
        }
    }

    fn write_master(&mut self, ops: &mut Vec<FileOp>) {
        let Some((path, own)) = self.variant.as_ref() else {
            return;
        };
        let base = &self.name[..self.name.len().saturating_sub(own.len())];
        let info = self.variant_info();
        let index = if self.settings.nested_index_filename.is_empty() {
            "index"
        } else {
            self.settings.nested_index_filename.as_str()
        };
        let entries: Vec<VariantEntry> = self
            .settings
            .variants
            .iter()
            .map(|v| {
                let stem = format!("{base}{}", v.suffix);
                let mut uri = if self.settings.base_url.is_empty() {
                    uri_escape(basename(&stem))
                } else {
                    format!("{}{}", self.settings.base_url, uri_escape(&stem))
                };
                if self.settings.nested {
                    uri.push('/');
                    uri.push_str(&uri_escape(index));
                }
                uri.push_str(".m3u8");
                let attrs = if v.suffix == *own {
                    playlist::fill_variant_attrs(&v.attrs, &info)
                } else if let Some(sibling) = self.siblings.get(&v.suffix) {
                    playlist::fill_variant_attrs(&v.attrs, sibling)
                } else {
                    v.attrs.clone()
                };
                VariantEntry { attrs, uri }
            })
            .collect();
        let text = playlist::render_master(&entries);
        if self.last_master.as_deref() != Some(text.as_str()) {
            let op = FileOp::WriteAtomic {
                path: path.clone(),
                data: Bytes::from(text.clone()),
            };
            emit(&mut self.journal, ops, op, Effect::Other);
            self.last_master = Some(text);
        }
    }

    /// `(base name, suffix)` when this stream is one variant of a master playlist.
    pub fn variant_of(&self) -> Option<(&str, &str)> {
        let (_, own) = self.variant.as_ref()?;
        let base = &self.name[..self.name.len().saturating_sub(own.len())];
        Some((base, own.as_str()))
    }

    /// What another variant of the same master measured, for its entry in the master
    /// playlist this stream writes.
    pub fn set_sibling_info(&mut self, suffix: &str, info: VariantInfo) {
        self.siblings.insert(suffix.to_string(), info);
    }

    /// The publisher left: the open segment is committed and the playlist gets
    /// `#EXT-X-ENDLIST`. With cleanup, the playlist and its files go after
    /// [`retention::FINAL_CLEANUP_FACTOR`] playlist lengths (see `on_tick`).
    pub fn finish(&mut self, now: Now, ops: &mut Vec<FileOp>) {
        ops.append(&mut self.queued);
        if !self.active() {
            self.finished = true;
            return;
        }
        self.finished = true;
        let end = self.cur.as_ref().map_or(0, |c| c.end_out);
        let written = self.close_segment(now, end, true, ops);
        if !written && !self.segments.is_empty() {
            self.write_playlist(true, now, ops);
        }
        if self.deletes_enabled() && !self.segments.is_empty() {
            let wait = retention::final_wait_ms(self.settings.playlist_length_ms, self.grace_ms());
            self.retention
                .set_final(Some(now.mono_ms.saturating_add(wait)));
        }
    }

    /// A republish of the same name in this worker: numbering goes on, the next segment
    /// carries `#EXT-X-DISCONTINUITY`, and the playlist loses `#EXT-X-ENDLIST` (rewritten at
    /// the next call that takes `ops`). With `hls_continuous off` the old segments leave the
    /// playlist when the first new one is listed.
    pub fn restart(&mut self, now: Now, random: &mut dyn FnMut(&mut [u8])) {
        if !self.valid {
            return;
        }
        if !self.finished {
            let mut q = Vec::new();
            self.finish(now, &mut q);
            self.queued.extend(q);
        }
        self.finished = false;
        self.retention.set_final(None);
        self.timeline.reset();
        self.avc = None;
        self.sps = None;
        self.aac = None;
        self.audio_kind = None;
        self.audio_hint = None;
        self.meta_frame_rate = None;
        self.abuf.clear();
        self.abuf_frames.clear();
        self.aframe_num = 0;
        self.last_video_out = None;
        self.aligned_first_period = None;
        self.pdt_anchor = None;
        self.pending_discontinuity = true;
        if self.settings.keys {
            self.keys = Some(KeyState {
                generator: KeyGenerator::new(random),
                current: None,
                frags_left: 0,
            });
        }
        if self.settings.continuous {
            if !self.segments.is_empty() {
                let mut q = Vec::new();
                self.write_playlist(false, now, &mut q);
                self.queued.extend(q);
            }
        } else {
            self.drop_listed_on_commit = !self.segments.is_empty();
        }
    }

    /// The IO ring performed the next `ops` operations.
    pub fn on_written(&mut self, ops: usize) {
        self.journal.written(ops, |_, _| false);
    }

    /// The IO ring could not perform the operation on `path` (disk full, permissions) and
    /// lost all after it, so the playlist on disk still lists only what existed before. A
    /// segment being written is abandoned; a segment whose final rename failed is unlisted;
    /// either way the next listed segment follows a gap, so it gets a discontinuity. A lost
    /// playlist holds deletions until one is written again.
    pub fn on_write_failed(&mut self, path: &Path) {
        let Some(lost) = self.journal.failed(path, |_, _| false) else {
            return;
        };
        // The first failed segment's media sequence number goes to the next one: a playlist
        // numbers its entries from EXT-X-MEDIA-SEQUENCE on, so a hole would give every
        // later segment its predecessor's number until the hole leaves the window.
        let mut freed: Option<u64> = None;
        for effect in lost.effects {
            match effect {
                Effect::Dir => self.dirs_created = false,
                Effect::Segment(seq) => {
                    if self.forget_segment(seq) {
                        freed = Some(freed.map_or(seq, |f| f.min(seq)));
                    }
                }
                Effect::Playlist => self.retention.manifest_lost(),
                Effect::Other => {}
            }
        }
        if let Some(seq) = freed {
            self.pending_discontinuity = true;
            self.close_sequence_hole(seq);
        }
    }

    /// Drops segment `seq` from the model, wherever it is (being written, closing, listed);
    /// whether it was there.
    fn forget_segment(&mut self, seq: u64) -> bool {
        if self.closing.as_ref().is_some_and(|c| c.seg.seq == seq) {
            self.closing = None;
        } else if self.cur.as_ref().is_some_and(|c| c.seq == seq) {
            self.cur = None;
            self.abuf.clear();
            self.abuf_frames.clear();
        } else if self.segments.iter().any(|s| s.seq == seq) {
            self.segments.retain(|s| s.seq != seq);
        } else {
            return false;
        }
        true
    }

    /// Numbers again, from the freed number `hole` on, what follows it. Nothing after a
    /// failed operation reached a playlist on disk (what was queued behind it is lost), so
    /// only numbers no player has seen change.
    fn close_sequence_hole(&mut self, hole: u64) {
        let mut next = hole;
        for s in self.segments.iter_mut().filter(|s| s.seq > hole) {
            s.seq = next;
            next += 1;
        }
        if let Some(c) = self.closing.as_mut().filter(|c| c.seg.seq > hole) {
            c.seg.seq = next;
            next += 1;
        }
        if let Some(c) = self.cur.as_mut().filter(|c| c.seq > hole) {
            c.seq = next;
            next += 1;
        }
        self.next_seq = next;
    }

    /// The next time (monotonic ms) `on_tick` has something to do.
    pub fn next_deadline(&self) -> Option<u64> {
        self.retention.next_deadline()
    }

    /// Deferred work: deletions whose grace period ran out, and the final cleanup of an
    /// ended stream (its playlist first, then its segments and keys). Returns when to call
    /// again; `None` when nothing is pending.
    pub fn on_tick(&mut self, now: Now, ops: &mut Vec<FileOp>) -> Option<u64> {
        ops.append(&mut self.queued);
        if self.retention.take_final(now.mono_ms) {
            // Keys go last: after every segment encrypted with them.
            let segments = std::mem::take(&mut self.segments);
            let mut keys: Vec<PathBuf> =
                segments.iter().filter_map(|s| s.key_path.clone()).collect();
            keys.extend(
                self.keys
                    .as_mut()
                    .and_then(|k| k.current.take())
                    .map(|c| c.path),
            );
            let files = segments.into_iter().filter_map(|s| s.path);
            let playlist = self.layout.playlist.clone();
            let deletes = self.retention.final_deletes(playlist, files, keys);
            for path in deletes {
                emit(
                    &mut self.journal,
                    ops,
                    FileOp::Delete { path },
                    Effect::Other,
                );
            }
        }
        for path in self.retention.take_due(now.mono_ms) {
            let listed = self
                .segments
                .iter()
                .any(|s| s.path.as_deref() == Some(path.as_path()))
                || self.cur.as_ref().is_some_and(|c| c.path == path)
                || self.closing.as_ref().is_some_and(|c| c.seg.path == path)
                || self.key_in_use(&path);
            if !listed {
                emit(
                    &mut self.journal,
                    ops,
                    FileOp::Delete { path },
                    Effect::Other,
                );
            }
        }
        self.next_deadline()
    }

    /// True once finished and nothing remains to do.
    pub fn is_done(&self) -> bool {
        self.finished && self.retention.is_idle() && self.queued.is_empty()
    }
}

#[cfg(test)]
#[path = "segmenter_tests.rs"]
mod tests;

impl crate::files::FileOutput for HlsStream {
    fn on_media(
        &mut self,
        video: bool,
        timestamp: u32,
        tag: &Bytes,
        now: Now,
        ops: &mut Vec<FileOp>,
    ) {
        HlsStream::on_media(self, video, timestamp, tag, now, ops);
    }

    fn on_metadata(&mut self, payload: &[u8]) {
        HlsStream::on_metadata(self, payload);
    }

    fn finish(&mut self, now: Now, ops: &mut Vec<FileOp>) {
        HlsStream::finish(self, now, ops);
    }

    fn restart(&mut self, now: Now, random: &mut dyn FnMut(&mut [u8])) {
        HlsStream::restart(self, now, random);
    }

    fn on_tick(&mut self, now: Now, ops: &mut Vec<FileOp>) -> Option<u64> {
        HlsStream::on_tick(self, now, ops)
    }

    fn is_done(&self) -> bool {
        HlsStream::is_done(self)
    }

    fn on_written(&mut self, ops: usize) {
        HlsStream::on_written(self, ops);
    }

    fn on_write_failed(&mut self, path: &Path) {
        HlsStream::on_write_failed(self, path);
    }
}
