//! HTTP callbacks (`on_connect`, `on_publish`, `on_play`, `on_update`, `on_*_done`,
//! `on_record_done`): the request we send and how the answer is read, without the transport.
//!
//! The glue resolves and connects (http or https), writes [`build_request`]'s bytes, feeds what
//! it reads to an [`http::ResponseParser`] and acts on [`http::verdict`]. Field names, their
//! order and the reading of the reply follow the C module (ngx_rtmp_notify_module.c,
//! ngx_rtmp_netcall_module.c) so existing auth servers keep working.

pub mod http;

use std::fmt::Write as _;

use thiserror::Error;

use crate::conf::HttpUrl;

pub use http::{verdict, ResponseHead, ResponseParser};

/// Longest client query string forwarded to a callback (the C module keeps them in 512-byte
/// buffers; we allow more because the request is built on the heap, but not unbounded).
pub const MAX_CLIENT_ARGS_LEN: usize = 4096;

/// Errors of the callback layer; each is one log line.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NotifyError {
    #[error("client arguments not forwarded: they contain spaces or control characters")]
    BadClientArgs,
    #[error("client arguments not forwarded: longer than {MAX_CLIENT_ARGS_LEN} bytes")]
    ClientArgsTooLong,
    #[error("callback response is not HTTP")]
    NotHttp,
    #[error("callback response header is larger than {limit} bytes")]
    HeadTooLarge { limit: usize },
    #[error("callback response has an invalid status line")]
    BadStatusLine,
    #[error("callback response has an invalid Location header")]
    BadLocation,
    #[error("callback response ended before its status line")]
    Truncated,
    /// Connect refused, timeout, TLS or resolver failure, reported by the transport.
    #[error("callback request failed: {0}")]
    Transport(String),
}

/// Which callback is being made.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum Call {
    Connect,
    Disconnect,
    Publish,
    Play,
    PublishDone,
    PlayDone,
    Done,
    RecordDone,
    Update,
}

impl Call {
    /// The `call=` value the C module sends (see [`CallRequest::role`] for `update`).
    pub fn as_str(self) -> &'static str {
        match self {
            Call::Connect => "connect",
            Call::Disconnect => "disconnect",
            Call::Publish => "publish",
            Call::Play => "play",
            Call::PublishDone => "publish_done",
            Call::PlayDone => "play_done",
            Call::Done => "done",
            Call::RecordDone => "record_done",
            Call::Update => "update",
        }
    }

    /// True for calls whose answer the C module ignores (fire and forget): the session goes on
    /// whatever the callback answers, so [`verdict`] always allows them.
    pub fn is_notification(self) -> bool {
        matches!(
            self,
            Call::Disconnect | Call::PublishDone | Call::PlayDone | Call::Done | Call::RecordDone
        )
    }
}

/// What the session is doing, for `on_update`: the C module sends `call=update_publish` or
/// `call=update_play` (publishing wins when both), and plain `call=update` otherwise.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Role {
    Publisher,
    Player,
}

/// Session fields every callback carries (ngx_rtmp_netcall_http_format_session).
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct SessionVars {
    pub app: String,
    pub flashver: String,
    pub swfurl: String,
    pub tcurl: String,
    pub pageurl: String,
    /// Client address as text (no port), like nginx's `addr_text`.
    pub addr: String,
    /// Connection number, as in `/stat` and `/control`.
    pub clientid: u64,
}

/// One callback's fields.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct CallRequest {
    pub call: Call,
    pub vars: SessionVars,
    /// Stream name (without `?args`). For `done`-type calls and `update`, an empty name is
    /// left out as the C module does.
    pub name: Option<String>,
    /// Call-specific fields in the C module's order: `type` (publish); `start, duration, reset`
    /// (play); `time, timestamp` (update); `recorder, path` (record_done). Values are
    /// form-encoded here.
    pub extras: Vec<(String, String)>,
    /// The client's raw query string (`key=...` from `publish`/`play` names, or the `connect`
    /// tcUrl's), without the `?`; passed through unencoded, as auth servers expect.
    pub client_args: String,
    /// Only for [`Call::Update`]: what the session does.
    pub role: Option<Role>,
}

/// `notify_method`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum Method {
    Get,
    #[default]
    Post,
}

/// What the session does after a callback answered (or failed).
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Verdict {
    /// Go on unchanged.
    Allow,
    /// Go on under this name (for `connect`: this application). May carry `?args`.
    Rename(String),
    /// Publish: push to / play: pull from this `rtmp://` (or `rtmps://`) URL.
    Relay(String),
    /// Close the session; the text says why, for the log.
    Deny(String),
}

/// Checks the client's query string before it is copied verbatim into a request: no byte
/// that could end the request line or a header, and bounded. [`build_request`] leaves args
/// that fail this out; call it first to log why.
pub fn check_client_args(args: &str) -> Result<(), NotifyError> {
    if args.len() > MAX_CLIENT_ARGS_LEN {
        return Err(NotifyError::ClientArgsTooLong);
    }
    if args.bytes().any(|c| c <= b' ' || c == 0x7f) {
        return Err(NotifyError::BadClientArgs);
    }
    Ok(())
}

/// Appends `s` form-encoded (application/x-www-form-urlencoded): unreserved bytes kept,
/// space as `+`, everything else `%XX`.
pub fn form_encode_into(out: &mut String, s: &str) {
    // An upper-case hex digit for the low four bits of `n`.
    fn hex(n: u8) -> char {
        let n = n & 0x0f;
        char::from(if n < 10 { b'0' + n } else { b'A' + (n - 10) })
    }
    for &c in s.as_bytes() {
        if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(c));
        } else if c == b' ' {
            out.push('+');
        } else {
            out.push('%');
            out.push(hex(c >> 4));
            out.push(hex(c));
        }
    }
}

fn push_field(out: &mut String, key: &str, value: &str) {
    if !out.is_empty() {
        out.push('&');
    }
    form_encode_into(out, key);
    out.push('=');
    form_encode_into(out, value);
}

/// Where the C module puts `name` among the extras: after `time, timestamp` for update,
/// after `recorder` for record_done, before everything else otherwise.
fn name_index(req: &CallRequest) -> usize {
    match req.call {
        Call::Update => req.extras.len(),
        Call::RecordDone => req
            .extras
            .iter()
            .position(|(k, _)| k == "recorder")
            .map_or(0, |i| i + 1),
        _ => 0,
    }
}

/// The form string: `app, flashver, swfurl, tcurl, pageurl, addr, clientid, call`, then name
/// and the call's extras, then the client's args.
pub fn form_body(req: &CallRequest) -> String {
    let v = &req.vars;
    let mut out = String::with_capacity(
        128 + v.app.len()
            + v.flashver.len()
            + v.swfurl.len()
            + v.tcurl.len()
            + v.pageurl.len()
            + req.client_args.len(),
    );
    push_field(&mut out, "app", &v.app);
    push_field(&mut out, "flashver", &v.flashver);
    push_field(&mut out, "swfurl", &v.swfurl);
    push_field(&mut out, "tcurl", &v.tcurl);
    push_field(&mut out, "pageurl", &v.pageurl);
    push_field(&mut out, "addr", &v.addr);
    let _ = write!(out, "&clientid={}", v.clientid);
    out.push_str("&call=");
    out.push_str(req.call.as_str());
    if req.call == Call::Update {
        match req.role {
            Some(Role::Publisher) => out.push_str("_publish"),
            Some(Role::Player) => out.push_str("_play"),
            None => {}
        }
    }
    let name = req.name.as_deref().filter(|n| {
        !n.is_empty() || matches!(req.call, Call::Publish | Call::Play | Call::RecordDone)
    });
    let at = name_index(req);
    for (i, (k, val)) in req.extras.iter().enumerate() {
        if i == at {
            if let Some(n) = name {
                push_field(&mut out, "name", n);
            }
        }
        push_field(&mut out, k, val);
    }
    if at >= req.extras.len() {
        if let Some(n) = name {
            push_field(&mut out, "name", n);
        }
    }
    let args = req.client_args.as_str();
    if !args.is_empty() && check_client_args(args).is_ok() {
        out.push('&');
        out.push_str(args);
    }
    out
}

/// The complete HTTP/1.0 request (the C module speaks HTTP/1.0, so no chunked replies are
/// asked for and the server closes when done).
pub fn build_request(url: &HttpUrl, method: Method, req: &CallRequest) -> Vec<u8> {
    let body = form_body(req);
    let mut head = String::with_capacity(256 + url.path.len() + body.len());
    let _ = match method {
        Method::Post => write!(head, "POST {} HTTP/1.0\r\n", url.path),
        Method::Get => {
            let sep = if url.path.contains('?') { '&' } else { '?' };
            write!(head, "GET {}{sep}{body} HTTP/1.0\r\n", url.path)
        }
    };
    let _ = write!(
        head,
        "Host: {}\r\nUser-Agent: nginx-rtmp-rs/{}\r\n",
        url.host_header(),
        env!("CARGO_PKG_VERSION")
    );
    if method == Method::Post {
        let _ = write!(
            head,
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
            body.len()
        );
    }
    head.push_str("Connection: close\r\n\r\n");
    let mut out = head.into_bytes();
    if method == Method::Post {
        out.extend_from_slice(body.as_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conf::parse_http_url;

    fn vars() -> SessionVars {
        SessionVars {
            app: "live".into(),
            flashver: "FMLE/3.0 (compatible; FMSc/1.0)".into(),
            swfurl: "".into(),
            tcurl: "rtmp://example.com/live".into(),
            pageurl: "".into(),
            addr: "192.0.2.7".into(),
            clientid: 42,
        }
    }

    fn req(call: Call) -> CallRequest {
        CallRequest {
            call,
            vars: vars(),
            name: None,
            extras: Vec::new(),
            client_args: String::new(),
            role: None,
        }
    }

    fn ext(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    const SESSION: &str = "app=live&flashver=FMLE%2F3.0+%28compatible%3B+FMSc%2F1.0%29&swfurl=\
        &tcurl=rtmp%3A%2F%2Fexample.com%2Flive&pageurl=&addr=192.0.2.7&clientid=42";

    #[test]
    fn call_names_match_the_c_module() {
        let all = [
            (Call::Connect, "connect"),
            (Call::Disconnect, "disconnect"),
            (Call::Publish, "publish"),
            (Call::Play, "play"),
            (Call::PublishDone, "publish_done"),
            (Call::PlayDone, "play_done"),
            (Call::Done, "done"),
            (Call::RecordDone, "record_done"),
            (Call::Update, "update"),
        ];
        for (c, s) in all {
            assert_eq!(c.as_str(), s);
        }
    }

    #[test]
    fn form_encoding_keeps_unreserved_and_escapes_the_rest() {
        let mut s = String::new();
        form_encode_into(&mut s, "aZ09-._~ +&=%/?#\r\n\u{e9}");
        assert_eq!(s, "aZ09-._~+%2B%26%3D%25%2F%3F%23%0D%0A%C3%A9");
    }

    #[test]
    fn publish_body_has_session_fields_call_name_type_then_args() {
        let mut r = req(Call::Publish);
        r.name = Some("my stream".into());
        r.extras = ext(&[("type", "live")]);
        r.client_args = "key=s3cr%65t&x=1".into();
        assert_eq!(
            form_body(&r),
            format!("{SESSION}&call=publish&name=my+stream&type=live&key=s3cr%65t&x=1")
        );
    }

    #[test]
    fn play_body_puts_name_before_start_duration_reset() {
        let mut r = req(Call::Play);
        r.name = Some("cam".into());
        r.extras = ext(&[("start", "0"), ("duration", "0"), ("reset", "0")]);
        assert_eq!(
            form_body(&r),
            format!("{SESSION}&call=play&name=cam&start=0&duration=0&reset=0")
        );
    }

    #[test]
    fn update_call_carries_role_and_puts_name_last() {
        let mut r = req(Call::Update);
        r.role = Some(Role::Publisher);
        r.name = Some("cam".into());
        r.extras = ext(&[("time", "30"), ("timestamp", "29876")]);
        r.client_args = "k=1".into();
        assert_eq!(
            form_body(&r),
            format!("{SESSION}&call=update_publish&time=30&timestamp=29876&name=cam&k=1")
        );
        r.role = Some(Role::Player);
        assert!(form_body(&r).contains("&call=update_play&"));
        r.role = None;
        r.name = Some(String::new());
        assert_eq!(
            form_body(&r),
            format!("{SESSION}&call=update&time=30&timestamp=29876&k=1")
        );
    }

    #[test]
    fn record_done_puts_name_between_recorder_and_path() {
        let mut r = req(Call::RecordDone);
        r.name = Some("cam".into());
        r.extras = ext(&[("recorder", "rec1"), ("path", "/var/rec/cam-1.flv")]);
        assert_eq!(
            form_body(&r),
            format!(
                "{SESSION}&call=record_done&recorder=rec1&name=cam&path=%2Fvar%2Frec%2Fcam-1.flv"
            )
        );
    }

    #[test]
    fn done_calls_leave_out_an_empty_name() {
        let mut r = req(Call::PublishDone);
        r.name = Some(String::new());
        assert_eq!(form_body(&r), format!("{SESSION}&call=publish_done"));
        r.name = Some("cam".into());
        assert_eq!(
            form_body(&r),
            format!("{SESSION}&call=publish_done&name=cam")
        );
        // Publish always sends name=, even empty, as the C module does.
        let mut p = req(Call::Publish);
        p.name = Some(String::new());
        assert_eq!(form_body(&p), format!("{SESSION}&call=publish&name="));
    }

    #[test]
    fn hostile_client_args_are_dropped() {
        for bad in ["k=1\r\nX-Evil: 1", "k=1 HTTP/1.1", "k=\0", "k=\t", "k=\x7f"] {
            let mut r = req(Call::Publish);
            r.name = Some("n".into());
            r.client_args = bad.into();
            assert_eq!(
                check_client_args(bad),
                Err(NotifyError::BadClientArgs),
                "{bad:?}"
            );
            assert_eq!(form_body(&r), format!("{SESSION}&call=publish&name=n"));
            let bytes = build_request(&parse_http_url("h/x").unwrap(), Method::Get, &r);
            let text = String::from_utf8(bytes).unwrap();
            assert_eq!(text.matches("\r\n").count(), 5, "{text:?}");
        }
        let long = "k=".to_owned() + &"a".repeat(MAX_CLIENT_ARGS_LEN);
        assert_eq!(
            check_client_args(&long),
            Err(NotifyError::ClientArgsTooLong)
        );
        assert_eq!(check_client_args("key=abc&x=%20"), Ok(()));
    }

    #[test]
    fn hostile_session_values_are_encoded_not_injected() {
        let mut r = req(Call::Connect);
        r.vars.app = "a&call=publish".into();
        r.vars.flashver = "x\r\nHost: evil".into();
        let body = form_body(&r);
        assert!(body.starts_with("app=a%26call%3Dpublish&flashver=x%0D%0AHost%3A+evil&"));
        assert_eq!(body.matches("call=").count(), 1);
    }

    #[test]
    fn post_request_is_complete_http_1_0() {
        let url = parse_http_url("http://auth.local:8080/on_publish").unwrap();
        let mut r = req(Call::Publish);
        r.name = Some("cam".into());
        r.extras = ext(&[("type", "live")]);
        r.client_args = "key=abc".into();
        let body = format!("{SESSION}&call=publish&name=cam&type=live&key=abc");
        let expected = format!(
            "POST /on_publish HTTP/1.0\r\n\
             Host: auth.local:8080\r\n\
             User-Agent: nginx-rtmp-rs/{}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            env!("CARGO_PKG_VERSION"),
            body.len()
        );
        assert_eq!(
            String::from_utf8(build_request(&url, Method::Post, &r)).unwrap(),
            expected
        );
    }

    #[test]
    fn get_request_puts_form_in_query() {
        let mut r = req(Call::Play);
        r.name = Some("cam".into());
        let url = parse_http_url("https://auth.example/cb").unwrap();
        let text = String::from_utf8(build_request(&url, Method::Get, &r)).unwrap();
        assert_eq!(
            text,
            format!(
                "GET /cb?{SESSION}&call=play&name=cam HTTP/1.0\r\n\
                 Host: auth.example\r\n\
                 User-Agent: nginx-rtmp-rs/{}\r\n\
                 Connection: close\r\n\r\n",
                env!("CARGO_PKG_VERSION")
            )
        );
        let url = parse_http_url("http://a/cb?token=t").unwrap();
        let text = String::from_utf8(build_request(&url, Method::Get, &r)).unwrap();
        assert!(text.starts_with(&format!("GET /cb?token=t&{SESSION}&call=play")));
    }

    #[test]
    fn notifications_are_the_done_calls_and_disconnect() {
        for c in [
            Call::Disconnect,
            Call::PublishDone,
            Call::PlayDone,
            Call::Done,
            Call::RecordDone,
        ] {
            assert!(c.is_notification());
        }
        for c in [Call::Connect, Call::Publish, Call::Play, Call::Update] {
            assert!(!c.is_notification());
        }
    }
}
