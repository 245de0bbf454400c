//! RTMPS (`listen ... ssl`): ffmpeg publishes and plays over TLS, next to a plain listener of
//! the same server; `deny publish` acts on the real client address behind TLS; garbage and a
//! half-open client on the TLS port are closed (one info line each) without disturbing a live
//! player; and a server with an `ssl` listener but no certificate fails `nginx -t` at its line.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use common::backend::self_signed_cert;
use common::hls::Checks;
use common::*;

/// `ssl_handshake_timeout` of the test server: a half-open client is closed this soon.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(2);

fn rtmps_block(tls_port: u16, cert: &str, key: &str) -> String {
    format!(
        "rtmp {{\n    server {{\n        listen 127.0.0.1:{{RTMP_PORT}};\n        \
         listen 127.0.0.1:{tls_port} ssl;\n        ssl_certificate {cert};\n        \
         ssl_certificate_key {key};\n        ssl_session_cache shared:RTMPS:1m;\n        \
         ssl_handshake_timeout 2s;\n        chunk_size 4096;\n        \
         application live {{\n            live on;\n        }}\n        \
         application secure {{\n            live on;\n            deny publish 127.0.0.1;\n        }}\n    }}\n}}\n"
    )
}

/// Waits until `stream` is closed by the server (EOF or reset); how long that took.
fn wait_closed(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("read timeout");
    let mut buf = [0u8; 4096];
    while start.elapsed() < limit {
        match stream.read(&mut buf) {
            Ok(0) => return Some(start.elapsed()),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return Some(start.elapsed()),
        }
    }
    None
}

#[test]
fn ffmpeg_publishes_and_plays_over_rtmps_and_bad_tls_clients_disturb_nothing() {
    let certs = TestPrefix::new();
    let (cert, key) = self_signed_cert(&certs.0, "rtmps.test");
    let tls_port = free_port();
    let block = rtmps_block(
        tls_port,
        cert.to_str().expect("utf-8"),
        key.to_str().expect("utf-8"),
    );
    let server = Server::start(&block, "");
    let mut checks = Checks::new();
    let rtmps = |path: &str| format!("rtmps://127.0.0.1:{tls_port}/{path}");

    // Publish over TLS; play over TLS and over plain RTMP.
    let offset = server.log_len();
    let mut publisher = publish(&rtmps("live/cam"), 20);
    thread::sleep(Duration::from_secs(2));
    let over = server.wait_for_log(offset, "connected to 127.0.0.1:", Duration::from_secs(5));
    let log = server.log_since(offset);
    checks.check(over && log.contains(" over TLSv1."), || {
        format!("the TLS publisher's connect line should name its TLS version:\n{log}")
    });
    match probe_streams(&rtmps("live/cam")) {
        Ok(streams) => checks.check(streams.join("\n").contains("codec_name=h264"), || {
            format!("an rtmps:// player should see H.264: {streams:?}")
        }),
        Err(e) => checks.check(false, || format!("ffprobe over rtmps://: {e}")),
    };

    // A plain player measures gaps while bad clients hit the TLS port.
    let mut player = RtmpClient::connect(&server.rtmp_addr(), "live").expect("player connects");
    let codes = player.play("cam").expect("play");
    checks.check(codes.iter().any(|c| c == "NetStream.Play.Start"), || {
        format!("plain play codes {codes:?}")
    });
    let bad_clients = thread::spawn(move || {
        // Garbage instead of a ClientHello.
        let mut garbage = TcpStream::connect(("127.0.0.1", tls_port)).expect("connect");
        let junk: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let _ = garbage.write_all(&junk);
        let garbage_closed = wait_closed(&mut garbage, Duration::from_secs(5));
        // Half-open: connects and never speaks.
        let mut silent = TcpStream::connect(("127.0.0.1", tls_port)).expect("connect");
        let silent_closed = wait_closed(&mut silent, HANDSHAKE_TIMEOUT + Duration::from_secs(5));
        (garbage_closed, silent_closed)
    });
    let arrivals = player.media_arrivals_for(Duration::from_secs(6));
    let (garbage_closed, silent_closed) = bad_clients.join().expect("bad clients");
    let gap = arrivals
        .windows(2)
        .map(|w| w[1].duration_since(w[0]))
        .max()
        .unwrap_or(Duration::MAX);
    println!(
        "plain player: {} messages, largest gap {gap:?}; garbage closed after {garbage_closed:?}, \
         half-open after {silent_closed:?}",
        arrivals.len()
    );
    checks.check(
        arrivals.len() >= 6 * 25 && gap < Duration::from_millis(500),
        || {
            format!(
                "the live stream was disturbed: {} messages, largest gap {gap:?}",
                arrivals.len()
            )
        },
    );
    checks.check(garbage_closed.is_some(), || {
        "garbage on the TLS port was not closed".into()
    });
    checks.check(
        silent_closed.is_some_and(|d| d >= HANDSHAKE_TIMEOUT - Duration::from_millis(300)),
        || format!("a half-open TLS client should be closed after ssl_handshake_timeout: {silent_closed:?}"),
    );
    let log = server.log_since(offset);
    for line in ["TLS handshake failed", "TLS handshake timed out"] {
        checks.check(log.contains(line), || {
            format!("no \"{line}\" in the log:\n{log}")
        });
    }

    // deny publish acts on the real address behind TLS.
    let denied = publish(&rtmps("secure/cam"), 5).wait_timeout(Duration::from_secs(10));
    checks.check(denied.is_some_and(|st| !st.success()), || {
        format!("publishing to secure/ over TLS from 127.0.0.1 should be denied: {denied:?}")
    });

    checks.check(publisher.is_running(), || {
        format!("the TLS publisher stopped early: {}", publisher.stderr())
    });
    drop(player);
    drop(publisher);
    checks.finish(server);
}

#[test]
fn ssl_listener_without_a_certificate_fails_nginx_t() {
    let block = "rtmp {\n    server {\n        listen 127.0.0.1:1936 ssl; # no cert\n        \
                 application live {\n            live on;\n        }\n    }\n}\n";
    let conf = render_conf(std::path::Path::new("{PREFIX}"), block, "", 1935, 8080);
    let t = nginx_t_text(&conf);
    assert!(
        !t.ok,
        "nginx -t accepted an ssl listener without a certificate:\n{}",
        t.stderr
    );
    assert!(
        t.stderr.contains("no \"ssl_certificate\" is defined"),
        "{}",
        t.stderr
    );
    assert!(
        t.stderr.contains(&format!("in {}:", t.path.display())),
        "{}",
        t.stderr
    );
}
