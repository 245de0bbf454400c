//! Faults from outside the module: a full disk under HLS/DASH, a publisher killed with SIGKILL,
//! a player frozen with SIGSTOP, and `nginx -s reload` / `nginx -s quit` while streams run.
//! Each test gathers every failed aspect before failing (see [`Checks`]).
//!
//! Everything started here is ended by its own PID (Drop guards, also when a test fails), and
//! the tmpfs of the full-disk test is unmounted by a guard as well. That test needs root (to
//! mount); without it, it fails unless the run allows skipping (`RTMP_TESTS_ALLOW_SKIP=1`).

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use common::dash::{
    dash_http_location, final_mpd_problems, media_files, DashWatcher, Mpd, SegKind, Stream,
};
use common::ffmpeg::publish_cbr;
use common::hls::*;
use common::workers::{master_status, Launch};
use common::*;

// ---------------------------------------------------------------------------------------------
// Guards

/// A tmpfs mounted for one test; unmounted (lazily if busy) when dropped, and its mount point
/// removed.
struct TmpfsMount {
    dir: PathBuf,
}

impl TmpfsMount {
    /// `mount -t tmpfs -o size=<size> tmpfs <dir>` (the directory is created). `Err` with the
    /// reason if it cannot be mounted (not root, no mount(8), ...).
    fn mount(dir: &Path, size: &str) -> Result<TmpfsMount, String> {
        fs::create_dir_all(dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0755")])
            .arg("tmpfs")
            .arg(dir)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs on {} failed ({}): {}",
                dir.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(TmpfsMount {
            dir: dir.to_path_buf(),
        })
    }

    /// Free bytes on the mounted file system.
    fn available(&self) -> u64 {
        statvfs_available(&self.dir)
    }
}

impl Drop for TmpfsMount {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            // Still busy (nginx holds a file open when a test failed early): detach it now; the
            // kernel frees it when the last file is closed.
            let lazy = Command::new("umount")
                .arg("-l")
                .arg(&self.dir)
                .stdin(Stdio::null())
                .status();
            eprintln!(
                "umount {} was busy; lazy umount: {lazy:?}",
                self.dir.display()
            );
        }
        let _ = fs::remove_dir(&self.dir);
    }
}

fn statvfs_available(dir: &Path) -> u64 {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).expect("path without NUL");
    // SAFETY: statvfs writes into a zeroed struct we own; the path is a valid C string.
    unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(c.as_ptr(), &mut st) != 0 {
            return 0;
        }
        st.f_bavail as u64 * st.f_frsize as u64
    }
}

/// Keeps a file system full: appends to `path` until ENOSPC, again every 100 ms (whatever the
/// module frees by deleting old segments is taken back at once), until stopped. Dropping it
/// stops the thread; the file is deleted by [`DiskFiller::release`] or on drop.
struct DiskFiller {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    written: Arc<AtomicU64>,
    /// Bytes taken back after the first fill (space the module freed meanwhile).
    retaken: Arc<AtomicU64>,
    handle: Option<JoinHandle<Result<(), String>>>,
}

impl DiskFiller {
    /// Fills the file system of `path` and returns once it is full (ENOSPC seen once).
    fn fill(path: &Path) -> Result<DiskFiller, String> {
        let stop = Arc::new(AtomicBool::new(false));
        let written = Arc::new(AtomicU64::new(0));
        let retaken = Arc::new(AtomicU64::new(0));
        let full = Arc::new(AtomicBool::new(false));
        let handle = {
            let (path, stop, written, retaken, full) = (
                path.to_path_buf(),
                Arc::clone(&stop),
                Arc::clone(&written),
                Arc::clone(&retaken),
                Arc::clone(&full),
            );
            thread::spawn(move || -> Result<(), String> {
                let mut f = fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .map_err(|e| format!("open {}: {e}", path.display()))?;
                let chunk = vec![0x5au8; 16 * 1024];
                loop {
                    // Whole chunks, then what is left of the last page (tmpfs allocates pages).
                    let mut n = chunk.len();
                    loop {
                        match f.write(&chunk[..n]) {
                            Ok(w) => {
                                written.fetch_add(w as u64, Ordering::SeqCst);
                                if full.load(Ordering::SeqCst) {
                                    retaken.fetch_add(w as u64, Ordering::SeqCst);
                                }
                            }
                            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => {
                                if n > 512 {
                                    n /= 2;
                                    continue;
                                }
                                break;
                            }
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                            Err(e) => return Err(format!("write {}: {e}", path.display())),
                        }
                    }
                    full.store(true, Ordering::SeqCst);
                    if stop.load(Ordering::SeqCst) {
                        return Ok(());
                    }
                    thread::sleep(Duration::from_millis(100));
                }
            })
        };
        let mut filler = DiskFiller {
            path: path.to_path_buf(),
            stop,
            written,
            retaken,
            handle: Some(handle),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !full.load(Ordering::SeqCst) {
            if filler.handle.as_ref().is_some_and(|h| h.is_finished()) {
                let r = filler.handle.take().map(|h| h.join());
                return Err(format!("the filler thread ended: {r:?}"));
            }
            if Instant::now() > deadline {
                return Err("the disk was not full after 20 s of writing".into());
            }
            thread::sleep(Duration::from_millis(10));
        }
        Ok(filler)
    }

    fn stop_thread(&mut self) -> Option<String> {
        self.stop.store(true, Ordering::SeqCst);
        match self.handle.take().map(|h| h.join()) {
            Some(Ok(Err(e))) => Some(e),
            Some(Err(_)) => Some("the filler thread panicked".into()),
            _ => None,
        }
    }

    /// Stops filling and deletes the file: the space is free again.
    fn release(mut self) -> Option<String> {
        let err = self.stop_thread();
        let _ = fs::remove_file(&self.path);
        err
    }
}

impl Drop for DiskFiller {
    fn drop(&mut self) {
        self.stop_thread();
        let _ = fs::remove_file(&self.path);
    }
}

/// A process started by a test (an ffmpeg player): SIGCONT (in case it was stopped), then
/// SIGKILL and reaped, by its PID, when dropped.
struct Proc {
    child: Option<Child>,
    what: String,
}

impl Proc {
    fn spawn(cmd: &mut Command, what: &str) -> Proc {
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {what}: {e}"));
        Proc {
            child: Some(child),
            what: what.to_string(),
        }
    }

    fn signal(&self, sig: libc::c_int) {
        if let Some(c) = &self.child {
            // SAFETY: kill() on our own child, not yet reaped (we hold it until wait()).
            let rc = unsafe { libc::kill(c.id() as i32, sig) };
            assert_eq!(rc, 0, "kill({}, {sig}) of {}", c.id(), self.what);
        }
    }

    /// Whether it exited (reaped) within `timeout`.
    fn exited_within(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let c = self.child.as_mut()?;
        let st = wait_timeout(c, timeout);
        if st.is_some() {
            self.child = None;
        }
        st
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: our own child, not yet reaped.
            unsafe {
                libc::kill(c.id() as i32, libc::SIGCONT);
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// SIGKILL to an ffmpeg child by its PID (the harness reaps it).
fn sigkill(child: &FfmpegChild) {
    let pid = child.pid().expect("the ffmpeg child is running") as i32;
    // SAFETY: kill() on our own child, not yet reaped (FfmpegChild reaps only in wait paths).
    let rc = unsafe { libc::kill(pid, libc::SIGKILL) };
    assert_eq!(rc, 0, "kill({pid}, SIGKILL)");
}

// ---------------------------------------------------------------------------------------------
// Lightweight RTMP players (our client, one thread each)

/// What one player thread saw.
#[derive(Debug, Default, Clone)]
struct PlayerLog {
    /// (seconds since the fleet's start, video messages in that read window).
    windows: Vec<(f64, u32)>,
    /// Why it stopped early (connect/play failure, connection closed).
    error: Option<String>,
    codes: Vec<String>,
}

impl PlayerLog {
    fn video_between(&self, from: f64, to: f64) -> u32 {
        self.windows
            .iter()
            .filter(|(t, _)| *t >= from && *t <= to)
            .map(|(_, v)| *v)
            .sum()
    }

    /// Longest stretch without video between the first and the last window that had some.
    fn longest_gap(&self) -> f64 {
        let times: Vec<f64> = self
            .windows
            .iter()
            .filter(|(_, v)| *v > 0)
            .map(|(t, _)| *t)
            .collect();
        times.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max)
    }
}

/// `n` RTMP players of one stream, each on its own thread, recording what they receive in
/// 200 ms windows until stopped (on drop too; their connections then close).
struct Fleet {
    start: Instant,
    stop: Arc<AtomicBool>,
    logs: Vec<Arc<Mutex<PlayerLog>>>,
    handles: Vec<JoinHandle<()>>,
}

impl Fleet {
    fn start(addr: &str, app: &str, name: &str, n: usize) -> Fleet {
        let start = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let mut logs = Vec::new();
        let mut handles = Vec::new();
        for _ in 0..n {
            let log = Arc::new(Mutex::new(PlayerLog::default()));
            logs.push(Arc::clone(&log));
            let (addr, app, name, stop) = (
                addr.to_string(),
                app.to_string(),
                name.to_string(),
                Arc::clone(&stop),
            );
            handles.push(thread::spawn(move || {
                let set_err = |e: String| {
                    if let Ok(mut l) = log.lock() {
                        l.error = Some(e);
                    }
                };
                let mut c = match RtmpClient::connect(&addr, &app) {
                    Ok(c) => c,
                    Err(e) => return set_err(format!("connect: {e:?}")),
                };
                match c.play(&name) {
                    Ok(codes) if codes.iter().any(|c| c == "NetStream.Play.Start") => {}
                    other => return set_err(format!("play: {other:?}")),
                }
                while !stop.load(Ordering::SeqCst) {
                    let (count, err) = c.read_media_for(Duration::from_millis(200));
                    let at = start.elapsed().as_secs_f64();
                    if let Ok(mut l) = log.lock() {
                        l.windows.push((at, count.video));
                        l.codes = c.status_codes.clone();
                    }
                    if let Some(e) = err {
                        return set_err(format!("after {at:.1} s: {e:?}"));
                    }
                }
            }));
        }
        Fleet {
            start,
            stop,
            logs,
            handles,
        }
    }

    fn now(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    fn snapshot(&self) -> Vec<PlayerLog> {
        self.logs
            .iter()
            .map(|l| l.lock().map(|l| l.clone()).unwrap_or_default())
            .collect()
    }

    /// Stops every player (closing its connection) and returns what each saw.
    fn stop(mut self) -> Vec<PlayerLog> {
        self.stop_threads();
        self.snapshot()
    }

    fn stop_threads(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        self.stop_threads();
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers

/// Error log lines (whole log) containing `needle`.
fn log_lines(server: &Server, needle: &str) -> Vec<String> {
    server
        .error_log()
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_string)
        .collect()
}

/// Waits (bounded) for a log line after `offset` containing `needle`; returns it.
fn wait_log_line(
    server: &Server,
    offset: usize,
    needle: &str,
    timeout: Duration,
) -> Option<String> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(l) = server
            .log_since(offset)
            .lines()
            .find(|l| l.contains(needle))
        {
            return Some(l.to_string());
        }
        if Instant::now() > deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Every segment listed in `snap` ffprobes with an H.264 and an AAC stream.
fn check_segments_probe(checks: &mut Checks, dir: &Path, snap: &Snapshot) {
    for uri in snap.uris() {
        let path = dir.join(file_name(&uri));
        match stream_kinds(&path.display().to_string()) {
            Ok(k) if k == ["audio:aac", "video:h264"] => {}
            Ok(k) => checks.fail(format!("{uri}: ffprobe shows streams {k:?}")),
            Err(e) => checks.fail(format!("{uri}: {e}")),
        }
    }
}

/// Failures of a DASH watcher report that mean a player would have been hurt: a torn MPD, a
/// segment listed (and due) but missing, deleted while listed, a listed init segment missing.
fn dash_report_problems(r: &common::dash::DashWatchReport) -> Vec<String> {
    let mut v: Vec<String> = r.torn.clone();
    v.extend(
        r.early
            .iter()
            .map(|s| format!("listed and due but missing: {s}")),
    );
    v.extend(
        r.deleted_while_listed
            .iter()
            .map(|s| format!("deleted while listed: {s}")),
    );
    v.extend(r.init_problems.iter().cloned());
    v
}

/// Stops nginx (graceful), checks that the master exited with code 0 ([`Server::stop`] does not
/// look at that: a master crashing while reaping its workers would go unseen), then
/// [`Checks::finish`] (clean log, every failure reported).
fn finish(mut checks: Checks, mut server: Server) {
    server.stop();
    let status = master_status(&mut server);
    checks.check(status.is_some_and(|s| s.success()), || {
        format!(
            "on stop the nginx master ended with {}",
            describe_status(status)
        )
    });
    checks.finish(server);
}

/// How a process ended, in words (`exit code 0`, `killed by signal 11`).
fn describe_status(status: Option<std::process::ExitStatus>) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status {
        None => "unknown (not reaped by the test)".into(),
        Some(s) => match (s.code(), s.signal()) {
            (Some(c), _) => format!("exit code {c}"),
            (None, Some(sig)) => format!("killed by signal {sig}"),
            _ => format!("{s:?}"),
        },
    }
}

fn media_segment_urls(m: &Mpd) -> BTreeSet<String> {
    m.segments()
        .into_iter()
        .filter(|s| s.kind == SegKind::Media)
        .map(|s| s.url_path)
        .collect()
}

/// `.ts` files in `dir`.
fn ts_files(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".ts"))
                .collect()
        })
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// 1. Full disk

/// HLS and DASH write to a 4 MB tmpfs (about half of it used in steady state) while a publisher
/// sends ~1.5 Mbit/s and an RTMP player decodes. The disk is filled and kept full for 7 s, then
/// freed. Expected: one error line per failing output (not one per write), the RTMP player
/// unaffected, no playlist/MPD on disk ever torn or listing a missing file, new segments within
/// 10 s of the space coming back (after a discontinuity), and a final playlist that decodes.
#[test]
fn full_disk_keeps_rtmp_playing_and_hls_dash_resume_without_corruption() {
    let rtmp = "rtmp {\n    server {\n        listen 127.0.0.1:{RTMP_PORT};\n        \
                chunk_size 4096;\n        application live {\n            live on;\n            \
                hls on;\n            hls_path {PREFIX}/tmp/disk/hls;\n            \
                hls_fragment 1s;\n            hls_playlist_length 4s;\n            \
                dash on;\n            dash_path {PREFIX}/tmp/disk/dash;\n            \
                dash_fragment 1s;\n            dash_playlist_length 4s;\n        }\n    }\n}\n";
    let http = format!(
        "{}{}",
        hls_http_location("/hls/", "{PREFIX}/tmp/"),
        dash_http_location("/dash/", "{PREFIX}/tmp/")
    );
    let mut server = Server::start(rtmp, &http);
    let disk_dir = server.prefix.join("tmp/disk");
    // Declared after the server: dropped (unmounted) before it, also when the test fails.
    // 6 MB: room for both windows, their grace periods after the space comes back, and the
    // DASH segment being recorded (its video is gathered on disk, not in memory); the filler
    // then takes whatever is left.
    let disk = match TmpfsMount::mount(&disk_dir, "6m") {
        Ok(m) => m,
        Err(e) => {
            // SAFETY: geteuid has no preconditions.
            let root = unsafe { libc::geteuid() } == 0;
            server.finish();
            skip_or_fail(
                "full_disk_keeps_rtmp_playing_and_hls_dash_resume_without_corruption",
                &format!("cannot mount a tmpfs (root: {root}; needs CAP_SYS_ADMIN): {e}"),
            );
            return;
        }
    };
    for sub in ["hls", "dash"] {
        fs::create_dir_all(disk_dir.join(sub)).expect("mkdir on the tmpfs");
    }
    let mut checks = Checks::new();
    let name = "full";
    let url = server.rtmp_url(&format!("live/{name}"));
    let hls_dir = disk_dir.join("hls");
    let pl = hls_dir.join(format!("{name}.m3u8"));
    let dash = Stream::new(&server, "disk/dash", name, false);
    let watcher = Watcher::start(&pl, false);
    let dash_watcher = DashWatcher::start(&dash);

    // ~1.5 Mbit/s: 1400k video (CBR with filler) + 64k audio.
    let publish_secs = 30;
    let mut publisher = publish_cbr(&url, publish_secs, "1400k");
    checks.ok(wait_segments(&pl, 3));
    checks.ok(dash.wait_segments(2));
    let play_secs = 22;
    let player = spawn_play_decode(&url, play_secs);
    thread::sleep(Duration::from_secs(2));
    println!(
        "before filling: {} KiB free of the tmpfs",
        disk.available() / 1024
    );

    // Fill the disk and keep it full for 7 s.
    let log_before = server.log_len();
    let filler = DiskFiller::fill(&disk_dir.join("filler"));
    let filler = match filler {
        Ok(f) => Some(f),
        Err(e) => {
            checks.fail(format!("could not fill the tmpfs: {e}"));
            None
        }
    };
    let full_at = Instant::now();
    let nospace = wait_log_line(
        &server,
        log_before,
        "No space left on device",
        Duration::from_secs(7),
    );
    match &nospace {
        Some(l) => println!(
            "{:.1} s after the disk filled up: {l}",
            full_at.elapsed().as_secs_f64()
        ),
        None => checks.fail(format!(
            "no \"No space left on device\" line within 7 s of the disk filling up; log since:\n{}",
            server.log_since(log_before)
        )),
    }
    thread::sleep(Duration::from_secs(7).saturating_sub(full_at.elapsed()));
    let hls_at_release: BTreeSet<String> = ts_files(&hls_dir);
    let dash_at_release: BTreeSet<String> =
        media_files(&disk_dir.join("dash")).into_iter().collect();
    if let Some(f) = filler {
        let (w, r) = (
            f.written.load(Ordering::SeqCst),
            f.retaken.load(Ordering::SeqCst),
        );
        println!(
            "filler: {} KiB written, {} KiB of them taken back after the first fill; free now {} KiB",
            w / 1024,
            r / 1024,
            disk.available() / 1024
        );
        if let Some(e) = f.release() {
            checks.fail(format!("filler: {e}"));
        }
    }
    let released_at = Instant::now();

    // Space again: new segments within 10 s.
    let hls_back = wait_media(&pl, Duration::from_secs(10), "a new HLS segment", |s| {
        s.uris()
            .iter()
            .any(|u| !hls_at_release.contains(file_name(u)))
    });
    match &hls_back {
        Ok(s) => println!(
            "HLS: new segment {:.1} s after the space came back:\n{}",
            released_at.elapsed().as_secs_f64(),
            s.text
        ),
        Err(e) => checks.fail(format!("HLS did not resume after the disk was freed: {e}")),
    }
    let dash_back = dash.wait(Duration::from_secs(10), "a new DASH segment", |m| {
        media_segment_urls(m)
            .iter()
            .any(|u| !dash_at_release.contains(u.rsplit('/').next().unwrap_or(u)))
    });
    match &dash_back {
        Ok(_) => println!(
            "DASH: new segment {:.1} s after the space came back",
            released_at.elapsed().as_secs_f64()
        ),
        Err(e) => checks.fail(format!("DASH did not resume after the disk was freed: {e}")),
    }

    // The RTMP player never noticed.
    let played = player.join().expect("player thread");
    println!(
        "RTMP player: {:.1} s decoded, {} frames, ok {}",
        played.decoded_seconds, played.frames, played.ok
    );
    checks.check(
        played.ok && played.decoded_seconds >= f64::from(play_secs) - 1.0,
        || format!("the RTMP player was hurt by the full disk: {played:#?}"),
    );

    wait_publisher(&mut publisher, publish_secs);
    let (ended, last) = wait_endlist(&pl);
    checks.check(ended, || {
        format!(
            "no #EXT-X-ENDLIST after the publisher ended: {:?}",
            last.as_ref().map(|s| &s.text)
        )
    });
    let report = watcher.stop();
    let dash_report = dash_watcher.stop();
    println!(
        "HLS watcher: {} reads, {} versions, {} segments seen; DASH watcher: {}",
        report.reads,
        report.versions,
        report.seen.len(),
        dash_report.summary()
    );
    checks.check(report.violations.is_empty(), || {
        format!("HLS playlist snapshots: {:#?}", report.violations)
    });
    let dash_problems = dash_report_problems(&dash_report);
    checks.check(dash_problems.is_empty(), || {
        format!("DASH MPD snapshots: {dash_problems:#?}")
    });
    if let Some(last) = &last {
        println!("final playlist:\n{}", last.text);
        let d = decode(&pl.display().to_string(), None, Duration::from_secs(40));
        checks.check(
            d.ok && d.seconds >= 0.8 * last.total_duration() - 1.0,
            || {
                format!(
                    "ffmpeg decoding the final playlist {} ({:.1} s listed): {d:#?}",
                    pl.display(),
                    last.total_duration()
                )
            },
        );
    }
    match dash.wait(Duration::from_secs(5), "a final MPD", Mpd::is_final) {
        Ok(m) => checks.extend(final_mpd_problems(&m)),
        Err(e) => checks.fail(e),
    }

    server.stop();
    let nospace_lines = log_lines(&server, "No space left on device");
    println!(
        "{} \"No space left on device\" lines:\n{}",
        nospace_lines.len(),
        nospace_lines.join("\n")
    );
    checks.check(
        !nospace_lines.is_empty() && nospace_lines.len() <= 10,
        || {
            format!(
                "expected 1..=10 \"No space left on device\" lines (logged once per failing \
             output, not per write), got {}:\n{}",
                nospace_lines.len(),
                nospace_lines.join("\n")
            )
        },
    );
    drop(disk);
    finish(checks, server);
}

// ---------------------------------------------------------------------------------------------
// 2. Publisher killed with SIGKILL

/// A publisher (ffmpeg, HLS + DASH on) is killed with SIGKILL mid-stream: no unpublish command,
/// the socket just goes away. The playlist gets `#EXT-X-ENDLIST` and the MPD turns static within
/// 8 s (`timeout 5s`, `drop_idle_publisher 3s` bound it even if the close went unseen), a
/// connected RTMP player is told (`publish_notify on`), the name is free for a republish at
/// once, HLS continues after a discontinuity and the player that stayed gets the new media.
#[test]
fn publisher_killed_with_sigkill_leaves_endlist_and_players_recover() {
    let rtmp = "rtmp {\n    server {\n        listen 127.0.0.1:{RTMP_PORT};\n        \
                chunk_size 4096;\n        timeout 5s;\n        application live {\n            \
                live on;\n            drop_idle_publisher 3s;\n            \
                publish_notify on;\n            \
                hls on;\n            hls_path {PREFIX}/tmp/live;\n            \
                hls_fragment 1s;\n            hls_playlist_length 20s;\n            \
                dash on;\n            dash_path {PREFIX}/tmp/dash;\n            \
                dash_fragment 1s;\n            dash_playlist_length 20s;\n        }\n    }\n}\n";
    let http = format!(
        "{}{}",
        hls_http_location("/hls/", "{PREFIX}/tmp/"),
        dash_http_location("/dash/", "{PREFIX}/tmp/")
    );
    let server = Server::start(rtmp, &http);
    let mut checks = Checks::new();
    let name = "victim";
    let url = server.rtmp_url(&format!("live/{name}"));
    let pl = playlist_file(&server, "live", name);
    let dash = Stream::new(&server, "dash", name, false);
    let watcher = Watcher::start(&pl, false);
    let dash_watcher = DashWatcher::start(&dash);

    let publisher = publish(&url, 60);
    checks.ok(wait_segments(&pl, 3));
    checks.ok(dash.wait_segments(2));

    // An RTMP player, receiving.
    let mut player = RtmpClient::connect(&server.rtmp_addr(), "live").expect("player connects");
    let codes = player.play(name).expect("player plays");
    assert!(
        codes.iter().any(|c| c == "NetStream.Play.Start"),
        "play codes {codes:?}"
    );
    let (got, err) = player.read_media_for(Duration::from_secs(2));
    checks.check(got.video >= 25 && err.is_none(), || {
        format!("the player got {got:?} ({err:?}) in 2 s before the kill")
    });

    // SIGKILL: no FCUnpublish/deleteStream, the socket just goes away.
    sigkill(&publisher);
    let killed_at = Instant::now();
    drop(publisher);

    // The player learns that the stream ended (idle_streams on: it stays connected;
    // publish_notify on: it gets NetStream.Play.UnpublishNotify, which our client can see,
    // besides the StreamEOF user control event).
    let seen_codes = player.status_codes.len();
    let mut told = None;
    let deadline = Instant::now() + Duration::from_secs(8);
    while told.is_none() && Instant::now() < deadline {
        match player.idle(Duration::from_millis(100)) {
            Ok(()) => {
                if player.status_codes[seen_codes..]
                    .iter()
                    .any(|c| c == "NetStream.Play.UnpublishNotify")
                {
                    told = Some("NetStream.Play.UnpublishNotify");
                }
            }
            Err(ClientError::Closed) => told = Some("connection closed"),
            Err(e) => {
                checks.fail(format!("player after the kill: {e:?}"));
                break;
            }
        }
    }
    match told {
        Some(how) => println!(
            "player: {how} {:.2} s after the kill",
            killed_at.elapsed().as_secs_f64()
        ),
        None => checks.fail(format!(
            "the player was not told the stream ended within 8 s of the publisher's SIGKILL; \
             codes since: {:?}",
            &player.status_codes[seen_codes..]
        )),
    }

    // HLS: #EXT-X-ENDLIST; DASH: a static MPD.
    let bound = Duration::from_secs(8);
    let before: BTreeSet<String> =
        match wait_media(&pl, bound, "#EXT-X-ENDLIST", |s| s.playlist.end_list) {
            Ok(s) => {
                println!(
                    "ENDLIST {:.2} s after the kill",
                    killed_at.elapsed().as_secs_f64()
                );
                checks.extend(header_problems(&s));
                s.uris().into_iter().collect()
            }
            Err(e) => {
                checks.fail(format!("after the publisher's SIGKILL: {e}"));
                read_media(&pl)
                    .map(|s| s.uris().into_iter().collect())
                    .unwrap_or_default()
            }
        };
    let dash_before: BTreeSet<String> = match dash.wait(bound, "a static MPD", |m| !m.is_dynamic())
    {
        Ok(m) => {
            println!(
                "static MPD {:.2} s after the kill",
                killed_at.elapsed().as_secs_f64()
            );
            checks.extend(final_mpd_problems(&m));
            media_segment_urls(&m)
        }
        Err(e) => {
            checks.fail(format!("after the publisher's SIGKILL: {e}"));
            BTreeSet::new()
        }
    };

    // The name is free again: republish, and everything continues.
    let log_at = server.log_len();
    let republish_secs = 8;
    let mut second = publish(&url, republish_secs);
    let republished_at = Instant::now();
    println!(
        "republished at {:.2} (Unix time)",
        common::dash::now_epoch()
    );
    let resumed = wait_media(
        &pl,
        Duration::from_secs(15),
        "HLS after the republish",
        |s| !s.playlist.end_list && s.uris().iter().filter(|u| !before.contains(*u)).count() >= 2,
    );
    match &resumed {
        Ok(s) => {
            let first_new = s
                .playlist
                .segments
                .iter()
                .position(|x| !before.contains(&x.uri));
            let discont = first_new.is_some_and(|i| s.playlist.segments[i].discontinuity);
            checks.check(discont, || {
                format!(
                    "no #EXT-X-DISCONTINUITY before the first segment of the republish:\n{}",
                    s.text
                )
            });
            println!(
                "HLS resumed {:.1} s after the republish",
                republished_at.elapsed().as_secs_f64()
            );
        }
        Err(e) => checks.fail(e.clone()),
    }
    checks.ok(dash.wait(
        Duration::from_secs(10),
        "a live MPD with segments of the republish",
        |m| m.is_dynamic() && media_segment_urls(m).difference(&dash_before).count() >= 1,
    ));
    // The player that stayed is told, and gets the new publisher's media.
    let codes_at = player.status_codes.len();
    let (got, err) = player.read_media_for(Duration::from_secs(2));
    checks.check(
        player.status_codes[codes_at..]
            .iter()
            .chain(player.status_codes[seen_codes..].iter())
            .any(|c| c == "NetStream.Play.PublishNotify"),
        || {
            format!(
                "no NetStream.Play.PublishNotify for the player after the republish; codes {:?}",
                player.status_codes
            )
        },
    );
    checks.check(got.video >= 25 && err.is_none(), || {
        format!(
            "the player that stayed connected got {got:?} ({err:?}) in 2 s of the republish; \
             codes {:?}",
            player.status_codes
        )
    });
    let refused = server.log_since(log_at);
    checks.check(
        !refused.to_lowercase().contains("already publishing") && !refused.contains("BadName"),
        || format!("the republish was refused:\n{refused}"),
    );

    wait_publisher(&mut second, republish_secs);
    checks.check(second.status().is_some_and(|s| s.success()), || {
        format!(
            "the second publisher failed ({:?}): {}",
            second.status(),
            second.stderr()
        )
    });
    let (ended, last) = wait_endlist(&pl);
    checks.check(ended, || {
        "no #EXT-X-ENDLIST after the republish ended".into()
    });
    if let Some(last) = &last {
        println!("final playlist:\n{}", last.text);
        check_segments_probe(&mut checks, &hls_dir(&server, "live"), last);
        let d = decode(&pl.display().to_string(), None, Duration::from_secs(40));
        checks.check(
            d.ok && d.seconds >= 0.8 * last.total_duration() - 1.0,
            || {
                format!(
                    "ffmpeg decoding the playlist across the kill ({:.1} s listed): {d:#?}",
                    last.total_duration()
                )
            },
        );
    }
    drop(player);
    let report = watcher.stop();
    let dash_report = dash_watcher.stop();
    println!("DASH watcher: {}", dash_report.summary());
    // A quick republish must not announce segments before they exist either.
    checks.check(dash_report.claimed_early.is_empty(), || {
        format!(
            "MPD availability ahead of the disk after the republish:\n{}",
            dash_report.claimed_early.join("\n")
        )
    });
    checks.check(report.violations.is_empty(), || {
        format!("HLS playlist snapshots: {:#?}", report.violations)
    });
    let dash_problems = dash_report_problems(&dash_report);
    checks.check(dash_problems.is_empty(), || {
        format!("DASH MPD snapshots: {dash_problems:#?}")
    });
    finish(checks, server);
}

// ---------------------------------------------------------------------------------------------
// 3. A player frozen with SIGSTOP

/// Two ffmpeg players of a 16 Mbit/s stream; one is frozen with SIGSTOP. With `timeout 5s` its
/// connection is closed ("behind the stream (timeout)") within 15 s, while the other decodes
/// every frame in real time. The frozen one is thawed and ended at the end.
#[test]
fn stopped_player_sigstop_is_dropped_while_others_keep_playing() {
    let server = Server::start(&live_rtmp_block("timeout 5s;", ""), "");
    let mut checks = Checks::new();
    let url = server.rtmp_url("live/freeze");
    // 16 Mbit/s (filler included): the frozen player's socket buffers fill within seconds.
    let mut publisher = publish_cbr(&url, 40, "16M");
    thread::sleep(Duration::from_millis(1000));

    // The player to be frozen: a real ffmpeg decoding over RTMP.
    let log_at = server.log_len();
    let mut frozen = Proc::spawn(
        Command::new("ffmpeg").args([
            "-hide_banner",
            "-nostdin",
            "-loglevel",
            "error",
            "-i",
            &url,
            "-f",
            "null",
            "-",
        ]),
        "ffmpeg player to be stopped",
    );
    let frozen_play = wait_log_line(
        &server,
        log_at,
        "rtmp: play \"live/freeze\"",
        Duration::from_secs(10),
    )
    .expect("the player to be frozen starts playing");
    let frozen_conn = common::raw::conn_number(&frozen_play);

    // The other player decodes the whole time.
    let log_at = server.log_len();
    let play_secs = 20;
    let normal = spawn_play_decode(&url, play_secs);
    let normal_conn = wait_log_line(
        &server,
        log_at,
        "rtmp: play \"live/freeze\"",
        Duration::from_secs(10),
    )
    .and_then(|l| common::raw::conn_number(&l));
    thread::sleep(Duration::from_secs(2));

    let log_at = server.log_len();
    frozen.signal(libc::SIGSTOP);
    let stopped_at = Instant::now();
    let dropped = wait_log_line(
        &server,
        log_at,
        "behind the stream (timeout)",
        Duration::from_secs(15),
    );
    match &dropped {
        Some(l) => {
            println!(
                "{:.1} s after SIGSTOP: {l}",
                stopped_at.elapsed().as_secs_f64()
            );
            checks.check(common::raw::conn_number(l) == frozen_conn, || {
                format!("the dropped connection is not the frozen player's (*{frozen_conn:?}): {l}")
            });
        }
        None => checks.fail(format!(
            "the SIGSTOPped player (*{frozen_conn:?}) was not dropped within 15 s (timeout 5s); \
             log since:\n{}",
            server.log_since(log_at)
        )),
    }

    let played = normal.join().expect("player thread");
    println!(
        "other player: {:.1} s decoded, {} frames in {:.1} s",
        played.decoded_seconds,
        played.frames,
        played.wall.as_secs_f64()
    );
    checks.check(
        played.ok && played.decoded_seconds >= f64::from(play_secs) - 1.0,
        || format!("the other player was hurt by the frozen one: {played:#?}"),
    );
    checks.check(played.kept_frames(25.0), || {
        format!("the other player lost frames: {played:#?}")
    });
    checks.check(
        played.wall <= Duration::from_secs(u64::from(play_secs) + 8),
        || format!("the other player stalled: {played:#?}"),
    );
    let others_dropped: Vec<String> = log_lines(&server, "behind the stream")
        .into_iter()
        .filter(|l| common::raw::conn_number(l) != frozen_conn)
        .collect();
    checks.check(others_dropped.is_empty(), || {
        format!(
            "other connections were dropped (the other player is *{normal_conn:?}):\n{}",
            others_dropped.join("\n")
        )
    });

    // Thaw it: its connection is gone, so it ends by itself (else it is killed).
    frozen.signal(libc::SIGCONT);
    let exit = frozen.exited_within(Duration::from_secs(10));
    println!("the thawed player exited by itself: {exit:?}");
    drop(frozen);
    checks.check(publisher.is_running(), || {
        format!("the publisher failed: {}", publisher.stderr())
    });
    drop(publisher);
    finish(checks, server);
}

// ---------------------------------------------------------------------------------------------
// 4. Reload and quit under load

/// Two workers, one publisher with HLS, ten RTMP players (our client, one thread each) and an
/// ffmpeg decoder: two reloads 2 s apart must not interrupt any player (no 1.5 s gap) nor tear
/// the playlist, and the master must survive its old workers exiting. Then a graceful quit:
/// once the clients leave, nginx exits (code 0) within 20 s, no worker outlives it, the
/// playlist ends with `#EXT-X-ENDLIST` and every listed segment probes as H.264 + AAC.
#[test]
fn reload_and_quit_under_load() {
    let rtmp = "rtmp {\n    server {\n        listen 127.0.0.1:{RTMP_PORT} reuseport;\n        \
                chunk_size 4096;\n        application live {\n            live on;\n            \
                hls on;\n            hls_path {PREFIX}/tmp/live;\n            \
                hls_fragment 1s;\n            hls_playlist_length 10s;\n        }\n    }\n}\n";
    let mut server = Launch::workers(2).start(rtmp, &hls_http_location("/hls/", "{PREFIX}/tmp/"));
    let master = server.pid();
    let mut checks = Checks::new();
    let name = "load";
    let url = server.rtmp_url(&format!("live/{name}"));
    let pl = playlist_file(&server, "live", name);
    let watcher = Watcher::start(&pl, false);
    let mut publisher = publish(&url, 60);
    checks.ok(wait_segments(&pl, 2));

    let fleet = Fleet::start(&server.rtmp_addr(), "live", name, 10);
    let decoder = spawn_play_decode(&url, 12);
    thread::sleep(Duration::from_secs(3));

    let first = fleet.now();
    server.reload();
    thread::sleep(Duration::from_secs(2));
    server.reload();
    let second = fleet.now();
    thread::sleep(Duration::from_secs(3));
    let after = fleet.now();

    for (i, p) in fleet.snapshot().iter().enumerate() {
        let v = p.video_between(second + 0.5, after);
        checks.check(p.error.is_none() && v >= 40, || {
            format!(
                "player {i}: {v} video messages in the {:.1} s after the second reload \
                 (expected >= 40 at 25 fps), error {:?}",
                after - second - 0.5,
                p.error
            )
        });
        let gap = p.longest_gap();
        checks.check(gap <= 1.5, || {
            format!(
                "player {i}: {gap:.1} s without video (reloads at {first:.1} s and {second:.1} s)"
            )
        });
    }
    let decoded = decoder.join().expect("decoder thread");
    checks.check(decoded.ok && decoded.decoded_seconds >= 11.0, || {
        format!("ffmpeg player across two reloads: {decoded:#?}")
    });
    checks.check(publisher.is_running(), || {
        format!(
            "the publisher was dropped by a reload: {}",
            publisher.stderr()
        )
    });

    // The master survived the reloads (its old workers exiting included).
    let alive_before_quit = server.is_running();
    checks.check(alive_before_quit, || {
        format!(
            "the nginx master died after the reloads, before any quit: {}; workers left {:?}",
            describe_status(master_status(&mut server)),
            common::raw::worker_pids(master)
        )
    });

    // Graceful quit: old workers serve their clients until they leave, then nginx exits.
    let quit_at = Instant::now();
    if alive_before_quit {
        // SAFETY: kill() on the nginx master, our not yet reaped child.
        let rc = unsafe { libc::kill(master, libc::SIGQUIT) };
        assert_eq!(rc, 0, "SIGQUIT to the master {master}");
    }
    thread::sleep(Duration::from_secs(1));
    let during = fleet.now();
    thread::sleep(Duration::from_secs(1));
    let players = fleet.stop();
    let still = players
        .iter()
        .filter(|p| p.video_between(during, during + 1.0) > 0)
        .count();
    println!("{still} of 10 players still received video 1-2 s after nginx -s quit");
    drop(publisher);
    if alive_before_quit {
        let mut exited = false;
        while quit_at.elapsed() < Duration::from_secs(20) {
            if !server.is_running() {
                exited = true;
                break;
            }
            thread::sleep(Duration::from_millis(50));
        }
        let status = master_status(&mut server);
        if exited {
            println!(
                "nginx exited {:.1} s after SIGQUIT (clients left after 2 s): {}",
                quit_at.elapsed().as_secs_f64(),
                describe_status(status)
            );
            checks.check(status.is_some_and(|s| s.success()), || {
                format!(
                    "on nginx -s quit the master ended with {}",
                    describe_status(status)
                )
            });
        } else {
            checks.fail(format!(
                "nginx still runs 20 s after SIGQUIT (all clients gone after 2 s); workers {:?}",
                common::raw::worker_pids(master)
            ));
        }
    }
    if !alive_before_quit {
        // Orphaned workers: ask them to quit (their clients are gone) so that what they wrote
        // can still be checked below; the group is killed right after if they linger.
        // SAFETY: the process group created for nginx (only its workers are left).
        unsafe {
            libc::kill(-master, libc::SIGQUIT);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        // SAFETY: signal 0 only checks whether the group still has members.
        while unsafe { libc::kill(-master, 0) } == 0 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(50));
        }
    }
    // No worker outlives the master (its group is gone).
    thread::sleep(Duration::from_millis(300));
    // SAFETY: signal 0 only checks whether the group (created for nginx) still has members.
    let stragglers = unsafe { libc::kill(-master, 0) } == 0;
    if stragglers {
        // SAFETY: the process group created for nginx.
        unsafe {
            libc::kill(-master, libc::SIGKILL);
        }
        checks.fail("a worker outlived the master after nginx -s quit");
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
    match read_media(&pl) {
        Ok(last) => {
            checks.check(last.playlist.end_list, || {
                format!(
                    "no #EXT-X-ENDLIST after the publisher left during quit:\n{}",
                    last.text
                )
            });
            check_segments_probe(&mut checks, &hls_dir(&server, "live"), &last);
        }
        Err(e) => checks.fail(format!("final playlist: {e}")),
    }
    let log = server.error_log();
    let bad: Vec<&str> = log.lines().filter(|l| is_forbidden_log_line(l)).collect();
    checks.check(bad.is_empty(), || {
        format!("forbidden log lines:\n{}", bad.join("\n"))
    });
    checks.assert_ok();
    drop(server);
}
