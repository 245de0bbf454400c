//! The `rtmp {}` block: module declarations, directive table, block parsing, merge, listening
//! sockets. Values are parsed and merged by the pure [`crate::conf`] model; this file only walks
//! nginx's parser and hands it each directive's words.

use core::ffi::{c_char, c_void};
use core::mem::offset_of;
use core::ptr;
use std::net::SocketAddr;
use std::rc::Rc;

use ngx::ffi::{
    ngx_array_t, ngx_command_t, ngx_conf_parse, ngx_conf_t, ngx_core_module_t, ngx_count_modules,
    ngx_create_listening, ngx_cycle_t, ngx_listening_t, ngx_module_t, ngx_pcalloc,
    ngx_pool_cleanup_add, ngx_str_t, ngx_uint_t, NGX_CONF_1MORE, NGX_CONF_2MORE, NGX_CONF_ANY,
    NGX_CONF_BLOCK, NGX_CONF_NOARGS, NGX_CONF_TAKE1, NGX_CONF_TAKE2, NGX_CONF_TAKE3,
    NGX_CONF_TAKE4, NGX_CONF_TAKE5, NGX_CONF_TAKE6, NGX_CONF_TAKE7, NGX_CORE_MODULE,
    NGX_DIRECT_CONF, NGX_LISTEN_BACKLOG, NGX_LOG_EMERG, NGX_LOG_WARN, NGX_MAIN_CONF,
};

use super::util::{guard, str_bytes, CONF_ERROR, CONF_OK};
use crate::conf::{self as model, ArgCount, Context, RtmpConf, Support};
use crate::server::{AppConfig, ServerConfig};

/// Our own module type ("TMRS"), distinct from the C module's "RTMP" so the two never read each
/// other's configuration.
pub const NGX_RTMP_RS_MODULE: ngx_uint_t = 0x5352_4D54;
/// Context bits for our directives (the same values the C module uses for its own type).
const RTMP_MAIN_CONF: ngx_uint_t = 0x0200_0000;
const RTMP_SRV_CONF: ngx_uint_t = 0x0400_0000;
const RTMP_APP_CONF: ngx_uint_t = 0x0800_0000;
const RTMP_REC_CONF: ngx_uint_t = 0x1000_0000;

/// What `cf->ctx` points at while nginx parses inside our blocks. nginx finds a directive's
/// conf as `((void ***) cf->ctx + cmd->conf)[ctx_index]`; every directive uses `app_conf`, the
/// innermost level, because the same [`RtmpConf`] type is used at every level.
#[repr(C)]
struct BlockCtx {
    main_conf: *mut *mut c_void,
    srv_conf: *mut *mut c_void,
    app_conf: *mut *mut c_void,
    tree: *mut ConfTree,
    server: usize,
    app: usize,
}

/// The parsed `rtmp {}` block, level by level, before merging.
#[derive(Default)]
struct ConfTree {
    main: Box<RtmpConf>,
    servers: Vec<ServerNode>,
}

struct ServerNode {
    conf: Box<RtmpConf>,
    apps: Vec<AppNode>,
}

struct AppNode {
    name: String,
    conf: Box<RtmpConf>,
    recorders: Vec<(String, Box<RtmpConf>)>,
}

/// The core module's configuration: lives in the cycle's pool for the cycle's lifetime.
#[derive(Default)]
pub struct MainConf {
    parsed: bool,
    /// Main-context directives (`rtmp_auto_push` and friends).
    main_context: model::MainConf,
    pub servers: Vec<Rc<ServerConfig>>,
    /// Every `exec_static` line (wherever written), run by worker 0.
    pub statics: crate::server::StaticExecs,
    /// Output directories created at load time, handed to the worker user in init_main_conf.
    output_dirs: Vec<std::path::PathBuf>,
}

/// The `server{}` blocks of the running configuration (empty before it is parsed).
pub fn servers() -> Vec<Rc<ServerConfig>> {
    // SAFETY: reads our core module's conf of the current cycle, which lives as long as the
    // cycle; the worker's only thread.
    unsafe {
        let cycle = ngx::ffi::ngx_cycle;
        if cycle.is_null() || (*cycle).conf_ctx.is_null() {
            return Vec::new();
        }
        let conf = *(*cycle).conf_ctx.add(ngx_rtmp_rs_module.index) as *const MainConf;
        if conf.is_null() {
            return Vec::new();
        }
        (*conf).servers.clone()
    }
}

/// `ls->servers` of each of our listening sockets.
pub struct ListenCtx {
    pub server: Rc<ServerConfig>,
    /// The server's TLS context for an `ssl` listener (null: plain RTMP).
    pub ssl: *mut ngx::ffi::ngx_ssl_t,
    /// `ssl_handshake_timeout`.
    pub handshake_timeout_ms: u64,
}

// ---------------------------------------------------------------------------------------------
// Module declarations, in nginx's order: commands, ctx, module.

static mut CORE_COMMANDS: [ngx_command_t; 5] = [
    ngx_command_t {
        name: ngx_str_t {
            len: 4,
            data: c"rtmp".as_ptr() as *mut u8,
        },
        type_: (NGX_MAIN_CONF | NGX_CONF_BLOCK | NGX_CONF_NOARGS) as ngx_uint_t,
        set: Some(rtmp_block),
        conf: 0,
        offset: 0,
        post: ptr::null_mut(),
    },
    main_context_command(c"rtmp_auto_push"),
    main_context_command(c"rtmp_auto_push_reconnect"),
    main_context_command(c"rtmp_socket_dir"),
    ngx_command_t::empty(),
];

const fn main_context_command(name: &'static core::ffi::CStr) -> ngx_command_t {
    ngx_command_t {
        name: ngx_str_t {
            len: name.count_bytes(),
            data: name.as_ptr() as *mut u8,
        },
        type_: (NGX_MAIN_CONF | NGX_DIRECT_CONF | NGX_CONF_TAKE1) as ngx_uint_t,
        set: Some(main_context_directive),
        conf: 0,
        offset: 0,
        post: ptr::null_mut(),
    }
}

static mut CORE_CTX: ngx_core_module_t = ngx_core_module_t {
    name: ngx_str_t {
        len: 4,
        data: c"rtmp".as_ptr() as *mut u8,
    },
    create_conf: Some(create_main_conf),
    init_conf: Some(init_main_conf),
};

/// Owns the `rtmp {}` block (an NGX_CORE_MODULE, like `ngx_stream_module`).
#[no_mangle]
#[allow(non_upper_case_globals)]
pub static mut ngx_rtmp_rs_module: ngx_module_t = ngx_module_t {
    ctx: ptr::addr_of_mut!(CORE_CTX) as *mut c_void,
    commands: ptr::addr_of_mut!(CORE_COMMANDS) as *mut ngx_command_t,
    type_: NGX_CORE_MODULE as ngx_uint_t,
    init_process: Some(super::worker::init_process),
    exit_process: Some(super::worker::exit_process),
    ..ngx_module_t::default()
};

/// The module of our own type whose directives live inside `rtmp {}`. Its command table is built
/// from the pure directive table when the first `rtmp {}` block is parsed.
#[no_mangle]
#[allow(non_upper_case_globals)]
pub static mut ngx_rtmp_rs_core_module: ngx_module_t = ngx_module_t {
    ctx: ptr::null_mut(),
    commands: ptr::null_mut(),
    type_: NGX_RTMP_RS_MODULE,
    ..ngx_module_t::default()
};

// ---------------------------------------------------------------------------------------------
// Core module callbacks.

extern "C" fn create_main_conf(cycle: *mut ngx_cycle_t) -> *mut c_void {
    guard("create_main_conf", ptr::null_mut(), || {
        // Built here, at load_module time, so that a directive of ours outside rtmp{} gets
        // nginx's "is not allowed here" rather than "unknown directive".
        // SAFETY: configuration parsing is single-threaded.
        unsafe { ensure_core_commands() };
        // SAFETY: nginx passes the cycle being configured; its pool outlives the conf.
        unsafe { pool_owned((*cycle).pool, MainConf::default()) }.cast()
    })
}

extern "C" fn init_main_conf(cycle: *mut ngx_cycle_t, conf: *mut c_void) -> *mut c_char {
    guard("init_main_conf", CONF_ERROR, || {
        // SAFETY: conf is our MainConf; the core module's conf (worker user) is resolved by
        // now, because ngx_core_module's init_conf runs before ours.
        unsafe {
            let main = &*(conf as *const MainConf);
            let ccf = *(*cycle).conf_ctx.add(ngx::ffi::ngx_core_module.index)
                as *const ngx::ffi::ngx_core_conf_t;
            if libc::geteuid() == 0 && !ccf.is_null() && (*ccf).user != u32::MAX {
                for dir in &main.output_dirs {
                    // Like nginx's own temp paths: the master creates them, workers write them.
                    let _ = std::os::unix::fs::chown(dir, Some((*ccf).user), None);
                }
            }
        }
        // SAFETY: `modules` holds `modules_n` module pointers once configuration is parsed.
        let modules = unsafe { core::slice::from_raw_parts((*cycle).modules, (*cycle).modules_n) };
        for &module in modules {
            // SAFETY: every entry is a live module with a NUL-terminated name.
            let name = unsafe { core::ffi::CStr::from_ptr((*module).name) };
            if name.to_bytes() == b"ngx_rtmp_module" {
                super::util::log(
                    NGX_LOG_EMERG,
                    // SAFETY: the cycle's log is valid during configuration.
                    unsafe { (*cycle).log },
                    "nginx-rtmp-rs cannot run beside the C nginx-rtmp-module (ngx_rtmp_module): \
                     both claim the \"rtmp\" block; remove the other load_module line \
                     (on Debian: /etc/nginx/modules-enabled/50-mod-rtmp.conf)",
                );
                return CONF_ERROR;
            }
        }
        CONF_OK
    })
}

extern "C" fn main_context_directive(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    guard("main-context directive", CONF_ERROR, || {
        // SAFETY: NGX_DIRECT_CONF hands us the MainConf created by create_main_conf.
        let main = unsafe { &mut *(conf as *mut MainConf) };
        // SAFETY: cf and cmd come from nginx's parser for this directive.
        unsafe { apply_directive(cf, cmd, |n, a| main.main_context.apply(n, a)) }
    })
}

// ---------------------------------------------------------------------------------------------
// Block handlers.

extern "C" fn rtmp_block(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    guard("rtmp block", CONF_ERROR, || {
        // SAFETY: for a non-direct NGX_MAIN_CONF directive nginx passes the address of our slot in
        // cycle->conf_ctx, which holds the MainConf from create_main_conf.
        let main = unsafe { &mut **(conf as *mut *mut MainConf) };
        if main.parsed {
            return c"is duplicate".as_ptr() as *mut c_char;
        }
        main.parsed = true;
        // SAFETY: cf is the live parser state; the tree is owned by the cycle pool afterwards.
        unsafe { parse_rtmp_block(cf, main) }
    })
}

unsafe fn parse_rtmp_block(cf: *mut ngx_conf_t, main: &mut MainConf) -> *mut c_char {
    // SAFETY (whole fn): cf is nginx's live parser; everything allocated here is owned by the
    // cycle pool (cleanups registered) and outlives the parse.
    unsafe {
        if ngx_count_modules((*cf).cycle, NGX_RTMP_RS_MODULE) as isize == -1 {
            return CONF_ERROR;
        }
        ensure_core_commands();

        let tree: *mut ConfTree = pool_owned((*cf).pool, ConfTree::default());
        let main_level: *mut RtmpConf = &mut *(*tree).main;
        let main_arr = conf_array(cf, main_level);
        if main_arr.is_null() {
            return CONF_ERROR;
        }
        let ctx = block_ctx(cf, main_arr, main_arr, main_arr, tree, 0, 0);
        if ctx.is_null() {
            return CONF_ERROR;
        }
        let rv = parse_nested(cf, ctx, RTMP_MAIN_CONF);
        if rv != CONF_OK {
            return rv;
        }
        if let Err(e) = super::shm::add_zone(cf) {
            return conf_error(cf, &e);
        }
        build_runtime(cf, &mut *tree, main)
    }
}

extern "C" fn server_block(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    _conf: *mut c_void,
) -> *mut c_char {
    guard("server block", CONF_ERROR, || {
        // SAFETY: only reachable inside rtmp{}, where cf->ctx is our BlockCtx.
        unsafe {
            let parent = &*((*cf).ctx as *const BlockCtx);
            let tree = &mut *parent.tree;
            tree.servers.push(ServerNode {
                conf: Box::default(),
                apps: Vec::new(),
            });
            let index = tree.servers.len() - 1;
            let Some(server) = tree.servers.last_mut() else {
                return conf_error(cf, "internal error: server block not recorded");
            };
            let level: *mut RtmpConf = &mut *server.conf;
            parse_level(cf, parent, level, RTMP_SRV_CONF, index, 0)
        }
    })
}

extern "C" fn application_block(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    _conf: *mut c_void,
) -> *mut c_char {
    guard("application block", CONF_ERROR, || {
        // SAFETY: only reachable inside server{}, where cf->ctx is our BlockCtx.
        unsafe {
            let parent = &*((*cf).ctx as *const BlockCtx);
            let Some(name) = arg_str(cf, 1) else {
                return conf_error(cf, "invalid application name");
            };
            if let Err(e) =
                crate::rtmp::command::validate_name(crate::rtmp::command::NameKind::App, &name)
            {
                return conf_error(cf, &format!("invalid application name: {e}"));
            }
            let tree = &mut *parent.tree;
            let Some(server) = tree.servers.get_mut(parent.server) else {
                return conf_error(cf, "application outside a server block");
            };
            if server.apps.iter().any(|a| a.name == name) {
                return conf_error(cf, &format!("duplicate application \"{name}\""));
            }
            server.apps.push(AppNode {
                name,
                conf: Box::default(),
                recorders: Vec::new(),
            });
            let index = server.apps.len() - 1;
            let Some(app) = server.apps.last_mut() else {
                return conf_error(cf, "internal error: application block not recorded");
            };
            let level: *mut RtmpConf = &mut *app.conf;
            parse_level(cf, parent, level, RTMP_APP_CONF, parent.server, index)
        }
    })
}

extern "C" fn recorder_block(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    _conf: *mut c_void,
) -> *mut c_char {
    guard("recorder block", CONF_ERROR, || {
        // SAFETY: only reachable inside application{}, where cf->ctx is our BlockCtx.
        unsafe {
            let parent = &*((*cf).ctx as *const BlockCtx);
            let Some(name) = arg_str(cf, 1) else {
                return conf_error(cf, "invalid recorder name");
            };
            let tree = &mut *parent.tree;
            let Some(app) = tree
                .servers
                .get_mut(parent.server)
                .and_then(|s| s.apps.get_mut(parent.app))
            else {
                return conf_error(cf, "recorder outside an application block");
            };
            if app.recorders.iter().any(|(n, _)| *n == name) {
                return conf_error(cf, &format!("duplicate recorder \"{name}\""));
            }
            app.recorders.push((name, Box::default()));
            let Some((_, conf)) = app.recorders.last_mut() else {
                return conf_error(cf, "internal error: recorder block not recorded");
            };
            let level: *mut RtmpConf = &mut **conf;
            parse_level(cf, parent, level, RTMP_REC_CONF, parent.server, parent.app)
        }
    })
}

/// Every directive inside `rtmp {}`: the pure model checks the value and stores it.
extern "C" fn rtmp_directive(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    guard("rtmp directive", CONF_ERROR, || {
        // SAFETY: every entry of our table uses the app_conf offset, which points at the current
        // level's RtmpConf (see BlockCtx).
        let level = unsafe { &mut *(conf as *mut RtmpConf) };
        // SAFETY: cf and cmd come from nginx's parser for this directive.
        let rv = unsafe { apply_directive(cf, cmd, |n, a| level.apply(n, a)) };
        if rv != CONF_OK {
            return rv;
        }
        // Output directories are created while the directive's own line is at hand, so a
        // path that cannot exist is reported at that line (as nginx does for its paths).
        // SAFETY: cmd->name is one of our static names; cf is live.
        let name = unsafe { str_bytes(&(*cmd).name) };
        let path = match name {
            b"hls_path" => &level.hls.path,
            b"hls_key_path" => &level.hls.key_path,
            b"dash_path" => &level.dash.path,
            _ => return CONF_OK,
        };
        let Some(path) = path.as_deref() else {
            return CONF_OK;
        };
        // SAFETY: the cycle's prefix lives as long as the cycle.
        let prefix = unsafe { str_bytes(&(*(*cf).cycle).prefix) };
        let full = prefixed(prefix, path);
        if !full.is_dir() {
            if let Err(e) = std::fs::create_dir_all(&full) {
                let msg = format!("cannot create directory \"{}\": {e}", full.display());
                return unsafe { conf_error(cf, &msg) };
            }
        }
        CONF_OK
    })
}

/// `path` under nginx's prefix when relative (like `root`), as it is when absolute.
fn prefixed(prefix: &[u8], path: &str) -> std::path::PathBuf {
    use std::os::unix::ffi::OsStrExt;
    std::path::Path::new(std::ffi::OsStr::from_bytes(prefix)).join(path)
}

/// Hands one directive's words to the pure model (`apply`), then logs its warning and, for a
/// directive not implemented yet, the one `[warn]` line that names it.
pub(super) unsafe fn apply_directive(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    apply: impl FnOnce(&str, &[&str]) -> model::Applied,
) -> *mut c_char {
    // SAFETY: cmd->name is one of our NUL-terminated static names; cf->args holds the words.
    let name = unsafe { String::from_utf8_lossy(str_bytes(&(*cmd).name)).into_owned() };
    let Some(words) = (unsafe { args(cf) }) else {
        return unsafe {
            conf_error(
                cf,
                &format!("invalid non-UTF-8 value in \"{name}\" directive"),
            )
        };
    };
    let Some(directive) = model::find(&name) else {
        return unsafe { conf_error(cf, &format!("unknown directive \"{name}\"")) };
    };
    let refs: Vec<&str> = words.iter().skip(1).map(String::as_str).collect();
    match apply(&name, &refs) {
        Ok(warning) => {
            if let Some(text) = warning {
                unsafe { conf_log(cf, NGX_LOG_WARN, &text) };
            }
            match directive.support {
                Support::Implemented => {}
                Support::Planned => unsafe {
                    conf_log(
                        cf,
                        NGX_LOG_WARN,
                        &format!("\"{name}\" is not implemented yet and is ignored"),
                    )
                },
                Support::Unneeded(why) => unsafe {
                    conf_log(
                        cf,
                        NGX_LOG_WARN,
                        &format!("\"{name}\" is not needed and is ignored: {why}"),
                    )
                },
            }
            CONF_OK
        }
        Err(e) => unsafe { conf_error(cf, &e.to_string()) },
    }
}

// ---------------------------------------------------------------------------------------------
// The directive table of ngx_rtmp_rs_core_module, built once from the pure model.

static mut RTMP_COMMANDS: *mut ngx_command_t = ptr::null_mut();

/// Builds (once per process) the command table nginx searches while parsing inside `rtmp {}`.
unsafe fn ensure_core_commands() {
    // SAFETY: configuration parsing is single-threaded; the table is leaked on purpose (it must
    // live as long as the module is loaded).
    unsafe {
        if !RTMP_COMMANDS.is_null() {
            return;
        }
        let mut table = vec![
            block_command(
                c"server",
                RTMP_MAIN_CONF | NGX_CONF_NOARGS as ngx_uint_t,
                server_block,
            ),
            block_command(
                c"application",
                RTMP_SRV_CONF | NGX_CONF_TAKE1 as ngx_uint_t,
                application_block,
            ),
            block_command(
                c"recorder",
                RTMP_APP_CONF | NGX_CONF_TAKE1 as ngx_uint_t,
                recorder_block,
            ),
        ];
        for d in model::DIRECTIVES {
            let mut contexts: ngx_uint_t = 0;
            for c in d.contexts {
                contexts |= match c {
                    Context::Rtmp => RTMP_MAIN_CONF,
                    Context::Server => RTMP_SRV_CONF,
                    Context::Application => RTMP_APP_CONF,
                    Context::Recorder => RTMP_REC_CONF,
                    Context::Main | Context::Http => 0,
                };
            }
            if contexts == 0 {
                continue;
            }
            // Directive names are static ASCII words; one with a NUL could not be registered
            // (nginx would then report it as an unknown directive).
            let Ok(name) = std::ffi::CString::new(d.name) else {
                continue;
            };
            let name: &'static core::ffi::CStr = Box::leak(name.into_boxed_c_str());
            table.push(ngx_command_t {
                name: ngx_str_t {
                    len: d.name.len(),
                    data: name.as_ptr() as *mut u8,
                },
                type_: contexts | arg_flags(d.args),
                set: Some(rtmp_directive),
                conf: offset_of!(BlockCtx, app_conf),
                offset: 0,
                post: ptr::null_mut(),
            });
        }
        table.push(ngx_command_t::empty());
        RTMP_COMMANDS = Box::leak(table.into_boxed_slice()).as_mut_ptr();
        (*ptr::addr_of_mut!(ngx_rtmp_rs_core_module)).commands = RTMP_COMMANDS;
    }
}

type SetFn = unsafe extern "C" fn(*mut ngx_conf_t, *mut ngx_command_t, *mut c_void) -> *mut c_char;

fn block_command(name: &'static core::ffi::CStr, flags: ngx_uint_t, set: SetFn) -> ngx_command_t {
    ngx_command_t {
        name: ngx_str_t {
            len: name.count_bytes(),
            data: name.as_ptr() as *mut u8,
        },
        type_: flags | NGX_CONF_BLOCK as ngx_uint_t,
        set: Some(set),
        conf: offset_of!(BlockCtx, app_conf),
        offset: 0,
        post: ptr::null_mut(),
    }
}

/// nginx's argument-count flags for a directive's shape.
pub fn arg_flags(args: ArgCount) -> ngx_uint_t {
    const TAKE: [u32; 8] = [
        NGX_CONF_NOARGS,
        NGX_CONF_TAKE1,
        NGX_CONF_TAKE2,
        NGX_CONF_TAKE3,
        NGX_CONF_TAKE4,
        NGX_CONF_TAKE5,
        NGX_CONF_TAKE6,
        NGX_CONF_TAKE7,
    ];
    let flags = match args {
        ArgCount::Flag => NGX_CONF_TAKE1,
        ArgCount::Exactly(n) => TAKE.get(n as usize).copied().unwrap_or(NGX_CONF_1MORE),
        ArgCount::Between(lo, hi) if hi <= 7 => TAKE
            .get(usize::from(lo)..=usize::from(hi))
            .unwrap_or_default()
            .iter()
            .fold(0, |acc, flag| acc | flag),
        ArgCount::Between(lo, _) | ArgCount::AtLeast(lo) => match lo {
            0 => NGX_CONF_ANY,
            1 => NGX_CONF_1MORE,
            _ => NGX_CONF_2MORE,
        },
    };
    flags as ngx_uint_t
}

// ---------------------------------------------------------------------------------------------
// Merge, runtime config and listening sockets.

unsafe fn build_runtime(
    cf: *mut ngx_conf_t,
    tree: &mut ConfTree,
    main: &mut MainConf,
) -> *mut c_char {
    if tree.servers.is_empty() {
        return CONF_OK;
    }
    let top = tree.main.resolve();
    super::relay::set_tls_settings(super::relay::TlsSettings {
        verify: top.relay.ssl_verify,
        trusted: top.relay.ssl_trusted_certificate.clone(),
    });
    super::netcall::set_tls_settings(super::netcall::TlsSettings {
        verify: top.notify.ssl_verify,
        trusted: top.notify.ssl_trusted_certificate.clone(),
    });
    let mut seen: Vec<(model::ListenSpec, usize)> = Vec::new();
    // `exec_static` lines are the whole rtmp{} block's, each once, whatever level holds them
    // (collected before merging copies them down), as in the C module.
    let mut statics = tree.main.exec.static_cmds.clone();
    for server in &tree.servers {
        statics.extend(server.conf.exec.static_cmds.iter().cloned());
        for app in &server.apps {
            statics.extend(app.conf.exec.static_cmds.iter().cloned());
        }
    }
    main.statics = crate::server::StaticExecs {
        specs: statics
            .into_iter()
            .map(|c| model::ExecSpec {
                cmd: c.cmd,
                args: c.args,
                names: Vec::new(),
            })
            .collect(),
        respawn_ms: top.exec.respawn_timeout_ms,
        kill_signal: top.exec.kill_signal,
    };
    for (index, server) in tree.servers.iter_mut().enumerate() {
        server.conf.merge_from(&tree.main);
        let mut apps = Vec::with_capacity(server.apps.len());
        for app in &mut server.apps {
            app.conf.merge_from(&server.conf);
            for (_, rec) in &mut app.recorders {
                rec.merge_from(&app.conf);
            }
            if let Err(e) = app.conf.check() {
                return unsafe { conf_error(cf, &format!("application \"{}\": {e}", app.name)) };
            }
            let mut settings = app.conf.resolve();
            // SAFETY: cf is live; the prefix string lives as long as the cycle.
            let prefix = unsafe { str_bytes(&(*(*cf).cycle).prefix) };
            match prepare_output_dirs(&mut settings, prefix, &mut main.output_dirs) {
                Ok(None) => {}
                Ok(Some(warning)) => unsafe {
                    conf_log(
                        cf,
                        NGX_LOG_WARN,
                        &format!("application \"{}\": {warning}", app.name),
                    )
                },
                Err(e) => {
                    return unsafe {
                        conf_error(cf, &format!("application \"{}\": {e}", app.name))
                    };
                }
            }
            for log in &settings.log.access_logs {
                // SAFETY: cf is live.
                if let Err(e) = unsafe { super::logfile::open(cf, log.path.as_deref()) } {
                    return unsafe { conf_error(cf, &e) };
                }
            }
            // SAFETY: cf is live.
            if let Err(e) = unsafe { prepare_callbacks(cf, &settings) } {
                return unsafe { conf_error(cf, &format!("application \"{}\": {e}", app.name)) };
            }
            let mut recorders = Vec::new();
            for (name, rec) in &app.recorders {
                let mut rec_settings = rec.resolve();
                let prefix = unsafe { str_bytes(&(*(*cf).cycle).prefix) };
                match prepare_record_dir(&mut rec_settings, prefix, &mut main.output_dirs) {
                    Ok(None) => {}
                    Ok(Some(warning)) => unsafe {
                        conf_log(
                            cf,
                            NGX_LOG_WARN,
                            &format!(
                                "application \"{}\", recorder \"{name}\": {warning}",
                                app.name
                            ),
                        )
                    },
                    Err(e) => {
                        return unsafe { conf_error(cf, &format!("recorder \"{name}\": {e}")) };
                    }
                }
                recorders.push(crate::server::RecorderConfig {
                    name: name.clone(),
                    settings: rec_settings,
                });
            }
            let records = settings.record.flags.enabled()
                || recorders.iter().any(|r| r.settings.record.flags.enabled());
            // HLS, DASH and recordings are written, and VOD files read, on nginx's thread pool.
            let vod = !settings.play.entries.is_empty();
            if settings.hls.enabled || settings.dash.enabled || records || vod {
                // SAFETY: cf is live.
                if let Err(e) = unsafe { super::filejobs::require_pool(cf) } {
                    return unsafe { conf_error(cf, &e) };
                }
            }
            apps.push(AppConfig {
                name: app.name.clone(),
                settings,
                recorders,
            });
        }
        let settings = server.conf.resolve();
        for log in &settings.log.access_logs {
            // SAFETY: cf is live.
            if let Err(e) = unsafe { super::logfile::open(cf, log.path.as_deref()) } {
                return unsafe { conf_error(cf, &e) };
            }
        }
        let mut listens = server.conf.listens.clone();
        if listens.is_empty() {
            // Like http's implicit "listen 80": a server{} without listen takes the RTMP port.
            match model::parse_listen(&["1935"]) {
                Ok(spec) => listens.push(spec),
                Err(e) => return unsafe { conf_error(cf, &e.to_string()) },
            }
        }
        // One TLS context per server, for its `ssl` listeners (RTMPS).
        let ssl = if listens.iter().any(|l| l.ssl) {
            // SAFETY: cf is live.
            match unsafe { super::tls::server_context(cf, &settings.ssl) } {
                Ok(ssl) => ssl,
                Err(e) => return unsafe { conf_error(cf, &e) },
            }
        } else {
            ptr::null_mut()
        };
        let handshake_timeout_ms = settings.ssl.handshake_timeout_ms;
        let ports = listens
            .iter()
            .filter_map(|l| match &l.addr {
                model::ListenAddr::Inet(sa) => Some(sa.port()),
                model::ListenAddr::Name { port, .. } => Some(*port),
                model::ListenAddr::Unix(_) => None,
            })
            .collect();
        let runtime = Rc::new(ServerConfig::new(index, settings, apps).with_ports(ports));
        for spec in &listens {
            if let Some((_, other)) = seen.iter().find(|(l, _)| l.same_address(spec)) {
                let shown = describe_listen(spec);
                return unsafe {
                    conf_error(
                        cf,
                        &format!("duplicate listen {shown} (servers #{other} and #{index})"),
                    )
                };
            }
            seen.push((spec.clone(), index));
            // SAFETY: cf->pool is the cycle's pool, which outlives the listening sockets.
            let ctx_ptr: *const ListenCtx = unsafe {
                pool_owned(
                    (*cf).pool,
                    ListenCtx {
                        server: runtime.clone(),
                        ssl: if spec.ssl { ssl } else { ptr::null_mut() },
                        handshake_timeout_ms,
                    },
                )
            };
            if ctx_ptr.is_null() {
                return CONF_ERROR;
            }
            // A host name is resolved now, at load time, as nginx does for its own listens.
            let addrs: Vec<model::ListenAddr> = match &spec.addr {
                model::ListenAddr::Name { host, port } => {
                    use std::net::ToSocketAddrs;
                    match (host.as_str(), *port).to_socket_addrs() {
                        Ok(found) => found.map(model::ListenAddr::Inet).collect(),
                        Err(e) => {
                            return unsafe {
                                conf_error(cf, &format!("host not found in \"{host}\" of the \"listen\" directive: {e}"))
                            };
                        }
                    }
                }
                other => vec![other.clone()],
            };
            for addr in &addrs {
                // SAFETY: cf is live; the ListenCtx lives in the cycle pool.
                if unsafe { add_listening(cf, spec, addr, ctx_ptr) }.is_err() {
                    return CONF_ERROR;
                }
            }
        }
        main.servers.push(runtime);
    }
    CONF_OK
}

/// Makes callback hosts reachable without blocking a worker: with `resolver`, an nginx
/// resolver (queried at each call); without, the addresses looked up now, as the C module does.
///
/// # Safety
/// `cf` is nginx's live configuration parser.
unsafe fn prepare_callbacks(cf: *mut ngx_conf_t, settings: &model::Settings) -> Result<(), String> {
    use std::net::{IpAddr, ToSocketAddrs};
    let n = &settings.notify;
    let urls = [
        &n.on_connect,
        &n.on_disconnect,
        &n.on_publish,
        &n.on_play,
        &n.on_publish_done,
        &n.on_play_done,
        &n.on_done,
        &n.on_update,
    ];
    let pushes =
        (settings.relay.pushes.iter()).map(|t| (&t.url.host, t.url.port, &t.url.url, "push"));
    let callbacks = (urls.into_iter().flatten()).map(|u| (&u.host, u.port, &u.url, "callback"));
    for (host, port, url, what) in callbacks.chain(pushes) {
        if host.parse::<IpAddr>().is_ok() {
            continue;
        }
        let resolver = &settings.net.resolver;
        if !resolver.is_empty() {
            // SAFETY: guaranteed by the caller.
            unsafe { make_resolver(cf, resolver)? };
            continue;
        }
        match (host.as_str(), port).to_socket_addrs() {
            Ok(found) => {
                let ips: Vec<IpAddr> = found.map(|a| a.ip()).collect();
                super::netcall::remember_host(host, ips);
            }
            Err(e) if n.no_resolve => {
                let msg = format!(
                    "host \"{host}\" of {what} \"{url}\" not found now ({e}); calls to it will fail"
                );
                // SAFETY: cf is live.
                unsafe { conf_log(cf, ngx::ffi::NGX_LOG_WARN, &msg) };
            }
            Err(e) => return Err(format!("host not found in {what} \"{url}\": {e}")),
        }
    }
    Ok(())
}

/// Creates (once per set of arguments) the nginx resolver for a `resolver` directive.
///
/// # Safety
/// `cf` is nginx's live configuration parser.
unsafe fn make_resolver(cf: *mut ngx_conf_t, args: &[String]) -> Result<(), String> {
    // SAFETY (whole fn): strings are copied into the cycle pool, which outlives the resolver.
    unsafe {
        let key = args.join(" ");
        let cycle = (*cf).cycle.cast();
        if super::netcall::has_resolver(&key, cycle) {
            return Ok(());
        }
        let mut names: Vec<ngx_str_t> = Vec::with_capacity(args.len());
        for a in args {
            let data = ngx::ffi::ngx_pnalloc((*cf).pool, a.len()) as *mut u8;
            if data.is_null() {
                return Err("out of memory".into());
            }
            ptr::copy_nonoverlapping(a.as_ptr(), data, a.len());
            names.push(ngx_str_t { len: a.len(), data });
        }
        let r = ngx::ffi::ngx_resolver_create(cf, names.as_mut_ptr(), names.len() as ngx_uint_t);
        if r.is_null() {
            return Err(format!("invalid resolver \"{}\"", args.join(" ")));
        }
        super::netcall::remember_resolver(&key, cycle, r);
        Ok(())
    }
}

unsafe fn add_listening(
    cf: *mut ngx_conf_t,
    spec: &model::ListenSpec,
    addr: &model::ListenAddr,
    ctx: *const ListenCtx,
) -> Result<(), ()> {
    // SAFETY (whole fn): cf is live; the sockaddr is copied by ngx_create_listening into the pool.
    unsafe {
        let (storage, len) = match addr {
            model::ListenAddr::Inet(addr) => sockaddr_from(addr),
            model::ListenAddr::Unix(path) => match sockaddr_unix(path) {
                Some(v) => v,
                None => {
                    conf_error(cf, &format!("unix socket path \"{path}\" is too long"));
                    return Err(());
                }
            },
            model::ListenAddr::Name { .. } => return Err(()),
        };
        let ls: *mut ngx_listening_t =
            ngx_create_listening(cf, &storage as *const libc::sockaddr_storage as *mut _, len);
        if ls.is_null() {
            return Err(());
        }
        let ls = &mut *ls;
        ls.set_addr_ntop(1);
        ls.handler = Some(super::conn::init_connection);
        ls.pool_size = 4096;
        ls.logp = ptr::addr_of_mut!((*(*cf).cycle).new_log);
        ls.log.data = ptr::addr_of_mut!(ls.addr_text).cast();
        ls.log.handler = Some(ngx::ffi::ngx_accept_log_error);
        ls.backlog = spec.backlog.unwrap_or(NGX_LISTEN_BACKLOG as i32);
        ls.servers = ctx as *mut c_void;
        if let model::ListenAddr::Inet(addr) = addr {
            ls.set_wildcard(addr.ip().is_unspecified() as u32);
            if addr.is_ipv6() {
                ls.set_ipv6only(spec.ipv6only.unwrap_or(true) as u32);
            }
        }
        if let Some(ka) = &spec.so_keepalive {
            match ka {
                model::Keepalive::Off => ls.set_keepalive(2),
                model::Keepalive::On => ls.set_keepalive(1),
                model::Keepalive::Tuned {
                    idle_s,
                    interval_s,
                    count,
                } => {
                    ls.set_keepalive(1);
                    ls.keepidle = idle_s.map(|v| v as i32).unwrap_or(0);
                    ls.keepintvl = interval_s.map(|v| v as i32).unwrap_or(0);
                    ls.keepcnt = count.map(|v| v as i32).unwrap_or(0);
                }
            }
        }
        if spec.reuseport {
            ls.set_reuseport(1);
            if ngx::ffi::ngx_clone_listening((*cf).cycle, ls) != 0 {
                return Err(());
            }
        }
        Ok(())
    }
}

pub(super) fn sockaddr_from(addr: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { core::mem::zeroed() };
    match addr {
        SocketAddr::V4(v4) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: v4.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from(*v4.ip()).to_be(),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is large enough and suitably aligned for sockaddr_in.
            unsafe { ptr::write(&mut storage as *mut _ as *mut libc::sockaddr_in, sin) };
            (
                storage,
                core::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        }
        SocketAddr::V6(v6) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: v6.port().to_be(),
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: v6.ip().octets(),
                },
                sin6_scope_id: v6.scope_id(),
            };
            // SAFETY: sockaddr_storage is large enough and suitably aligned for sockaddr_in6.
            unsafe { ptr::write(&mut storage as *mut _ as *mut libc::sockaddr_in6, sin6) };
            (
                storage,
                core::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
            )
        }
    }
}

fn sockaddr_unix(path: &str) -> Option<(libc::sockaddr_storage, libc::socklen_t)> {
    // SAFETY: all-zero sockaddr_storage / sockaddr_un are valid values.
    let mut storage: libc::sockaddr_storage = unsafe { core::mem::zeroed() };
    let mut sun: libc::sockaddr_un = unsafe { core::mem::zeroed() };
    sun.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = path.as_bytes();
    if bytes.len() >= sun.sun_path.len() {
        return None;
    }
    for (dst, src) in sun.sun_path.iter_mut().zip(bytes) {
        *dst = *src as c_char;
    }
    // SAFETY: sockaddr_storage is large enough and suitably aligned for sockaddr_un.
    unsafe { ptr::write(&mut storage as *mut _ as *mut libc::sockaddr_un, sun) };
    Some((
        storage,
        core::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t,
    ))
}

// ---------------------------------------------------------------------------------------------
// Parser plumbing.

/// Parses a nested `server`, `application` or `recorder` block into `level`: nginx finds
/// the level through a one-slot conf array in a new [`BlockCtx`].
unsafe fn parse_level(
    cf: *mut ngx_conf_t,
    parent: &BlockCtx,
    level: *mut RtmpConf,
    cmd_type: ngx_uint_t,
    server: usize,
    app: usize,
) -> *mut c_char {
    // SAFETY: cf is live; level is owned by the tree, which outlives the parse.
    unsafe {
        let arr = conf_array(cf, level);
        if arr.is_null() {
            return CONF_ERROR;
        }
        let srv_conf = if cmd_type == RTMP_SRV_CONF {
            arr
        } else {
            parent.srv_conf
        };
        let ctx = block_ctx(
            cf,
            parent.main_conf,
            srv_conf,
            arr,
            parent.tree,
            server,
            app,
        );
        if ctx.is_null() {
            return CONF_ERROR;
        }
        parse_nested(cf, ctx, cmd_type)
    }
}

/// Parses the block that follows the current directive with `ctx` as the conf context.
unsafe fn parse_nested(
    cf: *mut ngx_conf_t,
    ctx: *mut BlockCtx,
    cmd_type: ngx_uint_t,
) -> *mut c_char {
    // SAFETY: cf is live; the saved state is restored before returning, as nginx's own block
    // handlers do.
    unsafe {
        let saved = *cf;
        (*cf).ctx = ctx.cast();
        (*cf).module_type = NGX_RTMP_RS_MODULE;
        (*cf).cmd_type = cmd_type;
        let rv = ngx_conf_parse(cf, ptr::null_mut());
        *cf = saved;
        rv
    }
}

unsafe fn block_ctx(
    cf: *mut ngx_conf_t,
    main_conf: *mut *mut c_void,
    srv_conf: *mut *mut c_void,
    app_conf: *mut *mut c_void,
    tree: *mut ConfTree,
    server: usize,
    app: usize,
) -> *mut BlockCtx {
    // SAFETY: pool allocation sized for BlockCtx, fully initialised before use.
    unsafe {
        let ctx = ngx_pcalloc((*cf).pool, core::mem::size_of::<BlockCtx>()) as *mut BlockCtx;
        if !ctx.is_null() {
            ptr::write(
                ctx,
                BlockCtx {
                    main_conf,
                    srv_conf,
                    app_conf,
                    tree,
                    server,
                    app,
                },
            );
        }
        ctx
    }
}

/// A one-slot conf array (our module type has one module, so ctx_index is 0).
unsafe fn conf_array(cf: *mut ngx_conf_t, level: *mut RtmpConf) -> *mut *mut c_void {
    // SAFETY: pool allocation of one pointer, initialised before use.
    unsafe {
        let arr = ngx_pcalloc((*cf).pool, core::mem::size_of::<*mut c_void>()) as *mut *mut c_void;
        if !arr.is_null() {
            *arr = level.cast();
        }
        arr
    }
}

/// Moves `value` into memory owned by `pool`: dropped when the pool is destroyed.
pub(super) unsafe fn pool_owned<T>(pool: *mut ngx::ffi::ngx_pool_t, value: T) -> *mut T {
    unsafe extern "C" fn drop_box<T>(data: *mut c_void) {
        // SAFETY: data is the pointer Box::into_raw returned below, dropped exactly once.
        drop(unsafe { Box::from_raw(data as *mut T) });
    }
    let raw = Box::into_raw(Box::new(value));
    // SAFETY: pool is live; the cleanup runs once when it is destroyed.
    unsafe {
        let cln = ngx_pool_cleanup_add(pool, 0);
        if cln.is_null() {
            drop(Box::from_raw(raw));
            return ptr::null_mut();
        }
        (*cln).handler = Some(drop_box::<T>);
        (*cln).data = raw.cast();
    }
    raw
}

/// The directive's words (name first), or None if one is not UTF-8.
pub(super) unsafe fn args(cf: *mut ngx_conf_t) -> Option<Vec<String>> {
    // SAFETY: cf->args is an array of ngx_str_t filled by the parser.
    unsafe {
        let a: &ngx_array_t = &*(*cf).args;
        let words = core::slice::from_raw_parts(a.elts as *const ngx_str_t, a.nelts);
        words
            .iter()
            .map(|w| String::from_utf8(str_bytes(w).to_vec()).ok())
            .collect()
    }
}

unsafe fn arg_str(cf: *mut ngx_conf_t, i: usize) -> Option<String> {
    // SAFETY: see args().
    unsafe { args(cf)?.into_iter().nth(i) }
}

/// Logs `msg` with nginx's " in file:line" suffix and fails the directive.
pub(super) unsafe fn conf_error(cf: *mut ngx_conf_t, msg: &str) -> *mut c_char {
    // SAFETY: cf is live.
    unsafe { conf_log(cf, NGX_LOG_EMERG, msg) };
    CONF_ERROR
}

pub(super) unsafe fn conf_log(cf: *mut ngx_conf_t, level: u32, msg: &str) {
    // SAFETY: "%*s" reads exactly msg.len() bytes; cf is live.
    unsafe {
        ngx::ffi::ngx_conf_log_error(
            level as ngx_uint_t,
            cf,
            0,
            c"%*s".as_ptr(),
            msg.len(),
            msg.as_ptr(),
        );
    }
}

fn describe_listen(spec: &model::ListenSpec) -> String {
    match &spec.addr {
        model::ListenAddr::Inet(a) => a.to_string(),
        model::ListenAddr::Unix(p) => format!("unix:{p}"),
        model::ListenAddr::Name { host, port } => format!("{host}:{port}"),
    }
}

/// Makes HLS paths absolute (relative ones are under nginx's prefix, like `root`) and creates
/// them now, so that `nginx -t` reports a path that cannot exist, with the file and line.
fn prepare_output_dirs(
    settings: &mut crate::conf::Settings,
    prefix: &[u8],
    created: &mut Vec<std::path::PathBuf>,
) -> Result<Option<String>, String> {
    let absolute = |p: &str| -> String { prefixed(prefix, p).to_string_lossy().into_owned() };
    let mut warnings = Vec::new();
    let mut dirs = Vec::new();
    // The C module silently skips HLS/DASH without a path; loading unchanged means we do too,
    // but say so.
    if settings.hls.enabled && settings.hls.path.is_empty() {
        settings.hls.enabled = false;
        warnings.push("\"hls on\" without \"hls_path\": HLS is off");
    }
    if settings.dash.enabled && settings.dash.path.is_empty() {
        settings.dash.enabled = false;
        warnings.push("\"dash on\" without \"dash_path\": DASH is off");
    }
    if settings.hls.enabled {
        let key_path_was_default = settings.hls.key_path == settings.hls.path;
        settings.hls.path = absolute(&settings.hls.path);
        settings.hls.key_path = if settings.hls.key_path.is_empty() || key_path_was_default {
            settings.hls.path.clone()
        } else {
            absolute(&settings.hls.key_path)
        };
        dirs.push(settings.hls.path.clone());
        if settings.hls.keys && settings.hls.key_path != settings.hls.path {
            dirs.push(settings.hls.key_path.clone());
        }
    }
    if settings.dash.enabled {
        settings.dash.path = absolute(&settings.dash.path);
        dirs.push(settings.dash.path.clone());
    }
    if let Some(warning) = prepare_record_dir(settings, prefix, created)? {
        warnings.push(warning);
    }
    for dir in dirs {
        let path = std::path::PathBuf::from(&dir);
        if !path.is_dir() {
            std::fs::create_dir_all(&path)
                .map_err(|e| format!("cannot create directory \"{dir}\": {e}"))?;
        }
        if !created.contains(&path) {
            created.push(path);
        }
    }
    Ok((!warnings.is_empty()).then(|| warnings.join("; ")))
}

/// `record_path` of one level made absolute and created (owned by the workers' user, like
/// the HLS and DASH directories). Recording without a path is turned off with a warning (the
/// C module records nothing then either).
fn prepare_record_dir(
    settings: &mut crate::conf::Settings,
    prefix: &[u8],
    created: &mut Vec<std::path::PathBuf>,
) -> Result<Option<&'static str>, String> {
    let rec = &mut settings.record;
    if !rec.flags.enabled() {
        return Ok(None);
    }
    if rec.path.is_empty() {
        rec.flags = Default::default();
        return Ok(Some(
            "\"record\" without \"record_path\": nothing is recorded",
        ));
    }
    let path = prefixed(prefix, &rec.path);
    rec.path = path.to_string_lossy().into_owned();
    if !path.is_dir() {
        std::fs::create_dir_all(&path)
            .map_err(|e| format!("cannot create directory \"{}\": {e}", rec.path))?;
    }
    if !created.contains(&path) {
        created.push(path);
    }
    Ok(None)
}
