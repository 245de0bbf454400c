//! Tests of the DASH segmenter: synthetic FLV streams in, FileOps applied to a fake disk that
//! checks after every operation that every MPD on disk names only complete files. MPDs are
//! read back with an independent XML parser (roxmltree), segments with mp4-atom. Every MPD
//! write is checked for availability (no segment listed before its end by the MPD's clock),
//! `publishTime`/`UTCTiming` and a `SegmentTimeline` without overlaps.

use super::*;
use crate::segment::testkit::*;
use mp4_atom::{Decode, Moof, Styp};
use std::collections::{BTreeMap, HashMap, HashSet};

const SYNC: u32 = 0x0200_0000;

fn settings() -> DashSettings {
    DashSettings {
        enabled: true,
        path: "/dash".into(),
        fragment_ms: 2000,
        playlist_length_ms: 10_000,
        nested: false,
        cleanup: true,
        clock_compensation: DashClock::Off,
        clock_helper_uri: String::new(),
        low_latency: false,
        chunk_ms: 333,
    }
}

// ---- reading an MPD back (roxmltree) ----

#[derive(Debug, Clone)]
struct PSet {
    attrs: HashMap<String, String>,
    rep: HashMap<String, String>,
    channels: Option<(String, String)>,
    timescale: u64,
    pto: u64,
    init: String,
    media: String,
    /// Expanded (t, d).
    segs: Vec<(u64, u64)>,
    /// S elements with an explicit t after the first (gaps).
    gaps: usize,
}

#[derive(Debug, Clone)]
struct PPeriod {
    id: String,
    start_ms: u64,
    sets: Vec<PSet>,
}

#[derive(Debug, Clone)]
struct PMpd {
    attrs: HashMap<String, String>,
    periods: Vec<PPeriod>,
    utc: Vec<(String, String)>,
}

impl PMpd {
    fn dynamic(&self) -> bool {
        self.attrs["type"] == "dynamic"
    }

    fn ast(&self) -> u64 {
        crate::segment::datetime::parse(&self.attrs["availabilityStartTime"]).unwrap()
    }

    fn set(&self, period: usize, content: &str) -> &PSet {
        self.periods[period]
            .sets
            .iter()
            .find(|s| s.attrs["contentType"] == content)
            .unwrap_or_else(|| panic!("no {content} set"))
    }
}

/// xs:duration "PT<seconds>S" as written by any MPD writer, read independently.
fn dur_ms(s: &str) -> u64 {
    let secs: f64 = s
        .strip_prefix("PT")
        .and_then(|s| s.strip_suffix('S'))
        .unwrap_or_else(|| panic!("duration {s}"))
        .parse()
        .unwrap();
    (secs * 1000.0).round() as u64
}

fn attrs(n: roxmltree::Node<'_, '_>) -> HashMap<String, String> {
    n.attributes()
        .map(|a| (a.name().to_string(), a.value().to_string()))
        .collect()
}

fn elems<'a, 'i>(
    n: roxmltree::Node<'a, 'i>,
    name: &'a str,
) -> impl Iterator<Item = roxmltree::Node<'a, 'i>> {
    n.children()
        .filter(move |c| c.is_element() && c.tag_name().name() == name)
}

fn parse_mpd(text: &str) -> PMpd {
    let doc = roxmltree::Document::parse(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "MPD");
    assert_eq!(
        root.tag_name().namespace(),
        Some("urn:mpeg:dash:schema:mpd:2011")
    );
    let mut periods = Vec::new();
    for p in elems(root, "Period") {
        let mut sets = Vec::new();
        for a in elems(p, "AdaptationSet") {
            let tpl = elems(a, "SegmentTemplate").next().expect("SegmentTemplate");
            let rep = elems(a, "Representation").next().expect("Representation");
            let channels = elems(rep, "AudioChannelConfiguration").next().map(|c| {
                (
                    c.attribute("schemeIdUri").unwrap().to_string(),
                    c.attribute("value").unwrap().to_string(),
                )
            });
            let mut segs = Vec::new();
            let mut gaps = 0;
            let mut next: Option<u64> = None;
            let tl = elems(tpl, "SegmentTimeline")
                .next()
                .expect("SegmentTimeline");
            for s in elems(tl, "S") {
                let d: u64 = s.attribute("d").unwrap().parse().unwrap();
                assert!(d > 0);
                let t = match (s.attribute("t"), next) {
                    (Some(t), prev) => {
                        let t: u64 = t.parse().unwrap();
                        if let Some(prev) = prev {
                            assert!(t >= prev, "overlapping S t={t} < {prev}\n{text}");
                            gaps += usize::from(t != prev);
                        }
                        t
                    }
                    (None, Some(prev)) => prev,
                    (None, None) => panic!("first S without t"),
                };
                let r: u64 = s.attribute("r").map_or(0, |r| r.parse().unwrap());
                for i in 0..=r {
                    segs.push((t + i * d, d));
                }
                next = Some(t + d * (r + 1));
            }
            sets.push(PSet {
                attrs: attrs(a),
                rep: attrs(rep),
                channels,
                timescale: tpl.attribute("timescale").unwrap().parse().unwrap(),
                pto: tpl
                    .attribute("presentationTimeOffset")
                    .map_or(0, |p| p.parse().unwrap()),
                init: tpl.attribute("initialization").unwrap().to_string(),
                media: tpl.attribute("media").unwrap().to_string(),
                segs,
                gaps,
            });
        }
        periods.push(PPeriod {
            id: p.attribute("id").unwrap().to_string(),
            start_ms: dur_ms(p.attribute("start").unwrap()),
            sets,
        });
    }
    let utc = elems(root, "UTCTiming")
        .map(|u| {
            (
                u.attribute("schemeIdUri").unwrap().to_string(),
                u.attribute("value").unwrap().to_string(),
            )
        })
        .collect();
    PMpd {
        attrs: attrs(root),
        periods,
        utc,
    }
}

fn resolve(mpd_path: &Path, uri: &str) -> PathBuf {
    mpd_path.parent().unwrap().join(percent_decode(uri))
}

fn segment_uri(set: &PSet, t: u64) -> String {
    set.media.replace("$Time$", &t.to_string())
}

/// Every file an MPD names.
fn files_of(mpd_path: &Path, m: &PMpd) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for p in &m.periods {
        for s in &p.sets {
            out.push(resolve(mpd_path, &s.init));
            for (t, _) in &s.segs {
                out.push(resolve(mpd_path, &segment_uri(s, *t)));
            }
        }
    }
    out
}

// ---- the fake disk ----

#[derive(Default)]
struct Disk {
    files: BTreeMap<PathBuf, Vec<u8>>,
    open: HashMap<PathBuf, Vec<u8>>,
    dirs: HashSet<PathBuf>,
    listed: HashSet<PathBuf>,
    left_at: HashMap<PathBuf, u64>,
    min_grace: Option<u64>,
    deletes: Vec<PathBuf>,
}

/// A DASH video spool file (see `Layout::spool`).
fn is_spool(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.contains("spool") && n.ends_with(".m4v.part"))
}

impl Disk {
    fn listed_now(&self) -> HashSet<PathBuf> {
        let mut out = HashSet::new();
        for (path, data) in &self.files {
            if path.extension().and_then(|e| e.to_str()) != Some("mpd") {
                continue;
            }
            let m = parse_mpd(std::str::from_utf8(data).unwrap());
            out.extend(files_of(path, &m));
        }
        out
    }

    fn assert_dir(&self, path: &Path) {
        let parent = path.parent().unwrap();
        assert!(
            self.dirs.contains(parent) || parent == Path::new("/dash"),
            "no CreateDir for {parent:?}"
        );
    }

    fn apply(&mut self, op: &FileOp, mono: u64) {
        match op {
            FileOp::CreateDir { path } => {
                self.dirs.insert(path.clone());
            }
            FileOp::Open { path } => {
                assert!(path.to_string_lossy().ends_with(".part"), "{path:?}");
                // A video spool is opened again (truncated) for every other segment.
                let reopened = self.open.insert(path.clone(), Vec::new()).is_some();
                assert!(!reopened || is_spool(path), "{path:?} opened twice");
                self.assert_dir(path);
            }
            FileOp::OpenRecording { .. } | FileOp::WriteAt { .. } | FileOp::Close { .. } => {
                panic!("DASH never records: {op:?}")
            }
            FileOp::Flush { path } => {
                assert!(self.open.contains_key(path), "flush of a closed {path:?}");
            }
            FileOp::AppendFrom { path, from } => {
                assert!(is_spool(from), "{from:?}");
                let data = self
                    .open
                    .get(from)
                    .expect("copy from an open spool")
                    .clone();
                self.open
                    .get_mut(path)
                    .unwrap_or_else(|| panic!("append to unopened {path:?}"))
                    .extend_from_slice(&data);
            }
            FileOp::Append { path, data } => {
                self.open
                    .get_mut(path)
                    .unwrap_or_else(|| panic!("append to unopened {path:?}"))
                    .extend_from_slice(data);
            }
            FileOp::Commit { path, to } => {
                let data = self.open.remove(path).expect("commit of unopened file");
                assert!(
                    !self.listed.contains(to),
                    "commit over a listed file {to:?}"
                );
                assert!(!self.files.contains_key(to), "segment name reused {to:?}");
                self.files.insert(to.clone(), data);
            }
            FileOp::Abort { path } => {
                self.open.remove(path).expect("abort of unopened file");
            }
            FileOp::Link { path, from } => {
                let data = self.files.get(from).expect("link to a whole file").clone();
                self.files.insert(path.clone(), data);
            }
            FileOp::WriteAtomic { path, data } => {
                self.assert_dir(path);
                if self.listed.contains(path) {
                    assert_eq!(
                        self.files.get(path).map(Vec::as_slice),
                        Some(&data[..]),
                        "a listed init segment was rewritten with other bytes: {path:?}"
                    );
                }
                self.files.insert(path.clone(), data.to_vec());
            }
            FileOp::Delete { path } => {
                assert!(!self.listed.contains(path), "delete of listed {path:?}");
                assert!(
                    self.files.remove(path).is_some(),
                    "delete of missing {path:?}"
                );
                if let Some(left) = self.left_at.get(path) {
                    let g = mono - left;
                    self.min_grace = Some(self.min_grace.map_or(g, |m| m.min(g)));
                }
                self.deletes.push(path.clone());
            }
        }
        let now_listed = self.listed_now();
        for p in &now_listed {
            assert!(self.files.contains_key(p), "listed but missing: {p:?}");
        }
        for gone in self.listed.difference(&now_listed) {
            self.left_at.insert(gone.clone(), mono);
        }
        self.listed = now_listed;
    }

    fn segment_files(&self, ext: &str) -> Vec<&PathBuf> {
        self.files
            .keys()
            .filter(|p| {
                p.extension().and_then(|e| e.to_str()) == Some(ext)
                    && !p.to_string_lossy().contains("init")
            })
            .collect()
    }
}

/// Checks one MPD write: availability by the MPD's own clock, publishTime and UTCTiming.
fn check_mpd_write(text: &str, unix: u64) {
    let m = parse_mpd(text);
    assert_eq!(
        crate::segment::datetime::parse(&m.attrs["publishTime"]),
        Some(unix),
        "publishTime"
    );
    let direct = m
        .utc
        .iter()
        .find(|u| u.0 == "urn:mpeg:dash:utc:direct:2014")
        .expect("UTCTiming direct");
    assert_eq!(crate::segment::datetime::parse(&direct.1), Some(unix));
    if !m.dynamic() {
        return;
    }
    let ast = m.ast();
    for p in &m.periods {
        for s in &p.sets {
            for (t, d) in &s.segs {
                // ast + period start + (t + d - pto) / timescale <= now, exactly.
                let ts = u128::from(s.timescale);
                let lhs = u128::from(ast + p.start_ms) * ts + u128::from(t + d - s.pto) * 1000;
                assert!(
                    lhs <= u128::from(unix) * ts,
                    "segment t={t} listed {} ms before it is available",
                    (lhs - u128::from(unix) * ts) / ts
                );
            }
        }
    }
}

struct Sim {
    s: DashStream,
    disk: Disk,
    log: Vec<(u64, FileOp)>,
    /// (wall ms, text) of every MPD write.
    mpds: Vec<(u64, String)>,
    clock: u64,
    /// A path whose next operation fails (as the IO ring reports it).
    fail_on: Option<PathBuf>,
    /// Appends asked for to a spool that is not open (each fails).
    unopened_appends: usize,
}

impl Sim {
    fn new(settings: &DashSettings, name: &str) -> Self {
        Self::with_previous(settings, name, None, Disk::default())
    }

    fn with_previous(settings: &DashSettings, name: &str, prev: Option<&str>, disk: Disk) -> Self {
        Sim {
            s: DashStream::new(settings, "live", name, prev),
            disk,
            log: Vec::new(),
            mpds: Vec::new(),
            clock: 0,
            fail_on: None,
            unopened_appends: 0,
        }
    }

    fn now(&self) -> Now {
        Now {
            mono_ms: MONO0 + self.clock,
            unix_ms: UNIX0 + self.clock,
        }
    }

    /// Performs ops as the IO ring does: in order, stopping at the first failure (a failed
    /// rename's `.part` file is removed; the rest of the batch is lost) and telling the
    /// stream.
    fn apply(&mut self, ops: Vec<FileOp>) {
        let now = self.now();
        let mut ops = ops.into_iter();
        while let Some(op) = ops.next() {
            let path = match &op {
                FileOp::Commit { to, .. } => Some(to.clone()),
                FileOp::WriteAtomic { path, .. } | FileOp::Open { path } => Some(path.clone()),
                _ => None,
            };
            // A spool the IO ring abandoned (after an earlier failure) is not open.
            let unopened = match &op {
                FileOp::Append { path, .. } | FileOp::AppendFrom { from: path, .. } => {
                    is_spool(path) && !self.disk.open.contains_key(path)
                }
                _ => false,
            };
            self.unopened_appends += usize::from(unopened);
            if (path.is_some() && path == self.fail_on) || unopened {
                let failed = match &op {
                    FileOp::Append { path, .. } => path.clone(),
                    FileOp::AppendFrom { from, .. } if unopened => from.clone(),
                    _ => path.clone().unwrap(),
                };
                if !unopened {
                    self.fail_on = None;
                }
                if let FileOp::Commit { path: part, .. } = &op {
                    self.disk.open.remove(part);
                }
                self.s.on_write_failed(&failed);
                // As Outputs does: what was asked for behind it is lost, and the output is
                // told about each file (open ones are abandoned).
                for rest in ops {
                    let (abandoned, told) = lost_op(rest);
                    if let Some(path) = abandoned {
                        self.disk.open.remove(&path);
                    }
                    if let Some(path) = told {
                        self.s.on_write_failed(&path);
                    }
                }
                return;
            }
            self.disk.apply(&op, now.mono_ms);
            self.s.on_written(1);
            if let FileOp::WriteAtomic { path, data } = &op {
                if path.extension().and_then(|e| e.to_str()) == Some("mpd") {
                    let text = String::from_utf8(data.to_vec()).unwrap();
                    check_mpd_write(&text, now.unix_ms);
                    self.mpds.push((now.unix_ms, text));
                }
            }
            self.log.push((now.mono_ms, op));
        }
    }

    fn tick(&mut self) -> Option<u64> {
        let mut ops = Vec::new();
        let now = self.now();
        let next = self.s.on_tick(now, &mut ops);
        self.apply(ops);
        next
    }

    /// Ticks every 100 ms of wall clock until `until` (ms since start).
    fn idle_until(&mut self, until: u64) {
        while self.clock < until {
            self.clock = (self.clock + 100).min(until);
            self.tick();
        }
    }

    /// Feeds a plan with raw timestamps `start_ts + t` at clock `clock0 + t / speed`.
    fn feed_at(&mut self, plan: &Plan, start_ts: u32, clock0: u64, speed: u64) {
        for (video, t, tag) in plan.events() {
            self.clock = clock0 + t / speed;
            self.media(video, start_ts.wrapping_add(t as u32), &tag);
        }
    }

    fn feed(&mut self, plan: &Plan, start_ts: u32, clock0: u64) {
        self.feed_at(plan, start_ts, clock0, 1);
    }

    fn media(&mut self, video: bool, ts: u32, tag: &[u8]) {
        let mut ops = Vec::new();
        let now = self.now();
        self.s
            .on_media(video, ts, &Bytes::copy_from_slice(tag), now, &mut ops);
        self.apply(ops);
        self.tick();
    }

    fn finish(&mut self) {
        let mut ops = Vec::new();
        let now = self.now();
        self.s.finish(now, &mut ops);
        self.apply(ops);
    }

    fn restart(&mut self) {
        let now = self.now();
        self.s.restart(now);
    }

    fn text(&self, path: &str) -> String {
        String::from_utf8(self.disk.files.get(Path::new(path)).expect(path).clone()).unwrap()
    }

    fn mpd(&self, path: &str) -> PMpd {
        parse_mpd(&self.text(path))
    }

    fn file(&self, mpd_path: &str, uri: &str) -> &[u8] {
        let p = resolve(Path::new(mpd_path), uri);
        self.disk.files.get(&p).unwrap_or_else(|| panic!("{p:?}"))
    }

    fn ops(&self) -> impl Iterator<Item = &FileOp> {
        self.log.iter().map(|(_, op)| op)
    }
}

/// styp + moof of a media segment.
fn decode_media(seg: &[u8]) -> Moof {
    let mut buf = seg;
    Styp::decode(&mut buf).unwrap();
    Moof::decode(&mut buf).unwrap()
}

/// (tfdt, durations, flags, cts) of a media segment.
fn samples_of(seg: &[u8]) -> (u64, Vec<u32>, Vec<u32>, Vec<i64>) {
    let moof = decode_media(seg);
    let traf = &moof.traf[0];
    let tfdt = traf.tfdt.as_ref().unwrap().base_media_decode_time;
    let mut d = Vec::new();
    let mut f = Vec::new();
    let mut c = Vec::new();
    for e in traf.trun[0].samples.iter() {
        d.push(e.duration.unwrap());
        f.push(e.flags.unwrap_or(0));
        c.push(e.cts.unwrap_or(0));
    }
    (tfdt, d, f, c)
}

/// For every segment an MPD on disk lists: tfdt = S@t, durations add up to S@d, video
/// segments start with a sync sample.
fn check_segments(sim: &Sim, mpd_path: &str) {
    let m = sim.mpd(mpd_path);
    for p in &m.periods {
        for s in &p.sets {
            for (t, d) in &s.segs {
                let (tfdt, durs, flags, _) = samples_of(sim.file(mpd_path, &segment_uri(s, *t)));
                assert_eq!(tfdt, *t, "tfdt of {}", segment_uri(s, *t));
                assert_eq!(durs.iter().map(|x| u64::from(*x)).sum::<u64>(), *d);
                if s.attrs.contains_key("startWithSAP") {
                    assert_eq!(
                        flags[0], SYNC,
                        "segment {t} does not start on a sync sample"
                    );
                }
            }
        }
    }
}

const MPD: &str = "/dash/stream.mpd";

fn av_sim(dur_ms: u64) -> Sim {
    let mut sim = Sim::new(&settings(), "stream");
    sim.feed(&Plan::av(1000, dur_ms), 0, 0);
    sim
}

// ---- tests ----

#[test]
fn av_segments_start_on_keyframes_after_the_fragment_and_match_their_tfdt() {
    let sim = av_sim(12_000);
    let m = sim.mpd(MPD);
    assert_eq!(m.periods.len(), 1);
    let v = m.set(0, "video");
    assert!(v.segs.len() >= 4, "{:?}", v.segs);
    // GOP 1 s, fragment 2 s: every video segment is 2 s of 90 kHz.
    assert!(v.segs.iter().all(|s| s.1 == 180_000), "{:?}", v.segs);
    assert_eq!(v.segs[0].0, 0, "the first segment starts the presentation");
    assert_eq!(v.gaps, 0);
    check_segments(&sim, MPD);
    // Every video sample lasts one frame (40 ms).
    for (t, _) in &v.segs {
        let (_, durs, flags, _) = samples_of(sim.file(MPD, &segment_uri(v, *t)));
        assert!(durs.iter().all(|d| *d == 3600), "{durs:?}");
        assert_eq!(flags.iter().filter(|f| **f == SYNC).count(), 2, "two GOPs");
    }
}

#[test]
fn audio_is_cut_with_video_in_whole_aac_frames() {
    let sim = av_sim(12_000);
    let m = sim.mpd(MPD);
    let (v, a) = (m.set(0, "video"), m.set(0, "audio"));
    assert_eq!(a.timescale, 44_100);
    assert_eq!(a.gaps, 0, "audio segments are contiguous");
    assert_eq!(v.segs.len(), a.segs.len());
    for (vs, as_) in v.segs.iter().zip(&a.segs) {
        // Audio starts with the first frame at or after the video cut.
        let vt = vs.0 as f64 / 90_000.0;
        let at = as_.0 as f64 / 44_100.0;
        assert!(
            at >= vt - 1e-3 && at < vt + 1024.0 / 44_100.0,
            "video {vt} audio {at}"
        );
        let (_, durs, flags, _) = samples_of(sim.file(MPD, &segment_uri(a, as_.0)));
        assert!(durs.iter().all(|d| *d == 1024), "{durs:?}");
        assert!(flags.iter().all(|f| *f == SYNC));
    }
    check_segments(&sim, MPD);
}

#[test]
fn live_mpd_carries_every_attribute_a_player_needs() {
    let sim = av_sim(12_000);
    let m = sim.mpd(MPD);
    let a = &m.attrs;
    assert_eq!(a["profiles"], "urn:mpeg:dash:profile:isoff-live:2011");
    assert_eq!(a["type"], "dynamic");
    // The wall clock when the first segment started (clock 0).
    assert_eq!(m.ast(), UNIX0);
    assert_eq!(dur_ms(&a["minimumUpdatePeriod"]), 2000);
    assert_eq!(dur_ms(&a["minBufferTime"]), 2000);
    assert_eq!(dur_ms(&a["timeShiftBufferDepth"]), 10_000);
    assert!(dur_ms(&a["suggestedPresentationDelay"]) >= 4000);
    let p = &m.periods[0];
    assert_eq!((p.id.as_str(), p.start_ms), ("0", 0));
    let v = m.set(0, "video");
    assert_eq!(v.attrs["mimeType"], "video/mp4");
    assert_eq!(v.attrs["segmentAlignment"], "true");
    assert_eq!(v.attrs["startWithSAP"], "1");
    assert_eq!(v.rep["codecs"], "avc1.64000d");
    assert_eq!(
        (v.rep["width"].as_str(), v.rep["height"].as_str()),
        ("320", "240")
    );
    assert_eq!(v.rep["frameRate"], "25");
    let bw: u64 = v.rep["bandwidth"].parse().unwrap();
    // 25 frames of ~2 kB a second: about 400 kbit/s.
    assert!((380_000..=460_000).contains(&bw), "{bw}");
    assert_eq!((v.timescale, v.pto), (90_000, 0));
    assert_eq!(v.init, "stream-init.m4v");
    assert_eq!(v.media, "stream-$Time$.m4v");
    let au = m.set(0, "audio");
    assert_eq!(au.attrs["mimeType"], "audio/mp4");
    assert_eq!(au.rep["codecs"], "mp4a.40.2");
    assert_eq!(au.rep["audioSamplingRate"], "44100");
    assert_eq!(
        au.channels,
        Some((
            "urn:mpeg:dash:23003:3:audio_channel_configuration:2011".into(),
            "2".into()
        ))
    );
    assert_eq!(
        (au.init.as_str(), au.media.as_str()),
        ("stream-init.m4a", "stream-$Time$.m4a")
    );
    // Init segments exist and are what fmp4 writes for these codecs.
    let init = sim.file(MPD, "stream-init.m4v");
    assert_eq!(&init[4..8], b"ftyp");
    assert_eq!(m.utc.len(), 1);
}

#[test]
fn audio_channel_configuration_is_the_real_channel_count() {
    // LC 44.1 kHz: mono (1), stereo (2), 5.1 (6).
    for (asc, want) in [
        ([0x12, 0x08], "1"),
        ([0x12, 0x10], "2"),
        ([0x12, 0x30], "6"),
    ] {
        let mut sim = Sim::new(&settings(), "a");
        sim.media(false, 0, &aac_header_asc(asc));
        let plan = Plan {
            headers: false,
            ..Plan::audio_only(5000)
        };
        sim.feed(&plan, 0, 0);
        let m = sim.mpd("/dash/a.mpd");
        assert_eq!(m.set(0, "audio").channels.as_ref().unwrap().1, want);
    }
}

#[test]
fn every_listed_segment_is_available_by_the_mpd_clock_even_from_a_fast_publisher() {
    // A publisher sending 4x faster than real time (ffmpeg without -re): segments finish
    // before the MPD's clock makes them available; they are held back, then listed.
    let mut sim = Sim::new(&settings(), "stream");
    sim.feed_at(&Plan::av(1000, 20_000), 0, 0, 4);
    let committed = sim.disk.segment_files("m4v").len();
    let held = sim.disk.open.len();
    let listed = sim.mpd(MPD).set(0, "video").segs.len();
    // A held segment keeps its `.part` name until the MPD lists it: a reader guessing the
    // next URL (ffmpeg) finds nothing yet.
    assert_eq!(
        listed, committed,
        "only listed segments have their final name"
    );
    assert!(held > 0, "{held} segments held back");
    // check_mpd_write ran on every write; now let the wall clock catch up.
    sim.idle_until(21_000);
    let m = sim.mpd(MPD);
    let v = m.set(0, "video");
    // 0..18 s are whole segments; the last one is still open.
    assert_eq!(v.segs.last().map(|s| s.0 + s.1), Some(18_000 * 90));
    // The next deadline was the hold, not a delete.
    assert!(sim.mpds.len() > committed / 2);
}

#[test]
fn on_tick_asks_to_run_when_a_held_segment_becomes_available() {
    let mut sim = Sim::new(&settings(), "stream");
    // 2.2 s of media in 0.55 s: the first segment (0..2 s) is held until the end of its
    // audio (the frame from 1.997 s ends at 2.021 s).
    let plan = Plan::av(1000, 2200);
    for (video, t, tag) in plan.events() {
        sim.clock = t / 4;
        let mut ops = Vec::new();
        let now = sim.now();
        sim.s.on_media(
            video,
            t as u32,
            &Bytes::copy_from_slice(&tag),
            now,
            &mut ops,
        );
        sim.apply(ops);
    }
    assert!(!sim.disk.files.contains_key(Path::new(MPD)));
    let mut ops = Vec::new();
    let due = sim.s.on_tick(sim.now(), &mut ops);
    assert_eq!(due, Some(MONO0 + 2021));
    sim.clock = 2020;
    sim.tick();
    assert!(!sim.disk.files.contains_key(Path::new(MPD)));
    sim.clock = 2021;
    sim.tick();
    assert_eq!(sim.mpd(MPD).set(0, "video").segs, [(0, 180_000)]);
}

#[test]
fn timestamps_wrapping_past_32_bits_continue_the_timeline() {
    let mut sim = Sim::new(&settings(), "stream");
    sim.feed(&Plan::av(1000, 16_000), u32::MAX - 7_000, 0);
    let m = sim.mpd(MPD);
    assert_eq!(m.periods.len(), 1);
    let v = m.set(0, "video");
    assert_eq!(v.gaps, 0);
    assert!(v.segs.iter().all(|s| s.1 == 180_000), "{:?}", v.segs);
    assert_eq!(m.set(0, "audio").gaps, 0);
    check_segments(&sim, MPD);
}

#[test]
fn a_backward_jump_goes_on_without_overlap_in_the_same_period() {
    let mut sim = Sim::new(&settings(), "stream");
    sim.feed(&Plan::av(1000, 6000), 100_000, 0);
    // The publisher's clock restarts at 0 while the wall clock goes on.
    let plan = Plan {
        headers: false,
        ..Plan::av(1000, 6000)
    };
    sim.feed(&plan, 0, 6000);
    let m = sim.mpd(MPD);
    assert_eq!(m.periods.len(), 1);
    for s in &m.periods[0].sets {
        for w in s.segs.windows(2) {
            assert!(w[1].0 >= w[0].0 + w[0].1);
        }
    }
    // No pause: the timeline stays within a frame of the wall clock, no gap needed.
    let v = m.set(0, "video");
    let end = v.segs.last().map(|s| s.0 + s.1).unwrap();
    assert!((10_000 * 90..=12_000 * 90).contains(&end), "{end}");
    check_segments(&sim, MPD);
}

#[test]
fn a_stall_resumes_at_the_wall_clock_with_a_gap() {
    let mut set = settings();
    set.playlist_length_ms = 60_000;
    let mut sim = Sim::new(&set, "stream");
    sim.feed(&Plan::av(1000, 6000), 0, 0);
    // 30 s without media, then timestamps continue from where they were (a forward jump).
    let plan = Plan {
        headers: false,
        ..Plan::av(1000, 6000)
    };
    sim.feed(&plan, 40_000, 36_000);
    let m = sim.mpd(MPD);
    let v = m.set(0, "video");
    assert_eq!(v.gaps, 1, "{:?}", v.segs);
    let resumed = v.segs.iter().find(|s| s.0 >= 30_000 * 90).unwrap();
    assert_eq!(
        resumed.0,
        36_000 * 90,
        "media time follows the wall clock again"
    );
    check_segments(&sim, MPD);
}

#[test]
fn finish_makes_the_mpd_static_with_a_duration() {
    let mut sim = av_sim(9000);
    sim.finish();
    let text = sim.text(MPD);
    let m = parse_mpd(&text);
    assert_eq!(m.attrs["type"], "static");
    for gone in [
        "minimumUpdatePeriod",
        "timeShiftBufferDepth",
        "availabilityStartTime",
    ] {
        assert!(!m.attrs.contains_key(gone), "{gone}");
    }
    // All 9 s are listed; presentation starts at the first listed segment.
    let v = m.set(0, "video");
    let first = v.segs[0].0;
    let end = v.segs.last().map(|s| s.0 + s.1).unwrap();
    assert_eq!(end, 9000 * 90);
    // The duration runs to the end of the longer track (audio's last frame ends at 9.01 s).
    let a = m.set(0, "audio");
    let a_end = a
        .segs
        .last()
        .map(|s| (s.0 + s.1) * 1000)
        .unwrap()
        .div_ceil(44_100);
    assert_eq!(
        dur_ms(&m.attrs["mediaPresentationDuration"]),
        a_end.max(end / 90) - first / 90
    );
    assert_eq!(v.pto, first);
    assert_eq!(m.periods[0].start_ms, 0);
    check_segments(&sim, MPD);
    // Finishing twice or feeding after the end writes nothing more.
    let before = sim.log.len();
    sim.finish();
    sim.media(true, 9040, &video_tag(true, 0, 10));
    assert_eq!(sim.log.len(), before);
}

#[test]
fn restart_opens_a_new_period_at_the_wall_clock_reusing_an_identical_init() {
    let mut set = settings();
    set.playlist_length_ms = 120_000;
    let mut sim = Sim::new(&set, "stream");
    sim.feed(&Plan::av(1000, 6000), 0, 0);
    sim.finish();
    sim.clock = 20_000;
    sim.restart();
    sim.feed(&Plan::av(1000, 6000), 0, 20_000);
    let m = sim.mpd(MPD);
    assert!(m.dynamic(), "dynamic again");
    assert_eq!(m.periods.len(), 2);
    let p1 = &m.periods[1];
    assert_eq!(p1.id, "1");
    assert_eq!(p1.start_ms, 20_000);
    let v1 = m.set(1, "video");
    assert_eq!(v1.pto, 20_000 * 90);
    assert_eq!(v1.segs[0].0, 20_000 * 90);
    assert_eq!(v1.init, "stream-init.m4v", "same codec: same init");
    assert_eq!(m.set(1, "audio").pto, 20_000 * 441 / 10);
    check_segments(&sim, MPD);
}

#[test]
fn restart_without_finish_closes_the_open_segment_first() {
    let mut sim = Sim::new(&settings(), "stream");
    sim.feed(&Plan::av(1000, 5000), 0, 0);
    sim.restart();
    sim.feed(&Plan::av(1000, 5000), 0, 5000);
    let m = sim.mpd(MPD);
    assert_eq!(m.periods.len(), 2);
    let v0 = m.set(0, "video");
    // 0-2, 2-4 and the closed 4-5 s.
    assert_eq!(v0.segs.last().map(|s| s.0 + s.1), Some(5000 * 90));
    // The new publisher's clock follows right after the old output (within a frame of the
    // wall clock: no jump needed).
    assert!((4990..=5000).contains(&m.periods[1].start_ms));
    check_segments(&sim, MPD);
}

#[test]
fn a_changed_sequence_header_starts_a_period_with_a_new_init_segment() {
    let mut sim = Sim::new(&settings(), "stream");
    sim.feed(&Plan::av(1000, 5000), 0, 0);
    let init0 = sim.disk.files[Path::new("/dash/stream-init.m4v")].clone();
    sim.clock = 5000;
    sim.media(true, 5000, &avc_header_with(&[0x68, 0xee, 0x3c, 0x80]));
    let plan = Plan {
        headers: false,
        ..Plan::av(1000, 5000)
    };
    sim.feed(&plan, 5000, 5000);
    let m = sim.mpd(MPD);
    assert_eq!(m.periods.len(), 2);
    assert_eq!(m.set(0, "video").init, "stream-init.m4v");
    assert_eq!(m.set(1, "video").init, "stream-init-1.m4v");
    assert_eq!(m.set(1, "audio").init, "stream-init.m4a", "audio unchanged");
    assert_eq!(m.periods[1].start_ms, 5000);
    assert_eq!(sim.disk.files[Path::new("/dash/stream-init.m4v")], init0);
    check_segments(&sim, MPD);
}

#[test]
fn previous_mpd_continues_the_timeline_and_its_files_go_after_the_new_mpd() {
    let mut first = av_sim(6000);
    first.finish();
    let prev = first.text(MPD);
    let old_files: Vec<PathBuf> = first
        .disk
        .segment_files("m4v")
        .into_iter()
        .cloned()
        .collect();
    let mut sim = Sim::with_previous(&settings(), "stream", Some(&prev), first.disk);
    sim.clock = 100_000;
    sim.feed(&Plan::av(1000, 6000), 0, 100_000);
    let m = sim.mpd(MPD);
    assert_eq!(m.periods.len(), 1);
    let p = &m.periods[0];
    assert_eq!(p.id, "1");
    // A static MPD has no availabilityStartTime: the timeline goes on after its end, and
    // the new one maps that onto the wall clock.
    assert_eq!(
        p.start_ms, 6014,
        "after the old audio's end (frame 258 ends at 6.0140 s)"
    );
    assert_eq!(m.ast() + p.start_ms, UNIX0 + 100_000);
    assert_eq!(m.set(0, "video").init, "stream-init-1.m4v");
    // The old files are not listed, and stay until a grace after the new MPD.
    assert!(old_files.iter().all(|f| sim.disk.files.contains_key(f)));
    let first_mpd = sim.mpds[0].0 - UNIX0;
    sim.idle_until(first_mpd + 10_000);
    assert!(old_files.iter().all(|f| sim.disk.files.contains_key(f)));
    sim.idle_until(first_mpd + 30_000);
    assert!(old_files.iter().all(|f| !sim.disk.files.contains_key(f)));
    assert!(!sim
        .disk
        .files
        .contains_key(Path::new("/dash/stream-init.m4v")));
}

#[test]
fn a_live_previous_mpd_keeps_its_availability_start_time() {
    // A worker that died: its MPD is still dynamic.
    let first = av_sim(6000);
    let prev = first.text(MPD);
    let mut sim = Sim::with_previous(&settings(), "stream", Some(&prev), first.disk);
    sim.feed(&Plan::av(1000, 6000), 0, 100_000);
    let m = sim.mpd(MPD);
    assert_eq!(m.ast(), UNIX0);
    assert_eq!(m.periods[0].start_ms, 100_000, "at the wall clock");
    check_segments(&sim, MPD);
}

#[test]
fn foreign_and_hostile_previous_mpds_are_ignored_safely() {
    let hostile = "<MPD availabilityStartTime=\"2023-11-14T22:13:20Z\"><Period id=\"7\"><SegmentTemplate timescale=\"90000\" initialization=\"../../etc/passwd\" media=\"other-$Time$.m4v\"><SegmentTimeline><S t=\"0\" d=\"5\" r=\"3\"/></SegmentTimeline></SegmentTemplate></Period></MPD>";
    for prev in [hostile, "garbage", "<MPD>"] {
        let mut sim = Sim::with_previous(&settings(), "stream", Some(prev), Disk::default());
        sim.feed(&Plan::av(1000, 40_000), 0, 0);
        sim.finish();
        sim.idle_until(200_000);
        assert!(sim.ops().all(|op| match op {
            FileOp::Delete { path } =>
                path.starts_with("/dash") && !path.to_string_lossy().contains(".."),
            _ => true,
        }));
    }
}

#[test]
fn segments_are_deleted_after_leaving_the_mpd_and_a_grace_and_the_mpd_goes_first() {
    let mut sim = av_sim(60_000);
    let m = sim.mpd(MPD);
    let v = m.set(0, "video");
    let listed_ms = (v.segs.last().map(|s| s.0 + s.1).unwrap() - v.segs[0].0) / 90;
    assert!((10_000..14_000).contains(&listed_ms), "window {listed_ms}");
    assert!(!sim.disk.deletes.is_empty());
    assert!(sim.disk.min_grace.unwrap() >= 10_000);
    assert!(sim
        .disk
        .deletes
        .iter()
        .all(|p| !p.to_string_lossy().contains("init")));
    sim.finish();
    assert!(!sim.s.is_done());
    sim.idle_until(200_000);
    let first_delete = sim
        .ops()
        .position(|op| matches!(op, FileOp::Delete { path } if path.ends_with("stream.mpd")))
        .unwrap();
    let later_deletes = sim.log[first_delete..]
        .iter()
        .filter(|(_, op)| matches!(op, FileOp::Delete { .. }))
        .count();
    assert!(later_deletes > 5);
    assert!(sim.disk.files.is_empty(), "{:?}", sim.disk.files.keys());
    assert!(sim.s.is_done());
}

#[test]
fn cleanup_off_never_deletes() {
    let mut set = settings();
    set.cleanup = false;
    let mut sim = Sim::new(&set, "stream");
    sim.feed(&Plan::av(1000, 40_000), 0, 0);
    sim.finish();
    sim.idle_until(200_000);
    assert!(sim.disk.deletes.is_empty());
    assert!(sim.s.is_done());
    assert_eq!(sim.disk.segment_files("m4v").len(), 20);
}

#[test]
fn audio_only_stream_is_cut_by_duration_with_one_adaptation_set() {
    let mut sim = Sim::new(&settings(), "radio");
    sim.feed(&Plan::audio_only(12_000), 0, 0);
    let m = sim.mpd("/dash/radio.mpd");
    assert_eq!(m.periods[0].sets.len(), 1);
    let a = m.set(0, "audio");
    assert_eq!(a.gaps, 0);
    // Cut at the first frame at or after each 2 s.
    for (t, d) in &a.segs[..a.segs.len() - 1] {
        let ms = d * 1000 / 44_100;
        assert!((2000..2030).contains(&ms), "{t} {d}");
    }
    check_segments(&sim, "/dash/radio.mpd");
}

#[test]
fn video_only_stream_has_one_adaptation_set() {
    let mut sim = Sim::new(&settings(), "cam");
    let plan = Plan {
        audio: false,
        ..Plan::av(1000, 8000)
    };
    sim.feed(&plan, 0, 0);
    let m = sim.mpd("/dash/cam.mpd");
    assert_eq!(m.periods[0].sets.len(), 1);
    assert_eq!(m.set(0, "video").segs.len(), 3);
    check_segments(&sim, "/dash/cam.mpd");
}

#[test]
fn hevc_video_is_skipped_and_the_stream_is_audio_only() {
    let mut sim = Sim::new(&settings(), "hevc");
    sim.media(true, 0, &[0x1c, 0x00, 0, 0, 0, 1, 2, 3]);
    for (video, t, tag) in Plan::audio_only(6000).events() {
        sim.clock = t;
        sim.media(video, t as u32, &tag);
        if t % 40 == 0 {
            sim.media(
                true,
                t as u32,
                &[0x1c, 0x01, 0, 0, 0, 0, 0, 0, 2, 0x26, 0x01],
            );
        }
    }
    let m = sim.mpd("/dash/hevc.mpd");
    assert_eq!(m.periods[0].sets.len(), 1);
    m.set(0, "audio");
}

#[test]
fn video_appearing_later_starts_a_period_with_both_tracks() {
    let mut sim = Sim::new(&settings(), "late");
    let audio = Plan::audio_only(10_000);
    let video = Plan {
        audio: false,
        ..Plan::av(1000, 10_000)
    };
    let mut ev: Vec<_> = audio.events();
    ev.extend(
        video
            .events()
            .into_iter()
            .filter(|e| e.1 >= 4000 || e.2[1] == 0),
    );
    ev.sort_by_key(|e| (e.1.max(if e.0 && e.2[1] == 0 { 3990 } else { 0 }), !e.0));
    for (v, t, tag) in ev {
        sim.clock = t;
        sim.media(v, t as u32, &tag);
    }
    let m = sim.mpd("/dash/late.mpd");
    assert_eq!(m.periods.len(), 2);
    assert_eq!(m.periods[0].sets.len(), 1);
    assert_eq!(m.periods[1].sets.len(), 2);
    assert_eq!(m.periods[1].start_ms, 4000);
    check_segments(&sim, "/dash/late.mpd");
}

#[test]
fn a_long_gop_is_cut_anyway_and_startwithsap_is_dropped_while_listed() {
    let mut set = settings();
    set.playlist_length_ms = 60_000;
    let mut sim = Sim::new(&set, "gop");
    sim.feed(&Plan::av(30_000, 34_000), 0, 0);
    let m = sim.mpd("/dash/gop.mpd");
    let v = m.set(0, "video");
    // 0-20 s forced, 20-30 s until the keyframe, then on keyframes again.
    assert_eq!(v.segs[0], (0, 20_000 * 90));
    assert_eq!(v.segs[1], (20_000 * 90, 10_000 * 90));
    assert!(!v.attrs.contains_key("startWithSAP"));
    let (_, _, flags, _) = samples_of(sim.file("/dash/gop.mpd", &segment_uri(v, v.segs[1].0)));
    assert_ne!(flags[0], SYNC);
    check_segments(&sim, "/dash/gop.mpd");
}

#[test]
fn audio_goes_on_in_bounded_segments_when_video_stops() {
    let mut set = settings();
    set.playlist_length_ms = 120_000;
    let mut sim = Sim::new(&set, "stream");
    sim.feed(&Plan::av(1000, 4000), 0, 0);
    let plan = Plan {
        headers: false,
        ..Plan::audio_only(50_000)
    };
    sim.feed(&plan, 4000, 4000);
    let m = sim.mpd(MPD);
    let a = m.set(0, "audio");
    assert!(
        a.segs.iter().all(|s| s.1 <= 20_100 * 441 / 10),
        "{:?}",
        a.segs
    );
    assert!(a.segs.last().map(|s| s.0 + s.1).unwrap() >= 40_000 * 441 / 10);
    assert_eq!(m.set(0, "video").segs.len(), 2);
    check_segments(&sim, MPD);
}

#[test]
fn composition_offsets_come_from_the_flv_tags() {
    let sim = av_sim(3000);
    let m = sim.mpd(MPD);
    let v = m.set(0, "video");
    let (_, _, _, cts) = samples_of(sim.file(MPD, &segment_uri(v, 0)));
    assert!(cts.iter().all(|c| *c == 80 * 90), "{cts:?}");
}

#[test]
fn nested_layout_uses_a_directory_per_stream() {
    let mut set = settings();
    set.nested = true;
    let mut sim = Sim::new(&set, "cam");
    sim.feed(&Plan::av(1000, 5000), 0, 0);
    assert_eq!(
        DashStream::manifest_path(&set, "cam"),
        Path::new("/dash/cam/index.mpd")
    );
    let m = sim.mpd("/dash/cam/index.mpd");
    let v = m.set(0, "video");
    assert_eq!(
        (v.init.as_str(), v.media.as_str()),
        ("init.m4v", "$Time$.m4v")
    );
    assert!(sim.disk.files.contains_key(Path::new("/dash/cam/0.m4v")));
    assert!(sim.disk.dirs.contains(Path::new("/dash/cam")));
    check_segments(&sim, "/dash/cam/index.mpd");
}

#[test]
fn names_with_special_characters_are_escaped_in_the_mpd() {
    let mut sim = Sim::new(&settings(), "a b$&c");
    sim.feed(&Plan::av(1000, 5000), 0, 0);
    let m = sim.mpd("/dash/a b$&c.mpd");
    let v = m.set(0, "video");
    assert_eq!(v.media, "a%20b%24&c-$Time$.m4v");
    assert!(sim.disk.files.contains_key(Path::new("/dash/a b$&c-0.m4v")));
    assert!(sim
        .text("/dash/a b$&c.mpd")
        .contains("a%20b%24&amp;c-$Time$.m4v"));
}

#[test]
fn invalid_names_or_paths_write_nothing() {
    for (name, path) in [("../x", "/dash"), ("", "/dash"), ("ok", "")] {
        let mut set = settings();
        set.path = path.into();
        let mut sim = Sim::new(&set, name);
        sim.feed(&Plan::av(1000, 5000), 0, 0);
        sim.finish();
        assert!(sim.log.is_empty(), "{name:?} {path:?}");
        assert!(sim.s.is_done());
    }
}

#[test]
fn a_failed_segment_write_is_not_listed_and_the_stream_recovers() {
    let mut sim = Sim::new(&settings(), "stream");
    // The audio of the second cut: the first AAC frame at or after 2 s (frame 87).
    sim.fail_on = Some(PathBuf::from(format!("/dash/stream-{}.m4a", 87 * 1024)));
    sim.feed(&Plan::av(1000, 10_000), 0, 0);
    assert!(sim.fail_on.is_none(), "the failure happened");
    let m = sim.mpd(MPD);
    let v = m.set(0, "video");
    assert!(!v.segs.iter().any(|s| s.0 == 2000 * 90), "{:?}", v.segs);
    // What was queued behind the failure is lost too, the next segment's first video with
    // it (its spool was abandoned): one gap of two segments, then the stream goes on.
    assert!(!v.segs.iter().any(|s| s.0 == 4000 * 90), "{:?}", v.segs);
    assert!(v.segs.iter().any(|s| s.0 == 6000 * 90), "{:?}", v.segs);
    assert_eq!(v.gaps, 1);
    // The orphaned video file of the failed cut is removed (after a grace: the MPD that
    // failed behind it may be the one on disk, for all the stream knows).
    sim.idle_until(30_000);
    assert!(!sim
        .disk
        .files
        .contains_key(Path::new("/dash/stream-180000.m4v")));
    check_segments(&sim, MPD);
}

#[test]
fn a_lost_spool_gets_no_more_appends_and_the_next_segments_are_written() {
    let mut sim = Sim::new(&settings(), "stream");
    // Opening a segment's spool fails (or the open is lost behind another failure): appends
    // to it would fail too ("not open") and, batched with the next cut (as the IO queue does
    // while appends wait), take that segment down as well, and the next, and so on.
    sim.fail_on = Some(PathBuf::from("/dash/stream-spool1.m4v.part"));
    sim.feed(&Plan::av(1000, 14_500), 0, 0);
    assert!(sim.fail_on.is_none(), "the failure happened");
    assert_eq!(sim.unopened_appends, 0);
    let m = sim.mpd(MPD);
    let v = m.set(0, "video");
    assert!(v.segs.iter().any(|s| s.0 >= 10_000 * 90), "{:?}", v.segs);
    check_segments(&sim, MPD);
}

#[test]
fn a_failed_mpd_write_holds_deletions_until_an_mpd_is_written_again() {
    let mut sim = av_sim(20_000);
    sim.fail_on = Some(PathBuf::from(MPD));
    let plan = Plan {
        headers: false,
        ..Plan::av(1000, 2100)
    };
    sim.feed(&plan, 20_000, 20_000);
    assert!(sim.fail_on.is_none());
    // The Disk asserts no listed file is ever deleted; let time pass without media.
    sim.idle_until(60_000);
    sim.feed(&plan, 40_000, 60_000);
    check_segments(&sim, MPD);
}

#[test]
fn a_failed_init_write_is_redone_before_the_next_mpd() {
    let mut sim = Sim::new(&settings(), "stream");
    sim.fail_on = Some(PathBuf::from("/dash/stream-init.m4a"));
    sim.feed(&Plan::av(1000, 6000), 0, 0);
    assert!(sim
        .disk
        .files
        .contains_key(Path::new("/dash/stream-init.m4a")));
    check_segments(&sim, MPD);
}

#[test]
fn clock_helper_uri_adds_its_utc_timing_first() {
    let mut set = settings();
    set.clock_compensation = DashClock::HttpIso;
    set.clock_helper_uri = "https://time.example/iso".into();
    let mut sim = Sim::new(&set, "stream");
    sim.feed(&Plan::av(1000, 5000), 0, 0);
    let m = sim.mpd(MPD);
    assert_eq!(
        m.utc[0],
        (
            "urn:mpeg:dash:utc:http-iso:2014".into(),
            "https://time.example/iso".into()
        )
    );
    assert_eq!(m.utc[1].0, "urn:mpeg:dash:utc:direct:2014");
}

#[test]
fn hostile_tags_never_panic_and_the_disk_stays_consistent() {
    let mut sim = Sim::new(&settings(), "fuzz");
    let mut x: u32 = 0x1234_5678;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x
    };
    for i in 0..6000u32 {
        let r = rnd();
        let video = r & 1 == 0;
        let tag: Vec<u8> = match r % 11 {
            0 => avc_header(),
            1 => aac_header(),
            2 => (0..(r % 40)).map(|_| rnd() as u8).collect(),
            3 => {
                let mut t = video_tag(true, (rnd() % 100_000) as i32 - 50_000, 50);
                t[6] = rnd() as u8; // broken NAL length
                t
            }
            4 => vec![0x17, 0x00, 0, 0, 0, 1, 2],
            5 => vec![0xaf, 0x00],
            6 => aac_tag((rnd() % 100) as usize),
            _ => {
                if video {
                    video_tag(rnd() % 10 == 0, (rnd() % 200) as i32, 100)
                } else {
                    aac_tag(100)
                }
            }
        };
        let ts = if r % 97 == 0 { rnd() } else { i * 20 };
        sim.clock = u64::from(i) * 20;
        sim.media(video || r % 11 == 0, ts, &tag);
    }
    sim.finish();
    sim.idle_until(sim.clock + 300_000);
    assert!(sim.s.is_done());
}

/// A publisher back within a second of leaving: its first segment starts at the wall clock,
/// not right after the old timeline's end, which would announce its segments before they
/// exist (every MPD write is checked for that).
#[test]
fn quick_republish_never_announces_segments_early() {
    let mut set = settings();
    set.playlist_length_ms = 120_000;
    let mut sim = Sim::new(&set, "stream");
    sim.feed(&Plan::av(1000, 6000), 0, 0);
    sim.finish();
    sim.clock = 6_400;
    sim.restart();
    sim.feed(&Plan::av(1000, 6000), 0, 6_400);
    let m = sim.mpd(MPD);
    assert_eq!(m.periods.len(), 2);
    assert!(
        m.periods[1].start_ms >= 6_400,
        "second period starts at {} ms, before the republish",
        m.periods[1].start_ms
    );
    check_segments(&sim, MPD);
}

#[test]
fn video_is_gathered_on_disk_and_copied_into_whole_segments() {
    let mut sim = av_sim(9000);
    let mut ops = Vec::new();
    sim.s.finish(sim.now(), &mut ops);
    sim.apply(ops);
    // Every video segment file: its header from memory, then its spool copied by the kernel.
    let video_parts: Vec<&FileOp> = sim
        .log
        .iter()
        .map(|(_, op)| op)
        .filter(|op| matches!(op, FileOp::AppendFrom { .. }))
        .collect();
    let m = sim.mpd(MPD);
    let v = m.set(0, "video");
    assert_eq!(video_parts.len(), v.segs.len(), "{video_parts:?}");
    let memory_bytes: usize = sim
        .log
        .iter()
        .filter_map(|(_, op)| match op {
            FileOp::Append { path, data }
                if !is_spool(path) && path.to_string_lossy().contains(".m4v") =>
            {
                Some(data.len())
            }
            _ => None,
        })
        .sum();
    assert!(
        memory_bytes < 2000 * v.segs.len(),
        "video headers only: {memory_bytes} bytes"
    );
    for (t, _) in &v.segs {
        let file = sim.file(MPD, &segment_uri(v, *t));
        let moof = decode_media(file);
        let sizes: u64 = moof.traf[0].trun[0]
            .samples
            .iter()
            .map(|e| u64::from(e.size.unwrap()))
            .sum();
        // Top-level boxes tile the file; the last is the mdat holding exactly the samples.
        let mut pos = 0usize;
        let mut last = (0u64, [0u8; 4]);
        while pos < file.len() {
            let size = u32::from_be_bytes(file[pos..pos + 4].try_into().unwrap()) as u64;
            last = (size, file[pos + 4..pos + 8].try_into().unwrap());
            pos += size as usize;
        }
        assert_eq!(pos, file.len(), "boxes of segment {t} end at its end");
        assert_eq!(&last.1, b"mdat");
        assert_eq!(last.0 - 8, sizes, "mdat of segment {t} holds its samples");
    }
    // The spools are gone with the stream.
    assert!(
        sim.disk.open.keys().all(|p| !is_spool(p)),
        "{:?}",
        sim.disk.open.keys()
    );
}
