//! The live page (`www/`: index.html, app.js, style.css) the way a viewer uses it: Debian's
//! headless Chromium opens `http://HOST/`, the page lists the streams of `/stat?format=json`,
//! and a click on a stream plays it with hls.js or dash.js, both served by nginx from npm
//! (`tests/browser/node_modules`, never a CDN). `tests/browser/page.mjs` drives the browser.
//!
//! - [`example_page_lists_and_plays_a_live_stream`]: `nginx-conf/nginx.conf` itself (its `/`,
//!   `/vendor/`, `/stat`, `/hls/` and `/dash/` locations), with `www/` and `vendor/` linked into
//!   the prefix as `scripts/run.sh` does; ffmpeg publishes, the row must show the stream's
//!   resolution and codecs, and the video must play with hls.js and with dash.js.
//! - [`example_page_lists_and_plays_a_finished_replay`]: the same, with the example's
//!   `replay` recorder and `/replays/` location: a recording is not listed while it is being
//!   written; once the publisher left, the page lists it (date, size) and a click plays it with
//!   hls.js as a VOD.
//! - [`page_renders_names_as_text_and_shows_empty_and_error_states`]: the same files with a
//!   `/stat` answered from a file and a `/replays/` listing of files made by the test, so the
//!   page's rendering is checked on its own: hostile stream and file names stay text (and are
//!   encoded in URLs), replays come newest first, and the empty and error states say what to do.
//!
//! Not run against the C module (`RTMP_IT_TARGET=c`): it has no JSON statistics.

mod common;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use common::dash::Stream;
use common::ffmpeg::publish;
use common::hls::{
    access_log_errors_in, http_get, json_number, run_node, wait_segments, Checks, ExampleNginx,
};
use common::*;

fn browser_dir() -> PathBuf {
    manifest_dir().join("tests/browser")
}

fn www_dir() -> PathBuf {
    manifest_dir().join("www")
}

fn hls_js() -> PathBuf {
    browser_dir().join("node_modules/hls.js/dist/hls.min.js")
}

fn dash_js() -> PathBuf {
    browser_dir().join("node_modules/dashjs/dist/modern/umd/dash.all.min.js")
}

fn mpegts_js() -> PathBuf {
    browser_dir().join("node_modules/mpegts.js/dist/mpegts.js")
}

/// The page needs Node.js with playwright-core, the two players and Debian's Chromium.
fn require_browser() {
    assert!(
        browser_dir().join("node_modules/playwright-core").is_dir()
            && hls_js().is_file()
            && dash_js().is_file()
            && mpegts_js().is_file(),
        "tests/browser has no node_modules (or no hls.js/dashjs/mpegts.js): run: npm ci --prefix tests/browser"
    );
    assert!(
        Path::new("/usr/bin/chromium").is_file(),
        "Debian's chromium is missing: apt-get install chromium (scripts/test.sh does)"
    );
    assert!(
        www_dir().join("index.html").is_file(),
        "www/index.html is missing"
    );
}

/// What `scripts/run.sh` puts into its prefix for the example config: `www` (the page) and
/// `vendor/` (the players), as links into this repository.
fn link_page_into(prefix: &Path) {
    let vendor = prefix.join("vendor");
    fs::create_dir_all(&vendor).expect("create vendor/");
    symlink(www_dir(), prefix.join("www")).expect("link www");
    symlink(hls_js(), vendor.join("hls.min.js")).expect("link hls.min.js");
    symlink(dash_js(), vendor.join("dash.all.min.js")).expect("link dash.all.min.js");
    symlink(mpegts_js(), vendor.join("mpegts.js")).expect("link mpegts.js");
}

/// Result of `node tests/browser/page.mjs`.
#[derive(Debug)]
struct PageRun {
    json: String,
    status: Option<ExitStatus>,
    stderr: String,
}

impl PageRun {
    fn has(&self, fragment: &str) -> bool {
        self.json.contains(fragment)
    }

    fn number(&self, key: &str) -> Option<f64> {
        json_number(&self.json, key)
    }
}

/// Runs `node page.mjs <url> <args>` in its own process group (an overrun kills Chromium too).
fn run_page(url: &str, args: &[&str], limit: Duration) -> PageRun {
    let all: Vec<&str> = std::iter::once(url).chain(args.iter().copied()).collect();
    let r = run_node("page.mjs", &all, limit);
    println!(
        "page.mjs {args:?}: {:?}\n{}\nnode stderr:\n{}",
        r.status,
        r.json.trim(),
        r.stderr
    );
    PageRun {
        json: r.json,
        status: r.status,
        stderr: r.stderr,
    }
}

/// A static file answers 200 with `content_type` (and, for pages, the example's policy).
fn check_static(checks: &mut Checks, port: u16, path: &str, content_type: &str) {
    match http_get(port, path) {
        Ok(r) => {
            checks.check(r.status == 200, || format!("GET {path}: {}", r.status));
            checks.check(
                r.header("Content-Type")
                    .is_some_and(|t| t.starts_with(content_type)),
                || {
                    format!(
                        "GET {path}: Content-Type {:?}, expected {content_type}",
                        r.header("Content-Type")
                    )
                },
            );
            checks.check(
                r.header("X-Content-Type-Options") == Some("nosniff"),
                || format!("GET {path}: no X-Content-Type-Options: nosniff"),
            );
            if content_type == "text/html" {
                checks.check(
                    r.header("Content-Security-Policy")
                        .is_some_and(|p| p.contains("default-src 'self'")),
                    || {
                        format!(
                            "GET {path}: Content-Security-Policy {:?} should keep the page on \
                             this server (default-src 'self')",
                            r.header("Content-Security-Policy")
                        )
                    },
                );
            }
        }
        Err(e) => checks.fail(e),
    }
}

/// page.mjs found the row, played the stream far enough, and nothing went wrong.
fn check_played(checks: &mut Checks, r: &PageRun, what: &str) {
    checks.check(r.status.is_some_and(|s| s.success()), || {
        format!(
            "{what}: node page.mjs failed ({:?}):\n{}\n{}",
            r.status, r.json, r.stderr
        )
    });
    checks.check(r.has("\"rowOk\":true"), || {
        format!(
            "{what}: no row for the stream with 320x240 and H264 within 20 s: {}",
            r.json
        )
    });
    checks.check(r.number("advanced").is_some_and(|a| a >= 3.0), || {
        format!(
            "{what}: video.currentTime advanced {:?} s in 10 s after the click (need >= 3): {}",
            r.number("advanced"),
            r.json
        )
    });
    checks.check(r.number("errorCount") == Some(0.0), || {
        format!("{what}: page errors: {}", r.json)
    });
    checks.check(r.number("outsideCount") == Some(0.0), || {
        format!(
            "{what}: the page asked servers other than this one: {}",
            r.json
        )
    });
}

#[test]
fn example_page_lists_and_plays_a_live_stream() {
    require_browser();
    let mut nginx = ExampleNginx::start();
    link_page_into(&nginx.prefix);
    let mut checks = Checks::new();
    let port = nginx.http_port;

    check_static(&mut checks, port, "/", "text/html");
    check_static(&mut checks, port, "/app.js", "text/javascript");
    check_static(&mut checks, port, "/style.css", "text/css");
    check_static(&mut checks, port, "/vendor/hls.min.js", "text/javascript");
    check_static(
        &mut checks,
        port,
        "/vendor/dash.all.min.js",
        "text/javascript",
    );

    let name = "page";
    let secs = 60;
    let mut p = publish(
        &format!("rtmp://127.0.0.1:{}/live/{name}", nginx.rtmp_port),
        secs,
    );
    // A viewer clicks a stream that has been live for a moment: both outputs have segments.
    let hls = checks.ok(wait_segments(
        &nginx.prefix.join(format!("tmp/hls/{name}.m3u8")),
        3,
    ));
    let dash = Stream {
        mpd: nginx.prefix.join(format!("tmp/dash/{name}.mpd")),
        url_path: format!("/dash/{name}.mpd"),
        url: format!("http://127.0.0.1:{port}/dash/{name}.mpd"),
        http_port: port,
        disk_root: nginx.prefix.join("tmp/dash"),
    };
    let dash = checks.ok(dash.wait_segments(3));

    match http_get(port, "/stat?format=json") {
        Ok(r) => {
            checks.check(r.status == 200, || {
                format!("GET /stat?format=json: {}", r.status)
            });
            checks.check(
                r.header("Content-Type")
                    .is_some_and(|t| t.starts_with("application/json")),
                || format!("/stat JSON Content-Type {:?}", r.header("Content-Type")),
            );
            let body = String::from_utf8_lossy(&r.body);
            checks.check(body.contains(&format!("\"{name}\"")), || {
                format!("/stat?format=json does not list the stream {name:?}:\n{body}")
            });
        }
        Err(e) => checks.fail(e),
    }

    let url = format!("http://127.0.0.1:{port}/");
    let stream = format!("live/{name}");
    let limit = Duration::from_secs(90);
    if hls.is_some() {
        let r = run_page(&url, &["--stream", &stream, "--format", "hls"], limit);
        check_played(&mut checks, &r, "HLS");
        checks.check(r.has("\"engine\":\"hls.js "), || {
            format!("the page did not play with hls.js: {}", r.json)
        });
        // From the playing frame's PROGRAM-DATE-TIME.
        checks.check(r.has("\"latency\":\"latency "), || {
            format!("the page shows no latency for HLS: {}", r.json)
        });
    }
    if dash.is_some() {
        let r = run_page(&url, &["--stream", &stream, "--format", "dash"], limit);
        check_played(&mut checks, &r, "DASH");
        checks.check(r.has("\"engine\":\"dash.js "), || {
            format!("the page did not play with dash.js: {}", r.json)
        });
    }
    // HTTP-FLV from the example's `location /live { flv_live on; }`, with the page's
    // latency readout (what is buffered: FLV has no wall clock).
    let r = run_page(&url, &["--stream", &stream, "--format", "flv"], limit);
    check_played(&mut checks, &r, "HTTP-FLV");
    checks.check(r.has("\"engine\":\"mpegts.js "), || {
        format!("the page did not play with mpegts.js: {}", r.json)
    });
    checks.check(r.has("\"latency\":\"buffer "), || {
        format!("the page shows no latency for HTTP-FLV: {}", r.json)
    });

    p.kill();
    let log = nginx.stop();
    let bad: Vec<&str> = log.lines().filter(|l| is_forbidden_log_line(l)).collect();
    checks.check(bad.is_empty(), || {
        format!("error log has forbidden lines:\n{}", bad.join("\n"))
    });
    // The page, the players and the streams: no request of the browser was refused.
    let errors = access_log_errors_in(&nginx.prefix.join("logs/access.log"), "/");
    checks.check(errors.is_empty(), || {
        format!("HTTP errors in the access log:\n{}", errors.join("\n"))
    });
    if !checks.is_empty() {
        println!("--- logs ---\n{}", nginx.logs());
    }
    checks.assert_ok();
}

/// The name (without `.m3u8`) of a finished recording's playlist in `dir`: one that ends with
/// `#EXT-X-ENDLIST`.
fn finished_replay(dir: &Path) -> Option<String> {
    fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .find_map(|e| {
            let path = e.path();
            let stem = path
                .file_name()?
                .to_str()?
                .strip_suffix(".m3u8")?
                .to_string();
            let text = fs::read_to_string(&path).ok()?;
            text.ends_with("#EXT-X-ENDLIST\n").then_some(stem)
        })
}

/// `GET path` answers 200 with `content_type` and `Cache-Control: no-cache`.
fn check_replay_file(checks: &mut Checks, port: u16, path: &str, content_type: &str) {
    match http_get(port, path) {
        Ok(r) => checks.check(
            r.status == 200
                && r.header("Content-Type") == Some(content_type)
                && r.header("Cache-Control") == Some("no-cache"),
            || {
                format!(
                    "GET {path}: {} {:?} {:?}, expected {content_type}, no-cache",
                    r.status,
                    r.header("Content-Type"),
                    r.header("Cache-Control")
                )
            },
        ),
        Err(e) => checks.check(false, || e),
    };
}

/// The `replays` object of page.mjs's JSON (`Null` when missing).
fn replays_of(json: &str) -> serde_json::Value {
    serde_json::from_str::<serde_json::Value>(json.trim()).unwrap_or_default()["replays"].clone()
}

/// The names of the replay rows, in the page's order.
fn replay_names(replays: &serde_json::Value) -> Vec<String> {
    replays["rows"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .filter_map(|r| r["name"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn example_page_lists_and_plays_a_finished_replay() {
    require_browser();
    let mut nginx = ExampleNginx::start();
    link_page_into(&nginx.prefix);
    let mut checks = Checks::new();
    let port = nginx.http_port;
    let url = format!("http://127.0.0.1:{port}/");
    let dir = nginx.prefix.join("tmp/replays");
    let secs = 12;
    let mut p = publish(
        &format!("rtmp://127.0.0.1:{}/live/replay", nginx.rtmp_port),
        secs,
    );

    // While it is being recorded, its playlist is on disk (an EVENT one) but not listed: the
    // page knows it is not finished from /stat's recorders.
    let deadline = Instant::now() + Duration::from_secs(10);
    let growing = || {
        fs::read_dir(&dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .any(|e| e.file_name().to_string_lossy().ends_with(".m3u8"))
            })
            .unwrap_or(false)
    };
    while !growing() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(100));
    }
    checks.check(growing(), || {
        format!("no playlist in {} while recording", dir.display())
    });
    let r = run_page(&url, &[], Duration::from_secs(60));
    let replays = replays_of(&r.json);
    checks.check(
        r.has("\"replaysState\":\"ok\"")
            && replays["shown"] == false
            && replay_names(&replays).is_empty(),
        || {
            format!(
                "a recording still being written is listed as a replay (or no listing): {}",
                r.json
            )
        },
    );
    checks.check(r.has("\"recording\":\"REC\""), || {
        format!("the live row should show REC: {}", r.json)
    });

    checks.check(
        p.wait_timeout(Duration::from_secs(u64::from(secs) + 15))
            .is_some(),
        || "the publisher did not finish".into(),
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    while finished_replay(&dir).is_none() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(100));
    }
    let Some(name) = finished_replay(&dir) else {
        p.kill();
        nginx.stop();
        panic!("no finished replay playlist in {}", dir.display());
    };
    checks.check(name.starts_with("replay-"), || {
        format!("the replay is named {name}, expected replay-<unix time>")
    });

    // The listing the page reads, and the replay's files as players get them.
    match http_get(port, "/replays/") {
        Ok(r) => {
            let body = String::from_utf8_lossy(&r.body);
            checks.check(
                r.status == 200
                    && r.header("Content-Type") == Some("application/json")
                    && body.contains(&format!("\"name\":\"{name}.m3u8\"")),
                || {
                    format!(
                        "GET /replays/: {} {:?}:\n{body}",
                        r.status,
                        r.header("Content-Type")
                    )
                },
            );
        }
        Err(e) => checks.fail(e),
    }
    check_replay_file(
        &mut checks,
        port,
        &format!("/replays/{name}.m3u8"),
        "application/vnd.apple.mpegurl",
    );
    check_replay_file(
        &mut checks,
        port,
        &format!("/replays/{name}.mp4"),
        "video/mp4",
    );

    // A viewer clicks it: it plays from its start, as a VOD of the publish's length.
    let r = run_page(
        &url,
        &["--replay", &name, "--seconds", "6", "--min-advance", "3"],
        Duration::from_secs(90),
    );
    checks.check(r.status.is_some_and(|s| s.success()), || {
        format!(
            "node page.mjs --replay failed ({:?}):\n{}\n{}",
            r.status, r.json, r.stderr
        )
    });
    checks.check(r.has("\"rowOk\":true"), || {
        format!("no replay row {name} with a date and a size: {}", r.json)
    });
    checks.check(r.number("advanced").is_some_and(|a| a >= 3.0), || {
        format!(
            "the replay advanced {:?} s in 6 s after the click (need >= 3): {}",
            r.number("advanced"),
            r.json
        )
    });
    let duration = r.number("duration").unwrap_or(0.0);
    checks.check(
        (f64::from(secs) - 1.0..=f64::from(secs) + 1.0).contains(&duration),
        || {
            format!(
                "the replay's duration is {duration} s, the publish lasted {secs} s: {}",
                r.json
            )
        },
    );
    checks.check(
        r.has(&format!("\"title\":\"Replay: {name}\"")) && r.has("\"engine\":\"hls.js "),
        || {
            format!(
                "the player should say Replay: {name} and hls.js: {}",
                r.json
            )
        },
    );
    checks.check(r.number("errorCount") == Some(0.0), || {
        format!("page errors: {}", r.json)
    });
    checks.check(r.number("outsideCount") == Some(0.0), || {
        format!("the page asked servers other than this one: {}", r.json)
    });

    let log = nginx.stop();
    let bad: Vec<&str> = log.lines().filter(|l| is_forbidden_log_line(l)).collect();
    checks.check(bad.is_empty(), || {
        format!("error log has forbidden lines:\n{}", bad.join("\n"))
    });
    let errors = access_log_errors_in(&nginx.prefix.join("logs/access.log"), "/");
    checks.check(errors.is_empty(), || {
        format!("HTTP errors in the access log:\n{}", errors.join("\n"))
    });
    if !checks.is_empty() {
        println!("--- logs ---\n{}", nginx.logs());
    }
    checks.assert_ok();
}

/// The page's locations as `nginx-conf/nginx.conf` has them, on this repository's files, a
/// `/stat` answered from `{PREFIX}/stat.json`, and `/replays/` listing `{PREFIX}/replays/`.
fn page_locations_with_file_stat() -> String {
    format!(
        "location = / {{\n\
         \x20   root {www};\n\
         \x20   try_files /index.html =404;\n\
         \x20   types {{ text/html html; }}\n\
         }}\n\
         location / {{\n\
         \x20   root {www};\n\
         \x20   types {{ text/html html; text/css css; text/javascript js; }}\n\
         }}\n\
         location = /vendor/hls.min.js {{ alias {hls}; default_type text/javascript; }}\n\
         location = /vendor/dash.all.min.js {{ alias {dash}; default_type text/javascript; }}\n\
         location = /stat {{\n\
         \x20   alias {{PREFIX}}/stat.json;\n\
         \x20   default_type application/json;\n\
         \x20   add_header Cache-Control no-store;\n\
         }}\n\
         location /replays/ {{\n\
         \x20   alias {{PREFIX}}/replays/;\n\
         \x20   autoindex on;\n\
         \x20   autoindex_format json;\n\
         }}\n",
        www = www_dir().display(),
        hls = hls_js().display(),
        dash = dash_js().display(),
    )
}

/// A `/stat?format=json` document as docs/stat.md describes it, with these streams.
fn stat_json(streams: &[String]) -> String {
    format!(
        "{{\"nginx_version\":\"1.28.3\",\"module_version\":\"0.1.0\",\"compiler\":\"rustc\",\
         \"built\":\"Jan  1 2025 00:00:00\",\"pid\":1,\"uptime_s\":3600,\"naccepted\":3,\
         \"bytes_in\":0,\"bytes_out\":0,\"bw_in\":0,\"bw_out\":0,\"workers\":[],\
         \"servers\":[{{\"index\":0,\"applications\":[\
         {{\"name\":\"live\",\"live\":true,\"streams\":[{}]}},\
         {{\"name\":\"vod\",\"live\":false,\"streams\":[]}}]}}]}}",
        streams.join(",")
    )
}

fn stream_json(name_json: &str, publishing: bool, nclients: u32, media: &str) -> String {
    format!(
        "{{\"name\":{name_json},\"time_ms\":3723000,\"bytes_in\":8000000,\"bytes_out\":7000000,\
         \"bw_in\":2500000,\"bw_out\":2400000,\"bw_audio\":128000,\"bw_video\":2372000,\
         \"publishing\":{publishing},\"active\":{publishing},\"nclients\":{nclients},{media},\
         \"clients\":[]}}"
    )
}

const AV: &str = "\"video\":{\"codec\":\"H264\",\"width\":1280,\"height\":720,\
    \"frame_rate\":29.97,\"profile\":\"High\",\"compat\":0,\"level\":\"3.1\"},\
    \"audio\":{\"codec\":\"AAC\",\"profile\":\"LC\",\"channels\":2,\"sample_rate\":44100}";
const AUDIO_ONLY: &str = "\"video\":null,\
    \"audio\":{\"codec\":\"AAC\",\"profile\":\"LC\",\"channels\":1,\"sample_rate\":48000}";
const NO_MEDIA: &str = "\"video\":null,\"audio\":null";
const RECORDING: &str = "\"recorders\":[{\"name\":\"\",\"path\":\"/var/rec/cam1-1765000100.mp4\",    \"bytes\":692666,\"time_ms\":5991}]";

#[test]
fn page_renders_names_as_text_and_shows_empty_and_error_states() {
    require_browser();
    let server = Server::start(&live_rtmp_block("", ""), &page_locations_with_file_stat());
    let mut checks = Checks::new();
    let stat = server.prefix.join("stat.json");
    let url = format!("http://127.0.0.1:{}/", server.http_port);
    let limit = Duration::from_secs(60);

    // Names are whatever a publisher sends (the C module accepts anything): markup must stay
    // text. Players waiting for a stream nobody publishes are not listed.
    let hostile = r#"<img src=x onerror="window.__xss=1">"#;
    let hostile_json = r#""<img src=x onerror=\"window.__xss=1\">""#;
    let closing = "</td><script>window.__xss=2</script>";
    fs::write(
        &stat,
        stat_json(&[
            stream_json("\"cam1\"", true, 3, &format!("{AV},{RECORDING}")),
            stream_json(hostile_json, true, 1, AUDIO_ONLY),
            stream_json(
                &format!("\"{}\"", closing.replace('/', "\\/")),
                true,
                1,
                NO_MEDIA,
            ),
            stream_json("\"a&amp;b\"", true, 1, NO_MEDIA),
            stream_json("\"nobody-publishes\"", false, 2, NO_MEDIA),
        ]),
    )
    .expect("write stat.json");
    // Replays: file names are whatever the stream names made them. Listed: the .m3u8 files,
    // newest first (by the time the playlist was last written: the recording's end), with
    // their .mp4's size; not the one cam1 is still recording, nor other files.
    let replays = server.prefix.join("replays");
    let now = SystemTime::now();
    let hostile_file = "<img src=x onerror=alert(1)>";
    let amp_file = "a&amp;b #?%";
    fs::create_dir_all(replays.join("dir.m3u8")).expect("create replays/ and a directory");
    for (file, bytes, age_s) in [
        (format!("{hostile_file}.m3u8"), 100, 10),
        (format!("{amp_file}.m3u8"), 100, 20),
        ("cam1-1765000000.m3u8".to_string(), 1333, 60),
        ("cam1-1765000000.mp4".to_string(), 2_500_000, 60),
        ("older.m3u8".to_string(), 100, 86_400),
        ("older.mp4".to_string(), 999, 86_400),
        ("cam1-1765000100.m3u8".to_string(), 100, 0),
        ("cam1-1765000100.mp4".to_string(), 100, 0),
        ("notes.txt".to_string(), 10, 0),
    ] {
        let f = fs::File::create(replays.join(&file)).expect("create a replay file");
        f.set_len(bytes).expect("size a replay file");
        f.set_modified(now - Duration::from_secs(age_s))
            .expect("date a replay file");
    }
    let r = run_page(
        &url,
        &[
            "--stream",
            "live/cam1",
            "--no-play",
            "--resolution",
            "1280x720",
            "--codec",
            "H264 High 3.1 / AAC LC 44.1 kHz",
        ],
        limit,
    );
    checks.check(r.status.is_some_and(|s| s.success()), || {
        format!(
            "node page.mjs failed ({:?}):\n{}\n{}",
            r.status, r.json, r.stderr
        )
    });
    // page.mjs prints the rows with JSON.stringify: cells in a fixed order.
    for (what, fragment) in [
        (
            "the cam1 row",
            "{\"name\":\"live/cam1\",\"uptime\":\"1:02:0".to_string(),
        ),
        (
            "cam1's resolution, frame rate and codecs",
            "\"resolution\":\"1280x720\",\"frameRate\":\"29.97 fps\",\
             \"codecs\":\"H264 High 3.1 / AAC LC 44.1 kHz\",\"bitrate\":\"2.50 Mbit/s\",\
             \"viewers\":\"2\""
                .to_string(),
        ),
        (
            "the audio-only row",
            "\"resolution\":\"audio only\",\"frameRate\":\"\",\"codecs\":\"AAC LC 48 kHz\""
                .to_string(),
        ),
        (
            "the hostile name as text",
            format!("\"name\":\"live/{}\"", hostile.replace('"', "\\\"")),
        ),
        (
            "the name closing the cell as text",
            format!("\"name\":\"live/{closing}\""),
        ),
        (
            "the entity-like name as is",
            "\"name\":\"live/a&amp;b\"".to_string(),
        ),
        ("no script ran", "\"xss\":null".to_string()),
        ("no page error", "\"errorCount\":0".to_string()),
        ("the list state", "\"stat\":\"ok\"".to_string()),
    ] {
        checks.check(r.has(&fragment), || {
            format!("{what}: expected {fragment:?} in {}", r.json)
        });
    }
    // Only the stream being recorded says so (counted in the list of rows).
    let rows = r.json.split_once("\"rows\":").map_or("", |(_, rows)| rows);
    checks.check(rows.matches("\"recording\":\"REC\"").count() == 1, || {
        format!("one row should show REC: {}", r.json)
    });
    checks.check(!r.has("nobody-publishes"), || {
        format!("a stream without a publisher is listed: {}", r.json)
    });
    checks.check(r.has("\"status\":\"4 live streams"), || {
        format!("the status line should count 4 live streams: {}", r.json)
    });
    let listed = replays_of(&r.json);
    let names = replay_names(&listed);
    checks.check(
        names == [hostile_file, amp_file, "cam1-1765000000", "older"]
            && listed["shown"] == true
            && listed["count"] == "(4)",
        || {
            format!(
                "replays: expected the hostile name, a&amp;b #?%, cam1-1765000000 and older, as text, \
                 in this order: {listed}"
            )
        },
    );
    // Names are encoded into the links (and so into what the player fetches).
    let rows = listed["rows"].as_array().cloned().unwrap_or_default();
    let href = |i: usize| rows.get(i).and_then(|r| r["href"].as_str()).unwrap_or("");
    checks.check(
        href(0).ends_with("/replays/%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E.m3u8")
            && href(1).ends_with("/replays/a%26amp%3Bb%20%23%3F%25.m3u8")
            && href(2).ends_with("/replays/cam1-1765000000.m3u8"),
        || format!("replay links not encoded: {listed}"),
    );
    let size = |i: usize| rows.get(i).and_then(|r| r["size"].as_str()).unwrap_or("");
    let ended = |i: usize| rows.get(i).and_then(|r| r["ended"].as_str()).unwrap_or("");
    checks.check(
        size(0) == "—" && size(2) == "2.5 MB" && size(3) == "999 B",
        || format!("replay sizes (of the .mp4, — without one): {listed}"),
    );
    checks.check(
        (0..4).all(|i| ended(i).chars().any(|c| c.is_ascii_digit())),
        || format!("every replay should show when it ended: {listed}"),
    );

    // Nothing published: the page says how to publish, to this host.
    fs::write(&stat, stat_json(&[])).expect("write stat.json");
    let r = run_page(&url, &[], limit);
    checks.check(r.has("\"stat\":\"empty\""), || {
        format!("no empty state without streams: {}", r.json)
    });
    checks.check(r.has("rtmp://127.0.0.1/live/KEY"), || {
        format!(
            "the empty state should show rtmp://127.0.0.1/live/KEY: {}",
            r.json
        )
    });
    checks.check(r.number("errorCount") == Some(0.0), || {
        format!("page errors with no streams: {}", r.json)
    });

    // /stat fails: the page says so (the 404 itself is the one console error expected). No
    // replay listing (404 too): the section stays hidden, quietly.
    fs::remove_file(&stat).expect("remove stat.json");
    fs::remove_dir_all(&replays).expect("remove replays/");
    let r = run_page(&url, &[], limit);
    checks.check(
        r.has("\"replaysState\":\"none\"") && replays_of(&r.json)["shown"] == false,
        || format!("the replays should be hidden without a listing: {}", r.json),
    );
    checks.check(r.has("\"stat\":\"error\""), || {
        format!("no error state when /stat fails: {}", r.json)
    });
    checks.check(r.has("HTTP 404"), || {
        format!("the error state should name the HTTP status: {}", r.json)
    });
    checks.check(!r.has("\"type\":\"pageerror\""), || {
        format!("uncaught page errors when /stat fails: {}", r.json)
    });
    checks.finish(server);
}
