//! FFI glue: the only ring with `unsafe`. It declares the nginx modules this `.so` exports,
//! parses the `rtmp {}` block into the pure config model, opens the listening sockets and drives
//! each RTMP connection from nginx's event loop. Protocol and fan-out logic live in the pure
//! [`crate::server::Worker`]; this ring only moves bytes and events between it and nginx.
//!
//! Every `extern "C"` entry point runs its body inside [`guard`], so a panic is logged and
//! contained instead of unwinding into nginx's C code.

mod conf;
mod conn;
mod exec;
mod filejobs;
mod growing;
mod http;
mod httpflv;
mod logfile;
mod lowlatency;
mod netcall;
mod outgoing;
mod relay;
mod shm;
mod tls;
mod util;
mod worker;

use core::ffi::c_char;
use core::ptr;

use ngx::ffi::ngx_module_t;

pub use conf::{ngx_rtmp_rs_core_module, ngx_rtmp_rs_module};
pub use http::ngx_http_rtmp_rs_module;

/// The module list nginx reads from a dynamic module (`ngx_modules!` cannot declare several
/// modules in ngx 0.5.1, so the three exported statics are written by hand).
#[no_mangle]
#[allow(non_upper_case_globals)]
pub static mut ngx_modules: [*const ngx_module_t; 4] = [
    ptr::addr_of!(ngx_rtmp_rs_module),
    ptr::addr_of!(ngx_rtmp_rs_core_module),
    ptr::addr_of!(ngx_http_rtmp_rs_module),
    ptr::null(),
];

/// Names are distinct from the C module's `ngx_rtmp_module` family, so both `.so` files can sit
/// side by side; loading both at once is refused with a clear message (see `conf`).
#[no_mangle]
#[allow(non_upper_case_globals)]
pub static mut ngx_module_names: [*const c_char; 4] = [
    c"ngx_rtmp_rs_module".as_ptr(),
    c"ngx_rtmp_rs_core_module".as_ptr(),
    c"ngx_http_rtmp_rs_module".as_ptr(),
    ptr::null(),
];

#[no_mangle]
#[allow(non_upper_case_globals)]
pub static mut ngx_module_order: [*const c_char; 1] = [ptr::null()];
