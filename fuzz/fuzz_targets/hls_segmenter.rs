//! HlsStream (and through it the TS muxer, AAC/ADTS, keys, playlists) fed arbitrary
//! (video?, timestamp, tag) records, metadata, timer ticks, republishes and write failures;
//! the file operations are discarded. Input: a configuration byte (fragment length, keys,
//! aligned slicing, naming, event type, nested, datetime, variant), then records in the
//! format of `nginx_rtmp_rs_fuzz::MediaOps`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nginx_rtmp_rs::conf::RtmpConf;
use nginx_rtmp_rs::hls::segmenter::HlsStream;
use nginx_rtmp_rs_fuzz::{drive, MediaOps};

fn settings(cfg: u8) -> nginx_rtmp_rs::conf::HlsSettings {
    let mut c = RtmpConf::default();
    let mut set = |name: &str, args: &[&str]| {
        c.apply(name, args)
            .unwrap_or_else(|e| panic!("{name} {args:?}: {e}"));
    };
    set("hls", &["on"]);
    set("hls_path", &["/fuzz/hls"]);
    let short = cfg & 1 != 0;
    set("hls_fragment", &[if short { "100ms" } else { "1s" }]);
    set("hls_playlist_length", &[if short { "500ms" } else { "4s" }]);
    set("hls_max_audio_delay", &["100ms"]);
    set("hls_audio_buffer_size", &["4k"]);
    if cfg & 2 != 0 {
        set("hls_keys", &["on"]);
        set("hls_fragments_per_key", &["2"]);
    }
    if cfg & 4 != 0 {
        set("hls_fragment_slicing", &["aligned"]);
    }
    if cfg & 8 != 0 {
        set("hls_fragment_naming", &["timestamp"]);
    }
    if cfg & 16 != 0 {
        set("hls_type", &["event"]);
    }
    if cfg & 32 != 0 {
        set("hls_nested", &["on"]);
    }
    if cfg & 64 != 0 {
        set("hls_datetime", &["system"]);
    }
    if cfg & 128 != 0 {
        set("hls_variant", &["_low", "BANDWIDTH=288000"]);
    }
    c.resolve().hls
}

fuzz_target!(|data: &[u8]| {
    let Some((&cfg, records)) = data.split_first() else {
        return;
    };
    let settings = settings(cfg);
    let name = if cfg & 128 != 0 {
        "stream_low"
    } else {
        "stream"
    };
    let mut fill = |b: &mut [u8]| b.iter_mut().for_each(|x| *x = 0x42);
    let mut hls = HlsStream::new(&settings, "live", name, None, &mut fill);
    drive(&mut hls, MediaOps::new(records), 1_700_000_000_000);
    let _ = hls.variant_info();
});
