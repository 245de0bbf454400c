//! One player's outgoing queue: shared encoded frames waiting for the socket, bounded so a
//! slow player costs a bounded amount of memory and skips ahead instead of falling behind.

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::Bytes;

use super::frame::{Frame, FrameKind};

/// Default message bound (the `out_queue` directive's default).
pub const DEFAULT_OUT_QUEUE: usize = 256;
/// Byte bound of one player's queue (besides the message bound).
pub const MAX_QUEUE_BYTES: usize = 4 * 1024 * 1024;

/// A player's queue of encoded messages with a write position in the front one.
#[derive(Debug)]
pub struct PlayerQueue {
    items: VecDeque<Frame>,
    /// Bytes of the front item already written (an RTMP message cannot be cut short).
    offset: usize,
    /// Unwritten bytes.
    bytes: usize,
    max_messages: usize,
    max_bytes: usize,
    /// Extra room granted for the cached start a joining player receives at once; used up as
    /// that burst is written.
    burst_messages: usize,
    burst_bytes: usize,
    /// After an overflow of a stream with video: drop media until the next video keyframe.
    skip_to_keyframe: bool,
    saw_video: bool,
    dropped: u64,
    bytes_out: u64,
}

impl Default for PlayerQueue {
    fn default() -> Self {
        Self::new(DEFAULT_OUT_QUEUE)
    }
}

impl PlayerQueue {
    /// A queue bounded by `max_messages` (the `out_queue` directive) and [`MAX_QUEUE_BYTES`].
    pub fn new(max_messages: usize) -> Self {
        Self::with_limits(max_messages, MAX_QUEUE_BYTES)
    }

    pub fn with_limits(max_messages: usize, max_bytes: usize) -> Self {
        PlayerQueue {
            items: VecDeque::new(),
            offset: 0,
            bytes: 0,
            max_messages: max_messages.max(1),
            max_bytes: max_bytes.max(1),
            burst_messages: 0,
            burst_bytes: 0,
            skip_to_keyframe: false,
            saw_video: false,
            dropped: 0,
            bytes_out: 0,
        }
    }

    /// Queues a message that must not be lost (codec header, metadata, control). If the
    /// queue is over its bounds, queued media is dropped first so the queue stays bounded.
    pub fn push_mandatory(&mut self, frame: Frame) {
        if frame.is_empty() {
            return;
        }
        if self.would_overflow(frame.len()) {
            self.overflow();
        }
        self.append(frame);
    }

    /// Queues a media frame. On overflow, drops all queued media not yet started and, for
    /// streams with video, every following frame up to the next video keyframe. Returns
    /// whether the frame was queued.
    pub fn push_media(&mut self, frame: Frame) -> bool {
        if frame.is_empty() {
            return false;
        }
        if self.skip_to_keyframe {
            if !frame.is_video_keyframe() {
                self.dropped += 1;
                return false;
            }
            self.skip_to_keyframe = false;
        }
        if self.would_overflow(frame.len()) {
            self.overflow();
            if self.skip_to_keyframe {
                if !frame.is_video_keyframe() {
                    self.dropped += 1;
                    return false;
                }
                self.skip_to_keyframe = false;
            }
        }
        self.append(frame);
        true
    }

    /// Queues a frame of a joining player's cached start, growing the bounds by its size so
    /// a GOP longer than `out_queue` does not overflow at once.
    pub fn push_burst(&mut self, frame: Frame) {
        if frame.is_empty() {
            return;
        }
        self.burst_messages = self.burst_messages.saturating_add(1);
        self.burst_bytes = self.burst_bytes.saturating_add(frame.len());
        self.append(frame);
    }

    fn append(&mut self, frame: Frame) {
        if frame.kind == FrameKind::Video {
            self.saw_video = true;
        }
        self.bytes = self.bytes.saturating_add(frame.len());
        self.items.push_back(frame);
    }

    fn would_overflow(&self, len: usize) -> bool {
        self.items.len() >= self.max_messages.saturating_add(self.burst_messages)
            || self.bytes.saturating_add(len) > self.max_bytes.saturating_add(self.burst_bytes)
    }

    /// Drops queued media except a partially written front item; keeps control messages and
    /// the latest metadata and codec headers (everything between two kept headers of a kind
    /// was media, so the older header is no longer needed).
    fn overflow(&mut self) {
        let mut last_data = None;
        let mut last_audio_header = None;
        let mut last_video_header = None;
        for (i, f) in self.items.iter().enumerate() {
            match f.kind {
                FrameKind::Data => last_data = Some(i),
                FrameKind::Audio if f.sequence_header => last_audio_header = Some(i),
                FrameKind::Video if f.sequence_header => last_video_header = Some(i),
                _ => {}
            }
        }
        let partial = self.offset > 0;
        let mut i = 0;
        let mut dropped = 0u64;
        self.items.retain(|f| {
            let keep = (i == 0 && partial)
                || f.kind == FrameKind::Control
                || Some(i) == last_data
                || Some(i) == last_audio_header
                || Some(i) == last_video_header;
            if !keep && !f.is_mandatory() {
                dropped += 1;
            }
            i += 1;
            keep
        });
        self.dropped = self.dropped.saturating_add(dropped);
        let total: usize = self.items.iter().map(Frame::len).sum();
        self.bytes = total.saturating_sub(self.offset);
        self.burst_messages = 0;
        self.burst_bytes = 0;
        self.skip_to_keyframe = self.saw_video;
    }

    /// Fills `dst` with the unwritten bytes in order (up to `dst.len()` slices) for a
    /// vectored write; returns how many slices were filled.
    pub fn io_slices<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        self.fill(self.items.iter(), self.offset, dst)
    }

    /// Slices of `frames`, the first from `offset`, into `dst`.
    fn fill<'a>(
        &'a self,
        frames: impl Iterator<Item = &'a Frame>,
        offset: usize,
        dst: &mut [IoSlice<'a>],
    ) -> usize {
        let mut n = 0;
        let mut from = offset;
        for f in frames {
            let Some(rest) = dst.get_mut(n..).filter(|r| !r.is_empty()) else {
                break;
            };
            n += f.io_slices_from(from, rest);
            from = 0;
        }
        n
    }

    /// The unwritten rest of the front message when it was partly written (copied into one
    /// buffer: this happens only when a player leaves mid-message). It must go out before
    /// anything else reaches the socket: a message cut in the middle breaks the client's chunk
    /// stream.
    pub fn partial_head(&self) -> Option<Bytes> {
        let front = self.items.front()?;
        (self.offset > 0 && self.offset < front.len()).then(|| front.bytes_from(self.offset))
    }

    /// Bytes left of the front message when it was partly written.
    pub fn partial_head_len(&self) -> Option<usize> {
        let front = self.items.front()?;
        (self.offset > 0 && self.offset < front.len()).then(|| front.len() - self.offset)
    }

    /// [`PlayerQueue::partial_head`], borrowed, as slices for a vectored write; returns how
    /// many slices were filled (0 when the front message was not partly written).
    pub fn io_slices_partial_head<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        match self.items.front() {
            Some(front) if self.partial_head_len().is_some() => {
                front.io_slices_from(self.offset, dst)
            }
            _ => 0,
        }
    }

    /// [`PlayerQueue::io_slices`], leaving out the front message when `skip_head` (the
    /// caller already placed its partly written rest).
    pub fn io_slices_after<'a>(&'a self, skip_head: bool, dst: &mut [IoSlice<'a>]) -> usize {
        if !skip_head {
            return self.io_slices(dst);
        }
        self.fill(self.items.iter().skip(1), 0, dst)
    }

    /// Records that `written` bytes from the front were sent.
    pub fn advance(&mut self, written: usize) {
        let mut left = written;
        while left > 0 {
            let Some(front) = self.items.front() else {
                break;
            };
            let remaining = front.len().saturating_sub(self.offset);
            if left >= remaining {
                left -= remaining;
                self.consumed(remaining);
                self.items.pop_front();
                self.offset = 0;
                self.burst_messages = self.burst_messages.saturating_sub(1);
            } else {
                self.offset += left;
                self.consumed(left);
                left = 0;
            }
        }
    }

    fn consumed(&mut self, n: usize) {
        self.bytes = self.bytes.saturating_sub(n);
        self.burst_bytes = self.burst_bytes.saturating_sub(n);
        self.bytes_out = self.bytes_out.saturating_add(n as u64);
    }

    /// Ends an overflow skip (a new publisher starts fresh).
    pub fn reset_skip(&mut self) {
        self.skip_to_keyframe = false;
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Messages queued (including a partially written one).
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Unwritten bytes.
    pub fn queued_bytes(&self) -> usize {
        self.bytes
    }

    /// Media frames dropped because this player could not keep up.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Bytes written to this player so far.
    pub fn bytes_out(&self) -> u64 {
        self.bytes_out
    }

    /// Whether the queue is skipping media until the next video keyframe.
    pub fn is_skipping(&self) -> bool {
        self.skip_to_keyframe
    }

    /// The queued messages, front first (for tests and diagnostics).
    pub fn iter(&self) -> impl Iterator<Item = &Frame> {
        self.items.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn frame(kind: FrameKind, ts: u32, key: bool, bytes: &[u8]) -> Frame {
        Frame::test_frame(kind, ts, key, bytes)
    }

    fn video(ts: u32, key: bool) -> Frame {
        frame(FrameKind::Video, ts, key, &[9; 10])
    }

    fn audio(ts: u32) -> Frame {
        frame(FrameKind::Audio, ts, false, &[8; 10])
    }

    fn collect(q: &PlayerQueue) -> Vec<u8> {
        let mut slices = [IoSlice::new(&[]); 8];
        let n = q.io_slices(&mut slices);
        slices[..n].iter().flat_map(|s| s.iter().copied()).collect()
    }

    #[test]
    fn partial_writes_resume_mid_message() {
        let mut q = PlayerQueue::new(16);
        q.push_media(frame(FrameKind::Audio, 0, false, b"abc"));
        q.push_media(frame(FrameKind::Audio, 1, false, b"defg"));
        assert_eq!(q.queued_bytes(), 7);
        assert_eq!(collect(&q), b"abcdefg");
        q.advance(2);
        assert_eq!(collect(&q), b"cdefg");
        assert_eq!(q.len(), 2);
        q.advance(3);
        assert_eq!(collect(&q), b"fg");
        assert_eq!(q.len(), 1);
        assert_eq!(q.queued_bytes(), 2);
        q.advance(2);
        assert!(q.is_empty());
        assert_eq!(q.queued_bytes(), 0);
        assert_eq!(q.bytes_out(), 7);
        q.advance(10); // more than queued: ignored
        assert_eq!(q.bytes_out(), 7);
    }

    #[test]
    fn io_slices_stops_at_the_slice_array_length() {
        let mut q = PlayerQueue::new(16);
        for i in 0..5 {
            q.push_media(audio(i));
        }
        let mut slices = [IoSlice::new(&[]); 3];
        assert_eq!(q.io_slices(&mut slices), 3);
        let mut none: [IoSlice<'_>; 0] = [];
        assert_eq!(q.io_slices(&mut none), 0);
    }

    #[test]
    fn overflow_drops_queued_media_and_skips_to_the_next_keyframe() {
        let mut q = PlayerQueue::new(4);
        let mut vh = video(0, false);
        vh.sequence_header = true;
        q.push_mandatory(vh);
        assert!(q.push_media(video(0, true)));
        assert!(q.push_media(audio(1)));
        assert!(q.push_media(video(40, false)));
        // Fifth message: overflow.
        assert!(!q.push_media(audio(41)));
        assert!(q.is_skipping());
        assert_eq!(q.len(), 1, "only the sequence header is kept");
        assert!(q.iter().next().unwrap().sequence_header);
        assert_eq!(q.dropped(), 4);
        assert!(!q.push_media(video(80, false)));
        assert!(!q.push_media(audio(81)));
        assert_eq!(q.dropped(), 6);
        assert!(q.push_media(video(120, true)));
        assert!(!q.is_skipping());
        assert!(q.push_media(audio(121)));
        let ts: Vec<u32> = q.iter().map(|f| f.timestamp).collect();
        assert_eq!(ts, [0, 120, 121]);
        assert_eq!(q.queued_bytes(), 30);
    }

    #[test]
    fn overflow_keeps_the_partially_written_front_message() {
        let mut q = PlayerQueue::new(3);
        q.push_media(video(0, true));
        q.push_media(video(40, false));
        q.push_media(video(80, false));
        q.advance(4);
        assert!(!q.push_media(video(120, false)));
        assert_eq!(q.len(), 1);
        assert_eq!(q.queued_bytes(), 6);
        assert_eq!(collect(&q), [9; 6]);
        q.advance(6);
        assert!(q.is_empty());
    }

    #[test]
    fn overflow_on_a_keyframe_keeps_the_keyframe() {
        let mut q = PlayerQueue::new(2);
        q.push_media(video(0, true));
        q.push_media(video(40, false));
        assert!(q.push_media(video(80, true)));
        assert_eq!(q.len(), 1);
        assert!(!q.is_skipping());
    }

    #[test]
    fn audio_only_overflow_accepts_the_next_frame_at_once() {
        let mut q = PlayerQueue::new(3);
        for i in 0..3 {
            q.push_media(audio(i));
        }
        assert!(q.push_media(audio(3)));
        assert!(!q.is_skipping());
        assert_eq!(q.len(), 1);
        assert_eq!(q.dropped(), 3);
    }

    #[test]
    fn byte_bound_is_enforced() {
        let mut q = PlayerQueue::with_limits(100, 25);
        q.push_media(audio(0));
        q.push_media(audio(1));
        assert_eq!(q.len(), 2);
        q.push_media(audio(2)); // 30 bytes > 25
        assert_eq!(q.len(), 1);
        assert_eq!(q.dropped(), 2);
    }

    #[test]
    fn repeated_mandatory_messages_stay_bounded_when_nobody_reads() {
        let mut q = PlayerQueue::new(4);
        for i in 0..1000 {
            let mut h = video(i, false);
            h.sequence_header = true;
            q.push_mandatory(h);
            q.push_mandatory(frame(FrameKind::Data, i, false, b"meta"));
        }
        assert!(q.len() <= 6, "len {}", q.len());
    }

    #[test]
    fn burst_gets_extra_room_until_written() {
        let mut q = PlayerQueue::new(2);
        for i in 0..10 {
            q.push_burst(video(i, i == 0));
        }
        assert!(
            q.push_media(video(10, false)),
            "burst allowance absorbs live frames"
        );
        assert_eq!(q.len(), 11);
        q.advance(100); // the burst is written
        assert_eq!(q.len(), 1);
        assert!(q.push_media(video(11, false)));
        assert!(!q.push_media(video(12, false)), "back to the normal bound");
        assert!(q.is_skipping());
    }

    #[test]
    fn control_messages_survive_overflow() {
        let mut q = PlayerQueue::new(2);
        q.push_mandatory(Frame::control(Bytes::from_static(b"status")));
        q.push_media(video(0, true));
        q.push_media(video(1, false));
        assert_eq!(q.iter().next().unwrap().kind, FrameKind::Control);
        assert_eq!(q.len(), 1);
        q.push_mandatory(Frame::control(Bytes::new()));
        assert_eq!(q.len(), 1, "empty messages are not queued");
    }

    #[test]
    fn byte_count_matches_contents_under_random_pushes_and_writes() {
        let mut q = PlayerQueue::with_limits(16, 400);
        let mut seed = 0x2545_f491_u32;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed
        };
        for i in 0..5000u32 {
            let r = next();
            let len = (r % 60) as usize + 1;
            let kind = if r & 1 == 0 {
                FrameKind::Audio
            } else {
                FrameKind::Video
            };
            let mut f = frame(kind, i, r % 7 == 0, &vec![1; len]);
            match r % 10 {
                0 => f.sequence_header = true,
                1 => f = Frame::control(Bytes::from(vec![2; len])),
                _ => {}
            }
            if f.is_mandatory() {
                q.push_mandatory(f);
            } else {
                q.push_media(f);
            }
            if next() % 3 == 0 {
                q.advance((next() % 200) as usize);
            }
            let total: usize = q.iter().map(Frame::len).sum();
            let mut slices = [IoSlice::new(&[]); 64];
            let n = q.io_slices(&mut slices);
            let sliced: usize = slices[..n].iter().map(|s| s.len()).sum();
            assert_eq!(sliced, q.queued_bytes());
            assert!(total >= q.queued_bytes() && total - q.queued_bytes() < 61);
            assert!(q.len() <= 16 + 4, "len {}", q.len());
        }
    }
}
