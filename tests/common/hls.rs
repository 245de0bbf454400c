//! HLS helpers: nginx with HLS applications, playlists read from disk and over HTTP, a watcher
//! that checks every playlist snapshot against the disk while a test runs, ffprobe/ffmpeg of
//! segments and playlists, and a collector of failed checks (one test run reports them all).
//!
//! Layout used by every HLS test server: application `<app>` writes to `{PREFIX}/tmp/<app>` (the
//! C module creates only the last level of `hls_path`, as nginx does for its own paths), and the
//! http location `/hls/` serves `{PREFIX}/tmp/`, so `live/key` plays at
//! `http://127.0.0.1:<port>/hls/live/key.m3u8`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use m3u8_rs::{MasterPlaylist, MediaPlaylist};

use super::ffmpeg::publish_with;
use super::*;

/// How long a first playlist may take (publisher start + first fragment + slack).
pub const PLAYLIST_TIMEOUT: Duration = Duration::from_secs(20);
/// How soon `#EXT-X-ENDLIST` must follow the end of publishing.
pub const ENDLIST_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the watcher reads the playlist.
pub const WATCH_PERIOD: Duration = Duration::from_millis(100);
/// An MPEG-TS packet.
pub const TS_PACKET: u64 = 188;

// ---------------------------------------------------------------------------------------------
// Servers

/// rtmp block with one application per `(name, directives)`: `live on; hls on;
/// hls_path {PREFIX}/tmp/<name>;` then the directives.
pub fn hls_rtmp_block(apps: &[(&str, &str)]) -> String {
    super::output_rtmp_block("hls", apps)
}

/// An http location serving directory `dir` (trailing slash) at `url_prefix` (trailing slash)
/// with HLS MIME types and CORS, as `nginx-conf/nginx.conf` does.
pub fn hls_http_location(url_prefix: &str, dir: &str) -> String {
    format!(
        "location {url_prefix} {{\n\
         \x20   alias {dir};\n\
         \x20   types {{ application/vnd.apple.mpegurl m3u8; video/mp2t ts; application/octet-stream key; }}\n\
         \x20   add_header Access-Control-Allow-Origin * always;\n\
         \x20   add_header Access-Control-Allow-Methods \"GET, HEAD, OPTIONS\" always;\n\
         \x20   add_header Access-Control-Allow-Headers \"Range\" always;\n\
         \x20   if ($request_method = OPTIONS) {{ return 204; }}\n\
         }}\n"
    )
}

/// nginx with the given HLS applications; `/hls/` serves `{PREFIX}/tmp/`; `extra_http` is added
/// to the http server (more locations).
pub fn start_hls(apps: &[(&str, &str)], extra_http: &str) -> Server {
    let http = format!(
        "{}{extra_http}",
        hls_http_location("/hls/", "{PREFIX}/tmp/")
    );
    Server::start(&hls_rtmp_block(apps), &http)
}

/// Where application `app` writes its HLS files.
pub fn hls_dir(server: &Server, app: &str) -> PathBuf {
    server.prefix.join("tmp").join(app)
}

/// `<hls_path>/<name>.m3u8` of application `app`.
pub fn playlist_file(server: &Server, app: &str, name: &str) -> PathBuf {
    hls_dir(server, app).join(format!("{name}.m3u8"))
}

/// `http://127.0.0.1:<port>/hls/<app>/<name>.m3u8`.
pub fn playlist_url(server: &Server, app: &str, name: &str) -> String {
    server.http_url(&format!("/hls/{app}/{name}.m3u8"))
}

// ---------------------------------------------------------------------------------------------
// Playlists

/// A playlist as read at one moment: its text and its parse.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub text: String,
    pub playlist: MediaPlaylist,
}

impl Snapshot {
    pub fn uris(&self) -> Vec<String> {
        self.playlist
            .segments
            .iter()
            .map(|s| s.uri.clone())
            .collect()
    }

    pub fn durations(&self) -> Vec<f64> {
        self.playlist
            .segments
            .iter()
            .map(|s| f64::from(s.duration))
            .collect()
    }

    pub fn total_duration(&self) -> f64 {
        self.durations().iter().sum()
    }

    /// Lines starting with `tag` (e.g. `#EXT-X-DISCONTINUITY`), exactly or followed by `:`.
    pub fn tag_lines(&self, tag: &str) -> Vec<&str> {
        tag_lines(&self.text, tag)
    }
}

pub fn tag_lines<'a>(text: &'a str, tag: &str) -> Vec<&'a str> {
    text.lines()
        .map(str::trim_end)
        .filter(|l| *l == tag || l.strip_prefix(tag).is_some_and(|r| r.starts_with(':')))
        .collect()
}

/// Parses a media playlist; a text that does not end with a newline counts as torn.
pub fn parse_media(text: &str) -> Result<MediaPlaylist, String> {
    if !text.starts_with("#EXTM3U") {
        return Err(format!("does not start with #EXTM3U:\n{text}"));
    }
    if !text.ends_with('\n') {
        return Err(format!("torn (no final newline):\n{text}"));
    }
    m3u8_rs::parse_media_playlist_res(text.as_bytes())
        .map_err(|e| format!("m3u8-rs cannot parse it ({e:?}):\n{text}"))
}

pub fn parse_master(text: &str) -> Result<MasterPlaylist, String> {
    if !text.starts_with("#EXTM3U") {
        return Err(format!("does not start with #EXTM3U:\n{text}"));
    }
    m3u8_rs::parse_master_playlist_res(text.as_bytes())
        .map_err(|e| format!("m3u8-rs cannot parse it as a master playlist ({e:?}):\n{text}"))
}

pub fn read_media(path: &Path) -> Result<Snapshot, String> {
    let text = fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let playlist = parse_media(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(Snapshot { text, playlist })
}

/// Waits until `path` holds a parsable media playlist for which `pred` holds.
pub fn wait_media(
    path: &Path,
    timeout: Duration,
    what: &str,
    pred: impl Fn(&Snapshot) -> bool,
) -> Result<Snapshot, String> {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match read_media(path) {
            Ok(s) if pred(&s) => return Ok(s),
            Ok(s) => s.text,
            Err(e) => e,
        };
        if Instant::now() > deadline {
            return Err(format!(
                "{what}: not within {timeout:?}; last read of {}:\n{last}",
                path.display()
            ));
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// Waits for a playlist listing at least `n` segments.
pub fn wait_segments(path: &Path, n: usize) -> Result<Snapshot, String> {
    wait_media(
        path,
        PLAYLIST_TIMEOUT,
        &format!("a playlist with {n} segments"),
        |s| s.playlist.segments.len() >= n,
    )
}

/// Waits for `#EXT-X-ENDLIST` ([`ENDLIST_TIMEOUT`]); returns the last snapshot either way.
pub fn wait_endlist(path: &Path) -> (bool, Option<Snapshot>) {
    match wait_media(path, ENDLIST_TIMEOUT, "#EXT-X-ENDLIST", |s| {
        s.playlist.end_list
    }) {
        Ok(s) => (true, Some(s)),
        Err(_) => (false, read_media(path).ok()),
    }
}

/// The lowest `EXT-X-VERSION` the tags of a media playlist need (RFC 8216 section 7).
pub fn required_version(text: &str) -> usize {
    let mut v = 1;
    for line in text.lines() {
        if let Some(d) = line.strip_prefix("#EXTINF:") {
            let d = d.split(',').next().unwrap_or("");
            if d.contains('.') {
                v = v.max(3);
            }
        }
        if line.starts_with("#EXT-X-KEY:") && line.contains("IV=") {
            v = v.max(2);
        }
        if line.starts_with("#EXT-X-BYTERANGE") || line.starts_with("#EXT-X-I-FRAMES-ONLY") {
            v = v.max(4);
        }
        if line.contains("KEYFORMAT") {
            v = v.max(5);
        }
        if line.starts_with("#EXT-X-MAP") {
            v = v.max(6);
        }
    }
    v
}

/// What is wrong with a live media playlist's header tags (empty when it is right):
/// `TARGETDURATION` never below a listed duration, `MEDIA-SEQUENCE`, `PROGRAM-DATE-TIME`,
/// `INDEPENDENT-SEGMENTS`, and a `VERSION` that covers the tags used.
pub fn header_problems(s: &Snapshot) -> Vec<String> {
    let mut p = Vec::new();
    let target = s.playlist.target_duration as f64;
    if tag_lines(&s.text, "#EXT-X-TARGETDURATION").len() != 1 {
        p.push("exactly one #EXT-X-TARGETDURATION expected".to_string());
    }
    for seg in &s.playlist.segments {
        if f64::from(seg.duration) > target + 0.001 {
            p.push(format!(
                "#EXT-X-TARGETDURATION:{} is below #EXTINF:{} of {}",
                s.playlist.target_duration, seg.duration, seg.uri
            ));
        }
    }
    if tag_lines(&s.text, "#EXT-X-MEDIA-SEQUENCE").len() != 1 {
        p.push("exactly one #EXT-X-MEDIA-SEQUENCE expected".to_string());
    }
    if tag_lines(&s.text, "#EXT-X-PROGRAM-DATE-TIME").is_empty() {
        p.push("no #EXT-X-PROGRAM-DATE-TIME".to_string());
    } else if s
        .playlist
        .segments
        .first()
        .is_some_and(|f| f.program_date_time.is_none())
    {
        p.push("the first segment has no #EXT-X-PROGRAM-DATE-TIME".to_string());
    }
    if !s.playlist.independent_segments {
        p.push("no #EXT-X-INDEPENDENT-SEGMENTS".to_string());
    }
    let need = required_version(&s.text);
    match s.playlist.version {
        None => p.push(format!("no #EXT-X-VERSION (the tags need {need})")),
        Some(v) if v < need => p.push(format!("#EXT-X-VERSION:{v} but the tags need {need}")),
        Some(_) => {}
    }
    if tag_lines(&s.text, "#EXT-X-VERSION").len() > 1 {
        p.push("more than one #EXT-X-VERSION".to_string());
    }
    if !p.is_empty() {
        p.push(format!("(playlist:\n{})", s.text));
    }
    p
}

/// The number in a sequentially named segment (`key-12.ts` -> 12, `12.ts` -> 12).
pub fn segment_number(uri: &str) -> Option<u64> {
    let file = uri.rsplit('/').next()?;
    let stem = file.strip_suffix(".ts")?;
    let digits = stem.rsplit('-').next()?;
    digits.parse().ok()
}

/// The last path component of a URI (what lies on disk next to the playlist).
pub fn file_name(uri: &str) -> &str {
    let no_query = uri.split(['?', '#']).next().unwrap_or(uri);
    no_query.rsplit('/').next().unwrap_or(no_query)
}

/// Number of `<name>-*.ts` files in `dir` (not recursive).
pub fn count_ts(dir: &Path, name: &str) -> usize {
    let prefix = format!("{name}-");
    fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(&prefix) && n.ends_with(".ts"))
                .count()
        })
        .unwrap_or(0)
}

/// One `#EXT-X-STREAM-INF` entry of a master playlist, parsed by hand (independently of
/// m3u8-rs, which drops entries it finds invalid).
#[derive(Debug, Clone, Default)]
pub struct StreamInf {
    pub attrs: BTreeMap<String, String>,
    pub uri: String,
}

impl StreamInf {
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.get(name).map(String::as_str)
    }
}

/// The `#EXT-X-STREAM-INF` entries of a master playlist, in order; quotes are removed from
/// quoted attribute values.
pub fn stream_infs(text: &str) -> Vec<StreamInf> {
    let mut out = Vec::new();
    let mut pending: Option<StreamInf> = None;
    for line in text.lines().map(str::trim) {
        if let Some(list) = line.strip_prefix("#EXT-X-STREAM-INF:") {
            let mut inf = StreamInf::default();
            let mut rest = list;
            while !rest.is_empty() {
                let Some((k, after)) = rest.split_once('=') else {
                    break;
                };
                let (v, next) = if let Some(q) = after.strip_prefix('"') {
                    let end = q.find('"').unwrap_or(q.len());
                    let tail = q.get(end + 1..).unwrap_or("");
                    (&q[..end], tail.strip_prefix(',').unwrap_or(tail))
                } else {
                    match after.split_once(',') {
                        Some((v, n)) => (v, n),
                        None => (after, ""),
                    }
                };
                inf.attrs.insert(k.trim().to_string(), v.to_string());
                rest = next;
            }
            pending = Some(inf);
        } else if !line.is_empty() && !line.starts_with('#') {
            if let Some(mut inf) = pending.take() {
                inf.uri = line.to_string();
                out.push(inf);
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The snapshot watcher

/// What a [`Watcher`] saw.
#[derive(Debug, Default, Clone)]
pub struct WatchReport {
    /// Playlist reads that found a file.
    pub reads: usize,
    /// Distinct playlist texts seen.
    pub versions: usize,
    /// Listed segments missing or incomplete on disk while still listed, torn playlists,
    /// media sequence numbers that went back or changed meaning.
    pub violations: Vec<String>,
    /// Segment file names in the order first listed.
    pub seen: Vec<String>,
    /// Whether some snapshot had `#EXT-X-ENDLIST`.
    pub saw_endlist: bool,
    /// Most segments listed at once.
    pub max_listed: usize,
}

/// Reads a playlist from disk every [`WATCH_PERIOD`] on its own thread and checks that each
/// segment it lists exists, complete, at that moment (a reader of the playlist could fetch it).
pub struct Watcher {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<WatchReport>>,
    pub playlist: PathBuf,
}

impl Watcher {
    /// `encrypted`: segments are AES-128 (sizes are multiples of 16, not of 188).
    pub fn start(playlist: &Path, encrypted: bool) -> Watcher {
        let stop = Arc::new(AtomicBool::new(false));
        let handle = {
            let stop = Arc::clone(&stop);
            let playlist = playlist.to_path_buf();
            thread::spawn(move || watch(&playlist, encrypted, &stop))
        };
        Watcher {
            stop,
            handle: Some(handle),
            playlist: playlist.to_path_buf(),
        }
    }

    pub fn stop(mut self) -> WatchReport {
        self.stop.store(true, Ordering::SeqCst);
        self.handle
            .take()
            .map(|h| h.join().expect("watcher thread"))
            .unwrap_or_default()
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Why the segment file is not fit to be fetched, if it is not.
fn segment_problem(path: &Path, encrypted: bool) -> Option<String> {
    match fs::metadata(path) {
        Err(e) => Some(format!("missing ({e})")),
        Ok(m) if m.len() == 0 => Some("empty".to_string()),
        Ok(m) if !encrypted && m.len() % TS_PACKET != 0 => {
            Some(format!("{} bytes, not whole TS packets", m.len()))
        }
        Ok(m) if encrypted && m.len() % 16 != 0 => {
            Some(format!("{} bytes, not whole AES blocks", m.len()))
        }
        Ok(_) => None,
    }
}

const MAX_VIOLATIONS: usize = 40;

fn watch(playlist: &Path, encrypted: bool, stop: &AtomicBool) -> WatchReport {
    let dir = playlist.parent().unwrap_or(Path::new(".")).to_path_buf();
    let mut r = WatchReport::default();
    let mut last_text = String::new();
    let mut seen_set = BTreeSet::new();
    let mut seq_to_uri: BTreeMap<u64, String> = BTreeMap::new();
    let mut last_seq: Option<u64> = None;
    let started = Instant::now();
    let mut reported = BTreeSet::new();
    // Each distinct problem once, with when it was first seen.
    let mut push = |r: &mut WatchReport, v: String| {
        if r.violations.len() < MAX_VIOLATIONS && reported.insert(v.clone()) {
            r.violations
                .push(format!("{v} (at {:.1} s)", started.elapsed().as_secs_f64()));
        }
    };
    loop {
        let stopping = stop.load(Ordering::SeqCst);
        if let Ok(text) = fs::read_to_string(playlist) {
            r.reads += 1;
            if text != last_text {
                r.versions += 1;
                match parse_media(&text) {
                    Err(e) => push(&mut r, format!("playlist read torn or invalid: {e}")),
                    Ok(pl) => {
                        r.saw_endlist |= pl.end_list;
                        r.max_listed = r.max_listed.max(pl.segments.len());
                        if let Some(prev) = last_seq {
                            if pl.media_sequence < prev {
                                push(
                                    &mut r,
                                    format!(
                                        "#EXT-X-MEDIA-SEQUENCE went back from {prev} to {}",
                                        pl.media_sequence
                                    ),
                                );
                            }
                        }
                        last_seq = Some(pl.media_sequence);
                        for (i, seg) in pl.segments.iter().enumerate() {
                            let seq = pl.media_sequence + i as u64;
                            let name = file_name(&seg.uri).to_string();
                            match seq_to_uri.get(&seq) {
                                Some(u) if *u != seg.uri => push(
                                    &mut r,
                                    format!(
                                        "media sequence number {seq} named {u} earlier and {} now",
                                        seg.uri
                                    ),
                                ),
                                Some(_) => {}
                                None => {
                                    seq_to_uri.insert(seq, seg.uri.clone());
                                }
                            }
                            if seen_set.insert(name.clone()) {
                                r.seen.push(name);
                            }
                        }
                    }
                }
                last_text = text.clone();
            }
            // Every listed segment must be fetchable now. A problem counts only if the
            // playlist read again afterwards still lists the segment (no false alarm when the
            // playlist moved on between the two reads).
            if let Ok(pl) = parse_media(&text) {
                for seg in &pl.segments {
                    let path = dir.join(file_name(&seg.uri));
                    if segment_problem(&path, encrypted).is_none() {
                        continue;
                    }
                    let again = fs::read_to_string(playlist).unwrap_or_default();
                    let still_listed = parse_media(&again)
                        .map(|p| p.segments.iter().any(|s| s.uri == seg.uri))
                        .unwrap_or(false);
                    if let (true, Some(problem)) = (still_listed, segment_problem(&path, encrypted))
                    {
                        push(&mut r, format!("{} listed but {problem}", seg.uri));
                    }
                }
            }
        }
        if stopping {
            return r;
        }
        thread::sleep(WATCH_PERIOD);
    }
}

// ---------------------------------------------------------------------------------------------
// ffprobe / ffmpeg

/// `codec_type:codec_name` of every stream of a file or URL, sorted, e.g.
/// `["audio:aac", "video:h264"]` (each stream once: ffprobe also lists a TS program's streams).
pub fn stream_kinds(input: &str) -> Result<Vec<String>, String> {
    let (status, out, err) = run_bounded(
        Command::new("ffprobe").args([
            "-v",
            "error",
            "-show_entries",
            "stream=index,codec_type,codec_name",
            "-of",
            "compact=p=0",
            input,
        ]),
        Duration::from_secs(20),
    );
    if !status.is_some_and(|s| s.success()) {
        return Err(format!("ffprobe {input}: {status:?} {err}"));
    }
    let mut by_index = BTreeMap::new();
    for line in out.lines().filter(|l| !l.trim().is_empty()) {
        let mut index = "?";
        let mut ty = "?";
        let mut name = "?";
        for kv in line.split('|') {
            if let Some((k, v)) = kv.split_once('=') {
                match k {
                    "index" => index = v,
                    "codec_type" => ty = v,
                    "codec_name" => name = v,
                    _ => {}
                }
            }
        }
        by_index.insert(index.to_string(), format!("{ty}:{name}"));
    }
    let mut kinds: Vec<String> = by_index.into_values().collect();
    kinds.sort();
    Ok(kinds)
}

/// Runs a command with a wall-clock bound (killed by its PID when over); (status, stdout, stderr).
pub fn run_bounded(cmd: &mut Command, limit: Duration) -> (Option<ExitStatus>, String, String) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out_reader = thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    });
    let err_reader = thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    });
    let status = wait_timeout(&mut child, limit);
    let status = match status {
        Some(s) => Some(s),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            None
        }
    };
    (
        status,
        out_reader.join().unwrap_or_default(),
        err_reader.join().unwrap_or_default(),
    )
}

/// Whether the first video packet of a segment is a keyframe (`None`: no video packet).
pub fn first_video_packet_is_key(path: &Path) -> Result<Option<bool>, String> {
    let (status, out, err) = run_bounded(
        Command::new("ffprobe").args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-read_intervals",
            "%+#1",
            "-show_entries",
            "packet=flags",
            "-of",
            "csv=p=0",
            &path.display().to_string(),
        ]),
        Duration::from_secs(20),
    );
    match status {
        Some(s) if s.success() => Ok(out
            .lines()
            .find(|l| !l.trim().is_empty())
            .map(|l| l.starts_with('K'))),
        _ => Err(format!("ffprobe {}: {status:?} {err}", path.display())),
    }
}

/// Outcome of `ffmpeg -v error -i <input> -f null -`.
#[derive(Debug, Clone)]
pub struct Decoded {
    /// Exited 0 in time and printed no error.
    pub ok: bool,
    /// Media time decoded (ffmpeg's last `out_time_us`).
    pub seconds: f64,
    pub timed_out: bool,
    pub status: Option<ExitStatus>,
    pub stderr: String,
}

/// Decodes `input` (a playlist file or URL) entirely, or its first `max_secs` seconds. For a
/// live playlist (no `#EXT-X-ENDLIST`) ffmpeg starts at its first segment
/// (`-live_start_index 0`) instead of near the live edge.
pub fn decode(input: &str, max_secs: Option<f64>, wall: Duration) -> Decoded {
    let mut args: Vec<String> = [
        "-hide_banner",
        "-nostdin",
        "-v",
        "error",
        "-nostats",
        "-progress",
        "pipe:1",
        "-live_start_index",
        "0",
        "-i",
        input,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if let Some(t) = max_secs {
        args.push("-t".into());
        args.push(format!("{t:.3}"));
    }
    args.extend(["-f", "null", "-"].iter().map(|s| s.to_string()));
    let (status, out, stderr) = run_bounded(Command::new("ffmpeg").args(&args), wall);
    let seconds = out
        .lines()
        .filter_map(|l| l.strip_prefix("out_time_us="))
        .filter_map(|v| v.trim().parse::<i64>().ok())
        .next_back()
        .unwrap_or(0)
        .max(0) as f64
        / 1e6;
    let timed_out = status.is_none();
    Decoded {
        ok: status.is_some_and(|s| s.success()) && stderr.trim().is_empty(),
        seconds,
        timed_out,
        status,
        stderr,
    }
}

/// [`publish_with`] video only (no audio track).
pub fn publish_video_only(url: &str, secs: u32) -> FfmpegChild {
    publish_with(url, secs, &["-an"])
}

/// [`publish_with`] audio only (no video track).
pub fn publish_audio_only(url: &str, secs: u32) -> FfmpegChild {
    publish_with(url, secs, &["-vn"])
}

/// [`publish_with`] with a keyframe every `gop_frames` frames (25 fps).
pub fn publish_gop(url: &str, secs: u32, gop_frames: u32) -> FfmpegChild {
    let g = gop_frames.to_string();
    publish_with(url, secs, &["-g", &g, "-keyint_min", &g])
}

/// Waits (bounded) for a publisher to finish its media; kills it if it overruns.
pub fn wait_publisher(p: &mut FfmpegChild, secs: u32) {
    if p.wait_timeout(Duration::from_secs(u64::from(secs) + 15))
        .is_none()
    {
        p.kill();
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP

#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// First header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.0 request to 127.0.0.1:`port` (bounded by 10 s timeouts).
pub fn http_request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<HttpResponse, String> {
    let what = format!("{method} http://127.0.0.1:{port}{path}");
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("{what}: {e}"))?;
    let t = Some(Duration::from_secs(10));
    s.set_read_timeout(t).map_err(|e| e.to_string())?;
    s.set_write_timeout(t).map_err(|e| e.to_string())?;
    let mut req = format!("{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())
        .map_err(|e| format!("{what}: {e}"))?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .map_err(|e| format!("{what}: {e}"))?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("{what}: no end of headers in {} bytes", raw.len()))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let body = raw[split + 4..].to_vec();
    let mut lines = head.lines();
    let status_line = lines.next().unwrap_or("");
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("{what}: bad status line {status_line:?}"))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

pub fn http_get(port: u16, path: &str) -> Result<HttpResponse, String> {
    http_request(port, "GET", path, &[])
}

/// The path part of a segment URI as a request path: absolute `http://127.0.0.1:<port>/...`
/// URIs keep their path, relative ones are resolved against the playlist's path.
pub fn resolve_path(playlist_path: &str, uri: &str) -> String {
    if let Some(rest) = uri
        .strip_prefix("http://")
        .or_else(|| uri.strip_prefix("https://"))
    {
        return rest
            .find('/')
            .map_or("/".to_string(), |i| rest[i..].to_string());
    }
    if uri.starts_with('/') {
        return uri.to_string();
    }
    let dir = playlist_path.rsplit_once('/').map_or("", |(d, _)| d);
    format!("{dir}/{uri}")
}

/// Lines of the http access log for requests under `url_prefix` that got a 4xx/5xx status.
pub fn access_log_errors(server: &Server, url_prefix: &str) -> Vec<String> {
    access_log_errors_in(&server.prefix.join("logs/access.log"), url_prefix)
}

pub fn access_log_errors_in(log: &Path, url_prefix: &str) -> Vec<String> {
    read_lossy(log)
        .lines()
        .filter(|l| {
            let parts: Vec<&str> = l.split('"').collect();
            let request = parts.get(1).copied().unwrap_or("");
            let status: u16 = parts
                .get(2)
                .and_then(|s| s.split_whitespace().next())
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            request
                .split_whitespace()
                .nth(1)
                .is_some_and(|p| p.starts_with(url_prefix))
                && status >= 400
        })
        .map(str::to_string)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Checks that do not stop the test at the first failure

/// Collects failed checks so one run reports every broken aspect, then fails the test.
#[derive(Default)]
pub struct Checks {
    failures: Vec<String>,
}

impl Checks {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn check(&mut self, ok: bool, msg: impl FnOnce() -> String) -> bool {
        if !ok {
            let m = msg();
            println!("CHECK FAILED: {m}");
            self.failures.push(m);
        }
        ok
    }

    pub fn fail(&mut self, msg: impl Into<String>) {
        let m = msg.into();
        println!("CHECK FAILED: {m}");
        self.failures.push(m);
    }

    /// `Ok` value, or records the error and returns `None`.
    pub fn ok<T>(&mut self, r: Result<T, String>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.fail(e);
                None
            }
        }
    }

    pub fn extend(&mut self, problems: Vec<String>) {
        for p in problems {
            self.fail(p);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.failures.is_empty()
    }

    pub fn into_failures(self) -> Vec<String> {
        self.failures
    }

    /// Stops nginx, adds the clean-log check, and panics listing every failure (nginx's prefix
    /// is kept for inspection then).
    pub fn finish(mut self, mut server: Server) {
        server.stop();
        let log = server.error_log();
        let bad: Vec<&str> = log.lines().filter(|l| is_forbidden_log_line(l)).collect();
        if !bad.is_empty() {
            self.fail(format!(
                "error log {} has forbidden lines:\n{}",
                server.error_log_path().display(),
                bad.join("\n")
            ));
        }
        self.assert_ok();
        drop(server);
    }

    pub fn assert_ok(&self) {
        assert!(
            self.failures.is_empty(),
            "{} check(s) failed:\n- {}",
            self.failures.len(),
            self.failures.join("\n- ")
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The example config, run as scripts/run.sh runs it

/// nginx running `nginx-conf/nginx.conf` itself, with only the `load_module` path and the two
/// `listen` ports changed, in a fresh prefix, as `scripts/run.sh` starts it (no `user` override:
/// workers run as whatever the example gives them).
pub struct ExampleNginx {
    pub prefix: PathBuf,
    pub rtmp_port: u16,
    pub http_port: u16,
    child: Option<Child>,
}

impl ExampleNginx {
    pub fn start() -> ExampleNginx {
        ExampleNginx::start_file("nginx.conf")
    }

    /// Runs `nginx-conf/<file>`; an internal `127.0.0.1:8081` (the stream-key example's auth
    /// server) moves to a free port too.
    pub fn start_file(file: &str) -> ExampleNginx {
        let text = fs::read_to_string(manifest_dir().join("nginx-conf").join(file))
            .unwrap_or_else(|e| panic!("read nginx-conf/{file}: {e}"));
        for needle in ["listen 1935;", "listen 8080;", "load_module modules/"] {
            assert!(
                text.contains(needle),
                "nginx-conf/{file} no longer has `{needle}`: update ExampleNginx"
            );
        }
        for _attempt in 0..5 {
            let prefix = fresh_prefix();
            let rtmp_port = free_port();
            let http_port = free_port();
            let auth_port = free_port();
            if rtmp_port == http_port || auth_port == rtmp_port || auth_port == http_port {
                continue;
            }
            let conf = text
                .lines()
                .map(|l| {
                    if l.trim_start().starts_with("load_module") && l.contains("rtmp") {
                        format!("load_module {};", module_path().display())
                    } else {
                        l.replace("listen 1935;", &format!("listen 127.0.0.1:{rtmp_port};"))
                            .replace("listen 8080;", &format!("listen 127.0.0.1:{http_port};"))
                            .replace("127.0.0.1:8081", &format!("127.0.0.1:{auth_port}"))
                    }
                })
                .collect::<Vec<_>>()
                .join("\n");
            let conf_path = prefix.join("conf/nginx.conf");
            fs::write(&conf_path, conf).expect("write conf");
            let child = Command::new(nginx_bin())
                .arg("-p")
                .arg(&prefix)
                .arg("-c")
                .arg(&conf_path)
                .arg("-e")
                .arg(prefix.join("logs/error.log"))
                .args(["-g", "daemon off;"])
                .current_dir(&prefix)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(fs::File::create(prefix.join("logs/stderr.log")).expect("stderr log"))
                .process_group(0)
                .spawn()
                .expect("spawn nginx");
            let mut n = ExampleNginx {
                prefix,
                rtmp_port,
                http_port,
                child: Some(child),
            };
            let deadline = Instant::now() + START_TIMEOUT;
            loop {
                let exited = n
                    .child
                    .as_mut()
                    .and_then(|c| c.try_wait().ok().flatten())
                    .is_some();
                if exited {
                    n.child = None;
                    let log = n.logs();
                    if log.contains("Address already in use") {
                        break;
                    }
                    panic!("nginx with the example config exited at startup:\n{log}");
                }
                if TcpStream::connect(("127.0.0.1", rtmp_port)).is_ok()
                    && TcpStream::connect(("127.0.0.1", http_port)).is_ok()
                    && n.logs().contains("start worker process")
                {
                    return n;
                }
                assert!(
                    Instant::now() < deadline,
                    "nginx with the example config did not start:\n{}",
                    n.logs()
                );
                thread::sleep(Duration::from_millis(25));
            }
        }
        panic!("could not start nginx with the example config (ports taken 5 times)");
    }

    pub fn logs(&self) -> String {
        format!(
            "{}\n--- stderr ---\n{}",
            read_lossy(&self.prefix.join("logs/error.log")),
            read_lossy(&self.prefix.join("logs/stderr.log"))
        )
    }

    /// SIGQUIT, bounded wait; then the group is killed. Returns the error log.
    pub fn stop(&mut self) -> String {
        if let Some(mut c) = self.child.take() {
            let pid = c.id() as i32;
            // SAFETY: kill() on our own, not yet reaped child.
            unsafe {
                libc::kill(pid, libc::SIGQUIT);
            }
            if wait_timeout(&mut c, STOP_TIMEOUT).is_none() {
                // SAFETY: the process group created for this child (process_group(0)).
                unsafe {
                    libc::kill(-pid, libc::SIGKILL);
                }
                let _ = c.wait();
            }
        }
        read_lossy(&self.prefix.join("logs/error.log"))
    }
}

impl Drop for ExampleNginx {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: the process group created for this child; the leader is not yet reaped.
            unsafe {
                libc::kill(-(c.id() as i32), libc::SIGKILL);
            }
            let _ = c.wait();
        }
        if thread::panicking() {
            eprintln!("test failed: prefix kept at {}", self.prefix.display());
        } else {
            let _ = fs::remove_dir_all(&self.prefix);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The browser

/// Result of a browser driver in tests/browser (play.mjs, replay.mjs, page.mjs).
#[derive(Debug, Clone)]
pub struct BrowserResult {
    pub json: String,
    pub advanced: Option<f64>,
    pub error_count: Option<f64>,
    pub status: Option<ExitStatus>,
    pub stderr: String,
}

/// The number after `"key":` in a flat JSON text.
pub fn json_number(json: &str, key: &str) -> Option<f64> {
    let pat = format!("\"{key}\":");
    let at = json.find(&pat)? + pat.len();
    let rest = json[at..].trim_start();
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E')))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// Runs the headless-browser player on `page_url` for `secs` seconds.
pub fn run_browser(page_url: &str, secs: u32) -> BrowserResult {
    let secs_arg = secs.to_string();
    run_node(
        "play.mjs",
        &[page_url, &secs_arg],
        Duration::from_secs(u64::from(secs) + 45),
    )
}

/// Runs `node tests/browser/<script> <args>` (a browser driver printing one JSON line) for at
/// most `limit`. Node runs in its own process group, so an overrun kills Chromium too.
pub fn run_node(script: &str, args: &[&str], limit: Duration) -> BrowserResult {
    let dir = manifest_dir().join("tests/browser");
    let mut child = Command::new("node")
        .arg(dir.join(script))
        .args(args)
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("spawn node (scripts/test.sh installs it)");
    let out = child.stdout.take().expect("stdout");
    let err = child.stderr.take().expect("stderr");
    let stderr = Arc::new(Mutex::new(String::new()));
    let err_reader = {
        let sink = Arc::clone(&stderr);
        thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if let Ok(mut s) = sink.lock() {
                    s.push_str(&line);
                    s.push('\n');
                }
            }
        })
    };
    let out_reader = thread::spawn(move || {
        let mut s = String::new();
        let _ = BufReader::new(out).read_to_string(&mut s);
        s
    });
    let status = match wait_timeout(&mut child, limit) {
        Some(s) => Some(s),
        None => {
            // SAFETY: the process group created for node (process_group(0)); not yet reaped.
            unsafe {
                libc::kill(-(child.id() as i32), libc::SIGKILL);
            }
            let _ = child.wait();
            None
        }
    };
    let json = out_reader.join().unwrap_or_default();
    let _ = err_reader.join();
    let stderr = stderr.lock().map(|s| s.clone()).unwrap_or_default();
    BrowserResult {
        advanced: json_number(&json, "advanced"),
        error_count: json_number(&json, "errorCount"),
        json,
        status,
        stderr,
    }
}
