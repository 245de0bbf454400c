//! Playlist Delta Updates (`_HLS_skip=YES|v2`, RFC 8216bis 6.2.5.1 and 4.4.5.2): the oldest
//! media segments, those wholly more than `CAN-SKIP-UNTIL` before the end of the playlist, are
//! replaced by one `EXT-X-SKIP:SKIPPED-SEGMENTS=n` tag.
//!
//! What goes with a skipped segment: its URI line and the tags that apply to it alone
//! (`EXTINF`, `EXT-X-PART`, `EXT-X-PROGRAM-DATE-TIME`, `EXT-X-DISCONTINUITY`, `EXT-X-GAP`,
//! `EXT-X-BYTERANGE`, ...). Kept: the playlist's own tags (in place); the last `EXT-X-MAP`, the
//! last `EXT-X-KEY` and the last `EXT-X-BITRATE` of the skipped range, which still apply to the
//! first segment kept, repeated after `EXT-X-SKIP`; and `EXT-X-DATERANGE` tags, unless the client
//! asked for `v2` and the playlist says `CAN-SKIP-DATERANGES=YES` (then they are skipped too,
//! with an empty `RECENTLY-REMOVED-DATERANGES`: nothing here removes date ranges).

use super::playlist::{attributes, seconds_ms, PlaylistState};
use super::query::Skip;

/// Tags of the playlist itself (not of one segment): kept where they are.
const PLAYLIST_TAGS: &[&str] = &[
    "EXTM3U",
    "EXT-X-VERSION",
    "EXT-X-TARGETDURATION",
    "EXT-X-MEDIA-SEQUENCE",
    "EXT-X-DISCONTINUITY-SEQUENCE",
    "EXT-X-PLAYLIST-TYPE",
    "EXT-X-I-FRAMES-ONLY",
    "EXT-X-PART-INF",
    "EXT-X-SERVER-CONTROL",
    "EXT-X-INDEPENDENT-SEGMENTS",
    "EXT-X-START",
    "EXT-X-DEFINE",
];

/// Tags that apply to every following segment until replaced.
const CARRIED_TAGS: &[&str] = &["EXT-X-MAP", "EXT-X-KEY", "EXT-X-BITRATE"];

fn tag_name(line: &str) -> Option<&str> {
    let tag = line.strip_prefix('#')?;
    Some(tag.split_once(':').map_or(tag, |(n, _)| n))
}

fn duration_ms(line: &str) -> Option<u64> {
    match tag_name(line)? {
        "EXTINF" => {
            let v = line.split_once(':')?.1;
            seconds_ms(v.split_once(',').map_or(v, |(d, _)| d))
        }
        "EXT-X-PART" => attributes(line.split_once(':')?.1)
            .into_iter()
            .find(|(k, _)| *k == "DURATION")
            .and_then(|(_, v)| seconds_ms(v)),
        _ => None,
    }
}

/// The delta update of `text` (whose state is `st`) for `mode`; `None` when the playlist does
/// not allow skipping or nothing is old enough to skip (then the whole playlist is the answer).
pub fn delta_update(text: &str, st: &PlaylistState, mode: Skip) -> Option<String> {
    let skip_until = st.skip_until_ms?;
    let lines: Vec<&str> = text
        .lines()
        .map(|l| l.trim_end_matches('\r').trim())
        .filter(|l| !l.is_empty())
        .collect();
    // Each complete segment: the index of its URI line and its duration.
    let mut segments: Vec<(usize, u64)> = Vec::new();
    let mut pending = 0u64;
    let mut trailing_parts = 0u64;
    for (i, line) in lines.iter().enumerate() {
        if line.starts_with('#') {
            match tag_name(line) {
                Some("EXTINF") => pending = duration_ms(line).unwrap_or(0),
                Some("EXT-X-PART") => trailing_parts += duration_ms(line).unwrap_or(0),
                _ => {}
            }
        } else {
            segments.push((i, pending));
            pending = 0;
            trailing_parts = 0;
        }
    }
    let total: u64 = segments.iter().map(|(_, d)| d).sum::<u64>() + trailing_parts;
    let mut end = 0u64;
    let mut skipped = 0usize;
    let mut last_skipped_line = None;
    for &(i, d) in &segments {
        end += d;
        if total.saturating_sub(end) < skip_until {
            break;
        }
        skipped += 1;
        last_skipped_line = Some(i);
    }
    let last_skipped_line = last_skipped_line?;
    let dateranges_too = mode == Skip::SegmentsAndDateRanges && st.can_skip_dateranges;
    let version = if dateranges_too { 10 } else { 9 };

    let mut head: Vec<String> = Vec::new();
    let mut carried: Vec<(&str, &str)> = Vec::new();
    let mut dateranges: Vec<&str> = Vec::new();
    let mut has_version = false;
    for line in lines.iter().take(last_skipped_line + 1) {
        let Some(name) = tag_name(line) else {
            continue;
        };
        if name == "EXT-X-VERSION" {
            let v: u64 = line
                .split_once(':')
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(1);
            head.push(format!("#EXT-X-VERSION:{}", v.max(version)));
            has_version = true;
        } else if PLAYLIST_TAGS.contains(&name) {
            head.push((*line).to_owned());
        } else if CARRIED_TAGS.contains(&name) {
            // EXT-X-KEY tags of different KEYFORMATs coexist; one of each name is enough here.
            carried.retain(|(n, _)| *n != name);
            carried.push((name, line));
        } else if name == "EXT-X-DATERANGE" && !dateranges_too {
            dateranges.push(line);
        }
    }
    if !has_version {
        head.insert(1.min(head.len()), format!("#EXT-X-VERSION:{version}"));
    }
    let mut out = head.join("\n");
    out.push('\n');
    if dateranges_too {
        out.push_str(&format!(
            "#EXT-X-SKIP:SKIPPED-SEGMENTS={skipped},RECENTLY-REMOVED-DATERANGES=\"\"\n"
        ));
    } else {
        out.push_str(&format!("#EXT-X-SKIP:SKIPPED-SEGMENTS={skipped}\n"));
    }
    for (_, line) in &carried {
        out.push_str(line);
        out.push('\n');
    }
    for line in &dateranges {
        out.push_str(line);
        out.push('\n');
    }
    for line in lines.iter().skip(last_skipped_line + 1) {
        out.push_str(line);
        out.push('\n');
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lowlatency::playlist::parse_playlist;

    const LONG: &str = "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:2\n\
        #EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=5.000,PART-HOLD-BACK=1.500\n\
        #EXT-X-PART-INF:PART-TARGET=0.500\n#EXT-X-MEDIA-SEQUENCE:10\n\
        #EXT-X-MAP:URI=\"s-init.m4v\"\n\
        #EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:20.000Z\n#EXTINF:2.000,\ns-0.m4v\n\
        #EXT-X-DATERANGE:ID=\"ad\",START-DATE=\"2023-11-14T22:13:21.000Z\"\n\
        #EXTINF:2.000,\ns-2000.m4v\n\
        #EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"s-init2.m4v\"\n#EXTINF:2.000,\ns-4000.m4v\n\
        #EXTINF:2.000,\ns-6000.m4v\n\
        #EXT-X-PART:DURATION=0.500,URI=\"s-p8000.m4s\",INDEPENDENT=YES\n\
        #EXT-X-PART:DURATION=0.500,URI=\"s-p8500.m4s\"\n#EXTINF:1.000,\ns-8000.m4v\n\
        #EXT-X-PART:DURATION=0.500,URI=\"s-p9000.m4s\",INDEPENDENT=YES\n\
        #EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"s-p9500.m4s\"\n";

    #[test]
    fn skips_segments_wholly_before_the_skip_boundary() {
        // Total 9.5 s; boundary 5 s: segments ending at 2, 4 (<= 4.5) go; the one ending at 6
        // (3.5 s before the end) stays.
        let st = parse_playlist(LONG).unwrap();
        let d = delta_update(LONG, &st, Skip::Segments).unwrap();
        assert_eq!(
            d,
            "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:2\n\
             #EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=5.000,PART-HOLD-BACK=1.500\n\
             #EXT-X-PART-INF:PART-TARGET=0.500\n#EXT-X-MEDIA-SEQUENCE:10\n\
             #EXT-X-SKIP:SKIPPED-SEGMENTS=2\n#EXT-X-MAP:URI=\"s-init.m4v\"\n\
             #EXT-X-DATERANGE:ID=\"ad\",START-DATE=\"2023-11-14T22:13:21.000Z\"\n\
             #EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"s-init2.m4v\"\n#EXTINF:2.000,\ns-4000.m4v\n\
             #EXTINF:2.000,\ns-6000.m4v\n\
             #EXT-X-PART:DURATION=0.500,URI=\"s-p8000.m4s\",INDEPENDENT=YES\n\
             #EXT-X-PART:DURATION=0.500,URI=\"s-p8500.m4s\"\n#EXTINF:1.000,\ns-8000.m4v\n\
             #EXT-X-PART:DURATION=0.500,URI=\"s-p9000.m4s\",INDEPENDENT=YES\n\
             #EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"s-p9500.m4s\"\n"
        );
        // The delta still describes the same live edge.
        let ds = parse_playlist(&d).unwrap();
        assert_eq!(ds.media_sequence + 2 + ds.segments, st.next_msn());
        assert_eq!(ds.trailing_parts, st.trailing_parts);
    }

    #[test]
    fn v2_skips_date_ranges_only_when_allowed() {
        let allowed = LONG.replace(
            "CAN-SKIP-UNTIL=5.000",
            "CAN-SKIP-UNTIL=5.000,CAN-SKIP-DATERANGES=YES",
        );
        let st = parse_playlist(&allowed).unwrap();
        let d = delta_update(&allowed, &st, Skip::SegmentsAndDateRanges).unwrap();
        assert!(d.starts_with("#EXTM3U\n#EXT-X-VERSION:10\n"), "{d}");
        assert!(d.contains(
            "#EXT-X-SKIP:SKIPPED-SEGMENTS=2,RECENTLY-REMOVED-DATERANGES=\"\"\n#EXT-X-MAP:URI=\"s-init.m4v\"\n#EXT-X-DISCONTINUITY\n"
        ));
        assert!(!d.contains("DATERANGE:"));
        // Without CAN-SKIP-DATERANGES, v2 is a plain segment skip.
        let st = parse_playlist(LONG).unwrap();
        let d = delta_update(LONG, &st, Skip::SegmentsAndDateRanges).unwrap();
        assert!(d.contains("#EXT-X-DATERANGE:ID=\"ad\""));
        assert!(d.contains("#EXT-X-SKIP:SKIPPED-SEGMENTS=2\n"));
    }

    #[test]
    fn nothing_to_skip_or_no_permission_means_the_whole_playlist() {
        let st = parse_playlist(LONG).unwrap();
        let no_skip = PlaylistState {
            skip_until_ms: None,
            ..st.clone()
        };
        assert_eq!(delta_update(LONG, &no_skip, Skip::Segments), None);
        let far = PlaylistState {
            skip_until_ms: Some(60_000),
            ..st
        };
        assert_eq!(delta_update(LONG, &far, Skip::Segments), None);
        assert_eq!(delta_update("", &far, Skip::Segments), None);
    }

    #[test]
    fn a_version_below_nine_is_raised_and_a_missing_one_added() {
        let old = LONG.replace("#EXT-X-VERSION:9\n", "#EXT-X-VERSION:6\n");
        let st = parse_playlist(&old).unwrap();
        assert!(delta_update(&old, &st, Skip::Segments)
            .unwrap()
            .starts_with("#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:2\n"));
        let none = LONG.replace("#EXT-X-VERSION:9\n", "");
        assert!(delta_update(&none, &st, Skip::Segments)
            .unwrap()
            .starts_with("#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:2\n"));
    }
}
