//! The worker process: its one [`Worker`] (all protocol state, reached through
//! [`with_worker`]), its start and exit (`init_process`, `exit_process` of our module), the
//! timer for deferred file work, and logging of lines that belong to no connection.

use core::ptr;
use std::cell::RefCell;

use ngx::ffi::{
    ngx_cycle_t, ngx_event_t, ngx_int_t, NGX_LOG_ERR, NGX_LOG_INFO, NGX_LOG_WARN, NGX_OK,
};

use super::util::{guard, now_ms};
use crate::server::{LogLevel, Outcome, Worker};

thread_local! {
    static WORKER: RefCell<Worker> = RefCell::new(Worker::with_storage(
        Box::new(super::filejobs::PoolStorage),
        Box::new(os_random),
    ));
}

pub(super) fn with_worker<T>(f: impl FnOnce(&mut Worker) -> T) -> T {
    WORKER.with(|w| {
        let mut w = w.borrow_mut();
        let tp = ngx::ffi::ngx_timeofday();
        w.sync_wall_clock(now_ms(), tp.sec as u64 * 1000 + tp.msec as u64);
        f(&mut w)
    })
}

/// Slices per `writev` (Linux IOV_MAX): a message is its chunk headers and payload pieces.
const IOVECS: usize = 1024;

/// Where [`write_queued`] stopped.
pub(super) enum Written {
    /// Everything queued is in the socket.
    CaughtUp,
    /// The socket is full: its write event is marked not ready.
    Blocked,
    /// Writing failed: the connection is marked in error.
    Failed(std::io::Error),
}

/// Writes client `id`'s queued output (shared payloads, one `writev` of many slices at a time)
/// to `c` until it is all in the socket, the socket is full or writing fails, counting what
/// went in `c->sent`. RTMP and HTTP-FLV players both write this way.
///
/// # Safety
/// `c` is the live connection of client `id` (handshaked, if TLS).
pub(super) unsafe fn write_queued(c: *mut ngx::ffi::ngx_connection_t, id: u64) -> Written {
    loop {
        let written: std::io::Result<usize> = with_worker(|w| {
            let mut slices = [std::io::IoSlice::new(&[]); IOVECS];
            let count = w.output_slices(id, &mut slices);
            if count == 0 {
                return Ok(0);
            }
            let slices = slices.get(..count).unwrap_or_default();
            // SAFETY: guaranteed by the caller.
            let n = unsafe { super::util::write_slices(c, slices)? };
            w.advance(id, n);
            Ok(n)
        });
        // SAFETY: guaranteed by the caller; nginx's connection fields are ours to set.
        unsafe {
            match written {
                Ok(0) => return Written::CaughtUp,
                Ok(n) => (*c).sent += n as i64,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    (*(*c).write).set_ready(0);
                    return Written::Blocked;
                }
                Err(e) => {
                    (*c).set_error(1);
                    return Written::Failed(e);
                }
            }
        }
    }
}

/// Key material comes from the kernel's CSPRNG.
fn os_random(buf: &mut [u8]) {
    let mut filled = 0;
    while filled < buf.len() {
        let Some(rest) = buf.get_mut(filled..) else {
            return;
        };
        // SAFETY: getrandom writes at most rest.len() bytes into rest.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n > 0 {
            filled += n as usize;
        } else if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            // Never happens on Linux >= 3.17 once booted; fall back rather than stall.
            random_bytes(rest);
            return;
        }
    }
}

/// How often deferred file work (segment deletions) is looked at when some is pending.
const HOUSEKEEPING_MS: u64 = 1000;

/// The worker-wide timer for deferred file work.
static mut HOUSEKEEPING: core::mem::MaybeUninit<ngx_event_t> = core::mem::MaybeUninit::zeroed();

pub extern "C" fn init_process(cycle: *mut ngx_cycle_t) -> ngx_int_t {
    guard("init_process", NGX_OK as ngx_int_t, || {
        // SAFETY: single-threaded worker start-up; the event lives for the process.
        unsafe {
            let ev = (*ptr::addr_of_mut!(HOUSEKEEPING)).as_mut_ptr();
            (*ev).handler = Some(housekeeping_handler);
            (*ev).log = (*cycle).log;
            (*ev).data = ptr::null_mut();
            // Pending deletions must not keep an exiting worker alive.
            (*ev).set_cancelable(1);
            ngx::ffi::ngx_add_timer(ev, HOUSEKEEPING_MS as ngx::ffi::ngx_msec_t);
            let tz = (*ngx::ffi::ngx_cached_time).gmtoff as i32;
            with_worker(|w| w.set_tz_offset(tz));
            super::filejobs::init_process(cycle);
            super::shm::init_process(cycle);
            super::exec::init_process(cycle);
        }
        NGX_OK as ngx_int_t
    })
}

extern "C" fn housekeeping_handler(ev: *mut ngx_event_t) {
    guard("housekeeping", (), || {
        let mut outcome = Outcome::default();
        let next = with_worker(|w| w.on_housekeeping(now_ms(), &mut outcome));
        // SAFETY: reads nginx's flag on the worker's thread.
        let exiting = unsafe { ngx::ffi::ngx_exiting } != 0;
        let servers = super::conf::servers();
        with_worker(|w| {
            if exiting {
                w.stop_static_pulls(now_ms(), &mut outcome);
            } else {
                w.keep_static_pulls(&servers, now_ms(), &mut outcome);
            }
            w.check_exec_pulls(&mut outcome);
        });
        super::conn::apply_outcome(outcome);
        super::exec::housekeeping();
        let delay = next.unwrap_or(HOUSEKEEPING_MS).clamp(1, HOUSEKEEPING_MS);
        // SAFETY: ev is our static housekeeping event.
        unsafe { ngx::ffi::ngx_add_timer(ev, delay as ngx::ffi::ngx_msec_t) };
    })
}

/// Logs lines that belong to no connection to the cycle's log.
pub(super) fn log_lines(lines: &[crate::server::LogLine]) {
    for line in lines {
        super::util::log_cycle(level_of(line.level), &line.text);
    }
}

pub(super) fn level_of(level: LogLevel) -> u32 {
    match level {
        LogLevel::Error => NGX_LOG_ERR,
        LogLevel::Warn => NGX_LOG_WARN,
        LogLevel::Notice => ngx::ffi::NGX_LOG_NOTICE,
        LogLevel::Info => NGX_LOG_INFO,
    }
}

/// One line with the worker's file IO figures (the slowest single operation, on the thread
/// pool unless nginx has no threads).
pub extern "C" fn exit_process(_cycle: *mut ngx_cycle_t) {
    guard("exit_process", (), || {
        super::exec::exit_process();
        super::shm::exit_process();
        super::netcall::exit_process();
        super::relay::exit_process();
        super::lowlatency::exit_process();
        let stats = with_worker(|w| w.io_stats());
        if stats.ops > 0 {
            super::util::log_cycle(
                ngx::ffi::NGX_LOG_NOTICE,
                &format!(
                    "rtmp: file output: {} operations, {} bytes, slowest {} us",
                    stats.ops,
                    stats.bytes,
                    stats.slowest.as_micros()
                ),
            );
        }
    })
}

pub(super) fn random_bytes(buf: &mut [u8]) {
    for chunk in buf.chunks_mut(4) {
        let r = ngx::ffi::ngx_random() as u32;
        for (dst, src) in chunk.iter_mut().zip(r.to_le_bytes()) {
            *dst = src;
        }
    }
}
