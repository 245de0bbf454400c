//! The RTMP access log (ngx_rtmp_log_module.c): one line per finished session, rendered from a
//! `log_format`. The glue fills a [`LogRecord`] at disconnect and writes the rendered line.
//!
//! Unlike the C module, which copies names verbatim, string values are escaped the way nginx's
//! http access log does (`"`, `\`, controls and non-ASCII bytes as `\xHH`), so a hostile
//! stream name cannot forge log lines or break a `"$name"` field.

use std::fmt::Write as _;

use thiserror::Error;

use crate::conf::{compile_log_format, ConfError, LogOp, LogVar, COMBINED_LOG_FORMAT};

/// Errors of the access-log layer.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AccessLogError {
    /// A `log_format` that does not compile (unknown variable, missing bracket ...).
    #[error(transparent)]
    Format(#[from] ConfError),
}

/// `$command` as the C module writes it: what the session did.
pub fn command_name(play: bool, publish: bool) -> &'static str {
    match (play, publish) {
        (false, false) => "NONE",
        (true, false) => "PLAY",
        (false, true) => "PUBLISH",
        (true, true) => "PLAY+PUBLISH",
    }
}

/// A compiled format: literals and variables.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct LogFormat {
    ops: Vec<LogOp>,
}

/// Everything a line can show about one session. Time is passed in (pure core).
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct LogRecord {
    /// Connection number.
    pub connection: u64,
    pub remote_addr: String,
    pub app: String,
    /// Last published or played stream name (without `?args`).
    pub name: String,
    /// Its query string (without `?`).
    pub args: String,
    pub flashver: String,
    pub swfurl: String,
    pub tcurl: String,
    pub pageurl: String,
    /// See [`command_name`].
    pub command: String,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// Wall clock when the line is written, milliseconds since the Unix epoch.
    pub unix_ms: u64,
    /// Local time zone offset east of UTC, in minutes (for `$time_local`).
    pub tz_offset_min: i32,
    /// How long the session lasted.
    pub session_ms: u64,
    /// TLS version of a client of an `ssl` listener; empty for plain RTMP.
    pub ssl_protocol: String,
    /// The SNI name that client sent; empty when none (or plain RTMP).
    pub ssl_server_name: String,
}

impl LogFormat {
    /// Compiles one format string.
    pub fn compile(format: &str) -> Result<LogFormat, AccessLogError> {
        LogFormat::compile_parts(&[format])
    }

    /// Compiles `log_format`'s string arguments, concatenated as nginx does.
    pub fn compile_parts(parts: &[&str]) -> Result<LogFormat, AccessLogError> {
        Ok(LogFormat {
            ops: compile_log_format(parts)?,
        })
    }

    /// From ops the config layer already compiled.
    pub fn from_ops(ops: Vec<LogOp>) -> LogFormat {
        LogFormat { ops }
    }

    /// The predefined `combined` format.
    pub fn combined() -> LogFormat {
        // The constant is known to compile (tested); an empty format would only log newlines.
        LogFormat::compile(COMBINED_LOG_FORMAT).unwrap_or(LogFormat { ops: Vec::new() })
    }

    /// Appends one line, ending with '\n', for `r`.
    pub fn render(&self, r: &LogRecord, out: &mut String) {
        for op in &self.ops {
            match op {
                LogOp::Literal(text) => out.push_str(text),
                LogOp::Var(var) => render_var(*var, r, out),
            }
        }
        out.push('\n');
    }
}

fn render_var(var: LogVar, r: &LogRecord, out: &mut String) {
    match var {
        LogVar::Connection => push_num(out, r.connection),
        LogVar::RemoteAddr => escape_into(out, &r.remote_addr),
        LogVar::App => escape_into(out, &r.app),
        LogVar::Name => escape_into(out, &r.name),
        LogVar::Args => escape_into(out, &r.args),
        LogVar::FlashVer => escape_into(out, &r.flashver),
        LogVar::SwfUrl => escape_into(out, &r.swfurl),
        LogVar::TcUrl => escape_into(out, &r.tcurl),
        LogVar::PageUrl => escape_into(out, &r.pageurl),
        LogVar::Command => escape_into(out, &r.command),
        LogVar::BytesSent => push_num(out, r.bytes_sent),
        LogVar::BytesReceived => push_num(out, r.bytes_received),
        LogVar::TimeLocal => time_local(out, r.unix_ms, r.tz_offset_min),
        LogVar::Msec => {
            let _ = write!(out, "{}.{:03}", r.unix_ms / 1000, r.unix_ms % 1000);
        }
        LogVar::SessionTime => push_num(out, r.session_ms / 1000),
        LogVar::SessionReadableTime => readable_time(out, r.session_ms / 1000),
        LogVar::SslProtocol => escape_or_dash(out, &r.ssl_protocol),
        LogVar::SslServerName => escape_or_dash(out, &r.ssl_server_name),
    }
}

/// An empty value as `-`: what nginx's http access log writes for its `$ssl_*` variables on a
/// plain connection (or without SNI), which are "not found" there.
fn escape_or_dash(out: &mut String, s: &str) {
    if s.is_empty() {
        out.push('-');
    } else {
        escape_into(out, s);
    }
}

fn push_num(out: &mut String, n: u64) {
    let _ = write!(out, "{n}");
}

/// nginx's access-log escaping: `"`, `\`, controls, DEL and non-ASCII bytes become `\xHH`.
pub fn escape_into(out: &mut String, s: &str) {
    for &c in s.as_bytes() {
        if !(0x20..0x7f).contains(&c) || c == b'"' || c == b'\\' {
            let _ = write!(out, "\\x{c:02X}");
        } else {
            out.push(char::from(c));
        }
    }
}

/// `1d 2h 3m 4s`, leading zero units left out, as the C module writes it.
fn readable_time(out: &mut String, secs: u64) {
    let days = secs / 86_400;
    let hours = secs / 3600 % 24;
    let minutes = secs / 60 % 60;
    let seconds = secs % 60;
    if days > 0 {
        let _ = write!(out, "{days}d ");
    }
    if days > 0 || hours > 0 {
        let _ = write!(out, "{hours}h ");
    }
    if days > 0 || hours > 0 || minutes > 0 {
        let _ = write!(out, "{minutes}m ");
    }
    let _ = write!(out, "{seconds}s");
}

/// Year, month, day of a day count since 1970-01-01 (proleptic Gregorian; H. Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    // day is 1..=31 and month 1..=12 by construction.
    (year, month as u32, day as u32)
}

/// `21/Nov/2026:10:00:00 +0000`, nginx's `$time_local`.
fn time_local(out: &mut String, unix_ms: u64, tz_offset_min: i32) {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    // u64 ms / 1000 fits i64; the offset is at most ~2^31 minutes, far from overflow.
    let secs =
        i64::try_from(unix_ms / 1000).unwrap_or(i64::MAX / 2) + i64::from(tz_offset_min) * 60;
    let days = secs.div_euclid(86_400);
    let tod = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let mon = MONTHS
        .get(month.saturating_sub(1) as usize)
        .copied()
        .unwrap_or("Jan");
    let sign = if tz_offset_min < 0 { '-' } else { '+' };
    let off = tz_offset_min.unsigned_abs();
    let _ = write!(
        out,
        "{day:02}/{mon}/{year}:{:02}:{:02}:{:02} {sign}{:02}{:02}",
        tod / 3600,
        tod / 60 % 60,
        tod % 60,
        off / 60,
        off % 60
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-21 10:00:00.123 UTC.
    const NOV_21_2026_10H: u64 = 1_795_255_200_123;

    fn record() -> LogRecord {
        LogRecord {
            connection: 17,
            remote_addr: "192.0.2.7".into(),
            app: "live".into(),
            name: "cam".into(),
            args: "key=abc".into(),
            flashver: "FMLE/3.0 (compatible; FMSc/1.0)".into(),
            swfurl: "http://s/player.swf".into(),
            tcurl: "rtmp://example.com/live".into(),
            pageurl: "http://p/".into(),
            command: command_name(false, true).into(),
            bytes_sent: 3409,
            bytes_received: 123_456_789_012,
            unix_ms: NOV_21_2026_10H,
            tz_offset_min: 0,
            session_ms: 3_723_999,
            ssl_protocol: String::new(),
            ssl_server_name: String::new(),
        }
    }

    fn one(format: &str, r: &LogRecord) -> String {
        let mut out = String::new();
        LogFormat::compile(format).unwrap().render(r, &mut out);
        out.strip_suffix('\n').unwrap().to_owned()
    }

    #[test]
    fn combined_line_matches_the_c_module_layout() {
        let mut out = String::new();
        LogFormat::combined().render(&record(), &mut out);
        assert_eq!(
            out,
            "192.0.2.7 [21/Nov/2026:10:00:00 +0000] PUBLISH \"live\" \"cam\" \"key=abc\" - \
             123456789012 3409 \"http://p/\" \"FMLE/3.0 (compatible; FMSc/1.0)\" (1h 2m 3s)\n"
        );
    }

    #[test]
    fn each_string_variable_renders_its_field() {
        let r = record();
        assert_eq!(one("$connection", &r), "17");
        assert_eq!(one("$remote_addr", &r), "192.0.2.7");
        assert_eq!(one("$app", &r), "live");
        assert_eq!(one("$name", &r), "cam");
        assert_eq!(one("$args", &r), "key=abc");
        assert_eq!(one("$flashver", &r), "FMLE/3.0 (compatible; FMSc/1.0)");
        assert_eq!(one("$swfurl", &r), "http://s/player.swf");
        assert_eq!(one("$tcurl", &r), "rtmp://example.com/live");
        assert_eq!(one("$pageurl", &r), "http://p/");
        assert_eq!(one("$command", &r), "PUBLISH");
        assert_eq!(one("$bytes_sent", &r), "3409");
        assert_eq!(one("$bytes_received", &r), "123456789012");
    }

    #[test]
    fn tls_variables_render_the_handshake_or_a_dash_like_nginx_http() {
        let mut r = record();
        // Plain RTMP: nginx's http log writes "-" for a variable that is not found.
        assert_eq!(one("$ssl_protocol|$ssl_server_name", &r), "-|-");
        r.ssl_protocol = "TLSv1.3".into();
        assert_eq!(one("$ssl_protocol|$ssl_server_name", &r), "TLSv1.3|-");
        r.ssl_server_name = "cam.example.com".into();
        assert_eq!(
            one("$ssl_protocol|$ssl_server_name", &r),
            "TLSv1.3|cam.example.com"
        );
        // Escaped like every other value.
        r.ssl_server_name = "a\"b\nc".into();
        assert_eq!(one("$ssl_server_name", &r), "a\\x22b\\x0Ac");
        // The combined format does not change.
        let mut out = String::new();
        LogFormat::combined().render(&r, &mut out);
        assert!(!out.contains("TLSv1"), "{out}");
    }

    #[test]
    fn time_variables_render_like_nginx() {
        let r = record();
        assert_eq!(one("$time_local", &r), "21/Nov/2026:10:00:00 +0000");
        assert_eq!(one("$msec", &r), "1795255200.123");
        assert_eq!(one("$session_time", &r), "3723");
        assert_eq!(one("$session_readable_time", &r), "1h 2m 3s");
    }

    #[test]
    fn time_local_applies_the_zone_offset() {
        let mut r = record();
        r.tz_offset_min = 330;
        assert_eq!(one("$time_local", &r), "21/Nov/2026:15:30:00 +0530");
        r.tz_offset_min = -600;
        assert_eq!(one("$time_local", &r), "21/Nov/2026:00:00:00 -1000");
        r.tz_offset_min = -601;
        assert_eq!(one("$time_local", &r), "20/Nov/2026:23:59:00 -1001");
    }

    #[test]
    fn time_local_handles_epoch_leap_days_and_year_ends() {
        let mut r = record();
        r.unix_ms = 0;
        assert_eq!(one("$time_local", &r), "01/Jan/1970:00:00:00 +0000");
        r.tz_offset_min = -60;
        assert_eq!(one("$time_local", &r), "31/Dec/1969:23:00:00 -0100");
        r.tz_offset_min = 0;
        r.unix_ms = 951_782_400_000; // 2000-02-29
        assert_eq!(one("$time_local", &r), "29/Feb/2000:00:00:00 +0000");
        r.unix_ms = 1_767_225_599_999; // 2025-12-31 23:59:59.999
        assert_eq!(one("$time_local", &r), "31/Dec/2025:23:59:59 +0000");
        assert_eq!(one("$msec", &r), "1767225599.999");
        // Extremes do not panic.
        r.unix_ms = u64::MAX;
        r.tz_offset_min = i32::MAX;
        one("$time_local $msec", &r);
        r.tz_offset_min = i32::MIN;
        one("$time_local", &r);
    }

    #[test]
    fn readable_time_leaves_out_leading_zero_units() {
        let mut r = record();
        let cases = [
            (0, "0s"),
            (59_999, "59s"),
            (60_000, "1m 0s"),
            (3_600_000, "1h 0m 0s"),
            (86_400_000, "1d 0h 0m 0s"),
            (90_061_000, "1d 1h 1m 1s"),
        ];
        for (ms, text) in cases {
            r.session_ms = ms;
            assert_eq!(one("$session_readable_time", &r), text, "{ms}");
        }
        r.session_ms = u64::MAX;
        assert!(one("$session_readable_time", &r).ends_with('s'));
    }

    #[test]
    fn command_names_match_the_c_module() {
        assert_eq!(command_name(false, false), "NONE");
        assert_eq!(command_name(true, false), "PLAY");
        assert_eq!(command_name(false, true), "PUBLISH");
        assert_eq!(command_name(true, true), "PLAY+PUBLISH");
    }

    #[test]
    fn hostile_values_cannot_forge_lines_or_fields() {
        let mut r = record();
        r.name = "x\" \"y\n1.2.3.4 [01/Jan/2020:00:00:00 +0000] PUBLISH \"a".into();
        r.args = "k=\\\r\t\x1b[31m\x7f".into();
        r.flashver = "caf\u{e9}".into();
        let mut out = String::new();
        LogFormat::combined().render(&r, &mut out);
        assert_eq!(out.matches('\n').count(), 1);
        assert!(out.ends_with('\n'));
        assert!(out
            .contains("\"x\\x22 \\x22y\\x0A1.2.3.4 [01/Jan/2020:00:00:00 +0000] PUBLISH \\x22a\""));
        assert!(out.contains("\"k=\\x5C\\x0D\\x09\\x1B[31m\\x7F\""));
        assert!(out.contains("\"caf\\xC3\\xA9\""));
        // Exactly the 10 quotes of the format remain.
        assert_eq!(out.matches('"').count(), 10);
    }

    #[test]
    fn literals_braces_and_parts_are_concatenated() {
        let r = record();
        let f = LogFormat::compile_parts(&["${app}/", "$name", " $$"]);
        assert!(f.is_err(), "'$$' is not a variable");
        let f = LogFormat::compile_parts(&["${app}/", "${name}x", " ok"]).unwrap();
        let mut out = String::new();
        f.render(&r, &mut out);
        assert_eq!(out, "live/camx ok\n");
    }

    #[test]
    fn unknown_variable_error_names_it() {
        let err = LogFormat::compile("$remote_addr $bogus").unwrap_err();
        assert_eq!(err.to_string(), "unknown variable \"bogus\"");
        let err = LogFormat::compile("${app").unwrap_err();
        assert_eq!(err.to_string(), "missing closing bracket in \"app\"");
    }

    #[test]
    fn empty_values_render_empty_and_lines_accumulate() {
        let f = LogFormat::compile("[$name][$args]").unwrap();
        let mut out = String::new();
        f.render(&LogRecord::default(), &mut out);
        f.render(&LogRecord::default(), &mut out);
        assert_eq!(out, "[][]\n[][]\n");
    }

    #[test]
    fn from_ops_uses_config_compiled_formats() {
        let ops = compile_log_format(&["$app"]).unwrap();
        let mut out = String::new();
        LogFormat::from_ops(ops).render(&record(), &mut out);
        assert_eq!(out, "live\n");
    }
}
