//! Integration-test harness: starts the real nginx binary with the module under test, publishes
//! and plays with real ffmpeg, and speaks RTMP directly through a small client for precise checks.
//!
//! Nothing here links the crate's library: the module is tested the way users run it.
//!
//! Module under test:
//! - default (`RTMP_IT_TARGET` unset or `rs`): `build/sbin/nginx` + `build/modules/ngx_rtmp_rs_module.so`
//!   (built by `scripts/build.sh`);
//! - `RTMP_IT_TARGET=c`: Debian's `/usr/sbin/nginx` + the C nginx-rtmp-module
//!   (`/usr/lib/nginx/modules/ngx_rtmp_module.so`), to check the tests themselves.
//!
//! `NGINX_BIN` and `RTMP_MODULE` override either path (e.g. Debian's nginx with the module
//! from `scripts/build-system-nginx.sh`).
//!
//! Expected failures with `RTMP_IT_TARGET=c` (the C module's known weaknesses): the hostile
//! name tests in `names.rs` (it accepts any stream name and logs raw control characters) and
//! `reload::new_player_after_reload_can_play` (streams stay in the old worker).
#![allow(dead_code)]

pub mod backend;
pub mod browser;
pub mod client;
pub mod dash;
pub mod enhanced;
pub mod ffmpeg;
pub mod ffmpeg9;
pub mod hls;
pub mod players;
pub mod raw;
pub mod workers;

use std::fs;
use std::io::{self, Read};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

#[allow(unused_imports)]
pub use client::{ClientError, RtmpClient};
#[allow(unused_imports)]
pub use ffmpeg::{play_decode, probe_streams, publish, spawn_play_decode, FfmpegChild, PlayResult};

/// How long nginx may take to start listening.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a graceful stop (SIGQUIT) may take before the harness escalates.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Log fragments that mean something went badly wrong.
pub const FORBIDDEN_LOG_PATTERNS: &[&str] = &["[alert]", "[emerg]", "exited on signal", "panicked"];

/// Which implementation the tests run against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// Our Rust module on the nginx built by `scripts/build.sh`.
    Rs,
    /// Debian's nginx with the C nginx-rtmp-module (reference behaviour).
    C,
}

pub fn target() -> Target {
    match std::env::var("RTMP_IT_TARGET").as_deref() {
        Ok("c") | Ok("C") => Target::C,
        Ok("") | Ok("rs") | Ok("ours") | Err(_) => Target::Rs,
        Ok(other) => panic!("RTMP_IT_TARGET={other:?}: expected `c` or `rs`"),
    }
}

pub fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The nginx binary under test.
pub fn nginx_bin() -> PathBuf {
    let path = match std::env::var_os("NGINX_BIN") {
        Some(p) => PathBuf::from(p),
        None => match target() {
            Target::Rs => manifest_dir().join("build/sbin/nginx"),
            Target::C => PathBuf::from("/usr/sbin/nginx"),
        },
    };
    assert!(
        path.is_file(),
        "nginx binary {} not found: run scripts/build.sh (or set NGINX_BIN)",
        path.display()
    );
    path
}

/// The module `.so` under test (absolute path, used in `load_module`).
pub fn module_path() -> PathBuf {
    let path = match std::env::var_os("RTMP_MODULE") {
        Some(p) => PathBuf::from(p),
        None => match target() {
            Target::Rs => manifest_dir().join("build/modules/ngx_rtmp_rs_module.so"),
            Target::C => PathBuf::from("/usr/lib/nginx/modules/ngx_rtmp_module.so"),
        },
    };
    assert!(
        path.is_file(),
        "RTMP module {} not found: run scripts/build.sh (or set RTMP_MODULE)",
        path.display()
    );
    path
}

static PREFIX_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A fresh, unique directory under `target/it/`, named after the running test.
pub fn fresh_prefix() -> PathBuf {
    let thread = thread::current();
    let test_name: String = thread
        .name()
        .unwrap_or("test")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let n = PREFIX_COUNTER.fetch_add(1, Ordering::SeqCst);
    let dir = manifest_dir()
        .join("target/it")
        .join(format!("{test_name}-{}-{n}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    for sub in ["logs", "tmp", "conf"] {
        fs::create_dir_all(dir.join(sub)).expect("create test prefix");
    }
    dir
}

/// A port that was free a moment ago (bind to port 0, read it, drop the socket).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr").port()
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The full nginx.conf the harness runs: our main/events/http parts around the test's rtmp block.
/// `{RTMP_PORT}` and `{HTTP_PORT}` are substituted everywhere; `{PREFIX}` too.
pub fn render_conf(
    prefix: &Path,
    rtmp_block: &str,
    extra_http: &str,
    rtmp_port: u16,
    http_port: u16,
) -> String {
    // Workers run as root when the tests do, so they can write under the (root-owned) prefix.
    let user = if is_root() { "user root;\n" } else { "" };
    let conf = format!(
        "load_module {module};\n\
         {user}\
         worker_processes 1;\n\
         error_log {prefix}/logs/error.log info;\n\
         pid {prefix}/logs/nginx.pid;\n\
         daemon off;\n\
         master_process on;\n\
         \n\
         events {{\n    worker_connections 256;\n}}\n\
         \n\
         {rtmp_block}\n\
         \n\
         http {{\n\
         \x20   access_log {prefix}/logs/access.log;\n\
         \x20   client_body_temp_path {prefix}/tmp/client_body;\n\
         \x20   proxy_temp_path {prefix}/tmp/proxy;\n\
         \x20   fastcgi_temp_path {prefix}/tmp/fastcgi;\n\
         \x20   uwsgi_temp_path {prefix}/tmp/uwsgi;\n\
         \x20   scgi_temp_path {prefix}/tmp/scgi;\n\
         \x20   server {{\n\
         \x20       listen 127.0.0.1:{{HTTP_PORT}};\n\
         \x20       location = /it-health {{ return 200 \"ok\\n\"; }}\n\
         {extra_http}\n\
         \x20   }}\n\
         }}\n",
        module = module_path().display(),
        prefix = prefix.display(),
    );
    conf.replace("{RTMP_PORT}", &rtmp_port.to_string())
        .replace("{HTTP_PORT}", &http_port.to_string())
        .replace("{PREFIX}", &prefix.display().to_string())
}

/// The usual rtmp block: one server on `{RTMP_PORT}` with `application live { live on; <app_extra> }`.
pub fn live_rtmp_block(server_extra: &str, app_extra: &str) -> String {
    format!(
        "rtmp {{\n    server {{\n        listen 127.0.0.1:{{RTMP_PORT}};\n        chunk_size 4096;\n        \
         {server_extra}\n        application live {{\n            live on;\n            {app_extra}\n        }}\n    }}\n}}\n"
    )
}

/// A running nginx (master process, `daemon off`) with its own prefix and ports.
pub struct Server {
    pub prefix: PathBuf,
    pub conf_path: PathBuf,
    pub rtmp_port: u16,
    pub http_port: u16,
    child: Option<Child>,
    stopped_status: Option<ExitStatus>,
    stop_called: bool,
}

impl Server {
    /// Starts nginx with `rtmp_block` (use `{RTMP_PORT}` in its `listen`) and `extra_http`
    /// (inserted inside the http `server {}` that listens on `{HTTP_PORT}`, e.g. locations).
    /// Panics with the error log if nginx does not come up within [`START_TIMEOUT`].
    pub fn start(rtmp_block: &str, extra_http: &str) -> Server {
        Self::start_with_env(rtmp_block, extra_http, &[])
    }

    /// [`Server::start`] with extra environment variables for nginx (e.g. `LD_PRELOAD`).
    pub fn start_with_env(rtmp_block: &str, extra_http: &str, env: &[(&str, &str)]) -> Server {
        let mut last_err = String::new();
        for _attempt in 0..5 {
            match Self::try_start(rtmp_block, extra_http, env) {
                Ok(s) => return s,
                Err(StartError::PortTaken(log)) => last_err = log,
                Err(StartError::Failed(msg)) => panic!("{msg}"),
            }
        }
        panic!("nginx could not bind its ports after 5 attempts:\n{last_err}");
    }

    /// `Server::start` with the usual `live` application (see [`live_rtmp_block`]).
    pub fn start_live(app_extra: &str) -> Server {
        Self::start(&live_rtmp_block("", app_extra), "")
    }

    fn try_start(
        rtmp_block: &str,
        extra_http: &str,
        env: &[(&str, &str)],
    ) -> Result<Server, StartError> {
        let prefix = fresh_prefix();
        let rtmp_port = free_port();
        let mut http_port = free_port();
        while http_port == rtmp_port {
            http_port = free_port();
        }
        let conf = render_conf(&prefix, rtmp_block, extra_http, rtmp_port, http_port);
        let conf_path = prefix.join("conf/nginx.conf");
        fs::write(&conf_path, &conf).expect("write nginx.conf");
        let log_path = prefix.join("logs/error.log");

        let stdout = fs::File::create(prefix.join("logs/stdout.log")).expect("stdout log");
        let stderr = fs::File::create(prefix.join("logs/stderr.log")).expect("stderr log");
        let child = Command::new(nginx_bin())
            .arg("-p")
            .arg(&prefix)
            .arg("-c")
            .arg(&conf_path)
            .arg("-e")
            .arg(&log_path)
            // The C module resolves some relative paths (hls_path, ...) against the cwd.
            .current_dir(&prefix)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            // Own process group: if the master dies, its workers can still be found and ended.
            .process_group(0)
            .spawn()
            .expect("spawn nginx");

        let mut server = Server {
            prefix,
            conf_path,
            rtmp_port,
            http_port,
            child: Some(child),
            stopped_status: None,
            stop_called: false,
        };

        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = server.child_mut().try_wait().expect("try_wait") {
                server.child = None;
                server.stopped_status = Some(status);
                let log = server.all_logs();
                let taken = log.contains("Address already in use");
                // The failed prefix is kept for inspection only when it is a real failure.
                if taken {
                    let _ = fs::remove_dir_all(&server.prefix);
                    return Err(StartError::PortTaken(log));
                }
                return Err(StartError::Failed(format!(
                    "nginx exited at startup with {status}; prefix {}\n--- config ---\n{conf}\n--- logs ---\n{log}",
                    server.prefix.display()
                )));
            }
            // Listening sockets are the master's; a worker must also be up to serve them.
            if TcpStream::connect(("127.0.0.1", rtmp_port)).is_ok()
                && TcpStream::connect(("127.0.0.1", http_port)).is_ok()
                && server.error_log().contains("start worker process")
            {
                return Ok(server);
            }
            if Instant::now() > deadline {
                let log = server.all_logs();
                server.kill_group();
                return Err(StartError::Failed(format!(
                    "nginx did not listen on 127.0.0.1:{rtmp_port} within {START_TIMEOUT:?}; prefix {}\n\
                     --- config ---\n{conf}\n--- logs ---\n{log}",
                    server.prefix.display()
                )));
            }
            thread::sleep(Duration::from_millis(25));
        }
    }

    fn child_mut(&mut self) -> &mut Child {
        self.child.as_mut().expect("nginx child")
    }

    /// The master's PID (nginx runs with `daemon off`, so it is our direct child).
    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("nginx is not running").id() as i32
    }

    /// Whether the master is still running (reaps it, and forgets its PID, if it exited).
    pub fn is_running(&mut self) -> bool {
        let Some(c) = &mut self.child else {
            return false;
        };
        match c.try_wait() {
            Ok(None) => true,
            Ok(Some(status)) => {
                self.stopped_status = Some(status);
                self.child = None;
                false
            }
            Err(_) => false,
        }
    }

    /// `rtmp://127.0.0.1:<port>/<path>`, e.g. `server.rtmp_url("live/key")`.
    pub fn rtmp_url(&self, path: &str) -> String {
        format!("rtmp://127.0.0.1:{}/{}", self.rtmp_port, path)
    }

    /// `127.0.0.1:<rtmp port>` for [`RtmpClient::connect`].
    pub fn rtmp_addr(&self) -> String {
        format!("127.0.0.1:{}", self.rtmp_port)
    }

    pub fn http_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.http_port, path)
    }

    pub fn error_log_path(&self) -> PathBuf {
        self.prefix.join("logs/error.log")
    }

    /// The whole error log (lossy UTF-8: a hostile name must not make the harness fail).
    pub fn error_log(&self) -> String {
        read_lossy(&self.error_log_path())
    }

    /// Current length of the error log, to look only at what a step added ([`Server::log_since`]).
    pub fn log_len(&self) -> usize {
        fs::metadata(self.error_log_path())
            .map(|m| m.len() as usize)
            .unwrap_or(0)
    }

    /// Error log text written after `offset` (from [`Server::log_len`]).
    pub fn log_since(&self, offset: usize) -> String {
        let bytes = fs::read(self.error_log_path()).unwrap_or_default();
        String::from_utf8_lossy(bytes.get(offset..).unwrap_or_default()).into_owned()
    }

    /// Waits until the error log (after `offset`) contains `needle`.
    pub fn wait_for_log(&self, offset: usize, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.log_since(offset).contains(needle) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    fn all_logs(&self) -> String {
        format!(
            "{}\n--- stderr ---\n{}",
            read_lossy(&self.error_log_path()),
            read_lossy(&self.prefix.join("logs/stderr.log"))
        )
    }

    fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill() on our own child's PID; the child has not been reaped (we hold it and
        // only reap in wait paths that clear `self.child`), so the PID cannot have been reused.
        let rc = unsafe { libc::kill(self.pid(), sig) };
        assert_eq!(
            rc,
            0,
            "kill({}, {sig}): {}",
            self.pid(),
            io::Error::last_os_error()
        );
    }

    /// SIGKILL to the whole process group nginx was started in (master and workers).
    fn kill_group(&mut self) {
        if let Some(child) = &mut self.child {
            let pgid = child.id() as i32;
            // SAFETY: the group was created for this child (process_group(0)); the leader is
            // not yet reaped, so the group id still names only nginx's processes.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
            let _ = child.wait();
            self.child = None;
        }
    }

    /// True if some process of nginx's group (e.g. an orphaned worker) is still alive.
    fn group_alive(pgid: i32) -> bool {
        // SAFETY: signal 0 only checks for existence/permission.
        unsafe { libc::kill(-pgid, 0) == 0 }
    }

    /// `nginx -s reload`: SIGHUP to the master, then waits (bounded) until a new worker started.
    pub fn reload(&mut self) {
        let before = self.error_log().matches("start worker process").count();
        self.signal(libc::SIGHUP);
        let deadline = Instant::now() + START_TIMEOUT;
        while self.error_log().matches("start worker process").count() <= before {
            assert!(
                Instant::now() < deadline,
                "no new worker within {START_TIMEOUT:?} after SIGHUP; log:\n{}",
                self.error_log()
            );
            assert!(
                self.is_running(),
                "nginx exited on reload; log:\n{}",
                self.error_log()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Graceful stop: SIGQUIT, bounded wait, then SIGTERM, then SIGKILL of the group (which
    /// fails the test: nginx must stop on its own). Also fails if a worker outlives the master.
    pub fn stop(&mut self) {
        if self.stop_called {
            return;
        }
        self.stop_called = true;
        let Some(child) = &mut self.child else {
            panic!(
                "nginx master exited before stop() ({:?}); prefix {}\n{}",
                self.stopped_status,
                self.prefix.display(),
                self.error_log()
            );
        };
        let pgid = child.id() as i32;
        self.signal(libc::SIGQUIT);
        let mut status = wait_timeout(self.child_mut(), STOP_TIMEOUT);
        let mut problem = None;
        if status.is_none() {
            problem = Some(format!(
                "nginx did not stop within {STOP_TIMEOUT:?} of SIGQUIT"
            ));
            self.signal(libc::SIGTERM);
            status = wait_timeout(self.child_mut(), Duration::from_secs(5));
        }
        match status {
            Some(st) => {
                self.child = None;
                self.stopped_status = Some(st);
                // A master killed by a signal crashed (e.g. while reaping a worker).
                if let Some(sig) = std::os::unix::process::ExitStatusExt::signal(&st) {
                    problem.get_or_insert_with(|| format!("the nginx master died of signal {sig}"));
                }
            }
            None => self.kill_group(),
        }
        // Workers are reaped by the master before it exits; give stragglers a moment.
        let deadline = Instant::now() + Duration::from_secs(3);
        while Self::group_alive(pgid) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(50));
        }
        if Self::group_alive(pgid) {
            // SAFETY: only processes of the group we created.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
            problem.get_or_insert_with(|| "a worker process outlived the master".to_string());
        }
        if let Some(p) = problem {
            panic!(
                "{p}; prefix {}\n{}",
                self.prefix.display(),
                self.error_log()
            );
        }
    }

    /// The error log must not contain [`FORBIDDEN_LOG_PATTERNS`]; prints the offending lines.
    pub fn assert_clean_log(&self) {
        let log = self.error_log();
        let bad: Vec<&str> = log.lines().filter(|l| is_forbidden_log_line(l)).collect();
        assert!(
            bad.is_empty(),
            "error log {} has forbidden lines:\n{}",
            self.error_log_path().display(),
            bad.join("\n")
        );
    }

    /// Stop nginx, then [`Server::assert_clean_log`]: the usual end of a test.
    pub fn finish(mut self) {
        self.stop();
        self.assert_clean_log();
    }

    /// `nginx -t` with this server's binary and prefix on another config text.
    pub fn nginx_t(&self, conf: &str) -> (bool, String) {
        let path = self.prefix.join(format!(
            "conf/test-{}.conf",
            PREFIX_COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        fs::write(&path, conf).expect("write test conf");
        run_nginx_t(&self.prefix, &path)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let failed = thread::panicking();
        self.kill_group();
        if failed {
            eprintln!(
                "test failed: nginx prefix kept at {}",
                self.prefix.display()
            );
        } else {
            let _ = fs::remove_dir_all(&self.prefix);
        }
    }
}

enum StartError {
    PortTaken(String),
    Failed(String),
}

/// A log line matching [`FORBIDDEN_LOG_PATTERNS`]. `[alert]`/`[emerg]` count only as the line's
/// level (`YYYY/MM/DD HH:MM:SS [level] ...`), so a client-supplied name that is logged escaped
/// and happens to contain "[alert]" is not mistaken for one.
/// A test that cannot run here (no root for a mount, a missing tool) fails, naming why, unless
/// the run explicitly allows skipping with `RTMP_TESTS_ALLOW_SKIP=1`; then it prints a SKIP
/// line and the caller returns.
pub fn skip_or_fail(test: &str, why: &str) {
    let allowed = std::env::var_os("RTMP_TESTS_ALLOW_SKIP").is_some_and(|v| v == "1");
    assert!(
        allowed,
        "{test} could not run: {why} (set RTMP_TESTS_ALLOW_SKIP=1 to let it pass unchecked)"
    );
    println!("SKIP {test}: {why}");
}

pub fn is_forbidden_log_line(line: &str) -> bool {
    let level = line.split_whitespace().nth(2).unwrap_or("");
    let dated = line.as_bytes().get(4) == Some(&b'/') && line.as_bytes().get(7) == Some(&b'/');
    FORBIDDEN_LOG_PATTERNS.iter().any(|p| {
        if p.starts_with('[') && dated {
            level == *p
        } else {
            line.contains(p)
        }
    })
}

/// Something that carries onStatus codes (`publish` gives one, `play` several).
pub trait AsCodes {
    fn codes(&self) -> Vec<String>;
}
impl AsCodes for String {
    fn codes(&self) -> Vec<String> {
        vec![self.clone()]
    }
}
impl AsCodes for Vec<String> {
    fn codes(&self) -> Vec<String> {
        self.clone()
    }
}

/// Whether a publish/play attempt was refused: an error status, or the server closing the
/// connection within 2 s (the C module sends `...Start` first and then closes; that still keeps
/// the client from publishing or playing, so it counts, with a note printed).
pub fn is_refused<T: AsCodes>(
    outcome: &Result<T, ClientError>,
    client: Option<&mut RtmpClient>,
    start_code: &str,
) -> bool {
    match outcome {
        Ok(codes) if !codes.codes().iter().any(|c| c == start_code) => true,
        Ok(_) => match client {
            Some(c) => {
                let closed = matches!(c.idle(Duration::from_secs(2)), Err(ClientError::Closed));
                if closed {
                    println!("note: the server sent {start_code} and then closed the connection");
                }
                closed
            }
            None => false,
        },
        Err(ClientError::Closed) | Err(ClientError::Protocol(_)) => true,
        Err(_) => false,
    }
}

/// Waits for a child to exit, polling, for at most `timeout`.
pub fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            return Some(st);
        }
        if Instant::now() > deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

pub fn read_lossy(path: &Path) -> String {
    let mut bytes = Vec::new();
    if let Ok(mut f) = fs::File::open(path) {
        let _ = f.read_to_end(&mut bytes);
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

fn run_nginx_t(prefix: &Path, conf_path: &Path) -> (bool, String) {
    let mut cmd = Command::new(nginx_bin());
    // `nginx -t` ends without freeing its cycle (nginx's own code): under scripts/asan.sh
    // that leak is not what a test looks at.
    if let Ok(opts) = std::env::var("ASAN_OPTIONS") {
        cmd.env("ASAN_OPTIONS", format!("{opts}:detect_leaks=0"));
    }
    let mut child = cmd
        .arg("-t")
        .arg("-p")
        .arg(prefix)
        .arg("-c")
        .arg(conf_path)
        .arg("-e")
        .arg(prefix.join("logs/error.log"))
        .current_dir(prefix)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("spawn nginx -t");
    let mut stderr = child.stderr.take().expect("stderr");
    let reader = thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stderr.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    });
    let status = wait_timeout(&mut child, Duration::from_secs(20));
    let status = match status {
        Some(s) => s,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("nginx -t on {} did not finish in 20s", conf_path.display());
        }
    };
    let err = reader.join().unwrap_or_default();
    (status.success(), err)
}

/// A prefix for `nginx -t` runs that deletes itself unless the test panics.
pub struct TestPrefix(pub PathBuf);

impl TestPrefix {
    pub fn new() -> Self {
        TestPrefix(fresh_prefix())
    }
}

impl Drop for TestPrefix {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("test failed: prefix kept at {}", self.0.display());
        } else {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}

/// Result of `nginx -t` on a config text ([`nginx_t_text`]).
pub struct ConfTest {
    pub ok: bool,
    pub stderr: String,
    /// Where the text was written (nginx reports errors as "in <path>:<line>").
    pub path: PathBuf,
    _prefix: TestPrefix,
}

/// `nginx -t` on a config text, in a fresh prefix: (success, stderr).
pub fn nginx_test_config(text: &str) -> (bool, String) {
    let t = nginx_t_text(text);
    (t.ok, t.stderr.clone())
}

/// `nginx -t` on a config text written to `<fresh prefix>/conf/nginx.conf`; `{PREFIX}` in the
/// text becomes that prefix (e.g. `render_conf(Path::new("{PREFIX}"), ...)`).
pub fn nginx_t_text(text: &str) -> ConfTest {
    let prefix = TestPrefix::new();
    let path = prefix.0.join("conf/nginx.conf");
    let text = text.replace("{PREFIX}", &prefix.0.display().to_string());
    fs::write(&path, text).expect("write conf");
    let (ok, stderr) = run_nginx_t(&prefix.0, &path);
    ConfTest {
        ok,
        stderr,
        path,
        _prefix: prefix,
    }
}

/// `nginx -t` on an existing config file, run with `prefix` as the prefix (`-p`).
pub fn nginx_test_config_file(path: &Path, prefix: &Path) -> (bool, String) {
    run_nginx_t(prefix, path)
}

/// rtmp block with one application per `(name, directives)`: `live on; <output> on;
/// <output>_path {PREFIX}/tmp/<name>;` then the directives (`output` is `hls` or `dash`).
pub fn output_rtmp_block(output: &str, apps: &[(&str, &str)]) -> String {
    let mut s = String::from(
        "rtmp {\n    server {\n        listen 127.0.0.1:{RTMP_PORT};\n        chunk_size 4096;\n",
    );
    for (name, directives) in apps {
        s.push_str(&format!(
            "        application {name} {{\n            live on;\n            {output} on;\n            \
             {output}_path {{PREFIX}}/tmp/{name};\n            {directives}\n        }}\n"
        ));
    }
    s.push_str("    }\n}\n");
    s
}

/// Established TCP connections to `port` on this machine (`ss`), whoever opened them.
pub fn connections_to(port: u16) -> usize {
    let out = Command::new("ss")
        .args([
            "-Htn",
            "state",
            "established",
            "dport",
            "=",
            &format!(":{port}"),
        ])
        .output()
        .expect("ss runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count()
}
