//! `/stat` of Enhanced RTMP publishers, as ffmpeg 9 (`build/tools/ffmpeg9` or `FFMPEG9`) sends
//! them: what the codec configuration says reaches the JSON, XML and Prometheus answers.
//!
//! - [`hevc_main10_pq_and_opus_show_codec_profile_size_hdr_and_audio`]: HEVC Main 10 tagged
//!   PQ (BT.2020) + Opus stereo: codec `HEVC`, profile `Main 10`, level, 320x240, 10 bits, HDR
//!   `PQ` (from the colorInfo metadata ffmpeg sends once, before the first keyframe, so it must
//!   outlive the GOP cache), `Opus`, 2 channels, 48000 Hz.
//! - [`multitrack_publisher_lists_its_second_video_track`]: H.264 on track 0 and HEVC on
//!   track 1 (ffmpeg 9's multitrack FLV): the second track is listed with its codec and size.
//!
//! Without ffmpeg 9 the tests fail, or skip with `RTMP_TESTS_ALLOW_SKIP=1`. Not meant for
//! `RTMP_IT_TARGET=c` (no Enhanced RTMP, no JSON statistics).

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::ffmpeg::FfmpegChild;
use common::ffmpeg9::*;
use common::hls::http_get;
use common::*;

/// Seconds each publish lasts (the checks run while it is live).
const SECS: u32 = 12;
/// How long /stat may take to show the stream's codecs after the publish started.
const STAT_TIMEOUT: Duration = Duration::from_secs(10);

fn need_ffmpeg9(test: &str) -> Option<PathBuf> {
    let f = ffmpeg9();
    if f.is_none() {
        skip_or_fail(test, &ffmpeg9_missing());
    }
    f
}

fn start_server() -> Server {
    Server::start(
        &live_rtmp_block("", ""),
        "        location /stat { rtmp_stat all; }",
    )
}

/// `live/cam` of `/stat?format=json` once `ready` says yes (or the last one seen).
fn wait_stream(
    server: &Server,
    ready: impl Fn(&serde_json::Value) -> bool,
) -> Option<serde_json::Value> {
    let t0 = Instant::now();
    let mut last = None;
    while t0.elapsed() < STAT_TIMEOUT {
        if let Ok(r) = http_get(server.http_port, "/stat?format=json") {
            if let Ok(doc) = serde_json::from_slice::<serde_json::Value>(&r.body) {
                let st = doc["servers"][0]["applications"]
                    .as_array()
                    .and_then(|apps| apps.iter().find(|a| a["name"] == "live"))
                    .and_then(|a| a["streams"].as_array())
                    .and_then(|s| s.iter().find(|s| s["name"] == "cam"))
                    .cloned();
                if let Some(st) = st {
                    if ready(&st) {
                        return Some(st);
                    }
                    last = Some(st);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    last
}

fn get_text(server: &Server, path: &str) -> String {
    let r = http_get(server.http_port, path).unwrap_or_else(|e| panic!("GET {path}: {e}"));
    String::from_utf8_lossy(&r.body).into_owned()
}

/// ffmpeg 9's arguments for `media` with `extra` output options before the output.
fn args_with(media: &Media, url: &str, extra: &[&str]) -> Vec<String> {
    let mut args = media.publish_args(url, SECS);
    // The last "-f" is the output's ("-f flv"); output options go before it.
    let at = args.iter().rposition(|a| a == "-f").unwrap_or(args.len());
    for (i, e) in extra.iter().enumerate() {
        args.insert(at + i, (*e).to_string());
    }
    args
}

#[test]
fn hevc_main10_pq_and_opus_show_codec_profile_size_hdr_and_audio() {
    let test = "hevc_main10_pq_and_opus_show_codec_profile_size_hdr_and_audio";
    let Some(ff) = need_ffmpeg9(test) else {
        return;
    };
    let server = start_server();
    let media = Media::new(Video::Hevc10, Audio::Opus);
    // Frames tagged PQ: ffmpeg 9 ignores -color_trc for this encoder, a filter sticks.
    let pq = [
        "-vf",
        "setparams=color_primaries=bt2020:color_trc=smpte2084:colorspace=bt2020nc",
    ];
    let mut publisher =
        FfmpegChild::spawn_program(&ff, &args_with(&media, &server.rtmp_url("live/cam"), &pq));
    let st = wait_stream(&server, |st| {
        st["video"]["codec"] == "HEVC" && st["audio"]["codec"] == "Opus"
    });
    let st = st.unwrap_or_else(|| {
        panic!(
            "no live/cam in /stat; ffmpeg: {}\n{}",
            publisher.stderr(),
            server.error_log()
        )
    });
    let (v, a) = (&st["video"], &st["audio"]);
    assert_eq!(v["codec"], "HEVC", "{st}");
    assert_eq!(v["profile"], "Main 10", "{st}");
    assert!(v["level"].as_str().is_some_and(|l| l.contains('.')), "{st}");
    assert_eq!(
        (&v["width"], &v["height"]),
        (&320.into(), &240.into()),
        "{st}"
    );
    assert_eq!(v["bit_depth"], 10, "{st}");
    assert_eq!(v["hdr"], "PQ", "{st}");
    assert_eq!(v["tracks"], serde_json::json!([]), "{st}");
    assert_eq!(a["codec"], "Opus", "{st}");
    assert_eq!(
        (&a["channels"], &a["sample_rate"]),
        (&2.into(), &48_000.into()),
        "{st}"
    );

    // The C module's XML, the same values (and our <hdr> at the end of <video>).
    let xml = get_text(&server, "/stat");
    for want in [
        "<meta><video><width>320</width><height>240</height>",
        "<codec>HEVC</codec><profile>Main 10</profile><level>",
        "</level><hdr>PQ</hdr></video><audio><codec>Opus</codec><channels>2</channels>\
         <sample_rate>48000</sample_rate></audio></meta>",
    ] {
        assert!(xml.contains(want), "XML lacks {want}:\n{xml}");
    }
    let prom = get_text(&server, "/stat?format=prometheus");
    let info = prom
        .lines()
        .find(|l| l.starts_with("nginx_rtmp_stream_video_info{") && l.contains("name=\"cam\""))
        .unwrap_or_else(|| panic!("{prom}"));
    assert!(
        info.contains("codec=\"HEVC\",profile=\"Main 10\"")
            && info.contains("bit_depth=\"10\",hdr=\"PQ\"} 1"),
        "{info}"
    );
    publisher.kill();
    server.finish();
}

#[test]
fn multitrack_publisher_lists_its_second_video_track() {
    let test = "multitrack_publisher_lists_its_second_video_track";
    let Some(ff) = need_ffmpeg9(test) else {
        return;
    };
    let server = start_server();
    // One picture, split: H.264 320x240 on track 0, HEVC 160x120 on track 1.
    let graph = format!(
        "testsrc2=size=320x240:rate={FPS},split[out0][b];[b]scale=160:120[out1];\
         sine=frequency=440:sample_rate={SAMPLE_RATE}[out2]"
    );
    let x265 = format!("log-level=error:keyint={FPS}:min-keyint={FPS}:frame-threads=1");
    let gop = FPS.to_string();
    let secs = SECS.to_string();
    let url = server.rtmp_url("live/cam");
    let args: Vec<String> = [
        "-hide_banner",
        "-nostdin",
        "-loglevel",
        "error",
        "-re",
        "-f",
        "lavfi",
        "-i",
        &graph,
        "-map",
        "0:v:0",
        "-map",
        "0:v:1",
        "-map",
        "0:a:0",
        "-t",
        &secs,
        "-c:v:0",
        "libx264",
        "-preset",
        "ultrafast",
        "-tune",
        "zerolatency",
        "-g",
        &gop,
        "-c:v:1",
        "libx265",
        "-x265-params",
        &x265,
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        "-f",
        "flv",
        "-flvflags",
        "no_duration_filesize",
        &url,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut publisher = FfmpegChild::spawn_program(&ff, &args);
    let st = wait_stream(&server, |st| {
        st["video"]["tracks"]
            .as_array()
            .is_some_and(|t| !t.is_empty())
    });
    let st = st.unwrap_or_else(|| {
        panic!(
            "no live/cam with tracks in /stat; ffmpeg: {}\n{}",
            publisher.stderr(),
            server.error_log()
        )
    });
    let v = &st["video"];
    assert_eq!(
        (&v["codec"], &v["width"], &v["height"]),
        (&"H264".into(), &320.into(), &240.into()),
        "{st}"
    );
    assert_eq!(
        v["tracks"],
        serde_json::json!([{"id": 1, "codec": "HEVC", "width": 160, "height": 120,
                            "profile": "Main", "level": v["tracks"][0]["level"]}]),
        "{st}"
    );
    assert!(v["tracks"][0]["level"].is_string(), "{st}");
    assert_eq!(st["audio"]["codec"], "AAC", "{st}");
    publisher.kill();
    server.finish();
}
