//! RTMP access log files: opened through nginx when the configuration is read (so `nginx -s
//! reopen` rotates them like nginx's own logs), appended to by the worker when a client leaves.

use std::ffi::CString;

use ngx::ffi::{ngx_conf_t, ngx_open_file_t, ngx_str_t};

use crate::server::AccessLine;

/// Files by path, for the cycle that opened them: (path, cycle, file).
static FILES: std::sync::Mutex<Vec<(String, usize, usize)>> = std::sync::Mutex::new(Vec::new());

/// The path of nginx's default http access log (the C module's default target).
fn default_path() -> String {
    ngx::ffi::NGX_HTTP_LOG_PATH.to_string_lossy().into_owned()
}

/// Opens (registers with nginx) the file of one `access_log`.
///
/// # Safety
/// `cf` is nginx's live configuration parser.
pub unsafe fn open(cf: *mut ngx_conf_t, path: Option<&str>) -> Result<(), String> {
    let path = path.map_or_else(default_path, str::to_owned);
    // SAFETY: cf is live; the name is copied into the cycle pool before nginx keeps it.
    unsafe {
        let cycle = (*cf).cycle;
        let known = FILES
            .lock()
            .is_ok_and(|f| f.iter().any(|(p, c, _)| *p == path && *c == cycle as usize));
        if known {
            return Ok(());
        }
        let c = CString::new(path.clone()).map_err(|_| "invalid access_log path".to_string())?;
        let len = c.as_bytes().len();
        let data = ngx::ffi::ngx_pnalloc((*cf).pool, len + 1) as *mut u8;
        if data.is_null() {
            return Err("out of memory".into());
        }
        core::ptr::copy_nonoverlapping(c.as_ptr() as *const u8, data, len + 1);
        let mut name = ngx_str_t { len, data };
        let file = ngx::ffi::ngx_conf_open_file(cycle, &mut name);
        if file.is_null() {
            return Err(format!("cannot open access_log \"{path}\""));
        }
        if let Ok(mut f) = FILES.lock() {
            f.retain(|(p, _, _)| *p != path);
            f.push((path, cycle as usize, file as usize));
        }
    }
    Ok(())
}

/// Appends lines to their files (one write each, like nginx's access log; regular files).
pub fn write(lines: Vec<AccessLine>) {
    if lines.is_empty() {
        return;
    }
    let Ok(files) = FILES.lock() else { return };
    for l in lines {
        let path = l.path.unwrap_or_else(default_path);
        let Some(&(_, _, file)) = files.iter().find(|(p, _, _)| *p == path) else {
            continue;
        };
        let file = file as *mut ngx_open_file_t;
        // SAFETY: the open file object lives in the cycle pool for the worker's lifetime;
        // nginx opened its fd before forking (and reopens it in place on USR1).
        unsafe {
            let fd = (*file).fd;
            if fd >= 0 {
                libc::write(fd, l.line.as_ptr().cast(), l.line.len());
            }
        }
    }
}
