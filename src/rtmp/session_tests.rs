//! Session tests against an independent RTMP client (`rml_rtmp`), in memory, with the test
//! acting as the application layer (answering `Connect` / `Publish` / `Play` events).

use bytes::{BufMut, Bytes, BytesMut};
use rml_rtmp::chunk_io::ChunkDeserializer;
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::messages::{RtmpMessage as RmlMessage, UserControlEventType};
use rml_rtmp::rml_amf0::Amf0Value as RmlAmf;
use rml_rtmp::sessions::{
    ClientSession, ClientSessionConfig, ClientSessionError, ClientSessionEvent,
    ClientSessionResult, PublishRequestType, StreamMetadata,
};
use rml_rtmp::time::RtmpTimestamp;

use super::*;
use crate::rtmp::amf0;

const T0: u64 = 500_000;

/// One server [`Session`] and one rml client wired back to back.
struct Pair {
    session: Session,
    hs: Option<Handshake>,
    client: Option<ClientSession>,
    client_config: ClientSessionConfig,
    raw: ChunkDeserializer,
    to_server: Vec<u8>,
    /// Decisions the session asked for (the test answers them).
    events: Vec<SessionEvent>,
    error: Option<SessionError>,
    client_events: Vec<ClientSessionEvent>,
    received: Vec<(u32, RmlMessage)>,
    client_errors: Vec<String>,
    now: u64,
}

impl Pair {
    fn new(cfg: SessionConfig) -> Self {
        Self::with_client(cfg, ClientSessionConfig::new())
    }

    fn with_client(cfg: SessionConfig, client_config: ClientSessionConfig) -> Self {
        let mut seed = 7u8;
        let mut random = |b: &mut [u8]| {
            for x in b {
                seed = seed.wrapping_mul(31).wrapping_add(17);
                *x = seed;
            }
        };
        let mut hs = Handshake::new(PeerType::Client);
        let p0p1 = hs.generate_outbound_p0_and_p1().unwrap();
        Pair {
            session: Session::new(cfg, T0, &mut random),
            hs: Some(hs),
            client: None,
            client_config,
            raw: ChunkDeserializer::new(),
            to_server: p0p1,
            events: Vec::new(),
            error: None,
            client_events: Vec::new(),
            received: Vec::new(),
            client_errors: Vec::new(),
            now: T0,
        }
    }

    /// Delivers `bytes` to the server session now.
    fn send_raw(&mut self, bytes: &[u8]) -> Result<(), SessionError> {
        self.session.on_input(bytes, self.now, &mut self.events)
    }

    fn pump(&mut self) {
        for _ in 0..1000 {
            let mut progress = false;
            if !self.to_server.is_empty() {
                let bytes = std::mem::take(&mut self.to_server);
                if let Err(e) = self.send_raw(&bytes) {
                    self.error = Some(e);
                }
                progress = true;
            }
            if let Some(out) = self.session.take_output() {
                self.deliver(&out);
                progress = true;
            }
            if !progress {
                return;
            }
        }
        panic!("pump did not settle");
    }

    fn deliver(&mut self, bytes: &[u8]) {
        if let Some(hs) = self.hs.as_mut() {
            match hs.process_bytes(bytes).expect("client handshake") {
                HandshakeProcessResult::InProgress { response_bytes } => {
                    self.to_server.extend(response_bytes);
                }
                HandshakeProcessResult::Completed {
                    response_bytes,
                    remaining_bytes,
                } => {
                    self.to_server.extend(response_bytes);
                    self.hs = None;
                    let (c, _) = ClientSession::new(self.client_config.clone()).unwrap();
                    self.client = Some(c);
                    self.deliver(&remaining_bytes);
                }
            }
            return;
        }
        if bytes.is_empty() {
            return;
        }
        let mut input = bytes;
        while let Some(p) = self.raw.get_next_message(input).expect("raw decode") {
            let msg = p.to_rtmp_message().expect("raw message");
            if let RmlMessage::SetChunkSize { size } = msg {
                self.raw.set_max_chunk_size(size as usize).unwrap();
            }
            self.received.push((p.timestamp.value, msg));
            input = &[];
        }
        let r = self.client().handle_input(bytes);
        self.absorb(r);
    }

    fn absorb(&mut self, r: Result<Vec<ClientSessionResult>, ClientSessionError>) {
        match r {
            Ok(v) => v.into_iter().for_each(|x| self.absorb_one(Ok(x))),
            Err(e) => self.client_errors.push(format!("{e:?}")),
        }
    }

    fn absorb_one(&mut self, r: Result<ClientSessionResult, ClientSessionError>) {
        match r {
            Ok(ClientSessionResult::OutboundResponse(p)) => self.to_server.extend(p.bytes),
            Ok(ClientSessionResult::RaisedEvent(e)) => self.client_events.push(e),
            Ok(ClientSessionResult::UnhandleableMessageReceived(_)) => {}
            Err(e) => self.client_errors.push(format!("{e:?}")),
        }
    }

    fn client(&mut self) -> &mut ClientSession {
        self.client.as_mut().expect("handshake not done")
    }

    fn take_events(&mut self) -> Vec<SessionEvent> {
        std::mem::take(&mut self.events)
    }

    /// Handshake + connect, accepted.
    fn connected(cfg: SessionConfig) -> Self {
        let mut p = Pair::new(cfg);
        p.pump();
        let r = p.client().request_connection("live".into());
        p.absorb_one(r);
        p.pump();
        assert!(matches!(p.take_events()[..], [SessionEvent::Connect(_)]));
        p.session.accept_connect();
        p.pump();
        assert!(p
            .client_events
            .contains(&ClientSessionEvent::ConnectionRequestAccepted));
        p
    }

    fn publishing(cfg: SessionConfig) -> Self {
        let mut p = Pair::connected(cfg);
        let r = p
            .client()
            .request_publishing("k".into(), PublishRequestType::Live);
        p.absorb_one(r);
        p.pump();
        assert!(matches!(
            p.take_events()[..],
            [SessionEvent::Publish { .. }]
        ));
        p.session.accept_publish("k");
        p.pump();
        assert!(p
            .client_events
            .contains(&ClientSessionEvent::PublishRequestAccepted));
        p
    }

    fn codes(&self) -> Vec<(String, String)> {
        self.received
            .iter()
            .filter_map(|(_, m)| match m {
                RmlMessage::Amf0Command {
                    command_name,
                    additional_arguments,
                    ..
                } if command_name == "onStatus" || command_name == "_error" => {
                    match additional_arguments.first() {
                        Some(RmlAmf::Object(o)) => {
                            let get = |k: &str| match o.get(k) {
                                Some(RmlAmf::Utf8String(s)) => s.clone(),
                                _ => String::new(),
                            };
                            Some((get("level"), get("code")))
                        }
                        _ => None,
                    }
                }
                _ => None,
            })
            .collect()
    }

    fn user_controls(&self) -> Vec<UserControlEventType> {
        self.received
            .iter()
            .filter_map(|(_, m)| match m {
                RmlMessage::UserControl { event_type, .. } => Some(event_type.clone()),
                _ => None,
            })
            .collect()
    }
}

fn cfg() -> SessionConfig {
    SessionConfig::default()
}

fn command(payload: &[u8], stream_id: u32) -> Vec<u8> {
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

fn create_stream_payload() -> Vec<u8> {
    let mut p = Vec::new();
    amf0::write_string(&mut p, "createStream");
    amf0::write_number(&mut p, 9.0);
    amf0::write_null(&mut p);
    p
}

#[test]
fn handshake_then_connect_asks_the_application_layer() {
    let mut p = Pair::new(cfg());
    p.pump();
    assert!(p.hs.is_none(), "handshake did not complete");
    assert!(p.events.is_empty());
    let r = p.client().request_connection("live".into());
    p.absorb_one(r);
    p.pump();
    match &p.take_events()[..] {
        [SessionEvent::Connect(req)] => {
            assert_eq!(req.app, "live");
            assert_eq!(req.object_encoding, 0.0);
        }
        other => panic!("{other:?}"),
    }
    // Nothing is sent until the application layer decides.
    assert!(p.received.is_empty());
    assert!(p.error.is_none());
}

#[test]
fn accepted_connect_sends_window_bandwidth_chunk_size_then_result() {
    let c = SessionConfig {
        ack_window: 1_234_567,
        chunk_size: 60_000,
        ..cfg()
    };
    let p = Pair::connected(c);
    let head: Vec<&RmlMessage> = p.received.iter().take(4).map(|(_, m)| m).collect();
    assert!(matches!(
        head[0],
        RmlMessage::WindowAcknowledgement { size: 1_234_567 }
    ));
    assert!(matches!(
        head[1],
        RmlMessage::SetPeerBandwidth {
            size: 1_234_567,
            ..
        }
    ));
    assert!(matches!(head[2], RmlMessage::SetChunkSize { size: 60_000 }));
    match head[3] {
        RmlMessage::Amf0Command {
            command_name,
            transaction_id,
            additional_arguments,
            ..
        } => {
            assert_eq!(command_name, "_result");
            assert_eq!(*transaction_id, 1.0);
            let Some(RmlAmf::Object(info)) = additional_arguments.first() else {
                panic!("no info object");
            };
            assert_eq!(
                info.get("code"),
                Some(&RmlAmf::Utf8String("NetConnection.Connect.Success".into()))
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(p.client_errors.is_empty(), "{:?}", p.client_errors);
}

#[test]
fn rejected_connect_sends_error_and_ignores_later_input() {
    let mut p = Pair::new(cfg());
    p.pump();
    let r = p.client().request_connection("nope".into());
    p.absorb_one(r);
    p.pump();
    p.take_events();
    p.session.reject_connect("Application not found.");
    p.pump();
    assert!(p.client_events.iter().any(|e| matches!(
        e,
        ClientSessionEvent::ConnectionRequestRejected { description } if description == "Application not found."
    )));
    // Closing: further commands produce neither events nor errors nor output.
    assert!(p.send_raw(&command(&create_stream_payload(), 0)).is_ok());
    assert!(p.events.is_empty());
    assert!(p.session.take_output().is_none());
}

#[test]
fn connect_reply_states_our_enhanced_caps_only_to_enhanced_clients() {
    for enhanced in [false, true] {
        let mut p = Pair::new(cfg());
        p.pump();
        let mut c = Vec::new();
        amf0::write_string(&mut c, "connect");
        amf0::write_number(&mut c, 1.0);
        amf0::write_object_start(&mut c);
        amf0::write_key(&mut c, "app");
        amf0::write_string(&mut c, "live");
        if enhanced {
            amf0::write_key(&mut c, "fourCcList");
            let list = amf0::Amf0Value::StrictArray(vec![amf0::Amf0Value::String("hvc1".into())]);
            amf0::encode(&list, &mut c);
        }
        amf0::write_object_end(&mut c);
        p.send_raw(&command(&c, 0)).unwrap();
        match &p.take_events()[..] {
            [SessionEvent::Connect(req)] => assert_eq!(req.caps.announced, enhanced),
            other => panic!("{other:?}"),
        }
        p.session.accept_connect();
        let out = p.session.take_output().unwrap();
        let has = |needle: &[u8]| out.windows(needle.len()).any(|w| w == needle);
        assert_eq!(has(b"fourCcList"), enhanced);
        assert_eq!(has(b"videoFourCcInfoMap"), enhanced);
        assert_eq!(has(b"capsEx"), enhanced);
        assert!(has(b"NetConnection.Connect.Success"));
    }
}

#[test]
fn command_before_connect_is_an_error() {
    let mut p = Pair::new(cfg());
    p.pump();
    let err = p
        .send_raw(&command(&create_stream_payload(), 0))
        .unwrap_err();
    assert!(matches!(err, SessionError::NotConnected(_)), "{err}");
    assert_eq!(err.to_string(), "command before connect");
}

#[test]
fn command_while_connect_is_pending_waits_for_the_answer() {
    let mut p = Pair::new(cfg());
    p.pump();
    let r = p.client().request_connection("live".into());
    p.absorb_one(r);
    p.pump();
    assert_eq!(p.take_events().len(), 1);
    // Pipelined behind connect: buffered, not an error, not decoded yet.
    assert!(p.send_raw(&command(&create_stream_payload(), 0)).is_ok());
    assert!(p.take_events().is_empty());
    let before = p.received.len();
    p.session.accept_connect();
    p.session.resume(&mut p.events).unwrap();
    p.pump();
    // The connect _result and then the createStream _result both arrive.
    let results = p.received[before..]
        .iter()
        .filter(|(_, m)| matches!(m, RmlMessage::Amf0Command { command_name, .. } if command_name == "_result"))
        .count();
    assert_eq!(results, 2);
}

#[test]
fn second_connect_is_ignored() {
    let mut p = Pair::connected(cfg());
    let mut c = Vec::new();
    amf0::write_string(&mut c, "connect");
    amf0::write_number(&mut c, 5.0);
    amf0::write_object_start(&mut c);
    amf0::write_key(&mut c, "app");
    amf0::write_string(&mut c, "other");
    amf0::write_object_end(&mut c);
    assert!(p.send_raw(&command(&c, 0)).is_ok());
    assert!(p.events.is_empty());
}

#[test]
fn media_from_a_client_that_is_not_publishing_is_an_error() {
    let mut p = Pair::connected(cfg());
    let mut m = BytesMut::new();
    chunk::encode_message(4096, 6, 0, chunk::MSG_VIDEO, 1, &[0x17, 0], &mut m);
    let err = p.send_raw(&m).unwrap_err();
    assert!(matches!(err, SessionError::NotPublishing));
}

#[test]
fn media_while_publish_is_pending_is_dropped_quietly() {
    let mut p = Pair::connected(cfg());
    let r = p
        .client()
        .request_publishing("k".into(), PublishRequestType::Live);
    p.absorb_one(r);
    p.pump();
    assert!(matches!(
        p.take_events()[..],
        [SessionEvent::Publish { .. }]
    ));
    let mut m = BytesMut::new();
    chunk::encode_message(4096, 6, 0, chunk::MSG_VIDEO, 1, &[0x17, 0], &mut m);
    assert!(p.send_raw(&m).is_ok());
    assert!(p.events.is_empty());
}

#[test]
fn publish_event_carries_name_args_and_type() {
    let mut p = Pair::connected(cfg());
    let r = p
        .client()
        .request_publishing("cam1?token=x".into(), PublishRequestType::Append);
    p.absorb_one(r);
    p.pump();
    match &p.take_events()[..] {
        [SessionEvent::Publish { name, publish_type }] => {
            assert_eq!(name.name, "cam1");
            assert_eq!(name.args, "token=x");
            assert_eq!(publish_type, "append");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn publishing_client_media_and_metadata_become_events_byte_for_byte() {
    let mut p = Pair::publishing(cfg());
    assert!(p.session.is_publishing());
    assert_eq!(p.user_controls(), [UserControlEventType::StreamBegin]);
    assert!(p
        .codes()
        .contains(&("status".into(), "NetStream.Publish.Start".into())));
    let frame = Bytes::from((0..10_000u32).map(|i| i as u8).collect::<Vec<_>>());
    let r = p
        .client()
        .publish_video_data(frame.clone(), RtmpTimestamp::new(1234), false);
    p.absorb_one(r);
    let r = p.client().publish_audio_data(
        Bytes::from_static(&[0xaf, 1, 9]),
        RtmpTimestamp::new(1250),
        false,
    );
    p.absorb_one(r);
    let mut meta = StreamMetadata::new();
    meta.video_width = Some(1920);
    let r = p.client().publish_metadata(&meta);
    p.absorb_one(r);
    p.pump();
    let events = p.take_events();
    assert_eq!(events.len(), 3, "{events:?}");
    match &events[0] {
        SessionEvent::Media {
            type_id,
            timestamp,
            payload,
        } => {
            assert_eq!((*type_id, *timestamp), (chunk::MSG_VIDEO, 1234));
            assert_eq!(payload, &frame);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        &events[1],
        SessionEvent::Media { type_id: chunk::MSG_AUDIO, timestamp: 1250, payload } if payload[..] == [0xaf, 1, 9]
    ));
    match &events[2] {
        SessionEvent::Metadata(m) => {
            let values = amf0::decode_all(m).unwrap();
            assert_eq!(values[0].as_str(), Some("onMetaData"));
            assert_eq!(
                values[1].get("width").and_then(|v| v.as_f64()),
                Some(1920.0)
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(p.error.is_none());
}

#[test]
fn aggregate_message_is_split_into_media_events() {
    let mut p = Pair::publishing(cfg());
    let mut agg = BytesMut::new();
    for (type_id, ts, body) in [(9u8, 100u32, &[0x17u8, 1, 0][..]), (8, 120, &[0xaf, 1, 5])] {
        agg.put_u8(type_id);
        agg.put_uint(body.len() as u64, 3);
        agg.put_uint(u64::from(ts & 0xff_ffff), 3);
        agg.put_u8((ts >> 24) as u8);
        agg.put_uint(0, 3);
        agg.put_slice(body);
        agg.put_u32(body.len() as u32 + 11);
    }
    let mut m = BytesMut::new();
    chunk::encode_message(4096, 8, 5000, chunk::MSG_AGGREGATE, 1, &agg, &mut m);
    assert!(p.send_raw(&m).is_ok());
    let events = p.take_events();
    let got: Vec<(u8, u32)> = events
        .iter()
        .map(|e| match e {
            SessionEvent::Media {
                type_id, timestamp, ..
            } => (*type_id, *timestamp),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(got, [(9, 5000), (8, 5020)]);
}

#[test]
fn truncated_aggregate_is_an_error() {
    let mut p = Pair::publishing(cfg());
    let mut m = BytesMut::new();
    chunk::encode_message(
        4096,
        8,
        0,
        chunk::MSG_AGGREGATE,
        1,
        &[9, 0, 0, 50, 0],
        &mut m,
    );
    assert!(matches!(p.send_raw(&m), Err(SessionError::Chunk(_))));
}

#[test]
fn delete_stream_ends_publishing_and_the_connection_stays_usable() {
    let mut p = Pair::publishing(cfg());
    let r = p.client().stop_publishing();
    p.absorb(r);
    p.pump();
    assert!(matches!(p.take_events()[..], [SessionEvent::StreamClosed]));
    assert!(p
        .codes()
        .contains(&("status".into(), "NetStream.Unpublish.Success".into())));
    assert!(!p.session.is_publishing());
    let r = p
        .client()
        .request_publishing("k2".into(), PublishRequestType::Live);
    p.absorb_one(r);
    p.pump();
    assert!(matches!(
        p.take_events()[..],
        [SessionEvent::Publish { .. }]
    ));
}

#[test]
fn play_start_sequence_is_what_players_expect() {
    let mut p = Pair::connected(cfg());
    let r = p.client().request_playback("k".into());
    p.absorb_one(r);
    p.pump();
    assert_eq!(p.session.buffer_ms, 2000, "SetBufferLength not recorded");
    match &p.take_events()[..] {
        [SessionEvent::Play { name, .. }] => assert_eq!(name.name, "k"),
        other => panic!("{other:?}"),
    }
    let before = p.received.len();
    p.session.accept_play("k", true);
    p.pump();
    assert!(p.session.is_playing());
    assert!(p
        .client_events
        .contains(&ClientSessionEvent::PlaybackRequestAccepted));
    let after: Vec<&RmlMessage> = p.received[before..].iter().map(|(_, m)| m).collect();
    assert!(matches!(
        after[0],
        RmlMessage::UserControl {
            event_type: UserControlEventType::StreamIsRecorded,
            stream_id: Some(STREAM_ID),
            ..
        }
    ));
    assert!(matches!(
        after[1],
        RmlMessage::UserControl {
            event_type: UserControlEventType::StreamBegin,
            stream_id: Some(STREAM_ID),
            ..
        }
    ));
    let codes: Vec<String> = p.codes().into_iter().map(|(_, c)| c).collect();
    assert_eq!(codes, ["NetStream.Play.Reset", "NetStream.Play.Start"]);
    assert!(matches!(
        after.last().unwrap(),
        RmlMessage::Amf0Data { values } if values.first() == Some(&RmlAmf::Utf8String("|RtmpSampleAccess".into()))
    ));
    assert!(p.client_errors.is_empty(), "{:?}", p.client_errors);
}

#[test]
fn rejected_play_sends_an_error_status() {
    let mut p = Pair::connected(cfg());
    let r = p.client().request_playback("k".into());
    p.absorb_one(r);
    p.pump();
    p.take_events();
    p.session
        .reject_play(command::NS_PLAY_STREAM_NOT_FOUND, "No such stream.");
    p.pump();
    assert_eq!(
        p.codes(),
        [(
            "error".to_string(),
            "NetStream.Play.StreamNotFound".to_string()
        )]
    );
    assert!(!p.session.is_playing());
}

#[test]
fn status_message_and_stream_event_decode_in_an_independent_client() {
    let mut p = Pair::connected(SessionConfig {
        chunk_size: 128,
        ..cfg()
    });
    let long = "x".repeat(1000);
    let msg = p
        .session
        .status_message("status", "NetStream.Play.PublishNotify", &long);
    let eof = p.session.stream_event(false);
    p.deliver(&msg);
    p.deliver(&eof);
    assert!(p
        .codes()
        .contains(&("status".into(), "NetStream.Play.PublishNotify".into())));
    assert_eq!(
        p.user_controls().last(),
        Some(&UserControlEventType::StreamEof)
    );
    assert!(p.client_errors.is_empty(), "{:?}", p.client_errors);
}

#[test]
fn client_ping_is_answered() {
    let mut p = Pair::connected(cfg());
    let (packet, ts) = p.client().send_ping_request().unwrap();
    p.to_server.extend(packet.bytes);
    p.pump();
    assert!(p.client_events.iter().any(|e| matches!(
        e,
        ClientSessionEvent::PingResponseReceived { timestamp } if *timestamp == ts
    )));
}

#[test]
fn acknowledgement_is_sent_after_the_window_the_client_announced() {
    let mut client = ClientSessionConfig::new();
    client.window_ack_size = 5_000;
    let mut p = Pair::with_client(cfg(), client);
    p.pump();
    let r = p.client().request_connection("live".into());
    p.absorb_one(r);
    p.pump();
    p.take_events();
    p.session.accept_connect();
    p.pump();
    let r = p
        .client()
        .request_publishing("k".into(), PublishRequestType::Live);
    p.absorb_one(r);
    p.pump();
    p.session.accept_publish("k");
    p.pump();
    assert!(!p
        .client_events
        .iter()
        .any(|e| matches!(e, ClientSessionEvent::AcknowledgementReceived { .. })));
    for i in 0..3 {
        let r = p.client().publish_video_data(
            Bytes::from(vec![0x27; 2_000]),
            RtmpTimestamp::new(i),
            false,
        );
        p.absorb_one(r);
        p.pump();
    }
    let acks: Vec<u32> = p
        .client_events
        .iter()
        .filter_map(|e| match e {
            ClientSessionEvent::AcknowledgementReceived { bytes_received } => Some(*bytes_received),
            _ => None,
        })
        .collect();
    assert_eq!(acks.len(), 1, "{acks:?}");
    assert!(acks[0] >= 5_000, "{acks:?}");
}

#[test]
fn tick_closes_a_connection_without_connect_after_timeout() {
    let mut p = Pair::new(SessionConfig {
        timeout_ms: 5_000,
        ..cfg()
    });
    assert_eq!(p.session.tick(T0), TickVerdict::Continue(5_000));
    p.pump(); // the handshake completes, still no connect
    assert_eq!(p.session.tick(T0 + 4_000), TickVerdict::Continue(1_000));
    assert!(matches!(p.session.tick(T0 + 5_000), TickVerdict::Close(r) if r.contains("5000 ms")));
}

#[test]
fn tick_pings_an_idle_client_and_closes_when_unanswered() {
    let mut p = Pair::connected(SessionConfig {
        ping_ms: 10_000,
        ping_timeout_ms: 3_000,
        ..cfg()
    });
    assert_eq!(p.session.tick(T0 + 4_000), TickVerdict::Continue(6_000));
    assert!(p.session.take_output().is_none());
    assert_eq!(p.session.tick(T0 + 10_000), TickVerdict::Continue(3_000));
    let ping = p.session.take_output().expect("no ping request");
    p.deliver(&ping);
    assert_eq!(
        p.user_controls().last(),
        Some(&UserControlEventType::PingRequest)
    );
    // The client answered, but the answer has not been delivered to the server.
    assert!(!p.to_server.is_empty());
    assert_eq!(p.session.tick(T0 + 12_000), TickVerdict::Continue(1_000));
    assert!(matches!(p.session.tick(T0 + 13_000), TickVerdict::Close(_)));
}

#[test]
fn any_input_answers_a_ping() {
    let mut p = Pair::connected(SessionConfig {
        ping_ms: 10_000,
        ping_timeout_ms: 3_000,
        ..cfg()
    });
    p.now = T0 + 10_000;
    assert_eq!(p.session.tick(p.now), TickVerdict::Continue(3_000));
    p.now = T0 + 12_000;
    p.pump(); // ping out, pong back at 12 s
    assert!(p.error.is_none());
    assert_eq!(p.session.tick(T0 + 12_000), TickVerdict::Continue(10_000));
    assert_eq!(p.session.tick(T0 + 20_000), TickVerdict::Continue(2_000));
}

#[test]
fn ping_zero_disables_pings() {
    let mut p = Pair::connected(SessionConfig {
        ping_ms: 0,
        ..cfg()
    });
    for t in [T0, T0 + 1_000_000, T0 + 100_000_000] {
        assert!(matches!(p.session.tick(t), TickVerdict::Continue(ms) if ms > 0));
    }
    assert!(p.session.take_output().is_none());
}

#[test]
fn unsupported_handshake_version_is_a_clear_error() {
    let mut p = Pair::new(cfg());
    let err = p.send_raw(&[6; 1537]).unwrap_err();
    assert!(matches!(err, SessionError::Handshake(_)));
    assert!(err.to_string().contains("RTMPE"), "{err}");
    let mut p = Pair::new(cfg());
    let err = p.send_raw(&[0x16, 3, 1]).unwrap_err();
    assert!(err.to_string().contains("TLS"), "{err}");
}

#[test]
fn message_over_max_message_is_an_error() {
    let mut p = Pair::connected(SessionConfig {
        max_message: 1000,
        ..cfg()
    });
    let mut m = BytesMut::new();
    chunk::encode_message(128, 3, 0, chunk::MSG_COMMAND_AMF0, 0, &[0; 1001], &mut m);
    let err = p.send_raw(&m).unwrap_err();
    assert!(
        err.to_string().contains("exceeds max_message 1000"),
        "{err}"
    );
}

#[test]
fn too_many_chunk_streams_is_an_error() {
    let mut p = Pair::connected(SessionConfig {
        max_chunk_streams: 4,
        ..cfg()
    });
    let mut m = BytesMut::new();
    for csid in 10..20 {
        let mut body = BytesMut::new();
        body.put_u16(chunk::UC_PING_RESPONSE);
        body.put_u32(1);
        chunk::encode_message(128, csid, 0, chunk::MSG_USER_CONTROL, 0, &body, &mut m);
    }
    assert!(matches!(p.send_raw(&m), Err(SessionError::Chunk(_))));
}

#[test]
fn amf3_command_messages_are_understood() {
    let mut p = Pair::new(cfg());
    p.pump();
    let mut c = vec![0u8];
    amf0::write_string(&mut c, "connect");
    amf0::write_number(&mut c, 1.0);
    amf0::write_object_start(&mut c);
    amf0::write_key(&mut c, "app");
    amf0::write_string(&mut c, "live");
    amf0::write_key(&mut c, "objectEncoding");
    amf0::write_number(&mut c, 3.0);
    amf0::write_object_end(&mut c);
    let mut m = BytesMut::new();
    chunk::encode_message(128, 3, 0, chunk::MSG_COMMAND_AMF3, 0, &c, &mut m);
    assert!(p.send_raw(&m).is_ok());
    match &p.take_events()[..] {
        [SessionEvent::Connect(req)] => {
            assert_eq!(req.app, "live");
            assert_eq!(req.object_encoding, 3.0);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn input_split_at_every_byte_gives_the_same_events() {
    // Record the client's bytes for connect + publish + a frame, then replay byte by byte.
    let mut p = Pair::publishing(cfg());
    let r =
        p.client()
            .publish_video_data(Bytes::from(vec![0x17; 9000]), RtmpTimestamp::new(77), false);
    let ClientSessionResult::OutboundResponse(packet) = r.unwrap() else {
        panic!()
    };
    for b in packet.bytes {
        p.send_raw(&[b]).unwrap();
    }
    match &p.take_events()[..] {
        [SessionEvent::Media {
            type_id: chunk::MSG_VIDEO,
            timestamp: 77,
            payload,
        }] => assert_eq!(payload.len(), 9000),
        other => panic!("{other:?}"),
    }
}

#[test]
fn random_input_never_panics_in_any_phase() {
    let mut seed = 0x1234_5678_9abc_def0u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..300 {
        let mut p = match round % 3 {
            0 => Pair::new(cfg()),
            1 => Pair::connected(cfg()),
            _ => Pair::publishing(cfg()),
        };
        let len = (next() % 3000) as usize;
        let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        for piece in bytes.chunks(1 + (next() % 200) as usize) {
            if p.send_raw(piece).is_err() {
                break;
            }
        }
        let _ = p.session.tick(T0 + next() % 1_000_000);
    }
}

#[test]
fn handshake_phase_wakes_by_the_first_ping_when_ping_is_shorter_than_timeout() {
    let c = SessionConfig {
        timeout_ms: 60_000,
        ping_ms: 2_000,
        ..cfg()
    };
    let mut p = Pair::new(c);
    // Still before connect: the next tick must come by the ping interval, so a connect that
    // completes meanwhile gets its first ping after `ping`, not after the handshake deadline.
    assert_eq!(p.session.tick(T0), TickVerdict::Continue(2_000));
    p.pump();
    let r = p.client().request_connection("live".into());
    p.absorb_one(r);
    p.pump();
    p.session.accept_connect();
    p.pump();
    // Connected, no input for 2 s: ping now.
    assert_eq!(p.session.tick(T0 + 2_000), TickVerdict::Continue(30_000));
}
