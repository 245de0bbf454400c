//! DashStream (and through it fMP4 fragments and the MPD) fed arbitrary
//! (video?, timestamp, tag) records, metadata, timer ticks, republishes and write failures;
//! the file operations are discarded. Input: a configuration byte (fragment length, nested,
//! clock compensation, cleanup), then records in the format of `nginx_rtmp_rs_fuzz::MediaOps`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nginx_rtmp_rs::conf::RtmpConf;
use nginx_rtmp_rs::dash::segmenter::DashStream;
use nginx_rtmp_rs_fuzz::{drive, MediaOps};

fn settings(cfg: u8) -> nginx_rtmp_rs::conf::DashSettings {
    let mut c = RtmpConf::default();
    let mut set = |name: &str, args: &[&str]| {
        c.apply(name, args)
            .unwrap_or_else(|e| panic!("{name} {args:?}: {e}"));
    };
    set("dash", &["on"]);
    set("dash_path", &["/fuzz/dash"]);
    let short = cfg & 1 != 0;
    set("dash_fragment", &[if short { "100ms" } else { "1s" }]);
    set(
        "dash_playlist_length",
        &[if short { "500ms" } else { "4s" }],
    );
    if cfg & 2 != 0 {
        set("dash_nested", &["on"]);
    }
    match (cfg >> 2) & 3 {
        1 => set("dash_clock_compensation", &["ntp"]),
        2 => {
            set("dash_clock_compensation", &["http_head"]);
            set("dash_clock_helper_uri", &["https://time.example/"]);
        }
        _ => {}
    }
    if cfg & 16 != 0 {
        set("dash_cleanup", &["off"]);
    }
    c.resolve().dash
}

fuzz_target!(|data: &[u8]| {
    let Some((&cfg, records)) = data.split_first() else {
        return;
    };
    let settings = settings(cfg);
    let mut dash = DashStream::new(&settings, "live", "stream", None);
    drive(&mut dash, MediaOps::new(records), 1_700_000_000_000);
});
