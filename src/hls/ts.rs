//! MPEG-TS muxer (ISO/IEC 13818-1) for HLS segments: PAT/PMT at every segment start, H.264
//! (Annex B) and AAC (ADTS) or MP3 audio in PES packets, PCR on one PID.
//!
//! Hand-written because no maintained crate can force PAT/PMT at a segment cut. It writes
//! straight into the caller's buffer in 188-byte packets, with no allocation per packet.
//!
//! Choices that differ from the C module, on purpose:
//! - the PMT lists only the tracks that exist (audio-only and video-only streams play);
//! - continuity counters are never reset, so segments concatenate without CC errors;
//! - PCR is written on every PES of the PCR PID (so at every keyframe and, above 10 fps,
//!   at least every 100 ms), as `DTS - pcr_delay` (0 while DTS < pcr_delay, so a stream
//!   starting at 0 keeps PTS >= PCR; starting timestamps at `pcr_delay` or later avoids the
//!   flat start).

/// Size of a TS packet.
pub const TS_PACKET_SIZE: usize = 188;
/// Bytes after the 4-byte packet header.
const TS_BODY: usize = TS_PACKET_SIZE - 4;

pub const PID_PAT: u16 = 0x0000;
/// PIDs as the C module and ffmpeg use them.
pub const PID_PMT: u16 = 0x1000;
pub const PID_VIDEO: u16 = 0x0100;
pub const PID_AUDIO: u16 = 0x0101;
/// "No PCR" (a program without tracks).
const PID_NULL: u16 = 0x1fff;
pub const PROGRAM_NUMBER: u16 = 1;
const TRANSPORT_STREAM_ID: u16 = 1;

pub const STREAM_TYPE_H264: u8 = 0x1b;
pub const STREAM_TYPE_AAC_ADTS: u8 = 0x0f;
/// MPEG-1 audio, what ffmpeg declares for MP3 (decoders take MPEG-2 LSF frames too).
pub const STREAM_TYPE_MP3: u8 = 0x03;

const STREAM_ID_VIDEO: u8 = 0xe0;
const STREAM_ID_AUDIO: u8 = 0xc0;

/// 33-bit PTS/DTS/PCR base arithmetic.
const TIMESTAMP_MASK: u64 = (1 << 33) - 1;

/// Default PCR lead over DTS, in 90 kHz units: 700 ms, the C module's and ffmpeg's mux delay.
/// It must exceed how late audio can be written after the video of the same time (audio is
/// flushed up to `hls_max_audio_delay`, 300 ms by default, behind), so every PTS stays >= PCR.
pub const DEFAULT_PCR_DELAY: u64 = 63_000;
/// Largest accepted PCR delay (1 s: the T-STD buffer model allows no more).
pub const MAX_PCR_DELAY: u64 = 90_000;

/// Largest audio PES payload: PES_packet_length is 16 bits and counts the 8 header bytes after
/// it (flags and PTS). Longer audio data is split over several PES packets.
pub const MAX_AUDIO_PES_DATA: usize = 0xffff - 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TsAudio {
    Aac,
    Mp3,
}

impl TsAudio {
    pub fn stream_type(self) -> u8 {
        match self {
            TsAudio::Aac => STREAM_TYPE_AAC_ADTS,
            TsAudio::Mp3 => STREAM_TYPE_MP3,
        }
    }
}

/// The tracks a stream has; only these are declared in the PMT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TsTracks {
    /// H.264 video.
    pub video: bool,
    pub audio: Option<TsAudio>,
}

/// Adaptation field contents for the first packet of a PES.
#[derive(Clone, Copy, Default)]
struct FirstPacket {
    pcr: Option<u64>,
    random_access: bool,
    discontinuity: bool,
}

/// One muxer per published stream, kept across segments (the continuity counters live here).
pub struct TsMuxer {
    tracks: TsTracks,
    pmt_version: u8,
    cc_pat: u8,
    cc_pmt: u8,
    cc_video: u8,
    cc_audio: u8,
    pcr_delay: u64,
    /// Last PCR written, unwrapped (u64 domain), to spot a time base going backwards.
    last_pcr: Option<u64>,
    discontinuity: bool,
}

impl TsMuxer {
    pub fn new(tracks: TsTracks) -> Self {
        TsMuxer {
            tracks,
            pmt_version: 0,
            cc_pat: 0,
            cc_pmt: 0,
            cc_video: 0,
            cc_audio: 0,
            pcr_delay: DEFAULT_PCR_DELAY,
            last_pcr: None,
            discontinuity: false,
        }
    }

    pub fn tracks(&self) -> TsTracks {
        self.tracks
    }

    /// Changes the declared tracks (a codec appearing mid-stream); the next tables carry a new
    /// PMT version, continuity counters go on.
    pub fn set_tracks(&mut self, tracks: TsTracks) {
        if tracks != self.tracks {
            self.tracks = tracks;
            self.pmt_version = (self.pmt_version + 1) & 0x1f;
        }
    }

    /// Sets how far PCR runs behind DTS (90 kHz units, e.g. from `hls_muxdelay`); capped at
    /// [`MAX_PCR_DELAY`].
    pub fn set_pcr_delay(&mut self, delay_90khz: u64) {
        self.pcr_delay = delay_90khz.min(MAX_PCR_DELAY);
    }

    /// Flags the next PCR with `discontinuity_indicator` (a new time base after a timestamp
    /// jump). A PCR that goes backwards is flagged without being asked.
    pub fn mark_discontinuity(&mut self) {
        self.discontinuity = true;
    }

    /// The PID that carries PCR: video if there is video, else audio.
    pub fn pcr_pid(&self) -> u16 {
        if self.tracks.video {
            PID_VIDEO
        } else if self.tracks.audio.is_some() {
            PID_AUDIO
        } else {
            PID_NULL
        }
    }

    /// PAT + PMT; called at the start of every segment. The PMT lists only the tracks that
    /// exist.
    pub fn write_tables(&mut self, out: &mut Vec<u8>) {
        out.reserve(2 * TS_PACKET_SIZE);
        let [tsid_hi, tsid_lo] = TRANSPORT_STREAM_ID.to_be_bytes();
        let [prog_hi, prog_lo] = PROGRAM_NUMBER.to_be_bytes();
        let pat = [
            0x00, // table_id: program_association_section
            0xb0, // section_syntax_indicator, '0', reserved, section_length (high bits)
            13,   // section_length: 5 header bytes + one 4-byte program + CRC
            tsid_hi,
            tsid_lo,
            0xc1, // reserved, version 0, current_next_indicator
            0x00, // section_number
            0x00, // last_section_number
            prog_hi,
            prog_lo,
            0xe0 | (PID_PMT >> 8) as u8,
            PID_PMT as u8,
        ];
        write_section(out, PID_PAT, &mut self.cc_pat, &pat);

        // (stream_type, elementary PID) of each declared track, video first.
        let streams = [
            self.tracks.video.then_some((STREAM_TYPE_H264, PID_VIDEO)),
            self.tracks
                .audio
                .map(|audio| (audio.stream_type(), PID_AUDIO)),
        ];
        let len = 12 + 5 * streams.iter().flatten().count();
        // section_length counts from after itself to the end of the CRC.
        let section_length = (len - 3 + 4) as u16;
        let pcr_pid = self.pcr_pid();
        let mut pmt = Vec::with_capacity(len);
        pmt.extend_from_slice(&[
            0x02, // table_id: TS_program_map_section
            0xb0 | (section_length >> 8) as u8,
            section_length as u8,
            prog_hi,
            prog_lo,
            0xc1 | (self.pmt_version << 1),
            0x00,
            0x00,
            0xe0 | (pcr_pid >> 8) as u8,
            pcr_pid as u8,
            0xf0, // reserved, program_info_length 0
            0x00,
        ]);
        for (stream_type, pid) in streams.into_iter().flatten() {
            pmt.extend_from_slice(&[stream_type, 0xe0 | (pid >> 8) as u8, pid as u8, 0xf0, 0]);
        }
        write_section(out, PID_PMT, &mut self.cc_pmt, &pmt);
    }

    /// One H.264 access unit (Annex B) with 90 kHz PTS/DTS (wrapped to 33 bits here).
    /// `keyframe` sets random_access_indicator. The PES is unbounded (PES_packet_length 0),
    /// as ISO 13818-1 allows for video. Ignored when the stream declares no video.
    pub fn write_video(
        &mut self,
        pts: u64,
        dts: u64,
        keyframe: bool,
        annexb: &[u8],
        out: &mut Vec<u8>,
    ) {
        if !self.tracks.video {
            return;
        }
        let mut header = [0u8; 19];
        let len = pes_header(&mut header, STREAM_ID_VIDEO, 0, Some((pts, dts)));
        let first = FirstPacket {
            random_access: keyframe,
            ..self.pcr_for(PID_VIDEO, dts)
        };
        write_pes(
            out,
            PID_VIDEO,
            &mut self.cc_video,
            header.get(..len).unwrap_or_default(),
            annexb,
            first,
        );
    }

    /// One audio PES (one or several ADTS/MP3 frames) with a 90 kHz PTS, exact
    /// PES_packet_length. Data longer than [`MAX_AUDIO_PES_DATA`] continues in further PES
    /// packets without PTS. Ignored when the stream declares no audio or `data` is empty.
    pub fn write_audio(&mut self, pts: u64, data: &[u8], out: &mut Vec<u8>) {
        if self.tracks.audio.is_none() || data.is_empty() {
            return;
        }
        let mut timestamp = Some((pts, pts));
        let mut first = FirstPacket {
            // Every audio frame is a random access point (ffmpeg flags them too).
            random_access: true,
            ..self.pcr_for(PID_AUDIO, pts)
        };
        for chunk in data.chunks(MAX_AUDIO_PES_DATA) {
            let mut header = [0u8; 19];
            let len = pes_header(&mut header, STREAM_ID_AUDIO, chunk.len(), timestamp.take());
            let head = header.get(..len).unwrap_or_default();
            write_pes(out, PID_AUDIO, &mut self.cc_audio, head, chunk, first);
            first = FirstPacket::default();
        }
    }

    /// PCR fields for a PES on `pid` at decode time `dts` (u64 domain, before wrapping).
    fn pcr_for(&mut self, pid: u16, dts: u64) -> FirstPacket {
        if pid != self.pcr_pid() {
            return FirstPacket::default();
        }
        let pcr = dts.saturating_sub(self.pcr_delay);
        let backwards = self.last_pcr.is_some_and(|last| pcr < last);
        let discontinuity = std::mem::take(&mut self.discontinuity) || backwards;
        self.last_pcr = Some(pcr);
        FirstPacket {
            pcr: Some(pcr & TIMESTAMP_MASK),
            random_access: false,
            discontinuity,
        }
    }
}

/// Writes a PES header into `buf` and returns its length. `data_len` is the payload length
/// for a bounded PES (audio), 0 for unbounded (video). PTS only when PTS == DTS.
fn pes_header(
    buf: &mut [u8; 19],
    stream_id: u8,
    data_len: usize,
    timestamps: Option<(u64, u64)>,
) -> usize {
    let (flags, header_data_len) = match timestamps {
        Some((pts, dts)) if pts != dts => (0xc0, 10u8),
        Some(_) => (0x80, 5),
        None => (0x00, 0),
    };
    let packet_length = if data_len == 0 {
        0
    } else {
        // Callers keep data_len <= MAX_AUDIO_PES_DATA, so this fits.
        u16::try_from(3 + usize::from(header_data_len) + data_len).unwrap_or(0)
    };
    let [len_hi, len_lo] = packet_length.to_be_bytes();
    let alignment = if timestamps.is_some() { 0x84 } else { 0x80 };
    buf[..9].copy_from_slice(&[
        0x00,
        0x00,
        0x01,
        stream_id,
        len_hi,
        len_lo,
        alignment, // '10', data_alignment_indicator on PES that start an access unit
        flags,
        header_data_len,
    ]);
    match timestamps {
        Some((pts, dts)) if pts != dts => {
            write_timestamp(&mut buf[9..14], 0x3, pts);
            write_timestamp(&mut buf[14..19], 0x1, dts);
        }
        Some((pts, _)) => write_timestamp(&mut buf[9..14], 0x2, pts),
        None => {}
    }
    9 + usize::from(header_data_len)
}

/// PTS/DTS field: 4-bit prefix, 33 bits split 3/15/15 with marker bits.
fn write_timestamp(buf: &mut [u8], prefix: u8, ts: u64) {
    let ts = ts & TIMESTAMP_MASK;
    let bytes = [
        (prefix << 4) | (((ts >> 30) as u8 & 0x07) << 1) | 1,
        (ts >> 22) as u8,
        (((ts >> 15) as u8 & 0x7f) << 1) | 1,
        (ts >> 7) as u8,
        ((ts as u8 & 0x7f) << 1) | 1,
    ];
    if let Some(dst) = buf.get_mut(..5) {
        dst.copy_from_slice(&bytes);
    }
}

/// Splits one PES (header + data) into TS packets. The first packet carries the adaptation
/// field flags; the last is padded with adaptation-field stuffing.
fn write_pes(
    out: &mut Vec<u8>,
    pid: u16,
    cc: &mut u8,
    header: &[u8],
    data: &[u8],
    first: FirstPacket,
) {
    let total = header.len() + data.len();
    out.reserve((total / (TS_BODY - 8) + 2) * TS_PACKET_SIZE);
    let (mut head_rest, mut data_rest) = (header, data);
    let mut is_first = true;
    while is_first || !head_rest.is_empty() || !data_rest.is_empty() {
        let flags = if is_first {
            first
        } else {
            FirstPacket::default()
        };
        // Adaptation field bytes after its length byte: flags + PCR.
        let af_body = if flags.pcr.is_some() {
            7
        } else if flags.random_access || flags.discontinuity {
            1
        } else {
            0
        };
        let room = TS_BODY - if af_body > 0 { 1 + af_body } else { 0 };
        let payload = (head_rest.len() + data_rest.len()).min(room);
        let af_total = TS_BODY - payload;

        out.push(0x47);
        out.push(if is_first { 0x40 } else { 0 } | (pid >> 8) as u8 & 0x1f);
        out.push(pid as u8);
        out.push(if af_total > 0 { 0x30 } else { 0x10 } | (*cc & 0x0f));
        *cc = (*cc + 1) & 0x0f;
        if af_total > 0 {
            out.push((af_total - 1) as u8);
            if af_total > 1 {
                let mut af_flags = 0u8;
                if flags.discontinuity {
                    af_flags |= 0x80;
                }
                if flags.random_access {
                    af_flags |= 0x40;
                }
                if let Some(pcr) = flags.pcr {
                    af_flags |= 0x10;
                    out.push(af_flags);
                    out.extend_from_slice(&[
                        (pcr >> 25) as u8,
                        (pcr >> 17) as u8,
                        (pcr >> 9) as u8,
                        (pcr >> 1) as u8,
                        ((pcr as u8 & 1) << 7) | 0x7e, // 6 reserved bits, extension high bit 0
                        0x00,
                    ]);
                } else {
                    out.push(af_flags);
                }
                let stuffing = af_total - 1 - af_body.max(1);
                out.resize(out.len() + stuffing, 0xff);
            }
        }
        let (h, rest) = head_rest.split_at(payload.min(head_rest.len()));
        out.extend_from_slice(h);
        head_rest = rest;
        let (d, rest) = data_rest.split_at((payload - h.len()).min(data_rest.len()));
        out.extend_from_slice(d);
        data_rest = rest;
        is_first = false;
    }
}

/// One PSI section (CRC appended) in one packet, padded with 0xff.
fn write_section(out: &mut Vec<u8>, pid: u16, cc: &mut u8, section: &[u8]) {
    let start = out.len();
    out.extend_from_slice(&[
        0x47,
        0x40 | (pid >> 8) as u8 & 0x1f,
        pid as u8,
        0x10 | (*cc & 0x0f),
        0x00, // pointer_field
    ]);
    *cc = (*cc + 1) & 0x0f;
    out.extend_from_slice(section);
    out.extend_from_slice(&crc32_mpeg2(section).to_be_bytes());
    out.resize(start + TS_PACKET_SIZE, 0xff);
}

const CRC_TABLE: [u32; 256] = crc_table();

const fn crc_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut rest: &mut [u32] = &mut table;
    let mut i: u32 = 0;
    while let [slot, tail @ ..] = rest {
        let mut c = i << 24;
        let mut bit = 0;
        while bit < 8 {
            c = if c & 0x8000_0000 != 0 {
                (c << 1) ^ 0x04c1_1db7
            } else {
                c << 1
            };
            bit += 1;
        }
        *slot = c;
        rest = tail;
        i += 1;
    }
    table
}

/// CRC-32/MPEG-2 (polynomial 0x04c11db7, initial 0xffffffff, not reflected) for PSI.
pub fn crc32_mpeg2(data: &[u8]) -> u32 {
    data.iter().fold(0xffff_ffff, |crc, b| {
        let index = usize::from((crc >> 24) as u8 ^ b);
        // Cannot panic: a u8 index into a 256-entry table.
        #[allow(clippy::indexing_slicing)]
        let entry = CRC_TABLE[index];
        (crc << 8) ^ entry
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mpeg2ts_reader::demultiplex::{
        self, DemuxContext, FilterChangeset, FilterRequest, NullPacketFilter, PatPacketFilter,
        PmtPacketFilter,
    };
    use mpeg2ts_reader::packet::Packet;
    use mpeg2ts_reader::pes::{self, PesContents, PesHeader, PtsDts, Timestamp};
    use mpeg2ts_reader::psi;
    use std::collections::HashMap;

    // ---- an independent demuxer (mpeg2ts-reader) collecting what it finds ----

    mpeg2ts_reader::packet_filter_switch! {
        Filter<Ctx> {
            Pat: PatPacketFilter<Ctx>,
            Pmt: PmtPacketFilter<Ctx>,
            Pes: pes::PesPacketFilter<Ctx, Collector>,
            Null: NullPacketFilter<Ctx>,
        }
    }

    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Pes {
        pid: u16,
        stream_id: u8,
        pts: Option<u64>,
        dts: Option<u64>,
        data: Vec<u8>,
    }

    #[derive(Default)]
    pub struct Report {
        programs: Vec<(u16, u16)>,
        /// (pid, stream_type) per PMT stream, in PMT order, each time a PMT is (re)parsed.
        streams: Vec<(u16, u8)>,
        pcr_pid: Option<u16>,
        pes: Vec<Pes>,
        open: HashMap<u16, Pes>,
        cc_errors: usize,
    }

    pub struct Ctx {
        changeset: FilterChangeset<Filter>,
        report: Report,
    }

    impl DemuxContext for Ctx {
        type F = Filter;

        fn filter_changeset(&mut self) -> &mut FilterChangeset<Filter> {
            &mut self.changeset
        }

        fn construct(&mut self, req: FilterRequest<'_, '_>) -> Filter {
            match req {
                FilterRequest::ByPid(psi::pat::PAT_PID) => Filter::Pat(PatPacketFilter::default()),
                FilterRequest::ByPid(_) | FilterRequest::Nit { .. } => {
                    Filter::Null(NullPacketFilter::default())
                }
                FilterRequest::Pmt {
                    pid,
                    program_number,
                } => {
                    self.report.programs.push((program_number, u16::from(pid)));
                    Filter::Pmt(PmtPacketFilter::new(pid, program_number))
                }
                FilterRequest::ByStream {
                    stream_type,
                    pmt,
                    stream_info,
                    ..
                } => {
                    let pid = u16::from(stream_info.elementary_pid());
                    self.report.streams.push((pid, stream_type.0));
                    self.report.pcr_pid = Some(u16::from(pmt.pcr_pid()));
                    Filter::Pes(pes::PesPacketFilter::new(Collector { pid }))
                }
            }
        }
    }

    pub struct Collector {
        pid: u16,
    }

    impl pes::ElementaryStreamConsumer<Ctx> for Collector {
        fn start_stream(&mut self, _ctx: &mut Ctx) {}

        fn begin_packet(&mut self, ctx: &mut Ctx, header: PesHeader<'_>) {
            self.end_packet(ctx);
            let PesContents::Parsed(Some(parsed)) = header.contents() else {
                panic!("PES header not parsed on pid {:#x}", self.pid);
            };
            let (pts, dts) = match parsed.pts_dts().unwrap_or(PtsDts::None) {
                PtsDts::None => (None, None),
                PtsDts::PtsOnly(pts) => (Some(pts.unwrap().value()), None),
                PtsDts::Both { pts, dts } => {
                    (Some(pts.unwrap().value()), Some(dts.unwrap().value()))
                }
                PtsDts::Invalid => panic!("invalid PTS_DTS_flags"),
            };
            // StreamId has no accessor; its Debug form names the stream.
            let stream_id = match format!("{:?}", header.stream_id()).as_str() {
                "Video(0)" => STREAM_ID_VIDEO,
                "Audio(0)" => STREAM_ID_AUDIO,
                other => panic!("unexpected stream id {other}"),
            };
            let pes = Pes {
                pid: self.pid,
                stream_id,
                pts,
                dts,
                data: parsed.payload().to_vec(),
            };
            ctx.report.open.insert(self.pid, pes);
        }

        fn continue_packet(&mut self, ctx: &mut Ctx, data: &[u8]) {
            if let Some(p) = ctx.report.open.get_mut(&self.pid) {
                p.data.extend_from_slice(data);
            }
        }

        fn end_packet(&mut self, ctx: &mut Ctx) {
            if let Some(p) = ctx.report.open.remove(&self.pid) {
                ctx.report.pes.push(p);
            }
        }

        fn continuity_error(&mut self, ctx: &mut Ctx) {
            ctx.report.cc_errors += 1;
        }
    }

    /// Demuxes `ts` from scratch, as a player joining at this segment would.
    fn demux(ts: &[u8]) -> Report {
        let mut ctx = Ctx {
            changeset: FilterChangeset::default(),
            report: Report::default(),
        };
        let mut demux = demultiplex::Demultiplex::new(&mut ctx);
        demux.push(&mut ctx, ts);
        let mut open: Vec<Pes> = ctx.report.open.drain().map(|(_, p)| p).collect();
        ctx.report.pes.append(&mut open);
        ctx.report
    }

    // ---- packet-level facts, read with mpeg2ts-reader's packet parser ----

    #[derive(Default, Debug)]
    struct Scan {
        pids: Vec<u16>,
        cc_errors: usize,
        /// (packet index, pid, pcr base, discontinuity_indicator)
        pcrs: Vec<(usize, u16, u64, bool)>,
        /// Per PES start: (pid, random_access_indicator, whole PES bytes).
        pes: Vec<(u16, bool, Vec<u8>)>,
        /// CC of each PAT packet.
        pat_cc: Vec<u8>,
    }

    fn scan(ts: &[u8]) -> Scan {
        assert_eq!(ts.len() % TS_PACKET_SIZE, 0, "whole packets only");
        let mut s = Scan::default();
        let mut last_cc: HashMap<u16, u8> = HashMap::new();
        for (i, buf) in ts.chunks_exact(TS_PACKET_SIZE).enumerate() {
            let pk = Packet::try_new(buf).expect("sync byte");
            let pid = u16::from(pk.pid());
            if !s.pids.contains(&pid) {
                s.pids.push(pid);
            }
            let cc = pk.continuity_counter().count();
            assert!(
                pk.adaptation_control().has_payload(),
                "every packet has payload"
            );
            if let Some(prev) = last_cc.insert(pid, cc) {
                if (prev + 1) & 0x0f != cc {
                    s.cc_errors += 1;
                }
            }
            if pid == PID_PAT {
                s.pat_cc.push(cc);
            }
            let af = pk.adaptation_field();
            if let Some(af) = &af {
                if let Ok(pcr) = af.pcr() {
                    assert_eq!(pcr.extension(), 0);
                    s.pcrs
                        .push((i, pid, pcr.base(), af.discontinuity_indicator()));
                }
            }
            if pid == PID_PAT || pid == PID_PMT {
                continue;
            }
            let payload = pk.payload().expect("payload").to_vec();
            if pk.payload_unit_start_indicator() {
                let rai = af.is_some_and(|af| af.random_access_indicator());
                s.pes.push((pid, rai, payload));
            } else {
                let open = s
                    .pes
                    .iter_mut()
                    .rev()
                    .find(|p| p.0 == pid)
                    .expect("PES start");
                open.2.extend_from_slice(&payload);
            }
        }
        for (_, _, pes) in &s.pes {
            check_timestamp_prefixes(pes);
        }
        s
    }

    /// The 4-bit prefixes before PTS and DTS ('0010' alone; '0011' + '0001' together), which
    /// the demuxer's combined parse does not check.
    fn check_timestamp_prefixes(pes: &[u8]) {
        match pes[7] >> 6 {
            0b00 => assert_eq!(pes[8], 0),
            0b10 => {
                assert_eq!(pes[8], 5);
                Timestamp::from_pts_bytes(&pes[9..14]).unwrap();
            }
            0b11 => {
                assert_eq!(pes[8], 10);
                assert_eq!(pes[9] >> 4, 0b0011);
                Timestamp::from_dts_bytes(&pes[14..19]).unwrap();
            }
            other => panic!("PTS_DTS_flags {other:#b}"),
        }
    }

    // ---- helpers ----

    const AV: TsTracks = TsTracks {
        video: true,
        audio: Some(TsAudio::Aac),
    };

    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    /// A GOP-like sequence: `frames` video frames at 25 fps with B-frame style PTS, one audio
    /// PES every two video frames; segment starts at `cuts` (frame indexes).
    struct Written {
        ts: Vec<u8>,
        segment_starts: Vec<usize>,
        video: Vec<(u64, u64, bool, Vec<u8>)>,
        audio: Vec<(u64, Vec<u8>)>,
    }

    fn write_stream(mux: &mut TsMuxer, base: u64, frames: usize, cuts: &[usize]) -> Written {
        let tracks = mux.tracks();
        let mut w = Written {
            ts: Vec::new(),
            segment_starts: Vec::new(),
            video: Vec::new(),
            audio: Vec::new(),
        };
        for i in 0..frames {
            if i == 0 || cuts.contains(&i) {
                w.segment_starts.push(w.ts.len());
                mux.write_tables(&mut w.ts);
            }
            let dts = base + i as u64 * 3600;
            let keyframe = i == 0 || cuts.contains(&i);
            let pts = if i % 3 == 1 { dts + 7200 } else { dts + 3600 };
            if tracks.video {
                let data = pattern(300 + i * 97 % 5000, i as u8);
                mux.write_video(pts, dts, keyframe, &data, &mut w.ts);
                w.video.push((pts, dts, keyframe, data));
            }
            if tracks.audio.is_some() && i % 2 == 0 {
                let data = pattern(200 + i * 13 % 700, 0x80 ^ i as u8);
                mux.write_audio(dts, &data, &mut w.ts);
                w.audio.push((dts, data));
            }
        }
        w
    }

    fn segments(w: &Written) -> Vec<&[u8]> {
        let mut ends: Vec<usize> = w.segment_starts.iter().skip(1).copied().collect();
        ends.push(w.ts.len());
        w.segment_starts
            .iter()
            .zip(ends)
            .map(|(s, e)| &w.ts[*s..e])
            .collect()
    }

    // ---- tables ----

    #[test]
    fn crc_matches_the_c_module_pat() {
        // ngx_rtmp_mpegts_header's PAT section and its CRC.
        let pat = [
            0x00, 0xb0, 0x0d, 0x00, 0x01, 0xc1, 0x00, 0x00, 0x00, 0x01, 0xf0, 0x01,
        ];
        assert_eq!(crc32_mpeg2(&pat), 0x2e70_1905);
    }

    #[test]
    fn every_segment_starts_with_pat_and_pmt_that_declare_only_existing_tracks() {
        let cases = [
            (AV, vec![(PID_VIDEO, 0x1b), (PID_AUDIO, 0x0f)], PID_VIDEO),
            (
                TsTracks {
                    video: true,
                    audio: Some(TsAudio::Mp3),
                },
                vec![(PID_VIDEO, 0x1b), (PID_AUDIO, 0x03)],
                PID_VIDEO,
            ),
            (
                TsTracks {
                    video: true,
                    audio: None,
                },
                vec![(PID_VIDEO, 0x1b)],
                PID_VIDEO,
            ),
            (
                TsTracks {
                    video: false,
                    audio: Some(TsAudio::Aac),
                },
                vec![(PID_AUDIO, 0x0f)],
                PID_AUDIO,
            ),
            (
                TsTracks {
                    video: false,
                    audio: Some(TsAudio::Mp3),
                },
                vec![(PID_AUDIO, 0x03)],
                PID_AUDIO,
            ),
        ];
        for (tracks, streams, pcr_pid) in cases {
            let mut mux = TsMuxer::new(tracks);
            let w = write_stream(&mut mux, 900_000, 30, &[10, 20]);
            let segs = segments(&w);
            assert_eq!(segs.len(), 3);
            for (n, seg) in segs.iter().enumerate() {
                // The first two packets are PAT then PMT.
                assert_eq!(u16::from(Packet::new(&seg[..188]).pid()), PID_PAT);
                assert_eq!(u16::from(Packet::new(&seg[188..376]).pid()), PID_PMT);
                let r = demux(seg);
                assert_eq!(
                    r.programs,
                    vec![(PROGRAM_NUMBER, PID_PMT)],
                    "{tracks:?} seg {n}"
                );
                assert_eq!(r.streams, streams, "{tracks:?} seg {n}");
                assert_eq!(r.pcr_pid, Some(pcr_pid), "{tracks:?}");
                for (pid, _) in &streams {
                    assert!(
                        r.pes.iter().any(|p| p.pid == *pid),
                        "{tracks:?}: no PES on {pid}"
                    );
                }
                let mut allowed = vec![PID_PAT, PID_PMT];
                allowed.extend(streams.iter().map(|s| s.0));
                let pids = scan(seg).pids;
                assert!(
                    pids.iter().all(|p| allowed.contains(p)),
                    "{tracks:?}: {pids:?}"
                );
            }
        }
    }

    #[test]
    fn writes_for_undeclared_tracks_are_ignored() {
        let mut mux = TsMuxer::new(TsTracks {
            video: false,
            audio: None,
        });
        let mut out = Vec::new();
        mux.write_tables(&mut out);
        mux.write_video(0, 0, true, &[1, 2, 3], &mut out);
        mux.write_audio(0, &[1, 2, 3], &mut out);
        assert_eq!(out.len(), 2 * TS_PACKET_SIZE);
        let r = demux(&out);
        assert!(r.streams.is_empty());
        assert_eq!(r.programs.len(), 1);
    }

    #[test]
    fn set_tracks_publishes_a_new_pmt_version_that_a_running_demuxer_picks_up() {
        let mut mux = TsMuxer::new(TsTracks {
            video: true,
            audio: None,
        });
        let mut out = Vec::new();
        mux.write_tables(&mut out);
        mux.write_video(9000, 9000, true, &[0xaa; 10], &mut out);
        mux.set_tracks(AV);
        mux.write_tables(&mut out);
        mux.write_audio(9000, &[0xbb; 10], &mut out);
        let r = demux(&out);
        assert_eq!(
            r.streams,
            vec![(PID_VIDEO, 0x1b), (PID_VIDEO, 0x1b), (PID_AUDIO, 0x0f)]
        );
        assert!(r
            .pes
            .iter()
            .any(|p| p.pid == PID_AUDIO && p.data == [0xbb; 10]));
        assert_eq!(scan(&out).cc_errors, 0);
    }

    // ---- continuity ----

    #[test]
    fn continuity_counters_continue_across_segments() {
        let mut mux = TsMuxer::new(AV);
        let w = write_stream(&mut mux, 0, 60, &[10, 20, 30, 40, 50]);
        let s = scan(&w.ts);
        assert_eq!(s.cc_errors, 0);
        // Never reset: the PAT of segment n has CC n.
        assert_eq!(s.pat_cc, vec![0, 1, 2, 3, 4, 5]);
        let r = demux(&w.ts);
        assert_eq!(r.cc_errors, 0);
        // A muxer kept across segments lets the next segment continue (a second batch).
        let more = write_stream(&mut mux, 60 * 3600, 5, &[]);
        let mut all = w.ts.clone();
        all.extend_from_slice(&more.ts);
        assert_eq!(scan(&all).cc_errors, 0);
    }

    // ---- timestamps and payload ----

    #[test]
    fn pts_dts_and_payload_are_recovered_exactly_across_the_33_bit_wrap() {
        let mut mux = TsMuxer::new(AV);
        let base = (1u64 << 33) - 10 * 3600;
        let w = write_stream(&mut mux, base, 40, &[12, 25]);
        let r = demux(&w.ts);
        assert_eq!(r.cc_errors, 0);
        let video: Vec<&Pes> = r.pes.iter().filter(|p| p.pid == PID_VIDEO).collect();
        let audio: Vec<&Pes> = r.pes.iter().filter(|p| p.pid == PID_AUDIO).collect();
        assert_eq!(video.len(), w.video.len());
        assert_eq!(audio.len(), w.audio.len());
        for (got, (pts, dts, _, data)) in video.iter().zip(&w.video) {
            assert_eq!(got.stream_id, STREAM_ID_VIDEO);
            assert_eq!(got.pts, Some(pts & TIMESTAMP_MASK));
            // PTS+DTS only when they differ.
            let want_dts = (pts != dts).then_some(dts & TIMESTAMP_MASK);
            assert_eq!(got.dts, want_dts);
            assert_eq!(&got.data, data);
        }
        assert!(video.iter().any(|p| p.pts < Some(1000)), "wrapped");
        for (got, (pts, data)) in audio.iter().zip(&w.audio) {
            assert_eq!(got.stream_id, STREAM_ID_AUDIO);
            assert_eq!(got.pts, Some(pts & TIMESTAMP_MASK));
            assert_eq!(got.dts, None);
            assert_eq!(&got.data, data);
        }
    }

    #[test]
    fn payloads_of_every_size_around_packet_boundaries_survive() {
        for tracks in [
            AV,
            TsTracks {
                video: false,
                audio: Some(TsAudio::Aac),
            },
        ] {
            let mut mux = TsMuxer::new(tracks);
            let mut out = Vec::new();
            mux.write_tables(&mut out);
            let sizes: Vec<usize> = (1..=600)
                .chain([183 * 7, 184 * 9, MAX_AUDIO_PES_DATA])
                .collect();
            for (i, len) in sizes.iter().enumerate() {
                let t = 90_000 + i as u64 * 1800;
                if tracks.video {
                    mux.write_video(t + 3600, t, i % 50 == 0, &pattern(*len, 1), &mut out);
                }
                mux.write_audio(t, &pattern(*len, 2), &mut out);
            }
            let s = scan(&out);
            assert_eq!(s.cc_errors, 0);
            let r = demux(&out);
            assert_eq!(r.cc_errors, 0);
            for pid in [PID_VIDEO, PID_AUDIO] {
                if pid == PID_VIDEO && !tracks.video {
                    continue;
                }
                let got: Vec<usize> = r
                    .pes
                    .iter()
                    .filter(|p| p.pid == pid)
                    .map(|p| p.data.len())
                    .collect();
                assert_eq!(got, sizes, "{tracks:?} pid {pid:#x}");
                let seed = if pid == PID_VIDEO { 1 } else { 2 };
                for p in r.pes.iter().filter(|p| p.pid == pid) {
                    assert_eq!(p.data, pattern(p.data.len(), seed));
                }
            }
        }
    }

    #[test]
    fn audio_pes_has_its_exact_length_and_video_pes_is_unbounded() {
        let mut mux = TsMuxer::new(AV);
        let w = write_stream(&mut mux, 0, 20, &[]);
        let s = scan(&w.ts);
        for (pid, _, bytes) in &s.pes {
            let declared = usize::from(u16::from_be_bytes([bytes[4], bytes[5]]));
            if *pid == PID_VIDEO {
                assert_eq!(declared, 0);
            } else {
                // Everything after the length field, up to the stuffing-free end of the PES.
                assert_eq!(declared, bytes.len() - 6);
            }
        }
    }

    #[test]
    fn long_audio_is_split_into_bounded_pes_packets_with_one_pts() {
        let mut mux = TsMuxer::new(AV);
        let mut out = Vec::new();
        mux.write_tables(&mut out);
        let data = pattern(MAX_AUDIO_PES_DATA * 2 + 10, 7);
        mux.write_audio(12345, &data, &mut out);
        let r = demux(&out);
        let audio: Vec<&Pes> = r.pes.iter().filter(|p| p.pid == PID_AUDIO).collect();
        assert_eq!(audio.len(), 3);
        assert_eq!(audio[0].pts, Some(12345));
        assert_eq!(audio[1].pts, None);
        assert_eq!(audio[2].pts, None);
        let joined: Vec<u8> = audio.iter().flat_map(|p| p.data.clone()).collect();
        assert_eq!(joined, data);
        for (_, _, bytes) in scan(&out).pes {
            assert_eq!(
                usize::from(u16::from_be_bytes([bytes[4], bytes[5]])),
                bytes.len() - 6
            );
        }
    }

    #[test]
    fn empty_audio_writes_nothing() {
        let mut mux = TsMuxer::new(AV);
        let mut out = Vec::new();
        mux.write_audio(0, &[], &mut out);
        assert!(out.is_empty());
    }

    // ---- PCR and random access ----

    #[test]
    fn pcr_is_on_every_video_pes_and_trails_dts_by_the_delay() {
        let mut mux = TsMuxer::new(AV);
        let base = 5 * 90_000;
        let w = write_stream(&mut mux, base, 50, &[25]);
        let s = scan(&w.ts);
        assert!(
            s.pcrs.iter().all(|p| p.1 == PID_VIDEO),
            "PCR only on the PCR PID"
        );
        assert_eq!(s.pcrs.len(), w.video.len());
        for ((_, _, pcr, disc), (pts, dts, _, _)) in s.pcrs.iter().zip(&w.video) {
            assert_eq!(*pcr, dts - DEFAULT_PCR_DELAY);
            assert!(pcr <= dts && pcr <= pts && !disc);
        }
        // Audio is written at the video's DTS: its PTS is ahead of the PCR too.
        assert!(s.pcrs.windows(2).all(|p| p[0].2 < p[1].2), "monotonic");
        assert!(
            s.pcrs.windows(2).all(|p| p[1].2 - p[0].2 <= 9000),
            "<= 100 ms apart"
        );
    }

    #[test]
    fn pcr_goes_on_the_audio_pid_when_there_is_no_video() {
        let mut mux = TsMuxer::new(TsTracks {
            video: false,
            audio: Some(TsAudio::Aac),
        });
        let w = write_stream(&mut mux, 90_000, 20, &[10]);
        let s = scan(&w.ts);
        assert_eq!(s.pcrs.len(), w.audio.len());
        for ((_, pid, pcr, _), (pts, _)) in s.pcrs.iter().zip(&w.audio) {
            assert_eq!(*pid, PID_AUDIO);
            assert_eq!(*pcr, pts - DEFAULT_PCR_DELAY);
        }
    }

    #[test]
    fn pcr_starts_at_zero_and_never_exceeds_early_timestamps() {
        let mut mux = TsMuxer::new(AV);
        let w = write_stream(&mut mux, 0, 30, &[]);
        let s = scan(&w.ts);
        for ((_, _, pcr, _), (_, dts, _, _)) in s.pcrs.iter().zip(&w.video) {
            assert_eq!(*pcr, dts.saturating_sub(DEFAULT_PCR_DELAY));
        }
        assert!(s.pcrs.windows(2).all(|p| p[0].2 <= p[1].2));
    }

    #[test]
    fn pcr_delay_is_configurable_and_capped() {
        let mut mux = TsMuxer::new(AV);
        mux.set_pcr_delay(9000);
        let mut out = Vec::new();
        mux.write_video(100_000, 100_000, true, &[1], &mut out);
        mux.set_pcr_delay(u64::MAX);
        mux.write_video(200_000, 200_000, false, &[1], &mut out);
        let pcrs: Vec<u64> = scan(&out).pcrs.iter().map(|p| p.2).collect();
        assert_eq!(pcrs, vec![91_000, 200_000 - MAX_PCR_DELAY]);
    }

    #[test]
    fn pcr_wraps_with_the_timestamps() {
        let mut mux = TsMuxer::new(AV);
        let mut out = Vec::new();
        let dts = (1u64 << 33) + DEFAULT_PCR_DELAY + 5;
        mux.write_video(dts, dts, true, &[1], &mut out);
        assert_eq!(scan(&out).pcrs[0].2, 5);
        assert!(!scan(&out).pcrs[0].3, "a wrap is not a discontinuity");
    }

    #[test]
    fn pcr_going_backwards_or_a_marked_jump_sets_discontinuity_indicator() {
        let mut mux = TsMuxer::new(AV);
        let mut out = Vec::new();
        let t = 10 * 90_000;
        mux.write_video(t, t, true, &[1], &mut out);
        mux.write_video(t + 3600, t + 3600, false, &[1], &mut out);
        mux.write_video(t - 90_000, t - 90_000, true, &[1], &mut out); // publisher restarted
        mux.write_video(t, t, false, &[1], &mut out);
        mux.mark_discontinuity();
        mux.write_video(t + 3600, t + 3600, true, &[1], &mut out);
        let flags: Vec<bool> = scan(&out).pcrs.iter().map(|p| p.3).collect();
        assert_eq!(flags, vec![false, false, true, false, true]);
        assert_eq!(scan(&out).cc_errors, 0);
    }

    #[test]
    fn random_access_indicator_marks_keyframes_only() {
        let mut mux = TsMuxer::new(AV);
        let w = write_stream(&mut mux, 90_000, 30, &[7, 19]);
        let s = scan(&w.ts);
        let video_rai: Vec<bool> = s
            .pes
            .iter()
            .filter(|p| p.0 == PID_VIDEO)
            .map(|p| p.1)
            .collect();
        let keyframes: Vec<bool> = w.video.iter().map(|v| v.2).collect();
        assert_eq!(video_rai, keyframes);
        assert!(s.pes.iter().filter(|p| p.0 == PID_AUDIO).all(|p| p.1));
    }

    #[test]
    fn output_is_whole_packets_written_after_existing_bytes() {
        let mut mux = TsMuxer::new(AV);
        let mut out = Vec::new();
        mux.write_tables(&mut out);
        mux.write_video(0, 0, true, &pattern(1000, 0), &mut out);
        mux.write_audio(0, &pattern(10, 0), &mut out);
        assert_eq!(out.len() % TS_PACKET_SIZE, 0);
        assert!(out.chunks(TS_PACKET_SIZE).all(|p| p[0] == 0x47));
    }

    // ---- a real stream through the real tools ----

    use crate::testutil::{artifact_dir, encode_test_flv, flv_tags, require_tools, run};

    struct Muxed {
        ts: Vec<u8>,
        /// (start offset, video frames, audio frames) per segment.
        segments: Vec<(usize, usize, usize)>,
    }

    /// Muxes an ffmpeg-made FLV (H.264 + AAC) the way the segmenter will: a new segment with
    /// PAT/PMT at every keyframe, AAC gathered three ADTS frames per PES.
    fn mux_flv(flv: &[u8], base: u64) -> Muxed {
        use crate::media::avc::{adts_header, avcc_to_annexb};
        use crate::media::flv::{
            parse_audio, parse_audio_specific_config, parse_avc_decoder_config, parse_video,
            VideoPacket,
        };
        let mut mux = TsMuxer::new(AV);
        let mut m = Muxed {
            ts: Vec::new(),
            segments: Vec::new(),
        };
        let (mut avc, mut aac) = (None, None);
        let mut audio: (Option<u64>, Vec<u8>, usize) = (None, Vec::new(), 0);
        let flush =
            |mux: &mut TsMuxer, m: &mut Muxed, audio: &mut (Option<u64>, Vec<u8>, usize)| {
                if let Some(pts) = audio.0.take() {
                    mux.write_audio(pts, &audio.1, &mut m.ts);
                    m.segments.last_mut().unwrap().2 += audio.2;
                    audio.1.clear();
                    audio.2 = 0;
                }
            };
        for (kind, t, body) in flv_tags(flv) {
            let dts = base + u64::from(t) * 90;
            match kind {
                9 => {
                    let tag = parse_video(body).unwrap();
                    let payload = &body[tag.body_offset..];
                    if tag.is_sequence_header() {
                        avc = Some(parse_avc_decoder_config(payload).unwrap());
                        continue;
                    }
                    if tag.packet != VideoPacket::Frame {
                        continue;
                    }
                    let pts = dts.checked_add_signed(i64::from(tag.composition_time_ms) * 90);
                    if tag.is_keyframe() {
                        if !m.segments.is_empty() {
                            flush(&mut mux, &mut m, &mut audio);
                        }
                        m.segments.push((m.ts.len(), 0, 0));
                        mux.write_tables(&mut m.ts);
                    }
                    let mut au = Vec::new();
                    avcc_to_annexb(payload, avc.as_ref().unwrap(), &mut au).unwrap();
                    mux.write_video(pts.unwrap(), dts, tag.is_keyframe(), &au, &mut m.ts);
                    m.segments.last_mut().unwrap().1 += 1;
                }
                8 => {
                    let tag = parse_audio(body).unwrap();
                    let payload = &body[tag.body_offset..];
                    if tag.is_sequence_header() {
                        aac = Some(parse_audio_specific_config(payload).unwrap());
                        continue;
                    }
                    if m.segments.is_empty() {
                        continue; // before the first keyframe
                    }
                    let header = adts_header(aac.as_ref().unwrap(), payload.len()).unwrap();
                    audio.0.get_or_insert(dts);
                    audio.1.extend_from_slice(&header);
                    audio.1.extend_from_slice(payload);
                    audio.2 += 1;
                    if audio.2 == 3 {
                        flush(&mut mux, &mut m, &mut audio);
                    }
                }
                _ => {}
            }
        }
        flush(&mut mux, &mut m, &mut audio);
        m
    }

    /// ffprobe's view of each top-level stream: key=value maps, in stream order.
    fn probe(path: &str) -> Vec<HashMap<String, String>> {
        let (stdout, stderr) = run(
            "ffprobe",
            &[
                "-v",
                "error",
                "-count_frames",
                "-show_entries",
                "stream=codec_name,profile,width,height,sample_rate,channels,nb_read_frames",
                "-of",
                "flat",
                path,
            ],
        );
        assert_eq!(stderr, "", "ffprobe complained about {path}");
        let mut streams: Vec<HashMap<String, String>> = Vec::new();
        // Lines like `streams.stream.1.codec_name="aac"` (program sections are skipped).
        for line in stdout.lines() {
            let Some(rest) = line.strip_prefix("streams.stream.") else {
                continue;
            };
            let (index, kv) = rest.split_once('.').unwrap();
            let (k, v) = kv.split_once('=').unwrap();
            let index: usize = index.parse().unwrap();
            if streams.len() <= index {
                streams.resize(index + 1, HashMap::new());
            }
            streams[index].insert(k.to_string(), v.trim_matches('"').to_string());
        }
        streams
    }

    #[test]
    fn ffprobe_and_ffmpeg_accept_a_real_stream_and_each_segment_alone() {
        if !require_tools(
            &["ffprobe", "ffmpeg"],
            "the TS muxer was not checked by them",
        ) {
            return;
        }
        let dir = artifact_dir("ts-test-artifacts");
        let flv_path = dir.join("real-av.flv");
        let flv = encode_test_flv(&flv_path, 1, 10, 44_100);
        // From zero (PCR clamps to 0 at first) and across the 33-bit wrap.
        for (name, base) in [("zero", 0u64), ("wrap", (1u64 << 33) - 45_000)] {
            let m = mux_flv(&flv, base);
            assert_eq!(m.segments.len(), 3, "keyframes every 10 frames");
            let whole = dir.join(format!("real-av-{name}.ts"));
            std::fs::write(&whole, &m.ts).unwrap();
            let whole = whole.to_str().unwrap();
            let (_, stderr) = run("ffmpeg", &["-v", "error", "-i", whole, "-f", "null", "-"]);
            assert_eq!(stderr, "", "decoding {whole}");

            let video_total: usize = m.segments.iter().map(|s| s.1).sum();
            let audio_total: usize = m.segments.iter().map(|s| s.2).sum();
            assert_eq!(video_total, 25);
            let mut files = vec![(whole.to_string(), video_total, audio_total)];
            for (i, seg) in m.segments.iter().enumerate() {
                let end = m.segments.get(i + 1).map_or(m.ts.len(), |s| s.0);
                let path = dir.join(format!("real-av-{name}-{i}.ts"));
                std::fs::write(&path, &m.ts[seg.0..end]).unwrap();
                files.push((path.to_str().unwrap().to_string(), seg.1, seg.2));
            }
            for (path, video_frames, audio_frames) in files {
                let streams = probe(&path);
                assert_eq!(streams.len(), 2, "{path}: {streams:?}");
                let v = &streams[0];
                assert_eq!(v["codec_name"], "h264", "{path}");
                assert_eq!((&*v["width"], &*v["height"]), ("320", "240"), "{path}");
                assert_eq!(v["nb_read_frames"], video_frames.to_string(), "{path}");
                let a = &streams[1];
                assert_eq!(a["codec_name"], "aac", "{path}");
                assert_eq!(a["profile"], "LC", "{path}");
                assert_eq!(a["sample_rate"], "44100", "{path}");
                assert_eq!(a["channels"], "2", "{path}");
                assert_eq!(a["nb_read_frames"], audio_frames.to_string(), "{path}");
                let (_, stderr) = run("ffmpeg", &["-v", "error", "-i", &path, "-f", "null", "-"]);
                assert_eq!(stderr, "", "decoding {path}");
            }
            let r = demux(&m.ts);
            assert_eq!(r.cc_errors, 0);
            assert_eq!(scan(&m.ts).cc_errors, 0);
        }
    }
}
