//! The `listen` directive: address forms and socket options, as nginx's `listen` accepts them.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::value::{parse_flag, parse_sec, parse_uint};
use super::ConfError;

/// Port used when `listen` names only a host (`listen 127.0.0.1;`).
pub const DEFAULT_LISTEN_PORT: u16 = 1935;
/// Largest `so_keepalive` probe count (`TCP_KEEPCNT` is an `int`).
pub const MAX_KEEPALIVE_COUNT: u32 = i32::MAX as u32;

/// What a listening socket binds to.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum ListenAddr {
    /// An address literal, a bare port (`0.0.0.0:port`) or `*:port`.
    Inet(SocketAddr),
    /// `unix:/path`.
    Unix(String),
    /// A host name: nginx resolves it while loading the configuration, so the glue must
    /// resolve it (to one listening socket per address) as well.
    Name { host: String, port: u16 },
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddr::Inet(sa) => write!(f, "{sa}"),
            ListenAddr::Unix(path) => write!(f, "unix:{path}"),
            ListenAddr::Name { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

/// `so_keepalive=` of `listen`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Keepalive {
    On,
    Off,
    /// `so_keepalive=[idle]:[intvl]:[cnt]`: keepalive on, with the given TCP_KEEPIDLE and
    /// TCP_KEEPINTVL (seconds) and TCP_KEEPCNT; an omitted part keeps the system default.
    Tuned {
        idle_s: Option<u64>,
        interval_s: Option<u64>,
        count: Option<u32>,
    },
}

/// One `listen` directive.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ListenSpec {
    pub addr: ListenAddr,
    /// Bind this address on its own socket instead of sharing a wildcard socket.
    /// Set by `bind` and implied by `ipv6only=`, `so_keepalive=`, `reuseport` and `backlog=`.
    pub bind: bool,
    /// `ipv6only=on|off`; only kept for IPv6 addresses (nginx ignores it elsewhere).
    pub ipv6only: Option<bool>,
    pub so_keepalive: Option<Keepalive>,
    pub reuseport: bool,
    pub proxy_protocol: bool,
    /// `ssl`: RTMPS on this socket, with the server's `ssl_*` settings.
    pub ssl: bool,
    pub backlog: Option<i32>,
    /// `default` / `default_server`: accepted and ignored (RTMP has no virtual servers).
    pub default_server: bool,
}

impl ListenSpec {
    /// Whether two `listen`s name the same address and port (nginx refuses that).
    pub fn same_address(&self, other: &ListenSpec) -> bool {
        self.addr == other.addr
    }
}

/// Refuses two `listen`s on the same address and port anywhere in `rtmp{}` (nginx-rtmp checks
/// across all servers; [`super::RtmpConf::apply`] only sees one server).
pub fn check_listen_duplicates<'a>(
    specs: impl IntoIterator<Item = &'a ListenSpec>,
) -> Result<(), ConfError> {
    let mut seen: Vec<&ListenSpec> = Vec::new();
    for spec in specs {
        if seen.iter().any(|s| s.same_address(spec)) {
            return Err(ConfError::Other(format!(
                "duplicate \"{}\" address and port pair",
                spec.addr
            )));
        }
        seen.push(spec);
    }
    Ok(())
}

fn listen_err(reason: &str, value: &str) -> ConfError {
    ConfError::Other(format!(
        "{reason} in \"{value}\" of the \"listen\" directive"
    ))
}

fn parse_port(s: &str) -> Option<u16> {
    parse_uint(s)
        .filter(|p| (1..=65535).contains(p))
        .map(|p| p as u16)
}

/// Parses the address argument: `port`, `host`, `host:port`, `*:port`, `[v6]`, `[v6]:port`,
/// `unix:/path`.
fn parse_listen_addr(s: &str) -> Result<ListenAddr, ConfError> {
    if let Some(path) = s
        .get(..5)
        .filter(|p| p.eq_ignore_ascii_case("unix:"))
        .and_then(|_| s.get(5..))
    {
        if path.is_empty() {
            return Err(listen_err("no path in the unix domain socket", s));
        }
        return Ok(ListenAddr::Unix(path.to_owned()));
    }
    if let Some(inner) = s.strip_prefix('[') {
        let end = inner
            .find(']')
            .ok_or_else(|| listen_err("invalid host", s))?;
        let ip: Ipv6Addr = inner[..end]
            .parse()
            .map_err(|_| listen_err("invalid IPv6 address", s))?;
        let after = &inner[end + 1..];
        let port = if after.is_empty() {
            DEFAULT_LISTEN_PORT
        } else {
            let p = after
                .strip_prefix(':')
                .ok_or_else(|| listen_err("invalid host", s))?;
            parse_port(p).ok_or_else(|| listen_err("invalid port", s))?
        };
        return Ok(ListenAddr::Inet(SocketAddr::new(IpAddr::V6(ip), port)));
    }
    if !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()) {
        let port = parse_port(s).ok_or_else(|| listen_err("invalid port", s))?;
        return Ok(ListenAddr::Inet(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port,
        )));
    }
    let (host, port) = match s.split_once(':') {
        Some((h, p)) => (
            h,
            parse_port(p).ok_or_else(|| listen_err("invalid port", s))?,
        ),
        None => (s, DEFAULT_LISTEN_PORT),
    };
    if host.is_empty() {
        return Err(listen_err("no host", s));
    }
    if host == "*" {
        return Ok(ListenAddr::Inet(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port,
        )));
    }
    if let Ok(ip) = host.parse::<Ipv4Addr>() {
        return Ok(ListenAddr::Inet(SocketAddr::new(IpAddr::V4(ip), port)));
    }
    let valid_name = host
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.' || c == b'_');
    if !valid_name {
        return Err(listen_err("invalid host", s));
    }
    Ok(ListenAddr::Name {
        host: host.to_owned(),
        port,
    })
}

/// Parses `so_keepalive=` after the `=`: `on`, `off` or `[idle]:[intvl]:[cnt]` with times in
/// seconds (nginx time syntax), at least one part non-zero.
fn parse_keepalive(v: &str) -> Option<Keepalive> {
    if let Some(on) = parse_flag(v) {
        return Some(if on { Keepalive::On } else { Keepalive::Off });
    }
    let mut parts = v.splitn(3, ':');
    let idle = parts.next().unwrap_or("");
    let interval = parts.next().unwrap_or("");
    let count = parts.next().unwrap_or("");
    let time = |p: &str| -> Option<Option<u64>> {
        if p.is_empty() {
            Some(None)
        } else {
            parse_sec(p).map(Some)
        }
    };
    let idle_s = time(idle)?;
    let interval_s = time(interval)?;
    let count = if count.is_empty() {
        None
    } else {
        Some(
            parse_uint(count)
                .filter(|&n| n <= u64::from(MAX_KEEPALIVE_COUNT))
                .map(|n| n as u32)?,
        )
    };
    let all_zero =
        idle_s.unwrap_or(0) == 0 && interval_s.unwrap_or(0) == 0 && count.unwrap_or(0) == 0;
    if all_zero {
        return None;
    }
    Some(Keepalive::Tuned {
        idle_s,
        interval_s,
        count,
    })
}

/// Parses a `listen` directive's arguments (the address, then options).
pub fn parse_listen(args: &[&str]) -> Result<ListenSpec, ConfError> {
    parse_listen_warn(args).map(|(spec, _)| spec)
}

/// [`parse_listen`] plus the warning nginx logs for `ipv6only=` on a non-IPv6 address.
pub(crate) fn parse_listen_warn(args: &[&str]) -> Result<(ListenSpec, Option<String>), ConfError> {
    let (first, options) = args.split_first().ok_or(ConfError::ArgCount("listen"))?;
    let mut spec = ListenSpec {
        addr: parse_listen_addr(first)?,
        bind: false,
        ipv6only: None,
        so_keepalive: None,
        reuseport: false,
        proxy_protocol: false,
        ssl: false,
        backlog: None,
        default_server: false,
    };
    let invalid = |opt: &str| {
        ConfError::Other(format!(
            "invalid parameter \"{opt}\" in \"listen\" directive"
        ))
    };
    for &opt in options {
        if opt == "bind" {
            spec.bind = true;
        } else if opt == "default" || opt == "default_server" {
            spec.default_server = true;
        } else if opt == "reuseport" {
            spec.reuseport = true;
            spec.bind = true;
        } else if opt == "proxy_protocol" {
            spec.proxy_protocol = true;
        } else if opt == "ssl" {
            spec.ssl = true;
        } else if let Some(v) = opt.strip_prefix("ipv6only=") {
            let on = match v {
                "on" => true,
                "off" => false,
                _ => {
                    return Err(ConfError::Other(format!(
                        "invalid ipv6only flags \"{v}\" in \"listen\" directive"
                    )))
                }
            };
            spec.ipv6only = Some(on);
            spec.bind = true;
        } else if let Some(v) = opt.strip_prefix("so_keepalive=") {
            let ka = parse_keepalive(v).ok_or_else(|| {
                ConfError::Other(format!(
                    "invalid so_keepalive value: \"{v}\" in \"listen\" directive"
                ))
            })?;
            spec.so_keepalive = Some(ka);
            spec.bind = true;
        } else if let Some(v) = opt.strip_prefix("backlog=") {
            let n = parse_uint(v)
                .filter(|&n| n >= 1 && n <= i32::MAX as u64)
                .ok_or_else(|| {
                    ConfError::Other(format!("invalid backlog \"{v}\" in \"listen\" directive"))
                })?;
            spec.backlog = Some(n as i32);
            spec.bind = true;
        } else {
            return Err(invalid(opt));
        }
    }
    let mut warning = None;
    let is_v6 = matches!(
        spec.addr,
        ListenAddr::Inet(SocketAddr::V6(_)) | ListenAddr::Name { .. }
    );
    if spec.ipv6only.is_some() && !is_v6 {
        warning = Some(format!(
            "ipv6only is not supported on addr \"{}\", ignored",
            spec.addr
        ));
        spec.ipv6only = None;
    }
    Ok((spec, warning))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(args: &[&str]) -> ListenAddr {
        parse_listen(args).unwrap().addr
    }

    fn inet(s: &str) -> ListenAddr {
        ListenAddr::Inet(s.parse().unwrap())
    }

    #[test]
    fn address_forms() {
        assert_eq!(addr(&["1935"]), inet("0.0.0.0:1935"));
        assert_eq!(addr(&["127.0.0.1:1936"]), inet("127.0.0.1:1936"));
        assert_eq!(addr(&["127.0.0.1"]), inet("127.0.0.1:1935"));
        assert_eq!(addr(&["*:1935"]), inet("0.0.0.0:1935"));
        assert_eq!(addr(&["*"]), inet("0.0.0.0:1935"));
        assert_eq!(addr(&["[::]:1935"]), inet("[::]:1935"));
        assert_eq!(addr(&["[::1]:1937"]), inet("[::1]:1937"));
        assert_eq!(addr(&["[::1]"]), inet("[::1]:1935"));
        assert_eq!(
            addr(&["unix:/run/rtmp.sock"]),
            ListenAddr::Unix("/run/rtmp.sock".into())
        );
        assert_eq!(
            addr(&["localhost:1935"]),
            ListenAddr::Name {
                host: "localhost".into(),
                port: 1935
            }
        );
    }

    #[test]
    fn bad_addresses_are_refused_with_nginx_wording() {
        let err = |s: &str| parse_listen(&[s]).unwrap_err().to_string();
        assert_eq!(
            err("0"),
            "invalid port in \"0\" of the \"listen\" directive"
        );
        assert_eq!(
            err("65536"),
            "invalid port in \"65536\" of the \"listen\" directive"
        );
        assert_eq!(
            err("1.2.3.4:x"),
            "invalid port in \"1.2.3.4:x\" of the \"listen\" directive"
        );
        assert_eq!(
            err(":1935"),
            "no host in \":1935\" of the \"listen\" directive"
        );
        assert_eq!(
            err("[::1"),
            "invalid host in \"[::1\" of the \"listen\" directive"
        );
        assert_eq!(
            err("[zz]:1"),
            "invalid IPv6 address in \"[zz]:1\" of the \"listen\" directive"
        );
        assert_eq!(
            err("[::1]1935"),
            "invalid host in \"[::1]1935\" of the \"listen\" directive"
        );
        assert_eq!(
            err("::1"),
            "invalid port in \"::1\" of the \"listen\" directive"
        );
        assert_eq!(
            err("unix:"),
            "no path in the unix domain socket in \"unix:\" of the \"listen\" directive"
        );
        assert_eq!(
            err("a/b:1"),
            "invalid host in \"a/b:1\" of the \"listen\" directive"
        );
        assert_eq!(err(""), "no host in \"\" of the \"listen\" directive");
    }

    #[test]
    fn options_are_parsed() {
        let s = parse_listen(&[
            "[::]:1935",
            "ipv6only=on",
            "so_keepalive=on",
            "reuseport",
            "proxy_protocol",
            "backlog=511",
            "default",
        ])
        .unwrap();
        assert!(s.bind && s.reuseport && s.proxy_protocol && s.default_server);
        assert_eq!(s.ipv6only, Some(true));
        assert_eq!(s.so_keepalive, Some(Keepalive::On));
        assert_eq!(s.backlog, Some(511));

        let s = parse_listen(&["1935"]).unwrap();
        assert!(!s.bind && s.ipv6only.is_none() && s.so_keepalive.is_none() && s.backlog.is_none());
        assert!(parse_listen(&["1935", "bind"]).unwrap().bind);
        assert_eq!(
            parse_listen(&["1935", "so_keepalive=off"])
                .unwrap()
                .so_keepalive,
            Some(Keepalive::Off)
        );
    }

    #[test]
    fn so_keepalive_tuning_parts_are_optional_and_take_time_units() {
        let ka = |v: &str| parse_keepalive(v);
        assert_eq!(
            ka("30m:10:5"),
            Some(Keepalive::Tuned {
                idle_s: Some(1800),
                interval_s: Some(10),
                count: Some(5)
            })
        );
        assert_eq!(
            ka("::10"),
            Some(Keepalive::Tuned {
                idle_s: None,
                interval_s: None,
                count: Some(10)
            })
        );
        assert_eq!(
            ka("1m"),
            Some(Keepalive::Tuned {
                idle_s: Some(60),
                interval_s: None,
                count: None
            })
        );
        assert_eq!(
            ka(":75s"),
            Some(Keepalive::Tuned {
                idle_s: None,
                interval_s: Some(75),
                count: None
            })
        );
        for bad in [
            "",
            "::",
            "0:0:0",
            "x",
            "1:2:3:4",
            "1:2:x",
            "10ms",
            "1:2:99999999999",
            "yes",
        ] {
            assert_eq!(ka(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn bad_options_are_refused() {
        let err = |o: &str| parse_listen(&["1935", o]).unwrap_err().to_string();
        assert_eq!(
            err("tls"),
            "invalid parameter \"tls\" in \"listen\" directive"
        );
        assert!(parse_listen(&["1936", "ssl"]).unwrap().ssl);
        assert_eq!(
            err("ipv6only=yes"),
            "invalid ipv6only flags \"yes\" in \"listen\" directive"
        );
        assert_eq!(
            err("so_keepalive=::"),
            "invalid so_keepalive value: \"::\" in \"listen\" directive"
        );
        assert_eq!(
            err("backlog=0"),
            "invalid backlog \"0\" in \"listen\" directive"
        );
        assert_eq!(
            err("backlog=-1"),
            "invalid backlog \"-1\" in \"listen\" directive"
        );
        assert_eq!(
            err("backlog=3000000000"),
            "invalid backlog \"3000000000\" in \"listen\" directive"
        );
        assert!(parse_listen(&[]).is_err());
    }

    #[test]
    fn ipv6only_on_ipv4_is_ignored_with_a_warning() {
        let (s, w) = parse_listen_warn(&["127.0.0.1:1935", "ipv6only=on"]).unwrap();
        assert_eq!(s.ipv6only, None);
        assert_eq!(
            w.as_deref(),
            Some("ipv6only is not supported on addr \"127.0.0.1:1935\", ignored")
        );
        let (s, w) = parse_listen_warn(&["[::]:1935", "ipv6only=off"]).unwrap();
        assert_eq!((s.ipv6only, w), (Some(false), None));
    }

    #[test]
    fn duplicates_across_servers_are_found() {
        let a = parse_listen(&["1935"]).unwrap();
        let b = parse_listen(&["127.0.0.1:1935"]).unwrap();
        let c = parse_listen(&["*:1935"]).unwrap();
        assert!(check_listen_duplicates([&a, &b]).is_ok());
        assert_eq!(
            check_listen_duplicates([&a, &b, &c])
                .unwrap_err()
                .to_string(),
            "duplicate \"0.0.0.0:1935\" address and port pair"
        );
    }

    #[test]
    fn same_address_compares_address_and_port() {
        let a = parse_listen(&["127.0.0.1:1935"]).unwrap();
        let b = parse_listen(&["127.0.0.1", "bind"]).unwrap();
        let c = parse_listen(&["127.0.0.1:1936"]).unwrap();
        assert!(a.same_address(&b));
        assert!(!a.same_address(&c));
    }
}
