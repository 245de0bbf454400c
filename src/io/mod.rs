//! The safe IO ring: performs the [`FileOp`]s the segmenters ask for, in order, with atomic
//! renames, and measures how long each takes (they run on the event loop, so they must stay
//! short: segments arrive as many small appends, never as one big write).

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use crate::hls::FileOp;

/// Segments, playlists and keys: readable by the web server, writable only by the worker
/// (nginx does not set a umask, so the mode is explicit).
pub const FILE_MODE: u32 = 0o644;

/// Largest file [`Storage::read_small`] reads (a previous playlist); larger ones are ignored.
pub const MAX_SMALL_READ: u64 = 1024 * 1024;

/// One failed operation: what, where, why.
#[derive(Debug, thiserror::Error)]
#[error("cannot {action} {path}: {source}")]
pub struct IoFailure {
    pub action: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

/// What the worker needs from the file system.
pub trait Storage {
    /// Reads a small text file (a previous playlist); None if absent, unreadable or too big.
    fn read_small(&mut self, path: &Path) -> Option<String>;
    /// Performs `ops` in order, stopping at the first failure. Files left open by a failed
    /// batch are abandoned (deleted), so a half-written segment never gets a final name.
    fn apply(&mut self, ops: &[FileOp]) -> Result<(), IoFailure>;
    /// Counters and the slowest operation so far.
    fn stats(&self) -> IoStats {
        IoStats::default()
    }
}

/// No file system: for workers without HLS/DASH (and tests of the RTMP core).
#[derive(Default)]
pub struct NoStorage;

impl Storage for NoStorage {
    fn read_small(&mut self, _path: &Path) -> Option<String> {
        None
    }

    fn apply(&mut self, _ops: &[FileOp]) -> Result<(), IoFailure> {
        Ok(())
    }
}

/// Timing of the operations performed so far (for the log and the benchmarks).
#[derive(Debug, Default, Clone, Copy)]
pub struct IoStats {
    pub ops: u64,
    pub bytes: u64,
    pub slowest: Duration,
}

/// The real disk.
#[derive(Default)]
pub struct DiskStorage {
    open: HashMap<PathBuf, File>,
    stats: IoStats,
}

impl DiskStorage {
    pub fn new() -> Self {
        Self::default()
    }

    fn perform(&mut self, op: &FileOp) -> Result<u64, IoFailure> {
        match op {
            FileOp::CreateDir { path } => {
                checked(path)?;
                fs::create_dir_all(path).map_err(fail("create directory", path))?;
                Ok(0)
            }
            FileOp::Open { path } => {
                checked(path)?;
                let file = OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(FILE_MODE)
                    .open(path)
                    .map_err(fail("create", path))?;
                self.open.insert(path.clone(), file);
                Ok(0)
            }
            FileOp::Append { path, data } => {
                let file = self.open.get_mut(path).ok_or_else(|| IoFailure {
                    action: "append to",
                    path: path.clone(),
                    source: io::Error::other("file is not open"),
                })?;
                file.write_all(data).map_err(fail("write", path))?;
                Ok(data.len() as u64)
            }
            FileOp::Commit { path, to } => {
                checked(to)?;
                // Closing flushes nothing (no userspace buffer); the rename publishes the name.
                self.open.remove(path);
                // Reported under the final name: that is the segment the playlist would list.
                if let Err(e) = fs::rename(path, to) {
                    let _ = fs::remove_file(path);
                    return Err(fail("rename", to)(e));
                }
                Ok(0)
            }
            FileOp::Abort { path } => {
                self.open.remove(path);
                let _ = fs::remove_file(path);
                Ok(0)
            }
            FileOp::WriteAtomic { path, data } => {
                checked(path)?;
                write_atomic(path, data).map_err(fail("write", path))?;
                Ok(data.len() as u64)
            }
            FileOp::Delete { path } => {
                checked(path)?;
                match fs::remove_file(path) {
                    Ok(()) => Ok(0),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
                    Err(e) => Err(fail("delete", path)(e)),
                }
            }
        }
    }
}

impl Storage for DiskStorage {
    fn stats(&self) -> IoStats {
        self.stats
    }

    fn read_small(&mut self, path: &Path) -> Option<String> {
        let meta = fs::metadata(path).ok()?;
        if !meta.is_file() || meta.len() > MAX_SMALL_READ {
            return None;
        }
        fs::read_to_string(path).ok()
    }

    fn apply(&mut self, ops: &[FileOp]) -> Result<(), IoFailure> {
        for op in ops {
            let started = Instant::now();
            let result = self.perform(op);
            let took = started.elapsed();
            self.stats.ops += 1;
            self.stats.slowest = self.stats.slowest.max(took);
            match result {
                Ok(bytes) => self.stats.bytes += bytes,
                Err(e) => {
                    if let FileOp::Open { path } | FileOp::Append { path, .. } = op {
                        self.open.remove(path);
                        let _ = fs::remove_file(path);
                    }
                    return Err(e);
                }
            }
        }
        Ok(())
    }
}

/// Wraps an `io::Error` with what was being done to which path.
fn fail(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> IoFailure {
    let path = path.to_path_buf();
    move |source| IoFailure {
        action,
        path,
        source,
    }
}

/// Refuses relative paths and `..` components: every path the segmenters build is absolute
/// and made of validated names, so anything else is a bug that must not touch the disk.
fn checked(path: &Path) -> Result<(), IoFailure> {
    let bad = !path.is_absolute() || path.components().any(|c| matches!(c, Component::ParentDir));
    if bad {
        return Err(IoFailure {
            action: "use",
            path: path.to_path_buf(),
            source: io::Error::new(
                io::ErrorKind::InvalidInput,
                "path is not absolute and clean",
            ),
        });
    }
    Ok(())
}

/// Writes `data` to a temporary file beside `path`, then renames it over `path`: a reader
/// sees the old file or the new one, never a torn one.
pub fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(FILE_MODE)
            .open(&tmp)?;
        f.write_all(data)?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("rtmp-io-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn segment_gets_its_final_name_only_when_committed() {
        let dir = scratch("commit");
        let part = dir.join("a-1.ts.part");
        let done = dir.join("a-1.ts");
        let mut disk = DiskStorage::new();
        disk.apply(&[
            FileOp::Open { path: part.clone() },
            FileOp::Append {
                path: part.clone(),
                data: Bytes::from_static(b"abc"),
            },
        ])
        .unwrap();
        assert!(!done.exists());
        disk.apply(&[
            FileOp::Append {
                path: part.clone(),
                data: Bytes::from_static(b"def"),
            },
            FileOp::Commit {
                path: part.clone(),
                to: done.clone(),
            },
        ])
        .unwrap();
        assert_eq!(fs::read(&done).unwrap(), b"abcdef");
        assert!(!part.exists());
        assert_eq!(disk.stats().bytes, 6);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp_file() {
        let dir = scratch("atomic");
        let p = dir.join("x.m3u8");
        let mut disk = DiskStorage::new();
        disk.apply(&[FileOp::WriteAtomic {
            path: p.clone(),
            data: Bytes::from_static(b"1"),
        }])
        .unwrap();
        disk.apply(&[FileOp::WriteAtomic {
            path: p.clone(),
            data: Bytes::from_static(b"22"),
        }])
        .unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"22");
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
        assert_eq!(disk.read_small(&p).as_deref(), Some("22"));
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn failure_stops_the_batch_and_abandons_the_open_file() {
        let dir = scratch("fail");
        let part = dir.join("missing-dir/s.ts.part");
        let playlist = dir.join("s.m3u8");
        let mut disk = DiskStorage::new();
        let err = disk
            .apply(&[
                FileOp::Open { path: part.clone() },
                FileOp::WriteAtomic {
                    path: playlist.clone(),
                    data: Bytes::from_static(b"x"),
                },
            ])
            .unwrap_err();
        assert!(err.to_string().starts_with("cannot create "), "{err}");
        assert!(!playlist.exists(), "the batch must stop at the failure");
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn relative_and_dotdot_paths_are_refused() {
        let mut disk = DiskStorage::new();
        for p in ["rel/x.ts", "/tmp/a/../b.ts"] {
            let op = FileOp::Delete {
                path: PathBuf::from(p),
            };
            assert!(disk.apply(&[op]).is_err(), "{p}");
        }
    }

    #[test]
    fn deleting_a_missing_file_is_not_an_error() {
        let dir = scratch("delete");
        let mut disk = DiskStorage::new();
        disk.apply(&[FileOp::Delete {
            path: dir.join("gone.ts"),
        }])
        .unwrap();
        fs::remove_dir_all(dir).unwrap();
    }
}
