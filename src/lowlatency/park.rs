//! The parked requests of one worker: each waits for one file (a playlist to list a part, or a
//! hinted part to exist) until a deadline. A tick looks at each watched file once (its
//! signature: device, inode, size, mtime), reads and parses a playlist only when it changed,
//! and says which requests to wake and how. Files are always replaced by rename, so a changed
//! signature is the only sign needed, whichever process wrote the file.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use super::delta::delta_update;
use super::growing::part_path;
use super::playlist::{decide, parse_playlist, Decision};
use super::query::LlQuery;

/// At most this many requests are parked in one worker; more get 503.
pub const MAX_PARKED: usize = 100_000;

/// A parked request's handle.
pub type Id = u64;

/// What tells one version of a file from the next.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileSig {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i128,
}

/// File access for [`Parked::tick`] (the real one stats and reads; tests fake it).
pub trait Probe {
    /// The file's signature, `None` when it does not exist.
    fn sig(&mut self, path: &Path) -> Option<FileSig>;
    /// The file's text, `None` when it cannot be read.
    fn read(&mut self, path: &Path) -> Option<String>;
}

/// What a parked request waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Want {
    /// A blocking playlist reload: the playlist at the watched path to satisfy this query.
    Playlist(LlQuery),
    /// A preload-hinted part: the watched path to exist.
    File,
    /// A DASH media segment asked for a little early: the watched path or its `.part` (see
    /// [`super::growing`]) to exist. Its deadline ends the wait with [`Wake::Static`].
    Segment,
}

/// How a woken request is answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Wake {
    /// By nginx's static handler (the file is there now, or gone for good).
    Static,
    /// With this playlist text (a delta update).
    Body(String),
    /// With this error status.
    Status(u16),
    /// From the growing `.part` of the watched path ([`Want::Segment`]).
    Grow,
}

/// The request could not be parked: the worker already holds [`MAX_PARKED`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Full;

#[derive(Debug)]
struct Waiter {
    want: Want,
    deadline: u64,
    timeout_status: u16,
}

#[derive(Debug, Default)]
struct Watch {
    /// The signature seen at the last tick (`Some(None)`: the file was missing).
    seen: Option<Option<FileSig>>,
    waiters: BTreeMap<Id, Waiter>,
}

/// The parked requests of one worker, by watched file.
#[derive(Debug, Default)]
pub struct Parked {
    watches: HashMap<PathBuf, Watch>,
    by_id: HashMap<Id, PathBuf>,
    deadlines: BTreeSet<(u64, Id)>,
    next_id: Id,
}

impl Parked {
    pub fn new() -> Parked {
        Parked::default()
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Distinct files watched.
    pub fn watched(&self) -> usize {
        self.watches.len()
    }

    /// Parks a request on `path` until `deadline` (ms, the caller's clock), when it gets
    /// `timeout_status`.
    pub fn park(
        &mut self,
        path: PathBuf,
        want: Want,
        deadline: u64,
        timeout_status: u16,
    ) -> Result<Id, Full> {
        if self.by_id.len() >= MAX_PARKED {
            return Err(Full);
        }
        self.next_id += 1;
        let id = self.next_id;
        self.watches
            .entry(path.clone())
            .or_default()
            .waiters
            .insert(
                id,
                Waiter {
                    want,
                    deadline,
                    timeout_status,
                },
            );
        self.by_id.insert(id, path);
        self.deadlines.insert((deadline, id));
        Ok(id)
    }

    /// Forgets a parked request (its client went away); false if it was not parked.
    pub fn remove(&mut self, id: Id) -> bool {
        let Some(path) = self.by_id.remove(&id) else {
            return false;
        };
        if let Some(watch) = self.watches.get_mut(&path) {
            if let Some(w) = watch.waiters.remove(&id) {
                self.deadlines.remove(&(w.deadline, id));
            }
            if watch.waiters.is_empty() {
                self.watches.remove(&path);
            }
        }
        true
    }

    /// The earliest deadline of any parked request.
    pub fn next_deadline(&self) -> Option<u64> {
        self.deadlines.first().map(|(d, _)| *d)
    }

    /// Looks at every watched file once and returns the requests to wake now (already
    /// forgotten here): those their file now satisfies, then those past their deadline.
    pub fn tick(&mut self, now: u64, probe: &mut impl Probe) -> Vec<(Id, Wake)> {
        let mut woken: Vec<(Id, Wake)> = Vec::new();
        for (path, watch) in &mut self.watches {
            let sig = probe.sig(path);
            let before = woken.len();
            if watch
                .waiters
                .values()
                .any(|w| matches!(w.want, Want::Segment))
            {
                // The `.part` appearing does not change the watched path: looked at each tick.
                let wake = if sig.is_some() {
                    Some(Wake::Static)
                } else if probe.sig(&part_path(path)).is_some() {
                    Some(Wake::Grow)
                } else {
                    None
                };
                if let Some(wake) = wake {
                    for (id, w) in &watch.waiters {
                        if matches!(w.want, Want::Segment) {
                            woken.push((*id, wake.clone()));
                        }
                    }
                }
            }
            if watch.seen == Some(sig) {
                Self::forget_woken(
                    watch,
                    &mut self.deadlines,
                    woken.get(before..).unwrap_or_default(),
                );
                continue;
            }
            watch.seen = Some(sig);
            if sig.is_none() {
                // A playlist that disappeared will not be written again by this stream:
                // the static handler answers (404). A hinted part is still awaited.
                for (id, w) in &watch.waiters {
                    if matches!(w.want, Want::Playlist(_)) {
                        woken.push((*id, Wake::Static));
                    }
                }
            } else {
                let mut text = None;
                for (id, w) in &watch.waiters {
                    let q = match w.want {
                        Want::File => {
                            woken.push((*id, Wake::Static));
                            continue;
                        }
                        Want::Segment => continue,
                        Want::Playlist(q) => q,
                    };
                    if text.is_none() {
                        text = Some(probe.read(path).map(|t| {
                            let st = parse_playlist(&t);
                            (t, st)
                        }));
                    }
                    match &text {
                        // Unreadable now (replaced in between): look again next tick.
                        Some(None) | None => watch.seen = None,
                        // No longer a media playlist: served as it is.
                        Some(Some((_, None))) => woken.push((*id, Wake::Static)),
                        Some(Some((t, Some(st)))) => match decide(&q, st) {
                            Decision::Wait => {}
                            Decision::TooFarAhead => woken.push((*id, Wake::Status(400))),
                            Decision::Ready => {
                                let body = q.skip.and_then(|s| delta_update(t, st, s));
                                woken.push((*id, body.map_or(Wake::Static, Wake::Body)));
                            }
                        },
                    }
                }
            }
            Self::forget_woken(
                watch,
                &mut self.deadlines,
                woken.get(before..).unwrap_or_default(),
            );
        }
        while let Some(&(deadline, id)) = self.deadlines.first() {
            if deadline > now {
                break;
            }
            self.deadlines.remove(&(deadline, id));
            let waiter = self
                .by_id
                .get(&id)
                .and_then(|p| self.watches.get_mut(p))
                .and_then(|w| w.waiters.remove(&id));
            woken.push((
                id,
                match waiter {
                    Some(Waiter {
                        want: Want::Segment,
                        ..
                    }) => Wake::Static,
                    Some(w) => Wake::Status(w.timeout_status),
                    None => Wake::Status(503),
                },
            ));
        }
        for (id, _) in &woken {
            self.by_id.remove(id);
        }
        self.watches.retain(|_, w| !w.waiters.is_empty());
        woken
    }

    /// Removes the waiters just woken from `watch` (a request is woken once).
    fn forget_woken(watch: &mut Watch, deadlines: &mut BTreeSet<(u64, Id)>, woken: &[(Id, Wake)]) {
        for (id, _) in woken {
            if let Some(w) = watch.waiters.remove(id) {
                deadlines.remove(&(w.deadline, *id));
            }
        }
    }

    /// Every parked request, to be answered by the static handler now (the worker is exiting).
    pub fn release_all(&mut self) -> Vec<(Id, Wake)> {
        let ids: Vec<(Id, Wake)> = self.by_id.keys().map(|id| (*id, Wake::Static)).collect();
        *self = Parked {
            next_id: self.next_id,
            ..Parked::default()
        };
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lowlatency::query::Skip;

    #[derive(Default)]
    struct Fake {
        files: HashMap<PathBuf, (FileSig, String)>,
        stats: usize,
        reads: usize,
        version: u64,
    }

    impl Fake {
        fn write(&mut self, path: &str, text: &str) {
            self.version += 1;
            let sig = FileSig {
                dev: 1,
                ino: self.version,
                size: text.len() as u64,
                mtime_ns: 0,
            };
            self.files.insert(path.into(), (sig, text.to_owned()));
        }
    }

    impl Probe for Fake {
        fn sig(&mut self, path: &Path) -> Option<FileSig> {
            self.stats += 1;
            self.files.get(path).map(|(s, _)| *s)
        }
        fn read(&mut self, path: &Path) -> Option<String> {
            self.reads += 1;
            self.files.get(path).map(|(_, t)| t.clone())
        }
    }

    fn playlist(msn: u64, segments: u64, parts: u64, skip_until: Option<u32>) -> String {
        let mut s = "#EXTM3U\n#EXT-X-TARGETDURATION:1\n".to_owned();
        if let Some(u) = skip_until {
            s += &format!("#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL={u}\n");
        }
        s += &format!("#EXT-X-MEDIA-SEQUENCE:{msn}\n");
        for i in 0..segments {
            s += &format!("#EXTINF:1.000,\ns-{i}.m4v\n");
        }
        for i in 0..parts {
            s += &format!("#EXT-X-PART:DURATION=0.500,URI=\"s-p{i}.m4s\"\n");
        }
        s
    }

    fn want(msn: u64, part: Option<u64>) -> Want {
        Want::Playlist(LlQuery {
            msn: Some(msn),
            part,
            skip: None,
        })
    }

    #[test]
    fn wakes_each_request_when_its_part_is_listed_reading_once_per_change() {
        let mut fs = Fake::default();
        fs.write("/h/s-video.m3u8", &playlist(0, 2, 0, None));
        let mut p = Parked::new();
        let a = p
            .park("/h/s-video.m3u8".into(), want(2, Some(0)), 3000, 503)
            .unwrap();
        let b = p
            .park("/h/s-video.m3u8".into(), want(2, Some(1)), 3000, 503)
            .unwrap();
        let c = p
            .park("/h/s-video.m3u8".into(), want(2, None), 3000, 503)
            .unwrap();
        assert_eq!((p.len(), p.watched()), (3, 1));
        assert!(p.tick(10, &mut fs).is_empty());
        assert_eq!((fs.stats, fs.reads), (1, 1));
        // Unchanged: one stat, no read.
        assert!(p.tick(15, &mut fs).is_empty());
        assert_eq!((fs.stats, fs.reads), (2, 1));
        fs.write("/h/s-video.m3u8", &playlist(0, 2, 1, None));
        assert_eq!(p.tick(20, &mut fs), vec![(a, Wake::Static)]);
        fs.write("/h/s-video.m3u8", &playlist(0, 3, 0, None));
        let mut w = p.tick(25, &mut fs);
        w.sort_by_key(|(id, _)| *id);
        assert_eq!(w, vec![(b, Wake::Static), (c, Wake::Static)]);
        assert!(p.is_empty() && p.watched() == 0);
        assert_eq!(fs.reads, 3);
    }

    #[test]
    fn deadlines_give_the_timeout_status_and_removal_forgets() {
        let mut fs = Fake::default();
        fs.write("/h/s-video.m3u8", &playlist(0, 2, 0, None));
        let mut p = Parked::new();
        let a = p
            .park("/h/s-video.m3u8".into(), want(2, None), 3000, 503)
            .unwrap();
        let b = p.park("/h/s-p9.m4s".into(), Want::File, 2000, 404).unwrap();
        let c = p.park("/h/s-p9.m4s".into(), Want::File, 2500, 404).unwrap();
        assert_eq!(p.next_deadline(), Some(2000));
        assert!(p.tick(1999, &mut fs).is_empty());
        assert_eq!(p.tick(2000, &mut fs), vec![(b, Wake::Status(404))]);
        assert!(p.remove(c));
        assert!(!p.remove(c));
        assert_eq!(p.watched(), 1);
        assert_eq!(p.tick(3000, &mut fs), vec![(a, Wake::Status(503))]);
        assert!(p.is_empty());
    }

    #[test]
    fn a_hinted_part_wakes_when_it_exists() {
        let mut fs = Fake::default();
        let mut p = Parked::new();
        let a = p.park("/h/s-p9.m4s".into(), Want::File, 2000, 404).unwrap();
        assert!(p.tick(1, &mut fs).is_empty());
        fs.write("/h/s-p9.m4s", "data");
        assert_eq!(p.tick(2, &mut fs), vec![(a, Wake::Static)]);
    }

    #[test]
    fn a_skip_request_gets_the_delta_and_a_vanished_playlist_the_static_answer() {
        let mut fs = Fake::default();
        fs.write("/h/v.m3u8", &playlist(0, 8, 0, Some(3)));
        let mut p = Parked::new();
        let q = LlQuery {
            msn: Some(9),
            part: None,
            skip: Some(Skip::Segments),
        };
        let a = p
            .park("/h/v.m3u8".into(), Want::Playlist(q), 3000, 503)
            .unwrap();
        let b = p
            .park("/h/v.m3u8".into(), want(9, None), 3000, 503)
            .unwrap();
        assert!(p.tick(1, &mut fs).is_empty());
        fs.write("/h/v.m3u8", &playlist(0, 10, 0, Some(3)));
        let w = p.tick(2, &mut fs);
        assert_eq!(w.len(), 2);
        assert!(w.contains(&(b, Wake::Static)));
        let Some((_, Wake::Body(d))) = w.iter().find(|(id, _)| *id == a) else {
            panic!("{w:?}")
        };
        assert!(d.contains("#EXT-X-SKIP:SKIPPED-SEGMENTS=7\n"), "{d}");
        // The stream restarted from 0: segment 10 is now too far ahead.
        let b = p
            .park("/h/v.m3u8".into(), want(10, None), 3000, 503)
            .unwrap();
        fs.write("/h/v.m3u8", &playlist(0, 2, 0, Some(3)));
        assert_eq!(p.tick(3, &mut fs), vec![(b, Wake::Status(400))]);
        let c = p
            .park("/h/v.m3u8".into(), want(10, None), 3000, 503)
            .unwrap();
        fs.files.clear();
        assert_eq!(p.tick(4, &mut fs), vec![(c, Wake::Static)]);
    }

    #[test]
    fn an_early_segment_request_wakes_on_its_part_or_final_name_or_the_deadline() {
        let mut fs = Fake::default();
        let mut p = Parked::new();
        let a = p
            .park("/d/s-4000.m4v".into(), Want::Segment, 1000, 404)
            .unwrap();
        let b = p
            .park("/d/s-4000.m4v".into(), Want::Segment, 1000, 404)
            .unwrap();
        let c = p
            .park("/d/s-6000.m4v".into(), Want::Segment, 1000, 404)
            .unwrap();
        let d = p
            .park("/d/s-8000.m4v".into(), Want::Segment, 1000, 404)
            .unwrap();
        assert!(p.tick(1, &mut fs).is_empty());
        // Unchanged paths are still looked at: the `.part` is another name.
        assert!(p.tick(2, &mut fs).is_empty());
        fs.write("/d/s-4000.m4v.part", "moof");
        let mut w = p.tick(3, &mut fs);
        w.sort_by_key(|(id, _)| *id);
        assert_eq!(w, vec![(a, Wake::Grow), (b, Wake::Grow)]);
        fs.write("/d/s-6000.m4v", "whole");
        assert_eq!(p.tick(4, &mut fs), vec![(c, Wake::Static)]);
        // Never there: the static handler answers (404) at the deadline.
        assert_eq!(p.tick(1000, &mut fs), vec![(d, Wake::Static)]);
        assert!(p.is_empty() && p.watched() == 0 && p.next_deadline().is_none());
    }

    #[test]
    fn the_cap_refuses_and_release_all_empties() {
        let mut p = Parked::new();
        for i in 0..MAX_PARKED {
            p.park(format!("/h/{}", i % 7).into(), Want::File, 10, 404)
                .unwrap();
        }
        assert_eq!(p.park("/h/x".into(), Want::File, 10, 404), Err(Full));
        assert_eq!(p.release_all().len(), MAX_PARKED);
        assert!(p.is_empty() && p.watched() == 0 && p.next_deadline().is_none());
        assert!(p.park("/h/x".into(), Want::File, 10, 404).unwrap() > MAX_PARKED as u64);
    }
}
