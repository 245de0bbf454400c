//! Checks for Enhanced RTMP codecs in the fMP4 outputs (DASH, fMP4 HLS): the RFC 6381 `codecs`
//! strings a player needs, derived independently from the init segments' sample entries and
//! compared with what was published; the MPD's tracks; ffmpeg 9's view of the decoded streams;
//! and an HTTP fetcher that gets every listed segment once while it is listed.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use super::dash::{now_epoch, parse_mpd, Mpd, Representation, SegKind, Stream, CHANNEL_SCHEMES};
use super::ffmpeg9::{Decode9, Media, Video, SAMPLE_RATE};
use super::hls::{http_get, resolve_path};

/// Dolby's `AudioChannelConfiguration` schemes (AC-3, E-AC-3): the value is a 16-bit channel
/// mask in hex (`A000`: L+R, `4000`: C, `F801`: 5.1).
pub const DOLBY_CHANNEL_SCHEMES: &[&str] = &[
    "tag:dolby.com,2014:dash:audio_channel_configuration:2011",
    "urn:dolby:dash:audio_channel_configuration:2011",
];

// ---------------------------------------------------------------------------------------------
// ISO-BMFF

/// Top-level boxes of `data`: (type, payload). Stops at the first malformed box.
pub fn boxes(data: &[u8]) -> Vec<(String, &[u8])> {
    scan_boxes(data).0
}

/// [`boxes`], and how many bytes from the start the well-formed boxes cover.
fn scan_boxes(data: &[u8]) -> (Vec<(String, &[u8])>, usize) {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at + 8 <= data.len() {
        let h = &data[at..at + 8];
        let mut size = u32::from_be_bytes([h[0], h[1], h[2], h[3]]) as usize;
        let ty = String::from_utf8_lossy(&h[4..8]).into_owned();
        let mut header = 8;
        if size == 1 {
            let Some(l) = data.get(at + 8..at + 16) else {
                break;
            };
            size = u64::from_be_bytes(l.try_into().unwrap_or([0; 8])) as usize;
            header = 16;
        } else if size == 0 {
            size = data.len() - at;
        }
        if size < header || size > data.len() - at {
            break;
        }
        out.push((ty, &data[at + header..at + size]));
        at += size;
    }
    (out, at)
}

/// The body of the first MPEG-4 descriptor with `tag` in a descriptor list (descending into
/// ES_Descriptor and DecoderConfigDescriptor), as in an `esds` box.
fn find_descriptor(p: &[u8], tag: u8) -> Option<&[u8]> {
    let mut i = 0;
    while i < p.len() {
        let t = p[i];
        i += 1;
        let mut len = 0usize;
        for _ in 0..4 {
            let b = *p.get(i)?;
            i += 1;
            len = (len << 7) | usize::from(b & 0x7f);
            if b & 0x80 == 0 {
                break;
            }
        }
        let body = p.get(i..i + len)?;
        if t == tag {
            return Some(body);
        }
        let inner = match t {
            // ES_Descriptor: ES_ID(2), flags(1), then optional fields by those flags.
            0x03 => {
                let flags = *body.get(2)?;
                let mut j = 3;
                if flags & 0x80 != 0 {
                    j += 2;
                }
                if flags & 0x40 != 0 {
                    j += 1 + usize::from(*body.get(j)?);
                }
                if flags & 0x20 != 0 {
                    j += 2;
                }
                body.get(j..)
            }
            // DecoderConfigDescriptor: 13 bytes of fields, then its descriptors.
            0x04 => body.get(13..),
            _ => None,
        };
        if let Some(found) = inner.and_then(|d| find_descriptor(d, tag)) {
            return Some(found);
        }
        i += len;
    }
    None
}

/// The payload of the first box of type `ty` among the top-level boxes of `data`.
fn child<'a>(data: &'a [u8], ty: &str) -> Option<&'a [u8]> {
    boxes(data)
        .into_iter()
        .find(|(t, _)| t == ty)
        .map(|(_, p)| p)
}

/// A track's first sample entry, as an init segment describes it.
#[derive(Debug, Clone, Default)]
pub struct SampleEntry {
    /// `hdlr` handler type: `vide`, `soun`.
    pub handler: String,
    /// `avc1`, `hvc1`, `hev1`, `av01`, `vp09`, `mp4a`, `Opus`, `fLaC`, `ac-3`, `ec-3`, ...
    pub fourcc: String,
    pub width: u16,
    pub height: u16,
    pub channels: u16,
    pub sample_rate: u32,
    /// Child boxes of the sample entry (`hvcC`, `dOps`, `colr`, ...) with their payloads.
    pub children: Vec<(String, Vec<u8>)>,
}

impl SampleEntry {
    pub fn child(&self, ty: &str) -> Option<&[u8]> {
        self.children
            .iter()
            .find(|(t, _)| t == ty)
            .map(|(_, p)| p.as_slice())
    }

    pub fn child_types(&self) -> Vec<&str> {
        self.children.iter().map(|(t, _)| t.as_str()).collect()
    }
}

/// Every track's first sample entry of an init segment (`moov/trak/mdia/minf/stbl/stsd`).
pub fn sample_entries(init: &[u8]) -> Result<Vec<SampleEntry>, String> {
    let moov = child(init, "moov").ok_or_else(|| {
        let types: Vec<String> = boxes(init).into_iter().map(|(t, _)| t).collect();
        format!(
            "no moov box (top-level boxes {types:?}, {} bytes)",
            init.len()
        )
    })?;
    let mut out = Vec::new();
    for (t, trak) in boxes(moov) {
        if t != "trak" {
            continue;
        }
        let mdia = child(trak, "mdia").ok_or("a trak without mdia")?;
        let handler = child(mdia, "hdlr")
            .and_then(|h| h.get(8..12))
            .map(|h| String::from_utf8_lossy(h).into_owned())
            .unwrap_or_default();
        let stsd = child(mdia, "minf")
            .and_then(|m| child(m, "stbl"))
            .and_then(|s| child(s, "stsd"))
            .ok_or_else(|| format!("{handler} trak without minf/stbl/stsd"))?;
        // Full box header (4) + entry_count (4), then the entries.
        let entries = boxes(stsd.get(8..).unwrap_or_default());
        let Some((fourcc, e)) = entries.into_iter().next() else {
            return Err(format!("{handler} trak: stsd has no sample entry"));
        };
        let mut s = SampleEntry {
            handler: handler.clone(),
            fourcc,
            ..SampleEntry::default()
        };
        let children_at = match handler.as_str() {
            "vide" => {
                let b = e
                    .get(..78)
                    .ok_or("visual sample entry shorter than 78 bytes")?;
                s.width = u16::from_be_bytes([b[24], b[25]]);
                s.height = u16::from_be_bytes([b[26], b[27]]);
                78
            }
            "soun" => {
                let b = e
                    .get(..28)
                    .ok_or("audio sample entry shorter than 28 bytes")?;
                s.channels = u16::from_be_bytes([b[16], b[17]]);
                s.sample_rate = u32::from_be_bytes([b[24], b[25], b[26], b[27]]) >> 16;
                28
            }
            _ => e.len(),
        };
        s.children = boxes(&e[children_at.min(e.len())..])
            .into_iter()
            .map(|(t, p)| (t, p.to_vec()))
            .collect();
        out.push(s);
    }
    Ok(out)
}

/// The RFC 6381 `codecs` string a sample entry calls for (ISO/IEC 14496-15 annex E for
/// AVC/HEVC, the AV1-ISOBMFF and VP-codec-ISOBMFF bindings, `opus`, `flac`, `ac-3`, `ec-3`,
/// `mp4a.40.<aot>`). Video strings are the short forms (no optional colour fields).
pub fn codecs_of_entry(e: &SampleEntry) -> Result<String, String> {
    let need = |ty: &str| -> Result<&[u8], String> {
        e.child(ty).ok_or_else(|| {
            format!(
                "sample entry {} has no {ty} box (its boxes: {:?})",
                e.fourcc,
                e.child_types()
            )
        })
    };
    let short = |p: &[u8], n: usize, ty: &str| -> Result<(), String> {
        if p.len() < n {
            Err(format!("{ty} is {} bytes, shorter than {n}", p.len()))
        } else {
            Ok(())
        }
    };
    Ok(match e.fourcc.as_str() {
        "avc1" | "avc3" => {
            let p = need("avcC")?;
            short(p, 4, "avcC")?;
            format!("{}.{:02x}{:02x}{:02x}", e.fourcc, p[1], p[2], p[3])
        }
        "hvc1" | "hev1" => {
            let p = need("hvcC")?;
            short(p, 13, "hvcC")?;
            let space = ["", "A", "B", "C"][usize::from(p[1] >> 6)];
            let tier = if p[1] & 0x20 != 0 { 'H' } else { 'L' };
            let compat = u32::from_be_bytes([p[2], p[3], p[4], p[5]]).reverse_bits();
            let mut s = format!(
                "{}.{space}{}.{compat:X}.{tier}{}",
                e.fourcc,
                p[1] & 0x1f,
                p[12]
            );
            let mut cons = p[6..12].to_vec();
            while cons.last() == Some(&0) {
                cons.pop();
            }
            for b in cons {
                s.push_str(&format!(".{b:X}"));
            }
            s
        }
        "av01" => {
            let p = need("av1C")?;
            short(p, 3, "av1C")?;
            let profile = p[1] >> 5;
            let level = p[1] & 0x1f;
            let tier = if p[2] & 0x80 != 0 { 'H' } else { 'M' };
            let depth = match (p[2] & 0x40 != 0, p[2] & 0x20 != 0) {
                (false, _) => 8,
                (true, true) if profile == 2 => 12,
                (true, _) => 10,
            };
            format!("av01.{profile}.{level:02}{tier}.{depth:02}")
        }
        "vp09" => {
            let p = need("vpcC")?;
            short(p, 7, "vpcC")?;
            // Full box (version 1): profile, level, bitDepth(4) chromaSubsampling(3) range(1).
            format!("vp09.{:02}.{:02}.{:02}", p[4], p[5], p[6] >> 4)
        }
        "mp4a" => {
            let p = need("esds")?;
            // The AudioSpecificConfig (DecoderSpecificInfo, tag 5): its first 5 bits.
            let asc = find_descriptor(p.get(4..).unwrap_or_default(), 0x05)
                .ok_or("esds without a DecoderSpecificInfo")?;
            let aot = asc
                .first()
                .map(|b| b >> 3)
                .ok_or("esds: empty AudioSpecificConfig")?;
            format!("mp4a.40.{aot}")
        }
        "Opus" => {
            need("dOps")?;
            "opus".into()
        }
        "fLaC" => {
            need("dfLa")?;
            "flac".into()
        }
        "ac-3" => {
            need("dac3")?;
            "ac-3".into()
        }
        "ec-3" => {
            need("dec3")?;
            "ec-3".into()
        }
        other => return Err(format!("unexpected sample entry {other:?}")),
    })
}

/// Compares a `codecs` value with the one derived from the init segment: the mandatory
/// components exactly (case-insensitive hex), optional trailing ones (AV1/VP9 colour fields)
/// allowed.
pub fn codecs_match(attr: &str, from_init: &str) -> bool {
    let a: Vec<String> = attr.split('.').map(str::to_ascii_lowercase).collect();
    let b: Vec<String> = from_init.split('.').map(str::to_ascii_lowercase).collect();
    let optional_tail = matches!(b[0].as_str(), "av01" | "vp09");
    if optional_tail {
        a.len() >= b.len() && a[..b.len()] == b[..]
    } else {
        a == b
    }
}

/// What is wrong with a video `codecs` value for what was published (the RFC 6381 form and
/// the profile; levels are the encoder's choice and checked against the init segment instead).
pub fn video_codecs_problem(v: Video, codecs: &str) -> Option<String> {
    let c: Vec<&str> = codecs.split('.').collect();
    let is_hex = |s: &str, n: usize| s.len() == n && s.chars().all(|c| c.is_ascii_hexdigit());
    let is_dec = |s: &str, n: usize| s.len() == n && s.chars().all(|c| c.is_ascii_digit());
    let (ok, want) = match v {
        Video::H264 => (
            c.len() == 2 && matches!(c[0], "avc1" | "avc3") && is_hex(c[1], 6),
            "avc1.PPCCLL",
        ),
        Video::Hevc | Video::Hevc10 => {
            let (profile, compat, want) = if v == Video::Hevc {
                (
                    "1",
                    "6",
                    "hvc1.1.6.L<level>[.<constraint bytes>] (HEVC Main)",
                )
            } else {
                (
                    "2",
                    "4",
                    "hvc1.2.4.L<level>[.<constraint bytes>] (HEVC Main 10)",
                )
            };
            let level_ok = c.get(3).is_some_and(|l| {
                l.strip_prefix(['L', 'H'])
                    .and_then(|n| n.parse::<u32>().ok())
                    .is_some_and(|n| n > 0 && n % 3 == 0)
            });
            let cons_ok = c.iter().skip(4).all(|b| {
                !b.is_empty() && b.len() <= 2 && b.chars().all(|ch| ch.is_ascii_hexdigit())
            });
            (
                c.len() >= 4
                    && c.len() <= 10
                    && matches!(c[0], "hvc1" | "hev1")
                    && c[1] == profile
                    && c[2].eq_ignore_ascii_case(compat)
                    && level_ok
                    && cons_ok,
                want,
            )
        }
        Video::Av1 => {
            let lt = c.get(2).copied().unwrap_or("");
            (
                (c.len() == 4 || c.len() == 10)
                    && c[0] == "av01"
                    && c[1] == "0"
                    && lt.len() == 3
                    && is_dec(&lt[..2], 2)
                    && lt.ends_with('M')
                    && c[3] == "08",
                "av01.0.<2-digit level>M.08 (AV1 Main, 8 bit)",
            )
        }
        Video::Vp9 => (
            (c.len() == 4 || c.len() == 9)
                && c[0] == "vp09"
                && c[1] == "00"
                && is_dec(c[2], 2)
                && [10, 11, 20, 21, 30, 31, 40, 41, 50, 51, 52, 60, 61, 62]
                    .contains(&c[2].parse::<u32>().unwrap_or(0))
                && c[3] == "08",
            "vp09.00.<level 10..62>.08 (VP9 profile 0, 8 bit)",
        ),
    };
    (!ok).then(|| format!("codecs {codecs:?}, expected {want}"))
}

/// The sample entry expected for a published video codec.
fn video_entries(v: Video) -> &'static [&'static str] {
    match v {
        Video::H264 => &["avc1", "avc3"],
        Video::Hevc | Video::Hevc10 => &["hvc1", "hev1"],
        Video::Av1 => &["av01"],
        Video::Vp9 => &["vp09"],
    }
}

/// Channels an `AudioChannelConfiguration` value stands for under its scheme.
pub fn channels_of_config(scheme: &str, value: &str) -> Option<u32> {
    if CHANNEL_SCHEMES.contains(&scheme) {
        let v: u32 = value.trim().parse().ok()?;
        // 23003-3: the count itself; CICP ChannelConfiguration: 1 mono, 2 stereo, ... 6 = 5.1.
        return Some(if scheme.contains("cicp") {
            match v {
                1 => 1,
                2 => 2,
                3 => 3,
                4 => 4,
                5 => 5,
                6 => 6,
                7 | 12 => 8,
                _ => return None,
            }
        } else {
            v
        });
    }
    if DOLBY_CHANNEL_SCHEMES.contains(&scheme) {
        let mask = u16::from_str_radix(value.trim(), 16).ok()?;
        // Bits from the top: L, C, R, Ls, Rs, Lc/Rc, Lrs/Rrs, Cs, Ts, Lsd/Rsd, Lw/Rw,
        // Vhl/Vhr, Vhc, Lts/Rts, LFE2, LFE.
        const PAIRS: [bool; 16] = [
            false, false, false, false, false, true, true, false, false, true, true, true, false,
            true, false, false,
        ];
        let mut n = 0;
        for (bit, pair) in PAIRS.iter().enumerate() {
            if mask & (0x8000 >> bit) != 0 {
                n += if *pair { 2 } else { 1 };
            }
        }
        return Some(n);
    }
    None
}

/// The MPD's Periods and AdaptationSets on one line, e.g.
/// `Period 0 at 0 s: video [hvc1.1.6.L60.90 320x240], audio [opus]`, for messages.
pub fn describe_sets(m: &Mpd) -> String {
    let periods: Vec<String> = m
        .periods
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let sets: Vec<String> = p
                .sets
                .iter()
                .map(|s| {
                    let reps: Vec<String> = s
                        .reps
                        .iter()
                        .map(|r| {
                            let mut d = r.attr("codecs").unwrap_or("(no codecs)").to_string();
                            if let (Some(w), Some(h)) = (r.attr("width"), r.attr("height")) {
                                d.push_str(&format!(" {w}x{h}"));
                            }
                            d
                        })
                        .collect();
                    let kind = s.reps.first().map_or("?", |r| r.kind());
                    format!("{kind} [{}]", reps.join(", "))
                })
                .collect();
            let sets = if sets.is_empty() {
                "no AdaptationSet".to_string()
            } else {
                sets.join(", ")
            };
            format!("Period {i} at {:.3} s: {sets}", p.start)
        })
        .collect();
    if periods.is_empty() {
        "no Period".into()
    } else {
        periods.join("; ")
    }
}

/// The init segment of a representation, read from disk.
fn init_of(stream: &Stream, m: &Mpd, r: &Representation) -> Result<Vec<u8>, String> {
    let seg = m
        .segments()
        .into_iter()
        .find(|s| s.kind == SegKind::Init && s.rep == r.id())
        .ok_or_else(|| format!("Representation {} has no initialization segment", r.id()))?;
    let path = stream
        .disk_path(&seg.url_path)
        .ok_or_else(|| format!("init segment {} is not under /dash/", seg.url_path))?;
    std::fs::read(&path).map_err(|e| format!("init segment {}: {e}", path.display()))
}

/// What is wrong with the tracks of an MPD for `media` (empty when right): one video and one
/// audio AdaptationSet with the right `codecs`, size, rate and channels, each consistent with
/// its init segment's sample entry.
pub fn mpd_track_problems(stream: &Stream, m: &Mpd, media: &Media, what: &str) -> Vec<String> {
    let mut p = Vec::new();
    let found = describe_sets(m);
    // One publish is one Period: a Period that begins with some tracks missing (one track's
    // first frames came before the other's) leaves a player a stretch without them.
    if m.periods.len() != 1 {
        p.push(format!(
            "{} Periods for one publish, expected 1 with both tracks: {found}",
            m.periods.len()
        ));
    }
    let kinds = [
        ("video", media.video.is_some()),
        ("audio", media.audio.is_some()),
    ];
    for (kind, want) in kinds {
        let sets = m
            .sets()
            .filter(|s| s.reps.first().is_some_and(|r| r.kind() == kind))
            .count();
        let want = usize::from(want);
        if sets != want {
            p.push(format!(
                "{sets} {kind} AdaptationSet(s), expected {want} for {}; the MPD has: {found}",
                media.label()
            ));
        }
    }
    if let Some(v) = media.video {
        for r in m.reps_of("video") {
            let id = r.id();
            let codecs = r.attr("codecs").unwrap_or("");
            if r.attr("mimeType") != Some("video/mp4") {
                p.push(format!(
                    "video {id}: mimeType {:?}, expected \"video/mp4\"",
                    r.attr("mimeType")
                ));
            }
            if let Some(e) = video_codecs_problem(v, codecs) {
                p.push(format!("video {id} ({v:?}): {e}"));
            }
            let (w, h) = (media.width.to_string(), media.height.to_string());
            if r.attr("width") != Some(w.as_str()) || r.attr("height") != Some(h.as_str()) {
                p.push(format!(
                    "video {id}: width x height {:?} x {:?}, published {w}x{h}",
                    r.attr("width"),
                    r.attr("height")
                ));
            }
            if let Some(fr) = r.attr("frameRate") {
                let ok = super::dash::parse_frame_rate(fr).is_some_and(|f| (f - 25.0).abs() < 0.01);
                if !ok {
                    p.push(format!("video {id}: frameRate {fr:?}, published 25"));
                }
            }
            match init_of(stream, m, r).and_then(|b| sample_entries(&b)) {
                Err(e) => p.push(format!("video {id}: {e}")),
                Ok(entries) => match entries.iter().find(|e| e.handler == "vide") {
                    None => p.push(format!(
                        "video {id}: the init segment has no video track (tracks: {:?})",
                        entries.iter().map(|e| &e.fourcc).collect::<Vec<_>>()
                    )),
                    Some(e) => {
                        if !video_entries(v).contains(&e.fourcc.as_str()) {
                            p.push(format!(
                                "video {id}: the init segment's sample entry is {:?}, expected one of {:?}",
                                e.fourcc,
                                video_entries(v)
                            ));
                        }
                        if (u32::from(e.width), u32::from(e.height)) != (media.width, media.height)
                        {
                            p.push(format!(
                                "video {id}: the init segment's sample entry says {}x{}, published {}x{}",
                                e.width, e.height, media.width, media.height
                            ));
                        }
                        match codecs_of_entry(e) {
                            Err(err) => p.push(format!("video {id}: init segment: {err}")),
                            Ok(want) if !codecs_match(codecs, &want) => p.push(format!(
                                "video {id}: codecs {codecs:?} but the init segment's {} box says {want:?}",
                                e.children.first().map_or("config", |(t, _)| t.as_str())
                            )),
                            Ok(_) => {}
                        }
                    }
                },
            }
        }
    }
    if let Some(a) = media.audio {
        for r in m.reps_of("audio") {
            let id = r.id();
            let codecs = r.attr("codecs").unwrap_or("");
            if r.attr("mimeType") != Some("audio/mp4") {
                p.push(format!(
                    "audio {id}: mimeType {:?}, expected \"audio/mp4\"",
                    r.attr("mimeType")
                ));
            }
            if codecs != a.codecs() {
                p.push(format!(
                    "audio {id} ({a:?}): codecs {:?}, expected {:?}",
                    r.attr("codecs"),
                    a.codecs()
                ));
            }
            let rate = SAMPLE_RATE.to_string();
            if r.attr("audioSamplingRate") != Some(rate.as_str()) {
                p.push(format!(
                    "audio {id}: audioSamplingRate {:?}, published {rate}",
                    r.attr("audioSamplingRate")
                ));
            }
            let known: Vec<(&String, &String, Option<u32>)> = r
                .channel_configs
                .iter()
                .filter(|(s, _)| {
                    CHANNEL_SCHEMES.contains(&s.as_str())
                        || DOLBY_CHANNEL_SCHEMES.contains(&s.as_str())
                })
                .map(|(s, v)| (s, v, channels_of_config(s, v)))
                .collect();
            if known.is_empty() {
                p.push(format!(
                    "audio {id}: no AudioChannelConfiguration with a known scheme (found {:?})",
                    r.channel_configs
                ));
            }
            for (scheme, value, n) in known {
                if n != Some(media.channels) {
                    p.push(format!(
                        "audio {id}: AudioChannelConfiguration {scheme} value {value:?} means {n:?} \
                         channels, published {}",
                        media.channels
                    ));
                }
            }
            match init_of(stream, m, r).and_then(|b| sample_entries(&b)) {
                Err(e) => p.push(format!("audio {id}: {e}")),
                Ok(entries) => match entries.iter().find(|e| e.handler == "soun") {
                    None => p.push(format!(
                        "audio {id}: the init segment has no audio track (tracks: {:?})",
                        entries.iter().map(|e| &e.fourcc).collect::<Vec<_>>()
                    )),
                    Some(e) => {
                        if e.fourcc != a.sample_entry() {
                            p.push(format!(
                                "audio {id}: the init segment's sample entry is {:?}, expected {:?}",
                                e.fourcc,
                                a.sample_entry()
                            ));
                        }
                        if e.sample_rate != SAMPLE_RATE {
                            p.push(format!(
                                "audio {id}: the init segment's sample entry says {} Hz, published {SAMPLE_RATE}",
                                e.sample_rate
                            ));
                        }
                        match codecs_of_entry(e) {
                            Err(err) => p.push(format!("audio {id}: init segment: {err}")),
                            Ok(want) if want != codecs => p.push(format!(
                                "audio {id}: codecs {codecs:?} but the init segment says {want:?}"
                            )),
                            Ok(_) => {}
                        }
                    }
                },
            }
        }
    }
    let mut p: Vec<String> = p.into_iter().map(|e| format!("{what}: {e}")).collect();
    if !p.is_empty() {
        p.push(format!("({what}:\n{})", m.text));
    }
    p
}

/// What is wrong with ffmpeg 9's decode of a stream of `media` (empty when right): it must
/// succeed without errors, decode at least `min_secs`, and find exactly the published tracks
/// with their codec, size, pixel format, rate and channels.
pub fn decode_problems(d: &Decode9, media: &Media, min_secs: f64, what: &str) -> Vec<String> {
    let mut p = Vec::new();
    if !d.ok || d.seconds < min_secs {
        p.push(format!(
            "{what}: expected >= {min_secs:.1} s decoded without error; {}",
            d.report()
        ));
    }
    let want = usize::from(media.video.is_some()) + usize::from(media.audio.is_some());
    if d.inputs.len() != want {
        p.push(format!(
            "{what}: ffmpeg finds {} streams, expected {want} ({}): {}",
            d.inputs.len(),
            media.label(),
            d.streams_summary()
        ));
    }
    if let Some(v) = media.video {
        match d.input("video") {
            None => p.push(format!(
                "{what}: no video stream, expected {} {}x{}; {}",
                v.ffmpeg_name(),
                media.width,
                media.height,
                d.streams_summary()
            )),
            Some(s) => {
                let size = (s.width, s.height) == (Some(media.width), Some(media.height));
                let profile = v
                    .ffmpeg_profile()
                    .is_none_or(|pr| s.profile.as_deref() == Some(pr));
                let fmt = s.pix_fmt.as_deref() == Some(v.pix_fmt());
                if s.codec != v.ffmpeg_name() || !size || !profile || !fmt {
                    p.push(format!(
                        "{what}: video stream {:?}, expected {} ({}) {} {}x{}",
                        s.line,
                        v.ffmpeg_name(),
                        v.ffmpeg_profile().unwrap_or("any profile"),
                        v.pix_fmt(),
                        media.width,
                        media.height
                    ));
                }
                if d.frames == 0 && d.ok {
                    p.push(format!("{what}: no video frame decoded"));
                }
            }
        }
    }
    if let Some(a) = media.audio {
        match d.input("audio") {
            None => p.push(format!(
                "{what}: no audio stream, expected {} {}ch; {}",
                a.ffmpeg_name(),
                media.channels,
                d.streams_summary()
            )),
            Some(s) => {
                if s.codec != a.ffmpeg_name()
                    || s.sample_rate != Some(SAMPLE_RATE)
                    || s.channels != Some(media.channels)
                {
                    p.push(format!(
                        "{what}: audio stream {:?}, expected {} {SAMPLE_RATE} Hz {} channel(s)",
                        s.line,
                        a.ffmpeg_name(),
                        media.channels
                    ));
                }
            }
        }
    }
    p
}

// ---------------------------------------------------------------------------------------------
// Every listed segment, fetched once over HTTP while listed

/// A listed file: URL path and, for DASH, when the MPD says it is available (Unix seconds).
pub type Listed = (String, Option<f64>);

/// What a [`SegmentFetcher`] saw.
#[derive(Debug, Default, Clone)]
pub struct FetchReport {
    /// Successful listings (MPD/playlist reads over HTTP).
    pub listings: usize,
    /// Files fetched with 200 and a complete body.
    pub fetched: Vec<String>,
    /// Problems: listed but 404 (or another status), or an incomplete body.
    pub violations: Vec<String>,
    /// Listing failures after the first success.
    pub listing_errors: Vec<String>,
}

impl FetchReport {
    pub fn summary(&self) -> String {
        format!(
            "{} listings, {} files fetched, {} violations, {} listing errors",
            self.listings,
            self.fetched.len(),
            self.violations.len(),
            self.listing_errors.len()
        )
    }
}

/// Polls a listing (an MPD or a media playlist, over HTTP) and GETs every file it lists once,
/// as soon as it is due; a failure counts only if the file is still listed when it is read
/// again right after.
pub struct SegmentFetcher {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<FetchReport>>,
}

/// What is wrong with a fetched body for its name (`.ts`: whole TS packets; fMP4 init:
/// `ftyp`+`moov`; fMP4 media: `moof`+`mdat`, boxes adding up to the length).
pub fn body_problem(url: &str, body: &[u8]) -> Option<String> {
    if body.is_empty() {
        return Some("an empty body".into());
    }
    let name = url.rsplit('/').next().unwrap_or(url);
    if name.ends_with(".ts") {
        if !body.len().is_multiple_of(188) || body[0] != 0x47 {
            return Some(format!("{} bytes, not whole TS packets", body.len()));
        }
        return None;
    }
    if name.ends_with(".aac") || name.ends_with(".mp3") {
        return None;
    }
    let (b, covered) = scan_boxes(body);
    let types: Vec<&str> = b.iter().map(|(t, _)| t.as_str()).collect();
    if covered != body.len() {
        return Some(format!(
            "{} bytes but its boxes {types:?} cover {covered}: incomplete",
            body.len()
        ));
    }
    let has = |t: &str| types.contains(&t);
    if has("moov") {
        if !has("ftyp") {
            return Some(format!("an init segment without ftyp ({types:?})"));
        }
    } else if !(has("moof") && has("mdat")) {
        return Some(format!("neither an init segment nor moof+mdat ({types:?})"));
    }
    None
}

impl SegmentFetcher {
    /// Fetches what `list` returns (called every 250 ms on the fetcher's thread).
    pub fn start(
        port: u16,
        list: impl Fn() -> Result<Vec<Listed>, String> + Send + 'static,
    ) -> SegmentFetcher {
        let stop = Arc::new(AtomicBool::new(false));
        let handle = {
            let stop = Arc::clone(&stop);
            thread::spawn(move || fetch_loop(port, &list, &stop))
        };
        SegmentFetcher {
            stop,
            handle: Some(handle),
        }
    }

    /// Every segment and init segment an MPD served at `stream.url_path` lists.
    pub fn dash(stream: &Stream) -> SegmentFetcher {
        let port = stream.http_port;
        let path = stream.url_path.clone();
        let disk = stream.mpd.clone();
        Self::start(port, move || {
            // No request before the MPD exists: a 404 of the fetcher's own would be in the
            // access log that tests check for players' errors.
            if !disk.is_file() {
                return Err(format!("{} does not exist", disk.display()));
            }
            let r = http_get(port, &path)?;
            if r.status != 200 {
                return Err(format!("GET {path}: {}", r.status));
            }
            let text = String::from_utf8_lossy(&r.body).into_owned();
            let m = parse_mpd(&text, &path).map_err(|e| format!("{path}: {e}"))?;
            Ok(m.segments()
                .into_iter()
                .map(|s| (s.url_path, s.available_at))
                .collect())
        })
    }

    /// Every segment and `#EXT-X-MAP` of a media playlist served at `path` (file `disk`), or,
    /// when that is a master playlist, of the media playlists it names.
    pub fn hls(port: u16, path: &str, disk: &Path) -> SegmentFetcher {
        let path = path.to_string();
        let disk = disk.to_path_buf();
        Self::start(port, move || {
            if !disk.is_file() {
                return Err(format!("{} does not exist", disk.display()));
            }
            let get = |p: &str| -> Result<String, String> {
                let r = http_get(port, p)?;
                if r.status != 200 {
                    return Err(format!("GET {p}: {}", r.status));
                }
                Ok(String::from_utf8_lossy(&r.body).into_owned())
            };
            let text = get(&path)?;
            let media = master_uris(&text);
            if media.is_empty() {
                return Ok(hls_listed(&path, &text)
                    .into_iter()
                    .map(|u| (u, None))
                    .collect());
            }
            let mut out = Vec::new();
            for uri in media {
                let p = resolve_path(&path, &uri);
                let t = get(&p)?;
                out.extend(hls_listed(&p, &t).into_iter().map(|u| (u, None)));
            }
            Ok(out)
        })
    }

    pub fn stop(mut self) -> FetchReport {
        self.stop.store(true, Ordering::SeqCst);
        self.handle
            .take()
            .map(|h| h.join().expect("fetcher thread"))
            .unwrap_or_default()
    }
}

impl Drop for SegmentFetcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// URL paths a media playlist served at `path` refers to: `#EXT-X-MAP` URIs and segments.
pub fn hls_listed(path: &str, text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if let Some(attrs) = line.strip_prefix("#EXT-X-MAP:") {
            if let Some(uri) = attrs
                .split("URI=\"")
                .nth(1)
                .and_then(|r| r.split('"').next())
            {
                out.push(resolve_path(path, uri));
            }
        } else if !line.is_empty() && !line.starts_with('#') {
            out.push(resolve_path(path, line));
        }
    }
    out
}

/// The media playlists a master playlist names: `#EXT-X-STREAM-INF` URIs (the next line) and
/// `#EXT-X-MEDIA` `URI`s; empty for a media playlist.
pub fn master_uris(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut lines = text.lines().map(str::trim);
    while let Some(line) = lines.next() {
        if line.starts_with("#EXT-X-STREAM-INF:") {
            if let Some(uri) = lines
                .by_ref()
                .find(|l| !l.is_empty() && !l.starts_with('#'))
            {
                out.push(uri.to_string());
            }
        } else if let Some(attrs) = line.strip_prefix("#EXT-X-MEDIA:") {
            if let Some(uri) = attrs
                .split("URI=\"")
                .nth(1)
                .and_then(|r| r.split('"').next())
            {
                out.push(uri.to_string());
            }
        }
    }
    out
}

/// The `#EXT-X-MAP` URI of a playlist text, if any.
pub fn hls_map_uri(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.trim().strip_prefix("#EXT-X-MAP:"))
        .and_then(|a| a.split("URI=\"").nth(1))
        .and_then(|r| r.split('"').next())
        .map(str::to_string)
}

const MAX_VIOLATIONS: usize = 40;

fn fetch_loop(
    port: u16,
    list: &dyn Fn() -> Result<Vec<Listed>, String>,
    stop: &AtomicBool,
) -> FetchReport {
    let mut r = FetchReport::default();
    let mut done: BTreeSet<String> = BTreeSet::new();
    loop {
        let stopping = stop.load(Ordering::SeqCst);
        match list() {
            Err(e) => {
                if r.listings > 0 && r.listing_errors.len() < MAX_VIOLATIONS {
                    r.listing_errors.push(e);
                }
            }
            Ok(items) => {
                r.listings += 1;
                for (url, available_at) in items {
                    if done.contains(&url) || available_at.is_some_and(|a| a > now_epoch()) {
                        continue;
                    }
                    let problem = match http_get(port, &url) {
                        Err(e) => Some(e),
                        Ok(resp) if resp.status != 200 => Some(format!("HTTP {}", resp.status)),
                        Ok(resp) => body_problem(&url, &resp.body),
                    };
                    match problem {
                        None => {
                            done.insert(url.clone());
                            r.fetched.push(url);
                        }
                        Some(problem) => {
                            // Only a file that is still listed counts (it may just have left).
                            let still = list().is_ok_and(|l| l.iter().any(|(u, _)| *u == url));
                            if still {
                                done.insert(url.clone());
                                if r.violations.len() < MAX_VIOLATIONS {
                                    let since = available_at.map_or(String::new(), |a| {
                                        format!(
                                            ", available {:.2} s ago by the MPD",
                                            now_epoch() - a
                                        )
                                    });
                                    r.violations
                                        .push(format!("GET {url} while listed: {problem}{since}"));
                                }
                            }
                        }
                    }
                }
            }
        }
        if stopping {
            return r;
        }
        thread::sleep(Duration::from_millis(250));
    }
}
