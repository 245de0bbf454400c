//! Real ffmpeg/ffprobe as publisher, player and prober. Every child is bounded in time and killed
//! by its own PID (on timeout or drop), never by name.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Test picture: cheap to encode on a shared 2-core machine.
pub const VIDEO_SIZE: &str = "320x240";
pub const VIDEO_FPS: u32 = 25;
/// Extra wall time a player gets beyond the media it asks for (connect, probe, slow start).
pub const PLAY_SLACK: Duration = Duration::from_secs(20);
/// Read/write timeout handed to ffmpeg's protocol layer (microseconds): a stalled stream errors out.
const RW_TIMEOUT_US: &str = "5000000";

/// A running ffmpeg/ffprobe child; killed (by PID) when dropped.
pub struct FfmpegChild {
    child: Option<Child>,
    stderr: Arc<Mutex<String>>,
    reader: Option<JoinHandle<()>>,
    status: Option<ExitStatus>,
}

impl FfmpegChild {
    fn spawn(args: &[String]) -> FfmpegChild {
        Self::spawn_program(Path::new("ffmpeg"), args)
    }

    /// Runs `program` (an ffmpeg, e.g. [`super::ffmpeg9::ffmpeg9`]'s) with `args`.
    pub fn spawn_program(program: &Path, args: &[String]) -> FfmpegChild {
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "spawn {} (is it installed? scripts/test.sh installs it): {e}",
                    program.display()
                )
            });
        let stderr = Arc::new(Mutex::new(String::new()));
        let reader = child.stderr.take().map(|pipe| {
            let sink = Arc::clone(&stderr);
            thread::spawn(move || collect_lines(pipe, &sink))
        });
        FfmpegChild {
            child: Some(child),
            stderr,
            reader,
            status: None,
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub fn is_running(&mut self) -> bool {
        let Some(c) = &mut self.child else {
            return false;
        };
        match c.try_wait() {
            Ok(None) => true,
            Ok(Some(st)) => {
                self.status = Some(st);
                self.child = None;
                false
            }
            Err(_) => false,
        }
    }

    /// Waits up to `timeout` for the process to exit by itself.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while self.is_running() {
            if Instant::now() > deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
        self.status
    }

    /// Kills the process (SIGKILL to its PID) if it still runs, and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            if let Ok(st) = c.wait() {
                self.status = Some(st);
            }
        }
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }

    /// What ffmpeg printed on stderr so far (complete lines).
    pub fn stderr(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    pub fn status(&self) -> Option<ExitStatus> {
        self.status
    }
}

impl Drop for FfmpegChild {
    fn drop(&mut self) {
        self.kill();
    }
}

fn collect_lines(pipe: impl Read, sink: &Mutex<String>) {
    let mut r = BufReader::new(pipe);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match r.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                if let Ok(mut s) = sink.lock() {
                    s.push_str(&String::from_utf8_lossy(&buf));
                }
            }
        }
    }
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// Publishes `seconds` of live test media (testsrc2 320x240 @ 25 fps + a sine tone; H.264
/// ultrafast with a 1 s GOP, AAC) in real time (`-re`) to `url` as FLV over RTMP.
pub fn publish(url: &str, seconds: u32) -> FfmpegChild {
    publish_with(url, seconds, &[])
}

/// [`publish`] at a constant video bitrate (e.g. `"16M"`, with filler data): fills socket
/// buffers quickly, for slow-consumer tests, at no extra encoding cost.
pub fn publish_cbr(url: &str, seconds: u32, bitrate: &str) -> FfmpegChild {
    let bufsize = bitrate.to_string();
    publish_with(
        url,
        seconds,
        &[
            "-b:v",
            bitrate,
            "-minrate",
            bitrate,
            "-maxrate",
            bitrate,
            "-bufsize",
            &bufsize,
            "-x264-params",
            "nal-hrd=cbr",
        ],
    )
}

/// [`publish`] with extra output options (placed before the codec options' output URL).
pub fn publish_with(url: &str, seconds: u32, extra: &[&str]) -> FfmpegChild {
    let lavfi = format!(
        "testsrc2=size={VIDEO_SIZE}:rate={VIDEO_FPS}[out0];sine=frequency=440:sample_rate=44100[out1]"
    );
    let secs = seconds.to_string();
    let gop = VIDEO_FPS.to_string();
    let mut args = strings(&["-hide_banner", "-nostdin", "-loglevel", "error", "-re"]);
    args.extend(strings(&["-f", "lavfi", "-i", &lavfi, "-t", &secs]));
    args.extend(strings(&[
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-tune",
        "zerolatency",
        "-pix_fmt",
        "yuv420p",
        "-g",
        &gop,
        "-keyint_min",
        &gop,
        "-sc_threshold",
        "0",
        "-threads",
        "1",
        "-c:a",
        "aac",
        "-b:a",
        "64k",
    ]));
    args.extend(strings(extra));
    args.extend(strings(&[
        "-f",
        "flv",
        "-flvflags",
        "no_duration_filesize",
        url,
    ]));
    FfmpegChild::spawn(&args)
}

/// Outcome of decoding a stream with `ffmpeg -i URL -t N -f null -`.
#[derive(Debug, Clone)]
pub struct PlayResult {
    /// Exited successfully, in time, and printed no error (decode errors are errors).
    pub ok: bool,
    /// Media time decoded (ffmpeg's `out_time`).
    pub decoded_seconds: f64,
    /// Video frames decoded.
    pub frames: u64,
    /// Wall time from spawning ffmpeg until it reported its first decoded video frame
    /// (includes ffmpeg's own stream probing, typically 1–2.5 s).
    pub first_frame_after: Option<Duration>,
    /// Wall time of the whole run.
    pub wall: Duration,
    pub timed_out: bool,
    pub status: Option<ExitStatus>,
    pub stderr: String,
}

impl PlayResult {
    /// Panics with the details unless at least `min_seconds` decoded without error.
    pub fn assert_decoded(&self, min_seconds: f64, what: &str) {
        assert!(
            self.ok && self.decoded_seconds >= min_seconds,
            "{what}: expected >= {min_seconds}s decoded without error, got {self:#?}"
        );
    }

    /// Whether at least 90 % of the frames of `fps` video came for the seconds decoded.
    pub fn kept_frames(&self, fps: f64) -> bool {
        self.frames as f64 >= 0.9 * fps * self.decoded_seconds
    }
}

/// Plays `url` and decodes `seconds` of it (bounded by `seconds` + [`PLAY_SLACK`]).
pub fn play_decode(url: &str, seconds: u32) -> PlayResult {
    play_decode_with(url, seconds, &[])
}

/// [`play_decode`] with extra input options (e.g. `-analyzeduration`).
pub fn play_decode_with(url: &str, seconds: u32, input_opts: &[&str]) -> PlayResult {
    play_decode_bin("ffmpeg".as_ref(), url, seconds, input_opts)
}

/// [`play_decode_with`] by another ffmpeg binary (e.g. [`ffmpeg9`]).
pub fn play_decode_bin(bin: &OsStr, url: &str, seconds: u32, input_opts: &[&str]) -> PlayResult {
    let secs = seconds.to_string();
    let mut args = strings(&[
        "-hide_banner",
        "-nostdin",
        "-loglevel",
        "error",
        "-nostats",
        "-stats_period",
        "0.05",
        "-progress",
        "pipe:1",
        "-rw_timeout",
        RW_TIMEOUT_US,
    ]);
    args.extend(strings(input_opts));
    args.extend(strings(&["-i", url, "-t", &secs, "-f", "null", "-"]));

    let start = Instant::now();
    let mut child = Command::new(bin)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ffmpeg");
    let stdout = child.stdout.take().expect("stdout");
    let stderr_pipe = child.stderr.take().expect("stderr");
    let stderr = Arc::new(Mutex::new(String::new()));
    let err_reader = {
        let sink = Arc::clone(&stderr);
        thread::spawn(move || collect_lines(stderr_pipe, &sink))
    };
    #[derive(Default)]
    struct Progress {
        frames: u64,
        out_time_us: i64,
        first_frame_after: Option<Duration>,
    }
    let progress = Arc::new(Mutex::new(Progress::default()));
    let out_reader = {
        let progress = Arc::clone(&progress);
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let Some((k, v)) = line.split_once('=') else {
                    continue;
                };
                let Ok(mut p) = progress.lock() else { break };
                match k {
                    "frame" => {
                        if let Ok(n) = v.trim().parse::<u64>() {
                            if n > 0 && p.first_frame_after.is_none() {
                                p.first_frame_after = Some(start.elapsed());
                            }
                            p.frames = n;
                        }
                    }
                    "out_time_us" => {
                        if let Ok(t) = v.trim().parse::<i64>() {
                            p.out_time_us = t;
                        }
                    }
                    _ => {}
                }
            }
        })
    };

    let limit = Duration::from_secs(u64::from(seconds)) + PLAY_SLACK;
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) => {}
            Err(_) => break None,
        }
        if start.elapsed() > limit {
            timed_out = true;
            let _ = child.kill();
            break child.wait().ok();
        }
        thread::sleep(Duration::from_millis(20));
    };
    let wall = start.elapsed();
    let _ = out_reader.join();
    let _ = err_reader.join();
    let stderr = stderr.lock().map(|s| s.clone()).unwrap_or_default();
    let p = progress.lock().expect("progress");
    let ok = !timed_out && status.is_some_and(|s| s.success()) && stderr.trim().is_empty();
    PlayResult {
        ok,
        decoded_seconds: p.out_time_us.max(0) as f64 / 1e6,
        frames: p.frames,
        first_frame_after: p.first_frame_after,
        wall,
        timed_out,
        status,
        stderr,
    }
}

/// [`play_decode`] on a thread, for concurrent players.
pub fn spawn_play_decode(url: &str, seconds: u32) -> JoinHandle<PlayResult> {
    let url = url.to_string();
    thread::spawn(move || play_decode(&url, seconds))
}

/// `ffprobe` the streams of `url`: one line per stream, like
/// `codec_type=video|codec_name=h264|width=320|height=240`. Bounded to 20 s.
pub fn probe_streams(url: &str) -> Result<Vec<String>, String> {
    let mut child = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-rw_timeout",
            RW_TIMEOUT_US,
            "-show_entries",
            "stream=codec_type,codec_name,width,height",
            "-of",
            "compact=p=0",
            url,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawn ffprobe: {e}"))?;
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out_reader = thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_reader = thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Ok(Some(st)) = child.try_wait() {
            break Some(st);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(20));
    };
    let out = out_reader.join().unwrap_or_default();
    let err = err_reader.join().unwrap_or_default();
    match status {
        Some(st) if st.success() => Ok(out.lines().map(|l| l.to_string()).collect()),
        Some(st) => Err(format!("ffprobe {url} failed with {st}: {err}")),
        None => Err(format!("ffprobe {url} timed out: {err}")),
    }
}

/// The static ffmpeg 9 scripts/test.sh installs (see [`super::ffmpeg9::ffmpeg9`]).
pub fn ffmpeg9() -> Option<PathBuf> {
    super::ffmpeg9::ffmpeg9()
}

/// Publishes `seconds` of live test media as HEVC over Enhanced RTMP with `ffmpeg9` (x265
/// ultrafast, 1 s GOP, AAC): what ffmpeg 6.1+ and OBS send.
pub fn publish_hevc(ffmpeg9: &OsStr, url: &str, seconds: u32) -> FfmpegChild {
    let secs = seconds.to_string();
    let gop = VIDEO_FPS.to_string();
    let size = format!("testsrc2=size={VIDEO_SIZE}:rate={VIDEO_FPS}");
    let args = strings(&[
        "-hide_banner",
        "-nostdin",
        "-loglevel",
        "error",
        "-re",
        "-f",
        "lavfi",
        "-i",
        &size,
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=48000",
        "-t",
        &secs,
        "-c:v",
        "libx265",
        "-preset",
        "ultrafast",
        "-x265-params",
        "log-level=error",
        "-g",
        &gop,
        "-c:a",
        "aac",
        "-f",
        "flv",
        url,
    ]);
    FfmpegChild::spawn_program(Path::new(ffmpeg9), &args)
}
