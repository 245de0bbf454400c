//! The http side of the module: `rtmp_stat` (XML as the C module, JSON, Prometheus) and
//! `rtmp_control` (drop, redirect; record answers that recording does not exist yet). Both
//! see every worker's sessions through the shared zone (see `shm`). `rtmp_low_latency` adds a
//! content-phase handler (see `lowlatency`).

use core::ffi::{c_char, c_void};
use core::ptr;

use ngx::ffi::{
    ngx_command_t, ngx_conf_t, ngx_http_conf_ctx_t, ngx_http_core_loc_conf_t, ngx_http_handler_pt,
    ngx_http_module_t, ngx_http_request_t, ngx_int_t, ngx_module_t, ngx_str_t, ngx_uint_t,
    NGX_CONF_1MORE, NGX_CONF_TAKE1, NGX_DECLINED, NGX_ERROR, NGX_HTTP_GET, NGX_HTTP_HEAD,
    NGX_HTTP_INTERNAL_SERVER_ERROR, NGX_HTTP_LOC_CONF, NGX_HTTP_MAIN_CONF, NGX_HTTP_MODULE,
    NGX_HTTP_NOT_ALLOWED, NGX_HTTP_SRV_CONF, NGX_OK,
};

use super::conf::{apply_directive, pool_owned};
use super::util::{guard, str_bytes, CONF_ERROR, CONF_OK};
use crate::conf::HttpConf;
use crate::control::{parse_control, Action as ControlAction, ControlError, ControlMask};
use crate::server::RecordControl;
use crate::stat::{Format, StatMask};

const HTTP_ANY: u32 = NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF;

static mut HTTP_COMMANDS: [ngx_command_t; 7] = [
    http_command(c"rtmp_stat", HTTP_ANY | NGX_CONF_1MORE),
    http_command(c"rtmp_stat_stylesheet", HTTP_ANY | NGX_CONF_TAKE1),
    http_command(c"rtmp_stat_format", HTTP_ANY | NGX_CONF_TAKE1),
    http_command(c"rtmp_control", HTTP_ANY | NGX_CONF_1MORE),
    http_command(c"flv_live", HTTP_ANY | NGX_CONF_TAKE1),
    http_command(c"rtmp_low_latency", HTTP_ANY | NGX_CONF_TAKE1),
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
        conf: NGX_HTTP_LOC_CONF_OFFSET_BYTES,
        offset: 0,
        post: ptr::null_mut(),
    }
}

/// `NGX_HTTP_LOC_CONF_OFFSET`: directives get the level's location configuration (ours).
const NGX_HTTP_LOC_CONF_OFFSET_BYTES: ngx_uint_t =
    core::mem::offset_of!(ngx_http_conf_ctx_t, loc_conf) as ngx_uint_t;

static mut HTTP_CTX: ngx_http_module_t = ngx_http_module_t {
    preconfiguration: None,
    postconfiguration: Some(postconfiguration),
    create_main_conf: None,
    init_main_conf: None,
    create_srv_conf: None,
    merge_srv_conf: None,
    create_loc_conf: Some(create_loc_conf),
    merge_loc_conf: Some(merge_loc_conf),
};

#[no_mangle]
#[allow(non_upper_case_globals)]
pub static mut ngx_http_rtmp_rs_module: ngx_module_t = ngx_module_t {
    ctx: ptr::addr_of_mut!(HTTP_CTX) as *mut c_void,
    commands: ptr::addr_of_mut!(HTTP_COMMANDS) as *mut ngx_command_t,
    type_: NGX_HTTP_MODULE as ngx_uint_t,
    ..ngx_module_t::default()
};

extern "C" fn postconfiguration(cf: *mut ngx_conf_t) -> ngx_int_t {
    guard("http postconfiguration", NGX_ERROR as ngx_int_t, || {
        // SAFETY: nginx calls this once the http block is parsed, with its configuration.
        unsafe { super::lowlatency::postconfiguration(cf) }
    })
}

extern "C" fn create_loc_conf(cf: *mut ngx_conf_t) -> *mut c_void {
    guard("http create_loc_conf", ptr::null_mut(), || {
        // SAFETY: cf->pool is the cycle's pool; the conf is freed with it.
        unsafe { pool_owned((*cf).pool, HttpConf::default()).cast() }
    })
}

extern "C" fn merge_loc_conf(
    _cf: *mut ngx_conf_t,
    parent: *mut c_void,
    child: *mut c_void,
) -> *mut c_char {
    guard("http merge_loc_conf", CONF_ERROR, || {
        // SAFETY: both come from create_loc_conf.
        unsafe {
            let parent = &*(parent as *const HttpConf);
            (*(child as *mut HttpConf)).merge_from(parent);
        }
        CONF_OK
    })
}

extern "C" fn http_directive(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    guard("http directive", CONF_ERROR, || {
        // SAFETY: cf and cmd come from nginx's parser; conf is this level's HttpConf.
        unsafe {
            let here = &mut *(conf as *mut HttpConf);
            let rv = apply_directive(cf, cmd, |n, a| here.apply(n, a));
            if rv != CONF_OK {
                return rv;
            }
            let name = str_bytes(&(*cmd).name);
            let handler: ngx_http_handler_pt = match name {
                b"rtmp_stat" => Some(stat_handler),
                b"rtmp_control" => Some(control_handler),
                b"flv_live" if here.flv_live == Some(true) => Some(super::httpflv::handler),
                _ => return CONF_OK,
            };
            let ctx = (*cf).ctx as *mut ngx_http_conf_ctx_t;
            let core_index = ngx::ffi::ngx_http_core_module.ctx_index;
            let clcf = *(*ctx).loc_conf.add(core_index) as *mut ngx_http_core_loc_conf_t;
            (*clcf).handler = handler;
            CONF_OK
        }
    })
}

/// This location's settings.
///
/// # Safety
/// `r` is a live request of a location configured by this module.
pub(super) unsafe fn loc_conf<'a>(r: *mut ngx_http_request_t) -> &'a HttpConf {
    // SAFETY: create_loc_conf made an HttpConf for every location.
    unsafe {
        let index = (*ptr::addr_of!(ngx_http_rtmp_rs_module)).ctx_index;
        &*(*(*r).loc_conf.add(index) as *const HttpConf)
    }
}

/// `GET /stat`: every worker's sessions, as XML (default), JSON or Prometheus text.
extern "C" fn stat_handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    guard(
        "stat handler",
        NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t,
        || {
            // SAFETY: r is the live request nginx is asking us to answer.
            unsafe {
                if let Some(rc) = only_get(r) {
                    return rc;
                }
                let lc = loc_conf(r);
                let args = String::from_utf8_lossy(str_bytes(&(*r).args)).into_owned();
                let default = lc.stat_format.map_or(Format::Xml, Format::from);
                let format = Format::from_query_or(&args, default);
                let mask = lc.stat.map_or(StatMask::ALL, StatMask::from);
                let snapshot = super::shm::stat_snapshot();
                let body =
                    crate::stat::render(&snapshot, format, mask, lc.stat_stylesheet.as_deref());
                respond(r, 200, format.content_type(), body.as_bytes())
            }
        },
    )
}

/// `GET /control/<section>/<method>?...`: acts on matching sessions in every worker and
/// answers how many, as the C module does.
extern "C" fn control_handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    guard(
        "control handler",
        NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t,
        || {
            // SAFETY: r is the live request nginx is asking us to answer.
            unsafe {
                if let Some(rc) = only_get(r) {
                    return rc;
                }
                let lc = loc_conf(r);
                let uri = String::from_utf8_lossy(str_bytes(&(*r).uri)).into_owned();
                let args = String::from_utf8_lossy(str_bytes(&(*r).args)).into_owned();
                let req = match parse_control(&uri, &args) {
                    Ok(req) => req,
                    Err(ControlError::UnknownSection(_)) => return NGX_DECLINED as ngx_int_t,
                    Err(e) => {
                        let text = format!("{e}\n");
                        return respond(r, 400, "text/plain", text.as_bytes());
                    }
                };
                let mask = lc.control.map_or(ControlMask::ALL, ControlMask::from);
                if !mask.allows(&req) {
                    let text = "this control section is not enabled by rtmp_control here\n";
                    return respond(r, 403, "text/plain", text.as_bytes());
                }
                if let ControlAction::RecordStart { rec } | ControlAction::RecordStop { rec } =
                    &req.action
                {
                    let start = matches!(req.action, ControlAction::RecordStart { .. });
                    let answer = super::shm::record_control(&req, &uri, &args, rec, start);
                    // As the C module: the file's path, 204 when there is none, 500 when
                    // the stream has no such recorder.
                    return match answer {
                        RecordControl::Done(Some(path)) => {
                            let body = path.to_string_lossy().into_owned();
                            respond(r, 200, "text/plain", body.as_bytes())
                        }
                        RecordControl::Done(None) | RecordControl::NoStream => {
                            respond(r, 204, "text/plain", b"")
                        }
                        RecordControl::NoRecorder => {
                            respond(r, 500, "text/plain", b"Recorder not found\n")
                        }
                    };
                }
                let count = super::shm::control(&req, &uri, &args);
                respond(r, 200, "text/plain", format!("{count}").as_bytes())
            }
        },
    )
}

/// Refuses methods other than GET and HEAD (405), and drops any request body.
///
/// # Safety
/// `r` is a live request.
unsafe fn only_get(r: *mut ngx_http_request_t) -> Option<ngx_int_t> {
    // SAFETY: r is live.
    unsafe {
        let get_or_head = (NGX_HTTP_GET | NGX_HTTP_HEAD) as ngx_uint_t;
        if (*r).method & get_or_head == 0 {
            return Some(NGX_HTTP_NOT_ALLOWED as ngx_int_t);
        }
        let rc = ngx::ffi::ngx_http_discard_request_body(r);
        if rc != NGX_OK as ngx_int_t {
            return Some(rc);
        }
        None
    }
}

/// Sends a complete, uncached response.
///
/// # Safety
/// `r` is a live request that has not been answered yet.
unsafe fn respond(
    r: *mut ngx_http_request_t,
    status: usize,
    content_type: &'static str,
    body: &[u8],
) -> ngx_int_t {
    // SAFETY: r is live; the buffers come from its pool and live as long as the request.
    unsafe {
        (*r).headers_out.status = status;
        (*r).headers_out.content_type = ngx_str_t {
            len: content_type.len(),
            data: content_type.as_ptr() as *mut u8,
        };
        (*r).headers_out.content_type_len = content_type.len();
        let req = ngx::http::Request::from_ngx_http_request(r);
        req.add_header_out("Cache-Control", "no-cache");
        super::util::send_whole_body(r, body)
    }
}
