//! /stat and /control from the worker's side: a snapshot of its sessions, and drop/redirect.
//!
//! [`Worker::stat_part`] describes only this worker; the glue puts each worker's part into
//! shared memory ([`StatSnapshot::encode`]) and [`crate::stat::merge`]s them for the answer.
//! Bandwidths are measured here, between two calls, so they need no timer.

use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use super::{Client, CloseMode, LogLevel, Outcome, Role, ServerConfig, Worker};
use crate::control::{Action as ControlAction, ControlRequest};
use crate::live::{ClientId, FrameKind, GopCache, StreamKey};
use crate::media::{avc, flv};
use crate::rtmp::{amf0, command};
use crate::stat::{
    AppStat, AudioMeta, ClientStat, ServerStat, StatSnapshot, StreamStat, VideoMeta, WorkerInfo,
};

/// Shortest interval a bandwidth is measured over: `/stat` requests closer together than this
/// see the previous measurement instead of a noisy one.
pub const MIN_BW_WINDOW_MS: u64 = 1000;
/// AMF values of a metadata message looked at for the object with `framerate`.
const MAX_METADATA_VALUES: usize = 4;
/// Reason given to the glue for sessions `/control/drop` closes.
pub const DROP_REASON: &str = "dropped by /control";

/// Per-client traffic for /stat.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct ClientCounters {
    pub(super) bytes_in: u64,
    pub(super) bytes_out: u64,
    /// Payload bytes of audio / video messages published by this client.
    pub(super) audio_bytes: u64,
    pub(super) video_bytes: u64,
    /// When the current publish or play began (a stream's `time` counts from its publish).
    pub(super) role_since_ms: u64,
}

impl ClientCounters {
    /// One published media message of `len` payload bytes.
    pub(super) fn media(&mut self, kind: FrameKind, len: usize) {
        let len = len as u64;
        match kind {
            FrameKind::Audio => self.audio_bytes = self.audio_bytes.saturating_add(len),
            FrameKind::Video => self.video_bytes = self.video_bytes.saturating_add(len),
            FrameKind::Data | FrameKind::Control => {}
        }
    }
}

/// Worker totals and the bandwidth meter's previous readings.
#[derive(Debug, Default)]
pub(super) struct WorkerCounters {
    naccepted: u64,
    bytes_in: u64,
    bytes_out: u64,
    /// Reading of (bytes_in, bytes_out) at the last measurement.
    totals: Option<Sample<2>>,
    /// Per stream: (bytes_in, bytes_out, audio bytes, video bytes). Only streams present at
    /// the last `stat_part` are kept, so this is bounded by the live streams.
    streams: HashMap<StreamKey, Sample<4>>,
}

impl WorkerCounters {
    pub(super) fn accepted(&mut self) {
        self.naccepted = self.naccepted.saturating_add(1);
    }

    pub(super) fn received(&mut self, client: &mut ClientCounters, n: usize) {
        let n = n as u64;
        self.bytes_in = self.bytes_in.saturating_add(n);
        client.bytes_in = client.bytes_in.saturating_add(n);
    }

    pub(super) fn sent(&mut self, client: &mut ClientCounters, n: usize) {
        let n = n as u64;
        self.bytes_out = self.bytes_out.saturating_add(n);
        client.bytes_out = client.bytes_out.saturating_add(n);
    }
}

/// Counters read at `at_ms` and the bandwidths (bits/s) last measured.
#[derive(Debug, Clone, Copy)]
struct Sample<const N: usize> {
    at_ms: u64,
    prev: [u64; N],
    bw: [u64; N],
}

impl<const N: usize> Sample<N> {
    fn new(now_ms: u64, cur: [u64; N]) -> Self {
        Sample {
            at_ms: now_ms,
            prev: cur,
            bw: [0; N],
        }
    }

    /// Measures again once [`MIN_BW_WINDOW_MS`] has passed; returns bits per second.
    fn update(&mut self, now_ms: u64, cur: [u64; N]) -> [u64; N] {
        let elapsed = now_ms.saturating_sub(self.at_ms);
        if elapsed >= MIN_BW_WINDOW_MS {
            for ((bw, prev), cur) in self.bw.iter_mut().zip(&self.prev).zip(&cur) {
                // A counter that went down was restarted (a new publisher): count from 0.
                let delta = cur.checked_sub(*prev).unwrap_or(*cur);
                *bw = delta.saturating_mul(8000) / elapsed;
            }
            self.prev = cur;
            self.at_ms = now_ms;
        }
        self.bw
    }
}

impl Worker {
    /// This worker's part of `/stat`: every server{} its clients use (all of its
    /// applications), the live streams it knows with their clients (publisher first), codec
    /// information, traffic and bandwidths measured since the previous call (at least
    /// [`MIN_BW_WINDOW_MS`] apart; 0 on the first). nginx_version, compiler, built and uptime
    /// are left for the glue.
    pub fn stat_part(&mut self, now_ms: u64, pid: u32) -> StatSnapshot {
        let Worker {
            hub,
            clients,
            counters,
            ..
        } = self;

        // One configuration per server index: that of the newest connection (after a reload,
        // old and new configurations may both be in use).
        let mut configs: BTreeMap<usize, (ClientId, &Rc<ServerConfig>)> = BTreeMap::new();
        for (id, c) in clients.iter() {
            let e = configs.entry(c.server.index).or_insert((*id, &c.server));
            if *id > e.0 {
                *e = (*id, &c.server);
            }
        }
        let mut servers: BTreeMap<usize, ServerStat> = configs
            .iter()
            .map(|(index, (_, cfg))| {
                let applications = cfg
                    .apps
                    .iter()
                    .map(|a| AppStat {
                        name: a.name.clone(),
                        live: a.settings.live.live,
                        streams: Vec::new(),
                    })
                    .collect();
                (
                    *index,
                    ServerStat {
                        index: *index,
                        applications,
                    },
                )
            })
            .collect();

        let mut keys: Vec<_> = hub.streams().collect();
        keys.sort_by(|a, b| a.0.name.cmp(&b.0.name));
        let mut old_samples = std::mem::take(&mut counters.streams);
        for (key, stats) in keys {
            let publisher = stats
                .publisher
                .and_then(|id| clients.get(&id).map(|c| (id, c)));
            let publishing = publisher.is_some();
            let active = publishing && stats.frames_in > 0;
            let mut list = Vec::with_capacity(stats.players.saturating_add(1));
            let (mut audio, mut video, mut since) = (0, 0, None::<u64>);
            if let Some((id, c)) = publisher {
                audio = c.counters.audio_bytes;
                video = c.counters.video_bytes;
                since = Some(c.counters.role_since_ms);
                let mut cs = client_stat(id, c, now_ms, pid);
                cs.publishing = true;
                cs.active = active;
                cs.timestamp = u64::from(c.last_timestamp);
                list.push(cs);
            }
            let stream_ts = publisher.map_or(0, |(_, c)| c.last_timestamp);
            let mut bytes_out = 0u64;
            for (id, ps) in hub.players_of(key) {
                bytes_out = bytes_out.saturating_add(ps.bytes_out);
                let Some(c) = clients.get(&id) else {
                    continue;
                };
                let player_since = c.counters.role_since_ms;
                if !publishing {
                    since = Some(since.map_or(player_since, |s| s.min(player_since)));
                }
                let mut cs = client_stat(id, c, now_ms, pid);
                cs.active = ps.playing;
                cs.dropped = ps.dropped;
                // The media message being sent now, else where the stream is.
                let queued = hub.queue(id).and_then(|q| {
                    q.iter()
                        .find(|f| matches!(f.kind, FrameKind::Audio | FrameKind::Video))
                        .map(|f| f.timestamp)
                });
                cs.timestamp = u64::from(queued.unwrap_or(if ps.playing { stream_ts } else { 0 }));
                list.push(cs);
            }
            let cur = [stats.bytes_in, bytes_out, audio, video];
            let mut sample = old_samples
                .remove(key)
                .unwrap_or_else(|| Sample::new(now_ms, cur));
            let [bw_in, bw_out, bw_audio, bw_video] = sample.update(now_ms, cur);
            counters.streams.insert(key.clone(), sample);
            let (video_meta, audio_meta) = match (publishing, hub.gop(key)) {
                (true, Some(gop)) => codec_meta(gop),
                _ => (None, None),
            };
            let stream = StreamStat {
                name: key.name.clone(),
                time_ms: since.map_or(0, |s| now_ms.saturating_sub(s)),
                bw_in,
                bytes_in: stats.bytes_in,
                bw_out,
                bytes_out,
                bw_audio,
                bw_video,
                publishing,
                active,
                clients: list,
                video: video_meta,
                audio: audio_meta,
            };
            let index = key.server as usize;
            let server = servers.entry(index).or_insert_with(|| ServerStat {
                index,
                applications: Vec::new(),
            });
            let app = match server.applications.iter().position(|a| a.name == key.app) {
                Some(i) => &mut server.applications[i],
                None => {
                    server.applications.push(AppStat {
                        name: key.app.clone(),
                        live: true,
                        streams: Vec::new(),
                    });
                    let last = server.applications.len() - 1;
                    &mut server.applications[last]
                }
            };
            app.streams.push(stream);
        }

        let cur = [counters.bytes_in, counters.bytes_out];
        let [bw_in, bw_out] = counters
            .totals
            .get_or_insert_with(|| Sample::new(now_ms, cur))
            .update(now_ms, cur);
        StatSnapshot {
            module_version: env!("CARGO_PKG_VERSION").to_string(),
            pid,
            naccepted: counters.naccepted,
            bytes_in: counters.bytes_in,
            bytes_out: counters.bytes_out,
            bw_in,
            bw_out,
            workers: vec![WorkerInfo {
                pid,
                connections: clients.len() as u64,
            }],
            servers: servers.into_values().collect(),
            ..StatSnapshot::default()
        }
    }

    /// `/control` on this worker's sessions: drops or redirects those `req` selects and
    /// returns how many. Recording does not exist yet, so record requests act on nothing (0).
    pub fn control(&mut self, req: &ControlRequest, now_ms: u64, outcome: &mut Outcome) -> usize {
        let newname = match &req.action {
            ControlAction::Drop => None,
            ControlAction::Redirect { newname } => Some(command::StreamName::parse(newname)),
            ControlAction::RecordStart { .. } | ControlAction::RecordStop { .. } => return 0,
        };
        let mut selected: Vec<(ClientId, bool)> = self
            .clients
            .iter()
            .filter_map(|(id, c)| {
                let (key, publishing) = match &c.role {
                    Role::Publisher(k) => (k, true),
                    Role::Player(k) => (k, false),
                    Role::None => return None,
                };
                req.selects(
                    c.server.index,
                    &key.app,
                    &key.name,
                    &c.vars.addr,
                    *id,
                    publishing,
                )
                .then_some((*id, publishing))
            })
            .collect();
        selected.sort_unstable();
        for &(id, publishing) in &selected {
            match &newname {
                None => {
                    outcome.log(LogLevel::Info, id, format!("rtmp: {DROP_REASON}"));
                    outcome.close.push((id, CloseMode::Now, DROP_REASON.into()));
                }
                Some(name) => self.redirect(id, publishing, name.clone(), now_ms, outcome),
            }
        }
        selected.len()
    }

    /// Moves a session to another stream, as the C module's redirect: the stream is closed
    /// (with its `*_done` callbacks) and publish or play is issued again under `name`.
    fn redirect(
        &mut self,
        id: ClientId,
        publishing: bool,
        name: command::StreamName,
        now_ms: u64,
        outcome: &mut Outcome,
    ) {
        let from = match self.clients.get(&id).map(|c| &c.role) {
            Some(Role::Publisher(k) | Role::Player(k)) => k.to_string(),
            _ => return,
        };
        outcome.log(
            LogLevel::Info,
            id,
            format!(
                "rtmp: redirected by /control from \"{from}\" to \"{}\"",
                command::escape_for_log(&name.name)
            ),
        );
        let head = self.partial_head(id);
        self.end_role(id, now_ms, outcome);
        if let (Some(rest), Some(c)) = (head, self.clients.get_mut(&id)) {
            // Ahead of anything not yet started (a partly written session reply stays first).
            let at = usize::from(c.out_offset > 0).min(c.out.len());
            c.out.insert(at, rest);
            outcome.wake.push(id);
        }
        let shown = name.name.clone();
        if publishing {
            self.complete_publish(id, name, "live", now_ms, outcome);
        } else {
            self.complete_play(id, name, true, now_ms, outcome);
        }
        let Some(c) = self.clients.get_mut(&id) else {
            return;
        };
        // A refusal's status is in the session's output; the glue flushes it before closing.
        c.collect_output();
        if outcome.closes(id) {
            return;
        }
        // The session already played or published, so it sends no statuses of its own; these
        // go before the new stream's media (session output is written before the queue).
        let s = &c.session;
        let messages = match c.role {
            Role::Publisher(_) => vec![s.status_message(
                "status",
                command::NS_PUBLISH_START,
                &format!("{shown} is now published."),
            )],
            Role::Player(_) => vec![
                s.stream_event(true),
                s.status_message(
                    "status",
                    command::NS_PLAY_RESET,
                    &format!("Playing and resetting {shown}."),
                ),
                s.status_message(
                    "status",
                    command::NS_PLAY_START,
                    &format!("Started playing {shown}."),
                ),
            ],
            Role::None => return,
        };
        c.out.extend(messages);
        outcome.wake.push(id);
    }
}

impl Worker {
    /// The unwritten rest of a player's partly written queue head. Leaving the stream drops
    /// the queue, but a message cut in the middle would break the client's chunk stream, so
    /// the rest must still go out.
    fn partial_head(&self, id: ClientId) -> Option<bytes::Bytes> {
        let q = self.hub.queue(id)?;
        let front = q.iter().next()?;
        let mut slices = [std::io::IoSlice::new(&[])];
        if q.io_slices(&mut slices) == 0 {
            return None;
        }
        let rest = slices[0].len();
        let total = front.chunked.len();
        (rest > 0 && rest < total).then(|| front.chunked.slice(total - rest..))
    }
}

/// The fields of a client every stream role shares.
fn client_stat(id: ClientId, c: &Client, now_ms: u64, pid: u32) -> ClientStat {
    let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
    ClientStat {
        id,
        address: c.vars.addr.clone(),
        time_ms: now_ms.saturating_sub(c.connected_ms),
        flashver: opt(&c.vars.flashver),
        pageurl: opt(&c.vars.pageurl),
        swfurl: opt(&c.vars.swfurl),
        dropped: 0,
        avsync: 0,
        timestamp: 0,
        publishing: false,
        active: false,
        worker_pid: pid,
        bytes_in: c.counters.bytes_in,
        bytes_out: c.counters.bytes_out,
    }
}

/// What `onMetaData` says (the fallback when a codec header is missing or unreadable).
#[derive(Debug, Default)]
struct MetaInfo {
    width: Option<u32>,
    height: Option<u32>,
    frame_rate: Option<f64>,
    video_codec_id: Option<u8>,
    audio_codec_id: Option<u8>,
    sample_rate: Option<u32>,
    channels: Option<u32>,
}

/// A positive, finite number that fits `u32` (metadata is the publisher's word).
fn positive_u32(v: Option<&amf0::Amf0Value>) -> Option<u32> {
    let n = v?.as_f64()?;
    (n.is_finite() && n >= 1.0 && n <= f64::from(u32::MAX)).then_some(n as u32)
}

fn small_id(v: Option<&amf0::Amf0Value>) -> Option<u8> {
    let n = v?.as_f64()?;
    (n.is_finite() && (0.0..=255.0).contains(&n)).then_some(n as u8)
}

fn parse_metadata(payload: &[u8]) -> MetaInfo {
    let mut d = amf0::Decoder::new(payload);
    for _ in 0..MAX_METADATA_VALUES {
        let Ok(Some(v)) = d.next_value() else {
            break;
        };
        if v.properties().is_none() {
            continue;
        }
        let rate = v
            .get("framerate")
            .or_else(|| v.get("videoframerate"))
            .and_then(amf0::Amf0Value::as_f64)
            .filter(|f| f.is_finite() && *f > 0.0 && *f <= avc::MAX_FRAME_RATE);
        let channels = positive_u32(v.get("audiochannels")).or_else(|| {
            v.get("stereo")
                .and_then(amf0::Amf0Value::as_bool)
                .map(|s| if s { 2 } else { 1 })
        });
        return MetaInfo {
            width: positive_u32(v.get("width")),
            height: positive_u32(v.get("height")),
            frame_rate: rate,
            video_codec_id: small_id(v.get("videocodecid")),
            audio_codec_id: small_id(v.get("audiocodecid")),
            sample_rate: positive_u32(v.get("audiosamplerate")),
            channels,
        };
    }
    MetaInfo::default()
}

/// Codec information of a published stream from its cached sequence headers and metadata,
/// as the C module's codec module shows it.
fn codec_meta(gop: &GopCache) -> (Option<VideoMeta>, Option<AudioMeta>) {
    let meta = gop
        .metadata()
        .map(|m| parse_metadata(m))
        .unwrap_or_default();
    (video_meta(gop, &meta), audio_meta(gop, &meta))
}

fn video_meta(gop: &GopCache, meta: &MetaInfo) -> Option<VideoMeta> {
    let tag = gop
        .video_header()
        .and_then(|h| flv::parse_video(h).ok().map(|t| (h, t)));
    let mut v = VideoMeta {
        width: meta.width.unwrap_or(0),
        height: meta.height.unwrap_or(0),
        frame_rate: meta.frame_rate.unwrap_or(0.0),
        ..VideoMeta::default()
    };
    match tag {
        Some((header, tag)) => {
            v.codec = tag.codec.name().to_string();
            let body = header.get(tag.body_offset..).unwrap_or_default();
            if tag.codec.fourcc() == Some(flv::FourCc::AVC1) {
                if let Ok(cfg) = flv::parse_avc_decoder_config(body) {
                    let profile = cfg.profile_name();
                    v.profile = (!profile.is_empty()).then(|| profile.to_string());
                    v.compat = Some(u32::from(cfg.constraint_flags));
                    v.level = Some(format!("{}.{}", cfg.level_idc / 10, cfg.level_idc % 10));
                    if let Some(sps) = cfg.sps.first().and_then(|s| avc::parse_sps(s)) {
                        v.width = sps.width;
                        v.height = sps.height;
                        if meta.frame_rate.is_none() {
                            v.frame_rate = sps.frame_rate.unwrap_or(0.0);
                        }
                    }
                }
            }
        }
        None => {
            let id = meta.video_codec_id?;
            v.codec = flv::VideoCodec::from_legacy_id(id).name().to_string();
        }
    }
    Some(v)
}

fn audio_meta(gop: &GopCache, meta: &MetaInfo) -> Option<AudioMeta> {
    let tag = gop
        .audio_header()
        .and_then(|h| flv::parse_audio(h).ok().map(|t| (h, t)));
    let mut a = AudioMeta {
        channels: meta.channels,
        sample_rate: meta.sample_rate,
        ..AudioMeta::default()
    };
    match tag {
        Some((header, tag)) => {
            a.codec = tag.codec.name().to_string();
            if let Some(l) = tag.legacy {
                a.channels = Some(u32::from(l.channels));
                a.sample_rate = Some(l.sample_rate);
            }
            let body = header.get(tag.body_offset..).unwrap_or_default();
            if tag.codec.fourcc() == Some(flv::FourCc::MP4A) {
                if let Ok(cfg) = flv::parse_audio_specific_config(body) {
                    let profile = cfg.profile_name();
                    a.profile = (!profile.is_empty()).then(|| profile.to_string());
                    a.channels = Some(u32::from(cfg.output_channels())).filter(|c| *c > 0);
                    a.sample_rate = Some(cfg.output_sample_rate());
                }
            }
        }
        None => {
            let id = meta.audio_codec_id?;
            a.codec = flv::AudioCodec::from_legacy_format(id).name().to_string();
        }
    }
    Some(a)
}

#[cfg(test)]
mod tests {}
