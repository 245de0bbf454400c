//! HLS, pure: the MPEG-TS muxer, the segmenter (cut policy, timeline, playlists, keys) and the
//! file operations it asks for. Nothing here touches the disk: [`FileOp`]s go to the IO ring,
//! which performs them in order.

pub mod keys;
pub mod playlist;
pub mod segmenter;
pub mod timeline;
pub mod ts;

use std::path::PathBuf;

use bytes::Bytes;

/// One step for the IO ring. Paths are absolute and always under the application's
/// `hls_path` / `hls_key_path` (the IO ring re-checks this).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileOp {
    /// `mkdir -p` (for `hls_nested` and the first segment of a stream).
    CreateDir { path: PathBuf },
    /// Creates (or truncates) `path` for a segment being written; data follows with `Append`.
    Open { path: PathBuf },
    /// Appends to a file opened with `Open`.
    Append { path: PathBuf, data: Bytes },
    /// Closes a file opened with `Open` and renames it to `to` (a segment becomes complete
    /// under its final name only when it is whole).
    Commit { path: PathBuf, to: PathBuf },
    /// Abandons a file opened with `Open` (deletes it).
    Abort { path: PathBuf },
    /// Writes a whole small file atomically (temp file + rename): playlists, keys.
    WriteAtomic { path: PathBuf, data: Bytes },
    /// Deletes a file (a segment that left the playlist and outlived its grace period).
    Delete { path: PathBuf },
}

/// The two clocks the segmenter needs, read by the glue once per event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Now {
    /// Monotonic milliseconds (nginx's `ngx_current_msec`): grace periods and deadlines.
    pub mono_ms: u64,
    /// Wall-clock Unix time in milliseconds: `#EXT-X-PROGRAM-DATE-TIME`, `system` naming.
    pub unix_ms: u64,
}
