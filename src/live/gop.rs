//! Per-stream start cache: what a joining player needs to start playback at once instead of
//! waiting for the next keyframe (latest metadata, codec headers, frames since the last
//! video keyframe, or a short audio tail for audio-only streams).

use std::collections::VecDeque;

use bytes::Bytes;

use super::frame::{Frame, FrameKind};
use crate::media::flv::{self, MultitrackKind, VideoPacket};
use crate::rtmp::ertmp::Wire;

/// Most bytes of encoded frames one stream's cache holds; past it the cache is dropped until
/// the next keyframe (a very long GOP is not worth keeping in memory).
pub const MAX_GOP_BYTES: usize = 8 * 1024 * 1024;
/// Most frames one stream's cache holds (same rule as [`MAX_GOP_BYTES`]).
pub const MAX_GOP_FRAMES: usize = 2048;
/// Audio-only streams keep about this much audio (by timestamp) for joining players.
pub const AUDIO_ONLY_TAIL_MS: u32 = 1000;
/// Enhanced RTMP video metadata messages (colorInfo) kept, the latest of each codec.
pub const MAX_VIDEO_METADATA: usize = 4;
/// Longest one kept (ffmpeg's colorInfo with HDR mastering data is under 500 bytes).
pub const MAX_VIDEO_METADATA_LEN: usize = 4096;
/// Other video tracks (multitrack sequence starts) kept for /stat.
pub const MAX_EXTRA_TRACKS: usize = 8;
/// Longest sequence start of another track kept (a configuration record and its header).
pub const MAX_TRACK_HEADER_LEN: usize = crate::media::codecs::MAX_CONFIG_LEN + 64;

/// What one stream's start cache may hold: `gop_cache` and the `gop_max_*` counts of
/// nginx-http-flv-module. Past a count the cache is dropped until the next keyframe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartCache {
    /// Frames are kept at all (`gop_cache`). Off, joining players still get metadata and
    /// codec headers at once, and then wait for the next keyframe (the C module's way).
    pub frames: bool,
    /// `gop_max_frame_count`.
    pub max_frames: usize,
    /// `gop_max_video_count`.
    pub max_video: usize,
    /// `gop_max_audio_count`.
    pub max_audio: usize,
}

impl Default for StartCache {
    fn default() -> Self {
        StartCache {
            frames: true,
            max_frames: MAX_GOP_FRAMES,
            max_video: MAX_GOP_FRAMES,
            max_audio: MAX_GOP_FRAMES,
        }
    }
}

/// The start cache of one stream.
#[derive(Debug, Default)]
pub struct GopCache {
    limits: StartCache,
    video_frames: usize,
    audio_frames: usize,
    metadata: Option<Bytes>,
    video_header: Option<Bytes>,
    audio_header: Option<Bytes>,
    /// Header forms of the codec headers (which players may take them).
    video_header_wire: Wire,
    audio_header_wire: Wire,
    /// For video streams: a keyframe and everything after it; for audio-only streams: the
    /// audio tail. Empty while waiting for a keyframe.
    frames: VecDeque<Frame>,
    bytes: usize,
    has_video: bool,
    last_timestamp: u32,
    /// Enhanced RTMP video metadata messages, one per codec (see [`MAX_VIDEO_METADATA`]).
    /// They are sent once, before the first keyframe, so the frames cannot hold them.
    video_metadata: Vec<Bytes>,
    /// Sequence starts of the other video tracks (multitrack, one track per message), by
    /// track id; sent once too.
    track_headers: Vec<(u8, Bytes)>,
}

impl GopCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets everything (a new publisher starts from scratch); the limits stay.
    pub fn clear(&mut self) {
        *self = Self {
            limits: self.limits,
            ..Self::default()
        };
    }

    /// Sets what the cache may hold (the publishing application's settings).
    pub fn set_limits(&mut self, limits: StartCache) {
        self.limits = limits;
        if !limits.frames || self.over_limits() {
            self.drop_frames();
        }
    }

    fn over_limits(&self) -> bool {
        self.frames.len() > self.limits.max_frames
            || self.video_frames > self.limits.max_video
            || self.audio_frames > self.limits.max_audio
            || self.bytes > MAX_GOP_BYTES
    }

    /// Records one publisher message. `payload` is the message body; only metadata and codec
    /// headers are copied (they are small and re-encoded for each joining player).
    pub fn update(&mut self, frame: &Frame, payload: &[u8]) {
        if frame.kind == FrameKind::Control {
            return;
        }
        self.last_timestamp = frame.timestamp;
        match frame.kind {
            FrameKind::Data => {
                replace(&mut self.metadata, payload);
            }
            FrameKind::Video if frame.sequence_header => {
                self.has_video = true;
                self.video_header_wire = frame.wire;
                if replace(&mut self.video_header, payload) {
                    // Cached frames belong to the old configuration.
                    self.drop_frames();
                }
            }
            FrameKind::Audio if frame.sequence_header => {
                self.audio_header_wire = frame.wire;
                if replace(&mut self.audio_header, payload) {
                    self.drop_frames();
                }
            }
            FrameKind::Video => {
                self.keep_side_message(frame, payload);
                self.push_video(frame);
            }
            FrameKind::Audio => self.push_audio(frame),
            FrameKind::Control => {}
        }
    }

    /// Keeps video metadata and other tracks' sequence starts; only enhanced messages that
    /// are neither coded frames nor the main track's header are parsed.
    fn keep_side_message(&mut self, frame: &Frame, payload: &[u8]) {
        let Some(ex) = frame.wire.enhanced() else {
            return;
        };
        if ex.coded || (ex.start && !ex.multitrack) {
            return;
        }
        let Ok(tag) = flv::parse_video(payload) else {
            return;
        };
        match (tag.packet, tag.multitrack) {
            (VideoPacket::Metadata, None) if payload.len() <= MAX_VIDEO_METADATA_LEN => {
                let fourcc = tag.codec.fourcc();
                let same =
                    |m: &Bytes| flv::parse_video(m).is_ok_and(|t| t.codec.fourcc() == fourcc);
                let kept = &mut self.video_metadata;
                let message = Bytes::copy_from_slice(payload);
                match kept.iter().position(same) {
                    Some(i) => {
                        if let Some(slot) = kept.get_mut(i) {
                            *slot = message;
                        }
                    }
                    None if kept.len() < MAX_VIDEO_METADATA => kept.push(message),
                    None => {}
                }
            }
            (VideoPacket::SequenceHeader, Some(m))
                if m.kind == MultitrackKind::OneTrack
                    && m.first_track_id != 0
                    && payload.len() <= MAX_TRACK_HEADER_LEN =>
            {
                let id = m.first_track_id;
                let kept = &mut self.track_headers;
                let header = Bytes::copy_from_slice(payload);
                match kept.iter().position(|(t, _)| *t == id) {
                    Some(i) => {
                        if let Some(slot) = kept.get_mut(i) {
                            slot.1 = header;
                        }
                    }
                    None if kept.len() < MAX_EXTRA_TRACKS => {
                        kept.push((id, header));
                        kept.sort_by_key(|(t, _)| *t);
                    }
                    None => {}
                }
            }
            _ => {}
        }
    }

    fn push_video(&mut self, frame: &Frame) {
        if !self.has_video {
            // The audio tail of a stream that turned out to have video is no start point.
            self.has_video = true;
            self.drop_frames();
        }
        if frame.keyframe {
            self.drop_frames();
        } else if !self.gop_started() {
            return;
        }
        self.push(frame);
        if self.over_limits() {
            self.drop_frames();
        }
    }

    fn push_audio(&mut self, frame: &Frame) {
        if self.has_video {
            if self.gop_started() {
                self.push(frame);
                if self.over_limits() {
                    self.drop_frames();
                }
            }
            return;
        }
        self.push(frame);
        while self.frames.len() > 1 {
            let span = match (self.frames.front(), self.frames.back()) {
                (Some(first), Some(last)) => last.timestamp.wrapping_sub(first.timestamp),
                _ => 0,
            };
            if span <= AUDIO_ONLY_TAIL_MS && !self.over_limits() {
                break;
            }
            if let Some(old) = self.frames.pop_front() {
                self.bytes = self.bytes.saturating_sub(old.len());
                self.audio_frames = self.audio_frames.saturating_sub(1);
            }
        }
    }

    fn push(&mut self, frame: &Frame) {
        if !self.limits.frames {
            return;
        }
        self.bytes = self.bytes.saturating_add(frame.len());
        match frame.kind {
            FrameKind::Video => self.video_frames += 1,
            _ => self.audio_frames += 1,
        }
        self.frames.push_back(frame.clone());
    }

    fn drop_frames(&mut self) {
        self.frames.clear();
        self.bytes = 0;
        self.video_frames = 0;
        self.audio_frames = 0;
    }

    /// Whether the cached frames start with a video keyframe.
    fn gop_started(&self) -> bool {
        self.frames.front().is_some_and(Frame::is_video_keyframe)
    }

    /// Whether the stream has shown any video.
    pub fn has_video(&self) -> bool {
        self.has_video
    }

    pub fn metadata(&self) -> Option<&Bytes> {
        self.metadata.as_ref()
    }

    pub fn video_header(&self) -> Option<&Bytes> {
        self.video_header.as_ref()
    }

    pub fn audio_header(&self) -> Option<&Bytes> {
        self.audio_header.as_ref()
    }

    /// The latest Enhanced RTMP video metadata message (colorInfo) of each codec seen.
    pub fn video_metadata(&self) -> impl Iterator<Item = &Bytes> {
        self.video_metadata.iter()
    }

    /// The latest sequence start of each other video track (multitrack), by track id.
    pub fn track_headers(&self) -> impl Iterator<Item = (u8, &Bytes)> {
        self.track_headers.iter().map(|(id, h)| (*id, h))
    }

    /// Header form of [`GopCache::video_header`].
    pub fn video_header_wire(&self) -> Wire {
        self.video_header_wire
    }

    /// Header form of [`GopCache::audio_header`].
    pub fn audio_header_wire(&self) -> Wire {
        self.audio_header_wire
    }

    /// The frames a joining player starts with, in arrival order.
    pub fn frames(&self) -> impl Iterator<Item = &Frame> {
        self.frames.iter()
    }

    pub fn len(&self) -> usize {
        self.frames.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Encoded bytes of the cached frames.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The timestamp joining players' metadata and headers are sent with: that of the first
    /// cached frame, so timestamps never go backwards; else the latest one seen.
    pub fn start_timestamp(&self) -> u32 {
        self.frames
            .front()
            .map_or(self.last_timestamp, |f| f.timestamp)
    }
}

/// Stores `payload` in `slot` unless it is already there. Returns true when a different
/// previous value was replaced.
fn replace(slot: &mut Option<Bytes>, payload: &[u8]) -> bool {
    match slot {
        Some(old) if old[..] == *payload => false,
        Some(_) => {
            *slot = Some(Bytes::copy_from_slice(payload));
            true
        }
        None => {
            *slot = Some(Bytes::copy_from_slice(payload));
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: FrameKind, ts: u32, key: bool, len: usize) -> Frame {
        Frame::test_frame(kind, ts, key, &vec![0u8; len])
    }

    fn header(kind: FrameKind) -> Frame {
        let mut f = frame(kind, 0, false, 4);
        f.sequence_header = true;
        f
    }

    #[test]
    fn cache_starts_at_the_latest_keyframe() {
        let mut g = GopCache::new();
        g.update(&header(FrameKind::Video), &[0x17, 0]);
        g.update(&frame(FrameKind::Video, 0, true, 10), &[]);
        g.update(&frame(FrameKind::Audio, 10, false, 5), &[]);
        g.update(&frame(FrameKind::Video, 40, false, 10), &[]);
        g.update(&frame(FrameKind::Video, 80, true, 10), &[]);
        g.update(&frame(FrameKind::Audio, 90, false, 5), &[]);
        let ts: Vec<u32> = g.frames().map(|f| f.timestamp).collect();
        assert_eq!(ts, [80, 90]);
        assert_eq!(g.start_timestamp(), 80);
        assert_eq!(g.bytes(), 15);
        assert_eq!(&g.video_header().unwrap()[..], &[0x17, 0]);
    }

    #[test]
    fn without_frames_only_metadata_and_headers_are_kept_and_clear_keeps_the_limits() {
        let mut g = GopCache::new();
        g.set_limits(StartCache {
            frames: false,
            ..StartCache::default()
        });
        g.update(&header(FrameKind::Video), &[0x17, 0]);
        g.update(&frame(FrameKind::Video, 0, true, 10), &[]);
        g.update(&frame(FrameKind::Audio, 10, false, 5), &[]);
        assert!(g.is_empty());
        assert_eq!(g.bytes(), 0);
        assert_eq!(&g.video_header().unwrap()[..], &[0x17, 0]);
        g.clear();
        g.update(&frame(FrameKind::Video, 40, true, 10), &[]);
        assert!(
            g.is_empty(),
            "a new publisher keeps the application's limits"
        );
    }

    #[test]
    fn video_and_audio_counts_are_bounded_separately() {
        let mut g = GopCache::new();
        g.set_limits(StartCache {
            max_audio: 3,
            ..StartCache::default()
        });
        g.update(&frame(FrameKind::Video, 0, true, 10), &[]);
        for ts in 1..=3 {
            g.update(&frame(FrameKind::Audio, ts, false, 5), &[]);
        }
        assert_eq!(g.len(), 4);
        g.update(&frame(FrameKind::Audio, 4, false, 5), &[]);
        assert!(
            g.is_empty(),
            "the fourth audio frame is over gop_max_audio_count"
        );
        g.update(&frame(FrameKind::Video, 40, true, 10), &[]);
        assert_eq!(g.len(), 1, "counts start again at the next keyframe");
        // An audio-only tail is bounded by the count too.
        let mut a = GopCache::new();
        a.set_limits(StartCache {
            max_audio: 2,
            ..StartCache::default()
        });
        for ts in 0..5 {
            a.update(&frame(FrameKind::Audio, ts * 20, false, 5), &[]);
        }
        assert_eq!(a.len(), 2);
    }

    #[test]
    fn frames_before_the_first_keyframe_are_not_cached() {
        let mut g = GopCache::new();
        g.update(&header(FrameKind::Video), &[0x17, 0]);
        g.update(&frame(FrameKind::Video, 0, false, 10), &[]);
        g.update(&frame(FrameKind::Audio, 5, false, 5), &[]);
        assert!(g.is_empty());
        assert_eq!(g.start_timestamp(), 5);
    }

    #[test]
    fn oversized_gop_is_dropped_until_the_next_keyframe() {
        let mut g = GopCache::new();
        g.update(&frame(FrameKind::Video, 0, true, 10), &[]);
        for i in 1..=MAX_GOP_FRAMES as u32 {
            g.update(&frame(FrameKind::Video, i, false, 10), &[]);
        }
        assert!(g.is_empty(), "frame bound enforced");
        g.update(&frame(FrameKind::Video, 5000, false, 10), &[]);
        assert!(g.is_empty(), "still waiting for a keyframe");
        g.update(&frame(FrameKind::Video, 6000, true, 10), &[]);
        assert_eq!(g.len(), 1);
        g.update(&frame(FrameKind::Video, 6001, false, MAX_GOP_BYTES), &[]);
        assert!(g.is_empty(), "byte bound enforced");
    }

    #[test]
    fn audio_only_stream_keeps_a_short_tail() {
        let mut g = GopCache::new();
        g.update(&header(FrameKind::Audio), &[0xaf, 0, 0x12, 0x10]);
        for i in 0..100u32 {
            g.update(&frame(FrameKind::Audio, i * 23, false, 300), &[]);
        }
        let first = g.frames().next().unwrap().timestamp;
        let last = g.frames().last().unwrap().timestamp;
        assert_eq!(last, 99 * 23);
        assert!(last - first <= AUDIO_ONLY_TAIL_MS);
        assert!(last - first > AUDIO_ONLY_TAIL_MS - 23);
        assert!(!g.has_video());
    }

    #[test]
    fn first_video_frame_discards_the_audio_tail() {
        let mut g = GopCache::new();
        g.update(&frame(FrameKind::Audio, 0, false, 5), &[]);
        g.update(&frame(FrameKind::Video, 10, false, 5), &[]);
        assert!(g.is_empty());
        g.update(&frame(FrameKind::Audio, 20, false, 5), &[]);
        assert!(g.is_empty());
        g.update(&frame(FrameKind::Video, 30, true, 5), &[]);
        assert_eq!(g.len(), 1);
    }

    #[test]
    fn changed_codec_header_drops_the_cached_frames() {
        let mut g = GopCache::new();
        g.update(&header(FrameKind::Video), &[1]);
        g.update(&frame(FrameKind::Video, 0, true, 5), &[]);
        g.update(&header(FrameKind::Video), &[1]);
        assert_eq!(g.len(), 1, "a repeated identical header keeps the GOP");
        g.update(&header(FrameKind::Video), &[2]);
        assert!(g.is_empty());
        assert_eq!(&g.video_header().unwrap()[..], &[2]);
    }

    #[test]
    fn metadata_is_replaced_and_clear_forgets_everything() {
        let mut g = GopCache::new();
        g.update(&frame(FrameKind::Data, 0, false, 3), b"one");
        g.update(&frame(FrameKind::Data, 0, false, 3), b"two");
        assert_eq!(&g.metadata().unwrap()[..], b"two");
        g.clear();
        assert!(g.metadata().is_none());
        assert!(!g.has_video());
    }
}
