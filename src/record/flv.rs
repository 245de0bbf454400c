//! The bytes of an FLV recording: the file header, tag framing, and the `onMetaData` tag at
//! the start of the file, written twice: a placeholder of a fixed size when the file opens,
//! and in its place the real one (duration, size, keyframe index) when it closes.

use crate::rtmp::amf0::{self, Amf0Value};

/// FLV tag types.
pub const TAG_AUDIO: u8 = 8;
pub const TAG_VIDEO: u8 = 9;
pub const TAG_SCRIPT: u8 = 18;

/// The file header (9 bytes) and the first PreviousTagSize (0).
pub const HEADER_LEN: u64 = 13;
/// Tag header bytes before the body.
pub const TAG_HEADER_LEN: usize = 11;
/// PreviousTagSize after each tag.
pub const TAG_TRAILER_LEN: usize = 4;
/// Largest tag body FLV can frame (24-bit size).
pub const MAX_TAG_BODY: usize = 0xFF_FFFF;

/// Bytes of one keyframe in the index: a number in `filepositions` and one in `times`.
pub const INDEX_BYTES_PER_KEYFRAME: usize = 18;

/// `FLV`, version 1, which streams are present, header size 9, PreviousTagSize0.
pub fn file_header(audio: bool, video: bool) -> [u8; HEADER_LEN as usize] {
    let flags = (u8::from(audio) << 2) | u8::from(video);
    [b'F', b'L', b'V', 1, flags, 0, 0, 0, 9, 0, 0, 0, 0]
}

/// The 11-byte header of a tag of `kind` with a body of `len` bytes at `timestamp` ms (the
/// low 24 bits, then the high 8: FLV's extended timestamp).
pub fn tag_header(kind: u8, len: usize, timestamp: u32) -> [u8; TAG_HEADER_LEN] {
    let len = len.min(MAX_TAG_BODY) as u32;
    let [_, l1, l2, l3] = len.to_be_bytes();
    let [t0, t1, t2, t3] = timestamp.to_be_bytes();
    [kind, l1, l2, l3, t1, t2, t3, t0, 0, 0, 0]
}

/// The PreviousTagSize that follows a tag with a body of `len` bytes.
pub fn tag_trailer(len: usize) -> [u8; TAG_TRAILER_LEN] {
    ((len.min(MAX_TAG_BODY) + TAG_HEADER_LEN) as u32).to_be_bytes()
}

/// What the closing `onMetaData` says about the file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FileFacts {
    pub duration_ms: u64,
    pub file_size: u64,
    /// (ms from the start, byte offset of the tag) of each video keyframe.
    pub keyframes: Vec<(u64, u64)>,
}

/// The whole `onMetaData` tag (header, body, trailer) of exactly `size` bytes: the
/// publisher's properties (`props`), then `duration`, `filesize` and, when it fits, the
/// keyframe index (`keyframes.filepositions` / `keyframes.times`, as yamdi and flvtool2 write
/// it, which ffmpeg, VLC and flv.js use to seek), padded with a string property. `None` if
/// even the tag without the index is larger than `size`.
pub fn metadata_tag(
    props: &[(String, Amf0Value)],
    facts: &FileFacts,
    size: usize,
) -> Option<Vec<u8>> {
    let with_index = build_body(props, facts, true);
    let body = match with_index {
        Some(b) if fits(b.len(), size) => b,
        _ => build_body(props, facts, false).filter(|b| fits(b.len(), size))?,
    };
    let padded = pad_body(body, size - TAG_HEADER_LEN - TAG_TRAILER_LEN)?;
    let mut tag = Vec::with_capacity(size);
    tag.extend_from_slice(&tag_header(TAG_SCRIPT, padded.len(), 0));
    tag.extend_from_slice(&padded);
    tag.extend_from_slice(&tag_trailer(padded.len()));
    (tag.len() == size).then_some(tag)
}

/// Smallest padding: a `pad` strict array of numbers (key 2 + 3, marker 1, count 4) and a
/// `p` string (key 2 + 1, marker 1, length 2).
const PAD_OVERHEAD: usize = 16;
/// Bytes of one number in the padding array.
const PAD_NUMBER: usize = 9;

fn fits(body: usize, size: usize) -> bool {
    body + PAD_OVERHEAD + TAG_HEADER_LEN + TAG_TRAILER_LEN <= size
}

/// `onMetaData` and its ECMA array, without the closing `00 00 09` (the padding goes there).
fn build_body(props: &[(String, Amf0Value)], facts: &FileFacts, index: bool) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(256 + facts.keyframes.len() * INDEX_BYTES_PER_KEYFRAME);
    amf0::write_string(&mut out, "onMetaData");
    let count = props.len() + 2 + usize::from(index) + 1;
    amf0::write_ecma_array_start(&mut out, u32::try_from(count).ok()?);
    for (k, v) in props {
        amf0::write_key(&mut out, k);
        amf0::encode(v, &mut out);
    }
    amf0::write_key(&mut out, "duration");
    amf0::write_number(&mut out, facts.duration_ms as f64 / 1000.0);
    amf0::write_key(&mut out, "filesize");
    amf0::write_number(&mut out, facts.file_size as f64);
    if index {
        let positions = facts
            .keyframes
            .iter()
            .map(|k| Amf0Value::Number(k.1 as f64))
            .collect();
        let times = facts
            .keyframes
            .iter()
            .map(|k| Amf0Value::Number(k.0 as f64 / 1000.0))
            .collect();
        amf0::write_key(&mut out, "keyframes");
        amf0::encode(
            &Amf0Value::Object(vec![
                ("filepositions".into(), Amf0Value::StrictArray(positions)),
                ("times".into(), Amf0Value::StrictArray(times)),
            ]),
            &mut out,
        );
    }
    Some(out)
}

/// Ends `body` with padding and the array's end so that it is exactly `len` bytes long. The
/// padding is an array of zeros and a short string, not one long string: ffmpeg refuses
/// metadata strings of 256 bytes or more.
fn pad_body(mut body: Vec<u8>, len: usize) -> Option<Vec<u8>> {
    const END: usize = 3;
    let room = len.checked_sub(body.len() + END)?;
    let spare = room.checked_sub(PAD_OVERHEAD)?;
    let (numbers, text) = (spare / PAD_NUMBER, spare % PAD_NUMBER);
    amf0::write_key(&mut body, "pad");
    body.push(0x0A);
    body.extend_from_slice(&u32::try_from(numbers).ok()?.to_be_bytes());
    for _ in 0..numbers {
        amf0::write_number(&mut body, 0.0);
    }
    amf0::write_key(&mut body, "p");
    amf0::write_string(&mut body, &" ".repeat(text));
    amf0::write_object_end(&mut body);
    (body.len() == len).then_some(body)
}

/// The publisher's `onMetaData` properties worth keeping in a recording: those of the first
/// object or ECMA array in the data message, without the ones the recording writes itself,
/// at most `MAX_PROPS` of them and `MAX_PROPS_BYTES` encoded.
pub fn publisher_props(payload: &[u8]) -> Vec<(String, Amf0Value)> {
    const MAX_PROPS: usize = 64;
    const MAX_PROPS_BYTES: usize = 4096;
    let mut d = amf0::Decoder::new(payload);
    for _ in 0..4 {
        let Ok(Some(v)) = d.next_value() else {
            break;
        };
        if let Some(props) = v.properties() {
            let mut kept = Vec::new();
            let mut bytes = 0;
            for (k, v) in props.iter().take(MAX_PROPS) {
                if matches!(
                    k.as_str(),
                    "duration" | "filesize" | "keyframes" | "pad" | "p"
                ) {
                    continue;
                }
                let mut enc = Vec::new();
                amf0::encode(v, &mut enc);
                bytes += k.len() + 2 + enc.len();
                if bytes > MAX_PROPS_BYTES {
                    break;
                }
                kept.push((k.clone(), v.clone()));
            }
            return kept;
        }
    }
    Vec::new()
}

/// (type, body length, timestamp) of an 11-byte tag header.
pub fn parse_tag_header(h: &[u8; TAG_HEADER_LEN]) -> (u8, usize, u32) {
    let [kind, l1, l2, l3, t1, t2, t3, t0, ..] = *h;
    (
        kind,
        u32::from_be_bytes([0, l1, l2, l3]) as usize,
        u32::from_be_bytes([t0, t1, t2, t3]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_frame_their_body_with_extended_timestamps() {
        assert_eq!(
            tag_header(TAG_VIDEO, 0x010203, 0x0A0B0C0D),
            [9, 1, 2, 3, 0x0B, 0x0C, 0x0D, 0x0A, 0, 0, 0]
        );
        assert_eq!(tag_trailer(100), 111u32.to_be_bytes());
        assert_eq!(file_header(true, false)[4], 4);
        assert_eq!(file_header(true, true)[4], 5);
    }

    #[test]
    fn metadata_is_exactly_the_reserved_size_and_decodes() {
        let props = vec![("width".to_string(), Amf0Value::Number(1280.0))];
        let facts = FileFacts {
            duration_ms: 12_500,
            file_size: 4_000_000,
            keyframes: (0..6).map(|i| (i * 2000, 100_000 * i + 4109)).collect(),
        };
        for size in [400, 4096, 70_000, 200_000] {
            let tag = metadata_tag(&props, &facts, size).unwrap();
            assert_eq!(tag.len(), size);
            let body = &tag[TAG_HEADER_LEN..size - TAG_TRAILER_LEN];
            let values = amf0::decode_all(body).unwrap();
            assert_eq!(values[0].as_str(), Some("onMetaData"));
            let meta = &values[1];
            assert_eq!(meta.get("width").and_then(Amf0Value::as_f64), Some(1280.0));
            assert_eq!(meta.get("duration").and_then(Amf0Value::as_f64), Some(12.5));
            assert_eq!(meta.get("filesize").and_then(Amf0Value::as_f64), Some(4e6));
            let kf = meta.get("keyframes").unwrap();
            let Some(Amf0Value::StrictArray(times)) = kf.get("times") else {
                panic!("{kf:?}")
            };
            assert_eq!(times.len(), 6);
            assert_eq!(times[5].as_f64(), Some(10.0));
            // The trailer is the tag's size, as every reader checks.
            assert_eq!(tag_trailer(body.len()), tag[size - 4..]);
        }
    }

    #[test]
    fn an_index_too_large_for_the_room_is_left_out_not_cut() {
        let facts = FileFacts {
            duration_ms: 1000,
            file_size: 10,
            keyframes: (0..1000).map(|i| (i, i)).collect(),
        };
        let tag = metadata_tag(&[], &facts, 2048).unwrap();
        let values = amf0::decode_all(&tag[TAG_HEADER_LEN..2048 - 4]).unwrap();
        assert!(values[1].get("keyframes").is_none());
        assert_eq!(
            values[1].get("duration").and_then(Amf0Value::as_f64),
            Some(1.0)
        );
        assert!(metadata_tag(&[], &facts, 40).is_none());
    }

    #[test]
    fn tag_headers_read_back() {
        let h = tag_header(TAG_AUDIO, 70_000, 0x0100_0050);
        assert_eq!(parse_tag_header(&h), (TAG_AUDIO, 70_000, 0x0100_0050));
    }

    #[test]
    fn publisher_props_skip_what_the_recording_writes() {
        let mut payload = Vec::new();
        amf0::write_string(&mut payload, "onMetaData");
        amf0::encode(
            &Amf0Value::EcmaArray(vec![
                ("duration".into(), Amf0Value::Number(0.0)),
                ("width".into(), Amf0Value::Number(640.0)),
                ("encoder".into(), Amf0Value::String("obs".into())),
            ]),
            &mut payload,
        );
        let props = publisher_props(&payload);
        assert_eq!(props.len(), 2);
        assert_eq!(props[0].0, "width");
    }
}
