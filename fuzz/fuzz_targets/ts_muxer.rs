//! TsMuxer fed arbitrary frames and timestamps (33-bit wrap, backwards PCR, huge audio
//! PES). Checks that the output is always whole 188-byte packets with sync bytes. Input: a
//! tracks byte, then records: op byte, 5-byte PTS, signed 2-byte PTS-DTS, 2-byte length,
//! data.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nginx_rtmp_rs::hls::ts::{TsAudio, TsMuxer, TsTracks, TS_PACKET_SIZE};

fn take<'a>(data: &mut &'a [u8], n: usize) -> &'a [u8] {
    let (head, tail) = data.split_at(n.min(data.len()));
    *data = tail;
    head
}

fn be(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0, |acc, b| (acc << 8) | u64::from(*b))
}

fn tracks(b: u8) -> TsTracks {
    TsTracks {
        video: b & 1 != 0,
        audio: match (b >> 1) & 3 {
            1 => Some(TsAudio::Aac),
            2 => Some(TsAudio::Mp3),
            _ => None,
        },
    }
}

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    let Some(&first) = take(&mut rest, 1).first() else {
        return;
    };
    let mut mux = TsMuxer::new(tracks(first));
    let mut out = Vec::new();
    // Up to 5 s of audio in one PES: enough for the continuation path.
    let big = vec![0x21u8; 200_000];
    while let Some(&op) = take(&mut rest, 1).first() {
        let pts = be(take(&mut rest, 5));
        let offset = be(take(&mut rest, 2)) as u16 as i16;
        let dts = pts.wrapping_sub(offset as i64 as u64);
        let len = be(take(&mut rest, 2)) as usize;
        let payload = take(&mut rest, len);
        out.clear();
        match op & 7 {
            0 | 1 => mux.write_video(pts, dts, op & 8 != 0, payload, &mut out),
            2 | 3 => mux.write_audio(pts, payload, &mut out),
            4 => mux.write_tables(&mut out),
            5 => mux.mark_discontinuity(),
            6 => mux.set_pcr_delay(pts),
            _ if op & 8 != 0 => mux.write_audio(pts, &big[..(len * 3).min(big.len())], &mut out),
            _ => mux.set_tracks(tracks(op >> 4)),
        }
        assert_eq!(out.len() % TS_PACKET_SIZE, 0, "whole packets only");
        for packet in out.chunks(TS_PACKET_SIZE) {
            assert_eq!(packet[0], 0x47, "sync byte");
        }
        let _ = mux.pcr_pid();
    }
});
