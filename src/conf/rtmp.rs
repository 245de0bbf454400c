//! [`RtmpConf`]: the settings of one level (`rtmp{}`, `server{}`, `application{}`,
//! `recorder{}`), every value optional so levels merge like nginx merges its confs.

use super::access::{parse_access_rule, AccessRule};
use super::directives::find;
use super::listen::{parse_listen_warn, ListenSpec};
use super::log::{compile_log_format, AccessLog, LogFormat, COMBINED_LOG_FORMAT};
use super::settings::*;
use super::url::{parse_http_url, parse_rtmp_url, HttpUrl};
use super::value::{parse_enum, parse_flag, parse_msec, parse_size, parse_uint};
use super::{Applied, ConfError, Context};

/// Smallest `chunk_size` (the RTMP default chunk size).
pub const MIN_CHUNK_SIZE: u32 = 128;
/// Largest useful `chunk_size`: no chunk is larger than a message and RTMP messages are at
/// most 16777215 bytes.
pub const MAX_CHUNK_SIZE: u32 = 0x00FF_FFFF;
/// Largest `max_streams`: chunk stream ids go up to 65599.
pub const MAX_STREAMS: u32 = 65_600;
/// Largest `out_queue` (messages queued per connection).
pub const MAX_OUT_QUEUE: u64 = 1 << 20;
/// Largest signal number `exec_kill_signal` accepts.
pub const MAX_SIGNAL: u64 = 64;
/// `hls_part_duration`: its default (Apple's 333 ms is a third of a second) and range.
pub const DEFAULT_PART_MS: u64 = 333;
pub const MIN_PART_MS: u64 = 100;
pub const MAX_PART_MS: u64 = 5000;

/// One `exec*` line as written: the command and its arguments (`name=` filters are split off
/// by [`RtmpConf::resolve`] when `exec_options on`).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ExecCommand {
    pub cmd: String,
    pub args: Vec<String>,
}

/// `access_log` lines of one level: when a level has any, the parent's are not inherited.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct AccessLogConf {
    /// `access_log off` was given.
    pub off: bool,
    pub logs: Vec<AccessLog>,
}

/// Declares a level's settings group: `opts` are `Option`s (unset takes the parent's value),
/// `append` lists get the parent's entries after their own (how the C module merges `allow`,
/// `exec`, `play`), `replace` lists take the parent's only when empty (nginx's usual rule).
macro_rules! conf_group {
    (
        $(#[$m:meta])*
        $name:ident {
            opts { $( $(#[$om:meta])* $o:ident : $ot:ty, )* }
            append { $( $(#[$am:meta])* $a:ident : $at:ty, )* }
            replace { $( $(#[$rm:meta])* $r:ident : $rt:ty, )* }
        }
    ) => {
        $(#[$m])*
        #[derive(Clone, Debug, Default, PartialEq, Eq)]
        pub struct $name {
            $( $(#[$om])* pub $o: Option<$ot>, )*
            $( $(#[$am])* pub $a: Vec<$at>, )*
            $( $(#[$rm])* pub $r: Vec<$rt>, )*
        }

        impl $name {
            /// Fills what this level left unset from `parent` (see the macro's rules).
            pub fn merge_from(&mut self, parent: &Self) {
                $( if self.$o.is_none() { self.$o.clone_from(&parent.$o); } )*
                $( self.$a.extend(parent.$a.iter().cloned()); )*
                $( if self.$r.is_empty() { self.$r.clone_from(&parent.$r); } )*
            }
        }
    };
}

conf_group! {
    /// Core connection settings.
    CoreConf {
        opts {
            so_keepalive: bool,
            timeout_ms: u64,
            ping_ms: u64,
            ping_timeout_ms: u64,
            max_streams: u32,
            ack_window: u32,
            chunk_size: u32,
            max_message: u64,
            out_queue: u64,
            out_cork: u64,
            busy: bool,
            play_time_fix: bool,
            publish_time_fix: bool,
            buflen_ms: u64,
        }
        append {}
        replace {}
    }
}

conf_group! {
    /// `allow`/`deny`, `max_connections`.
    AccessConf {
        opts { max_connections: u64, }
        append { rules: AccessRule, }
        replace {}
    }
}

conf_group! {
    /// Live and codec settings.
    LiveConf {
        opts {
            live: bool,
            meta: Meta,
            interleave: bool,
            wait_key: bool,
            wait_video: bool,
            publish_notify: bool,
            drop_idle_publisher_ms: u64,
            sync_ms: u64,
            play_restart: bool,
            idle_streams: bool,
            buffer_ms: u64,
            stream_buckets: u64,
            gop_cache: bool,
            gop_max_frame_count: u64,
            gop_max_audio_count: u64,
            gop_max_video_count: u64,
            play_flush_interval_ms: u64,
        }
        append {}
        replace {}
    }
}

conf_group! {
    /// Record settings.
    RecordConf {
        opts {
            flags: RecordFlags,
            path: String,
            suffix: String,
            unique: bool,
            append: bool,
            lock: bool,
            max_size: u64,
            max_frames: u64,
            interval_ms: u64,
            notify: bool,
            interval_size: u64,
            format: RecordFormat,
        }
        append {}
        replace {}
    }
}

conf_group! {
    /// VOD settings.
    PlayConf {
        opts { temp_path: String, local_path: String, }
        append { entries: PlayEntry, }
        replace {}
    }
}

conf_group! {
    /// Relay settings (`push`/`pull` are application-only, so they are never inherited in
    /// practice).
    RelayConf {
        opts {
            push_reconnect_ms: u64,
            pull_reconnect_ms: u64,
            session_relay: bool,
            buffer_ms: u64,
            ssl_verify: bool,
            ssl_trusted_certificate: String,
        }
        append {}
        replace { pushes: RelayTarget, pulls: RelayTarget, }
    }
}

conf_group! {
    /// Callback settings.
    NotifyConf {
        opts {
            on_connect: HttpUrl,
            on_disconnect: HttpUrl,
            on_publish: HttpUrl,
            on_play: HttpUrl,
            on_publish_done: HttpUrl,
            on_play_done: HttpUrl,
            on_done: HttpUrl,
            on_record_done: HttpUrl,
            on_update: HttpUrl,
            on_playlist: HttpUrl,
            on_record_started: HttpUrl,
            method: NotifyMethod,
            update_timeout_ms: u64,
            update_strict: bool,
            relay_redirect: bool,
            netcall_timeout_ms: u64,
            netcall_buffer: u64,
            send_redirect: bool,
            no_resolve: bool,
            ssl_verify: bool,
            ssl_trusted_certificate: String,
        }
        append {}
        replace {}
    }
}

conf_group! {
    /// External command settings.
    ExecConf {
        opts {
            respawn: bool,
            respawn_timeout_ms: u64,
            kill_signal: i32,
            options: bool,
        }
        append {
            push: ExecCommand,
            pull: ExecCommand,
            publish: ExecCommand,
            publish_done: ExecCommand,
            play: ExecCommand,
            play_done: ExecCommand,
            record_done: ExecCommand,
            record_started: ExecCommand,
            static_cmds: ExecCommand,
        }
        replace {}
    }
}

conf_group! {
    /// HLS settings.
    HlsConf {
        opts {
            enabled: bool,
            path: String,
            fragment_ms: u64,
            max_fragment_ms: u64,
            playlist_length_ms: u64,
            sync_ms: u64,
            continuous: bool,
            nested: bool,
            base_url: String,
            cleanup: bool,
            naming: HlsNaming,
            naming_granularity: u64,
            slicing: HlsSlicing,
            hls_type: HlsType,
            container: HlsContainer,
            low_latency: bool,
            part_ms: u64,
            muxdelay_ms: u64,
            max_audio_delay_ms: u64,
            audio_buffer_size: u64,
            keys: bool,
            key_path: String,
            key_url: String,
            fragments_per_key: u64,
            dir_access: u32,
            nested_index_filename: String,
            datetime: HlsDatetime,
            allow_client_cache: bool,
        }
        append {}
        replace { variants: HlsVariant, }
    }
}

conf_group! {
    /// DASH settings.
    DashConf {
        opts {
            enabled: bool,
            path: String,
            fragment_ms: u64,
            playlist_length_ms: u64,
            nested: bool,
            cleanup: bool,
            clock_compensation: DashClock,
            clock_helper_uri: String,
            low_latency: bool,
            chunk_ms: u64,
        }
        append {}
        replace {}
    }
}

conf_group! {
    /// Access log settings. Formats are global in C; here each level sees its own and its
    /// parents'.
    LogConf {
        opts {
            access_log: AccessLogConf,
            interval_ms: u64,
            size: u64,
        }
        append { formats: LogFormat, }
        replace {}
    }
}

conf_group! {
    /// Networking options of nginx-http-flv-module.
    NetConf {
        opts {
            resolver: Vec<String>,
            resolver_timeout_ms: u64,
            tcp_nodelay: bool,
            tcp_nopush: bool,
            send_timeout_ms: u64,
            send_lowat: u64,
            merge_slashes: bool,
            connection_pool_size: u64,
        }
        append {}
        replace { server_names: String, }
    }
}

conf_group! {
    /// TLS of `listen ... ssl` (RTMPS), as nginx's stream module names it.
    SslConf {
        opts {
            protocols: Vec<TlsProtocol>,
            ciphers: String,
            prefer_server_ciphers: bool,
            session_cache: SessionCache,
            session_timeout_ms: u64,
            session_tickets: bool,
            handshake_timeout_ms: u64,
        }
        append {}
        replace { certificates: String, certificate_keys: String, }
    }
}

/// All settings of one level, as written. Fields are `None`/empty when the level does not set
/// them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RtmpConf {
    /// `listen` directives (server level; never inherited).
    pub listens: Vec<ListenSpec>,
    pub core: CoreConf,
    pub access: AccessConf,
    pub live: LiveConf,
    pub record: RecordConf,
    pub play: PlayConf,
    pub relay: RelayConf,
    pub notify: NotifyConf,
    pub exec: ExecConf,
    pub hls: HlsConf,
    pub dash: DashConf,
    pub log: LogConf,
    pub net: NetConf,
    pub ssl: SslConf,
}

// ---- value helpers: each returns nginx's message on failure -------------------------------

fn invalid(d: &'static str, v: &str) -> ConfError {
    ConfError::InvalidValue {
        directive: d,
        value: v.to_owned(),
        expected: String::new(),
    }
}

fn invalid_expect(d: &'static str, v: &str, expected: String) -> ConfError {
    ConfError::InvalidValue {
        directive: d,
        value: v.to_owned(),
        expected,
    }
}

fn flag(d: &'static str, v: &str) -> Result<bool, ConfError> {
    parse_flag(v).ok_or_else(|| invalid_expect(d, v, "it must be \"on\" or \"off\"".to_owned()))
}

fn msec(d: &'static str, v: &str) -> Result<u64, ConfError> {
    parse_msec(v).ok_or_else(|| invalid(d, v))
}

/// The live module's msec slot: `off` means 0.
/// `hls_part_duration` / `dash_chunk_duration`: a time within [`MIN_PART_MS`, `MAX_PART_MS`].
fn part_duration(d: &'static str, v: &str) -> Result<u64, ConfError> {
    msec(d, v).and_then(|ms| {
        if (MIN_PART_MS..=MAX_PART_MS).contains(&ms) {
            Ok(ms)
        } else {
            Err(invalid_expect(
                d,
                v,
                format!("it must be between {MIN_PART_MS}ms and {MAX_PART_MS}ms"),
            ))
        }
    })
}

fn msec_or_off(d: &'static str, v: &str) -> Result<u64, ConfError> {
    if v.eq_ignore_ascii_case("off") {
        Ok(0)
    } else {
        msec(d, v)
    }
}

fn size(d: &'static str, v: &str) -> Result<u64, ConfError> {
    parse_size(v).ok_or_else(|| invalid(d, v))
}

fn num(d: &'static str, v: &str) -> Result<u64, ConfError> {
    parse_uint(v).ok_or_else(|| invalid(d, v))
}

fn in_range(d: &'static str, v: &str, n: u64, lo: u64, hi: u64) -> Result<u64, ConfError> {
    if (lo..=hi).contains(&n) {
        Ok(n)
    } else {
        Err(invalid_expect(
            d,
            v,
            format!("it must be between {lo} and {hi}"),
        ))
    }
}

fn one_of<T: Copy>(d: &'static str, v: &str, names: &[(&str, T)]) -> Result<T, ConfError> {
    parse_enum(v, names).ok_or_else(|| {
        let quoted: Vec<String> = names.iter().map(|(n, _)| format!("\"{n}\"")).collect();
        let list = match quoted.split_last() {
            Some((last, [])) => last.clone(),
            Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
            None => String::new(),
        };
        invalid_expect(d, v, format!("it must be {list}"))
    })
}

/// Sets a single-valued setting, refusing a second occurrence like nginx's slots.
fn put<T>(
    slot: &mut Option<T>,
    d: &'static str,
    parse: impl FnOnce() -> Result<T, ConfError>,
) -> Applied {
    if slot.is_some() {
        return Err(ConfError::Duplicate(d));
    }
    *slot = Some(parse()?);
    Ok(None)
}

/// Sets a setting whose C handler silently overwrites an earlier value: accepted, last one
/// wins, with a warning.
fn overwrite<T>(
    slot: &mut Option<T>,
    d: &'static str,
    parse: impl FnOnce() -> Result<T, ConfError>,
) -> Applied {
    let value = parse()?;
    let warning = slot
        .is_some()
        .then(|| format!("\"{d}\" directive is duplicate, the last value is used"));
    *slot = Some(value);
    Ok(warning)
}

fn http_url(d: &'static str, v: &str) -> Result<HttpUrl, ConfError> {
    parse_http_url(v).map_err(|reason| {
        ConfError::Other(format!("{reason} in url \"{v}\" of the \"{d}\" directive"))
    })
}

const META: &[(&str, Meta)] = &[("on", Meta::On), ("copy", Meta::Copy), ("off", Meta::Off)];
const NAMING: &[(&str, HlsNaming)] = &[
    ("sequential", HlsNaming::Sequential),
    ("timestamp", HlsNaming::Timestamp),
    ("system", HlsNaming::System),
];
const SLICING: &[(&str, HlsSlicing)] = &[
    ("plain", HlsSlicing::Plain),
    ("aligned", HlsSlicing::Aligned),
];
const HLS_TYPE: &[(&str, HlsType)] = &[("live", HlsType::Live), ("event", HlsType::Event)];
const HLS_CONTAINER: &[(&str, HlsContainer)] = &[
    ("auto", HlsContainer::Auto),
    ("mpegts", HlsContainer::MpegTs),
    ("fmp4", HlsContainer::Fmp4),
];
const RECORD_FORMAT: &[(&str, RecordFormat)] =
    &[("flv", RecordFormat::Flv), ("mp4", RecordFormat::Mp4)];
const DATETIME: &[(&str, HlsDatetime)] = &[
    ("none", HlsDatetime::None),
    ("system", HlsDatetime::System),
    ("timestamp", HlsDatetime::Timestamp),
];
const CLIENT_CACHE: &[(&str, bool)] = &[("enabled", true), ("disabled", false)];
const DASH_CLOCK: &[(&str, DashClock)] = &[
    ("off", DashClock::Off),
    ("ntp", DashClock::Ntp),
    ("http_head", DashClock::HttpHead),
    ("http_iso", DashClock::HttpIso),
];
const METHOD: &[(&str, NotifyMethod)] = &[("get", NotifyMethod::Get), ("post", NotifyMethod::Post)];

/// Signal names `exec_kill_signal` accepts (POSIX.1-1990, as the C module), with or without
/// a `SIG` prefix.
const SIGNALS: &[(&str, i32)] = &[
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("ILL", libc::SIGILL),
    ("ABRT", libc::SIGABRT),
    ("FPE", libc::SIGFPE),
    ("KILL", libc::SIGKILL),
    ("SEGV", libc::SIGSEGV),
    ("PIPE", libc::SIGPIPE),
    ("ALRM", libc::SIGALRM),
    ("TERM", libc::SIGTERM),
    ("USR1", libc::SIGUSR1),
    ("USR2", libc::SIGUSR2),
    ("CHLD", libc::SIGCHLD),
    ("CONT", libc::SIGCONT),
    ("STOP", libc::SIGSTOP),
    ("TSTP", libc::SIGTSTP),
    ("TTIN", libc::SIGTTIN),
    ("TTOU", libc::SIGTTOU),
];

fn kill_signal(d: &'static str, v: &str) -> Result<i32, ConfError> {
    if let Some(n) = parse_uint(v) {
        return in_range(d, v, n, 1, MAX_SIGNAL).map(|n| n as i32);
    }
    let name = if starts_with_ignore_case(v, "SIG") {
        v.get(3..).unwrap_or(v)
    } else {
        v
    };
    parse_enum(name, SIGNALS).ok_or_else(|| {
        invalid_expect(
            d,
            v,
            "it must be a signal number or name like KILL or TERM".to_owned(),
        )
    })
}

/// `record` words (a bitmask: several words and several directives accumulate).
fn record_flags(d: &'static str, slot: &mut Option<RecordFlags>, args: &[&str]) -> Applied {
    let flags = slot.get_or_insert_with(RecordFlags::default);
    let mut warning = None;
    for &word in args {
        let lower = word.to_ascii_lowercase();
        let already = match lower.as_str() {
            "off" => std::mem::replace(&mut flags.off, true),
            "all" => {
                let had = flags.audio && flags.video;
                flags.audio = true;
                flags.video = true;
                had
            }
            "audio" => std::mem::replace(&mut flags.audio, true),
            "video" => std::mem::replace(&mut flags.video, true),
            "keyframes" => std::mem::replace(&mut flags.keyframes, true),
            "manual" => std::mem::replace(&mut flags.manual, true),
            _ => return Err(invalid_expect(
                d,
                word,
                "it must be \"off\", \"all\", \"audio\", \"video\", \"keyframes\" or \"manual\""
                    .to_owned(),
            )),
        };
        if already {
            warning = Some(format!("duplicate value \"{word}\" in \"{d}\" directive"));
        }
    }
    Ok(warning)
}

/// `push`/`pull url [key=value ...] [static]`.
fn relay_target(d: &'static str, args: &[&str]) -> Result<RelayTarget, ConfError> {
    let (first, params) = args.split_first().ok_or(ConfError::ArgCount(d))?;
    let url = parse_rtmp_url(first).map_err(|reason| {
        ConfError::Other(format!(
            "{reason} in url \"{first}\" of the \"{d}\" directive"
        ))
    })?;
    let mut t = RelayTarget::new(url);
    for &p in params {
        let (key, value) = p.split_once('=').unwrap_or((p, "1"));
        let number = || parse_uint(value).ok_or_else(|| invalid(d, p));
        let key_lower = key.to_ascii_lowercase();
        match key_lower.as_str() {
            "app" => t.app = Some(value.to_owned()),
            "name" => t.name = Some(value.to_owned()),
            "tcurl" => t.tc_url = Some(value.to_owned()),
            "pageurl" => t.page_url = Some(value.to_owned()),
            "swfurl" => t.swf_url = Some(value.to_owned()),
            "flashver" => t.flash_ver = Some(value.to_owned()),
            "playpath" => t.play_path = Some(value.to_owned()),
            "live" => t.live = Some(number()?),
            "start" => t.start = Some(number()?),
            "stop" => t.stop = Some(number()?),
            "static" => t.static_pull = number()? != 0,
            _ => {
                return Err(ConfError::InvalidParameter {
                    directive: d,
                    value: p.to_owned(),
                })
            }
        }
    }
    if t.static_pull {
        if d == "push" {
            return Err(ConfError::Other("static push is not allowed".to_owned()));
        }
        if t.name.as_deref().is_none_or(str::is_empty) {
            return Err(ConfError::Other(
                "stream name missing in static pull declaration".to_owned(),
            ));
        }
    }
    Ok(t)
}

fn exec_command(args: &[&str]) -> ExecCommand {
    let (cmd, rest) = args.split_first().map_or(("", &[][..]), |(c, r)| (*c, r));
    ExecCommand {
        cmd: cmd.to_owned(),
        args: rest.iter().map(|s| (*s).to_owned()).collect(),
    }
}

/// `hls_dir_access 0755`: exactly four octal digits with a leading 0 (nginx-http-flv-module).
fn dir_access(d: &'static str, v: &str) -> Result<u32, ConfError> {
    let ok = v.len() == 4 && v.starts_with('0') && v.bytes().all(|c| (b'0'..=b'7').contains(&c));
    if !ok {
        return Err(invalid_expect(
            d,
            v,
            "it must be a 4-digit octal mode like 0755".to_owned(),
        ));
    }
    u32::from_str_radix(v, 8).map_err(|_| invalid(d, v))
}

/// `server_name`: nginx-http-flv-module's checks on wildcard names.
fn server_names(d: &'static str, args: &[&str]) -> Result<Vec<String>, ConfError> {
    args.iter()
        .map(|&n| {
            let bad = n.is_empty()
                || (n.starts_with('*') && (n.len() < 3 || n.as_bytes().get(1) != Some(&b'.')))
                || (n.starts_with('.') && n.len() < 2);
            if bad {
                Err(ConfError::Other(format!(
                    "server name \"{n}\" is invalid in \"{d}\" directive"
                )))
            } else {
                Ok(n.to_ascii_lowercase())
            }
        })
        .collect()
}

impl RtmpConf {
    /// Applies one directive occurrence (`args` excludes the name) to this level.
    ///
    /// Checks the argument count again (cheap, and keeps this safe to call directly), the
    /// values, and duplicates. Does not check the context: the glue knows the level.
    /// `Ok(Some(text))` accepts the directive and asks the glue to log `text` at `[warn]`.
    /// Main-context and http directives are refused here: see [`super::MainConf`] and
    /// [`super::HttpConf`].
    pub fn apply(&mut self, name: &str, args: &[&str]) -> Applied {
        let dir = find(name).ok_or_else(|| ConfError::UnknownDirective(name.to_owned()))?;
        if dir
            .contexts
            .iter()
            .all(|c| matches!(c, Context::Main | Context::Http))
        {
            return Err(ConfError::NotAllowedHere(dir.name));
        }
        dir.check_args(args.len())?;
        let d = dir.name;
        let v = args.first().copied().unwrap_or("");
        let (c, ac, lv, rec, pl) = (
            &mut self.core,
            &mut self.access,
            &mut self.live,
            &mut self.record,
            &mut self.play,
        );
        let (rl, nt, ex, hls, dash) = (
            &mut self.relay,
            &mut self.notify,
            &mut self.exec,
            &mut self.hls,
            &mut self.dash,
        );
        let (log, net) = (&mut self.log, &mut self.net);
        match d {
            // Core.
            "listen" => {
                let (spec, warning) = parse_listen_warn(args)?;
                if self.listens.iter().any(|l| l.same_address(&spec)) {
                    return Err(ConfError::Other(format!(
                        "duplicate \"{v}\" address and port pair"
                    )));
                }
                self.listens.push(spec);
                Ok(warning)
            }
            "so_keepalive" => put(&mut c.so_keepalive, d, || flag(d, v)),
            "timeout" => put(&mut c.timeout_ms, d, || msec(d, v)),
            "ping" => put(&mut c.ping_ms, d, || msec(d, v)),
            "ping_timeout" => put(&mut c.ping_timeout_ms, d, || msec(d, v)),
            "max_streams" => put(&mut c.max_streams, d, || {
                in_range(d, v, num(d, v)?, 1, u64::from(MAX_STREAMS)).map(|n| n as u32)
            }),
            "ack_window" => put(&mut c.ack_window, d, || {
                in_range(d, v, num(d, v)?, 0, u64::from(u32::MAX)).map(|n| n as u32)
            }),
            "chunk_size" => put(&mut c.chunk_size, d, || {
                let n = num(d, v)?;
                in_range(
                    d,
                    v,
                    n,
                    u64::from(MIN_CHUNK_SIZE),
                    u64::from(MAX_CHUNK_SIZE),
                )
                .map(|n| n as u32)
            }),
            "max_message" => put(&mut c.max_message, d, || {
                in_range(d, v, size(d, v)?, 1, super::value::MAX_PARSED_VALUE)
            }),
            "out_queue" => put(&mut c.out_queue, d, || {
                in_range(d, v, size(d, v)?, 1, MAX_OUT_QUEUE)
            }),
            "out_cork" => put(&mut c.out_cork, d, || size(d, v)),
            "busy" => put(&mut c.busy, d, || flag(d, v)),
            "play_time_fix" => put(&mut c.play_time_fix, d, || flag(d, v)),
            "publish_time_fix" => put(&mut c.publish_time_fix, d, || flag(d, v)),
            "buflen" => put(&mut c.buflen_ms, d, || msec(d, v)),

            // Access.
            "allow" | "deny" => {
                let (rule, warning) = parse_access_rule(d, args)?;
                ac.rules.push(rule);
                Ok(warning)
            }
            "max_connections" => put(&mut ac.max_connections, d, || num(d, v)),

            // Live.
            "live" => put(&mut lv.live, d, || flag(d, v)),
            "meta" => put(&mut lv.meta, d, || one_of(d, v, META)),
            "interleave" => put(&mut lv.interleave, d, || flag(d, v)),
            "wait_key" => put(&mut lv.wait_key, d, || flag(d, v)),
            "wait_video" => put(&mut lv.wait_video, d, || flag(d, v)),
            "publish_notify" => put(&mut lv.publish_notify, d, || flag(d, v)),
            "drop_idle_publisher" => put(&mut lv.drop_idle_publisher_ms, d, || msec_or_off(d, v)),
            "sync" => put(&mut lv.sync_ms, d, || msec_or_off(d, v)),
            "play_restart" => put(&mut lv.play_restart, d, || flag(d, v)),
            "idle_streams" => put(&mut lv.idle_streams, d, || flag(d, v)),
            "buffer" => put(&mut lv.buffer_ms, d, || msec(d, v)),
            "stream_buckets" => put(&mut lv.stream_buckets, d, || {
                in_range(d, v, num(d, v)?, 1, u64::from(u32::MAX))
            }),
            "gop_cache" => put(&mut lv.gop_cache, d, || flag(d, v)),
            "gop_max_frame_count" => put(&mut lv.gop_max_frame_count, d, || num(d, v)),
            "gop_max_audio_count" => put(&mut lv.gop_max_audio_count, d, || num(d, v)),
            "gop_max_video_count" => put(&mut lv.gop_max_video_count, d, || num(d, v)),
            "play_flush_interval" => put(&mut lv.play_flush_interval_ms, d, || {
                let ms = msec_or_off(d, v)?;
                if ms > MAX_PLAY_FLUSH_INTERVAL_MS {
                    let limit = format!("it must be at most {MAX_PLAY_FLUSH_INTERVAL_MS}ms");
                    return Err(invalid_expect(d, v, limit));
                }
                Ok(ms)
            }),

            // Record.
            "record" => record_flags(d, &mut rec.flags, args),
            "record_path" => put(&mut rec.path, d, || Ok(v.to_owned())),
            "record_suffix" => put(&mut rec.suffix, d, || Ok(v.to_owned())),
            "record_unique" => put(&mut rec.unique, d, || flag(d, v)),
            "record_append" => put(&mut rec.append, d, || flag(d, v)),
            "record_lock" => put(&mut rec.lock, d, || flag(d, v)),
            "record_max_size" => put(&mut rec.max_size, d, || size(d, v)),
            "record_max_frames" => put(&mut rec.max_frames, d, || size(d, v)),
            "record_interval" => put(&mut rec.interval_ms, d, || msec(d, v)),
            "record_notify" => put(&mut rec.notify, d, || flag(d, v)),
            "record_interval_size" => put(&mut rec.interval_size, d, || size(d, v)),
            "record_format" => put(&mut rec.format, d, || one_of(d, v, RECORD_FORMAT)),

            // VOD.
            "play" => {
                let mut https = false;
                for &a in args {
                    let is_https = starts_with_ignore_case(a, "https://");
                    let is_http = starts_with_ignore_case(a, "http://") || is_https;
                    let entry = if is_http {
                        https |= is_https;
                        PlayEntry::Http(http_url(d, a)?)
                    } else {
                        PlayEntry::Local(a.to_owned())
                    };
                    pl.entries.push(entry);
                }
                Ok(https.then(|| {
                    "\"play\" cannot fetch from https:// locations (as the C module): they are \
                     skipped"
                        .to_string()
                }))
            }
            "play_temp_path" => put(&mut pl.temp_path, d, || Ok(v.to_owned())),
            "play_local_path" => put(&mut pl.local_path, d, || Ok(v.to_owned())),

            // Relay.
            "push" => {
                rl.pushes.push(relay_target(d, args)?);
                Ok(None)
            }
            "pull" => {
                rl.pulls.push(relay_target(d, args)?);
                Ok(None)
            }
            "push_reconnect" => put(&mut rl.push_reconnect_ms, d, || msec(d, v)),
            "pull_reconnect" => put(&mut rl.pull_reconnect_ms, d, || msec(d, v)),
            "session_relay" => put(&mut rl.session_relay, d, || flag(d, v)),
            "relay_buffer" => put(&mut rl.buffer_ms, d, || msec(d, v)),
            "relay_ssl_verify" => put(&mut rl.ssl_verify, d, || flag(d, v)),
            "relay_ssl_trusted_certificate" => {
                put(&mut rl.ssl_trusted_certificate, d, || Ok(v.to_owned()))
            }

            // Notify.
            "on_connect" => overwrite(&mut nt.on_connect, d, || http_url(d, v)),
            "on_disconnect" => overwrite(&mut nt.on_disconnect, d, || http_url(d, v)),
            "on_publish" => overwrite(&mut nt.on_publish, d, || http_url(d, v)),
            "on_play" => overwrite(&mut nt.on_play, d, || http_url(d, v)),
            "on_publish_done" => overwrite(&mut nt.on_publish_done, d, || http_url(d, v)),
            "on_play_done" => overwrite(&mut nt.on_play_done, d, || http_url(d, v)),
            "on_done" => overwrite(&mut nt.on_done, d, || http_url(d, v)),
            "on_record_done" => overwrite(&mut nt.on_record_done, d, || http_url(d, v)),
            "on_update" => overwrite(&mut nt.on_update, d, || http_url(d, v)),
            "on_playlist" => overwrite(&mut nt.on_playlist, d, || http_url(d, v)),
            "on_record_started" => overwrite(&mut nt.on_record_started, d, || http_url(d, v)),
            "notify_method" => overwrite(&mut nt.method, d, || one_of(d, v, METHOD)),
            "notify_update_timeout" => put(&mut nt.update_timeout_ms, d, || msec(d, v)),
            "notify_update_strict" => put(&mut nt.update_strict, d, || flag(d, v)),
            "notify_relay_redirect" => put(&mut nt.relay_redirect, d, || flag(d, v)),
            "netcall_timeout" => put(&mut nt.netcall_timeout_ms, d, || msec(d, v)),
            "netcall_buffer" => put(&mut nt.netcall_buffer, d, || size(d, v)),
            "notify_send_redirect" => overwrite(&mut nt.send_redirect, d, || flag(d, v)),
            "notify_no_resolve" => put(&mut nt.no_resolve, d, || flag(d, v)),
            "notify_ssl_verify" => put(&mut nt.ssl_verify, d, || flag(d, v)),
            "notify_ssl_trusted_certificate" => {
                put(&mut nt.ssl_trusted_certificate, d, || Ok(v.to_owned()))
            }

            // Exec.
            "exec" | "exec_push" => push_exec(&mut ex.push, args),
            "exec_pull" => push_exec(&mut ex.pull, args),
            "exec_publish" => push_exec(&mut ex.publish, args),
            "exec_publish_done" => push_exec(&mut ex.publish_done, args),
            "exec_play" => push_exec(&mut ex.play, args),
            "exec_play_done" => push_exec(&mut ex.play_done, args),
            "exec_record_done" => push_exec(&mut ex.record_done, args),
            "exec_record_started" => push_exec(&mut ex.record_started, args),
            "exec_static" => push_exec(&mut ex.static_cmds, args),
            "respawn" => put(&mut ex.respawn, d, || flag(d, v)),
            "respawn_timeout" => put(&mut ex.respawn_timeout_ms, d, || msec(d, v)),
            "exec_kill_signal" => overwrite(&mut ex.kill_signal, d, || kill_signal(d, v)),
            "exec_options" => put(&mut ex.options, d, || flag(d, v)),

            // HLS.
            "hls" => put(&mut hls.enabled, d, || flag(d, v)),
            "hls_path" => put(&mut hls.path, d, || Ok(v.to_owned())),
            "hls_fragment" => put(&mut hls.fragment_ms, d, || msec(d, v)),
            "hls_max_fragment" => put(&mut hls.max_fragment_ms, d, || msec(d, v)),
            "hls_playlist_length" => put(&mut hls.playlist_length_ms, d, || msec(d, v)),
            "hls_sync" => put(&mut hls.sync_ms, d, || msec(d, v)),
            "hls_continuous" => put(&mut hls.continuous, d, || flag(d, v)),
            "hls_nested" => put(&mut hls.nested, d, || flag(d, v)),
            "hls_base_url" => put(&mut hls.base_url, d, || Ok(v.to_owned())),
            "hls_cleanup" => put(&mut hls.cleanup, d, || flag(d, v)),
            "hls_fragment_naming" => put(&mut hls.naming, d, || one_of(d, v, NAMING)),
            "hls_fragment_naming_granularity" => put(&mut hls.naming_granularity, d, || num(d, v)),
            "hls_fragment_slicing" => put(&mut hls.slicing, d, || one_of(d, v, SLICING)),
            "hls_type" => put(&mut hls.hls_type, d, || one_of(d, v, HLS_TYPE)),
            "hls_container" => put(&mut hls.container, d, || one_of(d, v, HLS_CONTAINER)),
            "hls_low_latency" => put(&mut hls.low_latency, d, || flag(d, v)),
            "hls_part_duration" => put(&mut hls.part_ms, d, || part_duration(d, v)),
            "hls_muxdelay" => put(&mut hls.muxdelay_ms, d, || msec(d, v)),
            "hls_max_audio_delay" => put(&mut hls.max_audio_delay_ms, d, || msec(d, v)),
            "hls_audio_buffer_size" => put(&mut hls.audio_buffer_size, d, || size(d, v)),
            "hls_variant" => {
                let (suffix, attrs) = args.split_first().ok_or(ConfError::ArgCount(d))?;
                if let Some(bad) = attrs
                    .iter()
                    .find(|a| a.split_once('=').is_none_or(|(k, _)| k.is_empty()))
                {
                    return Err(ConfError::InvalidParameter {
                        directive: d,
                        value: (*bad).to_owned(),
                    });
                }
                hls.variants.push(HlsVariant {
                    suffix: (*suffix).to_owned(),
                    attrs: attrs.iter().map(|s| (*s).to_owned()).collect(),
                });
                Ok(None)
            }
            "hls_keys" => put(&mut hls.keys, d, || flag(d, v)),
            "hls_key_path" => put(&mut hls.key_path, d, || Ok(v.to_owned())),
            "hls_key_url" => put(&mut hls.key_url, d, || Ok(v.to_owned())),
            "hls_fragments_per_key" => put(&mut hls.fragments_per_key, d, || num(d, v)),
            "hls_dir_access" => put(&mut hls.dir_access, d, || dir_access(d, v)),
            "hls_nested_index_filename" => {
                put(&mut hls.nested_index_filename, d, || Ok(v.to_owned()))
            }
            "hls_datetime" => put(&mut hls.datetime, d, || one_of(d, v, DATETIME)),
            "hls_allow_client_cache" => put(&mut hls.allow_client_cache, d, || {
                one_of(d, v, CLIENT_CACHE)
            }),

            // DASH.
            "dash" => put(&mut dash.enabled, d, || flag(d, v)),
            "dash_path" => put(&mut dash.path, d, || Ok(v.to_owned())),
            "dash_fragment" => put(&mut dash.fragment_ms, d, || msec(d, v)),
            "dash_playlist_length" => put(&mut dash.playlist_length_ms, d, || msec(d, v)),
            "dash_nested" => put(&mut dash.nested, d, || flag(d, v)),
            "dash_cleanup" => put(&mut dash.cleanup, d, || flag(d, v)),
            "dash_clock_compensation" => {
                put(&mut dash.clock_compensation, d, || one_of(d, v, DASH_CLOCK))
            }
            "dash_clock_helper_uri" => put(&mut dash.clock_helper_uri, d, || Ok(v.to_owned())),
            "dash_low_latency" => put(&mut dash.low_latency, d, || flag(d, v)),
            "dash_chunk_duration" => put(&mut dash.chunk_ms, d, || part_duration(d, v)),

            // Access log.
            "access_log" => {
                let conf = log.access_log.get_or_insert_with(AccessLogConf::default);
                if v == "off" {
                    conf.off = true;
                } else {
                    conf.logs.push(AccessLog {
                        path: Some(v.to_owned()),
                        format: args.get(1).map_or("combined", |f| *f).to_owned(),
                    });
                }
                Ok(None)
            }
            "log_format" => {
                let (fname, parts) = args.split_first().ok_or(ConfError::ArgCount(d))?;
                if *fname == "combined" || log.formats.iter().any(|f| f.name == *fname) {
                    return Err(ConfError::Other(format!(
                        "duplicate \"log_format\" name \"{fname}\""
                    )));
                }
                let ops = compile_log_format(parts)?;
                log.formats.push(LogFormat {
                    name: (*fname).to_owned(),
                    ops,
                });
                Ok(None)
            }
            "log_interval" => put(&mut log.interval_ms, d, || msec(d, v)),
            "log_size" => put(&mut log.size, d, || size(d, v)),

            // nginx-http-flv-module networking.
            "server_name" => {
                net.server_names.extend(server_names(d, args)?);
                Ok(None)
            }
            "resolver" => put(&mut net.resolver, d, || {
                Ok(args.iter().map(|s| (*s).to_owned()).collect())
            }),
            "resolver_timeout" => put(&mut net.resolver_timeout_ms, d, || msec(d, v)),
            "tcp_nodelay" => put(&mut net.tcp_nodelay, d, || flag(d, v)),
            "tcp_nopush" => put(&mut net.tcp_nopush, d, || flag(d, v)),
            "send_timeout" => put(&mut net.send_timeout_ms, d, || msec(d, v)),
            "send_lowat" => put(&mut net.send_lowat, d, || size(d, v)),
            "merge_slashes" => put(&mut net.merge_slashes, d, || flag(d, v)),
            "connection_pool_size" => put(&mut net.connection_pool_size, d, || size(d, v)),

            // TLS (RTMPS).
            "ssl_certificate" | "ssl_certificate_key" => {
                // Variables are checked here so that `nginx -t` names the line.
                super::certpath::CertPath::parse(v)
                    .map_err(|e| ConfError::Other(format!("{e} in \"{d}\" directive")))?;
                let list = if d == "ssl_certificate" {
                    &mut self.ssl.certificates
                } else {
                    &mut self.ssl.certificate_keys
                };
                list.push(v.to_owned());
                Ok(None)
            }
            "ssl_protocols" => {
                let protocols = tls_protocols(d, args)?;
                put(&mut self.ssl.protocols, d, || Ok(protocols))
            }
            "ssl_ciphers" => put(&mut self.ssl.ciphers, d, || Ok(v.to_owned())),
            "ssl_prefer_server_ciphers" => {
                put(&mut self.ssl.prefer_server_ciphers, d, || flag(d, v))
            }
            "ssl_session_cache" => {
                let cache = session_cache(d, args)?;
                put(&mut self.ssl.session_cache, d, || Ok(cache))
            }
            "ssl_session_timeout" => put(&mut self.ssl.session_timeout_ms, d, || msec(d, v)),
            "ssl_handshake_timeout" => put(&mut self.ssl.handshake_timeout_ms, d, || msec(d, v)),
            "ssl_session_tickets" => put(&mut self.ssl.session_tickets, d, || flag(d, v)),

            _ => Err(ConfError::NotAllowedHere(d)),
        }
    }

    /// nginx-style merge with the enclosing level (call once per level, parents first):
    /// unset values take the parent's; `allow`/`deny`, `exec*` and `play` lists get the
    /// parent's entries appended after their own (the C module's rule, so a parent's
    /// `deny all` still applies after an application's own rules); `hls_variant`,
    /// `server_name`, `push`/`pull` lists and `access_log` lines are inherited only when the
    /// level has none. `listen` is never inherited.
    pub fn merge_from(&mut self, parent: &RtmpConf) {
        self.core.merge_from(&parent.core);
        self.access.merge_from(&parent.access);
        self.live.merge_from(&parent.live);
        self.record.merge_from(&parent.record);
        self.play.merge_from(&parent.play);
        self.relay.merge_from(&parent.relay);
        self.notify.merge_from(&parent.notify);
        self.exec.merge_from(&parent.exec);
        self.hls.merge_from(&parent.hls);
        self.dash.merge_from(&parent.dash);
        self.log.merge_from(&parent.log);
        self.net.merge_from(&parent.net);
        self.ssl.merge_from(&parent.ssl);
    }

    /// Checks what can only be checked after merging: every `access_log` names a known
    /// format. Call on each merged level.
    pub fn check(&self) -> Result<(), ConfError> {
        let hls = &self.hls;
        if hls.low_latency == Some(true) {
            if hls.container == Some(HlsContainer::MpegTs) {
                return Err(ConfError::Other(
                    "\"hls_low_latency on\" needs fMP4 parts: it cannot be used with \"hls_container mpegts\""
                        .to_owned(),
                ));
            }
            let part = hls.part_ms.unwrap_or(DEFAULT_PART_MS);
            let fragment = hls.fragment_ms.unwrap_or(5000);
            if part.saturating_mul(2) > fragment {
                return Err(ConfError::Other(format!(
                    "\"hls_part_duration\" ({part}ms) must be at most half of \"hls_fragment\" ({fragment}ms)"
                )));
            }
        }
        let dash = &self.dash;
        if dash.low_latency == Some(true) {
            let chunk = dash.chunk_ms.unwrap_or(DEFAULT_PART_MS);
            let fragment = dash.fragment_ms.unwrap_or(5000);
            if chunk.saturating_mul(2) > fragment {
                return Err(ConfError::Other(format!(
                    "\"dash_chunk_duration\" ({chunk}ms) must be at most half of \"dash_fragment\" ({fragment}ms)"
                )));
            }
            // HLS fMP4 and DASH of one stream share their segments: one set of cuts.
            let part = hls.part_ms.unwrap_or(DEFAULT_PART_MS);
            if hls.low_latency == Some(true) && part != chunk {
                return Err(ConfError::Other(format!(
                    "\"dash_chunk_duration\" ({chunk}ms) must equal \"hls_part_duration\" ({part}ms) when both low-latency modes are on: the LL-HLS parts are the DASH chunks"
                )));
            }
        }
        if let Some(al) = &self.log.access_log {
            for l in &al.logs {
                let known =
                    l.format == "combined" || self.log.formats.iter().any(|f| f.name == l.format);
                if !known {
                    return Err(ConfError::Other(format!(
                        "unknown log format \"{}\"",
                        l.format
                    )));
                }
            }
        }
        Ok(())
    }

    /// Resolves this (merged) level into typed settings with the C module's defaults.
    pub fn resolve(&self) -> Settings {
        let c = &self.core;
        let out_queue = c.out_queue.unwrap_or(256);
        let core = CoreSettings {
            timeout_ms: c.timeout_ms.unwrap_or(60_000),
            ping_ms: c.ping_ms.unwrap_or(60_000),
            ping_timeout_ms: c.ping_timeout_ms.unwrap_or(30_000),
            max_streams: c.max_streams.unwrap_or(32),
            ack_window: c.ack_window.unwrap_or(5_000_000),
            chunk_size: c.chunk_size.unwrap_or(4096),
            max_message: c.max_message.unwrap_or(1024 * 1024),
            out_queue,
            out_cork: c.out_cork.unwrap_or(out_queue / 8),
            busy: c.busy.unwrap_or(false),
            play_time_fix: c.play_time_fix.unwrap_or(true),
            publish_time_fix: c.publish_time_fix.unwrap_or(true),
            buflen_ms: c.buflen_ms.unwrap_or(1000),
            so_keepalive: c.so_keepalive.unwrap_or(false),
        };

        let access = AccessSettings {
            rules: self.access.rules.clone(),
            max_connections: self.access.max_connections,
        };

        let l = &self.live;
        let live = LiveSettings {
            live: l.live.unwrap_or(false),
            meta: l.meta.unwrap_or(Meta::On),
            interleave: l.interleave.unwrap_or(false),
            wait_key: l.wait_key.unwrap_or(true),
            wait_video: l.wait_video.unwrap_or(false),
            publish_notify: l.publish_notify.unwrap_or(false),
            drop_idle_publisher_ms: l.drop_idle_publisher_ms.filter(|&ms| ms > 0),
            sync_ms: l.sync_ms.unwrap_or(300),
            play_restart: l.play_restart.unwrap_or(false),
            idle_streams: l.idle_streams.unwrap_or(true),
            buffer_ms: l.buffer_ms.unwrap_or(0),
            stream_buckets: l.stream_buckets.unwrap_or(1024),
            gop_cache: l.gop_cache.unwrap_or(true),
            gop_max_frame_count: l.gop_max_frame_count.unwrap_or(4096),
            gop_max_audio_count: l.gop_max_audio_count.unwrap_or(2048),
            gop_max_video_count: l.gop_max_video_count.unwrap_or(2048),
            play_flush_interval_ms: l
                .play_flush_interval_ms
                .unwrap_or(DEFAULT_PLAY_FLUSH_INTERVAL_MS),
        };

        let r = &self.record;
        let record = RecordSettings {
            flags: r.flags.unwrap_or_default(),
            path: r.path.clone().unwrap_or_default(),
            // `.flv`, or `.mp4` for MP4 recordings.
            suffix: r.suffix.clone().unwrap_or_else(|| match r.format {
                Some(RecordFormat::Mp4) => ".mp4".to_owned(),
                _ => ".flv".to_owned(),
            }),
            unique: r.unique.unwrap_or(false),
            append: r.append.unwrap_or(false),
            lock: r.lock.unwrap_or(false),
            max_size: r.max_size.unwrap_or(0),
            max_frames: r.max_frames.unwrap_or(0),
            interval_ms: r.interval_ms,
            notify: r.notify.unwrap_or(false),
            interval_size: r.interval_size.unwrap_or(0),
            format: r.format.unwrap_or_default(),
        };

        let play = PlaySettings {
            entries: self.play.entries.clone(),
            temp_path: self
                .play
                .temp_path
                .clone()
                .unwrap_or_else(|| "/tmp".to_owned()),
            local_path: self.play.local_path.clone().unwrap_or_default(),
        };

        let rl = &self.relay;
        let relay = RelaySettings {
            pushes: rl.pushes.clone(),
            pulls: rl.pulls.clone(),
            push_reconnect_ms: rl.push_reconnect_ms.unwrap_or(3000),
            pull_reconnect_ms: rl.pull_reconnect_ms.unwrap_or(3000),
            session_relay: rl.session_relay.unwrap_or(false),
            buffer_ms: rl.buffer_ms.unwrap_or(5000),
            ssl_verify: rl.ssl_verify.unwrap_or(true),
            ssl_trusted_certificate: rl.ssl_trusted_certificate.clone(),
        };

        let n = &self.notify;
        let notify = NotifySettings {
            on_connect: n.on_connect.clone(),
            on_disconnect: n.on_disconnect.clone(),
            on_publish: n.on_publish.clone(),
            on_play: n.on_play.clone(),
            on_publish_done: n.on_publish_done.clone(),
            on_play_done: n.on_play_done.clone(),
            on_done: n.on_done.clone(),
            on_record_done: n.on_record_done.clone(),
            on_update: n.on_update.clone(),
            on_playlist: n.on_playlist.clone(),
            on_record_started: n.on_record_started.clone(),
            method: n.method.unwrap_or(NotifyMethod::Post),
            update_timeout_ms: n.update_timeout_ms.unwrap_or(30_000),
            update_strict: n.update_strict.unwrap_or(false),
            relay_redirect: n.relay_redirect.unwrap_or(false),
            netcall_timeout_ms: n.netcall_timeout_ms.unwrap_or(10_000),
            netcall_buffer: n.netcall_buffer.unwrap_or(1024),
            send_redirect: n.send_redirect.unwrap_or(false),
            no_resolve: n.no_resolve.unwrap_or(true),
            ssl_verify: n.ssl_verify.unwrap_or(true),
            ssl_trusted_certificate: n.ssl_trusted_certificate.clone(),
        };

        let e = &self.exec;
        let options = e.options.unwrap_or(false);
        let specs = |cmds: &[ExecCommand]| -> Vec<ExecSpec> {
            cmds.iter().map(|c| exec_spec(c, options)).collect()
        };
        let exec = ExecSettings {
            push: specs(&e.push),
            pull: specs(&e.pull),
            publish: specs(&e.publish),
            publish_done: specs(&e.publish_done),
            play: specs(&e.play),
            play_done: specs(&e.play_done),
            record_done: specs(&e.record_done),
            record_started: specs(&e.record_started),
            static_cmds: specs(&e.static_cmds),
            respawn: e.respawn.unwrap_or(true),
            respawn_timeout_ms: e.respawn_timeout_ms.unwrap_or(5000),
            kill_signal: e.kill_signal.unwrap_or(libc::SIGKILL),
            options,
        };

        let h = &self.hls;
        let fragment_ms = h.fragment_ms.unwrap_or(5000);
        let path = h.path.clone().unwrap_or_default();
        let hls = HlsSettings {
            enabled: h.enabled.unwrap_or(false),
            key_path: h.key_path.clone().unwrap_or_else(|| path.clone()),
            path,
            fragment_ms,
            max_fragment_ms: h
                .max_fragment_ms
                .unwrap_or_else(|| fragment_ms.saturating_mul(10)),
            playlist_length_ms: h.playlist_length_ms.unwrap_or(30_000),
            sync_ms: h.sync_ms.unwrap_or(2),
            continuous: h.continuous.unwrap_or(true),
            nested: h.nested.unwrap_or(false),
            base_url: h.base_url.clone().unwrap_or_default(),
            cleanup: h.cleanup.unwrap_or(true),
            naming: h.naming.unwrap_or(HlsNaming::Sequential),
            naming_granularity: h.naming_granularity.unwrap_or(0),
            slicing: h.slicing.unwrap_or(HlsSlicing::Plain),
            hls_type: h.hls_type.unwrap_or(HlsType::Live),
            container: h.container.unwrap_or_default(),
            low_latency: h.low_latency.unwrap_or(false),
            part_ms: h.part_ms.unwrap_or(DEFAULT_PART_MS),
            muxdelay_ms: h.muxdelay_ms.unwrap_or(700),
            max_audio_delay_ms: h.max_audio_delay_ms.unwrap_or(300),
            audio_buffer_size: h.audio_buffer_size.unwrap_or(1024 * 1024),
            variants: h.variants.clone(),
            keys: h.keys.unwrap_or(false),
            key_url: h.key_url.clone().unwrap_or_default(),
            fragments_per_key: h.fragments_per_key.unwrap_or(0),
            dir_access: h.dir_access.unwrap_or(0o744),
            nested_index_filename: h
                .nested_index_filename
                .clone()
                .unwrap_or_else(|| "index".to_owned()),
            datetime: h.datetime.unwrap_or(HlsDatetime::None),
            allow_client_cache: h.allow_client_cache,
        };

        let ds = &self.dash;
        let dash = DashSettings {
            enabled: ds.enabled.unwrap_or(false),
            path: ds.path.clone().unwrap_or_default(),
            fragment_ms: ds.fragment_ms.unwrap_or(5000),
            playlist_length_ms: ds.playlist_length_ms.unwrap_or(30_000),
            nested: ds.nested.unwrap_or(false),
            cleanup: ds.cleanup.unwrap_or(true),
            clock_compensation: ds.clock_compensation.unwrap_or(DashClock::Off),
            clock_helper_uri: ds.clock_helper_uri.clone().unwrap_or_default(),
            low_latency: ds.low_latency.unwrap_or(false),
            chunk_ms: ds.chunk_ms.unwrap_or(DEFAULT_PART_MS),
        };

        let lg = &self.log;
        let access_logs = match &lg.access_log {
            Some(al) if al.off => Vec::new(),
            Some(al) => al.logs.clone(),
            None => vec![AccessLog {
                path: None,
                format: "combined".to_owned(),
            }],
        };
        let mut formats = Vec::with_capacity(lg.formats.len() + 1);
        formats.push(LogFormat {
            name: "combined".to_owned(),
            ops: compile_log_format(&[COMBINED_LOG_FORMAT]).unwrap_or_default(),
        });
        formats.extend(lg.formats.iter().cloned());
        let log = LogSettings {
            access_logs,
            formats,
            interval_ms: lg.interval_ms.unwrap_or(0),
            size: lg.size.unwrap_or(1024 * 1024),
        };

        let nt = &self.net;
        let net = NetSettings {
            server_names: nt.server_names.clone(),
            resolver: nt.resolver.clone().unwrap_or_default(),
            resolver_timeout_ms: nt.resolver_timeout_ms.unwrap_or(30_000),
            tcp_nodelay: nt.tcp_nodelay.unwrap_or(true),
            tcp_nopush: nt.tcp_nopush.unwrap_or(false),
            send_timeout_ms: nt.send_timeout_ms.unwrap_or(60_000),
            send_lowat: nt.send_lowat.unwrap_or(0),
            merge_slashes: nt.merge_slashes.unwrap_or(true),
            connection_pool_size: nt.connection_pool_size.unwrap_or(512),
        };

        let sl = &self.ssl;
        let ssl = SslSettings {
            certificates: sl.certificates.clone(),
            certificate_keys: sl.certificate_keys.clone(),
            protocols: sl
                .protocols
                .clone()
                .unwrap_or_else(|| vec![TlsProtocol::Tls1_2, TlsProtocol::Tls1_3]),
            ciphers: sl
                .ciphers
                .clone()
                .unwrap_or_else(|| "HIGH:!aNULL:!MD5".to_owned()),
            prefer_server_ciphers: sl.prefer_server_ciphers.unwrap_or(false),
            session_cache: sl.session_cache.clone().unwrap_or_default(),
            session_timeout_ms: sl.session_timeout_ms.unwrap_or(300_000),
            session_tickets: sl.session_tickets.unwrap_or(false),
            handshake_timeout_ms: sl.handshake_timeout_ms.unwrap_or(60_000),
        };
        Settings {
            listens: self.listens.clone(),
            core,
            access,
            live,
            record,
            play,
            relay,
            notify,
            exec,
            hls,
            dash,
            log,
            net,
            ssl,
        }
    }
}

/// `ssl_protocols` words, as nginx's (`TLSv1` ... `TLSv1.3`; SSLv2/SSLv3 are refused).
fn tls_protocols(d: &'static str, args: &[&str]) -> Result<Vec<TlsProtocol>, ConfError> {
    args.iter()
        .map(|a| match *a {
            "TLSv1" => Ok(TlsProtocol::Tls1),
            "TLSv1.1" => Ok(TlsProtocol::Tls1_1),
            "TLSv1.2" => Ok(TlsProtocol::Tls1_2),
            "TLSv1.3" => Ok(TlsProtocol::Tls1_3),
            other => Err(ConfError::Other(format!(
                "invalid value \"{other}\" in \"{d}\" directive, it must be TLSv1, TLSv1.1, \
                 TLSv1.2 or TLSv1.3"
            ))),
        })
        .collect()
}

/// `ssl_session_cache off | none | [builtin[:size]] [shared:name:size]`, with nginx's messages.
fn session_cache(d: &'static str, args: &[&str]) -> Result<SessionCache, ConfError> {
    let bad = |a: &str| {
        ConfError::Other(format!(
            "invalid session cache \"{a}\" in \"{d}\" directive"
        ))
    };
    let mut cache = SessionCache::default();
    for &a in args {
        match a {
            "off" | "none" if args.len() == 1 => cache.off = a == "off",
            "builtin" => cache.builtin = Some(None),
            _ => {
                if let Some(n) = a.strip_prefix("builtin:") {
                    let n = parse_uint(n).filter(|n| *n > 0).ok_or_else(|| bad(a))?;
                    cache.builtin = Some(Some(n));
                } else if let Some(rest) = a.strip_prefix("shared:") {
                    let (name, size) = rest.rsplit_once(':').ok_or_else(|| bad(a))?;
                    let size = parse_size(size)
                        .filter(|n| *n >= 8 * 4096)
                        .ok_or_else(|| bad(a))?;
                    if name.is_empty() {
                        return Err(bad(a));
                    }
                    cache.shared = Some((name.to_owned(), size));
                } else {
                    return Err(bad(a));
                }
            }
        }
    }
    Ok(cache)
}

/// ASCII case-insensitive prefix test that cannot split a multi-byte character.
fn starts_with_ignore_case(s: &str, prefix: &str) -> bool {
    s.get(..prefix.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
}

fn push_exec(list: &mut Vec<ExecCommand>, args: &[&str]) -> Applied {
    list.push(exec_command(args));
    Ok(None)
}

/// With `exec_options on`, `name=` arguments are stream-name filters, not arguments.
fn exec_spec(c: &ExecCommand, options: bool) -> ExecSpec {
    let mut args = Vec::with_capacity(c.args.len());
    let mut names = Vec::new();
    for a in &c.args {
        match a.strip_prefix("name=") {
            Some(n) if options => names.push(n.to_owned()),
            _ => args.push(a.clone()),
        }
    }
    ExecSpec {
        cmd: c.cmd.clone(),
        args,
        names,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conf::{
        access_allowed, find, Action, Context, HttpConf, Keepalive, ListenAddr, MainConf,
        DIRECTIVES,
    };

    /// A valid example for every directive.
    const EXAMPLES: &[(&str, &[&str])] = &[
        ("listen", &["1935"]),
        ("so_keepalive", &["on"]),
        ("timeout", &["30s"]),
        ("ping", &["1m"]),
        ("ping_timeout", &["15s"]),
        ("max_streams", &["64"]),
        ("ack_window", &["2500000"]),
        ("chunk_size", &["8192"]),
        ("max_message", &["2M"]),
        ("out_queue", &["512"]),
        ("out_cork", &["16"]),
        ("busy", &["on"]),
        ("play_time_fix", &["off"]),
        ("publish_time_fix", &["off"]),
        ("buflen", &["500ms"]),
        ("allow", &["publish", "127.0.0.1"]),
        ("deny", &["play", "all"]),
        ("max_connections", &["100"]),
        ("ssl_certificate", &["/etc/ssl/rtmp.pem"]),
        ("ssl_certificate_key", &["/etc/ssl/rtmp.key"]),
        ("ssl_protocols", &["TLSv1.2", "TLSv1.3"]),
        ("ssl_ciphers", &["HIGH:!aNULL"]),
        ("ssl_prefer_server_ciphers", &["on"]),
        ("ssl_session_cache", &["shared:RTMPS:10m"]),
        ("ssl_session_timeout", &["10m"]),
        ("ssl_handshake_timeout", &["10s"]),
        ("ssl_session_tickets", &["on"]),
        ("live", &["on"]),
        ("meta", &["copy"]),
        ("interleave", &["on"]),
        ("wait_key", &["off"]),
        ("wait_video", &["on"]),
        ("publish_notify", &["on"]),
        ("drop_idle_publisher", &["10s"]),
        ("sync", &["10ms"]),
        ("play_restart", &["on"]),
        ("idle_streams", &["off"]),
        ("buffer", &["1s"]),
        ("play_flush_interval", &["20ms"]),
        ("stream_buckets", &["1024"]),
        ("record", &["all", "manual"]),
        ("record_path", &["/var/rec"]),
        ("record_suffix", &["-%d-%b-%y-%T.flv"]),
        ("record_unique", &["on"]),
        ("record_append", &["on"]),
        ("record_lock", &["on"]),
        ("record_max_size", &["128K"]),
        ("record_max_frames", &["200"]),
        ("record_interval", &["15m"]),
        ("record_notify", &["on"]),
        ("play", &["/var/flv", "http://media.example.com/vod"]),
        ("play_temp_path", &["/www"]),
        ("play_local_path", &["/www/cache"]),
        (
            "push",
            &["rtmp://cdn.example.com/live", "app=live2", "name=mystream"],
        ),
        (
            "pull",
            &[
                "rtmp://origin.example.com:1935/app/stream",
                "name=local",
                "static",
            ],
        ),
        ("push_reconnect", &["1s"]),
        ("pull_reconnect", &["5s"]),
        ("session_relay", &["on"]),
        ("relay_buffer", &["1s"]),
        ("on_connect", &["http://localhost:8080/connect"]),
        ("on_disconnect", &["http://localhost:8080/disconnect"]),
        ("on_publish", &["http://localhost:8080/publish"]),
        ("on_play", &["http://localhost:8080/play"]),
        ("on_publish_done", &["http://localhost:8080/publish_done"]),
        ("on_play_done", &["http://localhost:8080/play_done"]),
        ("on_done", &["http://localhost:8080/done"]),
        ("on_record_done", &["http://localhost:8080/record_done"]),
        ("on_update", &["http://localhost:8080/update"]),
        ("notify_method", &["get"]),
        ("notify_update_timeout", &["10s"]),
        ("notify_update_strict", &["on"]),
        ("notify_ssl_verify", &["off"]),
        ("relay_ssl_verify", &["off"]),
        ("relay_ssl_trusted_certificate", &["/etc/ssl/ca.pem"]),
        ("notify_ssl_trusted_certificate", &["/etc/ssl/ca.pem"]),
        ("notify_relay_redirect", &["on"]),
        ("netcall_timeout", &["5s"]),
        ("netcall_buffer", &["4k"]),
        (
            "exec",
            &[
                "ffmpeg",
                "-i",
                "rtmp://localhost/$app/$name",
                "-f",
                "flv",
                "out",
            ],
        ),
        ("exec_push", &["/bin/echo", "$name"]),
        ("exec_pull", &["/bin/pull.sh", "$name"]),
        ("exec_publish", &["/bin/notify.sh", "$name"]),
        ("exec_publish_done", &["/bin/done.sh"]),
        ("exec_play", &["/bin/play.sh"]),
        ("exec_play_done", &["/bin/play_done.sh"]),
        ("exec_record_done", &["/bin/post.sh", "$path"]),
        ("exec_static", &["/bin/static.sh"]),
        ("respawn", &["off"]),
        ("respawn_timeout", &["10s"]),
        ("exec_kill_signal", &["term"]),
        ("exec_options", &["on"]),
        ("hls", &["on"]),
        ("hls_path", &["/tmp/hls"]),
        ("hls_fragment", &["3s"]),
        ("hls_max_fragment", &["15s"]),
        ("hls_playlist_length", &["1m"]),
        ("hls_sync", &["100ms"]),
        ("hls_continuous", &["off"]),
        ("hls_nested", &["on"]),
        ("hls_base_url", &["http://cdn.example.com/hls/"]),
        ("hls_cleanup", &["off"]),
        ("hls_fragment_naming", &["system"]),
        ("hls_fragment_naming_granularity", &["500"]),
        ("hls_fragment_slicing", &["aligned"]),
        ("hls_type", &["event"]),
        ("hls_muxdelay", &["500ms"]),
        ("hls_max_audio_delay", &["200ms"]),
        ("hls_audio_buffer_size", &["512k"]),
        ("hls_variant", &["_low", "BANDWIDTH=288000"]),
        ("hls_keys", &["on"]),
        ("hls_key_path", &["/tmp/keys"]),
        ("hls_key_url", &["https://keys.example.com/"]),
        ("hls_fragments_per_key", &["10"]),
        ("dash", &["on"]),
        ("dash_path", &["/tmp/dash"]),
        ("dash_fragment", &["2s"]),
        ("dash_playlist_length", &["2m"]),
        ("dash_nested", &["on"]),
        ("dash_cleanup", &["off"]),
        ("access_log", &["logs/rtmp_access.log", "combined"]),
        ("log_format", &["short", "$remote_addr $app/$name"]),
        ("rtmp_auto_push", &["on"]),
        ("rtmp_auto_push_reconnect", &["1s"]),
        ("rtmp_socket_dir", &["/var/sock"]),
        ("rtmp_stat", &["all"]),
        ("rtmp_stat_stylesheet", &["stat.xsl"]),
        ("rtmp_control", &["all"]),
        ("rtmp_low_latency", &["on"]),
        ("flv_live", &["on"]),
        ("rtmp_stat_format", &["json"]),
        ("gop_cache", &["on"]),
        ("gop_max_frame_count", &["1024"]),
        ("gop_max_audio_count", &["512"]),
        ("gop_max_video_count", &["512"]),
        ("server_name", &["live.example.com", "*.example.com"]),
        ("hls_dir_access", &["0755"]),
        ("hls_nested_index_filename", &["playlist"]),
        ("log_interval", &["5s"]),
        ("log_size", &["2m"]),
        ("notify_no_resolve", &["off"]),
        ("resolver", &["127.0.0.1", "valid=30s"]),
        ("resolver_timeout", &["5s"]),
        ("tcp_nodelay", &["off"]),
        ("tcp_nopush", &["on"]),
        ("send_timeout", &["30s"]),
        ("send_lowat", &["1k"]),
        ("merge_slashes", &["off"]),
        ("connection_pool_size", &["4k"]),
        ("hls_datetime", &["system"]),
        ("hls_allow_client_cache", &["enabled"]),
        ("dash_clock_compensation", &["http_head"]),
        ("dash_clock_helper_uri", &["http://time.example.com/"]),
        ("on_playlist", &["http://localhost:8080/playlist"]),
        (
            "on_record_started",
            &["http://localhost:8080/record_started"],
        ),
        ("exec_record_started", &["/bin/started.sh", "$path"]),
        ("notify_send_redirect", &["on"]),
        ("record_interval_size", &["10M"]),
        ("record_format", &["mp4"]),
        ("hls_container", &["fmp4"]),
        ("hls_low_latency", &["on"]),
        ("hls_part_duration", &["500ms"]),
        ("dash_low_latency", &["on"]),
        ("dash_chunk_duration", &["500ms"]),
    ];

    /// Directives whose C handler overwrites an earlier value instead of refusing it.
    const OVERWRITING: &[&str] = &[
        "on_connect",
        "on_disconnect",
        "on_publish",
        "on_play",
        "on_publish_done",
        "on_play_done",
        "on_done",
        "on_record_done",
        "on_update",
        "on_playlist",
        "on_record_started",
        "notify_method",
        "exec_kill_signal",
        "notify_send_redirect",
    ];

    fn example(name: &str) -> &'static [&'static str] {
        EXAMPLES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, a)| *a)
            .unwrap_or_else(|| panic!("no example for {name}"))
    }

    fn apply_in(ctx: Context, name: &str, args: &[&str]) -> Applied {
        let d = find(name).ok_or_else(|| ConfError::UnknownDirective(name.into()))?;
        d.check_context(ctx)?;
        d.check_args(args.len())?;
        match ctx {
            Context::Main => MainConf::default().apply(name, args),
            Context::Http => HttpConf::default().apply(name, args),
            _ => RtmpConf::default().apply(name, args),
        }
    }

    fn conf(lines: &[(&str, &[&str])]) -> RtmpConf {
        let mut c = RtmpConf::default();
        for (n, a) in lines {
            c.apply(n, a).unwrap_or_else(|e| panic!("{n}: {e}"));
        }
        c
    }

    fn err(name: &str, args: &[&str]) -> String {
        RtmpConf::default()
            .apply(name, args)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn every_directive_parses_its_example_in_every_context() {
        assert_eq!(EXAMPLES.len(), DIRECTIVES.len());
        for d in DIRECTIVES {
            let args = example(d.name);
            for &ctx in d.contexts {
                let r = apply_in(ctx, d.name, args);
                assert!(r.is_ok(), "{} in {ctx:?}: {:?}", d.name, r);
            }
        }
    }

    #[test]
    fn directives_are_refused_outside_their_contexts() {
        let all = [
            Context::Main,
            Context::Rtmp,
            Context::Server,
            Context::Application,
            Context::Recorder,
            Context::Http,
        ];
        for d in DIRECTIVES {
            for ctx in all.iter().filter(|c| !d.contexts.contains(c)) {
                assert_eq!(
                    apply_in(*ctx, d.name, example(d.name)),
                    Err(ConfError::NotAllowedHere(d.name)),
                    "{} in {ctx:?}",
                    d.name
                );
            }
        }
    }

    #[test]
    fn second_occurrence_of_single_valued_directives() {
        for d in DIRECTIVES.iter().filter(|d| !d.multiple) {
            let ctx = d.contexts[0];
            if matches!(ctx, Context::Main | Context::Http) {
                let mut m = MainConf::default();
                let mut h = HttpConf::default();
                let mut apply = |a: &[&str]| match ctx {
                    Context::Main => m.apply(d.name, a),
                    _ => h.apply(d.name, a),
                };
                apply(example(d.name)).unwrap();
                assert_eq!(
                    apply(example(d.name)),
                    Err(ConfError::Duplicate(d.name)),
                    "{}",
                    d.name
                );
                continue;
            }
            let mut c = RtmpConf::default();
            c.apply(d.name, example(d.name)).unwrap();
            let second = c.apply(d.name, example(d.name));
            if OVERWRITING.contains(&d.name) {
                let w = second.unwrap().unwrap_or_default();
                assert!(
                    w.contains("is duplicate, the last value is used"),
                    "{}",
                    d.name
                );
            } else {
                assert_eq!(second, Err(ConfError::Duplicate(d.name)), "{}", d.name);
                assert_eq!(
                    ConfError::Duplicate(d.name).to_string(),
                    format!("\"{}\" directive is duplicate", d.name)
                );
            }
        }
    }

    #[test]
    fn multiple_directives_accumulate() {
        let c = conf(&[
            ("allow", &["publish", "10.0.0.1"]),
            ("allow", &["publish", "10.0.0.2"]),
            ("deny", &["publish", "all"]),
            ("exec", &["a"]),
            ("exec_push", &["b"]),
            ("hls_variant", &["_low", "BANDWIDTH=1"]),
            ("hls_variant", &["_hi", "BANDWIDTH=2"]),
            ("access_log", &["a.log"]),
            ("access_log", &["b.log"]),
            ("log_format", &["f1", "$app"]),
            ("log_format", &["f2", "$name"]),
            ("push", &["rtmp://a/app"]),
            ("push", &["rtmp://b/app"]),
            ("play", &["/a"]),
            ("play", &["/b", "/c"]),
        ]);
        assert_eq!(c.access.rules.len(), 3);
        assert_eq!(c.exec.push.len(), 2);
        assert_eq!(c.hls.variants.len(), 2);
        assert_eq!(c.log.access_log.as_ref().map(|a| a.logs.len()), Some(2));
        assert_eq!(c.log.formats.len(), 2);
        assert_eq!(c.relay.pushes.len(), 2);
        assert_eq!(c.play.entries.len(), 3);
    }

    #[test]
    fn bad_values_are_refused_with_nginx_messages() {
        let on_off = "it must be \"on\" or \"off\"";
        let cases: &[(&str, &[&str], String)] = &[
            ("chunk_size", &["5x"], "invalid value \"5x\" in \"chunk_size\" directive".into()),
            (
                "chunk_size",
                &["127"],
                "invalid value \"127\" in \"chunk_size\" directive, it must be between 128 and 16777215"
                    .into(),
            ),
            (
                "chunk_size",
                &["16777216"],
                "invalid value \"16777216\" in \"chunk_size\" directive, it must be between 128 and 16777215"
                    .into(),
            ),
            ("chunk_size", &["-1"], "invalid value \"-1\" in \"chunk_size\" directive".into()),
            ("chunk_size", &["4k"], "invalid value \"4k\" in \"chunk_size\" directive".into()),
            ("chunk_size", &[""], "invalid value \"\" in \"chunk_size\" directive".into()),
            ("live", &["yes"], format!("invalid value \"yes\" in \"live\" directive, {on_off}")),
            ("wait_key", &["1"], format!("invalid value \"1\" in \"wait_key\" directive, {on_off}")),
            ("ping", &["5x"], "invalid value \"5x\" in \"ping\" directive".into()),
            ("ping", &["-5s"], "invalid value \"-5s\" in \"ping\" directive".into()),
            ("ping", &["1y"], "invalid value \"1y\" in \"ping\" directive".into()),
            ("timeout", &[""], "invalid value \"\" in \"timeout\" directive".into()),
            ("buflen", &["1.5s"], "invalid value \"1.5s\" in \"buflen\" directive".into()),
            ("max_message", &["1g"], "invalid value \"1g\" in \"max_message\" directive".into()),
            (
                "max_message",
                &["0"],
                "invalid value \"0\" in \"max_message\" directive, it must be between 1 and 9223372036854775807"
                    .into(),
            ),
            (
                "play_flush_interval",
                &["2s"],
                "invalid value \"2s\" in \"play_flush_interval\" directive, it must be at most 1000ms"
                    .into(),
            ),
            (
                "out_queue",
                &["0"],
                "invalid value \"0\" in \"out_queue\" directive, it must be between 1 and 1048576"
                    .into(),
            ),
            (
                "max_streams",
                &["0"],
                "invalid value \"0\" in \"max_streams\" directive, it must be between 1 and 65600"
                    .into(),
            ),
            (
                "ack_window",
                &["4294967296"],
                "invalid value \"4294967296\" in \"ack_window\" directive, it must be between 0 and 4294967295"
                    .into(),
            ),
            (
                "meta",
                &["maybe"],
                "invalid value \"maybe\" in \"meta\" directive, it must be \"on\", \"copy\" or \"off\""
                    .into(),
            ),
            ("drop_idle_publisher", &["never"], "invalid value \"never\" in \"drop_idle_publisher\" directive".into()),
            ("sync", &["on"], "invalid value \"on\" in \"sync\" directive".into()),
            (
                "record",
                &["all", "everything"],
                "invalid value \"everything\" in \"record\" directive, it must be \"off\", \"all\", \"audio\", \"video\", \"keyframes\" or \"manual\""
                    .into(),
            ),
            ("record_max_size", &["1x"], "invalid value \"1x\" in \"record_max_size\" directive".into()),
            (
                "hls_fragment_naming",
                &["random"],
                "invalid value \"random\" in \"hls_fragment_naming\" directive, it must be \"sequential\", \"timestamp\" or \"system\""
                    .into(),
            ),
            (
                "hls_type",
                &["vod"],
                "invalid value \"vod\" in \"hls_type\" directive, it must be \"live\" or \"event\"".into(),
            ),
            (
                "hls_variant",
                &["_low", "BANDWIDTH"],
                "invalid parameter \"BANDWIDTH\" in \"hls_variant\" directive".into(),
            ),
            (
                "hls_dir_access",
                &["755"],
                "invalid value \"755\" in \"hls_dir_access\" directive, it must be a 4-digit octal mode like 0755"
                    .into(),
            ),
            (
                "hls_dir_access",
                &["0789"],
                "invalid value \"0789\" in \"hls_dir_access\" directive, it must be a 4-digit octal mode like 0755"
                    .into(),
            ),
            (
                "notify_method",
                &["put"],
                "invalid value \"put\" in \"notify_method\" directive, it must be \"get\" or \"post\"".into(),
            ),
            (
                "on_publish",
                &["ftp://x/y"],
                "unsupported scheme (use http:// or https://) in url \"ftp://x/y\" of the \"on_publish\" directive"
                    .into(),
            ),
            (
                "on_play",
                &["http://host:99999/x"],
                "invalid port in url \"http://host:99999/x\" of the \"on_play\" directive".into(),
            ),
            (
                "push",
                &["http://cdn/app"],
                "unsupported scheme (use rtmp:// or rtmps://) in url \"http://cdn/app\" of the \"push\" directive".into(),
            ),
            (
                "push",
                &["rtmp://cdn/app", "bogus=1"],
                "invalid parameter \"bogus=1\" in \"push\" directive".into(),
            ),
            (
                "push",
                &["rtmp://cdn/app", "live=yes"],
                "invalid value \"live=yes\" in \"push\" directive".into(),
            ),
            ("push", &["rtmp://cdn/app", "name=a", "static"], "static push is not allowed".into()),
            (
                "pull",
                &["rtmp://cdn/app/s", "static"],
                "stream name missing in static pull declaration".into(),
            ),
            (
                "play",
                &["http:///vod"],
                "no host in url \"http:///vod\" of the \"play\" directive".into(),
            ),
            (
                "on_publish",
                &["http://127.0.0.1:9/auth/\u{e9}"],
                "non-ASCII characters must be percent-encoded in url \"http://127.0.0.1:9/auth/\u{e9}\" of the \"on_publish\" directive".into(),
            ),
            (
                "on_play",
                &["http://auth host/x"],
                "URL contains spaces or control characters in url \"http://auth host/x\" of the \"on_play\" directive".into(),
            ),
            (
                "on_connect",
                &["http://user@auth/x"],
                "user info (user@host) is not allowed in url \"http://user@auth/x\" of the \"on_connect\" directive".into(),
            ),
            (
                "exec_kill_signal",
                &["NOPE"],
                "invalid value \"NOPE\" in \"exec_kill_signal\" directive, it must be a signal number or name like KILL or TERM"
                    .into(),
            ),
            (
                "exec_kill_signal",
                &["0"],
                "invalid value \"0\" in \"exec_kill_signal\" directive, it must be between 1 and 64".into(),
            ),
            (
                "log_format",
                &["combined", "$app"],
                "duplicate \"log_format\" name \"combined\"".into(),
            ),
            ("log_format", &["x", "$nope"], "unknown variable \"nope\"".into()),
            (
                "allow",
                &["10.0.0.1/40"],
                "invalid parameter \"10.0.0.1/40\" in \"allow\" directive".into(),
            ),
            (
                "deny",
                &["record", "all"],
                "invalid value \"record\" in \"deny\" directive, it must be \"publish\" or \"play\"".into(),
            ),
            ("listen", &["1935", "tls"], "invalid parameter \"tls\" in \"listen\" directive".into()),
            ("listen", &["99999"], "invalid port in \"99999\" of the \"listen\" directive".into()),
            ("server_name", &["*x"], "server name \"*x\" is invalid in \"server_name\" directive".into()),
            ("stream_buckets", &["many"], "invalid value \"many\" in \"stream_buckets\" directive".into()),
            (
                "hls_allow_client_cache",
                &["on"],
                "invalid value \"on\" in \"hls_allow_client_cache\" directive, it must be \"enabled\" or \"disabled\""
                    .into(),
            ),
            (
                "dash_clock_compensation",
                &["gps"],
                "invalid value \"gps\" in \"dash_clock_compensation\" directive, it must be \"off\", \"ntp\", \"http_head\" or \"http_iso\""
                    .into(),
            ),
            ("live", &[], "invalid number of arguments in \"live\" directive".into()),
            ("live", &["on", "off"], "invalid number of arguments in \"live\" directive".into()),
            ("allow", &["play", "publish", "all"], "invalid number of arguments in \"allow\" directive".into()),
            ("no_such_directive", &["1"], "unknown directive \"no_such_directive\"".into()),
            ("rtmp_stat", &["all"], "\"rtmp_stat\" directive is not allowed here".into()),
            ("rtmp_auto_push", &["on"], "\"rtmp_auto_push\" directive is not allowed here".into()),
        ];
        for (name, args, expected) in cases {
            assert_eq!(&err(name, args), expected, "{name} {args:?}");
        }
    }

    #[test]
    fn value_boundaries_are_accepted() {
        let c = conf(&[
            ("chunk_size", &["128"]),
            ("max_streams", &["65600"]),
            ("ack_window", &["0"]),
            ("out_queue", &["1M"]),
            ("ping", &["0"]),
            ("max_message", &["1"]),
        ]);
        let s = c.resolve().core;
        assert_eq!((s.chunk_size, s.max_streams, s.ack_window), (128, 65600, 0));
        assert_eq!((s.out_queue, s.ping_ms, s.max_message), (1 << 20, 0, 1));
        assert!(RtmpConf::default()
            .apply("chunk_size", &["16777215"])
            .is_ok());
        assert!(RtmpConf::default()
            .apply("exec_kill_signal", &["64"])
            .is_ok());
    }

    #[test]
    fn msec_directives_take_bare_numbers_as_seconds() {
        let s = conf(&[
            ("ping", &["30"]),
            ("buflen", &["2"]),
            ("timeout", &["1m30s"]),
        ])
        .resolve();
        assert_eq!(s.core.ping_ms, 30_000);
        assert_eq!(s.core.buflen_ms, 2_000);
        assert_eq!(s.core.timeout_ms, 90_000);
    }

    #[test]
    fn defaults_equal_the_c_module_code() {
        let s = RtmpConf::default().resolve();
        let c = &s.core;
        assert_eq!(c.timeout_ms, 60_000);
        assert_eq!(c.ping_ms, 60_000);
        assert_eq!(c.ping_timeout_ms, 30_000);
        assert_eq!(c.max_streams, 32);
        assert_eq!(c.ack_window, 5_000_000);
        assert_eq!(c.chunk_size, 4096);
        assert_eq!(c.max_message, 1_048_576);
        assert_eq!(c.out_queue, 256);
        assert_eq!(c.out_cork, 32);
        assert!(!c.busy && c.play_time_fix && c.publish_time_fix && !c.so_keepalive);
        assert_eq!(c.buflen_ms, 1000);

        assert!(s.access.rules.is_empty());
        assert_eq!(s.access.max_connections, None);

        let l = &s.live;
        assert!(!l.live && !l.interleave && !l.wait_video && !l.publish_notify);
        assert!(l.wait_key, "wait_key is on in the C code");
        assert!(l.idle_streams && !l.play_restart);
        assert_eq!(l.meta, Meta::On);
        assert_eq!(l.drop_idle_publisher_ms, None);
        assert_eq!((l.sync_ms, l.buffer_ms, l.stream_buckets), (300, 0, 1024));
        // Not a C module directive; on here (instant joins), off in nginx-http-flv-module.
        assert!(l.gop_cache);
        assert_eq!(
            (
                l.gop_max_frame_count,
                l.gop_max_audio_count,
                l.gop_max_video_count
            ),
            (4096, 2048, 2048)
        );
        assert_eq!(l.play_flush_interval_ms, DEFAULT_PLAY_FLUSH_INTERVAL_MS);

        let r = &s.record;
        assert_eq!(r.flags, RecordFlags::default());
        assert!(!r.flags.enabled());
        assert_eq!((r.path.as_str(), r.suffix.as_str()), ("", ".flv"));
        assert!(!r.unique && !r.append && !r.lock && !r.notify);
        assert_eq!(
            (r.max_size, r.max_frames, r.interval_ms, r.interval_size),
            (0, 0, None, 0)
        );

        assert!(s.play.entries.is_empty());
        assert_eq!(
            (s.play.temp_path.as_str(), s.play.local_path.as_str()),
            ("/tmp", "")
        );

        let rl = &s.relay;
        assert!(rl.pushes.is_empty() && rl.pulls.is_empty() && !rl.session_relay);
        assert_eq!(
            (rl.push_reconnect_ms, rl.pull_reconnect_ms, rl.buffer_ms),
            (3000, 3000, 5000)
        );

        let n = &s.notify;
        assert!(n.on_publish.is_none() && n.on_play.is_none() && n.on_connect.is_none());
        assert_eq!(n.method, NotifyMethod::Post);
        assert_eq!(
            (n.update_timeout_ms, n.netcall_timeout_ms, n.netcall_buffer),
            (30_000, 10_000, 1024)
        );
        assert!(!n.update_strict && !n.relay_redirect && !n.send_redirect && n.no_resolve);

        let e = &s.exec;
        assert!(e.push.is_empty() && e.static_cmds.is_empty());
        assert!(e.respawn && !e.options);
        assert_eq!((e.respawn_timeout_ms, e.kill_signal), (5000, 9));

        let h = &s.hls;
        assert!(!h.enabled && !h.nested && !h.keys);
        assert!(h.continuous, "hls_continuous is on in the C code");
        assert!(h.cleanup);
        assert_eq!(
            (h.path.as_str(), h.base_url.as_str(), h.key_url.as_str()),
            ("", "", "")
        );
        assert_eq!(
            (h.fragment_ms, h.max_fragment_ms, h.playlist_length_ms),
            (5000, 50_000, 30_000)
        );
        assert_eq!(
            (h.sync_ms, h.muxdelay_ms, h.max_audio_delay_ms),
            (2, 700, 300)
        );
        assert_eq!(h.audio_buffer_size, 1_048_576);
        assert_eq!(
            (h.naming, h.slicing, h.hls_type),
            (HlsNaming::Sequential, HlsSlicing::Plain, HlsType::Live)
        );
        assert_eq!((h.naming_granularity, h.fragments_per_key), (0, 0));
        assert_eq!(h.key_path, "");
        assert_eq!(
            (h.dir_access, h.nested_index_filename.as_str()),
            (0o744, "index")
        );
        assert_eq!(
            (h.datetime, h.allow_client_cache),
            (HlsDatetime::None, None)
        );

        let d = &s.dash;
        assert!(!d.enabled && !d.nested && d.cleanup);
        assert_eq!(
            (d.path.as_str(), d.fragment_ms, d.playlist_length_ms),
            ("", 5000, 30_000)
        );
        assert_eq!(
            (d.clock_compensation, d.clock_helper_uri.as_str()),
            (DashClock::Off, "")
        );

        let lg = &s.log;
        assert_eq!(
            lg.access_logs,
            vec![AccessLog {
                path: None,
                format: "combined".into()
            }]
        );
        assert!(lg.format("combined").is_some());
        assert_eq!((lg.interval_ms, lg.size), (0, 1_048_576));

        let nt = &s.net;
        assert!(nt.server_names.is_empty() && nt.resolver.is_empty());
        assert!(nt.tcp_nodelay && !nt.tcp_nopush && nt.merge_slashes);
        assert_eq!(
            (nt.resolver_timeout_ms, nt.send_timeout_ms, nt.send_lowat),
            (30_000, 60_000, 0)
        );
        assert_eq!(nt.connection_pool_size, 512);
        assert!(s.listens.is_empty());
    }

    #[test]
    fn derived_defaults_follow_their_source() {
        let s = conf(&[
            ("out_queue", &["800"]),
            ("hls_fragment", &["2s"]),
            ("hls_path", &["/h"]),
        ])
        .resolve();
        assert_eq!(s.core.out_cork, 100);
        assert_eq!(s.hls.max_fragment_ms, 20_000);
        assert_eq!(s.hls.key_path, "/h");
        let s = conf(&[("hls_path", &["/h"]), ("hls_key_path", &["/k"])]).resolve();
        assert_eq!(s.hls.key_path, "/k");
    }

    #[test]
    fn merge_child_wins_and_unset_inherits() {
        let rtmp = conf(&[
            ("chunk_size", &["8192"]),
            ("ping", &["10s"]),
            ("live", &["on"]),
        ]);
        let mut server = conf(&[("chunk_size", &["256"])]);
        server.merge_from(&rtmp);
        let mut app = conf(&[("live", &["off"]), ("meta", &["copy"])]);
        app.merge_from(&server);
        let s = app.resolve();
        assert_eq!(s.core.chunk_size, 256);
        assert_eq!(s.core.ping_ms, 10_000);
        assert!(!s.live.live);
        assert_eq!(s.live.meta, Meta::Copy);
        assert_eq!(s.core.timeout_ms, 60_000);
    }

    #[test]
    fn merge_appends_parent_access_rules_after_the_childs_like_the_c_module() {
        let mut server = conf(&[
            ("allow", &["publish", "127.0.0.1"]),
            ("deny", &["publish", "all"]),
        ]);
        server.merge_from(&RtmpConf::default());
        let mut app = conf(&[("allow", &["publish", "10.0.0.5"])]);
        app.merge_from(&server);
        let rules = &app.resolve().access.rules;
        assert_eq!(rules.len(), 3);
        let ip = |s: &str| s.parse().unwrap();
        assert!(access_allowed(rules, ip("10.0.0.5"), Action::Publish));
        assert!(access_allowed(rules, ip("127.0.0.1"), Action::Publish));
        assert!(!access_allowed(rules, ip("10.0.0.6"), Action::Publish));
        assert!(access_allowed(rules, ip("10.0.0.6"), Action::Play));
        // An application without rules inherits the server's unchanged.
        let mut bare = RtmpConf::default();
        bare.merge_from(&server);
        assert_eq!(bare.access.rules, server.access.rules);
    }

    #[test]
    fn merge_lists_replace_or_inherit() {
        let parent = conf(&[
            ("hls_variant", &["_low", "BANDWIDTH=1"]),
            ("access_log", &["parent.log"]),
            ("exec_push", &["parent"]),
            ("log_format", &["pf", "$app"]),
        ]);
        let mut child = conf(&[
            ("hls_variant", &["_hi", "BANDWIDTH=2"]),
            ("exec_push", &["child"]),
            ("log_format", &["cf", "$name"]),
        ]);
        child.merge_from(&parent);
        let s = child.resolve();
        assert_eq!(s.hls.variants.len(), 1);
        assert_eq!(s.hls.variants[0].suffix, "_hi");
        assert_eq!(
            s.log.access_logs,
            vec![AccessLog {
                path: Some("parent.log".into()),
                format: "combined".into()
            }]
        );
        let cmds: Vec<&str> = s.exec.push.iter().map(|e| e.cmd.as_str()).collect();
        assert_eq!(cmds, ["child", "parent"]);
        assert!(s.log.format("pf").is_some() && s.log.format("cf").is_some());

        let mut off = conf(&[("access_log", &["off"])]);
        off.merge_from(&parent);
        assert!(off.resolve().log.access_logs.is_empty());

        let mut empty = RtmpConf::default();
        empty.merge_from(&parent);
        assert_eq!(empty.resolve().hls.variants.len(), 1);
    }

    #[test]
    fn listens_are_never_inherited() {
        let mut parent = RtmpConf::default();
        parent.apply("listen", &["1935"]).unwrap();
        let mut child = RtmpConf::default();
        child.merge_from(&parent);
        assert!(child.listens.is_empty());
    }

    #[test]
    fn listen_is_stored_and_duplicates_refused() {
        let mut c = RtmpConf::default();
        c.apply("listen", &["127.0.0.1:1935"]).unwrap();
        c.apply(
            "listen",
            &["[::1]:1935", "ipv6only=on", "so_keepalive=30s:10:3"],
        )
        .unwrap();
        assert_eq!(
            c.apply("listen", &["127.0.0.1", "bind"])
                .unwrap_err()
                .to_string(),
            "duplicate \"127.0.0.1\" address and port pair"
        );
        let w = c
            .apply("listen", &["10.0.0.1:1935", "ipv6only=off"])
            .unwrap();
        assert!(w.unwrap_or_default().contains("ipv6only is not supported"));
        assert_eq!(c.listens.len(), 3);
        assert_eq!(
            c.listens[1].addr,
            ListenAddr::Inet("[::1]:1935".parse().unwrap())
        );
        assert_eq!(
            c.listens[1].so_keepalive,
            Some(Keepalive::Tuned {
                idle_s: Some(30),
                interval_s: Some(10),
                count: Some(3)
            })
        );
        assert_eq!(c.resolve().listens.len(), 3);
    }

    #[test]
    fn cidr_with_host_bits_warns_through_apply() {
        let mut c = RtmpConf::default();
        let w = c.apply("allow", &["publish", "192.168.1.77/24"]).unwrap();
        assert_eq!(
            w.as_deref(),
            Some("low address bits of 192.168.1.77/24 are meaningless")
        );
        assert_eq!(c.apply("allow", &["192.168.1.0/24"]).unwrap(), None);
    }

    #[test]
    fn live_off_values() {
        let s = conf(&[("drop_idle_publisher", &["off"]), ("sync", &["OFF"])]).resolve();
        assert_eq!(s.live.drop_idle_publisher_ms, None);
        assert_eq!(s.live.sync_ms, 0);
        let s = conf(&[("drop_idle_publisher", &["0"])]).resolve();
        assert_eq!(s.live.drop_idle_publisher_ms, None);
        let s = conf(&[("drop_idle_publisher", &["10s"])]).resolve();
        assert_eq!(s.live.drop_idle_publisher_ms, Some(10_000));
    }

    #[test]
    fn record_flags_accumulate_and_warn_on_repeats() {
        let mut c = RtmpConf::default();
        assert_eq!(c.apply("record", &["video"]).unwrap(), None);
        assert_eq!(c.apply("record", &["KEYFRAMES", "manual"]).unwrap(), None);
        let w = c.apply("record", &["video"]).unwrap();
        assert_eq!(
            w.as_deref(),
            Some("duplicate value \"video\" in \"record\" directive")
        );
        let f = c.resolve().record.flags;
        assert!(f.video && f.keyframes && f.manual && !f.audio && !f.off);
        assert!(f.enabled() && !f.automatic());
        let all = conf(&[("record", &["all"])]).resolve().record.flags;
        assert!(all.audio && all.video && all.automatic());
        let off = conf(&[("record", &["off"])]).resolve().record.flags;
        assert!(off.off && !off.enabled());
    }

    #[test]
    fn relay_targets_keep_their_parameters() {
        let c = conf(&[
            (
                "push",
                &[
                    "rtmp://cdn.example.com:1936/live/key",
                    "app=other",
                    "playPath=pp",
                    "LIVE=1",
                    "flashVer=FMLE/3.0",
                ],
            ),
            (
                "pull",
                &[
                    "origin.example.com/app",
                    "name=local",
                    "static",
                    "start=5",
                    "stop=9",
                ],
            ),
        ]);
        let s = c.resolve().relay;
        let p = &s.pushes[0];
        assert_eq!((p.url.host.as_str(), p.url.port), ("cdn.example.com", 1936));
        assert_eq!(p.url.app.as_deref(), Some("live"));
        assert_eq!(p.url.play_path.as_deref(), Some("key"));
        assert_eq!(p.app.as_deref(), Some("other"));
        assert_eq!(p.play_path.as_deref(), Some("pp"));
        assert_eq!(p.flash_ver.as_deref(), Some("FMLE/3.0"));
        assert_eq!(p.live, Some(1));
        assert!(!p.static_pull);
        let q = &s.pulls[0];
        assert_eq!(
            (q.url.host.as_str(), q.url.port),
            ("origin.example.com", 1935)
        );
        assert!(q.static_pull);
        assert_eq!(
            (q.name.as_deref(), q.start, q.stop),
            (Some("local"), Some(5), Some(9))
        );
        let not_static = conf(&[("pull", &["rtmp://o/app", "static=0"])])
            .resolve()
            .relay;
        assert!(!not_static.pulls[0].static_pull);
    }

    #[test]
    fn notify_urls_accept_bare_hosts_and_https() {
        let s = conf(&[
            ("on_publish", &["localhost:8080/auth"]),
            ("on_play", &["https://auth.example.com/play"]),
        ])
        .resolve()
        .notify;
        let p = s.on_publish.unwrap();
        assert_eq!(
            (p.host.as_str(), p.port, p.path.as_str()),
            ("localhost", 8080, "/auth")
        );
        assert_eq!(s.on_play.unwrap().port, 443);
    }

    #[test]
    fn overwritten_callback_keeps_the_last_value() {
        let mut c = RtmpConf::default();
        c.apply("on_publish", &["http://a/1"]).unwrap();
        c.apply("on_publish", &["http://b/2"]).unwrap();
        assert_eq!(c.resolve().notify.on_publish.unwrap().host, "b");
    }

    #[test]
    fn exec_options_turn_name_arguments_into_filters() {
        let line: &[&str] = &["ffmpeg", "-i", "x", "name=cam1", "name=cam2"];
        let s = conf(&[("exec_options", &["on"]), ("exec", line)]).resolve();
        let e = &s.exec.push[0];
        assert_eq!(e.cmd, "ffmpeg");
        assert_eq!(e.args, ["-i", "x"]);
        assert_eq!(e.names, ["cam1", "cam2"]);
        let s = conf(&[("exec", line)]).resolve();
        assert_eq!(s.exec.push[0].args.len(), 4);
        assert!(s.exec.push[0].names.is_empty());
    }

    #[test]
    fn kill_signal_names_and_numbers() {
        let sig = |v: &str| {
            conf(&[("exec_kill_signal", &[v])])
                .resolve()
                .exec
                .kill_signal
        };
        assert_eq!(sig("term"), libc::SIGTERM);
        assert_eq!(sig("SIGUSR1"), libc::SIGUSR1);
        assert_eq!(sig("KILL"), libc::SIGKILL);
        assert_eq!(sig("15"), 15);
    }

    #[test]
    fn hls_variant_and_dir_access_are_stored() {
        let s = conf(&[
            (
                "hls_variant",
                &["_mid", "BANDWIDTH=448000", "RESOLUTION=640x360"],
            ),
            ("hls_dir_access", &["0750"]),
        ])
        .resolve()
        .hls;
        assert_eq!(s.variants[0].suffix, "_mid");
        assert_eq!(
            s.variants[0].attrs,
            ["BANDWIDTH=448000", "RESOLUTION=640x360"]
        );
        assert_eq!(s.dir_access, 0o750);
    }

    #[test]
    fn check_refuses_access_log_with_unknown_format() {
        let c = conf(&[("access_log", &["a.log", "mine"])]);
        assert_eq!(
            c.check().unwrap_err().to_string(),
            "unknown log format \"mine\""
        );
        let mut app = c.clone();
        app.merge_from(&conf(&[("log_format", &["mine", "$app"])]));
        assert!(app.check().is_ok());
        assert!(conf(&[("access_log", &["a.log"])]).check().is_ok());
        let c = conf(&[("log_format", &["dup", "$app"])]);
        let mut c2 = c.clone();
        assert_eq!(
            c2.apply("log_format", &["dup", "$name"])
                .unwrap_err()
                .to_string(),
            "duplicate \"log_format\" name \"dup\""
        );
    }

    #[test]
    fn play_entries_split_local_and_http() {
        let s = conf(&[("play", &["/var/flv", "http://media/vod", "HTTPS://media/s"])]).resolve();
        assert_eq!(s.play.entries[0], PlayEntry::Local("/var/flv".into()));
        assert!(matches!(&s.play.entries[1], PlayEntry::Http(u) if u.host == "media"));
        assert!(matches!(&s.play.entries[2], PlayEntry::Http(u) if u.port == 443));
    }

    #[test]
    fn hostile_arguments_do_not_panic() {
        let junk: &[&str] = &[
            "ééé",
            "aéé",
            "€€€",
            "unix€",
            "SIé",
            "htt€://",
            "",
            "\u{0}",
            "ü",
            "[",
            "]",
            ":",
            "$",
            "${",
            "%",
            "/",
            "9".repeat(40).leak(),
            "é=é",
        ];
        for d in DIRECTIVES {
            for j in junk {
                let mut c = RtmpConf::default();
                let _ = c.apply(d.name, &[j]);
                let _ = c.apply(d.name, &[j, j]);
                let _ = c.apply(d.name, &[j, j, j]);
                let _ = HttpConf::default().apply(d.name, &[j]);
                let _ = MainConf::default().apply(d.name, &[j]);
            }
            let _ = RtmpConf::default().apply(d.name, &[]);
        }
    }
}
