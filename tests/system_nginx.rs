//! The module built against the distribution's nginx (scripts/build-system-nginx.sh, which
//! scripts/test.sh runs first) loads into Debian's own /usr/sbin/nginx, serves RTMP there, and
//! refuses, with a message that says what to do, to run beside the C nginx-rtmp-module.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::thread;
use std::time::Duration;

use common::*;

const SYSTEM_NGINX: &str = "/usr/sbin/nginx";
const C_MODULE: &str = "/usr/lib/nginx/modules/ngx_rtmp_module.so";

fn system_module() -> PathBuf {
    let path = manifest_dir().join("build/system/ngx_rtmp_rs_module.so");
    assert!(
        path.is_file(),
        "{} is missing: run scripts/build-system-nginx.sh (scripts/test.sh does)",
        path.display()
    );
    path
}

/// Points the harness at Debian's nginx and the module built for it.
fn use_system_nginx() {
    // Every test of this binary sets the same values, so threads cannot disagree.
    std::env::set_var("NGINX_BIN", SYSTEM_NGINX);
    std::env::set_var("RTMP_MODULE", system_module());
}

fn nginx_t_with_modules(modules: &[&str]) -> (bool, String) {
    let prefix = fresh_prefix();
    std::fs::create_dir_all(prefix.join("logs")).unwrap();
    let mut conf = String::new();
    for m in modules {
        conf.push_str(&format!("load_module {m};\n"));
    }
    conf.push_str(
        "error_log logs/error.log;\npid logs/nginx.pid;\nevents {}\n\
         rtmp { server { listen 127.0.0.1:1; application live { live on; } } }\n",
    );
    let path = prefix.join("nginx.conf");
    std::fs::write(&path, conf).unwrap();
    let out = Command::new(SYSTEM_NGINX)
        .arg("-p")
        .arg(&prefix)
        .arg("-c")
        .arg(&path)
        .arg("-t")
        .output()
        .expect("Debian's nginx runs");
    let text = String::from_utf8_lossy(&out.stderr).to_string();
    let _ = std::fs::remove_dir_all(&prefix);
    (out.status.success(), text)
}

#[test]
fn module_built_for_the_distro_nginx_loads_into_it() {
    let ours = system_module();
    let (ok, text) = nginx_t_with_modules(&[ours.to_str().unwrap()]);
    assert!(
        ok,
        "Debian's nginx refused the module built for it:\n{text}"
    );
}

#[test]
fn loading_beside_the_c_module_is_refused_with_a_clear_message() {
    let ours = system_module();
    let ours = ours.to_str().unwrap();
    for order in [[C_MODULE, ours], [ours, C_MODULE]] {
        let (ok, text) = nginx_t_with_modules(&order);
        assert!(!ok, "both modules loaded together ({order:?}):\n{text}");
        assert!(
            text.contains("cannot run beside the C nginx-rtmp-module")
                && text.contains("remove the other load_module line"),
            "unclear message for {order:?}:\n{text}"
        );
    }
}

#[test]
fn distro_nginx_with_the_module_publishes_and_plays() {
    use_system_nginx();
    let server = Server::start_live("");
    let url = server.rtmp_url("live/distro");
    let mut publisher = publish(&url, 12);
    thread::sleep(Duration::from_millis(800));
    let played = play_decode(&url, 5);
    played.assert_decoded(4.5, "player on Debian's nginx");
    assert!(publisher.is_running(), "publisher: {}", publisher.stderr());
    drop(publisher);
    server.finish();
}
