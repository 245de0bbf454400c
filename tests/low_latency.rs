//! Low-latency HLS (issue #16) with real players: nginx with `hls_low_latency on` (1 s
//! fragments, 333 ms parts) and an ffmpeg publisher (H.264 with a 1 s GOP + AAC, `-re`).
//!
//! - hls.js (`lowLatencyMode`, its default) in Debian's Chromium plays the stream for 60 s:
//!   it loads parts, the median latency (now minus the PROGRAM-DATE-TIME of the playing frame,
//!   which the server stamps with the wall clock the frame arrived at) is at most 2.0 s, and
//!   no stall (a `waiting` period, or `currentTime` frozen while playing) lasts over 0.5 s.
//! - Players that know nothing of LL-HLS play the same stream: ffmpeg decodes the HLS URL,
//!   m3u8-rs parses the media playlists (every part and segment they list is served), VLC 3.0
//!   and GStreamer 1.22 (playbin3) play it for 10 s (frames, audio, H.264 at 320x240).
//!
//! The browser case fails (or skips with `RTMP_TESTS_ALLOW_SKIP=1`) when Chromium, Node.js
//! or tests/browser/node_modules is missing. Expected failures with `RTMP_IT_TARGET=c`: all
//! (the C module has no LL-HLS).

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use common::browser::{check_low_latency_run, num, player_locations};
use common::ffmpeg::{play_decode, publish, VIDEO_FPS};
use common::hls::{access_log_errors, hls_rtmp_block, run_browser, Checks};
use common::players::{need_gst, need_vlc, play_gst, play_vlc};
use common::*;

/// The application's HLS settings: 1 s segments (the publisher's GOP), parts of the default
/// 333 ms, a 6 s window.
const LL_APP: &str = "hls_fragment 1s; hls_playlist_length 6s; hls_low_latency on;";
/// How long hls.js plays, and how long play.mjs runs (startup included).
const BROWSER_RUN_SECS: u32 = 64;
const MIN_PLAYING_MS: f64 = 58_000.0;
/// The bar of the issue.
const MAX_MEDIAN_LATENCY_S: f64 = 2.0;
const MAX_STALL_MS: f64 = 500.0;
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// The http side: the HLS directory with the MIME types of fMP4 HLS, and the player pages
/// (tests/browser, hls.js from npm) on the same origin.
fn http_locations() -> String {
    format!(
        "location /hls/ {{\n\
         \x20   alias {{PREFIX}}/tmp/;\n\
         \x20   rtmp_low_latency on;\n\
         \x20   types {{ application/vnd.apple.mpegurl m3u8; video/mp4 m4s m4v; audio/mp4 m4a; }}\n\
         \x20   add_header Cache-Control no-cache;\n\
         }}\n{}",
        player_locations()
    )
}

fn start() -> Server {
    Server::start(&hls_rtmp_block(&[("live", LL_APP)]), &http_locations())
}

/// Waits until the video media playlist lists `segments` whole segments and some parts.
fn wait_ready(server: &Server, segments: usize) -> Result<String, String> {
    let path = server.prefix.join("tmp/live/cam-video.m3u8");
    let deadline = Instant::now() + READY_TIMEOUT;
    let mut text = String::new();
    while Instant::now() < deadline {
        text = std::fs::read_to_string(&path).unwrap_or_default();
        if text.matches("#EXTINF:").count() >= segments && text.contains("#EXT-X-PART:") {
            return Ok(text);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!(
        "{} never listed {segments} segments and parts:\n{text}\n{}",
        path.display(),
        server.error_log()
    ))
}

/// GETs `url` (plain HTTP/1.0 over loopback): (status, body).
fn get(url: &str) -> (u16, Vec<u8>) {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").expect("http URL");
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut s = std::net::TcpStream::connect(host).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let head_end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(buf.len(), |p| p + 4);
    let status = String::from_utf8_lossy(&buf[..head_end])
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, buf[head_end..].to_vec())
}

#[test]
fn hls_js_plays_ll_hls_under_two_seconds_behind_the_publisher() {
    let test = "hls_js_plays_ll_hls_under_two_seconds_behind_the_publisher";
    let dir = manifest_dir().join("tests/browser");
    let chromium = std::env::var("CHROMIUM_PATH").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).is_file()
        || !dir.join("node_modules/playwright-core").is_dir()
        || !dir.join("node_modules/hls.js/dist/hls.min.js").is_file()
    {
        skip_or_fail(
            test,
            "no Chromium or tests/browser/node_modules (scripts/test.sh installs them)",
        );
        return;
    }
    let server = start();
    let mut publisher = publish(&server.rtmp_url("live/cam"), 3 * BROWSER_RUN_SECS + 30);
    let mut checks = Checks::new();
    if let Some(listing) = checks.ok(wait_ready(&server, 2)) {
        println!("ready:\n{listing}");
        // trace=1: the loads and stalls are in the output, to tell a late part from the player.
        let page = format!(
            "{}?trace=1&src={}",
            server.http_url("/player/index.html"),
            server.http_url("/hls/live/cam.m3u8")
        );
        hls_js_run(&mut checks, &page);
    }
    publisher.kill();
    if !checks.is_empty() {
        print_access_log(&server);
    }
    checks.finish(server);
}

/// One 60 s hls.js run of `page`, judged by the bars.
fn hls_js_run(checks: &mut Checks, page: &str) {
    {
        let r = run_browser(page, BROWSER_RUN_SECS);
        println!("browser: {}\nnode stderr:\n{}", r.json.trim(), r.stderr);
        match serde_json::from_str::<Value>(r.json.trim()) {
            Ok(v) => {
                // hls.js reports every short stall as a non-fatal bufferStalledError: stalls
                // are judged by their length below.
                let errors = v.get("errors").and_then(Value::as_array);
                let serious = |e: &&Value| {
                    e.get("fatal") != Some(&Value::Bool(false))
                        || e.get("details").and_then(Value::as_str) != Some("bufferStalledError")
                };
                checks.check(
                    errors.is_some_and(|e| !e.iter().any(|e| serious(&e))),
                    || format!("hls.js errors: {}", v["errors"]),
                );
                let parts = num(&v, &["partsLoaded"]).unwrap_or(0.0);
                checks.check(parts >= 100.0, || {
                    format!("hls.js loaded {parts} parts: it did not play LL-HLS")
                });
                check_low_latency_run(
                    checks,
                    &v,
                    "pdtLatency",
                    MIN_PLAYING_MS,
                    MAX_STALL_MS,
                    MAX_MEDIAN_LATENCY_S,
                );
            }
            Err(e) => checks.fail(format!("play.mjs printed no JSON ({e}): {}", r.json)),
        }
    }
}

/// What the players asked for that was not a plain 200 (to see what a failure came from).
fn print_access_log(server: &Server) {
    let log = read_lossy(&server.prefix.join("logs/access.log"));
    let lines: Vec<&str> = log.lines().collect();
    println!("access log: {} requests; not 200:", lines.len());
    for l in lines.iter().filter(|l| !l.contains("\" 200 ")) {
        println!("{l}");
    }
}

/// Every playlist the server gives for 8 s (plain, delta updates, blocking reloads, the
/// multivariant one), sampled at odd moments, passes hls-parser's strict mode: an independent
/// implementation of RFC 8216bis and Apple's LL-HLS rules, where any broken rule is an error.
#[test]
fn every_playlist_passes_a_strict_rfc_8216bis_parser() {
    let test = "every_playlist_passes_a_strict_rfc_8216bis_parser";
    let dir = manifest_dir().join("tests/browser");
    if !dir.join("node_modules/hls-parser").is_dir() {
        skip_or_fail(
            test,
            "no tests/browser/node_modules (scripts/test.sh installs them)",
        );
        return;
    }
    let server = start();
    let mut publisher = publish(&server.rtmp_url("live/cam"), 30);
    let mut checks = Checks::new();
    if checks.ok(wait_ready(&server, 3)).is_some() {
        let out = server.prefix.join("validate");
        std::fs::create_dir_all(&out).unwrap();
        let mut files = Vec::new();
        let end = Instant::now() + Duration::from_secs(8);
        let mut n = 0;
        while Instant::now() < end {
            let (_, plain) = get(&server.http_url("/hls/live/cam-video.m3u8"));
            let next = parse_ll(&String::from_utf8_lossy(&plain)).map(|v| v.next);
            let mut urls = vec![
                "/hls/live/cam-audio.m3u8".to_owned(),
                "/hls/live/cam-video.m3u8?_HLS_skip=YES".to_owned(),
                "/hls/live/cam-audio.m3u8?_HLS_skip=v2".to_owned(),
                "/hls/live/cam.m3u8".to_owned(),
            ];
            if let Some((msn, part)) = next {
                urls.push(format!(
                    "/hls/live/cam-video.m3u8?_HLS_msn={msn}&_HLS_part={part}&_HLS_skip=YES"
                ));
            }
            let mut bodies = vec![("/hls/live/cam-video.m3u8".to_owned(), 200, plain)];
            for url in urls {
                let (status, body) = get(&server.http_url(&url));
                bodies.push((url, status, body));
            }
            for (url, status, body) in bodies {
                checks.check(status == 200, || format!("{url}: {status}"));
                let file = out.join(format!("{n:04}.m3u8"));
                std::fs::write(&file, &body).unwrap();
                files.push((url, file));
                n += 1;
            }
            std::thread::sleep(Duration::from_millis(137));
        }
        let args: Vec<String> = files.iter().map(|(_, f)| f.display().to_string()).collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = common::hls::run_node("validate-hls.mjs", &args, Duration::from_secs(60));
        match serde_json::from_str::<Value>(r.json.trim()) {
            Ok(v) => {
                let mut bad = 0;
                for (url, file) in &files {
                    let verdict = v[file.display().to_string()].as_str().unwrap_or("missing");
                    if verdict != "ok" {
                        bad += 1;
                        if bad <= 5 {
                            let text = std::fs::read_to_string(file).unwrap_or_default();
                            checks.fail(format!("{url}: {verdict}\n{text}"));
                        }
                    }
                }
                println!("{} playlists checked, {bad} refused", files.len());
                checks.check(files.len() >= 100, || format!("{} playlists", files.len()));
            }
            Err(e) => checks.fail(format!(
                "validate-hls.mjs printed no JSON ({e}): {}",
                r.json
            )),
        }
    }
    publisher.kill();
    checks.finish(server);
}

#[test]
fn players_without_ll_hls_play_the_same_stream() {
    let server = start();
    let mut publisher = publish(&server.rtmp_url("live/cam"), 30);
    let mut checks = Checks::new();
    if let Some(listing) = checks.ok(wait_ready(&server, 3)) {
        println!("ready:\n{listing}");
        let r = play_decode(&server.http_url("/hls/live/cam.m3u8"), 6);
        checks.check(r.ok && r.decoded_seconds >= 5.0 && r.frames >= 100, || {
            format!(
                "ffmpeg decoded {:.2} s, {} frames of the LL-HLS stream:\n{}",
                r.decoded_seconds, r.frames, r.stderr
            )
        });
        for media in ["cam-video.m3u8", "cam-audio.m3u8"] {
            let (status, body) = get(&server.http_url(&format!("/hls/live/{media}")));
            checks.check(status == 200, || format!("{media}: {status}"));
            let text = String::from_utf8_lossy(&body).into_owned();
            match m3u8_rs::parse_media_playlist_res(&body) {
                Ok(p) => {
                    checks.check(p.segments.len() >= 3, || {
                        format!("m3u8-rs found {} segments in\n{text}", p.segments.len())
                    });
                }
                Err(e) => checks.fail(format!("m3u8-rs cannot parse {media} ({e:?}):\n{text}")),
            }
            // Every segment, init segment and part the playlist names is served.
            let mut uris: Vec<String> = text
                .lines()
                .filter(|l| !l.starts_with('#') && !l.is_empty())
                .map(str::to_owned)
                .collect();
            for l in text
                .lines()
                .filter(|l| l.starts_with("#EXT-X-PART:") || l.starts_with("#EXT-X-MAP:"))
            {
                if let Some(uri) = l.split("URI=\"").nth(1).and_then(|r| r.split('"').next()) {
                    uris.push(uri.to_owned());
                }
            }
            checks.check(text.contains("#EXT-X-PART:"), || {
                format!("no parts in\n{text}")
            });
            for uri in uris {
                let (status, body) = get(&server.http_url(&format!("/hls/live/{uri}")));
                checks.check(status == 200 && !body.is_empty(), || {
                    format!("{uri} (listed by {media}): {status}")
                });
            }
        }
    }
    publisher.kill();
    checks.finish(server);
}

// ---------------------------------------------------------------------------------------------
// Native players that know nothing of LL-HLS: VLC and GStreamer (tests/common/players.rs)

/// How long VLC and GStreamer play the LL-HLS stream.
const NATIVE_PLAY: Duration = Duration::from_secs(10);
/// Seconds of media the publisher sends for them: readiness, startup and playing fit in it.
const NATIVE_PUBLISH_SECS: u32 = 40;
/// The published picture (`common::ffmpeg::VIDEO_SIZE`).
const NATIVE_SIZE: (u32, u32) = (320, 240);

/// The LL server with a publisher on `live/cam` (H.264 320x240 at 25 fps, 1 s GOP, + AAC);
/// once its video playlist lists 3 segments, `play` plays `/hls/live/cam.m3u8` (the
/// multivariant playlist) and checks what it got. Then the publisher must still run (the
/// player played a live stream), no request under /hls/ may have failed, and nginx must stop
/// with a clean log.
fn native_case(play: impl FnOnce(&str, &mut Checks)) {
    let started = Instant::now();
    let server = start();
    let mut publisher = publish(&server.rtmp_url("live/cam"), NATIVE_PUBLISH_SECS);
    let mut checks = Checks::new();
    if let Some(listing) = checks.ok(wait_ready(&server, 3)) {
        println!("ready:\n{listing}");
        play(&server.http_url("/hls/live/cam.m3u8"), &mut checks);
    }
    checks.check(publisher.is_running(), || {
        format!(
            "the publisher ended before the player was done ({:?}): {}",
            publisher.status(),
            publisher.stderr()
        )
    });
    publisher.kill();
    let errors = access_log_errors(&server, "/hls/");
    checks.check(errors.is_empty(), || {
        format!("HTTP errors the player got:\n{}", errors.join("\n"))
    });
    if !checks.is_empty() {
        print_access_log(&server);
    }
    println!("{:.1} s", started.elapsed().as_secs_f64());
    checks.finish(server);
}

#[test]
fn vlc_plays_ll_hls() {
    if need_vlc("vlc_plays_ll_hls").is_none() {
        return;
    }
    native_case(|url, checks| {
        play_vlc(url, NATIVE_PLAY).check(
            checks,
            "LL-HLS",
            &format!("VLC playing H.264 + AAC LL-HLS ({url})"),
            "H264",
            NATIVE_SIZE,
            u64::from(VIDEO_FPS) * 5,
        );
    });
}

#[test]
fn gstreamer_plays_ll_hls() {
    let elements = ["playbin3", "hlsdemux2", "avdec_h264", "fakesink"];
    if need_gst("gstreamer_plays_ll_hls", &elements).is_none() {
        return;
    }
    native_case(|url, checks| {
        play_gst(url, NATIVE_PLAY + Duration::from_secs(2)).check(
            checks,
            "LL-HLS",
            &format!("GStreamer playbin3 playing H.264 + AAC LL-HLS ({url})"),
            "video/x-h264",
            NATIVE_SIZE,
            VIDEO_FPS as usize * 5,
        );
    });
}

// ---------------------------------------------------------------------------------------------
// LL-HLS clients as hls.js behaves, and a proxy_cache edge (nginx-conf/edge.conf)

/// What a client needs from a media playlist: the (msn, part) to ask for next, and each part
/// with the wall clock (Unix ms, from PROGRAM-DATE-TIME and the durations before it) its
/// media ends at.
#[derive(Debug, Default)]
struct LlView {
    next: (u64, u64),
    /// (msn, part index, URI, end of its media in Unix ms)
    parts: Vec<(u64, u64, String, f64)>,
}

fn parse_ms_time(pdt: &str) -> Option<f64> {
    // 2026-12-07T00:49:14.024Z
    let (date, time) = pdt.trim_end_matches('Z').split_once('T')?;
    let d: Vec<i64> = date.split('-').filter_map(|x| x.parse().ok()).collect();
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let t: Vec<i64> = hms.split(':').filter_map(|x| x.parse().ok()).collect();
    if d.len() != 3 || t.len() != 3 {
        return None;
    }
    // Days since 1970-01-01 (civil calendar, Howard Hinnant's algorithm).
    let (y, m, day) = (d[0] - i64::from(d[1] <= 2), d[1], d[2]);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + t[0] * 3600 + t[1] * 60 + t[2];
    Some(secs as f64 * 1000.0 + format!("0.{frac}").parse::<f64>().ok()? * 1000.0)
}

fn parse_ll(text: &str) -> Option<LlView> {
    let attr = |line: &str, key: &str| -> Option<String> {
        let rest = line.split(&format!("{key}=")).nth(1)?;
        Some(match rest.strip_prefix('"') {
            Some(q) => q.split('"').next()?.to_owned(),
            None => rest.split(',').next()?.to_owned(),
        })
    };
    let mut msn = None;
    let mut clock: Option<f64> = None;
    let mut view = LlView::default();
    let mut part = 0u64;
    let mut lines = text.lines();
    while let Some(l) = lines.next() {
        if let Some(v) = l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
            msn = v.parse().ok();
        } else if let Some(v) = l.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:") {
            clock = parse_ms_time(v);
        } else if l.starts_with("#EXT-X-PART:") {
            let d: f64 = attr(l, "DURATION")?.parse().ok()?;
            // Parts move the clock; the segment after them does not again.
            let end = clock.map(|c| c + d * 1000.0);
            view.parts
                .push((msn?, part, attr(l, "URI")?, end.unwrap_or(0.0)));
            if let Some(c) = clock.as_mut() {
                *c += d * 1000.0;
            }
            part += 1;
        } else if let Some(v) = l.strip_prefix("#EXTINF:") {
            let d: f64 = v.trim_end_matches(',').parse().ok()?;
            lines.next();
            if part == 0 {
                if let Some(c) = clock.as_mut() {
                    *c += d * 1000.0;
                }
            }
            msn = Some(msn? + 1);
            part = 0;
        }
    }
    view.next = (msn?, part);
    Some(view)
}

/// One client for `secs`: the playlist once, then blocking reloads for the next part and
/// each new part, as hls.js does in low-latency mode. Returns, for each part it got, how
/// long after the end of its media it had it (ms).
fn ll_client(base: &str, playlist: &str, secs: u64) -> Result<Vec<f64>, String> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let (status, body) = get(&format!("{base}{playlist}"));
    if status != 200 {
        return Err(format!("{playlist}: {status}"));
    }
    let mut view = parse_ll(&String::from_utf8_lossy(&body)).ok_or("unparsable playlist")?;
    let mut done: std::collections::HashSet<String> =
        view.parts.iter().map(|p| p.2.clone()).collect();
    let mut delays = Vec::new();
    while Instant::now() < deadline {
        let (msn, part) = view.next;
        let url = format!("{base}{playlist}?_HLS_msn={msn}&_HLS_part={part}");
        let (status, body) = get(&url);
        if status != 200 {
            return Err(format!("{url}: {status}"));
        }
        view = parse_ll(&String::from_utf8_lossy(&body)).ok_or("unparsable playlist")?;
        for (_, _, uri, end_ms) in &view.parts {
            if done.insert(uri.clone()) {
                let (status, body) = get(&format!("{base}{uri}"));
                if status != 200 || body.is_empty() {
                    return Err(format!("{uri}: {status}"));
                }
                delays.push(now_unix_ms() - end_ms);
            }
        }
    }
    Ok(delays)
}

fn now_unix_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// nginx-conf/edge.conf (stock nginx, no module) in front of `origin_port`, on a free port.
struct Edge {
    child: std::process::Child,
    port: u16,
    // Removed with the edge.
    _prefix: TestPrefix,
}

impl Edge {
    fn start(origin_port: u16) -> Edge {
        let prefix = TestPrefix::new();
        let port = free_port();
        let text = std::fs::read_to_string(manifest_dir().join("nginx-conf/edge.conf"))
            .expect("nginx-conf/edge.conf");
        let user = if unsafe { libc::geteuid() } == 0 {
            "user root;\n"
        } else {
            ""
        };
        let text = format!("{user}{text}")
            .replace("listen 8081;", &format!("listen 127.0.0.1:{port};"))
            .replace(
                "server 127.0.0.1:8080;",
                &format!("server 127.0.0.1:{origin_port};"),
            );
        let conf = prefix.0.join("conf/edge.conf");
        std::fs::write(&conf, text).expect("write edge.conf");
        let child = std::process::Command::new(nginx_bin())
            .arg("-p")
            .arg(&prefix.0)
            .arg("-c")
            .arg(&conf)
            .args(["-g", "daemon off;"])
            // Its logs are files; its workers must not hold the test's output open.
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start the edge nginx");
        let deadline = Instant::now() + START_TIMEOUT;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the edge never listened");
            std::thread::sleep(Duration::from_millis(50));
        }
        Edge {
            child,
            port,
            _prefix: prefix,
        }
    }
}

impl Drop for Edge {
    fn drop(&mut self) {
        // SIGTERM: the master stops its workers (a SIGKILL would leave them running).
        // SAFETY: the pid is our own child's, not yet waited for.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        if wait_timeout(&mut self.child, STOP_TIMEOUT).is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[test]
fn a_proxy_cache_edge_asks_the_origin_once_per_part_for_50_clients() {
    const CLIENTS: usize = 50;
    const SECS: u64 = 20;
    let server = start();
    let mut publisher = publish(&server.rtmp_url("live/cam"), SECS as u32 + 25);
    let mut checks = Checks::new();
    if let Some(listing) = checks.ok(wait_ready(&server, 2)) {
        println!("ready:\n{listing}");
        let edge = Edge::start(server.http_port);
        let origin_log = server.prefix.join("logs/access.log");
        let log_start = std::fs::metadata(&origin_log).map_or(0, |m| m.len() as usize);
        let direct_base = server.http_url("/hls/live/");
        let edge_base = format!("http://127.0.0.1:{}/hls/live/", edge.port);
        let direct = std::thread::spawn(move || ll_client(&direct_base, "cam-video.m3u8", SECS));
        let clients: Vec<_> = (0..CLIENTS)
            .map(|_| {
                let base = edge_base.clone();
                std::thread::spawn(move || ll_client(&base, "cam-video.m3u8", SECS))
            })
            .collect();
        let mut direct = match direct.join().expect("direct client") {
            Ok(d) => d,
            Err(e) => {
                checks.fail(format!("direct client: {e}"));
                Vec::new()
            }
        };
        let mut via_edge = Vec::new();
        for c in clients {
            match c.join().expect("edge client") {
                Ok(d) => via_edge.extend(d),
                Err(e) => checks.fail(format!("edge client: {e}")),
            }
        }
        let (direct_ms, edge_ms) = (median(&mut direct), median(&mut via_edge));
        println!(
            "part delay after its media ended: direct {direct_ms:.0} ms median over {} parts, \
             through the edge {edge_ms:.0} ms over {} parts",
            direct.len(),
            via_edge.len()
        );
        checks.check(direct.len() >= 40 && via_edge.len() >= 40 * CLIENTS, || {
            format!(
                "parts fetched: direct {}, edge {}",
                direct.len(),
                via_edge.len()
            )
        });
        checks.check(edge_ms - direct_ms <= 500.0, || {
            format!("the edge adds {:.0} ms (at most 500)", edge_ms - direct_ms)
        });
        // The origin saw each part and each blocking playlist request once (the direct
        // client's requests aside: they come from 127.0.0.1 too, so they are counted, and
        // allowed once more).
        let log = read_lossy(&origin_log);
        let mut counts: std::collections::HashMap<String, usize> = Default::default();
        for l in log.get(log_start..).unwrap_or_default().lines() {
            if let Some(uri) = l
                .split('"')
                .nth(1)
                .and_then(|r| r.split_whitespace().nth(1))
            {
                if uri.starts_with("/hls/") {
                    *counts.entry(uri.to_owned()).or_default() += 1;
                }
            }
        }
        let repeated: Vec<(&String, &usize)> = counts
            .iter()
            .filter(|(uri, n)| (uri.contains("_HLS_msn") || uri.contains("/cam-p")) && **n > 2)
            .collect();
        checks.check(repeated.is_empty() && !counts.is_empty(), || {
            format!("the origin was asked more than once (edge) + once (direct): {repeated:?}")
        });
        drop(edge);
    }
    publisher.kill();
    checks.finish(server);
}
