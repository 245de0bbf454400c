//! `rtmp_low_latency on;`: the LL-HLS side of the http module. A content-phase handler that runs
//! before nginx's static handler in the locations where the flag is on:
//!
//! - a playlist request with `_HLS_msn` (and `_HLS_part`) that the playlist does not satisfy yet
//!   is parked (`r->main->count++`, `NGX_DONE`): no worker ever waits;
//! - a request for a missing part that is the playlist's preload hint is parked until it exists;
//! - a DASH media segment that is still being written (only `<name>.part` exists) is streamed
//!   from the growing file (`super::growing`, LL-DASH); one asked for a little before its
//!   `.part` exists is parked for up to a second;
//! - everything else (and every parked request once answered with the file as it now is) goes to
//!   nginx's static handler, so caching headers, gzip, `add_header` and the access log apply.
//!
//! One timer per worker, armed only while requests are parked or streamed, asks the pure
//! [`crate::lowlatency::park::Parked`] every [`TICK_MS`] which files changed; since the
//! segmenter replaces files by rename, this sees every write, whichever worker made it.
//! A client that goes away is noticed by nginx's `ngx_http_test_reading`; the request's cleanup
//! handler forgets it, so a freed request is never touched.

use core::ffi::c_void;
use core::ptr;
use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use ngx::ffi::{
    ngx_conf_t, ngx_event_t, ngx_http_conf_ctx_t, ngx_http_core_main_conf_t, ngx_http_handler_pt,
    ngx_http_phases_NGX_HTTP_CONTENT_PHASE, ngx_http_request_t, ngx_int_t, ngx_str_t, ngx_uint_t,
    NGX_DECLINED, NGX_DONE, NGX_ERROR, NGX_HTTP_GET, NGX_HTTP_HEAD, NGX_OK,
};

use super::util::{guard, log_cycle, now_ms, str_bytes};
use crate::lowlatency::growing::{is_growing_segment_name, EARLY_WAIT_MS};
use crate::lowlatency::names::parse_part_name;
use crate::lowlatency::park::{Id, Parked, Wake, Want, MAX_PARKED};
use crate::lowlatency::playlist::{decide, parse_playlist, Decision, PlaylistState};
use crate::lowlatency::query::{parse_query, LlQuery};
use crate::lowlatency::{delta::delta_update, FsProbe};

/// How often parked requests' files are looked at (only while some are parked).
pub const TICK_MS: u64 = 5;

thread_local! {
    static PARKED: RefCell<Parked> = RefCell::new(Parked::new());
    /// The parked requests themselves, by id. An entry is removed before its request is
    /// answered, and by the request's cleanup handler if nginx frees it first.
    static REQUESTS: RefCell<HashMap<Id, *mut ngx_http_request_t>> = RefCell::new(HashMap::new());
}

/// The worker's tick.
static mut TIMER: core::mem::MaybeUninit<ngx_event_t> = core::mem::MaybeUninit::zeroed();

/// A non-null marker set as this module's request context once a parked request is released:
/// the handler then declines, and the static handler answers.
static RELEASED: u8 = 1;

/// http postconfiguration: the handler joins the content phase. Modules' postconfigurations
/// run in module order and a phase's handlers run last-pushed first, so this dynamic module's
/// handler runs before the static, index and autoindex handlers.
///
/// # Safety
/// `cf` is the http block's configuration being finished.
pub(super) unsafe fn postconfiguration(cf: *mut ngx_conf_t) -> ngx_int_t {
    // SAFETY: cf->ctx is the http block's ngx_http_conf_ctx_t; the core module's main conf
    // holds the phase arrays, which nginx turns into the phase engine after this.
    unsafe {
        let ctx = (*cf).ctx as *mut ngx_http_conf_ctx_t;
        let index = ngx::ffi::ngx_http_core_module.ctx_index;
        let cmcf = *(*ctx).main_conf.add(index) as *mut ngx_http_core_main_conf_t;
        let phase = ngx_http_phases_NGX_HTTP_CONTENT_PHASE as usize;
        let Some(ph) = (*cmcf).phases.get_mut(phase) else {
            return NGX_ERROR as ngx_int_t;
        };
        let slot = ngx::ffi::ngx_array_push(&mut ph.handlers) as *mut ngx_http_handler_pt;
        if slot.is_null() {
            return NGX_ERROR as ngx_int_t;
        }
        *slot = Some(handler);
        NGX_OK as ngx_int_t
    }
}

/// The content-phase handler.
extern "C" fn handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    guard(
        "rtmp_low_latency handler",
        NGX_DECLINED as ngx_int_t,
        || {
            // SAFETY: r is the live request nginx runs the content phase for.
            unsafe { handle(r) }
        },
    )
}

/// # Safety
/// `r` is a live request in the content phase.
unsafe fn handle(r: *mut ngx_http_request_t) -> ngx_int_t {
    let declined = NGX_DECLINED as ngx_int_t;
    // SAFETY: r is live; its loc_conf, ctx, uri and args belong to it.
    unsafe {
        if super::http::loc_conf(r).low_latency != Some(true) || r != (*r).main {
            return declined;
        }
        let index = (*ptr::addr_of!(super::http::ngx_http_rtmp_rs_module)).ctx_index;
        if !(*(*r).ctx.add(index)).is_null() {
            return declined;
        }
        let get_or_head = (NGX_HTTP_GET | NGX_HTTP_HEAD) as ngx_uint_t;
        if (*r).method & get_or_head == 0 {
            return declined;
        }
        let uri = str_bytes(&(*r).uri);
        if uri.last() == Some(&b'/') {
            return declined;
        }
        let Ok(args) = core::str::from_utf8(str_bytes(&(*r).args)) else {
            return declined;
        };
        let name = uri.rsplit(|b| *b == b'/').next().unwrap_or_default();
        let Ok(name) = core::str::from_utf8(name) else {
            return declined;
        };
        if name.ends_with(".m3u8") {
            let q = match parse_query(args) {
                Ok(q) if q.is_empty() => return declined,
                Ok(q) => q,
                Err(_) => return 400,
            };
            let Some(path) = file_path(r) else {
                return declined;
            };
            return blocking_reload(r, q, path);
        }
        if !args.contains("_HLS_") {
            if let Some(part) = parse_part_name(name) {
                if let Some(path) = file_path(r) {
                    return hinted_part(r, name, &part, path);
                }
            } else if is_growing_segment_name(name) {
                if let Some(path) = file_path(r) {
                    return dash_segment(r, path);
                }
            }
        }
        declined
    }
}

/// The file the static handler would serve for `r` (root or alias + URI).
///
/// # Safety
/// `r` is a live request.
unsafe fn file_path(r: *mut ngx_http_request_t) -> Option<PathBuf> {
    let mut path = ngx_str_t {
        len: 0,
        data: ptr::null_mut(),
    };
    let mut root = 0usize;
    // SAFETY: r is live; nginx allocates `path` from r->pool and returns its last byte.
    unsafe {
        let last = ngx::ffi::ngx_http_map_uri_to_path(r, &mut path, &mut root, 0);
        if last.is_null() || path.data.is_null() || last < path.data {
            return None;
        }
        let len = last.offset_from(path.data) as usize;
        let bytes = core::slice::from_raw_parts(path.data, len);
        Some(PathBuf::from(OsStr::from_bytes(bytes)))
    }
}

fn read_playlist(path: &Path) -> Option<(String, PlaylistState)> {
    let text = std::fs::read_to_string(path).ok()?;
    let st = parse_playlist(&text)?;
    Some((text, st))
}

/// `_HLS_msn` / `_HLS_part` / `_HLS_skip` on a media playlist.
///
/// # Safety
/// `r` is a live request in the content phase.
unsafe fn blocking_reload(r: *mut ngx_http_request_t, q: LlQuery, path: PathBuf) -> ngx_int_t {
    let Some((text, st)) = read_playlist(&path) else {
        return NGX_DECLINED as ngx_int_t;
    };
    match decide(&q, &st) {
        Decision::TooFarAhead => 400,
        Decision::Ready => match q.skip.and_then(|s| delta_update(&text, &st, s)) {
            // SAFETY: r is live and unanswered.
            Some(body) => unsafe { send_playlist(r, body.as_bytes()) },
            None => NGX_DECLINED as ngx_int_t,
        },
        Decision::Wait => {
            let deadline = now_ms() + 3 * st.target_duration_ms;
            // SAFETY: r is live and unanswered.
            unsafe { park(r, path, Want::Playlist(q), deadline, 503) }
        }
    }
}

/// A request for a part file: served as is when it exists; parked when it is the playlist's
/// preload hint; 400 when it is later than the hint; otherwise the static 404.
///
/// # Safety
/// `r` is a live request in the content phase.
unsafe fn hinted_part(
    r: *mut ngx_http_request_t,
    name: &str,
    part: &crate::lowlatency::names::PartName,
    path: PathBuf,
) -> ngx_int_t {
    let declined = NGX_DECLINED as ngx_int_t;
    if std::fs::symlink_metadata(&path).is_ok() {
        return declined;
    }
    let Some((_, st)) = read_playlist(&path.with_file_name(part.playlist())) else {
        return declined;
    };
    let Some(hint) = st.hint.as_deref() else {
        return declined;
    };
    if st.endlist {
        return declined;
    }
    if hint == name {
        let deadline = now_ms() + 3 * st.target_duration_ms;
        // SAFETY: r is live and unanswered.
        return unsafe { park(r, path, Want::File, deadline, 404) };
    }
    match parse_part_name(hint) {
        Some(h) if h.stem == part.stem && h.track == part.track && part.t > h.t => 400,
        _ => declined,
    }
}

/// A DASH media segment: the file when it is whole (the static handler), else streamed from
/// its growing `.part`, else (a player a little early) parked until one of them appears.
///
/// # Safety
/// `r` is a live main request in the content phase.
unsafe fn dash_segment(r: *mut ngx_http_request_t, path: PathBuf) -> ngx_int_t {
    let declined = NGX_DECLINED as ngx_int_t;
    if std::fs::metadata(&path).is_ok() {
        return declined;
    }
    // SAFETY: r is live.
    unsafe {
        if (*r).headers_in.content_length_n > 0 || (*r).headers_in.chunked() != 0 {
            return declined;
        }
        let Some(file) = super::growing::open_part(&path) else {
            // Renamed in between: whole now.
            if std::fs::metadata(&path).is_ok() {
                return declined;
            }
            let deadline = now_ms() + EARLY_WAIT_MS;
            return park(r, path, Want::Segment, deadline, 404);
        };
        if held() >= MAX_PARKED {
            return 503;
        }
        if let Err(rc) = super::growing::start(r, path, file) {
            return rc;
        }
        let main = (*r).main;
        (*main).set_count((*main).count() + 1);
        // The first step right after this handler returns.
        let wev = (*(*r).connection).write;
        ngx::ffi::ngx_post_event(wev, ptr::addr_of_mut!(ngx::ffi::ngx_posted_events));
        arm_timer();
        NGX_DONE as ngx_int_t
    }
}

/// Requests this worker holds: parked and streaming (one cap for both).
fn held() -> usize {
    PARKED.with(|p| p.borrow().len()) + super::growing::len()
}

/// Parks `r` until the tick wakes it.
///
/// # Safety
/// `r` is a live main request in the content phase, not answered yet.
unsafe fn park(
    r: *mut ngx_http_request_t,
    path: PathBuf,
    want: Want,
    deadline: u64,
    timeout_status: u16,
) -> ngx_int_t {
    // SAFETY: r is live; the cleanup record comes from its pool and lives as long as it.
    unsafe {
        // A request with a body is not held (its body would have to be read or discarded).
        if (*r).headers_in.content_length_n > 0 || (*r).headers_in.chunked() != 0 {
            return NGX_DECLINED as ngx_int_t;
        }
        if held() >= MAX_PARKED {
            return 503;
        }
        let cln = ngx::ffi::ngx_http_cleanup_add(r, core::mem::size_of::<Id>());
        if cln.is_null() {
            return NGX_ERROR as ngx_int_t;
        }
        let parked = PARKED.with(|p| p.borrow_mut().park(path, want, deadline, timeout_status));
        let Ok(id) = parked else {
            return 503;
        };
        REQUESTS.with(|m| m.borrow_mut().insert(id, r));
        ((*cln).data as *mut Id).write_unaligned(id);
        (*cln).handler = Some(cleanup);
        let main = (*r).main;
        (*main).set_count((*main).count() + 1);
        // A client that closes is noticed (499, then the cleanup); nothing else wakes it.
        (*r).read_event_handler = Some(ngx::ffi::ngx_http_test_reading);
        (*r).write_event_handler = Some(ngx::ffi::ngx_http_request_empty_handler);
        arm_timer();
        NGX_DONE as ngx_int_t
    }
}

/// The request's cleanup (nginx terminates or frees it): forget it if it is still parked.
unsafe extern "C" fn cleanup(data: *mut c_void) {
    guard("rtmp_low_latency cleanup", (), || {
        // SAFETY: data is the Id written by park into the cleanup record.
        let id = unsafe { (data as *const Id).read_unaligned() };
        if REQUESTS.with(|m| m.borrow_mut().remove(&id)).is_some() {
            PARKED.with(|p| p.borrow_mut().remove(id));
        }
    })
}

fn timer() -> *mut ngx_event_t {
    // SAFETY: only the worker's thread touches the timer event.
    unsafe { (*ptr::addr_of_mut!(TIMER)).as_mut_ptr() }
}

fn arm_timer() {
    let ev = timer();
    // SAFETY: the event lives for the process; nginx's timer tree is the worker's.
    unsafe {
        if (*ev).handler.is_none() {
            (*ev).handler = Some(tick);
            (*ev).log = (*ngx::ffi::ngx_cycle).log;
            (*ev).data = ptr::null_mut();
        }
        if (*ev).timer_set() == 0 {
            // Not cancelable: a worker that is shutting down waits for the tick that answers
            // the parked requests.
            ngx::ffi::ngx_add_timer(ev, TICK_MS as ngx::ffi::ngx_msec_t);
        }
    }
}

extern "C" fn tick(_ev: *mut ngx_event_t) {
    guard("rtmp_low_latency tick", (), || {
        // SAFETY: reads nginx's flags on the worker's thread.
        let exiting = unsafe { ngx::ffi::ngx_exiting != 0 || ngx::ffi::ngx_quit != 0 };
        let wakes = PARKED.with(|p| {
            let mut p = p.borrow_mut();
            if exiting {
                p.release_all()
            } else {
                p.tick(now_ms(), &mut FsProbe)
            }
        });
        for (id, wake) in wakes {
            wake_one(id, wake);
        }
        super::growing::tick(exiting);
        if held() > 0 {
            arm_timer();
        }
    })
}

/// Answers one woken request (if nginx has not freed it meanwhile).
fn wake_one(id: Id, wake: Wake) {
    let Some(r) = REQUESTS.with(|m| m.borrow_mut().remove(&id)) else {
        return;
    };
    // SAFETY: r was parked and its cleanup has not run (it would have removed the entry), so
    // it is live; it is answered once, here, and nothing of it is used after finalizing.
    unsafe {
        let c = (*r).connection;
        (*r).read_event_handler = Some(ngx::ffi::ngx_http_block_reading);
        match wake {
            Wake::Static => release(r),
            Wake::Grow => {
                let started = file_path(r)
                    .and_then(|path| super::growing::open_part(&path).map(|f| (path, f)));
                match started {
                    Some((path, file)) => match super::growing::start(r, path, file) {
                        Ok(()) => super::growing::step_request(r),
                        Err(rc) => ngx::ffi::ngx_http_finalize_request(r, rc),
                    },
                    // Renamed (or abandoned) in between: the static handler.
                    None => release(r),
                }
            }
            Wake::Body(text) => {
                let rc = send_playlist(r, text.as_bytes());
                ngx::ffi::ngx_http_finalize_request(r, rc);
            }
            Wake::Status(status) => {
                ngx::ffi::ngx_http_finalize_request(r, status as ngx_int_t);
            }
        }
        ngx::ffi::ngx_http_run_posted_requests(c);
    }
}

/// Hands a woken request to nginx's static handler (this handler declines it now).
///
/// # Safety
/// `r` is a live request that was parked (its reference is handed on).
unsafe fn release(r: *mut ngx_http_request_t) {
    // SAFETY: guaranteed by the caller.
    unsafe {
        let index = (*ptr::addr_of!(super::http::ngx_http_rtmp_rs_module)).ctx_index;
        *(*r).ctx.add(index) = ptr::addr_of!(RELEASED) as *mut c_void;
        (*r).write_event_handler = Some(ngx::ffi::ngx_http_core_run_phases);
        ngx::ffi::ngx_http_core_run_phases(r);
    }
}

/// Sends `body` as the playlist (a delta update): 200, the location's type for the URI's
/// extension, through the header and body filters (`add_header`, gzip).
///
/// # Safety
/// `r` is a live request that has not been answered yet.
unsafe fn send_playlist(r: *mut ngx_http_request_t, body: &[u8]) -> ngx_int_t {
    // SAFETY: r is live; the buffer comes from its pool and lives as long as the request.
    unsafe {
        let rc = ngx::ffi::ngx_http_discard_request_body(r);
        if rc != NGX_OK as ngx_int_t {
            return rc;
        }
        (*r).headers_out.status = 200;
        if ngx::ffi::ngx_http_set_content_type(r) != NGX_OK as ngx_int_t {
            return NGX_ERROR as ngx_int_t;
        }
        super::util::send_whole_body(r, body)
    }
}

/// At worker exit: how many requests were still parked (they are answered by then, unless the
/// worker was told to stop at once).
pub(super) fn exit_process() {
    let left = PARKED.with(|p| p.borrow().len());
    let streaming = super::growing::len();
    if left + streaming > 0 {
        log_cycle(
            ngx::ffi::NGX_LOG_NOTICE,
            &format!(
                "rtmp_low_latency: {left} parked and {streaming} streaming requests left at exit"
            ),
        );
    }
}
