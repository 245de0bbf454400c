//! Tests of the segmenter: synthetic FLV streams in, FileOps applied to a fake disk that
//! checks after every operation that no playlist lists a missing or partial file.

use super::*;
use crate::conf::HlsVariant;
use crate::hls::keys::tests::decrypt_cbc;
use crate::hls::playlist::{parse_media, ParsedPlaylist};
use crate::hls::ts::{PID_AUDIO, PID_PAT, PID_PMT, PID_VIDEO, TS_PACKET_SIZE};
use crate::rtmp::amf0;
use crate::segment::testkit::*;
use mpeg2ts_reader::demultiplex::{
    self, DemuxContext, FilterChangeset, FilterRequest, NullPacketFilter, PatPacketFilter,
    PmtPacketFilter,
};
use mpeg2ts_reader::packet::Packet;
use mpeg2ts_reader::pes::{self, PesContents, PesHeader, PtsDts};
use mpeg2ts_reader::psi;
use std::collections::{BTreeMap, HashMap, HashSet};

fn settings() -> HlsSettings {
    HlsSettings {
        enabled: true,
        path: "/hls".into(),
        fragment_ms: 2000,
        max_fragment_ms: 20_000,
        playlist_length_ms: 600_000,
        sync_ms: 2,
        continuous: true,
        nested: false,
        base_url: String::new(),
        cleanup: true,
        naming: HlsNaming::Sequential,
        naming_granularity: 0,
        slicing: HlsSlicing::Plain,
        hls_type: HlsType::Live,
        container: Default::default(),
        low_latency: false,
        part_ms: 333,
        muxdelay_ms: 700,
        max_audio_delay_ms: 300,
        audio_buffer_size: 1 << 20,
        variants: Vec::new(),
        keys: false,
        key_path: "/hls".into(),
        key_url: String::new(),
        fragments_per_key: 0,
        dir_access: 0o744,
        nested_index_filename: "index".into(),
        datetime: HlsDatetime::None,
        allow_client_cache: None,
    }
}

// ---- the fake disk ----

#[derive(Default)]
struct Disk {
    files: BTreeMap<PathBuf, Vec<u8>>,
    open: HashMap<PathBuf, Vec<u8>>,
    dirs: HashSet<PathBuf>,
    /// URL prefix -> directory, for playlists with hls_base_url / hls_key_url.
    urls: Vec<(String, PathBuf)>,
    /// When a file stopped being listed by any playlist (mono ms).
    left_at: HashMap<PathBuf, u64>,
    listed: HashSet<PathBuf>,
    /// Smallest (delete time - time it left the playlists) seen.
    min_grace: Option<u64>,
    deletes: Vec<PathBuf>,
}

impl Disk {
    fn resolve(&self, playlist: &Path, uri: &str) -> PathBuf {
        for (prefix, dir) in &self.urls {
            if let Some(rest) = uri.strip_prefix(prefix.as_str()) {
                return dir.join(percent_decode(rest));
            }
        }
        assert!(!uri.contains("://"), "unmapped URL {uri}");
        playlist.parent().unwrap().join(percent_decode(uri))
    }

    /// Files listed (segments and keys) by every media playlist on disk.
    fn listed_now(&self) -> HashSet<PathBuf> {
        let mut out = HashSet::new();
        for (path, data) in &self.files {
            if path.extension().and_then(|e| e.to_str()) != Some("m3u8") {
                continue;
            }
            let text = std::str::from_utf8(data).expect("utf-8 playlist");
            if !text.contains("#EXTINF") {
                continue; // master or empty
            }
            let p = parse_media(text).expect("our playlist parses");
            check_with_m3u8_rs(text);
            for s in &p.segments {
                out.insert(self.resolve(path, &s.uri));
                if let Some(k) = &s.key {
                    out.insert(self.resolve(path, &k.uri));
                }
            }
        }
        out
    }

    fn apply(&mut self, op: &FileOp, mono: u64) {
        match op {
            FileOp::Link { .. } | FileOp::Flush { .. } => {
                panic!("MPEG-TS HLS links and flushes nothing: {op:?}")
            }
            FileOp::CreateDir { path } => {
                self.dirs.insert(path.clone());
            }
            FileOp::Open { path } => {
                assert!(path.to_string_lossy().ends_with(".ts.part"), "{path:?}");
                assert!(self.open.insert(path.clone(), Vec::new()).is_none());
                self.assert_dir(path);
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
                self.files.insert(to.clone(), data);
            }
            FileOp::Abort { path } => {
                self.open.remove(path).expect("abort of unopened file");
            }
            FileOp::OpenRecording { .. } | FileOp::WriteAt { .. } | FileOp::Close { .. } => {
                panic!("HLS never records: {op:?}")
            }
            FileOp::AppendFrom { .. } => panic!("HLS never copies files: {op:?}"),
            FileOp::WriteAtomic { path, data } => {
                self.assert_dir(path);
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

    fn assert_dir(&self, path: &Path) {
        let parent = path.parent().unwrap();
        assert!(
            self.dirs.contains(parent) || parent == Path::new("/hls"),
            "no CreateDir for {parent:?}"
        );
    }

    fn ts_files(&self) -> Vec<&PathBuf> {
        self.files
            .keys()
            .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("ts"))
            .collect()
    }
}

/// m3u8-rs reads the playlist and every EXTINF fits the target duration.
fn check_with_m3u8_rs(text: &str) {
    match m3u8_rs::parse_playlist_res(text.as_bytes()) {
        Ok(m3u8_rs::Playlist::MediaPlaylist(p)) => {
            for s in &p.segments {
                assert!(
                    (s.duration as f64).round() as u64 <= p.target_duration,
                    "EXTINF {} above target {}",
                    s.duration,
                    p.target_duration
                );
                assert!((s.duration as f64) <= p.target_duration as f64 + 1e-6);
            }
        }
        other => panic!("not a media playlist: {other:?}\n{text}"),
    }
}

fn rng() -> impl FnMut(&mut [u8]) {
    let mut n = 0u8;
    move |b: &mut [u8]| {
        for x in b {
            n = n.wrapping_mul(31).wrapping_add(7);
            *x = n;
        }
    }
}

struct Sim {
    s: HlsStream,
    disk: Disk,
    log: Vec<(u64, FileOp)>,
    /// Clock (ms since start) of the last event.
    clock: u64,
    /// The next operation on this path fails, as on a full disk.
    fail_on: Option<PathBuf>,
    failures: usize,
}

impl Sim {
    fn new(settings: &HlsSettings, name: &str) -> Self {
        Self::with_previous(settings, name, None, Disk::default())
    }

    fn with_previous(settings: &HlsSettings, name: &str, prev: Option<&str>, disk: Disk) -> Self {
        Sim {
            s: HlsStream::new(settings, "live", name, prev, &mut rng()),
            disk,
            log: Vec::new(),
            clock: 0,
            fail_on: None,
            failures: 0,
        }
    }

    fn now(&self) -> Now {
        Now {
            mono_ms: MONO0 + self.clock,
            unix_ms: UNIX0 + self.clock,
        }
    }

    /// Performs `ops` as the IO ring does, reporting each one performed; a failure (see
    /// `fail_on`) loses the operation and the rest of the batch, as `Outputs` does.
    fn apply(&mut self, ops: Vec<FileOp>) {
        let mono = self.now().mono_ms;
        let mut ops = ops.into_iter();
        while let Some(op) = ops.next() {
            let path = match &op {
                FileOp::Open { path }
                | FileOp::Append { path, .. }
                | FileOp::Commit { path, .. }
                | FileOp::WriteAtomic { path, .. } => Some(path),
                _ => None,
            };
            if path.is_some() && path == self.fail_on.as_ref() {
                let failed = self.fail_on.take().unwrap();
                self.failures += 1;
                self.disk.open.remove(&failed);
                self.s.on_write_failed(&failed);
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
            self.disk.apply(&op, mono);
            self.s.on_written(1);
            self.log.push((mono, op));
        }
    }

    fn tick(&mut self) {
        let mut ops = Vec::new();
        let now = self.now();
        self.s.on_tick(now, &mut ops);
        self.apply(ops);
    }

    /// Feeds a plan with raw timestamps `start_ts + t`, clock `clock0 + t`.
    fn feed(&mut self, plan: &Plan, start_ts: u32, clock0: u64) {
        for (video, t, tag) in plan.events() {
            self.clock = clock0 + t;
            self.media(video, start_ts.wrapping_add(t as u32), &tag);
        }
    }

    fn media(&mut self, video: bool, ts: u32, tag: &[u8]) {
        let mut ops = Vec::new();
        let now = self.now();
        self.s.on_media(video, ts, tag, now, &mut ops);
        self.apply(ops);
        self.tick();
    }

    fn finish(&mut self) {
        let mut ops = Vec::new();
        let now = self.now();
        self.s.finish(now, &mut ops);
        self.apply(ops);
    }

    fn text(&self, path: &str) -> String {
        String::from_utf8(self.disk.files.get(Path::new(path)).expect(path).clone()).unwrap()
    }

    fn playlist(&self, path: &str) -> ParsedPlaylist {
        parse_media(&self.text(path)).unwrap()
    }

    fn durations(&self, path: &str) -> Vec<u64> {
        self.playlist(path)
            .segments
            .iter()
            .map(|s| s.duration_ms)
            .collect()
    }

    fn segment_bytes(&self, path: &str, uri: &str) -> Vec<u8> {
        let p = self.disk.resolve(Path::new(path), uri);
        self.disk.files.get(&p).expect("segment").clone()
    }

    fn ops(&self) -> impl Iterator<Item = &FileOp> {
        self.log.iter().map(|(_, op)| op)
    }
}

fn discontinuities(text: &str) -> usize {
    text.lines()
        .filter(|l| *l == "#EXT-X-DISCONTINUITY")
        .count()
}

// ---- an independent TS demuxer (mpeg2ts-reader) ----

mpeg2ts_reader::packet_filter_switch! {
    Filter<Ctx> {
        Pat: PatPacketFilter<Ctx>,
        Pmt: PmtPacketFilter<Ctx>,
        Pes: pes::PesPacketFilter<Ctx, Collector>,
        Null: NullPacketFilter<Ctx>,
    }
}

#[derive(Default, Debug)]
pub struct Report {
    /// (pid, stream_type) as the PMT declares them.
    streams: Vec<(u16, u8)>,
    /// (pid, pts, dts, payload) per PES.
    pes: Vec<(u16, u64, Option<u64>, Vec<u8>)>,
    open: HashMap<u16, (u16, u64, Option<u64>, Vec<u8>)>,
    cc_errors: usize,
}

pub struct Ctx {
    changeset: FilterChangeset<Filter>,
    report: Report,
}

impl DemuxContext for Ctx {
    type F = Filter;

    fn filter_changeset(&mut self) -> &mut FilterChangeset<Filter> {
        &mut self.changeset
    }

    fn construct(&mut self, req: FilterRequest<'_, '_>) -> Filter {
        match req {
            FilterRequest::ByPid(psi::pat::PAT_PID) => Filter::Pat(PatPacketFilter::default()),
            FilterRequest::ByPid(_) | FilterRequest::Nit { .. } => {
                Filter::Null(NullPacketFilter::default())
            }
            FilterRequest::Pmt {
                pid,
                program_number,
            } => Filter::Pmt(PmtPacketFilter::new(pid, program_number)),
            FilterRequest::ByStream {
                stream_type,
                stream_info,
                ..
            } => {
                let pid = u16::from(stream_info.elementary_pid());
                self.report.streams.push((pid, stream_type.0));
                Filter::Pes(pes::PesPacketFilter::new(Collector { pid }))
            }
        }
    }
}

pub struct Collector {
    pid: u16,
}

impl pes::ElementaryStreamConsumer<Ctx> for Collector {
    fn start_stream(&mut self, _ctx: &mut Ctx) {}

    fn begin_packet(&mut self, ctx: &mut Ctx, header: PesHeader<'_>) {
        self.end_packet(ctx);
        let PesContents::Parsed(Some(parsed)) = header.contents() else {
            panic!("PES header not parsed");
        };
        let (pts, dts) = match parsed.pts_dts().expect("timestamps") {
            PtsDts::PtsOnly(p) => (p.unwrap().value(), None),
            PtsDts::Both { pts, dts } => (pts.unwrap().value(), Some(dts.unwrap().value())),
            other => panic!("{other:?}"),
        };
        ctx.report
            .open
            .insert(self.pid, (self.pid, pts, dts, parsed.payload().to_vec()));
    }

    fn continue_packet(&mut self, ctx: &mut Ctx, data: &[u8]) {
        if let Some(p) = ctx.report.open.get_mut(&self.pid) {
            p.3.extend_from_slice(data);
        }
    }

    fn end_packet(&mut self, ctx: &mut Ctx) {
        if let Some(p) = ctx.report.open.remove(&self.pid) {
            ctx.report.pes.push(p);
        }
    }

    fn continuity_error(&mut self, ctx: &mut Ctx) {
        ctx.report.cc_errors += 1;
    }
}

fn demux(ts: &[u8]) -> Report {
    assert_eq!(ts.len() % TS_PACKET_SIZE, 0);
    let mut ctx = Ctx {
        changeset: FilterChangeset::default(),
        report: Report::default(),
    };
    let mut d = demultiplex::Demultiplex::new(&mut ctx);
    d.push(&mut ctx, ts);
    let open: Vec<_> = ctx.report.open.drain().map(|(_, p)| p).collect();
    ctx.report.pes.extend(open);
    ctx.report
}

fn pids(ts: &[u8]) -> Vec<u16> {
    ts.chunks_exact(TS_PACKET_SIZE)
        .map(|p| u16::from(Packet::try_new(p).expect("sync byte").pid()))
        .collect()
}

fn has_idr(annexb: &[u8]) -> bool {
    annexb.windows(5).any(|w| w == [0, 0, 0, 1, 0x65])
}

// ---- cut policy ----

#[test]
fn fragment_2s_with_gop_1s_gives_2s_segments_on_keyframes() {
    let mut sim = Sim::new(&settings(), "cam");
    sim.feed(&Plan::av(1000, 20_000), 0, 0);
    sim.finish();
    let p = sim.playlist("/hls/cam.m3u8");
    let d: Vec<u64> = p.segments.iter().map(|s| s.duration_ms).collect();
    assert_eq!(d.len(), 10, "{d:?}");
    assert!(d[..9].iter().all(|d| *d == 2000), "{d:?}");
    assert!((1960..=2100).contains(&d[9]), "{d:?}");
    let uris: Vec<&str> = p.segments.iter().map(|s| s.uri.as_str()).collect();
    assert_eq!(uris[..3], ["cam-0.ts", "cam-1.ts", "cam-2.ts"]);
    let text = sim.text("/hls/cam.m3u8");
    assert!(text.starts_with(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:3\n#EXT-X-MEDIA-SEQUENCE:0\n\
         #EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:20.000Z\n\
         #EXTINF:2.000,\ncam-0.ts\n#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:22.000Z\n"
    ));
    assert!(text.ends_with("#EXT-X-ENDLIST\n"));
    assert_eq!(discontinuities(&text), 0);
    // Every segment starts with PAT, PMT, then a keyframe.
    let mut all = Vec::new();
    for s in &p.segments {
        let ts = sim.segment_bytes("/hls/cam.m3u8", &s.uri);
        let pid = pids(&ts);
        assert_eq!(pid[..2], [PID_PAT, PID_PMT]);
        let r = demux(&ts);
        assert_eq!(r.streams, vec![(PID_VIDEO, 0x1b), (PID_AUDIO, 0x0f)]);
        let first_video = r.pes.iter().find(|p| p.0 == PID_VIDEO).unwrap();
        assert!(has_idr(&first_video.3));
        all.extend(ts);
    }
    // Concatenated segments: continuity counters and DTS run on.
    let r = demux(&all);
    assert_eq!(r.cc_errors, 0);
    let dts: Vec<u64> = r
        .pes
        .iter()
        .filter(|p| p.0 == PID_VIDEO)
        .map(|p| p.2.unwrap_or(p.1))
        .collect();
    assert_eq!(dts.len(), 500);
    assert!(
        dts.windows(2).all(|w| w[1] == w[0] + 3600),
        "25 fps in 90 kHz"
    );
    // PTS = DTS + composition time (80 ms).
    let v = r.pes.iter().find(|p| p.0 == PID_VIDEO).unwrap();
    assert_eq!(v.1, v.2.unwrap() + 80 * 90);
}

#[test]
fn gop_longer_than_fragment_cuts_at_the_next_keyframe() {
    let mut sim = Sim::new(&settings(), "cam");
    sim.feed(&Plan::av(3000, 15_000), 0, 0);
    sim.finish();
    let d = sim.durations("/hls/cam.m3u8");
    assert_eq!(d[..4], [3000, 3000, 3000, 3000], "{d:?}");
}

#[test]
fn gop_12s_with_max_fragment_10s_forces_a_cut_then_realigns_on_the_keyframe() {
    let mut st = settings();
    st.fragment_ms = 5000;
    st.max_fragment_ms = 10_000;
    let mut sim = Sim::new(&st, "cam");
    let plan = Plan {
        audio: false,
        ..Plan::av(12_000, 40_000)
    };
    sim.feed(&plan, 0, 0);
    let text = sim.text("/hls/cam.m3u8");
    let d = sim.durations("/hls/cam.m3u8");
    assert_eq!(d, vec![10_000, 2000, 10_000, 2000, 10_000, 2000], "{d:?}");
    assert!(text.contains("#EXT-X-TARGETDURATION:10\n"));
    assert!(
        !text.contains("INDEPENDENT"),
        "forced segments do not start on keyframes"
    );
    let p = sim.playlist("/hls/cam.m3u8");
    // The forced segment starts without an IDR; the next one starts on the keyframe.
    let forced = demux(&sim.segment_bytes("/hls/cam.m3u8", &p.segments[1].uri));
    assert!(!has_idr(&forced.pes[0].3));
    let next = demux(&sim.segment_bytes("/hls/cam.m3u8", &p.segments[2].uri));
    assert!(has_idr(&next.pes[0].3));
}

#[test]
fn forced_cut_happens_with_interleaved_audio_too() {
    let mut st = settings();
    st.fragment_ms = 5000;
    st.max_fragment_ms = 10_000;
    let mut sim = Sim::new(&st, "cam");
    sim.feed(&Plan::av(12_000, 25_000), 0, 0);
    let d = sim.durations("/hls/cam.m3u8");
    assert!(d.iter().all(|d| *d <= 10_000), "{d:?}");
    assert_eq!(d.len(), 4, "{d:?}");
}

#[test]
fn audio_only_stream_is_cut_by_duration_and_declares_only_audio() {
    let mut sim = Sim::new(&settings(), "radio");
    let plan = Plan {
        video: false,
        ..Plan::av(1000, 10_000)
    };
    sim.feed(&plan, 0, 0);
    sim.finish();
    let text = sim.text("/hls/radio.m3u8");
    assert!(text.contains("#EXT-X-INDEPENDENT-SEGMENTS\n"));
    let p = sim.playlist("/hls/radio.m3u8");
    assert!(p.segments.len() >= 4, "{p:?}");
    for s in &p.segments[..p.segments.len() - 1] {
        assert!((2000..2050).contains(&s.duration_ms), "{}", s.duration_ms);
    }
    let ts = sim.segment_bytes("/hls/radio.m3u8", &p.segments[1].uri);
    assert_eq!(pids(&ts)[..2], [PID_PAT, PID_PMT]);
    let r = demux(&ts);
    assert_eq!(r.streams, vec![(PID_AUDIO, 0x0f)]);
    // ADTS frames inside.
    assert_eq!(r.pes[0].3[..2], [0xff, 0xf1]);
}

#[test]
fn audio_frames_are_grouped_into_pes_up_to_max_audio_delay() {
    let count = |delay: u64| {
        let mut st = settings();
        st.max_audio_delay_ms = delay;
        let mut sim = Sim::new(&st, "radio");
        let plan = Plan {
            video: false,
            ..Plan::av(1000, 5000)
        };
        sim.feed(&plan, 0, 0);
        let p = sim.playlist("/hls/radio.m3u8");
        let r = demux(&sim.segment_bytes("/hls/radio.m3u8", &p.segments[0].uri));
        let frames: usize = r
            .pes
            .iter()
            .map(|p| p.3.windows(2).filter(|w| w == &[0xff, 0xf1]).count())
            .sum();
        (r.pes.len(), frames)
    };
    let (pes0, frames0) = count(0);
    assert_eq!(pes0, frames0, "no buffering: one frame per PES");
    let (pes300, frames300) = count(300);
    assert_eq!(frames300, frames0);
    assert!((6..=8).contains(&pes300), "{pes300} PES for 2 s at 300 ms");
}

#[test]
fn mp3_audio_only_passes_through() {
    let mut sim = Sim::new(&settings(), "mp3");
    for j in 0..200u64 {
        sim.clock = j * 26;
        sim.media(false, (j * 26) as u32, &mp3_tag());
    }
    let p = sim.playlist("/hls/mp3.m3u8");
    let r = demux(&sim.segment_bytes("/hls/mp3.m3u8", &p.segments[0].uri));
    assert_eq!(r.streams, vec![(PID_AUDIO, 0x03)]);
    assert_eq!(r.pes[0].3[..3], [0xff, 0xfb, 0x90]);
}

#[test]
fn video_only_stream_declares_only_video() {
    let mut sim = Sim::new(&settings(), "cam");
    let plan = Plan {
        audio: false,
        ..Plan::av(1000, 5000)
    };
    sim.feed(&plan, 0, 0);
    let p = sim.playlist("/hls/cam.m3u8");
    let r = demux(&sim.segment_bytes("/hls/cam.m3u8", &p.segments[0].uri));
    assert_eq!(r.streams, vec![(PID_VIDEO, 0x1b)]);
}

#[test]
fn hevc_video_is_skipped_and_the_stream_becomes_audio_only() {
    let mut sim = Sim::new(&settings(), "hevc");
    let hevc_header = [0x1c, 0x00, 0, 0, 0, 1, 2, 3];
    sim.media(true, 0, &hevc_header);
    let plan = Plan {
        video: false,
        ..Plan::av(1000, 5000)
    };
    for (video, t, tag) in plan.events() {
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
    let p = sim.playlist("/hls/hevc.m3u8");
    let r = demux(&sim.segment_bytes("/hls/hevc.m3u8", &p.segments[0].uri));
    assert_eq!(r.streams, vec![(PID_AUDIO, 0x0f)]);
}

#[test]
fn frames_before_the_sequence_header_are_dropped() {
    let mut sim = Sim::new(&settings(), "cam");
    for i in 0..50u64 {
        sim.clock = i * 40;
        sim.media(true, (i * 40) as u32, &video_tag(i % 25 == 0, 0, 100));
        sim.media(false, (i * 40) as u32, &aac_tag(100));
    }
    assert!(
        sim.log.is_empty(),
        "nothing written without sequence headers"
    );
    let plan = Plan::av(1000, 5000);
    sim.feed(&plan, 2000, 2000);
    let p = sim.playlist("/hls/cam.m3u8");
    assert_eq!(p.segments[0].duration_ms, 2000);
    assert_eq!(discontinuities(&sim.text("/hls/cam.m3u8")), 0);
}

#[test]
fn video_appearing_after_audio_switches_tracks_with_one_discontinuity() {
    let mut sim = Sim::new(&settings(), "late");
    let audio = Plan {
        video: false,
        ..Plan::av(1000, 3000)
    };
    sim.feed(&audio, 0, 0);
    // Now video and audio together, continuing the timestamps.
    sim.feed(&Plan::av(1000, 6000), 3000, 3000);
    sim.finish();
    let text = sim.text("/hls/late.m3u8");
    assert_eq!(discontinuities(&text), 1, "{text}");
    let p = sim.playlist("/hls/late.m3u8");
    let last = sim.segment_bytes("/hls/late.m3u8", &p.segments.last().unwrap().uri);
    let r = demux(&last);
    assert_eq!(r.streams, vec![(PID_VIDEO, 0x1b), (PID_AUDIO, 0x0f)]);
}

// ---- timeline ----

#[test]
fn timestamp_wraparound_continues_without_discontinuity() {
    let mut sim = Sim::new(&settings(), "wrap");
    sim.feed(&Plan::av(1000, 20_000), u32::MAX - 1000, 0);
    let text = sim.text("/hls/wrap.m3u8");
    assert_eq!(discontinuities(&text), 0);
    let d = sim.durations("/hls/wrap.m3u8");
    assert_eq!(d, vec![2000; 9], "{d:?}");
    let p = sim.playlist("/hls/wrap.m3u8");
    let mut all = Vec::new();
    for s in &p.segments {
        all.extend(sim.segment_bytes("/hls/wrap.m3u8", &s.uri));
    }
    let dts: Vec<u64> = demux(&all)
        .pes
        .iter()
        .filter(|p| p.0 == PID_VIDEO)
        .map(|p| p.2.unwrap())
        .collect();
    assert!(dts.windows(2).all(|w| w[1] == w[0] + 3600));
}

fn jump_test(second_start: u32) -> Sim {
    let mut sim = Sim::new(&settings(), "jump");
    sim.feed(&Plan::av(1000, 10_000), 50_000, 0);
    sim.feed(&Plan::av(1000, 10_000), second_start, 10_000);
    sim.finish();
    sim
}

fn assert_one_clean_discontinuity(sim: &Sim) {
    let text = sim.text("/hls/jump.m3u8");
    assert_eq!(discontinuities(&text), 1, "{text}");
    let d = sim.durations("/hls/jump.m3u8");
    assert_eq!(d.len(), 10, "no storm of tiny segments: {d:?}");
    assert!(d.iter().all(|d| (1900..=2100).contains(d)), "{d:?}");
    // TS timestamps stay continuous across the jump (our choice).
    let p = sim.playlist("/hls/jump.m3u8");
    let mut all = Vec::new();
    for s in &p.segments {
        all.extend(sim.segment_bytes("/hls/jump.m3u8", &s.uri));
    }
    let dts: Vec<u64> = demux(&all)
        .pes
        .iter()
        .filter(|p| p.0 == PID_VIDEO)
        .map(|p| p.2.unwrap())
        .collect();
    assert!(dts
        .windows(2)
        .all(|w| w[1] > w[0] && w[1] - w[0] <= 90 * 100));
    // The discontinuity is on the segment that starts after the jump.
    assert!(p.segments[5].discontinuity, "{p:?}");
}

#[test]
fn backward_jump_gives_exactly_one_discontinuity() {
    assert_one_clean_discontinuity(&jump_test(0));
}

#[test]
fn forward_jump_of_60s_gives_exactly_one_discontinuity() {
    assert_one_clean_discontinuity(&jump_test(50_000 + 10_000 + 60_000));
}

#[test]
fn forward_gap_below_the_jump_limit_is_no_discontinuity() {
    let sim = jump_test(50_000 + 10_000 + 5000);
    assert_eq!(discontinuities(&sim.text("/hls/jump.m3u8")), 0);
}

// ---- end of stream, republish ----

#[test]
fn finish_writes_endlist_and_restart_continues_numbering_after_a_discontinuity() {
    let mut sim = Sim::new(&settings(), "cam");
    sim.feed(&Plan::av(1000, 10_000), 0, 0);
    sim.finish();
    assert!(sim.text("/hls/cam.m3u8").ends_with("#EXT-X-ENDLIST\n"));
    assert_eq!(sim.playlist("/hls/cam.m3u8").segments.len(), 5);

    sim.clock = 12_000;
    let now = sim.now();
    sim.s.restart(now, &mut rng());
    sim.tick();
    assert!(!sim.text("/hls/cam.m3u8").contains("ENDLIST"), "live again");
    sim.feed(&Plan::av(1000, 10_000), 0, 12_000);
    sim.finish();
    let text = sim.text("/hls/cam.m3u8");
    assert!(text.ends_with("#EXT-X-ENDLIST\n"));
    assert_eq!(text.matches("ENDLIST").count(), 1);
    assert_eq!(discontinuities(&text), 1);
    let p = sim.playlist("/hls/cam.m3u8");
    assert_eq!(p.media_sequence, 0);
    assert_eq!(p.segments.len(), 10);
    assert!(p.segments[5].discontinuity);
    assert_eq!(p.segments[5].uri, "cam-5.ts");
    assert_eq!(p.segments[9].uri, "cam-9.ts");
}

#[test]
fn previous_playlist_continues_numbering_with_a_discontinuity() {
    let mut a = Sim::new(&settings(), "cam");
    a.feed(&Plan::av(1000, 10_000), 0, 0);
    a.finish();
    let prev = a.text("/hls/cam.m3u8");
    let mut b = Sim::with_previous(&settings(), "cam", Some(&prev), std::mem::take(&mut a.disk));
    b.clock = 20_000;
    b.feed(&Plan::av(1000, 6000), 777, 20_000);
    let text = b.text("/hls/cam.m3u8");
    assert!(!text.contains("ENDLIST"));
    assert_eq!(discontinuities(&text), 1);
    let p = b.playlist("/hls/cam.m3u8");
    assert_eq!(p.segments.len(), 7);
    assert_eq!(p.segments[5].uri, "cam-5.ts");
    assert!(p.segments[5].discontinuity);
    // Old segments keep their program dates.
    assert_eq!(p.segments[0].program_date_ms, Some(UNIX0));
}

#[test]
fn continuous_off_ignores_the_previous_playlist() {
    let mut st = settings();
    st.continuous = false;
    let mut a = Sim::new(&st, "cam");
    a.feed(&Plan::av(1000, 10_000), 0, 0);
    a.finish();
    let prev = a.text("/hls/cam.m3u8");
    let mut b = Sim::with_previous(&st, "cam", Some(&prev), Disk::default());
    b.feed(&Plan::av(1000, 6000), 0, 0);
    let p = b.playlist("/hls/cam.m3u8");
    assert_eq!(p.media_sequence, 0);
    assert_eq!(p.segments[0].uri, "cam-0.ts");
    assert!(!p.segments[0].discontinuity);
}

#[test]
fn restart_with_continuous_off_replaces_the_listed_segments_at_the_first_new_one() {
    let mut st = settings();
    st.continuous = false;
    st.playlist_length_ms = 10_000;
    let mut sim = Sim::new(&st, "cam");
    sim.feed(&Plan::av(1000, 10_000), 0, 0);
    sim.finish();
    sim.clock = 11_000;
    let now = sim.now();
    sim.s.restart(now, &mut rng());
    sim.feed(&Plan::av(1000, 4100), 0, 11_000);
    let p = sim.playlist("/hls/cam.m3u8");
    assert_eq!(p.segments.len(), 2, "{p:?}");
    assert_eq!(p.segments[0].uri, "cam-5.ts");
    assert!(!p.segments[0].discontinuity);
    // The old files go after their grace period.
    sim.clock = 60_000;
    sim.tick();
    assert!(!sim.disk.files.contains_key(Path::new("/hls/cam-0.ts")));
    assert!(sim.disk.files.contains_key(Path::new("/hls/cam-5.ts")));
}

// ---- cleanup ----

#[test]
fn segments_are_deleted_only_after_leaving_the_playlist_and_a_grace_period() {
    let mut st = settings();
    st.playlist_length_ms = 6000;
    let mut sim = Sim::new(&st, "cam");
    sim.feed(&Plan::av(1000, 60_000), 0, 0);
    let p = sim.playlist("/hls/cam.m3u8");
    assert_eq!(p.segments.len(), 3);
    assert!(p.media_sequence >= 26);
    assert!(!sim.disk.deletes.is_empty());
    assert!(
        sim.disk.min_grace.unwrap() >= 6000,
        "{:?}",
        sim.disk.min_grace
    );
    assert!(sim.disk.ts_files().len() <= 7, "{:?}", sim.disk.ts_files());

    // End of stream: everything stays, then the playlist goes first, then its segments.
    sim.finish();
    let end = sim.clock;
    sim.clock = end + 11_000;
    sim.tick();
    assert!(sim.disk.files.contains_key(Path::new("/hls/cam.m3u8")));
    assert!(!sim.s.is_done());
    let deadline = sim.s.next_deadline().unwrap();
    assert_eq!(deadline, MONO0 + end + 12_000);
    sim.clock = end + 12_000;
    let before = sim.log.len();
    sim.tick();
    let ops: Vec<&FileOp> = sim.log[before..].iter().map(|(_, op)| op).collect();
    assert_eq!(
        ops[0],
        &FileOp::Delete {
            path: "/hls/cam.m3u8".into()
        }
    );
    assert!(sim.disk.files.is_empty(), "{:?}", sim.disk.files.keys());
    assert!(sim.s.is_done());
}

#[test]
fn deletions_wait_for_long_segments_grace() {
    // GOP 12 s, window 6 s: the grace period follows the target duration, not the window.
    let mut st = settings();
    st.playlist_length_ms = 6000;
    st.fragment_ms = 2000;
    st.max_fragment_ms = 12_000;
    let mut sim = Sim::new(&st, "cam");
    sim.feed(&Plan::av(12_000, 120_000), 0, 0);
    assert!(!sim.disk.deletes.is_empty());
    assert!(
        sim.disk.min_grace.unwrap() >= 36_000,
        "{:?}",
        sim.disk.min_grace
    );
    let p = sim.playlist("/hls/cam.m3u8");
    let total: u64 = p.segments.iter().map(|s| s.duration_ms).sum();
    assert!(total >= 36_000, "three target durations stay listed");
}

#[test]
fn cleanup_off_and_event_type_never_delete() {
    for (cleanup, ty) in [(false, HlsType::Live), (true, HlsType::Event)] {
        let mut st = settings();
        st.playlist_length_ms = 6000;
        st.cleanup = cleanup;
        st.hls_type = ty;
        let mut sim = Sim::new(&st, "cam");
        sim.feed(&Plan::av(1000, 30_000), 0, 0);
        sim.finish();
        assert!(sim.s.is_done());
        sim.clock += 1_000_000;
        sim.tick();
        assert!(sim.disk.deletes.is_empty());
        assert!(!sim.ops().any(|op| matches!(op, FileOp::Delete { .. })));
        let text = sim.text("/hls/cam.m3u8");
        if ty == HlsType::Event {
            assert!(text.contains("\n#EXT-X-PLAYLIST-TYPE:EVENT\n"));
            assert_eq!(sim.playlist("/hls/cam.m3u8").segments.len(), 15);
        } else {
            assert!(!text.contains("PLAYLIST-TYPE"));
        }
    }
}

// ---- file operations ----

#[test]
fn segments_are_written_progressively_under_a_part_name() {
    let mut sim = Sim::new(&settings(), "cam");
    let plan = Plan {
        frame_size: 20_000,
        ..Plan::av(1000, 4100)
    };
    sim.feed(&plan, 0, 0);
    let first: Vec<&FileOp> = sim
        .ops()
        .filter(|op| match op {
            FileOp::Open { path } | FileOp::Append { path, .. } | FileOp::Commit { path, .. } => {
                path == Path::new("/hls/cam-0.ts.part")
            }
            _ => false,
        })
        .collect();
    assert!(matches!(first[0], FileOp::Open { .. }));
    assert!(
        matches!(first.last().unwrap(), FileOp::Commit { to, .. } if to == Path::new("/hls/cam-0.ts"))
    );
    let appends: Vec<usize> = first
        .iter()
        .filter_map(|op| match op {
            FileOp::Append { data, .. } => Some(data.len()),
            _ => None,
        })
        .collect();
    // About 1 MB in chunks of APPEND_CHUNK_BYTES plus at most a frame (the last one, at
    // the cut, is smaller).
    let total: usize = appends.iter().sum();
    assert!(total > 900_000, "{total}");
    let most = total / APPEND_CHUNK_BYTES + 1;
    let least = total / (APPEND_CHUNK_BYTES + 25_000);
    assert!((least..=most).contains(&appends.len()), "{appends:?}");
    for a in &appends[..appends.len() - 1] {
        assert!(
            *a >= APPEND_CHUNK_BYTES && *a < APPEND_CHUNK_BYTES + 25_000,
            "{a}"
        );
    }
    // The playlist listing cam-0.ts is written after its commit.
    let commit = sim
        .ops()
        .position(|op| matches!(op, FileOp::Commit { to, .. } if to == Path::new("/hls/cam-0.ts")))
        .unwrap();
    let listed = sim
        .ops()
        .position(|op| matches!(op, FileOp::WriteAtomic { path, .. } if path == Path::new("/hls/cam.m3u8")))
        .unwrap();
    assert!(commit < listed);
}

#[test]
fn invalid_names_write_nothing() {
    for name in ["../etc", "", "/abs", "a//b", "a\nb", "a\\b", "x/./y"] {
        let mut sim = Sim::new(&settings(), name);
        assert!(!sim.s.is_valid());
        sim.feed(&Plan::av(1000, 5000), 0, 0);
        sim.finish();
        assert!(sim.log.is_empty(), "{name:?}");
        assert!(sim.s.is_done());
    }
    let mut st = settings();
    st.path = String::new();
    assert!(!HlsStream::new(&st, "live", "ok", None, &mut rng()).is_valid());
}

#[test]
fn hostile_tags_never_panic_and_disk_stays_consistent() {
    let mut sim = Sim::new(&settings(), "fuzz");
    let valid = [
        avc_header(),
        aac_header(),
        video_tag(true, 0, 50),
        video_tag(false, -500, 50),
        aac_tag(20),
        mp3_tag(),
    ];
    let mut x: u32 = 99;
    let mut next = || {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        x >> 8
    };
    let mut ts = 0u32;
    for i in 0..6000u32 {
        let r = next();
        let mut tag = valid[(r % 6) as usize].clone();
        match next() % 5 {
            0 => tag.truncate((next() as usize) % (tag.len() + 1)),
            1 => {
                let n = tag.len();
                if n > 0 {
                    tag[(next() as usize) % n] = next() as u8;
                }
            }
            2 => tag = (0..(next() % 40)).map(|_| next() as u8).collect(),
            _ => {}
        }
        ts = match next() % 50 {
            0 => next(),
            1 => ts.wrapping_sub(next() % 5000),
            _ => ts.wrapping_add(next() % 60),
        };
        sim.clock = u64::from(i) * 20;
        sim.media(next() % 2 == 0, ts, &tag);
    }
    sim.finish();
    sim.clock += 10_000_000;
    sim.tick();
}

// ---- naming, layout, dates ----

#[test]
fn nested_layout_with_base_url() {
    let mut st = settings();
    st.nested = true;
    st.base_url = "http://cdn.example/hls/".into();
    let mut sim = Sim::new(&st, "cam");
    sim.disk
        .urls
        .push(("http://cdn.example/hls/".into(), "/hls".into()));
    sim.feed(&Plan::av(1000, 6000), 0, 0);
    assert_eq!(
        HlsStream::playlist_path(&st, "cam"),
        PathBuf::from("/hls/cam/index.m3u8")
    );
    assert!(sim.ops().any(|op| *op
        == FileOp::CreateDir {
            path: "/hls/cam".into()
        }));
    let p = sim.playlist("/hls/cam/index.m3u8");
    assert_eq!(p.segments[0].uri, "http://cdn.example/hls/cam/0.ts");
    assert!(sim.disk.files.contains_key(Path::new("/hls/cam/1.ts")));

    st.base_url.clear();
    st.nested_index_filename = "live".into();
    let mut sim = Sim::new(&st, "cam");
    sim.feed(&Plan::av(1000, 6000), 0, 0);
    let p = sim.playlist("/hls/cam/live.m3u8");
    assert_eq!(p.segments[0].uri, "0.ts");
}

#[test]
fn base_url_prefixes_flat_segment_uris_and_names_are_escaped() {
    let mut st = settings();
    st.base_url = "https://x/h/".into();
    let mut sim = Sim::new(&st, "my cam#1");
    sim.disk.urls.push(("https://x/h/".into(), "/hls".into()));
    sim.feed(&Plan::av(1000, 5000), 0, 0);
    let p = sim.playlist("/hls/my cam#1.m3u8");
    assert_eq!(p.segments[0].uri, "https://x/h/my%20cam%231-0.ts");
    assert!(sim.disk.files.contains_key(Path::new("/hls/my cam#1-0.ts")));
}

#[test]
fn timestamp_and_system_naming_with_granularity_never_repeat() {
    let mut st = settings();
    st.naming = HlsNaming::Timestamp;
    let mut sim = Sim::new(&st, "cam");
    sim.feed(&Plan::av(1000, 7000), 1000, 0);
    let uris: Vec<String> = sim
        .playlist("/hls/cam.m3u8")
        .segments
        .into_iter()
        .map(|s| s.uri)
        .collect();
    assert_eq!(uris, ["cam-90000.ts", "cam-270000.ts", "cam-450000.ts"]);

    st.naming = HlsNaming::System;
    st.naming_granularity = 10_000;
    let mut sim = Sim::new(&st, "cam");
    sim.feed(&Plan::av(1000, 7000), 0, 0);
    let uris: Vec<String> = sim
        .playlist("/hls/cam.m3u8")
        .segments
        .into_iter()
        .map(|s| s.uri)
        .collect();
    assert_eq!(
        uris,
        [
            "cam-1700000000000.ts",
            "cam-1700000000001.ts",
            "cam-1700000000002.ts"
        ]
    );
}

#[test]
fn aligned_slicing_starts_and_cuts_on_multiples_of_the_fragment() {
    let mut st = settings();
    st.slicing = HlsSlicing::Aligned;
    st.naming = HlsNaming::Timestamp;
    let mut sim = Sim::new(&st, "cam");
    // Publisher timestamps start at 1000: the first keyframe is mid-period.
    sim.feed(&Plan::av(1000, 9000), 1000, 0);
    let p = sim.playlist("/hls/cam.m3u8");
    let uris: Vec<&str> = p.segments.iter().map(|s| s.uri.as_str()).collect();
    assert_eq!(uris, ["cam-180000.ts", "cam-360000.ts", "cam-540000.ts"]);
    assert!(p.segments.iter().all(|s| s.duration_ms == 2000));
}

#[test]
fn program_date_time_from_the_clock_and_from_timestamps() {
    let mut sim = Sim::new(&settings(), "cam");
    sim.feed(&Plan::av(1000, 5000), 0, 0);
    let p = sim.playlist("/hls/cam.m3u8");
    assert_eq!(p.segments[0].program_date_ms, Some(UNIX0));
    assert_eq!(p.segments[1].program_date_ms, Some(UNIX0 + 2000));

    let mut st = settings();
    st.datetime = HlsDatetime::Timestamp;
    let mut sim = Sim::new(&st, "cam");
    // The publisher's timestamps are Unix ms (low 32 bits), 1.5 s behind our clock.
    let low = ((UNIX0 - 1500) & 0xffff_ffff) as u32;
    sim.feed(&Plan::av(1000, 5000), low, 0);
    let p = sim.playlist("/hls/cam.m3u8");
    assert_eq!(p.segments[0].program_date_ms, Some(UNIX0 - 1500));
    assert_eq!(p.segments[1].program_date_ms, Some(UNIX0 + 500));
}

// ---- AES-128 ----

#[test]
fn encrypted_segments_decrypt_with_the_key_and_iv_from_the_playlist() {
    let mut st = settings();
    st.keys = true;
    st.fragments_per_key = 2;
    let mut sim = Sim::new(&st, "sec");
    sim.feed(&Plan::av(1000, 12_000), 0, 0);
    sim.finish();
    let text = sim.text("/hls/sec.m3u8");
    assert!(text.contains("#EXT-X-VERSION:3\n"));
    assert!(text.contains(
        "#EXT-X-KEY:METHOD=AES-128,URI=\"sec-0.key\",IV=0x00000000000000000000000000000000\n"
    ));
    assert!(text.contains(
        "#EXT-X-KEY:METHOD=AES-128,URI=\"sec-0.key\",IV=0x00000000000000000000000000000001\n"
    ));
    assert!(text.contains("URI=\"sec-2.key\",IV=0x00000000000000000000000000000002\n"));
    let p = sim.playlist("/hls/sec.m3u8");
    assert_eq!(p.segments.len(), 6);
    let mut keys = HashSet::new();
    for s in &p.segments {
        let k = s.key.as_ref().expect("encrypted");
        let key_bytes = sim.segment_bytes("/hls/sec.m3u8", &k.uri);
        assert_eq!(key_bytes.len(), 16);
        keys.insert(key_bytes.clone());
        let key: [u8; 16] = key_bytes.try_into().unwrap();
        let enc = sim.segment_bytes("/hls/sec.m3u8", &s.uri);
        assert_eq!(enc.len() % 16, 0);
        assert_ne!(enc[0], 0x47, "really encrypted");
        let plain = decrypt_cbc(&key, k.iv.unwrap(), &enc).expect("valid padding");
        assert_eq!(plain.len() % TS_PACKET_SIZE, 0);
        assert!(plain.chunks(TS_PACKET_SIZE).all(|p| p[0] == 0x47));
        assert_eq!(pids(&plain)[..2], [PID_PAT, PID_PMT]);
        assert!(has_idr(&demux(&plain).pes[0].3));
    }
    assert_eq!(keys.len(), 3, "rotated every 2 fragments");
    // Each key file is written before the first playlist that references it.
    let key_write = sim
        .ops()
        .position(|op| matches!(op, FileOp::WriteAtomic { path, .. } if path == Path::new("/hls/sec-2.key")))
        .unwrap();
    let first_ref = sim
        .log
        .iter()
        .position(|(_, op)| matches!(op, FileOp::WriteAtomic { path, data } if path == Path::new("/hls/sec.m3u8") && String::from_utf8_lossy(data).contains("sec-2.key")))
        .unwrap();
    assert!(key_write < first_ref);
}

#[test]
fn encrypted_appends_are_whole_blocks_and_one_key_serves_the_session() {
    let mut st = settings();
    st.keys = true;
    st.key_url = "https://keys.example/".into();
    st.key_path = "/keys".into();
    let mut sim = Sim::new(&st, "sec");
    sim.disk
        .urls
        .push(("https://keys.example/".into(), "/keys".into()));
    sim.disk.dirs.insert("/keys".into());
    let plan = Plan {
        frame_size: 20_000,
        ..Plan::av(1000, 6100)
    };
    sim.feed(&plan, 0, 0);
    for op in sim.ops() {
        if let FileOp::Append { data, .. } = op {
            assert_eq!(data.len() % 16, 0);
        }
    }
    let p = sim.playlist("/hls/sec.m3u8");
    assert!(p
        .segments
        .iter()
        .all(|s| s.key.as_ref().unwrap().uri == "https://keys.example/sec-0.key"));
    assert!(sim.disk.files.contains_key(Path::new("/keys/sec-0.key")));
}

// ---- variants ----

#[test]
fn variant_stream_writes_the_master_playlist_with_measured_attributes() {
    let mut st = settings();
    st.variants = vec![
        HlsVariant {
            suffix: "_hi".into(),
            attrs: vec!["BANDWIDTH=2000000".into()],
        },
        HlsVariant {
            suffix: "_lo".into(),
            attrs: vec!["BANDWIDTH=500000".into()],
        },
    ];
    let mut sim = Sim::new(&st, "cam_hi");
    sim.feed(&Plan::av(1000, 6000), 0, 0);
    let master = sim.text("/hls/cam.m3u8");
    assert_eq!(
        master,
        "#EXTM3U\n#EXT-X-VERSION:3\n\
         #EXT-X-STREAM-INF:PROGRAM-ID=1,BANDWIDTH=2000000,RESOLUTION=320x240,\
         CODECS=\"avc1.64000d,mp4a.40.2\",FRAME-RATE=25.000\ncam_hi.m3u8\n\
         #EXT-X-STREAM-INF:PROGRAM-ID=1,BANDWIDTH=500000\ncam_lo.m3u8\n"
    );
    // Without a configured BANDWIDTH the peak segment bit rate is filled in.
    st.variants[0].attrs.clear();
    let mut sim = Sim::new(&st, "cam_hi");
    sim.feed(&Plan::av(1000, 6000), 0, 0);
    let master = sim.text("/hls/cam.m3u8");
    let bw: u64 = master
        .split("BANDWIDTH=")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    // 25 x ~2 KB video + ~43 x 207 B audio per second, plus TS overhead.
    assert!((400_000..600_000).contains(&bw), "{bw}");
    // Streams without a configured suffix write no master playlist.
    let mut sim = Sim::new(&st, "cam");
    sim.feed(&Plan::av(1000, 6000), 0, 0);
    assert!(!sim.disk.files.contains_key(Path::new("/hls/.m3u8")));
    assert_eq!(
        sim.disk
            .files
            .keys()
            .filter(|p| p.extension().unwrap() == "m3u8")
            .count(),
        1
    );
}

#[test]
fn metadata_frame_rate_is_used_when_the_sps_has_none() {
    let mut s = HlsStream::new(&settings(), "live", "x", None, &mut rng());
    let mut p = Vec::new();
    amf0::write_string(&mut p, "onMetaData");
    amf0::write_ecma_array_start(&mut p, 2);
    amf0::write_key(&mut p, "framerate");
    amf0::write_number(&mut p, 29.97);
    amf0::write_key(&mut p, "audiocodecid");
    amf0::write_number(&mut p, 2.0);
    amf0::write_object_end(&mut p);
    s.on_metadata(&p);
    assert_eq!(s.meta_frame_rate, Some(29.97));
    assert_eq!(s.audio_hint, Some(TsAudio::Mp3));
    s.on_metadata(&[0x02, 0xff]);
    s.on_metadata(&[]);
}

#[test]
fn several_jumps_before_the_next_keyframe_give_one_discontinuity() {
    let mut sim = Sim::new(&settings(), "jump");
    let plan = Plan {
        audio: false,
        ..Plan::av(4000, 5000)
    };
    sim.feed(&plan, 0, 0);
    // Two jumps on inter frames, then a keyframe.
    for (i, raw) in [(0u64, 100_000u32), (1, 100_040), (2, 7), (3, 47)] {
        sim.clock = 5000 + i * 40;
        sim.media(true, raw, &video_tag(false, 0, 100));
    }
    for i in 0..100u64 {
        sim.clock = 5160 + i * 40;
        sim.media(true, 87 + (i * 40) as u32, &video_tag(i % 50 == 0, 0, 100));
    }
    sim.finish();
    let text = sim.text("/hls/jump.m3u8");
    assert_eq!(discontinuities(&text), 1, "{text}");
}

#[test]
fn restart_with_keys_starts_a_new_key_at_the_next_segment() {
    let mut st = settings();
    st.keys = true;
    let mut sim = Sim::new(&st, "sec");
    sim.feed(&Plan::av(1000, 4100), 0, 0);
    sim.finish();
    sim.clock = 5000;
    let now = sim.now();
    // A fresh seed from the OS RNG (here: other bytes).
    sim.s.restart(now, &mut |b: &mut [u8]| b.fill(3));
    sim.feed(&Plan::av(1000, 4100), 0, 5000);
    let p = sim.playlist("/hls/sec.m3u8");
    let uris: Vec<&str> = p
        .segments
        .iter()
        .map(|s| s.key.as_ref().unwrap().uri.as_str())
        .collect();
    assert_eq!(
        uris,
        [
            "sec-0.key",
            "sec-0.key",
            "sec-0.key",
            "sec-3.key",
            "sec-3.key"
        ]
    );
    assert_ne!(
        sim.disk.files[Path::new("/hls/sec-0.key")],
        sim.disk.files[Path::new("/hls/sec-3.key")]
    );
}

#[test]
fn hostile_or_foreign_previous_playlists_are_handled() {
    for prev in [
        "",
        "garbage",
        "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:18446744073709551615\n#EXTINF:1,\na.ts\n",
        "#EXTM3U\n#EXT-X-DISCONTINUITY-SEQUENCE:18446744073709551615\n#EXT-X-DISCONTINUITY\n#EXTINF:1,\ncam-0.ts\n",
        "#EXTM3U\n#EXTINF:1e300,\ncam-0.ts\n",
    ] {
        let mut sim = Sim::with_previous(&settings(), "cam", Some(prev), Disk::default());
        let plan = Plan {
            audio: false,
            ..Plan::av(1000, 3000)
        };
        // The fake disk does not hold the restored files: only check no panic here.
        for (video, t, tag) in plan.events() {
            let mut ops = Vec::new();
            let now = Now {
                mono_ms: t,
                unix_ms: t,
            };
            sim.s.on_media(video, t as u32, &tag, now, &mut ops);
        }
    }
    // A playlist of another layout (timestamp names from a C module config) stays listed,
    // numbering goes on, and its files (unknown here) are never deleted.
    let mut st = settings();
    st.playlist_length_ms = 4000;
    let prev = "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:7\n#EXTINF:2.0,\nother/x-123.ts\n";
    let mut disk = Disk::default();
    disk.files.insert("/hls/other/x-123.ts".into(), vec![0x47]);
    let mut sim = Sim::with_previous(&st, "cam", Some(prev), disk);
    sim.feed(&Plan::av(1000, 20_000), 0, 0);
    let p = sim.playlist("/hls/cam.m3u8");
    assert!(p.media_sequence > 7);
    assert_eq!(
        sim.playlist("/hls/cam.m3u8").segments.last().unwrap().uri,
        "cam-16.ts"
    );
    assert!(sim
        .disk
        .files
        .contains_key(Path::new("/hls/other/x-123.ts")));
}

/// Publishers (ffmpeg under load, hardware encoders) send audio ahead of the video it goes
/// with. Audio timed after a keyframe must start the keyframe's segment, not end the previous
/// one: otherwise each new segment begins with a hole in its audio.
#[test]
fn audio_sent_ahead_of_the_keyframe_starts_the_new_segment() {
    const LEAD_MS: u64 = 100;
    let mut sim = Sim::new(&settings(), "lead");
    sim.media(true, 0, &avc_header());
    sim.media(false, 0, &aac_header());
    let mut next_audio = 0u64;
    for frame in 0..250u64 {
        let t = frame * 40;
        // All audio up to t + LEAD_MS goes out before the video frame of time t.
        while next_audio <= t + LEAD_MS {
            sim.clock = t;
            sim.media(false, next_audio as u32, &aac_tag(20));
            next_audio += 23;
        }
        sim.clock = t;
        sim.media(true, t as u32, &video_tag(frame % 25 == 0, 0, 200));
    }
    sim.finish();
    let p = sim.playlist("/hls/lead.m3u8");
    assert!(p.segments.len() >= 4, "{} segments", p.segments.len());
    let firsts: Vec<(u64, u64)> = p
        .segments
        .iter()
        .map(|seg| {
            let r = demux(&sim.segment_bytes("/hls/lead.m3u8", &seg.uri));
            let first = |pid: u16| {
                r.pes
                    .iter()
                    .filter(|pes| pes.0 == pid)
                    .map(|pes| pes.1)
                    .min()
                    .expect("track present")
            };
            (first(0x100), first(0x101))
        })
        .collect();
    // Every segment after the first starts its audio with its keyframe: at most one AAC frame
    // (the one that straddles the cut) before it, never after it.
    for (i, (video, audio)) in firsts.iter().enumerate().skip(1) {
        assert!(
            audio <= video && audio + 24 * 90 >= *video,
            "segment {i}: audio starts {} ms after its keyframe",
            (audio - video) / 90
        );
    }
}

/// Publishers under load send audio behind its video: the audio that plays just before a
/// keyframe arrives after it. It still belongs to the segment before the cut (except the frame
/// that straddles the cut), so every segment starts its audio with its video (no start hole),
/// and the continuity counters stay unbroken across the whole stream.
#[test]
fn audio_sent_behind_the_keyframe_stays_in_the_segment_before_the_cut() {
    const LAG_MS: u64 = 100;
    let mut sim = Sim::new(&settings(), "lag");
    sim.media(true, 0, &avc_header());
    sim.media(false, 0, &aac_header());
    let mut next_audio = 0u64;
    for frame in 0..250u64 {
        let t = frame * 40;
        sim.clock = t;
        sim.media(true, t as u32, &video_tag(frame % 25 == 0, 0, 200));
        // Audio goes out only once it is LAG_MS behind the video just sent.
        while next_audio + LAG_MS <= t {
            sim.media(false, next_audio as u32, &aac_tag(20));
            next_audio += 23;
        }
    }
    sim.finish();
    let p = sim.playlist("/hls/lag.m3u8");
    assert!(p.segments.len() >= 4, "{} segments", p.segments.len());
    let mut whole = Vec::new();
    for (i, seg) in p.segments.iter().enumerate() {
        let bytes = sim.segment_bytes("/hls/lag.m3u8", &seg.uri);
        whole.extend_from_slice(&bytes);
        if i == 0 {
            continue;
        }
        let r = demux(&bytes);
        let first = |pid: u16| {
            r.pes
                .iter()
                .filter(|pes| pes.0 == pid)
                .map(|pes| pes.1)
                .min()
        };
        let (video, audio) = (first(0x100).expect("video"), first(0x101).expect("audio"));
        assert!(
            audio <= video && audio + 24 * 90 >= video,
            "segment {i}: audio starts at {} ms, its keyframe at {} ms",
            audio / 90,
            video / 90
        );
    }
    assert_eq!(demux(&whole).cc_errors, 0, "continuity across segments");
}

#[test]
fn a_failed_segment_gives_its_sequence_number_to_the_next_one() {
    // A 6 s window, so segments before and after the failures leave it.
    let mut sim = Sim::new(
        &HlsSettings {
            playlist_length_ms: 6000,
            ..settings()
        },
        "cam",
    );
    let plan = Plan::av(1000, 30_000);
    let opens = |sim: &Sim| -> Vec<PathBuf> {
        sim.log
            .iter()
            .rev()
            .filter_map(|(_, op)| match op {
                FileOp::Open { path } => Some(path.clone()),
                _ => None,
            })
            .collect()
    };
    let mut armed = 0;
    for (video, t, tag) in plan.events() {
        sim.clock = t;
        let before = opens(&sim).len();
        sim.media(video, t as u32, &tag);
        // Twice, a few seconds apart, right at a cut, the segment just cut (still waiting
        // for its last audio) fails to be written (a full disk) when it is finished.
        let after = opens(&sim);
        if after.len() > before && [8000, 16_000].get(armed).is_some_and(|&at| t >= at) {
            sim.fail_on = after.get(1).cloned();
            armed += 1;
        }
    }
    assert_eq!(sim.failures, 2);
    // Every playlist written: a segment keeps one sequence number in all of them.
    let mut seen: HashMap<String, u64> = HashMap::new();
    let mut versions = 0;
    for op in sim.ops() {
        let FileOp::WriteAtomic { path, data } = op else {
            continue;
        };
        if path != Path::new("/hls/cam.m3u8") {
            continue;
        }
        versions += 1;
        let p = parse_media(std::str::from_utf8(data).unwrap()).unwrap();
        for (i, s) in p.segments.iter().enumerate() {
            let seq = p.media_sequence + i as u64;
            let first = *seen.entry(s.uri.clone()).or_insert(seq);
            assert_eq!(first, seq, "{} was {first} and is now {seq}", s.uri);
        }
    }
    assert!(
        versions >= 10 && seen.len() >= 10,
        "{versions} playlists, {} segments",
        seen.len()
    );
}

#[test]
fn a_failed_playlist_write_holds_deletions_until_a_playlist_is_written_again() {
    // A 6 s window: segments leave it every second while the publisher sends.
    let mut sim = Sim::new(
        &HlsSettings {
            playlist_length_ms: 6000,
            ..settings()
        },
        "cam",
    );
    sim.feed(&Plan::av(1000, 20_000), 0, 0);
    sim.fail_on = Some(PathBuf::from("/hls/cam.m3u8"));
    let more = Plan {
        headers: false,
        ..Plan::av(1000, 1100)
    };
    sim.feed(&more, 20_000, 20_000);
    assert!(sim.fail_on.is_none(), "the playlist write failed");
    // The publisher stalls: no playlist is written for 40 s. The Disk asserts that no file
    // the playlist on disk lists is ever deleted.
    let stalled = sim.clock;
    while sim.clock < stalled + 40_000 {
        sim.clock += 500;
        sim.tick();
    }
    let held = sim.disk.deletes.len();
    // It comes back: the next playlist is written, and the held deletions go after a fresh
    // grace period, never sooner.
    sim.feed(&more, 21_100, sim.clock);
    sim.feed(
        &Plan {
            headers: false,
            ..Plan::av(1000, 20_000)
        },
        22_200,
        sim.clock,
    );
    assert!(sim.disk.deletes.len() > held, "deletions resume");
    assert!(
        sim.disk.min_grace.unwrap() >= 6000,
        "{:?}",
        sim.disk.min_grace
    );
}
