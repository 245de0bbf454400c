//! Typed RTMP commands: the meaning layer between AMF0 values and the session state machine.
//!
//! Parsing is as lenient as nginx-rtmp's where clients differ (missing trailing arguments take
//! their defaults, a non-number transaction id reads as 0, values after the ones a command needs
//! are not even decoded) and strict where it matters: a command without a string name, a
//! `connect` without an object, or a `publish`/`play` without a string stream name is an error.
//! Names are not validated here; the glue calls [`validate_name`] before using them.
//!
//! The builders return AMF0 payloads for type-20 command messages (type 18 for
//! [`rtmp_sample_access`]); the session wraps them into chunks.

use bytes::Bytes;
use thiserror::Error;

use super::amf0::{self, Amf0Value, AmfError, Decoder};
use super::ertmp::{self, Caps};

/// Longest application name accepted (nginx-rtmp keeps names in 256-byte C buffers).
pub const MAX_APP_NAME_LEN: usize = 255;
/// Longest stream name (the part before `?`) accepted; it becomes part of file names.
pub const MAX_STREAM_NAME_LEN: usize = 255;
/// How many characters of an offending name an error message shows.
pub const MAX_SHOWN_NAME_CHARS: usize = 64;

/// `fmsVer` of our `connect` reply; clients (and nginx-rtmp) expect an FMS-looking version.
pub const FMS_VERSION: &str = "FMS/3,0,1,123";
/// `capabilities` of our `connect` reply (nginx-rtmp and FMS send 31).
pub const FMS_CAPABILITIES: f64 = 31.0;
/// Name of the first value of a data message that asks the server to store metadata.
pub const SET_DATA_FRAME: &str = "@setDataFrame";
/// Name of the metadata data message players expect.
pub const ON_METADATA: &str = "onMetaData";

/// `level` of status objects.
pub const LEVEL_STATUS: &str = "status";
pub const LEVEL_WARNING: &str = "warning";
pub const LEVEL_ERROR: &str = "error";

// `code` of status objects.
pub const NC_CONNECT_SUCCESS: &str = "NetConnection.Connect.Success";
pub const NC_CONNECT_REJECTED: &str = "NetConnection.Connect.Rejected";
pub const NC_CONNECT_CLOSED: &str = "NetConnection.Connect.Closed";
pub const NC_CALL_FAILED: &str = "NetConnection.Call.Failed";
pub const NS_PUBLISH_START: &str = "NetStream.Publish.Start";
/// nginx-rtmp answers a second publisher of a live name with this (not `.Denied`).
pub const NS_PUBLISH_BAD_NAME: &str = "NetStream.Publish.BadName";
pub const NS_PUBLISH_DENIED: &str = "NetStream.Publish.Denied";
pub const NS_UNPUBLISH_SUCCESS: &str = "NetStream.Unpublish.Success";
pub const NS_PLAY_RESET: &str = "NetStream.Play.Reset";
pub const NS_PLAY_START: &str = "NetStream.Play.Start";
pub const NS_PLAY_STOP: &str = "NetStream.Play.Stop";
pub const NS_PLAY_COMPLETE: &str = "NetStream.Play.Complete";
pub const NS_PLAY_FAILED: &str = "NetStream.Play.Failed";
pub const NS_PLAY_STREAM_NOT_FOUND: &str = "NetStream.Play.StreamNotFound";
pub const NS_PLAY_UNPUBLISH_NOTIFY: &str = "NetStream.Play.UnpublishNotify";
pub const NS_PLAY_PUBLISH_NOTIFY: &str = "NetStream.Play.PublishNotify";
pub const NS_PAUSE_NOTIFY: &str = "NetStream.Pause.Notify";
pub const NS_UNPAUSE_NOTIFY: &str = "NetStream.Unpause.Notify";
pub const NS_SEEK_NOTIFY: &str = "NetStream.Seek.Notify";
pub const NS_RECORD_START: &str = "NetStream.Record.Start";
pub const NS_RECORD_STOP: &str = "NetStream.Record.Stop";

/// Why a command or data message could not be understood. Messages never echo long names.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum CommandError {
    #[error("malformed AMF in command: {0}")]
    Amf(#[from] AmfError),
    #[error("empty command message")]
    Empty,
    #[error("command name is not a string (found {found})")]
    NameNotString { found: &'static str },
    #[error("connect: command object is missing or not an object (found {found})")]
    ConnectWithoutObject { found: &'static str },
    #[error("{command}: stream name is missing or not a string (found {found})")]
    MissingStreamName {
        command: &'static str,
        found: &'static str,
    },
    #[error("play2: parameters object is missing or not an object (found {found})")]
    Play2WithoutObject { found: &'static str },
    #[error("@setDataFrame: handler name is missing or not a string (found {found})")]
    SetDataFrameWithoutName { found: &'static str },
}

fn found(v: Option<&Amf0Value>) -> &'static str {
    v.map_or("nothing", Amf0Value::type_name)
}

/// A stream name as sent in `publish`/`play`, split at the first `?` ("key?pwd=x" ->
/// name "key", args "pwd=x"). Prefixes such as "mp4:" are kept as part of the name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StreamName {
    pub name: String,
    pub args: String,
}

impl StreamName {
    pub fn parse(raw: &str) -> StreamName {
        let (name, args) = split_args(raw);
        StreamName {
            name: name.to_owned(),
            args: args.to_owned(),
        }
    }
}

fn split_args(raw: &str) -> (&str, &str) {
    raw.split_once('?').unwrap_or((raw, ""))
}

/// What `connect` asked for. Properties not listed here are dropped.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConnectRequest {
    pub transaction_id: f64,
    /// Application, without query arguments, a trailing "/" or "/_definst_"; taken from
    /// `tcUrl` when the client sent an empty `app`.
    pub app: String,
    /// What followed the first `?` in `app` ("live?x=1" -> "x=1").
    pub app_args: String,
    pub tc_url: String,
    pub flash_ver: String,
    pub swf_url: String,
    pub page_url: String,
    /// 0 (AMF0) or 3 (AMF3); echoed in the reply.
    pub object_encoding: f64,
    /// Enhanced RTMP: codecs the client supports ("hvc1", "av01", ...), empty for legacy clients
    /// (at most [`ertmp::MAX_FOURCC_ENTRIES`] strings of at most 4 characters).
    pub fourcc_list: Vec<String>,
    /// Enhanced RTMP: everything it announced (list, info maps, `capsEx`).
    pub caps: Caps,
}

/// One command from a client.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Connect(ConnectRequest),
    CreateStream {
        transaction_id: f64,
    },
    ReleaseStream {
        transaction_id: f64,
        name: StreamName,
    },
    FcPublish {
        transaction_id: f64,
        name: StreamName,
    },
    FcUnpublish {
        transaction_id: f64,
        name: StreamName,
    },
    Publish {
        transaction_id: f64,
        name: StreamName,
        /// "live", "record" or "append" as sent; "live" when absent or empty.
        publish_type: String,
    },
    Play {
        transaction_id: f64,
        name: StreamName,
        /// Seconds; -2 = live, or recorded if no live stream (the default); -1 = live only.
        start: f64,
        /// Seconds; -1 = until the end (the default).
        duration: f64,
        reset: bool,
    },
    Play2 {
        transaction_id: f64,
        name: StreamName,
        old_name: Option<StreamName>,
        start: f64,
        duration: f64,
        /// "switch", "swap", "reset", ... ; empty when absent.
        transition: String,
    },
    /// `pause` and `pauseRaw` (`pauseraw` in nginx-rtmp's table).
    Pause {
        transaction_id: f64,
        pause: bool,
        position_ms: f64,
    },
    Seek {
        transaction_id: f64,
        position_ms: f64,
    },
    DeleteStream {
        transaction_id: f64,
        stream_id: f64,
    },
    CloseStream {
        transaction_id: f64,
    },
    GetStreamLength {
        transaction_id: f64,
        name: StreamName,
    },
    ReceiveAudio(bool),
    ReceiveVideo(bool),
    /// Any other command (`_checkbw`, `FCSubscribe`, `_result`, ...): the session answers it
    /// with `_error` when it carries a transaction id, or ignores it.
    Call {
        name: String,
        transaction_id: f64,
    },
}

impl Command {
    /// The transaction id to answer with (0 for commands that have none).
    pub fn transaction_id(&self) -> f64 {
        match self {
            Command::Connect(c) => c.transaction_id,
            Command::CreateStream { transaction_id }
            | Command::ReleaseStream { transaction_id, .. }
            | Command::FcPublish { transaction_id, .. }
            | Command::FcUnpublish { transaction_id, .. }
            | Command::Publish { transaction_id, .. }
            | Command::Play { transaction_id, .. }
            | Command::Play2 { transaction_id, .. }
            | Command::Pause { transaction_id, .. }
            | Command::Seek { transaction_id, .. }
            | Command::DeleteStream { transaction_id, .. }
            | Command::CloseStream { transaction_id }
            | Command::GetStreamLength { transaction_id, .. }
            | Command::Call { transaction_id, .. } => *transaction_id,
            Command::ReceiveAudio(_) | Command::ReceiveVideo(_) => 0.0,
        }
    }

    /// The command's wire name, for logs (`Call` names may be long: escape before logging).
    pub fn name(&self) -> &str {
        match self {
            Command::Connect(_) => "connect",
            Command::CreateStream { .. } => "createStream",
            Command::ReleaseStream { .. } => "releaseStream",
            Command::FcPublish { .. } => "FCPublish",
            Command::FcUnpublish { .. } => "FCUnpublish",
            Command::Publish { .. } => "publish",
            Command::Play { .. } => "play",
            Command::Play2 { .. } => "play2",
            Command::Pause { .. } => "pause",
            Command::Seek { .. } => "seek",
            Command::DeleteStream { .. } => "deleteStream",
            Command::CloseStream { .. } => "closeStream",
            Command::GetStreamLength { .. } => "getStreamLength",
            Command::ReceiveAudio(_) => "receiveAudio",
            Command::ReceiveVideo(_) => "receiveVideo",
            Command::Call { name, .. } => name,
        }
    }
}

/// Command arguments, decoded one at a time; a missing trailing argument reads as `None`.
struct Args<'a> {
    d: Decoder<'a>,
}

impl Args<'_> {
    fn next(&mut self) -> Result<Option<Amf0Value>, AmfError> {
        self.d.next_value()
    }

    fn number(&mut self) -> Result<Option<f64>, AmfError> {
        Ok(self.next()?.as_ref().and_then(Amf0Value::as_f64))
    }

    /// A boolean; some clients send 0/1 numbers instead.
    fn flag(&mut self) -> Result<Option<bool>, AmfError> {
        Ok(match self.next()? {
            Some(Amf0Value::Boolean(b)) => Some(b),
            Some(Amf0Value::Number(n)) => Some(n != 0.0),
            _ => None,
        })
    }

    fn string(&mut self) -> Result<Option<String>, AmfError> {
        Ok(match self.next()? {
            Some(Amf0Value::String(s) | Amf0Value::LongString(s)) => Some(s),
            _ => None,
        })
    }

    fn stream_name(&mut self, command: &'static str) -> Result<StreamName, CommandError> {
        match self.next()? {
            Some(Amf0Value::String(s) | Amf0Value::LongString(s)) => Ok(StreamName::parse(&s)),
            other => Err(CommandError::MissingStreamName {
                command,
                found: found(other.as_ref()),
            }),
        }
    }
}

/// Parses a command message payload. `amf3_wrapped` is true for message type 17, whose body
/// starts with a 0x00 format byte (tolerated when missing: a command name is never 0x00).
pub fn parse_command(payload: &[u8], amf3_wrapped: bool) -> Result<Command, CommandError> {
    let body = match payload.split_first() {
        Some((0, rest)) if amf3_wrapped => rest,
        _ => payload,
    };
    let mut a = Args {
        d: Decoder::new(body),
    };
    let name = match a.next()? {
        None => return Err(CommandError::Empty),
        Some(Amf0Value::String(s) | Amf0Value::LongString(s)) => s,
        Some(other) => {
            return Err(CommandError::NameNotString {
                found: other.type_name(),
            })
        }
    };
    let transaction_id = a.number()?.unwrap_or(0.0);
    if name == "connect" {
        return parse_connect(&mut a, transaction_id).map(Command::Connect);
    }
    // All other known commands carry a command object (null) next: skip it.
    let known = matches!(
        name.as_str(),
        "createStream"
            | "releaseStream"
            | "FCPublish"
            | "FCUnpublish"
            | "publish"
            | "play"
            | "play2"
            | "pause"
            | "pauseRaw"
            | "pauseraw"
            | "seek"
            | "deleteStream"
            | "closeStream"
            | "getStreamLength"
            | "receiveAudio"
            | "receiveVideo"
    );
    if !known {
        return Ok(Command::Call {
            name,
            transaction_id,
        });
    }
    a.next()?;
    Ok(match name.as_str() {
        "createStream" => Command::CreateStream { transaction_id },
        "releaseStream" => Command::ReleaseStream {
            transaction_id,
            name: a.stream_name("releaseStream")?,
        },
        "FCPublish" => Command::FcPublish {
            transaction_id,
            name: a.stream_name("FCPublish")?,
        },
        "FCUnpublish" => Command::FcUnpublish {
            transaction_id,
            name: a.stream_name("FCUnpublish")?,
        },
        "publish" => {
            let name = a.stream_name("publish")?;
            let publish_type = a
                .string()?
                .filter(|t| !t.is_empty())
                .unwrap_or_else(|| "live".to_owned());
            Command::Publish {
                transaction_id,
                name,
                publish_type,
            }
        }
        "play" => {
            let name = a.stream_name("play")?;
            let start = a.number()?.unwrap_or(-2.0);
            let duration = a.number()?.unwrap_or(-1.0);
            let reset = a.flag()?.unwrap_or(false);
            Command::Play {
                transaction_id,
                name,
                start,
                duration,
                reset,
            }
        }
        "play2" => parse_play2(&mut a, transaction_id)?,
        "pause" | "pauseRaw" | "pauseraw" => Command::Pause {
            transaction_id,
            pause: a.flag()?.unwrap_or(false),
            position_ms: a.number()?.unwrap_or(0.0),
        },
        "seek" => Command::Seek {
            transaction_id,
            position_ms: a.number()?.unwrap_or(0.0),
        },
        "deleteStream" => Command::DeleteStream {
            transaction_id,
            stream_id: a.number()?.unwrap_or(0.0),
        },
        "closeStream" => Command::CloseStream { transaction_id },
        "getStreamLength" => Command::GetStreamLength {
            transaction_id,
            name: a.stream_name("getStreamLength")?,
        },
        "receiveAudio" => Command::ReceiveAudio(a.flag()?.unwrap_or(true)),
        "receiveVideo" => Command::ReceiveVideo(a.flag()?.unwrap_or(true)),
        // Only if the list above and this match disagree.
        _ => Command::Call {
            name: name.clone(),
            transaction_id,
        },
    })
}

fn str_prop(obj: &Amf0Value, key: &str) -> String {
    obj.get(key)
        .and_then(Amf0Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn parse_connect(a: &mut Args<'_>, transaction_id: f64) -> Result<ConnectRequest, CommandError> {
    let obj = match a.next()? {
        Some(v) if v.properties().is_some() => v,
        other => {
            return Err(CommandError::ConnectWithoutObject {
                found: found(other.as_ref()),
            })
        }
    };
    let raw_app = obj.get("app").and_then(Amf0Value::as_str).unwrap_or("");
    let (app, app_args) = split_args(raw_app);
    let tc_url = str_prop(&obj, "tcUrl");
    let mut app = normalize_app(app).to_owned();
    if app.is_empty() {
        app = app_from_tc_url(&tc_url).unwrap_or_default();
    }
    let fourcc_list = match obj.get("fourCcList") {
        Some(Amf0Value::StrictArray(items)) => items
            .iter()
            .take(ertmp::MAX_FOURCC_ENTRIES)
            .filter_map(Amf0Value::as_str)
            .filter(|s| s.len() <= ertmp::MAX_FOURCC_LEN)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    };
    Ok(ConnectRequest {
        transaction_id,
        app,
        app_args: app_args.to_owned(),
        tc_url,
        flash_ver: str_prop(&obj, "flashVer"),
        swf_url: str_prop(&obj, "swfUrl"),
        page_url: str_prop(&obj, "pageUrl"),
        object_encoding: obj
            .get("objectEncoding")
            .and_then(Amf0Value::as_f64)
            .unwrap_or(0.0),
        fourcc_list,
        caps: Caps::from_connect(&obj),
    })
}

/// Drops what nginx-rtmp drops from an app name: a "/_definst_" suffix (FMS's default
/// instance) or one trailing "/".
fn normalize_app(app: &str) -> &str {
    app.strip_suffix("/_definst_")
        .or_else(|| app.strip_suffix('/'))
        .unwrap_or(app)
}

fn parse_play2(a: &mut Args<'_>, transaction_id: f64) -> Result<Command, CommandError> {
    let params = match a.next()? {
        Some(v) if v.properties().is_some() => v,
        other => {
            return Err(CommandError::Play2WithoutObject {
                found: found(other.as_ref()),
            })
        }
    };
    let name = match params.get("streamName") {
        Some(Amf0Value::String(s) | Amf0Value::LongString(s)) => StreamName::parse(s),
        other => {
            return Err(CommandError::MissingStreamName {
                command: "play2",
                found: found(other),
            })
        }
    };
    let num = |k: &str, default: f64| params.get(k).and_then(Amf0Value::as_f64).unwrap_or(default);
    Ok(Command::Play2 {
        transaction_id,
        name,
        old_name: params
            .get("oldStreamName")
            .and_then(Amf0Value::as_str)
            .map(StreamName::parse),
        start: num("start", -2.0),
        duration: num("len", -1.0),
        transition: str_prop(&params, "transition"),
    })
}

/// The application of an RTMP URL: `rtmp://host[:port]/app[/inst][?args]` -> "app".
/// For clients that connect with an empty `app`.
pub fn app_from_tc_url(tc_url: &str) -> Option<String> {
    let (_scheme, rest) = tc_url.split_once("://")?;
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let (_host, path) = rest.split_once('/')?;
    let app = path.split('/').next().unwrap_or_default();
    (!app.is_empty()).then(|| app.to_owned())
}

// ---------------------------------------------------------------------------------------------
// Name validation

/// Which kind of name [`validate_name`] checks (they differ only in the length limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    App,
    Stream,
}

impl NameKind {
    pub fn max_len(self) -> usize {
        match self {
            NameKind::App => MAX_APP_NAME_LEN,
            NameKind::Stream => MAX_STREAM_NAME_LEN,
        }
    }
}

impl std::fmt::Display for NameKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NameKind::App => "application name",
            NameKind::Stream => "stream name",
        })
    }
}

/// Why a name was refused; `shown` is the name escaped and cut to [`MAX_SHOWN_NAME_CHARS`].
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum NameError {
    #[error("{kind} is empty")]
    Empty { kind: NameKind },
    #[error("{kind} \"{shown}\" is {len} bytes long (at most {max})")]
    TooLong {
        kind: NameKind,
        shown: String,
        len: usize,
        max: usize,
    },
    #[error("{kind} \"{shown}\" consists only of dots")]
    OnlyDots { kind: NameKind, shown: String },
    #[error("{kind} \"{shown}\" contains \"..\"")]
    DotDot { kind: NameKind, shown: String },
    #[error("{kind} \"{shown}\" starts with '-'")]
    LeadingDash { kind: NameKind, shown: String },
    #[error("{kind} \"{shown}\" contains {what}")]
    ForbiddenChar {
        kind: NameKind,
        shown: String,
        what: String,
    },
}

/// A name safe to put in a log line: control characters, quotes and backslashes escaped,
/// cut after [`MAX_SHOWN_NAME_CHARS`] characters with "..." appended.
pub fn escape_for_log(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(MAX_SHOWN_NAME_CHARS)
        .flat_map(char::escape_debug)
        .collect();
    if s.chars().nth(MAX_SHOWN_NAME_CHARS).is_some() {
        out.push_str("...");
    }
    out
}

/// Characters allowed in app and stream names: ASCII letters and digits, `-_.~@:+=,!`, and
/// non-ASCII characters other than controls, whitespace and invisible formatting characters.
/// Everything else (path separators, `?#%&*"'<>|;$` and backquote, spaces, controls) could
/// escape a directory, break a URL or a shell-ish `exec` line, or spoof a log.
fn allowed_char(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphanumeric()
            || matches!(c, '-' | '_' | '.' | '~' | '@' | ':' | '+' | '=' | ',' | '!');
    }
    !c.is_control()
        && !c.is_whitespace()
        && !matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
}

/// Checks a name before it is used to find an application or, later, to build file paths and
/// URLs. Permissive (dashes, dots, `@`, `:`, `=`, UTF-8 letters are fine) but never
/// path-escaping: no separators, no "..", no dot-only names, no leading '-' (it would read as
/// an option to `exec` programs).
pub fn validate_name(kind: NameKind, name: &str) -> Result<(), NameError> {
    let shown = || escape_for_log(name);
    if name.is_empty() {
        return Err(NameError::Empty { kind });
    }
    if name.len() > kind.max_len() {
        return Err(NameError::TooLong {
            kind,
            shown: shown(),
            len: name.len(),
            max: kind.max_len(),
        });
    }
    if name.bytes().all(|b| b == b'.') {
        return Err(NameError::OnlyDots {
            kind,
            shown: shown(),
        });
    }
    if name.contains("..") {
        return Err(NameError::DotDot {
            kind,
            shown: shown(),
        });
    }
    if name.starts_with('-') {
        return Err(NameError::LeadingDash {
            kind,
            shown: shown(),
        });
    }
    if let Some(c) = name.chars().find(|&c| !allowed_char(c)) {
        let what = match c {
            '/' | '\\' => format!("'{}' (a path separator)", c.escape_debug()),
            c if c.is_control() => format!("control character U+{:04X}", u32::from(c)),
            c if c.is_ascii() => format!("'{}'", c.escape_debug()),
            c => format!("character U+{:04X}", u32::from(c)),
        };
        return Err(NameError::ForbiddenChar {
            kind,
            shown: shown(),
            what,
        });
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Builders of what the server sends

fn start(name: &str, transaction_id: f64) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    amf0::write_string(&mut out, name);
    amf0::write_number(&mut out, transaction_id);
    out
}

fn write_str_prop(out: &mut Vec<u8>, key: &str, value: &str) {
    amf0::write_key(out, key);
    amf0::write_string(out, value);
}

/// `_result` to `connect`: server properties, then the Connect.Success info object. A client
/// that announced Enhanced RTMP (`enhanced`) also gets ours in the server properties, as the
/// spec asks; a legacy client gets exactly the C module's reply.
pub fn connect_result(transaction_id: f64, object_encoding: f64, enhanced: bool) -> Vec<u8> {
    let mut out = start("_result", transaction_id);
    amf0::write_object_start(&mut out);
    write_str_prop(&mut out, "fmsVer", FMS_VERSION);
    amf0::write_key(&mut out, "capabilities");
    amf0::write_number(&mut out, FMS_CAPABILITIES);
    if enhanced {
        ertmp::write_server_caps(&mut out);
    }
    amf0::write_object_end(&mut out);
    amf0::write_object_start(&mut out);
    write_str_prop(&mut out, "level", LEVEL_STATUS);
    write_str_prop(&mut out, "code", NC_CONNECT_SUCCESS);
    write_str_prop(&mut out, "description", "Connection succeeded.");
    amf0::write_key(&mut out, "objectEncoding");
    amf0::write_number(&mut out, object_encoding);
    amf0::write_object_end(&mut out);
    out
}

/// `_error` to `connect` (e.g. [`NC_CONNECT_REJECTED`]).
pub fn connect_error(transaction_id: f64, code: &str, description: &str) -> Vec<u8> {
    let mut out = start("_error", transaction_id);
    amf0::write_null(&mut out);
    write_info(&mut out, LEVEL_ERROR, code, description, &[]);
    out
}

/// `_result` to `createStream` with the new message stream id.
pub fn create_stream_result(transaction_id: f64, stream_id: f64) -> Vec<u8> {
    let mut out = start("_result", transaction_id);
    amf0::write_null(&mut out);
    amf0::write_number(&mut out, stream_id);
    out
}

/// `_result`, null, undefined: the acknowledgement of releaseStream, FCPublish, ...
pub fn simple_result(transaction_id: f64) -> Vec<u8> {
    let mut out = start("_result", transaction_id);
    amf0::write_null(&mut out);
    amf0::write_undefined(&mut out);
    out
}

/// `_error` to a call the server does not handle or refuses.
pub fn error_result(transaction_id: f64, description: &str) -> Vec<u8> {
    let mut out = start("_error", transaction_id);
    amf0::write_null(&mut out);
    write_info(&mut out, LEVEL_ERROR, NC_CALL_FAILED, description, &[]);
    out
}

fn write_info(
    out: &mut Vec<u8>,
    level: &str,
    code: &str,
    description: &str,
    extra: &[(&str, Amf0Value)],
) {
    amf0::write_object_start(out);
    write_str_prop(out, "level", level);
    write_str_prop(out, "code", code);
    write_str_prop(out, "description", description);
    for (k, v) in extra {
        amf0::write_key(out, k);
        amf0::encode(v, out);
    }
    amf0::write_object_end(out);
}

/// `onPlayStatus` {code, level, duration, bytes}: a data message (not a command) telling a
/// VOD player the file ended (`duration` in seconds, as Flash Media Server sends it).
pub fn on_play_status(code: &str, duration_ms: u32) -> Vec<u8> {
    let mut out = Vec::new();
    amf0::write_string(&mut out, "onPlayStatus");
    amf0::write_object_start(&mut out);
    write_str_prop(&mut out, "code", code);
    write_str_prop(&mut out, "level", LEVEL_STATUS);
    amf0::write_key(&mut out, "duration");
    amf0::write_number(&mut out, f64::from(duration_ms) / 1000.0);
    amf0::write_key(&mut out, "bytes");
    amf0::write_number(&mut out, 0.0);
    amf0::write_object_end(&mut out);
    out
}

/// `onStatus`, transaction 0, null, {level, code, description, extra...}: the form ffmpeg,
/// OBS and Flash parse. The session sends it on the stream's message stream id.
pub fn on_status(
    level: &str,
    code: &str,
    description: &str,
    extra: &[(&str, Amf0Value)],
) -> Vec<u8> {
    let mut out = start("onStatus", 0.0);
    amf0::write_null(&mut out);
    write_info(&mut out, level, code, description, extra);
    out
}

fn on_fc(command: &str, code: &str, description: &str) -> Vec<u8> {
    let mut out = start(command, 0.0);
    amf0::write_null(&mut out);
    amf0::write_object_start(&mut out);
    write_str_prop(&mut out, "code", code);
    write_str_prop(&mut out, "description", description);
    amf0::write_object_end(&mut out);
    out
}

/// `onFCPublish` after `FCPublish` (OBS logs it; ffmpeg does not wait for it).
pub fn on_fc_publish(stream_name: &str) -> Vec<u8> {
    on_fc("onFCPublish", NS_PUBLISH_START, stream_name)
}

/// `onFCUnpublish` after `FCUnpublish`.
pub fn on_fc_unpublish(stream_name: &str) -> Vec<u8> {
    on_fc("onFCUnpublish", NS_UNPUBLISH_SUCCESS, stream_name)
}

/// `_result` to `getStreamLength`: the duration in seconds (0 for live).
pub fn get_stream_length_result(transaction_id: f64, duration_secs: f64) -> Vec<u8> {
    let mut out = start("_result", transaction_id);
    amf0::write_null(&mut out);
    amf0::write_number(&mut out, duration_secs);
    out
}

/// Data message (type 18) `|RtmpSampleAccess`, true, true: lets Flash players read the
/// decoded audio and video (nginx-rtmp sends it before playback starts).
pub fn rtmp_sample_access() -> Vec<u8> {
    let mut out = Vec::with_capacity(24);
    amf0::write_string(&mut out, "|RtmpSampleAccess");
    amf0::write_bool(&mut out, true);
    amf0::write_bool(&mut out, true);
    out
}

/// `onBWDone`, 0, null: the end of the (skipped) bandwidth check some clients wait for.
pub fn on_bw_done() -> Vec<u8> {
    let mut out = start("onBWDone", 0.0);
    amf0::write_null(&mut out);
    out
}

// ---------------------------------------------------------------------------------------------
// Data messages

/// For a data message `"@setDataFrame", "onMetaData", {...}` returns the payload without the
/// first value (`"onMetaData", {...}`, what players expect), sliced rather than re-encoded so
/// the publisher's metadata reaches players byte for byte. `None` when the message does not
/// start with "@setDataFrame" (forward it as it is).
pub fn strip_set_data_frame(payload: &[u8]) -> Result<Option<Bytes>, CommandError> {
    let mut d = Decoder::new(payload);
    match d.next_value()? {
        Some(v) if v.as_str() == Some(SET_DATA_FRAME) => {}
        _ => return Ok(None),
    }
    let rest_at = d.position();
    match d.next_value()? {
        Some(Amf0Value::String(_) | Amf0Value::LongString(_)) => {}
        other => {
            return Err(CommandError::SetDataFrameWithoutName {
                found: found(other.as_ref()),
            })
        }
    }
    let rest = payload.get(rest_at..).unwrap_or_default();
    Ok(Some(Bytes::copy_from_slice(rest)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use amf::amf0::Value as V;

    fn s(x: &str) -> Amf0Value {
        Amf0Value::String(x.to_owned())
    }

    use crate::testutil::{amf0_str as vs, amf0_wire as wire, ffmpeg_metadata};

    fn vobj(props: &[(&str, V)]) -> V {
        V::Object {
            class_name: None,
            entries: props
                .iter()
                .map(|(k, v)| amf::Pair {
                    key: (*k).to_owned(),
                    value: v.clone(),
                })
                .collect(),
        }
    }

    fn parse(values: &[V]) -> Result<Command, CommandError> {
        parse_command(&wire(values), false)
    }

    #[test]
    fn ffmpeg_connect_is_parsed() {
        let bytes = wire(&[
            vs("connect"),
            V::Number(1.0),
            vobj(&[
                ("app", vs("live")),
                ("type", vs("nonprivate")),
                ("flashVer", vs("FMLE/3.0 (compatible; Lavf61.7.100)")),
                ("tcUrl", vs("rtmp://127.0.0.1:1935/live")),
            ]),
        ]);
        // The shape ffmpeg sends, checked byte by byte at the start.
        assert_eq!(
            &bytes[..22],
            b"\x02\x00\x07connect\x00\x3f\xf0\x00\x00\x00\x00\x00\x00\x03\x00\x03"
        );
        let Command::Connect(c) = parse_command(&bytes, false).unwrap() else {
            panic!("not connect")
        };
        assert_eq!(c.transaction_id, 1.0);
        assert_eq!(c.app, "live");
        assert_eq!(c.app_args, "");
        assert_eq!(c.tc_url, "rtmp://127.0.0.1:1935/live");
        assert_eq!(c.flash_ver, "FMLE/3.0 (compatible; Lavf61.7.100)");
        assert_eq!(c.swf_url, "");
        assert_eq!(c.page_url, "");
        assert_eq!(c.object_encoding, 0.0);
        assert!(c.fourcc_list.is_empty());
        assert_eq!(c.caps, Caps::LEGACY);
    }

    #[test]
    fn enhanced_connect_properties_are_negotiated() {
        use crate::media::flv::parse_video;
        use crate::rtmp::ertmp::{Wire, CAPS_EX_MULTITRACK};
        let connect = |extra: Vec<(&str, V)>| {
            let mut props = vec![("app", vs("live")), ("tcUrl", vs("rtmp://h/live"))];
            props.extend(extra);
            let Command::Connect(c) =
                parse(&[vs("connect"), V::Number(1.0), vobj(&props)]).unwrap()
            else {
                panic!("not connect")
            };
            c
        };
        let hevc = [0x90, b'h', b'v', b'c', b'1', 1];
        let hevc = Wire::of_video(&hevc, parse_video(&hevc).ok().as_ref());
        // ffmpeg 9 with -rtmp_enhanced_codecs hvc1,av01: the list only.
        let c = connect(vec![(
            "fourCcList",
            V::Array {
                entries: vec![vs("hvc1"), vs("av01")],
            },
        )]);
        assert!(c.caps.announced && c.caps.takes(&hevc));
        assert_eq!(c.caps.caps_ex, 0);
        // The v2 form: info maps (objects or ECMA arrays) and capsEx.
        let c = connect(vec![
            (
                "videoFourCcInfoMap",
                vobj(&[("hvc1", V::Number(1.0)), ("av01", V::Number(2.0))]),
            ),
            (
                "audioFourCcInfoMap",
                V::EcmaArray {
                    entries: vec![amf::Pair {
                        key: "*".to_owned(),
                        value: V::Number(4.0),
                    }],
                },
            ),
            ("capsEx", V::Number(f64::from(CAPS_EX_MULTITRACK))),
        ]);
        assert!(c.caps.announced && c.caps.takes(&hevc));
        assert_eq!(c.caps.caps_ex, CAPS_EX_MULTITRACK);
        assert!(c.fourcc_list.is_empty());
        // A hostile list: only the first 64 entries of at most 4 characters are kept.
        let long: Vec<V> = (0..10_000).map(|_| vs("hvc1-but-longer")).collect();
        let c = connect(vec![("fourCcList", V::Array { entries: long })]);
        assert!(c.fourcc_list.is_empty());
        assert!(c.caps.announced && !c.caps.takes(&hevc));
        let many: Vec<V> = (0..10_000).map(|_| vs("av01")).collect();
        let c = connect(vec![("fourCcList", V::Array { entries: many })]);
        assert_eq!(c.fourcc_list.len(), crate::rtmp::ertmp::MAX_FOURCC_ENTRIES);
    }

    #[test]
    fn obs_connect_is_parsed() {
        let cmd = parse(&[
            vs("connect"),
            V::Number(1.0),
            vobj(&[
                ("app", vs("live")),
                ("type", vs("nonprivate")),
                ("flashVer", vs("FMLE/3.0 (compatible; FMSc/1.0)")),
                ("swfUrl", vs("rtmp://example.com/live")),
                ("tcUrl", vs("rtmp://example.com/live")),
            ]),
        ])
        .unwrap();
        let Command::Connect(c) = cmd else {
            panic!("not connect")
        };
        assert_eq!(c.app, "live");
        assert_eq!(c.flash_ver, "FMLE/3.0 (compatible; FMSc/1.0)");
        assert_eq!(c.swf_url, "rtmp://example.com/live");
        assert_eq!(c.tc_url, "rtmp://example.com/live");
    }

    #[test]
    fn connect_app_arguments_and_suffixes_are_split_off() {
        let connect = |app: &str, tc: &str| {
            let Command::Connect(c) = parse(&[
                vs("connect"),
                V::Number(1.0),
                vobj(&[
                    ("app", vs(app)),
                    ("tcUrl", vs(tc)),
                    ("objectEncoding", V::Number(3.0)),
                    (
                        "fourCcList",
                        V::Array {
                            entries: vec![vs("hvc1"), vs("av01"), V::Null],
                        },
                    ),
                ]),
            ])
            .unwrap() else {
                panic!("not connect")
            };
            c
        };
        let c = connect("live?x=1&y=2", "rtmp://h/live?x=1&y=2");
        assert_eq!((c.app.as_str(), c.app_args.as_str()), ("live", "x=1&y=2"));
        assert_eq!(c.object_encoding, 3.0);
        assert_eq!(c.fourcc_list, ["hvc1", "av01"]);
        assert_eq!(connect("live/", "").app, "live");
        assert_eq!(connect("live/_definst_", "").app, "live");
        assert_eq!(connect("", "rtmp://h:1935/tv/inst?k=v").app, "tv");
        assert_eq!(connect("", "").app, "");
    }

    #[test]
    fn connect_without_object_is_an_error() {
        assert_eq!(
            parse(&[vs("connect"), V::Number(1.0), V::Null]),
            Err(CommandError::ConnectWithoutObject { found: "null" })
        );
        assert_eq!(
            parse(&[vs("connect"), V::Number(1.0)]),
            Err(CommandError::ConnectWithoutObject { found: "nothing" })
        );
    }

    #[test]
    fn ffmpeg_publish_sequence_is_parsed() {
        let name = || StreamName {
            name: "mykey".into(),
            args: "key=abc".into(),
        };
        assert_eq!(
            parse(&[
                vs("releaseStream"),
                V::Number(2.0),
                V::Null,
                vs("mykey?key=abc")
            ]),
            Ok(Command::ReleaseStream {
                transaction_id: 2.0,
                name: name()
            })
        );
        assert_eq!(
            parse(&[
                vs("FCPublish"),
                V::Number(3.0),
                V::Null,
                vs("mykey?key=abc")
            ]),
            Ok(Command::FcPublish {
                transaction_id: 3.0,
                name: name()
            })
        );
        assert_eq!(
            parse(&[vs("createStream"), V::Number(4.0), V::Null]),
            Ok(Command::CreateStream {
                transaction_id: 4.0
            })
        );
        assert_eq!(
            parse(&[
                vs("publish"),
                V::Number(5.0),
                V::Null,
                vs("mykey?key=abc"),
                vs("live")
            ]),
            Ok(Command::Publish {
                transaction_id: 5.0,
                name: name(),
                publish_type: "live".into()
            })
        );
        assert_eq!(
            parse(&[vs("FCUnpublish"), V::Number(6.0), V::Null, vs("mykey")]),
            Ok(Command::FcUnpublish {
                transaction_id: 6.0,
                name: StreamName::parse("mykey")
            })
        );
        assert_eq!(
            parse(&[vs("deleteStream"), V::Number(7.0), V::Null, V::Number(1.0)]),
            Ok(Command::DeleteStream {
                transaction_id: 7.0,
                stream_id: 1.0
            })
        );
    }

    #[test]
    fn publish_type_defaults_to_live_and_keeps_record() {
        let ty = |extra: &[V]| {
            let mut v = vec![vs("publish"), V::Number(5.0), V::Null, vs("k")];
            v.extend_from_slice(extra);
            match parse(&v).unwrap() {
                Command::Publish { publish_type, .. } => publish_type,
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(ty(&[]), "live");
        assert_eq!(ty(&[vs("")]), "live");
        assert_eq!(ty(&[V::Null]), "live");
        assert_eq!(ty(&[vs("record")]), "record");
        assert_eq!(ty(&[vs("append")]), "append");
    }

    #[test]
    fn missing_or_non_string_stream_name_is_an_error() {
        assert_eq!(
            parse(&[vs("publish"), V::Number(5.0), V::Null]),
            Err(CommandError::MissingStreamName {
                command: "publish",
                found: "nothing"
            })
        );
        assert_eq!(
            parse(&[vs("play"), V::Number(5.0), V::Null, V::Boolean(false)]),
            Err(CommandError::MissingStreamName {
                command: "play",
                found: "boolean"
            })
        );
        let e = parse(&[vs("play"), V::Number(5.0), V::Null, V::Number(1.0)]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "play: stream name is missing or not a string (found number)"
        );
    }

    #[test]
    fn play_arguments_default_like_flash() {
        assert_eq!(
            parse(&[vs("play"), V::Number(4.0), V::Null, vs("cam")]),
            Ok(Command::Play {
                transaction_id: 4.0,
                name: StreamName::parse("cam"),
                start: -2.0,
                duration: -1.0,
                reset: false
            })
        );
        assert_eq!(
            parse(&[
                vs("play"),
                V::Number(4.0),
                V::Null,
                vs("mp4:cam?t=1"),
                V::Number(-1000.0),
                V::Number(10.0),
                V::Boolean(true)
            ]),
            Ok(Command::Play {
                transaction_id: 4.0,
                name: StreamName {
                    name: "mp4:cam".into(),
                    args: "t=1".into()
                },
                start: -1000.0,
                duration: 10.0,
                reset: true
            })
        );
    }

    #[test]
    fn play2_reads_its_parameters_object() {
        let cmd = parse(&[
            vs("play2"),
            V::Number(0.0),
            V::Null,
            vobj(&[
                ("streamName", vs("hi?q")),
                ("oldStreamName", vs("lo")),
                ("transition", vs("switch")),
                ("start", V::Number(-1.0)),
            ]),
        ]);
        assert_eq!(
            cmd,
            Ok(Command::Play2 {
                transaction_id: 0.0,
                name: StreamName {
                    name: "hi".into(),
                    args: "q".into()
                },
                old_name: Some(StreamName::parse("lo")),
                start: -1.0,
                duration: -1.0,
                transition: "switch".into()
            })
        );
        assert_eq!(
            parse(&[vs("play2"), V::Number(0.0), V::Null, vobj(&[])]),
            Err(CommandError::MissingStreamName {
                command: "play2",
                found: "nothing"
            })
        );
        assert_eq!(
            parse(&[vs("play2"), V::Number(0.0), V::Null]),
            Err(CommandError::Play2WithoutObject { found: "nothing" })
        );
    }

    #[test]
    fn small_stream_commands_are_parsed() {
        assert_eq!(
            parse(&[
                vs("pause"),
                V::Number(0.0),
                V::Null,
                V::Boolean(true),
                V::Number(1500.0)
            ]),
            Ok(Command::Pause {
                transaction_id: 0.0,
                pause: true,
                position_ms: 1500.0
            })
        );
        assert_eq!(
            parse(&[vs("pauseRaw"), V::Number(0.0), V::Null, V::Number(0.0)]),
            Ok(Command::Pause {
                transaction_id: 0.0,
                pause: false,
                position_ms: 0.0
            })
        );
        assert_eq!(
            parse(&[vs("seek"), V::Number(0.0), V::Null, V::Number(20.0)]),
            Ok(Command::Seek {
                transaction_id: 0.0,
                position_ms: 20.0
            })
        );
        assert_eq!(
            parse(&[vs("closeStream"), V::Number(0.0), V::Null]),
            Ok(Command::CloseStream {
                transaction_id: 0.0
            })
        );
        assert_eq!(
            parse(&[vs("getStreamLength"), V::Number(3.0), V::Null, vs("v")]),
            Ok(Command::GetStreamLength {
                transaction_id: 3.0,
                name: StreamName::parse("v")
            })
        );
        assert_eq!(
            parse(&[
                vs("receiveAudio"),
                V::Number(0.0),
                V::Null,
                V::Boolean(false)
            ]),
            Ok(Command::ReceiveAudio(false))
        );
        assert_eq!(
            parse(&[vs("receiveVideo"), V::Number(0.0), V::Null]),
            Ok(Command::ReceiveVideo(true))
        );
    }

    #[test]
    fn unknown_commands_become_calls_and_trailing_garbage_is_not_read() {
        let mut b = wire(&[vs("_checkbw"), V::Number(9.0), V::Null]);
        b.push(0xEE); // never decoded
        let c = parse_command(&b, false).unwrap();
        assert_eq!(
            c,
            Command::Call {
                name: "_checkbw".into(),
                transaction_id: 9.0
            }
        );
        assert_eq!(c.name(), "_checkbw");
        assert_eq!(c.transaction_id(), 9.0);
        // A known command ignores bytes after its last argument too.
        let mut b = wire(&[vs("createStream"), V::Number(2.0), V::Null]);
        b.extend_from_slice(&[0xEE, 0xEE]);
        assert_eq!(
            parse_command(&b, false),
            Ok(Command::CreateStream {
                transaction_id: 2.0
            })
        );
    }

    #[test]
    fn non_number_transaction_id_reads_as_zero() {
        assert_eq!(
            parse(&[vs("createStream"), V::Null, V::Null]),
            Ok(Command::CreateStream {
                transaction_id: 0.0
            })
        );
        assert_eq!(
            parse(&[vs("createStream")]),
            Ok(Command::CreateStream {
                transaction_id: 0.0
            })
        );
    }

    #[test]
    fn malformed_commands_are_errors() {
        assert_eq!(parse_command(&[], false), Err(CommandError::Empty));
        assert_eq!(parse_command(&[0x00], true), Err(CommandError::Empty));
        assert_eq!(
            parse(&[V::Number(1.0)]),
            Err(CommandError::NameNotString { found: "number" })
        );
        assert!(matches!(
            parse_command(&[0x02, 0x00, 0x07, b'c'], false),
            Err(CommandError::Amf(AmfError::Truncated { .. }))
        ));
        let mut b = wire(&[vs("publish"), V::Number(1.0), V::Null]);
        b.extend_from_slice(&[0x02, 0xFF, 0xFF, b'x']);
        assert!(matches!(
            parse_command(&b, false),
            Err(CommandError::Amf(AmfError::Truncated { .. }))
        ));
        // A hostile command object: a depth bomb as connect's object.
        let mut b = wire(&[vs("connect"), V::Number(1.0)]);
        for _ in 0..10_000 {
            b.extend_from_slice(&[0x03, 0x00, 0x01, b'k']);
        }
        assert!(matches!(
            parse_command(&b, false),
            Err(CommandError::Amf(AmfError::TooDeep { .. }))
        ));
    }

    #[test]
    fn type_17_command_skips_the_format_byte_or_tolerates_its_absence() {
        let plain = wire(&[vs("publish"), V::Number(5.0), V::Null, vs("k")]);
        let mut wrapped = vec![0x00];
        wrapped.extend_from_slice(&plain);
        let expected = Command::Publish {
            transaction_id: 5.0,
            name: StreamName::parse("k"),
            publish_type: "live".into(),
        };
        assert_eq!(parse_command(&wrapped, true), Ok(expected.clone()));
        assert_eq!(parse_command(&plain, true), Ok(expected));
    }

    #[test]
    fn type_17_command_may_switch_to_amf3_values() {
        // 00, "play" (AMF0), 0 (AMF0), AMF3 null, AMF3 string "cam", AMF3 int -1000
        let mut b = vec![0x00];
        b.extend_from_slice(&wire(&[vs("play"), V::Number(0.0)]));
        b.extend_from_slice(&[0x11, 0x01, 0x11, 0x06, 0x07, b'c', b'a', b'm']);
        b.extend_from_slice(&[0x11, 0x04, 0xFF, 0xFF, 0xFC, 0x18]);
        assert_eq!(
            parse_command(&b, true),
            Ok(Command::Play {
                transaction_id: 0.0,
                name: StreamName::parse("cam"),
                start: -1000.0,
                duration: -1.0,
                reset: false
            })
        );
    }

    #[test]
    fn tc_url_yields_the_application() {
        let cases = [
            ("rtmp://host/live", Some("live")),
            ("rtmp://host:1935/live/inst", Some("live")),
            ("rtmps://host/app?token=1", Some("app")),
            ("rtmp://[::1]:1935/v6", Some("v6")),
            ("rtmp://host/", None),
            ("rtmp://host", None),
            ("rtmp://host?x=/y", None),
            ("host/live", None),
            ("", None),
        ];
        for (url, app) in cases {
            assert_eq!(app_from_tc_url(url).as_deref(), app, "{url}");
        }
    }

    #[test]
    fn name_validation_table() {
        use NameKind::{App, Stream};
        let ok = [
            "live",
            "mykey",
            "live_123",
            "cam-1.hd",
            "user@site",
            "mp4:movie",
            "a+b=c,d!~",
            "Ünïcødé",
            "直播",
            ".hidden",
            "a.b.c",
        ];
        for n in ok {
            assert_eq!(validate_name(Stream, n), Ok(()), "{n}");
            assert_eq!(validate_name(App, n), Ok(()), "{n}");
        }
        let bad: &[(&str, &str)] = &[
            ("", "stream name is empty"),
            (".", "consists only of dots"),
            ("...", "consists only of dots"),
            ("a/../b", "contains \"..\""),
            ("..a", "contains \"..\""),
            ("-rf", "starts with '-'"),
            ("a/b", "'/' (a path separator)"),
            ("a\\b", "'\\\\' (a path separator)"),
            ("a\0b", "control character U+0000"),
            ("a\u{7f}", "control character U+007F"),
            ("a\nb", "control character U+000A"),
            ("a\u{85}", "control character U+0085"),
            ("a b", "' '"),
            ("a?b", "'?'"),
            ("a#b", "'#'"),
            ("a%20", "'%'"),
            ("a*", "'*'"),
            ("a\"b", "'\\\"'"),
            ("a<b>", "'<'"),
            ("a|b", "'|'"),
            ("a;b", "';'"),
            ("$x", "'$'"),
            ("`x`", "'`'"),
            ("a\u{202E}b", "character U+202E"),
            ("a\u{A0}b", "character U+00A0"),
        ];
        for (n, msg) in bad {
            let e = validate_name(Stream, n).unwrap_err().to_string();
            assert!(e.contains(msg), "{n:?}: {e}");
        }
        let long = "a".repeat(MAX_STREAM_NAME_LEN + 1);
        assert_eq!(validate_name(Stream, &long[1..]), Ok(()));
        assert!(matches!(
            validate_name(Stream, &long),
            Err(NameError::TooLong {
                len: 256,
                max: 255,
                ..
            })
        ));
        assert!(matches!(
            validate_name(App, &"a".repeat(MAX_APP_NAME_LEN + 1)),
            Err(NameError::TooLong { .. })
        ));
    }

    #[test]
    fn name_errors_do_not_echo_huge_or_raw_names() {
        let huge = format!("\u{1b}[31m{}", "x".repeat(1 << 20));
        let e = validate_name(NameKind::Stream, &huge)
            .unwrap_err()
            .to_string();
        assert!(e.len() < 200, "{e}");
        assert!(!e.contains('\u{1b}'), "{e}");
        assert!(e.contains("\\u{1b}[31mxxx"), "{e}");
        assert!(e.contains("..."), "{e}");
        let e = validate_name(NameKind::App, "a\0b")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "application name \"a\\0b\" contains control character U+0000"
        );
    }

    fn decode(b: &[u8]) -> Vec<Amf0Value> {
        amf0::decode_all(b).unwrap()
    }

    fn info(v: &Amf0Value, k: &str) -> String {
        v.get(k).and_then(Amf0Value::as_str).unwrap().to_owned()
    }

    #[test]
    fn connect_result_decodes_to_what_clients_expect() {
        let v = decode(&connect_result(1.0, 3.0, false));
        assert_eq!(v.len(), 4);
        assert_eq!(v[0], s("_result"));
        assert_eq!(v[1], Amf0Value::Number(1.0));
        assert_eq!(info(&v[2], "fmsVer"), "FMS/3,0,1,123");
        assert_eq!(v[2].get("capabilities"), Some(&Amf0Value::Number(31.0)));
        assert_eq!(info(&v[3], "level"), "status");
        assert_eq!(info(&v[3], "code"), "NetConnection.Connect.Success");
        assert_eq!(info(&v[3], "description"), "Connection succeeded.");
        assert_eq!(v[3].get("objectEncoding"), Some(&Amf0Value::Number(3.0)));
        // A legacy client sees the C module's two server properties and nothing more.
        assert_eq!(v[2].properties().unwrap().len(), 2);
        // And the independent decoder agrees.
        let b = connect_result(1.0, 0.0, false);
        let mut r = &b[..];
        for _ in 0..4 {
            amf::amf0::Value::read_from(&mut r).unwrap();
        }
        assert!(r.is_empty());
    }

    #[test]
    fn connect_result_to_an_enhanced_client_carries_our_caps() {
        let legacy = connect_result(1.0, 0.0, false);
        let b = connect_result(1.0, 0.0, true);
        let v = decode(&b);
        assert_eq!(v.len(), 4);
        assert_eq!(info(&v[2], "fmsVer"), "FMS/3,0,1,123");
        let Some(Amf0Value::StrictArray(list)) = v[2].get("fourCcList") else {
            panic!("no fourCcList: {:?}", v[2])
        };
        let list: Vec<&str> = list.iter().filter_map(Amf0Value::as_str).collect();
        assert_eq!(
            list,
            [
                "avc1", "hvc1", "av01", "vp09", "vp08", "mp4a", ".mp3", "Opus", "fLaC", "ac-3",
                "ec-3"
            ]
        );
        for map in ["videoFourCcInfoMap", "audioFourCcInfoMap"] {
            let m = v[2].get(map).unwrap();
            assert_eq!(m.get("*"), Some(&Amf0Value::Number(4.0)), "{map}");
            assert_eq!(m.properties().unwrap().len(), 1);
        }
        assert_eq!(v[2].get("capsEx"), Some(&Amf0Value::Number(14.0)));
        // The info object is unchanged.
        assert_eq!(v[3], decode(&legacy)[3]);
        let mut r = &b[..];
        for _ in 0..4 {
            amf::amf0::Value::read_from(&mut r).unwrap();
        }
        assert!(r.is_empty());
    }

    #[test]
    fn error_builders_carry_level_error() {
        let v = decode(&connect_error(1.0, NC_CONNECT_REJECTED, "no such app"));
        assert_eq!(v[0], s("_error"));
        assert_eq!(v[1], Amf0Value::Number(1.0));
        assert_eq!(v[2], Amf0Value::Null);
        assert_eq!(info(&v[3], "level"), "error");
        assert_eq!(info(&v[3], "code"), "NetConnection.Connect.Rejected");
        assert_eq!(info(&v[3], "description"), "no such app");
        let v = decode(&error_result(7.0, "unknown call"));
        assert_eq!(v[0], s("_error"));
        assert_eq!(v[1], Amf0Value::Number(7.0));
        assert_eq!(info(&v[3], "code"), "NetConnection.Call.Failed");
    }

    #[test]
    fn result_builders_decode_back() {
        assert_eq!(
            decode(&create_stream_result(4.0, 1.0)),
            [
                s("_result"),
                Amf0Value::Number(4.0),
                Amf0Value::Null,
                Amf0Value::Number(1.0)
            ]
        );
        assert_eq!(
            decode(&simple_result(2.0)),
            [
                s("_result"),
                Amf0Value::Number(2.0),
                Amf0Value::Null,
                Amf0Value::Undefined
            ]
        );
        assert_eq!(
            decode(&get_stream_length_result(3.0, 0.0)),
            [
                s("_result"),
                Amf0Value::Number(3.0),
                Amf0Value::Null,
                Amf0Value::Number(0.0)
            ]
        );
        assert_eq!(
            decode(&rtmp_sample_access()),
            [
                s("|RtmpSampleAccess"),
                Amf0Value::Boolean(true),
                Amf0Value::Boolean(true)
            ]
        );
        assert_eq!(
            decode(&on_bw_done()),
            [s("onBWDone"), Amf0Value::Number(0.0), Amf0Value::Null]
        );
    }

    #[test]
    fn on_status_has_transaction_zero_null_and_info_with_extras() {
        let b = on_status(
            LEVEL_STATUS,
            NS_PLAY_START,
            "Start live",
            &[("details", s("cam")), ("clientid", Amf0Value::Number(5.0))],
        );
        let v = decode(&b);
        assert_eq!(v[0], s("onStatus"));
        assert_eq!(v[1], Amf0Value::Number(0.0));
        assert_eq!(v[2], Amf0Value::Null);
        let Amf0Value::Object(p) = &v[3] else {
            panic!("info is not an object")
        };
        let keys: Vec<&str> = p.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            ["level", "code", "description", "details", "clientid"]
        );
        assert_eq!(info(&v[3], "code"), "NetStream.Play.Start");
        assert_eq!(info(&v[3], "details"), "cam");
    }

    #[test]
    fn on_fc_builders_name_the_stream() {
        let v = decode(&on_fc_publish("key"));
        assert_eq!(v[0], s("onFCPublish"));
        assert_eq!(info(&v[3], "code"), NS_PUBLISH_START);
        assert_eq!(info(&v[3], "description"), "key");
        let v = decode(&on_fc_unpublish("key"));
        assert_eq!(v[0], s("onFCUnpublish"));
        assert_eq!(info(&v[3], "code"), NS_UNPUBLISH_SUCCESS);
    }

    #[test]
    fn set_data_frame_is_stripped_by_slicing() {
        let with = ffmpeg_metadata(true);
        let without = ffmpeg_metadata(false);
        assert_eq!(
            strip_set_data_frame(&with),
            Ok(Some(Bytes::from(without.clone())))
        );
        assert_eq!(strip_set_data_frame(&without), Ok(None));
        assert_eq!(strip_set_data_frame(&[]), Ok(None));
        assert_eq!(
            strip_set_data_frame(&wire(&[vs("@setDataFrame")])),
            Err(CommandError::SetDataFrameWithoutName { found: "nothing" })
        );
        assert!(matches!(
            strip_set_data_frame(&with[..20]),
            Err(CommandError::Amf(_))
        ));
    }
}
