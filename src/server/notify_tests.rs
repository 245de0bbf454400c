//! Tests of the worker's callbacks (on_connect, on_publish, on_play, on_update, *_done).
//!
//! Real `rml_rtmp` clients (and raw byte scripts for pipelining) run against a [`Worker`]
//! through a small harness like the one of `server/tests.rs`, except that it keeps the
//! [`NetCall`]s the worker asks for, so a test can read each request back and answer it
//! with [`Worker::on_call_done`] whenever it likes.

use std::collections::BTreeMap;
use std::io::IoSlice;
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use rml_rtmp::sessions::{ClientSessionEvent, PublishRequestType};

use super::super::tests::{
    connect_payload, ip, publish_payload, raw_command, server_with, set_data_frame, video_frame,
    xorshift, TestClient, AAC_HEADER, AVC_HEADER,
};
use super::super::{AppConfig, LogLine, ServerConfig};
use super::*;
use crate::live::StreamKey;
use crate::rtmp::session::MAX_HELD_INPUT;
use crate::rtmp::{amf0, chunk};

const ON_PUBLISH: &str = "http://127.0.0.1:9/auth";
const ON_PLAY: &str = "http://127.0.0.1:9/play";

// ---------------------------------------------------------------------------------------------
// Harness

struct H {
    worker: Worker,
    server: Rc<ServerConfig>,
    clients: BTreeMap<ClientId, TestClient>,
    now: u64,
    logs: Vec<LogLine>,
    closes: Vec<(ClientId, CloseMode, String)>,
    /// Calls the worker asked for that the test has not taken yet.
    calls: Vec<NetCall>,
    rng: u64,
}

impl H {
    fn new(server: Rc<ServerConfig>) -> Self {
        H {
            worker: Worker::new(),
            server,
            clients: BTreeMap::new(),
            now: 1_000_000,
            logs: Vec::new(),
            closes: Vec::new(),
            calls: Vec::new(),
            rng: 0x2545_f491_4f6c_dd1d,
        }
    }

    fn add(&mut self, id: ClientId, raw_mode: bool) {
        let mut rng = self.rng;
        let mut random = |buf: &mut [u8]| {
            for b in buf {
                *b = xorshift(&mut rng) as u8;
            }
        };
        let peer = Some(ip("127.0.0.1"));
        self.worker
            .connect(id, peer, self.server.clone(), self.now, &mut random);
        self.rng = rng;
        self.clients.insert(id, TestClient::new(raw_mode));
        self.pump();
        assert!(self.c(id).connected_transport(), "handshake did not finish");
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

    fn close_of(&self, id: ClientId) -> Option<&(ClientId, CloseMode, String)> {
        self.closes.iter().find(|(c, _, _)| *c == id)
    }

    fn apply(&mut self, outcome: Outcome) {
        self.logs.extend(outcome.logs);
        self.calls.extend(outcome.calls);
        for (id, mode, reason) in outcome.close {
            self.closes.push((id, mode, reason.clone()));
            if !self.clients.get(&id).is_some_and(TestClient::is_open) {
                continue;
            }
            if mode == CloseMode::AfterFlush {
                let bytes = self.collect(id);
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

    fn collect(&mut self, id: ClientId) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let mut slices = [IoSlice::new(&[]); 16];
            let n = self.worker.output_slices(id, &mut slices);
            let before = out.len();
            for s in &slices[..n] {
                out.extend_from_slice(s);
            }
            let written = out.len() - before;
            if written == 0 {
                return out;
            }
            self.worker.advance(id, written);
        }
    }

    fn input(&mut self, id: ClientId, bytes: &[u8]) {
        if !self.is_open(id) {
            return;
        }
        let mut o = Outcome::default();
        self.worker.on_input(id, bytes, self.now, &mut o);
        self.apply(o);
    }

    /// Moves bytes both ways until nothing moves.
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

    fn tick(&mut self, id: ClientId) -> Option<u64> {
        let mut o = Outcome::default();
        let next = self.worker.on_tick(id, self.now, &mut o);
        self.apply(o);
        self.pump();
        next
    }

    /// Answers call `token` and lets the bytes it releases flow.
    fn answer(&mut self, token: u64, result: Result<ResponseHead, NotifyError>) {
        let mut o = Outcome::default();
        self.worker.on_call_done(token, result, self.now, &mut o);
        self.apply(o);
        self.pump();
    }

    fn take_calls(&mut self) -> Vec<NetCall> {
        std::mem::take(&mut self.calls)
    }

    /// The one call made since the last take.
    fn only_call(&mut self) -> NetCall {
        let calls = self.take_calls();
        assert_eq!(calls.len(), 1, "{:#?}", labels(&calls));
        calls.into_iter().next().unwrap()
    }

    /// An rml client's handshake and `connect` to `app`; true when accepted.
    fn connect(&mut self, id: ClientId, app: &str) -> bool {
        self.add(id, false);
        let r = self.client(id).session().request_connection(app.into());
        self.client(id).absorb_one(r);
        self.pump();
        self.accepted(id, ClientSessionEvent::ConnectionRequestAccepted)
    }

    fn publish(&mut self, id: ClientId, name: &str) -> bool {
        let r = self
            .client(id)
            .session()
            .request_publishing(name.into(), PublishRequestType::Live);
        self.client(id).absorb_one(r);
        self.pump();
        self.accepted(id, ClientSessionEvent::PublishRequestAccepted)
    }

    fn play(&mut self, id: ClientId, name: &str) -> bool {
        let r = self.client(id).session().request_playback(name.into());
        self.client(id).absorb_one(r);
        self.pump();
        self.accepted(id, ClientSessionEvent::PlaybackRequestAccepted)
    }

    fn accepted(&self, id: ClientId, event: ClientSessionEvent) -> bool {
        self.c(id).has_event(|e| *e == event)
    }

    /// Connected and publishing `name` (no on_publish expected).
    fn publisher(&mut self, id: ClientId, name: &str) {
        assert!(self.connect(id, "live"), "connect failed");
        assert!(self.publish(id, name), "{:?}", self.c(id).codes());
    }

    fn player(&mut self, id: ClientId, name: &str) {
        assert!(self.connect(id, "live"), "connect failed");
        assert!(self.play(id, name), "{:?}", self.c(id).codes());
    }

    fn send_video(&mut self, id: ClientId, ts: u32, data: Bytes) {
        let r = self.client(id).session().publish_video_data(
            data,
            rml_rtmp::time::RtmpTimestamp::new(ts),
            false,
        );
        self.client(id).absorb_one(r);
        self.pump();
    }

    fn stop_publishing(&mut self, id: ClientId) {
        let r = self.client(id).session().stop_publishing();
        self.client(id).absorb(r);
        self.pump();
    }

    fn stop_playback(&mut self, id: ClientId) {
        let r = self.client(id).session().stop_playback();
        self.client(id).absorb(r);
        self.pump();
    }

    /// The glue saw the connection go away.
    fn hang_up(&mut self, id: ClientId) {
        self.client(id).closed = Some((CloseMode::Now, "peer closed".into()));
        let mut o = Outcome::default();
        self.worker.disconnect(id, self.now, &mut o);
        self.apply(o);
    }

    fn publisher_of(&self, name: &str) -> Option<ClientId> {
        self.worker
            .hub()
            .registry()
            .publisher(&StreamKey::new("live", name))
    }

    fn warns(&self) -> Vec<&str> {
        self.logs
            .iter()
            .filter(|l| l.level == LogLevel::Warn)
            .map(|l| l.text.as_str())
            .collect()
    }

    fn assert_no_client_errors(&self) {
        for (id, c) in &self.clients {
            assert!(c.errors.is_empty(), "client {id}: {:?}", c.errors);
        }
    }
}

fn labels(calls: &[NetCall]) -> Vec<&str> {
    calls.iter().map(|c| c.label.as_str()).collect()
}

fn status(code: u16) -> Result<ResponseHead, NotifyError> {
    Ok(ResponseHead {
        status: code,
        location: None,
    })
}

fn redirect(location: &str) -> Result<ResponseHead, NotifyError> {
    Ok(ResponseHead {
        status: 302,
        location: Some(location.into()),
    })
}

fn timed_out() -> Result<ResponseHead, NotifyError> {
    Err(NotifyError::Transport("timed out".into()))
}

// ---------------------------------------------------------------------------------------------
// Reading a request back

/// A request as an HTTP server would see it.
#[derive(Debug)]
struct Req {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    /// The form fields, decoded, in order (POST body or GET query).
    fields: Vec<(String, String)>,
}

impl Req {
    fn field(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn header(&self, key: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    fn keys(&self) -> Vec<&str> {
        self.fields.iter().map(|(k, _)| k.as_str()).collect()
    }
}

fn form_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

fn parse_form(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (form_decode(k), form_decode(v))
        })
        .collect()
}

fn parse_request(call: &NetCall) -> Req {
    let text = std::str::from_utf8(&call.request).expect("request is not UTF-8");
    let (head, body) = text.split_once("\r\n\r\n").expect("no end of head");
    let mut lines = head.split("\r\n");
    let line: Vec<&str> = lines.next().unwrap().split(' ').collect();
    assert_eq!(line.len(), 3, "request line {line:?}");
    assert_eq!(line[2], "HTTP/1.0");
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (k, v) = l.split_once(": ").expect("header line");
            (k.to_string(), v.to_string())
        })
        .collect();
    let (path, query) = line[1].split_once('?').unwrap_or((line[1], ""));
    let form = if line[0] == "POST" {
        let len: usize = headers
            .iter()
            .find(|(k, _)| k == "Content-Length")
            .expect("POST without Content-Length")
            .1
            .parse()
            .unwrap();
        assert_eq!(len, body.len(), "Content-Length does not match the body");
        assert!(query.is_empty());
        body
    } else {
        assert!(body.is_empty());
        query
    };
    Req {
        method: line[0].to_string(),
        path: path.to_string(),
        headers,
        fields: parse_form(form),
    }
}

// ---------------------------------------------------------------------------------------------
// Raw client scripts (pipelining: several commands and media in one read)

fn create_stream() -> Vec<u8> {
    let mut p = Vec::new();
    amf0::write_string(&mut p, "createStream");
    amf0::write_number(&mut p, 2.0);
    amf0::write_null(&mut p);
    raw_command(0, &p)
}

fn delete_stream() -> Vec<u8> {
    let mut p = Vec::new();
    amf0::write_string(&mut p, "deleteStream");
    amf0::write_number(&mut p, 0.0);
    amf0::write_null(&mut p);
    amf0::write_number(&mut p, 1.0);
    raw_command(0, &p)
}

fn play_payload(name: &str) -> Vec<u8> {
    let mut p = Vec::new();
    amf0::write_string(&mut p, "play");
    amf0::write_number(&mut p, 3.0);
    amf0::write_null(&mut p);
    amf0::write_string(&mut p, name);
    p
}

/// Metadata, both codec headers and `frames` video frames (the first a keyframe), on stream 1.
fn media(frames: &[Bytes]) -> Vec<u8> {
    let mut out = BytesMut::new();
    let data = set_data_frame();
    chunk::encode_message(128, 5, 0, chunk::MSG_DATA_AMF0, 1, &data, &mut out);
    chunk::encode_message(128, 6, 0, chunk::MSG_VIDEO, 1, AVC_HEADER, &mut out);
    chunk::encode_message(128, 4, 0, chunk::MSG_AUDIO, 1, AAC_HEADER, &mut out);
    for (i, f) in frames.iter().enumerate() {
        let ts = 40 * i as u32;
        chunk::encode_message(128, 6, ts, chunk::MSG_VIDEO, 1, f, &mut out);
    }
    out.to_vec()
}

fn frames(n: u32, len: usize) -> Vec<Bytes> {
    (0..n).map(|i| video_frame(i == 0, i, len)).collect()
}

/// A raw client that sent `connect` (accepted: no on_connect in these configs).
fn raw_connected(h: &mut H, id: ClientId) {
    h.add(id, true);
    h.input(id, &raw_command(0, &connect_payload("live")));
    h.pump();
    assert!(
        h.c(id).received.iter().any(|r| matches!(
            &r.msg,
            rml_rtmp::messages::RtmpMessage::Amf0Command { command_name, .. }
                if command_name == "_result"
        )),
        "connect not answered"
    );
}

fn video_payloads(c: &TestClient) -> Vec<Bytes> {
    c.video().into_iter().map(|(_, b)| b).collect()
}

fn publish_server() -> Rc<ServerConfig> {
    server_with(&[], &[("on_publish", &[ON_PUBLISH])])
}

// ---------------------------------------------------------------------------------------------
// on_publish

#[test]
fn publish_waits_for_on_publish_which_gets_one_post_with_the_c_module_fields() {
    let mut h = H::new(publish_server());
    assert!(h.connect(1, "live"));
    assert!(h.take_calls().is_empty(), "no on_connect configured");
    assert!(!h.publish(1, "cam?key=abc"));
    assert!(!h.c(1).has_code("NetStream.Publish.Start"));
    assert_eq!(h.publisher_of("cam"), None);
    assert!(h.is_open(1));

    let call = h.only_call();
    assert_eq!(call.url.host, "127.0.0.1");
    assert_eq!(call.url.port, 9);
    assert!(!call.url.is_tls());
    assert_eq!(call.timeout_ms, 10_000, "netcall_timeout default");
    assert!(call.label.contains("on_publish"), "{}", call.label);
    assert!(call.label.contains("live/cam"), "{}", call.label);
    let req = parse_request(&call);
    assert_eq!(req.method, "POST");
    assert_eq!(req.path, "/auth");
    assert_eq!(req.header("Host"), Some("127.0.0.1:9"));
    assert_eq!(
        req.header("Content-Type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(
        req.keys(),
        [
            "app", "flashver", "swfurl", "tcurl", "pageurl", "addr", "clientid", "call", "name",
            "type", "key"
        ]
    );
    assert_eq!(req.field("app"), Some("live"));
    assert_eq!(req.field("flashver"), Some("WIN 23,0,0,207"));
    assert_eq!(req.field("addr"), Some("127.0.0.1"));
    assert_eq!(req.field("clientid"), Some("1"));
    assert_eq!(req.field("call"), Some("publish"));
    assert_eq!(req.field("name"), Some("cam"));
    assert_eq!(req.field("type"), Some("live"));
    assert_eq!(req.field("key"), Some("abc"));

    // Time passing does not answer for the callback.
    h.now += 3_000;
    h.tick(1);
    assert!(!h.c(1).has_code("NetStream.Publish.Start"));
    h.assert_no_client_errors();
}

#[test]
fn notify_method_get_puts_the_form_in_the_query() {
    let server = server_with(
        &[],
        &[
            ("on_publish", &["http://auth.example:8080/cb?secret=s"]),
            ("notify_method", &["get"]),
        ],
    );
    let mut h = H::new(server);
    assert!(h.connect(1, "live"));
    assert!(!h.publish(1, "cam?key=abc"));
    let call = h.only_call();
    assert_eq!(call.url.host, "auth.example");
    let req = parse_request(&call);
    assert_eq!(req.method, "GET");
    assert_eq!(req.path, "/cb");
    assert_eq!(req.header("Content-Length"), None);
    assert_eq!(req.fields[0], ("secret".to_string(), "s".to_string()));
    assert_eq!(req.field("call"), Some("publish"));
    assert_eq!(req.field("name"), Some("cam"));
    assert_eq!(req.field("key"), Some("abc"));
}

#[test]
fn netcall_timeout_and_buffer_reach_the_call() {
    let server = server_with(
        &[("netcall_timeout", &["3s"]), ("netcall_buffer", &["64k"])],
        &[("on_publish", &[ON_PUBLISH])],
    );
    let mut h = H::new(server);
    assert!(h.connect(1, "live"));
    h.publish(1, "cam");
    let call = h.only_call();
    assert_eq!(call.timeout_ms, 3_000);
    assert_eq!(call.head_limit, 64 * 1024);
}

#[test]
fn on_publish_200_starts_publishing_and_delivers_media_sent_while_waiting() {
    let mut h = H::new(publish_server());
    h.player(2, "k");
    raw_connected(&mut h, 1);
    let sent = frames(3, 300);
    // createStream, publish and media in one read, as librtmp-style encoders send them.
    let mut read = create_stream();
    read.extend(raw_command(1, &publish_payload("k")));
    read.extend(media(&sent));
    h.input(1, &read);
    h.pump();
    let call = h.only_call();
    assert!(!h.c(1).has_code("NetStream.Publish.Start"));
    assert_eq!(h.publisher_of("k"), None);
    assert!(video_payloads(h.c(2)).is_empty());

    h.answer(call.token, status(200));
    assert!(h.c(1).has_code("NetStream.Publish.Start"), "{:?}", h.logs);
    assert_eq!(h.publisher_of("k"), Some(1));
    let stats = h
        .worker
        .hub()
        .stream_stats(&StreamKey::new("live", "k"))
        .unwrap();
    assert_eq!(
        stats.video_frames, 4,
        "header and all frames held while waiting"
    );
    assert_eq!(stats.audio_frames, 1);
    assert_eq!(h.c(2).media_kinds(), ["meta", "vh", "ah", "v", "v", "v"]);
    assert_eq!(video_payloads(h.c(2))[1..], sent[..]);
    // A player joining now gets the GOP cache too.
    h.player(3, "k");
    assert_eq!(video_payloads(h.c(3))[1..], sent[..]);
    assert!(h.is_open(1));
    assert!(h
        .logs
        .iter()
        .any(|l| l.level == LogLevel::Info && l.text.contains("allowed")));
    h.assert_no_client_errors();
}

#[test]
fn media_arriving_in_later_reads_while_waiting_is_delivered_after_the_yes() {
    let mut h = H::new(publish_server());
    raw_connected(&mut h, 1);
    let mut read = create_stream();
    read.extend(raw_command(1, &publish_payload("k")));
    h.input(1, &read);
    let call = h.only_call();
    let sent = frames(4, 500);
    let bytes = media(&sent);
    // Three reads while waiting, split mid-chunk.
    for piece in bytes.chunks(bytes.len() / 3 + 1) {
        h.input(1, piece);
    }
    assert!(h.take_calls().is_empty());
    assert_eq!(h.publisher_of("k"), None);
    h.answer(call.token, status(204));
    h.player(2, "k");
    assert_eq!(
        h.c(2).media_kinds(),
        ["meta", "vh", "ah", "v", "v", "v", "v"]
    );
    assert_eq!(video_payloads(h.c(2))[1..], sent[..]);
}

#[test]
fn on_publish_403_denies_closes_and_publishes_nothing() {
    let mut h = H::new(publish_server());
    h.player(2, "k");
    raw_connected(&mut h, 1);
    let mut read = create_stream();
    read.extend(raw_command(1, &publish_payload("k")));
    read.extend(media(&frames(2, 200)));
    h.input(1, &read);
    let call = h.only_call();
    h.answer(call.token, status(403));

    let c = h.c(1);
    assert!(c
        .statuses()
        .contains(&("error".to_string(), "NetStream.Publish.Denied".to_string())));
    assert!(!c.has_code("NetStream.Publish.Start"));
    let (_, mode, _) = h.close_of(1).expect("denied publisher not closed");
    assert_eq!(*mode, CloseMode::AfterFlush);
    assert!(!h.is_open(1));
    assert_eq!(h.publisher_of("k"), None);
    assert!(h
        .worker
        .hub()
        .stream_stats(&StreamKey::new("live", "k"))
        .is_none_or(|s| s.video_frames == 0));
    assert!(h.c(2).media_kinds().is_empty());
    assert!(!h
        .c(2)
        .user_controls()
        .contains(&rml_rtmp::messages::UserControlEventType::StreamEof));
    assert!(h.is_open(2));
    assert!(
        h.warns().iter().any(|w| w.contains("denied")),
        "{:?}",
        h.logs
    );
    // Nothing was published, so there is nothing to be done with.
    assert!(h.take_calls().is_empty());
}

#[test]
fn on_publish_transport_error_denies_and_closes() {
    let mut h = H::new(publish_server());
    assert!(h.connect(1, "live"));
    assert!(!h.publish(1, "k"));
    let call = h.only_call();
    h.answer(call.token, timed_out());
    assert!(h.c(1).has_code("NetStream.Publish.Denied"));
    assert!(!h.c(1).has_code("NetStream.Publish.Start"));
    assert!(h.close_of(1).is_some());
    assert_eq!(h.publisher_of("k"), None);
    assert!(
        h.warns().iter().any(|w| w.contains("timed out")),
        "{:?}",
        h.logs
    );
    // The name is free for the next publisher.
    h.calls.clear();
    assert!(h.connect(3, "live"));
    h.publish(3, "k");
    let call = h.only_call();
    h.answer(call.token, status(200));
    assert_eq!(h.publisher_of("k"), Some(3));
}

#[test]
fn on_publish_302_location_publishes_under_the_new_name() {
    let server = server_with(
        &[],
        &[
            ("on_publish", &[ON_PUBLISH]),
            ("on_publish_done", &["http://127.0.0.1:9/done"]),
        ],
    );
    let mut h = H::new(server);
    h.player(2, "newname");
    assert!(h.connect(1, "live"));
    assert!(!h.publish(1, "cam?key=abc"));
    let call = h.only_call();
    h.answer(call.token, redirect("newname"));
    assert!(h.c(1).has_code("NetStream.Publish.Start"));
    assert_eq!(h.publisher_of("newname"), Some(1));
    assert_eq!(h.publisher_of("cam"), None);
    let f = video_frame(true, 9, 150);
    h.send_video(1, 0, Bytes::from_static(AVC_HEADER));
    h.send_video(1, 40, f.clone());
    assert_eq!(video_payloads(h.c(2)), [Bytes::from_static(AVC_HEADER), f]);
    // The end call names the stream that was published, with the client's args kept.
    h.stop_publishing(1);
    let req = parse_request(&h.only_call());
    assert_eq!(req.field("call"), Some("publish_done"));
    assert_eq!(req.field("name"), Some("newname"));
    assert_eq!(req.field("key"), Some("abc"));
    h.assert_no_client_errors();
}

#[test]
fn on_publish_redirect_with_a_leading_slash_and_new_args() {
    let server = server_with(
        &[],
        &[
            ("on_publish", &[ON_PUBLISH]),
            ("on_publish_done", &["http://127.0.0.1:9/done"]),
        ],
    );
    let mut h = H::new(server);
    assert!(h.connect(1, "live"));
    h.publish(1, "cam?key=abc");
    let call = h.only_call();
    h.answer(call.token, redirect("/other?sig=1"));
    assert_eq!(h.publisher_of("other"), Some(1));
    h.stop_publishing(1);
    let req = parse_request(&h.only_call());
    assert_eq!(req.field("name"), Some("other"));
    assert_eq!(req.field("sig"), Some("1"));
    assert_eq!(req.field("key"), None);
}

#[test]
fn on_publish_redirect_to_a_path_traversal_name_is_denied() {
    let mut h = H::new(publish_server());
    assert!(h.connect(1, "live"));
    h.publish(1, "cam");
    let call = h.only_call();
    h.answer(call.token, redirect("../../etc/x"));
    assert!(h.c(1).has_code("NetStream.Publish.Denied"));
    assert!(h.close_of(1).is_some());
    assert_eq!(h.publisher_of("cam"), None);
    assert_eq!(h.worker.hub().registry().len(), 0);
}

#[test]
fn on_publish_redirect_to_rtmp_publishes_locally_and_pushes_there() {
    let mut h = H::new(publish_server());
    assert!(h.connect(1, "live"));
    h.publish(1, "cam");
    let call = h.only_call();
    h.answer(call.token, redirect("rtmp://other.example/remote/key"));
    assert!(h.c(1).has_code("NetStream.Publish.Start"));
    assert_eq!(h.publisher_of("cam"), Some(1));
    let starts = |t: &str| h.logs.iter().any(|l| l.text.contains(t));
    assert!(starts("relay to rtmp://other.example/remote/key"));
    assert!(starts(
        "relay: push of \"live/cam\" to rtmp://other.example/remote/key as \"remote/key\" starts"
    ));
}

#[test]
fn two_pending_publishes_of_one_name_only_the_first_yes_wins() {
    let mut h = H::new(publish_server());
    assert!(h.connect(1, "live"));
    assert!(h.connect(2, "live"));
    h.publish(1, "k");
    h.publish(2, "k");
    let calls = h.take_calls();
    assert_eq!(calls.len(), 2);
    assert_ne!(calls[0].token, calls[1].token);
    h.answer(calls[1].token, status(200));
    assert_eq!(h.publisher_of("k"), Some(2));
    h.answer(calls[0].token, status(200));
    assert!(h.c(1).has_code("NetStream.Publish.BadName"));
    assert!(h.close_of(1).is_some());
    assert_eq!(h.publisher_of("k"), Some(2));
    assert!(h.is_open(2));
}

#[test]
fn a_second_answer_to_the_same_call_is_ignored() {
    let mut h = H::new(publish_server());
    assert!(h.connect(1, "live"));
    h.publish(1, "k");
    let call = h.only_call();
    h.answer(call.token, status(200));
    let codes = h.c(1).codes();
    let logs = h.logs.len();
    h.answer(call.token, status(403));
    h.answer(call.token + 1000, status(403));
    assert_eq!(h.c(1).codes(), codes);
    assert_eq!(h.logs.len(), logs);
    assert!(h.is_open(1));
    assert_eq!(h.publisher_of("k"), Some(1));
}

#[test]
fn pending_publish_does_not_hold_up_other_clients() {
    let mut h = H::new(publish_server());
    assert!(h.connect(1, "live"));
    h.publish(1, "a");
    let pending = h.only_call();
    assert!(h.connect(2, "live"));
    h.publish(2, "b");
    let call = h.only_call();
    h.answer(call.token, status(200));
    assert_eq!(h.publisher_of("b"), Some(2));
    assert_eq!(h.publisher_of("a"), None);
    h.answer(pending.token, status(200));
    assert_eq!(h.publisher_of("a"), Some(1));
}

// ---------------------------------------------------------------------------------------------
// Waiting clients that go away or misbehave

#[test]
fn disconnect_while_on_publish_is_pending_then_the_answer_changes_nothing() {
    let mut h = H::new(publish_server());
    assert!(h.connect(1, "live"));
    h.publish(1, "k");
    let call = h.only_call();
    h.hang_up(1);
    assert_eq!(h.worker.client_count(), 0);
    assert!(h.take_calls().is_empty(), "nothing was published or played");
    let logs = h.logs.len();
    let mut o = Outcome::default();
    h.worker
        .on_call_done(call.token, status(200), h.now, &mut o);
    assert!(o.close.is_empty() && o.wake.is_empty() && o.calls.is_empty());
    assert!(o.logs.is_empty(), "{:?}", o.logs);
    assert_eq!(h.logs.len(), logs);
    assert_eq!(h.publisher_of("k"), None);
    assert_eq!(h.worker.client_count(), 0);
    // A denial for the gone client does not close anyone either.
    assert!(h.connect(2, "live"));
    h.publish(2, "k");
    let second = h.only_call();
    h.hang_up(2);
    let mut o = Outcome::default();
    h.worker
        .on_call_done(second.token, status(403), h.now, &mut o);
    assert!(o.close.is_empty());
}

#[test]
fn disconnect_while_on_play_or_on_connect_is_pending_then_the_answer_changes_nothing() {
    let server = server_with(
        &[("on_connect", &["http://127.0.0.1:9/connect"])],
        &[("on_play", &[ON_PLAY])],
    );
    let mut h = H::new(server);
    assert!(!h.connect(1, "live"));
    let connect = h.only_call();
    h.hang_up(1);
    assert!(!h.connect(2, "live"));
    let c2 = h.only_call();
    h.answer(c2.token, status(200));
    assert!(h.accepted(2, ClientSessionEvent::ConnectionRequestAccepted));
    h.play(2, "k");
    let play = h.only_call();
    h.hang_up(2);
    h.answer(connect.token, status(200));
    h.answer(play.token, status(200));
    assert_eq!(h.worker.client_count(), 0);
    assert!(h.worker.hub().player_stats(2).is_none());
}

#[test]
fn client_sending_more_than_max_held_input_while_waiting_is_closed() {
    let mut h = H::new(publish_server());
    raw_connected(&mut h, 1);
    let mut read = create_stream();
    read.extend(raw_command(1, &publish_payload("k")));
    h.input(1, &read);
    let call = h.only_call();
    let piece = vec![0x47u8; 64 * 1024];
    let mut sent = 0;
    while h.is_open(1) && sent <= MAX_HELD_INPUT + piece.len() {
        h.input(1, &piece);
        sent += piece.len();
    }
    assert!(!h.is_open(1), "still open after {sent} bytes");
    assert!(sent > MAX_HELD_INPUT && sent <= MAX_HELD_INPUT + piece.len());
    let (_, mode, reason) = h.close_of(1).unwrap();
    assert_eq!(*mode, CloseMode::Now);
    assert!(
        reason.contains("waiting for a decision") && reason.contains(&MAX_HELD_INPUT.to_string()),
        "{reason}"
    );
    assert!(
        h.warns()
            .iter()
            .any(|w| w.contains("waiting for a decision")),
        "{:?}",
        h.logs
    );
    h.answer(call.token, status(200));
    assert_eq!(h.publisher_of("k"), None);
}

#[test]
fn input_just_under_max_held_input_is_kept_and_delivered() {
    let mut h = H::new(publish_server());
    raw_connected(&mut h, 1);
    let mut read = create_stream();
    read.extend(raw_command(1, &publish_payload("k")));
    h.input(1, &read);
    let call = h.only_call();
    let frame = video_frame(false, 1, 60_000);
    let mut one = BytesMut::new();
    chunk::encode_message(128, 6, 0, chunk::MSG_VIDEO, 1, &frame, &mut one);
    let mut head = media(&frames(1, 200));
    let n = (MAX_HELD_INPUT - head.len()) / one.len();
    for _ in 0..n {
        head.extend_from_slice(&one);
    }
    assert!(head.len() <= MAX_HELD_INPUT && head.len() + one.len() > MAX_HELD_INPUT);
    for piece in head.chunks(256 * 1024) {
        h.input(1, piece);
    }
    assert!(h.is_open(1), "{:?}", h.close_of(1));
    h.answer(call.token, status(200));
    assert!(h.is_open(1), "{:?}", h.close_of(1));
    let stats = h
        .worker
        .hub()
        .stream_stats(&StreamKey::new("live", "k"))
        .unwrap();
    assert_eq!(stats.video_frames as usize, 2 + n);
}

// ---------------------------------------------------------------------------------------------
// on_play

fn play_server() -> Rc<ServerConfig> {
    server_with(&[], &[("on_play", &[ON_PLAY])])
}

#[test]
fn on_play_request_carries_name_start_duration_reset_and_args() {
    let mut h = H::new(play_server());
    assert!(h.connect(2, "live"));
    assert!(!h.play(2, "cam?token=t1"));
    let call = h.only_call();
    assert!(call.label.contains("on_play"));
    let req = parse_request(&call);
    assert_eq!(req.path, "/play");
    assert_eq!(
        req.keys(),
        [
            "app", "flashver", "swfurl", "tcurl", "pageurl", "addr", "clientid", "call", "name",
            "start", "duration", "reset", "token"
        ]
    );
    assert_eq!(req.field("call"), Some("play"));
    assert_eq!(req.field("name"), Some("cam"));
    assert_eq!(req.field("clientid"), Some("2"));
    assert_eq!(req.field("token"), Some("t1"));
    for k in ["start", "duration", "reset"] {
        let v = req.field(k).unwrap();
        assert!(v.parse::<i64>().is_ok(), "{k}={v} is not a whole number");
    }
    assert!(matches!(req.field("reset"), Some("0" | "1")));
}

#[test]
fn raw_play_fields_follow_the_c_module_defaults() {
    let mut h = H::new(play_server());
    raw_connected(&mut h, 2);
    let mut read = create_stream();
    read.extend(raw_command(1, &play_payload("cam")));
    h.input(2, &read);
    let req = parse_request(&h.only_call());
    assert_eq!(req.field("start"), Some("-2"));
    assert_eq!(req.field("duration"), Some("-1"));
    assert_eq!(req.field("reset"), Some("0"));
}

#[test]
fn on_play_403_refuses_the_player() {
    let mut h = H::new(play_server());
    h.publisher(1, "k");
    assert!(h.connect(2, "live"));
    assert!(!h.play(2, "k"));
    let call = h.only_call();
    assert!(h.worker.hub().player_stats(2).is_none());
    h.answer(call.token, status(403));
    let c = h.c(2);
    assert!(c
        .statuses()
        .contains(&("error".to_string(), "NetStream.Play.Failed".to_string())));
    assert!(!c.has_code("NetStream.Play.Start"));
    let (_, mode, _) = h.close_of(2).expect("refused player not closed");
    assert_eq!(*mode, CloseMode::AfterFlush);
    assert!(h.worker.hub().player_stats(2).is_none());
    h.send_video(1, 0, video_frame(true, 1, 100));
    assert!(h.c(2).video().is_empty());
    assert!(h.is_open(1));
}

#[test]
fn on_play_timeout_refuses_the_player() {
    let mut h = H::new(play_server());
    assert!(h.connect(2, "live"));
    h.play(2, "k");
    let call = h.only_call();
    h.answer(call.token, timed_out());
    assert!(h.c(2).has_code("NetStream.Play.Failed"));
    assert!(h.close_of(2).is_some());
}

#[test]
fn on_play_200_plays() {
    let mut h = H::new(play_server());
    h.publisher(1, "k");
    assert!(h.connect(2, "live"));
    assert!(!h.play(2, "k"));
    let call = h.only_call();
    h.answer(call.token, status(200));
    assert!(h.accepted(2, ClientSessionEvent::PlaybackRequestAccepted));
    assert!(h.c(2).has_code("NetStream.Play.Start"));
    let f = video_frame(true, 3, 120);
    h.send_video(1, 0, Bytes::from_static(AVC_HEADER));
    h.send_video(1, 40, f.clone());
    assert_eq!(video_payloads(h.c(2)), [Bytes::from_static(AVC_HEADER), f]);
    h.assert_no_client_errors();
}

#[test]
fn on_play_302_plays_the_other_stream() {
    let mut h = H::new(play_server());
    h.publisher(1, "real");
    assert!(h.connect(2, "live"));
    h.play(2, "alias");
    let call = h.only_call();
    h.answer(call.token, redirect("real"));
    assert!(h.c(2).has_code("NetStream.Play.Start"));
    let f = video_frame(true, 3, 120);
    h.send_video(1, 0, f.clone());
    assert_eq!(video_payloads(h.c(2)), [f]);
}

#[test]
fn commands_pipelined_behind_a_pending_play_run_after_the_answer() {
    let mut h = H::new(play_server());
    h.publisher(1, "k");
    raw_connected(&mut h, 2);
    // play, then deleteStream in the same read: the stop must come after the decision.
    let mut read = create_stream();
    read.extend(raw_command(1, &play_payload("k")));
    read.extend(delete_stream());
    h.input(2, &read);
    let call = h.only_call();
    h.answer(call.token, status(200));
    assert!(h.c(2).has_code("NetStream.Play.Start"));
    assert!(
        h.worker.hub().player_stats(2).is_none(),
        "deleteStream lost"
    );
    assert!(h.is_open(2));
}

// ---------------------------------------------------------------------------------------------
// on_connect

fn connect_server() -> Rc<ServerConfig> {
    server_with(&[("on_connect", &["http://127.0.0.1:9/connect"])], &[])
}

#[test]
fn on_connect_request_has_session_fields_and_connect_args_without_name() {
    let mut h = H::new(connect_server());
    h.add(1, true);
    h.input(1, &raw_command(0, &connect_payload("live?tok=xyz")));
    h.pump();
    let req = parse_request(&h.only_call());
    assert_eq!(req.path, "/connect");
    assert_eq!(req.field("call"), Some("connect"));
    assert_eq!(req.field("app"), Some("live"));
    assert_eq!(req.field("tcurl"), Some("rtmp://localhost/live?tok=xyz"));
    assert_eq!(req.field("tok"), Some("xyz"));
    assert_eq!(req.field("name"), None);
    assert!(!h.c(1).has_code("NetConnection.Connect.Success"));
}

#[test]
fn on_connect_deny_rejects_the_connection() {
    let mut h = H::new(connect_server());
    assert!(!h.connect(1, "live"));
    assert!(h.is_open(1));
    let call = h.only_call();
    h.answer(call.token, status(401));
    let c = h.c(1);
    assert!(c.has_event(|e| matches!(e, ClientSessionEvent::ConnectionRequestRejected { .. })));
    assert!(c.has_code("NetConnection.Connect.Rejected"));
    let (_, mode, _) = h.close_of(1).expect("not closed");
    assert_eq!(*mode, CloseMode::AfterFlush);
    assert_eq!(h.worker.client_count(), 0);
    h.assert_no_client_errors();
}

#[test]
fn on_connect_timeout_rejects_the_connection() {
    let mut h = H::new(connect_server());
    assert!(!h.connect(1, "live"));
    let call = h.only_call();
    h.answer(call.token, timed_out());
    assert!(h.c(1).has_code("NetConnection.Connect.Rejected"));
    assert!(h.close_of(1).is_some());
}

#[test]
fn on_connect_allow_then_pipelined_publish_is_served() {
    let mut h = H::new(connect_server());
    h.add(1, true);
    let mut read = raw_command(0, &connect_payload("live"));
    read.extend(create_stream());
    read.extend(raw_command(1, &publish_payload("k")));
    read.extend(media(&frames(2, 100)));
    h.input(1, &read);
    let call = h.only_call();
    assert!(h.c(1).codes().is_empty());
    h.answer(call.token, status(200));
    assert!(h.c(1).has_code("NetStream.Publish.Start"), "{:?}", h.logs);
    assert_eq!(h.publisher_of("k"), Some(1));
    let stats = h
        .worker
        .hub()
        .stream_stats(&StreamKey::new("live", "k"))
        .unwrap();
    assert_eq!(stats.video_frames, 3);
}

#[test]
fn on_connect_redirect_moves_the_client_to_the_named_application() {
    // C (ngx_rtmp_notify_connect_handle): a 3xx Location replaces the application name.
    let server = conf_server_with_apps(
        &[("on_connect", &["http://127.0.0.1:9/connect"])],
        &["live", "other"],
    );
    let mut h = H::new(server);
    assert!(!h.connect(1, "live"));
    let call = h.only_call();
    h.answer(call.token, redirect("other"));
    assert!(h.accepted(1, ClientSessionEvent::ConnectionRequestAccepted));
    assert!(h.publish(1, "k"));
    assert_eq!(
        h.worker
            .hub()
            .registry()
            .publisher(&StreamKey::new("other", "k")),
        Some(1),
        "published in the wrong application"
    );
}

fn conf_server_with_apps(
    server_directives: super::super::tests::Directives,
    apps: &[&str],
) -> Rc<ServerConfig> {
    let server = super::super::tests::conf(server_directives);
    let apps = apps
        .iter()
        .map(|name| {
            let mut app = super::super::tests::conf(&[("live", &["on"])]);
            app.merge_from(&server);
            AppConfig {
                name: (*name).into(),
                settings: app.resolve(),
                recorders: Vec::new(),
            }
        })
        .collect();
    Rc::new(ServerConfig::new(0, server.resolve(), apps))
}

// ---------------------------------------------------------------------------------------------
// on_update

fn update_server(extra: super::super::tests::Directives) -> Rc<ServerConfig> {
    let mut d: Vec<(&str, &[&str])> = vec![
        ("on_update", &["http://127.0.0.1:9/u"]),
        ("notify_update_timeout", &["5s"]),
    ];
    d.extend_from_slice(extra);
    server_with(&[], &d)
}

#[test]
fn on_update_comes_every_period_with_update_publish_time_and_timestamp() {
    let mut h = H::new(update_server(&[]));
    h.publisher(1, "cam?key=abc");
    h.send_video(1, 0, Bytes::from_static(AVC_HEADER));
    h.send_video(1, 1234, video_frame(true, 1, 100));
    assert!(h.take_calls().is_empty());
    h.now += 4_999;
    let next = h.tick(1).expect("tick ended the session");
    assert!(h.take_calls().is_empty(), "update before its period");
    assert!(next <= 1, "next tick in {next} ms, update due in 1 ms");
    h.now += 1;
    let next = h.tick(1).expect("tick ended the session");
    assert!(next <= 5_000, "next tick in {next} ms");
    let call = h.only_call();
    assert!(call.label.contains("on_update"));
    let req = parse_request(&call);
    assert_eq!(req.path, "/u");
    assert_eq!(req.field("call"), Some("update_publish"));
    assert_eq!(req.field("name"), Some("cam"));
    assert_eq!(req.field("timestamp"), Some("1234"));
    let time: u64 = req.field("time").unwrap().parse().unwrap();
    assert_eq!(time, 5, "seconds since connect");
    assert_eq!(req.field("key"), Some("abc"));
    let keys = req.keys();
    let pos = |k| keys.iter().position(|x| *x == k).unwrap();
    assert!(pos("time") < pos("timestamp") && pos("timestamp") < pos("name"));
    h.answer(call.token, status(200));
    assert!(h.is_open(1));
    h.now += 5_000;
    h.tick(1);
    assert_eq!(h.take_calls().len(), 1, "second period");
}

#[test]
fn on_update_403_closes_the_publisher() {
    let mut h = H::new(update_server(&[]));
    h.publisher(1, "cam");
    h.now += 5_000;
    h.tick(1);
    let call = h.only_call();
    h.answer(call.token, status(403));
    let (_, mode, reason) = h.close_of(1).expect("not closed");
    assert_eq!(*mode, CloseMode::Now);
    assert!(reason.contains("on_update"), "{reason}");
    assert_eq!(h.publisher_of("cam"), None);
}

#[test]
fn on_update_transport_error_keeps_the_session_unless_strict() {
    let mut h = H::new(update_server(&[]));
    h.publisher(1, "cam");
    h.now += 5_000;
    h.tick(1);
    let call = h.only_call();
    h.answer(call.token, timed_out());
    assert!(h.is_open(1));
    assert_eq!(h.publisher_of("cam"), Some(1));
    h.now += 5_000;
    h.tick(1);
    assert_eq!(h.take_calls().len(), 1, "updates go on");

    let mut h = H::new(update_server(&[("notify_update_strict", &["on"])]));
    h.publisher(1, "cam");
    h.now += 5_000;
    h.tick(1);
    let call = h.only_call();
    h.answer(call.token, timed_out());
    assert!(h.close_of(1).is_some());
    assert_eq!(h.publisher_of("cam"), None);
}

#[test]
fn on_update_for_a_player_is_update_play() {
    let mut h = H::new(update_server(&[]));
    h.publisher(1, "cam");
    assert!(h.connect(2, "live"));
    h.now += 2_000;
    assert!(h.play(2, "cam"));
    h.now += 3_000;
    h.tick(1);
    let call = h.only_call();
    assert_eq!(parse_request(&call).field("call"), Some("update_publish"));
    h.tick(2);
    assert!(
        h.take_calls().is_empty(),
        "player's period starts at its play"
    );
    h.now += 2_000;
    h.tick(2);
    let req = parse_request(&h.only_call());
    assert_eq!(req.field("call"), Some("update_play"));
    assert_eq!(req.field("name"), Some("cam"));
    assert_eq!(req.field("clientid"), Some("2"));
}

#[test]
fn on_update_time_counts_from_the_publish_not_from_the_connect() {
    // C: `time` is `ngx_cached_time->sec - ctx->start`, and `ctx->start` is set by
    // ngx_rtmp_notify_init when the publish (or play) starts.
    let mut h = H::new(update_server(&[]));
    assert!(h.connect(1, "live"));
    h.now += 2_000;
    assert!(h.publish(1, "cam"));
    h.now += 5_000;
    h.tick(1);
    let req = parse_request(&h.only_call());
    assert_eq!(req.field("call"), Some("update_publish"));
    assert_eq!(req.field("time"), Some("5"), "seconds since the publish");
}

#[test]
fn on_update_is_not_sent_again_while_the_previous_one_is_unanswered() {
    // C schedules the next update from the answer (ngx_rtmp_notify_update_handle adds the
    // timer), so a slow callback never has two updates of one session in flight.
    let mut h = H::new(update_server(&[]));
    h.publisher(1, "cam");
    h.now += 5_000;
    h.tick(1);
    let first = h.only_call();
    h.now += 5_000;
    h.tick(1);
    assert!(
        h.take_calls().is_empty(),
        "a second update while the first is unanswered"
    );
    h.now += 1_000;
    h.answer(first.token, status(200));
    h.now += 5_000;
    h.tick(1);
    assert_eq!(h.take_calls().len(), 1);
}

#[test]
fn on_update_stops_after_unpublish() {
    let mut h = H::new(update_server(&[]));
    h.publisher(1, "cam");
    h.stop_publishing(1);
    h.take_calls();
    h.now += 5_000;
    h.tick(1);
    h.now += 5_000;
    h.tick(1);
    assert!(h.take_calls().is_empty(), "{:?}", labels(&h.calls));
    assert!(h.is_open(1));
}

#[test]
fn without_on_update_ticks_make_no_calls() {
    let mut h = H::new(server_with(&[], &[("notify_update_timeout", &["1s"])]));
    h.publisher(1, "cam");
    for _ in 0..5 {
        h.now += 1_000;
        h.tick(1);
    }
    assert!(h.take_calls().is_empty());
}

// ---------------------------------------------------------------------------------------------
// End notifications

fn done_server() -> Rc<ServerConfig> {
    server_with(
        &[("on_disconnect", &["http://127.0.0.1:9/disconnect"])],
        &[
            ("on_publish_done", &["http://127.0.0.1:9/publish_done"]),
            ("on_play_done", &["http://127.0.0.1:9/play_done"]),
            ("on_done", &["http://127.0.0.1:9/done"]),
        ],
    )
}

#[test]
fn unpublish_sends_on_publish_done_then_on_done_with_the_name() {
    let mut h = H::new(done_server());
    h.publisher(1, "cam?key=abc");
    assert!(h.take_calls().is_empty());
    h.stop_publishing(1);
    let calls = h.take_calls();
    assert_eq!(calls.len(), 2, "{:?}", labels(&calls));
    let a = parse_request(&calls[0]);
    let b = parse_request(&calls[1]);
    assert_eq!(
        (a.path.as_str(), a.field("call")),
        ("/publish_done", Some("publish_done"))
    );
    assert_eq!((b.path.as_str(), b.field("call")), ("/done", Some("done")));
    for r in [&a, &b] {
        assert_eq!(r.field("name"), Some("cam"));
        assert_eq!(r.field("app"), Some("live"));
        assert_eq!(r.field("key"), Some("abc"));
        assert_eq!(r.field("clientid"), Some("1"));
    }
    // Their answers change nothing, whatever they are.
    h.answer(calls[0].token, status(500));
    h.answer(calls[1].token, timed_out());
    assert!(h.is_open(1));
    assert!(h.close_of(1).is_none());
    // Only the failure is worth a warning.
    let warns = h.warns();
    assert_eq!(warns.len(), 1, "{warns:?}");
    assert!(warns[0].contains("on_done") && warns[0].contains("timed out"));
    // Disconnecting now only says disconnect.
    h.hang_up(1);
    let req = parse_request(&h.only_call());
    assert_eq!(req.field("call"), Some("disconnect"));
    assert_eq!(req.field("name"), None);
}

#[test]
fn publisher_disconnect_sends_publish_done_done_and_disconnect() {
    let mut h = H::new(done_server());
    h.publisher(1, "cam");
    h.hang_up(1);
    let calls = h.take_calls();
    let kinds: Vec<String> = calls
        .iter()
        .map(|c| parse_request(c).field("call").unwrap().to_string())
        .collect();
    assert_eq!(kinds, ["publish_done", "done", "disconnect"]);
    for c in &calls {
        h.answer(c.token, status(200));
    }
    assert_eq!(h.worker.client_count(), 0);
}

#[test]
fn player_leaving_sends_on_play_done_and_on_done() {
    let mut h = H::new(done_server());
    h.publisher(1, "cam");
    h.player(2, "cam?t=1");
    assert!(h.take_calls().is_empty());
    h.stop_playback(2);
    let calls = h.take_calls();
    let reqs: Vec<Req> = calls.iter().map(parse_request).collect();
    assert_eq!(reqs.len(), 2, "{:?}", labels(&calls));
    assert_eq!(reqs[0].field("call"), Some("play_done"));
    assert_eq!(reqs[1].field("call"), Some("done"));
    for r in &reqs {
        assert_eq!(r.field("name"), Some("cam"));
        assert_eq!(r.field("clientid"), Some("2"));
        assert_eq!(r.field("t"), Some("1"));
    }
    assert!(h.is_open(2));
    // The publisher is untouched.
    assert_eq!(h.publisher_of("cam"), Some(1));
}

#[test]
fn refused_publish_sends_no_done_calls() {
    let server = server_with(
        &[],
        &[
            ("on_publish", &[ON_PUBLISH]),
            ("on_publish_done", &["http://127.0.0.1:9/publish_done"]),
            ("on_done", &["http://127.0.0.1:9/done"]),
        ],
    );
    let mut h = H::new(server);
    assert!(h.connect(1, "live"));
    h.publish(1, "cam");
    let call = h.only_call();
    h.answer(call.token, status(403));
    assert!(h.close_of(1).is_some());
    assert!(h.take_calls().is_empty(), "{:?}", labels(&h.calls));
}
