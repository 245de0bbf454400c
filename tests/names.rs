//! Hostile stream and application names are refused cleanly: an error status or a closed
//! connection, one log line saying so (without raw control characters), no crash, and normal
//! clients keep working. Stream names end up in file paths (HLS, DASH, record), so anything
//! that could escape a directory is refused up front.
//!
//! The C nginx-rtmp-module accepts all of these stream names for `live` (it fails these tests).

mod common;

use std::thread;
use std::time::{Duration, Instant};

use common::*;

/// Words a log line about a refused name is expected to use (case-insensitive).
const REFUSAL_WORDS: &[&str] = &[
    "invalid",
    "refus",
    "reject",
    "denied",
    "not allowed",
    "bad name",
    "badname",
    "not found",
    "forbidden",
    "illegal",
    "unsafe",
];

/// Lines reporting a refusal: they use a refusal word. Lines about the connection closing
/// (which may repeat the reason, e.g. "client disconnected: publish refused") are not counted.
fn refusal_lines(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            REFUSAL_WORDS.iter().any(|w| l.contains(w))
                && !l.contains("disconnect")
                && !l.contains("closed")
                && !l.contains("closing")
        })
        .map(|l| l.to_string())
        .collect()
}

fn printable(name: &str) -> String {
    format!("{name:?}").chars().take(80).collect()
}

/// Checks the log after a refusal of `name`: exactly one line reports it (see
/// [`refusal_lines`]), naming it when it needs no escaping, and no raw control characters
/// from the client reach the log.
fn assert_one_refusal_line(server: &Server, offset: usize, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(3);
    while refusal_lines(&server.log_since(offset)).is_empty() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
    }
    // Let any follow-up lines land before counting.
    thread::sleep(Duration::from_millis(300));
    let added = server.log_since(offset);
    let lines = refusal_lines(&added);
    assert_eq!(
        lines.len(),
        1,
        "expected one log line about refusing {}; log lines added:\n{added}",
        printable(name)
    );
    // Names that need no escaping must appear verbatim, so operators can see what was refused.
    let simple = name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "./-_".contains(c));
    if simple {
        assert!(
            lines[0].contains(name),
            "the refusal line should name {}: {}",
            printable(name),
            lines[0]
        );
    }
    let raw_control = added
        .lines()
        .any(|l| l.chars().any(|c| c.is_control() && c != '\t'));
    assert!(
        !raw_control,
        "raw control characters from a client reached the error log:\n{added:?}"
    );
}

/// Connects to `live` and publishes `name`, which must be refused.
fn assert_publish_refused(server: &Server, name: &str) {
    let offset = server.log_len();
    let mut client = RtmpClient::connect(&server.rtmp_addr(), "live").expect("connect to live");
    let outcome = client.publish(name);
    let refused = is_refused(&outcome, Some(&mut client), "NetStream.Publish.Start");
    assert!(
        refused,
        "publish of hostile name {} was not refused: {outcome:?}",
        printable(name)
    );
    drop(client);
    assert_one_refusal_line(server, offset, name);
}

/// Connects to application `app`, which must be refused (or closed) without crashing.
fn assert_connect_refused(server: &Server, app: &str) {
    let offset = server.log_len();
    let outcome = RtmpClient::connect(&server.rtmp_addr(), app);
    let refused = matches!(
        &outcome,
        Err(ClientError::Closed) | Err(ClientError::Rejected(_)) | Err(ClientError::Protocol(_))
    );
    assert!(
        refused,
        "connect to hostile app {} was not refused: {:?}",
        printable(app),
        outcome.as_ref().err()
    );
    drop(outcome);
    assert_one_refusal_line(server, offset, app);
}

/// After hostile attempts, a normal publisher and player still work.
fn assert_normal_publish_works(server: &Server) {
    let url = server.rtmp_url("live/normal");
    let mut publisher = publish(&url, 10);
    thread::sleep(Duration::from_millis(500));
    let played = play_decode(&url, 3);
    played.assert_decoded(2.5, "normal player after hostile names");
    assert!(
        publisher.is_running(),
        "normal publisher failed: {}",
        publisher.stderr()
    );
}

#[test]
fn publish_names_with_path_traversal_are_refused() {
    let server = Server::start_live("");
    for name in ["../x", "..", "../../../../tmp/evil"] {
        assert_publish_refused(&server, name);
    }
    assert_normal_publish_works(&server);
    server.finish();
}

#[test]
fn publish_names_with_slash_or_backslash_are_refused() {
    let server = Server::start_live("");
    for name in ["a/b", "a\\b", "/abs"] {
        assert_publish_refused(&server, name);
    }
    assert_normal_publish_works(&server);
    server.finish();
}

#[test]
fn publish_names_with_control_characters_are_refused_and_not_logged_raw() {
    let server = Server::start_live("");
    for name in [
        "x\u{1}",
        "evil\r\n2024/01/01 00:00:00 [alert] injected",
        "nul\u{0}byte",
    ] {
        assert_publish_refused(&server, name);
    }
    assert_normal_publish_works(&server);
    server.finish();
}

#[test]
fn overlong_publish_name_is_refused() {
    let server = Server::start_live("");
    assert_publish_refused(&server, &"a".repeat(1000));
    assert_normal_publish_works(&server);
    server.finish();
}

#[test]
fn hostile_application_names_are_refused() {
    let server = Server::start_live("");
    let long = "b".repeat(1000);
    for app in [
        "../x",
        "..",
        "live/../live",
        "a\\b",
        "x\u{1}",
        long.as_str(),
    ] {
        assert_connect_refused(&server, app);
    }
    assert_normal_publish_works(&server);
    server.finish();
}

#[test]
fn publish_name_with_query_string_is_accepted_and_playable_by_bare_name() {
    let server = Server::start_live("");
    let url = server.rtmp_url("live/mykey?token=abc&x=1");
    let mut publisher = publish(&url, 10);
    thread::sleep(Duration::from_millis(500));
    let played = play_decode(&server.rtmp_url("live/mykey"), 3);
    played.assert_decoded(2.5, "player of the bare name");
    assert!(
        publisher.is_running(),
        "publisher failed: {}",
        publisher.stderr()
    );
    drop(publisher);
    server.finish();
}
