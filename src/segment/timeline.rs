//! The segmenters' clock (HLS and DASH): 32-bit RTMP millisecond timestamps extended to a
//! 64-bit timeline.
//!
//! Each track (audio, video) keeps its own reference, because publishers interleave tracks
//! loosely and some start them at different values; one shared reference would see every
//! alternation as a jump. Two numbers come out per message:
//! - `src_ms`: the publisher's own timestamp, unwrapped across 32-bit wraparounds (what
//!   `hls_fragment_slicing aligned` and `timestamp` naming use, so servers fed the same
//!   stream cut and name alike);
//! - `out_ms`: the output timeline written into the TS (x90) and the playlist durations.
//!   It is continuous: after a jump (publisher restart, clock step) it goes on from where it
//!   was, so TS timestamps never go backwards or leap. The segmenter still marks the first
//!   segment after a jump with `#EXT-X-DISCONTINUITY`, once.
//!
//! A wraparound is not a jump: consecutive timestamps are compared as a signed 32-bit
//! difference.

/// A timestamp this far behind its track's newest is still in order (loose interleaving,
/// B-frame reordering by muxers that put PTS in the timestamp); further back is a jump.
pub const BACKWARD_TOLERANCE_MS: i64 = 1000;
/// The smallest forward gap taken for a jump (a segmenter passes its max fragment,
/// [`super::cut::CutPolicy::max_ms`]; the larger of the two counts).
pub const MIN_FORWARD_JUMP_MS: i64 = 10_000;
/// Longest step between frames remembered for bridging a jump.
const MAX_STEP_MS: i64 = 1000;

/// Which track a timestamp belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Track {
    Video,
    Audio,
}

/// A mapped timestamp.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapped {
    /// The publisher's timestamp, unwrapped (may be slightly negative within tolerance).
    pub src_ms: i64,
    /// Position on the continuous output timeline.
    pub out_ms: u64,
    /// This message started a new mapping (a jump, or the first message after `reset`):
    /// the segmenter cuts at the next keyframe and marks a discontinuity.
    pub rebased: bool,
}

#[derive(Clone, Copy, Debug, Default)]
struct TrackState {
    started: bool,
    /// Raw timestamp of the newest message.
    last_raw: u32,
    /// Unwrapped value of `last_raw`.
    src_hw: i64,
    /// out = src + offset.
    offset: i64,
    /// Last forward step (ms), used as the gap when bridging a jump.
    step: i64,
}

/// Extends and maps RTMP timestamps; see the module docs.
#[derive(Clone, Debug)]
pub struct Timeline {
    video: TrackState,
    audio: TrackState,
    /// Highest output time seen (-1 before the first message).
    out_hw: i64,
    start_out: i64,
    forward_limit: i64,
    /// Set by `reset`: the next first message of a track reports `rebased`.
    reset_pending: bool,
}

impl Timeline {
    /// `start_out_ms`: where the output timeline begins (room for early samples of the other
    /// track and negative composition offsets). `forward_limit_ms`: a larger gap is a jump.
    pub fn new(start_out_ms: u64, forward_limit_ms: u64) -> Self {
        Timeline {
            video: TrackState::default(),
            audio: TrackState::default(),
            out_hw: -1,
            start_out: i64::try_from(start_out_ms).unwrap_or(i64::MAX).min(1 << 40),
            // Deltas are signed 32-bit: a larger limit means "never a forward jump".
            forward_limit: i64::try_from(forward_limit_ms)
                .unwrap_or(i64::MAX)
                .clamp(MIN_FORWARD_JUMP_MS, i64::from(i32::MAX)),
            reset_pending: false,
        }
    }

    /// A new publisher takes over: forget both tracks' references; the output timeline goes
    /// on after what was written, and the next message reports `rebased`.
    pub fn reset(&mut self) {
        self.video = TrackState::default();
        self.audio = TrackState::default();
        self.reset_pending = true;
    }

    /// Whether a track's message mapped to `out` sits in line with the output. A track's
    /// first message may land anywhere from the timeline's origin on (the publisher's clock
    /// relates its tracks; their start skew is kept); later ones within the jump limits.
    fn in_window(&self, out: i64, first: bool) -> bool {
        let low = if first {
            0
        } else {
            self.out_hw - BACKWARD_TOLERANCE_MS
        };
        self.out_hw < 0 || (out >= low && out <= self.out_hw + self.forward_limit)
    }

    /// Maps one message's timestamp.
    pub fn map(&mut self, track: Track, raw: u32) -> Mapped {
        let (this, other) = match track {
            Track::Video => (self.video, self.audio),
            Track::Audio => (self.audio, self.video),
        };
        let mut state = this;
        let mut rebased = false;
        let src;
        let continuous = this.started && {
            let delta = i64::from(raw.wrapping_sub(this.last_raw) as i32);
            (-BACKWARD_TOLERANCE_MS..=self.forward_limit).contains(&delta)
        };
        if continuous {
            let delta = i64::from(raw.wrapping_sub(this.last_raw) as i32);
            src = this.src_hw + delta;
            if delta > 0 {
                state.last_raw = raw;
                state.src_hw = src;
                state.step = delta.min(MAX_STEP_MS);
            }
        } else {
            // Out of line with its own past (or first message): follow the other track when
            // that places it near the output, else start a new mapping after what was written.
            let adopted = other.started.then(|| {
                let d = i64::from(raw.wrapping_sub(other.last_raw) as i32);
                (other.src_hw + d, other.offset)
            });
            match adopted {
                Some((s, off)) if self.in_window(s + off, !this.started) => {
                    src = s;
                    state.offset = off;
                }
                _ => {
                    src = i64::from(raw);
                    let out = if self.out_hw < 0 {
                        self.start_out
                    } else {
                        rebased = true;
                        self.out_hw + this.step.max(1)
                    };
                    state.offset = out - src;
                }
            }
            state.started = true;
            state.last_raw = raw;
            state.src_hw = src;
            if self.reset_pending {
                rebased = true;
                self.reset_pending = false;
            }
        }
        let out = (src + state.offset).max(0);
        self.out_hw = self.out_hw.max(out);
        match track {
            Track::Video => self.video = state,
            Track::Audio => self.audio = state,
        }
        Mapped {
            src_ms: src,
            out_ms: out as u64,
            rebased,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tl() -> Timeline {
        Timeline::new(1000, 10_000)
    }

    #[test]
    fn first_message_starts_the_output_timeline() {
        let mut t = tl();
        let m = t.map(Track::Video, 123_456);
        assert_eq!(m.out_ms, 1000);
        assert_eq!(m.src_ms, 123_456);
        assert!(!m.rebased);
        assert_eq!(t.map(Track::Video, 123_496).out_ms, 1040);
    }

    #[test]
    fn wraparound_continues_smoothly() {
        let mut t = tl();
        let start = u32::MAX - 999;
        let mut last = 0;
        for i in 0..100u32 {
            let m = t.map(Track::Video, start.wrapping_add(i * 40));
            assert!(!m.rebased);
            assert_eq!(m.out_ms, 1000 + u64::from(i) * 40);
            assert_eq!(m.src_ms, i64::from(start) + i64::from(i) * 40);
            last = m.out_ms;
        }
        assert_eq!(last, 1000 + 99 * 40);
    }

    #[test]
    fn interleaved_tracks_with_skew_are_not_jumps() {
        let mut t = tl();
        // Video starts 5 s after audio and they alternate: never a jump, skew kept.
        for i in 0..200u32 {
            let a = t.map(Track::Audio, i * 23);
            let v = t.map(Track::Video, 5000 + i * 40);
            assert!(!v.rebased && !a.rebased, "i={i}");
            assert_eq!(v.out_ms as i64 - a.out_ms as i64, 5000 + i64::from(i) * 17);
        }
    }

    #[test]
    fn a_track_starting_slightly_earlier_keeps_its_offset() {
        let mut t = tl();
        assert_eq!(t.map(Track::Video, 10_500).out_ms, 1000);
        let a = t.map(Track::Audio, 10_000);
        assert!(!a.rebased);
        assert_eq!(a.out_ms, 500);
    }

    #[test]
    fn backward_jump_rebases_once_and_keeps_output_monotonic() {
        let mut t = tl();
        for i in 0..50u32 {
            t.map(Track::Video, 100_000 + i * 40);
            t.map(Track::Audio, 100_000 + i * 40);
        }
        let before = t.out_hw;
        let v = t.map(Track::Video, 0);
        assert!(v.rebased);
        assert_eq!(v.out_ms as i64, before + 40);
        let a = t.map(Track::Audio, 10);
        assert!(
            !a.rebased,
            "the second track follows the first one's new mapping"
        );
        assert_eq!(a.out_ms, v.out_ms + 10);
        let v2 = t.map(Track::Video, 40);
        assert!(!v2.rebased);
        assert_eq!(v2.out_ms, v.out_ms + 40);
    }

    #[test]
    fn forward_jump_beyond_limit_rebases() {
        let mut t = tl();
        t.map(Track::Video, 0);
        t.map(Track::Video, 40);
        let small = t.map(Track::Video, 9_040);
        assert!(!small.rebased, "9 s gap is below the limit");
        let m = t.map(Track::Video, 70_000);
        assert!(m.rebased);
        assert_eq!(
            m.out_ms,
            small.out_ms + 1000,
            "bridged by the last step (capped)"
        );
    }

    #[test]
    fn small_backward_steps_stay_in_place() {
        let mut t = tl();
        t.map(Track::Video, 5000);
        let m = t.map(Track::Video, 4200);
        assert!(!m.rebased);
        assert_eq!(m.out_ms, 200);
        // The reference stays at the newest timestamp.
        assert_eq!(t.map(Track::Video, 5040).out_ms, 1040);
    }

    #[test]
    fn reset_reports_rebased_and_continues_after_written_output() {
        let mut t = tl();
        t.map(Track::Video, 0);
        t.map(Track::Video, 40);
        t.reset();
        let m = t.map(Track::Audio, 0);
        assert!(m.rebased);
        assert_eq!(m.out_ms, 1041);
        let v = t.map(Track::Video, 0);
        assert!(!v.rebased);
        assert_eq!(v.out_ms, 1041);
    }

    #[test]
    fn hostile_timestamps_never_panic_and_output_never_goes_far_back() {
        let mut t = tl();
        let mut x: u32 = 12345;
        let mut hw = [0u64; 2];
        for i in 0..10_000u32 {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let (track, k) = if i % 3 == 0 {
                (Track::Audio, 0)
            } else {
                (Track::Video, 1)
            };
            let m = t.map(track, x);
            assert!(m.out_ms + BACKWARD_TOLERANCE_MS as u64 >= hw[k]);
            hw[k] = hw[k].max(m.out_ms);
        }
    }
}
