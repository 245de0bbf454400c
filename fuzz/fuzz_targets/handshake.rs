//! ServerHandshake (and ClientHandshake) fed arbitrary bytes in arbitrary slices.
//! Input: one slicing byte, then what the peer sends (C0 C1 C2 ...).
#![no_main]

use libfuzzer_sys::fuzz_target;
use nginx_rtmp_rs::rtmp::handshake::{
    ClientHandshake, HandshakeStatus, ServerHandshake, HANDSHAKE_SIZE,
};
use nginx_rtmp_rs_fuzz::{slices, Rng};

fuzz_target!(|data: &[u8]| {
    let Some((&seed, stream)) = data.split_first() else {
        return;
    };
    let mut rng = Rng::new(seed);
    let mut fill = |b: &mut [u8]| b.iter_mut().for_each(|x| *x = 0x5a);

    let mut server = ServerHandshake::new(1234, &mut fill);
    let mut out = Vec::new();
    let mut total = 0usize;
    for piece in slices(stream, &mut rng, 2 * HANDSHAKE_SIZE) {
        match server.feed(piece, &mut out) {
            Ok(HandshakeStatus::InProgress { consumed }) => {
                assert_eq!(consumed, piece.len(), "in progress must consume everything");
                total += consumed;
            }
            Ok(HandshakeStatus::Done { consumed }) => {
                assert!(consumed <= piece.len());
                total += consumed;
                assert_eq!(total, 1 + 2 * HANDSHAKE_SIZE);
                break;
            }
            Err(_) => break,
        }
        assert!(out.len() <= 1 + 2 * HANDSHAKE_SIZE);
    }
    let _ = server.digest_scheme();

    // The client side (relays pull/push) reads S0 S1 S2 from the same bytes.
    let mut client = ClientHandshake::new(99, &mut fill);
    let mut out = Vec::new();
    client.start(&mut out);
    for piece in slices(stream, &mut rng, 2 * HANDSHAKE_SIZE) {
        match client.feed(piece, &mut out) {
            Ok(HandshakeStatus::InProgress { .. }) => {}
            Ok(HandshakeStatus::Done { consumed }) => {
                assert!(consumed <= piece.len());
                break;
            }
            Err(_) => break,
        }
    }
    let _ = (client.server_used_digest(), client.s2_verified());
});
