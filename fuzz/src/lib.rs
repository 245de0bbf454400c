//! Helpers shared by the fuzz targets: deterministic slicing of an input into reads, and the
//! record format the media targets (HLS, DASH, TS) read their frames from.
//!
//! Every target's input is mostly raw protocol bytes, so the seed corpus (real captured
//! publishes, real FLV tag bodies) stays meaningful to the fuzzer: a leading parameter byte or
//! two choose slicing and configuration, the rest is the stream.

use std::path::PathBuf;

use nginx_rtmp_rs::files::{FileOp, FileOutput, Now};

/// A tiny deterministic generator (xorshift64) seeded from the input, so a crash replays.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u8) -> Self {
        Rng(0x9E37_79B9_7F4A_7C15 ^ (u64::from(seed) << 17 | 1))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut s = self.0;
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        self.0 = s;
        s
    }

    /// Uniform-ish in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// Splits `data` into reads of varying sizes: often tiny (1..3 bytes, to cut every header
/// field), otherwise up to `max` bytes. Mirrors what a TCP peer can do to a parser.
pub fn slices<'a>(data: &'a [u8], rng: &mut Rng, max: usize) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let want = if rng.below(4) == 0 {
            1 + rng.below(3) as usize
        } else {
            1 + rng.below(max as u64) as usize
        };
        let (head, tail) = rest.split_at(want.min(rest.len()));
        out.push(head);
        rest = tail;
    }
    out
}

/// One step of a media target.
#[derive(Debug)]
pub enum MediaOp<'a> {
    /// An audio (`video == false`) or video FLV tag body with its RTMP timestamp.
    Media {
        video: bool,
        timestamp: u32,
        tag: &'a [u8],
    },
    /// An AMF0 data message (onMetaData).
    Metadata(&'a [u8]),
    /// Time passes by this many milliseconds; the output's timer runs.
    Tick(u64),
    /// The publisher leaves and comes back (finish, then restart).
    Republish,
    /// The disk refused the last file opened (`on_write_failed`).
    WriteFailed,
}

/// Reads [`MediaOp`]s from fuzz input. Record layout:
/// `flags` (bit 0 video, bit 1 absolute timestamp, bits 2-3 kind: 0/1 media, 2 tick,
/// 3 metadata, or republish with bit 4, or a write failure with bit 5), then a timestamp (4 bytes absolute, else a signed 2-byte
/// delta), then a 2-byte length and that many payload bytes (fewer at the end of the input).
/// A tick's length is its duration in 8 ms units and carries no payload.
pub struct MediaOps<'a> {
    data: &'a [u8],
    timestamp: u32,
    /// Monotonic clock: advances with forward timestamp deltas and ticks.
    pub mono_ms: u64,
}

impl<'a> MediaOps<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        MediaOps {
            data,
            timestamp: 0,
            mono_ms: 5_000_000,
        }
    }

    fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, tail) = self.data.split_at(n.min(self.data.len()));
        self.data = tail;
        head
    }
}

impl<'a> Iterator for MediaOps<'a> {
    type Item = MediaOp<'a>;

    fn next(&mut self) -> Option<MediaOp<'a>> {
        let (&flags, _) = self.data.split_first()?;
        self.take(1);
        if flags & 2 != 0 {
            let b = self.take(4);
            let mut v = [0u8; 4];
            v[..b.len()].copy_from_slice(b);
            self.timestamp = u32::from_be_bytes(v);
        } else {
            let b = self.take(2);
            let mut v = [0u8; 2];
            v[..b.len()].copy_from_slice(b);
            let delta = i16::from_be_bytes(v);
            self.timestamp = self.timestamp.wrapping_add(delta as i32 as u32);
            self.mono_ms += u64::try_from(delta.max(0)).unwrap_or(0);
        }
        let b = self.take(2);
        let mut v = [0u8; 2];
        v[..b.len()].copy_from_slice(b);
        let len = usize::from(u16::from_be_bytes(v));
        let kind = (flags >> 2) & 3;
        if kind == 2 {
            let ms = len as u64 * 8;
            self.mono_ms += ms;
            return Some(MediaOp::Tick(ms));
        }
        let payload = self.take(len);
        Some(match kind {
            3 if flags & 0x10 != 0 => MediaOp::Republish,
            3 if flags & 0x20 != 0 => MediaOp::WriteFailed,
            3 => MediaOp::Metadata(payload),
            _ => MediaOp::Media {
                video: flags & 1 != 0,
                timestamp: self.timestamp,
                tag: payload,
            },
        })
    }
}

/// Feeds `ops` to a file output (HLS, DASH or a recorder) as the worker does, discarding the file
/// operations except to remember the last file opened (for [`MediaOp::WriteFailed`]).
pub fn drive(output: &mut dyn FileOutput, ops: MediaOps<'_>, unix0: u64) {
    let mut ops = ops;
    let mut file_ops = Vec::new();
    let mut last_open: Option<PathBuf> = None;
    let mut rng = Rng::new(0);
    while let Some(op) = ops.next() {
        let now = Now {
            mono_ms: ops.mono_ms,
            unix_ms: unix0 + ops.mono_ms,
        };
        match op {
            MediaOp::Media {
                video,
                timestamp,
                tag,
            } => output.on_media(
                video,
                timestamp,
                &bytes::Bytes::copy_from_slice(tag),
                now,
                &mut file_ops,
            ),
            MediaOp::Metadata(payload) => output.on_metadata(payload),
            MediaOp::Tick(_) => {
                let _ = output.on_tick(now, &mut file_ops);
            }
            MediaOp::Republish => {
                output.finish(now, &mut file_ops);
                output.restart(now, &mut |b: &mut [u8]| {
                    b.iter_mut().for_each(|x| *x = rng.next_u64() as u8)
                });
            }
            MediaOp::WriteFailed => {
                if let Some(path) = last_open.take() {
                    output.on_write_failed(&path);
                }
            }
        }
        for op in file_ops.drain(..) {
            if let FileOp::Open { path } | FileOp::OpenRecording { path, .. } = op {
                last_open = Some(path);
            }
        }
    }
    let end = Now {
        mono_ms: ops.mono_ms,
        unix_ms: unix0 + ops.mono_ms,
    };
    output.finish(end, &mut file_ops);
    // Cleanup after the publisher left runs to completion within a bounded number of ticks.
    let mut now = end;
    for _ in 0..64 {
        file_ops.clear();
        match output.on_tick(now, &mut file_ops) {
            Some(at) => {
                now.mono_ms = at.max(now.mono_ms + 1);
                now.unix_ms = unix0 + now.mono_ms;
            }
            None => break,
        }
    }
    let _ = output.is_done();
}
