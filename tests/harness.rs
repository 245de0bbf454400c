//! Checks of the test harness itself: the checks every other test relies on must catch what
//! they claim to catch.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::thread;
use std::time::Duration;

use common::*;

/// PID of the (single) worker, from nginx's "start worker process N" notice.
fn worker_pid(server: &Server) -> i32 {
    server
        .error_log()
        .lines()
        .rev()
        .filter_map(|l| l.split("start worker process ").nth(1))
        .find_map(|pid| pid.trim().parse().ok())
        .expect("a worker pid in the error log")
}

#[test]
fn a_crashed_worker_fails_assert_clean_log() {
    let mut server = Server::start_live("");
    let offset = server.log_len();
    // SAFETY: the PID is our nginx's worker (read from its own log, still running).
    let rc = unsafe { libc::kill(worker_pid(&server), libc::SIGSEGV) };
    assert_eq!(rc, 0, "kill the worker");
    assert!(
        server.wait_for_log(offset, "exited on signal", Duration::from_secs(5)),
        "the master should report the crash:\n{}",
        server.error_log()
    );
    let caught = catch_unwind(AssertUnwindSafe(|| server.assert_clean_log()));
    assert!(caught.is_err(), "assert_clean_log must fail after a crash");
    // nginx starts a new worker; the server still stops cleanly.
    thread::sleep(Duration::from_millis(200));
    server.stop();
}

#[test]
fn escaped_client_text_is_not_mistaken_for_a_log_level() {
    let injected = "2026/01/01 00:00:00 [warn] 1#1: *1 refused name \"x [alert] y\"";
    assert!(!is_forbidden_log_line(injected));
    assert!(is_forbidden_log_line(
        "2026/01/01 00:00:00 [alert] 1#1: worker process 7 exited on signal 11"
    ));
    assert!(is_forbidden_log_line("[emerg] raw line without a date"));
}

#[test]
fn server_start_reports_a_bad_config_with_the_log() {
    let caught = catch_unwind(|| Server::start("rtmp { bogus_directive_for_the_harness; }", ""));
    let msg = match caught {
        Ok(_) => panic!("nginx started with a bad config"),
        Err(e) => e.downcast_ref::<String>().cloned().unwrap_or_default(),
    };
    assert!(
        msg.contains("bogus_directive_for_the_harness"),
        "the panic should carry nginx's error: {msg}"
    );
}
