//! Test support shared by the HLS and DASH segmenter tests: a synthetic publisher (FLV tag
//! bodies of H.264, AAC and MP3, and a [`Plan`] that orders them as a publisher sends them)
//! and the helpers both fake disks need.

use std::path::PathBuf;

use crate::files::FileOp;

/// SPS/PPS x264 wrote for testsrc2 320x240 at 25 fps (High, level 1.3, VUI timing).
pub const SPS: [u8; 25] = [
    0x67, 0x64, 0x00, 0x0d, 0xac, 0xd9, 0x41, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10,
    0x00, 0x00, 0x03, 0x03, 0x20, 0xf1, 0x42, 0x99, 0x60,
];
pub const PPS: [u8; 6] = [0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0];
/// Wall clock (unix ms) and monotonic clock (ms) at the start of a simulated stream.
pub const UNIX0: u64 = 1_700_000_000_000;
pub const MONO0: u64 = 5_000_000;

// ---- FLV tag bodies ----

pub fn avc_header_with(pps: &[u8]) -> Vec<u8> {
    let mut v = vec![
        0x17, 0x00, 0, 0, 0, 0x01, SPS[1], SPS[2], SPS[3], 0xff, 0xe1,
    ];
    v.extend((SPS.len() as u16).to_be_bytes());
    v.extend(SPS);
    v.push(1);
    v.extend((pps.len() as u16).to_be_bytes());
    v.extend(pps);
    v
}

pub fn avc_header() -> Vec<u8> {
    avc_header_with(&PPS)
}

/// An H.264 frame of one IDR (`key`) or non-IDR slice NAL unit of `size` bytes.
pub fn video_tag(key: bool, cts: i32, size: usize) -> Vec<u8> {
    let mut v = vec![if key { 0x17 } else { 0x27 }, 0x01];
    v.extend(&cts.to_be_bytes()[1..]);
    v.extend(((size + 1) as u32).to_be_bytes());
    v.push(if key { 0x65 } else { 0x41 });
    v.extend(std::iter::repeat_n(0xab, size));
    v
}

/// AAC LC 44.1 kHz stereo.
pub fn aac_header() -> Vec<u8> {
    aac_header_asc([0x12, 0x10])
}

pub fn aac_header_asc(asc: [u8; 2]) -> Vec<u8> {
    vec![0xaf, 0x00, asc[0], asc[1]]
}

pub fn aac_tag(size: usize) -> Vec<u8> {
    let mut v = vec![0xaf, 0x01];
    v.extend(std::iter::repeat_n(0x21, size));
    v
}

/// One MPEG-1 layer III frame (128 kbit/s, 44.1 kHz).
pub fn mp3_tag() -> Vec<u8> {
    let mut v = vec![0x2f, 0xff, 0xfb, 0x90, 0x64];
    v.extend(std::iter::repeat_n(0, 413));
    v
}

/// A synthetic publisher: 25 fps video with keyframes every `gop_ms`, AAC 44.1 kHz.
#[derive(Clone, Copy)]
pub struct Plan {
    pub video: bool,
    pub audio: bool,
    pub gop_ms: u64,
    pub dur_ms: u64,
    pub frame_size: usize,
    pub headers: bool,
    pub cts: i32,
}

impl Plan {
    pub fn av(gop_ms: u64, dur_ms: u64) -> Self {
        Plan {
            video: true,
            audio: true,
            gop_ms,
            dur_ms,
            frame_size: 2000,
            headers: true,
            cts: 80,
        }
    }

    pub fn audio_only(dur_ms: u64) -> Self {
        Plan {
            video: false,
            ..Plan::av(1000, dur_ms)
        }
    }

    /// (video, relative ms, tag), in timestamp order (headers first, video first on ties).
    pub fn events(&self) -> Vec<(bool, u64, Vec<u8>)> {
        let mut ev = Vec::new();
        if self.headers {
            if self.video {
                ev.push((true, 0, avc_header()));
            }
            if self.audio {
                ev.push((false, 0, aac_header()));
            }
        }
        let n = ev.len();
        if self.video {
            let mut t = 0;
            while t < self.dur_ms {
                let key = t % self.gop_ms == 0;
                ev.push((true, t, video_tag(key, self.cts, self.frame_size)));
                t += 40;
            }
        }
        if self.audio {
            for j in 0u64.. {
                let t = j * 1024 * 1000 / 44_100;
                if t >= self.dur_ms {
                    break;
                }
                ev.push((false, t, aac_tag(200)));
            }
        }
        ev[n..].sort_by_key(|e| (e.1, !e.0));
        ev
    }
}

/// What becomes of an operation lost behind a failure, as `Outputs` handles it: the file it
/// had open, abandoned, and the path the output is told about (`on_write_failed`).
pub fn lost_op(op: FileOp) -> (Option<PathBuf>, Option<PathBuf>) {
    match op {
        FileOp::Open { path }
        | FileOp::Append { path, .. }
        | FileOp::AppendFrom { path, .. }
        | FileOp::Flush { path } => (Some(path.clone()), Some(path)),
        FileOp::Commit { path, to } => (Some(path), Some(to)),
        FileOp::CreateDir { path }
        | FileOp::WriteAtomic { path, .. }
        | FileOp::Link { path, .. } => (None, Some(path)),
        FileOp::Abort { path } => (Some(path), None),
        FileOp::Delete { .. } => (None, None),
        FileOp::OpenRecording { path, .. }
        | FileOp::WriteAt { path, .. }
        | FileOp::Close { path } => (None, Some(path)),
    }
}

/// `%XX` escapes of a URI decoded (the URIs our manifests write).
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}
