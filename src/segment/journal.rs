//! Failure recovery, one rule for every output: each operation handed to the IO ring is
//! journalled with what it means to the output (its effect: a segment, a manifest, an init
//! segment…) until the ring reports it performed. When the ring reports a failure, the
//! operation on that path and everything asked for after it are lost (the ring drops them),
//! so the journal gives back their effects, in order, and the output undoes them in its model:
//! a lost segment is never listed, a lost manifest is written again.
//!
//! Entries the ring performed normally go. An output may keep some for longer (`keep` in
//! [`Journal::written`]): DASH keeps a segment's final rename while later operations of the
//! same segment are pending, so that a failure among those finds the file that already has
//! its final name and deletes it.

use std::path::{Path, PathBuf};

use crate::files::FileOp;

#[derive(Debug, Clone)]
struct Entry<E> {
    /// The path the operation works on.
    path: PathBuf,
    /// The second path it names (a commit's final name).
    to: Option<PathBuf>,
    effect: E,
    /// Performed, and kept for `keep` (see [`Journal::written`]).
    done: bool,
}

/// The operations of one output not yet reported performed, with their effects.
#[derive(Debug, Clone)]
pub struct Journal<E> {
    entries: Vec<Entry<E>>,
}

impl<E> Default for Journal<E> {
    fn default() -> Self {
        Journal {
            entries: Vec::new(),
        }
    }
}

/// What a failure lost, as [`Journal::failed`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lost<E> {
    /// Effects of the failed operation and of every operation after it, in order.
    pub effects: Vec<E>,
    /// The paths those operations worked on, in the same order.
    pub paths: Vec<PathBuf>,
    /// Final names (commits) that were performed before the failure and whose effect `gone`
    /// says belongs to what was lost: files on disk that nothing will list.
    pub orphans: Vec<PathBuf>,
}

impl<E: Copy> Journal<E> {
    /// Records `op`, about to be handed to the IO ring, with its effect.
    pub fn record(&mut self, op: &FileOp, effect: E) {
        let path = op.path().to_path_buf();
        let to = matches!(op, FileOp::Commit { .. }).then(|| op.final_path().to_path_buf());
        self.entries.push(Entry {
            path,
            to,
            effect,
            done: false,
        });
    }

    /// The IO ring performed the next `n` operations: their entries go, but for those
    /// `keep(effect, pending)` holds, `pending` being the effects still waiting after them.
    pub fn written(&mut self, n: usize, keep: impl Fn(&E, &[E]) -> bool) {
        let mut left = n;
        for e in self.entries.iter_mut().filter(|e| !e.done) {
            if left == 0 {
                break;
            }
            e.done = true;
            left -= 1;
        }
        let pending: Vec<E> = self
            .entries
            .iter()
            .filter(|e| !e.done)
            .map(|e| e.effect)
            .collect();
        self.entries
            .retain(|e| !e.done || keep(&e.effect, &pending));
    }

    /// The IO ring could not perform the operation on `path` (its path or final name), and
    /// dropped every one after it: those entries go, and their effects come back. `None` when
    /// no pending operation names `path` (a later report of the same failure).
    /// `orphan(kept, lost)`: whether a kept, performed entry's final name belongs to what
    /// was lost; those entries go too.
    pub fn failed(&mut self, path: &Path, orphan: impl Fn(&E, &[E]) -> bool) -> Option<Lost<E>> {
        let i = self
            .entries
            .iter()
            .position(|e| !e.done && (e.path == path || e.to.as_deref() == Some(path)))?;
        let (effects, paths): (Vec<E>, Vec<PathBuf>) =
            self.entries.drain(i..).map(|e| (e.effect, e.path)).unzip();
        let mut orphans = Vec::new();
        self.entries.retain(|e| {
            if e.done && orphan(&e.effect, &effects) {
                orphans.extend(e.to.clone());
                false
            } else {
                true
            }
        });
        Some(Lost {
            effects,
            paths,
            orphans,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Fx {
        Seg(u32, bool),
        Manifest,
    }

    fn open(p: &str) -> FileOp {
        FileOp::Open { path: p.into() }
    }
    fn commit(p: &str, to: &str) -> FileOp {
        FileOp::Commit {
            path: p.into(),
            to: to.into(),
        }
    }
    fn manifest() -> FileOp {
        FileOp::WriteAtomic {
            path: "/m".into(),
            data: Bytes::new(),
        }
    }

    #[test]
    fn a_failure_loses_its_operation_and_all_after_it_once() {
        let mut j = Journal::default();
        j.record(&open("/a.part"), Fx::Seg(1, false));
        j.record(&commit("/a.part", "/a"), Fx::Seg(1, true));
        j.record(&manifest(), Fx::Manifest);
        j.record(&open("/b.part"), Fx::Seg(2, false));
        let lost = j.failed(Path::new("/a"), |_, _| false).unwrap();
        assert_eq!(
            lost.effects,
            vec![Fx::Seg(1, true), Fx::Manifest, Fx::Seg(2, false)]
        );
        assert!(lost.orphans.is_empty());
        // The ring reports the other paths of what it dropped: already handled.
        assert_eq!(j.failed(Path::new("/b.part"), |_, _| false), None);
        j.written(1, |_, _| false);
        assert!(j.is_empty());
    }

    #[test]
    fn kept_commits_name_the_orphans_of_a_later_failure() {
        let keep = |e: &Fx, pending: &[Fx]| matches!(e, Fx::Seg(s, true) if pending.iter().any(|p| matches!(p, Fx::Seg(q, _) if q == s)));
        let mut j = Journal::default();
        j.record(&commit("/v.part", "/v"), Fx::Seg(7, true));
        j.record(&commit("/x.part", "/x"), Fx::Seg(8, true));
        j.record(&open("/a.part"), Fx::Seg(7, false));
        j.written(2, keep);
        // Segment 7's commit stays while its audio is pending; segment 8's goes.
        assert_eq!(j.failed(Path::new("/x"), |_, _| false), None);
        let lost = j
            .failed(Path::new("/a.part"), |e, lost| {
                matches!(e, Fx::Seg(s, true) if lost.iter().any(|l| matches!(l, Fx::Seg(q, _) if q == s)))
            })
            .unwrap();
        assert_eq!(lost.effects, vec![Fx::Seg(7, false)]);
        assert_eq!(lost.orphans, vec![PathBuf::from("/v")]);
        assert!(j.is_empty());
    }
}
