//! Worker tests driven by an independent RTMP client (`rml_rtmp`), entirely in memory: what a
//! client produces goes into [`Worker::on_input`]; what the worker has for a client is
//! collected through [`Worker::output_slices`] / [`Worker::advance`] and fed to the client.

use std::collections::BTreeMap;
use std::io::IoSlice;
use std::net::IpAddr;
use std::rc::Rc;

use bytes::{BufMut, Bytes, BytesMut};
use rml_rtmp::chunk_io::ChunkDeserializer;
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::messages::{RtmpMessage as RmlMessage, UserControlEventType};
use rml_rtmp::rml_amf0::Amf0Value as RmlAmf;
use rml_rtmp::sessions::{
    ClientSession, ClientSessionConfig, ClientSessionEvent, ClientSessionResult,
    PublishRequestType, StreamMetadata,
};
use rml_rtmp::time::RtmpTimestamp;

use super::*;
use crate::conf::RtmpConf;
use crate::rtmp::amf0;

// ---------------------------------------------------------------------------------------------
// Configuration helpers

pub(super) type Directives<'a> = &'a [(&'a str, &'a [&'a str])];

pub(super) fn conf(directives: Directives) -> RtmpConf {
    let mut c = RtmpConf::default();
    for (name, args) in directives {
        c.apply(name, args)
            .unwrap_or_else(|e| panic!("{name} {args:?}: {e}"));
    }
    c
}

/// A `server {}` with `server_directives` and one `application live {}` with `live on` plus
/// `app_directives` (merged with the server level, as nginx does).
pub(super) fn server_with(
    server_directives: Directives,
    app_directives: Directives,
) -> Rc<ServerConfig> {
    let server = conf(server_directives);
    let mut app = conf(app_directives);
    if !app_directives.iter().any(|(name, _)| *name == "live") {
        app.apply("live", &["on"]).unwrap();
    }
    app.merge_from(&server);
    Rc::new(ServerConfig::new(
        0,
        server.resolve(),
        vec![AppConfig {
            name: "live".into(),
            settings: app.resolve(),
            recorders: Vec::new(),
        }],
    ))
}

fn default_server() -> Rc<ServerConfig> {
    server_with(&[], &[])
}

pub(super) fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

// ---------------------------------------------------------------------------------------------
// Media payloads (FLV tag bodies)

pub(super) const AVC_HEADER: &[u8] = &[
    0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1f, 0xff, 0xe1, 0, 4, 0x67, 0x64, 0, 0x1f, 1, 0, 4, 0x68, 0xee,
    0x3c, 0x80,
];
pub(super) const AAC_HEADER: &[u8] = &[0xaf, 0, 0x12, 0x10];

/// An AVC keyframe (or inter frame) NALU body of `len` bytes tagged with `seq`.
pub(super) fn video_frame(key: bool, seq: u32, len: usize) -> Bytes {
    let mut b = BytesMut::with_capacity(len.max(16));
    b.put_u8(if key { 0x17 } else { 0x27 });
    b.put_slice(&[1, 0, 0, 0]);
    let body = len.max(16) - 9;
    b.put_u32(body as u32);
    b.put_u8(if key { 0x65 } else { 0x41 });
    b.put_u32(seq);
    while b.len() < len.max(16) {
        b.put_u8((b.len() as u32 ^ seq) as u8);
    }
    b.freeze()
}

pub(super) fn audio_frame(seq: u32) -> Bytes {
    let mut b = BytesMut::new();
    b.put_slice(&[0xaf, 1]);
    b.put_u32(seq);
    b.put_slice(&[0x21; 20]);
    b.freeze()
}

fn metadata() -> StreamMetadata {
    let mut m = StreamMetadata::new();
    m.video_width = Some(1280);
    m.video_height = Some(720);
    m.video_codec_id = Some(7);
    m.audio_codec_id = Some(10);
    m.encoder = Some("rml-test".into());
    m
}

// ---------------------------------------------------------------------------------------------
// The in-memory client

/// One message the client received, decoded by an independent chunk decoder (so user control
/// events and status levels the high-level session hides can be checked).
#[derive(Debug, Clone)]
pub(super) struct Received {
    timestamp: u32,
    stream_id: u32,
    pub(super) msg: RmlMessage,
}

pub(super) struct TestClient {
    handshake: Option<Handshake>,
    session: Option<ClientSession>,
    /// Handshake only; everything after it is raw bytes the test writes itself.
    raw_mode: bool,
    raw: ChunkDeserializer,
    pub(super) to_server: Vec<u8>,
    events: Vec<ClientSessionEvent>,
    pub(super) received: Vec<Received>,
    pub(super) errors: Vec<String>,
    pub(super) closed: Option<(CloseMode, String)>,
    /// The harness collects this client's output (false: a stalled reader).
    drain: bool,
    /// The client's bytes do not reach the server (a silent peer).
    mute: bool,
}

impl TestClient {
    pub(super) fn new(raw_mode: bool) -> Self {
        let mut hs = Handshake::new(PeerType::Client);
        let p0p1 = hs.generate_outbound_p0_and_p1().unwrap();
        TestClient {
            handshake: Some(hs),
            session: None,
            raw_mode,
            raw: ChunkDeserializer::new(),
            to_server: p0p1,
            events: Vec::new(),
            received: Vec::new(),
            errors: Vec::new(),
            closed: None,
            drain: true,
            mute: false,
        }
    }

    pub(super) fn is_open(&self) -> bool {
        self.closed.is_none()
    }

    pub(super) fn connected_transport(&self) -> bool {
        self.handshake.is_none()
    }

    pub(super) fn receive(&mut self, bytes: &[u8]) {
        if let Some(hs) = self.handshake.as_mut() {
            match hs.process_bytes(bytes) {
                Ok(HandshakeProcessResult::InProgress { response_bytes }) => {
                    self.to_server.extend_from_slice(&response_bytes);
                }
                Ok(HandshakeProcessResult::Completed {
                    response_bytes,
                    remaining_bytes,
                }) => {
                    self.to_server.extend_from_slice(&response_bytes);
                    self.handshake = None;
                    if !self.raw_mode {
                        let (session, results) =
                            ClientSession::new(ClientSessionConfig::new()).unwrap();
                        self.session = Some(session);
                        self.absorb(Ok(results));
                    }
                    self.after_handshake(&remaining_bytes);
                }
                Err(e) => self.errors.push(format!("handshake: {e:?}")),
            }
            return;
        }
        self.after_handshake(bytes);
    }

    fn after_handshake(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        // The independent raw decoder.
        let mut input = bytes;
        loop {
            match self.raw.get_next_message(input) {
                Ok(Some(payload)) => {
                    match payload.to_rtmp_message() {
                        Ok(msg) => {
                            if let RmlMessage::SetChunkSize { size } = msg {
                                self.raw.set_max_chunk_size(size as usize).unwrap();
                            }
                            self.received.push(Received {
                                timestamp: payload.timestamp.value,
                                stream_id: payload.message_stream_id,
                                msg,
                            });
                        }
                        Err(e) => self.errors.push(format!("raw message: {e:?}")),
                    }
                    input = &[];
                }
                Ok(None) => break,
                Err(e) => {
                    self.errors.push(format!("raw chunk: {e:?}"));
                    break;
                }
            }
        }
        if let Some(s) = self.session.as_mut() {
            let r = s.handle_input(bytes);
            self.absorb(r);
        }
    }

    pub(super) fn absorb(
        &mut self,
        r: Result<Vec<ClientSessionResult>, rml_rtmp::sessions::ClientSessionError>,
    ) {
        match r {
            Ok(results) => {
                for res in results {
                    self.absorb_one(Ok(res));
                }
            }
            Err(e) => self.errors.push(format!("session: {e:?}")),
        }
    }

    pub(super) fn absorb_one(
        &mut self,
        r: Result<ClientSessionResult, rml_rtmp::sessions::ClientSessionError>,
    ) {
        match r {
            Ok(ClientSessionResult::OutboundResponse(p)) => {
                self.to_server.extend_from_slice(&p.bytes)
            }
            Ok(ClientSessionResult::RaisedEvent(e)) => self.events.push(e),
            Ok(ClientSessionResult::UnhandleableMessageReceived(_)) => {}
            Err(e) => self.errors.push(format!("session: {e:?}")),
        }
    }

    pub(super) fn session(&mut self) -> &mut ClientSession {
        self.session
            .as_mut()
            .expect("client has no RTMP session yet")
    }

    /// `(level, code)` of every onStatus / `_error` the client received, in order.
    pub(super) fn statuses(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for r in &self.received {
            if let RmlMessage::Amf0Command {
                command_name,
                additional_arguments,
                ..
            } = &r.msg
            {
                if command_name != "onStatus" && command_name != "_error" {
                    continue;
                }
                if let Some(RmlAmf::Object(props)) = additional_arguments.first() {
                    let get = |k: &str| match props.get(k) {
                        Some(RmlAmf::Utf8String(s)) => s.clone(),
                        _ => String::new(),
                    };
                    out.push((get("level"), get("code")));
                }
            }
        }
        out
    }

    pub(super) fn codes(&self) -> Vec<String> {
        self.statuses().into_iter().map(|(_, c)| c).collect()
    }

    pub(super) fn has_code(&self, code: &str) -> bool {
        self.codes().iter().any(|c| c == code)
    }

    pub(super) fn user_controls(&self) -> Vec<UserControlEventType> {
        self.received
            .iter()
            .filter_map(|r| match &r.msg {
                RmlMessage::UserControl { event_type, .. } => Some(event_type.clone()),
                _ => None,
            })
            .collect()
    }

    pub(super) fn video(&self) -> Vec<(u32, Bytes)> {
        self.received
            .iter()
            .filter_map(|r| match &r.msg {
                RmlMessage::VideoData { data } => Some((r.timestamp, data.clone())),
                _ => None,
            })
            .collect()
    }

    fn audio(&self) -> Vec<(u32, Bytes)> {
        self.received
            .iter()
            .filter_map(|r| match &r.msg {
                RmlMessage::AudioData { data } => Some((r.timestamp, data.clone())),
                _ => None,
            })
            .collect()
    }

    /// The media-level sequence: "meta", "vh" (video header), "ah" (audio header), "v", "a".
    pub(super) fn media_kinds(&self) -> Vec<&'static str> {
        self.received
            .iter()
            .filter_map(|r| match &r.msg {
                RmlMessage::Amf0Data { values } => match values.first() {
                    Some(RmlAmf::Utf8String(s)) if s == "onMetaData" => Some("meta"),
                    _ => None,
                },
                RmlMessage::VideoData { data } if data.get(1) == Some(&0) => Some("vh"),
                RmlMessage::VideoData { .. } => Some("v"),
                RmlMessage::AudioData { data } if data.get(1) == Some(&0) => Some("ah"),
                RmlMessage::AudioData { .. } => Some("a"),
                _ => None,
            })
            .collect()
    }

    pub(super) fn has_event(&self, f: impl Fn(&ClientSessionEvent) -> bool) -> bool {
        self.events.iter().any(f)
    }
}

// ---------------------------------------------------------------------------------------------
// The harness

struct Harness {
    worker: Worker,
    server: Rc<ServerConfig>,
    clients: BTreeMap<ClientId, TestClient>,
    now: u64,
    logs: Vec<LogLine>,
    closes: Vec<(ClientId, CloseMode, String)>,
    wakes: Vec<ClientId>,
    media_wakes: Vec<ClientId>,
    batch_reads: Vec<ClientId>,
    /// `exec*` actions the worker asked for.
    execs: Vec<crate::exec::ExecAction>,
    rng: u64,
    /// Feed client bytes to the worker in pieces of at most this many bytes.
    input_piece: usize,
    /// Pretend a socket write takes at most this many bytes.
    write_limit: usize,
}

impl Harness {
    fn new(server: Rc<ServerConfig>) -> Self {
        Harness {
            worker: Worker::new(),
            server,
            clients: BTreeMap::new(),
            now: 1_000_000,
            logs: Vec::new(),
            closes: Vec::new(),
            wakes: Vec::new(),
            media_wakes: Vec::new(),
            batch_reads: Vec::new(),
            execs: Vec::new(),
            rng: 0x9e37_79b9_7f4a_7c15,
            input_piece: usize::MAX,
            write_limit: usize::MAX,
        }
    }

    fn next_random(&mut self) -> u64 {
        xorshift(&mut self.rng)
    }

    fn add_client(&mut self, id: ClientId, peer: &str) {
        self.add(id, peer, false);
    }

    fn add(&mut self, id: ClientId, peer: &str, raw_mode: bool) {
        let mut rng = self.rng;
        let mut random = |buf: &mut [u8]| {
            for b in buf {
                *b = xorshift(&mut rng) as u8;
            }
        };
        let first = self.worker.connect(
            id,
            Some(ip(peer)),
            self.server.clone(),
            self.now,
            &mut random,
        );
        self.rng = rng;
        assert!(first > 0);
        self.clients.insert(id, TestClient::new(raw_mode));
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

    fn apply(&mut self, outcome: Outcome) {
        self.logs.extend(outcome.logs);
        self.wakes.extend(outcome.wake);
        self.media_wakes.extend(outcome.wake_media);
        self.batch_reads.extend(outcome.batch_reads);
        self.execs.extend(outcome.execs);
        for (id, mode, reason) in outcome.close {
            self.closes.push((id, mode, reason.clone()));
            let open = self.clients.get(&id).is_some_and(TestClient::is_open);
            if !open {
                continue;
            }
            if mode == CloseMode::AfterFlush {
                let bytes = self.collect(id, usize::MAX);
                self.client(id).receive(&bytes);
            } else {
                self.worker.discard_output(id);
            }
            self.client(id).closed = Some((mode, reason));
            let mut o = Outcome::default();
            self.worker.disconnect(id, self.now, &mut o);
            self.apply(o);
        }
    }

    /// Takes up to `limit` bytes of the worker's output for `id` (like a socket write).
    fn collect(&mut self, id: ClientId, limit: usize) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let mut slices = [IoSlice::new(&[]); 16];
            let n = self.worker.output_slices(id, &mut slices);
            if n == 0 {
                break;
            }
            let before = out.len();
            for s in &slices[..n] {
                let room = limit.saturating_sub(out.len());
                out.extend_from_slice(&s[..s.len().min(room)]);
            }
            let written = out.len() - before;
            if written == 0 {
                break;
            }
            self.worker.advance(id, written);
            if out.len() >= limit {
                break;
            }
        }
        out
    }

    /// Feeds `bytes` as received from `id`; the outcome is applied.
    fn input(&mut self, id: ClientId, bytes: &[u8]) {
        let piece = self.input_piece.max(1);
        for part in bytes.chunks(piece) {
            if !self.is_open(id) {
                return;
            }
            let mut o = Outcome::default();
            self.worker.on_input(id, part, self.now, &mut o);
            self.apply(o);
        }
    }

    /// Moves bytes both ways until nothing moves.
    fn pump(&mut self) {
        for _ in 0..100_000 {
            let mut progress = false;
            let ids: Vec<ClientId> = self.clients.keys().copied().collect();
            for id in ids {
                let c = self.client(id);
                if !c.is_open() {
                    continue;
                }
                if !c.mute && !c.to_server.is_empty() {
                    let bytes = std::mem::take(&mut c.to_server);
                    self.input(id, &bytes);
                    progress = true;
                }
                if self.is_open(id) && self.c(id).drain {
                    let bytes = self.collect(id, self.write_limit);
                    if !bytes.is_empty() {
                        self.client(id).receive(&bytes);
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

    fn tick(&mut self, id: ClientId) -> Option<u64> {
        let mut o = Outcome::default();
        let next = self.worker.on_tick(id, self.now, &mut o);
        self.apply(o);
        next
    }

    fn handshake(&mut self, id: ClientId) {
        self.pump();
        assert!(self.c(id).connected_transport(), "handshake did not finish");
        assert!(self.c(id).errors.is_empty(), "{:?}", self.c(id).errors);
    }

    /// Handshake and `connect` to `app`; true when the server accepted.
    fn connect(&mut self, id: ClientId, peer: &str, app: &str) -> bool {
        self.add_client(id, peer);
        self.handshake(id);
        let r = self.client(id).session().request_connection(app.into());
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

    fn publisher(&mut self, id: ClientId, name: &str) {
        assert!(self.connect(id, "127.0.0.1", "live"), "connect failed");
        assert!(
            self.publish(id, name),
            "publish failed: {:?}",
            self.c(id).codes()
        );
    }

    fn player(&mut self, id: ClientId, name: &str) {
        assert!(self.connect(id, "127.0.0.1", "live"), "connect failed");
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
        let r = self.client(id).session().publish_metadata(&metadata());
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

    fn take_logs(&mut self) -> Vec<LogLine> {
        std::mem::take(&mut self.logs)
    }

    fn logs_of(&self, id: ClientId) -> Vec<&LogLine> {
        self.logs.iter().filter(|l| l.client == Some(id)).collect()
    }

    fn close_of(&self, id: ClientId) -> Option<&(ClientId, CloseMode, String)> {
        self.closes.iter().find(|(c, _, _)| *c == id)
    }

    fn assert_no_client_errors(&self) {
        for (id, c) in &self.clients {
            assert!(c.errors.is_empty(), "client {id}: {:?}", c.errors);
        }
    }
}

pub(super) fn xorshift(state: &mut u64) -> u64 {
    let mut x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    x
}

/// A command message as a raw chunk (fmt 0) on csid 3 of message stream `stream_id`.
pub(super) fn raw_command(stream_id: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    chunk::encode_message(
        128,
        3,
        0,
        chunk::MSG_COMMAND_AMF0,
        stream_id,
        payload,
        &mut out,
    );
    out.to_vec()
}

pub(super) fn connect_payload(app: &str) -> Vec<u8> {
    let mut p = Vec::new();
    amf0::write_string(&mut p, "connect");
    amf0::write_number(&mut p, 1.0);
    amf0::write_object_start(&mut p);
    amf0::write_key(&mut p, "app");
    amf0::write_string(&mut p, app);
    amf0::write_key(&mut p, "tcUrl");
    amf0::write_string(&mut p, &format!("rtmp://localhost/{app}"));
    amf0::write_object_end(&mut p);
    p
}

/// A raw-mode client that finished the handshake (its bytes after that are the test's).
fn raw_client(h: &mut Harness, id: ClientId) {
    h.add(id, "127.0.0.1", true);
    h.handshake(id);
    assert!(h.is_open(id));
}

// ---------------------------------------------------------------------------------------------
// Connect

#[test]
fn rml_client_handshakes_and_connects_to_live() {
    let mut h = Harness::new(default_server());
    assert!(h.connect(1, "127.0.0.1", "live"));
    assert!(h.is_open(1));
    let c = h.c(1);
    let (level, code) = c
        .received
        .iter()
        .find_map(|r| match &r.msg {
            RmlMessage::Amf0Command {
                command_name,
                additional_arguments,
                ..
            } if command_name == "_result" => match additional_arguments.first() {
                Some(RmlAmf::Object(p)) => Some((p.get("level").cloned(), p.get("code").cloned())),
                _ => None,
            },
            _ => None,
        })
        .expect("no _result for connect");
    assert_eq!(level, Some(RmlAmf::Utf8String("status".into())));
    assert_eq!(
        code,
        Some(RmlAmf::Utf8String("NetConnection.Connect.Success".into()))
    );
    // Window ack size, peer bandwidth and chunk size come before the result.
    let kinds: Vec<u8> = c
        .received
        .iter()
        .take(3)
        .map(|r| r.msg.get_message_type_id())
        .collect();
    assert_eq!(kinds, [5, 6, 1]);
    assert!(h.logs.iter().all(|l| l.level != LogLevel::Warn));
    h.assert_no_client_errors();
}

#[test]
fn connect_to_unknown_app_is_rejected_and_closed_after_flush() {
    let mut h = Harness::new(default_server());
    assert!(!h.connect(1, "127.0.0.1", "nosuchapp"));
    let c = h.c(1);
    assert!(c.has_event(|e| matches!(e, ClientSessionEvent::ConnectionRequestRejected { .. })));
    assert!(c.has_code("NetConnection.Connect.Rejected"));
    assert_eq!(c.statuses()[0].0, "error");
    let (_, mode, _) = h.close_of(1).expect("not closed");
    assert_eq!(*mode, CloseMode::AfterFlush);
    let warns: Vec<_> = h
        .logs
        .iter()
        .filter(|l| l.level == LogLevel::Warn)
        .collect();
    assert_eq!(warns.len(), 1, "{warns:?}");
    assert!(warns[0].text.contains("nosuchapp"), "{}", warns[0].text);
    assert_eq!(h.worker.client_count(), 0);
}

#[test]
fn max_connections_rejects_the_connect_over_the_limit_and_keeps_the_others() {
    let server = server_with(&[("max_connections", &["2"])], &[]);
    let mut h = Harness::new(server);
    assert!(h.connect(1, "127.0.0.1", "live"));
    assert!(h.connect(2, "127.0.0.1", "live"));
    assert!(!h.connect(3, "127.0.0.1", "live"));
    let c = h.c(3);
    assert!(c.has_code("NetConnection.Connect.Rejected"));
    let (_, mode, _) = h.close_of(3).expect("the third is closed");
    assert_eq!(*mode, CloseMode::AfterFlush);
    assert!(h.close_of(1).is_none() && h.close_of(2).is_none());
    let warns: Vec<_> = h
        .logs
        .iter()
        .filter(|l| l.level == LogLevel::Warn)
        .collect();
    assert_eq!(warns.len(), 1, "{warns:?}");
    assert!(
        warns[0]
            .text
            .contains("3 connections, max_connections is 2"),
        "{}",
        warns[0].text
    );
}

#[test]
fn connect_with_path_traversal_app_is_rejected() {
    let mut h = Harness::new(default_server());
    assert!(!h.connect(1, "127.0.0.1", "../live"));
    let (_, mode, _) = h.close_of(1).expect("not closed");
    assert_eq!(*mode, CloseMode::AfterFlush);
    let warns: Vec<_> = h
        .logs
        .iter()
        .filter(|l| l.level == LogLevel::Warn)
        .collect();
    assert_eq!(warns.len(), 1);
    assert!(warns[0].text.contains("connect refused"));
    assert_eq!(h.worker.client_count(), 0);
}

#[test]

fn long_connect_rejection_decodes_at_the_default_chunk_size() {
    // Before `accept_connect` the client still reads 128-byte chunks; a reply longer than
    // that must be split accordingly (or announced with Set Chunk Size first).
    let mut h = Harness::new(default_server());
    assert!(!h.connect(1, "127.0.0.1", "../live"));
    assert!(h.c(1).errors.is_empty(), "{:?}", h.c(1).errors);
    assert!(h.c(1).has_code("NetConnection.Connect.Rejected"));
}

#[test]
fn connect_works_when_input_arrives_one_byte_at_a_time() {
    let mut h = Harness::new(default_server());
    h.input_piece = 1;
    h.publisher(1, "k");
    h.input_piece = 3;
    h.player(2, "k");
    h.input_piece = 1;
    let sent = h.start_stream(1, 3);
    let got: Vec<Bytes> = h.c(2).video().into_iter().map(|(_, b)| b).collect();
    assert_eq!(got[1..], sent[..]);
    h.assert_no_client_errors();
}

#[test]
fn output_written_a_few_bytes_at_a_time_arrives_intact() {
    let mut h = Harness::new(default_server());
    h.write_limit = 7;
    h.publisher(1, "k");
    h.player(2, "k");
    let sent = h.start_stream(1, 5);
    let got: Vec<Bytes> = h.c(2).video().into_iter().map(|(_, b)| b).collect();
    assert_eq!(got[1..], sent[..]);
    h.assert_no_client_errors();
}

/// A ping (session output) queued while a player's live message is half written must wait
/// for the end of that message: spliced into its middle, it would corrupt the chunk stream.
#[test]
fn session_output_never_splits_a_half_written_live_message() {
    let mut h = Harness::new(default_server());
    h.publisher(1, "k");
    h.player(2, "k");
    h.client(2).drain = false;
    let big = video_frame(true, 0, 20_000);
    h.send_meta(1);
    h.send_video(1, 0, Bytes::from_static(AVC_HEADER));
    h.send_video(1, 0, big.clone());
    // The socket takes a few hundred bytes: the frame's message is cut in the middle.
    let part = h.collect(2, 300);
    h.client(2).receive(&part);
    // The server pings the idle-looking player now.
    h.now += 120_000;
    h.tick(2);
    h.client(2).drain = true;
    h.pump();
    h.assert_no_client_errors();
    let got: Vec<Bytes> = h.c(2).video().into_iter().map(|(_, b)| b).collect();
    assert_eq!(got.last(), Some(&big), "the frame arrives whole");
}

// ---------------------------------------------------------------------------------------------
// Publish

#[test]
fn publish_is_accepted() {
    let mut h = Harness::new(default_server());
    h.publisher(1, "mykey");
    assert!(h.c(1).has_code("NetStream.Publish.Start"));
    let key = StreamKey::new("live", "mykey");
    assert_eq!(h.worker.hub().registry().publisher(&key), Some(1));
    assert!(h
        .logs
        .iter()
        .any(|l| l.level == LogLevel::Info && l.text.contains("publish \"live/mykey\"")));
}

#[test]
fn second_publisher_of_a_name_is_refused_and_the_first_keeps_publishing() {
    let mut h = Harness::new(default_server());
    h.publisher(1, "mykey");
    h.player(3, "mykey");
    h.start_stream(1, 1);
    assert!(h.connect(2, "127.0.0.1", "live"));
    h.take_logs();
    assert!(!h.publish(2, "mykey"));
    let c2 = h.c(2);
    assert!(c2
        .statuses()
        .contains(&("error".to_string(), "NetStream.Publish.BadName".to_string())));
    let (_, mode, _) = h.close_of(2).expect("second publisher not closed");
    assert_eq!(*mode, CloseMode::AfterFlush);
    let warns: Vec<_> = h
        .logs
        .iter()
        .filter(|l| l.level == LogLevel::Warn)
        .collect();
    assert_eq!(warns.len(), 1);
    assert!(warns[0].text.contains("already being published"));

    // The first one is untouched and its frames still reach the player.
    assert!(h.is_open(1));
    let key = StreamKey::new("live", "mykey");
    assert_eq!(h.worker.hub().registry().publisher(&key), Some(1));
    let f = video_frame(false, 99, 300);
    h.send_video(1, 200, f.clone());
    assert_eq!(h.c(3).video().last().unwrap().1, f);
    h.assert_no_client_errors();
}

#[test]
fn publish_after_unpublish_by_another_client_is_accepted() {
    let mut h = Harness::new(default_server());
    h.publisher(1, "k");
    let mut o = Outcome::default();
    h.worker.disconnect(1, h.now, &mut o);
    h.client(1).closed = Some((CloseMode::Now, "test".into()));
    h.apply(o);
    h.publisher(2, "k");
    assert_eq!(
        h.worker
            .hub()
            .registry()
            .publisher(&StreamKey::new("live", "k")),
        Some(2)
    );
}

#[test]
fn delete_stream_then_publish_again_on_the_same_connection() {
    let mut h = Harness::new(default_server());
    h.publisher(1, "k");
    let r = h.client(1).session().stop_publishing();
    h.client(1).absorb(r);
    h.pump();
    assert!(h.c(1).has_code("NetStream.Unpublish.Success"));
    assert!(!h.worker.hub().is_publishing(&StreamKey::new("live", "k")));
    // The name is free again for another client.
    h.publisher(2, "k");
    assert!(h.is_open(1));
}

// ---------------------------------------------------------------------------------------------
// Hostile names

#[test]
fn hostile_publish_names_are_refused_with_one_warning_each() {
    let long = "x".repeat(1000);
    let names = ["../x", "a/b", "a\\b", "x\u{1}y", long.as_str(), "..", ""];
    for (i, name) in names.iter().enumerate() {
        let mut h = Harness::new(default_server());
        let id = i as ClientId + 1;
        assert!(h.connect(id, "127.0.0.1", "live"));
        h.take_logs();
        assert!(!h.publish(id, name), "{name:?} was accepted");
        let c = h.c(id);
        let errors: Vec<_> = c
            .statuses()
            .into_iter()
            .filter(|(level, _)| level == "error")
            .collect();
        assert_eq!(errors.len(), 1, "{name:?}: {:?}", c.statuses());
        assert!(errors[0].1.starts_with("NetStream.Publish."), "{errors:?}");
        let warns: Vec<_> = h
            .logs
            .iter()
            .filter(|l| l.level == LogLevel::Warn)
            .collect();
        assert_eq!(warns.len(), 1, "{name:?}: {:?}", h.logs);
        assert!(
            warns[0].text.contains("publish refused"),
            "{}",
            warns[0].text
        );
        assert!(
            warns[0].text.len() < 300,
            "log line too long: {}",
            warns[0].text
        );
        assert!(
            !warns[0].text.contains('\u{1}'),
            "control character reached the log"
        );
        assert!(h.close_of(id).is_some(), "{name:?}: not closed");
        assert!(h.worker.hub().registry().is_empty());
    }
}

#[test]
fn hostile_play_names_are_refused() {
    for name in ["../x", "a/b", "..", "x\u{7f}"] {
        let mut h = Harness::new(default_server());
        assert!(h.connect(1, "127.0.0.1", "live"));
        h.take_logs();
        assert!(!h.play(1, name));
        assert!(h.c(1).has_code("NetStream.Play.Failed"), "{name:?}");
        assert_eq!(
            h.logs.iter().filter(|l| l.level == LogLevel::Warn).count(),
            1
        );
        assert!(h.close_of(1).is_some());
        assert!(h.worker.hub().player_stats(1).is_none());
    }
}

#[test]
fn query_arguments_are_not_part_of_the_stream_name() {
    let mut h = Harness::new(default_server());
    h.publisher(1, "k?token=abc");
    assert!(h.worker.hub().is_publishing(&StreamKey::new("live", "k")));
    h.player(2, "k?x=1");
    let sent = h.start_stream(1, 0);
    assert_eq!(h.c(2).video().last().unwrap().1, sent[0]);
}

// ---------------------------------------------------------------------------------------------
// Access rules

#[test]
fn deny_publish_refuses_that_address_and_allows_others() {
    let server = server_with(&[], &[("deny", &["publish", "127.0.0.1"])]);
    let mut h = Harness::new(server);
    assert!(h.connect(1, "127.0.0.1", "live"));
    h.take_logs();
    assert!(!h.publish(1, "k"));
    assert!(h
        .c(1)
        .statuses()
        .contains(&("error".to_string(), "NetStream.Publish.Denied".to_string())));
    assert!(h.close_of(1).is_some());
    let warns: Vec<_> = h
        .logs
        .iter()
        .filter(|l| l.level == LogLevel::Warn)
        .collect();
    assert_eq!(warns.len(), 1);
    assert!(warns[0].text.contains("127.0.0.1"));

    assert!(h.connect(2, "10.0.0.1", "live"));
    assert!(h.publish(2, "k"));
    // Playing from the denied address is still allowed.
    assert!(h.connect(3, "127.0.0.1", "live"));
    assert!(h.play(3, "k"));
}

#[test]
fn deny_play_refuses_the_player_but_not_the_publisher() {
    let server = server_with(
        &[],
        &[
            ("allow", &["play", "10.0.0.0/8"]),
            ("deny", &["play", "all"]),
        ],
    );
    let mut h = Harness::new(server);
    h.publisher(1, "k");
    assert!(h.connect(2, "192.168.1.1", "live"));
    assert!(!h.play(2, "k"));
    assert!(h.c(2).has_code("NetStream.Play.Failed"));
    assert!(h.close_of(2).is_some());
    assert!(h.connect(3, "10.1.2.3", "live"));
    assert!(h.play(3, "k"));
}

// ---------------------------------------------------------------------------------------------
// Play

#[test]
fn player_receives_metadata_headers_then_frames_in_order() {
    let mut h = Harness::new(default_server());
    h.publisher(1, "mykey");
    h.player(2, "mykey");
    h.send_meta(1);
    h.send_video(1, 0, Bytes::from_static(AVC_HEADER));
    h.send_audio(1, 0, Bytes::from_static(AAC_HEADER));
    let key = video_frame(true, 0, 500);
    let a1 = audio_frame(1);
    let p1 = video_frame(false, 1, 300);
    h.send_video(1, 0, key.clone());
    h.send_audio(1, 20, a1.clone());
    h.send_video(1, 40, p1.clone());

    let c = h.c(2);
    assert_eq!(c.media_kinds(), ["meta", "vh", "ah", "v", "a", "v"]);
    let v = c.video();
    assert_eq!(v[0].1, Bytes::from_static(AVC_HEADER));
    assert_eq!(v[1], (0, key));
    assert_eq!(v[2], (40, p1));
    assert_eq!(c.audio()[1], (20, a1));
    assert!(c.has_event(|e| matches!(
        e,
        ClientSessionEvent::StreamMetadataReceived { metadata } if metadata.video_width == Some(1280)
            && metadata.encoder.as_deref() == Some("rml-test")
    )));
    // Media goes out on the message stream createStream returned.
    assert!(c
        .received
        .iter()
        .filter(|r| matches!(r.msg, RmlMessage::VideoData { .. }))
        .all(|r| r.stream_id == crate::rtmp::session::STREAM_ID));
    assert!(c.has_code("NetStream.Play.Start"));
    h.assert_no_client_errors();
}

#[test]
fn player_joining_mid_gop_starts_with_the_cached_keyframe() {
    let mut h = Harness::new(default_server());
    h.publisher(1, "mykey");
    let sent = h.start_stream(1, 4); // K0 P1 P2 P3 P4
    h.player(2, "mykey");
    let c = h.c(2);
    let kinds = c.media_kinds();
    assert_eq!(kinds[..3], ["meta", "vh", "ah"], "{kinds:?}");
    let v = c.video();
    // Sequence header, then the keyframe first, then the rest of the GOP, all byte-equal.
    assert_eq!(v[0].1, Bytes::from_static(AVC_HEADER));
    assert_eq!(v[1].1[0], 0x17, "first frame is not a keyframe");
    let got: Vec<Bytes> = v[1..].iter().map(|(_, b)| b.clone()).collect();
    assert_eq!(got, sent);
    assert_eq!(v[1].0, 0);
    assert_eq!(v.last().unwrap().0, 160);

    // Live frames follow the cache.
    let p5 = video_frame(false, 5, 250);
    h.send_video(1, 200, p5.clone());
    assert_eq!(h.c(2).video().last().unwrap(), &(200, p5));
    h.assert_no_client_errors();
}

#[test]
fn player_joining_after_a_second_keyframe_starts_from_the_latest_one() {
    let mut h = Harness::new(default_server());
    h.publisher(1, "k");
    h.start_stream(1, 2);
    let k2 = video_frame(true, 10, 400);
    let p = video_frame(false, 11, 100);
    h.send_video(1, 1000, k2.clone());
    h.send_video(1, 1040, p.clone());
    h.player(2, "k");
    let v = h.c(2).video();
    let frames: Vec<Bytes> = v[1..].iter().map(|(_, b)| b.clone()).collect();
    assert_eq!(frames, [k2, p]);
}

#[test]
fn live_media_wakes_players_for_a_gathered_write_while_statuses_wake_them_at_once() {
    let server = server_with(&[], &[("play_flush_interval", &["25ms"])]);
    let mut h = Harness::new(server);
    h.publisher(1, "k");
    h.player(2, "k");
    assert_eq!(h.worker.play_flush_interval_ms(2), 25);
    assert_eq!(h.worker.play_flush_interval_ms(99), 0, "unknown client");
    h.wakes.clear();
    h.start_stream(1, 3);
    assert!(h.media_wakes.contains(&2), "media must wake the player");
    assert!(
        !h.wakes.contains(&2),
        "media must not ask for an immediate write"
    );
    assert!(!h.media_wakes.contains(&1), "the publisher gets no media");

    let mut o = Outcome::default();
    h.worker.disconnect(1, h.now, &mut o);
    assert!(o.wake.contains(&2), "the unpublish status goes out at once");
}

#[test]
fn only_an_accepted_publisher_has_its_reads_batched() {
    let mut h = Harness::new(default_server());
    h.publisher(1, "k");
    h.player(2, "k");
    assert!(h.connect(3, "127.0.0.1", "live"));
    assert!(!h.publish(3, "k"), "a second publisher of k is refused");
    assert_eq!(h.batch_reads, vec![1]);
}

#[test]
fn play_flush_interval_defaults_on_and_can_be_turned_off() {
    let mut h = Harness::new(default_server());
    h.publisher(1, "k");
    h.player(2, "k");
    assert_eq!(
        h.worker.play_flush_interval_ms(2),
        crate::conf::DEFAULT_PLAY_FLUSH_INTERVAL_MS
    );
    let mut h = Harness::new(server_with(&[], &[("play_flush_interval", &["off"])]));
    h.player(2, "k");
    assert_eq!(h.worker.play_flush_interval_ms(2), 0);
}

#[test]
fn player_waiting_before_the_publisher_gets_publish_notify_and_media() {
    let server = server_with(&[], &[("publish_notify", &["on"])]);
    let mut h = Harness::new(server);
    h.player(2, "k");
    assert!(h.c(2).has_code("NetStream.Play.Start"));
    assert!(h
        .logs
        .iter()
        .any(|l| l.text.contains("waiting for a publisher")));
    h.publisher(1, "k");
    assert!(h.c(2).has_code("NetStream.Play.PublishNotify"));
    assert!(h.wakes.contains(&2));
    assert!(h.media_wakes.is_empty());
    let sent = h.start_stream(1, 2);
    let got: Vec<Bytes> = h.c(2).video().into_iter().map(|(_, b)| b).collect();
    assert_eq!(got[1..], sent[..]);
    h.assert_no_client_errors();
}

/// HEVC over Enhanced RTMP (sequence start, keyframe) as ffmpeg 6.1+ publishes it.
const HEVC_HEADER: &[u8] = &[0x90, b'h', b'v', b'c', b'1', 1, 1, 0x60, 0, 0, 0];
const HEVC_KEY: &[u8] = &[0x91, b'h', b'v', b'c', b'1', 0, 0, 0, 0, 0, 0, 2, 0x26, 1];

/// What a refused legacy player must see: Play.Failed, one warning naming the codec, closed
/// after the status is sent, and never an enhanced video byte.
fn assert_refused_for_hevc(h: &Harness, id: ClientId) {
    let c = h.c(id);
    assert!(
        c.statuses()
            .contains(&("error".to_string(), "NetStream.Play.Failed".to_string())),
        "{:?}",
        c.statuses()
    );
    assert!(c.video().iter().all(|(_, v)| v[0] & 0x80 == 0));
    let lines: Vec<_> = h
        .logs_of(id)
        .into_iter()
        .filter(|l| l.text.contains("stream is HEVC (hvc1)"))
        .collect();
    assert_eq!(lines.len(), 1, "{:?}", h.logs);
    assert_eq!(lines[0].level, LogLevel::Warn);
    assert!(lines[0]
        .text
        .contains("did not announce Enhanced RTMP support"));
    let (_, mode, _) = h.close_of(id).expect("not closed");
    assert_eq!(*mode, CloseMode::AfterFlush);
}

#[test]
fn a_legacy_player_joining_an_hevc_stream_gets_play_failed_naming_the_codec() {
    let mut h = Harness::new(default_server());
    h.publisher(1, "k");
    h.send_meta(1);
    h.send_video(1, 0, Bytes::from_static(HEVC_HEADER));
    h.send_audio(1, 0, Bytes::from_static(AAC_HEADER));
    h.send_video(1, 0, Bytes::from_static(HEVC_KEY));
    assert!(h.connect(2, "127.0.0.1", "live"));
    assert!(!h.play(2, "k"));
    assert!(!h.c(2).has_code("NetStream.Play.Start"));
    assert!(h.c(2).audio().is_empty());
    assert_refused_for_hevc(&h, 2);
    assert!(h.worker.hub().player_stats(2).is_none());
}

#[test]
fn a_legacy_player_waiting_for_an_hevc_publisher_is_refused_when_it_starts() {
    let mut h = Harness::new(default_server());
    h.player(2, "k");
    h.publisher(1, "k");
    h.send_meta(1);
    h.send_video(1, 0, Bytes::from_static(HEVC_HEADER));
    h.send_audio(1, 0, Bytes::from_static(AAC_HEADER));
    h.send_video(1, 0, Bytes::from_static(HEVC_KEY));
    assert!(h.c(2).has_code("NetStream.Play.Start"));
    assert_refused_for_hevc(&h, 2);
    // The publisher goes on; nothing more for the refused player.
    assert!(h.is_open(1));
    h.assert_no_client_errors();
}

#[test]
fn two_players_receive_identical_shared_payloads() {
    let mut h = Harness::new(default_server());
    h.publisher(1, "k");
    h.player(2, "k");
    h.player(3, "k");
    h.start_stream(1, 0);
    // Stall both readers, publish, then compare what each would be written.
    h.client(2).drain = false;
    h.client(3).drain = false;
    for i in 1..=5 {
        h.send_video(1, i * 40, video_frame(false, i, 1000));
    }
    let slices = |h: &Harness, id| {
        let mut s = [IoSlice::new(&[]); 64];
        let n = h.worker.output_slices(id, &mut s);
        s[..n]
            .iter()
            .map(|x| (x.as_ptr() as usize, x.len()))
            .collect::<Vec<_>>()
    };
    let a = slices(&h, 2);
    let b = slices(&h, 3);
    // Five frames, each its chunk header and its payload (the publisher's own buffer).
    assert_eq!(a.len(), 10);
    assert_eq!(a, b, "players do not share the encoded frames");
    h.client(2).drain = true;
    h.client(3).drain = true;
    h.pump();
    assert_eq!(h.c(2).video(), h.c(3).video());
    assert_eq!(h.c(2).audio(), h.c(3).audio());
    h.assert_no_client_errors();
}

#[test]
fn play_of_a_missing_stream_without_idle_streams_is_stream_not_found() {
    let server = server_with(&[], &[("idle_streams", &["off"])]);
    let mut h = Harness::new(server);
    assert!(h.connect(1, "127.0.0.1", "live"));
    assert!(!h.play(1, "nothere"));
    let c = h.c(1);
    assert!(c.statuses().contains(&(
        "error".to_string(),
        "NetStream.Play.StreamNotFound".to_string()
    )));
    assert!(!c.has_code("NetStream.Play.Start"));
    let (_, mode, _) = h.close_of(1).expect("not closed");
    assert_eq!(*mode, CloseMode::AfterFlush);
    assert!(h.worker.hub().player_stats(1).is_none());
}

#[test]
fn play_with_live_off_is_stream_not_found() {
    let server = server_with(&[], &[("live", &["off"])]);
    let mut h = Harness::new(server);
    assert!(h.connect(1, "127.0.0.1", "live"));
    assert!(!h.play(1, "k"));
    assert!(h.c(1).has_code("NetStream.Play.StreamNotFound"));
    assert!(h.close_of(1).is_some());
}

#[test]

fn refused_play_keeps_earlier_replies_of_the_same_read() {
    // A client that pipelines createStream and play in one packet must still get the
    // createStream result before the StreamNotFound error.
    let server = server_with(&[], &[("idle_streams", &["off"])]);
    let mut h = Harness::new(server);
    raw_client(&mut h, 1);
    h.input(1, &raw_command(0, &connect_payload("live")));
    h.pump();
    assert!(h.c(1).received.iter().any(|r| matches!(&r.msg,
        RmlMessage::Amf0Command { command_name, .. } if command_name == "_result")));
    let mut batch = Vec::new();
    let mut p = Vec::new();
    amf0::write_string(&mut p, "createStream");
    amf0::write_number(&mut p, 2.0);
    amf0::write_null(&mut p);
    batch.extend(raw_command(0, &p));
    let mut p = Vec::new();
    amf0::write_string(&mut p, "play");
    amf0::write_number(&mut p, 0.0);
    amf0::write_null(&mut p);
    amf0::write_string(&mut p, "nothere");
    batch.extend(raw_command(1, &p));
    h.input(1, &batch);
    h.pump();
    let results: Vec<f64> = h
        .c(1)
        .received
        .iter()
        .filter_map(|r| match &r.msg {
            RmlMessage::Amf0Command {
                command_name,
                transaction_id,
                ..
            } if command_name == "_result" => Some(*transaction_id),
            _ => None,
        })
        .collect();
    assert!(h.c(1).has_code("NetStream.Play.StreamNotFound"));
    assert!(
        results.contains(&2.0),
        "createStream result was dropped: {results:?}"
    );
}

#[test]
fn stop_playback_removes_the_player_and_keeps_the_connection() {
    let mut h = Harness::new(default_server());
    h.publisher(1, "k");
    h.player(2, "k");
    let r = h.client(2).session().stop_playback();
    h.client(2).absorb(r);
    h.pump();
    assert!(h.worker.hub().player_stats(2).is_none());
    assert!(h.is_open(2));
    let before = h.c(2).video().len();
    h.send_video(1, 0, video_frame(true, 1, 100));
    assert_eq!(h.c(2).video().len(), before);
}

// ---------------------------------------------------------------------------------------------
// Publisher leaving

#[test]
fn publisher_disconnect_sends_unpublish_notify_and_stream_eof() {
    let server = server_with(&[], &[("publish_notify", &["on"])]);
    let mut h = Harness::new(server);
    h.publisher(1, "k");
    h.player(2, "k");
    h.start_stream(1, 1);
    let mut o = Outcome::default();
    h.worker.disconnect(1, h.now, &mut o);
    h.client(1).closed = Some((CloseMode::Now, "peer closed".into()));
    assert!(o.wake.contains(&2));
    assert!(!o.closes(2));
    h.apply(o);
    h.pump();
    let c = h.c(2);
    assert!(
        c.has_code("NetStream.Play.UnpublishNotify"),
        "{:?}",
        c.codes()
    );
    assert_eq!(
        c.user_controls().last(),
        Some(&UserControlEventType::StreamEof)
    );
    // idle_streams on (default): the player stays and gets the next publisher.
    assert!(h.is_open(2));
    h.publisher(3, "k");
    assert!(h.c(2).has_code("NetStream.Play.PublishNotify"));
    let f = video_frame(true, 7, 100);
    h.send_video(3, 5, f.clone());
    assert_eq!(h.c(2).video().last().unwrap().1, f);
    h.assert_no_client_errors();
}

#[test]
fn publisher_disconnect_without_publish_notify_sends_only_stream_eof() {
    let mut h = Harness::new(default_server());
    h.publisher(1, "k");
    h.player(2, "k");
    let mut o = Outcome::default();
    h.worker.disconnect(1, h.now, &mut o);
    h.client(1).closed = Some((CloseMode::Now, "peer closed".into()));
    h.apply(o);
    h.pump();
    let c = h.c(2);
    assert!(!c.has_code("NetStream.Play.UnpublishNotify"));
    assert_eq!(
        c.user_controls().last(),
        Some(&UserControlEventType::StreamEof)
    );
    assert!(h.is_open(2));
}

#[test]
fn publisher_leaving_closes_players_when_idle_streams_is_off() {
    let server = server_with(&[], &[("idle_streams", &["off"])]);
    let mut h = Harness::new(server);
    h.publisher(1, "k");
    h.player(2, "k");
    h.player(3, "k");
    h.start_stream(1, 0);
    // The publisher ends its stream with deleteStream.
    let r = h.client(1).session().stop_publishing();
    h.client(1).absorb(r);
    h.pump();
    for id in [2, 3] {
        let (_, mode, _) = h.close_of(id).expect("player not closed");
        assert_eq!(*mode, CloseMode::AfterFlush);
        let c = h.c(id);
        assert!(
            c.has_code("NetStream.Play.UnpublishNotify"),
            "{:?}",
            c.codes()
        );
        assert_eq!(
            c.user_controls().last(),
            Some(&UserControlEventType::StreamEof)
        );
    }
    assert!(h.is_open(1));
    assert_eq!(h.worker.client_count(), 1);
    assert_eq!(h.worker.hub().streams().count(), 0);
}

#[test]
fn play_restart_sends_play_stop_and_play_start_around_a_republish() {
    let server = server_with(&[], &[("play_restart", &["on"])]);
    let mut h = Harness::new(server);
    h.publisher(1, "k");
    h.player(2, "k");
    let r = h.client(1).session().stop_publishing();
    h.client(1).absorb(r);
    h.pump();
    assert!(h.c(2).has_code("NetStream.Play.Stop"));
    let r = h
        .client(1)
        .session()
        .request_publishing("k".into(), PublishRequestType::Live);
    h.client(1).absorb_one(r);
    h.pump();
    let starts = h
        .c(2)
        .codes()
        .iter()
        .filter(|c| *c == "NetStream.Play.Start")
        .count();
    assert_eq!(starts, 2, "{:?}", h.c(2).codes());
}

// ---------------------------------------------------------------------------------------------
// Liveness

#[test]
fn client_that_never_finishes_the_handshake_is_closed_after_timeout() {
    let server = server_with(&[("timeout", &["5s"])], &[]);
    let mut h = Harness::new(server);
    h.add_client(1, "127.0.0.1");
    // Only C0 and half of C1 arrive.
    let partial: Vec<u8> = h.client(1).to_server[..700].to_vec();
    h.client(1).mute = true;
    h.input(1, &partial);
    let start = h.now;
    h.now = start + 4_999;
    assert_eq!(h.tick(1), Some(1));
    assert!(h.is_open(1));
    h.now = start + 5_000;
    assert_eq!(h.tick(1), None);
    assert!(!h.is_open(1));
    let (_, mode, _) = h.close_of(1).unwrap();
    assert_eq!(*mode, CloseMode::Now);
    assert_eq!(h.logs_of(1).len(), 1);
    assert_eq!(h.worker.client_count(), 0);
}

#[test]
fn client_that_handshakes_but_never_connects_is_closed_after_timeout() {
    let server = server_with(&[("timeout", &["5s"])], &[]);
    let mut h = Harness::new(server);
    h.add_client(1, "127.0.0.1");
    h.handshake(1);
    h.now += 5_000;
    assert_eq!(h.tick(1), None);
    assert!(!h.is_open(1));
}

#[test]
fn idle_connected_client_is_pinged_then_closed_without_an_answer() {
    let server = server_with(&[("ping", &["30s"]), ("ping_timeout", &["10s"])], &[]);
    let mut h = Harness::new(server);
    h.player(1, "k");
    h.client(1).mute = true;
    let start = h.now;
    h.now = start + 29_999;
    assert_eq!(h.tick(1), Some(1));
    h.pump();
    assert!(!h
        .c(1)
        .user_controls()
        .contains(&UserControlEventType::PingRequest));
    h.now = start + 30_000;
    assert_eq!(h.tick(1), Some(10_000));
    h.pump();
    assert!(h
        .c(1)
        .user_controls()
        .contains(&UserControlEventType::PingRequest));
    h.now = start + 39_999;
    assert!(h.tick(1).is_some());
    assert!(h.is_open(1));
    h.now = start + 40_000;
    assert_eq!(h.tick(1), None);
    assert!(!h.is_open(1));
    assert!(h
        .logs_of(1)
        .iter()
        .any(|l| l.text.contains("ping not answered")));
    // The player is gone from the hub too.
    assert!(h.worker.hub().player_stats(1).is_none());
}

#[test]
fn client_answering_pings_stays_connected() {
    let server = server_with(&[("ping", &["30s"]), ("ping_timeout", &["10s"])], &[]);
    let mut h = Harness::new(server);
    h.player(1, "k");
    for _ in 0..10 {
        let next = h.tick(1).expect("closed");
        h.now += next;
        h.pump(); // the client answers any ping
    }
    assert!(h.is_open(1));
    let pings = h
        .c(1)
        .user_controls()
        .iter()
        .filter(|e| **e == UserControlEventType::PingRequest)
        .count();
    assert!(pings >= 3, "only {pings} pings");
}

#[test]
fn ping_off_never_pings() {
    let server = server_with(&[("ping", &["0"])], &[]);
    let mut h = Harness::new(server);
    h.player(1, "k");
    h.client(1).mute = true;
    for _ in 0..5 {
        let next = h.tick(1).expect("closed");
        assert!(next > 0);
        h.now += next;
    }
    h.pump();
    assert!(h.is_open(1));
    assert!(!h
        .c(1)
        .user_controls()
        .contains(&UserControlEventType::PingRequest));
}

#[test]
fn drop_idle_publisher_closes_a_publisher_without_media() {
    let server = server_with(&[], &[("drop_idle_publisher", &["10s"])]);
    let mut h = Harness::new(server);
    h.publisher(1, "k");
    h.player(2, "k");
    let start = h.now;
    h.now = start + 9_999;
    assert!(h.tick(1).is_some());
    h.pump();
    assert!(h.is_open(1));
    h.now = start + 10_000;
    assert_eq!(h.tick(1), None);
    assert!(!h.is_open(1));
    assert!(h
        .logs_of(1)
        .iter()
        .any(|l| l.text.contains("idle publisher")));
    assert!(!h.worker.hub().is_publishing(&StreamKey::new("live", "k")));
    // The player heard about it.
    h.pump();
    assert_eq!(
        h.c(2).user_controls().last(),
        Some(&UserControlEventType::StreamEof)
    );
}

#[test]
fn drop_idle_publisher_keeps_a_publisher_that_sends_media() {
    let server = server_with(&[], &[("drop_idle_publisher", &["10s"])]);
    let mut h = Harness::new(server);
    h.publisher(1, "k");
    for i in 0..10u32 {
        h.now += 5_000;
        h.send_video(1, i * 5_000, video_frame(i == 0, i, 100));
        assert!(h.tick(1).is_some());
    }
    assert!(h.is_open(1));
}

#[test]

fn drop_idle_publisher_counts_from_the_publish_not_from_the_connect() {
    let server = server_with(&[], &[("drop_idle_publisher", &["10s"])]);
    let mut h = Harness::new(server);
    assert!(h.connect(1, "127.0.0.1", "live"));
    // Connected but not publishing for a while (answering pings).
    h.now += 60_000;
    h.tick(1);
    h.pump();
    assert!(h.publish(1, "k"));
    h.now += 100;
    assert!(
        h.tick(1).is_some(),
        "publisher dropped 100 ms after publish"
    );
    assert!(h.is_open(1));
}

// ---------------------------------------------------------------------------------------------
// Slow players

#[test]
fn slow_player_queue_stays_bounded_while_a_fast_player_gets_every_frame() {
    let mut h = Harness::new(default_server());
    h.publisher(1, "k");
    h.player(3, "k"); // never reads
    h.player(4, "k"); // reads everything
    h.client(3).drain = false;
    h.send_video(1, 0, Bytes::from_static(AVC_HEADER));
    h.send_audio(1, 0, Bytes::from_static(AAC_HEADER));
    let mut sent = Vec::new();
    let limit = 5 * 1024 * 1024;
    for i in 0..1500u32 {
        let f = video_frame(i % 50 == 0, i, 10_000);
        sent.push(f.clone());
        h.send_video(1, i * 40, f);
        let stats = h.worker.hub().player_stats(3).unwrap();
        assert!(stats.queued_bytes < limit, "queued {}", stats.queued_bytes);
        let mut s = [IoSlice::new(&[]); 1024];
        let n = h.worker.output_slices(3, &mut s);
        let pending: usize = s[..n].iter().map(|x| x.len()).sum();
        assert!(pending < limit, "pending {pending}");
    }
    assert!(h.worker.hub().player_stats(3).unwrap().dropped > 0);
    // The draining player got every frame, byte for byte.
    let got: Vec<Bytes> = h.c(4).video().into_iter().skip(1).map(|(_, b)| b).collect();
    assert_eq!(got.len(), sent.len());
    assert!(got == sent);
    // When the slow one reads again its stream decodes and resumes at a keyframe.
    h.client(3).drain = true;
    h.pump();
    let v = h.c(3).video();
    assert!(v.len() < sent.len());
    let mut last_seq = None;
    for (_, b) in v.iter().filter(|(_, b)| b[1] == 1) {
        let seq = u32::from_be_bytes([b[10], b[11], b[12], b[13]]);
        if let Some(prev) = last_seq {
            if seq != prev + 1 {
                assert_eq!(b[0], 0x17, "resumed at frame {seq} which is not a keyframe");
            }
        }
        last_seq = Some(seq);
    }
    h.assert_no_client_errors();
}

// ---------------------------------------------------------------------------------------------
// Robustness

/// Feeds `bytes` to a fresh client in random pieces; checks the close/log invariant.
fn feed_garbage(h: &mut Harness, id: ClientId, bytes: &[u8]) {
    let mut pos = 0;
    while pos < bytes.len() && h.is_open(id) {
        let n = (h.next_random() % 300) as usize + 1;
        let end = (pos + n).min(bytes.len());
        h.input(id, &bytes[pos..end]);
        pos = end;
    }
    h.now += h.next_random() % 100_000;
    h.tick(id);
    h.pump();
    if let Some((_, _, reason)) = h.close_of(id) {
        assert!(!reason.is_empty());
        let logs = h.logs_of(id);
        assert!(!logs.is_empty(), "client {id} closed without a log line");
        for l in logs {
            assert!(l.text.len() < 1000, "huge log line: {}", l.text.len());
        }
    }
}

fn random_bytes(h: &mut Harness, len: usize) -> Vec<u8> {
    (0..len).map(|_| h.next_random() as u8).collect()
}

fn retire(h: &mut Harness, id: ClientId) {
    if h.is_open(id) {
        let mut o = Outcome::default();
        h.worker.disconnect(id, h.now, &mut o);
        h.client(id).closed = Some((CloseMode::Now, "test done".into()));
        h.apply(o);
    }
    h.clients.remove(&id);
}

#[test]
fn random_bytes_from_fresh_clients_never_panic() {
    let mut h = Harness::new(default_server());
    for id in 1..=600u64 {
        h.add(id, "127.0.0.1", true);
        h.client(id).mute = true;
        let len = match id % 4 {
            0 => (h.next_random() % 16) as usize,
            1 => (h.next_random() % 2000) as usize,
            2 => 3073 + (h.next_random() % 4000) as usize,
            _ => (h.next_random() % 20_000) as usize,
        };
        let mut bytes = random_bytes(&mut h, len);
        if id % 2 == 0 && !bytes.is_empty() {
            bytes[0] = 3; // get past the version check
        }
        feed_garbage(&mut h, id, &bytes);
        retire(&mut h, id);
    }
    assert_eq!(h.worker.client_count(), 0);
}

#[test]
fn garbage_after_a_valid_handshake_never_panics() {
    let mut h = Harness::new(default_server());
    for id in 1..=300u64 {
        raw_client(&mut h, id);
        h.client(id).mute = true;
        let len = (h.next_random() % 5000) as usize + 1;
        let mut bytes = random_bytes(&mut h, len);
        // Often start with a plausible chunk basic header.
        if id % 3 == 0 {
            bytes[0] = 0x03;
        }
        feed_garbage(&mut h, id, &bytes);
        retire(&mut h, id);
    }
    assert_eq!(h.worker.client_count(), 0);
}

/// A publisher's byte stream after the handshake, one element per read: connect;
/// createStream + publish; metadata + codec headers + a keyframe.
fn publisher_script() -> Vec<Vec<u8>> {
    let connect = raw_command(0, &connect_payload("live"));
    let mut second = Vec::new();
    let mut p = Vec::new();
    amf0::write_string(&mut p, "createStream");
    amf0::write_number(&mut p, 2.0);
    amf0::write_null(&mut p);
    second.extend(raw_command(0, &p));
    second.extend(raw_command(1, &publish_payload("k")));
    let mut media = BytesMut::new();
    chunk::encode_message(
        128,
        5,
        0,
        chunk::MSG_DATA_AMF0,
        1,
        &set_data_frame(),
        &mut media,
    );
    chunk::encode_message(128, 6, 0, chunk::MSG_VIDEO, 1, AVC_HEADER, &mut media);
    chunk::encode_message(128, 4, 0, chunk::MSG_AUDIO, 1, AAC_HEADER, &mut media);
    let key = video_frame(true, 1, 700);
    chunk::encode_message(128, 6, 40, chunk::MSG_VIDEO, 1, &key, &mut media);
    vec![connect, second, media.to_vec()]
}

pub(super) fn publish_payload(name: &str) -> Vec<u8> {
    let mut p = Vec::new();
    amf0::write_string(&mut p, "publish");
    amf0::write_number(&mut p, 3.0);
    amf0::write_null(&mut p);
    amf0::write_string(&mut p, name);
    amf0::write_string(&mut p, "live");
    p
}

/// `@setDataFrame onMetaData {width: 640}`.
pub(super) fn set_data_frame() -> Vec<u8> {
    let mut p = Vec::new();
    amf0::write_string(&mut p, "@setDataFrame");
    amf0::write_string(&mut p, "onMetaData");
    amf0::write_object_start(&mut p);
    amf0::write_key(&mut p, "width");
    amf0::write_number(&mut p, 640.0);
    amf0::write_object_end(&mut p);
    p
}

#[test]
fn raw_publisher_script_is_valid() {
    let mut h = Harness::new(default_server());
    raw_client(&mut h, 1);
    for read in publisher_script() {
        h.input(1, &read);
        h.pump();
    }
    assert!(h.c(1).has_code("NetStream.Publish.Start"), "{:?}", h.logs);
    let stats = h
        .worker
        .hub()
        .stream_stats(&StreamKey::new("live", "k"))
        .unwrap();
    assert_eq!(stats.video_frames, 2);
    assert_eq!(stats.audio_frames, 1);
    assert!(h.is_open(1));
}

#[test]
fn mutated_valid_sessions_never_panic() {
    let script = publisher_script();
    let mut h = Harness::new(default_server());
    for id in 1..=400u64 {
        raw_client(&mut h, id);
        h.client(id).mute = true;
        let mut reads = script.clone();
        let flips = 1 + h.next_random() % 6;
        for _ in 0..flips {
            let r = (h.next_random() as usize) % reads.len();
            let at = (h.next_random() as usize) % reads[r].len();
            reads[r][at] = h.next_random() as u8;
        }
        for read in &reads {
            feed_garbage(&mut h, id, read);
        }
        retire(&mut h, id);
    }
    assert_eq!(h.worker.client_count(), 0);
}

#[test]

fn commands_pipelined_after_connect_in_one_read_are_served() {
    // librtmp-style clients may send connect, createStream and publish back to back.
    let mut h = Harness::new(default_server());
    raw_client(&mut h, 1);
    let all: Vec<u8> = publisher_script()[..2].concat();
    h.input(1, &all);
    h.pump();
    assert!(h.is_open(1), "{:?}", h.logs);
    assert!(h.c(1).has_code("NetStream.Publish.Start"));
}

#[test]

fn media_pipelined_right_after_publish_is_kept() {
    let mut h = Harness::new(default_server());
    raw_client(&mut h, 1);
    let script = publisher_script();
    h.input(1, &script[0]);
    h.pump();
    let rest: Vec<u8> = script[1..].concat();
    h.input(1, &rest);
    h.pump();
    assert!(h.c(1).has_code("NetStream.Publish.Start"));
    h.player(2, "k");
    assert_eq!(h.c(2).media_kinds(), ["meta", "vh", "ah", "v"]);
}

#[test]

fn plain_on_metadata_from_the_publisher_reaches_players() {
    let mut h = Harness::new(default_server());
    h.publisher(1, "k");
    h.player(2, "k");
    let mut p = Vec::new();
    amf0::write_string(&mut p, "onMetaData");
    amf0::write_object_start(&mut p);
    amf0::write_key(&mut p, "width");
    amf0::write_number(&mut p, 640.0);
    amf0::write_object_end(&mut p);
    let mut m = BytesMut::new();
    chunk::encode_message(4096, 20, 0, chunk::MSG_DATA_AMF0, 1, &p, &mut m);
    h.input(1, &m);
    h.pump();
    assert!(h.c(2).has_event(|e| matches!(
        e,
        ClientSessionEvent::StreamMetadataReceived { metadata } if metadata.video_width == Some(640)
    )));
}

#[test]
fn paused_player_receives_no_media_and_resumes_at_a_keyframe() {
    let mut h = Harness::new(default_server());
    h.publisher(1, "k");
    h.player(2, "k");
    h.start_stream(1, 0);
    let pause = |on: bool| {
        let mut p = Vec::new();
        amf0::write_string(&mut p, "pause");
        amf0::write_number(&mut p, 0.0);
        amf0::write_null(&mut p);
        amf0::write_bool(&mut p, on);
        amf0::write_number(&mut p, 0.0);
        let mut m = BytesMut::new();
        chunk::encode_message(4096, 20, 0, chunk::MSG_COMMAND_AMF0, 1, &p, &mut m);
        m.to_vec()
    };
    h.input(2, &pause(true));
    h.pump();
    assert!(h.c(2).has_code("NetStream.Pause.Notify"));
    let before = h.c(2).video().len();
    h.send_video(1, 40, video_frame(false, 1, 100));
    assert_eq!(
        h.c(2).video().len(),
        before,
        "media reached a paused player"
    );
    let k2 = video_frame(true, 2, 300);
    h.send_video(1, 80, k2.clone());
    h.send_video(1, 120, video_frame(false, 3, 100));
    assert_eq!(
        h.c(2).video().len(),
        before,
        "media reached a paused player"
    );
    h.input(2, &pause(false));
    h.pump();
    assert!(h.c(2).has_code("NetStream.Unpause.Notify"));
    let v = h.c(2).video();
    let resumed: Vec<&Bytes> = v[before..]
        .iter()
        .map(|(_, b)| b)
        .filter(|b| b[1] == 1)
        .collect();
    assert_eq!(
        resumed.first(),
        Some(&&k2),
        "did not resume at the last keyframe"
    );
    let p4 = video_frame(false, 4, 100);
    h.send_video(1, 160, p4.clone());
    assert_eq!(h.c(2).video().last().unwrap().1, p4);
    h.assert_no_client_errors();
}

#[test]
fn client_that_sends_pings_but_never_reads_is_closed() {
    let mut h = Harness::new(default_server());
    raw_client(&mut h, 1);
    h.input(1, &raw_command(0, &connect_payload("live")));
    h.client(1).drain = false;
    let mut pings = BytesMut::new();
    for i in 0..70_000u32 {
        let mut body = BytesMut::new();
        body.put_u16(chunk::UC_PING_REQUEST);
        body.put_u32(i);
        chunk::encode_message(128, 2, 0, chunk::MSG_USER_CONTROL, 0, &body, &mut pings);
    }
    h.input(1, &pings);
    let (_, mode, _) = h.close_of(1).expect("not closed");
    assert_eq!(*mode, CloseMode::Now);
    assert!(h
        .logs_of(1)
        .iter()
        .any(|l| l.level == LogLevel::Warn && l.text.contains("unread")));
    assert_eq!(h.worker.client_count(), 0);
}

#[test]
fn connect_with_absurd_amf_is_closed_with_a_log_line() {
    let mut payloads: Vec<(&str, Vec<u8>)> = Vec::new();
    // Objects nested far deeper than anyone needs.
    let mut deep = Vec::new();
    amf0::write_string(&mut deep, "connect");
    amf0::write_number(&mut deep, 1.0);
    for _ in 0..50_000 {
        amf0::write_object_start(&mut deep);
        amf0::write_key(&mut deep, "a");
    }
    payloads.push(("deep nesting", deep));
    // A string whose length runs past the message.
    let mut long = Vec::new();
    amf0::write_string(&mut long, "connect");
    amf0::write_number(&mut long, 1.0);
    long.extend_from_slice(&[
        0x03, 0x00, 0x03, b'a', b'p', b'p', 0x0c, 0xff, 0xff, 0xff, 0xff,
    ]);
    payloads.push(("long string", long));
    // An unknown type marker.
    let mut unknown = Vec::new();
    amf0::write_string(&mut unknown, "connect");
    amf0::write_number(&mut unknown, 1.0);
    unknown.push(0x42);
    payloads.push(("unknown marker", unknown));
    // The command object is a number.
    let mut number = Vec::new();
    amf0::write_string(&mut number, "connect");
    amf0::write_number(&mut number, 1.0);
    amf0::write_number(&mut number, 7.0);
    payloads.push(("number object", number));
    // Hundreds of thousands of tiny properties.
    let mut wide = Vec::new();
    amf0::write_string(&mut wide, "connect");
    amf0::write_number(&mut wide, 1.0);
    amf0::write_object_start(&mut wide);
    for _ in 0..150_000 {
        amf0::write_key(&mut wide, "k");
        amf0::write_null(&mut wide);
    }
    payloads.push(("wide object", wide));
    // The command name is not a string.
    let mut noname = Vec::new();
    amf0::write_number(&mut noname, 1.0);
    payloads.push(("numeric name", noname));

    for (what, payload) in payloads {
        let mut h = Harness::new(default_server());
        raw_client(&mut h, 1);
        h.input(1, &raw_command(0, &payload));
        h.pump();
        let (_, mode, _) = h
            .close_of(1)
            .unwrap_or_else(|| panic!("{what}: not closed"));
        assert_eq!(*mode, CloseMode::Now, "{what}");
        let logs = h.logs_of(1);
        assert_eq!(logs.len(), 1, "{what}: {logs:?}");
        assert_eq!(logs[0].level, LogLevel::Warn);
        assert!(
            logs[0].text.starts_with("rtmp: "),
            "{what}: {}",
            logs[0].text
        );
        assert!(logs[0].text.len() < 400, "{what}: {}", logs[0].text);
    }
}

#[test]
fn message_larger_than_max_message_is_closed_with_a_clear_log_line() {
    let mut h = Harness::new(default_server());
    raw_client(&mut h, 1);
    // fmt 0, csid 4, ts 0, length 0xFFFFFF, video, stream 1.
    let header = [0x04, 0, 0, 0, 0xff, 0xff, 0xff, 9, 1, 0, 0, 0];
    h.input(1, &header);
    let (_, mode, _) = h.close_of(1).expect("not closed");
    assert_eq!(*mode, CloseMode::Now);
    let logs = h.logs_of(1);
    assert_eq!(logs.len(), 1);
    assert!(
        logs[0].text.contains("exceeds max_message"),
        "{}",
        logs[0].text
    );
}

#[test]
fn publisher_frame_larger_than_configured_max_message_is_closed() {
    let server = server_with(&[("max_message", &["2000"])], &[]);
    let mut h = Harness::new(server);
    h.publisher(1, "k");
    h.player(2, "k");
    h.send_video(1, 0, video_frame(true, 0, 1500));
    assert!(h.is_open(1));
    h.send_video(1, 40, video_frame(false, 1, 3000));
    assert!(!h.is_open(1));
    let logs = h.logs_of(1);
    assert!(logs
        .iter()
        .any(|l| l.level == LogLevel::Warn && l.text.contains("exceeds max_message 2000")));
    // The player is told the publisher left.
    h.pump();
    assert_eq!(
        h.c(2).user_controls().last(),
        Some(&UserControlEventType::StreamEof)
    );
}

#[test]
fn media_before_publish_closes_the_connection() {
    let mut h = Harness::new(default_server());
    raw_client(&mut h, 1);
    h.input(1, &raw_command(0, &connect_payload("live")));
    let mut media = BytesMut::new();
    chunk::encode_message(128, 6, 0, chunk::MSG_VIDEO, 1, AVC_HEADER, &mut media);
    h.input(1, &media);
    assert!(h.close_of(1).is_some());
    assert!(h
        .logs_of(1)
        .iter()
        .any(|l| l.text.contains("not publishing")));
}

#[test]
fn input_after_close_and_unknown_ids_are_ignored() {
    let mut h = Harness::new(default_server());
    let mut o = Outcome::default();
    h.worker.on_input(42, b"hello", h.now, &mut o);
    assert!(o.close.is_empty() && o.logs.is_empty());
    assert_eq!(h.worker.on_tick(42, h.now, &mut o), None);
    let mut s = [IoSlice::new(&[]); 4];
    assert_eq!(h.worker.output_slices(42, &mut s), 0);
    h.worker.advance(42, 100);
    h.worker.disconnect(42, h.now, &mut o);
    assert!(o.close.is_empty() && o.logs.is_empty());
}

// ---------------------------------------------------------------------------------------------
// exec

/// What the worker asked to start: (directive, argv after the program).
fn exec_starts(h: &Harness) -> Vec<(&'static str, Vec<String>)> {
    h.execs
        .iter()
        .filter_map(|a| match a {
            crate::exec::ExecAction::Start { kind, command, .. } => {
                Some((kind.directive(), command.args.clone()))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn exec_commands_follow_publish_play_and_their_ends() {
    let server = server_with(
        &[],
        &[
            (
                "exec_push",
                &["/bin/ff", "-i", "$app/$name", "${name}_hi", "$args"],
            ),
            ("exec_publish", &["/bin/ev", "publish", "$name", "$addr"]),
            ("exec_publish_done", &["/bin/ev", "publish_done", "$name"]),
            ("exec_play", &["/bin/ev", "play", "$name", "$args"]),
            ("exec_play_done", &["/bin/ev", "play_done", "$name"]),
        ],
    );
    let mut h = Harness::new(server);
    h.publisher(1, "cam?a=1;b 2");
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert_eq!(
        exec_starts(&h),
        vec![
            ("exec_publish", s(&["publish", "cam", "127.0.0.1"])),
            ("exec_push", s(&["-i", "live/cam", "cam_hi", "a=1;b 2"])),
        ]
    );
    let push_id = match h.execs.get(1) {
        Some(crate::exec::ExecAction::Start { id, .. }) => *id,
        other => panic!("{other:?}"),
    };
    let mut o = Outcome::default();
    assert_eq!(
        h.worker
            .on_exec_report(push_id, ExecReport::Started(4242), h.now, &mut o),
        None
    );
    h.execs.clear();
    h.player(2, "cam?p=1");
    let mut o = Outcome::default();
    h.worker.disconnect(2, h.now, &mut o);
    h.apply(o);
    assert_eq!(
        exec_starts(&h),
        vec![
            ("exec_play", s(&["play", "cam", "p=1"])),
            ("exec_play_done", s(&["play_done", "cam"])),
        ]
    );
    h.execs.clear();
    let mut o = Outcome::default();
    h.worker.disconnect(1, h.now, &mut o);
    h.apply(o);
    assert_eq!(
        exec_starts(&h),
        vec![("exec_publish_done", s(&["publish_done", "cam"]))]
    );
    assert!(h.execs.contains(&crate::exec::ExecAction::Kill {
        id: push_id,
        signal: libc::SIGKILL
    }));
    assert_eq!(
        h.worker.exec_list().len(),
        5,
        "push stopping + 4 event commands starting"
    );
}

// ---------------------------------------------------------------------------------------------
// HTTP-FLV players

fn flv_request(h: &Harness, app: &str, stream: &str, peer: &str) -> HttpFlvPlay {
    HttpFlvPlay {
        server: h.server.clone(),
        app: app.into(),
        stream: stream.into(),
        args: format!("app={app}&stream={stream}"),
        peer: Some(ip(peer)),
        tc_url: format!("http://localhost/{app}"),
        page_url: String::new(),
        chunked: true,
    }
}

fn flv_play(h: &mut Harness, id: ClientId, stream: &str, peer: &str) -> (HttpFlvAnswer, Outcome) {
    let req = flv_request(h, "live", stream, peer);
    let mut o = Outcome::default();
    let answer = h.worker.http_flv_play(id, req, h.now, &mut o);
    (answer, o)
}

/// Everything queued for HTTP-FLV client `id`, as one byte string.
fn flv_output(h: &mut Harness, id: ClientId) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let mut slices = [IoSlice::new(&[]); 16];
        let n = h.worker.output_slices(id, &mut slices);
        if n == 0 {
            return out;
        }
        let before = out.len();
        for s in &slices[..n] {
            out.extend_from_slice(s);
        }
        h.worker.advance(id, out.len() - before);
    }
}

#[test]
fn an_http_flv_player_streams_chunked_flv_from_the_keyframe() {
    let mut h = Harness::new(default_server());
    h.publisher(1, "k");
    h.start_stream(1, 2);
    let (answer, _) = flv_play(&mut h, 50, "k", "127.0.0.1");
    assert_eq!(answer, HttpFlvAnswer::Stream);
    let body = flv_output(&mut h, 50);
    // The file header as one chunk (audio and video), then the metadata tag as one chunk.
    assert!(body.starts_with(b"d\r\nFLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00\r\n"));
    assert_eq!(body[22], 18, "onMetaData first");
    assert!(
        !body.windows(4).any(|w| w == b"\x02\x00\x07_"),
        "no RTMP status"
    );
    // Live frames follow; no RTMP bytes ever reach it.
    let f = video_frame(false, 9, 300);
    h.send_video(1, 200, f.clone());
    let more = flv_output(&mut h, 50);
    assert!(more.starts_with(format!("{:x}\r\n\x09", 11 + f.len() + 4).as_bytes()));
    assert!(more.windows(f.len()).any(|w| w == &f[..]));
    // /stat shows it as a client of the stream, marked as nginx-http-flv-module marks it.
    let stat = h.worker.stat_part(h.now, 1);
    let clients = &stat.servers[0].applications[0].streams[0].clients;
    let c = clients.iter().find(|c| c.id == 50).expect("listed");
    assert_eq!(c.flashver.as_deref(), Some("flv_live 1.1"));
}

#[test]
fn an_http_flv_player_ends_with_the_last_chunk_when_the_publisher_leaves() {
    let mut h = Harness::new(default_server());
    h.publisher(1, "k");
    h.start_stream(1, 1);
    assert_eq!(
        flv_play(&mut h, 50, "k", "127.0.0.1").0,
        HttpFlvAnswer::Stream
    );
    flv_output(&mut h, 50);
    let mut o = Outcome::default();
    h.worker.disconnect(1, h.now, &mut o);
    assert!(o
        .close
        .iter()
        .any(|(id, mode, _)| *id == 50 && *mode == CloseMode::AfterFlush));
    assert_eq!(flv_output(&mut h, 50), b"0\r\n\r\n");
}

#[test]
fn http_flv_refusals_answer_http_statuses() {
    let server = server_with(&[], &[("deny", &["play", "10.0.0.1"])]);
    let mut h = Harness::new(server);
    let req = flv_request(&h, "nope", "k", "127.0.0.1");
    let mut o = Outcome::default();
    assert_eq!(
        h.worker.http_flv_play(60, req, h.now, &mut o),
        HttpFlvAnswer::Refuse(404)
    );
    assert_eq!(
        flv_play(&mut h, 61, "k", "10.0.0.1").0,
        HttpFlvAnswer::Refuse(403)
    );
    assert_eq!(
        flv_play(&mut h, 62, "../x", "127.0.0.1").0,
        HttpFlvAnswer::Refuse(400)
    );
    assert_eq!(h.worker.client_count(), 0, "refused clients are forgotten");
    // idle_streams on (default): a stream nobody publishes is answered and waits.
    assert_eq!(
        flv_play(&mut h, 63, "later", "127.0.0.1").0,
        HttpFlvAnswer::Stream
    );
    let idle_off = server_with(&[], &[("idle_streams", &["off"])]);
    let mut h = Harness::new(idle_off);
    assert_eq!(
        flv_play(&mut h, 64, "k", "127.0.0.1").0,
        HttpFlvAnswer::Refuse(404)
    );
}

#[test]
fn http_flv_asks_on_play_and_a_denial_is_403() {
    let server = server_with(&[], &[("on_play", &["http://127.0.0.1:9/play"])]);
    let mut h = Harness::new(server);
    let (answer, o) = flv_play(&mut h, 70, "k", "127.0.0.1");
    assert_eq!(answer, HttpFlvAnswer::Wait);
    assert_eq!(o.calls.len(), 1);
    let call = &o.calls[0];
    let body = String::from_utf8_lossy(&call.request).into_owned();
    assert!(body.contains("call=play"), "{body}");
    assert!(body.contains("flashver=flv_live+1.1"), "{body}");
    let mut o2 = Outcome::default();
    let head = crate::notify::ResponseHead {
        status: 403,
        location: None,
    };
    h.worker.on_call_done(call.token, Ok(head), h.now, &mut o2);
    assert!(o2.wake.contains(&70) || o2.closes(70));
    assert_eq!(h.worker.http_flv_answer(70), HttpFlvAnswer::Refuse(403));
}

#[test]
fn http_flv_gets_what_a_legacy_rtmp_player_gets_so_enhanced_hevc_is_415() {
    let mut h = Harness::new(default_server());
    h.publisher(1, "k");
    h.send_meta(1);
    h.send_video(1, 0, Bytes::from_static(HEVC_HEADER));
    h.send_audio(1, 0, Bytes::from_static(AAC_HEADER));
    h.send_video(1, 0, Bytes::from_static(HEVC_KEY));
    assert_eq!(
        flv_play(&mut h, 80, "k", "127.0.0.1").0,
        HttpFlvAnswer::Refuse(415)
    );
    assert!(h.worker.hub().player_stats(80).is_none());
    // Waiting for the stream when it turns out HEVC: the body ends, nothing enhanced sent.
    h.publisher(2, "later");
    assert_eq!(
        flv_play(&mut h, 81, "later", "127.0.0.1").0,
        HttpFlvAnswer::Stream
    );
    flv_output(&mut h, 81);
    h.send_video(2, 0, Bytes::from_static(HEVC_HEADER));
    h.send_video(2, 0, Bytes::from_static(HEVC_KEY));
    let rest = flv_output(&mut h, 81);
    assert_eq!(rest, b"0\r\n\r\n");
}

#[path = "vod_tests.rs"]
mod vod;
