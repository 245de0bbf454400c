//! Relays, pure: the RTMP client side of a `push` (what to connect to and under which names, the
//! client handshake, the command sequence `connect` → `releaseStream`/`FCPublish` →
//! `createStream` → `publish`, the answers to it) and the reconnect schedule. No sockets and no
//! clock: the glue connects, feeds what the target sends and writes what comes out; the
//! worker (`src/server/relay.rs`) feeds the media from the stream's live fan-out.

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

const TXN_CONNECT: f64 = 1.0;
const TXN_RELEASE: f64 = 2.0;
const TXN_FCPUBLISH: f64 = 3.0;
const TXN_CREATE_STREAM: f64 = 4.0;

/// Where and as what one stream is pushed: a `push` line applied to a published stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushSpec {
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

impl PushSpec {
    /// The push line `t` for the stream `local_app/local_name`, or None when its `name=`
    /// names another stream. As the C module: the remote application is `app=`, else the URL's
    /// path, else the local one; the remote name is `playPath=`, else the rest of the URL's
    /// path, else the local name.
    pub fn for_stream(t: &RelayTarget, local_app: &str, local_name: &str) -> Option<PushSpec> {
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
        Some(PushSpec {
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Handshake,
    Connecting,
    CreatingStream,
    Publishing,
    Streaming,
}

/// What feeding target bytes led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Still setting up (or already streaming before this call).
    Pending,
    /// The target accepted `publish` just now: media may flow.
    Publishing,
}

/// One push connection's protocol state, from the first byte to `publish` accepted, then the
/// answers to what the target sends meanwhile (pings).
pub struct PushClient {
    spec: PushSpec,
    state: State,
    handshake: ClientHandshake,
    decoder: ChunkDecoder,
    input: BytesMut,
    out: Vec<u8>,
    /// The chunk size of everything we send after the handshake (told first).
    chunk_size: u32,
    stream_id: u32,
}

impl PushClient {
    /// `chunk_size`: the one the stream's media is encoded with. `epoch_ms` and `random` for
    /// C1. The handshake's C0 C1 are ready in [`PushClient::take_output`] at once.
    pub fn new(
        spec: PushSpec,
        chunk_size: u32,
        epoch_ms: u32,
        random: &mut dyn FnMut(&mut [u8]),
    ) -> Self {
        let mut handshake = ClientHandshake::new(epoch_ms, random);
        let mut out = Vec::new();
        handshake.start(&mut out);
        PushClient {
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
        }
    }

    pub fn spec(&self) -> &PushSpec {
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
        let mut progress = Progress::Pending;
        loop {
            let msg = self
                .decoder
                .decode(&mut self.input)
                .map_err(|e| RelayError::Protocol(e.to_string()))?;
            let Some(msg) = msg else {
                return Ok(progress);
            };
            if self.on_message(&msg)? {
                progress = Progress::Publishing;
            }
        }
    }

    /// Returns true when this message made the target accept `publish`.
    fn on_message(&mut self, msg: &chunk::RtmpMessage) -> Result<bool, RelayError> {
        match msg.type_id {
            chunk::MSG_COMMAND_AMF0 => self.on_command(&msg.payload),
            chunk::MSG_COMMAND_AMF3 => self.on_command(msg.payload.get(1..).unwrap_or_default()),
            _ => {
                let control =
                    chunk::parse_control(msg).map_err(|e| RelayError::Protocol(e.to_string()))?;
                if let Some(ControlMessage::UserControl(UserControlEvent::PingRequest(t))) = control
                {
                    let mut b = BytesMut::new();
                    chunk::ping_response(&mut b, t);
                    self.out.extend_from_slice(&b);
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
                self.send_publish();
                self.state = State::Publishing;
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
                        command: "publish",
                        reason: reason(),
                    });
                }
                if self.state == State::Publishing && code == "NetStream.Publish.Start" {
                    self.state = State::Streaming;
                    return Ok(true);
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
        for (command, txn) in [("releaseStream", TXN_RELEASE), ("FCPublish", TXN_FCPUBLISH)] {
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
