//! Enhanced RTMP (E-RTMP v2) capability negotiation: what a client announced in `connect`
//! (`fourCcList`, `videoFourCcInfoMap` / `audioFourCcInfoMap`, `capsEx`), what we answer, and
//! whether a live message may go to a player given what it announced.
//!
//! What a client announced is kept in a fixed-size [`Caps`] (a bitmask over the codecs we
//! forward), so a hostile `connect` cannot make us keep more than a few bytes, and what a
//! message needs is a small [`Wire`] computed once when the publisher's message comes in:
//! deciding for a player is then a few bit tests, never a parse.

use super::amf0::{self, Amf0Value};
use crate::media::flv::{self, AudioCodec, AudioPacket, FourCc, VideoCodec, VideoPacket};

/// At most this many `fourCcList` entries (and info map properties) are looked at.
pub const MAX_FOURCC_ENTRIES: usize = 64;
/// Longer `fourCcList` strings and info map keys are ignored (a FourCC, or "*").
pub const MAX_FOURCC_LEN: usize = 4;

/// `capsEx` bits (E-RTMP v2 `CapsExMask`).
pub const CAPS_EX_RECONNECT: u32 = 0x01;
pub const CAPS_EX_MULTITRACK: u32 = 0x02;
pub const CAPS_EX_MODEX: u32 = 0x04;
pub const CAPS_EX_TIMESTAMP_NANO_OFFSET: u32 = 0x08;

/// Info map flags (E-RTMP v2 `FourCcInfoMask`).
pub const FOURCC_CAN_DECODE: u32 = 0x01;
pub const FOURCC_CAN_ENCODE: u32 = 0x02;
pub const FOURCC_CAN_FORWARD: u32 = 0x04;

/// What we announce in `capsEx`: the fan-out forwards multitrack, ModEx and nanosecond
/// timestamp offsets unchanged (no reconnect request: we never send one).
pub const SERVER_CAPS_EX: u32 = CAPS_EX_MULTITRACK | CAPS_EX_MODEX | CAPS_EX_TIMESTAMP_NANO_OFFSET;

/// The wildcard FourCC: any codec.
const WILDCARD: &str = "*";

/// The codecs we take from publishers and forward, in the order of our `fourCcList`; a
/// client's announced set is a bitmask over this table (true: video).
const KNOWN: [(FourCc, bool); 11] = [
    (FourCc::AVC1, true),
    (FourCc::HVC1, true),
    (FourCc::AV01, true),
    (FourCc::VP09, true),
    (FourCc::VP08, true),
    (FourCc::MP4A, false),
    (FourCc::MP3, false),
    (FourCc::OPUS, false),
    (FourCc::FLAC, false),
    (FourCc::AC3, false),
    (FourCc::EAC3, false),
];

/// The bit of `fourcc` in [`KNOWN`] (0 for a codec we do not know).
fn known_bit(fourcc: FourCc) -> u16 {
    KNOWN
        .iter()
        .position(|(f, _)| *f == fourcc)
        .map_or(0, |i| 1u16 << i)
}

/// The bit of a FourCC given as text, when it names a known codec of the right kind
/// (`video`: Some(true) video only, Some(false) audio only, None either).
fn known_bit_str(s: &str, video: Option<bool>) -> u16 {
    let Ok(code) = <[u8; 4]>::try_from(s.as_bytes()) else {
        return 0;
    };
    KNOWN
        .iter()
        .position(|(f, v)| f.0 == code && video.is_none_or(|want| want == *v))
        .map_or(0, |i| 1u16 << i)
}

/// A number property as capability flags (anything else, or out of range, is no flag).
fn flags(v: &Amf0Value) -> u32 {
    match v.as_f64() {
        Some(n) if n.is_finite() && (0.0..=f64::from(u32::MAX)).contains(&n) => n as u32,
        _ => 0,
    }
}

/// What a client announced about Enhanced RTMP in `connect`. The default is a legacy client.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Caps {
    /// It sent `fourCcList`, an info map or `capsEx`.
    pub announced: bool,
    /// Codecs it takes, one bit per [`KNOWN`] entry.
    codecs: u16,
    /// "*": any video (audio) codec, known to us or not.
    any_video: bool,
    any_audio: bool,
    pub caps_ex: u32,
}

impl Caps {
    /// A legacy client: legacy FLV tags only.
    pub const LEGACY: Caps = Caps {
        announced: false,
        codecs: 0,
        any_video: false,
        any_audio: false,
        caps_ex: 0,
    };

    /// Takes everything unchanged (our own relays: the other end is a server).
    pub const FORWARD_ALL: Caps = Caps {
        announced: true,
        codecs: u16::MAX,
        any_video: true,
        any_audio: true,
        caps_ex: u32::MAX,
    };

    /// Reads the E-RTMP properties of a `connect` command object. Bounded: at most
    /// [`MAX_FOURCC_ENTRIES`] entries per property are looked at, longer strings ignored.
    pub fn from_connect(obj: &Amf0Value) -> Caps {
        let mut caps = Caps::LEGACY;
        if let Some(Amf0Value::StrictArray(items)) = obj.get("fourCcList") {
            caps.announced = true;
            for s in items
                .iter()
                .take(MAX_FOURCC_ENTRIES)
                .filter_map(Amf0Value::as_str)
            {
                if s == WILDCARD {
                    caps.any_video = true;
                    caps.any_audio = true;
                } else if s.len() <= MAX_FOURCC_LEN {
                    caps.codecs |= known_bit_str(s, None);
                }
            }
        }
        for (key, video) in [("videoFourCcInfoMap", true), ("audioFourCcInfoMap", false)] {
            let Some(props) = obj.get(key).and_then(Amf0Value::properties) else {
                continue;
            };
            caps.announced = true;
            let takes = |v: &Amf0Value| flags(v) & (FOURCC_CAN_DECODE | FOURCC_CAN_FORWARD) != 0;
            let props = props.get(..MAX_FOURCC_ENTRIES).unwrap_or(props);
            // The spec: a "*" key overrides the flags of specific codecs.
            if let Some((_, v)) = props.iter().find(|(k, _)| k == WILDCARD) {
                if takes(v) {
                    if video {
                        caps.any_video = true;
                    } else {
                        caps.any_audio = true;
                    }
                }
                continue;
            }
            for (k, v) in props {
                if k.len() <= MAX_FOURCC_LEN && takes(v) {
                    caps.codecs |= known_bit_str(k, Some(video));
                }
            }
        }
        if let Some(v) = obj.get("capsEx") {
            caps.announced = true;
            caps.caps_ex = flags(v);
        }
        caps
    }

    /// Whether a message of this wire format may go to this client.
    pub fn takes(&self, wire: &Wire) -> bool {
        match wire {
            Wire::Legacy => true,
            Wire::Enhanced(t) => self.takes_codec(t) && self.missing_caps_ex(t) == 0,
        }
    }

    fn takes_codec(&self, t: &ExTag) -> bool {
        let any = if t.video {
            self.any_video
        } else {
            self.any_audio
        };
        any || self.codecs & t.bit != 0
    }

    /// The `capsEx` bits a message needs that this client did not announce.
    fn missing_caps_ex(&self, t: &ExTag) -> u32 {
        let mut need = 0;
        if t.multitrack {
            need |= CAPS_EX_MULTITRACK;
        }
        if t.modex {
            need |= CAPS_EX_MODEX;
        }
        need & !self.caps_ex
    }

    /// Why a message this client does not take cannot go to it, for its status and the log:
    /// "stream is HEVC (hvc1); this player did not announce Enhanced RTMP support".
    pub fn refusal(&self, t: &ExTag) -> String {
        let what = t.label();
        if !self.announced {
            format!("stream is {what}; this player did not announce Enhanced RTMP support")
        } else if !self.takes_codec(t) {
            format!("stream is {what}; this player did not announce support for it")
        } else {
            format!(
                "stream is {what} with E-RTMP extensions (capsEx {}) this player did not announce",
                self.missing_caps_ex(t)
            )
        }
    }
}

/// An Enhanced RTMP message header, as far as choosing players goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExTag {
    pub video: bool,
    /// The codec (of the first track of a multitrack message); zeros when the header has
    /// none (a command frame) or could not be read.
    pub fourcc: FourCc,
    /// Its bit among the codecs we know (0: unknown).
    bit: u16,
    pub multitrack: bool,
    /// The header starts with a ModEx chain.
    pub modex: bool,
    /// A sequence start (codec configuration).
    pub start: bool,
    /// Coded frames (not metadata, a command or an end of sequence).
    pub coded: bool,
}

impl ExTag {
    fn new(video: bool, fourcc: Option<FourCc>, multitrack: bool, modex: bool) -> ExTag {
        let fourcc = fourcc.unwrap_or(FourCc([0; 4]));
        ExTag {
            video,
            fourcc,
            bit: known_bit(fourcc),
            multitrack,
            modex,
            start: false,
            coded: false,
        }
    }

    /// "HEVC (hvc1)", or the bare FourCC for a codec without a display name.
    pub fn label(&self) -> String {
        let name = if self.video {
            VideoCodec::FourCc(self.fourcc).name()
        } else {
            AudioCodec::FourCc(self.fourcc).name()
        };
        if name.is_empty() {
            format!("\"{}\"", self.fourcc)
        } else {
            format!("{name} ({})", self.fourcc)
        }
    }
}

/// Which header form a live message uses: what a player must understand to take it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Wire {
    /// A legacy FLV header (or not a media message): every player takes it.
    #[default]
    Legacy,
    /// An Enhanced RTMP header (video first byte with 0x80, or audio SoundFormat 9).
    Enhanced(ExTag),
}

/// Packet type 7 opens a ModEx chain in both enhanced video and audio headers.
const PACKET_TYPE_MODEX: u8 = 7;
/// Audio SoundFormat 9 is the enhanced audio header.
const SOUND_FORMAT_EX_HEADER: u8 = 9;

impl Wire {
    /// The form of a video message body. Decided by the first byte, so even a header we
    /// cannot parse never goes to a legacy player.
    pub fn of_video(payload: &[u8], tag: Option<&flv::VideoTag>) -> Wire {
        match payload.first() {
            Some(b0) if b0 & 0x80 != 0 => Wire::Enhanced(ExTag {
                start: tag.is_some_and(|t| t.packet == VideoPacket::SequenceHeader),
                coded: tag.is_some_and(|t| t.packet == VideoPacket::Frame),
                ..ExTag::new(
                    true,
                    tag.and_then(|t| t.codec.fourcc()),
                    tag.is_some_and(|t| t.multitrack.is_some()),
                    b0 & 0x0f == PACKET_TYPE_MODEX,
                )
            }),
            _ => Wire::Legacy,
        }
    }

    /// The form of an audio message body (see [`Wire::of_video`]).
    pub fn of_audio(payload: &[u8], tag: Option<&flv::AudioTag>) -> Wire {
        match payload.first() {
            Some(b0) if b0 >> 4 == SOUND_FORMAT_EX_HEADER => Wire::Enhanced(ExTag {
                start: tag.is_some_and(|t| t.packet == AudioPacket::SequenceHeader),
                coded: tag.is_some_and(|t| t.packet == AudioPacket::Frame),
                ..ExTag::new(
                    false,
                    tag.and_then(|t| t.codec.fourcc()),
                    tag.is_some_and(|t| t.multitrack.is_some()),
                    b0 & 0x0f == PACKET_TYPE_MODEX,
                )
            }),
            _ => Wire::Legacy,
        }
    }

    pub fn enhanced(&self) -> Option<&ExTag> {
        match self {
            Wire::Legacy => None,
            Wire::Enhanced(t) => Some(t),
        }
    }
}

/// Writes our E-RTMP properties into the `_result` properties object of `connect`.
pub fn write_server_caps(out: &mut Vec<u8>) {
    amf0::write_key(out, "fourCcList");
    let list = KNOWN
        .iter()
        .filter_map(|(f, _)| f.as_str())
        .map(|s| Amf0Value::String(s.to_owned()))
        .collect();
    amf0::encode(&Amf0Value::StrictArray(list), out);
    for key in ["videoFourCcInfoMap", "audioFourCcInfoMap"] {
        amf0::write_key(out, key);
        amf0::write_object_start(out);
        amf0::write_key(out, WILDCARD);
        amf0::write_number(out, f64::from(FOURCC_CAN_FORWARD));
        amf0::write_object_end(out);
    }
    amf0::write_key(out, "capsEx");
    amf0::write_number(out, f64::from(SERVER_CAPS_EX));
}

#[cfg(test)]
mod tests {
    use super::*;

    type V = Amf0Value;

    fn s(x: &str) -> V {
        V::String(x.to_owned())
    }

    fn obj(props: &[(&str, V)]) -> V {
        V::Object(
            props
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        )
    }

    fn list(items: &[&str]) -> V {
        V::StrictArray(items.iter().map(|x| s(x)).collect())
    }

    fn video(fourcc: FourCc) -> Wire {
        Wire::Enhanced(ExTag::new(true, Some(fourcc), false, false))
    }

    fn audio(fourcc: FourCc) -> Wire {
        Wire::Enhanced(ExTag::new(false, Some(fourcc), false, false))
    }

    #[test]
    fn a_legacy_connect_announces_nothing_and_takes_only_legacy_tags() {
        let c = Caps::from_connect(&obj(&[
            ("app", s("live")),
            ("videoCodecs", V::Number(252.0)),
        ]));
        assert_eq!(c, Caps::LEGACY);
        assert!(c.takes(&Wire::Legacy));
        assert!(!c.takes(&video(FourCc::HVC1)));
        // avc1 in an ExHeader is still unreadable for a legacy player.
        assert!(!c.takes(&video(FourCc::AVC1)));
        assert!(!c.takes(&audio(FourCc::OPUS)));
    }

    #[test]
    fn four_cc_list_selects_codecs_and_star_takes_any() {
        let c = Caps::from_connect(&obj(&[("fourCcList", list(&["hvc1", "Opus"]))]));
        assert!(c.announced);
        assert!(c.takes(&video(FourCc::HVC1)));
        assert!(c.takes(&audio(FourCc::OPUS)));
        assert!(!c.takes(&video(FourCc::AV01)));
        assert!(!c.takes(&audio(FourCc::FLAC)));
        assert!(!c.takes(&video(FourCc(*b"vvc1"))));
        let any = Caps::from_connect(&obj(&[("fourCcList", list(&["*"]))]));
        assert!(any.takes(&video(FourCc::AV01)));
        assert!(any.takes(&video(FourCc(*b"vvc1"))));
        assert!(any.takes(&audio(FourCc::EAC3)));
        // An empty list is still an E-RTMP client, one without enhanced codecs.
        let empty = Caps::from_connect(&obj(&[("fourCcList", list(&[]))]));
        assert!(empty.announced);
        assert!(!empty.takes(&video(FourCc::HVC1)));
    }

    #[test]
    fn info_maps_count_decode_or_forward_per_kind_and_star_overrides() {
        let c = Caps::from_connect(&obj(&[
            (
                "videoFourCcInfoMap",
                obj(&[
                    ("av01", V::Number(1.0)),
                    ("vp09", V::Number(2.0)), // encode only: cannot play it
                    ("Opus", V::Number(1.0)), // not a video codec
                ]),
            ),
            (
                "audioFourCcInfoMap",
                V::EcmaArray(vec![("fLaC".into(), V::Number(4.0))]),
            ),
        ]));
        assert!(c.announced);
        assert!(c.takes(&video(FourCc::AV01)));
        assert!(!c.takes(&video(FourCc::VP09)));
        assert!(!c.takes(&audio(FourCc::OPUS)));
        assert!(c.takes(&audio(FourCc::FLAC)));
        let star = Caps::from_connect(&obj(&[(
            "videoFourCcInfoMap",
            obj(&[("hvc1", V::Number(1.0)), ("*", V::Number(4.0))]),
        )]));
        assert!(star.takes(&video(FourCc::VP08)));
        assert!(!star.takes(&audio(FourCc::OPUS)));
        // "*" without decode/forward overrides the specific entries too.
        let encode_only = Caps::from_connect(&obj(&[(
            "videoFourCcInfoMap",
            obj(&[("hvc1", V::Number(1.0)), ("*", V::Number(2.0))]),
        )]));
        assert!(!encode_only.takes(&video(FourCc::HVC1)));
    }

    #[test]
    fn caps_ex_gates_multitrack_and_modex() {
        let mt = Wire::Enhanced(ExTag::new(true, Some(FourCc::HVC1), true, false));
        let modex = Wire::Enhanced(ExTag::new(true, Some(FourCc::HVC1), false, true));
        let plain = Caps::from_connect(&obj(&[("fourCcList", list(&["hvc1"]))]));
        assert!(!plain.takes(&mt));
        assert!(!plain.takes(&modex));
        let full = Caps::from_connect(&obj(&[
            ("fourCcList", list(&["hvc1"])),
            (
                "capsEx",
                V::Number(f64::from(CAPS_EX_MULTITRACK | CAPS_EX_MODEX)),
            ),
        ]));
        assert_eq!(full.caps_ex, 6);
        assert!(full.takes(&mt));
        assert!(full.takes(&modex));
        // capsEx alone announces E-RTMP but no codec.
        let only = Caps::from_connect(&obj(&[("capsEx", V::Number(2.0))]));
        assert!(only.announced);
        assert!(!only.takes(&mt));
        for bad in [
            V::Number(-1.0),
            V::Number(f64::NAN),
            V::Number(1e300),
            s("2"),
        ] {
            assert_eq!(Caps::from_connect(&obj(&[("capsEx", bad)])).caps_ex, 0);
        }
    }

    #[test]
    fn hostile_lists_are_bounded_and_odd_entries_ignored() {
        // The 65th entry is not looked at; long strings and non-strings are skipped.
        let mut items: Vec<V> = (0..MAX_FOURCC_ENTRIES).map(|_| s("xxxxxxxx")).collect();
        items.push(s("hvc1"));
        let c = Caps::from_connect(&obj(&[("fourCcList", V::StrictArray(items))]));
        assert!(c.announced);
        assert!(!c.takes(&video(FourCc::HVC1)));
        let c = Caps::from_connect(&obj(&[(
            "fourCcList",
            V::StrictArray(vec![V::Number(1.0), s("hvc1hvc1"), s("av01"), V::Null]),
        )]));
        assert!(c.takes(&video(FourCc::AV01)));
        assert!(!c.takes(&video(FourCc::HVC1)));
        let mut props: Vec<(String, V)> = (0..MAX_FOURCC_ENTRIES)
            .map(|i| (format!("k{i}"), V::Number(1.0)))
            .collect();
        props.push(("*".into(), V::Number(4.0)));
        let c = Caps::from_connect(&obj(&[("videoFourCcInfoMap", V::Object(props))]));
        assert!(!c.takes(&video(FourCc::HVC1)));
        // A list that is not a strict array is not an announcement.
        let c = Caps::from_connect(&obj(&[("fourCcList", s("hvc1"))]));
        assert_eq!(c, Caps::LEGACY);
    }

    #[test]
    fn wire_is_read_from_the_first_byte_and_the_parsed_header() {
        let hevc_start = [0x90, b'h', b'v', b'c', b'1', 1, 2, 3];
        let tag = flv::parse_video(&hevc_start).ok();
        let w = Wire::of_video(&hevc_start, tag.as_ref());
        assert!(w
            .enhanced()
            .is_some_and(|t| t.start && !t.coded && t.fourcc == FourCc::HVC1));
        assert!(!Caps::LEGACY.takes(&w));
        // HDR metadata of an HEVC stream is HEVC's, but not media.
        let meta = [0xd4, b'h', b'v', b'c', b'1', 2, 0, 9];
        let tag = flv::parse_video(&meta).ok();
        let w = Wire::of_video(&meta, tag.as_ref());
        assert!(w
            .enhanced()
            .is_some_and(|t| !t.start && !t.coded && t.fourcc == FourCc::HVC1));
        let avc = [0x17, 0, 0, 0, 0];
        assert_eq!(Wire::of_video(&avc, None), Wire::Legacy);
        // Unparsable enhanced bytes are still enhanced (of no known codec).
        let w = Wire::of_video(&[0xff], None);
        assert!(!Caps::from_connect(&obj(&[("fourCcList", list(&["hvc1"]))])).takes(&w));
        assert!(Caps::FORWARD_ALL.takes(&w));
        let mt = [0x96, 0x03, b'h', b'v', b'c', b'1', 1, 0xaa];
        let tag = flv::parse_video(&mt).ok();
        let w = Wire::of_video(&mt, tag.as_ref());
        assert!(w.enhanced().is_some_and(|t| t.multitrack && !t.modex));
        let modex = [0x97, 0x00, 0x00, 0x01, b'h', b'v', b'c', b'1', 0, 0, 0];
        let tag = flv::parse_video(&modex).ok();
        let w = Wire::of_video(&modex, tag.as_ref());
        assert!(w.enhanced().is_some_and(|t| t.modex), "{w:?}");
        let opus = [0x91, b'O', b'p', b'u', b's', 0];
        let tag = flv::parse_audio(&opus).ok();
        let w = Wire::of_audio(&opus, tag.as_ref());
        assert!(w
            .enhanced()
            .is_some_and(|t| t.coded && t.fourcc == FourCc::OPUS));
        assert!(!w.enhanced().is_some_and(|t| t.video));
        assert_eq!(Wire::of_audio(&[0xaf, 1, 2], None), Wire::Legacy);
        assert_eq!(Wire::of_audio(&[], None), Wire::Legacy);
    }

    #[test]
    fn refusals_name_the_codec_and_what_is_missing() {
        let t = ExTag::new(true, Some(FourCc::HVC1), false, false);
        assert_eq!(
            Caps::LEGACY.refusal(&t),
            "stream is HEVC (hvc1); this player did not announce Enhanced RTMP support"
        );
        let av1 = Caps::from_connect(&obj(&[("fourCcList", list(&["av01"]))]));
        assert_eq!(
            av1.refusal(&t),
            "stream is HEVC (hvc1); this player did not announce support for it"
        );
        let hevc = Caps::from_connect(&obj(&[("fourCcList", list(&["hvc1"]))]));
        let modex = ExTag::new(true, Some(FourCc::HVC1), false, true);
        assert!(hevc.refusal(&modex).contains("capsEx 4"));
        let odd = ExTag::new(true, Some(FourCc(*b"vvc1")), false, false);
        assert!(Caps::LEGACY
            .refusal(&odd)
            .starts_with("stream is \"vvc1\";"));
    }
}
