//! Resolved settings: every value filled in with the C module's default (the defaults its
//! `merge_conf` functions set, which is what deployments run with, even where its wiki says
//! otherwise). This is what the runtime reads.

use super::access::AccessRule;
use super::listen::ListenSpec;
use super::log::{AccessLog, LogFormat};
use super::url::{HttpUrl, RtmpUrl};

/// One `play` entry: a local directory or an HTTP location (files fetched on demand).
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum PlayEntry {
    Local(String),
    Http(HttpUrl),
}

/// One `push`/`pull` line.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct RelayTarget {
    /// The remote URL.
    pub url: RtmpUrl,
    /// `app=`: remote application (default: the URL's first path segment).
    pub app: Option<String>,
    /// `name=`: local stream name this relay applies to (default: every stream).
    pub name: Option<String>,
    /// `tcUrl=`.
    pub tc_url: Option<String>,
    /// `pageUrl=`.
    pub page_url: Option<String>,
    /// `swfUrl=`.
    pub swf_url: Option<String>,
    /// `flashVer=`.
    pub flash_ver: Option<String>,
    /// `playPath=`: remote stream name (default: the rest of the URL's path, else the local name).
    pub play_path: Option<String>,
    /// `live=`.
    pub live: Option<u64>,
    /// `start=`.
    pub start: Option<u64>,
    /// `stop=`.
    pub stop: Option<u64>,
    /// `static`: pull at startup instead of on demand (pull only).
    pub static_pull: bool,
}

impl RelayTarget {
    /// A relay to `url` with no parameters.
    pub fn new(url: RtmpUrl) -> Self {
        RelayTarget {
            url,
            app: None,
            name: None,
            tc_url: None,
            page_url: None,
            swf_url: None,
            flash_ver: None,
            play_path: None,
            live: None,
            start: None,
            stop: None,
            static_pull: false,
        }
    }
}

/// One `hls_variant suffix [ATTR=value ...]` line.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct HlsVariant {
    /// Appended to the stream name to find the variant's playlist.
    pub suffix: String,
    /// `EXT-X-STREAM-INF` attributes, written after `PROGRAM-ID=1,`.
    pub attrs: Vec<String>,
}

/// `meta on|copy|off`: what metadata players get.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Meta {
    /// Metadata rebuilt from the codec headers.
    On,
    /// A copy of the publisher's `@setDataFrame`.
    Copy,
    /// None.
    Off,
}

/// `hls_fragment_naming`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum HlsNaming {
    Sequential,
    Timestamp,
    System,
}

/// `hls_fragment_slicing`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum HlsSlicing {
    Plain,
    Aligned,
}

/// `hls_type`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum HlsType {
    Live,
    Event,
}

/// `hls_container` (ours): the segment format of HLS.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum HlsContainer {
    /// MPEG-TS while every track is H.264/AAC/MP3 (what the C module writes), fMP4 (CMAF)
    /// once a track is a codec TS cannot carry here (HEVC, AV1, VP9, Opus, FLAC, AC-3).
    #[default]
    Auto,
    MpegTs,
    Fmp4,
}

/// `record_format` (ours): the container of recordings.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum RecordFormat {
    #[default]
    Flv,
    /// Fragmented MP4 with an HLS replay playlist beside it.
    Mp4,
}

/// `hls_datetime` (sergey-dryabzhinsky fork): `EXT-X-PROGRAM-DATE-TIME` source.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum HlsDatetime {
    None,
    System,
    Timestamp,
}

/// `dash_clock_compensation` (sergey-dryabzhinsky fork): MPD `UTCTiming` scheme.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum DashClock {
    Off,
    Ntp,
    HttpHead,
    HttpIso,
}

/// `notify_method`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum NotifyMethod {
    Get,
    Post,
}

/// `record` flags (a bitmask in C; several words may be given and accumulate).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct RecordFlags {
    /// `off`: explicitly no recording (also disables a recorder inherited from a parent).
    pub off: bool,
    pub audio: bool,
    pub video: bool,
    /// Video keyframes only.
    pub keyframes: bool,
    /// Recording starts and stops through `/control/record`.
    pub manual: bool,
}

impl RecordFlags {
    /// Whether anything is recorded at all (automatically or manually).
    pub fn enabled(&self) -> bool {
        !self.off && (self.audio || self.video || self.keyframes || self.manual)
    }

    /// Whether recording starts by itself when publishing starts.
    pub fn automatic(&self) -> bool {
        self.enabled() && !self.manual
    }
}

/// Core connection settings (server level in C).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct CoreSettings {
    /// `timeout` (60s): socket timeout, mainly for writes.
    pub timeout_ms: u64,
    /// `ping` (60s); 0 disables pings.
    pub ping_ms: u64,
    /// `ping_timeout` (30s).
    pub ping_timeout_ms: u64,
    /// `max_streams` (32): chunk stream ids accepted are `0..max_streams`.
    pub max_streams: u32,
    /// `ack_window` (5000000).
    pub ack_window: u32,
    /// `chunk_size` (4096): outgoing chunk size.
    pub chunk_size: u32,
    /// `max_message` (1M): largest accepted input message.
    pub max_message: u64,
    /// `out_queue` (256).
    pub out_queue: u64,
    /// `out_cork` (out_queue / 8).
    pub out_cork: u64,
    /// `busy` (off).
    pub busy: bool,
    /// `play_time_fix` (on).
    pub play_time_fix: bool,
    /// `publish_time_fix` (on).
    pub publish_time_fix: bool,
    /// `buflen` (1000ms).
    pub buflen_ms: u64,
    /// `so_keepalive` (off; deprecated, no effect).
    pub so_keepalive: bool,
}

/// `allow`/`deny` and `max_connections`.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct AccessSettings {
    /// In order; the first matching rule wins (see [`super::access_allowed`]).
    pub rules: Vec<AccessRule>,
    /// `max_connections` (unset: no limit).
    pub max_connections: Option<u64>,
}

/// Default of `play_flush_interval`: new media waits up to this long for more, so a player
/// gets a few messages per write instead of one (fewer syscalls and TCP segments per byte).
pub const DEFAULT_PLAY_FLUSH_INTERVAL_MS: u64 = 40;
/// Upper bound of `play_flush_interval`: beyond it, the wait would be felt as latency.
pub const MAX_PLAY_FLUSH_INTERVAL_MS: u64 = 1000;

/// Live fan-out settings.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct LiveSettings {
    /// `live` (off).
    pub live: bool,
    /// `meta` (on).
    pub meta: Meta,
    /// `interleave` (off).
    pub interleave: bool,
    /// `wait_key` (on in the C code).
    pub wait_key: bool,
    /// `wait_video` (off).
    pub wait_video: bool,
    /// `publish_notify` (off).
    pub publish_notify: bool,
    /// `drop_idle_publisher` (off): `None` when off or 0.
    pub drop_idle_publisher_ms: Option<u64>,
    /// `sync` (300ms); 0 (`off`) disables resync.
    pub sync_ms: u64,
    /// `play_restart` (off).
    pub play_restart: bool,
    /// `idle_streams` (on).
    pub idle_streams: bool,
    /// `buffer` (0).
    pub buffer_ms: u64,
    /// `stream_buckets` (1024; not needed here).
    pub stream_buckets: u64,
    /// `gop_cache` (on here, off in nginx-http-flv-module): a joining player starts at once
    /// from the last keyframe.
    pub gop_cache: bool,
    /// `gop_max_frame_count` (4096).
    pub gop_max_frame_count: u64,
    /// `gop_max_audio_count` (2048).
    pub gop_max_audio_count: u64,
    /// `gop_max_video_count` (2048).
    pub gop_max_video_count: u64,
    /// `play_flush_interval` (ours, [`DEFAULT_PLAY_FLUSH_INTERVAL_MS`]): how long a player's
    /// new media may wait so that several messages leave in one write; 0 writes each at once.
    pub play_flush_interval_ms: u64,
}

/// FLV recording settings of one level (an application or a `recorder{}`).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct RecordSettings {
    /// `record` (off: no flags).
    pub flags: RecordFlags,
    /// `record_path` ("").
    pub path: String,
    /// `record_suffix` (".flv"); strftime patterns allowed.
    pub suffix: String,
    /// `record_unique` (off).
    pub unique: bool,
    /// `record_append` (off).
    pub append: bool,
    /// `record_lock` (off).
    pub lock: bool,
    /// `record_max_size` (0: unlimited).
    pub max_size: u64,
    /// `record_max_frames` (0: unlimited).
    pub max_frames: u64,
    /// `record_interval` (unset: no restart).
    pub interval_ms: Option<u64>,
    /// `record_notify` (off).
    pub notify: bool,
    /// `record_interval_size` (0; sergey-dryabzhinsky fork).
    pub interval_size: u64,
    /// `record_format` (flv; ours).
    pub format: RecordFormat,
}

/// VOD (`play`) settings.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct PlaySettings {
    /// `play` entries, tried in order.
    pub entries: Vec<PlayEntry>,
    /// `play_temp_path` ("/tmp").
    pub temp_path: String,
    /// `play_local_path` ("").
    pub local_path: String,
}

/// Relay settings.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct RelaySettings {
    /// `push` targets.
    pub pushes: Vec<RelayTarget>,
    /// `pull` targets (on demand, or at startup when `static_pull`).
    pub pulls: Vec<RelayTarget>,
    /// `push_reconnect` (3s).
    pub push_reconnect_ms: u64,
    /// `pull_reconnect` (3s).
    pub pull_reconnect_ms: u64,
    /// `session_relay` (off).
    pub session_relay: bool,
    /// `relay_buffer` (5000ms).
    pub buffer_ms: u64,
    /// `relay_ssl_verify` (on): check `rtmps://` targets' certificates and host names.
    pub ssl_verify: bool,
    /// `relay_ssl_trusted_certificate` (none): extra CA certificates for `rtmps://` targets.
    pub ssl_trusted_certificate: Option<String>,
}

/// HTTP callback settings.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct NotifySettings {
    pub on_connect: Option<HttpUrl>,
    pub on_disconnect: Option<HttpUrl>,
    pub on_publish: Option<HttpUrl>,
    pub on_play: Option<HttpUrl>,
    pub on_publish_done: Option<HttpUrl>,
    pub on_play_done: Option<HttpUrl>,
    pub on_done: Option<HttpUrl>,
    pub on_record_done: Option<HttpUrl>,
    pub on_update: Option<HttpUrl>,
    /// `on_playlist` (sergey-dryabzhinsky fork).
    pub on_playlist: Option<HttpUrl>,
    /// `on_record_started` (sergey-dryabzhinsky fork).
    pub on_record_started: Option<HttpUrl>,
    /// `notify_method` (post).
    pub method: NotifyMethod,
    /// `notify_update_timeout` (30s).
    pub update_timeout_ms: u64,
    /// `notify_update_strict` (off).
    pub update_strict: bool,
    /// `notify_relay_redirect` (off).
    pub relay_redirect: bool,
    /// `netcall_timeout` (10s).
    pub netcall_timeout_ms: u64,
    /// `netcall_buffer` (1024).
    pub netcall_buffer: u64,
    /// `notify_send_redirect` (off; sergey-dryabzhinsky fork).
    pub send_redirect: bool,
    /// `notify_no_resolve` (on; nginx-http-flv-module).
    pub no_resolve: bool,
    /// `notify_ssl_verify` (on): check https callbacks' certificates and host names.
    pub ssl_verify: bool,
    /// `notify_ssl_trusted_certificate` (none): extra CA certificates for https callbacks.
    pub ssl_trusted_certificate: Option<String>,
}

/// One resolved `exec*` line: with `exec_options on`, `name=` arguments become filters.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ExecSpec {
    pub cmd: String,
    pub args: Vec<String>,
    /// Stream names this command is limited to (empty: all).
    pub names: Vec<String>,
}

/// External command settings.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ExecSettings {
    /// `exec` and `exec_push`.
    pub push: Vec<ExecSpec>,
    pub pull: Vec<ExecSpec>,
    pub publish: Vec<ExecSpec>,
    pub publish_done: Vec<ExecSpec>,
    pub play: Vec<ExecSpec>,
    pub play_done: Vec<ExecSpec>,
    pub record_done: Vec<ExecSpec>,
    /// `exec_record_started` (sergey-dryabzhinsky fork).
    pub record_started: Vec<ExecSpec>,
    /// `exec_static`.
    pub static_cmds: Vec<ExecSpec>,
    /// `respawn` (on).
    pub respawn: bool,
    /// `respawn_timeout` (5s).
    pub respawn_timeout_ms: u64,
    /// `exec_kill_signal` (KILL).
    pub kill_signal: i32,
    /// `exec_options` (off).
    pub options: bool,
}

/// HLS settings.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct HlsSettings {
    /// `hls` (off).
    pub enabled: bool,
    /// `hls_path` ("").
    pub path: String,
    /// `hls_fragment` (5s).
    pub fragment_ms: u64,
    /// `hls_max_fragment` (10 × hls_fragment).
    pub max_fragment_ms: u64,
    /// `hls_playlist_length` (30s).
    pub playlist_length_ms: u64,
    /// `hls_sync` (2ms).
    pub sync_ms: u64,
    /// `hls_continuous` (on in the C code).
    pub continuous: bool,
    /// `hls_nested` (off).
    pub nested: bool,
    /// `hls_base_url` ("").
    pub base_url: String,
    /// `hls_cleanup` (on).
    pub cleanup: bool,
    /// `hls_fragment_naming` (sequential).
    pub naming: HlsNaming,
    /// `hls_fragment_naming_granularity` (0).
    pub naming_granularity: u64,
    /// `hls_fragment_slicing` (plain).
    pub slicing: HlsSlicing,
    /// `hls_type` (live).
    pub hls_type: HlsType,
    /// `hls_container` (auto; ours).
    pub container: HlsContainer,
    /// `hls_low_latency` (off; ours): LL-HLS partial segments and playlist tags.
    pub low_latency: bool,
    /// `hls_part_duration` (333ms; ours): the parts' target duration.
    pub part_ms: u64,
    /// `hls_muxdelay` (700ms).
    pub muxdelay_ms: u64,
    /// `hls_max_audio_delay` (300ms).
    pub max_audio_delay_ms: u64,
    /// `hls_audio_buffer_size` (1M).
    pub audio_buffer_size: u64,
    /// `hls_variant` entries.
    pub variants: Vec<HlsVariant>,
    /// `hls_keys` (off).
    pub keys: bool,
    /// `hls_key_path` (defaults to `hls_path`).
    pub key_path: String,
    /// `hls_key_url` ("").
    pub key_url: String,
    /// `hls_fragments_per_key` (0: one key per session).
    pub fragments_per_key: u64,
    /// `hls_dir_access` (0744; nginx-http-flv-module).
    pub dir_access: u32,
    /// `hls_nested_index_filename` ("index"; nginx-http-flv-module).
    pub nested_index_filename: String,
    /// `hls_datetime` (none; sergey-dryabzhinsky fork).
    pub datetime: HlsDatetime,
    /// `hls_allow_client_cache` (unset: no cache header; sergey-dryabzhinsky fork).
    pub allow_client_cache: Option<bool>,
}

/// DASH settings.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct DashSettings {
    /// `dash` (off).
    pub enabled: bool,
    /// `dash_path` ("").
    pub path: String,
    /// `dash_fragment` (5s).
    pub fragment_ms: u64,
    /// `dash_playlist_length` (30s).
    pub playlist_length_ms: u64,
    /// `dash_nested` (off).
    pub nested: bool,
    /// `dash_cleanup` (on).
    pub cleanup: bool,
    /// `dash_clock_compensation` (off; sergey-dryabzhinsky fork).
    pub clock_compensation: DashClock,
    /// `dash_clock_helper_uri` ("").
    pub clock_helper_uri: String,
    /// `dash_low_latency` (off; ours): chunked CMAF segments announced before they are whole.
    pub low_latency: bool,
    /// `dash_chunk_duration` (333ms; ours): the chunks' target length.
    pub chunk_ms: u64,
}

/// RTMP access log settings.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct LogSettings {
    /// Where to log; empty when `access_log off`. Without any `access_log`, one entry with
    /// `path: None` (nginx's default access log) and the `combined` format, as in C.
    pub access_logs: Vec<AccessLog>,
    /// Formats visible at this level, the predefined `combined` first.
    pub formats: Vec<LogFormat>,
    /// `log_interval` (0; nginx-http-flv-module).
    pub interval_ms: u64,
    /// `log_size` (1M; nginx-http-flv-module).
    pub size: u64,
}

impl LogSettings {
    /// The format an access log names.
    pub fn format(&self, name: &str) -> Option<&LogFormat> {
        self.formats.iter().find(|f| f.name == name)
    }
}

/// Networking options of nginx-http-flv-module.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct NetSettings {
    /// `server_name` entries (empty: none).
    pub server_names: Vec<String>,
    /// `resolver` arguments (empty: none).
    pub resolver: Vec<String>,
    /// `resolver_timeout` (30s).
    pub resolver_timeout_ms: u64,
    /// `tcp_nodelay` (on).
    pub tcp_nodelay: bool,
    /// `tcp_nopush` (off).
    pub tcp_nopush: bool,
    /// `send_timeout` (60s).
    pub send_timeout_ms: u64,
    /// `send_lowat` (0).
    pub send_lowat: u64,
    /// `merge_slashes` (on).
    pub merge_slashes: bool,
    /// `connection_pool_size` (512; not needed here).
    pub connection_pool_size: u64,
}

/// TLS protocol versions `ssl_protocols` accepts.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum TlsProtocol {
    Tls1,
    Tls1_1,
    Tls1_2,
    Tls1_3,
}

/// `ssl_session_cache`: as nginx's (`off`, `none`, `builtin[:size]`, `shared:name:size`).
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct SessionCache {
    /// `off`: sessions are never reused.
    pub off: bool,
    /// `builtin[:size]`: OpenSSL's per-worker cache (`Some(None)`: its default size).
    pub builtin: Option<Option<u64>>,
    /// `shared:name:size`: a cache shared by the workers, `size` bytes.
    pub shared: Option<(String, u64)>,
}

/// TLS of `listen ... ssl` (RTMPS): named and behaving as in nginx's `stream` module.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SslSettings {
    /// `ssl_certificate` files (one per key type, as nginx allows).
    pub certificates: Vec<String>,
    /// `ssl_certificate_key` files, one per certificate.
    pub certificate_keys: Vec<String>,
    /// `ssl_protocols` (TLSv1.2 TLSv1.3).
    pub protocols: Vec<TlsProtocol>,
    /// `ssl_ciphers` (HIGH:!aNULL:!MD5).
    pub ciphers: String,
    /// `ssl_prefer_server_ciphers` (off).
    pub prefer_server_ciphers: bool,
    /// `ssl_session_cache` (none).
    pub session_cache: SessionCache,
    /// `ssl_session_timeout` (5m).
    pub session_timeout_ms: u64,
    /// `ssl_session_tickets` (off here, on in nginx): TLS session tickets. librtmp built with
    /// GnuTLS (rtmpdump, and encoders built on it) fails on a TLSv1.3 ticket after the
    /// handshake, so none are sent unless asked for.
    pub session_tickets: bool,
    /// `ssl_handshake_timeout` (60s): a client that has not finished its handshake by then is
    /// closed.
    pub handshake_timeout_ms: u64,
}

/// Everything one level resolves to.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Settings {
    /// The level's own `listen`s (server level only).
    pub listens: Vec<ListenSpec>,
    pub core: CoreSettings,
    pub access: AccessSettings,
    pub live: LiveSettings,
    pub record: RecordSettings,
    pub play: PlaySettings,
    pub relay: RelaySettings,
    pub notify: NotifySettings,
    pub exec: ExecSettings,
    pub hls: HlsSettings,
    pub dash: DashSettings,
    pub log: LogSettings,
    pub net: NetSettings,
    pub ssl: SslSettings,
}
