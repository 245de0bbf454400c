//! The stream-key example (`nginx-conf/stream-keys.conf`) as an operator runs it: only an
//! encoder with the right `?key=` publishes; a wrong or missing key is refused and writes
//! nothing; viewers watch without the key; every connection gets an access log line.

mod common;

use std::fs;
use std::time::Duration;

use common::ffmpeg::{probe_streams, publish};
use common::hls::*;

#[test]
fn stream_key_example_admits_only_the_right_key() {
    let mut nginx = ExampleNginx::start_file("stream-keys.conf");
    let mut checks = Checks::new();
    let url = |path: &str| format!("rtmp://127.0.0.1:{}/live/{path}", nginx.rtmp_port);
    let hls_dir = nginx.prefix.join("tmp/hls");

    // Wrong key, then no key: refused, and nothing of cam1 reaches the disk.
    for bad in ["cam1?key=wrong", "cam1"] {
        let mut p = publish(&url(bad), 4);
        let status = p.wait_timeout(Duration::from_secs(15));
        checks.check(status.is_some_and(|s| !s.success()), || {
            format!("publish {bad}: expected a refusal, got {status:?}")
        });
        checks.check(p.stderr().contains("Publish"), || {
            format!(
                "publish {bad}: ffmpeg did not report the refusal: {}",
                p.stderr()
            )
        });
    }
    let leftovers: Vec<String> = fs::read_dir(&hls_dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("cam1"))
                .collect()
        })
        .unwrap_or_default();
    checks.check(leftovers.is_empty(), || {
        format!("refused publishes wrote files: {leftovers:?}")
    });

    // The right key publishes; a viewer plays the stream by its name, without the key.
    let mut p = publish(&url("cam1?key=change-me-cam1"), 10);
    let playlist = hls_dir.join("cam1.m3u8");
    checks.ok(wait_segments(&playlist, 1));
    match probe_streams(&url("cam1")) {
        Ok(kinds) => {
            checks.check(kinds.iter().any(|k| k.contains("h264")), || {
                format!("viewer of cam1 saw {kinds:?}")
            });
        }
        Err(e) => checks.fail(format!("viewer of cam1: {e}")),
    }
    // Another stream's key does not open this one.
    let mut other = publish(&url("cam2?key=change-me-cam1"), 4);
    let status = other.wait_timeout(Duration::from_secs(15));
    checks.check(status.is_some_and(|s| !s.success()), || {
        format!("cam2 with cam1's key: expected a refusal, got {status:?}")
    });
    p.kill();
    nginx.stop();

    let log = nginx.logs();
    checks.check(
        log.contains("on_publish for \"live/cam1\" answered 403: denied"),
        || format!("no denial line in the error log:\n{log}"),
    );
    let access = fs::read_to_string(nginx.prefix.join("logs/rtmp-access.log")).unwrap_or_default();
    checks.check(
        access
            .lines()
            .any(|l| l.contains("PUBLISH \"live\" \"cam1\" \"key=change-me-cam1\"")),
        || format!("no PUBLISH line for cam1 in rtmp-access.log:\n{access}"),
    );
    checks.check(
        access.lines().any(|l| l.contains("PLAY \"live\" \"cam1\"")),
        || format!("no PLAY line for cam1 in rtmp-access.log:\n{access}"),
    );
    let auth = fs::read_to_string(nginx.prefix.join("logs/auth.log")).unwrap_or_default();
    checks.check(
        auth.lines().filter(|l| l.contains("GET /publish?")).count() >= 4,
        || format!("the auth server did not see every publish:\n{auth}"),
    );
    checks.assert_ok();
}
