//! LL-HLS (and LL-DASH) on the http side (`rtmp_low_latency on;`): what nginx needs to answer blocking
//! playlist reloads (`_HLS_msn`, `_HLS_part`), delta updates (`_HLS_skip`) and requests for the
//! preload-hinted part, from the files the segmenter writes. Pure: file access comes in through
//! [`park::Probe`]; the glue in `nginx::lowlatency` parks and wakes the requests.
//!
//! - [`names`]: the naming contract between the segmenter and this handler (a part's playlist is
//!   found from the part's name).
//! - [`query`]: the `_HLS_` query arguments.
//! - [`playlist`]: what a media playlist says (last segment, parts, hint, server control).
//! - [`delta`]: the `_HLS_skip` delta update of a playlist.
//! - [`park`]: the parked requests of one worker, woken when their file changes.
//! - [`growing`]: LL-DASH, a media segment streamed from its growing `.part` file.

pub mod delta;
pub mod growing;
pub mod names;
pub mod park;
pub mod playlist;
pub mod query;

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The real [`park::Probe`]: `stat` and read (small local files; what the static handler does
/// for every request anyway).
pub struct FsProbe;

impl park::Probe for FsProbe {
    fn sig(&mut self, path: &Path) -> Option<park::FileSig> {
        let m = std::fs::metadata(path).ok()?;
        Some(park::FileSig {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
        })
    }

    fn read(&mut self, path: &Path) -> Option<String> {
        std::fs::read_to_string(path).ok()
    }
}
