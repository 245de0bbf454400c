//! Configuration records as ffmpeg 9 sends them over Enhanced RTMP (testdata/, cut from real
//! publishes of a 320x240 test picture and a 48 kHz tone), and hostile variants.

use super::*;

const HEVC_MAIN: &[u8] = include_bytes!("testdata/hevc_main.hvcc");
const HEVC_MAIN10: &[u8] = include_bytes!("testdata/hevc_main10.hvcc");
const AV1C: &[u8] = include_bytes!("testdata/av1.av1c");
const AV1_KEY: &[u8] = include_bytes!("testdata/av1_key.head");
const VPCC: &[u8] = include_bytes!("testdata/vp9.vpcc");
const VP9_KEY: &[u8] = include_bytes!("testdata/vp9_key.head");
const OPUS_HEAD: &[u8] = include_bytes!("testdata/opus.head");
const OPUS_PACKET: &[u8] = include_bytes!("testdata/opus.packet");
const FLAC_INFO: &[u8] = include_bytes!("testdata/flac.streaminfo");
const AC3_FRAME: &[u8] = include_bytes!("testdata/ac3.frame");
const EAC3_FRAME: &[u8] = include_bytes!("testdata/eac3.frame");

#[test]
fn hevc_records_give_profile_level_and_size() {
    let main = parse_hevc_config(HEVC_MAIN).unwrap();
    assert_eq!((main.width, main.height), (320, 240));
    assert_eq!(main.codec_string(), "hvc1.1.6.L60.90");
    assert_eq!(main.profile_name(), "Main");
    assert_eq!((main.bit_depth, main.nal_length_size), (8, 4));
    let ten = parse_hevc_config(HEVC_MAIN10).unwrap();
    assert_eq!(ten.codec_string(), "hvc1.2.4.L60.90");
    assert_eq!((ten.bit_depth, ten.width, ten.height), (10, 320, 240));
}

#[test]
fn hevc_codec_string_follows_iso_14496_15_annex_e() {
    // The spec's own examples.
    let mut c = parse_hevc_config(HEVC_MAIN).unwrap();
    c.level_idc = 93;
    c.constraints = [0xb0, 0, 0, 0, 0, 0];
    assert_eq!(c.codec_string(), "hvc1.1.6.L93.B0");
    c.profile_space = 1;
    c.tier_high = true;
    c.level_idc = 120;
    c.constraints = [0xb0, 0x23, 0, 0, 0, 0];
    assert_eq!(c.codec_string(), "hvc1.A1.6.H120.B0.23");
}

#[test]
fn hostile_hevc_records_are_refused_without_panic() {
    assert!(parse_hevc_config(&[]).is_err());
    let mut v = HEVC_MAIN.to_vec();
    v[0] = 2;
    assert_eq!(parse_hevc_config(&v), Err(CodecError::Version("hvcC", 2)));
    for cut in [1, 22, 23, 26, 30, HEVC_MAIN.len() - 1] {
        assert!(
            parse_hevc_config(&HEVC_MAIN[..cut]).is_err(),
            "cut at {cut}"
        );
    }
    let mut many = HEVC_MAIN[..23].to_vec();
    many[22] = 1;
    many.extend_from_slice(&[0x21, 0xff, 0xff]);
    assert!(parse_hevc_config(&many).is_err());
    assert!(parse_hevc_config(&vec![1; MAX_CONFIG_LEN + 1]).is_err());
}

#[test]
fn av1_record_gives_codec_string_and_size() {
    let c = parse_av1_config(AV1C).unwrap();
    assert_eq!(c.codec_string(), "av01.0.00M.08");
    assert_eq!((c.width, c.height), (320, 240));
    assert!(parse_av1_config(&AV1C[..3]).is_err());
    assert!(parse_av1_config(&[0x01, 0, 0, 0]).is_err());
    // A record with no config OBUs is valid, size unknown.
    let bare = parse_av1_config(&AV1C[..4]).unwrap();
    assert_eq!((bare.width, bare.height), (0, 0));
}

#[test]
fn av1_leading_temporal_delimiter_is_sliced_off() {
    assert_eq!(&AV1_KEY[..2], &[0x12, 0x00]);
    assert_eq!(av1_sample_start(AV1_KEY), 2);
    assert_eq!(av1_sample_start(&AV1_KEY[2..]), 0);
    assert_eq!(av1_sample_start(&[0x12, 0x00]), 2);
    assert_eq!(av1_sample_start(&[0x12, 0x05]), 0);
    assert_eq!(av1_sample_start(&[]), 0);
}

#[test]
fn vp9_record_and_keyframe_size() {
    let c = parse_vp9_config(VPCC).unwrap();
    assert_eq!(c.codec_string(), "vp09.00.20.08");
    assert_eq!(vp9_keyframe_size(VP9_KEY), Some((320, 240)));
    assert_eq!(vp9_keyframe_size(&VP9_KEY[..5]), None);
    let mut v0 = VPCC.to_vec();
    v0[0] = 0;
    assert!(parse_vp9_config(&v0).is_err());
    assert!(parse_vp9_config(&VPCC[..8]).is_err());
}

#[test]
fn opus_head_becomes_dops_fields() {
    let c = parse_opus_config(OPUS_HEAD).unwrap();
    assert_eq!(
        (c.channels, c.pre_skip, c.input_rate, c.family),
        (1, 312, 48_000, 0)
    );
    assert_eq!(opus_packet_ticks(OPUS_PACKET), Some(960));
    // TOC: SILK 60 ms x2, CELT 2.5 ms code 3 with 4 frames, hostile 0 frames.
    assert_eq!(opus_packet_ticks(&[(3 << 3) | 1]), Some(5760));
    assert_eq!(opus_packet_ticks(&[(16 << 3) | 3, 4]), Some(480));
    assert_eq!(opus_packet_ticks(&[(16 << 3) | 3, 0]), None);
    assert_eq!(opus_packet_ticks(&[(3 << 3) | 3, 63]), None);
    assert!(parse_opus_config(&OPUS_HEAD[..12]).is_err());
    let mut surround = OPUS_HEAD.to_vec();
    surround[9] = 6;
    assert!(
        parse_opus_config(&surround).is_err(),
        "family 0 with 6 channels"
    );
    surround[18] = 1;
    surround.extend_from_slice(&[4, 2, 0, 4, 1, 2, 3, 5]);
    let s = parse_opus_config(&surround).unwrap();
    assert_eq!((s.streams, s.coupled, s.mapping.len()), (4, 2, 6));
}

#[test]
fn flac_streaminfo_in_every_form() {
    let c = parse_flac_config(FLAC_INFO).unwrap();
    assert_eq!((c.sample_rate, c.channels, c.bits), (48_000, 1, 16));
    let mut block = vec![0x80, 0, 0, 34];
    block.extend_from_slice(FLAC_INFO);
    assert_eq!(parse_flac_config(&block).unwrap(), c);
    let mut stream = b"fLaC".to_vec();
    stream.extend_from_slice(&block);
    assert_eq!(parse_flac_config(&stream).unwrap(), c);
    assert!(parse_flac_config(&FLAC_INFO[..20]).is_err());
    assert_eq!(
        flac_frame_samples(&[0xff, 0xf8, 0x00], &c),
        Some(u32::from(c.max_block))
    );
    let variable = FlacConfig { min_block: 16, ..c };
    assert_eq!(
        flac_frame_samples(&[0xff, 0xf8, 0xc9, 0x08, 0x00], &variable),
        Some(4096)
    );
    assert_eq!(
        flac_frame_samples(&[0xff, 0xf8, 0x69, 0x08, 0x00, 0x3f], &variable),
        Some(64)
    );
    assert_eq!(flac_frame_samples(&[0x00, 0xf8, 0x69], &variable), None);
}

#[test]
fn ac3_and_eac3_sync_frames() {
    let a = parse_ac3_frame(AC3_FRAME).unwrap();
    assert!(!a.enhanced);
    assert_eq!(
        (a.sample_rate, a.channels, a.frame_samples),
        (48_000, 1, 1536)
    );
    assert_eq!(a.codec_string(), "ac-3");
    let e = parse_ac3_frame(EAC3_FRAME).unwrap();
    assert!(e.enhanced);
    assert_eq!(
        (e.sample_rate, e.channels, e.frame_samples),
        (48_000, 1, 1536)
    );
    assert_eq!(e.codec_string(), "ec-3");
    assert!(e.bit_rate_code > 0);
    assert!(parse_ac3_frame(&AC3_FRAME[..4]).is_err());
    assert!(parse_ac3_frame(&[0, 0, 0, 0, 0, 0, 0, 0]).is_err());
}

#[test]
fn truncations_never_panic() {
    for data in [
        HEVC_MAIN, AV1C, VPCC, OPUS_HEAD, FLAC_INFO, AC3_FRAME, EAC3_FRAME, VP9_KEY,
    ] {
        for cut in 0..data.len().min(200) {
            let d = &data[..cut];
            let _ = parse_hevc_config(d);
            let _ = parse_av1_config(d);
            let _ = parse_vp9_config(d);
            let _ = parse_opus_config(d);
            let _ = parse_flac_config(d);
            let _ = parse_ac3_frame(d);
            let _ = vp9_keyframe_size(d);
            let _ = av1_sample_start(d);
            let _ = opus_packet_ticks(d);
        }
    }
}
