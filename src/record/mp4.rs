//! MP4 recordings (`record_format mp4`): one fragmented MP4 file (an `ftyp` + `moov` with the
//! video and audio tracks, then a `moof` + `mdat` fragment per GOP, at least
//! [`FRAGMENT_MS`] long, and an `mfra` index at the end), so a worker killed mid-recording
//! loses at most the fragment being gathered, and a finished file is an ordinary MP4 to
//! ffmpeg, browsers and players. Beside it, `<name>.m3u8`: an HLS playlist of the very same
//! bytes (`EXT-X-MAP` and byte ranges into the MP4), an event playlist while the recording
//! grows and a VOD one when it ends: the replay, served by nginx, with no second copy.

use std::fmt::Write as _;

use bytes::Bytes;

use crate::dash::fmp4::{self, Sample, TrackCodec};
use crate::media::flv::{self, AudioPacket, VideoPacket};

/// Shortest fragment: a fragment ends at the first video keyframe after this long (audio-only
/// recordings: after this long).
pub const FRAGMENT_MS: u32 = 1000;
/// Track ids in the file.
const VIDEO_TRACK: u32 = 1;
const AUDIO_TRACK: u32 = 2;
/// While a recording grows, its playlist is rewritten about this many times per doubling of
/// its length (after every fragment at first).
const PLAYLIST_REWRITES: usize = 64;
/// Duration of an AAC frame in its own timescale (the sample rate).
const AAC_FRAME: u32 = 1024;

/// One track being recorded.
#[derive(Debug)]
struct Track {
    timescale: u32,
    /// Where a frame's sample starts (AV1 drops its leading temporal delimiters).
    codec: TrackCodec,
    /// Samples of the fragment being gathered; the last one's duration is set when the next
    /// sample (or the end) comes.
    samples: Vec<Sample>,
}

impl Track {
    fn new(codec: &TrackCodec) -> Self {
        Track {
            timescale: codec.timescale(),
            codec: codec.clone(),
            samples: Vec::new(),
        }
    }

    fn dts(&self, ms: u32) -> u64 {
        u64::from(ms) * u64::from(self.timescale) / 1000
    }

    /// Adds a sample, giving the previous one its duration.
    fn push(&mut self, mut sample: Sample, default_duration: u32) {
        if let Some(last) = self.samples.last_mut() {
            last.duration = u32::try_from(sample.dts.saturating_sub(last.dts)).unwrap_or(u32::MAX);
        }
        if sample.duration == 0 {
            sample.duration = default_duration;
        }
        self.samples.push(sample);
    }
}

/// What the writer asks to append to the file and write beside it.
#[derive(Debug, Default)]
pub struct Mp4Output {
    /// Appended to the file in order (the samples' own buffers, shared).
    pub append: Vec<Bytes>,
    /// The replay playlist, rewritten whole (after `append` is on disk).
    pub playlist: Option<String>,
}

/// The fragmented MP4 being written.
#[derive(Debug)]
pub struct Mp4File {
    /// The MP4's file name, as the playlist names it (same directory).
    file_name: String,
    video: Option<Track>,
    audio: Option<Track>,
    /// Bytes written so far (the next fragment's offset).
    size: u64,
    init_len: u64,
    sequence: u32,
    fragment_start_ms: Option<u32>,
    /// Each fragment: (offset, length, start ms, duration ms).
    fragments: Vec<(u64, u64, u32, u32)>,
    /// Per track: (decode time, moof offset) of each fragment, for the `mfra`.
    video_index: Vec<(u64, u64)>,
    audio_index: Vec<(u64, u64)>,
    last_ms: u32,
}

/// The tracks of a stream's sequence headers (`None`: a codec an MP4 recording cannot take
/// yet, or no header at all; the recording is FLV then).
pub fn codecs(
    video_header: Option<&Bytes>,
    audio_header: Option<&Bytes>,
) -> Option<(Option<TrackCodec>, Option<TrackCodec>)> {
    let video = match video_header {
        Some(h) => {
            let t = flv::parse_video(h).ok()?;
            Some(fmp4::video_codec(t.codec.fourcc(), h.get(t.body_offset..)?).ok()?)
        }
        None => None,
    };
    let audio = match audio_header {
        Some(h) => {
            let t = flv::parse_audio(h).ok()?;
            Some(fmp4::audio_codec(t.codec.fourcc(), h.get(t.body_offset..)?).ok()?)
        }
        None => None,
    };
    (video.is_some() || audio.is_some()).then_some((video, audio))
}

/// A tag's body from `offset` as a slice of the publisher's buffer.
fn body_from(tag: &Bytes, offset: usize) -> Option<Bytes> {
    (offset <= tag.len()).then(|| tag.slice(offset..))
}

impl Mp4File {
    /// A new file with these tracks; the init segment is the first thing to append.
    pub fn start(
        file_name: &str,
        video: Option<&TrackCodec>,
        audio: Option<&TrackCodec>,
    ) -> Option<(Mp4File, Bytes)> {
        let mut tracks = Vec::new();
        if let Some(v) = video {
            tracks.push((VIDEO_TRACK, v));
        }
        if let Some(a) = audio {
            tracks.push((AUDIO_TRACK, a));
        }
        let ftyp = mp4_atom::Ftyp {
            major_brand: b"isom".into(),
            minor_version: 512,
            compatible_brands: vec![b"isom".into(), b"iso6".into(), b"mp41".into()],
        };
        let init = fmp4::movie_init(ftyp, &tracks).ok()?;
        let file = Mp4File {
            file_name: file_name.to_string(),
            video: video.map(Track::new),
            audio: audio.map(Track::new),
            size: init.len() as u64,
            init_len: init.len() as u64,
            sequence: 0,
            fragment_start_ms: None,
            fragments: Vec::new(),
            video_index: Vec::new(),
            audio_index: Vec::new(),
            last_ms: 0,
        };
        Some((file, init))
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// One FLV audio or video tag body at `ms` (relative to the file's start). Returns what a
    /// fragment that ended before it asks to write.
    pub fn push(&mut self, video: bool, ms: u32, keyframe: bool, body: &Bytes) -> Mp4Output {
        let mut out = Mp4Output::default();
        let fragment_over = self
            .fragment_start_ms
            .is_some_and(|start| ms.wrapping_sub(start) >= FRAGMENT_MS && ms >= start);
        let cut_here = if self.video.is_some() {
            video && keyframe
        } else {
            true
        };
        if fragment_over && cut_here {
            out = self.flush();
        }
        let sample = if video {
            let Ok(tag) = flv::parse_video(body) else {
                return out;
            };
            let (VideoPacket::Frame, Some(data)) = (tag.packet, body_from(body, tag.body_offset))
            else {
                return out;
            };
            let Some(track) = self.video.as_mut() else {
                return out;
            };
            let data = data.slice(track.codec.sample_start(&data)..);
            let cts = i64::from(tag.composition_time_ms) * i64::from(track.timescale) / 1000;
            let cts = i32::try_from(cts).unwrap_or(0);
            let dts = track.dts(ms);
            (track, Sample::video(dts, cts, keyframe, data), 0)
        } else {
            let Ok(tag) = flv::parse_audio(body) else {
                return out;
            };
            let (AudioPacket::Frame, Some(data)) = (tag.packet, body_from(body, tag.body_offset))
            else {
                return out;
            };
            let Some(track) = self.audio.as_mut() else {
                return out;
            };
            let dts = track.dts(ms);
            (track, Sample::audio(dts, 0, data), AAC_FRAME)
        };
        let (track, sample, default_duration) = sample;
        track.push(sample, default_duration);
        if self.fragment_start_ms.is_none() {
            self.fragment_start_ms = Some(ms);
        }
        self.last_ms = self.last_ms.max(ms);
        out
    }

    /// Writes the fragment gathered so far (the last samples keep their default durations).
    pub fn flush(&mut self) -> Mp4Output {
        let mut out = Mp4Output::default();
        let Some(start_ms) = self.fragment_start_ms.take() else {
            return out;
        };
        let mut video = self
            .video
            .as_mut()
            .map(|t| std::mem::take(&mut t.samples))
            .unwrap_or_default();
        let audio = self
            .audio
            .as_mut()
            .map(|t| std::mem::take(&mut t.samples))
            .unwrap_or_default();
        // The last video frame lasts as long as the one before it.
        if let [.., before, last] = video.as_mut_slice() {
            last.duration = before.duration;
        }
        self.sequence += 1;
        let tracks = [
            (VIDEO_TRACK, video.as_slice()),
            (AUDIO_TRACK, audio.as_slice()),
        ];
        let Ok(head) = fmp4::fragment_head(self.sequence, &tracks) else {
            return out;
        };
        let offset = self.size;
        let mut len = head.len() as u64;
        out.append.push(head);
        for s in video.iter().chain(&audio) {
            len += s.data.len() as u64;
            out.append.push(s.data.clone());
        }
        if let Some(first) = video.first() {
            self.video_index.push((first.dts, offset));
        }
        if let Some(first) = audio.first() {
            self.audio_index.push((first.dts, offset));
        }
        self.size += len;
        let end_ms = self.last_ms.max(start_ms);
        let duration = end_ms.saturating_sub(start_ms).max(1);
        // Fragments follow each other: the next starts where this one's last frame ends.
        self.fragments.push((offset, len, start_ms, duration));
        // A long recording's playlist is rewritten less often (every n/64 fragments), so what
        // rewriting it costs stays constant per fragment instead of growing with its length.
        let n = self.fragments.len();
        if n.is_multiple_of((n / PLAYLIST_REWRITES).max(1)) {
            out.playlist = Some(self.playlist(false));
        }
        out
    }

    /// The end of the file: the last fragment, the `mfra` index and the final playlist.
    pub fn finish(&mut self) -> Mp4Output {
        let mut out = self.flush();
        let tracks: Vec<(u32, &[(u64, u64)])> = [
            (VIDEO_TRACK, self.video_index.as_slice()),
            (AUDIO_TRACK, self.audio_index.as_slice()),
        ]
        .into_iter()
        .filter(|t| !t.1.is_empty())
        .collect();
        if let Ok(mfra) = fmp4::random_access_index(&tracks) {
            self.size += mfra.len() as u64;
            out.append.push(mfra);
        }
        out.playlist = Some(self.playlist(true));
        out
    }

    /// Media time in the file so far, in ms.
    pub fn duration_ms(&self) -> u64 {
        u64::from(self.last_ms)
    }

    /// The HLS playlist of the fragments written so far.
    fn playlist(&self, ended: bool) -> String {
        let target = self
            .fragments
            .iter()
            .map(|f| f.3.div_ceil(1000))
            .max()
            .unwrap_or(1)
            .max(1);
        let mut p = String::with_capacity(256 + self.fragments.len() * 64);
        let uri = crate::segment::names::uri_escape(&self.file_name);
        let kind = if ended { "VOD" } else { "EVENT" };
        let _ = write!(
            p,
            "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:{target}\n\
             #EXT-X-PLAYLIST-TYPE:{kind}\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-INDEPENDENT-SEGMENTS\n\
             #EXT-X-MAP:URI=\"{}\",BYTERANGE=\"{}@0\"\n",
            uri, self.init_len
        );
        for (i, (offset, len, start, duration)) in self.fragments.iter().enumerate() {
            // A fragment lasts until the next one starts (the last: its own frames).
            let next = self
                .fragments
                .get(i + 1)
                .filter(|f| f.2 > *start)
                .map_or(*duration, |f| f.2 - start);
            let _ = write!(
                p,
                "#EXTINF:{}.{:03},\n#EXT-X-BYTERANGE:{len}@{offset}\n{}\n",
                next / 1000,
                next % 1000,
                uri
            );
        }
        if ended {
            p.push_str("#EXT-X-ENDLIST\n");
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aac() -> TrackCodec {
        TrackCodec::aac_from_asc(Bytes::from_static(&[0x12, 0x10])).unwrap()
    }

    fn audio_frame() -> Bytes {
        Bytes::from_static(&[0xaf, 1, 0x21, 0x10, 0x04, 0x60, 0x8c, 0x1c])
    }

    #[test]
    fn a_long_recordings_playlist_is_rewritten_less_often_and_lists_everything() {
        let (mut file, init) = Mp4File::start("cam.mp4", None, Some(&aac())).unwrap();
        let mut size = init.len() as u64;
        let mut rewrites = 0;
        let mut ms = 0u32;
        // 300 s of AAC frames (23.2 ms each): one fragment a second.
        while ms < 300_000 {
            let out = file.push(false, ms, false, &audio_frame());
            size += out.append.iter().map(|b| b.len() as u64).sum::<u64>();
            rewrites += usize::from(out.playlist.is_some());
            ms += 23;
        }
        let out = file.finish();
        size += out.append.iter().map(|b| b.len() as u64).sum::<u64>();
        assert_eq!(size, file.size());
        assert!(
            (100..200).contains(&rewrites),
            "{rewrites} rewrites for 300 fragments"
        );
        let playlist = out.playlist.unwrap();
        let listed = playlist.matches("#EXTINF:").count();
        assert!((290..=301).contains(&listed), "{listed}");
        let total: f64 = playlist
            .lines()
            .filter_map(|l| l.strip_prefix("#EXTINF:"))
            .filter_map(|d| d.trim_end_matches(',').parse::<f64>().ok())
            .sum();
        assert!((299.0..=300.5).contains(&total), "{total}");
        // Byte ranges follow each other from the end of the init segment.
        let mut next = init.len() as u64;
        for r in playlist
            .lines()
            .filter_map(|l| l.strip_prefix("#EXT-X-BYTERANGE:"))
        {
            let (len, at) = r.split_once('@').unwrap();
            assert_eq!(at.parse::<u64>().unwrap(), next);
            next += len.parse::<u64>().unwrap();
        }
        assert!(playlist.ends_with("#EXT-X-ENDLIST\n"));
    }
}
