//! DASH helpers: nginx with DASH applications, MPDs read from disk with an independent XML
//! parser (roxmltree), segment availability computed the way a DASH player computes it, a
//! watcher that checks every MPD snapshot against the disk and the wall clock, and ffmpeg runs
//! on MPD URLs.
//!
//! Layout used by every DASH test server: application `<app>` writes to `{PREFIX}/tmp/<app>`,
//! and the http location `/dash/` serves `{PREFIX}/tmp/`, so `live/key` plays at
//! `http://127.0.0.1:<port>/dash/live/key.mpd` (or `.../live/key/index.mpd` with
//! `dash_nested on`).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::hls::{http_request, run_bounded, Decoded};
use super::*;

/// The MPD namespace (ISO/IEC 23009-1).
pub const MPD_NS: &str = "urn:mpeg:dash:schema:mpd:2011";
/// The XML Schema instance namespace (for `xsi:schemaLocation`).
pub const XSI_NS: &str = "http://www.w3.org/2001/XMLSchema-instance";
/// `AudioChannelConfiguration` schemes whose value is the channel count / CICP channel layout.
pub const CHANNEL_SCHEMES: &[&str] = &[
    "urn:mpeg:dash:23003:3:audio_channel_configuration:2011",
    "urn:mpeg:mpegB:cicp:ChannelConfiguration",
];
/// `UTCTiming` schemes a player can use without any outside time server.
pub const LOCAL_UTC_SCHEMES: &[&str] = &[
    "urn:mpeg:dash:utc:direct:2014",
    "urn:mpeg:dash:utc:http-xsdate:2014",
    "urn:mpeg:dash:utc:http-iso:2014",
    "urn:mpeg:dash:utc:http-head:2014",
];
/// How long a first MPD may take (publisher start + first fragments + slack).
pub const MPD_TIMEOUT: Duration = Duration::from_secs(20);
/// How soon the MPD must say the stream ended after the publisher stops.
pub const FINAL_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the watcher reads the MPD.
pub const DASH_WATCH_PERIOD: Duration = Duration::from_millis(100);
/// How much earlier than its file appeared on disk an MPD may say a segment became available
/// (publisher and scheduling jitter) before the watcher calls it announced early.
pub const CLAIM_TOLERANCE: f64 = 0.25;

// ---------------------------------------------------------------------------------------------
// Servers

/// rtmp block with one application per `(name, directives)`: `live on; dash on;
/// dash_path {PREFIX}/tmp/<name>;` then the directives.
pub fn dash_rtmp_block(apps: &[(&str, &str)]) -> String {
    super::output_rtmp_block("dash", apps)
}

/// An http location serving directory `dir` (trailing slash) at `url_prefix` (trailing slash)
/// with DASH MIME types and CORS, as `nginx-conf/nginx.conf` does.
pub fn dash_http_location(url_prefix: &str, dir: &str) -> String {
    format!(
        "location {url_prefix} {{\n\
         \x20   alias {dir};\n\
         \x20   types {{ application/dash+xml mpd; video/mp4 m4v; audio/mp4 m4a; }}\n\
         \x20   add_header Cache-Control no-cache;\n\
         \x20   add_header Access-Control-Allow-Origin * always;\n\
         \x20   add_header Access-Control-Allow-Methods \"GET, HEAD, OPTIONS\" always;\n\
         \x20   add_header Access-Control-Allow-Headers \"Range\" always;\n\
         \x20   add_header Access-Control-Expose-Headers \"Content-Length, Content-Range, Date\" always;\n\
         \x20   if ($request_method = OPTIONS) {{ return 204; }}\n\
         }}\n"
    )
}

/// nginx with the given DASH applications; `/dash/` serves `{PREFIX}/tmp/`; `extra_http` is
/// added to the http server (more locations).
pub fn start_dash(apps: &[(&str, &str)], extra_http: &str) -> Server {
    let http = format!(
        "{}{extra_http}",
        dash_http_location("/dash/", "{PREFIX}/tmp/")
    );
    Server::start(&dash_rtmp_block(apps), &http)
}

/// Where one stream's MPD lies and where it is served: the C module's layout, flat
/// (`<name>.mpd`) or nested (`<name>/index.mpd`).
#[derive(Debug, Clone)]
pub struct Stream {
    /// The MPD on disk.
    pub mpd: PathBuf,
    /// Its URL path, e.g. `/dash/live/key.mpd`.
    pub url_path: String,
    /// `http://127.0.0.1:<port>` + `url_path`.
    pub url: String,
    pub http_port: u16,
    /// Directory served at `/dash/` (`{PREFIX}/tmp`).
    pub disk_root: PathBuf,
}

impl Stream {
    pub fn new(server: &Server, app: &str, name: &str, nested: bool) -> Stream {
        let rel = if nested {
            format!("{app}/{name}/index.mpd")
        } else {
            format!("{app}/{name}.mpd")
        };
        let disk_root = server.prefix.join("tmp");
        let url_path = format!("/dash/{rel}");
        Stream {
            mpd: disk_root.join(&rel),
            url: server.http_url(&url_path),
            url_path,
            http_port: server.http_port,
            disk_root,
        }
    }

    /// The file behind a URL path under `/dash/` (`None` for other paths).
    pub fn disk_path(&self, url_path: &str) -> Option<PathBuf> {
        url_path
            .strip_prefix("/dash/")
            .map(|rel| self.disk_root.join(rel))
    }
}

// ---------------------------------------------------------------------------------------------
// Time

/// Seconds since the Unix epoch, now.
pub fn now_epoch() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// An `xs:dateTime` (`2024-01-02T03:04:05.678Z`, `...+01:00`; no zone means UTC, as players
/// assume) as seconds since the Unix epoch.
pub fn parse_datetime(s: &str) -> Result<f64, String> {
    let bad = || format!("not an xs:dateTime: {s:?}");
    let s = s.trim();
    let (date, time) = s.split_once('T').ok_or_else(bad)?;
    let mut dp = date.splitn(3, '-');
    let y: i64 = dp.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
    let mo: i64 = dp.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
    let d: i64 = dp.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return Err(bad());
    }
    let (clock, offset) = if let Some(c) = time.strip_suffix('Z') {
        (c, 0.0)
    } else if let Some(i) = time.rfind(['+', '-']) {
        let (c, z) = time.split_at(i);
        let sign = if z.starts_with('-') { -1.0 } else { 1.0 };
        let (h, m) = z[1..].split_once(':').ok_or_else(bad)?;
        let h: f64 = h.parse().map_err(|_| bad())?;
        let m: f64 = m.parse().map_err(|_| bad())?;
        (c, sign * (h * 3600.0 + m * 60.0))
    } else {
        (time, 0.0)
    };
    let mut tp = clock.splitn(3, ':');
    let h: f64 = tp.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
    let mi: f64 = tp.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
    let se: f64 = tp.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
    Ok(days_from_civil(y, mo, d) as f64 * 86_400.0 + h * 3600.0 + mi * 60.0 + se - offset)
}

/// An `xs:duration` (`PT2S`, `PT1M30.5S`, `P1DT2H`) in seconds (years and months refused:
/// they have no fixed length and no MPD of ours needs them).
pub fn parse_duration(s: &str) -> Result<f64, String> {
    let bad = || format!("not an xs:duration usable here: {s:?}");
    let s = s.trim();
    let (neg, s) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    let rest = s.strip_prefix('P').ok_or_else(bad)?;
    let (date, time) = match rest.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (rest, None),
    };
    let mut total = 0.0;
    let mut num = String::new();
    let mut any = false;
    for c in date.chars() {
        match c {
            '0'..='9' | '.' => num.push(c),
            'D' => {
                total += num.parse::<f64>().map_err(|_| bad())? * 86_400.0;
                num.clear();
                any = true;
            }
            _ => return Err(bad()),
        }
    }
    if !num.is_empty() {
        return Err(bad());
    }
    if let Some(time) = time {
        if time.is_empty() {
            return Err(bad());
        }
        for c in time.chars() {
            let unit = match c {
                '0'..='9' | '.' => {
                    num.push(c);
                    continue;
                }
                'H' => 3600.0,
                'M' => 60.0,
                'S' => 1.0,
                _ => return Err(bad()),
            };
            total += num.parse::<f64>().map_err(|_| bad())? * unit;
            num.clear();
            any = true;
        }
        if !num.is_empty() {
            return Err(bad());
        }
    }
    if !any {
        return Err(bad());
    }
    Ok(if neg { -total } else { total })
}

/// `25`, `25/1`, `30000/1001` -> frames per second.
pub fn parse_frame_rate(s: &str) -> Option<f64> {
    match s.split_once('/') {
        Some((n, d)) => {
            let n: f64 = n.trim().parse().ok()?;
            let d: f64 = d.trim().parse().ok()?;
            (d > 0.0).then(|| n / d)
        }
        None => s.trim().parse().ok(),
    }
}

// ---------------------------------------------------------------------------------------------
// The MPD model

/// A `SegmentTemplate` (inherited attributes already merged in).
#[derive(Debug, Clone, Default)]
pub struct Template {
    pub timescale: u64,
    pub media: Option<String>,
    pub initialization: Option<String>,
    pub start_number: u64,
    pub presentation_time_offset: u64,
    pub availability_time_offset: f64,
    /// `@duration` (number-based templates, without a timeline).
    pub duration: Option<u64>,
    /// The timeline with `@r` expanded: `(t, d)` in `timescale` units.
    pub timeline: Vec<(u64, u64)>,
    pub has_timeline: bool,
}

#[derive(Debug, Clone, Default)]
pub struct Representation {
    /// The representation's own attributes, over its adaptation set's (inheritance).
    pub attrs: BTreeMap<String, String>,
    /// `AudioChannelConfiguration` `(schemeIdUri, value)` of the representation or its set.
    pub channel_configs: Vec<(String, String)>,
    pub template: Option<Template>,
    /// Resolved base URL path (directory or file the templates are relative to).
    pub base: String,
}

impl Representation {
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.get(name).map(String::as_str)
    }

    pub fn id(&self) -> &str {
        self.attr("id").unwrap_or("")
    }

    /// `video`, `audio` or something else, from `contentType` or `mimeType`.
    pub fn kind(&self) -> &str {
        if let Some(c) = self.attr("contentType") {
            return c;
        }
        self.attr("mimeType")
            .and_then(|m| m.split('/').next())
            .unwrap_or("?")
    }
}

#[derive(Debug, Clone, Default)]
pub struct AdaptationSet {
    pub attrs: BTreeMap<String, String>,
    pub reps: Vec<Representation>,
}

#[derive(Debug, Clone, Default)]
pub struct Period {
    pub attrs: BTreeMap<String, String>,
    pub start: f64,
    pub duration: Option<f64>,
    pub sets: Vec<AdaptationSet>,
}

/// One MPD as read at one moment.
#[derive(Debug, Clone, Default)]
pub struct Mpd {
    pub text: String,
    /// Namespace of the root element.
    pub ns: Option<String>,
    /// Root attributes by local name.
    pub attrs: BTreeMap<String, String>,
    /// Namespace of an `xsi:schemaLocation`-like attribute named `schemaLocation`, if any.
    pub schema_location_ns: Option<String>,
    /// Elements (local name) that are not in the MPD namespace, with their namespace.
    pub foreign_elements: Vec<String>,
    pub utc_timings: Vec<(String, String)>,
    pub periods: Vec<Period>,
}

/// What one listed file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegKind {
    Init,
    Media,
}

/// A file an MPD refers to.
#[derive(Debug, Clone)]
pub struct SegRef {
    pub kind: SegKind,
    pub rep: String,
    /// URL path (`/dash/live/key-4000.m4v`).
    pub url_path: String,
    /// Wall-clock time (Unix seconds) from which the MPD says it is available; `None` for init
    /// segments and for a static MPD (always available).
    pub available_at: Option<f64>,
    /// Media time of its start and its duration, in seconds (0 for init segments).
    pub start: f64,
    pub duration: f64,
}

impl Mpd {
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.get(name).map(String::as_str)
    }

    pub fn is_dynamic(&self) -> bool {
        self.attr("type").unwrap_or("static") == "dynamic"
    }

    /// Seconds attribute (`xs:duration`) of the root: `None` if absent, `Err` if unparsable.
    pub fn duration_attr(&self, name: &str) -> Option<Result<f64, String>> {
        self.attr(name).map(parse_duration)
    }

    pub fn time_attr(&self, name: &str) -> Option<Result<f64, String>> {
        self.attr(name).map(parse_datetime)
    }

    pub fn availability_start(&self) -> Option<f64> {
        self.time_attr("availabilityStartTime").and_then(Result::ok)
    }

    /// The end was signalled: `type="static"`, or a `mediaPresentationDuration`, or a last
    /// Period with a `duration`.
    pub fn is_final(&self) -> bool {
        !self.is_dynamic()
            || self.attr("mediaPresentationDuration").is_some()
            || self.periods.last().is_some_and(|p| p.duration.is_some())
    }

    pub fn reps(&self) -> impl Iterator<Item = &Representation> {
        self.periods
            .iter()
            .flat_map(|p| p.sets.iter())
            .flat_map(|s| s.reps.iter())
    }

    pub fn reps_of(&self, kind: &str) -> Vec<&Representation> {
        self.reps().filter(|r| r.kind() == kind).collect()
    }

    pub fn sets(&self) -> impl Iterator<Item = &AdaptationSet> {
        self.periods.iter().flat_map(|p| p.sets.iter())
    }

    /// Fewest media segments any representation lists.
    pub fn min_segments(&self) -> usize {
        self.reps()
            .map(|r| r.template.as_ref().map_or(0, |t| t.timeline.len()))
            .min()
            .unwrap_or(0)
    }

    /// Media seconds listed by the first video representation (else the first one).
    pub fn listed_seconds(&self) -> f64 {
        let rep = self
            .reps_of("video")
            .first()
            .copied()
            .or_else(|| self.reps().next());
        rep.and_then(|r| r.template.as_ref()).map_or(0.0, |t| {
            t.timeline.iter().map(|(_, d)| *d as f64).sum::<f64>() / t.timescale.max(1) as f64
        })
    }

    /// Every file the MPD refers to, with when it becomes available.
    pub fn segments(&self) -> Vec<SegRef> {
        let ast = self.availability_start();
        let dynamic = self.is_dynamic();
        let mut out = Vec::new();
        for p in &self.periods {
            for set in &p.sets {
                for rep in &set.reps {
                    let Some(t) = &rep.template else { continue };
                    let id = rep.id().to_string();
                    let bw = rep.attr("bandwidth").unwrap_or("0").to_string();
                    if let Some(init) = &t.initialization {
                        let name = expand_template(init, &id, &bw, None, None);
                        out.push(SegRef {
                            kind: SegKind::Init,
                            rep: id.clone(),
                            url_path: resolve_url_path(&rep.base, &name),
                            available_at: None,
                            start: 0.0,
                            duration: 0.0,
                        });
                    }
                    let Some(media) = &t.media else { continue };
                    let ts = t.timescale.max(1) as f64;
                    for (i, (start, dur)) in t.timeline.iter().enumerate() {
                        let number = t.start_number + i as u64;
                        let name = expand_template(media, &id, &bw, Some(number), Some(*start));
                        let end_mpd =
                            (*start as f64 + *dur as f64 - t.presentation_time_offset as f64) / ts;
                        let available_at = if dynamic {
                            Some(
                                ast.unwrap_or(f64::NAN) + p.start + end_mpd
                                    - t.availability_time_offset,
                            )
                        } else {
                            None
                        };
                        out.push(SegRef {
                            kind: SegKind::Media,
                            rep: id.clone(),
                            url_path: resolve_url_path(&rep.base, &name),
                            available_at,
                            start: *start as f64 / ts,
                            duration: *dur as f64 / ts,
                        });
                    }
                }
            }
        }
        out
    }
}

/// `$RepresentationID$`, `$Bandwidth$`, `$Number$`, `$Time$` (with `%0Nd` widths) and `$$`.
pub fn expand_template(
    template: &str,
    id: &str,
    bandwidth: &str,
    number: Option<u64>,
    time: Option<u64>,
) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let Some(j) = after.find('$') else {
            out.push_str(&rest[i..]);
            return out;
        };
        let ident = &after[..j];
        rest = &after[j + 1..];
        if ident.is_empty() {
            out.push('$');
            continue;
        }
        let (name, width) = match ident.split_once('%') {
            Some((n, fmt)) => (
                n,
                fmt.trim_start_matches('0')
                    .trim_end_matches('d')
                    .parse::<usize>()
                    .unwrap_or(0),
            ),
            None => (ident, 0),
        };
        let value = match name {
            "RepresentationID" => id.to_string(),
            "Bandwidth" => bandwidth.to_string(),
            "Number" => number.map(|n| n.to_string()).unwrap_or_default(),
            "Time" => time.map(|n| n.to_string()).unwrap_or_default(),
            other => format!("${other}$"),
        };
        out.push_str(&format!("{value:0>width$}"));
    }
    out.push_str(rest);
    out
}

/// A URL (absolute, root-relative or relative) resolved against the path `base` (a directory
/// path ending in `/`, or a file path whose directory is used), as a normalized URL path.
pub fn resolve_url_path(base: &str, url: &str) -> String {
    let url = url.split(['?', '#']).next().unwrap_or(url);
    let joined = if let Some(rest) = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
    {
        rest.find('/')
            .map_or("/".to_string(), |i| rest[i..].to_string())
    } else if url.starts_with('/') {
        url.to_string()
    } else {
        let dir = base.rsplit_once('/').map_or("", |(d, _)| d);
        format!("{dir}/{url}")
    };
    let mut parts: Vec<&str> = Vec::new();
    for seg in joined.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    let mut out = format!("/{}", parts.join("/"));
    if (joined.ends_with('/') || url.is_empty()) && !out.ends_with('/') {
        out.push('/');
    }
    out
}

fn local_attrs(node: roxmltree::Node) -> BTreeMap<String, String> {
    node.attributes()
        .map(|a| (a.name().to_string(), a.value().to_string()))
        .collect()
}

fn children<'a, 'i>(
    node: roxmltree::Node<'a, 'i>,
    name: &'static str,
) -> impl Iterator<Item = roxmltree::Node<'a, 'i>> {
    node.children()
        .filter(move |c| c.is_element() && c.tag_name().name() == name)
}

fn base_of(node: roxmltree::Node, base: &str) -> String {
    match children(node, "BaseURL").next().and_then(|b| b.text()) {
        Some(u) => resolve_url_path(base, u.trim()),
        None => base.to_string(),
    }
}

fn channel_configs(node: roxmltree::Node) -> Vec<(String, String)> {
    children(node, "AudioChannelConfiguration")
        .map(|c| {
            (
                c.attribute("schemeIdUri").unwrap_or("").to_string(),
                c.attribute("value").unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// A `SegmentTemplate` element merged over an inherited template.
fn template_of(
    node: roxmltree::Node,
    inherited: Option<&Template>,
) -> Result<Option<Template>, String> {
    let Some(st) = children(node, "SegmentTemplate").next() else {
        return Ok(inherited.cloned());
    };
    let mut t = inherited.cloned().unwrap_or(Template {
        timescale: 1,
        start_number: 1,
        ..Template::default()
    });
    let num = |name: &str| -> Result<Option<u64>, String> {
        st.attribute(name)
            .map(|v| {
                v.trim()
                    .parse::<u64>()
                    .map_err(|_| format!("SegmentTemplate@{name}={v:?} is not a number"))
            })
            .transpose()
    };
    if let Some(v) = num("timescale")? {
        t.timescale = v;
    }
    if let Some(v) = num("startNumber")? {
        t.start_number = v;
    }
    if let Some(v) = num("presentationTimeOffset")? {
        t.presentation_time_offset = v;
    }
    if let Some(v) = num("duration")? {
        t.duration = Some(v);
    }
    if let Some(v) = st.attribute("availabilityTimeOffset") {
        t.availability_time_offset = v
            .trim()
            .parse()
            .map_err(|_| format!("availabilityTimeOffset={v:?}"))?;
    }
    if let Some(v) = st.attribute("media") {
        t.media = Some(v.to_string());
    }
    if let Some(v) = st.attribute("initialization") {
        t.initialization = Some(v.to_string());
    }
    if let Some(tl) = children(st, "SegmentTimeline").next() {
        t.has_timeline = true;
        t.timeline.clear();
        let mut next: u64 = 0;
        for s in children(tl, "S") {
            let get = |n: &str| -> Result<Option<i64>, String> {
                s.attribute(n)
                    .map(|v| v.trim().parse::<i64>().map_err(|_| format!("S@{n}={v:?}")))
                    .transpose()
            };
            let d = get("d")?.ok_or("S without @d")?;
            if d <= 0 {
                return Err(format!("S@d={d} is not positive"));
            }
            let start = match get("t")? {
                Some(v) if v >= 0 => v as u64,
                Some(v) => return Err(format!("S@t={v} is negative")),
                None => next,
            };
            let r = get("r")?.unwrap_or(0);
            if r < 0 {
                return Err(format!("S@r={r}: open-ended repeats are not expected here"));
            }
            let mut at = start;
            for _ in 0..=r {
                t.timeline.push((at, d as u64));
                at += d as u64;
            }
            next = at;
        }
    }
    Ok(Some(t))
}

/// Parses an MPD's text. `url_path` is where it is served (relative URLs resolve against it).
pub fn parse_mpd(text: &str, url_path: &str) -> Result<Mpd, String> {
    let doc = roxmltree::Document::parse(text).map_err(|e| format!("not well-formed XML: {e}"))?;
    let root = doc.root_element();
    if root.tag_name().name() != "MPD" {
        return Err(format!(
            "the root element is <{}>, not <MPD>",
            root.tag_name().name()
        ));
    }
    let mut mpd = Mpd {
        text: text.to_string(),
        ns: root.tag_name().namespace().map(str::to_string),
        attrs: local_attrs(root),
        ..Mpd::default()
    };
    mpd.schema_location_ns = root
        .attributes()
        .find(|a| a.name() == "schemaLocation")
        .map(|a| a.namespace().unwrap_or("").to_string());
    for n in root.descendants().filter(|n| n.is_element()) {
        if n.tag_name().namespace() != Some(MPD_NS) {
            mpd.foreign_elements.push(format!(
                "<{}> in namespace {:?}",
                n.tag_name().name(),
                n.tag_name().namespace()
            ));
        }
    }
    mpd.utc_timings = children(root, "UTCTiming")
        .map(|u| {
            (
                u.attribute("schemeIdUri").unwrap_or("").to_string(),
                u.attribute("value").unwrap_or("").to_string(),
            )
        })
        .collect();
    let mpd_base = base_of(root, url_path);
    let mut prev_end: Option<f64> = None;
    for p in children(root, "Period") {
        let start = match p.attribute("start") {
            Some(s) => parse_duration(s).map_err(|e| format!("Period@start: {e}"))?,
            None => prev_end.unwrap_or(0.0),
        };
        let duration = p
            .attribute("duration")
            .map(parse_duration)
            .transpose()
            .map_err(|e| format!("Period@duration: {e}"))?;
        prev_end = duration.map(|d| start + d);
        let p_base = base_of(p, &mpd_base);
        let p_tmpl = template_of(p, None)?;
        let mut period = Period {
            attrs: local_attrs(p),
            start,
            duration,
            sets: Vec::new(),
        };
        for a in children(p, "AdaptationSet") {
            let a_attrs = local_attrs(a);
            let a_base = base_of(a, &p_base);
            let a_tmpl = template_of(a, p_tmpl.as_ref())?;
            let a_channels = channel_configs(a);
            let mut set = AdaptationSet {
                attrs: a_attrs.clone(),
                reps: Vec::new(),
            };
            for r in children(a, "Representation") {
                let mut attrs = a_attrs.clone();
                attrs.extend(local_attrs(r));
                let mut channels = channel_configs(r);
                if channels.is_empty() {
                    channels = a_channels.clone();
                }
                set.reps.push(Representation {
                    attrs,
                    channel_configs: channels,
                    template: template_of(r, a_tmpl.as_ref())?,
                    base: base_of(r, &a_base),
                });
            }
            period.sets.push(set);
        }
        mpd.periods.push(period);
    }
    Ok(mpd)
}

pub fn read_mpd(path: &Path) -> Result<Mpd, String> {
    read_mpd_at(path, "/")
}

fn read_mpd_at(path: &Path, url_path: &str) -> Result<Mpd, String> {
    let text = fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse_mpd(&text, url_path).map_err(|e| format!("{}: {e}\n{text}", path.display()))
}

impl Stream {
    /// The MPD on disk, parsed with this stream's URL path as its base.
    pub fn read_mpd(&self) -> Result<Mpd, String> {
        read_mpd_at(&self.mpd, &self.url_path)
    }

    /// Waits until the MPD parses and `pred` holds.
    pub fn wait(
        &self,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&Mpd) -> bool,
    ) -> Result<Mpd, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let last = match self.read_mpd() {
                Ok(m) if pred(&m) => return Ok(m),
                Ok(m) => m.text,
                Err(e) => e,
            };
            if Instant::now() > deadline {
                return Err(format!(
                    "{what}: not within {timeout:?}; last read of {}:\n{last}",
                    self.mpd.display()
                ));
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits for an MPD in which every representation lists at least `n` media segments.
    pub fn wait_segments(&self, n: usize) -> Result<Mpd, String> {
        self.wait(
            MPD_TIMEOUT,
            &format!("an MPD with {n} segments per representation"),
            |m| m.reps().next().is_some() && m.min_segments() >= n,
        )
    }

    /// Waits ([`FINAL_TIMEOUT`]) for the MPD to signal the end; returns the last read either way.
    pub fn wait_final(&self) -> (bool, Option<Mpd>) {
        match self.wait(FINAL_TIMEOUT, "a final MPD", Mpd::is_final) {
            Ok(m) => (true, Some(m)),
            Err(_) => (false, self.read_mpd().ok()),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Checks on one MPD

/// What a live MPD of a stream published with our test media should say.
#[derive(Debug, Clone)]
pub struct Expect {
    pub video: bool,
    pub audio: bool,
    /// `dash_playlist_length` in seconds.
    pub playlist_length: f64,
    /// `dash_fragment` in seconds.
    pub fragment: f64,
    pub audio_channels: u32,
}

/// What is wrong with a live MPD (empty when it is right).
pub fn live_mpd_problems(m: &Mpd, e: &Expect) -> Vec<String> {
    let mut p = Vec::new();
    if m.ns.as_deref() != Some(MPD_NS) {
        p.push(format!("<MPD> namespace {:?}, expected {MPD_NS:?}", m.ns));
    }
    if !m.foreign_elements.is_empty() {
        p.push(format!(
            "elements outside the MPD namespace: {:?}",
            m.foreign_elements
        ));
    }
    if let Some(ns) = &m.schema_location_ns {
        if ns != XSI_NS {
            p.push(format!(
                "schemaLocation is in namespace {ns:?}, not XML Schema instance {XSI_NS:?}"
            ));
        }
    }
    match m.attr("profiles") {
        Some(pr)
            if pr.contains("urn:mpeg:dash:profile:isoff-live:2011")
                || pr.contains("urn:mpeg:dash:profile:cmaf:2019")
                || pr.contains("urn:dvb:dash:profile:dvb-dash:2014") => {}
        other => p.push(format!("MPD@profiles {other:?} names no live profile")),
    }
    if m.attr("type") != Some("dynamic") {
        p.push(format!(
            "MPD@type {:?} while live, expected \"dynamic\"",
            m.attr("type")
        ));
    }
    let now = now_epoch();
    let ast = m.time_attr("availabilityStartTime");
    match &ast {
        None => p.push("no MPD@availabilityStartTime".into()),
        Some(Err(e)) => p.push(format!("MPD@availabilityStartTime: {e}")),
        Some(Ok(a)) if *a > now + 1.0 => p.push(format!(
            "MPD@availabilityStartTime is {:.1} s in the future",
            a - now
        )),
        Some(Ok(_)) => {}
    }
    match m.time_attr("publishTime") {
        None => p.push("no MPD@publishTime".into()),
        Some(Err(e)) => p.push(format!("MPD@publishTime: {e}")),
        Some(Ok(pt)) => {
            if pt > now + 1.0 {
                p.push(format!(
                    "MPD@publishTime is {:.1} s in the future",
                    pt - now
                ));
            }
            if let Some(Ok(a)) = &ast {
                if pt < *a {
                    p.push("MPD@publishTime is before availabilityStartTime".into());
                }
            }
        }
    }
    match m.duration_attr("minimumUpdatePeriod") {
        None => p.push("no MPD@minimumUpdatePeriod while live".into()),
        Some(Err(e)) => p.push(format!("MPD@minimumUpdatePeriod: {e}")),
        Some(Ok(v)) if v <= 0.0 || v > e.playlist_length => p.push(format!(
            "MPD@minimumUpdatePeriod {v} s is out of (0, {}]",
            e.playlist_length
        )),
        Some(Ok(_)) => {}
    }
    match m.duration_attr("timeShiftBufferDepth") {
        None => p.push("no MPD@timeShiftBufferDepth".into()),
        Some(Err(e)) => p.push(format!("MPD@timeShiftBufferDepth: {e}")),
        Some(Ok(v)) if v < 0.5 * e.playlist_length || v > 1.5 * e.playlist_length + e.fragment => p
            .push(format!(
                "MPD@timeShiftBufferDepth {v} s does not reflect dash_playlist_length {} s",
                e.playlist_length
            )),
        Some(Ok(_)) => {}
    }
    match m.duration_attr("suggestedPresentationDelay") {
        None => p.push("no MPD@suggestedPresentationDelay".into()),
        Some(Err(e)) => p.push(format!("MPD@suggestedPresentationDelay: {e}")),
        Some(Ok(v)) if v < 0.0 => p.push(format!("MPD@suggestedPresentationDelay {v} s")),
        Some(Ok(_)) => {}
    }
    match m.duration_attr("minBufferTime") {
        None => p.push("no MPD@minBufferTime (required by the schema)".into()),
        Some(Err(e)) => p.push(format!("MPD@minBufferTime: {e}")),
        Some(Ok(_)) => {}
    }
    if m.utc_timings.is_empty() {
        p.push("no <UTCTiming>: players fall back to an outside time server".into());
    }
    for (scheme, value) in &m.utc_timings {
        if !LOCAL_UTC_SCHEMES.contains(&scheme.as_str()) {
            p.push(format!(
                "<UTCTiming schemeIdUri={scheme:?}> is not one of {LOCAL_UTC_SCHEMES:?}"
            ));
        } else if value.is_empty() {
            p.push(format!(
                "<UTCTiming schemeIdUri={scheme:?}> without a value"
            ));
        }
    }
    if m.periods.is_empty() {
        p.push("no <Period>".into());
    }
    let videos = m.reps_of("video");
    let audios = m.reps_of("audio");
    let (want_v, want_a) = (usize::from(e.video), usize::from(e.audio));
    if videos.len() != want_v || audios.len() != want_a {
        p.push(format!(
            "{} video and {} audio representations, expected {want_v} and {want_a}",
            videos.len(),
            audios.len()
        ));
    }
    let sets = m.sets().count();
    if sets != want_v + want_a {
        p.push(format!(
            "{sets} AdaptationSets, expected {}",
            want_v + want_a
        ));
    }
    for r in m.reps() {
        let id = r.id();
        if id.is_empty() {
            p.push("a Representation without @id".into());
        }
        match r.attr("bandwidth").map(str::parse::<u64>) {
            Some(Ok(b)) if b > 0 => {}
            other => p.push(format!(
                "Representation {id}: @bandwidth {other:?} (must be > 0)"
            )),
        }
        match &r.template {
            None => p.push(format!("Representation {id}: no SegmentTemplate")),
            Some(t) => {
                if !t.has_timeline {
                    p.push(format!("Representation {id}: no SegmentTimeline"));
                }
                if t.media.is_none() || t.initialization.is_none() {
                    p.push(format!(
                        "Representation {id}: SegmentTemplate without media/initialization"
                    ));
                }
                for w in t.timeline.windows(2) {
                    let ((t0, d0), (t1, _)) = (w[0], w[1]);
                    if t1 != t0 + d0 {
                        p.push(format!(
                            "Representation {id}: timeline {} at t={t1} after t={t0} d={d0}",
                            if t1 < t0 + d0 { "overlap" } else { "gap" }
                        ));
                    }
                }
            }
        }
    }
    for r in &videos {
        let id = r.id();
        if r.attr("mimeType") != Some("video/mp4") {
            p.push(format!("video {id}: mimeType {:?}", r.attr("mimeType")));
        }
        if !r
            .attr("codecs")
            .is_some_and(|c| c.starts_with("avc1.") && c.len() == 11)
        {
            p.push(format!(
                "video {id}: codecs {:?}, expected avc1.PPCCLL",
                r.attr("codecs")
            ));
        }
        if r.attr("width") != Some("320") || r.attr("height") != Some("240") {
            p.push(format!(
                "video {id}: width/height {:?}x{:?}, expected 320x240",
                r.attr("width"),
                r.attr("height")
            ));
        }
        let fr = r.attr("frameRate").and_then(parse_frame_rate);
        if !fr.is_some_and(|f| (f - 25.0).abs() < 0.01) {
            p.push(format!(
                "video {id}: frameRate {:?}, expected 25",
                r.attr("frameRate")
            ));
        }
    }
    for r in &audios {
        let id = r.id();
        if r.attr("mimeType") != Some("audio/mp4") {
            p.push(format!("audio {id}: mimeType {:?}", r.attr("mimeType")));
        }
        if r.attr("codecs") != Some("mp4a.40.2") {
            p.push(format!(
                "audio {id}: codecs {:?}, expected mp4a.40.2",
                r.attr("codecs")
            ));
        }
        if r.attr("audioSamplingRate") != Some("44100") {
            p.push(format!(
                "audio {id}: audioSamplingRate {:?}, expected 44100",
                r.attr("audioSamplingRate")
            ));
        }
        let want = e.audio_channels.to_string();
        let known: Vec<&(String, String)> = r
            .channel_configs
            .iter()
            .filter(|(s, _)| CHANNEL_SCHEMES.contains(&s.as_str()))
            .collect();
        if known.is_empty() {
            p.push(format!(
                "audio {id}: no AudioChannelConfiguration with a known scheme: {:?}",
                r.channel_configs
            ));
        }
        for (scheme, value) in known {
            if *value != want {
                p.push(format!(
                    "audio {id}: AudioChannelConfiguration value {value:?}, the stream has {want} \
                     channels ({scheme})"
                ));
            }
        }
    }
    if !p.is_empty() {
        p.push(format!("(MPD:\n{})", m.text));
    }
    p
}

/// The `avc1.PPCCLL` string of the `avcC` box in an init segment (`None`: no avcC).
pub fn avc1_codec_of_init(path: &Path) -> Option<String> {
    let b = fs::read(path).ok()?;
    let at = b.windows(4).position(|w| w == b"avcC")? + 4;
    let v = b.get(at..at + 4)?;
    Some(format!("avc1.{:02x}{:02x}{:02x}", v[1], v[2], v[3]))
}

/// Whether `path` is a complete ISO-BMFF file of that kind: top-level boxes that add up to
/// its length exactly, with `ftyp`+`moov` (init) or `moof`+`mdat` (media).
pub fn fmp4_problem(path: &Path, kind: SegKind) -> Option<String> {
    let b = match fs::read(path) {
        Ok(b) => b,
        Err(e) => return Some(format!("missing ({e})")),
    };
    if b.is_empty() {
        return Some("empty".into());
    }
    let mut at: usize = 0;
    let mut types = Vec::new();
    while at < b.len() {
        let Some(h) = b.get(at..at + 8) else {
            return Some(format!("{} bytes: a truncated box header at {at}", b.len()));
        };
        let mut size = u32::from_be_bytes([h[0], h[1], h[2], h[3]]) as u64;
        types.push(String::from_utf8_lossy(&h[4..8]).into_owned());
        if size == 1 {
            let Some(l) = b.get(at + 8..at + 16) else {
                return Some("truncated largesize".into());
            };
            size = u64::from_be_bytes(l.try_into().unwrap_or([0; 8]));
        } else if size == 0 {
            size = (b.len() - at) as u64;
        }
        if size < 8 {
            return Some(format!("box of size {size} at {at}"));
        }
        at = match at.checked_add(size as usize) {
            Some(n) => n,
            None => return Some("box size overflow".into()),
        };
    }
    if at != b.len() {
        return Some(format!(
            "{} bytes but its boxes {types:?} need {at}: written partially",
            b.len()
        ));
    }
    let need: &[&str] = match kind {
        SegKind::Init => &["ftyp", "moov"],
        SegKind::Media => &["moof", "mdat"],
    };
    for n in need {
        if !types.iter().any(|t| t == n) {
            return Some(format!("no {n} box (top-level boxes {types:?})"));
        }
    }
    None
}

// ---------------------------------------------------------------------------------------------
// The snapshot watcher

/// What a [`DashWatcher`] saw.
#[derive(Debug, Default, Clone)]
pub struct DashWatchReport {
    /// MPD reads that found a file.
    pub reads: usize,
    /// Distinct MPD texts.
    pub versions: usize,
    /// Torn or unparsable MPDs (written in place instead of atomically).
    pub torn: Vec<String>,
    /// Media segments listed as available (by the MPD's own timing, at the moment it was read)
    /// while not yet complete on disk, each once, with how late they were.
    pub early: Vec<String>,
    /// Media segments whose availability time (by the MPD) lies more than [`CLAIM_TOLERANCE`]
    /// before a moment the watcher saw them not yet complete on disk: a player trusting the
    /// MPD's clock would have got a 404 for them.
    pub claimed_early: Vec<String>,
    /// Over all segments: the largest (time last seen absent - availability time), in seconds;
    /// positive means some segment was said to be available before it was written.
    pub max_claim_lead: Option<f64>,
    /// Media segments that had been complete on disk and were gone while still listed.
    pub deleted_while_listed: Vec<String>,
    /// Init segments listed but missing or incomplete.
    pub init_problems: Vec<String>,
    /// Other inconsistencies between snapshots (publishTime going back, ...).
    pub other: Vec<String>,
    /// Media segment URL paths in the order first listed.
    pub seen: Vec<String>,
    /// Media segments listed at once (all representations), at most.
    pub max_listed: usize,
    /// The live edge lag (now - availability of the newest listed segment), min and max over
    /// reads of dynamic MPDs.
    pub edge_lag: Option<(f64, f64)>,
    pub saw_final: bool,
}

impl DashWatchReport {
    pub fn violations(&self) -> Vec<String> {
        let mut v = Vec::new();
        v.extend(self.torn.iter().cloned());
        v.extend(
            self.early
                .iter()
                .map(|s| format!("announced before it exists: {s}")),
        );
        v.extend(
            self.claimed_early
                .iter()
                .map(|s| format!("said to be available before it was written: {s}")),
        );
        v.extend(
            self.deleted_while_listed
                .iter()
                .map(|s| format!("deleted while listed: {s}")),
        );
        v.extend(self.init_problems.iter().cloned());
        v.extend(self.other.iter().cloned());
        v
    }

    pub fn summary(&self) -> String {
        format!(
            "{} reads, {} versions, {} media segments seen, at most {} listed, {} listed while \
             missing, {} said available before written (largest lead {}), {} deleted while listed, \
             {} init problems, {} torn, live edge lag {}",
            self.reads,
            self.versions,
            self.seen.len(),
            self.max_listed,
            self.early.len(),
            self.claimed_early.len(),
            self.max_claim_lead
                .map_or("-".to_string(), |l| format!("{l:.2} s")),
            self.deleted_while_listed.len(),
            self.init_problems.len(),
            self.torn.len(),
            self.edge_lag
                .map_or("-".to_string(), |(a, b)| format!("{a:.2}..{b:.2} s"))
        )
    }
}

/// Reads an MPD from disk every [`DASH_WATCH_PERIOD`] on its own thread and checks, against the
/// wall clock at each read, that every segment the MPD says is available exists complete, that
/// init segments exist, and that no segment is deleted while listed. It also lists the MPD's
/// directory at each read, so it knows a moment at which each segment did not exist yet, and
/// compares that with the availability time the MPD later gives the segment.
pub struct DashWatcher {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<DashWatchReport>>,
}

impl DashWatcher {
    pub fn start(stream: &Stream) -> DashWatcher {
        let stop = Arc::new(AtomicBool::new(false));
        let handle = {
            let stop = Arc::clone(&stop);
            let stream = stream.clone();
            thread::spawn(move || watch(&stream, &stop))
        };
        DashWatcher {
            stop,
            handle: Some(handle),
        }
    }

    pub fn stop(mut self) -> DashWatchReport {
        self.stop.store(true, Ordering::SeqCst);
        self.handle
            .take()
            .map(|h| h.join().expect("watcher thread"))
            .unwrap_or_default()
    }
}

impl Drop for DashWatcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

const MAX_LISTED_VIOLATIONS: usize = 40;

fn watch(stream: &Stream, stop: &AtomicBool) -> DashWatchReport {
    let mut r = DashWatchReport::default();
    let mut last_text = String::new();
    let mut seen_set = BTreeSet::new();
    // Media segments once seen complete on disk.
    let mut complete: BTreeSet<String> = BTreeSet::new();
    let mut reported: BTreeSet<String> = BTreeSet::new();
    let mut last_publish: Option<f64> = None;
    // Media file -> a time at which it was not yet complete (None: already there at the start).
    let mut first_complete: BTreeMap<PathBuf, Option<f64>> = BTreeMap::new();
    let mut claim_checked: BTreeSet<PathBuf> = BTreeSet::new();
    let mut last_scan: Option<f64> = None;
    let dir = stream.mpd.parent().unwrap_or(Path::new(".")).to_path_buf();
    let started = Instant::now();
    let still_listed = |url: &str| -> bool {
        stream
            .read_mpd()
            .map(|m| m.segments().iter().any(|s| s.url_path == url))
            .unwrap_or(false)
    };
    loop {
        let stopping = stop.load(Ordering::SeqCst);
        let scan_at = now_epoch();
        for name in media_files(&dir) {
            let path = dir.join(&name);
            if !first_complete.contains_key(&path) && fmp4_problem(&path, SegKind::Media).is_none()
            {
                first_complete.insert(path, last_scan);
            }
        }
        last_scan = Some(scan_at);
        let read_at = now_epoch();
        if let Ok(text) = fs::read_to_string(&stream.mpd) {
            r.reads += 1;
            let at = started.elapsed().as_secs_f64();
            match parse_mpd(&text, &stream.url_path) {
                Err(e) => {
                    if text != last_text && r.torn.len() < MAX_LISTED_VIOLATIONS {
                        r.torn
                            .push(format!("MPD read torn or invalid at {at:.1} s: {e}"));
                    }
                }
                Ok(m) => {
                    if text != last_text {
                        r.versions += 1;
                        r.saw_final |= m.is_final();
                        if let Some(Ok(pt)) = m.time_attr("publishTime") {
                            if last_publish.is_some_and(|l| pt < l) {
                                r.other
                                    .push(format!("MPD@publishTime went back at {at:.1} s"));
                            }
                            last_publish = Some(pt);
                        }
                    }
                    let segs = m.segments();
                    let mut listed = 0;
                    let mut newest: Option<f64> = None;
                    for s in &segs {
                        let Some(path) = stream.disk_path(&s.url_path) else {
                            if reported.insert(s.url_path.clone()) {
                                r.other.push(format!("{} is not under /dash/", s.url_path));
                            }
                            continue;
                        };
                        if s.kind == SegKind::Init {
                            if let Some(problem) = fmp4_problem(&path, SegKind::Init) {
                                if still_listed(&s.url_path)
                                    && reported.insert(format!("init {}", s.url_path))
                                    && r.init_problems.len() < MAX_LISTED_VIOLATIONS
                                {
                                    r.init_problems.push(format!(
                                        "init segment {} listed but {problem} (at {at:.1} s)",
                                        s.url_path
                                    ));
                                }
                            }
                            continue;
                        }
                        listed += 1;
                        if seen_set.insert(s.url_path.clone()) {
                            r.seen.push(s.url_path.clone());
                        }
                        if let Some(a) = s.available_at {
                            newest = Some(newest.map_or(a, |n: f64| n.max(a)));
                            if let Some(Some(absent_at)) = first_complete.get(&path) {
                                if claim_checked.insert(path.clone()) {
                                    let lead = absent_at - a;
                                    r.max_claim_lead =
                                        Some(r.max_claim_lead.map_or(lead, |l: f64| l.max(lead)));
                                    if lead > CLAIM_TOLERANCE {
                                        r.claimed_early.push(format!(
                                            "{}: available at {a:.2} by the MPD, still not on disk \
                                             {lead:.2} s later",
                                            s.url_path
                                        ));
                                    }
                                }
                            }
                        }
                        let due = s.available_at.is_none_or(|a| a <= read_at);
                        let problem = fmp4_problem(&path, SegKind::Media);
                        match problem {
                            None => {
                                complete.insert(s.url_path.clone());
                            }
                            Some(problem) if due => {
                                if !still_listed(&s.url_path) {
                                    continue;
                                }
                                // Still not there, after the MPD was read again.
                                if complete.contains(&s.url_path) {
                                    if reported.insert(format!("deleted {}", s.url_path))
                                        && r.deleted_while_listed.len() < MAX_LISTED_VIOLATIONS
                                    {
                                        r.deleted_while_listed.push(format!(
                                            "{} ({problem}, at {at:.1} s)",
                                            s.url_path
                                        ));
                                    }
                                } else if reported.insert(format!("early {}", s.url_path)) {
                                    let late = s.available_at.map_or(0.0, |a| read_at - a);
                                    r.early.push(format!(
                                        "{} available since {late:.2} s by the MPD but {problem} \
                                         (at {at:.1} s)",
                                        s.url_path
                                    ));
                                }
                            }
                            Some(_) => {}
                        }
                    }
                    r.max_listed = r.max_listed.max(listed);
                    if m.is_dynamic() && !m.is_final() {
                        if let Some(n) = newest {
                            let lag = read_at - n;
                            r.edge_lag = Some(match r.edge_lag {
                                None => (lag, lag),
                                Some((lo, hi)) => (lo.min(lag), hi.max(lag)),
                            });
                        }
                    }
                }
            }
            last_text = text;
        }
        if stopping {
            return r;
        }
        thread::sleep(DASH_WATCH_PERIOD);
    }
}

// ---------------------------------------------------------------------------------------------
// ffmpeg / ffprobe / HTTP

/// `ffmpeg -v error -i <input> [-t max] -f null -`: decodes a DASH MPD (file or URL). For a live
/// MPD with a SegmentTimeline, ffmpeg starts at the first listed segment and follows updates.
pub fn decode_dash(input: &str, max_secs: Option<f64>, wall: Duration) -> Decoded {
    let mut args: Vec<String> = [
        "-hide_banner",
        "-nostdin",
        "-v",
        "error",
        "-nostats",
        "-progress",
        "pipe:1",
        "-i",
        input,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if let Some(t) = max_secs {
        args.push("-t".into());
        args.push(format!("{t:.3}"));
    }
    args.extend(["-f", "null", "-"].iter().map(|s| s.to_string()));
    let (status, out, stderr) = run_bounded(Command::new("ffmpeg").args(&args), wall);
    let seconds = out
        .lines()
        .filter_map(|l| l.strip_prefix("out_time_us="))
        .filter_map(|v| v.trim().parse::<i64>().ok())
        .next_back()
        .unwrap_or(0)
        .max(0) as f64
        / 1e6;
    Decoded {
        ok: status.is_some_and(|s| s.success()) && stderr.trim().is_empty(),
        seconds,
        timed_out: status.is_none(),
        status,
        stderr,
    }
}

/// Audio channel count ffprobe reads from a DASH MPD (first audio stream).
pub fn probe_audio_channels(input: &str) -> Result<u32, String> {
    let (status, out, err) = run_bounded(
        Command::new("ffprobe").args([
            "-v",
            "error",
            "-select_streams",
            "a:0",
            "-show_entries",
            "stream=channels",
            "-of",
            "csv=p=0",
            input,
        ]),
        Duration::from_secs(20),
    );
    if !status.is_some_and(|s| s.success()) {
        return Err(format!("ffprobe {input}: {status:?} {err}"));
    }
    out.lines()
        .find_map(|l| l.trim().trim_end_matches(',').parse().ok())
        .ok_or_else(|| format!("ffprobe {input}: no channel count in {out:?}"))
}

/// Checks the MPD's `UTCTiming` sources work without leaving this server: `direct` values
/// parse; `http-*` URLs point here and answer with the time (within 2 s of ours).
pub fn utc_timing_problems(stream: &Stream, m: &Mpd) -> Vec<String> {
    let mut p = Vec::new();
    for (scheme, value) in &m.utc_timings {
        let what = format!("<UTCTiming schemeIdUri={scheme:?} value={value:?}>");
        let near_now = |t: f64| (t - now_epoch()).abs() <= 2.0;
        match scheme.as_str() {
            "urn:mpeg:dash:utc:direct:2014" => match parse_datetime(value) {
                Ok(t) if (t - now_epoch()).abs() <= 60.0 => {}
                Ok(t) => p.push(format!("{what}: {:.1} s off the clock", t - now_epoch())),
                Err(e) => p.push(format!("{what}: {e}")),
            },
            s if s.starts_with("urn:mpeg:dash:utc:http-") => {
                // Each URL in the (whitespace-separated) list must be this server.
                for url in value.split_whitespace() {
                    let local = !url.contains("://")
                        || url.starts_with("http://127.0.0.1")
                        || url.starts_with("http://localhost");
                    if !local {
                        p.push(format!("{what}: {url} is an outside time server"));
                        continue;
                    }
                    let path = resolve_url_path(&stream.url_path, url);
                    let head = s.contains("http-head");
                    let method = if head { "HEAD" } else { "GET" };
                    match http_request(stream.http_port, method, &path, &[]) {
                        Err(e) => p.push(format!("{what}: {e}")),
                        Ok(r) if r.status != 200 => {
                            p.push(format!("{what}: {method} {path} answered {}", r.status))
                        }
                        Ok(r) if head => {
                            if r.header("Date").is_none() {
                                p.push(format!("{what}: HEAD {path} has no Date header"));
                            }
                        }
                        Ok(r) => {
                            let body = String::from_utf8_lossy(&r.body).trim().to_string();
                            match parse_datetime(&body) {
                                Ok(t) if near_now(t) => {}
                                Ok(t) => p.push(format!(
                                    "{what}: GET {path} says {body}, {:.1} s off",
                                    t - now_epoch()
                                )),
                                Err(e) => p.push(format!("{what}: GET {path}: {e}")),
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
    p
}

/// What is wrong with an MPD that should be final (the publisher stopped).
pub fn final_mpd_problems(m: &Mpd) -> Vec<String> {
    let mut p = Vec::new();
    if !m.is_final() {
        p.push("the MPD does not signal the end (type static, mediaPresentationDuration or Period@duration)".into());
    }
    if !m.is_dynamic() {
        if m.attr("minimumUpdatePeriod").is_some() {
            p.push("a static MPD with MPD@minimumUpdatePeriod".into());
        }
        if m.attr("mediaPresentationDuration").is_none()
            && m.periods.last().is_some_and(|p| p.duration.is_none())
        {
            p.push(
                "a static MPD without mediaPresentationDuration (nor a last Period@duration)"
                    .into(),
            );
        }
    }
    if let Some(Ok(d)) = m.duration_attr("mediaPresentationDuration") {
        let listed_end = m
            .reps()
            .filter_map(|r| r.template.as_ref())
            .filter_map(|t| {
                t.timeline.last().map(|(s, d)| {
                    (*s as f64 + *d as f64 - t.presentation_time_offset as f64)
                        / t.timescale.max(1) as f64
                })
            })
            .fold(0.0, f64::max);
        let start = m.periods.first().map_or(0.0, |p| p.start);
        if (start + listed_end - d).abs() > 1.0 {
            p.push(format!(
                "mediaPresentationDuration {d} s but the segments end at {:.3} s",
                start + listed_end
            ));
        }
    }
    if !p.is_empty() {
        p.push(format!("(MPD:\n{})", m.text));
    }
    p
}

/// Media files (`.m4v`/`.m4a`, not init segments) directly in `dir`.
pub fn media_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".m4v") || n.ends_with(".m4a"))
                // Init segments, and the C module's work files (`<name>-raw.m4v`).
                .filter(|n| {
                    !n.contains("init") && !n.ends_with("-raw.m4v") && !n.ends_with("-raw.m4a")
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}
