//! Tests of streams played in one worker and published in another.
//!
//! Two [`Worker`]s share an in-memory [`PublishRegistry`] that models the shared-memory one of
//! the glue: names claimed per worker, an append-only log per stream with the position of the
//! last video keyframe and the latest metadata / codec headers, followers that read from a
//! position and learn that the publisher left once they have read everything. Real
//! `rml_rtmp` clients talk to both workers through a small two-worker harness.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::io::IoSlice;
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use rml_rtmp::messages::{RtmpMessage as RmlMessage, UserControlEventType};
use rml_rtmp::sessions::{ClientSessionEvent, PublishRequestType, StreamMetadata};
use rml_rtmp::time::RtmpTimestamp;

use super::super::tests::{
    audio_frame, ip, server_with, video_frame, xorshift, TestClient, AAC_HEADER, AVC_HEADER,
};
use super::super::{
    CloseMode, LogLine, Outcome, PublishRegistry, RemoteFrame, RemoteFrameRef, ServerConfig,
    Worker, MIRROR_IDS,
};
use crate::live::{ClientId, FrameKind, StreamKey};
use crate::rtmp::{amf0, chunk};

// ---------------------------------------------------------------------------------------------
// The fake registry

/// What a worker asked the registry (for assertions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    Claim(bool),
    Release,
    Follow(bool),
    Poll,
    Unfollow,
}

/// One publication of a stream (a new one starts at each claim by a worker).
#[derive(Debug, Default)]
struct Log {
    owner: Option<u32>,
    generation: u64,
    /// The publisher released the name: followers end once they have read everything.
    ended: bool,
    frames: Vec<RemoteFrame>,
    last_keyframe: Option<usize>,
    metadata: Option<RemoteFrame>,
    video_header: Option<RemoteFrame>,
    audio_header: Option<RemoteFrame>,
}

#[derive(Debug, Default)]
struct Shared {
    streams: HashMap<StreamKey, Log>,
    /// (worker, stream) → (generation followed, next position to read).
    following: HashMap<(u32, StreamKey), (u64, usize)>,
    calls: Vec<(u32, String, Call)>,
    /// Most messages one poll returns (the real rings read at most 512 per poll).
    batch: usize,
    /// Messages a worker appended to a stream it does not own (must stay empty).
    foreign_media: usize,
}

impl Shared {
    fn new() -> Self {
        Shared {
            batch: usize::MAX,
            ..Self::default()
        }
    }

    fn count(&self, worker: u32, name: &str, call: Call) -> usize {
        self.calls
            .iter()
            .filter(|(w, n, c)| *w == worker && n == name && *c == call)
            .count()
    }

    fn follows(&self, worker: u32, name: &str) -> usize {
        self.calls
            .iter()
            .filter(|(w, n, c)| *w == worker && n == name && matches!(c, Call::Follow(_)))
            .count()
    }

    /// Appends a message to `name`'s log as if its publishing worker had written it.
    fn append(&mut self, name: &str, frame: RemoteFrame) {
        let log = self.streams.entry(key(name)).or_default();
        push(log, frame);
    }
}

fn push(log: &mut Log, frame: RemoteFrame) {
    if frame.sequence_header || frame.kind == FrameKind::Data {
        let slot = match frame.kind {
            FrameKind::Data => &mut log.metadata,
            FrameKind::Video => &mut log.video_header,
            _ => &mut log.audio_header,
        };
        *slot = Some(frame.clone());
    }
    if frame.keyframe && frame.kind == FrameKind::Video {
        log.last_keyframe = Some(log.frames.len());
    }
    log.frames.push(frame);
}

/// One worker's handle on the shared registry.
struct FakeRegistry {
    worker: u32,
    shared: Rc<RefCell<Shared>>,
}

impl FakeRegistry {
    fn record(&self, key: &StreamKey, call: Call) {
        self.shared
            .borrow_mut()
            .calls
            .push((self.worker, key.name.clone(), call));
    }
}

impl PublishRegistry for FakeRegistry {
    fn claim(&mut self, key: &StreamKey) -> bool {
        let ok = {
            let mut s = self.shared.borrow_mut();
            let log = s.streams.entry(key.clone()).or_default();
            match log.owner {
                Some(o) if o == self.worker => true,
                Some(_) => false,
                None => {
                    let generation = log.generation + 1;
                    *log = Log {
                        owner: Some(self.worker),
                        generation,
                        ..Log::default()
                    };
                    true
                }
            }
        };
        self.record(key, Call::Claim(ok));
        ok
    }

    fn release(&mut self, key: &StreamKey) {
        self.record(key, Call::Release);
        let mut s = self.shared.borrow_mut();
        if let Some(log) = s.streams.get_mut(key) {
            if log.owner == Some(self.worker) {
                log.owner = None;
                log.ended = true;
            }
        }
    }

    fn media(&mut self, key: &StreamKey, frame: RemoteFrameRef<'_>) {
        let mut s = self.shared.borrow_mut();
        let Some(log) = s
            .streams
            .get_mut(key)
            .filter(|l| l.owner == Some(self.worker))
        else {
            s.foreign_media += 1;
            return;
        };
        push(
            log,
            RemoteFrame {
                kind: frame.kind,
                timestamp: frame.timestamp,
                keyframe: frame.keyframe,
                sequence_header: frame.sequence_header,
                payload: Bytes::copy_from_slice(frame.payload),
            },
        );
    }

    fn follow(&mut self, key: &StreamKey) -> Option<Vec<RemoteFrame>> {
        let found = {
            let mut s = self.shared.borrow_mut();
            let me = self.worker;
            match s.streams.get(key) {
                Some(log) if log.owner.is_some_and(|o| o != me) && !log.ended => {
                    let mut out: Vec<RemoteFrame> =
                        [&log.metadata, &log.video_header, &log.audio_header]
                            .into_iter()
                            .flatten()
                            .cloned()
                            .collect();
                    if let Some(k) = log.last_keyframe {
                        out.extend(log.frames[k..].iter().cloned());
                    }
                    let at = (log.generation, log.frames.len());
                    s.following.insert((me, key.clone()), at);
                    Some(out)
                }
                _ => None,
            }
        };
        self.record(key, Call::Follow(found.is_some()));
        found
    }

    fn poll(&mut self, key: &StreamKey, out: &mut Vec<RemoteFrame>) -> bool {
        self.record(key, Call::Poll);
        let mut s = self.shared.borrow_mut();
        let batch = s.batch;
        let me = self.worker;
        let Some((generation, pos)) = s.following.get(&(me, key.clone())).copied() else {
            return true;
        };
        let Some(log) = s.streams.get(key) else {
            return true;
        };
        if log.generation != generation {
            return true;
        }
        let end = log.frames.len().min(pos.saturating_add(batch));
        out.extend(log.frames[pos..end].iter().cloned());
        let ended = log.ended && end == log.frames.len();
        s.following.insert((me, key.clone()), (generation, end));
        ended
    }

    fn unfollow(&mut self, key: &StreamKey) {
        self.record(key, Call::Unfollow);
        self.shared
            .borrow_mut()
            .following
            .remove(&(self.worker, key.clone()));
    }
}

fn key(name: &str) -> StreamKey {
    StreamKey::in_server(0, "live", name)
}

fn remote(kind: FrameKind, timestamp: u32, payload: &[u8]) -> RemoteFrame {
    RemoteFrame {
        kind,
        timestamp,
        keyframe: false,
        sequence_header: false,
        payload: Bytes::copy_from_slice(payload),
    }
}

// ---------------------------------------------------------------------------------------------
// Two workers

const A: usize = 0;
const B: usize = 1;

/// The registry's number of worker `w`.
fn wn(w: usize) -> u32 {
    w as u32 + 1
}

struct Pair {
    workers: [Worker; 2],
    shared: Rc<RefCell<Shared>>,
    server: Rc<ServerConfig>,
    clients: BTreeMap<ClientId, TestClient>,
    /// The worker each client is connected to.
    home: BTreeMap<ClientId, usize>,
    now: u64,
    logs: Vec<LogLine>,
    closes: Vec<(ClientId, CloseMode, String)>,
    rng: u64,
}

impl Pair {
    fn new(server: Rc<ServerConfig>) -> Self {
        let shared = Rc::new(RefCell::new(Shared::new()));
        let workers = [Worker::new(), Worker::new()];
        let mut p = Pair {
            workers,
            shared: shared.clone(),
            server,
            clients: BTreeMap::new(),
            home: BTreeMap::new(),
            now: 1_000_000,
            logs: Vec::new(),
            closes: Vec::new(),
            rng: 0x5851_f42d_4c95_7f2d,
        };
        for w in [A, B] {
            p.workers[w].set_publish_registry(Box::new(FakeRegistry {
                worker: wn(w),
                shared: shared.clone(),
            }));
        }
        p
    }

    fn w(&self, w: usize) -> &Worker {
        &self.workers[w]
    }

    fn client(&mut self, id: ClientId) -> &mut TestClient {
        self.clients.get_mut(&id).expect("no such client")
    }

    fn c(&self, id: ClientId) -> &TestClient {
        self.clients.get(&id).expect("no such client")
    }

    fn is_open(&self, id: ClientId) -> bool {
        self.c(id).is_open()
    }

    fn home(&self, id: ClientId) -> usize {
        self.home[&id]
    }

    fn close_of(&self, id: ClientId) -> Option<&(ClientId, CloseMode, String)> {
        self.closes.iter().find(|(c, _, _)| *c == id)
    }

    fn add(&mut self, w: usize, id: ClientId) {
        let mut rng = self.rng;
        let mut random = |buf: &mut [u8]| {
            for b in buf {
                *b = xorshift(&mut rng) as u8;
            }
        };
        let peer = Some(ip("127.0.0.1"));
        self.workers[w].connect(id, peer, self.server.clone(), self.now, &mut random);
        self.rng = rng;
        self.clients.insert(id, TestClient::new(false));
        self.home.insert(id, w);
        self.pump();
        assert!(self.c(id).connected_transport(), "handshake did not finish");
    }

    fn apply(&mut self, w: usize, outcome: Outcome) {
        self.logs.extend(outcome.logs);
        for (id, mode, reason) in outcome.close {
            self.closes.push((id, mode, reason.clone()));
            if !self.clients.get(&id).is_some_and(TestClient::is_open) {
                continue;
            }
            if mode == CloseMode::AfterFlush {
                let bytes = self.collect(id);
                self.client(id).receive(&bytes);
            } else {
                self.workers[w].discard_output(id);
            }
            self.client(id).closed = Some((mode, reason));
            let mut o = Outcome::default();
            self.workers[w].disconnect(id, self.now, &mut o);
            self.apply(w, o);
        }
    }

    fn collect(&mut self, id: ClientId) -> Vec<u8> {
        let w = self.home(id);
        let mut out = Vec::new();
        loop {
            let mut slices = [IoSlice::new(&[]); 16];
            let n = self.workers[w].output_slices(id, &mut slices);
            let before = out.len();
            for s in &slices[..n] {
                out.extend_from_slice(s);
            }
            let written = out.len() - before;
            if written == 0 {
                return out;
            }
            self.workers[w].advance(id, written);
        }
    }

    fn input(&mut self, id: ClientId, bytes: &[u8]) {
        if !self.is_open(id) {
            return;
        }
        let w = self.home(id);
        let mut o = Outcome::default();
        self.workers[w].on_input(id, bytes, self.now, &mut o);
        self.apply(w, o);
    }

    /// Moves bytes both ways until nothing moves (never reads the registry).
    fn pump(&mut self) {
        for _ in 0..10_000 {
            let mut progress = false;
            let ids: Vec<ClientId> = self.clients.keys().copied().collect();
            for id in ids {
                if !self.is_open(id) {
                    continue;
                }
                let bytes = std::mem::take(&mut self.client(id).to_server);
                if !bytes.is_empty() {
                    self.input(id, &bytes);
                    progress = true;
                }
                if self.is_open(id) {
                    let out = self.collect(id);
                    if !out.is_empty() {
                        self.client(id).receive(&out);
                        progress = true;
                    }
                }
            }
            if !progress {
                return;
            }
        }
        panic!("pump did not settle");
    }

    /// The glue's poll timer on worker `w`; returns whether it asks to be polled again.
    fn pump_remote(&mut self, w: usize) -> bool {
        let mut o = Outcome::default();
        let again = self.workers[w].pump_remote(&mut o);
        self.apply(w, o);
        self.pump();
        again
    }

    fn connect(&mut self, w: usize, id: ClientId) -> bool {
        self.add(w, id);
        let r = self.client(id).session().request_connection("live".into());
        self.client(id).absorb_one(r);
        self.pump();
        self.c(id)
            .has_event(|e| *e == ClientSessionEvent::ConnectionRequestAccepted)
    }

    fn publish(&mut self, id: ClientId, name: &str) -> bool {
        let r = self
            .client(id)
            .session()
            .request_publishing(name.into(), PublishRequestType::Live);
        self.client(id).absorb_one(r);
        self.pump();
        self.c(id)
            .has_event(|e| *e == ClientSessionEvent::PublishRequestAccepted)
    }

    fn play(&mut self, id: ClientId, name: &str) -> bool {
        let r = self.client(id).session().request_playback(name.into());
        self.client(id).absorb_one(r);
        self.pump();
        self.c(id)
            .has_event(|e| *e == ClientSessionEvent::PlaybackRequestAccepted)
    }

    fn publisher(&mut self, w: usize, id: ClientId, name: &str) {
        assert!(self.connect(w, id), "connect failed");
        assert!(
            self.publish(id, name),
            "publish failed: {:?}",
            self.c(id).codes()
        );
    }

    fn player(&mut self, w: usize, id: ClientId, name: &str) {
        assert!(self.connect(w, id), "connect failed");
        assert!(self.play(id, name), "play failed: {:?}", self.c(id).codes());
    }

    fn send_video(&mut self, id: ClientId, ts: u32, data: Bytes) {
        let r = self
            .client(id)
            .session()
            .publish_video_data(data, RtmpTimestamp::new(ts), false);
        self.client(id).absorb_one(r);
        self.pump();
    }

    fn send_audio(&mut self, id: ClientId, ts: u32, data: Bytes) {
        let r = self
            .client(id)
            .session()
            .publish_audio_data(data, RtmpTimestamp::new(ts), false);
        self.client(id).absorb_one(r);
        self.pump();
    }

    fn send_meta(&mut self, id: ClientId) {
        let mut m = StreamMetadata::new();
        m.video_width = Some(1280);
        m.video_height = Some(720);
        m.encoder = Some("mirror-test".into());
        let r = self.client(id).session().publish_metadata(&m);
        self.client(id).absorb_one(r);
        self.pump();
    }

    /// Metadata, both codec headers, a keyframe and `inter` inter frames (ts 0, 40, 80...).
    fn start_stream(&mut self, id: ClientId, inter: u32) -> Vec<Bytes> {
        self.send_meta(id);
        self.send_video(id, 0, Bytes::from_static(AVC_HEADER));
        self.send_audio(id, 0, Bytes::from_static(AAC_HEADER));
        let mut sent = Vec::new();
        for i in 0..=inter {
            let f = video_frame(i == 0, i, 200);
            sent.push(f.clone());
            self.send_video(id, i * 40, f);
        }
        sent
    }

    /// The connection of `id` is gone (peer closed).
    fn disconnect(&mut self, id: ClientId) {
        let w = self.home(id);
        let mut o = Outcome::default();
        self.workers[w].disconnect(id, self.now, &mut o);
        self.client(id).closed = Some((CloseMode::Now, "peer closed".into()));
        self.apply(w, o);
        self.pump();
    }

    /// A live pause (or resume) command from player `id` (csid 20, message stream 1).
    fn pause(&mut self, id: ClientId, on: bool) {
        let mut p = Vec::new();
        amf0::write_string(&mut p, "pause");
        amf0::write_number(&mut p, 0.0);
        amf0::write_null(&mut p);
        amf0::write_bool(&mut p, on);
        amf0::write_number(&mut p, 0.0);
        let mut m = BytesMut::new();
        chunk::encode_message(4096, 20, 0, chunk::MSG_COMMAND_AMF0, 1, &p, &mut m);
        self.input(id, &m);
        self.pump();
    }

    fn assert_no_client_errors(&self) {
        for (id, c) in &self.clients {
            assert!(c.errors.is_empty(), "client {id}: {:?}", c.errors);
        }
    }

    fn count(&self, w: usize, name: &str, call: Call) -> usize {
        self.shared.borrow().count(wn(w), name, call)
    }
}

/// Video payloads a client received, codec headers left out.
fn video_frames(c: &TestClient) -> Vec<Bytes> {
    c.video()
        .into_iter()
        .map(|(_, b)| b)
        .filter(|b| b.get(1) != Some(&0))
        .collect()
}

fn audio_frames(c: &TestClient) -> Vec<Bytes> {
    c.received
        .iter()
        .filter_map(|r| match &r.msg {
            RmlMessage::AudioData { data } if data.get(1) != Some(&0) => Some(data.clone()),
            _ => None,
        })
        .collect()
}

/// Index in `received` of the first onStatus with `code`.
fn status_index(c: &TestClient, code: &str) -> Option<usize> {
    c.received.iter().position(|r| match &r.msg {
        RmlMessage::Amf0Command {
            command_name,
            additional_arguments,
            ..
        } if command_name == "onStatus" => additional_arguments.first().is_some_and(|a| {
            matches!(a, rml_rtmp::rml_amf0::Amf0Value::Object(p)
                if p.get("code") == Some(&rml_rtmp::rml_amf0::Amf0Value::Utf8String(code.into())))
        }),
        _ => false,
    })
}

fn notify_server() -> Rc<ServerConfig> {
    server_with(&[], &[("publish_notify", &["on"])])
}

// ---------------------------------------------------------------------------------------------
// Joining and following

#[test]
fn remote_player_starts_with_metadata_headers_and_the_last_gop_then_follows_in_order() {
    let mut p = Pair::new(server_with(&[], &[]));
    p.publisher(A, 1, "k");
    p.start_stream(1, 2);
    // A second GOP: a joining player must start here, not at the first keyframe.
    let k3 = video_frame(true, 3, 9000);
    let a3 = audio_frame(3);
    let p4 = video_frame(false, 4, 6000);
    p.send_video(1, 120, k3.clone());
    p.send_audio(1, 130, a3.clone());
    p.send_video(1, 160, p4.clone());

    p.player(B, 2, "k");
    let c = p.c(2);
    assert_eq!(
        c.media_kinds(),
        ["meta", "vh", "ah", "v", "a", "v"],
        "joining player did not get the cached start"
    );
    assert!(c.has_event(|e| matches!(
        e,
        ClientSessionEvent::StreamMetadataReceived { metadata } if metadata.video_width == Some(1280)
    )));
    let vh: Vec<Bytes> = c
        .video()
        .into_iter()
        .map(|(_, b)| b)
        .filter(|b| b.get(1) == Some(&0))
        .collect();
    assert_eq!(vh, [Bytes::from_static(AVC_HEADER)]);
    let v = video_frames(c);
    assert_eq!(v, [k3.clone(), p4.clone()]);
    assert_eq!(v[0][0] >> 4, 1, "first video frame is not a keyframe");
    assert_eq!(audio_frames(c), [a3]);
    let ts: Vec<u32> = c.video().iter().skip(1).map(|(t, _)| *t).collect();
    assert_eq!(ts, [120, 160], "timestamps changed on the way");
    assert!(p.w(B).hub().registry().publisher(&key("k")) >= Some(MIRROR_IDS));

    // New messages wait for the poll, then arrive in order.
    let mut more = Vec::new();
    for i in 5..10 {
        let f = video_frame(false, i, 5000 + i as usize * 7);
        more.push(f.clone());
        p.send_video(1, i * 40, f);
        p.send_audio(1, i * 40 + 5, audio_frame(i));
    }
    assert_eq!(
        video_frames(p.c(2)).len(),
        2,
        "media arrived before the poll"
    );
    assert!(
        p.pump_remote(B),
        "a followed stream must keep the poll going"
    );
    let v = video_frames(p.c(2));
    assert_eq!(v[2..], more[..]);
    let ts: Vec<u32> = p.c(2).video().iter().skip(3).map(|(t, _)| *t).collect();
    assert_eq!(ts, [200, 240, 280, 320, 360]);
    assert_eq!(audio_frames(p.c(2)).len(), 6);
    // Nothing twice.
    p.pump_remote(B);
    assert_eq!(video_frames(p.c(2)).len(), 7);
    assert_eq!(p.shared.borrow().foreign_media, 0);
    p.assert_no_client_errors();
}

#[test]
fn remote_frames_are_chunked_at_the_players_chunk_size() {
    let mut p = Pair::new(server_with(&[("chunk_size", &["128"])], &[]));
    p.publisher(A, 1, "k");
    p.start_stream(1, 0);
    p.player(B, 2, "k");
    let big = video_frame(false, 1, 70_000);
    p.send_video(1, 40, big.clone());
    p.pump_remote(B);
    assert_eq!(video_frames(p.c(2)).last(), Some(&big));
    p.assert_no_client_errors();
}

#[test]
fn player_waiting_on_another_worker_starts_once_the_stream_is_published_and_polled() {
    let mut p = Pair::new(notify_server());
    p.player(B, 2, "k");
    assert!(p.c(2).has_code("NetStream.Play.Start"));
    assert!(
        p.pump_remote(B),
        "a waiting player must keep the poll going"
    );
    assert!(video_frames(p.c(2)).is_empty());

    p.publisher(A, 1, "k");
    let sent = p.start_stream(1, 2);
    assert!(
        !p.c(2).has_code("NetStream.Play.PublishNotify"),
        "told before the poll"
    );
    assert!(p.pump_remote(B));
    let c = p.c(2);
    assert!(
        c.has_code("NetStream.Play.PublishNotify"),
        "{:?}",
        c.codes()
    );
    assert!(c
        .user_controls()
        .contains(&UserControlEventType::StreamBegin));
    assert_eq!(video_frames(c), sent);
    assert!(c.media_kinds().starts_with(&["meta", "vh", "ah", "v"]));
    assert_eq!(p.count(B, "k", Call::Follow(true)), 1);

    let f = video_frame(false, 9, 300);
    p.send_video(1, 400, f.clone());
    p.pump_remote(B);
    assert_eq!(video_frames(p.c(2)).last(), Some(&f));
    p.assert_no_client_errors();
}

#[test]
fn many_players_on_one_worker_share_one_follow() {
    let mut p = Pair::new(server_with(&[], &[]));
    p.publisher(A, 1, "k");
    p.start_stream(1, 1);
    for id in 10..15 {
        p.player(B, id, "k");
    }
    assert_eq!(p.shared.borrow().follows(wn(B), "k"), 1);
    assert_eq!(p.w(B).mirrors.len(), 1);
    let polls = p.count(B, "k", Call::Poll);
    let f = video_frame(false, 2, 4000);
    p.send_video(1, 80, f.clone());
    p.pump_remote(B);
    assert_eq!(
        p.count(B, "k", Call::Poll),
        polls + 1,
        "one poll per stream"
    );
    let first = video_frames(p.c(10));
    assert_eq!(first.last(), Some(&f));
    for id in 11..15 {
        assert_eq!(video_frames(p.c(id)), first, "player {id}");
    }
    // Worker A's own player needs no follow at all.
    p.player(A, 20, "k");
    assert_eq!(p.shared.borrow().follows(wn(A), "k"), 0);
    assert_eq!(p.shared.borrow().follows(wn(B), "k"), 1);
    p.assert_no_client_errors();
}

#[test]
fn many_waiting_players_are_started_by_one_follow() {
    let mut p = Pair::new(server_with(&[], &[]));
    for id in 10..14 {
        p.player(B, id, "k");
    }
    p.pump_remote(B);
    p.publisher(A, 1, "k");
    let sent = p.start_stream(1, 1);
    p.pump_remote(B);
    assert_eq!(p.count(B, "k", Call::Follow(true)), 1);
    let follows = p.shared.borrow().follows(wn(B), "k");
    p.pump_remote(B);
    assert_eq!(
        p.shared.borrow().follows(wn(B), "k"),
        follows,
        "followed again"
    );
    for id in 10..14 {
        assert_eq!(video_frames(p.c(id)), sent, "player {id}");
    }
    p.assert_no_client_errors();
}

#[test]
fn messages_beyond_one_poll_batch_all_arrive_before_the_unpublish() {
    let mut p = Pair::new(notify_server());
    p.publisher(A, 1, "k");
    p.start_stream(1, 0);
    p.player(B, 2, "k");
    p.shared.borrow_mut().batch = 2;
    let mut sent = Vec::new();
    for i in 1..=5 {
        let f = video_frame(false, i, 100);
        sent.push(f.clone());
        p.send_video(1, i * 40, f);
    }
    p.disconnect(1);
    p.pump_remote(B);
    assert!(!p.c(2).has_code("NetStream.Play.UnpublishNotify"));
    p.pump_remote(B);
    p.pump_remote(B);
    let c = p.c(2);
    assert_eq!(video_frames(c)[1..], sent[..]);
    let last_video = c
        .received
        .iter()
        .rposition(|r| matches!(r.msg, RmlMessage::VideoData { .. }))
        .unwrap();
    let unpublish = status_index(c, "NetStream.Play.UnpublishNotify").expect("no unpublish");
    assert!(last_video < unpublish, "media after the unpublish notice");
    p.assert_no_client_errors();
}

// ---------------------------------------------------------------------------------------------
// Leaving

#[test]
fn remote_publisher_leaving_notifies_players_and_unfollows() {
    let mut p = Pair::new(notify_server());
    p.publisher(A, 1, "k");
    p.start_stream(1, 1);
    p.player(B, 2, "k");
    let last = video_frame(false, 7, 300);
    p.send_video(1, 200, last.clone());
    p.disconnect(1);
    assert!(
        !p.c(2).has_code("NetStream.Play.UnpublishNotify"),
        "told before the poll"
    );
    assert_eq!(p.count(B, "k", Call::Unfollow), 0);

    p.pump_remote(B);
    let c = p.c(2);
    assert_eq!(video_frames(c).last(), Some(&last), "last message lost");
    assert!(
        c.has_code("NetStream.Play.UnpublishNotify"),
        "{:?}",
        c.codes()
    );
    assert_eq!(
        c.user_controls().last(),
        Some(&UserControlEventType::StreamEof)
    );
    assert!(p.is_open(2), "idle_streams on: the player stays");
    assert_eq!(p.count(B, "k", Call::Unfollow), 1);
    assert!(p.w(B).mirrors.is_empty());
    assert!(!p.w(B).hub().is_publishing(&key("k")));
    assert!(p.pump_remote(B), "the waiting player keeps the poll going");
    assert_eq!(p.count(B, "k", Call::Unfollow), 1);

    // A new publisher on A: the waiting player on B gets it at the next poll.
    p.publisher(A, 3, "k");
    let sent = p.start_stream(3, 1);
    p.pump_remote(B);
    let c = p.c(2);
    let notices = c
        .codes()
        .into_iter()
        .filter(|x| x == "NetStream.Play.PublishNotify")
        .count();
    assert_eq!(notices, 1, "{:?}", c.codes());
    assert_eq!(video_frames(c)[video_frames(c).len() - 2..], sent[..]);
    p.assert_no_client_errors();
}

#[test]
fn remote_publisher_leaving_closes_players_when_idle_streams_is_off() {
    let mut p = Pair::new(server_with(&[], &[("idle_streams", &["off"])]));
    p.publisher(A, 1, "k");
    p.start_stream(1, 0);
    p.player(B, 2, "k");
    p.player(B, 3, "k");
    p.disconnect(1);
    p.pump_remote(B);
    for id in [2, 3] {
        let (_, mode, _) = p.close_of(id).expect("player not closed");
        assert_eq!(*mode, CloseMode::AfterFlush);
        assert!(p.c(id).has_code("NetStream.Play.UnpublishNotify"));
    }
    assert_eq!(p.count(B, "k", Call::Unfollow), 1);
    assert_eq!(p.w(B).hub().streams().count(), 0);
    assert_eq!(p.w(B).client_count(), 0);
    assert!(!p.pump_remote(B), "nothing left to poll");
    p.assert_no_client_errors();
}

#[test]
fn last_remote_player_leaving_stops_the_follow_at_the_next_poll() {
    let mut p = Pair::new(server_with(&[], &[]));
    p.publisher(A, 1, "k");
    p.start_stream(1, 0);
    p.player(B, 2, "k");
    p.player(B, 3, "k");
    p.disconnect(2);
    p.pump_remote(B);
    assert_eq!(
        p.count(B, "k", Call::Unfollow),
        0,
        "a player is still there"
    );
    p.disconnect(3);
    p.send_video(1, 40, video_frame(false, 1, 100));
    let polls = p.count(B, "k", Call::Poll);
    assert!(!p.pump_remote(B), "nothing left to poll");
    assert_eq!(p.count(B, "k", Call::Unfollow), 1);
    assert_eq!(p.count(B, "k", Call::Poll), polls, "read for nobody");
    assert!(p.w(B).mirrors.is_empty());
    assert_eq!(p.w(B).hub().streams().count(), 0);
    p.pump_remote(B);
    assert_eq!(p.count(B, "k", Call::Poll), polls, "still reading");
    assert!(p.shared.borrow().following.is_empty());
    // The publisher on A is untouched.
    assert!(p.is_open(1));
    assert!(p.w(A).hub().is_publishing(&key("k")));
}

#[test]
fn refused_remote_play_leaves_no_follow_behind() {
    // `live off`: play is refused after the stream was looked up in the registry.
    let mut p = Pair::new(server_with(&[], &[]));
    let off = server_with(&[], &[("live", &["off"])]);
    p.publisher(A, 1, "k");
    p.start_stream(1, 0);
    p.server = off;
    assert!(p.connect(B, 2));
    assert!(!p.play(2, "k"));
    p.pump_remote(B);
    let s = p.shared.borrow();
    assert_eq!(
        s.count(wn(B), "k", Call::Follow(true)),
        s.count(wn(B), "k", Call::Unfollow),
        "follow without unfollow"
    );
    assert!(s.following.is_empty());
}

// ---------------------------------------------------------------------------------------------
// One publisher per name on the whole server

#[test]
fn second_publisher_on_another_worker_is_refused_until_the_first_leaves() {
    let mut p = Pair::new(notify_server());
    p.publisher(A, 1, "k");
    p.start_stream(1, 0);
    assert!(p.connect(B, 2));
    assert!(!p.publish(2, "k"));
    assert!(p.c(2).has_code("NetStream.Publish.BadName"));
    assert!(p.close_of(2).is_some());
    assert_eq!(p.count(B, "k", Call::Claim(false)), 1);

    // Also while B plays the stream (its mirror publishes it in B's hub).
    p.player(B, 3, "k");
    assert!(p.connect(B, 4));
    assert!(!p.publish(4, "k"));
    assert!(p.c(4).has_code("NetStream.Publish.BadName"));
    assert!(p.w(B).hub().registry().publisher(&key("k")) >= Some(MIRROR_IDS));
    // The refused publishers released nothing.
    assert!(p.w(A).hub().is_publishing(&key("k")));
    assert_eq!(p.count(B, "k", Call::Release), 0);

    p.disconnect(1);
    p.pump_remote(B);
    p.publisher(B, 5, "k");
    assert!(p.c(3).has_code("NetStream.Play.PublishNotify"));
    let sent = p.start_stream(5, 1);
    assert_eq!(video_frames(p.c(3))[1..], sent[..]);

    // Now A follows B, and A's publishers are refused.
    p.player(A, 6, "k");
    assert_eq!(video_frames(p.c(6)), sent);
    assert!(p.connect(A, 7));
    assert!(!p.publish(7, "k"));
    assert!(p.c(7).has_code("NetStream.Publish.BadName"));
    assert_eq!(p.shared.borrow().foreign_media, 0);
}

#[test]
fn publisher_on_another_worker_may_publish_once_the_first_left() {
    let mut p = Pair::new(server_with(&[], &[]));
    p.publisher(A, 1, "k");
    p.disconnect(1);
    assert_eq!(p.count(A, "k", Call::Release), 1);
    p.publisher(B, 2, "k");
    assert_eq!(p.count(B, "k", Call::Claim(true)), 1);
}

#[test]
fn local_messages_reach_the_registry_classified() {
    let mut p = Pair::new(server_with(&[], &[]));
    p.publisher(A, 1, "k");
    p.start_stream(1, 1);
    p.send_audio(1, 50, audio_frame(1));
    let s = p.shared.borrow();
    let log = &s.streams[&key("k")];
    let flags: Vec<(FrameKind, bool, bool)> = log
        .frames
        .iter()
        .map(|f| (f.kind, f.keyframe, f.sequence_header))
        .collect();
    use FrameKind::{Audio, Data, Video};
    assert_eq!(
        flags,
        [
            (Data, false, false),
            (Video, false, true),
            (Audio, false, true),
            (Video, true, false),
            (Video, false, false),
            (Audio, false, false),
        ]
    );
    assert_eq!(log.frames[3].payload, video_frame(true, 0, 200));
    assert_eq!(log.owner, Some(wn(A)));
}

#[test]
fn metadata_is_not_shared_when_meta_is_off() {
    let mut p = Pair::new(server_with(&[], &[("meta", &["off"])]));
    p.publisher(A, 1, "k");
    p.start_stream(1, 0);
    let s = p.shared.borrow();
    let log = &s.streams[&key("k")];
    assert!(log.frames.iter().all(|f| f.kind != FrameKind::Data));
    assert!(log.metadata.is_none());
}

// ---------------------------------------------------------------------------------------------
// Pause

/// The only player on B pauses, the poll lets the stream go, the player resumes: it must
/// get the stream again from its last keyframe.
fn pause_drop_resume(idle_streams: &str) {
    let mut p = Pair::new(server_with(&[], &[("idle_streams", &[idle_streams])]));
    p.publisher(A, 1, "k");
    p.start_stream(1, 0);
    p.player(B, 2, "k");
    p.pause(2, true);
    assert!(p.c(2).has_code("NetStream.Pause.Notify"));
    p.pump_remote(B);
    assert_eq!(
        p.count(B, "k", Call::Unfollow),
        1,
        "paused: the stream is let go"
    );
    let k = video_frame(true, 5, 300);
    p.send_video(1, 200, k.clone());
    p.pause(2, false);
    assert!(p.c(2).has_code("NetStream.Unpause.Notify"));
    p.pump_remote(B);
    let f = video_frame(false, 6, 100);
    p.send_video(1, 240, f.clone());
    p.pump_remote(B);
    assert!(p.is_open(2));
    let v = video_frames(p.c(2));
    assert_eq!(
        v[v.len().saturating_sub(2)..],
        [k, f],
        "idle_streams {idle_streams}: the resumed player gets nothing"
    );
    p.assert_no_client_errors();
}

#[test]
fn paused_remote_player_resumes_after_its_follow_was_dropped() {
    pause_drop_resume("on");
}

#[test]
fn paused_remote_player_resumes_after_its_follow_was_dropped_without_idle_streams() {
    pause_drop_resume("off");
}

// ---------------------------------------------------------------------------------------------
// Hostile registry contents

/// Messages a corrupted or hostile publisher (or registry) might hand over.
fn garbage() -> Vec<RemoteFrame> {
    let mut g = Vec::new();
    for kind in [
        FrameKind::Video,
        FrameKind::Audio,
        FrameKind::Data,
        FrameKind::Control,
    ] {
        g.push(remote(kind, 10, &[]));
    }
    let bogus_video: &[&[u8]] = &[
        &[0x17],
        &[0x17, 0],
        &[0x17, 1, 0, 0],
        &[0x27, 2],
        &[0xff; 50],
        &[0x00; 9],
        // Enhanced RTMP headers cut short: bad FourCC, multitrack with nothing behind.
        &[0x90, b'h', b'v'],
        &[0x96, b'h', b'v', b'c', b'1'],
        &[0x96, 0x00],
        &[0x1c, 0, 0, 0, 0],
    ];
    for (i, b) in bogus_video.iter().enumerate() {
        let mut f = remote(FrameKind::Video, 20 + i as u32, b);
        // Flags that lie.
        f.keyframe = i % 2 == 0;
        f.sequence_header = i % 3 == 0;
        g.push(f);
    }
    for b in [&[0xaf][..], &[0xff, 0xff, 0xff], &[0x9f, 0xff], &[0xaf, 0]] {
        g.push(remote(FrameKind::Audio, 30, b));
    }
    g.push(remote(FrameKind::Control, 31, b"\x02\x00\x00\x00\x00\x00"));
    // Timestamps that jump about, across the extended-timestamp boundary.
    for ts in [u32::MAX, 0, 0x00ff_ffff, 0x0100_0000, 5] {
        g.push(remote(FrameKind::Video, ts, &video_frame(false, ts, 64)));
    }
    g.push(remote(FrameKind::Video, 40, &vec![0x27; 300_000]));
    g
}

#[test]
fn garbage_from_the_registry_neither_panics_nor_disturbs_other_streams() {
    let mut p = Pair::new(notify_server());
    p.publisher(A, 1, "good");
    p.start_stream(1, 0);
    p.publisher(A, 2, "bad");
    p.start_stream(2, 0);
    p.player(B, 10, "good");
    assert!(p.connect(B, 11));
    p.play(11, "bad");
    let good_before = video_frames(p.c(10)).len();

    let mut sent = Vec::new();
    for (i, g) in garbage().into_iter().enumerate() {
        p.shared.borrow_mut().append("bad", g);
        if i % 5 == 0 {
            let f = video_frame(false, 100 + i as u32, 150);
            sent.push(f.clone());
            p.send_video(1, 1000 + i as u32, f);
        }
        if i % 7 == 0 {
            p.pump_remote(B);
        }
    }
    p.pump_remote(B);
    assert!(p.is_open(10) && p.is_open(11));
    assert_eq!(video_frames(p.c(10))[good_before..], sent[..]);
    assert!(p.c(10).errors.is_empty(), "{:?}", p.c(10).errors);
    let chunk_errors: Vec<&String> = p
        .c(11)
        .errors
        .iter()
        .filter(|e| e.starts_with("raw chunk"))
        .collect();
    assert!(chunk_errors.is_empty(), "{chunk_errors:?}");

    // The stream still works after the garbage: a real keyframe gets through.
    let k = video_frame(true, 99, 500);
    p.send_video(2, 2000, k.clone());
    p.pump_remote(B);
    assert_eq!(video_frames(p.c(11)).last(), Some(&k));
    // And the publisher leaving still ends it.
    p.disconnect(2);
    p.pump_remote(B);
    assert!(p.c(11).has_code("NetStream.Play.UnpublishNotify"));
    assert!(p.w(B).hub().is_publishing(&key("good")));
}

#[test]
fn garbage_start_from_the_registry_neither_panics_nor_disturbs_other_streams() {
    let mut p = Pair::new(server_with(&[], &[]));
    p.publisher(A, 1, "good");
    p.start_stream(1, 0);
    p.player(B, 10, "good");
    // A stream whose headers and cached GOP are all garbage, owned by worker A.
    {
        let mut s = p.shared.borrow_mut();
        let log = s.streams.entry(key("bad")).or_default();
        log.owner = Some(wn(A));
        log.generation = 1;
        log.metadata = Some(remote(FrameKind::Data, 0, &[0x02, 0xff, 0xff, b'x']));
        let mut vh = remote(FrameKind::Video, 0, &[0x17]);
        vh.sequence_header = true;
        log.video_header = Some(vh);
        let mut ah = remote(FrameKind::Audio, 0, &[]);
        ah.sequence_header = true;
        log.audio_header = Some(ah);
        for mut f in garbage() {
            f.keyframe = true;
            push(log, f);
        }
        // The last keyframe is garbage too.
        let mut k = remote(FrameKind::Video, 7, &[0x17]);
        k.keyframe = true;
        push(log, k);
    }
    assert!(p.connect(B, 11));
    p.play(11, "bad");
    assert!(p.w(B).hub().is_publishing(&key("bad")));
    let f = video_frame(false, 1, 100);
    p.send_video(1, 40, f.clone());
    p.shared
        .borrow_mut()
        .append("bad", remote(FrameKind::Video, 8, &[]));
    p.pump_remote(B);
    assert_eq!(video_frames(p.c(10)).last(), Some(&f));
    assert!(p.c(10).errors.is_empty(), "{:?}", p.c(10).errors);
    assert!(p.is_open(11));
    // Registry answers with nothing at all: published, but no message yet.
    {
        let mut s = p.shared.borrow_mut();
        let log = s.streams.entry(key("empty")).or_default();
        log.owner = Some(wn(A));
        log.generation = 1;
    }
    p.player(B, 12, "empty");
    assert!(p.w(B).hub().is_publishing(&key("empty")));
    assert!(video_frames(p.c(12)).is_empty());
    p.pump_remote(B);
    p.assert_no_client_errors_except(&[11]);
}

impl Pair {
    fn assert_no_client_errors_except(&self, skip: &[ClientId]) {
        for (id, c) in &self.clients {
            if !skip.contains(id) {
                assert!(c.errors.is_empty(), "client {id}: {:?}", c.errors);
            }
        }
    }
}

#[test]
fn stream_the_registry_ends_early_is_followed_again_while_still_published() {
    // A poll answering "ended" for a stream still published (the real one does so when it
    // lost track of the follower, e.g. its ring was reused).
    let mut p = Pair::new(notify_server());
    p.publisher(A, 1, "k");
    p.start_stream(1, 0);
    p.player(B, 2, "k");
    p.shared.borrow_mut().following.clear();
    p.pump_remote(B);
    let c = p.c(2);
    let unpublish = status_index(c, "NetStream.Play.UnpublishNotify").expect("no unpublish");
    let publish = status_index(c, "NetStream.Play.PublishNotify").expect("not followed again");
    assert!(unpublish < publish);
    assert_eq!(p.count(B, "k", Call::Unfollow), 1);
    assert_eq!(p.count(B, "k", Call::Follow(true)), 2);
    assert_eq!(p.w(B).mirrors.len(), 1);
    let f = video_frame(true, 3, 100);
    p.send_video(1, 120, f.clone());
    p.pump_remote(B);
    assert_eq!(video_frames(p.c(2)).last(), Some(&f));
    p.assert_no_client_errors();
}
