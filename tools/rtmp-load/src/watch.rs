//! HLS and DASH availability probes: poll a playlist / MPD on disk every few milliseconds and
//! note when each segment is first announced, whether its file exists at that moment, and how
//! late it is announced compared with the wall time its last frame was published.
//!
//! The publisher is `ffmpeg -re` started at `t0` (Unix ms) on a file whose timestamps start
//! at 0, so the frame at media time `p` is sent at about `t0 + p`; a segment ending at media
//! time `e` (the sum of the durations before it and its own) can exist at `t0 + e` at the
//! earliest. The announced-late figure is `first_seen - (t0 + e)` (it includes ffmpeg's own
//! start-up, the same for every server).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub fn unix_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

/// One segment as a probe saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    /// Media end time (ms) relative to the first segment's start.
    pub end_ms: f64,
    /// Unix ms when it first appeared in the playlist / MPD.
    pub first_seen: f64,
    /// Its file existed (and was not empty) when it first appeared.
    pub file_existed: bool,
    /// Unix ms when the file was first seen to exist (if it was late).
    pub file_seen: Option<f64>,
    pub path: PathBuf,
}

pub struct WatchResult {
    pub segments: Vec<Seen>,
    pub polls: u64,
    pub parse_errors: u64,
}

fn exists_nonempty(p: &Path) -> bool {
    fs::metadata(p).map(|m| m.len() > 0).unwrap_or(false)
}

/// Polls `playlist` every `interval` until `deadline`.
pub fn hls(playlist: &Path, interval: Duration, deadline: Instant) -> WatchResult {
    let dir = playlist.parent().unwrap_or(Path::new(".")).to_path_buf();
    // media sequence -> (duration ms, seen)
    let mut by_seq: BTreeMap<u64, (f64, Seen)> = BTreeMap::new();
    let mut polls = 0;
    let mut parse_errors = 0;
    while Instant::now() < deadline {
        polls += 1;
        if let Ok(text) = fs::read_to_string(playlist) {
            let now = unix_ms();
            let mut seq: Option<u64> = None;
            let mut dur: Option<f64> = None;
            let mut ok = text.starts_with("#EXTM3U");
            for line in text.lines() {
                let line = line.trim();
                if let Some(v) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
                    seq = v.trim().parse().ok();
                } else if let Some(v) = line.strip_prefix("#EXTINF:") {
                    dur = v.split(',').next().and_then(|d| d.trim().parse().ok());
                } else if !line.is_empty() && !line.starts_with('#') {
                    let (Some(s), Some(d)) = (seq, dur.take()) else {
                        ok = false;
                        break;
                    };
                    by_seq.entry(s).or_insert_with(|| {
                        let path = dir.join(line.split('?').next().unwrap_or(line));
                        (
                            d * 1000.0,
                            Seen {
                                end_ms: 0.0,
                                first_seen: now,
                                file_existed: exists_nonempty(&path),
                                file_seen: None,
                                path,
                            },
                        )
                    });
                    seq = Some(s + 1);
                }
            }
            if !ok {
                parse_errors += 1;
            }
        }
        check_late_files(by_seq.values_mut().map(|(_, s)| s));
        std::thread::sleep(interval);
    }
    // End times: durations summed from the first segment seen (assumed to start at 0).
    let mut end = 0.0;
    let mut segments = Vec::new();
    for (_, (d, mut s)) in by_seq {
        end += d;
        s.end_ms = end;
        segments.push(s);
    }
    WatchResult {
        segments,
        polls,
        parse_errors,
    }
}

fn check_late_files<'a>(segs: impl Iterator<Item = &'a mut Seen>) {
    for s in segs {
        if !s.file_existed && s.file_seen.is_none() && exists_nonempty(&s.path) {
            s.file_seen = Some(unix_ms());
        }
    }
}

/// The attributes of one XML tag (`key="value"`), entities unescaped.
fn attrs(tag: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = tag;
    while let Some(eq) = rest.find("=\"") {
        let key = rest[..eq]
            .rsplit(|c: char| c.is_whitespace())
            .next()
            .unwrap_or("")
            .to_string();
        let after = &rest[eq + 2..];
        let Some(close) = after.find('"') else {
            break;
        };
        let val = after[..close]
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&");
        out.push((key, val));
        rest = &after[close + 1..];
    }
    out
}

fn attr<'a>(a: &'a [(String, String)], key: &str) -> Option<&'a str> {
    a.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// A segment listed in an MPD: file name, start and end in the template's timescale.
#[derive(Debug, PartialEq)]
pub struct MpdSegment {
    pub file: String,
    /// Start and end in ms, relative to nothing in particular (the MPD's own timeline).
    pub start_ms: f64,
    pub end_ms: f64,
    /// Which AdaptationSet (index), so each can be made relative to its own first segment.
    pub set: usize,
}

/// The segments of every AdaptationSet of a SegmentTimeline MPD (`$Time$`, `$Number$` and
/// `$RepresentationID$` templates). `None` if it does not look like a complete MPD.
pub fn parse_mpd(text: &str) -> Option<Vec<MpdSegment>> {
    if !text.contains("</MPD>") {
        return None;
    }
    let mut out = Vec::new();
    for (set_idx, set) in text.split("<AdaptationSet").skip(1).enumerate() {
        let set = set.split("</AdaptationSet>").next().unwrap_or(set);
        let mut media = None;
        let mut timescale = 1.0f64;
        let mut start_number = 1u64;
        let mut rep_id = String::new();
        let mut timeline: Vec<(u64, u64)> = Vec::new();
        let mut t_next = 0u64;
        for tag in set.split('<').skip(1) {
            let tag = tag.split('>').next().unwrap_or("");
            let name = tag.split(|c: char| c.is_whitespace() || c == '/').next()?;
            let a = attrs(tag);
            match name {
                "SegmentTemplate" => {
                    media = attr(&a, "media").map(str::to_string);
                    timescale = attr(&a, "timescale")
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(1.0);
                    start_number = attr(&a, "startNumber")
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(1);
                }
                "Representation" if rep_id.is_empty() => {
                    rep_id = attr(&a, "id").unwrap_or("").to_string();
                }
                "S" => {
                    let d: u64 = attr(&a, "d")?.parse().ok()?;
                    let r: i64 = attr(&a, "r").and_then(|v| v.parse().ok()).unwrap_or(0);
                    if let Some(t) = attr(&a, "t").and_then(|v| v.parse().ok()) {
                        t_next = t;
                    }
                    for _ in 0..=r.max(0) {
                        timeline.push((t_next, d));
                        t_next += d;
                    }
                }
                _ => {}
            }
        }
        let media = media?;
        let ts = if timescale > 0.0 { timescale } else { 1.0 };
        for (i, (t, d)) in timeline.into_iter().enumerate() {
            let file = media
                .replace("$RepresentationID$", &rep_id)
                .replace("$Time$", &t.to_string())
                .replace("$Number$", &(start_number + i as u64).to_string());
            out.push(MpdSegment {
                file,
                start_ms: t as f64 * 1000.0 / ts,
                end_ms: (t + d) as f64 * 1000.0 / ts,
                set: set_idx,
            });
        }
    }
    Some(out)
}

/// Polls `mpd` every `interval` until `deadline`.
pub fn dash(mpd: &Path, interval: Duration, deadline: Instant) -> WatchResult {
    let dir = mpd.parent().unwrap_or(Path::new(".")).to_path_buf();
    // file -> (set, start ms, seen)
    let mut seen: BTreeMap<String, (usize, f64, Seen)> = BTreeMap::new();
    let mut polls = 0;
    let mut parse_errors = 0;
    while Instant::now() < deadline {
        polls += 1;
        if let Ok(text) = fs::read_to_string(mpd) {
            let now = unix_ms();
            match parse_mpd(&text) {
                Some(segs) => {
                    for s in segs {
                        seen.entry(s.file.clone()).or_insert_with(|| {
                            let path = dir.join(&s.file);
                            (
                                s.set,
                                s.start_ms,
                                Seen {
                                    end_ms: s.end_ms,
                                    first_seen: now,
                                    file_existed: exists_nonempty(&path),
                                    file_seen: None,
                                    path,
                                },
                            )
                        });
                    }
                }
                None => parse_errors += 1,
            }
        }
        check_late_files(seen.values_mut().map(|(_, _, s)| s));
        std::thread::sleep(interval);
    }
    // Make each set's times relative to its first segment's start.
    let mut first: BTreeMap<usize, f64> = BTreeMap::new();
    for (set, start, _) in seen.values() {
        let f = first.entry(*set).or_insert(*start);
        if *start < *f {
            *f = *start;
        }
    }
    let mut segments: Vec<Seen> = seen
        .into_values()
        .map(|(set, _, mut s)| {
            s.end_ms -= first[&set];
            s
        })
        .collect();
    segments.sort_by(|a, b| a.first_seen.total_cmp(&b.first_seen));
    WatchResult {
        segments,
        polls,
        parse_errors,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mpd_timeline_with_repeats_and_gaps() {
        let text = r#"<?xml version="1.0"?>
<MPD><Period>
<AdaptationSet id="0" contentType="video">
  <SegmentTemplate timescale="90000" presentationTimeOffset="0" initialization="x-init.m4v" media="x-$Time$.m4v">
    <SegmentTimeline>
      <S t="0" d="180000" r="1"/>
      <S d="90000"/>
      <S t="900000" d="180000"/>
    </SegmentTimeline>
  </SegmentTemplate>
  <Representation id="v" codecs="avc1" bandwidth="1"/>
</AdaptationSet>
<AdaptationSet id="1"><Representation id="a_AAC"><SegmentTemplate timescale="1000" media="$RepresentationID$-$Time$.m4a"><SegmentTimeline><S t="5" d="2000"/></SegmentTimeline></SegmentTemplate></Representation></AdaptationSet>
</Period></MPD>"#;
        let s = parse_mpd(text).unwrap();
        let files: Vec<&str> = s.iter().map(|s| s.file.as_str()).collect();
        assert_eq!(
            files,
            [
                "x-0.m4v",
                "x-180000.m4v",
                "x-360000.m4v",
                "x-900000.m4v",
                "a_AAC-5.m4a"
            ]
        );
        assert_eq!(s[2].end_ms, 5000.0);
        assert_eq!(s[4].set, 1);
        assert!(parse_mpd("<MPD><AdaptationSet>").is_none());
    }
}
