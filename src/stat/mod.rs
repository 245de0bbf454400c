//! Statistics for the `/stat` http handler: a plain-data snapshot of the server and three
//! renderers of it (the C module's XML, JSON, Prometheus text).
//!
//! The glue fills a [`StatSnapshot`] (from this worker, or from shared memory for all workers),
//! then calls [`render`] with the location's [`StatMask`] and the [`Format`] the request asked
//! for. Rendering is pure text building: one `String` sized up front, no IO, no clock.
//! The wire formats are described in `docs/stat.md`.

pub mod json;
pub mod prometheus;
pub mod wire;
pub mod xml;

pub use json::{render_json, render_json_masked};
pub use prometheus::{render_prometheus, render_prometheus_masked};
pub use xml::render_xml;

use thiserror::Error;

use crate::rtmp::command::escape_for_log;

/// Everything `/stat` shows, taken at one instant. Counters are totals since start; `bw_*`
/// values are bits per second (the C module's `bandwidth * 8`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StatSnapshot {
    pub nginx_version: String,
    /// Shown as `<nginx_rtmp_version>` in XML.
    pub module_version: String,
    pub compiler: String,
    /// Build date, the C module shows `__DATE__ __TIME__` ("Jan  1 2024 12:00:00").
    pub built: String,
    pub pid: u32,
    pub uptime_s: u64,
    /// Accepted RTMP connections.
    pub naccepted: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Bits per second.
    pub bw_in: u64,
    /// Bits per second.
    pub bw_out: u64,
    /// The workers this snapshot covers (XML has no place for them; JSON and Prometheus do).
    pub workers: Vec<WorkerInfo>,
    /// One per `rtmp { server { } }`, in configuration order.
    pub servers: Vec<ServerStat>,
}

/// One nginx worker process.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerInfo {
    pub pid: u32,
    pub connections: u64,
    /// The processes this worker supervises (`exec*`).
    pub execs: Vec<ExecStat>,
}

/// One `exec*` process.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecStat {
    /// 0 while it is not running (waiting to be respawned).
    pub pid: u32,
    /// The directive it comes from: `exec`, `exec_push`, `exec_static`...
    pub directive: String,
    /// Its stream (empty for `exec_static`).
    pub app: String,
    pub name: String,
    /// The command line, as started.
    pub command: String,
    pub restarts: u64,
}

/// One `server{}` block; `index` is what `/control?srv=` refers to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServerStat {
    pub index: usize,
    pub applications: Vec<AppStat>,
}

/// One `application{}` block.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AppStat {
    pub name: String,
    /// `live on` in this application; without it the C module shows no `<live>` element.
    pub live: bool,
    pub streams: Vec<StreamStat>,
}

/// One live stream (a publisher and/or its players).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamStat {
    pub name: String,
    /// Milliseconds since the stream was created.
    pub time_ms: u64,
    /// Bits per second.
    pub bw_in: u64,
    pub bytes_in: u64,
    /// Bits per second.
    pub bw_out: u64,
    pub bytes_out: u64,
    /// Bits per second of incoming audio.
    pub bw_audio: u64,
    /// Bits per second of incoming video.
    pub bw_video: u64,
    /// A publisher is attached.
    pub publishing: bool,
    /// The stream has started (codec headers seen).
    pub active: bool,
    /// Publisher and players; `nclients` is the length of this list.
    pub clients: Vec<ClientStat>,
    pub video: Option<VideoMeta>,
    pub audio: Option<AudioMeta>,
    /// Files being recorded (the maintained fork's `<recorders>`).
    pub recorders: Vec<RecorderStat>,
}

/// One file a recorder is writing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RecorderStat {
    /// The recorder's name ("" for the application's own `record`).
    pub name: String,
    pub path: String,
    pub bytes: u64,
    /// Milliseconds of media in the file.
    pub time_ms: u64,
}

impl StreamStat {
    /// `<nclients>`: the publisher and the players.
    pub fn nclients(&self) -> usize {
        self.clients.len()
    }
}

/// One RTMP session attached to a stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientStat {
    /// nginx's connection number (what `/control?clientid=` matches).
    pub id: u64,
    pub address: String,
    /// Milliseconds since the connection was accepted.
    pub time_ms: u64,
    pub flashver: Option<String>,
    pub pageurl: Option<String>,
    pub swfurl: Option<String>,
    /// Frames dropped for this player (slow consumer).
    pub dropped: u64,
    /// Audio timestamp minus video timestamp, milliseconds.
    pub avsync: i64,
    /// The session's current RTMP timestamp, milliseconds.
    pub timestamp: u64,
    pub publishing: bool,
    pub active: bool,
    pub worker_pid: u32,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// What TLS the client came over (an `ssl` listener); None for plain RTMP. Not in the
    /// C module's XML; JSON only.
    pub tls: Option<ClientTls>,
    /// Set for a relay (a `push`): what its reconnects were. Not in the C module's XML.
    pub relay: Option<RelayStat>,
}

/// What `/stat` says of a relay beyond its client fields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RelayStat {
    /// Connections to the target that failed or were lost while the stream was published.
    pub reconnects: u64,
}

/// The TLS of a client's connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientTls {
    /// "TLSv1.3", "TLSv1.2", ...
    pub version: String,
    /// The server name (SNI) the client asked for, if any.
    pub sni: Option<String>,
}

/// Video codec parameters of the publisher.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VideoMeta {
    pub width: u32,
    pub height: u32,
    pub frame_rate: f64,
    /// "H264", "HEVC", "AV1", "On2-VP6", ...; empty when unknown.
    pub codec: String,
    /// "Baseline", "Main", "High", ...
    pub profile: Option<String>,
    /// AVC profile compatibility byte.
    pub compat: Option<u32>,
    /// "3.1".
    pub level: Option<String>,
    /// Bits per luma sample (8, 10, 12) where the configuration record says.
    pub bit_depth: Option<u32>,
    /// "PQ" or "HLG" when the stream signals an HDR transfer function. Not in the C module.
    pub hdr: Option<String>,
    /// The other video tracks of an Enhanced RTMP multitrack publisher (the fields above are
    /// track 0's). JSON only.
    pub tracks: Vec<TrackMeta>,
}

/// One more video track of a multitrack publisher.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrackMeta {
    /// The track id of its messages (1 to 255).
    pub id: u32,
    pub codec: String,
    pub width: u32,
    pub height: u32,
    pub profile: Option<String>,
    pub level: Option<String>,
}

/// Audio codec parameters of the publisher.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AudioMeta {
    /// "AAC", "MP3", "Speex", "Opus", ...; empty when unknown.
    pub codec: String,
    /// "LC", "HE", "HEv2", ...
    pub profile: Option<String>,
    pub channels: Option<u32>,
    pub sample_rate: Option<u32>,
}

/// Why an `rtmp_stat` value was refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum StatError {
    #[error("rtmp_stat needs at least one of \"all\", \"global\", \"live\", \"clients\"")]
    NoSections,
    #[error(
        "invalid rtmp_stat value \"{0}\": it must be one of \"all\", \"global\", \"live\", \"clients\""
    )]
    UnknownSection(String),
    /// A snapshot read back from shared memory is not one [`StatSnapshot::encode`] wrote.
    #[error("stat: corrupt snapshot: {0}")]
    Corrupt(&'static str),
}

/// Which parts of the statistics a location shows (`rtmp_stat all|global|live|clients ...`).
/// As in the C module the header (versions, pid, totals) and the server/application list are
/// always shown; `play` (VOD sessions) is only reachable through `all`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatMask {
    pub global: bool,
    /// Streams of live applications.
    pub live: bool,
    /// Per-client details inside streams.
    pub clients: bool,
    /// VOD (`play`) sessions.
    pub play: bool,
}

impl StatMask {
    pub const ALL: StatMask = StatMask {
        global: true,
        live: true,
        clients: true,
        play: true,
    };

    /// Parses the directive's words; several words accumulate like nginx's bitmask slot.
    pub fn parse(words: &[&str]) -> Result<StatMask, StatError> {
        if words.is_empty() {
            return Err(StatError::NoSections);
        }
        let mut m = StatMask::default();
        for w in words {
            match *w {
                "all" => m = StatMask::ALL,
                "global" => m.global = true,
                "live" => m.live = true,
                "clients" => m.clients = true,
                other => return Err(StatError::UnknownSection(escape_for_log(other))),
            }
        }
        Ok(m)
    }
}

impl From<crate::conf::StatMask> for StatMask {
    fn from(m: crate::conf::StatMask) -> StatMask {
        use crate::conf::StatMask as C;
        StatMask {
            global: m.contains(C::GLOBAL),
            live: m.contains(C::LIVE),
            clients: m.contains(C::CLIENTS),
            play: m.contains(C::PLAY),
        }
    }
}

/// Output format of `/stat`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Format {
    /// The C module's XML (what `stat.xsl` reads).
    #[default]
    Xml,
    Json,
    /// Prometheus text exposition format 0.0.4.
    Prometheus,
}

impl Format {
    /// Reads `format=json|prometheus|xml` from a query string; XML when absent or unknown, so
    /// old `/stat` URLs keep working.
    pub fn from_query(args: &str) -> Format {
        Format::from_query_or(args, Format::Xml)
    }

    /// Like [`Format::from_query`] with another default (`rtmp_stat_format json`).
    pub fn from_query_or(args: &str, default: Format) -> Format {
        match crate::control::query_arg(args, "format") {
            Some(v) if v.eq_ignore_ascii_case("json") => Format::Json,
            Some(v) if v.eq_ignore_ascii_case("prometheus") => Format::Prometheus,
            Some(v) if v.eq_ignore_ascii_case("xml") => Format::Xml,
            _ => default,
        }
    }

    /// The Content-Type header value for this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Xml => "text/xml",
            Format::Json => "application/json",
            Format::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
        }
    }
}

impl From<crate::conf::StatFormat> for Format {
    fn from(f: crate::conf::StatFormat) -> Format {
        match f {
            crate::conf::StatFormat::Xml => Format::Xml,
            crate::conf::StatFormat::Json => Format::Json,
        }
    }
}

/// Renders `s` in `format`; `stylesheet` only applies to XML.
pub fn render(
    s: &StatSnapshot,
    format: Format,
    mask: StatMask,
    stylesheet: Option<&str>,
) -> String {
    match format {
        Format::Xml => render_xml(s, mask, stylesheet),
        Format::Json => render_json_masked(s, mask),
        Format::Prometheus => render_prometheus_masked(s, mask),
    }
}

/// Combines the parts of several worker processes into one document, because a publisher and
/// its players may sit in different workers. The same stream (server index, application,
/// name) becomes one stream: clients of every part (publishers first), byte and bandwidth
/// counters summed, the longest `time_ms`, `publishing`/`active` if any part says so, and the
/// codec information of the part that has the publisher. Top-level counters are summed and
/// `workers` concatenated; versions and `pid` come from the first part (the glue sets them).
pub fn merge(parts: Vec<StatSnapshot>) -> StatSnapshot {
    let mut out = StatSnapshot::default();
    for (i, p) in parts.into_iter().enumerate() {
        if i == 0 {
            out.nginx_version = p.nginx_version;
            out.module_version = p.module_version;
            out.compiler = p.compiler;
            out.built = p.built;
            out.pid = p.pid;
        }
        out.uptime_s = out.uptime_s.max(p.uptime_s);
        out.naccepted = out.naccepted.saturating_add(p.naccepted);
        out.bytes_in = out.bytes_in.saturating_add(p.bytes_in);
        out.bytes_out = out.bytes_out.saturating_add(p.bytes_out);
        out.bw_in = out.bw_in.saturating_add(p.bw_in);
        out.bw_out = out.bw_out.saturating_add(p.bw_out);
        out.workers.extend(p.workers);
        for srv in p.servers {
            match out.servers.iter_mut().find(|s| s.index == srv.index) {
                Some(dst) => merge_apps(&mut dst.applications, srv.applications),
                None => out.servers.push(srv),
            }
        }
    }
    out.servers.sort_by_key(|s| s.index);
    for st in out
        .servers
        .iter_mut()
        .flat_map(|s| s.applications.iter_mut())
        .flat_map(|a| a.streams.iter_mut())
    {
        // Stable: each part's own order is kept within publishers and within players.
        st.clients.sort_by_key(|c| !c.publishing);
    }
    out
}

fn merge_apps(dst: &mut Vec<AppStat>, src: Vec<AppStat>) {
    for app in src {
        let Some(d) = dst.iter_mut().find(|a| a.name == app.name) else {
            dst.push(app);
            continue;
        };
        d.live |= app.live;
        let mut index: std::collections::HashMap<String, usize> = d
            .streams
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.clone(), i))
            .collect();
        for st in app.streams {
            match index.get(&st.name).and_then(|i| d.streams.get_mut(*i)) {
                Some(ds) => merge_stream(ds, st),
                None => {
                    index.insert(st.name.clone(), d.streams.len());
                    d.streams.push(st);
                }
            }
        }
    }
}

fn merge_stream(dst: &mut StreamStat, src: StreamStat) {
    // Codec information is the publisher's; another part may only fill a gap.
    if src.publishing && !dst.publishing {
        dst.video = src.video.or(dst.video.take());
        dst.audio = src.audio.or(dst.audio.take());
    } else {
        dst.video = dst.video.take().or(src.video);
        dst.audio = dst.audio.take().or(src.audio);
    }
    dst.time_ms = dst.time_ms.max(src.time_ms);
    dst.bw_in = dst.bw_in.saturating_add(src.bw_in);
    dst.bytes_in = dst.bytes_in.saturating_add(src.bytes_in);
    dst.bw_out = dst.bw_out.saturating_add(src.bw_out);
    dst.bytes_out = dst.bytes_out.saturating_add(src.bytes_out);
    dst.bw_audio = dst.bw_audio.saturating_add(src.bw_audio);
    dst.bw_video = dst.bw_video.saturating_add(src.bw_video);
    dst.publishing |= src.publishing;
    dst.active |= src.active;
    dst.clients.extend(src.clients);
}

/// A rough size of the rendered output, so renderers allocate once.
pub(crate) fn estimated_len(s: &StatSnapshot) -> usize {
    let mut n = 1024usize;
    for srv in &s.servers {
        n = n.saturating_add(64);
        for app in &srv.applications {
            n = n.saturating_add(128 + app.name.len());
            for st in &app.streams {
                n = n.saturating_add(1024 + 4 * st.name.len());
                for c in &st.clients {
                    let opt = |o: &Option<String>| o.as_deref().map_or(0, str::len);
                    let tls = c
                        .tls
                        .as_ref()
                        .map_or(0, |t| 40 + t.version.len() + opt(&t.sni));
                    n = n.saturating_add(
                        320 + c.address.len()
                            + opt(&c.flashver)
                            + opt(&c.pageurl)
                            + opt(&c.swfurl)
                            + tls,
                    );
                }
            }
        }
    }
    n
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A snapshot with two servers, a hostile stream name, a publisher with full metadata and
    /// a player; shared by the renderer tests.
    pub(crate) fn sample() -> StatSnapshot {
        let publisher = ClientStat {
            id: 7,
            address: "192.0.2.10".into(),
            time_ms: 65_000,
            flashver: Some("FMLE/3.0 (compatible; FMSc/1.0)".into()),
            pageurl: None,
            swfurl: Some("rtmp://example.com/live".into()),
            dropped: 0,
            avsync: -12,
            timestamp: 64_900,
            publishing: true,
            active: true,
            worker_pid: 4242,
            bytes_in: 8_000_000,
            bytes_out: 3_000,
            tls: Some(ClientTls {
                version: "TLSv1.3".into(),
                sni: Some("cam.example.com".into()),
            }),
            relay: None,
        };
        let player = ClientStat {
            id: 9,
            address: "[2001:db8::1]".into(),
            time_ms: 30_000,
            flashver: Some("LNX 9,0,124,2".into()),
            pageurl: Some("http://example.com/?a=1&b=<2>".into()),
            swfurl: None,
            dropped: 3,
            avsync: 0,
            timestamp: 64_800,
            publishing: false,
            active: true,
            worker_pid: 4243,
            bytes_in: 400,
            bytes_out: 7_000_000,
            tls: None,
            relay: None,
        };
        let stream = StreamStat {
            name: "cam1".into(),
            time_ms: 65_100,
            bw_in: 2_500_000,
            bytes_in: 8_000_000,
            bw_out: 2_400_000,
            bytes_out: 7_000_000,
            bw_audio: 128_000,
            bw_video: 2_372_000,
            publishing: true,
            active: true,
            clients: vec![publisher, player],
            video: Some(VideoMeta {
                width: 1280,
                height: 720,
                frame_rate: 29.97,
                codec: "H264".into(),
                profile: Some("High".into()),
                compat: Some(0),
                level: Some("3.1".into()),
                ..VideoMeta::default()
            }),
            audio: Some(AudioMeta {
                codec: "AAC".into(),
                profile: Some("LC".into()),
                channels: Some(2),
                sample_rate: Some(44_100),
            }),
            recorders: Vec::new(),
        };
        let hostile = StreamStat {
            name: "a<b>&\"c'\u{1}\n\td".into(),
            time_ms: 5,
            ..StreamStat::default()
        };
        StatSnapshot {
            nginx_version: "1.28.3".into(),
            module_version: "0.1.0".into(),
            compiler: "rustc 1.88.0".into(),
            built: "Jan  1 2025 00:00:00".into(),
            pid: 4242,
            uptime_s: 3600,
            naccepted: 12,
            bytes_in: 9_000_000,
            bytes_out: 7_500_000,
            bw_in: 2_600_000,
            bw_out: 2_450_000,
            workers: vec![
                WorkerInfo {
                    pid: 4242,
                    connections: 2,
                    execs: Vec::new(),
                },
                WorkerInfo {
                    pid: 4243,
                    connections: 1,
                    execs: Vec::new(),
                },
            ],
            servers: vec![
                ServerStat {
                    index: 0,
                    applications: vec![
                        AppStat {
                            name: "live".into(),
                            live: true,
                            streams: vec![stream, hostile],
                        },
                        AppStat {
                            name: "vod".into(),
                            live: false,
                            streams: vec![],
                        },
                    ],
                },
                ServerStat {
                    index: 1,
                    applications: vec![AppStat {
                        name: "empty".into(),
                        live: true,
                        streams: vec![],
                    }],
                },
            ],
        }
    }

    #[test]
    fn stat_mask_all_sets_every_section_including_play() {
        assert_eq!(StatMask::parse(&["all"]), Ok(StatMask::ALL));
    }

    #[test]
    fn stat_mask_words_accumulate_and_play_is_only_in_all() {
        let m = StatMask::parse(&["global", "live"]).unwrap();
        assert!(m.global && m.live && !m.clients && !m.play);
        let m = StatMask::parse(&["clients"]).unwrap();
        assert!(m.clients && !m.live);
    }

    #[test]
    fn stat_mask_refuses_unknown_words_and_empty_lists() {
        assert_eq!(StatMask::parse(&[]), Err(StatError::NoSections));
        assert!(matches!(
            StatMask::parse(&["live", "play"]),
            Err(StatError::UnknownSection(w)) if w == "play"
        ));
        let err = StatMask::parse(&["x\ny"]).unwrap_err().to_string();
        assert!(!err.contains('\n'), "{err}");
    }

    #[test]
    fn stat_mask_converts_from_the_conf_bitmask() {
        let c = crate::conf::parse_stat_mask(&["live", "clients"]).unwrap();
        let m = StatMask::from(c);
        assert!(m.live && m.clients && !m.global && !m.play);
        assert_eq!(StatMask::from(crate::conf::StatMask::ALL), StatMask::ALL);
    }

    #[test]
    fn format_is_read_from_the_query_and_defaults_to_xml() {
        assert_eq!(Format::from_query(""), Format::Xml);
        assert_eq!(Format::from_query("format=json"), Format::Json);
        assert_eq!(
            Format::from_query("a=1&format=prometheus"),
            Format::Prometheus
        );
        assert_eq!(Format::from_query("format=xml"), Format::Xml);
        assert_eq!(Format::from_query("format=yaml"), Format::Xml);
        assert_eq!(Format::from_query("format=%ZZ"), Format::Xml);
        assert_eq!(Format::from_query("FORMAT=JSON"), Format::Json);
        assert_eq!(Format::from_query("xformat=json"), Format::Xml);
        assert_eq!(Format::from_query_or("", Format::Json), Format::Json);
        assert_eq!(
            Format::from_query_or("format=xml", Format::Json),
            Format::Xml
        );
    }

    #[test]
    fn each_format_has_its_content_type() {
        assert_eq!(Format::Xml.content_type(), "text/xml");
        assert_eq!(Format::Json.content_type(), "application/json");
        assert!(Format::Prometheus.content_type().contains("version=0.0.4"));
    }

    #[test]
    fn render_dispatches_on_format() {
        let s = sample();
        assert!(render(&s, Format::Xml, StatMask::ALL, None).starts_with("<?xml"));
        assert!(render(&s, Format::Json, StatMask::ALL, None).starts_with('{'));
        assert!(render(&s, Format::Prometheus, StatMask::ALL, None).starts_with("# HELP"));
    }

    #[test]
    fn relays_show_their_reconnects_in_every_format() {
        let mut s = sample();
        s.servers[0].applications[0].streams[0].clients[1].relay =
            Some(RelayStat { reconnects: 4 });
        let xml = render(&s, Format::Xml, StatMask::ALL, None);
        let element = "<relay><reconnects>4</reconnects></relay>";
        assert_eq!(xml.matches(element).count(), 1, "{xml}");
        let json: serde_json::Value =
            serde_json::from_str(&render(&s, Format::Json, StatMask::ALL, None)).unwrap();
        let clients = &json["servers"][0]["applications"][0]["streams"][0]["clients"];
        assert_eq!(clients[0]["relay"], serde_json::Value::Null);
        assert_eq!(clients[1]["relay"], serde_json::json!({"reconnects": 4}));
        let prom = render(&s, Format::Prometheus, StatMask::ALL, None);
        let line = prom
            .lines()
            .find(|l| l.starts_with("nginx_rtmp_stream_relay_reconnects_total{"))
            .unwrap_or_else(|| panic!("{prom}"));
        assert!(
            line.contains("name=\"cam1\"") && line.ends_with(" 4"),
            "{line}"
        );
    }

    /// [`sample`] with an HDR HEVC stream with a second video track, Opus audio.
    pub(crate) fn hdr_sample() -> StatSnapshot {
        let mut s = sample();
        let st = &mut s.servers[0].applications[0].streams[0];
        st.video = Some(VideoMeta {
            width: 320,
            height: 240,
            frame_rate: 25.0,
            codec: "HEVC".into(),
            profile: Some("Main 10".into()),
            compat: None,
            level: Some("2.0".into()),
            bit_depth: Some(10),
            hdr: Some("PQ".into()),
            tracks: vec![TrackMeta {
                id: 1,
                codec: "AV1".into(),
                width: 160,
                height: 120,
                profile: Some("Main".into()),
                level: None,
            }],
        });
        st.audio = Some(AudioMeta {
            codec: "Opus".into(),
            profile: None,
            channels: Some(2),
            sample_rate: Some(48_000),
        });
        s
    }

    #[test]
    fn hdr_bit_depth_and_tracks_show_in_json_prometheus_and_hdr_in_xml() {
        let s = hdr_sample();
        let json: serde_json::Value =
            serde_json::from_str(&render(&s, Format::Json, StatMask::ALL, None)).unwrap();
        let st = &json["servers"][0]["applications"][0]["streams"][0];
        assert_eq!(st["video"]["hdr"], "PQ");
        assert_eq!(st["video"]["bit_depth"], 10);
        assert_eq!(st["video"]["profile"], "Main 10");
        assert_eq!(
            st["video"]["tracks"],
            serde_json::json!([{"id": 1, "codec": "AV1", "width": 160, "height": 120,
                                "profile": "Main", "level": null}])
        );
        assert_eq!(st["audio"]["codec"], "Opus");
        // A stream without them says so with null and [].
        let plain = &json["servers"][0]["applications"][0]["streams"][1];
        assert_eq!(plain["video"], serde_json::Value::Null);
        let old: serde_json::Value =
            serde_json::from_str(&render(&sample(), Format::Json, StatMask::ALL, None)).unwrap();
        let v = &old["servers"][0]["applications"][0]["streams"][0]["video"];
        assert_eq!(
            (&v["hdr"], &v["bit_depth"]),
            (&serde_json::Value::Null, &serde_json::Value::Null)
        );
        assert_eq!(v["tracks"], serde_json::json!([]));

        let xml = render(&s, Format::Xml, StatMask::ALL, None);
        assert!(
            xml.contains(
                "<meta><video><width>320</width><height>240</height><frame_rate>25</frame_rate>\
                 <codec>HEVC</codec><profile>Main 10</profile><level>2.0</level><hdr>PQ</hdr>\
                 </video><audio><codec>Opus</codec><channels>2</channels>\
                 <sample_rate>48000</sample_rate></audio></meta>"
            ),
            "{xml}"
        );
        assert!(!render(&sample(), Format::Xml, StatMask::ALL, None).contains("<hdr>"));

        let prom = render(&s, Format::Prometheus, StatMask::ALL, None);
        assert!(
            prom.contains(
                "nginx_rtmp_stream_video_info{server=\"0\",app=\"live\",name=\"cam1\",\
                 codec=\"HEVC\",profile=\"Main 10\",level=\"2.0\",bit_depth=\"10\",hdr=\"PQ\"} 1\n"
            ),
            "{prom}"
        );
        assert!(prom.contains(
            "nginx_rtmp_stream_audio_info{server=\"0\",app=\"live\",name=\"cam1\",\
             codec=\"Opus\",profile=\"\"} 1\n"
        ));
        assert!(prom.contains(
            "nginx_rtmp_stream_audio_sample_rate_hertz{server=\"0\",app=\"live\",name=\"cam1\"} 48000\n"
        ));
        assert!(prom.contains(
            "nginx_rtmp_stream_audio_channels{server=\"0\",app=\"live\",name=\"cam1\"} 2\n"
        ));
    }

    /// Worker `pid`'s part holding stream `live/cam1` with `clients` (id, publishing).
    fn part(pid: u32, clients: &[(u64, bool)], with_meta: bool) -> StatSnapshot {
        let clients: Vec<ClientStat> = clients
            .iter()
            .map(|&(id, publishing)| ClientStat {
                id,
                publishing,
                worker_pid: pid,
                ..ClientStat::default()
            })
            .collect();
        let publishing = clients.iter().any(|c| c.publishing);
        let full = sample();
        let meta = &full.servers[0].applications[0].streams[0];
        StatSnapshot {
            pid,
            naccepted: 3,
            bytes_in: 100,
            bytes_out: 200,
            bw_in: 10,
            bw_out: 20,
            workers: vec![WorkerInfo {
                pid,
                connections: clients.len() as u64,
                execs: Vec::new(),
            }],
            servers: vec![ServerStat {
                index: 0,
                applications: vec![AppStat {
                    name: "live".into(),
                    live: true,
                    streams: vec![StreamStat {
                        name: "cam1".into(),
                        time_ms: u64::from(pid),
                        bytes_in: 1000,
                        bytes_out: 2000,
                        bw_in: 8,
                        bw_out: 16,
                        publishing,
                        active: publishing,
                        clients,
                        video: with_meta.then(|| meta.video.clone()).flatten(),
                        audio: with_meta.then(|| meta.audio.clone()).flatten(),
                        ..StreamStat::default()
                    }],
                }],
            }],
            ..StatSnapshot::default()
        }
    }

    #[test]
    fn merge_joins_one_stream_seen_by_two_workers() {
        // Worker 2 has two players, worker 1 the publisher and a player.
        let a = part(2, &[(20, false), (21, false)], false);
        let b = part(1, &[(10, true), (11, false)], true);
        let m = merge(vec![a, b]);
        assert_eq!(m.pid, 2);
        assert_eq!(m.naccepted, 6);
        assert_eq!(
            (m.bytes_in, m.bytes_out, m.bw_in, m.bw_out),
            (200, 400, 20, 40)
        );
        assert_eq!(m.workers.len(), 2);
        assert_eq!(m.servers.len(), 1);
        let apps = &m.servers[0].applications;
        assert_eq!(apps.len(), 1);
        assert_eq!(apps[0].streams.len(), 1);
        let st = &apps[0].streams[0];
        let ids: Vec<u64> = st.clients.iter().map(|c| c.id).collect();
        assert_eq!(ids, [10, 20, 21, 11]);
        assert!(st.publishing && st.active);
        assert_eq!(st.time_ms, 2);
        assert_eq!(
            (st.bytes_in, st.bytes_out, st.bw_in, st.bw_out),
            (2000, 4000, 16, 32)
        );
        assert_eq!(st.video.as_ref().unwrap().width, 1280);
        assert_eq!(st.audio.as_ref().unwrap().codec, "AAC");
    }

    #[test]
    fn merge_prefers_the_publishers_metadata() {
        let mut stale = part(1, &[(1, false)], true);
        stale.servers[0].applications[0].streams[0]
            .video
            .as_mut()
            .unwrap()
            .width = 1;
        let publisher = part(2, &[(2, true)], true);
        let m = merge(vec![stale, publisher]);
        let st = &m.servers[0].applications[0].streams[0];
        assert_eq!(st.video.as_ref().unwrap().width, 1280);
        assert_eq!(st.clients[0].id, 2);
    }

    #[test]
    fn merge_keeps_distinct_servers_apps_and_streams_apart() {
        let mut a = part(1, &[(1, true)], false);
        let mut b = part(2, &[(2, true)], false);
        b.servers[0].applications[0].streams[0].name = "cam2".into();
        let mut c = part(3, &[(3, true)], false);
        c.servers[0].index = 1;
        let mut d = part(4, &[(4, true)], false);
        d.servers[0].applications[0].name = "other".into();
        a.servers[0].applications.push(AppStat {
            name: "vod".into(),
            live: false,
            streams: vec![],
        });
        let m = merge(vec![c, a, b, d]);
        let idx: Vec<usize> = m.servers.iter().map(|s| s.index).collect();
        assert_eq!(idx, [0, 1]);
        let names: Vec<&str> = m.servers[0]
            .applications
            .iter()
            .map(|a| a.name.as_str())
            .collect();
        assert_eq!(names, ["live", "vod", "other"]);
        let streams: Vec<&str> = m.servers[0].applications[0]
            .streams
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(streams, ["cam1", "cam2"]);
        assert_eq!(merge(vec![]), StatSnapshot::default());
        assert_eq!(merge(vec![sample()]), sample());
    }
}
