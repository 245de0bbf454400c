//! Hostile clients: hand-built bytes over raw TCP while a normal ffmpeg publish + ffmpeg play
//! of another stream runs alongside. For each case:
//! - the hostile connection is closed (or refused) within a bounded time;
//! - the error log has exactly one line explaining it (bookkeeping lines such as "connected" /
//!   "disconnected: <same reason>" aside), short enough to read (no 1 MB name in a log line);
//! - the worker survives (same PID, no `[alert]`/`[emerg]`/"exited on signal");
//! - the normal player decodes its whole duration without errors or a stall.
//!
//! Every sub-case of a test runs, and the test fails at the end with the list of what went
//! wrong, so one run reports every weakness (useful with `RTMP_IT_TARGET=c`).
//!
//! Expected failures with `RTMP_IT_TARGET=c` (the C module, as measured): its worker segfaults
//! on the nested-object `connect` (and takes the normal stream down with it); it logs nothing
//! for invalid AMF and 1 MB names (which it accepts, truncated); two lines per bad handshake,
//! and HTTP/TLS only time out; `[alert]` without closing for chunk sizes with the top bit set;
//! it closes a valid 2^31-1 chunk size session; truncated input after the handshake is never
//! dropped (no `timeout`, no ping timeout); one log line per frame for absurd timestamps
//! and zero-length HLS segments.

mod common;

use std::collections::HashSet;
use std::fs;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use common::raw::*;
use common::*;

/// Longest acceptable log line (a hostile name must be cut, not logged whole).
const MAX_LOG_LINE: usize = 2000;
/// Decoded media may fall this short of what the normal player asked for.
const DECODE_MARGIN: f64 = 0.5;
/// A player "stalls" if it needs more wall time than its media plus this (connect + probe).
const STALL_SLACK: Duration = Duration::from_secs(7);

/// The normal traffic next to the hostile one: an ffmpeg publisher and an ffmpeg player.
struct Normal {
    publisher: FfmpegChild,
    player: Option<JoinHandle<PlayResult>>,
    secs: u32,
}

impl Normal {
    /// Publishes `live/<name>` and starts a player that decodes `secs` seconds of it.
    fn start(server: &Server, name: &str, secs: u32) -> Normal {
        let url = server.rtmp_url(&format!("live/{name}"));
        let publisher = publish(&url, secs + 12);
        thread::sleep(Duration::from_millis(1200));
        let player = spawn_play_decode(&url, secs);
        // Let the player get past its probing, so the hostile part hits it mid-stream.
        thread::sleep(Duration::from_millis(1500));
        Normal {
            publisher,
            player: Some(player),
            secs,
        }
    }

    /// Joins the player; adds to `problems` if it did not decode its duration in time.
    fn check(mut self, problems: &mut Vec<String>) {
        let r = self
            .player
            .take()
            .expect("player")
            .join()
            .expect("player thread");
        let want = f64::from(self.secs) - DECODE_MARGIN;
        println!(
            "normal player: {:.2} s decoded ({} frames) in {:.2} s, ok={}",
            r.decoded_seconds,
            r.frames,
            r.wall.as_secs_f64(),
            r.ok
        );
        if !(r.ok && r.decoded_seconds >= want) {
            problems.push(format!(
                "normal player: expected >= {want} s decoded without error, got {r:#?}"
            ));
        } else if r.wall > Duration::from_secs(u64::from(self.secs)) + STALL_SLACK {
            problems.push(format!(
                "normal player stalled: {:.1} s of wall time for {} s of media",
                r.wall.as_secs_f64(),
                self.secs
            ));
        }
        if !self.publisher.is_running() {
            problems.push(format!(
                "normal publisher stopped early: {:?} {}",
                self.publisher.status(),
                self.publisher.stderr()
            ));
        }
    }
}

/// The server under test, its worker, and what went wrong so far.
struct Bench {
    server: Server,
    master: i32,
    worker: i32,
    problems: Vec<String>,
}

impl Bench {
    fn new(server: Server) -> Bench {
        let master = server.pid();
        let worker = single_worker(master);
        Bench {
            server,
            master,
            worker,
            problems: Vec::new(),
        }
    }

    /// Opens a TCP connection and learns its nginx connection number (`*N` of the first new
    /// number in the log: both modules log each accepted connection).
    fn open(&self) -> Tracked {
        let before = conn_numbers(&self.server.error_log());
        let conn = RawConn::open(&self.server.rtmp_addr()).expect("tcp connect");
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let mut new: Vec<u64> = conn_numbers(&self.server.error_log())
                .difference(&before)
                .copied()
                .collect();
            new.sort_unstable();
            if let Some(&n) = new.first() {
                return Tracked { conn, n };
            }
            assert!(
                Instant::now() < deadline,
                "the server did not log the new connection"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// [`Bench::open`] + handshake + `connect("live")`.
    fn open_connected(&self) -> Tracked {
        let mut t = self.open();
        t.conn.handshake().expect("handshake");
        t.conn
            .send(&message(
                128,
                3,
                0,
                MSG_COMMAND_AMF0,
                0,
                &connect_command("live", &self.server.rtmp_addr()),
            ))
            .expect("send connect");
        t.conn
            .read_until(b"NetConnection.Connect.Success", STEP_TIMEOUT)
            .expect("connect accepted");
        t
    }

    /// The hostile connection `t` must be closed within `limit`, with exactly one reason line
    /// that contains one of `keywords`. Records problems; returns the reason line(s).
    fn expect_dropped(
        &mut self,
        what: &str,
        mut t: Tracked,
        limit: Duration,
        keywords: &[&str],
    ) -> Vec<String> {
        let closed = t.conn.wait_closed(limit);
        // Lines are written before the close, but give a slow log a moment anyway.
        thread::sleep(Duration::from_millis(150));
        self.judge(what, t.n, closed, limit, keywords)
    }

    fn judge(
        &mut self,
        what: &str,
        n: u64,
        closed: Result<Closed, ()>,
        limit: Duration,
        keywords: &[&str],
    ) -> Vec<String> {
        let lines = lines_of(&self.server.error_log(), n);
        let reasons: Vec<String> = lines
            .iter()
            .filter(|l| !is_bookkeeping(l))
            .cloned()
            .collect();
        match closed {
            Ok(c) => println!(
                "[{what}] closed by the server after {:?} ({c:?})",
                c.after()
            ),
            Err(()) => {
                println!("[{what}] NOT closed within {limit:?}");
                self.problems
                    .push(format!("{what}: connection still open after {limit:?}"));
            }
        }
        for l in &reasons {
            println!("[{what}] log: {}", shorten(l));
        }
        if reasons.len() != 1 {
            self.problems.push(format!(
                "{what}: expected one log line explaining the close, got {}:\n{}",
                reasons.len(),
                lines
                    .iter()
                    .map(|l| shorten(l))
                    .collect::<Vec<_>>()
                    .join("\n")
            ));
        } else if !keywords.is_empty()
            && !keywords
                .iter()
                .any(|k| reasons[0].to_lowercase().contains(&k.to_lowercase()))
        {
            self.problems.push(format!(
                "{what}: the log line does not say what happened (expected one of {keywords:?}): {}",
                shorten(&reasons[0])
            ));
        }
        if let Some(l) = lines.iter().find(|l| l.len() > MAX_LOG_LINE) {
            self.problems.push(format!(
                "{what}: a log line of {} bytes: {}",
                l.len(),
                shorten(l)
            ));
        }
        self.check_worker(what);
        reasons
    }

    /// The worker must be the same process, and the log free of alerts/crashes.
    fn check_worker(&mut self, what: &str) {
        let workers = worker_pids(self.master);
        if workers != vec![self.worker] {
            self.problems.push(format!(
                "{what}: worker {} is gone (workers now {workers:?})",
                self.worker
            ));
            if let [w] = workers.as_slice() {
                self.worker = *w;
            }
        }
        let bad: Vec<String> = self
            .server
            .error_log()
            .lines()
            .filter(|l| is_forbidden_log_line(l))
            .map(shorten)
            .collect();
        if !bad.is_empty()
            && !self
                .problems
                .iter()
                .any(|p| p.contains("forbidden log lines"))
        {
            self.problems.push(format!(
                "after {what}: forbidden log lines:\n{}",
                bad.join("\n")
            ));
        }
    }

    /// Ends the test: normal traffic checked, nginx stopped, every problem reported.
    fn finish(mut self, normal: Normal) {
        normal.check(&mut self.problems);
        self.check_worker("the end of the test");
        let Bench {
            mut server,
            problems,
            ..
        } = self;
        server.stop();
        assert!(
            problems.is_empty(),
            "{} problem(s) (target {:?}):\n- {}",
            problems.len(),
            target(),
            problems.join("\n- ")
        );
        server.finish();
    }
}

/// A hostile connection with its nginx connection number.
struct Tracked {
    conn: RawConn,
    n: u64,
}

fn shorten(line: &str) -> String {
    if line.len() <= 300 {
        return line.to_string();
    }
    let cut = (0..=300)
        .rev()
        .find(|&i| line.is_char_boundary(i))
        .unwrap_or(0);
    format!("{}... ({} bytes)", &line[..cut], line.len())
}

/// A connect command payload whose first AMF value after the transaction id is `rest`.
fn connect_with(rest: &[u8]) -> Vec<u8> {
    let mut p = Vec::new();
    amf_string(&mut p, "connect");
    amf_number(&mut p, 1.0);
    p.extend_from_slice(rest);
    p
}

fn send_quietly(t: &mut Tracked, bytes: &[u8]) {
    // The server may close in the middle of a hostile message: that is not a test failure.
    if let Err(e) = t.conn.send(bytes) {
        println!("(send stopped: {e})");
    }
}

// ---------------------------------------------------------------------------------------------

#[test]
fn garbage_handshakes_are_refused_with_one_line_each() {
    let server = Server::start(&live_rtmp_block("timeout 3s;", ""), "");
    let mut b = Bench::new(server);
    let normal = Normal::start(&b.server, "normal", 10);
    let limit = Duration::from_secs(5);

    // RTMPE's version byte, with a full C1.
    let mut t = b.open();
    let mut c0c1 = vec![6u8];
    c0c1.extend_from_slice(&[0u8; HANDSHAKE_SIZE]);
    send_quietly(&mut t, &c0c1);
    b.expect_dropped("version byte 6", t, limit, &["version"]);

    // 8 KiB of random bytes (this seed's first byte is not 3).
    let mut t = b.open();
    let noise = XorShift::new(0x5eed).bytes(8192);
    assert_ne!(noise[0], 3);
    send_quietly(&mut t, &noise);
    b.expect_dropped("random bytes", t, limit, &["version"]);

    // A valid version byte, then random bytes through C1, C2 and into the chunk stream.
    let mut t = b.open();
    let mut noise = XorShift::new(0xfeed).bytes(16384);
    noise[0] = 3;
    send_quietly(&mut t, &noise);
    b.expect_dropped("version 3 then random bytes", t, limit, &[]);

    // A web browser (or a health check) pointed at the RTMP port.
    let mut t = b.open();
    send_quietly(
        &mut t,
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: curl/8.0\r\nAccept: */*\r\n\r\n",
    );
    b.expect_dropped("HTTP request", t, limit, &["HTTP"]);

    // An rtmps client (TLS 1.2 ClientHello) on the plain port.
    let mut t = b.open();
    send_quietly(&mut t, &tls_client_hello());
    b.expect_dropped("TLS ClientHello", t, limit, &["TLS"]);

    b.finish(normal);
}

/// A minimal TLS 1.2 ClientHello record (one cipher suite, SNI "localhost").
fn tls_client_hello() -> Vec<u8> {
    let mut hello = vec![0x03, 0x03];
    hello.extend_from_slice(&XorShift::new(42).bytes(32));
    hello.push(0); // session id
    hello.extend_from_slice(&[0x00, 0x02, 0xc0, 0x2f]); // one cipher suite
    hello.extend_from_slice(&[0x01, 0x00]); // null compression
    let sni_name = b"localhost";
    let mut sni = Vec::new();
    sni.extend_from_slice(&((sni_name.len() + 3) as u16).to_be_bytes());
    sni.push(0);
    sni.extend_from_slice(&(sni_name.len() as u16).to_be_bytes());
    sni.extend_from_slice(sni_name);
    let mut ext = vec![0x00, 0x00];
    ext.extend_from_slice(&(sni.len() as u16).to_be_bytes());
    ext.extend_from_slice(&sni);
    hello.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    hello.extend_from_slice(&ext);
    let mut hs = vec![0x01];
    hs.extend_from_slice(&(hello.len() as u32).to_be_bytes()[1..]);
    hs.extend_from_slice(&hello);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    record.extend_from_slice(&hs);
    record
}

#[test]
fn invalid_chunk_sizes_are_refused_and_the_largest_valid_one_is_harmless() {
    let server = Server::start_live("");
    let mut b = Bench::new(server);
    let normal = Normal::start(&b.server, "normal", 10);
    let limit = Duration::from_secs(5);

    for (what, value, keyword) in [
        ("chunk size 0", 0u32, "chunk size 0"),
        ("chunk size 2^31 (high bit set)", 0x8000_0000, "2147483648"),
        ("chunk size 0xFFFFFFFF", 0xFFFF_FFFF, "4294967295"),
    ] {
        let mut t = b.open_connected();
        send_quietly(&mut t, &set_chunk_size(value));
        // Something to read with it, for a server that applies the size lazily.
        send_quietly(
            &mut t,
            &message(128, 3, 0, MSG_COMMAND_AMF0, 0, &create_stream_command(2.0)),
        );
        b.expect_dropped(what, t, limit, &[keyword]);
    }

    // 2^31-1 is valid: the next messages arrive as single chunks and must work, without the
    // server allocating by chunk size.
    let rss_before = rss_kib(b.worker);
    let mut t = b.open();
    t.conn.handshake().expect("handshake");
    t.conn.send(&set_chunk_size(0x7FFF_FFFF)).expect("send");
    let connect = connect_command("live", &b.server.rtmp_addr());
    t.conn
        .send(&message(0x7FFF_FFFF, 3, 0, MSG_COMMAND_AMF0, 0, &connect))
        .expect("send connect");
    let ok = t
        .conn
        .read_until(b"NetConnection.Connect.Success", STEP_TIMEOUT);
    // A 900 KB data message in one chunk, then a command that must still be answered.
    let mut big = Vec::new();
    amf_string(&mut big, "hostileData");
    amf_string(&mut big, &"x".repeat(60_000));
    big.resize(900_000, 0x05);
    let _ = t
        .conn
        .send(&message(0x7FFF_FFFF, 5, 0, MSG_DATA_AMF0, 0, &big));
    t.conn.received.clear();
    let _ = t.conn.send(&message(
        0x7FFF_FFFF,
        3,
        0,
        MSG_COMMAND_AMF0,
        0,
        &create_stream_command(2.0),
    ));
    let answered = t.conn.read_until(b"_result", STEP_TIMEOUT);
    let rss_after = rss_kib(b.worker);
    println!(
        "[chunk size 2^31-1] connect: {ok:?}; createStream after a 900 KB single-chunk message: \
         {answered:?}; worker RSS {rss_before} -> {rss_after} KiB"
    );
    if ok.is_err() || answered.is_err() {
        b.problems.push(format!(
            "chunk size 2^31-1: a valid session failed: connect {ok:?}, createStream {answered:?}"
        ));
    }
    if rss_after > rss_before + 64 * 1024 {
        b.problems.push(format!(
            "chunk size 2^31-1: worker RSS grew from {rss_before} to {rss_after} KiB"
        ));
    }
    t.conn.drain_for(Duration::from_millis(200));
    drop(t);
    b.check_worker("chunk size 2^31-1");

    b.finish(normal);
}

#[test]
fn chunk_stream_flood_and_oversized_messages_are_refused() {
    let server = Server::start(
        &live_rtmp_block("max_streams 32;\n        max_message 64k;", ""),
        "",
    );
    let mut b = Bench::new(server);
    let normal = Normal::start(&b.server, "normal", 10);
    let limit = Duration::from_secs(5);

    // 300 distinct chunk stream ids, each starting a 1000-byte message with one 128-byte chunk
    // (so none completes and every one must be remembered).
    let mut t = b.open();
    t.conn.handshake().expect("handshake");
    let mut flood = Vec::new();
    for csid in 3..303u32 {
        flood.extend_from_slice(&header0(csid, 0, 1000, MSG_DATA_AMF0, 0));
        flood.extend_from_slice(&[0x05; 128]);
    }
    send_quietly(&mut t, &flood);
    b.expect_dropped("300 chunk stream ids", t, limit, &["chunk stream"]);

    // Same, with 3-byte basic headers (csid 320..65599), before connect.
    let mut t = b.open();
    t.conn.handshake().expect("handshake");
    let mut flood = Vec::new();
    for i in 0..300u32 {
        flood.extend_from_slice(&header0(320 + i * 217, 0, 1000, MSG_DATA_AMF0, 0));
        flood.extend_from_slice(&[0x05; 128]);
    }
    send_quietly(&mut t, &flood);
    b.expect_dropped("300 high chunk stream ids", t, limit, &["chunk stream"]);

    // A command declared at 100 000 bytes (max_message 64k).
    let mut t = b.open_connected();
    let mut m = header0(3, 0, 100_000, MSG_COMMAND_AMF0, 0);
    m.extend_from_slice(&[0x05; 128]);
    send_quietly(&mut t, &m);
    b.expect_dropped(
        "message of 100000 bytes",
        t,
        limit,
        &["max_message", "too big"],
    );

    // Media declared at 16 MiB - 1, before connect.
    let mut t = b.open();
    t.conn.handshake().expect("handshake");
    let mut m = header0(6, 0, 0xFF_FFFF, MSG_VIDEO, 1);
    m.extend_from_slice(&[0x17; 128]);
    send_quietly(&mut t, &m);
    b.expect_dropped("message of 16 MiB", t, limit, &["max_message", "too big"]);

    b.finish(normal);
}

#[test]
fn truncated_input_then_silence_is_dropped_by_timeouts() {
    let server = Server::start(
        &live_rtmp_block(
            "timeout 3s;\n        ping 2s;\n        ping_timeout 2s;",
            "",
        ),
        "",
    );
    let mut b = Bench::new(server);
    let normal = Normal::start(&b.server, "normal", 12);
    // ping 2s + ping_timeout 2s (or timeout 3s), plus timer slack.
    let limit = Duration::from_secs(9);

    let mut cases: Vec<(&str, Tracked, &[&str])> = Vec::new();

    // Half a C1.
    let mut t = b.open();
    let mut c = vec![3u8];
    c.extend_from_slice(&[0u8; 700]);
    send_quietly(&mut t, &c);
    cases.push((
        "half a handshake",
        t,
        &["timed out", "timeout", "within", "handshake"],
    ));

    // Handshake done, half a connect.
    let mut t = b.open();
    t.conn.handshake().expect("handshake");
    let connect = message(
        128,
        3,
        0,
        MSG_COMMAND_AMF0,
        0,
        &connect_command("live", &b.server.rtmp_addr()),
    );
    send_quietly(&mut t, &connect[..connect.len() / 2]);
    cases.push((
        "half a connect",
        t,
        &["timed out", "timeout", "within", "connect"],
    ));

    // Connected, then a message declared at 500 bytes of which 100 arrive.
    let mut t = b.open_connected();
    let mut m = header0(3, 0, 500, MSG_COMMAND_AMF0, 0);
    m.extend_from_slice(&[0x05; 100]);
    send_quietly(&mut t, &m);
    cases.push(("truncated message", t, &["ping", "timed out", "timeout"]));

    // Connected, then 5 bytes of a 12-byte chunk header.
    let mut t = b.open_connected();
    let h = header0(3, 0, 50, MSG_COMMAND_AMF0, 0);
    send_quietly(&mut t, &h[..5]);
    cases.push((
        "truncated chunk header",
        t,
        &["ping", "timed out", "timeout"],
    ));

    // Wait for all four at once: they share the clock.
    let waits: Vec<_> = cases
        .into_iter()
        .map(|(what, mut t, kw)| {
            thread::spawn(move || {
                let closed = t.conn.wait_closed(limit);
                (what, t.n, closed, kw)
            })
        })
        .collect();
    let results: Vec<_> = waits.into_iter().map(|w| w.join().expect("wait")).collect();
    thread::sleep(Duration::from_millis(150));
    for (what, n, closed, kw) in results {
        b.judge(what, n, closed, limit, kw);
    }

    b.finish(normal);
}

#[test]
fn invalid_amf_in_connect_is_refused() {
    let server = Server::start_live("");
    let mut b = Bench::new(server);
    let normal = Normal::start(&b.server, "normal", 10);
    let limit = Duration::from_secs(5);

    let mut depth_bomb = vec![0x03];
    for _ in 0..100_000 {
        depth_bomb.extend_from_slice(&[0x00, 0x01, b'a', 0x03]);
    }
    let mut four_gib = vec![0x03];
    amf_key(&mut four_gib, "app");
    four_gib.extend_from_slice(&[0x0C, 0xFF, 0xFF, 0xFF, 0xFF]);
    four_gib.extend_from_slice(b"live");
    amf_object_end(&mut four_gib);
    let mut bad_marker = vec![0x03];
    amf_key(&mut bad_marker, "app");
    bad_marker.extend_from_slice(&[0x42, 0x00, 0x04]);
    bad_marker.extend_from_slice(b"live");
    amf_object_end(&mut bad_marker);

    let mut name_65535 = vec![0x02, 0xFF, 0xFF];
    name_65535.extend_from_slice(b"connect");

    for (what, payload) in [
        ("AMF marker 0x42 in connect", connect_with(&bad_marker)),
        (
            "100 000 nested objects in connect",
            connect_with(&depth_bomb),
        ),
        (
            "connect with a string claiming 4 GiB",
            connect_with(&four_gib),
        ),
        ("command name claiming 65535 bytes", name_65535),
    ] {
        let mut t = b.open();
        t.conn.handshake().expect("handshake");
        send_quietly(&mut t, &message(128, 3, 0, MSG_COMMAND_AMF0, 0, &payload));
        b.expect_dropped(what, t, limit, &["AMF", "connect", "command"]);
    }

    b.finish(normal);
}

#[test]
fn names_of_one_megabyte_are_refused_and_not_logged_whole() {
    let server = Server::start_live("");
    let mut b = Bench::new(server);
    let normal = Normal::start(&b.server, "normal", 10);
    let limit = Duration::from_secs(8);
    let huge = "n".repeat(1_000_000);
    let keywords: &[&str] = &["1000000", "too long", "long"];

    // publish "nnnn...": 1 000 000 bytes of name in a command under the 1 MiB max_message.
    let mut t = b.open_connected();
    send_quietly(
        &mut t,
        &message(128, 3, 0, MSG_COMMAND_AMF0, 0, &create_stream_command(2.0)),
    );
    // Our chunk size first (fewer chunks), then the publish.
    send_quietly(&mut t, &set_chunk_size(65536));
    send_quietly(
        &mut t,
        &message(
            65536,
            8,
            0,
            MSG_COMMAND_AMF0,
            1,
            &publish_command(3.0, &huge),
        ),
    );
    b.expect_dropped("publish with a 1 MB name", t, limit, keywords);

    let mut t = b.open_connected();
    send_quietly(
        &mut t,
        &message(128, 3, 0, MSG_COMMAND_AMF0, 0, &create_stream_command(2.0)),
    );
    send_quietly(&mut t, &set_chunk_size(65536));
    send_quietly(
        &mut t,
        &message(65536, 8, 0, MSG_COMMAND_AMF0, 1, &play_command(3.0, &huge)),
    );
    b.expect_dropped("play with a 1 MB name", t, limit, keywords);

    let mut t = b.open();
    t.conn.handshake().expect("handshake");
    send_quietly(&mut t, &set_chunk_size(65536));
    send_quietly(
        &mut t,
        &message(65536, 3, 0, MSG_COMMAND_AMF0, 0, &{
            // connect({app: <1 MB>, tcUrl: "rtmp://127.0.0.1/x"}): under max_message.
            let mut p = Vec::new();
            amf_string(&mut p, "connect");
            amf_number(&mut p, 1.0);
            p.push(0x03);
            amf_key(&mut p, "app");
            amf_string(&mut p, &huge);
            amf_key(&mut p, "tcUrl");
            amf_string(&mut p, "rtmp://127.0.0.1/x");
            amf_object_end(&mut p);
            p
        }),
    );
    b.expect_dropped("connect with a 1 MB application name", t, limit, keywords);

    b.finish(normal);
}

/// Timestamps a hostile publisher puts on real media: jumps back and forth, the extended
/// timestamp boundary, and the top of the 32-bit range.
const ABSURD: [u32; 10] = [
    0xFFFF_FFFF,
    0,
    0x7FFF_FFFF,
    0x8000_0000,
    0xFF_FFFF,
    0xFF_FFFE,
    5,
    0xFFFF_FF00,
    1_000_000_000,
    40,
];

#[test]
fn absurd_publisher_timestamps_do_not_hurt_players_or_hls() {
    let server = Server::start(
        &output_rtmp_block(
            "hls",
            &[(
                "live",
                "hls_fragment 1s;\n            hls_playlist_length 6s;",
            )],
        ),
        &common::hls::hls_http_location("/hls/", "{PREFIX}/tmp/"),
    );
    let mut b = Bench::new(server);
    let tags = test_media_tags(&b.server.prefix.join("media.flv"), 6);
    assert!(tags.len() > 100, "test media: {} tags", tags.len());
    let normal = Normal::start(&b.server, "normal", 12);

    // A player of the hostile stream, counting what it gets.
    let addr = b.server.rtmp_addr();
    let hostile_player = thread::spawn(move || {
        let mut p = RtmpClient::connect(&addr, "live").expect("player connects");
        let codes = p.play("absurd");
        let (count, err) = p.read_media_for(Duration::from_secs(9));
        (codes, count, err)
    });

    let mut t = b.open_connected();
    t.conn.publish("absurd").expect("publish accepted");
    let start = Instant::now();
    let mut sent = 0;
    let mut chunks = 0;
    for (i, tag) in tags.iter().enumerate() {
        let (csid, type_id) = match tag.type_id {
            8 => (6, MSG_AUDIO),
            9 => (7, MSG_VIDEO),
            _ => (5, MSG_DATA_AMF0),
        };
        let bytes = if i > 4 && i % 7 == 0 {
            // Delta of -1 or 2^31 on the chunk stream (type-1 header).
            let delta = if i % 14 == 0 {
                0xFFFF_FFFF
            } else {
                0x8000_0000
            };
            message_delta(128, csid, delta, type_id, &tag.body)
        } else {
            let ts = if i > 4 && i % 5 == 0 {
                ABSURD[(i / 5) % ABSURD.len()]
            } else {
                tag.timestamp
            };
            message(128, csid, ts, type_id, 1, &tag.body)
        };
        if t.conn.send(&bytes).is_err() {
            println!("[absurd timestamps] the server closed the publisher after {sent} tags");
            break;
        }
        sent += 1;
        chunks += 1;
        // Real time, roughly: the media's own clock.
        let due = Duration::from_millis(u64::from(tag.timestamp));
        if let Some(wait) = due.checked_sub(start.elapsed()) {
            thread::sleep(wait);
        }
        // Keep the replies (acks, pings) drained.
        if chunks % 50 == 0 {
            t.conn.peer_closed_now();
        }
    }
    println!("[absurd timestamps] sent {sent} of {} tags", tags.len());
    let still_open = !t.conn.peer_closed_now();
    let (codes, count, err) = hostile_player.join().expect("hostile player");
    println!(
        "[absurd timestamps] publisher still connected: {still_open}; its player: {codes:?}, \
         {count:?}, ended by {err:?}"
    );
    if count.video == 0 {
        b.problems
            .push("absurd timestamps: the stream's player received no video".into());
    }
    if matches!(
        err,
        Some(ClientError::Io(_)) | Some(ClientError::Protocol(_))
    ) {
        b.problems.push(format!(
            "absurd timestamps: the stream's player failed: {err:?}"
        ));
    }
    let lines = lines_of(&b.server.error_log(), t.n);
    let reasons: Vec<&String> = lines.iter().filter(|l| !is_bookkeeping(l)).collect();
    for l in &reasons {
        println!("[absurd timestamps] log: {}", shorten(l));
    }
    if reasons.len() > 20 {
        b.problems.push(format!(
            "absurd timestamps: {} log lines for one publisher (a log flood)",
            reasons.len()
        ));
    }
    drop(t);

    // HLS: the normal stream's playlist is alive and sane; the hostile one's, if written,
    // parses and has no absurd (or empty) segment durations.
    let dir = b.server.prefix.join("tmp/live");
    match common::hls::read_media(&dir.join("normal.m3u8")) {
        Ok(s) => {
            let d = s.durations();
            println!("[absurd timestamps] normal.m3u8 durations {d:?}");
            if d.len() < 2 || d.iter().any(|&x| x > 10.0) {
                b.problems
                    .push(format!("normal stream's HLS playlist is off: {}", s.text));
            }
        }
        Err(e) => b
            .problems
            .push(format!("normal stream's HLS playlist: {e}")),
    }
    let hostile = dir.join("absurd.m3u8");
    if hostile.exists() {
        match common::hls::read_media(&hostile) {
            Ok(s) => {
                let d = s.durations();
                println!(
                    "[absurd timestamps] absurd.m3u8 durations {d:?}:\n{}",
                    s.text
                );
                if d.iter().any(|&x| !(x > 0.0 && x <= 60.0)) {
                    b.problems.push(format!(
                        "absurd timestamps: HLS segment durations {d:?} in:\n{}",
                        s.text
                    ));
                }
            }
            Err(e) => b.problems.push(format!(
                "absurd timestamps: HLS playlist does not parse: {e}"
            )),
        }
    } else {
        println!("[absurd timestamps] no absurd.m3u8 written");
    }
    b.check_worker("absurd timestamps");

    b.finish(normal);
}

/// Idle connections opened by this test.
const IDLE: usize = 2000;
/// Of those, how many send C0 and part of C1 before going quiet.
const HALF_HANDSHAKE: usize = 100;

#[test]
fn thousands_of_idle_connections_are_closed_after_timeout_while_others_play() {
    let mut server = Server::start(&live_rtmp_block("timeout 3s;", ""), "");
    // The harness starts nginx with 256 worker_connections: raise it and reload.
    let conf = fs::read_to_string(&server.conf_path).expect("read conf");
    assert!(conf.contains("worker_connections 256;"));
    fs::write(
        &server.conf_path,
        conf.replace("worker_connections 256;", "worker_connections 4096;"),
    )
    .expect("write conf");
    server.reload();
    let nofile = rlimit_nofile();
    assert!(
        nofile > (IDLE as u64) + 100,
        "this test needs {} file descriptors, ulimit -n is {nofile}",
        IDLE + 100
    );
    let mut b = Bench::new(server);
    let normal = Normal::start(&b.server, "normal", 12);

    let known: HashSet<u64> = conn_numbers(&b.server.error_log());
    let addr = b.server.rtmp_addr();
    let t0 = Instant::now();
    let mut conns: Vec<(RawConn, Instant)> = Vec::with_capacity(IDLE);
    for i in 0..IDLE {
        let mut c = match RawConn::open(&addr) {
            Ok(c) => c,
            Err(e) => {
                b.problems.push(format!(
                    "idle flood: connection {i} could not be opened: {e}"
                ));
                break;
            }
        };
        if i < HALF_HANDSHAKE {
            let mut part = vec![3u8];
            part.extend_from_slice(&[0u8; 600]);
            let _ = c.send(&part);
        }
        conns.push((c, Instant::now()));
    }
    let opened_in = t0.elapsed();
    println!(
        "[idle flood] {} connections opened in {opened_in:?}",
        conns.len()
    );

    // During the flood: a new player joins the normal stream and gets a keyframe.
    let join = (|| -> Result<Duration, String> {
        let t = Instant::now();
        let mut p = RtmpClient::connect(&addr, "live").map_err(|e| format!("connect: {e}"))?;
        let codes = p.play("normal").map_err(|e| format!("play: {e}"))?;
        if !codes.iter().any(|c| c == "NetStream.Play.Start") {
            return Err(format!("play codes {codes:?}"));
        }
        p.wait_keyframe(Duration::from_secs(5))
            .map_err(|e| format!("keyframe: {e}"))?;
        Ok(t.elapsed())
    })();
    // And a new publisher starts.
    let publish_during = RawConn::rtmp_connect(&addr, "live").and_then(|mut c| {
        c.publish("during-flood")?;
        Ok(c)
    });
    println!(
        "[idle flood] new publisher during the flood: {:?}",
        publish_during.as_ref().map(|_| "NetStream.Publish.Start")
    );
    if let Err(e) = &publish_during {
        b.problems.push(format!(
            "idle flood: a new publisher could not publish during the flood: {e}"
        ));
    }
    drop(publish_during);
    let mut open_now = 0;
    for (c, _) in conns.iter_mut() {
        if !c.peer_closed_now() {
            open_now += 1;
        }
    }
    println!(
        "[idle flood] new player during the flood: {join:?}; {open_now} idle connections open"
    );
    if let Err(e) = &join {
        b.problems.push(format!(
            "idle flood: a new player could not play during the flood: {e}"
        ));
    }

    // Now they should all go, each about `timeout` after it was opened.
    let deadline = Instant::now() + Duration::from_secs(8);
    let mut closed_after: Vec<Option<Duration>> = vec![None; conns.len()];
    while Instant::now() < deadline && closed_after.iter().any(Option::is_none) {
        for (i, (c, opened)) in conns.iter_mut().enumerate() {
            if closed_after[i].is_none() && c.peer_closed_now() {
                closed_after[i] = Some(opened.elapsed());
            }
        }
        thread::sleep(Duration::from_millis(100));
    }
    let closed: Vec<Duration> = closed_after.iter().flatten().copied().collect();
    let early = closed
        .iter()
        .filter(|d| **d < Duration::from_millis(2500))
        .count();
    let (min, max) = (
        closed.iter().min().copied().unwrap_or_default(),
        closed.iter().max().copied().unwrap_or_default(),
    );
    println!(
        "[idle flood] the server closed {} of {} idle connections, {min:?}..{max:?} after \
         each was opened ({early} before 2.5 s)",
        closed.len(),
        conns.len()
    );
    if closed.len() != conns.len() {
        b.problems.push(format!(
            "idle flood: only {} of {} idle connections closed within ~{:?}",
            closed.len(),
            conns.len(),
            opened_in + Duration::from_secs(8)
        ));
    }
    if early > 0 {
        b.problems.push(format!(
            "idle flood: {early} connections closed well before `timeout 3s`"
        ));
    }
    drop(conns);
    thread::sleep(Duration::from_millis(300));

    // One explaining line per idle connection.
    let log = b.server.error_log();
    let mut per_conn: std::collections::HashMap<u64, (usize, String)> = Default::default();
    for line in log.lines() {
        let Some(n) = conn_number(line) else { continue };
        if known.contains(&n) {
            continue;
        }
        let e = per_conn.entry(n).or_insert((0, String::new()));
        if !is_bookkeeping(line) {
            e.0 += 1;
            if e.1.is_empty() {
                e.1 = line.to_string();
            }
        }
    }
    let with_one = per_conn.values().filter(|(k, _)| *k == 1).count();
    let silent = per_conn.values().filter(|(k, _)| *k == 0).count();
    let noisy = per_conn.values().filter(|(k, _)| *k > 1).count();
    if let Some((_, sample)) = per_conn.values().find(|(k, _)| *k >= 1) {
        println!("[idle flood] sample log line: {}", shorten(sample));
    }
    println!(
        "[idle flood] {} new connections in the log: {with_one} with one explaining line, \
         {silent} with none, {noisy} with more",
        per_conn.len()
    );
    // The join probe connection is new too and has no reason to log anything.
    if with_one < IDLE {
        b.problems.push(format!(
            "idle flood: {with_one} of {IDLE} idle connections have one explaining log line \
             ({silent} none, {noisy} several)"
        ));
    }
    b.check_worker("idle flood");
    b.finish(normal);
}

fn rlimit_nofile() -> u64 {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) };
    r.rlim_cur
}
