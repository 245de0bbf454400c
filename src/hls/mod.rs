//! HLS, pure: the MPEG-TS muxer, the segmenter (cut policy, timeline, playlists, keys) and the
//! file operations it asks for. Nothing here touches the disk: [`FileOp`]s go to the IO ring,
//! which performs them in order.

pub mod keys;
pub mod playlist;
pub mod segmenter;
pub mod timeline;
pub mod ts;

pub use crate::files::{FileOp, Now};
