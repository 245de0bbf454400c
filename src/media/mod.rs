//! Media payloads as RTMP carries them (FLV tag bodies) and the codec data inside them.

pub mod avc;
pub mod flv;
