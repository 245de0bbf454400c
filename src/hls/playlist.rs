//! HLS playlist text: the media playlist (RFC 8216 §4.3), the master playlist the C module
//! writes for `hls_variant`, `EXT-X-PROGRAM-DATE-TIME` dates, and a tolerant parser of our own
//! (or the C module's) media playlists so `hls_continuous` can resume numbering after a restart.
//!
//! Rendering is pure text; the segmenter decides what is listed.

use crate::segment::datetime;
use std::fmt::Write as _;

use thiserror::Error;

/// A previous playlist larger than this is not restored (the C module's are a few KiB; an
/// event playlist of a day of 2 s segments is about 5 MiB).
pub const MAX_RESTORE_BYTES: usize = 16 * 1024 * 1024;
/// At most this many segments are restored from a previous playlist (the newest are kept).
pub const MAX_RESTORED_SEGMENTS: usize = 100_000;
/// A duration above this (seconds) in a previous playlist is treated as malformed.
pub const MAX_SEGMENT_SECONDS: f64 = 86_400.0;
/// Longest URI line accepted when restoring.
pub const MAX_URI_LEN: usize = 4096;

/// Errors from reading back a previous media playlist.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum PlaylistError {
    #[error("hls playlist: missing #EXTM3U header")]
    NotM3u8,
    #[error("hls playlist: {0} bytes is over the {MAX_RESTORE_BYTES}-byte restore limit")]
    TooLarge(usize),
    #[error("hls playlist: bad value in line {line}: {what}")]
    BadValue { line: usize, what: &'static str },
}

/// An `EXT-X-KEY` in force for a segment (METHOD=AES-128).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyTag {
    /// The URI attribute, as written.
    pub uri: String,
    /// The explicit IV; `None` means the implicit one (the media sequence number).
    pub iv: Option<u128>,
}

/// One listed media segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentEntry {
    /// URI line, relative to the playlist (or absolute with `hls_base_url`).
    pub uri: String,
    pub duration_ms: u64,
    /// `#EXT-X-DISCONTINUITY` before this segment.
    pub discontinuity: bool,
    /// `#EXT-X-PROGRAM-DATE-TIME` (Unix ms) of the segment's first sample.
    pub program_date_ms: Option<u64>,
    /// Encryption of this segment; `None` = clear.
    pub key: Option<KeyTag>,
}

/// Playlist-level facts of a media playlist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MediaHeader {
    pub media_sequence: u64,
    /// Discontinuities that left the top of the playlist (RFC 8216 §4.3.3.3).
    pub discontinuity_sequence: u64,
    /// `hls_type event`: `#EXT-X-PLAYLIST-TYPE:EVENT`.
    pub event: bool,
    /// Every listed segment starts with a sample decodable on its own.
    pub independent_segments: bool,
    /// The stream ended: `#EXT-X-ENDLIST`.
    pub ended: bool,
}

/// `#EXT-X-TARGETDURATION`: the longest listed duration rounded up to whole seconds, so no
/// `EXTINF` (rounded or not) ever exceeds it; at least 1.
pub fn target_duration<'a>(segments: impl IntoIterator<Item = &'a SegmentEntry>) -> u64 {
    let longest = segments
        .into_iter()
        .map(|s| s.duration_ms)
        .max()
        .unwrap_or(0);
    longest.div_ceil(1000).max(1)
}

/// The lowest `EXT-X-VERSION` the tags need (RFC 8216 §7): 3 for decimal `EXTINF` durations,
/// 2 for an `IV` attribute; `EXT-X-PROGRAM-DATE-TIME`, `EXT-X-INDEPENDENT-SEGMENTS`,
/// `EXT-X-DISCONTINUITY(-SEQUENCE)` and `EXT-X-PLAYLIST-TYPE` need none.
pub fn protocol_version(decimal_durations: bool, key_iv: bool) -> u8 {
    let mut v = 1;
    if key_iv {
        v = v.max(2);
    }
    if decimal_durations {
        v = v.max(3);
    }
    v
}

/// Renders a media playlist. Durations are written with three decimals, so the version is
/// at least 3.
pub fn render_media<'a, I>(header: &MediaHeader, segments: I) -> String
where
    I: IntoIterator<Item = &'a SegmentEntry>,
    I::IntoIter: Clone,
{
    let segments = segments.into_iter();
    let any_iv = segments
        .clone()
        .any(|s| s.key.as_ref().is_some_and(|k| k.iv.is_some()));
    let count = segments.clone().count();
    let mut out = String::with_capacity(256 + count * 96);
    out.push_str("#EXTM3U\n");
    let _ = writeln!(out, "#EXT-X-VERSION:{}", protocol_version(true, any_iv));
    let _ = writeln!(
        out,
        "#EXT-X-TARGETDURATION:{}",
        target_duration(segments.clone())
    );
    let _ = writeln!(out, "#EXT-X-MEDIA-SEQUENCE:{}", header.media_sequence);
    if header.discontinuity_sequence > 0 {
        let _ = writeln!(
            out,
            "#EXT-X-DISCONTINUITY-SEQUENCE:{}",
            header.discontinuity_sequence
        );
    }
    if header.event {
        out.push_str("#EXT-X-PLAYLIST-TYPE:EVENT\n");
    }
    if header.independent_segments {
        out.push_str("#EXT-X-INDEPENDENT-SEGMENTS\n");
    }
    let mut key_in_force: Option<&KeyTag> = None;
    for s in segments {
        if s.discontinuity {
            out.push_str("#EXT-X-DISCONTINUITY\n");
        }
        if s.key.as_ref() != key_in_force {
            match &s.key {
                Some(k) => {
                    let _ = write!(out, "#EXT-X-KEY:METHOD=AES-128,URI=\"{}\"", k.uri);
                    if let Some(iv) = k.iv {
                        let _ = write!(out, ",IV=0x{iv:032X}");
                    }
                    out.push('\n');
                }
                None => out.push_str("#EXT-X-KEY:METHOD=NONE\n"),
            }
            key_in_force = s.key.as_ref();
        }
        if let Some(ms) = s.program_date_ms {
            out.push_str("#EXT-X-PROGRAM-DATE-TIME:");
            datetime::format_utc(ms, &mut out);
            out.push('\n');
        }
        let _ = writeln!(
            out,
            "#EXTINF:{}.{:03},\n{}",
            s.duration_ms / 1000,
            s.duration_ms % 1000,
            s.uri
        );
    }
    if header.ended {
        out.push_str("#EXT-X-ENDLIST\n");
    }
    out
}

/// One `hls_variant` line of a master playlist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VariantEntry {
    /// Attributes after `PROGRAM-ID=1,` (as configured, plus any filled in).
    pub attrs: Vec<String>,
    pub uri: String,
}

/// Renders the master playlist as the C module does (`#EXT-X-STREAM-INF:PROGRAM-ID=1,...`).
pub fn render_master(entries: &[VariantEntry]) -> String {
    let mut out = String::from("#EXTM3U\n#EXT-X-VERSION:3\n");
    for e in entries {
        out.push_str("#EXT-X-STREAM-INF:PROGRAM-ID=1");
        for a in &e.attrs {
            out.push(',');
            out.push_str(a);
        }
        out.push('\n');
        out.push_str(&e.uri);
        out.push('\n');
    }
    out
}

/// What a stream measured about itself, for attributes the config leaves out.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct VariantInfo {
    /// Peak segment bit rate, bits per second.
    pub bandwidth: Option<u64>,
    pub resolution: Option<(u32, u32)>,
    /// RFC 6381 codec list, e.g. `avc1.64001f,mp4a.40.2`.
    pub codecs: Option<String>,
    pub frame_rate: Option<f64>,
}

/// The configured attributes plus `BANDWIDTH`, `RESOLUTION`, `CODECS` and `FRAME-RATE` from
/// `info` for those the configuration does not give.
pub fn fill_variant_attrs(configured: &[String], info: &VariantInfo) -> Vec<String> {
    let has = |name: &str| {
        configured.iter().any(|a| {
            a.split('=')
                .next()
                .is_some_and(|n| n.trim().eq_ignore_ascii_case(name))
        })
    };
    let mut attrs = configured.to_vec();
    if let (false, Some(b)) = (has("BANDWIDTH"), info.bandwidth) {
        attrs.push(format!("BANDWIDTH={b}"));
    }
    if let (false, Some((w, h))) = (has("RESOLUTION"), info.resolution) {
        attrs.push(format!("RESOLUTION={w}x{h}"));
    }
    if let (false, Some(c)) = (has("CODECS"), info.codecs.as_ref()) {
        attrs.push(format!("CODECS=\"{c}\""));
    }
    if let (false, Some(f)) = (has("FRAME-RATE"), info.frame_rate) {
        if f.is_finite() && f > 0.0 {
            attrs.push(format!("FRAME-RATE={f:.3}"));
        }
    }
    attrs
}

/// A media playlist read back for `hls_continuous`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ParsedPlaylist {
    pub media_sequence: u64,
    pub discontinuity_sequence: u64,
    pub segments: Vec<SegmentEntry>,
    pub ended: bool,
}

/// Splits an attribute list (`A=1,B="x,y"`) into (name, value) pairs; quotes are removed.
fn attributes(list: &str) -> Vec<(&str, &str)> {
    let mut out = Vec::new();
    let mut rest = list;
    while !rest.is_empty() {
        let Some(eq) = rest.find('=') else { break };
        let name = rest[..eq].trim();
        let after = &rest[eq + 1..];
        let (value, next) = if let Some(q) = after.strip_prefix('"') {
            match q.find('"') {
                Some(end) => (&q[..end], &q[end + 1..]),
                None => (q, ""),
            }
        } else {
            match after.find(',') {
                Some(c) => (&after[..c], &after[c..]),
                None => (after, ""),
            }
        };
        out.push((name, value));
        rest = next.trim_start_matches(|c: char| c == ',' || c.is_whitespace());
    }
    out
}

fn parse_hex_u128(s: &str) -> Option<u128> {
    let h = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X"))?;
    if h.is_empty() || h.len() > 32 {
        return None;
    }
    u128::from_str_radix(h, 16).ok()
}

/// Seconds with a decimal fraction (`EXTINF`) to milliseconds, rounded.
fn parse_seconds_ms(s: &str) -> Option<u64> {
    let v: f64 = s.trim().parse().ok()?;
    if !v.is_finite() || !(0.0..=MAX_SEGMENT_SECONDS).contains(&v) {
        return None;
    }
    Some((v * 1000.0).round() as u64)
}

/// Reads a media playlist back (ours or the C module's). Unknown tags are ignored; a
/// malformed value of a tag we use is an error (the caller then starts afresh).
pub fn parse_media(text: &str) -> Result<ParsedPlaylist, PlaylistError> {
    if text.len() > MAX_RESTORE_BYTES {
        return Err(PlaylistError::TooLarge(text.len()));
    }
    let mut lines = text.lines().map(|l| l.trim_end_matches('\r'));
    if lines
        .next()
        .is_none_or(|l| l.trim_start_matches('\u{feff}') != "#EXTM3U")
    {
        return Err(PlaylistError::NotM3u8);
    }
    let mut p = ParsedPlaylist::default();
    let mut duration: Option<u64> = None;
    let mut discont = false;
    let mut pdt = None;
    let mut key: Option<KeyTag> = None;
    // Segments dropped from the front to respect MAX_RESTORED_SEGMENTS.
    let mut dropped = 0u64;
    let mut dropped_disc = 0u64;
    let mut segments = std::collections::VecDeque::new();
    for (i, line) in lines.enumerate() {
        let line_no = i + 2;
        let bad = |what| PlaylistError::BadValue {
            line: line_no,
            what,
        };
        if let Some(v) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
            p.media_sequence = v.trim().parse().map_err(|_| bad("media sequence"))?;
        } else if let Some(v) = line.strip_prefix("#EXT-X-DISCONTINUITY-SEQUENCE:") {
            p.discontinuity_sequence = v
                .trim()
                .parse()
                .map_err(|_| bad("discontinuity sequence"))?;
        } else if line == "#EXT-X-DISCONTINUITY" {
            discont = true;
        } else if line == "#EXT-X-ENDLIST" {
            p.ended = true;
        } else if let Some(v) = line.strip_prefix("#EXTINF:") {
            let d = v.split(',').next().unwrap_or("");
            duration = Some(parse_seconds_ms(d).ok_or_else(|| bad("EXTINF duration"))?);
        } else if let Some(v) = line.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:") {
            pdt = datetime::parse(v);
        } else if let Some(v) = line.strip_prefix("#EXT-X-KEY:") {
            let attrs = attributes(v);
            let get = |n: &str| attrs.iter().find(|(k, _)| *k == n).map(|(_, v)| *v);
            key = match get("METHOD") {
                Some("NONE") => None,
                Some("AES-128") => Some(KeyTag {
                    uri: get("URI").ok_or_else(|| bad("EXT-X-KEY URI"))?.to_owned(),
                    iv: match get("IV") {
                        Some(iv) => Some(parse_hex_u128(iv).ok_or_else(|| bad("EXT-X-KEY IV"))?),
                        None => None,
                    },
                }),
                _ => return Err(bad("EXT-X-KEY METHOD")),
            };
        } else if line.starts_with('#') || line.trim().is_empty() {
            continue;
        } else {
            if line.len() > MAX_URI_LEN {
                return Err(bad("URI too long"));
            }
            let Some(d) = duration.take() else {
                return Err(bad("URI without EXTINF"));
            };
            segments.push_back(SegmentEntry {
                uri: line.trim().to_owned(),
                duration_ms: d,
                discontinuity: std::mem::take(&mut discont),
                program_date_ms: pdt.take(),
                key: key.clone(),
            });
            if segments.len() > MAX_RESTORED_SEGMENTS {
                if let Some(old) = segments.pop_front() {
                    dropped += 1;
                    dropped_disc += u64::from(old.discontinuity);
                }
            }
        }
    }
    p.media_sequence = p
        .media_sequence
        .checked_add(dropped)
        .ok_or(PlaylistError::BadValue {
            line: 0,
            what: "media sequence overflow",
        })?;
    p.discontinuity_sequence = p.discontinuity_sequence.saturating_add(dropped_disc);
    p.segments = segments.into();
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(uri: &str, ms: u64) -> SegmentEntry {
        SegmentEntry {
            uri: uri.to_owned(),
            duration_ms: ms,
            discontinuity: false,
            program_date_ms: None,
            key: None,
        }
    }

    #[test]
    fn target_duration_is_ceiling_of_longest_listed() {
        assert_eq!(target_duration(&[seg("a", 2000), seg("b", 2000)]), 2);
        assert_eq!(target_duration(&[seg("a", 2000), seg("b", 2001)]), 3);
        assert_eq!(target_duration(&[seg("a", 9_999)]), 10);
        assert_eq!(target_duration(&[]), 1);
        assert_eq!(target_duration(&[seg("a", 0)]), 1);
    }

    #[test]
    fn version_follows_rfc8216_section_7() {
        assert_eq!(protocol_version(false, false), 1);
        assert_eq!(protocol_version(false, true), 2);
        assert_eq!(protocol_version(true, false), 3);
        assert_eq!(protocol_version(true, true), 3);
    }

    #[test]
    fn media_playlist_renders_exact_text() {
        let mut a = seg("s-1.ts", 2000);
        a.program_date_ms = Some(1_700_000_000_123);
        let mut b = seg("s-2.ts", 1960);
        b.discontinuity = true;
        b.program_date_ms = Some(1_700_000_002_123);
        let h = MediaHeader {
            media_sequence: 1,
            independent_segments: true,
            ended: true,
            ..Default::default()
        };
        let text = render_media(&h, &[a, b]);
        assert_eq!(
            text,
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:1\n\
             #EXT-X-INDEPENDENT-SEGMENTS\n\
             #EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:20.123Z\n#EXTINF:2.000,\ns-1.ts\n\
             #EXT-X-DISCONTINUITY\n#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:22.123Z\n\
             #EXTINF:1.960,\ns-2.ts\n#EXT-X-ENDLIST\n"
        );
    }

    #[test]
    fn event_type_has_no_stray_space_and_discontinuity_sequence_is_written() {
        let h = MediaHeader {
            event: true,
            discontinuity_sequence: 2,
            ..Default::default()
        };
        let text = render_media(&h, &[seg("x.ts", 1000)]);
        assert!(text.contains("\n#EXT-X-PLAYLIST-TYPE:EVENT\n"));
        assert!(text.contains("\n#EXT-X-DISCONTINUITY-SEQUENCE:2\n"));
        assert!(!text.contains("INDEPENDENT"));
        assert!(!text.contains("ENDLIST"));
    }

    #[test]
    fn key_tag_is_written_when_the_key_or_iv_changes() {
        let k = |iv| {
            Some(KeyTag {
                uri: "k-1.key".into(),
                iv: Some(iv),
            })
        };
        let mut a = seg("a.ts", 1000);
        a.key = k(1);
        let mut b = seg("b.ts", 1000);
        b.key = k(1);
        let mut c = seg("c.ts", 1000);
        c.key = k(3);
        let d = seg("d.ts", 1000);
        let text = render_media(&MediaHeader::default(), &[a, b, c, d]);
        assert_eq!(text.matches("#EXT-X-KEY:").count(), 3, "{text}");
        assert!(text.contains(
            "#EXT-X-KEY:METHOD=AES-128,URI=\"k-1.key\",IV=0x00000000000000000000000000000001\n\
             #EXTINF:1.000,\na.ts\n#EXTINF:1.000,\nb.ts\n"
        ));
        assert!(text.contains("IV=0x00000000000000000000000000000003\n#EXTINF:1.000,\nc.ts"));
        assert!(text.contains("#EXT-X-KEY:METHOD=NONE\n#EXTINF:1.000,\nd.ts"));
    }

    #[test]
    fn rendered_playlist_parses_with_m3u8_rs() {
        let mut a = seg("s-7.ts", 2500);
        a.key = Some(KeyTag {
            uri: "https://k/s-7.key".into(),
            iv: Some(7),
        });
        a.program_date_ms = Some(0);
        let mut b = seg("s-8.ts", 2000);
        b.discontinuity = true;
        b.key = a.key.clone();
        let h = MediaHeader {
            media_sequence: 7,
            independent_segments: true,
            ended: true,
            event: true,
            ..Default::default()
        };
        let text = render_media(&h, &[a, b]);
        let pl = match m3u8_rs::parse_playlist_res(text.as_bytes()) {
            Ok(m3u8_rs::Playlist::MediaPlaylist(p)) => p,
            other => panic!("{other:?}"),
        };
        assert_eq!(pl.version, Some(3));
        assert_eq!(pl.target_duration, 3);
        assert_eq!(pl.media_sequence, 7);
        assert!(pl.end_list);
        assert!(pl.independent_segments);
        assert_eq!(pl.playlist_type, Some(m3u8_rs::MediaPlaylistType::Event));
        assert_eq!(pl.segments.len(), 2);
        assert_eq!(pl.segments[0].uri, "s-7.ts");
        assert!((pl.segments[0].duration - 2.5).abs() < 1e-6);
        let key = pl.segments[0].key.as_ref().unwrap();
        assert_eq!(key.method, m3u8_rs::KeyMethod::AES128);
        assert_eq!(key.uri.as_deref(), Some("https://k/s-7.key"));
        assert_eq!(
            key.iv.as_deref(),
            Some("0x00000000000000000000000000000007")
        );
        assert!(pl.segments[1].discontinuity);
        assert!(pl.segments[0].program_date_time.is_some());
    }

    #[test]
    fn c_module_playlist_is_read_back() {
        let text = "#EXTM3U\r\n#EXT-X-VERSION:3\r\n#EXT-X-MEDIA-SEQUENCE:12\r\n\
                    #EXT-X-TARGETDURATION:5\r\n#EXT-X-PLAYLIST-TYPE: EVENT\r\n\
                    #EXT-X-KEY:METHOD=AES-128,URI=\"stream-12.key\",IV=0x0000000000000000000000000000000C\r\n\
                    #EXTINF:5.005,\r\nstream-12.ts\r\n#EXT-X-DISCONTINUITY\r\n#EXTINF:4.2,\r\nstream-13.ts\r\n";
        let p = parse_media(text).unwrap();
        assert_eq!(p.media_sequence, 12);
        assert_eq!(p.segments.len(), 2);
        assert_eq!(p.segments[0].uri, "stream-12.ts");
        assert_eq!(p.segments[0].duration_ms, 5005);
        assert_eq!(p.segments[0].key.as_ref().unwrap().iv, Some(12));
        assert!(!p.segments[0].discontinuity);
        assert!(p.segments[1].discontinuity);
        assert_eq!(p.segments[1].duration_ms, 4200);
        assert!(!p.ended);
    }

    #[test]
    fn our_playlist_round_trips() {
        let mut a = seg("n-3.ts", 2040);
        a.program_date_ms = Some(1_700_000_000_000);
        a.key = Some(KeyTag {
            uri: "n-3.key".into(),
            iv: Some(3),
        });
        let mut b = seg("n-4.ts", 2000);
        b.discontinuity = true;
        let h = MediaHeader {
            media_sequence: 3,
            discontinuity_sequence: 4,
            ended: true,
            ..Default::default()
        };
        let p = parse_media(&render_media(&h, &[a.clone(), b.clone()])).unwrap();
        assert_eq!(p.media_sequence, 3);
        assert_eq!(p.discontinuity_sequence, 4);
        assert!(p.ended);
        assert_eq!(p.segments, vec![a, b]);
    }

    #[test]
    fn malformed_playlists_are_errors_not_panics() {
        assert_eq!(parse_media(""), Err(PlaylistError::NotM3u8));
        assert_eq!(parse_media("hello\n"), Err(PlaylistError::NotM3u8));
        for bad in [
            "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:x\n",
            "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:-1\n",
            "#EXTM3U\n#EXTINF:abc,\na.ts\n",
            "#EXTM3U\n#EXTINF:-1,\na.ts\n",
            "#EXTM3U\n#EXTINF:NaN,\na.ts\n",
            "#EXTM3U\na.ts\n",
            "#EXTM3U\n#EXT-X-KEY:METHOD=SAMPLE-AES,URI=\"k\"\n",
            "#EXTM3U\n#EXT-X-KEY:METHOD=AES-128\n",
            "#EXTM3U\n#EXT-X-KEY:METHOD=AES-128,URI=\"k\",IV=0xZZ\n",
            "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:18446744073709551615\n",
        ] {
            if bad.ends_with("18446744073709551615\n") {
                assert!(parse_media(bad).is_ok());
                continue;
            }
            assert!(
                matches!(parse_media(bad), Err(PlaylistError::BadValue { .. })),
                "{bad}"
            );
        }
        // Every prefix of a valid playlist is handled without panicking.
        let full = render_media(
            &MediaHeader::default(),
            &[SegmentEntry {
                key: Some(KeyTag {
                    uri: "k".into(),
                    iv: Some(1),
                }),
                program_date_ms: Some(5),
                ..seg("a.ts", 1500)
            }],
        );
        for n in 0..full.len() {
            let _ = parse_media(&full[..n]);
        }
    }

    #[test]
    fn oversized_restore_keeps_the_newest_segments() {
        let mut text = String::from("#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:5\n");
        let n = MAX_RESTORED_SEGMENTS + 3;
        for i in 0..n {
            if i == 1 {
                text.push_str("#EXT-X-DISCONTINUITY\n");
            }
            let _ = writeln!(text, "#EXTINF:1.000,\nx-{}.ts", i + 5);
        }
        let p = parse_media(&text).unwrap();
        assert_eq!(p.segments.len(), MAX_RESTORED_SEGMENTS);
        assert_eq!(p.media_sequence, 8);
        assert_eq!(p.discontinuity_sequence, 1);
        assert_eq!(p.segments[0].uri, "x-8.ts");
    }

    #[test]
    fn master_playlist_matches_the_c_module_and_fills_missing_attributes() {
        let info = VariantInfo {
            bandwidth: Some(1_234_567),
            resolution: Some((1280, 720)),
            codecs: Some("avc1.64001f,mp4a.40.2".into()),
            frame_rate: Some(25.0),
        };
        let attrs = fill_variant_attrs(&["BANDWIDTH=800000".into()], &info);
        assert_eq!(
            attrs,
            vec![
                "BANDWIDTH=800000".to_owned(),
                "RESOLUTION=1280x720".into(),
                "CODECS=\"avc1.64001f,mp4a.40.2\"".into(),
                "FRAME-RATE=25.000".into(),
            ]
        );
        let text = render_master(&[
            VariantEntry {
                attrs,
                uri: "s_hi.m3u8".into(),
            },
            VariantEntry {
                attrs: vec!["BANDWIDTH=300000".into()],
                uri: "s_lo.m3u8".into(),
            },
        ]);
        assert_eq!(
            text,
            "#EXTM3U\n#EXT-X-VERSION:3\n\
             #EXT-X-STREAM-INF:PROGRAM-ID=1,BANDWIDTH=800000,RESOLUTION=1280x720,\
             CODECS=\"avc1.64001f,mp4a.40.2\",FRAME-RATE=25.000\ns_hi.m3u8\n\
             #EXT-X-STREAM-INF:PROGRAM-ID=1,BANDWIDTH=300000\ns_lo.m3u8\n"
        );
        match m3u8_rs::parse_playlist_res(text.as_bytes()) {
            Ok(m3u8_rs::Playlist::MasterPlaylist(m)) => {
                assert_eq!(m.variants.len(), 2);
                assert_eq!(m.variants[0].bandwidth, 800_000);
                assert_eq!(
                    m.variants[0].codecs.as_deref(),
                    Some("avc1.64001f,mp4a.40.2")
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn configured_attributes_are_not_duplicated() {
        let info = VariantInfo {
            bandwidth: Some(1),
            resolution: Some((2, 2)),
            codecs: Some("x".into()),
            frame_rate: Some(f64::NAN),
        };
        let conf: Vec<String> = vec![
            "bandwidth=5".into(),
            "RESOLUTION=1x1".into(),
            "CODECS=\"y\"".into(),
        ];
        assert_eq!(fill_variant_attrs(&conf, &info), conf);
    }
}
