//! Micro-benchmarks of the pure core's per-byte hot paths, fed a synthetic but realistic
//! publisher: 6 s of ~2.5 Mbit/s H.264 (30 fps, a 60 KB IDR every 50 frames, 8–15 KB
//! non-IDR frames, length-prefixed NAL units, SPS/PPS only in the sequence header) with
//! ~370-byte AAC-LC frames (44.1 kHz) interleaved by timestamp.
//!
//! Throughput is media payload bytes (FLV tag bodies, i.e. RTMP message payloads) per
//! iteration. Each path is run once and checked before it is timed, so a broken path fails
//! instead of timing nothing.
//!
//! Run with `scripts/microbench.sh` (release) or `cargo test --no-default-features --benches`
//! (each bench once, as CI does).

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

use nginx_rtmp_rs::conf::{HlsSettings, RtmpConf};
use nginx_rtmp_rs::dash::fmp4::{self, Sample, TrackCodec};
use nginx_rtmp_rs::hls::segmenter::HlsStream;
use nginx_rtmp_rs::hls::ts::{TsAudio, TsMuxer, TsTracks, TS_PACKET_SIZE};
use nginx_rtmp_rs::hls::{FileOp, Now};
use nginx_rtmp_rs::live::frame::{CSID_AUDIO, CSID_VIDEO, LIVE_MSG_STREAM_ID};
use nginx_rtmp_rs::live::{Frame, FrameKind};
use nginx_rtmp_rs::media::avc;
use nginx_rtmp_rs::media::flv::{self, AacConfig, AvcConfig, VideoPacket};
use nginx_rtmp_rs::rtmp::chunk::{self, ChunkDecoder, DecoderLimits, MSG_AUDIO, MSG_VIDEO};

// ---- the synthetic stream ----

const STREAM_MS: u32 = 6000;
const FPS: u32 = 30;
const GOP_FRAMES: usize = 50;
const IDR_BYTES: usize = 60_000;
const INTER_MIN: usize = 8_000;
const INTER_MAX: usize = 15_000;
const AAC_BYTES: usize = 370;
const AAC_RATE: u32 = 44_100;
/// How many bytes one socket read hands the decoder.
const READ_SIZE: usize = 16 * 1024;
/// Length of the fMP4 fragment.
const FRAGMENT_MS: u32 = 2000;

/// SPS/PPS x264 writes (High profile, level 1.3, VUI timing).
const SPS: [u8; 25] = [
    0x67, 0x64, 0x00, 0x0d, 0xac, 0xd9, 0x41, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10,
    0x00, 0x00, 0x03, 0x03, 0x20, 0xf1, 0x42, 0x99, 0x60,
];
const PPS: [u8; 6] = [0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0];
/// AudioSpecificConfig: AAC-LC, 44.1 kHz, stereo.
const ASC: [u8; 2] = [0x12, 0x10];

/// Deterministic xorshift64, so every run feeds the same bytes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo + 1) as u64) as usize
    }

    /// Entropy-coded-looking bytes without zeros, so no start code is emulated.
    fn fill(&mut self, out: &mut Vec<u8>, n: usize) {
        out.extend((0..n).map(|_| (self.next() >> 32) as u8 | 0x01));
    }
}

/// One publisher message: an FLV tag body and its RTMP timestamp.
struct Msg {
    video: bool,
    timestamp: u32,
    /// Composition offset (ms) for video.
    cts: i32,
    keyframe: bool,
    sequence_header: bool,
    tag: Bytes,
}

impl Msg {
    fn kind(&self) -> FrameKind {
        if self.video {
            FrameKind::Video
        } else {
            FrameKind::Audio
        }
    }

    fn csid_and_type(&self) -> (u32, u8) {
        if self.video {
            (CSID_VIDEO, MSG_VIDEO)
        } else {
            (CSID_AUDIO, MSG_AUDIO)
        }
    }
}

fn avc_sequence_header() -> Vec<u8> {
    // FLV: keyframe + AVC, AVCPacketType 0, cts 0; then the AVCDecoderConfigurationRecord
    // with 4-byte NAL lengths, one SPS, one PPS.
    let mut v = vec![
        0x17, 0x00, 0, 0, 0, 0x01, SPS[1], SPS[2], SPS[3], 0xff, 0xe1,
    ];
    v.extend((SPS.len() as u16).to_be_bytes());
    v.extend(SPS);
    v.push(1);
    v.extend((PPS.len() as u16).to_be_bytes());
    v.extend(PPS);
    v
}

fn push_nal(v: &mut Vec<u8>, header: u8, len: usize, rng: &mut Rng) {
    v.extend((len as u32).to_be_bytes());
    v.push(header);
    rng.fill(v, len - 1);
}

/// An FLV AVC NALU tag of `size` bytes: an IDR frame is an SEI plus an IDR slice (nal type
/// 5), any other frame one non-IDR slice (type 1), as x264 sends them through ffmpeg.
fn video_tag(key: bool, cts: i32, size: usize, rng: &mut Rng) -> Vec<u8> {
    let mut v = Vec::with_capacity(size);
    v.extend([if key { 0x17 } else { 0x27 }, 0x01]);
    v.extend(&cts.to_be_bytes()[1..]);
    if key {
        push_nal(&mut v, 0x06, 24, rng);
        let rest = size - v.len() - 4;
        push_nal(&mut v, 0x65, rest, rng);
    } else {
        let rest = size - v.len() - 4;
        push_nal(&mut v, 0x41, rest, rng);
    }
    debug_assert_eq!(v.len(), size);
    v
}

fn audio_tag(rng: &mut Rng) -> Vec<u8> {
    let mut v = vec![0xaf, 0x01];
    let len = rng.range(AAC_BYTES - 10, AAC_BYTES + 10);
    rng.fill(&mut v, len);
    v
}

/// Sequence headers, then `duration_ms` of video and audio frames ordered by timestamp
/// (audio first on a tie, as ffmpeg interleaves).
fn stream(duration_ms: u32) -> Vec<Msg> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut msgs = vec![
        Msg {
            video: true,
            timestamp: 0,
            cts: 0,
            keyframe: true,
            sequence_header: true,
            tag: Bytes::from(avc_sequence_header()),
        },
        Msg {
            video: false,
            timestamp: 0,
            cts: 0,
            keyframe: false,
            sequence_header: true,
            tag: Bytes::from([&[0xaf, 0x00][..], &ASC].concat()),
        },
    ];
    let (mut v, mut a) = (0u64, 0u64);
    loop {
        let vts = (v * 1000 / u64::from(FPS)) as u32;
        let ats = (a * 1024 * 1000 / u64::from(AAC_RATE)) as u32;
        if vts >= duration_ms && ats >= duration_ms {
            break;
        }
        if ats <= vts && ats < duration_ms {
            msgs.push(Msg {
                video: false,
                timestamp: ats,
                cts: 0,
                keyframe: false,
                sequence_header: false,
                tag: Bytes::from(audio_tag(&mut rng)),
            });
            a += 1;
        } else {
            let key = (v as usize).is_multiple_of(GOP_FRAMES);
            let size = if key {
                IDR_BYTES
            } else {
                rng.range(INTER_MIN, INTER_MAX)
            };
            // B-frame style composition offsets: alternating one and two frames.
            let cts = if v % 2 == 0 { 66 } else { 33 };
            msgs.push(Msg {
                video: true,
                timestamp: vts,
                cts,
                keyframe: key,
                sequence_header: false,
                tag: Bytes::from(video_tag(key, cts, size, &mut rng)),
            });
            v += 1;
        }
    }
    msgs
}

fn payload_bytes(msgs: &[Msg]) -> u64 {
    msgs.iter().map(|m| m.tag.len() as u64).sum()
}

// ---- chunk decode / encode ----

/// What a publisher sends after connect: Set Chunk Size (unless 128), then every message on
/// its own chunk stream, written by the crate's own encoder.
fn chunk_stream(msgs: &[Msg], chunk_size: u32) -> Bytes {
    let mut out = BytesMut::new();
    if chunk_size != chunk::DEFAULT_CHUNK_SIZE {
        chunk::set_chunk_size(&mut out, chunk_size);
    }
    for m in msgs {
        let (csid, type_id) = m.csid_and_type();
        chunk::encode_message(
            chunk_size,
            csid,
            m.timestamp,
            type_id,
            LIVE_MSG_STREAM_ID,
            &m.tag,
            &mut out,
        );
    }
    out.freeze()
}

/// Decodes `input` fed in socket-read-sized slices; returns (media messages, payload bytes).
fn decode_all(input: &[u8]) -> (usize, u64) {
    let mut dec = ChunkDecoder::new(DecoderLimits::default());
    let mut buf = BytesMut::with_capacity(READ_SIZE);
    let (mut count, mut bytes) = (0usize, 0u64);
    for read in input.chunks(READ_SIZE) {
        buf.extend_from_slice(read);
        while let Some(msg) = dec.decode(&mut buf).expect("valid chunk stream") {
            if msg.type_id == MSG_AUDIO || msg.type_id == MSG_VIDEO {
                count += 1;
                bytes += msg.payload.len() as u64;
            }
            black_box(&msg);
        }
    }
    assert!(buf.is_empty(), "decoder left {} bytes", buf.len());
    (count, bytes)
}

/// The fan-out path: every publisher message chunk-encoded once for all players.
fn encode_all(msgs: &[Msg], chunk_size: u32, scratch: &mut BytesMut) -> usize {
    let mut total = 0;
    for m in msgs {
        let frame = Frame::encode(m.kind(), m.timestamp, &m.tag, chunk_size, scratch);
        total += frame.len();
        black_box(frame);
    }
    total
}

fn bench_chunks(c: &mut Criterion) {
    let msgs = stream(STREAM_MS);
    let bytes = payload_bytes(&msgs);

    let mut g = c.benchmark_group("chunk_decode");
    g.throughput(Throughput::Bytes(bytes));
    for chunk_size in [4096u32, 128] {
        let input = chunk_stream(&msgs, chunk_size);
        assert_eq!(decode_all(&input), (msgs.len(), bytes), "decoder output");
        g.bench_function(chunk_size.to_string(), |b| {
            b.iter(|| decode_all(black_box(&input)))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("chunk_encode");
    g.throughput(Throughput::Bytes(bytes));
    for chunk_size in [4096u32, 128] {
        let expect: usize = msgs
            .iter()
            .map(|m| chunk::encoded_len(chunk_size, m.csid_and_type().0, m.timestamp, m.tag.len()))
            .sum();
        let mut scratch = BytesMut::new();
        assert_eq!(
            encode_all(&msgs, chunk_size, &mut scratch),
            expect,
            "encoded size"
        );
        g.bench_function(chunk_size.to_string(), |b| {
            b.iter(|| encode_all(black_box(&msgs), chunk_size, &mut scratch))
        });
    }
    g.finish();
}

// ---- HLS: TS muxer and segmenter ----

/// The 90 kHz offset the segmenter's timeline starts output at (its muxdelay), so PCR never
/// clamps at 0.
const TS_START: u64 = 700 * 90;
/// `hls_max_audio_delay` (300 ms) in 90 kHz units.
const AUDIO_DELAY: u64 = 300 * 90;

fn codec_configs(msgs: &[Msg]) -> (AvcConfig, AacConfig) {
    let body = |m: &Msg| {
        let off = if m.video { 5 } else { 2 };
        m.tag.slice(off..)
    };
    let v = msgs.iter().find(|m| m.video && m.sequence_header).unwrap();
    let a = msgs.iter().find(|m| !m.video && m.sequence_header).unwrap();
    (
        flv::parse_avc_decoder_config(&body(v)).expect("AVC record"),
        flv::parse_audio_specific_config(&body(a)).expect("ASC"),
    )
}

/// Drives [`TsMuxer`] the way the HLS segmenter does: parse the FLV tag, AVCC -> Annex B
/// (AUD, SPS/PPS before IDR), ADTS-wrap AAC into a buffer flushed as one PES once it spans
/// `hls_max_audio_delay`, PAT/PMT at every keyframe (a segment start). Returns the TS bytes.
fn mux_ts(msgs: &[Msg], avc_cfg: &AvcConfig, aac_cfg: &AacConfig, out: &mut Vec<u8>) {
    let mut muxer = TsMuxer::new(TsTracks {
        video: true,
        audio: Some(TsAudio::Aac),
    });
    let mut annexb = Vec::new();
    let mut abuf = Vec::new();
    let mut abuf_pts = 0u64;
    for m in msgs.iter().filter(|m| !m.sequence_header) {
        let dts = TS_START + u64::from(m.timestamp) * 90;
        if m.video {
            let t = flv::parse_video(&m.tag).expect("video tag");
            assert_eq!(t.packet, VideoPacket::Frame);
            let body = m.tag.get(t.body_offset..).unwrap_or_default();
            annexb.clear();
            avc::avcc_to_annexb(body, avc_cfg, &mut annexb).expect("AVCC frame");
            if t.is_keyframe() {
                if !abuf.is_empty() {
                    muxer.write_audio(abuf_pts, &abuf, out);
                    abuf.clear();
                }
                muxer.write_tables(out);
            }
            let pts = dts + u64::try_from(t.composition_time_ms).unwrap_or(0) * 90;
            muxer.write_video(pts, dts, t.is_keyframe(), &annexb, out);
        } else {
            let t = flv::parse_audio(&m.tag).expect("audio tag");
            let body = m.tag.get(t.body_offset..).unwrap_or_default();
            let adts = avc::adts_header(aac_cfg, body.len()).expect("ADTS header");
            if !abuf.is_empty() && dts >= abuf_pts + AUDIO_DELAY {
                muxer.write_audio(abuf_pts, &abuf, out);
                abuf.clear();
            }
            if abuf.is_empty() {
                abuf_pts = dts;
            }
            abuf.extend_from_slice(&adts);
            abuf.extend_from_slice(body);
        }
    }
    if !abuf.is_empty() {
        muxer.write_audio(abuf_pts, &abuf, out);
    }
}

/// The C module's defaults (as an empty `rtmp{}` resolves them), with HLS on, 2 s fragments.
fn hls_settings() -> HlsSettings {
    let mut hls = RtmpConf::default().resolve().hls;
    hls.enabled = true;
    hls.path = "/hls".into();
    hls.fragment_ms = 2000;
    hls.playlist_length_ms = 30_000;
    hls
}

/// One publisher session through [`HlsStream`], the ops drained after every message as the
/// IO ring would. Returns (segment bytes appended, segments committed).
fn run_segmenter(msgs: &[Msg], settings: &HlsSettings) -> (usize, usize) {
    let mut hls = HlsStream::new(settings, "live", "bench", None, &mut |b| b.fill(7));
    let mut ops = Vec::new();
    let (mut appended, mut commits) = (0usize, 0usize);
    let mut drain = |ops: &mut Vec<FileOp>| {
        for op in ops.drain(..) {
            match op {
                FileOp::Append { data, .. } => appended += data.len(),
                FileOp::Commit { .. } => commits += 1,
                _ => {}
            }
        }
    };
    let now = |ts: u32| Now {
        mono_ms: 1_000_000 + u64::from(ts),
        unix_ms: 1_700_000_000_000 + u64::from(ts),
    };
    for m in msgs {
        hls.on_media(m.video, m.timestamp, &m.tag, now(m.timestamp), &mut ops);
        drain(&mut ops);
    }
    hls.finish(now(STREAM_MS), &mut ops);
    drain(&mut ops);
    (appended, commits)
}

fn bench_ts(c: &mut Criterion) {
    let msgs = stream(STREAM_MS);
    let bytes = payload_bytes(&msgs);
    let (avc_cfg, aac_cfg) = codec_configs(&msgs);

    let mut out = Vec::new();
    mux_ts(&msgs, &avc_cfg, &aac_cfg, &mut out);
    assert!(out.len() as u64 > bytes, "TS smaller than its payload");
    assert_eq!(out.len() % TS_PACKET_SIZE, 0, "TS not whole packets");
    assert!(
        out.chunks(TS_PACKET_SIZE).all(|p| p[0] == 0x47),
        "sync byte"
    );
    let settings = hls_settings();
    let (appended, commits) = run_segmenter(&msgs, &settings);
    assert!(appended as u64 > bytes, "segmenter wrote {appended} bytes");
    assert_eq!(appended % TS_PACKET_SIZE, 0, "segments not whole packets");
    assert!(commits >= 2, "segmenter committed {commits} segments");

    let mut g = c.benchmark_group("ts_mux");
    g.throughput(Throughput::Bytes(bytes));
    g.bench_function("muxer", |b| {
        b.iter(|| {
            out.clear();
            mux_ts(black_box(&msgs), &avc_cfg, &aac_cfg, &mut out);
            assert_eq!(out.len() % TS_PACKET_SIZE, 0);
        })
    });
    g.bench_function("hls_segmenter", |b| {
        b.iter(|| run_segmenter(black_box(&msgs), &settings))
    });
    g.finish();
}

// ---- DASH fMP4 ----

/// One fragment's samples as the DASH segmenter collects them: AVCC bodies as they arrive
/// (90 kHz), raw AAC frames (sample-rate timescale), durations from the next sample.
fn fragment_samples(msgs: &[Msg], video: bool) -> Vec<Sample> {
    let mut samples: Vec<Sample> = Vec::new();
    for m in msgs
        .iter()
        .filter(|m| m.video == video && !m.sequence_header && m.timestamp < FRAGMENT_MS)
    {
        let (dts, cts, off) = if video {
            (u64::from(m.timestamp) * 90, m.cts * 90, 5)
        } else {
            (u64::from(m.timestamp) * u64::from(AAC_RATE) / 1000, 0, 2)
        };
        if let Some(prev) = samples.last_mut() {
            prev.duration = (dts - prev.dts) as u32;
        }
        samples.push(Sample {
            duration: if video { 3000 } else { 1024 },
            ..Sample::video(dts, cts, !video || m.keyframe, m.tag.slice(off..))
        });
    }
    samples
}

fn bench_fmp4(c: &mut Criterion) {
    let msgs = stream(FRAGMENT_MS + 100);
    let codec = |video: bool| {
        let m = msgs
            .iter()
            .find(|m| m.video == video && m.sequence_header)
            .unwrap();
        if video {
            TrackCodec::avc_from_record(m.tag.slice(5..)).expect("AVC record")
        } else {
            TrackCodec::aac_from_asc(m.tag.slice(2..)).expect("ASC")
        }
    };

    let mut g = c.benchmark_group("fmp4_fragment");
    for (name, video) in [("video_2s", true), ("audio_2s", false)] {
        let init = fmp4::init_segment(&codec(video)).expect("init segment");
        assert_eq!(init.get(4..8), Some(&b"ftyp"[..]));
        let samples = fragment_samples(&msgs, video);
        let bytes: u64 = samples.iter().map(|s| s.data.len() as u64).sum();
        let seg = fmp4::media_segment(1, &samples).expect("media segment");
        assert_eq!(seg.get(4..8), Some(&b"styp"[..]));
        // The segment ends with an mdat holding every sample's data in order.
        let mdat_at = seg.len() - bytes as usize - 8;
        let mdat = &seg[mdat_at..];
        assert_eq!(mdat[..4], ((bytes + 8) as u32).to_be_bytes(), "mdat size");
        assert_eq!(&mdat[4..8], b"mdat");
        assert!(mdat[8..].starts_with(&samples[0].data));
        assert!(mdat.ends_with(&samples[samples.len() - 1].data));
        g.throughput(Throughput::Bytes(bytes));
        g.bench_function(name, |b| {
            b.iter(|| {
                let seg = fmp4::media_segment(1, black_box(&samples)).expect("media segment");
                assert!(seg.len() as u64 > bytes);
                seg
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench_chunks, bench_ts, bench_fmp4);
criterion_main!(benches);
