//! `push` relays between real servers on loopback: server A (our module) pushes what ffmpeg
//! publishes to server B (a second nginx with our module, or Debian's nginx with the C module);
//! players on A and on B must receive the same frames. A dead target must not disturb local
//! players, a restarted target gets the stream back within `push_reconnect` + 1 s, and with 4
//! workers there is exactly one connection per push target.

mod common;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use common::hls::http_get;
use common::workers::Launch;
use common::{free_port, live_rtmp_block, play_decode, publish, RtmpClient, Server};

const SYSTEM_NGINX: &str = "/usr/sbin/nginx";
const C_MODULE: &str = "/usr/lib/nginx/modules/ngx_rtmp_module.so";

fn require(tool: &str) -> bool {
    let found = Command::new(tool)
        .arg("-version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok();
    if !found {
        common::skip_or_fail("relay test", &format!("{tool} is not installed"));
    }
    found
}

/// A player of `live/<name>` on `server` (joined before anything is published: idle_streams).
fn player(server: &Server, name: &str) -> RtmpClient {
    let mut c = RtmpClient::connect(&server.rtmp_addr(), "live").expect("connect player");
    let codes = c.play(name).expect("play");
    assert!(
        codes.iter().any(|c| c == "NetStream.Play.Start"),
        "play refused: {codes:?}"
    );
    c
}

/// Reads media on a thread for `d`: each message's (video?, timestamp, payload hash).
fn digests_for(mut c: RtmpClient, d: Duration) -> thread::JoinHandle<Vec<(bool, u32, u64)>> {
    thread::spawn(move || c.media_digests_for(d))
}

fn counts(d: &[(bool, u32, u64)]) -> (usize, usize) {
    let video = d.iter().filter(|m| m.0).count();
    (video, d.len() - video)
}

/// ffmpeg publishes 6 s to A, which pushes to `b`; a player on A and one on B (both joined
/// before the publish) must count the same video and audio messages, and ffmpeg must decode
/// the stream played from B.
fn every_frame_reaches(b: &Server, what: &str) {
    let push = format!("push rtmp://127.0.0.1:{}/live;", b.rtmp_port);
    every_frame_reaches_with(b, &live_rtmp_block("", &push), what);
}

/// [`every_frame_reaches`] with A's whole `rtmp{}` block.
fn every_frame_reaches_with(b: &Server, a_block: &str, what: &str) {
    let a = Server::start(a_block, "        location /stat { rtmp_stat all; }");
    let pa = player(&a, "s");
    let pb = player(b, "s");
    let ta = digests_for(pa, Duration::from_secs(9));
    let tb = digests_for(pb, Duration::from_secs(9));
    let mut ff = publish(&a.rtmp_url("live/s"), 6);
    thread::sleep(Duration::from_millis(1500));
    let b_url = b.rtmp_url("live/s");
    let decode = thread::spawn(move || play_decode(&b_url, 3));
    // A's /stat lists the push as an active client of the stream, addressed by its URL.
    let stat = common::hls::http_get(a.http_port, "/stat").expect("GET /stat");
    let xml = String::from_utf8_lossy(&stat.body).to_string();
    let pushed = ["<address>rtmp://127.0.0.1:", "<address>rtmps://127.0.0.1:"]
        .iter()
        .any(|a| xml.contains(a));
    assert!(pushed, "{what}: the push is not in A's /stat:\n{xml}");
    let got_a = ta.join().expect("player A");
    let got_b = tb.join().expect("player B");
    let decoded = decode.join().expect("decode B");
    assert!(
        ff.wait_timeout(Duration::from_secs(15)).is_some(),
        "ffmpeg did not end"
    );
    let (va, aa) = counts(&got_a);
    let (vb, ab) = counts(&got_b);
    eprintln!(
        "{what}: player on A got {va} video + {aa} audio, player on B {vb} video + {ab} audio \
         (same order, timestamps and payload hashes: {}); ffmpeg decoded {} frames from B",
        got_a == got_b,
        decoded.frames
    );
    assert!(va >= 140, "A got too little: {va} video");
    assert_eq!(
        (vb, ab),
        (va, aa),
        "{what}: B must get every frame A's player got"
    );
    // Each track, in order, with its timestamps and payloads (the C module sends a joining
    // player its cached audio header before the video one: the interleaving at 0 ms differs).
    let track = |d: &[(bool, u32, u64)], video: bool| {
        d.iter()
            .filter(|m| m.0 == video)
            .copied()
            .collect::<Vec<_>>()
    };
    for video in [true, false] {
        assert!(
            track(&got_a, video) == track(&got_b, video),
            "{what}: B's {} messages differ from A's (timestamps or payloads)",
            if video { "video" } else { "audio" }
        );
    }
    decoded.assert_decoded(2.5, &format!("{what}: ffmpeg playing from B"));
    let log = a.error_log();
    assert!(log.contains("is publishing"), "{log}");
    assert!(!log.contains("failed:"), "no failure expected:\n{log}");
    a.finish();
}

#[test]
fn push_to_our_module_delivers_every_frame() {
    if !require("ffmpeg") {
        return;
    }
    let b = Server::start_live("");
    every_frame_reaches(&b, "rs -> rs");
    b.finish();
}

#[test]
fn push_to_the_c_module_delivers_every_frame() {
    if !require("ffmpeg") {
        return;
    }
    if !PathBuf::from(SYSTEM_NGINX).is_file() || !PathBuf::from(C_MODULE).is_file() {
        common::skip_or_fail(
            "relay to the C module",
            "Debian's nginx with libnginx-mod-rtmp is not installed",
        );
        return;
    }
    let launch = Launch {
        workers: 1,
        http_reuseport: false,
        nginx: PathBuf::from(SYSTEM_NGINX),
        module: PathBuf::from(C_MODULE),
    };
    let b = launch.start(&live_rtmp_block("", ""), "");
    every_frame_reaches(&b, "rs -> C");
    b.finish();
}

/// Largest gap between consecutive arrivals.
fn largest_gap(arrivals: &[Instant]) -> Duration {
    arrivals
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or(Duration::MAX)
}

#[test]
fn dead_targets_add_no_gap_for_local_players_and_log_once_per_retry() {
    if !require("ffmpeg") {
        return;
    }
    // One port nobody listens on (refused at once), one listener that accepts (the kernel
    // completes the TCP handshake) and never answers the RTMP handshake.
    let refused = free_port();
    let silent = TcpListener::bind("127.0.0.1:0").expect("bind");
    let silent_port = silent.local_addr().unwrap().port();
    let a = Server::start_live(&format!(
        "push rtmp://127.0.0.1:{refused}/live; push rtmp://127.0.0.1:{silent_port}/live; push_reconnect 1s;"
    ));
    let mut p = player(&a, "s");
    let mut ff = publish(&a.rtmp_url("live/s"), 14);
    // Let the stream start, then measure 12 s (past the silent target's 10 s setup timeout).
    let _ = p.read_media_for(Duration::from_millis(1000));
    let arrivals = p.media_arrivals_for(Duration::from_secs(12));
    let gap = largest_gap(&arrivals);
    let _ = ff.wait_timeout(Duration::from_secs(10));
    let log = a.error_log();
    let refused_fails = log
        .lines()
        .filter(|l| l.contains("[warn]") && l.contains(&format!(":{refused}/live failed")))
        .count();
    let silent_fails = log
        .lines()
        .filter(|l| l.contains("[warn]") && l.contains(&format!(":{silent_port}/live failed")))
        .count();
    eprintln!(
        "dead targets: {} media messages in 12 s, largest gap {gap:?}; refused target: {refused_fails} \
         warnings, silent target: {silent_fails} warnings",
        arrivals.len()
    );
    assert!(
        arrivals.len() > 400,
        "the local player starved: {}",
        arrivals.len()
    );
    assert!(gap < Duration::from_millis(400), "largest gap {gap:?}");
    // One line per attempt (connect is refused at once), each waiting twice as long as the
    // one before (1, 2, 4, 8 s): 4 or 5 in the 14 s published, never a flood.
    assert!(
        (3..=5).contains(&refused_fails),
        "{refused_fails} lines:\n{log}"
    );
    let refused_delays: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(&format!(":{refused}/live failed")))
        .filter_map(|l| l.split("reconnecting in ").nth(1))
        .collect();
    assert_eq!(
        refused_delays.get(..3),
        Some(&["1000 ms", "2000 ms", "4000 ms"][..]),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            ":{silent_port}/live failed: no answer to the handshake or publish within 10 s"
        )),
        "{log}"
    );
    assert!(
        (1..=2).contains(&silent_fails),
        "{silent_fails} lines:\n{log}"
    );
    // nginx's own connect() errors are not logged besides ours.
    assert!(!log.contains("connect() to"), "{log}");
    drop(silent);
    drop(p);
    a.finish();
}

/// B listening on a fixed extra port (so a restarted B is reachable at the same address).
fn target_on(port: u16) -> Server {
    Server::start(
        &format!(
            "rtmp {{\n server {{\n listen 127.0.0.1:{{RTMP_PORT}};\n listen 127.0.0.1:{port};\n \
             application live {{ live on; }}\n }}\n}}\n"
        ),
        "",
    )
}

/// Waits for the first video message on `c` (bounded).
fn first_video(c: &mut RtmpClient, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        let (n, err) = c.read_media_for(Duration::from_millis(50));
        if n.video > 0 {
            return true;
        }
        if err.is_some() {
            return false;
        }
    }
    false
}

#[test]
fn restarted_target_gets_frames_again_within_push_reconnect_plus_one_second() {
    if !require("ffmpeg") {
        return;
    }
    let port = free_port();
    let b1 = target_on(port);
    let a = Server::start_live(&format!(
        "push rtmp://127.0.0.1:{port}/live; push_reconnect 1s;"
    ));
    let mut ff = publish(&a.rtmp_url("live/s"), 20);
    let mut p1 = player(&b1, "s");
    assert!(
        first_video(&mut p1, Duration::from_secs(5)),
        "no media on B"
    );
    drop(p1);
    // A restart as `nginx -s stop` does it (fast shutdown: a graceful one would wait for the
    // relay, a publisher, to leave).
    // SAFETY: kill on the master of the nginx this test started.
    unsafe { libc::kill(b1.pid(), libc::SIGTERM) };
    b1.finish();
    let restarted = Instant::now();
    let b2 = target_on(port);
    let up = Instant::now();
    let mut p2 = player(&b2, "s");
    assert!(
        first_video(&mut p2, Duration::from_secs(5)),
        "no media on the restarted B:\n{}",
        a.error_log()
    );
    let back = up.elapsed();
    eprintln!(
        "restart: B down for {:?}; first video on the new B {back:?} after it listened",
        up - restarted
    );
    assert!(back <= Duration::from_millis(2000), "took {back:?}");
    ff.kill();
    drop(p2);
    a.finish();
    b2.finish();
}

#[test]
fn control_drop_stops_a_push_and_stat_counts_its_reconnects() {
    if !require("ffmpeg") || !require("ss") {
        return;
    }
    // One dead target (refused: it reconnects, counted in /stat) and one live one.
    let refused = free_port();
    let port = free_port();
    let b = target_on(port);
    let a = Server::start(
        &live_rtmp_block(
            "",
            &format!(
                "push rtmp://127.0.0.1:{port}/live; push rtmp://127.0.0.1:{refused}/live; \
                 push_reconnect 1s;"
            ),
        ),
        "location /control { rtmp_control all; }\n location /stat { rtmp_stat all; }",
    );
    let mut ff = publish(&a.rtmp_url("live/s"), 20);
    let deadline = Instant::now() + Duration::from_secs(8);
    while common::connections_to(port) != 1 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(common::connections_to(port), 1, "{}", a.error_log());
    thread::sleep(Duration::from_millis(1500));
    let stat = http_get(a.http_port, "/stat?format=json").expect("stat");
    let stat: serde_json::Value = serde_json::from_slice(&stat.body).expect("json");
    let clients = &stat["servers"][0]["applications"][0]["streams"][0]["clients"];
    let reconnects = |url: &str| {
        clients
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["address"] == url)
            .map(|c| c["relay"]["reconnects"].as_u64().unwrap())
    };
    let live_url = format!("rtmp://127.0.0.1:{port}/live");
    assert_eq!(reconnects(&live_url), Some(0), "{stat}");
    assert!(
        reconnects(&format!("rtmp://127.0.0.1:{refused}/live")) >= Some(1),
        "{stat}"
    );
    // Dropped by its address, as /stat shows it: the connection closes and stays closed.
    let r = http_get(
        a.http_port,
        &format!("/control/drop/subscriber?app=live&name=s&addr={live_url}"),
    )
    .expect("control");
    assert_eq!(
        (r.status, String::from_utf8_lossy(&r.body).trim()),
        (200, "1")
    );
    let deadline = Instant::now() + Duration::from_secs(3);
    while common::connections_to(port) != 0 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        common::connections_to(port),
        0,
        "the dropped push is still connected"
    );
    thread::sleep(Duration::from_millis(2500));
    assert_eq!(
        common::connections_to(port),
        0,
        "the dropped push reconnected:\n{}",
        a.error_log()
    );
    assert!(a.error_log().contains("dropped by /control"));
    ff.kill();
    a.finish();
    b.finish();
}

#[test]
fn four_workers_make_one_connection_per_push_target() {
    if !require("ffmpeg") || !require("ss") {
        return;
    }
    let b = Server::start(
        "rtmp {\n server {\n listen 127.0.0.1:{RTMP_PORT};\n \
         application live { live on; }\n application backup { live on; }\n }\n}\n",
        "",
    );
    let a = Launch::workers(4).start(
        &format!(
            "rtmp {{\n server {{\n listen 127.0.0.1:{{RTMP_PORT}} reuseport;\n \
             application live {{ live on; push rtmp://127.0.0.1:{p}/live; \
             push rtmp://127.0.0.1:{p}/backup; }}\n }}\n}}\n",
            p = b.rtmp_port
        ),
        "",
    );
    let mut ff = publish(&a.rtmp_url("live/s"), 8);
    let mut pb = player(&b, "s");
    assert!(
        first_video(&mut pb, Duration::from_secs(5)),
        "no media on B"
    );
    thread::sleep(Duration::from_secs(2));
    let n = common::connections_to(b.rtmp_port);
    // The player above is B's client too, but its destination port is B's: count it out.
    let count = n - 1;
    eprintln!("4 workers: {count} push connections to B for 2 push lines");
    assert_eq!(count, 2, "expected exactly one connection per push line");
    let _ = ff.wait_timeout(Duration::from_secs(15));
    // Unpublish closes them.
    thread::sleep(Duration::from_millis(500));
    drop(pb);
    thread::sleep(Duration::from_millis(200));
    assert_eq!(
        common::connections_to(b.rtmp_port),
        0,
        "relays left after unpublish"
    );
    common::workers::finish_checked(a);
    b.finish();
}

/// The pid of the (only) worker of `server`, from its error log.
fn worker_pid(server: &Server) -> i32 {
    let log = server.error_log();
    log.lines()
        .rev()
        .filter_map(|l| l.split("start worker process ").nth(1))
        .find_map(|p| p.trim().parse().ok())
        .expect("a worker pid in the log")
}

fn wait_log_count(server: &Server, needle: &str, n: usize, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if server.error_log().matches(needle).count() >= n {
            return true;
        }
        thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn a_target_that_stops_reading_is_dropped_after_timeout_and_pushed_to_again() {
    if !require("ffmpeg") {
        return;
    }
    let b = Server::start_live("");
    let a = Server::start(
        &live_rtmp_block(
            "timeout 3s;",
            &format!(
                "push rtmp://127.0.0.1:{}/live; push_reconnect 1s;",
                b.rtmp_port
            ),
        ),
        "",
    );
    let mut ff = common::ffmpeg::publish_cbr(&a.rtmp_url("live/s"), 40, "16M");
    assert!(
        wait_log_count(&a, "is publishing", 1, Duration::from_secs(5)),
        "{}",
        a.error_log()
    );
    let mut p = player(&a, "s");
    let worker = worker_pid(&b);
    // B's worker freezes (it reads nothing, its socket buffers fill up).
    // SAFETY: signals to a worker of the nginx this test started.
    unsafe { libc::kill(worker, libc::SIGSTOP) };
    let stopped = Instant::now();
    let dropped = wait_log_count(
        &a,
        "the target read nothing for 3 s",
        1,
        Duration::from_secs(20),
    );
    let dropped_after = stopped.elapsed();
    // Local players never noticed.
    let arrivals = p.media_arrivals_for(Duration::from_secs(1));
    // SAFETY: as above.
    unsafe { libc::kill(worker, libc::SIGCONT) };
    assert!(
        dropped,
        "the stalled push was not dropped:\n{}",
        a.error_log()
    );
    let resumed = Instant::now();
    let again = wait_log_count(&a, "is publishing", 2, Duration::from_secs(15));
    eprintln!(
        "stalled target: dropped {dropped_after:?} after it froze, publishing again {:?} after it \
         resumed; local player got {} messages in the last second",
        resumed.elapsed(),
        arrivals.len()
    );
    assert!(
        again,
        "no push after the target resumed:\n{}",
        a.error_log()
    );
    assert!(
        arrivals.len() > 20,
        "local player starved: {}",
        arrivals.len()
    );
    ff.kill();
    drop(p);
    a.finish();
    b.finish();
}

/// A certificate for 127.0.0.1 (CN and IP subjectAltName) made with the openssl CLI in `dir`.
fn cert_for_loopback(dir: &std::path::Path) -> (PathBuf, PathBuf) {
    let cert = dir.join("loopback.crt.pem");
    let key = dir.join("loopback.key.pem");
    let out = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args([
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run openssl req");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, key)
}

#[test]
fn rtmps_push_with_a_verified_certificate_delivers_every_frame_and_an_untrusted_one_is_refused() {
    if !require("ffmpeg") || !require("openssl") {
        return;
    }
    let certs = common::TestPrefix::new();
    let (cert, key) = cert_for_loopback(&certs.0);
    let tls_port = free_port();
    // B: plain RTMP for the test's players, RTMPS for the push.
    let b = Server::start(
        &format!(
            "rtmp {{\n server {{\n listen 127.0.0.1:{{RTMP_PORT}};\n listen 127.0.0.1:{tls_port} ssl;\n \
             ssl_certificate {};\n ssl_certificate_key {};\n \
             application live {{ live on; }}\n }}\n}}\n",
            cert.display(),
            key.display()
        ),
        "",
    );
    let a_block = format!(
        "rtmp {{\n relay_ssl_trusted_certificate {};\n server {{\n listen 127.0.0.1:{{RTMP_PORT}};\n \
         chunk_size 4096;\n application live {{ live on; push rtmps://127.0.0.1:{tls_port}/live; }}\n }}\n}}\n",
        cert.display()
    );
    every_frame_reaches_with(&b, &a_block, "rs -> rs over rtmps://");
    assert!(b.error_log().contains("over TLSv1."), "{}", b.error_log());

    // Without the certificate among the trusted ones, the push is refused (once per attempt).
    let a = Server::start(
        &live_rtmp_block(
            "",
            &format!("push rtmps://127.0.0.1:{tls_port}/live; push_reconnect 1s;"),
        ),
        "",
    );
    let mut ff = publish(&a.rtmp_url("live/u"), 4);
    let refused = wait_log_count(&a, "TLS certificate not trusted", 2, Duration::from_secs(6));
    ff.kill();
    let log = a.error_log();
    assert!(refused, "an untrusted target must be refused:\n{log}");
    assert!(!log.contains("is publishing"), "{log}");
    a.finish();
    b.finish();
}

#[test]
fn one_publisher_three_pushes_plain_rtmps_and_dead_healthy_targets_get_every_frame() {
    if !require("ffmpeg") || !require("openssl") {
        return;
    }
    let certs = common::TestPrefix::new();
    let (cert, key) = cert_for_loopback(&certs.0);
    let tls_port = free_port();
    let b1 = Server::start_live("");
    let b2 = Server::start(
        &format!(
            "rtmp {{\n server {{\n listen 127.0.0.1:{{RTMP_PORT}};\n listen 127.0.0.1:{tls_port} ssl;\n \
             ssl_certificate {};\n ssl_certificate_key {};\n \
             application live {{ live on; }}\n }}\n}}\n",
            cert.display(),
            key.display()
        ),
        "",
    );
    let dead = free_port();
    let a = Server::start(
        &format!(
            "rtmp {{\n relay_ssl_trusted_certificate {};\n server {{\n listen 127.0.0.1:{{RTMP_PORT}};\n \
             chunk_size 4096;\n application live {{ live on; push_reconnect 1s;\n \
             push rtmp://127.0.0.1:{}/live;\n push rtmps://127.0.0.1:{tls_port}/live;\n \
             push rtmp://127.0.0.1:{dead}/live;\n }}\n }}\n}}\n",
            cert.display(),
            b1.rtmp_port
        ),
        "",
    );
    let players = [player(&a, "s"), player(&b1, "s"), player(&b2, "s")];
    let mut gaps = RtmpClient::connect(&a.rtmp_addr(), "live").expect("connect");
    gaps.play("s").expect("play");
    let threads: Vec<_> = players
        .into_iter()
        .map(|p| digests_for(p, Duration::from_secs(9)))
        .collect();
    let arrivals = thread::spawn(move || gaps.media_arrivals_for(Duration::from_secs(8)));
    let mut ff = publish(&a.rtmp_url("live/s"), 6);
    let got: Vec<_> = threads
        .into_iter()
        .map(|t| t.join().expect("player"))
        .collect();
    let arrivals = arrivals.join().expect("gap player");
    assert!(
        ff.wait_timeout(Duration::from_secs(15)).is_some(),
        "ffmpeg did not end"
    );
    let gap = largest_gap(&arrivals);
    eprintln!(
        "three pushes: A {:?}, B1 (rtmp) {:?}, B2 (rtmps) {:?} (video, audio); identical: {} / {}; \
         largest gap on A {gap:?}",
        counts(&got[0]),
        counts(&got[1]),
        counts(&got[2]),
        got[0] == got[1],
        got[0] == got[2]
    );
    assert!(counts(&got[0]).0 >= 140, "A got too little");
    assert!(
        got[0] == got[1],
        "B1 (rtmp://) did not get exactly A's messages"
    );
    assert!(
        got[0] == got[2],
        "B2 (rtmps://) did not get exactly A's messages"
    );
    assert!(gap < Duration::from_millis(400), "largest gap on A {gap:?}");
    let log = a.error_log();
    let dead_fails = log
        .lines()
        .filter(|l| l.contains(&format!(":{dead}/live failed")))
        .count();
    assert!(
        (3..=9).contains(&dead_fails),
        "{dead_fails} failures logged:\n{log}"
    );
    a.finish();
    b1.finish();
    b2.finish();
}

#[test]
fn reload_keeps_exactly_one_push_connection_and_the_stream_flowing() {
    if !require("ffmpeg") || !require("ss") {
        return;
    }
    let b = Server::start_live("");
    let mut a = Launch::workers(2).start(
        &format!(
            "rtmp {{\n server {{\n listen 127.0.0.1:{{RTMP_PORT}} reuseport;\n \
             application live {{ live on; push rtmp://127.0.0.1:{}/live; }}\n }}\n}}\n",
            b.rtmp_port
        ),
        "",
    );
    let mut ff = publish(&a.rtmp_url("live/s"), 10);
    let mut pb = player(&b, "s");
    assert!(
        first_video(&mut pb, Duration::from_secs(5)),
        "no media on B"
    );
    a.reload();
    let _ = pb.read_media_for(Duration::from_secs(2));
    // The player on B counts itself out (its destination is B's port too).
    let pushes = common::connections_to(b.rtmp_port) - 1;
    let (after, err) = pb.read_media_for(Duration::from_secs(2));
    eprintln!("after reload: {pushes} push connection(s); B's player got {after:?} in 2 s");
    assert_eq!(pushes, 1, "exactly one push connection after reload");
    assert!(
        err.is_none() && after.video >= 40,
        "B's stream stalled after reload: {after:?}"
    );
    let _ = ff.wait_timeout(Duration::from_secs(15));
    drop(pb);
    common::workers::finish_checked(a);
    b.finish();
}
