//! The publisher's `onMetaData`: one parser for everything that reads it (the HLS and DASH
//! segmenters, /stat), with one set of rules and limits. Metadata is the publisher's word:
//! a value out of range is left out, never clamped or guessed.
//!
//! The payload is a data message with or without its leading `"@setDataFrame"`
//! (`["@setDataFrame",] "onMetaData", {...}`); its first object or ECMA array among the first
//! [`MAX_METADATA_VALUES`] values holds the properties.

use super::avc::MAX_FRAME_RATE;
use crate::rtmp::amf0::{Amf0Value, Decoder};

/// AMF values of a data message looked at for the properties object.
pub const MAX_METADATA_VALUES: usize = 4;

/// A codec as named by metadata: a legacy FLV codec id (7 = AVC, 10 = AAC, 2 = MP3, ...) or
/// an Enhanced RTMP FourCC ("hvc1", "av01", "Opus", ".mp3"), sent as a string or as its
/// 32-bit number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodecId {
    Legacy(u8),
    FourCc([u8; 4]),
}

/// Legacy FLV audio codec ids of MP3: MPEG-1 layer III, and its 8 kHz variant.
const LEGACY_MP3: [u8; 2] = [2, 14];

impl CodecId {
    /// A whole number below 256 is a legacy id, a larger one up to `u32::MAX` a FourCC; a
    /// string of four bytes is a FourCC. Anything else names no codec.
    fn from_value(v: &Amf0Value) -> Option<CodecId> {
        match v {
            Amf0Value::Number(n) if n.fract() == 0.0 && (0.0..256.0).contains(n) => {
                Some(CodecId::Legacy(*n as u8))
            }
            Amf0Value::Number(n)
                if n.fract() == 0.0 && (256.0..=f64::from(u32::MAX)).contains(n) =>
            {
                Some(CodecId::FourCc((*n as u32).to_be_bytes()))
            }
            Amf0Value::String(s) | Amf0Value::LongString(s) => {
                <[u8; 4]>::try_from(s.as_bytes()).ok().map(CodecId::FourCc)
            }
            _ => None,
        }
    }

    /// The legacy FLV codec id, if it is one.
    pub fn legacy(self) -> Option<u8> {
        match self {
            CodecId::Legacy(id) => Some(id),
            CodecId::FourCc(_) => None,
        }
    }

    /// Whether this audio codec is MP3 (legacy 2 or 14, or ".mp3").
    pub fn is_mp3(self) -> bool {
        match self {
            CodecId::Legacy(id) => LEGACY_MP3.contains(&id),
            CodecId::FourCc(f) => &f == b".mp3",
        }
    }
}

/// The `onMetaData` fields the server uses; each is left out when missing or out of range.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metadata {
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// `framerate`, or `fps` or `videoframerate` from other encoders; in (0,
    /// [`MAX_FRAME_RATE`]].
    pub frame_rate: Option<f64>,
    pub video_codec: Option<CodecId>,
    pub audio_codec: Option<CodecId>,
    pub sample_rate: Option<u32>,
    /// `audiochannels`, or 2/1 from ffmpeg's `stereo` flag.
    pub channels: Option<u32>,
}

/// A positive, finite number that fits `u32`.
fn positive_u32(v: Option<&Amf0Value>) -> Option<u32> {
    let n = v?.as_f64()?;
    (n.is_finite() && n >= 1.0 && n <= f64::from(u32::MAX)).then_some(n as u32)
}

/// Reads a data message's metadata (see the module docs); all fields are left out when it
/// has no properties object.
pub fn parse_metadata(payload: &[u8]) -> Metadata {
    let mut d = Decoder::new(payload);
    for _ in 0..MAX_METADATA_VALUES {
        let Ok(Some(v)) = d.next_value() else {
            break;
        };
        if v.properties().is_some() {
            return from_properties(&v);
        }
    }
    Metadata::default()
}

fn from_properties(v: &Amf0Value) -> Metadata {
    let frame_rate = ["framerate", "fps", "videoframerate"]
        .into_iter()
        .find_map(|k| v.get(k))
        .and_then(Amf0Value::as_f64)
        .filter(|f| f.is_finite() && *f > 0.0 && *f <= MAX_FRAME_RATE);
    let channels = positive_u32(v.get("audiochannels")).or_else(|| {
        v.get("stereo")
            .and_then(Amf0Value::as_bool)
            .map(|stereo| if stereo { 2 } else { 1 })
    });
    Metadata {
        width: positive_u32(v.get("width")),
        height: positive_u32(v.get("height")),
        frame_rate,
        video_codec: v.get("videocodecid").and_then(CodecId::from_value),
        audio_codec: v.get("audiocodecid").and_then(CodecId::from_value),
        sample_rate: positive_u32(v.get("audiosamplerate")),
        channels,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use amf::amf0::Value as V;

    use crate::testutil::{amf0_str as vs, amf0_wire as wire, ffmpeg_metadata};

    fn pairs(props: &[(&str, V)]) -> Vec<amf::Pair<String, V>> {
        props
            .iter()
            .map(|(k, v)| amf::Pair {
                key: (*k).to_owned(),
                value: v.clone(),
            })
            .collect()
    }

    fn vobj(props: &[(&str, V)]) -> V {
        V::Object {
            class_name: None,
            entries: pairs(props),
        }
    }

    #[test]
    fn ffmpeg_metadata_is_parsed() {
        let expected = Metadata {
            width: Some(1280),
            height: Some(720),
            frame_rate: Some(30.0),
            video_codec: Some(CodecId::Legacy(7)),
            audio_codec: Some(CodecId::Legacy(10)),
            sample_rate: Some(44100),
            channels: Some(2),
        };
        assert_eq!(parse_metadata(&ffmpeg_metadata(true)), expected);
        assert_eq!(parse_metadata(&ffmpeg_metadata(false)), expected);
    }

    #[test]
    fn enhanced_rtmp_metadata_codec_ids_are_fourcc() {
        let hvc1 = f64::from(u32::from_be_bytes(*b"hvc1"));
        let b = wire(&[
            vs("onMetaData"),
            vobj(&[
                ("videocodecid", V::Number(hvc1)),
                ("audiocodecid", vs("Opus")),
                ("audiochannels", V::Number(1.0)),
                ("fps", V::Number(25.0)),
            ]),
        ]);
        let m = parse_metadata(&b);
        assert_eq!(m.video_codec, Some(CodecId::FourCc(*b"hvc1")));
        assert_eq!(m.audio_codec, Some(CodecId::FourCc(*b"Opus")));
        assert_eq!(m.channels, Some(1));
        assert_eq!(m.frame_rate, Some(25.0));
        assert_eq!(m.width, None);
        // Nonsense ids are dropped, not guessed.
        let b = wire(&[
            vs("onMetaData"),
            vobj(&[
                ("videocodecid", V::Number(7.5)),
                ("audiocodecid", vs("toolong")),
            ]),
        ]);
        let m = parse_metadata(&b);
        assert_eq!((m.video_codec, m.audio_codec), (None, None));
    }

    #[test]
    fn metadata_without_an_object_says_nothing() {
        assert_eq!(
            parse_metadata(&wire(&[vs("onMetaData")])),
            Metadata::default()
        );
        assert_eq!(
            parse_metadata(&wire(&[vs("onMetaData"), V::Number(1.0)])),
            Metadata::default()
        );
        assert_eq!(parse_metadata(&[]), Metadata::default());
        // The object must come within the first values.
        let late = wire(&[
            vs("a"),
            vs("b"),
            vs("c"),
            vs("d"),
            vobj(&[("width", V::Number(640.0))]),
        ]);
        assert_eq!(parse_metadata(&late), Metadata::default());
    }

    #[test]
    fn out_of_range_values_are_left_out() {
        let b = wire(&[
            vs("onMetaData"),
            vobj(&[
                ("width", V::Number(0.0)),
                ("height", V::Number(f64::from(u32::MAX) + 1.0)),
                ("framerate", V::Number(MAX_FRAME_RATE + 1.0)),
                ("audiosamplerate", V::Number(f64::NAN)),
                ("audiochannels", vs("2")),
                ("stereo", V::Boolean(false)),
            ]),
        ]);
        let m = parse_metadata(&b);
        assert_eq!(
            m,
            Metadata {
                channels: Some(1),
                ..Metadata::default()
            }
        );
    }

    #[test]
    fn frame_rate_keys_in_order_of_preference() {
        let rate = |props: &[(&str, V)]| parse_metadata(&wire(&[vobj(props)])).frame_rate;
        assert_eq!(rate(&[("videoframerate", V::Number(50.0))]), Some(50.0));
        assert_eq!(
            rate(&[
                ("videoframerate", V::Number(50.0)),
                ("fps", V::Number(25.0))
            ]),
            Some(25.0)
        );
        assert_eq!(
            rate(&[("fps", V::Number(25.0)), ("framerate", V::Number(30.0))]),
            Some(30.0)
        );
    }

    #[test]
    fn mp3_is_named_by_legacy_id_or_fourcc() {
        let mp3_fourcc = f64::from(u32::from_be_bytes(*b".mp3"));
        for id in [
            V::Number(2.0),
            V::Number(14.0),
            vs(".mp3"),
            V::Number(mp3_fourcc),
        ] {
            let m = parse_metadata(&wire(&[vobj(&[("audiocodecid", id.clone())])]));
            assert!(m.audio_codec.is_some_and(CodecId::is_mp3), "{id:?}");
        }
        for id in [V::Number(10.0), vs("mp4a"), V::Number(2.5)] {
            let m = parse_metadata(&wire(&[vobj(&[("audiocodecid", id.clone())])]));
            assert!(!m.audio_codec.is_some_and(CodecId::is_mp3), "{id:?}");
        }
        assert_eq!(CodecId::Legacy(7).legacy(), Some(7));
        assert_eq!(CodecId::FourCc(*b"hvc1").legacy(), None);
    }
}
