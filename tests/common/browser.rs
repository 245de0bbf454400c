//! What the browser tests share: the player pages' location and the checks of a live run.

use serde_json::Value;

use super::hls::Checks;
use super::manifest_dir;

/// The player pages (tests/browser) at `/player/`, with hls.js, dash.js and mpegts.js from npm
/// beside them, as the pages load them.
pub fn player_locations() -> String {
    let dir = manifest_dir().join("tests/browser");
    let modules = dir.join("node_modules");
    let mut out = format!(
        "location /player/ {{\n\
         \x20   alias {}/;\n\
         \x20   types {{ text/html html; application/javascript js; }}\n\
         }}\n",
        dir.display()
    );
    for (name, file) in [
        ("hls.min.js", "hls.js/dist/hls.min.js"),
        ("dash.all.min.js", "dashjs/dist/modern/umd/dash.all.min.js"),
        ("mpegts.js", "mpegts.js/dist/mpegts.js"),
    ] {
        out.push_str(&format!(
            "location = /player/{name} {{\n\
             \x20   alias {};\n\
             \x20   default_type application/javascript;\n\
             }}\n",
            modules.join(file).display()
        ));
    }
    out
}

/// The number at `path` in play.mjs's JSON.
pub fn num(v: &Value, path: &[&str]) -> Option<f64> {
    let mut cur = v;
    for key in path {
        cur = cur.get(key)?;
    }
    cur.as_f64()
}

/// A low-latency run's bars: it played at least `min_playing_ms`, never stalled longer than
/// `max_stall_ms` (a `waiting` period or a frozen `currentTime`), and the median of the latency
/// samples under `latency_key` (`{count, median, ...}`, seconds) is at most `max_median_s` over
/// at least 200 samples.
pub fn check_low_latency_run(
    checks: &mut Checks,
    v: &Value,
    latency_key: &str,
    min_playing_ms: f64,
    max_stall_ms: f64,
    max_median_s: f64,
) {
    let playing = num(v, &["media", "playingMs"]).unwrap_or(0.0);
    checks.check(playing >= min_playing_ms, || {
        format!("played {playing} ms, need {min_playing_ms}")
    });
    for key in ["longestWaitMs", "longestFreezeMs"] {
        let stall = num(v, &["media", key]);
        checks.check(stall.is_some_and(|s| s <= max_stall_ms), || {
            format!("stalled: {key} {stall:?} ms (at most {max_stall_ms})")
        });
    }
    let median = num(v, &[latency_key, "median"]);
    let samples = num(v, &[latency_key, "count"]).unwrap_or(0.0);
    checks.check(
        samples >= 200.0 && median.is_some_and(|m| m <= max_median_s),
        || {
            format!(
                "median latency {median:?} s over {samples} samples (at most {max_median_s} s): {}",
                v[latency_key]
            )
        },
    );
}
