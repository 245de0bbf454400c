//! DashStream (and through it fMP4 fragments and the MPD) fed arbitrary
//! (video?, timestamp, tag) records, metadata, timer ticks, republishes and write failures;
//! the file operations are discarded. Input: a configuration byte (fragment length, nested,
//! clock compensation or low-latency DASH chunks, cleanup; beside it HLS, nested, with LL-HLS
//! parts), then records in the format of `nginx_rtmp_rs_fuzz::MediaOps`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nginx_rtmp_rs::conf::RtmpConf;
use nginx_rtmp_rs::dash::segmenter::{DashStream, Role};
use nginx_rtmp_rs::files::Now;
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
        3 => {
            // Low-latency DASH: chunked segments growing on disk, the open one announced.
            set("dash_low_latency", &["on"]);
            set("dash_chunk_duration", &["100ms"]);
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
    if cfg & 32 != 0 {
        // HLS beside DASH: every file also gets an HLS name, playlists beside the MPD.
        let mut c = RtmpConf::default();
        let _ = c.apply("hls", &["on"]);
        let _ = c.apply("hls_path", &["/fuzz/hls"]);
        if cfg & 64 != 0 {
            let _ = c.apply("hls_nested", &["on"]);
        }
        if cfg & 4 != 0 {
            // LL-HLS parts (short ones: many cuts).
            let _ = c.apply("hls_low_latency", &["on"]);
            let _ = c.apply("hls_part_duration", &["100ms"]);
        }
        let hls = c.resolve().hls;
        let playlist = std::path::PathBuf::from("/fuzz/hls/stream.m3u8");
        let now = Now {
            mono_ms: 0,
            unix_ms: 1_700_000_000_000,
        };
        dash.attach_hls(&hls, playlist, now, &mut Vec::new());
    }
    if cfg & 128 != 0 {
        // The rendition of video track 1 (multitrack publishers) sees the same messages.
        if let Some(mut rendition) = dash.rendition(Role::Video(1)) {
            drive(&mut rendition, MediaOps::new(records), 1_700_000_000_000);
            let now = Now {
                mono_ms: 60_000,
                unix_ms: 1_700_000_060_000,
            };
            if let Some(entry) = rendition.rendition_entry(now) {
                dash.set_rendition(Role::Video(1), entry);
            }
        }
    }
    drive(&mut dash, MediaOps::new(records), 1_700_000_000_000);
});
