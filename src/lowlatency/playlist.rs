//! What a media playlist says about its live edge, and whether it answers a blocking request.

use super::query::LlQuery;

/// The parts of a media playlist that blocking reload and preload hints depend on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlaylistState {
    /// `EXT-X-MEDIA-SEQUENCE` (0 when absent).
    pub media_sequence: u64,
    /// Complete media segments listed (URI lines).
    pub segments: u64,
    /// `EXT-X-PART` tags after the last complete segment: parts `0..trailing_parts` of
    /// segment `media_sequence + segments`.
    pub trailing_parts: u64,
    /// `EXT-X-TARGETDURATION`, in milliseconds.
    pub target_duration_ms: u64,
    /// `EXT-X-PART-INF:PART-TARGET`, in milliseconds.
    pub part_target_ms: Option<u64>,
    pub endlist: bool,
    /// `EXT-X-PRELOAD-HINT:TYPE=PART`'s URI.
    pub hint: Option<String>,
    /// `EXT-X-SERVER-CONTROL:CAN-SKIP-UNTIL`, in milliseconds.
    pub skip_until_ms: Option<u64>,
    /// `EXT-X-SERVER-CONTROL:CAN-SKIP-DATERANGES=YES`.
    pub can_skip_dateranges: bool,
}

impl PlaylistState {
    /// The media sequence number of the segment being written (its parts are the trailing ones).
    pub fn next_msn(&self) -> u64 {
        self.media_sequence.saturating_add(self.segments)
    }

    /// RFC 8216bis 6.2.5.2's Advance Part Limit: how far past the last part a request may ask.
    fn advance_part_limit(&self) -> Option<u64> {
        let pt = self.part_target_ms?.max(1);
        Some(if pt < 1000 { 3000u64.div_ceil(pt) } else { 3 })
    }
}

/// The attributes of a tag's attribute list (`KEY=VALUE,KEY="quoted, value"`), quotes removed.
pub fn attributes(list: &str) -> Vec<(&str, &str)> {
    let mut out = Vec::new();
    let mut rest = list;
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let (value, next) = if let Some(q) = after.strip_prefix('"') {
            match q.split_once('"') {
                Some((v, n)) => (v, n.strip_prefix(',').unwrap_or(n)),
                None => (q, ""),
            }
        } else {
            match after.split_once(',') {
                Some((v, n)) => (v, n),
                None => (after, ""),
            }
        };
        out.push((key.trim(), value));
        rest = next;
    }
    out
}

fn attr<'a>(list: &'a str, name: &str) -> Option<&'a str> {
    attributes(list)
        .into_iter()
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Decimal seconds (`6`, `6.000`, `0.5`) to milliseconds.
pub fn seconds_ms(s: &str) -> Option<u64> {
    let s = s.trim();
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let all_digits = |x: &str| x.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(int) || !all_digits(frac) || int.len() > 12 {
        return None;
    }
    let whole: u64 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let mut ms = 0u64;
    let mut scale = 100u64;
    for b in frac.bytes().take(3) {
        ms += u64::from(b - b'0') * scale;
        scale /= 10;
    }
    whole.checked_mul(1000)?.checked_add(ms)
}

/// Reads a media playlist; `None` when the text is not one (no `#EXTM3U` first line or no
/// `EXT-X-TARGETDURATION`, e.g. a multivariant playlist).
pub fn parse_playlist(text: &str) -> Option<PlaylistState> {
    let mut lines = text.lines().map(|l| l.trim_end_matches('\r'));
    if lines.next()?.trim() != "#EXTM3U" {
        return None;
    }
    let mut st = PlaylistState::default();
    let mut target = None;
    for line in lines {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let Some(tag) = line.strip_prefix('#') else {
            st.segments += 1;
            st.trailing_parts = 0;
            st.hint = None;
            continue;
        };
        let (name, value) = tag.split_once(':').unwrap_or((tag, ""));
        match name {
            "EXT-X-TARGETDURATION" => target = value.trim().parse::<u64>().ok(),
            "EXT-X-MEDIA-SEQUENCE" => st.media_sequence = value.trim().parse().ok()?,
            "EXT-X-PART" => st.trailing_parts += 1,
            "EXT-X-ENDLIST" => st.endlist = true,
            "EXT-X-STREAM-INF" => return None,
            "EXT-X-PART-INF" => st.part_target_ms = attr(value, "PART-TARGET").and_then(seconds_ms),
            "EXT-X-PRELOAD-HINT" if attr(value, "TYPE") == Some("PART") => {
                st.hint = attr(value, "URI").map(str::to_owned);
            }
            "EXT-X-SERVER-CONTROL" => {
                st.skip_until_ms = attr(value, "CAN-SKIP-UNTIL").and_then(seconds_ms);
                st.can_skip_dateranges = attr(value, "CAN-SKIP-DATERANGES") == Some("YES");
            }
            _ => {}
        }
    }
    st.target_duration_ms = target?.saturating_mul(1000).max(1000);
    Some(st)
}

/// What a blocking request gets from a playlist state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The playlist has what was asked (or never will: it ended): answer now.
    Ready,
    /// Hold the request until the playlist changes (at most three target durations).
    Wait,
    /// More than the spec lets a client ask ahead: 400.
    TooFarAhead,
}

/// RFC 8216bis 6.2.5.2: ready once the playlist holds segment `_HLS_msn` (complete), or with
/// `_HLS_part`, part `_HLS_part` of it or anything later; 400 for an msn beyond the last
/// segment's plus two or a part beyond the last part by the Advance Part Limit.
pub fn decide(q: &LlQuery, st: &PlaylistState) -> Decision {
    let Some(msn) = q.msn else {
        return Decision::Ready;
    };
    if st.endlist {
        return Decision::Ready;
    }
    let next = st.next_msn();
    if msn < next {
        return Decision::Ready;
    }
    if msn > next.saturating_add(1) {
        return Decision::TooFarAhead;
    }
    match (msn == next, q.part) {
        (true, Some(p)) if p < st.trailing_parts => Decision::Ready,
        (true, Some(p)) => match st.advance_part_limit() {
            Some(limit) if p >= st.trailing_parts.saturating_add(limit) => Decision::TooFarAhead,
            _ => Decision::Wait,
        },
        _ => Decision::Wait,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The segmenter's own LL playlist (its test checks it is what it writes).
    const LIVE: &str = crate::dash::m3u8::LL_EXAMPLE;

    fn q(msn: u64, part: Option<u64>) -> LlQuery {
        LlQuery {
            msn: Some(msn),
            part,
            skip: None,
        }
    }

    #[test]
    fn reads_the_segmenters_ll_playlist() {
        let st = parse_playlist(LIVE).unwrap();
        assert_eq!(
            st,
            PlaylistState {
                media_sequence: 4,
                segments: 2,
                trailing_parts: 1,
                target_duration_ms: 1000,
                part_target_ms: Some(500),
                endlist: false,
                hint: Some("s-p2480.m4s".into()),
                skip_until_ms: Some(6000),
                can_skip_dateranges: false,
            }
        );
        assert_eq!(st.next_msn(), 6);
    }

    #[test]
    fn multivariant_and_garbage_are_not_media_playlists() {
        assert_eq!(parse_playlist(""), None);
        assert_eq!(parse_playlist("hello\n#EXT-X-TARGETDURATION:2\n"), None);
        assert_eq!(
            parse_playlist("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv.m3u8\n"),
            None
        );
        assert_eq!(parse_playlist("#EXTM3U\n#EXTINF:1,\na.ts\n"), None);
        assert_eq!(
            parse_playlist("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:x\n"),
            None
        );
    }

    #[test]
    fn blocking_decisions_follow_the_spec() {
        let st = parse_playlist(LIVE).unwrap();
        // Segments 4 and 5 are complete; segment 6 has part 0.
        assert_eq!(decide(&LlQuery::default(), &st), Decision::Ready);
        assert_eq!(decide(&q(5, None), &st), Decision::Ready);
        assert_eq!(decide(&q(0, Some(9)), &st), Decision::Ready);
        assert_eq!(decide(&q(6, None), &st), Decision::Wait);
        assert_eq!(decide(&q(6, Some(0)), &st), Decision::Ready);
        assert_eq!(decide(&q(6, Some(1)), &st), Decision::Wait);
        assert_eq!(decide(&q(7, None), &st), Decision::Wait);
        assert_eq!(decide(&q(7, Some(2)), &st), Decision::Wait);
        // Beyond the last segment (5) plus two.
        assert_eq!(decide(&q(8, None), &st), Decision::TooFarAhead);
        // Part target 0.5 s: the Advance Part Limit is 6 parts past the last (0).
        assert_eq!(decide(&q(6, Some(6)), &st), Decision::Wait);
        assert_eq!(decide(&q(6, Some(7)), &st), Decision::TooFarAhead);
        let ended = PlaylistState {
            endlist: true,
            ..st.clone()
        };
        assert_eq!(decide(&q(100, None), &ended), Decision::Ready);
    }

    #[test]
    fn attribute_lists_and_seconds() {
        assert_eq!(
            attributes("TYPE=PART,URI=\"a,b.m4s\",X=1"),
            vec![("TYPE", "PART"), ("URI", "a,b.m4s"), ("X", "1")]
        );
        assert_eq!(seconds_ms("6.000"), Some(6000));
        assert_eq!(seconds_ms("0.5"), Some(500));
        assert_eq!(seconds_ms("12"), Some(12000));
        assert_eq!(seconds_ms("1.23456"), Some(1234));
        assert_eq!(seconds_ms("x"), None);
        assert_eq!(seconds_ms("."), None);
    }
}
