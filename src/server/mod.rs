//! One nginx worker's RTMP server, pure: every client's [`Session`], the live [`Hub`], and the
//! decisions between them (which application, who may publish or play, what players hear when a
//! publisher comes and goes). The FFI glue feeds it bytes and timer ticks and writes out what
//! [`Worker::output_slices`] returns; everything it must do besides writing comes back as an
//! [`Outcome`].

mod exec;
mod httpflv;
mod mirror;
mod notify;
mod outputs;
mod pull;
mod record;
mod relay;
mod vod;

pub use record::{remote_record_control, RecordControl};
mod stat;

pub use exec::{ExecReport, StaticExecs};
pub use httpflv::{pick_server, HttpFlvAnswer, HttpFlvPlay};
pub use notify::NetCall;
pub use outputs::Outputs;
pub use relay::{RelayAction, RELAY_IDS, RELAY_SETUP_TIMEOUT_MS};

use std::collections::{HashMap, VecDeque};
use std::io::IoSlice;
use std::net::IpAddr;
use std::rc::Rc;

use bytes::Bytes;

use crate::conf::{access_allowed, Action, Meta, Settings};
use crate::live::{ClientId, FrameKind, Hub, LiveError, PlayerNotice, PlayerOptions, StreamKey};
use crate::notify::Call;
use crate::rtmp::chunk;
use crate::rtmp::command::{self, validate_name, NameKind};
use crate::rtmp::ertmp::Caps;
use crate::rtmp::session::{Session, SessionConfig, SessionEvent, TickVerdict};

/// One `application {}` with its merged settings.
#[derive(Debug)]
pub struct AppConfig {
    pub name: String,
    pub settings: Settings,
    /// Its `recorder name {}` blocks (the application's own `record` is the unnamed one,
    /// in `settings`).
    pub recorders: Vec<RecorderConfig>,
}

/// One `recorder name {}`: its settings merged with the application's.
#[derive(Debug)]
pub struct RecorderConfig {
    pub name: String,
    pub settings: Settings,
}

impl AppConfig {
    /// Every recorder that records something: (name, settings); "" is the application's own.
    pub fn recorders(&self) -> impl Iterator<Item = (&str, &Settings)> {
        std::iter::once(("", &self.settings))
            .chain(
                self.recorders
                    .iter()
                    .map(|r| (r.name.as_str(), &r.settings)),
            )
            .filter(|(_, s)| s.record.flags.enabled() && !s.record.path.is_empty())
    }

    /// The settings of recorder `name` ("" is the application's own).
    pub fn recorder(&self, name: &str) -> Option<&Settings> {
        self.recorders().find(|(n, _)| *n == name).map(|(_, s)| s)
    }
}

/// One `server {}`: its own merged settings (connection-level: chunk size, timeouts) and apps.
#[derive(Debug)]
pub struct ServerConfig {
    pub index: usize,
    pub settings: Settings,
    pub apps: Vec<AppConfig>,
    /// The TCP ports it listens on (HTTP-FLV's `port=` picks a server by them).
    pub ports: Vec<u16>,
}

/// The start cache an application asks for (`gop_cache`, `gop_max_*`).
fn start_cache(settings: &Settings) -> crate::live::gop::StartCache {
    let live = &settings.live;
    let count = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
    crate::live::gop::StartCache {
        frames: live.gop_cache,
        max_frames: count(live.gop_max_frame_count),
        max_video: count(live.gop_max_video_count),
        max_audio: count(live.gop_max_audio_count),
    }
}

impl ServerConfig {
    pub fn new(index: usize, settings: Settings, apps: Vec<AppConfig>) -> Self {
        ServerConfig {
            index,
            settings,
            apps,
            ports: Vec::new(),
        }
    }

    /// The same server, listening on `ports`.
    pub fn with_ports(mut self, ports: Vec<u16>) -> Self {
        self.ports = ports;
        self
    }

    fn app(&self, name: &str) -> Option<usize> {
        self.apps.iter().position(|a| a.name == name)
    }

    fn session_config(&self) -> SessionConfig {
        let core = &self.settings.core;
        SessionConfig {
            chunk_size: core.chunk_size,
            ack_window: core.ack_window,
            max_message: u32::try_from(core.max_message).unwrap_or(u32::MAX),
            max_chunk_streams: core.max_streams as usize,
            timeout_ms: core.timeout_ms,
            ping_ms: core.ping_ms,
            ping_timeout_ms: core.ping_timeout_ms,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Error,
    Warn,
    Notice,
    Info,
}

/// One log line for the glue; `client` selects whose connection log (address context) to use.
#[derive(Debug, Clone)]
pub struct LogLine {
    pub level: LogLevel,
    pub client: Option<ClientId>,
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseMode {
    /// Drop whatever is queued and close.
    Now,
    /// Send what is queued (a final status), then close.
    AfterFlush,
}

/// What the glue must do after a call: wake (post a write event for) other clients, close
/// clients, log lines.
#[derive(Debug, Default)]
pub struct Outcome {
    pub wake: Vec<ClientId>,
    /// Players with new live media: the glue may gather it for
    /// [`Worker::play_flush_interval_ms`] before writing (unlike `wake`, which is at once).
    pub wake_media: Vec<ClientId>,
    /// Clients that started publishing: their input is media, which the glue may let gather
    /// in the socket for a few ms and read in larger pieces (fewer wake-ups per byte).
    pub batch_reads: Vec<ClientId>,
    pub close: Vec<(ClientId, CloseMode, String)>,
    pub logs: Vec<LogLine>,
    /// HTTP callbacks to perform; answer each with [`Worker::on_call_done`].
    pub calls: Vec<NetCall>,
    /// RTMP access log lines to append.
    pub access: Vec<AccessLine>,
    /// Clients whose next [`Worker::on_tick`] must come within this many ms (an `on_update`
    /// period shorter than the timer already set).
    pub retick: Vec<(ClientId, u64)>,
    /// Processes to start or signal (`exec*`); report back with [`Worker::on_exec_report`].
    pub execs: Vec<crate::exec::ExecAction>,
    /// Push connections to open, retry or close; report back with [`Worker::on_relay_closed`]
    /// and friends.
    pub relays: Vec<RelayAction>,
}

/// One line for an `access_log` file (`None`: nginx's default http access log).
#[derive(Debug, Clone)]
pub struct AccessLine {
    pub path: Option<String>,
    pub line: String,
}

impl Outcome {
    pub fn closes(&self, id: ClientId) -> bool {
        self.close.iter().any(|(c, _, _)| *c == id)
    }

    fn log(&mut self, level: LogLevel, client: ClientId, text: String) {
        self.logs.push(LogLine {
            level,
            client: Some(client),
            text,
        });
    }
}

/// What the TLS handshake of a client on an `ssl` listener agreed on, for /stat and the access
/// log. The SNI name comes from the client: [`TlsInfo::new`] drops control characters and
/// bounds both values, so neither can grow a stat document or forge a log line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsInfo {
    /// "TLSv1.3", "TLSv1.2", ...
    pub version: String,
    /// The server name the client asked for; None when it sent none.
    pub sni: Option<String>,
}

impl TlsInfo {
    /// Longest protocol version kept (OpenSSL's names are under 10 bytes).
    pub const MAX_VERSION_LEN: usize = 32;
    /// Longest SNI name kept: the host_name limit of OpenSSL (`TLSEXT_MAXLEN_host_name`).
    pub const MAX_SNI_LEN: usize = 255;

    /// Cleans what the handshake reported: control characters dropped, each value cut (at a
    /// character boundary) to its limit; an SNI name left empty becomes None.
    pub fn new(version: &str, sni: Option<&str>) -> TlsInfo {
        fn clean(s: &str, max: usize) -> String {
            let mut out = String::with_capacity(s.len().min(max));
            for c in s.chars().filter(|c| !c.is_control()) {
                if out.len() + c.len_utf8() > max {
                    break;
                }
                out.push(c);
            }
            out
        }
        TlsInfo {
            version: clean(version, Self::MAX_VERSION_LEN),
            sni: sni
                .map(|s| clean(s, Self::MAX_SNI_LEN))
                .filter(|s| !s.is_empty()),
        }
    }
}

/// Why a publish or play was refused (the text goes to the client in onStatus).
enum Refusal {
    BadName(String),
    Denied(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Role {
    None,
    Publisher(StreamKey),
    Player(StreamKey),
    /// Playing a file (`play dir ...`).
    Vod(StreamKey),
}

struct Client {
    session: Session,
    server: Rc<ServerConfig>,
    peer: Option<IpAddr>,
    app: Option<usize>,
    role: Role,
    /// Session output (handshake, replies) not yet written; always sent before the player's
    /// live queue, which only holds what came after `play`.
    out: VecDeque<Bytes>,
    out_offset: usize,
    last_media_ms: u64,
    /// What callbacks say about this client (filled at `connect`).
    vars: crate::notify::SessionVars,
    /// `?args` of the `connect` (forwarded to `on_connect`).
    connect_args: String,
    /// The stream being published or played, with its `?args`.
    stream: Option<command::StreamName>,
    next_update_ms: Option<u64>,
    connected_ms: u64,
    /// Timestamp of the publisher's last media message (`on_update`'s `timestamp`).
    last_timestamp: u32,
    /// For the access log: the last stream name used, and what the client did.
    logged_stream: Option<command::StreamName>,
    played: bool,
    published: bool,
    /// Traffic counters for /stat.
    counters: stat::ClientCounters,
    /// Set by [`Worker::set_client_tls`] for a client of an `ssl` listener.
    tls: Option<TlsInfo>,
    /// Playback of a file (from `play` until the client stops).
    vod: Option<vod::VodPlay>,
    /// Where `on_publish`/`on_play` redirected this client's stream (`3xx rtmp://`): pushed
    /// to, or pulled from, once.
    redirect: Option<crate::conf::RelayTarget>,
    /// What the client announced about Enhanced RTMP in `connect` (which live messages it
    /// may get as a player).
    caps: Caps,
    /// Set for an HTTP-FLV player (`flv_live`): its session never speaks RTMP; the glue
    /// answers its HTTP request.
    http: Option<httpflv::HttpFlv>,
}

impl Client {
    /// Schedules `on_update` (if configured) one period from now; returns the period.
    fn start_updates(&mut self, now_ms: u64) -> Option<u64> {
        let period = self
            .app_settings()
            .filter(|s| s.notify.on_update.is_some())
            .map(|s| s.notify.update_timeout_ms.max(1));
        self.next_update_ms = period.map(|p| now_ms.saturating_add(p));
        period
    }

    fn app_settings(&self) -> Option<&Settings> {
        self.app
            .and_then(|i| self.server.apps.get(i))
            .map(|a| &a.settings)
    }

    /// How much the player buffers (`SetBufferLength`, else the server's `buflen`).
    fn buffer_ms(&self) -> u32 {
        match self.session.buffer_ms {
            0 => u32::try_from(self.server.settings.core.buflen_ms).unwrap_or(u32::MAX),
            ms => ms,
        }
    }

    fn collect_output(&mut self) {
        let output = self.session.take_output();
        if self.http.is_some() {
            // Statuses an RTMP player would get have no place in an FLV body.
            return;
        }
        if let Some(bytes) = output {
            self.out.push_back(bytes);
        }
    }
}

/// A player's queue and join settings from its application's config.
fn player_options(client: &Client) -> Option<PlayerOptions> {
    let settings = client.app_settings()?;
    let live = &settings.live;
    Some(PlayerOptions {
        wait_key: live.wait_key,
        wait_video: live.wait_video,
        // With `live off` there is no live stream to wait for (VOD comes later).
        idle_streams: live.idle_streams && live.live,
        out_queue: settings.core.out_queue as usize,
        chunk_size: client.server.settings.core.chunk_size,
        caps: client.caps,
        delivery: client.http.map_or(crate::live::Delivery::Rtmp, |h| {
            crate::live::Delivery::Flv { chunked: h.chunked }
        }),
    })
}

/// Replies (pings, statuses) a client may leave unread before it is dropped: without this
/// bound, a client that sends pings and never reads would grow our memory without limit.
pub const MAX_UNREAD_REPLY_BYTES: usize = 1024 * 1024;

/// Streams across worker processes: one publisher per name on the whole server, and media
/// of a stream published in one worker played from any other. The glue backs it with shared
/// memory; a lone worker needs none.
pub trait PublishRegistry {
    /// Claims `key` for this worker; false when another live worker publishes it.
    fn claim(&mut self, key: &StreamKey) -> bool;
    fn release(&mut self, key: &StreamKey);
    /// A message of a stream this worker publishes (for the other workers' players).
    fn media(&mut self, key: &StreamKey, frame: RemoteFrameRef<'_>);
    /// Starts following `key`, published by another worker: what a joining player needs
    /// (metadata, codec headers, then the frames from the last keyframe). None when no other
    /// worker publishes it.
    fn follow(&mut self, key: &StreamKey) -> Option<Vec<RemoteFrame>>;
    /// New messages of a followed stream; `ended` once its publisher left.
    fn poll(&mut self, key: &StreamKey, out: &mut Vec<RemoteFrame>) -> bool;
    fn unfollow(&mut self, key: &StreamKey);
    /// Whether another worker follows `key`, published here.
    fn followed(&self, _key: &StreamKey) -> bool {
        false
    }
    /// Says whether `key`, published here, has players in this worker.
    fn set_local_players(&mut self, _key: &StreamKey, _any: bool) {}
    /// Whether `key` has players in any worker (the publisher's own, or followers); false
    /// when it is not published.
    fn watched(&self, _key: &StreamKey) -> bool {
        false
    }
    /// RTMP connections of every worker (for `max_connections`); None: only this worker's
    /// are known.
    fn connections(&self) -> Option<u64> {
        None
    }
}

/// A publisher message on its way to other workers (borrowed: no copy before shared memory).
#[derive(Debug, Clone, Copy)]
pub struct RemoteFrameRef<'a> {
    pub kind: FrameKind,
    pub timestamp: u32,
    pub keyframe: bool,
    pub sequence_header: bool,
    pub payload: &'a [u8],
}

/// A publisher message crossing worker processes.
#[derive(Debug, Clone)]
pub struct RemoteFrame {
    pub kind: FrameKind,
    pub timestamp: u32,
    pub keyframe: bool,
    pub sequence_header: bool,
    pub payload: Bytes,
}

/// Pseudo-client ids of followed streams' publishers (far above nginx's connection numbers).
const MIRROR_IDS: ClientId = 1 << 62;

/// Fills a buffer with random bytes (key material).
pub type RandomSource = Box<dyn FnMut(&mut [u8])>;

/// All RTMP state of one worker process.
pub struct Worker {
    hub: Hub,
    clients: HashMap<ClientId, Client>,
    events: Vec<SessionEvent>,
    outputs: Outputs,
    /// Randomness for keys (the glue passes the OS's); tests get a fixed sequence.
    random: RandomSource,
    /// Cross-worker stream names (None: this worker is alone).
    registry: Option<Box<dyn PublishRegistry>>,
    /// Streams of other workers fed into this worker's hub for its players: key → the
    /// pseudo-client that publishes them here, and the chunk size to encode with.
    mirrors: HashMap<StreamKey, (ClientId, u32)>,
    next_mirror_id: ClientId,
    /// Callbacks in flight.
    calls: HashMap<u64, notify::PendingCall>,
    next_call_token: u64,
    /// (monotonic ms, Unix ms) at the last sync, and the local time zone, for the access log.
    wall_clock: (u64, u64),
    tz_offset_min: i32,
    /// Totals and bandwidth meter for /stat.
    counters: stat::WorkerCounters,
    /// `exec*` processes.
    execs: crate::exec::Execs,
    /// `push` relays of the streams published here.
    relays: relay::Relays,
    /// `exec_pull` commands running for streams nobody published: stream → the name claimed
    /// in the registry so that one worker runs them.
    exec_pulls: HashMap<StreamKey, StreamKey>,
}

impl Default for Worker {
    fn default() -> Self {
        let mut state = 0x9E37_79B9_7F4A_7C15_u64;
        Worker {
            hub: Hub::default(),
            clients: HashMap::new(),
            events: Vec::new(),
            outputs: Outputs::default(),
            registry: None,
            mirrors: HashMap::new(),
            next_mirror_id: MIRROR_IDS,
            calls: HashMap::new(),
            next_call_token: 1,
            wall_clock: (0, 0),
            tz_offset_min: 0,
            counters: stat::WorkerCounters::default(),
            execs: crate::exec::Execs::default(),
            relays: relay::Relays::default(),
            exec_pulls: HashMap::new(),
            random: Box::new(move |buf: &mut [u8]| {
                for b in buf {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    *b = state as u8;
                }
            }),
        }
    }
}

impl Worker {
    pub fn new() -> Self {
        Self::default()
    }

    /// A worker whose file outputs (HLS) go to `storage`, with keys from `random`.
    pub fn with_storage(storage: Box<dyn crate::io::Storage>, random: RandomSource) -> Self {
        Worker {
            outputs: Outputs::new(storage),
            random,
            ..Self::default()
        }
    }

    /// Makes publishing coordinate with other worker processes.
    pub fn set_publish_registry(&mut self, registry: Box<dyn PublishRegistry>) {
        self.registry = Some(registry);
    }

    /// File IO performed for this worker's outputs (ops, bytes, slowest single operation).
    pub fn io_stats(&self) -> crate::io::IoStats {
        self.outputs.io_stats()
    }

    /// Wall-clock time (for playlists' PROGRAM-DATE-TIME) at monotonic time `mono_ms`.
    pub fn sync_wall_clock(&mut self, mono_ms: u64, unix_ms: u64) {
        self.wall_clock = (mono_ms, unix_ms);
        self.outputs.sync_wall_clock(mono_ms, unix_ms);
    }

    /// A file job submitted to the thread pool came back.
    pub fn on_io_done(&mut self, done: crate::io::IoDone, outcome: &mut Outcome) {
        self.outputs.io_done(done, &mut outcome.logs);
        self.handle_record_events(outcome);
    }

    /// Whether file work is queued or in flight.
    pub fn io_pending(&self) -> bool {
        self.outputs.io_pending()
    }

    /// Deferred file work (segment deletions after their grace period). Returns the delay
    /// until the next call, or None when nothing is pending.
    pub fn on_housekeeping(&mut self, now_ms: u64, outcome: &mut Outcome) -> Option<u64> {
        let next = self.outputs.housekeeping(now_ms, &mut outcome.logs);
        self.handle_record_events(outcome);
        next
    }

    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// A new TCP connection. Returns the delay (ms) until its first [`Worker::on_tick`].
    pub fn connect(
        &mut self,
        id: ClientId,
        peer: Option<IpAddr>,
        server: Rc<ServerConfig>,
        now_ms: u64,
        random: &mut dyn FnMut(&mut [u8]),
    ) -> u64 {
        let session = Session::new(server.session_config(), now_ms, random);
        let first_tick = server.settings.core.timeout_ms.max(1);
        self.clients.insert(
            id,
            Client {
                session,
                server,
                peer,
                app: None,
                role: Role::None,
                out: VecDeque::new(),
                out_offset: 0,
                last_media_ms: now_ms,
                vars: crate::notify::SessionVars {
                    addr: peer.map_or(String::new(), |p| p.to_string()),
                    clientid: id,
                    ..Default::default()
                },
                connect_args: String::new(),
                stream: None,
                next_update_ms: None,
                connected_ms: now_ms,
                last_timestamp: 0,
                logged_stream: None,
                played: false,
                published: false,
                counters: stat::ClientCounters::default(),
                tls: None,
                vod: None,
                redirect: None,
                caps: Caps::LEGACY,
                http: None,
            },
        );
        self.counters.accepted();
        first_tick
    }

    /// Client `id` came over TLS (the glue calls this right after [`Worker::connect`]): /stat
    /// and the access log show `info`.
    pub fn set_client_tls(&mut self, id: ClientId, info: TlsInfo) {
        if let Some(client) = self.clients.get_mut(&id) {
            client.tls = Some(info);
        }
    }

    /// Bytes received from client `id`.
    pub fn on_input(&mut self, id: ClientId, data: &[u8], now_ms: u64, outcome: &mut Outcome) {
        let Some(client) = self.clients.get_mut(&id) else {
            return;
        };
        self.counters.received(&mut client.counters, data.len());
        let mut events = std::mem::take(&mut self.events);
        events.clear();
        let result = client.session.on_input(data, now_ms, &mut events);
        self.process(id, events, result, now_ms, outcome);
    }

    /// Decodes what the session of `id` holds behind a decision that was just taken.
    fn resume_session(&mut self, id: ClientId, now_ms: u64, outcome: &mut Outcome) {
        let Some(client) = self.clients.get_mut(&id) else {
            return;
        };
        let mut events = std::mem::take(&mut self.events);
        events.clear();
        let result = client.session.resume(&mut events);
        self.process(id, events, result, now_ms, outcome);
    }

    /// Answers the session's events, then the ones decoded behind them, and closes the client
    /// on a session error or unread replies.
    fn process(
        &mut self,
        id: ClientId,
        mut events: Vec<SessionEvent>,
        mut result: Result<(), crate::rtmp::session::SessionError>,
        now_ms: u64,
        outcome: &mut Outcome,
    ) {
        // Answer each batch of decisions, then let the session decode what was queued behind
        // them (commands and media pipelined in the same read).
        while !events.is_empty() {
            for event in events.drain(..) {
                self.on_event(id, event, now_ms, outcome);
                if outcome.closes(id) {
                    break;
                }
            }
            events.clear();
            if outcome.closes(id) || result.is_err() {
                break;
            }
            let Some(client) = self.clients.get_mut(&id) else {
                break;
            };
            result = client.session.resume(&mut events);
        }
        self.events = events;
        if let Some(client) = self.clients.get_mut(&id) {
            client.collect_output();
            let unread: usize = client.out.iter().map(Bytes::len).sum();
            if unread > MAX_UNREAD_REPLY_BYTES && !outcome.closes(id) {
                let text = format!("rtmp: client left {unread} bytes of replies unread; closing");
                outcome.log(LogLevel::Warn, id, text);
                let reason = "client does not read its replies".to_string();
                outcome.close.push((id, CloseMode::Now, reason));
                return;
            }
        }
        if let Err(e) = result {
            outcome.log(LogLevel::Warn, id, format!("rtmp: {e}; closing"));
            outcome.close.push((id, CloseMode::Now, e.to_string()));
        }
    }

    fn on_event(&mut self, id: ClientId, event: SessionEvent, now_ms: u64, outcome: &mut Outcome) {
        match event {
            SessionEvent::Connect(req) => self.on_connect(id, req, outcome),
            SessionEvent::Publish { name, publish_type } => {
                self.on_publish(id, name, publish_type, now_ms, outcome)
            }
            SessionEvent::Play {
                name,
                start,
                duration,
                reset,
            } => self.on_play(id, name, (start, duration, reset), now_ms, outcome),
            SessionEvent::Pause(paused) => self.on_pause(id, paused, now_ms, outcome),
            SessionEvent::Seek(ms) => self.vod_seek(id, ms, now_ms, outcome),
            SessionEvent::StreamClosed => self.end_role(id, now_ms, outcome),
            SessionEvent::Metadata(payload) => {
                self.on_media(id, FrameKind::Data, 0, &payload, now_ms, outcome)
            }
            SessionEvent::Media {
                type_id,
                timestamp,
                payload,
            } => {
                let kind = if type_id == chunk::MSG_AUDIO {
                    FrameKind::Audio
                } else {
                    FrameKind::Video
                };
                self.on_media(id, kind, timestamp, &payload, now_ms, outcome);
            }
        }
    }

    fn on_connect(&mut self, id: ClientId, req: command::ConnectRequest, outcome: &mut Outcome) {
        let Some(client) = self.clients.get_mut(&id) else {
            return;
        };
        let app_name = if req.app.is_empty() {
            command::app_from_tc_url(&req.tc_url).unwrap_or_default()
        } else {
            req.app.clone()
        };
        if let Err(e) = validate_name(NameKind::App, &app_name) {
            outcome.log(LogLevel::Warn, id, format!("rtmp: connect refused: {e}"));
            client
                .session
                .reject_connect(&format!("Invalid application name: {e}"));
            outcome
                .close
                .push((id, CloseMode::AfterFlush, "invalid application name".into()));
            return;
        }
        match client.server.app(&app_name) {
            Some(index) => {
                client.app = Some(index);
                client.vars.app = app_name;
                client.vars.flashver = req.flash_ver;
                client.vars.swfurl = req.swf_url;
                client.vars.tcurl = req.tc_url;
                client.vars.pageurl = req.page_url;
                client.connect_args = req.app_args;
                client.caps = req.caps;
                if let Some(max) = client.app_settings().and_then(|s| s.access.max_connections) {
                    // Counted when accepted, this connection included, in every worker.
                    let local = self.clients.len() as u64;
                    let count = self.registry.as_ref().and_then(|r| r.connections());
                    let count = count.unwrap_or(local).max(local);
                    if count > max {
                        self.refuse_connect(
                            id,
                            &format!("{count} connections, max_connections is {max}"),
                            "Too many connections.",
                            outcome,
                        );
                        return;
                    }
                }
                let waiting = notify::Waiting::Connect;
                if !self.start_call(id, Call::Connect, None, vec![], waiting, outcome) {
                    if let Some(client) = self.clients.get_mut(&id) {
                        client.session.accept_connect();
                    }
                }
            }
            None => {
                outcome.log(
                    LogLevel::Warn,
                    id,
                    format!("rtmp: connect refused: application \"{app_name}\" not found"),
                );
                client.session.reject_connect("Application not found.");
                outcome
                    .close
                    .push((id, CloseMode::AfterFlush, "application not found".into()));
            }
        }
    }

    /// Answers `connect` with `NetConnection.Connect.Rejected` and closes after it is sent.
    fn refuse_connect(
        &mut self,
        id: ClientId,
        why: &str,
        description: &str,
        outcome: &mut Outcome,
    ) {
        let Some(client) = self.clients.get_mut(&id) else {
            return;
        };
        outcome.log(LogLevel::Warn, id, format!("rtmp: connect refused: {why}"));
        client.session.reject_connect(description);
        outcome
            .close
            .push((id, CloseMode::AfterFlush, format!("connect refused: {why}")));
    }

    /// Shared checks for publish and play: a safe name, an application, and allow/deny rules.
    fn admit(
        &mut self,
        id: ClientId,
        name: &str,
        action: Action,
        outcome: &mut Outcome,
    ) -> Result<StreamKey, Refusal> {
        let client = self
            .clients
            .get(&id)
            .ok_or(Refusal::BadName(String::new()))?;
        let verb = if action == Action::Publish {
            "publish"
        } else {
            "play"
        };
        validate_name(NameKind::Stream, name).map_err(|e| {
            outcome.log(LogLevel::Warn, id, format!("rtmp: {verb} refused: {e}"));
            Refusal::BadName(format!("Invalid stream name: {e}"))
        })?;
        let app_index = client.app.ok_or(Refusal::BadName(String::new()))?;
        let app = client
            .server
            .apps
            .get(app_index)
            .ok_or(Refusal::BadName(String::new()))?;
        if let Some(peer) = client.peer {
            if !access_allowed(&app.settings.access.rules, peer, action) {
                outcome.log(
                    LogLevel::Warn,
                    id,
                    format!(
                        "rtmp: {verb} of \"{}/{name}\" denied for {peer} by allow/deny rules",
                        app.name
                    ),
                );
                return Err(Refusal::Denied(format!(
                    "{verb} is not allowed from this address"
                )));
            }
        }
        Ok(StreamKey::in_server(
            client.server.index as u32,
            app.name.clone(),
            name,
        ))
    }

    /// `publish`: checks the name and allow/deny rules, asks `on_publish` if configured
    /// (the session waits), then publishes.
    fn on_publish(
        &mut self,
        id: ClientId,
        name: command::StreamName,
        kind: String,
        now_ms: u64,
        outcome: &mut Outcome,
    ) {
        if let Err(refusal) = self.admit(id, &name.name, Action::Publish, outcome) {
            self.refuse(id, Action::Publish, refusal, outcome);
            return;
        }
        let extras = vec![("type".to_string(), kind.clone())];
        let waiting = notify::Waiting::Publish {
            name: name.clone(),
            kind: kind.clone(),
        };
        if self.start_call(id, Call::Publish, Some(&name), extras, waiting, outcome) {
            return;
        }
        self.complete_publish(id, name, &kind, now_ms, outcome);
    }

    fn refuse(&mut self, id: ClientId, action: Action, refusal: Refusal, outcome: &mut Outcome) {
        let status = match refusal {
            Refusal::BadName(_) => 400,
            Refusal::Denied(_) => 403,
        };
        self.http_answer(id, status);
        let (code, reason) = match (&refusal, action) {
            (Refusal::BadName(r), Action::Publish) => (command::NS_PUBLISH_BAD_NAME, r),
            (Refusal::Denied(r), Action::Publish) => (command::NS_PUBLISH_DENIED, r),
            (Refusal::BadName(r) | Refusal::Denied(r), Action::Play) => {
                (command::NS_PLAY_FAILED, r)
            }
        };
        if action == Action::Publish {
            self.refuse_publish(id, code, reason, outcome);
        } else {
            self.refuse_play(id, code, reason, outcome);
        }
    }

    fn refuse_publish(&mut self, id: ClientId, code: &str, reason: &str, outcome: &mut Outcome) {
        if let Some(c) = self.clients.get_mut(&id) {
            c.session.reject_publish(code, reason);
        }
        outcome
            .close
            .push((id, CloseMode::AfterFlush, "publish refused".into()));
    }

    fn refuse_play(&mut self, id: ClientId, code: &str, reason: &str, outcome: &mut Outcome) {
        self.http_answer(id, 403);
        if let Some(c) = self.clients.get_mut(&id) {
            c.session.reject_play(code, reason);
        }
        outcome
            .close
            .push((id, CloseMode::AfterFlush, "play refused".into()));
    }

    /// Publishes `name` (after `on_publish` allowed it, or renamed it).
    fn complete_publish(
        &mut self,
        id: ClientId,
        name: command::StreamName,
        _kind: &str,
        now_ms: u64,
        outcome: &mut Outcome,
    ) {
        let key = match self.admit(id, &name.name, Action::Publish, outcome) {
            Ok(key) => key,
            Err(refusal) => {
                self.refuse(id, Action::Publish, refusal, outcome);
                return;
            }
        };
        let elsewhere =
            !self.hub.is_publishing(&key) && self.registry.as_mut().is_some_and(|r| !r.claim(&key));
        let published = if elsewhere {
            Err(LiveError::AlreadyPublishing(key.clone()))
        } else {
            self.hub.publish(&key, id)
        };
        if published.is_ok() {
            if let Some(settings) = self.clients.get(&id).and_then(|c| c.app_settings()) {
                self.hub.set_start_cache(&key, start_cache(settings));
            }
        }
        match published {
            Ok(notices) => {
                if let Some(c) = self.clients.get_mut(&id) {
                    c.session.accept_publish(&name.name);
                    c.role = Role::Publisher(key.clone());
                    outcome.batch_reads.push(id);
                    c.counters.role_since_ms = now_ms;
                    if let Some(due) = c.start_updates(now_ms) {
                        outcome.retick.push((id, due));
                    }
                    c.stream = Some(name.clone());
                    c.logged_stream = Some(name.clone());
                    c.published = true;
                    // drop_idle_publisher counts from the publish, not from the connect.
                    c.last_media_ms = now_ms;
                    if let Some(settings) = c.app_settings() {
                        self.outputs
                            .publish(&key, settings, now_ms, &mut *self.random);
                    }
                }
                self.start_recorders(id, &key, &name, outcome);
                self.note_local_players(&key);
                outcome.log(
                    LogLevel::Info,
                    id,
                    format!("rtmp: publish \"{}/{}\"", key.app, key.name),
                );
                self.exec_event(id, crate::exec::ExecKind::Publish, &key, &name, outcome);
                self.start_relays(id, &key, now_ms, outcome);
                self.notify_players(&key, notices, outcome);
            }
            Err(_) => {
                outcome.log(
                    LogLevel::Warn,
                    id,
                    format!(
                        "rtmp: publish refused: \"{}/{}\" is already being published",
                        key.app, key.name
                    ),
                );
                if let Some(c) = self.clients.get_mut(&id) {
                    c.session.reject_publish(
                        command::NS_PUBLISH_BAD_NAME,
                        "Stream is already being published.",
                    );
                }
                outcome
                    .close
                    .push((id, CloseMode::AfterFlush, "stream already published".into()));
            }
        }
    }

    /// `play`: checks the name and allow/deny rules, asks `on_play` if configured (the
    /// session waits), then joins the stream.
    fn on_play(
        &mut self,
        id: ClientId,
        name: command::StreamName,
        (start, duration, reset): (f64, f64, bool),
        now_ms: u64,
        outcome: &mut Outcome,
    ) {
        if let Err(refusal) = self.admit(id, &name.name, Action::Play, outcome) {
            self.refuse(id, Action::Play, refusal, outcome);
            return;
        }
        // As the C module: whole numbers, reset as 0/1.
        let extras = vec![
            ("start".to_string(), (start as i64).to_string()),
            ("duration".to_string(), (duration as i64).to_string()),
            ("reset".to_string(), u8::from(reset).to_string()),
        ];
        let waiting = notify::Waiting::Play {
            name: name.clone(),
            start,
            reset,
        };
        if self.start_call(id, Call::Play, Some(&name), extras, waiting, outcome) {
            return;
        }
        self.complete_play(id, name, (start, reset), now_ms, outcome);
    }

    /// Plays `name` (after `on_play` allowed it, or renamed it): a file when the
    /// application has `play` locations, else (or when no location has it) the live stream.
    fn complete_play(
        &mut self,
        id: ClientId,
        name: command::StreamName,
        (start, reset): (f64, bool),
        now_ms: u64,
        outcome: &mut Outcome,
    ) {
        let key = match self.admit(id, &name.name, Action::Play, outcome) {
            Ok(key) => key,
            Err(refusal) => {
                self.refuse(id, Action::Play, refusal, outcome);
                return;
            }
        };
        if self.start_vod(
            id,
            key.clone(),
            name.clone(),
            (start, reset),
            now_ms,
            outcome,
        ) {
            return;
        }
        self.join_live(id, name, reset, now_ms, outcome);
    }

    /// Joins the live stream `name` (checked by [`Worker::admit`] before).
    fn join_live(
        &mut self,
        id: ClientId,
        name: command::StreamName,
        reset: bool,
        now_ms: u64,
        outcome: &mut Outcome,
    ) {
        let Some(client) = self.clients.get(&id) else {
            return;
        };
        let Some(app) = client.app.and_then(|i| client.server.apps.get(i)) else {
            return;
        };
        let key = StreamKey::in_server(client.server.index as u32, app.name.clone(), &name.name);
        // A stream another worker publishes plays here as well (from its last keyframe); one
        // nobody publishes is pulled when a `pull` line says from where.
        if self.clients.contains_key(&id)
            && !self.hub.is_publishing(&key)
            && !self.follow_remote(&key, id, outcome)
            && !self.start_pull(id, &key, now_ms, outcome)
        {
            self.start_exec_pull(id, &key, &name, outcome);
        }
        let Some(client) = self.clients.get_mut(&id) else {
            return;
        };
        let Some(opts) = player_options(client) else {
            return;
        };
        if !client.app_settings().is_some_and(|s| s.live.live) {
            if let Some(h) = client.http.as_mut() {
                h.status.get_or_insert(404);
            }
            client
                .session
                .reject_play(command::NS_PLAY_STREAM_NOT_FOUND, "No such stream.");
            outcome.log(
                LogLevel::Warn,
                id,
                format!(
                    "rtmp: play refused: \"{}/{}\": live is off",
                    key.app, key.name
                ),
            );
            outcome
                .close
                .push((id, CloseMode::AfterFlush, "stream not found".into()));
            return;
        }
        // An HTTP-FLV body starts with the FLV file header, saying which kinds of tags follow
        // (both while no one publishes yet, as nginx-http-flv-module).
        let prelude = client.http.map(|h| {
            let (audio, video) = self.hub.gop(&key).map_or((true, true), |g| {
                if self.hub.is_publishing(&key) {
                    (g.audio_header().is_some(), g.has_video())
                } else {
                    (true, true)
                }
            });
            let (audio, video) = if audio || video {
                (audio, video)
            } else {
                (true, true)
            };
            crate::live::httpflv::file_header(audio, video, h.chunked)
        });
        let joined = match self.hub.play(key.clone(), id, opts, prelude) {
            Ok(join) => {
                if let Some(h) = client.http.as_mut() {
                    h.status.get_or_insert(200);
                }
                // The statuses go to the session output, which is written before the live
                // queue the hub just filled, so they still reach the player first.
                client.session.accept_play(&name.name, reset);
                client.collect_output();
                client.role = Role::Player(key.clone());
                client.counters.role_since_ms = now_ms;
                if let Some(due) = client.start_updates(now_ms) {
                    outcome.retick.push((id, due));
                }
                client.stream = Some(name.clone());
                client.logged_stream = Some(name.clone());
                client.played = true;
                outcome.log(
                    LogLevel::Info,
                    id,
                    format!(
                        "rtmp: play \"{}/{}\"{}",
                        key.app,
                        key.name,
                        if join.live {
                            ""
                        } else {
                            " (waiting for a publisher)"
                        }
                    ),
                );
                true
            }
            Err(LiveError::Unsupported { why, .. }) => {
                self.refuse_unsupported(id, &key, &why, outcome);
                false
            }
            Err(_) => {
                if let Some(h) = client.http.as_mut() {
                    h.status.get_or_insert(404);
                }
                client
                    .session
                    .reject_play(command::NS_PLAY_STREAM_NOT_FOUND, "No such stream.");
                outcome.log(
                    LogLevel::Info,
                    id,
                    format!(
                        "rtmp: play refused: \"{}/{}\" is not published",
                        key.app, key.name
                    ),
                );
                outcome
                    .close
                    .push((id, CloseMode::AfterFlush, "stream not found".into()));
                false
            }
        };
        if joined {
            self.note_local_players(&key);
            self.exec_event(id, crate::exec::ExecKind::Play, &key, &name, outcome);
        }
    }

    /// Live pause: the player leaves the stream's fan-out; on resume it rejoins from the last
    /// keyframe like a new player, so it never resumes mid-GOP.
    fn on_pause(&mut self, id: ClientId, paused: bool, now_ms: u64, outcome: &mut Outcome) {
        let Some(client) = self.clients.get_mut(&id) else {
            return;
        };
        if client.vod.is_some() {
            self.vod_pause(id, paused, now_ms, outcome);
            return;
        }
        let Role::Player(key) = client.role.clone() else {
            return;
        };
        if paused {
            self.keep_partial_head(id);
            self.hub.stop_play(id);
            return;
        }
        let Some(opts) = player_options(client) else {
            return;
        };
        // While paused, the stream's follow (another worker's stream) may have been dropped.
        if !self.hub.is_publishing(&key) {
            self.follow_remote(&key, id, outcome);
        }
        match self.hub.play(key.clone(), id, opts, std::iter::empty()) {
            Ok(_) => outcome.wake.push(id),
            Err(LiveError::Unsupported { why, .. }) => {
                self.refuse_unsupported(id, &key, &why, outcome)
            }
            Err(_) => {}
        }
    }

    /// Refuses the players the fan-out found unable to read `key`'s main track.
    fn refuse_unsupported_players(&mut self, key: &StreamKey, outcome: &mut Outcome) {
        for (id, why) in self.hub.take_refused() {
            self.refuse_unsupported(id, key, &why, outcome);
        }
    }

    /// A player that cannot read the stream's main track (its codec in an Enhanced RTMP form
    /// the player did not announce): `NetStream.Play.Failed` naming the codec, one log line,
    /// closed once that is sent. It never gets a byte it cannot parse.
    fn refuse_unsupported(
        &mut self,
        id: ClientId,
        key: &StreamKey,
        why: &str,
        outcome: &mut Outcome,
    ) {
        let Some(client) = self.clients.get_mut(&id) else {
            return;
        };
        outcome.log(
            LogLevel::Warn,
            id,
            format!("rtmp: play \"{}/{}\" refused: {why}", key.app, key.name),
        );
        if let Some(h) = client.http.as_mut() {
            // Playing already: the body ends; else the request is answered 415.
            if self.hub.queue(id).is_some() {
                self.end_http_body(id, "play refused: codec not announced", outcome);
            } else {
                h.status.get_or_insert(415);
                outcome.close.push((
                    id,
                    CloseMode::AfterFlush,
                    "play refused: codec not announced".into(),
                ));
            }
            return;
        }
        if self.hub.queue(id).is_some() {
            // Playing already: the status goes after what it was sent so far.
            let m =
                client
                    .session
                    .status_message(command::LEVEL_ERROR, command::NS_PLAY_FAILED, why);
            self.hub.enqueue_control(id, m);
            outcome.wake.push(id);
        } else {
            client.session.reject_play(command::NS_PLAY_FAILED, why);
            client.collect_output();
        }
        outcome.close.push((
            id,
            CloseMode::AfterFlush,
            "play refused: codec not announced".into(),
        ));
    }

    fn on_media(
        &mut self,
        id: ClientId,
        kind: FrameKind,
        timestamp: u32,
        payload: &Bytes,
        now_ms: u64,
        outcome: &mut Outcome,
    ) {
        let Some(client) = self.clients.get_mut(&id) else {
            return;
        };
        let Role::Publisher(key) = &client.role else {
            return;
        };
        let meta_off = client
            .app_settings()
            .is_some_and(|s| s.live.meta == Meta::Off);
        if kind == FrameKind::Data && meta_off {
            return;
        }
        if kind != FrameKind::Data {
            client.last_media_ms = now_ms;
            client.last_timestamp = timestamp;
            client.counters.media(kind, payload.len());
        }
        let chunk_size = client.server.settings.core.chunk_size;
        let key = key.clone();
        self.feed_stream(&key, kind, timestamp, payload, chunk_size, now_ms, outcome);
    }

    /// A message of `key`, published here (by a client or a pull): to the other workers, the
    /// live players, then the file outputs.
    #[allow(clippy::too_many_arguments)]
    fn feed_stream(
        &mut self,
        key: &StreamKey,
        kind: FrameKind,
        timestamp: u32,
        payload: &Bytes,
        chunk_size: u32,
        now_ms: u64,
        outcome: &mut Outcome,
    ) {
        if let Some(r) = self.registry.as_mut() {
            if kind != FrameKind::Control {
                let class = crate::live::hub::classify(kind, payload);
                let frame = RemoteFrameRef {
                    kind,
                    timestamp,
                    keyframe: class.keyframe,
                    sequence_header: class.sequence_header,
                    payload,
                };
                r.media(key, frame);
            }
        }
        let woken = self
            .hub
            .publisher_frame(key, kind, timestamp, payload, chunk_size);
        outcome.wake_media.extend_from_slice(woken);
        self.refuse_unsupported_players(key, outcome);
        relay::check_skips(&mut self.relays, &self.hub, key, &mut outcome.logs);
        // File outputs after live players: muxing never delays the fan-out, and their disk
        // work happens off the event loop.
        match kind {
            FrameKind::Audio | FrameKind::Video => {
                let video = kind == FrameKind::Video;
                self.outputs
                    .media(key, video, timestamp, payload, now_ms, &mut outcome.logs);
                self.handle_record_events(outcome);
            }
            FrameKind::Data => self.outputs.metadata(key, payload),
            FrameKind::Control => {}
        }
    }

    /// The client stopped publishing or playing (command, or disconnect).
    fn end_role(&mut self, id: ClientId, now_ms: u64, outcome: &mut Outcome) {
        let Some(client) = self.clients.get_mut(&id) else {
            return;
        };
        let stream = client.stream.take();
        client.next_update_ms = None;
        let role = std::mem::replace(&mut client.role, Role::None);
        if let (Some(name), Role::Publisher(key) | Role::Player(key) | Role::Vod(key)) =
            (&stream, &role)
        {
            let publisher = matches!(role, Role::Publisher(_));
            self.calls_for_end(id, publisher, name, outcome);
            let kind = if publisher {
                crate::exec::ExecKind::PublishDone
            } else {
                crate::exec::ExecKind::PlayDone
            };
            self.exec_event(id, kind, key, name, outcome);
        }
        match role {
            Role::Publisher(key) => {
                self.stop_relays(&key, outcome);
                let notices = self.hub.unpublish(&key, id);
                if let Some(r) = self.registry.as_mut() {
                    r.set_local_players(&key, false);
                    r.release(&key);
                }
                self.outputs.unpublish(&key, now_ms, &mut outcome.logs);
                self.handle_record_events(outcome);
                outcome.log(
                    LogLevel::Info,
                    id,
                    format!("rtmp: unpublish \"{}/{}\"", key.app, key.name),
                );
                self.notify_players(&key, notices, outcome);
            }
            Role::Player(key) => {
                self.keep_partial_head(id);
                self.hub.stop_play(id);
                self.check_pull_of(id, &key, now_ms, outcome);
                self.note_local_players(&key);
                self.check_exec_pulls(outcome);
            }
            Role::Vod(_) | Role::None => {}
        }
        if self.clients.get(&id).is_some_and(|c| c.vod.is_some()) {
            // The file closes when its reader comes back from a job in flight.
            self.keep_partial_head(id);
            if let Some(c) = self.clients.get_mut(&id) {
                c.vod = None;
            }
        }
    }

    /// Tells players what happened to their stream's publisher.
    fn notify_players(
        &mut self,
        key: &StreamKey,
        notices: Vec<(ClientId, PlayerNotice)>,
        outcome: &mut Outcome,
    ) {
        for (player, notice) in notices {
            let Some(client) = self.clients.get(&player) else {
                continue;
            };
            if client.http.is_some() {
                // As nginx-http-flv-module: the body ends with the publish.
                if notice != PlayerNotice::PublisherStarted {
                    self.end_http_body(player, "publisher left", outcome);
                }
                continue;
            }
            let Some(settings) = client.app_settings() else {
                continue;
            };
            let (notify, restart) = (settings.live.publish_notify, settings.live.play_restart);
            let s = &client.session;
            let mut messages = Vec::new();
            match notice {
                PlayerNotice::PublisherStarted => {
                    messages.push(s.stream_event(true));
                    if notify {
                        messages.push(s.status_message(
                            "status",
                            command::NS_PLAY_PUBLISH_NOTIFY,
                            &format!("{} is now published.", key.name),
                        ));
                    }
                    if restart {
                        messages.push(s.status_message(
                            "status",
                            command::NS_PLAY_START,
                            &format!("Started playing {}.", key.name),
                        ));
                    }
                }
                PlayerNotice::PublisherLeft | PlayerNotice::Drop => {
                    if notify || notice == PlayerNotice::Drop {
                        messages.push(s.status_message(
                            "status",
                            command::NS_PLAY_UNPUBLISH_NOTIFY,
                            &format!("{} is now unpublished.", key.name),
                        ));
                    }
                    if restart {
                        messages.push(s.status_message(
                            "status",
                            command::NS_PLAY_STOP,
                            &format!("Stopped playing {}.", key.name),
                        ));
                    }
                    messages.push(s.stream_event(false));
                }
            }
            for m in messages {
                self.hub.enqueue_control(player, m);
            }
            if notice == PlayerNotice::Drop {
                outcome.close.push((
                    player,
                    CloseMode::AfterFlush,
                    "publisher left (idle_streams off)".into(),
                ));
            }
            outcome.wake.push(player);
        }
    }

    /// Timer: liveness and idle publishers. Returns the delay to the next tick.
    pub fn on_tick(&mut self, id: ClientId, now_ms: u64, outcome: &mut Outcome) -> Option<u64> {
        let client = self.clients.get_mut(&id)?;
        let verdict = client.session.tick(now_ms);
        client.collect_output();
        let mut next = match verdict {
            TickVerdict::Continue(ms) => ms,
            TickVerdict::Close(reason) => {
                outcome.log(LogLevel::Info, id, format!("rtmp: {reason}; closing"));
                outcome.close.push((id, CloseMode::Now, reason));
                return None;
            }
        };
        if let (Role::Publisher(key), Some(settings)) = (&client.role, client.app_settings()) {
            if let Some(idle) = settings.live.drop_idle_publisher_ms {
                let quiet = now_ms.saturating_sub(client.last_media_ms);
                if quiet >= idle {
                    outcome.log(
                        LogLevel::Info,
                        id,
                        format!(
                            "rtmp: dropping idle publisher of \"{}/{}\" (no media for {quiet} ms)",
                            key.app, key.name
                        ),
                    );
                    outcome
                        .close
                        .push((id, CloseMode::Now, "idle publisher".into()));
                    return None;
                }
                next = next.min(idle - quiet);
            }
        }
        if !client.out.is_empty() {
            outcome.wake.push(id);
        }
        if let Some(update) = self.update_due(id, now_ms, outcome) {
            next = next.min(update);
        }
        if let Some(read) = self.vod_tick(id, now_ms, outcome) {
            next = next.min(read);
        }
        Some(next)
    }

    /// Output for `id`: session output first, then (for players) the live queue.
    pub fn output_slices<'a>(&'a self, id: ClientId, dst: &mut [IoSlice<'a>]) -> usize {
        let Some(client) = self.clients.get(&id) else {
            return 0;
        };
        let queue = self.hub.queue(id).or(client.vod.as_ref().map(|v| &v.queue));
        // A media message cut in the middle is finished before any session output.
        let mut n = queue.map_or(0, |q| q.io_slices_partial_head(dst));
        let partial = n > 0;
        for (i, bytes) in client.out.iter().enumerate() {
            let Some(slot) = dst.get_mut(n) else {
                return n;
            };
            let start = if i == 0 { client.out_offset } else { 0 };
            *slot = IoSlice::new(bytes.get(start..).unwrap_or_default());
            n += 1;
        }
        if let Some(queue) = queue {
            // `n` <= `dst.len()`: a slot was filled for each count.
            n += queue.io_slices_after(partial, dst.get_mut(n..).unwrap_or_default());
        }
        n
    }

    /// `written` bytes of what [`Worker::output_slices`] returned went out.
    pub fn advance(&mut self, id: ClientId, mut written: usize) {
        let Some(client) = self.clients.get_mut(&id) else {
            return;
        };
        self.counters.sent(&mut client.counters, written);
        let Client {
            out,
            out_offset,
            vod,
            ..
        } = client;
        let mut queue = self
            .hub
            .queue_mut(id)
            .or(vod.as_mut().map(|v| &mut v.queue));
        if let Some(queue) = queue.as_deref_mut() {
            if let Some(rest) = queue.partial_head_len() {
                let done = written.min(rest);
                queue.advance(done);
                written -= done;
            }
        }
        while written > 0 {
            let Some(front) = out.front() else {
                break;
            };
            let left = front.len() - *out_offset;
            if written >= left {
                written -= left;
                out.pop_front();
                *out_offset = 0;
            } else {
                *out_offset += written;
                written = 0;
            }
        }
        if written > 0 {
            if let Some(queue) = queue {
                queue.advance(written);
            }
        }
    }

    /// Before a player leaves its queue (pause, stop, redirect): the rest of a partly written
    /// message moves to the session output, so the client's chunk stream stays whole.
    fn keep_partial_head(&mut self, id: ClientId) {
        let vod = self.clients.get(&id).and_then(|c| c.vod.as_ref());
        let queue = self.hub.queue(id).or(vod.map(|v| &v.queue));
        let Some(rest) = queue.and_then(|q| q.partial_head()) else {
            return;
        };
        if let Some(c) = self.clients.get_mut(&id) {
            // Ahead of anything not yet started (a partly written session reply stays first).
            let at = usize::from(c.out_offset > 0).min(c.out.len());
            c.out.insert(at, rest);
        }
    }

    /// Forgets queued output (the connection is closing without a final flush).
    pub fn discard_output(&mut self, id: ClientId) {
        if let Some(client) = self.clients.get_mut(&id) {
            client.out.clear();
            client.out_offset = 0;
        }
        self.hub.stop_play(id);
    }

    /// How long a write may stall before the client is dropped (`timeout`).
    /// How long new live media for `id` may wait to be written with what follows it
    /// (`play_flush_interval` of its application).
    pub fn play_flush_interval_ms(&self, id: ClientId) -> u64 {
        self.clients
            .get(&id)
            .and_then(|c| c.app_settings())
            .map_or(0, |s| s.live.play_flush_interval_ms)
    }

    pub fn write_timeout_ms(&self, id: ClientId) -> u64 {
        self.clients
            .get(&id)
            .map(|c| c.server.settings.core.timeout_ms)
            .unwrap_or(60_000)
    }

    /// The connection is gone.
    pub fn disconnect(&mut self, id: ClientId, now_ms: u64, outcome: &mut Outcome) {
        self.end_role(id, now_ms, outcome);
        if self.clients.get(&id).is_some_and(|c| c.http.is_some()) {
            // No on_connect was made, so no on_disconnect; nginx's http access log has it.
            self.clients.remove(&id);
            return;
        }
        if self.clients.get(&id).is_some_and(|c| c.app.is_some()) {
            let waiting = notify::Waiting::Nothing;
            self.start_call(id, Call::Disconnect, None, vec![], waiting, outcome);
        }
        if let Some(client) = self.clients.remove(&id) {
            self.access_log(id, &client, now_ms, outcome);
        }
    }

    /// Local time zone offset (minutes east of UTC) for the access log's `$time_local`.
    pub fn set_tz_offset(&mut self, minutes: i32) {
        self.tz_offset_min = minutes;
        self.outputs.set_tz_offset(minutes);
    }

    /// One line per `access_log` of the client's application (or server) when it leaves, as
    /// the C module writes them.
    fn access_log(&self, id: ClientId, client: &Client, now_ms: u64, outcome: &mut Outcome) {
        use crate::accesslog::{command_name, LogFormat, LogRecord};
        let settings = client.app_settings().unwrap_or(&client.server.settings);
        let logs = &settings.log;
        if logs.access_logs.is_empty() {
            return;
        }
        let (name, args) = client
            .logged_stream
            .as_ref()
            .map_or((String::new(), String::new()), |n| {
                (n.name.clone(), n.args.clone())
            });
        let record = LogRecord {
            connection: id,
            remote_addr: client.vars.addr.clone(),
            app: client.vars.app.clone(),
            name,
            args,
            flashver: client.vars.flashver.clone(),
            swfurl: client.vars.swfurl.clone(),
            tcurl: client.vars.tcurl.clone(),
            pageurl: client.vars.pageurl.clone(),
            command: command_name(client.played, client.published).to_string(),
            bytes_sent: client.counters.bytes_out,
            bytes_received: client.counters.bytes_in,
            unix_ms: self.unix_ms(now_ms),
            tz_offset_min: self.tz_offset_min,
            session_ms: now_ms.saturating_sub(client.connected_ms),
            ssl_protocol: client
                .tls
                .as_ref()
                .map_or(String::new(), |t| t.version.clone()),
            ssl_server_name: client
                .tls
                .as_ref()
                .and_then(|t| t.sni.clone())
                .unwrap_or_default(),
        };
        for log in &logs.access_logs {
            let Some(format) = logs.format(&log.format) else {
                continue;
            };
            let mut line = String::new();
            LogFormat::from_ops(format.ops.clone()).render(&record, &mut line);
            outcome.access.push(AccessLine {
                path: log.path.clone(),
                line,
            });
        }
    }

    /// Wall-clock milliseconds at monotonic `now_ms` (from the last [`Worker::sync_wall_clock`]).
    fn unix_ms(&self, now_ms: u64) -> u64 {
        let (mono, unix) = self.wall_clock;
        unix.saturating_add(now_ms.saturating_sub(mono))
    }

    pub fn client_count(&self) -> usize {
        self.clients.len()
    }
}

#[cfg(test)]
mod tests;
