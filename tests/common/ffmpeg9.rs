//! A modern ffmpeg (9.x, static, from PyPI's `imageio-ffmpeg` wheel: `scripts/lib.sh`'s
//! `ensure_ffmpeg9` puts it at `build/tools/ffmpeg9`) as the Enhanced RTMP publisher and as a
//! decoder. Debian 12's ffmpeg 5.1 cannot publish HEVC, AV1, VP9, Opus, FLAC, AC-3 or E-AC-3
//! over RTMP (its FLV muxer only knows the legacy codec ids).
//!
//! Every child is bounded in time and killed by its own PID (on timeout or drop).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Duration;

use super::ffmpeg::FfmpegChild;
use super::hls::run_bounded;
use super::manifest_dir;

/// Frames per second of every test picture (and the GOP: one keyframe a second).
pub const FPS: u32 = 25;
/// Sample rate of every test tone (Opus only knows 48 kHz).
pub const SAMPLE_RATE: u32 = 48_000;

/// The ffmpeg 9 binary: `$FFMPEG9`, else `<repo>/build/tools/ffmpeg9`; `None` when that is not
/// an executable that runs (`-version`).
pub fn ffmpeg9() -> Option<PathBuf> {
    let path = match std::env::var_os("FFMPEG9") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => manifest_dir().join("build/tools/ffmpeg9"),
    };
    if !path.is_file() {
        return None;
    }
    let (status, _, _) = run_bounded(
        Command::new(&path).args(["-hide_banner", "-version"]),
        Duration::from_secs(20),
    );
    status.is_some_and(|s| s.success()).then_some(path)
}

/// Why [`ffmpeg9`] found nothing, for `skip_or_fail`.
pub fn ffmpeg9_missing() -> String {
    match std::env::var_os("FFMPEG9") {
        Some(p) if !p.is_empty() => format!(
            "FFMPEG9={} is not an ffmpeg that runs (-version)",
            PathBuf::from(p).display()
        ),
        _ => format!(
            "no ffmpeg 9 at {} (scripts/test.sh fetches it: `. scripts/lib.sh && \
             ensure_ffmpeg9`, or set FFMPEG9)",
            manifest_dir().join("build/tools/ffmpeg9").display()
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// What to publish

/// A video codec to publish, with a cheap encoder configuration (1 s closed GOP).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Video {
    H264,
    /// HEVC Main (8 bit).
    Hevc,
    /// HEVC Main 10 (`yuv420p10le`).
    Hevc10,
    Av1,
    Vp9,
}

impl Video {
    /// Encoder options (codec, speed, pixel format, GOP).
    pub fn encoder_args(self) -> Vec<String> {
        let gop = FPS.to_string();
        let x265 = format!(
            "log-level=error:keyint={FPS}:min-keyint={FPS}:scenecut=0:open-gop=0:frame-threads=1"
        );
        let v: Vec<&str> = match self {
            Video::H264 => vec![
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-tune",
                "zerolatency",
                "-pix_fmt",
                "yuv420p",
                "-sc_threshold",
                "0",
                "-threads",
                "1",
            ],
            Video::Hevc | Video::Hevc10 => vec![
                "-c:v",
                "libx265",
                "-preset",
                "ultrafast",
                "-pix_fmt",
                if self == Video::Hevc10 {
                    "yuv420p10le"
                } else {
                    "yuv420p"
                },
                "-x265-params",
                &x265,
            ],
            Video::Av1 => vec![
                "-c:v",
                "libsvtav1",
                "-preset",
                "12",
                "-pix_fmt",
                "yuv420p",
                "-b:v",
                "300k",
            ],
            Video::Vp9 => vec![
                "-c:v",
                "libvpx-vp9",
                "-deadline",
                "realtime",
                "-cpu-used",
                "8",
                "-lag-in-frames",
                "0",
                "-pix_fmt",
                "yuv420p",
                "-b:v",
                "300k",
                "-threads",
                "1",
            ],
        };
        let mut v: Vec<String> = v.into_iter().map(str::to_string).collect();
        v.extend(["-g", &gop, "-keyint_min", &gop].map(str::to_string));
        v
    }

    /// ffmpeg's name of the codec (`Stream #0:0: Video: <name> ...`).
    pub fn ffmpeg_name(self) -> &'static str {
        match self {
            Video::H264 => "h264",
            Video::Hevc | Video::Hevc10 => "hevc",
            Video::Av1 => "av1",
            Video::Vp9 => "vp9",
        }
    }

    /// The pixel format the decoder must give.
    pub fn pix_fmt(self) -> &'static str {
        match self {
            Video::Hevc10 => "yuv420p10le",
            _ => "yuv420p",
        }
    }

    /// The profile ffmpeg names for the decoded stream, where it is fixed.
    pub fn ffmpeg_profile(self) -> Option<&'static str> {
        match self {
            Video::Hevc => Some("Main"),
            Video::Hevc10 => Some("Main 10"),
            _ => None,
        }
    }
}

/// An audio codec to publish.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Audio {
    Aac,
    Opus,
    Flac,
    Ac3,
    Eac3,
}

impl Audio {
    pub fn encoder_args(self) -> Vec<String> {
        let v: &[&str] = match self {
            Audio::Aac => &["-c:a", "aac", "-b:a", "64k"],
            Audio::Opus => &["-c:a", "libopus", "-b:a", "64k"],
            Audio::Flac => &["-c:a", "flac"],
            Audio::Ac3 => &["-c:a", "ac3", "-b:a", "128k"],
            Audio::Eac3 => &["-c:a", "eac3", "-b:a", "128k"],
        };
        v.iter().map(|s| s.to_string()).collect()
    }

    pub fn ffmpeg_name(self) -> &'static str {
        match self {
            Audio::Aac => "aac",
            Audio::Opus => "opus",
            Audio::Flac => "flac",
            Audio::Ac3 => "ac3",
            Audio::Eac3 => "eac3",
        }
    }

    /// The RFC 6381 `codecs` value of the track in fMP4 (DASH `@codecs`, HLS `CODECS`).
    pub fn codecs(self) -> &'static str {
        match self {
            Audio::Aac => "mp4a.40.2",
            Audio::Opus => "opus",
            Audio::Flac => "flac",
            Audio::Ac3 => "ac-3",
            Audio::Eac3 => "ec-3",
        }
    }

    /// The ISO-BMFF sample entry of the track.
    pub fn sample_entry(self) -> &'static str {
        match self {
            Audio::Aac => "mp4a",
            Audio::Opus => "Opus",
            Audio::Flac => "fLaC",
            Audio::Ac3 => "ac-3",
            Audio::Eac3 => "ec-3",
        }
    }
}

/// One test publish: lavfi `testsrc2` at `width`x`height`, 25 fps, and a 440 Hz sine at 48 kHz
/// with `channels` channels.
#[derive(Clone, Copy, Debug)]
pub struct Media {
    pub video: Option<Video>,
    pub audio: Option<Audio>,
    pub width: u32,
    pub height: u32,
    pub channels: u32,
}

impl Media {
    pub fn new(video: Video, audio: Audio) -> Media {
        Media {
            video: Some(video),
            audio: Some(audio),
            width: 320,
            height: 240,
            channels: 2,
        }
    }

    pub fn size(mut self, width: u32, height: u32) -> Media {
        self.width = width;
        self.height = height;
        self
    }

    pub fn channels(mut self, channels: u32) -> Media {
        self.channels = channels;
        self
    }

    /// E.g. `HEVC 320x240 + Opus 2ch`.
    pub fn label(&self) -> String {
        let v = self.video.map_or("no video".to_string(), |v| {
            format!("{v:?} {}x{}", self.width, self.height)
        });
        let a = self.audio.map_or("no audio".to_string(), |a| {
            format!("{a:?} {}ch", self.channels)
        });
        format!("{v} + {a}")
    }

    /// The ffmpeg arguments that publish `seconds` of this media in real time to `url`.
    pub fn publish_args(&self, url: &str, seconds: u32) -> Vec<String> {
        let lavfi = format!(
            "testsrc2=size={}x{}:rate={FPS}[out0];sine=frequency=440:sample_rate={SAMPLE_RATE}[out1]",
            self.width, self.height
        );
        let mut args: Vec<String> = [
            "-hide_banner",
            "-nostdin",
            "-loglevel",
            "error",
            "-re",
            "-f",
            "lavfi",
            "-i",
            &lavfi,
            "-t",
            &seconds.to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        match self.video {
            Some(v) => args.extend(v.encoder_args()),
            None => args.push("-vn".into()),
        }
        match self.audio {
            Some(a) => {
                args.extend(a.encoder_args());
                args.extend(["-ac".to_string(), self.channels.to_string()]);
                args.extend(["-ar".to_string(), SAMPLE_RATE.to_string()]);
            }
            None => args.push("-an".into()),
        }
        args.extend(
            ["-f", "flv", "-flvflags", "no_duration_filesize", url]
                .iter()
                .map(|s| s.to_string()),
        );
        args
    }
}

/// Publishes `seconds` of `media` in real time (`-re`) to `url` with `ffmpeg` (ffmpeg 9), as
/// FLV over RTMP (Enhanced RTMP for the codecs legacy FLV has no id for). Killed by its PID when
/// dropped; its stderr (errors only, and SVT-AV1's own banner) is kept.
pub fn publish9(ffmpeg: &Path, url: &str, seconds: u32, media: &Media) -> FfmpegChild {
    FfmpegChild::spawn_program(ffmpeg, &media.publish_args(url, seconds))
}

// ---------------------------------------------------------------------------------------------
// Decoding

/// One `Stream #i:j...: Video|Audio: ...` line of ffmpeg's stream listing, parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamDesc {
    /// `video`, `audio`, ...
    pub kind: String,
    /// `hevc`, `av1`, `opus`, `wrapped_avframe`, ...
    pub codec: String,
    /// The first parenthesized note after the codec (`Main 10`, `LC`, `libdav1d`, ...).
    pub profile: Option<String>,
    pub pix_fmt: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub sample_rate: Option<u32>,
    pub channels: Option<u32>,
    /// The whole line (after the log level).
    pub line: String,
}

impl StreamDesc {
    /// E.g. `video:hevc(Main) yuv420p 320x240` or `audio:opus 48000 Hz 2ch`.
    pub fn short(&self) -> String {
        let mut s = format!("{}:{}", self.kind, self.codec);
        if let Some(p) = &self.profile {
            s.push_str(&format!("({p})"));
        }
        if let Some(p) = &self.pix_fmt {
            s.push_str(&format!(" {p}"));
        }
        if let (Some(w), Some(h)) = (self.width, self.height) {
            s.push_str(&format!(" {w}x{h}"));
        }
        if let Some(r) = self.sample_rate {
            s.push_str(&format!(" {r} Hz"));
        }
        if let Some(c) = self.channels {
            s.push_str(&format!(" {c}ch"));
        }
        s
    }
}

/// Outcome of [`decode9`].
#[derive(Debug, Clone)]
pub struct Decode9 {
    /// Exited 0 in time with no error line (other than [`HARMLESS_ERRORS`]).
    pub ok: bool,
    /// Media time decoded (the last `out_time_us` of `-progress`).
    pub seconds: f64,
    /// Video frames decoded.
    pub frames: u64,
    pub timed_out: bool,
    pub status: Option<ExitStatus>,
    /// Lines logged at `error`, `fatal` or `panic` (harmless ones excluded).
    pub errors: Vec<String>,
    /// Lines logged at `warning`, and the harmless errors.
    pub warnings: Vec<String>,
    /// The input's streams as ffmpeg's demuxer and decoders describe them.
    pub inputs: Vec<StreamDesc>,
    /// The decoded streams as handed to the null muxer (decoded pixel format, channels).
    pub outputs: Vec<StreamDesc>,
    pub stderr: String,
}

impl Decode9 {
    /// The first input stream of that kind (`video`/`audio`).
    pub fn input(&self, kind: &str) -> Option<&StreamDesc> {
        self.inputs.iter().find(|s| s.kind == kind)
    }

    pub fn output(&self, kind: &str) -> Option<&StreamDesc> {
        self.outputs.iter().find(|s| s.kind == kind)
    }

    /// One line per stream, for messages.
    pub fn streams_summary(&self) -> String {
        let i: Vec<String> = self.inputs.iter().map(StreamDesc::short).collect();
        let o: Vec<String> = self.outputs.iter().map(StreamDesc::short).collect();
        format!("input streams {i:?}, decoded {o:?}")
    }

    /// Everything worth reading when it failed, without the whole stderr when it is long.
    pub fn report(&self) -> String {
        let tail: Vec<&str> = self.stderr.lines().rev().take(30).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        format!(
            "exit {:?}{}, {:.2} s and {} video frames decoded, {}; errors {:#?}; warnings {:#?}; \
             last stderr lines:\n{}",
            self.status,
            if self.timed_out { " (timed out)" } else { "" },
            self.seconds,
            self.frames,
            self.streams_summary(),
            self.errors,
            self.warnings,
            tail.join("\n")
        )
    }
}

/// Error lines ffmpeg 9 prints that say nothing about the stream (matched as substrings).
pub const HARMLESS_ERRORS: &[&str] = &[];

/// The log level of a `-loglevel level+info` line (`[info] ...`, `[hevc @ 0x..] [error] ...`).
fn level_of(line: &str) -> Option<&'static str> {
    const LEVELS: &[&str] = &[
        "panic", "fatal", "error", "warning", "info", "verbose", "debug", "trace",
    ];
    let mut rest = line;
    // At most two bracketed prefixes: the context (`[hevc @ 0x..]`), then the level.
    for _ in 0..2 {
        let r = rest.trim_start();
        let inner = r.strip_prefix('[')?;
        let end = inner.find(']')?;
        if let Some(l) = LEVELS.iter().find(|l| **l == &inner[..end]) {
            return Some(l);
        }
        rest = &inner[end + 1..];
    }
    None
}

/// The text of a `level+info` line after its prefixes.
fn message_of(line: &str) -> &str {
    let mut rest = line;
    for _ in 0..2 {
        let r = rest.trim_start();
        match r
            .strip_prefix('[')
            .and_then(|i| i.find(']').map(|e| &i[e + 1..]))
        {
            Some(after) => rest = after,
            None => break,
        }
    }
    rest
}

/// Splits at commas outside parentheses/brackets.
fn split_top(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' | '[' => depth += 1,
            ')' | ']' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(s[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(s[start..].trim());
    parts
}

/// Channels of an ffmpeg channel layout description (`mono`, `stereo`, `5.1(side)`,
/// `3 channels`).
pub fn layout_channels(s: &str) -> Option<u32> {
    let s = s.trim();
    if let Some(n) = s.strip_suffix(" channels") {
        return n.trim().parse().ok();
    }
    let base = s.split('(').next().unwrap_or(s);
    Some(match base {
        "mono" => 1,
        "stereo" | "downmix" => 2,
        "2.1" | "3.0" => 3,
        "3.1" | "4.0" | "quad" => 4,
        "4.1" | "5.0" => 5,
        "5.1" | "6.0" | "hexagonal" => 6,
        "6.1" | "7.0" => 7,
        "7.1" | "octagonal" => 8,
        _ => return None,
    })
}

/// Parses one `Stream #0:0[0x1](und): Video: hevc (Main) (hvc1 / 0x31637668), yuv420p(tv),
/// 320x240 [SAR 1:1 DAR 4:3], 25 fps, ...` message.
pub fn parse_stream_line(msg: &str) -> Option<StreamDesc> {
    let msg = msg.trim();
    let rest = msg.strip_prefix("Stream #")?;
    let (_, rest) = rest.split_once(": ")?;
    let (kind, rest) = rest.split_once(": ")?;
    let mut d = StreamDesc {
        kind: kind.trim().to_ascii_lowercase(),
        line: msg.to_string(),
        ..StreamDesc::default()
    };
    let parts = split_top(rest);
    let first = parts.first().copied().unwrap_or("");
    d.codec = first.split([' ', ',']).next().unwrap_or("").to_string();
    // `hevc (Main) (hvc1 / 0x31637668)`: the profile is the first note that is not a tag.
    let mut notes = first[d.codec.len()..].trim();
    while let Some(inner) = notes.strip_prefix('(') {
        let Some(end) = inner.find(')') else { break };
        let note = &inner[..end];
        if !note.contains(" / 0x") && d.profile.is_none() {
            d.profile = Some(note.to_string());
        }
        notes = inner[end + 1..].trim();
    }
    match d.kind.as_str() {
        "video" => {
            if let Some(p) = parts.get(1) {
                let fmt = p.split(['(', ' ']).next().unwrap_or("");
                if !fmt.is_empty() && !fmt.chars().next().is_some_and(|c| c.is_ascii_digit()) {
                    d.pix_fmt = Some(fmt.to_string());
                }
            }
            for p in &parts[1..] {
                let word = p.split_whitespace().next().unwrap_or("");
                if let Some((w, h)) = word.split_once('x') {
                    if let (Ok(w), Ok(h)) = (w.parse(), h.parse()) {
                        d.width = Some(w);
                        d.height = Some(h);
                        break;
                    }
                }
            }
        }
        "audio" => {
            for (i, p) in parts.iter().enumerate().skip(1) {
                if let Some(hz) = p.strip_suffix(" Hz") {
                    d.sample_rate = hz.trim().parse().ok();
                    d.channels = parts.get(i + 1).and_then(|l| layout_channels(l));
                    break;
                }
            }
        }
        _ => {}
    }
    Some(d)
}

/// `ffmpeg9 -v level+info -i <input> [-t max] -f null -` (bounded by `wall`, killed by PID):
/// decodes every stream, and returns the errors it logged and the streams it found.
/// `input_opts` go before `-i` (e.g. `-live_start_index 0` for a live HLS playlist).
pub fn decode9(
    ffmpeg: &Path,
    input: &str,
    input_opts: &[&str],
    max_secs: Option<f64>,
    wall: Duration,
) -> Decode9 {
    let mut args: Vec<String> = [
        "-hide_banner",
        "-nostdin",
        "-loglevel",
        "level+info",
        "-nostats",
        "-progress",
        "pipe:1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(input_opts.iter().map(|s| s.to_string()));
    args.extend(["-i".to_string(), input.to_string()]);
    if let Some(t) = max_secs {
        args.push("-t".into());
        args.push(format!("{t:.3}"));
    }
    args.extend(["-f", "null", "-"].iter().map(|s| s.to_string()));
    let (status, out, stderr) = run_bounded(Command::new(ffmpeg).args(&args), wall);
    let last_num = |key: &str| -> Option<i64> {
        out.lines()
            .filter_map(|l| l.strip_prefix(key))
            .filter_map(|v| v.trim().parse::<i64>().ok())
            .next_back()
    };
    let seconds = last_num("out_time_us=").unwrap_or(0).max(0) as f64 / 1e6;
    let frames = last_num("frame=").unwrap_or(0).max(0) as u64;
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let mut inputs = Vec::new();
    let mut outputs = Vec::new();
    let mut section = "";
    for line in stderr.lines() {
        let level = level_of(line);
        let msg = message_of(line);
        match level {
            Some("error" | "fatal" | "panic") => {
                if HARMLESS_ERRORS.iter().any(|h| line.contains(h)) {
                    warnings.push(line.to_string());
                } else {
                    errors.push(line.to_string());
                }
                continue;
            }
            Some("warning") => {
                warnings.push(line.to_string());
                continue;
            }
            _ => {}
        }
        let t = msg.trim_start();
        if t.starts_with("Input #") {
            section = "input";
        } else if t.starts_with("Output #") {
            section = "output";
        } else if t.starts_with("Stream mapping:") {
            section = "";
        } else if t.starts_with("Stream #") {
            if let Some(d) = parse_stream_line(t) {
                match section {
                    "input" => inputs.push(d),
                    "output" => outputs.push(d),
                    _ => {}
                }
            }
        }
    }
    let timed_out = status.is_none();
    Decode9 {
        ok: !timed_out && status.is_some_and(|s| s.success()) && errors.is_empty(),
        seconds,
        frames,
        timed_out,
        status,
        errors,
        warnings,
        inputs,
        outputs,
        stderr,
    }
}

/// The sizes of [`ladder_publish_args`]' three encodings, highest first.
pub const LADDER: [(u32, u32); 3] = [(640, 360), (320, 180), (160, 90)];

/// ffmpeg 9 arguments publishing one picture encoded three times ([`LADDER`], H.264 at
/// 800k/300k/100k, 1 s GOPs) + AAC to `url` for `seconds`: a multitrack publisher (the 2nd and
/// 3rd video streams go as Enhanced RTMP multitrack messages).
pub fn ladder_publish_args(url: &str, seconds: u32) -> Vec<String> {
    let (w, h) = LADDER[0];
    let source = format!("testsrc2=size={w}x{h}:rate={FPS}");
    let filter = format!(
        "[0:v]split=3[a][b][c];[b]scale={}:{}[b2];[c]scale={}:{}[c2]",
        LADDER[1].0, LADDER[1].1, LADDER[2].0, LADDER[2].1
    );
    let audio = format!("sine=frequency=440:sample_rate={SAMPLE_RATE}");
    let (secs, gop) = (seconds.to_string(), FPS.to_string());
    [
        "-hide_banner",
        "-nostdin",
        "-loglevel",
        "error",
        "-re",
        "-f",
        "lavfi",
        "-i",
        &source,
        "-f",
        "lavfi",
        "-i",
        &audio,
        "-t",
        &secs,
        "-filter_complex",
        &filter,
        "-map",
        "[a]",
        "-map",
        "[b2]",
        "-map",
        "[c2]",
        "-map",
        "1:a",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-g",
        &gop,
        "-b:v:0",
        "800k",
        "-b:v:1",
        "300k",
        "-b:v:2",
        "100k",
        "-c:a",
        "aac",
        "-f",
        "flv",
        url,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}
