//! Native players on the module's HLS and DASH URLs: VLC (`vlc -I rc`, Debian's 3.0) and
//! GStreamer (`gst-launch-1.0 playbin3`, Debian's 1.22), each run for a bounded time in a
//! process group of its own (killed, by that group, when it does not stop when told), with
//! parsers for what they print and the checks a test applies to a run.
//!
//! VLC refuses to run as root: as root it runs as `nobody` (`setpriv`, from util-linux), with
//! a HOME in the temporary directory (`nobody` may not reach a test's prefix).

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use super::hls::Checks;
use super::{skip_or_fail, wait_timeout};

/// What a player process printed, and how it ended.
pub struct PlayerRun {
    pub stdout: String,
    pub stderr: String,
    pub status: Option<ExitStatus>,
    /// It exited before it was told to stop.
    pub exited_early: bool,
    /// It did not exit within the grace time after being told to stop: its group was killed.
    pub killed: bool,
}

impl PlayerRun {
    /// The last lines of both outputs, for messages.
    pub fn tail(&self) -> String {
        let tail = |s: &str| {
            let lines: Vec<&str> = s.lines().collect();
            lines[lines.len().saturating_sub(25)..].join("\n")
        };
        format!(
            "exit {:?}{}{}\n--- stdout (end) ---\n{}\n--- stderr (end) ---\n{}",
            self.status,
            if self.exited_early {
                " (exited before it was stopped)"
            } else {
                ""
            },
            if self.killed { " (killed)" } else { "" },
            tail(&self.stdout),
            tail(&self.stderr)
        )
    }
}

/// Reads `pipe` to its end on a thread of its own: the text, when joined.
fn collect(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Runs `cmd` in its own process group for `play`, then `stop` tells it to end (a command on
/// its stdin, a signal to its PID); after `grace` its group is killed.
pub fn run_player(
    cmd: &mut Command,
    play: Duration,
    stop: impl FnOnce(&mut Child),
    grace: Duration,
) -> PlayerRun {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let out = collect(child.stdout.take().expect("stdout"));
    let err = collect(child.stderr.take().expect("stderr"));
    let mut status = wait_timeout(&mut child, play);
    let exited_early = status.is_some();
    let mut killed = false;
    if status.is_none() {
        stop(&mut child);
        status = wait_timeout(&mut child, grace);
        if status.is_none() {
            // SAFETY: the process group created for this child (process_group(0)); the leader
            // is not reaped yet, so the group id names only its processes.
            unsafe {
                libc::kill(-(child.id() as i32), libc::SIGKILL);
            }
            status = child.wait().ok();
            killed = true;
        }
    }
    drop(child.stdin.take());
    PlayerRun {
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
        status,
        exited_early,
        killed,
    }
}

/// Whether `program args` runs and exits 0 within 20 s.
pub fn runs(program: &str, args: &[&str]) -> bool {
    let Ok(mut child) = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    else {
        return false;
    };
    match wait_timeout(&mut child, Duration::from_secs(20)) {
        Some(st) => st.success(),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            false
        }
    }
}

// ---------------------------------------------------------------------------------------------
// VLC

/// VLC's `stats` line `| <label> : <n>`.
pub fn vlc_stat(out: &str, label: &str) -> Option<u64> {
    out.lines()
        .map(|l| l.trim_start_matches(['|', ' ']))
        .find(|l| l.starts_with(label))
        .and_then(|l| l.rsplit(':').next())
        .and_then(|n| n.trim().parse().ok())
}

/// VLC's `info` values of `| <key>: <value>` lines, in order.
pub fn vlc_info<'a>(out: &'a str, key: &str) -> Vec<&'a str> {
    let key = format!("{key}:");
    out.lines()
        .map(|l| l.trim_start_matches(['|', ' ']))
        .filter_map(|l| l.strip_prefix(key.as_str()))
        .map(str::trim)
        .collect()
}

/// VLC (`vlc -I rc`, no picture or sound output) plays `url` for `play`, then is asked for
/// `info` and `stats` and to quit. As root it runs as `nobody` (VLC refuses root) with `home`
/// as its HOME.
pub fn run_vlc(url: &str, home: &std::path::Path, play: Duration) -> PlayerRun {
    let vlc_args = [
        "-I",
        "rc",
        "--rc-fake-tty",
        "--no-color",
        "--vout",
        "dummy",
        "--aout",
        "dummy",
        "--no-video-title-show",
        "--no-metadata-network-access",
        url,
    ];
    let mut cmd = vlc_command();
    cmd.args(vlc_args).env("HOME", home);
    run_player(
        &mut cmd,
        play,
        |child| {
            if let Some(stdin) = child.stdin.as_mut() {
                let _ = stdin.write_all(b"info\nstats\n");
                let _ = stdin.flush();
                thread::sleep(Duration::from_millis(1500));
                let _ = stdin.write_all(b"quit\n");
                let _ = stdin.flush();
            }
        },
        Duration::from_secs(10),
    )
}

/// `vlc`, or `setpriv ... -- vlc` as root (VLC refuses to run as root: it runs as `nobody`).
pub fn vlc_command() -> Command {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
            "vlc",
        ]);
        c
    } else {
        Command::new("vlc")
    }
}

/// `None` (after `skip_or_fail`) when VLC cannot run here.
pub fn need_vlc(test: &str) -> Option<()> {
    let mut cmd = vlc_command();
    cmd.arg("--version")
        .env("HOME", std::env::temp_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let ok = cmd.spawn().is_ok_and(
        |mut c| match wait_timeout(&mut c, Duration::from_secs(20)) {
            Some(st) => st.success(),
            None => {
                let _ = c.kill();
                let _ = c.wait();
                false
            }
        },
    );
    if !ok {
        skip_or_fail(
            test,
            "no VLC that runs (apt-get install vlc-bin vlc-plugin-base, as scripts/test.sh \
             does; as root it runs as nobody through setpriv, from util-linux)",
        );
        return None;
    }
    Some(())
}

static VLC_HOMES: AtomicUsize = AtomicUsize::new(0);

/// What VLC showed of a stream it played ([`play_vlc`]).
pub struct VlcPlay {
    pub run: PlayerRun,
    /// How long it played before it was asked for `stats`.
    pub play: Duration,
    /// `stats`: frames displayed, video decoded, frames lost, audio buffers played.
    pub displayed: Option<u64>,
    pub decoded: Option<u64>,
    pub lost: Option<u64>,
    pub audio: Option<u64>,
    /// `info`: every stream's codec, and the video resolutions.
    pub codecs: Vec<String>,
    pub sizes: Vec<String>,
}

/// VLC plays `url` for `play` ([`run_vlc`], with a fresh HOME in the temporary directory,
/// removed after), and what its `stats` and `info` said.
pub fn play_vlc(url: &str, play: Duration) -> VlcPlay {
    // VLC's HOME, in the temporary directory: `nobody` may not reach the test prefix.
    let home = std::env::temp_dir().join(format!(
        "vlc-home-{}-{}",
        std::process::id(),
        VLC_HOMES.fetch_add(1, Ordering::SeqCst)
    ));
    fs::create_dir_all(&home).expect("create VLC's HOME");
    fs::set_permissions(&home, fs::Permissions::from_mode(0o777)).expect("chmod VLC's HOME");
    let run = run_vlc(url, &home, play);
    let _ = fs::remove_dir_all(&home);
    let out = &run.stdout;
    let owned = |v: Vec<&str>| v.into_iter().map(str::to_owned).collect();
    VlcPlay {
        displayed: vlc_stat(out, "frames displayed"),
        decoded: vlc_stat(out, "video decoded"),
        lost: vlc_stat(out, "frames lost"),
        audio: vlc_stat(out, "buffers played"),
        codecs: owned(vlc_info(out, "Codec")),
        sizes: owned(vlc_info(out, "Video resolution")),
        run,
        play,
    }
}

impl VlcPlay {
    /// Prints what VLC showed (`label`: which stream), then checks that it played without
    /// exiting: at least `min_frames` frames displayed, audio played, a codec named
    /// `video_codec` (e.g. `HEVC`, `H264`) and AAC, and one video resolution, `width`x`height`.
    /// `what` starts the messages.
    pub fn check(
        &self,
        checks: &mut Checks,
        label: &str,
        what: &str,
        video_codec: &str,
        (width, height): (u32, u32),
        min_frames: u64,
    ) {
        let (displayed, decoded, lost, audio) =
            (self.displayed, self.decoded, self.lost, self.audio);
        let (codecs, sizes, run, play) = (&self.codecs, &self.sizes, &self.run, self.play);
        println!(
            "VLC {label}: {displayed:?} frames displayed ({decoded:?} decoded, {lost:?} \
             lost), {audio:?} audio buffers played, codecs {codecs:?}, resolution {sizes:?}"
        );
        checks.check(
            !run.exited_early && displayed.is_some_and(|n| n >= min_frames),
            || {
                format!(
                    "{what}: {displayed:?} frames displayed in {play:?} (need {min_frames}); {}",
                    run.tail()
                )
            },
        );
        checks.check(audio.is_some_and(|n| n > 0), || {
            format!("{what}: {audio:?} audio buffers played; {}", run.tail())
        });
        checks.check(
            codecs.iter().any(|c| c.contains(video_codec))
                && codecs.iter().any(|c| c.contains("AAC")),
            || format!("{what}: codecs {codecs:?}, expected {video_codec} and AAC"),
        );
        checks.check(*sizes == [format!("{width}x{height}")], || {
            format!("{what}: video resolution {sizes:?}, published {width}x{height}")
        });
    }
}

// ---------------------------------------------------------------------------------------------
// GStreamer

/// The presentation times (seconds) of the buffers fakesink `sink` reported (`gst-launch -v`
/// with `silent=false`: one `last-message = chain ... (<sink>:sink) (... pts: H:MM:SS.NNN ...`
/// line per buffer).
pub fn gst_buffer_pts(out: &str, sink: &str) -> Vec<f64> {
    let tag = format!("({sink}:sink)");
    out.lines()
        .filter(|l| l.contains("last-message = chain") && l.contains(&tag))
        .filter_map(|l| {
            let t = l.split("pts: ").nth(1)?.split([',', ' ']).next()?;
            let mut parts = t.split(':');
            let h: f64 = parts.next()?.parse().ok()?;
            let m: f64 = parts.next()?.parse().ok()?;
            let s: f64 = parts.next()?.parse().ok()?;
            Some(h * 3600.0 + m * 60.0 + s)
        })
        .collect()
}

/// The caps fakesink `sink`'s pad negotiated (`...:<sink>.GstPad:sink: caps = ...`).
pub fn gst_sink_caps<'a>(out: &'a str, sink: &str) -> Option<&'a str> {
    let tag = format!(":{sink}.GstPad:sink: caps = ");
    out.lines()
        .filter_map(|l| l.split(tag.as_str()).nth(1))
        .next_back()
}

/// `None` (after `skip_or_fail`) when `gst-launch-1.0` or one of `elements` is missing.
pub fn need_gst(test: &str, elements: &[&str]) -> Option<()> {
    if !runs("gst-launch-1.0", &["--version"]) {
        skip_or_fail(
            test,
            "no gst-launch-1.0 (apt-get install gstreamer1.0-tools gstreamer1.0-plugins-good \
             gstreamer1.0-plugins-bad gstreamer1.0-libav; scripts/test.sh does)",
        );
        return None;
    }
    for element in elements {
        if !runs("gst-inspect-1.0", &["--exists", element]) {
            skip_or_fail(
                test,
                &format!(
                    "no GStreamer element {element} (gstreamer1.0-plugins-good, -bad, -libav)"
                ),
            );
            return None;
        }
    }
    Some(())
}

/// What GStreamer's playbin3 decoded of a stream ([`play_gst`]).
pub struct GstPlay {
    pub run: PlayerRun,
    /// Presentation times (seconds) of the decoded video frames and audio buffers.
    pub video: Vec<f64>,
    pub audio: Vec<f64>,
    /// The caps the video sink negotiated (empty when none).
    pub vcaps: String,
}

/// The seconds of media between the first and the last of `pts`.
pub fn pts_span(pts: &[f64]) -> f64 {
    let lo = pts.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = pts.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if pts.is_empty() {
        0.0
    } else {
        hi - lo
    }
}

/// `gst-launch-1.0 -v playbin3` plays `url` into fake sinks (synchronised, reporting every
/// buffer) for `play`, then is stopped with SIGINT.
pub fn play_gst(url: &str, play: Duration) -> GstPlay {
    let run = run_player(
        Command::new("gst-launch-1.0").args([
            "-v",
            "playbin3",
            &format!("uri={url}"),
            "video-sink=fakesink name=vsink sync=true silent=false",
            "audio-sink=fakesink name=asink sync=true silent=false",
        ]),
        play,
        |child| {
            // gst-launch stops its pipeline on SIGINT.
            // SAFETY: kill() on our own child's PID, not reaped yet.
            unsafe {
                libc::kill(child.id() as i32, libc::SIGINT);
            }
        },
        Duration::from_secs(10),
    );
    let out = &run.stdout;
    GstPlay {
        video: gst_buffer_pts(out, "vsink"),
        audio: gst_buffer_pts(out, "asink"),
        vcaps: gst_sink_caps(out, "vsink").unwrap_or("").to_owned(),
        run,
    }
}

impl GstPlay {
    /// Prints what GStreamer decoded (`label`: which stream), then checks that it played
    /// without exiting: at least `min_frames` video frames spanning 5 s of media, decoded to
    /// `width`x`height`, from a `video_caps` stream (e.g. `video/x-h265`), and audio spanning
    /// 5 s. `what` starts the messages.
    pub fn check(
        &self,
        checks: &mut Checks,
        label: &str,
        what: &str,
        video_caps: &str,
        (width, height): (u32, u32),
        min_frames: usize,
    ) {
        let (video, audio, vcaps, run) = (&self.video, &self.audio, &self.vcaps, &self.run);
        let out = &run.stdout;
        let demuxers: Vec<&str> = ["GstHLSDemux2", "GstHLSDemux:"]
            .into_iter()
            .filter(|d| out.contains(d))
            .collect();
        println!(
            "GStreamer {label}: {} video frames over {:.2} s of media, {} audio buffers over \
             {:.2} s; demuxer {demuxers:?}; video caps {vcaps}",
            video.len(),
            pts_span(video),
            audio.len(),
            pts_span(audio)
        );
        checks.check(
            !run.exited_early && video.len() >= min_frames && pts_span(video) >= 5.0,
            || {
                format!(
                    "{what}: {} video frames over {:.2} s of media (need {min_frames} over \
                     5 s); {}",
                    video.len(),
                    pts_span(video),
                    run.tail()
                )
            },
        );
        checks.check(
            vcaps.contains(&format!("width=(int){width}"))
                && vcaps.contains(&format!("height=(int){height}")),
            || format!("{what}: decoded video caps {vcaps:?}, published {width}x{height}"),
        );
        checks.check(out.contains(video_caps), || {
            format!("{what}: no {video_caps} stream in the pipeline")
        });
        checks.check(!audio.is_empty() && pts_span(audio) >= 5.0, || {
            format!(
                "{what}: {} audio buffers over {:.2} s of media; {}",
                audio.len(),
                pts_span(audio),
                run.tail()
            )
        });
    }
}
