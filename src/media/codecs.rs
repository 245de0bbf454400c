//! The codecs Enhanced RTMP adds to H.264 and AAC: HEVC, AV1 and VP9 video, Opus, FLAC,
//! AC-3 and E-AC-3 audio. Each configuration (the body of a SequenceStart, or for AC-3 and
//! E-AC-3, which have none, the first frame) is parsed and checked here once, with named
//! limits, into what the fMP4 sample entries, the manifests (RFC 6381 `CODECS`) and `/stat`
//! need. Per-frame helpers give the duration of an audio frame and check a video frame.

use std::fmt::Write as _;

use thiserror::Error;

/// Largest configuration record accepted (parameter sets of real encoders are a few KB).
pub const MAX_CONFIG_LEN: usize = 64 * 1024;
/// Largest parameter sets of one kind in an hvcC.
pub const MAX_HEVC_NALUS: usize = 32;
/// Largest picture side believed from a sequence header (AV1 and HEVC allow 65536).
pub const MAX_DIMENSION: u32 = 16_384;
/// Opus always decodes at 48 kHz: its timescale.
pub const OPUS_RATE: u32 = 48_000;
/// Longest Opus packet (RFC 6716: 120 ms).
pub const MAX_OPUS_PACKET_TICKS: u32 = OPUS_RATE / 1000 * 120;
/// Samples of one AC-3 sync frame.
pub const AC3_FRAME_SAMPLES: u32 = 1536;
/// Bytes of a FLAC STREAMINFO block.
pub const FLAC_STREAMINFO_LEN: usize = 34;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum CodecError {
    #[error("{0}: truncated")]
    Truncated(&'static str),
    #[error("{0}: invalid")]
    Invalid(&'static str),
    #[error("{0}: unsupported version {1}")]
    Version(&'static str, u8),
    #[error("configuration record of {0} bytes is too large")]
    TooLarge(usize),
}

/// MSB-first reader over bytes, checked.
struct Bits<'a> {
    data: &'a [u8],
    bit: usize,
    what: &'static str,
}

impl<'a> Bits<'a> {
    fn new(data: &'a [u8], what: &'static str) -> Self {
        Bits { data, bit: 0, what }
    }

    fn read(&mut self, n: u32) -> Result<u32, CodecError> {
        debug_assert!(n <= 32);
        let mut v: u64 = 0;
        for _ in 0..n {
            let byte = self
                .data
                .get(self.bit / 8)
                .ok_or(CodecError::Truncated(self.what))?;
            v = (v << 1) | u64::from((byte >> (7 - (self.bit % 8))) & 1);
            self.bit += 1;
        }
        Ok(v as u32)
    }

    fn flag(&mut self) -> Result<bool, CodecError> {
        Ok(self.read(1)? == 1)
    }

    fn skip(&mut self, n: usize) -> Result<(), CodecError> {
        let end = self.bit.saturating_add(n);
        if end > self.data.len().saturating_mul(8) {
            return Err(CodecError::Truncated(self.what));
        }
        self.bit = end;
        Ok(())
    }

    /// Exp-Golomb unsigned (H.265 `ue(v)`), at most 32 leading zeros.
    fn ue(&mut self) -> Result<u32, CodecError> {
        let mut zeros = 0;
        while !self.flag()? {
            zeros += 1;
            if zeros > 31 {
                return Err(CodecError::Invalid(self.what));
            }
        }
        let rest = self.read(zeros)?;
        Ok(((1u64 << zeros) - 1 + u64::from(rest)).min(u64::from(u32::MAX)) as u32)
    }
}

/// An H.26x NAL unit payload without emulation prevention bytes (00 00 03 -> 00 00).
fn rbsp(nal: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nal.len());
    let mut zeros = 0;
    for &b in nal {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

fn byte(data: &[u8], at: usize, what: &'static str) -> Result<u8, CodecError> {
    data.get(at).copied().ok_or(CodecError::Truncated(what))
}

fn check_len(record: &[u8]) -> Result<(), CodecError> {
    if record.len() > MAX_CONFIG_LEN {
        return Err(CodecError::TooLarge(record.len()));
    }
    Ok(())
}

fn plausible(width: u32, height: u32) -> Option<(u32, u32)> {
    ((1..=MAX_DIMENSION).contains(&width) && (1..=MAX_DIMENSION).contains(&height))
        .then_some((width, height))
}

// ---- HEVC ----

/// What an HEVCDecoderConfigurationRecord (hvcC) says, and the picture size of its SPS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HevcConfig {
    pub profile_space: u8,
    pub tier_high: bool,
    pub profile_idc: u8,
    pub compatibility: u32,
    pub constraints: [u8; 6],
    pub level_idc: u8,
    pub chroma_format: u8,
    pub bit_depth: u8,
    pub nal_length_size: u8,
    /// From the SPS, cropping applied; 0x0 when there is no readable SPS.
    pub width: u32,
    pub height: u32,
}

const HEVC_NAL_SPS: u8 = 33;
const HVCC_HEADER_LEN: usize = 23;

/// Parses and checks an hvcC (ISO/IEC 14496-15): every NAL unit array inside the record.
pub fn parse_hevc_config(record: &[u8]) -> Result<HevcConfig, CodecError> {
    const WHAT: &str = "hvcC";
    check_len(record)?;
    let head = record
        .get(..HVCC_HEADER_LEN)
        .ok_or(CodecError::Truncated(WHAT))?;
    let [version, ptl, c0, c1, c2, c3, k0, k1, k2, k3, k4, k5, level, _, _, _, chroma, luma, _, _, _, length, arrays] =
        <[u8; HVCC_HEADER_LEN]>::try_from(head).map_err(|_| CodecError::Truncated(WHAT))?;
    if version != 1 {
        return Err(CodecError::Version(WHAT, version));
    }
    let mut config = HevcConfig {
        profile_space: ptl >> 6,
        tier_high: ptl & 0x20 != 0,
        profile_idc: ptl & 0x1f,
        compatibility: u32::from_be_bytes([c0, c1, c2, c3]),
        constraints: [k0, k1, k2, k3, k4, k5],
        level_idc: level,
        chroma_format: chroma & 0x03,
        bit_depth: (luma & 0x07) + 8,
        nal_length_size: (length & 0x03) + 1,
        width: 0,
        height: 0,
    };
    let mut pos = HVCC_HEADER_LEN;
    for _ in 0..arrays {
        let nal_type = byte(record, pos, WHAT)? & 0x3f;
        let count =
            u16::from_be_bytes([byte(record, pos + 1, WHAT)?, byte(record, pos + 2, WHAT)?]);
        pos += 3;
        if usize::from(count) > MAX_HEVC_NALUS {
            return Err(CodecError::Invalid("hvcC NAL unit count"));
        }
        for _ in 0..count {
            let len = usize::from(u16::from_be_bytes([
                byte(record, pos, WHAT)?,
                byte(record, pos + 1, WHAT)?,
            ]));
            let nal = record
                .get(pos + 2..pos + 2 + len)
                .ok_or(CodecError::Truncated(WHAT))?;
            pos += 2 + len;
            if nal_type == HEVC_NAL_SPS && config.width == 0 {
                if let Some((w, h)) = hevc_sps_size(nal).ok().and_then(|(w, h)| plausible(w, h)) {
                    config.width = w;
                    config.height = h;
                }
            }
        }
    }
    Ok(config)
}

/// Skips a profile_tier_level() of H.265 7.3.3 with profilePresentFlag 1.
fn skip_profile_tier_level(r: &mut Bits<'_>, max_sub_layers_minus1: u32) -> Result<(), CodecError> {
    r.skip(88 + 8)?; // general profile (88 bits) and level
    let mut present = [(false, false); 8];
    for p in present.iter_mut().take(max_sub_layers_minus1 as usize) {
        *p = (r.flag()?, r.flag()?);
    }
    if max_sub_layers_minus1 > 0 {
        r.skip(2 * (8 - max_sub_layers_minus1 as usize))?;
    }
    for (profile, level) in present.iter().take(max_sub_layers_minus1 as usize) {
        if *profile {
            r.skip(88)?;
        }
        if *level {
            r.skip(8)?;
        }
    }
    Ok(())
}

/// Picture size of an H.265 SPS NAL unit (with its 2-byte header), conformance window
/// applied.
fn hevc_sps_size(nal: &[u8]) -> Result<(u32, u32), CodecError> {
    let data = rbsp(nal.get(2..).ok_or(CodecError::Truncated("SPS"))?);
    let mut r = Bits::new(&data, "HEVC SPS");
    r.skip(4)?; // sps_video_parameter_set_id
    let max_sub_layers_minus1 = r.read(3)?;
    if max_sub_layers_minus1 > 6 {
        return Err(CodecError::Invalid("HEVC SPS sub-layers"));
    }
    r.skip(1)?;
    skip_profile_tier_level(&mut r, max_sub_layers_minus1)?;
    r.ue()?; // sps_seq_parameter_set_id
    let chroma = r.ue()?;
    if chroma > 3 {
        return Err(CodecError::Invalid("HEVC chroma format"));
    }
    let separate_planes = chroma == 3 && r.flag()?;
    let width = r.ue()?;
    let height = r.ue()?;
    let (sub_w, sub_h) = match (chroma, separate_planes) {
        (1, _) => (2, 2),
        (2, _) => (2, 1),
        _ => (1, 1),
    };
    let (mut w, mut h) = (width, height);
    if r.flag()? {
        let (left, right, top, bottom) = (r.ue()?, r.ue()?, r.ue()?, r.ue()?);
        let crop_w = left.saturating_add(right).saturating_mul(sub_w);
        let crop_h = top.saturating_add(bottom).saturating_mul(sub_h);
        w = w.saturating_sub(crop_w);
        h = h.saturating_sub(crop_h);
    }
    Ok((w, h))
}

impl HevcConfig {
    /// RFC 6381 / ISO 14496-15 E.3: `hvc1.1.6.L93.B0`.
    pub fn codec_string(&self) -> String {
        let space = match self.profile_space {
            1 => "A",
            2 => "B",
            3 => "C",
            _ => "",
        };
        let mut s = format!(
            "hvc1.{space}{}.{:X}.{}{}",
            self.profile_idc,
            self.compatibility.reverse_bits(),
            if self.tier_high { 'H' } else { 'L' },
            self.level_idc
        );
        let used = self
            .constraints
            .iter()
            .rposition(|b| *b != 0)
            .map_or(0, |i| i + 1);
        for b in self.constraints.iter().take(used) {
            let _ = write!(s, ".{b:X}");
        }
        s
    }

    pub fn profile_name(&self) -> &'static str {
        match self.profile_idc {
            1 => "Main",
            2 => "Main 10",
            3 => "Main Still Picture",
            4 => "Range Extensions",
            _ => "",
        }
    }

    /// Level as the spec writes it (level_idc / 30: 4.1 for 123).
    pub fn level(&self) -> f32 {
        f32::from(self.level_idc) / 30.0
    }
}

// ---- AV1 ----

/// What an AV1CodecConfigurationRecord (av1C) says, and the maximum frame size of the
/// sequence header OBU in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Av1Config {
    pub profile: u8,
    pub level_idx: u8,
    pub tier_high: bool,
    pub bit_depth: u8,
    pub monochrome: bool,
    /// 0x0 when the record carries no sequence header.
    pub width: u32,
    pub height: u32,
}

const OBU_SEQUENCE_HEADER: u8 = 1;
const OBU_TEMPORAL_DELIMITER: u8 = 2;

/// Parses and checks an av1C (AV1-ISOBMFF 2.3).
pub fn parse_av1_config(record: &[u8]) -> Result<Av1Config, CodecError> {
    const WHAT: &str = "av1C";
    check_len(record)?;
    let marker = byte(record, 0, WHAT)?;
    if marker != 0x81 {
        return Err(CodecError::Version(WHAT, marker));
    }
    let b1 = byte(record, 1, WHAT)?;
    let b2 = byte(record, 2, WHAT)?;
    byte(record, 3, WHAT)?;
    let twelve = b2 & 0x20 != 0;
    let high = b2 & 0x40 != 0;
    let mut config = Av1Config {
        profile: b1 >> 5,
        level_idx: b1 & 0x1f,
        tier_high: b2 & 0x80 != 0,
        bit_depth: match (high, twelve) {
            (true, true) => 12,
            (true, false) => 10,
            _ => 8,
        },
        monochrome: b2 & 0x10 != 0,
        width: 0,
        height: 0,
    };
    let mut obus = record.get(4..).unwrap_or_default();
    while let Some((obu_type, payload, rest)) = next_obu(obus)? {
        if obu_type == OBU_SEQUENCE_HEADER {
            if let Some((w, h)) = av1_max_frame_size(payload)
                .ok()
                .and_then(|(w, h)| plausible(w, h))
            {
                config.width = w;
                config.height = h;
            }
            break;
        }
        obus = rest;
    }
    Ok(config)
}

/// Unsigned LEB128 of at most 8 bytes: (value, bytes read).
fn leb128(data: &[u8]) -> Result<(u64, usize), CodecError> {
    let mut v: u64 = 0;
    for i in 0..8 {
        let b = byte(data, i, "OBU size")?;
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok((v, i + 1));
        }
    }
    Err(CodecError::Invalid("OBU size"))
}

/// An OBU: (type, payload, the bytes after it).
type Obu<'a> = (u8, &'a [u8], &'a [u8]);

/// The next OBU of a low-overhead bitstream: (type, payload, what follows). An OBU without
/// a size field runs to the end.
fn next_obu(data: &[u8]) -> Result<Option<Obu<'_>>, CodecError> {
    let Some(&header) = data.first() else {
        return Ok(None);
    };
    if header & 0x80 != 0 {
        return Err(CodecError::Invalid("OBU header"));
    }
    let obu_type = (header >> 3) & 0x0f;
    let mut pos = 1 + usize::from(header & 0x04 != 0);
    let rest = data.get(pos..).ok_or(CodecError::Truncated("OBU"))?;
    if header & 0x02 == 0 {
        return Ok(Some((obu_type, rest, &[])));
    }
    let (size, n) = leb128(rest)?;
    pos += n;
    let size = usize::try_from(size).map_err(|_| CodecError::Invalid("OBU size"))?;
    let end = pos
        .checked_add(size)
        .ok_or(CodecError::Invalid("OBU size"))?;
    let payload = data.get(pos..end).ok_or(CodecError::Truncated("OBU"))?;
    Ok(Some((
        obu_type,
        payload,
        data.get(end..).unwrap_or_default(),
    )))
}

/// `max_frame_width/height` of an AV1 sequence header OBU payload (AV1 5.5).
fn av1_max_frame_size(seq: &[u8]) -> Result<(u32, u32), CodecError> {
    let mut r = Bits::new(seq, "AV1 sequence header");
    r.skip(3)?; // seq_profile
    r.skip(1)?; // still_picture
    let reduced = r.flag()?;
    if reduced {
        r.skip(5)?;
    } else {
        let mut decoder_model = false;
        let mut buffer_delay_len = 0;
        if r.flag()? {
            // timing_info
            r.skip(64)?;
            if r.flag()? {
                // num_ticks_per_picture_minus_1: uvlc
                let mut zeros = 0;
                while !r.flag()? {
                    zeros += 1;
                    if zeros >= 32 {
                        return Err(CodecError::Invalid("AV1 uvlc"));
                    }
                }
                r.skip(zeros)?;
            }
            decoder_model = r.flag()?;
            if decoder_model {
                buffer_delay_len = r.read(5)? as usize + 1;
                r.skip(32 + 5 + 5)?;
            }
        }
        let initial_display_delay = r.flag()?;
        let points = r.read(5)? + 1;
        for _ in 0..points {
            r.skip(12)?;
            if r.read(5)? > 7 {
                r.skip(1)?;
            }
            if decoder_model && r.flag()? {
                r.skip(2 * buffer_delay_len + 1)?;
            }
            if initial_display_delay && r.flag()? {
                r.skip(4)?;
            }
        }
    }
    let wbits = r.read(4)? + 1;
    let hbits = r.read(4)? + 1;
    let w = r.read(wbits)?.saturating_add(1);
    let h = r.read(hbits)?.saturating_add(1);
    Ok((w, h))
}

/// An AV1 sample without its leading temporal delimiters, which ISOBMFF does not allow in
/// samples (the ones encoders put first are sliced off; nothing is copied).
pub fn av1_sample_start(frame: &[u8]) -> usize {
    let mut pos = 0;
    while let Ok(Some((OBU_TEMPORAL_DELIMITER, _, rest))) =
        next_obu(frame.get(pos..).unwrap_or_default())
    {
        pos = frame.len() - rest.len();
        if rest.is_empty() {
            break;
        }
    }
    pos
}

impl Av1Config {
    /// AV1-ISOBMFF codecs parameter: `av01.0.04M.08`.
    pub fn codec_string(&self) -> String {
        format!(
            "av01.{}.{:02}{}.{:02}",
            self.profile,
            self.level_idx,
            if self.tier_high { 'H' } else { 'M' },
            self.bit_depth
        )
    }

    pub fn profile_name(&self) -> &'static str {
        match self.profile {
            0 => "Main",
            1 => "High",
            2 => "Professional",
            _ => "",
        }
    }
}

// ---- VP9 ----

/// What a VPCodecConfigurationRecord (vpcC, version 1) says. VP9 has no sequence header:
/// the picture size comes from the first keyframe ([`vp9_keyframe_size`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vp9Config {
    pub profile: u8,
    pub level: u8,
    pub bit_depth: u8,
    pub chroma_subsampling: u8,
    pub full_range: bool,
    pub colour_primaries: u8,
    pub transfer: u8,
    pub matrix: u8,
}

/// Parses a vpcC FullBox body (version 1, as Enhanced RTMP and ffmpeg send it).
pub fn parse_vp9_config(record: &[u8]) -> Result<Vp9Config, CodecError> {
    const WHAT: &str = "vpcC";
    check_len(record)?;
    let version = byte(record, 0, WHAT)?;
    if version != 1 {
        return Err(CodecError::Version(WHAT, version));
    }
    let b = |i| byte(record, i, WHAT);
    let depth = b(6)?;
    let config = Vp9Config {
        profile: b(4)?,
        level: b(5)?,
        bit_depth: depth >> 4,
        chroma_subsampling: (depth >> 1) & 0x07,
        full_range: depth & 1 != 0,
        colour_primaries: b(7)?,
        transfer: b(8)?,
        matrix: b(9)?,
    };
    b(11)?; // codecInitializationDataSize (0 for VP9)
    if config.profile > 3 || !matches!(config.bit_depth, 8 | 10 | 12) {
        return Err(CodecError::Invalid(WHAT));
    }
    Ok(config)
}

/// Frame size of a VP9 keyframe (VP9 bitstream 6.2, uncompressed header); `None` for
/// anything else.
pub fn vp9_keyframe_size(frame: &[u8]) -> Option<(u32, u32)> {
    let mut r = Bits::new(frame, "VP9 frame");
    if r.read(2).ok()? != 2 {
        return None;
    }
    let profile = r.read(1).ok()? | (r.read(1).ok()? << 1);
    if profile == 3 {
        r.skip(1).ok()?;
    }
    // show_existing_frame, then frame_type 0 = key
    if r.flag().ok()? || r.flag().ok()? {
        return None;
    }
    r.skip(2).ok()?;
    if r.read(24).ok()? != 0x49_83_42 {
        return None;
    }
    if profile >= 2 {
        r.skip(1).ok()?;
    }
    let colour_space = r.read(3).ok()?;
    if colour_space != 7 {
        r.skip(1).ok()?;
        if profile == 1 || profile == 3 {
            r.skip(3).ok()?;
        }
    } else if profile == 1 || profile == 3 {
        r.skip(1).ok()?;
    }
    let w = r.read(16).ok()? + 1;
    let h = r.read(16).ok()? + 1;
    plausible(w, h)
}

impl Vp9Config {
    /// VP9-ISOBMFF codecs parameter, short form (`vp09.00.21.08`): the long form's colour
    /// fields are optional, and some players refuse their "unspecified" values.
    pub fn codec_string(&self) -> String {
        format!(
            "vp09.{:02}.{:02}.{:02}",
            self.profile, self.level, self.bit_depth
        )
    }
}

// ---- Opus ----

/// The Opus identification header (RFC 7845 5.1), what a dOps box carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpusConfig {
    pub channels: u8,
    pub pre_skip: u16,
    pub input_rate: u32,
    pub gain: i16,
    /// Channel mapping family and, for families other than 0, stream count, coupled count
    /// and the mapping table.
    pub family: u8,
    pub streams: u8,
    pub coupled: u8,
    pub mapping: Vec<u8>,
}

/// Parses an `OpusHead` packet (what Enhanced RTMP carries), or the body of a dOps box.
pub fn parse_opus_config(body: &[u8]) -> Result<OpusConfig, CodecError> {
    const WHAT: &str = "OpusHead";
    check_len(body)?;
    let b = |i| byte(body, i, WHAT);
    let le = |i| -> Result<u16, CodecError> { Ok(u16::from_le_bytes([b(i)?, b(i + 1)?])) };
    let be = |i| -> Result<u16, CodecError> { Ok(u16::from_be_bytes([b(i)?, b(i + 1)?])) };
    let (channels, pre_skip, input_rate, gain, family, table) = if body.starts_with(b"OpusHead") {
        let version = b(8)?;
        if version >> 4 != 0 {
            return Err(CodecError::Version(WHAT, version));
        }
        let rate = u32::from(le(12)?) | (u32::from(le(14)?) << 16);
        (b(9)?, le(10)?, rate, le(16)? as i16, b(18)?, 19)
    } else {
        let version = b(0)?;
        if version != 0 {
            return Err(CodecError::Version("dOps", version));
        }
        let rate = (u32::from(be(4)?) << 16) | u32::from(be(6)?);
        (b(1)?, be(2)?, rate, be(8)? as i16, b(10)?, 11)
    };
    if channels == 0 || (family == 0 && channels > 2) {
        return Err(CodecError::Invalid("Opus channel count"));
    }
    let mut config = OpusConfig {
        channels,
        pre_skip,
        input_rate,
        gain,
        family,
        streams: 1,
        coupled: u8::from(channels == 2),
        mapping: Vec::new(),
    };
    if family != 0 {
        config.streams = b(table)?;
        config.coupled = b(table + 1)?;
        config.mapping = body
            .get(table + 2..table + 2 + usize::from(channels))
            .ok_or(CodecError::Truncated(WHAT))?
            .to_vec();
        if config.streams == 0 || config.coupled > config.streams {
            return Err(CodecError::Invalid("Opus stream counts"));
        }
    }
    Ok(config)
}

/// Duration of an Opus packet in 48 kHz ticks, from its TOC byte (RFC 6716 3.1).
pub fn opus_packet_ticks(packet: &[u8]) -> Option<u32> {
    let toc = *packet.first()?;
    let config = u32::from(toc >> 3);
    // Frame size in 48 kHz ticks (2.5 ms = 120).
    let frame = match config {
        0..=11 => match config % 4 {
            0 => 480,
            1 => 960,
            2 => 1920,
            _ => 2880,
        },
        12..=15 => 480 << (config % 2),
        _ => 120 << (config % 4),
    };
    let frames = match toc & 0x03 {
        0 => 1,
        1 | 2 => 2,
        _ => u32::from(*packet.get(1)? & 0x3f),
    };
    let ticks = frame * frames;
    (1..=MAX_OPUS_PACKET_TICKS)
        .contains(&ticks)
        .then_some(ticks)
}

// ---- FLAC ----

/// A FLAC STREAMINFO (RFC 9639 8.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlacConfig {
    pub stream_info: [u8; FLAC_STREAMINFO_LEN],
    pub min_block: u16,
    pub max_block: u16,
    pub sample_rate: u32,
    pub channels: u8,
    pub bits: u8,
}

/// Parses a FLAC configuration: a bare STREAMINFO (what ffmpeg sends), a metadata block
/// starting with one, or a `fLaC` stream header.
pub fn parse_flac_config(body: &[u8]) -> Result<FlacConfig, CodecError> {
    const WHAT: &str = "FLAC STREAMINFO";
    check_len(body)?;
    let mut info = body.strip_prefix(b"fLaC").unwrap_or(body);
    if info.len() >= FLAC_STREAMINFO_LEN + 4 {
        if let Some(([kind, 0, 0, 34], block)) = info.split_first_chunk::<4>().map(|(h, b)| (*h, b))
        {
            if kind & 0x7f == 0 {
                info = block;
            }
        }
    }
    let stream_info: [u8; FLAC_STREAMINFO_LEN] = info
        .get(..FLAC_STREAMINFO_LEN)
        .and_then(|s| s.try_into().ok())
        .ok_or(CodecError::Truncated(WHAT))?;
    let mut r = Bits::new(&stream_info, WHAT);
    let min_block = r.read(16)? as u16;
    let max_block = r.read(16)? as u16;
    r.skip(48)?;
    let sample_rate = r.read(20)?;
    let channels = r.read(3)? as u8 + 1;
    let bits = r.read(5)? as u8 + 1;
    if sample_rate == 0 || min_block < 16 || max_block < min_block {
        return Err(CodecError::Invalid(WHAT));
    }
    Ok(FlacConfig {
        stream_info,
        min_block,
        max_block,
        sample_rate,
        channels,
        bits,
    })
}

/// Samples of one FLAC frame, from its header (RFC 9639 9.1); `None` when unreadable.
pub fn flac_frame_samples(frame: &[u8], config: &FlacConfig) -> Option<u32> {
    if config.min_block == config.max_block {
        return Some(u32::from(config.max_block));
    }
    let (&b0, &b1, &b2) = (frame.first()?, frame.get(1)?, frame.get(2)?);
    if b0 != 0xff || b1 & 0xfe != 0xf8 {
        return None;
    }
    let code = b2 >> 4;
    let samples = match code {
        1 => 192,
        2..=5 => 576 << (code - 2),
        8..=15 => 256 << (code - 8),
        6 | 7 => {
            // After the UTF-8-like coded frame or sample number.
            let lead = *frame.get(4)?;
            let n = match lead.leading_ones() {
                0 => 1,
                l @ 2..=7 => l as usize,
                _ => return None,
            };
            let at = 4 + n;
            if code == 6 {
                u32::from(*frame.get(at)?) + 1
            } else {
                u32::from(u16::from_be_bytes([*frame.get(at)?, *frame.get(at + 1)?])) + 1
            }
        }
        _ => return None,
    };
    Some(samples)
}

// ---- AC-3 and E-AC-3 ----

/// What the dac3 or dec3 box needs, read from a sync frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ac3Config {
    /// E-AC-3 (Dolby Digital Plus) rather than AC-3.
    pub enhanced: bool,
    pub fscod: u8,
    pub bsid: u8,
    pub bsmod: u8,
    pub acmod: u8,
    pub lfe: bool,
    /// AC-3: frmsizecod >> 1. E-AC-3: data rate in kbit/s.
    pub bit_rate_code: u16,
    pub sample_rate: u32,
    pub channels: u16,
    /// Samples per sync frame (1536 for AC-3, 256 to 1536 for E-AC-3).
    pub frame_samples: u32,
}

const AC3_SYNC: [u8; 2] = [0x0b, 0x77];
const AC3_RATES: [u32; 3] = [48_000, 44_100, 32_000];
const ACMOD_CHANNELS: [u16; 8] = [2, 1, 2, 3, 3, 4, 4, 5];

fn acmod_channels(acmod: u8, lfe: bool) -> u16 {
    ACMOD_CHANNELS.get(usize::from(acmod)).copied().unwrap_or(2) + u16::from(lfe)
}

/// Reads the sync frame at the start of an AC-3 or E-AC-3 frame (`bsid` tells which).
pub fn parse_ac3_frame(frame: &[u8]) -> Result<Ac3Config, CodecError> {
    const WHAT: &str = "AC-3 sync frame";
    if !frame.starts_with(&AC3_SYNC) {
        return Err(CodecError::Invalid(WHAT));
    }
    let bsid = byte(frame, 5, WHAT)? >> 3;
    let mut r = Bits::new(frame.get(2..).unwrap_or_default(), WHAT);
    if bsid <= 10 {
        r.skip(16)?; // crc1
        let fscod = r.read(2)? as u8;
        let frmsizecod = r.read(6)? as u16;
        let sample_rate = *AC3_RATES
            .get(usize::from(fscod))
            .ok_or(CodecError::Invalid("AC-3 sample rate"))?;
        if frmsizecod > 37 {
            return Err(CodecError::Invalid("AC-3 frame size"));
        }
        r.skip(5)?; // bsid
        let bsmod = r.read(3)? as u8;
        let acmod = r.read(3)? as u8;
        if acmod & 1 != 0 && acmod != 1 {
            r.skip(2)?;
        }
        if acmod & 4 != 0 {
            r.skip(2)?;
        }
        if acmod == 2 {
            r.skip(2)?;
        }
        let lfe = r.flag()?;
        return Ok(Ac3Config {
            enhanced: false,
            fscod,
            bsid,
            bsmod,
            acmod,
            lfe,
            bit_rate_code: frmsizecod >> 1,
            sample_rate,
            channels: acmod_channels(acmod, lfe),
            frame_samples: AC3_FRAME_SAMPLES,
        });
    }
    if !(11..=16).contains(&bsid) {
        return Err(CodecError::Invalid("AC-3 bsid"));
    }
    r.skip(2 + 3)?; // strmtyp, substreamid
    let words = r.read(11)? + 1;
    let fscod = r.read(2)? as u8;
    let (sample_rate, blocks) = if fscod == 3 {
        let fscod2 = r.read(2)?;
        let rate = [24_000, 22_050, 16_000]
            .get(fscod2 as usize)
            .copied()
            .ok_or(CodecError::Invalid("E-AC-3 sample rate"))?;
        (rate, 6)
    } else {
        let rate = AC3_RATES.get(usize::from(fscod)).copied().unwrap_or(48_000);
        let blocks = [1, 2, 3, 6].get(r.read(2)? as usize).copied().unwrap_or(6);
        (rate, blocks)
    };
    let acmod = r.read(3)? as u8;
    let lfe = r.flag()?;
    let frame_samples = blocks * 256;
    let bytes = u64::from(words) * 2;
    let kbps = bytes * 8 * u64::from(sample_rate) / u64::from(frame_samples) / 1000;
    Ok(Ac3Config {
        enhanced: true,
        fscod,
        bsid,
        bsmod: 0,
        acmod,
        lfe,
        bit_rate_code: u16::try_from(kbps).unwrap_or(u16::MAX) & 0x1fff,
        sample_rate,
        channels: acmod_channels(acmod, lfe),
        frame_samples,
    })
}

impl Ac3Config {
    pub fn codec_string(&self) -> &'static str {
        if self.enhanced {
            "ec-3"
        } else {
            "ac-3"
        }
    }
}

#[cfg(test)]
#[path = "codecs_tests.rs"]
mod tests;
