//! How a segment is split into parts: LL-HLS partial segments and low-latency DASH chunks
//! (one split serves both).
//!
//! Parts of about the configured length cut greedily leave a runt at the end of each
//! segment (25 fps, 1 s keyframe interval, 333 ms parts: 8 + 8 + 8 + 1 frames). hls.js picks
//! the next segment instead of a last part shorter than its lookup tolerance (0.25 s) when
//! that segment is already listed, and then stalls at the gap until it jumps it. So:
//! - each segment is split into even parts, the longer ones last, from the number of frames
//!   it is expected to hold (the previous segment's: encoders keep a steady keyframe
//!   interval). A segment that runs longer than expected goes on in parts of the most that
//!   fit;
//! - the stream's part target (`PART-TARGET`, fixed for the stream: players read it once) is
//!   chosen at the first cut so that such even parts exist near the configured length, and
//!   never below the longest part already written (RFC 8216bis: no part is longer; all but a
//!   segment's last are at least 85 % of it).

/// The rule that ends parts in one track of one segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartRule<'a> {
    /// Planned ends (frame indexes in the segment where a new part starts), ascending:
    /// [`planned_ends`].
    pub plan: &'a [usize],
    /// Most frames in a part.
    pub max_frames: usize,
    /// Longest part (ticks).
    pub max_ticks: u64,
}

impl PartRule<'_> {
    /// Before the stream's part target is known: parts of at most `max_ticks`, cut greedily.
    pub fn greedy(max_ticks: u64) -> Self {
        PartRule {
            plan: &[],
            max_frames: usize::MAX,
            max_ticks,
        }
    }

    /// Whether the part that starts at frame `from` ends before frame `next` (indexes in the
    /// segment), which would make it `ticks` long. A part holds at least one frame.
    pub fn ends_before(&self, from: usize, next: usize, ticks: u64) -> bool {
        let frames = next.saturating_sub(from);
        // A planned end right after an unplanned one (the frames ran late) is skipped: no
        // part of a frame or two in the middle of a segment.
        let planned = self.plan.binary_search(&next).is_ok() && frames * 2 >= self.max_frames;
        frames > 0 && (planned || frames >= self.max_frames || ticks > self.max_ticks)
    }

    /// Where parts end among frames `from..` of a segment, with these `durations` (ticks):
    /// indexes in the segment. The frames after the last end stay for later unless `finish`.
    pub fn ends(&self, from: usize, durations: &[u64], finish: bool) -> Vec<usize> {
        let mut ends = Vec::new();
        let (mut start, mut acc) = (from, 0u64);
        for (i, d) in (from..).zip(durations) {
            if self.ends_before(start, i, acc.saturating_add(*d)) {
                ends.push(i);
                start = i;
                acc = 0;
            }
            acc = acc.saturating_add(*d);
        }
        let end = from.saturating_add(durations.len());
        if finish && start < end {
            ends.push(end);
        }
        ends
    }
}

/// How many whole frames of `frame_ticks` fit in `ticks` (at least one).
pub fn frames_within(ticks: u64, frame_ticks: u64) -> usize {
    usize::try_from(ticks / frame_ticks.max(1))
        .unwrap_or(usize::MAX)
        .max(1)
}

/// Where the parts of a segment of `frames` frames end (frame indexes, the segment's own
/// end left out): as few parts as keep each within `max` frames, as even as can be, the
/// longer ones last (a segment's last part is the one players skip when it is short).
pub fn planned_ends(frames: usize, max: usize) -> Vec<usize> {
    let max = max.max(1);
    let parts = frames.div_ceil(max);
    if parts < 2 {
        return Vec::new();
    }
    // The first `parts - longer` parts hold `short` frames, the rest one more.
    let (short, longer) = (frames / parts, frames % parts);
    let first_longer = parts - longer;
    (1..parts)
        .map(|i| i * short + i.saturating_sub(first_longer))
        .collect()
}

/// The most frames in a part, chosen from the first segment (`frames` long) whose parts
/// held at most `max` frames: that segment split into as many parts as it has whole
/// `max`-frame parts, so never fewer frames than `max` (the parts written stay within it)
/// and parts as even as can be.
pub fn target_frames(frames: usize, max: usize) -> usize {
    let max = max.max(1);
    let parts = (frames / max).max(1);
    frames.div_ceil(parts).max(max)
}

/// The longest and the shortest total of `run` consecutive `durations` (all of them when
/// fewer).
pub fn run_lengths(durations: &[u64], run: usize) -> (u64, u64) {
    let run = run.clamp(1, durations.len().max(1));
    let mut sum: u64 = durations.iter().take(run).sum();
    let (mut longest, mut shortest) = (sum, sum);
    for (out, add) in durations.iter().zip(durations.iter().skip(run)) {
        sum = sum.saturating_add(*add).saturating_sub(*out);
        longest = longest.max(sum);
        shortest = shortest.min(sum);
    }
    (longest, shortest)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Part lengths (frames) of a segment of `frames` frames under `rule`.
    fn split(rule: &PartRule, frames: usize, step: u64) -> Vec<usize> {
        let ends = rule.ends(0, &vec![step; frames], true);
        let mut start = 0;
        ends.iter()
            .map(|e| {
                let n = e - start;
                start = *e;
                n
            })
            .collect()
    }

    #[test]
    fn a_segment_is_split_evenly_with_the_longer_parts_last() {
        assert_eq!(planned_ends(25, 9), vec![8, 16]);
        assert_eq!(planned_ends(25, 8), vec![6, 12, 18]);
        assert_eq!(planned_ends(60, 10), vec![10, 20, 30, 40, 50]);
        assert_eq!(planned_ends(43, 15), vec![14, 28]);
        assert_eq!(planned_ends(5, 9), Vec::<usize>::new());
        assert_eq!(planned_ends(0, 9), Vec::<usize>::new());
        assert_eq!(planned_ends(7, 0), vec![1, 2, 3, 4, 5, 6]);
        for frames in 1..200 {
            for max in 1..40 {
                let ends = planned_ends(frames, max);
                let mut sizes = Vec::new();
                let mut start = 0;
                for e in ends.iter().chain(std::iter::once(&frames)) {
                    sizes.push(e - start);
                    start = *e;
                }
                assert!(
                    sizes.iter().all(|s| (1..=max).contains(s)),
                    "{frames} {max}"
                );
                assert!(sizes.windows(2).all(|w| w[0] <= w[1]), "{sizes:?}");
                assert!(sizes.last().unwrap() - sizes.first().unwrap() <= 1);
            }
        }
    }

    #[test]
    fn the_part_target_fits_the_first_segment_near_the_configured_length() {
        // 25 fps, 1 s keyframe interval, 333 ms: 9 frames (360 ms), parts 8 + 8 + 9.
        assert_eq!(target_frames(25, 8), 9);
        // 30 fps, 2 s: 10 frames exactly.
        assert_eq!(target_frames(60, 10), 10);
        // A segment shorter than one part: that part.
        assert_eq!(target_frames(5, 8), 8);
        // 44.1 kHz AAC (23.2 ms), 1 s, 333 ms: 15 frames (348 ms), parts 14 + 14 + 15.
        assert_eq!(target_frames(43, 14), 15);
        for frames in 1..300 {
            for max in 1..40 {
                let t = target_frames(frames, max);
                assert!(t >= max);
                // Even parts of at most `t` frames: at least 85 % of it but for small
                // counts, where one frame is more than 15 %.
                let ends = planned_ends(frames, t);
                let shortest = frames / (ends.len() + 1);
                assert!(
                    shortest * 100 >= t * 85 || t < 7 || frames < t,
                    "{frames} {max}"
                );
            }
        }
    }

    #[test]
    fn runs_of_frames_are_measured() {
        assert_eq!(run_lengths(&[40; 25], 9), (360, 360));
        assert_eq!(run_lengths(&[33, 34, 34, 33, 33, 33], 3), (101, 99));
        assert_eq!(run_lengths(&[10, 20], 5), (30, 30));
        assert_eq!(run_lengths(&[], 5), (0, 0));
    }

    #[test]
    fn the_rule_follows_the_plan_and_caps_what_was_not_planned() {
        let greedy = PartRule::greedy(333);
        assert_eq!(split(&greedy, 25, 40), vec![8, 8, 8, 1]);
        let plan = planned_ends(25, frames_within(360, 40));
        let planned = PartRule {
            plan: &plan,
            max_frames: 9,
            max_ticks: 360,
        };
        assert_eq!(split(&planned, 25, 40), vec![8, 8, 9]);
        // The keyframe came late: the part goes on to the most that fit.
        assert_eq!(split(&planned, 30, 40), vec![8, 8, 9, 5]);
        // Early: the last part is short.
        assert_eq!(split(&planned, 20, 40), vec![8, 8, 4]);
        // No expectation (after a restart): the most that fit.
        let unplanned = PartRule {
            plan: &[],
            ..planned
        };
        assert_eq!(split(&unplanned, 25, 40), vec![9, 9, 7]);
        // Frames longer than planned (timestamps jitter): never longer than the target.
        let ends = planned.ends(0, &[40, 40, 40, 40, 40, 40, 40, 41, 40, 40], false);
        assert_eq!(ends, vec![8]);
        let ends = planned.ends(8, &[50; 9], false);
        assert_eq!(ends, vec![15]);
        // Nothing past the last end without `finish`; a part always holds a frame.
        assert_eq!(planned.ends(0, &[40; 5], false), Vec::<usize>::new());
        assert_eq!(PartRule::greedy(10).ends(0, &[40, 40], true), vec![1, 2]);
        assert!(!planned.ends_before(3, 3, 1000));
    }
}
