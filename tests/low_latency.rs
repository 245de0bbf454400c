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
    let dir = manifest_dir().join("tests/browser");
    let hls_js = dir.join("node_modules/hls.js/dist/hls.min.js");
    format!(
        "location /hls/ {{\n\
         \x20   alias {{PREFIX}}/tmp/;\n\
         \x20   types {{ application/vnd.apple.mpegurl m3u8; video/mp4 m4s m4v; audio/mp4 m4a; }}\n\
         \x20   add_header Cache-Control no-cache;\n\
         }}\n\
         location /player/ {{\n\
         \x20   alias {dir}/;\n\
         \x20   types {{ text/html html; application/javascript js; }}\n\
         }}\n\
         location = /player/hls.min.js {{\n\
         \x20   alias {hls_js};\n\
         \x20   default_type application/javascript;\n\
         }}\n",
        dir = dir.display(),
        hls_js = hls_js.display(),
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

fn num(v: &Value, path: &[&str]) -> Option<f64> {
    let mut cur = v;
    for key in path {
        cur = cur.get(key)?;
    }
    cur.as_f64()
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
    let mut publisher = publish(&server.rtmp_url("live/cam"), BROWSER_RUN_SECS + 20);
    let mut checks = Checks::new();
    if let Some(listing) = checks.ok(wait_ready(&server, 2)) {
        println!("ready:\n{listing}");
        let page = format!(
            "{}?src={}",
            server.http_url("/player/index.html"),
            server.http_url("/hls/live/cam.m3u8")
        );
        let r = run_browser(&page, BROWSER_RUN_SECS);
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
                let playing = num(&v, &["media", "playingMs"]).unwrap_or(0.0);
                checks.check(playing >= MIN_PLAYING_MS, || {
                    format!("played {playing} ms, need {MIN_PLAYING_MS}")
                });
                for key in ["longestWaitMs", "longestFreezeMs"] {
                    let stall = num(&v, &["media", key]);
                    checks.check(stall.is_some_and(|s| s <= MAX_STALL_MS), || {
                        format!("stalled: {key} {stall:?} ms (at most {MAX_STALL_MS})")
                    });
                }
                let parts = num(&v, &["partsLoaded"]).unwrap_or(0.0);
                checks.check(parts >= 100.0, || {
                    format!("hls.js loaded {parts} parts: it did not play LL-HLS")
                });
                let median = num(&v, &["pdtLatency", "median"]);
                let samples = num(&v, &["pdtLatency", "count"]).unwrap_or(0.0);
                checks.check(
                    samples >= 200.0 && median.is_some_and(|m| m <= MAX_MEDIAN_LATENCY_S),
                    || {
                        format!(
                            "median latency {median:?} s over {samples} samples (at most \
                             {MAX_MEDIAN_LATENCY_S} s): {}",
                            v["pdtLatency"]
                        )
                    },
                );
            }
            Err(e) => checks.fail(format!("play.mjs printed no JSON ({e}): {}", r.json)),
        }
    }
    publisher.kill();
    if !checks.is_empty() {
        print_access_log(&server);
    }
    checks.finish(server);
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
