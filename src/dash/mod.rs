//! The CMAF segmenter, pure: the fMP4 fragmenter (H.264, HEVC, AV1, VP9; AAC, Opus, FLAC,
//! AC-3, E-AC-3), and the segmenter that turns a publisher's media into init/media segments
//! and manifests ([`crate::files::FileOp`]s): the live MPD for DASH, or HLS playlists
//! (`m3u8`) for fMP4 HLS (`hls_container`).

pub mod fmp4;
pub mod m3u8;
pub mod mpd;
pub mod segmenter;
