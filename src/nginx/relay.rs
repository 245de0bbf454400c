//! `push` connections on nginx's event loop: resolve (nginx's resolver when `resolver` is set,
//! otherwise the addresses found when the configuration was read), connect without blocking,
//! move bytes between the socket and the worker's relay state, time the setup out, and run
//! the `push_reconnect` timers. The protocol is the pure core's ([`crate::relay`],
//! `src/server/relay.rs`); this file only does what the worker's [`RelayAction`]s ask for.

use core::ptr;
use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::CString;
use std::io::IoSlice;
use std::net::{IpAddr, SocketAddr};

use ngx::ffi::{
    ngx_close_connection, ngx_connection_t, ngx_destroy_pool, ngx_event_t, ngx_handle_read_event,
    ngx_handle_write_event, ngx_int_t, ngx_log_t, ngx_msec_t, ngx_peer_connection_t,
    ngx_posted_events, ngx_resolver_ctx_t, ngx_resolver_t, ngx_str_t, NGX_AGAIN, NGX_OK,
};

use super::outgoing;
use super::util::{guard, now_ms};
use super::worker::with_worker;
use crate::server::{Outcome, RelayAction};

/// Bytes read per recv call (targets only send answers and pings).
const READ_CHUNK: usize = 4096;
/// Slices per writev.
const IOVECS: usize = 256;
/// How long the rest of the queue and the goodbye may take to leave after unpublish.
const CLOSE_TIMEOUT_MS: u64 = 5000;

/// One push connection. Lives in a Box from [`connect_relay`] until [`close_relay`].
struct RelayConn {
    id: u64,
    host: CString,
    port: u16,
    tls: bool,
    /// A copy of the cycle's log whose level hides nginx's own "connect() failed" lines: the
    /// worker logs each failed attempt once, as a warning.
    log: ngx_log_t,
    peer: ngx_peer_connection_t,
    peer_name: ngx_str_t,
    name_text: String,
    addr: libc::sockaddr_storage,
    conn: *mut ngx_connection_t,
    resolving: *mut ngx_resolver_ctx_t,
    resolver_timeout_ms: u64,
    /// Setup timeout (connect, handshake, publish).
    timer: ngx_event_t,
    connected: bool,
    /// The target accepted `publish`.
    publishing: bool,
    /// The stream ended: close once the goodbye is written.
    closing: bool,
}

/// A `push_reconnect` timer.
struct Retry {
    id: u64,
    ev: ngx_event_t,
}

/// TLS settings of `rtmps://` targets (`relay_ssl_verify`, `relay_ssl_trusted_certificate`).
#[derive(Clone, Debug)]
pub struct TlsSettings {
    pub verify: bool,
    /// Extra CA certificates (PEM), besides the system's store.
    pub trusted: Option<String>,
}

static TLS_SETTINGS: std::sync::Mutex<Option<TlsSettings>> = std::sync::Mutex::new(None);

/// Configuration time: what `rtmps://` pushes verify.
pub fn set_tls_settings(s: TlsSettings) {
    if let Ok(mut t) = TLS_SETTINGS.lock() {
        *t = Some(s);
    }
}

fn tls_settings() -> TlsSettings {
    TLS_SETTINGS
        .lock()
        .ok()
        .and_then(|t| t.clone())
        .unwrap_or(TlsSettings {
            verify: true,
            trusted: None,
        })
}

thread_local! {
    /// The worker's TLS client context for `rtmps://` pushes, made on the first one.
    static SSL: RefCell<Option<Box<ngx::ffi::ngx_ssl_t>>> = const { RefCell::new(None) };
    static RELAYS: RefCell<HashMap<u64, *mut RelayConn>> = RefCell::new(HashMap::new());
    static RETRIES: RefCell<HashMap<u64, *mut Retry>> = RefCell::new(HashMap::new());
}

fn relay_of(id: u64) -> Option<*mut RelayConn> {
    RELAYS.with(|m| m.borrow().get(&id).copied())
}

/// Does what the worker asked for.
pub(super) fn run_all(actions: Vec<RelayAction>) {
    for action in actions {
        match action {
            RelayAction::Connect {
                id,
                host,
                port,
                tls,
                resolver,
                resolver_timeout_ms,
                timeout_ms,
            } => {
                cancel_retry(id);
                if relay_of(id).is_none() {
                    start(
                        id,
                        host,
                        port,
                        tls,
                        &resolver,
                        resolver_timeout_ms,
                        timeout_ms,
                    );
                }
            }
            RelayAction::Retry { id, delay_ms } => schedule_retry(id, delay_ms),
            RelayAction::Close { id } => {
                cancel_retry(id);
                match relay_of(id) {
                    // SAFETY: connections in RELAYS are live.
                    Some(rc) => unsafe {
                        (*rc).closing = true;
                        if (*rc).connected {
                            if flush(rc) {
                                // A target that stops reading cannot hold the goodbye forever.
                                let timer = ptr::addr_of_mut!((*rc).timer);
                                ngx::ffi::ngx_add_timer(timer, CLOSE_TIMEOUT_MS as ngx_msec_t);
                            }
                        } else {
                            close_relay(rc, "the stream ended");
                        }
                    },
                    None => {
                        let mut outcome = Outcome::default();
                        with_worker(|w| w.on_relay_closed(id, "the stream ended", &mut outcome));
                        super::conn::apply_outcome(outcome);
                    }
                }
            }
        }
    }
}

/// New media for relay `id`: post its write event. False when `id` is not a relay here.
pub(super) fn wake(id: u64) -> bool {
    let Some(rc) = relay_of(id) else {
        return false;
    };
    // SAFETY: connections in RELAYS are live; their events belong to nginx's loop.
    unsafe {
        let c = (*rc).conn;
        if (*rc).connected && !c.is_null() {
            let wev = (*c).write;
            if (*wev).ready() != 0 && (*wev).posted() == 0 {
                ngx::ffi::ngx_post_event(wev, ptr::addr_of_mut!(ngx_posted_events));
            }
        }
    }
    true
}

fn schedule_retry(id: u64, delay_ms: u64) {
    let existing = RETRIES.with(|m| m.borrow().get(&id).copied());
    let retry = existing.unwrap_or_else(|| {
        // SAFETY: an all-zero event is nginx's "unset" event.
        let r = Box::into_raw(Box::new(Retry {
            id,
            ev: unsafe { core::mem::zeroed() },
        }));
        RETRIES.with(|m| m.borrow_mut().insert(id, r));
        r
    });
    // SAFETY: retry is a live Box owned by RETRIES; its event is unlinked before it is freed.
    unsafe {
        let ev = ptr::addr_of_mut!((*retry).ev);
        (*ev).handler = Some(retry_handler);
        (*ev).data = retry.cast();
        (*ev).log = (*ngx::ffi::ngx_cycle).log;
        // A pending reconnect must not keep an exiting worker alive.
        (*ev).set_cancelable(1);
        ngx::ffi::ngx_add_timer(ev, delay_ms.max(1) as ngx_msec_t);
    }
}

fn cancel_retry(id: u64) {
    let Some(retry) = RETRIES.with(|m| m.borrow_mut().remove(&id)) else {
        return;
    };
    // SAFETY: retry came from Box::into_raw in schedule_retry and is freed once, here.
    unsafe {
        let ev = ptr::addr_of_mut!((*retry).ev);
        if (*ev).timer_set() != 0 {
            ngx::ffi::ngx_del_timer(ev);
        }
        if (*ev).posted() != 0 {
            ngx::ffi::ngx_delete_posted_event(ev);
        }
        drop(Box::from_raw(retry));
    }
}

extern "C" fn retry_handler(ev: *mut ngx_event_t) {
    guard("relay retry", (), || {
        // SAFETY: ev is the event inside a live Retry.
        let id = unsafe { (*((*ev).data as *mut Retry)).id };
        cancel_retry(id);
        let mut outcome = Outcome::default();
        with_worker(|w| w.on_relay_retry(id, &mut outcome));
        super::conn::apply_outcome(outcome);
    })
}

fn start(
    id: u64,
    host: String,
    port: u16,
    tls: bool,
    resolver: &[String],
    resolver_timeout_ms: u64,
    timeout_ms: u64,
) {
    // SAFETY: all-zero peer, event, log and sockaddr are valid "unset" values; the log copy
    // is filled from the cycle's below.
    let rc = Box::into_raw(Box::new(RelayConn {
        id,
        host: CString::new(host.clone()).unwrap_or_default(),
        port,
        tls,
        log: unsafe { core::mem::zeroed() },
        peer: unsafe { core::mem::zeroed() },
        peer_name: ngx_str_t {
            len: 0,
            data: ptr::null_mut(),
        },
        name_text: if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        },
        addr: unsafe { core::mem::zeroed() },
        conn: ptr::null_mut(),
        resolving: ptr::null_mut(),
        resolver_timeout_ms,
        timer: unsafe { core::mem::zeroed() },
        connected: false,
        publishing: false,
        closing: false,
    }));
    RELAYS.with(|m| m.borrow_mut().insert(id, rc));
    // SAFETY: rc is a fresh Box owned through RELAYS until close_relay frees it; its timer is
    // unlinked there first.
    unsafe {
        let cycle_log = (*ngx::ffi::ngx_cycle).log;
        (*rc).log = *cycle_log;
        (*rc).log.log_level = (*rc).log.log_level.min(ngx::ffi::NGX_LOG_CRIT as usize);
        (*rc).timer.handler = Some(timeout_handler);
        (*rc).timer.data = rc.cast();
        (*rc).timer.log = cycle_log;
        (*rc).timer.set_cancelable(1);
        ngx::ffi::ngx_add_timer(ptr::addr_of_mut!((*rc).timer), timeout_ms as ngx_msec_t);
        if let Ok(ip) = host.parse::<IpAddr>() {
            connect(rc, ip);
        } else if let Some(r) = super::netcall::resolver_for(resolver) {
            resolve(rc, r);
        } else if let Some(ip) = super::netcall::known_host(&host) {
            connect(rc, ip);
        } else {
            close_relay(
                rc,
                &format!("host \"{host}\" was not resolved at start-up and no resolver is set"),
            );
        }
    }
}

/// # Safety
/// `rc` is live.
unsafe fn resolve(rc: *mut RelayConn, r: *mut ngx_resolver_t) {
    // SAFETY: r is a resolver nginx made at configuration time; rc is live and owns the host.
    unsafe {
        let host = &(*rc).host;
        let timeout = (*rc).resolver_timeout_ms;
        let slot = ptr::addr_of_mut!((*rc).resolving);
        if let Err(why) =
            outgoing::resolve(r, host, timeout, slot, Some(resolved_handler), rc.cast())
        {
            close_relay(rc, why);
        }
    }
}

extern "C" fn resolved_handler(ctx: *mut ngx_resolver_ctx_t) {
    guard("relay resolved", (), || {
        // SAFETY: ctx is the resolver context we started; its data is our live RelayConn.
        unsafe {
            let rc = (*ctx).data as *mut RelayConn;
            (*rc).resolving = ptr::null_mut();
            let host = (*rc).host.to_string_lossy().into_owned();
            match outgoing::resolved(ctx, &host) {
                Ok(ip) => connect(rc, ip),
                Err(why) => close_relay(rc, &why),
            }
        }
    })
}

/// # Safety
/// `rc` is live.
unsafe fn connect(rc: *mut RelayConn, ip: IpAddr) {
    // SAFETY: rc is live; the peer fields point into it, and it outlives the connection.
    unsafe {
        let to = outgoing::Target {
            addr: SocketAddr::new(ip, (*rc).port),
            name: &(*rc).name_text,
            log: ptr::addr_of_mut!((*rc).log),
            data: rc.cast(),
            read: Some(read_handler),
            write: Some(write_handler),
        };
        let pc = ptr::addr_of_mut!((*rc).peer);
        let now = outgoing::connect(
            pc,
            ptr::addr_of_mut!((*rc).addr),
            ptr::addr_of_mut!((*rc).peer_name),
            &to,
        );
        (*rc).conn = (*pc).connection;
        match now {
            Ok(true) => connected(rc),
            Ok(false) => {}
            Err(why) => close_relay(rc, &why),
        }
    }
}

/// The socket finished connecting (or failed to): start the handshake.
///
/// # Safety
/// `rc` and its connection are live.
unsafe fn connected(rc: *mut RelayConn) {
    // SAFETY: as above.
    unsafe {
        if (*rc).connected {
            return;
        }
        let c = (*rc).conn;
        if let Some(e) = super::util::connect_error(c) {
            close_relay(rc, &format!("connect to {} failed: {e}", (*rc).name_text));
            return;
        }
        (*rc).connected = true;
        if (*rc).tls {
            start_tls(rc);
        } else {
            start_rtmp(rc);
        }
    }
}

/// The transport is up: the RTMP handshake starts.
///
/// # Safety
/// `rc` and its connection are live.
unsafe fn start_rtmp(rc: *mut RelayConn) {
    // SAFETY: as above.
    unsafe {
        let id = (*rc).id;
        if !with_worker(|w| w.on_relay_connected(id, now_ms())) {
            close_relay(rc, "the stream ended");
            return;
        }
        if flush(rc) {
            read(rc);
        }
    }
}

/// `rtmps://`: the TLS handshake (SNI with the target's host name) before RTMP.
///
/// # Safety
/// `rc` and its connection are live.
unsafe fn start_tls(rc: *mut RelayConn) {
    // SAFETY: as above; the TLS objects belong to the connection.
    unsafe {
        let c = (*rc).conn;
        let Some(ssl) = client_ssl() else {
            close_relay(rc, "TLS is not available");
            return;
        };
        match outgoing::start_tls(c, ssl, &(*rc).host, Some(tls_done)) {
            Ok(true) => tls_done(c),
            Ok(false) => {}
            Err(why) => close_relay(rc, why),
        }
    }
}

extern "C" fn tls_done(c: *mut ngx_connection_t) {
    guard("relay TLS handshake", (), || {
        // SAFETY: c is a relay connection; its data is the live RelayConn.
        unsafe {
            let rc = (*c).data as *mut RelayConn;
            if let Err(why) = outgoing::check_tls(c, &(*rc).host, tls_settings().verify) {
                close_relay(rc, &why);
                return;
            }
            (*(*c).read).handler = Some(read_handler);
            (*(*c).write).handler = Some(write_handler);
            start_rtmp(rc);
        }
    })
}

/// The worker's TLS client context for pushes (made once).
fn client_ssl() -> Option<*mut ngx::ffi::ngx_ssl_t> {
    SSL.with(|s| {
        let mut s = s.borrow_mut();
        if s.is_none() {
            let trusted = tls_settings().trusted;
            *s = super::tls::client_context(
                "rtmps:// pushes",
                trusted.as_deref(),
                "relay_ssl_trusted_certificate",
            );
        }
        s.as_mut().map(|b| &mut **b as *mut ngx::ffi::ngx_ssl_t)
    })
}

/// Worker exit: closes every relay connection still open (a `static` pull keeps none of
/// nginx's timers, so an exiting worker does not wait for it), cancels pending reconnects, and
/// frees the TLS client context.
pub(super) fn exit_process() {
    let mut outcome = Outcome::default();
    with_worker(|w| w.stop_static_pulls(super::util::now_ms(), &mut outcome));
    super::worker::log_lines(&outcome.logs);
    let open: Vec<*mut RelayConn> = RELAYS.with(|m| m.borrow().values().copied().collect());
    for rc in open {
        // SAFETY: connections in RELAYS are live; close_relay frees each once.
        unsafe { close_relay(rc, "the worker is exiting") };
    }
    let retries: Vec<u64> = RETRIES.with(|m| m.borrow().keys().copied().collect());
    for id in retries {
        cancel_retry(id);
    }
    if let Some(ssl) = SSL.with(|s| s.borrow_mut().take()) {
        super::tls::free_client_context(ssl);
    }
}

extern "C" fn write_handler(wev: *mut ngx_event_t) {
    guard("relay write", (), || {
        // SAFETY: wev belongs to a relay connection; its data is the live RelayConn.
        unsafe {
            let c = (*wev).data as *mut ngx_connection_t;
            let rc = (*c).data as *mut RelayConn;
            if !(*rc).connected {
                connected(rc);
            } else {
                flush(rc);
            }
        }
    })
}

extern "C" fn read_handler(rev: *mut ngx_event_t) {
    guard("relay read", (), || {
        // SAFETY: rev belongs to a relay connection; its data is the live RelayConn.
        unsafe {
            let c = (*rev).data as *mut ngx_connection_t;
            let rc = (*c).data as *mut RelayConn;
            if !(*rc).connected {
                connected(rc);
                return;
            }
            if read(rc) {
                flush(rc);
            }
        }
    })
}

/// Reads what the target sent. Returns false if `rc` was closed.
///
/// # Safety
/// `rc` and its connection are live.
unsafe fn read(rc: *mut RelayConn) -> bool {
    // SAFETY: as above; c->recv is nginx's receiver.
    unsafe {
        let c = (*rc).conn;
        let id = (*rc).id;
        let mut buf = [0u8; READ_CHUNK];
        loop {
            let Some(recv) = (*c).recv else {
                close_relay(rc, "no receiver");
                return false;
            };
            let n = recv(c, buf.as_mut_ptr(), buf.len());
            if n == NGX_AGAIN as isize {
                if ngx_handle_read_event((*c).read, 0) != NGX_OK as ngx_int_t {
                    close_relay(rc, "cannot register read event");
                    return false;
                }
                return true;
            }
            if n == 0 {
                close_relay(rc, "the target closed the connection");
                return false;
            }
            if n < 0 {
                close_relay(rc, "reading from the target failed");
                return false;
            }
            let Some(data) = buf.get(..n as usize) else {
                close_relay(rc, "the receiver returned more than it was given");
                return false;
            };
            let mut outcome = Outcome::default();
            let fed = with_worker(|w| w.on_relay_input(id, data, &mut outcome));
            super::conn::apply_outcome(outcome);
            if let Err(why) = fed {
                close_relay(rc, &why);
                return false;
            }
            if !(*rc).publishing && with_worker(|w| w.relay_is_publishing(id)) {
                // The setup timeout is over; the same timer now watches for stalls.
                (*rc).publishing = true;
                let timer = ptr::addr_of_mut!((*rc).timer);
                if (*timer).timer_set() != 0 {
                    ngx::ffi::ngx_del_timer(timer);
                }
            }
            // A pull's timer watches for an origin that goes silent.
            if let Some(ms) = with_worker(|w| w.relay_read_timeout_ms(id)) {
                ngx::ffi::ngx_add_timer(ptr::addr_of_mut!((*rc).timer), ms as ngx_msec_t);
            }
        }
    }
}

/// Writes what the relay has queued. Returns false if `rc` was closed.
///
/// # Safety
/// `rc` and its connection are live.
unsafe fn flush(rc: *mut RelayConn) -> bool {
    // SAFETY: as above.
    unsafe {
        let c = (*rc).conn;
        let id = (*rc).id;
        let wev = (*c).write;
        loop {
            let written: std::io::Result<usize> = with_worker(|w| {
                let mut slices = [IoSlice::new(&[]); IOVECS];
                let count = w.relay_output_slices(id, &mut slices);
                if count == 0 {
                    return Ok(0);
                }
                let slices = slices.get(..count).unwrap_or_default();
                let n = super::util::write_slices(c, slices)?;
                w.relay_advance(id, n);
                Ok(n)
            });
            match written {
                Ok(0) => {
                    if (*rc).closing {
                        close_relay(rc, "the stream ended");
                        return false;
                    }
                    return true;
                }
                Ok(n) => {
                    (*c).sent += n as i64;
                    // Progress: a publishing push's stall timer starts again (a pull's watches
                    // what it reads, not what it writes).
                    let timer = ptr::addr_of_mut!((*rc).timer);
                    if (*rc).publishing
                        && !(*rc).closing
                        && (*timer).timer_set() != 0
                        && with_worker(|w| w.relay_read_timeout_ms(id)).is_none()
                    {
                        ngx::ffi::ngx_del_timer(timer);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    (*wev).set_ready(0);
                    if ngx_handle_write_event(wev, 0) != NGX_OK as ngx_int_t {
                        close_relay(rc, "cannot register write event");
                        return false;
                    }
                    let timer = ptr::addr_of_mut!((*rc).timer);
                    if (*rc).publishing && !(*rc).closing && (*timer).timer_set() == 0 {
                        if let Some(ms) = with_worker(|w| w.relay_stall_timeout_ms(id)) {
                            ngx::ffi::ngx_add_timer(timer, ms as ngx_msec_t);
                        }
                    }
                    return true;
                }
                Err(e) => {
                    close_relay(rc, &format!("write failed: {e}"));
                    return false;
                }
            }
        }
    }
}

extern "C" fn timeout_handler(ev: *mut ngx_event_t) {
    guard("relay timeout", (), || {
        // SAFETY: ev is the timer inside a live RelayConn.
        unsafe {
            let rc = (*ev).data as *mut RelayConn;
            if (*rc).closing {
                close_relay(rc, "the stream ended (the target did not read the rest)");
                return;
            }
            let id = (*rc).id;
            if let Some(ms) = with_worker(|w| w.relay_read_timeout_ms(id)) {
                let why = format!("the origin sent nothing for {} s", ms / 1000);
                close_relay(rc, &why);
                return;
            }
            if let Some(ms) = with_worker(|w| w.relay_stall_timeout_ms(id)) {
                let why = format!("the target read nothing for {} s", ms / 1000);
                close_relay(rc, &why);
                return;
            }
            let what = if (*rc).connected {
                "no answer to the handshake or publish"
            } else {
                "no connection"
            };
            let secs = crate::server::RELAY_SETUP_TIMEOUT_MS / 1000;
            close_relay(rc, &format!("{what} within {secs} s"));
        }
    })
}

/// Frees everything `rc` holds, then tells the worker (which may schedule a retry).
///
/// # Safety
/// `rc` is live; it is freed here and must not be used afterwards.
unsafe fn close_relay(rc: *mut RelayConn, reason: &str) {
    // SAFETY: every pointer in the RelayConn is null or owned by it.
    let id = unsafe {
        let id = (*rc).id;
        RELAYS.with(|m| m.borrow_mut().remove(&id));
        let timer = ptr::addr_of_mut!((*rc).timer);
        if (*timer).timer_set() != 0 {
            ngx::ffi::ngx_del_timer(timer);
        }
        if !(*rc).resolving.is_null() {
            ngx::ffi::ngx_resolve_name_done((*rc).resolving);
            (*rc).resolving = ptr::null_mut();
        }
        let c = (*rc).conn;
        if !c.is_null() {
            super::tls::shutdown(c);
            let pool = (*c).pool;
            ngx_close_connection(c);
            if !pool.is_null() {
                ngx_destroy_pool(pool);
            }
        }
        drop(Box::from_raw(rc));
        id
    };
    let mut outcome = Outcome::default();
    with_worker(|w| w.on_relay_closed(id, reason, &mut outcome));
    super::conn::apply_outcome(outcome);
}
