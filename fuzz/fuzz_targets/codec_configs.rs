//! The Enhanced RTMP codec configurations on hostile bytes: each parser of
//! `media::codecs`, and the fMP4 track and init segment built from what it accepts (the
//! sample entry copies the encoder's record into mp4-atom's boxes). Input: the first byte
//! picks the codec, the rest is the record (for VP9, AC-3 and E-AC-3 also the first frame).
#![no_main]

use libfuzzer_sys::fuzz_target;
use nginx_rtmp_rs::dash::fmp4;
use nginx_rtmp_rs::media::codecs;
use nginx_rtmp_rs::media::flv::FourCc;

fuzz_target!(|data: &[u8]| {
    let [pick, body @ ..] = data else {
        return;
    };
    let track = match pick % 8 {
        0 => fmp4::video_codec(Some(FourCc::HVC1), body),
        1 => fmp4::video_codec(Some(FourCc::AV01), body),
        2 => {
            // vpcC, then the keyframe.
            let split = body.len().min(12);
            let (record, frame) = body.split_at(split);
            fmp4::codec_from_frame(Some(FourCc::VP09), record, frame)
        }
        3 => fmp4::audio_codec(Some(FourCc::OPUS), body),
        4 => fmp4::audio_codec(Some(FourCc::FLAC), body),
        5 => fmp4::codec_from_frame(Some(FourCc::AC3), &[], body),
        6 => fmp4::codec_from_frame(Some(FourCc::EAC3), &[], body),
        _ => {
            // Per-frame helpers.
            let _ = codecs::opus_packet_ticks(body);
            let _ = codecs::av1_sample_start(body);
            let _ = codecs::vp9_keyframe_size(body);
            if let Ok(flac) = codecs::parse_flac_config(body) {
                let _ = codecs::flac_frame_samples(body.get(34..).unwrap_or_default(), &flac);
            }
            return;
        }
    };
    if let Ok(track) = track {
        let _ = track.codec_string();
        let _ = track.frame_ticks(body);
        let _ = track.sample_start(body);
        let _ = track.nominal_frame_ticks();
        let _ = fmp4::init_segment(&track);
    }
});
