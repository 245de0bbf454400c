//! The DASH segmenter of one published stream: cut policy, fMP4 init and media segments, the
//! live MPD, and cleanup. It returns [`FileOp`]s; the IO ring performs them in order, so the
//! order here is the on-disk guarantee:
//!
//! - an init segment is written (`WriteAtomic`) when its Period opens, before any MPD that
//!   names it; a media segment is written under `<final>.part` (`Open`, `Append`) and renamed
//!   (`Commit`) right before the MPD that lists it (`WriteAtomic`), not before: readers that
//!   guess the next URL (ffmpeg's) must not find a segment the MPD does not list yet;
//! - a segment is listed only once it is *available* by the MPD's own clock:
//!   `availabilityStartTime` + its end on the presentation timeline <= the wall clock of the
//!   write. A segment finished early (publisher ahead of the clock) is held back and listed by
//!   a later write ([`DashStream::on_tick`] is asked to run then);
//! - a segment that left the window is deleted only after a grace period
//!   (max(`dash_playlist_length`, 3 × longest listed segment) + `dash_fragment`, see
//!   [`crate::segment::retention`]); init segments stay while a Period using them is listed;
//!   after the stream ends, its MPD stays [`retention::FINAL_CLEANUP_FACTOR`] × that long,
//!   and is deleted *before* the rest.
//!
//! Choices (beyond the C module, see issue 4):
//! - Timeline: RTMP timestamps go through [`crate::segment::timeline`] (32-bit wraps, jumps,
//!   per-track references) and then onto the *presentation timeline*, in ms since
//!   `availabilityStartTime`, which is the wall clock when the first segment started. Media
//!   time equals presentation time (`tfdt` = S@t = presentation time × timescale), so the
//!   files of a stream never repeat a name and a player's clock and the media agree.
//! - Each track uses its codec's timescale (90 kHz video, the sample rate for audio) in
//!   `tfdt`, `trun` and the `SegmentTemplate`, so S@t equals `tfdt` exactly. File names are
//!   `<name>-<t>.m4v|m4a` with `t` = S@t in that timescale (the C module's timescale is
//!   1000, so its `t` is in ms); an audio track whose timescale differs from the first one of
//!   the stream is named `<name>-<t>-<timescale>.m4a` so names never collide.
//! - Cuts ([`crate::segment::cut`], with [`MAX_SEGMENT_FACTOR`] × `dash_fragment` as the
//!   max): at the first video keyframe once `dash_fragment` has passed; audio is cut at the
//!   same instant (the segment waits up to [`MAX_AUDIO_WAIT_MS`] for audio to reach it).
//!   Audio-only streams are cut by duration at any frame. Without a keyframe for
//!   [`MAX_SEGMENT_FACTOR`] × `dash_fragment` (or [`cut::MAX_SEGMENT_BYTES`]) a segment is cut
//!   anyway; the next one does not start with a sync sample, so `startWithSAP` is left out
//!   while it is listed, and it ends at the next keyframe.
//! - Sample times: video durations from the next frame's timestamp; audio frames at 1024
//!   samples (2048 for SBR at the output rate), following the publisher's timestamps only
//!   when they move by more than half a frame (a lost frame): no drift, no 1 ms jitter.
//! - Periods: a new Period starts when the publisher restarts (republish in this worker) or a
//!   track appears or changes its codec configuration (a new init segment, named
//!   `<name>-init-<n>.m4v`; an unchanged one is reused). A restart whose media is behind the
//!   wall clock, or a timestamp jump that left it behind by more than [`RESYNC_THRESHOLD_MS`],
//!   continues the presentation timeline at the wall clock: a gap in the `SegmentTimeline`,
//!   never an overlap, and never a segment announced before it exists. `previous_mpd` (another worker's or an earlier run's) gives the
//!   `availabilityStartTime`, the end of its timeline and its Period ids: the new MPD goes
//!   on after it, and its files are deleted after a grace once the new MPD replaced it.
//! - Unpublish: the MPD becomes `type="static"` with `mediaPresentationDuration`, starting
//!   at its first listed segment.
//! - Codecs: H.264 and AAC (legacy or Enhanced RTMP single-track headers). Others are
//!   skipped: an HEVC+AAC stream is an audio-only DASH stream until `fmp4` learns HEVC. Only
//!   `fmp4`'s `TrackCodec` and `frame_ok` know codecs; the rest
//!   works on [`TrackCodec`] (adding HEVC/AV1 is one arm in each).
//! - Operations are journalled until the IO ring reports them performed (`on_written`): when
//!   it reports a failure, everything from the failed operation on is undone in the model (segments unlisted, init
//!   and directory rewritten, deletions held while the MPD on disk is stale).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::fmp4::{self, audio_codec, video_codec, Sample, TrackCodec};
use super::m3u8;
use super::mpd::{self, ContentType};
use crate::conf::{DashClock, DashSettings, HlsSettings, HlsType};
use crate::files::{FileOp, FileOutput, Now};
use crate::lowlatency::names;
use crate::media::flv::{self, AudioPacket, FourCc, MultitrackKind, VideoPacket};
use crate::media::metadata;
use crate::segment::cut::{self, Boundary, CutPolicy, Decision, SegmentSoFar};
use crate::segment::journal::Journal;
use crate::segment::names::{basename, is_valid_name};
use crate::segment::parts::{self, PartRule};
use crate::segment::retention::{self, Grace, Retention};
use crate::segment::timeline::{Timeline, Track, BACKWARD_TOLERANCE_MS};
use crate::segment::{DEFAULT_VIDEO_STEP_MS, MAX_AUDIO_FRAME, MAX_CTS_MS, PART_SUFFIX};

/// A video segment with no keyframe is cut after this many `dash_fragment`s (DASH's max
/// fragment: it has no `dash_max_fragment` directive).
pub const MAX_SEGMENT_FACTOR: u64 = 10;
/// How long (media ms) a video cut waits for audio to reach it before closing without.
pub const MAX_AUDIO_WAIT_MS: u64 = 1500;
/// Audio frames kept while waiting for the first video keyframe.
pub const MAX_PREROLL_FRAMES: usize = 1024;
/// A gap in audio up to this long (ms) is bridged by the frame before it, not a timeline gap.
pub const MAX_AUDIO_STRETCH_MS: u64 = 1000;
/// At a restart or jump, media further behind the wall clock than this jumps forward to it.
pub const RESYNC_THRESHOLD_MS: u64 = 1000;

/// Track kinds, in MPD order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Video,
    Audio,
}

const V: usize = 0;
const A: usize = 1;

impl Kind {
    /// This kind's entry of a per-kind pair (`[video, audio]`, the order of `V` and `A`).
    fn of<T>(self, pair: &[T; 2]) -> &T {
        let [video, audio] = pair;
        match self {
            Kind::Video => video,
            Kind::Audio => audio,
        }
    }

    /// Mutable [`Kind::of`].
    fn of_mut<T>(self, pair: &mut [T; 2]) -> &mut T {
        let [video, audio] = pair;
        match self {
            Kind::Video => video,
            Kind::Audio => audio,
        }
    }

    fn ext(self) -> &'static str {
        match self {
            Kind::Video => "m4v",
            Kind::Audio => "m4a",
        }
    }

    fn content(self) -> ContentType {
        match self {
            Kind::Video => ContentType::Video,
            Kind::Audio => ContentType::Audio,
        }
    }
}

// ---- the only codec-specific code ----

/// Whether a frame body can be a sample of `codec` (AVC: whole length-prefixed NAL units).
/// A frame's body as a slice of the publisher's buffer (shared, not copied).
/// An LL-HLS part's file name (`t`: its start in the track's timescale), the one the
/// http side (`rtmp_low_latency`) finds its media playlist from.
fn part_file(stem: &str, kind: Kind, t: u64, suffix_ts: Option<u32>) -> String {
    let track = match kind {
        Kind::Video => names::Track::Video,
        Kind::Audio => names::Track::Audio,
    };
    names::part_name(stem, track, t, suffix_ts)
}

fn body_of(tag: &Bytes, offset: usize) -> Bytes {
    if offset <= tag.len() {
        tag.slice(offset..)
    } else {
        Bytes::new()
    }
}

fn frame_ok(codec: &TrackCodec, body: &[u8]) -> bool {
    let nal_length_size = match codec {
        TrackCodec::Avc { config, .. } => Some(config.nal_length_size),
        TrackCodec::Hevc { config, .. } => Some(config.nal_length_size),
        _ => None,
    };
    match nal_length_size {
        Some(size) => {
            let size = usize::from(size);
            if !(1..=4).contains(&size) || body.is_empty() {
                return false;
            }
            let mut pos = 0usize;
            while pos < body.len() {
                let Some(prefix) = body.get(pos..pos.saturating_add(size)) else {
                    return false;
                };
                let len = prefix
                    .iter()
                    .fold(0usize, |a, b| (a << 8) | usize::from(*b));
                pos = match pos.checked_add(size).and_then(|p| p.checked_add(len)) {
                    Some(p) if p <= body.len() => p,
                    _ => return false,
                };
            }
            true
        }
        None if codec.is_video() => !body.is_empty(),
        None => !body.is_empty() && body.len() <= MAX_AUDIO_FRAME,
    }
}

/// The source of a sequence header's codec, with its init segment.
fn source_of(fourcc: Option<FourCc>, codec: Result<TrackCodec, fmp4::Fmp4Error>) -> Option<Source> {
    let codec = codec.ok()?;
    let init = fmp4::init_segment(&codec).ok()?;
    Some(Source {
        fourcc: fourcc?,
        codec,
        init,
    })
}

// ---- layout ----

/// Where a stream's files go and what the MPD calls them (the C module's layout).
#[derive(Debug, Clone)]
struct Layout {
    dir: PathBuf,
    mpd: PathBuf,
    /// File name prefix: `<name>-`, or nothing with `dash_nested`.
    stem: String,
    /// Extension of video media segments: `m4v` (the C module's), `m4s` for HLS, whose
    /// readers check extensions (ffmpeg 5.1 refuses `.m4v` segments in a playlist).
    video_ext: &'static str,
}

impl Layout {
    fn new(settings: &DashSettings, name: &str) -> Self {
        let mpd = DashStream::manifest_path(settings, name);
        let dir = mpd
            .parent()
            .map_or_else(|| PathBuf::from(&settings.path), Path::to_path_buf);
        let stem = if settings.nested {
            String::new()
        } else {
            format!("{}-", basename(name))
        };
        Layout {
            dir,
            mpd,
            stem,
            video_ext: Kind::Video.ext(),
        }
    }

    fn media_ext(&self, kind: Kind) -> &'static str {
        match kind {
            Kind::Video => self.video_ext,
            Kind::Audio => kind.ext(),
        }
    }

    /// `<stem><t>.<ext>`, or `<stem><t>-<timescale>.<ext>` for a secondary timescale.
    /// Video spool file `n` (0 or 1): `<name>-spool<n>.m4v.part`, a name no segment, init
    /// segment or other stream's file can have.
    fn spool(&self, n: usize) -> PathBuf {
        self.dir.join(format!(
            "{}spool{n}.{}{PART_SUFFIX}",
            self.stem,
            Kind::Video.ext()
        ))
    }

    fn segment_file(&self, kind: Kind, t: u64, suffix_ts: Option<u32>) -> String {
        match suffix_ts {
            None => format!("{}{t}.{}", self.stem, self.media_ext(kind)),
            Some(ts) => format!("{}{t}-{ts}.{}", self.stem, self.media_ext(kind)),
        }
    }

    fn media_template(&self, kind: Kind, suffix_ts: Option<u32>) -> String {
        let stem = mpd::uri_escape(&self.stem);
        match suffix_ts {
            None => format!("{stem}$Time$.{}", self.media_ext(kind)),
            Some(ts) => format!("{stem}$Time$-{ts}.{}", self.media_ext(kind)),
        }
    }

    fn init_file(&self, kind: Kind, version: u64) -> String {
        match version {
            0 => format!("{}init.{}", self.stem, kind.ext()),
            v => format!("{}init-{v}.{}", self.stem, kind.ext()),
        }
    }

    /// The file of a URI from a previous MPD, if it is one this layout writes.
    fn restored_file(&self, uri: &str) -> Option<(PathBuf, Option<(Kind, u64)>)> {
        let escaped_stem = mpd::uri_escape(&self.stem);
        let rest = uri.strip_prefix(escaped_stem.as_str())?;
        let (body, ext) = rest.rsplit_once('.')?;
        let kind = [Kind::Video, Kind::Audio]
            .into_iter()
            .find(|k| k.ext() == ext)?;
        let digits =
            |s: &str| !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit());
        let (file, version) = if body == "init" {
            (self.init_file(kind, 0), Some((kind, 0)))
        } else if let Some(v) = body.strip_prefix("init-").filter(|v| digits(v)) {
            let v: u64 = v.parse().ok()?;
            (self.init_file(kind, v), Some((kind, v)))
        } else {
            let (t, ts) = match body.split_once('-') {
                Some((t, ts)) => (t, Some(ts)),
                None => (body, None),
            };
            if !digits(t) || ts.is_some_and(|ts| !digits(ts)) {
                return None;
            }
            let ts = match ts {
                Some(ts) => Some(ts.parse::<u32>().ok()?),
                None => None,
            };
            (self.segment_file(kind, t.parse().ok()?, ts), None)
        };
        (mpd::uri_escape(&file) == uri).then(|| (self.dir.join(file), version))
    }
}

// ---- model ----

/// What the MPD says about a track, fixed when its Period opens.
#[derive(Debug, Clone)]
struct PeriodTrack {
    kind: Kind,
    codec: TrackCodec,
    timescale: u32,
    frame_ticks: u64,
    /// Files are named with this timescale as a suffix (see the module docs).
    suffix_ts: Option<u32>,
    init: Bytes,
    init_path: PathBuf,
    init_uri: String,
    entries: VecDeque<Entry>,
}

/// A media segment of one track.
#[derive(Debug, Clone)]
struct Entry {
    cut: u64,
    t: u64,
    d: u64,
    path: PathBuf,
    bytes: u64,
    frames: u64,
    sap: bool,
}

#[derive(Debug, Clone)]
struct Period {
    id: u64,
    start_ms: u64,
    tracks: Vec<PeriodTrack>,
}

impl Period {
    fn track(&self, kind: Kind) -> Option<&PeriodTrack> {
        self.tracks.iter().find(|t| t.kind == kind)
    }
}

/// The segments of all tracks that end at one cut.
#[derive(Debug, Clone)]
struct Cut {
    index: u64,
    period: u64,
    start_ms: u64,
    /// Latest end of its segments on the presentation timeline (ms, rounded up).
    end_ms: u64,
    listed: bool,
    /// Its files' final renames (`.part` to the listed name), held until the MPD lists
    /// them: a reader that guesses the next segment's URL (ffmpeg's) finds nothing before
    /// the MPD that lists it is written right after.
    renames: Vec<(PathBuf, PathBuf)>,
    /// Its LL-HLS parts (video, audio), while it is near the live edge.
    parts: [Vec<Part>; 2],
}

/// A partial segment (LL-HLS) on disk.
#[derive(Debug, Clone)]
struct Part {
    t: u64,
    d: u64,
    independent: bool,
    path: PathBuf,
    uri: String,
    /// The URI the next part will have (`EXT-X-PRELOAD-HINT`).
    next_uri: String,
}

/// The average of `durations` (at least 1), if any.
fn average(durations: &[u64]) -> Option<u64> {
    let total: u64 = durations.iter().sum();
    let n = u64::try_from(durations.len()).ok().filter(|n| *n > 0)?;
    Some((total / n).max(1))
}

/// The segment being filled.
#[derive(Debug)]
struct OpenSeg {
    period: u64,
    start_ms: u64,
    sap: bool,
    /// Video samples keep only their sizes: their data goes to `spool` on disk as it
    /// arrives (no segment of video waits in memory); audio (small) stays here.
    samples: [Vec<Sample>; 2],
    bytes: usize,
    /// The file this segment's video is gathered in (one of two, alternating: the previous
    /// segment may still be waiting for its audio).
    spool: Option<PathBuf>,
    /// Something written to `spool` (or a growing file) failed: the segment is not written
    /// (a gap).
    spool_lost: bool,
    /// LL-HLS: the first sample of each kind not yet in a part, the parts written, and
    /// the video data of the samples since the last part (video samples keep only sizes).
    part_from: [usize; 2],
    parts: [Vec<Part>; 2],
    part_data: Vec<Bytes>,
    /// Low-latency DASH: each kind's segment file as it grows (`.part`, chunk after chunk)
    /// and its length so far.
    growing: [Option<(PathBuf, u64)>; 2],
    /// Where its video is expected to end (presentation ms): as long as the last segment.
    expected_end_ms: Option<u64>,
    /// Where each kind's parts end ([`parts::planned_ends`]), once the stream's part target
    /// and the segment's expected length are known.
    plans: [Option<Vec<usize>>; 2],
}

impl OpenSeg {
    fn new(period: u64, start_ms: u64, sap: bool) -> Self {
        OpenSeg {
            period,
            start_ms,
            sap,
            samples: [Vec::new(), Vec::new()],
            bytes: 0,
            spool: None,
            spool_lost: false,
            part_from: [0, 0],
            parts: [Vec::new(), Vec::new()],
            part_data: Vec::new(),
            growing: [None, None],
            expected_end_ms: None,
            plans: [None, None],
        }
    }

    /// The segment as the cut policy sees it at presentation time `ms`. Its samples are held
    /// in memory until the cut, so it can be full.
    fn so_far(&self, ms: u64) -> SegmentSoFar {
        SegmentSoFar {
            length_ms: ms.saturating_sub(self.start_ms),
            start_src_ms: 0,
            independent: self.sap,
            full: cut::is_full(
                self.bytes,
                self.samples.iter().map(Vec::len).max().unwrap_or(0),
            ),
        }
    }
}

/// A segment whose video ended at `boundary_ms`, waiting for audio to get there.
#[derive(Debug)]
struct Closing {
    seg: OpenSeg,
    boundary_ms: u64,
}

/// The codec the publisher announced for a track.
#[derive(Debug, Clone)]
struct Source {
    fourcc: FourCc,
    codec: TrackCodec,
    init: Bytes,
}

#[derive(Debug, Clone, Copy)]
enum Effect {
    Dir,
    Init,
    /// An operation on a segment file of `cut`; `committed`: it is the final rename.
    Segment {
        cut: u64,
        committed: bool,
    },
    Mpd,
    Other,
}

impl Effect {
    /// A segment's final rename whose cut has operations in `others`: while they are
    /// pending, a failure among them leaves that file orphaned (see [`Journal`]).
    fn commit_of_any(&self, others: &[Effect]) -> bool {
        matches!(self, Effect::Segment { cut, committed: true }
            if others.iter().any(|o| matches!(o, Effect::Segment { cut: c, .. } if c == cut)))
    }
}

/// The HLS media playlists of a [`DashStream::new_hls`] stream: (path, URI) each.
#[derive(Debug, Clone)]
struct HlsPlaylists {
    /// The multivariant playlist, at the stream's usual HLS playlist path (`None` for the
    /// rendition of another video track: the main stream's lists it).
    master: Option<PathBuf>,
    /// `hls_nested`: each stream (and rendition) in a directory of its own.
    nested: bool,
    video: (PathBuf, String),
    audio: (PathBuf, String),
    event: bool,
    /// Beside DASH ([`DashStream::attach_hls`]): the HLS directory and file name prefix,
    /// where every segment and init segment gets a second name (a hard link) that the HLS
    /// playlists list. `None`: the files are HLS's own ([`DashStream::new_hls`]).
    links: Option<(PathBuf, String)>,
    /// `hls_low_latency`: the parts' target duration (ms).
    part_ms: Option<u64>,
}

impl HlsPlaylists {
    fn new(
        hls: &HlsSettings,
        master: PathBuf,
        stem: &str,
        links: Option<(PathBuf, String)>,
    ) -> Self {
        let dir = master.parent().map(Path::to_path_buf).unwrap_or_default();
        let event = hls.hls_type == HlsType::Event;
        let mut h = HlsPlaylists::in_dir(&dir, Some(master), stem, links, hls.nested, event);
        h.part_ms = hls.low_latency.then_some(hls.part_ms);
        h
    }

    fn in_dir(
        dir: &Path,
        master: Option<PathBuf>,
        stem: &str,
        links: Option<(PathBuf, String)>,
        nested: bool,
        event: bool,
    ) -> Self {
        // The names the http side finds a part's playlist by (`rtmp_low_latency`).
        let media = |track| {
            let file = names::media_playlist_name(stem, track);
            (dir.join(&file), mpd::uri_escape(&file))
        };
        HlsPlaylists {
            video: media(names::Track::Video),
            audio: media(names::Track::Audio),
            master,
            nested,
            event,
            links,
            part_ms: None,
        }
    }
}

/// The video track a message belongs to: 0 for a plain message, the track id of a
/// one-track multitrack message; `None` for several tracks in one message (not taken).
pub fn video_track(t: &flv::VideoTag) -> Option<u8> {
    match t.multitrack {
        None => Some(0),
        Some(m) if m.kind == MultitrackKind::OneTrack => Some(m.first_track_id),
        Some(_) => None,
    }
}

/// Where the HLS names of rendition `name` go, beside those of its main stream in `dir`:
/// the same directory with its own prefix, or with `hls_nested` a directory of its own next
/// to the main stream's.
fn rendition_place(dir: &Path, name: &str, nested: bool) -> (PathBuf, String) {
    if nested {
        let parent = dir.parent().map(Path::to_path_buf).unwrap_or_default();
        (parent.join(basename(name)), String::new())
    } else {
        (dir.to_path_buf(), format!("{}-", basename(name)))
    }
}

/// The audio track a message belongs to (as [`video_track`]).
pub fn audio_track(t: &flv::AudioTag) -> Option<u8> {
    match t.multitrack {
        None => Some(0),
        Some(m) if m.kind == MultitrackKind::OneTrack => Some(m.first_track_id),
        Some(_) => None,
    }
}

/// What a [`DashStream`] segments: a stream's main tracks (plain messages, multitrack track
/// 0), or one other track of a multitrack publisher, whose rendition the main stream's
/// manifests list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Main,
    Video(u8),
    Audio(u8),
}

impl Role {
    /// The stream name a rendition's files are named as: `<name>_<k>` for video track `k`,
    /// `<name>_a<k>` for audio track `k`.
    fn stream_name(self, name: &str) -> Option<String> {
        match self {
            Role::Main => None,
            Role::Video(k) => Some(format!("{name}_{k}")),
            Role::Audio(k) => Some(format!("{name}_a{k}")),
        }
    }
}

/// The file name of a path, as UTF-8 (ours always are).
fn basename_of(path: &Path) -> Option<&str> {
    path.file_name()?.to_str()
}

/// The DASH output of one published stream. See the module docs.
pub struct DashStream {
    settings: DashSettings,
    app: String,
    name: String,
    /// False for a name that cannot be a file name or an empty `dash_path`.
    valid: bool,
    layout: Layout,

    cut: CutPolicy,
    timeline: Timeline,
    sources: [Option<Source>; 2],
    /// The sequence header of a codec whose source also needs its first frame (VP9, AC-3).
    pending: [Option<(FourCc, Bytes)>; 2],
    /// Duration of the last audio frame, when its codec says (Opus frames vary).
    last_audio_ticks: Option<u64>,
    /// HLS playlists to write instead of the MPD ([`DashStream::new_hls`]).
    hls: Option<HlsPlaylists>,
    /// False for an HLS-only stream: no MPD.
    mpd_enabled: bool,
    /// What this stream segments: the main tracks, or another track of a multitrack
    /// publisher ([`DashStream::rendition`]).
    role: Role,
    /// The other tracks' renditions: their multivariant playlist entry, and their
    /// Representation (what they list, URIs relative to this stream's MPD).
    ladder: BTreeMap<Role, (m3u8::Rendition, mpd::AdaptationSet)>,
    /// A rendition's fellow tracks (the main stream's and the other renditions'): their media
    /// playlist URI (relative to ours) and what they list, for LL-HLS rendition reports.
    peers: Vec<(String, mpd::AdaptationSet)>,
    /// The HLS name of each file linked into the HLS directory, deleted with it.
    links: HashMap<PathBuf, PathBuf>,
    meta_frame_rate: Option<f64>,

    /// presentation ms = timeline output ms + offset.
    offset: i64,
    /// `availabilityStartTime` (Unix ms).
    ast: Option<u64>,
    /// A publisher restarted: its first segment starts at the wall clock if that is later.
    restarted: bool,
    /// The next segment may jump forward to the wall clock (after a restart or a jump).
    resync: bool,
    /// End of a previous MPD's timeline (ms).
    restored_end_ms: u64,
    /// The next segment opens a new Period (restart, new or changed track).
    new_period: bool,

    seg: Option<OpenSeg>,
    closing: Option<Closing>,
    /// Audio (timeline ms, frame) waiting for the segment it belongs to.
    preroll: VecDeque<(u64, Bytes)>,
    last_dts: [Option<u64>; 2],
    /// Last video frame step in ticks.
    video_step: Option<u64>,
    /// Each kind's longest part or chunk (`PART-TARGET`, ms), fixed at the first cut
    /// ([`Self::first_part_target`]); the configured length until then.
    part_target_ms: [Option<u64>; 2],
    /// Frames of each kind in the last segment cut: how many the next is expected to hold.
    expected_frames: [Option<usize>; 2],
    /// The average frame of each kind in the last segment cut (ticks): how many fit in a
    /// part.
    frame_ticks: [Option<u64>; 2],
    sequence: [u32; 2],

    periods: VecDeque<Period>,
    cuts: VecDeque<Cut>,
    next_cut: u64,
    next_period_id: u64,
    next_init_version: [u64; 2],
    /// Timescale of the plainly named files of each kind.
    plain_ts: [Option<u32>; 2],
    inits_on_disk: HashSet<PathBuf>,
    dir_created: bool,

    retention: Retention,
    /// Files of a previous MPD: deleted after a grace once our MPD replaced it.
    deletes_after_mpd: Vec<PathBuf>,
    mpd_written: bool,
    /// Unix ms when the first held-back segment becomes available.
    hold_until: Option<u64>,
    /// mono − unix of the latest call (to turn hold times into deadlines).
    clock_offset: i64,

    finished: bool,

    /// Which of the two video spool files the next segment uses, and whether each was
    /// opened (it is removed when the stream ends).
    next_spool: usize,
    spools_opened: [bool; 2],

    /// LL-HLS: the next part's `mfhd` sequence number of each kind, and whether parts were
    /// written since the media playlists were.
    part_sequence: [u32; 2],
    parts_unlisted: bool,

    /// Operations not yet handed out (produced by `restart`, which has no `ops`).
    out: Vec<FileOp>,
    journal: Journal<Effect>,
}

impl std::fmt::Debug for DashStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DashStream")
            .field("app", &self.app)
            .field("name", &self.name)
            .field("periods", &self.periods.len())
            .field("cuts", &self.cuts.len())
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl DashStream {
    /// A publisher started `name` in application `app`. `previous_mpd`: the stream's MPD
    /// found on disk; the new timeline goes on after it (see the module docs).
    pub fn new(settings: &DashSettings, app: &str, name: &str, previous_mpd: Option<&str>) -> Self {
        let valid = is_valid_name(name) && !settings.path.is_empty();
        let max_ms = settings.fragment_ms.saturating_mul(MAX_SEGMENT_FACTOR);
        let cut = CutPolicy::new(settings.fragment_ms, max_ms, Boundary::Duration);
        let mut s = DashStream {
            settings: settings.clone(),
            app: app.to_owned(),
            name: name.to_owned(),
            valid,
            layout: Layout::new(settings, name),
            cut,
            timeline: Timeline::new(BACKWARD_TOLERANCE_MS as u64, cut.max_ms()),
            sources: [None, None],
            pending: [None, None],
            last_audio_ticks: None,
            hls: None,
            mpd_enabled: true,
            role: Role::Main,
            ladder: BTreeMap::new(),
            peers: Vec::new(),
            links: HashMap::new(),
            meta_frame_rate: None,
            offset: 0,
            ast: None,
            restarted: false,
            resync: true,
            restored_end_ms: 0,
            new_period: true,
            seg: None,
            closing: None,
            preroll: VecDeque::new(),
            last_dts: [None, None],
            video_step: None,
            part_target_ms: [None, None],
            expected_frames: [None, None],
            frame_ticks: [None, None],
            sequence: [1, 1],
            periods: VecDeque::new(),
            cuts: VecDeque::new(),
            next_cut: 0,
            next_period_id: 0,
            next_init_version: [0, 0],
            plain_ts: [None, None],
            inits_on_disk: HashSet::new(),
            dir_created: false,
            retention: Retention::new(),
            deletes_after_mpd: Vec::new(),
            mpd_written: false,
            hold_until: None,
            clock_offset: 0,
            finished: false,
            part_sequence: [1, 1],
            parts_unlisted: false,
            out: Vec::new(),
            journal: Journal::default(),
            next_spool: 0,
            spools_opened: [false; 2],
        };
        if let (true, Some(text)) = (valid, previous_mpd) {
            s.restore(text);
        }
        s
    }

    /// The fMP4 (CMAF) HLS output of `name` (`hls_container`): these segments, under
    /// `hls_path` with `hls_fragment`, `hls_playlist_length`, `hls_nested` and
    /// `hls_cleanup`, listed by a multivariant playlist at the stream's usual playlist path
    /// (`playlist`) and a media playlist per track beside it.
    pub fn new_hls(hls: &HlsSettings, playlist: PathBuf, app: &str, name: &str) -> Self {
        let settings = DashSettings {
            enabled: true,
            path: hls.path.clone(),
            fragment_ms: hls.fragment_ms,
            playlist_length_ms: hls.playlist_length_ms,
            nested: hls.nested,
            cleanup: hls.cleanup,
            clock_compensation: DashClock::Off,
            clock_helper_uri: String::new(),
            low_latency: false,
            chunk_ms: hls.part_ms,
        };
        let mut s = Self::new(&settings, app, name, None);
        if let Some(dir) = playlist.parent() {
            s.layout.dir = dir.to_path_buf();
        }
        s.layout.mpd = playlist.clone();
        s.layout.video_ext = "m4s";
        s.mpd_enabled = false;
        s.hls = Some(HlsPlaylists::new(hls, playlist, &s.layout.stem, None));
        s
    }

    /// HLS of this DASH stream's own segments (`hls_container` fMP4 beside `dash on`, with
    /// the same fragment, window and cleanup): the HLS playlists at `playlist` list second
    /// names (hard links) of the DASH files in the HLS directory, so one set of segment bytes
    /// serves both. Files written before this get their names now.
    pub fn attach_hls(
        &mut self,
        hls: &HlsSettings,
        playlist: PathBuf,
        now: Now,
        ops: &mut Vec<FileOp>,
    ) {
        let dir = playlist
            .parent()
            .map_or_else(|| PathBuf::from(&hls.path), Path::to_path_buf);
        let stem = if hls.nested {
            String::new()
        } else {
            format!("{}-", basename(&self.name))
        };
        self.hls = Some(HlsPlaylists::new(
            hls,
            playlist,
            &stem,
            Some((dir.clone(), stem.clone())),
        ));
        self.begin(now);
        if self.active() {
            if dir != self.layout.dir {
                self.emit(FileOp::CreateDir { path: dir }, Effect::Other);
            }
            let listed: HashSet<u64> = self
                .cuts
                .iter()
                .filter(|c| c.listed)
                .map(|c| c.index)
                .collect();
            let mut files: Vec<(PathBuf, bool, Effect)> = Vec::new();
            for t in self.periods.iter().flat_map(|p| p.tracks.iter()) {
                if self.inits_on_disk.contains(&t.init_path) {
                    files.push((t.init_path.clone(), false, Effect::Init));
                }
                for e in t.entries.iter().filter(|e| listed.contains(&e.cut)) {
                    let effect = Effect::Segment {
                        cut: e.cut,
                        committed: false,
                    };
                    files.push((e.path.clone(), true, effect));
                }
            }
            for (path, media, effect) in files {
                self.link(&path, media, effect);
            }
        }
        self.end(ops);
    }

    /// The HLS name of one of this stream's files (beside DASH): the same name after the
    /// HLS prefix, `.m4s` for a video media segment (HLS readers check extensions).
    fn hls_name(&self, path: &Path, media: bool) -> Option<(PathBuf, String)> {
        let (dir, stem) = self.hls.as_ref()?.links.as_ref()?;
        let file = basename_of(path)?;
        let rest = file.strip_prefix(self.layout.stem.as_str())?;
        let rest = match rest.strip_suffix(".m4v") {
            Some(base) if media => format!("{base}.m4s"),
            _ => rest.to_owned(),
        };
        let name = format!("{stem}{rest}");
        Some((dir.join(&name), name))
    }

    /// The model with the URIs the HLS directory has (beside DASH): the HLS prefix, and
    /// `.m4s` for video media segments.
    fn with_hls_names(&self, mut model: mpd::Mpd, stem: &str) -> mpd::Mpd {
        let (from, to) = (mpd::uri_escape(&self.layout.stem), mpd::uri_escape(stem));
        let rename = |uri: &str| match uri.strip_prefix(from.as_str()) {
            Some(rest) => format!("{to}{rest}"),
            None => uri.to_owned(),
        };
        for set in model.periods.iter_mut().flat_map(|p| p.sets.iter_mut()) {
            set.initialization = rename(&set.initialization);
            set.media = rename(&set.media);
            if let Some(base) = set.media.strip_suffix(".m4v") {
                set.media = format!("{base}.m4s");
            }
        }
        model
    }

    /// Gives a whole file its HLS name (beside DASH only).
    fn link(&mut self, path: &Path, media: bool, effect: Effect) {
        let Some((target, _)) = self.hls_name(path, media) else {
            return;
        };
        if target == path {
            return;
        }
        self.links.insert(path.to_path_buf(), target.clone());
        self.emit(
            FileOp::Link {
                path: target,
                from: path.to_path_buf(),
            },
            effect,
        );
    }

    /// The rendition of another track of a multitrack publisher (OBS's multitrack video,
    /// ffmpeg's several video or audio streams): segments of its own, named as the stream
    /// `<name>_<k>` (video) or `<name>_a<k>` (audio) would be, with HLS also their HLS names
    /// and a media playlist; no manifest of its own: this stream's multivariant playlist and
    /// MPD list it ([`DashStream::set_rendition`]). `None` for [`Role::Main`].
    pub fn rendition(&self, role: Role) -> Option<DashStream> {
        let name = role.stream_name(&self.name)?;
        let mut r = DashStream::new(&self.settings, &self.app, &name, None);
        r.role = role;
        r.mpd_enabled = false;
        r.layout.video_ext = self.layout.video_ext;
        let Some(h) = &self.hls else {
            // DASH only: its segments, listed by this stream's MPD.
            return Some(r);
        };
        let playlists = match &h.links {
            None => {
                let (dir, stem) = (r.layout.dir.clone(), r.layout.stem.clone());
                HlsPlaylists::in_dir(&dir, None, &stem, None, h.nested, h.event)
            }
            Some((dir, _)) => {
                let (dir, stem) = rendition_place(dir, &name, h.nested);
                let links = Some((dir.clone(), stem.clone()));
                HlsPlaylists::in_dir(&dir, None, &stem, links, h.nested, h.event)
            }
        };
        r.hls = Some(HlsPlaylists {
            part_ms: h.part_ms,
            ..playlists
        });
        Some(r)
    }

    /// The URI, relative to this stream's media playlists, of stream `name`'s media playlist of
    /// `content` (a track of the same publisher, laid out as this one); `None` without HLS.
    fn playlist_uri(&self, name: &str, content: ContentType) -> Option<String> {
        let h = self.hls.as_ref()?;
        let kind = content.as_str();
        let file = if h.nested {
            format!("../{name}/{kind}.m3u8")
        } else {
            format!("{name}-{kind}.m3u8")
        };
        Some(mpd::uri_escape(&file))
    }

    /// The name its files and playlists are named by (`<name>`, or `<name>_<k>` for a
    /// rendition).
    pub fn stream_name(&self) -> &str {
        basename(&self.name)
    }

    /// What each track lists now (the last Period's), for the rendition reports of the other
    /// tracks of the same publisher.
    pub fn track_sets(&self, now: Now) -> Vec<mpd::AdaptationSet> {
        let model = self.build_mpd(now, true);
        let Some(period) = model.periods.into_iter().last() else {
            return Vec::new();
        };
        period
            .sets
            .into_iter()
            .filter(|s| !s.segments.is_empty())
            .map(|s| mpd::AdaptationSet {
                renditions: Vec::new(),
                ..s
            })
            .collect()
    }

    /// A rendition's fellow tracks, `(stream name, what it lists)` each: its LL-HLS playlists
    /// report them.
    pub fn set_peers(&mut self, peers: Vec<(String, mpd::AdaptationSet)>) {
        self.peers = peers
            .into_iter()
            .filter_map(|(name, set)| Some((self.playlist_uri(&name, set.content)?, set)))
            .collect();
    }

    /// What this stream segments.
    pub fn role(&self) -> Role {
        self.role
    }

    /// What a rendition lists now, for the main stream's manifests.
    pub fn rendition_entry(&self, now: Now) -> Option<(m3u8::Rendition, mpd::AdaptationSet)> {
        let content = match self.role {
            Role::Audio(_) => ContentType::Audio,
            _ => ContentType::Video,
        };
        let model = self.build_mpd(now, true);
        let set = model
            .periods
            .into_iter()
            .rev()
            .flat_map(|p| p.sets)
            .find(|s| s.content == content && !s.segments.is_empty())?;
        Some((m3u8::Rendition::of(&set, String::new()), set))
    }

    /// Lists the rendition of video track `k` in the multivariant playlist and the MPD (from
    /// the next time they are written).
    pub fn set_rendition(
        &mut self,
        role: Role,
        (mut entry, mut set): (m3u8::Rendition, mpd::AdaptationSet),
    ) {
        let Some(own) = role.stream_name(basename(&self.name)) else {
            return;
        };
        let id = match role {
            Role::Audio(k) => format!("audio_{k}"),
            Role::Video(k) => format!("video_{k}"),
            Role::Main => return,
        };
        if let Some(uri) = self.playlist_uri(&own, set.content) {
            entry.uri = uri;
        }
        // Its files are where `<name>_<k>` would have them: beside ours, or next door.
        if self.settings.nested {
            let dir = mpd::uri_escape(&format!("../{own}/"));
            set.initialization = format!("{dir}{}", set.initialization);
            set.media = format!("{dir}{}", set.media);
        }
        set.representation_id = id;
        self.ladder.insert(role, (entry, set));
    }

    /// `<dash_path>/<name>.mpd`, or `<dash_path>/<name>/index.mpd` with `dash_nested`.
    pub fn manifest_path(settings: &DashSettings, name: &str) -> PathBuf {
        let path = PathBuf::from(&settings.path);
        if settings.nested {
            path.join(name).join("index.mpd")
        } else {
            path.join(format!("{name}.mpd"))
        }
    }

    fn restore(&mut self, text: &str) {
        let Some(prev) = mpd::parse_previous(text) else {
            return;
        };
        self.ast = prev.availability_start_ms;
        self.restored_end_ms = prev.end_ms;
        self.next_period_id = prev.next_period_id;
        for (media, ts) in &prev.templates {
            for kind in [Kind::Video, Kind::Audio] {
                if *media == self.layout.media_template(kind, None) {
                    *kind.of_mut(&mut self.plain_ts) = Some(*ts);
                }
            }
        }
        let mut files = Vec::new();
        for uri in prev.init_uris.iter().chain(&prev.segment_uris) {
            let Some((path, version)) = self.layout.restored_file(uri) else {
                continue;
            };
            if let Some((kind, v)) = version {
                let next = kind.of_mut(&mut self.next_init_version);
                *next = (*next).max(v.saturating_add(1));
            }
            if !files.contains(&path) {
                files.push(path);
            }
        }
        if self.settings.cleanup {
            self.deletes_after_mpd = files;
        }
    }

    fn active(&self) -> bool {
        self.valid && !self.finished
    }

    // ---- emitting ----

    fn emit(&mut self, op: FileOp, effect: Effect) {
        // A file's HLS name goes with it.
        let link = match &op {
            FileOp::Delete { path } => self.links.remove(path),
            _ => None,
        };
        self.journal.record(&op, effect);
        self.out.push(op);
        if let Some(path) = link {
            let op = FileOp::Delete { path };
            self.journal.record(&op, Effect::Other);
            self.out.push(op);
        }
    }

    /// Starts a publisher call: what `restart` queued goes first.
    fn begin(&mut self, now: Now) {
        self.clock_offset = now.mono_ms as i64 - now.unix_ms as i64;
    }

    fn end(&mut self, ops: &mut Vec<FileOp>) {
        ops.append(&mut self.out);
    }

    fn ensure_dir(&mut self) {
        if !self.dir_created {
            self.dir_created = true;
            let path = self.layout.dir.clone();
            self.emit(FileOp::CreateDir { path }, Effect::Dir);
        }
    }

    // ---- the timeline ----

    fn media_ms(&self, out_ms: u64) -> u64 {
        u64::try_from((out_ms as i64).saturating_add(self.offset).max(0)).unwrap_or(0)
    }

    fn period(&self, id: u64) -> Option<&Period> {
        self.periods.iter().rev().find(|p| p.id == id)
    }

    fn period_mut(&mut self, id: u64) -> Option<&mut Period> {
        self.periods.iter_mut().rev().find(|p| p.id == id)
    }

    /// The Period track of the open segment for `kind`, when it carries the publisher's
    /// current codec for it.
    fn current_track(&self, kind: Kind) -> Option<&PeriodTrack> {
        let seg = self.seg.as_ref()?;
        let track = self.period(seg.period)?.track(kind)?;
        let src = kind.of(&self.sources).as_ref()?;
        (track.codec == src.codec).then_some(track)
    }

    /// Video is published: its track is known, or waits for its first keyframe (VP9), so
    /// audio waits for the first video cut instead of starting an audio-only Period.
    fn video_mode(&self) -> bool {
        self.sources[V].is_some() || self.pending[V].is_some()
    }

    /// Video dts (ticks) of a frame at `ms`: strictly after the previous one.
    fn video_dts(&self, ms: u64, timescale: u32) -> u64 {
        let dts = mpd::ms_to_ticks(ms, timescale);
        match self.last_dts[V] {
            Some(last) if dts <= last => last.saturating_add(1),
            _ => dts,
        }
    }

    /// Audio dts (ticks) of a frame at `ms`: one frame after the previous one unless the
    /// publisher's timestamp is more than half a frame away from that.
    fn audio_dts(&self, ms: u64, timescale: u32, frame: u64) -> u64 {
        let raw = mpd::ms_to_ticks(ms, timescale);
        match self.last_dts[A] {
            Some(last) => {
                let est = last.saturating_add(frame);
                if raw.abs_diff(est) <= frame / 2 {
                    est
                } else {
                    raw.max(last.saturating_add(1))
                }
            }
            None => raw,
        }
    }

    // ---- media ----

    /// The publisher's onMetaData: the frame rate for the MPD.
    pub fn on_metadata(&mut self, payload: &[u8]) {
        if let Some(r) = metadata::parse_metadata(payload).frame_rate {
            self.meta_frame_rate = Some(r);
        }
    }

    /// One audio (`video == false`) or video message: an FLV tag body and its timestamp.
    pub fn on_media(
        &mut self,
        video: bool,
        timestamp: u32,
        tag: &Bytes,
        now: Now,
        ops: &mut Vec<FileOp>,
    ) {
        self.begin(now);
        if self.active() {
            self.release_held(now);
            if video {
                self.on_video(timestamp, tag, now);
            } else {
                self.on_audio(timestamp, tag, now);
            }
            if self.part_ms().is_some() {
                self.audio_parts();
                if std::mem::take(&mut self.parts_unlisted) {
                    self.write_manifests(now, true, false);
                }
            }
        }
        self.end(ops);
    }

    fn set_source(&mut self, kind: Kind, source: Option<Source>) {
        let Some(src) = source else { return };
        if kind
            .of(&self.sources)
            .as_ref()
            .is_some_and(|s| s.codec == src.codec)
        {
            return;
        }
        if kind == Kind::Audio {
            self.preroll.clear();
        }
        *kind.of_mut(&mut self.sources) = Some(src);
        if self.seg.is_some() {
            // A track appeared or changed: a new Period at the next cut.
            self.new_period = true;
        }
    }

    /// Builds the source of a codec that needs its first frame ([`fmp4::needs_first_frame`])
    /// from this frame: after its sequence header, or with none (AC-3 needs none). A frame
    /// that does not describe the stream (a damaged one) leaves it for the next.
    fn adopt_pending(&mut self, kind: Kind, fourcc: Option<FourCc>, frame: &[u8]) {
        if !fmp4::needs_first_frame(fourcc) {
            return;
        }
        let slot = kind.of(&self.pending);
        let header = match slot {
            Some((f, header)) if Some(*f) == fourcc => header.clone(),
            _ if kind.of(&self.sources).as_ref().map(|s| s.fourcc) != fourcc => Bytes::new(),
            _ => return,
        };
        let source = source_of(fourcc, fmp4::codec_from_frame(fourcc, &header, frame));
        if source.is_some() {
            *kind.of_mut(&mut self.pending) = None;
            self.set_source(kind, source);
        }
    }

    fn on_video(&mut self, timestamp: u32, tag: &Bytes, now: Now) {
        let Ok(t) = flv::parse_video(tag) else { return };
        let want = match self.role {
            Role::Main => 0,
            Role::Video(k) => k,
            Role::Audio(_) => return,
        };
        if video_track(&t) != Some(want) {
            return;
        }
        let body = tag.get(t.body_offset..).unwrap_or_default();
        let fourcc = t.codec.fourcc();
        match t.packet {
            VideoPacket::SequenceHeader => {
                if fmp4::needs_first_frame(fourcc) {
                    self.pending[V] = fourcc.map(|f| (f, body_of(tag, t.body_offset)));
                } else {
                    self.pending[V] = None;
                    self.set_source(Kind::Video, source_of(fourcc, video_codec(fourcc, body)));
                }
                return;
            }
            VideoPacket::Frame => {}
            _ => return,
        }
        if t.is_keyframe() {
            self.adopt_pending(Kind::Video, fourcc, body);
        }
        let Some(src) = self.sources[V].as_ref() else {
            return;
        };
        if Some(src.fourcc) != fourcc || !frame_ok(&src.codec, body) {
            return;
        }
        let sample_at = t.body_offset.saturating_add(src.codec.sample_start(body));
        let key = t.is_keyframe();
        let m = self.timeline.map(Track::Video, timestamp);
        if m.rebased {
            self.hard_close(now);
        }
        let ms = self.media_ms(m.out_ms);
        if self
            .closing
            .as_ref()
            .is_some_and(|c| ms >= c.boundary_ms.saturating_add(MAX_AUDIO_WAIT_MS))
        {
            self.finalize_closing(None, now);
        }
        if key && self.new_period && self.seg.is_some() {
            self.hard_close(now);
        }
        if self.seg.is_none() {
            if !key || !self.open(m.out_ms, true, now) {
                return;
            }
            let ms = self.media_ms(m.out_ms);
            self.push_video(ms, t.composition_time_ms, key, body_of(tag, sample_at));
            return;
        } else {
            let Some(track) = self.current_track(Kind::Video) else {
                return;
            };
            let ts = track.timescale;
            let Some(seg) = self.seg.as_ref() else { return };
            // A restart (new Period, jump) closed the segment above: never one here.
            if self.cut.video(&seg.so_far(ms), 0, key, false) != Decision::Keep {
                let dts = self.video_dts(ms, ts);
                self.soft_cut(ms, dts, key, now);
            }
        }
        self.push_video(ms, t.composition_time_ms, key, body_of(tag, sample_at));
    }

    fn push_video(&mut self, ms: u64, cts_ms: i32, key: bool, data: Bytes) {
        let Some(ts) = self.current_track(Kind::Video).map(|t| t.timescale) else {
            return;
        };
        let dts = self.video_dts(ms, ts);
        let cts_ms = cts_ms.clamp(-MAX_CTS_MS, MAX_CTS_MS);
        let cts = i32::try_from(i64::from(cts_ms) * i64::from(ts) / 1000).unwrap_or(0);
        let low_latency = self.part_ms().is_some();
        // Low-latency DASH writes video into its segment file chunk by chunk: no spool.
        if !self.chunked() {
            let Some(spool) = self.video_spool() else {
                return;
            };
            // Not to a lost spool: the append would fail too, and take down what is batched
            // behind it (the next segment's cut).
            if !self.seg.as_ref().is_some_and(|s| s.spool_lost) {
                self.emit(
                    FileOp::Append {
                        path: spool,
                        data: data.clone(),
                    },
                    Effect::Other,
                );
            }
        }
        let Some(seg) = self.seg.as_mut() else { return };
        let list = &mut seg.samples[V];
        let mut step = None;
        if let Some(prev) = list.last_mut() {
            let s = dts.saturating_sub(prev.dts);
            prev.duration = u32::try_from(s).unwrap_or(u32::MAX);
            step = Some(s);
            if (1..=u64::from(ts)).contains(&s) {
                self.video_step = Some(s);
            }
        }
        // LL-HLS: the part so far ends before this frame where its rule says (the frame's
        // length taken as the last step). Not at a keyframe inside a segment: parts other
        // than a segment's last keep close to the target (RFC 8216bis).
        if low_latency {
            self.with_open_seg(|s, seg| {
                s.plan_parts(seg, Kind::Video);
                let Some((max_frames, max_ticks)) = s.part_bounds(seg.period, Kind::Video) else {
                    return;
                };
                let list = &seg.samples[V];
                let from = seg.part_from[V];
                let Some(first) = list.get(from) else { return };
                let rule = PartRule {
                    plan: seg.plans[V].as_deref().unwrap_or_default(),
                    max_frames,
                    max_ticks,
                };
                let ticks = dts
                    .saturating_sub(first.dts)
                    .saturating_add(step.unwrap_or(0));
                let upto = list.len();
                if rule.ends_before(from, upto, ticks) {
                    s.make_part(seg, Kind::Video, upto);
                }
            });
        }
        let Some(seg) = self.seg.as_mut() else { return };
        let list = &mut seg.samples[V];
        seg.bytes = seg.bytes.saturating_add(data.len());
        let size = Sample::video(dts, cts, key, data.clone()).size;
        list.push(Sample {
            size,
            ..Sample::video(dts, cts, key, Bytes::new())
        });
        if low_latency {
            seg.part_data.push(data);
        }
        self.last_dts[V] = Some(dts);
    }

    /// Runs `f` on the open segment, taken out of `self` meanwhile.
    fn with_open_seg(&mut self, f: impl FnOnce(&mut Self, &mut OpenSeg)) {
        if let Some(mut seg) = self.seg.take() {
            f(self, &mut seg);
            self.seg = Some(seg);
        }
    }

    /// Writes samples `[part_from, upto)` of `kind` of `seg` as its next part: a `moof` +
    /// `mdat` of their own. LL-HLS: a file under a temporary name renamed when whole (a part
    /// is listed as soon as it exists). Low-latency DASH: the next chunk of the segment's
    /// growing file. Nothing without either.
    fn make_part(&mut self, seg: &mut OpenSeg, kind: Kind, upto: usize) {
        let ll_hls = self.part_place();
        if ll_hls.is_none() && !self.chunked() {
            return;
        }
        let Some(track) = self.period(seg.period).and_then(|p| p.track(kind)) else {
            return;
        };
        let suffix_ts = track.suffix_ts;
        let from = *kind.of(&seg.part_from);
        let samples = kind.of(&seg.samples);
        let Some(part) = samples.get(from..upto.min(samples.len())) else {
            return;
        };
        let (Some(first), Some(last)) = (part.first(), part.last()) else {
            return;
        };
        let t = first.dts;
        let d = last
            .dts
            .saturating_add(u64::from(last.duration))
            .saturating_sub(t)
            .max(1);
        let independent = first.keyframe;
        let seq = *kind.of(&self.part_sequence);
        let head = fmp4::media_segment_head(seq, part);
        let data: Vec<Bytes> = match kind {
            Kind::Video => seg
                .part_data
                .drain(..part.len().min(seg.part_data.len()))
                .collect(),
            Kind::Audio => part.iter().map(|s| s.data.clone()).collect(),
        };
        let count = part.len();
        *kind.of_mut(&mut seg.part_from) = from.saturating_add(count);
        let Ok(head) = head else { return };
        *kind.of_mut(&mut self.part_sequence) = seq.wrapping_add(1);
        if self.chunked() {
            self.append_chunk(seg, kind, suffix_ts, &head, &data);
        }
        let Some((dir, stem)) = ll_hls else { return };
        let file = part_file(&stem, kind, t, suffix_ts);
        let path = dir.join(&file);
        let mut temp = path.clone().into_os_string();
        temp.push(PART_SUFFIX);
        let temp = PathBuf::from(temp);
        self.ensure_dir();
        self.emit(FileOp::Open { path: temp.clone() }, Effect::Other);
        for data in std::iter::once(head).chain(data).filter(|b| !b.is_empty()) {
            let op = FileOp::Append {
                path: temp.clone(),
                data,
            };
            self.emit(op, Effect::Other);
        }
        let op = FileOp::Commit {
            path: temp,
            to: path.clone(),
        };
        self.emit(op, Effect::Other);
        kind.of_mut(&mut seg.parts).push(Part {
            t,
            d,
            independent,
            path,
            uri: mpd::uri_escape(&file),
            next_uri: mpd::uri_escape(&part_file(&stem, kind, t.saturating_add(d), suffix_ts)),
        });
        self.parts_unlisted = true;
    }

    /// Low-latency DASH: appends a chunk (`head` and `data`) to `kind`'s growing segment
    /// file, opened (`<segment>.part`) with the first; that has the segment's `styp`.
    fn append_chunk(
        &mut self,
        seg: &mut OpenSeg,
        kind: Kind,
        suffix_ts: Option<u32>,
        head: &Bytes,
        data: &[Bytes],
    ) {
        if seg.spool_lost {
            // Dropped at its cut; more writes would fail and take others down with them.
            return;
        }
        let (path, head) = match kind.of(&seg.growing) {
            Some((path, _)) => (path.clone(), fmp4::without_styp(head)),
            None => {
                let Some(t) = kind.of(&seg.samples).first().map(|s| s.dts) else {
                    return;
                };
                let file = self.layout.segment_file(kind, t, suffix_ts);
                let mut path = self.layout.dir.join(file).into_os_string();
                path.push(PART_SUFFIX);
                let path = PathBuf::from(path);
                self.ensure_dir();
                self.emit(FileOp::Open { path: path.clone() }, Effect::Other);
                *kind.of_mut(&mut seg.growing) = Some((path.clone(), 0));
                (path, head.clone())
            }
        };
        let mut len = 0u64;
        for data in std::iter::once(head)
            .chain(data.iter().cloned())
            .filter(|b| !b.is_empty())
        {
            len = len.saturating_add(data.len() as u64);
            let path = path.clone();
            self.emit(FileOp::Append { path, data }, Effect::Other);
        }
        if let Some((_, bytes)) = kind.of_mut(&mut seg.growing) {
            *bytes = bytes.saturating_add(len);
        }
        // Players stream the segment as it grows: the chunk must not wait for a batch.
        self.emit(FileOp::Flush { path }, Effect::Other);
    }

    /// `dash_low_latency`: segments are written as chunks while they grow, and the MPD
    /// announces the one being written.
    fn chunked(&self) -> bool {
        self.settings.low_latency && self.mpd_enabled
    }

    /// The target length of parts (LL-HLS) or chunks (low-latency DASH), ms; `None` without
    /// either (`nginx -t` makes them equal when both are on).
    fn part_ms(&self) -> Option<u64> {
        let hls = self.hls.as_ref().and_then(|h| h.part_ms);
        hls.or_else(|| self.chunked().then_some(self.settings.chunk_ms))
    }

    /// The directory and file name prefix of LL-HLS parts: HLS's (`None` without
    /// `hls_low_latency`).
    fn part_place(&self) -> Option<(PathBuf, String)> {
        let h = self.hls.as_ref().filter(|h| h.part_ms.is_some())?;
        Some(match &h.links {
            Some((dir, stem)) => (dir.clone(), stem.clone()),
            None => (self.layout.dir.clone(), self.layout.stem.clone()),
        })
    }

    /// LL-HLS audio parts of the segment waiting for audio and of the open one: frames whose
    /// length is known (a later frame came), and in the open segment only those before the
    /// newest video frame (a keyframe cut there or later cannot move them to the next
    /// segment).
    fn audio_parts(&mut self) {
        if self.part_ms().is_none() {
            return;
        }
        let video_ms = self
            .current_track(Kind::Video)
            .zip(self.last_dts[V])
            .map(|(t, dts)| mpd::ticks_to_ms_ceil(dts, t.timescale));
        let video_mode = self.video_mode();
        if let Some(mut c) = self.closing.take() {
            self.audio_parts_of(&mut c.seg, None);
            self.closing = Some(c);
        }
        if let Some(mut seg) = self.seg.take() {
            let limit = if video_mode {
                Some(video_ms.unwrap_or(0))
            } else {
                None
            };
            self.audio_parts_of(&mut seg, limit);
            self.seg = Some(seg);
        }
    }

    fn audio_parts_of(&mut self, seg: &mut OpenSeg, limit_ms: Option<u64>) {
        let Some(ts) = self
            .period(seg.period)
            .and_then(|p| p.track(Kind::Audio))
            .map(|t| t.timescale)
        else {
            return;
        };
        self.plan_parts(seg, Kind::Audio);
        let Some((max_frames, max_ticks)) = self.part_bounds(seg.period, Kind::Audio) else {
            return;
        };
        let limit = limit_ms.map(|ms| mpd::ms_to_ticks(ms, ts));
        let from = seg.part_from[A];
        let samples = &seg.samples[A];
        // The newest frame's length is not known yet.
        let known = samples.len().saturating_sub(1);
        let durations: Vec<u64> = samples
            .get(from..known)
            .unwrap_or_default()
            .iter()
            .take_while(|s| limit.is_none_or(|l| s.dts < l))
            .map(|s| u64::from(s.duration))
            .collect();
        let rule = PartRule {
            plan: seg.plans[A].as_deref().unwrap_or_default(),
            max_frames,
            max_ticks,
        };
        for end in rule.ends(from, &durations, false) {
            self.make_part(seg, Kind::Audio, end);
        }
    }

    /// The rest of a finished segment as parts (as its rule splits it).
    fn finish_parts(&mut self, seg: &mut OpenSeg) {
        if self.part_ms().is_none() {
            return;
        }
        for kind in [Kind::Video, Kind::Audio] {
            self.plan_parts(seg, kind);
            let Some((max_frames, max_ticks)) = self.part_bounds(seg.period, kind) else {
                continue;
            };
            let from = *kind.of(&seg.part_from);
            let durations: Vec<u64> = kind
                .of(&seg.samples)
                .get(from..)
                .unwrap_or_default()
                .iter()
                .map(|s| u64::from(s.duration))
                .collect();
            let rule = match kind {
                // Video parts were cut as frames came; what is left is one part.
                Kind::Video => PartRule::greedy(u64::MAX),
                Kind::Audio => PartRule {
                    plan: seg.plans[A].as_deref().unwrap_or_default(),
                    max_frames,
                    max_ticks,
                },
            };
            for end in rule.ends(from, &durations, true) {
                self.make_part(seg, kind, end);
            }
        }
    }

    /// How parts of `kind` are bounded in a segment of `period`: the most frames (once the
    /// stream's part target is fixed and the frame length known) and the longest part
    /// (ticks).
    fn part_bounds(&self, period: u64, kind: Kind) -> Option<(usize, u64)> {
        let part_ms = self.part_ms()?;
        let track = self.period(period)?.track(kind)?;
        let Some(target_ms) = *kind.of(&self.part_target_ms) else {
            return Some((usize::MAX, mpd::ms_to_ticks(part_ms, track.timescale)));
        };
        let ticks = mpd::ms_to_ticks(target_ms, track.timescale);
        let frames = kind
            .of(&self.frame_ticks)
            .map_or(usize::MAX, |f| parts::frames_within(ticks, f));
        Some((frames, ticks))
    }

    /// Plans where `kind`'s parts end in `seg`, once the part target and the segment's
    /// expected length are known: video as many frames as the last segment, audio (with
    /// video) up to the first frame at or after the expected video end, audio alone as many
    /// frames as the last segment.
    fn plan_parts(&self, seg: &mut OpenSeg, kind: Kind) {
        if kind.of(&seg.plans).is_some() {
            return;
        }
        let Some((max, _)) = self.part_bounds(seg.period, kind) else {
            return;
        };
        if kind.of(&self.part_target_ms).is_none() || max == usize::MAX {
            return;
        }
        let expected = match kind {
            Kind::Audio if self.video_mode() => self.expected_audio_frames(seg),
            _ => *kind.of(&self.expected_frames),
        };
        if let Some(frames) = expected {
            *kind.of_mut(&mut seg.plans) = Some(parts::planned_ends(frames, max));
        }
    }

    /// Audio frames `seg` is expected to hold: from its first up to the first at or after
    /// the expected video end (where the cut will put it).
    fn expected_audio_frames(&self, seg: &OpenSeg) -> Option<usize> {
        let track = self.period(seg.period)?.track(Kind::Audio)?;
        let first = seg.samples[A].first()?.dts;
        let end = mpd::ms_to_ticks(seg.expected_end_ms?, track.timescale);
        let frames = end.saturating_sub(first).div_ceil(self.frame_ticks[A]?);
        usize::try_from(frames).ok()
    }

    /// The open segment's video spool, opened (truncated) at its first video sample.
    fn video_spool(&mut self) -> Option<PathBuf> {
        let seg = self.seg.as_ref()?;
        if let Some(path) = &seg.spool {
            return Some(path.clone());
        }
        let n = self.next_spool;
        self.next_spool = 1 - n;
        let path = self.layout.spool(n);
        self.ensure_dir();
        self.emit(FileOp::Open { path: path.clone() }, Effect::Other);
        if let Some(flag) = self.spools_opened.get_mut(n) {
            *flag = true;
        }
        if let Some(seg) = self.seg.as_mut() {
            seg.spool = Some(path.clone());
        }
        Some(path)
    }

    fn on_audio(&mut self, timestamp: u32, tag: &Bytes, now: Now) {
        let Ok(t) = flv::parse_audio(tag) else { return };
        // A rendition of another video track is video only: the main stream has the audio.
        let want = match self.role {
            Role::Main => 0,
            Role::Audio(k) => k,
            Role::Video(_) => return,
        };
        if audio_track(&t) != Some(want) {
            return;
        }
        let body = tag.get(t.body_offset..).unwrap_or_default();
        let fourcc = t.codec.fourcc();
        match t.packet {
            AudioPacket::SequenceHeader => {
                if fmp4::needs_first_frame(fourcc) {
                    self.pending[A] = fourcc.map(|f| (f, body_of(tag, t.body_offset)));
                } else {
                    self.pending[A] = None;
                    self.set_source(Kind::Audio, source_of(fourcc, audio_codec(fourcc, body)));
                }
                return;
            }
            AudioPacket::Frame => {}
            _ => return,
        }
        self.adopt_pending(Kind::Audio, fourcc, body);
        let Some(src) = self.sources[A].as_ref() else {
            return;
        };
        if Some(src.fourcc) != fourcc || !frame_ok(&src.codec, body) {
            return;
        }
        let data = body_of(tag, t.body_offset);
        let m = self.timeline.map(Track::Audio, timestamp);
        if m.rebased {
            self.hard_close(now);
        }
        if self.video_mode() {
            if self.current_track(Kind::Audio).is_none() {
                // Before the first keyframe, or a new audio configuration: wait for the cut.
                if self.preroll.len() >= MAX_PREROLL_FRAMES {
                    self.preroll.pop_front();
                }
                self.preroll.push_back((m.out_ms, data));
                return;
            }
            // Video stopped: the segment still ends, after MAX_SEGMENT_FACTOR fragments or
            // at the size caps; the next one starts here, without a sync sample.
            let at = self.media_ms(m.out_ms);
            let over = self
                .seg
                .as_ref()
                .is_some_and(|seg| self.cut.forced(&seg.so_far(at)));
            if over {
                self.hard_close(now);
                if !self.open(m.out_ms, false, now) {
                    return;
                }
            }
            self.push_audio(self.media_ms(m.out_ms), data, now);
            return;
        }
        // Audio only: cut by duration at any frame.
        if self.new_period && self.seg.is_some() {
            self.hard_close(now);
        }
        let ms = self.media_ms(m.out_ms);
        match self.seg.as_ref() {
            None => {
                if !self.open(m.out_ms, true, now) {
                    return;
                }
                let ms = self.media_ms(m.out_ms);
                self.push_audio(ms, data, now);
            }
            Some(seg) => {
                if self.cut.audio_only(&seg.so_far(ms), 0, false) {
                    if let Some((ts, frame)) = self
                        .current_track(Kind::Audio)
                        .map(|t| (t.timescale, self.last_audio_ticks.unwrap_or(t.frame_ticks)))
                    {
                        let dts = self.audio_dts(ms, ts, frame);
                        self.soft_cut(ms, dts, true, now);
                    }
                }
                self.push_audio(ms, data, now);
            }
        }
    }

    /// Places an audio frame at `ms`: in the segment waiting for audio if it is before that
    /// cut, else in the open segment (frames before the open segment's start are dropped).
    fn push_audio(&mut self, ms: u64, data: Bytes, now: Now) {
        let Some((ts, frame, ticks)) = self.current_track(Kind::Audio).map(|t| {
            let step = self.last_audio_ticks.unwrap_or(t.frame_ticks);
            (t.timescale, step, t.codec.frame_ticks(&data))
        }) else {
            return;
        };
        let dts = self.audio_dts(ms, ts, frame);
        // The next frame follows this one by this frame's own length (Opus varies).
        self.last_audio_ticks = ticks;
        if let Some(c) = self.closing.as_mut() {
            if ms < c.boundary_ms {
                Self::append_audio(&mut c.seg, dts, data);
                self.last_dts[A] = Some(dts);
                return;
            }
            self.finalize_closing(Some(dts), now);
        }
        let Some(seg) = self.seg.as_mut() else { return };
        if ms < seg.start_ms {
            return;
        }
        Self::append_audio(seg, dts, data);
        self.last_dts[A] = Some(dts);
    }

    fn append_audio(seg: &mut OpenSeg, dts: u64, data: Bytes) {
        let list = &mut seg.samples[A];
        if let Some(prev) = list.last_mut() {
            let step = dts.saturating_sub(prev.dts);
            prev.duration = u32::try_from(step).unwrap_or(u32::MAX);
        }
        seg.bytes = seg.bytes.saturating_add(data.len());
        list.push(Sample::audio(dts, 0, data));
    }

    // ---- cuts ----

    /// Opens a segment at timeline time `out_ms` (a keyframe, or an audio frame when audio
    /// only): maps it onto the presentation timeline, opens a Period if needed (writing its
    /// init segments) and takes the waiting audio. False when there is nothing to carry.
    fn open(&mut self, out_ms: u64, sap: bool, now: Now) -> bool {
        let kinds: Vec<Kind> = if self.video_mode() {
            [Kind::Video, Kind::Audio]
                .into_iter()
                .filter(|k| k.of(&self.sources).is_some())
                .collect()
        } else if self.sources[A].is_some() {
            vec![Kind::Audio]
        } else {
            return false;
        };

        let reuse = !self.new_period
            && self.periods.back().is_some_and(|p| {
                p.tracks.len() == kinds.len()
                    && kinds.iter().all(|k| {
                        p.track(*k).is_some_and(|t| {
                            k.of(&self.sources)
                                .as_ref()
                                .is_some_and(|s| s.codec == t.codec)
                        })
                    })
            });
        // Presentation time of this segment: in the same Period after the end of what is
        // there; a new Period may cut the previous one's tail short, but starts after the
        // start of its every segment (so file names never repeat).
        let bound = if reuse {
            self.cuts.back().map_or(0, |c| c.end_ms)
        } else {
            self.periods
                .back()
                .into_iter()
                .flat_map(|p| p.tracks.iter())
                .filter_map(|t| {
                    let e = t.entries.back()?;
                    Some(mpd::ticks_to_ms_ceil(e.t, t.timescale).saturating_add(1))
                })
                .max()
                .unwrap_or(0)
        }
        .max(self.restored_end_ms);
        let pt_c = self.media_ms(out_ms);
        let target = match self.ast {
            None => {
                let start = bound;
                self.ast = Some(now.unix_ms.saturating_sub(start));
                start
            }
            Some(ast) => {
                let mut target = pt_c.max(bound);
                let wall = now.unix_ms.saturating_sub(ast);
                // After a restart the new media starts now: never earlier on the timeline,
                // or its segments would be announced before they exist.
                let threshold = if self.restarted {
                    0
                } else {
                    RESYNC_THRESHOLD_MS
                };
                if self.resync && wall > target.saturating_add(threshold) {
                    target = wall;
                }
                self.restarted = false;
                target
            }
        };
        self.offset = self
            .offset
            .saturating_add(i64::try_from(target).unwrap_or(i64::MAX))
            .saturating_sub(i64::try_from(pt_c).unwrap_or(i64::MAX));
        self.resync = false;

        let period_id = if reuse {
            self.periods.back().map_or(0, |p| p.id)
        } else {
            self.open_period(&kinds, target)
        };
        self.new_period = false;
        self.seg = Some(OpenSeg::new(period_id, target, sap));
        // Audio that arrived before its segment.
        for (out, data) in std::mem::take(&mut self.preroll) {
            let ms = self.media_ms(out);
            if ms >= target {
                self.push_audio(ms, data, now);
            }
        }
        true
    }

    fn open_period(&mut self, kinds: &[Kind], start_ms: u64) -> u64 {
        // Sample times start afresh on the Period's timescales (they start at or after the
        // previous Period's end, so they still only grow).
        self.last_dts = [None, None];
        self.last_audio_ticks = None;
        let id = self.next_period_id;
        self.next_period_id = self.next_period_id.saturating_add(1);
        let mut tracks = Vec::new();
        for &kind in kinds {
            let Some(src) = kind.of(&self.sources).clone() else {
                continue;
            };
            let timescale = src.codec.timescale().max(1);
            let plain_ts = kind.of_mut(&mut self.plain_ts);
            let suffix_ts = match *plain_ts {
                None => {
                    *plain_ts = Some(timescale);
                    None
                }
                Some(ts) if ts == timescale => None,
                Some(_) => Some(timescale),
            };
            // An init segment identical to one already listed is reused.
            let existing = self
                .periods
                .iter()
                .rev()
                .filter_map(|p| p.track(kind))
                .find(|t| t.init == src.init)
                .map(|t| (t.init_path.clone(), t.init_uri.clone()));
            let (init_path, init_uri) = existing.unwrap_or_else(|| {
                let next = kind.of_mut(&mut self.next_init_version);
                let v = *next;
                *next = v.saturating_add(1);
                let file = self.layout.init_file(kind, v);
                (self.layout.dir.join(&file), mpd::uri_escape(&file))
            });
            if !self.inits_on_disk.contains(&init_path) {
                self.write_init(init_path.clone(), src.init.clone());
            }
            tracks.push(PeriodTrack {
                kind,
                frame_ticks: src.codec.nominal_frame_ticks(),
                codec: src.codec,
                timescale,
                suffix_ts,
                init: src.init,
                init_path,
                init_uri,
                entries: VecDeque::new(),
            });
        }
        self.periods.push_back(Period {
            id,
            start_ms,
            tracks,
        });
        id
    }

    fn write_init(&mut self, path: PathBuf, data: Bytes) {
        self.ensure_dir();
        self.inits_on_disk.insert(path.clone());
        self.emit(
            FileOp::WriteAtomic {
                path: path.clone(),
                data,
            },
            Effect::Init,
        );
        self.link(&path, false, Effect::Init);
    }

    /// A cut at presentation time `ms` (video dts `next_dts` for video streams, or the audio
    /// dts of the frame at the cut for audio-only ones): the open segment's video ends here;
    /// its audio ends at the first frame at or after `ms`, now or when it arrives.
    fn soft_cut(&mut self, ms: u64, next_dts: u64, sap: bool, now: Now) {
        self.finalize_closing(None, now);
        let Some(mut seg) = self.seg.take() else {
            return;
        };
        let audio_only = !self.video_mode();
        let mut next = OpenSeg::new(seg.period, ms, sap);
        if audio_only {
            self.finalize_audio(&mut seg, Some(next_dts));
            self.learn_part_sizes(&seg, ms, &mut next);
            self.seg = Some(next);
            self.commit(seg, now);
            return;
        }
        if let Some(last) = seg.samples[V].last_mut() {
            last.duration =
                u32::try_from(next_dts.saturating_sub(last.dts).max(1)).unwrap_or(u32::MAX);
        }
        // LL-HLS: the segment's video is whole: its last part goes now, not with its audio.
        let upto = seg.samples[V].len();
        self.make_part(&mut seg, Kind::Video, upto);
        self.learn_part_sizes(&seg, ms, &mut next);
        let audio = self
            .period(seg.period)
            .and_then(|p| p.track(Kind::Audio))
            .map(|t| t.timescale);
        let Some(ats) = audio else {
            self.seg = Some(next);
            self.commit(seg, now);
            return;
        };
        let boundary = mpd::ms_to_ticks(ms, ats);
        let split = seg.samples[A]
            .iter()
            .position(|s| s.dts >= boundary)
            .unwrap_or(seg.samples[A].len())
            // Frames already in an LL-HLS part stay in their segment.
            .max(seg.part_from[A]);
        let moved = seg.samples[A].split_off(split);
        let moved_bytes: usize = moved.iter().map(|s| s.data.len()).sum();
        seg.bytes = seg.bytes.saturating_sub(moved_bytes);
        next.bytes = moved_bytes;
        let first_moved = moved.first().map(|s| s.dts);
        next.samples[A] = moved;
        self.seg = Some(next);
        match first_moved {
            Some(dts) => {
                // Audio already passed the cut: the last frame before it ends where the next
                // begins (its duration was set when that frame arrived).
                self.finalize_audio(&mut seg, Some(dts));
                self.commit(seg, now);
            }
            None => {
                self.closing = Some(Closing {
                    seg,
                    boundary_ms: ms,
                })
            }
        }
    }

    /// At the cut of `seg` at `ms` (its video, or its audio alone, whole): the next segment
    /// (`next`) is expected as long as it ([`Self::plan_parts`]), and at the stream's first
    /// cut each kind's part target is fixed from it.
    fn learn_part_sizes(&mut self, seg: &OpenSeg, ms: u64, next: &mut OpenSeg) {
        if self.part_ms().is_none() {
            return;
        }
        let kind = if self.video_mode() {
            Kind::Video
        } else {
            Kind::Audio
        };
        let samples = kind.of(&seg.samples);
        *kind.of_mut(&mut self.expected_frames) = Some(samples.len());
        let length_ms = ms.saturating_sub(seg.start_ms);
        next.expected_end_ms = Some(ms.saturating_add(length_ms));
        let durations: Vec<u64> = samples.iter().map(|s| u64::from(s.duration)).collect();
        *kind.of_mut(&mut self.frame_ticks) = average(&durations);
        if self.part_target_ms.iter().any(Option::is_some) {
            return;
        }
        self.part_target_ms[V] = self.first_part_target(seg, Kind::Video, length_ms);
        self.part_target_ms[A] = self.first_part_target(seg, Kind::Audio, length_ms);
    }

    /// `kind`'s part target (ms), from the stream's first segment `seg`, `length_ms` long:
    /// as many frames as split a segment of that length evenly near the configured length
    /// ([`parts::target_frames`]), as long as the longest run of that many frames in it
    /// (timestamps in ms jitter: then 1 ms more), and never shorter than a part already
    /// written. Each media playlist has its own: audio frames do not divide video parts.
    fn first_part_target(&self, seg: &OpenSeg, kind: Kind, length_ms: u64) -> Option<u64> {
        let part_ms = self.part_ms()?;
        let track = self.period(seg.period)?.track(kind)?;
        let ts = track.timescale;
        let samples = kind.of(&seg.samples);
        let mut durations: Vec<u64> = samples.iter().map(|s| u64::from(s.duration)).collect();
        if kind == Kind::Audio && self.video_mode() {
            // Its last frame's length is not known yet.
            durations.pop();
        }
        let frame = average(&durations).unwrap_or(track.frame_ticks).max(1);
        let length = mpd::ms_to_ticks(length_ms, ts);
        let expected = usize::try_from(length.div_ceil(frame)).unwrap_or(usize::MAX);
        let configured = parts::frames_within(mpd::ms_to_ticks(part_ms, ts), frame);
        let frames = parts::target_frames(expected, configured);
        let whole = (frames as u64).saturating_mul(frame);
        let (longest, shortest) = parts::run_lengths(&durations, frames);
        let (longest, jitter) = if durations.len() >= frames {
            (longest, u64::from(longest != shortest))
        } else {
            (whole, 0)
        };
        let written = kind
            .of(&seg.parts)
            .iter()
            .map(|p| mpd::ticks_to_ms_ceil(p.d, ts))
            .max()
            .unwrap_or(0);
        let target = mpd::ticks_to_ms_ceil(longest, ts).saturating_add(jitter);
        Some(target.max(written))
    }

    /// Duration from `dts` to `next` when that is a plausible frame step, else `nominal`.
    fn stretch(dts: u64, next: u64, nominal: u64, max: u64) -> u32 {
        let d = next.saturating_sub(dts);
        let d = if (1..=max).contains(&d) {
            d
        } else {
            nominal.max(1)
        };
        u32::try_from(d).unwrap_or(u32::MAX)
    }

    /// Sets the duration of a segment's last audio frame: up to the next frame when it
    /// follows closely, else one frame.
    fn finalize_audio(&self, seg: &mut OpenSeg, next: Option<u64>) {
        let Some((frame, ts)) = self
            .period(seg.period)
            .and_then(|p| p.track(Kind::Audio))
            .map(|t| (t.frame_ticks, t.timescale))
        else {
            return;
        };
        let max = mpd::ms_to_ticks(MAX_AUDIO_STRETCH_MS, ts).max(frame);
        if let Some(last) = seg.samples[A].last_mut() {
            last.duration = match next {
                Some(n) => Self::stretch(last.dts, n, frame, max),
                None => u32::try_from(frame.max(1)).unwrap_or(u32::MAX),
            };
        }
    }

    fn finalize_closing(&mut self, next_audio: Option<u64>, now: Now) {
        let Some(c) = self.closing.take() else { return };
        let mut seg = c.seg;
        self.finalize_audio(&mut seg, next_audio);
        self.commit(seg, now);
    }

    /// Ends everything now (restart, jump, new Period, unpublish): last samples get nominal
    /// durations; the next segment opens at the next keyframe.
    fn hard_close(&mut self, now: Now) {
        self.finalize_closing(None, now);
        if let Some(mut seg) = self.seg.take() {
            let step = self.video_step.unwrap_or_else(|| {
                let ts = self
                    .period(seg.period)
                    .and_then(|p| p.track(Kind::Video))
                    .map_or(1000, |t| t.timescale);
                mpd::ms_to_ticks(DEFAULT_VIDEO_STEP_MS, ts)
            });
            if let Some(last) = seg.samples[V].last_mut() {
                last.duration = u32::try_from(step.max(1)).unwrap_or(u32::MAX);
            }
            self.finalize_audio(&mut seg, None);
            self.commit(seg, now);
        }
        self.resync = true;
    }

    /// Writes a finished segment's files, records them and lists what is available.
    fn commit(&mut self, mut seg: OpenSeg, now: Now) {
        if seg.spool_lost {
            // Its video on disk is incomplete: a gap (the failure was logged by the IO ring).
            // A growing file goes, so a reader streaming it sees it end unfinished.
            for (path, _) in std::mem::take(&mut seg.growing).into_iter().flatten() {
                self.emit(FileOp::Abort { path }, Effect::Other);
            }
            let parts = std::mem::take(&mut seg.parts);
            self.drop_parts(parts, now);
            return;
        }
        self.finish_parts(&mut seg);
        if self.video_mode() {
            // Audio frames of the next segments: as long as these (its last one's length is
            // a guess).
            let audio: Vec<u64> = seg.samples[A]
                .iter()
                .map(|s| u64::from(s.duration))
                .collect();
            if let Some(avg) = average(audio.split_last().map_or(&[][..], |(_, rest)| rest)) {
                self.frame_ticks[A] = Some(avg);
            }
        }
        let Some(period) = self.period(seg.period) else {
            return;
        };
        let start = period.start_ms;
        let plans: Vec<(Kind, u32, Option<u32>)> = period
            .tracks
            .iter()
            .map(|t| (t.kind, t.timescale, t.suffix_ts))
            .collect();
        let cut = self.next_cut;
        let mut entries = Vec::new();
        let mut renames = Vec::new();
        let mut end_ms = 0u64;
        for (kind, ts, suffix_ts) in plans {
            let samples = kind.of(&seg.samples);
            let (Some(first), Some(last)) = (samples.first(), samples.last()) else {
                continue;
            };
            let seq = *kind.of(&self.sequence);
            let Ok(head) = fmp4::media_segment_head(seq, samples) else {
                continue;
            };
            *kind.of_mut(&mut self.sequence) = seq.wrapping_add(1);
            let t = first.dts;
            let d = last
                .dts
                .saturating_add(u64::from(last.duration))
                .saturating_sub(t)
                .max(1);
            let file = self.layout.segment_file(kind, t, suffix_ts);
            let path = self.layout.dir.join(&file);
            let mut part = path.clone().into_os_string();
            part.push(PART_SUFFIX);
            let part = PathBuf::from(part);
            let pto = mpd::ms_to_ticks(start, ts);
            end_ms = end_ms.max(start.saturating_add(mpd::ticks_to_ms_ceil(
                t.saturating_add(d).saturating_sub(pto),
                ts,
            )));
            let entry = |bytes: u64| Entry {
                cut,
                t,
                d,
                path: path.clone(),
                bytes,
                frames: samples.len() as u64,
                sap: first.keyframe,
            };
            if let Some((growing, bytes)) = kind.of_mut(&mut seg.growing).take() {
                // Low-latency DASH: its chunks are all in its growing file (the last ones
                // were just cut by `finish_parts`).
                entries.push((kind, entry(bytes)));
                renames.push((growing, path.clone()));
                continue;
            }
            self.ensure_dir();
            let written = Effect::Segment {
                cut,
                committed: false,
            };
            self.emit(FileOp::Open { path: part.clone() }, written);
            // The samples' own buffers (slices of what the publisher sent) go to the disk
            // after the header: no copy of the media into one segment buffer. Video was
            // gathered in its spool: what of it waited in memory goes straight after the
            // header, what reached the spool file is copied by the kernel (`io::perform`).
            let spool = seg.spool.clone().filter(|_| kind == Kind::Video);
            let file_len = head.len() + samples.iter().map(|s| s.size as usize).sum::<usize>();
            let parts: Vec<Bytes> = std::iter::once(head)
                .chain(samples.iter().map(|s| s.data.clone()))
                .filter(|b| !b.is_empty())
                .collect();
            for data in parts {
                self.emit(
                    FileOp::Append {
                        path: part.clone(),
                        data,
                    },
                    written,
                );
            }
            if let Some(from) = spool {
                self.emit(
                    FileOp::AppendFrom {
                        path: part.clone(),
                        from: from.clone(),
                    },
                    written,
                );
                // Emptied at once: the disk holds each segment's video once, not twice.
                self.emit(FileOp::Open { path: from }, Effect::Other);
            }
            renames.push((part, path.clone()));
            entries.push((kind, entry(file_len as u64)));
        }
        if entries.is_empty() {
            let parts = std::mem::take(&mut seg.parts);
            self.drop_parts(parts, now);
            return;
        }
        self.next_cut = self.next_cut.saturating_add(1);
        if let Some(p) = self.period_mut(seg.period) {
            for (kind, e) in entries {
                if let Some(t) = p.tracks.iter_mut().find(|t| t.kind == kind) {
                    t.entries.push_back(e);
                }
            }
        }
        self.cuts.push_back(Cut {
            index: cut,
            period: seg.period,
            start_ms: seg.start_ms,
            end_ms,
            listed: false,
            renames,
            parts: std::mem::take(&mut seg.parts),
        });
        if !self.finished {
            self.list_available(now, false);
        }
    }

    // ---- the MPD ----

    /// Lists the segments that became available and writes the MPD when that changed it
    /// (or `force`).
    fn list_available(&mut self, now: Now, force: bool) {
        let Some(ast) = self.ast else { return };
        let mut newly = false;
        self.hold_until = None;
        let mut renames = Vec::new();
        // Only an MPD has an availability clock: the segments of HLS-only streams (and of
        // their renditions) are listed once whole (holding them would also hide the LL-HLS
        // parts after them).
        // Low-latency DASH announces each segment while it is written: it is listed whole
        // at once.
        let clocked = !matches!(&self.hls, Some(h) if h.links.is_none()) && !self.chunked();
        for c in self.cuts.iter_mut().filter(|c| !c.listed) {
            let avail = if clocked {
                ast.saturating_add(c.end_ms)
            } else {
                0
            };
            if avail <= now.unix_ms {
                c.listed = true;
                newly = true;
                let index = c.index;
                renames.extend(
                    std::mem::take(&mut c.renames)
                        .into_iter()
                        .map(|r| (index, r)),
                );
            } else {
                self.hold_until = Some(avail);
                break;
            }
        }
        self.emit_renames(renames);
        if newly {
            self.trim(now);
        }
        if newly || force {
            self.write_mpd(now, true);
        }
    }

    /// Closes and deletes the video spool files (the stream ended).
    fn remove_spools(&mut self) {
        let opened = std::mem::take(&mut self.spools_opened);
        for (n, _) in opened.iter().enumerate().filter(|(_, open)| **open) {
            let path = self.layout.spool(n);
            self.emit(FileOp::Abort { path }, Effect::Other);
        }
    }

    /// Gives listed segments their final names, just before the MPD that lists them.
    fn emit_renames(&mut self, renames: Vec<(u64, (PathBuf, PathBuf))>) {
        for (cut, (path, to)) in renames {
            let effect = Effect::Segment {
                cut,
                committed: true,
            };
            self.emit(
                FileOp::Commit {
                    path,
                    to: to.clone(),
                },
                effect,
            );
            let effect = Effect::Segment {
                cut,
                committed: false,
            };
            self.link(&to, true, effect);
        }
    }

    fn release_held(&mut self, now: Now) {
        if self.hold_until.is_some_and(|h| h <= now.unix_ms) {
            self.list_available(now, false);
        }
    }

    fn longest_listed_ms(&self) -> u64 {
        self.cuts
            .iter()
            .filter(|c| c.listed)
            .map(|c| c.end_ms.saturating_sub(c.start_ms))
            .max()
            .unwrap_or(0)
    }

    /// How long a file that left the MPD stays on disk (see [`Grace`] for the DASH
    /// measures).
    fn grace_ms(&self) -> u64 {
        retention::grace_ms(Grace {
            window_ms: self.settings.playlist_length_ms,
            longest_ms: self.longest_listed_ms(),
            listed_ms: 0,
            refresh_ms: self.settings.fragment_ms,
        })
    }

    fn deletes_enabled(&self) -> bool {
        self.settings.cleanup
    }

    /// Drops listed cuts that left the window (`dash_playlist_length` before the newest
    /// listed end) and Periods left without segments, and schedules their files' deletion.
    fn trim(&mut self, now: Now) {
        let Some(newest) = self.cuts.iter().rev().find(|c| c.listed).map(|c| c.end_ms) else {
            return;
        };
        let due = now.mono_ms.saturating_add(self.grace_ms());
        let mut dropped: Vec<PathBuf> = Vec::new();
        let mut dropped_parts: Vec<Part> = Vec::new();
        while self.cuts.len() > 1 {
            let Some(front) = self.cuts.front() else {
                break;
            };
            let second_listed = self.cuts.get(1).is_some_and(|c| c.listed);
            if !front.listed
                || !second_listed
                || newest.saturating_sub(front.end_ms) < self.settings.playlist_length_ms
            {
                break;
            }
            let (index, period) = (front.index, front.period);
            if let Some(c) = self.cuts.pop_front() {
                dropped_parts.extend(c.parts.into_iter().flatten());
            }
            if let Some(p) = self.period_mut(period) {
                for t in &mut p.tracks {
                    while t.entries.front().is_some_and(|e| e.cut <= index) {
                        if let Some(e) = t.entries.pop_front() {
                            dropped.push(e.path);
                        }
                    }
                }
            }
        }
        // Periods with nothing left (but never the one being written).
        let open = self
            .seg
            .as_ref()
            .map(|s| s.period)
            .or(self.closing.as_ref().map(|c| c.seg.period));
        let last = self.periods.back().map(|p| p.id);
        let mut inits = Vec::new();
        self.periods.retain(|p| {
            let keep = Some(p.id) == open
                || Some(p.id) == last
                || p.tracks.iter().any(|t| !t.entries.is_empty());
            if !keep {
                inits.extend(p.tracks.iter().map(|t| t.init_path.clone()));
            }
            keep
        });
        for path in inits {
            if !self.init_in_use(&path) && !dropped.contains(&path) {
                self.inits_on_disk.remove(&path);
                dropped.push(path);
            }
        }
        if self.deletes_enabled() {
            self.retention.schedule_all(due, dropped);
        }
        self.prune_parts(now);
        self.drop_parts([dropped_parts], now);
    }

    /// Deletes LL-HLS parts after the grace a segment gets (with or without `hls_cleanup`:
    /// they repeat their segment's media).
    fn drop_parts(
        &mut self,
        parts: impl IntoIterator<Item = impl IntoIterator<Item = Part>>,
        now: Now,
    ) {
        let due = now.mono_ms.saturating_add(self.grace_ms());
        let paths: Vec<PathBuf> = parts.into_iter().flatten().map(|p| p.path).collect();
        self.retention.schedule_all(due, paths);
    }

    /// Listed segments keep their parts in the playlist while within three target
    /// durations of its end (RFC 8216bis: at least that much), then lose them.
    fn prune_parts(&mut self, now: Now) {
        let Some(newest) = self.cuts.iter().rev().find(|c| c.listed).map(|c| c.end_ms) else {
            return;
        };
        let window = self
            .longest_listed_ms()
            .div_ceil(1000)
            .max(1)
            .saturating_mul(3000);
        let mut old = Vec::new();
        for c in self.cuts.iter_mut().filter(|c| c.listed) {
            if c.end_ms.saturating_add(window) < newest {
                old.extend(std::mem::take(&mut c.parts));
            }
        }
        self.drop_parts(old, now);
    }

    fn init_in_use(&self, path: &Path) -> bool {
        self.periods
            .iter()
            .any(|p| p.tracks.iter().any(|t| t.init_path == path))
    }

    fn referenced(&self, path: &Path) -> bool {
        self.init_in_use(path)
            || self.periods.iter().any(|p| {
                p.tracks
                    .iter()
                    .any(|t| t.entries.iter().any(|e| e.path == path))
            })
    }

    fn build_mpd(&self, now: Now, dynamic: bool) -> mpd::Mpd {
        // Cuts are listed in order: the listed ones are those before the first unlisted.
        let limit = if dynamic {
            self.cuts
                .iter()
                .find(|c| !c.listed)
                .map_or(u64::MAX, |c| c.index)
        } else {
            u64::MAX
        };
        let included = |cut: u64| cut < limit;
        let mut periods = Vec::new();
        for p in &self.periods {
            let mut sets = Vec::new();
            for (i, t) in p.tracks.iter().enumerate() {
                let listed: Vec<&Entry> = t.entries.iter().filter(|e| included(e.cut)).collect();
                if listed.is_empty() {
                    continue;
                }
                let (mut frames, mut ticks, mut bandwidth) = (0u64, 0u64, 0u64);
                for e in &listed {
                    frames = frames.saturating_add(e.frames);
                    ticks = ticks.saturating_add(e.d);
                    let ms = mpd::ticks_to_ms_ceil(e.d, t.timescale).max(1);
                    bandwidth = bandwidth.max(e.bytes.saturating_mul(8000) / ms);
                }
                let (width, height) = t.codec.dimensions().unwrap_or((0, 0));
                let frame_rate = if t.kind == Kind::Video {
                    self.meta_frame_rate
                        .or_else(|| measured_frame_rate(frames, ticks, t.timescale))
                } else {
                    None
                };
                sets.push(mpd::AdaptationSet {
                    id: u32::try_from(i).unwrap_or(0),
                    content: t.kind.content(),
                    representation_id: t.kind.content().as_str().to_owned(),
                    codecs: t.codec.codec_string(),
                    bandwidth,
                    width,
                    height,
                    frame_rate,
                    sample_rate: t.codec.sample_rate().unwrap_or(0),
                    channels: t
                        .codec
                        .channels()
                        .and_then(|c| u8::try_from(c).ok())
                        .unwrap_or(0),
                    timescale: t.timescale,
                    start_with_sap: listed.iter().all(|e| e.sap),
                    initialization: t.init_uri.clone(),
                    media: self.layout.media_template(t.kind, t.suffix_ts),
                    segments: listed.iter().map(|e| (e.t, e.d)).collect(),
                    first_number: listed.first().map_or(0, |e| e.cut),
                    bytes: listed.iter().map(|e| e.bytes).sum(),
                    renditions: Vec::new(),
                    availability_offset_ms: None,
                });
            }
            self.add_renditions(&mut sets);
            if !sets.is_empty() {
                periods.push(mpd::Period {
                    id: p.id,
                    start_ms: p.start_ms,
                    sets,
                });
            }
        }
        let listed_cuts = || self.cuts.iter().filter(|c| c.listed || !dynamic);
        let origin = listed_cuts().map(|c| c.start_ms).min().unwrap_or(0);
        let end = listed_cuts().map(|c| c.end_ms).max().unwrap_or(0);
        let fragment = self.settings.fragment_ms.max(1);
        let mut utc = Vec::new();
        let scheme = match self.settings.clock_compensation {
            DashClock::Off => None,
            DashClock::Ntp => Some(mpd::UTC_NTP),
            DashClock::HttpHead => Some(mpd::UTC_HTTP_HEAD),
            DashClock::HttpIso => Some(mpd::UTC_HTTP_ISO),
        };
        if let Some(scheme) = scheme.filter(|_| !self.settings.clock_helper_uri.is_empty()) {
            utc.push((scheme.to_owned(), self.settings.clock_helper_uri.clone()));
        }
        utc.push((
            mpd::UTC_DIRECT.to_owned(),
            crate::segment::datetime::utc(now.unix_ms),
        ));
        mpd::Mpd {
            dynamic,
            availability_start_ms: self.ast.unwrap_or(0),
            publish_ms: now.unix_ms,
            update_period_ms: fragment,
            min_buffer_ms: fragment,
            time_shift_ms: self.settings.playlist_length_ms.max(fragment),
            presentation_delay_ms: fragment
                .saturating_mul(3)
                .max(self.longest_listed_ms().saturating_mul(2)),
            origin_ms: origin,
            end_ms: end,
            periods,
            utc_timing: utc,
            latency: None,
        }
    }

    /// Low-latency DASH: the MPD also lists the segment being written, available from its
    /// first chunk on (`availabilityTimeOffset`), and the latency a player should keep. A new
    /// Period starts with its first whole segment.
    ///
    /// Its length is a guess that players take literally: those that name the next segment
    /// from `t + d` of the last one (ffmpeg, VLC) ask for that name. So the guess is the one
    /// that comes true with a steady keyframe interval: video as long as the last segment,
    /// audio up to the first frame at or after that video cut (where the cut puts it).
    fn announce_open(&self, model: &mut mpd::Mpd) {
        let chunk = self.settings.chunk_ms;
        let fragment = self.settings.fragment_ms.max(1);
        // Players keep a few chunks and a frame or two of jitter in their buffer.
        let target = chunk.saturating_mul(3).saturating_add(500).max(1000);
        model.latency = Some(mpd::Latency {
            target_ms: target,
            min_ms: chunk.saturating_mul(2),
            max_ms: target.saturating_mul(2),
        });
        model.update_period_ms = chunk;
        let Some(seg) = self.closing.as_ref().map(|c| &c.seg).or(self.seg.as_ref()) else {
            return;
        };
        let Some(period) = self.period(seg.period) else {
            return;
        };
        let Some(listed) = model.periods.last_mut().filter(|p| p.id == seg.period) else {
            return;
        };
        // The video cut that ends it (ms), once the video guess is made.
        let mut cut_ms: Option<u64> = None;
        let mut sets: Vec<&mut mpd::AdaptationSet> = listed.sets.iter_mut().collect();
        sets.sort_by_key(|s| s.content != ContentType::Video);
        for set in sets {
            let kind = match set.content {
                ContentType::Video => Kind::Video,
                ContentType::Audio => Kind::Audio,
            };
            let Some(track) = period.track(kind) else {
                continue;
            };
            let ts = track.timescale;
            let last = set.segments.last().copied();
            let first = kind.of(&seg.samples).first().map(|s| s.dts);
            let Some(t) = first.or(last.map(|(t, d)| t.saturating_add(d))) else {
                continue;
            };
            if last.is_some_and(|(lt, _)| t <= lt) {
                continue;
            }
            let typical = last.map_or_else(|| mpd::ms_to_ticks(fragment, ts), |(_, d)| d);
            let d = match (kind, cut_ms) {
                (Kind::Audio, Some(ms)) => {
                    // The first frame at or after the cut opens the next segment.
                    let frame = track.frame_ticks.max(1);
                    let boundary = mpd::ms_to_ticks(ms, ts);
                    boundary.saturating_sub(t).div_ceil(frame).max(1) * frame
                }
                _ => typical,
            };
            if kind == Kind::Video {
                let pto = mpd::ms_to_ticks(period.start_ms, ts);
                let end = t.saturating_add(d).saturating_sub(pto);
                cut_ms = Some(
                    period
                        .start_ms
                        .saturating_add(mpd::ticks_to_ms_ceil(end, ts)),
                );
            }
            set.segments.push((t, d));
            let d_ms = mpd::ticks_to_ms_ceil(d, ts);
            // Available once its first chunk is whole: at most the part target.
            let first_chunk = kind.of(&self.part_target_ms).unwrap_or(chunk);
            set.availability_offset_ms = Some(d_ms.saturating_sub(first_chunk));
        }
    }

    /// The renditions of other video tracks as Representations of this Period's video set,
    /// with the segments they have at this set's times (aligned: the same cuts, as a ladder
    /// encoded from one source has).
    fn add_renditions(&self, sets: &mut Vec<mpd::AdaptationSet>) {
        // Other audio tracks: AdaptationSets of their own.
        for (role, (_, set)) in &self.ladder {
            if matches!(role, Role::Audio(_)) {
                let mut set = set.clone();
                set.id = u32::try_from(sets.len()).unwrap_or(u32::MAX);
                sets.push(set);
            }
        }
        let Some(video) = sets.iter_mut().find(|s| s.content == ContentType::Video) else {
            return;
        };
        let times: HashSet<(u64, u32)> = video
            .segments
            .iter()
            .map(|(t, _)| (*t, video.timescale))
            .collect();
        let videos = self
            .ladder
            .iter()
            .filter(|(r, _)| matches!(r, Role::Video(_)));
        for (_, (_, set)) in videos {
            let mut rep = set.clone();
            rep.segments
                .retain(|(t, _)| times.contains(&(*t, rep.timescale)));
            if !rep.segments.is_empty() {
                video.renditions.push(rep);
            }
        }
    }

    fn write_mpd(&mut self, now: Now, dynamic: bool) {
        self.write_manifests(now, dynamic, true);
    }

    /// What LL-HLS adds to the video and audio media playlists: the parts of the listed
    /// segments near the live edge, those of the segment being written (while it is in the
    /// same Period: a new one starts with its first whole segment), the next part's name,
    /// and where the other playlist is.
    fn low_latency(&self, model: &mpd::Mpd) -> [Option<m3u8::LowLatency>; 2] {
        let Some((h, part_ms)) = self.hls.as_ref().and_then(|h| Some((h, h.part_ms?))) else {
            return [None, None];
        };
        let entries = |parts: &[Part]| -> Vec<m3u8::Part> {
            parts
                .iter()
                .map(|p| m3u8::Part {
                    uri: p.uri.clone(),
                    ticks: p.d,
                    independent: p.independent,
                })
                .collect()
        };
        let mut out = [Kind::Video, Kind::Audio].map(|kind| {
            let part_ms = kind.of(&self.part_target_ms).unwrap_or(part_ms);
            let mut ll = m3u8::LowLatency {
                part_target_ms: part_ms,
                ..Default::default()
            };
            let writing = match self.cuts.iter().find(|c| !c.listed) {
                Some(c) => Some((c.period, kind.of(&c.parts))),
                None => self
                    .closing
                    .as_ref()
                    .map(|c| &c.seg)
                    .or(self.seg.as_ref())
                    .map(|s| (s.period, kind.of(&s.parts))),
            };
            let listed: Vec<&Cut> = self.cuts.iter().filter(|c| c.listed).collect();
            let last = listed.last().map(|c| (c.period, kind.of(&c.parts).last()));
            let last_period = last.map(|(p, _)| p);
            let writing = writing.filter(|(p, _)| Some(*p) == last_period);
            // Parts only on the last three segments, counting the one being written (its parts
            // or its preload hint): RFC 8216bis has none more than three target durations
            // from the end, and strict validators count segments.
            for c in listed.iter().skip(listed.len().saturating_sub(2)) {
                let parts = kind.of(&c.parts);
                if let Some(first) = parts.first() {
                    ll.listed.push((first.t, entries(parts)));
                }
            }
            if let Some((period, all)) = writing {
                let mut parts: &[Part] = all;
                // A segment's last part may be short (RFC 8216bis: only the last of its
                // segment). Until the segment is listed, nothing shows it is the last: it waits
                // for the segment (the hint names it meanwhile; it is already whole).
                let ts = self
                    .period(period)
                    .and_then(|p| p.track(kind))
                    .map_or(1000, |t| t.timescale);
                let min = mpd::ms_to_ticks(part_ms, ts).saturating_mul(85) / 100;
                let hint = match parts.split_last() {
                    Some((short, rest)) if short.d < min => {
                        parts = rest;
                        Some(short.uri.clone())
                    }
                    _ => None,
                };
                ll.trailing = entries(parts);
                ll.hint = hint.or_else(|| {
                    parts
                        .last()
                        .or(last.and_then(|(_, p)| p))
                        .map(|p| p.next_uri.clone())
                });
            }
            ll
        });
        for (i, (content, uri)) in [
            (ContentType::Audio, &h.audio.1),
            (ContentType::Video, &h.video.1),
        ]
        .into_iter()
        .enumerate()
        {
            let other = 1 - i;
            let report = out.get(other).and_then(|ll| {
                let (last_msn, last_part) = m3u8::last_position(model, content, ll)?;
                Some(m3u8::Report {
                    uri: uri.clone(),
                    last_msn,
                    last_part,
                })
            });
            if let (Some(r), Some(ll)) = (report, out.get_mut(i)) {
                ll.reports.push(r);
            }
        }
        // The other tracks of a multitrack publisher, in both playlists: the main stream's
        // renditions, or a rendition's fellows.
        let others = self
            .ladder
            .values()
            .map(|(entry, set)| (&entry.uri, set))
            .chain(self.peers.iter().map(|(uri, set)| (uri, set)));
        let reports: Vec<m3u8::Report> = others
            .filter_map(|(uri, set)| {
                let ll = out.get(usize::from(set.content == ContentType::Audio))?;
                let (last_msn, last_part) = ladder_position(model, set, ll)?;
                Some(m3u8::Report {
                    uri: uri.clone(),
                    last_msn,
                    last_part,
                })
            })
            .collect();
        for ll in &mut out {
            ll.reports.extend(reports.iter().cloned());
        }
        out.map(Some)
    }

    /// Writes the MPD and the HLS playlists, or (`full` false: new LL-HLS parts) only the
    /// HLS media playlists.
    fn write_manifests(&mut self, now: Now, dynamic: bool, full: bool) {
        if !self.cuts.iter().any(|c| c.listed || !dynamic) {
            return;
        }
        // Init segments the MPD names must be on disk (a failed write is redone).
        let missing: Vec<(PathBuf, Bytes)> = self
            .periods
            .iter()
            .flat_map(|p| p.tracks.iter())
            .filter(|t| !self.inits_on_disk.contains(&t.init_path))
            .map(|t| (t.init_path.clone(), t.init.clone()))
            .collect();
        for (path, data) in missing {
            if !self.inits_on_disk.contains(&path) {
                self.write_init(path, data);
            }
        }
        self.ensure_dir();
        let model = self.build_mpd(now, dynamic);
        let mut manifests = Vec::new();
        if self.mpd_enabled && full {
            let text = if dynamic && self.chunked() {
                let mut announced = model.clone();
                self.announce_open(&mut announced);
                mpd::render(&announced)
            } else {
                mpd::render(&model)
            };
            manifests.push((self.layout.mpd.clone(), text));
        }
        if let Some(h) = &self.hls {
            let hls_model = match &h.links {
                Some((_, stem)) => self.with_hls_names(model, stem),
                None => model,
            };
            let ll = self.low_latency(&hls_model);
            // Media playlists first: the multivariant one only names them.
            for ((content, (path, _)), ll) in [
                (ContentType::Video, &h.video),
                (ContentType::Audio, &h.audio),
            ]
            .into_iter()
            .zip(&ll)
            {
                if let Some(text) = m3u8::media_playlist(&hls_model, content, h.event, ll.as_ref())
                {
                    manifests.push((path.clone(), text));
                }
            }
            let uris = m3u8::MediaUris {
                video: &h.video.1,
                audio: &h.audio.1,
            };
            if let Some(master) = h.master.as_ref().filter(|_| full) {
                let of = |audio: bool| -> Vec<&m3u8::Rendition> {
                    self.ladder
                        .iter()
                        .filter(|(role, _)| matches!(role, Role::Audio(_)) == audio)
                        .map(|(_, (r, _))| r)
                        .collect()
                };
                let ladder = m3u8::Ladder {
                    video: of(false),
                    audio: of(true),
                };
                if let Some(text) = m3u8::multivariant_playlist(&hls_model, &uris, &ladder) {
                    manifests.push((master.clone(), text));
                }
            }
        }
        for (path, text) in manifests {
            self.emit(
                FileOp::WriteAtomic {
                    path,
                    data: Bytes::from(text),
                },
                Effect::Mpd,
            );
        }
        self.parts_unlisted = false;
        if !full {
            return;
        }
        self.mpd_written = true;
        let due = now.mono_ms.saturating_add(self.grace_ms());
        self.retention.manifest_written(due);
        let restored = std::mem::take(&mut self.deletes_after_mpd);
        self.retention.schedule_all(due, restored);
    }

    // ---- end, restart, housekeeping ----

    /// The publisher left: the open segment is written and the MPD becomes static. With
    /// cleanup, the MPD and its files go after [`retention::FINAL_CLEANUP_FACTOR`] grace
    /// periods.
    pub fn finish(&mut self, now: Now, ops: &mut Vec<FileOp>) {
        self.begin(now);
        if self.active() {
            // Finished first: the last segment goes straight into the static MPD.
            self.finished = true;
            self.hard_close(now);
            self.hold_until = None;
            if !self.cuts.is_empty() {
                let mut renames = Vec::new();
                for c in &mut self.cuts {
                    c.listed = true;
                    let index = c.index;
                    renames.extend(
                        std::mem::take(&mut c.renames)
                            .into_iter()
                            .map(|r| (index, r)),
                    );
                }
                self.emit_renames(renames);
                self.trim(now);
                // An ended playlist lists whole segments only.
                let parts: Vec<[Vec<Part>; 2]> = self
                    .cuts
                    .iter_mut()
                    .map(|c| std::mem::take(&mut c.parts))
                    .collect();
                self.drop_parts(parts.into_iter().flatten(), now);
                self.write_mpd(now, false);
            }
            self.remove_spools();
            if self.deletes_enabled() && self.mpd_written {
                // DASH counts the final wait in grace periods.
                let wait = retention::final_wait_ms(self.grace_ms(), self.grace_ms());
                self.retention
                    .set_final(Some(now.mono_ms.saturating_add(wait)));
            }
        }
        self.finished = true;
        self.end(ops);
    }

    /// A republish of the same name in this worker: a new Period continues the timeline (at
    /// the wall clock if the pause was long); the MPD becomes dynamic again with the first
    /// new segment.
    pub fn restart(&mut self, now: Now) {
        if !self.valid {
            return;
        }
        if !self.finished {
            self.hard_close(now);
        }
        self.finished = false;
        self.retention.set_final(None);
        self.timeline.reset();
        self.sources = [None, None];
        self.pending = [None, None];
        // A new publish lists the renditions it has again once they have segments (an ended
        // variant must not stay in the multivariant playlist).
        self.ladder.clear();
        self.preroll.clear();
        self.meta_frame_rate = None;
        self.video_step = None;
        self.new_period = true;
        self.resync = true;
        self.restarted = true;
    }

    /// The IO ring performed the next `ops` operations: their journal entries go, except the
    /// final renames of a cut whose other files are still to be written (if one of those
    /// fails, the renamed file is an orphan to delete).
    pub fn on_written(&mut self, ops: usize) {
        self.journal.written(ops, Effect::commit_of_any);
    }

    /// The IO ring could not perform an operation on `path`: it and everything after it in
    /// the same call's operations did not happen. Segments are unlisted (a gap), init
    /// segments and the directory are written again before the next MPD, and deletions wait
    /// while the MPD on disk may be older than ours.
    pub fn on_write_failed(&mut self, path: &Path) {
        // A spool write: the segment gathering its video there is not written.
        for seg in [self.seg.as_mut(), self.closing.as_mut().map(|c| &mut c.seg)]
            .into_iter()
            .flatten()
        {
            let growing = seg.growing.iter().flatten().any(|(p, _)| p == path);
            if seg.spool.as_deref() == Some(path) || growing {
                seg.spool_lost = true;
            }
        }
        let Some(lost) = self.journal.failed(path, Effect::commit_of_any) else {
            return;
        };
        let mut failed_cuts = Vec::new();
        for (effect, path) in lost.effects.iter().zip(&lost.paths) {
            match effect {
                Effect::Dir => self.dir_created = false,
                Effect::Init => {
                    // A lost HLS name of an init segment: the init is written again.
                    let source = self
                        .links
                        .iter()
                        .find(|(_, link)| *link == path)
                        .map_or_else(|| path.clone(), |(source, _)| source.clone());
                    self.inits_on_disk.remove(&source);
                }
                Effect::Segment { cut, .. } => {
                    if !failed_cuts.contains(cut) {
                        failed_cuts.push(*cut);
                    }
                }
                Effect::Mpd => self.retention.manifest_lost(),
                Effect::Other => {}
            }
        }
        // Files of a failed cut that did get their final name are orphans now.
        let written = lost.orphans;
        if failed_cuts.is_empty() {
            return;
        }
        self.cuts.retain(|c| !failed_cuts.contains(&c.index));
        for p in &mut self.periods {
            for t in &mut p.tracks {
                t.entries.retain(|e| !failed_cuts.contains(&e.cut));
            }
        }
        if self.deletes_enabled() {
            // Nothing lists them: they go at the next tick.
            self.retention.schedule_all(0, written);
        }
    }

    /// The next time (monotonic ms) `on_tick` has something to do.
    pub fn next_deadline(&self) -> Option<u64> {
        let hold = if self.finished {
            None
        } else {
            self.hold_until.map(|u| {
                u64::try_from((u as i64).saturating_add(self.clock_offset).max(0)).unwrap_or(0)
            })
        };
        // Deletions wait while the MPD on disk may list what we dropped.
        [hold, self.retention.next_deadline()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Deferred work: listing held-back segments, deletions whose grace ran out, and the
    /// final cleanup of an ended stream (its MPD first). Returns when to call again.
    pub fn on_tick(&mut self, now: Now, ops: &mut Vec<FileOp>) -> Option<u64> {
        self.begin(now);
        if self.active() {
            self.release_held(now);
        }
        if self.retention.take_final(now.mono_ms) {
            self.mpd_written = false;
            let files = std::mem::take(&mut self.periods)
                .into_iter()
                .flat_map(|p| p.tracks)
                .flat_map(|t| {
                    let entries = t.entries.into_iter().map(|e| e.path);
                    entries.chain(std::iter::once(t.init_path))
                });
            let mpd = self.layout.mpd.clone();
            let playlists = self
                .hls
                .iter()
                .flat_map(|h| {
                    let media = [h.video.0.clone(), h.audio.0.clone()];
                    h.master.clone().into_iter().chain(media)
                })
                .filter(|p| *p != self.layout.mpd)
                .collect::<Vec<_>>();
            let deletes = self.retention.final_deletes(
                mpd,
                playlists.into_iter().chain(files).collect::<Vec<_>>(),
                Vec::new(),
            );
            self.cuts.clear();
            self.inits_on_disk.clear();
            for path in deletes {
                self.emit(FileOp::Delete { path }, Effect::Other);
            }
        }
        for path in self.retention.take_due(now.mono_ms) {
            if !self.referenced(&path) {
                self.emit(FileOp::Delete { path }, Effect::Other);
            }
        }
        self.end(ops);
        self.next_deadline()
    }

    /// True once finished and nothing remains to do.
    pub fn is_done(&self) -> bool {
        self.finished && self.retention.is_idle() && self.out.is_empty()
    }
}

/// Frames per second measured over listed segments, snapped to a common rate within 0.5%.
/// Where the rendition `set` of a multitrack publisher is now (LAST-MSN, LAST-PART), from where
/// this stream's playlist of the same kind is (`ll`): tracks encoded from one source are cut
/// at the same frames, so the rendition is as far along, its sequence numbers shifted by the
/// difference at their last common segment (a rendition may have started later). `None` when
/// they share no segment (not aligned: no report rather than a wrong one).
fn ladder_position(
    model: &mpd::Mpd,
    set: &mpd::AdaptationSet,
    ll: &m3u8::LowLatency,
) -> Option<(u64, Option<usize>)> {
    let (own_msn, own_part) = m3u8::last_position(model, set.content, ll)?;
    let own: Vec<&mpd::AdaptationSet> = model
        .periods
        .iter()
        .flat_map(|p| &p.sets)
        .filter(|s| s.content == set.content && s.timescale == set.timescale)
        .collect();
    set.segments
        .iter()
        .enumerate()
        .rev()
        .find_map(|(i, (t, _))| {
            let theirs = set.first_number.saturating_add(i as u64);
            own.iter().find_map(|s| {
                let j = s.segments.iter().position(|(ot, _)| ot == t)?;
                let ours = s.first_number.saturating_add(j as u64);
                own_msn.saturating_add(theirs).checked_sub(ours)
            })
        })
        .map(|msn| (msn, own_part))
}

fn measured_frame_rate(frames: u64, ticks: u64, timescale: u32) -> Option<f64> {
    if frames < 2 || ticks == 0 {
        return None;
    }
    let fps = frames as f64 * f64::from(timescale) / ticks as f64;
    const COMMON: [f64; 11] = [
        24000.0 / 1001.0,
        24.0,
        25.0,
        30000.0 / 1001.0,
        30.0,
        48.0,
        50.0,
        60000.0 / 1001.0,
        60.0,
        100.0,
        120.0,
    ];
    COMMON.into_iter().find(|c| (fps - c).abs() / c < 0.005)
}

impl FileOutput for DashStream {
    fn on_media(
        &mut self,
        video: bool,
        timestamp: u32,
        tag: &Bytes,
        now: Now,
        ops: &mut Vec<FileOp>,
    ) {
        DashStream::on_media(self, video, timestamp, tag, now, ops);
    }

    fn on_metadata(&mut self, payload: &[u8]) {
        DashStream::on_metadata(self, payload);
    }

    fn finish(&mut self, now: Now, ops: &mut Vec<FileOp>) {
        DashStream::finish(self, now, ops);
    }

    fn restart(&mut self, now: Now, _random: &mut dyn FnMut(&mut [u8])) {
        DashStream::restart(self, now);
    }

    fn on_tick(&mut self, now: Now, ops: &mut Vec<FileOp>) -> Option<u64> {
        DashStream::on_tick(self, now, ops)
    }

    fn is_done(&self) -> bool {
        DashStream::is_done(self)
    }

    fn on_written(&mut self, ops: usize) {
        DashStream::on_written(self, ops);
    }

    fn on_write_failed(&mut self, path: &Path) {
        DashStream::on_write_failed(self, path);
    }
}

#[cfg(test)]
#[path = "segmenter_tests.rs"]
mod tests;
