//! `pull` between real servers on loopback: an edge (our module, several workers) pulls from an
//! origin (a second nginx with our module, or Debian's nginx with the C module) when its first
//! player arrives, serves every player of every worker from that one connection, and lets it go
//! when the last player leaves.

mod common;

use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use common::hls::Checks;
use common::workers::Launch;
use common::{play_decode, publish, RtmpClient, Server};

fn origin() -> Server {
    Server::start(
        "rtmp {\n server {\n listen 127.0.0.1:{RTMP_PORT};\n \
         application live { live on; }\n }\n}\n",
        "",
    )
}

fn edge_block(origin_port: u16, extra: &str) -> String {
    format!(
        "rtmp {{\n server {{\n listen 127.0.0.1:{{RTMP_PORT}} reuseport;\n \
         application edge {{ live on; pull rtmp://127.0.0.1:{origin_port}/live; {extra} }}\n }}\n}}\n"
    )
}

fn wait_until(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        thread::sleep(Duration::from_millis(100));
    }
    f()
}

#[test]
fn an_edge_pulls_once_for_a_hundred_players_in_two_workers_and_stops_after_the_last() {
    let origin = origin();
    let edge = Launch::workers(2).start(&edge_block(origin.rtmp_port, ""), "");
    let mut checks = Checks::new();
    let mut ff = publish(&origin.rtmp_url("live/cam"), 25);
    thread::sleep(Duration::from_millis(1500));
    // ffmpeg decodes what the edge pulls.
    let decoded = play_decode(&edge.rtmp_url("edge/cam"), 3);
    checks.check(decoded.ok && decoded.decoded_seconds >= 2.5, || {
        format!("ffmpeg on the edge: {decoded:#?}")
    });
    let players: Vec<_> = (0..100)
        .map(|_| {
            let addr = edge.rtmp_addr();
            thread::spawn(move || {
                let mut c = RtmpClient::connect(&addr, "edge").expect("connect");
                let codes = c.play("cam").unwrap_or_default();
                let (count, _) = c.read_media_for(Duration::from_secs(6));
                (codes, count.video)
            })
        })
        .collect();
    thread::sleep(Duration::from_secs(3));
    // The origin's players: ffmpeg is its publisher, the edge's pull its only player.
    let to_origin = common::connections_to(origin.rtmp_port) - 1;
    checks.check(to_origin == 1, || {
        format!("{to_origin} connections to the origin for 100 edge players")
    });
    let results: Vec<_> = players.into_iter().map(|p| p.join().unwrap()).collect();
    let fed = results
        .iter()
        .filter(|(codes, video)| codes.iter().any(|c| c == "NetStream.Play.Start") && *video >= 100)
        .count();
    checks.check(fed == 100, || {
        format!("{fed} of 100 edge players got 4 s of video")
    });
    // The last player left: the pull ends, and with it the connection to the origin.
    let gone = wait_until(Duration::from_secs(4), || {
        common::connections_to(origin.rtmp_port) == 1
    });
    checks.check(gone, || "the pull outlived its last player".into());
    let log = edge.error_log();
    let starts = log
        .matches("relay: pull of \"edge/cam\" from rtmp://")
        .count();
    checks.check(starts >= 2 && log.contains("stops: no player left"), || {
        format!("{starts} pulls started (one per player wave), or none stopped:\n{log}")
    });
    let _ = ff.wait_timeout(Duration::from_secs(30));
    common::workers::finish_checked(edge);
    checks.finish(origin);
}

/// An origin that also listens on `port` (so a restarted one is found at the same address).
fn origin_on(port: u16) -> Server {
    Server::start(
        &format!(
            "rtmp {{\n server {{\n listen 127.0.0.1:{{RTMP_PORT}};\n listen 127.0.0.1:{port};\n \
             application live {{ live on; }}\n }}\n}}\n"
        ),
        "",
    )
}

#[test]
fn a_pull_reconnects_when_the_origin_comes_back_and_players_keep_playing() {
    let port = common::free_port();
    let origin = origin_on(port);
    let edge = Server::start(&edge_block(port, "pull_reconnect 500ms;"), "");
    let mut checks = Checks::new();
    let mut ff = publish(&origin.rtmp_url("live/cam"), 30);
    thread::sleep(Duration::from_millis(1500));
    let mut player = RtmpClient::connect(&edge.rtmp_addr(), "edge").expect("connect");
    let codes = player.play("cam").unwrap_or_default();
    checks.check(codes.iter().any(|c| c == "NetStream.Play.Start"), || {
        format!("play on the edge: {codes:?}")
    });
    let (first, _) = player.read_media_for(Duration::from_secs(2));
    checks.check(first.video > 20, || format!("before: {first:?}"));
    // The origin goes away and comes back: the pull reconnects, the edge's player stays.
    ff.kill();
    // As `nginx -s stop` (a graceful quit would wait for the pull to leave).
    // SAFETY: kill on the master of the nginx this test started.
    unsafe { libc::kill(origin.pid(), libc::SIGTERM) };
    origin.finish();
    let (gap, err) = player.read_media_for(Duration::from_secs(1));
    checks.check(err.is_none(), || {
        format!("the edge dropped its player: {gap:?} {err:?}")
    });
    let origin = origin_on(port);
    let mut ff = publish(&origin.rtmp_url("live/cam"), 20);
    let (after, err) = player.read_media_for(Duration::from_secs(6));
    checks.check(after.video > 50 && err.is_none(), || {
        format!("after the origin came back: {after:?}, {err:?}")
    });
    let log = edge.error_log();
    checks.check(log.contains("reconnecting in"), || {
        format!("no reconnect:\n{log}")
    });
    drop(player);
    ff.kill();
    edge.finish();
    checks.finish(origin);
}

#[test]
fn an_edge_pulls_from_the_c_module() {
    let (nginx, module) = (
        "/usr/sbin/nginx",
        "/usr/lib/nginx/modules/ngx_rtmp_module.so",
    );
    if !std::path::Path::new(nginx).is_file() || !std::path::Path::new(module).is_file() {
        common::skip_or_fail(
            "pull from the C module",
            "Debian's nginx with libnginx-mod-rtmp is not installed",
        );
        return;
    }
    let launch = Launch {
        workers: 1,
        http_reuseport: false,
        nginx: nginx.into(),
        module: module.into(),
    };
    let origin = launch.start(&common::live_rtmp_block("", ""), "");
    let edge = Server::start(&edge_block(origin.rtmp_port, ""), "");
    let mut checks = Checks::new();
    let mut ff = publish(&origin.rtmp_url("live/cam"), 10);
    thread::sleep(Duration::from_millis(1500));
    let decoded = play_decode(&edge.rtmp_url("edge/cam"), 4);
    checks.check(decoded.ok && decoded.decoded_seconds >= 3.5, || {
        format!("ffmpeg on the edge, pulling from the C module: {decoded:#?}")
    });
    let _ = ff.wait_timeout(Duration::from_secs(15));
    edge.finish();
    checks.finish(origin);
}

#[test]
fn a_static_pull_runs_once_per_server_without_players_and_after_a_reload() {
    let origin = origin();
    let block = format!(
        "rtmp {{\n server {{\n listen 127.0.0.1:{{RTMP_PORT}} reuseport;\n \
         application edge {{ live on; pull rtmp://127.0.0.1:{}/live/cam name=tv static; }}\n }}\n}}\n",
        origin.rtmp_port
    );
    let mut edge = Launch::workers(2).start(&block, "");
    let mut checks = Checks::new();
    let mut ff = publish(&origin.rtmp_url("live/cam"), 40);
    // Nobody plays on the edge, yet exactly one connection pulls (ffmpeg is the other).
    let one = wait_until(Duration::from_secs(5), || {
        common::connections_to(origin.rtmp_port) == 2
    });
    thread::sleep(Duration::from_millis(1500));
    let n = common::connections_to(origin.rtmp_port);
    checks.check(one && n == 2, || {
        format!("{} static pulls", n.saturating_sub(1))
    });
    let decoded = play_decode(&edge.rtmp_url("edge/tv"), 3);
    checks.check(decoded.ok && decoded.decoded_seconds >= 2.5, || {
        format!("ffmpeg on the edge: {decoded:#?}")
    });
    // It stays without players, and a reload hands it to one new worker.
    edge.reload();
    thread::sleep(Duration::from_secs(4));
    let n = common::connections_to(origin.rtmp_port);
    checks.check(n == 2, || {
        format!("{} static pulls after a reload", n.saturating_sub(1))
    });
    let decoded = play_decode(&edge.rtmp_url("edge/tv"), 3);
    checks.check(decoded.ok && decoded.decoded_seconds >= 2.5, || {
        format!("ffmpeg on the edge after the reload: {decoded:#?}")
    });
    ff.kill();
    common::workers::finish_checked(edge);
    checks.finish(origin);
}

/// `on_play` and `on_publish` answered `302 Location: rtmp://...` (by nginx itself, as a
/// backend): the play is pulled from there, the publish pushed there; with
/// `notify_relay_redirect on` the local stream is named by the URL's MD5.
#[test]
fn rtmp_redirects_of_on_play_and_on_publish_pull_and_push() {
    let origin = origin();
    let o = origin.rtmp_port;
    let block = "rtmp {\n server {\n listen 127.0.0.1:{RTMP_PORT};\n \
         application edge { live on; on_play http://127.0.0.1:{HTTP_PORT}/to-origin; }\n \
         application hashed { live on; notify_relay_redirect on; \
         on_play http://127.0.0.1:{HTTP_PORT}/to-origin; }\n \
         application ingest { live on; on_publish http://127.0.0.1:{HTTP_PORT}/push-to-origin; }\n \
         }\n}\n";
    let http = format!(
        "        location /to-origin {{ return 302 rtmp://127.0.0.1:{o}/live/cam; }}\n\
         \x20       location /push-to-origin {{ return 302 rtmp://127.0.0.1:{o}/live/pushed; }}"
    );
    let edge = Server::start(block, &http);
    let mut checks = Checks::new();
    let mut ff = publish(&origin.rtmp_url("live/cam"), 12);
    thread::sleep(Duration::from_millis(1500));
    for app in ["edge", "hashed"] {
        let decoded = play_decode(&edge.rtmp_url(&format!("{app}/anything")), 3);
        checks.check(decoded.ok && decoded.decoded_seconds >= 2.5, || {
            format!("ffmpeg on {app}/anything, redirected to the origin: {decoded:#?}")
        });
    }
    let url = format!("rtmp://127.0.0.1:{o}/live/cam");
    let md5 = Command::new("sh")
        .arg("-c")
        .arg(format!("printf %s '{url}' | md5sum | cut -c1-32"))
        .output()
        .unwrap();
    let md5 = String::from_utf8_lossy(&md5.stdout).trim().to_string();
    let log = edge.error_log();
    checks.check(
        log.contains("relay: pull of \"edge/anything\" from rtmp://"),
        || format!("no pull for edge/anything:\n{log}"),
    );
    checks.check(
        log.contains(&format!("relay: pull of \"hashed/{md5}\"")),
        || format!("no pull named by the MD5 {md5}:\n{log}"),
    );
    // A publish redirected by on_publish is pushed to the origin.
    let mut pub2 = publish(&edge.rtmp_url("ingest/local"), 8);
    thread::sleep(Duration::from_millis(2000));
    let decoded = play_decode(&origin.rtmp_url("live/pushed"), 3);
    checks.check(decoded.ok && decoded.decoded_seconds >= 2.5, || {
        format!("the redirected publish on the origin: {decoded:#?}")
    });
    let _ = pub2.wait_timeout(Duration::from_secs(15));
    let _ = ff.wait_timeout(Duration::from_secs(15));
    edge.finish();
    checks.finish(origin);
}

#[test]
fn with_session_relay_the_pull_ends_with_the_player_that_started_it() {
    let origin = origin();
    let edge = Server::start(&edge_block(origin.rtmp_port, "session_relay on;"), "");
    let mut checks = Checks::new();
    let mut ff = publish(&origin.rtmp_url("live/cam"), 12);
    thread::sleep(Duration::from_millis(1500));
    let mut first = RtmpClient::connect(&edge.rtmp_addr(), "edge").expect("connect");
    let _ = first.play("cam");
    let (got, _) = first.read_media_for(Duration::from_secs(1));
    let mut second = RtmpClient::connect(&edge.rtmp_addr(), "edge").expect("connect");
    let _ = second.play("cam");
    checks.check(got.video > 0, || format!("first player: {got:?}"));
    drop(first);
    let ended = edge.wait_for_log(
        0,
        "stops: its player left (session_relay)",
        Duration::from_secs(5),
    );
    checks.check(ended, || {
        format!("the pull outlived its player:\n{}", edge.error_log())
    });
    drop(second);
    let _ = ff.wait_timeout(Duration::from_secs(15));
    edge.finish();
    checks.finish(origin);
}
