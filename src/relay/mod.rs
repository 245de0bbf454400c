//! Relays, pure: the RTMP client side of a `push` (what to connect to and under which names, the
//! client handshake, the command sequence `connect` → `releaseStream`/`FCPublish` →
//! `createStream` → `publish`, the answers to it) and of a `pull` (`connect` → `createStream`
//! → `play`, then the origin's media, acknowledged). No sockets and no clock: the glue
//! connects, feeds what the other side sends and writes what comes out; the worker
//! (`src/server/relay.rs`, `src/server/pull.rs`) feeds a push the media of the stream's live
//! fan-out, and publishes what a pull receives.

use bytes::{Bytes, BytesMut};

use crate::conf::RelayTarget;
use crate::rtmp::amf0::{self, Amf0Value};
use crate::rtmp::chunk::{self, ChunkDecoder, ControlMessage, DecoderLimits, UserControlEvent};
use crate::rtmp::handshake::{ClientHandshake, HandshakeStatus};

/// The message stream id live media is encoded with by the fan-out
/// ([`crate::live::frame`]); a target must give the relay this id for its `publish`.
pub const MEDIA_STREAM_ID: u32 = 1;
/// Chunk stream of our commands.
const CSID_COMMAND: u32 = 3;
/// flashVer sent when the push line has no `flashVer=` (what FMLE-style encoders send).
pub const DEFAULT_FLASH_VER: &str = "FMLE/3.0 (compatible; nginx-rtmp-rs)";
/// Largest message accepted from a target (it only sends answers and control messages).
const MAX_TARGET_MESSAGE: u32 = 64 * 1024;

/// An AMF0 string `onMetaData` (type, length, text).
const ON_METADATA: &[u8] = b"\x02\x00\x0aonMetaData";

const TXN_CONNECT: f64 = 1.0;
const TXN_RELEASE: f64 = 2.0;
const TXN_FCPUBLISH: f64 = 3.0;
const TXN_CREATE_STREAM: f64 = 4.0;

/// Where and as what one stream is pushed: a `push` line applied to a published stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelaySpec {
    /// The URL as written (for log lines).
    pub url: String,
    pub host: String,
    pub port: u16,
    /// `rtmps://`: TLS to the target.
    pub tls: bool,
    /// Remote application.
    pub app: String,
    /// Remote stream name.
    pub name: String,
    pub tc_url: String,
    pub flash_ver: String,
    pub page_url: Option<String>,
    pub swf_url: Option<String>,
}

impl RelaySpec {
    /// The push line `t` for the stream `local_app/local_name`, or None when its `name=`
    /// names another stream. As the C module: the remote application is `app=`, else the URL's
    /// path, else the local one; the remote name is `playPath=`, else the rest of the URL's
    /// path, else the local name.
    pub fn for_stream(t: &RelayTarget, local_app: &str, local_name: &str) -> Option<RelaySpec> {
        if t.name.as_deref().is_some_and(|n| n != local_name) {
            return None;
        }
        let app = t
            .app
            .clone()
            .or_else(|| t.url.app.clone())
            .filter(|a| !a.is_empty())
            .unwrap_or_else(|| local_app.to_owned());
        let name = t
            .play_path
            .clone()
            .or_else(|| t.url.play_path.clone())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| local_name.to_owned());
        let host = if t.url.host.contains(':') {
            format!("[{}]", t.url.host)
        } else {
            t.url.host.clone()
        };
        let scheme = if t.url.tls { "rtmps" } else { "rtmp" };
        let tc_url = t
            .tc_url
            .clone()
            .unwrap_or_else(|| format!("{scheme}://{host}:{}/{app}", t.url.port));
        Some(RelaySpec {
            url: t.url.url.clone(),
            host: t.url.host.clone(),
            port: t.url.port,
            tls: t.url.tls,
            app,
            name,
            tc_url,
            flash_ver: t
                .flash_ver
                .clone()
                .unwrap_or_else(|| DEFAULT_FLASH_VER.to_owned()),
            page_url: t.page_url.clone(),
            swf_url: t.swf_url.clone(),
        })
    }
}

/// Why a push connection failed (the text goes to the log once).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RelayError {
    #[error("handshake failed: {0}")]
    Handshake(String),
    #[error("bad data from the target: {0}")]
    Protocol(String),
    #[error("the target refused {command}: {reason}")]
    Refused {
        command: &'static str,
        reason: String,
    },
    #[error("the target gave message stream {0}; only {MEDIA_STREAM_ID} is supported")]
    StreamId(u32),
    /// The origin says its stream ended (`NetStream.Play.Stop`, `UnpublishNotify`).
    #[error("the origin's stream ended ({0})")]
    Ended(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Handshake,
    Connecting,
    CreatingStream,
    Publishing,
    /// `play` sent (a pull), waiting for `NetStream.Play.Start`.
    Playing,
    Streaming,
}

/// What feeding target bytes led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Still setting up (or already streaming before this call).
    Pending,
    /// The target accepted `publish` just now: media may flow.
    Publishing,
    /// The origin accepted `play` just now: its media follows.
    Playing,
}

/// A message a pull received from its origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PulledMessage {
    /// Audio (8), video (9) or data (18, `onMetaData`).
    pub type_id: u8,
    pub timestamp: u32,
    pub payload: Bytes,
}

/// One relay connection's protocol state, from the first byte to `publish` (push) or `play`
/// (pull) accepted, then the answers to what the other side sends meanwhile (pings,
/// acknowledgements) and, for a pull, the media it receives.
pub struct RelayClient {
    spec: RelaySpec,
    pull: bool,
    state: State,
    handshake: ClientHandshake,
    decoder: ChunkDecoder,
    input: BytesMut,
    out: Vec<u8>,
    /// The chunk size of everything we send after the handshake (told first).
    chunk_size: u32,
    stream_id: u32,
    /// A pull's media, until [`RelayClient::take_media`].
    media: Vec<PulledMessage>,
    /// Bytes received, and when we last acknowledged them (the peer's window).
    received: u64,
    acked: u64,
    peer_window: u32,
    /// Buffer length a pull announces to its origin.
    buffer_ms: u32,
}

impl RelayClient {
    /// `chunk_size`: the one the stream's media is encoded with. `epoch_ms` and `random` for
    /// C1. The handshake's C0 C1 are ready in [`RelayClient::take_output`] at once.
    pub fn new(
        spec: RelaySpec,
        chunk_size: u32,
        epoch_ms: u32,
        random: &mut dyn FnMut(&mut [u8]),
    ) -> Self {
        let mut handshake = ClientHandshake::new(epoch_ms, random);
        let mut out = Vec::new();
        handshake.start(&mut out);
        RelayClient {
            spec,
            state: State::Handshake,
            handshake,
            decoder: ChunkDecoder::new(DecoderLimits {
                max_message: MAX_TARGET_MESSAGE,
                max_chunk_streams: chunk::DEFAULT_MAX_CHUNK_STREAMS,
            }),
            input: BytesMut::new(),
            out,
            chunk_size: chunk_size.clamp(1, chunk::MAX_CHUNK_SIZE),
            stream_id: 0,
            pull: false,
            media: Vec::new(),
            received: 0,
            acked: 0,
            peer_window: 0,
            buffer_ms: 0,
        }
    }

    /// The client of a pull: `play`s `spec.name`, announcing `buffer_ms` (`relay_buffer`), and
    /// takes media messages up to `max_message` bytes (the server's `max_message`).
    pub fn pull(
        spec: RelaySpec,
        max_message: u32,
        buffer_ms: u32,
        epoch_ms: u32,
        random: &mut dyn FnMut(&mut [u8]),
    ) -> Self {
        let mut client = RelayClient::new(spec, chunk::DEFAULT_CHUNK_SIZE, epoch_ms, random);
        client.pull = true;
        client.buffer_ms = buffer_ms;
        client.decoder = ChunkDecoder::new(DecoderLimits {
            max_message,
            max_chunk_streams: chunk::DEFAULT_MAX_CHUNK_STREAMS,
        });
        client
    }

    /// Media received since the last call (a pull's).
    pub fn take_media(&mut self) -> Vec<PulledMessage> {
        std::mem::take(&mut self.media)
    }

    pub fn spec(&self) -> &RelaySpec {
        &self.spec
    }

    /// Whether `publish` was accepted.
    pub fn is_streaming(&self) -> bool {
        self.state == State::Streaming
    }

    /// Bytes to send, if any.
    pub fn take_output(&mut self) -> Option<Bytes> {
        if self.out.is_empty() {
            None
        } else {
            Some(Bytes::from(std::mem::take(&mut self.out)))
        }
    }

    /// Consumes bytes from the target.
    pub fn feed(&mut self, data: &[u8]) -> Result<Progress, RelayError> {
        let mut data = data;
        if self.state == State::Handshake {
            let status = self
                .handshake
                .feed(data, &mut self.out)
                .map_err(|e| RelayError::Handshake(e.to_string()))?;
            match status {
                HandshakeStatus::InProgress { .. } => return Ok(Progress::Pending),
                HandshakeStatus::Done { consumed } => {
                    data = data.get(consumed..).unwrap_or_default();
                    self.send_connect();
                    self.state = State::Connecting;
                }
            }
        }
        self.input.extend_from_slice(data);
        self.received = self.received.saturating_add(data.len() as u64);
        if self.peer_window > 0 && self.received - self.acked >= u64::from(self.peer_window) {
            // The peer may wait for this before sending more (the 32-bit counter wraps).
            self.acked = self.received;
            let mut b = BytesMut::new();
            chunk::acknowledgement(&mut b, self.received as u32);
            self.out.extend_from_slice(&b);
        }
        let mut progress = Progress::Pending;
        loop {
            let msg = self
                .decoder
                .decode(&mut self.input)
                .map_err(|e| RelayError::Protocol(e.to_string()))?;
            let Some(msg) = msg else {
                return Ok(progress);
            };
            if self.on_message(msg)? {
                progress = if self.pull {
                    Progress::Playing
                } else {
                    Progress::Publishing
                };
            }
        }
    }

    /// Returns true when this message made the other side accept `publish` or `play`.
    fn on_message(&mut self, msg: chunk::RtmpMessage) -> Result<bool, RelayError> {
        match msg.type_id {
            chunk::MSG_COMMAND_AMF0 => self.on_command(&msg.payload),
            chunk::MSG_COMMAND_AMF3 => self.on_command(msg.payload.get(1..).unwrap_or_default()),
            chunk::MSG_AUDIO | chunk::MSG_VIDEO if self.pull && self.state == State::Streaming => {
                self.media.push(PulledMessage {
                    type_id: msg.type_id,
                    timestamp: msg.timestamp,
                    payload: msg.payload,
                });
                Ok(false)
            }
            chunk::MSG_DATA_AMF0 if self.pull && self.state == State::Streaming => {
                let payload = match crate::rtmp::command::strip_set_data_frame(&msg.payload) {
                    Ok(Some(meta)) => meta,
                    _ => msg.payload,
                };
                if payload.starts_with(ON_METADATA) {
                    self.media.push(PulledMessage {
                        type_id: chunk::MSG_DATA_AMF0,
                        timestamp: msg.timestamp,
                        payload,
                    });
                }
                Ok(false)
            }
            chunk::MSG_AGGREGATE if self.pull => {
                let parts = chunk::split_aggregate(&msg)
                    .map_err(|e| RelayError::Protocol(e.to_string()))?;
                let mut started = false;
                for part in parts {
                    started |= self.on_message(part)?;
                }
                Ok(started)
            }
            _ => {
                let control =
                    chunk::parse_control(&msg).map_err(|e| RelayError::Protocol(e.to_string()))?;
                match control {
                    Some(ControlMessage::UserControl(UserControlEvent::PingRequest(t))) => {
                        let mut b = BytesMut::new();
                        chunk::ping_response(&mut b, t);
                        self.out.extend_from_slice(&b);
                    }
                    Some(ControlMessage::WindowAckSize(size)) => self.peer_window = size,
                    _ => {}
                }
                Ok(false)
            }
        }
    }

    fn on_command(&mut self, payload: &[u8]) -> Result<bool, RelayError> {
        let values = amf0::decode_all(payload).map_err(|e| RelayError::Protocol(e.to_string()))?;
        let mut it = values.iter();
        let name = it.next().and_then(Amf0Value::as_str).unwrap_or_default();
        let txn = it.next().and_then(Amf0Value::as_f64).unwrap_or(0.0);
        let _command_object = it.next();
        let info = it.next();
        let reason = || describe(info);
        match (name, self.state) {
            ("_result", State::Connecting) if txn == TXN_CONNECT => {
                self.send_create_stream();
                self.state = State::CreatingStream;
                Ok(false)
            }
            ("_error", State::Connecting) if txn == TXN_CONNECT => Err(RelayError::Refused {
                command: "connect",
                reason: reason(),
            }),
            ("_result", State::CreatingStream) if txn == TXN_CREATE_STREAM => {
                let id = info.and_then(Amf0Value::as_f64).unwrap_or(0.0);
                // Stream ids are small positive integers.
                let id = if (0.0..=f64::from(u32::MAX)).contains(&id) {
                    id as u32
                } else {
                    0
                };
                if id != MEDIA_STREAM_ID {
                    return Err(RelayError::StreamId(id));
                }
                self.stream_id = id;
                if self.pull {
                    self.send_play();
                    self.state = State::Playing;
                } else {
                    self.send_publish();
                    self.state = State::Publishing;
                }
                Ok(false)
            }
            ("_error", State::CreatingStream) if txn == TXN_CREATE_STREAM => {
                Err(RelayError::Refused {
                    command: "createStream",
                    reason: reason(),
                })
            }
            ("onStatus", _) => {
                let level = info
                    .and_then(|i| i.get("level"))
                    .and_then(Amf0Value::as_str)
                    .unwrap_or_default();
                let code = info
                    .and_then(|i| i.get("code"))
                    .and_then(Amf0Value::as_str)
                    .unwrap_or_default();
                if level == "error" {
                    return Err(RelayError::Refused {
                        command: if self.pull { "play" } else { "publish" },
                        reason: reason(),
                    });
                }
                if self.state == State::Publishing && code == "NetStream.Publish.Start" {
                    self.state = State::Streaming;
                    return Ok(true);
                }
                if self.state == State::Playing && code == "NetStream.Play.Start" {
                    self.state = State::Streaming;
                    return Ok(true);
                }
                let ended = ["NetStream.Play.Stop", "NetStream.Play.UnpublishNotify"];
                if self.pull && self.state == State::Streaming && ended.contains(&code) {
                    return Err(RelayError::Ended(code.to_owned()));
                }
                Ok(false)
            }
            // Answers to releaseStream/FCPublish (or their errors), onBWDone, onFCPublish...
            _ => Ok(false),
        }
    }

    fn command(&mut self, stream_id: u32, values: &[Amf0Value]) {
        let mut payload = Vec::new();
        amf0::encode_all(values, &mut payload);
        let mut b = BytesMut::new();
        chunk::encode_message(
            self.chunk_size,
            CSID_COMMAND,
            0,
            chunk::MSG_COMMAND_AMF0,
            stream_id,
            &payload,
            &mut b,
        );
        self.out.extend_from_slice(&b);
    }

    fn send_connect(&mut self) {
        let mut b = BytesMut::new();
        chunk::set_chunk_size(&mut b, self.chunk_size);
        self.out.extend_from_slice(&b);
        let s = &self.spec;
        let mut props = vec![
            ("app".to_owned(), Amf0Value::String(s.app.clone())),
            ("type".to_owned(), Amf0Value::String("nonprivate".into())),
            (
                "flashVer".to_owned(),
                Amf0Value::String(s.flash_ver.clone()),
            ),
            ("tcUrl".to_owned(), Amf0Value::String(s.tc_url.clone())),
        ];
        if let Some(v) = &s.swf_url {
            props.push(("swfUrl".to_owned(), Amf0Value::String(v.clone())));
        }
        if let Some(v) = &s.page_url {
            props.push(("pageUrl".to_owned(), Amf0Value::String(v.clone())));
        }
        self.command(
            0,
            &[
                Amf0Value::String("connect".into()),
                Amf0Value::Number(TXN_CONNECT),
                Amf0Value::Object(props),
            ],
        );
    }

    fn send_create_stream(&mut self) {
        let name = Amf0Value::String(self.spec.name.clone());
        let publish_only: &[(&str, f64)] = if self.pull {
            &[]
        } else {
            &[("releaseStream", TXN_RELEASE), ("FCPublish", TXN_FCPUBLISH)]
        };
        for &(command, txn) in publish_only {
            self.command(
                0,
                &[
                    Amf0Value::String(command.into()),
                    Amf0Value::Number(txn),
                    Amf0Value::Null,
                    name.clone(),
                ],
            );
        }
        self.command(
            0,
            &[
                Amf0Value::String("createStream".into()),
                Amf0Value::Number(TXN_CREATE_STREAM),
                Amf0Value::Null,
            ],
        );
    }

    fn send_publish(&mut self) {
        self.command(
            self.stream_id,
            &[
                Amf0Value::String("publish".into()),
                Amf0Value::Number(0.0),
                Amf0Value::Null,
                Amf0Value::String(self.spec.name.clone()),
                Amf0Value::String("live".into()),
            ],
        );
    }

    /// `play` of the remote name, live only (-1000, as ffmpeg's `-rtmp_live live` sends), then
    /// the buffer length players announce.
    fn send_play(&mut self) {
        self.command(
            self.stream_id,
            &[
                Amf0Value::String("play".into()),
                Amf0Value::Number(0.0),
                Amf0Value::Null,
                Amf0Value::String(self.spec.name.clone()),
                Amf0Value::Number(-1000.0),
            ],
        );
        let mut b = BytesMut::new();
        chunk::set_buffer_length(&mut b, self.stream_id, self.buffer_ms);
        self.out.extend_from_slice(&b);
    }

    /// The goodbye of a push that ends while the stream is over (sent before closing):
    /// `FCUnpublish` and `deleteStream`, encoded with the chunk size told to the target.
    pub fn goodbye(&mut self) -> Option<Bytes> {
        if self.state != State::Streaming {
            return None;
        }
        self.command(
            0,
            &[
                Amf0Value::String("FCUnpublish".into()),
                Amf0Value::Number(0.0),
                Amf0Value::Null,
                Amf0Value::String(self.spec.name.clone()),
            ],
        );
        self.command(
            0,
            &[
                Amf0Value::String("deleteStream".into()),
                Amf0Value::Number(0.0),
                Amf0Value::Null,
                Amf0Value::Number(f64::from(self.stream_id)),
            ],
        );
        self.take_output()
    }
}

/// `description` (else `code`) of a status object, for log lines; bounded and printable.
fn describe(info: Option<&Amf0Value>) -> String {
    let text = info
        .and_then(|i| i.get("description").or_else(|| i.get("code")))
        .and_then(Amf0Value::as_str)
        .unwrap_or("no reason given");
    text.chars().filter(|c| !c.is_control()).take(200).collect()
}

#[cfg(test)]
mod tests;
