//! rtmp-load: the load client and probes of `scripts/bench.sh`.
//!
//! ```text
//! rtmp-load play --url rtmp://127.0.0.1:1935/live/x --clients 500 --seconds 30 [--json]
//! rtmp-load play --url 'http://127.0.0.1:8080/live?app=live&stream=x' --clients 500 ... (HTTP-FLV)
//! rtmp-load join --url rtmp://127.0.0.1:1935/live/x --times 20 [--json]
//! rtmp-load hls-watch --playlist DIR/x.m3u8 --seconds 30 --t0-ms UNIX_MS [--json]
//! rtmp-load dash-watch --mpd DIR/x.mpd --seconds 30 --t0-ms UNIX_MS [--json]
//! ```
//!
//! `play` runs N RTMP players (event driven, many per thread) and reports bytes and messages
//! received, how many kept up with the live stream, join times, and the tool's own CPU time
//! (so a run where the load generator itself was the bottleneck can be recognised).

mod amf;
mod client;
mod flv;
mod watch;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use client::{ClientStats, RunSpec, Target};

const USAGE: &str = "\
usage:
  rtmp-load play --url rtmp://HOST:PORT/APP/STREAM|http://HOST:PORT/PATH?QUERY --clients N --seconds S
                 [--threads T] [--connect-rate PER_S] [--fps F] [--keep-up 0.9] [--json]
      N players for S seconds. A player kept up if, of the time from its first video
      message to the end (its window), it received at least --keep-up (0.9) in time:
      the window less how far behind it was at the end (its last timestamp against the
      most up-to-date it had been), times the share of the span's frames that arrived
      (needs --fps; frames a server drops count as missing).
  rtmp-load join --url rtmp://HOST:PORT/APP/STREAM [--times 20] [--timeout 10]
                 [--interval-ms 150] [--json]
      Sequential joins: play sent -> first video message and first keyframe. Exits 1 if
      no join got a keyframe (usable as a readiness probe with --times 1). Also prints
      stream_t0_unix_ms: arrival of the first video message less its timestamp (a player
      that joins before the publisher starts learns when the publisher's frame 0 was sent).
  rtmp-load hls-watch --playlist FILE.m3u8 --seconds S --t0-ms UNIX_MS [--interval-ms 50] [--json]
  rtmp-load dash-watch --mpd FILE.mpd --seconds S --t0-ms UNIX_MS [--interval-ms 50] [--json]
      Poll the playlist / MPD on disk: when each segment is first listed compared with
      t0 + its media end time (t0: when the `ffmpeg -re` publisher started), and how many
      were listed before their file existed.
";

struct Args {
    map: BTreeMap<String, String>,
    flags: Vec<String>,
}

impl Args {
    fn parse(args: &[String]) -> Result<Args, String> {
        let mut map = BTreeMap::new();
        let mut flags = Vec::new();
        let mut i = 0;
        while i < args.len() {
            let a = &args[i];
            let Some(key) = a.strip_prefix("--") else {
                return Err(format!("unexpected argument {a:?}"));
            };
            if let Some((k, v)) = key.split_once('=') {
                map.insert(k.to_string(), v.to_string());
            } else if key == "json" || key == "help" {
                flags.push(key.to_string());
            } else {
                let v = args
                    .get(i + 1)
                    .ok_or_else(|| format!("--{key} needs a value"))?;
                map.insert(key.to_string(), v.clone());
                i += 1;
            }
            i += 1;
        }
        Ok(Args { map, flags })
    }
    fn flag(&self, k: &str) -> bool {
        self.flags.iter().any(|f| f == k)
    }
    fn str(&self, k: &str) -> Result<&str, String> {
        self.map
            .get(k)
            .map(String::as_str)
            .ok_or_else(|| format!("--{k} is required"))
    }
    fn num<T: std::str::FromStr>(&self, k: &str, default: Option<T>) -> Result<T, String> {
        match self.map.get(k) {
            Some(v) => v.parse().map_err(|_| format!("--{k} {v:?}: not a number")),
            None => default.ok_or_else(|| format!("--{k} is required")),
        }
    }
    fn opt_num<T: std::str::FromStr>(&self, k: &str) -> Result<Option<T>, String> {
        self.map
            .get(k)
            .map(|v| v.parse().map_err(|_| format!("--{k} {v:?}: not a number")))
            .transpose()
    }
}

/// User + system CPU seconds of this process (all threads).
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct it is given; a zeroed rusage is a valid value.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Raises the open-file limit to its hard limit (1000+ sockets).
fn raise_nofile() {
    // SAFETY: plain libc calls on a struct owned here.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// Nearest-rank percentile of sorted values.
fn pct(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

fn num(v: Option<f64>) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{:.3}", x)
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string(),
        _ => "null".into(),
    }
}

fn json_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// `{"n":..,"median":..,"p95":..,"max":..}` of the values.
fn summary(mut v: Vec<f64>) -> String {
    v.sort_by(f64::total_cmp);
    format!(
        "{{\"n\":{},\"median\":{},\"p95\":{},\"max\":{}}}",
        v.len(),
        num(pct(&v, 0.5)),
        num(pct(&v, 0.95)),
        num(v.last().copied())
    )
}

fn ms(d: Option<Duration>) -> Option<f64> {
    d.map(|d| d.as_secs_f64() * 1000.0)
}

fn error_samples(stats: &[ClientStats]) -> (usize, String) {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for s in stats {
        if let Some(e) = &s.error {
            *counts.entry(e.as_str()).or_default() += 1;
        }
    }
    let n = counts.values().sum();
    let list: Vec<String> = counts
        .iter()
        .take(5)
        .map(|(e, c)| format!("{{\"error\":{},\"count\":{c}}}", json_str(e)))
        .collect();
    (n, format!("[{}]", list.join(",")))
}

fn play(a: &Args) -> Result<ExitCode, String> {
    let target = Arc::new(Target::parse(a.str("url")?)?);
    let clients: usize = a.num("clients", None)?;
    let seconds: f64 = a.num("seconds", None)?;
    // One thread reads well over 1 GB/s; more only where cores are to spare beside nginx.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let default_threads = (cores / 2).min(clients / 400).max(1);
    let threads: usize = a.num("threads", Some(default_threads))?;
    let threads = threads.clamp(1, clients.max(1));
    let rate: f64 = a.num("connect-rate", Some(500.0))?;
    let fps: Option<f64> = a.opt_num("fps")?;
    let keep_up: f64 = a.num("keep-up", Some(0.9))?;
    raise_nofile();

    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs_f64(seconds);
    let mut handles = Vec::new();
    for t in 0..threads {
        let n = clients / threads + usize::from(t < clients % threads);
        let spec = RunSpec {
            clients: n,
            connect_rate: rate / threads as f64,
            deadline,
            stop_on_key: false,
        };
        let target = target.clone();
        handles.push(std::thread::spawn(move || client::run(target, &spec)));
    }
    let mut stats = Vec::with_capacity(clients);
    for h in handles {
        stats.extend(h.join().map_err(|_| "a load thread panicked".to_string())?);
    }
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;

    let connected = stats.iter().filter(|s| s.connected).count();
    let playing = stats.iter().filter(|s| s.playing).count();
    // Share of its viewing window each player got in time (0 for players that got no video).
    let share: Vec<f64> = stats
        .iter()
        .map(|s| {
            let w = s.window();
            if w > 0.0 {
                s.media_seconds(fps) / w
            } else {
                0.0
            }
        })
        .collect();
    let kept_up = stats
        .iter()
        .zip(&share)
        .filter(|(s, m)| s.error.is_none() && **m >= keep_up)
        .count();
    let lag: Vec<f64> = stats
        .iter()
        .filter(|s| s.first_video_at.is_some())
        .map(|s| s.lag() * 1000.0)
        .collect();
    let frames: Vec<f64> = stats
        .iter()
        .filter(|s| s.first_video_at.is_some())
        .map(|s| s.frame_share(fps))
        .collect();
    let bytes: u64 = stats.iter().map(|s| s.bytes).sum();
    let sum = |f: fn(&ClientStats) -> u64| stats.iter().map(f).sum::<u64>();
    let fv: Vec<f64> = stats.iter().filter_map(|s| ms(s.first_video)).collect();
    let fk: Vec<f64> = stats.iter().filter_map(|s| ms(s.first_key)).collect();
    let (nerr, errs) = error_samples(&stats);
    let mut share_sorted = share.clone();
    share_sorted.sort_by(f64::total_cmp);
    let mut frames_sorted = frames;
    frames_sorted.sort_by(f64::total_cmp);

    if a.flag("json") {
        println!(
            "{{\"mode\":\"play\",\"url\":{},\"clients\":{clients},\"threads\":{threads},\
             \"seconds\":{},\"wall_s\":{},\"connected\":{connected},\"playing\":{playing},\
             \"kept_up\":{kept_up},\"errors\":{nerr},\"error_samples\":{errs},\"bytes\":{bytes},\
             \"mbit_per_s\":{},\"video_msgs\":{},\"audio_msgs\":{},\"data_msgs\":{},\
             \"other_msgs\":{},\"acks_sent\":{},\"pings_answered\":{},\"media_share\":{{\"min\":{},\"median\":{}}},\
             \"frame_share\":{{\"min\":{},\"median\":{}}},\"lag_ms\":{},\
             \"first_video_ms\":{},\"first_key_ms\":{},\"cpu_s\":{},\"cpu_pct\":{}}}",
            json_str(a.str("url")?),
            num(Some(seconds)),
            num(Some(wall)),
            num(Some(bytes as f64 * 8.0 / 1e6 / wall)),
            sum(|s| s.video_msgs),
            sum(|s| s.audio_msgs),
            sum(|s| s.data_msgs),
            sum(|s| s.other_msgs),
            sum(|s| s.acks_sent),
            sum(|s| s.pings_answered),
            num(share_sorted.first().copied()),
            num(pct(&share_sorted, 0.5)),
            num(frames_sorted.first().copied()),
            num(pct(&frames_sorted, 0.5)),
            summary(lag),
            summary(fv),
            summary(fk),
            num(Some(cpu)),
            num(Some(100.0 * cpu / wall)),
        );
    } else {
        println!(
            "{clients} players ({threads} threads), {wall:.1} s: connected {connected}, \
             playing {playing}, kept up {kept_up}, errors {nerr}"
        );
        println!(
            "received {:.1} MB ({:.1} Mbit/s), {} video / {} audio messages",
            bytes as f64 / 1e6,
            bytes as f64 * 8.0 / 1e6 / wall,
            sum(|s| s.video_msgs),
            sum(|s| s.audio_msgs)
        );
        println!(
            "share of the window received in time: min {} median {}; lag at the end ms {}",
            num(share_sorted.first().copied()),
            num(pct(&share_sorted, 0.5)),
            summary(lag)
        );
        println!("first video ms: {}", summary(fv));
        println!("first keyframe ms: {}", summary(fk));
        println!("errors: {errs}");
        println!(
            "load client CPU: {cpu:.2} s ({:.0} % of one core)",
            100.0 * cpu / wall
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn join(a: &Args) -> Result<ExitCode, String> {
    let target = Arc::new(Target::parse(a.str("url")?)?);
    let times: usize = a.num("times", Some(20))?;
    let timeout: f64 = a.num("timeout", Some(10.0))?;
    let interval: u64 = a.num("interval-ms", Some(150))?;
    let mut all = Vec::new();
    for i in 0..times {
        if i > 0 {
            // Spread the joins over the GOP (not a multiple of the frame interval).
            std::thread::sleep(Duration::from_millis(interval + (i as u64 * 37) % 97));
        }
        let spec = RunSpec {
            clients: 1,
            connect_rate: 0.0,
            deadline: Instant::now() + Duration::from_secs_f64(timeout),
            stop_on_key: true,
        };
        all.extend(client::run(target.clone(), &spec));
    }
    let ok = all.iter().filter(|s| s.first_key.is_some()).count();
    let fv: Vec<f64> = all.iter().filter_map(|s| ms(s.first_video)).collect();
    let fk: Vec<f64> = all.iter().filter_map(|s| ms(s.first_key)).collect();
    let ck: Vec<f64> = all.iter().filter_map(|s| ms(s.connect_to_key)).collect();
    let (nerr, errs) = error_samples(&all);
    // When the stream's timestamp 0 went by, in Unix ms (first join that got video): the
    // arrival of its first video message less that message's timestamp. Joined before the
    // publisher starts, this is when the publisher sent its first frame.
    let stream_t0 = all
        .iter()
        .find_map(|s| Some(client::clock_to_unix_ms(s.first_video_at?) - s.vts_first? as f64));
    if a.flag("json") {
        println!(
            "{{\"mode\":\"join\",\"times\":{times},\"ok\":{ok},\"errors\":{nerr},\
             \"error_samples\":{errs},\"first_video_ms\":{},\"first_key_ms\":{},\
             \"connect_to_key_ms\":{},\"stream_t0_unix_ms\":{}}}",
            summary(fv),
            summary(fk),
            summary(ck),
            num(stream_t0)
        );
    } else {
        println!("{ok}/{times} joins got a keyframe; errors {nerr} {errs}");
        println!("play -> first video ms: {}", summary(fv));
        println!("play -> first keyframe ms: {}", summary(fk));
        println!("connect -> first keyframe ms: {}", summary(ck));
    }
    Ok(if ok > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn watch(a: &Args, dash: bool) -> Result<ExitCode, String> {
    let file = PathBuf::from(a.str(if dash { "mpd" } else { "playlist" })?);
    let seconds: f64 = a.num("seconds", None)?;
    let t0: f64 = a.num("t0-ms", None)?;
    let interval = Duration::from_millis(a.num("interval-ms", Some(50))?);
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let r = if dash {
        watch::dash(&file, interval, deadline)
    } else {
        watch::hls(&file, interval, deadline)
    };
    let late: Vec<f64> = r
        .segments
        .iter()
        .map(|s| s.first_seen - (t0 + s.end_ms))
        .collect();
    let before_file = r.segments.iter().filter(|s| !s.file_existed).count();
    let file_wait: Vec<f64> = r
        .segments
        .iter()
        .filter(|s| !s.file_existed)
        .map(|s| s.file_seen.map_or(f64::INFINITY, |f| f - s.first_seen))
        .collect();
    let never = file_wait.iter().filter(|w| !w.is_finite()).count();
    let file_wait: Vec<f64> = file_wait.into_iter().filter(|w| w.is_finite()).collect();
    if a.flag("json") {
        println!(
            "{{\"mode\":\"{}\",\"segments\":{},\"polls\":{},\"parse_errors\":{},\
             \"listed_late_ms\":{},\"listed_before_file\":{before_file},\
             \"file_never_appeared\":{never},\"file_wait_ms\":{}}}",
            if dash { "dash-watch" } else { "hls-watch" },
            r.segments.len(),
            r.polls,
            r.parse_errors,
            summary(late),
            summary(file_wait)
        );
    } else {
        println!(
            "{} segments ({} polls, {} unparsable reads)",
            r.segments.len(),
            r.polls,
            r.parse_errors
        );
        println!("listed after t0 + end time, ms: {}", summary(late));
        println!(
            "listed before their file existed: {before_file} (never appeared: {never}); \
             wait ms {}",
            summary(file_wait)
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = argv.first() else {
        eprint!("{USAGE}");
        return ExitCode::from(2);
    };
    let args = match Args::parse(&argv[1..]) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("rtmp-load: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if args.flag("help") || cmd == "help" || cmd == "--help" || cmd == "-h" {
        print!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let r = match cmd.as_str() {
        "play" => play(&args),
        "join" => join(&args),
        "hls-watch" => watch(&args, false),
        "dash-watch" => watch(&args, true),
        other => Err(format!("unknown command {other:?}")),
    };
    match r {
        Ok(code) => code,
        Err(e) => {
            eprintln!("rtmp-load: {e}");
            ExitCode::from(2)
        }
    }
}
