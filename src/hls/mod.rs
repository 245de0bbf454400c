//! HLS, pure: the MPEG-TS muxer, the segmenter (playlists, keys; its cut policy and timeline
//! are [`crate::segment`]'s) and the file operations it asks for. Nothing here touches the
//! disk: [`FileOp`]s go to the IO ring, which performs them in order.

pub mod keys;
pub mod playlist;
pub mod segmenter;
pub mod ts;

pub use crate::files::{FileOp, Now};
