//! Retention and cleanup: how long a file that left the manifest stays on disk, the files
//! waiting for deletion, and the final cleanup of an ended stream.
//!
//! - A segment that left the manifest is deleted after a grace ([`grace_ms`]): a player that
//!   loaded the manifest just before may still fetch it.
//! - An ended stream's manifest stays [`final_wait_ms`], then goes *before* its files, so a
//!   player never finds a manifest whose files are gone ([`Retention::final_deletes`]).
//!
//! - A manifest write that was lost leaves the one on disk listing files the stream already
//!   dropped: deletions wait ([`Retention::manifest_lost`]) until a manifest is written again,
//!   then get a fresh grace ([`Retention::manifest_written`]).
//!
//! The segmenters decide what is still in use (a listed segment, a key, an init segment): a
//! due deletion of such a file is dropped by them, not here.

use std::collections::HashSet;
use std::path::PathBuf;

/// After a stream ends, its manifest and files stay this many times the base of
/// [`final_wait_ms`].
pub const FINAL_CLEANUP_FACTOR: u64 = 2;

/// What the grace of a file that left the manifest is measured from. The two formats
/// measure differently, so each says what it has (the formula is one: [`grace_ms`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Grace {
    /// The configured window (`hls_playlist_length`, `dash_playlist_length`).
    pub window_ms: u64,
    /// The longest segment as the manifest announces it; three of them are kept. HLS: the
    /// target duration (whole seconds, rounded up), what players pace their reloads by;
    /// DASH: the longest listed segment.
    pub longest_ms: u64,
    /// What the manifest lists now. HLS: the sum of its `EXTINF`s (RFC 8216 §6.2.2: a removed
    /// segment stays available for the longest playlist that contained it; an HLS window may
    /// run longer than `hls_playlist_length`, at least three target durations). DASH: 0 (its
    /// window is `dash_playlist_length` by time, `timeShiftBufferDepth`).
    pub listed_ms: u64,
    /// How much older than ours the manifest a player uses may be, on top. DASH: its
    /// `minimumUpdatePeriod` (`dash_fragment`); HLS: 0 (players reload at the target
    /// duration, within the three of `longest_ms`).
    pub refresh_ms: u64,
}

/// How long a file that left the manifest stays on disk: max(window, 3 × longest, listed) +
/// refresh.
pub fn grace_ms(g: Grace) -> u64 {
    g.window_ms
        .max(g.longest_ms.saturating_mul(3))
        .max(g.listed_ms)
        .saturating_add(g.refresh_ms)
}

/// How long an ended stream's manifest stays: [`FINAL_CLEANUP_FACTOR`] × `base_ms`, never
/// less than one grace. HLS's base is `hls_playlist_length` (the C module's rule), DASH's is
/// its grace.
pub fn final_wait_ms(base_ms: u64, grace_ms: u64) -> u64 {
    base_ms.saturating_mul(FINAL_CLEANUP_FACTOR).max(grace_ms)
}

/// A file to delete once `due_ms` (monotonic) passed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingDelete {
    pub due_ms: u64,
    pub path: PathBuf,
}

/// A stream's files waiting for deletion, and when its final cleanup runs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Retention {
    pending: Vec<PendingDelete>,
    final_at: Option<u64>,
    /// The manifest on disk may list what was dropped: no deletion until one is written.
    held: bool,
}

impl Retention {
    pub fn new() -> Self {
        Retention::default()
    }

    /// Deletes `path` once `due_ms` passed.
    pub fn schedule(&mut self, due_ms: u64, path: PathBuf) {
        self.pending.push(PendingDelete { due_ms, path });
    }

    /// [`Retention::schedule`] for each of `paths`.
    pub fn schedule_all(&mut self, due_ms: u64, paths: impl IntoIterator<Item = PathBuf>) {
        self.pending
            .extend(paths.into_iter().map(|path| PendingDelete { due_ms, path }));
    }

    /// No pending deletion happens before `due_ms` (a fresh grace: the manifest on disk
    /// listed the files until now).
    pub fn postpone_until(&mut self, due_ms: u64) {
        for d in &mut self.pending {
            d.due_ms = d.due_ms.max(due_ms);
        }
    }

    /// A manifest write was lost (disk full): the manifest on disk may still list any file
    /// waiting here, so none is deleted until [`Retention::manifest_written`].
    pub fn manifest_lost(&mut self) {
        self.held = true;
    }

    /// A manifest was written (queued behind nothing lost): after a lost one, every pending
    /// deletion waits until `grace_due_ms`, a fresh grace from now.
    pub fn manifest_written(&mut self, grace_due_ms: u64) {
        if std::mem::take(&mut self.held) {
            self.postpone_until(grace_due_ms);
        }
    }

    /// When the next pending deletion is due.
    pub fn next_delete(&self) -> Option<u64> {
        self.pending.iter().map(|d| d.due_ms).min()
    }

    /// The pending deletions due at `now_ms`, in the order they were scheduled; they are no
    /// longer pending. None while held ([`Retention::manifest_lost`]).
    pub fn take_due(&mut self, now_ms: u64) -> Vec<PathBuf> {
        let mut due = Vec::new();
        if self.held {
            return due;
        }
        self.pending.retain(|d| {
            if d.due_ms <= now_ms {
                due.push(d.path.clone());
                false
            } else {
                true
            }
        });
        due
    }

    /// The final cleanup runs at `at_ms` (monotonic), or never (`None`: a republish).
    pub fn set_final(&mut self, at_ms: Option<u64>) {
        self.final_at = at_ms;
    }

    /// Whether the final cleanup is due at `now_ms`; true once, then it is no longer set.
    pub fn take_final(&mut self, now_ms: u64) -> bool {
        let due = self.final_at.is_some_and(|at| at <= now_ms);
        if due {
            self.final_at = None;
        }
        due
    }

    /// The next deadline: the next pending deletion (unless held) or the final cleanup,
    /// whichever comes first.
    pub fn next_deadline(&self) -> Option<u64> {
        let deletes = if self.held { None } else { self.next_delete() };
        [deletes, self.final_at].into_iter().flatten().min()
    }

    /// Nothing pending and no final cleanup to come.
    pub fn is_idle(&self) -> bool {
        self.pending.is_empty() && self.final_at.is_none()
    }

    /// The deletions of the final cleanup, in order: the `manifest` first, then `files` (what
    /// it listed), then every pending deletion, then `last` (HLS: the keys, after all
    /// segments encrypted with them). Each path once, a path of `last` only there. Nothing is
    /// pending afterwards.
    pub fn final_deletes(
        &mut self,
        manifest: PathBuf,
        files: impl IntoIterator<Item = PathBuf>,
        last: Vec<PathBuf>,
    ) -> Vec<PathBuf> {
        let mut seen: HashSet<PathBuf> = last.iter().cloned().collect();
        seen.insert(manifest.clone());
        let mut out = vec![manifest];
        let pending = std::mem::take(&mut self.pending)
            .into_iter()
            .map(|d| d.path);
        for path in files.into_iter().chain(pending) {
            if seen.insert(path.clone()) {
                out.push(path);
            }
        }
        let mut tail = HashSet::new();
        out.extend(last.into_iter().filter(|p| tail.insert(p.clone())));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> PathBuf {
        PathBuf::from(s)
    }

    #[test]
    fn grace_is_the_longest_of_window_three_segments_and_listed_plus_refresh() {
        let hls = Grace {
            window_ms: 10_000,
            longest_ms: 4000,
            listed_ms: 13_000,
            refresh_ms: 0,
        };
        assert_eq!(grace_ms(hls), 13_000);
        assert_eq!(
            grace_ms(Grace {
                listed_ms: 0,
                ..hls
            }),
            12_000
        );
        let dash = Grace {
            window_ms: 10_000,
            longest_ms: 2000,
            listed_ms: 0,
            refresh_ms: 2000,
        };
        assert_eq!(grace_ms(dash), 12_000);
        assert_eq!(
            grace_ms(Grace {
                window_ms: u64::MAX,
                refresh_ms: 1,
                ..dash
            }),
            u64::MAX
        );
    }

    #[test]
    fn final_wait_is_the_factor_times_its_base_never_below_a_grace() {
        assert_eq!(final_wait_ms(10_000, 12_000), 20_000);
        assert_eq!(final_wait_ms(1000, 12_000), 12_000);
        assert_eq!(final_wait_ms(12_000, 12_000), 24_000);
    }

    #[test]
    fn due_deletions_come_out_in_order_and_once() {
        let mut r = Retention::new();
        assert!(r.is_idle());
        r.schedule(300, p("c"));
        r.schedule_all(100, [p("a"), p("b")]);
        assert_eq!(r.next_delete(), Some(100));
        assert_eq!(r.take_due(99), Vec::<PathBuf>::new());
        assert_eq!(r.take_due(300), vec![p("c"), p("a"), p("b")]);
        assert_eq!(r.take_due(300), Vec::<PathBuf>::new());
        assert!(r.is_idle());
    }

    #[test]
    fn postponing_holds_earlier_deletions_only() {
        let mut r = Retention::new();
        r.schedule(100, p("a"));
        r.schedule(500, p("b"));
        r.postpone_until(200);
        assert_eq!(r.take_due(199), Vec::<PathBuf>::new());
        assert_eq!(r.take_due(200), vec![p("a")]);
        assert_eq!(r.next_delete(), Some(500));
    }

    #[test]
    fn the_final_cleanup_is_due_once_and_a_lost_manifest_holds_deletions() {
        let mut r = Retention::new();
        r.schedule(100, p("a"));
        r.set_final(Some(50));
        assert_eq!(r.next_deadline(), Some(50));
        r.manifest_lost();
        assert_eq!(r.next_deadline(), Some(50));
        assert!(!r.take_final(49));
        assert!(r.take_final(50));
        assert!(!r.take_final(50));
        assert_eq!(r.next_deadline(), None);
        assert_eq!(r.take_due(1000), Vec::<PathBuf>::new());
        // Written again at 400 with a grace of 300: "a" waits until 700.
        r.manifest_written(700);
        assert_eq!(r.next_deadline(), Some(700));
        assert_eq!(r.take_due(699), Vec::<PathBuf>::new());
        r.manifest_written(900);
        assert_eq!(
            r.next_deadline(),
            Some(700),
            "only a write after a loss postpones"
        );
        r.set_final(Some(70));
        r.set_final(None);
        assert!(!r.is_idle());
        r.take_due(700);
        assert!(r.is_idle());
    }

    #[test]
    fn final_deletes_put_the_manifest_first_and_last_last_each_once() {
        let mut r = Retention::new();
        r.schedule(900, p("old.ts"));
        r.schedule(900, p("k1.key"));
        r.schedule(900, p("s1.ts"));
        let out = r.final_deletes(
            p("index.m3u8"),
            [p("s1.ts"), p("s2.ts"), p("init.m4v"), p("init.m4v")],
            vec![p("k1.key"), p("k2.key"), p("k1.key")],
        );
        assert_eq!(
            out,
            [
                "index.m3u8",
                "s1.ts",
                "s2.ts",
                "init.m4v",
                "old.ts",
                "k1.key",
                "k2.key"
            ]
            .map(p)
        );
        assert!(r.is_idle());
    }
}
