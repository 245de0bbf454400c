//! The configuration model: every directive of nginx-rtmp-module, value parsing, defaults, merge.
//!
//! How the nginx glue uses it while nginx parses `nginx.conf`:
//! 1. [`find`] the directive, check its [`Context`] ([`Directive::allowed_in`]) and argument
//!    count ([`Directive::check_args`]);
//! 2. [`RtmpConf::apply`] it to the conf of the current level (`rtmp{}`, `server{}`,
//!    `application{}`, `recorder{}`); main-context and http directives go to [`MainConf`] and
//!    [`HttpConf`] instead;
//! 3. after parsing, [`RtmpConf::merge_from`] each level's parent (rtmp → server → application
//!    → recorder), [`RtmpConf::check`] it, and [`RtmpConf::resolve`] it into [`Settings`], the
//!    typed values with the C module's defaults that the runtime reads.
//!
//! `apply` returns `Ok(Some(text))` for a warning nginx would log (`[warn]`) while still
//! accepting the directive, e.g. "low address bits of 10.0.0.1/8 are meaningless".
//! [`ConfError`]'s text reads like nginx's own messages, because the glue hands it to
//! `ngx_conf_log_error`, which appends " in /path/nginx.conf:12".

mod access;
pub mod certpath;
mod directives;
mod http;
mod listen;
mod log;
mod rtmp;
mod settings;
mod url;
pub mod value;

pub use access::{access_allowed, parse_access_rule, parse_cidr, AccessRule, AccessTarget, Action};
pub use directives::{find, DIRECTIVES};
pub use http::{
    parse_control_mask, parse_stat_format, parse_stat_mask, AutoPushSettings, ControlMask,
    HttpConf, MainConf, StatFormat, StatMask,
};
pub use listen::{
    check_listen_duplicates, parse_listen, Keepalive, ListenAddr, ListenSpec, DEFAULT_LISTEN_PORT,
};
pub use log::{compile_log_format, AccessLog, LogFormat, LogOp, LogVar, COMBINED_LOG_FORMAT};
pub use rtmp::{
    AccessConf, CoreConf, DashConf, ExecCommand, ExecConf, HlsConf, LiveConf, LogConf, NetConf,
    NotifyConf, PlayConf, RecordConf, RelayConf, RtmpConf, SslConf, MAX_CHUNK_SIZE, MAX_OUT_QUEUE,
    MAX_STREAMS, MIN_CHUNK_SIZE,
};
pub use settings::{
    AccessSettings, CoreSettings, DashClock, DashSettings, ExecSettings, ExecSpec, HlsContainer,
    HlsDatetime, HlsNaming, HlsSettings, HlsSlicing, HlsType, HlsVariant, LiveSettings,
    LogSettings, Meta, NetSettings, NotifyMethod, NotifySettings, PlayEntry, PlaySettings,
    RecordFlags, RecordFormat, RecordSettings, RelaySettings, RelayTarget, SessionCache, Settings,
    SslSettings, TlsProtocol, DEFAULT_PLAY_FLUSH_INTERVAL_MS, MAX_PLAY_FLUSH_INTERVAL_MS,
};
pub use url::{parse_http_url, parse_rtmp_url, HttpUrl, RtmpUrl, Scheme};

/// Where a directive may appear.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Context {
    /// nginx's main context, outside `rtmp{}` (`rtmp_auto_push*`, `rtmp_socket_dir`).
    Main,
    /// `rtmp{}`.
    Rtmp,
    /// `server{}` inside `rtmp{}`.
    Server,
    /// `application{}`.
    Application,
    /// `recorder{}` inside an application.
    Recorder,
    /// nginx's `http{}`, its `server{}` and `location{}` (`rtmp_stat`, `rtmp_control`).
    Http,
}

/// How many arguments (after the name) a directive takes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ArgCount {
    Exactly(u8),
    /// Inclusive bounds.
    Between(u8, u8),
    AtLeast(u8),
    /// Exactly one: `on` or `off`.
    Flag,
}

impl ArgCount {
    /// Whether `n` arguments are acceptable.
    pub fn accepts(self, n: usize) -> bool {
        match self {
            ArgCount::Exactly(k) => n == usize::from(k),
            ArgCount::Between(lo, hi) => (usize::from(lo)..=usize::from(hi)).contains(&n),
            ArgCount::AtLeast(k) => n >= usize::from(k),
            ArgCount::Flag => n == 1,
        }
    }
}

/// How far a directive is supported.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Support {
    /// Parsed and acted on.
    Implemented,
    /// Parsed, validated and stored, not acted on yet: the glue logs one
    /// `[warn] <name> is not implemented yet and is ignored`.
    Planned,
    /// Accepted for compatibility but not needed by this implementation; the glue logs a
    /// `[warn]` with this reason.
    Unneeded(&'static str),
}

/// One directive of the table.
#[derive(Clone, Copy, Debug)]
pub struct Directive {
    pub name: &'static str,
    pub contexts: &'static [Context],
    pub args: ArgCount,
    pub support: Support,
    /// May appear several times at one level (`allow`, `push`, `exec`, `hls_variant`, ...).
    pub multiple: bool,
}

impl Directive {
    /// Whether the directive may appear in `ctx`.
    pub fn allowed_in(&self, ctx: Context) -> bool {
        self.contexts.contains(&ctx)
    }

    /// Checks the argument count, with nginx's message.
    pub fn check_args(&self, n: usize) -> Result<(), ConfError> {
        if self.args.accepts(n) {
            Ok(())
        } else {
            Err(ConfError::ArgCount(self.name))
        }
    }

    /// Checks the context, with nginx's message.
    pub fn check_context(&self, ctx: Context) -> Result<(), ConfError> {
        if self.allowed_in(ctx) {
            Ok(())
        } else {
            Err(ConfError::NotAllowedHere(self.name))
        }
    }
}

/// A configuration error. The text reads like nginx's, without the file and line (nginx adds
/// them).
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum ConfError {
    #[error("unknown directive \"{0}\"")]
    UnknownDirective(String),
    #[error("\"{0}\" directive is not allowed here")]
    NotAllowedHere(&'static str),
    #[error("invalid number of arguments in \"{0}\" directive")]
    ArgCount(&'static str),
    #[error("\"{0}\" directive is duplicate")]
    Duplicate(&'static str),
    /// `expected` says what would be valid ("it must be \"on\" or \"off\""); may be empty.
    #[error(
        "invalid value \"{value}\" in \"{directive}\" directive{}",
        expected_suffix(.expected)
    )]
    InvalidValue {
        directive: &'static str,
        value: String,
        expected: String,
    },
    #[error("invalid parameter \"{value}\" in \"{directive}\" directive")]
    InvalidParameter {
        directive: &'static str,
        value: String,
    },
    /// Any other message, already worded like nginx's.
    #[error("{0}")]
    Other(String),
}

/// What [`RtmpConf::apply`] and friends return: `Ok(Some(warning))` accepts the directive and
/// asks the glue to log the text at `[warn]`.
pub type Applied = Result<Option<String>, ConfError>;

fn expected_suffix(expected: &str) -> String {
    if expected.is_empty() {
        String::new()
    } else {
        format!(", {expected}")
    }
}
