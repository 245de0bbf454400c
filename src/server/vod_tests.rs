//! VOD players in memory: a real FLV file on disk (files are read at once here, as without
//! a thread pool), played by an `rml_rtmp` client through the whole worker.

use super::*;
use crate::record::flv::{file_header, tag_header, tag_trailer, TAG_AUDIO, TAG_VIDEO};

/// `seconds` of 25 fps video with a keyframe each second and audio every 40 ms.
fn write_clip(dir: &std::path::Path, name: &str, seconds: u32) {
    let mut f = file_header(true, true).to_vec();
    let mut tag = |kind: u8, ts: u32, body: &[u8]| {
        f.extend_from_slice(&tag_header(kind, body.len(), ts));
        f.extend_from_slice(body);
        f.extend_from_slice(&tag_trailer(body.len()));
    };
    tag(TAG_VIDEO, 0, AVC_HEADER);
    tag(TAG_AUDIO, 0, AAC_HEADER);
    for i in 0..seconds * 25 {
        tag(TAG_VIDEO, i * 40, &video_frame(i % 25 == 0, i, 300));
        tag(TAG_AUDIO, i * 40, &audio_frame(i));
    }
    std::fs::write(dir.join(name), f).unwrap();
}

fn vod_harness(test: &str, live: &str) -> (Harness, std::path::PathBuf) {
    let dir = crate::testutil::artifact_dir(&format!("vod-{test}"));
    write_clip(&dir, "clip.flv", 10);
    let d = dir.to_str().unwrap();
    let server = server_with(&[], &[("play", &[d]), ("live", &[live])]);
    (Harness::new(server), dir)
}

fn command(name: &str, args: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut p = Vec::new();
    amf0::write_string(&mut p, name);
    amf0::write_number(&mut p, 0.0);
    amf0::write_null(&mut p);
    args(&mut p);
    let mut m = BytesMut::new();
    chunk::encode_message(4096, 8, 0, chunk::MSG_COMMAND_AMF0, 1, &p, &mut m);
    m.to_vec()
}

fn last_video_ts(h: &Harness, id: ClientId) -> u32 {
    h.c(id).video().last().map_or(0, |(ts, _)| *ts)
}

/// Lets `ms` pass in steps, ticking the player as its timer would.
fn play_for(h: &mut Harness, id: ClientId, ms: u64) {
    for _ in 0..ms / 50 {
        h.now += 50;
        h.tick(id);
        h.pump();
    }
}

#[test]
fn a_file_is_sent_at_its_own_pace_and_ends_with_complete_and_stop() {
    let (mut h, _) = vod_harness("pace", "off");
    h.player(1, "clip");
    assert!(h.c(1).has_code("NetStream.Play.Start"));
    let kinds = h.c(1).media_kinds();
    assert_eq!(kinds[..4], ["meta", "vh", "ah", "v"], "{kinds:?}");
    // At first: the player's buffer plus one second, not the whole file.
    let first = last_video_ts(&h, 1);
    assert!((1000..=4000).contains(&first), "{first}");
    play_for(&mut h, 1, 3000);
    let later = last_video_ts(&h, 1);
    assert!(
        later >= first + 2500 && later <= first + 3500,
        "{first} then {later}"
    );
    assert!(!h.c(1).has_code("NetStream.Play.Stop"));
    play_for(&mut h, 1, 8000);
    let video = h.c(1).video();
    assert_eq!(video.len(), 1 + 250, "header and every frame once");
    assert!(video.windows(2).all(|w| w[0].0 <= w[1].0));
    assert!(h.c(1).has_code("NetStream.Play.Stop"));
    assert!(h
        .c(1)
        .user_controls()
        .contains(&UserControlEventType::StreamEof));
    assert!(
        h.is_open(1),
        "the connection stays for another play or seek"
    );
    h.assert_no_client_errors();
}

#[test]
fn seek_restarts_at_the_keyframe_before_with_seek_notify() {
    let (mut h, _) = vod_harness("seek", "off");
    h.player(1, "clip");
    let before = h.c(1).video().len();
    h.input(1, &command("seek", |p| amf0::write_number(p, 6500.0)));
    h.pump();
    assert!(h.c(1).has_code("NetStream.Seek.Notify"));
    let video = h.c(1).video();
    let after: Vec<_> = video[before..].iter().filter(|(_, d)| d[1] == 1).collect();
    assert_eq!(after[0].0, 6000, "first frame after the seek");
    assert_eq!(after[0].1[0], 0x17, "a keyframe");
    // The codec header comes again before it.
    assert!(video[before..].iter().any(|(_, d)| d[1] == 0));
    assert!(h
        .logs
        .iter()
        .any(|l| l.text.contains("seek \"live/clip\" to 6500 ms")));
    h.assert_no_client_errors();
}

#[test]
fn pause_stops_reading_and_resume_continues_where_it_was() {
    let (mut h, _) = vod_harness("pause", "off");
    h.player(1, "clip");
    play_for(&mut h, 1, 1000);
    h.input(
        1,
        &command("pause", |p| {
            amf0::write_bool(p, true);
            amf0::write_number(p, 0.0);
        }),
    );
    h.pump();
    assert!(h.c(1).has_code("NetStream.Pause.Notify"));
    let paused_at = h.c(1).video().len();
    play_for(&mut h, 1, 5000);
    assert_eq!(h.c(1).video().len(), paused_at, "media while paused");
    h.input(
        1,
        &command("pause", |p| {
            amf0::write_bool(p, false);
            amf0::write_number(p, 0.0);
        }),
    );
    h.pump();
    play_for(&mut h, 1, 500);
    let video = h.c(1).video();
    assert!(video.len() > paused_at, "nothing after resuming");
    // The next frame is the one after the last before the pause.
    assert_eq!(video[paused_at].0, video[paused_at - 1].0 + 40);
    h.assert_no_client_errors();
}

#[test]
fn a_name_with_no_file_plays_live_or_is_not_found() {
    let (mut h, _) = vod_harness("fallback", "on");
    h.publisher(1, "cam");
    h.player(2, "cam");
    assert!(h.c(2).has_code("NetStream.Play.Start"), "live fallback");
    h.start_stream(1, 2);
    assert!(!h.c(2).video().is_empty());

    let (mut h, _) = vod_harness("notfound", "off");
    assert!(h.connect(1, "127.0.0.1", "live"));
    assert!(!h.play(1, "nothere"));
    assert!(h.c(1).has_code("NetStream.Play.StreamNotFound"));
    assert!(h.close_of(1).is_some());
}

#[test]
fn stopping_mid_message_keeps_the_chunk_stream_whole() {
    let (mut h, _) = vod_harness("stop", "off");
    h.player(1, "clip");
    // Media waits for a player that does not read; a few bytes of one message go out.
    h.client(1).drain = false;
    play_for(&mut h, 1, 1000);
    let some = h.collect(1, 50);
    h.client(1).receive(&some);
    let vod = h.worker.clients.get(&1).and_then(|c| c.vod.as_ref());
    let rest = vod
        .and_then(|v| v.queue.partial_head_len())
        .expect("a message cut short");
    let media = |h: &Harness| h.c(1).video().len() + h.c(1).audio().len();
    let before = media(&h);
    // The client stops: the rest of that message still comes first, then the replies.
    h.input(1, &command("closeStream", |_| {}));
    let next = h.collect(1, rest);
    h.client(1).receive(&next);
    assert_eq!(
        media(&h),
        before + 1,
        "the message cut short is finished first"
    );
    h.client(1).drain = true;
    h.pump();
    h.assert_no_client_errors();
    let received = h.c(1).video().len();
    play_for(&mut h, 1, 2000);
    assert_eq!(h.c(1).video().len(), received, "media after closeStream");
}
