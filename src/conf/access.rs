//! `allow` / `deny`: ordered address rules for publishing and playing.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::value::parse_uint;
use super::ConfError;

/// What a client asks to do.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Action {
    Publish,
    Play,
}

/// Which peers a rule matches. Addresses are stored with their host bits cleared.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum AccessTarget {
    /// `all`: every peer.
    All,
    V4 {
        addr: Ipv4Addr,
        prefix: u8,
    },
    V6 {
        addr: Ipv6Addr,
        prefix: u8,
    },
    /// `unix:`: peers on unix-domain sockets (accepted as nginx's http `allow` does); never
    /// matches an IP peer.
    Unix,
}

/// One `allow`/`deny` directive.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct AccessRule {
    pub deny: bool,
    /// The rule applies to publishing.
    pub publish: bool,
    /// The rule applies to playing.
    pub play: bool,
    pub target: AccessTarget,
}

impl AccessRule {
    fn applies_to(&self, action: Action) -> bool {
        match action {
            Action::Publish => self.publish,
            Action::Play => self.play,
        }
    }
}

fn v4_mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix.min(32)))
    }
}

fn v6_mask(prefix: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(prefix.min(128)))
    }
}

impl AccessTarget {
    /// Whether `ip` (already unmapped from `::ffff:a.b.c.d`) falls in this target.
    fn matches(&self, ip: IpAddr) -> bool {
        match (self, ip) {
            (AccessTarget::All, _) => true,
            (AccessTarget::V4 { addr, prefix }, IpAddr::V4(ip)) => {
                u32::from(ip) & v4_mask(*prefix) == u32::from(*addr)
            }
            (AccessTarget::V6 { addr, prefix }, IpAddr::V6(ip)) => {
                u128::from(ip) & v6_mask(*prefix) == u128::from(*addr)
            }
            _ => false,
        }
    }
}

/// Parses an address rule's target (`all`, `unix:`, `addr` or `addr/prefix`), like nginx's
/// `ngx_ptocidr`. The flag is true when the address had host bits set (they are cleared; nginx
/// warns "low address bits of ... are meaningless").
pub fn parse_cidr(s: &str) -> Option<(AccessTarget, bool)> {
    if s == "all" {
        return Some((AccessTarget::All, false));
    }
    if s == "unix:" {
        return Some((AccessTarget::Unix, false));
    }
    let (addr, prefix) = match s.split_once('/') {
        Some((a, p)) => (a, Some(parse_uint(p)?)),
        None => (s, None),
    };
    if let Ok(ip) = addr.parse::<Ipv4Addr>() {
        let prefix = match prefix {
            None => 32,
            Some(p) if p <= 32 => p as u8,
            Some(_) => return None,
        };
        let masked = u32::from(ip) & v4_mask(prefix);
        let target = AccessTarget::V4 {
            addr: Ipv4Addr::from(masked),
            prefix,
        };
        return Some((target, masked != u32::from(ip)));
    }
    if let Ok(ip) = addr.parse::<Ipv6Addr>() {
        let prefix = match prefix {
            None => 128,
            Some(p) if p <= 128 => p as u8,
            Some(_) => return None,
        };
        let masked = u128::from(ip) & v6_mask(prefix);
        let target = AccessTarget::V6 {
            addr: Ipv6Addr::from(masked),
            prefix,
        };
        return Some((target, masked != u128::from(ip)));
    }
    None
}

/// Parses `allow`/`deny [play|publish] addr|cidr|all|unix:`. `directive` is `allow` or `deny`.
/// Returns the rule and, for a CIDR with host bits set, the warning nginx logs.
pub fn parse_access_rule(
    directive: &'static str,
    args: &[&str],
) -> Result<(AccessRule, Option<String>), ConfError> {
    let (publish, play, target) = match args {
        [target] => (true, true, *target),
        [action, target] => match *action {
            "publish" => (true, false, *target),
            "play" => (false, true, *target),
            other => {
                return Err(ConfError::InvalidValue {
                    directive,
                    value: other.to_owned(),
                    expected: "it must be \"publish\" or \"play\"".to_owned(),
                })
            }
        },
        _ => return Err(ConfError::ArgCount(directive)),
    };
    let (parsed, low_bits) = parse_cidr(target).ok_or_else(|| ConfError::InvalidParameter {
        directive,
        value: target.to_owned(),
    })?;
    let warning = low_bits.then(|| format!("low address bits of {target} are meaningless"));
    Ok((
        AccessRule {
            deny: directive == "deny",
            publish,
            play,
            target: parsed,
        },
        warning,
    ))
}

/// Decides whether `ip` may perform `action`: the first rule that applies to the action and
/// matches the address wins; when none matches the client is allowed (the C module's rule).
/// IPv4-mapped IPv6 peers (`::ffff:a.b.c.d`, seen on dual-stack sockets) are matched as IPv4.
pub fn access_allowed(rules: &[AccessRule], ip: IpAddr, action: Action) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    };
    rules
        .iter()
        .find(|r| r.applies_to(action) && r.target.matches(ip))
        .is_none_or(|r| !r.deny)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(d: &'static str, args: &[&str]) -> AccessRule {
        parse_access_rule(d, args).unwrap().0
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn first_matching_rule_wins_and_default_is_allow() {
        let rules = [
            rule("allow", &["publish", "127.0.0.1"]),
            rule("deny", &["publish", "all"]),
        ];
        assert!(access_allowed(&rules, ip("127.0.0.1"), Action::Publish));
        assert!(!access_allowed(&rules, ip("10.0.0.1"), Action::Publish));
        // No rule applies to play: allowed.
        assert!(access_allowed(&rules, ip("10.0.0.1"), Action::Play));
        assert!(access_allowed(&[], ip("10.0.0.1"), Action::Publish));
    }

    #[test]
    fn rule_without_action_applies_to_both() {
        let rules = [rule("deny", &["192.168.0.0/16"])];
        assert!(!access_allowed(&rules, ip("192.168.3.4"), Action::Play));
        assert!(!access_allowed(&rules, ip("192.168.3.4"), Action::Publish));
        assert!(access_allowed(&rules, ip("192.169.0.1"), Action::Play));
    }

    #[test]
    fn ipv4_cidr_boundaries() {
        let rules = [rule("allow", &["10.1.2.0/23"]), rule("deny", &["all"])];
        assert!(access_allowed(&rules, ip("10.1.2.0"), Action::Play));
        assert!(access_allowed(&rules, ip("10.1.3.255"), Action::Play));
        assert!(!access_allowed(&rules, ip("10.1.4.0"), Action::Play));
        assert!(!access_allowed(&rules, ip("10.1.1.255"), Action::Play));
        let zero = [rule("deny", &["0.0.0.0/0"])];
        assert!(!access_allowed(&zero, ip("8.8.8.8"), Action::Play));
        assert!(access_allowed(&zero, ip("::1"), Action::Play));
    }

    #[test]
    fn ipv6_rules_match_ipv6_peers_only() {
        let rules = [rule("deny", &["2001:db8::/32"])];
        assert!(!access_allowed(
            &rules,
            ip("2001:db8:1::5"),
            Action::Publish
        ));
        assert!(access_allowed(&rules, ip("2001:db9::1"), Action::Publish));
        assert!(access_allowed(&rules, ip("32.1.13.184"), Action::Publish));
        let host = [rule("deny", &["::1"])];
        assert!(!access_allowed(&host, ip("::1"), Action::Play));
        assert!(access_allowed(&host, ip("::2"), Action::Play));
    }

    #[test]
    fn ipv4_mapped_peers_match_ipv4_rules() {
        let rules = [
            rule("allow", &["publish", "127.0.0.1"]),
            rule("deny", &["publish", "all"]),
        ];
        assert!(access_allowed(
            &rules,
            ip("::ffff:127.0.0.1"),
            Action::Publish
        ));
        assert!(!access_allowed(
            &rules,
            ip("::ffff:10.0.0.1"),
            Action::Publish
        ));
        let v6only = [rule("deny", &["::ffff:0:0/96"])];
        // The peer is unmapped first, so an IPv6 rule on the mapped range does not match.
        assert!(access_allowed(&v6only, ip("::ffff:1.2.3.4"), Action::Play));
    }

    #[test]
    fn all_matches_both_families_and_unix_matches_no_ip() {
        let all = [rule("deny", &["all"])];
        assert!(!access_allowed(&all, ip("1.2.3.4"), Action::Play));
        assert!(!access_allowed(&all, ip("fe80::1"), Action::Play));
        let unix = [rule("deny", &["unix:"])];
        assert!(access_allowed(&unix, ip("1.2.3.4"), Action::Play));
    }

    #[test]
    fn host_bits_are_masked_with_a_warning() {
        let (r, w) = parse_access_rule("allow", &["10.1.2.3/24"]).unwrap();
        assert_eq!(
            r.target,
            AccessTarget::V4 {
                addr: Ipv4Addr::new(10, 1, 2, 0),
                prefix: 24
            }
        );
        assert_eq!(
            w.as_deref(),
            Some("low address bits of 10.1.2.3/24 are meaningless")
        );
        let (r, w) = parse_access_rule("allow", &["2001:db8::1/64"]).unwrap();
        assert_eq!(
            r.target,
            AccessTarget::V6 {
                addr: "2001:db8::".parse().unwrap(),
                prefix: 64
            }
        );
        assert!(w.is_some());
        assert!(parse_access_rule("allow", &["10.1.2.0/24"])
            .unwrap()
            .1
            .is_none());
    }

    #[test]
    fn bad_rules_are_refused() {
        let err = |args: &[&str]| parse_access_rule("allow", args).unwrap_err().to_string();
        assert_eq!(
            err(&["10.0.0.1/33"]),
            "invalid parameter \"10.0.0.1/33\" in \"allow\" directive"
        );
        assert_eq!(
            err(&["::1/129"]),
            "invalid parameter \"::1/129\" in \"allow\" directive"
        );
        assert_eq!(
            err(&["10.0.0.1/"]),
            "invalid parameter \"10.0.0.1/\" in \"allow\" directive"
        );
        assert_eq!(
            err(&["10.0.0.1/-1"]),
            "invalid parameter \"10.0.0.1/-1\" in \"allow\" directive"
        );
        assert_eq!(
            err(&["10.0.0"]),
            "invalid parameter \"10.0.0\" in \"allow\" directive"
        );
        assert_eq!(
            err(&["example.com"]),
            "invalid parameter \"example.com\" in \"allow\" directive"
        );
        assert_eq!(
            err(&["publish"]),
            "invalid parameter \"publish\" in \"allow\" directive"
        );
        assert_eq!(
            err(&["record", "all"]),
            "invalid value \"record\" in \"allow\" directive, it must be \"publish\" or \"play\""
        );
        assert!(parse_access_rule("allow", &[]).is_err());
        assert!(parse_access_rule("allow", &["play", "publish", "all"]).is_err());
    }

    #[test]
    fn deny_and_allow_are_told_apart() {
        assert!(rule("deny", &["all"]).deny);
        assert!(!rule("allow", &["all"]).deny);
        let r = rule("allow", &["play", "all"]);
        assert!(r.play && !r.publish);
    }
}
