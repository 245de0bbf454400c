//! `rtmp_low_latency on;` and LL-DASH: a DASH media segment requested while the segmenter is
//! still writing it (only `<name>.part` exists, growing by whole CMAF chunks) is streamed from
//! the growing file, each chunk as it is written, and ends cleanly only when the file is
//! renamed to its final name. The test plays the segmenter: it appends chunks to
//! `s-<t>.m4v.part`, then renames (or unlinks) it; clients read with arrival timestamps.

mod common;

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use common::hls::http_get;
use common::workers::{finish_checked, Launch};
use common::{live_rtmp_block, Server};

const LOCATION: &str = "location /dash/ {\n\
    alias {PREFIX}/tmp/dash/;\n\
    rtmp_low_latency on;\n\
    types { video/mp4 m4v m4s; audio/mp4 m4a; application/dash+xml mpd; }\n\
    add_header X-Worker $pid;\n\
}\n\
location /dash-sf/ {\n\
    alias {PREFIX}/tmp/dash/;\n\
    rtmp_low_latency on;\n\
    sendfile on;\n\
    types { video/mp4 m4v m4s; audio/mp4 m4a; }\n\
}\n\
location /plain/ {\n\
    alias {PREFIX}/tmp/dash/;\n\
    types { video/mp4 m4v m4s; audio/mp4 m4a; }\n\
}\n";

/// Bytes per CMAF chunk written.
const CHUNK: usize = 6000;

fn start(workers: usize) -> Server {
    Launch::workers(workers).start(&live_rtmp_block("", ""), LOCATION)
}

fn dir(server: &Server) -> PathBuf {
    let d = server.prefix.join("tmp/dash");
    fs::create_dir_all(&d).expect("mkdir");
    d
}

/// A chunk's bytes: recognisable per chunk, so a misplaced byte shows.
fn chunk(i: usize) -> Vec<u8> {
    let mut v = format!("moof{i:05}mdat").into_bytes();
    while v.len() < CHUNK {
        v.push(b'a' + ((v.len() + i) % 26) as u8);
    }
    v
}

/// The segmenter writing one segment.
struct Segment {
    path: PathBuf,
    part: PathBuf,
    file: File,
    data: Vec<u8>,
    /// (end offset, when the chunk was written) per chunk.
    written: Vec<(usize, Instant)>,
}

impl Segment {
    fn begin(server: &Server, name: &str) -> Segment {
        let path = dir(server).join(name);
        let part = PathBuf::from(format!("{}.part", path.display()));
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&part)
            .expect("create .part");
        Segment {
            path,
            part,
            file,
            data: Vec::new(),
            written: Vec::new(),
        }
    }

    /// Appends one chunk, in two writes (a reader may see half of it).
    fn append(&mut self, bytes: &[u8]) {
        let (a, b) = bytes.split_at(bytes.len() / 3);
        self.file.write_all(a).expect("write");
        self.file.write_all(b).expect("write");
        self.data.extend_from_slice(bytes);
        self.written.push((self.data.len(), Instant::now()));
    }

    fn finish(self) -> Vec<u8> {
        fs::rename(&self.part, &self.path).expect("rename");
        self.data
    }

    fn abandon(self) {
        fs::remove_file(&self.part).expect("unlink .part");
    }
}

/// A response as read off the socket.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// When each body byte arrived.
    arrivals: Vec<Instant>,
    /// Chunked: the terminating chunk came; else: the body ended by a clean close (EOF).
    clean_end: bool,
    /// How reading ended, if not by EOF.
    error: Option<ErrorKind>,
    /// When the request was sent.
    sent_at: Instant,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// `method path` over HTTP/`version`, read to the end with arrival times.
fn fetch(port: u16, method: &str, path: &str, version: &str) -> Reply {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).ok();
    s.set_nodelay(true).ok();
    let sent_at = Instant::now();
    s.write_all(
        format!("{method} {path} HTTP/{version}\r\nHost: t\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .expect("send");
    let mut raw = Vec::new();
    let mut marks: Vec<(usize, Instant)> = Vec::new();
    let mut buf = vec![0u8; 65536];
    let mut error = None;
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                raw.extend_from_slice(&buf[..n]);
                marks.push((raw.len(), Instant::now()));
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                error = Some(e.kind());
                break;
            }
        }
    }
    let at = |i: usize| marks[marks.partition_point(|(end, _)| *end <= i)].1;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header in {:?}", String::from_utf8_lossy(&raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let start = split + 4;
    // Raw offset of each body byte.
    let mut positions = Vec::new();
    let mut clean_end = false;
    if chunked {
        let mut pos = start;
        while let Some(eol) = raw[pos..].windows(2).position(|w| w == b"\r\n") {
            let line = String::from_utf8_lossy(&raw[pos..pos + eol]).into_owned();
            let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
                .unwrap_or_else(|_| panic!("bad chunk size line {line:?}"));
            pos += eol + 2;
            if size == 0 {
                clean_end = raw[pos..].starts_with(b"\r\n");
                break;
            }
            let avail = size.min(raw.len() - pos);
            positions.extend(pos..pos + avail);
            if avail < size || raw.len() < pos + size + 2 {
                break;
            }
            pos += size + 2;
        }
    } else {
        positions.extend(start..raw.len());
        clean_end = error.is_none();
    }
    Reply {
        status,
        headers,
        body: positions.iter().map(|&i| raw[i]).collect(),
        arrivals: positions.iter().map(|&i| at(i)).collect(),
        clean_end,
        error,
        sent_at,
    }
}

fn fetch_async(port: u16, path: &str, version: &'static str) -> thread::JoinHandle<Reply> {
    let path = path.to_owned();
    thread::spawn(move || fetch(port, "GET", &path, version))
}

fn percentile(v: &[Duration], p: usize) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    let i = (v.len() * p).div_ceil(100).saturating_sub(1);
    v[i.min(v.len() - 1)]
}

/// Each chunk's latency: from its write to the arrival of its last byte.
fn latencies(seg_written: &[(usize, Instant)], reply: &Reply, skip: usize) -> Vec<Duration> {
    seg_written
        .iter()
        .skip(skip)
        .map(|(end, at)| reply.arrivals[end - 1].saturating_duration_since(*at))
        .collect()
}

#[test]
fn a_growing_segment_streams_each_chunk_within_100ms_and_ends_cleanly_at_the_rename() {
    const CHUNKS: usize = 30;
    const CLIENTS: usize = 4;
    let server = start(2);
    let port = server.http_port;
    let mut seg = Segment::begin(&server, "s-4000.m4v");
    seg.append(&chunk(0));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| fetch_async(port, "/dash/s-4000.m4v", "1.1"))
        .collect();
    thread::sleep(Duration::from_millis(300));
    for i in 1..CHUNKS {
        seg.append(&chunk(i));
        thread::sleep(Duration::from_millis(100));
    }
    let written = seg.written.clone();
    let data = seg.finish();
    let mut lat = Vec::new();
    for h in clients {
        let r = h.join().expect("client");
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.header("Transfer-Encoding"), Some("chunked"));
        assert_eq!(r.header("Content-Length"), None);
        assert_eq!(r.header("Content-Type"), Some("video/mp4"));
        assert!(r.clean_end, "no terminating chunk: {:?}", r.error);
        assert!(r.body == data, "body differs from the file");
        // The first chunk was there before the request: it comes at once.
        let first = r.arrivals[CHUNK - 1].saturating_duration_since(r.sent_at);
        assert!(first < Duration::from_millis(200), "first chunk {first:?}");
        lat.extend(latencies(&written, &r, 1));
    }
    let (p50, p99, max) = (
        percentile(&lat, 50),
        percentile(&lat, 99),
        percentile(&lat, 100),
    );
    eprintln!(
        "chunk write -> client arrival over {} samples ({CLIENTS} clients x {} chunks): \
         p50 {p50:?}, p99 {p99:?}, max {max:?}",
        lat.len(),
        CHUNKS - 1
    );
    assert!(p99 < Duration::from_millis(100), "p99 {p99:?}");
    // Once renamed, the static handler serves it, with its length.
    let r = http_get(port, "/dash/s-4000.m4v").expect("GET after rename");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Length"), Some(&*data.len().to_string()));
    assert!(r.header("ETag").is_some() && r.header("Last-Modified").is_some());
    assert!(r.body == data);
    finish_checked(server);
}

#[test]
fn http_1_0_gets_a_close_delimited_body_and_head_gets_headers_only() {
    let server = start(1);
    let port = server.http_port;
    let mut seg = Segment::begin(&server, "s-8000-90000.m4a");
    seg.append(&chunk(0));
    // With sendfile (the file buffers go to sendfile) and without (the copy filter reads them).
    let client = fetch_async(port, "/dash/s-8000-90000.m4a", "1.0");
    let client_sf = fetch_async(port, "/dash-sf/s-8000-90000.m4a", "1.0");
    let head = fetch(port, "HEAD", "/dash/s-8000-90000.m4a", "1.1");
    assert_eq!(head.status, 200);
    assert_eq!(head.header("Content-Type"), Some("audio/mp4"));
    assert_eq!(head.header("Content-Length"), None);
    assert!(head.body.is_empty());
    // Range is ignored while the file grows: the whole body, 200.
    let range = {
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.write_all(
            b"GET /dash/s-8000-90000.m4a HTTP/1.1\r\nHost: t\r\nRange: bytes=10-20\r\n\
              Connection: close\r\n\r\n",
        )
        .expect("send");
        s.set_read_timeout(Some(Duration::from_secs(20))).ok();
        thread::spawn(move || {
            let mut raw = Vec::new();
            let _ = s.read_to_end(&mut raw);
            raw
        })
    };
    for i in 1..10 {
        thread::sleep(Duration::from_millis(50));
        seg.append(&chunk(i));
    }
    let data = seg.finish();
    for client in [client, client_sf] {
        let r = client.join().expect("client");
        assert_eq!(r.status, 200);
        assert_eq!(r.header("Transfer-Encoding"), None);
        assert_eq!(r.header("Content-Length"), None);
        assert!(r.clean_end, "{:?}", r.error);
        assert!(r.body == data, "body differs from the file");
    }
    let raw = range.join().expect("range");
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 200 "), "{}", &text[..80]);
    assert!(text.ends_with("\r\n0\r\n\r\n"));
    finish_checked(server);
}

#[test]
fn an_abandoned_segment_never_ends_cleanly() {
    let server = start(1);
    let port = server.http_port;
    let log0 = server.log_len();
    let mut seg = Segment::begin(&server, "s-12000.m4v");
    seg.append(&chunk(0));
    let c11 = fetch_async(port, "/dash/s-12000.m4v", "1.1");
    let c10 = fetch_async(port, "/dash/s-12000.m4v", "1.0");
    for i in 1..5 {
        thread::sleep(Duration::from_millis(60));
        seg.append(&chunk(i));
    }
    thread::sleep(Duration::from_millis(100));
    let data = seg.data.clone();
    seg.abandon();
    let t0 = Instant::now();
    let r = c11.join().expect("client 1.1");
    assert_eq!(r.status, 200);
    assert!(
        !r.clean_end,
        "a terminating chunk after the .part was unlinked"
    );
    assert!(r.body.len() <= data.len() && r.body == data[..r.body.len()]);
    let r = c10.join().expect("client 1.0");
    assert_eq!(r.status, 200);
    assert_eq!(r.error, Some(ErrorKind::ConnectionReset), "HTTP/1.0: reset");
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    assert!(server.wait_for_log(log0, "abandoned", Duration::from_secs(2)));
    // The final name never appears: 404 from the static handler, after the early wait.
    assert_eq!(http_get(port, "/dash/s-12000.m4v").unwrap().status, 404);
    finish_checked(server);
}

#[test]
fn an_early_request_waits_for_the_part_and_a_name_that_never_comes_gets_404_after_1s() {
    let server = start(2);
    let port = server.http_port;
    dir(&server);
    let early = fetch_async(port, "/dash/s-16000.m4v", "1.1");
    let never = thread::spawn(move || {
        let t0 = Instant::now();
        let r = http_get(port, "/dash/s-99000.m4v").expect("GET");
        (r.status, t0.elapsed())
    });
    thread::sleep(Duration::from_millis(400));
    let mut seg = Segment::begin(&server, "s-16000.m4v");
    seg.append(&chunk(0));
    let created = Instant::now();
    for i in 1..4 {
        thread::sleep(Duration::from_millis(50));
        seg.append(&chunk(i));
    }
    let data = seg.finish();
    let r = early.join().expect("early");
    assert_eq!(r.status, 200);
    assert!(r.clean_end && r.body == data);
    let wait = r.arrivals[0].saturating_duration_since(created);
    assert!(
        wait < Duration::from_millis(100),
        "first byte {wait:?} after the .part"
    );
    // Early, and then the whole file appears at once (no .part seen): the static answer.
    let early = fetch_async(port, "/dash/s-20000.m4v", "1.1");
    thread::sleep(Duration::from_millis(300));
    fs::write(dir(&server).join("s-20000.m4v"), b"whole").expect("write");
    let r = early.join().expect("early 2");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"whole"[..]));
    assert_eq!(r.header("Content-Length"), Some("5"));
    let (status, took) = never.join().expect("never");
    assert_eq!(status, 404);
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_millis(2500),
        "404 after {took:?}"
    );
    finish_checked(server);
}

#[test]
fn spools_hls_part_temp_files_and_other_names_are_not_streamed() {
    let server = start(1);
    let port = server.http_port;
    let d = dir(&server);
    for name in [
        "s-spool0.m4v.part",
        "spool1.m4v.part",
        "s-p2480.m4s.part",
        "s-p2480.m4a.part",
        "s-init.m4v.part",
        "s-4000.mp4.part",
        "s-4000x.m4v.part",
    ] {
        fs::write(d.join(name), b"temp").expect("write");
    }
    for path in [
        "/dash/s-spool0.m4v",
        "/dash/spool1.m4v",
        "/dash/s-p2480.m4s",
        "/dash/s-p2480.m4a",
        "/dash/s-init.m4v",
        "/dash/s-4000.mp4",
        "/dash/s-4000x.m4v",
    ] {
        let t0 = Instant::now();
        let r = http_get(port, path).expect("GET");
        assert_eq!(r.status, 404, "{path}");
        assert!(t0.elapsed() < Duration::from_millis(500), "{path} waited");
    }
    // A qualifying name where the flag is off: the static handler alone (404).
    fs::write(d.join("s-24000.m4v.part"), b"growing").expect("write");
    assert_eq!(http_get(port, "/plain/s-24000.m4v").unwrap().status, 404);
    // The .part itself is a plain file to the static handler (never a growing stream).
    let r = http_get(port, "/dash/s-24000.m4v.part").unwrap();
    assert_eq!((r.status, r.header("Content-Length")), (200, Some("7")));
    finish_checked(server);
}

#[test]
fn both_workers_stream_growing_segments() {
    let server = start(2);
    let port = server.http_port;
    let mut workers = std::collections::BTreeSet::new();
    for n in 0..40 {
        let name = format!("s-{}.m4v", 100_000 + n * 1000);
        let mut seg = Segment::begin(&server, &name);
        seg.append(&chunk(n));
        let client = fetch_async(port, &format!("/dash/{name}"), "1.1");
        thread::sleep(Duration::from_millis(30));
        seg.append(&chunk(n + 1));
        let data = seg.finish();
        let r = client.join().expect("client");
        assert_eq!(r.status, 200);
        assert!(r.clean_end && r.body == data, "{name}");
        workers.insert(r.header("X-Worker").expect("X-Worker").to_owned());
        if workers.len() == 2 && n >= 3 {
            break;
        }
    }
    assert_eq!(workers.len(), 2, "both workers streamed: {workers:?}");
    finish_checked(server);
}

#[test]
fn a_graceful_stop_aborts_streaming_responses_at_once_and_leaving_clients_are_forgotten() {
    let server = start(2);
    let port = server.http_port;
    let log0 = server.log_len();
    let mut seg = Segment::begin(&server, "s-28000.m4v");
    seg.append(&chunk(0));
    // Clients that leave mid-stream.
    let gone: Vec<TcpStream> = (0..10)
        .map(|_| {
            let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
            s.write_all(b"GET /dash/s-28000.m4v HTTP/1.1\r\nHost: t\r\n\r\n")
                .expect("send");
            s
        })
        .collect();
    let staying: Vec<_> = (0..4)
        .map(|_| fetch_async(port, "/dash/s-28000.m4v", "1.1"))
        .collect();
    thread::sleep(Duration::from_millis(300));
    drop(gone);
    let deadline = Instant::now() + Duration::from_secs(5);
    while server
        .log_since(log0)
        .matches("client prematurely closed connection")
        .count()
        < 10
    {
        assert!(Instant::now() < deadline, "{}", server.log_since(log0));
        seg.append(&chunk(1));
        thread::sleep(Duration::from_millis(50));
    }
    let t0 = Instant::now();
    finish_checked(server);
    let took = t0.elapsed();
    for h in staying {
        let r = h.join().expect("client");
        assert_eq!(r.status, 200);
        assert!(
            !r.clean_end,
            "a stopped worker ended a growing segment cleanly"
        );
    }
    assert!(took < Duration::from_secs(3), "stop took {took:?}");
    drop(seg);
}

#[test]
fn a_segment_that_stops_growing_is_aborted_after_10s() {
    let server = start(1);
    let port = server.http_port;
    let log0 = server.log_len();
    let mut seg = Segment::begin(&server, "s-32000.m4v");
    seg.append(&chunk(0));
    let client = fetch_async(port, "/dash/s-32000.m4v", "1.1");
    thread::sleep(Duration::from_millis(200));
    seg.append(&chunk(1));
    let last = Instant::now();
    let r = client.join().expect("client");
    let took = last.elapsed();
    assert_eq!(r.status, 200);
    assert!(!r.clean_end);
    assert_eq!(r.body.len(), 2 * CHUNK);
    assert!(
        took >= Duration::from_millis(9900) && took < Duration::from_secs(13),
        "aborted after {took:?}"
    );
    assert_eq!(
        server
            .log_since(log0)
            .matches("did not grow for 10 s")
            .count(),
        1
    );
    drop(seg);
    finish_checked(server);
}

#[test]
fn http2_streams_a_growing_segment_and_resets_an_abandoned_one() {
    if std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: no curl");
        return;
    }
    let server =
        Launch::workers(1).start(&live_rtmp_block("", ""), &format!("http2 on;\n{LOCATION}"));
    let curl = |path: &str| {
        std::process::Command::new("curl")
            .args(["-s", "--http2-prior-knowledge", "--max-time", "10"])
            .args(["-o", "-", "-w", "\n%{http_version} %{http_code}"])
            .arg(server.http_url(path))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("curl")
    };
    let mut seg = Segment::begin(&server, "s-36000.m4v");
    seg.append(&chunk(0));
    let whole = curl("/dash/s-36000.m4v");
    let mut bad = Segment::begin(&server, "s-40000.m4v");
    bad.append(&chunk(7));
    let cut = curl("/dash/s-40000.m4v");
    for i in 1..8 {
        thread::sleep(Duration::from_millis(50));
        seg.append(&chunk(i));
    }
    let data = seg.finish();
    bad.abandon();
    let out = whole.wait_with_output().expect("curl");
    assert!(out.status.success(), "{:?}", out.status);
    let mut expected = data;
    expected.extend_from_slice(b"\n2 200");
    assert!(out.stdout == expected, "h2 body differs");
    let out = cut.wait_with_output().expect("curl");
    assert!(
        !out.status.success(),
        "an abandoned segment ended cleanly over h2"
    );
    finish_checked(server);
}

/// Resident memory of nginx's (only) worker, in KiB.
fn worker_rss_kib(server: &Server) -> u64 {
    let master = server.pid();
    let children = fs::read_to_string(format!("/proc/{master}/task/{master}/children"))
        .expect("children of the master");
    let worker = children.split_whitespace().next().expect("a worker");
    let status = fs::read_to_string(format!("/proc/{worker}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS")
}

#[test]
fn a_client_that_does_not_read_makes_the_worker_hold_little_and_still_gets_every_byte() {
    const MIB: usize = 1 << 20;
    const TOTAL_MIB: usize = 48;
    let server = start(1);
    let port = server.http_port;
    let mut seg = Segment::begin(&server, "s-44000.m4v");
    seg.append(&chunk(0));
    // One client through the copy filter (sendfile off), one through sendfile.
    let clients: Vec<TcpStream> = ["/dash/", "/dash-sf/"]
        .iter()
        .map(|loc| {
            let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
            s.write_all(
                format!("GET {loc}s-44000.m4v HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .expect("send");
            s
        })
        .collect();
    thread::sleep(Duration::from_millis(200));
    let before = worker_rss_kib(&server);
    let big: Vec<u8> = (0..MIB).map(|i| (i % 251) as u8).collect();
    for _ in 0..TOTAL_MIB {
        seg.append(&big);
        thread::sleep(Duration::from_millis(20));
    }
    thread::sleep(Duration::from_millis(300));
    let held = worker_rss_kib(&server).saturating_sub(before);
    eprintln!(
        "worker RSS grew by {held} KiB while two clients read nothing of a {TOTAL_MIB} MiB growing segment"
    );
    assert!(held < 16 * 1024, "the worker holds {held} KiB");
    // Now they read: every byte, then the end after the rename.
    let data = seg.finish();
    let readers: Vec<_> = clients
        .into_iter()
        .map(|s| thread::spawn(move || read_chunked(s)))
        .collect();
    for h in readers {
        let body = h.join().expect("reader");
        assert!(body == data, "{} of {} bytes", body.len(), data.len());
    }
    finish_checked(server);
}

/// Reads a chunked response to its end; its body.
fn read_chunked(mut s: TcpStream) -> Vec<u8> {
    s.set_read_timeout(Some(Duration::from_secs(20))).ok();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read");
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("head") + 4;
    let mut body = Vec::new();
    let mut pos = split;
    loop {
        let eol = raw[pos..]
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("size")
            + pos;
        let size =
            usize::from_str_radix(std::str::from_utf8(&raw[pos..eol]).unwrap(), 16).expect("hex");
        if size == 0 {
            break;
        }
        body.extend_from_slice(&raw[eol + 2..eol + 2 + size]);
        pos = eol + 2 + size + 2;
    }
    body
}

#[test]
fn a_streamed_response_keeps_the_connection_for_the_next_request() {
    let server = start(1);
    let mut seg = Segment::begin(&server, "s-48000.m4v");
    seg.append(&chunk(0));
    let mut s = TcpStream::connect(("127.0.0.1", server.http_port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    s.write_all(b"GET /dash/s-48000.m4v HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("send");
    thread::sleep(Duration::from_millis(100));
    seg.append(&chunk(1));
    let data = seg.finish();
    let mut raw = Vec::new();
    let mut buf = [0u8; 65536];
    while !raw.ends_with(b"\r\n0\r\n\r\n") {
        let n = s.read(&mut buf).expect("read");
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&raw));
        raw.extend_from_slice(&buf[..n]);
    }
    assert!(raw.starts_with(b"HTTP/1.1 200 OK\r\n"));
    // The same connection: now the static handler, with the file's length.
    s.write_all(b"GET /dash/s-48000.m4v HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .expect("send again");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read again");
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.contains(&format!("Content-Length: {}\r\n", data.len())));
    assert!(raw.ends_with(&data));
    finish_checked(server);
}

/// CPU time (user + system) of a process so far.
fn cpu_time(pid: &str) -> Duration {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let after_comm = stat.rsplit_once(')').expect("comm").1;
    let f: Vec<&str> = after_comm.split_whitespace().collect();
    // Fields 14 and 15 (utime, stime), counted from after the command name (field 3 is f[0]).
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    Duration::from_millis(ticks * 1000 / hz)
}

#[test]
fn a_thousand_streaming_responses_cost_the_worker_little() {
    const STREAMS: usize = 1000;
    const SAMPLES: usize = 300;
    let server = Launch::workers(1).start_edited(&live_rtmp_block("", ""), LOCATION, &|c| {
        c.replace("worker_connections 256;", "worker_connections 4096;")
    });
    let port = server.http_port;
    fs::write(dir(&server).join("s-init.m4v"), b"init").expect("init");
    let master = server.pid();
    let worker = fs::read_to_string(format!("/proc/{master}/task/{master}/children"))
        .expect("children")
        .split_whitespace()
        .next()
        .expect("worker")
        .to_owned();
    let measure = || {
        (0..SAMPLES)
            .map(|_| {
                let t0 = Instant::now();
                let r = http_get(port, "/dash/s-init.m4v").expect("static GET");
                assert_eq!(r.status, 200);
                t0.elapsed()
            })
            .collect::<Vec<_>>()
    };
    let base = percentile(&measure(), 99);
    let mut seg = Segment::begin(&server, "s-52000.m4v");
    seg.append(&chunk(0));
    let streams: Vec<TcpStream> = (0..STREAMS)
        .map(|_| {
            let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
            s.write_all(b"GET /dash/s-52000.m4v HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                .expect("send");
            s
        })
        .collect();
    thread::sleep(Duration::from_millis(500));
    // Idle (the segment does not grow): what the tick costs.
    let cpu0 = cpu_time(&worker);
    let t0 = Instant::now();
    thread::sleep(Duration::from_secs(2));
    let idle_cpu = (cpu_time(&worker) - cpu0).as_secs_f64() / t0.elapsed().as_secs_f64();
    // Growing every 100 ms while static requests are measured.
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let writer = thread::spawn(move || {
        let mut i = 1;
        while stop_rx.recv_timeout(Duration::from_millis(100)).is_err() {
            seg.append(&chunk(i));
            i += 1;
        }
        seg
    });
    let loaded = percentile(&measure(), 99);
    let _ = stop_tx.send(());
    let seg = writer.join().expect("writer");
    eprintln!(
        "{STREAMS} streaming responses: worker CPU {:.1}% while the file is idle; \
         static GET p99 {base:?} alone, {loaded:?} with them (file growing every 100 ms)",
        idle_cpu * 100.0
    );
    assert!(idle_cpu < 0.25, "idle tick CPU {:.1}%", idle_cpu * 100.0);
    assert!(
        loaded < base + Duration::from_millis(50),
        "p99 {loaded:?} vs {base:?}"
    );
    let data = seg.finish();
    let readers: Vec<_> = streams
        .into_iter()
        .map(|s| thread::spawn(move || read_chunked(s)))
        .collect();
    let whole = readers
        .into_iter()
        .map(|h| h.join().expect("reader"))
        .filter(|b| *b == data)
        .count();
    assert_eq!(whole, STREAMS);
    finish_checked(server);
}
