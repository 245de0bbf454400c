//! Codec helpers the muxers share: H.264 length-prefixed (AVCC) to Annex B, SPS facts for
//! playlists (resolution, frame rate), RFC 6381 codec strings, and ADTS headers for AAC.

use h264_reader::nal::sps::SeqParameterSet;
use h264_reader::rbsp::{BitReader, ByteReader};
use thiserror::Error;

use crate::media::flv::{AacConfig, AvcConfig};

/// The access unit delimiter written in front of every frame (`primary_pic_type` 7: any).
pub const AUD_NAL: [u8; 2] = [0x09, 0xf0];
/// Annex B start code; four bytes everywhere (what ffmpeg and Apple's tools write).
pub const START_CODE: [u8; 4] = [0, 0, 0, 1];
/// Largest AAC frame an ADTS header can describe (13-bit frame length, header included).
pub const MAX_ADTS_FRAME: usize = 0x1fff;

/// NAL unit types this module looks at.
pub const NAL_IDR: u8 = 5;
pub const NAL_SPS: u8 = 7;
pub const NAL_PPS: u8 = 8;
pub const NAL_AUD: u8 = 9;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum AvcError {
    #[error("invalid NAL unit length size {0} (must be 1 to 4)")]
    BadNalLengthSize(u8),
    #[error("truncated NAL unit length at byte {offset} of a {frame_len}-byte frame")]
    TruncatedLength { offset: usize, frame_len: usize },
    #[error("NAL unit at byte {offset} claims {len} bytes but only {remaining} remain")]
    NalTooLong {
        offset: usize,
        len: usize,
        remaining: usize,
    },
}

/// Iterates the NAL units of a length-prefixed frame; yields an error once and then stops.
struct NalUnits<'a> {
    data: &'a [u8],
    pos: usize,
    size: usize,
    failed: bool,
}

impl<'a> Iterator for NalUnits<'a> {
    type Item = Result<&'a [u8], AvcError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.data.len() {
            return None;
        }
        let offset = self.pos;
        let err = |e| Some(Err(e));
        let Some(prefix) = self.data.get(offset..offset.saturating_add(self.size)) else {
            self.failed = true;
            return err(AvcError::TruncatedLength {
                offset,
                frame_len: self.data.len(),
            });
        };
        let len = prefix
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        let start = offset + self.size;
        let remaining = self.data.len() - start;
        if len > remaining {
            self.failed = true;
            return err(AvcError::NalTooLong {
                offset,
                len,
                remaining,
            });
        }
        self.pos = start + len;
        self.data.get(start..start + len).map(Ok)
    }
}

fn nal_units<'a>(body: &'a [u8], cfg: &AvcConfig) -> Result<NalUnits<'a>, AvcError> {
    if !(1..=4).contains(&cfg.nal_length_size) {
        return Err(AvcError::BadNalLengthSize(cfg.nal_length_size));
    }
    Ok(NalUnits {
        data: body,
        pos: 0,
        size: usize::from(cfg.nal_length_size),
        failed: false,
    })
}

fn nal_type(nal: &[u8]) -> u8 {
    nal.first().map_or(0, |b| b & 0x1f)
}

fn push_nal(out: &mut Vec<u8>, nal: &[u8]) {
    out.extend_from_slice(&START_CODE);
    out.extend_from_slice(nal);
}

/// Converts one RTMP/FLV H.264 frame (length-prefixed NAL units) to an Annex B access unit
/// that a TS demuxer can start decoding at: an AUD first (one per access unit; later ones are
/// dropped), and for a frame with an IDR slice, the SPS/PPS from `cfg` that the frame does not
/// carry itself. They go in after the AUD and any in-band parameter sets, before SEI and
/// slices (the order H.264 7.4.1.2.3 and Apple's segmenter use, so buffering-period SEI sees
/// its SPS). Empty NAL units are skipped. The frame is checked whole before anything is
/// appended, so on error `out` is unchanged.
pub fn avcc_to_annexb(body: &[u8], cfg: &AvcConfig, out: &mut Vec<u8>) -> Result<(), AvcError> {
    let mut out_len = 0usize;
    let (mut has_sps, mut has_pps, mut has_idr) = (false, false, false);
    for nal in nal_units(body, cfg)? {
        let nal = nal?;
        match nal_type(nal) {
            NAL_SPS => has_sps = true,
            NAL_PPS => has_pps = true,
            NAL_IDR => has_idr = true,
            _ => {}
        }
        out_len = out_len.saturating_add(START_CODE.len() + nal.len());
    }
    let insert_sps = has_idr && !has_sps;
    let insert_pps = has_idr && !has_pps;
    let param_len = |sets: &[bytes::Bytes], on: bool| -> usize {
        if on {
            sets.iter().map(|s| START_CODE.len() + s.len()).sum()
        } else {
            0
        }
    };
    out.reserve(
        out_len
            .saturating_add(START_CODE.len() + AUD_NAL.len())
            .saturating_add(param_len(&cfg.sps, insert_sps))
            .saturating_add(param_len(&cfg.pps, insert_pps)),
    );

    let mut inserted = !(insert_sps || insert_pps);
    let mut first = true;
    for nal in nal_units(body, cfg)?.flatten().filter(|n| !n.is_empty()) {
        let t = nal_type(nal);
        if first {
            first = false;
            push_nal(out, &AUD_NAL);
            if t == NAL_AUD {
                continue;
            }
        } else if t == NAL_AUD {
            continue;
        }
        if !inserted && t != NAL_SPS && t != NAL_PPS {
            inserted = true;
            if insert_sps {
                cfg.sps.iter().for_each(|s| push_nal(out, s));
            }
            if insert_pps {
                cfg.pps.iter().for_each(|p| push_nal(out, p));
            }
        }
        push_nal(out, nal);
    }
    if first {
        // A frame with no NAL units still marks an access unit boundary.
        push_nal(out, &AUD_NAL);
    }
    Ok(())
}

/// What playlists need from an SPS.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SpsInfo {
    /// Display size, cropping applied.
    pub width: u32,
    pub height: u32,
    /// Frames per second from the VUI timing info, when present and plausible.
    pub frame_rate: Option<f64>,
}

/// Highest frame rate believed from VUI timing info (anything above is a broken SPS).
pub const MAX_FRAME_RATE: f64 = 1000.0;

/// Parses an SPS NAL unit (header byte included, emulation prevention bytes allowed).
/// `None` for anything that is not a well-formed SPS.
pub fn parse_sps(sps: &[u8]) -> Option<SpsInfo> {
    if nal_type(sps) != NAL_SPS {
        return None;
    }
    let parsed =
        SeqParameterSet::from_bits(BitReader::new(ByteReader::skipping_h264_header(sps))).ok()?;
    let (width, height) = parsed.pixel_dimensions().ok()?;
    let frame_rate = parsed
        .fps()
        .filter(|f| f.is_finite() && *f > 0.0 && *f <= MAX_FRAME_RATE);
    Some(SpsInfo {
        width,
        height,
        frame_rate,
    })
}

/// RFC 6381 codec string for H.264, e.g. `avc1.64001f` (High, level 3.1). Profile,
/// constraint flags and level come from the first SPS (what the decoder acts on), or from the
/// configuration record when it has no SPS.
pub fn avc_codec_string(cfg: &AvcConfig) -> String {
    let (profile, flags, level) = match cfg.sps.first().and_then(|s| s.get(1..4)) {
        Some([p, f, l]) => (*p, *f, *l),
        _ => (cfg.profile_idc, cfg.constraint_flags, cfg.level_idc),
    };
    format!("avc1.{profile:02x}{flags:02x}{level:02x}")
}

/// Sampling frequencies by ADTS index (ISO/IEC 14496-3 1.6.3.4).
const ADTS_SAMPLE_RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

/// A 7-byte MPEG-4 ADTS header (no CRC) for one raw AAC frame of `payload_len` bytes.
/// HE-AAC (v1/v2) is described by its core (LC at the core rate): that is what ADTS can
/// express, and decoders find SBR/PS implicitly. `None` when ADTS cannot carry the config
/// (object types other than Main/LC/SSR/LTP, a rate with no index, a frame too long).
pub fn adts_header(cfg: &AacConfig, payload_len: usize) -> Option<[u8; 7]> {
    let object_type = if cfg.sbr || cfg.object_type == 5 || cfg.object_type == 29 {
        cfg.core_object_type
    } else {
        cfg.object_type
    };
    if !(1..=4).contains(&object_type) || cfg.channel_config > 7 {
        return None;
    }
    let profile = object_type - 1;
    let sfi = if usize::from(cfg.sample_rate_index) < ADTS_SAMPLE_RATES.len() {
        cfg.sample_rate_index
    } else {
        // Explicit rate (index 15): usable only if it is one of the indexed rates.
        ADTS_SAMPLE_RATES
            .iter()
            .position(|r| *r == cfg.sample_rate)
            .and_then(|i| u8::try_from(i).ok())?
    };
    let frame_len = payload_len
        .checked_add(7)
        .filter(|l| *l <= MAX_ADTS_FRAME)?;
    let ch = cfg.channel_config;
    Some([
        0xff,
        0xf1, // MPEG-4, layer 0, no CRC
        (profile << 6) | (sfi << 2) | (ch >> 2),
        ((ch & 0x03) << 6) | (frame_len >> 11) as u8,
        (frame_len >> 3) as u8,
        (((frame_len & 0x07) as u8) << 5) | 0x1f, // buffer fullness 0x7ff: VBR
        0xfc,
    ])
}

/// RFC 6381 codec string for AAC: `mp4a.40.2` (LC), `mp4a.40.5` (HE), `mp4a.40.29` (HEv2).
pub fn aac_codec_string(cfg: &AacConfig) -> String {
    let object_type = if cfg.ps {
        29
    } else if cfg.sbr {
        5
    } else {
        cfg.object_type
    };
    format!("mp4a.40.{object_type}")
}

/// Codec string for MP3 audio in HLS (what Apple's tools write).
pub fn mp3_codec_string() -> &'static str {
    "mp4a.40.34"
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::flv::parse_audio_specific_config;
    use bytes::Bytes;

    /// SPS/PPS x264 wrote for testsrc2 320x240 at 25 fps (High, level 1.3, VUI timing).
    const SPS_320X240_25: [u8; 25] = [
        0x67, 0x64, 0x00, 0x0d, 0xac, 0xd9, 0x41, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00,
        0x10, 0x00, 0x00, 0x03, 0x03, 0x20, 0xf1, 0x42, 0x99, 0x60,
    ];
    const PPS_320X240: [u8; 6] = [0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0];
    /// Baseline (constrained) 320x180 at 30000/1001: height is cropped from 192.
    const SPS_320X180_CROPPED: [u8; 23] = [
        0x67, 0x42, 0xc0, 0x0d, 0xd9, 0x01, 0x41, 0x9f, 0x9f, 0x01, 0x10, 0x00, 0x00, 0x3e, 0x90,
        0x00, 0x0e, 0xa6, 0x00, 0xf1, 0x42, 0xa4, 0x80,
    ];

    fn cfg(n: u8) -> AvcConfig {
        AvcConfig {
            profile_idc: 0x64,
            constraint_flags: 0,
            level_idc: 0x1f,
            nal_length_size: n,
            sps: vec![Bytes::from_static(&[0x67, 0xaa, 0xbb])],
            pps: vec![Bytes::from_static(&[0x68, 0xcc])],
        }
    }

    fn avcc(n: u8, nals: &[&[u8]]) -> Vec<u8> {
        let mut v = Vec::new();
        for nal in nals {
            let len = nal.len().to_be_bytes();
            v.extend_from_slice(&len[len.len() - usize::from(n)..]);
            v.extend_from_slice(nal);
        }
        v
    }

    fn annexb(nals: &[&[u8]]) -> Vec<u8> {
        let mut v = Vec::new();
        for nal in nals {
            v.extend_from_slice(&START_CODE);
            v.extend_from_slice(nal);
        }
        v
    }

    fn convert(n: u8, nals: &[&[u8]]) -> Result<Vec<u8>, AvcError> {
        let mut out = Vec::new();
        avcc_to_annexb(&avcc(n, nals), &cfg(n), &mut out)?;
        Ok(out)
    }

    const SEI: &[u8] = &[0x06, 0x05, 0x01, 0x80];
    const IDR: &[u8] = &[0x65, 0x88, 0x84, 0x00];
    const SLICE: &[u8] = &[0x41, 0x9a, 0x02];
    const SPS: &[u8] = &[0x67, 0xaa, 0xbb];
    const PPS: &[u8] = &[0x68, 0xcc];
    const AUD: &[u8] = &AUD_NAL;

    #[test]
    fn idr_without_parameter_sets_gets_aud_then_config_sps_pps() {
        for n in [1, 2, 3, 4] {
            let out = convert(n, &[SEI, IDR]).unwrap();
            assert_eq!(out, annexb(&[AUD, SPS, PPS, SEI, IDR]), "length size {n}");
        }
    }

    #[test]
    fn idr_with_in_band_parameter_sets_is_not_given_a_second_copy() {
        let in_band_sps: &[u8] = &[0x67, 0x11];
        let in_band_pps: &[u8] = &[0x68, 0x22];
        let out = convert(4, &[in_band_sps, in_band_pps, IDR]).unwrap();
        assert_eq!(out, annexb(&[AUD, in_band_sps, in_band_pps, IDR]));
    }

    #[test]
    fn only_the_missing_parameter_set_is_inserted_after_in_band_ones() {
        let in_band_sps: &[u8] = &[0x67, 0x11];
        let out = convert(4, &[in_band_sps, SEI, IDR]).unwrap();
        assert_eq!(out, annexb(&[AUD, in_band_sps, PPS, SEI, IDR]));
    }

    #[test]
    fn non_idr_frame_gets_an_aud_and_no_parameter_sets() {
        let out = convert(2, &[SLICE]).unwrap();
        assert_eq!(out, annexb(&[AUD, SLICE]));
    }

    #[test]
    fn existing_leading_aud_is_kept_once_and_later_auds_are_dropped() {
        let out = convert(4, &[AUD, IDR, AUD, SLICE]).unwrap();
        assert_eq!(out, annexb(&[AUD, SPS, PPS, IDR, SLICE]));
        let out = convert(4, &[AUD, SLICE]).unwrap();
        assert_eq!(out, annexb(&[AUD, SLICE]));
    }

    #[test]
    fn output_is_appended_to_existing_bytes() {
        let mut out = vec![0xab];
        avcc_to_annexb(&avcc(4, &[SLICE]), &cfg(4), &mut out).unwrap();
        assert_eq!(out[0], 0xab);
        assert_eq!(&out[1..], annexb(&[AUD, SLICE]).as_slice());
    }

    #[test]
    fn empty_nal_units_are_skipped() {
        let out = convert(4, &[&[], SLICE, &[]]).unwrap();
        assert_eq!(out, annexb(&[AUD, SLICE]));
        assert_eq!(convert(4, &[]).unwrap(), annexb(&[AUD]));
    }

    #[test]
    fn lying_nal_length_is_an_error_and_leaves_output_untouched() {
        let mut body = avcc(4, &[SLICE, IDR]);
        let last = body.len() - IDR.len() - 1;
        body[last] = 0xff; // second length now claims 255 bytes
        let mut out = vec![1, 2, 3];
        let err = avcc_to_annexb(&body, &cfg(4), &mut out).unwrap_err();
        assert_eq!(
            err,
            AvcError::NalTooLong {
                offset: 4 + SLICE.len(),
                len: 255,
                remaining: IDR.len()
            }
        );
        assert_eq!(out, vec![1, 2, 3]);

        let huge = [0xff, 0xff, 0xff, 0xff, 0x65];
        assert!(matches!(
            avcc_to_annexb(&huge, &cfg(4), &mut out),
            Err(AvcError::NalTooLong { .. })
        ));
    }

    #[test]
    fn truncated_length_prefix_is_an_error() {
        let mut body = avcc(4, &[SLICE]);
        body.extend_from_slice(&[0, 0]);
        let err = avcc_to_annexb(&body, &cfg(4), &mut Vec::new()).unwrap_err();
        assert_eq!(
            err,
            AvcError::TruncatedLength {
                offset: 4 + SLICE.len(),
                frame_len: body.len()
            }
        );
    }

    #[test]
    fn invalid_nal_length_size_is_an_error() {
        for n in [0u8, 5, 255] {
            let mut c = cfg(4);
            c.nal_length_size = n;
            assert_eq!(
                avcc_to_annexb(&[0, 0, 0, 1, 0x65], &c, &mut Vec::new()),
                Err(AvcError::BadNalLengthSize(n))
            );
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut seed = 0x1234_5678u32;
        for len in 0..300usize {
            let body: Vec<u8> = (0..len)
                .map(|_| {
                    seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    (seed >> 24) as u8
                })
                .collect();
            for n in 1..=4 {
                let mut out = Vec::new();
                if avcc_to_annexb(&body, &cfg(n), &mut out).is_err() {
                    assert!(out.is_empty());
                }
            }
        }
    }

    #[test]
    fn real_sps_gives_size_and_frame_rate() {
        let info = parse_sps(&SPS_320X240_25).unwrap();
        assert_eq!((info.width, info.height), (320, 240));
        assert_eq!(info.frame_rate, Some(25.0));
    }

    #[test]
    fn sps_cropping_is_applied() {
        let info = parse_sps(&SPS_320X180_CROPPED).unwrap();
        assert_eq!((info.width, info.height), (320, 180));
        let fps = info.frame_rate.unwrap();
        assert!((fps - 30000.0 / 1001.0).abs() < 1e-9, "{fps}");
    }

    #[test]
    fn malformed_sps_is_none_and_never_panics() {
        assert_eq!(parse_sps(&[]), None);
        assert_eq!(parse_sps(&PPS_320X240), None);
        assert_eq!(parse_sps(&SPS_320X240_25[..8]), None);
        for cut in 0..SPS_320X240_25.len() {
            let _ = parse_sps(&SPS_320X240_25[..cut]);
        }
        for i in 1..SPS_320X240_25.len() {
            for v in [0x00, 0xff, 0x80, 0x01] {
                let mut s = SPS_320X240_25;
                s[i] = v;
                let _ = parse_sps(&s);
            }
        }
    }

    #[test]
    fn codec_string_for_high_3_1() {
        let mut c = cfg(4);
        c.sps.clear();
        assert_eq!(avc_codec_string(&c), "avc1.64001f");
    }

    #[test]
    fn codec_string_includes_constraint_flags_from_the_sps() {
        let c = AvcConfig {
            profile_idc: 66,
            constraint_flags: 0xe0,
            level_idc: 30,
            nal_length_size: 4,
            sps: vec![],
            pps: vec![],
        };
        assert_eq!(avc_codec_string(&c), "avc1.42e01e");
        let c = AvcConfig {
            sps: vec![Bytes::from_static(&SPS_320X180_CROPPED)],
            ..c
        };
        assert_eq!(avc_codec_string(&c), "avc1.42c00d");
    }

    fn aac(asc: &[u8]) -> AacConfig {
        parse_audio_specific_config(asc).unwrap()
    }

    #[test]
    fn adts_header_matches_ffmpeg_for_lc_44100_stereo() {
        // First header of `ffmpeg -f lavfi -i sine=sample_rate=44100 -ac 2 -c:a aac -f adts`.
        let h = adts_header(&aac(&[0x12, 0x10]), 345 - 7).unwrap();
        assert_eq!(h, [0xff, 0xf1, 0x50, 0x80, 0x2b, 0x3f, 0xfc]);
    }

    #[test]
    fn adts_header_matches_ffmpeg_for_lc_48000_mono() {
        let h = adts_header(&aac(&[0x11, 0x88]), 219 - 7).unwrap();
        assert_eq!(h, [0xff, 0xf1, 0x4c, 0x40, 0x1b, 0x7f, 0xfc]);
    }

    /// Reads the ADTS fields back independently of the writer.
    fn read_adts(h: &[u8; 7]) -> (u16, u8, u8, u8, usize) {
        let bits = h.iter().fold(0u64, |a, b| (a << 8) | u64::from(*b));
        let field = |shift: u32, width: u32| (bits >> (56 - shift - width)) & ((1 << width) - 1);
        (
            field(0, 12) as u16, // syncword
            field(16, 2) as u8,  // profile
            field(18, 4) as u8,  // sampling_frequency_index
            field(23, 3) as u8,  // channel_configuration
            field(30, 13) as usize,
        )
    }

    #[test]
    fn he_aac_is_described_by_its_lc_core() {
        // Hierarchical HE-AAC: AOT 5, core 22050 Hz (index 7) stereo, SBR 44100, core AOT 2.
        let he = aac(&[0x2b, 0x92, 0x08, 0x00]);
        assert!(he.sbr);
        let h = adts_header(&he, 100).unwrap();
        assert_eq!(read_adts(&h), (0xfff, 1, 7, 2, 107));
        assert_eq!(aac_codec_string(&he), "mp4a.40.5");
        // HEv2 (AOT 29): mono core.
        let hev2 = aac(&[0xeb, 0x8a, 0x08, 0x00]);
        assert!(hev2.ps);
        assert_eq!(read_adts(&adts_header(&hev2, 10).unwrap()).1, 1);
        assert_eq!(aac_codec_string(&hev2), "mp4a.40.29");
    }

    #[test]
    fn adts_frame_length_limit_and_unrepresentable_configs() {
        let lc = aac(&[0x12, 0x10]);
        assert_eq!(read_adts(&adts_header(&lc, 8191 - 7).unwrap()).4, 8191);
        assert_eq!(adts_header(&lc, 8191 - 6), None);
        assert_eq!(adts_header(&lc, usize::MAX), None);
        // AAC-LD (object type 23) has no ADTS profile.
        let ld = AacConfig {
            object_type: 23,
            core_object_type: 23,
            ..lc
        };
        assert_eq!(adts_header(&ld, 10), None);
        // Explicit rate: mapped when it is an indexed rate, else refused.
        let explicit = AacConfig {
            sample_rate_index: 15,
            sample_rate: 48000,
            ..lc
        };
        assert_eq!(read_adts(&adts_header(&explicit, 1).unwrap()).2, 3);
        let odd = AacConfig {
            sample_rate: 44000,
            ..explicit
        };
        assert_eq!(adts_header(&odd, 1), None);
    }

    #[test]
    fn aac_codec_strings() {
        assert_eq!(aac_codec_string(&aac(&[0x12, 0x10])), "mp4a.40.2");
        assert_eq!(mp3_codec_string(), "mp4a.40.34");
    }
}
