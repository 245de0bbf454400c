//! The steps every outgoing connection takes (https callbacks, rtmp:// and rtmps:// relays):
//! resolve the host through nginx's resolver, connect nginx's peer connection, start TLS with
//! SNI, check the server's certificate. Each caller keeps its own state and error path; these
//! functions do the nginx calls and say what went wrong.

use core::ffi::c_void;
use core::ptr;
use std::ffi::CStr;
use std::net::{IpAddr, SocketAddr};

use ngx::ffi::{
    ngx_connection_handler_pt, ngx_connection_t, ngx_create_pool, ngx_event_handler_pt, ngx_int_t,
    ngx_log_t, ngx_msec_t, ngx_peer_connection_t, ngx_resolver_ctx_t, ngx_resolver_handler_pt,
    ngx_resolver_t, ngx_ssl_t, ngx_str_t, NGX_AGAIN, NGX_OK,
};

/// Starts resolving `host`, which must stay alive until `handler` ran (it belongs to the
/// caller's state, `data`). `slot` holds the query while it runs (to cancel it); the handler
/// may run before this returns (a cached name) and must clear it. On `Err`, why it did not
/// start, and `slot` is null.
///
/// # Safety
/// `r` is a resolver nginx made; `host`, `slot` and `data` outlive the query.
pub(super) unsafe fn resolve(
    r: *mut ngx_resolver_t,
    host: &CStr,
    timeout_ms: u64,
    slot: *mut *mut ngx_resolver_ctx_t,
    handler: ngx_resolver_handler_pt,
    data: *mut c_void,
) -> Result<(), &'static str> {
    // SAFETY: guaranteed by the caller; ctx is nginx's until ngx_resolve_name_done.
    unsafe {
        let ctx = ngx::ffi::ngx_resolve_start(r, ptr::null_mut());
        if ctx.is_null() || ctx as usize == usize::MAX {
            return Err("cannot start a DNS query");
        }
        (*ctx).name = ngx_str_t {
            len: host.to_bytes().len(),
            data: host.as_ptr() as *mut u8,
        };
        (*ctx).handler = handler;
        (*ctx).data = data;
        (*ctx).timeout = timeout_ms.max(1) as ngx_msec_t;
        *slot = ctx;
        if ngx::ffi::ngx_resolve_name(ctx) != NGX_OK as ngx_int_t {
            *slot = ptr::null_mut();
            return Err("DNS query failed to start");
        }
        Ok(())
    }
}

/// In a resolver handler: the first address of `host`, or why there is none. Releases `ctx`.
///
/// # Safety
/// `ctx` is the context the handler was called with.
pub(super) unsafe fn resolved(ctx: *mut ngx_resolver_ctx_t, host: &str) -> Result<IpAddr, String> {
    // SAFETY: guaranteed by the caller; addrs holds naddrs entries when state is 0.
    unsafe {
        let result = if (*ctx).state != 0 {
            let msg = ngx::ffi::ngx_resolver_strerror((*ctx).state);
            let msg = CStr::from_ptr(msg).to_string_lossy().into_owned();
            Err(format!("could not resolve \"{host}\": {msg}"))
        } else if (*ctx).naddrs == 0 {
            Err(format!("\"{host}\" has no address"))
        } else {
            super::util::sockaddr_ip((*(*ctx).addrs).sockaddr as *const libc::sockaddr)
                .ok_or_else(|| "resolver returned an unusable address".to_string())
        };
        ngx::ffi::ngx_resolve_name_done(ctx);
        result
    }
}

/// Where a peer connection goes and the owner's slots for it.
pub(super) struct Target<'a> {
    pub addr: SocketAddr,
    /// The name nginx logs the peer under (the caller's text, alive as long as `pc`).
    pub name: &'a str,
    pub log: *mut ngx_log_t,
    /// The owner, as the connection's `data`.
    pub data: *mut c_void,
    pub read: ngx_event_handler_pt,
    pub write: ngx_event_handler_pt,
}

/// Connects `pc` to `to`. `pc`, `addr` and `name` live in the owner, which outlives the
/// connection. `Ok(true)`: connected at once; `Ok(false)`: the write handler tells.
///
/// # Safety
/// The pointers are valid and owned by `to.data`'s owner.
pub(super) unsafe fn connect(
    pc: *mut ngx_peer_connection_t,
    addr: *mut libc::sockaddr_storage,
    name: *mut ngx_str_t,
    to: &Target<'_>,
) -> Result<bool, String> {
    // SAFETY: guaranteed by the caller.
    unsafe {
        let (storage, len) = super::conf::sockaddr_from(&to.addr);
        *addr = storage;
        *name = ngx_str_t {
            len: to.name.len(),
            data: to.name.as_ptr() as *mut u8,
        };
        *pc = core::mem::zeroed();
        (*pc).sockaddr = addr.cast();
        (*pc).socklen = len;
        (*pc).name = name;
        (*pc).get = Some(ngx::ffi::ngx_event_get_peer);
        (*pc).log = to.log;
        (*pc).set_log_error(ngx::ffi::ngx_connection_log_error_e_NGX_ERROR_ERR);
        (*pc).type_ = libc::SOCK_STREAM;
        (*pc).tries = 1;
        let r = ngx::ffi::ngx_event_connect_peer(pc);
        if (r != NGX_OK as ngx_int_t && r != NGX_AGAIN as ngx_int_t) || (*pc).connection.is_null() {
            let e = std::io::Error::last_os_error();
            return Err(format!("connect to {} failed: {e}", to.name));
        }
        let c = (*pc).connection;
        (*c).data = to.data;
        (*c).pool = ngx_create_pool(4096, to.log);
        if (*c).pool.is_null() {
            return Err("out of memory".into());
        }
        (*(*c).read).handler = to.read;
        (*(*c).write).handler = to.write;
        Ok(r == NGX_OK as ngx_int_t)
    }
}

/// Starts a client TLS handshake on `c`, with SNI unless `host` is an IP address.
/// `Ok(true)`: finished at once (call the handler's work yourself); `Ok(false)`: `handler`
/// runs when it finishes.
///
/// # Safety
/// `c` is a live, connected connection; `host` outlives the handshake.
pub(super) unsafe fn start_tls(
    c: *mut ngx_connection_t,
    ssl: *mut ngx_ssl_t,
    host: &CStr,
    handler: ngx_connection_handler_pt,
) -> Result<bool, &'static str> {
    // SAFETY: guaranteed by the caller; the TLS objects belong to the connection.
    unsafe {
        let flags = (ngx::ffi::NGX_SSL_BUFFER | ngx::ffi::NGX_SSL_CLIENT) as ngx::ffi::ngx_uint_t;
        if ngx::ffi::ngx_ssl_create_connection(ssl, c, flags) != NGX_OK as ngx_int_t {
            return Err("cannot create a TLS connection");
        }
        if host.to_str().map_or(true, |h| h.parse::<IpAddr>().is_err()) {
            ngx::ffi::SSL_ctrl(
                (*(*c).ssl).connection,
                ngx::ffi::SSL_CTRL_SET_TLSEXT_HOSTNAME as i32,
                ngx::ffi::TLSEXT_NAMETYPE_host_name as libc::c_long,
                host.as_ptr() as *mut c_void,
            );
        }
        if ngx::ffi::ngx_ssl_handshake(c) == NGX_AGAIN as ngx_int_t {
            (*(*c).ssl).handler = handler;
            return Ok(false);
        }
        Ok(true)
    }
}

/// After the handshake: whether it succeeded and, with `verify`, whether the server's
/// certificate chains to a trusted root and names `host`.
///
/// # Safety
/// `c` is a live connection on which [`start_tls`] ran.
pub(super) unsafe fn check_tls(
    c: *mut ngx_connection_t,
    host: &CStr,
    verify: bool,
) -> Result<(), String> {
    // SAFETY: guaranteed by the caller.
    unsafe {
        if (*c).ssl.is_null() || (*(*c).ssl).handshaked() == 0 {
            return Err("TLS handshake failed".into());
        }
        if !verify {
            return Ok(());
        }
        let r = ngx::ffi::SSL_get_verify_result((*(*c).ssl).connection);
        if r != 0 {
            let msg = ngx::ffi::X509_verify_cert_error_string(r);
            let msg = CStr::from_ptr(msg).to_string_lossy();
            return Err(format!("TLS certificate not trusted: {msg}"));
        }
        let mut name = ngx_str_t {
            len: host.to_bytes().len(),
            data: host.as_ptr() as *mut u8,
        };
        if ngx::ffi::ngx_ssl_check_host(c, &mut name) != NGX_OK as ngx_int_t {
            let host = host.to_string_lossy();
            return Err(format!("TLS certificate does not match \"{host}\""));
        }
        Ok(())
    }
}
