//! The RTMP protocol, pure: bytes in, bytes and events out.

pub mod amf0;
pub mod chunk;
pub mod command;
pub mod ertmp;
pub mod handshake;
pub mod session;
