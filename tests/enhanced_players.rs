//! Real players on Enhanced RTMP streams (issue #13): what the module writes for AV1, VP9 and
//! HEVC plays in the players people use, from `nginx-conf/nginx.conf` run as `scripts/run.sh`
//! runs it (HLS and DASH of the same stream, 2 s fragments, the HLS files hard links of the
//! DASH files), published by ffmpeg 9 (`build/tools/ffmpeg9`) over Enhanced RTMP.
//!
//! - Debian's Chromium (`tests/browser/play.mjs`) plays AV1 + Opus and VP9 + Opus with hls.js
//!   (fMP4 HLS: a multivariant playlist with an audio rendition) and with dash.js for 20 s: no
//!   player error, no stall (no `waiting` and no frozen `currentTime` longer than 0.5 s), the
//!   published 320x240 reported by the `<video>` (`videoWidth`/`videoHeight`), video frames and
//!   audio decoded, and the codecs the player took from the playlist or MPD are the published
//!   ones. This Chromium (Debian 12's, 156) says `MediaSource.isTypeSupported` true for
//!   `av01.0.00M.08`, `vp09.00.20.08`, `opus`, `flac`, `avc1`, `mp4a.40.2`, and false for
//!   `hvc1.1.6.L60.90`, `hev1...`, `ac-3` and `ec-3`: no HEVC test in the browser.
//! - The same Chromium plays a multitrack H.264 ladder (one ffmpeg 9 publish with three video
//!   streams, 640x360, 320x180 and 160x90, the 2nd and 3rd as Enhanced RTMP multitrack
//!   messages, + AAC) with hls.js (three variants of the multivariant playlist) and with dash.js
//!   (three Representations) for 20 s without a stall, and switches when told to
//!   (`switch=S:H,...` of the player pages): to the lowest after 4 s, to the highest after
//!   13 s; the `<video>`'s picture size must follow (160x90, then 640x360).
//! - VLC (`vlc-bin`, Debian's 3.0) plays HEVC + AAC from the HLS and from the DASH URL for
//!   10 s; its `stats` (rc interface) must count displayed frames and played audio, its `info`
//!   the HEVC codec at 320x240. VLC refuses to run as root: as root it runs as `nobody`
//!   (`setpriv`).
//! - GStreamer (`gst-launch-1.0 playbin3`, Debian's 1.22) plays the HEVC + AAC HLS URL for
//!   10 s into fake sinks: decoded 320x240 frames spanning at least 5 s of media, and audio.
//!   Not GStreamer with DASH: its `dashdemux2` (and `dashdemux`) seeks a live MPD whose
//!   timeline does not start at 0 far into the future and waits there, fetching only the MPD
//!   (0 frames; docs/features.md, "Players with known limits", which names HLS as the
//!   workaround).
//!
//! Every test fails (or skips with `RTMP_TESTS_ALLOW_SKIP=1`) when its tool is missing, starts
//! and kills only its own processes (by PID or by the process group it created), and runs a
//! bounded time. Publishes are 320x240 at 25 fps with 1 s GOPs and cheap encoder settings.
//!
//! Expected failures with `RTMP_IT_TARGET=c`: all (the C nginx-rtmp-module knows no Enhanced
//! RTMP).

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use common::browser::{num, player_locations};
use common::dash::read_mpd;
use common::enhanced::master_uris;
use common::ffmpeg::FfmpegChild;
use common::ffmpeg9::{
    ffmpeg9, ffmpeg9_missing, ladder_publish_args, publish9, Audio, Media, Video, FPS, LADDER,
};
use common::hls::{access_log_errors_in, read_media, run_browser, Checks, ExampleNginx};
use common::players::{
    gst_buffer_pts, gst_sink_caps, need_gst, need_vlc, play_gst, play_vlc, runs, vlc_info, vlc_stat,
};
use common::*;

/// Seconds of media each publisher sends (`-re`); it is stopped once its players are done.
const PUBLISH_SECS: u32 = 40;
/// How long the browser must play without a stall.
const BROWSER_PLAY_MS: f64 = 20_000.0;
/// How long play.mjs runs: the playing time plus startup.
const BROWSER_RUN_SECS: u32 = 22;
/// The longest stall allowed (a `waiting` period, or `currentTime` frozen while playing).
const MAX_STALL_MS: f64 = 500.0;
/// How long VLC and GStreamer play.
const NATIVE_PLAY: Duration = Duration::from_secs(10);
/// How long a stream may take to list enough segments.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// Segments every HLS media playlist / DASH representation must list before a browser starts.
const READY_SEGMENTS: usize = 2;
/// The same before VLC or GStreamer starts: VLC starts up to 15 s behind the live edge
/// (`--adaptive-livedelay`), so with 2 segments it spends seconds of its run buffering.
const NATIVE_READY_SEGMENTS: usize = 4;
/// The published picture.
const WIDTH: u32 = 320;
const HEIGHT: u32 = 240;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Hls,
    Dash,
}

/// The example config running, with a publisher on `live/<name>`.
struct Live {
    nginx: ExampleNginx,
    publisher: FfmpegChild,
    name: String,
    media: Media,
}

impl Live {
    /// Starts nginx with `nginx-conf/nginx.conf` and publishes `media` to `live/<name>`.
    fn start(ff: &Path, name: &str, media: Media) -> Live {
        let nginx = ExampleNginx::start();
        let url = format!("rtmp://127.0.0.1:{}/live/{name}", nginx.rtmp_port);
        let publisher = publish9(ff, &url, PUBLISH_SECS, &media);
        Live {
            nginx,
            publisher,
            name: name.to_string(),
            media,
        }
    }

    fn hls_dir(&self) -> PathBuf {
        self.nginx.prefix.join("tmp/hls")
    }

    fn dash_dir(&self) -> PathBuf {
        self.nginx.prefix.join("tmp/dash")
    }

    /// The URL a player opens.
    fn url(&self, format: Format) -> String {
        let path = match format {
            Format::Hls => format!("/hls/{}.m3u8", self.name),
            Format::Dash => format!("/dash/{}.mpd", self.name),
        };
        format!("http://127.0.0.1:{}{path}", self.nginx.http_port)
    }

    /// Waits until the stream is playable in `format`: for HLS, its playlist and every media
    /// playlist it names (a multivariant playlist's variants and renditions) list `segments`;
    /// for DASH, every representation of the MPD does. Returns the
    /// playlist or MPD text, for the messages.
    fn wait_ready(&mut self, format: Format, segments: usize) -> Result<String, String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let state = match format {
                Format::Hls => hls_ready(&self.hls_dir(), &self.name, segments),
                Format::Dash => dash_ready(&self.dash_dir(), &self.name, segments),
            };
            match state {
                Ok(text) => return Ok(text),
                Err(why) if Instant::now() > deadline || !self.publisher.is_running() => {
                    return Err(format!(
                        "{format:?} of {} not playable within {READY_TIMEOUT:?}: {why}\n\
                         publisher {:?}, stderr:\n{}",
                        self.media.label(),
                        self.publisher.status(),
                        self.publisher.stderr()
                    ));
                }
                Err(_) => thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    /// The publisher still runs (a player's result is about a live stream), then it is
    /// stopped; nginx is stopped and its error log and access log are checked. (Dropped after
    /// the checks are asserted, so a failed test keeps nginx's prefix.)
    fn finish(&mut self, checks: &mut Checks) {
        checks.check(self.publisher.is_running(), || {
            format!(
                "the publisher ({}) ended before the players were done ({:?}): {}",
                self.media.label(),
                self.publisher.status(),
                self.publisher.stderr()
            )
        });
        self.publisher.kill();
        let access_log = self.nginx.prefix.join("logs/access.log");
        for prefix in ["/hls/", "/dash/"] {
            let errors = access_log_errors_in(&access_log, prefix);
            checks.check(errors.is_empty(), || {
                let head: Vec<&str> = errors.iter().take(10).map(String::as_str).collect();
                format!(
                    "{} HTTP errors for {prefix} (players got them), first:\n{}",
                    errors.len(),
                    head.join("\n")
                )
            });
        }
        let log = self.nginx.stop();
        let bad: Vec<&str> = log.lines().filter(|l| is_forbidden_log_line(l)).collect();
        checks.check(bad.is_empty(), || {
            format!("error log has forbidden lines:\n{}", bad.join("\n"))
        });
        if !checks.is_empty() {
            println!("--- nginx logs ---\n{}", self.nginx.logs());
        }
    }
}

/// `Ok(playlist text)` once `<dir>/<name>.m3u8` and every media playlist it names list
/// `segments` segments.
fn hls_ready(dir: &Path, name: &str, segments: usize) -> Result<String, String> {
    let path = dir.join(format!("{name}.m3u8"));
    let text = fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut media: Vec<PathBuf> = master_uris(&text)
        .iter()
        .map(|u| dir.join(u.rsplit('/').next().unwrap_or(u)))
        .collect();
    if media.is_empty() {
        media.push(path);
    }
    for m in &media {
        let s = read_media(m)?;
        if s.playlist.segments.len() < segments {
            return Err(format!(
                "{} lists {} segments:\n{}",
                m.display(),
                s.playlist.segments.len(),
                s.text
            ));
        }
    }
    Ok(text)
}

/// `Ok(MPD text)` once every representation of `<dir>/<name>.mpd` lists `segments` segments.
fn dash_ready(dir: &Path, name: &str, segments: usize) -> Result<String, String> {
    let path = dir.join(format!("{name}.mpd"));
    let mpd = read_mpd(&path)?;
    let text = fs::read_to_string(&path).unwrap_or_default();
    if mpd.reps().count() == 0 || mpd.min_segments() < segments {
        return Err(format!("{} is not ready yet:\n{text}", path.display()));
    }
    Ok(text)
}

/// The ffmpeg 9 binary, or `None` after `skip_or_fail`.
fn need_ffmpeg9(test: &str) -> Option<PathBuf> {
    let f = ffmpeg9();
    if f.is_none() {
        skip_or_fail(test, &ffmpeg9_missing());
    }
    f
}

// ---------------------------------------------------------------------------------------------
// The browser

/// The http server of the player pages: tests/browser at `/player/`, with hls.js and dash.js
/// from npm. It is another nginx (another origin than the media's, so the example config's
/// CORS headers are needed, as for a real page); `None` after `skip_or_fail` when the browser,
/// Node.js or tests/browser/node_modules is missing.
fn player_pages(test: &str) -> Option<Server> {
    let dir = manifest_dir().join("tests/browser");
    let hls_js = dir.join("node_modules/hls.js/dist/hls.min.js");
    let dash_js = dir.join("node_modules/dashjs/dist/modern/umd/dash.all.min.js");
    let chromium = std::env::var("CHROMIUM_PATH").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).is_file() {
        skip_or_fail(
            test,
            &format!("no Chromium at {chromium} (apt-get install chromium; scripts/test.sh does)"),
        );
        return None;
    }
    if !runs("node", &["--version"]) {
        skip_or_fail(test, "no Node.js (scripts/test.sh installs nodejs)");
        return None;
    }
    if !(dir.join("node_modules/playwright-core").is_dir() && hls_js.is_file() && dash_js.is_file())
    {
        skip_or_fail(
            test,
            "tests/browser has no node_modules: npm ci --prefix tests/browser",
        );
        return None;
    }
    Some(Server::start(&live_rtmp_block("", ""), &player_locations()))
}

fn text<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for key in path {
        cur = cur.get(key)?;
    }
    cur.as_str()
}

/// The RFC 6381 prefix of the published video codec.
fn codecs_prefix(v: Video) -> &'static str {
    match v {
        Video::Av1 => "av01.",
        Video::Vp9 => "vp09.",
        Video::Hevc | Video::Hevc10 => "hvc1.",
        Video::H264 => "avc1.",
    }
}

/// What is wrong with what play.mjs reported for `media` played from `format` (empty when it
/// played as it must). `levels`: the variants (HLS) the player must find, each with the
/// codecs of `media`.
fn browser_problems(r: &Value, media: &Media, format: Format, levels: usize) -> Vec<String> {
    let mut p = Vec::new();
    let mut need = |ok: bool, msg: String| {
        if !ok {
            p.push(msg);
        }
    };
    let errors = r.get("errors").and_then(Value::as_array);
    need(
        errors.is_some_and(|e| e.is_empty()),
        format!("player errors: {}", r.get("errors").unwrap_or(&Value::Null)),
    );
    need(
        num(r, &["outsideCount"]) == Some(0.0),
        format!(
            "requests to other hosts: {}",
            r.get("outside").unwrap_or(&Value::Null)
        ),
    );
    let m = |k: &str| num(r, &["media", k]);
    need(
        m("videoWidth") == Some(f64::from(media.width))
            && m("videoHeight") == Some(f64::from(media.height)),
        format!(
            "the <video> reports {:?}x{:?}, published {}x{}",
            m("videoWidth"),
            m("videoHeight"),
            media.width,
            media.height
        ),
    );
    let playing = m("playingMs").unwrap_or(0.0);
    need(
        playing >= BROWSER_PLAY_MS,
        format!(
            "played {playing} ms (need {BROWSER_PLAY_MS}; first 'playing' after {:?} ms)",
            num(r, &["startupMs"])
        ),
    );
    for key in ["longestWaitMs", "longestFreezeMs"] {
        let v = m(key);
        need(
            v.is_some_and(|v| v <= MAX_STALL_MS),
            format!(
                "stalled: {key} {v:?} (at most {MAX_STALL_MS}; {:?} 'waiting' events)",
                m("waitingCount")
            ),
        );
    }
    let advanced = num(r, &["advanced"]).unwrap_or(0.0);
    need(
        advanced >= 0.9 * playing / 1000.0,
        format!(
            "video.currentTime advanced {advanced:.2} s in {:.2} s of playing",
            playing / 1000.0
        ),
    );
    need(
        r.get("paused") == Some(&Value::Bool(false)),
        format!(
            "the video is paused at the end (paused {:?}, readyState {:?})",
            r.get("paused"),
            r.get("readyState")
        ),
    );
    let frames = m("totalVideoFrames").unwrap_or(0.0);
    need(
        frames >= 0.6 * f64::from(FPS) * advanced,
        format!(
            "{frames} video frames decoded in {advanced:.2} s of media ({} fps published)",
            FPS
        ),
    );
    need(
        m("videoDecodedBytes").unwrap_or(0.0) > 0.0,
        "no video bytes decoded".to_string(),
    );
    need(
        m("audioDecodedBytes").unwrap_or(0.0) > 0.0,
        "no audio bytes decoded: the player played no audio".to_string(),
    );
    let video = media.video.map(codecs_prefix).unwrap_or("?");
    let audio = media.audio.map(Audio::codecs).unwrap_or("?");
    match format {
        Format::Hls => {
            let info = r.get("levelInfo").and_then(Value::as_array);
            let codecs: Vec<(Option<&str>, Option<&str>)> = info
                .map(|l| {
                    l.iter()
                        .map(|l| (text(l, &["videoCodec"]), text(l, &["audioCodec"])))
                        .collect()
                })
                .unwrap_or_default();
            need(
                num(r, &["levels"]) == Some(levels as f64)
                    && codecs.len() == levels
                    && codecs
                        .iter()
                        .all(|(v, a)| v.is_some_and(|v| v.starts_with(video)) && *a == Some(audio)),
                format!(
                    "hls.js found levels {:?} with codecs {codecs:?}, expected {levels} with \
                     {video}.. + {audio}",
                    num(r, &["levels"])
                ),
            );
            need(
                num(r, &["audioTracks"]).is_some_and(|n| n >= 1.0),
                format!(
                    "hls.js found {:?} audio renditions",
                    num(r, &["audioTracks"])
                ),
            );
        }
        Format::Dash => {
            let v = text(r, &["tracks", "video"]).unwrap_or("");
            let a = text(r, &["tracks", "audio"]).unwrap_or("");
            need(
                v.contains(&format!("codecs=\"{video}")) && a.contains(&format!("\"{audio}\"")),
                format!("dash.js chose tracks {v:?} + {a:?}, expected {video}.. + {audio}"),
            );
        }
    }
    p
}

/// Chromium plays `video` + Opus from the example config's `format` URL for 20 s, as
/// [`browser_problems`] requires.
fn browser_case(test: &str, video: Video, format: Format) {
    let Some(ff) = need_ffmpeg9(test) else {
        return;
    };
    let Some(pages) = player_pages(test) else {
        return;
    };
    let started = Instant::now();
    let media = Media::new(video, Audio::Opus).size(WIDTH, HEIGHT);
    let mut live = Live::start(&ff, "cam", media);
    let mut checks = Checks::new();
    if let Some(listing) = checks.ok(live.wait_ready(format, READY_SEGMENTS)) {
        println!("{format:?} of {} ready:\n{listing}", media.label());
        let page = match format {
            Format::Hls => "index.html",
            Format::Dash => "dash.html",
        };
        let url = format!(
            "http://localhost:{}/player/{page}?src={}",
            pages.http_port,
            live.url(format)
        );
        let run_start = Instant::now();
        let r = run_browser(&url, BROWSER_RUN_SECS);
        println!(
            "browser ({:.1} s): {}\nnode stderr:\n{}",
            run_start.elapsed().as_secs_f64(),
            r.json.trim(),
            r.stderr
        );
        checks.check(r.status.is_some_and(|s| s.success()), || {
            format!(
                "node play.mjs failed ({:?}):\n{}\n{}",
                r.status, r.json, r.stderr
            )
        });
        match serde_json::from_str::<Value>(r.json.trim()) {
            Ok(v) => checks.extend(
                browser_problems(&v, &media, format, 1)
                    .into_iter()
                    .map(|p| format!("{} {format:?} in Chromium: {p}", media.label()))
                    .collect(),
            ),
            Err(e) => checks.fail(format!("play.mjs printed no JSON ({e}): {}", r.json)),
        }
    }
    live.finish(&mut checks);
    pages.finish();
    println!("{test}: {:.1} s", started.elapsed().as_secs_f64());
    checks.assert_ok();
}

#[test]
fn av1_opus_plays_in_chromium_with_hls_js() {
    browser_case(
        "av1_opus_plays_in_chromium_with_hls_js",
        Video::Av1,
        Format::Hls,
    );
}

#[test]
fn av1_opus_plays_in_chromium_with_dash_js() {
    browser_case(
        "av1_opus_plays_in_chromium_with_dash_js",
        Video::Av1,
        Format::Dash,
    );
}

#[test]
fn vp9_opus_plays_in_chromium_with_hls_js() {
    browser_case(
        "vp9_opus_plays_in_chromium_with_hls_js",
        Video::Vp9,
        Format::Hls,
    );
}

#[test]
fn vp9_opus_plays_in_chromium_with_dash_js() {
    browser_case(
        "vp9_opus_plays_in_chromium_with_dash_js",
        Video::Vp9,
        Format::Dash,
    );
}

// ---------------------------------------------------------------------------------------------
// A multitrack H.264 ladder (three video tracks over Enhanced RTMP multitrack) in the browser

/// The forced switches: (seconds after the first `playing`, height of the variant to play).
/// Down to the lowest, then up to the highest, which it must still show at the end. A switch
/// shows when the buffer ahead has played: hls.js (`nextLevel`) took 3-4 s down and 2-3 s up,
/// dash.js 4-5 s down and 1 s up (it replaces the buffer ahead only to go up).
const SWITCHES: [(u32, u32); 2] = [(4, 90), (13, 360)];

impl Live {
    /// Starts nginx with `nginx-conf/nginx.conf` and publishes the [`LADDER`] of H.264 (one
    /// picture scaled three times, 800k/300k/100k, 1 s GOPs) + AAC to `live/<name>` as ffmpeg 9
    /// does with several video streams mapped.
    fn start_ladder(ff: &Path, name: &str) -> Live {
        let nginx = ExampleNginx::start();
        let url = format!("rtmp://127.0.0.1:{}/live/{name}", nginx.rtmp_port);
        let args = ladder_publish_args(&url, PUBLISH_SECS);
        let (w, h) = LADDER[0];
        let publisher = FfmpegChild::spawn_program(ff, &args);
        Live {
            nginx,
            publisher,
            name: name.to_string(),
            media: Media::new(Video::H264, Audio::Aac).size(w, h),
        }
    }
}

/// `(atMs, width, height)` of the `<video>`'s picture sizes play.mjs reported
/// (`media.sizes`, from the first `playing` on).
fn size_changes(r: &Value) -> Vec<(f64, u32, u32)> {
    let Some(sizes) = r
        .get("media")
        .and_then(|m| m.get("sizes"))
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    sizes
        .iter()
        .filter_map(|s| {
            Some((
                num(s, &["atMs"])?,
                num(s, &["width"])? as u32,
                num(s, &["height"])? as u32,
            ))
        })
        .collect()
}

/// The picture size shown at `at_ms` after the first `playing`: the last change before it.
fn size_at(changes: &[(f64, u32, u32)], at_ms: f64) -> Option<(u32, u32)> {
    changes
        .iter()
        .rev()
        .find(|(t, _, _)| *t <= at_ms)
        .map(|&(_, w, h)| (w, h))
}

/// What is wrong with the ladder and the switches play.mjs reported (empty when right): the
/// player lists the three [`LADDER`] sizes, H.264 + AAC each; every [`SWITCHES`] entry was
/// made (to a level of that height); the picture becomes the lowest after the first switch and
/// still is at the second, and becomes the highest after the second. (Playing without a stall, at the highest size at the
/// end, with audio: [`browser_problems`].)
fn ladder_problems(r: &Value, format: Format) -> Vec<String> {
    let mut p = Vec::new();
    let levels: Vec<(u32, u32, String)> = r
        .get("levelInfo")
        .and_then(Value::as_array)
        .map(|l| {
            l.iter()
                .map(|l| {
                    (
                        num(l, &["width"]).unwrap_or(0.0) as u32,
                        num(l, &["height"]).unwrap_or(0.0) as u32,
                        text(l, &["videoCodec"]).unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let mut sizes: Vec<(u32, u32)> = levels.iter().map(|&(w, h, _)| (w, h)).collect();
    sizes.sort_unstable();
    let mut want = LADDER.to_vec();
    want.sort_unstable();
    if sizes != want || levels.iter().any(|(_, _, c)| !c.starts_with("avc1.")) {
        p.push(format!(
            "the player found levels {levels:?} (levelInfo), expected H.264 (avc1.) at \
             {LADDER:?}"
        ));
    }
    if format == Format::Hls {
        let level0 = r.get("levelInfo").and_then(|l| l.get(0));
        let a = level0.and_then(|l| text(l, &["audioCodec"]));
        if a != Some(Audio::Aac.codecs()) {
            p.push(format!("hls.js found the audio codec {a:?} in CODECS"));
        }
    }
    let switches = r
        .get("switches")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let made: Vec<(f64, f64)> = switches
        .iter()
        .filter(|s| s.get("error").is_none_or(Value::is_null))
        .filter_map(|s| Some((num(s, &["atMs"])?, num(s, &["height"])?)))
        .collect();
    let planned: Vec<f64> = SWITCHES.iter().map(|&(_, h)| f64::from(h)).collect();
    let heights: Vec<f64> = made.iter().map(|&(_, h)| h).collect();
    if heights != planned {
        p.push(format!(
            "switches made {switches:?}, planned (s, height) {SWITCHES:?}"
        ));
        return p;
    }
    let changes = size_changes(r);
    let (down_at, up_at) = (made[0].0, made[1].0);
    let (lw, lh) = LADDER[2];
    let (hw, hh) = LADDER[0];
    let went_down = changes
        .iter()
        .any(|&(t, w, h)| t > down_at && t <= up_at && (w, h) == (lw, lh));
    if !went_down || size_at(&changes, up_at) != Some((lw, lh)) {
        p.push(format!(
            "after the switch to the lowest variant at {down_at} ms the picture is {:?} at \
             {up_at} ms, expected it to change to {lw}x{lh} (size changes (ms, w, h): \
             {changes:?})",
            size_at(&changes, up_at)
        ));
    }
    if !changes
        .iter()
        .any(|&(t, w, h)| t > up_at && (w, h) == (hw, hh))
    {
        p.push(format!(
            "after the switch to the highest variant at {up_at} ms the picture never became \
             {hw}x{hh} (size changes (ms, w, h): {changes:?})"
        ));
    }
    p
}

/// Chromium plays the multitrack [`LADDER`] + AAC from the example config's `format` URL for
/// 20 s, switching variants as [`SWITCHES`] says: [`browser_problems`] (no stall, the highest
/// picture at the end, audio) and [`ladder_problems`].
fn ladder_case(test: &str, format: Format) {
    let Some(ff) = need_ffmpeg9(test) else {
        return;
    };
    let Some(pages) = player_pages(test) else {
        return;
    };
    let started = Instant::now();
    let mut live = Live::start_ladder(&ff, "cam");
    let media = live.media;
    let mut checks = Checks::new();
    if let Some(listing) = checks.ok(live.wait_ready(format, READY_SEGMENTS)) {
        println!("{format:?} of the multitrack ladder ready:\n{listing}");
        let page = match format {
            Format::Hls => "index.html",
            Format::Dash => "dash.html",
        };
        let schedule: Vec<String> = SWITCHES.iter().map(|(s, h)| format!("{s}:{h}")).collect();
        let url = format!(
            "http://localhost:{}/player/{page}?src={}&switch={}",
            pages.http_port,
            live.url(format),
            schedule.join(",")
        );
        let run_start = Instant::now();
        let r = run_browser(&url, BROWSER_RUN_SECS);
        println!(
            "browser ({:.1} s): {}\nnode stderr:\n{}",
            run_start.elapsed().as_secs_f64(),
            r.json.trim(),
            r.stderr
        );
        checks.check(r.status.is_some_and(|s| s.success()), || {
            format!(
                "node play.mjs failed ({:?}):\n{}\n{}",
                r.status, r.json, r.stderr
            )
        });
        match serde_json::from_str::<Value>(r.json.trim()) {
            Ok(v) => {
                println!(
                    "levels {}; switches {}; sizes (ms, w, h) {:?}; stalls: longest wait {:?} \
                     ms ({:?} 'waiting'), longest freeze {:?} ms",
                    v.get("levelInfo").unwrap_or(&Value::Null),
                    v.get("switches").unwrap_or(&Value::Null),
                    size_changes(&v),
                    num(&v, &["media", "longestWaitMs"]),
                    num(&v, &["media", "waitingCount"]),
                    num(&v, &["media", "longestFreezeMs"]),
                );
                let changes = size_changes(&v);
                for &(at, height) in &SWITCHES {
                    let shown = changes
                        .iter()
                        .find(|&&(t, _, h)| t > f64::from(at) * 1000.0 && h == height)
                        .map(|&(t, _, _)| t);
                    println!(
                        "switch to {height} lines at {at} s: shown at {:?} ms",
                        shown
                    );
                }
                let mut problems = browser_problems(&v, &media, format, LADDER.len());
                problems.extend(ladder_problems(&v, format));
                checks.extend(
                    problems
                        .into_iter()
                        .map(|p| format!("H.264 ladder + AAC {format:?} in Chromium: {p}"))
                        .collect(),
                );
            }
            Err(e) => checks.fail(format!("play.mjs printed no JSON ({e}): {}", r.json)),
        }
    }
    live.finish(&mut checks);
    pages.finish();
    println!("{test}: {:.1} s", started.elapsed().as_secs_f64());
    checks.assert_ok();
}

#[test]
fn multitrack_h264_ladder_plays_and_switches_in_chromium_with_hls_js() {
    ladder_case(
        "multitrack_h264_ladder_plays_and_switches_in_chromium_with_hls_js",
        Format::Hls,
    );
}

#[test]
fn multitrack_h264_ladder_plays_and_switches_in_chromium_with_dash_js() {
    ladder_case(
        "multitrack_h264_ladder_plays_and_switches_in_chromium_with_dash_js",
        Format::Dash,
    );
}

// ---------------------------------------------------------------------------------------------
// Native players: VLC and GStreamer (run and checked by tests/common/players.rs)

/// HEVC + AAC from the example config, ready in `format`; `None` when the test cannot run.
fn hevc_live(test: &str, format: Format, checks: &mut Checks) -> Option<Live> {
    let ff = need_ffmpeg9(test)?;
    let media = Media::new(Video::Hevc, Audio::Aac).size(WIDTH, HEIGHT);
    let mut live = Live::start(&ff, "cam", media);
    if let Some(listing) = checks.ok(live.wait_ready(format, NATIVE_READY_SEGMENTS)) {
        println!("{format:?} of {} ready:\n{listing}", media.label());
    }
    Some(live)
}

// VLC

fn vlc_case(test: &str, format: Format) {
    if need_vlc(test).is_none() {
        return;
    }
    let started = Instant::now();
    let mut checks = Checks::new();
    let Some(mut live) = hevc_live(test, format, &mut checks) else {
        return;
    };
    if checks.is_empty() {
        let url = live.url(format);
        let vlc = play_vlc(&url, NATIVE_PLAY);
        vlc.check(
            &mut checks,
            &format!("{format:?}"),
            &format!("VLC playing HEVC + AAC {format:?} ({url})"),
            "HEVC",
            (WIDTH, HEIGHT),
            u64::from(FPS) * 5,
        );
    }
    live.finish(&mut checks);
    println!("{test}: {:.1} s", started.elapsed().as_secs_f64());
    checks.assert_ok();
}

#[test]
fn hevc_aac_hls_plays_in_vlc() {
    vlc_case("hevc_aac_hls_plays_in_vlc", Format::Hls);
}

#[test]
fn hevc_aac_dash_plays_in_vlc() {
    vlc_case("hevc_aac_dash_plays_in_vlc", Format::Dash);
}

// GStreamer

fn gst_case(test: &str) {
    if need_gst(test, &["playbin3", "hlsdemux2", "avdec_h265", "fakesink"]).is_none() {
        return;
    }
    let started = Instant::now();
    let mut checks = Checks::new();
    let Some(mut live) = hevc_live(test, Format::Hls, &mut checks) else {
        return;
    };
    if checks.is_empty() {
        let url = live.url(Format::Hls);
        let gst = play_gst(&url, NATIVE_PLAY + Duration::from_secs(2));
        gst.check(
            &mut checks,
            "HLS",
            &format!("GStreamer playbin3 playing HEVC + AAC HLS ({url})"),
            "video/x-h265",
            (WIDTH, HEIGHT),
            FPS as usize * 5,
        );
    }
    live.finish(&mut checks);
    println!("{test}: {:.1} s", started.elapsed().as_secs_f64());
    checks.assert_ok();
}

#[test]
fn hevc_aac_hls_plays_in_gstreamer() {
    gst_case("hevc_aac_hls_plays_in_gstreamer");
}

#[test]
fn parsers_read_player_output() {
    let vlc = "+----[ Stream 3 ]\n|\n| Codec: MPEG-H Part2/HEVC (H.265) (hvc1)\n\
               | Video resolution: 320x240\n+-[Video Decoding]\n\
               | video decoded    :      536\n| frames displayed :      241\n\
               | frames lost      :        0\n";
    assert_eq!(vlc_stat(vlc, "frames displayed"), Some(241));
    assert_eq!(vlc_stat(vlc, "video decoded"), Some(536));
    assert_eq!(vlc_stat(vlc, "buffers played"), None);
    assert_eq!(vlc_info(vlc, "Video resolution"), ["320x240"]);
    assert_eq!(vlc_info(vlc, "Codec"), ["MPEG-H Part2/HEVC (H.265) (hvc1)"]);
    let gst = "/GstPlayBin3:playbin3-0/GstPlaySink:playsink/GstBin:vbin/GstFakeSink:vsink: \
               last-message = chain   ******* (vsink:sink) (115200 bytes, dts: none, pts: \
               0:00:17.787000000, duration: 0:00:00.040000000, offset: -1)\n\
               /GstPlayBin3:playbin3-0/GstPlaySink:playsink/GstBin:abin/GstFakeSink:asink: \
               last-message = chain   ******* (asink:sink) (8192 bytes, dts: none, pts: \
               1:01:00.500000000, duration: 0:00:00.021333333)\n\
               /GstPlayBin3:playbin3-0/GstPlaySink:playsink/GstBin:vbin/\
               GstFakeSink:vsink.GstPad:sink: caps = \
               video/x-raw, format=(string)I420, width=(int)320, height=(int)240\n";
    assert_eq!(gst_buffer_pts(gst, "vsink"), [17.787]);
    assert_eq!(gst_buffer_pts(gst, "asink"), [3660.5]);
    assert_eq!(
        gst_sink_caps(gst, "vsink"),
        Some("video/x-raw, format=(string)I420, width=(int)320, height=(int)240")
    );
}
