//! The `/control` http API of the C module (ngx_rtmp_control_module.c), parsed without nginx.
//!
//! `GET …/<section>/<method>?args`: `record/start|stop`, `drop/publisher|subscriber|client`,
//! `redirect/publisher|subscriber|client`. The glue passes the URI path (nginx has already
//! decoded it) and the raw query string; [`parse_control`] returns what to do to which sessions.
//! An unknown section makes the handler decline (nginx answers 404) as the C module does;
//! anything else wrong is a [`ControlError::BadRequest`] with a one-line reason.
//!
//! Differences from the C module, all on the safe side: query values are URL-decoded (the C
//! module compared them raw, so `name=a%20b` never matched), malformed values are refused
//! instead of matching nothing or everything, and `newname` is checked like a published name.

use thiserror::Error;

use crate::rtmp::command::{escape_for_log, validate_name, NameKind};

/// Longest accepted query value, after decoding (the C module's names are at most 255 bytes).
pub const MAX_CONTROL_VALUE_LEN: usize = 255;
/// Longest accepted query string.
pub const MAX_CONTROL_QUERY_LEN: usize = 4096;

/// Why a control request was refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ControlError {
    /// Not `record`, `drop` or `redirect`: the handler declines, as the C module does.
    #[error("unknown control section \"{0}\"")]
    UnknownSection(String),
    /// The request is malformed; the text is a one-line reason for a 400 answer and the log.
    #[error("bad control request: {0}")]
    BadRequest(String),
    /// An `rtmp_control` directive value is not one of the known sections.
    #[error(
        "invalid rtmp_control value \"{0}\": it must be one of \"all\", \"record\", \"drop\", \"redirect\""
    )]
    UnknownMaskWord(String),
    #[error("rtmp_control needs at least one of \"all\", \"record\", \"drop\", \"redirect\"")]
    EmptyMask,
}

fn bad(reason: impl Into<String>) -> ControlError {
    ControlError::BadRequest(reason.into())
}

/// What to do with each matching session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Close the session; the answer is the count.
    Drop,
    /// Close the stream and re-issue play/publish under `newname` (may carry `?args`).
    Redirect { newname: String },
    /// Start the `manual` recorder `rec` ("" = the application's unnamed recorder).
    RecordStart { rec: String },
    /// Stop the recorder `rec`.
    RecordStop { rec: String },
}

/// Which sessions of a matching stream are affected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Publisher,
    /// Players.
    Subscriber,
    /// Publishers and players.
    Client,
}

impl Target {
    /// Whether a session that is (or is not) publishing is a target.
    pub fn admits(self, publishing: bool) -> bool {
        match self {
            Target::Publisher => publishing,
            Target::Subscriber => !publishing,
            Target::Client => true,
        }
    }
}

/// The `srv`, `app`, `name`, `addr` and `clientid` query parameters; `None` matches any.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Index of the `server{}` block (default 0). The handler answers an error when it is out
    /// of range, as the C module did ("Server index out of range").
    pub srv: usize,
    pub app: Option<String>,
    pub name: Option<String>,
    pub addr: Option<String>,
    pub clientid: Option<u64>,
}

impl Filter {
    /// Whether a session of stream `name` in application `app` of server `server_index`, from
    /// `addr` with connection number `clientid`, is selected. Comparisons are exact.
    pub fn matches(
        &self,
        server_index: usize,
        app: &str,
        name: &str,
        addr: &str,
        clientid: u64,
    ) -> bool {
        server_index == self.srv
            && self.app.as_deref().is_none_or(|a| a == app)
            && self.name.as_deref().is_none_or(|n| n == name)
            && self.addr.as_deref().is_none_or(|a| a == addr)
            && self.clientid.is_none_or(|c| c == clientid)
    }
}

/// A parsed `/control` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlRequest {
    pub action: Action,
    /// `record` always targets publishers, as in the C module.
    pub target: Target,
    pub filter: Filter,
}

impl ControlRequest {
    /// Whether this session is affected: the filter matches and the target admits it.
    pub fn selects(
        &self,
        server_index: usize,
        app: &str,
        name: &str,
        addr: &str,
        clientid: u64,
        publishing: bool,
    ) -> bool {
        self.target.admits(publishing)
            && self.filter.matches(server_index, app, name, addr, clientid)
    }
}

/// Which sections a location serves (`rtmp_control all|record|drop|redirect ...`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ControlMask {
    pub record: bool,
    pub drop: bool,
    pub redirect: bool,
}

impl ControlMask {
    pub const ALL: ControlMask = ControlMask {
        record: true,
        drop: true,
        redirect: true,
    };

    /// Parses the directive's words; several words accumulate like nginx's bitmask slot.
    pub fn parse(words: &[&str]) -> Result<ControlMask, ControlError> {
        if words.is_empty() {
            return Err(ControlError::EmptyMask);
        }
        let mut m = ControlMask::default();
        for w in words {
            match *w {
                "all" => m = ControlMask::ALL,
                "record" => m.record = true,
                "drop" => m.drop = true,
                "redirect" => m.redirect = true,
                other => return Err(ControlError::UnknownMaskWord(escape_for_log(other))),
            }
        }
        Ok(m)
    }

    /// Whether the request's section is enabled here; when not, the handler declines like the
    /// C module (the section is unknown to this location).
    pub fn allows(&self, req: &ControlRequest) -> bool {
        match req.action {
            Action::Drop => self.drop,
            Action::Redirect { .. } => self.redirect,
            Action::RecordStart { .. } | Action::RecordStop { .. } => self.record,
        }
    }
}

impl From<crate::conf::ControlMask> for ControlMask {
    fn from(m: crate::conf::ControlMask) -> ControlMask {
        use crate::conf::ControlMask as C;
        ControlMask {
            record: m.contains(C::RECORD),
            drop: m.contains(C::DROP),
            redirect: m.contains(C::REDIRECT),
        }
    }
}

/// Splits `…/<section>/<method>` the C module's way: the last path segment is the method, the
/// one before it the section. `path` may be the whole URI path or what follows the location
/// prefix ("drop/publisher").
fn section_and_method(path: &str) -> (Option<&str>, &str) {
    match path.rsplit_once('/') {
        None => (None, path),
        Some((head, method)) => {
            let section = head.rsplit_once('/').map_or(head, |(_, s)| s);
            (Some(section), method)
        }
    }
}

/// Parses a control request from the URI path and the raw query string (without `?`).
pub fn parse_control(path_after_prefix: &str, args: &str) -> Result<ControlRequest, ControlError> {
    let (section, method) = section_and_method(path_after_prefix);
    let section = match section {
        Some(s @ ("record" | "drop" | "redirect")) => s,
        Some(other) => return Err(ControlError::UnknownSection(escape_for_log(other))),
        None => return Err(ControlError::UnknownSection(String::new())),
    };
    if args.len() > MAX_CONTROL_QUERY_LEN {
        return Err(bad(format!(
            "query string of {} bytes is longer than {MAX_CONTROL_QUERY_LEN}",
            args.len()
        )));
    }
    let filter = parse_filter(args)?;

    let (action, target) = if section == "record" {
        let rec = text_arg(args, "rec")?.unwrap_or_default();
        let action = match method {
            "start" => Action::RecordStart { rec },
            "stop" => Action::RecordStop { rec },
            other => {
                return Err(bad(format!(
                    "unknown record method \"{}\" (expected start or stop)",
                    escape_for_log(other)
                )))
            }
        };
        (action, Target::Publisher)
    } else {
        let target = match method {
            "publisher" => Target::Publisher,
            "subscriber" => Target::Subscriber,
            "client" => Target::Client,
            other => {
                return Err(bad(format!(
                    "unknown {section} target \"{}\" (expected publisher, subscriber or client)",
                    escape_for_log(other)
                )))
            }
        };
        let action = if section == "drop" {
            Action::Drop
        } else {
            let newname = text_arg(args, "newname")?
                .filter(|n| !n.is_empty())
                .ok_or_else(|| bad("newname not specified"))?;
            check_newname(&newname)?;
            Action::Redirect { newname }
        };
        (action, target)
    };
    Ok(ControlRequest {
        action,
        target,
        filter,
    })
}

fn parse_filter(args: &str) -> Result<Filter, ControlError> {
    let srv = match decoded_arg(args, "srv")? {
        None => 0,
        Some(v) => parse_number(&v, "srv")?,
    };
    let clientid = match decoded_arg(args, "clientid")? {
        None => None,
        Some(v) => Some(parse_number(&v, "clientid")?),
    };
    // An empty `app=` means every application, as in the C module; an empty name or address
    // matches nothing, also as in the C module.
    let app = text_arg(args, "app")?.filter(|a| !a.is_empty());
    Ok(Filter {
        srv,
        app,
        name: text_arg(args, "name")?,
        addr: text_arg(args, "addr")?,
        clientid,
    })
}

/// Decimal digits only (like nginx's `ngx_atoi`), no sign, no overflow.
fn parse_number<T: std::str::FromStr>(v: &str, key: &str) -> Result<T, ControlError> {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(format!(
            "{key} \"{}\" is not a number",
            escape_for_log(v)
        )));
    }
    v.parse()
        .map_err(|_| bad(format!("{key} \"{}\" is out of range", escape_for_log(v))))
}

/// A decoded text value with no control characters.
fn text_arg(args: &str, key: &str) -> Result<Option<String>, ControlError> {
    let v = decoded_arg(args, key)?;
    if let Some(v) = &v {
        if let Some(c) = v.chars().find(|c| c.is_control()) {
            return Err(bad(format!(
                "{key} contains control character U+{:04X}",
                u32::from(c)
            )));
        }
    }
    Ok(v)
}

/// `newname` may carry `?args` like a publish/play name; the name part must be a valid stream
/// name (no path separators, no "..").
fn check_newname(newname: &str) -> Result<(), ControlError> {
    let name = newname.split_once('?').map_or(newname, |(n, _)| n);
    validate_name(NameKind::Stream, name).map_err(|e| bad(format!("newname: {e}")))
}

/// The first value of `key` (compared ASCII-case-insensitively, like nginx's `ngx_http_arg`),
/// URL-decoded and bounded by [`MAX_CONTROL_VALUE_LEN`].
fn decoded_arg(args: &str, key: &str) -> Result<Option<String>, ControlError> {
    let Some(raw) = query_arg(args, key) else {
        return Ok(None);
    };
    // Each decoded byte takes at most three encoded ones: refuse early, before decoding.
    if raw.len() > MAX_CONTROL_VALUE_LEN.saturating_mul(3) {
        return Err(too_long(key, raw.len()));
    }
    let v = percent_decode(raw).ok_or_else(|| bad(format!("{key} has bad %-encoding")))?;
    if v.len() > MAX_CONTROL_VALUE_LEN {
        return Err(too_long(key, v.len()));
    }
    Ok(Some(v))
}

fn too_long(key: &str, len: usize) -> ControlError {
    bad(format!(
        "{key} is {len} bytes long, the limit is {MAX_CONTROL_VALUE_LEN}"
    ))
}

/// The raw (still encoded) value of the first `key=value` pair in a query string. Keys match
/// ASCII-case-insensitively; a key without `=` is not a match (nginx's `ngx_http_arg`).
pub(crate) fn query_arg<'a>(args: &'a str, key: &str) -> Option<&'a str> {
    args.split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
}

/// Decodes `%xx` and `+` (space). `None` for a truncated or non-hex escape or a result that is
/// not UTF-8.
pub(crate) fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        match c {
            b'%' => {
                let hi = hex(*b.get(i + 1)?)?;
                let lo = hex(*b.get(i + 2)?)?;
                out.push(hi << 4 | lo);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(path: &str, args: &str) -> ControlRequest {
        parse_control(path, args).unwrap_or_else(|e| panic!("{path}?{args}: {e}"))
    }

    fn bad_reason(path: &str, args: &str) -> String {
        match parse_control(path, args) {
            Err(ControlError::BadRequest(r)) => {
                assert!(!r.contains('\n') && !r.contains('\0'), "{r:?}");
                r
            }
            other => panic!("{path}?{args}: expected BadRequest, got {other:?}"),
        }
    }

    #[test]
    fn drop_publisher_with_app_and_name() {
        let r = ok("drop/publisher", "app=live&name=cam1");
        assert_eq!(r.action, Action::Drop);
        assert_eq!(r.target, Target::Publisher);
        assert_eq!(
            r.filter,
            Filter {
                srv: 0,
                app: Some("live".into()),
                name: Some("cam1".into()),
                addr: None,
                clientid: None,
            }
        );
    }

    #[test]
    fn drop_targets_subscriber_and_client() {
        assert_eq!(ok("drop/subscriber", "").target, Target::Subscriber);
        let r = ok("drop/client", "addr=192.0.2.1&clientid=42&srv=1");
        assert_eq!(r.target, Target::Client);
        assert_eq!(r.filter.addr.as_deref(), Some("192.0.2.1"));
        assert_eq!(r.filter.clientid, Some(42));
        assert_eq!(r.filter.srv, 1);
    }

    #[test]
    fn full_uri_uses_the_last_two_segments_like_the_c_module() {
        let r = ok("/admin/control/drop/publisher", "app=live");
        assert_eq!(r.action, Action::Drop);
        assert_eq!(ok("/control/record/start", "").target, Target::Publisher);
    }

    #[test]
    fn unknown_or_missing_section_is_declined() {
        assert!(matches!(
            parse_control("kick/publisher", ""),
            Err(ControlError::UnknownSection(s)) if s == "kick"
        ));
        assert!(matches!(
            parse_control("drop", ""),
            Err(ControlError::UnknownSection(_))
        ));
        assert!(matches!(
            parse_control("", ""),
            Err(ControlError::UnknownSection(_))
        ));
        assert!(matches!(
            parse_control("/control/drop/publisher/", ""),
            Err(ControlError::UnknownSection(s)) if s == "publisher"
        ));
        // Sections are case-sensitive, as in the C module.
        assert!(matches!(
            parse_control("DROP/publisher", ""),
            Err(ControlError::UnknownSection(_))
        ));
    }

    #[test]
    fn unknown_method_is_a_bad_request() {
        assert!(bad_reason("drop/everyone", "").contains("everyone"));
        assert!(bad_reason("drop/", "").contains("target"));
        assert!(bad_reason("redirect/x", "newname=a").contains("redirect target"));
        assert!(bad_reason("record/pause", "").contains("record method"));
    }

    #[test]
    fn redirect_needs_a_valid_newname() {
        let r = ok("redirect/subscriber", "app=live&name=a&newname=b");
        assert_eq!(
            r.action,
            Action::Redirect {
                newname: "b".into()
            }
        );
        assert_eq!(
            bad_reason("redirect/publisher", "app=live"),
            "newname not specified"
        );
        assert_eq!(
            bad_reason("redirect/publisher", "newname="),
            "newname not specified"
        );
        assert!(bad_reason("redirect/publisher", "newname=..%2Fetc").contains("newname"));
        assert!(bad_reason("redirect/publisher", "newname=a%2Fb").contains("path separator"));
        assert!(bad_reason("redirect/publisher", "newname=-x").contains("newname"));
    }

    #[test]
    fn redirect_newname_may_carry_args() {
        let r = ok("redirect/client", "newname=cam2%3Ftoken%3Dabc");
        assert_eq!(
            r.action,
            Action::Redirect {
                newname: "cam2?token=abc".into()
            }
        );
    }

    #[test]
    fn record_uses_rec_with_an_empty_default() {
        let r = ok("record/start", "app=live&name=cam1");
        assert_eq!(r.action, Action::RecordStart { rec: String::new() });
        let r = ok("record/stop", "app=live&name=cam1&rec=rec1");
        assert_eq!(r.action, Action::RecordStop { rec: "rec1".into() });
        assert_eq!(r.target, Target::Publisher);
    }

    #[test]
    fn values_are_url_decoded() {
        let r = ok(
            "drop/client",
            "name=a%20b+c&app=l%C3%AFve&addr=%5B2001%3Adb8%3A%3A1%5D",
        );
        assert_eq!(r.filter.name.as_deref(), Some("a b c"));
        assert_eq!(r.filter.app.as_deref(), Some("lïve"));
        assert_eq!(r.filter.addr.as_deref(), Some("[2001:db8::1]"));
    }

    #[test]
    fn first_occurrence_wins_and_keys_ignore_case() {
        let r = ok("drop/client", "NAME=a&name=b&App=x");
        assert_eq!(r.filter.name.as_deref(), Some("a"));
        assert_eq!(r.filter.app.as_deref(), Some("x"));
        // A key without '=' is ignored; a similar longer key is not a match.
        let r = ok("drop/client", "name&appname=z");
        assert_eq!(r.filter.name, None);
        assert_eq!(r.filter.app, None);
    }

    #[test]
    fn empty_app_means_all_but_empty_name_matches_nothing() {
        let r = ok("drop/publisher", "app=&name=");
        assert_eq!(r.filter.app, None);
        assert_eq!(r.filter.name.as_deref(), Some(""));
        assert!(!r.filter.matches(0, "live", "cam1", "1.2.3.4", 1));
    }

    #[test]
    fn nul_and_control_characters_are_refused() {
        assert!(bad_reason("drop/client", "name=a%00b").contains("U+0000"));
        assert!(bad_reason("drop/client", "addr=%0A").contains("U+000A"));
        assert!(bad_reason("record/start", "rec=%1b[31m").contains("U+001B"));
        assert!(bad_reason("redirect/client", "newname=a%00").contains("U+0000"));
    }

    #[test]
    fn malformed_percent_encoding_is_refused() {
        for v in ["%", "%4", "%zz", "%G0", "%C3", "%FF%FE"] {
            let reason = bad_reason("drop/client", &format!("name={v}"));
            assert!(reason.contains("%-encoding"), "{v}: {reason}");
        }
    }

    #[test]
    fn numbers_must_be_plain_decimal() {
        for q in [
            "srv=x",
            "srv=",
            "srv=-1",
            "srv=+1",
            "srv=1.0",
            "clientid=abc",
            "clientid=0x10",
        ] {
            let r = bad_reason("drop/client", q);
            assert!(r.contains("not a number"), "{q}: {r}");
        }
        let r = bad_reason("drop/client", "clientid=99999999999999999999999");
        assert!(r.contains("out of range"));
        assert_eq!(ok("drop/client", "srv=007").filter.srv, 7);
    }

    #[test]
    fn over_long_values_and_queries_are_refused() {
        let long = "a".repeat(MAX_CONTROL_VALUE_LEN + 1);
        assert!(bad_reason("drop/client", &format!("name={long}")).contains("limit"));
        let encoded = "%41".repeat(MAX_CONTROL_VALUE_LEN + 1);
        assert!(bad_reason("drop/client", &format!("app={encoded}")).contains("limit"));
        let ok_len = "b".repeat(MAX_CONTROL_VALUE_LEN);
        assert_eq!(
            ok("drop/client", &format!("name={ok_len}"))
                .filter
                .name
                .as_deref(),
            Some(ok_len.as_str())
        );
        let huge = format!("x={}", "y".repeat(MAX_CONTROL_QUERY_LEN));
        assert!(bad_reason("drop/client", &huge).contains("query string"));
        // Unknown parameters are ignored whatever they hold.
        assert_eq!(ok("drop/client", "junk=%ZZ%00").action, Action::Drop);
    }

    #[test]
    fn hostile_section_names_are_escaped_in_errors() {
        let e = parse_control("a\nb/publisher", "").unwrap_err().to_string();
        assert!(!e.contains('\n'), "{e}");
        let long = format!("{}/x", "s".repeat(10_000));
        let e = parse_control(&long, "").unwrap_err().to_string();
        assert!(e.len() < 200, "{}", e.len());
    }

    #[test]
    fn filter_matches_with_none_as_any() {
        let any = Filter::default();
        assert!(any.matches(0, "live", "cam", "1.2.3.4", 5));
        assert!(!any.matches(1, "live", "cam", "1.2.3.4", 5));
        let f = Filter {
            srv: 1,
            app: Some("live".into()),
            name: Some("cam".into()),
            addr: Some("1.2.3.4".into()),
            clientid: Some(5),
        };
        assert!(f.matches(1, "live", "cam", "1.2.3.4", 5));
        assert!(!f.matches(1, "Live", "cam", "1.2.3.4", 5));
        assert!(!f.matches(1, "live", "cam2", "1.2.3.4", 5));
        assert!(!f.matches(1, "live", "cam", "1.2.3.5", 5));
        assert!(!f.matches(1, "live", "cam", "1.2.3.4", 6));
    }

    #[test]
    fn target_and_selects_combine_with_the_filter() {
        let r = ok("drop/subscriber", "app=live");
        assert!(r.selects(0, "live", "cam", "a", 1, false));
        assert!(!r.selects(0, "live", "cam", "a", 1, true));
        assert!(Target::Client.admits(true) && Target::Client.admits(false));
        assert!(Target::Publisher.admits(true) && !Target::Publisher.admits(false));
    }

    #[test]
    fn control_mask_parses_and_gates_sections() {
        assert_eq!(ControlMask::parse(&["all"]), Ok(ControlMask::ALL));
        let m = ControlMask::parse(&["drop", "redirect"]).unwrap();
        assert!(m.allows(&ok("drop/client", "")));
        assert!(m.allows(&ok("redirect/client", "newname=x")));
        assert!(!m.allows(&ok("record/start", "")));
        assert!(ControlMask::parse(&["record"])
            .unwrap()
            .allows(&ok("record/stop", "")));
        assert_eq!(ControlMask::parse(&[]), Err(ControlError::EmptyMask));
        assert!(matches!(
            ControlMask::parse(&["drop", "kick"]),
            Err(ControlError::UnknownMaskWord(w)) if w == "kick"
        ));
    }

    #[test]
    fn control_mask_converts_from_the_conf_bitmask() {
        let c = crate::conf::parse_control_mask(&["record"]).unwrap();
        assert_eq!(
            ControlMask::from(c),
            ControlMask {
                record: true,
                ..ControlMask::default()
            }
        );
        assert_eq!(
            ControlMask::from(crate::conf::ControlMask::ALL),
            ControlMask::ALL
        );
    }

    #[test]
    fn percent_decode_handles_edge_cases() {
        assert_eq!(percent_decode("").as_deref(), Some(""));
        assert_eq!(percent_decode("a+b%2B").as_deref(), Some("a b+"));
        assert_eq!(percent_decode("%e2%82%ac").as_deref(), Some("€"));
        assert_eq!(percent_decode("%"), None);
        assert_eq!(percent_decode("ab%2"), None);
        assert_eq!(percent_decode("%C3%28"), None);
    }
}
