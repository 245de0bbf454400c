//! `log_format` / `access_log`: the RTMP access log's format language.

use super::ConfError;

/// The predefined `combined` format (ngx_rtmp_log_module.c).
pub const COMBINED_LOG_FORMAT: &str = "$remote_addr [$time_local] $command \"$app\" \"$name\" \
     \"$args\" - $bytes_received $bytes_sent \"$pageurl\" \"$flashver\" ($session_readable_time)";

/// A variable of the RTMP access log.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum LogVar {
    Connection,
    RemoteAddr,
    App,
    FlashVer,
    SwfUrl,
    TcUrl,
    PageUrl,
    Command,
    Name,
    Args,
    BytesSent,
    BytesReceived,
    TimeLocal,
    Msec,
    SessionTime,
    SessionReadableTime,
    /// TLS version of an `ssl` listener's client (nginx's `$ssl_protocol`).
    SslProtocol,
    /// SNI name that client sent (nginx's `$ssl_server_name`).
    SslServerName,
}

const LOG_VARS: &[(&str, LogVar)] = &[
    ("connection", LogVar::Connection),
    ("remote_addr", LogVar::RemoteAddr),
    ("app", LogVar::App),
    ("flashver", LogVar::FlashVer),
    ("swfurl", LogVar::SwfUrl),
    ("tcurl", LogVar::TcUrl),
    ("pageurl", LogVar::PageUrl),
    ("command", LogVar::Command),
    ("name", LogVar::Name),
    ("args", LogVar::Args),
    ("bytes_sent", LogVar::BytesSent),
    ("bytes_received", LogVar::BytesReceived),
    ("time_local", LogVar::TimeLocal),
    ("msec", LogVar::Msec),
    ("session_time", LogVar::SessionTime),
    ("session_readable_time", LogVar::SessionReadableTime),
    ("ssl_protocol", LogVar::SslProtocol),
    ("ssl_server_name", LogVar::SslServerName),
];

impl LogVar {
    /// Looks a variable up by its name (without `$`); names are case-sensitive as in C.
    pub fn from_name(name: &str) -> Option<LogVar> {
        LOG_VARS.iter().find(|(n, _)| *n == name).map(|&(_, v)| v)
    }

    /// The variable's name, without `$`.
    pub fn name(self) -> &'static str {
        LOG_VARS
            .iter()
            .find(|(_, v)| *v == self)
            .map_or("", |&(n, _)| n)
    }
}

/// One piece of a compiled format.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum LogOp {
    Literal(String),
    Var(LogVar),
}

/// A named `log_format`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct LogFormat {
    pub name: String,
    pub ops: Vec<LogOp>,
}

/// One `access_log path [format]`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct AccessLog {
    /// `None`: nginx's default http access log (`NGX_HTTP_LOG_PATH`, e.g.
    /// `logs/access.log`), which the C module writes to when no `access_log` is given.
    pub path: Option<String>,
    /// Name of the format; `combined` when omitted.
    pub format: String,
}

fn push_literal(ops: &mut Vec<LogOp>, text: &str) {
    if text.is_empty() {
        return;
    }
    if let Some(LogOp::Literal(prev)) = ops.last_mut() {
        prev.push_str(text);
    } else {
        ops.push(LogOp::Literal(text.to_owned()));
    }
}

/// Compiles format strings (the `log_format` arguments after the name, concatenated without
/// separators as nginx does): `$name` or `${name}` variables, everything else literal.
pub fn compile_log_format(parts: &[&str]) -> Result<Vec<LogOp>, ConfError> {
    let mut ops = Vec::new();
    for part in parts {
        let mut rest: &str = part;
        while !rest.is_empty() {
            let Some(after_dollar) = rest.strip_prefix('$') else {
                let end = rest.find('$').unwrap_or(rest.len());
                push_literal(&mut ops, &rest[..end]);
                rest = &rest[end..];
                continue;
            };
            let (bracket, body) = match after_dollar.strip_prefix('{') {
                Some(b) => (true, b),
                None => (false, after_dollar),
            };
            let len = body
                .bytes()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == b'_')
                .count();
            let name = &body[..len];
            let mut next = &body[len..];
            if bracket {
                match next.strip_prefix('}') {
                    Some(n) => next = n,
                    None => {
                        return Err(ConfError::Other(format!(
                            "missing closing bracket in \"{name}\""
                        )))
                    }
                }
            }
            if name.is_empty() {
                return Err(ConfError::InvalidParameter {
                    directive: "log_format",
                    value: rest.to_owned(),
                });
            }
            let var = LogVar::from_name(name)
                .ok_or_else(|| ConfError::Other(format!("unknown variable \"{name}\"")))?;
            ops.push(LogOp::Var(var));
            rest = next;
        }
    }
    Ok(ops)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combined_format_compiles() {
        let ops = compile_log_format(&[COMBINED_LOG_FORMAT]).unwrap();
        assert_eq!(ops.first(), Some(&LogOp::Var(LogVar::RemoteAddr)));
        assert_eq!(ops.get(1), Some(&LogOp::Literal(" [".into())));
        assert_eq!(ops.last(), Some(&LogOp::Literal(")".into())));
        let vars = ops.iter().filter(|o| matches!(o, LogOp::Var(_))).count();
        assert_eq!(vars, 11);
    }

    #[test]
    fn braces_and_concatenated_parts() {
        let ops = compile_log_format(&["${app}x", "-$name", " "]).unwrap();
        assert_eq!(
            ops,
            vec![
                LogOp::Var(LogVar::App),
                LogOp::Literal("x-".into()),
                LogOp::Var(LogVar::Name),
                LogOp::Literal(" ".into()),
            ]
        );
    }

    #[test]
    fn tls_variables_compile() {
        let ops = compile_log_format(&["$ssl_protocol ${ssl_server_name}"]).unwrap();
        assert_eq!(
            ops,
            vec![
                LogOp::Var(LogVar::SslProtocol),
                LogOp::Literal(" ".into()),
                LogOp::Var(LogVar::SslServerName),
            ]
        );
        assert!(compile_log_format(&["$ssl_cipher"]).is_err());
    }

    #[test]
    fn every_variable_name_round_trips() {
        for (name, var) in LOG_VARS {
            assert_eq!(LogVar::from_name(name), Some(*var));
            assert_eq!(var.name(), *name);
        }
    }

    #[test]
    fn bad_formats_are_refused() {
        let err = |s: &str| compile_log_format(&[s]).unwrap_err().to_string();
        assert_eq!(err("$nope"), "unknown variable \"nope\"");
        assert_eq!(
            err("$"),
            "invalid parameter \"$\" in \"log_format\" directive"
        );
        assert_eq!(
            err("a $-"),
            "invalid parameter \"$-\" in \"log_format\" directive"
        );
        assert_eq!(err("${app"), "missing closing bracket in \"app\"");
        assert_eq!(
            err("${}"),
            "invalid parameter \"${}\" in \"log_format\" directive"
        );
        assert_eq!(err("$APP"), "unknown variable \"APP\"");
    }
}
