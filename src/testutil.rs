//! Helpers shared by unit tests that run the real ffmpeg/ffprobe on what the pure core writes.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Whether `name -version` runs (ffmpeg and ffprobe are installed by scripts/test.sh).
pub fn tool_available(name: &str) -> bool {
    Command::new(name)
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Environment variable that lets a test whose tool is missing pass with a SKIPPED line
/// (`RTMP_TESTS_ALLOW_SKIP=1`); without it, a missing tool fails the test.
pub const ALLOW_SKIP_ENV: &str = "RTMP_TESTS_ALLOW_SKIP";

/// Whether every tool in `names` runs. When one does not: `false` with a SKIPPED line if the
/// run allows skipping ([`ALLOW_SKIP_ENV`]), otherwise the test fails, naming what is missing.
pub fn require_tools(names: &[&str], unchecked: &str) -> bool {
    let missing: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| !tool_available(n))
        .collect();
    if missing.is_empty() {
        return true;
    }
    let why = format!("{} not installed; {unchecked}", missing.join(", "));
    assert!(
        std::env::var_os(ALLOW_SKIP_ENV).is_some_and(|v| v == "1"),
        "{why} (install them, or set {ALLOW_SKIP_ENV}=1 to let this test pass unchecked)"
    );
    eprintln!("SKIPPED: {why}");
    false
}

/// A directory for test artifacts in the cargo target dir, next to the test binary's `deps/`.
pub fn artifact_dir(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|d| d.parent()).unwrap().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// (tag type, timestamp ms, body) of each tag of an FLV file made by ffmpeg.
pub fn flv_tags(data: &[u8]) -> Vec<(u8, u32, &[u8])> {
    assert_eq!(&data[..3], b"FLV");
    let mut pos = u32::from_be_bytes([data[5], data[6], data[7], data[8]]) as usize + 4;
    let mut tags = Vec::new();
    while pos + 11 <= data.len() {
        let h = &data[pos..pos + 11];
        let size = u32::from_be_bytes([0, h[1], h[2], h[3]]) as usize;
        let ts = u32::from_be_bytes([h[7], h[4], h[5], h[6]]);
        tags.push((h[0] & 0x1f, ts, &data[pos + 11..pos + 11 + size]));
        pos += 11 + size + 4;
    }
    tags
}

/// Encodes `seconds` of testsrc2 (320x240, 25 fps, H.264 High with B-frames, a keyframe every
/// `gop` frames) and a 440 Hz sine (AAC stereo, 64 kbit/s, at `sample_rate`) into the FLV
/// file `path`, and returns its bytes: a real encoder's stream for the muxer tests.
pub fn encode_test_flv(path: &Path, seconds: u32, gop: u32, sample_rate: u32) -> Vec<u8> {
    let (seconds, gop) = (seconds.to_string(), gop.to_string());
    let sine = format!("sine=frequency=440:sample_rate={sample_rate}");
    #[rustfmt::skip]
    let args = [
        "-v", "error", "-y",
        "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25",
        "-f", "lavfi", "-i", &sine,
        "-t", &seconds,
        "-c:v", "libx264", "-preset", "veryfast", "-g", &gop, "-bf", "2", "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-ac", "2", "-b:a", "64k",
        "-f", "flv", path.to_str().unwrap(),
    ];
    run("ffmpeg", &args);
    std::fs::read(path).unwrap()
}

/// Runs a command that must succeed; returns (stdout, stderr).
pub fn run(cmd: &str, args: &[&str]) -> (String, String) {
    let out = Command::new(cmd).args(args).output().unwrap();
    assert!(out.status.success(), "{cmd} {args:?}: {out:?}");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// AMF0 values encoded by the independent `amf` crate, as a client would send them.
pub fn amf0_wire(values: &[amf::amf0::Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for v in values {
        v.write_to(&mut out).unwrap();
    }
    out
}

/// An AMF0 string value of the `amf` crate.
pub fn amf0_str(x: &str) -> amf::amf0::Value {
    amf::amf0::Value::String(x.to_owned())
}

/// The `onMetaData` data message ffmpeg 7 sends for 720p30 H.264 + AAC (optionally with the
/// `@setDataFrame` wrapper it comes in on the wire).
pub fn ffmpeg_metadata(with_set_data_frame: bool) -> Vec<u8> {
    use amf::amf0::Value as V;
    let mut vals = Vec::new();
    if with_set_data_frame {
        vals.push(amf0_str("@setDataFrame"));
    }
    vals.push(amf0_str("onMetaData"));
    let entries = [
        ("duration", V::Number(0.0)),
        ("width", V::Number(1280.0)),
        ("height", V::Number(720.0)),
        ("videodatarate", V::Number(2500.0)),
        ("framerate", V::Number(30.0)),
        ("videocodecid", V::Number(7.0)),
        ("audiodatarate", V::Number(128.0)),
        ("audiosamplerate", V::Number(44100.0)),
        ("audiosamplesize", V::Number(16.0)),
        ("stereo", V::Boolean(true)),
        ("audiocodecid", V::Number(10.0)),
        ("encoder", amf0_str("Lavf61.7.100")),
        ("filesize", V::Number(0.0)),
    ];
    vals.push(V::EcmaArray {
        entries: entries
            .into_iter()
            .map(|(k, v)| amf::Pair {
                key: k.to_owned(),
                value: v,
            })
            .collect(),
    });
    amf0_wire(&vals)
}
