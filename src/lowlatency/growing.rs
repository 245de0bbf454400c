//! LL-DASH on the http side: a DASH media segment that is still being written lives at
//! `<name>.part` and grows by whole CMAF chunks (`moof`+`mdat`); when whole it is renamed (same
//! inode) to `<name>`; when abandoned `<name>.part` is unlinked and `<name>` never appears.
//! A request for `<name>` while only `<name>.part` exists is answered from the growing file:
//! what it has now, then every new byte as soon as it appears, and the response ends cleanly
//! only once `<name>` is that same file and every byte of it was sent.
//!
//! Pure: which names qualify ([`is_growing_segment_name`]) and, for one response, what to do on
//! each look at the file ([`Growing::step`]); file access comes in through [`Look`].

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::names::parse_part_name;

/// At most this many bytes are handed to nginx per step of one response.
pub const READ_MAX: u64 = 256 * 1024;

/// A growing file that has not grown for this long is given up (the response is aborted).
pub const STALL_MS: u64 = 10_000;

/// A request that comes before its segment's `.part` exists (a player's clock slightly ahead)
/// waits this long for it.
pub const EARLY_WAIT_MS: u64 = 1_000;

/// `<path>.part`: where the segment at `path` grows.
pub fn part_path(path: &Path) -> PathBuf {
    let mut s = OsString::from(path.as_os_str());
    s.push(".part");
    PathBuf::from(s)
}

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit())
}

/// A DASH media segment's file name (no directory): `<stem><t>.<ext>` or
/// `<stem><t>-<timescale>.<ext>`, `<stem>` being `<stream>-` or empty, `<t>` decimal digits and
/// `<ext>` `m4v`, `m4a` or `m4s`. Init segments, the segmenter's spool files and LL-HLS part
/// names (`<stem>p<t>.m4s`, which [`parse_part_name`] reads) do not qualify.
pub fn is_growing_segment_name(file: &str) -> bool {
    let Some((base, ext)) = file.rsplit_once('.') else {
        return false;
    };
    if !matches!(ext, "m4v" | "m4a" | "m4s") || file.contains('/') {
        return false;
    }
    if parse_part_name(file).is_some() {
        return false;
    }
    match base.rsplit_once('-') {
        None => all_digits(base),
        Some((head, last)) => all_digits(last) && !head.is_empty(),
    }
}

/// The file as one response sees it. Asked in this order within one step, which is what makes
/// the answer race-free against the writer's rename: [`Look::size`], then (only once every byte
/// up to that size was sent) [`Look::part_is_ours`], then [`Look::final_is_ours`], then
/// [`Look::size`] again.
pub trait Look {
    /// The open file's size now (`fstat`), `None` if that fails.
    fn size(&mut self) -> Option<u64>;
    /// `<name>.part` is the open file (same device and inode).
    fn part_is_ours(&mut self) -> bool;
    /// `<name>` is the open file (same device and inode): it was renamed, so it is whole.
    fn final_is_ours(&mut self) -> bool;
}

/// What to do now for one response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Send these bytes of the file (already counted as sent), and flush.
    Send { offset: u64, len: u64 },
    /// Nothing new (or the client has not taken what was sent yet): look again later.
    Wait,
    /// The file is whole and every byte was sent: end the response cleanly.
    End,
    /// End the response so that the client cannot take it for complete.
    Abort(Why),
}

/// Why a response is aborted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Why {
    /// `<name>.part` is gone and `<name>` is not the file: the segment was abandoned.
    Abandoned,
    /// The file has not grown for [`STALL_MS`].
    Stalled,
    /// The file is shorter than what was already sent, or cannot be looked at.
    Truncated,
    /// The client has taken nothing for the location's `send_timeout`.
    ClientStuck,
}

/// One response's progress through its growing file.
#[derive(Clone, Debug)]
pub struct Growing {
    sent: u64,
    seen: u64,
    grew_at: u64,
    blocked_since: Option<u64>,
}

impl Growing {
    /// A response that starts at `now` with nothing sent.
    pub fn new(now: u64) -> Growing {
        Growing {
            sent: 0,
            seen: 0,
            grew_at: now,
            blocked_since: None,
        }
    }

    /// Bytes handed to nginx so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// One look at the file. `busy`: the connection still holds output it could not send
    /// (nothing more is read then); `send_timeout_ms`: how long it may stay so.
    pub fn step(
        &mut self,
        now: u64,
        busy: bool,
        send_timeout_ms: u64,
        look: &mut impl Look,
    ) -> Step {
        let Some(size) = look.size() else {
            return Step::Abort(Why::Truncated);
        };
        if let Some(step) = self.grown(now, size) {
            return step;
        }
        if busy {
            let since = *self.blocked_since.get_or_insert(now);
            if now.saturating_sub(since) >= send_timeout_ms {
                return Step::Abort(Why::ClientStuck);
            }
            return Step::Wait;
        }
        self.blocked_since = None;
        if size > self.sent {
            return self.send(size);
        }
        if look.part_is_ours() {
            if now.saturating_sub(self.grew_at) >= STALL_MS {
                return Step::Abort(Why::Stalled);
            }
            return Step::Wait;
        }
        if !look.final_is_ours() {
            return Step::Abort(Why::Abandoned);
        }
        // Renamed: whole. Its size now may be more than what was seen before the rename.
        let Some(size) = look.size() else {
            return Step::Abort(Why::Truncated);
        };
        if let Some(step) = self.grown(now, size) {
            return step;
        }
        if size > self.sent {
            return self.send(size);
        }
        Step::End
    }

    /// Notes the size; an abort if the file shrank below what was sent.
    fn grown(&mut self, now: u64, size: u64) -> Option<Step> {
        if size < self.sent {
            return Some(Step::Abort(Why::Truncated));
        }
        if size > self.seen {
            self.seen = size;
            self.grew_at = now;
        }
        None
    }

    fn send(&mut self, size: u64) -> Step {
        let offset = self.sent;
        let len = (size - offset).min(READ_MAX);
        self.sent += len;
        Step::Send { offset, len }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_qualify_and_spools_parts_and_init_do_not() {
        for n in [
            "cam-4000.m4v",
            "cam-4000.m4a",
            "cam-4000-48000.m4a",
            "4000.m4v",
            "4000-90000.m4s",
            "my-stream-123.m4s",
            "p5-1000.m4v",
            "p5-1000.m4s",
        ] {
            assert!(is_growing_segment_name(n), "{n}");
        }
        for n in [
            "cam-spool0.m4v",
            "spool1.m4v",
            "cam-init.m4v",
            "init.m4a",
            "cam-p2480.m4s",
            "cam-p2480.m4a",
            "p2480.m4s",
            "p1000-44100.m4a",
            "cam-4000.mp4",
            "cam-4000.m4v.part",
            "cam.mpd",
            "-4000.m4v",
            "cam-.m4v",
            "cam-40a0.m4v",
            "cam-4000",
            "x/4000.m4v",
            "cam-123456789012345678901.m4v",
            "",
        ] {
            assert!(!is_growing_segment_name(n), "{n}");
        }
        assert_eq!(
            part_path(Path::new("/tmp/dash/cam-4000.m4v")),
            Path::new("/tmp/dash/cam-4000.m4v.part")
        );
    }

    /// The writer's file as the response sees it, with a log of what was asked.
    #[derive(Default)]
    struct Fake {
        size: u64,
        part: bool,
        renamed: bool,
        /// Applied right after `part_is_ours` answers: the writer appends and renames then.
        rename_after_part_look: Option<u64>,
        asked: Vec<&'static str>,
    }

    impl Look for Fake {
        fn size(&mut self) -> Option<u64> {
            self.asked.push("size");
            Some(self.size)
        }
        fn part_is_ours(&mut self) -> bool {
            self.asked.push("part");
            let p = self.part;
            if let Some(extra) = self.rename_after_part_look.take() {
                self.size += extra;
                self.part = false;
                self.renamed = true;
            }
            p
        }
        fn final_is_ours(&mut self) -> bool {
            self.asked.push("final");
            self.renamed
        }
    }

    fn writing(size: u64) -> Fake {
        Fake {
            size,
            part: true,
            ..Fake::default()
        }
    }

    #[test]
    fn sends_what_is_there_then_each_growth_then_ends_after_the_rename() {
        let mut g = Growing::new(0);
        let mut f = writing(1000);
        assert_eq!(
            g.step(0, false, 60_000, &mut f),
            Step::Send {
                offset: 0,
                len: 1000
            }
        );
        assert_eq!(g.step(5, false, 60_000, &mut f), Step::Wait);
        f.size = 1500;
        assert_eq!(
            g.step(10, false, 60_000, &mut f),
            Step::Send {
                offset: 1000,
                len: 500
            }
        );
        // Appended and renamed between two looks: the rest, then the end.
        f.size = 2000;
        f.part = false;
        f.renamed = true;
        assert_eq!(
            g.step(15, false, 60_000, &mut f),
            Step::Send {
                offset: 1500,
                len: 500
            }
        );
        assert_eq!(g.step(20, false, 60_000, &mut f), Step::End);
        assert_eq!(g.sent(), 2000);
    }

    #[test]
    fn a_rename_during_a_look_is_neither_an_abandon_nor_an_early_end() {
        let mut g = Growing::new(0);
        let mut f = writing(100);
        assert!(matches!(
            g.step(0, false, 60_000, &mut f),
            Step::Send { .. }
        ));
        // The writer appends 50 bytes and renames after the `.part` was looked at (still
        // there): this look waits, the next one sends the 50 bytes, then the end.
        f.rename_after_part_look = Some(50);
        assert_eq!(g.step(5, false, 60_000, &mut f), Step::Wait);
        assert_eq!(
            g.step(10, false, 60_000, &mut f),
            Step::Send {
                offset: 100,
                len: 50
            }
        );
        assert_eq!(g.step(15, false, 60_000, &mut f), Step::End);
        // The final name is looked at only after the `.part`, and the size again after it.
        f.asked.clear();
        let mut g2 = Growing::new(0);
        let mut f2 = writing(0);
        f2.part = false;
        f2.renamed = true;
        assert_eq!(g2.step(0, false, 1, &mut f2), Step::End);
        assert_eq!(f2.asked, ["size", "part", "final", "size"]);
    }

    #[test]
    fn an_abandoned_file_aborts_even_after_everything_was_sent() {
        let mut g = Growing::new(0);
        let mut f = writing(10);
        assert!(matches!(
            g.step(0, false, 60_000, &mut f),
            Step::Send { .. }
        ));
        f.part = false;
        assert_eq!(
            g.step(5, false, 60_000, &mut f),
            Step::Abort(Why::Abandoned)
        );
    }

    #[test]
    fn a_file_that_stops_growing_aborts_after_the_stall_time() {
        let mut g = Growing::new(100);
        let mut f = writing(0);
        assert_eq!(g.step(100, false, 60_000, &mut f), Step::Wait);
        f.size = 5;
        assert!(matches!(
            g.step(2000, false, 60_000, &mut f),
            Step::Send { .. }
        ));
        assert_eq!(
            g.step(2000 + STALL_MS - 1, false, 60_000, &mut f),
            Step::Wait
        );
        assert_eq!(
            g.step(2000 + STALL_MS, false, 60_000, &mut f),
            Step::Abort(Why::Stalled)
        );
    }

    #[test]
    fn reads_are_bounded_and_nothing_is_read_while_the_client_is_behind() {
        let mut g = Growing::new(0);
        let mut f = writing(3 * READ_MAX + 7);
        assert_eq!(
            g.step(0, false, 1000, &mut f),
            Step::Send {
                offset: 0,
                len: READ_MAX
            }
        );
        assert_eq!(g.step(5, true, 1000, &mut f), Step::Wait);
        assert_eq!(g.sent(), READ_MAX);
        assert_eq!(
            g.step(10, false, 1000, &mut f),
            Step::Send {
                offset: READ_MAX,
                len: READ_MAX
            }
        );
        // Behind for the whole send timeout: given up.
        assert_eq!(g.step(20, true, 1000, &mut f), Step::Wait);
        assert_eq!(g.step(1019, true, 1000, &mut f), Step::Wait);
        assert_eq!(
            g.step(1020, true, 1000, &mut f),
            Step::Abort(Why::ClientStuck)
        );
        // A client that is behind does not count as a stalled writer.
        let mut g = Growing::new(0);
        let mut f = writing(1);
        assert!(matches!(g.step(0, false, 1000, &mut f), Step::Send { .. }));
        assert_eq!(g.step(STALL_MS, true, u64::MAX, &mut f), Step::Wait);
    }

    #[test]
    fn a_shrunk_file_aborts() {
        let mut g = Growing::new(0);
        let mut f = writing(10);
        assert!(matches!(g.step(0, false, 1000, &mut f), Step::Send { .. }));
        f.size = 4;
        assert_eq!(g.step(5, false, 1000, &mut f), Step::Abort(Why::Truncated));
    }
}
