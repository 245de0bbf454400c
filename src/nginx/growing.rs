//! LL-DASH under `rtmp_low_latency on;`: a DASH media segment requested while only its growing
//! `<name>.part` exists is answered from that file (see [`crate::lowlatency::growing`]).
//!
//! The response has no length (chunked on HTTP/1.1, close-delimited on HTTP/1.0, DATA frames
//! on HTTP/2). The body is file buffers over the open `.part` (nginx's copy filter reads them
//! into its `output_buffers`, or sendfile sends them), so a response holds no more memory than
//! a static one, and nothing is read while the connection still has unsent output. The
//! worker's low-latency tick ([`super::lowlatency`]) steps every response: `fstat` of the open
//! file, new bytes out at once with a flush; a write event (the client took some) steps it
//! too. It ends cleanly once the final name is the same file and every byte was sent; an
//! abandoned or stalled file, or a worker that is exiting, aborts it (connection closed, reset
//! on HTTP/1.x, stream reset on HTTP/2), so a truncated segment never looks complete.

use core::ffi::c_void;
use core::ptr;
use std::cell::RefCell;
use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use ngx::ffi::{
    ngx_buf_t, ngx_chain_t, ngx_file_t, ngx_http_core_loc_conf_t, ngx_http_request_t, ngx_int_t,
    ngx_str_t, ngx_uint_t, NGX_ERROR, NGX_HTTP_FLUSH, NGX_HTTP_LAST, NGX_HTTP_VERSION_20,
    NGX_LOG_INFO, NGX_LOG_WARN, NGX_OK,
};

use super::util::{guard, log, now_ms};
use crate::lowlatency::growing::{part_path, Growing, Look, Step, Why};

/// One streaming response, from [`start`] until nginx frees its request (the cleanup frees
/// this; the file stays open until then, since nginx may still hold buffers over it).
struct GrowCtx {
    r: *mut ngx_http_request_t,
    file: File,
    dev: u64,
    ino: u64,
    path: PathBuf,
    part: PathBuf,
    growing: Growing,
    /// The one file buffer handed to nginx, reused once nginx is done with it.
    buf: *mut ngx_buf_t,
    send_timeout_ms: u64,
}

thread_local! {
    /// The responses being streamed, by request. An entry is removed before its request is
    /// finalized, and by the request's cleanup if nginx ends it first.
    static STREAMS: RefCell<HashMap<usize, *mut GrowCtx>> = RefCell::new(HashMap::new());
}

/// Responses being streamed in this worker.
pub(super) fn len() -> usize {
    STREAMS.with(|s| s.borrow().len())
}

/// Opens `<path>.part`, if it is there.
pub(super) fn open_part(path: &Path) -> Option<File> {
    File::open(part_path(path)).ok()
}

/// Answers `r` from the growing `file` (`<path>.part`): sends the header and registers the
/// response; the caller holds a reference on the request (`count`) and steps it (at once or
/// by a posted write event). `Err(rc)`: finalize the request with `rc` instead (HEAD: the
/// header is out; or an error).
///
/// # Safety
/// `r` is a live main request, not answered yet, without a request body.
pub(super) unsafe fn start(
    r: *mut ngx_http_request_t,
    path: PathBuf,
    file: File,
) -> Result<(), ngx_int_t> {
    let error = NGX_ERROR as ngx_int_t;
    let meta = file.metadata().map_err(|_| error)?;
    // SAFETY: r is live; the cleanup record, buffer and file struct come from its pool and
    // live as long as it.
    unsafe {
        let c = (*r).connection;
        let cln = ngx::ffi::ngx_http_cleanup_add(r, 0);
        if cln.is_null() {
            return Err(error);
        }
        let buf =
            ngx::ffi::ngx_pcalloc((*r).pool, core::mem::size_of::<ngx_buf_t>()) as *mut ngx_buf_t;
        let nf =
            ngx::ffi::ngx_pcalloc((*r).pool, core::mem::size_of::<ngx_file_t>()) as *mut ngx_file_t;
        if buf.is_null() || nf.is_null() {
            return Err(error);
        }
        let part = part_path(&path);
        let name = std::os::unix::ffi::OsStrExt::as_bytes(part.as_os_str());
        let name_copy = ngx::ffi::ngx_pnalloc((*r).pool, name.len().max(1)) as *mut u8;
        if name_copy.is_null() {
            return Err(error);
        }
        ptr::copy_nonoverlapping(name.as_ptr(), name_copy, name.len());
        (*nf).fd = file.as_raw_fd();
        (*nf).name = ngx_str_t {
            len: name.len(),
            data: name_copy,
        };
        (*nf).log = (*c).log;
        (*buf).file = nf;

        (*r).headers_out.status = 200;
        (*r).headers_out.content_length_n = -1;
        (*r).headers_out.last_modified_time = -1;
        if ngx::ffi::ngx_http_set_content_type(r) != NGX_OK as ngx_int_t {
            return Err(error);
        }
        let rc = ngx::ffi::ngx_http_send_header(r);
        if rc == error || rc > NGX_OK as ngx_int_t || (*r).header_only() != 0 {
            return Err(rc);
        }
        let send_timeout_ms = (*core_loc_conf(r)).send_timeout as u64;
        let ctx = Box::into_raw(Box::new(GrowCtx {
            r,
            file,
            dev: meta.dev(),
            ino: meta.ino(),
            path,
            part,
            growing: Growing::new(now_ms()),
            buf,
            send_timeout_ms,
        }));
        (*cln).data = ctx.cast();
        (*cln).handler = Some(cleanup);
        STREAMS.with(|s| s.borrow_mut().insert(r as usize, ctx));
        // A client that closes is noticed (499, then the cleanup).
        (*r).read_event_handler = Some(ngx::ffi::ngx_http_test_reading);
        (*r).write_event_handler = Some(write_event);
        Ok(())
    }
}

/// Steps the response of `r` now (it was just started).
///
/// # Safety
/// `r` is live.
pub(super) unsafe fn step_request(r: *mut ngx_http_request_t) {
    if let Some(ctx) = ctx_of(r) {
        // SAFETY: registered, so its request is live.
        unsafe { step(ctx, None) }
    }
}

fn ctx_of(r: *mut ngx_http_request_t) -> Option<*mut GrowCtx> {
    STREAMS.with(|s| s.borrow().get(&(r as usize)).copied())
}

/// The tick: every response once; all of them aborted when the worker is exiting.
pub(super) fn tick(exiting: bool) {
    let all: Vec<(usize, *mut GrowCtx)> =
        STREAMS.with(|s| s.borrow().iter().map(|(k, v)| (*k, *v)).collect());
    let mut cache = TickCache::default();
    for (key, ctx) in all {
        // One response's end can end others (an HTTP/2 connection): only those still here.
        if STREAMS.with(|s| s.borrow().get(&key).copied()) != Some(ctx) {
            continue;
        }
        // SAFETY: registered, so its request is live; the connection outlives the call that
        // may finalize the request (nginx runs posted requests the same way).
        unsafe {
            let c = (*(*ctx).r).connection;
            if exiting {
                abort(ctx, NGX_LOG_INFO, "the worker is exiting");
            } else {
                step(ctx, Some(&mut cache));
            }
            ngx::ffi::ngx_http_run_posted_requests(c);
        }
    }
}

/// `r->write_event_handler`: the client took some output (or the response was just started).
extern "C" fn write_event(r: *mut ngx_http_request_t) {
    guard("rtmp_low_latency write", (), || {
        let Some(ctx) = ctx_of(r) else {
            return;
        };
        // SAFETY: registered, so r is live.
        unsafe {
            let wev = (*(*r).connection).write;
            if (*wev).timedout() != 0 {
                // Only limit_rate's delay sets a timer on it.
                (*wev).set_timedout(0);
                (*wev).set_delayed(0);
            }
            step(ctx, None);
        }
    })
}

/// The connection still holds output (nginx's write filter, the copy filter, TLS, HTTP/2
/// flow control) or a file read is in flight.
///
/// # Safety
/// `r` is live.
unsafe fn busy(r: *mut ngx_http_request_t) -> bool {
    // SAFETY: guaranteed by the caller.
    unsafe {
        !(*r).out.is_null()
            || (*r).buffered() != 0
            || (*r).aio() != 0
            || (*(*r).connection).buffered() != 0
    }
}

/// What one tick saw, shared by the responses that look at the same file (many players
/// of one stream): each file is `fstat`ed and each name `stat`ed once per tick, not once per
/// response. Values are first seen in [`Look`]'s order by whichever response asks first, so
/// every response sees one consistent sequence of looks.
#[derive(Default)]
struct TickCache {
    /// (device, inode, asked after the final name) -> size.
    sizes: HashMap<(u64, u64, bool), Option<u64>>,
    /// Name -> (device, inode) of the file it names.
    names: HashMap<PathBuf, Option<(u64, u64)>>,
}

struct FdLook<'a> {
    file: &'a File,
    dev: u64,
    ino: u64,
    path: &'a Path,
    part: &'a Path,
    /// The final name was looked at: a size asked now must be newer than that look.
    after_final: bool,
    cache: Option<&'a mut TickCache>,
}

impl FdLook<'_> {
    fn is_ours(&mut self, which: bool) -> bool {
        let path = if which { self.path } else { self.part };
        let stat = || std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()));
        let named = match self.cache.as_deref_mut() {
            Some(cache) => match cache.names.get(path) {
                Some(v) => *v,
                None => *cache.names.entry(path.to_owned()).or_insert_with(stat),
            },
            None => stat(),
        };
        named == Some((self.dev, self.ino))
    }
}

impl Look for FdLook<'_> {
    fn size(&mut self) -> Option<u64> {
        let file = self.file;
        let fstat = || file.metadata().ok().map(|m| m.size());
        match self.cache.as_deref_mut() {
            Some(cache) => *cache
                .sizes
                .entry((self.dev, self.ino, self.after_final))
                .or_insert_with(fstat),
            None => fstat(),
        }
    }
    fn part_is_ours(&mut self) -> bool {
        self.is_ours(false)
    }
    fn final_is_ours(&mut self) -> bool {
        self.after_final = true;
        self.is_ours(true)
    }
}

/// One step of a response: push what nginx holds, send what is new, end or abort.
///
/// # Safety
/// `ctx` is registered and its request live; after an end or abort nothing of it is touched.
unsafe fn step(ctx: *mut GrowCtx, cache: Option<&mut TickCache>) {
    // SAFETY (whole fn): guaranteed by the caller.
    unsafe {
        let r = (*ctx).r;
        let wev = (*(*r).connection).write;
        let mut is_busy = busy(r);
        if is_busy && (*r).aio() == 0 {
            // A flush buffer, not a null chain: the postpone filter drops a null chain while
            // the write filter holds a short unflushed header without marking the connection.
            let rc = ngx::ffi::ngx_http_send_special(r, NGX_HTTP_FLUSH as ngx_uint_t);
            if rc == NGX_ERROR as ngx_int_t {
                abort(ctx, NGX_LOG_INFO, "writing to the client failed");
                return;
            }
            is_busy = busy(r);
        }
        let step = {
            let GrowCtx {
                file,
                dev,
                ino,
                path,
                part,
                growing,
                send_timeout_ms,
                ..
            } = &mut *ctx;
            let mut look = FdLook {
                file,
                dev: *dev,
                ino: *ino,
                path,
                part,
                after_final: false,
                cache,
            };
            growing.step(now_ms(), is_busy, *send_timeout_ms, &mut look)
        };
        match step {
            Step::Send { offset, len } => {
                let b = (*ctx).buf;
                (*b).pos = ptr::null_mut();
                (*b).last = ptr::null_mut();
                (*b).file_pos = offset as libc::off_t;
                (*b).file_last = (offset + len) as libc::off_t;
                (*b).set_in_file(1);
                (*b).set_flush(1);
                let mut out = ngx_chain_t {
                    buf: b,
                    next: ptr::null_mut(),
                };
                let rc = ngx::ffi::ngx_http_output_filter(r, &mut out);
                if rc == NGX_ERROR as ngx_int_t {
                    abort(ctx, NGX_LOG_INFO, "writing to the client failed");
                    return;
                }
                if busy(r) && ngx::ffi::ngx_handle_write_event(wev, 0) != NGX_OK as ngx_int_t {
                    abort(ctx, NGX_LOG_INFO, "writing to the client failed");
                }
            }
            Step::Wait => {
                if is_busy && ngx::ffi::ngx_handle_write_event(wev, 0) != NGX_OK as ngx_int_t {
                    abort(ctx, NGX_LOG_INFO, "writing to the client failed");
                }
            }
            Step::End => end(ctx),
            Step::Abort(why) => {
                let (level, text) = match why {
                    Why::Abandoned => (NGX_LOG_INFO, "the segment was abandoned"),
                    Why::Stalled => (NGX_LOG_WARN, "the file did not grow for 10 s"),
                    Why::Truncated => (NGX_LOG_WARN, "the file shrank or cannot be read"),
                    Why::ClientStuck => (NGX_LOG_INFO, "the client took nothing for send_timeout"),
                };
                abort(ctx, level, text);
            }
        }
    }
}

/// Ends the response cleanly: the last buffer (the chunked terminator, END_STREAM).
///
/// # Safety
/// `ctx` is registered and its request live; nothing of it is touched afterwards.
unsafe fn end(ctx: *mut GrowCtx) {
    // SAFETY (whole fn): guaranteed by the caller.
    unsafe {
        let r = (*ctx).r;
        forget(r);
        let rc = ngx::ffi::ngx_http_send_special(r, NGX_HTTP_LAST as ngx_uint_t);
        ngx::ffi::ngx_http_finalize_request(r, rc);
    }
}

/// Ends the response so that the client cannot take it for complete: the connection is
/// closed (reset, on HTTP/1.x, so that even a close-delimited body shows the cut), or the
/// HTTP/2 stream reset.
///
/// # Safety
/// `ctx` is registered and its request live; nothing of it is touched afterwards.
unsafe fn abort(ctx: *mut GrowCtx, level: u32, why: &str) {
    // SAFETY (whole fn): guaranteed by the caller.
    unsafe {
        let r = (*ctx).r;
        let c = (*r).connection;
        log(
            level,
            (*c).log,
            &format!(
                "rtmp_low_latency: {}: {why}; response aborted after {} bytes",
                (*ctx).part.display(),
                (*ctx).growing.sent()
            ),
        );
        forget(r);
        if (*r).http_version < NGX_HTTP_VERSION_20 as ngx_uint_t && (*r).stream.is_null() {
            let linger = libc::linger {
                l_onoff: 1,
                l_linger: 0,
            };
            // SAFETY: c->fd is the client's socket, open until nginx closes the connection.
            libc::setsockopt(
                (*c).fd,
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                ptr::addr_of!(linger).cast(),
                core::mem::size_of::<libc::linger>() as libc::socklen_t,
            );
        }
        (*r).set_keepalive(0);
        ngx::ffi::ngx_http_finalize_request(r, NGX_ERROR as ngx_int_t);
    }
}

fn forget(r: *mut ngx_http_request_t) {
    STREAMS.with(|s| s.borrow_mut().remove(&(r as usize)));
}

/// The request is being freed: forget it if it is still streaming, close the file.
unsafe extern "C" fn cleanup(data: *mut c_void) {
    guard("rtmp_low_latency cleanup", (), || {
        // SAFETY: data is the GrowCtx start registered with this cleanup, freed only here.
        unsafe {
            let ctx = data as *mut GrowCtx;
            let key = (*ctx).r as usize;
            STREAMS.with(|s| {
                let mut s = s.borrow_mut();
                if s.get(&key) == Some(&ctx) {
                    s.remove(&key);
                }
            });
            drop(Box::from_raw(ctx));
        }
    })
}

/// nginx's core location configuration of `r`.
///
/// # Safety
/// `r` is live.
unsafe fn core_loc_conf(r: *mut ngx_http_request_t) -> *mut ngx_http_core_loc_conf_t {
    // SAFETY: every location has the core module's conf at its ctx_index.
    unsafe {
        let index = ngx::ffi::ngx_http_core_module.ctx_index;
        *(*r).loc_conf.add(index) as *mut ngx_http_core_loc_conf_t
    }
}
