//! The RTMP chunk stream (Adobe RTMP 1.0 spec, section 5.3), both directions, plus the protocol
//! control and user control messages (sections 5.4 and 6.2) and aggregate messages.
//!
//! Decoding is incremental and copies each payload byte once: complete headers are read from the
//! front of the caller's buffer, payload bytes go straight into a per-chunk-stream `BytesMut`
//! sized from the message length (bounded by [`DecoderLimits::max_message`]).
//!
//! Encoding is stateless on purpose: a type-0 header on the first chunk and type-3 headers on the
//! rest, so the bytes of one outgoing message can be shared by every player of a stream without
//! depending on per-connection header-compression state.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Chunk size both directions start with (spec 5.4.1).
pub const DEFAULT_CHUNK_SIZE: u32 = 128;
/// Largest valid Set Chunk Size value (31 bits; the top bit must be zero). Accepting large values
/// is harmless: a chunk never exceeds its message, and nothing is allocated by chunk size.
pub const MAX_CHUNK_SIZE: u32 = 0x7FFF_FFFF;
/// Lowest chunk stream id (0 and 1 are the markers of the 2- and 3-byte basic headers).
pub const MIN_CSID: u32 = 2;
/// Highest chunk stream id the 3-byte basic header can carry.
pub const MAX_CSID: u32 = 65_599;
/// The chunk stream of protocol control and user control messages.
pub const CSID_CONTROL: u32 = 2;
/// Largest message the 24-bit length field can describe.
pub const MAX_MESSAGE_LEN: usize = 0xFF_FFFF;
/// Default bound on an incoming message (the C module's `max_message` default, 1 MiB).
pub const DEFAULT_MAX_MESSAGE: u32 = 1024 * 1024;
/// Default bound on distinct chunk stream ids a peer may use.
pub const DEFAULT_MAX_CHUNK_STREAMS: usize = 64;
/// The 24-bit timestamp value that announces a 4-byte extended timestamp.
const EXTENDED_TIMESTAMP: u32 = 0xFF_FFFF;
/// Message header length by chunk type (fmt 0..=3).
const fn message_header_len(fmt: u8) -> usize {
    match fmt & 3 {
        0 => 11,
        1 => 7,
        2 => 3,
        _ => 0,
    }
}
/// FLV tag header inside an aggregate message.
const FLV_TAG_HEADER_LEN: usize = 11;
/// FLV "previous tag size" back pointer after each aggregate sub-message.
const FLV_BACK_POINTER_LEN: usize = 4;

// Message type ids (spec sections 5.4, 6.2 and 7.1).
pub const MSG_SET_CHUNK_SIZE: u8 = 1;
pub const MSG_ABORT: u8 = 2;
pub const MSG_ACK: u8 = 3;
pub const MSG_USER_CONTROL: u8 = 4;
pub const MSG_WINDOW_ACK_SIZE: u8 = 5;
pub const MSG_SET_PEER_BANDWIDTH: u8 = 6;
pub const MSG_AUDIO: u8 = 8;
pub const MSG_VIDEO: u8 = 9;
pub const MSG_DATA_AMF3: u8 = 15;
pub const MSG_SHARED_OBJ_AMF3: u8 = 16;
pub const MSG_COMMAND_AMF3: u8 = 17;
pub const MSG_DATA_AMF0: u8 = 18;
pub const MSG_SHARED_OBJ_AMF0: u8 = 19;
pub const MSG_COMMAND_AMF0: u8 = 20;
pub const MSG_AGGREGATE: u8 = 22;

// User control event types (spec section 7.1.7).
pub const UC_STREAM_BEGIN: u16 = 0;
pub const UC_STREAM_EOF: u16 = 1;
pub const UC_STREAM_DRY: u16 = 2;
pub const UC_SET_BUFFER_LENGTH: u16 = 3;
pub const UC_STREAM_IS_RECORDED: u16 = 4;
pub const UC_PING_REQUEST: u16 = 6;
pub const UC_PING_RESPONSE: u16 = 7;

// Set Peer Bandwidth limit types (spec section 5.4.5).
pub const LIMIT_HARD: u8 = 0;
pub const LIMIT_SOFT: u8 = 1;
pub const LIMIT_DYNAMIC: u8 = 2;

/// Errors of the chunk layer. Each names the offending value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    #[error("chunk header type {fmt} on csid {csid} with no previous header on that chunk stream")]
    NoPreviousHeader { csid: u32, fmt: u8 },
    #[error("chunk header type {fmt} on csid {csid} while a message there is still incomplete")]
    HeaderMidMessage { csid: u32, fmt: u8 },
    #[error("message of {len} bytes on csid {csid} exceeds max_message {max}")]
    MessageTooLarge { len: u32, csid: u32, max: u32 },
    #[error("csid {csid} would exceed the limit of {max} chunk streams")]
    TooManyChunkStreams { csid: u32, max: usize },
    #[error("chunk size {0} is invalid (must be 1..=2147483647)")]
    InvalidChunkSize(u32),
    #[error("message type {type_id} has {len} bytes of payload, needs {need}")]
    TruncatedControl {
        type_id: u8,
        len: usize,
        need: usize,
    },
    #[error("csid {0} cannot be encoded (must be 2..=65599)")]
    InvalidCsid(u32),
    #[error("payload of {0} bytes exceeds the 16777215-byte RTMP message limit")]
    PayloadTooLarge(usize),
    #[error("aggregate message truncated at offset {offset} of {len}")]
    AggregateTruncated { offset: usize, len: usize },
    #[error("aggregate message holds a sub-message of type {type_id} at offset {offset} (only audio, video and data are allowed)")]
    AggregateSubType { type_id: u8, offset: usize },
}

/// One complete RTMP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtmpMessage {
    pub csid: u32,
    /// Absolute timestamp in milliseconds, reconstructed from deltas (wrapping at 2^32).
    pub timestamp: u32,
    pub type_id: u8,
    pub stream_id: u32,
    pub payload: Bytes,
}

/// Payload bytes reserved when a message starts; the buffer grows as chunks arrive.
pub const INITIAL_PAYLOAD_RESERVE: usize = 64 * 1024;

/// Bounds on what a peer can make the decoder hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecoderLimits {
    /// Largest message accepted (the C module's `max_message`, default 1 MiB).
    pub max_message: u32,
    /// Bound on distinct csids in use. Worst-case buffered memory is about
    /// `max_chunk_streams * max_message`.
    pub max_chunk_streams: usize,
}

impl Default for DecoderLimits {
    fn default() -> Self {
        DecoderLimits {
            max_message: DEFAULT_MAX_MESSAGE,
            max_chunk_streams: DEFAULT_MAX_CHUNK_STREAMS,
        }
    }
}

/// What a chunk stream remembers for header compression, plus its partial message.
#[derive(Debug)]
struct ChunkStream {
    csid: u32,
    /// Absolute timestamp of the latest message started here.
    timestamp: u32,
    /// Latest timestamp field: absolute for type 0, delta for types 1/2 (extended value when
    /// extended). A type-3 chunk starting a new message adds it, as ffmpeg, SRS and rml_rtmp
    /// do; ffmpeg's sender relies on that when it emits type 3 after a type 0.
    ts_field: u32,
    /// Whether the latest type 0/1/2 header announced an extended timestamp.
    extended: bool,
    length: u32,
    type_id: u8,
    stream_id: u32,
    in_progress: bool,
    payload: Vec<u8>,
}

/// The chunk whose payload is being read.
#[derive(Debug, Clone, Copy)]
struct Current {
    stream: usize,
    left: usize,
}

/// Incoming chunk stream decoder; see [`ChunkDecoder::decode`].
#[derive(Debug)]
pub struct ChunkDecoder {
    limits: DecoderLimits,
    chunk_size: u32,
    /// Few entries (peers use 2..8 csids), so a linear scan beats hashing.
    streams: Vec<ChunkStream>,
    current: Option<Current>,
}

impl Default for ChunkDecoder {
    fn default() -> Self {
        Self::new(DecoderLimits::default())
    }
}

fn array_at<const N: usize>(b: &[u8], pos: usize) -> Option<[u8; N]> {
    b.get(pos..pos.checked_add(N)?)?.try_into().ok()
}

fn be24(b: [u8; 3]) -> u32 {
    u32::from_be_bytes([0, b[0], b[1], b[2]])
}

fn be32_at(payload: &[u8], type_id: u8, pos: usize) -> Result<u32, ChunkError> {
    array_at::<4>(payload, pos)
        .map(u32::from_be_bytes)
        .ok_or(ChunkError::TruncatedControl {
            type_id,
            len: payload.len(),
            need: pos + 4,
        })
}

fn check_chunk_size(size: u32) -> Result<u32, ChunkError> {
    if (1..=MAX_CHUNK_SIZE).contains(&size) {
        Ok(size)
    } else {
        Err(ChunkError::InvalidChunkSize(size))
    }
}

impl ChunkDecoder {
    pub fn new(limits: DecoderLimits) -> Self {
        ChunkDecoder {
            limits,
            chunk_size: DEFAULT_CHUNK_SIZE,
            streams: Vec::new(),
            current: None,
        }
    }

    /// The peer's current chunk size (changed by Set Chunk Size messages it sends).
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Consumes chunks from the front of `buf` and returns the next complete message, or
    /// `Ok(None)` when more bytes are needed (an incomplete header stays in `buf`; payload bytes
    /// are taken as they arrive). Call again until `Ok(None)`: one call returns one message.
    ///
    /// Set Chunk Size and Abort are applied here, then returned like any other message.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<RtmpMessage>, ChunkError> {
        loop {
            let Some(cur) = self.current else {
                if self.read_header(buf)? {
                    continue;
                }
                return Ok(None);
            };
            let Some(st) = self.streams.get_mut(cur.stream) else {
                // Unreachable: streams are never removed.
                self.current = None;
                continue;
            };
            let take = cur.left.min(buf.len());
            reserve_payload(&mut st.payload, st.length as usize, take);
            st.payload
                .extend_from_slice(buf.get(..take).unwrap_or_default());
            buf.advance(take);
            let left = cur.left - take;
            if left > 0 {
                self.current = Some(Current { left, ..cur });
                return Ok(None);
            }
            self.current = None;
            if st.payload.len() >= st.length as usize {
                st.in_progress = false;
                let msg = RtmpMessage {
                    csid: st.csid,
                    timestamp: st.timestamp,
                    type_id: st.type_id,
                    stream_id: st.stream_id,
                    payload: Bytes::from(std::mem::take(&mut st.payload)),
                };
                self.apply_control(&msg)?;
                return Ok(Some(msg));
            }
        }
    }

    /// Reads one complete chunk header from the front of `buf` and makes it current.
    /// Returns `Ok(false)` (consuming nothing) when the header is incomplete.
    fn read_header(&mut self, buf: &mut BytesMut) -> Result<bool, ChunkError> {
        let b: &[u8] = buf;
        let Some(&first) = b.first() else {
            return Ok(false);
        };
        let fmt = first >> 6;
        let (csid, mut pos) = match first & 0x3F {
            0 => match b.get(1) {
                Some(&x) => (64 + u32::from(x), 2),
                None => return Ok(false),
            },
            1 => match array_at::<2>(b, 1) {
                Some([lo, hi]) => (64 + u32::from(lo) + 256 * u32::from(hi), 3),
                None => return Ok(false),
            },
            n => (u32::from(n), 1),
        };
        let index = self.streams.iter().position(|s| s.csid == csid);
        let prev = index.and_then(|i| self.streams.get(i));
        if fmt != 0 && prev.is_none() {
            return Err(ChunkError::NoPreviousHeader { csid, fmt });
        }
        let in_progress = prev.is_some_and(|p| p.in_progress);
        if fmt != 3 && in_progress {
            return Err(ChunkError::HeaderMidMessage { csid, fmt });
        }

        let (mut ts_field, mut length, mut type_id, mut stream_id, mut extended) = prev
            .map(|p| (p.ts_field, p.length, p.type_id, p.stream_id, p.extended))
            .unwrap_or_default();
        let header_len = message_header_len(fmt);
        let Some(h) = b.get(pos..pos + header_len).map(pad11) else {
            return Ok(false);
        };
        pos += header_len;
        if fmt <= 2 {
            ts_field = be24([h[0], h[1], h[2]]);
            extended = ts_field == EXTENDED_TIMESTAMP;
        }
        if fmt <= 1 {
            length = be24([h[3], h[4], h[5]]);
            type_id = h[6];
        }
        if fmt == 0 {
            stream_id = u32::from_le_bytes([h[7], h[8], h[9], h[10]]);
        }
        if extended && !in_progress {
            let Some(ext) = array_at::<4>(b, pos) else {
                return Ok(false);
            };
            ts_field = u32::from_be_bytes(ext);
            pos += 4;
        } else if let Some(p) = prev.filter(|_| extended) {
            // Continuation chunk: ffmpeg and OBS repeat the extended timestamp here (as the
            // field value, some senders as the absolute time), librtmp-era senders omit it.
            // Skip 4 bytes only when they are that repeat; decide as soon as the available
            // prefix rules it out, so a short final chunk without it cannot stall.
            let avail = b.get(pos..).unwrap_or_default();
            let n = avail.len().min(4);
            let repeated = [p.ts_field, p.timestamp]
                .iter()
                .any(|v| v.to_be_bytes().get(..n) == avail.get(..n));
            if repeated {
                if n < 4 {
                    return Ok(false);
                }
                pos += 4;
            }
        }

        if !in_progress && length > self.limits.max_message {
            return Err(ChunkError::MessageTooLarge {
                len: length,
                csid,
                max: self.limits.max_message,
            });
        }
        let index = match index {
            Some(i) => i,
            None => {
                if self.streams.len() >= self.limits.max_chunk_streams {
                    return Err(ChunkError::TooManyChunkStreams {
                        csid,
                        max: self.limits.max_chunk_streams,
                    });
                }
                self.streams.push(ChunkStream {
                    csid,
                    timestamp: 0,
                    ts_field: 0,
                    extended: false,
                    length: 0,
                    type_id: 0,
                    stream_id: 0,
                    in_progress: false,
                    payload: Vec::new(),
                });
                self.streams.len() - 1
            }
        };
        let Some(st) = self.streams.get_mut(index) else {
            return Ok(false);
        };
        if !in_progress {
            st.timestamp = if fmt == 0 {
                ts_field
            } else {
                st.timestamp.wrapping_add(ts_field)
            };
            st.ts_field = ts_field;
            st.extended = extended;
            st.length = length;
            st.type_id = type_id;
            st.stream_id = stream_id;
            st.in_progress = true;
            // Grow with what actually arrives: a header may announce max_message bytes on
            // every chunk stream without ever sending them.
            st.payload = Vec::with_capacity((length as usize).min(INITIAL_PAYLOAD_RESERVE));
        }
        let remaining = (st.length as usize).saturating_sub(st.payload.len());
        let left = remaining.min(self.chunk_size as usize);
        buf.advance(pos);
        self.current = Some(Current {
            stream: index,
            left,
        });
        Ok(true)
    }

    fn apply_control(&mut self, msg: &RtmpMessage) -> Result<(), ChunkError> {
        match msg.type_id {
            MSG_SET_CHUNK_SIZE => {
                let size = be32_at(&msg.payload, msg.type_id, 0)?;
                self.chunk_size = check_chunk_size(size)?;
            }
            MSG_ABORT => {
                let csid = be32_at(&msg.payload, msg.type_id, 0)?;
                if let Some(st) = self.streams.iter_mut().find(|s| s.csid == csid) {
                    st.in_progress = false;
                    st.payload = Vec::new();
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Pads a short message header to 11 bytes (the unused bytes are never read).
fn pad11(s: &[u8]) -> [u8; 11] {
    let mut h = [0u8; 11];
    for (d, v) in h.iter_mut().zip(s) {
        *d = *v;
    }
    h
}

fn basic_header_len(csid: u32) -> usize {
    match csid {
        0..=63 => 1,
        64..=319 => 2,
        _ => 3,
    }
}

/// Makes room for `take` more bytes of a message of `length` bytes, doubling as a `Vec` does
/// but never past `length`: the finished buffer becomes the shared payload (GOP cache, player
/// queues), so spare capacity would be held for as long as the frame is.
fn reserve_payload(payload: &mut Vec<u8>, length: usize, take: usize) {
    let need = payload.len().saturating_add(take);
    if need > payload.capacity() {
        let grown = payload
            .capacity()
            .saturating_mul(2)
            .max(need)
            .min(length.max(need));
        payload.reserve_exact(grown - payload.len());
    }
}

fn put_basic_header(out: &mut BytesMut, fmt: u8, csid: u32) {
    match csid {
        0..=63 => out.put_u8((fmt << 6) | csid as u8),
        64..=319 => out.put_slice(&[fmt << 6, (csid - 64) as u8]),
        _ => {
            let id = csid.saturating_sub(64);
            out.put_slice(&[(fmt << 6) | 1, id as u8, (id >> 8) as u8]);
        }
    }
}

/// Exact number of bytes [`encode_message`] appends (for valid arguments), so callers can
/// reserve once.
pub fn encoded_len(chunk_size: u32, csid: u32, timestamp: u32, payload_len: usize) -> usize {
    let basic = basic_header_len(csid);
    let ext = if timestamp >= EXTENDED_TIMESTAMP {
        4
    } else {
        0
    };
    let chunks = payload_len.div_ceil(chunk_size.max(1) as usize).max(1);
    (basic + 11 + ext)
        .saturating_add(payload_len)
        .saturating_add((chunks - 1).saturating_mul(basic + ext))
}

/// Appends `payload` as one chunked message: a type-0 header on the first chunk, type 3 on the
/// rest, the extended timestamp repeated on every chunk when `timestamp >= 0xFFFFFF` (as Flash
/// and ffmpeg expect). No per-connection state, so the bytes can be shared by many players.
///
/// For arguments that are valid by construction (csid constants, payloads of decoded messages,
/// a configured chunk size). Out-of-range values are a caller bug and handled without a panic:
/// csid and chunk size are clamped into range, and a payload over 16 MiB - 1 (which the 24-bit
/// length cannot describe) appends nothing. [`try_encode_message`] reports them instead.
pub fn encode_message(
    chunk_size: u32,
    csid: u32,
    timestamp: u32,
    type_id: u8,
    stream_id: u32,
    payload: &[u8],
    out: &mut BytesMut,
) {
    if payload.len() <= MAX_MESSAGE_LEN {
        write_message(
            chunk_size.clamp(1, MAX_CHUNK_SIZE),
            csid.clamp(MIN_CSID, MAX_CSID),
            timestamp,
            type_id,
            stream_id,
            payload,
            out,
        );
    }
}

/// [`encode_message`] that rejects arguments the format cannot carry (appending nothing).
pub fn try_encode_message(
    chunk_size: u32,
    csid: u32,
    timestamp: u32,
    type_id: u8,
    stream_id: u32,
    payload: &[u8],
    out: &mut BytesMut,
) -> Result<(), ChunkError> {
    if !(MIN_CSID..=MAX_CSID).contains(&csid) {
        return Err(ChunkError::InvalidCsid(csid));
    }
    if payload.len() > MAX_MESSAGE_LEN {
        return Err(ChunkError::PayloadTooLarge(payload.len()));
    }
    check_chunk_size(chunk_size)?;
    write_message(
        chunk_size, csid, timestamp, type_id, stream_id, payload, out,
    );
    Ok(())
}

/// [`encode_message`] into a new buffer of exactly the right size.
pub fn encode_message_bytes(
    chunk_size: u32,
    csid: u32,
    timestamp: u32,
    type_id: u8,
    stream_id: u32,
    payload: &[u8],
) -> Bytes {
    let mut out = BytesMut::with_capacity(encoded_len(chunk_size, csid, timestamp, payload.len()));
    encode_message(
        chunk_size, csid, timestamp, type_id, stream_id, payload, &mut out,
    );
    out.freeze()
}

/// The encoder proper; arguments are already valid.
/// The chunk headers of one message, for a sender that keeps the payload apart (the live
/// fan-out shares the publisher's payload instead of copying it between headers): the first
/// chunk's header (basic header, type-0 message header, extended timestamp), then the header
/// every later chunk starts with (type 3, extended timestamp). Returns the first one's length.
/// With the payload cut into `chunk_size` pieces between them, the bytes are exactly what
/// [`encode_message`] writes.
pub fn encode_chunk_headers(
    csid: u32,
    timestamp: u32,
    type_id: u8,
    stream_id: u32,
    payload_len: usize,
    out: &mut BytesMut,
) -> usize {
    let csid = csid.clamp(MIN_CSID, MAX_CSID);
    let start = out.len();
    let extended = timestamp >= EXTENDED_TIMESTAMP;
    put_basic_header(out, 0, csid);
    out.put_uint(u64::from(timestamp.min(EXTENDED_TIMESTAMP)), 3);
    out.put_uint(payload_len.min(MAX_MESSAGE_LEN) as u64, 3);
    out.put_u8(type_id);
    out.put_u32_le(stream_id);
    if extended {
        out.put_u32(timestamp);
    }
    let first = out.len() - start;
    put_basic_header(out, 3, csid);
    if extended {
        out.put_u32(timestamp);
    }
    first
}

fn write_message(
    chunk_size: u32,
    csid: u32,
    timestamp: u32,
    type_id: u8,
    stream_id: u32,
    payload: &[u8],
    out: &mut BytesMut,
) {
    out.reserve(encoded_len(chunk_size, csid, timestamp, payload.len()));
    let extended = timestamp >= EXTENDED_TIMESTAMP;
    put_basic_header(out, 0, csid);
    out.put_uint(u64::from(timestamp.min(EXTENDED_TIMESTAMP)), 3);
    out.put_uint(payload.len() as u64, 3);
    out.put_u8(type_id);
    out.put_u32_le(stream_id);
    if extended {
        out.put_u32(timestamp);
    }
    let mut chunks = payload.chunks(chunk_size.max(1) as usize);
    out.put_slice(chunks.next().unwrap_or_default());
    for chunk in chunks {
        put_basic_header(out, 3, csid);
        if extended {
            out.put_u32(timestamp);
        }
        out.put_slice(chunk);
    }
}

/// A parsed protocol control or user control message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlMessage {
    SetChunkSize(u32),
    /// The csid whose partial message to drop.
    Abort(u32),
    /// Sequence number: bytes received so far.
    Acknowledgement(u32),
    WindowAckSize(u32),
    /// `limit_type` is one of `LIMIT_HARD`, `LIMIT_SOFT`, `LIMIT_DYNAMIC`.
    SetPeerBandwidth {
        size: u32,
        limit_type: u8,
    },
    UserControl(UserControlEvent),
}

/// A user control event (message type 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserControlEvent {
    StreamBegin(u32),
    StreamEof(u32),
    StreamDry(u32),
    SetBufferLength {
        stream_id: u32,
        ms: u32,
    },
    StreamIsRecorded(u32),
    PingRequest(u32),
    PingResponse(u32),
    /// An event type we do not act on (e.g. 31/32, buffer empty/ready).
    Unknown(u16),
}

/// Parses protocol control (types 1, 2, 3, 5, 6) and user control (type 4) messages;
/// `Ok(None)` for every other type; an error for short payloads (extra bytes are ignored).
pub fn parse_control(msg: &RtmpMessage) -> Result<Option<ControlMessage>, ChunkError> {
    let p = &msg.payload[..];
    let t = msg.type_id;
    let u32_at = |pos| be32_at(p, t, pos);
    let control = match t {
        MSG_SET_CHUNK_SIZE => ControlMessage::SetChunkSize(check_chunk_size(u32_at(0)?)?),
        MSG_ABORT => ControlMessage::Abort(u32_at(0)?),
        MSG_ACK => ControlMessage::Acknowledgement(u32_at(0)?),
        MSG_WINDOW_ACK_SIZE => ControlMessage::WindowAckSize(u32_at(0)?),
        MSG_SET_PEER_BANDWIDTH => ControlMessage::SetPeerBandwidth {
            size: u32_at(0)?,
            limit_type: *p.get(4).ok_or(ChunkError::TruncatedControl {
                type_id: t,
                len: p.len(),
                need: 5,
            })?,
        },
        MSG_USER_CONTROL => {
            let event = array_at::<2>(p, 0).map(u16::from_be_bytes).ok_or(
                ChunkError::TruncatedControl {
                    type_id: t,
                    len: p.len(),
                    need: 2,
                },
            )?;
            ControlMessage::UserControl(match event {
                UC_STREAM_BEGIN => UserControlEvent::StreamBegin(u32_at(2)?),
                UC_STREAM_EOF => UserControlEvent::StreamEof(u32_at(2)?),
                UC_STREAM_DRY => UserControlEvent::StreamDry(u32_at(2)?),
                UC_SET_BUFFER_LENGTH => UserControlEvent::SetBufferLength {
                    stream_id: u32_at(2)?,
                    ms: u32_at(6)?,
                },
                UC_STREAM_IS_RECORDED => UserControlEvent::StreamIsRecorded(u32_at(2)?),
                UC_PING_REQUEST => UserControlEvent::PingRequest(u32_at(2)?),
                UC_PING_RESPONSE => UserControlEvent::PingResponse(u32_at(2)?),
                other => UserControlEvent::Unknown(other),
            })
        }
        _ => return Ok(None),
    };
    Ok(Some(control))
}

// Builders that append one complete control message (csid 2, message stream 0, timestamp 0).
// Their payloads are shorter than any chunk size, so they do not depend on the chunk size.

fn put_control(out: &mut BytesMut, type_id: u8, payload: &[u8]) {
    write_message(
        DEFAULT_CHUNK_SIZE,
        CSID_CONTROL,
        0,
        type_id,
        0,
        payload,
        out,
    );
}

fn put_control_u32(out: &mut BytesMut, type_id: u8, value: u32) {
    put_control(out, type_id, &value.to_be_bytes());
}

fn user_control(out: &mut BytesMut, event: u16, values: &[u32]) {
    // The event type and at most two values (10 bytes).
    let mut payload = Vec::with_capacity(10);
    payload.extend_from_slice(&event.to_be_bytes());
    for v in values.iter().take(2) {
        payload.extend_from_slice(&v.to_be_bytes());
    }
    put_control(out, MSG_USER_CONTROL, &payload);
}

/// The caller must also switch its own encoder to `size` after this message.
pub fn set_chunk_size(out: &mut BytesMut, size: u32) {
    put_control_u32(out, MSG_SET_CHUNK_SIZE, size & MAX_CHUNK_SIZE);
}
pub fn abort(out: &mut BytesMut, csid: u32) {
    put_control_u32(out, MSG_ABORT, csid);
}
pub fn acknowledgement(out: &mut BytesMut, sequence: u32) {
    put_control_u32(out, MSG_ACK, sequence);
}
pub fn window_ack_size(out: &mut BytesMut, size: u32) {
    put_control_u32(out, MSG_WINDOW_ACK_SIZE, size);
}
pub fn set_peer_bandwidth(out: &mut BytesMut, size: u32, limit_type: u8) {
    let b = size.to_be_bytes();
    put_control(
        out,
        MSG_SET_PEER_BANDWIDTH,
        &[b[0], b[1], b[2], b[3], limit_type],
    );
}
pub fn stream_begin(out: &mut BytesMut, stream_id: u32) {
    user_control(out, UC_STREAM_BEGIN, &[stream_id]);
}
pub fn stream_eof(out: &mut BytesMut, stream_id: u32) {
    user_control(out, UC_STREAM_EOF, &[stream_id]);
}
pub fn stream_dry(out: &mut BytesMut, stream_id: u32) {
    user_control(out, UC_STREAM_DRY, &[stream_id]);
}
/// Sent by clients (players, pull relays) to tell the server their buffer length.
pub fn set_buffer_length(out: &mut BytesMut, stream_id: u32, ms: u32) {
    user_control(out, UC_SET_BUFFER_LENGTH, &[stream_id, ms]);
}
pub fn stream_is_recorded(out: &mut BytesMut, stream_id: u32) {
    user_control(out, UC_STREAM_IS_RECORDED, &[stream_id]);
}
pub fn ping_request(out: &mut BytesMut, timestamp: u32) {
    user_control(out, UC_PING_REQUEST, &[timestamp]);
}
pub fn ping_response(out: &mut BytesMut, timestamp: u32) {
    user_control(out, UC_PING_RESPONSE, &[timestamp]);
}

/// Splits an aggregate message (type 22) into its audio, video and data sub-messages.
///
/// The payload is a run of FLV tags (11-byte tag header, body, 4-byte back pointer; a missing
/// final back pointer is tolerated). Timestamps are rebased so the first sub-message gets the
/// aggregate's timestamp and later ones keep their offsets from it (wrapping). Sub-messages
/// share the aggregate's csid and message stream id, and their payloads share its buffer.
pub fn split_aggregate(msg: &RtmpMessage) -> Result<Vec<RtmpMessage>, ChunkError> {
    let p = &msg.payload;
    let mut out = Vec::new();
    let mut first_ts = None;
    let mut pos = 0usize;
    while pos < p.len() {
        let truncated = ChunkError::AggregateTruncated {
            offset: pos,
            len: p.len(),
        };
        let Some(h) = array_at::<FLV_TAG_HEADER_LEN>(p, pos) else {
            return Err(truncated);
        };
        let type_id = h[0];
        if !matches!(type_id, MSG_AUDIO | MSG_VIDEO | MSG_DATA_AMF0) {
            return Err(ChunkError::AggregateSubType {
                type_id,
                offset: pos,
            });
        }
        let size = be24([h[1], h[2], h[3]]) as usize;
        let ts = u32::from_be_bytes([h[7], h[4], h[5], h[6]]);
        let start = pos + FLV_TAG_HEADER_LEN;
        let end = start.saturating_add(size);
        if end > p.len() {
            return Err(truncated);
        }
        let base = *first_ts.get_or_insert(ts);
        out.push(RtmpMessage {
            csid: msg.csid,
            timestamp: msg.timestamp.wrapping_add(ts.wrapping_sub(base)),
            type_id,
            stream_id: msg.stream_id,
            payload: p.slice(start..end),
        });
        pos = end.saturating_add(FLV_BACK_POINTER_LEN);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rml_rtmp::chunk_io::{ChunkDeserializer, ChunkSerializer};
    use rml_rtmp::messages::MessagePayload;
    use rml_rtmp::time::RtmpTimestamp;

    /// Deterministic xorshift numbers so failures reproduce.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
        fn bytes(&mut self, n: usize) -> Vec<u8> {
            (0..n).map(|_| self.next() as u8).collect()
        }
    }

    fn msg(csid: u32, timestamp: u32, type_id: u8, stream_id: u32, payload: &[u8]) -> RtmpMessage {
        RtmpMessage {
            csid,
            timestamp,
            type_id,
            stream_id,
            payload: Bytes::copy_from_slice(payload),
        }
    }

    fn encode(chunk_size: u32, m: &RtmpMessage, out: &mut BytesMut) {
        try_encode_message(
            chunk_size,
            m.csid,
            m.timestamp,
            m.type_id,
            m.stream_id,
            &m.payload,
            out,
        )
        .unwrap();
    }

    fn decode_all(dec: &mut ChunkDecoder, buf: &mut BytesMut) -> Vec<RtmpMessage> {
        let mut out = Vec::new();
        while let Some(m) = dec.decode(buf).unwrap() {
            out.push(m);
        }
        out
    }

    fn decode_bytewise(dec: &mut ChunkDecoder, bytes: &[u8]) -> Vec<RtmpMessage> {
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for b in bytes {
            buf.put_u8(*b);
            out.extend(decode_all(dec, &mut buf));
        }
        assert!(buf.is_empty());
        out
    }

    fn decode_err(bytes: &[u8]) -> ChunkError {
        let mut dec = ChunkDecoder::default();
        let mut buf = BytesMut::from(bytes);
        loop {
            match dec.decode(&mut buf) {
                Ok(Some(_)) => {}
                Ok(None) => panic!("no error; {} bytes left", buf.len()),
                Err(e) => return e,
            }
        }
    }

    #[test]
    fn a_payload_buffer_ends_exactly_as_long_as_its_message() {
        for length in [1usize, 4096, 65_536, 65_537, 150_000, 1_048_576] {
            let mut payload = Vec::with_capacity(length.min(INITIAL_PAYLOAD_RESERVE));
            while payload.len() < length {
                let take = (length - payload.len()).min(4096);
                reserve_payload(&mut payload, length, take);
                payload.extend(std::iter::repeat_n(7u8, take));
            }
            assert_eq!(payload.capacity(), length, "message of {length} bytes");
        }
    }
    #[test]
    fn random_messages_round_trip_whole_and_byte_by_byte() {
        let mut rng = Rng(0x1234_5678);
        for round in 0..40 {
            let chunk_size = [1, 2, 7, 128, 129, 1000, 4096, 65536][round % 8];
            let mut bytes = BytesMut::new();
            let mut sent = Vec::new();
            if chunk_size != DEFAULT_CHUNK_SIZE {
                set_chunk_size(&mut bytes, chunk_size);
                sent.push(msg(2, 0, 1, 0, &chunk_size.to_be_bytes()));
            }
            for _ in 0..6 {
                let len = rng.below(3000) as usize;
                let csid = [3, 4, 6, 63, 64, 300, 319, 320, 1000, MAX_CSID][rng.below(10) as usize];
                let ts = if rng.below(4) == 0 {
                    0xFF_FFFF + rng.below(1000) as u32
                } else {
                    rng.below(0xFF_FFFF) as u32
                };
                let m = msg(csid, ts, 9, rng.below(5) as u32, &rng.bytes(len));
                encode(chunk_size, &m, &mut bytes);
                sent.push(m);
            }
            let whole = decode_all(&mut ChunkDecoder::default(), &mut bytes.clone());
            assert_eq!(whole, sent, "round {round}");
            if round % 4 == 0 {
                let bytewise = decode_bytewise(&mut ChunkDecoder::default(), &bytes);
                assert_eq!(bytewise, sent, "round {round}");
            }
        }
    }

    #[test]
    fn encoded_len_is_exact() {
        for &(cs, csid, ts, len) in &[
            (128, 3, 0, 0),
            (128, 3, 0, 128),
            (128, 3, 0, 129),
            (1, 64, 0xFF_FFFF, 5),
            (4096, 320, 0xFFFF_FFFF, 10_000),
            (7, MAX_CSID, 5, 50),
        ] {
            let payload = vec![0xAB; len];
            let bytes = encode_message_bytes(cs, csid, ts, 8, 1, &payload);
            assert_eq!(
                bytes.len(),
                encoded_len(cs, csid, ts, len),
                "{cs} {csid} {ts} {len}"
            );
        }
    }

    #[test]
    fn basic_header_forms_for_one_two_and_three_byte_csids() {
        let first = |csid| encode_message_bytes(128, csid, 0, 8, 0, b"x");
        assert_eq!(&first(63)[..1], &[63]);
        assert_eq!(&first(64)[..2], &[0, 0]);
        assert_eq!(&first(319)[..2], &[0, 255]);
        assert_eq!(&first(320)[..3], &[1, 0, 1]);
        assert_eq!(&first(MAX_CSID)[..3], &[1, 255, 255]);
        for csid in [2, 63, 64, 319, 320, 65_535, MAX_CSID] {
            let mut buf = BytesMut::from(&first(csid)[..]);
            let m = ChunkDecoder::default().decode(&mut buf).unwrap().unwrap();
            assert_eq!(m.csid, csid);
        }
    }

    #[test]
    fn extended_timestamp_is_repeated_on_continuation_chunks() {
        let ts = 0x0100_0000;
        let bytes = encode_message_bytes(4, 3, ts, 9, 1, b"abcdefghij");
        let mut expected = vec![3, 0xFF, 0xFF, 0xFF, 0, 0, 10, 9, 1, 0, 0, 0, 1, 0, 0, 0];
        expected.extend_from_slice(b"abcd");
        expected.extend_from_slice(&[0xC3, 1, 0, 0, 0]);
        expected.extend_from_slice(b"efgh");
        expected.extend_from_slice(&[0xC3, 1, 0, 0, 0]);
        expected.extend_from_slice(b"ij");
        assert_eq!(&bytes[..], &expected[..]);
    }

    #[test]
    fn continuation_chunks_without_repeated_extended_timestamp_are_accepted() {
        let mut dec = ChunkDecoder::default();
        let mut bytes = BytesMut::new();
        set_chunk_size(&mut bytes, 4);
        // librtmp-era sender: no extended timestamp on the type-3 continuation chunks.
        bytes.put_slice(&[3, 0xFF, 0xFF, 0xFF, 0, 0, 10, 9, 1, 0, 0, 0, 1, 0, 0, 0]);
        bytes.put_slice(b"abcd");
        bytes.put_slice(&[0xC3]);
        bytes.put_slice(b"efgh");
        bytes.put_slice(&[0xC3]);
        bytes.put_slice(b"ij");
        let msgs = decode_bytewise(&mut dec, &bytes);
        assert_eq!(msgs.len(), 2);
        assert_eq!(msgs[1], msg(3, 0x0100_0000, 9, 1, b"abcdefghij"));
    }

    #[test]
    fn type_1_2_3_headers_apply_deltas_with_wrapping_add() {
        let mut b = BytesMut::new();
        // type 0: ts 0xFFFFFFF0 (extended), len 2, type 8, msid 1
        b.put_slice(&[
            4, 0xFF, 0xFF, 0xFF, 0, 0, 2, 8, 1, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xF0, 1, 2,
        ]);
        // type 1: delta 0x20, len 3, type 9 -> wraps to 0x10
        b.put_slice(&[0x44, 0, 0, 0x20, 0, 0, 3, 9, 3, 4, 5]);
        // type 2: delta 5
        b.put_slice(&[0x84, 0, 0, 5, 6, 7, 8]);
        // type 3 starting a new message: same delta again
        b.put_slice(&[0xC4, 9, 10, 11]);
        let msgs = decode_all(&mut ChunkDecoder::default(), &mut b);
        let ts: Vec<u32> = msgs.iter().map(|m| m.timestamp).collect();
        assert_eq!(ts, [0xFFFF_FFF0, 0x10, 0x15, 0x1A]);
        assert_eq!(msgs[3], msg(4, 0x1A, 9, 1, &[9, 10, 11]));
    }

    #[test]
    fn type_3_new_message_after_type_0_adds_the_type_0_timestamp_field() {
        // As ffmpeg's and rml_rtmp's encoders mean it: type 0 at 40, then type 3 = +40.
        let mut b = BytesMut::new();
        b.put_slice(&[5, 0, 0, 40, 0, 0, 1, 8, 1, 0, 0, 0, 0xAA]);
        b.put_slice(&[0xC5, 0xBB]);
        let msgs = decode_all(&mut ChunkDecoder::default(), &mut b);
        assert_eq!(msgs[1].timestamp, 80);
        assert_eq!(&msgs[1].payload[..], &[0xBB]);
    }

    #[test]
    fn type_3_new_message_after_extended_header_reads_the_extended_delta() {
        let mut b = BytesMut::new();
        b.put_slice(&[5, 0, 0, 1, 0, 0, 1, 8, 1, 0, 0, 0, 0xAA]);
        // type 2 with extended delta 0x01000000
        b.put_slice(&[0x85, 0xFF, 0xFF, 0xFF, 1, 0, 0, 0, 0xBB]);
        // type 3 new message: extended delta present again
        b.put_slice(&[0xC5, 1, 0, 0, 0, 0xCC]);
        let msgs = decode_all(&mut ChunkDecoder::default(), &mut b);
        let ts: Vec<u32> = msgs.iter().map(|m| m.timestamp).collect();
        assert_eq!(ts, [1, 0x0100_0001, 0x0200_0001]);
        assert_eq!(&msgs[2].payload[..], &[0xCC]);
    }

    #[test]
    fn messages_interleaved_across_csids_are_reassembled() {
        let cs = 16u32;
        let a = msg(4, 100, 8, 1, &Rng(1).bytes(50));
        let v = msg(6, 90, 9, 1, &Rng(2).bytes(40));
        let ea = encode_message_bytes(cs, 4, 100, 8, 1, &a.payload);
        let ev = encode_message_bytes(cs, 6, 90, 9, 1, &v.payload);
        // Split each encoding into its chunks: 12+16, then 1+16 ..., last shorter.
        let split = |e: &Bytes| {
            let mut chunks = vec![e.slice(..28)];
            let mut pos = 28;
            while pos < e.len() {
                let end = (pos + 17).min(e.len());
                chunks.push(e.slice(pos..end));
                pos = end;
            }
            chunks
        };
        let (ca, cv) = (split(&ea), split(&ev));
        let mut wire = BytesMut::new();
        set_chunk_size(&mut wire, cs);
        for i in 0..ca.len().max(cv.len()) {
            for c in [ca.get(i), cv.get(i)].into_iter().flatten() {
                wire.put_slice(c);
            }
        }
        let msgs = decode_bytewise(&mut ChunkDecoder::default(), &wire);
        assert_eq!(&msgs[1..], &[v, a]);
    }

    #[test]
    fn chunk_size_change_mid_stream_applies_to_following_chunks() {
        let mut wire = BytesMut::new();
        let m1 = msg(3, 1, 9, 1, &Rng(3).bytes(300));
        let m2 = msg(3, 2, 9, 1, &Rng(4).bytes(300));
        let m3 = msg(3, 3, 9, 1, &Rng(5).bytes(300));
        encode(128, &m1, &mut wire);
        set_chunk_size(&mut wire, 50);
        encode(50, &m2, &mut wire);
        set_chunk_size(&mut wire, 4096);
        encode(4096, &m3, &mut wire);
        let mut dec = ChunkDecoder::default();
        let msgs = decode_all(&mut dec, &mut wire);
        assert_eq!(msgs.len(), 5);
        assert_eq!((&msgs[0], &msgs[2], &msgs[4]), (&m1, &m2, &m3));
        assert_eq!(dec.chunk_size(), 4096);
    }

    #[test]
    fn abort_drops_the_partial_message_on_that_csid() {
        let mut wire = BytesMut::new();
        let full = encode_message_bytes(128, 5, 0, 9, 1, &[7; 200]);
        wire.put_slice(&full[..12 + 128]); // first chunk only
        abort(&mut wire, 5);
        // A fresh type-0 message on csid 5 is fine after the abort.
        encode(128, &msg(5, 10, 9, 1, b"ok"), &mut wire);
        let msgs = decode_all(&mut ChunkDecoder::default(), &mut wire);
        assert_eq!(msgs.len(), 2);
        assert_eq!(msgs[0].type_id, MSG_ABORT);
        assert_eq!(msgs[1], msg(5, 10, 9, 1, b"ok"));
    }

    #[test]
    fn zero_length_message_is_returned_empty() {
        let mut wire = BytesMut::from(&encode_message_bytes(128, 3, 7, 18, 1, b"")[..]);
        let m = ChunkDecoder::default().decode(&mut wire).unwrap().unwrap();
        assert_eq!(m, msg(3, 7, 18, 1, b""));
    }

    #[test]
    fn incomplete_header_stays_in_the_buffer() {
        let bytes = encode_message_bytes(128, 3, 7, 18, 1, b"hello");
        let mut dec = ChunkDecoder::default();
        let mut buf = BytesMut::from(&bytes[..8]);
        assert_eq!(dec.decode(&mut buf).unwrap(), None);
        assert_eq!(buf.len(), 8);
        buf.put_slice(&bytes[8..14]);
        assert_eq!(dec.decode(&mut buf).unwrap(), None);
        assert!(buf.is_empty(), "header and available payload are consumed");
        buf.put_slice(&bytes[14..]);
        assert_eq!(
            dec.decode(&mut buf).unwrap().unwrap().payload,
            &b"hello"[..]
        );
    }

    #[test]
    fn type_3_without_prior_header_is_an_error() {
        assert_eq!(
            decode_err(&[0xC3, 1, 2]),
            ChunkError::NoPreviousHeader { csid: 3, fmt: 3 }
        );
        let e = decode_err(&[0x40 | 7, 0, 0, 0, 0, 0, 1, 8, 0]);
        assert_eq!(e, ChunkError::NoPreviousHeader { csid: 7, fmt: 1 });
        assert!(e.to_string().contains("csid 7"), "{e}");
    }

    #[test]
    fn over_limit_message_is_an_error_naming_the_sizes() {
        let mut b = vec![6, 0, 0, 0];
        b.extend_from_slice(&[0x1E, 0x84, 0x80, 9, 1, 0, 0, 0]); // 2_000_000 bytes
        let e = decode_err(&b);
        assert_eq!(
            e,
            ChunkError::MessageTooLarge {
                len: 2_000_000,
                csid: 6,
                max: 1_048_576
            }
        );
        assert_eq!(
            e.to_string(),
            "message of 2000000 bytes on csid 6 exceeds max_message 1048576"
        );
    }

    #[test]
    fn chunk_size_zero_and_high_bit_are_errors() {
        let mut wire = BytesMut::new();
        write_message(128, 2, 0, 1, 0, &0u32.to_be_bytes(), &mut wire);
        assert_eq!(decode_err(&wire), ChunkError::InvalidChunkSize(0));
        let mut wire = BytesMut::new();
        write_message(128, 2, 0, 1, 0, &0x8000_0000u32.to_be_bytes(), &mut wire);
        assert_eq!(decode_err(&wire), ChunkError::InvalidChunkSize(0x8000_0000));
        assert_eq!(
            try_encode_message(0, 3, 0, 8, 0, b"x", &mut BytesMut::new()),
            Err(ChunkError::InvalidChunkSize(0))
        );
    }

    #[test]
    fn truncated_control_messages_are_errors() {
        let mut wire = BytesMut::new();
        write_message(128, 2, 0, 1, 0, &[0, 1], &mut wire);
        assert_eq!(
            decode_err(&wire),
            ChunkError::TruncatedControl {
                type_id: 1,
                len: 2,
                need: 4
            }
        );
        let cases: [(u8, &[u8], usize); 6] = [
            (MSG_ACK, &[1, 2, 3], 4),
            (MSG_WINDOW_ACK_SIZE, &[], 4),
            (MSG_SET_PEER_BANDWIDTH, &[0, 0, 0, 1], 5),
            (MSG_USER_CONTROL, &[0], 2),
            (MSG_USER_CONTROL, &[0, 0, 1, 2], 6),
            (MSG_USER_CONTROL, &[0, 3, 0, 0, 0, 1, 0], 10),
        ];
        for (type_id, payload, need) in cases {
            let m = msg(2, 0, type_id, 0, payload);
            assert_eq!(
                parse_control(&m),
                Err(ChunkError::TruncatedControl {
                    type_id,
                    len: payload.len(),
                    need
                })
            );
        }
    }

    #[test]
    fn too_many_chunk_streams_is_an_error() {
        let limits = DecoderLimits {
            max_chunk_streams: 3,
            ..DecoderLimits::default()
        };
        let mut dec = ChunkDecoder::new(limits);
        let mut wire = BytesMut::new();
        for csid in [3, 4, 5, 3, 6] {
            encode(128, &msg(csid, 0, 8, 1, b"a"), &mut wire);
        }
        for _ in 0..4 {
            assert!(dec.decode(&mut wire).unwrap().is_some());
        }
        assert_eq!(
            dec.decode(&mut wire),
            Err(ChunkError::TooManyChunkStreams { csid: 6, max: 3 })
        );
    }

    #[test]
    fn full_header_in_the_middle_of_a_message_is_an_error() {
        let mut wire = BytesMut::new();
        let full = encode_message_bytes(128, 5, 0, 9, 1, &[7; 200]);
        wire.put_slice(&full[..12 + 128]);
        encode(128, &msg(5, 0, 9, 1, b"x"), &mut wire);
        assert_eq!(
            decode_err(&wire),
            ChunkError::HeaderMidMessage { csid: 5, fmt: 0 }
        );
    }

    #[test]
    fn encode_rejects_what_the_format_cannot_carry() {
        let mut out = BytesMut::new();
        assert_eq!(
            try_encode_message(128, 1, 0, 8, 0, b"", &mut out),
            Err(ChunkError::InvalidCsid(1))
        );
        assert_eq!(
            try_encode_message(128, MAX_CSID + 1, 0, 8, 0, b"", &mut out),
            Err(ChunkError::InvalidCsid(MAX_CSID + 1))
        );
        let big = vec![0; MAX_MESSAGE_LEN + 1];
        assert_eq!(
            try_encode_message(128, 3, 0, 8, 0, &big, &mut out),
            Err(ChunkError::PayloadTooLarge(MAX_MESSAGE_LEN + 1))
        );
        assert!(out.is_empty());
        // The infallible form clamps what it can and never writes an undescribable length.
        encode_message(128, 3, 0, 8, 0, &big, &mut out);
        assert!(out.is_empty());
        encode_message(0, 0, 0, 8, 0, b"ab", &mut out);
        assert_eq!(out, encode_message_bytes(1, 2, 0, 8, 0, b"ab"));
    }

    #[test]
    fn control_builders_round_trip_through_the_parser() {
        let mut wire = BytesMut::new();
        set_chunk_size(&mut wire, 4096);
        abort(&mut wire, 9);
        acknowledgement(&mut wire, 123_456);
        window_ack_size(&mut wire, 5_000_000);
        set_peer_bandwidth(&mut wire, 5_000_000, LIMIT_DYNAMIC);
        stream_begin(&mut wire, 1);
        stream_eof(&mut wire, 2);
        stream_dry(&mut wire, 3);
        set_buffer_length(&mut wire, 4, 3000);
        stream_is_recorded(&mut wire, 5);
        ping_request(&mut wire, 6);
        ping_response(&mut wire, 7);
        let msgs = decode_all(&mut ChunkDecoder::default(), &mut wire);
        assert!(msgs.iter().all(|m| m.csid == 2 && m.stream_id == 0));
        let parsed: Vec<ControlMessage> = msgs
            .iter()
            .map(|m| parse_control(m).unwrap().unwrap())
            .collect();
        use ControlMessage as C;
        use UserControlEvent as U;
        assert_eq!(
            parsed,
            [
                C::SetChunkSize(4096),
                C::Abort(9),
                C::Acknowledgement(123_456),
                C::WindowAckSize(5_000_000),
                C::SetPeerBandwidth {
                    size: 5_000_000,
                    limit_type: 2
                },
                C::UserControl(U::StreamBegin(1)),
                C::UserControl(U::StreamEof(2)),
                C::UserControl(U::StreamDry(3)),
                C::UserControl(U::SetBufferLength {
                    stream_id: 4,
                    ms: 3000
                }),
                C::UserControl(U::StreamIsRecorded(5)),
                C::UserControl(U::PingRequest(6)),
                C::UserControl(U::PingResponse(7)),
            ]
        );
    }

    #[test]
    fn parse_control_ignores_media_and_reports_unknown_events() {
        assert_eq!(parse_control(&msg(6, 0, 9, 1, b"")), Ok(None));
        assert_eq!(
            parse_control(&msg(2, 0, 4, 0, &[0, 31, 0, 0, 0, 1])),
            Ok(Some(ControlMessage::UserControl(
                UserControlEvent::Unknown(31)
            )))
        );
        assert_eq!(
            parse_control(&msg(2, 0, 1, 0, &[0, 0, 0, 0])),
            Err(ChunkError::InvalidChunkSize(0))
        );
    }

    fn flv_tag(out: &mut Vec<u8>, type_id: u8, ts: u32, body: &[u8]) {
        out.push(type_id);
        out.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        out.extend_from_slice(&ts.to_be_bytes()[1..]);
        out.push((ts >> 24) as u8);
        out.extend_from_slice(&[0, 0, 0]);
        out.extend_from_slice(body);
        out.extend_from_slice(&(11 + body.len() as u32).to_be_bytes());
    }

    #[test]
    fn aggregate_sub_messages_are_rebased_to_the_aggregate_timestamp() {
        let mut p = Vec::new();
        flv_tag(&mut p, 9, 0x0100_0000, b"video");
        flv_tag(&mut p, 8, 0x0100_0014, b"audio");
        flv_tag(&mut p, 18, 0x0100_0028, b"");
        p.truncate(p.len() - 4); // a missing final back pointer is tolerated
        let agg = msg(6, 500, MSG_AGGREGATE, 1, &p);
        let subs = split_aggregate(&agg).unwrap();
        assert_eq!(
            subs,
            [
                msg(6, 500, 9, 1, b"video"),
                msg(6, 520, 8, 1, b"audio"),
                msg(6, 540, 18, 1, b""),
            ]
        );
    }

    #[test]
    fn malformed_aggregates_are_errors() {
        let mut p = Vec::new();
        flv_tag(&mut p, 9, 0, b"video");
        let cut = msg(6, 0, 22, 1, &p[..14]);
        assert_eq!(
            split_aggregate(&cut),
            Err(ChunkError::AggregateTruncated { offset: 0, len: 14 })
        );
        let mut q = p.clone();
        q.extend_from_slice(&[8, 0, 0]);
        assert_eq!(
            split_aggregate(&msg(6, 0, 22, 1, &q)),
            Err(ChunkError::AggregateTruncated {
                offset: p.len(),
                len: p.len() + 3
            })
        );
        let mut r = Vec::new();
        flv_tag(&mut r, 1, 0, &[0, 0, 0, 1]);
        assert_eq!(
            split_aggregate(&msg(6, 0, 22, 1, &r)),
            Err(ChunkError::AggregateSubType {
                type_id: 1,
                offset: 0
            })
        );
        assert_eq!(split_aggregate(&msg(6, 0, 22, 1, b"")), Ok(vec![]));
    }

    #[test]
    fn random_bytes_never_panic_the_decoder_or_aggregate_splitter() {
        let mut rng = Rng(99);
        for _ in 0..300 {
            let len = rng.below(400) as usize;
            let data = rng.bytes(len);
            let mut dec = ChunkDecoder::default();
            let mut buf = BytesMut::from(&data[..]);
            while let Ok(Some(m)) = dec.decode(&mut buf) {
                let _ = parse_control(&m);
            }
            let _ = split_aggregate(&msg(3, 0, 22, 1, &data));
        }
    }

    fn rml_payload(m: &RtmpMessage) -> MessagePayload {
        MessagePayload {
            timestamp: RtmpTimestamp::new(m.timestamp),
            type_id: m.type_id,
            message_stream_id: m.stream_id,
            data: m.payload.clone(),
        }
    }

    /// The csid rml_rtmp's serializer picks for a type.
    fn rml_csid(type_id: u8) -> u32 {
        match type_id {
            1..=6 => 2,
            18 | 19 => 3,
            9 => 4,
            8 => 5,
            _ => 6,
        }
    }

    #[test]
    fn rml_rtmp_serializer_output_decodes_with_compressed_headers() {
        let mut rng = Rng(7);
        let mut ser = ChunkSerializer::new();
        let mut wire = Vec::new();
        let mut sent = Vec::new();
        let mut ts = [0u32; 3];
        for i in 0..200 {
            if i == 50 {
                wire.extend(
                    ser.set_max_chunk_size(1000, RtmpTimestamp::new(0))
                        .unwrap()
                        .bytes,
                );
                sent.push(msg(2, 0, 1, 0, &1000u32.to_be_bytes()));
            }
            let k = rng.below(3) as usize;
            let type_id = [8, 9, 18][k];
            // Regular spacing with equal sizes makes rml_rtmp emit type 2 and type 3 headers.
            ts[k] = ts[k].wrapping_add([23, 40, 1000][k]);
            if i == 120 {
                ts[k] = ts[k].wrapping_add(0x0100_0000); // an extended delta
            }
            if i == 150 || i == 151 {
                // First message on csid 6: type 0 with an extended timestamp and continuation
                // chunks; then a type-3 new message whose extended delta equals it.
                let t = 0x0200_0000 * (i - 149);
                let m = msg(6, t, 15, 1, &[i as u8; 300]);
                wire.extend(ser.serialize(&rml_payload(&m), false, false).unwrap().bytes);
                sent.push(m);
            }
            let len = if k == 0 { 10 } else { rng.below(2500) as usize };
            let m = msg(rml_csid(type_id), ts[k], type_id, 1, &rng.bytes(len));
            wire.extend(ser.serialize(&rml_payload(&m), false, false).unwrap().bytes);
            sent.push(m);
        }
        let msgs = decode_bytewise(&mut ChunkDecoder::default(), &wire);
        assert_eq!(msgs, sent);
    }

    #[test]
    fn rml_rtmp_deserializer_reads_our_encoder_output() {
        let mut rng = Rng(8);
        let mut de = ChunkDeserializer::new();
        let mut chunk_size = DEFAULT_CHUNK_SIZE;
        let mut wire = BytesMut::new();
        let mut sent = Vec::new();
        for i in 0..120 {
            if i % 30 == 10 {
                chunk_size = [64, 4096, 300, 1][(i / 30) % 4];
                set_chunk_size(&mut wire, chunk_size);
                sent.push((chunk_size, msg(2, 0, 1, 0, &chunk_size.to_be_bytes())));
            }
            let ts = if i >= 100 {
                0xFF_FFFF + i as u32
            } else {
                rng.below(1 << 30) as u32
            };
            let len = rng.below(if chunk_size == 1 { 20 } else { 3000 }) as usize;
            let m = msg(3 + i as u32 % 5, ts, 9, 1, &rng.bytes(len));
            encode(chunk_size, &m, &mut wire);
            sent.push((chunk_size, m));
        }
        let mut first = true;
        for (_, m) in &sent {
            let input: &[u8] = if first { &wire } else { &[] };
            first = false;
            let got = de.get_next_message(input).unwrap().expect("message");
            assert_eq!(got, rml_payload(m));
            if m.type_id == MSG_SET_CHUNK_SIZE {
                let size = u32::from_be_bytes(m.payload[..4].try_into().unwrap());
                de.set_max_chunk_size(size as usize).unwrap();
            }
        }
        assert_eq!(de.get_next_message(&[]).unwrap(), None);
    }
}
