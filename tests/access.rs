//! `allow` / `deny` for publish and play, evaluated in order like nginx's access module.

mod common;

use std::time::Duration;

use common::*;

fn try_publish(server: &Server, name: &str) -> (Result<String, ClientError>, Option<RtmpClient>) {
    match RtmpClient::connect(&server.rtmp_addr(), "live") {
        Ok(mut c) => {
            let r = c.publish(name);
            if matches!(&r, Ok(code) if code == "NetStream.Publish.Start") {
                // Give players something to receive (a refused publisher may already be gone).
                let _ = c.send_test_frames(5);
            }
            (r, Some(c))
        }
        Err(e) => (Err(e), None),
    }
}

fn try_play(server: &Server, name: &str) -> (Result<Vec<String>, ClientError>, Option<RtmpClient>) {
    match RtmpClient::connect(&server.rtmp_addr(), "live") {
        Ok(mut c) => {
            let r = c.play(name);
            (r, Some(c))
        }
        Err(e) => (Err(e), None),
    }
}

#[test]
fn deny_publish_refuses_publishers_but_allows_players() {
    let server = Server::start_live("deny publish 127.0.0.1;\n allow play all;");
    let (outcome, mut c) = try_publish(&server, "stream");
    assert!(
        is_refused(&outcome, c.as_mut(), "NetStream.Publish.Start"),
        "publish should be refused: {outcome:?}"
    );
    let (play, mut p) = try_play(&server, "stream");
    assert!(
        matches!(&play, Ok(codes) if codes.iter().any(|c| c == "NetStream.Play.Start")),
        "play should be allowed: {play:?}"
    );
    let player = p.as_mut().expect("player");
    player
        .idle(Duration::from_millis(500))
        .expect("an allowed player stays connected");
    drop(p);
    drop(c);
    server.finish();
}

#[test]
fn allow_publish_before_deny_all_lets_the_allowed_address_publish() {
    let server = Server::start_live("allow publish 127.0.0.1;\n deny publish all;");
    let (outcome, c) = try_publish(&server, "stream");
    assert!(
        matches!(&outcome, Ok(code) if code == "NetStream.Publish.Start"),
        "publish from 127.0.0.1 should be allowed: {outcome:?}"
    );
    let mut c = c.expect("publisher");
    c.idle(Duration::from_millis(300))
        .expect("publisher stays connected");
    drop(c);
    server.finish();
}

#[test]
fn deny_play_refuses_players_but_allows_publishers() {
    let server = Server::start_live("allow publish all;\n deny play 127.0.0.1;");
    let (outcome, publisher) = try_publish(&server, "stream");
    assert!(
        matches!(&outcome, Ok(code) if code == "NetStream.Publish.Start"),
        "publish should be allowed: {outcome:?}"
    );
    let (play, mut p) = try_play(&server, "stream");
    assert!(
        is_refused(&play, p.as_mut(), "NetStream.Play.Start"),
        "play should be refused: {play:?}"
    );
    drop(p);
    drop(publisher);
    server.finish();
}

#[test]
fn allow_play_before_deny_all_lets_the_allowed_address_play_media() {
    let server = Server::start_live("allow play 127.0.0.1;\n deny play all;");
    let (outcome, publisher) = try_publish(&server, "stream");
    assert!(
        matches!(&outcome, Ok(code) if code == "NetStream.Publish.Start"),
        "publish should be allowed: {outcome:?}"
    );
    let mut publisher = publisher.expect("publisher");
    let mut player = RtmpClient::connect(&server.rtmp_addr(), "live").expect("connect");
    let codes = player.play("stream").expect("play");
    assert!(
        codes.iter().any(|c| c == "NetStream.Play.Start"),
        "play from 127.0.0.1 should be allowed: {codes:?}"
    );
    // New keyframes after the player joined must reach it.
    publisher.send_test_frames(10).expect("send frames");
    let (count, err) = player.read_media_for(Duration::from_millis(1500));
    assert!(
        count.video >= 5,
        "the allowed player should receive video: {count:?} {err:?}"
    );
    drop(player);
    drop(publisher);
    server.finish();
}

#[test]
fn deny_rules_in_server_context_apply_to_its_applications() {
    let block = live_rtmp_block("deny publish all;", "");
    let server = Server::start(&block, "");
    let (outcome, mut c) = try_publish(&server, "stream");
    assert!(
        is_refused(&outcome, c.as_mut(), "NetStream.Publish.Start"),
        "server-level deny should refuse publish: {outcome:?}"
    );
    drop(c);
    server.finish();
}
