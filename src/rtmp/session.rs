//! One RTMP connection's protocol state, server side: handshake, chunk streams, protocol control,
//! commands. Bytes go in through [`Session::on_input`]; what the application layer must decide
//! (which app, may this name publish, ...) comes out as [`SessionEvent`]s, and the answers go back
//! in through the `accept_*` / `reject_*` methods. Bytes to send accumulate in an output buffer.
//! Pure: no clock (time is an argument), no sockets.

use bytes::{Bytes, BytesMut};

use super::chunk::{
    self, ChunkDecoder, ControlMessage, DecoderLimits, RtmpMessage, UserControlEvent,
};
use super::command::{self, Command, ConnectRequest, StreamName};
use super::handshake::{HandshakeStatus, ServerHandshake};

/// The message stream id every client gets from `createStream`. One id for all lets the live
/// layer encode each media message once for every player.
pub const STREAM_ID: u32 = 1;
/// Chunk stream ids we send on (the C module's numbering, which players are used to).
pub const CSID_CONTROL: u32 = 2;
pub const CSID_COMMAND: u32 = 3;
pub const CSID_DATA: u32 = 5;
pub const CSID_AUDIO: u32 = 6;
pub const CSID_VIDEO: u32 = 7;

/// The AMF0 string "onMetaData" as it opens a metadata message.
const ON_METADATA_AMF0: &[u8] = b"\x02\x00\x0aonMetaData";

/// What the session needs from configuration.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// Our outgoing chunk size (`chunk_size`).
    pub chunk_size: u32,
    /// Window acknowledgement size we announce (`ack_window`).
    pub ack_window: u32,
    /// Largest incoming message (`max_message`).
    pub max_message: u32,
    /// Distinct incoming chunk streams (`max_streams`).
    pub max_chunk_streams: usize,
    /// Handshake + connect deadline, and the base of the write timeout (`timeout`).
    pub timeout_ms: u64,
    /// Ping after this long without input (`ping`; 0 disables).
    pub ping_ms: u64,
    /// Drop after a ping goes unanswered this long (`ping_timeout`).
    pub ping_timeout_ms: u64,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            chunk_size: 4096,
            ack_window: 5_000_000,
            max_message: 1024 * 1024,
            max_chunk_streams: 32,
            timeout_ms: 60_000,
            ping_ms: 60_000,
            ping_timeout_ms: 30_000,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("handshake failed: {0}")]
    Handshake(#[from] super::handshake::HandshakeError),
    #[error("bad chunk stream: {0}")]
    Chunk(#[from] chunk::ChunkError),
    #[error("bad command: {0}")]
    Command(#[from] command::CommandError),
    #[error("{0} before connect")]
    NotConnected(&'static str),
    #[error("media from a client that is not publishing")]
    NotPublishing,
    #[error("more than {MAX_HELD_INPUT} bytes sent while waiting for a decision (on_connect, on_publish, on_play)")]
    HeldInputTooLarge,
}

/// Input kept undecoded while `connect`/`publish`/`play` waits for its answer (a callback):
/// about 10 s of a 6 Mbit/s stream, so a quick "yes" loses nothing, and a client cannot make
/// us hold more than this.
pub const MAX_HELD_INPUT: usize = 8 * 1024 * 1024;
/// Received bytes are decoded this many at a time (see [`Session::on_input`]).
const INPUT_PIECE: usize = 16 * 1024;

/// Decisions the application layer must take, in the order the client asked.
#[derive(Debug, Clone)]
pub enum SessionEvent {
    /// `connect`: answer with [`Session::accept_connect`] or [`Session::reject_connect`].
    Connect(ConnectRequest),
    /// `publish`: answer with [`Session::accept_publish`] or [`Session::reject_publish`].
    Publish {
        name: StreamName,
        publish_type: String,
    },
    /// `play`: answer with [`Session::accept_play`] or [`Session::reject_play`].
    Play {
        name: StreamName,
        start: f64,
        duration: f64,
        reset: bool,
    },
    /// `pause` (true) / resume (false).
    Pause(bool),
    /// `seek` to this many ms (answered by the player's VOD; live streams ignore it).
    Seek(u32),
    /// The client ended its stream (`deleteStream`, `closeStream`, `FCUnpublish`).
    StreamClosed,
    /// `@setDataFrame onMetaData` from the publisher, re-encoded as `onMetaData`.
    Metadata(Bytes),
    /// An audio (8) or video (9) message from the publisher.
    Media {
        type_id: u8,
        timestamp: u32,
        payload: Bytes,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Handshake,
    /// Handshake done, waiting for `connect`.
    Connecting,
    /// `connect` is with the application layer.
    ConnectPending,
    Connected,
    PublishPending,
    Publishing,
    PlayPending,
    Playing,
    /// A fatal answer was sent; ignore everything until the glue closes us.
    Closing,
}

/// What a tick asks of the glue.
#[derive(Debug, PartialEq, Eq)]
pub enum TickVerdict {
    /// Keep going; call again after this many ms.
    Continue(u64),
    /// Close the connection for this reason.
    Close(String),
}

pub struct Session {
    cfg: SessionConfig,
    phase: Phase,
    handshake: Option<ServerHandshake>,
    decoder: ChunkDecoder,
    inbuf: BytesMut,
    out: BytesMut,
    connect_tx: f64,
    pending_tx: f64,
    object_encoding: f64,
    /// The client announced Enhanced RTMP in `connect`: our reply states what we support.
    enhanced: bool,
    /// Bytes received, for acknowledgements (wraps like the protocol's 32-bit counter).
    received: u64,
    acked: u64,
    /// Window after which the peer wants an acknowledgement (0 = never asked).
    peer_window: u32,
    started_ms: u64,
    last_input_ms: u64,
    ping_sent_ms: Option<u64>,
    /// Set buffer length the player asked for (ms), for later use.
    pub buffer_ms: u32,
}

impl Session {
    pub fn new(cfg: SessionConfig, now_ms: u64, random: &mut dyn FnMut(&mut [u8])) -> Self {
        let limits = DecoderLimits {
            max_message: cfg.max_message,
            max_chunk_streams: cfg.max_chunk_streams,
        };
        Session {
            handshake: Some(ServerHandshake::new(now_ms as u32, random)),
            decoder: ChunkDecoder::new(limits),
            cfg,
            phase: Phase::Handshake,
            inbuf: BytesMut::new(),
            out: BytesMut::new(),
            connect_tx: 0.0,
            pending_tx: 0.0,
            object_encoding: 0.0,
            enhanced: false,
            received: 0,
            acked: 0,
            peer_window: 0,
            started_ms: now_ms,
            last_input_ms: now_ms,
            ping_sent_ms: None,
            buffer_ms: 0,
        }
    }

    pub fn config(&self) -> &SessionConfig {
        &self.cfg
    }

    /// Bytes waiting to be sent (handshake, control, command replies), handed over in order.
    pub fn take_output(&mut self) -> Option<Bytes> {
        if self.out.is_empty() {
            None
        } else {
            Some(self.out.split().freeze())
        }
    }

    pub fn is_publishing(&self) -> bool {
        self.phase == Phase::Publishing
    }

    pub fn is_playing(&self) -> bool {
        self.phase == Phase::Playing
    }

    /// Feeds received bytes; appends the decisions the application layer must take to `events`.
    /// An error means the connection must be closed (the error text is the log line).
    pub fn on_input(
        &mut self,
        data: &[u8],
        now_ms: u64,
        events: &mut Vec<SessionEvent>,
    ) -> Result<(), SessionError> {
        self.last_input_ms = now_ms;
        self.ping_sent_ms = None;
        self.received += data.len() as u64;
        let mut data = data;
        if let Some(hs) = self.handshake.as_mut() {
            let mut reply = Vec::new();
            let status = hs.feed(data, &mut reply)?;
            self.out.extend_from_slice(&reply);
            match status {
                HandshakeStatus::InProgress { .. } => return Ok(()),
                HandshakeStatus::Done { consumed } => {
                    self.handshake = None;
                    self.phase = Phase::Connecting;
                    data = data.get(consumed..).unwrap_or(&[]);
                }
            }
        }
        if self.phase == Phase::Closing {
            return Ok(());
        }
        // Fed in pieces so the buffer holds a piece plus a partial chunk, not a whole read:
        // decoded bytes are released as we go, and every publisher keeps that buffer.
        for piece in data.chunks(INPUT_PIECE) {
            self.inbuf.extend_from_slice(piece);
            self.resume(events)?;
            if self.phase == Phase::Closing {
                break;
            }
        }
        if self.decision_pending() && self.inbuf.len() > MAX_HELD_INPUT {
            return Err(SessionError::HeldInputTooLarge);
        }
        if self.peer_window > 0 && self.received - self.acked >= u64::from(self.peer_window) {
            self.acked = self.received;
            chunk::acknowledgement(&mut self.out, self.received as u32);
        }
        Ok(())
    }

    /// True while `connect`, `publish` or `play` waits for the application layer's answer.
    pub fn decision_pending(&self) -> bool {
        matches!(
            self.phase,
            Phase::ConnectPending | Phase::PublishPending | Phase::PlayPending
        )
    }

    /// Decodes buffered input until a decision is needed. Messages behind a pending decision
    /// stay buffered (clients pipeline `createStream` behind `connect`, and media behind
    /// `publish`), so call this again after answering with `accept_*` / `reject_*`.
    pub fn resume(&mut self, events: &mut Vec<SessionEvent>) -> Result<(), SessionError> {
        while !self.decision_pending() && self.phase != Phase::Closing {
            let Some(msg) = self.decoder.decode(&mut self.inbuf)? else {
                break;
            };
            self.on_message(msg, events)?;
        }
        if self.phase == Phase::Closing {
            self.inbuf.clear();
        }
        Ok(())
    }

    fn on_message(
        &mut self,
        msg: RtmpMessage,
        events: &mut Vec<SessionEvent>,
    ) -> Result<(), SessionError> {
        match msg.type_id {
            chunk::MSG_AUDIO | chunk::MSG_VIDEO => {
                if self.phase != Phase::Publishing {
                    // Some encoders send a frame or two before Publish.Start arrives: drop them.
                    if self.phase == Phase::PublishPending {
                        return Ok(());
                    }
                    return Err(SessionError::NotPublishing);
                }
                events.push(SessionEvent::Media {
                    type_id: msg.type_id,
                    timestamp: msg.timestamp,
                    payload: msg.payload,
                });
            }
            chunk::MSG_AGGREGATE => {
                for sub in chunk::split_aggregate(&msg)? {
                    self.on_message(sub, events)?;
                }
            }
            chunk::MSG_DATA_AMF0 | chunk::MSG_DATA_AMF3 => {
                let payload = if msg.type_id == chunk::MSG_DATA_AMF3 {
                    msg.payload.slice(1.min(msg.payload.len())..)
                } else {
                    msg.payload
                };
                if self.phase == Phase::Publishing {
                    match command::strip_set_data_frame(&payload) {
                        Ok(Some(meta)) => events.push(SessionEvent::Metadata(meta)),
                        // Some encoders send a bare onMetaData; players take it as it is.
                        Ok(None) if payload.starts_with(ON_METADATA_AMF0) => {
                            events.push(SessionEvent::Metadata(payload))
                        }
                        _ => {}
                    }
                }
            }
            chunk::MSG_COMMAND_AMF0 | chunk::MSG_COMMAND_AMF3 => {
                let cmd =
                    command::parse_command(&msg.payload, msg.type_id == chunk::MSG_COMMAND_AMF3)?;
                self.on_command(cmd, events)?;
            }
            chunk::MSG_SHARED_OBJ_AMF0 | chunk::MSG_SHARED_OBJ_AMF3 => {}
            _ => {
                if let Some(control) = chunk::parse_control(&msg)? {
                    self.on_control(control);
                }
            }
        }
        Ok(())
    }

    fn on_control(&mut self, control: ControlMessage) {
        match control {
            ControlMessage::WindowAckSize(size) => self.peer_window = size,
            ControlMessage::UserControl(UserControlEvent::PingRequest(ts)) => {
                chunk::ping_response(&mut self.out, ts);
            }
            ControlMessage::UserControl(UserControlEvent::SetBufferLength { ms, .. }) => {
                self.buffer_ms = ms;
            }
            // Set Chunk Size and Abort are applied by the decoder itself; the rest needs no answer.
            _ => {}
        }
    }

    fn on_command(
        &mut self,
        cmd: Command,
        events: &mut Vec<SessionEvent>,
    ) -> Result<(), SessionError> {
        match cmd {
            Command::Connect(req) => {
                if self.phase != Phase::Connecting {
                    // A second connect on one connection is a client bug; ignore it like FMS.
                    return Ok(());
                }
                self.connect_tx = req.transaction_id;
                self.object_encoding = req.object_encoding;
                self.enhanced = req.caps.announced;
                self.phase = Phase::ConnectPending;
                events.push(SessionEvent::Connect(req));
            }
            _ if matches!(self.phase, Phase::Connecting | Phase::ConnectPending) => {
                return Err(SessionError::NotConnected("command"));
            }
            Command::CreateStream { transaction_id } => {
                self.send_command(&command::create_stream_result(
                    transaction_id,
                    f64::from(STREAM_ID),
                ));
            }
            Command::ReleaseStream { transaction_id, .. }
            | Command::FcPublish { transaction_id, .. } => {
                self.send_command(&command::simple_result(transaction_id));
            }
            Command::GetStreamLength { transaction_id, .. } => {
                self.send_command(&command::get_stream_length_result(transaction_id, 0.0));
            }
            Command::Publish {
                transaction_id,
                name,
                publish_type,
            } => {
                if self.phase != Phase::Connected {
                    return Ok(());
                }
                self.pending_tx = transaction_id;
                self.phase = Phase::PublishPending;
                events.push(SessionEvent::Publish { name, publish_type });
            }
            Command::Play {
                transaction_id,
                name,
                start,
                duration,
                reset,
            } => {
                if self.phase != Phase::Connected {
                    return Ok(());
                }
                self.pending_tx = transaction_id;
                self.phase = Phase::PlayPending;
                events.push(SessionEvent::Play {
                    name,
                    start,
                    duration,
                    reset,
                });
            }
            Command::Pause { pause, .. } if self.phase == Phase::Playing => {
                let (code, desc) = if pause {
                    (command::NS_PAUSE_NOTIFY, "Paused.")
                } else {
                    (command::NS_UNPAUSE_NOTIFY, "Unpaused.")
                };
                self.send_status("status", code, desc);
                events.push(SessionEvent::Pause(pause));
            }
            Command::Seek { position_ms, .. } if self.phase == Phase::Playing => {
                let ms = position_ms.clamp(0.0, f64::from(u32::MAX));
                events.push(SessionEvent::Seek(ms as u32));
            }
            Command::FcUnpublish { transaction_id, .. } => {
                self.send_command(&command::simple_result(transaction_id));
                self.end_stream(events);
            }
            Command::DeleteStream { .. } | Command::CloseStream { .. } => self.end_stream(events),
            _ => {}
        }
        Ok(())
    }

    /// The client ended its publish or play; the connection stays usable.
    fn end_stream(&mut self, events: &mut Vec<SessionEvent>) {
        match self.phase {
            Phase::Publishing | Phase::PublishPending => {
                if self.phase == Phase::Publishing {
                    self.send_status("status", command::NS_UNPUBLISH_SUCCESS, "Stop publishing.");
                }
                self.phase = Phase::Connected;
                events.push(SessionEvent::StreamClosed);
            }
            Phase::Playing | Phase::PlayPending => {
                self.phase = Phase::Connected;
                events.push(SessionEvent::StreamClosed);
            }
            _ => {}
        }
    }

    pub fn accept_connect(&mut self) {
        if self.phase != Phase::ConnectPending {
            return;
        }
        self.phase = Phase::Connected;
        chunk::window_ack_size(&mut self.out, self.cfg.ack_window);
        chunk::set_peer_bandwidth(&mut self.out, self.cfg.ack_window, 2);
        chunk::set_chunk_size(&mut self.out, self.cfg.chunk_size);
        self.send_command(&command::connect_result(
            self.connect_tx,
            self.object_encoding,
            self.enhanced,
        ));
    }

    /// Refuses `connect` (unknown application, ...); the glue closes after sending.
    pub fn reject_connect(&mut self, description: &str) {
        // The client still reads 128-byte chunks: announce ours before a long error.
        chunk::set_chunk_size(&mut self.out, self.cfg.chunk_size);
        self.send_command(&command::connect_error(
            self.connect_tx,
            command::NC_CONNECT_REJECTED,
            description,
        ));
        self.phase = Phase::Closing;
    }

    pub fn accept_publish(&mut self, name: &str) {
        if self.phase != Phase::PublishPending {
            return;
        }
        self.phase = Phase::Publishing;
        chunk::stream_begin(&mut self.out, STREAM_ID);
        self.send_status(
            "status",
            command::NS_PUBLISH_START,
            &format!("{name} is now published."),
        );
    }

    /// Refuses `publish` with `code` (e.g. NetStream.Publish.BadName); the glue closes after.
    pub fn reject_publish(&mut self, code: &str, description: &str) {
        self.send_status("error", code, description);
        self.phase = Phase::Closing;
    }

    /// Starts playback: the statuses players wait for before media.
    pub fn accept_play(&mut self, name: &str, reset: bool) {
        if self.phase != Phase::PlayPending {
            return;
        }
        self.phase = Phase::Playing;
        chunk::stream_is_recorded(&mut self.out, STREAM_ID);
        chunk::stream_begin(&mut self.out, STREAM_ID);
        if reset {
            self.send_status(
                "status",
                command::NS_PLAY_RESET,
                &format!("Playing and resetting {name}."),
            );
        }
        self.send_status(
            "status",
            command::NS_PLAY_START,
            &format!("Started playing {name}."),
        );
        let sample_access = command::rtmp_sample_access();
        chunk::encode_message(
            self.cfg.chunk_size,
            CSID_DATA,
            0,
            chunk::MSG_DATA_AMF0,
            STREAM_ID,
            &sample_access,
            &mut self.out,
        );
    }

    pub fn reject_play(&mut self, code: &str, description: &str) {
        self.send_status("error", code, description);
        self.phase = Phase::Closing;
    }

    /// A status for a player from the live layer (publisher came or left): the encoded message,
    /// to be queued behind the media already sent.
    pub fn status_message(&self, level: &str, code: &str, description: &str) -> Bytes {
        let payload = command::on_status(level, code, description, &[]);
        let mut out = BytesMut::new();
        chunk::encode_message(
            self.cfg.chunk_size,
            CSID_COMMAND,
            0,
            chunk::MSG_COMMAND_AMF0,
            STREAM_ID,
            &payload,
            &mut out,
        );
        out.freeze()
    }

    /// User control Stream EOF / Stream Begin for a player, as an encoded message.
    pub fn stream_event(&self, begin: bool) -> Bytes {
        let mut out = BytesMut::new();
        if begin {
            chunk::stream_begin(&mut out, STREAM_ID);
        } else {
            chunk::stream_eof(&mut out, STREAM_ID);
        }
        out.freeze()
    }

    /// Liveness: handshake/connect deadline, pings and ping timeout.
    pub fn tick(&mut self, now_ms: u64) -> TickVerdict {
        let since_input = now_ms.saturating_sub(self.last_input_ms);
        if matches!(self.phase, Phase::Handshake | Phase::Connecting) {
            let age = now_ms.saturating_sub(self.started_ms);
            if age >= self.cfg.timeout_ms {
                return TickVerdict::Close(format!(
                    "no RTMP connect within {} ms",
                    self.cfg.timeout_ms
                ));
            }
            // Wake again by the handshake deadline, or by the first ping if that comes sooner
            // (a connect completing meanwhile must not delay its first ping to the deadline).
            let deadline = self.cfg.timeout_ms - age;
            let next = match self.cfg.ping_ms {
                0 => deadline,
                ping => deadline.min(ping),
            };
            return TickVerdict::Continue(next);
        }
        if self.cfg.ping_ms == 0 {
            return TickVerdict::Continue(self.cfg.timeout_ms.max(1000));
        }
        if let Some(sent) = self.ping_sent_ms {
            let waited = now_ms.saturating_sub(sent);
            if waited >= self.cfg.ping_timeout_ms {
                return TickVerdict::Close(format!(
                    "ping not answered within {} ms",
                    self.cfg.ping_timeout_ms
                ));
            }
            return TickVerdict::Continue(self.cfg.ping_timeout_ms - waited);
        }
        if since_input >= self.cfg.ping_ms {
            chunk::ping_request(&mut self.out, now_ms as u32);
            self.ping_sent_ms = Some(now_ms);
            return TickVerdict::Continue(self.cfg.ping_timeout_ms.max(1));
        }
        TickVerdict::Continue(self.cfg.ping_ms - since_input)
    }

    fn send_status(&mut self, level: &str, code: &str, description: &str) {
        let payload = command::on_status(level, code, description, &[]);
        chunk::encode_message(
            self.cfg.chunk_size,
            CSID_COMMAND,
            0,
            chunk::MSG_COMMAND_AMF0,
            STREAM_ID,
            &payload,
            &mut self.out,
        );
    }

    fn send_command(&mut self, payload: &[u8]) {
        chunk::encode_message(
            self.cfg.chunk_size,
            CSID_COMMAND,
            0,
            chunk::MSG_COMMAND_AMF0,
            0,
            payload,
            &mut self.out,
        );
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
