//! One outgoing message of a live stream: its chunk headers, encoded once, and the publisher's
//! payload itself, shared (not copied) by the start cache, every player queue and the file
//! outputs. The bytes on the wire are the headers and payload pieces interleaved, written with
//! vectored writes.

use std::io::IoSlice;

use bytes::{Bytes, BytesMut};

use crate::rtmp::chunk::{encode_chunk_headers, MAX_MESSAGE_LEN};
use crate::rtmp::ertmp::Wire;

/// A connection, as the glue numbers them (unique per worker process).
pub type ClientId = u64;

/// Chunk stream of data messages (onMetaData), as the C module numbers them.
pub const CSID_DATA: u32 = 5;
/// Chunk stream of audio messages.
pub const CSID_AUDIO: u32 = 6;
/// Chunk stream of video messages.
pub const CSID_VIDEO: u32 = 7;
/// Message stream id players receive live media on (the id `createStream` hands out).
pub const LIVE_MSG_STREAM_ID: u32 = 1;
/// RTMP message type ids (spec 7.1) of what the fan-out sends.
const TYPE_AUDIO: u8 = 8;
const TYPE_VIDEO: u8 = 9;
const TYPE_DATA_AMF0: u8 = 18;
/// Header encoding allocates buffers of at least this size and carves frames' headers out of
/// them, so a stream of frames does not cost one allocation each.
pub const ENCODE_BLOCK: usize = 4 * 1024;

/// What a queued message is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameKind {
    Audio,
    Video,
    /// onMetaData (AMF0 data message, `@setDataFrame` already stripped by the glue). Cached
    /// and resent to joining players.
    Data,
    /// A message the glue built for one player (status, user control); never dropped.
    Control,
}

impl FrameKind {
    fn csid_and_type(self) -> (u32, u8) {
        match self {
            FrameKind::Audio => (CSID_AUDIO, TYPE_AUDIO),
            FrameKind::Video => (CSID_VIDEO, TYPE_VIDEO),
            FrameKind::Data | FrameKind::Control => (CSID_DATA, TYPE_DATA_AMF0),
        }
    }
}

/// A complete RTMP message as players receive it, plus what the queues need to know about it.
/// Cloning is cheap: `head` and `payload` are reference-counted.
#[derive(Clone, Debug)]
pub struct Frame {
    pub kind: FrameKind,
    pub timestamp: u32,
    /// A video keyframe of the stream's main track (a place a player can start).
    pub keyframe: bool,
    /// A codec configuration message (AVC/HEVC/AAC/... sequence header).
    pub sequence_header: bool,
    /// Legacy or Enhanced RTMP header (and which codec): which players may take it.
    pub wire: Wire,
    /// The first chunk's header, then the header of every later chunk (players' chunk size,
    /// message stream id 1). A control frame holds its whole encoded message here.
    head: Bytes,
    /// Length of the first chunk's header in `head`.
    first_len: usize,
    /// The message payload: the publisher's own buffer.
    pub payload: Bytes,
    /// Payload bytes per chunk.
    chunk: usize,
    /// Length of the message payload (without chunk headers).
    pub payload_len: usize,
    /// Bytes on the wire.
    wire_len: usize,
    /// Length of the trailer at the end of `head` that follows the payload (an FLV tag's
    /// previous-tag-size, and the chunked-encoding line end): 0 for RTMP messages.
    tail_len: usize,
}

/// How a player's bytes are framed: RTMP chunks, or FLV tags over HTTP (HTTP-FLV), in
/// HTTP/1.1 chunked transfer encoding or close-delimited (HTTP/1.0).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Delivery {
    #[default]
    Rtmp,
    Flv {
        chunked: bool,
    },
}

/// FLV tag header length (type, 24-bit size, timestamp and its extension, stream id).
pub const FLV_TAG_HEADER_LEN: usize = 11;

impl Frame {
    /// Encodes a publisher message's headers once; the payload is shared, not copied.
    /// `scratch` is a reusable buffer the headers are split off from. A payload the 24-bit
    /// length cannot carry yields an empty frame, which the queues ignore.
    pub fn encode(
        kind: FrameKind,
        timestamp: u32,
        payload: &Bytes,
        chunk_size: u32,
        scratch: &mut BytesMut,
    ) -> Frame {
        let (csid, type_id) = kind.csid_and_type();
        if payload.len() > MAX_MESSAGE_LEN {
            return Frame::control(Bytes::new());
        }
        if scratch.capacity() < 64 {
            *scratch = BytesMut::with_capacity(ENCODE_BLOCK);
        }
        scratch.clear();
        let first_len = encode_chunk_headers(
            csid,
            timestamp,
            type_id,
            LIVE_MSG_STREAM_ID,
            payload.len(),
            scratch,
        );
        let head = scratch.split().freeze();
        let chunk = usize::try_from(chunk_size.max(1)).unwrap_or(usize::MAX);
        let chunks = payload.len().div_ceil(chunk).max(1);
        let cont_len = head.len().saturating_sub(first_len);
        Frame {
            kind,
            timestamp,
            keyframe: false,
            sequence_header: false,
            wire: Wire::Legacy,
            wire_len: first_len + payload.len() + (chunks - 1) * cont_len,
            head,
            first_len,
            payload: payload.clone(),
            chunk,
            payload_len: payload.len(),
            tail_len: 0,
        }
    }

    /// The same message as an FLV tag (HTTP-FLV): tag header, the SAME shared payload, then
    /// the previous-tag-size, each its own piece; with `chunked`, the tag is one HTTP chunk
    /// (size line before, CRLF after). The headers are carved out of `scratch` like
    /// [`Frame::encode`]'s, so one view serves every HTTP-FLV player of a stream. A control
    /// frame (bytes the glue built for one player) is returned as is.
    pub fn to_flv(&self, chunked: bool, scratch: &mut BytesMut) -> Frame {
        let type_id = match self.kind {
            FrameKind::Audio => TYPE_AUDIO,
            FrameKind::Video => TYPE_VIDEO,
            FrameKind::Data => TYPE_DATA_AMF0,
            FrameKind::Control => return self.clone(),
        };
        let len = self.payload.len();
        if len > MAX_MESSAGE_LEN {
            return Frame::control(Bytes::new());
        }
        if scratch.capacity() < 64 {
            *scratch = BytesMut::with_capacity(ENCODE_BLOCK);
        }
        scratch.clear();
        let tag_len = FLV_TAG_HEADER_LEN + len;
        if chunked {
            // The chunk is the whole tag and its previous-tag-size.
            let _ = std::fmt::Write::write_fmt(
                &mut HexWriter(scratch),
                format_args!("{:x}\r\n", tag_len + 4),
            );
        }
        let [t3, t2, t1, t0] = self.timestamp.to_be_bytes();
        let [_, s2, s1, s0] = (len as u32).to_be_bytes();
        // Type, 24-bit size, the timestamp's 24 low bits then its high 8 (the FLV "timestamp
        // extended" byte), stream id 0.
        scratch.extend_from_slice(&[type_id, s2, s1, s0, t2, t1, t0, t3, 0, 0, 0]);
        let first_len = scratch.len();
        scratch.extend_from_slice(&(tag_len as u32).to_be_bytes());
        if chunked {
            scratch.extend_from_slice(b"\r\n");
        }
        let tail_len = scratch.len() - first_len;
        let head = scratch.split().freeze();
        Frame {
            kind: self.kind,
            timestamp: self.timestamp,
            keyframe: self.keyframe,
            sequence_header: self.sequence_header,
            wire: self.wire,
            wire_len: head.len() + len,
            head,
            first_len,
            payload: self.payload.clone(),
            chunk: usize::MAX,
            payload_len: len,
            tail_len,
        }
    }

    /// This message as `delivery` frames it ([`Frame::to_flv`] for HTTP-FLV).
    pub fn for_delivery(&self, delivery: Delivery, scratch: &mut BytesMut) -> Frame {
        match delivery {
            Delivery::Rtmp => self.clone(),
            Delivery::Flv { chunked } => self.to_flv(chunked, scratch),
        }
    }

    /// Wraps bytes the glue already encoded for one player.
    pub fn control(chunked: Bytes) -> Frame {
        Frame {
            kind: FrameKind::Control,
            timestamp: 0,
            keyframe: false,
            sequence_header: false,
            wire: Wire::Legacy,
            payload_len: chunked.len(),
            wire_len: chunked.len(),
            first_len: chunked.len(),
            head: chunked,
            payload: Bytes::new(),
            chunk: usize::MAX,
            tail_len: 0,
        }
    }

    /// Messages a player cannot do without: never dropped when its queue overflows.
    pub fn is_mandatory(&self) -> bool {
        self.sequence_header || matches!(self.kind, FrameKind::Data | FrameKind::Control)
    }

    /// A video keyframe (a place a player can start decoding).
    pub fn is_video_keyframe(&self) -> bool {
        self.kind == FrameKind::Video && self.keyframe
    }

    /// Encoded length in bytes.
    pub fn len(&self) -> usize {
        self.wire_len
    }

    pub fn is_empty(&self) -> bool {
        self.wire_len == 0
    }

    /// The wire bytes in order, as pieces: first header, payload chunk, then (header, chunk)
    /// for every later chunk.
    fn pieces(&self) -> impl Iterator<Item = &[u8]> {
        let tail_at = self.head.len().saturating_sub(self.tail_len);
        let first = self.head.get(..self.first_len).unwrap_or_default();
        let cont = self.head.get(self.first_len..tail_at).unwrap_or_default();
        let tail = self.head.get(tail_at..).unwrap_or_default();
        let mut chunks = self.payload.chunks(self.chunk);
        let first_chunk = chunks.next().unwrap_or_default();
        [first, first_chunk]
            .into_iter()
            .chain(chunks.flat_map(move |c| [cont, c]))
            .chain(std::iter::once(tail))
            .filter(|p| !p.is_empty())
    }

    /// Fills `dst` with the wire bytes from `offset` on (as many slices as fit); returns how
    /// many slices were filled.
    pub fn io_slices_from<'a>(&'a self, offset: usize, dst: &mut [IoSlice<'a>]) -> usize {
        let mut skip = offset;
        let mut n = 0;
        for piece in self.pieces() {
            if skip >= piece.len() {
                skip -= piece.len();
                continue;
            }
            let Some(slot) = dst.get_mut(n) else { break };
            *slot = IoSlice::new(piece.get(skip..).unwrap_or_default());
            skip = 0;
            n += 1;
        }
        n
    }

    /// The whole message as it goes on the wire (tests compare bytes).
    #[cfg(test)]
    pub fn wire_bytes(&self) -> Bytes {
        self.bytes_from(0)
    }

    /// A frame of `len` zero bytes on the wire (queue and cache tests count bytes).
    #[cfg(test)]
    pub fn test_frame(kind: FrameKind, timestamp: u32, keyframe: bool, bytes: &[u8]) -> Frame {
        Frame {
            kind,
            timestamp,
            keyframe,
            ..Frame::control(Bytes::copy_from_slice(bytes))
        }
    }

    /// The wire bytes from `offset` on, copied into one buffer (for the rare partly written
    /// message that must move elsewhere).
    pub fn bytes_from(&self, offset: usize) -> Bytes {
        let mut out = BytesMut::with_capacity(self.wire_len.saturating_sub(offset));
        let mut skip = offset;
        for piece in self.pieces() {
            if skip >= piece.len() {
                skip -= piece.len();
                continue;
            }
            out.extend_from_slice(piece.get(skip..).unwrap_or_default());
            skip = 0;
        }
        out.freeze()
    }
}

/// `fmt::Write` into a `BytesMut` (the chunk size line of an HTTP-FLV tag).
struct HexWriter<'a>(&'a mut BytesMut);

impl std::fmt::Write for HexWriter<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::rtmp::chunk::encode_message;

    fn wire(f: &Frame) -> Vec<u8> {
        f.bytes_from(0).to_vec()
    }

    fn b(v: &[u8]) -> Bytes {
        Bytes::copy_from_slice(v)
    }

    #[test]
    fn encoded_frame_uses_the_kinds_chunk_stream_and_message_stream_1() {
        let mut scratch = BytesMut::new();
        let f = Frame::encode(
            FrameKind::Video,
            40,
            &b(&[0x17, 1, 0, 0, 0]),
            128,
            &mut scratch,
        );
        // Type-0 basic header with csid 7, timestamp 40, length 5, type 9, stream id 1 (LE).
        assert_eq!(
            wire(&f),
            &[0x07, 0, 0, 40, 0, 0, 5, 9, 1, 0, 0, 0, 0x17, 1, 0, 0, 0]
        );
        assert_eq!(f.payload_len, 5);
        let a = Frame::encode(FrameKind::Audio, 0, &b(&[0xaf, 1]), 128, &mut scratch);
        assert_eq!(wire(&a)[0], 0x06);
        assert_eq!(wire(&a)[7], 8);
        let d = Frame::encode(FrameKind::Data, 0, &b(&[2, 0, 0]), 128, &mut scratch);
        assert_eq!(wire(&d)[0], 0x05);
        assert_eq!(wire(&d)[7], 18);
        // Earlier frames are not disturbed by later encodes into the same scratch block.
        assert_eq!(wire(&f)[0], 0x07);
    }

    #[test]
    fn the_payload_is_shared_not_copied() {
        let mut scratch = BytesMut::new();
        let payload = b(&[0x27; 1000]);
        let f = Frame::encode(FrameKind::Video, 0, &payload, 4096, &mut scratch);
        assert_eq!(f.payload.as_ptr(), payload.as_ptr());
        let mut slices = [IoSlice::new(&[]); 4];
        assert_eq!(f.io_slices_from(0, &mut slices), 2);
        assert_eq!(slices[1].as_ptr(), payload.as_ptr());
    }

    #[test]
    fn wire_bytes_are_what_the_chunk_encoder_writes_from_any_offset() {
        let mut scratch = BytesMut::new();
        for (len, chunk, ts) in [
            (0usize, 128u32, 0u32),
            (1, 128, 5),
            (128, 128, 0xFF_FFFE),
            (129, 128, 0xFF_FFFF),
            (1000, 60, 0x0100_0000),
            (5000, 4096, 40),
            (8192, 4096, 1),
        ] {
            let payload: Bytes = (0..len).map(|i| (i * 7) as u8).collect::<Vec<u8>>().into();
            let f = Frame::encode(FrameKind::Video, ts, &payload, chunk, &mut scratch);
            let mut want = BytesMut::new();
            encode_message(chunk, CSID_VIDEO, ts, 9, 1, &payload, &mut want);
            assert_eq!(wire(&f), &want[..], "{len} {chunk} {ts}");
            assert_eq!(f.len(), want.len());
            for offset in [
                0,
                1,
                11,
                12,
                13,
                want.len() / 2,
                want.len().saturating_sub(1),
            ] {
                let mut slices = [IoSlice::new(&[]); 64];
                let n = f.io_slices_from(offset, &mut slices);
                let got: Vec<u8> = slices[..n].iter().flat_map(|s| s.iter().copied()).collect();
                assert_eq!(
                    got,
                    &want[offset.min(want.len())..],
                    "{len} {chunk} {ts} @{offset}"
                );
                assert_eq!(&f.bytes_from(offset)[..], &want[offset.min(want.len())..]);
            }
        }
    }

    #[test]
    fn long_payloads_are_chunked_with_type_3_headers() {
        let mut scratch = BytesMut::new();
        let payload = b(&[0xaa; 300]);
        let f = Frame::encode(FrameKind::Video, 0x0100_0000, &payload, 128, &mut scratch);
        // 12-byte header + 4 extended, 2 continuations of 1 + 4 bytes.
        assert_eq!(f.len(), 300 + 16 + 2 * 5);
        assert_eq!(wire(&f)[16 + 128], 0xc7);
    }
}
