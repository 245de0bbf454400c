//! FLV tag bodies as RTMP carries them in audio (type 8) and video (type 9) messages, in both
//! the legacy form (codec id nibble) and the Enhanced RTMP v1/v2 form (FourCC, packet types,
//! ModEx, multitrack), plus the codec configuration records the sequence headers carry.
//!
//! Codecs are identified by FourCC internally so HEVC/AV1/VP9/Opus need no special cases later;
//! legacy codec ids map into FourCCs where one exists. Every parser is bounded and returns an
//! error on truncated or malformed input instead of panicking.

use std::fmt;

use bytes::Bytes;
use thiserror::Error;

/// At most this many ModEx entries are skipped in one tag (the spec allows a chain; a hostile
/// publisher must not make us loop over the whole message byte by byte).
pub const MAX_MODEX_ENTRIES: usize = 16;
/// At most this many SPS (or PPS) in one AVCDecoderConfigurationRecord.
pub const MAX_PARAMETER_SETS: usize = 32;

/// Errors from FLV tag and codec configuration parsing.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum FlvError {
    #[error("flv: empty {0} tag body")]
    Empty(&'static str),
    #[error("flv: truncated {0}")]
    Truncated(&'static str),
    #[error("flv: invalid video frame type {0}")]
    InvalidFrameType(u8),
    #[error("flv: nested multitrack packet")]
    NestedMultitrack,
    #[error("flv: more than {MAX_MODEX_ENTRIES} ModEx entries")]
    TooManyModEx,
    #[error("flv: unsupported AVC configuration version {0}")]
    AvcConfigVersion(u8),
    #[error("flv: {0} AVC parameter sets (max {MAX_PARAMETER_SETS})")]
    TooManyParameterSets(usize),
    #[error("flv: invalid AAC sampling frequency index {0}")]
    InvalidSampleRateIndex(u8),
}

/// A four-character code naming a codec (Enhanced RTMP / ISO-BMFF sample entry names).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct FourCc(pub [u8; 4]);

impl FourCc {
    pub const AVC1: FourCc = FourCc(*b"avc1");
    pub const HVC1: FourCc = FourCc(*b"hvc1");
    pub const AV01: FourCc = FourCc(*b"av01");
    pub const VP09: FourCc = FourCc(*b"vp09");
    pub const VP08: FourCc = FourCc(*b"vp08");
    pub const MP4A: FourCc = FourCc(*b"mp4a");
    pub const OPUS: FourCc = FourCc(*b"Opus");
    pub const MP3: FourCc = FourCc(*b".mp3");
    pub const AC3: FourCc = FourCc(*b"ac-3");
    pub const EAC3: FourCc = FourCc(*b"ec-3");
    pub const FLAC: FourCc = FourCc(*b"fLaC");

    /// The code as text when it is printable ASCII (for logs and /stat).
    pub fn as_str(&self) -> Option<&str> {
        if self.0.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
            std::str::from_utf8(&self.0).ok()
        } else {
            None
        }
    }
}

impl fmt::Display for FourCc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.as_str() {
            Some(s) => f.write_str(s),
            None => write!(f, "0x{:08x}", u32::from_be_bytes(self.0)),
        }
    }
}

impl fmt::Debug for FourCc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FourCc({self})")
    }
}

/// A video codec: a FourCC, or a legacy FLV codec id that has none (H.263, VP6, screen video).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VideoCodec {
    FourCc(FourCc),
    Legacy(u8),
}

impl VideoCodec {
    /// Legacy FLV codec id 7 is AVC; 12 is HEVC by the convention of Chinese CDNs and ffmpeg forks.
    pub fn from_legacy_id(id: u8) -> Self {
        match id {
            7 => VideoCodec::FourCc(FourCc::AVC1),
            12 => VideoCodec::FourCc(FourCc::HVC1),
            other => VideoCodec::Legacy(other),
        }
    }

    pub fn fourcc(&self) -> Option<FourCc> {
        match self {
            VideoCodec::FourCc(f) => Some(*f),
            VideoCodec::Legacy(_) => None,
        }
    }

    /// Codecs whose coded frames carry a composition time offset.
    pub fn has_composition_time(&self) -> bool {
        matches!(self.fourcc(), Some(FourCc::AVC1) | Some(FourCc::HVC1))
    }

    /// Display name (legacy names follow the C module's /stat).
    pub fn name(&self) -> &'static str {
        match *self {
            VideoCodec::FourCc(FourCc::AVC1) => "H264",
            VideoCodec::FourCc(FourCc::HVC1) => "HEVC",
            VideoCodec::FourCc(FourCc::AV01) => "AV1",
            VideoCodec::FourCc(FourCc::VP09) => "VP9",
            VideoCodec::FourCc(FourCc::VP08) => "VP8",
            VideoCodec::FourCc(_) => "",
            VideoCodec::Legacy(1) => "Jpeg",
            VideoCodec::Legacy(2) => "Sorenson-H263",
            VideoCodec::Legacy(3) => "ScreenVideo",
            VideoCodec::Legacy(4) => "On2-VP6",
            VideoCodec::Legacy(5) => "On2-VP6-Alpha",
            VideoCodec::Legacy(6) => "ScreenVideo2",
            VideoCodec::Legacy(_) => "",
        }
    }
}

/// An audio codec: a FourCC, or a legacy FLV sound format that has none (PCM, ADPCM,
/// Nellymoser, G.711, Speex, device-specific).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AudioCodec {
    FourCc(FourCc),
    Legacy(u8),
}

impl AudioCodec {
    /// Legacy sound format 10 is AAC, 2 and 14 (8 kHz) are MP3.
    pub fn from_legacy_format(format: u8) -> Self {
        match format {
            10 => AudioCodec::FourCc(FourCc::MP4A),
            2 | 14 => AudioCodec::FourCc(FourCc::MP3),
            other => AudioCodec::Legacy(other),
        }
    }

    pub fn fourcc(&self) -> Option<FourCc> {
        match self {
            AudioCodec::FourCc(f) => Some(*f),
            AudioCodec::Legacy(_) => None,
        }
    }

    /// Display name (legacy names follow the C module's /stat).
    pub fn name(&self) -> &'static str {
        match *self {
            AudioCodec::FourCc(FourCc::MP4A) => "AAC",
            AudioCodec::FourCc(FourCc::MP3) => "MP3",
            AudioCodec::FourCc(FourCc::OPUS) => "Opus",
            AudioCodec::FourCc(FourCc::AC3) => "AC3",
            AudioCodec::FourCc(FourCc::EAC3) => "EAC3",
            AudioCodec::FourCc(FourCc::FLAC) => "FLAC",
            AudioCodec::FourCc(_) => "",
            AudioCodec::Legacy(0) => "Linear",
            AudioCodec::Legacy(1) => "ADPCM",
            AudioCodec::Legacy(3) => "LinearLE",
            AudioCodec::Legacy(4) => "Nellymoser16",
            AudioCodec::Legacy(5) => "Nellymoser8",
            AudioCodec::Legacy(6) => "Nellymoser",
            AudioCodec::Legacy(7) => "G711A",
            AudioCodec::Legacy(8) => "G711U",
            AudioCodec::Legacy(11) => "Speex",
            AudioCodec::Legacy(15) => "DeviceSpecific",
            AudioCodec::Legacy(_) => "",
        }
    }
}

/// Video frame type (legacy 4-bit field, enhanced 3-bit field; same values).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameType {
    Key,
    Inter,
    DisposableInter,
    GeneratedKey,
    /// Video info/command frame: not media.
    Command,
}

impl FrameType {
    fn from_bits(v: u8) -> Result<Self, FlvError> {
        match v {
            1 => Ok(FrameType::Key),
            2 => Ok(FrameType::Inter),
            3 => Ok(FrameType::DisposableInter),
            4 => Ok(FrameType::GeneratedKey),
            5 => Ok(FrameType::Command),
            other => Err(FlvError::InvalidFrameType(other)),
        }
    }
}

/// What a video tag carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VideoPacket {
    /// Decoder configuration (AVC/HEVC/AV1/VP9 configuration record).
    SequenceHeader,
    /// Coded frame data.
    Frame,
    EndOfSequence,
    /// Enhanced RTMP AMF metadata (e.g. colorInfo).
    Metadata,
    /// Video command frame (seek start/end); the value is the command byte.
    Command(u8),
    /// Anything else (e.g. MPEG2TSSequenceStart = 5, reserved values); the raw packet type.
    Other(u8),
}

/// How the tracks of an Enhanced RTMP multitrack message are laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MultitrackKind {
    OneTrack,
    ManyTracks,
    ManyTracksManyCodecs,
    Other(u8),
}

impl MultitrackKind {
    fn from_bits(v: u8) -> Self {
        match v {
            0 => MultitrackKind::OneTrack,
            1 => MultitrackKind::ManyTracks,
            2 => MultitrackKind::ManyTracksManyCodecs,
            other => MultitrackKind::Other(other),
        }
    }
}

/// Multitrack header of an enhanced tag. Only the first track is described; the fan-out
/// forwards such messages unchanged and the muxers ignore them for now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Multitrack {
    pub kind: MultitrackKind,
    /// Track id of the first track (0 is the default/highest-priority track).
    pub first_track_id: u8,
}

/// A parsed video tag header. The codec data is `payload[body_offset..]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VideoTag {
    pub codec: VideoCodec,
    pub frame: FrameType,
    pub packet: VideoPacket,
    /// Composition time offset (PTS - DTS) in milliseconds; 0 when the form has none.
    pub composition_time_ms: i32,
    /// Whether the tag used the Enhanced RTMP header.
    pub enhanced: bool,
    pub multitrack: Option<Multitrack>,
    pub body_offset: usize,
}

impl VideoTag {
    /// A keyframe of coded media (not a sequence header, not a command).
    pub fn is_keyframe(&self) -> bool {
        matches!(self.frame, FrameType::Key | FrameType::GeneratedKey)
            && self.packet == VideoPacket::Frame
    }

    pub fn is_sequence_header(&self) -> bool {
        self.packet == VideoPacket::SequenceHeader
    }
}

/// What an audio tag carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AudioPacket {
    /// Decoder configuration (AAC AudioSpecificConfig, Opus/FLAC headers).
    SequenceHeader,
    Frame,
    EndOfSequence,
    /// Enhanced RTMP channel layout description.
    MultichannelConfig,
    /// Reserved/unknown enhanced packet type.
    Other(u8),
}

/// The legacy FLV sound rate/size/type bits (AAC always signals 44 kHz stereo here; the real
/// values are in the AudioSpecificConfig).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LegacyAudioFormat {
    pub sample_rate: u32,
    pub sample_bits: u8,
    pub channels: u8,
}

/// A parsed audio tag header. The codec data is `payload[body_offset..]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AudioTag {
    pub codec: AudioCodec,
    pub packet: AudioPacket,
    /// Present for legacy headers only.
    pub legacy: Option<LegacyAudioFormat>,
    pub multitrack: Option<Multitrack>,
    pub body_offset: usize,
}

impl AudioTag {
    pub fn is_sequence_header(&self) -> bool {
        self.packet == AudioPacket::SequenceHeader
    }
}

/// Byte cursor with checked reads.
struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(data: &'a [u8]) -> Self {
        Cursor { data, pos: 0 }
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, FlvError> {
        let b = *self.data.get(self.pos).ok_or(FlvError::Truncated(what))?;
        self.pos += 1;
        Ok(b)
    }

    fn bytes(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], FlvError> {
        let end = self.pos.checked_add(n).ok_or(FlvError::Truncated(what))?;
        let s = self
            .data
            .get(self.pos..end)
            .ok_or(FlvError::Truncated(what))?;
        self.pos = end;
        Ok(s)
    }

    /// The next `N` bytes as an array.
    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], FlvError> {
        let b = self.bytes(N, what)?;
        <[u8; N]>::try_from(b).map_err(|_| FlvError::Truncated(what))
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, FlvError> {
        Ok(u16::from_be_bytes(self.array(what)?))
    }

    fn u24(&mut self, what: &'static str) -> Result<u32, FlvError> {
        let [b0, b1, b2] = self.array(what)?;
        Ok(u32::from_be_bytes([0, b0, b1, b2]))
    }

    /// Signed 24-bit big-endian (composition time).
    fn i24(&mut self, what: &'static str) -> Result<i32, FlvError> {
        let v = self.u24(what)?;
        // Shift the sign bit into place and back (arithmetic shift sign-extends).
        Ok(((v << 8) as i32) >> 8)
    }

    fn fourcc(&mut self, what: &'static str) -> Result<FourCc, FlvError> {
        Ok(FourCc(self.array(what)?))
    }
}

/// Enhanced packet type values shared by the parsers below.
const EX_MODEX: u8 = 7;
const EX_VIDEO_MULTITRACK: u8 = 6;
const EX_AUDIO_MULTITRACK: u8 = 5;
const EX_VIDEO_METADATA: u8 = 4;

/// Skips a ModEx chain; returns the packet type that follows it.
fn skip_modex(cur: &mut Cursor<'_>, mut packet_type: u8) -> Result<u8, FlvError> {
    let mut n = 0;
    while packet_type == EX_MODEX {
        n += 1;
        if n > MAX_MODEX_ENTRIES {
            return Err(FlvError::TooManyModEx);
        }
        let mut size = usize::from(cur.u8("ModEx size")?) + 1;
        if size == 256 {
            size = usize::from(cur.u16("ModEx size")?) + 1;
        }
        cur.bytes(size, "ModEx data")?;
        // High nibble: ModEx type (TimestampOffsetNano = 0; ignored), low nibble: next type.
        packet_type = cur.u8("ModEx packet type")? & 0x0f;
    }
    Ok(packet_type)
}

/// Reads a multitrack header up to the first track's data; returns (inner packet type,
/// FourCC, multitrack description).
fn read_multitrack(
    cur: &mut Cursor<'_>,
    multitrack_type: u8,
) -> Result<(u8, FourCc, Multitrack), FlvError> {
    let b = cur.u8("multitrack header")?;
    let kind = MultitrackKind::from_bits(b >> 4);
    let inner = b & 0x0f;
    if inner == multitrack_type {
        return Err(FlvError::NestedMultitrack);
    }
    let mut fourcc = None;
    if kind != MultitrackKind::ManyTracksManyCodecs {
        fourcc = Some(cur.fourcc("multitrack FourCC")?);
    }
    // First track: [FourCC if many codecs] track id [size if not one track].
    let fourcc = match fourcc {
        Some(f) => f,
        None => cur.fourcc("track FourCC")?,
    };
    let first_track_id = cur.u8("track id")?;
    if kind != MultitrackKind::OneTrack {
        cur.u24("track size")?;
    }
    Ok((
        inner,
        fourcc,
        Multitrack {
            kind,
            first_track_id,
        },
    ))
}

/// Parses the header of a video message body (legacy or Enhanced RTMP).
pub fn parse_video(payload: &[u8]) -> Result<VideoTag, FlvError> {
    let mut cur = Cursor::new(payload);
    let b0 = cur.u8("video").map_err(|_| FlvError::Empty("video"))?;
    if b0 & 0x80 != 0 {
        return parse_ex_video(&mut cur, b0);
    }
    let frame = FrameType::from_bits(b0 >> 4)?;
    let codec = VideoCodec::from_legacy_id(b0 & 0x0f);
    let mut tag = VideoTag {
        codec,
        frame,
        packet: VideoPacket::Frame,
        composition_time_ms: 0,
        enhanced: false,
        multitrack: None,
        body_offset: 1,
    };
    if frame == FrameType::Command {
        tag.packet = VideoPacket::Command(cur.u8("video command")?);
    } else if codec.has_composition_time() {
        let pt = cur.u8("AVC packet type")?;
        let ct = cur.i24("composition time")?;
        tag.packet = match pt {
            0 => VideoPacket::SequenceHeader,
            1 => VideoPacket::Frame,
            2 => VideoPacket::EndOfSequence,
            other => VideoPacket::Other(other),
        };
        if tag.packet == VideoPacket::Frame {
            tag.composition_time_ms = ct;
        }
    }
    tag.body_offset = cur.pos;
    Ok(tag)
}

fn parse_ex_video(cur: &mut Cursor<'_>, b0: u8) -> Result<VideoTag, FlvError> {
    let frame = FrameType::from_bits((b0 >> 4) & 0x07)?;
    let packet_type = skip_modex(cur, b0 & 0x0f)?;
    if frame == FrameType::Command && packet_type != EX_VIDEO_METADATA {
        // A command frame has no FourCC: just the command byte.
        let command = cur.u8("video command")?;
        return Ok(VideoTag {
            codec: VideoCodec::Legacy(0),
            frame,
            packet: VideoPacket::Command(command),
            composition_time_ms: 0,
            enhanced: true,
            multitrack: None,
            body_offset: cur.pos,
        });
    }
    let (packet_type, fourcc, multitrack) = if packet_type == EX_VIDEO_MULTITRACK {
        let (pt, f, m) = read_multitrack(cur, EX_VIDEO_MULTITRACK)?;
        (pt, f, Some(m))
    } else {
        (packet_type, cur.fourcc("video FourCC")?, None)
    };
    let codec = VideoCodec::FourCc(fourcc);
    let mut composition_time_ms = 0;
    let packet = match packet_type {
        0 => VideoPacket::SequenceHeader,
        1 => {
            if codec.has_composition_time() {
                composition_time_ms = cur.i24("composition time")?;
            }
            VideoPacket::Frame
        }
        2 => VideoPacket::EndOfSequence,
        3 => VideoPacket::Frame,
        EX_VIDEO_METADATA => VideoPacket::Metadata,
        other => VideoPacket::Other(other),
    };
    Ok(VideoTag {
        codec,
        frame,
        packet,
        composition_time_ms,
        enhanced: true,
        multitrack,
        body_offset: cur.pos,
    })
}

/// Sound rate of the legacy 2-bit field (only its low two bits are read).
fn legacy_rate(field: u8) -> u32 {
    match field & 0x03 {
        0 => 5512,
        1 => 11025,
        2 => 22050,
        _ => 44100,
    }
}
/// Legacy sound format 9 is the Enhanced RTMP ExHeader marker.
const SOUND_FORMAT_EX_HEADER: u8 = 9;

/// Parses the header of an audio message body (legacy or Enhanced RTMP).
pub fn parse_audio(payload: &[u8]) -> Result<AudioTag, FlvError> {
    let mut cur = Cursor::new(payload);
    let b0 = cur.u8("audio").map_err(|_| FlvError::Empty("audio"))?;
    let format = b0 >> 4;
    if format == SOUND_FORMAT_EX_HEADER {
        return parse_ex_audio(&mut cur, b0 & 0x0f);
    }
    let mut legacy = LegacyAudioFormat {
        sample_rate: legacy_rate(b0 >> 2),
        sample_bits: if b0 & 0x02 != 0 { 16 } else { 8 },
        channels: if b0 & 0x01 != 0 { 2 } else { 1 },
    };
    match format {
        4 => legacy.sample_rate = 16000,
        5 | 14 => legacy.sample_rate = 8000,
        _ => {}
    }
    let codec = AudioCodec::from_legacy_format(format);
    let mut packet = AudioPacket::Frame;
    if codec == AudioCodec::FourCc(FourCc::MP4A) {
        packet = match cur.u8("AAC packet type")? {
            0 => AudioPacket::SequenceHeader,
            1 => AudioPacket::Frame,
            other => AudioPacket::Other(other),
        };
    }
    Ok(AudioTag {
        codec,
        packet,
        legacy: Some(legacy),
        multitrack: None,
        body_offset: cur.pos,
    })
}

fn parse_ex_audio(cur: &mut Cursor<'_>, packet_type: u8) -> Result<AudioTag, FlvError> {
    let packet_type = skip_modex(cur, packet_type)?;
    let (packet_type, fourcc, multitrack) = if packet_type == EX_AUDIO_MULTITRACK {
        let (pt, f, m) = read_multitrack(cur, EX_AUDIO_MULTITRACK)?;
        (pt, f, Some(m))
    } else {
        (packet_type, cur.fourcc("audio FourCC")?, None)
    };
    let packet = match packet_type {
        0 => AudioPacket::SequenceHeader,
        1 => AudioPacket::Frame,
        2 => AudioPacket::EndOfSequence,
        4 => AudioPacket::MultichannelConfig,
        other => AudioPacket::Other(other),
    };
    Ok(AudioTag {
        codec: AudioCodec::FourCc(fourcc),
        packet,
        legacy: None,
        multitrack,
        body_offset: cur.pos,
    })
}

/// The parts of an AVCDecoderConfigurationRecord the muxers and /stat need.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AvcConfig {
    pub profile_idc: u8,
    pub constraint_flags: u8,
    pub level_idc: u8,
    /// Bytes per NAL unit length prefix (1, 2 or 4).
    pub nal_length_size: u8,
    pub sps: Vec<Bytes>,
    pub pps: Vec<Bytes>,
}

impl AvcConfig {
    pub fn profile_name(&self) -> &'static str {
        avc_profile_name(self.profile_idc)
    }

    /// Level as shown on /stat, e.g. 31 -> 3.1.
    pub fn level(&self) -> f32 {
        f32::from(self.level_idc) / 10.0
    }
}

/// AVC profile names (the C module's /stat spelling where it has one).
pub fn avc_profile_name(profile_idc: u8) -> &'static str {
    match profile_idc {
        66 => "Baseline",
        77 => "Main",
        88 => "Extended",
        100 => "High",
        110 => "High10",
        122 => "High422",
        244 => "High444",
        44 => "CAVLC444",
        _ => "",
    }
}

fn read_parameter_sets(
    cur: &mut Cursor<'_>,
    count: usize,
    what: &'static str,
) -> Result<Vec<Bytes>, FlvError> {
    if count > MAX_PARAMETER_SETS {
        return Err(FlvError::TooManyParameterSets(count));
    }
    let mut sets = Vec::with_capacity(count);
    for _ in 0..count {
        let len = usize::from(cur.u16(what)?);
        sets.push(Bytes::copy_from_slice(cur.bytes(len, what)?));
    }
    Ok(sets)
}

/// Parses an AVCDecoderConfigurationRecord (ISO/IEC 14496-15 5.3.3.1), the body of an AVC
/// sequence header. Trailing high-profile extensions are ignored.
pub fn parse_avc_decoder_config(body: &[u8]) -> Result<AvcConfig, FlvError> {
    let mut cur = Cursor::new(body);
    let version = cur.u8("AVC configuration")?;
    if version != 1 {
        return Err(FlvError::AvcConfigVersion(version));
    }
    let profile_idc = cur.u8("AVC configuration")?;
    let constraint_flags = cur.u8("AVC configuration")?;
    let level_idc = cur.u8("AVC configuration")?;
    let nal_length_size = (cur.u8("AVC configuration")? & 0x03) + 1;
    let num_sps = usize::from(cur.u8("AVC configuration")? & 0x1f);
    let sps = read_parameter_sets(&mut cur, num_sps, "AVC SPS")?;
    let num_pps = usize::from(cur.u8("AVC PPS count")?);
    let pps = read_parameter_sets(&mut cur, num_pps, "AVC PPS")?;
    Ok(AvcConfig {
        profile_idc,
        constraint_flags,
        level_idc,
        nal_length_size,
        sps,
        pps,
    })
}

/// The parts of an MPEG-4 AudioSpecificConfig the muxers and /stat need.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AacConfig {
    /// Audio object type as signalled first (5 = SBR, 29 = PS for hierarchical HE signalling).
    pub object_type: u8,
    /// The core codec's object type (2 = LC for HE-AAC).
    pub core_object_type: u8,
    /// Sampling frequency index (15 = explicit rate).
    pub sample_rate_index: u8,
    /// Core sampling rate in Hz.
    pub sample_rate: u32,
    /// SBR output rate when SBR is signalled.
    pub extension_sample_rate: Option<u32>,
    /// channelConfiguration (0 = defined by a program config element).
    pub channel_config: u8,
    pub sbr: bool,
    pub ps: bool,
}

impl AacConfig {
    /// "LC", "HE", "HEv2", ... as on /stat.
    pub fn profile_name(&self) -> &'static str {
        if self.ps {
            "HEv2"
        } else if self.sbr {
            "HE"
        } else {
            aac_profile_name(self.object_type)
        }
    }

    /// The rate a decoder outputs (the SBR rate for HE-AAC).
    pub fn output_sample_rate(&self) -> u32 {
        self.extension_sample_rate.unwrap_or(self.sample_rate)
    }

    /// Channels a decoder outputs (PS turns a mono core into stereo); 0 when unknown (PCE).
    pub fn output_channels(&self) -> u8 {
        match self.channel_config {
            1 if self.ps => 2,
            7 => 8,
            c @ 0..=6 => c,
            _ => 0,
        }
    }
}

/// AAC audio object type names.
pub fn aac_profile_name(object_type: u8) -> &'static str {
    match object_type {
        1 => "Main",
        2 => "LC",
        3 => "SSR",
        4 => "LTP",
        5 => "HE",
        6 => "Scalable",
        23 => "LD",
        29 => "HEv2",
        39 => "ELD",
        42 => "xHE",
        _ => "",
    }
}

/// Sampling frequencies by index (ISO/IEC 14496-3 1.6.3.4); 13 and 14 are reserved.
const AAC_SAMPLE_RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];
/// syncExtensionType announcing backward-compatible SBR signalling.
const SYNC_EXTENSION_SBR: u32 = 0x2b7;
/// syncExtensionType announcing backward-compatible PS signalling.
const SYNC_EXTENSION_PS: u32 = 0x548;

/// MSB-first bit reader with checked reads.
struct BitReader<'a> {
    data: &'a [u8],
    bit: usize,
}

impl<'a> BitReader<'a> {
    fn remaining(&self) -> usize {
        (self.data.len().saturating_mul(8)).saturating_sub(self.bit)
    }

    /// Reads up to 32 bits.
    fn read(&mut self, n: u32, what: &'static str) -> Result<u32, FlvError> {
        if n as usize > self.remaining() {
            return Err(FlvError::Truncated(what));
        }
        let mut v: u32 = 0;
        for _ in 0..n {
            let byte = self
                .data
                .get(self.bit / 8)
                .ok_or(FlvError::Truncated(what))?;
            let b = (byte >> (7 - (self.bit % 8))) & 1;
            v = (v << 1) | u32::from(b);
            self.bit += 1;
        }
        Ok(v)
    }

    fn peek(&self, n: u32) -> Option<u32> {
        let mut copy = BitReader {
            data: self.data,
            bit: self.bit,
        };
        copy.read(n, "").ok()
    }

    fn object_type(&mut self) -> Result<u8, FlvError> {
        let t = self.read(5, "AAC object type")?;
        if t == 31 {
            // Escape: 32 + 6 bits, at most 95, fits in u8.
            Ok((32 + self.read(6, "AAC object type")?) as u8)
        } else {
            Ok(t as u8)
        }
    }

    fn sample_rate(&mut self) -> Result<(u8, u32), FlvError> {
        let idx = self.read(4, "AAC sampling frequency")? as u8;
        if idx == 15 {
            return Ok((idx, self.read(24, "AAC sampling frequency")?));
        }
        match AAC_SAMPLE_RATES.get(usize::from(idx)) {
            Some(r) => Ok((idx, *r)),
            None => Err(FlvError::InvalidSampleRateIndex(idx)),
        }
    }
}

/// Parses an MPEG-4 AudioSpecificConfig (the body of an AAC sequence header), including
/// hierarchical (object type 5/29) and backward-compatible (sync extension) HE-AAC signalling.
pub fn parse_audio_specific_config(body: &[u8]) -> Result<AacConfig, FlvError> {
    let mut br = BitReader { data: body, bit: 0 };
    let object_type = br.object_type()?;
    let (sample_rate_index, sample_rate) = br.sample_rate()?;
    let channel_config = br.read(4, "AAC channel configuration")? as u8;
    let mut cfg = AacConfig {
        object_type,
        core_object_type: object_type,
        sample_rate_index,
        sample_rate,
        extension_sample_rate: None,
        channel_config,
        sbr: false,
        ps: false,
    };
    if object_type == 5 || object_type == 29 {
        cfg.sbr = true;
        cfg.ps = object_type == 29;
        cfg.extension_sample_rate = Some(br.sample_rate()?.1);
        cfg.core_object_type = br.object_type()?;
    }
    // Backward-compatible signalling: an LC config followed by a sync extension. Only the
    // simple case (LC with a channel configuration, no PCE) is looked at; anything else is
    // reported without SBR/PS hints.
    if !cfg.sbr && cfg.core_object_type == 2 && cfg.channel_config != 0 {
        let _ = detect_sync_extension(&mut br, &mut cfg);
    }
    Ok(cfg)
}

/// Reads GASpecificConfig (LC, no PCE) and an optional SBR/PS sync extension after it.
/// Errors mean "no extension"; the caller ignores them.
fn detect_sync_extension(br: &mut BitReader<'_>, cfg: &mut AacConfig) -> Result<(), FlvError> {
    br.read(1, "frameLengthFlag")?;
    if br.read(1, "dependsOnCoreCoder")? == 1 {
        br.read(14, "coreCoderDelay")?;
    }
    br.read(1, "extensionFlag")?;
    if br.remaining() < 16 || br.peek(11) != Some(SYNC_EXTENSION_SBR) {
        return Ok(());
    }
    br.read(11, "syncExtensionType")?;
    if br.object_type()? != 5 {
        return Ok(());
    }
    if br.read(1, "sbrPresentFlag")? == 1 {
        let rate = br.sample_rate()?.1;
        cfg.sbr = true;
        cfg.extension_sample_rate = Some(rate);
        if br.remaining() >= 12 && br.peek(11) == Some(SYNC_EXTENSION_PS) {
            br.read(11, "syncExtensionType")?;
            cfg.ps = br.read(1, "psPresentFlag")? == 1;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_avc_sequence_header_is_recognised() {
        let p = [0x17, 0x00, 0x00, 0x00, 0x00, 0x01, 0x64];
        let t = parse_video(&p).unwrap();
        assert_eq!(t.codec, VideoCodec::FourCc(FourCc::AVC1));
        assert_eq!(t.frame, FrameType::Key);
        assert!(t.is_sequence_header());
        assert!(!t.is_keyframe());
        assert!(!t.enhanced);
        assert_eq!(t.body_offset, 5);
    }

    #[test]
    fn legacy_avc_keyframe_carries_composition_time() {
        let p = [0x17, 0x01, 0x00, 0x00, 0x50, 0, 0, 0, 1, 0x65];
        let t = parse_video(&p).unwrap();
        assert!(t.is_keyframe());
        assert_eq!(t.packet, VideoPacket::Frame);
        assert_eq!(t.composition_time_ms, 80);
        assert_eq!(t.body_offset, 5);
    }

    #[test]
    fn negative_composition_time_is_sign_extended() {
        let p = [0x27, 0x01, 0xff, 0xff, 0xd8];
        let t = parse_video(&p).unwrap();
        assert_eq!(t.frame, FrameType::Inter);
        assert_eq!(t.composition_time_ms, -40);
        assert!(!t.is_keyframe());
    }

    #[test]
    fn legacy_codec_12_is_hevc() {
        let t = parse_video(&[0x1c, 0x00, 0, 0, 0]).unwrap();
        assert_eq!(t.codec.fourcc(), Some(FourCc::HVC1));
        assert!(t.is_sequence_header());
    }

    #[test]
    fn legacy_h263_has_no_packet_type() {
        let t = parse_video(&[0x12, 0xaa]).unwrap();
        assert_eq!(t.codec, VideoCodec::Legacy(2));
        assert_eq!(t.codec.name(), "Sorenson-H263");
        assert!(t.is_keyframe());
        assert_eq!(t.body_offset, 1);
    }

    #[test]
    fn legacy_command_frame_is_not_media() {
        let t = parse_video(&[0x57, 0x01]).unwrap();
        assert_eq!(t.frame, FrameType::Command);
        assert_eq!(t.packet, VideoPacket::Command(1));
        assert!(!t.is_keyframe());
    }

    #[test]
    fn enhanced_hevc_sequence_start() {
        let p = [0x90, b'h', b'v', b'c', b'1', 0x01, 0x02];
        let t = parse_video(&p).unwrap();
        assert!(t.enhanced);
        assert_eq!(t.codec, VideoCodec::FourCc(FourCc::HVC1));
        assert_eq!(t.frame, FrameType::Key);
        assert!(t.is_sequence_header());
        assert_eq!(t.body_offset, 5);
    }

    #[test]
    fn enhanced_coded_frames_x_has_no_composition_time() {
        let p = [0x93, b'h', b'v', b'c', b'1', 0, 0, 0, 1];
        let t = parse_video(&p).unwrap();
        assert!(t.is_keyframe());
        assert_eq!(t.composition_time_ms, 0);
        assert_eq!(t.body_offset, 5);
    }

    #[test]
    fn enhanced_coded_frames_hevc_reads_composition_time() {
        let p = [0xa1, b'h', b'v', b'c', b'1', 0x00, 0x00, 0x21, 9];
        let t = parse_video(&p).unwrap();
        assert_eq!(t.frame, FrameType::Inter);
        assert_eq!(t.composition_time_ms, 33);
        assert_eq!(t.body_offset, 8);
    }

    #[test]
    fn enhanced_av1_coded_frames_have_no_composition_time() {
        let p = [0x91, b'a', b'v', b'0', b'1', 0x12, 0x00];
        let t = parse_video(&p).unwrap();
        assert_eq!(t.codec.fourcc(), Some(FourCc::AV01));
        assert_eq!(t.body_offset, 5);
        assert!(t.is_keyframe());
    }

    #[test]
    fn enhanced_metadata_and_sequence_end() {
        let t = parse_video(&[0x94, b'a', b'v', b'0', b'1', 2]).unwrap();
        assert_eq!(t.packet, VideoPacket::Metadata);
        let t = parse_video(&[0x92, b'v', b'p', b'0', b'9']).unwrap();
        assert_eq!(t.packet, VideoPacket::EndOfSequence);
        let t = parse_video(&[0x95, b'a', b'v', b'0', b'1']).unwrap();
        assert_eq!(t.packet, VideoPacket::Other(5));
    }

    #[test]
    fn enhanced_modex_is_skipped() {
        // ModEx: size 3 (2+1), data, then type nibble 0 + packet type CodedFramesX.
        let p = [
            0x97, 0x02, 0xaa, 0xbb, 0xcc, 0x03, b'a', b'v', b'0', b'1', 7,
        ];
        let t = parse_video(&p).unwrap();
        assert_eq!(t.packet, VideoPacket::Frame);
        assert_eq!(t.codec.fourcc(), Some(FourCc::AV01));
        assert_eq!(t.body_offset, 10);
    }

    #[test]
    fn enhanced_modex_with_16_bit_size() {
        let mut p = vec![0x97, 0xff, 0x01, 0x00]; // size 0x0100 + 1 = 257
        p.extend(std::iter::repeat_n(0u8, 257));
        p.extend([0x00, b'h', b'v', b'c', b'1']);
        let t = parse_video(&p).unwrap();
        assert!(t.is_sequence_header());
        assert_eq!(t.body_offset, p.len());
    }

    #[test]
    fn endless_modex_chain_is_refused() {
        let mut p = vec![0x97];
        for _ in 0..100 {
            p.extend([0x00, 0x00, 0x07]);
        }
        assert_eq!(parse_video(&p), Err(FlvError::TooManyModEx));
    }

    #[test]
    fn enhanced_command_frame_has_no_fourcc() {
        let t = parse_video(&[0xd1, 0x00]).unwrap();
        assert_eq!(t.frame, FrameType::Command);
        assert_eq!(t.packet, VideoPacket::Command(0));
        assert!(!t.is_keyframe());
    }

    #[test]
    fn enhanced_multitrack_one_track() {
        // Multitrack, OneTrack + CodedFrames, avc1, track 1, then CT.
        let p = [
            0x96, 0x01, b'a', b'v', b'c', b'1', 0x01, 0x00, 0x00, 0x00, 0x65,
        ];
        let t = parse_video(&p).unwrap();
        let m = t.multitrack.unwrap();
        assert_eq!(m.kind, MultitrackKind::OneTrack);
        assert_eq!(m.first_track_id, 1);
        assert_eq!(t.codec.fourcc(), Some(FourCc::AVC1));
        assert_eq!(t.packet, VideoPacket::Frame);
        assert_eq!(t.body_offset, 10);
    }

    #[test]
    fn enhanced_multitrack_many_codecs_reads_fourcc_per_track() {
        let p = [
            0x96, 0x20, b'h', b'v', b'c', b'1', 0x00, 0x00, 0x00, 0x02, 0xaa, 0xbb,
        ];
        let t = parse_video(&p).unwrap();
        assert_eq!(
            t.multitrack.unwrap().kind,
            MultitrackKind::ManyTracksManyCodecs
        );
        assert!(t.is_sequence_header());
        assert_eq!(t.codec.fourcc(), Some(FourCc::HVC1));
        assert_eq!(t.body_offset, 10);
    }

    #[test]
    fn nested_multitrack_is_refused() {
        let p = [0x96, 0x06, b'a', b'v', b'c', b'1', 0];
        assert_eq!(parse_video(&p), Err(FlvError::NestedMultitrack));
    }

    #[test]
    fn invalid_frame_types_are_refused() {
        assert_eq!(parse_video(&[0x07]), Err(FlvError::InvalidFrameType(0)));
        assert_eq!(parse_video(&[0x67]), Err(FlvError::InvalidFrameType(6)));
        assert_eq!(parse_video(&[0xf0]), Err(FlvError::InvalidFrameType(7)));
    }

    #[test]
    fn truncated_video_headers_are_errors() {
        assert_eq!(parse_video(&[]), Err(FlvError::Empty("video")));
        for p in [
            &[0x17][..],
            &[0x17, 0x01, 0x00],
            &[0x90, b'h', b'v'],
            &[0x91, b'h', b'v', b'c', b'1', 0x00],
            &[0x97, 0x05, 0x00],
            &[0x97, 0xff, 0x01],
            &[0x96, 0x10, b'a', b'v', b'c', b'1', 0x00, 0x00],
            &[0x57],
        ] {
            assert!(
                matches!(parse_video(p), Err(FlvError::Truncated(_))),
                "{p:02x?}"
            );
        }
    }

    #[test]
    fn no_video_prefix_panics() {
        let p = [
            0x96, 0x21, b'h', b'v', b'c', b'1', 0x00, 0x00, 0x00, 0x02, 0xaa, 0xbb,
        ];
        for b0 in 0..=255u8 {
            let mut q = p;
            q[0] = b0;
            for n in 0..=q.len() {
                let _ = parse_video(&q[..n]);
                let _ = parse_audio(&q[..n]);
            }
        }
    }

    #[test]
    fn legacy_aac_header_and_frame() {
        let t = parse_audio(&[0xaf, 0x00, 0x12, 0x10]).unwrap();
        assert_eq!(t.codec, AudioCodec::FourCc(FourCc::MP4A));
        assert!(t.is_sequence_header());
        assert_eq!(t.body_offset, 2);
        assert_eq!(
            t.legacy,
            Some(LegacyAudioFormat {
                sample_rate: 44100,
                sample_bits: 16,
                channels: 2
            })
        );
        let t = parse_audio(&[0xaf, 0x01, 0x21]).unwrap();
        assert_eq!(t.packet, AudioPacket::Frame);
        assert!(!t.is_sequence_header());
    }

    #[test]
    fn legacy_mp3_and_g711_formats() {
        let t = parse_audio(&[0x2e, 0xff]).unwrap();
        assert_eq!(t.codec.fourcc(), Some(FourCc::MP3));
        assert_eq!(t.body_offset, 1);
        let t = parse_audio(&[0xe2, 0xff]).unwrap();
        assert_eq!(t.codec.fourcc(), Some(FourCc::MP3));
        assert_eq!(t.legacy.unwrap().sample_rate, 8000);
        let t = parse_audio(&[0x72, 0xff]).unwrap();
        assert_eq!(t.codec, AudioCodec::Legacy(7));
        assert_eq!(t.codec.name(), "G711A");
        assert_eq!(t.legacy.unwrap().channels, 1);
        let t = parse_audio(&[0xb2, 0xff]).unwrap();
        assert_eq!(t.codec.name(), "Speex");
    }

    #[test]
    fn enhanced_opus_sequence_start_and_frames() {
        let t = parse_audio(&[0x90, b'O', b'p', b'u', b's', 1, 2]).unwrap();
        assert_eq!(t.codec.fourcc(), Some(FourCc::OPUS));
        assert!(t.is_sequence_header());
        assert_eq!(t.body_offset, 5);
        assert!(t.legacy.is_none());
        let t = parse_audio(&[0x91, b'O', b'p', b'u', b's', 1]).unwrap();
        assert_eq!(t.packet, AudioPacket::Frame);
        let t = parse_audio(&[0x92, b'f', b'L', b'a', b'C']).unwrap();
        assert_eq!(t.packet, AudioPacket::EndOfSequence);
        let t = parse_audio(&[0x94, b'a', b'c', b'-', b'3', 0]).unwrap();
        assert_eq!(t.packet, AudioPacket::MultichannelConfig);
    }

    #[test]
    fn enhanced_audio_multitrack_and_modex() {
        let t = parse_audio(&[0x95, 0x11, b'm', b'p', b'4', b'a', 2, 0, 0, 1, 0x21]).unwrap();
        let m = t.multitrack.unwrap();
        assert_eq!(m.kind, MultitrackKind::ManyTracks);
        assert_eq!(m.first_track_id, 2);
        assert_eq!(t.packet, AudioPacket::Frame);
        assert_eq!(t.body_offset, 10);
        let t = parse_audio(&[0x97, 0x00, 0x00, 0x01, b'.', b'm', b'p', b'3', 0xff]).unwrap();
        assert_eq!(t.codec.fourcc(), Some(FourCc::MP3));
        assert_eq!(t.body_offset, 8);
        assert_eq!(
            parse_audio(&[0x95, 0x05, b'm', b'p', b'4', b'a', 0]),
            Err(FlvError::NestedMultitrack)
        );
    }

    #[test]
    fn truncated_audio_headers_are_errors() {
        assert_eq!(parse_audio(&[]), Err(FlvError::Empty("audio")));
        assert!(matches!(parse_audio(&[0xaf]), Err(FlvError::Truncated(_))));
        assert!(matches!(
            parse_audio(&[0x90, b'O', b'p']),
            Err(FlvError::Truncated(_))
        ));
        assert!(matches!(
            parse_audio(&[0x97, 0x03, 0x00]),
            Err(FlvError::Truncated(_))
        ));
    }

    #[test]
    fn aac_lc_44100_stereo() {
        let c = parse_audio_specific_config(&[0x12, 0x10]).unwrap();
        assert_eq!(c.object_type, 2);
        assert_eq!(c.sample_rate, 44100);
        assert_eq!(c.channel_config, 2);
        assert!(!c.sbr && !c.ps);
        assert_eq!(c.profile_name(), "LC");
        assert_eq!(c.output_sample_rate(), 44100);
        assert_eq!(c.output_channels(), 2);
    }

    #[test]
    fn aac_lc_48000_stereo() {
        let c = parse_audio_specific_config(&[0x11, 0x90]).unwrap();
        assert_eq!(c.object_type, 2);
        assert_eq!(c.sample_rate_index, 3);
        assert_eq!(c.sample_rate, 48000);
        assert_eq!(c.channel_config, 2);
    }

    #[test]
    fn he_aac_hierarchical_signalling() {
        let c = parse_audio_specific_config(&[0x2b, 0x11, 0x88, 0x00]).unwrap();
        assert_eq!(c.object_type, 5);
        assert_eq!(c.core_object_type, 2);
        assert_eq!(c.sample_rate, 24000);
        assert_eq!(c.extension_sample_rate, Some(48000));
        assert!(c.sbr && !c.ps);
        assert_eq!(c.profile_name(), "HE");
        assert_eq!(c.output_sample_rate(), 48000);
    }

    #[test]
    fn he_aac_v2_hierarchical_signalling() {
        let c = parse_audio_specific_config(&[0xeb, 0x09, 0x88, 0x00]).unwrap();
        assert_eq!(c.object_type, 29);
        assert_eq!(c.core_object_type, 2);
        assert!(c.sbr && c.ps);
        assert_eq!(c.profile_name(), "HEv2");
        assert_eq!(c.channel_config, 1);
        assert_eq!(c.output_channels(), 2);
    }

    #[test]
    fn he_aac_backward_compatible_signalling() {
        let c = parse_audio_specific_config(&[0x13, 0x10, 0x56, 0xe5, 0x98]).unwrap();
        assert_eq!(c.object_type, 2);
        assert_eq!(c.sample_rate, 24000);
        assert!(c.sbr);
        assert_eq!(c.extension_sample_rate, Some(48000));
        assert_eq!(c.profile_name(), "HE");
    }

    #[test]
    fn aac_escape_object_type_and_explicit_rate() {
        // AOT 31 escape + 6 bits (2 -> 34), index 15 + explicit 24-bit rate, channel config 1.
        let bits = format!("11111{:06b}1111{:024b}0001", 2, 48000);
        let mut bytes = Vec::new();
        for chunk in bits.as_bytes().chunks(8) {
            let mut b = 0u8;
            for (i, c) in chunk.iter().enumerate() {
                if *c == b'1' {
                    b |= 0x80 >> i;
                }
            }
            bytes.push(b);
        }
        let c = parse_audio_specific_config(&bytes).unwrap();
        assert_eq!(c.object_type, 34);
        assert_eq!(c.sample_rate_index, 15);
        assert_eq!(c.sample_rate, 48000);
        assert_eq!(c.channel_config, 1);
    }

    #[test]
    fn aac_reserved_rate_index_and_truncation_are_errors() {
        // AOT 2, index 13.
        assert_eq!(
            parse_audio_specific_config(&[0x16, 0x80]),
            Err(FlvError::InvalidSampleRateIndex(13))
        );
        assert!(matches!(
            parse_audio_specific_config(&[0x12]),
            Err(FlvError::Truncated(_))
        ));
        assert!(matches!(
            parse_audio_specific_config(&[]),
            Err(FlvError::Truncated(_))
        ));
        assert!(matches!(
            parse_audio_specific_config(&[0x2b, 0x11]),
            Err(FlvError::Truncated(_))
        ));
    }

    fn avc_config_bytes() -> Vec<u8> {
        let sps = [0x67, 0x64, 0x00, 0x1f, 0xac];
        let pps = [0x68, 0xee, 0x3c, 0x80];
        let mut v = vec![0x01, 0x64, 0x00, 0x1f, 0xff, 0xe1, 0x00, sps.len() as u8];
        v.extend(sps);
        v.extend([0x01, 0x00, pps.len() as u8]);
        v.extend(pps);
        v
    }

    #[test]
    fn avc_decoder_config_is_parsed() {
        let c = parse_avc_decoder_config(&avc_config_bytes()).unwrap();
        assert_eq!(c.profile_idc, 100);
        assert_eq!(c.profile_name(), "High");
        assert_eq!(c.level_idc, 31);
        assert_eq!(c.nal_length_size, 4);
        assert_eq!(c.sps.len(), 1);
        assert_eq!(&c.sps[0][..], &[0x67, 0x64, 0x00, 0x1f, 0xac]);
        assert_eq!(c.pps.len(), 1);
        assert_eq!(&c.pps[0][..], &[0x68, 0xee, 0x3c, 0x80]);
        assert_eq!(avc_profile_name(66), "Baseline");
        assert_eq!(avc_profile_name(77), "Main");
    }

    #[test]
    fn truncated_avc_config_is_an_error_at_every_length() {
        let full = avc_config_bytes();
        for n in 0..full.len() {
            assert!(
                matches!(
                    parse_avc_decoder_config(&full[..n]),
                    Err(FlvError::Truncated(_))
                ),
                "length {n}"
            );
        }
    }

    #[test]
    fn avc_config_with_bad_version_or_too_many_pps_is_refused() {
        let mut v = avc_config_bytes();
        v[0] = 0;
        assert_eq!(
            parse_avc_decoder_config(&v),
            Err(FlvError::AvcConfigVersion(0))
        );
        let v = [1, 66, 0, 30, 0xff, 0xe0, 200];
        assert_eq!(
            parse_avc_decoder_config(&v),
            Err(FlvError::TooManyParameterSets(200))
        );
    }

    #[test]
    fn fourcc_displays_as_text_or_hex() {
        assert_eq!(FourCc::OPUS.to_string(), "Opus");
        assert_eq!(FourCc([0, 1, 2, 3]).to_string(), "0x00010203");
        assert_eq!(format!("{:?}", FourCc::HVC1), "FourCc(hvc1)");
    }
}
