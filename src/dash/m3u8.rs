//! HLS playlists of the CMAF segmenter (`hls_container fmp4`, or `auto` with a codec MPEG-TS
//! cannot carry): the segments and init segments the MPD model lists, as a multivariant
//! playlist at the stream's usual `.m3u8` and one media playlist per track (RFC 8216bis):
//! `EXT-X-MAP` for the init segment, `EXT-X-DISCONTINUITY` (and a new map) where a Period
//! starts, `EXT-X-ENDLIST` once the stream ended. One model, two renderings: what the MPD
//! says and what the playlists say cannot drift apart.

use std::fmt::Write as _;

use super::mpd::{AdaptationSet, ContentType, Mpd};
use crate::segment::datetime;

/// Version 7: `EXT-X-MAP` in a playlist without I-frames only needs 6; 7 is what fMP4
/// playlists declare in practice (Apple's tools, ffmpeg).
const VERSION: u32 = 7;
/// LL-HLS playlists: 9, what a delta update's `EXT-X-SKIP` needs (`CAN-SKIP-UNTIL`).
const LL_VERSION: u32 = 9;

/// A partial segment (LL-HLS) of a media playlist.
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    pub uri: String,
    /// Duration in the track's timescale.
    pub ticks: u64,
    /// Starts with a sync sample.
    pub independent: bool,
}

/// `EXT-X-RENDITION-REPORT`: where another media playlist of the stream is.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub uri: String,
    pub last_msn: u64,
    pub last_part: Option<usize>,
}

/// What LL-HLS adds to a media playlist (`hls_low_latency`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LowLatency {
    pub part_target_ms: u64,
    /// The parts of listed segments near the live edge, by the segment's start time `t`
    /// (older segments are listed without theirs).
    pub listed: Vec<(u64, Vec<Part>)>,
    /// The parts of the segment after the last listed one, being written.
    pub trailing: Vec<Part>,
    /// `EXT-X-PRELOAD-HINT`: the next part's URI.
    pub hint: Option<String>,
    pub reports: Vec<Report>,
}

/// `(media sequence number, part index)` of the newest segment or part a media playlist
/// lists (what another playlist's `EXT-X-RENDITION-REPORT` says of it).
pub fn last_position(
    mpd: &Mpd,
    content: ContentType,
    ll: &LowLatency,
) -> Option<(u64, Option<usize>)> {
    let sets: Vec<&AdaptationSet> = listed_sets(mpd, content).map(|(_, s)| s).collect();
    let first = sets.first()?.first_number;
    let count: u64 = sets.iter().map(|s| s.segments.len() as u64).sum();
    if !ll.trailing.is_empty() {
        return Some((first.saturating_add(count), Some(ll.trailing.len() - 1)));
    }
    let last_t = sets.last()?.segments.last()?.0;
    let parts = ll
        .listed
        .iter()
        .find(|(t, _)| *t == last_t)
        .and_then(|(_, p)| p.len().checked_sub(1));
    Some((first.saturating_add(count).saturating_sub(1), parts))
}

fn listed_sets(mpd: &Mpd, content: ContentType) -> impl Iterator<Item = (u64, &AdaptationSet)> {
    mpd.periods
        .iter()
        .flat_map(|p| p.sets.iter().map(move |s| (p.id, s)))
        .filter(move |(_, s)| s.content == content && !s.segments.is_empty())
}

/// Seconds of `ms` as a playlist decimal.
fn ms_seconds(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

fn write_parts(out: &mut String, parts: &[Part], timescale: u32) {
    for p in parts {
        let _ = write!(
            out,
            "#EXT-X-PART:DURATION={},URI=\"{}\"",
            seconds(p.ticks, timescale),
            p.uri
        );
        out.push_str(if p.independent {
            ",INDEPENDENT=YES\n"
        } else {
            "\n"
        });
    }
}

/// The two media playlists' URIs, relative to the multivariant playlist.
pub struct MediaUris<'a> {
    pub video: &'a str,
    pub audio: &'a str,
}

/// The multivariant entry of another video track's rendition (multitrack publishers).
#[derive(Debug, Clone, PartialEq)]
pub struct Rendition {
    /// Its video media playlist, relative to the multivariant playlist.
    pub uri: String,
    pub codecs: String,
    pub bandwidth: u64,
    pub average: u64,
    pub width: u32,
    pub height: u32,
    pub frame_rate: Option<f64>,
    /// Audio: channels (0: unknown).
    pub channels: u8,
}

impl Rendition {
    pub fn of(set: &AdaptationSet, uri: String) -> Self {
        Rendition {
            uri,
            codecs: set.codecs.clone(),
            bandwidth: set.bandwidth,
            average: average_bandwidth(set),
            width: set.width,
            height: set.height,
            frame_rate: set.frame_rate,
            channels: set.channels,
        }
    }
}

/// `,RESOLUTION=WxH,FRAME-RATE=f` of a video variant, when known.
fn picture_attrs(width: u32, height: u32, frame_rate: Option<f64>) -> String {
    let mut attrs = String::new();
    if width > 0 && height > 0 {
        let _ = write!(attrs, ",RESOLUTION={width}x{height}");
    }
    if let Some(fr) = frame_rate.filter(|f| f.is_finite() && *f > 0.0) {
        let _ = write!(attrs, ",FRAME-RATE={fr:.3}");
    }
    attrs
}

/// Seconds of `ticks` at `timescale`, as an `EXTINF` decimal (milliseconds precision).
fn seconds(ticks: u64, timescale: u32) -> String {
    let ms = u128::from(ticks) * 1000 / u128::from(timescale.max(1));
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

/// The media playlist of one content type, or `None` when no Period lists it. `ll`: with
/// LL-HLS parts (ignored once the stream ended).
pub fn media_playlist(
    mpd: &Mpd,
    content: ContentType,
    event: bool,
    ll: Option<&LowLatency>,
) -> Option<String> {
    let sets: Vec<(u64, &AdaptationSet)> = listed_sets(mpd, content).collect();
    let ll = ll.filter(|_| mpd.dynamic);
    let (first_period, first) = *sets.first()?;
    let target = sets
        .iter()
        .flat_map(|(_, s)| {
            s.segments
                .iter()
                .map(|(_, d)| d.div_ceil(u64::from(s.timescale.max(1))))
        })
        .max()
        .unwrap_or(1)
        .max(1);
    let mut out =
        String::with_capacity(256 + 64 * sets.iter().map(|(_, s)| s.segments.len()).sum::<usize>());
    let version = if ll.is_some() { LL_VERSION } else { VERSION };
    let _ = writeln!(out, "#EXTM3U\n#EXT-X-VERSION:{version}");
    let _ = writeln!(out, "#EXT-X-TARGETDURATION:{target}");
    if let Some(ll) = ll {
        // Apple's recommendations: three parts (and three segments) behind the live edge,
        // delta updates for playlists of more than six target durations.
        let target_ms = target.saturating_mul(1000);
        let _ = writeln!(
            out,
            "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL={},HOLD-BACK={},PART-HOLD-BACK={}",
            ms_seconds(target_ms.saturating_mul(6)),
            ms_seconds(target_ms.saturating_mul(3)),
            ms_seconds(ll.part_target_ms.saturating_mul(3)),
        );
        let _ = writeln!(
            out,
            "#EXT-X-PART-INF:PART-TARGET={}",
            ms_seconds(ll.part_target_ms)
        );
    }
    let _ = writeln!(out, "#EXT-X-MEDIA-SEQUENCE:{}", first.first_number);
    // Every Period boundary is one discontinuity; Period ids count them.
    let _ = writeln!(out, "#EXT-X-DISCONTINUITY-SEQUENCE:{first_period}");
    if event {
        out.push_str("#EXT-X-PLAYLIST-TYPE:EVENT\n");
    }
    if sets.iter().all(|(_, s)| s.start_with_sap) {
        out.push_str("#EXT-X-INDEPENDENT-SEGMENTS\n");
    }
    let mut map: Option<&str> = None;
    for (i, (_, set)) in sets.iter().enumerate() {
        if i > 0 {
            out.push_str("#EXT-X-DISCONTINUITY\n");
        }
        if map != Some(set.initialization.as_str()) {
            let _ = writeln!(out, "#EXT-X-MAP:URI=\"{}\"", set.initialization);
            map = Some(&set.initialization);
        }
        // Media time is presentation time on the MPD's availability timeline (its Periods'
        // presentationTimeOffset is their start): the wall clock of the first segment.
        if let (Some(&(t, _)), true) = (set.segments.first(), mpd.availability_start_ms > 0) {
            let ms = u128::from(t) * 1000 / u128::from(set.timescale.max(1));
            let at = mpd
                .availability_start_ms
                .saturating_add(u64::try_from(ms).unwrap_or(u64::MAX));
            let _ = writeln!(out, "#EXT-X-PROGRAM-DATE-TIME:{}", datetime::utc(at));
        }
        for &(t, d) in &set.segments {
            if let Some((_, parts)) = ll.and_then(|ll| ll.listed.iter().find(|(s, _)| *s == t)) {
                write_parts(&mut out, parts, set.timescale);
            }
            let uri = set.media.replace("$Time$", &t.to_string());
            let _ = writeln!(out, "#EXTINF:{},\n{uri}", seconds(d, set.timescale));
        }
    }
    if let Some(ll) = ll {
        let timescale = sets.last().map_or(1000, |(_, s)| s.timescale);
        write_parts(&mut out, &ll.trailing, timescale);
        if let Some(hint) = &ll.hint {
            let _ = writeln!(out, "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{hint}\"");
        }
        for r in &ll.reports {
            let _ = write!(
                out,
                "#EXT-X-RENDITION-REPORT:URI=\"{}\",LAST-MSN={}",
                r.uri, r.last_msn
            );
            if let Some(p) = r.last_part {
                let _ = write!(out, ",LAST-PART={p}");
            }
            out.push('\n');
        }
    }
    if !mpd.dynamic {
        out.push_str("#EXT-X-ENDLIST\n");
    }
    Some(out)
}

/// The last listed set of a content type (what a player starts with).
fn last_set(mpd: &Mpd, content: ContentType) -> Option<&AdaptationSet> {
    mpd.periods
        .iter()
        .rev()
        .flat_map(|p| p.sets.iter())
        .find(|s| s.content == content && !s.segments.is_empty())
}

/// Average bits/s of a set's listed segments.
fn average_bandwidth(set: &AdaptationSet) -> u64 {
    let ticks: u64 = set.segments.iter().map(|(_, d)| *d).sum();
    let ms = u128::from(ticks) * 1000 / u128::from(set.timescale.max(1));
    u64::try_from(u128::from(set.bytes) * 8000 / ms.max(1)).unwrap_or(u64::MAX)
}

/// The other tracks of a multitrack publisher: video renditions are variants of their own,
/// audio renditions more `EXT-X-MEDIA` of the audio group.
#[derive(Default)]
pub struct Ladder<'a> {
    pub video: Vec<&'a Rendition>,
    pub audio: Vec<&'a Rendition>,
}

/// The multivariant playlist: the video media playlist as the first variant (then one per
/// other video track of `ladder`), the audio one as their `EXT-X-MEDIA` rendition with the
/// other audio tracks beside it (or, audio only, as the variant). `None` before anything is
/// listed.
pub fn multivariant_playlist(
    mpd: &Mpd,
    uris: &MediaUris<'_>,
    ladder: &Ladder<'_>,
) -> Option<String> {
    let video = last_set(mpd, ContentType::Video);
    let audio = last_set(mpd, ContentType::Audio);
    let main = video.or(audio)?;
    let mut out = format!("#EXTM3U\n#EXT-X-VERSION:{VERSION}\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    let Some(v) = video else {
        let _ = writeln!(
            out,
            "#EXT-X-STREAM-INF:BANDWIDTH={},AVERAGE-BANDWIDTH={},CODECS=\"{}\"\n{}",
            main.bandwidth.max(1),
            average_bandwidth(main).max(1),
            main.codecs,
            uris.audio
        );
        return Some(out);
    };
    // The audio group: what every variant may play with.
    let mut group = String::new();
    let (mut audio_peak, mut audio_average) = (0u64, 0u64);
    if let Some(a) = audio {
        let mut media = |name: &str, default: bool, channels: u8, uri: &str| {
            let _ = write!(
                out,
                "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"{name}\",DEFAULT={},AUTOSELECT=YES",
                if default { "YES" } else { "NO" }
            );
            if channels > 0 {
                let _ = write!(out, ",CHANNELS=\"{channels}\"");
            }
            let _ = writeln!(out, ",URI=\"{uri}\"");
        };
        media("audio", true, a.channels, uris.audio);
        group.push_str(&a.codecs);
        audio_peak = a.bandwidth;
        audio_average = average_bandwidth(a);
        for (i, r) in ladder.audio.iter().enumerate() {
            media(&format!("audio {}", i + 2), false, r.channels, &r.uri);
            if !group.split(',').any(|c| c == r.codecs) {
                let _ = write!(group, ",{}", r.codecs);
            }
            audio_peak = audio_peak.max(r.bandwidth);
            audio_average = audio_average.max(r.average);
        }
    }
    let main_video = Rendition::of(v, uris.video.to_owned());
    for r in std::iter::once(&main_video).chain(ladder.video.iter().copied()) {
        let mut codecs = r.codecs.clone();
        let mut attrs = String::new();
        if audio.is_some() {
            let _ = write!(codecs, ",{group}");
            attrs.push_str(",AUDIO=\"audio\"");
        }
        attrs.push_str(&picture_attrs(r.width, r.height, r.frame_rate));
        let _ = writeln!(
            out,
            "#EXT-X-STREAM-INF:BANDWIDTH={},AVERAGE-BANDWIDTH={},CODECS=\"{codecs}\"{attrs}\n{}",
            r.bandwidth.saturating_add(audio_peak).max(1),
            r.average.saturating_add(audio_average).max(1),
            r.uri
        );
    }
    Some(out)
}

/// What [`media_playlist`] writes for a live LL-HLS example (its test): the http side's
/// tests read it (`lowlatency::playlist`).
#[cfg(test)]
pub(crate) const LL_EXAMPLE: &str = "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:1\n\
    #EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=6.000,HOLD-BACK=3.000,PART-HOLD-BACK=1.500\n\
    #EXT-X-PART-INF:PART-TARGET=0.500\n#EXT-X-MEDIA-SEQUENCE:4\n\
    #EXT-X-DISCONTINUITY-SEQUENCE:0\n#EXT-X-INDEPENDENT-SEGMENTS\n\
    #EXT-X-MAP:URI=\"s-init.m4v\"\n#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:20.000Z\n\
    #EXTINF:1.000,\ns-0.m4v\n\
    #EXT-X-PART:DURATION=0.500,URI=\"s-p1000.m4s\",INDEPENDENT=YES\n\
    #EXT-X-PART:DURATION=0.500,URI=\"s-p1500.m4s\"\n#EXTINF:1.000,\ns-1000.m4v\n\
    #EXT-X-PART:DURATION=0.480,URI=\"s-p2000.m4s\",INDEPENDENT=YES\n\
    #EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"s-p2480.m4s\"\n\
    #EXT-X-RENDITION-REPORT:URI=\"s-audio.m3u8\",LAST-MSN=6,LAST-PART=0\n";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dash::mpd::Period;

    fn set(
        content: ContentType,
        first: u64,
        init: &str,
        segments: Vec<(u64, u64)>,
    ) -> AdaptationSet {
        AdaptationSet {
            id: 0,
            content,
            representation_id: content.as_str().into(),
            codecs: match content {
                ContentType::Video => "hvc1.1.6.L93.B0".into(),
                ContentType::Audio => "opus".into(),
            },
            bandwidth: 1_000_000,
            width: 1280,
            height: 720,
            frame_rate: Some(30.0),
            sample_rate: 48_000,
            channels: 2,
            timescale: 1000,
            start_with_sap: true,
            initialization: init.into(),
            media: format!(
                "s-$Time$.{}",
                if content == ContentType::Video {
                    "m4v"
                } else {
                    "m4a"
                }
            ),
            segments,
            first_number: first,
            bytes: 250_000,
            renditions: Vec::new(),
            availability_offset_ms: None,
        }
    }

    fn mpd(periods: Vec<Period>, dynamic: bool) -> Mpd {
        Mpd {
            dynamic,
            availability_start_ms: 1_700_000_000_000,
            publish_ms: 0,
            update_period_ms: 2000,
            min_buffer_ms: 2000,
            time_shift_ms: 10_000,
            presentation_delay_ms: 6000,
            origin_ms: 0,
            end_ms: 0,
            periods,
            utc_timing: Vec::new(),
            latency: None,
        }
    }

    #[test]
    fn media_playlist_lists_segments_with_map_and_discontinuity() {
        let p0 = Period {
            id: 3,
            start_ms: 0,
            sets: vec![set(
                ContentType::Video,
                7,
                "s-init.m4v",
                vec![(0, 2000), (2000, 2500)],
            )],
        };
        let p1 = Period {
            id: 4,
            start_ms: 4500,
            sets: vec![set(
                ContentType::Video,
                9,
                "s-init-1.m4v",
                vec![(4500, 2000)],
            )],
        };
        let text =
            media_playlist(&mpd(vec![p0, p1], true), ContentType::Video, false, None).unwrap();
        assert_eq!(
            text,
            "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:3\n#EXT-X-MEDIA-SEQUENCE:7\n\
             #EXT-X-DISCONTINUITY-SEQUENCE:3\n#EXT-X-INDEPENDENT-SEGMENTS\n\
             #EXT-X-MAP:URI=\"s-init.m4v\"\n#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:20.000Z\n\
             #EXTINF:2.000,\ns-0.m4v\n#EXTINF:2.500,\ns-2000.m4v\n\
             #EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"s-init-1.m4v\"\n\
             #EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:24.500Z\n#EXTINF:2.000,\ns-4500.m4v\n"
        );
        assert!(media_playlist(&mpd(Vec::new(), true), ContentType::Audio, false, None).is_none());
    }

    #[test]
    fn low_latency_adds_parts_hint_and_reports_to_a_live_playlist_only() {
        let p = Period {
            id: 0,
            start_ms: 0,
            sets: vec![set(
                ContentType::Video,
                4,
                "s-init.m4v",
                vec![(0, 1000), (1000, 1000)],
            )],
        };
        let part = |uri: &str, ticks: u64, independent: bool| Part {
            uri: uri.into(),
            ticks,
            independent,
        };
        let ll = LowLatency {
            part_target_ms: 500,
            listed: vec![(
                1000,
                vec![
                    part("s-p1000.m4s", 500, true),
                    part("s-p1500.m4s", 500, false),
                ],
            )],
            trailing: vec![part("s-p2000.m4s", 480, true)],
            hint: Some("s-p2480.m4s".into()),
            reports: vec![Report {
                uri: "s-audio.m3u8".into(),
                last_msn: 6,
                last_part: Some(0),
            }],
        };
        let live = mpd(vec![p.clone()], true);
        let text = media_playlist(&live, ContentType::Video, false, Some(&ll)).unwrap();
        assert_eq!(text, LL_EXAMPLE);
        assert_eq!(
            last_position(&live, ContentType::Video, &ll),
            Some((6, Some(0)))
        );
        let no_trailing = LowLatency {
            trailing: Vec::new(),
            ..ll.clone()
        };
        assert_eq!(
            last_position(&live, ContentType::Video, &no_trailing),
            Some((5, Some(1)))
        );
        // Once ended: whole segments and ENDLIST, no LL tags.
        let ended =
            media_playlist(&mpd(vec![p], false), ContentType::Video, false, Some(&ll)).unwrap();
        assert!(
            !ended.contains("PART")
                && !ended.contains("PRELOAD")
                && !ended.contains("SERVER-CONTROL")
        );
        assert!(
            ended.starts_with("#EXTM3U\n#EXT-X-VERSION:7\n") && ended.ends_with("#EXT-X-ENDLIST\n")
        );
    }

    #[test]
    fn ended_stream_gets_endlist_and_event_type() {
        let p = Period {
            id: 0,
            start_ms: 0,
            sets: vec![set(ContentType::Audio, 0, "s-init.m4a", vec![(0, 1000)])],
        };
        let text = media_playlist(&mpd(vec![p], false), ContentType::Audio, true, None).unwrap();
        assert!(text.contains("#EXT-X-PLAYLIST-TYPE:EVENT\n"));
        assert!(text.ends_with("#EXT-X-ENDLIST\n"));
    }

    #[test]
    fn multivariant_names_codecs_resolution_and_audio_rendition() {
        let p = Period {
            id: 0,
            start_ms: 0,
            sets: vec![
                set(ContentType::Video, 0, "s-init.m4v", vec![(0, 2000)]),
                set(ContentType::Audio, 0, "s-init.m4a", vec![(0, 2000)]),
            ],
        };
        let uris = MediaUris {
            video: "s-video.m3u8",
            audio: "s-audio.m3u8",
        };
        let text =
            multivariant_playlist(&mpd(vec![p.clone()], true), &uris, &Ladder::default()).unwrap();
        assert!(text.contains(
            "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"audio\",DEFAULT=YES,AUTOSELECT=YES,CHANNELS=\"2\",URI=\"s-audio.m3u8\"\n"
        ));
        assert!(text.contains(
            "#EXT-X-STREAM-INF:BANDWIDTH=2000000,AVERAGE-BANDWIDTH=2000000,CODECS=\"hvc1.1.6.L93.B0,opus\",AUDIO=\"audio\",RESOLUTION=1280x720,FRAME-RATE=30.000\ns-video.m3u8\n"
        ), "{text}");
        let audio_only = Period {
            sets: vec![set(ContentType::Audio, 0, "s-init.m4a", vec![(0, 2000)])],
            ..p
        };
        let text =
            multivariant_playlist(&mpd(vec![audio_only], true), &uris, &Ladder::default()).unwrap();
        assert!(!text.contains("EXT-X-MEDIA:"));
        assert!(text.ends_with("CODECS=\"opus\"\ns-audio.m3u8\n"), "{text}");
    }
}
