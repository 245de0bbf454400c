//! The safe IO ring: performs the [`FileOp`]s the file outputs ask for, in order, with atomic
//! renames. A batch of one output's operations is an [`IoJob`]; [`perform`] does it wherever
//! it is called: on one of nginx's thread-pool threads in the module (so a slow disk never holds
//! up the event loop), or at once with [`DiskStorage`] (tests, nginx without threads). A job
//! owns everything it touches (paths, `Bytes`, the output's open files), so it can cross threads.

pub mod lock;

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use crate::files::FileOp;

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

/// The files one output keeps open between jobs (a TS segment is written over many), and
/// which of them are recordings (kept whatever happens).
#[derive(Debug, Default)]
pub struct OpenFiles(HashMap<PathBuf, File>, HashSet<PathBuf>);

impl OpenFiles {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Forgets `path` after a failure; a segment is deleted, a recording stays.
    fn abandon(&mut self, path: &Path) {
        self.0.remove(path);
        if !self.1.remove(path) {
            let _ = fs::remove_file(path);
        }
    }
}

/// One output's operations, to be performed in order, stopping at the first failure.
#[derive(Debug)]
pub struct IoJob {
    /// Which output asked (handed back in [`IoDone`]).
    pub output: u64,
    pub ops: Vec<FileOp>,
    pub files: OpenFiles,
}

/// What became of an [`IoJob`].
#[derive(Debug)]
pub struct IoDone {
    pub output: u64,
    pub files: OpenFiles,
    /// Operations performed, from the first.
    pub done: usize,
    /// Why the operation after those failed (then `rest` holds the ones never tried).
    pub failure: Option<IoFailure>,
    pub rest: Vec<FileOp>,
    pub stats: IoStats,
}

/// Where jobs are performed.
pub trait Storage {
    /// Reads a small text file (a previous playlist); None if absent, unreadable or too big.
    fn read_small(&mut self, path: &Path) -> Option<String>;
    /// Starts `job`. Returns what became of it when it was performed at once; `None` when the
    /// result comes back later (the module's thread pool, through `Worker::on_io_done`).
    fn submit(&mut self, job: IoJob) -> Option<IoDone>;
    /// How a recorder finds what `record_append` continues (read at once, like
    /// [`Storage::read_small`]: two small reads when a file opens).
    fn existing_recording(&self) -> crate::record::ExistingProbe {
        existing_flv
    }
    /// Starts a VOD read; like [`Storage::submit`], the answer comes back at once or later
    /// (through `Worker::on_vod_done`).
    fn submit_vod(&mut self, job: crate::vod::VodJob) -> Option<crate::vod::VodDone> {
        Some(crate::vod::perform(job))
    }
}

/// Size and last tag timestamp of an FLV file, if it exists (`record_append`): the last
/// PreviousTagSize points back at the last tag's header.
pub fn existing_flv(path: &Path) -> Option<crate::record::ExistingFile> {
    use crate::record::flv;
    use std::os::unix::fs::FileExt;
    let file = File::open(path).ok()?;
    let size = file.metadata().ok()?.len();
    let last_timestamp = (|| {
        let mut prev = [0u8; flv::TAG_TRAILER_LEN];
        file.read_exact_at(&mut prev, size.checked_sub(4)?).ok()?;
        let prev = u64::from(u32::from_be_bytes(prev));
        let at = size.checked_sub(prev + 4)?;
        if at < flv::HEADER_LEN {
            return None;
        }
        let mut header = [0u8; flv::TAG_HEADER_LEN];
        file.read_exact_at(&mut header, at).ok()?;
        let (_, len, timestamp) = flv::parse_tag_header(&header);
        (len as u64 + flv::TAG_HEADER_LEN as u64 == prev).then_some(timestamp)
    })();
    Some(crate::record::ExistingFile {
        size,
        last_timestamp,
    })
}

/// No file system: for workers without HLS/DASH (and tests of the RTMP core).
#[derive(Default)]
pub struct NoStorage;

impl Storage for NoStorage {
    fn read_small(&mut self, _path: &Path) -> Option<String> {
        None
    }

    fn existing_recording(&self) -> crate::record::ExistingProbe {
        |_| None
    }

    fn submit(&mut self, job: IoJob) -> Option<IoDone> {
        Some(IoDone {
            output: job.output,
            files: job.files,
            done: job.ops.len(),
            failure: None,
            rest: Vec::new(),
            stats: IoStats::default(),
        })
    }
}

/// Timing of the operations performed so far (for the log and the benchmarks).
#[derive(Debug, Default, Clone, Copy)]
pub struct IoStats {
    pub ops: u64,
    pub bytes: u64,
    pub slowest: Duration,
}

impl IoStats {
    pub fn add(&mut self, other: IoStats) {
        self.ops += other.ops;
        self.bytes += other.bytes;
        self.slowest = self.slowest.max(other.slowest);
    }
}

/// The real disk, here and now: every job is performed when it is submitted.
#[derive(Default)]
pub struct DiskStorage;

impl DiskStorage {
    pub fn new() -> Self {
        DiskStorage
    }
}

impl Storage for DiskStorage {
    fn read_small(&mut self, path: &Path) -> Option<String> {
        read_small(path)
    }

    fn submit(&mut self, job: IoJob) -> Option<IoDone> {
        Some(perform(job))
    }
}

/// Reads a small text file; None if absent, unreadable or larger than [`MAX_SMALL_READ`].
pub fn read_small(path: &Path) -> Option<String> {
    let meta = fs::metadata(path).ok()?;
    if !meta.is_file() || meta.len() > MAX_SMALL_READ {
        return None;
    }
    fs::read_to_string(path).ok()
}

/// Performs a job's operations in order (blocking), stopping at the first failure. A file
/// left open by a failed operation is abandoned (deleted), so a half-written segment never
/// gets a final name.
pub fn perform(job: IoJob) -> IoDone {
    let IoJob {
        output,
        ops,
        mut files,
    } = job;
    let mut stats = IoStats::default();
    let mut done = 0;
    let mut failure = None;
    let deferred = deferred_appends(&ops);
    // The deferred appends of each spool, in order, until the `AppendFrom` that takes them.
    let mut spooled: HashMap<&Path, Vec<&[u8]>> = HashMap::new();
    // Spools this job emptied (opened) and wrote nothing to since.
    let mut emptied: HashSet<&Path> = HashSet::new();
    while done < ops.len() {
        // Appends to one file in a row (a DASH segment's header and samples) go in one
        // vectored write.
        let run = appends_in_a_row(ops.get(done..).unwrap_or_default());
        let started = Instant::now();
        let result = match (run, ops.get(done)) {
            (_, Some(FileOp::Append { path, .. })) if deferred.get(done) == Some(&true) => {
                let waiting = spooled.entry(path.as_path()).or_default();
                for op in run {
                    if let FileOp::Append { data, .. } = op {
                        waiting.push(data);
                    }
                }
                Ok(0)
            }
            ([FileOp::Append { path, .. }, _, ..], _) => append_all(&mut files, path, run),
            (_, Some(FileOp::AppendFrom { path, from })) => {
                let waiting = spooled.remove(from.as_path()).unwrap_or_default();
                let on_disk = !emptied.contains(from.as_path());
                append_spool(&mut files, path, from, on_disk, &waiting)
            }
            (_, Some(op)) => perform_one(&mut files, op),
            (_, None) => break,
        };
        match ops.get(done) {
            Some(FileOp::Open { path }) => {
                emptied.insert(path);
            }
            Some(op) if deferred.get(done) != Some(&true) => {
                emptied.remove(op.path());
            }
            _ => {}
        }
        stats.ops += run.len().max(1) as u64;
        stats.slowest = stats.slowest.max(started.elapsed());
        match result {
            Ok(bytes) => {
                stats.bytes += bytes;
                done += run.len().max(1);
            }
            Err(e) => {
                if let Some(FileOp::Open { path } | FileOp::Append { path, .. }) = ops.get(done) {
                    files.abandon(path);
                }
                failure = Some(e);
                break;
            }
        }
    }
    let rest = if failure.is_some() {
        ops.into_iter().skip(done + 1).collect()
    } else {
        Vec::new()
    };
    IoDone {
        output,
        files,
        done,
        failure,
        rest,
        stats,
    }
}

/// For each of `ops`, whether it is an append to a spool whose whole content the job copies
/// further on (an `AppendFrom` later in the job, with no other operation on the spool in
/// between). Such data goes from memory straight into the copy's target at the `AppendFrom`
/// (a DASH segment's video that waited in memory until its cut): not written to the spool
/// and copied back, which cost a second write of every byte.
fn deferred_appends(ops: &[FileOp]) -> Vec<bool> {
    let mut deferred = vec![false; ops.len()];
    for (k, op) in ops.iter().enumerate() {
        let FileOp::AppendFrom { from, .. } = op else {
            continue;
        };
        for (earlier, flag) in ops.iter().zip(deferred.iter_mut()).take(k).rev() {
            match earlier {
                FileOp::Append { path, .. } if path == from => *flag = true,
                _ if touches(earlier, from) => break,
                _ => {}
            }
        }
    }
    deferred
}

/// Whether `op` reads, writes, renames or deletes `file`.
fn touches(op: &FileOp, file: &Path) -> bool {
    op.path() == file
        || match op {
            FileOp::AppendFrom { from, .. } | FileOp::Link { from, .. } => from == file,
            FileOp::Commit { to, .. } => to == file,
            _ => false,
        }
}

/// `AppendFrom`: what the spool `from` holds on disk (unless this job emptied it and wrote
/// nothing to it since), copied by the kernel, then `waiting`, the appends to the spool this
/// job kept in memory ([`deferred_appends`]).
fn append_spool(
    files: &mut OpenFiles,
    path: &Path,
    from: &Path,
    on_disk: bool,
    waiting: &[&[u8]],
) -> Result<u64, IoFailure> {
    checked(from)?;
    let file = files.0.get_mut(path).ok_or_else(|| IoFailure {
        action: "append to",
        path: path.to_path_buf(),
        source: io::Error::other("file is not open"),
    })?;
    let mut bytes = 0;
    if on_disk {
        let mut source = fs::File::open(from).map_err(fail("read", from))?;
        // std's File-to-File copy is copy_file_range: the bytes never come up here.
        bytes = io::copy(&mut source, file).map_err(fail("write", path))?;
    }
    let slices = waiting
        .iter()
        .filter(|d| !d.is_empty())
        .map(|d| io::IoSlice::new(d));
    Ok(bytes + write_vectored_all(file, path, slices.collect())?)
}

/// The longest run of appends to one file at the start of `ops` (empty if `ops` does not
/// start with one).
fn appends_in_a_row(ops: &[FileOp]) -> &[FileOp] {
    let Some(FileOp::Append { path: first, .. }) = ops.first() else {
        return &[];
    };
    let n = ops
        .iter()
        .take_while(|op| matches!(op, FileOp::Append { path, .. } if path == first))
        .count();
    ops.get(..n).unwrap_or_default()
}

/// Writes the data of `run` (appends to `path`) with as few `writev` calls as the kernel
/// allows.
fn append_all(files: &mut OpenFiles, path: &Path, run: &[FileOp]) -> Result<u64, IoFailure> {
    let file = files.0.get_mut(path).ok_or_else(|| IoFailure {
        action: "append to",
        path: path.to_path_buf(),
        source: io::Error::other("file is not open"),
    })?;
    let slices: Vec<io::IoSlice<'_>> = run
        .iter()
        .filter_map(|op| match op {
            FileOp::Append { data, .. } if !data.is_empty() => Some(io::IoSlice::new(data)),
            _ => None,
        })
        .collect();
    write_vectored_all(file, path, slices)
}

/// Writes all of `slices` to `file` with as few `writev` calls as the kernel allows.
fn write_vectored_all(
    file: &mut File,
    path: &Path,
    mut slices: Vec<io::IoSlice<'_>>,
) -> Result<u64, IoFailure> {
    let total: usize = slices.iter().map(|s| s.len()).sum();
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        match file.write_vectored(rest) {
            Ok(0) => return Err(fail("write", path)(io::ErrorKind::WriteZero.into())),
            Ok(n) => io::IoSlice::advance_slices(&mut rest, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(fail("write", path)(e)),
        }
    }
    Ok(total as u64)
}

fn perform_one(files: &mut OpenFiles, op: &FileOp) -> Result<u64, IoFailure> {
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
            files.0.insert(path.clone(), file);
            Ok(0)
        }
        FileOp::Append { path, data } => {
            let file = files.0.get_mut(path).ok_or_else(|| IoFailure {
                action: "append to",
                path: path.clone(),
                source: io::Error::other("file is not open"),
            })?;
            file.write_all(data).map_err(fail("write", path))?;
            Ok(data.len() as u64)
        }
        FileOp::AppendFrom { path, from } => append_spool(files, path, from, true, &[]),
        FileOp::Commit { path, to } => {
            checked(to)?;
            // Closing flushes nothing (no userspace buffer); the rename publishes the name.
            files.0.remove(path);
            // Reported under the final name: that is the segment the playlist would list.
            if let Err(e) = fs::rename(path, to) {
                let _ = fs::remove_file(path);
                return Err(fail("rename", to)(e));
            }
            Ok(0)
        }
        FileOp::Abort { path } => {
            files.abandon(path);
            Ok(0)
        }
        FileOp::OpenRecording { path, append, lock } => {
            checked(path)?;
            let file = OpenOptions::new()
                .write(true)
                .create(true)
                .append(*append)
                .truncate(!*append)
                .mode(FILE_MODE)
                .open(path)
                .map_err(fail("create", path))?;
            if *lock {
                lock_for_writing(&file).map_err(fail("lock", path))?;
            }
            files.0.insert(path.clone(), file);
            files.1.insert(path.clone());
            Ok(0)
        }
        FileOp::WriteAt { path, offset, data } => {
            use std::os::unix::fs::FileExt;
            let file = files.0.get(path).ok_or_else(|| not_open(path))?;
            file.write_all_at(data, *offset)
                .map_err(fail("write", path))?;
            Ok(data.len() as u64)
        }
        FileOp::Close { path } => {
            files.0.remove(path);
            files.1.remove(path);
            Ok(0)
        }
        // Only the batching in front of the ring sees it.
        FileOp::Flush { .. } => Ok(0),
        FileOp::WriteAtomic { path, data } => {
            checked(path)?;
            write_atomic(path, data).map_err(fail("write", path))?;
            Ok(data.len() as u64)
        }
        FileOp::Link { path, from } => {
            checked(path)?;
            link_or_copy(from, path).map_err(fail("link", path))
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

fn not_open(path: &Path) -> IoFailure {
    IoFailure {
        action: "write",
        path: path.to_path_buf(),
        source: io::Error::other("file is not open"),
    }
}

/// An exclusive `flock(2)` lock, held until the file is closed (`record_lock`: a tool can
/// tell a recording still being written, e.g. `flock -n file true` fails). The C module takes
/// an `fcntl` lock; `flock` needs no `unsafe` here and is what shell tools check. Refused at
/// once if another process holds one.
fn lock_for_writing(file: &File) -> io::Result<()> {
    file.try_lock().map_err(|e| match e {
        fs::TryLockError::Error(e) => e,
        fs::TryLockError::WouldBlock => io::Error::new(
            io::ErrorKind::WouldBlock,
            "another process holds a lock on it",
        ),
    })
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

/// Makes `path` name the bytes of `from`: a hard link made under a temporary name and
/// renamed over `path` (an init segment rewritten on republish replaces the old name at
/// once); a copy, the same way, where the file system cannot link. Returns bytes copied.
fn link_or_copy(from: &Path, path: &Path) -> io::Result<u64> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let _ = fs::remove_file(&tmp);
    let copied = match fs::hard_link(from, &tmp) {
        Ok(()) => 0,
        // EXDEV (another device), EPERM/ENOTSUP (no hard links): copy instead.
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            let result = fs::copy(from, &tmp);
            if result.is_err() {
                let _ = fs::remove_file(&tmp);
            }
            result?
        }
        Err(e) => return Err(e),
    };
    if let Err(e) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(copied)
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

    /// Performs `ops` with `files`, returning the files and the failure, if any.
    fn run(files: OpenFiles, ops: Vec<FileOp>) -> IoDone {
        perform(IoJob {
            output: 7,
            ops,
            files,
        })
    }

    #[test]
    fn segment_gets_its_final_name_only_when_committed() {
        let dir = scratch("commit");
        let part = dir.join("a-1.ts.part");
        let done = dir.join("a-1.ts");
        let first = run(
            OpenFiles::default(),
            vec![
                FileOp::Open { path: part.clone() },
                FileOp::Append {
                    path: part.clone(),
                    data: Bytes::from_static(b"abc"),
                },
            ],
        );
        assert!(first.failure.is_none());
        assert_eq!((first.output, first.done), (7, 2));
        assert!(!done.exists());
        assert!(
            !first.files.is_empty(),
            "the segment stays open between jobs"
        );
        let second = run(
            first.files,
            vec![
                FileOp::Append {
                    path: part.clone(),
                    data: Bytes::from_static(b"def"),
                },
                FileOp::Commit {
                    path: part.clone(),
                    to: done.clone(),
                },
            ],
        );
        assert!(second.failure.is_none());
        assert_eq!(fs::read(&done).unwrap(), b"abcdef");
        assert!(!part.exists());
        assert!(second.files.is_empty());
        assert_eq!((first.stats.bytes, second.stats.bytes), (3, 3));
        fs::remove_dir_all(dir).unwrap();
    }

    fn append(path: &Path, data: &'static [u8]) -> FileOp {
        FileOp::Append {
            path: path.to_path_buf(),
            data: Bytes::from_static(data),
        }
    }

    #[test]
    fn spool_appends_copied_in_the_same_job_go_straight_to_the_segment() {
        let dir = scratch("spool");
        let spool = dir.join("s-spool0.m4v.part");
        let part = dir.join("s-1.m4v.part");
        let done = dir.join("s-1.m4v");
        // The first job: the spool's start reaches the disk (the hold's byte bound).
        let first = run(
            OpenFiles::default(),
            vec![
                FileOp::Open {
                    path: spool.clone(),
                },
                append(&spool, b"ab"),
            ],
        );
        assert!(first.failure.is_none());
        assert_eq!(fs::read(&spool).unwrap(), b"ab");
        // The cut: the rest of the spool waited in memory and joins it in the segment.
        let cut = vec![
            append(&spool, b"cd"),
            append(&spool, b"e"),
            FileOp::Open { path: part.clone() },
            append(&part, b"HEAD"),
            FileOp::AppendFrom {
                path: part.clone(),
                from: spool.clone(),
            },
            FileOp::Open {
                path: spool.clone(),
            },
            append(&spool, b"next"),
            FileOp::Commit {
                path: part.clone(),
                to: done.clone(),
            },
        ];
        let n = cut.len();
        let second = run(first.files, cut);
        assert!(second.failure.is_none());
        assert_eq!(second.done, n);
        assert_eq!(fs::read(&done).unwrap(), b"HEADabcde");
        // What follows the copy is not taken by it: it stays in the spool.
        assert_eq!(fs::read(&spool).unwrap(), b"next");
        assert_eq!(second.stats.bytes, 4 + 5 + 4);

        // A whole segment in one job: the spool is emptied and never written.
        let third = run(
            second.files,
            vec![
                FileOp::Open {
                    path: spool.clone(),
                },
                append(&spool, b"xyz"),
                FileOp::Open { path: part.clone() },
                append(&part, b"H"),
                FileOp::AppendFrom {
                    path: part.clone(),
                    from: spool.clone(),
                },
                FileOp::Commit {
                    path: part.clone(),
                    to: done.clone(),
                },
            ],
        );
        assert!(third.failure.is_none());
        assert_eq!(fs::read(&done).unwrap(), b"Hxyz");
        assert_eq!(fs::read(&spool).unwrap(), b"", "the spool was not written");
        assert_eq!(third.stats.bytes, 4);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn link_gives_a_second_name_to_the_same_bytes_and_replaces_an_old_one() {
        use std::os::unix::fs::MetadataExt;
        let dir = scratch("link");
        let (dash, hls) = (dir.join("dash"), dir.join("hls"));
        fs::create_dir_all(&dash).unwrap();
        fs::create_dir_all(&hls).unwrap();
        let from = dash.join("a-0.m4v");
        let to = hls.join("a-0.m4s");
        fs::write(&from, b"segment").unwrap();
        fs::write(&to, b"stale init of a previous publish").unwrap();
        let done = run(
            OpenFiles::default(),
            vec![FileOp::Link {
                path: to.clone(),
                from: from.clone(),
            }],
        );
        assert!(done.failure.is_none(), "{:?}", done.failure);
        assert_eq!(fs::read(&to).unwrap(), b"segment");
        let (a, b) = (fs::metadata(&from).unwrap(), fs::metadata(&to).unwrap());
        assert_eq!((a.ino(), a.nlink()), (b.ino(), 2), "one set of bytes");
        // Deleting one name leaves the other whole; a missing source is a clear failure.
        fs::remove_file(&from).unwrap();
        assert_eq!(fs::read(&to).unwrap(), b"segment");
        let lost = run(
            OpenFiles::default(),
            vec![FileOp::Link {
                path: hls.join("b.m4s"),
                from: dash.join("missing.m4v"),
            }],
        );
        assert!(lost.failure.is_some());
        assert_eq!(
            fs::read_dir(&hls).unwrap().count(),
            1,
            "no temporary file left"
        );
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp_file() {
        let dir = scratch("atomic");
        let p = dir.join("x.m3u8");
        let mut disk = DiskStorage::new();
        for data in [&b"1"[..], b"22"] {
            let done = disk
                .submit(IoJob {
                    output: 1,
                    ops: vec![FileOp::WriteAtomic {
                        path: p.clone(),
                        data: Bytes::copy_from_slice(data),
                    }],
                    files: OpenFiles::default(),
                })
                .expect("the disk storage performs jobs at once");
            assert!(done.failure.is_none());
        }
        assert_eq!(fs::read(&p).unwrap(), b"22");
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
        assert_eq!(disk.read_small(&p).as_deref(), Some("22"));
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn failure_stops_the_job_and_hands_back_what_was_not_tried() {
        let dir = scratch("fail");
        let part = dir.join("missing-dir/s.ts.part");
        let playlist = dir.join("s.m3u8");
        let done = run(
            OpenFiles::default(),
            vec![
                FileOp::CreateDir { path: dir.clone() },
                FileOp::Open { path: part.clone() },
                FileOp::WriteAtomic {
                    path: playlist.clone(),
                    data: Bytes::from_static(b"x"),
                },
            ],
        );
        let err = done.failure.expect("open in a missing directory fails");
        assert!(err.to_string().starts_with("cannot create "), "{err}");
        assert_eq!(err.path, part);
        assert_eq!(done.done, 1);
        assert!(matches!(&done.rest[..], [FileOp::WriteAtomic { .. }]));
        assert!(!playlist.exists(), "the job must stop at the failure");
        assert!(done.files.is_empty());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn appends_in_a_row_are_written_together_in_order() {
        let dir = scratch("vectored");
        let part = dir.join("s-0.m4v.part");
        let done = dir.join("s-0.m4v");
        let mut ops = vec![FileOp::Open { path: part.clone() }];
        let mut want = Vec::new();
        for i in 0..300u32 {
            let data = Bytes::from(vec![(i % 251) as u8; (i as usize * 37) % 900]);
            want.extend_from_slice(&data);
            ops.push(FileOp::Append {
                path: part.clone(),
                data,
            });
        }
        ops.push(FileOp::Commit {
            path: part.clone(),
            to: done.clone(),
        });
        let n = ops.len();
        let result = run(OpenFiles::default(), ops);
        assert!(result.failure.is_none());
        assert_eq!(result.done, n);
        assert_eq!(result.stats.ops, n as u64);
        assert_eq!(result.stats.bytes, want.len() as u64);
        assert_eq!(fs::read(&done).unwrap(), want);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn appends_to_a_file_that_is_not_open_fail_at_the_first() {
        let dir = scratch("not-open");
        let part = dir.join("x.part");
        let ops: Vec<FileOp> = (0..3)
            .map(|_| FileOp::Append {
                path: part.clone(),
                data: Bytes::from_static(b"abc"),
            })
            .collect();
        let result = run(OpenFiles::default(), ops);
        assert_eq!(result.done, 0);
        assert_eq!(result.rest.len(), 2);
        assert!(result.failure.is_some());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn relative_and_dotdot_paths_are_refused() {
        for p in ["rel/x.ts", "/tmp/a/../b.ts"] {
            let op = FileOp::Delete {
                path: PathBuf::from(p),
            };
            assert!(run(OpenFiles::default(), vec![op]).failure.is_some(), "{p}");
        }
    }

    #[test]
    fn deleting_a_missing_file_is_not_an_error() {
        let dir = scratch("delete");
        let done = run(
            OpenFiles::default(),
            vec![FileOp::Delete {
                path: dir.join("gone.ts"),
            }],
        );
        assert!(done.failure.is_none());
        fs::remove_dir_all(dir).unwrap();
    }
}
