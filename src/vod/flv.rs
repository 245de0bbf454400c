//! Reading an FLV file for VOD: its `onMetaData` and codec headers when it opens, then its
//! tags in file order from any keyframe, a block at a time (never the whole file in memory).
//! Seeking uses the keyframe index in `onMetaData` (our recordings, yamdi, flvtool2,
//! `ffmpeg -flvflags add_keyframe_index`) and otherwise scans tag headers once, remembering
//! every keyframe it passes.

use bytes::Bytes;

use super::{ReadAt, ReadEnd, VodError, VodMessage, READ_BLOCK};
use crate::media::flv as tags;
use crate::record::flv::{parse_tag_header, TAG_AUDIO, TAG_HEADER_LEN, TAG_SCRIPT, TAG_VIDEO};
use crate::rtmp::amf0::{self, Amf0Value};

/// Tags looked at after the file header for metadata and codec headers.
const HEAD_SCAN_TAGS: usize = 64;
/// Largest `onMetaData` read when the file opens (ours reserve 64 KiB for their index).
const MAX_METADATA_BYTES: usize = 4 * 1024 * 1024;
/// Keyframes remembered for seeking (a 10-hour file with 1 s GOPs has 36 000).
const MAX_INDEX: usize = 1_000_000;
/// Properties of a file's `onMetaData` that are not sent to players: the seek index and our
/// recordings' padding (large, and of no use to a player).
const PRIVATE_PROPERTIES: &[&str] = &["keyframes", "pad"];

/// An open FLV file and the position of the next tag to send.
#[derive(Debug)]
pub struct FlvCursor {
    len: u64,
    /// Offset of the first tag.
    first_tag: u64,
    /// Offset of the next tag to read.
    offset: u64,
    /// The publisher's properties, for the `onMetaData` players get.
    properties: Vec<(String, Amf0Value)>,
    /// Codec headers (video first), sent before the first frame and after every seek.
    headers: Vec<(u8, Bytes)>,
    headers_due: bool,
    /// (ms, offset) of video keyframes, ascending; complete up to `indexed_to`.
    index: Vec<(u32, u64)>,
    indexed_to: u64,
    duration_ms: u64,
    /// The block last read: (its file offset, its bytes).
    block: (u64, Bytes),
}

/// The fields of one tag header, with where its body starts.
struct Tag {
    kind: u8,
    body_len: usize,
    timestamp: u32,
}

impl FlvCursor {
    /// Reads the file header, the metadata and the codec headers at the start of `file`.
    pub fn open<R: ReadAt + ?Sized>(file: &R, len: u64) -> Result<FlvCursor, VodError> {
        let mut head = [0u8; 9];
        super::read_exact_at(file, &mut head, 0)?;
        let [f, l, v, _version, _flags, o0, o1, o2, o3] = head;
        if [f, l, v] != *b"FLV" {
            return Err(VodError::Format("not an FLV file".into()));
        }
        let data_offset = u64::from(u32::from_be_bytes([o0, o1, o2, o3]));
        if data_offset < 9 || data_offset > len {
            return Err(VodError::Format("FLV header size out of range".into()));
        }
        let mut cursor = FlvCursor {
            len,
            first_tag: data_offset + 4,
            offset: data_offset + 4,
            properties: Vec::new(),
            headers: Vec::new(),
            headers_due: true,
            index: Vec::new(),
            indexed_to: data_offset + 4,
            duration_ms: 0,
            block: (0, Bytes::new()),
        };
        cursor.read_head(file)?;
        Ok(cursor)
    }

    /// Collects metadata and codec headers from the first tags (up to the first frame).
    fn read_head<R: ReadAt + ?Sized>(&mut self, file: &R) -> Result<(), VodError> {
        let mut at = self.first_tag;
        let mut index_from_metadata = None;
        for _ in 0..HEAD_SCAN_TAGS {
            let Some(tag) = self.tag_at(file, at)? else {
                break;
            };
            if tag.kind == TAG_SCRIPT && tag.body_len <= MAX_METADATA_BYTES {
                let body = self.body(file, at, tag.body_len)?;
                if let Some(props) = on_metadata(&body) {
                    if self.properties.is_empty() {
                        index_from_metadata = keyframe_index(&props, self.len);
                        if let Some(d) = props.iter().find(|(k, _)| k == "duration") {
                            let secs = d.1.as_f64().unwrap_or(0.0);
                            if secs.is_finite() && secs > 0.0 {
                                self.duration_ms = (secs * 1000.0) as u64;
                            }
                        }
                        self.properties = props
                            .into_iter()
                            .filter(|(k, _)| !PRIVATE_PROPERTIES.contains(&k.as_str()))
                            .collect();
                    }
                }
            } else if tag.kind == TAG_AUDIO || tag.kind == TAG_VIDEO {
                let body = self.body(file, at, tag.body_len.min(MAX_METADATA_BYTES))?;
                if !is_sequence_header(tag.kind, &body) {
                    break;
                }
                self.headers.retain(|(k, _)| *k != tag.kind);
                self.headers.push((tag.kind, body));
            }
            at = next_tag(at, tag.body_len);
        }
        // Video first: a player sets up its decoder before the first keyframe.
        self.headers.sort_by_key(|(k, _)| u8::from(*k != TAG_VIDEO));
        if let Some(index) = index_from_metadata {
            self.indexed_to = index.last().map_or(self.first_tag, |&(_, o)| o);
            self.index = index;
        }
        Ok(())
    }

    /// Length of the file's `duration`, 0 when it has none.
    pub fn duration_ms(&self) -> u64 {
        self.duration_ms
    }

    /// The file's metadata as players get it (without the seek index).
    pub fn properties(&self) -> &[(String, Amf0Value)] {
        &self.properties
    }

    /// Moves to the last video keyframe at or before `to_ms` (the first tag when there is
    /// none); returns its timestamp. The codec headers go out again before it.
    pub fn seek<R: ReadAt + ?Sized>(&mut self, file: &R, to_ms: u32) -> Result<u32, VodError> {
        self.headers_due = true;
        if self.index.last().is_none_or(|&(t, _)| t <= to_ms) {
            self.scan_index(file, to_ms)?;
        }
        let found = self.index.iter().rev().find(|&&(t, _)| t <= to_ms);
        let (ts, offset) = found.copied().unwrap_or((0, self.first_tag));
        self.offset = offset;
        Ok(ts)
    }

    /// Extends the keyframe index by reading tag headers until one is past `to_ms`.
    fn scan_index<R: ReadAt + ?Sized>(&mut self, file: &R, to_ms: u32) -> Result<(), VodError> {
        let mut at = self.indexed_to;
        while let Some(tag) = self.tag_at(file, at)? {
            if tag.kind == TAG_VIDEO {
                let mut first = [0u8; 2];
                if tag.body_len >= 2 {
                    super::read_exact_at(file, &mut first, at + TAG_HEADER_LEN as u64)?;
                }
                let key = first[0] >> 4 == 1 && !is_sequence_header(TAG_VIDEO, &first);
                let newer = self.index.last().is_none_or(|&(_, o)| o < at);
                if key && newer && self.index.len() < MAX_INDEX {
                    self.index.push((tag.timestamp, at));
                }
                if tag.timestamp > to_ms && key {
                    break;
                }
            }
            at = next_tag(at, tag.body_len);
            self.indexed_to = at;
        }
        Ok(())
    }

    /// Appends tags from the current position while their timestamps are at most `until_ms`
    /// and `max_bytes` of bodies allow (at least one message always goes).
    pub fn read<R: ReadAt + ?Sized>(
        &mut self,
        file: &R,
        until_ms: u32,
        max_bytes: usize,
        out: &mut Vec<VodMessage>,
    ) -> Result<ReadEnd, VodError> {
        let mut budget = max_bytes;
        let mut first = true;
        loop {
            let Some(tag) = self.tag_at(file, self.offset)? else {
                self.block = (0, Bytes::new());
                return Ok(ReadEnd::End);
            };
            if self.headers_due {
                self.headers_due = false;
                for (kind, body) in &self.headers {
                    out.push(VodMessage::new(*kind, tag.timestamp, body.clone()));
                }
            }
            if tag.timestamp > until_ms && !first {
                // Between reads a player holds no block (see READ_BLOCK).
                self.block = (0, Bytes::new());
                return Ok(ReadEnd::Ahead(tag.timestamp));
            }
            if tag.body_len > budget && !first {
                self.block = (0, Bytes::new());
                return Ok(ReadEnd::Full);
            }
            let at = self.offset;
            self.offset = next_tag(at, tag.body_len);
            if tag.kind != TAG_AUDIO && tag.kind != TAG_VIDEO {
                continue;
            }
            let body = self.body(file, at, tag.body_len)?;
            let repeated = is_sequence_header(tag.kind, &body)
                && self
                    .headers
                    .iter()
                    .any(|(k, b)| *k == tag.kind && *b == body);
            if repeated {
                continue;
            }
            if is_sequence_header(tag.kind, &body) {
                self.headers.retain(|(k, _)| *k != tag.kind);
                self.headers.push((tag.kind, body.clone()));
            }
            budget = budget.saturating_sub(body.len());
            first = false;
            out.push(VodMessage::new(tag.kind, tag.timestamp, body));
        }
    }

    /// The header of the tag at `at`; None at the end of the file or before a tag cut short.
    fn tag_at<R: ReadAt + ?Sized>(&mut self, file: &R, at: u64) -> Result<Option<Tag>, VodError> {
        if at.saturating_add(TAG_HEADER_LEN as u64) > self.len {
            return Ok(None);
        }
        let bytes = self.bytes(file, at, TAG_HEADER_LEN)?;
        let mut header = [0u8; TAG_HEADER_LEN];
        header.copy_from_slice(bytes.get(..TAG_HEADER_LEN).unwrap_or(&[0; TAG_HEADER_LEN]));
        let (kind, body_len, timestamp) = parse_tag_header(&header);
        let end = at + TAG_HEADER_LEN as u64 + body_len as u64;
        if end > self.len {
            // A file cut by a crash ends at its last whole tag.
            return Ok(None);
        }
        Ok(Some(Tag {
            kind: kind & 0x1F,
            body_len,
            timestamp,
        }))
    }

    fn body<R: ReadAt + ?Sized>(
        &mut self,
        file: &R,
        tag_at: u64,
        len: usize,
    ) -> Result<Bytes, VodError> {
        self.bytes(file, tag_at + TAG_HEADER_LEN as u64, len)
    }

    /// `len` bytes at `at`, from the current block or a new one read from `at`.
    fn bytes<R: ReadAt + ?Sized>(
        &mut self,
        file: &R,
        at: u64,
        len: usize,
    ) -> Result<Bytes, VodError> {
        let (start, block) = &self.block;
        if at >= *start && at + len as u64 <= start + block.len() as u64 {
            let from = (at - start) as usize;
            return Ok(block.slice(from..from + len));
        }
        let left = usize::try_from(self.len.saturating_sub(at)).unwrap_or(usize::MAX);
        let want = READ_BLOCK.min(left).max(len);
        let mut buf = vec![0u8; want];
        super::read_exact_at(file, &mut buf, at)?;
        self.block = (at, Bytes::from(buf));
        Ok(self.block.1.slice(..len))
    }
}

fn next_tag(at: u64, body_len: usize) -> u64 {
    at + (TAG_HEADER_LEN + body_len + 4) as u64
}

fn is_sequence_header(kind: u8, body: &[u8]) -> bool {
    match kind {
        TAG_VIDEO => tags::parse_video(body).is_ok_and(|t| t.is_sequence_header()),
        TAG_AUDIO => tags::parse_audio(body).is_ok_and(|t| t.is_sequence_header()),
        _ => false,
    }
}

/// The properties of an `onMetaData` script tag.
fn on_metadata(body: &[u8]) -> Option<Vec<(String, Amf0Value)>> {
    let mut d = amf0::Decoder::new(body);
    let name = d.decode().ok()?;
    if name.as_str() != Some("onMetaData") {
        return None;
    }
    let value = d.decode().ok()?;
    value.properties().map(<[_]>::to_vec)
}

/// `keyframes.times` (s) and `keyframes.filepositions`, checked: ascending, inside the file.
fn keyframe_index(props: &[(String, Amf0Value)], len: u64) -> Option<Vec<(u32, u64)>> {
    let keyframes = &props.iter().find(|(k, _)| k == "keyframes")?.1;
    let numbers = |key: &str| -> Option<Vec<f64>> {
        match keyframes.get(key)? {
            Amf0Value::StrictArray(v) => v.iter().map(Amf0Value::as_f64).collect(),
            _ => None,
        }
    };
    let (times, positions) = (numbers("times")?, numbers("filepositions")?);
    if times.len() != positions.len() || times.is_empty() {
        return None;
    }
    let mut index = Vec::with_capacity(times.len().min(MAX_INDEX));
    for (t, p) in times.into_iter().zip(positions).take(MAX_INDEX) {
        let ok = t.is_finite() && t >= 0.0 && p.is_finite() && p >= 0.0 && p < len as f64;
        let (ms, offset) = ((t * 1000.0).round() as u32, p as u64);
        if !ok || index.last().is_some_and(|&(_, o)| o >= offset) {
            return None;
        }
        index.push((ms, offset));
    }
    Some(index)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::flv::{file_header, tag_header, tag_trailer};

    fn tag(out: &mut Vec<u8>, kind: u8, ts: u32, body: &[u8]) {
        out.extend_from_slice(&tag_header(kind, body.len(), ts));
        out.extend_from_slice(body);
        out.extend_from_slice(&tag_trailer(body.len()));
    }

    fn metadata(extra: &[(&str, Amf0Value)]) -> Vec<u8> {
        let mut out = Vec::new();
        amf0::write_string(&mut out, "onMetaData");
        let props: Vec<(String, Amf0Value)> = extra
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        amf0::encode(&Amf0Value::EcmaArray(props), &mut out);
        out
    }

    const AVC_HEADER: &[u8] = &[0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1F, 0xFF];
    const AAC_HEADER: &[u8] = &[0xAF, 0, 0x12, 0x10];

    /// 10 s: a keyframe each second, 25 fps video, audio every 40 ms; returns the file and
    /// the offsets of its keyframes.
    fn sample_file(with_index: bool) -> (Vec<u8>, Vec<u64>) {
        let mut file = file_header(true, true).to_vec();
        let meta_at = file.len();
        let placeholder = |offsets: &[u64]| {
            let times = (0..10).map(|s| Amf0Value::Number(f64::from(s))).collect();
            let pos = offsets
                .iter()
                .map(|&o| Amf0Value::Number(o as f64))
                .collect();
            let mut props = vec![
                ("duration", Amf0Value::Number(10.0)),
                ("width", Amf0Value::Number(320.0)),
            ];
            if with_index {
                props.push((
                    "keyframes",
                    Amf0Value::Object(vec![
                        ("times".into(), Amf0Value::StrictArray(times)),
                        ("filepositions".into(), Amf0Value::StrictArray(pos)),
                    ]),
                ));
            }
            metadata(&props)
        };
        tag(&mut file, TAG_SCRIPT, 0, &placeholder(&[0; 10]));
        let meta_end = file.len();
        tag(&mut file, TAG_VIDEO, 0, AVC_HEADER);
        tag(&mut file, TAG_AUDIO, 0, AAC_HEADER);
        let mut keys = Vec::new();
        for i in 0..250u32 {
            let ts = i * 40;
            if i % 25 == 0 {
                keys.push(file.len() as u64);
            }
            let first = if i % 25 == 0 { 0x17 } else { 0x27 };
            tag(&mut file, TAG_VIDEO, ts, &[first, 1, 0, 0, 0, i as u8]);
            tag(&mut file, TAG_AUDIO, ts, &[0xAF, 1, i as u8]);
        }
        // The real index has the same size as the placeholder (numbers are fixed-size).
        let meta = placeholder(&keys);
        let mut fixed = file[..meta_at].to_vec();
        tag(&mut fixed, TAG_SCRIPT, 0, &meta);
        assert_eq!(fixed.len(), meta_end);
        fixed.extend_from_slice(&file[meta_end..]);
        (fixed, keys)
    }

    fn read_all(c: &mut FlvCursor, file: &[u8], until: u32) -> (Vec<VodMessage>, ReadEnd) {
        let mut out = Vec::new();
        let end = c.read(file, until, usize::MAX, &mut out).unwrap();
        (out, end)
    }

    #[test]
    fn opens_with_metadata_and_headers_and_plays_in_order() {
        let (file, _) = sample_file(true);
        let mut c = FlvCursor::open(file.as_slice(), file.len() as u64).unwrap();
        assert_eq!(c.duration_ms(), 10_000);
        let keys: Vec<&str> = c.properties().iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["duration", "width"], "the index is not sent");
        let (msgs, end) = read_all(&mut c, &file, 1000);
        assert_eq!(msgs[0].payload.as_ref(), AVC_HEADER);
        assert_eq!(msgs[1].payload.as_ref(), AAC_HEADER);
        // Headers, then 0..=1000 ms: 26 video + 26 audio; the header tags are not repeated.
        assert_eq!(msgs.len(), 2 + 52);
        assert_eq!(end, ReadEnd::Ahead(1040));
        let (rest, end) = read_all(&mut c, &file, u32::MAX);
        assert_eq!(rest.len(), 2 * 250 - 52);
        assert_eq!(end, ReadEnd::End);
        assert_eq!(rest.last().unwrap().timestamp, 9960);
    }

    #[test]
    fn seeks_to_the_keyframe_before_with_or_without_an_index() {
        for with_index in [true, false] {
            let (file, keys) = sample_file(with_index);
            let mut c = FlvCursor::open(file.as_slice(), file.len() as u64).unwrap();
            assert_eq!(c.seek(file.as_slice(), 5500).unwrap(), 5000, "{with_index}");
            assert_eq!(c.offset, keys[5]);
            let (msgs, _) = read_all(&mut c, &file, 5000);
            // Headers first (at the keyframe's time), then the keyframe.
            assert_eq!(msgs[0].payload.as_ref(), AVC_HEADER);
            assert_eq!(msgs[2].payload[0], 0x17);
            assert_eq!(msgs[2].timestamp, 5000);
            // Back to an earlier point.
            assert_eq!(c.seek(file.as_slice(), 1200).unwrap(), 1000);
            assert_eq!(c.seek(file.as_slice(), 0).unwrap(), 0);
            assert_eq!(c.seek(file.as_slice(), 60_000).unwrap(), 9000);
        }
    }

    #[test]
    fn budget_and_a_file_cut_short() {
        let (file, _) = sample_file(false);
        let mut c = FlvCursor::open(file.as_slice(), file.len() as u64).unwrap();
        let mut out = Vec::new();
        assert_eq!(
            c.read(file.as_slice(), u32::MAX, 10, &mut out).unwrap(),
            ReadEnd::Full
        );
        // Headers plus a message or a few: the budget is a bound, and one message always goes.
        assert!(out.len() <= 2 + 4, "{}", out.len());
        // Cut in the middle of a tag: reading ends at the last whole one.
        let cut = &file[..file.len() - 3 - 4 - 5];
        let mut c = FlvCursor::open(cut, cut.len() as u64).unwrap();
        let (msgs, end) = read_all(&mut c, cut, u32::MAX);
        assert_eq!(end, ReadEnd::End);
        assert_eq!(msgs.len(), 2 + 2 * 250 - 1);
    }

    #[test]
    fn hostile_files_are_errors_not_panics() {
        assert!(FlvCursor::open(b"GIF89a...".as_slice(), 9).is_err());
        assert!(FlvCursor::open(b"FLV".as_slice(), 3).is_err());
        let mut bad = file_header(true, true).to_vec();
        bad[5..9].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(FlvCursor::open(bad.as_slice(), bad.len() as u64).is_err());
        // A tag claiming 16 MiB in a tiny file, and garbage after the header.
        let mut f = file_header(true, true).to_vec();
        f.extend_from_slice(&[9, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0, 0, 0, 0, 1, 2]);
        let mut c = FlvCursor::open(f.as_slice(), f.len() as u64).unwrap();
        assert_eq!(read_all(&mut c, &f, u32::MAX).1, ReadEnd::End);
        assert_eq!(c.seek(f.as_slice(), 1000).unwrap(), 0);
        // An index pointing outside the file is ignored (seeking scans instead).
        let meta = metadata(&[(
            "keyframes",
            Amf0Value::Object(vec![
                (
                    "times".into(),
                    Amf0Value::StrictArray(vec![Amf0Value::Number(0.0)]),
                ),
                (
                    "filepositions".into(),
                    Amf0Value::StrictArray(vec![Amf0Value::Number(1e12)]),
                ),
            ]),
        )]);
        let mut f = file_header(true, true).to_vec();
        tag(&mut f, TAG_SCRIPT, 0, &meta);
        let c = FlvCursor::open(f.as_slice(), f.len() as u64).unwrap();
        assert!(c.index.is_empty());
    }
}
