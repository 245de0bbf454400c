//! Recording (`record`, `record_*`, `recorder {}`): one more file output on the segment
//! pipeline. A [`Recorder`] turns a published stream into FLV files under `record_path`, named
//! as the C module names them (`<name>[-<unix time>]<suffix>`, the suffix through strftime),
//! written off the event loop like segments. Unlike the C module's, a file closes indexed:
//! its `onMetaData` is rewritten in place with the real duration, size and a keyframe index,
//! so players can seek in it. A file cut by a crash keeps every whole tag, and a write
//! failure (disk full) closes the file where it is, never deletes it.

pub mod flv;
pub mod mp4;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::conf::{RecordFormat, RecordSettings};
use crate::files::{FileOp, FileOutput, Now};
use crate::live::FrameKind;
use crate::rtmp::amf0::Amf0Value;
use crate::segment::datetime::strftime;

use flv::{FileFacts, HEADER_LEN, INDEX_BYTES_PER_KEYFRAME, TAG_AUDIO, TAG_VIDEO};
use mp4::Mp4File;

/// Room kept for the closing `onMetaData` at the start of a file: enough for the keyframe
/// index of about two hours of 2 s GOPs. Less for files that are cut short anyway.
pub const MAX_METADATA_ROOM: usize = 64 * 1024;
/// Room for the `onMetaData` without its index (publisher properties, duration, size).
const BASE_METADATA_ROOM: usize = 6 * 1024;

/// What a recorder tells the worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordEvent {
    /// A file was opened (`record_notify`: `NetStream.Record.Start`).
    Started { recorder: String, path: PathBuf },
    /// A file is finished and whole on disk (`on_record_done`, `exec_record_done`,
    /// `NetStream.Record.Stop`).
    Done {
        recorder: String,
        path: PathBuf,
        bytes: u64,
        duration_ms: u64,
    },
    /// A file could not be written as configured (an MP4 recording of a codec it cannot
    /// take): nothing more is recorded for this publish.
    Refused {
        recorder: String,
        path: PathBuf,
        why: String,
    },
}

/// What a recorder is writing now (for `/stat`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingNow {
    pub recorder: String,
    pub path: PathBuf,
    pub bytes: u64,
    pub duration_ms: u64,
}

/// The size and last tag timestamp of an existing file (`record_append`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExistingFile {
    pub size: u64,
    pub last_timestamp: Option<u32>,
}

/// Reads what `record_append` needs of an existing file; `None` when there is none.
pub type ExistingProbe = fn(&Path) -> Option<ExistingFile>;

/// The file being written.
#[derive(Debug)]
struct OpenFile {
    path: PathBuf,
    /// Bytes in the file (including what was there before, when appending).
    size: u64,
    /// Whether the file holds our header and reserved `onMetaData` (not when appending to
    /// an earlier file), so it can be indexed at the end.
    indexed: bool,
    /// Room reserved for the `onMetaData` tag (0 when not indexed).
    meta_room: usize,
    /// RTMP timestamp of the file's first tag; tags are written relative to it.
    epoch: Option<u32>,
    /// Added to every timestamp (the last one of a file appended to).
    shift: u32,
    /// Relative timestamp of the last tag written.
    last_ms: u32,
    /// Body length of the last tag (its PreviousTagSize is written with the next one).
    pending_trailer: Option<usize>,
    frames: u64,
    /// Video has started with a keyframe (until then no video, and no audio if video is
    /// expected, so the file starts where a player can start).
    started: bool,
    keyframes: Vec<(u64, u64)>,
    opened_ms: u64,
    /// `record_format mp4`: the MP4 writer, once the file has started (its tracks known).
    mp4: Option<Mp4File>,
}

/// One recorder (`record ...` of an application, or a `recorder name {}` block) of one
/// published stream.
pub struct Recorder {
    name: String,
    conf: RecordSettings,
    stream: String,
    tz_offset_min: i32,
    probe: ExistingProbe,
    /// Recording (automatic from the publish, or started through `/control`).
    armed: bool,
    /// A write failed: nothing more is recorded for this publish.
    failed: bool,
    /// The publisher left.
    finished: bool,
    file: Option<OpenFile>,
    /// The next file may open at this monotonic time (after a size or frame cap).
    reopen_at: Option<u64>,
    video_header: Option<Bytes>,
    audio_header: Option<Bytes>,
    props: Vec<(String, Amf0Value)>,
    /// For each operation asked for and not yet performed, the event its completion brings.
    pending: VecDeque<Option<RecordEvent>>,
    events: Vec<RecordEvent>,
    /// Last second a file was named for (`record_unique` names differ by the second).
    last_named_secs: i64,
}

impl Recorder {
    /// `conf.path` is absolute (made so at configuration time); `stream` a valid file name.
    pub fn new(
        name: &str,
        conf: &RecordSettings,
        stream: &str,
        tz_offset_min: i32,
        probe: ExistingProbe,
    ) -> Self {
        Recorder {
            name: name.to_string(),
            conf: conf.clone(),
            stream: stream.to_string(),
            tz_offset_min,
            probe,
            armed: conf.flags.automatic(),
            failed: false,
            finished: false,
            file: None,
            reopen_at: None,
            video_header: None,
            audio_header: None,
            props: Vec::new(),
            pending: VecDeque::new(),
            events: Vec::new(),
            last_named_secs: i64::MIN,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Events since the last call.
    pub fn take_events(&mut self) -> Vec<RecordEvent> {
        std::mem::take(&mut self.events)
    }

    /// The file being written, if any.
    pub fn now_recording(&self) -> Option<RecordingNow> {
        let f = self.file.as_ref()?;
        Some(RecordingNow {
            recorder: self.name.clone(),
            path: f.path.clone(),
            bytes: f.size,
            duration_ms: u64::from(f.last_ms.wrapping_sub(f.shift)),
        })
    }

    /// `/control/record/start`: opens a file now unless one is open. Returns its path, or
    /// `None` when a file was already being written (the C module answers 204 then).
    pub fn start(&mut self, now: Now, ops: &mut Vec<FileOp>) -> Option<PathBuf> {
        if self.file.is_some() || self.finished {
            return None;
        }
        self.armed = true;
        self.failed = false;
        self.reopen_at = None;
        self.open(now, ops)
    }

    /// `/control/record/stop`: closes the file being written. Returns its path, or `None`
    /// when none was open.
    pub fn stop(&mut self, ops: &mut Vec<FileOp>) -> Option<PathBuf> {
        self.armed = false;
        let path = self.file.as_ref().map(|f| f.path.clone());
        self.close(ops);
        path
    }

    /// The path a file opened at `unix_ms` gets: `record_path/<name>[-<unix secs>]<suffix>`.
    pub fn path_at(&self, unix_ms: u64) -> PathBuf {
        file_path(&self.conf, &self.stream, unix_ms, self.tz_offset_min)
    }

    fn emit(&mut self, op: FileOp, event: Option<RecordEvent>, ops: &mut Vec<FileOp>) {
        ops.push(op);
        self.pending.push_back(event);
    }

    fn append(&mut self, path: PathBuf, data: Bytes, ops: &mut Vec<FileOp>) {
        self.emit(FileOp::Append { path, data }, None, ops);
    }

    /// Opens the next file. Two files in one second get the same `record_unique` name:
    /// the second waits for the next second, so no recording is overwritten.
    fn open(&mut self, now: Now, ops: &mut Vec<FileOp>) -> Option<PathBuf> {
        let secs = (now.unix_ms / 1000) as i64;
        if self.conf.unique && secs <= self.last_named_secs {
            return None;
        }
        self.last_named_secs = secs;
        let path = self.path_at(now.unix_ms);
        let existing = if self.conf.append && self.conf.format == RecordFormat::Flv {
            (self.probe)(&path).filter(|e| e.size > HEADER_LEN)
        } else {
            None
        };
        if let Some(parent) = path.parent() {
            self.emit(
                FileOp::CreateDir {
                    path: parent.to_path_buf(),
                },
                None,
                ops,
            );
        }
        self.emit(
            FileOp::OpenRecording {
                path: path.clone(),
                append: existing.is_some(),
                lock: self.conf.lock,
            },
            Some(RecordEvent::Started {
                recorder: self.name.clone(),
                path: path.clone(),
            }),
            ops,
        );
        let mut file = OpenFile {
            path: path.clone(),
            size: 0,
            indexed: false,
            meta_room: 0,
            epoch: None,
            shift: 0,
            last_ms: 0,
            pending_trailer: None,
            frames: 0,
            started: false,
            keyframes: Vec::new(),
            opened_ms: now.mono_ms,
            mp4: None,
        };
        match existing {
            Some(e) => {
                file.size = e.size;
                // Continue after the last tag, as the C module does.
                file.shift = e.last_timestamp.unwrap_or(0);
            }
            None if self.conf.format == RecordFormat::Mp4 => {}
            None => {
                let (audio, video) = (self.records_audio(), self.records_video());
                let mut head = flv::file_header(audio, video).to_vec();
                let room = self.metadata_room();
                let facts = FileFacts::default();
                if let Some(meta) = flv::metadata_tag(&self.props, &facts, room) {
                    head.extend_from_slice(&meta);
                    file.indexed = true;
                    file.meta_room = room;
                }
                file.size = head.len() as u64;
                self.append(path.clone(), Bytes::from(head), ops);
            }
        }
        self.file = Some(file);
        Some(path)
    }

    /// Room for the closing `onMetaData`: the index of one keyframe a second for as long as
    /// a file can last (`record_interval`), at most [`MAX_METADATA_ROOM`], and at most a
    /// sixteenth of `record_max_size`.
    fn metadata_room(&self) -> usize {
        let mut room = MAX_METADATA_ROOM;
        if let Some(interval) = self.conf.interval_ms.filter(|i| *i > 0) {
            let keyframes = usize::try_from(interval / 1000 + 2).unwrap_or(usize::MAX);
            room = room.min(
                BASE_METADATA_ROOM
                    .saturating_add(keyframes.saturating_mul(INDEX_BYTES_PER_KEYFRAME)),
            );
        }
        if self.conf.max_size > 0 {
            let cap = usize::try_from(self.conf.max_size / 16).unwrap_or(usize::MAX);
            room = room.min(cap.max(BASE_METADATA_ROOM / 4));
        }
        room
    }

    fn records_audio(&self) -> bool {
        self.conf.flags.audio
    }

    fn records_video(&self) -> bool {
        self.conf.flags.video || self.conf.flags.keyframes
    }

    /// Whether the stream has video the file should start with (wait for a keyframe).
    fn waits_for_keyframe(&self) -> bool {
        self.records_video() && self.video_header.is_some()
    }

    /// Closes the open file: the last PreviousTagSize, the real `onMetaData` in place of the
    /// placeholder, then the close, whose completion is the `Done` event.
    fn close(&mut self, ops: &mut Vec<FileOp>) {
        let Some(mut file) = self.file.take() else {
            return;
        };
        if let Some(mut mp4) = file.mp4.take() {
            let out = mp4.finish();
            self.emit_mp4(&file.path, out, ops);
            let done = RecordEvent::Done {
                recorder: self.name.clone(),
                path: file.path.clone(),
                bytes: mp4.size(),
                duration_ms: mp4.duration_ms(),
            };
            self.emit(FileOp::Close { path: file.path }, Some(done), ops);
            return;
        }
        let path = file.path.clone();
        let mut size = file.size;
        if let Some(len) = file.pending_trailer {
            self.append(
                path.clone(),
                Bytes::copy_from_slice(&flv::tag_trailer(len)),
                ops,
            );
            size += flv::TAG_TRAILER_LEN as u64;
        }
        let duration_ms = u64::from(file.last_ms.wrapping_sub(file.shift));
        if file.indexed {
            let facts = FileFacts {
                duration_ms,
                file_size: size,
                keyframes: file.keyframes,
            };
            if let Some(meta) = flv::metadata_tag(&self.props, &facts, file.meta_room) {
                self.emit(
                    FileOp::WriteAt {
                        path: path.clone(),
                        offset: HEADER_LEN,
                        data: Bytes::from(meta),
                    },
                    None,
                    ops,
                );
            }
        }
        let done = RecordEvent::Done {
            recorder: self.name.clone(),
            path: path.clone(),
            bytes: size,
            duration_ms,
        };
        self.emit(FileOp::Close { path }, Some(done), ops);
    }

    /// One tag: the previous tag's PreviousTagSize and this tag's header in one small
    /// buffer, then the publisher's payload itself (shared, not copied).
    fn write_tag(&mut self, kind: u8, rel_ms: u32, body: &Bytes, ops: &mut Vec<FileOp>) {
        let Some(file) = self.file.as_mut() else {
            return;
        };
        let mut head = Vec::with_capacity(flv::TAG_TRAILER_LEN + flv::TAG_HEADER_LEN);
        if let Some(len) = file.pending_trailer {
            head.extend_from_slice(&flv::tag_trailer(len));
        }
        head.extend_from_slice(&flv::tag_header(kind, body.len(), rel_ms));
        file.size += (head.len() + body.len()) as u64;
        file.pending_trailer = Some(body.len());
        file.last_ms = rel_ms;
        let path = file.path.clone();
        self.append(path.clone(), Bytes::from(head), ops);
        if !body.is_empty() {
            self.append(path, body.clone(), ops);
        }
    }

    /// Whether the file must close before a tag of `len` bytes (`record_max_size`,
    /// `record_max_frames`).
    fn over_cap(&self, len: usize) -> bool {
        let Some(f) = &self.file else {
            return false;
        };
        // The previous tag's PreviousTagSize, this tag, and its own at the close.
        let prev = f.pending_trailer.map_or(0, |_| flv::TAG_TRAILER_LEN);
        let tag = (prev + flv::TAG_HEADER_LEN + len + flv::TAG_TRAILER_LEN) as u64;
        (self.conf.max_size > 0 && f.size + tag > self.conf.max_size)
            || (self.conf.max_frames > 0 && f.frames >= self.conf.max_frames)
    }

    /// Whether `record_interval` has run out for the open file: in media time (so files
    /// last what the interval says, however the publisher's data arrives), or in wall time
    /// at twice the interval (timestamps that stopped advancing).
    fn interval_over(&self, timestamp: u32, now: Now) -> bool {
        let (Some(f), Some(interval)) = (&self.file, self.conf.interval_ms.filter(|i| *i > 0))
        else {
            return false;
        };
        let media = f
            .epoch
            .map(|e| timestamp.wrapping_sub(e))
            .filter(|d| *d < 0x8000_0000);
        media.is_some_and(|d| u64::from(d) >= interval)
            || now.mono_ms >= f.opened_ms.saturating_add(interval.saturating_mul(2))
    }

    /// The codec headers of an FLV file, at its time zero.
    fn write_headers(&mut self, timestamp: u32, ops: &mut Vec<FileOp>) {
        {
            for (is_video, h) in [
                (true, self.video_header.clone()),
                (false, self.audio_header.clone()),
            ] {
                let recorded = if is_video {
                    self.records_video()
                } else {
                    self.records_audio()
                };
                if let (Some(h), true) = (h, recorded) {
                    self.write_relative(is_video, false, timestamp, &h, ops);
                }
            }
        }
    }

    /// The start of an MP4 file: its init segment, from the codec headers. A codec it cannot
    /// take ends the recording of this publish (the empty file is removed).
    fn start_mp4(&mut self, ops: &mut Vec<FileOp>) -> bool {
        let Some(path) = self.file.as_ref().map(|f| f.path.clone()) else {
            return false;
        };
        let video = self.video_header.as_ref().filter(|_| self.records_video());
        let audio = self.audio_header.as_ref().filter(|_| self.records_audio());
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let started = mp4::codecs(video, audio)
            .and_then(|(v, a)| Mp4File::start(&name, v.as_ref(), a.as_ref()));
        let Some((writer, init)) = started else {
            self.file = None;
            self.failed = true;
            self.emit(FileOp::Close { path: path.clone() }, None, ops);
            self.emit(FileOp::Delete { path: path.clone() }, None, ops);
            self.events.push(RecordEvent::Refused {
                recorder: self.name.clone(),
                path,
                why: "record_format mp4 takes H.264 and AAC only; not recorded".into(),
            });
            return false;
        };
        if let Some(f) = self.file.as_mut() {
            f.size = init.len() as u64;
            f.mp4 = Some(writer);
        }
        self.append(path, init, ops);
        true
    }

    /// What the MP4 writer asks for: its bytes appended, then its playlist rewritten.
    fn emit_mp4(&mut self, path: &Path, out: mp4::Mp4Output, ops: &mut Vec<FileOp>) {
        for data in out.append {
            self.append(path.to_path_buf(), data, ops);
        }
        if let Some(text) = out.playlist {
            self.emit(
                FileOp::WriteAtomic {
                    path: replay_playlist(path),
                    data: Bytes::from(text),
                },
                None,
                ops,
            );
        }
    }

    fn write_relative(
        &mut self,
        video: bool,
        keyframe: bool,
        timestamp: u32,
        tag: &Bytes,
        ops: &mut Vec<FileOp>,
    ) {
        let Some(f) = self.file.as_ref() else {
            return;
        };
        let rel = timestamp
            .wrapping_sub(f.epoch.unwrap_or(timestamp))
            .wrapping_add(f.shift);
        // Timestamps never go back in a file (a publisher's reordered audio): players and
        // the index expect them in order.
        let rel = if f.started && rel < f.last_ms && f.last_ms - rel < 0x8000_0000 {
            f.last_ms
        } else {
            rel
        };
        if let Some(f) = self.file.as_mut() {
            if let Some(mp4) = f.mp4.as_mut() {
                let out = mp4.push(video, rel, keyframe, tag);
                f.size = mp4.size();
                f.last_ms = rel;
                let path = f.path.clone();
                self.emit_mp4(&path, out, ops);
                return;
            }
        }
        let kind = if video { TAG_VIDEO } else { TAG_AUDIO };
        if tag.len() <= flv::MAX_TAG_BODY {
            self.write_tag(kind, rel, tag, ops);
        }
    }
}

/// The replay playlist of an MP4 recording: `X.mp4` -> `X.m3u8` (`X` + `.m3u8` for another
/// suffix).
pub fn replay_playlist(path: &Path) -> PathBuf {
    let text = path.to_string_lossy();
    match text.strip_suffix(".mp4") {
        Some(stem) => PathBuf::from(format!("{stem}.m3u8")),
        None => PathBuf::from(format!("{text}.m3u8")),
    }
}

/// `record_path/<name>[-<unix secs>]<suffix>`, the suffix through strftime when it holds a
/// `%` (local time), as the C module names files. The stream name is a valid file name (a
/// `/` in it is a subdirectory, as in the C module); a `/` that strftime made (`%D`) becomes
/// `_`, so a suffix never leaves the stream's directory.
pub fn file_path(conf: &RecordSettings, stream: &str, unix_ms: u64, tz_offset_min: i32) -> PathBuf {
    let secs = (unix_ms / 1000) as i64;
    let mut name = stream.to_string();
    if conf.unique {
        name.push_str(&format!("-{secs}"));
    }
    let suffix = if conf.suffix.contains('%') {
        strftime(&conf.suffix, secs, tz_offset_min)
    } else {
        conf.suffix.clone()
    };
    name.push_str(&suffix.replace('/', "_"));
    Path::new(&conf.path).join(name)
}

impl FileOutput for Recorder {
    fn on_media(
        &mut self,
        video: bool,
        timestamp: u32,
        tag: &Bytes,
        now: Now,
        ops: &mut Vec<FileOp>,
    ) {
        let kind = if video {
            FrameKind::Video
        } else {
            FrameKind::Audio
        };
        let class = crate::live::hub::classify(kind, tag);
        let (keyframe, header) = (class.keyframe, class.sequence_header);
        if header {
            if video {
                self.video_header = Some(tag.clone());
            } else {
                self.audio_header = Some(tag.clone());
            }
        }
        if !self.armed || self.failed {
            return;
        }
        let wanted = if video {
            self.conf.flags.video || (self.conf.flags.keyframes && (keyframe || header))
        } else {
            self.conf.flags.audio
        };
        if !wanted {
            return;
        }
        // A file starts (or is cut, at the end of `record_interval`) where a player can
        // start: on a keyframe when there is video.
        let at_start_point = !self.waits_for_keyframe() || (video && keyframe);
        if self.file.is_some() && at_start_point && self.interval_over(timestamp, now) {
            self.close(ops);
            self.reopen_at = Some(now.mono_ms);
        }
        if self.file.is_none() {
            let may_open = self.reopen_at.is_none_or(|at| now.mono_ms >= at);
            if !may_open || !at_start_point || self.open(now, ops).is_none() {
                return;
            }
        }
        if header {
            // Written at the file's start below; a changed header mid-file is written too.
            if self
                .file
                .as_ref()
                .is_some_and(|f| f.started && f.mp4.is_none())
            {
                self.write_relative(video, false, timestamp, tag, ops);
            }
            return;
        }
        if self.over_cap(tag.len()) {
            self.close(ops);
            // C: the next file waits for the next interval (none without one).
            self.reopen_at = match self.conf.interval_ms {
                Some(i) => Some(now.mono_ms + i),
                None => Some(u64::MAX),
            };
            return;
        }
        let started = self.file.as_ref().is_some_and(|f| f.started);
        if !started {
            if self.waits_for_keyframe() && !(video && keyframe) {
                return;
            }
            if let Some(f) = self.file.as_mut() {
                f.started = true;
                f.epoch = Some(timestamp);
            }
            if self.conf.format == RecordFormat::Mp4 {
                if !self.start_mp4(ops) {
                    return;
                }
            } else {
                self.write_headers(timestamp, ops);
            }
        }
        if video && keyframe {
            if let Some(f) = self.file.as_mut() {
                if f.indexed {
                    let rel = timestamp.wrapping_sub(f.epoch.unwrap_or(timestamp));
                    let at = f.size + f.pending_trailer.map_or(0, |_| flv::TAG_TRAILER_LEN as u64);
                    f.keyframes.push((u64::from(rel), at));
                }
            }
        }
        self.write_relative(video, keyframe, timestamp, tag, ops);
        // `record_max_frames` counts video frames (audio ones in an audio-only file).
        if video || !self.records_video() {
            if let Some(f) = self.file.as_mut() {
                f.frames += 1;
            }
        }
    }

    fn on_metadata(&mut self, payload: &[u8]) {
        self.props = flv::publisher_props(payload);
    }

    fn finish(&mut self, _now: Now, ops: &mut Vec<FileOp>) {
        self.close(ops);
        self.finished = true;
    }

    fn restart(&mut self, _now: Now, _random: &mut dyn FnMut(&mut [u8])) {
        self.finished = false;
        self.failed = false;
        self.armed = self.conf.flags.automatic();
        self.reopen_at = None;
        self.video_header = None;
        self.audio_header = None;
        self.props.clear();
    }

    fn on_tick(&mut self, _now: Now, _ops: &mut Vec<FileOp>) -> Option<u64> {
        None
    }

    fn is_done(&self) -> bool {
        self.finished && self.file.is_none() && self.pending.is_empty()
    }

    fn on_written(&mut self, ops: usize) {
        for _ in 0..ops {
            if let Some(Some(event)) = self.pending.pop_front() {
                self.events.push(event);
            }
        }
    }

    fn on_write_failed(&mut self, _path: &Path) {
        if self.failed && self.pending.is_empty() && self.file.is_none() {
            return;
        }
        // Everything asked for is lost: what was written stays (the IO ring closes the
        // files, never deletes them), and each file ends here.
        self.failed = true;
        let mut ended: Vec<RecordEvent> = Vec::new();
        for event in self.pending.drain(..).flatten() {
            if let RecordEvent::Done { .. } = event {
                ended.push(event);
            }
        }
        if let Some(f) = self.file.take() {
            ended.push(RecordEvent::Done {
                recorder: self.name.clone(),
                path: f.path,
                bytes: f.size,
                duration_ms: u64::from(f.last_ms.wrapping_sub(f.shift)),
            });
        }
        self.events.extend(ended);
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
