//! HTTP callbacks on nginx's event loop: resolve (nginx's resolver when `resolver` is set,
//! otherwise the addresses found when the configuration was read), connect without blocking,
//! TLS through nginx's OpenSSL for `https://` (certificate and host name verified unless
//! `notify_ssl_verify off`), write the request, read the response head, hand the result to the
//! worker. One [`Call`] per request, freed when it ends; the whole exchange is bounded by
//! `netcall_timeout`.

use core::ffi::c_void;
use core::ptr;
use std::cell::RefCell;
use std::ffi::CString;
use std::net::{IpAddr, SocketAddr};

use ngx::ffi::{
    ngx_close_connection, ngx_connection_t, ngx_destroy_pool, ngx_event_t, ngx_handle_read_event,
    ngx_handle_write_event, ngx_int_t, ngx_msec_t, ngx_peer_connection_t, ngx_resolver_ctx_t,
    ngx_resolver_t, ngx_ssl_t, ngx_str_t, NGX_AGAIN, NGX_OK,
};

use super::outgoing;
use super::util::{guard, now_ms};
use crate::notify::{NotifyError, ResponseParser};
use crate::server::{NetCall, Outcome};

/// Bytes read per recv call.
const READ_CHUNK: usize = 4096;

/// Addresses of callback hosts, looked up when the configuration was read (no `resolver`).
static RESOLVED: std::sync::Mutex<Vec<(String, Vec<IpAddr>)>> = std::sync::Mutex::new(Vec::new());

/// nginx resolvers created from `resolver` directives: (arguments, cycle, resolver).
static RESOLVERS: std::sync::Mutex<Vec<(String, usize, usize)>> = std::sync::Mutex::new(Vec::new());

/// TLS settings of the https callbacks (from the configuration).
#[derive(Clone, Debug, Default)]
pub struct TlsSettings {
    pub verify: bool,
    /// Extra CA certificates (PEM), besides the system's store.
    pub trusted: Option<String>,
}

static TLS_SETTINGS: std::sync::Mutex<Option<TlsSettings>> = std::sync::Mutex::new(None);

thread_local! {
    /// The worker's TLS client context, made on the first https call.
    static SSL: RefCell<Option<Box<ngx_ssl_t>>> = const { RefCell::new(None) };
}

/// Remembers a host's addresses (configuration time, master process).
pub fn remember_host(host: &str, addrs: Vec<IpAddr>) {
    if let Ok(mut m) = RESOLVED.lock() {
        m.retain(|(h, _)| h != host);
        m.push((host.to_owned(), addrs));
    }
}

/// Remembers the nginx resolver made for `resolver` arguments `key` while loading `cycle`.
pub fn remember_resolver(key: &str, cycle: *mut c_void, r: *mut ngx_resolver_t) {
    if let Ok(mut m) = RESOLVERS.lock() {
        m.retain(|(k, _, _)| k != key);
        m.push((key.to_owned(), cycle as usize, r as usize));
    }
}

/// Whether `key` already has a resolver made while loading `cycle` (a reload makes new ones).
pub fn has_resolver(key: &str, cycle: *mut c_void) -> bool {
    RESOLVERS
        .lock()
        .is_ok_and(|m| m.iter().any(|(k, c, _)| k == key && *c == cycle as usize))
}

pub fn set_tls_settings(s: TlsSettings) {
    if let Ok(mut t) = TLS_SETTINGS.lock() {
        *t = Some(s);
    }
}

pub(super) fn resolver_for(args: &[String]) -> Option<*mut ngx_resolver_t> {
    let key = args.join(" ");
    let m = RESOLVERS.lock().ok()?;
    m.iter()
        .find(|(k, _, _)| *k == key)
        .map(|&(_, _, p)| p as *mut ngx_resolver_t)
}

pub(super) fn known_host(host: &str) -> Option<IpAddr> {
    let m = RESOLVED.lock().ok()?;
    m.iter()
        .find(|(h, _)| h == host)
        .and_then(|(_, a)| a.first().copied())
}

/// One callback in flight. Lives in a Box from [`start`] until [`finish`].
struct Call {
    spec: NetCall,
    /// NUL-terminated host name for SNI and the resolver.
    host: CString,
    peer: ngx_peer_connection_t,
    peer_name: ngx_str_t,
    addr: libc::sockaddr_storage,
    conn: *mut ngx_connection_t,
    resolving: *mut ngx_resolver_ctx_t,
    timer: ngx_event_t,
    sent: usize,
    parser: ResponseParser,
    connected: bool,
}

/// Starts every call an outcome asked for. Results come back through the worker later.
pub fn start_all(calls: Vec<NetCall>) {
    for spec in calls {
        start(spec);
    }
}

fn start(spec: NetCall) {
    let host = CString::new(spec.url.host.clone()).unwrap_or_default();
    let limit = spec.head_limit;
    // SAFETY: an all-zero peer connection, event and sockaddr are valid "unset" values.
    let call = Box::new(Call {
        host,
        peer: unsafe { core::mem::zeroed() },
        peer_name: ngx_str_t {
            len: 0,
            data: ptr::null_mut(),
        },
        addr: unsafe { core::mem::zeroed() },
        conn: ptr::null_mut(),
        resolving: ptr::null_mut(),
        timer: unsafe { core::mem::zeroed() },
        sent: 0,
        parser: ResponseParser::new(limit),
        connected: false,
        spec,
    });
    let call = Box::into_raw(call);
    // SAFETY: call is a fresh, exclusively owned Box until finish() frees it; the timer lives
    // inside it and is removed before the Box is dropped.
    unsafe {
        let log = (*ngx::ffi::ngx_cycle).log;
        (*call).timer.handler = Some(timeout_handler);
        (*call).timer.data = call.cast();
        (*call).timer.log = log;
        (*call).timer.set_cancelable(1);
        ngx::ffi::ngx_add_timer(
            ptr::addr_of_mut!((*call).timer),
            (*call).spec.timeout_ms as ngx_msec_t,
        );
        let host = (*call).spec.url.host.clone();
        if let Ok(ip) = host.parse::<IpAddr>() {
            connect(call, ip);
        } else if let Some(r) = resolver_for(&(*call).spec.resolver) {
            resolve(call, r);
        } else if let Some(ip) = known_host(&host) {
            connect(call, ip);
        } else {
            let why =
                format!("host \"{host}\" was not resolved at start-up and no resolver is set");
            finish(call, Err(NotifyError::Transport(why)));
        }
    }
}

/// # Safety
/// `call` is live and owned by the caller's event chain.
unsafe fn resolve(call: *mut Call, r: *mut ngx_resolver_t) {
    // SAFETY: r is a resolver nginx made at configuration time; call is live and owns the host.
    unsafe {
        let host = &(*call).host;
        let timeout = (*call).spec.resolver_timeout_ms;
        let slot = ptr::addr_of_mut!((*call).resolving);
        let data = call.cast();
        if let Err(why) = outgoing::resolve(r, host, timeout, slot, Some(resolved_handler), data) {
            finish(call, Err(NotifyError::Transport(why.into())));
        }
    }
}

extern "C" fn resolved_handler(ctx: *mut ngx_resolver_ctx_t) {
    guard("netcall resolved", (), || {
        // SAFETY: ctx is the resolver context we started; its data is our live Call.
        unsafe {
            let call = (*ctx).data as *mut Call;
            (*call).resolving = ptr::null_mut();
            match outgoing::resolved(ctx, &(*call).spec.url.host) {
                Ok(ip) => connect(call, ip),
                Err(why) => finish(call, Err(NotifyError::Transport(why))),
            }
        }
    })
}

/// # Safety
/// `call` is live.
unsafe fn connect(call: *mut Call, ip: IpAddr) {
    // SAFETY: call is live; the peer fields point into the Call, which outlives the connection.
    unsafe {
        let to = outgoing::Target {
            addr: SocketAddr::new(ip, (*call).spec.url.port),
            name: &(*call).spec.label,
            log: (*ngx::ffi::ngx_cycle).log,
            data: call.cast(),
            read: Some(read_handler),
            write: Some(write_handler),
        };
        let pc = ptr::addr_of_mut!((*call).peer);
        let now = outgoing::connect(
            pc,
            ptr::addr_of_mut!((*call).addr),
            ptr::addr_of_mut!((*call).peer_name),
            &to,
        );
        (*call).conn = (*pc).connection;
        match now {
            Ok(true) => connected(call),
            Ok(false) => {}
            Err(why) => finish(call, Err(NotifyError::Transport(why))),
        }
    }
}

/// # Safety
/// `call` and its connection are live.
unsafe fn connected(call: *mut Call) {
    // SAFETY: as above; TLS objects belong to the connection's pool.
    unsafe {
        let c = (*call).conn;
        if (*call).connected {
            return;
        }
        if let Some(e) = super::util::connect_error(c) {
            let why = format!("connect to {} failed: {e}", (*call).spec.url.host_header());
            finish(call, Err(NotifyError::Transport(why)));
            return;
        }
        (*call).connected = true;
        if !(*call).spec.url.is_tls() {
            send(call);
            return;
        }
        let Some(ssl) = client_ssl() else {
            let why = "TLS is not available".to_string();
            finish(call, Err(NotifyError::Transport(why)));
            return;
        };
        match outgoing::start_tls(c, ssl, &(*call).host, Some(handshake_done)) {
            Ok(true) => handshake_done(c),
            Ok(false) => {}
            Err(why) => finish(call, Err(NotifyError::Transport(why.into()))),
        }
    }
}

extern "C" fn handshake_done(c: *mut ngx_connection_t) {
    guard("netcall handshake", (), || {
        // SAFETY: c is our callback connection; its data is the live Call.
        unsafe {
            let call = (*c).data as *mut Call;
            if let Err(why) = outgoing::check_tls(c, &(*call).host, tls_settings().verify) {
                finish(call, Err(NotifyError::Transport(why)));
                return;
            }
            (*(*c).read).handler = Some(read_handler);
            (*(*c).write).handler = Some(write_handler);
            send(call);
        }
    })
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

/// Worker exit: frees the TLS client context.
pub(super) fn exit_process() {
    if let Some(ssl) = SSL.with(|s| s.borrow_mut().take()) {
        super::tls::free_client_context(ssl);
    }
}

/// The worker's TLS client context (made once).
fn client_ssl() -> Option<*mut ngx_ssl_t> {
    SSL.with(|s| {
        let mut s = s.borrow_mut();
        if s.is_none() {
            let trusted = tls_settings().trusted;
            *s = super::tls::client_context(
                "callbacks",
                trusted.as_deref(),
                "notify_ssl_trusted_certificate",
            );
        }
        s.as_mut().map(|b| &mut **b as *mut ngx_ssl_t)
    })
}

extern "C" fn write_handler(wev: *mut ngx_event_t) {
    guard("netcall write", (), || {
        // SAFETY: wev belongs to our callback connection; its data is the live Call.
        unsafe {
            let c = (*wev).data as *mut ngx_connection_t;
            let call = (*c).data as *mut Call;
            if !(*call).connected {
                connected(call);
            } else {
                send(call);
            }
        }
    })
}

/// # Safety
/// `call` and its connection are live.
unsafe fn send(call: *mut Call) {
    // SAFETY: as above; c->send is nginx's (plain or TLS) sender.
    unsafe {
        let c = (*call).conn;
        loop {
            let req = &(*call).spec.request;
            let Some(rest) = req.get((*call).sent..).filter(|r| !r.is_empty()) else {
                break;
            };
            let Some(send) = (*c).send else {
                finish(call, Err(NotifyError::Transport("no sender".into())));
                return;
            };
            let n = send(c, rest.as_ptr() as *mut u8, rest.len());
            if n == NGX_AGAIN as isize {
                if ngx_handle_write_event((*c).write, 0) != NGX_OK as ngx_int_t {
                    finish(call, Err(NotifyError::Transport("event error".into())));
                }
                return;
            }
            if n <= 0 {
                let why = "sending the request failed".to_string();
                finish(call, Err(NotifyError::Transport(why)));
                return;
            }
            (*call).sent += n as usize;
        }
        read(call);
    }
}

extern "C" fn read_handler(rev: *mut ngx_event_t) {
    guard("netcall read", (), || {
        // SAFETY: rev belongs to our callback connection; its data is the live Call.
        unsafe {
            let c = (*rev).data as *mut ngx_connection_t;
            let call = (*c).data as *mut Call;
            if !(*call).connected {
                return;
            }
            if (*call).sent < (*call).spec.request.len() {
                send(call);
                return;
            }
            read(call);
        }
    })
}

/// # Safety
/// `call` and its connection are live.
unsafe fn read(call: *mut Call) {
    // SAFETY: as above; c->recv is nginx's (plain or TLS) receiver.
    unsafe {
        let c = (*call).conn;
        let mut buf = [0u8; READ_CHUNK];
        loop {
            let Some(recv) = (*c).recv else {
                finish(call, Err(NotifyError::Transport("no receiver".into())));
                return;
            };
            let n = recv(c, buf.as_mut_ptr(), buf.len());
            if n == NGX_AGAIN as isize {
                if ngx_handle_read_event((*c).read, 0) != NGX_OK as ngx_int_t {
                    finish(call, Err(NotifyError::Transport("event error".into())));
                }
                return;
            }
            if n == 0 {
                let result = (*call).parser.finish();
                finish(call, result);
                return;
            }
            if n < 0 {
                let why = "reading the response failed".to_string();
                finish(call, Err(NotifyError::Transport(why)));
                return;
            }
            // recv returns at most buf.len() bytes.
            let Some(data) = buf.get(..n as usize) else {
                let why = "the receiver returned more than it was given".to_string();
                finish(call, Err(NotifyError::Transport(why)));
                return;
            };
            match (*call).parser.feed(data) {
                Ok(None) => {}
                Ok(Some(head)) => {
                    finish(call, Ok(head));
                    return;
                }
                Err(e) => {
                    finish(call, Err(e));
                    return;
                }
            }
        }
    }
}

extern "C" fn timeout_handler(ev: *mut ngx_event_t) {
    guard("netcall timeout", (), || {
        // SAFETY: ev is the timer inside our live Call.
        unsafe {
            let call = (*ev).data as *mut Call;
            let why = format!("no answer within {} ms", (*call).spec.timeout_ms);
            finish(call, Err(NotifyError::Transport(why)));
        }
    })
}

/// Ends a call: frees everything it holds, then gives the result to the worker.
///
/// # Safety
/// `call` is live; it is freed here and must not be used afterwards.
unsafe fn finish(call: *mut Call, result: Result<crate::notify::ResponseHead, NotifyError>) {
    // SAFETY: every pointer in the Call is either null or owned by it.
    let token = unsafe {
        let timer = ptr::addr_of_mut!((*call).timer);
        if (*timer).timer_set() != 0 {
            ngx::ffi::ngx_del_timer(timer);
        }
        if !(*call).resolving.is_null() {
            ngx::ffi::ngx_resolve_name_done((*call).resolving);
            (*call).resolving = ptr::null_mut();
        }
        let c = (*call).conn;
        if !c.is_null() {
            if !(*c).ssl.is_null() {
                (*(*c).ssl).set_no_wait_shutdown(1);
                ngx::ffi::ngx_ssl_shutdown(c);
            }
            let pool = (*c).pool;
            ngx_close_connection(c);
            if !pool.is_null() {
                ngx_destroy_pool(pool);
            }
        }
        let call = Box::from_raw(call);
        call.spec.token
    };
    let mut outcome = Outcome::default();
    super::worker::with_worker(|w| w.on_call_done(token, result, now_ms(), &mut outcome));
    super::conn::apply_outcome(outcome);
}
