//! avcc_to_annexb with a configuration built from the input. Input: nal_length_size byte (any
//! value: 0 and 5.. must be refused), SPS count, PPS count, then each parameter set as a
//! length byte and bytes, then the length-prefixed frame body.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use nginx_rtmp_rs::media::avc::{avcc_to_annexb, parse_sps, START_CODE};
use nginx_rtmp_rs::media::flv::AvcConfig;

fn take<'a>(data: &mut &'a [u8], n: usize) -> &'a [u8] {
    let (head, tail) = data.split_at(n.min(data.len()));
    *data = tail;
    head
}

fn sets(data: &mut &[u8], count: u8) -> Vec<Bytes> {
    (0..count % 4)
        .map(|_| {
            let len = take(data, 1).first().copied().unwrap_or(0);
            Bytes::copy_from_slice(take(data, usize::from(len)))
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    let head = take(&mut rest, 3);
    let [nal_length_size, n_sps, n_pps] = head else {
        return;
    };
    let sps = sets(&mut rest, *n_sps);
    let pps = sets(&mut rest, *n_pps);
    for s in &sps {
        let _ = parse_sps(s);
    }
    let cfg = AvcConfig {
        profile_idc: 100,
        constraint_flags: 0,
        level_idc: 31,
        nal_length_size: *nal_length_size,
        sps,
        pps,
    };
    let mut out = vec![0xEE];
    match avcc_to_annexb(rest, &cfg, &mut out) {
        Ok(()) => {
            if out.len() > 1 {
                assert_eq!(
                    out[1..5],
                    START_CODE,
                    "an access unit starts with a start code"
                );
            }
        }
        Err(_) => assert_eq!(out, [0xEE], "on error the output is unchanged"),
    }
});
