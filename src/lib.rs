//! nginx-rtmp-rs: RTMP ingest and live playback inside nginx.
//!
//! Three rings (see DESIGN.md):
//! - pure core: [`rtmp`] (handshake, chunks, AMF, commands, session), [`media`] (FLV tags,
//!   codec headers), [`live`] (stream registry, GOP cache, player queues), [`conf`] (directives,
//!   values, merge). No nginx types, no clock reads, no sockets, no files.
//! - safe IO: none yet (HLS/DASH writers come later).
//! - FFI glue: `nginx` (only with the `nginx` feature); the only place with `unsafe`.

pub mod accesslog;
pub mod conf;
pub mod control;
pub mod dash;
pub mod files;
pub mod hls;
pub mod io;
pub mod live;
pub mod media;
pub mod notify;
pub mod rtmp;
pub mod server;
pub mod stat;

#[cfg(feature = "nginx")]
mod nginx;

#[cfg(test)]
mod testutil;
