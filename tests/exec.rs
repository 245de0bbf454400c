//! `exec*`: real processes started by the real nginx. The ABR ladder (`exec ffmpeg` into an
//! HLS application), argv built without a shell (a hostile `?args` stays one argument), kill on
//! unpublish, respawn, the event commands, one process per stream with 4 workers,
//! `exec_static` in one worker, and no zombies.
//!
//! Processes are told apart by their command line (a marker with the test's own prefix or
//! port), and only those are counted; nothing here signals a process it did not start.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use common::ffmpeg::publish_with;
use common::hls::{hls_http_location, wait_segments};
use common::workers::Launch;
use common::{probe_streams, RtmpClient, Server};

/// Processes whose NUL-separated command line contains `marker`: (pid, parent pid, state).
fn procs_with(marker: &str) -> Vec<(i32, i32, char)> {
    let mut out = Vec::new();
    let Ok(dir) = fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(cmd) = fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if !cmd.contains(marker) {
            continue;
        }
        if let Some((ppid, state)) = stat_of(pid) {
            if state != 'Z' {
                out.push((pid, ppid, state));
            }
        }
    }
    out
}

/// (parent pid, state) from /proc/PID/stat.
fn stat_of(pid: i32) -> Option<(i32, char)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) S ppid ...": comm may hold spaces, so split after the last ')'.
    let rest = stat.rsplit_once(')')?.1;
    let mut f = rest.split_whitespace();
    let state = f.next()?.chars().next()?;
    let ppid = f.next()?.parse().ok()?;
    Some((ppid, state))
}

/// Children of `parent` (from /proc).
fn children_of(parent: i32) -> Vec<(i32, char)> {
    let mut out = Vec::new();
    if let Ok(dir) = fs::read_dir("/proc") {
        for e in dir.flatten() {
            if let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) {
                if let Some((ppid, state)) = stat_of(pid) {
                    if ppid == parent {
                        out.push((pid, state));
                    }
                }
            }
        }
    }
    out
}

/// Zombie children of nginx's workers (the workers are the master's children).
fn worker_zombies(server: &Server) -> Vec<i32> {
    children_of(server.pid())
        .into_iter()
        .flat_map(|(worker, _)| children_of(worker))
        .filter(|(_, state)| *state == 'Z')
        .map(|(pid, _)| pid)
        .collect()
}

fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// An executable `/bin/sh` script in the prefix.
fn script(prefix: &Path, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = prefix.join(name);
    fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write script");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod script");
    path
}

fn prefix_of(server: &Server) -> PathBuf {
    server
        .error_log_path()
        .parent()
        .and_then(Path::parent)
        .expect("prefix")
        .to_path_buf()
}

fn require(tool: &str) -> bool {
    let found = std::process::Command::new(tool)
        .arg("-version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok();
    if !found {
        common::skip_or_fail("exec test", &format!("{tool} is not installed"));
    }
    found
}

/// Scripts must exist before nginx starts: a config names them by absolute path, so the
/// tests write them under a directory of their own, named after the port-free marker.
fn scripts_dir(tag: &str) -> PathBuf {
    let dir = common::manifest_dir()
        .join("target/it")
        .join(format!("exec-scripts-{tag}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("scripts dir");
    dir
}

/// Every argv the recording script wrote (one file per run, NUL-separated).
fn recorded_argvs(dir: &Path) -> Vec<Vec<String>> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("argv."))
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
        .iter()
        .filter_map(|p| fs::read(p).ok())
        .map(|b| {
            b.split(|c| *c == 0)
                .filter(|s| !s.is_empty())
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect()
        })
        .collect()
}

/// The classic ABR ladder: two `exec ffmpeg` renditions of each live stream into an HLS
/// application; both playlists appear and play, and both ffmpegs are gone soon after the
/// publisher leaves.
#[test]
fn abr_ladder_renditions_play_and_stop_with_the_publisher() {
    if !require("ffmpeg") || !require("ffprobe") {
        return;
    }
    let ff = "ffmpeg -hide_banner -nostdin -loglevel error";
    let src = "-i rtmp://127.0.0.1:{RTMP_PORT}/live/$name";
    let dst = "-f flv rtmp://127.0.0.1:{RTMP_PORT}/hls";
    let rtmp = format!(
        "rtmp {{\n    server {{\n        listen 127.0.0.1:{{RTMP_PORT}};\n        chunk_size 4096;\n\
         \x20       application live {{\n            live on;\n\
         \x20           exec {ff} {src} -c copy {dst}/${{name}}_hi;\n\
         \x20           exec {ff} {src} -c:v libx264 -preset ultrafast -threads 1 -s 160x90 -g 25 -c:a copy {dst}/$name_lo;\n\
         \x20       }}\n\
         \x20       application hls {{\n            live on;\n            hls on;\n\
         \x20           hls_path {{PREFIX}}/tmp/hls;\n            hls_fragment 1s;\n\
         \x20           hls_playlist_length 10s;\n        }}\n    }}\n}}\n"
    );
    let mut server = Server::start(&rtmp, &hls_http_location("/hls/", "{PREFIX}/tmp/hls/"));
    let prefix = prefix_of(&server);
    let port = server.rtmp_addr().rsplit(':').next().unwrap().to_string();
    let marker = format!("127.0.0.1:{port}/hls/");
    let mut publisher = publish_with(&server.rtmp_url("live/cam"), 30, &[]);

    let hi = prefix.join("tmp/hls/cam_hi.m3u8");
    let lo = prefix.join("tmp/hls/cam_lo.m3u8");
    for p in [&hi, &lo] {
        if let Err(e) = wait_segments(p, 2) {
            panic!("{}: {e}\n{}", p.display(), server.error_log());
        }
    }
    let running = procs_with(&marker);
    assert_eq!(running.len(), 2, "one ffmpeg per exec line: {running:?}");
    for name in ["cam_hi", "cam_lo"] {
        let streams = probe_streams(&server.http_url(&format!("/hls/{name}.m3u8")))
            .unwrap_or_else(|e| panic!("ffprobe {name}: {e}"));
        assert!(
            streams.iter().any(|s| s.contains("codec_type=video")),
            "{name}: {streams:?}"
        );
        assert!(
            streams.iter().any(|s| s.contains("codec_type=audio")),
            "{name}: {streams:?}"
        );
    }
    assert!(
        streams_of_lo_are_small(&server),
        "the transcoded rendition is 160x90"
    );

    let stopped = Instant::now();
    publisher.kill();
    assert!(
        wait_until(Duration::from_secs(2), || procs_with(&marker).is_empty()),
        "exec ffmpegs still running 2 s after unpublish: {:?}",
        procs_with(&marker)
    );
    println!(
        "exec processes gone {:?} after unpublish",
        stopped.elapsed()
    );
    assert!(
        wait_until(Duration::from_secs(2), || worker_zombies(&server)
            .is_empty()),
        "zombies: {:?}",
        worker_zombies(&server)
    );
    let log = server.error_log();
    assert_eq!(
        log.matches("exec: exec_push started pid").count(),
        2,
        "{log}"
    );
    assert_eq!(
        log.matches("exec: exec_push killing pid").count(),
        2,
        "{log}"
    );
    server.stop();
    server.assert_clean_log();
}

fn streams_of_lo_are_small(server: &Server) -> bool {
    probe_streams(&server.http_url("/hls/cam_lo.m3u8"))
        .map(|s| {
            s.iter()
                .any(|l| l.contains("width=160") && l.contains("height=90"))
        })
        .unwrap_or(false)
}

/// A stream's `?args` full of shell syntax reaches the command as one argument, unchanged;
/// nothing it names runs. The process is killed on unpublish.
#[test]
fn hostile_args_stay_one_argument_and_run_nothing() {
    let dir = scripts_dir("hostile");
    let rec = script(
        &dir,
        "rec.sh",
        &format!(
            "printf '%s\\0' \"$@\" > {}/argv.$$\nwhile :; do sleep 0.1; done",
            dir.display()
        ),
    );
    let marker = format!("{}/rec.sh", dir.display());
    let app = format!(
        "exec_push {} marker $name \"--args=$args\" $app ${{name}}_x $addr;",
        rec.display()
    );
    let server = Server::start_live(&app);
    let pwned = dir.join("pwned");
    let args = format!(
        "a=1 2;touch {p}&b=$(touch {p}) `touch {p}` |touch {p} >{p} \"' \\ $name",
        p = pwned.display()
    );
    let mut c = RtmpClient::connect(&server.rtmp_addr(), "live").expect("connect");
    let code = c.publish(&format!("cam?{args}")).expect("publish");
    assert_eq!(code, "NetStream.Publish.Start");
    assert!(
        wait_until(Duration::from_secs(5), || !recorded_argvs(&dir).is_empty()
            && procs_with(&marker).len() == 1),
        "the command did not run: {}",
        server.error_log()
    );
    // Give a would-be injected command time to run.
    c.idle(Duration::from_millis(500)).ok();
    let argvs = recorded_argvs(&dir);
    assert_eq!(
        argvs,
        vec![vec![
            "marker".to_string(),
            "cam".to_string(),
            format!("--args={args}"),
            "live".to_string(),
            "cam_x".to_string(),
            "127.0.0.1".to_string(),
        ]]
    );
    assert!(!pwned.exists(), "an injected command ran");
    let stopped = Instant::now();
    drop(c);
    assert!(
        wait_until(Duration::from_secs(2), || procs_with(&marker).is_empty()),
        "still running after unpublish: {:?}",
        procs_with(&marker)
    );
    println!("killed {:?} after unpublish", stopped.elapsed());
    assert!(worker_zombies(&server).is_empty());
    assert!(!pwned.exists());
    server.finish();
    let _ = fs::remove_dir_all(&dir);
}

/// A command that exits while its stream is published is started again after
/// `respawn_timeout`; with `respawn off` it is not; after unpublish nothing respawns.
#[test]
fn dead_commands_respawn_while_published() {
    let dir = scripts_dir("respawn");
    let once = script(
        &dir,
        "once.sh",
        &format!(
            "echo \"run $1\" >> {}/runs.$1\necho 'output line'",
            dir.display()
        ),
    );
    let rtmp = format!(
        "rtmp {{\n    server {{\n        listen 127.0.0.1:{{RTMP_PORT}};\n\
         \x20       respawn_timeout 500ms;\n\
         \x20       application on {{ live on; exec_push {s} on; }}\n\
         \x20       application off {{ live on; respawn off; exec_push {s} off; }}\n\
         \x20   }}\n}}\n",
        s = once.display()
    );
    let server = Server::start(&rtmp, "        location /stat { rtmp_stat all; }");
    let runs = |tag: &str| {
        fs::read_to_string(dir.join(format!("runs.{tag}")))
            .map(|s| s.lines().count())
            .unwrap_or(0)
    };
    let mut on = RtmpClient::connect(&server.rtmp_addr(), "on").expect("connect");
    let mut off = RtmpClient::connect(&server.rtmp_addr(), "off").expect("connect");
    assert_eq!(on.publish("s").unwrap(), "NetStream.Publish.Start");
    assert_eq!(off.publish("s").unwrap(), "NetStream.Publish.Start");
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_millis(2600) {
        on.idle(Duration::from_millis(100)).ok();
        off.idle(Duration::from_millis(100)).ok();
    }
    let n_on = runs("on");
    assert!(
        (3..=7).contains(&n_on),
        "respawned {n_on} times in 2.6 s with respawn_timeout 500ms\n{}",
        server.error_log()
    );
    assert_eq!(runs("off"), 1, "respawn off ran it again");
    // /stat lists the worker's processes with their restarts (JSON and XML).
    let stat = common::hls::http_get(server.http_port, "/stat?format=json").expect("/stat");
    let v: serde_json::Value = serde_json::from_slice(&stat.body).expect("JSON");
    let execs = v["workers"][0]["execs"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let on_exec = execs.iter().find(|e| e["app"] == "on" && e["name"] == "s");
    assert!(
        on_exec.is_some_and(|e| e["directive"] == "exec_push"
            && e["restarts"].as_u64().unwrap_or(0) >= 2
            && e["command"].as_str().unwrap_or("").contains("once.sh on")),
        "{execs:?}"
    );
    let xml = common::hls::http_get(server.http_port, "/stat").expect("/stat");
    let xml = String::from_utf8_lossy(&xml.body);
    assert!(xml.contains("<exec><pid>"), "{xml}");
    drop(on);
    drop(off);
    thread::sleep(Duration::from_millis(1500));
    let after = runs("on");
    assert!(
        after <= n_on + 1,
        "respawned after unpublish: {n_on} -> {after}"
    );
    let log = server.error_log();
    assert!(
        log.contains("exited with code 0; respawning in 500 ms"),
        "{log}"
    );
    assert!(log.contains("exec: exec_push respawning"), "{log}");
    assert!(
        log.contains(": output line"),
        "the child's output reaches the log: {log}"
    );
    assert!(worker_zombies(&server).is_empty());
    server.finish();
    let _ = fs::remove_dir_all(&dir);
}

/// `exec_publish`, `exec_publish_done`, `exec_play`, `exec_play_done` run once per event with
/// the session's values.
#[test]
fn event_commands_run_once_per_event_with_substitutions() {
    let dir = scripts_dir("events");
    let ev = script(
        &dir,
        "ev.sh",
        &format!("echo \"$*\" >> {}/events", dir.display()),
    );
    let e = ev.display();
    let app = format!(
        "exec_publish {e} publish $app $name $args $addr;\n\
         exec_publish_done {e} publish_done $app $name $args;\n\
         exec_play {e} play $app $name $args;\n\
         exec_play_done {e} play_done $app $name $args;"
    );
    let server = Server::start_live(&app);
    let events = || fs::read_to_string(dir.join("events")).unwrap_or_default();
    let mut publisher = RtmpClient::connect(&server.rtmp_addr(), "live").expect("connect");
    assert_eq!(
        publisher.publish("cam?k=v").unwrap(),
        "NetStream.Publish.Start"
    );
    assert!(wait_until(Duration::from_secs(5), || events()
        .lines()
        .count()
        == 1));
    let mut player = RtmpClient::connect(&server.rtmp_addr(), "live").expect("connect");
    player.play("cam?p=1").expect("play");
    assert!(wait_until(Duration::from_secs(5), || events()
        .lines()
        .count()
        == 2));
    drop(player);
    assert!(wait_until(Duration::from_secs(5), || events()
        .lines()
        .count()
        == 3));
    drop(publisher);
    assert!(wait_until(Duration::from_secs(5), || events()
        .lines()
        .count()
        == 4));
    thread::sleep(Duration::from_millis(300));
    let got: Vec<String> = events().lines().map(String::from).collect();
    assert_eq!(
        got,
        vec![
            "publish live cam k=v 127.0.0.1",
            "play live cam p=1",
            "play_done live cam p=1",
            "publish_done live cam k=v",
        ]
    );
    assert!(worker_zombies(&server).is_empty());
    server.finish();
    let _ = fs::remove_dir_all(&dir);
}

/// With 4 workers: one process per `exec_push` per stream (the publisher's worker runs it),
/// one `exec_static` for the whole server, also after a reload; all gone after stop.
#[test]
fn four_workers_run_one_process_per_stream_and_one_static() {
    let dir = scripts_dir("workers");
    let long = script(&dir, "long.sh", "while :; do sleep 0.1; done");
    let l = long.display();
    let rtmp = format!(
        "rtmp {{\n    exec_static {l} static-marker;\n    server {{\n\
         \x20       listen 127.0.0.1:{{RTMP_PORT}} reuseport;\n\
         \x20       application live {{ live on; exec_push {l} push-$name; exec_kill_signal term; }}\n\
         \x20   }}\n}}\n"
    );
    let mut server = Launch::workers(4).start(&rtmp, "");
    let marker = long.display().to_string();
    let count = |what: &str| {
        procs_with(&marker)
            .into_iter()
            .filter(|(pid, _, _)| {
                fs::read(format!("/proc/{pid}/cmdline"))
                    .map(|c| String::from_utf8_lossy(&c).contains(what))
                    .unwrap_or(false)
            })
            .count()
    };
    assert!(
        wait_until(Duration::from_secs(5), || count("static-marker") == 1),
        "exec_static: {} processes\n{}",
        count("static-marker"),
        server.error_log()
    );
    let mut publishers = Vec::new();
    for i in 0..6 {
        let mut c = RtmpClient::connect(&server.rtmp_addr(), "live").expect("connect");
        assert_eq!(
            c.publish(&format!("s{i}")).unwrap(),
            "NetStream.Publish.Start"
        );
        publishers.push(c);
    }
    assert!(
        wait_until(Duration::from_secs(5), || count("push-s") == 6),
        "{} push processes for 6 streams",
        count("push-s")
    );
    // Stays one each (no other worker starts its own).
    for p in &mut publishers {
        p.idle(Duration::from_millis(200)).ok();
    }
    for i in 0..6 {
        assert_eq!(
            procs_with(&format!("push-s{i}")).len(),
            1,
            "stream s{i}: {:?}",
            procs_with(&format!("push-s{i}"))
        );
    }
    assert_eq!(count("static-marker"), 1);
    let stopped = Instant::now();
    publishers.clear();
    assert!(
        wait_until(Duration::from_secs(2), || count("push-s") == 0),
        "push processes left 2 s after unpublish: {}",
        count("push-s")
    );
    println!(
        "6 push processes (SIGTERM) gone {:?} after unpublish",
        stopped.elapsed()
    );

    server.reload();
    assert!(
        wait_until(Duration::from_secs(5), || count("static-marker") == 1
            && worker_zombies(&server).is_empty()),
        "exec_static after reload: {}",
        count("static-marker")
    );
    thread::sleep(Duration::from_millis(1500));
    assert_eq!(count("static-marker"), 1, "exec_static after reload");
    assert!(worker_zombies(&server).is_empty());
    server.stop();
    assert!(
        wait_until(Duration::from_secs(2), || procs_with(&marker).is_empty()),
        "left after nginx stopped: {:?}",
        procs_with(&marker)
    );
    server.assert_clean_log();
    let _ = fs::remove_dir_all(&dir);
}

/// A command that cannot start (not found) is logged and retried, not fatal; a `>>file`
/// redirect with a variable sends the output there instead of the error log.
#[test]
fn missing_commands_and_redirects() {
    let dir = scripts_dir("redirect");
    let say = script(&dir, "say.sh", "echo \"hello $1\"; echo oops >&2");
    let app = format!(
        "respawn off;\n\
         exec_push /nonexistent/cmd $name;\n\
         exec_push {} $name >>{}/out-$name.log 2>&1;",
        say.display(),
        dir.display()
    );
    let server = Server::start_live(&app);
    let mut c = RtmpClient::connect(&server.rtmp_addr(), "live").expect("connect");
    assert_eq!(c.publish("cam").unwrap(), "NetStream.Publish.Start");
    let out = dir.join("out-cam.log");
    assert!(wait_until(Duration::from_secs(5), || {
        fs::read_to_string(&out).is_ok_and(|s| s.lines().count() == 2)
    }));
    assert_eq!(fs::read_to_string(&out).unwrap(), "hello cam\noops\n");
    c.idle(Duration::from_millis(300)).ok();
    let log = server.error_log();
    assert!(
        log.contains("could not start \"/nonexistent/cmd\""),
        "{log}"
    );
    assert!(
        !log.contains("hello cam"),
        "redirected output went to the log"
    );
    drop(c);
    server.finish();
    let _ = fs::remove_dir_all(&dir);
}

/// `exec_pull` with 2 workers: players of a stream nobody publishes make one worker start the
/// command (ffmpeg re-publishing another application's stream under that name), every player of
/// both workers plays what it publishes, and the command is killed once the last one left.
#[test]
fn exec_pull_runs_once_per_server_while_the_stream_has_players() {
    if !require("ffmpeg") {
        return;
    }
    let ff = "ffmpeg -hide_banner -nostdin -loglevel error";
    let rtmp = format!(
        "rtmp {{\n    server {{\n        listen 127.0.0.1:{{RTMP_PORT}} reuseport;\n\
         \x20       application src {{ live on; }}\n\
         \x20       application pulled {{ live on; exec_pull {ff} -i \
         rtmp://127.0.0.1:{{RTMP_PORT}}/src/$name -c copy -f flv \
         rtmp://127.0.0.1:{{RTMP_PORT}}/pulled/$name; }}\n\
         \x20   }}\n}}\n"
    );
    let server = Launch::workers(2).start(&rtmp, "");
    let port = server.rtmp_addr().rsplit(':').next().unwrap().to_string();
    let marker = format!("127.0.0.1:{port}/pulled/cam");
    let mut publisher = publish_with(&server.rtmp_url("src/cam"), 40, &[]);
    thread::sleep(Duration::from_millis(1000));
    let players: Vec<_> = (0..6)
        .map(|_| {
            let addr = server.rtmp_addr();
            thread::spawn(move || {
                let mut c = RtmpClient::connect(&addr, "pulled").expect("connect");
                let _ = c.play("cam");
                let (count, _) = c.read_media_for(Duration::from_secs(6));
                count.video
            })
        })
        .collect();
    thread::sleep(Duration::from_secs(4));
    let running = procs_with(&marker);
    let videos: Vec<u32> = players.into_iter().map(|p| p.join().unwrap()).collect();
    assert_eq!(
        running.len(),
        1,
        "one exec_pull command per server: {running:?}"
    );
    assert!(
        videos.iter().all(|&v| v > 25),
        "every player got the pulled stream: {videos:?}\n{}",
        server.error_log()
    );
    assert!(
        wait_until(Duration::from_secs(4), || procs_with(&marker).is_empty()),
        "the exec_pull command outlived its players: {:?}",
        procs_with(&marker)
    );
    assert!(server.error_log().contains("exec: exec_pull started pid"));
    publisher.kill();
    common::workers::finish_checked(server);
}

/// Churn with 4 workers: publishes come and go (connections dropped, 5 at once, names reused
/// at once) for `EXEC_CHURN_SECONDS` (default 30; the acceptance run is 600), each with an
/// `exec_push` command and event commands. Each live stream has one process (the one of a
/// name's previous publish is gone within 1 s); at the end none is left, no worker has a
/// zombie child, and every publish started exactly one.
#[test]
fn exec_churn_leaves_one_process_per_stream_and_no_zombies() {
    let seconds: u64 = std::env::var("EXEC_CHURN_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let dir = scripts_dir("churn");
    let long = script(&dir, "churn-long.sh", "while :; do sleep 0.1; done");
    let event = script(&dir, "churn-event.sh", "exit 0");
    let rtmp = format!(
        "rtmp {{\n    server {{\n        listen 127.0.0.1:{{RTMP_PORT}} reuseport;\n\
         \x20       application live {{ live on; exec_push {l} churn-$name; \
         exec_publish {e} $name; exec_publish_done {e} $name; exec_kill_signal term; }}\n\
         \x20   }}\n}}\n",
        l = long.display(),
        e = event.display()
    );
    let server = Launch::workers(4).start(&rtmp, "");
    let started = Instant::now();
    let mut publishes = 0u64;
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut worst_dup = 0usize;
    while started.elapsed() < Duration::from_secs(seconds) {
        // A wave of 5 streams (50 publishes every 10 waves), up for 0.3-1.5 s.
        let mut wave = Vec::new();
        for i in 0..5 {
            let name = format!("c{}", (next() % 20) + i * 20);
            let Ok(mut c) = RtmpClient::connect(&server.rtmp_addr(), "live") else {
                continue;
            };
            if c.publish(&name).ok().as_deref() == Some("NetStream.Publish.Start") {
                publishes += 1;
                wave.push((c, name));
            }
        }
        let up = Duration::from_millis(300 + next() % 1200);
        let t = Instant::now();
        while t.elapsed() < up {
            for (c, _) in &mut wave {
                c.idle(Duration::from_millis(50)).ok();
            }
        }
        for (_, name) in &wave {
            // A process being killed for the previous publish of the name may still be
            // exiting; it must be gone within 1 s (a second one that stays is a duplicate).
            let marker = format!("churn-{name} ");
            // The script's shell forks for each `sleep`: a child still holds the script's
            // command line until it runs `sleep`; only processes the workers started count.
            let started_by_workers = || {
                let procs = procs_with(&marker);
                let pids: Vec<i32> = procs.iter().map(|p| p.0).collect();
                procs.iter().filter(|p| !pids.contains(&p.1)).count()
            };
            if !wait_until(Duration::from_secs(1), || started_by_workers() <= 1) {
                worst_dup = worst_dup.max(started_by_workers());
            }
        }
        // The connections just close (no deleteStream), as an encoder that crashes.
        wave.clear();
    }
    let gone = wait_until(Duration::from_secs(2), || procs_with("churn-c").is_empty());
    let zombies = wait_until(Duration::from_secs(2), || {
        worker_zombies(&server).is_empty()
    });
    let log = server.error_log();
    let starts = log.matches("exec: exec_push started pid").count() as u64;
    println!(
        "{publishes} publishes in {:?}: {starts} exec_push processes started",
        started.elapsed()
    );
    assert!(gone, "processes left: {:?}", procs_with("churn-c"));
    assert!(zombies, "zombies: {:?}", worker_zombies(&server));
    assert!(
        worst_dup <= 1,
        "a stream had {worst_dup} exec_push processes"
    );
    assert_eq!(starts, publishes, "one exec_push per publish");
    common::workers::finish_checked(server);
}
