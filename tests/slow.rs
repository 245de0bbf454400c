//! A player that stops reading must not hold back the others, and is disconnected after
//! `timeout` (here 5 s) instead of buffering without bound.

mod common;

use std::thread;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn slow_player_is_disconnected_while_a_normal_player_keeps_decoding() {
    let server = Server::start(&live_rtmp_block("timeout 5s;", ""), "");
    let url = server.rtmp_url("live/slow");
    // 16 Mbit/s (filler included): the kernel's socket buffers (up to 4 MB) fill in seconds.
    let mut publisher = common::ffmpeg::publish_cbr(&url, 35, "16M");
    thread::sleep(Duration::from_millis(800));

    // Small receive buffer: the server's send path backs up within a second or two.
    let mut slow = RtmpClient::connect_with(&server.rtmp_addr(), "live", Some(4096))
        .expect("slow player connects");
    let codes = slow.play("slow").expect("slow player plays");
    assert!(
        codes.iter().any(|c| c == "NetStream.Play.Start"),
        "play codes {codes:?}"
    );
    // From here on the slow player reads nothing.
    let stalled_at = Instant::now();

    let normal = play_decode(&url, 10);
    normal.assert_decoded(9.0, "normal player next to a stalled one");
    assert!(
        normal.frames as f64 >= 0.9 * 25.0 * normal.decoded_seconds,
        "the normal player lost frames: {normal:#?}"
    );
    assert!(
        normal.wall <= Duration::from_secs(10 + 6),
        "the normal player stalled (took {:?} for 10 s of media): {normal:#?}",
        normal.wall
    );

    // Resume reading: whatever is still buffered drains, then the connection must be closed.
    let stalled_for = stalled_at.elapsed();
    let drained = slow.drain_until_closed(Duration::from_secs(10));
    match drained {
        Ok((t, bytes)) => println!(
            "slow player: stalled {:.1} s; closed by the server ({} bytes drained in {:.2} s)",
            stalled_for.as_secs_f64(),
            bytes,
            t.as_secs_f64()
        ),
        Err(e) => panic!(
            "the slow player was still connected {:.1} s after it stopped reading \
             (timeout 5s): {e:?}",
            stalled_for.as_secs_f64() + 10.0
        ),
    }
    assert!(
        publisher.is_running(),
        "publisher failed: {}",
        publisher.stderr()
    );
    drop(slow);
    drop(publisher);
    server.finish();
}
