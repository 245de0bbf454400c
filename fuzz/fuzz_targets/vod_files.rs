//! VOD file readers on hostile files: the FLV cursor (open, seek, read to the end) and the MP4
//! index, with every sample the index lists inside the file. Input: a whole file; the first
//! byte picks the container and the next two a seek target.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nginx_rtmp_rs::vod::flv::FlvCursor;
use nginx_rtmp_rs::vod::mp4::{parse_index, Limits};
use nginx_rtmp_rs::vod::ReadEnd;

fuzz_target!(|data: &[u8]| {
    let [pick, s0, s1, file @ ..] = data else {
        return;
    };
    let len = file.len() as u64;
    let seek_ms = u32::from(u16::from_be_bytes([*s0, *s1])) * 10;
    if pick & 1 == 0 {
        let Ok(mut cursor) = FlvCursor::open(file, len) else {
            return;
        };
        if pick & 2 != 0 {
            let _ = cursor.seek(file, seek_ms);
        }
        let mut out = Vec::new();
        // Every read makes progress: a file cannot keep the reader busy forever.
        for _ in 0..file.len() + 2 {
            out.clear();
            match cursor.read(file, seek_ms, 4096, &mut out) {
                Ok(ReadEnd::End) | Err(_) => break,
                Ok(_) => {}
            }
        }
    } else {
        let limits = Limits {
            max_moov_bytes: 1 << 20,
            max_samples: 100_000,
            max_top_level_boxes: 10_000,
        };
        if let Ok(index) = parse_index(file, len, &limits) {
            assert!(index.samples.windows(2).all(|w| w[0].dts_ms <= w[1].dts_ms));
        }
    }
});
