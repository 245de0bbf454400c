//! MPEG-DASH, pure: the fMP4 (CMAF) fragmenter, the live MPD, and the DASH segmenter that
//! turns a publisher's media into init/media segments and manifests ([`crate::files::FileOp`]s).
//! The fMP4 fragments are codec-parameterised so an fMP4 flavour of HLS can list them later.

pub mod fmp4;
pub mod mpd;
pub mod segmenter;
