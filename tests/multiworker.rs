//! Several worker processes (`worker_processes N`, `listen ... reuseport`, so connections land
//! on random workers): a player on any worker gets a stream published on another, starting at
//! once from the last keyframe; `/stat` (XML, JSON, Prometheus) and `/control` cover every
//! worker; a second publisher of a name on another worker is refused; after `nginx -s reload`
//! new players (on new workers) watch streams published before it, which stay listed.
//!
//! Which worker took a connection is read from the error log: the `rtmp: play "live/x"` (or
//! `publish`) line carries the worker's pid and the connection number, which is the client
//! `id` of `/stat`. Which worker answered an HTTP request is in its `X-Worker` header
//! (`add_header X-Worker $pid`).
//!
//! Rust module only: the C module takes no `reuseport` on an rtmp `listen` and each of its
//! workers only knows its own sessions, so with `RTMP_IT_TARGET=c` these tests fail.
//! `xml_stat_has_the_c_module_element_tree` runs Debian's nginx with the C module beside ours
//! (when installed) to compare the two `/stat` documents.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use common::client::JoinInfo;
use common::hls::{http_get, HttpResponse};
use common::raw::worker_pids;
use common::workers::{finish_checked, master_status, Launch};
use common::*;
use serde_json::Value;

const APP: &str = "live";

/// `/stat` (with a stylesheet), `/stat-plain` (without) and `/control`; every answer says which
/// worker wrote it.
const HTTP_LOCATIONS: &str = "\
        location /stat { rtmp_stat all; rtmp_stat_stylesheet stat.xsl; add_header X-Worker $pid always; }
        location /stat-plain { rtmp_stat all; add_header X-Worker $pid always; }
        location /control { rtmp_control all; add_header X-Worker $pid always; }";

/// Video messages a player must get in the windows below (25 fps: 2 s of video).
const MIN_VIDEO: u64 = 50;
/// A player must see its first keyframe this soon after `play` (GOP cache: at once).
const MAX_JOIN: Duration = Duration::from_secs(3);
/// How long the cross-worker parts of `/stat` may take to catch up (refreshed every second).
const STAT_CATCH_UP: Duration = Duration::from_secs(5);

fn rtmp_block(reuseport: bool) -> String {
    let rp = if reuseport { " reuseport" } else { "" };
    format!(
        "rtmp {{\n    server {{\n        listen 127.0.0.1:{{RTMP_PORT}}{rp};\n        chunk_size 4096;\n        \
         application {APP} {{\n            live on;\n        }}\n    }}\n}}\n"
    )
}

/// Our module with `workers` workers, `reuseport` on both listeners.
fn start(workers: usize) -> Server {
    let server = Launch::workers(workers).start(&rtmp_block(true), HTTP_LOCATIONS);
    wait_workers(&server, workers);
    server
}

/// The worker pids of `server`, once there are exactly `n` (bounded).
fn wait_workers(server: &Server, n: usize) -> BTreeSet<u32> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let w = worker_pids(server.pid());
        if w.len() == n {
            return w.into_iter().map(|p| p as u32).collect();
        }
        assert!(
            Instant::now() < deadline,
            "expected {n} workers of master {}, found {w:?}",
            server.pid()
        );
        thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------------------------
// Error log: which worker took a connection

/// `(worker pid, connection number)` of an error log line
/// `2025/01/01 00:00:00 [info] 1234#1234: *7 rtmp: play "live/x"`.
fn parse_conn(line: &str) -> Option<(u32, u64)> {
    let mut t = line.split_whitespace().skip(3);
    let pid = t.next()?.split('#').next()?.parse().ok()?;
    let id = t.next()?.strip_prefix('*')?.parse().ok()?;
    Some((pid, id))
}

/// The first log line after `offset` containing `needle`, waited for (bounded).
fn log_line(server: &Server, offset: usize, needle: &str, timeout: Duration) -> Option<String> {
    let deadline = Instant::now() + timeout;
    loop {
        let text = server.log_since(offset);
        if let Some(l) = text.lines().find(|l| l.contains(needle)) {
            return Some(l.to_string());
        }
        if Instant::now() > deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// `(worker pid, client id)` of the connection that logged `needle` after `offset`.
fn conn_of(server: &Server, offset: usize, needle: &str, timeout: Duration) -> (u32, u64) {
    let line = log_line(server, offset, needle, timeout).unwrap_or_else(|| {
        panic!(
            "no error log line {needle:?} within {timeout:?}; log since:\n{}",
            server.log_since(offset)
        )
    });
    parse_conn(&line).unwrap_or_else(|| panic!("cannot read pid and connection of {line:?}"))
}

/// Starts an ffmpeg publisher of `live/<name>` and returns it with `(worker pid, client id)`.
fn start_publisher(server: &Server, name: &str, seconds: u32) -> (FfmpegChild, u32, u64) {
    let offset = server.log_len();
    let publisher = publish(&server.rtmp_url(&format!("{APP}/{name}")), seconds);
    let (worker, id) = conn_of(
        server,
        offset,
        &format!("rtmp: publish \"{APP}/{name}\""),
        Duration::from_secs(10),
    );
    (publisher, worker, id)
}

// ---------------------------------------------------------------------------------------------
// Players: the test client on a thread, counting what it receives

#[derive(Default)]
struct Shared {
    video: AtomicU64,
    audio: AtomicU64,
    /// Outcome of waiting for the first keyframe.
    join: Mutex<Option<Result<JoinInfo, String>>>,
    /// When and why the connection ended (EOF, reset, error), if it did.
    ended: Mutex<Option<(Instant, String)>>,
}

struct Player {
    /// Connection number: the client `id` of `/stat` (0 if not looked up).
    id: u64,
    /// Worker pid that took the connection (0 if not looked up).
    worker: u32,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Player {
    /// Connects, plays `live/<stream>` (must get `NetStream.Play.Start`), and reads on a thread.
    /// With `map`, finds the worker and connection number in the error log first.
    fn start(server: &Server, stream: &str, map: bool) -> Player {
        let offset = server.log_len();
        let mut client = RtmpClient::connect(&server.rtmp_addr(), APP)
            .unwrap_or_else(|e| panic!("player connect: {e}"));
        let codes = client
            .play(stream)
            .unwrap_or_else(|e| panic!("play {stream}: {e}"));
        assert!(
            codes.iter().any(|c| c == "NetStream.Play.Start"),
            "play {stream}: expected NetStream.Play.Start, got {codes:?}"
        );
        let (worker, id) = if map {
            conn_of(
                server,
                offset,
                &format!("rtmp: play \"{APP}/{stream}\""),
                Duration::from_secs(5),
            )
        } else {
            (0, 0)
        };
        let shared = Arc::new(Shared::default());
        let stop = Arc::new(AtomicBool::new(false));
        let handle = {
            let shared = Arc::clone(&shared);
            let stop = Arc::clone(&stop);
            thread::spawn(move || run_player(client, &shared, &stop))
        };
        Player {
            id,
            worker,
            shared,
            stop,
            handle: Some(handle),
        }
    }

    fn video(&self) -> u64 {
        self.shared.video.load(Ordering::SeqCst)
    }

    fn audio(&self) -> u64 {
        self.shared.audio.load(Ordering::SeqCst)
    }

    fn join_info(&self) -> Option<Result<JoinInfo, String>> {
        self.shared.join.lock().expect("join lock").clone()
    }

    fn ended(&self) -> Option<(Instant, String)> {
        self.shared.ended.lock().expect("ended lock").clone()
    }

    /// Stops reading and closes the connection.
    fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }

    /// What went wrong for this player as a media receiver, if anything.
    fn media_problem(&self) -> Option<String> {
        let join = self.join_info();
        let problem = match &join {
            None => Some("still waiting for a keyframe".to_string()),
            Some(Err(e)) => Some(format!("no keyframe within 5 s ({e})")),
            Some(Ok(info)) => match info.keyframe_after {
                Some(after) if after > MAX_JOIN => {
                    Some(format!("first keyframe only after {after:?}"))
                }
                _ if !info.seq_header_first => Some(format!(
                    "no AVC sequence header before the keyframe: {info:?}"
                )),
                _ => None,
            },
        };
        let problem = problem.or_else(|| {
            (self.video() < MIN_VIDEO)
                .then(|| format!("only {} video messages (want >= {MIN_VIDEO})", self.video()))
        });
        problem.map(|p| {
            format!(
                "player id {} on worker {}: {p}; video {} audio {}; ended {:?}",
                self.id,
                self.worker,
                self.video(),
                self.audio(),
                self.ended().map(|(_, why)| why)
            )
        })
    }
}

impl Drop for Player {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run_player(mut client: RtmpClient, shared: &Shared, stop: &AtomicBool) {
    let hard_stop = Instant::now() + Duration::from_secs(90);
    let join = client.wait_keyframe(Duration::from_secs(5));
    if join.is_ok() {
        shared.video.fetch_add(1, Ordering::SeqCst);
    }
    let fatal = match &join {
        Err(ClientError::Timeout) | Ok(_) => None,
        Err(e) => Some(format!("{e}")),
    };
    *shared.join.lock().expect("join lock") = Some(join.map_err(|e| format!("{e}")));
    if let Some(why) = fatal {
        *shared.ended.lock().expect("ended lock") = Some((Instant::now(), why));
        return;
    }
    while !stop.load(Ordering::SeqCst) && Instant::now() < hard_stop {
        let (count, err) = client.read_media_for(Duration::from_millis(250));
        shared
            .video
            .fetch_add(u64::from(count.video), Ordering::SeqCst);
        shared
            .audio
            .fetch_add(u64::from(count.audio), Ordering::SeqCst);
        if let Some(e) = err {
            *shared.ended.lock().expect("ended lock") = Some((Instant::now(), format!("{e}")));
            return;
        }
    }
}

/// Players per worker pid.
fn by_worker(players: &[Player]) -> BTreeMap<u32, usize> {
    let mut m = BTreeMap::new();
    for p in players {
        *m.entry(p.worker).or_insert(0) += 1;
    }
    m
}

/// `n` mapped players of `stream`; while `spread_ok` is false, connects more (placement is the
/// kernel's choice) and closes one from the busiest worker, up to 20 extra connections.
fn connect_players(
    server: &Server,
    stream: &str,
    n: usize,
    spread_ok: impl Fn(&BTreeMap<u32, usize>) -> bool,
) -> Vec<Player> {
    let mut players: Vec<Player> = (0..n)
        .map(|_| Player::start(server, stream, true))
        .collect();
    let mut extra = 0;
    while !spread_ok(&by_worker(&players)) {
        assert!(
            extra < 20,
            "20 more connections did not spread the players as needed: {:?}",
            by_worker(&players)
        );
        extra += 1;
        players.push(Player::start(server, stream, true));
        if players.len() > n {
            let counts = by_worker(&players);
            let busiest = counts
                .iter()
                .max_by_key(|(_, c)| **c)
                .map(|(w, _)| *w)
                .unwrap_or(0);
            if let Some(i) = players.iter().position(|p| p.worker == busiest) {
                players.remove(i).stop();
            }
        }
    }
    players
}

// ---------------------------------------------------------------------------------------------
// HTTP and /stat

fn get(server: &Server, path: &str) -> HttpResponse {
    http_get(server.http_port, path).unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

fn body(r: &HttpResponse) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

/// Pid of the worker that answered (its `X-Worker` header).
fn answered_by(r: &HttpResponse) -> u32 {
    r.header("X-Worker")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no X-Worker header in {:?}", r.headers))
}

/// An HTTP/1.1 keep-alive connection: every request on it is answered by the same worker.
struct KeepAlive {
    stream: TcpStream,
    port: u16,
}

impl KeepAlive {
    fn open(port: u16) -> KeepAlive {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the HTTP port");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("read timeout");
        stream
            .set_write_timeout(Some(Duration::from_secs(10)))
            .expect("write timeout");
        KeepAlive { stream, port }
    }

    fn get(&mut self, path: &str) -> HttpResponse {
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: keep-alive\r\n\r\n",
            self.port
        );
        self.stream
            .write_all(req.as_bytes())
            .unwrap_or_else(|e| panic!("keep-alive GET {path}: {e}"));
        let mut raw = Vec::new();
        let mut buf = [0u8; 8192];
        let split = loop {
            if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            let n = self
                .stream
                .read(&mut buf)
                .unwrap_or_else(|e| panic!("keep-alive GET {path}: {e}"));
            assert!(n > 0, "keep-alive GET {path}: connection closed");
            raw.extend_from_slice(&buf[..n]);
        };
        let head = String::from_utf8_lossy(&raw[..split]).into_owned();
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("keep-alive GET {path}: bad head {head:?}"));
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        let len: usize = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("Content-Length"))
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or_else(|| panic!("keep-alive GET {path}: no Content-Length in {head:?}"));
        let mut body = raw[split + 4..].to_vec();
        while body.len() < len {
            let n = self
                .stream
                .read(&mut buf)
                .unwrap_or_else(|e| panic!("keep-alive GET {path}: {e}"));
            assert!(n > 0, "keep-alive GET {path}: closed inside the body");
            body.extend_from_slice(&buf[..n]);
        }
        body.truncate(len);
        HttpResponse {
            status,
            headers,
            body,
        }
    }
}

/// `/stat?format=json`, parsed, with the worker that answered.
struct JsonStat {
    v: Value,
    worker: u32,
}

fn parse_json(r: &HttpResponse) -> JsonStat {
    assert_eq!(r.status, 200, "/stat?format=json: {}", body(r));
    let v: Value = serde_json::from_slice(&r.body)
        .unwrap_or_else(|e| panic!("/stat JSON does not parse ({e}):\n{}", body(r)));
    JsonStat {
        v,
        worker: answered_by(r),
    }
}

fn stat_json(server: &Server) -> JsonStat {
    parse_json(&get(server, "/stat?format=json"))
}

/// Stream `live/<name>` in a JSON document.
fn json_stream<'a>(v: &'a Value, name: &str) -> Option<&'a Value> {
    v["servers"]
        .as_array()?
        .iter()
        .flat_map(|s| s["applications"].as_array().into_iter().flatten())
        .filter(|a| a["name"] == APP)
        .flat_map(|a| a["streams"].as_array().into_iter().flatten())
        .find(|s| s["name"] == name)
}

#[derive(Debug, Clone)]
struct StatClient {
    id: u64,
    worker: u32,
    publishing: bool,
    bytes_in: u64,
}

fn json_clients(stream: &Value) -> Vec<StatClient> {
    stream["clients"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .map(|c| StatClient {
                    id: c["id"].as_u64().unwrap_or(0),
                    worker: c["worker_pid"].as_u64().unwrap_or(0) as u32,
                    publishing: c["publishing"].as_bool().unwrap_or(false),
                    bytes_in: c["bytes_in"].as_u64().unwrap_or(0),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Polls `/stat?format=json` until `f` accepts an answer (bounded); panics with the last one.
fn wait_json<T>(
    server: &Server,
    timeout: Duration,
    what: &str,
    mut f: impl FnMut(&JsonStat) -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        let s = stat_json(server);
        if let Some(t) = f(&s) {
            return t;
        }
        assert!(
            Instant::now() < deadline,
            "/stat did not show {what} within {timeout:?}; last answer (worker {}):\n{}",
            s.worker,
            serde_json::to_string_pretty(&s.v).unwrap_or_default()
        );
        thread::sleep(Duration::from_millis(100));
    }
}

/// What one XML answer says about a stream.
#[derive(Debug)]
struct XmlStream {
    /// `(id, publishing)` of each `<client>`.
    clients: Vec<(u64, bool)>,
    nclients: Option<u64>,
    publishing: bool,
    /// `<live><nclients>` of the application.
    app_nclients: Option<u64>,
}

fn child<'a, 'i>(n: roxmltree::Node<'a, 'i>, name: &str) -> Option<roxmltree::Node<'a, 'i>> {
    n.children().find(|c| c.has_tag_name(name))
}

fn child_u64(n: roxmltree::Node, name: &str) -> Option<u64> {
    child(n, name)?.text()?.trim().parse().ok()
}

fn xml_stream(text: &str, name: &str) -> Result<Option<XmlStream>, String> {
    let doc = roxmltree::Document::parse(text).map_err(|e| format!("XML does not parse: {e}"))?;
    for app in doc.descendants().filter(|n| n.has_tag_name("application")) {
        if child(app, "name").and_then(|n| n.text()) != Some(APP) {
            continue;
        }
        let Some(live) = child(app, "live") else {
            continue;
        };
        for st in live.children().filter(|n| n.has_tag_name("stream")) {
            if child(st, "name").and_then(|n| n.text()) != Some(name) {
                continue;
            }
            let clients = st
                .children()
                .filter(|n| n.has_tag_name("client"))
                .map(|c| {
                    (
                        child_u64(c, "id").unwrap_or(0),
                        child(c, "publishing").is_some(),
                    )
                })
                .collect();
            return Ok(Some(XmlStream {
                clients,
                nclients: child_u64(st, "nclients"),
                publishing: child(st, "publishing").is_some(),
                app_nclients: child_u64(live, "nclients"),
            }));
        }
    }
    Ok(None)
}

/// Waits until `/stat` (JSON) lists stream `name` as published by client `pub_id`.
fn wait_published(server: &Server, name: &str, pub_id: u64) {
    wait_json(
        server,
        STAT_CATCH_UP,
        &format!("{APP}/{name} published by client {pub_id}"),
        |s| {
            let st = json_stream(&s.v, name)?;
            let ok = st["publishing"] == true
                && json_clients(st)
                    .iter()
                    .any(|c| c.id == pub_id && c.publishing);
            ok.then_some(())
        },
    )
}

/// `bytes_in` of client `id` of stream `name` in one JSON answer.
fn client_bytes_in(s: &JsonStat, name: &str, id: u64) -> Option<u64> {
    json_clients(json_stream(&s.v, name)?)
        .into_iter()
        .find(|c| c.id == id)
        .map(|c| c.bytes_in)
}

/// The publisher's `bytes_in` grows: samples 2 s apart (a part is at most ~1 s old).
fn assert_publisher_still_sending(server: &Server, name: &str, pub_id: u64) {
    let before = client_bytes_in(&stat_json(server), name, pub_id);
    thread::sleep(Duration::from_secs(2));
    let after = client_bytes_in(&stat_json(server), name, pub_id);
    assert!(
        matches!((before, after), (Some(b), Some(a)) if a > b),
        "the publisher (client {pub_id}) should still be sending: bytes_in {before:?} then {after:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// 1. Many players, every worker

fn many_players_on_workers(workers: usize, n: usize) {
    let server = start(workers);
    let (mut publisher, pub_worker, pub_id) = start_publisher(&server, "many", 40);
    // Let a keyframe reach the cache (1 s GOP).
    thread::sleep(Duration::from_millis(1200));

    let started = Instant::now();
    let mut players = connect_players(&server, "many", n, |_| true);
    println!(
        "{workers} workers: publisher id {pub_id} on worker {pub_worker}; {n} players connected \
         in {:?}, per worker {:?}",
        started.elapsed(),
        by_worker(&players)
    );

    // /stat: the publisher and every player once, on more than one worker.
    let mut expected: BTreeSet<u64> = players.iter().map(|p| p.id).collect();
    expected.insert(pub_id);
    let (nclients, clients) = wait_json(
        &server,
        STAT_CATCH_UP,
        &format!("all {} clients of live/many", n + 1),
        |s| {
            let st = json_stream(&s.v, "many")?;
            let cs = json_clients(st);
            let ids: BTreeSet<u64> = cs.iter().map(|c| c.id).collect();
            (ids == expected).then(|| (st["nclients"].as_u64(), cs))
        },
    );
    assert_eq!(
        clients.len(),
        n + 1,
        "a client is listed more than once: {clients:?}"
    );
    assert_eq!(nclients, Some(n as u64 + 1), "stream nclients");
    let stat_workers: BTreeSet<u32> = clients.iter().map(|c| c.worker).collect();
    assert!(
        stat_workers.len() >= 2,
        "players should be on several workers; /stat says {stat_workers:?}"
    );
    for p in &players {
        let c = clients.iter().find(|c| c.id == p.id).expect("listed");
        assert_eq!(
            c.worker, p.worker,
            "worker_pid of client {} in /stat differs from the worker that logged it",
            p.id
        );
        assert!(!c.publishing, "player {} listed as publishing", p.id);
    }
    let publishers: Vec<u64> = clients
        .iter()
        .filter(|c| c.publishing)
        .map(|c| c.id)
        .collect();
    assert_eq!(publishers, vec![pub_id], "publishing clients");

    // Media: everyone reads for at least 6 more seconds.
    thread::sleep(Duration::from_secs(6));
    for p in &mut players {
        p.stop();
    }
    let mut per_worker: BTreeMap<u32, (usize, usize, u64)> = BTreeMap::new();
    for p in &players {
        let e = per_worker.entry(p.worker).or_insert((0, 0, u64::MAX));
        e.0 += 1;
        if p.media_problem().is_none() {
            e.1 += 1;
        }
        e.2 = e.2.min(p.video());
    }
    println!(
        "per worker (players, fine, least video messages): {per_worker:?} (publisher on {pub_worker})"
    );
    let problems: Vec<String> = players.iter().filter_map(Player::media_problem).collect();
    assert!(
        problems.is_empty(),
        "{} of {n} players did not receive the stream (publisher on worker {pub_worker}):\n{}",
        problems.len(),
        problems.join("\n")
    );
    assert!(
        publisher.is_running(),
        "publisher stopped: {}",
        publisher.stderr()
    );
    drop(players);
    drop(publisher);
    finish_checked(server);
}

#[test]
fn many_players_on_every_worker_receive_media_2_workers() {
    many_players_on_workers(2, 50);
}

#[test]
fn many_players_on_every_worker_receive_media_4_workers() {
    many_players_on_workers(4, 50);
}

// ---------------------------------------------------------------------------------------------
// 2. One publisher per name across workers

#[test]
fn duplicate_publisher_on_another_worker_is_refused() {
    let server = start(2);
    let (mut first, pub_worker, pub_id) = start_publisher(&server, "x", 40);
    wait_published(&server, "x", pub_id);

    // Placement is the kernel's (reuseport hashes each connection; on this machine the split is
    // often 1:2), so: at least 6 ffmpeg attempts, more until one lands on the other worker (at
    // most 14); then the test client, cheap enough to try until 3 land there (at most 60).
    let url = server.rtmp_url("live/x");
    let mut ffmpeg_hits: BTreeMap<u32, usize> = BTreeMap::new();
    let cross = |hits: &BTreeMap<u32, usize>| -> usize {
        hits.iter()
            .filter(|(w, _)| **w != pub_worker)
            .map(|(_, n)| n)
            .sum()
    };
    let mut problems = Vec::new();
    for attempt in 0..14 {
        if attempt >= 6 && cross(&ffmpeg_hits) >= 1 {
            break;
        }
        let offset = server.log_len();
        let t = Instant::now();
        let mut second = publish(&url, 5);
        let status = second.wait_timeout(Duration::from_secs(10));
        let took = t.elapsed();
        if status.is_none() {
            second.kill();
        }
        let stderr = second.stderr();
        let refusal = log_line(&server, offset, "publish refused", Duration::from_secs(1));
        let worker = refusal.as_deref().and_then(parse_conn).map(|(w, _)| w);
        if let Some(w) = worker {
            *ffmpeg_hits.entry(w).or_insert(0) += 1;
        }
        let refused = status.is_some_and(|s| !s.success())
            && took < Duration::from_secs(4)
            && (stderr.contains("already being published") || refusal.is_some());
        if !refused {
            problems.push(format!(
                "ffmpeg attempt {attempt}: status {status:?} after {took:?}, worker {worker:?}, \
                 stderr:\n{stderr}\nlog:\n{}",
                server.log_since(offset)
            ));
        }
    }
    // The exact status code, from the test client.
    let mut client_hits: BTreeMap<u32, usize> = BTreeMap::new();
    for attempt in 0..60 {
        if attempt >= 4 && cross(&client_hits) >= 3 {
            break;
        }
        let offset = server.log_len();
        let mut c = RtmpClient::connect(&server.rtmp_addr(), APP).expect("connect");
        let code = c.publish("x");
        let refusal = log_line(&server, offset, "publish refused", Duration::from_secs(1));
        let worker = refusal.as_deref().and_then(parse_conn).map(|(w, _)| w);
        if let Some(w) = worker {
            *client_hits.entry(w).or_insert(0) += 1;
        }
        if !matches!(&code, Ok(c) if c == "NetStream.Publish.BadName") {
            problems.push(format!(
                "test client attempt {attempt} (worker {worker:?}): expected \
                 NetStream.Publish.BadName, got {code:?}"
            ));
        }
    }
    println!(
        "refusals per worker: ffmpeg {ffmpeg_hits:?}, test client {client_hits:?} (first \
         publisher on {pub_worker})"
    );
    assert!(
        problems.is_empty(),
        "second publishers of live/x were not refused:\n{}",
        problems.join("\n")
    );
    assert!(
        cross(&ffmpeg_hits) + cross(&client_hits) >= 1,
        "no attempt landed on the other worker (refusals per worker: ffmpeg {ffmpeg_hits:?}, \
         test client {client_hits:?})"
    );

    assert!(
        first.is_running(),
        "the first publisher was dropped: {}",
        first.stderr()
    );
    wait_published(&server, "x", pub_id);
    assert_publisher_still_sending(&server, "x", pub_id);
    drop(first);
    finish_checked(server);
}

// ---------------------------------------------------------------------------------------------
// 3. Every client once, whichever worker answers

#[test]
fn stat_lists_every_client_once_whatever_worker_answers() {
    let server = start(2);
    let workers = wait_workers(&server, 2);
    let (mut publisher, pub_worker, pub_id) = start_publisher(&server, "seven", 40);
    thread::sleep(Duration::from_millis(500));
    // At least one player away from the publisher's worker.
    let mut players = connect_players(&server, "seven", 6, |m| m.keys().any(|w| *w != pub_worker));
    let mut expected: BTreeSet<u64> = players.iter().map(|p| p.id).collect();
    expected.insert(pub_id);
    println!(
        "publisher {pub_id} on {pub_worker}; players per worker {:?}",
        by_worker(&players)
    );

    // Let every part catch up: poll until both formats agree with what we connected.
    let deadline = Instant::now() + STAT_CATCH_UP;
    loop {
        let j = stat_json(&server);
        let json_ids: Option<BTreeSet<u64>> =
            json_stream(&j.v, "seven").map(|s| json_clients(s).iter().map(|c| c.id).collect());
        let x = body(&get(&server, "/stat"));
        let xml_ids: Option<BTreeSet<u64>> = xml_stream(&x, "seven")
            .ok()
            .flatten()
            .map(|s| s.clients.iter().map(|c| c.0).collect());
        if json_ids.as_ref() == Some(&expected) && xml_ids.as_ref() == Some(&expected) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "/stat did not settle on clients {expected:?} within {STAT_CATCH_UP:?}: JSON {json_ids:?}, XML {xml_ids:?}"
        );
        thread::sleep(Duration::from_millis(100));
    }

    let mut answered: BTreeMap<u32, usize> = BTreeMap::new();
    let mut problems = Vec::new();
    for round in 0..20 {
        // XML
        let r = get(&server, "/stat");
        let w = answered_by(&r);
        *answered.entry(w).or_insert(0) += 1;
        match xml_stream(&body(&r), "seven") {
            Ok(Some(s)) => {
                let ids: BTreeSet<u64> = s.clients.iter().map(|c| c.0).collect();
                let pubs: Vec<u64> = s.clients.iter().filter(|c| c.1).map(|c| c.0).collect();
                if s.clients.len() != 7
                    || ids != expected
                    || s.nclients != Some(7)
                    || s.app_nclients != Some(7)
                    || !s.publishing
                    || pubs != vec![pub_id]
                {
                    problems.push(format!("round {round}, XML from worker {w}: {s:?}"));
                }
            }
            Ok(None) => problems.push(format!("round {round}, XML from worker {w}: no stream")),
            Err(e) => problems.push(format!("round {round}, XML from worker {w}: {e}")),
        }
        // JSON
        let j = stat_json(&server);
        *answered.entry(j.worker).or_insert(0) += 1;
        match json_stream(&j.v, "seven") {
            Some(st) => {
                let cs = json_clients(st);
                let ids: BTreeSet<u64> = cs.iter().map(|c| c.id).collect();
                let wrong_worker: Vec<String> = players
                    .iter()
                    .filter_map(|p| {
                        let c = cs.iter().find(|c| c.id == p.id)?;
                        (c.worker != p.worker).then(|| {
                            format!("client {} worker_pid {} (is {})", p.id, c.worker, p.worker)
                        })
                    })
                    .collect();
                if cs.len() != 7
                    || ids != expected
                    || st["nclients"] != 7
                    || st["publishing"] != true
                    || !wrong_worker.is_empty()
                {
                    problems.push(format!(
                        "round {round}, JSON from worker {}: clients {cs:?}, nclients {}, {wrong_worker:?}",
                        j.worker, st["nclients"]
                    ));
                }
            }
            None => problems.push(format!(
                "round {round}, JSON from worker {}: no stream",
                j.worker
            )),
        }
    }
    println!("answers per worker: {answered:?}");
    assert!(
        problems.is_empty(),
        "{} wrong answers:\n{}",
        problems.len(),
        problems.join("\n")
    );
    let answering: BTreeSet<u32> = answered.keys().copied().collect();
    assert_eq!(
        answering, workers,
        "both workers should have answered some of the 40 requests (reuseport)"
    );
    for p in &mut players {
        p.stop();
    }
    assert!(publisher.is_running(), "publisher: {}", publisher.stderr());
    drop(players);
    drop(publisher);
    finish_checked(server);
}

// ---------------------------------------------------------------------------------------------
// 4. The XML tree of the C module; JSON and Prometheus well-formed

/// Children each element may have, in order: `(name, required)` (repeats allowed).
fn expected_children(path: &str) -> Option<&'static [(&'static str, bool)]> {
    let last = path.rsplit('/').next().unwrap_or("");
    let parent = path.rsplit('/').nth(1).unwrap_or("");
    Some(match (parent, last) {
        ("", "rtmp") => &[
            ("nginx_version", true),
            ("nginx_rtmp_version", true),
            ("compiler", false),
            ("built", true),
            ("pid", true),
            ("uptime", true),
            ("naccepted", true),
            ("bw_in", true),
            ("bytes_in", true),
            ("bw_out", true),
            ("bytes_out", true),
            ("server", true),
        ],
        ("rtmp", "server") => &[("application", true)],
        ("server", "application") => &[("name", true), ("live", false), ("play", false)],
        ("application", "live") => &[("stream", false), ("nclients", true)],
        ("live", "stream") => &[
            ("name", true),
            ("time", true),
            ("bw_in", true),
            ("bytes_in", true),
            ("bw_out", true),
            ("bytes_out", true),
            ("bw_audio", true),
            ("bw_video", true),
            ("client", false),
            ("meta", false),
            ("nclients", true),
            ("publishing", false),
            ("active", false),
        ],
        ("stream", "client") => &[
            ("id", true),
            ("address", true),
            ("time", true),
            ("flashver", false),
            ("pageurl", false),
            ("swfurl", false),
            ("dropped", true),
            ("avsync", true),
            ("timestamp", true),
            ("publishing", false),
            ("active", false),
        ],
        ("stream", "meta") => &[("video", true), ("audio", true)],
        ("meta", "video") => &[
            ("width", true),
            ("height", true),
            ("frame_rate", true),
            ("codec", false),
            ("profile", false),
            ("compat", false),
            ("level", false),
        ],
        ("meta", "audio") => &[
            ("codec", false),
            ("profile", false),
            ("channels", false),
            ("sample_rate", false),
        ],
        _ => return None,
    })
}

/// Leaves whose text must be an integer.
const NUMERIC_LEAVES: &[&str] = &[
    "pid",
    "uptime",
    "naccepted",
    "bw_in",
    "bytes_in",
    "bw_out",
    "bytes_out",
    "bw_audio",
    "bw_video",
    "time",
    "id",
    "dropped",
    "avsync",
    "timestamp",
    "nclients",
    "width",
    "height",
    "frame_rate",
    "compat",
    "channels",
    "sample_rate",
];

/// Element paths of a document (`rtmp/server/application/name`, ...), and problems with its
/// shape: children out of order, required ones missing, unknown elements, non-numeric values.
fn xml_tree(text: &str) -> Result<(BTreeSet<String>, Vec<String>), String> {
    let doc = roxmltree::Document::parse(text).map_err(|e| format!("XML does not parse: {e}"))?;
    let root = doc.root_element();
    let mut paths = BTreeSet::new();
    let mut problems = Vec::new();
    if !root.has_tag_name("rtmp") {
        problems.push(format!("root element <{}>", root.tag_name().name()));
    }
    fn walk(
        n: roxmltree::Node,
        path: String,
        paths: &mut BTreeSet<String>,
        problems: &mut Vec<String>,
    ) {
        paths.insert(path.clone());
        let kids: Vec<roxmltree::Node> = n.children().filter(|c| c.is_element()).collect();
        let name = n.tag_name().name();
        match expected_children(&path) {
            Some(expected) => {
                let mut names: Vec<&str> = kids.iter().map(|k| k.tag_name().name()).collect();
                names.dedup();
                // In order, each at most once as a run, from the expected list.
                let mut at = 0;
                for k in &names {
                    match expected[at..].iter().position(|(e, _)| e == k) {
                        Some(i) => at += i + 1,
                        None => problems.push(format!(
                            "{path}: child <{k}> unexpected or out of order (children {names:?})"
                        )),
                    }
                }
                for (e, required) in expected {
                    if *required && !names.contains(e) {
                        problems.push(format!("{path}: missing <{e}> (children {names:?})"));
                    }
                }
            }
            None => {
                if !kids.is_empty() {
                    problems.push(format!("{path}: a leaf with child elements"));
                }
                let text = n.text().unwrap_or("").trim();
                let empty_flag = matches!(name, "publishing" | "active");
                if empty_flag && !text.is_empty() {
                    problems.push(format!("{path}: flag element with text {text:?}"));
                }
                if NUMERIC_LEAVES.contains(&name) && text.parse::<i64>().is_err() {
                    problems.push(format!("{path}: {text:?} is not an integer"));
                }
            }
        }
        for k in kids {
            let p = format!("{path}/{}", k.tag_name().name());
            walk(k, p, paths, problems);
        }
    }
    walk(root, "rtmp".to_string(), &mut paths, &mut problems);
    Ok((paths, problems))
}

/// Paths a document with one publishing ffmpeg and one test-client player must have (COMPAT.md
/// §2 with the data our stream gives: codec details, flashver, both flags).
fn required_paths() -> BTreeSet<String> {
    let mut v: Vec<String> = [
        "nginx_version",
        "nginx_rtmp_version",
        "compiler",
        "built",
        "pid",
        "uptime",
        "naccepted",
        "bw_in",
        "bytes_in",
        "bw_out",
        "bytes_out",
        "server",
        "server/application",
        "server/application/name",
        "server/application/live",
        "server/application/live/nclients",
        "server/application/live/stream",
    ]
    .iter()
    .map(|p| format!("rtmp/{p}"))
    .collect();
    v.push("rtmp".into());
    let st = "rtmp/server/application/live/stream";
    for leaf in [
        "name",
        "time",
        "bw_in",
        "bytes_in",
        "bw_out",
        "bytes_out",
        "bw_audio",
        "bw_video",
        "client",
        "meta",
        "meta/video",
        "meta/audio",
        "nclients",
        "publishing",
        "active",
    ] {
        v.push(format!("{st}/{leaf}"));
    }
    for leaf in [
        "id",
        "address",
        "time",
        "flashver",
        "dropped",
        "avsync",
        "timestamp",
        "publishing",
        "active",
    ] {
        v.push(format!("{st}/client/{leaf}"));
    }
    for leaf in [
        "width",
        "height",
        "frame_rate",
        "codec",
        "profile",
        "compat",
        "level",
    ] {
        v.push(format!("{st}/meta/video/{leaf}"));
    }
    for leaf in ["codec", "profile", "channels", "sample_rate"] {
        v.push(format!("{st}/meta/audio/{leaf}"));
    }
    v.into_iter().collect()
}

/// Elements that depend on the build or on what a client sent: not compared between the two.
fn is_optional_path(p: &str) -> bool {
    p == "rtmp/compiler"
        || p.ends_with("/client/pageurl")
        || p.ends_with("/client/swfurl")
        || p.contains("/application/play")
}

/// `compiler` and `built` as build.rs stamps them: `rustc 1.x.y (...)` and
/// `Mmm dd yyyy hh:mm:ss (nginx-rtmp-rs <version> <commit>)` (C's `__DATE__ " " __TIME__`
/// first, as the C module shows it). The commit is 12 hex digits, or `unknown` when this test
/// was itself built without git; a module built at another commit than these tests only gets
/// a note (build/ may hold a module from before the last commit).
fn check_build_stamp(what: &str, compiler: &str, built: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if !compiler.starts_with("rustc 1.") {
        problems.push(format!(
            "{what}: compiler {compiler:?} does not start with \"rustc 1.\""
        ));
    }
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let suffix = format!(" (nginx-rtmp-rs {} ", env!("CARGO_PKG_VERSION"));
    let Some((date, rest)) = built.split_once(suffix.as_str()) else {
        problems.push(format!("{what}: built {built:?} has no {suffix:?}"));
        return problems;
    };
    // "Dec  6 2026 08:27:31": the day padded with a space to two characters.
    let date_ok = date.len() == 20
        && date.is_ascii()
        && MONTHS.contains(&&date[..3])
        && date[3..4] == *" "
        && date[4..6]
            .trim_start()
            .parse::<u32>()
            .is_ok_and(|d| (1..=31).contains(&d))
        && !date[4..6].starts_with('0')
        && date[6..7] == *" "
        && date[7..11].parse::<u32>().is_ok_and(|y| y >= 2024)
        && date[11..12] == *" "
        && date[12..]
            .split(':')
            .map(|f| f.len() == 2 && f.parse::<u32>().is_ok_and(|n| n < 60))
            .filter(|ok| *ok)
            .count()
            == 3;
    if !date_ok {
        problems.push(format!(
            "{what}: built {built:?} does not start with a date like \"Dec  6 2026 08:27:31\""
        ));
    }
    let commit = rest.strip_suffix(')').unwrap_or("");
    let ours = env!("RTMP_RS_COMMIT");
    let hash_ok = commit.len() == 12 && commit.bytes().all(|b| b.is_ascii_hexdigit());
    if !(hash_ok || (commit == "unknown" && ours == "unknown")) {
        problems.push(format!(
            "{what}: built {built:?} does not end with a 12-digit commit (these tests: {ours})"
        ));
    } else if commit != ours {
        println!("note: the module was built at commit {commit}, these tests at {ours}");
    }
    problems
}

/// Waits until an XML answer of `path` has stream `name` with `meta` and `clients` clients.
fn wait_xml_ready(server: &Server, path: &str, name: &str, clients: usize) -> HttpResponse {
    let deadline = Instant::now() + STAT_CATCH_UP + Duration::from_secs(5);
    loop {
        let r = get(server, path);
        let text = body(&r);
        let ready = text.contains("<meta>")
            && xml_stream(&text, name)
                .ok()
                .flatten()
                .is_some_and(|s| s.clients.len() == clients);
        if r.status == 200 && ready {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "{path} never showed {name} with <meta> and {clients} clients; last ({}):\n{text}",
            r.status
        );
        thread::sleep(Duration::from_millis(150));
    }
}

fn check_xml_document(r: &HttpResponse, stylesheet: bool, what: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let text = body(r);
    if !r
        .header("Content-Type")
        .is_some_and(|t| t.starts_with("text/xml"))
    {
        problems.push(format!(
            "{what}: Content-Type {:?}",
            r.header("Content-Type")
        ));
    }
    let mut lines = text.split("\r\n");
    if lines.next() != Some("<?xml version=\"1.0\" encoding=\"utf-8\" ?>") {
        problems.push(format!("{what}: first line is not the XML declaration"));
    }
    let second = lines.next().unwrap_or("");
    let has_sheet = second == "<?xml-stylesheet type=\"text/xsl\" href=\"stat.xsl\" ?>";
    if has_sheet != stylesheet {
        problems.push(format!(
            "{what}: stylesheet line expected {stylesheet}, second line is {second:?}"
        ));
    }
    if text.contains("xml-stylesheet") != stylesheet {
        problems.push(format!("{what}: xml-stylesheet present: {}", !stylesheet));
    }
    let bare_lf = text
        .as_bytes()
        .windows(2)
        .filter(|w| w[1] == b'\n' && w[0] != b'\r')
        .count()
        + usize::from(text.starts_with('\n'));
    if bare_lf > 0 {
        problems.push(format!(
            "{what}: {bare_lf} lines end with a bare LF, not CRLF"
        ));
    }
    problems
}

/// Keys every JSON document, worker, server, application, stream and client has (docs/stat.md).
fn check_json_schema(v: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let mut need = |obj: &Value, what: &str, keys: &[&str]| match obj.as_object() {
        None => problems.push(format!("{what} is not an object: {obj}")),
        Some(m) => {
            for k in keys {
                if !m.contains_key(*k) {
                    problems.push(format!("{what} has no {k:?}"));
                }
            }
        }
    };
    need(
        v,
        "document",
        &[
            "nginx_version",
            "module_version",
            "compiler",
            "built",
            "pid",
            "uptime_s",
            "naccepted",
            "bytes_in",
            "bytes_out",
            "bw_in",
            "bw_out",
            "workers",
            "servers",
        ],
    );
    for w in v["workers"].as_array().into_iter().flatten() {
        need(w, "worker", &["pid", "connections"]);
    }
    for s in v["servers"].as_array().into_iter().flatten() {
        need(s, "server", &["index", "applications"]);
        for a in s["applications"].as_array().into_iter().flatten() {
            need(a, "application", &["name", "live", "streams"]);
            for st in a["streams"].as_array().into_iter().flatten() {
                need(
                    st,
                    "stream",
                    &[
                        "name",
                        "time_ms",
                        "bytes_in",
                        "bytes_out",
                        "bw_in",
                        "bw_out",
                        "bw_audio",
                        "bw_video",
                        "publishing",
                        "active",
                        "nclients",
                        "video",
                        "audio",
                        "clients",
                    ],
                );
                if !st["video"].is_null() {
                    need(
                        &st["video"],
                        "video",
                        &[
                            "codec",
                            "width",
                            "height",
                            "frame_rate",
                            "profile",
                            "compat",
                            "level",
                        ],
                    );
                }
                if !st["audio"].is_null() {
                    need(
                        &st["audio"],
                        "audio",
                        &["codec", "profile", "channels", "sample_rate"],
                    );
                }
                for c in st["clients"].as_array().into_iter().flatten() {
                    need(
                        c,
                        "client",
                        &[
                            "id",
                            "address",
                            "time_ms",
                            "flashver",
                            "pageurl",
                            "swfurl",
                            "dropped",
                            "avsync",
                            "timestamp",
                            "publishing",
                            "active",
                            "worker_pid",
                            "bytes_in",
                            "bytes_out",
                        ],
                    );
                }
            }
        }
    }
    for k in [
        "pid",
        "uptime_s",
        "naccepted",
        "bytes_in",
        "bytes_out",
        "bw_in",
        "bw_out",
    ] {
        if !v[k].is_u64() {
            problems.push(format!("document {k} is not a count: {}", v[k]));
        }
    }
    problems
}

/// One Prometheus sample: metric name, labels, value.
type Sample = (String, BTreeMap<String, String>, f64);

fn valid_metric_name(s: &str) -> bool {
    let mut cs = s.chars();
    cs.next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && cs.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn valid_label_name(s: &str) -> bool {
    let mut cs = s.chars();
    cs.next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && cs.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Parses the text exposition format strictly: every family has one `# HELP` and one `# TYPE`
/// before its samples, its samples are contiguous, names and labels are valid, values numeric.
fn parse_prometheus(text: &str) -> Result<Vec<Sample>, String> {
    let mut help: BTreeSet<String> = BTreeSet::new();
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut closed: BTreeSet<String> = BTreeSet::new();
    let mut current: Option<String> = None;
    let mut samples = Vec::new();
    let mut switch_to = |family: &str, current: &mut Option<String>| -> Result<(), String> {
        if current.as_deref() != Some(family) {
            if closed.contains(family) {
                return Err(format!("family {family} appears in two separate places"));
            }
            if let Some(c) = current.take() {
                closed.insert(c);
            }
            *current = Some(family.to_string());
        }
        Ok(())
    };
    for (i, line) in text.lines().enumerate() {
        let at = format!("line {}: {line:?}", i + 1);
        if line.trim().is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix('#') {
            let mut parts = rest.trim_start().splitn(3, ' ');
            let kind = parts.next().unwrap_or("");
            if kind != "HELP" && kind != "TYPE" {
                continue;
            }
            let name = parts.next().unwrap_or("");
            if !valid_metric_name(name) {
                return Err(format!("{at}: invalid metric name"));
            }
            switch_to(name, &mut current)?;
            if samples.iter().any(|(n, _, _): &Sample| n == name) {
                return Err(format!("{at}: {kind} after samples of {name}"));
            }
            if kind == "HELP" {
                if !help.insert(name.to_string()) {
                    return Err(format!("{at}: second HELP for {name}"));
                }
            } else {
                let t = parts.next().unwrap_or("").trim();
                if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&t) {
                    return Err(format!("{at}: unknown type {t:?}"));
                }
                if types.insert(name.to_string(), t.to_string()).is_some() {
                    return Err(format!("{at}: second TYPE for {name}"));
                }
            }
            continue;
        }
        // name{labels} value
        let name_end = line
            .find(['{', ' '])
            .ok_or_else(|| format!("{at}: no value"))?;
        let name = &line[..name_end];
        if !valid_metric_name(name) {
            return Err(format!("{at}: invalid metric name {name:?}"));
        }
        let mut labels = BTreeMap::new();
        let mut rest = &line[name_end..];
        if let Some(inner) = rest.strip_prefix('{') {
            let mut s = inner;
            loop {
                if let Some(after) = s.strip_prefix('}') {
                    rest = after;
                    break;
                }
                let eq = s.find('=').ok_or_else(|| format!("{at}: bad label"))?;
                let key = &s[..eq];
                if !valid_label_name(key) {
                    return Err(format!("{at}: invalid label name {key:?}"));
                }
                let mut chars = s[eq + 1..].char_indices();
                if chars.next().map(|(_, c)| c) != Some('"') {
                    return Err(format!("{at}: label value not quoted"));
                }
                let mut value = String::new();
                let mut end = None;
                while let Some((j, c)) = chars.next() {
                    match c {
                        '\\' => match chars.next().map(|(_, c)| c) {
                            Some('\\') => value.push('\\'),
                            Some('"') => value.push('"'),
                            Some('n') => value.push('\n'),
                            other => return Err(format!("{at}: bad escape {other:?}")),
                        },
                        '"' => {
                            end = Some(j);
                            break;
                        }
                        '\n' => return Err(format!("{at}: raw newline in a label")),
                        c => value.push(c),
                    }
                }
                let end = end.ok_or_else(|| format!("{at}: unterminated label value"))?;
                if labels.insert(key.to_string(), value).is_some() {
                    return Err(format!("{at}: label {key} twice"));
                }
                s = &s[eq + 1 + end + 1..];
                if let Some(after) = s.strip_prefix(',') {
                    s = after;
                }
            }
        }
        let mut fields = rest.split_whitespace();
        let value = fields.next().ok_or_else(|| format!("{at}: no value"))?;
        let value: f64 = match value {
            "NaN" => f64::NAN,
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v
                .parse()
                .map_err(|_| format!("{at}: value {v:?} is not a number"))?,
        };
        if let Some(ts) = fields.next() {
            ts.parse::<i64>()
                .map_err(|_| format!("{at}: bad timestamp {ts:?}"))?;
        }
        if fields.next().is_some() {
            return Err(format!("{at}: trailing fields"));
        }
        if !help.contains(name) || !types.contains_key(name) {
            return Err(format!("{at}: sample before its HELP and TYPE"));
        }
        switch_to(name, &mut current)?;
        if types[name] == "counter" && !name.ends_with("_total") {
            return Err(format!("{at}: counter not named *_total"));
        }
        samples.push((name.to_string(), labels, value));
    }
    Ok(samples)
}

fn sample(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.2)
}

/// Our `/stat` for a publisher and one player, and the C module's for the same, when Debian's
/// nginx and libnginx-mod-rtmp are installed.
#[test]
fn xml_stat_has_the_c_module_element_tree() {
    let server = start(2);
    let workers = wait_workers(&server, 2);
    let (mut publisher, _, pub_id) = start_publisher(&server, "tree", 30);
    thread::sleep(Duration::from_millis(1000));
    let mut player = Player::start(&server, "tree", true);

    // XML: the C module's elements, in its order.
    let r = wait_xml_ready(&server, "/stat", "tree", 2);
    let mut problems = check_xml_document(&r, true, "/stat");
    let text = body(&r);
    let (ours, shape) = xml_tree(&text).unwrap_or_else(|e| panic!("{e}:\n{text}"));
    problems.extend(shape.into_iter().map(|p| format!("ours: {p}")));
    let required = required_paths();
    for p in required.difference(&ours) {
        problems.push(format!("ours: missing {p}"));
    }
    for p in ours.difference(&required) {
        if !is_optional_path(p) {
            problems.push(format!("ours: unexpected element {p}"));
        }
    }
    let plain = get(&server, "/stat-plain");
    problems.extend(check_xml_document(&plain, false, "/stat-plain"));

    // JSON: every key of docs/stat.md; the same clients as the XML (once every worker's part
    // is in: they are refreshed every second).
    let j = wait_json(&server, STAT_CATCH_UP, "both workers and clients", |s| {
        let n = s.v["workers"].as_array().map_or(0, Vec::len);
        let clients = json_stream(&s.v, "tree").map_or(0, |st| json_clients(st).len());
        (n == 2 && clients == 2).then(|| JsonStat {
            v: s.v.clone(),
            worker: s.worker,
        })
    });
    problems.extend(check_json_schema(&j.v));
    let json_workers: BTreeSet<u32> = j.v["workers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|w| w["pid"].as_u64().map(|p| p as u32))
        .collect();
    if json_workers != workers {
        problems.push(format!(
            "JSON workers {json_workers:?}, running {workers:?}"
        ));
    }
    if j.v["pid"].as_u64() != Some(u64::from(j.worker)) {
        problems.push(format!(
            "JSON pid {} is not the answering worker {}",
            j.v["pid"], j.worker
        ));
    }
    let xml_ids: BTreeSet<u64> = xml_stream(&text, "tree")
        .ok()
        .flatten()
        .map(|s| s.clients.iter().map(|c| c.0).collect())
        .unwrap_or_default();
    let json_ids: BTreeSet<u64> = json_stream(&j.v, "tree")
        .map(|s| json_clients(s).iter().map(|c| c.id).collect())
        .unwrap_or_default();
    let want: BTreeSet<u64> = [pub_id, player.id].into_iter().collect();
    if xml_ids != want || json_ids != want {
        problems.push(format!(
            "clients: XML {xml_ids:?}, JSON {json_ids:?}, connected {want:?}"
        ));
    }
    // compiler and built, stamped by build.rs, the same in XML and JSON.
    match roxmltree::Document::parse(&text) {
        Err(e) => problems.push(format!("XML does not parse: {e}")),
        Ok(doc) => {
            let root = doc.root_element();
            let leaf = |name| child(root, name).and_then(|n| n.text()).unwrap_or("");
            let (compiler, built) = (leaf("compiler"), leaf("built"));
            problems.extend(check_build_stamp("XML", compiler, built));
            if j.v["compiler"].as_str() != Some(compiler) || j.v["built"].as_str() != Some(built) {
                problems.push(format!(
                    "JSON compiler {} and built {} differ from the XML's {compiler:?}, {built:?}",
                    j.v["compiler"], j.v["built"]
                ));
            }
        }
    }
    let jr = get(&server, "/stat?format=json");
    if jr.header("Content-Type") != Some("application/json") {
        problems.push(format!("JSON Content-Type {:?}", jr.header("Content-Type")));
    }

    // Prometheus: strict text format, and the numbers of this stream.
    let pr = get(&server, "/stat?format=prometheus");
    if !pr
        .header("Content-Type")
        .is_some_and(|t| t.starts_with("text/plain; version=0.0.4"))
    {
        problems.push(format!(
            "Prometheus Content-Type {:?}",
            pr.header("Content-Type")
        ));
    }
    match parse_prometheus(&body(&pr)) {
        Err(e) => problems.push(format!("Prometheus: {e}\n{}", body(&pr))),
        Ok(samples) => {
            let s = [("server", "0"), ("app", APP), ("name", "tree")];
            let checks = [
                (
                    "nginx_rtmp_workers",
                    sample(&samples, "nginx_rtmp_workers", &[]),
                    2.0,
                ),
                (
                    "nginx_rtmp_stream_clients",
                    sample(&samples, "nginx_rtmp_stream_clients", &s),
                    2.0,
                ),
                (
                    "nginx_rtmp_stream_publishing",
                    sample(&samples, "nginx_rtmp_stream_publishing", &s),
                    1.0,
                ),
                (
                    "nginx_rtmp_stream_video_width",
                    sample(&samples, "nginx_rtmp_stream_video_width", &s),
                    320.0,
                ),
            ];
            for (what, got, want) in checks {
                if got != Some(want) {
                    problems.push(format!("Prometheus {what}: {got:?}, want {want}"));
                }
            }
            let worker_series = samples
                .iter()
                .filter(|(n, _, _)| n == "nginx_rtmp_worker_connections")
                .count();
            if worker_series != 2 {
                problems.push(format!(
                    "Prometheus: {worker_series} nginx_rtmp_worker_connections series, want 2"
                ));
            }
        }
    }

    // The C module, same publish and player: the same element paths.
    let c_nginx = PathBuf::from("/usr/sbin/nginx");
    let c_module = PathBuf::from("/usr/lib/nginx/modules/ngx_rtmp_module.so");
    if c_nginx.is_file() && c_module.is_file() {
        let launch = Launch {
            workers: 1,
            http_reuseport: false,
            nginx: c_nginx,
            module: c_module,
        };
        let mut c_server = launch.start(&rtmp_block(false), HTTP_LOCATIONS);
        let mut c_publisher = publish(&c_server.rtmp_url("live/tree"), 20);
        thread::sleep(Duration::from_millis(1500));
        let mut c_player = Player::start(&c_server, "tree", false);
        let cr = wait_xml_ready(&c_server, "/stat", "tree", 2);
        let c_text = body(&cr);
        problems.extend(check_xml_document(&cr, true, "C module /stat"));
        match xml_tree(&c_text) {
            Err(e) => problems.push(format!("C module: {e}")),
            Ok((theirs, shape)) => {
                problems.extend(shape.into_iter().map(|p| format!("C module: {p}")));
                let a: BTreeSet<&String> = ours.iter().filter(|p| !is_optional_path(p)).collect();
                let b: BTreeSet<&String> = theirs.iter().filter(|p| !is_optional_path(p)).collect();
                for p in b.difference(&a) {
                    problems.push(format!("only the C module has {p}"));
                }
                for p in a.difference(&b) {
                    problems.push(format!("only ours has {p}"));
                }
            }
        }
        c_player.stop();
        drop(c_player);
        c_publisher.kill();
        c_server.stop();
        println!("compared with the C module's /stat:\n{c_text}");
    } else {
        println!(
            "note: Debian's nginx or libnginx-mod-rtmp is not installed; C comparison skipped"
        );
    }

    println!("our /stat:\n{text}");
    assert!(
        problems.is_empty(),
        "{} problems with /stat:\n{}",
        problems.len(),
        problems.join("\n")
    );
    player.stop();
    assert!(publisher.is_running(), "publisher: {}", publisher.stderr());
    drop(player);
    drop(publisher);
    finish_checked(server);
}

// ---------------------------------------------------------------------------------------------
// 5. /control acts on clients of other workers

/// Drops player `victim` with `answer` (the response to its drop request): the answer is "1",
/// the player sees its connection closed and `/stat` stops listing it, within 2 s.
fn check_dropped(server: &Server, victim: &Player, answer: &HttpResponse, what: &str) {
    let t = Instant::now();
    assert_eq!(
        (answer.status, body(answer).trim()),
        (200, "1"),
        "{what}: drop of client {} (worker {}) answered by worker {}",
        victim.id,
        victim.worker,
        answered_by(answer)
    );
    let deadline = t + Duration::from_secs(2);
    while victim.ended().is_none() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    let ended = victim.ended();
    assert!(
        ended
            .as_ref()
            .is_some_and(|(_, why)| why.contains("Closed")),
        "{what}: client {} (worker {}) still connected 2 s after the drop (ended: {ended:?})",
        victim.id,
        victim.worker
    );
    // Gone from /stat, and it stays gone in the next answers (whichever worker gives them).
    let mut gone_in_a_row = 0;
    while gone_in_a_row < 4 {
        let s = stat_json(server);
        let listed = json_stream(&s.v, "x")
            .is_some_and(|st| json_clients(st).iter().any(|c| c.id == victim.id));
        if listed {
            gone_in_a_row = 0;
            assert!(
                Instant::now() < deadline,
                "{what}: client {} still in /stat (from worker {}) 2 s after the drop",
                victim.id,
                s.worker
            );
            thread::sleep(Duration::from_millis(50));
        } else {
            gone_in_a_row += 1;
        }
    }
}

#[test]
fn control_drop_acts_on_a_client_of_another_worker() {
    let server = start(2);
    let workers = wait_workers(&server, 2);
    let (mut publisher, pub_worker, pub_id) = start_publisher(&server, "x", 40);
    thread::sleep(Duration::from_millis(1200));
    let mut players = connect_players(&server, "x", 8, |m| {
        workers.iter().all(|w| m.get(w).copied().unwrap_or(0) >= 2)
    });
    println!(
        "publisher {pub_id} on {pub_worker}; players per worker {:?}",
        by_worker(&players)
    );
    let all: BTreeSet<u64> = players.iter().map(|p| p.id).chain([pub_id]).collect();
    wait_json(&server, STAT_CATCH_UP, "every player", |s| {
        let ids: BTreeSet<u64> = json_clients(json_stream(&s.v, "x")?)
            .iter()
            .map(|c| c.id)
            .collect();
        (ids == all).then_some(())
    });
    let mut dropped: Vec<usize> = Vec::new();

    // A player of the other worker, through a connection whose worker we know first.
    let mut cross = None;
    for _ in 0..20 {
        let mut ka = KeepAlive::open(server.http_port);
        let w = answered_by(&ka.get("/stat?format=json"));
        let Some(i) = players.iter().position(|p| p.worker != w) else {
            continue;
        };
        let r = ka.get(&format!(
            "/control/drop/subscriber?app={APP}&name=x&clientid={}",
            players[i].id
        ));
        assert_eq!(
            answered_by(&r),
            w,
            "one keep-alive connection, two workers?"
        );
        cross = Some((i, r));
        break;
    }
    let (i, r) = cross.expect("a /control connection on the other worker within 20 tries");
    check_dropped(&server, &players[i], &r, "drop across workers");
    dropped.push(i);

    // A player of the answering worker.
    let mut same = None;
    for _ in 0..20 {
        let mut ka = KeepAlive::open(server.http_port);
        let w = answered_by(&ka.get("/stat?format=json"));
        let Some(i) = players
            .iter()
            .enumerate()
            .position(|(j, p)| p.worker == w && !dropped.contains(&j))
        else {
            continue;
        };
        let r = ka.get(&format!(
            "/control/drop/subscriber?app={APP}&name=x&clientid={}",
            players[i].id
        ));
        same = Some((i, r));
        break;
    }
    let (i, r) = same.expect("a /control connection on a player's worker within 20 tries");
    check_dropped(&server, &players[i], &r, "drop on the same worker");
    dropped.push(i);

    // Two more, wherever the requests land.
    for _ in 0..2 {
        let i = (0..players.len())
            .find(|j| !dropped.contains(j))
            .expect("players left");
        let r = get(
            &server,
            &format!(
                "/control/drop/subscriber?app={APP}&name=x&clientid={}",
                players[i].id
            ),
        );
        check_dropped(&server, &players[i], &r, "drop from any worker");
        dropped.push(i);
    }

    // A client already gone matches nothing.
    let r = get(
        &server,
        &format!(
            "/control/drop/subscriber?app={APP}&name=x&clientid={}",
            players[dropped[0]].id
        ),
    );
    assert_eq!(
        (r.status, body(&r).trim()),
        (200, "0"),
        "drop of a client already dropped"
    );

    // The others still receive media, and the publisher still publishes.
    let before: Vec<u64> = players.iter().map(Player::video).collect();
    thread::sleep(Duration::from_secs(2));
    let mut problems = Vec::new();
    for (j, p) in players.iter().enumerate() {
        if dropped.contains(&j) {
            continue;
        }
        let got = p.video() - before[j];
        if got < 25 || p.ended().is_some() {
            problems.push(format!(
                "player {} on worker {}: {got} video messages in 2 s, total {}, ended {:?}",
                p.id,
                p.worker,
                p.video(),
                p.ended().map(|e| e.1)
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "players left after the drops stopped receiving media (publisher on {pub_worker}):\n{}",
        problems.join("\n")
    );
    assert!(publisher.is_running(), "publisher: {}", publisher.stderr());
    wait_published(&server, "x", pub_id);

    // Bad parameters, and a recorder the application does not have.
    let r = get(&server, "/control/drop/publisher?clientid=abc");
    let reason = body(&r);
    assert!(
        r.status == 400 && !reason.trim().is_empty() && reason.trim().lines().count() == 1,
        "clientid=abc: expected 400 with a one-line reason, got {} {reason:?}",
        r.status
    );
    let r = get(&server, &format!("/control/record/start?app={APP}&name=x"));
    assert_eq!(r.status, 500, "record/start: {}", body(&r));
    assert_eq!(body(&r).trim(), "Recorder not found");

    for p in &mut players {
        p.stop();
    }
    drop(players);
    drop(publisher);
    finish_checked(server);
}

// ---------------------------------------------------------------------------------------------
// 6. Reload

#[test]
fn reload_keeps_the_stream_watchable_and_listed() {
    let mut server = start(2);
    let master = server.pid();
    let old_workers = wait_workers(&server, 2);
    let (mut publisher, pub_worker, pub_id) = start_publisher(&server, "r", 40);
    wait_published(&server, "r", pub_id);
    thread::sleep(Duration::from_millis(500));

    server.reload();
    let deadline = Instant::now() + Duration::from_secs(10);
    let new_workers: BTreeSet<u32> = loop {
        let new: BTreeSet<u32> = worker_pids(master)
            .into_iter()
            .map(|p| p as u32)
            .filter(|p| !old_workers.contains(p))
            .collect();
        if new.len() == 2 {
            break new;
        }
        assert!(
            Instant::now() < deadline,
            "no 2 new workers 10 s after the reload: {new:?}"
        );
        thread::sleep(Duration::from_millis(50));
    };
    println!(
        "publisher {pub_id} on old worker {pub_worker}; old {old_workers:?}, new {new_workers:?}"
    );
    // The master tells the old workers to stop about 100 ms after starting the new ones; until
    // they close their listening sockets they still take connections.
    let deadline = Instant::now() + Duration::from_secs(5);
    for w in &old_workers {
        let line = format!("{w}#{w}: gracefully shutting down");
        while !server.error_log().contains(&line) && worker_pids(master).contains(&(*w as i32)) {
            assert!(
                Instant::now() < deadline,
                "old worker {w} was not told to stop within 5 s of the reload"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
    thread::sleep(Duration::from_millis(100));
    // The idle old worker has exited by now: the master reaped it.
    assert_master_alive(&mut server, "after an old worker exited");

    // Still listed, publishing, by every new answer.
    wait_published(&server, "r", pub_id);
    for _ in 0..6 {
        let s = stat_json(&server);
        let st = json_stream(&s.v, "r");
        assert!(
            st.is_some_and(|st| st["publishing"] == true
                && json_clients(st)
                    .iter()
                    .any(|c| c.id == pub_id && c.publishing)),
            "after the reload, /stat from worker {} (new: {}) does not list live/r as published \
             by {pub_id}:\n{}",
            s.worker,
            new_workers.contains(&s.worker),
            serde_json::to_string_pretty(&s.v).unwrap_or_default()
        );
    }

    // A player arriving now (on a new worker) watches it.
    let mut player = Player::start(&server, "r", true);
    assert!(
        new_workers.contains(&player.worker),
        "the new player landed on worker {}, not a new one {new_workers:?}",
        player.worker
    );
    thread::sleep(Duration::from_secs(4));
    player.stop();
    if let Some(p) = player.media_problem() {
        panic!("new player after the reload (publisher on old worker {pub_worker}): {p}");
    }
    drop(player);

    // The old publisher keeps publishing.
    assert!(
        publisher.is_running(),
        "publisher dropped by the reload: {}",
        publisher.stderr()
    );
    assert_publisher_still_sending(&server, "r", pub_id);

    // Once it stops the stream goes from /stat; the old workers exit; nothing stale remains.
    publisher.kill();
    wait_json(&server, STAT_CATCH_UP, "live/r gone", |s| {
        json_stream(&s.v, "r").is_none().then_some(())
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now: BTreeSet<u32> = worker_pids(master).into_iter().map(|p| p as u32).collect();
        if now == new_workers {
            break;
        }
        assert_master_alive(&mut server, "while the old workers exit");
        assert!(
            Instant::now() < deadline,
            "old workers still running 10 s after the publisher left: {now:?} (new {new_workers:?})"
        );
        thread::sleep(Duration::from_millis(100));
    }
    for _ in 0..6 {
        let s = stat_json(&server);
        let listed: Vec<u32> = s.v["workers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|w| w["pid"].as_u64().map(|p| p as u32))
            .collect();
        let set: BTreeSet<u32> = listed.iter().copied().collect();
        assert!(
            set == new_workers && listed.len() == new_workers.len(),
            "stale workers in /stat after the old ones exited: {listed:?} (running {new_workers:?})"
        );
        let streams: Vec<&Value> = s.v["servers"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|sv| sv["applications"].as_array().into_iter().flatten())
            .flat_map(|a| a["streams"].as_array().into_iter().flatten())
            .collect();
        assert!(
            streams.is_empty(),
            "stale streams in /stat from worker {}: {streams:?}",
            s.worker
        );
    }
    // The name is free again.
    let mut again = RtmpClient::connect(&server.rtmp_addr(), APP).expect("connect");
    let code = again.publish("r");
    assert!(
        matches!(&code, Ok(c) if c == "NetStream.Publish.Start"),
        "publishing live/r again after its publisher left: {code:?}"
    );
    drop(again);
    assert_master_alive(&mut server, "at the end");
    finish_checked(server);
}

/// The master is still running (if not, how it ended and the end of its log).
fn assert_master_alive(server: &mut Server, when: &str) {
    if server.is_running() {
        return;
    }
    let log = server.error_log();
    let tail: Vec<&str> = log.lines().rev().take(15).collect();
    panic!(
        "the nginx master died {when}: {:?}; last log lines:\n{}",
        master_status(server),
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    );
}

/// `max_connections 10` with 4 workers: the count spans every worker (connections land on
/// workers at random with `reuseport`), so the 11th is refused with
/// `NetConnection.Connect.Rejected` whichever worker takes it, the ten stay connected, and a
/// place freed by one of them lets the next client in.
#[test]
fn max_connections_counts_every_worker() {
    let block = rtmp_block(true).replace(
        "chunk_size 4096;",
        "chunk_size 4096;\n        max_connections 10;",
    );
    let server = Launch::workers(4).start(&block, HTTP_LOCATIONS);
    wait_workers(&server, 4);
    let offset = server.log_len();
    let mut held: Vec<RtmpClient> = (1..=10)
        .map(|n| {
            RtmpClient::connect(&server.rtmp_addr(), APP)
                .unwrap_or_else(|e| panic!("connection {n} of 10 should be accepted: {e}"))
        })
        .collect();
    let mut refusing_workers = BTreeSet::new();
    for attempt in 1..=6 {
        let start = server.log_len();
        match RtmpClient::connect(&server.rtmp_addr(), APP) {
            Err(ClientError::Rejected(description)) => {
                assert!(
                    description.contains("Too many connections"),
                    "attempt {attempt}: {description:?}"
                );
            }
            Ok(_) => panic!("attempt {attempt}: connection 11 was accepted"),
            Err(e) => panic!("attempt {attempt}: connection 11 failed otherwise: {e}"),
        }
        let (worker, _) = conn_of(
            &server,
            start,
            "connect refused: 11 connections, max_connections is 10",
            Duration::from_secs(5),
        );
        refusing_workers.insert(worker);
    }
    println!("refused by workers {refusing_workers:?}");
    let accepted_by: BTreeSet<u32> = server
        .log_since(offset)
        .lines()
        .filter(|l| l.contains("rtmp: client ") && l.contains(" connected to "))
        .filter_map(parse_conn)
        .map(|(pid, _)| pid)
        .collect();
    println!("connections accepted by workers {accepted_by:?}");
    for (n, client) in held.iter_mut().enumerate() {
        assert!(
            client.idle(Duration::from_millis(10)).is_ok(),
            "connection {} was disturbed by the refusals",
            n + 1
        );
    }
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match RtmpClient::connect(&server.rtmp_addr(), APP) {
            Ok(_) => break,
            Err(e) => assert!(
                Instant::now() < deadline,
                "a freed place should let a client in: {e}"
            ),
        }
        thread::sleep(Duration::from_millis(100));
    }
    drop(held);
    finish_checked(server);
}
