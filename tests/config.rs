//! Configuration loading: the example configs pass `nginx -t`, and mistakes are reported
//! with the file and line, as nginx does for its own directives.

mod common;

use std::fs;
use std::path::Path;

use common::*;

/// Replaces the example's `load_module` line with the module under test.
fn with_module_under_test(text: &str) -> String {
    text.lines()
        .map(|l| {
            if l.trim_start().starts_with("load_module") && l.contains("rtmp") {
                format!("load_module {};", module_path().display())
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn every_example_config_passes_nginx_t() {
    let dir = manifest_dir().join("nginx-conf");
    let mut files: Vec<_> = fs::read_dir(&dir)
        .expect("nginx-conf/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "conf"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no *.conf in {}", dir.display());
    for file in files {
        let prefix = TestPrefix::new();
        let text = fs::read_to_string(&file).expect("read example");
        let name = file.file_name().expect("file name");
        let conf = prefix.0.join("conf").join(name);
        fs::write(&conf, with_module_under_test(&text)).expect("write conf");
        let (ok, stderr) = nginx_test_config_file(&conf, &prefix.0);
        println!("nginx -t {}:\n{stderr}", file.display());
        assert!(ok, "nginx -t failed on {}:\n{stderr}", file.display());
        for bad in FORBIDDEN_LOG_PATTERNS {
            assert!(
                !stderr.contains(bad),
                "{bad} from nginx -t on {}",
                file.display()
            );
        }
    }
}

/// 1-based number of the only line of `text` containing `marker`.
fn line_of(text: &str, marker: &str) -> usize {
    let hits: Vec<usize> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.contains(marker))
        .map(|(i, _)| i + 1)
        .collect();
    assert_eq!(
        hits.len(),
        1,
        "marker {marker:?} must be on exactly one line"
    );
    hits[0]
}

/// `nginx -t` must fail, pointing at the line with `marker`, and mention `mentions`.
fn assert_rejected_at(conf: &str, marker: &str, mentions: &str) {
    let line = line_of(conf, marker);
    let t = nginx_t_text(conf);
    let (ok, stderr, path) = (t.ok, &t.stderr, &t.path);
    assert!(
        !ok,
        "nginx -t accepted a bad config (line {line}: {marker}):\n{stderr}"
    );
    let at = format!("in {}:{line}", path.display());
    assert!(
        stderr.contains(&at),
        "expected the error to point at {at} ({marker}); nginx -t said:\n{stderr}"
    );
    assert!(
        stderr.contains(mentions),
        "expected the error to mention {mentions:?}; nginx -t said:\n{stderr}"
    );
    assert!(
        stderr.contains("[emerg]"),
        "a config error is [emerg]; nginx -t said:\n{stderr}"
    );
}

fn conf_with(rtmp_block: &str) -> String {
    render_conf(Path::new("{PREFIX}"), rtmp_block, "", 1935, 8080)
}

#[test]
fn unknown_directive_is_rejected_with_file_and_line() {
    let conf = conf_with(&live_rtmp_block("", "frobnicate on;"));
    assert_rejected_at(&conf, "frobnicate", "frobnicate");
}

#[test]
fn invalid_chunk_size_is_rejected_with_file_and_line() {
    let conf = conf_with(&live_rtmp_block("", "").replace("chunk_size 4096;", "chunk_size 5x;"));
    assert_rejected_at(&conf, "chunk_size 5x", "chunk_size");
}

#[test]
fn duplicate_chunk_size_is_rejected_with_file_and_line() {
    let conf = conf_with(&live_rtmp_block("chunk_size 8192;", ""));
    assert_rejected_at(&conf, "chunk_size 8192", "chunk_size");
}

#[test]
fn live_inside_events_is_rejected_with_file_and_line() {
    let conf = conf_with(&live_rtmp_block("", "")).replace(
        "worker_connections 256;",
        "worker_connections 256;\n    live on; # misplaced",
    );
    assert_rejected_at(&conf, "# misplaced", "live");
}

#[test]
fn live_at_main_level_is_rejected_with_file_and_line() {
    let block = format!("live on; # misplaced\n{}", live_rtmp_block("", ""));
    let conf = conf_with(&block);
    assert_rejected_at(&conf, "# misplaced", "live");
}

/// A callback URL the call-time code could not call is refused by `nginx -t` at its line
/// (it used to pass and then every publish was allowed, unchecked).
#[test]
fn callback_urls_that_cannot_be_called_are_rejected_with_file_and_line() {
    for (url, reason) in [
        ("\"http://127.0.0.1:9/auth/\u{e9}\"", "non-ASCII"),
        ("\"http://auth host/x\"", "spaces"),
        ("http://user@127.0.0.1/x", "user info"),
        ("ftp://127.0.0.1/x", "unsupported scheme"),
        ("http://127.0.0.1:0/x", "invalid port"),
    ] {
        let conf = conf_with(&live_rtmp_block(
            "",
            &format!("on_publish {url}; # bad url"),
        ));
        assert_rejected_at(&conf, "# bad url", reason);
    }
}

#[test]
fn listen_with_a_bad_port_is_rejected_with_file_and_line() {
    for bad in ["127.0.0.1:99999", "127.0.0.1:12ab", "0"] {
        let conf = conf_with(
            &live_rtmp_block("", "")
                .replace("listen 127.0.0.1:{RTMP_PORT};", &format!("listen {bad};")),
        );
        assert_rejected_at(&conf, &format!("listen {bad};"), bad);
    }
}
