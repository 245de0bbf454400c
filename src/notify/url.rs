//! Callback URLs of `on_connect`, `on_publish`, ...: where the transport connects and what it
//! writes in the request line and `Host` header. Stricter than the C module's `ngx_parse_url`
//! because the path is copied verbatim into a request we send: anything that could split the
//! request line or smuggle a header is refused when the configuration is read.

use std::net::{IpAddr, Ipv6Addr};

use super::NotifyError;

/// Longest callback URL accepted.
pub const MAX_URL_LEN: usize = 4096;
/// Port of `http://` URLs without one.
pub const DEFAULT_HTTP_PORT: u16 = 80;
/// Port of `https://` URLs without one (https is our extension; the C module speaks http only).
pub const DEFAULT_HTTPS_PORT: u16 = 443;

/// A parsed callback URL.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct CallbackUrl {
    /// `https://`: the transport wraps the connection in TLS.
    pub tls: bool,
    /// Host name or address literal; IPv6 without brackets.
    pub host: String,
    pub port: u16,
    /// Request target: starts with `/`, may carry `?query`; never contains spaces or controls.
    pub path_and_query: String,
}

fn bad(reason: &'static str) -> NotifyError {
    NotifyError::InvalidUrl(reason)
}

impl CallbackUrl {
    /// Parses `[http://|https://]host[:port][/path][?query][#fragment]`. A URL without a scheme
    /// is http, as in the C module; the fragment is dropped (it is never sent).
    pub fn parse(s: &str) -> Result<CallbackUrl, NotifyError> {
        if s.len() > MAX_URL_LEN {
            return Err(bad("URL is too long"));
        }
        if s.bytes().any(|c| c.is_ascii_control() || c == b' ') {
            return Err(bad("URL contains spaces or control characters"));
        }
        if !s.is_ascii() {
            return Err(bad("non-ASCII characters must be percent-encoded"));
        }
        let (tls, rest) = match s.find("://") {
            Some(i) => {
                let scheme = &s[..i];
                let rest = &s[i + 3..];
                if scheme.eq_ignore_ascii_case("http") {
                    (false, rest)
                } else if scheme.eq_ignore_ascii_case("https") {
                    (true, rest)
                } else {
                    return Err(bad("unsupported scheme (use http:// or https://)"));
                }
            }
            None => (false, s),
        };
        let auth_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(auth_end);
        if authority.contains('@') {
            return Err(bad("user info (user@host) is not allowed"));
        }
        let default_port = if tls {
            DEFAULT_HTTPS_PORT
        } else {
            DEFAULT_HTTP_PORT
        };
        let (host, port_text) = if let Some(inner) = authority.strip_prefix('[') {
            let (lit, after) = inner.split_once(']').ok_or(bad("unclosed '[' in host"))?;
            if lit.parse::<Ipv6Addr>().is_err() {
                return Err(bad("invalid IPv6 address"));
            }
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or(bad("invalid host"))?),
            };
            (lit, port)
        } else {
            match authority.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(bad("empty host"));
        }
        let is_v6 = authority.starts_with('[');
        if !is_v6
            && !host
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.' || c == b'_')
        {
            return Err(bad("invalid host"));
        }
        let port = match port_text {
            None => default_port,
            Some(p) => parse_port(p).ok_or(bad("invalid port"))?,
        };
        let tail = tail.split_once('#').map_or(tail, |(t, _)| t);
        let path_and_query = if tail.starts_with('/') {
            tail.to_owned()
        } else {
            // Empty or starting with '?'.
            format!("/{tail}")
        };
        Ok(CallbackUrl {
            tls,
            host: host.to_owned(),
            port,
            path_and_query,
        })
    }

    fn default_port(&self) -> u16 {
        if self.tls {
            DEFAULT_HTTPS_PORT
        } else {
            DEFAULT_HTTP_PORT
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

/// 1..=65535, digits only (no sign, no spaces).
fn parse_port(p: &str) -> Option<u16> {
    if p.is_empty() || p.len() > 5 || !p.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    p.parse::<u16>().ok().filter(|&n| n != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> CallbackUrl {
        CallbackUrl::parse(s).unwrap()
    }

    fn reason(s: &str) -> &'static str {
        match CallbackUrl::parse(s) {
            Err(NotifyError::InvalidUrl(r)) => r,
            other => panic!("{s}: expected InvalidUrl, got {other:?}"),
        }
    }

    #[test]
    fn http_url_with_port_path_and_query() {
        let u = parse("http://127.0.0.1:8080/auth?x=1");
        assert_eq!(
            u,
            CallbackUrl {
                tls: false,
                host: "127.0.0.1".into(),
                port: 8080,
                path_and_query: "/auth?x=1".into()
            }
        );
        assert!(u.is_ip_literal());
        assert_eq!(u.host_header(), "127.0.0.1:8080");
    }

    #[test]
    fn scheme_defaults_ports_and_is_case_insensitive() {
        let u = parse("HTTPS://auth.example.com");
        assert!(u.tls);
        assert_eq!((u.port, u.path_and_query.as_str()), (443, "/"));
        assert_eq!(u.host_header(), "auth.example.com");
        assert!(!u.is_ip_literal());
        let u = parse("http://auth.example.com/on_publish");
        assert!(!u.tls);
        assert_eq!(u.port, 80);
    }

    #[test]
    fn url_without_scheme_is_http() {
        let u = parse("localhost:8000/on_publish");
        assert!(!u.tls);
        assert_eq!(
            (u.host.as_str(), u.port, u.path_and_query.as_str()),
            ("localhost", 8000, "/on_publish")
        );
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
        assert_eq!(u.path_and_query, "/");
    }

    #[test]
    fn query_without_path_gets_root_and_fragment_is_dropped() {
        assert_eq!(parse("http://h?a=1").path_and_query, "/?a=1");
        assert_eq!(parse("http://h/p?a=1#frag").path_and_query, "/p?a=1");
        assert_eq!(parse("http://h#frag").path_and_query, "/");
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
    fn empty_host_is_rejected() {
        assert_eq!(reason("http://"), "empty host");
        assert_eq!(reason("http:///x"), "empty host");
        assert_eq!(reason("http://:80/x"), "empty host");
        assert_eq!(reason(""), "empty host");
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
        assert_eq!(reason("http://::1/"), "empty host");
        assert_eq!(reason("http://h%41/"), "invalid host");
        assert_eq!(reason("http://h:1:2/"), "invalid port");
    }

    #[test]
    fn spaces_controls_and_non_ascii_are_rejected() {
        for u in [
            "http://h/a b",
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
        assert_eq!(
            reason("http://h/caf\u{e9}"),
            "non-ASCII characters must be percent-encoded"
        );
    }

    #[test]
    fn other_schemes_are_rejected() {
        assert_eq!(
            reason("rtmp://h/app"),
            "unsupported scheme (use http:// or https://)"
        );
        assert_eq!(
            reason("ftp://h/"),
            "unsupported scheme (use http:// or https://)"
        );
    }

    #[test]
    fn overlong_url_is_rejected() {
        let long = format!("http://h/{}", "a".repeat(MAX_URL_LEN));
        assert_eq!(reason(&long), "URL is too long");
        let fits = format!("http://h/{}", "a".repeat(MAX_URL_LEN - 9));
        assert_eq!(fits.len(), MAX_URL_LEN);
        assert!(CallbackUrl::parse(&fits).is_ok());
    }
}
