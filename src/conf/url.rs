//! URLs written in directives: HTTP callback/VOD URLs (`on_publish`, `play`) and RTMP relay
//! targets (`push`, `pull`). This is the only parser of these grammars: the configuration reads
//! a URL with it once, and the callback transport and request builder use what it produced, so
//! a URL that `nginx -t` accepts is exactly a URL that can be called.
//!
//! Stricter than the C module's `ngx_parse_url`, because the path is copied verbatim into a
//! request line we send: spaces, control characters, non-ASCII bytes and user info (anything
//! that could split the request line, smuggle a header or mean something else to another
//! parser) are refused when the configuration is read. Hosts are kept as text: names are
//! resolved by the IO ring, not here.

use std::net::{IpAddr, Ipv6Addr};

/// Longest URL accepted in a directive.
pub const MAX_URL_LEN: usize = 4096;
/// Default port of `http://` callback URLs.
pub const DEFAULT_HTTP_PORT: u16 = 80;
/// Default port of `https://` callback URLs (our extension; the C module only speaks http).
pub const DEFAULT_HTTPS_PORT: u16 = 443;
/// Default port of relay URLs.
pub const DEFAULT_RTMP_PORT: u16 = 1935;
/// Default port of `rtmps://` relay URLs (what YouTube, Facebook and Twitch listen on).
pub const DEFAULT_RTMPS_PORT: u16 = 443;

/// Scheme of an HTTP URL.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Scheme {
    Http,
    Https,
}

/// An HTTP URL from `on_*` or `play`. A URL without a scheme is `http://`, as in the C module.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct HttpUrl {
    /// The URL as written in the configuration.
    pub url: String,
    pub scheme: Scheme,
    /// Host name or address literal (IPv6 without brackets).
    pub host: String,
    pub port: u16,
    /// Request target: path and query, starting with `/` (`/` when the URL has none); never
    /// contains spaces or control characters. The fragment is dropped (it is never sent).
    pub path: String,
}

/// An RTMP URL from `push`/`pull`: `[rtmp://]host[:port][/app[/playpath]]`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct RtmpUrl {
    /// The URL as written in the configuration.
    pub url: String,
    pub host: String,
    pub port: u16,
    /// First path segment: the remote application unless `app=` overrides it.
    pub app: Option<String>,
    /// Rest of the path: the remote stream name unless `playPath=`/`name=` override it.
    pub play_path: Option<String>,
    /// `rtmps://`: RTMP inside TLS (our extension; the C module only speaks plain RTMP).
    pub tls: bool,
}

impl HttpUrl {
    /// Whether the transport wraps the connection in TLS.
    pub fn is_tls(&self) -> bool {
        self.scheme == Scheme::Https
    }

    fn default_port(&self) -> u16 {
        match self.scheme {
            Scheme::Http => DEFAULT_HTTP_PORT,
            Scheme::Https => DEFAULT_HTTPS_PORT,
        }
    }

    /// The `Host` header value: the port only when it is not the scheme's default, IPv6 in
    /// brackets.
    pub fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == self.default_port() {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }

    /// True when the host is an address literal, so the transport needs no resolver.
    pub fn is_ip_literal(&self) -> bool {
        self.host.parse::<IpAddr>().is_ok()
    }
}

/// Splits `scheme://rest` when `s` starts with a URL scheme; `None` when it has none.
fn split_scheme(s: &str) -> Option<(&str, &str)> {
    let idx = s.find("://")?;
    let scheme = &s[..idx];
    let is_scheme = !scheme.is_empty()
        && scheme
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'+' || c == b'-' || c == b'.');
    is_scheme.then(|| (scheme, &s[idx + 3..]))
}

/// Refuses what no URL of ours may contain, whatever its scheme.
fn check_text(s: &str) -> Result<(), &'static str> {
    if s.len() > MAX_URL_LEN {
        return Err("URL is too long");
    }
    if s.bytes().any(|c| c.is_ascii_control() || c == b' ') {
        return Err("URL contains spaces or control characters");
    }
    if !s.is_ascii() {
        return Err("non-ASCII characters must be percent-encoded");
    }
    Ok(())
}

/// Splits `host[:port][tail]` into host, port and the tail (empty or starting with `/`, `?` or
/// `#`). Hosts are names (letters, digits, `-`, `.`, `_`) or IPv6 literals in brackets.
fn split_authority(s: &str, default_port: u16) -> Result<(String, u16, &str), &'static str> {
    let auth_end = s.find(['/', '?', '#']).unwrap_or(s.len());
    let (authority, tail) = s.split_at(auth_end);
    if authority.contains('@') {
        return Err("user info (user@host) is not allowed");
    }
    let (host, port_text) = if let Some(inner) = authority.strip_prefix('[') {
        let (lit, after) = inner.split_once(']').ok_or("unclosed '[' in host")?;
        if lit.parse::<Ipv6Addr>().is_err() {
            return Err("invalid IPv6 address");
        }
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or("invalid host")?),
        };
        (lit, port)
    } else {
        let (host, port) = match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        };
        let name_char = |c: u8| c.is_ascii_alphanumeric() || c == b'-' || c == b'.' || c == b'_';
        if !host.bytes().all(name_char) {
            return Err("invalid host");
        }
        (host, port)
    };
    if host.is_empty() {
        return Err("no host");
    }
    let port = match port_text {
        None => default_port,
        Some(p) => parse_port(p).ok_or("invalid port")?,
    };
    Ok((host.to_owned(), port, tail))
}

/// 1..=65535, digits only (no sign, no spaces).
fn parse_port(p: &str) -> Option<u16> {
    if p.is_empty() || p.len() > 5 || !p.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    p.parse::<u16>().ok().filter(|&n| n != 0)
}

/// Parses `[http://|https://]host[:port][/path][?query][#fragment]` (`https://` is our
/// extension). The error is a reason like `invalid port`.
pub fn parse_http_url(s: &str) -> Result<HttpUrl, &'static str> {
    check_text(s)?;
    let (scheme, rest) = match split_scheme(s) {
        Some((sch, rest)) if sch.eq_ignore_ascii_case("http") => (Scheme::Http, rest),
        Some((sch, rest)) if sch.eq_ignore_ascii_case("https") => (Scheme::Https, rest),
        Some(_) => return Err("unsupported scheme (use http:// or https://)"),
        None => (Scheme::Http, s),
    };
    let default_port = match scheme {
        Scheme::Http => DEFAULT_HTTP_PORT,
        Scheme::Https => DEFAULT_HTTPS_PORT,
    };
    let (host, port, tail) = split_authority(rest, default_port)?;
    let tail = tail.split_once('#').map_or(tail, |(t, _)| t);
    let path = if tail.starts_with('/') {
        tail.to_owned()
    } else {
        // Empty or starting with '?'.
        format!("/{tail}")
    };
    Ok(HttpUrl {
        url: s.to_owned(),
        scheme,
        host,
        port,
        path,
    })
}

/// Parses a relay URL; `rtmp://` may be omitted, as in the C module.
pub fn parse_rtmp_url(s: &str) -> Result<RtmpUrl, &'static str> {
    check_text(s)?;
    let (rest, tls) = match split_scheme(s) {
        Some((sch, rest)) if sch.eq_ignore_ascii_case("rtmp") => (rest, false),
        Some((sch, rest)) if sch.eq_ignore_ascii_case("rtmps") => (rest, true),
        Some(_) => return Err("unsupported scheme (use rtmp:// or rtmps://)"),
        None => (s, false),
    };
    let default_port = if tls {
        DEFAULT_RTMPS_PORT
    } else {
        DEFAULT_RTMP_PORT
    };
    let (host, port, path) = split_authority(rest, default_port)?;
    let path = path.strip_prefix('/').unwrap_or(path);
    let (app, play_path) = match path.split_once('/') {
        Some((a, p)) => (a, p),
        None => (path, ""),
    };
    let non_empty = |v: &str| (!v.is_empty()).then(|| v.to_owned());
    Ok(RtmpUrl {
        url: s.to_owned(),
        host,
        port,
        app: non_empty(app),
        play_path: non_empty(play_path),
        tls,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> HttpUrl {
        parse_http_url(s).unwrap()
    }

    fn reason(s: &str) -> &'static str {
        match parse_http_url(s) {
            Err(r) => r,
            Ok(u) => panic!("{s:?}: expected an error, got {u:?}"),
        }
    }

    #[test]
    fn http_url_with_port_path_and_query() {
        let u = parse("http://127.0.0.1:8080/auth?x=1");
        assert_eq!(
            u,
            HttpUrl {
                url: "http://127.0.0.1:8080/auth?x=1".into(),
                scheme: Scheme::Http,
                host: "127.0.0.1".into(),
                port: 8080,
                path: "/auth?x=1".into()
            }
        );
        assert!(u.is_ip_literal());
        assert_eq!(u.host_header(), "127.0.0.1:8080");
    }

    #[test]
    fn scheme_defaults_ports_and_is_case_insensitive() {
        let u = parse("HTTPS://auth.example.com");
        assert!(u.is_tls());
        assert_eq!((u.port, u.path.as_str()), (443, "/"));
        assert_eq!(u.host_header(), "auth.example.com");
        assert!(!u.is_ip_literal());
        let u = parse("http://auth.example.com/on_publish");
        assert!(!u.is_tls());
        assert_eq!(u.port, 80);
    }

    #[test]
    fn url_without_scheme_is_http() {
        let u = parse("localhost:8000/on_publish");
        assert_eq!(u.scheme, Scheme::Http);
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("localhost", 8000, "/on_publish")
        );
        let u = parse("localhost/on_publish");
        assert_eq!((u.port, u.path.as_str()), (80, "/on_publish"));
    }

    #[test]
    fn non_default_port_appears_in_host_header() {
        assert_eq!(parse("https://h:80/").host_header(), "h:80");
        assert_eq!(parse("http://h:443/").host_header(), "h:443");
        assert_eq!(parse("http://h:80/").host_header(), "h");
    }

    #[test]
    fn ipv6_literal_is_bracketed_in_host_header_only() {
        let u = parse("http://[::1]:8080/cb");
        assert_eq!((u.host.as_str(), u.port), ("::1", 8080));
        assert!(u.is_ip_literal());
        assert_eq!(u.host_header(), "[::1]:8080");
        let u = parse("https://[2001:db8::5]");
        assert_eq!(u.host_header(), "[2001:db8::5]");
        assert_eq!(u.path, "/");
    }

    #[test]
    fn query_without_path_gets_root_and_fragment_is_dropped() {
        assert_eq!(parse("http://h?a=1").path, "/?a=1");
        assert_eq!(parse("http://h/p?a=1#frag").path, "/p?a=1");
        assert_eq!(parse("http://h#frag").path, "/");
    }

    #[test]
    fn userinfo_is_rejected() {
        assert_eq!(
            reason("http://user:pw@h/x"),
            "user info (user@host) is not allowed"
        );
        assert_eq!(reason("http://u@h"), "user info (user@host) is not allowed");
    }

    #[test]
    fn missing_host_is_rejected() {
        assert_eq!(reason("http://"), "no host");
        assert_eq!(reason("http:///x"), "no host");
        assert_eq!(reason("http://:80/x"), "no host");
        assert_eq!(reason(""), "no host");
        assert_eq!(reason("http://::1/"), "no host");
    }

    #[test]
    fn bad_ports_are_rejected() {
        for u in [
            "http://h:0/",
            "http://h:65536/",
            "http://h:x/",
            "http://h:/",
            "http://h:+80/",
            "http://h:000080/",
            "http://[::1]:99999/",
            "http://h:1:2/",
        ] {
            assert_eq!(reason(u), "invalid port", "{u}");
        }
        assert_eq!(parse("http://h:65535/").port, 65535);
    }

    #[test]
    fn bad_hosts_are_rejected() {
        assert_eq!(reason("http://[zz]/"), "invalid IPv6 address");
        assert_eq!(reason("http://[::1/"), "unclosed '[' in host");
        assert_eq!(reason("http://[::1]x/"), "invalid host");
        assert_eq!(reason("http://h%41/"), "invalid host");
    }

    #[test]
    fn spaces_controls_and_non_ascii_are_rejected() {
        for u in [
            "http://h/a b",
            "http://a b/",
            "http://h/a\r\nX-Injected: 1",
            "http://h/\0",
            "http://h/\x7f",
            "http://h/\t",
        ] {
            assert_eq!(
                reason(u),
                "URL contains spaces or control characters",
                "{u:?}"
            );
        }
        for u in ["http://h/caf\u{e9}", "http://127.0.0.1:9/auth/\u{e9}"] {
            assert_eq!(reason(u), "non-ASCII characters must be percent-encoded");
        }
    }

    #[test]
    fn other_schemes_are_rejected() {
        for u in ["rtmp://h/app", "ftp://h/"] {
            assert_eq!(reason(u), "unsupported scheme (use http:// or https://)");
        }
    }

    #[test]
    fn overlong_url_is_rejected() {
        let long = format!("http://h/{}", "a".repeat(MAX_URL_LEN));
        assert_eq!(reason(&long), "URL is too long");
        let fits = format!("http://h/{}", "a".repeat(MAX_URL_LEN - 9));
        assert_eq!(fits.len(), MAX_URL_LEN);
        assert!(parse_http_url(&fits).is_ok());
    }

    #[test]
    fn rtmp_url_splits_app_and_play_path() {
        let u = parse_rtmp_url("rtmp://live.example.com/app/key?x=1").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("live.example.com", 1935));
        assert_eq!(u.app.as_deref(), Some("app"));
        assert_eq!(u.play_path.as_deref(), Some("key?x=1"));
        let u = parse_rtmp_url("10.0.0.1:1936").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.app, u.play_path),
            ("10.0.0.1", 1936, None, None)
        );
        let u = parse_rtmp_url("RTMP://h/app").unwrap();
        assert_eq!((u.app.as_deref(), u.play_path), (Some("app"), None));
        let u = parse_rtmp_url("rtmp://h/app/a/b").unwrap();
        assert_eq!(u.play_path.as_deref(), Some("a/b"));
        let u = parse_rtmp_url("rtmp://[::1]:1937/app").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 1937));
        assert!(!u.tls);
    }

    #[test]
    fn rtmps_url_is_tls_on_port_443_by_default() {
        let u = parse_rtmp_url("rtmps://live-api-s.facebook.com/rtmp/KEY").unwrap();
        assert!(u.tls);
        assert_eq!((u.port, u.app.as_deref()), (443, Some("rtmp")));
        let u = parse_rtmp_url("RTMPS://h:1936/app").unwrap();
        assert_eq!((u.tls, u.port), (true, 1936));
    }

    #[test]
    fn rtmp_url_rejects_what_http_urls_reject() {
        assert!(parse_rtmp_url("http://h/app").is_err());
        assert!(parse_rtmp_url("rtmp://").is_err());
        assert!(parse_rtmp_url("rtmp://h:99999/app").is_err());
        assert!(parse_rtmp_url("rtmp://h/app/key with space").is_err());
        assert!(parse_rtmp_url("rtmp://u:p@h/app").is_err());
        assert!(parse_rtmp_url("rtmp://h/app/caf\u{e9}").is_err());
    }
}
