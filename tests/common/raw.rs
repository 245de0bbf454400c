//! Raw RTMP over a plain TCP socket, for hostile-client tests: every byte is built by hand
//! (handshake, chunk headers, AMF0), so a test can send exactly the malformed thing it means to.
//! Also helpers to watch the server from outside: connection lines of its error log, its
//! worker processes and their memory.

use std::collections::HashSet;
use std::fs;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

/// Size of C1/C2/S1/S2.
pub const HANDSHAKE_SIZE: usize = 1536;
/// Timeout for the steps a well-behaved server answers at once (handshake, connect, publish).
pub const STEP_TIMEOUT: Duration = Duration::from_secs(5);

// Message type ids.
pub const MSG_SET_CHUNK_SIZE: u8 = 1;
pub const MSG_AUDIO: u8 = 8;
pub const MSG_VIDEO: u8 = 9;
pub const MSG_DATA_AMF0: u8 = 18;
pub const MSG_COMMAND_AMF0: u8 = 20;

/// A deterministic byte generator (xorshift64*), for "random" garbage that is the same on
/// every run.
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> Self {
        XorShift(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| (self.next_u64() >> 56) as u8).collect()
    }
}

/// How a wait for the server to close ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// EOF (FIN) after this long.
    Eof(Duration),
    /// Connection reset after this long (the server closed with our bytes unread).
    Reset(Duration),
}

impl Closed {
    pub fn after(self) -> Duration {
        match self {
            Closed::Eof(d) | Closed::Reset(d) => d,
        }
    }
}

/// One raw TCP connection to the server; everything the server sent is kept in `received`.
pub struct RawConn {
    pub stream: TcpStream,
    pub received: Vec<u8>,
    /// The peer's end-of-stream was seen (EOF or reset).
    pub closed: bool,
}

impl RawConn {
    /// TCP connect (bounded), TCP_NODELAY, bounded writes.
    pub fn open(addr: &str) -> io::Result<RawConn> {
        let sa: SocketAddr = addr
            .parse()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{e}")))?;
        let stream = TcpStream::connect_timeout(&sa, STEP_TIMEOUT)?;
        stream.set_nodelay(true)?;
        stream.set_write_timeout(Some(STEP_TIMEOUT))?;
        Ok(RawConn {
            stream,
            received: Vec::new(),
            closed: false,
        })
    }

    /// Sends bytes. Errors are returned, not panicked on: a server that closes in the middle
    /// of a hostile message is doing its job.
    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// One read of at most 64 KiB waiting up to `wait`; Ok(0) on timeout, Err on EOF/reset.
    fn read_once(&mut self, wait: Duration) -> Result<usize, Closed> {
        let start = Instant::now();
        let wait = wait.max(Duration::from_millis(1));
        let _ = self.stream.set_read_timeout(Some(wait));
        let mut buf = [0u8; 65536];
        match self.stream.read(&mut buf) {
            Ok(0) => {
                self.closed = true;
                Err(Closed::Eof(start.elapsed()))
            }
            Ok(n) => {
                self.received.extend_from_slice(&buf[..n]);
                Ok(n)
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                Ok(0)
            }
            Err(_) => {
                self.closed = true;
                Err(Closed::Reset(start.elapsed()))
            }
        }
    }

    /// Reads (keeping what arrives) until the server closes the connection. Ok(how long it took),
    /// or Err(()) if it was still open after `timeout`.
    pub fn wait_closed(&mut self, timeout: Duration) -> Result<Closed, ()> {
        let start = Instant::now();
        loop {
            let left = timeout.saturating_sub(start.elapsed());
            if left.is_zero() {
                return Err(());
            }
            match self.read_once(left.min(Duration::from_millis(200))) {
                Ok(_) => {}
                Err(Closed::Eof(_)) => return Ok(Closed::Eof(start.elapsed())),
                Err(Closed::Reset(_)) => return Ok(Closed::Reset(start.elapsed())),
            }
        }
    }

    /// Reads until `received` contains `needle`; Err with a description otherwise.
    pub fn read_until(&mut self, needle: &[u8], timeout: Duration) -> Result<(), String> {
        let start = Instant::now();
        loop {
            if contains(&self.received, needle) {
                return Ok(());
            }
            let left = timeout.saturating_sub(start.elapsed());
            if left.is_zero() {
                return Err(format!(
                    "no {:?} within {timeout:?} ({} bytes received)",
                    String::from_utf8_lossy(needle),
                    self.received.len()
                ));
            }
            if let Err(c) = self.read_once(left.min(Duration::from_millis(200))) {
                return Err(format!(
                    "server closed ({c:?}) before {:?} ({} bytes received)",
                    String::from_utf8_lossy(needle),
                    self.received.len()
                ));
            }
        }
    }

    /// Reads whatever arrives for `d` (keeps the socket drained); false if the server closed.
    pub fn drain_for(&mut self, d: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < d {
            if self
                .read_once(
                    d.saturating_sub(start.elapsed())
                        .min(Duration::from_millis(100)),
                )
                .is_err()
            {
                return false;
            }
        }
        true
    }

    /// Plain (digest-less) handshake: C0 = 3, C1 with a zero version field; reads S0 S1 S2 and
    /// answers C2 = S1.
    pub fn handshake(&mut self) -> Result<(), String> {
        let mut c0c1 = vec![3u8];
        c0c1.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]);
        c0c1.extend_from_slice(&XorShift::new(7).bytes(HANDSHAKE_SIZE - 8));
        self.send(&c0c1).map_err(|e| format!("send C0C1: {e}"))?;
        let start = Instant::now();
        while self.received.len() < 1 + 2 * HANDSHAKE_SIZE {
            let left = STEP_TIMEOUT.saturating_sub(start.elapsed());
            if left.is_zero() {
                return Err(format!(
                    "handshake: {} of {} bytes of S0S1S2",
                    self.received.len(),
                    1 + 2 * HANDSHAKE_SIZE
                ));
            }
            self.read_once(left.min(Duration::from_millis(200)))
                .map_err(|c| format!("handshake: server closed ({c:?})"))?;
        }
        if self.received[0] != 3 {
            return Err(format!("S0 is {}", self.received[0]));
        }
        let s1 = self.received[1..1 + HANDSHAKE_SIZE].to_vec();
        self.received.drain(..1 + 2 * HANDSHAKE_SIZE);
        self.send(&s1).map_err(|e| format!("send C2: {e}"))
    }

    /// Handshake + `connect(app)`; waits for NetConnection.Connect.Success.
    pub fn rtmp_connect(addr: &str, app: &str) -> Result<RawConn, String> {
        let mut c = RawConn::open(addr).map_err(|e| format!("tcp connect: {e}"))?;
        c.handshake()?;
        c.send(&message(
            128,
            3,
            0,
            MSG_COMMAND_AMF0,
            0,
            &connect_command(app, addr),
        ))
        .map_err(|e| format!("send connect: {e}"))?;
        c.read_until(b"NetConnection.Connect.Success", STEP_TIMEOUT)?;
        Ok(c)
    }

    /// After [`RawConn::rtmp_connect`]: createStream, then publish `name` on message stream 1
    /// (the id both servers hand out first); waits for NetStream.Publish.Start.
    pub fn publish(&mut self, name: &str) -> Result<(), String> {
        self.send(&message(
            128,
            3,
            0,
            MSG_COMMAND_AMF0,
            0,
            &create_stream_command(2.0),
        ))
        .map_err(|e| format!("send createStream: {e}"))?;
        self.send(&message(
            128,
            8,
            0,
            MSG_COMMAND_AMF0,
            1,
            &publish_command(3.0, name),
        ))
        .map_err(|e| format!("send publish: {e}"))?;
        self.read_until(b"NetStream.Publish.Start", STEP_TIMEOUT)
    }

    /// True if the peer has closed (non-blocking check; data waiting is read and kept).
    pub fn peer_closed_now(&mut self) -> bool {
        if self.closed {
            return true;
        }
        let _ = self.stream.set_nonblocking(true);
        let mut buf = [0u8; 8192];
        let closed = loop {
            match self.stream.read(&mut buf) {
                Ok(0) => break true,
                Ok(n) => self.received.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break true,
            }
        };
        let _ = self.stream.set_nonblocking(false);
        self.closed = closed;
        closed
    }
}

pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

// ---------------------------------------------------------------------------------------------
// Chunk stream

/// Basic header for `fmt` and `csid` (1, 2 or 3 bytes).
pub fn basic_header(fmt: u8, csid: u32) -> Vec<u8> {
    let f = fmt << 6;
    match csid {
        2..=63 => vec![f | csid as u8],
        64..=319 => vec![f, (csid - 64) as u8],
        _ => {
            let v = csid - 64;
            vec![f | 1, (v & 0xff) as u8, (v >> 8) as u8]
        }
    }
}

fn be24(v: u32) -> [u8; 3] {
    let b = v.to_be_bytes();
    [b[1], b[2], b[3]]
}

/// A type-0 chunk header: absolute timestamp (extended when >= 0xFFFFFF), length, type, stream.
pub fn header0(csid: u32, timestamp: u32, len: u32, type_id: u8, stream_id: u32) -> Vec<u8> {
    let mut h = basic_header(0, csid);
    let ext = timestamp >= 0xFF_FFFF;
    h.extend_from_slice(&be24(if ext { 0xFF_FFFF } else { timestamp }));
    h.extend_from_slice(&be24(len));
    h.push(type_id);
    h.extend_from_slice(&stream_id.to_le_bytes());
    if ext {
        h.extend_from_slice(&timestamp.to_be_bytes());
    }
    h
}

/// A type-1 chunk header: timestamp delta (extended when >= 0xFFFFFF), length, type.
pub fn header1(csid: u32, delta: u32, len: u32, type_id: u8) -> Vec<u8> {
    let mut h = basic_header(1, csid);
    let ext = delta >= 0xFF_FFFF;
    h.extend_from_slice(&be24(if ext { 0xFF_FFFF } else { delta }));
    h.extend_from_slice(&be24(len));
    h.push(type_id);
    if ext {
        h.extend_from_slice(&delta.to_be_bytes());
    }
    h
}

/// Splits `payload` behind `first_header` into chunks of `chunk_size`, with type-3 headers on
/// the continuations (repeating the extended timestamp, as ffmpeg and OBS do).
fn chunked(
    chunk_size: usize,
    csid: u32,
    first_header: Vec<u8>,
    ext: Option<u32>,
    payload: &[u8],
) -> Vec<u8> {
    let mut out = first_header;
    for (i, part) in payload.chunks(chunk_size.max(1)).enumerate() {
        if i > 0 {
            out.extend_from_slice(&basic_header(3, csid));
            if let Some(ts) = ext {
                out.extend_from_slice(&ts.to_be_bytes());
            }
        }
        out.extend_from_slice(part);
    }
    out
}

/// One whole message with a type-0 first chunk.
pub fn message(
    chunk_size: usize,
    csid: u32,
    timestamp: u32,
    type_id: u8,
    stream_id: u32,
    payload: &[u8],
) -> Vec<u8> {
    let h = header0(csid, timestamp, payload.len() as u32, type_id, stream_id);
    let ext = (timestamp >= 0xFF_FFFF).then_some(timestamp);
    chunked(chunk_size, csid, h, ext, payload)
}

/// One whole message with a type-1 (delta) first chunk.
pub fn message_delta(
    chunk_size: usize,
    csid: u32,
    delta: u32,
    type_id: u8,
    payload: &[u8],
) -> Vec<u8> {
    let h = header1(csid, delta, payload.len() as u32, type_id);
    let ext = (delta >= 0xFF_FFFF).then_some(delta);
    chunked(chunk_size, csid, h, ext, payload)
}

/// Set Chunk Size with a raw 32-bit value (the top bit included, to test it).
pub fn set_chunk_size(value: u32) -> Vec<u8> {
    message(128, 2, 0, MSG_SET_CHUNK_SIZE, 0, &value.to_be_bytes())
}

// ---------------------------------------------------------------------------------------------
// AMF0

pub fn amf_string(out: &mut Vec<u8>, s: &str) {
    if s.len() <= 0xFFFF {
        out.push(0x02);
        out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    } else {
        out.push(0x0C);
        out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    }
    out.extend_from_slice(s.as_bytes());
}

pub fn amf_number(out: &mut Vec<u8>, n: f64) {
    out.push(0x00);
    out.extend_from_slice(&n.to_be_bytes());
}

pub fn amf_null(out: &mut Vec<u8>) {
    out.push(0x05);
}

pub fn amf_key(out: &mut Vec<u8>, k: &str) {
    out.extend_from_slice(&(k.len() as u16).to_be_bytes());
    out.extend_from_slice(k.as_bytes());
}

pub fn amf_object_end(out: &mut Vec<u8>) {
    out.extend_from_slice(&[0x00, 0x00, 0x09]);
}

/// `connect(app)` with the properties ffmpeg sends. An app longer than 64 KiB is written as
/// an AMF0 long string.
pub fn connect_command(app: &str, addr: &str) -> Vec<u8> {
    let mut p = Vec::new();
    amf_string(&mut p, "connect");
    amf_number(&mut p, 1.0);
    p.push(0x03);
    amf_key(&mut p, "app");
    amf_string(&mut p, app);
    amf_key(&mut p, "flashVer");
    amf_string(&mut p, "FMLE/3.0 (compatible; hostile-test)");
    amf_key(&mut p, "tcUrl");
    amf_string(&mut p, &format!("rtmp://{addr}/{app}"));
    amf_key(&mut p, "type");
    amf_string(&mut p, "nonprivate");
    amf_object_end(&mut p);
    p
}

pub fn create_stream_command(tx: f64) -> Vec<u8> {
    let mut p = Vec::new();
    amf_string(&mut p, "createStream");
    amf_number(&mut p, tx);
    amf_null(&mut p);
    p
}

pub fn publish_command(tx: f64, name: &str) -> Vec<u8> {
    let mut p = Vec::new();
    amf_string(&mut p, "publish");
    amf_number(&mut p, tx);
    amf_null(&mut p);
    amf_string(&mut p, name);
    amf_string(&mut p, "live");
    p
}

pub fn play_command(tx: f64, name: &str) -> Vec<u8> {
    let mut p = Vec::new();
    amf_string(&mut p, "play");
    amf_number(&mut p, tx);
    amf_null(&mut p);
    amf_string(&mut p, name);
    p
}

// ---------------------------------------------------------------------------------------------
// FLV (real media to replay with hand-made timestamps)

/// One FLV tag: type (8 audio, 9 video, 18 data), timestamp, body.
#[derive(Clone, Debug)]
pub struct FlvTag {
    pub type_id: u8,
    pub timestamp: u32,
    pub body: Vec<u8>,
}

/// Parses an FLV file into its tags (stops at the first truncated tag).
pub fn parse_flv(bytes: &[u8]) -> Vec<FlvTag> {
    let mut tags = Vec::new();
    let Some(&[b'F', b'L', b'V']) = bytes.get(..3) else {
        return tags;
    };
    let Some(hlen) = bytes.get(5..9) else {
        return tags;
    };
    let mut pos = u32::from_be_bytes([hlen[0], hlen[1], hlen[2], hlen[3]]) as usize + 4;
    while let Some(h) = bytes.get(pos..pos + 11) {
        let size = u32::from_be_bytes([0, h[1], h[2], h[3]]) as usize;
        let ts = u32::from_be_bytes([h[7], h[4], h[5], h[6]]);
        let Some(body) = bytes.get(pos + 11..pos + 11 + size) else {
            break;
        };
        tags.push(FlvTag {
            type_id: h[0] & 0x1f,
            timestamp: ts,
            body: body.to_vec(),
        });
        pos += 11 + size + 4;
    }
    tags
}

/// Encodes `seconds` of the harness's test media (H.264 + AAC, 1 s GOP) into an FLV file at
/// `path` with ffmpeg (bounded to 30 s) and returns its tags.
pub fn test_media_tags(path: &Path, seconds: u32) -> Vec<FlvTag> {
    let mut child = std::process::Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-nostdin",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=25",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=44100",
            "-t",
            &seconds.to_string(),
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
            "-g",
            "25",
            "-threads",
            "1",
            "-c:a",
            "aac",
            "-b:a",
            "64k",
            "-f",
            "flv",
            "-y",
        ])
        .arg(path)
        .stdin(std::process::Stdio::null())
        .spawn()
        .expect("spawn ffmpeg");
    let status = super::wait_timeout(&mut child, Duration::from_secs(30));
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
        panic!("ffmpeg did not encode the test media within 30 s");
    }
    parse_flv(&fs::read(path).expect("read test media"))
}

// ---------------------------------------------------------------------------------------------
// Watching the server

/// The `*N` connection number of an nginx log line, if it has one.
pub fn conn_number(line: &str) -> Option<u64> {
    let star = line.find(": *")?;
    let rest = &line[star + 3..];
    let end = rest.find(|c: char| !c.is_ascii_digit())?;
    rest[..end].parse().ok()
}

/// The level of a dated nginx log line (`info`, `warn`, ...).
pub fn level(line: &str) -> &str {
    line.split_whitespace()
        .nth(2)
        .unwrap_or("")
        .trim_matches(|c| c == '[' || c == ']')
}

/// Connection numbers that appear in `log`.
pub fn conn_numbers(log: &str) -> HashSet<u64> {
    log.lines().filter_map(conn_number).collect()
}

/// Lines of `log` that belong to connection `n`.
pub fn lines_of(log: &str, n: u64) -> Vec<String> {
    log.lines()
        .filter(|l| conn_number(l) == Some(n))
        .map(str::to_string)
        .collect()
}

/// Bookkeeping lines every connection gets (opened, closed), which explain nothing: ours
/// (`rtmp: client ... connected to`, `rtmp: client disconnected: ...`) and the C module's
/// (`client connected '...'`, `disconnect`, `deleteStream`...).
pub fn is_bookkeeping(line: &str) -> bool {
    let msg = line.split_once(": *").map(|(_, m)| m).unwrap_or(line);
    let msg = msg.split_once(' ').map(|(_, m)| m).unwrap_or(msg);
    msg.starts_with("rtmp: client disconnected:")
        || (msg.starts_with("rtmp: client ") && msg.contains(" connected to "))
        || msg.starts_with("client connected '")
        || msg.starts_with("disconnect")
        || msg.starts_with("close stream")
        || msg.starts_with("deleteStream")
        || msg.starts_with("rtmp: play \"")
        || msg.starts_with("rtmp: publish \"")
        || msg.starts_with("rtmp: unpublish")
        || msg.starts_with("connect: app=")
        || msg.starts_with("createStream")
}

/// PIDs of the worker processes of the nginx master `master` (its children in /proc whose
/// title says "worker process").
pub fn worker_pids(master: i32) -> Vec<i32> {
    let mut pids = Vec::new();
    let Ok(dir) = fs::read_dir("/proc") else {
        return pids;
    };
    for e in dir.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // pid (comm) state ppid ...: comm may hold spaces, so split after the last ')'.
        let Some(after) = stat.rsplit_once(')').map(|(_, a)| a) else {
            continue;
        };
        let mut f = after.split_whitespace();
        let state = f.next().unwrap_or("");
        if f.next().and_then(|p| p.parse::<i32>().ok()) != Some(master) || state == "Z" {
            continue;
        }
        // Not the cache manager (the C module's HLS cleanup runs as one).
        let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if contains(&cmdline, b"worker process") {
            pids.push(pid);
        }
    }
    pids.sort_unstable();
    pids
}

/// Waits (bounded) until `master` has exactly one live worker, and returns its PID.
pub fn single_worker(master: i32) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let w = worker_pids(master);
        if w.len() == 1 {
            return w[0];
        }
        assert!(
            Instant::now() < deadline,
            "expected one worker of master {master}, found {w:?}"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// Resident memory of `pid` in KiB (`VmRSS`), 0 if unknown.
pub fn rss_kib(pid: i32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}
