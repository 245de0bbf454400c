//! The naming contract between the LL-HLS segmenter (which writes the files) and the http
//! handler (which serves them). Every name is relative to one directory (`hls_path`, or the
//! stream's directory with `hls_nested`):
//!
//! - media playlists: `<stem>video.m3u8`, `<stem>audio.m3u8`;
//! - video parts: `<stem>p<t>.m4s`;
//! - audio parts: `<stem>p<t>.m4a` or `<stem>p<t>-<timescale>.m4a`;
//!
//! where `<stem>` is `<name>-` (flat) or empty (nested) and `<t>` is the part's start in its
//! track's timescale (decimal, strictly increasing within a stream). Part URIs in playlists are
//! these names, relative to the playlist.

/// The track a media playlist or part belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Track {
    Video,
    Audio,
}

impl Track {
    fn word(self) -> &'static str {
        match self {
            Track::Video => "video",
            Track::Audio => "audio",
        }
    }
}

/// `<stem>video.m3u8` or `<stem>audio.m3u8`.
pub fn media_playlist_name(stem: &str, track: Track) -> String {
    format!("{stem}{}.m3u8", track.word())
}

/// A part's file name: `<stem>p<t>.m4s` (video), `<stem>p<t>.m4a` or, with `timescale`,
/// `<stem>p<t>-<timescale>.m4a` (audio).
pub fn part_name(stem: &str, track: Track, t: u64, timescale: Option<u32>) -> String {
    match (track, timescale) {
        (Track::Video, _) => format!("{stem}p{t}.m4s"),
        (Track::Audio, None) => format!("{stem}p{t}.m4a"),
        (Track::Audio, Some(ts)) => format!("{stem}p{t}-{ts}.m4a"),
    }
}

/// What a part's file name says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartName {
    /// `<name>-` or empty.
    pub stem: String,
    pub track: Track,
    /// The part's start in its track's timescale.
    pub t: u64,
}

impl PartName {
    /// The name of the media playlist that lists this part (same directory).
    pub fn playlist(&self) -> String {
        media_playlist_name(&self.stem, self.track)
    }
}

fn digits(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Reads a part's file name (no directory); `None` for any other name.
pub fn parse_part_name(file: &str) -> Option<PartName> {
    let (base, track) = if let Some(b) = file.strip_suffix(".m4s") {
        (b, Track::Video)
    } else if let Some(b) = file.strip_suffix(".m4a") {
        // An optional `-<timescale>` suffix; `<stem>p<t>` itself never ends in `-<digits>`.
        let b = match b.rsplit_once('-') {
            Some((head, ts)) if digits(ts).is_some() && head.contains('p') => head,
            _ => b,
        };
        (b, Track::Audio)
    } else {
        return None;
    };
    let (stem, t) = base.rsplit_once('p')?;
    let t = digits(t)?;
    if !(stem.is_empty() || stem.ends_with('-')) || stem.contains('/') {
        return None;
    }
    Some(PartName {
        stem: stem.to_owned(),
        track,
        t,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_flat_and_nested() {
        for stem in ["s-", "", "p5-", "my-stream-"] {
            for (track, ts) in [
                (Track::Video, None),
                (Track::Audio, None),
                (Track::Audio, Some(48000)),
            ] {
                let n = part_name(stem, track, 123_456, ts);
                let p = parse_part_name(&n).unwrap();
                assert_eq!(
                    (p.stem.as_str(), p.track, p.t),
                    (stem, track, 123_456),
                    "{n}"
                );
                assert_eq!(p.playlist(), media_playlist_name(stem, track));
            }
        }
        assert_eq!(part_name("s-", Track::Video, 2480, None), "s-p2480.m4s");
        assert_eq!(
            parse_part_name("s-p2480.m4s").unwrap().playlist(),
            "s-video.m3u8"
        );
        assert_eq!(
            parse_part_name("p1000-44100.m4a").unwrap().playlist(),
            "audio.m3u8"
        );
    }

    #[test]
    fn other_names_are_not_parts() {
        for n in [
            "s-1000.m4v",
            "s-init.m4v",
            "s-video.m3u8",
            "s-1000.m4s",
            "sp1000.m4s",
            "s-p.m4s",
            "s-p12a.m4s",
            "s-p-5.m4a",
            "x/p1000.m4s",
            "s-p99999999999999999999999.m4s",
            "",
        ] {
            assert_eq!(parse_part_name(n), None, "{n}");
        }
    }
}
