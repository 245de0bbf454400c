//! The segment core both file outputs share: HLS (MPEG-TS today, fMP4 next) and DASH are
//! thin layers over it, a container (TS muxer, fMP4 fragmenter) and a manifest (m3u8, MPD)
//! each. Pure like them: it decides, the segmenters turn its decisions into
//! [`crate::files::FileOp`]s.
//!
//! - [`timeline`]: 32-bit RTMP timestamps onto one continuous 64-bit timeline;
//! - [`cut`]: when a segment is cut (keyframe after the fragment length, forced at the max);
//! - [`retention`]: how long a file that left the manifest stays, the deletions waiting, the
//!   final cleanup of an ended stream;
//! - [`names`]: which stream names can name files;
//! - [`parts`]: how a segment is split into LL-HLS parts and low-latency DASH chunks;
//! - the named limits below, one value and one type each, for every format.

pub mod cut;
pub mod datetime;
pub mod journal;
pub mod names;
pub mod parts;
pub mod retention;
#[cfg(test)]
pub(crate) mod testkit;
pub mod timeline;

/// Segment bytes are handed to the IO ring in appends of about this size (and at the cut).
/// Small, because every stream keeps one such buffer filling (32 streams: 0.5 MB at 16 KiB,
/// 2 MB at 64 KiB); the thread pool takes about 20 appends a second at 2.5 Mbit/s.
pub const APPEND_CHUNK_BYTES: usize = 16 * 1024;
/// Suffix of a segment being written; renamed away at the cut, when the file is whole.
pub const PART_SUFFIX: &str = ".part";
/// Composition offsets (ms) beyond this are a lying tag and are clamped: to `0..=this` in
/// MPEG-TS (a PTS never precedes its DTS there), to `-this..=this` in fMP4 (signed `trun`
/// offsets). The type is that of the tag's field, `flv::VideoTag::composition_time_ms`.
pub const MAX_CTS_MS: i32 = 10_000;
/// Frame step assumed for video before two frames were seen (ms).
pub const DEFAULT_VIDEO_STEP_MS: u64 = 40;
/// Largest audio frame accepted (MP3 frames are < 3 KiB; ADTS caps AAC at 8 KiB).
pub const MAX_AUDIO_FRAME: usize = 64 * 1024;
/// Samples per AAC frame of the core decoder (the frame step of AAC timing).
pub const AAC_FRAME_SAMPLES: u64 = 1024;
