//! Live fan-out: one publisher per stream name, any number of players sharing one copy of
//! every payload.
//!
//! - [`frame`]: a message chunk-encoded once ([`Frame`]), shared by reference count.
//! - [`gop`]: the per-stream start cache (metadata, codec headers, frames since the keyframe).
//! - [`queue`]: one player's bounded output queue with vectored-write helpers.
//! - [`hub`]: the registry of publishers and this worker's players ([`Hub`]).
//! - [`httpflv`]: HTTP-FLV requests and the bytes around their FLV tags.

pub mod frame;
pub mod gop;
pub mod httpflv;
pub mod hub;
pub mod queue;

pub use frame::{ClientId, Delivery, Frame, FrameKind};
pub use gop::GopCache;
pub use hub::{
    Hub, LiveError, PlayJoin, PlayerNotice, PlayerOptions, PlayerStats, Registry, StreamKey,
    StreamStats,
};
pub use queue::PlayerQueue;
