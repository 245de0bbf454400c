//! ChunkDecoder with small limits, fed a chunk stream in arbitrary slices; every message it
//! returns also goes through parse_control and split_aggregate. Input: one byte choosing the
//! slicing and the limits, then the chunk stream (what follows the handshake).
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use nginx_rtmp_rs::rtmp::chunk::{
    encode_message_bytes, parse_control, split_aggregate, ChunkDecoder, DecoderLimits,
    DEFAULT_CHUNK_SIZE, MSG_AGGREGATE,
};
use nginx_rtmp_rs_fuzz::{slices, Rng};

fuzz_target!(|data: &[u8]| {
    let Some((&seed, stream)) = data.split_first() else {
        return;
    };
    let mut rng = Rng::new(seed);
    let limits = DecoderLimits {
        // Small, so the limits themselves are reached: 64 KiB messages, 2..9 chunk streams.
        max_message: (64 * 1024) >> (seed & 3),
        max_chunk_streams: 2 + usize::from(seed >> 5),
    };
    let mut dec = ChunkDecoder::new(limits);
    let mut buf = BytesMut::new();
    'feed: for piece in slices(stream, &mut rng, 4096) {
        buf.extend_from_slice(piece);
        loop {
            match dec.decode(&mut buf) {
                Ok(Some(msg)) => {
                    assert!(msg.payload.len() <= limits.max_message as usize);
                    let _ = parse_control(&msg);
                    if msg.type_id == MSG_AGGREGATE {
                        if let Ok(parts) = split_aggregate(&msg) {
                            assert!(parts.len() <= msg.payload.len() / 11 + 1);
                        }
                    }
                    // What was decoded re-encodes, and decodes back to the same message.
                    let mut wire = BytesMut::from(
                        &encode_message_bytes(
                            DEFAULT_CHUNK_SIZE,
                            msg.csid,
                            msg.timestamp,
                            msg.type_id,
                            msg.stream_id,
                            &msg.payload,
                        )[..],
                    );
                    let mut fresh = ChunkDecoder::new(DecoderLimits::default());
                    let back = fresh.decode(&mut wire).expect("re-encoded message decodes");
                    assert_eq!(back.as_ref(), Some(&msg), "round trip");
                }
                Ok(None) => break,
                Err(_) => break 'feed,
            }
        }
    }
});
