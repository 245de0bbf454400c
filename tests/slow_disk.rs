//! A slow disk must never delay RTMP players: HLS and DASH files are written on nginx's thread
//! pool, not on the event loop. nginx runs with `tests/slowfs/slowfs.c` preloaded, which makes
//! every open, rename, unlink and mkdir under the stream's output directories wait 300 ms (a
//! busy network disk); a player's largest gap between messages must stay under 150 ms while
//! both outputs keep being written and never list a file that is not whole on disk. (With the
//! files written on the event loop, the same run shows gaps of 300 ms and more.)

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use common::dash::{DashWatcher, Stream};
use common::hls::{read_media, Checks};
use common::*;

/// Delay of every file operation under the output directories.
const DELAY_MS: u64 = 300;
/// Largest gap between a player's messages that a stream at 25 fps may show.
const MAX_GAP: Duration = Duration::from_millis(150);

/// Builds the preload library next to the test binaries (gcc is a build dependency).
fn slowfs_library() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let out = exe
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .join("libslowfs.so");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/slowfs/slowfs.c");
    let status = Command::new("cc")
        .args(["-shared", "-fPIC", "-O2", "-Wall", "-Werror", "-o"])
        .arg(&out)
        .arg(&src)
        .arg("-ldl")
        .status()
        .expect("run cc (install gcc)");
    assert!(status.success(), "cc {} failed", src.display());
    out
}

#[test]
fn a_slow_disk_never_delays_rtmp_players() {
    let lib = slowfs_library();
    let lib = lib.to_str().expect("utf-8 path");
    let delay = DELAY_MS.to_string();
    let app = "hls on; hls_path {PREFIX}/tmp/slowdisk-hls; hls_fragment 2s; \
               dash on; dash_path {PREFIX}/tmp/slowdisk; dash_fragment 2s;";
    let server = Server::start_with_env(
        &live_rtmp_block("", app),
        "",
        &[
            ("LD_PRELOAD", lib),
            ("SLOWFS_MARK", "/slowdisk"),
            ("SLOWFS_DELAY_MS", &delay),
        ],
    );
    let mut checks = Checks::new();
    let mut publisher = publish(&server.rtmp_url("live/cam"), 16);
    let stream = Stream::new(&server, "slowdisk", "cam", false);
    // The MPD is under {PREFIX}/tmp/slowdisk/, which Stream expects for application
    // "slowdisk"; the application here is "live" with that dash_path.
    let stream = Stream {
        mpd: server.prefix.join("tmp/slowdisk/cam.mpd"),
        ..stream
    };
    let watcher = DashWatcher::start(&stream);
    thread::sleep(Duration::from_secs(2));

    let mut player = RtmpClient::connect(&server.rtmp_addr(), "live").expect("player connects");
    let codes = player.play("cam").expect("play");
    checks.check(codes.iter().any(|c| c == "NetStream.Play.Start"), || {
        format!("play codes {codes:?}")
    });
    // Skip the join burst (the cached GOP), then measure 8 s of steady playback while the
    // outputs cut four segments each, every file operation taking 300 ms.
    let arrivals = player.media_arrivals_for(Duration::from_secs(9));
    let first = arrivals.first().copied().unwrap_or_else(Instant::now);
    let steady: Vec<Instant> = arrivals
        .into_iter()
        .filter(|t| t.duration_since(first) >= Duration::from_secs(1))
        .collect();
    let largest_gap = steady
        .windows(2)
        .map(|w| w[1].duration_since(w[0]))
        .max()
        .unwrap_or(Duration::MAX);
    println!(
        "{} messages in 8 s of steady playback, largest gap {largest_gap:?}",
        steady.len()
    );
    checks.check(steady.len() >= 8 * 25, || {
        format!("only {} messages in 8 s", steady.len())
    });
    checks.check(largest_gap < MAX_GAP, || {
        format!(
            "a player waited {largest_gap:?} between messages while the disk took {DELAY_MS} ms \
             per operation (at most {MAX_GAP:?} allowed)"
        )
    });

    // Both outputs were written, in order, through the slow disk.
    let playlist = server.prefix.join("tmp/slowdisk-hls/cam.m3u8");
    match read_media(&playlist) {
        Ok(s) => {
            let uris = s.uris();
            checks.check(uris.len() >= 3, || {
                format!(
                    "the HLS playlist lists {} segments:\n{}",
                    uris.len(),
                    s.text
                )
            });
            for uri in &uris {
                let path = playlist.with_file_name(uri);
                checks.check(path.is_file(), || format!("{uri} is listed but missing"));
            }
        }
        Err(e) => checks.fail(format!("no HLS playlist: {e}")),
    }
    let report = watcher.stop();
    println!("DASH: {}", report.summary());
    checks.check(report.max_listed >= 3, || {
        format!("the MPD listed at most {} segments", report.max_listed)
    });
    // What a slow disk cannot excuse: listing a file before it is whole, deleting one still
    // listed, a torn MPD. (That a segment's availability time, the end of its media, passes
    // before the disk has written it is what a disk slower than real time means; the MPD
    // lists it only once it is there.)
    let broken = report
        .torn
        .iter()
        .chain(&report.early)
        .chain(&report.deleted_while_listed)
        .chain(&report.init_problems)
        .chain(&report.other);
    for v in broken {
        checks.fail(format!("DASH: {v}"));
    }
    checks.check(publisher.is_running(), || {
        format!("the publisher stopped early: {}", publisher.stderr())
    });
    drop(player);
    let _ = publisher.wait_timeout(Duration::from_secs(10));
    checks.finish(server);
}
