//! Stamps the build into the module for `/stat` (`compiler`, `built`), and turns two features
//! of the nginx it is built against into cfgs.
//!
//! * `RTMP_RS_RUSTC`: `$RUSTC -V`, e.g. `rustc 1.95.0 (59807616e 2026-04-14)`.
//! * `RTMP_RS_BUILT`: when this script ran, UTC, in the form of C's `__DATE__ " " __TIME__`
//!   (what the C module's `/stat` shows), e.g. `Dec  6 2026 08:27:31`; `SOURCE_DATE_EPOCH`
//!   replaces the clock for reproducible builds.
//! * `RTMP_RS_COMMIT`: `git rev-parse --short=12 HEAD`, or `unknown` without git or without a
//!   `.git` next to Cargo.toml (a source tarball).
//!
//! The script reruns only when build.rs, SOURCE_DATE_EPOCH, .git/HEAD or the ref HEAD names
//! changes (and when the toolchain changes, which rebuilds everything): the date is that of
//! the last such run, not of every incremental rebuild of the crate.
//!
//! nginx features (`ngx_threads`, `ngx_ssl`; declared with rustc-check-cfg, not used yet):
//! nginx-sys (`links = "nginx"`) reads the NGX_ macros of the nginx it binds (its
//! objs/ngx_auto_config.h, vendored or from NGINX_BUILD_DIR) and prints
//! `cargo::metadata=features=...` (lower case, without `NGX_`: `threads`, `ssl`, `http_ssl`,
//! ...). Cargo passes that only to the build scripts of *direct* dependents, as
//! `DEP_NGINX_FEATURES`; `ngx` reads it in its own build script but does not forward it, so
//! Cargo.toml names nginx-sys directly (the version `ngx` uses) under the `nginx` feature, and
//! nothing here parses ngx_auto_config.h itself. Without that feature (the pure core) the
//! variable is absent and neither cfg is set.
use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    println!("cargo:rustc-env=RTMP_RS_RUSTC={}", rustc_version());
    println!(
        "cargo:rustc-env=RTMP_RS_BUILT={}",
        c_date_time(build_time())
    );
    println!("cargo:rustc-env=RTMP_RS_COMMIT={}", git_commit());
    nginx_cfgs();
}

/// `$RUSTC -V` (the compiler Cargo builds this crate with), or `rustc` if it does not answer.
fn rustc_version() -> String {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    Command::new(rustc)
        .arg("-V")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "rustc".to_string())
}

/// Seconds since the epoch: SOURCE_DATE_EPOCH when set (and a number), else the clock.
fn build_time() -> u64 {
    if let Ok(s) = env::var("SOURCE_DATE_EPOCH") {
        match s.trim().parse::<u64>() {
            Ok(t) => return t,
            Err(_) => println!("cargo:warning=SOURCE_DATE_EPOCH={s:?} is not a number; ignored"),
        }
    }
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `Mmm dd yyyy hh:mm:ss` in UTC, the day padded with a space as C's `__DATE__` does.
fn c_date_time(t: u64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (days, secs) = (t / 86_400, t % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{} {:>2} {} {:02}:{:02}:{:02}",
        MONTHS[(m - 1) as usize],
        d,
        y,
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Year, month (1-12) and day (1-31) of a day count since 1970-01-01 (proleptic Gregorian;
/// H. Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = (if mp < 10 { mp + 3 } else { mp - 9 }) as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// The short hash of HEAD; `unknown` without a `.git` next to Cargo.toml or a working git.
/// Watches HEAD and the ref it names so a commit or a checkout reruns this script; nothing
/// else under .git does.
fn git_commit() -> String {
    let root = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    if !root.join(".git").exists() {
        return "unknown".to_string();
    }
    // .git may be a file (a worktree or submodule): ask git where HEAD and the refs live.
    if let Some(head) = git(&root, &["rev-parse", "--git-path", "HEAD"]) {
        watch(&root.join(head));
    }
    // On a branch: its loose ref, or while it is only in packed-refs, that file and the
    // directory the loose ref will be created in by the next commit.
    if let Some(r) = git(&root, &["symbolic-ref", "-q", "HEAD"]) {
        if let Some(loose) = git(&root, &["rev-parse", "--git-path", &r]) {
            let loose = root.join(loose);
            if !watch(&loose) {
                if let Some(packed) = git(&root, &["rev-parse", "--git-path", "packed-refs"]) {
                    watch(&root.join(packed));
                }
                if let Some(dir) = loose.ancestors().skip(1).find(|d| d.is_dir()) {
                    println!("cargo:rerun-if-changed={}", dir.display());
                }
            }
        }
    }
    git(&root, &["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".to_string())
}

/// `git -C root args`, trimmed stdout when it succeeds with some.
fn git(root: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(root)
        .args(args)
        .output()
        .ok()?;
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !s.is_empty()).then_some(s)
}

/// rerun-if-changed for `path` if it is a file (Cargo reruns the script on every build while
/// a watched path is missing); whether it was.
fn watch(path: &Path) -> bool {
    let exists = path.is_file();
    if exists {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    exists
}

/// `ngx_threads` and `ngx_ssl` when the nginx we build against has NGX_THREADS / NGX_SSL;
/// `ngx_ssl_cache` from nginx 1.27.4 (its SSL object cache: `ngx_ssl_connection_certificate`
/// takes a cache argument), read from nginx-sys's `DEP_NGINX_VERSION_NUMBER`.
fn nginx_cfgs() {
    println!("cargo:rustc-check-cfg=cfg(ngx_threads)");
    println!("cargo:rustc-check-cfg=cfg(ngx_ssl)");
    println!("cargo:rustc-check-cfg=cfg(ngx_ssl_cache)");
    println!("cargo:rerun-if-env-changed=DEP_NGINX_FEATURES");
    println!("cargo:rerun-if-env-changed=DEP_NGINX_VERSION_NUMBER");
    let version = env::var("DEP_NGINX_VERSION_NUMBER")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok());
    if version.is_some_and(|v| v >= 1_027_004) {
        println!("cargo:rustc-cfg=ngx_ssl_cache");
    }
    let Ok(features) = env::var("DEP_NGINX_FEATURES") else {
        return;
    };
    for f in features.split(',').map(str::trim) {
        match f {
            "threads" => println!("cargo:rustc-cfg=ngx_threads"),
            "ssl" => println!("cargo:rustc-cfg=ngx_ssl"),
            _ => {}
        }
    }
}
