//! URLs written in directives: HTTP callback/VOD URLs (`on_publish`, `play`) and RTMP relay
//! targets (`push`, `pull`). Parsed the way the C module's `ngx_parse_url` calls split them
//! (`host[:port][/path]`, IPv6 hosts in brackets); hosts are kept as text because names are
//! resolved by the IO ring, not here.

use std::net::Ipv6Addr;

use super::value::parse_uint;

/// Default port of `http://` callback URLs.
pub const DEFAULT_HTTP_PORT: u16 = 80;
/// Default port of `https://` callback URLs (our extension; the C module only speaks http).
pub const DEFAULT_HTTPS_PORT: u16 = 443;
/// Default port of relay URLs.
pub const DEFAULT_RTMP_PORT: u16 = 1935;

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
    /// Path and query, starting with `/` (`/` when the URL has none).
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

/// Splits `host[:port][/rest]` into host, port and the rest (starting with `/` or empty).
fn split_authority(s: &str, default_port: u16) -> Result<(String, u16, &str), &'static str> {
    let (host, after) = if let Some(inner) = s.strip_prefix('[') {
        let end = inner.find(']').ok_or("invalid host")?;
        let host = &inner[..end];
        if host.parse::<Ipv6Addr>().is_err() {
            return Err("invalid IPv6 address");
        }
        (host, &inner[end + 1..])
    } else {
        let end = s.find([':', '/']).unwrap_or(s.len());
        (&s[..end], &s[end..])
    };
    if host.is_empty() {
        return Err("no host");
    }
    if host
        .bytes()
        .any(|c| c.is_ascii_control() || c == b' ' || c == b'@' || c == b'[' || c == b']')
    {
        return Err("invalid host");
    }
    let (port, rest) = if let Some(p) = after.strip_prefix(':') {
        let end = p.find('/').unwrap_or(p.len());
        let port = parse_uint(&p[..end])
            .filter(|n| (1..=65535).contains(n))
            .ok_or("invalid port")?;
        (port as u16, &p[end..])
    } else if after.is_empty() || after.starts_with('/') {
        (default_port, after)
    } else {
        return Err("invalid host");
    };
    Ok((host.to_owned(), port, rest))
}

/// Parses an HTTP URL; `http://` may be omitted, `https://` is accepted (our extension).
/// The error is a reason like `invalid port`.
pub fn parse_http_url(s: &str) -> Result<HttpUrl, &'static str> {
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
    let (host, port, path) = split_authority(rest, default_port)?;
    Ok(HttpUrl {
        url: s.to_owned(),
        scheme,
        host,
        port,
        path: if path.is_empty() {
            "/".to_owned()
        } else {
            path.to_owned()
        },
    })
}

/// Parses a relay URL; `rtmp://` may be omitted, as in the C module.
pub fn parse_rtmp_url(s: &str) -> Result<RtmpUrl, &'static str> {
    let rest = match split_scheme(s) {
        Some((sch, rest)) if sch.eq_ignore_ascii_case("rtmp") => rest,
        Some(_) => return Err("unsupported scheme (use rtmp://)"),
        None => s,
    };
    let (host, port, path) = split_authority(rest, DEFAULT_RTMP_PORT)?;
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
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_url_with_and_without_scheme() {
        let u = parse_http_url("http://127.0.0.1:8080/auth?x=1").unwrap();
        assert_eq!(u.scheme, Scheme::Http);
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("127.0.0.1", 8080, "/auth?x=1")
        );
        let u = parse_http_url("localhost/on_publish").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("localhost", 80, "/on_publish")
        );
        let u = parse_http_url("HTTPS://auth.example.com").unwrap();
        assert_eq!(u.scheme, Scheme::Https);
        assert_eq!((u.port, u.path.as_str()), (443, "/"));
        let u = parse_http_url("http://[::1]:81/x").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 81));
    }

    #[test]
    fn http_url_rejects_bad_forms() {
        assert_eq!(
            parse_http_url("ftp://x/y"),
            Err("unsupported scheme (use http:// or https://)")
        );
        assert_eq!(
            parse_http_url("rtmp://x/y").map(|_| ()),
            Err("unsupported scheme (use http:// or https://)")
        );
        assert_eq!(parse_http_url("http://"), Err("no host"));
        assert_eq!(parse_http_url("http:///x"), Err("no host"));
        assert_eq!(parse_http_url("http://h:0/"), Err("invalid port"));
        assert_eq!(parse_http_url("http://h:65536/"), Err("invalid port"));
        assert_eq!(parse_http_url("http://h:x/"), Err("invalid port"));
        assert_eq!(parse_http_url("http://[zz]/"), Err("invalid IPv6 address"));
        assert_eq!(parse_http_url("http://[::1/"), Err("invalid host"));
        assert_eq!(parse_http_url("http://::1/"), Err("no host"));
        assert_eq!(parse_http_url("http://a b/"), Err("invalid host"));
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
    }

    #[test]
    fn rtmp_url_rejects_other_schemes() {
        assert!(parse_rtmp_url("http://h/app").is_err());
        assert!(parse_rtmp_url("rtmp://").is_err());
        assert!(parse_rtmp_url("rtmp://h:99999/app").is_err());
    }
}
