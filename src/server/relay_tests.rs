//! A whole push, in memory: a publisher (our own push client) publishes to worker A, whose
//! `push` line makes it relay to worker B (our server as the target).

use std::io::IoSlice;
use std::rc::Rc;

use bytes::BytesMut;

use super::*;
use crate::conf::{parse_rtmp_url, RelayTarget, RtmpConf};
use crate::rtmp::chunk;
use crate::server::{AppConfig, ServerConfig};

const PUBLISHER: ClientId = 1;
const TARGET_CONN: ClientId = 2;

fn server(app: &str, directives: &[(&str, &[&str])]) -> Rc<ServerConfig> {
    let server = RtmpConf::default();
    let mut conf = RtmpConf::default();
    conf.apply("live", &["on"]).unwrap();
    for (name, args) in directives {
        conf.apply(name, args).unwrap();
    }
    conf.merge_from(&server);
    Rc::new(ServerConfig::new(
        0,
        server.resolve(),
        vec![AppConfig {
            name: app.into(),
            settings: conf.resolve(),
            recorders: Vec::new(),
        }],
    ))
}

fn spec(url: &str, name: &str) -> RelaySpec {
    let t = RelayTarget::new(parse_rtmp_url(url).unwrap());
    RelaySpec::for_stream(&t, "x", name).unwrap()
}

/// Everything `w` has for client `id`, as written to a socket.
fn drain(w: &mut Worker, id: ClientId) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let mut slices = [IoSlice::new(&[]); 64];
        let n = w.output_slices(id, &mut slices);
        let before = out.len();
        for s in &slices[..n] {
            out.extend_from_slice(s);
        }
        w.advance(id, out.len() - before);
        if out.len() == before {
            return out;
        }
    }
}

fn drain_relay(w: &mut Worker, id: ClientId) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let mut slices = [IoSlice::new(&[]); 64];
        let n = w.relay_output_slices(id, &mut slices);
        let before = out.len();
        for s in &slices[..n] {
            out.extend_from_slice(s);
        }
        w.relay_advance(id, out.len() - before);
        if out.len() == before {
            return out;
        }
    }
}

struct Setup {
    a: Worker,
    b: Worker,
    publisher: RelayClient,
    now: u64,
    actions: Vec<RelayAction>,
    logs: Vec<LogLine>,
}

impl Setup {
    fn new() -> Setup {
        let mut rnd = |b: &mut [u8]| b.fill(5);
        let mut a = Worker::new();
        let mut b = Worker::new();
        let now = 1000;
        let push: &[&str] = &["rtmp://127.0.0.1:1936/remote"];
        a.connect(
            PUBLISHER,
            None,
            server("live", &[("push", push)]),
            now,
            &mut rnd,
        );
        b.connect(TARGET_CONN, None, server("remote", &[]), now, &mut rnd);
        let publisher = RelayClient::new(spec("rtmp://a/live", "cam"), 4096, 0, &mut rnd);
        Setup {
            a,
            b,
            publisher,
            now,
            actions: Vec::new(),
            logs: Vec::new(),
        }
    }

    fn take(&mut self, o: Outcome) {
        self.actions.extend(o.relays);
        self.logs.extend(o.logs);
    }

    /// Moves bytes publisher <-> A and relay <-> B until nothing moves.
    fn pump(&mut self, relay: Option<ClientId>) {
        for _ in 0..100 {
            let mut moved = false;
            if let Some(bytes) = self.publisher.take_output() {
                let mut o = Outcome::default();
                self.a.on_input(PUBLISHER, &bytes, self.now, &mut o);
                self.take(o);
                moved = true;
            }
            let back = drain(&mut self.a, PUBLISHER);
            if !back.is_empty() {
                self.publisher.feed(&back).unwrap();
                moved = true;
            }
            if let Some(rid) = relay {
                let out = drain_relay(&mut self.a, rid);
                if !out.is_empty() {
                    let mut o = Outcome::default();
                    self.b.on_input(TARGET_CONN, &out, self.now, &mut o);
                    moved = true;
                }
                let back = drain(&mut self.b, TARGET_CONN);
                if !back.is_empty() {
                    let mut o = Outcome::default();
                    self.a.on_relay_input(rid, &back, &mut o).unwrap();
                    self.take(o);
                    moved = true;
                }
            }
            self.now += 1;
            if !moved {
                return;
            }
        }
        panic!("pump did not settle");
    }

    /// The publisher sends one message (video or audio FLV tag body) on stream 1.
    fn media(&mut self, type_id: u8, ts: u32, payload: &[u8]) {
        let mut b = BytesMut::new();
        let csid = if type_id == chunk::MSG_VIDEO { 6 } else { 4 };
        chunk::encode_message(4096, csid, ts, type_id, 1, payload, &mut b);
        let mut o = Outcome::default();
        self.a.on_input(PUBLISHER, &b, self.now, &mut o);
        self.take(o);
    }
}

const AVC_HEADER: &[u8] = &[
    0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1f, 0xff, 0xe1, 0, 4, 0x67, 0x64, 0, 0x1f, 1, 0, 4, 0x68, 0xee,
    0x3c, 0x80,
];

fn keyframe(seq: u8) -> Vec<u8> {
    let mut v = vec![0x17, 1, 0, 0, 0, 0, 0, 0, 5, 0x65, seq, seq, seq, seq];
    v.resize(3000, seq);
    v
}

fn inter(seq: u8) -> Vec<u8> {
    let mut v = vec![0x27, 1, 0, 0, 0, 0, 0, 0, 5, 0x41, seq, seq, seq, seq];
    v.resize(800, seq);
    v
}

#[test]
fn publish_pushes_cached_start_then_live_media_and_unpublish_says_goodbye() {
    let mut s = Setup::new();
    s.pump(None);
    assert!(s.publisher.is_streaming());
    // The publish asked for one connection to the push target.
    let rid = match s.actions.as_slice() {
        [RelayAction::Connect { id, host, port, .. }] => {
            assert_eq!((host.as_str(), *port), ("127.0.0.1", 1936));
            *id
        }
        other => panic!("{other:?}"),
    };
    s.actions.clear();
    // Media before the relay is up lands in the start cache.
    s.media(chunk::MSG_VIDEO, 0, AVC_HEADER);
    s.media(chunk::MSG_VIDEO, 0, &keyframe(1));
    s.media(chunk::MSG_VIDEO, 40, &inter(2));
    assert!(s.a.on_relay_connected(rid, s.now));
    s.pump(Some(rid));
    assert!(s.a.relay_is_publishing(rid));
    let key = StreamKey::new("remote", "cam");
    let stats = s.b.hub().stream_stats(&key).expect("B has the stream");
    assert!(stats.publisher.is_some());
    // Header, keyframe and the inter frame from the cache, then live frames.
    assert_eq!(stats.video_frames, 3, "{stats:?}");
    s.media(chunk::MSG_VIDEO, 80, &inter(3));
    s.pump(Some(rid));
    assert_eq!(s.b.hub().stream_stats(&key).unwrap().video_frames, 4);
    // /stat lists the push as a client of the stream, addressed by its URL.
    let stat = s.a.stat_part(s.now, 7);
    let stream = &stat.servers[0].applications[0].streams[0];
    let push = stream
        .clients
        .iter()
        .find(|c| c.id == rid)
        .expect("the push in /stat");
    assert_eq!(push.address, "rtmp://127.0.0.1:1936/remote");
    assert!(push.active && !push.publishing);
    assert!(push.bytes_out > 3000 && push.bytes_in > 1536, "{push:?}");
    assert_eq!(push.worker_pid, 7);
    // Unpublish: what is queued, then FCUnpublish/deleteStream; the glue closes after.
    s.media(chunk::MSG_VIDEO, 120, &inter(4));
    let mut o = Outcome::default();
    s.a.disconnect(PUBLISHER, s.now, &mut o);
    assert_eq!(o.relays, vec![RelayAction::Close { id: rid }]);
    let out = drain_relay(&mut s.a, rid);
    let mut o2 = Outcome::default();
    s.b.on_input(TARGET_CONN, &out, s.now, &mut o2);
    assert_eq!(
        s.b.hub().stream_stats(&key).map_or(0, |st| st.video_frames),
        0,
        "B's stream is over"
    );
    assert!(!s.b.hub().is_publishing(&key));
    let mut o3 = Outcome::default();
    s.a.on_relay_closed(rid, "the stream ended", &mut o3);
    assert!(o3.relays.is_empty());
    assert_eq!(s.a.relay_count(), 0);
}

#[test]
fn a_failed_push_warns_once_and_retries_after_push_reconnect_while_published() {
    let mut s = Setup::new();
    s.pump(None);
    let RelayAction::Connect { id: rid, .. } = s.actions[0].clone() else {
        panic!("{:?}", s.actions);
    };
    let mut o = Outcome::default();
    s.a.on_relay_closed(rid, "connect to 127.0.0.1:1936 failed: refused", &mut o);
    assert_eq!(
        o.relays,
        vec![RelayAction::Retry {
            id: rid,
            delay_ms: 3000
        }]
    );
    let stat = s.a.stat_part(s.now, 7);
    let push = stat.servers[0].applications[0].streams[0]
        .clients
        .iter()
        .find(|c| c.id == rid)
        .expect("a failed push is still listed")
        .clone();
    assert!(!push.active);
    let warns: Vec<_> = o
        .logs
        .iter()
        .filter(|l| l.level == LogLevel::Warn)
        .collect();
    assert_eq!(warns.len(), 1);
    assert!(warns[0]
        .text
        .contains("rtmp://127.0.0.1:1936/remote failed: connect"));
    let mut o = Outcome::default();
    s.a.on_relay_retry(rid, &mut o);
    assert!(matches!(o.relays.as_slice(), [RelayAction::Connect { id, .. }] if *id == rid));
    // After unpublish a late retry does nothing.
    let mut o = Outcome::default();
    s.a.disconnect(PUBLISHER, s.now, &mut o);
    assert_eq!(o.relays, vec![RelayAction::Close { id: rid }]);
    let mut o = Outcome::default();
    s.a.on_relay_retry(rid, &mut o);
    assert!(o.relays.is_empty());
}

#[test]
fn a_push_that_keeps_failing_waits_longer_each_time_and_starts_over_once_it_publishes() {
    let mut s = Setup::new();
    s.pump(None);
    let RelayAction::Connect { id: rid, .. } = s.actions[0].clone() else {
        panic!("{:?}", s.actions);
    };
    let mut delays = Vec::new();
    for _ in 0..7 {
        let mut o = Outcome::default();
        s.a.on_relay_closed(rid, "connection refused", &mut o);
        let [RelayAction::Retry { delay_ms, .. }] = o.relays.as_slice() else {
            panic!("{:?}", o.relays);
        };
        delays.push(*delay_ms);
        let mut o = Outcome::default();
        s.a.on_relay_retry(rid, &mut o);
    }
    assert_eq!(delays, [3000, 6000, 12_000, 24_000, 48_000, 60_000, 60_000]);
    // This time the target takes the stream: the next failure waits push_reconnect again.
    assert!(s.a.on_relay_connected(rid, s.now));
    s.pump(Some(rid));
    assert!(s.a.relay_is_publishing(rid), "{:?}", s.logs);
    let mut o = Outcome::default();
    s.a.on_relay_closed(rid, "connection reset", &mut o);
    assert_eq!(
        o.relays,
        vec![RelayAction::Retry {
            id: rid,
            delay_ms: 3000
        }]
    );
}

#[test]
fn control_drop_stops_a_push_for_good_and_redirect_or_publisher_drops_leave_it() {
    let mut s = Setup::new();
    s.pump(None);
    let RelayAction::Connect { id: rid, .. } = s.actions[0].clone() else {
        panic!("{:?}", s.actions);
    };
    assert!(s.a.on_relay_connected(rid, s.now));
    s.pump(Some(rid));
    assert!(s.a.relay_is_publishing(rid));
    let control = |path: &str, args: &str| crate::control::parse_control(path, args).unwrap();
    // Neither a redirect nor a drop of publishers touches the push.
    for (path, args) in [
        ("redirect/subscriber", "app=live&name=cam&newname=other"),
        ("drop/publisher", "app=live&name=other"),
        ("drop/subscriber", "app=live&name=other"),
    ] {
        let mut o = Outcome::default();
        assert_eq!(
            s.a.control(&control(path, args), s.now, &mut o),
            0,
            "{path}?{args}"
        );
        assert!(o.relays.is_empty());
    }
    // Selected by its id, as /stat lists it: it says goodbye, closes and is not retried.
    let mut o = Outcome::default();
    let args = format!("app=live&name=cam&clientid={rid}");
    assert_eq!(
        s.a.control(&control("drop/client", &args), s.now, &mut o),
        1
    );
    assert_eq!(o.relays, vec![RelayAction::Close { id: rid }]);
    assert!(o
        .logs
        .iter()
        .any(|l| l.text.contains("dropped by /control")));
    let mut o = Outcome::default();
    s.a.on_relay_closed(rid, "closed", &mut o);
    assert!(o.relays.is_empty(), "{:?}", o.relays);
    assert_eq!(s.a.relay_count(), 0);
}

#[test]
fn reconnect_delays_never_overflow_and_a_long_push_reconnect_is_kept() {
    assert_eq!(reconnect_delay_ms(3000, 1), 3000);
    assert_eq!(reconnect_delay_ms(3000, u32::MAX), MAX_RECONNECT_MS);
    assert_eq!(reconnect_delay_ms(90_000, 5), 90_000);
    assert_eq!(reconnect_delay_ms(u64::MAX, 3), u64::MAX);
}

#[test]
fn a_stream_without_a_matching_push_line_relays_nothing() {
    let mut rnd = |b: &mut [u8]| b.fill(5);
    let mut a = Worker::new();
    let push: &[&str] = &["rtmp://127.0.0.1/remote", "name=other"];
    a.connect(
        PUBLISHER,
        None,
        server("live", &[("push", push)]),
        0,
        &mut rnd,
    );
    let mut publisher = RelayClient::new(spec("rtmp://a/live", "cam"), 4096, 0, &mut rnd);
    let mut actions = Vec::new();
    for _ in 0..20 {
        if let Some(b) = publisher.take_output() {
            let mut o = Outcome::default();
            a.on_input(PUBLISHER, &b, 0, &mut o);
            actions.extend(o.relays);
        }
        let back = drain(&mut a, PUBLISHER);
        if !back.is_empty() {
            publisher.feed(&back).unwrap();
        }
    }
    assert!(publisher.is_streaming());
    assert!(actions.is_empty(), "{actions:?}");
}

const EDGE_PLAYER: ClientId = 7;
const ORIGIN_CONN: ClientId = 8;

/// Worker A publishes `live/cam`; a player of `edge/cam` on a new worker E makes E pull it
/// from A. Returns A's setup, E, the player's client, and the pull's id, pull playing.
fn pulled_edge() -> (Setup, Worker, RelayClient, ClientId) {
    let mut s = Setup::new();
    s.pump(None);
    s.media(chunk::MSG_VIDEO, 0, AVC_HEADER);
    s.media(chunk::MSG_VIDEO, 0, &keyframe(1));
    let mut rnd = |b: &mut [u8]| b.fill(7);
    let mut edge = Worker::new();
    let pull: &[&str] = &["rtmp://127.0.0.1:1935/live"];
    edge.connect(
        EDGE_PLAYER,
        None,
        server("edge", &[("pull", pull), ("relay_buffer", &["2s"])]),
        s.now,
        &mut rnd,
    );
    s.a.connect(ORIGIN_CONN, None, server("live", &[]), s.now, &mut rnd);
    // The edge's player, as raw bytes from a client session (handshake, connect, play).
    let mut player = RelayClient::pull(spec("rtmp://e/edge", "cam"), 1 << 20, 1000, 0, &mut rnd);
    let mut pull_id = None;
    let mut o = Outcome::default();
    for _ in 0..200 {
        let mut moved = false;
        if let Some(b) = player.take_output() {
            edge.on_input(EDGE_PLAYER, &b, s.now, &mut o);
            moved = true;
        }
        let back = drain(&mut edge, EDGE_PLAYER);
        if !back.is_empty() {
            player.feed(&back).unwrap();
            moved = true;
        }
        for a in std::mem::take(&mut o.relays) {
            if let RelayAction::Connect { id, port, .. } = a {
                assert_eq!(port, 1935);
                assert!(edge.on_relay_connected(id, s.now));
                pull_id = Some(id);
            }
        }
        if let Some(id) = pull_id {
            let out = drain_relay(&mut edge, id);
            if !out.is_empty() {
                let mut oa = Outcome::default();
                s.a.on_input(ORIGIN_CONN, &out, s.now, &mut oa);
                moved = true;
            }
            let back = drain(&mut s.a, ORIGIN_CONN);
            if !back.is_empty() {
                edge.on_relay_input(id, &back, &mut o).unwrap();
                moved = true;
            }
        }
        if !moved {
            break;
        }
    }
    let id = pull_id.expect("the player started a pull");
    assert!(edge.relay_is_publishing(id), "the origin accepted play");
    // The pull announced `relay_buffer` as its buffer length.
    let origin_side = s.a.clients.get(&ORIGIN_CONN).unwrap();
    assert_eq!(origin_side.session.buffer_ms, 2000);
    (s, edge, player, id)
}

/// A pull, in memory: the edge publishes what the origin sends, its player gets it, and when
/// the player leaves the pull ends and the edge's stream is gone.
#[test]
fn a_player_starts_a_pull_that_publishes_the_origin_media_and_ends_with_it() {
    let (mut s, mut edge, mut player, id) = pulled_edge();
    let mut o = Outcome::default();
    // Live media from the origin's publisher reaches the edge's player through the pull.
    s.media(chunk::MSG_VIDEO, 40, &inter(2));
    let back = drain(&mut s.a, ORIGIN_CONN);
    edge.on_relay_input(id, &back, &mut o).unwrap();
    player.feed(&drain(&mut edge, EDGE_PLAYER)).unwrap();
    let got: Vec<(u8, u32, usize)> = player
        .take_media()
        .iter()
        .map(|m| (m.type_id, m.timestamp, m.payload.len()))
        .collect();
    assert!(got.contains(&(chunk::MSG_VIDEO, 0, 3000)), "{got:?}");
    assert!(got.contains(&(chunk::MSG_VIDEO, 40, 800)), "{got:?}");
    assert!(edge.relay_read_timeout_ms(id).is_some());
    // The player leaves: the pull stops and the edge's stream is gone.
    let mut o = Outcome::default();
    edge.disconnect(EDGE_PLAYER, s.now, &mut o);
    assert!(
        o.relays.contains(&RelayAction::Close { id }),
        "{:?}",
        o.relays
    );
    assert!(o
        .logs
        .iter()
        .any(|l| l.text.contains("stops: no player left")));
    assert!(!edge
        .hub()
        .is_publishing(&StreamKey::in_server(0, "edge", "cam")));
    let mut o = Outcome::default();
    edge.on_relay_closed(id, "closed", &mut o);
    assert_eq!(edge.relay_count(), 0);
}

/// `/control/drop/publisher` ends a pull (addressed as its stream's publisher, by its URL).
#[test]
fn control_drops_a_pull_as_its_streams_publisher() {
    let (s, mut edge, _player, id) = pulled_edge();
    // /control selects the pull as its stream's publisher, by its URL; a subscriber drop does not.
    let req = |path: &str| crate::control::parse_control(path, "app=edge&name=cam").unwrap();
    let mut o = Outcome::default();
    assert_eq!(
        edge.control(&req("drop/subscriber"), s.now, &mut o),
        1,
        "the edge's player"
    );
    let mut o = Outcome::default();
    assert_eq!(edge.control(&req("drop/publisher"), s.now, &mut o), 1);
    assert!(
        o.relays.contains(&RelayAction::Close { id }),
        "{:?}",
        o.relays
    );
    assert!(o
        .logs
        .iter()
        .any(|l| l.text.contains("stops: dropped by /control")));
}
