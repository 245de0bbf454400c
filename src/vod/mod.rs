//! Video on demand (`play dir ...;`): finding the file a play name asks for, and reading it.
//! Everything here that touches a file runs on one of nginx's thread-pool threads (through
//! [`perform`], like the file outputs' [`crate::io::perform`]): a [`VodJob`] carries the open
//! file and its reader there and back, so the event loop never waits for a disk. Each read
//! hands back a bounded batch of ready-to-send messages ([`MAX_READ_BYTES`]); the event loop
//! paces them to the player (see `server::vod`).
//!
//! The container readers ([`flv`], [`mp4`]) read through [`ReadAt`], so tests feed them bytes.

pub mod flv;
pub mod http;
pub mod mp4;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

use bytes::{Bytes, BytesMut};

use crate::record::flv::{TAG_AUDIO, TAG_SCRIPT, TAG_VIDEO};
use crate::rtmp::amf0::{self, Amf0Value};

pub use mp4::ReadAt;

/// Most media bytes one read hands back (a read always returns at least one message).
pub const MAX_READ_BYTES: usize = 512 * 1024;
/// Most bytes read from a file at a time (more when one message is larger). Messages share
/// the block they were read in, which lives until the last of them is sent: small blocks
/// keep what a player holds close to what it is sent.
pub const READ_BLOCK: usize = 64 * 1024;

/// Why a file cannot be played.
#[derive(Debug, thiserror::Error)]
pub enum VodError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Format(String),
    #[error("not found in any play location")]
    NotFound,
    #[error("{0} leads outside its play location")]
    Escapes(String),
    /// An `http://` location failed (and no later one had the file).
    #[error("{0}")]
    Remote(String),
}

/// The containers `play` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    Flv,
    Mp4,
}

/// The file a play name asks for, as the C module maps it: `mp4:name` or `name.mp4` is an
/// MP4 file, anything else FLV (`flv:` is dropped too); the container's suffix is added when
/// the name does not end with it. Stream names never hold a path separator or `..` (see
/// [`crate::rtmp::command::validate_name`]), so the result is one file name.
pub fn file_for(name: &str) -> (Container, String) {
    let has_prefix = |p: &str| {
        name.get(..p.len())
            .is_some_and(|h| h.eq_ignore_ascii_case(p))
    };
    let ends_with = |s: &str, sfx: &str| {
        s.len() >= sfx.len()
            && s.get(s.len() - sfx.len()..)
                .is_some_and(|t| t.eq_ignore_ascii_case(sfx))
    };
    let (container, rest) = if has_prefix("mp4:") {
        (Container::Mp4, name.get(4..).unwrap_or_default())
    } else if has_prefix("flv:") {
        (Container::Flv, name.get(4..).unwrap_or_default())
    } else if ends_with(name, ".mp4") {
        (Container::Mp4, name)
    } else {
        (Container::Flv, name)
    };
    let suffix = match container {
        Container::Flv => ".flv",
        Container::Mp4 => ".mp4",
    };
    let file = if ends_with(rest, suffix) {
        rest.to_owned()
    } else {
        format!("{rest}{suffix}")
    };
    (container, file)
}

/// Reads exactly `buf.len()` bytes at `offset`.
pub fn read_exact_at<R: ReadAt + ?Sized>(
    file: &R,
    buf: &mut [u8],
    offset: u64,
) -> Result<(), VodError> {
    mp4::read_exact_at(file, buf, offset).map_err(VodError::Io)
}

/// One message for the player: an FLV tag body (audio 8, video 9, data 18).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VodMessage {
    pub type_id: u8,
    pub timestamp: u32,
    pub payload: Bytes,
}

impl VodMessage {
    pub fn new(type_id: u8, timestamp: u32, payload: Bytes) -> Self {
        VodMessage {
            type_id,
            timestamp,
            payload,
        }
    }
}

/// Why a read stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadEnd {
    /// The next message is at this timestamp, past the read's limit.
    Ahead(u32),
    /// The byte budget is used up; more is ready at once.
    Full,
    /// The end of the file.
    End,
}

/// The reader of one file.
#[derive(Debug)]
enum Demuxer {
    Flv(flv::FlvCursor),
    Mp4(Mp4Cursor),
}

/// An open file being played, owned by whoever holds the job (a pool thread or the player).
#[derive(Debug)]
pub struct VodReader {
    file: File,
    demuxer: Demuxer,
}

/// One `play` location.
#[derive(Debug, Clone)]
pub enum PlaySource {
    Dir(PathBuf),
    Http(crate::conf::HttpUrl, http::FetchTo),
}

/// What to open: the `play` locations in order, and the file name in them.
#[derive(Debug, Clone)]
pub struct VodOpen {
    pub sources: Vec<PlaySource>,
    pub file_name: String,
    pub container: Container,
    /// The query an `http://` location gets: `addr=<client>` and the play's `?args`.
    pub query: String,
}

impl VodOpen {
    /// Whether opening may fetch a whole file from an origin (a long job).
    pub fn fetches(&self) -> bool {
        self.sources
            .iter()
            .any(|s| matches!(s, PlaySource::Http(..)))
    }
}

/// One request for the pool: open (when `open` is set), seek (when `seek_ms` is set), then
/// read messages up to `until_ms` (None: up to `span_ms` past the first message read).
#[derive(Debug)]
pub struct VodJob {
    pub client: u64,
    /// Tells a stale answer (the player seeked meanwhile) from the current one.
    pub serial: u64,
    pub reader: Option<Box<VodReader>>,
    pub open: Option<VodOpen>,
    pub seek_ms: Option<u32>,
    pub until_ms: Option<u32>,
    pub span_ms: u32,
    pub max_bytes: usize,
}

/// What an opened file is.
#[derive(Debug, Clone)]
pub struct Opened {
    pub path: PathBuf,
    pub duration_ms: u64,
    /// The `onMetaData` body players get.
    pub metadata: Bytes,
}

/// A job's answer.
#[derive(Debug)]
pub struct VodDone {
    pub client: u64,
    pub serial: u64,
    pub reader: Option<Box<VodReader>>,
    pub result: Result<VodBatch, VodError>,
}

#[derive(Debug)]
pub struct VodBatch {
    pub opened: Option<Opened>,
    pub messages: Vec<VodMessage>,
    pub end: ReadEnd,
}

/// Performs a job (on a pool thread, or at once where there is none).
pub fn perform(job: VodJob) -> VodDone {
    let VodJob {
        client,
        serial,
        mut reader,
        ..
    } = job;
    let result = (|| {
        let mut opened = None;
        if let Some(open) = &job.open {
            let (r, o) = open_first(open)?;
            reader = Some(Box::new(r));
            opened = Some(o);
        }
        let r = reader
            .as_deref_mut()
            .ok_or_else(|| VodError::Format("no file open".into()))?;
        if let Some(to) = job.seek_ms {
            r.seek(to)?;
        }
        let mut messages = Vec::new();
        let end = r.read(job.until_ms, job.span_ms, job.max_bytes, &mut messages)?;
        Ok(VodBatch {
            opened,
            messages,
            end,
        })
    })();
    VodDone {
        client,
        serial,
        reader,
        result,
    }
}

/// Opens the first location holding the file. When none has it, the last origin's failure
/// (if any) is the error, else [`VodError::NotFound`].
fn open_first(open: &VodOpen) -> Result<(VodReader, Opened), VodError> {
    let mut failure = None;
    for source in &open.sources {
        match source {
            PlaySource::Dir(root) => {
                let path = root.join(&open.file_name);
                let file = match File::open(&path) {
                    Ok(f) => f,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(VodError::Io(e)),
                };
                check_inside(root, &path)?;
                return VodReader::new(file, &path, open.container);
            }
            PlaySource::Http(url, to) => match http::fetch(url, &open.file_name, &open.query, to) {
                Ok(Some((file, path))) => return VodReader::new(file, &path, open.container),
                Ok(None) => {}
                Err(e) => failure = Some(e),
            },
        }
    }
    Err(failure.unwrap_or(VodError::NotFound))
}

/// Refuses a file that resolves outside its location (a symlink out of the directory).
fn check_inside(root: &Path, path: &Path) -> Result<(), VodError> {
    let (root, real) = (root.canonicalize()?, path.canonicalize()?);
    if real.starts_with(&root) {
        Ok(())
    } else {
        Err(VodError::Escapes(path.display().to_string()))
    }
}

impl VodReader {
    fn new(file: File, path: &Path, container: Container) -> Result<(VodReader, Opened), VodError> {
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(VodError::Format("not a regular file".into()));
        }
        let len = meta.len();
        let (demuxer, duration_ms, properties) = match container {
            Container::Flv => {
                let c = flv::FlvCursor::open(&file, len)?;
                let (d, p) = (c.duration_ms(), c.properties().to_vec());
                (Demuxer::Flv(c), d, p)
            }
            Container::Mp4 => {
                let c = Mp4Cursor::open(&file, &meta)?;
                let (d, p) = (c.index.duration_ms, c.properties());
                (Demuxer::Mp4(c), d, p)
            }
        };
        let opened = Opened {
            path: path.to_owned(),
            duration_ms,
            metadata: metadata_body(properties, duration_ms),
        };
        Ok((VodReader { file, demuxer }, opened))
    }

    fn seek(&mut self, to_ms: u32) -> Result<u32, VodError> {
        match &mut self.demuxer {
            Demuxer::Flv(c) => c.seek(&self.file, to_ms),
            Demuxer::Mp4(c) => Ok(c.seek(to_ms)),
        }
    }

    fn read(
        &mut self,
        until_ms: Option<u32>,
        span_ms: u32,
        max_bytes: usize,
        out: &mut Vec<VodMessage>,
    ) -> Result<ReadEnd, VodError> {
        // Without a limit: read the first message alone to learn where the span starts.
        let until = match until_ms {
            Some(u) => u,
            None => {
                let end = self.read_some(0, max_bytes, out)?;
                let Some(first) = out.iter().rev().find(|m| m.type_id != TAG_SCRIPT) else {
                    return Ok(end);
                };
                if end == ReadEnd::End {
                    return Ok(end);
                }
                first.timestamp.saturating_add(span_ms)
            }
        };
        let used = out.iter().map(|m| m.payload.len()).sum::<usize>();
        self.read_some(until, max_bytes.saturating_sub(used).max(1), out)
    }

    fn read_some(
        &mut self,
        until_ms: u32,
        max_bytes: usize,
        out: &mut Vec<VodMessage>,
    ) -> Result<ReadEnd, VodError> {
        match &mut self.demuxer {
            Demuxer::Flv(c) => c.read(&self.file, until_ms, max_bytes, out),
            Demuxer::Mp4(c) => c.read(&self.file, until_ms, max_bytes, out),
        }
    }
}

/// The `onMetaData` body for players: the file's properties with `duration` set.
fn metadata_body(mut properties: Vec<(String, Amf0Value)>, duration_ms: u64) -> Bytes {
    properties.retain(|(k, _)| k != "duration");
    if duration_ms > 0 {
        let secs = Amf0Value::Number(duration_ms as f64 / 1000.0);
        properties.insert(0, ("duration".into(), secs));
    }
    let mut out = Vec::new();
    amf0::write_string(&mut out, "onMetaData");
    amf0::encode(&Amf0Value::EcmaArray(properties), &mut out);
    Bytes::from(out)
}

/// MP4 indexes by file identity, shared by every player of the file (one copy however many
/// watch it); an entry lives while a player holds it.
type IndexCache = Mutex<Vec<(FileIdentity, Weak<mp4::Mp4Index>)>>;
static INDEXES: IndexCache = Mutex::new(Vec::new());

/// Device, inode, size and modification time: a file replaced or grown is indexed again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileIdentity(u64, u64, u64, i64, i64);

impl FileIdentity {
    fn of(meta: &std::fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        FileIdentity(
            meta.dev(),
            meta.ino(),
            meta.size(),
            meta.mtime(),
            meta.mtime_nsec(),
        )
    }
}

/// An MP4 file's shared index and the next sample to send.
#[derive(Debug)]
struct Mp4Cursor {
    index: Arc<mp4::Mp4Index>,
    next: usize,
    headers: Vec<(u8, Bytes)>,
    headers_due: bool,
    /// The block last read for each track (video, audio): MP4 interleaves them in chunks.
    blocks: [(u64, Bytes); 2],
    len: u64,
}

impl Mp4Cursor {
    fn open(file: &File, meta: &std::fs::Metadata) -> Result<Mp4Cursor, VodError> {
        let identity = FileIdentity::of(meta);
        let cached = {
            let mut cache = INDEXES.lock().unwrap_or_else(|e| e.into_inner());
            cache.retain(|(_, w)| w.strong_count() > 0);
            cache
                .iter()
                .find(|(id, _)| *id == identity)
                .and_then(|(_, w)| w.upgrade())
        };
        let index = match cached {
            Some(index) => index,
            None => {
                let limits = mp4::Limits::default();
                let index = Arc::new(
                    mp4::parse_index(file, meta.len(), &limits)
                        .map_err(|e| VodError::Format(e.to_string()))?,
                );
                let mut cache = INDEXES.lock().unwrap_or_else(|e| e.into_inner());
                cache.push((identity, Arc::downgrade(&index)));
                index
            }
        };
        let mut headers = Vec::new();
        if let Some(mp4::VideoTrack {
            codec: mp4::VideoCodec::Avc { avcc },
            ..
        }) = &index.video
        {
            headers.push((TAG_VIDEO, mp4::avc_sequence_header(avcc)));
        }
        if let Some(mp4::AudioTrack {
            codec: mp4::AudioCodec::Aac { asc },
            ..
        }) = &index.audio
        {
            headers.push((TAG_AUDIO, mp4::aac_sequence_header(asc)));
        }
        if headers.is_empty() {
            return Err(VodError::Format(
                "no H.264 or AAC track (other codecs are not played yet)".into(),
            ));
        }
        Ok(Mp4Cursor {
            index,
            next: 0,
            headers,
            headers_due: true,
            blocks: [(0, Bytes::new()), (0, Bytes::new())],
            len: meta.len(),
        })
    }

    /// Whether a sample's track is one we send.
    fn playable(&self, s: &mp4::Sample) -> bool {
        let kind = if s.video { TAG_VIDEO } else { TAG_AUDIO };
        self.headers.iter().any(|(k, _)| *k == kind)
    }

    fn properties(&self) -> Vec<(String, Amf0Value)> {
        let mut p = Vec::new();
        let n = |v: f64| Amf0Value::Number(v);
        if let Some(v) = &self.index.video {
            p.push(("width".into(), n(f64::from(v.width))));
            p.push(("height".into(), n(f64::from(v.height))));
            p.push(("videocodecid".into(), n(7.0)));
        }
        if let Some(a) = &self.index.audio {
            p.push(("audiocodecid".into(), n(10.0)));
            p.push(("audiosamplerate".into(), n(f64::from(a.sample_rate))));
            p.push(("audiochannels".into(), n(f64::from(a.channels))));
        }
        p
    }

    /// Moves to the last video keyframe at or before `to_ms` (audio-only: the last sample);
    /// returns its time.
    fn seek(&mut self, to_ms: u32) -> u32 {
        let samples = &self.index.samples;
        let has_video = self.headers.iter().any(|(k, _)| *k == TAG_VIDEO);
        let end = samples.partition_point(|s| s.dts_ms <= to_ms);
        let found = samples
            .get(..end)
            .unwrap_or_default()
            .iter()
            .rposition(|s| self.playable(s) && (!has_video || (s.video && s.keyframe)));
        self.next = found.unwrap_or(0);
        self.headers_due = true;
        samples.get(self.next).map_or(0, |s| s.dts_ms)
    }

    fn read(
        &mut self,
        file: &File,
        until_ms: u32,
        max_bytes: usize,
        out: &mut Vec<VodMessage>,
    ) -> Result<ReadEnd, VodError> {
        let index = Arc::clone(&self.index);
        let mut budget = max_bytes;
        let mut first = true;
        loop {
            let Some(s) = index.samples.get(self.next) else {
                self.blocks = Default::default();
                return Ok(ReadEnd::End);
            };
            if self.headers_due {
                self.headers_due = false;
                for (kind, body) in &self.headers {
                    out.push(VodMessage::new(*kind, s.dts_ms, body.clone()));
                }
            }
            if s.dts_ms > until_ms && !first {
                // Between reads a player holds no block (see READ_BLOCK).
                self.blocks = Default::default();
                return Ok(ReadEnd::Ahead(s.dts_ms));
            }
            if s.size as usize > budget && !first {
                self.blocks = Default::default();
                return Ok(ReadEnd::Full);
            }
            self.next += 1;
            if !self.playable(s) || s.offset.saturating_add(u64::from(s.size)) > self.len {
                continue;
            }
            let data = self.sample_bytes(file, self.next - 1, until_ms)?;
            let (prefix, n) = s.flv_prefix();
            let mut payload = BytesMut::with_capacity(n + data.len());
            payload.extend_from_slice(prefix.get(..n).unwrap_or_default());
            payload.extend_from_slice(&data);
            budget = budget.saturating_sub(data.len());
            first = false;
            let kind = if s.video { TAG_VIDEO } else { TAG_AUDIO };
            out.push(VodMessage::new(kind, s.dts_ms, payload.freeze()));
        }
    }

    /// The bytes of sample `i`, from its track's block or a new block read from it, sized to
    /// the samples of the track this read will send after it.
    fn sample_bytes(&mut self, file: &File, i: usize, until_ms: u32) -> Result<Bytes, VodError> {
        let index = Arc::clone(&self.index);
        let Some(s) = index.samples.get(i) else {
            return Ok(Bytes::new());
        };
        let slot = usize::from(!s.video);
        let len = s.size as usize;
        if let Some((start, block)) = self.blocks.get(slot) {
            if s.offset >= *start && s.offset + len as u64 <= start + block.len() as u64 {
                let from = (s.offset - start) as usize;
                return Ok(block.slice(from..from + len));
            }
        }
        let mut end = s.offset + len as u64;
        let limit = s.offset + READ_BLOCK as u64;
        let ahead = index.samples.get(i + 1..).unwrap_or_default();
        for next in ahead.iter().filter(|n| n.video == s.video).take(1024) {
            let next_end = next.offset.saturating_add(u64::from(next.size));
            if next.dts_ms > until_ms || next.offset < s.offset || next_end > limit {
                break;
            }
            end = end.max(next_end);
        }
        let want = end.min(self.len).saturating_sub(s.offset).max(len as u64) as usize;
        let mut buf = vec![0u8; want];
        read_exact_at(file, &mut buf, s.offset)?;
        let block = Bytes::from(buf);
        let bytes = block.slice(..len);
        if let Some(b) = self.blocks.get_mut(slot) {
            *b = (s.offset, block);
        }
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn play_names_map_to_files_as_in_the_c_module() {
        let f = |n: &str| file_for(n);
        assert_eq!(f("movie"), (Container::Flv, "movie.flv".into()));
        assert_eq!(f("movie.flv"), (Container::Flv, "movie.flv".into()));
        assert_eq!(f("flv:movie"), (Container::Flv, "movie.flv".into()));
        assert_eq!(f("movie.mp4"), (Container::Mp4, "movie.mp4".into()));
        assert_eq!(f("MP4:movie"), (Container::Mp4, "movie.mp4".into()));
        assert_eq!(f("mp4:movie.MP4"), (Container::Mp4, "movie.MP4".into()));
        assert_eq!(f("mp4:"), (Container::Mp4, ".mp4".into()));
    }

    #[test]
    fn metadata_body_sets_duration_first() {
        let props = vec![
            ("width".to_string(), Amf0Value::Number(640.0)),
            ("duration".to_string(), Amf0Value::Number(1.0)),
        ];
        let body = metadata_body(props, 61_500);
        let values = amf0::decode_all(&body).unwrap();
        assert_eq!(values[0].as_str(), Some("onMetaData"));
        let p = values[1].properties().unwrap();
        assert_eq!(p[0], ("duration".into(), Amf0Value::Number(61.5)));
        assert_eq!(p.len(), 2);
    }
}
