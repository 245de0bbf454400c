//! nginx-rtmp-rs: RTMP ingest and live playback inside nginx.
//!
//! Three rings (see docs/architecture.md):
//! - pure core: [`rtmp`] (handshake, chunks, AMF, commands, session), [`media`] (FLV tags,
//!   codec headers), [`live`] (stream registry, GOP cache, player queues), [`conf`] (directives,
//!   values, merge), [`segment`] (what HLS and DASH share: timeline, cut policy, limits),
//!   [`hls`] and [`dash`] (muxers, segmenters, playlists), [`files`] (the file
//!   operations they ask for), [`server`] (one worker's sessions and outputs), [`notify`]
//!   (callbacks), [`stat`], [`control`], [`accesslog`]. No nginx types, no clock reads, no
//!   sockets, no files.
//! - safe IO: [`io`], which performs those file operations (atomic renames, no `unsafe`), and
//!   [`vod`], which finds and reads the files `play` serves (on the same thread pool).
//! - FFI glue: `nginx` (only with the `nginx` feature); the only place with `unsafe`.

// Only the FFI glue may use `unsafe`; the compiler holds every other module to it.
#![deny(unsafe_code)]
// A hostile stream must never panic a worker; tests may index freely.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod accesslog;
pub mod conf;
pub mod control;
pub mod dash;
pub mod exec;
pub mod files;
pub mod hls;
pub mod io;
pub mod live;
pub mod lowlatency;
pub mod media;
pub mod notify;
pub mod record;
pub mod relay;
pub mod rtmp;
pub mod segment;
pub mod server;
pub mod stat;
pub mod vod;

#[cfg(feature = "nginx")]
#[allow(unsafe_code)]
mod nginx;

#[cfg(test)]
mod testutil;
