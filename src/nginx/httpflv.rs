//! HTTP-FLV playback (`flv_live on;`): the content handler of such a location, and the
//! request's life on nginx's event loop. The request becomes a client of this worker's
//! [`crate::server::Worker`] (see `server::httpflv`), which decides its answer (on_play,
//! allow/deny, the stream) and fills its live queue with FLV tags around the payloads every
//! player shares. Once the response header is out (through nginx's header filters, so the
//! operator's `add_header` applies), the body is written like an RTMP player's output:
//! vectored writes straight from the queue (chunked framing is part of the queued tags), a
//! bounded queue that skips ahead, and a drop after `timeout` behind.

use core::ffi::c_void;
use core::ptr;
use std::cell::RefCell;
use std::collections::HashMap;

use ngx::ffi::{
    ngx_del_timer, ngx_event_t, ngx_handle_write_event, ngx_http_core_loc_conf_t,
    ngx_http_request_t, ngx_int_t, ngx_log_t, ngx_post_event, ngx_posted_events, ngx_str_t,
    ngx_uint_t, NGX_DONE, NGX_ERROR, NGX_HTTP_BAD_REQUEST, NGX_HTTP_FLUSH, NGX_HTTP_GET,
    NGX_HTTP_HEAD, NGX_HTTP_INTERNAL_SERVER_ERROR, NGX_HTTP_NOT_ALLOWED, NGX_HTTP_NOT_FOUND,
    NGX_HTTP_OPTIONS, NGX_HTTP_VERSION_11, NGX_HTTP_VERSION_20, NGX_HTTP_VERSION_NOT_SUPPORTED,
    NGX_LOG_INFO, NGX_LOG_WARN, NGX_OK,
};

use super::util::{guard, log, now_ms, str_bytes};
use super::worker::{with_worker, write_queued, Written};
use crate::live::httpflv::parse_request;
use crate::server::{CloseMode, HttpFlvAnswer, HttpFlvPlay, Outcome};

/// One HTTP-FLV request of this worker, from the handler until the request is freed.
struct FlvCtx {
    id: u64,
    r: *mut ngx_http_request_t,
    /// The response header went out: the body is being written.
    streaming: bool,
    /// End once what is queued is written (`Some`), or at once when `discard`.
    closing: Option<String>,
    discard: bool,
    /// When the client last fell behind (socket full); cleared when the queue drains.
    behind_since: Option<u64>,
    /// A timer that does nothing but keep an exiting worker (quit, reload) alive while the
    /// response lasts, as an RTMP player's ping timer does: nginx ends a gracefully exiting
    /// worker once no timer but cancelable ones is left.
    hold: ngx_event_t,
    /// Set while new live media waits `play_flush_interval` to leave with what follows it
    /// (one write for several messages, as for RTMP players).
    flush: ngx_event_t,
}

/// Period of [`FlvCtx::hold`].
const HOLD_MS: ngx::ffi::ngx_msec_t = 60_000;

thread_local! {
    static REQUESTS: RefCell<HashMap<u64, *mut FlvCtx>> = RefCell::new(HashMap::new());
}

fn ctx_of(id: u64) -> Option<*mut FlvCtx> {
    REQUESTS.with(|m| m.borrow().get(&id).copied())
}

fn forget(id: u64) {
    REQUESTS.with(|m| m.borrow_mut().remove(&id));
}

/// The connection log of HTTP-FLV client `id`, if it is one.
pub(super) fn log_of(id: u64) -> Option<*mut ngx_log_t> {
    // SAFETY: requests in REQUESTS are live (their cleanup removes them).
    ctx_of(id).map(|ctx| unsafe { (*(*(*ctx).r).connection).log })
}

/// New output for HTTP-FLV client `id`: its write event runs. False if it is not one.
pub(super) fn wake(id: u64) -> bool {
    let Some(ctx) = ctx_of(id) else {
        return false;
    };
    // SAFETY: as in log_of; posting an event of a live connection.
    unsafe {
        let wev = (*(*(*ctx).r).connection).write;
        if (*wev).posted() == 0 && ((*wev).ready() != 0 || !(*ctx).streaming) {
            ngx_post_event(wev, ptr::addr_of_mut!(ngx_posted_events));
        }
    }
    true
}

/// New live media for HTTP-FLV client `id`: written after its application's
/// `play_flush_interval`, with what arrives meanwhile. False if it is not one.
pub(super) fn wake_media(id: u64) -> bool {
    let Some(ctx) = ctx_of(id) else {
        return false;
    };
    // SAFETY: as in log_of; the flush event is the ctx's own.
    unsafe {
        let wev = (*(*(*ctx).r).connection).write;
        if !(*ctx).streaming || (*wev).ready() == 0 || (*wev).posted() != 0 {
            return true; // its write event comes anyway
        }
        let flush_ev = ptr::addr_of_mut!((*ctx).flush);
        if (*flush_ev).timer_set() != 0 {
            return true;
        }
        match with_worker(|w| w.play_flush_interval_ms(id)) {
            0 => ngx_post_event(wev, ptr::addr_of_mut!(ngx_posted_events)),
            delay => ngx::ffi::ngx_add_timer(flush_ev, delay as ngx::ffi::ngx_msec_t),
        }
    }
    true
}

/// HTTP-FLV client `id` has timer work (`on_update`) in `delay` ms: its [`FlvCtx::hold`] timer
/// comes then if not sooner. False if it is not one.
pub(super) fn retick(id: u64, delay: u64) -> bool {
    let Some(ctx) = ctx_of(id) else {
        return false;
    };
    // SAFETY: as in log_of; the hold timer is the ctx's own.
    unsafe {
        let hold = ptr::addr_of_mut!((*ctx).hold);
        let due = ngx::ffi::ngx_current_msec + delay as ngx::ffi::ngx_msec_t;
        if (*hold).timer_set() == 0 || (*hold).timer.key > due {
            ngx::ffi::ngx_add_timer(hold, delay.clamp(1, HOLD_MS as u64) as ngx::ffi::ngx_msec_t);
        }
    }
    true
}

/// The worker closes HTTP-FLV client `id` (after its queue drains, or at once). False if it
/// is not one. The request ends from its own write event, never from inside the caller.
pub(super) fn close(id: u64, mode: CloseMode, reason: String) -> bool {
    let Some(ctx) = ctx_of(id) else {
        return false;
    };
    // SAFETY: as in log_of.
    unsafe {
        (*ctx).closing = Some(reason);
        if mode == CloseMode::Now {
            (*ctx).discard = true;
        }
        let wev = (*(*(*ctx).r).connection).write;
        if (*wev).posted() == 0 {
            ngx_post_event(wev, ptr::addr_of_mut!(ngx_posted_events));
        }
    }
    true
}

/// The content handler of a `flv_live on;` location:
/// `GET /live?app=<app>&stream=<name>[&port=<rtmp port>]`.
pub extern "C" fn handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    guard(
        "flv_live handler",
        NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t,
        // SAFETY: r is the live request nginx asks us to answer.
        || unsafe { start(r) },
    )
}

/// # Safety
/// `r` is a live main request in its content phase.
unsafe fn start(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY (whole fn): r and its connection are live.
    unsafe {
        let c = (*r).connection;
        let method = (*r).method;
        if method & NGX_HTTP_OPTIONS as ngx_uint_t != 0 {
            // CORS preflights: the operator's add_header lines go on this answer too.
            let _ = ngx::ffi::ngx_http_discard_request_body(r);
            (*r).headers_out.status = 204;
            (*r).headers_out.content_length_n = -1;
            let req = ngx::http::Request::from_ngx_http_request(r);
            req.add_header_out("Allow", "GET, HEAD, OPTIONS");
            (*r).set_header_only(1);
            return ngx::ffi::ngx_http_send_header(r);
        }
        if method & (NGX_HTTP_GET | NGX_HTTP_HEAD) as ngx_uint_t == 0 {
            return NGX_HTTP_NOT_ALLOWED as ngx_int_t;
        }
        let rc = ngx::ffi::ngx_http_discard_request_body(r);
        if rc != NGX_OK as ngx_int_t {
            return rc;
        }
        if (*r).http_version >= NGX_HTTP_VERSION_20 as ngx_uint_t {
            log(
                NGX_LOG_INFO,
                (*c).log,
                "flv: HTTP-FLV is served over HTTP/1.x only",
            );
            return NGX_HTTP_VERSION_NOT_SUPPORTED as ngx_int_t;
        }
        let args = String::from_utf8_lossy(str_bytes(&(*r).args)).into_owned();
        let req = match parse_request(&args) {
            Ok(req) => req,
            Err(e) => {
                log(NGX_LOG_INFO, (*c).log, &format!("flv: bad request: {e}"));
                return NGX_HTTP_BAD_REQUEST as ngx_int_t;
            }
        };
        let servers = super::conf::servers();
        let Some(server) = crate::server::pick_server(&servers, req.port) else {
            let why = format!("no rtmp server listens on port {}", req.port.unwrap_or(0));
            log(NGX_LOG_INFO, (*c).log, &format!("flv: {why}"));
            return NGX_HTTP_NOT_FOUND as ngx_int_t;
        };
        if method & NGX_HTTP_HEAD as ngx_uint_t != 0 {
            // HEAD: what a GET would start with, without playing.
            if !server.apps.iter().any(|a| a.name == req.app) {
                return NGX_HTTP_NOT_FOUND as ngx_int_t;
            }
            set_flv_headers(r);
            return ngx::ffi::ngx_http_send_header(r);
        }
        let clcf = core_loc_conf(r);
        let chunked = (*r).http_version >= NGX_HTTP_VERSION_11 as ngx_uint_t
            && (*clcf).chunked_transfer_encoding != 0;
        let id = (*c).number;
        if ctx_of(id).is_some() {
            return NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t;
        }
        let host = header_value((*r).headers_in.host);
        let host = if host.is_empty() {
            String::from_utf8_lossy(str_bytes(&(*r).headers_in.server)).into_owned()
        } else {
            host
        };
        let play = HttpFlvPlay {
            server,
            tc_url: format!("http://{host}/{}", req.app),
            page_url: header_value((*r).headers_in.referer),
            app: req.app,
            stream: req.stream,
            args,
            peer: super::util::sockaddr_ip((*c).sockaddr as *const libc::sockaddr),
            chunked,
        };
        let mut outcome = Outcome::default();
        let answer = with_worker(|w| w.http_flv_play(id, play, now_ms(), &mut outcome));
        if let HttpFlvAnswer::Refuse(code) = answer {
            super::conn::apply_outcome(outcome);
            return code as ngx_int_t;
        }
        let cln = ngx::ffi::ngx_http_cleanup_add(r, 0);
        if cln.is_null() {
            let mut outcome = Outcome::default();
            with_worker(|w| w.disconnect(id, now_ms(), &mut outcome));
            super::conn::apply_outcome(outcome);
            return NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t;
        }
        let ctx = Box::into_raw(Box::new(FlvCtx {
            id,
            r,
            streaming: false,
            closing: None,
            discard: false,
            behind_since: None,
            hold: core::mem::zeroed(),
            flush: core::mem::zeroed(),
        }));
        let flush_ev = ptr::addr_of_mut!((*ctx).flush);
        (*flush_ev).handler = Some(flush_handler);
        (*flush_ev).data = ctx.cast();
        (*flush_ev).log = (*c).log;
        // It only delays a write: it must not hold up a graceful exit.
        (*flush_ev).set_cancelable(1);
        let hold = ptr::addr_of_mut!((*ctx).hold);
        (*hold).handler = Some(hold_handler);
        (*hold).data = ctx.cast();
        (*hold).log = (*c).log;
        ngx::ffi::ngx_add_timer(hold, HOLD_MS);
        (*cln).handler = Some(cleanup);
        (*cln).data = ctx.cast();
        REQUESTS.with(|m| m.borrow_mut().insert(id, ctx));
        // The client's close shows as a read event; nginx then ends the request (cleanup).
        (*r).read_event_handler = Some(ngx::ffi::ngx_http_test_reading);
        (*r).write_event_handler = Some(write_event);
        let main = (*r).main;
        (*main).set_count((*main).count() + 1);
        super::conn::apply_outcome(outcome);
        if answer == HttpFlvAnswer::Stream {
            ngx_post_event((*c).write, ptr::addr_of_mut!(ngx_posted_events));
        }
        NGX_DONE as ngx_int_t
    }
}

/// `r->write_event_handler`: the answer came (on_play), new media, a close, or the socket
/// drained.
extern "C" fn write_event(r: *mut ngx_http_request_t) {
    guard("flv_live write", (), || {
        // SAFETY: r is a live request of ours (its cleanup forgets it before it is freed).
        unsafe {
            let c = (*r).connection;
            let Some(ctx) = ctx_of((*c).number).filter(|ctx| (**ctx).r == r) else {
                return;
            };
            let id = (*ctx).id;
            let wev = (*c).write;
            if (*wev).timedout() != 0 {
                (*wev).set_timedout(0);
                let behind = (*ctx)
                    .behind_since
                    .map_or(0, |t| now_ms().saturating_sub(t));
                log(
                    NGX_LOG_INFO,
                    (*c).log,
                    &format!("flv: client stayed {behind} ms behind the stream (timeout); dropped"),
                );
                finish(ctx, false);
                return;
            }
            if !(*ctx).streaming {
                match with_worker(|w| w.http_flv_answer(id)) {
                    HttpFlvAnswer::Wait => {
                        if (*ctx).closing.is_some() {
                            finish(ctx, false);
                        }
                    }
                    HttpFlvAnswer::Refuse(code) => {
                        forget(id);
                        ngx::ffi::ngx_http_finalize_request(r, code as ngx_int_t);
                    }
                    HttpFlvAnswer::Stream => send_header(ctx),
                }
                return;
            }
            flush(ctx);
        }
    })
}

/// Sends the 200 header and starts the body.
///
/// # Safety
/// `ctx` is registered and its request live.
unsafe fn send_header(ctx: *mut FlvCtx) {
    // SAFETY (whole fn): guaranteed by the caller.
    unsafe {
        let r = (*ctx).r;
        set_flv_headers(r);
        let rc = ngx::ffi::ngx_http_send_header(r);
        if rc == NGX_ERROR as ngx_int_t || rc > NGX_OK as ngx_int_t {
            finish(ctx, false);
            return;
        }
        let id = (*ctx).id;
        if with_worker(|w| w.http_flv_chunked(id)) != Some((*r).chunked() != 0) {
            // The tags were framed for the other transfer encoding: never send them so.
            log(
                NGX_LOG_WARN,
                (*(*r).connection).log,
                "flv: the response's transfer encoding is not the one predicted; closing",
            );
            finish(ctx, false);
            return;
        }
        (*ctx).streaming = true;
        // The header waits in nginx's write filter (it is short): push it out.
        if ngx::ffi::ngx_http_send_special(r, NGX_HTTP_FLUSH as ngx_uint_t)
            == NGX_ERROR as ngx_int_t
        {
            finish(ctx, false);
            return;
        }
        flush(ctx);
    }
}

/// Writes as much of the client's queue as the socket takes; ends the request when it is
/// closing and everything is out.
///
/// # Safety
/// `ctx` is registered and its request live.
unsafe fn flush(ctx: *mut FlvCtx) {
    // SAFETY (whole fn): guaranteed by the caller.
    unsafe {
        let r = (*ctx).r;
        let c = (*r).connection;
        let wev = (*c).write;
        let id = (*ctx).id;
        if (*ctx).discard {
            with_worker(|w| w.discard_output(id));
            finish(ctx, false);
            return;
        }
        // What nginx still holds of the header (in its write filter, or TLS's buffer) goes
        // first.
        if !(*r).out.is_null() || (*c).buffered() != 0 {
            let rc = if (*r).out.is_null() {
                ngx::ffi::ngx_http_send_special(r, NGX_HTTP_FLUSH as ngx_uint_t)
            } else {
                ngx::ffi::ngx_http_output_filter(r, ptr::null_mut())
            };
            if rc == NGX_ERROR as ngx_int_t {
                finish(ctx, false);
                return;
            }
            if !(*r).out.is_null() || (*c).buffered() != 0 {
                wait_for_socket(ctx);
                return;
            }
        }
        match write_queued(c, id) {
            Written::CaughtUp => {
                (*ctx).behind_since = None;
                if (*wev).timer_set() != 0 {
                    ngx_del_timer(wev);
                }
                if (*ctx).closing.is_some() {
                    finish(ctx, true);
                }
            }
            Written::Blocked => wait_for_socket(ctx),
            Written::Failed(e) => {
                log(NGX_LOG_INFO, (*c).log, &format!("flv: write failed: {e}"));
                finish(ctx, false);
            }
        }
    }
}

/// The socket is full: wait for its write event, and drop the client if it stays behind
/// for the server's `timeout`.
///
/// # Safety
/// `ctx` is registered and its request live.
unsafe fn wait_for_socket(ctx: *mut FlvCtx) {
    // SAFETY (whole fn): guaranteed by the caller.
    unsafe {
        let c = (*(*ctx).r).connection;
        let wev = (*c).write;
        if ngx_handle_write_event(wev, 0) != NGX_OK as ngx_int_t {
            finish(ctx, false);
            return;
        }
        let now = now_ms();
        let since = *(*ctx).behind_since.get_or_insert(now);
        if (*wev).timer_set() == 0 {
            let id = (*ctx).id;
            let timeout = with_worker(|w| w.write_timeout_ms(id));
            let left = (since + timeout).saturating_sub(now).max(1);
            ngx::ffi::ngx_add_timer(wev, left as ngx::ffi::ngx_msec_t);
        }
    }
}

/// Ends the request: `clean` after the whole body (a chunked response may then keep its
/// connection), else at once, closing the connection. The worker hears of it in
/// [`cleanup`].
///
/// # Safety
/// `ctx` is registered and its request live; nothing of the request is touched afterwards.
unsafe fn finish(ctx: *mut FlvCtx, clean: bool) {
    // SAFETY (whole fn): guaranteed by the caller.
    unsafe {
        let r = (*ctx).r;
        let c = (*r).connection;
        forget((*ctx).id);
        if (*(*c).write).timer_set() != 0 {
            ngx_del_timer((*c).write);
        }
        if let Some(reason) = (*ctx).closing.take() {
            log(
                NGX_LOG_INFO,
                (*c).log,
                &format!("flv: response ended: {reason}"),
            );
        }
        if clean {
            ngx::ffi::ngx_http_finalize_request(r, NGX_OK as ngx_int_t);
        } else {
            (*r).set_keepalive(0);
            ngx::ffi::ngx_http_finalize_request(r, NGX_ERROR as ngx_int_t);
        }
    }
}

/// The request is being freed (ended by us, by the client, or by nginx): the worker forgets
/// the client (on_play_done, /stat) and its queue.
extern "C" fn cleanup(data: *mut c_void) {
    guard("flv_live cleanup", (), || {
        // SAFETY: data is the FlvCtx the handler registered with this cleanup, freed only
        // here; the request is still live while its cleanups run.
        unsafe {
            let raw = data as *mut FlvCtx;
            let id = (*raw).id;
            if ctx_of(id) == Some(raw) {
                forget(id);
            }
            let c = (*(*raw).r).connection;
            if (*(*c).write).timer_set() != 0 {
                ngx_del_timer((*c).write);
            }
            // Linked into nginx's timer tree in place: unlinked before they are freed.
            for ev in [
                ptr::addr_of_mut!((*raw).hold),
                ptr::addr_of_mut!((*raw).flush),
            ] {
                if (*ev).timer_set() != 0 {
                    ngx_del_timer(ev);
                }
                if (*ev).posted() != 0 {
                    ngx::ffi::ngx_delete_posted_event(ev);
                }
            }
            drop(Box::from_raw(raw));
            let mut outcome = Outcome::default();
            with_worker(|w| w.disconnect(id, now_ms(), &mut outcome));
            super::conn::apply_outcome(outcome);
        }
    })
}

/// [`FlvCtx::hold`] ran out: the player's timer work (`on_update`) runs, and it starts over,
/// sooner if that work says so (the request's cleanup removes it).
extern "C" fn hold_handler(ev: *mut ngx_event_t) {
    guard("flv_live hold", (), || {
        // SAFETY: ev is the hold timer of a live FlvCtx (its cleanup unlinks it first).
        unsafe {
            let id = (*((*ev).data as *mut FlvCtx)).id;
            let mut outcome = Outcome::default();
            let next = with_worker(|w| w.http_flv_tick(id, now_ms(), &mut outcome));
            let delay = next.map_or(HOLD_MS, |n| {
                n.clamp(1, HOLD_MS as u64) as ngx::ffi::ngx_msec_t
            });
            ngx::ffi::ngx_add_timer(ev, delay);
            super::conn::apply_outcome(outcome);
        }
    })
}

/// [`FlvCtx::flush`]: the media gathered since [`wake_media`] goes out.
extern "C" fn flush_handler(ev: *mut ngx_event_t) {
    guard("flv_live flush", (), || {
        // SAFETY: ev is the flush timer of a live FlvCtx (its cleanup unlinks it first).
        unsafe {
            let ctx = (*ev).data as *mut FlvCtx;
            let wev = (*(*(*ctx).r).connection).write;
            // Not ready: the socket is full and its write event comes when it drains.
            if (*wev).ready() != 0 && (*wev).posted() == 0 {
                ngx_post_event(wev, ptr::addr_of_mut!(ngx_posted_events));
            }
        }
    })
}

/// Status 200, `Content-Type: video/x-flv`, no length (chunked on HTTP/1.1, else until the
/// connection closes).
///
/// # Safety
/// `r` is live and unanswered.
unsafe fn set_flv_headers(r: *mut ngx_http_request_t) {
    const TYPE: &str = "video/x-flv";
    // SAFETY: r is live; TYPE is static.
    unsafe {
        (*r).headers_out.status = 200;
        (*r).headers_out.content_length_n = -1;
        (*r).headers_out.content_type = ngx_str_t {
            len: TYPE.len(),
            data: TYPE.as_ptr() as *mut u8,
        };
        (*r).headers_out.content_type_len = TYPE.len();
    }
}

/// The value of a request header, or "".
///
/// # Safety
/// `h` is null or a live header of a live request.
unsafe fn header_value(h: *mut ngx::ffi::ngx_table_elt_t) -> String {
    if h.is_null() {
        return String::new();
    }
    // SAFETY: guaranteed by the caller.
    unsafe { String::from_utf8_lossy(str_bytes(&(*h).value)).into_owned() }
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
