//! FLV tag bodies and codec configuration records: parse_video, parse_audio,
//! parse_avc_decoder_config, parse_audio_specific_config on the input as a whole, then on the
//! configuration a sequence header carries, plus what is derived from a parsed configuration
//! (SPS info, codec strings, ADTS header, fMP4 init segment). Input: one FLV tag body.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use nginx_rtmp_rs::dash::fmp4::{init_segment, TrackCodec};
use nginx_rtmp_rs::media::avc::{aac_codec_string, adts_header, avc_codec_string, parse_sps};
use nginx_rtmp_rs::media::flv::{
    parse_audio, parse_audio_specific_config, parse_avc_decoder_config, parse_video,
};

fn avc_record(record: &[u8]) {
    if let Ok(cfg) = parse_avc_decoder_config(record) {
        assert!((1..=4).contains(&cfg.nal_length_size));
        let _ = (cfg.profile_name(), cfg.level(), avc_codec_string(&cfg));
        for sps in &cfg.sps {
            let _ = parse_sps(sps);
        }
    }
    if let Ok(codec) = TrackCodec::avc_from_record(Bytes::copy_from_slice(record)) {
        let _ = (codec.codec_string(), codec.dimensions(), codec.timescale());
        let _ = init_segment(&codec);
    }
}

fn asc(config: &[u8]) {
    if let Ok(cfg) = parse_audio_specific_config(config) {
        let _ = (
            cfg.profile_name(),
            cfg.output_sample_rate(),
            cfg.output_channels(),
        );
        let _ = aac_codec_string(&cfg);
        for len in [0, 1, 7, 0x1fff - 7, 0x1fff, usize::MAX] {
            let _ = adts_header(&cfg, len);
        }
    }
    if let Ok(codec) = TrackCodec::aac_from_asc(Bytes::copy_from_slice(config)) {
        let _ = (codec.sample_rate(), codec.channels(), codec.codec_string());
        let _ = init_segment(&codec);
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(tag) = parse_video(data) {
        let body = data
            .get(tag.body_offset..)
            .expect("body_offset within the tag");
        let _ = (tag.is_keyframe(), tag.is_sequence_header());
        if tag.is_sequence_header() {
            avc_record(body);
        }
    }
    if let Ok(tag) = parse_audio(data) {
        let body = data
            .get(tag.body_offset..)
            .expect("body_offset within the tag");
        if tag.is_sequence_header() {
            asc(body);
        }
    }
    avc_record(data);
    asc(data);
});
