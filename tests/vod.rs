//! VOD (`play dir ...;`) with real nginx: FLV and MP4 files made by ffmpeg are played by ffmpeg
//! and rtmpdump (librtmp) at their own pace, from a start time, and seeked; names that would
//! leave the directory are refused with one log line; many players of one file share its
//! index and stay small.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use common::client::RtmpClient;
use common::hls::Checks;
use common::*;

fn vod_block(app_extra: &str) -> String {
    format!(
        "rtmp {{\n    server {{\n        listen 127.0.0.1:{{RTMP_PORT}};\n        chunk_size 4096;\n        \
         application vod {{\n            play {{PREFIX}}/vod {{PREFIX}}/vod2;\n            {app_extra}\n        }}\n    }}\n}}\n"
    )
}

/// Encodes a `seconds`-long test clip (H.264 with a keyframe each second, AAC) to `path`.
fn make_clip(path: &Path, seconds: u32, extra: &[&str]) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    let secs = seconds.to_string();
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-v", "error", "-y"])
        .args(["-f", "lavfi", "-i", "testsrc=size=320x240:rate=25"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"])
        .args(["-t", &secs, "-c:v", "libx264", "-preset", "ultrafast"])
        .args([
            "-g", "25", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k",
        ])
        .args(extra)
        .arg(path)
        .output()
        .expect("ffmpeg");
    assert!(
        out.status.success(),
        "ffmpeg could not make {path:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// rtmpdump saves `url` (from `start` s) to `out`; returns whether it finished and its stderr.
/// Its exit code 2 ("may be incomplete") means the last timestamp is under 99.9 % of the
/// file's `duration`, which the last frame's own length makes it for any complete file (and the
/// C module's VOD alike); what was saved is checked instead.
fn rtmpdump(url: &str, start: Option<u32>, out: &Path, limit_s: u64) -> (bool, String) {
    let mut cmd = Command::new("timeout");
    cmd.args([
        "-s",
        "TERM",
        &limit_s.to_string(),
        "rtmpdump",
        "-q",
        "-r",
        url,
    ]);
    if let Some(s) = start {
        cmd.args(["-A", &s.to_string()]);
    }
    let res = cmd
        .arg("-o")
        .arg(out)
        .output()
        .expect("rtmpdump is installed");
    (
        matches!(res.status.code(), Some(0 | 2)),
        String::from_utf8_lossy(&res.stderr).into_owned(),
    )
}

/// (time of the first and the last video packet, video packets) of a file, by ffprobe.
fn video_span(path: &Path) -> Result<(f64, f64, usize), String> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v"])
        .args(["-show_entries", "packet=pts_time", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .map_err(|e| e.to_string())?;
    let times: Vec<f64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().trim_end_matches(',').parse().ok())
        .collect();
    match (times.first(), times.iter().cloned().reduce(f64::max)) {
        (Some(&first), Some(last)) => Ok((first, last, times.len())),
        _ => Err(format!(
            "no video in {path:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        )),
    }
}

/// Runs `run(url, out)` on a thread for each play name, `out` being a file in the prefix
/// named after `label` and the name.
fn for_each_name<T: Send + 'static>(
    server: &Server,
    names: &[&str],
    label: &str,
    run: fn(&str, &Path) -> T,
) -> Vec<thread::JoinHandle<(T, PathBuf)>> {
    names
        .iter()
        .map(|n| {
            let url = server.rtmp_url(&format!("vod/{n}"));
            let out = server
                .prefix
                .join(format!("{label}-{}.flv", n.replace(':', "_")));
            thread::spawn(move || (run(&url, &out), out))
        })
        .collect()
}

#[test]
fn ffmpeg_and_rtmpdump_play_flv_and_mp4_files_at_their_pace() {
    let server = Server::start(&vod_block(""), "");
    let dir = server.prefix.join("vod");
    make_clip(&dir.join("clip.flv"), 12, &[]);
    make_clip(&dir.join("clip.mp4"), 12, &[]);
    make_clip(
        &server.prefix.join("vod2/fast.mp4"),
        12,
        &["-movflags", "+faststart"],
    );
    let mut checks = Checks::new();
    let names = ["clip", "clip.flv", "mp4:clip", "clip.mp4", "mp4:fast"];
    let players: Vec<_> = names
        .iter()
        .map(|n| {
            (
                n,
                ffmpeg::spawn_play_decode(&server.rtmp_url(&format!("vod/{n}")), 30),
            )
        })
        .collect();
    let dumps = for_each_name(&server, &["clip", "mp4:clip"], "dump", |url, out| {
        rtmpdump(url, None, out, 40)
    });
    for (name, p) in players {
        let r = p.join().unwrap();
        // The whole file, paced: not much faster than real time (buffer + lead: 2 s ahead).
        checks.check(
            r.ok && (11.5..12.6).contains(&r.decoded_seconds) && r.wall.as_secs_f64() > 9.0,
            || format!("ffmpeg play of {name}: {r:#?}"),
        );
    }
    for d in dumps {
        let ((ok, err), out) = d.join().unwrap();
        checks.check(ok, || format!("rtmpdump of {out:?}: {err}"));
        match video_span(&out) {
            Ok((first, last, n)) => checks.check(first < 0.1 && last > 11.5 && n >= 295, || {
                format!("rtmpdump saved {out:?}: video {first}..{last} s, {n} packets")
            }),
            Err(e) => checks.check(false, || e),
        };
    }
    let log = server.error_log();
    checks.check(log.contains("rtmp: play \"vod/clip\" from "), || {
        "no play line in the log".into()
    });
    checks.finish(server);
}

#[test]
fn a_start_time_and_a_seek_land_on_the_keyframe_before() {
    let server = Server::start(&vod_block(""), "");
    let dir = server.prefix.join("vod");
    make_clip(&dir.join("long.flv"), 60, &[]);
    make_clip(&dir.join("long.mp4"), 60, &[]);
    let mut checks = Checks::new();
    let runs = for_each_name(&server, &["long", "mp4:long"], "from30", |url, out| {
        rtmpdump(url, Some(30), out, 50)
    });
    // ffmpeg's -ss sends `seek` after `play`: it lands on the keyframe at or before 20 s.
    let seeks = for_each_name(&server, &["long", "mp4:long"], "seek20", |url, out| {
        let res = Command::new("timeout")
            .args(["-s", "TERM", "30", "ffmpeg", "-hide_banner", "-nostdin"])
            .args(["-v", "error", "-ss", "20", "-i", url, "-frames:v", "30"])
            .args(["-copyts", "-c", "copy", "-y"])
            .arg(out)
            .output()
            .unwrap();
        res.status.success()
    });
    for s in seeks {
        let (ok, out) = s.join().unwrap();
        match video_span(&out) {
            Ok((first, _, n)) => checks
                .check(ok && (19.0..=20.05).contains(&first) && n >= 30, || {
                    format!("ffmpeg -ss 20 saved {out:?} from {first} s, {n} packets")
                }),
            Err(e) => checks.check(false, || e),
        };
    }
    let log = server.error_log();
    checks.check(log.matches("rtmp: seek \"vod/").count() >= 2, || {
        "no seek lines in the log".into()
    });
    for r in runs {
        let ((ok, err), out) = r.join().unwrap();
        checks.check(ok, || format!("rtmpdump -A 30 into {out:?}: {err}"));
        match video_span(&out) {
            // rtmpdump adds its start offset to the timestamps it saves: the first frame is
            // the keyframe at or before 30 s (ffmpeg's FLV has them at n + 0.023 s), and the
            // rest of the file follows.
            Ok((first, last, n)) => {
                let start = first - 30.0;
                checks.check(
                    (28.9..=30.05).contains(&start) && last - first > 29.0 && n <= 31 * 25 + 2,
                    || {
                        format!(
                            "{out:?} from 30 s: video {start}..{} s, {n} packets",
                            last - 30.0
                        )
                    },
                )
            }
            Err(e) => checks.check(false, || e),
        };
    }
    checks.finish(server);
}

#[test]
fn missing_files_and_names_leaving_the_directory_are_refused() {
    let server = Server::start(&vod_block(""), "");
    let dir = server.prefix.join("vod");
    make_clip(&server.prefix.join("secret/clip.flv"), 2, &[]);
    fs::create_dir_all(&dir).unwrap();
    std::os::unix::fs::symlink(
        server.prefix.join("secret/clip.flv"),
        dir.join("escape.flv"),
    )
    .unwrap();
    let mut checks = Checks::new();
    let play = |name: &str| -> Vec<String> {
        let mut c = RtmpClient::connect(&server.rtmp_addr(), "vod").expect("connect");
        c.play(name).unwrap_or_else(|e| vec![format!("{e}")])
    };
    let codes = play("nothere");
    checks.check(
        codes.iter().any(|c| c == "NetStream.Play.StreamNotFound"),
        || format!("a missing file: {codes:?}"),
    );
    let codes = play("escape");
    checks.check(codes.iter().any(|c| c == "NetStream.Play.Failed"), || {
        format!("a symlink out of the directory: {codes:?}")
    });
    for name in ["../secret/clip", "..", "/etc/passwd"] {
        let codes = play(name);
        checks.check(!codes.iter().any(|c| c == "NetStream.Play.Start"), || {
            format!("{name}: {codes:?}")
        });
    }
    thread::sleep(Duration::from_millis(300));
    let log = server.error_log();
    let lines = log.lines().filter(|l| l.contains("leads outside")).count();
    checks.check(lines == 1, || {
        format!("{lines} lines about the symlink:\n{log}")
    });
    checks.finish(server);
}

/// Resident memory of the worker (kB).
fn worker_rss_kb(server: &Server) -> u64 {
    let master = server.pid();
    let children = fs::read_to_string(format!("/proc/{master}/task/{master}/children")).unwrap();
    let pid: i32 = children.split_whitespace().next().unwrap().parse().unwrap();
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn a_hundred_players_of_one_file_stay_small() {
    let server = Server::start(&vod_block(""), "");
    let file: PathBuf = server.prefix.join("vod/movie.mp4");
    make_clip(&file, 30, &["-b:v", "1M"]);
    let mut checks = Checks::new();
    // Warm up (the worker's first player, allocator arenas), then measure.
    let mut first = RtmpClient::connect(&server.rtmp_addr(), "vod").expect("connect");
    first.play("movie.mp4").unwrap();
    first.read_media_for(Duration::from_secs(1));
    let before = worker_rss_kb(&server);
    let started = Instant::now();
    let players: Vec<_> = (0..100)
        .map(|_| {
            let addr = server.rtmp_addr();
            thread::spawn(move || {
                let mut c = RtmpClient::connect(&addr, "vod").expect("connect");
                let codes = c.play("movie.mp4").unwrap_or_default();
                let (count, _) = c.read_media_for(Duration::from_secs(8));
                (codes, count, c)
            })
        })
        .collect();
    thread::sleep(Duration::from_secs(6));
    let during = worker_rss_kb(&server);
    let results: Vec<_> = players.into_iter().map(|p| p.join().unwrap()).collect();
    let playing = results
        .iter()
        .filter(|(codes, count, _)| {
            codes.iter().any(|c| c == "NetStream.Play.Start") && count.video >= 150
        })
        .count();
    checks.check(playing == 100, || {
        format!(
            "{playing} of 100 players got 6 s of video in {:?}",
            started.elapsed()
        )
    });
    let growth_mb = during.saturating_sub(before) as f64 / 1024.0;
    eprintln!("worker RSS: {before} kB before, {during} kB with 100 VOD players");
    checks.check(growth_mb < 20.0, || {
        format!("RSS grew {growth_mb:.1} MB with 100 players")
    });
    drop((results, first));
    checks.finish(server);
}

#[test]
fn http_locations_are_fetched_once_into_the_local_cache() {
    let block = "rtmp {\n    server {\n        listen 127.0.0.1:{RTMP_PORT};\n        \
                 application vod {\n            play {PREFIX}/cache http://127.0.0.1:{HTTP_PORT}/origin;\n            \
                 play_temp_path {PREFIX}/tmp;\n            play_local_path {PREFIX}/cache;\n        }\n    }\n}\n";
    let http = "        location /origin/ { alias {PREFIX}/origin/; }";
    let server = Server::start(block, http);
    fs::create_dir_all(server.prefix.join("cache")).unwrap();
    make_clip(&server.prefix.join("origin/remote.flv"), 4, &[]);
    make_clip(&server.prefix.join("origin/remote.mp4"), 4, &[]);
    let mut checks = Checks::new();
    for name in ["remote", "mp4:remote", "remote", "mp4:remote"] {
        let r = ffmpeg::play_decode(&server.rtmp_url(&format!("vod/{name}?token=a%20b")), 20);
        checks.check(r.ok && r.decoded_seconds > 3.5, || {
            format!("ffmpeg play of {name}: {r:#?}")
        });
    }
    for f in ["remote.flv", "remote.mp4"] {
        let cached = fs::read(server.prefix.join("cache").join(f)).ok();
        let origin = fs::read(server.prefix.join("origin").join(f)).ok();
        checks.check(cached.is_some() && cached == origin, || {
            format!("{f} is not in the cache")
        });
    }
    let access = fs::read_to_string(server.prefix.join("logs/access.log")).unwrap_or_default();
    let gets: Vec<&str> = access
        .lines()
        .filter(|l| l.contains("GET /origin/"))
        .collect();
    checks.check(
        gets.len() == 2
            && gets
                .iter()
                .all(|l| l.contains("?addr=127.0.0.1&token=a%20b HTTP/1.0\" 200")),
        || format!("origin requests (one per file, then the cache): {gets:#?}"),
    );
    // Nothing left in the temporary directory.
    let temps: Vec<_> = fs::read_dir(server.prefix.join("tmp"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("nginx-rtmp-vod-")
        })
        .collect();
    checks.check(temps.is_empty(), || {
        format!("temporary files left: {temps:?}")
    });
    let mut c = RtmpClient::connect(&server.rtmp_addr(), "vod").expect("connect");
    let codes = c.play("absent").unwrap_or_default();
    checks.check(
        codes.iter().any(|c| c == "NetStream.Play.StreamNotFound"),
        || format!("a file the origin does not have: {codes:?}"),
    );
    drop(c);
    checks.finish(server);
}
