//! Reading a callback's answer: an incremental HTTP/1.x response-head parser and the decision
//! the session takes from it.
//!
//! The C module looks at byte 10 of the reply (`2` allow, `3` redirect, else drop) and scans
//! for `Location`. We parse the status line properly, so garbage that happens to have a `2` at
//! byte 10 is refused, and stop reading at the end of the head (the body, chunked or not, is
//! never needed).

use crate::rtmp::command::{validate_name, NameKind};

use super::{check_client_args, Call, NotifyError, Verdict};

/// Smallest head limit. `netcall_buffer` (default 1024) is the C module's read-chunk size, not
/// a cap: C chains buffers and reads the whole reply. Auth servers behind proxies or frameworks
/// easily send more than 1 KiB of headers (cookies, CSP), so we never cap below this.
pub const MIN_HEAD_LIMIT: usize = 16 * 1024;
/// Longest `Location` value accepted.
pub const MAX_LOCATION_LEN: usize = 4096;

/// What the session needs from a response head.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ResponseHead {
    pub status: u16,
    /// First `Location` header, trimmed; `None` when absent or empty.
    pub location: Option<String>,
}

/// Incremental parser: feed it whatever the socket returns until it yields a head or an error.
#[derive(Debug)]
pub struct ResponseParser {
    buf: Vec<u8>,
    /// Bytes of `buf` already searched for the end of the head.
    scanned: usize,
    /// Bytes of interim (1xx) heads already consumed; they count toward the limit.
    consumed: usize,
    limit: usize,
    done: Option<ResponseHead>,
}

impl ResponseParser {
    /// `limit` bounds the total head size (raised to [`MIN_HEAD_LIMIT`]).
    pub fn new(limit: usize) -> ResponseParser {
        ResponseParser {
            buf: Vec::new(),
            scanned: 0,
            consumed: 0,
            limit: limit.max(MIN_HEAD_LIMIT),
            done: None,
        }
    }

    /// Takes the next bytes. `Ok(None)`: need more. `Ok(Some(head))`: the final head (interim
    /// 1xx heads are skipped); bytes after it are ignored, and so are later calls' bytes (they
    /// return the same head).
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Option<ResponseHead>, NotifyError> {
        if let Some(head) = &self.done {
            return Ok(Some(head.clone()));
        }
        let mut input = bytes;
        loop {
            let room = self
                .limit
                .saturating_sub(self.consumed.saturating_add(self.buf.len()));
            let (now, later) = input.split_at(input.len().min(room));
            self.buf.extend_from_slice(now);
            input = later;
            self.check_prefix()?;
            let Some(end) = self.find_head_end() else {
                if self.consumed.saturating_add(self.buf.len()) >= self.limit {
                    return Err(NotifyError::HeadTooLarge { limit: self.limit });
                }
                return Ok(None);
            };
            let head = parse_head(self.buf.get(..end).unwrap_or_default())?;
            if is_interim(head.status) {
                self.consumed = self.consumed.saturating_add(end);
                self.buf.drain(..end.min(self.buf.len()));
                self.scanned = 0;
                continue;
            }
            self.buf = Vec::new();
            self.done = Some(head.clone());
            return Ok(Some(head));
        }
    }

    /// The peer closed the connection: decides with what arrived. A complete status line is
    /// enough (some hand-written auth servers close right after it, and the C module only needs
    /// byte 10); an incomplete last header line is ignored rather than trusted.
    pub fn finish(&mut self) -> Result<ResponseHead, NotifyError> {
        if let Some(head) = &self.done {
            return Ok(head.clone());
        }
        let complete_lines = match self.buf.iter().rposition(|&c| c == b'\n') {
            Some(i) => self.buf.get(..i.saturating_add(1)).unwrap_or_default(),
            None => self.buf.as_slice(),
        };
        if complete_lines.is_empty() {
            return Err(NotifyError::Truncated);
        }
        if !complete_lines.starts_with(b"HTTP/") {
            return Err(NotifyError::NotHttp);
        }
        let head = parse_head(complete_lines)?;
        if is_interim(head.status) {
            return Err(NotifyError::Truncated);
        }
        self.done = Some(head.clone());
        Ok(head)
    }

    /// Refuses non-HTTP answers as soon as their first bytes arrive.
    fn check_prefix(&self) -> Result<(), NotifyError> {
        const PREFIX: &[u8] = b"HTTP/";
        let n = self.buf.len().min(PREFIX.len());
        if self.buf.get(..n) != PREFIX.get(..n) {
            return Err(NotifyError::NotHttp);
        }
        Ok(())
    }

    /// End of the head (index after its blank line); accepts CRLF and bare LF line ends.
    fn find_head_end(&mut self) -> Option<usize> {
        let start = self.scanned;
        self.scanned = self.buf.len();
        (start..self.buf.len()).find_map(|i| {
            if self.buf.get(i) != Some(&b'\n') {
                return None;
            }
            let prev = i.checked_sub(1).and_then(|j| self.buf.get(j));
            let prev2 = i.checked_sub(2).and_then(|j| self.buf.get(j));
            let blank = prev == Some(&b'\n') || (prev == Some(&b'\r') && prev2 == Some(&b'\n'));
            blank.then_some(i + 1)
        })
    }
}

/// 1xx other than 101: an interim answer, the real one follows.
fn is_interim(status: u16) -> bool {
    (100..200).contains(&status) && status != 101
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// `HTTP/1.x SP DDD [SP reason]`.
fn parse_status_line(line: &[u8]) -> Result<u16, NotifyError> {
    let rest = line
        .strip_prefix(b"HTTP/1.")
        .ok_or(NotifyError::BadStatusLine)?;
    let [minor, rest @ ..] = rest else {
        return Err(NotifyError::BadStatusLine);
    };
    if !minor.is_ascii_digit() {
        return Err(NotifyError::BadStatusLine);
    }
    let rest = match rest {
        [b' ', r @ ..] => trim(r),
        _ => return Err(NotifyError::BadStatusLine),
    };
    let (code, after) = rest.split_at(rest.len().min(3));
    let [a, b, c] = code else {
        return Err(NotifyError::BadStatusLine);
    };
    if !(a.is_ascii_digit() && b.is_ascii_digit() && c.is_ascii_digit()) {
        return Err(NotifyError::BadStatusLine);
    }
    if !matches!(after.first(), None | Some(b' ' | b'\t')) {
        return Err(NotifyError::BadStatusLine);
    }
    let status = u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0');
    if !(100..=599).contains(&status) {
        return Err(NotifyError::BadStatusLine);
    }
    Ok(status)
}

fn parse_location(raw: &[u8]) -> Result<Option<String>, NotifyError> {
    let v = trim(raw);
    if v.is_empty() {
        return Ok(None);
    }
    if v.len() > MAX_LOCATION_LEN || v.iter().any(|&c| c < b' ' || c == 0x7f) {
        return Err(NotifyError::BadLocation);
    }
    let s = std::str::from_utf8(v).map_err(|_| NotifyError::BadLocation)?;
    Ok(Some(s.to_owned()))
}

/// Parses a head (status line and header lines, up to the blank line if present).
fn parse_head(head: &[u8]) -> Result<ResponseHead, NotifyError> {
    let mut lines = head
        .split(|&c| c == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let status = parse_status_line(lines.next().unwrap_or_default())?;
    // Raw bytes of the first Location (with obs-fold continuations joined by a space).
    let mut location: Option<Vec<u8>> = None;
    let mut in_location = false;
    for line in lines {
        if line.is_empty() {
            break;
        }
        if matches!(line.first(), Some(b' ' | b'\t')) {
            if in_location {
                if let Some(loc) = location.as_mut() {
                    loc.push(b' ');
                    loc.extend_from_slice(trim(line));
                    if loc.len() > MAX_LOCATION_LEN {
                        in_location = false;
                    }
                }
            }
            continue;
        }
        in_location = false;
        // Lines without a colon are ignored, as the C module's scanner does.
        let Some(colon) = line.iter().position(|&c| c == b':') else {
            continue;
        };
        let (name, value) = line.split_at(colon);
        if location.is_none() && trim(name).eq_ignore_ascii_case(b"location") {
            location = Some(value.get(1..).unwrap_or_default().to_vec());
            in_location = true;
        }
    }
    // A broken Location only matters when the status says to follow it.
    let location = match location {
        None => None,
        Some(raw) => match parse_location(&raw) {
            Ok(loc) => loc,
            Err(e) if (300..400).contains(&status) => return Err(e),
            Err(_) => None,
        },
    };
    Ok(ResponseHead { status, location })
}

fn starts_with_ignore_case(s: &str, prefix: &str) -> bool {
    s.get(..prefix.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
}

/// A 3xx `Location` for connect/publish/play.
fn redirect(call: Call, location: &str) -> Verdict {
    if starts_with_ignore_case(location, "rtmp://") || starts_with_ignore_case(location, "rtmps://")
    {
        if call == Call::Connect {
            return Verdict::Deny("on_connect redirect to an RTMP URL is not supported".into());
        }
        return Verdict::Relay(location.to_owned());
    }
    let target = location.strip_prefix('/').unwrap_or(location);
    if target.is_empty() {
        return Verdict::Allow;
    }
    let (name, args) = match target.split_once('?') {
        Some((n, a)) => (n, Some(a)),
        None => (target, None),
    };
    let kind = if call == Call::Connect {
        NameKind::App
    } else {
        NameKind::Stream
    };
    // The new name reaches file paths (HLS, record) and exec lines: same rules as a client's.
    if let Err(e) = validate_name(kind, name) {
        return Verdict::Deny(format!("callback redirect refused: {e}"));
    }
    if let Some(a) = args {
        if let Err(e) = check_client_args(a) {
            return Verdict::Deny(format!("callback redirect refused: {e}"));
        }
    }
    Verdict::Rename(target.to_owned())
}

/// What to do after callback `call` answered `head` (or failed with the error).
///
/// - Notification calls (`*_done`, `disconnect`, `record_done`): always allow, as in C.
/// - 2xx allows; 3xx follows `Location` (an `rtmp://`/`rtmps://` URL relays, anything else is
///   the new name, one leading '/' stripped, `?args` kept) or allows when there is none, as
///   the C module does; any other status denies.
/// - `update` with `notify_update_strict off` (`strict == false`): only a valid non-2xx/3xx
///   status drops the session; connection errors, timeouts and unparseable answers do not
///   (the directive's documented meaning). With it on, anything but 2xx drops.
/// - Transport and parse errors deny every other call.
pub fn verdict(head: Result<&ResponseHead, &NotifyError>, strict: bool, call: Call) -> Verdict {
    if call.is_notification() {
        return Verdict::Allow;
    }
    let head = match head {
        Ok(h) => h,
        Err(_) if call == Call::Update && !strict => return Verdict::Allow,
        Err(e) => return Verdict::Deny(e.to_string()),
    };
    match head.status {
        200..=299 => Verdict::Allow,
        300..=399 if call == Call::Update => {
            if strict {
                Verdict::Deny(format!("callback answered {}", head.status))
            } else {
                Verdict::Allow
            }
        }
        300..=399 => match &head.location {
            Some(loc) => redirect(call, loc),
            None => Verdict::Allow,
        },
        s => Verdict::Deny(format!("callback answered {s}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(status: u16, location: Option<&str>) -> ResponseHead {
        ResponseHead {
            status,
            location: location.map(str::to_owned),
        }
    }

    fn parse_all(bytes: &[u8]) -> Result<Option<ResponseHead>, NotifyError> {
        ResponseParser::new(0).feed(bytes)
    }

    fn parse_bytewise(bytes: &[u8]) -> Result<Option<ResponseHead>, NotifyError> {
        let mut p = ResponseParser::new(0);
        for b in bytes {
            if let Some(h) = p.feed(std::slice::from_ref(b))? {
                return Ok(Some(h));
            }
        }
        Ok(None)
    }

    #[test]
    fn ok_response_is_parsed_in_one_piece() {
        let r = b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(parse_all(r), Ok(Some(head(200, None))));
    }

    #[test]
    fn byte_at_a_time_gives_the_same_head() {
        let r = b"HTTP/1.1 302 Found\r\nServer: x\r\nLocation: /newname?k=1\r\n\r\nbody";
        let whole = parse_all(r);
        assert_eq!(whole, Ok(Some(head(302, Some("/newname?k=1")))));
        assert_eq!(parse_bytewise(r), whole);
        // Every split point too.
        for cut in 0..r.len() {
            let mut p = ResponseParser::new(1024);
            let (a, b) = r.split_at(cut);
            let first = p.feed(a).unwrap();
            let got = match first {
                Some(h) => h,
                None => p.feed(b).unwrap().unwrap(),
            };
            assert_eq!(got, head(302, Some("/newname?k=1")), "cut at {cut}");
        }
    }

    #[test]
    fn need_more_until_blank_line() {
        let mut p = ResponseParser::new(1024);
        assert_eq!(p.feed(b"HTTP/1.1 200 OK\r\n"), Ok(None));
        assert_eq!(p.feed(b"Date: x\r\n"), Ok(None));
        assert_eq!(p.feed(b"\r"), Ok(None));
        assert_eq!(p.feed(b"\n"), Ok(Some(head(200, None))));
        // Later bytes are ignored; the head is returned again.
        assert_eq!(p.feed(b"garbage"), Ok(Some(head(200, None))));
        assert_eq!(p.finish(), Ok(head(200, None)));
    }

    #[test]
    fn lf_only_line_ends_are_tolerated() {
        let r = b"HTTP/1.0 301 Moved\nlocation:  rtmp://origin/live/cam \n\n";
        assert_eq!(
            parse_all(r),
            Ok(Some(head(301, Some("rtmp://origin/live/cam"))))
        );
        assert_eq!(parse_bytewise(r), parse_all(r));
    }

    #[test]
    fn header_names_are_case_insensitive_and_first_location_wins() {
        let r = b"HTTP/1.1 307 Temporary Redirect\r\nX-Location: no\r\nLOCATION:\tfirst\t\r\n\
                  Location: second\r\n\r\n";
        assert_eq!(parse_all(r), Ok(Some(head(307, Some("first")))));
    }

    #[test]
    fn empty_location_is_none() {
        let r = b"HTTP/1.1 302 Found\r\nLocation:   \r\n\r\n";
        assert_eq!(parse_all(r), Ok(Some(head(302, None))));
    }

    #[test]
    fn folded_location_is_joined() {
        let r = b"HTTP/1.1 302 Found\r\nLocation: a\r\n  b\r\nX: y\r\n\r\n";
        assert_eq!(parse_all(r), Ok(Some(head(302, Some("a b")))));
    }

    #[test]
    fn chunked_http_1_1_response_head_is_enough() {
        let r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
        assert_eq!(parse_all(r), Ok(Some(head(200, None))));
        assert_eq!(parse_bytewise(r), Ok(Some(head(200, None))));
    }

    #[test]
    fn interim_100_continue_is_skipped() {
        let r = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 403 Forbidden\r\n\r\n";
        assert_eq!(parse_all(r), Ok(Some(head(403, None))));
        assert_eq!(parse_bytewise(r), Ok(Some(head(403, None))));
        let mut p = ResponseParser::new(0);
        assert_eq!(p.feed(b"HTTP/1.1 100 Continue\r\n\r\n"), Ok(None));
        assert_eq!(p.finish(), Err(NotifyError::Truncated));
    }

    #[test]
    fn endless_interim_heads_hit_the_limit() {
        let mut p = ResponseParser::new(0);
        let one = b"HTTP/1.1 100 Continue\r\n\r\n";
        let mut result = Ok(None);
        for _ in 0..(MIN_HEAD_LIMIT / one.len() + 2) {
            result = p.feed(one);
            if result.is_err() {
                break;
            }
        }
        assert_eq!(
            result,
            Err(NotifyError::HeadTooLarge {
                limit: MIN_HEAD_LIMIT
            })
        );
    }

    #[test]
    fn garbage_is_refused_at_the_first_wrong_byte() {
        let mut p = ResponseParser::new(0);
        assert_eq!(p.feed(b"HT"), Ok(None));
        assert_eq!(p.feed(b"X"), Err(NotifyError::NotHttp));
        assert_eq!(parse_all(b"SSH-2.0-OpenSSH\r\n"), Err(NotifyError::NotHttp));
        assert_eq!(
            parse_all(b"\x16\x03\x01\x02\x00"),
            Err(NotifyError::NotHttp)
        );
        assert_eq!(
            parse_all(b"http/1.1 200 OK\r\n\r\n"),
            Err(NotifyError::NotHttp)
        );
        // The C module would read '2' at byte 10 here and allow.
        assert_eq!(
            parse_all(b"HTTP/1.1 X2xx\r\n\r\n"),
            Err(NotifyError::BadStatusLine)
        );
    }

    #[test]
    fn bad_status_lines_are_refused() {
        for bad in [
            &b"HTTP/2 200\r\n\r\n"[..],
            b"HTTP/1.1 20\r\n\r\n",
            b"HTTP/1.1 2000 OK\r\n\r\n",
            b"HTTP/1.1 099 x\r\n\r\n",
            b"HTTP/1.1 600 x\r\n\r\n",
            b"HTTP/1.1200 OK\r\n\r\n",
            b"HTTP/1.x 200 OK\r\n\r\n",
            b"HTTP/1.1 2a0 OK\r\n\r\n",
            b"HTTP/\r\n\r\n",
            b"HTTP/1.1 \r\n\r\n",
        ] {
            assert_eq!(
                parse_all(bad),
                Err(NotifyError::BadStatusLine),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(
            parse_all(b"HTTP/1.1 204\r\n\r\n"),
            Ok(Some(head(204, None)))
        );
    }

    #[test]
    fn huge_head_is_refused_at_the_limit() {
        let mut p = ResponseParser::new(1024);
        assert_eq!(p.feed(b"HTTP/1.1 200 OK\r\n"), Ok(None));
        let filler = format!("X-Pad: {}\r\n", "a".repeat(1000));
        let mut result = Ok(None);
        for _ in 0..100 {
            result = p.feed(filler.as_bytes());
            if result.is_err() {
                break;
            }
        }
        assert_eq!(
            result,
            Err(NotifyError::HeadTooLarge {
                limit: MIN_HEAD_LIMIT
            })
        );
        // Memory stays bounded by the limit.
        assert!(p.buf.len() <= MIN_HEAD_LIMIT);
        // One giant read fails the same way.
        let mut big = b"HTTP/1.1 200 OK\r\n".to_vec();
        big.extend(std::iter::repeat_n(b'a', 100_000));
        assert_eq!(
            parse_all(&big),
            Err(NotifyError::HeadTooLarge {
                limit: MIN_HEAD_LIMIT
            })
        );
    }

    #[test]
    fn larger_limit_from_the_caller_is_honoured() {
        let mut r = b"HTTP/1.1 200 OK\r\nX-Pad: ".to_vec();
        r.extend(std::iter::repeat_n(b'a', 40_000));
        r.extend_from_slice(b"\r\n\r\n");
        assert!(ResponseParser::new(1024).feed(&r).is_err());
        assert_eq!(
            ResponseParser::new(64 * 1024).feed(&r),
            Ok(Some(head(200, None)))
        );
    }

    #[test]
    fn head_ending_exactly_at_the_limit_is_accepted() {
        let prefix = b"HTTP/1.1 200 OK\r\nX: ";
        let mut r = prefix.to_vec();
        r.extend(std::iter::repeat_n(b'a', MIN_HEAD_LIMIT - prefix.len() - 4));
        r.extend_from_slice(b"\r\n\r\n");
        assert_eq!(r.len(), MIN_HEAD_LIMIT);
        assert_eq!(parse_all(&r), Ok(Some(head(200, None))));
        assert_eq!(parse_bytewise(&r), Ok(Some(head(200, None))));
    }

    #[test]
    fn bad_location_fails_only_redirects() {
        let r = b"HTTP/1.1 302 Found\r\nLocation: a\x01b\r\n\r\n";
        assert_eq!(parse_all(r), Err(NotifyError::BadLocation));
        let r = b"HTTP/1.1 302 Found\r\nLocation: \xff\xfe\r\n\r\n";
        assert_eq!(parse_all(r), Err(NotifyError::BadLocation));
        let long = format!(
            "HTTP/1.1 302 Found\r\nLocation: {}\r\n\r\n",
            "a".repeat(MAX_LOCATION_LEN + 1)
        );
        assert_eq!(parse_all(long.as_bytes()), Err(NotifyError::BadLocation));
        let r = b"HTTP/1.1 200 OK\r\nLocation: a\x01b\r\n\r\n";
        assert_eq!(parse_all(r), Ok(Some(head(200, None))));
    }

    #[test]
    fn finish_decides_on_a_complete_status_line() {
        let mut p = ResponseParser::new(0);
        assert_eq!(p.feed(b"HTTP/1.0 200 OK\r\nLocation: x\r\nLoc"), Ok(None));
        assert_eq!(p.finish(), Ok(head(200, Some("x"))));
        let mut p = ResponseParser::new(0);
        p.feed(b"HTTP/1.0 403").unwrap();
        assert_eq!(p.finish(), Ok(head(403, None)));
        // A cut Location line is not trusted.
        let mut p = ResponseParser::new(0);
        p.feed(b"HTTP/1.0 302 Found\r\nLocation: /partial-na")
            .unwrap();
        assert_eq!(p.finish(), Ok(head(302, None)));
    }

    #[test]
    fn finish_without_a_status_line_is_an_error() {
        assert_eq!(ResponseParser::new(0).finish(), Err(NotifyError::Truncated));
        let mut p = ResponseParser::new(0);
        p.feed(b"HTTP/1.").unwrap();
        assert_eq!(p.finish(), Err(NotifyError::BadStatusLine));
    }

    // --- verdicts ---

    fn v(status: u16, loc: Option<&str>, call: Call) -> Verdict {
        verdict(Ok(&head(status, loc)), false, call)
    }

    #[test]
    fn two_hundreds_allow() {
        for s in [200, 201, 204, 299] {
            assert_eq!(v(s, None, Call::Publish), Verdict::Allow);
        }
    }

    #[test]
    fn other_statuses_deny_with_the_code() {
        assert_eq!(
            v(403, None, Call::Publish),
            Verdict::Deny("callback answered 403".into())
        );
        assert_eq!(
            v(500, None, Call::Play),
            Verdict::Deny("callback answered 500".into())
        );
        assert_eq!(
            v(101, None, Call::Connect),
            Verdict::Deny("callback answered 101".into())
        );
    }

    #[test]
    fn redirect_to_a_name_renames() {
        assert_eq!(
            v(302, Some("/newname?k=1"), Call::Publish),
            Verdict::Rename("newname?k=1".into())
        );
        assert_eq!(
            v(301, Some("other"), Call::Play),
            Verdict::Rename("other".into())
        );
        assert_eq!(
            v(302, Some("/app2"), Call::Connect),
            Verdict::Rename("app2".into())
        );
    }

    #[test]
    fn redirect_to_rtmp_url_relays() {
        assert_eq!(
            v(302, Some("rtmp://origin:1935/live/cam"), Call::Publish),
            Verdict::Relay("rtmp://origin:1935/live/cam".into())
        );
        assert_eq!(
            v(302, Some("RTMPS://edge/live/cam"), Call::Play),
            Verdict::Relay("RTMPS://edge/live/cam".into())
        );
        assert!(matches!(
            v(302, Some("rtmp://x/y"), Call::Connect),
            Verdict::Deny(_)
        ));
    }

    #[test]
    fn redirect_without_location_allows_like_the_c_module() {
        assert_eq!(v(302, None, Call::Publish), Verdict::Allow);
        assert_eq!(v(302, Some("/"), Call::Play), Verdict::Allow);
    }

    #[test]
    fn redirect_to_a_path_escaping_name_is_denied() {
        for bad in [
            "../../etc/passwd",
            "/a/b",
            "http://other/x",
            "..",
            "-rf",
            "n?k=a b",
        ] {
            assert!(
                matches!(v(302, Some(bad), Call::Publish), Verdict::Deny(_)),
                "{bad}"
            );
        }
        let long = "a".repeat(256);
        assert!(matches!(
            v(302, Some(&long), Call::Publish),
            Verdict::Deny(_)
        ));
    }

    #[test]
    fn transport_errors_deny_except_lenient_update() {
        let err = NotifyError::Transport("connection refused".into());
        for call in [Call::Connect, Call::Publish, Call::Play] {
            assert_eq!(
                verdict(Err(&err), false, call),
                Verdict::Deny("callback request failed: connection refused".into())
            );
        }
        assert_eq!(verdict(Err(&err), false, Call::Update), Verdict::Allow);
        assert_eq!(
            verdict(Err(&NotifyError::NotHttp), false, Call::Update),
            Verdict::Allow
        );
        assert!(matches!(
            verdict(Err(&err), true, Call::Update),
            Verdict::Deny(_)
        ));
    }

    #[test]
    fn update_status_rules_follow_strictness() {
        let h302 = head(302, Some("x"));
        assert_eq!(verdict(Ok(&h302), false, Call::Update), Verdict::Allow);
        assert_eq!(
            verdict(Ok(&h302), true, Call::Update),
            Verdict::Deny("callback answered 302".into())
        );
        let h403 = head(403, None);
        assert!(matches!(
            verdict(Ok(&h403), false, Call::Update),
            Verdict::Deny(_)
        ));
        assert_eq!(
            verdict(Ok(&head(200, None)), true, Call::Update),
            Verdict::Allow
        );
    }

    #[test]
    fn notifications_ignore_the_answer() {
        let err = NotifyError::Transport("timed out".into());
        for call in [
            Call::Disconnect,
            Call::PublishDone,
            Call::PlayDone,
            Call::Done,
            Call::RecordDone,
        ] {
            assert_eq!(v(500, None, call), Verdict::Allow);
            assert_eq!(verdict(Err(&err), true, call), Verdict::Allow);
        }
    }
}
