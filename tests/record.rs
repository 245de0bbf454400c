//! Recording (`record`, `record_*`, `recorder {}`, `on_record_done`, `exec_record_done`,
//! `/control/record`) with real nginx, a real ffmpeg publisher, and ffprobe/ffmpeg reading the
//! files back: they play, they are indexed (duration, keyframes) so they seek, `record_interval`
//! cuts them on keyframes, the callbacks come with the path, manual recorders start and stop
//! from whichever worker answers the request, and a worker killed mid-recording leaves a file
//! that still plays. An MP4 recording's replay playlist plays in Debian's Chromium with hls.js
//! from start to end and seeks (`tests/browser/replay.mjs` drives the browser).
//!
//! Expected failures with `RTMP_IT_TARGET=c`: the C module writes unindexed files (no
//! `keyframes`, duration 0), and its `/control` only sees its own worker's sessions.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use common::backend::Backend;
use common::hls::{http_get, run_node, Checks};
use common::workers::Launch;

use common::*;

const CALL_WAIT: Duration = Duration::from_secs(15);

fn rtmp_block(app: &str) -> String {
    format!(
        "rtmp {{\n    server {{\n        listen 127.0.0.1:{{RTMP_PORT}};\n        chunk_size 4096;\n        \
         application live {{\n            live on;\n            {app}\n        }}\n    }}\n}}\n"
    )
}

/// FLV files in `dir`, sorted by name.
fn flv_files(dir: &Path) -> Vec<PathBuf> {
    files_with_ext(dir, "flv")
}

/// `ffprobe` of a file: (format duration in s, video codec, audio codec).
fn probe(path: &Path) -> Result<(f64, String, String), String> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration:stream=codec_name,codec_type",
        ])
        .args(["-of", "default=nw=1"])
        .arg(path)
        .output()
        .map_err(|e| format!("ffprobe: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() || !err.trim().is_empty() {
        return Err(format!("ffprobe {}: {err}{text}", path.display()));
    }
    let mut duration = 0.0;
    let (mut video, mut audio, mut last) = (String::new(), String::new(), String::new());
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("duration=") {
            duration = v.parse().unwrap_or(0.0);
        } else if let Some(v) = line.strip_prefix("codec_name=") {
            last = v.to_string();
        } else if line == "codec_type=video" {
            video = last.clone();
        } else if line == "codec_type=audio" {
            audio = last.clone();
        }
    }
    Ok((duration, video, audio))
}

/// Decodes `path` from `seek` seconds on (`-ss` before `-i`: a seek in the file); returns the
/// seconds decoded.
fn decode(path: &Path, seek: f64) -> Result<f64, String> {
    let out = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-nostdin",
            "-v",
            "error",
            "-ss",
            &seek.to_string(),
            "-i",
        ])
        .arg(path)
        .args(["-f", "null", "-progress", "pipe:1", "-"])
        .output()
        .map_err(|e| format!("ffmpeg: {e}"))?;
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() || !err.trim().is_empty() {
        return Err(format!("ffmpeg decode of {}: {err}", path.display()));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let us = text
        .lines()
        .filter_map(|l| l.strip_prefix("out_time_us="))
        .filter_map(|v| v.parse::<f64>().ok())
        .next_back()
        .unwrap_or(0.0);
    Ok(us / 1e6)
}

/// ffprobe reads `file` with no error: `seconds` long (in the range), H.264 and AAC.
fn check_probe(checks: &mut Checks, file: &Path, seconds: std::ops::Range<f64>) {
    match probe(file) {
        Ok((d, v, a)) => checks.check(seconds.contains(&d) && v == "h264" && a == "aac", || {
            format!("ffprobe of {file:?}: {d} s, {v}, {a}")
        }),
        Err(e) => checks.check(false, || e),
    };
}

/// A seek to `at` s in `file` starts decoding in `lands`.
fn check_seek(checks: &mut Checks, file: &Path, at: f64, lands: std::ops::RangeInclusive<f64>) {
    match first_frame_after_seek(file, at) {
        Ok(t) => checks.check(lands.contains(&t), || {
            format!("a seek to {at} s starts at {t} s")
        }),
        Err(e) => checks.check(false, || e),
    };
}

/// Where decoding starts after a seek to `seek` s: the first video frame's time.
fn first_frame_after_seek(path: &Path, seek: f64) -> Result<f64, String> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v",
            "-show_entries",
            "frame=pts_time",
        ])
        .args(["-of", "csv=p=0", "-read_intervals", &format!("{seek}%+#1")])
        .arg(path)
        .output()
        .map_err(|e| format!("ffprobe: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.trim().trim_end_matches(',').parse::<f64>().ok())
        .ok_or_else(|| format!("no frame after a seek to {seek}: {text}"))
}

/// The file's `onMetaData`: (duration, number of keyframes in the index), read with our own
/// minimal FLV/AMF walk (ffprobe does not show the index).
fn flv_index(path: &Path) -> Result<(f64, usize), String> {
    let data = fs::read(path).map_err(|e| e.to_string())?;
    if data.get(..3) != Some(b"FLV") || data.len() < 24 {
        return Err("not an FLV file".into());
    }
    let tag = &data[13..];
    if tag[0] != 18 {
        return Err("the first tag is not onMetaData".into());
    }
    let len = u32::from_be_bytes([0, tag[1], tag[2], tag[3]]) as usize;
    let body = &tag[11..11 + len];
    let find_number = |key: &str| -> Option<f64> {
        let mut pat = (key.len() as u16).to_be_bytes().to_vec();
        pat.extend_from_slice(key.as_bytes());
        pat.push(0);
        let at = body.windows(pat.len()).position(|w| w == pat)? + pat.len();
        Some(f64::from_be_bytes(body.get(at..at + 8)?.try_into().ok()?))
    };
    let duration = find_number("duration").ok_or("no duration")?;
    let pat = b"\x00\x05times\x0a";
    let keyframes = match body.windows(pat.len()).position(|w| w == pat) {
        Some(at) => {
            let n = &body[at + pat.len()..at + pat.len() + 4];
            u32::from_be_bytes(n.try_into().unwrap()) as usize
        }
        None => 0,
    };
    Ok((duration, keyframes))
}

#[test]
fn record_all_writes_indexed_files_and_reports_them() {
    let backend = Backend::start();
    let app = format!(
        "record all; record_path {{PREFIX}}/rec; record_unique on; \
         record_suffix -%Y%m%d-%H%M%S.flv; \
         on_record_done {}; \
         exec_record_done /bin/cp $path $dirname/$basename.copy;",
        backend.url("/done")
    );
    let server = Server::start(&rtmp_block(&app), "");
    let mut checks = Checks::new();
    let dir = server.prefix.join("rec");

    publish_to_end(&server, "live/cam?key=k1", 30, &mut checks);
    let calls = backend.wait_calls("record_done", 1, CALL_WAIT);
    checks.check(calls.len() == 1, || {
        format!("record_done calls: {}", backend.summary())
    });
    let files = flv_files(&dir);
    checks.check(files.len() == 1, || format!("files: {files:?}"));
    if let (Some(call), Some(file)) = (calls.first(), files.first()) {
        checks.check(call.field("path") == Some(file.to_str().unwrap()), || {
            format!("record_done path {:?}, file {file:?}", call.field("path"))
        });
        checks.check(
            call.field("name") == Some("cam")
                && call.field("recorder") == Some("")
                && call.field("app") == Some("live")
                && call.field("key") == Some("k1"),
            || format!("record_done fields: {call:?}"),
        );
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        checks.check(
            name.starts_with("cam-") && name.len() == "cam-1796573148-20261206-160548.flv".len(),
            || format!("file name {name}"),
        );
        check_probe(&mut checks, file, 29.5..30.5);
        match flv_index(file) {
            // The publisher sends 30 s; the file starts at its first keyframe.
            Ok((d, k)) => checks.check((29.8..30.2).contains(&d) && k >= 29, || {
                format!("onMetaData: duration {d}, {k} keyframes indexed")
            }),
            Err(e) => checks.check(false, || e),
        };
        // A seek to 20 s lands within one GOP (1 s) of it.
        check_seek(&mut checks, file, 20.0, 19.0..=21.0);
        let copy = file.with_extension("copy");
        let deadline = Instant::now() + CALL_WAIT;
        while !copy.exists() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(100));
        }
        checks.check(fs::read(&copy).ok() == fs::read(file).ok(), || {
            format!("exec_record_done did not copy the file to {copy:?}")
        });
    }
    let log = server.error_log();
    checks.check(log.contains("rtmp: record \"live/cam\": writing "), || {
        "no start line".into()
    });
    checks.check(log.contains(" done, "), || "no done line".into());
    checks.finish(server);
}

#[test]
fn record_interval_cuts_playable_files_on_keyframes() {
    let app = "record all; record_path {PREFIX}/rec; record_unique on; record_interval 2s;";
    let server = Server::start(&rtmp_block(app), "");
    let mut checks = Checks::new();
    publish_to_end(&server, "live/cam", 7, &mut checks);
    let dir = server.prefix.join("rec");
    let deadline = Instant::now() + CALL_WAIT;
    while !server.error_log().contains("done, ") && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(100));
    }
    thread::sleep(Duration::from_millis(500));
    let files = flv_files(&dir);
    checks.check((3..=4).contains(&files.len()), || {
        format!("files: {files:?}")
    });
    let mut total = 0.0;
    for f in &files {
        // The first video packet of every file is a keyframe.
        let out = Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-select_streams",
                "v",
                "-show_entries",
                "packet=flags",
            ])
            .args(["-of", "csv=p=0", "-read_intervals", "%+#1"])
            .arg(f)
            .output()
            .unwrap();
        let first = String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or("")
            .to_string();
        checks.check(first.starts_with('K'), || {
            format!("{f:?} starts with {first:?}")
        });
        match decode(f, 0.0) {
            Ok(s) => {
                total += s;
                checks.check(s <= 2.6, || format!("{f:?}: {s} s"))
            }
            Err(e) => checks.check(false, || e),
        };
    }
    checks.check((5.5..7.5).contains(&total), || {
        format!("{total} s recorded in all")
    });
    checks.finish(server);
}

#[test]
fn manual_recording_starts_and_stops_from_any_worker() {
    let backend = Backend::start();
    let app = format!(
        "record all manual; record_path {{PREFIX}}/rec; record_notify on; on_record_done {};",
        backend.url("/done")
    );
    let http = "        location /control { rtmp_control all; }\n        location /stat { rtmp_stat all; }";
    let server = Launch::workers(2).start(&rtmp_block(&app), http);
    let mut checks = Checks::new();
    let mut publisher = common::ffmpeg::publish(&server.rtmp_url("live/cam"), 12);
    thread::sleep(Duration::from_millis(2500));
    checks.check(flv_files(&server.prefix.join("rec")).is_empty(), || {
        "recording before the start".into()
    });

    let start = "/control/record/start?app=live&name=cam";
    let expected = server.prefix.join("rec/cam.flv");
    let path = expected.to_str().unwrap();
    check_answer(&mut checks, &server, start, 200, Some(path));
    // Both workers (the request lands on either) know it is recording now.
    thread::sleep(Duration::from_millis(1500));
    for _ in 0..6 {
        check_answer(&mut checks, &server, start, 204, None);
    }
    let stat =
        http_get(server.http_port, "/stat").map(|r| String::from_utf8_lossy(&r.body).into_owned());
    checks.check(
        stat.as_ref()
            .is_ok_and(|xml| xml.contains(&format!("<file>{path}</file>"))),
        || format!("/stat has no recorder: {stat:?}"),
    );
    let unknown = "/control/record/start?app=live&name=cam&rec=nope";
    check_answer(
        &mut checks,
        &server,
        unknown,
        500,
        Some("Recorder not found\n"),
    );
    thread::sleep(Duration::from_millis(1500));
    let stop = "/control/record/stop?app=live&name=cam";
    check_answer(&mut checks, &server, stop, 200, Some(path));
    thread::sleep(Duration::from_millis(1500));
    check_answer(&mut checks, &server, stop, 204, None);
    match flv_index(&expected) {
        Ok((d, k)) => checks.check((2.0..5.0).contains(&d) && k >= 2, || {
            format!("onMetaData: {d} s, {k} keyframes")
        }),
        Err(e) => checks.check(false, || e),
    };
    match decode(&expected, 0.0) {
        Ok(s) => checks.check((2.0..5.0).contains(&s), || format!("decoded {s} s")),
        Err(e) => checks.check(false, || e),
    };
    let calls = backend.wait_calls("record_done", 1, CALL_WAIT);
    checks.check(
        calls.len() == 1 && calls[0].field("path") == expected.to_str(),
        || format!("record_done calls: {}", backend.summary()),
    );
    checks.check(flv_files(&server.prefix.join("rec")).len() == 1, || {
        "more than one file".into()
    });
    publisher.kill();
    checks.finish(server);
}

#[test]
fn a_killed_worker_leaves_a_recording_that_plays() {
    let app = "record all; record_path {PREFIX}/rec;";
    let server = Server::start(&rtmp_block(app), "");
    let mut checks = Checks::new();
    let mut publisher = common::ffmpeg::publish(&server.rtmp_url("live/cam"), 20);
    thread::sleep(Duration::from_millis(4000));
    checks.check(kill_workers(&server) == 1, || "not one worker".into());
    thread::sleep(Duration::from_millis(500));
    publisher.kill();
    let file = server.prefix.join("rec/cam.flv");
    match decode(&file, 0.0) {
        Ok(s) => checks.check(s >= 2.5, || format!("decoded {s} s of the cut recording")),
        Err(e) => checks.check(false, || e),
    };
    let mut server = server;
    server.stop();
    checks.assert_ok();
}

#[test]
fn mp4_recordings_survive_a_killed_worker_and_replay_over_hls() {
    let app = "record all; record_path {PREFIX}/rec; record_format mp4; record_unique on;";
    let http = "        location /rec/ { root {PREFIX}; }";
    let server = Server::start(&rtmp_block(app), http);
    let mut checks = Checks::new();
    let dir = server.prefix.join("rec");

    // A clean recording: the MP4 plays and seeks, its playlist replays it over HTTP.
    publish_to_end(&server, "live/cam", 8, &mut checks);
    let deadline = Instant::now() + CALL_WAIT;
    while !server.error_log().contains(" done, ") && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(100));
    }
    let mp4s: Vec<PathBuf> = fs::read_dir(&dir)
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    let mp4 = mp4s
        .iter()
        .find(|p| p.extension().is_some_and(|x| x == "mp4"))
        .cloned();
    checks.check(mp4.is_some(), || format!("no .mp4 among {mp4s:?}"));
    if let Some(mp4) = &mp4 {
        check_probe(&mut checks, mp4, 7.5..8.5);
        check_seek(&mut checks, mp4, 5.0, 4.0..=6.0);
        let name = mp4.file_stem().unwrap().to_string_lossy().into_owned();
        let url = server.http_url(&format!("/rec/{name}.m3u8"));
        let playlist = http_get(server.http_port, &format!("/rec/{name}.m3u8"))
            .map(|r| String::from_utf8_lossy(&r.body).into_owned())
            .unwrap_or_default();
        checks.check(playlist.ends_with("#EXT-X-ENDLIST\n"), || {
            format!("playlist: {playlist}")
        });
        // Bounded: without EXT-X-ENDLIST ffmpeg would wait for the playlist to grow.
        let d = common::hls::decode(&url, None, Duration::from_secs(30));
        checks.check(d.ok && d.seconds > 7.5, || {
            format!(
                "the replay over HLS: {} s decoded, timed out: {}, {}",
                d.seconds, d.timed_out, d.stderr
            )
        });
    }

    // A worker killed 20 s into a publish loses at most the fragment being gathered.
    let before: Vec<PathBuf> = files_with_ext(&dir, "mp4");
    let mut publisher = common::ffmpeg::publish(&server.rtmp_url("live/cut"), 40);
    thread::sleep(Duration::from_millis(20_500));
    kill_workers(&server);
    thread::sleep(Duration::from_millis(500));
    publisher.kill();
    let cut: Vec<PathBuf> = files_with_ext(&dir, "mp4")
        .into_iter()
        .filter(|p| !before.contains(p))
        .collect();
    checks.check(cut.len() == 1, || format!("files after the kill: {cut:?}"));
    if let Some(file) = cut.first() {
        match decode(file, 0.0) {
            Ok(s) => checks.check(s >= 19.0, || format!("decoded {s} s of the cut MP4")),
            Err(e) => checks.check(false, || e),
        };
    }
    let mut server = server;
    server.stop();
    checks.assert_ok();
}

/// The test player page (`tests/browser/index.html` + `player.js`) and hls.js from npm, served
/// by the same nginx at `/player/`.
fn player_locations() -> String {
    let dir = manifest_dir().join("tests/browser");
    let hls_js = dir.join("node_modules/hls.js/dist/hls.min.js");
    assert!(
        dir.join("node_modules/playwright-core").is_dir() && hls_js.is_file(),
        "tests/browser has no node_modules: run: npm ci --prefix tests/browser"
    );
    assert!(
        Path::new("/usr/bin/chromium").is_file(),
        "Debian's chromium is missing: apt-get install chromium (scripts/test.sh does)"
    );
    format!(
        "        location /player/ {{\n\
         \x20           alias {dir}/;\n\
         \x20           types {{ text/html html; application/javascript js; }}\n\
         \x20       }}\n\
         \x20       location = /player/hls.min.js {{\n\
         \x20           alias {hls_js};\n\
         \x20           default_type application/javascript;\n\
         \x20       }}\n",
        dir = dir.display(),
        hls_js = hls_js.display(),
    )
}

/// `GET path` answers 200 with `content_type`.
fn check_content_type(checks: &mut Checks, server: &Server, path: &str, content_type: &str) {
    match http_get(server.http_port, path) {
        Ok(r) => checks.check(
            r.status == 200 && r.header("Content-Type") == Some(content_type),
            || {
                format!(
                    "GET {path}: {} {:?}, expected {content_type}",
                    r.status,
                    r.header("Content-Type")
                )
            },
        ),
        Err(e) => checks.check(false, || e),
    };
}

/// A finished MP4 recording's replay playlist, served by nginx, as a viewer uses it: ffmpeg
/// decodes it whole with no error, and Chromium with hls.js plays it from start to end (every
/// second of it shown, the MP4's duration, no error), then seeks back to the middle, and a
/// fresh tab seeks to the middle at once; both seeks load the middle's fragments (hls.js keeps
/// 4 s buffered) and play on from within one GOP of it.
#[test]
fn mp4_replay_plays_to_the_end_and_seeks_in_the_browser() {
    let http = format!(
        "        location /rec/ {{\n\
         \x20           alias {{PREFIX}}/rec/;\n\
         \x20           types {{ application/vnd.apple.mpegurl m3u8; video/mp4 mp4; }}\n\
         \x20       }}\n{}",
        player_locations()
    );
    let app = "record all; record_path {PREFIX}/rec; record_format mp4; record_unique off;";
    let server = Server::start(&rtmp_block(app), &http);
    let mut checks = Checks::new();
    let secs = 20.0;
    publish_to_end(&server, "live/replay", 20, &mut checks);

    // The recording has ended once its playlist is a VOD (written after the last fragment).
    let playlist = server.prefix.join("rec/replay.m3u8");
    let deadline = Instant::now() + CALL_WAIT;
    let ended = || {
        fs::read_to_string(&playlist).is_ok_and(|p| {
            p.contains("#EXT-X-PLAYLIST-TYPE:VOD") && p.ends_with("#EXT-X-ENDLIST\n")
        })
    };
    while !ended() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(100));
    }
    checks.check(ended(), || {
        format!(
            "the playlist has no EXT-X-ENDLIST {:?} after the publisher left:\n{}",
            CALL_WAIT,
            fs::read_to_string(&playlist).unwrap_or_default()
        )
    });
    check_content_type(
        &mut checks,
        &server,
        "/rec/replay.m3u8",
        "application/vnd.apple.mpegurl",
    );
    check_content_type(&mut checks, &server, "/rec/replay.mp4", "video/mp4");
    let mp4_secs = probe(&server.prefix.join("rec/replay.mp4"))
        .map(|(d, _, _)| d)
        .unwrap_or(0.0);
    checks.check((secs - 1.0..=secs + 1.0).contains(&mp4_secs), || {
        format!("the MP4 lasts {mp4_secs} s, expected {secs} ± 1")
    });

    // ffmpeg decodes the whole replay with no error. (Not from its middle: Debian's ffmpeg 5.1
    // decodes nothing after `-ss` in any fMP4 HLS playlist, its own too; the MP4 itself seeks,
    // see mp4_recordings_survive_a_killed_worker_and_replay_over_hls.)
    let url = server.http_url("/rec/replay.m3u8");
    let d = common::hls::decode(&url, None, Duration::from_secs(30));
    checks.check(d.ok && (d.seconds - mp4_secs).abs() <= 0.5, || {
        format!(
            "ffmpeg decoded {} s of the replay (the MP4 lasts {mp4_secs} s), timed out: {}, {}",
            d.seconds, d.timed_out, d.stderr
        )
    });

    let page = server.http_url(&format!("/player/index.html?buffer=4&src={url}"));
    let r = run_node("replay.mjs", &[&page, "60"], Duration::from_secs(150));
    println!("replay.mjs: {}\nnode stderr:\n{}", r.json.trim(), r.stderr);
    checks.check(r.status.is_some_and(|s| s.success()), || {
        format!(
            "node replay.mjs failed ({:?}):\n{}\n{}",
            r.status, r.json, r.stderr
        )
    });
    let v: serde_json::Value = serde_json::from_str(r.json.trim()).unwrap_or_default();
    let num = |v: &serde_json::Value, key: &str| v[key].as_f64().unwrap_or(f64::NAN);
    let duration = num(&v, "duration");
    checks.check(
        (duration - secs).abs() <= 1.0 && (duration - mp4_secs).abs() <= 0.5,
        || format!("hls.js: duration {duration} s, the MP4 lasts {mp4_secs} s"),
    );
    checks.check(num(&v, "firstTime") <= 0.5, || {
        format!("playback started at {} s, not at the start", v["firstTime"])
    });
    checks.check(
        v["ended"] == true || num(&v, "endTime") >= duration - 0.5,
        || {
            format!(
                "playback did not reach the end: ended {}, at {} s of {duration}",
                v["ended"], v["endTime"]
            )
        },
    );
    // What was really shown: all of it, nothing jumped over.
    let played: f64 = v["played"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| r[1].as_f64().unwrap_or(0.0) - r[0].as_f64().unwrap_or(0.0))
                .sum()
        })
        .unwrap_or(0.0);
    checks.check(played >= duration - 0.5, || {
        format!("hls.js showed {played} s of {duration} s: {}", v["played"])
    });
    let seeks = v["seeks"].as_array().cloned().unwrap_or_default();
    checks.check(seeks.len() == 2, || {
        format!(
            "expected a seek after the end and one in a fresh tab: {}",
            v["seeks"]
        )
    });
    for seek in &seeks {
        let target = num(seek, "target");
        let landed = num(seek, "landed");
        // The publisher's GOP is 1 s: playback resumes within one GOP of the target.
        checks.check(
            (target - mp4_secs / 2.0).abs() <= 0.5 && (landed - target).abs() <= 1.0,
            || format!("a seek to the middle resumed elsewhere: {seek}"),
        );
        checks.check(num(seek, "advanced") >= 2.0, || {
            format!("playback did not go on for 2 s after a seek to the middle: {seek}")
        });
        checks.check(num(seek, "fragsLoaded") >= 1.0, || {
            format!("the seek loaded nothing (served from the buffer?): {seek}")
        });
    }
    // Only errors hls.js raises about itself are allowed: a load it aborts because a seek moved
    // on, and a stall while a busy machine decodes.
    let errors: Vec<&serde_json::Value> = v["errors"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|e| {
                    e["fatal"] != false
                        || !matches!(
                            e["details"].as_str(),
                            Some("aborted" | "bufferStalledError")
                        )
                })
                .collect()
        })
        .unwrap_or_default();
    checks.check(errors.is_empty() && v["errors"].is_array(), || {
        format!("errors while replaying: {}", v["errors"])
    });
    checks.check(num(&v, "outsideCount") == 0.0, || {
        format!("the replay asked other servers: {}", v["outside"])
    });
    checks.finish(server);
}

/// `GET path` answers `status` (and `body`, when given).
fn check_answer(checks: &mut Checks, server: &Server, path: &str, status: u16, body: Option<&str>) {
    match http_get(server.http_port, path) {
        Ok(r) => checks.check(
            r.status == status && body.is_none_or(|b| r.body == b.as_bytes()),
            || {
                format!(
                    "{path}: {} {:?}",
                    r.status,
                    String::from_utf8_lossy(&r.body)
                )
            },
        ),
        Err(e) => checks.check(false, || e),
    };
}

/// Publishes `secs` seconds of test media to `path` and waits until the publisher is done.
fn publish_to_end(server: &Server, path: &str, secs: u32, checks: &mut Checks) {
    let mut publisher = common::ffmpeg::publish(&server.rtmp_url(path), secs);
    let limit = Duration::from_secs(u64::from(secs) + 15);
    checks.check(publisher.wait_timeout(limit).is_some(), || {
        "the publisher did not finish".into()
    });
}

/// SIGKILLs the nginx workers of `server` (the master's children); returns how many.
fn kill_workers(server: &Server) -> usize {
    let children = fs::read_to_string(format!("/proc/{0}/task/{0}/children", server.pid()))
        .unwrap_or_default();
    let pids: Vec<i32> = children
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect();
    for pid in &pids {
        // SAFETY: kill(2) on nginx's worker, a process this test started.
        unsafe { libc::kill(*pid, libc::SIGKILL) };
    }
    pids.len()
}

/// Files in `dir` with extension `ext`, sorted.
fn files_with_ext(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == ext))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}
