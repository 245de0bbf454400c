//! MP4 demuxer index for RTMP video-on-demand playback.
//!
//! [`parse_index`] reads only box headers at the top level, reads `moov` (and each
//! `moof`) whole, and expands the sample tables of the first supported video track and
//! the first supported audio track into one list of [`Sample`]s sorted by decode time.
//! The caller then reads each sample by byte range and sends it to RTMP players with the
//! FLV tag prefix from [`Sample::flv_prefix`].
//!
//! Every length and count comes from untrusted input: counts are checked against the
//! bytes of their box before anything is allocated, offsets use checked arithmetic, and
//! nothing here indexes a slice in a way that can panic.

use std::io;

use bytes::{BufMut, Bytes, BytesMut};

/// Largest `moof` read into memory; real fragments are a few KiB to a few hundred KiB.
const MAX_MOOF_BYTES: u64 = 16 << 20;

/// Samples reserved up front at most; a larger count grows the vector as samples are
/// actually produced, so a tiny hostile file cannot make us reserve `max_samples`.
const MAX_RESERVE: usize = 1 << 16;

/// ISO BMFF `sample_is_non_sync_sample` bit of the sample flags.
const SAMPLE_NON_SYNC: u32 = 0x1_0000;

/// Anything that can read bytes at an offset without a shared cursor.
pub trait ReadAt {
    /// Reads up to `buf.len()` bytes at `offset`; returns 0 at end of input.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
}

#[cfg(unix)]
impl ReadAt for std::fs::File {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        std::os::unix::fs::FileExt::read_at(self, buf, offset)
    }
}

impl ReadAt for [u8] {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let src = usize::try_from(offset)
            .ok()
            .and_then(|o| self.get(o..))
            .unwrap_or(&[]);
        let n = src.len().min(buf.len());
        if let (Some(dst), Some(src)) = (buf.get_mut(..n), src.get(..n)) {
            dst.copy_from_slice(src);
        }
        Ok(n)
    }
}

impl ReadAt for Vec<u8> {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.as_slice().read_at(buf, offset)
    }
}

/// Fills `buf` from `offset`, retrying short reads; end of input is `UnexpectedEof`.
pub fn read_exact_at<R: ReadAt + ?Sized>(r: &R, buf: &mut [u8], offset: u64) -> io::Result<()> {
    let mut done = 0usize;
    while let Some(rest) = buf.get_mut(done..).filter(|b| !b.is_empty()) {
        match r.read_at(rest, offset.saturating_add(done as u64)) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "unexpected end of file",
                ))
            }
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// One audio or video sample (access unit) of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// Absolute file offset of the sample data.
    pub offset: u64,
    /// Size of the sample data in bytes.
    pub size: u32,
    /// Decode time in ms; the earliest sample of the file is at 0 (edit lists ignored).
    pub dts_ms: u32,
    /// Composition offset (pts - dts) in ms; 0 for audio.
    pub cts_ms: i32,
    /// True for the video track, false for the audio track.
    pub video: bool,
    /// Sync sample (always true for audio).
    pub keyframe: bool,
}

impl Sample {
    /// The FLV tag-body prefix an RTMP message needs before the raw sample bytes:
    /// video AVC `[frame_type<<4 | 7, 1, cts (signed 24-bit BE)]`, audio AAC `[0xAF, 1]`.
    /// Returns the bytes and how many of them are used. Only meaningful for AVC/AAC.
    pub fn flv_prefix(&self) -> ([u8; 5], usize) {
        if self.video {
            let frame_type: u8 = if self.keyframe { 1 } else { 2 };
            // Two's complement low 24 bits; clamp so large offsets don't wrap sign.
            let c = (self.cts_ms.clamp(-0x80_0000, 0x7F_FFFF) as u32).to_be_bytes();
            ([frame_type << 4 | 7, 1, c[1], c[2], c[3]], 5)
        } else {
            ([0xAF, 1, 0, 0, 0], 2)
        }
    }
}

/// FLV video sequence-header tag body for AVC: `[0x17, 0, 0, 0, 0]` + avcC.
pub fn avc_sequence_header(avcc: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(5 + avcc.len());
    b.put_slice(&[0x17, 0, 0, 0, 0]);
    b.put_slice(avcc);
    b.freeze()
}

/// FLV audio sequence-header tag body for AAC: `[0xAF, 0]` + AudioSpecificConfig.
pub fn aac_sequence_header(asc: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(2 + asc.len());
    b.put_slice(&[0xAF, 0]);
    b.put_slice(asc);
    b.freeze()
}

/// Video codec with its decoder configuration record (the config box payload as stored,
/// after the 8-byte box header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VideoCodec {
    /// H.264 with its `avcC` AVCDecoderConfigurationRecord.
    Avc {
        /// `avcC` payload.
        avcc: Bytes,
    },
    /// H.265 with its `hvcC` HEVCDecoderConfigurationRecord.
    Hevc {
        /// `hvcC` payload.
        hvcc: Bytes,
    },
    /// AV1 with its `av1C` AV1CodecConfigurationRecord.
    Av1 {
        /// `av1C` payload.
        av1c: Bytes,
    },
    /// VP9 with its `vpcC` payload (a full box: version and flags come first).
    Vp9 {
        /// `vpcC` payload.
        vpcc: Bytes,
    },
}

/// Audio codec with its configuration (the config box payload as stored, after the
/// 8-byte box header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AudioCodec {
    /// AAC with the AudioSpecificConfig from the esds DecoderSpecificInfo.
    Aac {
        /// AudioSpecificConfig.
        asc: Bytes,
    },
    /// MPEG-1/2 layer III.
    Mp3,
    /// Opus with its `dOps` payload.
    Opus {
        /// `dOps` payload.
        dops: Bytes,
    },
    /// FLAC with its `dfLa` payload (a full box: version and flags come first).
    Flac {
        /// `dfLa` payload.
        dfla: Bytes,
    },
    /// AC-3 with its `dac3` payload.
    Ac3 {
        /// `dac3` payload.
        dac3: Bytes,
    },
    /// E-AC-3 with its `dec3` payload.
    Eac3 {
        /// `dec3` payload.
        dec3: Bytes,
    },
}

/// The video track chosen for playback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoTrack {
    /// Codec and decoder configuration.
    pub codec: VideoCodec,
    /// Coded width (sample entry, else tkhd).
    pub width: u32,
    /// Coded height (sample entry, else tkhd).
    pub height: u32,
    /// Media timescale (mdhd), units per second.
    pub timescale: u32,
}

impl VideoTrack {
    /// FLV sequence-header tag body for this track; `None` unless the codec is AVC.
    pub fn sequence_header(&self) -> Option<Bytes> {
        match &self.codec {
            VideoCodec::Avc { avcc } => Some(avc_sequence_header(avcc)),
            _ => None,
        }
    }
}

/// The audio track chosen for playback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioTrack {
    /// Codec and configuration.
    pub codec: AudioCodec,
    /// Sample rate from the sample entry (mdhd timescale when the entry says 0).
    pub sample_rate: u32,
    /// Channel count from the sample entry.
    pub channels: u16,
    /// Media timescale (mdhd), units per second.
    pub timescale: u32,
}

impl AudioTrack {
    /// FLV sequence-header tag body for this track; `None` unless the codec is AAC.
    pub fn sequence_header(&self) -> Option<Bytes> {
        match &self.codec {
            AudioCodec::Aac { asc } => Some(aac_sequence_header(asc)),
            _ => None,
        }
    }
}

/// Everything playback needs to know about an MP4 file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mp4Index {
    /// Movie duration in ms (the longest of mvhd, mehd and the samples' extent).
    pub duration_ms: u64,
    /// First supported video track.
    pub video: Option<VideoTrack>,
    /// First supported audio track.
    pub audio: Option<AudioTrack>,
    /// Samples of both tracks sorted by `(dts_ms, offset)`.
    pub samples: Vec<Sample>,
}

/// Why an MP4 file could not be indexed.
#[derive(Debug, thiserror::Error)]
pub enum Mp4Error {
    /// Reading the file failed.
    #[error("I/O error reading MP4: {0}")]
    Io(#[from] io::Error),
    /// The file does not start with an MP4 box.
    #[error("not an MP4 file")]
    NotMp4,
    /// No `moov` box was found.
    #[error("MP4 has no moov box")]
    NoMoov,
    /// A box or table is inconsistent.
    #[error("malformed MP4: {0}")]
    Malformed(&'static str),
    /// The file exceeds one of the [`Limits`].
    #[error("MP4 exceeds a limit: {0}")]
    TooBig(&'static str),
    /// Neither a supported video nor a supported audio track.
    #[error("MP4 has no supported audio or video track")]
    NoTracks,
}

/// Resource bounds for [`parse_index`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest `moov` read into memory (default 64 MiB).
    pub max_moov_bytes: u64,
    /// Most samples indexed over both tracks (default 10 000 000).
    pub max_samples: usize,
    /// Most top-level boxes scanned (default 10 000 000).
    pub max_top_level_boxes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_moov_bytes: 64 << 20,
            max_samples: 10_000_000,
            max_top_level_boxes: 10_000_000,
        }
    }
}

type Result<T> = std::result::Result<T, Mp4Error>;

fn bad<T>(msg: &'static str) -> Result<T> {
    Err(Mp4Error::Malformed(msg))
}

/// Big-endian reader over a box payload; every read is bounds-checked.
struct Cur<'a> {
    d: &'a [u8],
}

impl<'a> Cur<'a> {
    fn new(d: &'a [u8]) -> Self {
        Cur { d }
    }

    fn left(&self) -> usize {
        self.d.len()
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.d.len() {
            return bad("box payload truncated");
        }
        let (a, b) = self.d.split_at(n);
        self.d = b;
        Ok(a)
    }

    fn arr<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.arr::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_be_bytes(self.arr()?))
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_be_bytes(self.arr()?))
    }

    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_be_bytes(self.arr()?))
    }

    /// Version and flags of a full box.
    fn full(&mut self) -> Result<(u8, u32)> {
        let v = self.u32()?;
        Ok(((v >> 24) as u8, v & 0x00FF_FFFF))
    }

    /// A u32 (version 0) or u64 (version 1) field.
    fn uv(&mut self, version: u8) -> Result<u64> {
        if version == 1 {
            self.u64()
        } else {
            self.u32().map(u64::from)
        }
    }
}

/// Splits the next child box off `d`: `(type, payload)`. Size 0 means "to the end of the
/// parent"; fewer than 8 bytes left is trailing padding (QuickTime writes a zero u32).
fn next_box<'a>(d: &mut &'a [u8]) -> Result<Option<([u8; 4], &'a [u8])>> {
    if d.len() < 8 {
        *d = &[];
        return Ok(None);
    }
    let mut c = Cur::new(d);
    let size32 = c.u32()?;
    let typ = c.arr::<4>()?;
    let (hdr, size) = match size32 {
        0 => (8u64, d.len() as u64),
        1 => (16u64, c.u64()?),
        n => (8u64, u64::from(n)),
    };
    if size < hdr {
        return bad("box size smaller than its header");
    }
    if size > d.len() as u64 {
        return bad("box runs past its parent");
    }
    // Both fit in usize: size <= d.len().
    let (this, rest) = d.split_at(size as usize);
    *d = rest;
    Ok(this.get(hdr as usize..).map(|p| (typ, p)))
}

/// Calls `f` for every child box of `d`.
fn for_each_box<'a>(
    mut d: &'a [u8],
    mut f: impl FnMut([u8; 4], &'a [u8]) -> Result<()>,
) -> Result<()> {
    while let Some((t, p)) = next_box(&mut d)? {
        f(t, p)?;
    }
    Ok(())
}

/// First child box of type `want`.
fn find_box<'a>(d: &'a [u8], want: &[u8; 4]) -> Result<Option<&'a [u8]>> {
    let mut d = d;
    while let Some((t, p)) = next_box(&mut d)? {
        if &t == want {
            return Ok(Some(p));
        }
    }
    Ok(None)
}

/// Media units to ms, truncating, saturating at u64::MAX.
fn units_to_ms(t: u64, timescale: u32) -> u64 {
    if timescale == 0 {
        return 0;
    }
    u64::try_from(u128::from(t) * 1000 / u128::from(timescale)).unwrap_or(u64::MAX)
}

/// Builds a sample from media-unit times; pts and dts are each floored to ms so that
/// `dts_ms + cts_ms` is the pts in ms.
fn make_sample(
    offset: u64,
    size: u32,
    dts: u64,
    cto: i64,
    ts: u32,
    video: bool,
    key: bool,
) -> Sample {
    let ts128 = i128::from(ts.max(1));
    let dts_ms = i128::from(dts) * 1000 / ts128;
    let pts_ms = ((i128::from(dts) + i128::from(cto)) * 1000).div_euclid(ts128);
    let cts = if video { pts_ms - dts_ms } else { 0 };
    Sample {
        offset,
        size,
        dts_ms: u32::try_from(dts_ms).unwrap_or(u32::MAX),
        cts_ms: cts.clamp(i128::from(i32::MIN), i128::from(i32::MAX)) as i32,
        video,
        keyframe: key || !video,
    }
}

/// Whether `[offset, offset + size)` lies inside the file (truncated files keep the rest).
fn in_file(offset: u64, size: u32, file_len: u64) -> bool {
    offset
        .checked_add(u64::from(size))
        .is_some_and(|end| end <= file_len)
}

// ---------------------------------------------------------------------------------------
// Sample entries (stsd)

enum Entry {
    Video(VideoCodec, u32, u32),
    Audio(AudioCodec, u32, u16),
}

/// Reads an MPEG-4 descriptor: tag and body (length is 1-4 bytes of 7 bits).
fn read_descr<'a>(c: &mut Cur<'a>) -> Result<(u8, &'a [u8])> {
    let tag = c.u8()?;
    let mut len = 0usize;
    for _ in 0..4 {
        let b = c.u8()?;
        len = len << 7 | usize::from(b & 0x7F);
        if b & 0x80 == 0 {
            break;
        }
    }
    Ok((tag, c.take(len)?))
}

/// objectTypeIndication and DecoderSpecificInfo from an esds payload (after version).
fn parse_esds(d: &[u8]) -> Result<(u8, Option<&[u8]>)> {
    let mut c = Cur::new(d);
    let (tag, es) = read_descr(&mut c)?;
    if tag != 0x03 {
        return bad("esds without ES_Descriptor");
    }
    let mut e = Cur::new(es);
    e.take(2)?; // ES_ID
    let flags = e.u8()?;
    if flags & 0x80 != 0 {
        e.take(2)?; // dependsOn_ES_ID
    }
    if flags & 0x40 != 0 {
        let n = e.u8()?;
        e.take(usize::from(n))?; // URL
    }
    if flags & 0x20 != 0 {
        e.take(2)?; // OCR_ES_Id
    }
    while e.left() > 0 {
        let (tag, body) = read_descr(&mut e)?;
        if tag != 0x04 {
            continue;
        }
        let mut dc = Cur::new(body);
        let oti = dc.u8()?;
        dc.take(12)?; // streamType, bufferSizeDB, maxBitrate, avgBitrate
        while dc.left() > 0 {
            let (tag, dsi) = read_descr(&mut dc)?;
            if tag == 0x05 {
                return Ok((oti, Some(dsi)));
            }
        }
        return Ok((oti, None));
    }
    bad("esds without DecoderConfigDescriptor")
}

/// Sample rate and channel count from an AudioSpecificConfig. The sample entry of an
/// ISO file holds template values (writers put 2 channels there for mono AAC).
fn asc_rate_channels(asc: &[u8]) -> Option<(u32, u16)> {
    const RATES: [u32; 13] = [
        96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
    ];
    let mut bits = asc
        .iter()
        .take(8)
        .fold(0u64, |acc, b| acc << 8 | u64::from(*b));
    bits = bits
        .checked_shl(64 - 8 * asc.len().min(8) as u32)
        .unwrap_or(0);
    let mut read = |n: u32| {
        let v = bits >> (64 - n);
        bits <<= n;
        v as u32
    };
    if read(5) == 31 {
        read(6);
    }
    let idx = read(4);
    let rate = if idx == 15 {
        read(24)
    } else {
        *RATES.get(idx as usize)?
    };
    let channels = match read(4) {
        0 => return None, // defined by a program config element
        7 => 8,
        c => c as u16,
    };
    Some((rate, channels))
}

/// Parses the first sample entry of `stsd`; `None` for codecs we cannot play.
fn parse_stsd(d: &[u8], handler: [u8; 4], timescale: u32) -> Result<Option<Entry>> {
    let mut c = Cur::new(d);
    c.full()?;
    let count = c.u32()?;
    if count == 0 {
        return Ok(None);
    }
    let mut rest = c.d;
    let Some((typ, p)) = next_box(&mut rest)? else {
        return bad("stsd entry missing");
    };
    let cfg = |children: &[u8], want: &[u8; 4]| -> Result<Option<Bytes>> {
        Ok(find_box(children, want)?.map(Bytes::copy_from_slice))
    };
    match &handler {
        b"vide" => {
            // VisualSampleEntry: 78 bytes of fields, then child boxes.
            let mut v = Cur::new(p);
            v.take(24)?;
            let w = u32::from(v.u16()?);
            let h = u32::from(v.u16()?);
            v.take(50)?;
            let kids = v.d;
            let codec = match &typ {
                b"avc1" | b"avc3" => cfg(kids, b"avcC")?.map(|avcc| VideoCodec::Avc { avcc }),
                b"hvc1" | b"hev1" => cfg(kids, b"hvcC")?.map(|hvcc| VideoCodec::Hevc { hvcc }),
                b"av01" => cfg(kids, b"av1C")?.map(|av1c| VideoCodec::Av1 { av1c }),
                b"vp09" => cfg(kids, b"vpcC")?.map(|vpcc| VideoCodec::Vp9 { vpcc }),
                _ => None,
            };
            Ok(codec.map(|c| Entry::Video(c, w, h)))
        }
        b"soun" => {
            // AudioSampleEntry: 28 bytes; QuickTime versions 1 and 2 add 16 and 36.
            let mut a = Cur::new(p);
            a.take(8)?;
            let qt_version = a.u16()?;
            a.take(6)?;
            let mut channels = a.u16()?;
            a.take(6)?;
            let mut rate = a.u32()? >> 16;
            match qt_version {
                1 => {
                    a.take(16)?;
                }
                2 => {
                    a.take(4)?;
                    let r = f64::from_bits(a.u64()?);
                    // `as` saturates; NaN becomes 0.
                    rate = r as u32;
                    channels = u16::try_from(a.u32()?).unwrap_or(0);
                    a.take(20)?;
                }
                _ => {}
            }
            if rate == 0 {
                rate = timescale;
            }
            let kids = a.d;
            // QuickTime files nest esds inside a `wave` box.
            let esds = match (find_box(kids, b"esds")?, find_box(kids, b"wave")?) {
                (Some(e), _) => Some(e),
                (None, Some(wave)) => find_box(wave, b"esds")?,
                (None, None) => None,
            };
            let codec = match &typ {
                b"mp4a" => match esds {
                    Some(esds) if esds.len() >= 4 => {
                        match parse_esds(esds.get(4..).unwrap_or(&[]))? {
                            (0x40 | 0x66..=0x68, Some(asc)) => {
                                if let Some((r, ch)) = asc_rate_channels(asc) {
                                    (rate, channels) = (r, ch);
                                }
                                Some(AudioCodec::Aac {
                                    asc: Bytes::copy_from_slice(asc),
                                })
                            }
                            (0x69 | 0x6B, _) => Some(AudioCodec::Mp3),
                            _ => None,
                        }
                    }
                    _ => None,
                },
                b".mp3" | b"mp3 " => Some(AudioCodec::Mp3),
                b"Opus" => cfg(kids, b"dOps")?.map(|dops| AudioCodec::Opus { dops }),
                b"fLaC" => cfg(kids, b"dfLa")?.map(|dfla| AudioCodec::Flac { dfla }),
                b"ac-3" => cfg(kids, b"dac3")?.map(|dac3| AudioCodec::Ac3 { dac3 }),
                b"ec-3" => cfg(kids, b"dec3")?.map(|dec3| AudioCodec::Eac3 { dec3 }),
                _ => None,
            };
            Ok(codec.map(|c| Entry::Audio(c, rate, channels)))
        }
        _ => Ok(None),
    }
}

// ---------------------------------------------------------------------------------------
// Progressive sample tables (stbl)

#[derive(Default)]
struct Stbl<'a> {
    stsd: Option<&'a [u8]>,
    stts: Option<&'a [u8]>,
    ctts: Option<&'a [u8]>,
    stss: Option<&'a [u8]>,
    stsz: Option<&'a [u8]>,
    stz2: Option<&'a [u8]>,
    stsc: Option<&'a [u8]>,
    stco: Option<&'a [u8]>,
    co64: Option<&'a [u8]>,
}

/// A table of `count` fixed-size entries after a full-box header and a u32 count;
/// the count is checked against the payload before anything uses it.
fn table(d: &[u8], entry: usize) -> Result<(u8, &[u8], usize)> {
    let mut c = Cur::new(d);
    let (v, _) = c.full()?;
    let n = c.u32()? as usize;
    let bytes = n.checked_mul(entry).filter(|b| *b <= c.left());
    match bytes {
        Some(b) => Ok((v, c.take(b)?, n)),
        None => bad("table entry count exceeds its box"),
    }
}

fn be32_at(d: &[u8], i: usize) -> u32 {
    i.checked_mul(4)
        .and_then(|o| d.get(o..o + 4))
        .and_then(|s| s.try_into().ok())
        .map_or(0, u32::from_be_bytes)
}

fn be64_at(d: &[u8], i: usize) -> u64 {
    i.checked_mul(8)
        .and_then(|o| d.get(o..o + 8))
        .and_then(|s| s.try_into().ok())
        .map_or(0, u64::from_be_bytes)
}

/// Run-length table (stts, ctts): pairs of (count, value) u32.
struct Runs<'a> {
    d: &'a [u8],
    next: usize,
    left: u32,
    value: u32,
}

impl<'a> Runs<'a> {
    fn new(d: &'a [u8]) -> Self {
        Runs {
            d,
            next: 0,
            left: 0,
            value: 0,
        }
    }

    /// Value for the next sample; past the end of the table the last value repeats.
    fn step(&mut self) -> u32 {
        while self.left == 0 {
            if self.next * 8 >= self.d.len() {
                return self.value;
            }
            self.left = be32_at(self.d, self.next * 2);
            self.value = be32_at(self.d, self.next * 2 + 1);
            self.next += 1;
        }
        self.left -= 1;
        self.value
    }
}

enum Sizes<'a> {
    Uniform(u32),
    Table(&'a [u8]),
    /// stz2 with field size 4, 8 or 16 bits.
    Compact(&'a [u8], u8),
}

impl Sizes<'_> {
    fn get(&self, i: usize) -> u32 {
        match *self {
            Sizes::Uniform(s) => s,
            Sizes::Table(d) => be32_at(d, i),
            Sizes::Compact(d, 4) => d.get(i / 2).map_or(0, |b| {
                if i & 1 == 0 {
                    u32::from(b >> 4)
                } else {
                    u32::from(b & 0xF)
                }
            }),
            Sizes::Compact(d, 8) => d.get(i).map_or(0, |b| u32::from(*b)),
            Sizes::Compact(d, _) => i
                .checked_mul(2)
                .and_then(|o| d.get(o..o + 2))
                .and_then(|s| s.try_into().ok())
                .map_or(0, |b| u32::from(u16::from_be_bytes(b))),
        }
    }
}

/// Sample count and sizes from stsz or stz2.
fn parse_sizes<'a>(stsz: Option<&'a [u8]>, stz2: Option<&'a [u8]>) -> Result<(usize, Sizes<'a>)> {
    if let Some(d) = stsz {
        let mut c = Cur::new(d);
        c.full()?;
        let uniform = c.u32()?;
        let n = c.u32()? as usize;
        if uniform != 0 {
            return Ok((n, Sizes::Uniform(uniform)));
        }
        return match n.checked_mul(4).filter(|b| *b <= c.left()) {
            Some(b) => Ok((n, Sizes::Table(c.take(b)?))),
            None => bad("stsz sample count exceeds its box"),
        };
    }
    if let Some(d) = stz2 {
        let mut c = Cur::new(d);
        c.full()?;
        let field = c.u32()? as u8;
        let n = c.u32()? as usize;
        let bytes = match field {
            4 => n.div_ceil(2),
            8 => n,
            16 => n.saturating_mul(2),
            _ => return bad("stz2 field size not 4, 8 or 16"),
        };
        if bytes > c.left() {
            return bad("stz2 sample count exceeds its box");
        }
        return Ok((n, Sizes::Compact(c.take(bytes)?, field)));
    }
    Ok((0, Sizes::Uniform(0)))
}

/// Expands a track's sample tables into `out`; returns the decode time (media units)
/// just after the last sample, where fragments continue.
fn expand_stbl(
    st: &Stbl<'_>,
    ts: u32,
    video: bool,
    file_len: u64,
    max_samples: usize,
    out: &mut Vec<Sample>,
) -> Result<u64> {
    let (n, sizes) = parse_sizes(st.stsz, st.stz2)?;
    if n == 0 {
        return Ok(0);
    }
    if n > max_samples.saturating_sub(out.len()) {
        return Err(Mp4Error::TooBig("more samples than max_samples"));
    }
    let (chunks, wide) = match (st.co64, st.stco) {
        (Some(d), _) => (table(d, 8)?, true),
        (None, Some(d)) => (table(d, 4)?, false),
        _ => return bad("sample table without stco/co64"),
    };
    let (_, co, n_chunks) = chunks;
    let chunk_offset = |i: usize| {
        if wide {
            be64_at(co, i)
        } else {
            u64::from(be32_at(co, i))
        }
    };
    let Some(stsc) = st.stsc else {
        return bad("sample table without stsc");
    };
    let (_, stsc, n_stsc) = table(stsc, 12)?;
    let (_, stts, _) = match st.stts {
        Some(d) => table(d, 8)?,
        None => return bad("sample table without stts"),
    };
    let ctts = match st.ctts {
        Some(d) => table(d, 8)?.1,
        None => &[],
    };
    let stss = match st.stss {
        Some(d) => Some(table(d, 4)?),
        None => None,
    };

    let mut stts = Runs::new(stts);
    let mut ctts = Runs::new(ctts);
    let mut stss_next = 0usize;
    let mut dts = 0u64;
    let mut i = 0usize;
    out.reserve(n.min(MAX_RESERVE));
    'entries: for e in 0..n_stsc {
        let first = be32_at(stsc, e * 3) as usize;
        let per_chunk = be32_at(stsc, e * 3 + 1);
        let next_first = if e + 1 < n_stsc {
            be32_at(stsc, (e + 1) * 3) as usize
        } else {
            n_chunks.saturating_add(1)
        };
        if first == 0 || next_first < first {
            return bad("stsc first_chunk not increasing");
        }
        for chunk in first..next_first.min(n_chunks.saturating_add(1)) {
            let mut off = chunk_offset(chunk - 1);
            for _ in 0..per_chunk {
                if i >= n {
                    break 'entries;
                }
                let size = sizes.get(i);
                let delta = stts.step();
                // ctts v0 is unsigned but writers put negative offsets there too;
                // reading both versions as signed is what every player does.
                let cto = i64::from(ctts.step() as i32);
                let key = match stss {
                    None => true,
                    Some((_, d, count)) => {
                        let num = i as u64 + 1;
                        while stss_next < count && u64::from(be32_at(d, stss_next)) < num {
                            stss_next += 1;
                        }
                        stss_next < count && u64::from(be32_at(d, stss_next)) == num
                    }
                };
                if in_file(off, size, file_len) {
                    out.push(make_sample(off, size, dts, cto, ts, video, key));
                }
                off = off.saturating_add(u64::from(size));
                dts = dts.saturating_add(u64::from(delta));
                i += 1;
            }
        }
    }
    Ok(dts)
}

// ---------------------------------------------------------------------------------------
// moov

struct Trak<'a> {
    id: u32,
    handler: [u8; 4],
    timescale: u32,
    tkhd_w: u32,
    tkhd_h: u32,
    stbl: Stbl<'a>,
}

fn parse_trak(d: &[u8]) -> Result<Trak<'_>> {
    let mut t = Trak {
        id: 0,
        handler: [0; 4],
        timescale: 0,
        tkhd_w: 0,
        tkhd_h: 0,
        stbl: Stbl::default(),
    };
    for_each_box(d, |typ, p| {
        match &typ {
            b"tkhd" => {
                let mut c = Cur::new(p);
                let (v, _) = c.full()?;
                c.uv(v)?;
                c.uv(v)?;
                t.id = c.u32()?;
                c.take(4)?;
                c.uv(v)?;
                c.take(52)?; // reserved, layer, group, volume, matrix
                t.tkhd_w = c.u32()? >> 16;
                t.tkhd_h = c.u32()? >> 16;
            }
            b"mdia" => for_each_box(p, |typ, p| {
                match &typ {
                    b"mdhd" => {
                        let mut c = Cur::new(p);
                        let (v, _) = c.full()?;
                        c.uv(v)?;
                        c.uv(v)?;
                        t.timescale = c.u32()?;
                    }
                    b"hdlr" => {
                        let mut c = Cur::new(p);
                        c.full()?;
                        c.take(4)?;
                        t.handler = c.arr()?;
                    }
                    b"minf" => {
                        if let Some(stbl) = find_box(p, b"stbl")? {
                            for_each_box(stbl, |typ, p| {
                                let s = &mut t.stbl;
                                let slot = match &typ {
                                    b"stsd" => &mut s.stsd,
                                    b"stts" => &mut s.stts,
                                    b"ctts" => &mut s.ctts,
                                    b"stss" => &mut s.stss,
                                    b"stsz" => &mut s.stsz,
                                    b"stz2" => &mut s.stz2,
                                    b"stsc" => &mut s.stsc,
                                    b"stco" => &mut s.stco,
                                    b"co64" => &mut s.co64,
                                    _ => return Ok(()),
                                };
                                slot.get_or_insert(p);
                                Ok(())
                            })?;
                        }
                    }
                    _ => {}
                }
                Ok(())
            })?,
            _ => {}
        }
        Ok(())
    })?;
    Ok(t)
}

/// Per-track state while fragments are read.
struct FragTrack {
    id: u32,
    timescale: u32,
    video: bool,
    /// Decode time after the last sample seen, for fragments without tfdt.
    next_dts: u64,
    trex: Trex,
}

#[derive(Default, Clone, Copy)]
struct Trex {
    duration: u32,
    size: u32,
    flags: u32,
}

/// What the moov said, plus the samples gathered so far.
struct Movie {
    video: Option<VideoTrack>,
    audio: Option<AudioTrack>,
    tracks: Vec<FragTrack>,
    samples: Vec<Sample>,
    /// Longest of mvhd and mehd durations, in ms.
    header_ms: u64,
}

fn parse_moov(d: &[u8], file_len: u64, limits: &Limits) -> Result<Movie> {
    let mut mvhd_ms = 0u64;
    let mut mvhd_ts = 0u32;
    let mut mehd = 0u64;
    let mut trexes: Vec<(u32, Trex)> = Vec::new();
    let mut movie = Movie {
        video: None,
        audio: None,
        tracks: Vec::new(),
        samples: Vec::new(),
        header_ms: 0,
    };
    for_each_box(d, |typ, p| {
        match &typ {
            b"mvhd" => {
                let mut c = Cur::new(p);
                let (v, _) = c.full()?;
                c.uv(v)?;
                c.uv(v)?;
                mvhd_ts = c.u32()?;
                mvhd_ms = units_to_ms(c.uv(v)?, mvhd_ts);
            }
            b"mvex" => for_each_box(p, |typ, p| {
                let mut c = Cur::new(p);
                match &typ {
                    b"mehd" => {
                        let (v, _) = c.full()?;
                        mehd = c.uv(v)?;
                    }
                    // Bounded by the moov size: each trex is at least 32 bytes.
                    b"trex" => {
                        c.full()?;
                        let id = c.u32()?;
                        c.u32()?; // default_sample_description_index
                        let duration = c.u32()?;
                        let size = c.u32()?;
                        let flags = c.u32()?;
                        trexes.push((
                            id,
                            Trex {
                                duration,
                                size,
                                flags,
                            },
                        ));
                    }
                    _ => {}
                }
                Ok(())
            })?,
            b"trak" => {
                let t = parse_trak(p)?;
                let want = match &t.handler {
                    b"vide" => movie.video.is_none(),
                    b"soun" => movie.audio.is_none(),
                    _ => false,
                };
                if !want {
                    return Ok(());
                }
                let Some(stsd) = t.stbl.stsd else {
                    return Ok(());
                };
                let Some(entry) = parse_stsd(stsd, t.handler, t.timescale)? else {
                    return Ok(());
                };
                if t.timescale == 0 {
                    return bad("mdhd timescale is zero");
                }
                let video = matches!(entry, Entry::Video(..));
                let end = expand_stbl(
                    &t.stbl,
                    t.timescale,
                    video,
                    file_len,
                    limits.max_samples,
                    &mut movie.samples,
                )?;
                match entry {
                    Entry::Video(codec, w, h) => {
                        let (width, height) = if w != 0 && h != 0 {
                            (w, h)
                        } else {
                            (t.tkhd_w, t.tkhd_h)
                        };
                        movie.video = Some(VideoTrack {
                            codec,
                            width,
                            height,
                            timescale: t.timescale,
                        });
                    }
                    Entry::Audio(codec, sample_rate, channels) => {
                        movie.audio = Some(AudioTrack {
                            codec,
                            sample_rate,
                            channels,
                            timescale: t.timescale,
                        });
                    }
                }
                movie.tracks.push(FragTrack {
                    id: t.id,
                    timescale: t.timescale,
                    video,
                    next_dts: end,
                    trex: Trex::default(),
                });
            }
            _ => {}
        }
        Ok(())
    })?;
    for t in &mut movie.tracks {
        if let Some((_, x)) = trexes.iter().find(|(id, _)| *id == t.id) {
            t.trex = *x;
        }
    }
    movie.header_ms = mvhd_ms.max(units_to_ms(mehd, mvhd_ts));
    Ok(movie)
}

// ---------------------------------------------------------------------------------------
// Fragments (moof)

#[derive(Default)]
struct Tfhd {
    track_id: u32,
    base: Option<u64>,
    duration: Option<u32>,
    size: Option<u32>,
    flags: Option<u32>,
    base_is_moof: bool,
}

fn parse_tfhd(p: &[u8]) -> Result<Tfhd> {
    let mut c = Cur::new(p);
    let (_, f) = c.full()?;
    let mut t = Tfhd {
        track_id: c.u32()?,
        base_is_moof: f & 0x02_0000 != 0,
        ..Tfhd::default()
    };
    if f & 0x01 != 0 {
        t.base = Some(c.u64()?);
    }
    if f & 0x02 != 0 {
        c.u32()?; // sample_description_index: we play the first entry only
    }
    if f & 0x08 != 0 {
        t.duration = Some(c.u32()?);
    }
    if f & 0x10 != 0 {
        t.size = Some(c.u32()?);
    }
    if f & 0x20 != 0 {
        t.flags = Some(c.u32()?);
    }
    Ok(t)
}

/// Indexes one moof (its payload `d`, starting at file offset `moof_start`).
fn parse_moof(
    d: &[u8],
    moof_start: u64,
    file_len: u64,
    max_samples: usize,
    movie: &mut Movie,
) -> Result<()> {
    // Implicit base for a traf without flags: end of the previous traf's data.
    let mut prev_end: Option<u64> = None;
    for_each_box(d, |typ, traf| {
        if &typ != b"traf" {
            return Ok(());
        }
        let Some(tfhd) = find_box(traf, b"tfhd")? else {
            return bad("traf without tfhd");
        };
        let tfhd = parse_tfhd(tfhd)?;
        let tfdt = match find_box(traf, b"tfdt")? {
            Some(p) => {
                let mut c = Cur::new(p);
                let (v, _) = c.full()?;
                Some(c.uv(v)?)
            }
            None => None,
        };
        let base = match (tfhd.base, tfhd.base_is_moof) {
            (Some(b), _) => b,
            (None, true) => moof_start,
            (None, false) => prev_end.unwrap_or(moof_start),
        };
        let track_ix = movie.tracks.iter().position(|t| t.id == tfhd.track_id);
        let trex = track_ix
            .and_then(|i| movie.tracks.get(i))
            .map(|t| t.trex)
            .unwrap_or_default();
        let def_dur = tfhd.duration.unwrap_or(trex.duration);
        let def_size = tfhd.size.unwrap_or(trex.size);
        let def_flags = tfhd.flags.unwrap_or(trex.flags);
        let mut dts = tfdt
            .or_else(|| {
                track_ix
                    .and_then(|i| movie.tracks.get(i))
                    .map(|t| t.next_dts)
            })
            .unwrap_or(0);
        let mut pos = base;
        for_each_box(traf, |typ, p| {
            if &typ != b"trun" {
                return Ok(());
            }
            let mut c = Cur::new(p);
            let (_, f) = c.full()?;
            let count = c.u32()? as usize;
            if f & 0x01 != 0 {
                let off = c.u32()? as i32;
                pos = base
                    .checked_add_signed(i64::from(off))
                    .ok_or(Mp4Error::Malformed("trun data offset out of range"))?;
            }
            let first_flags = if f & 0x04 != 0 { Some(c.u32()?) } else { None };
            let per = 4 * (f & 0xF00).count_ones() as usize;
            if count.checked_mul(per).is_none_or(|b| b > c.left()) {
                return bad("trun sample count exceeds its box");
            }
            let Some(track) = track_ix.and_then(|i| movie.tracks.get(i)) else {
                // Ignored track: only its data extent matters (for the implicit base).
                let total = if f & 0x200 == 0 {
                    (count as u64).saturating_mul(u64::from(def_size))
                } else {
                    let size_at = if f & 0x100 != 0 { 1 } else { 0 };
                    let mut total = 0u64;
                    for _ in 0..count {
                        let rec = c.take(per)?;
                        total = total.saturating_add(u64::from(be32_at(rec, size_at)));
                    }
                    total
                };
                pos = pos.saturating_add(total);
                return Ok(());
            };
            let (ts, video) = (track.timescale, track.video);
            if count > max_samples.saturating_sub(movie.samples.len()) {
                return Err(Mp4Error::TooBig("more samples than max_samples"));
            }
            movie.samples.reserve(count.min(MAX_RESERVE));
            for i in 0..count {
                let dur = if f & 0x100 != 0 { c.u32()? } else { def_dur };
                let size = if f & 0x200 != 0 { c.u32()? } else { def_size };
                let mut flags = if f & 0x400 != 0 { c.u32()? } else { def_flags };
                if i == 0 {
                    flags = first_flags.unwrap_or(flags);
                }
                // As with ctts: v0 is unsigned on paper, signed in practice.
                let cto = if f & 0x800 != 0 {
                    i64::from(c.u32()? as i32)
                } else {
                    0
                };
                if in_file(pos, size, file_len) {
                    let key = flags & SAMPLE_NON_SYNC == 0;
                    movie
                        .samples
                        .push(make_sample(pos, size, dts, cto, ts, video, key));
                }
                pos = pos.saturating_add(u64::from(size));
                dts = dts.saturating_add(u64::from(dur));
            }
            Ok(())
        })?;
        if let Some(t) = track_ix.and_then(|i| movie.tracks.get_mut(i)) {
            t.next_dts = dts;
        }
        prev_end = Some(pos);
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------
// Top level

/// Box types an MP4 (or QuickTime) file may start with.
fn known_first_box(t: &[u8; 4]) -> bool {
    matches!(
        t,
        b"ftyp"
            | b"styp"
            | b"moov"
            | b"mdat"
            | b"free"
            | b"skip"
            | b"wide"
            | b"pdin"
            | b"uuid"
            | b"sidx"
            | b"moof"
    )
}

fn read_payload<R: ReadAt + ?Sized>(file: &R, start: u64, len: u64) -> Result<Vec<u8>> {
    let n = usize::try_from(len).map_err(|_| Mp4Error::TooBig("box larger than memory"))?;
    let mut buf = vec![0u8; n];
    read_exact_at(file, &mut buf, start)?;
    Ok(buf)
}

/// Indexes an MP4 file: progressive (moov first or last), fragmented (moov + moof/mdat
/// pairs) or both. A truncated tail (a recorder that crashed) loses only the samples
/// whose bytes are past `file_len`.
pub fn parse_index<R: ReadAt + ?Sized>(
    file: &R,
    file_len: u64,
    limits: &Limits,
) -> Result<Mp4Index> {
    if file_len < 8 {
        return Err(Mp4Error::NotMp4);
    }
    let mut movie: Option<Movie> = None;
    // moofs seen before the moov (unusual): their defaults live in the moov.
    let mut early_moofs: Vec<(u64, u64, u64)> = Vec::new();
    let mut pos = 0u64;
    let mut boxes = 0usize;
    while file_len - pos >= 8 {
        let left = file_len - pos;
        let mut hdr = [0u8; 8];
        read_exact_at(file, &mut hdr, pos)?;
        let [s0, s1, s2, s3, t0, t1, t2, t3, ..] = hdr;
        let size32 = u32::from_be_bytes([s0, s1, s2, s3]);
        let typ = [t0, t1, t2, t3];
        if pos == 0 && !known_first_box(&typ) {
            return Err(Mp4Error::NotMp4);
        }
        let (hlen, size) = match size32 {
            0 => (8u64, left),
            1 => {
                if left < 16 {
                    break;
                }
                let mut large = [0u8; 8];
                read_exact_at(file, &mut large, pos + 8)?;
                (16u64, u64::from_be_bytes(large))
            }
            n => (8u64, u64::from(n)),
        };
        boxes += 1;
        if boxes > limits.max_top_level_boxes {
            return Err(Mp4Error::TooBig(
                "more top-level boxes than max_top_level_boxes",
            ));
        }
        if size < hlen {
            if pos == 0 {
                return Err(Mp4Error::NotMp4);
            }
            if movie.is_some() {
                break; // garbage after a complete movie, e.g. a torn write
            }
            return bad("top-level box size smaller than its header");
        }
        let truncated = size > left;
        match &typ {
            b"moov" if movie.is_none() => {
                if truncated {
                    return bad("moov runs past the end of the file");
                }
                if size - hlen > limits.max_moov_bytes {
                    return Err(Mp4Error::TooBig("moov larger than max_moov_bytes"));
                }
                let buf = read_payload(file, pos + hlen, size - hlen)?;
                movie = Some(parse_moov(&buf, file_len, limits)?);
            }
            // A moof cut short by the end of the file has no usable samples.
            b"moof" if !truncated => {
                if size - hlen > MAX_MOOF_BYTES {
                    return Err(Mp4Error::TooBig("moof larger than 16 MiB"));
                }
                match movie.as_mut() {
                    Some(m) => {
                        let buf = read_payload(file, pos + hlen, size - hlen)?;
                        parse_moof(&buf, pos, file_len, limits.max_samples, m)?;
                    }
                    None => early_moofs.push((pos, hlen, size)),
                }
            }
            _ => {}
        }
        if truncated {
            break;
        }
        pos += size;
    }
    let mut movie = movie.ok_or(Mp4Error::NoMoov)?;
    for (pos, hlen, size) in early_moofs {
        let buf = read_payload(file, pos + hlen, size - hlen)?;
        parse_moof(&buf, pos, file_len, limits.max_samples, &mut movie)?;
    }
    if movie.video.is_none() && movie.audio.is_none() {
        return Err(Mp4Error::NoTracks);
    }

    let mut samples = movie.samples;
    // Fragments may carry stream timestamps (a recording started mid-stream): start at 0.
    let shift = samples.iter().map(|s| s.dts_ms).min().unwrap_or(0);
    for s in &mut samples {
        s.dts_ms -= shift;
    }
    samples.sort_by_key(|s| (s.dts_ms, s.offset));
    let end_ms = movie
        .tracks
        .iter()
        .map(|t| units_to_ms(t.next_dts, t.timescale))
        .max()
        .unwrap_or(0)
        .saturating_sub(u64::from(shift));
    Ok(Mp4Index {
        duration_ms: movie.header_ms.max(end_ms),
        video: movie.video,
        audio: movie.audio,
        samples,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // ---- tiny box writer -------------------------------------------------------------

    fn bx(typ: &[u8; 4], parts: &[&[u8]]) -> Vec<u8> {
        let len: usize = 8 + parts.iter().map(|p| p.len()).sum::<usize>();
        let mut v = (len as u32).to_be_bytes().to_vec();
        v.extend_from_slice(typ);
        for p in parts {
            v.extend_from_slice(p);
        }
        v
    }

    fn full(typ: &[u8; 4], version: u8, flags: u32, parts: &[&[u8]]) -> Vec<u8> {
        let vf = (u32::from(version) << 24 | flags).to_be_bytes();
        let mut all: Vec<&[u8]> = vec![&vf];
        all.extend_from_slice(parts);
        bx(typ, &all)
    }

    fn be(v: &[u32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_be_bytes()).collect()
    }

    const AVCC: &[u8] = &[
        1, 0x64, 0, 0x1F, 0xFF, 0xE1, 0, 2, 0x67, 0x64, 1, 0, 2, 0x68, 0xEE,
    ];
    /// AAC-LC, 44100 Hz, mono.
    const ASC: &[u8] = &[0x12, 0x08];

    fn avc1(w: u16, h: u16) -> Vec<u8> {
        let mut p = vec![0u8; 6];
        p.extend_from_slice(&1u16.to_be_bytes());
        p.extend_from_slice(&[0; 16]);
        p.extend_from_slice(&w.to_be_bytes());
        p.extend_from_slice(&h.to_be_bytes());
        p.extend_from_slice(&be(&[0x48_0000, 0x48_0000, 0]));
        p.extend_from_slice(&1u16.to_be_bytes());
        p.extend_from_slice(&[0; 32]);
        p.extend_from_slice(&[0, 0x18, 0xFF, 0xFF]);
        p.extend_from_slice(&bx(b"avcC", &[AVCC]));
        bx(b"avc1", &[&p])
    }

    /// mp4a entry; descriptor lengths use the 4-byte form, as ffmpeg writes them.
    fn mp4a(channels: u16, rate: u16) -> Vec<u8> {
        let descr = |tag: u8, body: &[u8]| {
            let mut v = vec![tag, 0x80, 0x80, 0x80, body.len() as u8];
            v.extend_from_slice(body);
            v
        };
        let dsi = descr(5, ASC);
        let mut dcd = vec![0x40, 0x15, 0, 0, 0];
        dcd.extend_from_slice(&be(&[128_000, 128_000]));
        dcd.extend_from_slice(&dsi);
        let mut es = vec![0, 1, 0];
        es.extend_from_slice(&descr(4, &dcd));
        es.extend_from_slice(&descr(6, &[2]));
        let esds = full(b"esds", 0, 0, &[&descr(3, &es)]);
        let mut p = vec![0u8; 6];
        p.extend_from_slice(&1u16.to_be_bytes());
        p.extend_from_slice(&[0; 8]);
        p.extend_from_slice(&channels.to_be_bytes());
        p.extend_from_slice(&[0, 16, 0, 0, 0, 0]);
        p.extend_from_slice(&(u32::from(rate) << 16).to_be_bytes());
        p.extend_from_slice(&esds);
        bx(b"mp4a", &[&p])
    }

    fn trak(id: u32, handler: &[u8; 4], timescale: u32, tables: &[Vec<u8>]) -> Vec<u8> {
        let mut tk = be(&[0, 0, id, 0, 0, 0, 0, 0, 0]);
        tk.extend_from_slice(&be(&[0x1_0000, 0, 0, 0, 0x1_0000, 0, 0, 0, 0x4000_0000]));
        tk.extend_from_slice(&be(&[640 << 16, 480 << 16]));
        let tkhd = full(b"tkhd", 0, 3, &[&tk]);
        let mdhd = full(b"mdhd", 0, 0, &[&be(&[0, 0, timescale, 0, 0])]);
        let mut h = be(&[0]);
        h.extend_from_slice(handler);
        h.extend_from_slice(&[0; 13]);
        let hdlr = full(b"hdlr", 0, 0, &[&h]);
        let parts: Vec<&[u8]> = tables.iter().map(|t| t.as_slice()).collect();
        let stbl = bx(b"stbl", &parts);
        let minf = bx(b"minf", &[&bx(b"dinf", &[]), &stbl]);
        let mdia = bx(b"mdia", &[&mdhd, &hdlr, &minf]);
        bx(b"trak", &[&tkhd, &mdia])
    }

    fn stsd(entry: &[u8]) -> Vec<u8> {
        full(b"stsd", 0, 0, &[&be(&[1]), entry])
    }

    fn mvhd(timescale: u32, duration: u32) -> Vec<u8> {
        full(
            b"mvhd",
            0,
            0,
            &[&be(&[0, 0, timescale, duration]), &[0; 80]],
        )
    }

    fn ftyp() -> Vec<u8> {
        bx(b"ftyp", &[b"isom", &be(&[0x200]), b"isomiso2avc1mp41"])
    }

    fn parse(data: &[u8]) -> Result<Mp4Index> {
        parse_index(data, data.len() as u64, &Limits::default())
    }

    fn s(offset: u64, size: u32, dts_ms: u32, cts_ms: i32, video: bool, keyframe: bool) -> Sample {
        Sample {
            offset,
            size,
            dts_ms,
            cts_ms,
            video,
            keyframe,
        }
    }

    // ---- progressive -----------------------------------------------------------------

    /// ftyp, mdat (V V | A A | V V | A A | V) and moov (first or last). Video uses co64,
    /// the given ctts, stss and stsc with two runs; audio uses uniform stsz and stco.
    /// `large_mdat` writes the mdat header with a 64-bit largesize. Returns the file and
    /// the offset of the first mdat payload byte.
    fn progressive(ctts: Vec<u8>, moov_first: bool, large_mdat: bool) -> (Vec<u8>, u64) {
        let moov_for = |a: u64| {
            let vchunks = [a, a + 140, a + 230];
            let co64: Vec<u8> = vchunks.iter().flat_map(|c| c.to_be_bytes()).collect();
            let video = trak(
                1,
                b"vide",
                12800,
                &[
                    stsd(&avc1(320, 240)),
                    full(b"stts", 0, 0, &[&be(&[1, 5, 512])]),
                    ctts.clone(),
                    full(b"stss", 0, 0, &[&be(&[2, 1, 4])]),
                    full(b"stsz", 0, 0, &[&be(&[0, 5, 100, 20, 30, 40, 50])]),
                    full(b"stsc", 0, 0, &[&be(&[2, 1, 2, 1, 3, 1, 1])]),
                    full(b"co64", 0, 0, &[&be(&[3]), &co64]),
                ],
            );
            let audio = trak(
                2,
                b"soun",
                44100,
                &[
                    stsd(&mp4a(2, 44100)),
                    full(b"stts", 0, 0, &[&be(&[1, 4, 1024])]),
                    full(b"stsz", 0, 0, &[&be(&[10, 4])]),
                    full(b"stsc", 0, 0, &[&be(&[1, 1, 2, 1])]),
                    full(b"stco", 0, 0, &[&be(&[2, a as u32 + 120, a as u32 + 210])]),
                ],
            );
            // A hint track and a second video track are ignored.
            let other = trak(3, b"hint", 1000, &[]);
            let video2 = trak(4, b"vide", 90000, &[stsd(&avc1(64, 64))]);
            bx(
                b"moov",
                &[&mvhd(1000, 200), &video, &other, &video2, &audio],
            )
        };
        let payload = vec![0xAB; 280];
        let mdat = if large_mdat {
            let mut m = be(&[1]);
            m.extend_from_slice(b"mdat");
            m.extend_from_slice(&(16u64 + 280).to_be_bytes());
            m.extend_from_slice(&payload);
            m
        } else {
            bx(b"mdat", &[&payload])
        };
        let hdr = if large_mdat { 16 } else { 8 };
        let mut data = ftyp();
        let moov_len = moov_for(0).len() as u64;
        let a = data.len() as u64 + hdr + if moov_first { moov_len } else { 0 };
        if moov_first {
            data.extend_from_slice(&moov_for(a));
            data.extend_from_slice(&mdat);
        } else {
            data.extend_from_slice(&mdat);
            data.extend_from_slice(&moov_for(a));
        }
        (data, a)
    }

    fn signed_ctts() -> Vec<u8> {
        full(
            b"ctts",
            1,
            0,
            &[&be(&[3, 1, 1024, 1, (-512i32) as u32, 3, 0])],
        )
    }

    fn progressive_want(a: u64) -> Vec<Sample> {
        vec![
            s(a, 100, 0, 80, true, true),
            s(a + 120, 10, 0, 0, false, true),
            s(a + 130, 10, 23, 0, false, true),
            s(a + 100, 20, 40, -40, true, false),
            s(a + 210, 10, 46, 0, false, true),
            s(a + 220, 10, 69, 0, false, true),
            s(a + 140, 30, 80, 0, true, false),
            s(a + 170, 40, 120, 0, true, true),
            s(a + 230, 50, 160, 0, true, false),
        ]
    }

    #[test]
    fn progressive_moov_at_end() {
        let (data, a) = progressive(signed_ctts(), false, false);
        let idx = parse(&data).unwrap();
        assert_eq!(idx.duration_ms, 200);
        let v = idx.video.clone().unwrap();
        assert_eq!((v.width, v.height, v.timescale), (320, 240, 12800));
        assert_eq!(
            v.codec,
            VideoCodec::Avc {
                avcc: Bytes::from_static(AVCC)
            }
        );
        let au = idx.audio.clone().unwrap();
        // Rate and channels come from the ASC, not the entry's template "2".
        assert_eq!(
            (au.sample_rate, au.channels, au.timescale),
            (44100, 1, 44100)
        );
        assert_eq!(
            au.codec,
            AudioCodec::Aac {
                asc: Bytes::from_static(ASC)
            }
        );
        assert_eq!(idx.samples, progressive_want(a));
    }

    #[test]
    fn progressive_moov_first_largesize_mdat() {
        let (data, a) = progressive(signed_ctts(), true, true);
        let idx = parse(&data).unwrap();
        assert_eq!(idx.samples, progressive_want(a));
    }

    #[test]
    fn ctts_v0_and_truncated_mdat() {
        let ctts = full(b"ctts", 0, 0, &[&be(&[1, 5, 1024])]);
        let (mut data, a) = progressive(ctts, true, false);
        // Cut inside the last video sample (a + 230, 50 bytes).
        data.truncate(a as usize + 250);
        let idx = parse(&data).unwrap();
        let mut want = progressive_want(a);
        want.pop();
        for w in want.iter_mut().filter(|w| w.video) {
            w.cts_ms = 80;
        }
        assert_eq!(idx.samples, want);
        // moov at the end and the file cut inside mdat: the moov is gone.
        let (data, a) = progressive(signed_ctts(), false, false);
        let err = parse(&data[..a as usize + 50]).unwrap_err();
        assert!(matches!(err, Mp4Error::NoMoov), "{err}");
    }

    // ---- fragmented ------------------------------------------------------------------

    fn frag_moov() -> Vec<u8> {
        let empty = |t: &[u8; 4]| full(t, 0, 0, &[&be(&[0])]);
        let tables = |entry: Vec<u8>| {
            vec![
                stsd(&entry),
                empty(b"stts"),
                empty(b"stsc"),
                full(b"stsz", 0, 0, &[&be(&[0, 0])]),
                empty(b"stco"),
            ]
        };
        let video = trak(1, b"vide", 1000, &tables(avc1(0, 0)));
        let audio = trak(2, b"soun", 48000, &tables(mp4a(2, 48000)));
        // trex: video defaults 40 ms and non-sync; audio 1024 units and 7 bytes.
        let mvex = bx(
            b"mvex",
            &[
                &full(b"trex", 0, 0, &[&be(&[1, 1, 40, 0, 0x0101_0000])]),
                &full(b"trex", 0, 0, &[&be(&[2, 1, 1024, 7, 0x0200_0000])]),
            ],
        );
        bx(b"moov", &[&mvhd(1000, 0), &video, &audio, &mvex])
    }

    /// One moof+mdat: a video traf (default-base-is-moof, optional tfdt v1, trun v1 with
    /// data offset, first-sample-flags, sizes and signed cto) and an audio traf (no base
    /// flags, so its base is the end of the video data; trex defaults). Returns the
    /// bytes and the offset of the mdat payload within them.
    fn fragment(
        vtfdt: Option<u64>,
        vsizes: &[u32],
        atfdt: Option<u32>,
        acount: u32,
    ) -> (Vec<u8>, u64) {
        let build = |data_off: u32| {
            let mut vt = vec![full(b"tfhd", 0, 0x02_0000, &[&be(&[1])])];
            if let Some(t) = vtfdt {
                vt.push(full(b"tfdt", 1, 0, &[&t.to_be_bytes()]));
            }
            let mut recs = Vec::new();
            for (i, sz) in vsizes.iter().enumerate() {
                let cto: i32 = if i % 2 == 1 { -40 } else { 40 };
                recs.extend_from_slice(&be(&[*sz, cto as u32]));
            }
            let head = be(&[vsizes.len() as u32, data_off, 0x0200_0000]);
            vt.push(full(
                b"trun",
                1,
                0x01 | 0x04 | 0x200 | 0x800,
                &[&head, &recs],
            ));
            let parts: Vec<&[u8]> = vt.iter().map(|v| v.as_slice()).collect();
            let traf_v = bx(b"traf", &parts);
            let mut at = vec![full(b"tfhd", 0, 0, &[&be(&[2])])];
            if let Some(t) = atfdt {
                at.push(full(b"tfdt", 0, 0, &[&be(&[t])]));
            }
            at.push(full(b"trun", 0, 0, &[&be(&[acount])]));
            let parts: Vec<&[u8]> = at.iter().map(|v| v.as_slice()).collect();
            let traf_a = bx(b"traf", &parts);
            // An unknown track's traf in between must not disturb the others.
            let traf_x = bx(
                b"traf",
                &[
                    &full(b"tfhd", 0, 0x02_0000 | 0x10, &[&be(&[9, 3])]),
                    &full(b"trun", 0, 0x01, &[&be(&[2, 0])]),
                ],
            );
            bx(
                b"moof",
                &[
                    &full(b"mfhd", 0, 0, &[&be(&[1])]),
                    &traf_x,
                    &traf_v,
                    &traf_a,
                ],
            )
        };
        let moof_len = build(0).len() as u32;
        let mut out = build(moof_len + 8);
        let total = vsizes.iter().sum::<u32>() + acount * 7;
        out.extend_from_slice(&bx(b"mdat", &[&vec![0xCD; total as usize]]));
        (out, u64::from(moof_len) + 8)
    }

    fn fragmented_file() -> (Vec<u8>, [u64; 3]) {
        let mut data = ftyp();
        data.extend_from_slice(&frag_moov());
        let (f1, o1) = fragment(Some(5000), &[300, 20, 30], Some(48000), 2);
        let d1 = data.len() as u64 + o1;
        data.extend_from_slice(&f1);
        // No tfdt: both tracks continue from the previous fragment's end.
        let (f2, o2) = fragment(None, &[400, 25], None, 1);
        let d2 = data.len() as u64 + o2;
        data.extend_from_slice(&f2);
        let (f3, o3) = fragment(Some(5200), &[500, 60], Some(96000), 3);
        let d3 = data.len() as u64 + o3;
        data.extend_from_slice(&f3);
        (data, [d1, d2, d3])
    }

    #[test]
    fn fragmented_with_defaults_and_truncated_tail() {
        let (mut data, [d1, d2, d3]) = fragmented_file();
        // Crash: the last mdat is cut inside the second video sample.
        data.truncate(d3 as usize + 510);
        let idx = parse(&data).unwrap();
        let v = idx.video.clone().unwrap();
        assert_eq!((v.width, v.height), (640, 480)); // entry says 0x0: tkhd
                                                     // Audio's first tfdt (1 s) is the earliest decode time: everything moves 1 s back.
        let want = vec![
            s(d1 + 350, 7, 0, 0, false, true),
            s(d1 + 357, 7, 21, 0, false, true),
            s(d2 + 425, 7, 42, 0, false, true),
            s(d1, 300, 4000, 40, true, true),
            s(d1 + 300, 20, 4040, -40, true, false),
            s(d1 + 320, 30, 4080, 40, true, false),
            s(d2, 400, 4120, 40, true, true),
            s(d2 + 400, 25, 4160, -40, true, false),
            s(d3, 500, 4200, 40, true, true),
        ];
        assert_eq!(idx.samples, want);
        assert_eq!(idx.duration_ms, 4280);
    }

    #[test]
    fn fragmented_complete_with_mfra() {
        let (mut data, [_, _, d3]) = fragmented_file();
        data.extend_from_slice(&bx(b"mfra", &[&full(b"mfro", 0, 0, &[&be(&[16])])]));
        let idx = parse(&data).unwrap();
        assert_eq!(idx.samples.len(), 7 + 6);
        let last_audio = idx.samples.iter().rev().find(|s| !s.video).unwrap();
        assert_eq!(*last_audio, s(d3 + 560 + 14, 7, 1000 + 42, 0, false, true));
    }

    // ---- hostile input ---------------------------------------------------------------

    fn moov_file(moov_children: &[&[u8]]) -> Vec<u8> {
        let mut data = ftyp();
        data.extend_from_slice(&bx(b"moov", moov_children));
        data
    }

    fn video_trak_with(stsz: Vec<u8>, stco: Vec<u8>, stsc: Vec<u8>) -> Vec<u8> {
        trak(
            1,
            b"vide",
            1000,
            &[
                stsd(&avc1(16, 16)),
                full(b"stts", 0, 0, &[&be(&[1, 1, 1])]),
                stsz,
                stsc,
                stco,
            ],
        )
    }

    fn malformed(r: Result<Mp4Index>) -> bool {
        matches!(r, Err(Mp4Error::Malformed(_)))
    }

    #[test]
    fn oversized_counts_are_rejected_before_allocating() {
        let stsc = full(b"stsc", 0, 0, &[&be(&[1, 1, 1, 1])]);
        let stco = full(b"stco", 0, 0, &[&be(&[1, 0])]);
        let huge_stsz = full(b"stsz", 0, 0, &[&be(&[0, u32::MAX, 1, 2])]);
        let data = moov_file(&[&video_trak_with(huge_stsz, stco.clone(), stsc.clone())]);
        assert!(malformed(parse(&data)));

        let huge_stco = full(b"stco", 0, 0, &[&be(&[u32::MAX, 0])]);
        let stsz = full(b"stsz", 0, 0, &[&be(&[0, 1, 1])]);
        let data = moov_file(&[&video_trak_with(stsz.clone(), huge_stco, stsc.clone())]);
        assert!(malformed(parse(&data)));

        let huge_stsc = full(b"stsc", 0, 0, &[&be(&[0x1000_0000, 1, 1, 1])]);
        let data = moov_file(&[&video_trak_with(stsz.clone(), stco.clone(), huge_stsc)]);
        assert!(malformed(parse(&data)));

        let backwards = full(b"stsc", 0, 0, &[&be(&[2, 2, 1, 1, 1, 1, 1])]);
        let data = moov_file(&[&video_trak_with(stsz, stco.clone(), backwards)]);
        assert!(malformed(parse(&data)));

        // Uniform sizes need no table: the sample limit is what stops them.
        let uniform = full(b"stsz", 0, 0, &[&be(&[5, u32::MAX])]);
        let data = moov_file(&[&video_trak_with(uniform, stco, stsc)]);
        assert!(matches!(parse(&data), Err(Mp4Error::TooBig(_))));

        // A trun claiming 2^32-1 samples in a few bytes.
        let mut data = ftyp();
        data.extend_from_slice(&frag_moov());
        let traf = bx(
            b"traf",
            &[
                &full(b"tfhd", 0, 0x02_0000, &[&be(&[1])]),
                &full(b"trun", 0, 0x200, &[&be(&[u32::MAX, 1])]),
            ],
        );
        data.extend_from_slice(&bx(b"moof", &[&traf]));
        assert!(malformed(parse(&data)));
        // Same with no per-sample fields: only max_samples bounds it.
        let mut data = ftyp();
        data.extend_from_slice(&frag_moov());
        let traf = bx(
            b"traf",
            &[
                &full(b"tfhd", 0, 0x02_0000, &[&be(&[1])]),
                &full(b"trun", 0, 0, &[&be(&[u32::MAX])]),
            ],
        );
        data.extend_from_slice(&bx(b"moof", &[&traf]));
        assert!(matches!(parse(&data), Err(Mp4Error::TooBig(_))));
    }

    #[test]
    fn bad_box_sizes() {
        // A child box claiming more bytes than its parent has.
        let mut liar = be(&[1000]);
        liar.extend_from_slice(b"trak");
        liar.extend_from_slice(&[0; 12]);
        assert!(malformed(parse(&moov_file(&[&mvhd(1000, 0), &liar]))));
        // Size 4 (< header) inside moov.
        let mut tiny = be(&[4]);
        tiny.extend_from_slice(b"free");
        tiny.extend_from_slice(&[0; 8]);
        assert!(malformed(parse(&moov_file(&[&tiny]))));
        // Size 0 inside moov runs to the end of moov: the trak after it is swallowed.
        let mut zero = be(&[0]);
        zero.extend_from_slice(b"free");
        let good = video_trak_with(
            full(b"stsz", 0, 0, &[&be(&[0, 1, 1])]),
            full(b"stco", 0, 0, &[&be(&[1, 0])]),
            full(b"stsc", 0, 0, &[&be(&[1, 1, 1, 1])]),
        );
        assert_eq!(parse(&moov_file(&[&good])).unwrap().samples.len(), 1);
        let data = moov_file(&[&zero, &good]);
        assert!(matches!(parse(&data), Err(Mp4Error::NoTracks)));
        // Top-level moov past the end of the file.
        let (mut data, _) = progressive(signed_ctts(), false, false);
        data.truncate(data.len() - 10);
        assert!(malformed(parse(&data)));
        // Top-level box smaller than its header before any moov.
        let mut data = ftyp();
        data.extend_from_slice(&be(&[3, 0]));
        assert!(malformed(parse(&data)));
        // moof whose own size runs past the file is ignored, not fatal.
        let mut data = ftyp();
        data.extend_from_slice(&frag_moov());
        let (f, _) = fragment(Some(0), &[10], Some(0), 1);
        data.extend_from_slice(&f[..20]);
        let idx = parse(&data).unwrap();
        assert!(idx.samples.is_empty());
    }

    #[test]
    fn not_mp4_no_moov_limits() {
        assert!(matches!(parse(b""), Err(Mp4Error::NotMp4)));
        assert!(matches!(
            parse(b"<html><body>hello</body></html>"),
            Err(Mp4Error::NotMp4)
        ));
        let mut data = ftyp();
        data.extend_from_slice(&bx(b"mdat", &[&[0; 64]]));
        assert!(matches!(parse(&data), Err(Mp4Error::NoMoov)));
        // moov with only a hint track.
        let data = moov_file(&[&mvhd(1000, 0), &trak(1, b"hint", 1000, &[])]);
        assert!(matches!(parse(&data), Err(Mp4Error::NoTracks)));

        let (data, _) = progressive(signed_ctts(), false, false);
        let small = |f: fn(&mut Limits)| {
            let mut l = Limits::default();
            f(&mut l);
            parse_index(data.as_slice(), data.len() as u64, &l)
        };
        assert!(matches!(
            small(|l| l.max_moov_bytes = 100),
            Err(Mp4Error::TooBig(_))
        ));
        assert!(matches!(
            small(|l| l.max_samples = 8),
            Err(Mp4Error::TooBig(_))
        ));
        assert!(matches!(
            small(|l| l.max_top_level_boxes = 2),
            Err(Mp4Error::TooBig(_))
        ));
        assert_eq!(small(|l| l.max_samples = 9).unwrap().samples.len(), 9);
    }

    /// Random corruption and truncation of valid files never panics.
    #[test]
    fn fuzz_mutations_do_not_panic() {
        let (prog, _) = progressive(signed_ctts(), true, false);
        let (frag, _) = fragmented_file();
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut rnd = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for base in [&prog, &frag] {
            for _ in 0..3000 {
                let mut d = base.clone();
                for _ in 0..1 + rnd() % 4 {
                    let i = (rnd() % d.len() as u64) as usize;
                    let v = match rnd() % 4 {
                        0 => 0,
                        1 => 0xFF,
                        2 => 1,
                        _ => rnd() as u8,
                    };
                    d[i] = v;
                }
                if rnd() % 4 == 0 {
                    d.truncate((rnd() % d.len() as u64) as usize);
                }
                if let Ok(idx) = parse(&d) {
                    assert!(idx
                        .samples
                        .iter()
                        .all(|s| s.offset + u64::from(s.size) <= d.len() as u64));
                }
            }
        }
    }

    #[test]
    fn flv_prefixes_and_sequence_headers() {
        let key = s(0, 1, 0, 80, true, true);
        assert_eq!(key.flv_prefix(), ([0x17, 1, 0, 0, 80], 5));
        let inter = s(0, 1, 0, -40, true, false);
        assert_eq!(inter.flv_prefix(), ([0x27, 1, 0xFF, 0xFF, 0xD8], 5));
        let huge = s(0, 1, 0, i32::MAX, true, false);
        assert_eq!(huge.flv_prefix().0[2..], [0x7F, 0xFF, 0xFF]);
        let audio = s(0, 1, 0, 0, false, true);
        assert_eq!(audio.flv_prefix(), ([0xAF, 1, 0, 0, 0], 2));
        assert_eq!(&avc_sequence_header(&[1, 2])[..], &[0x17, 0, 0, 0, 0, 1, 2]);
        assert_eq!(
            &aac_sequence_header(&[0x12, 0x10])[..],
            &[0xAF, 0, 0x12, 0x10]
        );
        assert_eq!(asc_rate_channels(&[]), None);
        assert_eq!(asc_rate_channels(&[0x11, 0x90]), Some((48000, 2)));
    }

    #[test]
    fn stz2_compact_sizes() {
        let four = full(b"stz2", 0, 0, &[&be(&[4, 3]), &[0x12, 0x30]]);
        let (n, sizes) = parse_sizes(None, Some(&four[8..])).unwrap();
        assert_eq!((n, sizes.get(0), sizes.get(1), sizes.get(2)), (3, 1, 2, 3));
        let sixteen = full(b"stz2", 0, 0, &[&be(&[16, 2]), &[1, 0, 0, 7]]);
        let (n, sizes) = parse_sizes(None, Some(&sixteen[8..])).unwrap();
        assert_eq!((n, sizes.get(0), sizes.get(1)), (2, 256, 7));
        let short = full(b"stz2", 0, 0, &[&be(&[8, 3]), &[1, 2]]);
        assert!(parse_sizes(None, Some(&short[8..])).is_err());
    }

    #[test]
    fn tfhd_explicit_base_and_chained_truns() {
        let mut data = ftyp();
        data.extend_from_slice(&frag_moov());
        let traf = |base: u64| {
            bx(
                b"traf",
                &[
                    &full(
                        b"tfhd",
                        0,
                        0x01 | 0x08 | 0x10 | 0x20,
                        &[&be(&[1]), &base.to_be_bytes(), &be(&[40, 5, 0])],
                    ),
                    &full(b"trun", 0, 0, &[&be(&[2])]),
                    &full(b"trun", 0, 0x400, &[&be(&[1, SAMPLE_NON_SYNC])]),
                ],
            )
        };
        let moof_len = bx(b"moof", &[&traf(0)]).len() as u64;
        let base = data.len() as u64 + moof_len + 8;
        data.extend_from_slice(&bx(b"moof", &[&traf(base)]));
        data.extend_from_slice(&bx(b"mdat", &[&[0; 15]]));
        let idx = parse(&data).unwrap();
        let want = vec![
            s(base, 5, 0, 0, true, true),
            s(base + 5, 5, 40, 0, true, true),
            s(base + 10, 5, 80, 0, true, false),
        ];
        assert_eq!(idx.samples, want);
        assert_eq!(idx.duration_ms, 120);
        assert!(idx.audio.is_some());
    }

    #[test]
    fn read_exact_at_slices() {
        let data = [1u8, 2, 3, 4];
        let mut buf = [0u8; 2];
        read_exact_at(&data[..], &mut buf, 2).unwrap();
        assert_eq!(buf, [3, 4]);
        let err = read_exact_at(&data[..], &mut buf, 3).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert!(read_exact_at(&data[..], &mut buf, u64::MAX).is_err());
    }
}
