//! The http side of the module: `rtmp_stat`, `rtmp_stat_stylesheet` and `rtmp_control`.
//! They parse now (so existing configs load) and are served in a later issue.

use core::ffi::{c_char, c_void};
use core::ptr;

use ngx::ffi::{
    ngx_command_t, ngx_conf_t, ngx_http_module_t, ngx_module_t, ngx_str_t, ngx_uint_t,
    NGX_CONF_1MORE, NGX_CONF_TAKE1, NGX_HTTP_LOC_CONF, NGX_HTTP_MAIN_CONF, NGX_HTTP_MODULE,
    NGX_HTTP_SRV_CONF,
};

use super::conf::apply_directive;
use super::util::{guard, CONF_ERROR};
use crate::conf::HttpConf;

const HTTP_ANY: u32 = NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF;

static mut HTTP_COMMANDS: [ngx_command_t; 4] = [
    http_command(c"rtmp_stat", HTTP_ANY | NGX_CONF_1MORE),
    http_command(c"rtmp_stat_stylesheet", HTTP_ANY | NGX_CONF_TAKE1),
    http_command(c"rtmp_control", HTTP_ANY | NGX_CONF_1MORE),
    ngx_command_t::empty(),
];

const fn http_command(name: &'static core::ffi::CStr, flags: u32) -> ngx_command_t {
    ngx_command_t {
        name: ngx_str_t {
            len: name.count_bytes(),
            data: name.as_ptr() as *mut u8,
        },
        type_: flags as ngx_uint_t,
        set: Some(http_directive),
        conf: 0,
        offset: 0,
        post: ptr::null_mut(),
    }
}

static mut HTTP_CTX: ngx_http_module_t = ngx_http_module_t {
    preconfiguration: None,
    postconfiguration: None,
    create_main_conf: None,
    init_main_conf: None,
    create_srv_conf: None,
    merge_srv_conf: None,
    create_loc_conf: None,
    merge_loc_conf: None,
};

#[no_mangle]
#[allow(non_upper_case_globals)]
pub static mut ngx_http_rtmp_rs_module: ngx_module_t = ngx_module_t {
    ctx: ptr::addr_of_mut!(HTTP_CTX) as *mut c_void,
    commands: ptr::addr_of_mut!(HTTP_COMMANDS) as *mut ngx_command_t,
    type_: NGX_HTTP_MODULE as ngx_uint_t,
    ..ngx_module_t::default()
};

extern "C" fn http_directive(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    _conf: *mut c_void,
) -> *mut c_char {
    guard("http directive", CONF_ERROR, || {
        // Values are checked now; the handlers and their per-location state come later.
        let mut scratch = HttpConf::default();
        // SAFETY: cf and cmd come from nginx's parser for this directive.
        unsafe { apply_directive(cf, cmd, |n, a| scratch.apply(n, a)) }
    })
}
