//! The fMP4 (ISO-BMFF / CMAF) fragmenter: one init segment per track and `styp` + `moof` +
//! `mdat` media segments, with every box written by `mp4-atom`.
//!
//! It is codec-parameterised ([`TrackCodec`]) and knows nothing about DASH, so an fMP4 flavour
//! of HLS can list the very same segments (CMAF), and HEVC/AV1 only add a sample entry.
//! One track per file (track id [`TRACK_ID`]) for DASH, as DASH-IF and CMAF recommend; MP4
//! recordings put their tracks in one file ([`movie_init`], [`fragment_head`],
//! [`random_access_index`]).

use bytes::{Bytes, BytesMut};
use mp4_atom::{
    esds, Ac3, Ac3SpecificBox, Atom, Audio, Av01, Av1c, Avc1, Avcc, Buf, Codec, Dfla, Dinf, Dops,
    Dref, DrefEntry, Eac3, Ec3IndependentSubstream, Ec3SpecificBox, Encode, Esds, FixedPoint, Flac,
    FragmentInfo, Ftyp, Hdlr, Hvc1, Hvcc, Mdhd, Mdia, Mfhd, Mfra, Mfro, Minf, Moof, Moov, Mp4a,
    Mvex, Mvhd, Opus, OpusChannelMapping, Smhd, Stbl, Stco, Stsc, Stsd, Stsz, Stts, Styp, Tfdt,
    Tfhd, Tfra, Tkhd, Traf, Trak, Trex, Trun, TrunEntry, TrunSamples, Url, Visual, Vmhd, Vp09,
    VpcC,
};
use thiserror::Error;

use crate::media::avc::{aac_codec_string, avc_codec_string, parse_sps};
use crate::media::codecs::{
    self, Ac3Config, Av1Config, CodecError, FlacConfig, HevcConfig, OpusConfig, Vp9Config,
    OPUS_RATE,
};
use crate::media::flv::{
    parse_audio_specific_config, parse_avc_decoder_config, AacConfig, AvcConfig, FlvError, FourCc,
};
use crate::segment::AAC_FRAME_SAMPLES;

/// Timescale of video tracks: the MPEG 90 kHz clock, exact for FLV's milliseconds and for
/// every common frame rate.
pub const VIDEO_TIMESCALE: u32 = 90_000;
/// Timescale of the movie header (nothing is timed in it for fragmented files).
pub const MOVIE_TIMESCALE: u32 = 1000;
/// Every init and media segment describes one track with this id.
pub const TRACK_ID: u32 = 1;
/// Most samples one media segment may hold (about 80 minutes of 96 kHz AAC; bounds the trun).
pub const MAX_SEGMENT_SAMPLES: usize = 500_000;
/// Longest AudioSpecificConfig accepted (real ones are 2–7 bytes, more with a PCE).
pub const MAX_ASC_LEN: usize = 256;

/// trun sample flags of a sync sample: sample_depends_on = 2 (does not depend on others).
pub const SAMPLE_FLAGS_SYNC: u32 = 0x0200_0000;
/// trun sample flags of a non-sync sample: sample_depends_on = 1, sample_is_non_sync_sample.
pub const SAMPLE_FLAGS_NON_SYNC: u32 = 0x0101_0000;

/// Why a segment could not be written. One line each, for the log.
#[derive(Debug, Error)]
pub enum Fmp4Error {
    #[error("fmp4: invalid codec configuration: {0}")]
    Config(#[from] FlvError),
    #[error("fmp4: AVC configuration has no SPS or no PPS")]
    MissingParameterSets,
    #[error("fmp4: video size {width}x{height} does not fit a sample entry (max 65535)")]
    VideoTooLarge { width: u32, height: u32 },
    #[error("fmp4: AudioSpecificConfig is empty")]
    EmptyAsc,
    #[error("fmp4: AudioSpecificConfig of {0} bytes is longer than {MAX_ASC_LEN}")]
    AscTooLong(usize),
    #[error("fmp4: AAC sample rate is 0")]
    ZeroSampleRate,
    #[error("fmp4: media segment has no samples")]
    NoSamples,
    #[error("fmp4: media segment has {0} samples, more than {MAX_SEGMENT_SAMPLES}")]
    TooManySamples(usize),
    #[error("fmp4: media segment data of {0} bytes does not fit a 32-bit mdat")]
    MdatTooLarge(u64),
    #[error("fmp4: box encoding failed: {0}")]
    Encode(#[from] mp4_atom::Error),
    #[error("fmp4: {0}")]
    Codec(#[from] CodecError),
    #[error("fmp4: the configuration record has bytes after its end")]
    TrailingConfig,
    #[error("fmp4: codec {} cannot be carried", .0.map_or_else(|| "(legacy)".to_owned(), |f| f.to_string()))]
    UnsupportedCodec(Option<FourCc>),
}

/// One track's codec, as the init segment declares it. Codec-parameterised on purpose:
/// HEVC/AV1 (hvc1/hvcC, av01/av1C) become new variants with their own sample entry.
#[derive(Clone, Debug, PartialEq)]
pub enum TrackCodec {
    Avc {
        config: AvcConfig,
        /// The raw AVCDecoderConfigurationRecord from the FLV sequence header.
        record: Bytes,
        width: u32,
        height: u32,
    },
    Aac {
        config: AacConfig,
        /// The raw AudioSpecificConfig from the FLV sequence header.
        asc: Bytes,
    },
    /// HEVC: the hvcC from the Enhanced RTMP SequenceStart, kept byte for byte.
    Hevc {
        config: HevcConfig,
        record: Bytes,
    },
    /// AV1: the av1C from the SequenceStart.
    Av1 {
        config: Av1Config,
        record: Bytes,
    },
    /// VP9: the vpcC, and the size of the first keyframe (VP9 has no sequence header).
    Vp9 {
        config: Vp9Config,
        width: u32,
        height: u32,
    },
    Opus(OpusConfig),
    Flac(FlacConfig),
    /// AC-3 or E-AC-3, described by the first sync frame (they have no sequence header).
    Ac3(Ac3Config),
}

impl TrackCodec {
    /// An H.264 track from the body of an FLV AVC sequence header; the size comes from the
    /// first SPS (0x0 when it cannot be parsed: decoders read the SPS anyway).
    pub fn avc_from_record(record: Bytes) -> Result<Self, Fmp4Error> {
        let config = parse_avc_decoder_config(&record)?;
        let (width, height) = config
            .sps
            .first()
            .and_then(|sps| parse_sps(sps))
            .map_or((0, 0), |info| (info.width, info.height));
        Ok(TrackCodec::Avc {
            config,
            record,
            width,
            height,
        })
    }

    /// An AAC track from the body of an FLV AAC sequence header.
    pub fn aac_from_asc(asc: Bytes) -> Result<Self, Fmp4Error> {
        let config = parse_audio_specific_config(&asc)?;
        Ok(TrackCodec::Aac { config, asc })
    }

    /// RFC 6381 codec string for the manifest: `avc1.64001f`, `mp4a.40.2`, `hvc1.1.6.L93.B0`,
    /// `av01.0.08M.08`, `vp09.00.31.08`, `opus`, `flac`, `ac-3`, `ec-3`.
    pub fn codec_string(&self) -> String {
        match self {
            TrackCodec::Avc { config, .. } => avc_codec_string(config),
            TrackCodec::Aac { config, .. } => aac_codec_string(config),
            TrackCodec::Hevc { config, .. } => config.codec_string(),
            TrackCodec::Av1 { config, .. } => config.codec_string(),
            TrackCodec::Vp9 { config, .. } => config.codec_string(),
            TrackCodec::Opus(_) => "opus".to_owned(),
            TrackCodec::Flac(_) => "flac".to_owned(),
            TrackCodec::Ac3(config) => config.codec_string().to_owned(),
        }
    }

    /// Units per second of sample times (`Sample::dts`, `duration`, `cts_offset`) and of
    /// `tfdt`: [`VIDEO_TIMESCALE`] for video, the output sample rate for audio (so an AAC
    /// frame lasts exactly 1024 or 2048 units). Never 0.
    pub fn timescale(&self) -> u32 {
        if self.is_video() {
            return VIDEO_TIMESCALE;
        }
        match self.sample_rate() {
            Some(0) | None => MOVIE_TIMESCALE,
            Some(rate) => rate,
        }
    }

    pub fn is_video(&self) -> bool {
        self.dimensions().is_some()
    }

    /// Display size of a video track.
    pub fn dimensions(&self) -> Option<(u32, u32)> {
        match self {
            TrackCodec::Avc { width, height, .. } | TrackCodec::Vp9 { width, height, .. } => {
                Some((*width, *height))
            }
            TrackCodec::Hevc { config, .. } => Some((config.width, config.height)),
            TrackCodec::Av1 { config, .. } => Some((config.width, config.height)),
            _ => None,
        }
    }

    /// Output sample rate of an audio track.
    pub fn sample_rate(&self) -> Option<u32> {
        match self {
            TrackCodec::Aac { config, .. } => Some(config.output_sample_rate()),
            TrackCodec::Opus(_) => Some(OPUS_RATE),
            TrackCodec::Flac(config) => Some(config.sample_rate),
            TrackCodec::Ac3(config) => Some(config.sample_rate),
            _ => None,
        }
    }

    /// Channels an audio track decodes to (what the sample entry and the manifest say; the
    /// real count, e.g. 2 for stereo and for HE-AACv2's parametric stereo).
    pub fn channels(&self) -> Option<u16> {
        match self {
            TrackCodec::Aac { config, .. } => Some(aac_channels(config)),
            TrackCodec::Opus(config) => Some(u16::from(config.channels)),
            TrackCodec::Flac(config) => Some(u16::from(config.channels)),
            TrackCodec::Ac3(config) => Some(config.channels),
            _ => None,
        }
    }

    /// Usual length of one audio frame in the track timescale (0 for video): what a frame
    /// lasts when its own length is unknown.
    pub fn nominal_frame_ticks(&self) -> u64 {
        match self {
            TrackCodec::Opus(_) => u64::from(OPUS_RATE / 50),
            TrackCodec::Flac(config) => u64::from(config.max_block),
            _ if self.is_video() => 0,
            _ => self.frame_ticks(&[]).unwrap_or(1),
        }
    }

    /// Samples of one audio frame at the track timescale, when the codec says (`None`: use
    /// the publisher's timestamps).
    pub fn frame_ticks(&self, frame: &[u8]) -> Option<u64> {
        match self {
            TrackCodec::Aac { config, .. } => {
                let core = u64::from(config.sample_rate.max(1));
                Some((AAC_FRAME_SAMPLES * u64::from(self.timescale()) / core).max(1))
            }
            TrackCodec::Opus(_) => codecs::opus_packet_ticks(frame).map(u64::from),
            TrackCodec::Flac(config) => codecs::flac_frame_samples(frame, config).map(u64::from),
            TrackCodec::Ac3(config) => Some(u64::from(config.frame_samples)),
            _ => None,
        }
    }

    /// The part of a frame body that is the sample: all of it, except an AV1 frame's leading
    /// temporal delimiters, which ISOBMFF samples must not have.
    pub fn sample_start(&self, frame: &[u8]) -> usize {
        match self {
            TrackCodec::Av1 { .. } => codecs::av1_sample_start(frame),
            _ => 0,
        }
    }
}

/// Channel count of an AAC configuration, including the ISO/IEC 23001-8 layouts 11–14.
/// A config defined by a program config element (0) is assumed stereo: decoders take the
/// real layout from the PCE.
fn aac_channels(config: &AacConfig) -> u16 {
    match config.output_channels() {
        0 => match config.channel_config {
            11 => 7,
            12 | 14 => 8,
            13 => 24,
            _ => 2,
        },
        n => u16::from(n),
    }
}

/// The track of a video sequence header's body.
pub fn video_codec(fourcc: Option<FourCc>, body: &[u8]) -> Result<TrackCodec, Fmp4Error> {
    let record = || Bytes::copy_from_slice(body);
    match fourcc {
        Some(FourCc::AVC1) => TrackCodec::avc_from_record(record()),
        Some(FourCc::HVC1) => Ok(TrackCodec::Hevc {
            config: codecs::parse_hevc_config(body)?,
            record: record(),
        }),
        Some(FourCc::AV01) => Ok(TrackCodec::Av1 {
            config: codecs::parse_av1_config(body)?,
            record: record(),
        }),
        _ => Err(Fmp4Error::UnsupportedCodec(fourcc)),
    }
}

/// Codecs whose track needs the first (key)frame as well as the sequence header: VP9 (the
/// picture size), AC-3 and E-AC-3 (everything: they have no decoder configuration).
pub fn needs_first_frame(fourcc: Option<FourCc>) -> bool {
    matches!(
        fourcc,
        Some(FourCc::VP09) | Some(FourCc::AC3) | Some(FourCc::EAC3)
    )
}

/// The track of a [`needs_first_frame`] codec from its sequence header's body and its first
/// frame (a keyframe for video).
pub fn codec_from_frame(
    fourcc: Option<FourCc>,
    header: &[u8],
    frame: &[u8],
) -> Result<TrackCodec, Fmp4Error> {
    match fourcc {
        Some(FourCc::VP09) => {
            let config = codecs::parse_vp9_config(header)?;
            let (width, height) = codecs::vp9_keyframe_size(frame)
                .ok_or(CodecError::Invalid("VP9 keyframe header"))?;
            Ok(TrackCodec::Vp9 {
                config,
                width,
                height,
            })
        }
        Some(FourCc::AC3) | Some(FourCc::EAC3) => {
            let config = codecs::parse_ac3_frame(frame)?;
            if config.enhanced != (fourcc == Some(FourCc::EAC3)) {
                return Err(CodecError::Invalid("AC-3 bsid for the FourCC").into());
            }
            Ok(TrackCodec::Ac3(config))
        }
        _ => Err(Fmp4Error::UnsupportedCodec(fourcc)),
    }
}

/// The track of an audio sequence header's body.
pub fn audio_codec(fourcc: Option<FourCc>, body: &[u8]) -> Result<TrackCodec, Fmp4Error> {
    match fourcc {
        Some(FourCc::MP4A) => TrackCodec::aac_from_asc(Bytes::copy_from_slice(body)),
        Some(FourCc::OPUS) => Ok(TrackCodec::Opus(codecs::parse_opus_config(body)?)),
        Some(FourCc::FLAC) => Ok(TrackCodec::Flac(codecs::parse_flac_config(body)?)),
        _ => Err(Fmp4Error::UnsupportedCodec(fourcc)),
    }
}

/// One sample of a media segment.
#[derive(Clone, Debug)]
pub struct Sample {
    /// Decode time in the track timescale. Only the first sample's is written (`tfdt`);
    /// the others follow from the durations.
    pub dts: u64,
    /// Duration in the track timescale (next sample's dts minus this one's).
    pub duration: u32,
    /// Presentation minus decode time in the track timescale (B-frames).
    pub cts_offset: i32,
    /// A sync sample (IDR for video; every audio frame).
    pub keyframe: bool,
    /// AVC: the length-prefixed NAL units exactly as FLV carries them; AAC: one raw frame.
    /// Empty when the writer keeps the data elsewhere (a DASH segment's video gathered on
    /// disk): `size` is what the segment says.
    pub data: Bytes,
    /// Bytes of the sample (`data.len()` when `data` holds it).
    pub size: u32,
}

impl Sample {
    /// An audio frame: always a sync sample (MSE drops audio not marked so).
    pub fn audio(dts: u64, duration: u32, data: Bytes) -> Self {
        Sample {
            dts,
            duration,
            cts_offset: 0,
            keyframe: true,
            size: len_u32(&data),
            data,
        }
    }

    /// A video frame (duration set when the next one arrives).
    pub fn video(dts: u64, cts_offset: i32, keyframe: bool, data: Bytes) -> Self {
        Sample {
            dts,
            duration: 0,
            cts_offset,
            keyframe,
            size: len_u32(&data),
            data,
        }
    }
}

/// A sample's length as the `trun` box stores it (larger ones are refused with the segment).
fn len_u32(data: &Bytes) -> u32 {
    u32::try_from(data.len()).unwrap_or(u32::MAX)
}

/// The init segment of one track: `ftyp` + `moov` (`mvhd`, `trak`, `mvex`/`trex`) with an
/// empty sample table: every sample lives in the media segments.
pub fn init_segment(codec: &TrackCodec) -> Result<Bytes, Fmp4Error> {
    let ftyp = Ftyp {
        major_brand: b"iso6".into(),
        minor_version: 0,
        compatible_brands: vec![b"iso6".into(), b"cmfc".into(), b"dash".into()],
    };
    movie_init(ftyp, &[(TRACK_ID, codec)])
}

/// `ftyp` + `moov` of a fragmented file with several tracks (`(track id, codec)`): an MP4
/// recording holds its video and audio in one file.
pub fn movie_init(ftyp: Ftyp, tracks: &[(u32, &TrackCodec)]) -> Result<Bytes, Fmp4Error> {
    let mut traks = Vec::with_capacity(tracks.len());
    let mut trex = Vec::with_capacity(tracks.len());
    for (id, codec) in tracks {
        traks.push(trak(*id, codec)?);
        trex.push(Trex {
            track_id: *id,
            default_sample_description_index: 1,
            ..Default::default()
        });
    }
    let next_track_id = tracks.iter().map(|t| t.0).max().unwrap_or(0) + 1;
    let moov = Moov {
        mvhd: Mvhd {
            timescale: MOVIE_TIMESCALE,
            rate: 1.into(),
            volume: 1.into(),
            next_track_id,
            ..Default::default()
        },
        trak: traks,
        mvex: Some(Mvex { mehd: None, trex }),
        ..Default::default()
    };
    let mut out = BytesMut::with_capacity(1024);
    ftyp.encode(&mut out)?;
    moov.encode(&mut out)?;
    Ok(out.freeze())
}

/// One track's `trak` with an empty sample table.
fn trak(track_id: u32, codec: &TrackCodec) -> Result<Trak, Fmp4Error> {
    let entry = sample_entry(codec)?;
    let timescale = codec.timescale();
    let (handler, name, width, height) = match codec.dimensions() {
        Some((w, h)) => (b"vide", "VideoHandler", w, h),
        None => (b"soun", "SoundHandler", 0, 0),
    };
    let video = codec.is_video();
    let (width, height) = fit_u16(width, height)?;
    Ok(Trak {
        tkhd: Tkhd {
            track_id,
            enabled: true,
            in_movie: true,
            volume: if video { 0.into() } else { 1.into() },
            width: FixedPoint::new(width, 0),
            height: FixedPoint::new(height, 0),
            ..Default::default()
        },
        mdia: Mdia {
            mdhd: Mdhd {
                timescale,
                language: "und".into(),
                ..Default::default()
            },
            hdlr: Hdlr {
                handler: handler.into(),
                name: name.into(),
            },
            minf: Minf {
                vmhd: video.then(Vmhd::default),
                smhd: (!video).then(Smhd::default),
                dinf: Dinf {
                    dref: Dref {
                        entries: vec![DrefEntry::Url(Url::default())],
                    },
                },
                stbl: Stbl {
                    stsd: Stsd {
                        codecs: vec![entry],
                    },
                    stts: Stts::default(),
                    stsc: Stsc::default(),
                    stsz: Stsz::default(),
                    stco: Some(Stco::default()),
                    ..Default::default()
                },
                ..Default::default()
            },
        },
        ..Default::default()
    })
}

fn fit_u16(width: u32, height: u32) -> Result<(u16, u16), Fmp4Error> {
    match (u16::try_from(width), u16::try_from(height)) {
        (Ok(w), Ok(h)) => Ok((w, h)),
        _ => Err(Fmp4Error::VideoTooLarge { width, height }),
    }
}

/// The `stsd` entry of a track: the only place that differs per codec.
fn sample_entry(codec: &TrackCodec) -> Result<Codec, Fmp4Error> {
    match codec {
        TrackCodec::Avc {
            config,
            record,
            width,
            height,
        } => {
            let (width, height) = fit_u16(*width, *height)?;
            Ok(Avc1 {
                visual: Visual {
                    data_reference_index: 1,
                    width,
                    height,
                    ..Default::default()
                },
                avcc: avcc(config, record)?,
                ..Default::default()
            }
            .into())
        }
        TrackCodec::Aac { config, asc } => {
            if asc.is_empty() {
                return Err(Fmp4Error::EmptyAsc);
            }
            if asc.len() > MAX_ASC_LEN {
                return Err(Fmp4Error::AscTooLong(asc.len()));
            }
            let rate = config.output_sample_rate();
            if rate == 0 {
                return Err(Fmp4Error::ZeroSampleRate);
            }
            Ok(Mp4a {
                audio: Audio {
                    data_reference_index: 1,
                    channel_count: aac_channels(config),
                    sample_size: 16,
                    // 16.16 fixed point: rates above 65535 Hz are written as 0 (as ffmpeg
                    // does); the timescale and the ASC carry the real rate.
                    sample_rate: FixedPoint::new(u16::try_from(rate).unwrap_or(0), 0),
                },
                esds: Esds {
                    es_desc: esds::EsDescriptor {
                        es_id: 1,
                        dec_config: esds::DecoderConfig {
                            object_type_indication: 0x40, // MPEG-4 Audio
                            stream_type: 0x05,            // AudioStream
                            up_stream: 0,
                            buffer_size_db: Default::default(),
                            max_bitrate: 0,
                            avg_bitrate: 0,
                            dec_specific: Some(esds::DecoderSpecific {
                                profile: config.object_type,
                                freq_index: config.sample_rate_index,
                                chan_conf: config.channel_config,
                                raw: asc.to_vec(),
                            }),
                        },
                        sl_config: esds::SLConfig::default(),
                        ..Default::default()
                    },
                },
                btrt: None,
                taic: None,
            }
            .into())
        }
        TrackCodec::Hevc { config, record } => {
            let (width, height) = fit_u16(config.width, config.height)?;
            Ok(Hvc1 {
                visual: visual(width, height),
                hvcc: decode_whole::<Hvcc>(record)?,
                ..Default::default()
            }
            .into())
        }
        TrackCodec::Av1 { config, record } => {
            let (width, height) = fit_u16(config.width, config.height)?;
            Ok(Av01 {
                visual: visual(width, height),
                av1c: decode_whole::<Av1c>(record)?,
                ..Default::default()
            }
            .into())
        }
        TrackCodec::Vp9 {
            config,
            width,
            height,
        } => {
            let (width, height) = fit_u16(*width, *height)?;
            Ok(Vp09 {
                visual: visual(width, height),
                vpcc: VpcC {
                    profile: config.profile,
                    level: config.level,
                    bit_depth: config.bit_depth,
                    chroma_subsampling: config.chroma_subsampling,
                    video_full_range_flag: config.full_range,
                    color_primaries: config.colour_primaries,
                    transfer_characteristics: config.transfer,
                    matrix_coefficients: config.matrix,
                    codec_initialization_data: Vec::new(),
                },
                ..Default::default()
            }
            .into())
        }
        TrackCodec::Opus(config) => Ok(Opus {
            audio: audio(codec)?,
            dops: Dops {
                output_channel_count: config.channels,
                pre_skip: config.pre_skip,
                input_sample_rate: config.input_rate,
                output_gain: config.gain,
                channel_mapping: (config.family != 0).then(|| OpusChannelMapping {
                    family: config.family,
                    stream_count: config.streams,
                    coupled_count: config.coupled,
                    channel_mapping: config.mapping.clone(),
                }),
            },
            btrt: None,
        }
        .into()),
        TrackCodec::Flac(config) => {
            // dfLa: a FullBox (version 0) holding the STREAMINFO as the last metadata block.
            let mut body = vec![0, 0, 0, 0, 0x80, 0, 0, 34];
            body.extend_from_slice(&config.stream_info);
            Ok(Flac {
                audio: audio(codec)?,
                dfla: decode_whole::<Dfla>(&body)?,
            }
            .into())
        }
        TrackCodec::Ac3(config) if config.enhanced => Ok(Eac3 {
            audio: audio(codec)?,
            dec3: Ec3SpecificBox {
                data_rate: config.bit_rate_code,
                substreams: vec![Ec3IndependentSubstream {
                    fscod: config.fscod,
                    bsid: config.bsid,
                    asvc: false,
                    bsmod: config.bsmod,
                    acmod: config.acmod,
                    lfeon: config.lfe,
                    num_dep_sub: 0,
                    chan_loc: None,
                }],
            },
        }
        .into()),
        TrackCodec::Ac3(config) => Ok(Ac3 {
            audio: audio(codec)?,
            dac3: Ac3SpecificBox {
                fscod: config.fscod,
                bsid: config.bsid,
                bsmod: config.bsmod,
                acmod: config.acmod,
                lfeon: config.lfe,
                bit_rate_code: u8::try_from(config.bit_rate_code).unwrap_or(0),
            },
        }
        .into()),
    }
}

fn visual(width: u16, height: u16) -> Visual {
    Visual {
        data_reference_index: 1,
        width,
        height,
        ..Default::default()
    }
}

/// The audio part of a sample entry. The 16.16 rate field cannot hold rates above 65535 Hz:
/// those are written as 0, as ffmpeg does (the timescale and the codec box carry the rate).
fn audio(codec: &TrackCodec) -> Result<Audio, Fmp4Error> {
    let rate = codec.sample_rate().unwrap_or(0);
    if rate == 0 {
        return Err(Fmp4Error::ZeroSampleRate);
    }
    Ok(Audio {
        data_reference_index: 1,
        channel_count: codec.channels().unwrap_or(2),
        sample_size: 16,
        sample_rate: FixedPoint::new(u16::try_from(rate).unwrap_or(0), 0),
    })
}

/// A codec box decoded from the encoder's own record, which must be read to its end (so the
/// box we write says exactly what the encoder said).
fn decode_whole<T: Atom>(record: &[u8]) -> Result<T, Fmp4Error> {
    let mut rest = record;
    let parsed = T::decode_body(&mut rest)?;
    if rest.has_remaining() {
        return Err(Fmp4Error::TrailingConfig);
    }
    Ok(parsed)
}

/// The `avcC` of a track: the encoder's own record when mp4-atom reads all of it (so the
/// High-profile extension and every parameter set survive byte for byte), otherwise one
/// rebuilt from the parsed configuration.
fn avcc(config: &AvcConfig, record: &[u8]) -> Result<Avcc, Fmp4Error> {
    let mut rest = record;
    if let Ok(parsed) = Avcc::decode_body(&mut rest) {
        if !rest.has_remaining()
            && !parsed.sequence_parameter_sets.is_empty()
            && !parsed.picture_parameter_sets.is_empty()
        {
            return Ok(parsed);
        }
    }
    if config.sps.is_empty() || config.pps.is_empty() {
        return Err(Fmp4Error::MissingParameterSets);
    }
    Ok(Avcc {
        configuration_version: 1,
        avc_profile_indication: config.profile_idc,
        profile_compatibility: config.constraint_flags,
        avc_level_indication: config.level_idc,
        length_size: config.nal_length_size,
        sequence_parameter_sets: config.sps.iter().map(|s| s.to_vec()).collect(),
        picture_parameter_sets: config.pps.iter().map(|s| s.to_vec()).collect(),
        ext: None,
    })
}

/// A media segment of one track: `styp` + `moof` (`mfhd`, `traf`: `tfhd` with
/// default-base-is-moof, 64-bit `tfdt` = first sample's dts, `trun` with per-sample duration,
/// size, flags and, when any is non-zero, signed composition offsets) + `mdat`.
pub fn media_segment(sequence_number: u32, samples: &[Sample]) -> Result<Bytes, Fmp4Error> {
    let head = media_segment_head(sequence_number, samples)?;
    let data_len: usize = samples.iter().map(|s| s.data.len()).sum();
    let mut out = BytesMut::with_capacity(head.len().saturating_add(data_len));
    out.extend_from_slice(&head);
    for s in samples {
        out.extend_from_slice(&s.data);
    }
    Ok(out.freeze())
}

/// Everything of [`media_segment`] before the samples' data (`styp`, `moof` and the `mdat`
/// box header): the file is this followed by each sample's `data` in order, so a writer can
/// hand the samples' own buffers to the disk instead of copying them into one.
pub fn media_segment_head(sequence_number: u32, samples: &[Sample]) -> Result<Bytes, Fmp4Error> {
    let styp = Styp {
        major_brand: b"msdh".into(),
        minor_version: 0,
        compatible_brands: vec![b"msdh".into(), b"cmfs".into(), b"cmff".into()],
    };
    let mut out = BytesMut::with_capacity(64);
    styp.encode(&mut out)?;
    out.extend_from_slice(&fragment_head(sequence_number, &[(TRACK_ID, samples)])?);
    Ok(out.freeze())
}

/// A [`media_segment_head`] without its leading `styp`: the head of a later chunk of the same
/// segment (low-latency DASH writes a segment as chunks, `styp` only at its start).
pub fn without_styp(head: &Bytes) -> Bytes {
    let styp = head
        .get(..8)
        .filter(|h| h.get(4..8) == Some(b"styp".as_slice()))
        .and_then(|h| h.get(..4))
        .and_then(|s| s.try_into().ok())
        .map_or(0, |s: [u8; 4]| u32::from_be_bytes(s) as usize);
    head.slice(styp.min(head.len())..)
}

/// A movie fragment of several tracks before its samples' data: `moof` (one `traf` per
/// track with samples) and the `mdat` header. The data follows in the order of `tracks`
/// (each track's samples in order).
pub fn fragment_head(
    sequence_number: u32,
    tracks: &[(u32, &[Sample])],
) -> Result<Bytes, Fmp4Error> {
    let tracks: Vec<&(u32, &[Sample])> = tracks.iter().filter(|t| !t.1.is_empty()).collect();
    if tracks.is_empty() {
        return Err(Fmp4Error::NoSamples);
    }
    let count: usize = tracks.iter().map(|t| t.1.len()).sum();
    if count > MAX_SEGMENT_SAMPLES {
        return Err(Fmp4Error::TooManySamples(count));
    }
    let mut track_bytes = Vec::with_capacity(tracks.len());
    for (_, samples) in &tracks {
        track_bytes.push(
            samples
                .iter()
                .fold(0u64, |n, s| n.saturating_add(u64::from(s.size))),
        );
    }
    let data_len: u64 = track_bytes.iter().sum();
    let mdat_len = data_len
        .checked_add(8)
        .filter(|n| *n <= u64::from(u32::MAX))
        .ok_or(Fmp4Error::MdatTooLarge(data_len))?;

    let mut trafs = Vec::with_capacity(tracks.len());
    for (id, samples) in &tracks {
        let first = samples.first().ok_or(Fmp4Error::NoSamples)?;
        let with_cts = samples.iter().any(|s| s.cts_offset != 0);
        let entries = samples
            .iter()
            .map(|s| TrunEntry {
                duration: Some(s.duration),
                // Each size is at most the total, which fits in u32 (checked above).
                size: Some(s.size),
                flags: Some(if s.keyframe {
                    SAMPLE_FLAGS_SYNC
                } else {
                    SAMPLE_FLAGS_NON_SYNC
                }),
                cts: with_cts.then_some(i64::from(s.cts_offset)),
            })
            .collect::<Vec<_>>();
        trafs.push(Traf {
            tfhd: Tfhd {
                track_id: *id,
                default_base_is_moof: true,
                ..Default::default()
            },
            tfdt: Some(Tfdt {
                base_media_decode_time: first.dts,
            }),
            trun: vec![Trun {
                data_offset: Some(0),
                samples: TrunSamples::Explicit(entries),
            }],
            ..Default::default()
        });
    }
    let mut moof = Moof {
        mfhd: Mfhd { sequence_number },
        traf: trafs,
    };

    // moof is small: 16 bytes a sample plus about 100 bytes a track.
    let capacity = 256usize.saturating_add(count.saturating_mul(16));
    let mut out = BytesMut::with_capacity(capacity);
    // The data offsets (from the moof's first byte to each track's first sample) depend on
    // the moof's size, which does not depend on their values: encode once to measure, then
    // again.
    moof.encode(&mut out)?;
    let moof_len = out.len() as u64;
    let mut offset = moof_len + 8;
    for (traf, bytes) in moof.traf.iter_mut().zip(&track_bytes) {
        let at = i32::try_from(offset).map_err(|_| Fmp4Error::MdatTooLarge(data_len))?;
        if let Some(trun) = traf.trun.first_mut() {
            trun.data_offset = Some(at);
        }
        offset += bytes;
    }
    out.clear();
    moof.encode(&mut out)?;

    // The mdat header: its size (checked above to fit 32 bits) and kind; the data follows.
    out.extend_from_slice(&u32::try_from(mdat_len).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(b"mdat");
    Ok(out.freeze())
}

/// The `mfra` at the end of a fragmented file: for each track, where each fragment starts
/// (`(decode time, offset of its moof)`), so players seek without reading every fragment.
pub fn random_access_index(tracks: &[(u32, &[(u64, u64)])]) -> Result<Bytes, Fmp4Error> {
    let tfra = tracks
        .iter()
        .map(|(id, points)| Tfra {
            track_id: *id,
            entries: points
                .iter()
                .map(|(time, moof_offset)| FragmentInfo {
                    time: *time,
                    moof_offset: *moof_offset,
                    traf_number: 1,
                    trun_number: 1,
                    sample_delta: 1,
                })
                .collect(),
        })
        .collect();
    let mfra = Mfra {
        tfra,
        mfro: Mfro::default(),
    };
    let mut out = BytesMut::with_capacity(256);
    mfra.encode(&mut out)?;
    // mfro's parent_size is the whole mfra's: written now that it is known.
    let len = out.len();
    if let Some(tail) = out.get_mut(len.saturating_sub(4)..) {
        tail.copy_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes());
    }
    Ok(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mp4_atom::Decode;
    use std::collections::HashMap;

    // ---- Enhanced RTMP codecs: records as ffmpeg 9 sends them (src/media/testdata) ----

    fn stsd_entry(init: &[u8]) -> Codec {
        let moov = mp4_atom::Moov::decode(&mut &init[child(init, b"ftyp").unwrap().1.len() + 8..])
            .unwrap();
        moov.trak[0].mdia.minf.stbl.stsd.codecs[0].clone()
    }

    #[test]
    fn enhanced_codecs_get_their_sample_entries() {
        let t = |d: &[u8]| d.to_vec();
        let hevc = video_codec(
            Some(FourCc::HVC1),
            &t(include_bytes!("../media/testdata/hevc_main.hvcc")),
        )
        .unwrap();
        match stsd_entry(&init_segment(&hevc).unwrap()) {
            Codec::Hvc1(h) => {
                assert_eq!((h.visual.width, h.visual.height), (320, 240));
                assert_eq!(h.hvcc.general_profile_idc, 1);
            }
            other => panic!("{other:?}"),
        }
        let av1 = video_codec(
            Some(FourCc::AV01),
            include_bytes!("../media/testdata/av1.av1c"),
        )
        .unwrap();
        assert!(
            matches!(stsd_entry(&init_segment(&av1).unwrap()), Codec::Av01(a) if a.visual.width == 320)
        );
        assert!(video_codec(Some(FourCc::VP09), &[1, 0, 0, 0]).is_err());
        assert!(needs_first_frame(Some(FourCc::VP09)));
        let vp9 = codec_from_frame(
            Some(FourCc::VP09),
            include_bytes!("../media/testdata/vp9.vpcc"),
            include_bytes!("../media/testdata/vp9_key.head"),
        )
        .unwrap();
        assert_eq!(vp9.dimensions(), Some((320, 240)));
        assert!(matches!(
            stsd_entry(&init_segment(&vp9).unwrap()),
            Codec::Vp09(_)
        ));
        let opus = audio_codec(
            Some(FourCc::OPUS),
            include_bytes!("../media/testdata/opus.head"),
        )
        .unwrap();
        assert_eq!(
            (opus.timescale(), opus.nominal_frame_ticks()),
            (48_000, 960)
        );
        match stsd_entry(&init_segment(&opus).unwrap()) {
            Codec::Opus(o) => assert_eq!((o.dops.pre_skip, o.audio.channel_count), (312, 1)),
            other => panic!("{other:?}"),
        }
        let flac = audio_codec(
            Some(FourCc::FLAC),
            include_bytes!("../media/testdata/flac.streaminfo"),
        )
        .unwrap();
        assert!(matches!(
            stsd_entry(&init_segment(&flac).unwrap()),
            Codec::Flac(_)
        ));
        let ac3 = include_bytes!("../media/testdata/ac3.frame");
        let eac3 = include_bytes!("../media/testdata/eac3.frame");
        let a = codec_from_frame(Some(FourCc::AC3), &[], ac3).unwrap();
        assert!(matches!(
            stsd_entry(&init_segment(&a).unwrap()),
            Codec::Ac3(_)
        ));
        let e = codec_from_frame(Some(FourCc::EAC3), &[], eac3).unwrap();
        assert!(matches!(
            stsd_entry(&init_segment(&e).unwrap()),
            Codec::Eac3(_)
        ));
        assert_eq!(
            (a.codec_string(), e.codec_string()),
            ("ac-3".into(), "ec-3".into())
        );
        // A FourCC that disagrees with the frame is refused.
        assert!(codec_from_frame(Some(FourCc::EAC3), &[], ac3).is_err());
        // An hvcC with bytes after its arrays is refused rather than half-copied.
        let mut long = include_bytes!("../media/testdata/hevc_main.hvcc").to_vec();
        long.push(0);
        let bad = video_codec(Some(FourCc::HVC1), &long).unwrap();
        assert!(init_segment(&bad).is_err());
    }

    // ---- helpers: an independent box walker ----

    /// Body of the first box of `kind` among the boxes laid end to end in `data`, with its
    /// offset in `data` (of the body, not the header).
    fn child<'a>(data: &'a [u8], kind: &[u8; 4]) -> Option<(usize, &'a [u8])> {
        let mut pos = 0;
        while pos + 8 <= data.len() {
            let size = u32::from_be_bytes(data[pos..pos + 4].try_into().unwrap()) as usize;
            assert!(size >= 8 && pos + size <= data.len(), "bad box size {size}");
            if &data[pos + 4..pos + 8] == kind {
                return Some((pos + 8, &data[pos + 8..pos + size]));
            }
            pos += size;
        }
        None
    }

    /// Follows a path of container boxes; `skip` bytes of each body before its children
    /// (full-box headers, sample entry fields).
    fn path<'a>(data: &'a [u8], steps: &[(&[u8; 4], usize)]) -> &'a [u8] {
        let mut cur = data;
        for (kind, skip) in steps {
            let (_, body) = child(cur, kind)
                .unwrap_or_else(|| panic!("no {} box", String::from_utf8_lossy(*kind)));
            cur = &body[*skip..];
        }
        cur
    }

    fn top_level_kinds(data: &[u8]) -> Vec<String> {
        let mut kinds = Vec::new();
        let mut pos = 0;
        while pos + 8 <= data.len() {
            let size = u32::from_be_bytes(data[pos..pos + 4].try_into().unwrap()) as usize;
            kinds.push(String::from_utf8_lossy(&data[pos + 4..pos + 8]).into_owned());
            pos += size;
        }
        assert_eq!(pos, data.len(), "boxes do not end at the end of the data");
        kinds
    }

    fn decode_init(init: &[u8]) -> (Ftyp, Moov) {
        let mut buf = init;
        let ftyp = Ftyp::decode(&mut buf).unwrap();
        let moov = Moov::decode(&mut buf).unwrap();
        assert!(buf.is_empty());
        (ftyp, moov)
    }

    /// An ffmpeg/x264 High-profile 320x240 record, extension included.
    const X264_RECORD: &[u8] = &[
        0x01, 0x64, 0x00, 0x0d, 0xff, 0xe1, 0x00, 0x18, 0x67, 0x64, 0x00, 0x0d, 0xac, 0xd9, 0x41,
        0x41, 0xfa, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0x20, 0xf1, 0x42,
        0x99, 0x60, 0x01, 0x00, 0x06, 0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0, 0xfd, 0xf8, 0xf8, 0x00,
    ];

    fn avc_track() -> TrackCodec {
        TrackCodec::avc_from_record(Bytes::from_static(X264_RECORD)).unwrap()
    }

    // ---- init segments ----

    #[test]
    fn video_init_segment_decodes_box_by_box() {
        let codec = avc_track();
        assert_eq!(codec.dimensions(), Some((320, 240)));
        let init = init_segment(&codec).unwrap();
        assert_eq!(top_level_kinds(&init), ["ftyp", "moov"]);
        let (ftyp, moov) = decode_init(&init);
        assert_eq!(ftyp.major_brand, b"iso6".into());
        assert!(ftyp.compatible_brands.contains(&b"cmfc".into()));

        assert_eq!(moov.mvhd.next_track_id, 2);
        assert_eq!(moov.trak.len(), 1);
        let trak = &moov.trak[0];
        assert_eq!(trak.tkhd.track_id, TRACK_ID);
        assert!(trak.tkhd.enabled && trak.tkhd.in_movie);
        assert_eq!(trak.tkhd.width.integer(), 320);
        assert_eq!(trak.tkhd.height.integer(), 240);
        assert_eq!(trak.mdia.mdhd.timescale, 90_000);
        assert_eq!(trak.mdia.hdlr.handler, b"vide".into());
        let minf = &trak.mdia.minf;
        assert!(minf.vmhd.is_some() && minf.smhd.is_none());
        assert_eq!(minf.dinf.dref.entries, vec![DrefEntry::Url(Url::default())]);
        let stbl = &minf.stbl;
        assert!(stbl.stts.entries.is_empty());
        assert!(stbl.stsc.entries.is_empty());
        assert_eq!(stbl.stsz, Stsz::default());
        assert_eq!(stbl.stco, Some(Stco::default()));
        assert_eq!(stbl.stsd.codecs.len(), 1);
        let Codec::Avc1(avc1) = &stbl.stsd.codecs[0] else {
            panic!("not avc1: {:?}", stbl.stsd.codecs[0]);
        };
        assert_eq!((avc1.visual.width, avc1.visual.height), (320, 240));
        assert_eq!(avc1.visual.data_reference_index, 1);
        assert_eq!(avc1.avcc.length_size, 4);

        let mvex = moov.mvex.as_ref().unwrap();
        assert_eq!(mvex.trex.len(), 1);
        assert_eq!(mvex.trex[0].track_id, TRACK_ID);
        assert_eq!(mvex.trex[0].default_sample_description_index, 1);
    }

    #[test]
    fn avcc_box_carries_the_input_record_byte_for_byte() {
        let init = init_segment(&avc_track()).unwrap();
        // stsd: full box + entry count (8); avc1: VisualSampleEntry fields (78).
        let avc1 = path(
            &init,
            &[
                (b"moov", 0),
                (b"trak", 0),
                (b"mdia", 0),
                (b"minf", 0),
                (b"stbl", 0),
                (b"stsd", 8),
                (b"avc1", 78),
            ],
        );
        let (_, avcc) = child(avc1, b"avcC").unwrap();
        assert_eq!(avcc, X264_RECORD);
    }

    #[test]
    fn unreadable_record_tail_falls_back_to_the_parsed_configuration() {
        // A Main-profile record followed by 3 junk bytes: mp4-atom cannot read it whole.
        let mut record = X264_RECORD[..41].to_vec();
        record[1] = 0x4d;
        record.extend_from_slice(&[0xaa, 0xbb, 0xcc]);
        let codec = TrackCodec::avc_from_record(Bytes::from(record)).unwrap();
        let (_, moov) = decode_init(&init_segment(&codec).unwrap());
        let Codec::Avc1(avc1) = &moov.trak[0].mdia.minf.stbl.stsd.codecs[0] else {
            panic!("not avc1");
        };
        assert_eq!(avc1.avcc.avc_profile_indication, 0x4d);
        assert_eq!(
            avc1.avcc.sequence_parameter_sets,
            vec![X264_RECORD[8..32].to_vec()]
        );
        assert_eq!(
            avc1.avcc.picture_parameter_sets,
            vec![X264_RECORD[35..41].to_vec()]
        );
        assert_eq!(avc1.avcc.ext, None);
    }

    fn esds_of(init: &[u8]) -> (Mp4a, u32, Hdlr, bool) {
        let (_, moov) = decode_init(init);
        let trak = &moov.trak[0];
        let Codec::Mp4a(mp4a) = &trak.mdia.minf.stbl.stsd.codecs[0] else {
            panic!("not mp4a");
        };
        (
            mp4a.clone(),
            trak.mdia.mdhd.timescale,
            trak.mdia.hdlr.clone(),
            trak.mdia.minf.smhd.is_some() && trak.mdia.minf.vmhd.is_none(),
        )
    }

    #[test]
    fn mono_48k_esds_carries_the_asc_and_one_channel() {
        // AAC LC (2), 48 kHz (index 3), mono (1).
        let asc = [0x11, 0x88];
        let codec = TrackCodec::aac_from_asc(Bytes::copy_from_slice(&asc)).unwrap();
        assert_eq!(codec.timescale(), 48_000);
        assert_eq!(codec.channels(), Some(1));
        assert_eq!(codec.codec_string(), "mp4a.40.2");
        let (mp4a, timescale, hdlr, sound_header) = esds_of(&init_segment(&codec).unwrap());
        assert_eq!(timescale, 48_000);
        assert_eq!(hdlr.handler, b"soun".into());
        assert!(sound_header);
        assert_eq!(mp4a.audio.channel_count, 1);
        assert_eq!(mp4a.audio.sample_rate.integer(), 48_000);
        let dc = &mp4a.esds.es_desc.dec_config;
        assert_eq!(dc.object_type_indication, 0x40);
        assert_eq!(dc.stream_type, 0x05);
        let ds = dc.dec_specific.as_ref().unwrap();
        assert_eq!(ds.raw, asc);
        assert_eq!((ds.profile, ds.freq_index, ds.chan_conf), (2, 3, 1));
    }

    #[test]
    fn stereo_44k1_esds_says_two_channels() {
        // AAC LC, 44.1 kHz (index 4), stereo (2): the C module writes 1 channel here.
        let asc = [0x12, 0x10];
        let codec = TrackCodec::aac_from_asc(Bytes::copy_from_slice(&asc)).unwrap();
        let init = init_segment(&codec).unwrap();
        let (mp4a, timescale, _, _) = esds_of(&init);
        assert_eq!(timescale, 44_100);
        assert_eq!(mp4a.audio.channel_count, 2);
        assert_eq!(mp4a.audio.sample_rate.integer(), 44_100);
        let ds = mp4a.esds.es_desc.dec_config.dec_specific.unwrap();
        assert_eq!(ds.raw, asc);
        assert_eq!(ds.chan_conf, 2);
        // The raw AudioSampleEntry too: channelcount is at offset 16 of the mp4a body.
        let mp4a_body = path(
            &init,
            &[
                (b"moov", 0),
                (b"trak", 0),
                (b"mdia", 0),
                (b"minf", 0),
                (b"stbl", 0),
                (b"stsd", 8),
            ],
        );
        let (_, body) = child(mp4a_body, b"mp4a").unwrap();
        assert_eq!(&body[16..18], &[0, 2]);
        assert_eq!(&body[24..28], &[0xac, 0x44, 0, 0]);
    }

    #[test]
    fn he_aac_v2_is_declared_stereo_at_the_sbr_rate() {
        // Hierarchical signalling: PS (29), core 24 kHz (6), mono, SBR 48 kHz (3), then LC (2).
        // 11101 0110 0001 0011 00010 + padding
        let asc = [0xeb, 0x09, 0x88, 0x00];
        let codec = TrackCodec::aac_from_asc(Bytes::copy_from_slice(&asc)).unwrap();
        let TrackCodec::Aac { config, .. } = &codec else {
            unreachable!()
        };
        assert!(config.ps, "{config:?}");
        assert_eq!(codec.timescale(), 48_000);
        let (mp4a, timescale, _, _) = esds_of(&init_segment(&codec).unwrap());
        assert_eq!(timescale, 48_000);
        assert_eq!(mp4a.audio.channel_count, 2);
        assert_eq!(mp4a.audio.sample_rate.integer(), 48_000);
        assert_eq!(mp4a.esds.es_desc.dec_config.dec_specific.unwrap().raw, asc);
    }

    #[test]
    fn malformed_configurations_are_clear_errors() {
        assert!(matches!(
            TrackCodec::avc_from_record(Bytes::from_static(&[1, 0x64])),
            Err(Fmp4Error::Config(_))
        ));
        assert!(matches!(
            TrackCodec::aac_from_asc(Bytes::new()),
            Err(Fmp4Error::Config(_))
        ));
        let TrackCodec::Aac { config, .. } =
            TrackCodec::aac_from_asc(Bytes::from_static(&[0x12, 0x10])).unwrap()
        else {
            unreachable!()
        };
        let empty = TrackCodec::Aac {
            config,
            asc: Bytes::new(),
        };
        assert!(matches!(init_segment(&empty), Err(Fmp4Error::EmptyAsc)));
        let long = TrackCodec::Aac {
            config,
            asc: Bytes::from(vec![0x12; MAX_ASC_LEN + 1]),
        };
        assert!(matches!(init_segment(&long), Err(Fmp4Error::AscTooLong(_))));
        let silent = TrackCodec::Aac {
            config: AacConfig {
                sample_rate: 0,
                ..config
            },
            asc: Bytes::from_static(&[0x12, 0x10]),
        };
        assert_eq!(silent.timescale(), MOVIE_TIMESCALE);
        assert!(matches!(
            init_segment(&silent),
            Err(Fmp4Error::ZeroSampleRate)
        ));

        let TrackCodec::Avc { config, record, .. } = avc_track() else {
            unreachable!()
        };
        let huge = TrackCodec::Avc {
            config: config.clone(),
            record: record.clone(),
            width: 70_000,
            height: 240,
        };
        assert!(matches!(
            init_segment(&huge),
            Err(Fmp4Error::VideoTooLarge { width: 70_000, .. })
        ));
        let no_pps = TrackCodec::Avc {
            config: AvcConfig {
                pps: Vec::new(),
                ..config
            },
            record: Bytes::from_static(&[1, 2, 3]),
            width: 320,
            height: 240,
        };
        assert!(matches!(
            init_segment(&no_pps),
            Err(Fmp4Error::MissingParameterSets)
        ));
    }

    // ---- media segments ----

    fn video_sample(dts: u64, cts: i32, key: bool, len: usize, fill: u8) -> Sample {
        Sample {
            duration: 3600,
            ..Sample::video(dts, cts, key, Bytes::from(vec![fill; len]))
        }
    }

    /// styp, moof, mdat offset and body of a media segment, decoded with mp4-atom.
    fn decode_media(seg: &[u8]) -> (Styp, Moof, usize, &[u8]) {
        assert_eq!(top_level_kinds(seg), ["styp", "moof", "mdat"]);
        let mut buf = seg;
        let styp = Styp::decode(&mut buf).unwrap();
        let moof_start = seg.len() - buf.len();
        let moof = Moof::decode(&mut buf).unwrap();
        let mdat_start = seg.len() - buf.len();
        let (_, mdat) = child(&seg[mdat_start..], b"mdat").unwrap();
        (styp, moof, mdat_start - moof_start, mdat)
    }

    #[test]
    fn media_segment_decodes_box_by_box_with_data_offset_into_mdat() {
        // A decode time past 2^32 proves tfdt is 64-bit.
        let base = (1u64 << 32) + 12_345;
        let samples = vec![
            video_sample(base, 0, true, 1000, 1),
            video_sample(base + 3600, 0, false, 10, 2),
            video_sample(base + 7200, 0, false, 333, 3),
        ];
        let seg = media_segment(7, &samples).unwrap();
        let (styp, moof, moof_len, mdat) = decode_media(&seg);
        assert_eq!(styp.major_brand, b"msdh".into());
        assert_eq!(moof.mfhd.sequence_number, 7);
        assert_eq!(moof.traf.len(), 1);
        let traf = &moof.traf[0];
        assert_eq!(traf.tfhd.track_id, TRACK_ID);
        assert!(traf.tfhd.default_base_is_moof);
        assert_eq!(traf.tfhd.base_data_offset, None);
        assert_eq!(traf.tfdt.as_ref().unwrap().base_media_decode_time, base);
        // tfdt is version 1 (a 64-bit field) in the raw bytes.
        let moof_body = path(&seg, &[(b"moof", 0), (b"traf", 0)]);
        let (_, tfdt) = child(moof_body, b"tfdt").unwrap();
        assert_eq!(tfdt[0], 1);
        assert_eq!(tfdt.len(), 12);

        assert_eq!(traf.trun.len(), 1);
        let trun = &traf.trun[0];
        let entries: Vec<TrunEntry> = trun.samples.iter().collect();
        assert_eq!(entries.len(), 3);
        for (e, s) in entries.iter().zip(&samples) {
            assert_eq!(e.duration, Some(3600));
            assert_eq!(e.size, Some(s.data.len() as u32));
            assert_eq!(e.cts, None, "no composition offsets when all are zero");
        }
        assert_eq!(entries[0].flags, Some(SAMPLE_FLAGS_SYNC));
        assert_eq!(entries[1].flags, Some(SAMPLE_FLAGS_NON_SYNC));
        assert_eq!(entries[2].flags, Some(SAMPLE_FLAGS_NON_SYNC));

        // data_offset counts from the moof's first byte to the first sample in the mdat.
        let offset = trun.data_offset.unwrap() as usize;
        assert_eq!(offset, moof_len + 8);
        let moof_start = seg.len() - moof_len - 8 - mdat.len();
        let mut pos = moof_start + offset;
        for s in &samples {
            assert_eq!(&seg[pos..pos + s.data.len()], &s.data[..]);
            pos += s.data.len();
        }
        assert_eq!(pos, seg.len());
        assert_eq!(mdat.len(), 1343);
    }

    #[test]
    fn composition_offsets_are_signed_and_per_sample_for_b_frames() {
        // I P B B in decode order: P shown after both Bs; one negative offset too.
        let samples = vec![
            video_sample(0, 7200, true, 50, 1),
            video_sample(3600, 14_400, false, 40, 2),
            video_sample(7200, 0, false, 30, 3),
            video_sample(10_800, -3600, false, 20, 4),
        ];
        let seg = media_segment(1, &samples).unwrap();
        let (_, moof, _, _) = decode_media(&seg);
        let cts: Vec<Option<i64>> = moof.traf[0].trun[0].samples.iter().map(|e| e.cts).collect();
        assert_eq!(cts, [Some(7200), Some(14_400), Some(0), Some(-3600)]);
        let traf = path(&seg, &[(b"moof", 0), (b"traf", 0)]);
        let (_, trun) = child(traf, b"trun").unwrap();
        assert_eq!(trun[0], 1, "trun version 1: signed offsets");
        // flags: data-offset, sample duration, size, flags and composition offset present.
        assert_eq!(&trun[1..4], &[0x00, 0x0f, 0x01]);
    }

    #[test]
    fn a_single_keyframe_segment_keeps_its_sync_flag() {
        let seg = media_segment(
            3,
            &[Sample::audio(480_000, 1024, Bytes::from_static(b"aac"))],
        )
        .unwrap();
        let (_, moof, _, mdat) = decode_media(&seg);
        let entry = moof.traf[0].trun[0].samples.get(0).unwrap();
        assert_eq!(entry.flags, Some(SAMPLE_FLAGS_SYNC));
        assert_eq!(entry.duration, Some(1024));
        assert_eq!(
            moof.traf[0].tfdt.as_ref().unwrap().base_media_decode_time,
            480_000
        );
        assert_eq!(mdat, b"aac");
    }

    #[test]
    fn empty_and_oversized_segments_are_refused() {
        assert!(matches!(media_segment(1, &[]), Err(Fmp4Error::NoSamples)));
        let many = vec![Sample::audio(0, 1024, Bytes::new()); MAX_SEGMENT_SAMPLES + 1];
        assert!(matches!(
            media_segment(1, &many),
            Err(Fmp4Error::TooManySamples(n)) if n == MAX_SEGMENT_SAMPLES + 1
        ));
    }

    // ---- a real stream through the real tools ----

    use crate::testutil::{artifact_dir, encode_test_flv, flv_tags, require_tools, run};

    /// ffprobe's view of the file's single stream, as key=value.
    fn probe_stream(path: &str) -> HashMap<String, String> {
        let (stdout, stderr) = run(
            "ffprobe",
            &[
                "-v",
                "error",
                "-count_frames",
                "-show_entries",
                "stream=codec_name,width,height,sample_rate,channels,nb_read_frames",
                "-of",
                "default=noprint_wrappers=1",
                path,
            ],
        );
        assert_eq!(stderr, "", "ffprobe complained about {path}");
        stdout
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// (pts, dts) of every packet, in the stream time base (the track timescale).
    fn probe_packets(path: &str) -> Vec<(i64, i64)> {
        let (stdout, stderr) = run(
            "ffprobe",
            &[
                "-v",
                "error",
                "-show_entries",
                "packet=pts,dts",
                "-of",
                "csv=p=0",
                path,
            ],
        );
        assert_eq!(stderr, "");
        stdout
            .lines()
            .map(|l| {
                let (p, d) = l.split_once(',').unwrap();
                (p.parse().unwrap(), d.parse().unwrap())
            })
            .collect()
    }

    /// Init + segments into one file, then checks that ffmpeg decodes all of it cleanly.
    fn write_and_decode(path: &std::path::Path, init: &[u8], segments: &[Bytes]) -> String {
        let mut file = init.to_vec();
        for s in segments {
            file.extend_from_slice(s);
        }
        std::fs::write(path, &file).unwrap();
        let p = path.to_str().unwrap().to_string();
        let (_, stderr) = run("ffmpeg", &["-v", "error", "-i", &p, "-f", "null", "-"]);
        assert_eq!(stderr, "", "ffmpeg could not decode {p} cleanly");
        p
    }

    #[test]
    fn ffprobe_and_ffmpeg_play_real_h264_and_aac_tracks() {
        if !require_tools(
            &["ffprobe", "ffmpeg"],
            "fMP4 output was not checked by them",
        ) {
            return;
        }
        let dir = artifact_dir("fmp4-test-artifacts");
        let flv_path = dir.join("real-av.flv");
        let flv = encode_test_flv(&flv_path, 2, 25, 48_000);

        use crate::media::flv::{parse_audio, parse_video, VideoPacket};
        let (mut video, mut audio) = (None, None);
        // (dts ms, cts ms, keyframe, data) and (ts ms, data).
        let mut frames: Vec<(u32, i32, bool, Bytes)> = Vec::new();
        let mut aframes: Vec<(u32, Bytes)> = Vec::new();
        for (kind, t, body) in flv_tags(&flv) {
            match kind {
                9 => {
                    let tag = parse_video(body).unwrap();
                    let payload = Bytes::copy_from_slice(&body[tag.body_offset..]);
                    if tag.is_sequence_header() {
                        video = Some(TrackCodec::avc_from_record(payload).unwrap());
                    } else if tag.packet == VideoPacket::Frame {
                        frames.push((t, tag.composition_time_ms, tag.is_keyframe(), payload));
                    }
                }
                8 => {
                    let tag = parse_audio(body).unwrap();
                    let payload = Bytes::copy_from_slice(&body[tag.body_offset..]);
                    if tag.is_sequence_header() {
                        audio = Some(TrackCodec::aac_from_asc(payload).unwrap());
                    } else {
                        aframes.push((t, payload));
                    }
                }
                _ => {}
            }
        }
        let (video, audio) = (video.unwrap(), audio.unwrap());
        assert_eq!(video.codec_string(), "avc1.64000d");
        assert!(
            frames.iter().any(|f| f.1 != 0),
            "ffmpeg made no B-frames: the composition offsets are untested"
        );

        // Video: 90 kHz, durations from the next dts, two segments cut at the 2nd keyframe.
        let samples: Vec<Sample> = frames
            .iter()
            .enumerate()
            .map(|(i, (t, cts, key, data))| {
                let dts = u64::from(*t) * 90;
                let next = frames
                    .get(i + 1)
                    .map_or(dts + 3600, |n| u64::from(n.0) * 90);
                Sample {
                    duration: (next - dts) as u32,
                    ..Sample::video(dts, cts * 90, *key, data.clone())
                }
            })
            .collect();
        let cut = samples
            .iter()
            .skip(1)
            .position(|s| s.keyframe)
            .expect("a second keyframe")
            + 1;
        let segments = [
            media_segment(1, &samples[..cut]).unwrap(),
            media_segment(2, &samples[cut..]).unwrap(),
        ];
        let video_path = write_and_decode(
            &dir.join("video.mp4"),
            &init_segment(&video).unwrap(),
            &segments,
        );
        let s = probe_stream(&video_path);
        assert_eq!(s["codec_name"], "h264");
        assert_eq!((s["width"].as_str(), s["height"].as_str()), ("320", "240"));
        assert_eq!(s["nb_read_frames"], samples.len().to_string());
        let expected: Vec<(i64, i64)> = samples
            .iter()
            .map(|s| (s.dts as i64 + i64::from(s.cts_offset), s.dts as i64))
            .collect();
        assert_eq!(probe_packets(&video_path), expected);

        // Audio: the sample rate as timescale, 1024 samples a frame, two segments.
        let rate = audio.timescale();
        assert_eq!(rate, 48_000);
        let first = u64::from(aframes[0].0) * u64::from(rate) / 1000;
        let asamples: Vec<Sample> = aframes
            .iter()
            .enumerate()
            .map(|(i, (_, data))| Sample::audio(first + i as u64 * 1024, 1024, data.clone()))
            .collect();
        let half = asamples.len() / 2;
        let segments = [
            media_segment(1, &asamples[..half]).unwrap(),
            media_segment(2, &asamples[half..]).unwrap(),
        ];
        let audio_path = write_and_decode(
            &dir.join("audio.mp4"),
            &init_segment(&audio).unwrap(),
            &segments,
        );
        let s = probe_stream(&audio_path);
        assert_eq!(s["codec_name"], "aac");
        assert_eq!(s["sample_rate"], "48000");
        assert_eq!(s["channels"], "2");
        assert_eq!(s["nb_read_frames"], asamples.len().to_string());
        let dts: Vec<i64> = probe_packets(&audio_path).iter().map(|p| p.1).collect();
        let expected: Vec<i64> = asamples.iter().map(|s| s.dts as i64).collect();
        assert_eq!(dts, expected);
    }
}
