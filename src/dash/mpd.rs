//! The DASH manifest (MPD), pure: a small model, its rendering as XML by hand (the MPD we
//! write is a fixed, simple shape; no XML library is needed to write it), and a tolerant
//! reader of our own previous MPD so a new publisher can continue its timeline.
//!
//! Times in the model are milliseconds on the presentation timeline (0 = the stream's
//! `availabilityStartTime`), or units of a track's timescale for `SegmentTimeline` values.

use crate::segment::datetime;
use std::fmt::Write as _;

/// `SegmentTimeline` entries read back from a previous MPD are capped at this many segments
/// (a hostile or corrupt `r` must not make us allocate without bound).
pub const MAX_RESTORED_SEGMENTS: usize = 100_000;
/// A previous MPD larger than this is ignored.
pub const MAX_PREVIOUS_MPD: usize = 4 * 1024 * 1024;

/// `urn:mpeg:dash:23003:3:audio_channel_configuration:2011`: value = number of channels.
pub const CHANNEL_CONFIG_SCHEME: &str = "urn:mpeg:dash:23003:3:audio_channel_configuration:2011";
/// UTCTiming schemes.
pub const UTC_DIRECT: &str = "urn:mpeg:dash:utc:direct:2014";
pub const UTC_HTTP_HEAD: &str = "urn:mpeg:dash:utc:http-head:2014";
pub const UTC_HTTP_ISO: &str = "urn:mpeg:dash:utc:http-iso:2014";
pub const UTC_NTP: &str = "urn:mpeg:dash:utc:ntp:2014";

/// A whole MPD.
#[derive(Debug, Clone)]
pub struct Mpd {
    /// `type="dynamic"` (live) or `"static"` (the stream ended).
    pub dynamic: bool,
    /// Unix ms of presentation time 0.
    pub availability_start_ms: u64,
    /// Unix ms of this write (`publishTime`).
    pub publish_ms: u64,
    /// `minimumUpdatePeriod` (dynamic only).
    pub update_period_ms: u64,
    pub min_buffer_ms: u64,
    /// `timeShiftBufferDepth` (dynamic only).
    pub time_shift_ms: u64,
    /// `suggestedPresentationDelay` (dynamic only).
    pub presentation_delay_ms: u64,
    /// Static only: presentation time that becomes 0 (the first listed segment), so a
    /// finished stream plays from its first listed segment.
    pub origin_ms: u64,
    /// Static only: `mediaPresentationDuration` = end of the last segment − `origin_ms`.
    pub end_ms: u64,
    pub periods: Vec<Period>,
    /// `(schemeIdUri, value)` in order of preference.
    pub utc_timing: Vec<(String, String)>,
    /// Low-latency DASH: the `ServiceDescription` latency the player should keep.
    pub latency: Option<Latency>,
}

/// `ServiceDescription`'s `Latency` (ms) and the playback rates a player may use to keep it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Latency {
    pub target_ms: u64,
    pub min_ms: u64,
    pub max_ms: u64,
}

#[derive(Debug, Clone)]
pub struct Period {
    pub id: u64,
    /// Presentation time of the period's start (ms).
    pub start_ms: u64,
    pub sets: Vec<AdaptationSet>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentType {
    Video,
    Audio,
}

impl ContentType {
    pub fn as_str(self) -> &'static str {
        match self {
            ContentType::Video => "video",
            ContentType::Audio => "audio",
        }
    }

    pub fn mime(self) -> &'static str {
        match self {
            ContentType::Video => "video/mp4",
            ContentType::Audio => "audio/mp4",
        }
    }
}

/// One track: an AdaptationSet with one Representation.
#[derive(Debug, Clone)]
pub struct AdaptationSet {
    pub id: u32,
    pub content: ContentType,
    pub representation_id: String,
    pub codecs: String,
    /// bits/s.
    pub bandwidth: u64,
    /// Video: display size (omitted when unknown, i.e. 0).
    pub width: u32,
    pub height: u32,
    pub frame_rate: Option<f64>,
    /// Audio: output sampling rate and channel count (0: unknown, omitted).
    pub sample_rate: u32,
    pub channels: u8,
    pub timescale: u32,
    /// False when a listed segment does not start with a sync sample (a forced cut).
    pub start_with_sap: bool,
    /// `initialization` and `media` URIs, already percent-encoded (`media` holds `$Time$`).
    pub initialization: String,
    pub media: String,
    /// `(t, d)` in `timescale` units, in order.
    pub segments: Vec<(u64, u64)>,
    /// Number of the first listed segment in the stream (its cut): HLS's media sequence.
    pub first_number: u64,
    /// Bytes of the listed segments (HLS's `AVERAGE-BANDWIDTH`).
    pub bytes: u64,
    /// Other Representations of this set (a multitrack ladder), each with its own files.
    pub renditions: Vec<AdaptationSet>,
    /// Low-latency DASH: `availabilityTimeOffset` (its last segment is announced while it is
    /// written, with `availabilityTimeComplete="false"`).
    pub availability_offset_ms: Option<u64>,
}

/// Escapes an attribute value.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// Undoes [`xml_escape`] (and numeric character references); `None` on a malformed entity.
pub fn xml_unescape(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(rest.get(..i)?);
        let after = rest.get(i + 1..)?;
        let end = after.find(';')?;
        let ent = after.get(..end)?;
        let c = match ent {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            _ => {
                let code = if let Some(h) = ent.strip_prefix("#x") {
                    u32::from_str_radix(h, 16).ok()?
                } else {
                    ent.strip_prefix('#')?.parse().ok()?
                };
                char::from_u32(code)?
            }
        };
        out.push(c);
        rest = after.get(end + 1..)?;
    }
    out.push_str(rest);
    Some(out)
}

pub use crate::segment::names::uri_escape;

/// xs:duration for milliseconds: `PT5S`, `PT0.040S`, `PT3600.5S`.
pub fn duration(ms: u64) -> String {
    let (s, f) = (ms / 1000, ms % 1000);
    if f == 0 {
        format!("PT{s}S")
    } else {
        let frac = format!("{f:03}");
        format!("PT{s}.{}S", frac.trim_end_matches('0'))
    }
}

/// Parses the xs:duration forms `PnDTnHnMn.nS` (no years or months) to ms.
pub fn parse_duration(s: &str) -> Option<u64> {
    let s = s.trim();
    let mut rest = s.strip_prefix('P')?;
    let mut ms: u64 = 0;
    let mut in_time = false;
    let mut any = false;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('T') {
            in_time = true;
            rest = r;
            continue;
        }
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .filter(|n| *n > 0)?;
        let (num, tail) = rest.split_at(n);
        let unit = tail.chars().next()?;
        let (int, frac) = num.split_once('.').unwrap_or((num, ""));
        let int: u64 = int.parse().ok()?;
        let frac_ms: u64 = if frac.is_empty() {
            0
        } else {
            let digits: String = frac.chars().chain("000".chars()).take(3).collect();
            if !frac.chars().all(|c| c.is_ascii_digit()) {
                return None;
            }
            digits.parse().ok()?
        };
        let unit_ms: u64 = match (unit, in_time) {
            ('D', false) => 86_400_000,
            ('H', true) => 3_600_000,
            ('M', true) => 60_000,
            ('S', true) => 1000,
            _ => return None,
        };
        if unit != 'S' && !frac.is_empty() {
            return None;
        }
        ms = ms
            .checked_add(int.checked_mul(unit_ms)?)?
            .checked_add(frac_ms)?;
        any = true;
        rest = tail.get(1..)?;
    }
    any.then_some(ms)
}

/// `frameRate` (FrameRateType: an integer or a fraction).
pub fn frame_rate(fps: f64) -> Option<String> {
    if !fps.is_finite() || fps <= 0.0 || fps > 1000.0 {
        return None;
    }
    let r = fps.round();
    if (fps - r).abs() < 0.01 {
        return Some(format!("{}", r as u64));
    }
    let ntsc = fps * 1.001;
    if (ntsc - ntsc.round()).abs() < 0.01 {
        return Some(format!("{}/1001", ntsc.round() as u64 * 1000));
    }
    Some(format!("{}/1000", (fps * 1000.0).round() as u64))
}

/// `floor(ms * timescale / 1000)`: the media time at a presentation instant.
pub fn ms_to_ticks(ms: u64, timescale: u32) -> u64 {
    u64::try_from(u128::from(ms) * u128::from(timescale) / 1000).unwrap_or(u64::MAX)
}

/// `ceil(ticks * 1000 / timescale)`.
pub fn ticks_to_ms_ceil(ticks: u64, timescale: u32) -> u64 {
    let ts = u128::from(timescale.max(1));
    u64::try_from((u128::from(ticks) * 1000).div_ceil(ts)).unwrap_or(u64::MAX)
}

fn render_set(out: &mut String, set: &AdaptationSet, pto: u64) {
    let c = set.content;
    let _ = write!(
        out,
        "    <AdaptationSet id=\"{}\" contentType=\"{}\" mimeType=\"{}\" segmentAlignment=\"true\"",
        set.id,
        c.as_str(),
        c.mime()
    );
    if set.start_with_sap && set.renditions.iter().all(|r| r.start_with_sap) {
        out.push_str(" startWithSAP=\"1\"");
    }
    out.push_str(">\n");
    if set.renditions.is_empty() {
        render_template(out, set, pto, "      ");
        render_representation(out, set, None);
    } else {
        // Several Representations (a multitrack ladder): each with its own files.
        for rep in std::iter::once(set).chain(&set.renditions) {
            render_representation(out, rep, Some(pto));
        }
    }
    out.push_str("    </AdaptationSet>\n");
}

/// A `SegmentTemplate` with its `SegmentTimeline`, indented by `indent`.
fn render_template(out: &mut String, set: &AdaptationSet, pto: u64, indent: &str) {
    let _ = writeln!(
        out,
        "{indent}<SegmentTemplate timescale=\"{}\" presentationTimeOffset=\"{pto}\" initialization=\"{}\" media=\"{}\"{}>",
        set.timescale,
        xml_escape(&set.initialization),
        xml_escape(&set.media),
        set.availability_offset_ms.map_or_else(String::new, |ms| format!(
            " availabilityTimeOffset=\"{}.{:03}\" availabilityTimeComplete=\"false\"",
            ms / 1000,
            ms % 1000
        ))
    );
    let _ = writeln!(out, "{indent}  <SegmentTimeline>");
    let mut i = 0;
    let mut prev_end: Option<u64> = None;
    while let Some(&(t, d)) = set.segments.get(i) {
        let mut r = 0u64;
        let mut next_t = t.saturating_add(d);
        while let Some(&(t2, d2)) = set.segments.get(i + 1 + r as usize) {
            if t2 != next_t || d2 != d {
                break;
            }
            r += 1;
            next_t = t2.saturating_add(d2);
        }
        let _ = write!(out, "{indent}    <S");
        if prev_end != Some(t) {
            let _ = write!(out, " t=\"{t}\"");
        }
        let _ = write!(out, " d=\"{d}\"");
        if r > 0 {
            let _ = write!(out, " r=\"{r}\"");
        }
        out.push_str("/>\n");
        prev_end = Some(next_t);
        i += 1 + r as usize;
    }
    let _ = writeln!(
        out,
        "{indent}  </SegmentTimeline>\n{indent}</SegmentTemplate>"
    );
}

/// A `Representation`; with `template`, holding its own `SegmentTemplate`.
fn render_representation(out: &mut String, set: &AdaptationSet, template: Option<u64>) {
    let _ = write!(
        out,
        "      <Representation id=\"{}\" codecs=\"{}\" bandwidth=\"{}\"",
        xml_escape(&set.representation_id),
        xml_escape(&set.codecs),
        set.bandwidth.max(1)
    );
    let mut children = String::new();
    if let Some(pto) = template {
        render_template(&mut children, set, pto, "        ");
    }
    match set.content {
        ContentType::Video => {
            if set.width > 0 && set.height > 0 {
                let _ = write!(out, " width=\"{}\" height=\"{}\"", set.width, set.height);
            }
            if let Some(fr) = set.frame_rate.and_then(frame_rate) {
                let _ = write!(out, " frameRate=\"{fr}\"");
            }
            out.push_str(" sar=\"1:1\"");
        }
        ContentType::Audio => {
            if set.sample_rate > 0 {
                let _ = write!(out, " audioSamplingRate=\"{}\"", set.sample_rate);
            }
            if set.channels > 0 {
                let _ = writeln!(
                    children,
                    "        <AudioChannelConfiguration schemeIdUri=\"{CHANNEL_CONFIG_SCHEME}\" value=\"{}\"/>",
                    set.channels
                );
            }
        }
    }
    if children.is_empty() {
        out.push_str("/>\n");
    } else {
        let _ = write!(out, ">\n{children}      </Representation>\n");
    }
}

/// Renders the MPD. Element order follows the MPD schema (Period, then UTCTiming; in an
/// AdaptationSet, SegmentTemplate before Representation).
pub fn render(mpd: &Mpd) -> String {
    let mut out = String::with_capacity(2048);
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str(
        "<MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\" profiles=\"urn:mpeg:dash:profile:isoff-live:2011\"",
    );
    if mpd.dynamic {
        let _ = write!(
            out,
            " type=\"dynamic\" availabilityStartTime=\"{}\" publishTime=\"{}\" minimumUpdatePeriod=\"{}\" minBufferTime=\"{}\" timeShiftBufferDepth=\"{}\" suggestedPresentationDelay=\"{}\"",
            datetime::utc(mpd.availability_start_ms),
            datetime::utc(mpd.publish_ms),
            duration(mpd.update_period_ms),
            duration(mpd.min_buffer_ms),
            duration(mpd.time_shift_ms),
            duration(mpd.presentation_delay_ms)
        );
    } else {
        let _ = write!(
            out,
            " type=\"static\" publishTime=\"{}\" mediaPresentationDuration=\"{}\" minBufferTime=\"{}\"",
            datetime::utc(mpd.publish_ms),
            duration(mpd.end_ms.saturating_sub(mpd.origin_ms)),
            duration(mpd.min_buffer_ms)
        );
    }
    out.push_str(">\n");
    if let Some(l) = mpd.latency.filter(|_| mpd.dynamic) {
        // Schema order: ServiceDescription before the Periods.
        let _ = writeln!(
            out,
            "  <ServiceDescription id=\"0\">\n    <Latency target=\"{}\" min=\"{}\" max=\"{}\"/>\n    <PlaybackRate min=\"0.96\" max=\"1.04\"/>\n  </ServiceDescription>",
            l.target_ms, l.min_ms, l.max_ms
        );
    }
    let origin = if mpd.dynamic { 0 } else { mpd.origin_ms };
    for p in &mpd.periods {
        // A period starting before the origin starts at it: its media before is not listed.
        let start = p.start_ms.max(origin);
        let _ = writeln!(
            out,
            "  <Period id=\"{}\" start=\"{}\">",
            p.id,
            duration(start - origin)
        );
        for set in &p.sets {
            render_set(&mut out, set, ms_to_ticks(start, set.timescale));
        }
        out.push_str("  </Period>\n");
    }
    for (scheme, value) in &mpd.utc_timing {
        let _ = writeln!(
            out,
            "  <UTCTiming schemeIdUri=\"{}\" value=\"{}\"/>",
            xml_escape(scheme),
            xml_escape(value)
        );
    }
    out.push_str("</MPD>\n");
    out
}

// ---- reading back our previous MPD ----

/// What a new publisher of the same name takes over from the MPD it finds on disk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PreviousMpd {
    pub availability_start_ms: Option<u64>,
    /// End of the last listed segment (ms, rounded up): on the presentation timeline, or
    /// its media time if later (our media time is the presentation time of the dynamic MPD;
    /// a static one is shifted to start at 0).
    pub end_ms: u64,
    /// Highest Period id + 1.
    pub next_period_id: u64,
    /// Every `initialization` URI (unescaped XML, still percent-encoded).
    pub init_uris: Vec<String>,
    /// Every segment URI (`media` with `$Time$` substituted).
    pub segment_uris: Vec<String>,
    /// Every `(media template, timescale)` pair.
    pub templates: Vec<(String, u32)>,
}

/// One start or empty-element tag: its name and its attribute text.
struct Tag<'a> {
    name: &'a str,
    attrs: &'a str,
    closing: bool,
}

fn tags(text: &str) -> impl Iterator<Item = Tag<'_>> {
    let mut rest = text;
    std::iter::from_fn(move || loop {
        let i = rest.find('<')?;
        let after = rest.get(i + 1..)?;
        let end = after.find('>')?;
        let inner = after.get(..end)?;
        rest = after.get(end + 1..)?;
        if inner.starts_with('?') || inner.starts_with('!') {
            continue;
        }
        let (closing, inner) = match inner.strip_prefix('/') {
            Some(s) => (true, s),
            None => (false, inner.strip_suffix('/').unwrap_or(inner)),
        };
        let n = inner
            .find(|c: char| c.is_ascii_whitespace())
            .unwrap_or(inner.len());
        let (name, attrs) = inner.split_at(n);
        return Some(Tag {
            name,
            attrs,
            closing,
        });
    })
}

/// The value of attribute `key` (double-quoted, as we write them), unescaped.
fn attr(attrs: &str, key: &str) -> Option<String> {
    let mut rest = attrs;
    loop {
        let i = rest.find(key)?;
        let before_ok = i == 0
            || rest
                .get(..i)
                .and_then(|b| b.chars().last())
                .is_some_and(|c| c.is_ascii_whitespace());
        let after = rest.get(i + key.len()..)?;
        if before_ok {
            if let Some(v) = after.strip_prefix("=\"") {
                let end = v.find('"')?;
                return xml_unescape(v.get(..end)?);
            }
        }
        rest = after;
    }
}

fn attr_u64(attrs: &str, key: &str) -> Option<u64> {
    attr(attrs, key)?.trim().parse().ok()
}

/// Reads the parts of a previous MPD (ours) that a new publisher continues from. Anything
/// unexpected is skipped; `None` when it is not an MPD at all.
pub fn parse_previous(text: &str) -> Option<PreviousMpd> {
    if text.len() > MAX_PREVIOUS_MPD {
        return None;
    }
    let mut prev = PreviousMpd::default();
    let mut seen_mpd = false;
    let mut period_start: u64 = 0;
    // (timescale, pto, media) of the SegmentTemplate being read.
    let mut template: Option<(u32, u64, String)> = None;
    let mut next_t: u64 = 0;
    let mut count = 0usize;
    for tag in tags(text) {
        match (tag.name, tag.closing) {
            ("MPD", false) => {
                seen_mpd = true;
                prev.availability_start_ms =
                    attr(tag.attrs, "availabilityStartTime").and_then(|s| datetime::parse(&s));
            }
            ("Period", false) => {
                if let Some(id) = attr_u64(tag.attrs, "id") {
                    prev.next_period_id = prev.next_period_id.max(id.saturating_add(1));
                }
                period_start = attr(tag.attrs, "start")
                    .and_then(|s| parse_duration(&s))
                    .unwrap_or(0);
            }
            ("SegmentTemplate", false) => {
                let ts = attr_u64(tag.attrs, "timescale")
                    .and_then(|t| u32::try_from(t).ok())
                    .filter(|t| *t > 0)
                    .unwrap_or(1);
                let pto = attr_u64(tag.attrs, "presentationTimeOffset").unwrap_or(0);
                if let Some(init) = attr(tag.attrs, "initialization") {
                    if !prev.init_uris.contains(&init) {
                        prev.init_uris.push(init);
                    }
                }
                template = attr(tag.attrs, "media").map(|m| (ts, pto, m));
                if let Some((_, _, m)) = template.as_ref() {
                    let pair = (m.clone(), ts);
                    if !prev.templates.contains(&pair) {
                        prev.templates.push(pair);
                    }
                }
                next_t = 0;
            }
            ("SegmentTemplate", true) => template = None,
            ("S", false) => {
                let Some((ts, pto, media)) = template.as_ref() else {
                    continue;
                };
                let Some(d) = attr_u64(tag.attrs, "d").filter(|d| *d > 0) else {
                    continue;
                };
                let mut t = attr_u64(tag.attrs, "t").unwrap_or(next_t);
                let r = attr_u64(tag.attrs, "r").unwrap_or(0);
                for _ in 0..=r {
                    if count >= MAX_RESTORED_SEGMENTS {
                        break;
                    }
                    count += 1;
                    prev.segment_uris
                        .push(media.replace("$Time$", &t.to_string()));
                    t = t.saturating_add(d);
                    let end = period_start
                        .saturating_add(ticks_to_ms_ceil(t.saturating_sub(*pto), *ts))
                        .max(ticks_to_ms_ceil(t, *ts));
                    prev.end_ms = prev.end_ms.max(end);
                }
                next_t = t;
            }
            _ => {}
        }
    }
    seen_mpd.then_some(prev)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(content: ContentType, segments: Vec<(u64, u64)>) -> AdaptationSet {
        AdaptationSet {
            id: 0,
            content,
            representation_id: content.as_str().into(),
            codecs: "avc1.64001f".into(),
            bandwidth: 1000,
            width: 1280,
            height: 720,
            frame_rate: Some(25.0),
            sample_rate: 48_000,
            channels: 2,
            timescale: 90_000,
            start_with_sap: true,
            initialization: "a&b-init.m4v".into(),
            media: "a&b-$Time$.m4v".into(),
            segments,
            first_number: 0,
            bytes: 0,
            renditions: Vec::new(),
            availability_offset_ms: None,
        }
    }

    fn mpd(dynamic: bool, sets: Vec<AdaptationSet>) -> Mpd {
        Mpd {
            dynamic,
            availability_start_ms: 1_700_000_000_123,
            publish_ms: 1_700_000_010_000,
            update_period_ms: 5000,
            min_buffer_ms: 5000,
            time_shift_ms: 30_000,
            presentation_delay_ms: 15_000,
            origin_ms: 0,
            end_ms: 20_000,
            periods: vec![Period {
                id: 0,
                start_ms: 0,
                sets,
            }],
            utc_timing: vec![(UTC_DIRECT.into(), datetime::utc(1_700_000_010_000))],
            latency: None,
        }
    }

    #[test]
    fn durations_are_xs_duration_with_milliseconds() {
        assert_eq!(duration(0), "PT0S");
        assert_eq!(duration(5000), "PT5S");
        assert_eq!(duration(40), "PT0.04S");
        assert_eq!(duration(3_600_500), "PT3600.5S");
        for ms in [0, 1, 40, 999, 1000, 5001, 86_400_123] {
            assert_eq!(parse_duration(&duration(ms)), Some(ms));
        }
        assert_eq!(parse_duration("PT1H2M3.5S"), Some(3_723_500));
        assert_eq!(parse_duration("P1DT1S"), Some(86_401_000));
        for bad in [
            "", "P", "T5S", "PT", "PTS", "PT5", "PT5X", "PT1.5M", "PT-1S", "P1Y",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
        assert_eq!(parse_duration("PT99999999999999999999S"), None);
    }

    #[test]
    fn frame_rates_are_integers_or_fractions() {
        assert_eq!(frame_rate(25.0).as_deref(), Some("25"));
        assert_eq!(frame_rate(29.97).as_deref(), Some("30000/1001"));
        assert_eq!(frame_rate(59.94).as_deref(), Some("60000/1001"));
        assert_eq!(frame_rate(12.345).as_deref(), Some("12345/1000"));
        assert_eq!(frame_rate(f64::NAN), None);
        assert_eq!(frame_rate(0.0), None);
    }

    #[test]
    fn escaping_round_trips_and_dollar_is_percent_encoded() {
        let s = "a&<>\"'b";
        assert_eq!(xml_unescape(&xml_escape(s)).as_deref(), Some(s));
        assert_eq!(xml_unescape("&#x41;&#66;").as_deref(), Some("AB"));
        assert_eq!(xml_unescape("&bogus;"), None);
        assert_eq!(xml_unescape("&amp"), None);
        assert_eq!(uri_escape("a b$c#?/d"), "a%20b%24c%23%3F/d");
    }

    #[test]
    fn timeline_runs_are_compressed_with_t_only_after_gaps() {
        let segs = vec![
            (0, 180_000),
            (180_000, 180_000),
            (360_000, 180_000),
            (540_000, 90_000),
            (900_000, 180_000),
        ];
        let text = render(&mpd(true, vec![set(ContentType::Video, segs)]));
        let lines: Vec<&str> = text.lines().filter(|l| l.contains("<S ")).collect();
        assert_eq!(
            lines,
            [
                "          <S t=\"0\" d=\"180000\" r=\"2\"/>",
                "          <S d=\"90000\"/>",
                "          <S t=\"900000\" d=\"180000\"/>",
            ]
        );
    }

    #[test]
    fn dynamic_and_static_headers() {
        let text = render(&mpd(true, vec![set(ContentType::Video, vec![(0, 9)])]));
        assert!(text.contains("type=\"dynamic\""));
        assert!(text.contains("availabilityStartTime=\"2023-11-14T22:13:20.123Z\""));
        assert!(text.contains("minimumUpdatePeriod=\"PT5S\""));
        assert!(text.contains("timeShiftBufferDepth=\"PT30S\""));
        assert!(text.contains("initialization=\"a&amp;b-init.m4v\""));
        assert!(text.contains("<UTCTiming schemeIdUri=\"urn:mpeg:dash:utc:direct:2014\""));
        let mut m = mpd(false, vec![set(ContentType::Audio, vec![(0, 9)])]);
        m.origin_ms = 2000;
        m.periods[0].start_ms = 1000;
        let text = render(&m);
        assert!(text.contains("type=\"static\""));
        assert!(text.contains("mediaPresentationDuration=\"PT18S\""));
        assert!(!text.contains("minimumUpdatePeriod"));
        assert!(!text.contains("timeShiftBufferDepth"));
        assert!(text.contains("<Period id=\"0\" start=\"PT0S\">"));
        // The period's origin moved to 2 s: its PTO follows (90 kHz).
        assert!(text.contains("presentationTimeOffset=\"180000\""));
        assert!(text.contains("value=\"2\""));
    }

    #[test]
    fn low_latency_adds_service_description_and_availability_offset() {
        let mut v = set(ContentType::Video, vec![(0, 90_000), (90_000, 120_000)]);
        v.availability_offset_ms = Some(1_000);
        let mut m = mpd(true, vec![v]);
        m.latency = Some(Latency {
            target_ms: 1500,
            min_ms: 700,
            max_ms: 3000,
        });
        let text = render(&m);
        let sd = text.find("<ServiceDescription id=\"0\">").unwrap();
        assert!(sd < text.find("<Period").unwrap(), "{text}");
        assert!(text.contains("<Latency target=\"1500\" min=\"700\" max=\"3000\"/>"));
        assert!(text.contains("<PlaybackRate min=\"0.96\" max=\"1.04\"/>"));
        assert!(text.contains(
            "media=\"a&amp;b-$Time$.m4v\" availabilityTimeOffset=\"1.000\" availabilityTimeComplete=\"false\">"
        ), "{text}");
        // An ended stream's MPD is plain.
        m.dynamic = false;
        assert!(!render(&m).contains("ServiceDescription"));
    }

    #[test]
    fn previous_mpd_is_read_back() {
        let mut m = mpd(
            true,
            vec![set(ContentType::Video, vec![(0, 90_000), (90_000, 90_000)])],
        );
        m.periods.push(Period {
            id: 4,
            start_ms: 10_000,
            sets: vec![set(ContentType::Video, vec![(900_000, 45_000)])],
        });
        let p = parse_previous(&render(&m)).unwrap();
        assert_eq!(p.availability_start_ms, Some(1_700_000_000_123));
        assert_eq!(p.next_period_id, 5);
        assert_eq!(p.end_ms, 10_500);
        assert_eq!(p.init_uris, ["a&b-init.m4v"]);
        assert_eq!(
            p.segment_uris,
            ["a&b-0.m4v", "a&b-90000.m4v", "a&b-900000.m4v"]
        );
    }

    #[test]
    fn hostile_previous_mpds_are_bounded_and_never_panic() {
        assert_eq!(parse_previous("not xml"), None);
        assert_eq!(parse_previous(""), None);
        let huge = "<MPD><Period id=\"18446744073709551615\" start=\"PT1S\"><SegmentTemplate timescale=\"0\" media=\"x-$Time$.m4v\"><SegmentTimeline><S t=\"18446744073709551615\" d=\"18446744073709551615\" r=\"18446744073709551615\"/></SegmentTimeline></SegmentTemplate></Period></MPD>";
        let p = parse_previous(huge).unwrap();
        assert_eq!(p.segment_uris.len(), MAX_RESTORED_SEGMENTS);
        assert_eq!(p.next_period_id, u64::MAX);
        for junk in [
            "<MPD",
            "<MPD><S d=\"1\"/>",
            "<MPD availabilityStartTime=\"",
            "<MPD><<<>>></MPD>",
            "<MPD><SegmentTemplate media=\"&bad;\"><S d=\"5\"/>",
            "<\u{e9}MPD \u{e9}=\"\u{e9}\">",
        ] {
            let _ = parse_previous(junk);
        }
    }
}
