//! What file outputs (HLS, DASH, recording) hand to the IO ring, and the interface every
//! such output offers the worker. Pure: outputs describe file operations; the IO ring
//! ([`crate::io`]) performs them.

use std::path::{Path, PathBuf};

use bytes::Bytes;

/// One step for the IO ring. Paths are absolute and always under one of the application's
/// output directories (`hls_path`, `hls_key_path`, `dash_path`, `record_path`); the IO ring
/// re-checks that they are absolute and clean.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileOp {
    /// `mkdir -p` (for `hls_nested` and the first segment of a stream).
    CreateDir { path: PathBuf },
    /// Creates (or truncates) `path` for a segment being written; data follows with `Append`.
    Open { path: PathBuf },
    /// Appends to a file opened with `Open`.
    Append { path: PathBuf, data: Bytes },
    /// Appends the whole content of `from` (a file written with `Open`/`Append`, which stays
    /// open) to `path`: a DASH segment's video gathered while it was published. What reached
    /// the disk is copied by the kernel; appends to `from` in the same job go from memory
    /// straight to `path` and never to `from`.
    AppendFrom { path: PathBuf, from: PathBuf },
    /// Closes a file opened with `Open` and renames it to `to` (a segment becomes complete
    /// under its final name only when it is whole).
    Commit { path: PathBuf, to: PathBuf },
    /// Abandons a file opened with `Open` (deletes it).
    Abort { path: PathBuf },
    /// Writes a whole small file atomically (temp file + rename): playlists, keys.
    WriteAtomic { path: PathBuf, data: Bytes },
    /// Deletes a file (a segment that left the playlist and outlived its grace period).
    Delete { path: PathBuf },
    /// Gives the whole file `from` a second name `path` (replacing what was there): a hard
    /// link, so HLS and DASH list one set of segment bytes; a copy where the file system
    /// cannot link (another device, no hard links).
    Link { path: PathBuf, from: PathBuf },
    /// Opens a recording under its final name: created, or truncated unless `append`;
    /// `lock` holds an `fcntl` write lock on it while it is open (`record_lock`). Unlike a
    /// segment, a recording is never deleted by the IO ring: after a failure (disk full) what
    /// was written stays, playable up to its last whole tag.
    OpenRecording {
        path: PathBuf,
        append: bool,
        lock: bool,
    },
    /// Writes `data` at `offset` of an open file (a recording's index, at its start).
    WriteAt {
        path: PathBuf,
        offset: u64,
        data: Bytes,
    },
    /// Closes an open file where it is (a recording is finished).
    Close { path: PathBuf },
    /// Nothing on disk: the appends to `path` waiting before it go to the disk now instead of
    /// with the next batch, because a reader waits for them (a low-latency DASH chunk).
    Flush { path: PathBuf },
}

impl FileOp {
    /// The file the operation works on (for a commit, the file being written).
    pub fn path(&self) -> &Path {
        match self {
            FileOp::CreateDir { path }
            | FileOp::Open { path }
            | FileOp::Append { path, .. }
            | FileOp::AppendFrom { path, .. }
            | FileOp::Commit { path, .. }
            | FileOp::Abort { path }
            | FileOp::WriteAtomic { path, .. }
            | FileOp::Delete { path }
            | FileOp::Link { path, .. }
            | FileOp::OpenRecording { path, .. }
            | FileOp::WriteAt { path, .. }
            | FileOp::Close { path }
            | FileOp::Flush { path } => path,
        }
    }

    /// The name the operation leaves on disk: a commit's final name, else [`FileOp::path`].
    pub fn final_path(&self) -> &Path {
        match self {
            FileOp::Commit { to, .. } => to,
            _ => self.path(),
        }
    }
}

/// The two clocks the segmenters need, read by the glue once per event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Now {
    /// Monotonic milliseconds (nginx's `ngx_current_msec`): grace periods and deadlines.
    pub mono_ms: u64,
    /// Wall-clock Unix time in milliseconds: `#EXT-X-PROGRAM-DATE-TIME`, `system` naming.
    pub unix_ms: u64,
}

/// A file output fed by one publisher: turns media into [`FileOp`]s. One instance per
/// published stream; it outlives the publisher until its cleanup is done.
pub trait FileOutput {
    /// One audio (`video == false`) or video message: the FLV tag body (the publisher's own
    /// buffer: an output keeps slices of it, never a copy) and its 32-bit RTMP timestamp.
    fn on_media(
        &mut self,
        video: bool,
        timestamp: u32,
        tag: &Bytes,
        now: Now,
        ops: &mut Vec<FileOp>,
    );
    /// The publisher's `onMetaData` payload.
    fn on_metadata(&mut self, payload: &[u8]);
    /// The publisher left: close what is open and mark the stream as ended.
    fn finish(&mut self, now: Now, ops: &mut Vec<FileOp>);
    /// A republish of the same name in this worker: continue after a discontinuity.
    fn restart(&mut self, now: Now, random: &mut dyn FnMut(&mut [u8]));
    /// Deferred work (deletions after a grace period); returns when to call again (mono ms).
    fn on_tick(&mut self, now: Now, ops: &mut Vec<FileOp>) -> Option<u64>;
    /// Finished, and nothing left to do: the worker may drop it.
    fn is_done(&self) -> bool;
    /// The IO ring performed the next `ops` of the operations this output asked for (they
    /// are performed in order, possibly later and on another thread).
    fn on_written(&mut self, _ops: usize) {}
    /// The IO ring could not perform the next operation, on `path`, and every operation asked
    /// for after it is lost too; what was being written there must not be listed. Called once
    /// more for each other path those lost operations wrote.
    fn on_write_failed(&mut self, path: &Path);
}
