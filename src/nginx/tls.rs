//! RTMPS: TLS on `listen ... ssl` sockets through nginx's OpenSSL, as nginx's `stream` module
//! does it. A server's TLS context is made when the configuration is read (certificates,
//! protocols, ciphers, session cache); an accepted connection does its handshake on the event
//! loop, bounded by `ssl_handshake_timeout`, before it becomes an RTMP session; afterwards
//! nginx's `c->recv` reads through TLS and [`write`] writes through it.

use core::ffi::{c_int, c_void};
use core::ptr;
use std::cell::RefCell;
use std::io::IoSlice;

use ngx::ffi::{
    ngx_array_t, ngx_conf_t, ngx_connection_t, ngx_int_t, ngx_pool_cleanup_add, ngx_ssl_t,
    ngx_str_t, NGX_AGAIN, NGX_OK,
};

use crate::conf::certpath::{server_name_for_path, CertPath};
use crate::conf::{SslSettings, TlsProtocol};

/// OpenSSL's `SSL_OP_NO_TICKET` (`SSL_OP_BIT(14)`, a macro bindgen does not expand).
const SSL_OP_NO_TICKET: u64 = 1 << 14;

/// Plaintext bytes handed to one TLS write (one record's worth).
const WRITE_CHUNK: usize = 16 * 1024;

/// Session id context of our sessions (a session of another server type is never resumed).
static mut SESSION_CONTEXT: ngx_str_t = ngx_str_t {
    len: 4,
    data: c"RTMP".as_ptr() as *mut u8,
};

thread_local! {
    /// Where a TLS connection's queued output is gathered before it is encrypted.
    static GATHER: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(WRITE_CHUNK));
}

/// Copies `s` into `pool`, NUL-terminated (OpenSSL opens files by C string).
///
/// # Safety
/// `pool` is a live nginx pool.
unsafe fn pool_str(pool: *mut ngx::ffi::ngx_pool_t, s: &str) -> Option<ngx_str_t> {
    // SAFETY: ngx_pnalloc returns len + 1 writable bytes or null.
    unsafe {
        let data = ngx::ffi::ngx_pnalloc(pool, s.len() + 1) as *mut u8;
        if data.is_null() {
            return None;
        }
        ptr::copy_nonoverlapping(s.as_ptr(), data, s.len());
        *data.add(s.len()) = 0;
        Some(ngx_str_t { len: s.len(), data })
    }
}

/// An nginx array of pool strings.
///
/// # Safety
/// `pool` is a live nginx pool.
unsafe fn pool_strs(pool: *mut ngx::ffi::ngx_pool_t, items: &[String]) -> Option<*mut ngx_array_t> {
    // SAFETY: the array and its elements live in the pool.
    unsafe {
        let arr = ngx::ffi::ngx_array_create(pool, items.len().max(1), size_of::<ngx_str_t>());
        if arr.is_null() {
            return None;
        }
        for s in items {
            let slot = ngx::ffi::ngx_array_push(arr) as *mut ngx_str_t;
            if slot.is_null() {
                return None;
            }
            *slot = pool_str(pool, s)?;
        }
        Some(arr)
    }
}

fn protocol_bits(protocols: &[TlsProtocol]) -> ngx::ffi::ngx_uint_t {
    protocols
        .iter()
        .map(|p| match p {
            TlsProtocol::Tls1 => ngx::ffi::NGX_SSL_TLSv1,
            TlsProtocol::Tls1_1 => ngx::ffi::NGX_SSL_TLSv1_1,
            TlsProtocol::Tls1_2 => ngx::ffi::NGX_SSL_TLSv1_2,
            TlsProtocol::Tls1_3 => ngx::ffi::NGX_SSL_TLSv1_3,
        })
        .fold(0, |a, b| a | b as ngx::ffi::ngx_uint_t)
}

/// Makes a server's TLS context (configuration time). The error names what is wrong; nginx's
/// own functions have logged OpenSSL's reason before it.
///
/// # Safety
/// `cf` is nginx's live configuration parser.
pub unsafe fn server_context(
    cf: *mut ngx_conf_t,
    s: &SslSettings,
) -> Result<*mut ngx_ssl_t, String> {
    if s.certificates.is_empty() {
        return Err(
            "no \"ssl_certificate\" is defined for the \"listen ... ssl\" directive".into(),
        );
    }
    if s.certificate_keys.len() != s.certificates.len() {
        return Err(format!(
            "{} \"ssl_certificate\" but {} \"ssl_certificate_key\": give one key per certificate",
            s.certificates.len(),
            s.certificate_keys.len()
        ));
    }
    // SAFETY (whole fn): cf is live; everything made here lives in the cycle pool, and the
    // OpenSSL context is freed by the cleanup registered right after it is made.
    unsafe {
        let pool = (*cf).pool;
        let ssl = ngx::ffi::ngx_pcalloc(pool, size_of::<ngx_ssl_t>()) as *mut ngx_ssl_t;
        if ssl.is_null() {
            return Err("out of memory".into());
        }
        (*ssl).log = (*cf).log;
        if ngx::ffi::ngx_ssl_create(ssl, protocol_bits(&s.protocols), ptr::null_mut())
            != NGX_OK as ngx_int_t
        {
            return Err("cannot create the TLS context".into());
        }
        let cln = ngx_pool_cleanup_add(pool, 0);
        if cln.is_null() {
            return Err("out of memory".into());
        }
        (*cln).handler = Some(ngx::ffi::ngx_ssl_cleanup_ctx);
        (*cln).data = ssl.cast();

        let (Some(certs), Some(keys)) = (
            pool_strs(pool, &s.certificates),
            pool_strs(pool, &s.certificate_keys),
        ) else {
            return Err("out of memory".into());
        };
        let pairs: Vec<(CertPath, CertPath)> = s
            .certificates
            .iter()
            .zip(&s.certificate_keys)
            .filter_map(|(c, k)| Some((CertPath::parse(c).ok()?, CertPath::parse(k).ok()?)))
            .collect();
        if pairs
            .iter()
            .any(|(c, k)| c.has_variables() || k.has_variables())
        {
            // As nginx's stream module: named by the client's SNI, read at each handshake
            // (so a renewed certificate is used at once).
            let arg = super::conf::pool_owned(pool, pairs);
            if arg.is_null() {
                return Err("out of memory".into());
            }
            ngx::ffi::SSL_CTX_set_cert_cb((*ssl).ctx.cast(), Some(load_certificates), arg.cast());
        } else if ngx::ffi::ngx_ssl_certificates(cf, ssl, certs, keys, ptr::null_mut())
            != NGX_OK as ngx_int_t
        {
            return Err(format!(
                "cannot load \"ssl_certificate\" {}",
                s.certificates.join(", ")
            ));
        }
        if !s.session_tickets {
            // No TLSv1.3 ticket after the handshake (librtmp with GnuTLS fails on one), and
            // none in TLSv1.2 either.
            ngx::ffi::SSL_CTX_set_options((*ssl).ctx.cast(), SSL_OP_NO_TICKET);
            ngx::ffi::SSL_CTX_set_num_tickets((*ssl).ctx.cast(), 0);
        }
        let Some(mut ciphers) = pool_str(pool, &s.ciphers) else {
            return Err("out of memory".into());
        };
        if ngx::ffi::ngx_ssl_ciphers(
            cf,
            ssl,
            &mut ciphers,
            ngx::ffi::ngx_uint_t::from(s.prefer_server_ciphers),
        ) != NGX_OK as ngx_int_t
        {
            return Err(format!("invalid \"ssl_ciphers\" \"{}\"", s.ciphers));
        }
        let Some(mut curve) = pool_str(pool, "auto") else {
            return Err("out of memory".into());
        };
        if ngx::ffi::ngx_ssl_ecdh_curve(cf, ssl, &mut curve) != NGX_OK as ngx_int_t {
            return Err("cannot set the ECDH curves".into());
        }
        let cache = &s.session_cache;
        let builtin: isize = if cache.off {
            ngx::ffi::NGX_SSL_NO_SCACHE as isize
        } else {
            match cache.builtin {
                Some(Some(n)) => isize::try_from(n).unwrap_or(isize::MAX),
                Some(None) => ngx::ffi::NGX_SSL_DFLT_BUILTIN_SCACHE as isize,
                None if cache.shared.is_some() => ngx::ffi::NGX_SSL_NO_BUILTIN_SCACHE as isize,
                None => ngx::ffi::NGX_SSL_NONE_SCACHE as isize,
            }
        };
        let mut zone: *mut ngx::ffi::ngx_shm_zone_t = ptr::null_mut();
        if let Some((name, size)) = &cache.shared {
            let Some(mut n) = pool_str(pool, name) else {
                return Err("out of memory".into());
            };
            let tag = ptr::addr_of_mut!(super::ngx_rtmp_rs_module) as *mut c_void;
            zone = ngx::ffi::ngx_shared_memory_add(
                cf,
                &mut n,
                usize::try_from(*size).unwrap_or(usize::MAX),
                tag,
            );
            if zone.is_null() {
                return Err(format!("cannot add the TLS session cache zone \"{name}\""));
            }
            (*zone).init = Some(ngx::ffi::ngx_ssl_session_cache_init);
        }
        if ngx::ffi::ngx_ssl_session_cache(
            ssl,
            ptr::addr_of_mut!(SESSION_CONTEXT),
            certs,
            builtin,
            zone,
            (s.session_timeout_ms / 1000) as ngx::ffi::time_t,
        ) != NGX_OK as ngx_int_t
        {
            return Err("cannot set the TLS session cache".into());
        }
        Ok(ssl)
    }
}

/// OpenSSL's certificate callback for `ssl_certificate` names with `$ssl_server_name`: loads
/// the pairs named after the client's SNI name into its connection. A client whose name cannot
/// name a file (see [`server_name_for_path`]) fails its handshake with one `[info]` line; one
/// without SNI gets the names with an empty server name, as in nginx.
unsafe extern "C" fn load_certificates(ssl: *mut ngx::ffi::SSL, arg: *mut c_void) -> c_int {
    super::util::guard("ssl_certificate", 0, || {
        // SAFETY: OpenSSL calls this during a handshake of a connection nginx made
        // (ngx_ssl_create_connection put it at ngx_ssl_connection_index); arg is the pairs
        // Vec owned by the cycle pool, which outlives every connection of its listeners.
        unsafe {
            let c = ngx::ffi::SSL_get_ex_data(ssl, ngx::ffi::ngx_ssl_connection_index)
                as *mut ngx_connection_t;
            let pairs = arg as *const Vec<(CertPath, CertPath)>;
            if c.is_null() || pairs.is_null() {
                return 0;
            }
            let raw =
                ngx::ffi::SSL_get_servername(ssl, ngx::ffi::TLSEXT_NAMETYPE_host_name as c_int);
            let name = if raw.is_null() {
                String::new()
            } else {
                let bytes = core::ffi::CStr::from_ptr(raw).to_bytes();
                match server_name_for_path(bytes) {
                    Some(name) => name,
                    None => {
                        super::util::log(
                            ngx::ffi::NGX_LOG_INFO,
                            (*c).log,
                            "rtmp: TLS client's SNI name cannot name a certificate file; \
                             handshake refused",
                        );
                        return 0;
                    }
                }
            };
            for (cert, key) in &*pairs {
                let (Some(mut cert), Some(mut key)) = (
                    pool_str((*c).pool, &cert.expand(&name)),
                    pool_str((*c).pool, &key.expand(&name)),
                ) else {
                    return 0;
                };
                // nginx logs why a pair cannot be loaded. From 1.27.4 it takes an object
                // cache (none here: the files are read at each handshake).
                #[cfg(ngx_ssl_cache)]
                let rc = ngx::ffi::ngx_ssl_connection_certificate(
                    c,
                    (*c).pool,
                    &mut cert,
                    &mut key,
                    ptr::null_mut(),
                    ptr::null_mut(),
                );
                #[cfg(not(ngx_ssl_cache))]
                let rc = ngx::ffi::ngx_ssl_connection_certificate(
                    c,
                    (*c).pool,
                    &mut cert,
                    &mut key,
                    ptr::null_mut(),
                );
                if rc != NGX_OK as ngx_int_t {
                    return 0;
                }
            }
            1
        }
    })
}

/// A TLS client context for outgoing connections (https callbacks, `rtmps://` pushes):
/// TLSv1.2 and 1.3, the system's CA store plus `trusted` (the PEM file of the directive
/// `directive`; a file that cannot be loaded is logged and the system store stays). `what`
/// names the connections in the error line. Freed with [`free_client_context`].
pub fn client_context(
    what: &str,
    trusted: Option<&str>,
    directive: &str,
) -> Option<Box<ngx_ssl_t>> {
    // SAFETY: a zeroed ngx_ssl_t is what nginx's own modules start from (ngx_pcalloc);
    // ngx_ssl_create fills it in.
    let mut ssl: Box<ngx_ssl_t> = Box::new(unsafe { core::mem::zeroed() });
    // SAFETY: ngx_cycle is live; the caller keeps the context while connections use it.
    unsafe {
        ssl.log = (*ngx::ffi::ngx_cycle).log;
        let protocols =
            (ngx::ffi::NGX_SSL_TLSv1_2 | ngx::ffi::NGX_SSL_TLSv1_3) as ngx::ffi::ngx_uint_t;
        if ngx::ffi::ngx_ssl_create(&mut *ssl, protocols, ptr::null_mut()) != NGX_OK as ngx_int_t {
            super::util::log_cycle(
                ngx::ffi::NGX_LOG_ERR,
                &format!("rtmp: cannot create a TLS context for {what}"),
            );
            return None;
        }
        ngx::ffi::SSL_CTX_set_default_verify_paths(ssl.ctx.cast());
        if let Some(file) = trusted {
            let path = std::ffi::CString::new(file).unwrap_or_default();
            let ok =
                ngx::ffi::SSL_CTX_load_verify_locations(ssl.ctx.cast(), path.as_ptr(), ptr::null());
            if ok != 1 {
                super::util::log_cycle(
                    ngx::ffi::NGX_LOG_ERR,
                    &format!("rtmp: cannot load {directive} \"{file}\""),
                );
            }
        }
    }
    Some(ssl)
}

/// Frees a context made by [`client_context`] (connections still open hold their own
/// reference to it).
pub fn free_client_context(ssl: Box<ngx_ssl_t>) {
    let raw = Box::into_raw(ssl);
    // SAFETY: raw was filled in by ngx_ssl_create and is freed exactly once, here; the box
    // is rebuilt and dropped after nginx freed the OpenSSL context inside it.
    unsafe {
        ngx::ffi::ngx_ssl_cleanup_ctx(raw.cast());
        drop(Box::from_raw(raw));
    }
}

/// Starts the TLS handshake of an accepted connection. `then` runs once it is over (at once or
/// later from the event loop), successful or not: it checks [`handshaked`].
///
/// # Safety
/// `c` is a freshly accepted connection; `ssl` a context made by [`server_context`].
pub unsafe fn start(
    c: *mut ngx_connection_t,
    ssl: *mut ngx_ssl_t,
    timeout_ms: u64,
    then: unsafe extern "C" fn(*mut ngx_connection_t),
) {
    // SAFETY (whole fn): c is live and ours; nginx keeps c->ssl until ngx_ssl_shutdown.
    unsafe {
        if ngx::ffi::ngx_ssl_create_connection(ssl, c, 0) != NGX_OK as ngx_int_t {
            then(c);
            return;
        }
        let rc = ngx::ffi::ngx_ssl_handshake(c);
        if rc == NGX_AGAIN as ngx_int_t {
            ngx::ffi::ngx_add_timer((*c).read, timeout_ms.max(1) as ngx::ffi::ngx_msec_t);
            (*(*c).ssl).handler = Some(then);
            return;
        }
        then(c);
    }
}

/// Whether `c`'s handshake completed (false: it failed or timed out). Removes the handshake
/// timer.
///
/// # Safety
/// `c` is a live connection that went through [`start`].
pub unsafe fn handshaked(c: *mut ngx_connection_t) -> bool {
    // SAFETY: c is live; c->ssl is set by ngx_ssl_create_connection (null if that failed).
    unsafe {
        if (*(*c).read).timer_set() != 0 {
            ngx::ffi::ngx_del_timer((*c).read);
        }
        !(*c).ssl.is_null() && (*(*c).ssl).handshaked() != 0
    }
}

/// The version and SNI name the handshake agreed on ("TLSv1.3", "cam.example.com"), cleaned
/// and bounded by [`crate::server::TlsInfo::new`] (the name is the client's).
///
/// # Safety
/// `c` is a live, handshaked connection.
pub unsafe fn describe(c: *mut ngx_connection_t) -> crate::server::TlsInfo {
    // SAFETY: the getters copy into c's pool.
    unsafe {
        let mut proto = ngx_str_t {
            len: 0,
            data: ptr::null_mut(),
        };
        let mut sni = ngx_str_t {
            len: 0,
            data: ptr::null_mut(),
        };
        ngx::ffi::ngx_ssl_get_protocol(c, (*c).pool, &mut proto);
        ngx::ffi::ngx_ssl_get_server_name(c, (*c).pool, &mut sni);
        // The protocol getter sets only `data`, a C string from OpenSSL.
        let proto = if proto.data.is_null() {
            String::new()
        } else {
            std::ffi::CStr::from_ptr(proto.data as *const core::ffi::c_char)
                .to_string_lossy()
                .into_owned()
        };
        let sni = String::from_utf8_lossy(super::util::str_bytes(&sni));
        crate::server::TlsInfo::new(&proto, Some(&sni))
    }
}

/// Writes as much of `slices` as TLS takes now: the plaintext bytes taken (Ok(0) never means
/// "closed"), `WouldBlock` when the socket is full, another error when the connection failed.
///
/// # Safety
/// `c` is a live, handshaked TLS connection.
pub unsafe fn write(c: *mut ngx_connection_t, slices: &[IoSlice<'_>]) -> std::io::Result<usize> {
    GATHER.with(|g| {
        let mut g = g.borrow_mut();
        g.clear();
        for s in slices {
            let room = WRITE_CHUNK - g.len();
            if room == 0 {
                break;
            }
            g.extend_from_slice(s.get(..room.min(s.len())).unwrap_or(s));
        }
        if g.is_empty() {
            return Ok(0);
        }
        // SAFETY: c is a live TLS connection; g holds g.len() readable bytes. A retry after
        // NGX_AGAIN gathers the same bytes first (the queue only advances on success), which
        // is what OpenSSL asks of a repeated write.
        let n = unsafe { ngx::ffi::ngx_ssl_write(c, g.as_mut_ptr(), g.len()) };
        if n > 0 {
            Ok(n as usize)
        } else if n == NGX_AGAIN as isize {
            Err(std::io::ErrorKind::WouldBlock.into())
        } else {
            Err(std::io::Error::other("TLS write failed"))
        }
    })
}

/// Frees `c`'s TLS state before the connection is closed (no close_notify is waited for).
///
/// # Safety
/// `c` is a live connection about to be closed.
pub unsafe fn shutdown(c: *mut ngx_connection_t) {
    // SAFETY: c is live; ngx_ssl_shutdown frees c->ssl's SSL object and clears nothing else.
    unsafe {
        if !(*c).ssl.is_null() {
            (*(*c).ssl).set_no_wait_shutdown(1);
            ngx::ffi::ngx_ssl_shutdown(c);
        }
    }
}
