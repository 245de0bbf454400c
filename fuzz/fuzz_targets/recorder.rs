//! A Recorder (FLV or MP4 files, their index and replay playlist) fed arbitrary (video?,
//! timestamp, tag) records, metadata, timer ticks, republishes and write failures; the file
//! operations are discarded. Input: a configuration byte (format, interval, size and frame
//! caps, keyframes only, append, manual start/stop), then records in the format of
//! `nginx_rtmp_rs_fuzz::MediaOps`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nginx_rtmp_rs::conf::RtmpConf;
use nginx_rtmp_rs::files::Now;
use nginx_rtmp_rs::record::{ExistingFile, Recorder};
use nginx_rtmp_rs_fuzz::{drive, MediaOps};

fn settings(cfg: u8) -> nginx_rtmp_rs::conf::RecordSettings {
    let mut c = RtmpConf::default();
    let mut set = |name: &str, args: &[&str]| {
        c.apply(name, args)
            .unwrap_or_else(|e| panic!("{name} {args:?}: {e}"));
    };
    set("record_path", &["/fuzz/rec"]);
    let mut words = vec![if cfg & 16 != 0 { "keyframes" } else { "all" }];
    if cfg & 64 != 0 {
        words.push("manual");
    }
    set("record", &words);
    if cfg & 1 != 0 {
        set("record_format", &["mp4"]);
    }
    if cfg & 2 != 0 {
        set("record_interval", &["300ms"]);
        set("record_unique", &["on"]);
    }
    if cfg & 4 != 0 {
        set("record_max_size", &["64K"]);
    }
    if cfg & 8 != 0 {
        set("record_max_frames", &["30"]);
    }
    if cfg & 32 != 0 {
        set("record_append", &["on"]);
        set("record_suffix", &["-%Y%m%d-%T.flv"]);
    }
    c.resolve().record
}

fn existing(_: &std::path::Path) -> Option<ExistingFile> {
    Some(ExistingFile {
        size: 4096,
        last_timestamp: Some(0xFFFF_FF00),
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&cfg, records)) = data.split_first() else {
        return;
    };
    let conf = settings(cfg);
    let mut rec = Recorder::new("rec1", &conf, "stream", 90, existing);
    if cfg & 64 != 0 {
        let now = Now {
            mono_ms: 5_000_000,
            unix_ms: 1_700_000_000_000,
        };
        let mut ops = Vec::new();
        let _ = rec.start(now, &mut ops);
        let _ = rec.stop(&mut ops);
        let _ = rec.start(now, &mut ops);
    }
    drive(&mut rec, MediaOps::new(records), 1_700_000_000_000);
    let _ = rec.take_events();
    let _ = rec.now_recording();
});
