//! HTTP-FLV playback (`flv_live on;`, nginx-http-flv-module's `/live?app=&stream=` form): real
//! nginx, a real ffmpeg publisher, and players reading the HTTP response (ffmpeg, ffprobe, and
//! a small reader that checks the chunked FLV byte by byte).

mod common;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use common::backend::Backend;
use common::ffmpeg::{publish_cbr, VIDEO_SIZE};
use common::workers::Launch;
use common::*;

const FLV_LOCATION: &str = "location /live { flv_live on; }\n\
     location /stat { rtmp_stat all; }\n\
     location /control { rtmp_control all; }";

fn start(server_extra: &str, app_extra: &str) -> Server {
    Server::start(&live_rtmp_block(server_extra, app_extra), FLV_LOCATION)
}

fn flv_path(stream: &str) -> String {
    format!("/live?app=live&stream={stream}")
}

/// Starts publishing `live/<name>` and waits until the module has it.
fn publish_and_wait(server: &Server, name: &str, seconds: u32) -> FfmpegChild {
    let offset = server.log_len();
    let p = publish(&server.rtmp_url(&format!("live/{name}")), seconds);
    assert!(
        server.wait_for_log(
            offset,
            &format!("publish \"live/{name}\""),
            Duration::from_secs(10)
        ),
        "no publish in the log:\n{}",
        server.log_since(offset)
    );
    p
}

// ---------------------------------------------------------------------------------------------
// A reader of an HTTP-FLV response

/// One FLV tag: type (8 audio, 9 video, 18 script), timestamp, body.
#[derive(Debug, Clone)]
struct Tag {
    kind: u8,
    timestamp: u32,
    body: Vec<u8>,
}

impl Tag {
    fn is_video_keyframe(&self) -> bool {
        self.kind == 9 && self.body.first().is_some_and(|b| b >> 4 == 1)
    }

    fn is_sequence_header(&self) -> bool {
        matches!(self.kind, 8 | 9) && self.body.get(1) == Some(&0)
    }

    fn is_coded_video(&self) -> bool {
        self.kind == 9 && self.body.get(1) == Some(&1)
    }
}

struct FlvReader {
    stream: TcpStream,
    status: u16,
    headers: Vec<(String, String)>,
    chunked: bool,
    /// Raw bytes read and not yet parsed.
    raw: Vec<u8>,
    /// De-chunked body bytes not yet parsed into tags.
    body: Vec<u8>,
    header_seen: bool,
    /// The FLV file header's flags byte.
    flags: u8,
    /// The response ended cleanly (last chunk, or EOF of a close-delimited body).
    ended: bool,
    /// Bytes of the chunk being read still to come (chunked only).
    chunk_left: usize,
    /// The CRLF after a chunk's data is still to come.
    need_crlf: bool,
}

impl FlvReader {
    fn open(port: u16, path: &str, version: &str) -> FlvReader {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        Self::over(stream, path, version)
    }

    fn over(mut stream: TcpStream, path: &str, version: &str) -> FlvReader {
        let req = format!("GET {path} HTTP/{version}\r\nHost: 127.0.0.1\r\n\r\n");
        stream.write_all(req.as_bytes()).expect("send request");
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut r = FlvReader {
            stream,
            status: 0,
            headers: Vec::new(),
            chunked: false,
            raw: Vec::new(),
            body: Vec::new(),
            header_seen: false,
            flags: 0,
            ended: false,
            chunk_left: 0,
            need_crlf: false,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        let head_end = loop {
            if let Some(p) = r.raw.windows(4).position(|w| w == b"\r\n\r\n") {
                break p;
            }
            assert!(Instant::now() < deadline, "no response head");
            if !r.fill() {
                panic!(
                    "connection closed before the head: {:?}",
                    String::from_utf8_lossy(&r.raw)
                );
            }
        };
        let head = String::from_utf8_lossy(&r.raw[..head_end]).into_owned();
        r.raw.drain(..head_end + 4);
        let mut lines = head.lines();
        let status_line = lines.next().unwrap_or_default();
        r.status = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        for l in lines {
            if let Some((k, v)) = l.split_once(':') {
                r.headers
                    .push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        r.chunked = r
            .header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
        r
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Reads what the socket has (bounded wait); false once the connection is closed.
    fn fill(&mut self) -> bool {
        let mut buf = [0u8; 65536];
        match self.stream.read(&mut buf) {
            Ok(0) => false,
            Ok(n) => {
                self.raw.extend_from_slice(&buf[..n]);
                true
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                true
            }
            Err(_) => false,
        }
    }

    /// Moves complete chunk data from `raw` into `body`; panics on broken framing.
    fn dechunk(&mut self) {
        if !self.chunked {
            self.body.append(&mut self.raw);
            return;
        }
        loop {
            if self.ended {
                return;
            }
            if self.chunk_left > 0 {
                let n = self.chunk_left.min(self.raw.len());
                self.body.extend(self.raw.drain(..n));
                self.chunk_left -= n;
                if self.chunk_left > 0 {
                    return;
                }
                self.need_crlf = true;
            }
            if self.need_crlf {
                if self.raw.len() < 2 {
                    return;
                }
                assert_eq!(&self.raw[..2], b"\r\n", "chunk data not followed by CRLF");
                self.raw.drain(..2);
                self.need_crlf = false;
            }
            let Some(eol) = self.raw.windows(2).position(|w| w == b"\r\n") else {
                return;
            };
            let line = String::from_utf8_lossy(&self.raw[..eol]).into_owned();
            let size = usize::from_str_radix(line.trim(), 16)
                .unwrap_or_else(|_| panic!("bad chunk size line {line:?}"));
            if size == 0 {
                if self.raw.len() < eol + 4 {
                    return;
                }
                assert_eq!(&self.raw[eol + 2..eol + 4], b"\r\n", "bad last chunk");
                self.raw.drain(..eol + 4);
                self.ended = true;
                return;
            }
            self.raw.drain(..eol + 2);
            self.chunk_left = size;
        }
    }

    /// Complete tags parsed from the body so far.
    fn parse(&mut self, out: &mut Vec<Tag>) {
        if !self.header_seen {
            if self.body.len() < 13 {
                return;
            }
            assert_eq!(&self.body[..3], b"FLV", "no FLV header");
            assert_eq!(&self.body[5..9], &[0, 0, 0, 9]);
            assert_eq!(&self.body[9..13], &[0, 0, 0, 0], "PreviousTagSize0");
            self.flags = self.body[4];
            self.body.drain(..13);
            self.header_seen = true;
        }
        loop {
            if self.body.len() < 11 {
                return;
            }
            let b = &self.body;
            let len = u32::from_be_bytes([0, b[1], b[2], b[3]]) as usize;
            if b.len() < 15 + len {
                return;
            }
            let ts = u32::from_be_bytes([b[7], b[4], b[5], b[6]]);
            let prev = u32::from_be_bytes([b[11 + len], b[12 + len], b[13 + len], b[14 + len]]);
            assert_eq!(prev as usize, 11 + len, "PreviousTagSize of a tag");
            out.push(Tag {
                kind: b[0],
                timestamp: ts,
                body: b[11..11 + len].to_vec(),
            });
            self.body.drain(..15 + len);
        }
    }

    /// Reads tags for `duration`, or until the connection closes; returns them and whether
    /// the connection was closed.
    fn read_for(&mut self, duration: Duration) -> (Vec<Tag>, bool) {
        let deadline = Instant::now() + duration;
        let mut tags = Vec::new();
        let mut closed = false;
        while Instant::now() < deadline {
            if !self.fill() {
                closed = true;
            }
            self.dechunk();
            self.parse(&mut tags);
            if closed {
                if !self.chunked {
                    self.ended = true;
                }
                break;
            }
        }
        (tags, closed)
    }
}

/// The span of video timestamps in `tags`, in ms.
fn video_span(tags: &[Tag]) -> u32 {
    let ts: Vec<u32> = tags
        .iter()
        .filter(|t| t.is_coded_video())
        .map(|t| t.timestamp)
        .collect();
    match (ts.iter().min(), ts.iter().max()) {
        (Some(a), Some(b)) => b - a,
        _ => 0,
    }
}

/// Checks the start of a body: metadata, the AVC and AAC sequence headers, then video that
/// starts at a keyframe (the GOP cache), and both kinds of media.
fn assert_starts_like_a_player_needs(tags: &[Tag]) {
    let kinds: Vec<(u8, bool)> = tags
        .iter()
        .take(3)
        .map(|t| (t.kind, t.is_sequence_header()))
        .collect();
    assert_eq!(
        kinds,
        [(18, false), (9, true), (8, true)],
        "metadata then sequence headers first"
    );
    assert!(
        String::from_utf8_lossy(&tags[0].body).contains("onMetaData"),
        "the script tag is onMetaData"
    );
    let first_video = tags.iter().find(|t| t.is_coded_video()).expect("video");
    assert!(
        first_video.is_video_keyframe(),
        "video must start at a keyframe (GOP cache)"
    );
    assert!(tags.iter().any(|t| t.kind == 8 && !t.is_sequence_header()));
}

// ---------------------------------------------------------------------------------------------

#[test]
fn ffmpeg_decodes_http_flv_video_and_audio_at_the_published_size() {
    let server = start("", "");
    let mut publisher = publish_and_wait(&server, "cam", 20);
    thread::sleep(Duration::from_millis(1500));
    let url = server.http_url(&flv_path("cam"));
    let streams = probe_streams(&url).expect("ffprobe reads the HTTP-FLV URL");
    let (w, h) = VIDEO_SIZE.split_once('x').unwrap();
    assert!(
        streams
            .iter()
            .any(|s| s.contains("h264") && s.contains(w) && s.contains(h)),
        "video stream of the published size: {streams:?}"
    );
    assert!(
        streams.iter().any(|s| s.contains("aac")),
        "audio: {streams:?}"
    );
    let played = play_decode(&url, 5);
    played.assert_decoded(4.0, "HTTP-FLV player");
    assert!(played.kept_frames(25.0), "frames lost: {played:#?}");
    publisher.kill();
    server.finish();
}

#[test]
fn ffmpeg_decodes_http_flv_over_https() {
    let certs = TestPrefix::new();
    let (cert, key) = common::backend::self_signed_cert(&certs.0, "flv");
    let tls_port = free_port();
    let http = format!(
        "listen 127.0.0.1:{tls_port} ssl;\n\
         ssl_certificate {};\n\
         ssl_certificate_key {};\n\
         {FLV_LOCATION}",
        cert.display(),
        key.display()
    );
    let server = Server::start(&live_rtmp_block("", ""), &http);
    let mut publisher = publish_and_wait(&server, "cam", 20);
    thread::sleep(Duration::from_millis(1500));
    // ffmpeg does not verify the certificate unless told to.
    let url = format!("https://127.0.0.1:{tls_port}{}", flv_path("cam"));
    let played = play_decode(&url, 4);
    played.assert_decoded(3.0, "HTTP-FLV player over TLS");
    assert!(played.kept_frames(25.0), "frames lost: {played:#?}");
    publisher.kill();
    server.finish();
}

#[test]
fn the_body_is_chunked_flv_from_the_cached_keyframe_and_ends_with_the_publish() {
    let server = start("", "");
    let mut publisher = publish_and_wait(&server, "k", 6);
    // Join mid-GOP (1 s GOPs): the body must still start at a keyframe.
    thread::sleep(Duration::from_millis(2400));
    let mut r = FlvReader::open(server.http_port, &flv_path("k"), "1.1");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("video/x-flv"));
    assert!(r.chunked, "HTTP/1.1: chunked ({:?})", r.headers);
    assert_eq!(r.header("content-length"), None);
    let (tags, _) = r.read_for(Duration::from_secs(2));
    assert_eq!(r.flags, 5, "the FLV header says audio and video");
    assert_starts_like_a_player_needs(&tags);
    // The publisher stops after 6 s: the response ends with the last chunk, and the
    // connection may stay (keep-alive).
    let (more, _) = r.read_for(Duration::from_secs(10));
    assert!(
        r.ended,
        "the body did not end with the last chunk after the publisher left"
    );
    assert!(video_span(&tags) + video_span(&more) >= 1000);
    publisher.kill();

    // HTTP/1.0: the same body, delimited by the connection's close.
    let mut publisher = publish_and_wait(&server, "k2", 5);
    thread::sleep(Duration::from_millis(1500));
    let mut r = FlvReader::open(server.http_port, &flv_path("k2"), "1.0");
    assert_eq!(r.status, 200);
    assert!(!r.chunked);
    let (tags, closed) = r.read_for(Duration::from_secs(12));
    assert!(closed, "the HTTP/1.0 body ends with the connection");
    assert_starts_like_a_player_needs(&tags);
    publisher.kill();
    server.finish();
}

#[test]
fn bad_arguments_answer_400_and_unknown_applications_or_ports_404() {
    let server = start("", "");
    let status = |path: &str| {
        common::hls::http_get(server.http_port, path)
            .map(|r| r.status)
            .unwrap_or(0)
    };
    assert_eq!(status("/live?app=live"), 400);
    assert_eq!(status("/live?stream=x"), 400);
    assert_eq!(status("/live"), 400);
    assert_eq!(status("/live?app=live&stream=x&port=notaport"), 400);
    assert_eq!(status("/live?app=nope&stream=x"), 404);
    assert_eq!(status("/live?app=live&stream=x&port=1"), 404);
    assert_eq!(status("/live?app=live&stream=..%2Fx"), 400);
    let head =
        common::hls::http_request(server.http_port, "HEAD", &flv_path("x"), &[]).expect("HEAD");
    assert_eq!(head.status, 200);
    assert!(head
        .headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("content-type") && v == "video/x-flv"));
    let post =
        common::hls::http_request(server.http_port, "POST", &flv_path("x"), &[]).expect("POST");
    assert_eq!(post.status, 405);
    let options = common::hls::http_request(server.http_port, "OPTIONS", &flv_path("x"), &[])
        .expect("OPTIONS");
    assert_eq!(options.status, 204);
    assert!(options
        .headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("allow") && v.contains("GET")));
    server.finish();
}

#[test]
fn on_play_is_asked_with_the_request_arguments_and_a_denial_is_403() {
    let backend = Backend::start();
    let app_extra = format!(
        "on_play {}; on_play_done {};",
        backend.url("/auth"),
        backend.url("/allow")
    );
    let server = start("", &app_extra);
    let mut publisher = publish_and_wait(&server, "s", 15);
    let denied = common::hls::http_get(server.http_port, "/live?app=live&stream=s&key=bad")
        .expect("request");
    assert_eq!(denied.status, 403);
    let mut r = FlvReader::open(server.http_port, "/live?app=live&stream=s&key=good", "1.1");
    assert_eq!(r.status, 200);
    let (tags, _) = r.read_for(Duration::from_secs(2));
    assert_starts_like_a_player_needs(&tags);
    let calls = backend.wait_calls("play", 2, Duration::from_secs(5));
    assert_eq!(calls.len(), 2, "{}", backend.summary());
    let ok = &calls[1];
    assert_eq!(ok.field("app"), Some("live"));
    assert_eq!(ok.field("name"), Some("s"));
    assert_eq!(ok.field("addr"), Some("127.0.0.1"));
    assert_eq!(ok.field("key"), Some("good"));
    assert_eq!(ok.field("flashver"), Some("flv_live 1.1"));
    drop(r);
    let done = backend.wait_calls("play_done", 1, Duration::from_secs(5));
    assert_eq!(done.len(), 1, "on_play_done when the client leaves");
    assert_eq!(done[0].field("name"), Some("s"));
    publisher.kill();
    server.finish();
}

#[test]
fn on_update_is_called_for_http_flv_players_as_for_rtmp_ones() {
    let backend = Backend::with_update_allowed(usize::MAX);
    let app_extra = format!(
        "on_update {}; notify_update_timeout 1s;",
        backend.url("/update")
    );
    let server = start("", &app_extra);
    let mut publisher = publish_and_wait(&server, "s", 15);
    let mut r = FlvReader::open(server.http_port, &flv_path("s"), "1.1");
    assert_eq!(r.status, 200);
    let (tags, closed) = r.read_for(Duration::from_millis(3500));
    assert!(!closed && !tags.is_empty());
    let plays: Vec<_> = backend
        .calls("update_play")
        .into_iter()
        .filter(|c| c.field("name") == Some("s"))
        .collect();
    assert!(plays.len() >= 2, "{}", backend.summary());
    assert_eq!(plays[0].field("app"), Some("live"));
    assert_eq!(plays[0].field("flashver"), Some("flv_live 1.1"));
    // Each update says how long the player has played.
    let times: Vec<u64> = plays.iter().filter_map(|c| c.number("time")).collect();
    assert!(times.windows(2).all(|w| w[0] < w[1]), "{times:?}");
    drop(r);
    publisher.kill();
    server.finish();
}

#[test]
fn stat_lists_http_flv_players_and_control_drop_ends_them() {
    let server = start("", "");
    let mut publisher = publish_and_wait(&server, "st", 20);
    let mut r = FlvReader::open(server.http_port, &flv_path("st"), "1.1");
    assert_eq!(r.status, 200);
    r.read_for(Duration::from_millis(1500));
    let stat = common::hls::http_get(server.http_port, "/stat?format=json").expect("stat");
    let v: serde_json::Value = serde_json::from_slice(&stat.body).expect("stat JSON");
    let streams = &v["servers"][0]["applications"][0]["streams"];
    let stream = streams
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == "st"))
        .unwrap_or_else(|| panic!("stream in /stat: {v:#}"));
    let clients = stream["clients"].as_array().expect("clients");
    let flv = clients
        .iter()
        .find(|c| c["flashver"] == "flv_live 1.1")
        .unwrap_or_else(|| panic!("HTTP-FLV client in /stat: {stream:#}"));
    assert_eq!(flv["publishing"], false);
    assert_eq!(stream["nclients"], 2, "publisher and the HTTP-FLV player");
    let drop = common::hls::http_get(
        server.http_port,
        "/control/drop/subscriber?app=live&name=st",
    )
    .expect("control");
    assert_eq!(String::from_utf8_lossy(&drop.body).trim(), "1");
    let (_, closed) = r.read_for(Duration::from_secs(5));
    assert!(closed, "/control drop ends the response");
    publisher.kill();
    server.finish();
}

#[test]
fn a_stream_published_in_one_worker_plays_over_http_flv_from_the_other() {
    let server = Launch::workers(2).start(
        &live_rtmp_block("", "").replace("{RTMP_PORT};", "{RTMP_PORT} reuseport;"),
        FLV_LOCATION,
    );
    let offset = server.log_len();
    let mut publisher = publish(&server.rtmp_url("live/mw"), 25);
    assert!(server.wait_for_log(offset, "publish \"live/mw\"", Duration::from_secs(10)));
    let publisher_pid = worker_of(&server.log_since(offset), "publish \"live/mw\"");
    thread::sleep(Duration::from_millis(1200));
    // reuseport spreads connections: retry until one lands on the other worker.
    for _ in 0..40 {
        let offset = server.log_len();
        let mut r = FlvReader::open(server.http_port, &flv_path("mw"), "1.1");
        assert_eq!(r.status, 200);
        assert!(server.wait_for_log(offset, "play \"live/mw\"", Duration::from_secs(5)));
        let pid = worker_of(&server.log_since(offset), "play \"live/mw\"");
        if pid == publisher_pid {
            continue;
        }
        let (tags, closed) = r.read_for(Duration::from_secs(3));
        assert!(!closed);
        assert_starts_like_a_player_needs(&tags);
        assert!(
            video_span(&tags) >= 2000,
            "3 s of reading gave {} ms of video",
            video_span(&tags)
        );
        drop(r);
        publisher.kill();
        server.finish();
        return;
    }
    panic!("no HTTP-FLV request reached the other worker in 40 tries");
}

/// The worker pid of the first log line containing `needle`.
fn worker_of(log: &str, needle: &str) -> u32 {
    let line = log
        .lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no {needle:?} in:\n{log}"));
    line.split_whitespace()
        .nth(3)
        .and_then(|p| p.split('#').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no pid in {line:?}"))
}

#[test]
fn a_stalled_http_flv_reader_is_dropped_and_an_rtmp_player_keeps_its_pace() {
    let server = start("timeout 4s;", "");
    let url = server.rtmp_url("live/slow");
    // 16 Mbit/s (filler included): socket buffers fill in a second or two.
    let mut publisher = publish_cbr(&url, 30, "16M");
    thread::sleep(Duration::from_millis(1000));
    let addr: SocketAddr = format!("127.0.0.1:{}", server.http_port).parse().unwrap();
    let small = common::client::connect_small_rcvbuf(addr, 4096).expect("connect");
    let offset = server.log_len();
    let mut slow = FlvReader::over(small, &flv_path("slow"), "1.1");
    assert_eq!(slow.status, 200);
    // From here on it reads nothing.
    let mut player = RtmpClient::connect(&server.rtmp_addr(), "live").expect("rtmp player");
    player.play("slow").expect("play");
    let arrivals = player.media_arrivals_for(Duration::from_secs(10));
    let worst = arrivals
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default();
    assert!(
        arrivals.len() > 300,
        "the RTMP player got {} messages",
        arrivals.len()
    );
    assert!(
        worst < Duration::from_millis(1000),
        "the RTMP player stalled for {worst:?} next to a stalled HTTP-FLV reader"
    );
    assert!(
        server.wait_for_log(
            offset,
            "behind the stream (timeout); dropped",
            Duration::from_secs(10)
        ),
        "the stalled reader was not dropped:\n{}",
        server.log_since(offset)
    );
    let dropped_lines = server
        .log_since(offset)
        .lines()
        .filter(|l| l.contains("behind the stream"))
        .count();
    assert_eq!(dropped_lines, 1, "one log line for the drop");
    // What is still buffered drains, then the connection is closed.
    let (_, closed) = slow.read_for(Duration::from_secs(10));
    assert!(closed, "the stalled reader's connection was not closed");
    drop(player);
    publisher.kill();
    server.finish();
}

// ---------------------------------------------------------------------------------------------
// mpegts.js in Debian's Chromium

/// Median end-to-end latency mpegts.js must keep (the acceptance bound).
const MAX_MEDIAN_LATENCY_S: f64 = 1.5;

#[test]
fn mpegts_js_in_chromium_plays_http_flv_with_a_median_latency_under_1_5_s() {
    let browser_dir = manifest_dir().join("tests/browser");
    let mpegts = browser_dir.join("node_modules/mpegts.js/dist/mpegts.js");
    assert!(
        browser_dir.join("node_modules/playwright-core").is_dir() && mpegts.is_file(),
        "tests/browser has no node_modules (or no mpegts.js): run: npm ci --prefix tests/browser"
    );
    assert!(
        std::path::Path::new("/usr/bin/chromium").is_file(),
        "Debian's chromium is missing: apt-get install chromium (scripts/test.sh does)"
    );
    let player = format!(
        "{FLV_LOCATION}\n\
         location /player/ {{\n\
         \x20   alias {dir}/;\n\
         \x20   types {{ text/html html; application/javascript js; }}\n\
         }}\n\
         location = /player/mpegts.js {{\n\
         \x20   alias {mpegts};\n\
         \x20   default_type application/javascript;\n\
         }}\n",
        dir = browser_dir.display(),
        mpegts = mpegts.display(),
    );
    let server = Server::start(&live_rtmp_block("", ""), &player);
    let unix_ms = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
    };
    // The publisher's timestamp 0 is captured after it starts: taking the spawn time as t0
    // can only overstate the latency (by ffmpeg's start-up).
    let t0 = unix_ms();
    let offset = server.log_len();
    let secs = 45;
    let mut publisher = publish(&server.rtmp_url("live/lat"), secs);
    assert!(server.wait_for_log(offset, "publish \"live/lat\"", Duration::from_secs(10)));
    let published_ms = unix_ms() - t0;
    thread::sleep(Duration::from_millis(1000));
    let src = format!(
        "http://127.0.0.1:{}/live?app=live%26stream=lat",
        server.http_port
    );
    let page = format!(
        "http://127.0.0.1:{}/player/flv.html?src={src}&t0={t0}",
        server.http_port
    );
    let r = common::hls::run_browser(&page, 22);
    println!("browser: {}\nnode stderr:\n{}", r.json.trim(), r.stderr);
    let v: serde_json::Value = serde_json::from_str(r.json.trim()).expect("play.mjs JSON");
    let samples: Vec<f64> = v["extra"]["samples"]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x.as_f64()).collect())
        .unwrap_or_default();
    let mut sorted = samples.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted.get(sorted.len() / 2).copied();
    println!(
        "mpegts.js HTTP-FLV latency: median {median:?} s over {} samples (min {:?}, max {:?}); \
         the publish was seen {published_ms} ms after ffmpeg was spawned",
        samples.len(),
        sorted.first(),
        sorted.last()
    );
    assert!(
        r.status.is_some_and(|s| s.success()),
        "node play.mjs failed ({:?}):\n{}\n{}",
        r.status,
        r.json,
        r.stderr
    );
    assert_eq!(v["errorCount"], 0, "mpegts.js reported errors: {}", r.json);
    assert!(
        v["advanced"].as_f64().is_some_and(|a| a >= 15.0),
        "video.currentTime advanced {:?} s in 22 s: {}",
        v["advanced"],
        r.json
    );
    assert!(
        samples.len() >= 40,
        "too few latency samples ({}): {}",
        samples.len(),
        r.json
    );
    assert!(
        median.is_some_and(|m| m <= MAX_MEDIAN_LATENCY_S),
        "median latency {median:?} s > {MAX_MEDIAN_LATENCY_S} s: {}",
        r.json
    );
    publisher.kill();
    server.finish();
}

#[test]
fn port_picks_the_rtmp_server_listening_there() {
    let second = free_port();
    let block = format!(
        "rtmp {{\n\
         \x20   server {{ listen 127.0.0.1:{{RTMP_PORT}}; application live {{ live on; idle_streams off; }} }}\n\
         \x20   server {{ listen 127.0.0.1:{second}; application live {{ live on; idle_streams off; }} }}\n\
         }}\n"
    );
    let server = Server::start(&block, FLV_LOCATION);
    let offset = server.log_len();
    let mut publisher = publish(&format!("rtmp://127.0.0.1:{second}/live/p"), 15);
    assert!(server.wait_for_log(offset, "publish \"live/p\"", Duration::from_secs(10)));
    thread::sleep(Duration::from_millis(1200));
    // Without port=: the first server, where nobody publishes it (idle_streams off: 404).
    let first = common::hls::http_get(server.http_port, &flv_path("p")).expect("request");
    assert_eq!(first.status, 404);
    let mut r = FlvReader::open(
        server.http_port,
        &format!("{}&port={second}", flv_path("p")),
        "1.1",
    );
    assert_eq!(r.status, 200);
    let (tags, _) = r.read_for(Duration::from_secs(2));
    assert_starts_like_a_player_needs(&tags);
    drop(r);
    publisher.kill();
    server.finish();
}
