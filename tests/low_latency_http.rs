//! `rtmp_low_latency on;`: LL-HLS blocking playlist reload, delta updates and preload-hinted
//! parts served by nginx itself, from files a writer in the test replaces atomically (write a
//! temporary file, rename), in the segmenter's format and naming (`s-video.m3u8`,
//! `s-p<t>.m4s`, `s-<t>.m4v`).

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::hls::{http_get, HttpResponse};
use common::workers::{finish_checked, Launch};
use common::{live_rtmp_block, Server};

/// Milliseconds per part; the track timescale is 1000, so a part's `<t>` is its start in ms.
const PART_MS: u64 = 200;
const PARTS_PER_SEGMENT: u64 = 5;

const LOCATION: &str = "location /ll/ {\n\
    alias {PREFIX}/tmp/ll/;\n\
    rtmp_low_latency on;\n\
    types { application/vnd.apple.mpegurl m3u8; video/mp4 m4s m4v; }\n\
    add_header X-Worker $pid;\n\
    add_header X-Test ll always;\n\
    expires 1h;\n\
}\n\
location /plain/ {\n\
    alias {PREFIX}/tmp/ll/;\n\
    types { application/vnd.apple.mpegurl m3u8; video/mp4 m4s m4v; }\n\
}\n";

/// The segmenter's output for one video track, written step by step.
struct Writer {
    dir: PathBuf,
    target_s: u64,
    media_sequence: u64,
    /// Complete segments: (name, duration ms, its parts).
    segments: Vec<(String, u64, Vec<String>)>,
    /// Parts of the segment being written.
    parts: Vec<String>,
    /// Start of the next part.
    t: u64,
    /// Segments listed at most.
    window: usize,
}

fn write_atomic(path: &Path, data: &[u8]) {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, data).expect("write temp");
    fs::rename(&tmp, path).expect("rename");
}

fn part_bytes(t: u64) -> Vec<u8> {
    format!("part {t} ").repeat(500).into_bytes()
}

impl Writer {
    fn new(server: &Server, target_s: u64) -> Writer {
        let dir = server.prefix.join("tmp/ll");
        fs::create_dir_all(&dir).expect("mkdir");
        fs::write(dir.join("s-init.m4v"), b"init").expect("init");
        Writer {
            dir,
            target_s,
            media_sequence: 0,
            segments: Vec::new(),
            parts: Vec::new(),
            t: 0,
            window: 12,
        }
    }

    fn hint(&self) -> String {
        format!("s-p{}.m4s", self.t)
    }

    /// (msn, part index) of the next part to be written.
    fn next_position(&self) -> (u64, u64) {
        (
            self.media_sequence + self.segments.len() as u64,
            self.parts.len() as u64,
        )
    }

    fn playlist(&self) -> String {
        let mut s = format!(
            "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:{}\n\
             #EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=6.000,PART-HOLD-BACK=0.600\n\
             #EXT-X-PART-INF:PART-TARGET=0.200\n#EXT-X-MEDIA-SEQUENCE:{}\n\
             #EXT-X-MAP:URI=\"s-init.m4v\"\n",
            self.target_s, self.media_sequence
        );
        let n = self.segments.len();
        for (i, (name, ms, parts)) in self.segments.iter().enumerate() {
            if i + 3 >= n {
                for p in parts {
                    s += &format!("#EXT-X-PART:DURATION=0.200,URI=\"{p}\"\n");
                }
            }
            s += &format!("#EXTINF:{}.{:03},\n{name}\n", ms / 1000, ms % 1000);
        }
        for p in &self.parts {
            s += &format!("#EXT-X-PART:DURATION=0.200,URI=\"{p}\"\n");
        }
        s += &format!("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{}\"\n", self.hint());
        s
    }

    fn write_playlist(&self) {
        write_atomic(&self.dir.join("s-video.m3u8"), self.playlist().as_bytes());
    }

    /// Writes the next part (and the segment it completes), then the playlist listing it.
    fn write_part(&mut self) -> String {
        let name = self.hint();
        write_atomic(&self.dir.join(&name), &part_bytes(self.t));
        self.parts.push(name.clone());
        self.t += PART_MS;
        if self.parts.len() as u64 == PARTS_PER_SEGMENT {
            let start = self.t - PART_MS * PARTS_PER_SEGMENT;
            let seg = format!("s-{start}.m4v");
            write_atomic(&self.dir.join(&seg), b"segment");
            let parts = std::mem::take(&mut self.parts);
            self.segments
                .push((seg, PART_MS * PARTS_PER_SEGMENT, parts));
            if self.segments.len() > self.window {
                self.segments.remove(0);
                self.media_sequence += 1;
            }
        }
        self.write_playlist();
        name
    }
}

fn start(workers: usize) -> Server {
    Launch::workers(workers).start(&live_rtmp_block("", ""), LOCATION)
}

fn get(server: &Server, path: &str) -> HttpResponse {
    http_get(server.http_port, path).unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

fn body(r: &HttpResponse) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

fn p99(mut v: Vec<Duration>) -> Duration {
    v.sort();
    let i = (v.len() * 99).div_ceil(100).saturating_sub(1);
    v[i.min(v.len() - 1)]
}

#[test]
fn a_request_for_the_next_part_returns_within_100ms_of_its_write_from_either_worker() {
    let server = start(2);
    let mut w = Writer::new(&server, 1);
    for _ in 0..PARTS_PER_SEGMENT * 2 {
        w.write_part();
    }
    let mut playlist_lat = Vec::new();
    let mut part_lat = Vec::new();
    let mut workers = std::collections::BTreeSet::new();
    for _ in 0..200 {
        let (msn, part) = w.next_position();
        let hint = w.hint();
        let (tx, rx) = mpsc::channel();
        let port = server.http_port;
        for k in 0..3 {
            let tx = tx.clone();
            let path = if k < 2 {
                format!("/ll/s-video.m3u8?_HLS_msn={msn}&_HLS_part={part}")
            } else {
                format!("/ll/{hint}")
            };
            thread::spawn(move || {
                let r = http_get(port, &path);
                let _ = tx.send((k, r, Instant::now()));
            });
        }
        drop(tx);
        // Let the requests arrive and park.
        thread::sleep(Duration::from_millis(40));
        let name = w.write_part();
        let written = Instant::now();
        for (k, r, at) in rx.iter() {
            let r = r.expect("parked request answered");
            assert_eq!(r.status, 200, "{k}: {}", body(&r));
            let lat = at.saturating_duration_since(written);
            if k < 2 {
                assert!(
                    body(&r).contains(&format!("URI=\"{name}\"")),
                    "{}",
                    body(&r)
                );
                assert_eq!(
                    r.header("Content-Type"),
                    Some("application/vnd.apple.mpegurl")
                );
                playlist_lat.push(lat);
            } else {
                assert_eq!(r.body, part_bytes(w.t - PART_MS), "the hinted part, whole");
                part_lat.push(lat);
            }
            if let Some(pid) = r.header("X-Worker") {
                workers.insert(pid.to_owned());
            }
        }
    }
    let (pl, pa) = (p99(playlist_lat), p99(part_lat));
    eprintln!("p99 wake latency: playlist {pl:?}, hinted part {pa:?}; workers {workers:?}");
    assert!(pl < Duration::from_millis(100), "playlist p99 {pl:?}");
    assert!(pa < Duration::from_millis(100), "hinted part p99 {pa:?}");
    assert_eq!(workers.len(), 2, "both workers answered: {workers:?}");
    finish_checked(server);
}

#[test]
fn answers_at_once_refuses_the_far_future_times_out_and_falls_through_to_static() {
    let server = start(2);
    let mut w = Writer::new(&server, 1);
    for _ in 0..PARTS_PER_SEGMENT * 10 + 2 {
        w.write_part();
    }
    let (msn, part) = w.next_position();
    assert_eq!((msn, part), (10, 2));
    let port = server.http_port;
    // Waits that nothing satisfies: 503 (playlist) and 404 (hinted part) after 3 x 1 s.
    let waits: Vec<_> = [
        format!("/ll/s-video.m3u8?_HLS_msn={msn}&_HLS_part={part}"),
        format!("/ll/{}", w.hint()),
    ]
    .into_iter()
    .map(|path| {
        thread::spawn(move || {
            let t0 = Instant::now();
            let r = http_get(port, &path).expect("answer");
            (r.status, t0.elapsed())
        })
    })
    .collect();

    // Already there: at once.
    let t0 = Instant::now();
    let r = get(&server, "/ll/s-video.m3u8?_HLS_msn=9&_HLS_part=1");
    assert_eq!(r.status, 200);
    assert!(t0.elapsed() < Duration::from_millis(500));
    assert_eq!(body(&r), w.playlist());
    assert_eq!(r.header("X-Test"), Some("ll"));
    // Too far ahead: the last segment is 9, so 12 is beyond it plus two; 400 at once.
    assert_eq!(get(&server, "/ll/s-video.m3u8?_HLS_msn=12").status, 400);
    assert_eq!(get(&server, "/ll/s-video.m3u8?_HLS_part=1").status, 400);
    assert_eq!(get(&server, "/ll/s-video.m3u8?_HLS_msn=x").status, 400);
    // A part later than the hint: 400; an older missing one: 404; a listed one: the file.
    let later = format!("/ll/s-p{}.m4s", w.t + PART_MS);
    assert_eq!(get(&server, &later).status, 400);
    assert_eq!(get(&server, "/ll/s-p5.m4s").status, 404);
    let listed = format!("/ll/s-p{}.m4s", w.t - PART_MS);
    assert_eq!(get(&server, &listed).body, part_bytes(w.t - PART_MS));
    // No query: nginx's static handler, with its headers.
    let r = get(&server, "/ll/s-video.m3u8");
    assert_eq!(r.status, 200);
    assert_eq!(body(&r), w.playlist());
    assert_eq!(r.header("Cache-Control"), Some("max-age=3600"));
    assert!(r.header("ETag").is_some() && r.header("Last-Modified").is_some());
    assert!(r.header("Expires").is_some() && r.header("X-Test") == Some("ll"));
    // A delta update: the oldest segments skipped, the live edge intact.
    let r = get(&server, "/ll/s-video.m3u8?_HLS_skip=YES");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("Content-Type"),
        Some("application/vnd.apple.mpegurl")
    );
    assert_eq!(r.header("X-Test"), Some("ll"));
    let d = body(&r);
    // 10 segments of 1 s + 0.4 s of parts; boundary 6 s: the first four end 6.4 s or more
    // before the end.
    assert!(d.contains("#EXT-X-SKIP:SKIPPED-SEGMENTS=4\n#EXT-X-MAP:URI=\"s-init.m4v\"\n#EXTINF:1.000,\ns-4000.m4v\n"), "{d}");
    assert!(!d.contains("s-3000.m4v") && d.ends_with(&format!("URI=\"{}\"\n", w.hint())));
    // Where the flag is off, the queries mean nothing.
    let r = get(
        &server,
        &format!("/plain/s-video.m3u8?_HLS_msn={}", msn + 5),
    );
    assert_eq!((r.status, body(&r)), (200, w.playlist()));

    for (i, h) in waits.into_iter().enumerate() {
        let (status, took) = h.join().expect("waiter");
        assert_eq!(status, [503, 404][i], "wait {i}");
        assert!(
            took >= Duration::from_millis(2900) && took < Duration::from_millis(4500),
            "wait {i} took {took:?}"
        );
    }
    finish_checked(server);
}

/// Sends a request and leaves the connection open.
fn send_only(port: u16, path: &str) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: t\r\n\r\n").as_bytes())
        .expect("send");
    s
}

fn read_status(mut s: TcpStream) -> Option<u16> {
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw);
    text.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn clients_that_leave_while_parked_are_forgotten_and_the_workers_keep_serving() {
    let server = start(2);
    let mut w = Writer::new(&server, 2);
    for _ in 0..PARTS_PER_SEGMENT {
        w.write_part();
    }
    let (msn, part) = w.next_position();
    let log0 = server.log_len();
    let gone: Vec<TcpStream> = (0..50)
        .map(|i| {
            let path = if i % 2 == 0 {
                format!("/ll/s-video.m3u8?_HLS_msn={msn}&_HLS_part={part}")
            } else {
                format!("/ll/{}", w.hint())
            };
            send_only(server.http_port, &path)
        })
        .collect();
    let stay = send_only(
        server.http_port,
        &format!("/ll/s-video.m3u8?_HLS_msn={msn}&_HLS_part={part}"),
    );
    thread::sleep(Duration::from_millis(300));
    drop(gone);
    let deadline = Instant::now() + Duration::from_secs(5);
    while server
        .log_since(log0)
        .matches("client prematurely closed connection")
        .count()
        < 50
    {
        assert!(Instant::now() < deadline, "{}", server.log_since(log0));
        thread::sleep(Duration::from_millis(20));
    }
    // The part they waited for comes after they left; the one that stayed gets it.
    w.write_part();
    assert_eq!(read_status(stay), Some(200));
    for _ in 0..20 {
        assert_eq!(get(&server, "/ll/s-video.m3u8").status, 200);
    }
    finish_checked(server);
}

#[test]
fn five_thousand_parked_requests_add_little_latency_to_other_requests() {
    const PARKED: usize = 5000;
    const SAMPLES: usize = 400;
    // One worker: every parked request is in the worker that serves the measured ones.
    let server = Launch::workers(1).start_edited(&live_rtmp_block("", ""), LOCATION, &|c| {
        c.replace("worker_connections 256;", "worker_connections 8192;")
    });
    let mut w = Writer::new(&server, 10);
    for _ in 0..PARTS_PER_SEGMENT * 2 {
        w.write_part();
    }
    let port = server.http_port;
    let measure = || {
        (0..SAMPLES)
            .map(|_| {
                let t0 = Instant::now();
                let r = http_get(port, "/ll/s-init.m4v").expect("static GET");
                assert_eq!(r.status, 200);
                t0.elapsed()
            })
            .collect::<Vec<_>>()
    };
    let base = p99(measure());

    // Parked until segment msn + 1 is complete: ten parts away.
    let (msn, _) = w.next_position();
    let path = format!("/ll/s-video.m3u8?_HLS_msn={}", msn + 1);
    let t0 = Instant::now();
    let parked: Vec<TcpStream> = (0..PARKED).map(|_| send_only(port, &path)).collect();
    eprintln!("{PARKED} requests sent in {:?}", t0.elapsed());
    thread::sleep(Duration::from_millis(1000));
    // Measured while the playlist changes under them (each change is read and every parked
    // request looked at), without satisfying them.
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let writer = thread::spawn(move || {
        let mut n = 0;
        while stop_rx.recv_timeout(Duration::from_millis(100)).is_err() && n < 8 {
            w.write_part();
            n += 1;
        }
        w
    });
    let loaded = p99(measure());
    let _ = stop_tx.send(());
    let mut w = writer.join().expect("writer");
    eprintln!("static GET p99: {base:?} alone, {loaded:?} with {PARKED} parked");
    assert!(
        loaded < base + Duration::from_millis(20),
        "p99 {loaded:?} with {PARKED} parked vs {base:?} alone"
    );
    // Now the segment they wait for completes: every one of them is answered.
    while w.next_position().0 <= msn + 1 {
        w.write_part();
    }
    let t0 = Instant::now();
    let ok = parked
        .into_iter()
        .map(read_status)
        .filter(|s| *s == Some(200))
        .count();
    eprintln!("{ok} woken and answered in {:?}", t0.elapsed());
    assert_eq!(ok, PARKED);
    finish_checked(server);
}

#[test]
fn a_bad_rtmp_low_latency_value_fails_nginx_t_at_its_line() {
    let conf = common::render_conf(
        Path::new("{PREFIX}"),
        &live_rtmp_block("", ""),
        "location /ll/ {\n        rtmp_low_latency yes;\n    }",
        1935,
        8080,
    );
    let line = conf
        .lines()
        .position(|l| l.contains("rtmp_low_latency yes"))
        .expect("marker")
        + 1;
    let t = common::nginx_t_text(&conf);
    assert!(!t.ok, "{}", t.stderr);
    assert!(
        t.stderr.contains("[emerg]")
            && t.stderr.contains("\"on\" or \"off\"")
            && t.stderr
                .contains(&format!("in {}:{line}", t.path.display())),
        "{}",
        t.stderr
    );
    let good = conf.replace("rtmp_low_latency yes;", "rtmp_low_latency on;");
    let t = common::nginx_t_text(&good);
    assert!(t.ok, "{}", t.stderr);
}

#[test]
fn a_graceful_stop_answers_parked_requests_at_once() {
    let server = start(2);
    let mut w = Writer::new(&server, 4);
    for _ in 0..PARTS_PER_SEGMENT {
        w.write_part();
    }
    let (msn, part) = w.next_position();
    let port = server.http_port;
    // Parked for up to 12 s (3 x 4 s) unless the stop answers them.
    let waiting: Vec<TcpStream> = (0..10)
        .map(|i| {
            let path = if i % 2 == 0 {
                format!("/ll/s-video.m3u8?_HLS_msn={msn}&_HLS_part={part}")
            } else {
                format!("/ll/{}", w.hint())
            };
            send_only(port, &path)
        })
        .collect();
    thread::sleep(Duration::from_millis(300));
    let readers: Vec<_> = waiting
        .into_iter()
        .map(|s| thread::spawn(move || read_status(s)))
        .collect();
    let t0 = Instant::now();
    finish_checked(server);
    let took = t0.elapsed();
    let statuses: Vec<Option<u16>> = readers
        .into_iter()
        .map(|h| h.join().expect("reader"))
        .collect();
    // The playlist as it is; the hinted part, still missing, 404.
    let expected: Vec<Option<u16>> = (0..10)
        .map(|i| Some(if i % 2 == 0 { 200 } else { 404 }))
        .collect();
    assert_eq!(statuses, expected);
    assert!(took < Duration::from_secs(3), "stop took {took:?}");
}

fn curl_h2(url: &str) -> std::process::Child {
    std::process::Command::new("curl")
        .args(["-s", "--http2-prior-knowledge", "--max-time", "10"])
        .args(["-o", "-", "-w", "\n%{http_version} %{http_code}", url])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("curl")
}

#[test]
fn http2_streams_park_wake_and_leave_too() {
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
    let mut w = Writer::new(&server, 2);
    for _ in 0..PARTS_PER_SEGMENT {
        w.write_part();
    }
    let (msn, part) = w.next_position();
    let url = server.http_url(&format!("/ll/s-video.m3u8?_HLS_msn={msn}&_HLS_part={part}"));
    let waiting = curl_h2(&url);
    let mut leaving = curl_h2(&url);
    thread::sleep(Duration::from_millis(500));
    leaving.kill().expect("kill curl");
    let _ = leaving.wait();
    thread::sleep(Duration::from_millis(100));
    let name = w.write_part();
    let out = waiting.wait_with_output().expect("curl output");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.ends_with("\n2 200"), "{text}");
    assert!(text.contains(&format!("URI=\"{name}\"")), "{text}");
    assert_eq!(get(&server, "/ll/s-video.m3u8").status, 200);
    finish_checked(server);
}
