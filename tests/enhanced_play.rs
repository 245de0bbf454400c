//! Enhanced RTMP playback: a stream published as HEVC over E-RTMP (ffmpeg 9) reaches players
//! that announced it, and legacy players (Debian's ffmpeg 5.1, rtmpdump) get a clear refusal
//! instead of bytes they cannot parse. Plain H.264/AAC plays as before.

mod common;

use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

use common::ffmpeg::{ffmpeg9, play_decode_bin, publish_hevc, FfmpegChild};
use common::raw::{self, RawConn};
use common::*;

/// What the server tells (and logs for) a player that did not announce E-RTMP.
const LEGACY_REFUSAL: &str =
    "stream is HEVC (hvc1); this player did not announce Enhanced RTMP support";
const HEVC_SECONDS: u32 = 25;

fn ffmpeg9_or_skip(test: &str) -> Option<PathBuf> {
    let found = ffmpeg9();
    if found.is_none() {
        skip_or_fail(
            test,
            "no ffmpeg 9 (set FFMPEG9, or install it at build/tools/ffmpeg9)",
        );
    }
    found
}

/// Starts an HEVC publisher on `live/hevc` and waits until the server has its first frames.
fn hevc_stream(server: &Server, ff9: &OsStr) -> FfmpegChild {
    let offset = server.log_len();
    let mut publisher = publish_hevc(ff9, &server.rtmp_url("live/hevc"), HEVC_SECONDS);
    assert!(
        server.wait_for_log(offset, "publish \"live/hevc\"", Duration::from_secs(15)),
        "HEVC publisher did not start: {}",
        publisher.stderr()
    );
    // A keyframe in the start cache.
    thread::sleep(Duration::from_millis(1500));
    assert!(publisher.is_running(), "publisher: {}", publisher.stderr());
    publisher
}

/// ffmpeg stderr lines that come from a demuxer or decoder (anything but the RTMP protocol
/// layer and the input opening): none may appear when a player is refused.
fn decoder_complaints(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| {
            let component = l.strip_prefix('[').and_then(|r| r.split(" @").next());
            let foreign = component.is_some_and(|c| c != "rtmp" && !c.starts_with("in#"));
            foreign || l.contains("Zlib") || l.to_lowercase().contains("decod")
        })
        .collect()
}

fn refusal_lines(server: &Server, why: &str) -> usize {
    server
        .error_log()
        .lines()
        .filter(|l| l.contains("refused: ") && l.contains(why))
        .count()
}

#[test]
fn legacy_ffmpeg_gets_a_clear_refusal_of_hevc_and_never_undecodable_bytes() {
    let Some(ff9) = ffmpeg9_or_skip("legacy ffmpeg refusal") else {
        return;
    };
    let server = Server::start_live("");
    let url = server.rtmp_url("live/hevc");
    // One player waits for the publisher (refused when HEVC starts), one joins the running
    // stream (refused from the start cache).
    let offset = server.log_len();
    let early = spawn_play_decode(&url, 5);
    assert!(
        server.wait_for_log(offset, "waiting for a publisher", Duration::from_secs(10)),
        "the early player did not start"
    );
    let mut publisher = hevc_stream(&server, ff9.as_os_str());
    let late = play_decode(&url, 5);
    let early = early.join().expect("early player");
    for (who, r) in [("waiting player", &early), ("joining player", &late)] {
        assert!(
            !r.ok && !r.timed_out && r.frames == 0,
            "{who}: expected a refusal, got {r:#?}"
        );
        assert!(
            r.stderr.contains(LEGACY_REFUSAL),
            "{who}: no clear status: {}",
            r.stderr
        );
        assert!(
            decoder_complaints(&r.stderr).is_empty(),
            "{who}: decoder errors: {}",
            r.stderr
        );
    }
    assert_eq!(
        refusal_lines(&server, LEGACY_REFUSAL),
        2,
        "one log line per refused player:\n{}",
        server.error_log()
    );
    assert!(publisher.is_running(), "publisher: {}", publisher.stderr());
    drop(publisher);
    server.finish();
}

#[test]
fn rtmpdump_gets_a_clear_refusal_of_hevc_and_records_nothing_it_cannot_parse() {
    let Some(ff9) = ffmpeg9_or_skip("rtmpdump refusal") else {
        return;
    };
    let server = Server::start_live("");
    let url = server.rtmp_url("live/hevc");
    let mut publisher = hevc_stream(&server, ff9.as_os_str());
    let out = server.prefix.join("rtmpdump.flv");
    let mut dump = Command::new("timeout")
        .args(["-s", "TERM", "8", "rtmpdump", "--live", "-r", &url, "-o"])
        .arg(&out)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("rtmpdump is installed (scripts/test.sh installs it)");
    let stderr = dump.stderr.take().expect("stderr");
    let reader = thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    if wait_timeout(&mut dump, Duration::from_secs(15)).is_none() {
        let _ = dump.kill();
        let _ = dump.wait();
    }
    let said = reader.join().unwrap_or_default();
    assert!(
        said.contains("NetStream.Play.Failed"),
        "rtmpdump was not told: {said}"
    );
    let recorded = std::fs::read(&out).unwrap_or_default();
    for tag in raw::parse_flv(&recorded) {
        let first = tag.body.first().copied().unwrap_or(0);
        let enhanced_video = tag.type_id == 9 && first & 0x80 != 0;
        let enhanced_audio = tag.type_id == 8 && first >> 4 == 9;
        assert!(
            !enhanced_video && !enhanced_audio,
            "rtmpdump recorded an Enhanced RTMP tag: {tag:?}"
        );
    }
    assert_eq!(refusal_lines(&server, LEGACY_REFUSAL), 1);
    assert!(publisher.is_running(), "publisher: {}", publisher.stderr());
    drop(publisher);
    server.finish();
}

/// `ffmpeg9 [input_opts] -i url -t 5 -f null -` at info level: (success, stderr). Bounded.
fn ffmpeg9_play(ff9: &OsStr, url: &str, input_opts: &[&str]) -> (bool, String) {
    let mut child = Command::new(ff9)
        .args(["-hide_banner", "-nostdin", "-rw_timeout", "5000000"])
        .args(input_opts)
        .args(["-i", url, "-t", "5", "-f", "null", "-"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ffmpeg 9");
    let stderr = child.stderr.take().expect("stderr");
    let reader = thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    let status = wait_timeout(&mut child, Duration::from_secs(30));
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let stderr = reader.join().unwrap_or_default();
    (status.is_some_and(|s| s.success()), stderr)
}

/// The last `frame=` count of ffmpeg's progress lines.
fn frames_decoded(stderr: &str) -> u64 {
    stderr
        .rsplit("frame=")
        .next()
        .and_then(|t| t.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[test]
fn ffmpeg9_announcing_hvc1_decodes_hevc_and_one_announcing_only_av01_is_refused() {
    let Some(ff9) = ffmpeg9_or_skip("ffmpeg 9 E-RTMP playback") else {
        return;
    };
    let ff9 = ff9.as_os_str();
    let server = Server::start_live("");
    let url = server.rtmp_url("live/hevc");
    let mut publisher = hevc_stream(&server, ff9);

    let (ok, stderr) = ffmpeg9_play(ff9, &url, &["-rtmp_enhanced_codecs", "hvc1"]);
    assert!(ok, "ffmpeg 9 announcing hvc1 failed:\n{stderr}");
    assert!(stderr.contains("Video: hevc"), "no HEVC video:\n{stderr}");
    assert!(stderr.contains("Audio: aac"), "no AAC audio:\n{stderr}");
    assert!(
        decoder_complaints(&stderr).is_empty(),
        "decoder errors:\n{stderr}"
    );
    let frames = frames_decoded(&stderr);
    assert!(frames >= 100, "only {frames} frames in 5 s:\n{stderr}");

    // A player that announced other codecs only is refused, naming what it lacks.
    let r = play_decode_bin(ff9, &url, 5, &["-rtmp_enhanced_codecs", "av01"]);
    let why = "stream is HEVC (hvc1); this player did not announce support for it";
    assert!(!r.ok && r.frames == 0 && r.stderr.contains(why), "{r:#?}");
    // ffmpeg plays without announcing anything unless asked to: a legacy client to us.
    let r = play_decode_bin(ff9, &url, 5, &[]);
    assert!(
        !r.ok && r.frames == 0 && r.stderr.contains(LEGACY_REFUSAL),
        "{r:#?}"
    );
    assert_eq!(refusal_lines(&server, why), 1);
    assert_eq!(refusal_lines(&server, LEGACY_REFUSAL), 1);
    assert!(publisher.is_running(), "publisher: {}", publisher.stderr());
    drop(publisher);
    server.finish();
}

/// `connect` as an E-RTMP client announcing `hvc1` (what ffmpeg 9 sends with
/// `-rtmp_enhanced_codecs hvc1`).
fn enhanced_connect(app: &str, addr: &str) -> Vec<u8> {
    let mut p = Vec::new();
    raw::amf_string(&mut p, "connect");
    raw::amf_number(&mut p, 1.0);
    p.push(0x03);
    raw::amf_key(&mut p, "app");
    raw::amf_string(&mut p, app);
    raw::amf_key(&mut p, "fourCcList");
    p.push(0x0a);
    p.extend_from_slice(&1u32.to_be_bytes());
    raw::amf_string(&mut p, "hvc1");
    raw::amf_key(&mut p, "tcUrl");
    raw::amf_string(&mut p, &format!("rtmp://{addr}/{app}"));
    raw::amf_object_end(&mut p);
    p
}

#[test]
fn plain_h264_plays_as_before_and_only_e_rtmp_clients_see_our_capabilities() {
    let server = Server::start_live("");
    let url = server.rtmp_url("live/plain");
    let mut publisher = publish(&url, 16);
    thread::sleep(Duration::from_millis(1500));

    // Debian's ffmpeg decodes H.264/AAC exactly as before.
    let played = play_decode(&url, 5);
    played.assert_decoded(4.0, "legacy player of H.264");
    assert!(played.frames >= 100, "{played:#?}");
    // An E-RTMP player that announced hvc1 still gets the legacy H.264 tags.
    if let Some(ff9) = ffmpeg9() {
        let (ok, stderr) = ffmpeg9_play(ff9.as_os_str(), &url, &["-rtmp_enhanced_codecs", "hvc1"]);
        assert!(ok && stderr.contains("Video: h264"), "{stderr}");
        assert!(frames_decoded(&stderr) >= 100, "{stderr}");
    }

    // The connect reply: a legacy client sees no E-RTMP properties; an E-RTMP one gets ours.
    let addr = server.rtmp_addr();
    let legacy = RawConn::rtmp_connect(&addr, "live").expect("legacy connect");
    assert!(!raw::contains(&legacy.received, b"fourCcList"));
    assert!(!raw::contains(&legacy.received, b"capsEx"));
    let mut c = RawConn::open(&addr).expect("tcp connect");
    c.handshake().expect("handshake");
    c.send(&raw::message(
        128,
        3,
        0,
        raw::MSG_COMMAND_AMF0,
        0,
        &enhanced_connect("live", &addr),
    ))
    .expect("send connect");
    c.read_until(b"NetConnection.Connect.Success", Duration::from_secs(5))
        .expect("connect accepted");
    for needle in [
        &b"fourCcList"[..],
        b"\x02\x00\x04hvc1",
        b"\x02\x00\x04Opus",
        b"videoFourCcInfoMap",
        b"audioFourCcInfoMap",
        b"capsEx",
    ] {
        assert!(
            raw::contains(&c.received, needle),
            "no {:?} in the reply to an E-RTMP connect",
            String::from_utf8_lossy(needle)
        );
    }
    drop(c);
    drop(legacy);
    assert_eq!(refusal_lines(&server, "refused"), 0);
    assert!(publisher.is_running(), "publisher: {}", publisher.stderr());
    drop(publisher);
    server.finish();
}
