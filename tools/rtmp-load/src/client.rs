//! Many RTMP players on one thread: non-blocking sockets on a mio `Poll` (epoll).
//!
//! Each player does the plain handshake (C0/C1 with a zero "digest" area, C2 = S1), sends
//! Set Chunk Size and Window Acknowledgement Size, `connect`, `createStream`, `play`, and then
//! only reads: chunk headers are parsed to count messages by type and to follow timestamps;
//! audio/video payloads are skipped without being copied anywhere (only the first two bytes
//! of a video message are looked at, to spot keyframes). Control messages and commands are
//! reassembled and answered: Acknowledgement after each window, ping responses, `_result`s.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use crate::amf::{self, Value};

const HANDSHAKE_SIZE: usize = 1536;
/// S0 + S1 + S2.
const SERVER_HANDSHAKE: usize = 1 + 2 * HANDSHAKE_SIZE;
/// Our outgoing chunk size (announced with Set Chunk Size before `connect`).
const OUT_CHUNK: usize = 4096;
/// The acknowledgement window we ask the server to use for what we send (we send little).
const OUR_WINDOW: u32 = 5_000_000;
/// Largest control/command message we reassemble.
const MAX_CONTROL_MSG: usize = 1 << 20;
/// How much one read takes (shared scratch buffer per thread).
pub const READ_BUF: usize = 256 * 1024;

const MSG_SET_CHUNK_SIZE: u8 = 1;
const MSG_ABORT: u8 = 2;
const MSG_USER_CONTROL: u8 = 4;
const MSG_WINDOW_ACK_SIZE: u8 = 5;
const MSG_AUDIO: u8 = 8;
const MSG_VIDEO: u8 = 9;
const MSG_DATA_AMF3: u8 = 15;
const MSG_COMMAND_AMF3: u8 = 17;
const MSG_DATA_AMF0: u8 = 18;
const MSG_COMMAND_AMF0: u8 = 20;
const MSG_AGGREGATE: u8 = 22;

/// Where to play: `rtmp://host:port/app/stream`.
#[derive(Clone, Debug)]
pub struct Target {
    pub addr: SocketAddr,
    pub app: String,
    pub stream: String,
    pub tc_url: String,
    /// `http://HOST:PORT/PATH?QUERY`: play it as HTTP-FLV (the request target) instead.
    pub http_path: Option<String>,
}

impl Target {
    pub fn parse(url: &str) -> Result<Target, String> {
        if let Some(rest) = url.strip_prefix("http://") {
            let (hostport, path) = rest.split_once('/').unwrap_or((rest, ""));
            let hp = if hostport.contains(':') {
                hostport.to_string()
            } else {
                format!("{hostport}:80")
            };
            use std::net::ToSocketAddrs;
            let addr = hp
                .to_socket_addrs()
                .map_err(|e| format!("{hp}: {e}"))?
                .next()
                .ok_or_else(|| format!("{hp}: no address"))?;
            return Ok(Target {
                addr,
                app: String::new(),
                stream: String::new(),
                tc_url: hostport.to_string(),
                http_path: Some(format!("/{path}")),
            });
        }
        let rest = url
            .strip_prefix("rtmp://")
            .ok_or_else(|| format!("{url}: expected rtmp://HOST[:PORT]/APP/STREAM"))?;
        let (hostport, path) = rest
            .split_once('/')
            .ok_or_else(|| format!("{url}: no /APP/STREAM"))?;
        let (app, stream) = path
            .rsplit_once('/')
            .ok_or_else(|| format!("{url}: expected /APP/STREAM"))?;
        if app.is_empty() || stream.is_empty() {
            return Err(format!("{url}: empty application or stream name"));
        }
        let hp = if hostport.contains(':') {
            hostport.to_string()
        } else {
            format!("{hostport}:1935")
        };
        use std::net::ToSocketAddrs;
        let addr = hp
            .to_socket_addrs()
            .map_err(|e| format!("{hp}: {e}"))?
            .next()
            .ok_or_else(|| format!("{hp}: no address"))?;
        Ok(Target {
            addr,
            app: app.to_string(),
            stream: stream.to_string(),
            tc_url: format!("rtmp://{hostport}/{app}"),
            http_path: None,
        })
    }
}

/// What one player saw.
#[derive(Clone, Debug, Default)]
pub struct ClientStats {
    /// The TCP connection was established.
    pub connected: bool,
    /// `onStatus NetStream.Play.Start` arrived.
    pub playing: bool,
    /// Every byte read from the socket (handshake included).
    pub bytes: u64,
    pub video_msgs: u64,
    pub audio_msgs: u64,
    pub data_msgs: u64,
    pub other_msgs: u64,
    /// Acknowledgements sent (one per window the server asked for) and pings answered.
    pub acks_sent: u64,
    pub pings_answered: u64,
    /// `play` sent -> first video message / first video keyframe (not a sequence header).
    pub first_video: Option<Duration>,
    pub first_key: Option<Duration>,
    /// TCP connect started -> first video keyframe.
    pub connect_to_key: Option<Duration>,
    /// First and last video timestamp (ms).
    pub vts_first: Option<u32>,
    pub vts_last: u32,
    /// When the first video message arrived and when the run ended (ms on the run's clock).
    pub first_video_at: Option<f64>,
    pub end_at: f64,
    /// Largest `timestamp - arrival time` of a video message (ms): how far ahead of the wall
    /// clock the stream was when this player was most up to date.
    pub best_offset: f64,
    pub error: Option<String>,
}

impl ClientStats {
    /// Seconds from the first video message to the end of the run (what a viewer watched).
    pub fn window(&self) -> f64 {
        self.first_video_at
            .map_or(0.0, |t| ((self.end_at - t) / 1000.0).max(0.0))
    }

    /// How far behind its own best the player was at the end (s): the last video timestamp
    /// compared with where the stream would be had it stayed as up to date as it once was.
    /// A burst of cached frames at the start (GOP cache) does not count against it.
    pub fn lag(&self) -> f64 {
        if self.first_video_at.is_none() {
            return 0.0;
        }
        ((self.best_offset + self.end_at - self.vts_last as f64) / 1000.0).max(0.0)
    }

    /// Share of the frames of the received timestamp span that arrived (1.0 without `fps`):
    /// frames a server drops for a slow player count as missing.
    pub fn frame_share(&self, fps: Option<f64>) -> f64 {
        let (Some(f), Some(first)) = (fps, self.vts_first) else {
            return 1.0;
        };
        let span = self.vts_last.wrapping_sub(first) as f64 / 1000.0;
        if f <= 0.0 {
            return 1.0;
        }
        (self.video_msgs as f64 / (f * span + 1.0)).min(1.0)
    }

    /// Seconds of media received in time during [`window`](Self::window): the window less
    /// the final lag, scaled by the share of frames that arrived.
    pub fn media_seconds(&self, fps: Option<f64>) -> f64 {
        (self.window() - self.lag()).max(0.0) * self.frame_share(fps)
    }
}

static EPOCH: std::sync::OnceLock<(Instant, f64)> = std::sync::OnceLock::new();

fn epoch() -> &'static (Instant, f64) {
    EPOCH.get_or_init(|| (Instant::now(), crate::watch::unix_ms()))
}

/// The run's clock: ms since the first call (process wide, monotonic).
pub fn clock_ms() -> f64 {
    epoch().0.elapsed().as_secs_f64() * 1000.0
}

/// A [`clock_ms`] time as Unix ms.
pub fn clock_to_unix_ms(t: f64) -> f64 {
    epoch().1 + t
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Connecting,
    Handshake,
    Connect,
    CreateStream,
    Play,
    /// An HTTP-FLV request: its response (head, then the chunked FLV body).
    Http,
    Done,
}

/// Per chunk stream state of the incoming side.
#[derive(Clone, Debug, Default)]
struct ChunkStream {
    csid: u32,
    timestamp: u32,
    delta: u32,
    len: u32,
    typ: u8,
    /// Bytes of the current message not received yet (0: the next chunk starts a message).
    left: u32,
    ext: bool,
    /// Reassembled payload (control messages and commands only).
    payload: Vec<u8>,
    /// First bytes of a video message (keyframe check).
    head: [u8; 2],
}

pub struct Conn {
    sock: Option<TcpStream>,
    phase: Phase,
    target: std::sync::Arc<Target>,
    started: Instant,
    play_sent: Option<Instant>,
    out: Vec<u8>,
    out_pos: usize,
    hs_left: usize,
    s1: Vec<u8>,
    carry: Vec<u8>,
    in_chunk: u32,
    streams: Vec<ChunkStream>,
    /// Index in `streams` of the chunk being received, and its payload bytes still to come.
    cur: usize,
    chunk_left: u32,
    total_in: u64,
    ack_window: u32,
    last_ack: u64,
    stop_on_key: bool,
    /// Arrival time of the bytes being parsed (ms, [`clock_ms`]).
    now_ms: f64,
    /// HTTP-FLV response parser (an `http://` target).
    flv: crate::flv::FlvParse,
    pub stats: ClientStats,
}

impl Conn {
    fn new(target: std::sync::Arc<Target>, stop_on_key: bool) -> Conn {
        Conn {
            sock: None,
            phase: Phase::Connecting,
            target,
            started: Instant::now(),
            play_sent: None,
            out: Vec::with_capacity(4096),
            out_pos: 0,
            hs_left: SERVER_HANDSHAKE,
            s1: Vec::with_capacity(HANDSHAKE_SIZE),
            carry: Vec::new(),
            in_chunk: 128,
            streams: Vec::new(),
            cur: 0,
            chunk_left: 0,
            total_in: 0,
            ack_window: 0,
            last_ack: 0,
            stop_on_key,
            now_ms: 0.0,
            flv: crate::flv::FlvParse::default(),
            stats: ClientStats {
                best_offset: f64::MIN,
                ..Default::default()
            },
        }
    }

    pub fn done(&self) -> bool {
        self.phase == Phase::Done
    }

    fn fail(&mut self, why: impl Into<String>) {
        if self.stats.error.is_none() {
            self.stats.error = Some(why.into());
        }
        self.close();
    }

    fn close(&mut self) {
        self.phase = Phase::Done;
        self.sock = None; // dropping deregisters (closes the fd)
    }

    fn open(&mut self, poll: &Poll, token: Token) {
        self.started = Instant::now();
        match TcpStream::connect(self.target.addr) {
            Ok(mut s) => {
                if let Err(e) =
                    poll.registry()
                        .register(&mut s, token, Interest::READABLE | Interest::WRITABLE)
                {
                    self.fail(format!("register: {e}"));
                    return;
                }
                let _ = s.set_nodelay(true);
                self.sock = Some(s);
            }
            Err(e) => self.fail(format!("connect: {e}")),
        }
    }

    fn on_event(&mut self, readable: bool, writable: bool, scratch: &mut [u8]) {
        if self.phase == Phase::Connecting {
            let Some(sock) = self.sock.as_ref() else {
                return;
            };
            if let Ok(Some(e)) | Err(e) = sock.take_error() {
                self.fail(format!("connect: {e}"));
                return;
            }
            match sock.peer_addr() {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return,
                Err(e) => {
                    self.fail(format!("connect: {e}"));
                    return;
                }
            }
            self.stats.connected = true;
            if let Some(path) = self.target.http_path.clone() {
                self.phase = Phase::Http;
                self.hs_left = 0;
                let req = format!(
                    "GET {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: rtmp-load\r\n\r\n",
                    self.target.tc_url
                );
                self.out.extend_from_slice(req.as_bytes());
                self.play_sent = Some(Instant::now());
                self.stats.playing = true;
                self.flush();
                if readable && self.phase != Phase::Done {
                    self.on_readable(scratch);
                }
                return;
            }
            self.phase = Phase::Handshake;
            // C0 (version 3) + C1: time 0, zero field, then "random" bytes (no digest).
            self.out.push(3);
            self.out.extend_from_slice(&[0u8; 8]);
            self.out
                .extend((0..HANDSHAKE_SIZE - 8).map(|i| (i.wrapping_mul(31) % 251) as u8));
            self.flush();
        }
        if readable && self.phase != Phase::Done {
            self.on_readable(scratch);
        }
        if writable && self.phase != Phase::Done {
            self.flush();
        }
    }

    fn flush(&mut self) {
        while self.out_pos < self.out.len() {
            let Some(sock) = self.sock.as_mut() else {
                return;
            };
            match sock.write(&self.out[self.out_pos..]) {
                Ok(0) => {
                    self.fail("write returned 0");
                    return;
                }
                Ok(n) => self.out_pos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.fail(format!("write: {e}"));
                    return;
                }
            }
        }
        self.out.clear();
        self.out_pos = 0;
    }

    fn on_readable(&mut self, scratch: &mut [u8]) {
        loop {
            let c = self.carry.len();
            scratch[..c].copy_from_slice(&self.carry);
            let Some(sock) = self.sock.as_mut() else {
                return;
            };
            match sock.read(&mut scratch[c..]) {
                Ok(0) => {
                    self.fail("closed by the server");
                    return;
                }
                Ok(n) => {
                    self.stats.bytes += n as u64;
                    self.total_in += n as u64;
                    let end = c + n;
                    self.now_ms = clock_ms();
                    let used = match self.parse(&scratch[..end]) {
                        Ok(u) => u,
                        Err(e) => {
                            self.fail(e);
                            return;
                        }
                    };
                    if self.phase == Phase::Done {
                        return;
                    }
                    self.carry.clear();
                    self.carry.extend_from_slice(&scratch[used..end]);
                    if self.ack_window > 0
                        && self.total_in - self.last_ack >= self.ack_window as u64
                    {
                        self.last_ack = self.total_in;
                        let seq = (self.total_in as u32).to_be_bytes();
                        self.send(2, 3, 0, &seq);
                        self.stats.acks_sent += 1;
                    }
                    if end < scratch.len() {
                        // Short read: the socket is drained. Any data arriving later raises
                        // a new edge (Linux signals every arrival), so no extra read that
                        // would only return WouldBlock.
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.fail(format!("read: {e}"));
                    return;
                }
            }
        }
        if self.out_pos < self.out.len() {
            self.flush();
        }
    }

    /// Consumes what it can of `data`; returns how many bytes (the rest is an incomplete
    /// chunk header, kept for the next read).
    fn parse(&mut self, data: &[u8]) -> Result<usize, String> {
        if self.phase == Phase::Http {
            let mut flv = std::mem::take(&mut self.flv);
            let r = flv.feed(data, self);
            self.flv = flv;
            return r.map(|()| data.len());
        }
        let mut pos = 0;
        while pos < data.len() && self.phase != Phase::Done {
            if self.hs_left > 0 {
                let n = self.hs_left.min(data.len() - pos);
                let off = SERVER_HANDSHAKE - self.hs_left;
                if off == 0 && data[pos] != 3 {
                    return Err(format!("handshake: server version {}", data[pos]));
                }
                // S1 is bytes 1..1537 of S0 S1 S2.
                for (i, &b) in data[pos..pos + n].iter().enumerate() {
                    let o = off + i;
                    if (1..=HANDSHAKE_SIZE).contains(&o) {
                        self.s1.push(b);
                    }
                }
                self.hs_left -= n;
                pos += n;
                if self.hs_left == 0 {
                    self.after_handshake();
                }
                continue;
            }
            if self.chunk_left > 0 {
                let n = (self.chunk_left as usize).min(data.len() - pos);
                self.payload(&data[pos..pos + n])?;
                pos += n;
                continue;
            }
            match self.header(&data[pos..])? {
                Some(used) => pos += used,
                None => break,
            }
        }
        Ok(pos)
    }

    fn after_handshake(&mut self) {
        let s1 = std::mem::take(&mut self.s1);
        self.out.extend_from_slice(&s1); // C2 = S1
        self.phase = Phase::Connect;
        self.send(2, MSG_SET_CHUNK_SIZE, 0, &(OUT_CHUNK as u32).to_be_bytes());
        self.send(2, MSG_WINDOW_ACK_SIZE, 0, &OUR_WINDOW.to_be_bytes());
        let t = self.target.clone();
        let mut p = Vec::with_capacity(256);
        amf::put_str(&mut p, "connect");
        amf::put_number(&mut p, 1.0);
        amf::put_object(
            &mut p,
            &[
                ("app", Value::Str(t.app.clone())),
                ("flashVer", Value::Str("LNX 9,0,124,2".into())),
                ("tcUrl", Value::Str(t.tc_url.clone())),
                ("fpad", Value::Bool(false)),
                ("capabilities", Value::Number(15.0)),
                ("audioCodecs", Value::Number(4071.0)),
                ("videoCodecs", Value::Number(252.0)),
                ("videoFunction", Value::Number(1.0)),
            ],
        );
        self.send(3, MSG_COMMAND_AMF0, 0, &p);
        self.flush();
    }

    /// Queues one message (type 0 header on `csid`, split at our chunk size).
    fn send(&mut self, csid: u8, typ: u8, stream_id: u32, payload: &[u8]) {
        let o = &mut self.out;
        o.push(csid & 0x3f);
        o.extend_from_slice(&[0, 0, 0]); // timestamp 0
        let len = payload.len() as u32;
        o.extend_from_slice(&len.to_be_bytes()[1..]);
        o.push(typ);
        o.extend_from_slice(&stream_id.to_le_bytes());
        for (i, chunk) in payload.chunks(OUT_CHUNK).enumerate() {
            if i > 0 {
                o.push(0xC0 | (csid & 0x3f));
            }
            o.extend_from_slice(chunk);
        }
    }

    fn stream_index(&mut self, csid: u32) -> usize {
        if let Some(i) = self.streams.iter().position(|s| s.csid == csid) {
            return i;
        }
        self.streams.push(ChunkStream {
            csid,
            ..Default::default()
        });
        self.streams.len() - 1
    }

    /// Parses one chunk header at the start of `d`; `None` if it is not complete yet.
    fn header(&mut self, d: &[u8]) -> Result<Option<usize>, String> {
        let b0 = d[0];
        let fmt = b0 >> 6;
        let (csid, mut i) = match b0 & 0x3f {
            0 => match d.get(1) {
                Some(&b) => (64 + b as u32, 2),
                None => return Ok(None),
            },
            1 => match (d.get(1), d.get(2)) {
                (Some(&b1), Some(&b2)) => (64 + b1 as u32 + 256 * b2 as u32, 3),
                _ => return Ok(None),
            },
            c => (c as u32, 1),
        };
        let mh = [11usize, 7, 3, 0][fmt as usize];
        if d.len() < i + mh {
            return Ok(None);
        }
        let h = &d[i..i + mh];
        let u24 = |b: &[u8]| (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        let ts_field = if fmt <= 2 { u24(&h[0..3]) } else { 0 };
        let idx = self.stream_index(csid);
        let ext = if fmt <= 2 {
            ts_field == 0xFF_FFFF
        } else {
            self.streams[idx].ext
        };
        i += mh;
        let ext_ts = if ext {
            let Some(b) = d.get(i..i + 4) else {
                return Ok(None);
            };
            i += 4;
            u32::from_be_bytes([b[0], b[1], b[2], b[3]])
        } else {
            0
        };
        let ts = if fmt <= 2 && ext { ext_ts } else { ts_field };
        let st = &mut self.streams[idx];
        let new_msg = match fmt {
            0 => {
                st.timestamp = ts;
                st.delta = 0;
                st.len = u24(&h[3..6]);
                st.typ = h[6];
                st.ext = ext;
                true
            }
            1 => {
                st.delta = ts;
                st.timestamp = st.timestamp.wrapping_add(ts);
                st.len = u24(&h[3..6]);
                st.typ = h[6];
                st.ext = ext;
                true
            }
            2 => {
                st.delta = ts;
                st.timestamp = st.timestamp.wrapping_add(ts);
                st.ext = ext;
                true
            }
            _ => {
                if st.left == 0 {
                    st.timestamp = st.timestamp.wrapping_add(st.delta);
                    true
                } else {
                    false
                }
            }
        };
        if new_msg {
            if fmt < 3 && st.left != 0 {
                // A new header in the middle of a message: the old one is abandoned.
                st.payload.clear();
            }
            st.left = st.len;
            st.payload.clear();
            let (typ, timestamp) = (st.typ, st.timestamp);
            self.message_start(typ, timestamp);
        }
        self.cur = idx;
        let st = &self.streams[idx];
        self.chunk_left = st.left.min(self.in_chunk);
        if st.left == 0 {
            // A zero-length message is complete at once.
            self.message_complete(idx)?;
        }
        Ok(Some(i))
    }

    fn message_start(&mut self, typ: u8, timestamp: u32) {
        match typ {
            MSG_VIDEO => {
                self.stats.video_msgs += 1;
                if self.stats.first_video.is_none() {
                    self.stats.first_video = self.play_sent.map(|t| t.elapsed());
                }
                if self.stats.vts_first.is_none() {
                    self.stats.vts_first = Some(timestamp);
                    self.stats.first_video_at = Some(self.now_ms);
                }
                self.stats.vts_last = timestamp;
                let offset = timestamp as f64 - self.now_ms;
                if offset > self.stats.best_offset {
                    self.stats.best_offset = offset;
                }
            }
            MSG_AUDIO => self.stats.audio_msgs += 1,
            MSG_DATA_AMF0 | MSG_DATA_AMF3 => self.stats.data_msgs += 1,
            _ => self.stats.other_msgs += 1,
        }
    }

    fn payload(&mut self, bytes: &[u8]) -> Result<(), String> {
        let idx = self.cur;
        let st = &mut self.streams[idx];
        let n = bytes.len() as u32;
        let offset = st.len - st.left;
        let mut key = false;
        match st.typ {
            MSG_VIDEO => {
                if offset < 2 {
                    for (k, &b) in bytes.iter().take(2 - offset as usize).enumerate() {
                        st.head[offset as usize + k] = b;
                    }
                    let have = offset + n;
                    if have >= 2 || have >= st.len {
                        // Frame type 1 = keyframe; AVC/HEVC packet type 1 = NAL units (a
                        // sequence header is type 0 and is not a picture).
                        let frame_type = st.head[0] >> 4;
                        let codec = st.head[0] & 0x0f;
                        let nalu = st.len < 2 || st.head[1] == 1;
                        key = st.head[0] & 0x80 == 0
                            && frame_type == 1
                            && (!(codec == 7 || codec == 12) || nalu);
                    }
                }
            }
            MSG_AUDIO | MSG_AGGREGATE => {}
            _ => {
                if st.payload.len() + bytes.len() > MAX_CONTROL_MSG {
                    return Err(format!("message type {} too long", st.typ));
                }
                st.payload.extend_from_slice(bytes);
            }
        }
        st.left -= n;
        let complete = st.left == 0;
        self.chunk_left -= n;
        if key && self.stats.first_key.is_none() {
            self.stats.first_key = self.play_sent.map(|t| t.elapsed());
            self.stats.connect_to_key = Some(self.started.elapsed());
            if self.stop_on_key {
                self.close();
                return Ok(());
            }
        }
        if complete {
            self.message_complete(idx)?;
        }
        Ok(())
    }

    fn message_complete(&mut self, idx: usize) -> Result<(), String> {
        let typ = self.streams[idx].typ;
        if matches!(typ, MSG_AUDIO | MSG_VIDEO | MSG_AGGREGATE) {
            return Ok(());
        }
        let payload = std::mem::take(&mut self.streams[idx].payload);
        let be32 = |p: &[u8]| -> Option<u32> {
            p.get(0..4)
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        };
        match typ {
            MSG_SET_CHUNK_SIZE => {
                let size = be32(&payload).ok_or("short Set Chunk Size")? & 0x7FFF_FFFF;
                if size == 0 {
                    return Err("Set Chunk Size 0".into());
                }
                self.in_chunk = size;
            }
            MSG_ABORT => {
                if let Some(c) = be32(&payload) {
                    if let Some(s) = self.streams.iter_mut().find(|s| s.csid == c) {
                        s.left = 0;
                        s.payload.clear();
                    }
                }
            }
            MSG_WINDOW_ACK_SIZE => {
                self.ack_window = be32(&payload).unwrap_or(0);
            }
            MSG_USER_CONTROL
                if payload.len() >= 6 && u16::from_be_bytes([payload[0], payload[1]]) == 6 =>
            {
                // Ping request: answer with a ping response carrying the same timestamp.
                let mut p = vec![0, 7];
                p.extend_from_slice(&payload[2..6]);
                self.send(2, MSG_USER_CONTROL, 0, &p);
                self.stats.pings_answered += 1;
                self.flush();
            }
            MSG_COMMAND_AMF0 => self.command(&payload)?,
            MSG_COMMAND_AMF3 if !payload.is_empty() => self.command(&payload[1..])?,
            _ => {}
        }
        // Keep the allocation for the next message on this chunk stream.
        let mut payload = payload;
        payload.clear();
        self.streams[idx].payload = payload;
        Ok(())
    }

    fn command(&mut self, payload: &[u8]) -> Result<(), String> {
        let v = amf::decode_all(payload);
        let name = v.first().and_then(Value::as_str).unwrap_or("");
        let tx = v.get(1).and_then(Value::as_f64).unwrap_or(0.0);
        let info_code = || {
            v.get(3)
                .and_then(|o| o.get("code"))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        match name {
            "_result" if tx == 1.0 && self.phase == Phase::Connect => {
                self.phase = Phase::CreateStream;
                let mut p = Vec::with_capacity(64);
                amf::put_str(&mut p, "createStream");
                amf::put_number(&mut p, 2.0);
                amf::put_null(&mut p);
                self.send(3, MSG_COMMAND_AMF0, 0, &p);
                self.flush();
            }
            "_result" if tx == 2.0 && self.phase == Phase::CreateStream => {
                let sid = v.get(3).and_then(Value::as_f64).unwrap_or(1.0) as u32;
                self.phase = Phase::Play;
                let mut p = Vec::with_capacity(64);
                amf::put_str(&mut p, "play");
                amf::put_number(&mut p, 0.0);
                amf::put_null(&mut p);
                let name = self.target.stream.clone();
                amf::put_str(&mut p, &name);
                amf::put_number(&mut p, -1000.0);
                self.send(8, MSG_COMMAND_AMF0, sid, &p);
                // Set Buffer Length (3 s), as ffmpeg/librtmp players send it.
                let mut uc = vec![0, 3];
                uc.extend_from_slice(&sid.to_be_bytes());
                uc.extend_from_slice(&3000u32.to_be_bytes());
                self.send(2, MSG_USER_CONTROL, 0, &uc);
                self.play_sent = Some(Instant::now());
                self.flush();
            }
            "_error" => {
                return Err(format!("_error (transaction {tx}): {}", info_code()));
            }
            "onStatus" => {
                let code = info_code();
                if code == "NetStream.Play.Start" {
                    self.stats.playing = true;
                } else if code.contains("Failed")
                    || code.contains("NotFound")
                    || code.contains("BadName")
                    || code.contains("Rejected")
                {
                    return Err(format!("onStatus {code}"));
                }
            }
            "close" => return Err("server sent close".into()),
            _ => {}
        }
        Ok(())
    }

    fn finish(&mut self, end_ms: f64) {
        self.stats.end_at = end_ms;
        if self.phase != Phase::Done {
            self.close();
        }
    }
}

/// How one thread's share of players runs.
#[derive(Clone, Debug)]
pub struct RunSpec {
    pub clients: usize,
    /// Connections opened per second (the rest wait their turn).
    pub connect_rate: f64,
    pub deadline: Instant,
    /// Close each player once it got its first keyframe (join measurements), and return as
    /// soon as all are done.
    pub stop_on_key: bool,
}

/// Runs `spec.clients` players on the calling thread until the deadline (or, with
/// `stop_on_key`, until all got a keyframe or failed).
pub fn run(target: std::sync::Arc<Target>, spec: &RunSpec) -> Vec<ClientStats> {
    let mut poll = match Poll::new() {
        Ok(p) => p,
        Err(e) => {
            let s = ClientStats {
                error: Some(format!("epoll: {e}")),
                ..Default::default()
            };
            return vec![s; spec.clients];
        }
    };
    let mut events = Events::with_capacity(1024);
    let mut scratch = vec![0u8; READ_BUF];
    let mut conns: Vec<Conn> = Vec::with_capacity(spec.clients);
    let begin = Instant::now();
    let interval = if spec.connect_rate > 0.0 {
        Duration::from_secs_f64(1.0 / spec.connect_rate)
    } else {
        Duration::ZERO
    };
    loop {
        let now = Instant::now();
        if now >= spec.deadline {
            break;
        }
        while conns.len() < spec.clients && begin + interval * conns.len() as u32 <= now {
            let mut c = Conn::new(target.clone(), spec.stop_on_key);
            c.open(&poll, Token(conns.len()));
            conns.push(c);
        }
        if spec.stop_on_key && conns.len() == spec.clients && conns.iter().all(Conn::done) {
            break;
        }
        let mut wait = spec.deadline - now;
        if conns.len() < spec.clients {
            let next = begin + interval * conns.len() as u32;
            wait = wait.min(next.saturating_duration_since(now));
        }
        wait = wait.min(Duration::from_millis(100));
        if let Err(e) = poll.poll(&mut events, Some(wait)) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            for c in conns.iter_mut() {
                c.fail(format!("epoll_wait: {e}"));
            }
            break;
        }
        for ev in events.iter() {
            let i = ev.token().0;
            if let Some(c) = conns.get_mut(i) {
                if c.done() {
                    continue;
                }
                let readable = ev.is_readable() || ev.is_read_closed() || ev.is_error();
                c.on_event(readable, ev.is_writable(), &mut scratch);
            }
        }
    }
    let end_ms = clock_ms();
    let mut out: Vec<ClientStats> = conns
        .into_iter()
        .map(|mut c| {
            c.finish(end_ms);
            c.stats
        })
        .collect();
    while out.len() < spec.clients {
        out.push(ClientStats {
            error: Some("not started before the end of the run".into()),
            ..Default::default()
        });
    }
    out
}

impl crate::flv::TagSink for Conn {
    fn tag_start(&mut self, typ: u8, timestamp: u32) {
        self.message_start(typ, timestamp);
    }

    fn video_head(&mut self, head: [u8; 2], len: u32) {
        let frame_type = head[0] >> 4;
        let codec = head[0] & 0x0f;
        let nalu = len < 2 || head[1] == 1;
        let key = head[0] & 0x80 == 0 && frame_type == 1 && (!(codec == 7 || codec == 12) || nalu);
        if key && self.stats.first_key.is_none() {
            self.stats.first_key = self.play_sent.map(|t| t.elapsed());
            self.stats.connect_to_key = Some(self.started.elapsed());
            if self.stop_on_key {
                self.close();
            }
        }
    }
}
