//! Media payloads as RTMP carries them (FLV tag bodies), the codec data inside them, and
//! the publisher's `onMetaData` about them.

pub mod avc;
pub mod codecs;
pub mod flv;
pub mod metadata;
