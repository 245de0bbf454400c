//! Enhanced RTMP codecs end to end: ffmpeg 9 (`build/tools/ffmpeg9`, fetched by
//! `scripts/test.sh`; Debian's ffmpeg 5.1 cannot send these) publishes HEVC, AV1, VP9 video and
//! Opus, FLAC, AC-3, E-AC-3 audio over RTMP; the module writes DASH (and HLS in the same
//! application); nginx serves them; the tests check what a player needs:
//! - the MPD has one video and one audio AdaptationSet whose `codecs` are the RFC 6381 strings
//!   of what was published (`hvc1.1.6.L..`, `av01.0.LLM.08`, `vp09.00.LL.08`, `opus`, `flac`,
//!   `ac-3`, `ec-3`, `mp4a.40.2`), equal to what the init segments' sample entries say, with
//!   the published size, rate and channels;
//! - ffmpeg 9 decodes the MPD over HTTP, live and after the end, without an error, and finds
//!   the published codecs, size and channel count;
//! - every segment the MPD lists answers 200 with a complete body while it is listed.
//!
//! `hevc_aac_hls_plays_as_fmp4` is the HLS counterpart: with `hls on` (and the default
//! `hls_container auto`) an HEVC stream is written as fMP4 HLS (`#EXT-X-MAP`, fMP4 segments;
//! a master playlist with video and audio media playlists is fine), which plays with both
//! tracks. `h264_aac_from_ffmpeg9_*` is the baseline: what already works, sent
//! by the same publisher (and HLS stays MPEG-TS for H.264 + AAC).
//!
//! Publishes are 14 s, 320x240 (one 640x360), with cheap encoder settings: two tests at a time
//! fit a 2-core machine. Without ffmpeg 9 the tests fail, or skip with
//! `RTMP_TESTS_ALLOW_SKIP=1`; `FFMPEG9` names another ffmpeg (>= 7 with libx265, libsvtav1,
//! libvpx, libopus).
//!
//! Expected failures with `RTMP_IT_TARGET=c`: all but the baseline (the C nginx-rtmp-module
//! knows no Enhanced RTMP), and the baseline's channel configuration (it says 1 for stereo).

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::dash::*;
use common::enhanced::*;
use common::ffmpeg9::*;
use common::hls::{
    access_log_errors, header_problems, read_media, wait_endlist, wait_publisher, Checks, Snapshot,
};
use common::*;

/// Seconds each test publishes.
const SECS: u32 = 14;
/// Wall bound of one ffmpeg 9 decode.
const DECODE_WALL: Duration = Duration::from_secs(40);

/// `dash on` and `hls on` in application `live`: DASH in `{PREFIX}/tmp/live` (served at
/// `/dash/live/`), HLS in `{PREFIX}/tmp/hls/live` (served at `/hls/live/`).
fn start_server(dash: bool, hls: bool) -> Server {
    let mut app = String::new();
    if dash {
        app.push_str(
            "dash on; dash_path {PREFIX}/tmp/live; dash_fragment 2s; dash_playlist_length 30s;\n",
        );
    }
    if hls {
        app.push_str(
            "hls on; hls_path {PREFIX}/tmp/hls/live; hls_fragment 2s; hls_playlist_length 30s;\n",
        );
    }
    let http = format!(
        "{}{}",
        dash_http_location("/dash/", "{PREFIX}/tmp/"),
        hls_location()
    );
    Server::start(&live_rtmp_block("", &app), &http)
}

/// `/hls/` serving `{PREFIX}/tmp/hls/`, with the MIME types of TS and fMP4 HLS.
fn hls_location() -> String {
    "location /hls/ {\n\
     \x20   alias {PREFIX}/tmp/hls/;\n\
     \x20   types { application/vnd.apple.mpegurl m3u8; video/mp2t ts; video/iso.segment m4s; \
     video/mp4 mp4; }\n\
     \x20   add_header Access-Control-Allow-Origin * always;\n\
     }\n"
    .to_string()
}

fn hls_playlist(server: &Server, name: &str) -> (PathBuf, String) {
    (
        server.prefix.join(format!("tmp/hls/live/{name}.m3u8")),
        format!("/hls/live/{name}.m3u8"),
    )
}

/// The ffmpeg 9 binary, or `None` after `skip_or_fail`.
fn need_ffmpeg9(test: &str) -> Option<PathBuf> {
    let f = ffmpeg9();
    if f.is_none() {
        skip_or_fail(test, &ffmpeg9_missing());
    }
    f
}

fn print_decode(what: &str, d: &Decode9) {
    println!(
        "{what}: exit {:?}, {:.2} s, {} frames; {}",
        d.status,
        d.seconds,
        d.frames,
        d.streams_summary()
    );
    for l in d.errors.iter().chain(d.warnings.iter()) {
        println!("  ffmpeg9: {l}");
    }
}

/// The publisher ran its whole media and exited 0.
fn check_publisher(checks: &mut Checks, p: &mut common::FfmpegChild, media: &Media) {
    wait_publisher(p, SECS);
    let ok = p.status().is_some_and(|s| s.success());
    checks.check(ok, || {
        format!(
            "the ffmpeg 9 publisher ({}) ended with {:?}; its stderr:\n{}",
            media.label(),
            p.status(),
            p.stderr()
        )
    });
}

fn check_no_http_errors(checks: &mut Checks, server: &Server, prefix: &str) {
    let errors = access_log_errors(server, prefix);
    checks.check(errors.is_empty(), || {
        let head: Vec<&str> = errors.iter().take(10).map(String::as_str).collect();
        format!(
            "{} HTTP errors for {prefix} in the access log, first:\n{}",
            errors.len(),
            head.join("\n")
        )
    });
}

fn check_fetches(checks: &mut Checks, report: &FetchReport, what: &str, min_files: usize) {
    println!("{what} fetcher: {}", report.summary());
    checks.check(report.violations.is_empty(), || {
        format!(
            "{what}: listed files that could not be fetched: {:#?}",
            report.violations
        )
    });
    checks.check(report.fetched.len() >= min_files, || {
        format!(
            "{what}: only {} listed files fetched over HTTP, expected at least {min_files}: {:?}",
            report.fetched.len(),
            report.fetched
        )
    });
}

/// One DASH case: publish `media` for [`SECS`] with ffmpeg 9 into an application with DASH
/// and HLS; check the live MPD's tracks and codecs, a live decode, the final MPD and its decode,
/// and every listed segment over HTTP; then the HLS playlist of the same publish decodes too.
/// `after` adds checks once the publisher has ended.
fn dash_case(test: &str, media: Media, after: impl FnOnce(&mut Checks, &Server, &Path)) {
    let Some(ff) = need_ffmpeg9(test) else {
        return;
    };
    println!("{test}: publishing {}", media.label());
    let server = start_server(true, true);
    let mut checks = Checks::new();
    let stream = Stream::new(&server, "live", "cam", false);
    let fetcher = SegmentFetcher::dash(&stream);
    let mut publisher = publish9(&ff, &server.rtmp_url("live/cam"), SECS, &media);

    // Live: 8 s listed (of the video track, else of whatever is listed).
    let live = stream.wait(MPD_TIMEOUT, "an MPD listing 8 s", |m| {
        m.min_segments() >= 1 && m.listed_seconds() >= 8.0
    });
    if let Some(live) = checks.ok(live) {
        println!("live MPD tracks: {}", describe_sets(&live));
        checks.extend(mpd_track_problems(&stream, &live, &media, "live MPD"));
        // 6 s from the first listed segment: ffmpeg stays behind the live edge (see dash.rs).
        let d = decode9(&ff, &stream.url, &[], Some(6.0), DECODE_WALL);
        print_decode("live decode", &d);
        checks.extend(decode_problems(
            &d,
            &media,
            5.5,
            "ffmpeg 9 decoding the live MPD",
        ));
    }

    check_publisher(&mut checks, &mut publisher, &media);
    let (ended, last) = stream.wait_final();
    checks.check(ended, || {
        format!(
            "the MPD does not signal the end within {FINAL_TIMEOUT:?} of the publisher's end:\n{}",
            last.as_ref().map_or("(unreadable)", |m| m.text.as_str())
        )
    });
    if let Some(last) = last {
        checks.extend(mpd_track_problems(&stream, &last, &media, "final MPD"));
        let total = last.listed_seconds();
        let max = last.is_dynamic().then_some((total - 2.5).max(1.0));
        let d = decode9(&ff, &stream.url, &[], max, DECODE_WALL);
        print_decode("final decode", &d);
        let min = (0.8 * total - 1.0).max(1.0);
        checks.extend(decode_problems(
            &d,
            &media,
            min,
            &format!("ffmpeg 9 decoding the final MPD ({total:.1} s listed)"),
        ));
    }
    let report = fetcher.stop();
    // Init + at least 4 media segments per track.
    let tracks = usize::from(media.video.is_some()) + usize::from(media.audio.is_some());
    check_fetches(&mut checks, &report, "DASH", tracks * 5);
    // The same publish over HLS (fMP4 for a codec MPEG-TS cannot carry, listing the DASH
    // segments under second names) decodes just as well.
    let (_, hls_path) = hls_playlist(&server, "cam");
    let d = decode9(
        &ff,
        &server.http_url(&hls_path),
        &[],
        Some(6.0),
        DECODE_WALL,
    );
    print_decode("HLS decode", &d);
    checks.extend(decode_problems(
        &d,
        &media,
        5.5,
        "ffmpeg 9 decoding the HLS playlist",
    ));
    after(&mut checks, &server, &ff);
    check_no_http_errors(&mut checks, &server, "/dash/");
    check_no_http_errors(&mut checks, &server, "/hls/");
    checks.finish(server);
}

#[test]
fn h264_aac_from_ffmpeg9_dash_and_ts_hls() {
    let media = Media::new(Video::H264, Audio::Aac);
    dash_case(
        "h264_aac_from_ffmpeg9_dash_and_ts_hls",
        media,
        |checks, server, ff| {
            // HLS of the same application: H.264 + AAC stays MPEG-TS (hls_container auto).
            let (pl, url_path) = hls_playlist(server, "cam");
            let (ended, last) = wait_endlist(&pl);
            checks.check(ended, || {
                format!("HLS: no #EXT-X-ENDLIST; last playlist {last:?}")
            });
            let Some(last) = last else { return };
            checks.check(
                hls_map_uri(&last.text).is_none() && last.uris().iter().all(|u| u.ends_with(".ts")),
                || {
                    format!(
                        "HLS of H.264 + AAC: expected MPEG-TS segments and no #EXT-X-MAP:\n{}",
                        last.text
                    )
                },
            );
            let d = decode9(ff, &server.http_url(&url_path), &[], None, DECODE_WALL);
            print_decode("HLS decode", &d);
            let total = last.total_duration();
            checks.extend(decode_problems(
                &d,
                &media,
                (0.8 * total - 1.0).max(1.0),
                "ffmpeg 9 decoding the HLS playlist",
            ));
        },
    );
}

#[test]
fn hevc_aac_640x360_dash() {
    dash_case(
        "hevc_aac_640x360_dash",
        Media::new(Video::Hevc, Audio::Aac).size(640, 360),
        |_, _, _| {},
    );
}

#[test]
fn hevc_main10_opus_dash() {
    dash_case(
        "hevc_main10_opus_dash",
        Media::new(Video::Hevc10, Audio::Opus),
        |_, _, _| {},
    );
}

#[test]
fn av1_opus_mono_dash() {
    dash_case(
        "av1_opus_mono_dash",
        Media::new(Video::Av1, Audio::Opus).channels(1),
        |_, _, _| {},
    );
}

#[test]
fn vp9_opus_dash() {
    dash_case(
        "vp9_opus_dash",
        Media::new(Video::Vp9, Audio::Opus),
        |_, _, _| {},
    );
}

#[test]
fn h264_ac3_dash() {
    dash_case(
        "h264_ac3_dash",
        Media::new(Video::H264, Audio::Ac3),
        |_, _, _| {},
    );
}

#[test]
fn h264_eac3_mono_dash() {
    dash_case(
        "h264_eac3_mono_dash",
        Media::new(Video::H264, Audio::Eac3).channels(1),
        |_, _, _| {},
    );
}

#[test]
fn h264_flac_stereo_dash() {
    dash_case(
        "h264_flac_stereo_dash",
        Media::new(Video::H264, Audio::Flac),
        |_, _, _| {},
    );
}

/// A master playlist's text (`None`: the stream's playlist is a media playlist) and, per media
/// playlist, its URL path with a `T` (its file, or its contents).
type HlsPlaylists<T> = (Option<String>, Vec<(String, T)>);

/// The media playlists behind `/hls/live/<name>.m3u8`: itself, or, when it is a master
/// playlist, its variants and renditions (`#EXT-X-STREAM-INF` and `#EXT-X-MEDIA` URIs), as
/// (URL path, file on disk). `Err` while the file is missing or a listed playlist is not there.
fn hls_media_playlists(server: &Server, name: &str) -> Result<HlsPlaylists<PathBuf>, String> {
    let (pl, url_path) = hls_playlist(server, name);
    let text = std::fs::read_to_string(&pl).map_err(|e| format!("{}: {e}", pl.display()))?;
    let uris = master_uris(&text);
    if uris.is_empty() {
        return Ok((None, vec![(url_path, pl)]));
    }
    let dir = pl.parent().map(Path::to_path_buf).unwrap_or_default();
    let media = uris
        .iter()
        .map(|u| {
            let path = common::hls::resolve_path(&url_path, u);
            let file = dir.join(path.rsplit('/').next().unwrap_or(u));
            (path, file)
        })
        .collect();
    Ok((Some(text), media))
}

/// What is wrong with a media playlist of an HEVC stream for fMP4 HLS (no `#EXT-X-MAP`, or
/// MPEG-TS segments).
fn fmp4_playlist_problems(what: &str, s: &Snapshot) -> Vec<String> {
    let mut p = Vec::new();
    if hls_map_uri(&s.text).is_none() {
        p.push(format!(
            "{what}: no #EXT-X-MAP: HEVC needs fMP4 HLS (hls_container auto); segments {:?}",
            s.uris()
        ));
    }
    let ts: Vec<String> = s
        .uris()
        .into_iter()
        .filter(|u| u.ends_with(".ts"))
        .collect();
    if !ts.is_empty() {
        p.push(format!("{what}: MPEG-TS segments in fMP4 HLS: {ts:?}"));
    }
    p
}

/// The tracks of every `#EXT-X-MAP` of the playlists: there must be an `hvc1`/`hev1` video
/// track and an `mp4a` audio track among them.
fn map_track_problems(dir: &Path, snaps: &[(String, Snapshot)]) -> Vec<String> {
    let mut tracks = Vec::new();
    let mut p = Vec::new();
    for (what, s) in snaps {
        let Some(map) = hls_map_uri(&s.text) else {
            continue;
        };
        let path = dir.join(map.rsplit('/').next().unwrap_or(&map));
        match std::fs::read(&path)
            .map_err(|e| format!("{}: {e}", path.display()))
            .and_then(|b| sample_entries(&b))
        {
            Err(e) => p.push(format!("{what}: #EXT-X-MAP {map}: {e}")),
            Ok(entries) => tracks.extend(
                entries
                    .into_iter()
                    .map(|e| (map.clone(), e.handler, e.fourcc)),
            ),
        }
    }
    let video = tracks
        .iter()
        .any(|(_, h, f)| h == "vide" && matches!(f.as_str(), "hvc1" | "hev1"));
    let audio = tracks.iter().any(|(_, h, f)| h == "soun" && f == "mp4a");
    if !video || !audio {
        p.push(format!(
            "the #EXT-X-MAP init segments have tracks {tracks:?}, expected an hvc1 (or hev1) \
             video track and an mp4a audio track"
        ));
    }
    p
}

/// HEVC + AAC with `hls on` (default `hls_container auto`): fMP4 HLS (`#EXT-X-MAP`, fMP4
/// segments; one media playlist, or a master playlist whose `CODECS` name HEVC and AAC, with
/// video and audio media playlists) that ffmpeg 9 plays with both tracks, live and after the
/// end; every listed file answers while listed.
#[test]
fn hevc_aac_hls_plays_as_fmp4() {
    let test = "hevc_aac_hls_plays_as_fmp4";
    let Some(ff) = need_ffmpeg9(test) else {
        return;
    };
    let media = Media::new(Video::Hevc, Audio::Aac);
    let server = start_server(false, true);
    let mut checks = Checks::new();
    let (pl, url_path) = hls_playlist(&server, "cam");
    let dir = pl.parent().map(Path::to_path_buf).unwrap_or_default();
    let url = server.http_url(&url_path);
    let fetcher = SegmentFetcher::hls(server.http_port, &url_path, &pl);
    let mut publisher = publish9(&ff, &server.rtmp_url("live/cam"), SECS, &media);

    // Every media playlist as it is now, or why not.
    let read_all = || -> Result<HlsPlaylists<Snapshot>, String> {
        let (master, media) = hls_media_playlists(&server, "cam")?;
        let snaps = media
            .into_iter()
            .map(|(path, file)| read_media(&file).map(|s| (path, s)))
            .collect::<Result<Vec<_>, String>>()?;
        Ok((master, snaps))
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let live = loop {
        match read_all() {
            Ok((m, snaps)) if snaps.iter().all(|(_, s)| s.playlist.segments.len() >= 3) => {
                break Ok((m, snaps))
            }
            other if Instant::now() > deadline => {
                break Err(format!(
                "HLS: no playlist listing 3 segments per track within 20 s; last read: {other:#?}"
            ))
            }
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    if let Some((master, snaps)) = checks.ok(live) {
        if let Some(master) = &master {
            println!("master playlist:\n{master}");
            checks.extend(master_problems(master, &media));
        }
        for (what, s) in &snaps {
            println!("live {what}:\n{}", s.text);
            checks.extend(fmp4_playlist_problems(what, s));
            checks.extend(
                header_problems(s)
                    .into_iter()
                    .map(|e| format!("{what}: {e}"))
                    .collect(),
            );
        }
        checks.extend(map_track_problems(&dir, &snaps));
        let d = decode9(
            &ff,
            &url,
            &["-live_start_index", "0"],
            Some(4.0),
            DECODE_WALL,
        );
        print_decode("live HLS decode", &d);
        checks.extend(decode_problems(
            &d,
            &media,
            3.5,
            "ffmpeg 9 decoding the live playlist",
        ));
    }

    check_publisher(&mut checks, &mut publisher, &media);
    let ended_at = Instant::now();
    let ended = loop {
        match read_all() {
            Ok((_, snaps)) if snaps.iter().all(|(_, s)| s.playlist.end_list) => break true,
            _ if ended_at.elapsed() > Duration::from_secs(5) => break false,
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    let last = read_all();
    checks.check(ended, || {
        format!("HLS: not every media playlist has #EXT-X-ENDLIST within 5 s of the publisher's end: {last:#?}")
    });
    if ended {
        println!("ENDLIST {:?} after the publisher ended", ended_at.elapsed());
    }
    if let Some((_, snaps)) = checks.ok(last) {
        for (what, s) in &snaps {
            checks.extend(fmp4_playlist_problems(what, s));
        }
        let total = snaps
            .iter()
            .map(|(_, s)| s.total_duration())
            .fold(f64::INFINITY, f64::min);
        let total = if total.is_finite() { total } else { 0.0 };
        let max = (!ended).then_some((total - 0.5).max(1.0));
        let d = decode9(&ff, &url, &["-live_start_index", "0"], max, DECODE_WALL);
        print_decode("final HLS decode", &d);
        checks.extend(decode_problems(
            &d,
            &media,
            (0.8 * total - 1.0).max(1.0),
            &format!("ffmpeg 9 decoding the final playlist ({total:.1} s listed)"),
        ));
    }
    let report = fetcher.stop();
    // The map(s) and at least 4 segments.
    check_fetches(&mut checks, &report, "HLS", 5);
    check_no_http_errors(&mut checks, &server, "/hls/");
    checks.finish(server);
}

/// What is wrong with a master playlist of `media`: its variant's `CODECS` must name the
/// published video (RFC 6381, as in DASH) and audio, and `RESOLUTION` the published size.
fn master_problems(text: &str, media: &Media) -> Vec<String> {
    let mut p = Vec::new();
    let infs: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("#EXT-X-STREAM-INF:"))
        .collect();
    if infs.len() != 1 {
        p.push(format!(
            "master playlist: {} #EXT-X-STREAM-INF, expected 1:\n{text}",
            infs.len()
        ));
    }
    for inf in infs {
        let codecs = inf
            .split("CODECS=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or("");
        let list: Vec<&str> = codecs.split(',').map(str::trim).collect();
        if let Some(v) = media.video {
            let vc = list.iter().find(|c| {
                !c.starts_with("mp4a") && !matches!(**c, "opus" | "flac" | "ac-3" | "ec-3")
            });
            match vc {
                None => p.push(format!(
                    "master playlist: CODECS {codecs:?} names no video codec"
                )),
                Some(c) => {
                    if let Some(e) = video_codecs_problem(v, c) {
                        p.push(format!("master playlist: CODECS {codecs:?}: {e}"));
                    }
                }
            }
            let res = format!("RESOLUTION={}x{}", media.width, media.height);
            if !inf.contains(&res) {
                p.push(format!(
                    "master playlist: #EXT-X-STREAM-INF:{inf} lacks {res}"
                ));
            }
        }
        if let Some(a) = media.audio {
            if !list.contains(&a.codecs()) {
                p.push(format!(
                    "master playlist: CODECS {codecs:?} does not name the audio codec {:?}",
                    a.codecs()
                ));
            }
        }
    }
    p
}

/// The harness's own parsers (no nginx, no ffmpeg).
#[test]
fn harness_parsers() {
    let v = parse_stream_line(
        "Stream #0:0: Video: hevc (Main 10), yuv420p10le(tv, gbr/unknown/unknown), 320x240 \
         [SAR 1:1 DAR 4:3], 25 fps, 25 tbr, 1k tbn, start 0.080000",
    )
    .expect("video");
    assert_eq!(
        (v.kind.as_str(), v.codec.as_str(), v.profile.as_deref()),
        ("video", "hevc", Some("Main 10"))
    );
    assert_eq!(v.pix_fmt.as_deref(), Some("yuv420p10le"));
    assert_eq!((v.width, v.height), (Some(320), Some(240)));
    let a = parse_stream_line(
        "Stream #0:1[0x2](und): Audio: opus (Opus / 0x7375704F), 48000 Hz, stereo, fltp",
    )
    .expect("audio");
    assert_eq!((a.codec.as_str(), a.profile.as_deref()), ("opus", None));
    assert_eq!((a.sample_rate, a.channels), (Some(48000), Some(2)));
    let t = parse_stream_line(
        "Stream #0:0: Video: hevc (Main) (hvc1 / 0x31637668), yuv420p(tv, progressive), \
         640x360, 25 fps",
    )
    .expect("tagged");
    assert_eq!(t.profile.as_deref(), Some("Main"));
    assert_eq!((t.width, t.height), (Some(640), Some(360)));
    assert_eq!(layout_channels("5.1(side)"), Some(6));
    assert_eq!(layout_channels("mono"), Some(1));

    assert_eq!(
        channels_of_config(DOLBY_CHANNEL_SCHEMES[0], "A000"),
        Some(2)
    );
    assert_eq!(
        channels_of_config(DOLBY_CHANNEL_SCHEMES[0], "F801"),
        Some(6)
    );
    assert_eq!(channels_of_config(CHANNEL_SCHEMES[0], "2"), Some(2));

    assert!(video_codecs_problem(Video::Hevc, "hvc1.1.6.L60.90").is_none());
    assert!(video_codecs_problem(Video::Hevc, "hvc1.1.6.L60").is_none());
    assert!(video_codecs_problem(Video::Hevc, "hvc1.2.4.L60.90").is_some());
    assert!(video_codecs_problem(Video::Hevc10, "hvc1.2.4.L93.B0").is_none());
    assert!(video_codecs_problem(Video::Av1, "av01.0.00M.08").is_none());
    assert!(video_codecs_problem(Video::Av1, "av01.0.0M.08").is_some());
    assert!(video_codecs_problem(Video::Vp9, "vp09.00.20.08").is_none());
    assert!(video_codecs_problem(Video::Vp9, "vp09.00.00.08").is_some());
    assert!(codecs_match("hvc1.1.6.L60.90", "hvc1.1.6.L60.90"));
    assert!(codecs_match(
        "av01.0.00M.08.0.110.01.01.01.0",
        "av01.0.00M.08"
    ));
    assert!(!codecs_match("hvc1.1.6.L60", "hvc1.1.6.L60.90"));

    let master =
        "#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"a\",URI=\"x-audio.m3u8\"\n\
                  #EXT-X-STREAM-INF:BANDWIDTH=1,CODECS=\"hvc1.1.6.L60.90,mp4a.40.2\",\
                  RESOLUTION=320x240,AUDIO=\"a\"\nx-video.m3u8\n";
    assert_eq!(master_uris(master), ["x-audio.m3u8", "x-video.m3u8"]);
    assert!(master_problems(master, &Media::new(Video::Hevc, Audio::Aac)).is_empty());
    assert_eq!(
        master_problems(master, &Media::new(Video::Hevc, Audio::Opus)).len(),
        1
    );
    assert!(master_uris("#EXTM3U\n#EXTINF:2,\nx-1.ts\n").is_empty());

    // A minimal init segment: moov/trak(hdlr soun, stsd with an Opus entry and its dOps).
    fn bx(ty: &str, payload: &[u8]) -> Vec<u8> {
        let mut v = ((payload.len() + 8) as u32).to_be_bytes().to_vec();
        v.extend_from_slice(ty.as_bytes());
        v.extend_from_slice(payload);
        v
    }
    let mut entry = vec![0u8; 28];
    entry[17] = 2;
    entry[24..28].copy_from_slice(&(48_000u32 << 16).to_be_bytes());
    entry.extend(bx("dOps", &[0, 2, 0x01, 0x38, 0, 0, 0xbb, 0x80, 0, 0, 0]));
    let mut stsd = vec![0u8, 0, 0, 0, 0, 0, 0, 1];
    stsd.extend(bx("Opus", &entry));
    let mut hdlr = vec![0u8; 8];
    hdlr.extend_from_slice(b"soun");
    hdlr.extend([0u8; 13]);
    let minf = bx("minf", &bx("stbl", &bx("stsd", &stsd)));
    let mdia = bx("mdia", &[bx("hdlr", &hdlr), minf].concat());
    let init = [bx("ftyp", b"iso6\0\0\0\0"), bx("moov", &bx("trak", &mdia))].concat();
    let e = sample_entries(&init).expect("entries");
    assert_eq!(
        (
            e[0].handler.as_str(),
            e[0].fourcc.as_str(),
            e[0].channels,
            e[0].sample_rate
        ),
        ("soun", "Opus", 2, 48_000)
    );
    assert_eq!(codecs_of_entry(&e[0]).as_deref(), Ok("opus"));
    assert!(body_problem("/x/init.mp4", &init).is_none());
    assert!(body_problem("/x/init.mp4", &init[..init.len() - 1]).is_some());
}

/// A multitrack publisher (ffmpeg 9 with three H.264 video streams, 640x360, 320x180 and
/// 160x90, and AAC; the 2nd and 3rd go as Enhanced RTMP multitrack messages) with `hls on`
/// beside `dash on`: the multivariant playlist lists three variants with their resolutions,
/// codecs and bandwidths in order of the encodings, sharing the audio rendition, and ffmpeg
/// 9 decodes each variant's video at its size; the MPD has them as three Representations of
/// one AdaptationSet, which ffmpeg 9 decodes too.
#[test]
fn multitrack_h264_is_a_three_variant_hls_ladder() {
    let Some(ff) = need_ffmpeg9("multitrack_h264_is_a_three_variant_hls_ladder") else {
        return;
    };
    let server = start_server(true, true);
    let mut checks = Checks::new();
    let (pl, _) = hls_playlist(&server, "cam");
    let args = ladder_publish_args(&server.rtmp_url("live/cam"), SECS);
    let mut publisher = common::FfmpegChild::spawn_program(&ff, &args);
    let deadline = Instant::now() + Duration::from_secs(20);
    let master = loop {
        let text = std::fs::read_to_string(&pl).unwrap_or_default();
        if text.matches("#EXT-X-STREAM-INF:").count() >= 3 || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    println!("master playlist:\n{master}");
    let variants: Vec<(&str, &str)> = master
        .lines()
        .zip(master.lines().skip(1))
        .filter(|(inf, _)| inf.starts_with("#EXT-X-STREAM-INF:"))
        .collect();
    checks.check(variants.len() == 3, || {
        format!("{} variants listed, expected 3", variants.len())
    });
    let sizes = ["640x360", "320x180", "160x90"];
    let mut bandwidths = Vec::new();
    for ((inf, uri), size) in variants.iter().zip(sizes) {
        checks.check(inf.contains(&format!("RESOLUTION={size}")), || {
            format!("{uri}: {inf} should say RESOLUTION={size}")
        });
        checks.check(
            inf.contains("AUDIO=\"audio\"") && inf.contains(",mp4a.40.2\""),
            || format!("{uri}: {inf} should share the AAC rendition"),
        );
        let bw = inf
            .split("BANDWIDTH=")
            .nth(1)
            .and_then(|s| s.split(',').next())
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0);
        bandwidths.push(bw);
        let url = server.http_url(&format!("/hls/live/{uri}"));
        let d = decode9(
            &ff,
            &url,
            &["-live_start_index", "0"],
            Some(3.0),
            DECODE_WALL,
        );
        print_decode(uri, &d);
        let (w, h) = size.split_once('x').unwrap();
        let (w, h) = (w.parse::<u32>().ok(), h.parse::<u32>().ok());
        let described = d
            .inputs
            .iter()
            .any(|s| s.kind == "video" && s.width == w && s.height == h);
        checks.check(d.ok && d.frames >= 25 && described, || {
            format!(
                "{uri}: ffmpeg 9 decoded {} frames (ok {}), inputs {:?}",
                d.frames, d.ok, d.inputs
            )
        });
    }
    checks.check(bandwidths.windows(2).all(|w| w[0] > w[1]), || {
        format!("bandwidths {bandwidths:?} should fall with the resolution")
    });
    // DASH: one video AdaptationSet with the three Representations, and ffmpeg 9 decodes all
    // of them (and the audio) from the MPD.
    let mpd_path = server.prefix.join("tmp/live/cam.mpd");
    let mpd = std::fs::read_to_string(&mpd_path).unwrap_or_default();
    for size in sizes {
        let (w, h) = size.split_once('x').unwrap();
        checks.check(
            mpd.contains(&format!("width=\"{w}\" height=\"{h}\"")),
            || format!("MPD has no {size} Representation:\n{mpd}"),
        );
    }
    checks.check(mpd.matches("contentType=\"video\"").count() == 1, || {
        format!("the renditions should be Representations of one AdaptationSet:\n{mpd}")
    });
    let url = server.http_url("/dash/live/cam.mpd");
    let d = decode9(&ff, &url, &[], Some(3.0), DECODE_WALL);
    print_decode("DASH, every Representation", &d);
    let videos = d.inputs.iter().filter(|s| s.kind == "video").count();
    checks.check(d.ok && videos == 3, || {
        format!(
            "ffmpeg 9 on the MPD: ok {}, {videos} video streams: {:?}",
            d.ok, d.errors
        )
    });
    let _ = publisher.wait_timeout(Duration::from_secs(SECS as u64 + 20));
    checks.finish(server);
}

/// A publisher with two audio tracks (ffmpeg 9: H.264 and two AAC streams; the 2nd goes as an
/// Enhanced RTMP multitrack message): HLS lists the second as another `EXT-X-MEDIA` audio
/// rendition, DASH as another audio AdaptationSet, and ffmpeg 9 finds and decodes both.
#[test]
fn second_audio_track_is_another_audio_rendition() {
    let Some(ff) = need_ffmpeg9("second_audio_track_is_another_audio_rendition") else {
        return;
    };
    let server = start_server(true, true);
    let mut checks = Checks::new();
    let (pl, _) = hls_playlist(&server, "cam");
    let args: Vec<String> = [
        "-hide_banner",
        "-nostdin",
        "-loglevel",
        "error",
        "-re",
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=25",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=48000",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=880:sample_rate=48000",
        "-t",
        &SECS.to_string(),
        "-map",
        "0:v",
        "-map",
        "1:a",
        "-map",
        "2:a",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-g",
        "25",
        "-c:a",
        "aac",
        "-f",
        "flv",
        &server.rtmp_url("live/cam"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut publisher = common::FfmpegChild::spawn_program(&ff, &args);
    let deadline = Instant::now() + Duration::from_secs(20);
    let master = loop {
        let text = std::fs::read_to_string(&pl).unwrap_or_default();
        if text.matches("#EXT-X-MEDIA:TYPE=AUDIO").count() >= 2 || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    println!("master playlist:\n{master}");
    checks.check(
        master.matches("#EXT-X-MEDIA:TYPE=AUDIO").count() == 2,
        || format!("expected 2 audio renditions:\n{master}"),
    );
    for (what, path) in [
        ("HLS", "/hls/live/cam.m3u8"),
        ("DASH", "/dash/live/cam.mpd"),
    ] {
        let d = decode9(&ff, &server.http_url(path), &[], Some(3.0), DECODE_WALL);
        print_decode(what, &d);
        let audio = d.inputs.iter().filter(|s| s.kind == "audio").count();
        checks.check(d.ok && audio == 2, || {
            format!(
                "{what}: ffmpeg 9 ok {}, {audio} audio streams, errors {:?}",
                d.ok, d.errors
            )
        });
    }
    let _ = publisher.wait_timeout(Duration::from_secs(SECS as u64 + 20));
    checks.finish(server);
}

/// Segment bytes (media and init segments, not playlists or files being written) of the
/// files in `dirs`, each file counted once however many names it has.
fn unique_segment_bytes(dirs: &[&Path]) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut seen = std::collections::HashSet::new();
    let mut total = 0;
    for dir in dirs {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !["m4s", "m4v", "m4a"]
                .iter()
                .any(|e| name.ends_with(&format!(".{e}")))
            {
                continue;
            }
            if let Ok(m) = entry.metadata() {
                if seen.insert((m.dev(), m.ino())) {
                    total += m.len();
                }
            }
        }
    }
    total
}

/// fMP4 HLS (`hls_container auto` with HEVC) beside `dash on`: one set of segment bytes (the
/// HLS names are hard links of the DASH files): all segment bytes on disk are at most 1.1x
/// those the HLS directory alone holds, and both still decode.
#[test]
fn fmp4_hls_and_dash_share_one_set_of_segment_bytes() {
    let Some(ff) = need_ffmpeg9("fmp4_hls_and_dash_share_one_set_of_segment_bytes") else {
        return;
    };
    let server = start_server(true, true);
    let mut checks = Checks::new();
    let media = Media::new(Video::Hevc, Audio::Aac);
    let mut publisher = publish9(&ff, &server.rtmp_url("live/cam"), SECS, &media);
    let (hls_dir, dash_dir) = (
        server.prefix.join("tmp/hls/live"),
        server.prefix.join("tmp/live"),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while unique_segment_bytes(&[&hls_dir]) < 200_000 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    let hls = unique_segment_bytes(&[&hls_dir]);
    let both = unique_segment_bytes(&[&hls_dir, &dash_dir]);
    let dash = unique_segment_bytes(&[&dash_dir]);
    println!("segment bytes: HLS {hls}, DASH {dash}, both {both}");
    checks.check(hls > 0 && both as f64 <= hls as f64 * 1.1, || {
        format!("HLS and DASH together hold {both} segment bytes, HLS alone {hls}: not shared")
    });
    for path in ["/hls/live/cam.m3u8", "/dash/live/cam.mpd"] {
        let d = decode9(&ff, &server.http_url(path), &[], Some(3.0), DECODE_WALL);
        print_decode(path, &d);
        checks.check(d.ok && d.frames >= 25, || format!("{path}: {:?}", d.errors));
    }
    let _ = publisher.wait_timeout(Duration::from_secs(SECS as u64 + 20));
    checks.finish(server);
}
