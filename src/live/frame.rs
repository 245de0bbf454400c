//! One outgoing message of a live stream, chunk-encoded once and shared by every player.

use bytes::{Bytes, BytesMut};

use crate::rtmp::chunk::encode_message;

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
/// Encoding allocates buffers of at least this size and carves frames out of them, so a
/// stream of small audio frames does not cost one allocation each.
pub const ENCODE_BLOCK: usize = 64 * 1024;

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

/// A complete chunk-encoded RTMP message plus what the queues need to know about it.
/// Cloning is cheap: `chunked` is reference-counted.
#[derive(Clone, Debug)]
pub struct Frame {
    pub kind: FrameKind,
    pub timestamp: u32,
    /// A video keyframe of the stream's main track (a place a player can start).
    pub keyframe: bool,
    /// A codec configuration message (AVC/HEVC/AAC/... sequence header).
    pub sequence_header: bool,
    /// The whole message, chunked with the players' chunk size, message stream id 1.
    pub chunked: Bytes,
    /// Length of the message payload (without chunk headers).
    pub payload_len: usize,
}

impl Frame {
    /// Encodes a publisher message once. `scratch` is a reusable buffer the frame's bytes are
    /// split off from. A payload the 24-bit length cannot carry yields an empty frame, which
    /// the queues ignore.
    pub fn encode(
        kind: FrameKind,
        timestamp: u32,
        payload: &[u8],
        chunk_size: u32,
        scratch: &mut BytesMut,
    ) -> Frame {
        let (csid, type_id) = kind.csid_and_type();
        // Upper bound of the encoded size: 1-byte basic headers (csid < 64), an 11-byte message
        // header, and a 4-byte extended timestamp on every chunk in the worst case.
        let chunks = payload.len() / chunk_size.max(1) as usize + 1;
        let need = payload
            .len()
            .saturating_add(11)
            .saturating_add(chunks.saturating_mul(5));
        if scratch.capacity() < need {
            *scratch = BytesMut::with_capacity(need.max(ENCODE_BLOCK));
        }
        scratch.clear();
        encode_message(
            chunk_size,
            csid,
            timestamp,
            type_id,
            LIVE_MSG_STREAM_ID,
            payload,
            scratch,
        );
        Frame {
            kind,
            timestamp,
            keyframe: false,
            sequence_header: false,
            chunked: scratch.split().freeze(),
            payload_len: payload.len(),
        }
    }

    /// Wraps bytes the glue already encoded for one player.
    pub fn control(chunked: Bytes) -> Frame {
        Frame {
            kind: FrameKind::Control,
            timestamp: 0,
            keyframe: false,
            sequence_header: false,
            payload_len: chunked.len(),
            chunked,
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
        self.chunked.len()
    }

    pub fn is_empty(&self) -> bool {
        self.chunked.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_frame_uses_the_kinds_chunk_stream_and_message_stream_1() {
        let mut scratch = BytesMut::new();
        let f = Frame::encode(FrameKind::Video, 40, &[0x17, 1, 0, 0, 0], 128, &mut scratch);
        // Type-0 basic header with csid 7, timestamp 40, length 5, type 9, stream id 1 (LE).
        assert_eq!(
            &f.chunked[..],
            &[0x07, 0, 0, 40, 0, 0, 5, 9, 1, 0, 0, 0, 0x17, 1, 0, 0, 0]
        );
        assert_eq!(f.payload_len, 5);
        let a = Frame::encode(FrameKind::Audio, 0, &[0xaf, 1], 128, &mut scratch);
        assert_eq!(a.chunked[0], 0x06);
        assert_eq!(a.chunked[7], 8);
        let d = Frame::encode(FrameKind::Data, 0, &[2, 0, 0], 128, &mut scratch);
        assert_eq!(d.chunked[0], 0x05);
        assert_eq!(d.chunked[7], 18);
        // Earlier frames are not disturbed by later encodes into the same scratch block.
        assert_eq!(f.chunked[0], 0x07);
    }

    #[test]
    fn frames_carved_from_one_block_share_its_allocation() {
        let mut scratch = BytesMut::new();
        let a = Frame::encode(FrameKind::Audio, 0, &[0xaf, 1, 2], 4096, &mut scratch);
        let b = Frame::encode(FrameKind::Audio, 1, &[0xaf, 1, 3], 4096, &mut scratch);
        // b starts right after a in the same buffer.
        assert_eq!(a.chunked.as_ptr().wrapping_add(a.len()), b.chunked.as_ptr());
    }

    #[test]
    fn long_payloads_are_chunked_with_type_3_headers() {
        let mut scratch = BytesMut::new();
        let payload = vec![0xaa; 300];
        let f = Frame::encode(FrameKind::Video, 0x0100_0000, &payload, 128, &mut scratch);
        // 12-byte header + 4 extended, 2 continuations of 1 + 4 bytes.
        assert_eq!(f.len(), 300 + 16 + 2 * 5);
        assert_eq!(f.chunked[16 + 128], 0xc7);
    }
}
