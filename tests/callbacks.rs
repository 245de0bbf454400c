//! HTTP callbacks (`on_publish`, `on_play`, `on_update`, the `*_done` notifications,
//! `on_disconnect`) against a recording backend run by the test (see `common::backend`): the
//! form fields the module sends, what it does with each answer (allow, deny, rename, none within
//! `netcall_timeout`), and https callbacks with certificate and host name verification and
//! names resolved through nginx's resolver at call time.
//!
//! Expected failures with `RTMP_IT_TARGET=c`: the log-line checks (the C module logs
//! differently), the https test (it only speaks http), its refused ffmpeg publisher gets no
//! onStatus (the connection is just closed), `on_disconnect` comes with an empty `app`, and
//! HLS keeps the publisher's own name after an `on_publish` redirect (its HLS handler runs
//! before the callback's answer).

mod common;

use std::fs;
use std::net::Ipv4Addr;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use common::backend::{self_signed_cert, Backend, DnsServer, Request, TlsServer};
use common::hls::{wait_segments, Checks};
use common::*;

/// How long a callback's effects (a request, a log line) may take to show.
const CALL_WAIT: Duration = Duration::from_secs(10);

/// rtmp block: `rtmp_extra` in rtmp{}, `server_extra` in its one server{}, and one application
/// per `(name, directives)` with `live on;` and the directives.
fn rtmp_block(rtmp_extra: &str, server_extra: &str, apps: &[(&str, &str)]) -> String {
    let mut s = format!(
        "rtmp {{\n    {rtmp_extra}\n    server {{\n        listen 127.0.0.1:{{RTMP_PORT}};\n        \
         chunk_size 4096;\n        {server_extra}\n"
    );
    for (name, directives) in apps {
        s.push_str(&format!(
            "        application {name} {{\n            live on;\n            {directives}\n        }}\n"
        ));
    }
    s.push_str("    }\n}\n");
    s
}

/// HLS directives for application `app` (1 s fragments: a playlist shows up quickly).
fn hls_directives(app: &str) -> String {
    format!("hls on; hls_path {{PREFIX}}/tmp/{app}; hls_fragment 1s;")
}

/// Files in `dir` whose names start with `stream` (none if `dir` does not exist).
fn files_of(dir: &Path, stream: &str) -> Vec<String> {
    fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(stream))
                .collect()
        })
        .unwrap_or_default()
}

/// Checks the session fields every callback carries: `app`, `addr` 127.0.0.1, numeric
/// `clientid`, and (when given) `name`.
fn check_session_fields(checks: &mut Checks, r: &Request, app: &str, name: Option<&str>) {
    let what = format!("{} request {:?}", r.call(), r.fields);
    checks.check(r.field("app") == Some(app), || {
        format!("{what}: app should be {app:?}")
    });
    checks.check(r.field("addr") == Some("127.0.0.1"), || {
        format!("{what}: addr should be 127.0.0.1")
    });
    checks.check(r.number("clientid").is_some(), || {
        format!("{what}: clientid should be numeric")
    });
    if let Some(name) = name {
        checks.check(r.field("name") == Some(name), || {
            format!("{what}: name should be {name:?}")
        });
    }
}

/// Waits (bounded) for an ffmpeg child to exit; returns its status and when the exit was seen.
fn wait_exit(
    child: &mut FfmpegChild,
    timeout: Duration,
) -> Option<(std::process::ExitStatus, Instant)> {
    child.wait_timeout(timeout).map(|st| (st, Instant::now()))
}

/// Publishes with the test client; `Ok(code)` is the first onStatus code.
fn client_publish(server: &Server, app: &str, name: &str) -> Result<String, ClientError> {
    RtmpClient::connect(&server.rtmp_addr(), app)?.publish(name)
}

#[test]
fn allowed_key_publishes_and_wrong_key_is_refused_with_nothing_written() {
    let backend = Backend::start();
    let app = format!(
        "{} on_publish {};",
        hls_directives("live"),
        backend.url("/auth")
    );
    let server = Server::start(&rtmp_block("", "", &[("live", &app)]), "");
    let mut checks = Checks::new();
    let dir = server.prefix.join("tmp/live");

    // Wrong key: refused, nothing of the stream on disk.
    let offset = server.log_len();
    let mut bad = publish(&server.rtmp_url("live/cam?key=bad"), 10);
    let exit = wait_exit(&mut bad, Duration::from_secs(15));
    println!(
        "ffmpeg with key=bad: {exit:?}, stderr: {}",
        bad.stderr().trim()
    );
    checks.check(matches!(exit, Some((st, _)) if !st.success()), || {
        format!(
            "publisher with key=bad: expected a failing exit within 15 s, got {exit:?}; \
             stderr: {}",
            bad.stderr()
        )
    });
    checks.check(
        bad.stderr().contains("Publishing refused by on_publish"),
        || {
            format!(
                "publisher with key=bad: ffmpeg should report the server's refusal, stderr: {}",
                bad.stderr()
            )
        },
    );
    let denied = r#"on_publish for "live/cam" answered 403: denied"#;
    checks.check(server.wait_for_log(offset, denied, CALL_WAIT), || {
        format!("no `{denied}` in the log:\n{}", server.log_since(offset))
    });
    let first = backend.wait_calls("publish", 1, CALL_WAIT);
    checks.check(
        first.len() == 1 && first[0].field("key") == Some("bad"),
        || format!("expected one on_publish with key=bad: {first:#?}"),
    );
    let written = files_of(&dir, "cam");
    checks.check(written.is_empty(), || {
        format!("the refused publisher's stream was written to disk: {written:?}")
    });

    // Right key: publishes, players and HLS get it.
    let mut good = publish(&server.rtmp_url("live/cam?key=good"), 14);
    let calls = backend.wait_calls("publish", 2, CALL_WAIT);
    thread::sleep(Duration::from_millis(1000));
    match probe_streams(&server.rtmp_url("live/cam")) {
        Ok(streams) => {
            let streams = streams.join("\n");
            checks.check(streams.contains("codec_name=h264"), || {
                format!("player of live/cam should see H.264, ffprobe says:\n{streams}")
            });
        }
        Err(e) => checks.fail(format!("ffprobe of the allowed stream: {e}")),
    }
    let playlist = dir.join("cam.m3u8");
    if let Err(e) = wait_segments(&playlist, 1) {
        checks.fail(format!("the allowed stream's HLS playlist: {e}"));
    }
    checks.check(good.is_running(), || {
        format!(
            "the allowed publisher stopped early: {:?} {}",
            good.status(),
            good.stderr()
        )
    });

    match calls.get(1) {
        Some(r) => {
            check_session_fields(&mut checks, r, "live", Some("cam"));
            let tcurl = format!("rtmp://127.0.0.1:{}/live", server.rtmp_port);
            let want = [
                ("call", "publish"),
                ("type", "live"),
                ("key", "good"),
                ("tcurl", tcurl.as_str()),
            ];
            for (k, v) in want {
                checks.check(r.field(k) == Some(v), || {
                    format!("on_publish field {k} should be {v:?}: {:?}", r.fields)
                });
            }
            checks.check(r.field("flashver").is_some_and(|f| !f.is_empty()), || {
                format!(
                    "on_publish should carry the client's flashver: {:?}",
                    r.fields
                )
            });
            checks.check(r.method == "POST" && r.path == "/auth", || {
                format!(
                    "on_publish should be POST /auth by default, got {} {}",
                    r.method, r.path
                )
            });
            checks.check(r.query.is_empty(), || {
                format!("a POST carries its fields in the body, not the query: {r:?}")
            });
        }
        None => checks.fail(format!(
            "no on_publish for the key=good publisher: {}",
            backend.summary()
        )),
    }
    drop(good);
    drop(bad);
    checks.finish(server);
}

#[test]
fn redirect_renames_the_stream() {
    let backend = Backend::start();
    let app = format!(
        "{} on_publish {};",
        hls_directives("live"),
        backend.url("/rename")
    );
    let server = Server::start(&rtmp_block("", "", &[("live", &app)]), "");
    let mut checks = Checks::new();
    let dir = server.prefix.join("tmp/live");

    let offset = server.log_len();
    let mut publisher = publish(&server.rtmp_url("live/cam"), 14);
    let calls = backend.wait_calls("publish", 1, CALL_WAIT);
    checks.check(
        calls.len() == 1 && calls[0].field("name") == Some("cam"),
        || format!("expected one on_publish for cam: {calls:#?}"),
    );
    let renamed = r#"on_publish for "live/cam" answered 302: renamed to "renamed""#;
    checks.check(server.wait_for_log(offset, renamed, CALL_WAIT), || {
        format!("no `{renamed}` in the log:\n{}", server.log_since(offset))
    });
    thread::sleep(Duration::from_millis(1000));
    match probe_streams(&server.rtmp_url("live/renamed")) {
        Ok(streams) => {
            let streams = streams.join("\n");
            checks.check(streams.contains("codec_name=h264"), || {
                format!("player of live/renamed should see H.264, ffprobe says:\n{streams}")
            });
        }
        Err(e) => checks.fail(format!("ffprobe of live/renamed: {e}")),
    }
    if let Err(e) = wait_segments(&dir.join("renamed.m3u8"), 1) {
        checks.fail(format!("HLS under the new name: {e}"));
    }
    let old = files_of(&dir, "cam");
    checks.check(old.is_empty(), || {
        format!("files under the old name were written: {old:?}")
    });
    checks.check(publisher.is_running(), || {
        format!(
            "the renamed publisher stopped early: {:?} {}",
            publisher.status(),
            publisher.stderr()
        )
    });
    drop(publisher);
    checks.finish(server);
}

#[test]
fn done_callbacks_arrive_with_their_fields() {
    let backend = Backend::start();
    let allow = backend.url("/allow");
    let app =
        format!("on_play {allow}; on_publish_done {allow}; on_play_done {allow}; on_done {allow};");
    let server_extra = format!("on_disconnect {allow};");
    let server = Server::start(&rtmp_block("", &server_extra, &[("live", &app)]), "");
    let mut checks = Checks::new();

    let url = server.rtmp_url("live/cam");
    let mut publisher = publish(&url, 5);
    thread::sleep(Duration::from_millis(1200));
    let played = play_decode(&url, 2);
    checks.check(played.ok && played.decoded_seconds >= 1.5, || {
        format!("player of live/cam (on_play allows): {played:#?}")
    });
    let exit = wait_exit(&mut publisher, Duration::from_secs(20));
    checks.check(matches!(exit, Some((st, _)) if st.success()), || {
        format!(
            "publisher should finish its 5 s: {exit:?} {}",
            publisher.stderr()
        )
    });

    let wanted = [
        ("play", 1),
        ("publish_done", 1),
        ("play_done", 1),
        ("done", 2),
        ("disconnect", 2),
    ];
    checks.check(backend.wait_all(&wanted, CALL_WAIT), || {
        format!(
            "expected calls {wanted:?} within {CALL_WAIT:?}, got: {}",
            backend.summary()
        )
    });
    let play = backend.calls("play");
    let publish_done = backend.calls("publish_done");
    let play_done = backend.calls("play_done");
    let done = backend.calls("done");
    let disconnect = backend.calls("disconnect");
    for r in play
        .iter()
        .chain(&publish_done)
        .chain(&play_done)
        .chain(&done)
    {
        check_session_fields(&mut checks, r, "live", Some("cam"));
    }
    for r in &disconnect {
        check_session_fields(&mut checks, r, "live", None);
    }
    checks.check(
        play.len() == 1 && publish_done.len() == 1 && play_done.len() == 1,
        || {
            format!(
                "one play, publish_done and play_done each: {}",
                backend.summary()
            )
        },
    );

    // The same clients, identified by clientid, across the calls.
    if let (Some(pd), Some(pl), Some(pld)) = (publish_done.first(), play.first(), play_done.first())
    {
        let publisher_id = pd.number("clientid");
        let player_id = pld.number("clientid");
        checks.check(publisher_id != player_id, || {
            format!("publisher and player have the same clientid {publisher_id:?}")
        });
        checks.check(pl.number("clientid") == player_id, || {
            format!("play and play_done disagree on the clientid: {pl:?} {pld:?}")
        });
        let mut done_ids: Vec<_> = done.iter().map(|r| r.number("clientid")).collect();
        done_ids.sort();
        let mut want_ids = vec![publisher_id, player_id];
        want_ids.sort();
        checks.check(done_ids == want_ids, || {
            format!("on_done should come once for the publisher and once for the player: {done:#?}")
        });
        let gone: Vec<_> = disconnect.iter().map(|r| r.number("clientid")).collect();
        checks.check(
            gone.contains(&publisher_id) && gone.contains(&player_id),
            || {
                format!(
                "on_disconnect should come for the publisher ({publisher_id:?}) and the player \
                 ({player_id:?}): {gone:?}"
            )
            },
        );
    }
    for r in backend.requests() {
        checks.check(r.method == "POST" && r.path == "/allow", || {
            format!("unexpected request {} {}", r.method, r.path)
        });
    }
    drop(publisher);
    checks.finish(server);
}

#[test]
fn slow_backend_times_out_without_blocking_another_publisher() {
    let backend = Backend::start();
    let slow_app = format!("on_publish {};", backend.url("/slow"));
    let block = rtmp_block(
        "",
        "netcall_timeout 2s;",
        &[("slow", slow_app.as_str()), ("live", "")],
    );
    let server = Server::start(&block, "");
    let mut checks = Checks::new();
    let offset = server.log_len();

    let mut slow = publish(&server.rtmp_url("slow/x"), 10);
    let held = backend.wait_calls("publish", 1, CALL_WAIT);
    let Some(t0) = held.first().map(|r| r.at) else {
        panic!(
            "the slow application's on_publish never arrived: {}",
            backend.summary()
        );
    };

    // While slow/x waits for its answer, live/y publishes and plays.
    let mut publisher = RtmpClient::connect(&server.rtmp_addr(), "live").expect("connect");
    let code = publisher.publish("y");
    let published_after = t0.elapsed();
    checks.check(
        matches!(&code, Ok(c) if c == "NetStream.Publish.Start"),
        || format!("live/y next to a waiting slow/x: {code:?}"),
    );
    checks.check(published_after < Duration::from_millis(1500), || {
        format!("live/y was answered {published_after:?} after slow/x's call went out")
    });
    let mut player = RtmpClient::connect(&server.rtmp_addr(), "live").expect("connect");
    let codes = player.play("y");
    checks.check(
        matches!(&codes, Ok(c) if c.iter().any(|c| c == "NetStream.Play.Start")),
        || format!("player of live/y: {codes:?}"),
    );
    let sent = publisher.send_test_frames(10);
    let (count, err) = player.read_media_for(Duration::from_millis(500));
    checks.check(sent.is_ok() && count.video >= 5, || {
        format!("the player of live/y should get video: {count:?} {err:?} (send: {sent:?})")
    });
    println!(
        "live/y published {published_after:?} and played until {:?} after slow/x's call",
        t0.elapsed()
    );
    let log_now = server.log_since(offset);
    checks.check(!log_now.contains("no answer within"), || {
        format!(
            "live/y played only after slow/x timed out ({:?} after its call):\n{log_now}",
            t0.elapsed()
        )
    });
    checks.check(slow.is_running(), || {
        format!(
            "slow/x ended before its callback timed out: {:?} {}",
            slow.status(),
            slow.stderr()
        )
    });

    // slow/x is refused once netcall_timeout (2 s) passes.
    let exit = wait_exit(&mut slow, Duration::from_secs(12));
    match exit {
        Some((st, at)) => {
            let took = at.duration_since(t0);
            checks.check(!st.success(), || {
                format!("slow/x should fail, exited with {st}: {}", slow.stderr())
            });
            checks.check(
                took >= Duration::from_millis(1500) && took <= Duration::from_secs(6),
                || format!("slow/x was refused {took:?} after its call (expected ~2 s)"),
            );
        }
        None => checks.fail(format!(
            "slow/x still runs 12 s after its call: {}",
            slow.stderr()
        )),
    }
    let timeout_line =
        r#"on_publish for "slow/x" callback request failed: no answer within 2000 ms: denied"#;
    checks.check(server.wait_for_log(offset, timeout_line, CALL_WAIT), || {
        format!(
            "no `{timeout_line}` in the log:\n{}",
            server.log_since(offset)
        )
    });
    let (count, err) = player.read_media_for(Duration::from_millis(300));
    checks.check(err.is_none(), || {
        format!("the player of live/y was dropped: {count:?} {err:?}")
    });
    drop(player);
    drop(publisher);
    checks.finish(server);
    // The held /slow socket is closed here.
    drop(backend);
}

#[test]
fn on_update_denial_drops_the_session() {
    let backend = Backend::with_update_allowed(1);
    let app = format!(
        "on_update {}; notify_update_timeout 1s;",
        backend.url("/update")
    );
    let server = Server::start(&rtmp_block("", "", &[("live", &app)]), "");
    let mut checks = Checks::new();
    let offset = server.log_len();

    let started = Instant::now();
    let mut publisher = publish(&server.rtmp_url("live/cam"), 20);
    let exit = wait_exit(&mut publisher, Duration::from_secs(15));
    let updates = backend.wait_path("/update", 2, Duration::from_secs(1));
    match exit {
        Some((st, at)) => {
            let took = at.duration_since(started);
            println!(
                "publisher dropped after {took:?} ({st}); updates: {}",
                backend.summary()
            );
            checks.check(took <= Duration::from_secs(8), || {
                format!("the publisher should be dropped within ~5 s, took {took:?}")
            });
            checks.check(!st.success(), || {
                format!("a dropped publisher should fail, exited with {st}")
            });
            if let Some(second) = updates.get(1) {
                checks.check(at >= second.at, || {
                    format!(
                        "the publisher ended before the denying on_update ({:?} earlier): \
                         the allowed first update must not drop it",
                        second.at.duration_since(at)
                    )
                });
            }
        }
        None => checks.fail(format!(
            "the publisher still runs 15 s in, on_update answers: {}",
            backend.summary()
        )),
    }
    checks.check(updates.len() >= 2, || {
        format!(
            "expected two on_update calls (200 then 403): {}",
            backend.summary()
        )
    });
    checks.check(
        updates.first().and_then(|r| r.status) == Some(200)
            && updates.get(1).and_then(|r| r.status) == Some(403),
        || {
            format!(
                "first on_update allowed, second denied: {}",
                backend.summary()
            )
        },
    );
    for r in &updates {
        check_session_fields(&mut checks, r, "live", Some("cam"));
        // As the C module: `update_publish` for a publisher (`update_play` for a player).
        checks.check(r.call() == "update_publish", || {
            format!(
                "a publisher's on_update should be call=update_publish: {:?}",
                r.fields
            )
        });
        checks.check(
            r.number("time").is_some() && r.number("timestamp").is_some(),
            || {
                format!(
                    "on_update should carry numeric time and timestamp: {:?}",
                    r.fields
                )
            },
        );
    }
    if let Some(first) = backend.requests().iter().find(|r| r.path == "/update") {
        // ffmpeg starts publishing within about a second; the first update is one period later.
        let after = first.at.duration_since(started);
        checks.check(after <= Duration::from_secs(4), || {
            format!(
                "the first on_update should come ~1 s (notify_update_timeout) after the publish, \
                 came {after:?} after ffmpeg started"
            )
        });
    }
    if let (Some(a), Some(b)) = (updates.first(), updates.get(1)) {
        let gap = b.at.duration_since(a.at);
        checks.check(
            gap >= Duration::from_millis(500) && gap <= Duration::from_millis(2500),
            || format!("on_update period should be ~1 s, was {gap:?}"),
        );
    }
    let denied = r#"on_update for "live/cam" answered 403: denied"#;
    checks.check(server.wait_for_log(offset, denied, CALL_WAIT), || {
        format!("no `{denied}` in the log:\n{}", server.log_since(offset))
    });
    drop(publisher);
    checks.finish(server);
}

#[test]
fn get_method_and_https_with_a_trusted_self_signed_certificate() {
    let certs = TestPrefix::new();
    let (cert, key) = self_signed_cert(&certs.0, "callback.test");
    let (other_cert, other_key) = self_signed_cert(&certs.0, "other.test");
    let trusted = certs.0.join("trusted.pem");
    let bundle = format!("{}{}", read_lossy(&cert), read_lossy(&other_cert));
    fs::write(&trusted, bundle).expect("write trusted.pem");
    let tls = TlsServer::start(&cert, &key);
    let tls_other = TlsServer::start(&other_cert, &other_key);
    let dns = DnsServer::start("callback.test", Ipv4Addr::LOCALHOST);
    let mut checks = Checks::new();

    let server_extra = format!("resolver 127.0.0.1:{}; notify_method get;", dns.port);
    let good_app = format!("on_publish https://callback.test:{}/auth;", tls.port);
    let mismatch_app = format!("on_publish https://callback.test:{}/auth;", tls_other.port);
    // Plain http to the recording backend, by name too: shows the GET request itself.
    let backend = Backend::start();
    let plain_app = format!("on_publish http://callback.test:{}/allow;", backend.port);

    // Trusted certificate for the right name: allowed; resolved when the call is made.
    let rtmp_extra = format!("notify_ssl_trusted_certificate {};", trusted.display());
    let block = rtmp_block(
        &rtmp_extra,
        &server_extra,
        &[
            ("good", good_app.as_str()),
            ("mismatch", mismatch_app.as_str()),
            ("plain", plain_app.as_str()),
        ],
    );
    let server = Server::start(&block, "");
    let offset = server.log_len();
    let before = Instant::now();
    let code = client_publish(&server, "good", "cam");
    checks.check(
        matches!(&code, Ok(c) if c == "NetStream.Publish.Start"),
        || {
            format!(
                "publish with a trusted https callback: {code:?}\n{}",
                server.log_since(offset)
            )
        },
    );
    let allowed = r#"on_publish for "good/cam" answered 200: allowed"#;
    checks.check(server.wait_for_log(offset, allowed, CALL_WAIT), || {
        format!("no `{allowed}` in the log:\n{}", server.log_since(offset))
    });
    let asked = dns
        .queries()
        .iter()
        .any(|q| q.name == "callback.test" && q.qtype == 1 && q.at >= before);
    checks.check(asked, || {
        format!(
            "the DNS server got no A query for callback.test at call time: {:?}",
            dns.queries()
        )
    });

    // notify_method get: the fields travel in the query string.
    let code = client_publish(&server, "plain", "cam?key=k%201");
    checks.check(
        matches!(&code, Ok(c) if c == "NetStream.Publish.Start"),
        || format!("publish with an allowing http callback: {code:?}"),
    );
    let calls = backend.wait_calls("publish", 1, CALL_WAIT);
    match calls.first() {
        Some(r) => {
            check_session_fields(&mut checks, r, "plain", Some("cam"));
            checks.check(r.method == "GET" && r.path == "/allow", || {
                format!(
                    "notify_method get: expected GET /allow, got {} {}",
                    r.method, r.path
                )
            });
            checks.check(
                r.body.is_empty() && r.query.contains("call=publish"),
                || format!("a GET carries its fields in the query: {r:?}"),
            );
            checks.check(r.field("key") == Some("k 1"), || {
                format!(
                    "the client's key=k%201 should arrive decoded as \"k 1\": {:?}",
                    r.fields
                )
            });
        }
        None => checks.fail(format!(
            "no on_publish for plain/cam: {}",
            backend.summary()
        )),
    }

    // Trusted certificate for another name.
    let offset = server.log_len();
    let code = client_publish(&server, "mismatch", "cam");
    checks.check(
        !matches!(&code, Ok(c) if c == "NetStream.Publish.Start"),
        || format!("publish with a certificate for other.test should be refused: {code:?}"),
    );
    let mismatch = r#"TLS certificate does not match "callback.test""#;
    checks.check(server.wait_for_log(offset, mismatch, CALL_WAIT), || {
        format!("no `{mismatch}` in the log:\n{}", server.log_since(offset))
    });
    checks.finish(server);

    // No trusted certificate: the self-signed one is not trusted.
    let mut checks = Checks::new();
    let block = rtmp_block(
        "notify_ssl_verify on;",
        &server_extra,
        &[("good", good_app.as_str())],
    );
    let server = Server::start(&block, "");
    let offset = server.log_len();
    let before = Instant::now();
    let code = client_publish(&server, "good", "cam");
    checks.check(
        !matches!(&code, Ok(c) if c == "NetStream.Publish.Start"),
        || format!("publish with an untrusted certificate should be refused: {code:?}"),
    );
    let untrusted = "TLS certificate not trusted";
    checks.check(server.wait_for_log(offset, untrusted, CALL_WAIT), || {
        format!("no `{untrusted}` in the log:\n{}", server.log_since(offset))
    });
    let asked = dns
        .queries()
        .iter()
        .any(|q| q.name == "callback.test" && q.at >= before);
    checks.check(asked, || {
        format!(
            "the second nginx did not ask the DNS server for callback.test: {:?}",
            dns.queries()
        )
    });
    checks.finish(server);
    drop(tls);
    drop(tls_other);
}

/// Fail closed: an `on_publish` that cannot be made (nothing listens at the backend's port, its
/// host name does not resolve) denies the publish, with one log line naming why. (The untrusted and mismatched TLS certificates are in the https test.)
#[test]
fn a_callback_that_cannot_be_made_denies_the_publish() {
    let dns = DnsServer::start("callback.test", Ipv4Addr::LOCALHOST);
    let closed_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
        l.local_addr().expect("local addr").port()
    };
    let refused_app = format!("on_publish http://127.0.0.1:{closed_port}/auth;");
    let unresolved_app = format!("on_publish http://nowhere.test:{closed_port}/auth;");
    let server_extra = format!("resolver 127.0.0.1:{};", dns.port);
    let block = rtmp_block(
        "",
        &server_extra,
        &[
            ("refused", refused_app.as_str()),
            ("unresolved", unresolved_app.as_str()),
        ],
    );
    let server = Server::start(&block, "");
    let mut checks = Checks::new();
    for (app, why) in [("refused", "connect to"), ("unresolved", "nowhere.test")] {
        let offset = server.log_len();
        let code = client_publish(&server, app, "cam");
        checks.check(
            matches!(&code, Ok(c) if c == "NetStream.Publish.Denied"),
            || {
                format!(
                    "{app}: a callback that cannot be made must deny the publish, got {code:?}\n{}",
                    server.log_since(offset)
                )
            },
        );
        let label = format!("on_publish for \"{app}/cam\"");
        let deadline = Instant::now() + CALL_WAIT;
        let line = loop {
            let log = server.log_since(offset);
            let line = log
                .lines()
                .find(|l| l.contains(&label) && l.ends_with(": denied"))
                .map(str::to_owned);
            if line.is_some() || Instant::now() > deadline {
                break line;
            }
            thread::sleep(Duration::from_millis(50));
        };
        match line {
            Some(l) => {
                checks.check(l.contains(why) && l.contains("[warn]"), || {
                    format!("{app}: the denial should be a [warn] naming {why:?}: {l}")
                });
            }
            None => checks.fail(format!(
                "{app}: no `{label} ...: denied` line:\n{}",
                server.log_since(offset)
            )),
        }
    }
    checks.finish(server);
}

/// `log_format` with the C module's variables and `access_log` to a file: one line per RTMP
/// connection when it closes, in the configured format.
#[test]
fn access_log_line_matches_the_configured_format() {
    let server_extra = "access_log logs/rtmp.log short; \
         log_format short '$connection|$remote_addr|$command|$app|$name|$args|$flashver|\
         $bytes_received|$bytes_sent|$session_time|$msec';";
    let server = Server::start(&rtmp_block("", server_extra, &[("live", "")]), "");
    let mut checks = Checks::new();
    let mut publisher = publish(&server.rtmp_url("live/cam?key=k1"), 3);
    checks.check(
        wait_exit(&mut publisher, Duration::from_secs(15)).is_some(),
        || "the publisher did not finish".into(),
    );
    let path = server.prefix.join("logs/rtmp.log");
    let deadline = Instant::now() + CALL_WAIT;
    let mut text = String::new();
    while Instant::now() < deadline {
        text = fs::read_to_string(&path).unwrap_or_default();
        if text.contains("|PUBLISH|") {
            break;
        }
        thread::sleep(Duration::from_millis(100));
    }
    // The test harness's port probes are connections too (logged with command NONE).
    let lines: Vec<&str> = text.lines().filter(|l| l.contains("|PUBLISH|")).collect();
    checks.check(lines.len() == 1, || {
        format!("expected one PUBLISH line:\n{text}")
    });
    if let Some(line) = lines.first() {
        let f: Vec<&str> = line.split('|').collect();
        checks.check(f.len() == 11, || format!("11 fields expected: {line}"));
        if f.len() == 11 {
            checks.check(f[0].parse::<u64>().is_ok(), || {
                format!("$connection: {line}")
            });
            checks.check(f[1] == "127.0.0.1", || format!("$remote_addr: {line}"));
            checks.check(f[2] == "PUBLISH", || format!("$command: {line}"));
            checks.check(f[3] == "live" && f[4] == "cam", || {
                format!("$app/$name: {line}")
            });
            checks.check(f[5] == "key=k1", || format!("$args: {line}"));
            checks.check(f[6].contains("Lavf"), || format!("$flashver: {line}"));
            let received: u64 = f[7].parse().unwrap_or(0);
            checks.check(received > 50_000, || format!("$bytes_received: {line}"));
            checks.check(f[8].parse::<u64>().is_ok_and(|n| n > 0), || {
                format!("$bytes_sent: {line}")
            });
            checks.check(
                f[9].parse::<u64>().is_ok_and(|s| (2..=10).contains(&s)),
                || format!("$session_time: {line}"),
            );
            let msec_ok = f[10]
                .split_once('.')
                .is_some_and(|(s, ms)| s.len() >= 10 && ms.len() == 3);
            checks.check(msec_ok, || format!("$msec: {line}"));
        }
    }
    checks.finish(server);
}
