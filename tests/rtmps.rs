//! RTMPS (`listen ... ssl`): ffmpeg publishes and plays over TLS, next to a plain listener of
//! the same server; `/stat?format=json` and the access log (`$ssl_protocol`,
//! `$ssl_server_name`) show each client's real address and TLS (none for plain RTMP);
//! `deny publish` acts on the real client address behind TLS; garbage and a half-open client
//! on the TLS port are closed (one info line each) without disturbing a live player; and a
//! server with an `ssl` listener but no certificate fails `nginx -t` at its line.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use common::backend::self_signed_cert;
use common::hls::{http_get, run_bounded, Checks};
use common::*;

/// The http side of the test server: JSON /stat.
const STAT_LOCATION: &str = "        location /stat { rtmp_stat all; }";
/// The RTMP access log of the test server (under its prefix), one `|`-separated line per
/// session: address, TLS version, SNI name, command.
const ACCESS_LOG: &str = "logs/rtmps.log";

/// `ssl_handshake_timeout` of the test server: a half-open client is closed this soon.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(2);

fn rtmps_block(tls_port: u16, cert: &str, key: &str) -> String {
    format!(
        "rtmp {{\n    server {{\n        listen 127.0.0.1:{{RTMP_PORT}};\n        \
         listen 127.0.0.1:{tls_port} ssl;\n        ssl_certificate {cert};\n        \
         ssl_certificate_key {key};\n        ssl_session_cache shared:RTMPS:1m;\n        \
         ssl_handshake_timeout 2s;\n        chunk_size 4096;\n        \
         log_format tls '$remote_addr|$ssl_protocol|$ssl_server_name|$command';\n        \
         access_log {ACCESS_LOG} tls;\n        \
         application live {{\n            live on;\n        }}\n        \
         application secure {{\n            live on;\n            deny publish 127.0.0.1;\n        }}\n    }}\n}}\n"
    )
}

/// The clients of `live/cam` in `/stat?format=json` once `ready` accepts them (polled for up
/// to 10 s: a worker's part is refreshed every second); the last answer otherwise.
fn stat_clients(server: &Server, ready: impl Fn(&[Value]) -> bool) -> Result<Vec<Value>, String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = String::from("no answer");
    while Instant::now() < deadline {
        match http_get(server.http_port, "/stat?format=json") {
            Ok(r) if r.status == 200 => match serde_json::from_slice::<Value>(&r.body) {
                Ok(v) => {
                    let clients = cam_clients(&v);
                    if ready(&clients) {
                        return Ok(clients);
                    }
                    last = v.to_string();
                }
                Err(e) => {
                    last = format!("not JSON ({e}): {}", String::from_utf8_lossy(&r.body));
                }
            },
            Ok(r) => {
                last = format!("status {}: {}", r.status, String::from_utf8_lossy(&r.body));
            }
            Err(e) => last = e,
        }
        thread::sleep(Duration::from_millis(250));
    }
    Err(last)
}

fn cam_clients(v: &Value) -> Vec<Value> {
    let list = |v: &Value, key: &str| v[key].as_array().cloned().unwrap_or_default();
    list(v, "servers")
        .iter()
        .flat_map(|srv| list(srv, "applications"))
        .filter(|app| app["name"] == "live")
        .flat_map(|app| list(&app, "streams"))
        .filter(|st| st["name"] == "cam")
        .flat_map(|st| list(&st, "clients"))
        .collect()
}

/// A TLS client that sends SNI `name`, completes the handshake and hangs up (openssl s_client
/// with no input); whether it finished in time.
fn tls_hello_with_sni(port: u16, name: &str) -> bool {
    let child = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args(["-servername", name])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let Ok(mut child) = child else {
        return false;
    };
    let done = wait_timeout(&mut child, Duration::from_secs(10)).is_some();
    if !done {
        let _ = child.kill();
        let _ = child.wait();
    }
    done
}

/// The access log's lines once `ready` accepts them (bounded); what was there otherwise.
fn access_lines(server: &Server, ready: impl Fn(&[String]) -> bool) -> Vec<String> {
    let path = server.prefix.join(ACCESS_LOG);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let lines: Vec<String> = fs::read_to_string(&path)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect();
        if ready(&lines) || Instant::now() > deadline {
            return lines;
        }
        thread::sleep(Duration::from_millis(100));
    }
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
    let server = Server::start(&block, STAT_LOCATION);
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

    // librtmp (the RTMP library OBS is built on; rtmpdump here, with GnuTLS) plays over TLS
    // for 3 s (then it is stopped).
    let (status, flv, err) = run_bounded(
        Command::new("rtmpdump").args(["-q", "-v", "-r", &rtmps("live/cam"), "-o", "-"]),
        Duration::from_secs(3),
    );
    checks.check(flv.len() > 50_000 && flv.starts_with("FLV"), || {
        format!(
            "rtmpdump (librtmp) over rtmps:// got {} bytes ({status:?}): {err}",
            flv.len()
        )
    });

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

    // /stat: the TLS publisher with its real address and TLS version, the plain player
    // without TLS. ffmpeg sends no SNI for a numeric host (its OpenSSL and GnuTLS backends
    // only set it for names), so the publisher's `sni` is null.
    let clients = stat_clients(&server, |cs| {
        cs.iter()
            .any(|c| c["publishing"] == true && c["tls"].is_object())
            && cs.iter().any(|c| c["publishing"] == false)
    });
    match clients {
        Ok(clients) => {
            for c in &clients {
                println!("/stat client: {c}");
            }
            let publisher = clients.iter().find(|c| c["publishing"] == true);
            checks.check(
                publisher.is_some_and(|p| {
                    p["address"] == "127.0.0.1"
                        && p["tls"]["version"]
                            .as_str()
                            .is_some_and(|v| v.starts_with("TLSv1."))
                        && p["tls"]["sni"].is_null()
                }),
                || format!("the TLS publisher should show 127.0.0.1, TLSv1.x and no SNI: {publisher:?}"),
            );
            let plain: Vec<&Value> = clients
                .iter()
                .filter(|c| c["publishing"] == false)
                .collect();
            checks.check(
                !plain.is_empty()
                    && plain.iter().all(|c| {
                        c["address"] == "127.0.0.1"
                            && c.as_object().is_some_and(|o| o.contains_key("tls"))
                            && c["tls"].is_null()
                    }),
                || format!("the plain RTMP player should show \"tls\": null: {plain:?}"),
            );
        }
        Err(last) => {
            checks.check(false, || {
                format!(
                    "/stat?format=json never listed the TLS publisher and the plain player:\n{last}"
                )
            });
        }
    }

    // A client that sends SNI: the connect line and the access log name it.
    let offset_sni = server.log_len();
    checks.check(tls_hello_with_sni(tls_port, "rtmps.test"), || {
        "openssl s_client -servername did not finish".into()
    });
    checks.check(
        server.wait_for_log(offset_sni, ", SNI rtmps.test", Duration::from_secs(5)),
        || {
            format!(
                "the SNI client's connect line should name it:\n{}",
                server.log_since(offset_sni)
            )
        },
    );

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

    // The access log: TLS version and SNI name for TLS sessions, "-" for plain RTMP.
    let tls_line = |l: &str, sni: &str, command: &str| {
        let f: Vec<&str> = l.split('|').collect();
        f.len() == 4
            && f[0] == "127.0.0.1"
            && f[1].starts_with("TLSv1.")
            && f[2] == sni
            && f[3] == command
    };
    let lines = access_lines(&server, |ls| {
        ls.iter().any(|l| l.ends_with("|PUBLISH")) && ls.iter().any(|l| l.ends_with("|PLAY"))
    });
    println!("access log:\n{}", lines.join("\n"));
    checks.check(lines.iter().any(|l| tls_line(l, "-", "PUBLISH")), || {
        format!("no \"127.0.0.1|TLSv1.x|-|PUBLISH\" line for the TLS publisher:\n{lines:?}")
    });
    checks.check(
        lines.iter().any(|l| tls_line(l, "rtmps.test", "NONE")),
        || format!("no \"127.0.0.1|TLSv1.x|rtmps.test|NONE\" line for the SNI client:\n{lines:?}"),
    );
    checks.check(lines.iter().any(|l| l == "127.0.0.1|-|-|PLAY"), || {
        format!("no \"127.0.0.1|-|-|PLAY\" line for the plain player:\n{lines:?}")
    });
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

/// The certificate a TLS client gets from `port` (PEM, as `openssl s_client` prints it), sending
/// SNI `name` (none for `None`); `None` when the handshake fails.
fn served_certificate(port: u16, name: Option<&str>) -> Option<String> {
    let mut cmd = Command::new("openssl");
    cmd.args(["s_client", "-connect", &format!("127.0.0.1:{port}")]);
    match name {
        Some(n) => cmd.args(["-servername", n]),
        None => cmd.arg("-noservername"),
    };
    let (status, out, _) = run_bounded(&mut cmd, Duration::from_secs(10));
    let pem_of = |text: &str| {
        let start = text.find("-----BEGIN CERTIFICATE-----")?;
        let end = text.find("-----END CERTIFICATE-----")? + "-----END CERTIFICATE-----".len();
        Some(text.get(start..end)?.to_owned())
    };
    status.filter(|s| s.success()).and(pem_of(&out))
}

fn pem_file(path: &std::path::Path) -> String {
    let text = fs::read_to_string(path).expect("read certificate");
    text.trim().to_owned()
}

#[test]
fn certificates_named_by_sni_are_read_at_each_handshake_and_a_reload_takes_new_files() {
    let certs = TestPrefix::new();
    let dir = certs.0.to_str().expect("utf-8").to_owned();
    let (a_cert, _) = self_signed_cert(&certs.0, "a.rtmps.test");
    let (b_cert, _) = self_signed_cert(&certs.0, "b.rtmps.test");
    let (old_cert, old_key) = self_signed_cert(&certs.0, "old.rtmps.test");
    let fixed_cert = certs.0.join("fixed.crt.pem");
    let fixed_key = certs.0.join("fixed.key.pem");
    fs::copy(&old_cert, &fixed_cert).expect("copy");
    fs::copy(&old_key, &fixed_key).expect("copy");
    let (by_name, fixed) = (free_port(), free_port());
    let block = format!(
        "rtmp {{\n    server {{\n        listen 127.0.0.1:{{RTMP_PORT}};\n        \
         listen 127.0.0.1:{by_name} ssl;\n        \
         ssl_certificate {dir}/${{ssl_server_name}}.crt.pem;\n        \
         ssl_certificate_key {dir}/$ssl_server_name.key.pem;\n        \
         application live {{\n            live on;\n        }}\n    }}\n    server {{\n        \
         listen 127.0.0.1:{fixed} ssl;\n        ssl_certificate {};\n        \
         ssl_certificate_key {};\n        \
         application live {{\n            live on;\n        }}\n    }}\n}}\n",
        fixed_cert.display(),
        fixed_key.display()
    );
    let mut server = Server::start(&block, "");
    let mut checks = Checks::new();

    // Each name gets its own certificate; case does not matter (host names).
    for (sni, file) in [("a.rtmps.test", &a_cert), ("B.RTMPS.test", &b_cert)] {
        let got = served_certificate(by_name, Some(sni));
        checks.check(got.as_deref() == Some(pem_file(file).as_str()), || {
            format!(
                "SNI {sni}: expected the certificate of {}, got {got:?}",
                file.display()
            )
        });
    }
    // No SNI: no file is named ".crt.pem", so the handshake fails, as in nginx.
    let got = served_certificate(by_name, None);
    checks.check(got.is_none(), || {
        format!("no SNI still got a certificate: {got:?}")
    });
    // A name that would climb out of the directory never names a file.
    fs::write(certs.0.join("x.crt.pem"), pem_file(&a_cert)).expect("write");
    let offset = server.log_len();
    let got = served_certificate(by_name, Some("../x"));
    checks.check(got.is_none(), || {
        format!("SNI \"../x\" got a certificate: {got:?}")
    });
    let refused = server.wait_for_log(
        offset,
        "cannot name a certificate file",
        Duration::from_secs(5),
    );
    checks.check(refused, || {
        format!(
            "no log line for the hostile SNI name:\n{}",
            server.log_since(offset)
        )
    });

    // A renewed file is used at the next handshake, without a reload.
    let (renewed, _) = self_signed_cert(&certs.0, "a.rtmps.test");
    let got = served_certificate(by_name, Some("a.rtmps.test"));
    checks.check(got.as_deref() == Some(pem_file(&renewed).as_str()), || {
        "the renewed a.rtmps.test certificate was not used at the next handshake".into()
    });

    // A fixed certificate is read with the configuration: replaced on disk, it is served
    // only after `nginx -s reload`.
    let before = served_certificate(fixed, Some("any.test"));
    checks.check(
        before.as_deref() == Some(pem_file(&old_cert).as_str()),
        || format!("fixed listener before the change: {before:?}"),
    );
    // Replaced as renewal tools do (a new file renamed over the old name): nginx's own
    // certificate cache keeps a file whose inode and mtime (in seconds) did not change.
    let (new_cert, new_key) = self_signed_cert(&certs.0, "new.rtmps.test");
    fs::rename(&new_cert, &fixed_cert).expect("rename");
    fs::rename(&new_key, &fixed_key).expect("rename");
    let new_cert = fixed_cert.clone();
    let still = served_certificate(fixed, Some("any.test"));
    checks.check(still == before, || {
        "the fixed certificate changed without a reload".into()
    });
    server.reload();
    // The old workers stop accepting soon after the new ones start.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut after = served_certificate(fixed, Some("any.test"));
    while after != Some(pem_file(&new_cert)) && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(100));
        after = served_certificate(fixed, Some("any.test"));
    }
    checks.check(
        after.as_deref() == Some(pem_file(&new_cert).as_str()),
        || format!("after reload the fixed listener should serve the new certificate: {after:?}"),
    );
    checks.finish(server);
}

#[test]
fn a_certificate_name_with_another_variable_fails_nginx_t_at_its_line() {
    let block = "rtmp {\n    server {\n        listen 127.0.0.1:1936 ssl;\n        \
                 ssl_certificate /etc/ssl/$server_addr.pem;\n        \
                 ssl_certificate_key /etc/ssl/key.pem;\n        \
                 application live {\n            live on;\n        }\n    }\n}\n";
    let conf = render_conf(std::path::Path::new("{PREFIX}"), block, "", 1935, 8080);
    let t = nginx_t_text(&conf);
    assert!(!t.ok, "nginx -t accepted $server_addr in ssl_certificate");
    assert!(
        t.stderr.contains("unknown variable \"$server_addr\""),
        "{}",
        t.stderr
    );
    assert!(
        t.stderr.contains(&format!("in {}:", t.path.display())),
        "{}",
        t.stderr
    );
}
