//! `nginx -s reload` (SIGHUP) with live streams: nothing crashes, running publishers and
//! players keep going in the old worker, and the new worker serves new streams. A player
//! arriving after the reload watching a stream still published to the old worker is tested
//! with the other cross-worker cases in `multiworker.rs`.

mod common;

use std::thread;
use std::time::Duration;

use common::*;

#[test]
fn player_keeps_decoding_across_reload() {
    let mut server = Server::start_live("");
    let url = server.rtmp_url("live/reload");
    let mut publisher = publish(&url, 20);
    thread::sleep(Duration::from_millis(800));

    let player = spawn_play_decode(&url, 10);
    thread::sleep(Duration::from_secs(4));
    server.reload();
    let played = player.join().expect("player thread");
    played.assert_decoded(9.5, "player running across the reload");
    assert!(
        publisher.is_running(),
        "publisher dropped by the reload: {}",
        publisher.stderr()
    );
    drop(publisher);
    server.finish();
}

#[test]
fn streams_published_after_reload_play_on_the_new_worker() {
    let mut server = Server::start_live("");
    let old_url = server.rtmp_url("live/before");
    let mut old_publisher = publish(&old_url, 20);
    thread::sleep(Duration::from_millis(1500));

    server.reload();
    thread::sleep(Duration::from_millis(500));
    let new_url = server.rtmp_url("live/after");
    let mut new_publisher = publish(&new_url, 12);
    thread::sleep(Duration::from_millis(1500));
    let played = play_decode(&new_url, 4);
    played.assert_decoded(3.5, "stream published after the reload");
    assert!(
        old_publisher.is_running(),
        "publisher dropped by the reload: {}",
        old_publisher.stderr()
    );
    assert!(
        new_publisher.is_running(),
        "publisher after the reload failed: {}",
        new_publisher.stderr()
    );
    drop(new_publisher);
    drop(old_publisher);
    server.finish();
}

/// The master outlives its workers: after a reload (old workers exit) and after a worker is
/// killed (it is respawned), nginx is still running and serving.
#[test]
fn master_survives_reload_and_a_killed_worker() {
    let mut server = Server::start_live("");
    let url = server.rtmp_url("live/m");
    let mut publisher = publish(&url, 12);
    thread::sleep(Duration::from_millis(1000));
    server.reload();
    thread::sleep(Duration::from_millis(1500));
    assert!(server.is_running(), "nginx exited after the reload");
    drop(publisher);
    thread::sleep(Duration::from_millis(1500));
    let workers = child_pids(server.pid());
    assert!(!workers.is_empty(), "no worker process");
    // SAFETY: kill() on a worker of the nginx this test started.
    unsafe { libc::kill(workers[0], libc::SIGKILL) };
    thread::sleep(Duration::from_millis(1500));
    assert!(
        server.is_running(),
        "nginx's master died when a worker was killed"
    );
    publisher = publish(&url, 6);
    thread::sleep(Duration::from_millis(1500));
    play_decode(&url, 2).assert_decoded(1.5, "stream after a worker was killed");
    drop(publisher);
    // The killed worker's crash is expected here; nothing else may be in the log.
    server.stop();
}

/// Child processes of `pid` (from /proc).
fn child_pids(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(p) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|v| v.parse::<i32>().ok());
        if ppid == Some(pid) {
            out.push(p);
        }
    }
    out
}
