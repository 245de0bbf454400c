//! MPEG-DASH the way viewers get it: ffmpeg publishes over RTMP, the module writes MPDs and
//! fMP4 segments, nginx serves them over HTTP, and ffprobe, ffmpeg and a headless browser with
//! dash.js check what a player would see. The MPD is read with an independent XML parser and
//! every segment's availability is computed from the MPD's own timing, as a player does.
//!
//! Expected failures with `RTMP_IT_TARGET=c` (the C nginx-rtmp-module's known weaknesses):
//! - its `availabilityStartTime` is in whole seconds, so its MPD says each segment became
//!   available 0-1 s before it was written (`no_segment_is_announced_before_it_exists`, and the
//!   watcher of `h264_aac_stream_becomes_playable_dash`; the first passes on the C module in the
//!   runs where publishing happens to start early in a second). It lists a segment only once
//!   its file is complete, though;
//! - its MPD has no `suggestedPresentationDelay`, no `UTCTiming`, `bandwidth="0"` for video,
//!   `AudioChannelConfiguration` 1 for stereo, `xsi` bound to a wrong namespace,
//!   `timeShiftBufferDepth` 9 s with `dash_playlist_length 30s`, and it stays `dynamic` after
//!   the publisher stops;
//! - dash.js, finding no `UTCTiming`, asks an outside time server (the browser test).

mod common;

use std::fs;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use common::dash::*;
use common::ffmpeg::publish_with;
use common::hls::{
    access_log_errors, http_get, http_request, json_number, run_browser, stream_kinds,
    wait_publisher, Checks, Decoded, ExampleNginx,
};
use common::*;

/// The tracks ffprobe finds in an MPD (over HTTP) are exactly `kinds`.
fn check_kinds(checks: &mut Checks, url: &str, kinds: &[&str]) {
    match stream_kinds(url) {
        Ok(k) => checks.check(k == kinds, || {
            format!("ffprobe {url}: streams {k:?}, expected {kinds:?}")
        }),
        Err(e) => checks.check(false, || e),
    };
}

/// `ffmpeg -v error -i <mpd> -t <secs>` decodes at least `secs - 0.5` s with no error.
///
/// ffmpeg's DASH demuxer, once it reaches the newest listed segment of a live MPD, requests the
/// next segment's URL (guessed from the template) in a busy loop until it exists: every module
/// gets 404s from it there. So live decodes here start once enough is listed that ffmpeg never
/// reaches the live edge, and the access log must then have no error at all.
fn check_live_decode(checks: &mut Checks, url: &str, secs: f64, what: &str) -> Decoded {
    let d = decode_dash(url, Some(secs), Duration::from_secs(40));
    checks.check(d.ok && d.seconds >= secs - 0.5, || {
        format!("{what}: ffmpeg decoding {secs} s of {url}: {d:#?}")
    });
    d
}

fn check_no_http_errors(checks: &mut Checks, server: &Server) {
    let errors = access_log_errors(server, "/dash/");
    checks.check(errors.is_empty(), || {
        let n = errors.len();
        let head: Vec<&str> = errors.iter().take(10).map(String::as_str).collect();
        format!(
            "{n} HTTP errors for /dash/ in the access log (players got them), first:\n{}",
            head.join("\n")
        )
    });
}

#[test]
fn h264_aac_stream_becomes_playable_dash() {
    // A window longer than the stream, so that ffmpeg can decode 10 s of a live MPD without
    // reaching its live edge (see check_live_decode).
    let server = start_dash(
        &[("live", "dash_fragment 2s; dash_playlist_length 30s;")],
        "",
    );
    let mut checks = Checks::new();
    let stream = Stream::new(&server, "live", "main", false);
    let watcher = DashWatcher::start(&stream);
    let secs = 16;
    // Stereo, so that the channel configuration has something to get right.
    let mut publisher = publish_with(&server.rtmp_url("live/main"), secs, &["-ac", "2"]);
    let expect = Expect {
        video: true,
        audio: true,
        playlist_length: 30.0,
        fragment: 2.0,
        audio_channels: 2,
    };

    let live = stream.wait(MPD_TIMEOUT, "an MPD listing 12 s", |m| {
        m.reps().count() == 2 && m.min_segments() >= 1 && m.listed_seconds() >= 12.0
    });
    if let Some(live) = checks.ok(live) {
        checks.extend(live_mpd_problems(&live, &expect));
        checks.extend(utc_timing_problems(&stream, &live));
        // The codecs string is the init segment's own profile and level.
        for r in live.reps_of("video") {
            let init = live
                .segments()
                .into_iter()
                .find(|s| s.kind == SegKind::Init && s.rep == r.id());
            let from_init = init
                .and_then(|s| stream.disk_path(&s.url_path))
                .and_then(|p| avc1_codec_of_init(&p));
            checks.check(
                from_init.as_deref().map(str::to_ascii_lowercase)
                    == r.attr("codecs").map(str::to_ascii_lowercase),
                || {
                    format!(
                        "video codecs {:?} but the init segment's avcC says {from_init:?}",
                        r.attr("codecs")
                    )
                },
            );
        }
        check_kinds(&mut checks, &stream.url, &["audio:aac", "video:h264"]);
        match probe_audio_channels(&stream.url) {
            Ok(c) => checks.check(c == 2, || {
                format!("ffprobe finds {c} audio channels, published 2")
            }),
            Err(e) => checks.check(false, || e),
        };
        check_live_decode(&mut checks, &stream.url, 10.0, "live MPD");
    }

    wait_publisher(&mut publisher, secs);
    let ended_at = Instant::now();
    let (ended, last) = stream.wait_final();
    checks.check(ended, || {
        format!(
            "the MPD does not signal the end within {FINAL_TIMEOUT:?} of the publisher's end:\n{}",
            last.as_ref().map_or("(unreadable)", |m| m.text.as_str())
        )
    });
    if let (true, Some(last)) = (ended, last) {
        println!(
            "final MPD {:?} after the publisher ended",
            ended_at.elapsed()
        );
        checks.extend(final_mpd_problems(&last));
        let total = last.listed_seconds();
        // ffmpeg reads a static MPD to its end; a dynamic one (end signalled by a duration) it
        // treats as live, so it is kept off the live edge there (see check_live_decode).
        let max = (last.is_dynamic()).then_some((total - 2.5).max(1.0));
        let d = decode_dash(&stream.url, max, Duration::from_secs(40));
        checks.check(d.ok && d.seconds >= 0.8 * total - 1.0, || {
            format!("final MPD ({total:.1} s listed): {d:#?}")
        });
    }
    let report = watcher.stop();
    println!("watcher: {}", report.summary());
    checks.check(report.violations().is_empty(), || {
        format!("MPD snapshots: {:#?}", report.violations())
    });
    check_no_http_errors(&mut checks, &server);
    checks.finish(server);
}

#[test]
fn audio_only_and_video_only_streams_play_as_dash() {
    let server = start_dash(
        &[("live", "dash_fragment 1s; dash_playlist_length 10s;")],
        "",
    );
    let mut checks = Checks::new();
    let secs = 10;
    let tracks = [
        ("audio", "-vn", "audio:aac"),
        ("video", "-an", "video:h264"),
    ];
    let mut publishers: Vec<_> = tracks
        .iter()
        .map(|(name, drop, _)| {
            publish_with(&server.rtmp_url(&format!("live/{name}")), secs, &[drop])
        })
        .collect();
    for (kind, _, probe_kind) in tracks {
        let stream = Stream::new(&server, "live", kind, false);
        let Some(m) = checks.ok(stream.wait(MPD_TIMEOUT, "an MPD listing 6 s", |m| {
            m.min_segments() >= 1 && m.listed_seconds() >= 6.0
        })) else {
            continue;
        };
        let sets = m.sets().count();
        let reps: Vec<&Representation> = m.reps().collect();
        checks.check(sets == 1 && reps.len() == 1, || {
            format!(
                "{kind}-only: {sets} AdaptationSets, {} Representations, expected 1 and 1:\n{}",
                reps.len(),
                m.text
            )
        });
        for r in reps {
            checks.check(r.kind() == kind, || {
                format!("{kind}-only: a {} Representation:\n{}", r.kind(), m.text)
            });
            let mime = format!("{kind}/mp4");
            checks.check(r.attr("mimeType") == Some(mime.as_str()), || {
                format!("{kind}-only: mimeType {:?}", r.attr("mimeType"))
            });
        }
        check_kinds(&mut checks, &stream.url, &[probe_kind]);
        check_live_decode(&mut checks, &stream.url, 3.0, &format!("{kind}-only MPD"));
    }
    for p in &mut publishers {
        wait_publisher(p, secs);
    }
    check_no_http_errors(&mut checks, &server);
    checks.finish(server);
}

#[test]
fn no_segment_is_announced_before_it_exists() {
    let server = start_dash(
        &[("live", "dash_fragment 1s; dash_playlist_length 5s;")],
        "",
    );
    let mut checks = Checks::new();
    let stream = Stream::new(&server, "live", "early", false);
    let watcher = DashWatcher::start(&stream);
    let secs = 10;
    let mut p = publish_with(&server.rtmp_url("live/early"), secs, &[]);
    wait_publisher(&mut p, secs);
    thread::sleep(Duration::from_secs(1));
    let report = watcher.stop();
    println!("watcher: {}", report.summary());
    println!(
        "target {:?}: {} segment(s) listed as available while not on disk; {} said to be available \
         more than {CLAIM_TOLERANCE} s before they were written (largest lead {:?} s)",
        target(),
        report.early.len(),
        report.claimed_early.len(),
        report.max_claim_lead
    );
    for e in report.early.iter().chain(&report.claimed_early).take(10) {
        println!("  {e}");
    }
    checks.check(report.reads >= 50 && report.seen.len() >= 10, || {
        format!("the watcher saw too little to judge: {}", report.summary())
    });
    checks.check(report.early.is_empty(), || {
        format!(
            "{} segment(s) listed as available before they were complete on disk:\n{}",
            report.early.len(),
            report.early.join("\n")
        )
    });
    checks.check(report.claimed_early.is_empty(), || {
        format!(
            "{} segment(s) whose availability time (availabilityStartTime + end of the segment) \
             came before they were on disk; a player going by the MPD's clock gets 404s:\n{}",
            report.claimed_early.len(),
            report.claimed_early.join("\n")
        )
    });
    checks.check(report.torn.is_empty(), || format!("{:#?}", report.torn));
    checks.finish(server);
}

/// ffmpeg's DASH reader, at the live edge, asks for the URL after the newest listed segment in
/// a busy loop (hundreds of 404s a second). When it got a segment before the MPD listed it, it
/// read it again once the MPD did ("non monotonically increasing dts" by one segment). With
/// several workers the HTTP worker sees the disk at any moment, and a segment held back for the
/// MPD's clock used to have its final name tens of milliseconds before it was listed; now it
/// gets that name only right before the MPD that lists it.
#[test]
fn ffmpeg_at_the_live_edge_reads_each_segment_once_with_several_workers() {
    let server = common::workers::Launch::workers(2).start(
        &dash_rtmp_block(&[("live", "dash_fragment 1s; dash_playlist_length 10s;")]),
        &dash_http_location("/dash/", "{PREFIX}/tmp/"),
    );
    let mut checks = Checks::new();
    let stream = Stream::new(&server, "live", "edge", false);
    let secs = 26;
    let mut publisher = publish_with(&server.rtmp_url("live/edge"), secs, &[]);
    let live = stream.wait(MPD_TIMEOUT, "an MPD listing 2 s", |m| {
        m.reps().count() == 2 && m.listed_seconds() >= 2.0
    });
    if checks.ok(live).is_some() {
        // Well past the window, so the reader lives at the live edge.
        let d = decode_dash(&stream.url, Some(18.0), Duration::from_secs(40));
        checks.check(d.ok && d.seconds >= 17.5, || {
            let errors: Vec<&str> = d.stderr.lines().collect();
            format!(
                "ffmpeg decoding 18 s at the live edge of {}: {} s decoded, {:?}, {} error \
                 lines, first: {:?}",
                stream.url,
                d.seconds,
                d.status,
                errors.len(),
                &errors[..errors.len().min(3)]
            )
        });
    }
    wait_publisher(&mut publisher, secs);
    checks.finish(server);
}

#[test]
fn cleanup_keeps_referenced_files() {
    let server = start_dash(
        &[("live", "dash_fragment 1s; dash_playlist_length 3s;")],
        "",
    );
    let mut checks = Checks::new();
    let stream = Stream::new(&server, "live", "rot", false);
    let dir = server.prefix.join("tmp/live");
    let watcher = DashWatcher::start(&stream);
    let secs = 12;
    let mut p = publish_with(&server.rtmp_url("live/rot"), secs, &[]);
    // Old segments go while the stream runs (or, at the latest, a bounded while after it).
    let first = checks
        .ok(stream.wait_segments(1))
        .map(|m| {
            m.segments()
                .into_iter()
                .filter(|s| s.kind == SegKind::Media)
                .filter_map(|s| stream.disk_path(&s.url_path))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    wait_publisher(&mut p, secs);
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut first_gone = false;
    while Instant::now() < deadline {
        if !first.is_empty() && first.iter().all(|f| !f.exists()) {
            first_gone = true;
            break;
        }
        thread::sleep(Duration::from_millis(250));
    }
    let report = watcher.stop();
    let left = media_files(&dir);
    println!(
        "watcher: {}\nfirst listed: {first:?} (gone: {first_gone}); {} media files left: {left:?}",
        report.summary(),
        left.len()
    );
    checks.check(report.seen.len() >= 10, || {
        format!("too few segments to judge cleanup: {}", report.summary())
    });
    checks.check(first_gone, || {
        format!("the first segments {first:?} were never deleted (dash_cleanup is on by default)")
    });
    checks.check(report.deleted_while_listed.is_empty(), || {
        format!(
            "segments deleted while an MPD still listed them:\n{}",
            report.deleted_while_listed.join("\n")
        )
    });
    checks.check(report.init_problems.is_empty(), || {
        format!("init segments: {:#?}", report.init_problems)
    });
    checks.check(report.early.is_empty(), || {
        format!(
            "segments listed as available but never on disk: {:#?}",
            report.early
        )
    });
    // The init segments stay while the MPD exists.
    match stream.read_mpd() {
        Ok(m) => {
            for s in m.segments().iter().filter(|s| s.kind == SegKind::Init) {
                let path = stream.disk_path(&s.url_path);
                checks.check(path.as_ref().is_some_and(|p| p.is_file()), || {
                    format!("init segment {} is gone while the MPD exists", s.url_path)
                });
            }
        }
        Err(e) => checks.fail(format!("the MPD is gone after the stream: {e}")),
    }
    checks.finish(server);
}

#[test]
fn nested_layout() {
    let server = start_dash(
        &[(
            "live",
            "dash_fragment 1s; dash_playlist_length 10s; dash_nested on;",
        )],
        "",
    );
    let mut checks = Checks::new();
    let stream = Stream::new(&server, "live", "nest", true);
    let secs = 10;
    let mut p = publish_with(&server.rtmp_url("live/nest"), secs, &[]);
    let listed = stream.wait(MPD_TIMEOUT, "an MPD listing 6 s", |m| {
        m.min_segments() >= 1 && m.listed_seconds() >= 6.0
    });
    if let Some(m) = checks.ok(listed) {
        for s in m.segments() {
            checks.check(s.url_path.starts_with("/dash/live/nest/"), || {
                format!("{} is not inside the stream's directory", s.url_path)
            });
        }
        for init in ["init.m4v", "init.m4a"] {
            let path = server.prefix.join("tmp/live/nest").join(init);
            checks.check(path.is_file(), || format!("no {}", path.display()));
        }
        let flat = server.prefix.join("tmp/live/nest.mpd");
        checks.check(!flat.exists(), || format!("{} exists too", flat.display()));
        check_kinds(&mut checks, &stream.url, &["audio:aac", "video:h264"]);
        check_live_decode(&mut checks, &stream.url, 3.0, "nested MPD");
    }
    wait_publisher(&mut p, secs);
    check_no_http_errors(&mut checks, &server);
    checks.finish(server);
}

#[test]
fn browser_plays_live_dash_with_dash_js() {
    let browser_dir = manifest_dir().join("tests/browser");
    let dash_js = browser_dir.join("node_modules/dashjs/dist/modern/umd/dash.all.min.js");
    assert!(
        browser_dir.join("node_modules/playwright-core").is_dir() && dash_js.is_file(),
        "tests/browser has no node_modules (or no dashjs): run: npm ci --prefix tests/browser"
    );
    assert!(
        Path::new("/usr/bin/chromium").is_file(),
        "Debian's chromium is missing: apt-get install chromium (scripts/test.sh does)"
    );
    // The page comes from another origin (localhost vs 127.0.0.1), so CORS is exercised.
    let server = start_dash(
        &[("live", "dash_fragment 1s; dash_playlist_length 6s;")],
        &common::browser::player_locations(),
    );
    let mut checks = Checks::new();
    let stream = Stream::new(&server, "live", "browser", false);
    let secs = 30;
    let mut p = publish_with(&server.rtmp_url("live/browser"), secs, &[]);
    if checks.ok(stream.wait_segments(3)).is_some() {
        let page = format!(
            "http://localhost:{}/player/dash.html?src={}",
            server.http_port, stream.url
        );
        let r = run_browser(&page, 10);
        println!("browser: {}\nnode stderr:\n{}", r.json.trim(), r.stderr);
        println!(
            "dash.js live latency: {:?} s",
            json_number(&r.json, "latency")
        );
        checks.check(r.status.is_some_and(|s| s.success()), || {
            format!(
                "node play.mjs failed ({:?}):\n{}\n{}",
                r.status, r.json, r.stderr
            )
        });
        checks.check(r.advanced.is_some_and(|a| a >= 5.0), || {
            format!(
                "video.currentTime advanced {:?} s in 10 s (need >= 5): {}",
                r.advanced, r.json
            )
        });
        checks.check(r.error_count == Some(0.0), || {
            format!("dash.js reported errors: {}", r.json)
        });
        checks.check(json_number(&r.json, "outsideCount") == Some(0.0), || {
            format!(
                "the player needed servers other than this one (a time server?): {}",
                r.json
            )
        });
    }
    // dash.js follows the MPD: it must never be sent an error.
    check_no_http_errors(&mut checks, &server);
    p.kill();
    checks.finish(server);
}

#[test]
fn example_config_serves_playable_dash_with_cache_and_cors_headers() {
    let mut nginx = ExampleNginx::start();
    let mut checks = Checks::new();
    let port = nginx.http_port;
    let stream = Stream {
        mpd: nginx.prefix.join("tmp/dash/mykey.mpd"),
        url_path: "/dash/mykey.mpd".into(),
        url: format!("http://127.0.0.1:{port}/dash/mykey.mpd"),
        http_port: port,
        disk_root: nginx.prefix.join("tmp/dash"),
    };
    let secs = 10;
    let mut p = publish_with(
        &format!("rtmp://127.0.0.1:{}/live/mykey", nginx.rtmp_port),
        secs,
        &[],
    );
    if let Some(m) = checks.ok(stream.wait_segments(2)) {
        match http_get(port, "/dash/mykey.mpd") {
            Ok(r) => {
                checks.check(r.status == 200, || format!("GET MPD: {}", r.status));
                checks.check(
                    r.header("Content-Type") == Some("application/dash+xml"),
                    || format!("MPD Content-Type {:?}", r.header("Content-Type")),
                );
                checks.check(r.header("Cache-Control") == Some("no-cache"), || {
                    format!("MPD Cache-Control {:?}", r.header("Cache-Control"))
                });
                checks.check(r.header("Access-Control-Allow-Origin") == Some("*"), || {
                    "MPD without Access-Control-Allow-Origin: *".into()
                });
            }
            Err(e) => checks.fail(e),
        }
        for s in m.segments() {
            let path = s.url_path.clone();
            let ext_type = if path.ends_with(".m4a") {
                "audio/mp4"
            } else {
                "video/mp4"
            };
            let first_media = m
                .segments()
                .iter()
                .find(|x| x.kind == SegKind::Media && x.rep == s.rep)
                .is_some_and(|x| x.url_path == path);
            if s.kind == SegKind::Media && !first_media {
                continue;
            }
            match http_get(port, &path) {
                Ok(r) => {
                    checks.check(r.status == 200, || format!("GET {path}: {}", r.status));
                    checks.check(r.header("Content-Type") == Some(ext_type), || {
                        format!("{path}: Content-Type {:?}", r.header("Content-Type"))
                    });
                    checks.check(r.header("Access-Control-Allow-Origin") == Some("*"), || {
                        format!("{path} without Access-Control-Allow-Origin: *")
                    });
                    if s.kind == SegKind::Media {
                        checks.check(
                            r.header("Cache-Control")
                                .is_some_and(|c| c.contains("max-age=") && !c.contains("no-cache")),
                            || format!("{path}: Cache-Control {:?}", r.header("Cache-Control")),
                        );
                    }
                }
                Err(e) => checks.fail(e),
            }
        }
        match http_request(
            port,
            "OPTIONS",
            "/dash/mykey.mpd",
            &[
                ("Origin", "http://player.example"),
                ("Access-Control-Request-Method", "GET"),
                ("Access-Control-Request-Headers", "range"),
            ],
        ) {
            Ok(r) => {
                checks.check((200..300).contains(&r.status), || {
                    format!("OPTIONS preflight: {}", r.status)
                });
                checks.check(r.header("Access-Control-Allow-Origin") == Some("*"), || {
                    "preflight without Access-Control-Allow-Origin: *".into()
                });
            }
            Err(e) => checks.fail(e),
        }
        match http_get(port, "/dash/nothere.mpd") {
            Ok(r) => {
                checks.check(r.status == 404, || format!("missing MPD: {}", r.status));
                checks.check(
                    !r.header("Cache-Control")
                        .is_some_and(|c| c.contains("max-age")),
                    || "a 404 must not be cacheable".into(),
                );
            }
            Err(e) => checks.fail(e),
        }
        check_live_decode(&mut checks, &stream.url, 2.0, "the example config's DASH");
    }
    wait_publisher(&mut p, secs);
    let log = nginx.stop();
    let bad: Vec<&str> = log.lines().filter(|l| is_forbidden_log_line(l)).collect();
    checks.check(bad.is_empty(), || {
        format!("error log has forbidden lines:\n{}", bad.join("\n"))
    });
    if !checks.is_empty() {
        println!("--- logs ---\n{}", nginx.logs());
    }
    checks.assert_ok();
}

// ---------------------------------------------------------------------------------------------
// The MPD reader itself (so a wrong reader cannot make the tests above pass)

#[test]
fn mpd_reader_parses_xs_times_and_durations() {
    assert_eq!(parse_datetime("1970-01-01T00:00:00Z"), Ok(0.0));
    assert_eq!(parse_datetime("2000-03-01T00:00:01.5Z"), Ok(951_868_801.5));
    assert_eq!(parse_datetime("1970-01-01T01:00:00+01:00"), Ok(0.0));
    assert!(parse_datetime("yesterday").is_err());
    assert_eq!(parse_duration("PT2S"), Ok(2.0));
    assert_eq!(parse_duration("PT1M30.5S"), Ok(90.5));
    assert_eq!(parse_duration("P1DT1H"), Ok(90_000.0));
    assert!(parse_duration("PT").is_err());
    assert!(parse_duration("2S").is_err());
}

#[test]
fn mpd_reader_expands_templates_and_resolves_urls() {
    assert_eq!(
        expand_template(
            "$RepresentationID$-$Time$-$Number%05d$$$.m4v",
            "v",
            "1",
            Some(7),
            Some(2000)
        ),
        "v-2000-00007$.m4v"
    );
    assert_eq!(
        resolve_url_path("/dash/live/k.mpd", "k-0.m4v"),
        "/dash/live/k-0.m4v"
    );
    assert_eq!(
        resolve_url_path("/dash/live/k/index.mpd", "../x.m4v"),
        "/dash/live/x.m4v"
    );
    assert_eq!(
        resolve_url_path("/dash/a.mpd", "http://h:1/b/c.m4a"),
        "/b/c.m4a"
    );
}

#[test]
fn mpd_reader_computes_segment_availability_like_a_player() {
    let text = r#"<?xml version="1.0"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="dynamic" availabilityStartTime="1970-01-01T00:00:10Z">
 <Period start="PT1S"><AdaptationSet mimeType="video/mp4">
  <SegmentTemplate timescale="1000" media="v-$Time$.m4v" initialization="v-init.m4v" presentationTimeOffset="500">
   <SegmentTimeline><S t="500" d="2000" r="1"/><S d="1000"/></SegmentTimeline></SegmentTemplate>
  <Representation id="v" bandwidth="1"/></AdaptationSet></Period></MPD>"#;
    let m = parse_mpd(text, "/dash/live/k.mpd").expect("parse");
    let avail: Vec<(String, Option<f64>)> = m
        .segments()
        .iter()
        .map(|s| (s.url_path.clone(), s.available_at))
        .collect();
    assert_eq!(
        avail,
        vec![
            ("/dash/live/v-init.m4v".to_string(), None),
            ("/dash/live/v-500.m4v".to_string(), Some(13.0)),
            ("/dash/live/v-2500.m4v".to_string(), Some(15.0)),
            ("/dash/live/v-4500.m4v".to_string(), Some(16.0)),
        ]
    );
    assert!(!m.is_final());
    let ended = text.replace("type=\"dynamic\"", "type=\"static\"");
    assert!(parse_mpd(&ended, "/x.mpd").expect("parse").is_final());
}

#[test]
fn fmp4_check_tells_whole_files_from_partial_ones() {
    let prefix = TestPrefix::new();
    let path = prefix.0.join("seg.m4v");
    let mut bytes = Vec::new();
    for (ty, len) in [(b"moof", 16u32), (b"mdat", 24)] {
        bytes.extend_from_slice(&len.to_be_bytes());
        bytes.extend_from_slice(ty);
        bytes.resize(bytes.len() + len as usize - 8, 0);
    }
    fs::write(&path, &bytes).expect("write");
    assert_eq!(fmp4_problem(&path, SegKind::Media), None);
    assert!(fmp4_problem(&path, SegKind::Init).is_some());
    fs::write(&path, &bytes[..bytes.len() - 1]).expect("write");
    assert!(fmp4_problem(&path, SegKind::Media).is_some());
    assert!(fmp4_problem(&prefix.0.join("nothere.m4v"), SegKind::Media).is_some());
}
