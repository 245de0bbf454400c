//! Parsers of the module's HTTP side and shared memory, fed arbitrary bytes: callback response
//! heads (a hostile or broken auth server), /control request lines (anyone who reaches the
//! location), and /stat parts decoded from the shared zone (another worker's possibly torn
//! write). Input: one selector byte, one slicing byte, then the data.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nginx_rtmp_rs::control::parse_control;
use nginx_rtmp_rs::notify::{verdict, Call, ResponseParser};
use nginx_rtmp_rs::stat::StatSnapshot;
use nginx_rtmp_rs_fuzz::{slices, Rng};

fuzz_target!(|data: &[u8]| {
    let [which, seed, rest @ ..] = data else {
        return;
    };
    match which % 3 {
        0 => {
            let mut parser = ResponseParser::new(usize::from(*seed) * 64);
            let mut rng = Rng::new(*seed);
            let mut result = None;
            for piece in slices(rest, &mut rng, 512) {
                match parser.feed(piece) {
                    Ok(None) => {}
                    Ok(Some(head)) => {
                        result = Some(Ok(head));
                        break;
                    }
                    Err(e) => {
                        result = Some(Err(e));
                        break;
                    }
                }
            }
            let result = result.unwrap_or_else(|| parser.finish());
            for call in [Call::Publish, Call::Update, Call::Done] {
                let _ = verdict(result.as_ref(), seed & 1 == 1, call);
            }
        }
        1 => {
            let text = String::from_utf8_lossy(rest);
            let (path, args) = text.split_once('?').unwrap_or((&text, ""));
            if let Ok(req) = parse_control(path, args) {
                let _ = req.selects(0, "live", "x", "127.0.0.1", 1, true);
            }
        }
        _ => {
            if let Ok(s) = StatSnapshot::decode(rest) {
                // What decodes must encode and decode to the same document (compared as
                // bytes: a NaN frame rate is a valid value that is not equal to itself).
                let bytes = s.encode();
                let again = StatSnapshot::decode(&bytes).expect("re-decode");
                assert_eq!(again.encode(), bytes);
            }
        }
    }
});
