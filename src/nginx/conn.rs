//! RTMP connections on nginx's event loop: accept (TLS handshake first on `ssl` listeners),
//! read, write (writev of shared payloads), timers and close. The per-process worker
//! (`super::worker`) holds all protocol state; this file owns only the mapping from client ids
//! to nginx connections.

use core::ptr;
use std::cell::RefCell;
use std::collections::HashMap;
use std::net::IpAddr;

use ngx::ffi::{
    ngx_close_connection, ngx_connection_t, ngx_del_timer, ngx_destroy_pool, ngx_event_t,
    ngx_handle_read_event, ngx_handle_write_event, ngx_int_t, ngx_log_t, ngx_post_event,
    ngx_posted_events, NGX_AGAIN, NGX_LOG_INFO, NGX_OK,
};

use super::conf::ListenCtx;
use super::util::{guard, log, now_ms};
use super::worker::{level_of, random_bytes, with_worker, write_queued, Written};
use crate::server::{CloseMode, Outcome};

/// Bytes read per recv call; the session copies what it keeps, so one buffer serves all.
const READ_CHUNK: usize = 64 * 1024;
/// Reads per read event before yielding to other connections (fairness under a flood).
const READS_PER_EVENT: usize = 16;
/// A publisher's socket wakes the worker only once this much input is waiting (SO_RCVLOWAT):
/// encoders send a TCP segment per chunk, and one wake-up per segment costs more CPU than
/// the media it carries.
const PUBLISHER_RCVLOWAT: i32 = 16 * 1024;
/// ...and whatever is waiting below that is read this often (the most added ingest delay).
/// Measured (worker CPU per publisher-second, 1 / 8 / 32 publishers of 2.5 Mbit/s): 20 ms
/// cost 55 % more than no batching with one publisher; 50 ms costs 22 / 13 / 44 % less.
const PUBLISHER_READ_INTERVAL_MS: ngx::ffi::ngx_msec_t = 50;

type EventHandler = extern "C" fn(*mut ngx_event_t);

/// Per-connection state kept in `c->data`.
struct ConnCtx {
    id: u64,
    /// Our periodic timer (pings, idle publisher, handshake deadline).
    tick: ngx_event_t,
    /// Set while new live media waits `play_flush_interval` to be written with what follows.
    flush: ngx_event_t,
    /// A publisher's periodic read of input below [`PUBLISHER_RCVLOWAT`].
    pull: ngx_event_t,
    /// Close once the output queue has drained (after a final status message).
    closing: Option<String>,
    /// When the client last fell behind: output pending and the socket full. Cleared only when
    /// the queue drains completely, so a player that trickles a little now and then but never
    /// catches up is still dropped after `timeout`.
    behind_since: Option<u64>,
}

thread_local! {
    static CONNS: RefCell<HashMap<u64, *mut ngx_connection_t>> = RefCell::new(HashMap::new());
    static READ_BUF: RefCell<Vec<u8>> = RefCell::new(vec![0; READ_CHUNK]);
}

/// The peer's IP address from an accepted connection.
unsafe fn peer_ip(c: *mut ngx_connection_t) -> Option<IpAddr> {
    // SAFETY: c->sockaddr points at c->socklen bytes of the peer's address (or is null).
    unsafe { super::util::sockaddr_ip((*c).sockaddr as *const libc::sockaddr) }
}

/// `ls->handler`: a new TCP connection on one of our listening sockets. On an `ssl` listener
/// the TLS handshake comes first ([`tls_done`] then starts the session).
pub extern "C" fn init_connection(c: *mut ngx_connection_t) {
    guard("init_connection", (), || {
        // SAFETY: nginx hands us a freshly accepted connection with its own pool; our ListenCtx
        // was stored in ls->servers when the socket was created and lives as long as the cycle.
        unsafe {
            let listen = &*((*(*c).listening).servers as *const ListenCtx);
            if listen.ssl.is_null() {
                start_session(c, None);
            } else {
                super::tls::start(c, listen.ssl, listen.handshake_timeout_ms, tls_done);
            }
        }
    })
}

/// The TLS handshake of a new connection is over: an RTMP session starts, or the connection
/// closes (failed, timed out, or not TLS at all), with one info line and nothing else touched.
unsafe extern "C" fn tls_done(c: *mut ngx_connection_t) {
    guard("tls handshake", (), || {
        // SAFETY: c is the live connection whose handshake this was; nothing of ours is
        // attached to it yet, so closing it here frees everything.
        unsafe {
            if super::tls::handshaked(c) {
                let tls = super::tls::describe(c);
                start_session(c, Some(tls));
                return;
            }
            let why = if (*(*c).read).timedout() != 0 {
                "TLS handshake timed out"
            } else {
                "TLS handshake failed"
            };
            log(
                NGX_LOG_INFO,
                (*c).log,
                &format!(
                    "rtmp: client {} closed: {why}",
                    String::from_utf8_lossy(super::util::str_bytes(&(*c).addr_text))
                ),
            );
            super::tls::shutdown(c);
            let pool = (*c).pool;
            ngx_close_connection(c);
            ngx_destroy_pool(pool);
        }
    })
}

/// Starts the RTMP session of a new connection (after its TLS handshake on an `ssl` listener:
/// `tls` then says which version and SNI name, for the log, /stat and the access log).
///
/// # Safety
/// `c` is a live connection of one of our listeners with nothing of ours attached yet.
unsafe fn start_session(c: *mut ngx_connection_t, tls: Option<crate::server::TlsInfo>) {
    {
        // SAFETY: as in init_connection.
        unsafe {
            let listen = &*((*(*c).listening).servers as *const ListenCtx);
            let id = (*c).number;
            let ctx = Box::into_raw(Box::new(ConnCtx {
                id,
                tick: core::mem::zeroed(),
                flush: core::mem::zeroed(),
                pull: core::mem::zeroed(),
                closing: None,
                behind_since: None,
            }));
            // flush and pull only delay a write or a read: they must not hold up a graceful
            // shutdown, so they are cancelable.
            for (ev, handler, cancelable) in [
                (
                    ptr::addr_of_mut!((*ctx).tick),
                    tick_handler as EventHandler,
                    false,
                ),
                (ptr::addr_of_mut!((*ctx).flush), flush_handler, true),
                (ptr::addr_of_mut!((*ctx).pull), pull_handler, true),
            ] {
                (*ev).data = c.cast();
                (*ev).log = (*c).log;
                (*ev).handler = Some(handler);
                (*ev).set_cancelable(u32::from(cancelable));
            }
            (*c).data = ctx.cast();
            (*(*c).log).connection = (*c).number;
            // Resets and timeouts of clients are routine: info, as nginx logs them elsewhere.
            (*c).set_log_error(ngx::ffi::ngx_connection_log_error_e_NGX_ERROR_INFO);
            (*(*c).read).handler = Some(read_handler);
            (*(*c).write).handler = Some(write_handler);

            let peer = peer_ip(c);
            let now = now_ms();
            let over = tls.as_ref().map_or(String::new(), |t| match &t.sni {
                Some(sni) => format!(" over {}, SNI {sni}", t.version),
                None => format!(" over {}", t.version),
            });
            let first_tick = with_worker(|w| {
                let first_tick = w.connect(id, peer, listen.server.clone(), now, &mut random_bytes);
                if let Some(tls) = tls {
                    w.set_client_tls(id, tls);
                }
                first_tick
            });
            CONNS.with(|m| {
                let mut m = m.borrow_mut();
                m.insert(id, c);
                super::shm::set_connection_count(m.len());
            });
            log(
                NGX_LOG_INFO,
                (*c).log,
                &format!(
                    "rtmp: client {} connected to {}{over}",
                    String::from_utf8_lossy(super::util::str_bytes(&(*c).addr_text)),
                    String::from_utf8_lossy(super::util::str_bytes(&(*(*c).listening).addr_text)),
                ),
            );
            ngx::ffi::ngx_add_timer(
                ptr::addr_of_mut!((*ctx).tick),
                first_tick as ngx::ffi::ngx_msec_t,
            );

            // After a TLS handshake, data may already wait decrypted inside OpenSSL.
            if (*(*c).read).ready() != 0 || !(*c).ssl.is_null() {
                read_handler((*c).read);
            } else if ngx_handle_read_event((*c).read, 0) != NGX_OK as ngx_int_t {
                close(c, "cannot register read event");
            }
        }
    }
}

extern "C" fn read_handler(rev: *mut ngx_event_t) {
    guard("read_handler", (), || {
        // SAFETY: rev->data is the connection this event belongs to; ctx is live until close().
        unsafe {
            let c = (*rev).data as *mut ngx_connection_t;
            let ctx = &mut *((*c).data as *mut ConnCtx);
            let id = ctx.id;
            let mut outcome = Outcome::default();
            let mut reads = 0;
            loop {
                if reads == READS_PER_EVENT {
                    // Let other connections run; come back on the next loop iteration.
                    ngx_post_event(rev, ptr::addr_of_mut!(ngx_posted_events));
                    break;
                }
                reads += 1;
                let n = READ_BUF.with(|b| {
                    let mut b = b.borrow_mut();
                    // nginx always sets c->recv; without it the connection can only close.
                    let Some(recv) = (*c).recv else {
                        return ngx::ffi::NGX_ERROR as isize;
                    };
                    let n = recv(c, b.as_mut_ptr(), b.len());
                    // recv returns at most b.len() bytes.
                    if let Some(data) = usize::try_from(n).ok().and_then(|n| b.get(..n)) {
                        if !data.is_empty() {
                            with_worker(|w| w.on_input(id, data, now_ms(), &mut outcome));
                        }
                    }
                    n
                });
                if n == NGX_AGAIN as isize {
                    break;
                }
                if n <= 0 {
                    // 0: the peer closed; NGX_ERROR: recv already logged the reason.
                    finish_outcome(c, id, outcome);
                    if !CONNS.with(|m| m.borrow().contains_key(&id)) {
                        return;
                    }
                    close(
                        c,
                        if n == 0 {
                            "client closed the connection"
                        } else {
                            "read error"
                        },
                    );
                    return;
                }
                if outcome.closes(id) {
                    break;
                }
            }
            if !finish_outcome(c, id, outcome) {
                return;
            }
            if ngx_handle_read_event(rev, 0) != NGX_OK as ngx_int_t {
                close(c, "cannot register read event");
            }
        }
    })
}

extern "C" fn write_handler(wev: *mut ngx_event_t) {
    guard("write_handler", (), || {
        // SAFETY: wev->data is the connection this event belongs to.
        unsafe {
            let c = (*wev).data as *mut ngx_connection_t;
            if (*wev).timedout() != 0 {
                (*wev).set_timedout(0);
                let ctx = &*((*c).data as *const ConnCtx);
                let behind = ctx.behind_since.map_or(0, |t| now_ms().saturating_sub(t));
                close(
                    c,
                    &format!("client stayed {behind} ms behind the stream (timeout); dropped"),
                );
                return;
            }
            flush(c);
        }
    })
}

extern "C" fn tick_handler(ev: *mut ngx_event_t) {
    guard("tick_handler", (), || {
        // SAFETY: ev is the tick event embedded in the connection's ConnCtx.
        unsafe {
            let c = (*ev).data as *mut ngx_connection_t;
            let ctx = &mut *((*c).data as *mut ConnCtx);
            let id = ctx.id;
            let mut outcome = Outcome::default();
            let next = with_worker(|w| w.on_tick(id, now_ms(), &mut outcome));
            if !finish_outcome(c, id, outcome) {
                return;
            }
            if let Some(delay) = next {
                ngx::ffi::ngx_add_timer(ev, delay.max(1) as ngx::ffi::ngx_msec_t);
            }
        }
    })
}

extern "C" fn flush_handler(ev: *mut ngx_event_t) {
    guard("flush_handler", (), || {
        // SAFETY: ev is the flush event embedded in the ConnCtx of the live connection in
        // ev->data (close() unlinks it before freeing).
        unsafe {
            let c = (*ev).data as *mut ngx_connection_t;
            // Not ready: the socket is full and its write event will flush when it drains.
            if (*(*c).write).ready() != 0 {
                flush(c);
            }
        }
    })
}

extern "C" fn pull_handler(ev: *mut ngx_event_t) {
    guard("pull_handler", (), || {
        // SAFETY: ev is the pull event embedded in the ConnCtx of the live connection in
        // ev->data (close() unlinks it before freeing).
        unsafe {
            let c = (*ev).data as *mut ngx_connection_t;
            let id = (*((*c).data as *const ConnCtx)).id;
            let rev = (*c).read;
            // Below SO_RCVLOWAT no read event comes: say there may be input, as epoll would,
            // so c->recv really reads (it returns NGX_AGAIN at once when nothing is there).
            (*rev).set_ready(1);
            (*rev).available = -1;
            read_handler(rev);
            if conn_of(id).is_some() {
                ngx::ffi::ngx_add_timer(ev, PUBLISHER_READ_INTERVAL_MS);
            }
        }
    })
}

/// A client started publishing: from now on its socket wakes the worker per
/// [`PUBLISHER_RCVLOWAT`] bytes, and the rest is read every [`PUBLISHER_READ_INTERVAL_MS`].
unsafe fn batch_reads(c: *mut ngx_connection_t) {
    // SAFETY (whole fn): c is a live connection of ours; setsockopt gets a valid int.
    unsafe {
        let ctx = &mut *((*c).data as *mut ConnCtx);
        let pull = ptr::addr_of_mut!(ctx.pull);
        if (*pull).timer_set() != 0 {
            return;
        }
        let lowat = PUBLISHER_RCVLOWAT;
        let rc = libc::setsockopt(
            (*c).fd,
            libc::SOL_SOCKET,
            libc::SO_RCVLOWAT,
            ptr::addr_of!(lowat).cast(),
            core::mem::size_of::<i32>() as libc::socklen_t,
        );
        // Unix sockets and old kernels may refuse it: then reads stay as they were.
        if rc == 0 {
            ngx::ffi::ngx_add_timer(pull, PUBLISHER_READ_INTERVAL_MS);
        }
    }
}

/// Applies what the worker asked for: log lines, wake-ups of other clients, closes.
/// Returns false if `c` itself was closed (the caller must not touch it any more).
unsafe fn finish_outcome(c: *mut ngx_connection_t, self_id: u64, outcome: Outcome) -> bool {
    // SAFETY: c is live on entry.
    unsafe {
        dispatch(Some(self_id), (*c).log, outcome);
        flush(c)
    }
}

/// Applies an outcome that no connection's handler is running for (a callback's answer).
pub(super) fn apply_outcome(outcome: Outcome) {
    // SAFETY: ngx_cycle is live in a worker; dispatch only touches live connections.
    unsafe { dispatch(None, (*ngx::ffi::ngx_cycle).log, outcome) }
}

/// Logs, closes and wakes what `outcome` names (except flushing `self_id`, which the caller
/// does), and starts its HTTP callbacks.
unsafe fn dispatch(self_id: Option<u64>, fallback_log: *mut ngx_log_t, outcome: Outcome) {
    // SAFETY (whole fn): connections found in CONNS are live.
    unsafe {
        for line in &outcome.logs {
            let level = level_of(line.level);
            let target: *mut ngx_log_t = match line.client.and_then(conn_of) {
                Some(other) => (*other).log,
                None => line
                    .client
                    .and_then(super::httpflv::log_of)
                    .unwrap_or(fallback_log),
            };
            log(level, target, &line.text);
        }
        for (id, mode, reason) in outcome.close {
            let Some(other) = conn_of(id) else {
                super::httpflv::close(id, mode, reason);
                continue;
            };
            let octx = &mut *((*other).data as *mut ConnCtx);
            octx.closing = Some(reason);
            if matches!(mode, CloseMode::Now) {
                with_worker(|w| w.discard_output(id));
            }
            if Some(id) != self_id {
                ngx_post_event((*other).write, ptr::addr_of_mut!(ngx_posted_events));
            }
        }
        for id in outcome.wake {
            if Some(id) == self_id {
                continue;
            }
            if let Some(other) = conn_of(id) {
                let wev = (*other).write;
                if (*wev).ready() != 0 && (*wev).posted() == 0 {
                    ngx_post_event(wev, ptr::addr_of_mut!(ngx_posted_events));
                }
            } else if !super::httpflv::wake(id) {
                super::relay::wake(id);
            }
        }
        for id in outcome.batch_reads {
            if let Some(c) = conn_of(id) {
                batch_reads(c);
            }
        }
        for id in outcome.wake_media {
            if Some(id) != self_id {
                if let Some(other) = conn_of(id) {
                    wake_for_media(id, other);
                } else if !super::httpflv::wake_media(id) {
                    super::relay::wake(id);
                }
            }
        }
        for (id, delay) in outcome.retick {
            if super::httpflv::retick(id, delay) {
                continue;
            }
            if let Some(other) = conn_of(id) {
                let octx = &mut *((*other).data as *mut ConnCtx);
                let tick = ptr::addr_of_mut!(octx.tick);
                let due = ngx::ffi::ngx_current_msec + delay as ngx::ffi::ngx_msec_t;
                if (*tick).timer_set() == 0 || (*tick).timer.key > due {
                    ngx::ffi::ngx_add_timer(tick, delay.max(1) as ngx::ffi::ngx_msec_t);
                }
            }
        }
        super::logfile::write(outcome.access);
        super::netcall::start_all(outcome.calls);
        super::exec::run_all(outcome.execs);
        super::relay::run_all(outcome.relays);
    }
}

/// A player got live media: write it after its `play_flush_interval`, so the messages that
/// arrive meanwhile leave in the same writev (at once when the interval is 0).
unsafe fn wake_for_media(id: u64, c: *mut ngx_connection_t) {
    // SAFETY (whole fn): c is a live connection of ours.
    unsafe {
        let wev = (*c).write;
        if (*wev).ready() == 0 || (*wev).posted() != 0 {
            return; // its write event comes anyway
        }
        let ctx = &mut *((*c).data as *mut ConnCtx);
        let flush_ev = ptr::addr_of_mut!(ctx.flush);
        if (*flush_ev).timer_set() != 0 {
            return;
        }
        match with_worker(|w| w.play_flush_interval_ms(id)) {
            0 => ngx_post_event(wev, ptr::addr_of_mut!(ngx_posted_events)),
            delay => ngx::ffi::ngx_add_timer(flush_ev, delay as ngx::ffi::ngx_msec_t),
        }
    }
}

fn conn_of(id: u64) -> Option<*mut ngx_connection_t> {
    CONNS.with(|m| m.borrow().get(&id).copied())
}

/// Writes as much queued output as the socket takes. Returns false if `c` was closed.
unsafe fn flush(c: *mut ngx_connection_t) -> bool {
    // SAFETY (whole fn): c is a live connection of ours.
    unsafe {
        let ctx = &mut *((*c).data as *mut ConnCtx);
        let id = ctx.id;
        let wev = (*c).write;
        match write_queued(c, id) {
            Written::CaughtUp => {
                ctx.behind_since = None;
                if (*wev).timer_set() != 0 {
                    ngx_del_timer(wev);
                }
                if let Some(reason) = ctx.closing.take() {
                    close(c, &reason);
                    return false;
                }
                true
            }
            Written::Blocked => {
                if ngx_handle_write_event(wev, 0) != NGX_OK as ngx_int_t {
                    close(c, "cannot register write event");
                    return false;
                }
                let now = now_ms();
                let since = *ctx.behind_since.get_or_insert(now);
                if (*wev).timer_set() == 0 {
                    let timeout = with_worker(|w| w.write_timeout_ms(id));
                    let left = (since + timeout).saturating_sub(now).max(1);
                    ngx::ffi::ngx_add_timer(wev, left as ngx::ffi::ngx_msec_t);
                }
                true
            }
            Written::Failed(e) => {
                close(c, &format!("write failed: {e}"));
                false
            }
        }
    }
}

/// Closes `c`, tells the worker (which may wake or close other clients) and frees everything.
unsafe fn close(c: *mut ngx_connection_t, reason: &str) {
    // SAFETY (whole fn): c is live; after ngx_close_connection nothing touches it again.
    unsafe {
        let ctx_ptr = (*c).data as *mut ConnCtx;
        let id = (*ctx_ptr).id;
        CONNS.with(|m| {
            let mut m = m.borrow_mut();
            m.remove(&id);
            super::shm::set_connection_count(m.len());
        });
        log(
            NGX_LOG_INFO,
            (*c).log,
            &format!("rtmp: client disconnected: {reason}"),
        );
        let mut outcome = Outcome::default();
        with_worker(|w| w.disconnect(id, now_ms(), &mut outcome));
        // Our events are linked into nginx's timer tree in place: unlink them before freeing.
        for ev in [
            ptr::addr_of_mut!((*ctx_ptr).tick),
            ptr::addr_of_mut!((*ctx_ptr).flush),
            ptr::addr_of_mut!((*ctx_ptr).pull),
        ] {
            if (*ev).timer_set() != 0 {
                ngx_del_timer(ev);
            }
            if (*ev).posted() != 0 {
                ngx::ffi::ngx_delete_posted_event(ev);
            }
        }
        drop(Box::from_raw(ctx_ptr));
        super::tls::shutdown(c);
        let pool = (*c).pool;
        ngx_close_connection(c);
        ngx_destroy_pool(pool);
        // Others (players of a stream this publisher fed) hear about it now.
        for (other_id, mode, reason) in outcome.close {
            if let Some(other) = conn_of(other_id) {
                let octx = &mut *((*other).data as *mut ConnCtx);
                octx.closing = Some(reason);
                ngx_post_event((*other).write, ptr::addr_of_mut!(ngx_posted_events));
            } else {
                super::httpflv::close(other_id, mode, reason);
            }
        }
        for other_id in outcome.wake.into_iter().chain(outcome.wake_media) {
            if let Some(other) = conn_of(other_id) {
                ngx_post_event((*other).write, ptr::addr_of_mut!(ngx_posted_events));
            } else if !super::httpflv::wake(other_id) {
                super::relay::wake(other_id);
            }
        }
        for line in outcome.logs {
            super::util::log_cycle(level_of(line.level), &line.text);
        }
        super::logfile::write(outcome.access);
        super::netcall::start_all(outcome.calls);
        super::exec::run_all(outcome.execs);
        super::relay::run_all(outcome.relays);
    }
}
