//! `nginx -s reload` (SIGHUP) with live streams: nothing crashes, running players keep
//! playing, and players that arrive after the reload still find the stream.
//!
//! With the C module the last check fails: after a reload, new connections go to the new
//! worker, which does not know the streams still held by the old one.

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
fn new_player_after_reload_can_play() {
    let mut server = Server::start_live("");
    let url = server.rtmp_url("live/reload");
    let mut publisher = publish(&url, 20);
    thread::sleep(Duration::from_millis(1500));

    server.reload();
    thread::sleep(Duration::from_millis(500));
    let played = play_decode(&url, 4);
    played.assert_decoded(3.5, "player that connected after the reload");
    assert!(
        publisher.is_running(),
        "publisher dropped by the reload: {}",
        publisher.stderr()
    );
    drop(publisher);
    server.finish();
}
