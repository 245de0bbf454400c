//! The file outputs' queue in front of the IO ring, with a storage whose jobs finish only when
//! the test says (as nginx's thread pool does, later): order, one job in flight per output,
//! failures behind a queue, and a disk too slow to keep up.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::*;
use crate::server::tests::{audio_frame, conf, video_frame, AAC_HEADER, AVC_HEADER};

/// An in-memory disk behind a queue of jobs that finish when the test says.
#[derive(Default)]
struct Disk {
    files: BTreeMap<PathBuf, Vec<u8>>,
    /// Open files and what has been written to them.
    open: BTreeMap<PathBuf, Vec<u8>>,
    jobs: Vec<IoJob>,
    /// The next operation on this path fails.
    fail_on: Option<PathBuf>,
    most_in_flight: BTreeMap<u64, usize>,
    /// Each job submitted: (only opens and appends, bytes appended).
    submitted: Vec<(bool, usize)>,
    /// Each job of opens and appends alone: (the file of its first append, bytes appended).
    append_jobs: Vec<(PathBuf, usize)>,
    /// Appends to a spool, in jobs with a cut, that no copy from it follows in the same job
    /// (so they go to the spool file and come back instead of straight into their segment).
    spool_leftovers: usize,
}

#[derive(Clone, Default)]
struct Deferred(Rc<RefCell<Disk>>);

impl Storage for Deferred {
    fn read_small(&mut self, _path: &Path) -> Option<String> {
        None
    }

    fn submit(&mut self, job: IoJob) -> Option<IoDone> {
        let mut d = self.0.borrow_mut();
        let appends_only = job
            .ops
            .iter()
            .all(|op| matches!(op, FileOp::Open { .. } | FileOp::Append { .. }));
        d.submitted.push((appends_only, data_bytes(&job.ops)));
        let first_append = job.ops.iter().find_map(|op| match op {
            FileOp::Append { path, .. } => Some(path.clone()),
            _ => None,
        });
        if let (true, Some(path)) = (appends_only, first_append) {
            d.append_jobs.push((path, data_bytes(&job.ops)));
        }
        if !appends_only {
            for (i, op) in job.ops.iter().enumerate() {
                let FileOp::Append { path, .. } = op else {
                    continue;
                };
                let copied = job.ops[i..]
                    .iter()
                    .any(|o| matches!(o, FileOp::AppendFrom { from, .. } if from == path));
                if path.to_string_lossy().contains("spool") && !copied {
                    d.spool_leftovers += 1;
                }
            }
        }
        d.jobs.push(job);
        let mut per_output = BTreeMap::new();
        for j in &d.jobs {
            *per_output.entry(j.output).or_insert(0) += 1;
        }
        for (out, n) in per_output {
            let most = d.most_in_flight.entry(out).or_insert(0);
            *most = (*most).max(n);
        }
        None
    }
}

impl Deferred {
    /// Performs the oldest job, as `io::perform` would on the in-memory disk.
    fn finish_one(&self) -> Option<IoDone> {
        let mut d = self.0.borrow_mut();
        if d.jobs.is_empty() {
            return None;
        }
        let job = d.jobs.remove(0);
        let mut ops = job.ops.into_iter();
        let mut done = 0;
        let mut failure = None;
        for op in ops.by_ref() {
            let path = op.final_path().to_path_buf();
            if d.fail_on.as_ref() == Some(&path) {
                d.fail_on = None;
                // As io::perform: the file the failed operation had open is abandoned.
                if let FileOp::Commit { path: part, .. } = &op {
                    d.open.remove(part);
                }
                d.open.remove(&path);
                failure = Some(crate::io::IoFailure {
                    action: "write",
                    path,
                    source: std::io::Error::other("No space left on device"),
                });
                break;
            }
            match op {
                FileOp::CreateDir { .. } => {}
                FileOp::Open { path } => {
                    d.open.insert(path, Vec::new());
                }
                FileOp::Append { path, data } => {
                    d.open
                        .get_mut(&path)
                        .expect("append to an open file")
                        .extend(&data[..]);
                }
                FileOp::AppendFrom { path, from } => {
                    let data = d.open.get(&from).expect("copy from an open file").clone();
                    d.open
                        .get_mut(&path)
                        .expect("append to an open file")
                        .extend(data);
                }
                FileOp::Commit { path, to } => {
                    let data = d.open.remove(&path).expect("commit an open file");
                    d.files.insert(to, data);
                }
                FileOp::Abort { path } => {
                    d.open.remove(&path);
                }
                FileOp::Flush { path } => {
                    assert!(d.open.contains_key(&path), "flush of a closed {path:?}");
                }
                FileOp::OpenRecording { path, append, .. } => {
                    let old = d.files.remove(&path).filter(|_| append);
                    d.open.insert(path, old.unwrap_or_default());
                }
                FileOp::WriteAt { path, offset, data } => {
                    let file = d.open.get_mut(&path).expect("write to an open file");
                    let at = offset as usize;
                    file[at..at + data.len()].copy_from_slice(&data);
                }
                FileOp::Close { path } => {
                    if let Some(data) = d.open.remove(&path) {
                        d.files.insert(path, data);
                    }
                }
                FileOp::WriteAtomic { path, data } => {
                    d.files.insert(path, data.to_vec());
                }
                FileOp::Link { path, from } => {
                    let data = d.files.get(&from).expect("link to a whole file").clone();
                    d.files.insert(path, data);
                }
                FileOp::Delete { path } => {
                    d.files.remove(&path);
                }
            }
            done += 1;
        }
        Some(IoDone {
            output: job.output,
            files: job.files,
            done,
            failure,
            rest: ops.collect(),
            stats: IoStats::default(),
        })
    }

    fn playlist(&self) -> String {
        let d = self.0.borrow();
        let data = d.files.get(Path::new("/hls/cam.m3u8")).expect("a playlist");
        String::from_utf8(data.clone()).unwrap()
    }

    /// Every segment the playlist lists exists on the disk.
    fn check_listed_segments_exist(&self) -> usize {
        let text = self.playlist();
        let d = self.0.borrow();
        let listed: Vec<&str> = text.lines().filter(|l| l.ends_with(".ts")).collect();
        for name in &listed {
            assert!(
                d.files.contains_key(&Path::new("/hls").join(name)),
                "{name} is listed but not on disk:\n{text}"
            );
        }
        listed.len()
    }
}

struct Feed {
    outputs: Outputs,
    disk: Deferred,
    key: StreamKey,
    logs: Vec<LogLine>,
    /// Media milliseconds fed so far.
    t: u32,
}

impl Feed {
    fn new() -> Feed {
        let mut f = Feed::with(&[]);
        f.media(true, 0, AVC_HEADER);
        f.media(false, 0, AAC_HEADER);
        f
    }

    /// A published stream with these directives added, before any sequence header.
    fn with(extra: &[(&str, &[&str])]) -> Feed {
        let disk = Deferred::default();
        let mut outputs = Outputs::new(Box::new(disk.clone()));
        let settings = conf_with(extra);
        let key = StreamKey {
            server: 0,
            app: "live".into(),
            name: "cam".into(),
        };
        outputs.publish(&key, &settings, 0, &mut |b: &mut [u8]| b.fill(7));
        Feed {
            outputs,
            disk,
            key,
            logs: Vec::new(),
            t: 0,
        }
    }

    fn media(&mut self, video: bool, ts: u32, tag: &[u8]) {
        let (key, logs) = (&self.key, &mut self.logs);
        let tag = bytes::Bytes::copy_from_slice(tag);
        self.outputs
            .media(key, video, ts, &tag, u64::from(ts), logs);
    }

    /// `ms` more of 25 fps video (a keyframe every second, `frame_len` bytes a frame) and audio.
    fn play(&mut self, ms: u32, frame_len: usize) {
        let end = self.t + ms;
        while self.t < end {
            let t = self.t;
            self.media(true, t, &video_frame(t.is_multiple_of(1000), t, frame_len));
            self.media(false, t, &audio_frame(t));
            self.t += 40;
        }
    }

    /// Finishes every job, including those the results start.
    fn drain(&mut self) {
        while let Some(done) = self.disk.finish_one() {
            self.outputs.io_done(done, &mut self.logs);
        }
    }

    fn jobs_waiting(&self) -> usize {
        self.disk.0.borrow().jobs.len()
    }
}

#[test]
fn one_job_at_a_time_in_order_and_media_never_waits_for_the_disk() {
    let mut f = Feed::new();
    // Five seconds of media while the disk does nothing: it is all taken, nothing blocks.
    f.play(5000, 2000);
    assert_eq!(
        f.jobs_waiting(),
        1,
        "one job in flight, the rest queued behind it"
    );
    assert!(f.outputs.io_pending());
    f.drain();
    assert!(!f.outputs.io_pending());
    assert_eq!(f.disk.0.borrow().most_in_flight.values().max(), Some(&1));
    let listed = f.disk.check_listed_segments_exist();
    assert!(listed >= 4, "{}", f.disk.playlist());
    assert!(f.logs.is_empty(), "{:?}", f.logs);
    let stats = f.outputs.io_stats();
    assert_eq!(stats.ops, 0, "the deferred disk reports no timings");
}

#[test]
fn appends_wait_for_the_commit_or_the_flush() {
    let mut f = Feed::new();
    // A disk that keeps up: every job finishes before the next frame.
    let end = 5000;
    while f.t < end {
        f.play(40, 2000);
        f.drain();
    }
    let submitted = f.disk.0.borrow().submitted.clone();
    for (appends_only, bytes) in &submitted {
        assert!(
            !appends_only || *bytes >= APPEND_HOLD_BYTES,
            "a job of {bytes} bytes of appends alone: {submitted:?}"
        );
    }
    // 125 frames of 2 KB (about 280 KB of TS) in 1 s segments: about one job per segment.
    assert!(submitted.len() <= 8, "{} jobs", submitted.len());
    // Nothing was held back from the segments listed.
    assert!(f.disk.check_listed_segments_exist() >= 4);

    // The periodic flush hands over what waits (HLS makes appends of 16 KiB), and asks to be
    // called again soon. (The frame at 5 s cuts a segment: done first.)
    f.play(40, 2000);
    f.drain();
    f.play(120, 20_000);
    f.drain();
    let before = f.disk.0.borrow().submitted.len();
    let mut logs = Vec::new();
    let next = f.outputs.housekeeping(u64::from(f.t), &mut logs);
    let after = f.disk.0.borrow().submitted.clone();
    assert_eq!(after.len(), before + 1, "{after:?}");
    assert_eq!(after.last().map(|s| s.0), Some(true), "{after:?}");
    assert!(next.is_some_and(|n| n <= APPEND_FLUSH_MS), "{next:?}");
}

#[test]
fn dash_appends_wait_for_the_cut_while_the_gop_cache_holds_their_payloads() {
    // 8 KB frames: about 200 KB per 1 s segment, enough for three jobs of appends alone a
    // segment at APPEND_HOLD_BYTES. HLS's are copied TS packets and go at that size; DASH's
    // video spool (payload slices) waits for the segment's cut.
    let five_seconds = |extra| {
        let mut f = Feed::with(&dash_beside(extra));
        f.media(true, 0, AVC_HEADER);
        f.media(false, 0, AAC_HEADER);
        while f.t < 5000 {
            f.play(40, 8000);
            f.drain();
        }
        f
    };
    // Without the GOP cache, waiting would hold payloads nothing else does: DASH goes at
    // APPEND_HOLD_BYTES too.
    let f = five_seconds(&[("gop_cache", &["off"])]);
    let jobs = f.disk.0.borrow().append_jobs.clone();
    let dash: Vec<_> = jobs
        .iter()
        .filter(|(p, _)| p.starts_with("/dash"))
        .collect();
    assert!(dash.len() >= 8, "{jobs:?}");

    let mut f = five_seconds(&[]);
    let jobs = f.disk.0.borrow().append_jobs.clone();
    let (dash, hls): (Vec<_>, Vec<_>) = jobs.iter().partition(|(p, _)| p.starts_with("/dash"));
    assert!(dash.is_empty(), "{dash:?}");
    // The next segment's first appends, queued with a cut, wait for their own cut (the IO
    // ring writes them straight into that segment).
    assert_eq!(f.disk.0.borrow().spool_leftovers, 0);
    assert!(hls.len() >= 8, "{hls:?}");
    assert!(
        hls.iter().all(|(_, bytes)| *bytes >= APPEND_HOLD_BYTES),
        "{hls:?}"
    );
    // The periodic flush hands over what HLS holds, not what DASH holds (a spool is no
    // playable file): that goes with the cut, straight into the segment.
    f.play(400, 8000);
    f.drain();
    let before = f.disk.0.borrow().append_jobs.len();
    let mut logs = Vec::new();
    f.outputs.housekeeping(u64::from(f.t), &mut logs);
    let jobs = f.disk.0.borrow().append_jobs.clone();
    assert!(
        jobs[before..].iter().all(|(p, _)| !p.starts_with("/dash")),
        "{jobs:?}"
    );
}

#[test]
fn a_failure_drops_what_was_queued_behind_it_and_no_playlist_lists_a_lost_segment() {
    let mut f = Feed::new();
    f.play(1000, 2000);
    f.drain();
    // cam-0.ts is being written; it will fail when it is committed, with later segments
    // and playlists queued behind it by an output that does not know yet.
    f.disk.0.borrow_mut().fail_on = Some(PathBuf::from("/hls/cam-0.ts"));
    f.play(4000, 2000);
    f.drain();
    let errors: Vec<_> = f
        .logs
        .iter()
        .filter(|l| l.level == LogLevel::Error)
        .collect();
    assert_eq!(errors.len(), 1, "{:?}", f.logs);
    assert!(errors[0].text.contains("cam-0.ts"), "{}", errors[0].text);
    // The stream goes on: new segments are written and listed, none that was lost.
    f.play(3000, 2000);
    f.drain();
    let listed = f.disk.check_listed_segments_exist();
    assert!(listed >= 2, "{}", f.disk.playlist());
    let text = f.disk.playlist();
    assert!(!text.contains("cam-0.ts"), "{text}");
    let open: Vec<PathBuf> = f.disk.0.borrow().open.keys().cloned().collect();
    assert!(open.len() <= 1, "lost files are abandoned: {open:?}");
    assert!(
        f.logs.iter().any(|l| l.text.contains("writing again")),
        "{:?}",
        f.logs
    );
}

#[test]
fn a_stalled_disk_bounds_what_waits_and_drops_whole_segments_unlisted() {
    let mut f = Feed::new();
    f.outputs.io.max_queued_bytes = 200_000;
    f.play(1000, 2000);
    f.drain();
    // The disk stalls: 8 s of 10 kB frames is 2 MB, ten times the bound.
    f.play(8000, 10_000);
    let waiting: usize = f
        .outputs
        .streams
        .values()
        .flat_map(|s| &s.slots)
        .map(|s| s.queued_bytes)
        .sum();
    assert!(
        waiting <= 200_000 + 20_000,
        "{waiting} bytes wait for the disk"
    );
    let warned = f.logs.iter().filter(|l| l.text.contains("behind")).count();
    assert_eq!(warned, 1, "{:?}", f.logs);
    f.drain();
    assert!(
        f.logs.iter().any(|l| l.text.contains("caught up")),
        "{:?}",
        f.logs
    );
    // Writing resumes at the next keyframe; nothing lost is ever listed.
    f.play(3000, 2000);
    f.drain();
    let listed = f.disk.check_listed_segments_exist();
    assert!(listed >= 2, "{}", f.disk.playlist());
    assert!(
        f.disk.0.borrow().open.len() <= 1,
        "dropped files are abandoned"
    );
}

/// [`Feed`]'s settings: HLS in `/hls` (1 s fragments, 30 s window) and `extra`.
fn conf_with(extra: &[(&str, &[&str])]) -> crate::conf::Settings {
    let mut directives: Vec<(&str, &[&str])> = vec![
        ("hls", &["on"]),
        ("hls_path", &["/hls"]),
        ("hls_fragment", &["1s"]),
        ("hls_playlist_length", &["30s"]),
    ];
    directives.extend_from_slice(extra);
    let mut c = conf(&directives);
    c.apply("live", &["on"]).unwrap();
    c.resolve()
}

/// DASH with the same fragment and window as [`Feed`]'s HLS: fMP4 HLS lists its segments.
const DASH_BESIDE: &[(&str, &[&str])] = &[
    ("dash", &["on"]),
    ("dash_path", &["/dash"]),
    ("dash_fragment", &["1s"]),
    ("dash_playlist_length", &["30s"]),
];

/// [`DASH_BESIDE`] and `extra`.
fn dash_beside(
    extra: &[(&'static str, &'static [&'static str])],
) -> Vec<(&'static str, &'static [&'static str])> {
    let mut directives = DASH_BESIDE.to_vec();
    directives.extend_from_slice(extra);
    directives
}

/// An Enhanced RTMP HEVC message: `packet` 0 (SequenceStart) or 3 (CodedFramesX).
fn hevc(key: bool, packet: u8, body: &[u8]) -> Vec<u8> {
    let mut tag = vec![0x80 | (if key { 0x10 } else { 0x20 }) | packet];
    tag.extend_from_slice(b"hvc1");
    tag.extend_from_slice(body);
    tag
}

/// 25 fps HEVC (an IDR every second) and AAC for `ms`.
fn play_hevc(f: &mut Feed, ms: u32) {
    let end = f.t + ms;
    while f.t < end {
        let t = f.t;
        let key = t.is_multiple_of(1000);
        let nal_type: u8 = if key { 19 } else { 1 };
        let mut nal = vec![0, 0, 0, 40, nal_type << 1, 1];
        nal.resize(44, 0xab);
        f.media(true, t, &hevc(key, 3, &nal));
        f.media(false, t, &audio_frame(t));
        f.t += 40;
    }
}

fn hls_files(f: &Feed) -> Vec<String> {
    let d = f.disk.0.borrow();
    d.files
        .keys()
        .map(|p| p.to_string_lossy().into_owned())
        .collect()
}

#[test]
fn auto_container_turns_hls_into_cmaf_at_an_hevc_header() {
    let mut f = Feed::with(&[]);
    f.media(false, 0, AAC_HEADER);
    let hvcc = include_bytes!("../media/testdata/hevc_main.hvcc");
    f.media(true, 0, &hevc(true, 0, hvcc));
    play_hevc(&mut f, 4000);
    f.drain();
    let files = hls_files(&f);
    let master = {
        let d = f.disk.0.borrow();
        String::from_utf8(d.files[Path::new("/hls/cam.m3u8")].clone()).unwrap()
    };
    assert!(
        master.contains("CODECS=\"hvc1.1.6.L60.90,mp4a.40.2\""),
        "{master}"
    );
    assert!(master.contains("RESOLUTION=320x240"), "{master}");
    assert!(files.iter().any(|p| p.ends_with(".m4s")), "{files:?}");
    assert!(
        files.iter().any(|p| p == "/hls/cam-audio.m3u8"),
        "{files:?}"
    );
    assert!(!files.iter().any(|p| p.ends_with(".ts")), "{files:?}");
    let video = {
        let d = f.disk.0.borrow();
        String::from_utf8(d.files[Path::new("/hls/cam-video.m3u8")].clone()).unwrap()
    };
    for uri in video.lines().filter(|l| !l.starts_with('#')) {
        assert!(
            files.contains(&format!("/hls/{uri}")),
            "{uri} listed, not on disk"
        );
    }
    assert!(video.contains("#EXT-X-MAP:URI=\"cam-init.m4v\""), "{video}");
    let said: Vec<&LogLine> = f.logs.iter().filter(|l| l.text.contains("fMP4")).collect();
    assert_eq!(said.len(), 1, "{:?}", f.logs);
    assert!(said[0].text.contains("HEVC"));
}

#[test]
fn mpegts_container_leaves_hevc_out_with_one_line() {
    let mut f = Feed::with(&[("hls_container", &["mpegts"])]);
    f.media(false, 0, AAC_HEADER);
    let hvcc = include_bytes!("../media/testdata/hevc_main.hvcc");
    f.media(true, 0, &hevc(true, 0, hvcc));
    play_hevc(&mut f, 3000);
    f.media(true, f.t, &hevc(true, 0, hvcc));
    play_hevc(&mut f, 1000);
    f.drain();
    let warned = f.logs.iter().filter(|l| l.text.contains("MPEG-TS")).count();
    assert_eq!(warned, 1, "{:?}", f.logs);
    assert!(hls_files(&f).iter().any(|p| p.ends_with(".ts")));
    assert!(!hls_files(&f).iter().any(|p| p.ends_with(".m4s")));
}

#[test]
fn h264_stays_mpegts_under_auto() {
    let mut f = Feed::new();
    f.play(3000, 500);
    f.drain();
    assert!(f.disk.check_listed_segments_exist() > 0);
    assert!(!hls_files(&f).iter().any(|p| p.ends_with(".m4s")));
    assert!(f.logs.iter().all(|l| !l.text.contains("fMP4")));
}

#[test]
fn hls_beside_dash_lists_the_dash_segments_under_second_names() {
    let mut f = Feed::with(DASH_BESIDE);
    f.media(false, 0, AAC_HEADER);
    let hvcc = include_bytes!("../media/testdata/hevc_main.hvcc");
    f.media(true, 0, &hevc(true, 0, hvcc));
    play_hevc(&mut f, 45_000);
    f.drain();
    let files = hls_files(&f);
    assert!(
        f.logs
            .iter()
            .any(|l| l.text.contains("lists the DASH segments")),
        "{:?}",
        f.logs
    );
    let d = f.disk.0.borrow();
    let text = |p: &str| String::from_utf8(d.files[Path::new(p)].clone()).unwrap();
    let video = text("/hls/cam-video.m3u8");
    let listed: Vec<&str> = video.lines().filter(|l| l.ends_with(".m4s")).collect();
    assert!(listed.len() >= 25, "{video}");
    for uri in &listed {
        let hls = d.files.get(&Path::new("/hls").join(uri));
        let dash = d
            .files
            .get(&Path::new("/dash").join(uri.replace(".m4s", ".m4v")));
        assert!(
            hls.is_some() && hls == dash,
            "{uri}: HLS name of the DASH file"
        );
    }
    assert!(text("/hls/cam.m3u8").contains("hvc1.1.6.L60.90"));
    assert!(text("/dash/cam.mpd").contains("hvc1.1.6.L60.90"));
    // Segments that left the window went with both names; no HLS segment was written apart.
    let hls_segments = files
        .iter()
        .filter(|p| p.starts_with("/hls/") && p.ends_with(".m4s"));
    let dash_segments = files
        .iter()
        .filter(|p| p.starts_with("/dash/") && p.ends_with(".m4v"));
    assert_eq!(hls_segments.count() + 1, dash_segments.count(), "{files:?}");
    assert!(!files
        .iter()
        .any(|p| p.starts_with("/hls/") && p.ends_with(".ts")));
}

/// A one-track multitrack message of video track `k` made from a legacy AVC tag (the same
/// record or frame, as ffmpeg sends its other video streams).
fn multitrack_avc(k: u8, legacy: &[u8]) -> Vec<u8> {
    let key = legacy[0] >> 4 == 1;
    let packet = legacy[1];
    let mut tag = vec![
        0x80 | (if key { 0x10 } else { 0x20 }) | 6,
        packet,
        b'a',
        b'v',
        b'c',
        b'1',
        k,
    ];
    if packet == 1 {
        tag.extend_from_slice(&legacy[2..5]);
    }
    tag.extend_from_slice(&legacy[5..]);
    tag
}

#[test]
fn multitrack_video_becomes_an_hls_ladder() {
    let mut f = Feed::with(DASH_BESIDE);
    f.media(true, 0, AVC_HEADER);
    f.media(false, 0, AAC_HEADER);
    for k in [1, 2] {
        f.media(true, 0, &multitrack_avc(k, AVC_HEADER));
    }
    let end = 6000;
    while f.t < end {
        let t = f.t;
        let frame = video_frame(t.is_multiple_of(1000), t, 300);
        f.media(true, t, &frame);
        for k in [1, 2] {
            f.media(true, t, &multitrack_avc(k, &frame));
        }
        f.media(false, t, &audio_frame(t));
        f.t += 40;
    }
    f.drain();
    let d = f.disk.0.borrow();
    let text = |p: &str| String::from_utf8(d.files[Path::new(p)].clone()).unwrap();
    let master = text("/hls/cam.m3u8");
    assert_eq!(master.matches("#EXT-X-STREAM-INF:").count(), 3, "{master}");
    for uri in ["cam-video.m3u8", "cam_1-video.m3u8", "cam_2-video.m3u8"] {
        assert!(master.contains(&format!("\n{uri}\n")), "{uri}: {master}");
        let media = text(&format!("/hls/{uri}"));
        let listed: Vec<&str> = media.lines().filter(|l| l.ends_with(".m4s")).collect();
        assert!(listed.len() >= 4, "{uri}: {media}");
        assert!(
            media.contains("#EXT-X-MEDIA-SEQUENCE:0\n"),
            "{uri}: {media}"
        );
        for seg in listed {
            assert!(d.files.contains_key(&Path::new("/hls").join(seg)), "{seg}");
        }
    }
    // The MPD lists them as Representations of one video AdaptationSet, on the same times.
    let mpd = text("/dash/cam.mpd");
    assert_eq!(
        mpd.matches("<Representation id=\"video").count(),
        3,
        "{mpd}"
    );
    assert_eq!(mpd.matches("contentType=\"video\"").count(), 1, "{mpd}");
    for k in [1, 2] {
        assert!(
            mpd.contains(&format!("media=\"cam_{k}-$Time$.m4v\"")),
            "{mpd}"
        );
    }
    let timelines: Vec<&str> = mpd
        .split("<SegmentTimeline>")
        .skip(1)
        .filter_map(|s| s.split("</SegmentTimeline>").next())
        .collect();
    assert_eq!(timelines[0], timelines[1], "{mpd}");
    assert_eq!(timelines[1], timelines[2], "{mpd}");
}

/// A one-track multitrack message of audio track `k` made from a legacy AAC tag.
fn multitrack_aac(k: u8, legacy: &[u8]) -> Vec<u8> {
    let mut tag = vec![0x95, legacy[1], b'm', b'p', b'4', b'a', k];
    tag.extend_from_slice(&legacy[2..]);
    tag
}

#[test]
fn multitrack_audio_becomes_another_audio_rendition() {
    let mut f = Feed::with(DASH_BESIDE);
    f.media(true, 0, AVC_HEADER);
    f.media(false, 0, AAC_HEADER);
    f.media(false, 0, &multitrack_aac(1, AAC_HEADER));
    while f.t < 6000 {
        let t = f.t;
        f.media(true, t, &video_frame(t.is_multiple_of(1000), t, 300));
        f.media(false, t, &audio_frame(t));
        f.media(false, t, &multitrack_aac(1, &audio_frame(t)));
        f.t += 40;
    }
    f.drain();
    let d = f.disk.0.borrow();
    let text = |p: &str| String::from_utf8(d.files[Path::new(p)].clone()).unwrap();
    let master = text("/hls/cam.m3u8");
    assert_eq!(
        master.matches("#EXT-X-MEDIA:TYPE=AUDIO").count(),
        2,
        "{master}"
    );
    assert!(
        master.contains("NAME=\"audio 2\",DEFAULT=NO,AUTOSELECT=YES"),
        "{master}"
    );
    assert!(master.contains("URI=\"cam_a1-audio.m3u8\""), "{master}");
    assert_eq!(master.matches("#EXT-X-STREAM-INF:").count(), 1, "{master}");
    let media = text("/hls/cam_a1-audio.m3u8");
    let listed: Vec<&str> = media.lines().filter(|l| l.ends_with(".m4a")).collect();
    assert!(listed.len() >= 4, "{media}");
    for seg in listed {
        assert!(d.files.contains_key(&Path::new("/hls").join(seg)), "{seg}");
    }
    let mpd = text("/dash/cam.mpd");
    assert_eq!(mpd.matches("contentType=\"audio\"").count(), 2, "{mpd}");
    assert!(mpd.contains("<Representation id=\"audio_1\""), "{mpd}");
}

#[test]
fn a_republish_without_the_other_tracks_lists_no_stale_rendition() {
    let mut f = Feed::with(DASH_BESIDE);
    let publish = |f: &mut Feed, ladder: bool| {
        f.media(true, f.t, AVC_HEADER);
        f.media(false, f.t, AAC_HEADER);
        if ladder {
            f.media(true, f.t, &multitrack_avc(1, AVC_HEADER));
        }
        let end = f.t + 5000;
        while f.t < end {
            let t = f.t;
            let frame = video_frame(t.is_multiple_of(1000), t, 300);
            f.media(true, t, &frame);
            if ladder {
                f.media(true, t, &multitrack_avc(1, &frame));
            }
            f.media(false, t, &audio_frame(t));
            f.t += 40;
        }
        f.drain();
    };
    let master = |f: &Feed| {
        let d = f.disk.0.borrow();
        String::from_utf8(d.files[Path::new("/hls/cam.m3u8")].clone()).unwrap()
    };
    publish(&mut f, true);
    assert_eq!(
        master(&f).matches("#EXT-X-STREAM-INF:").count(),
        2,
        "{}",
        master(&f)
    );
    f.outputs
        .unpublish(&f.key.clone(), u64::from(f.t), &mut f.logs);
    f.drain();
    f.outputs.publish(
        &f.key.clone(),
        &conf_with(DASH_BESIDE),
        u64::from(f.t),
        &mut |b: &mut [u8]| b.fill(1),
    );
    publish(&mut f, false);
    let text = master(&f);
    assert_eq!(text.matches("#EXT-X-STREAM-INF:").count(), 1, "{text}");
    let mpd = {
        let d = f.disk.0.borrow();
        String::from_utf8(d.files[Path::new("/dash/cam.mpd")].clone()).unwrap()
    };
    let last_period = mpd.rsplit("<Period").next().unwrap_or_default();
    assert!(!last_period.contains("video_1"), "{mpd}");
}

#[test]
fn nested_hls_beside_dash_links_into_the_stream_directory() {
    let mut f = Feed::with(&dash_beside(&[("hls_nested", &["on"])]));
    f.media(false, 0, AAC_HEADER);
    f.media(
        true,
        0,
        &hevc(true, 0, include_bytes!("../media/testdata/hevc_main.hvcc")),
    );
    f.media(true, 0, &multitrack_avc(1, AVC_HEADER));
    while f.t < 5000 {
        let t = f.t;
        let key = t.is_multiple_of(1000);
        let mut nal = vec![0, 0, 0, 40, if key { 19 << 1 } else { 2 }, 1];
        nal.resize(44, 0xab);
        f.media(true, t, &hevc(key, 3, &nal));
        f.media(true, t, &multitrack_avc(1, &video_frame(key, t, 300)));
        f.media(false, t, &audio_frame(t));
        f.t += 40;
    }
    f.drain();
    let d = f.disk.0.borrow();
    let text = |p: &str| String::from_utf8(d.files[Path::new(p)].clone()).unwrap();
    let master = text("/hls/cam/index.m3u8");
    assert!(
        master.contains("\nvideo.m3u8\n") && master.contains("\n../cam_1/video.m3u8\n"),
        "{master}"
    );
    for (dir, playlist) in [
        ("/hls/cam", "video.m3u8"),
        ("/hls/cam", "audio.m3u8"),
        ("/hls/cam_1", "video.m3u8"),
    ] {
        let media = text(&format!("{dir}/{playlist}"));
        let uris: Vec<&str> = media
            .lines()
            .filter(|l| !l.starts_with('#') || l.starts_with("#EXT-X-MAP"))
            .map(|l| {
                l.trim_start_matches("#EXT-X-MAP:URI=\"")
                    .trim_end_matches('"')
            })
            .collect();
        assert!(uris.len() >= 4, "{dir}/{playlist}: {media}");
        for uri in uris {
            assert!(
                d.files.contains_key(&Path::new(dir).join(uri)),
                "{dir}/{uri} listed, not on disk"
            );
        }
    }
}

/// The `(duration ms, URI, independent)` of each `EXT-X-PART` of a media playlist, and of
/// each segment (independent: false), in order.
fn ll_entries(text: &str) -> Vec<(bool, u64, String, bool)> {
    let mut out = Vec::new();
    let mut lines = text.lines();
    let ms = |s: &str| -> u64 {
        let (a, b) = s.split_once('.').unwrap();
        a.parse::<u64>().unwrap() * 1000 + b.parse::<u64>().unwrap()
    };
    while let Some(l) = lines.next() {
        if let Some(attrs) = l.strip_prefix("#EXT-X-PART:") {
            let dur = attrs
                .split(',')
                .find_map(|a| a.strip_prefix("DURATION="))
                .unwrap();
            let uri = attrs
                .split("URI=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap();
            out.push((
                true,
                ms(dur),
                uri.to_owned(),
                attrs.contains("INDEPENDENT=YES"),
            ));
        } else if let Some(d) = l.strip_prefix("#EXTINF:") {
            let uri = lines.next().unwrap();
            out.push((false, ms(d.trim_end_matches(',')), uri.to_owned(), false));
        }
    }
    out
}

#[test]
fn low_latency_hls_lists_parts_as_they_are_written() {
    let mut f = Feed::with(&[
        ("hls_low_latency", &["on"]),
        ("hls_part_duration", &["200ms"]),
    ]);
    f.media(true, 0, AVC_HEADER);
    f.media(false, 0, AAC_HEADER);
    let text = |f: &Feed, p: &str| -> String {
        let d = f.disk.0.borrow();
        String::from_utf8(d.files[Path::new(p)].clone()).unwrap()
    };
    let exists = |f: &Feed, uri: &str| {
        f.disk
            .0
            .borrow()
            .files
            .contains_key(&Path::new("/hls").join(uri))
    };
    let mut hints_seen = 0;
    let mut last_hint: Option<String> = None;
    // 25 fps H.264 (a keyframe every second) and audio, H.264 from the start: fMP4 all
    // the same (parts are fMP4).
    for _ in 0..60 {
        f.play(200, 600);
        f.drain();
        if !exists(&f, "cam-video.m3u8") {
            // Nothing is listed before the first whole segment.
            assert!(last_hint.is_none());
            continue;
        }
        let video = text(&f, "/hls/cam-video.m3u8");
        if let Some(hint) = &last_hint {
            // The part hinted last time was written since.
            assert!(exists(&f, hint), "hinted {hint} never came:\n{video}");
            hints_seen += 1;
        }
        assert!(video.starts_with("#EXTM3U\n#EXT-X-VERSION:9\n"), "{video}");
        assert!(
            video.contains("#EXT-X-PART-INF:PART-TARGET=0.200\n"),
            "{video}"
        );
        assert!(
            video.contains("#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=6.000,HOLD-BACK=3.000,PART-HOLD-BACK=0.600\n"),
            "{video}"
        );
        let entries = ll_entries(&video);
        // Parts only on the last three segments, the one being written included (as strict
        // validators read RFC 8216bis: none more than three target durations from the end).
        let mut groups: Vec<bool> = vec![false];
        for (is_part, ..) in &entries {
            if *is_part {
                *groups.last_mut().unwrap() = true;
            } else {
                groups.push(false);
            }
        }
        if groups.last() == Some(&false) && !video.contains("#EXT-X-PRELOAD-HINT") {
            // Validators count the preload hint as a part of the segment being written.
            groups.pop();
        }
        let first_with_parts = groups.iter().position(|p| *p).unwrap_or(groups.len());
        assert!(
            first_with_parts + 3 >= groups.len(),
            "parts before the last three segments:\n{video}"
        );
        let mut since_segment: Vec<&(bool, u64, String, bool)> = Vec::new();
        let mut first_part = true;
        for e in &entries {
            let (is_part, dur, uri, independent) = e;
            assert!(exists(&f, uri), "{uri} is listed but not on disk:\n{video}");
            if *is_part {
                assert!(
                    *dur <= 200,
                    "a part longer than PART-TARGET: {e:?}\n{video}"
                );
                if first_part {
                    // Parts of a segment start at its keyframe.
                    assert!(independent, "{e:?}\n{video}");
                }
                first_part = false;
                since_segment.push(e);
            } else {
                if !since_segment.is_empty() {
                    // The segment's parts cover it exactly.
                    let sum: u64 = since_segment.iter().map(|p| p.1).sum();
                    assert!(
                        sum.abs_diff(*dur) <= since_segment.len() as u64,
                        "{sum} vs {dur}\n{video}"
                    );
                }
                since_segment.clear();
                first_part = true;
            }
        }
        let hint = video
            .lines()
            .find_map(|l| l.strip_prefix("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\""))
            .map(|u| u.trim_end_matches('"').to_owned());
        if entries.iter().any(|e| !e.0) {
            let hint = hint.clone().expect("a preload hint");
            assert!(!exists(&f, &hint), "the hint names a part not written yet");
            assert!(
                video.contains("#EXT-X-RENDITION-REPORT:URI=\"cam-audio.m3u8\",LAST-MSN="),
                "{video}"
            );
            let audio = text(&f, "/hls/cam-audio.m3u8");
            assert!(
                audio.contains("#EXT-X-RENDITION-REPORT:URI=\"cam-video.m3u8\",LAST-MSN="),
                "{audio}"
            );
            for e in ll_entries(&audio) {
                assert!(exists(&f, &e.2), "{e:?}\n{audio}");
                assert!(!e.0 || e.1 <= 200, "{e:?}\n{audio}");
            }
        }
        last_hint = hint;
    }

    assert!(hints_seen > 40, "{hints_seen}");
    let video = text(&f, "/hls/cam-video.m3u8");
    let parts = video.matches("#EXT-X-PART:").count();
    // Parts only near the live edge: three target durations (1 s segments) and the segment
    // being written, of 200 ms parts.
    assert!((10..=25).contains(&parts), "{parts}\n{video}");
    // Older parts left the disk after their grace; the count stays bounded.
    let on_disk = hls_files(&f)
        .iter()
        .filter(|p| p.contains("/cam-p"))
        .count();
    assert!(on_disk < 120, "{on_disk} part files on disk");
    // The segments are what they were without parts: one moof each.
    let seg = entries_last_segment(&video);
    let d = f.disk.0.borrow();
    let bytes = &d.files[&Path::new("/hls").join(&seg)];
    assert_eq!(count_boxes(bytes, b"moof"), 1, "{seg}");
    drop(d);
    let key = f.key.clone();
    f.outputs.unpublish(&key, 12_500, &mut f.logs);
    f.drain();
    let video = text(&f, "/hls/cam-video.m3u8");
    assert!(video.ends_with("#EXT-X-ENDLIST\n"), "{video}");
    assert!(
        !video.contains("#EXT-X-PART"),
        "an ended playlist lists whole segments:\n{video}"
    );
    assert!(!video.contains("PRELOAD-HINT"), "{video}");
}

/// Each whole segment's parts (ms) in a media playlist, segments that list none left out.
fn parts_by_segment(text: &str) -> Vec<Vec<u64>> {
    let mut out = vec![Vec::new()];
    for (is_part, ms, ..) in ll_entries(text) {
        if is_part {
            out.last_mut().unwrap().push(ms);
        } else {
            out.push(Vec::new());
        }
    }
    out.pop();
    out.retain(|p| !p.is_empty());
    out
}

#[test]
fn low_latency_parts_split_each_segment_evenly_without_a_runt_at_its_end() {
    // 25 fps with a keyframe every second and 44.1 kHz AAC (23.2 ms frames, timestamps in
    // ms like RTMP's), 333 ms parts: greedy parts would be 8 + 8 + 8 + 1 video frames and
    // 14 + 14 + 14 + 1 audio frames, and hls.js skips such a 40 ms last part. Each part
    // target is chosen so that a second splits evenly: 9 video frames (360 ms), 15 audio
    // frames (348.3 ms).
    check_even_parts(25, 25, [360, 349], 3);
    // 30 fps (timestamps 33 or 34 ms apart) with 2 s keyframe intervals: 10 frames (333.3
    // ms, and 1 ms for the jitter); audio 87 frames in 6 parts.
    check_even_parts(30, 60, [335, 349], 6);
}

/// Feeds `fps` video with a keyframe every `gop` frames and AAC, and checks that every
/// segment's parts of each media playlist (video, audio) are at most its `targets` (ms,
/// the `PART-TARGET`), all but the last at least 85 % of it, the last longer than 300 ms, and
/// `per_segment` of them.
fn check_even_parts(fps: u64, gop: u64, targets: [u64; 2], per_segment: usize) {
    let mut f = Feed::with(&[("hls_low_latency", &["on"])]);
    f.media(true, 0, AVC_HEADER);
    f.media(false, 0, AAC_HEADER);
    let read = |f: &Feed, p: &str| -> Option<String> {
        let d = f.disk.0.borrow();
        d.files
            .get(Path::new(p))
            .map(|b| String::from_utf8(b.clone()).unwrap())
    };
    let (mut frame, mut audio_n) = (0u64, 0u64);
    let mut checked = [0usize; 2];
    loop {
        let video_t = u32::try_from(frame * 1000 / fps).unwrap();
        if video_t >= 14_000 {
            break;
        }
        let audio_t = u32::try_from(audio_n * 1024 * 1000 / 44_100).unwrap();
        if audio_t < video_t {
            f.media(false, audio_t, &audio_frame(audio_t));
            audio_n += 1;
            continue;
        }
        let key = frame.is_multiple_of(gop);
        f.media(true, video_t, &video_frame(key, video_t, 600));
        frame += 1;
        f.drain();
        for (i, name) in ["/hls/cam-video.m3u8", "/hls/cam-audio.m3u8"]
            .iter()
            .enumerate()
        {
            let Some(text) = read(&f, name) else { continue };
            let target = targets[i];
            let inf = format!("#EXT-X-PART-INF:PART-TARGET=0.{target}\n");
            assert!(text.contains(&inf), "{text}");
            // The stream's first segment was cut before the target was known.
            if text.matches("#EXTINF").count() < 3 {
                continue;
            }
            for parts in parts_by_segment(&text) {
                let (last, rest) = parts.split_last().unwrap();
                assert!(parts.iter().all(|p| *p <= target), "{parts:?}\n{text}");
                // RFC 8216bis: all but a segment's last part at least 85 % of the target.
                assert!(
                    rest.iter().all(|p| *p * 100 >= target * 85),
                    "{parts:?}\n{text}"
                );
                // And no runt at its end: longer than hls.js's lookup tolerance (250 ms).
                assert!(*last > 300, "{parts:?}\n{text}");
                assert_eq!(parts.len(), per_segment, "{parts:?}\n{text}");
                checked[i] += 1;
            }
        }
    }
    assert!(checked.iter().all(|n| *n > 50), "{checked:?}");
}

fn entries_last_segment(text: &str) -> String {
    ll_entries(text).into_iter().rev().find(|e| !e.0).unwrap().2
}

/// How many top-level boxes of this type a file has.
fn count_boxes(mut data: &[u8], kind: &[u8; 4]) -> usize {
    let mut n = 0;
    while data.len() >= 8 {
        let size = u32::from_be_bytes(data[..4].try_into().unwrap()) as usize;
        if &data[4..8] == kind {
            n += 1;
        }
        if size < 8 || size > data.len() {
            break;
        }
        data = &data[size..];
    }
    n
}

#[test]
fn low_latency_needs_fmp4_and_short_parts() {
    let mut c = conf(&[
        ("hls", &["on"]),
        ("hls_low_latency", &["on"]),
        ("hls_container", &["mpegts"]),
    ]);
    assert!(c
        .check()
        .unwrap_err()
        .to_string()
        .contains("hls_container mpegts"));
    c = conf(&[
        ("hls", &["on"]),
        ("hls_low_latency", &["on"]),
        ("hls_fragment", &["500ms"]),
        ("hls_part_duration", &["300ms"]),
    ]);
    assert!(c.check().unwrap_err().to_string().contains("half"));
    assert!(conf(&[("hls_low_latency", &["on"])]).check().is_ok());
}

/// Each `SegmentTemplate` of an MPD: its `media` template and the start time of every
/// segment its timeline lists, with the `S` elements' `d`.
fn mpd_timelines(text: &str) -> Vec<(String, Vec<(u64, u64)>)> {
    let attr = |l: &str, name: &str| -> Option<String> {
        let at = l.find(&format!(" {name}=\""))? + name.len() + 3;
        Some(l[at..].split('"').next()?.to_owned())
    };
    let mut out: Vec<(String, Vec<(u64, u64)>)> = Vec::new();
    let mut t = 0u64;
    for l in text.lines() {
        if l.contains("<SegmentTemplate") {
            out.push((attr(l, "media").unwrap(), Vec::new()));
        } else if l.trim_start().starts_with("<S ") {
            if let Some(s) = attr(l, "t") {
                t = s.parse().unwrap();
            }
            let d: u64 = attr(l, "d").unwrap().parse().unwrap();
            let r: u64 = attr(l, "r").map_or(0, |r| r.parse().unwrap());
            for _ in 0..=r {
                out.last_mut().unwrap().1.push((t, d));
                t += d;
            }
        }
    }
    out
}

#[test]
fn low_latency_dash_streams_chunks_and_announces_the_segment_being_written() {
    let directives = dash_beside(&[
        ("dash_low_latency", &["on"]),
        ("dash_chunk_duration", &["200ms"]),
    ]);
    let mut f = Feed::with(&directives);
    f.media(true, 0, AVC_HEADER);
    f.media(false, 0, AAC_HEADER);
    let mut announced_growing = 0;
    let mut grew = 0;
    let mut last_size: Option<(PathBuf, usize)> = None;
    // Video segments announced while written: (t, d) as announced.
    let mut announced: Vec<(u64, u64)> = Vec::new();
    let mut guesses_checked = 0;
    for _ in 0..40 {
        f.play(200, 600);
        f.drain();
        let d = f.disk.0.borrow();
        assert!(
            !d.open
                .keys()
                .chain(d.files.keys())
                .any(|p| p.to_string_lossy().contains("spool")),
            "no video spool with chunked segments"
        );
        let Some(mpd) = d.files.get(Path::new("/dash/cam.mpd")) else {
            continue;
        };
        let mpd = String::from_utf8(mpd.clone()).unwrap();
        assert!(mpd.contains("type=\"dynamic\""), "{mpd}");
        assert!(
            mpd.contains("<Latency target=\"1100\" min=\"400\" max=\"2200\"/>"),
            "{mpd}"
        );
        assert!(mpd.contains("minimumUpdatePeriod=\"PT0.2S\""), "{mpd}");
        let timelines = mpd_timelines(&mpd);
        assert_eq!(timelines.len(), 2, "{mpd}");
        assert_eq!(
            mpd.matches("availabilityTimeComplete=\"false\"").count(),
            2,
            "{mpd}"
        );
        for (media, segments) in &timelines {
            let path = |t: u64| Path::new("/dash").join(media.replace("$Time$", &t.to_string()));
            let (open, whole) = segments.split_last().unwrap();
            for (t, _) in whole {
                assert!(
                    d.files.contains_key(&path(*t)),
                    "{t} listed, not whole:\n{mpd}"
                );
            }
            if media.ends_with(".m4v") {
                // With a steady keyframe interval the guessed length comes true: the next
                // segment is where `t + d` of the announced one says (readers name it so).
                for pair in segments.windows(2) {
                    if let Some(a) = announced.iter().find(|a| a.0 == pair[0].0) {
                        assert_eq!(a.0 + a.1, pair[1].0, "{a:?}:\n{mpd}");
                        guesses_checked += 1;
                    }
                }
                if !announced.contains(open) {
                    announced.push(*open);
                }
            }
            // The last one is being written: not under its name yet, its chunks so far in
            // `.part` (none before its first chunk is cut).
            let name = path(open.0);
            assert!(
                !d.files.contains_key(&name),
                "{name:?} announced whole:\n{mpd}"
            );
            let mut growing = name.into_os_string();
            growing.push(".part");
            let growing = PathBuf::from(growing);
            if let Some(data) = d.open.get(&growing) {
                announced_growing += 1;
                assert_eq!(count_boxes(data, b"styp"), 1);
                if media.ends_with(".m4v") {
                    if let Some((p, size)) = &last_size {
                        if *p == growing && data.len() > *size {
                            grew += 1;
                        }
                    }
                    last_size = Some((growing.clone(), data.len()));
                }
            }
        }
    }
    assert!(announced_growing > 40, "{announced_growing}");
    assert!(guesses_checked >= 5, "{guesses_checked}");
    // Each chunk reached the disk when it was cut, not with the segment.
    assert!(grew >= 10, "{grew}");
    let whole: Vec<Vec<u8>> = {
        let d = f.disk.0.borrow();
        d.files
            .iter()
            .filter(|(p, _)| {
                let p = p.to_string_lossy();
                p.starts_with("/dash/") && p.ends_with(".m4v") && !p.contains("init")
            })
            .map(|(_, data)| data.clone())
            .collect()
    };
    assert!(whole.len() >= 5, "{}", whole.len());
    for data in &whole {
        // 1 s segments of 200 ms chunks.
        assert_eq!(count_boxes(data, b"styp"), 1);
        assert!(
            (4..=6).contains(&count_boxes(data, b"moof")),
            "{}",
            count_boxes(data, b"moof")
        );
    }
    let key = f.key.clone();
    f.outputs.unpublish(&key, 8_500, &mut f.logs);
    f.drain();
    let d = f.disk.0.borrow();
    let mpd = String::from_utf8(d.files[Path::new("/dash/cam.mpd")].clone()).unwrap();
    assert!(mpd.contains("type=\"static\""), "{mpd}");
    assert!(
        !mpd.contains("ServiceDescription") && !mpd.contains("availabilityTime"),
        "{mpd}"
    );
    for (media, segments) in mpd_timelines(&mpd) {
        for (t, _) in segments {
            let name = Path::new("/dash").join(media.replace("$Time$", &t.to_string()));
            assert!(d.files.contains_key(&name), "{name:?}:\n{mpd}");
        }
    }
    assert!(
        !d.open.keys().any(|p| p.starts_with("/dash")),
        "{:?}",
        d.open.keys().collect::<Vec<_>>()
    );
}

#[test]
fn low_latency_dash_chunks_are_short_and_match_the_hls_parts() {
    let dash = |extra: &[(&str, &[&str])]| {
        let mut d: Vec<(&str, &[&str])> = vec![("dash", &["on"]), ("dash_low_latency", &["on"])];
        d.extend_from_slice(extra);
        conf(&d).check().map_err(|e| e.to_string())
    };
    assert!(dash(&[]).is_ok());
    let e = dash(&[
        ("dash_fragment", &["500ms"]),
        ("dash_chunk_duration", &["300ms"]),
    ]);
    assert!(e.unwrap_err().contains("at most half of \"dash_fragment\""));
    let e = dash(&[
        ("hls_low_latency", &["on"]),
        ("dash_chunk_duration", &["500ms"]),
    ]);
    assert!(e
        .unwrap_err()
        .contains("must equal \"hls_part_duration\" (333ms)"));
    assert!(dash(&[
        ("hls_low_latency", &["on"]),
        ("hls_part_duration", &["500ms"]),
        ("dash_chunk_duration", &["500ms"]),
    ])
    .is_ok());
    let mut c = conf(&[]);
    let e = c
        .apply("dash_chunk_duration", &["50ms"])
        .unwrap_err()
        .to_string();
    assert!(e.contains("between 100ms and 5000ms"), "{e}");
}

/// The `EXT-X-RENDITION-REPORT` line that names `uri` at the last position of its playlist
/// `text`.
fn report_of(uri: &str, text: &str) -> String {
    let (msn, part) = ll_position(text);
    format!(
        "#EXT-X-RENDITION-REPORT:URI=\"{uri}\",LAST-MSN={msn}{}\n",
        part.map_or(String::new(), |p| format!(",LAST-PART={p}"))
    )
}

/// (LAST-MSN, LAST-PART) of a LL-HLS media playlist as its rendition report would say.
fn ll_position(text: &str) -> (u64, Option<usize>) {
    let seq: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
        .unwrap()
        .parse()
        .unwrap();
    let entries = ll_entries(text);
    let segments = entries.iter().filter(|e| !e.0).count() as u64;
    let trailing = entries.iter().rev().take_while(|e| e.0).count();
    if trailing > 0 {
        return (seq + segments, Some(trailing - 1));
    }
    let before_last = entries.iter().rev().skip(1).take_while(|e| e.0).count();
    (seq + segments - 1, before_last.checked_sub(1))
}

#[test]
fn low_latency_ladder_playlists_report_every_rendition() {
    let directives = dash_beside(&[
        ("hls_low_latency", &["on"]),
        ("hls_part_duration", &["200ms"]),
    ]);
    let mut f = Feed::with(&directives);
    f.media(true, 0, AVC_HEADER);
    f.media(false, 0, AAC_HEADER);
    for k in [1, 2] {
        f.media(true, 0, &multitrack_avc(k, AVC_HEADER));
    }
    let (mut checked, mut peers_checked) = (0, 0);
    while f.t < 8000 {
        let t = f.t;
        let frame = video_frame(t.is_multiple_of(1000), t, 300);
        f.media(true, t, &frame);
        for k in [1, 2] {
            f.media(true, t, &multitrack_avc(k, &frame));
        }
        f.media(false, t, &audio_frame(t));
        f.t += 40;
        f.drain();
        let d = f.disk.0.borrow();
        let text = |p: &str| {
            d.files
                .get(Path::new(p))
                .map(|b| String::from_utf8(b.clone()).unwrap())
        };
        let (Some(main), Some(audio)) = (text("/hls/cam-video.m3u8"), text("/hls/cam-audio.m3u8"))
        else {
            continue;
        };
        for k in [1, 2] {
            let uri = format!("cam_{k}-video.m3u8");
            let Some(theirs) = text(&format!("/hls/{uri}")) else {
                continue;
            };
            if !main.contains(&format!("#EXT-X-RENDITION-REPORT:URI=\"{uri}\"")) {
                // Listed from the rendition's first whole segment on.
                continue;
            }
            let report = report_of(&uri, &theirs);
            assert!(main.contains(&report), "{report}\n{main}\n{theirs}");
            assert!(audio.contains(&report), "{report}\n{audio}");
            checked += 1;
            // And each rendition reports the main video playlist and the other rendition (its
            // position taken from the rendition's own video: a video-only rendition does not
            // report audio).
            let other = format!("cam_{}-video.m3u8", 3 - k);
            for (uri, text) in [
                ("cam-video.m3u8", Some(main.clone())),
                (other.as_str(), text(&format!("/hls/{other}"))),
            ] {
                let Some(text) = text else { continue };
                if theirs.matches("#EXTINF:").count() < 2 {
                    // Told where its fellows are at its first cut.
                    continue;
                }
                let report = report_of(uri, &text);
                assert!(theirs.contains(&report), "{report}\n{theirs}\n{text}");
                peers_checked += 1;
            }
        }
    }
    assert!(checked > 100, "{checked}");
    assert!(peers_checked > 200, "{peers_checked}");
}

/// `data` without a leading `styp` box.
fn without_styp(data: &[u8]) -> &[u8] {
    if data.len() >= 8 && &data[4..8] == b"styp" {
        let size = u32::from_be_bytes(data[..4].try_into().unwrap()) as usize;
        return &data[size.min(data.len())..];
    }
    data
}

#[test]
fn with_both_low_latency_modes_the_dash_chunks_are_the_hls_parts() {
    let directives = dash_beside(&[
        ("hls_low_latency", &["on"]),
        ("hls_part_duration", &["200ms"]),
        ("dash_low_latency", &["on"]),
        ("dash_chunk_duration", &["200ms"]),
    ]);
    let mut f = Feed::with(&directives);
    f.media(true, 0, AVC_HEADER);
    f.media(false, 0, AAC_HEADER);
    f.play(5200, 600);
    f.drain();
    let d = f.disk.0.borrow();
    let mpd = String::from_utf8(d.files[Path::new("/dash/cam.mpd")].clone()).unwrap();
    let mut compared = 0;
    for (media, segments) in mpd_timelines(&mpd) {
        let (ext, part_ext) = if media.ends_with(".m4v") {
            ("m4v", "m4s")
        } else {
            ("m4a", "m4a")
        };
        // The last whole segment (the one before the segment being written).
        let (t, dur) = segments[segments.len() - 2];
        let whole = &d.files[&Path::new("/dash").join(format!("cam-{t}.{ext}"))];
        // Its parts: HLS names by start time, in the track's timescale.
        let mut parts: Vec<(u64, &Vec<u8>)> = d
            .files
            .iter()
            .filter_map(|(p, data)| {
                let name = p.to_str()?.strip_prefix("/hls/cam-p")?;
                let start: u64 = name.strip_suffix(&format!(".{part_ext}"))?.parse().ok()?;
                Some((start, data))
            })
            .filter(|(start, _)| (t..t + dur).contains(start))
            .collect();
        parts.sort_by_key(|(start, _)| *start);
        assert!(parts.len() >= 4, "{media} {t}: {} parts", parts.len());
        let joined: Vec<u8> = parts
            .iter()
            .flat_map(|(_, p)| without_styp(p).iter().copied())
            .collect();
        assert_eq!(count_boxes(whole, b"styp"), 1);
        assert!(
            without_styp(whole) == joined.as_slice(),
            "{media} {t}: {} bytes against {} in {} parts",
            whole.len(),
            joined.len(),
            parts.len()
        );
        compared += 1;
    }
    assert_eq!(compared, 2);
}

#[test]
fn the_flush_hands_over_the_spool_of_earlier_gops_only() {
    // 3 s DASH segments of 1 s GOPs, 8 KB frames (200 KB a second): the GOP cache holds the
    // current GOP only, so what DASH holds of earlier ones would be memory of its own.
    let mut f = Feed::with(&[
        ("dash", &["on"]),
        ("dash_path", &["/dash"]),
        ("dash_fragment", &["3s"]),
        ("dash_playlist_length", &["30s"]),
    ]);
    f.media(true, 0, AVC_HEADER);
    f.media(false, 0, AAC_HEADER);
    f.play(3500, 8000);
    f.drain();
    let dash_jobs = |f: &Feed| -> Vec<usize> {
        let d = f.disk.0.borrow();
        let jobs = d.append_jobs.iter();
        jobs.filter(|(p, _)| p.starts_with("/dash"))
            .map(|(_, b)| *b)
            .collect()
    };
    // The cut at 3 s sent everything; since then half a GOP waits.
    let before = dash_jobs(&f).len();
    let mut logs = Vec::new();
    f.outputs.housekeeping(u64::from(f.t), &mut logs);
    f.drain();
    assert_eq!(dash_jobs(&f).len(), before, "the current GOP waits");
    // Two GOPs later, the flush takes the two earlier GOPs (2 s, 50 frames) and leaves
    // the current one waiting for the cut.
    f.play(2000, 8000);
    f.drain();
    f.outputs.housekeeping(u64::from(f.t), &mut logs);
    f.drain();
    let jobs = dash_jobs(&f);
    assert_eq!(jobs.len(), before + 1, "{jobs:?}");
    // What still waits is the current GOP (since 5 s): 13 frames.
    let waiting: usize = f.outputs.streams[&f.key]
        .slots
        .iter()
        .filter(|s| matches!(s.output, Output::Dash(_)))
        .flat_map(|s| s.queue.iter())
        .map(|q| match &q.op {
            FileOp::Append { data, .. } => data.len(),
            _ => 0,
        })
        .sum();
    assert_eq!(waiting.div_ceil(8000), 13, "{waiting} bytes wait");
    f.outputs.housekeeping(u64::from(f.t), &mut logs);
    assert_eq!(
        dash_jobs(&f).len(),
        before + 1,
        "no more until the next keyframe"
    );
}
