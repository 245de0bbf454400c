//! `exec*` processes on nginx's event loop: started without a shell (std's fork + exec, with
//! the redirects done by us), their output copied line by line to the error log through a
//! pipe read as an nginx connection, signalled by process group, and reaped here.
//!
//! Reaping: nginx's SIGCHLD handler (`ngx_process_get_status`) would reap our children with
//! `waitpid(-1)` and log each one killed by a signal as `[alert] ... exited on signal`. So a
//! worker that runs commands blocks SIGCHLD (nginx's thread-pool threads block every signal)
//! and reads it from a signalfd instead: every exited child, ours or not, is reaped here, and
//! a pid is never signalled after it was reaped, so a reused pid is never hit. Children get
//! `PR_SET_PDEATHSIG` with the kill signal, so even a crashed worker leaves no supervised
//! process behind.

use core::ptr;
use std::cell::RefCell;
use std::collections::HashMap;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use ngx::ffi::{
    ngx_close_connection, ngx_connection_t, ngx_cycle_t, ngx_event_t, ngx_get_connection,
    ngx_handle_read_event, ngx_int_t, ngx_post_event, ngx_posted_events, NGX_LOG_INFO,
    NGX_LOG_WARN, NGX_OK,
};

use super::util::{guard, log_cycle, now_ms};
use super::worker::{log_lines, with_worker};
use crate::exec::{
    CommandLine, ExecAction, ExecId, ExitStatus, OpenMode, Redirect, MAX_OUTPUT_LINE,
};
use crate::server::{ExecReport, Outcome};

/// Where a command without `/` is looked up when nginx left no PATH in the environment.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// How long an exiting worker waits for its killed children before SIGKILL, and after.
const EXIT_WAIT_MS: u64 = 1000;
/// Output read per handler call before yielding to other events.
const READ_BUDGET: usize = 64 * 1024;
/// Redirect files are moved to descriptors at or above this before the fork, so no redirect
/// target (at most [`crate::exec::MAX_REDIRECT_FD`]) overwrites one still to be used.
const HIGH_FD: libc::c_int = 256;

struct Child {
    id: ExecId,
    managed: bool,
    /// The output pipe's connection (null once it reached EOF).
    out: *mut ngx_connection_t,
    /// The current output line (at most MAX_OUTPUT_LINE bytes kept).
    line: Vec<u8>,
    cut: bool,
}

#[derive(Default)]
struct State {
    /// Live children by pid.
    children: HashMap<i32, Child>,
    /// The signalfd's connection (null until the first command).
    sigfd: Option<*mut ngx_connection_t>,
    static_stopped: bool,
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State::default());
}

/// Timer for respawns.
static mut TIMER: core::mem::MaybeUninit<ngx_event_t> = core::mem::MaybeUninit::zeroed();

fn timer() -> *mut ngx_event_t {
    // SAFETY: the worker's only thread; the event lives for the process.
    unsafe { (*ptr::addr_of_mut!(TIMER)).as_mut_ptr() }
}

fn log_warn(text: &str) {
    log_cycle(NGX_LOG_WARN, text);
}

/// Starts and signals what the worker asked for.
pub fn run_all(actions: Vec<ExecAction>) {
    if actions.is_empty() {
        return;
    }
    for action in actions {
        match action {
            ExecAction::Start {
                id,
                command,
                kill_signal,
                ..
            } => start(id, &command, kill_signal),
            ExecAction::Kill { id, signal } => {
                let pid = STATE.with(|s| {
                    s.borrow()
                        .children
                        .iter()
                        .find(|(_, c)| c.id == id)
                        .map(|(pid, _)| *pid)
                });
                if let Some(pid) = pid {
                    send_signal(pid, signal);
                }
            }
        }
    }
    arm_timer();
}

fn start(id: ExecId, command: &CommandLine, kill_signal: Option<i32>) {
    let (report, pid) = match spawn(command, kill_signal) {
        Ok((pid, out)) => {
            let conn = watch_output(pid, out);
            STATE.with(|s| {
                s.borrow_mut().children.insert(
                    pid,
                    Child {
                        id,
                        managed: kill_signal.is_some(),
                        out: conn,
                        line: Vec::new(),
                        cut: false,
                    },
                )
            });
            (ExecReport::Started(pid), Some(pid))
        }
        Err(e) => (ExecReport::Failed(e.to_string()), None),
    };
    let mut outcome = Outcome::default();
    let kill = with_worker(|w| w.on_exec_report(id, report, now_ms(), &mut outcome));
    log_lines(&outcome.logs);
    if let (Some(sig), Some(pid)) = (kill, pid) {
        send_signal(pid, sig);
    }
}

/// Signals the child's process group (it leads one), or the child alone if it left it.
fn send_signal(pid: i32, signal: i32) {
    if pid <= 0 {
        return;
    }
    // SAFETY: plain syscalls; `pid` is a child of ours not yet reaped (only reap() reaps,
    // and it forgets the pid at once), so neither it nor its group id can have been reused.
    unsafe {
        if libc::kill(-pid, signal) == -1 && libc::kill(pid, signal) == -1 {
            let e = std::io::Error::last_os_error();
            log_warn(&format!("exec: kill({pid}, {signal}) failed: {e}"));
        }
    }
}

/// The program's path: as written if it holds a `/`, else the first executable of that name
/// in PATH.
fn resolve(program: &str) -> std::io::Result<PathBuf> {
    if program.contains('/') {
        return Ok(PathBuf::from(program));
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| DEFAULT_PATH.into());
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join(program);
        if is_executable(&candidate) {
            return Ok(candidate);
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::NotFound,
        format!("\"{program}\" not found in {}", path.to_string_lossy()),
    ))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// A descriptor moved to [`HIGH_FD`] or above, close-on-exec.
fn high_fd(fd: OwnedFd) -> std::io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC returns a new descriptor we then own.
    let n = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, HIGH_FD) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: n is a fresh descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(n) })
}

/// Forks and executes `command`; returns its pid and the read end of its output pipe.
fn spawn(command: &CommandLine, kill_signal: Option<i32>) -> std::io::Result<(i32, OwnedFd)> {
    ensure_init()?;
    let program = resolve(&command.program)?;
    // Redirect files are opened here, so a failure is logged; the child only dup2()s.
    let mut files: Vec<OwnedFd> = Vec::new();
    let mut ops: Vec<(RawFd, RawFd)> = Vec::new();
    for r in &command.redirects {
        match r {
            Redirect::Open { fd, path, mode } => {
                let mut o = std::fs::OpenOptions::new();
                match mode {
                    OpenMode::Read => o.read(true),
                    OpenMode::Truncate => o.write(true).create(true).truncate(true),
                    OpenMode::Append => o.append(true).create(true),
                };
                match o.open(path).map(OwnedFd::from).and_then(high_fd) {
                    Ok(f) => {
                        ops.push((f.as_raw_fd(), *fd));
                        files.push(f);
                    }
                    Err(e) => log_warn(&format!("exec: redirect to \"{path}\" left out: {e}")),
                }
            }
            Redirect::Dup { fd, from } => ops.push((*from, *fd)),
        }
    }
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2 fills two descriptors we then own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both are fresh descriptors from pipe2.
    let (read_end, write_end) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let mut cmd = Command::new(&program);
    cmd.arg0(&command.program)
        .args(&command.args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(write_end.try_clone()?))
        .stderr(Stdio::from(write_end))
        // Its own process group: a kill reaches what a script started too.
        .process_group(0);
    // SAFETY: getpid is always safe.
    let parent = unsafe { libc::getpid() };
    // SAFETY: the closure runs in the forked child before exec and only makes
    // async-signal-safe system calls on data prepared before the fork (no allocation).
    unsafe {
        cmd.pre_exec(move || child_setup(&ops, kill_signal, parent));
    }
    let child = cmd.spawn();
    // The parent's copies of the pipe's write end and of the redirect files go now, so the
    // pipe reaches EOF when the child (and what it started) is done with it.
    drop(cmd);
    drop(files);
    let child = child?;
    let pid = i32::try_from(child.id()).unwrap_or(0);
    Ok((pid, read_end))
}

/// In the forked child: die with the worker, default SIGSYS (nginx ignores it), every
/// inherited descriptor closed at exec, then the redirects.
fn child_setup(
    ops: &[(RawFd, RawFd)],
    kill_signal: Option<i32>,
    parent: i32,
) -> std::io::Result<()> {
    // SAFETY (whole fn): async-signal-safe system calls only, on plain integers.
    unsafe {
        if let Some(sig) = kill_signal {
            if libc::prctl(libc::PR_SET_PDEATHSIG, sig as libc::c_ulong, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::getppid() != parent {
                // The worker died between fork and prctl.
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
        }
        let mut sa: libc::sigaction = core::mem::zeroed();
        sa.sa_sigaction = libc::SIG_DFL;
        libc::sigaction(libc::SIGSYS, &sa, ptr::null_mut());
        // nginx's listening sockets and log files are not close-on-exec.
        const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
        if libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, CLOSE_RANGE_CLOEXEC) != 0 {
            let mut lim: libc::rlimit = core::mem::zeroed();
            let max = if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
                lim.rlim_cur.min(1 << 20) as libc::c_int
            } else {
                65536
            };
            for fd in 3..max {
                let flags = libc::fcntl(fd, libc::F_GETFD);
                if flags >= 0 {
                    libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
                }
            }
        }
        for &(src, dst) in ops {
            if src == dst {
                let flags = libc::fcntl(dst, libc::F_GETFD);
                if flags >= 0 {
                    libc::fcntl(dst, libc::F_SETFD, flags & !libc::FD_CLOEXEC);
                }
            } else if libc::dup2(src, dst) < 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    Ok(())
}

/// Blocks SIGCHLD and reads it from a signalfd on the event loop (once per worker).
fn ensure_init() -> std::io::Result<()> {
    if STATE.with(|s| s.borrow().sigfd.is_some()) {
        return Ok(());
    }
    // SAFETY: signal mask and signalfd calls on a local set; the connection is nginx's and
    // lives until the worker exits.
    unsafe {
        let mut set: libc::sigset_t = core::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGCHLD);
        if libc::pthread_sigmask(libc::SIG_BLOCK, &set, ptr::null_mut()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let fd = libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let log = (*ngx::ffi::ngx_cycle).log;
        let c = ngx_get_connection(fd, log);
        if c.is_null() {
            libc::close(fd);
            return Err(std::io::Error::other("no free connection for the signalfd"));
        }
        (*(*c).read).handler = Some(sigchld_handler);
        (*(*c).read).log = log;
        (*(*c).write).log = log;
        if ngx_handle_read_event((*c).read, 0) != NGX_OK as ngx_int_t {
            ngx_close_connection(c);
            return Err(std::io::Error::other("cannot watch the signalfd"));
        }
        let ev = timer();
        (*ev).handler = Some(timer_handler);
        (*ev).log = log;
        // A pending respawn must not keep an exiting worker alive.
        (*ev).set_cancelable(1);
        STATE.with(|s| s.borrow_mut().sigfd = Some(c));
    }
    Ok(())
}

extern "C" fn sigchld_handler(ev: *mut ngx_event_t) {
    guard("exec sigchld", (), || {
        // SAFETY: ev is the signalfd connection's read event.
        let fd = unsafe { (*((*ev).data as *mut ngx_connection_t)).fd };
        let mut info = [0u8; 128];
        loop {
            // SAFETY: reads whole signalfd_siginfo records into a buffer of that size.
            let n = unsafe { libc::read(fd, info.as_mut_ptr().cast(), info.len()) };
            if n <= 0 {
                break;
            }
        }
        reap();
        arm_timer();
    })
}

/// Reaps every exited child and reports ours to the worker.
fn reap() {
    loop {
        // SAFETY: waitid only writes into `info`.
        let pid = unsafe {
            let mut info: libc::siginfo_t = core::mem::zeroed();
            let r = libc::waitid(
                libc::P_ALL,
                0,
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            );
            if r != 0 {
                break;
            }
            info.si_pid()
        };
        if pid <= 0 {
            break;
        }
        let mut status = 0;
        // SAFETY: reaps the child waitid just named.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r != pid {
            break;
        }
        let exit = if libc::WIFSIGNALED(status) {
            ExitStatus::Signal(libc::WTERMSIG(status))
        } else {
            ExitStatus::Code(libc::WEXITSTATUS(status))
        };
        exited(pid, exit);
    }
}

fn exited(pid: i32, status: ExitStatus) {
    let child = STATE.with(|s| s.borrow_mut().children.remove(&pid));
    let Some(mut child) = child else {
        log_cycle(
            ngx::ffi::NGX_LOG_NOTICE,
            &format!("exec: reaped process {pid} (not an exec command): {status}"),
        );
        return;
    };
    if !child.out.is_null() {
        // What it wrote last, then the pipe is closed (a process it left behind may hold it).
        drain(pid, &mut child, usize::MAX);
        close_output(&mut child);
    }
    let mut outcome = Outcome::default();
    with_worker(|w| w.on_exec_report(child.id, ExecReport::Exited(status), now_ms(), &mut outcome));
    log_lines(&outcome.logs);
}

/// Reads the child's output pipe as an nginx connection (`c->data` holds the pid).
fn watch_output(pid: i32, out: OwnedFd) -> *mut ngx_connection_t {
    let fd = out.into_raw_fd();
    // SAFETY: fd is ours; the connection is closed by close_output.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
        let log = (*ngx::ffi::ngx_cycle).log;
        let c = ngx_get_connection(fd, log);
        if c.is_null() {
            libc::close(fd);
            return ptr::null_mut();
        }
        (*c).data = pid as usize as *mut core::ffi::c_void;
        (*(*c).read).handler = Some(output_handler);
        (*(*c).read).log = log;
        (*(*c).write).log = log;
        if ngx_handle_read_event((*c).read, 0) != NGX_OK as ngx_int_t {
            ngx_close_connection(c);
            return ptr::null_mut();
        }
        c
    }
}

extern "C" fn output_handler(ev: *mut ngx_event_t) {
    guard("exec output", (), || {
        // SAFETY: ev is the read event of an output connection; data holds the pid.
        let pid = unsafe { (*((*ev).data as *mut ngx_connection_t)).data as usize as i32 };
        let child = STATE.with(|s| s.borrow_mut().children.remove(&pid));
        let Some(mut child) = child else {
            return;
        };
        let eof = drain(pid, &mut child, READ_BUDGET);
        if eof {
            close_output(&mut child);
        } else if !child.out.is_null() {
            // Budget spent: continue after other events (edge-triggered: nothing else would
            // wake us for what is already there).
            // SAFETY: the connection is live.
            unsafe { ngx_post_event((*child.out).read, ptr::addr_of_mut!(ngx_posted_events)) };
        }
        STATE.with(|s| s.borrow_mut().children.insert(pid, child));
    })
}

/// Copies up to `budget` bytes of output to the log, line by line. True at EOF or error.
fn drain(pid: i32, child: &mut Child, budget: usize) -> bool {
    if child.out.is_null() {
        return true;
    }
    // SAFETY: out is a live connection.
    let fd = unsafe { (*child.out).fd };
    let mut buf = [0u8; 4096];
    let mut total = 0;
    loop {
        // SAFETY: reads into buf.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n == 0 {
            flush_line(pid, child);
            return true;
        }
        if n < 0 {
            let e = std::io::Error::last_os_error();
            return match e.kind() {
                std::io::ErrorKind::WouldBlock => false,
                std::io::ErrorKind::Interrupted => continue,
                _ => {
                    flush_line(pid, child);
                    true
                }
            };
        }
        let n = n as usize;
        for &b in buf.get(..n).unwrap_or_default() {
            if b == b'\n' || b == b'\r' {
                flush_line(pid, child);
            } else if child.line.len() < MAX_OUTPUT_LINE {
                child.line.push(b);
            } else {
                child.cut = true;
            }
        }
        total += n;
        if total >= budget {
            return false;
        }
    }
}

fn flush_line(pid: i32, child: &mut Child) {
    if child.line.is_empty() {
        child.cut = false;
        return;
    }
    let text: String = String::from_utf8_lossy(&child.line)
        .chars()
        .flat_map(|c| {
            let esc: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            esc
        })
        .collect();
    let cut = if child.cut { "..." } else { "" };
    log_cycle(NGX_LOG_INFO, &format!("exec: pid {pid}: {text}{cut}"));
    child.line.clear();
    child.cut = false;
}

fn close_output(child: &mut Child) {
    if !child.out.is_null() {
        // SAFETY: a live connection of ours; closing also removes its events.
        unsafe { ngx_close_connection(child.out) };
        child.out = ptr::null_mut();
    }
}

fn arm_timer() {
    let Some(delay) = with_worker(|w| w.exec_next_due(now_ms())) else {
        return;
    };
    let ev = timer();
    // SAFETY: the timer was set up by ensure_init (a respawn is only due after a start).
    unsafe {
        if (*ev).handler.is_none() {
            return;
        }
        ngx::ffi::ngx_add_timer(ev, delay.max(1) as ngx::ffi::ngx_msec_t);
    }
}

extern "C" fn timer_handler(_ev: *mut ngx_event_t) {
    guard("exec respawn", (), || {
        let mut outcome = Outcome::default();
        with_worker(|w| w.on_exec_timer(now_ms(), &mut outcome));
        log_lines(&outcome.logs);
        run_all(outcome.execs);
        arm_timer();
    })
}

/// Worker start: `exec_static` commands, in worker 0 only (one per server).
pub fn init_process(cycle: *mut ngx_cycle_t) {
    // SAFETY: reads nginx's process globals and our core module's conf of this cycle.
    let statics = unsafe {
        let one = match ngx::ffi::ngx_process as u32 {
            ngx::ffi::NGX_PROCESS_WORKER => ngx::ffi::ngx_worker == 0,
            ngx::ffi::NGX_PROCESS_SINGLE => true,
            _ => false,
        };
        if !one {
            return;
        }
        let conf = *(*cycle).conf_ctx.add(super::conf::ngx_rtmp_rs_module.index)
            as *const super::conf::MainConf;
        if conf.is_null() || (*conf).statics.specs.is_empty() {
            return;
        }
        (*conf).statics.clone()
    };
    let mut outcome = Outcome::default();
    with_worker(|w| w.start_static_execs(&statics, &mut outcome));
    log_lines(&outcome.logs);
    run_all(outcome.execs);
}

/// Called about once a second: a worker shutting down gracefully (reload, quit) stops its
/// `exec_static` commands at once, since the new worker 0 starts its own.
pub fn housekeeping() {
    // SAFETY: reads nginx's flag on the worker's thread.
    let exiting = unsafe { ngx::ffi::ngx_exiting } != 0;
    if !exiting || STATE.with(|s| std::mem::replace(&mut s.borrow_mut().static_stopped, true)) {
        return;
    }
    let mut outcome = Outcome::default();
    with_worker(|w| w.stop_static_execs(&mut outcome));
    log_lines(&outcome.logs);
    run_all(outcome.execs);
}

/// Worker exit: supervised commands get their kill signal and are reaped (SIGKILL after
/// [`EXIT_WAIT_MS`]); event commands get the same time to finish, then are left to init.
pub fn exit_process() {
    if STATE.with(|s| s.borrow().sigfd.is_none()) {
        return;
    }
    let mut outcome = Outcome::default();
    with_worker(|w| w.stop_all_execs(&mut outcome));
    log_lines(&outcome.logs);
    run_all(outcome.execs);
    let left = |managed_only: bool| {
        STATE.with(|s| {
            s.borrow()
                .children
                .iter()
                .filter(|(_, c)| c.managed || !managed_only)
                .map(|(pid, _)| *pid)
                .collect::<Vec<_>>()
        })
    };
    let wait = |managed_only: bool| {
        let start = std::time::Instant::now();
        while !left(managed_only).is_empty()
            && start.elapsed() < std::time::Duration::from_millis(EXIT_WAIT_MS)
        {
            reap();
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    };
    wait(false);
    let stubborn = left(true);
    for pid in &stubborn {
        log_warn(&format!("exec: pid {pid} still running; sending SIGKILL"));
        send_signal(*pid, libc::SIGKILL);
    }
    if !stubborn.is_empty() {
        wait(true);
    }
    let rest: Vec<(i32, Child)> = STATE.with(|s| s.borrow_mut().children.drain().collect());
    for (pid, mut c) in rest {
        close_output(&mut c);
        if c.managed {
            log_warn(&format!("exec: pid {pid} did not exit"));
        }
    }
    // nginx counts a connection still open at a graceful exit as a leak.
    if let Some(c) = STATE.with(|s| s.borrow_mut().sigfd.take()) {
        // SAFETY: our live signalfd connection; nothing uses it after this.
        unsafe { ngx_close_connection(c) };
    }
    // SAFETY: the respawn timer is ours; the worker is exiting.
    unsafe {
        let ev = timer();
        if (*ev).timer_set() != 0 {
            ngx::ffi::ngx_del_timer(ev);
        }
    }
}
