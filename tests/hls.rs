//! HLS the way viewers get it: ffmpeg publishes over RTMP, the module writes playlists and
//! segments, nginx serves them over HTTP, and ffprobe, ffmpeg and a headless browser with hls.js
//! check what a player would see. Each test gathers every failed aspect before failing (see
//! [`Checks`]), so one run shows all that is wrong.
//!
//! Expected failures with `RTMP_IT_TARGET=c` (the C nginx-rtmp-module's known weaknesses):
//! - no `#EXT-X-ENDLIST` when publishing ends, no `PROGRAM-DATE-TIME`/`INDEPENDENT-SEGMENTS`,
//!   `TARGETDURATION` may be below a listed duration (it rounds);
//! - audio-only and video-only streams: its PMT declares both tracks;
//! - long GOPs: segments still listed are deleted (`no_listed_segment_is_ever_missing`);
//! - `hls_variant` does not fill `BANDWIDTH`/`RESOLUTION`/`CODECS`/`FRAME-RATE`;
//! - an `hls_path` that cannot be created passes `nginx -t`.

mod common;

use std::fs;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use common::hls::*;
use common::*;

/// Segments of a finished playlist: every one ffprobes with exactly `kinds` (e.g.
/// `["audio:aac", "video:h264"]`).
fn check_segment_streams(checks: &mut Checks, dir: &Path, snap: &Snapshot, kinds: &[&str]) {
    for uri in snap.uris() {
        let path = dir.join(file_name(&uri));
        match stream_kinds(&path.display().to_string()) {
            Ok(k) => {
                // The set of tracks matters, not the order ffprobe happens to list them in.
                let mut got: Vec<&str> = k.iter().map(String::as_str).collect();
                let mut want = kinds.to_vec();
                got.sort_unstable();
                want.sort_unstable();
                checks.check(got == want, || {
                    format!("{uri}: ffprobe shows streams {k:?}, expected {kinds:?}")
                });
            }
            Err(e) => checks.fail(format!("{uri}: {e}")),
        }
    }
}

/// Decodes a playlist over HTTP from its first segment to its end (or `max` seconds).
fn check_decodes(checks: &mut Checks, url: &str, snap: &Snapshot, what: &str) -> Decoded {
    let total = snap.total_duration();
    // A playlist without ENDLIST is live for ffmpeg: bound it by what is listed.
    let max = if snap.playlist.end_list {
        None
    } else {
        Some((total - 0.5).max(1.0))
    };
    let d = decode(url, max, Duration::from_secs(40));
    checks.check(d.ok && d.seconds >= 0.8 * total - 1.0, || {
        format!("{what}: ffmpeg decoding {url} ({total:.1} s listed): {d:#?}")
    });
    d
}

#[test]
fn h264_aac_stream_becomes_playable_hls() {
    let server = start_hls(&[("live", "hls_fragment 2s; hls_playlist_length 10s;")], "");
    let mut checks = Checks::new();
    let pl = playlist_file(&server, "live", "main");
    let dir = hls_dir(&server, "live");
    let url = playlist_url(&server, "live", "main");
    let watcher = Watcher::start(&pl, false);
    let mut publisher = publish(&server.rtmp_url("live/main"), 12);

    // While live: the playlist is well formed and plays over HTTP.
    if let Some(live) = checks.ok(wait_segments(&pl, 3)) {
        checks.extend(header_problems(&live));
        checks.check(!live.playlist.end_list, || {
            format!("#EXT-X-ENDLIST while still publishing:\n{}", live.text)
        });
        let d = decode(&url, Some(3.0), Duration::from_secs(30));
        checks.check(d.ok && d.seconds >= 2.5, || {
            format!("live playlist over HTTP: {d:#?}")
        });
    }

    wait_publisher(&mut publisher, 12);
    let ended_at = Instant::now();
    let (ended, last) = wait_endlist(&pl);
    checks.check(ended, || {
        format!(
            "no #EXT-X-ENDLIST within {ENDLIST_TIMEOUT:?} of the publisher's end; playlist:\n{}",
            last.as_ref().map_or("(unreadable)", |s| s.text.as_str())
        )
    });
    if ended {
        println!("ENDLIST {:?} after the publisher ended", ended_at.elapsed());
    }
    if let Some(last) = last {
        checks.extend(header_problems(&last));
        check_segment_streams(&mut checks, &dir, &last, &["audio:aac", "video:h264"]);
        for uri in last.uris() {
            match first_video_packet_is_key(&dir.join(file_name(&uri))) {
                Ok(Some(true)) => {}
                other => checks.fail(format!(
                    "{uri}: the first video packet is not a keyframe ({other:?})"
                )),
            }
        }
        check_decodes(&mut checks, &url, &last, "whole playlist");
    }
    let report = watcher.stop();
    println!(
        "watcher: {} reads, {} versions, {} segments seen",
        report.reads,
        report.versions,
        report.seen.len()
    );
    checks.check(report.violations.is_empty(), || {
        format!("playlist snapshots: {:#?}", report.violations)
    });
    let errors = access_log_errors(&server, "/hls/");
    checks.check(errors.is_empty(), || {
        format!(
            "HTTP errors for /hls/ in the access log:\n{}",
            errors.join("\n")
        )
    });
    checks.finish(server);
}

/// One-track streams: every segment carries only that track, and the playlist decodes.
fn one_track_stream_plays(audio: bool) {
    let server = start_hls(&[("live", "hls_fragment 1s;")], "");
    let mut checks = Checks::new();
    let name = if audio { "audio" } else { "video" };
    let pl = playlist_file(&server, "live", name);
    let url = server.rtmp_url(&format!("live/{name}"));
    let mut publisher = if audio {
        publish_audio_only(&url, 6)
    } else {
        publish_video_only(&url, 6)
    };
    let kinds: &[&str] = if audio {
        &["audio:aac"]
    } else {
        &["video:h264"]
    };
    checks.ok(wait_segments(&pl, 2));
    wait_publisher(&mut publisher, 6);
    let (_, last) = wait_endlist(&pl);
    match last {
        Some(last) => {
            check_segment_streams(&mut checks, &hls_dir(&server, "live"), &last, kinds);
            check_decodes(
                &mut checks,
                &playlist_url(&server, "live", name),
                &last,
                &format!("{name}-only playlist"),
            );
        }
        None => checks.fail(format!("no playlist {}", pl.display())),
    }
    checks.finish(server);
}

#[test]
fn audio_only_stream_plays() {
    one_track_stream_plays(true);
}

#[test]
fn video_only_stream_plays() {
    one_track_stream_plays(false);
}

#[test]
fn long_gop_is_cut_by_max_fragment() {
    // Two applications side by side: an 8 s GOP with a 4 s cap, and a 1 s GOP.
    let server = start_hls(
        &[
            ("long", "hls_fragment 2s; hls_max_fragment 4s;"),
            ("short", "hls_fragment 2s;"),
        ],
        "",
    );
    let mut checks = Checks::new();
    let secs = 14;
    let mut long = publish_gop(&server.rtmp_url("long/gop8"), secs, 200);
    let mut short = publish_gop(&server.rtmp_url("short/gop1"), secs, 25);
    wait_publisher(&mut long, secs);
    wait_publisher(&mut short, secs);

    let long_pl = playlist_file(&server, "long", "gop8");
    let (_, last) = wait_endlist(&long_pl);
    match last {
        Some(s) => {
            let d = s.durations();
            println!("8 s GOP, hls_max_fragment 4s: {d:?}");
            checks.check(d.len() >= 3, || {
                format!(
                    "expected >= 3 segments from 14 s cut at <= 4 s:\n{}",
                    s.text
                )
            });
            checks.check(d.iter().all(|x| *x <= 4.5), || {
                format!(
                    "a segment is longer than hls_max_fragment 4s (+0.5 s):\n{}",
                    s.text
                )
            });
            check_decodes(
                &mut checks,
                &playlist_url(&server, "long", "gop8"),
                &s,
                "8 s GOP playlist",
            );
        }
        None => checks.fail(format!("no playlist {}", long_pl.display())),
    }

    let short_pl = playlist_file(&server, "short", "gop1");
    let (_, last) = wait_endlist(&short_pl);
    match last {
        Some(s) => {
            let d = s.durations();
            println!("1 s GOP, hls_fragment 2s: {d:?}");
            let body = &d[..d.len().saturating_sub(1)];
            checks.check(body.len() >= 4, || {
                format!("expected >= 5 segments from 14 s:\n{}", s.text)
            });
            checks.check(body.iter().all(|x| (1.5..=2.5).contains(x)), || {
                format!(
                    "with a 1 s GOP and hls_fragment 2s, segments (but the last) should be ~2 s:\n{}",
                    s.text
                )
            });
        }
        None => checks.fail(format!("no playlist {}", short_pl.display())),
    }
    checks.finish(server);
}

#[test]
fn publisher_killed_then_republished_continues_with_discontinuity() {
    let server = start_hls(&[("live", "hls_fragment 2s; hls_playlist_length 60s;")], "");
    let mut checks = Checks::new();
    let pl = playlist_file(&server, "live", "phoenix");
    let url = server.rtmp_url("live/phoenix");
    let watcher = Watcher::start(&pl, false);

    let mut first = publish(&url, 60);
    checks.ok(wait_segments(&pl, 3));
    first.kill(); // SIGKILL: no unpublish, the TCP connection just drops.
    let (ended, after_kill) = wait_endlist(&pl);
    checks.check(ended, || {
        format!(
            "no #EXT-X-ENDLIST within {ENDLIST_TIMEOUT:?} of the publisher being killed:\n{}",
            after_kill
                .as_ref()
                .map_or("(unreadable)", |s| s.text.as_str())
        )
    });
    let before: Vec<String> = after_kill.map(|s| s.uris()).unwrap_or_default();

    let mut second = publish(&url, 7);
    // The republished stream's segments join the same playlist.
    let joined = wait_media(
        &pl,
        PLAYLIST_TIMEOUT,
        "segments of the second publish",
        |s| s.playlist.segments.len() >= before.len() + 2,
    );
    checks.ok(joined);
    wait_publisher(&mut second, 7);
    let (ended, last) = wait_endlist(&pl);
    checks.check(ended, || {
        "no #EXT-X-ENDLIST after the second publish ended".into()
    });

    if let Some(last) = last {
        let uris = last.uris();
        println!("first publish: {before:?}\nfinal playlist:\n{}", last.text);
        checks.check(
            uris.starts_with(&before) && uris.len() > before.len(),
            || {
                format!(
                    "the second publish should continue the first's playlist {before:?}:\n{}",
                    last.text
                )
            },
        );
        let numbers: Vec<Option<u64>> = uris.iter().map(|u| segment_number(u)).collect();
        let continuous = numbers.windows(2).all(|w| match (w[0], w[1]) {
            (Some(a), Some(b)) => b == a + 1,
            _ => false,
        });
        checks.check(continuous, || {
            format!("segment numbers do not continue across the restart: {numbers:?}")
        });
        checks.check(
            numbers.first().copied().flatten() == Some(last.playlist.media_sequence),
            || {
                format!(
                    "#EXT-X-MEDIA-SEQUENCE:{} does not match the first segment {:?}",
                    last.playlist.media_sequence,
                    uris.first()
                )
            },
        );
        // A discontinuity tag on the very first segment is redundant but harmless (the C
        // module writes one); between segments there must be exactly the one of the restart.
        let discont: Vec<usize> = last
            .playlist
            .segments
            .iter()
            .enumerate()
            .filter(|(i, s)| s.discontinuity && *i > 0)
            .map(|(i, _)| i)
            .collect();
        checks.check(discont == vec![before.len()], || {
            format!(
                "expected one #EXT-X-DISCONTINUITY, before segment {} (the first of the \
                 second publish); found before {discont:?}:\n{}",
                before.len(),
                last.text
            )
        });
        checks.extend(header_problems(&last));
        check_decodes(
            &mut checks,
            &playlist_url(&server, "live", "phoenix"),
            &last,
            "the playlist spanning both publishes",
        );
    }
    let report = watcher.stop();
    checks.check(report.violations.is_empty(), || {
        format!("playlist snapshots: {:#?}", report.violations)
    });
    checks.finish(server);
}

#[test]
fn no_listed_segment_is_ever_missing() {
    // Fast rotation (1 s fragments, 3 s window) with cleanup on, for a 1 s GOP and for a GOP
    // longer than the window; and cleanup off.
    let server = start_hls(
        &[
            ("live", "hls_fragment 1s; hls_playlist_length 3s;"),
            (
                "keep",
                "hls_fragment 1s; hls_playlist_length 3s; hls_cleanup off;",
            ),
        ],
        "",
    );
    let mut checks = Checks::new();
    let secs = 15;
    let streams = [
        ("live", "fast", 25),
        ("live", "slow", 100),
        ("keep", "fast", 25),
    ];
    let watchers: Vec<Watcher> = streams
        .iter()
        .map(|(app, name, _)| Watcher::start(&playlist_file(&server, app, name), false))
        .collect();
    let mut publishers: Vec<FfmpegChild> = streams
        .iter()
        .map(|(app, name, gop)| publish_gop(&server.rtmp_url(&format!("{app}/{name}")), secs, *gop))
        .collect();
    for p in &mut publishers {
        wait_publisher(p, secs);
    }
    // Cleanup may lag behind the end of the stream; give it a bounded while.
    let fast_dir = hls_dir(&server, "live");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut early_gone = false;
    let mut fast_seen_so_far = Vec::new();
    while Instant::now() < deadline {
        thread::sleep(Duration::from_millis(500));
        // The watcher thread owns its report; peek at the disk instead: the first segment
        // listed for live/fast is its lowest number.
        let mut names: Vec<String> = fs::read_dir(&fast_dir)
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with("fast-") && n.ends_with(".ts"))
                    .collect()
            })
            .unwrap_or_default();
        names.sort_by_key(|n| segment_number(n));
        fast_seen_so_far = names;
        if fast_seen_so_far
            .first()
            .and_then(|n| segment_number(n))
            .is_some_and(|n| n > 2)
        {
            early_gone = true;
            break;
        }
    }
    let reports: Vec<WatchReport> = watchers.into_iter().map(Watcher::stop).collect();
    for ((app, name, gop), r) in streams.iter().zip(&reports) {
        println!(
            "{app}/{name} (GOP {gop} frames): {} reads, {} versions, {} segments seen, at most {} listed, {} .ts files left",
            r.reads,
            r.versions,
            r.seen.len(),
            r.max_listed,
            count_ts(&hls_dir(&server, app), name),
        );
        checks.check(r.seen.len() >= 3, || {
            format!("{app}/{name}: only {} segments ever listed", r.seen.len())
        });
        checks.check(r.violations.is_empty(), || {
            format!(
                "{app}/{name} (GOP {gop} frames): listed segments missing:\n{:#?}",
                r.violations
            )
        });
    }
    // Cleanup on: old segments of live/fast are deleted eventually.
    let fast = &reports[0];
    checks.check(early_gone, || {
        format!(
            "hls_cleanup on: the first segments of live/fast were never deleted; {} seen, on disk: {fast_seen_so_far:?}",
            fast.seen.len()
        )
    });
    // Cleanup off: every segment ever listed is still there.
    let keep = &reports[2];
    let keep_dir = hls_dir(&server, "keep");
    let gone: Vec<&String> = keep
        .seen
        .iter()
        .filter(|n| !keep_dir.join(n).exists())
        .collect();
    checks.check(gone.is_empty(), || {
        format!("hls_cleanup off, yet these segments were deleted: {gone:?}")
    });
    checks.finish(server);
}

#[test]
fn nested_and_base_url_layout() {
    let server = start_hls(
        &[
            ("nested", "hls_fragment 1s; hls_nested on;"),
            (
                "based",
                "hls_fragment 1s; hls_base_url http://127.0.0.1:{HTTP_PORT}/hls/based/;",
            ),
        ],
        "",
    );
    let mut checks = Checks::new();
    let secs = 7;
    let mut p1 = publish(&server.rtmp_url("nested/ns"), secs);
    let mut p2 = publish(&server.rtmp_url("based/bs"), secs);

    // hls_nested: <hls_path>/<name>/index.m3u8 with segment URIs relative to it.
    let nested_dir = hls_dir(&server, "nested").join("ns");
    let nested_pl = nested_dir.join("index.m3u8");
    if let Some(s) = checks.ok(wait_segments(&nested_pl, 2)) {
        checks.check(!hls_dir(&server, "nested").join("ns.m3u8").exists(), || {
            "hls_nested on, yet <hls_path>/ns.m3u8 exists".into()
        });
        for uri in s.uris() {
            checks.check(!uri.contains('/') && !uri.contains(':'), || {
                format!("hls_nested: segment URI {uri} should be relative to index.m3u8")
            });
            checks.check(nested_dir.join(&uri).is_file(), || {
                format!("hls_nested: {uri} is not in {}", nested_dir.display())
            });
            let path = resolve_path("/hls/nested/ns/index.m3u8", &uri);
            match http_get(server.http_port, &path) {
                Ok(r) => {
                    checks.check(r.status == 200 && !r.body.is_empty(), || {
                        format!("GET {path}: {}", r.status)
                    });
                }
                Err(e) => checks.fail(e),
            }
        }
    }

    // hls_base_url: every segment URI is the base URL + the file name, and resolves.
    let base = format!("http://127.0.0.1:{}/hls/based/", server.http_port);
    let based_pl = playlist_file(&server, "based", "bs");
    if let Some(s) = checks.ok(wait_segments(&based_pl, 2)) {
        for uri in s.uris() {
            checks.check(
                uri.strip_prefix(&base)
                    .is_some_and(|rest| rest.starts_with("bs-") && rest.ends_with(".ts")),
                || format!("hls_base_url: segment URI {uri} should be {base}bs-N.ts"),
            );
            let path = resolve_path("/hls/based/bs.m3u8", &uri);
            match http_get(server.http_port, &path) {
                Ok(r) => {
                    checks.check(
                        r.status == 200 && (r.body.len() as u64).is_multiple_of(TS_PACKET),
                        || format!("GET {path}: {} ({} bytes)", r.status, r.body.len()),
                    );
                }
                Err(e) => checks.fail(e),
            }
        }
    }
    // Players resolve both layouts.
    let nested_url = server.http_url("/hls/nested/ns/index.m3u8");
    let based_url = playlist_url(&server, "based", "bs");
    let d1 = thread::spawn(move || decode(&nested_url, Some(2.0), Duration::from_secs(30)));
    let d2 = decode(&based_url, Some(2.0), Duration::from_secs(30));
    let d1 = d1.join().expect("decode thread");
    checks.check(d1.ok, || format!("nested playlist over HTTP: {d1:#?}"));
    checks.check(d2.ok, || format!("base_url playlist over HTTP: {d2:#?}"));
    wait_publisher(&mut p1, secs);
    wait_publisher(&mut p2, secs);
    checks.finish(server);
}

#[test]
fn variants_master_playlist() {
    let server = start_hls(
        &[(
            "live",
            "hls_fragment 1s; hls_variant _hi BANDWIDTH=800000; hls_variant _lo;",
        )],
        "",
    );
    let mut checks = Checks::new();
    let secs = 8;
    let mut hi = publish(&server.rtmp_url("live/var_hi"), secs);
    let mut lo = common::ffmpeg::publish_with(
        &server.rtmp_url("live/var_lo"),
        secs,
        &["-s", "160x120", "-b:v", "200k"],
    );
    checks.ok(wait_segments(&playlist_file(&server, "live", "var_hi"), 2));
    checks.ok(wait_segments(&playlist_file(&server, "live", "var_lo"), 2));

    let master_path = playlist_file(&server, "live", "var");
    let text = fs::read_to_string(&master_path).unwrap_or_default();
    println!("master playlist:\n{text}");
    checks.check(text.starts_with("#EXTM3U"), || {
        format!("no master playlist at {}:\n{text}", master_path.display())
    });
    let infs = stream_infs(&text);
    let uris: Vec<&str> = infs.iter().map(|v| v.uri.as_str()).collect();
    checks.check(uris == ["var_hi.m3u8", "var_lo.m3u8"], || {
        format!("master lists {uris:?}, expected var_hi.m3u8 then var_lo.m3u8")
    });
    for (v, (bw, res)) in infs
        .iter()
        .zip([(Some("800000"), "320x240"), (None, "160x120")])
    {
        let uri = &v.uri;
        let bandwidth = v.attr("BANDWIDTH");
        match bw {
            Some(bw) => checks.check(bandwidth == Some(bw), || {
                format!("{uri}: configured BANDWIDTH={bw}, got {bandwidth:?}")
            }),
            None => checks.check(
                bandwidth
                    .and_then(|b| b.parse::<u64>().ok())
                    .is_some_and(|b| b > 0),
                || format!("{uri}: BANDWIDTH not filled from the stream ({bandwidth:?})"),
            ),
        };
        checks.check(v.attr("RESOLUTION") == Some(res), || {
            format!(
                "{uri}: RESOLUTION {:?}, expected {res}",
                v.attr("RESOLUTION")
            )
        });
        let codecs = v.attr("CODECS").unwrap_or_default();
        checks.check(
            codecs.contains("avc1.") && codecs.contains("mp4a.40.2"),
            || format!("{uri}: CODECS {codecs:?}, expected \"avc1.*,mp4a.40.2\""),
        );
        let fps = v.attr("FRAME-RATE").and_then(|f| f.parse::<f64>().ok());
        checks.check(fps.is_some_and(|f| (f - 25.0).abs() < 0.5), || {
            format!("{uri}: FRAME-RATE {fps:?}, expected 25")
        });
    }
    // An independent parser reads it the same way.
    match parse_master(&text) {
        Ok(m) => {
            checks.check(m.variants.len() == 2, || {
                format!(
                    "m3u8-rs finds {} variants in the master playlist",
                    m.variants.len()
                )
            });
            if text.contains("PROGRAM-ID") {
                checks.check(m.version.unwrap_or(1) < 6, || {
                    "PROGRAM-ID is not allowed with EXT-X-VERSION 6 or later".into()
                });
            }
        }
        Err(e) => checks.fail(e),
    }
    // A player given the master picks a variant and plays.
    let d = decode(
        &playlist_url(&server, "live", "var"),
        Some(2.0),
        Duration::from_secs(30),
    );
    checks.check(d.ok, || format!("master playlist over HTTP: {d:#?}"));
    wait_publisher(&mut hi, secs);
    wait_publisher(&mut lo, secs);
    checks.finish(server);
}

#[test]
fn aes_128_keys() {
    let server = start_hls(
        &[(
            "live",
            "hls_fragment 1s; hls_keys on; hls_key_path {PREFIX}/keys; \
             hls_key_url http://127.0.0.1:{HTTP_PORT}/keys/; hls_fragments_per_key 2;",
        )],
        &hls_http_location("/keys/", "{PREFIX}/keys/"),
    );
    let mut checks = Checks::new();
    let pl = playlist_file(&server, "live", "secret");
    let watcher = Watcher::start(&pl, true);
    let secs = 9;
    let mut p = publish(&server.rtmp_url("live/secret"), secs);
    checks.ok(wait_segments(&pl, 2));
    wait_publisher(&mut p, secs);
    let (_, last) = wait_endlist(&pl);
    let key_url = format!("http://127.0.0.1:{}/keys/", server.http_port);
    let keys_dir = server.prefix.join("keys");
    if let Some(s) = last {
        println!("{}", s.text);
        // The key in force for each segment (EXT-X-KEY applies until the next one).
        let mut current: Option<String> = None;
        let mut per_segment = Vec::new();
        for seg in &s.playlist.segments {
            if let Some(k) = &seg.key {
                checks.check(format!("{:?}", k.method) == "AES128", || {
                    format!("EXT-X-KEY method {:?}, expected AES-128", k.method)
                });
                current = k.uri.clone();
            }
            per_segment.push(current.clone());
        }
        checks.check(per_segment.iter().all(Option::is_some), || {
            format!("a segment has no key:\n{}", s.text)
        });
        // Runs of segments under the same key: 2 each (the first and last may be cut short).
        let mut runs: Vec<usize> = Vec::new();
        for w in per_segment.windows(2) {
            if runs.is_empty() {
                runs.push(1);
            }
            if w[0] == w[1] {
                *runs.last_mut().expect("run") += 1;
            } else {
                runs.push(1);
            }
        }
        let interior_ok = runs.len() >= 3 && runs[1..runs.len() - 1].iter().all(|r| *r == 2);
        checks.check(interior_ok && runs.iter().all(|r| *r <= 2), || {
            format!(
                "hls_fragments_per_key 2: keys should rotate every 2 segments; runs {runs:?}:\n{}",
                s.text
            )
        });
        let mut distinct = std::collections::BTreeSet::new();
        for uri in per_segment.iter().flatten() {
            checks.check(uri.starts_with(&key_url), || {
                format!("key URI {uri} should start with hls_key_url {key_url}")
            });
            let file = keys_dir.join(file_name(uri));
            match fs::read(&file) {
                Ok(k) => {
                    checks.check(k.len() == 16, || {
                        format!(
                            "{}: {} bytes, an AES-128 key is 16",
                            file.display(),
                            k.len()
                        )
                    });
                    distinct.insert(k);
                }
                Err(e) => checks.fail(format!("key file {}: {e}", file.display())),
            }
        }
        checks.check(distinct.len() >= 2, || {
            format!(
                "{} distinct keys; rotation should give several",
                distinct.len()
            )
        });
        // Segments are not plain TS.
        for uri in s.uris() {
            let data = fs::read(hls_dir(&server, "live").join(file_name(&uri))).unwrap_or_default();
            let plain = data.first() == Some(&0x47) && data.get(188) == Some(&0x47);
            checks.check(!plain, || format!("{uri} is plain MPEG-TS, not encrypted"));
        }
        check_decodes(
            &mut checks,
            &playlist_url(&server, "live", "secret"),
            &s,
            "encrypted playlist (keys over HTTP)",
        );
    } else {
        checks.fail(format!("no playlist {}", pl.display()));
    }
    let report = watcher.stop();
    checks.check(report.violations.is_empty(), || {
        format!("playlist snapshots: {:#?}", report.violations)
    });
    checks.finish(server);
}

/// Depends on the design choice that an unusable `hls_path` is found at `nginx -t` time.
#[test]
fn hls_path_that_cannot_be_created_fails_nginx_t_with_a_clear_message() {
    let prefix = TestPrefix::new();
    let blocker = prefix.0.join("afile");
    fs::write(&blocker, "a regular file where a directory should be\n").expect("write afile");
    let bad_path = blocker.join("hls");
    let rtmp = hls_rtmp_block(&[("live", "")]).replace(
        "hls_path {PREFIX}/tmp/live;",
        &format!("hls_path {};", bad_path.display()),
    );
    let conf = render_conf(&prefix.0, &rtmp, "", free_port(), free_port());
    let conf_path = prefix.0.join("conf/nginx.conf");
    fs::write(&conf_path, &conf).expect("write conf");
    let line = conf
        .lines()
        .position(|l| l.trim_start().starts_with("hls_path "))
        .map(|i| i + 1)
        .expect("hls_path line");
    let (ok, stderr) = nginx_test_config_file(&conf_path, &prefix.0);
    println!("nginx -t:\n{stderr}");
    assert!(
        !ok,
        "nginx -t accepted hls_path {} under a regular file:\n{stderr}",
        bad_path.display()
    );
    assert!(
        stderr.contains(&bad_path.display().to_string()),
        "the message should name the path {}:\n{stderr}",
        bad_path.display()
    );
    let at = format!("{}:{line}", conf_path.display());
    assert!(
        stderr.contains(&at),
        "the message should point at the hls_path directive ({at}):\n{stderr}"
    );
    for bad in ["[alert]", "panicked", "exited on signal"] {
        assert!(!stderr.contains(bad), "{bad} from nginx -t:\n{stderr}");
    }
}

#[test]
fn example_config_serves_playable_hls_with_cache_and_cors_headers() {
    // nginx-conf/nginx.conf as scripts/run.sh runs it (relative hls_path and alias, workers
    // as the config says), only the ports and the module path changed.
    let mut nginx = ExampleNginx::start();
    let mut checks = Checks::new();
    let pl = nginx.prefix.join("tmp/hls/mykey.m3u8");
    let rtmp = format!("rtmp://127.0.0.1:{}/live/mykey", nginx.rtmp_port);
    let secs = 10;
    let mut p = publish(&rtmp, secs);
    let port = nginx.http_port;
    if let Some(s) = checks.ok(wait_segments(&pl, 2)) {
        match http_get(port, "/hls/mykey.m3u8") {
            Ok(r) => {
                checks.check(r.status == 200, || format!("GET playlist: {}", r.status));
                checks.check(
                    r.header("Content-Type") == Some("application/vnd.apple.mpegurl"),
                    || format!("playlist Content-Type {:?}", r.header("Content-Type")),
                );
                checks.check(r.header("Cache-Control") == Some("no-cache"), || {
                    format!("playlist Cache-Control {:?}", r.header("Cache-Control"))
                });
                checks.check(r.header("Access-Control-Allow-Origin") == Some("*"), || {
                    "playlist without Access-Control-Allow-Origin: *".into()
                });
            }
            Err(e) => checks.fail(e),
        }
        let seg = format!("/hls/{}", file_name(&s.uris()[0]));
        match http_get(port, &seg) {
            Ok(r) => {
                checks.check(r.status == 200, || format!("GET {seg}: {}", r.status));
                checks.check(r.header("Content-Type") == Some("video/mp2t"), || {
                    format!("segment Content-Type {:?}", r.header("Content-Type"))
                });
                checks.check(
                    r.header("Cache-Control")
                        .is_some_and(|c| c.contains("max-age=") && !c.contains("no-cache")),
                    || format!("segment Cache-Control {:?}", r.header("Cache-Control")),
                );
                checks.check(r.header("Access-Control-Allow-Origin") == Some("*"), || {
                    "segment without Access-Control-Allow-Origin: *".into()
                });
            }
            Err(e) => checks.fail(e),
        }
        // CORS preflight from a page on another origin.
        match http_request(
            port,
            "OPTIONS",
            "/hls/mykey.m3u8",
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
                checks.check(
                    r.header("Access-Control-Allow-Methods")
                        .is_some_and(|m| m.contains("GET")),
                    || "preflight without Access-Control-Allow-Methods: GET".into(),
                );
            }
            Err(e) => checks.fail(e),
        }
        // A stream that does not exist: 404, readable cross-origin, not cacheable.
        match http_get(port, "/hls/nothere.m3u8") {
            Ok(r) => {
                checks.check(r.status == 404, || {
                    format!("missing playlist: {}", r.status)
                });
                checks.check(r.header("Access-Control-Allow-Origin") == Some("*"), || {
                    "404 without Access-Control-Allow-Origin".into()
                });
                checks.check(
                    !r.header("Cache-Control")
                        .is_some_and(|c| c.contains("max-age")),
                    || "a 404 must not be cacheable".into(),
                );
            }
            Err(e) => checks.fail(e),
        }
        let d = decode(
            &format!("http://127.0.0.1:{port}/hls/mykey.m3u8"),
            Some(2.0),
            Duration::from_secs(30),
        );
        checks.check(d.ok, || format!("example config's HLS over HTTP: {d:#?}"));
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

/// The http locations of the browser player page (`/player/`, with hls.js from npm).
fn player_locations() -> String {
    let browser_dir = manifest_dir().join("tests/browser");
    let hls_js = browser_dir.join("node_modules/hls.js/dist/hls.min.js");
    assert!(
        browser_dir.join("node_modules/playwright-core").is_dir() && hls_js.is_file(),
        "tests/browser has no node_modules: run: npm ci --prefix tests/browser"
    );
    assert!(
        Path::new("/usr/bin/chromium").is_file(),
        "Debian's chromium is missing: apt-get install chromium (scripts/test.sh does)"
    );
    // The page is served by the same nginx under another origin (localhost vs 127.0.0.1), so
    // the HLS location's CORS headers are needed, as for a real player page.
    format!(
        "location /player/ {{\n\
         \x20   alias {dir}/;\n\
         \x20   types {{ text/html html; application/javascript js; }}\n\
         }}\n\
         location = /player/hls.min.js {{\n\
         \x20   alias {hls_js};\n\
         \x20   default_type application/javascript;\n\
         }}\n",
        dir = browser_dir.display(),
        hls_js = hls_js.display(),
    )
}

/// Chromium + hls.js play `live/<name>` published with `app_directives` for 10 s: the video
/// advances >= 5 s with no hls.js error.
fn browser_plays(name: &str, app_directives: &str, extra_http: &str) {
    let player = player_locations();
    let server = start_hls(
        &[("live", app_directives)],
        &format!("{player}{extra_http}"),
    );
    let mut checks = Checks::new();
    let pl = playlist_file(&server, "live", name);
    let secs = 28;
    let mut p = publish(&server.rtmp_url(&format!("live/{name}")), secs);
    if checks.ok(wait_segments(&pl, 4)).is_some() {
        let page = format!(
            "http://localhost:{}/player/index.html?src={}",
            server.http_port,
            playlist_url(&server, "live", name)
        );
        let r = run_browser(&page, 10);
        println!("browser: {}\nnode stderr:\n{}", r.json.trim(), r.stderr);
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
            format!("hls.js reported errors: {}", r.json)
        });
    }
    p.kill();
    checks.finish(server);
}

#[test]
fn browser_plays_live_hls_with_hls_js() {
    browser_plays("browser", "hls_fragment 1s; hls_playlist_length 6s;", "");
}

/// hls.js fetches the keys over HTTP and decrypts AES-128 segments in the browser.
#[test]
fn browser_plays_aes_128_hls_with_hls_js() {
    browser_plays(
        "secret",
        "hls_fragment 1s; hls_playlist_length 6s; hls_keys on; hls_key_path {PREFIX}/keys; \
         hls_key_url http://127.0.0.1:{HTTP_PORT}/keys/; hls_fragments_per_key 2;",
        &hls_http_location("/keys/", "{PREFIX}/keys/"),
    );
}

/// MP3 audio (FLV sound format 2) goes into TS as MPEG audio and plays.
#[test]
fn h264_mp3_stream_plays() {
    let server = start_hls(&[("live", "hls_fragment 1s;")], "");
    let mut checks = Checks::new();
    let pl = playlist_file(&server, "live", "mp3");
    let mut publisher = common::ffmpeg::publish_with(
        &server.rtmp_url("live/mp3"),
        6,
        &["-c:a", "libmp3lame", "-ar", "44100", "-b:a", "96k"],
    );
    checks.ok(wait_segments(&pl, 2));
    wait_publisher(&mut publisher, 6);
    let (_, last) = wait_endlist(&pl);
    match last {
        Some(last) => {
            let kinds = ["video:h264", "audio:mp3"];
            check_segment_streams(&mut checks, &hls_dir(&server, "live"), &last, &kinds);
            let url = playlist_url(&server, "live", "mp3");
            check_decodes(&mut checks, &url, &last, "H.264 + MP3 playlist");
        }
        None => checks.fail(format!("no playlist {}", pl.display())),
    }
    checks.finish(server);
}

/// The classic nginx-rtmp ABR ladder: `exec ffmpeg` makes three renditions of a publish into
/// an application with `hls_variant`, and hls.js in Chromium plays the master playlist as a
/// 3-variant ladder.
#[test]
fn exec_abr_ladder_plays_as_three_variants_in_hls_js() {
    let ff =
        "ffmpeg -hide_banner -nostdin -loglevel error -i rtmp://127.0.0.1:{RTMP_PORT}/live/$name";
    let dst = "-f flv rtmp://127.0.0.1:{RTMP_PORT}/hls";
    let x264 = "-c:v libx264 -preset ultrafast -tune zerolatency -threads 1 -g 25 -c:a copy";
    let rtmp = format!(
        "rtmp {{\n    server {{\n        listen 127.0.0.1:{{RTMP_PORT}};\n\
         \x20       application live {{ live on;\n\
         \x20           exec {ff} -c copy {dst}/$name_hi;\n\
         \x20           exec {ff} {x264} -s 240x180 -b:v 300k {dst}/$name_mid;\n\
         \x20           exec {ff} {x264} -s 160x120 -b:v 150k {dst}/$name_lo;\n\
         \x20       }}\n\
         \x20       application hls {{ live on; hls on; hls_path {{PREFIX}}/tmp/hls;\n\
         \x20           hls_fragment 1s; hls_playlist_length 8s;\n\
         \x20           hls_variant _hi BANDWIDTH=1000000;\n\
         \x20           hls_variant _mid BANDWIDTH=400000;\n\
         \x20           hls_variant _lo BANDWIDTH=200000;\n\
         \x20       }}\n    }}\n}}\n"
    );
    let http = format!(
        "{}{}",
        hls_http_location("/hls/", "{PREFIX}/tmp/"),
        player_locations()
    );
    let server = Server::start(&rtmp, &http);
    let mut checks = Checks::new();
    let mut p = publish(&server.rtmp_url("live/abr"), 30);
    for v in ["abr_hi", "abr_mid", "abr_lo"] {
        checks.ok(wait_segments(&playlist_file(&server, "hls", v), 3));
    }
    let master = fs::read_to_string(playlist_file(&server, "hls", "abr")).unwrap_or_default();
    let uris: Vec<String> = stream_infs(&master).iter().map(|v| v.uri.clone()).collect();
    checks.check(
        uris == ["abr_hi.m3u8", "abr_mid.m3u8", "abr_lo.m3u8"],
        || format!("master playlist:\n{master}"),
    );
    let page = format!(
        "http://localhost:{}/player/index.html?src={}",
        server.http_port,
        playlist_url(&server, "hls", "abr")
    );
    let r = run_browser(&page, 10);
    println!("browser: {}", r.json.trim());
    let levels = json_number(&r.json, "levels");
    checks.check(levels == Some(3.0), || {
        format!("hls.js levels: {levels:?}: {}", r.json)
    });
    checks.check(r.advanced.is_some_and(|a| a >= 5.0), || {
        format!(
            "video.currentTime advanced {:?} s in 10 s: {}",
            r.advanced, r.json
        )
    });
    checks.check(r.error_count == Some(0.0), || {
        format!("hls.js errors: {}", r.json)
    });
    p.kill();
    checks.finish(server);
}
