//! When a segment is cut: one rule for every format.
//!
//! - A segment ends at the first keyframe once it reached its normal end ([`Boundary`]).
//! - A segment that did not start on a keyframe ends at the next keyframe whatever its
//!   length, to get back onto keyframes quickly; so does one the format must restart (a
//!   discontinuity, tracks that changed).
//! - Any frame cuts a segment that reached [`CutPolicy::max_ms`] (a publisher whose
//!   keyframes stopped still gets segments), or that is [`SegmentSoFar::full`].
//! - Audio only: every frame is a sync point; the same rule cuts at any frame.
//!
//! Where the formats differ, the difference is a parameter:
//! - `max_ms`: HLS takes `hls_max_fragment`; DASH has no such directive and takes
//!   `dash_fragment` × its `MAX_SEGMENT_FACTOR`;
//! - [`Boundary`]: HLS may align cuts on multiples of the fragment (`hls_fragment_slicing
//!   aligned`); DASH always cuts by duration;
//! - `restart`: HLS cuts at the next keyframe after a discontinuity or new tracks; DASH
//!   closes the segment outright there (a new Period), so it never asks with a restart;
//! - `full`: DASH holds a segment's samples in memory until the cut and bounds them
//!   ([`MAX_SEGMENT_BYTES`], [`MAX_SEGMENT_SAMPLES`]); MPEG-TS HLS streams a segment out in
//!   appends and is never full.

/// A segment held in memory until its cut is cut once its samples reach this size...
pub const MAX_SEGMENT_BYTES: usize = 64 * 1024 * 1024;
/// ... or this many samples in one track.
pub const MAX_SEGMENT_SAMPLES: usize = 60_000;

/// Whether a segment held in memory reached its bounds: `bytes` of samples, and the sample
/// count of its longest track.
pub fn is_full(bytes: usize, most_samples: usize) -> bool {
    bytes >= MAX_SEGMENT_BYTES || most_samples >= MAX_SEGMENT_SAMPLES
}

/// Where a segment's normal end is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Boundary {
    /// Once it is `fragment_ms` long.
    Duration,
    /// Once the publisher's timestamp enters a new multiple of `fragment_ms`, so that
    /// servers fed the same stream cut alike.
    Aligned,
}

/// The cut rule with one format's parameters. See the module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CutPolicy {
    fragment_ms: u64,
    max_ms: u64,
    boundary: Boundary,
}

/// The open segment, as the cut rule sees it when a frame arrives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentSoFar {
    /// The frame's time minus the segment's start (ms).
    pub length_ms: u64,
    /// The publisher's timestamp at the segment's start ([`Boundary::Aligned`]).
    pub start_src_ms: i64,
    /// It started on a keyframe.
    pub independent: bool,
    /// It holds as much as it may ([`is_full`]).
    pub full: bool,
}

/// What a frame does to the open segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The frame goes into the open segment.
    Keep,
    /// The open segment ends here and a new one starts with this keyframe.
    AtKeyframe,
    /// The open segment reached its bounds: it ends here, keyframe or not.
    Forced,
}

impl CutPolicy {
    /// `fragment_ms`: the normal length; `max_ms`: the length at which any frame cuts (at
    /// least `fragment_ms`, and at least 1).
    pub fn new(fragment_ms: u64, max_ms: u64, boundary: Boundary) -> Self {
        CutPolicy {
            fragment_ms,
            max_ms: max_ms.max(fragment_ms).max(1),
            boundary,
        }
    }

    pub fn fragment_ms(&self) -> u64 {
        self.fragment_ms
    }

    /// The length (ms) at which any frame cuts; also the largest forward step of the
    /// publisher's timestamps that is not a jump ([`super::timeline::Timeline::new`]).
    pub fn max_ms(&self) -> u64 {
        self.max_ms
    }

    /// Index of the fragment-long period `src_ms` falls in ([`Boundary::Aligned`]).
    pub fn period(&self, src_ms: i64) -> i64 {
        let f = i64::try_from(self.fragment_ms.max(1)).unwrap_or(i64::MAX);
        src_ms.div_euclid(f)
    }

    /// Whether the first segment of a stream may start at `src_ms`. Aligned: on a multiple
    /// of the fragment, or once the publisher's timestamp left the period of the first frame
    /// asked about (`first_period`, which the first call sets).
    pub fn may_start(&self, first_period: &mut Option<i64>, src_ms: i64) -> bool {
        if self.boundary != Boundary::Aligned || self.fragment_ms == 0 {
            return true;
        }
        let p = self.period(src_ms);
        match *first_period {
            None => {
                *first_period = Some(p);
                src_ms.rem_euclid(self.fragment_ms as i64) == 0
            }
            Some(first) => p != first,
        }
    }

    /// Whether the open segment reached its normal end at a frame of timestamp `src_ms`.
    pub fn reached_end(&self, seg: &SegmentSoFar, src_ms: i64) -> bool {
        match self.boundary {
            Boundary::Duration => seg.length_ms >= self.fragment_ms,
            Boundary::Aligned => self.period(src_ms) != self.period(seg.start_src_ms),
        }
    }

    /// Whether the open segment reached its bounds, so that any frame cuts it.
    pub fn forced(&self, seg: &SegmentSoFar) -> bool {
        seg.length_ms >= self.max_ms || seg.full
    }

    /// A video frame at `src_ms`; `restart`: the format wants a new segment at the next
    /// keyframe. A frame at the segment's start never cuts it.
    pub fn video(&self, seg: &SegmentSoFar, src_ms: i64, key: bool, restart: bool) -> Decision {
        if seg.length_ms == 0 {
            Decision::Keep
        } else if key && (restart || !seg.independent || self.reached_end(seg, src_ms)) {
            Decision::AtKeyframe
        } else if self.forced(seg) {
            Decision::Forced
        } else {
            Decision::Keep
        }
    }

    /// An audio frame of an audio-only stream (every frame a sync point): whether it starts
    /// a new segment.
    pub fn audio_only(&self, seg: &SegmentSoFar, src_ms: i64, restart: bool) -> bool {
        seg.length_ms > 0 && (restart || self.reached_end(seg, src_ms) || self.forced(seg))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(length_ms: u64) -> SegmentSoFar {
        SegmentSoFar {
            length_ms,
            start_src_ms: 0,
            independent: true,
            full: false,
        }
    }

    #[test]
    fn a_keyframe_cuts_once_the_fragment_passed() {
        let p = CutPolicy::new(2000, 20_000, Boundary::Duration);
        assert_eq!(p.video(&seg(1999), 1999, true, false), Decision::Keep);
        assert_eq!(p.video(&seg(2000), 2000, true, false), Decision::AtKeyframe);
        assert_eq!(p.video(&seg(5000), 5000, false, false), Decision::Keep);
    }

    #[test]
    fn any_frame_cuts_at_the_max_or_when_full() {
        let p = CutPolicy::new(2000, 20_000, Boundary::Duration);
        assert_eq!(p.video(&seg(19_999), 0, false, false), Decision::Keep);
        assert_eq!(p.video(&seg(20_000), 0, false, false), Decision::Forced);
        let full = SegmentSoFar {
            full: true,
            ..seg(1)
        };
        assert_eq!(p.video(&full, 0, false, false), Decision::Forced);
        assert!(p.forced(&full));
        assert!(is_full(MAX_SEGMENT_BYTES, 0) && is_full(0, MAX_SEGMENT_SAMPLES));
        assert!(!is_full(MAX_SEGMENT_BYTES - 1, MAX_SEGMENT_SAMPLES - 1));
    }

    #[test]
    fn max_is_at_least_the_fragment_and_one() {
        assert_eq!(CutPolicy::new(2000, 500, Boundary::Duration).max_ms(), 2000);
        assert_eq!(CutPolicy::new(0, 0, Boundary::Duration).max_ms(), 1);
        assert_eq!(
            CutPolicy::new(u64::MAX / 2, u64::MAX, Boundary::Duration).max_ms(),
            u64::MAX
        );
    }

    #[test]
    fn a_segment_off_keyframes_or_a_restart_ends_at_the_next_keyframe() {
        let p = CutPolicy::new(2000, 20_000, Boundary::Duration);
        let off = SegmentSoFar {
            independent: false,
            ..seg(40)
        };
        assert_eq!(p.video(&off, 40, true, false), Decision::AtKeyframe);
        assert_eq!(p.video(&off, 40, false, false), Decision::Keep);
        assert_eq!(p.video(&seg(40), 40, true, true), Decision::AtKeyframe);
        assert_eq!(p.video(&seg(40), 40, false, true), Decision::Keep);
    }

    #[test]
    fn nothing_cuts_at_the_start_of_a_segment() {
        let p = CutPolicy::new(0, 0, Boundary::Duration);
        let start = SegmentSoFar {
            independent: false,
            full: true,
            ..seg(0)
        };
        assert_eq!(p.video(&start, 0, true, true), Decision::Keep);
        assert!(!p.audio_only(&start, 0, true));
        // Only the forced check stands alone (audio of a video stream), as DASH asks it.
        assert!(p.forced(&start));
    }

    #[test]
    fn audio_only_cuts_at_any_frame_by_the_same_rule() {
        let p = CutPolicy::new(2000, 20_000, Boundary::Duration);
        assert!(!p.audio_only(&seg(1999), 0, false));
        assert!(p.audio_only(&seg(2000), 0, false));
        assert!(p.audio_only(&seg(1), 0, true));
    }

    #[test]
    fn aligned_cuts_when_the_source_time_enters_a_new_period() {
        let p = CutPolicy::new(2000, 20_000, Boundary::Aligned);
        let s = SegmentSoFar {
            start_src_ms: 3000,
            ..seg(900)
        };
        // 3000 and 3900 share period 1; 4000 starts period 2 after only 1000 ms.
        assert_eq!(p.video(&s, 3900, true, false), Decision::Keep);
        let s = SegmentSoFar {
            length_ms: 1000,
            ..s
        };
        assert_eq!(p.video(&s, 4000, true, false), Decision::AtKeyframe);
        assert_eq!(p.period(-1), -1);
    }

    #[test]
    fn aligned_first_segment_waits_for_a_period_boundary() {
        let p = CutPolicy::new(2000, 20_000, Boundary::Aligned);
        let mut first = None;
        assert!(!p.may_start(&mut first, 2500));
        assert_eq!(first, Some(1));
        assert!(!p.may_start(&mut first, 3999));
        assert!(p.may_start(&mut first, 4100));
        let mut first = None;
        assert!(p.may_start(&mut first, 6000));
        let plain = CutPolicy::new(2000, 20_000, Boundary::Duration);
        let mut first = None;
        assert!(plain.may_start(&mut first, 2500));
        assert_eq!(first, None);
    }
}
