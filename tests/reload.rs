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
