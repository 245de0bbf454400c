//! Live RTMP: ffmpeg publishes, players (ffmpeg and the test client) play it back.

mod common;

use std::thread;
use std::time::Duration;

use common::*;

#[test]
fn published_stream_plays_back_and_decodes_without_errors() {
    let server = Server::start_live("");
    let url = server.rtmp_url("live/mykey");
    let mut publisher = publish(&url, 16);
    thread::sleep(Duration::from_millis(800));

    let probe = {
        let url = url.clone();
        thread::spawn(move || probe_streams(&url))
    };
    let played = play_decode(&url, 6);
    let probe = probe.join().expect("probe thread");

    assert!(
        publisher.is_running(),
        "publisher stopped early: {:?} {}",
        publisher.status(),
        publisher.stderr()
    );
    played.assert_decoded(5.0, "player");
    assert!(
        played.frames as f64 >= 0.9 * 25.0 * 5.0,
        "too few frames for 5 s at 25 fps: {played:#?}"
    );
    let streams = probe.expect("ffprobe of the live stream").join("\n");
    assert!(
        streams.contains("codec_name=h264") && streams.contains("width=320"),
        "expected H.264 320x240 video, ffprobe says:\n{streams}"
    );
    assert!(
        streams.contains("codec_name=aac"),
        "expected AAC audio, ffprobe says:\n{streams}"
    );
    drop(publisher);
    server.finish();
}

#[test]
fn one_publisher_four_players_all_decode() {
    let server = Server::start_live("");
    let url = server.rtmp_url("live/fanout");
    let mut publisher = publish(&url, 18);
    thread::sleep(Duration::from_millis(800));

    let players: Vec<_> = (0..4).map(|_| spawn_play_decode(&url, 6)).collect();
    for (i, p) in players.into_iter().enumerate() {
        let r = p.join().expect("player thread");
        r.assert_decoded(5.0, &format!("player {i}"));
    }
    assert!(
        publisher.is_running(),
        "publisher stopped early: {}",
        publisher.stderr()
    );
    drop(publisher);
    server.finish();
}

/// `gop_cache off` (nginx-http-flv-module's directive; on by default here): no frames are
/// kept for joining players, which then get the codec headers at once and wait for the next
/// keyframe, as with the C module, in exchange for the memory of one GOP per stream.
#[test]
fn with_gop_cache_off_a_joining_player_waits_for_the_next_keyframe() {
    let server = Server::start_live("gop_cache off; wait_key on;");
    let url = server.rtmp_url("live/nocache");
    let mut publisher = publish(&url, 12);
    thread::sleep(Duration::from_millis(2300));
    let mut delays = Vec::new();
    // Four joins 370 ms apart land at four points of the 1 s GOP: at most one of them can
    // be within 200 ms of the next keyframe.
    for _ in 0..4 {
        let mut player = RtmpClient::connect(&server.rtmp_addr(), "live").expect("connect");
        player.play("nocache").expect("play");
        let info = player
            .wait_keyframe(Duration::from_secs(5))
            .expect("a keyframe within 5 s");
        assert!(info.seq_header_first, "headers first: {info:?}");
        assert_eq!(info.non_key_video_before, 0, "{info:?}");
        delays.push(info.keyframe_after.expect("keyframe time"));
        drop(player);
        thread::sleep(Duration::from_millis(370));
    }
    println!("first keyframe after play, gop_cache off: {delays:?}");
    let waited = delays
        .iter()
        .filter(|d| **d >= Duration::from_millis(200))
        .count();
    assert!(
        waited >= 3,
        "without a start cache most joins wait for the next keyframe: {delays:?}"
    );
    assert!(
        publisher.is_running(),
        "publisher stopped early: {}",
        publisher.stderr()
    );
    drop(publisher);
    server.finish();
}

#[test]
fn player_joining_mid_stream_gets_a_keyframe_quickly() {
    let server = Server::start_live("");
    let url = server.rtmp_url("live/join");
    let mut publisher = publish(&url, 16);
    thread::sleep(Duration::from_millis(2300));

    let mut joins = Vec::new();
    for i in 0..3 {
        let mut player = RtmpClient::connect(&server.rtmp_addr(), "live").expect("connect");
        let codes = player.play("join").expect("play");
        assert!(
            codes.iter().any(|c| c == "NetStream.Play.Start"),
            "play codes {codes:?}"
        );
        let info = player
            .wait_keyframe(Duration::from_secs(5))
            .expect("a keyframe within 5 s");
        let after = info.keyframe_after.expect("keyframe time");
        println!(
            "join {i}: first keyframe {} ms after play (1 s GOP); sequence header first: {}; \
             audio before it: {}",
            after.as_millis(),
            info.seq_header_first,
            info.audio_before
        );
        assert!(
            info.seq_header_first,
            "the AVC sequence header must come before the first keyframe: {info:?}"
        );
        assert_eq!(
            info.non_key_video_before, 0,
            "inter frames before the first keyframe cannot be decoded: {info:?}"
        );
        joins.push(after);
        drop(player);
        // Land on a different point of the GOP next time.
        thread::sleep(Duration::from_millis(370));
    }
    let worst = joins.iter().max().copied().unwrap_or_default();
    assert!(
        worst < Duration::from_millis(1500),
        "join took {worst:?} (limit 1.5 s): {joins:?}"
    );

    // The user-visible figure, ffmpeg's own probing included (informational).
    let r = common::ffmpeg::play_decode_with(&url, 2, &["-analyzeduration", "1000000"]);
    println!(
        "ffmpeg (-analyzeduration 1s): first decoded frame after {:?}",
        r.first_frame_after
    );
    r.assert_decoded(1.5, "ffmpeg player");

    assert!(
        publisher.is_running(),
        "publisher stopped early: {}",
        publisher.stderr()
    );
    drop(publisher);
    server.finish();
}

#[test]
fn duplicate_publish_is_refused_while_the_first_continues() {
    let server = Server::start_live("");
    let url = server.rtmp_url("live/dup");
    let mut publisher = publish(&url, 16);
    thread::sleep(Duration::from_millis(1500));

    let mut second = RtmpClient::connect(&server.rtmp_addr(), "live").expect("connect");
    let code = second.publish("dup");
    assert!(
        matches!(&code, Ok(c) if c == "NetStream.Publish.BadName"),
        "second publisher on the same name: expected NetStream.Publish.BadName, got {code:?}"
    );
    // The refused client may be disconnected; either way the first publisher goes on.
    let _ = second.idle(Duration::from_millis(300));
    drop(second);

    let played = play_decode(&url, 4);
    played.assert_decoded(3.5, "player of the first publisher");
    assert!(
        publisher.is_running(),
        "first publisher was dropped: {}",
        publisher.stderr()
    );
    drop(publisher);
    server.finish();
}

#[test]
fn play_of_missing_stream_with_idle_streams_off_gets_stream_not_found() {
    let server = Server::start_live("idle_streams off;");
    let mut player = RtmpClient::connect(&server.rtmp_addr(), "live").expect("connect");
    let codes = player.play("nobody-publishes-this");
    assert!(
        matches!(&codes, Ok(c) if c.iter().any(|c| c == "NetStream.Play.StreamNotFound")),
        "expected NetStream.Play.StreamNotFound, got {codes:?}"
    );
    drop(player);
    server.finish();
}

/// librtmp (rtmpdump) is the RTMP stack OBS and many hardware encoders descend from: its
/// digest handshake, connect and play must work against us as they do against the C module.
#[test]
fn librtmp_player_receives_the_stream() {
    let server = Server::start_live("");
    let url = server.rtmp_url("live/librtmp");
    let mut publisher = publish(&url, 16);
    thread::sleep(Duration::from_millis(1500));

    let out = server.prefix.join("librtmp.flv");
    // rtmpdump's --stop counts stream time, which for a live stream starts at the publisher's
    // clock: record for 5 s of wall time instead (SIGTERM makes it close the file cleanly).
    let mut dump = std::process::Command::new("timeout")
        .args([
            "-s", "TERM", "5", "rtmpdump", "-q", "--live", "-r", &url, "-o",
        ])
        .arg(&out)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("rtmpdump is installed (scripts/test.sh installs it)");
    if wait_timeout(&mut dump, Duration::from_secs(15)).is_none() {
        let _ = dump.kill();
        let _ = dump.wait();
    }
    let probe = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-show_entries",
            "stream=codec_name,nb_read_frames",
            "-of",
            "compact",
        ])
        .arg(&out)
        .output()
        .expect("ffprobe runs");
    let text = String::from_utf8_lossy(&probe.stdout).to_string();
    let video_frames: u64 = text
        .lines()
        .filter(|l| l.contains("codec_name=h264"))
        .filter_map(|l| {
            l.rsplit("nb_read_frames=")
                .next()?
                .trim()
                .parse::<u64>()
                .ok()
        })
        .sum();
    assert!(
        text.contains("codec_name=aac") && video_frames >= 50,
        "librtmp recorded too little (want >= 50 H.264 frames and AAC), ffprobe says:\n{text}"
    );
    assert!(publisher.is_running(), "publisher: {}", publisher.stderr());
    drop(publisher);
    server.finish();
}

/// Splits arrival times into write groups (messages less than 10 ms apart) and returns the
/// median group size and the longest gap between groups, skipping the first `skip` (the
/// cached start, which comes in one burst).
fn write_groups(arrivals: &[std::time::Instant], skip: Duration) -> (usize, Duration) {
    let Some(&first) = arrivals.first() else {
        return (0, Duration::ZERO);
    };
    let steady: Vec<_> = arrivals
        .iter()
        .copied()
        .filter(|t| t.duration_since(first) >= skip)
        .collect();
    let mut sizes = Vec::new();
    let mut longest_gap = Duration::ZERO;
    let mut size = 0;
    for pair in steady.windows(2) {
        size += 1;
        let gap = pair[1].duration_since(pair[0]);
        if gap >= Duration::from_millis(10) {
            sizes.push(size);
            size = 0;
            longest_gap = longest_gap.max(gap);
        }
    }
    sizes.sort_unstable();
    (
        sizes.get(sizes.len() / 2).copied().unwrap_or(0),
        longest_gap,
    )
}

#[test]
fn play_flush_interval_gathers_live_media_into_fewer_writes_with_bounded_delay() {
    // The publisher sends a video and an audio message every 40 ms in real time.
    for (setting, interval_ms) in [
        ("play_flush_interval 200ms;", 200),
        ("play_flush_interval off;", 0),
    ] {
        let server = Server::start_live(setting);
        let mut publisher = RtmpClient::connect(&server.rtmp_addr(), "live").expect("connect");
        assert_eq!(
            publisher.publish("gather").expect("publish"),
            "NetStream.Publish.Start"
        );
        let mut player = RtmpClient::connect(&server.rtmp_addr(), "live").expect("connect");
        player.play("gather").expect("play");
        let sender = thread::spawn(move || {
            publisher
                .send_test_frames_paced(75, Duration::from_millis(40))
                .expect("publish frames");
            publisher
        });
        let arrivals = player.media_arrivals_for(Duration::from_millis(2800));
        let publisher = sender.join().expect("publisher thread");
        let (median, longest_gap) = write_groups(&arrivals, Duration::from_millis(500));
        println!(
            "{setting} {} messages; median messages per write group {median}, longest gap {:?}",
            arrivals.len(),
            longest_gap
        );
        assert!(
            arrivals.len() >= 120,
            "only {} messages arrived",
            arrivals.len()
        );
        if interval_ms > 0 {
            // ~10 messages arrive per 200 ms: they must come together, never much later.
            assert!(median >= 6, "media was not gathered: median group {median}");
            assert!(
                longest_gap <= Duration::from_millis(interval_ms + 120),
                "media waited {longest_gap:?} with a {interval_ms} ms interval"
            );
        } else {
            // The publisher's input is read every 50 ms: one or two of its pairs per read.
            assert!(
                median <= 4,
                "off must write as media comes: median group {median}"
            );
        }
        drop((player, publisher));
        server.finish();
    }
}

/// Context switches of `pid` it asked for (each a sleep in epoll_wait that something ended).
fn voluntary_switches(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("voluntary_ctxt_switches in /proc/PID/status")
}

#[test]
fn a_publisher_sending_many_small_segments_does_not_wake_the_worker_for_each() {
    let server = Server::start_live("");
    let worker = *common::raw::worker_pids(server.pid())
        .first()
        .expect("a worker process");
    let mut publisher = RtmpClient::connect(&server.rtmp_addr(), "live").expect("connect");
    publisher.set_nodelay().expect("TCP_NODELAY");
    assert_eq!(
        publisher.publish("segments").expect("publish"),
        "NetStream.Publish.Start"
    );
    let mut player = RtmpClient::connect(&server.rtmp_addr(), "live").expect("connect");
    player.play("segments").expect("play");

    // 1500 video + audio pairs, one every ~1 ms: about 3000 small TCP segments in ~2 s.
    let before = voluntary_switches(worker);
    let started = std::time::Instant::now();
    let sender = thread::spawn(move || {
        publisher
            .send_test_frames_paced(1500, Duration::from_millis(1))
            .expect("publish frames");
        publisher
    });
    let (count, err) = player.read_media_for(Duration::from_millis(3500));
    let publisher = sender.join().expect("publisher thread");
    let elapsed = started.elapsed();
    let wakeups = voluntary_switches(worker) - before;
    println!(
        "{} video + {} audio messages played; worker woke {wakeups} times in {elapsed:?}",
        count.video, count.audio
    );
    assert!(err.is_none(), "player: {err:?}");
    assert!(
        count.video >= 1400,
        "only {} video messages arrived",
        count.video
    );
    // Without batching, each segment wakes the worker (~3000 here); with it, a read every
    // 50 ms plus one per 16 KB (~70 ticks + ~45 in 3.5 s) and the player's writes.
    assert!(
        wakeups < 1000,
        "the worker woke {wakeups} times for ~3000 segments"
    );
    drop((player, publisher));
    server.finish();
}
