//! Small helpers shared by the glue: panic containment, nginx strings, logging, time.

use core::ffi::c_char;
use std::panic::{catch_unwind, AssertUnwindSafe};

use ngx::ffi::{ngx_current_msec, ngx_cycle, ngx_log_t, ngx_str_t, NGX_LOG_ALERT};

/// `NGX_CONF_ERROR` is `(char *) -1` in C.
pub const CONF_ERROR: *mut c_char = usize::MAX as *mut c_char;
pub const CONF_OK: *mut c_char = core::ptr::null_mut();

/// Runs an FFI entry point's body and turns a panic into one `[alert]` line and `fallback`.
/// nginx's C frames must never see an unwind: it would abort the worker.
pub fn guard<T>(what: &str, fallback: T, body: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(value) => value,
        Err(payload) => {
            let reason = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            log_cycle(
                NGX_LOG_ALERT,
                &format!("rtmp: internal error in {what}: {reason}"),
            );
            fallback
        }
    }
}

/// Milliseconds of nginx's cached monotonic clock (updated once per event loop iteration).
pub fn now_ms() -> u64 {
    // SAFETY: nginx updates ngx_current_msec on the worker's only thread; we only read it.
    unsafe { ngx_current_msec as u64 }
}

/// Wall-clock Unix milliseconds of nginx's cached time.
pub fn unix_ms() -> u64 {
    let tp = ngx::ffi::ngx_timeofday();
    tp.sec as u64 * 1000 + tp.msec as u64
}

/// The bytes of an `ngx_str_t` (empty for a null pointer).
///
/// # Safety
/// `s.data` must point to `s.len` readable bytes that outlive the returned slice.
pub unsafe fn str_bytes<'a>(s: &ngx_str_t) -> &'a [u8] {
    if s.data.is_null() || s.len == 0 {
        &[]
    } else {
        // SAFETY: guaranteed by the caller.
        unsafe { core::slice::from_raw_parts(s.data, s.len) }
    }
}

/// Logs one line to `log` at `level` if the log's level lets it through.
pub fn log(level: u32, log: *mut ngx_log_t, message: &str) {
    if log.is_null() {
        return;
    }
    // SAFETY: `log` is a live nginx log object (a connection's or the cycle's).
    let enabled = unsafe { (*log).log_level } >= level as usize;
    if enabled {
        // SAFETY: "%*s" reads exactly `len` bytes from `ptr`, which `message` provides.
        unsafe {
            ngx::ffi::ngx_log_error_core(
                level as usize,
                log,
                0,
                c"%*s".as_ptr(),
                message.len(),
                message.as_ptr(),
            );
        }
    }
}

/// Whether an outgoing connection's non-blocking connect failed (its socket's `SO_ERROR`).
///
/// # Safety
/// `c` is a live connection with an open socket.
pub unsafe fn connect_error(c: *mut ngx::ffi::ngx_connection_t) -> Option<std::io::Error> {
    let mut err: libc::c_int = 0;
    let mut len = core::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: c->fd is the connection's socket; err and len are ours and big enough.
    let rc = unsafe {
        libc::getsockopt(
            (*c).fd,
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            core::ptr::addr_of_mut!(err).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        Some(std::io::Error::last_os_error())
    } else if err != 0 {
        Some(std::io::Error::from_raw_os_error(err))
    } else {
        None
    }
}

/// Logs to the current cycle's log (for events not tied to one connection).
pub fn log_cycle(level: u32, message: &str) {
    // SAFETY: ngx_cycle is set before any module code runs and stays valid for the process.
    let log_ptr = unsafe {
        if ngx_cycle.is_null() {
            return;
        }
        (*ngx_cycle).log
    };
    log(level, log_ptr, message);
}

/// Writes as much of `slices` as the connection takes now, over TLS when it has it: the bytes
/// taken, `WouldBlock` when the socket is full, another error when the connection failed.
///
/// # Safety
/// `c` is a live connection (handshaked, if TLS).
pub unsafe fn write_slices(
    c: *mut ngx::ffi::ngx_connection_t,
    slices: &[std::io::IoSlice<'_>],
) -> std::io::Result<usize> {
    // SAFETY: guaranteed by the caller; IoSlice has iovec's layout, and writev reads
    // slices.len() of them.
    unsafe {
        if !(*c).ssl.is_null() {
            return super::tls::write(c, slices);
        }
        let n = libc::writev((*c).fd, slices.as_ptr().cast(), slices.len() as i32);
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(n as usize)
    }
}

/// The IP address of a socket address, if it is IPv4 or IPv6.
///
/// # Safety
/// `sa` is null or points at a valid sockaddr.
pub unsafe fn sockaddr_ip(sa: *const libc::sockaddr) -> Option<std::net::IpAddr> {
    use std::net::IpAddr;
    // SAFETY: guaranteed by the caller; the family selects the concrete type.
    unsafe {
        if sa.is_null() {
            return None;
        }
        match (*sa).sa_family as i32 {
            libc::AF_INET => {
                let sin = &*(sa as *const libc::sockaddr_in);
                Some(IpAddr::from(
                    u32::from_be(sin.sin_addr.s_addr).to_be_bytes(),
                ))
            }
            libc::AF_INET6 => {
                let sin6 = &*(sa as *const libc::sockaddr_in6);
                Some(IpAddr::from(sin6.sin6_addr.s6_addr))
            }
            _ => None,
        }
    }
}

/// Sends `r`'s response header (status and type already set) with `body`'s length, then
/// `body`, copied into the request's pool, as the whole body through nginx's filters.
///
/// # Safety
/// `r` is a live request that has not been answered yet.
pub unsafe fn send_whole_body(
    r: *mut ngx::ffi::ngx_http_request_t,
    body: &[u8],
) -> ngx::ffi::ngx_int_t {
    use ngx::ffi::{ngx_int_t, NGX_ERROR, NGX_OK};
    // SAFETY: r is live; the buffer comes from its pool and lives as long as the request.
    unsafe {
        (*r).headers_out.content_length_n = body.len() as i64;
        let rc = ngx::ffi::ngx_http_send_header(r);
        if rc == NGX_ERROR as ngx_int_t || rc > NGX_OK as ngx_int_t || (*r).header_only() != 0 {
            return rc;
        }
        let b = ngx::ffi::ngx_create_temp_buf((*r).pool, body.len().max(1));
        if b.is_null() {
            return NGX_ERROR as ngx_int_t;
        }
        core::ptr::copy_nonoverlapping(body.as_ptr(), (*b).pos, body.len());
        (*b).last = (*b).pos.add(body.len());
        (*b).set_last_buf(1);
        (*b).set_last_in_chain(1);
        let mut out = ngx::ffi::ngx_chain_t {
            buf: b,
            next: core::ptr::null_mut(),
        };
        ngx::ffi::ngx_http_output_filter(r, &mut out)
    }
}
