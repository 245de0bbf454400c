//! Directives that live outside `rtmp{}`: the main-context `rtmp_auto_push*` /
//! `rtmp_socket_dir` ([`MainConf`]) and the http-side handlers `rtmp_stat`, `rtmp_control`
//! and friends, `rtmp_low_latency` ([`HttpConf`], one per http/server/location level).

use super::directives::find;
use super::value::{parse_enum, parse_flag, parse_msec};
use super::{Applied, ConfError, Context};

/// `rtmp_stat` sections (the C module's bitmask values).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct StatMask(pub u8);

impl StatMask {
    pub const GLOBAL: StatMask = StatMask(0x01);
    pub const LIVE: StatMask = StatMask(0x02);
    pub const CLIENTS: StatMask = StatMask(0x04);
    /// Only reachable through `all`.
    pub const PLAY: StatMask = StatMask(0x08);
    pub const ALL: StatMask = StatMask(0xff);

    /// Whether every bit of `other` is set.
    pub fn contains(self, other: StatMask) -> bool {
        self.0 & other.0 == other.0
    }
}

/// `rtmp_control` sections.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct ControlMask(pub u8);

impl ControlMask {
    pub const RECORD: ControlMask = ControlMask(0x01);
    pub const DROP: ControlMask = ControlMask(0x02);
    pub const REDIRECT: ControlMask = ControlMask(0x04);
    pub const ALL: ControlMask = ControlMask(0xff);

    /// Whether every bit of `other` is set.
    pub fn contains(self, other: ControlMask) -> bool {
        self.0 & other.0 == other.0
    }
}

/// `rtmp_stat_format` (nginx-http-flv-module).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum StatFormat {
    Xml,
    Json,
}

fn bitmask(d: &'static str, args: &[&str], names: &[(&str, u8)]) -> Result<u8, ConfError> {
    if args.is_empty() {
        return Err(ConfError::ArgCount(d));
    }
    args.iter().try_fold(0u8, |acc, a| {
        parse_enum(a, names).map(|bit| acc | bit).ok_or_else(|| {
            let list: Vec<String> = names.iter().map(|(n, _)| format!("\"{n}\"")).collect();
            ConfError::InvalidValue {
                directive: d,
                value: (*a).to_owned(),
                expected: format!("it must be one of {}", list.join(", ")),
            }
        })
    })
}

/// Parses `rtmp_stat all|global|live|clients ...` (several words accumulate).
pub fn parse_stat_mask(args: &[&str]) -> Result<StatMask, ConfError> {
    bitmask(
        "rtmp_stat",
        args,
        &[
            ("all", 0xff),
            ("global", 0x01),
            ("live", 0x02),
            ("clients", 0x04),
        ],
    )
    .map(StatMask)
}

/// Parses `rtmp_control all|record|drop|redirect ...`.
pub fn parse_control_mask(args: &[&str]) -> Result<ControlMask, ConfError> {
    bitmask(
        "rtmp_control",
        args,
        &[
            ("all", 0xff),
            ("record", 0x01),
            ("drop", 0x02),
            ("redirect", 0x04),
        ],
    )
    .map(ControlMask)
}

/// Parses `rtmp_stat_format xml|json`.
pub fn parse_stat_format(args: &[&str]) -> Result<StatFormat, ConfError> {
    let d = "rtmp_stat_format";
    match args {
        [v] => parse_enum(v, &[("xml", StatFormat::Xml), ("json", StatFormat::Json)]).ok_or_else(
            || ConfError::InvalidValue {
                directive: d,
                value: (*v).to_owned(),
                expected: "it must be \"xml\" or \"json\"".to_owned(),
            },
        ),
        _ => Err(ConfError::ArgCount(d)),
    }
}

fn lookup(name: &str, ctx: Context, args: &[&str]) -> Result<&'static str, ConfError> {
    let dir = find(name).ok_or_else(|| ConfError::UnknownDirective(name.to_owned()))?;
    dir.check_context(ctx)?;
    dir.check_args(args.len())?;
    Ok(dir.name)
}

fn flag(d: &'static str, v: &str) -> Result<bool, ConfError> {
    parse_flag(v).ok_or_else(|| ConfError::InvalidValue {
        directive: d,
        value: v.to_owned(),
        expected: "it must be \"on\" or \"off\"".to_owned(),
    })
}

/// The http-side settings of one level (http, server or location).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HttpConf {
    /// `rtmp_stat`: this location serves statistics.
    pub stat: Option<StatMask>,
    pub stat_stylesheet: Option<String>,
    pub stat_format: Option<StatFormat>,
    /// `rtmp_control`: this location serves the control API.
    pub control: Option<ControlMask>,
    /// `flv_live` (nginx-http-flv-module): HTTP-FLV playback from this location.
    pub flv_live: Option<bool>,
    /// `rtmp_low_latency`: LL-HLS blocking reload and preload hints for the files here.
    pub low_latency: Option<bool>,
}

impl HttpConf {
    /// Applies one http-side directive. Repeated `rtmp_stat`/`rtmp_control` accumulate (nginx
    /// bitmask slots); the others refuse duplicates.
    pub fn apply(&mut self, name: &str, args: &[&str]) -> Applied {
        let d = lookup(name, Context::Http, args)?;
        let v = args.first().copied().unwrap_or("");
        match d {
            "rtmp_stat" => {
                let m = parse_stat_mask(args)?;
                let prev = self.stat.unwrap_or_default();
                self.stat = Some(StatMask(prev.0 | m.0));
            }
            "rtmp_control" => {
                let m = parse_control_mask(args)?;
                let prev = self.control.unwrap_or_default();
                self.control = Some(ControlMask(prev.0 | m.0));
            }
            "rtmp_stat_stylesheet" => {
                if self.stat_stylesheet.is_some() {
                    return Err(ConfError::Duplicate(d));
                }
                self.stat_stylesheet = Some(v.to_owned());
            }
            "rtmp_stat_format" => {
                if self.stat_format.is_some() {
                    return Err(ConfError::Duplicate(d));
                }
                self.stat_format = Some(parse_stat_format(args)?);
            }
            "flv_live" => {
                if self.flv_live.is_some() {
                    return Err(ConfError::Duplicate(d));
                }
                self.flv_live = Some(flag(d, v)?);
            }
            "rtmp_low_latency" => {
                if self.low_latency.is_some() {
                    return Err(ConfError::Duplicate(d));
                }
                self.low_latency = Some(flag(d, v)?);
            }
            _ => return Err(ConfError::NotAllowedHere(d)),
        }
        Ok(None)
    }

    /// Unset values take the enclosing level's.
    pub fn merge_from(&mut self, parent: &HttpConf) {
        if self.stat.is_none() {
            self.stat = parent.stat;
        }
        if self.stat_stylesheet.is_none() {
            self.stat_stylesheet.clone_from(&parent.stat_stylesheet);
        }
        if self.stat_format.is_none() {
            self.stat_format = parent.stat_format;
        }
        if self.control.is_none() {
            self.control = parent.control;
        }
        if self.flv_live.is_none() {
            self.flv_live = parent.flv_live;
        }
        if self.low_latency.is_none() {
            self.low_latency = parent.low_latency;
        }
    }
}

/// The C module's `rtmp_auto_push` settings, resolved (accepted, not needed here).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct AutoPushSettings {
    /// `rtmp_auto_push` (off).
    pub auto_push: bool,
    /// `rtmp_auto_push_reconnect` (100ms).
    pub reconnect_ms: u64,
    /// `rtmp_socket_dir` ("/tmp").
    pub socket_dir: String,
}

/// Main-context (outside `rtmp{}`) directives.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MainConf {
    pub auto_push: Option<bool>,
    pub auto_push_reconnect_ms: Option<u64>,
    pub socket_dir: Option<String>,
}

impl MainConf {
    /// Applies one main-context directive, refusing duplicates like nginx's slots.
    pub fn apply(&mut self, name: &str, args: &[&str]) -> Applied {
        let d = lookup(name, Context::Main, args)?;
        let v = args.first().copied().unwrap_or("");
        let dup = || Err(ConfError::Duplicate(d));
        match d {
            "rtmp_auto_push" => {
                if self.auto_push.is_some() {
                    return dup();
                }
                self.auto_push = Some(flag(d, v)?);
            }
            "rtmp_auto_push_reconnect" => {
                if self.auto_push_reconnect_ms.is_some() {
                    return dup();
                }
                let ms = parse_msec(v).ok_or_else(|| ConfError::InvalidValue {
                    directive: d,
                    value: v.to_owned(),
                    expected: String::new(),
                })?;
                self.auto_push_reconnect_ms = Some(ms);
            }
            "rtmp_socket_dir" => {
                if self.socket_dir.is_some() {
                    return dup();
                }
                self.socket_dir = Some(v.to_owned());
            }
            _ => return Err(ConfError::NotAllowedHere(d)),
        }
        Ok(None)
    }

    /// The C module's defaults filled in.
    pub fn resolve(&self) -> AutoPushSettings {
        AutoPushSettings {
            auto_push: self.auto_push.unwrap_or(false),
            reconnect_ms: self.auto_push_reconnect_ms.unwrap_or(100),
            socket_dir: self.socket_dir.clone().unwrap_or_else(|| "/tmp".to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_mask_words_accumulate() {
        assert_eq!(parse_stat_mask(&["all"]).unwrap(), StatMask::ALL);
        let m = parse_stat_mask(&["live", "CLIENTS"]).unwrap();
        assert!(m.contains(StatMask::LIVE) && m.contains(StatMask::CLIENTS));
        assert!(!m.contains(StatMask::GLOBAL) && !m.contains(StatMask::PLAY));
        assert!(StatMask::ALL.contains(StatMask::PLAY));
        assert_eq!(
            parse_stat_mask(&["live", "play"]).unwrap_err().to_string(),
            "invalid value \"play\" in \"rtmp_stat\" directive, it must be one of \"all\", \
             \"global\", \"live\", \"clients\""
        );
        assert!(parse_stat_mask(&[]).is_err());
    }

    #[test]
    fn control_mask_words() {
        assert_eq!(parse_control_mask(&["all"]).unwrap(), ControlMask::ALL);
        let m = parse_control_mask(&["drop", "redirect"]).unwrap();
        assert!(m.contains(ControlMask::DROP) && !m.contains(ControlMask::RECORD));
        assert!(parse_control_mask(&["stat"]).is_err());
    }

    #[test]
    fn http_conf_applies_merges_and_refuses_duplicates() {
        let mut server = HttpConf::default();
        server.apply("rtmp_stat_stylesheet", &["stat.xsl"]).unwrap();
        let mut loc = HttpConf::default();
        loc.apply("rtmp_stat", &["live"]).unwrap();
        loc.apply("rtmp_stat", &["clients"]).unwrap();
        loc.apply("rtmp_stat_format", &["json"]).unwrap();
        assert_eq!(
            loc.apply("rtmp_stat_format", &["xml"]).unwrap_err(),
            ConfError::Duplicate("rtmp_stat_format")
        );
        loc.merge_from(&server);
        assert_eq!(loc.stat, Some(StatMask(0x06)));
        assert_eq!(loc.stat_stylesheet.as_deref(), Some("stat.xsl"));
        assert_eq!(loc.stat_format, Some(StatFormat::Json));
        assert!(loc.apply("live", &["on"]).is_err());
        assert!(loc.apply("flv_live", &["maybe"]).is_err());
        assert_eq!(
            loc.apply("rtmp_low_latency", &["yes"])
                .unwrap_err()
                .to_string(),
            "invalid value \"yes\" in \"rtmp_low_latency\" directive, it must be \"on\" or \"off\""
        );
        let mut server = HttpConf::default();
        server.apply("rtmp_low_latency", &["on"]).unwrap();
        assert_eq!(
            server.apply("rtmp_low_latency", &["off"]).unwrap_err(),
            ConfError::Duplicate("rtmp_low_latency")
        );
        let mut off_here = HttpConf::default();
        off_here.apply("rtmp_low_latency", &["off"]).unwrap();
        off_here.merge_from(&server);
        let mut inherits = HttpConf::default();
        inherits.merge_from(&server);
        assert_eq!(
            (off_here.low_latency, inherits.low_latency),
            (Some(false), Some(true))
        );
        assert_eq!(
            loc.apply("rtmp_stat_stylesheet", &[])
                .unwrap_err()
                .to_string(),
            "invalid number of arguments in \"rtmp_stat_stylesheet\" directive"
        );
    }

    #[test]
    fn main_conf_defaults_and_values() {
        let d = MainConf::default().resolve();
        assert_eq!(
            d,
            AutoPushSettings {
                auto_push: false,
                reconnect_ms: 100,
                socket_dir: "/tmp".into()
            }
        );
        let mut m = MainConf::default();
        m.apply("rtmp_auto_push", &["on"]).unwrap();
        m.apply("rtmp_auto_push_reconnect", &["1s"]).unwrap();
        m.apply("rtmp_socket_dir", &["/var/sock"]).unwrap();
        let r = m.resolve();
        assert!(r.auto_push);
        assert_eq!((r.reconnect_ms, r.socket_dir.as_str()), (1000, "/var/sock"));
        assert_eq!(
            m.apply("rtmp_auto_push", &["off"]).unwrap_err().to_string(),
            "\"rtmp_auto_push\" directive is duplicate"
        );
        assert!(MainConf::default()
            .apply("rtmp_auto_push_reconnect", &["x"])
            .is_err());
        assert_eq!(
            MainConf::default()
                .apply("chunk_size", &["4096"])
                .unwrap_err()
                .to_string(),
            "\"chunk_size\" directive is not allowed here"
        );
    }
}
