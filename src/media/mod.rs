//! Media payloads as RTMP carries them (FLV tag bodies) and the codec headers inside them.

pub mod flv;
