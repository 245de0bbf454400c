//! A small blocking RTMP client (rml_rtmp's `ClientSession` over a std `TcpStream`) for checks
//! ffmpeg cannot express: exact onStatus codes, raw frames, join latency, and a player that
//! stops reading.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::FromRawFd;
use std::time::{Duration, Instant};

use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ClientSession, ClientSessionConfig, ClientSessionEvent, ClientSessionResult, PublishRequestType,
};
use rml_rtmp::time::RtmpTimestamp;

/// Default bound for one request/response exchange.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// SPS and PPS of a real 320x240 H.264 (baseline) stream from x264, so a server that parses the
/// AVC sequence header sees valid data.
const SPS: &[u8] = &[
    0x67, 0x42, 0xc0, 0x0d, 0xda, 0x05, 0x07, 0xec, 0x04, 0x40, 0x00, 0x00, 0x03, 0x00, 0x40, 0x00,
    0x00, 0x0c, 0x83, 0xc5, 0x0a, 0xa8,
];
const PPS: &[u8] = &[0x68, 0xce, 0x0f, 0xc8];

#[derive(Debug)]
pub enum ClientError {
    /// The server closed the connection (EOF or reset).
    Closed,
    /// No answer within the time allowed.
    Timeout,
    /// The server rejected `connect` with `_error`.
    Rejected(String),
    Io(io::Error),
    /// rml_rtmp could not make sense of what the server sent (or refused a request).
    Protocol(String),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

/// First media a player received, with when it arrived (for join-time checks).
#[derive(Debug, Clone, Default)]
pub struct JoinInfo {
    /// From sending `play` to the first H.264 keyframe (not a sequence header).
    pub keyframe_after: Option<Duration>,
    /// The AVC sequence header arrived before that keyframe.
    pub seq_header_first: bool,
    /// Video messages that arrived before the keyframe (should be 0 with `wait_key on`,
    /// apart from the sequence header).
    pub non_key_video_before: u32,
    pub audio_before: u32,
}

/// Counters of media a client received.
#[derive(Debug, Clone, Default)]
pub struct MediaCount {
    pub video: u32,
    pub audio: u32,
    pub metadata: u32,
}

pub struct RtmpClient {
    stream: TcpStream,
    session: ClientSession,
    /// Every onStatus code received, in order.
    pub status_codes: Vec<String>,
    /// Events received but not consumed by the call that read them.
    pending: Vec<ClientSessionEvent>,
    play_sent_at: Option<Instant>,
    next_ts: u32,
}

fn is_closed(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof
    )
}

fn map_io(e: io::Error) -> ClientError {
    if is_closed(&e) {
        ClientError::Closed
    } else if matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    ) {
        ClientError::Timeout
    } else {
        ClientError::Io(e)
    }
}

/// Connects a TCP socket whose receive buffer is set (before connect, so the advertised window
/// stays small) to `rcvbuf` bytes: a player that stops reading then backs up the server fast.
pub fn connect_small_rcvbuf(addr: SocketAddr, rcvbuf: i32) -> io::Result<TcpStream> {
    let SocketAddr::V4(v4) = addr else {
        return Err(io::Error::other("IPv4 only"));
    };
    // SAFETY: plain socket(2)/setsockopt(2)/connect(2) calls with valid, initialised arguments;
    // the fd is owned by the TcpStream on success and closed on every error path.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let rc = libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            &rcvbuf as *const i32 as *const libc::c_void,
            std::mem::size_of::<i32>() as libc::socklen_t,
        );
        if rc != 0 {
            let e = io::Error::last_os_error();
            libc::close(fd);
            return Err(e);
        }
        let sin = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: v4.port().to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(*v4.ip()).to_be(),
            },
            sin_zero: [0; 8],
        };
        let rc = libc::connect(
            fd,
            &sin as *const libc::sockaddr_in as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        );
        if rc != 0 {
            let e = io::Error::last_os_error();
            libc::close(fd);
            return Err(e);
        }
        Ok(TcpStream::from_raw_fd(fd))
    }
}

impl RtmpClient {
    /// Handshake + `connect(app)`. `Err(Rejected)` on `_error`, `Err(Closed)` if the server hangs up.
    pub fn connect(addr: &str, app: &str) -> Result<RtmpClient, ClientError> {
        Self::connect_with(addr, app, None)
    }

    /// Like [`RtmpClient::connect`], with a small socket receive buffer (for slow players).
    pub fn connect_with(
        addr: &str,
        app: &str,
        rcvbuf: Option<i32>,
    ) -> Result<RtmpClient, ClientError> {
        let sa: SocketAddr = addr
            .parse()
            .map_err(|e| ClientError::Protocol(format!("{e}")))?;
        let stream = match rcvbuf {
            Some(n) => connect_small_rcvbuf(sa, n).map_err(map_io)?,
            None => TcpStream::connect_timeout(&sa, REPLY_TIMEOUT).map_err(map_io)?,
        };
        stream.set_nodelay(true).map_err(ClientError::Io)?;
        stream
            .set_write_timeout(Some(REPLY_TIMEOUT))
            .map_err(ClientError::Io)?;
        let mut config = ClientSessionConfig::new();
        config.tc_url = Some(format!("rtmp://{addr}/{app}"));
        let (session, initial) =
            ClientSession::new(config).map_err(|e| ClientError::Protocol(format!("{e:?}")))?;
        let mut client = RtmpClient {
            stream,
            session,
            status_codes: Vec::new(),
            pending: Vec::new(),
            play_sent_at: None,
            next_ts: 0,
        };
        let leftover = client.handshake()?;
        client.handle_results(initial)?;
        if !leftover.is_empty() {
            client.feed(&leftover)?;
        }
        let req = client
            .session
            .request_connection(app.to_string())
            .map_err(|e| ClientError::Protocol(format!("{e:?}")))?;
        client.handle_results(vec![req])?;
        let deadline = Instant::now() + REPLY_TIMEOUT;
        loop {
            for ev in client.take_events() {
                match ev {
                    ClientSessionEvent::ConnectionRequestAccepted => return Ok(client),
                    ClientSessionEvent::ConnectionRequestRejected { description } => {
                        return Err(ClientError::Rejected(description))
                    }
                    other => client.pending.push(other),
                }
            }
            client.pump(deadline)?;
        }
    }

    fn handshake(&mut self) -> Result<Vec<u8>, ClientError> {
        let mut hs = Handshake::new(PeerType::Client);
        let c0c1 = hs
            .generate_outbound_p0_and_p1()
            .map_err(|e| ClientError::Protocol(format!("handshake: {e:?}")))?;
        self.stream.write_all(&c0c1).map_err(map_io)?;
        let deadline = Instant::now() + REPLY_TIMEOUT;
        let mut buf = [0u8; 4096];
        loop {
            let n = self.read_some(&mut buf, deadline)?;
            match hs
                .process_bytes(&buf[..n])
                .map_err(|e| ClientError::Protocol(format!("handshake: {e:?}")))?
            {
                HandshakeProcessResult::InProgress { response_bytes } => {
                    if !response_bytes.is_empty() {
                        self.stream.write_all(&response_bytes).map_err(map_io)?;
                    }
                }
                HandshakeProcessResult::Completed {
                    response_bytes,
                    remaining_bytes,
                } => {
                    if !response_bytes.is_empty() {
                        self.stream.write_all(&response_bytes).map_err(map_io)?;
                    }
                    return Ok(remaining_bytes);
                }
            }
        }
    }

    /// One read, waiting at most until `deadline`. Ok(n > 0), or Closed / Timeout.
    fn read_some(&mut self, buf: &mut [u8], deadline: Instant) -> Result<usize, ClientError> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ClientError::Timeout);
        }
        self.stream
            .set_read_timeout(Some(left.min(Duration::from_millis(200))))
            .map_err(ClientError::Io)?;
        match self.stream.read(buf) {
            Ok(0) => Err(ClientError::Closed),
            Ok(n) => Ok(n),
            Err(e) => match map_io(e) {
                ClientError::Timeout => Ok(0),
                other => Err(other),
            },
        }
    }

    /// Reads what is available (up to 200 ms) and processes it. Err(Timeout) past `deadline`.
    fn pump(&mut self, deadline: Instant) -> Result<(), ClientError> {
        let mut buf = [0u8; 16384];
        let n = self.read_some(&mut buf, deadline)?;
        if n > 0 {
            self.feed(&buf[..n])?;
        }
        Ok(())
    }

    fn feed(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        let results = self
            .session
            .handle_input(bytes)
            .map_err(|e| ClientError::Protocol(format!("{e:?}")))?;
        self.handle_results(results)
    }

    fn handle_results(&mut self, results: Vec<ClientSessionResult>) -> Result<(), ClientError> {
        for r in results {
            match r {
                ClientSessionResult::OutboundResponse(p) => {
                    self.stream.write_all(&p.bytes).map_err(map_io)?
                }
                ClientSessionResult::RaisedEvent(ev) => {
                    match &ev {
                        ClientSessionEvent::UnhandleableOnStatusCode { code } => {
                            self.status_codes.push(code.clone())
                        }
                        ClientSessionEvent::PublishRequestAccepted => {
                            self.status_codes.push("NetStream.Publish.Start".into())
                        }
                        ClientSessionEvent::PlaybackRequestAccepted => {
                            self.status_codes.push("NetStream.Play.Start".into())
                        }
                        _ => {}
                    }
                    self.pending.push(ev)
                }
                ClientSessionResult::UnhandleableMessageReceived(_) => {}
            }
        }
        Ok(())
    }

    fn take_events(&mut self) -> Vec<ClientSessionEvent> {
        std::mem::take(&mut self.pending)
    }

    /// Requests to publish `name` (live) and returns the first onStatus code the server sends
    /// (`NetStream.Publish.Start` on success, e.g. `NetStream.Publish.BadName` on refusal).
    pub fn publish(&mut self, name: &str) -> Result<String, ClientError> {
        let req = self
            .session
            .request_publishing(name.to_string(), PublishRequestType::Live)
            .map_err(|e| ClientError::Protocol(format!("{e:?}")))?;
        self.handle_results(vec![req])?;
        let seen = self.status_codes.len();
        let deadline = Instant::now() + REPLY_TIMEOUT;
        loop {
            if let Some(code) = self.status_codes.get(seen) {
                return Ok(code.clone());
            }
            self.pump(deadline)?;
        }
    }

    /// Requests to play `name`; returns the onStatus codes received until `NetStream.Play.Start`,
    /// an error code (`...StreamNotFound`, `...Failed`, `...BadName`, ...), or the server closing
    /// the connection after sending some codes. Err(Closed/Timeout) if nothing came.
    pub fn play(&mut self, name: &str) -> Result<Vec<String>, ClientError> {
        let req = self
            .session
            .request_playback(name.to_string())
            .map_err(|e| ClientError::Protocol(format!("{e:?}")))?;
        self.handle_results(vec![req])?;
        self.play_sent_at = Some(Instant::now());
        let seen = self.status_codes.len();
        let deadline = Instant::now() + REPLY_TIMEOUT;
        loop {
            let codes: Vec<String> = self.status_codes[seen..].to_vec();
            let done = codes.iter().any(|c| {
                c == "NetStream.Play.Start"
                    || c.contains("NotFound")
                    || c.contains("Failed")
                    || c.contains("Bad")
                    || c.contains("Unauthorized")
                    || c.contains("Reject")
            });
            if done {
                return Ok(codes);
            }
            match self.pump(deadline) {
                Ok(()) => {}
                Err(e @ (ClientError::Closed | ClientError::Timeout)) => {
                    return if codes.is_empty() { Err(e) } else { Ok(codes) };
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// After `play`: waits for the first H.264 keyframe and reports when it came relative to
    /// the `play` request, and what came before it.
    pub fn wait_keyframe(&mut self, timeout: Duration) -> Result<JoinInfo, ClientError> {
        let sent = self.play_sent_at.unwrap_or_else(Instant::now);
        let deadline = Instant::now() + timeout;
        let mut info = JoinInfo::default();
        let mut seq_header = false;
        loop {
            for ev in self.take_events() {
                match ev {
                    ClientSessionEvent::VideoDataReceived { data, .. } => {
                        let key = data.first().is_some_and(|b| b >> 4 == 1);
                        match data.get(1) {
                            Some(0) => seq_header = true,
                            Some(1) if key => {
                                info.keyframe_after = Some(sent.elapsed());
                                info.seq_header_first = seq_header;
                                return Ok(info);
                            }
                            _ => info.non_key_video_before += 1,
                        }
                    }
                    ClientSessionEvent::AudioDataReceived { .. } => info.audio_before += 1,
                    _ => {}
                }
            }
            self.pump(deadline)?;
        }
    }

    /// Reads media for `duration` (or until the server closes) and counts it.
    pub fn read_media_for(&mut self, duration: Duration) -> (MediaCount, Option<ClientError>) {
        let deadline = Instant::now() + duration;
        let mut count = MediaCount::default();
        loop {
            for ev in self.take_events() {
                match ev {
                    ClientSessionEvent::VideoDataReceived { .. } => count.video += 1,
                    ClientSessionEvent::AudioDataReceived { .. } => count.audio += 1,
                    ClientSessionEvent::StreamMetadataReceived { .. } => count.metadata += 1,
                    _ => {}
                }
            }
            match self.pump(deadline) {
                Ok(()) => {}
                Err(ClientError::Timeout) => return (count, None),
                Err(e) => return (count, Some(e)),
            }
        }
    }

    /// Reads media for `duration` (or until the server closes) and returns each media message
    /// in arrival order: (video?, timestamp, hash of the payload), to compare what two players
    /// received.
    pub fn media_digests_for(&mut self, duration: Duration) -> Vec<(bool, u32, u64)> {
        use std::hash::{Hash, Hasher};
        let digest = |data: &[u8]| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            data.hash(&mut h);
            h.finish()
        };
        let deadline = Instant::now() + duration;
        let mut out = Vec::new();
        loop {
            for ev in self.take_events() {
                match ev {
                    ClientSessionEvent::VideoDataReceived { data, timestamp } => {
                        out.push((true, timestamp.value, digest(&data)))
                    }
                    ClientSessionEvent::AudioDataReceived { data, timestamp } => {
                        out.push((false, timestamp.value, digest(&data)))
                    }
                    _ => {}
                }
            }
            if self.pump(deadline).is_err() {
                return out;
            }
        }
    }

    /// Reads media for `duration` and returns when each media message arrived.
    pub fn media_arrivals_for(&mut self, duration: Duration) -> Vec<Instant> {
        let deadline = Instant::now() + duration;
        let mut arrivals = Vec::new();
        loop {
            let now = Instant::now();
            for ev in self.take_events() {
                if matches!(
                    ev,
                    ClientSessionEvent::VideoDataReceived { .. }
                        | ClientSessionEvent::AudioDataReceived { .. }
                ) {
                    arrivals.push(now);
                }
            }
            if self.pump(deadline).is_err() {
                return arrivals;
            }
        }
    }

    /// While publishing: sends metadata, the AVC and AAC sequence headers, then `frames` video
    /// keyframes (fake slice data after a real SPS/PPS) each followed by an AAC frame, 40 ms apart
    /// in timestamps (sent without pacing).
    pub fn send_test_frames(&mut self, frames: u32) -> Result<(), ClientError> {
        self.send_test_frames_paced(frames, Duration::ZERO)
    }

    /// [`Self::send_test_frames`], sleeping `pace` after each video + audio pair (40 ms: real
    /// time).
    pub fn send_test_frames_paced(
        &mut self,
        frames: u32,
        pace: Duration,
    ) -> Result<(), ClientError> {
        let mut meta = rml_rtmp::sessions::StreamMetadata::new();
        meta.video_width = Some(320);
        meta.video_height = Some(240);
        meta.video_codec_id = Some(7);
        meta.video_frame_rate = Some(25.0);
        meta.audio_codec_id = Some(10);
        meta.audio_sample_rate = Some(44100);
        meta.audio_channels = Some(1);
        let r = self
            .session
            .publish_metadata(&meta)
            .map_err(|e| ClientError::Protocol(format!("{e:?}")))?;
        self.handle_results(vec![r])?;

        let mut avc = vec![
            0x17, 0x00, 0, 0, 0, 0x01, SPS[1], SPS[2], SPS[3], 0xff, 0xe1,
        ];
        avc.extend_from_slice(&(SPS.len() as u16).to_be_bytes());
        avc.extend_from_slice(SPS);
        avc.push(0x01);
        avc.extend_from_slice(&(PPS.len() as u16).to_be_bytes());
        avc.extend_from_slice(PPS);
        self.send_video(avc, 0)?;
        // AAC LC, 44.1 kHz, mono.
        self.send_audio(vec![0xaf, 0x00, 0x12, 0x08], 0)?;

        for i in 0..frames {
            let ts = self.next_ts;
            let mut nal = vec![0x65, 0x88, 0x84, 0x00];
            nal.extend_from_slice(&[0x5a; 400]);
            let mut tag = vec![0x17, 0x01, 0, 0, 0];
            tag.extend_from_slice(&(nal.len() as u32).to_be_bytes());
            tag.extend_from_slice(&nal);
            self.send_video(tag, ts)?;
            let mut aac = vec![0xaf, 0x01];
            aac.resize(aac.len() + 20 + (i % 7) as usize, 0x21);
            self.send_audio(aac, ts)?;
            self.next_ts = ts + 40;
            if !pace.is_zero() {
                std::thread::sleep(pace);
            }
        }
        Ok(())
    }

    fn send_video(&mut self, data: Vec<u8>, ts: u32) -> Result<(), ClientError> {
        let r = self
            .session
            .publish_video_data(data.into(), RtmpTimestamp::new(ts), false)
            .map_err(|e| ClientError::Protocol(format!("{e:?}")))?;
        self.handle_results(vec![r])
    }

    fn send_audio(&mut self, data: Vec<u8>, ts: u32) -> Result<(), ClientError> {
        let r = self
            .session
            .publish_audio_data(data.into(), RtmpTimestamp::new(ts), false)
            .map_err(|e| ClientError::Protocol(format!("{e:?}")))?;
        self.handle_results(vec![r])
    }

    /// Processes whatever the server sent, for up to `duration` (answers pings, collects codes).
    /// Err(Closed) if the server hung up.
    pub fn idle(&mut self, duration: Duration) -> Result<(), ClientError> {
        let deadline = Instant::now() + duration;
        loop {
            match self.pump(deadline) {
                Ok(()) => {}
                Err(ClientError::Timeout) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }

    /// For a player that stopped reading: reads and discards everything until the server closes
    /// the connection. Returns how long that took and how many bytes were drained;
    /// Err(Timeout) if the connection is still open after `timeout`.
    pub fn drain_until_closed(
        &mut self,
        timeout: Duration,
    ) -> Result<(Duration, u64), ClientError> {
        let start = Instant::now();
        let deadline = start + timeout;
        let mut buf = vec![0u8; 65536];
        let mut total = 0u64;
        loop {
            match self.read_some(&mut buf, deadline) {
                Ok(n) => total += n as u64,
                Err(ClientError::Closed) => return Ok((start.elapsed(), total)),
                Err(e) => return Err(e),
            }
        }
    }

    /// Every write leaves in its own TCP segment (as encoders that send one chunk per write).
    pub fn set_nodelay(&self) -> io::Result<()> {
        self.stream.set_nodelay(true)
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.stream.local_addr()
    }
}
