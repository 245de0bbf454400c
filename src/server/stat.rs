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
use crate::media::metadata::{parse_metadata, CodecId, Metadata};
use crate::media::{avc, codecs, flv};
use crate::rtmp::amf0::Decoder;
use crate::rtmp::command;
use crate::stat::{
    AppStat, AudioMeta, ClientStat, ClientTls, ServerStat, StatSnapshot, StreamStat, TrackMeta,
    VideoMeta, WorkerInfo,
};

/// Shortest interval a bandwidth is measured over: `/stat` requests closer together than this
/// see the previous measurement instead of a noisy one.
pub const MIN_BW_WINDOW_MS: u64 = 1000;
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
        let execs = exec_stats(&self.execs);
        let Worker {
            hub,
            clients,
            counters,
            relays,
            outputs,
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

        // Paused players have left the fan-out but still play their stream.
        let mut paused: HashMap<&StreamKey, Vec<ClientId>> = HashMap::new();
        for (id, c) in clients.iter() {
            if let Role::Player(key) = &c.role {
                if hub.player_stats(*id).is_none() {
                    paused.entry(key).or_default().push(*id);
                }
            }
        }
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
            if publisher.is_none() {
                // A pull publishes it: shown as its publisher, addressed by its URL.
                let pulled = stats.publisher.and_then(|id| {
                    super::pull::stat_client(relays, id, active_pull(&stats), now_ms, pid)
                });
                if let Some((cs, pull_since)) = pulled {
                    since = Some(pull_since);
                    list.push(cs);
                }
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
            if let Some(ids) = paused.get_mut(key) {
                ids.sort_unstable();
                for id in ids.iter() {
                    if let Some(c) = clients.get(id) {
                        list.push(client_stat(*id, c, now_ms, pid));
                    }
                }
            }
            // Pushes, as the C module lists them: clients of the stream, addressed by target.
            list.extend(super::relay::stat_clients(relays, hub, key, now_ms, pid));
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
                recorders: outputs
                    .recordings(key)
                    .into_iter()
                    .map(|r| crate::stat::RecorderStat {
                        name: r.recorder,
                        path: r.path.to_string_lossy().into_owned(),
                        bytes: r.bytes,
                        time_ms: r.duration_ms,
                    })
                    .collect(),
            };
            let index = key.server as usize;
            let server = servers.entry(index).or_insert_with(|| ServerStat {
                index,
                applications: Vec::new(),
            });
            match server.applications.iter_mut().find(|a| a.name == key.app) {
                Some(app) => app.streams.push(stream),
                None => server.applications.push(AppStat {
                    name: key.app.clone(),
                    live: true,
                    streams: vec![stream],
                }),
            }
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
                execs,
            }],
            servers: servers.into_values().collect(),
            ..StatSnapshot::default()
        }
    }

    /// `/control` on this worker's sessions: drops or redirects those `req` selects, or
    /// starts or stops their recorders, and returns how many.
    pub fn control(&mut self, req: &ControlRequest, now_ms: u64, outcome: &mut Outcome) -> usize {
        let newname = match &req.action {
            ControlAction::Drop => None,
            ControlAction::Redirect { newname } => Some(command::StreamName::parse(newname)),
            ControlAction::RecordStart { rec } | ControlAction::RecordStop { rec } => {
                let start = matches!(req.action, ControlAction::RecordStart { .. });
                let rec = rec.clone();
                return match self.record_control(req, &rec, start, now_ms, outcome) {
                    super::RecordControl::Done(_) => 1,
                    _ => 0,
                };
            }
        };
        let mut selected: Vec<(ClientId, bool)> = self
            .clients
            .iter()
            .filter_map(|(id, c)| {
                let (key, publishing) = match &c.role {
                    Role::Publisher(k) => (k, true),
                    Role::Player(k) | Role::Vod(k) => (k, false),
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
        // Pushes and pulls can be dropped; a redirect has no meaning for a remote peer.
        let relays = if newname.is_none() {
            self.drop_relays(req, outcome) + self.drop_pulls(req, now_ms, outcome)
        } else {
            0
        };
        selected.len() + relays
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
            Some(Role::Publisher(k) | Role::Player(k) | Role::Vod(k)) => k.to_string(),
            _ => return,
        };
        if self.clients.get(&id).is_some_and(|c| c.http.is_some()) {
            // An FLV body cannot start over with another stream's header: it ends.
            outcome.log(
                LogLevel::Info,
                id,
                format!("flv: redirect by /control from \"{from}\" ends the HTTP-FLV response"),
            );
            self.end_http_body(id, "redirected by /control", outcome);
            return;
        }
        outcome.log(
            LogLevel::Info,
            id,
            format!(
                "rtmp: redirected by /control from \"{from}\" to \"{}\"",
                command::escape_for_log(&name.name)
            ),
        );
        // end_role keeps the rest of a partly written message (keep_partial_head).
        self.end_role(id, now_ms, outcome);
        outcome.wake.push(id);
        let shown = name.name.clone();
        if publishing {
            self.complete_publish(id, name, "live", now_ms, outcome);
        } else {
            self.complete_play(id, name, (0.0, true), now_ms, outcome);
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
            Role::Vod(_) | Role::None => return,
        };
        c.out.extend(messages);
        outcome.wake.push(id);
    }
}

/// The worker's `exec*` processes for /stat.
fn exec_stats(execs: &crate::exec::Execs) -> Vec<crate::stat::ExecStat> {
    execs
        .list()
        .into_iter()
        .map(|e| {
            let (app, name) = match &e.owner {
                crate::exec::Owner::Stream(k) | crate::exec::Owner::Pulling(k) => {
                    (k.app.clone(), k.name.clone())
                }
                _ => (String::new(), String::new()),
            };
            crate::stat::ExecStat {
                pid: e.pid.and_then(|p| u32::try_from(p).ok()).unwrap_or(0),
                directive: e.kind.directive().to_string(),
                app,
                name,
                command: e.command,
                restarts: u64::from(e.restarts),
            }
        })
        .collect()
}

/// Whether a pulled stream has media flowing.
fn active_pull(stats: &crate::live::StreamStats) -> bool {
    stats.frames_in > 0
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
        relay: None,
        tls: c.tls.as_ref().map(|t| ClientTls {
            version: t.version.clone(),
            sni: t.sni.clone(),
        }),
    }
}

/// Codec information of a published stream from its cached sequence headers and metadata
/// (the fallback when a codec header is missing or unreadable), as the C module's codec
/// module shows it, for every codec the module takes (legacy and Enhanced RTMP).
fn codec_meta(gop: &GopCache) -> (Option<VideoMeta>, Option<AudioMeta>) {
    let meta = gop
        .metadata()
        .map(|m| parse_metadata(m))
        .unwrap_or_default();
    (video_meta(gop, &meta), audio_meta(gop, &meta))
}

/// H.273 transfer characteristics of the HDR transfer functions.
const TRANSFER_PQ: u8 = 16;
const TRANSFER_HLG: u8 = 18;

/// What a video configuration record says; unknown fields are None.
#[derive(Debug, Default)]
struct VideoConfig {
    profile: Option<&'static str>,
    compat: Option<u32>,
    level: Option<String>,
    size: Option<(u32, u32)>,
    frame_rate: Option<f64>,
    bit_depth: Option<u32>,
    /// Transfer characteristics (H.273) where the record carries them (vpcC).
    transfer: Option<u8>,
}

/// Reads the configuration record `body` of codec `fourcc`. VP9's has no picture size: it
/// comes from the first cached keyframe when `gop` is given.
fn video_config(fourcc: Option<flv::FourCc>, body: &[u8], gop: Option<&GopCache>) -> VideoConfig {
    let named = |p: &'static str| (!p.is_empty()).then_some(p);
    let sized = |w: u32, h: u32| (w > 0 && h > 0).then_some((w, h));
    let mut c = VideoConfig::default();
    match fourcc {
        Some(flv::FourCc::AVC1) => {
            if let Ok(cfg) = flv::parse_avc_decoder_config(body) {
                c.profile = named(cfg.profile_name());
                c.compat = Some(u32::from(cfg.constraint_flags));
                c.level = Some(format!("{}.{}", cfg.level_idc / 10, cfg.level_idc % 10));
                if let Some(sps) = cfg.sps.first().and_then(|s| avc::parse_sps(s)) {
                    c.size = Some((sps.width, sps.height));
                    c.frame_rate = sps.frame_rate;
                }
            }
        }
        Some(flv::FourCc::HVC1) => {
            if let Ok(cfg) = codecs::parse_hevc_config(body) {
                c.profile = named(cfg.profile_name());
                // level_idc is 30 times the level (93 is 3.1).
                let idc = cfg.level_idc;
                c.level = (idc > 0).then(|| format!("{}.{}", idc / 30, idc % 30 / 3));
                c.size = sized(cfg.width, cfg.height);
                c.bit_depth = Some(u32::from(cfg.bit_depth));
            }
        }
        Some(flv::FourCc::AV01) => {
            if let Ok(cfg) = codecs::parse_av1_config(body) {
                c.profile = named(cfg.profile_name());
                // seq_level_idx 0..=23 is level 2.0..7.3; 31 means no level constraint.
                let idx = cfg.level_idx;
                c.level = (idx <= 23).then(|| format!("{}.{}", 2 + idx / 4, idx % 4));
                c.size = sized(cfg.width, cfg.height);
                c.bit_depth = Some(u32::from(cfg.bit_depth));
            }
        }
        Some(flv::FourCc::VP09) => {
            if let Ok(cfg) = codecs::parse_vp9_config(body) {
                c.profile = match cfg.profile {
                    0 => Some("Profile 0"),
                    1 => Some("Profile 1"),
                    2 => Some("Profile 2"),
                    3 => Some("Profile 3"),
                    _ => None,
                };
                // vpcC carries ten times the level (21 is 2.1); 0 is unspecified.
                let l = cfg.level;
                c.level = (l > 0).then(|| format!("{}.{}", l / 10, l % 10));
                c.bit_depth = Some(u32::from(cfg.bit_depth));
                c.transfer = Some(cfg.transfer);
                c.size = gop.and_then(vp9_size);
            }
        }
        _ => {}
    }
    c
}

/// Picture size of the first cached VP9 keyframe.
fn vp9_size(gop: &GopCache) -> Option<(u32, u32)> {
    let key = gop.frames().find(|f| f.is_video_keyframe())?;
    let tag = flv::parse_video(&key.payload).ok()?;
    codecs::vp9_keyframe_size(key.payload.get(tag.body_offset..)?)
}

/// `transferCharacteristics` and `bitDepth` of the `colorConfig` in an Enhanced RTMP video
/// metadata body (`"colorInfo", {colorConfig: {...}, hdrCll: ..., hdrMdcv: ...}`).
fn color_config(body: &[u8]) -> (Option<u8>, Option<u32>) {
    let mut d = Decoder::new(body);
    for _ in 0..2 {
        let Ok(Some(v)) = d.next_value() else {
            break;
        };
        let Some(config) = v.get("colorConfig") else {
            continue;
        };
        let small = |k: &str, max: f64| {
            let n = config.get(k)?.as_f64()?;
            (n.fract() == 0.0 && (0.0..=max).contains(&n)).then_some(n)
        };
        return (
            small("transferCharacteristics", 255.0).map(|n| n as u8),
            small("bitDepth", 16.0)
                .filter(|n| *n >= 8.0)
                .map(|n| n as u32),
        );
    }
    (None, None)
}

/// The colorInfo the publisher sent for the codec `fourcc`: (transfer, bit depth).
fn color_info(gop: &GopCache, fourcc: Option<flv::FourCc>) -> (Option<u8>, Option<u32>) {
    fourcc
        .and_then(|f| {
            gop.video_metadata().find_map(|m| {
                let tag = flv::parse_video(m).ok()?;
                if tag.codec.fourcc() != Some(f) {
                    return None;
                }
                Some(color_config(m.get(tag.body_offset..)?))
            })
        })
        .unwrap_or((None, None))
}

fn hdr_name(transfer: u8) -> Option<&'static str> {
    match transfer {
        TRANSFER_PQ => Some("PQ"),
        TRANSFER_HLG => Some("HLG"),
        _ => None,
    }
}

fn video_meta(gop: &GopCache, meta: &Metadata) -> Option<VideoMeta> {
    let tag = gop
        .video_header()
        .and_then(|h| flv::parse_video(h).ok().map(|t| (h, t)));
    let mut v = VideoMeta {
        width: meta.width.unwrap_or(0),
        height: meta.height.unwrap_or(0),
        frame_rate: meta.frame_rate.unwrap_or(0.0),
        ..VideoMeta::default()
    };
    let mut config = VideoConfig::default();
    let fourcc = match tag {
        Some((header, tag)) => {
            v.codec = tag.codec.name().to_string();
            let body = header.get(tag.body_offset..).unwrap_or_default();
            config = video_config(tag.codec.fourcc(), body, Some(gop));
            tag.codec.fourcc()
        }
        None => {
            let codec = match meta.video_codec {
                Some(CodecId::Legacy(id)) => flv::VideoCodec::from_legacy_id(id),
                Some(CodecId::FourCc(f)) => flv::VideoCodec::FourCc(flv::FourCc(f)),
                None => return None,
            };
            v.codec = codec.name().to_string();
            codec.fourcc()
        }
    };
    v.profile = config.profile.map(str::to_string);
    v.compat = config.compat;
    v.level = config.level;
    if let Some((w, h)) = config.size {
        (v.width, v.height) = (w, h);
    }
    if meta.frame_rate.is_none() {
        v.frame_rate = config.frame_rate.unwrap_or(0.0);
    }
    // The publisher's colorInfo is its word on colour; the record's fields are the fallback.
    let (transfer, depth) = color_info(gop, fourcc);
    v.bit_depth = config.bit_depth.or(depth);
    v.hdr = transfer
        .or(config.transfer)
        .and_then(hdr_name)
        .map(str::to_string);
    v.tracks = gop
        .track_headers()
        .filter_map(|(id, header)| {
            let tag = flv::parse_video(header).ok()?;
            let body = header.get(tag.body_offset..).unwrap_or_default();
            let c = video_config(tag.codec.fourcc(), body, None);
            let (width, height) = c.size.unwrap_or((0, 0));
            Some(TrackMeta {
                id: u32::from(id),
                codec: tag.codec.name().to_string(),
                width,
                height,
                profile: c.profile.map(str::to_string),
                level: c.level,
            })
        })
        .collect();
    Some(v)
}

fn audio_meta(gop: &GopCache, meta: &Metadata) -> Option<AudioMeta> {
    // AC-3 and E-AC-3 have no sequence header: their first cached frame says the same.
    let tag = gop
        .audio_header()
        .or_else(|| {
            gop.frames()
                .find(|f| f.kind == FrameKind::Audio)
                .map(|f| &f.payload)
        })
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
            let start = tag.is_sequence_header();
            match tag.codec.fourcc() {
                Some(flv::FourCc::MP4A) if start => {
                    if let Ok(cfg) = flv::parse_audio_specific_config(body) {
                        let profile = cfg.profile_name();
                        a.profile = (!profile.is_empty()).then(|| profile.to_string());
                        a.channels = Some(u32::from(cfg.output_channels())).filter(|c| *c > 0);
                        a.sample_rate = Some(cfg.output_sample_rate());
                    }
                }
                Some(flv::FourCc::OPUS) if start => {
                    if let Ok(cfg) = codecs::parse_opus_config(body) {
                        a.channels = Some(u32::from(cfg.channels));
                        // Opus always decodes at 48 kHz (input_rate is only the source's).
                        a.sample_rate = Some(codecs::OPUS_RATE);
                    }
                }
                Some(flv::FourCc::FLAC) if start => {
                    if let Ok(cfg) = codecs::parse_flac_config(body) {
                        a.channels = Some(u32::from(cfg.channels));
                        a.sample_rate = Some(cfg.sample_rate);
                    }
                }
                Some(flv::FourCc::AC3 | flv::FourCc::EAC3)
                    if tag.packet == flv::AudioPacket::Frame =>
                {
                    if let Ok(cfg) = codecs::parse_ac3_frame(body) {
                        a.channels = Some(u32::from(cfg.channels));
                        a.sample_rate = Some(cfg.sample_rate);
                    }
                }
                _ => {}
            }
        }
        None => {
            let codec = match meta.audio_codec? {
                CodecId::Legacy(id) => flv::AudioCodec::from_legacy_format(id),
                CodecId::FourCc(f) => flv::AudioCodec::FourCc(flv::FourCc(f)),
            };
            a.codec = codec.name().to_string();
        }
    }
    Some(a)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::io::IoSlice;

    use bytes::Bytes;
    use rml_rtmp::messages::UserControlEventType;
    use rml_rtmp::sessions::{ClientSessionEvent, PublishRequestType, StreamMetadata};
    use rml_rtmp::time::RtmpTimestamp;

    use super::super::tests::{audio_frame, server_with, video_frame, TestClient};
    use super::super::LogLine;
    use super::*;
    use crate::control::parse_control;
    use crate::live::Hub;
    use crate::rtmp::amf0;
    use crate::stat::{merge, render_xml, StatMask};

    /// A real x264 sequence header (High 3.1, 640x360) and AAC-LC 48 kHz stereo config, as
    /// ffmpeg writes them into FLV.
    const AVC_HEADER: &[u8] = &[
        0x17, 0x00, 0x00, 0x00, 0x00, 0x01, 0x64, 0x00, 0x1f, 0xff, 0xe1, 0x00, 0x1a, 0x67, 0x64,
        0x00, 0x1f, 0xac, 0xd9, 0x40, 0xa0, 0x2f, 0xf9, 0x70, 0x11, 0x00, 0x00, 0x03, 0x00, 0x01,
        0x00, 0x00, 0x03, 0x00, 0x32, 0x0f, 0x18, 0x31, 0x96, 0x01, 0x00, 0x06, 0x68, 0xeb, 0xe3,
        0xcb, 0x22, 0xc0, 0xfd, 0xf8, 0xf8, 0x00,
    ];
    const AAC_HEADER: &[u8] = &[0xaf, 0x00, 0x11, 0x90, 0x56, 0xe5, 0x00];
    const PID: u32 = 4242;

    /// A worker and rml_rtmp clients wired together in memory (the same model as the worker
    /// tests in `tests.rs`, reduced to what /stat and /control need).
    struct H {
        worker: Worker,
        server: Rc<ServerConfig>,
        clients: BTreeMap<ClientId, TestClient>,
        now: u64,
        logs: Vec<LogLine>,
        closes: Vec<(ClientId, CloseMode, String)>,
    }

    impl H {
        fn new() -> Self {
            H {
                worker: Worker::new(),
                server: server_with(&[], &[]),
                clients: BTreeMap::new(),
                now: 1_000_000,
                logs: Vec::new(),
                closes: Vec::new(),
            }
        }

        fn c(&self, id: ClientId) -> &TestClient {
            &self.clients[&id]
        }

        fn cm(&mut self, id: ClientId) -> &mut TestClient {
            self.clients.get_mut(&id).unwrap()
        }

        fn is_open(&self, id: ClientId) -> bool {
            self.c(id).is_open()
        }

        fn apply(&mut self, o: Outcome) {
            self.logs.extend(o.logs);
            for (id, mode, reason) in o.close {
                self.closes.push((id, mode, reason.clone()));
                if !self.clients.get(&id).is_some_and(TestClient::is_open) {
                    continue;
                }
                if mode == CloseMode::AfterFlush {
                    let bytes = self.collect(id, usize::MAX);
                    self.cm(id).receive(&bytes);
                } else {
                    self.worker.discard_output(id);
                }
                self.cm(id).closed = Some((mode, reason));
                let mut o = Outcome::default();
                self.worker.disconnect(id, self.now, &mut o);
                self.apply(o);
            }
        }

        /// Up to `limit` bytes of the worker's output for `id`, as a socket write would take.
        fn collect(&mut self, id: ClientId, limit: usize) -> Vec<u8> {
            let mut out = Vec::new();
            while out.len() < limit {
                let mut slices = [IoSlice::new(&[]); 16];
                let n = self.worker.output_slices(id, &mut slices);
                let before = out.len();
                for s in &slices[..n] {
                    let room = limit - out.len();
                    out.extend_from_slice(&s[..s.len().min(room)]);
                }
                if out.len() == before {
                    break;
                }
                self.worker.advance(id, out.len() - before);
            }
            out
        }

        fn pump(&mut self) {
            for _ in 0..10_000 {
                let mut progress = false;
                let ids: Vec<ClientId> = self.clients.keys().copied().collect();
                for id in ids {
                    if !self.is_open(id) {
                        continue;
                    }
                    let bytes = std::mem::take(&mut self.cm(id).to_server);
                    if !bytes.is_empty() {
                        let mut o = Outcome::default();
                        self.worker.on_input(id, &bytes, self.now, &mut o);
                        self.apply(o);
                        progress = true;
                    }
                    if self.is_open(id) {
                        let bytes = self.collect(id, usize::MAX);
                        if !bytes.is_empty() {
                            self.cm(id).receive(&bytes);
                            progress = true;
                        }
                    }
                }
                if !progress {
                    return;
                }
            }
            panic!("pump did not settle");
        }

        fn connect(&mut self, id: ClientId, peer: &str) {
            let mut rng = id.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
            let mut random = |buf: &mut [u8]| {
                for b in buf {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    *b = rng as u8;
                }
            };
            let peer = Some(peer.parse().unwrap());
            let server = self.server.clone();
            self.worker.connect(id, peer, server, self.now, &mut random);
            self.clients.insert(id, TestClient::new(false));
            self.pump();
            let r = self.cm(id).session().request_connection("live".into());
            self.cm(id).absorb_one(r);
            self.pump();
            assert!(self
                .c(id)
                .has_event(|e| *e == ClientSessionEvent::ConnectionRequestAccepted));
        }

        fn publisher(&mut self, id: ClientId, peer: &str, name: &str) {
            self.connect(id, peer);
            let r = self
                .cm(id)
                .session()
                .request_publishing(name.into(), PublishRequestType::Live);
            self.cm(id).absorb_one(r);
            self.pump();
            assert!(self
                .c(id)
                .has_event(|e| *e == ClientSessionEvent::PublishRequestAccepted));
        }

        fn player(&mut self, id: ClientId, peer: &str, name: &str) {
            self.connect(id, peer);
            let r = self.cm(id).session().request_playback(name.into());
            self.cm(id).absorb_one(r);
            self.pump();
            assert!(self
                .c(id)
                .has_event(|e| *e == ClientSessionEvent::PlaybackRequestAccepted));
        }

        fn video(&mut self, id: ClientId, ts: u32, data: Bytes) {
            let r = self
                .cm(id)
                .session()
                .publish_video_data(data, RtmpTimestamp::new(ts), false);
            self.cm(id).absorb_one(r);
            self.pump();
        }

        fn audio(&mut self, id: ClientId, ts: u32, data: Bytes) {
            let r = self
                .cm(id)
                .session()
                .publish_audio_data(data, RtmpTimestamp::new(ts), false);
            self.cm(id).absorb_one(r);
            self.pump();
        }

        /// Metadata (30 fps), the real codec headers and a keyframe tagged `seq`.
        fn start(&mut self, id: ClientId, seq: u32) -> Bytes {
            let mut m = StreamMetadata::new();
            m.video_width = Some(640);
            m.video_height = Some(360);
            m.video_frame_rate = Some(30.0);
            m.video_codec_id = Some(7);
            m.audio_codec_id = Some(10);
            let r = self.cm(id).session().publish_metadata(&m);
            self.cm(id).absorb_one(r);
            self.pump();
            self.video(id, 0, Bytes::from_static(AVC_HEADER));
            self.audio(id, 0, Bytes::from_static(AAC_HEADER));
            let key = video_frame(true, seq, 300);
            self.video(id, 0, key.clone());
            key
        }

        fn control(&mut self, path: &str, args: &str) -> usize {
            let req = parse_control(path, args).unwrap();
            let mut o = Outcome::default();
            let n = self.worker.control(&req, self.now, &mut o);
            self.apply(o);
            self.pump();
            n
        }

        fn stat(&mut self) -> StatSnapshot {
            self.worker.stat_part(self.now, PID)
        }
    }

    fn only_stream(s: &StatSnapshot) -> &StreamStat {
        let streams: Vec<&StreamStat> = s
            .servers
            .iter()
            .flat_map(|srv| &srv.applications)
            .flat_map(|a| &a.streams)
            .collect();
        assert_eq!(streams.len(), 1, "{s:#?}");
        streams[0]
    }

    fn stream<'a>(s: &'a StatSnapshot, name: &str) -> Option<&'a StreamStat> {
        s.servers
            .iter()
            .flat_map(|srv| &srv.applications)
            .flat_map(|a| &a.streams)
            .find(|st| st.name == name)
    }

    /// The independent decoder read every message. (rml_rtmp's high-level session refuses a
    /// second Play.Start on a playing stream; that strictness is not checked here.)
    fn assert_no_chunk_errors(c: &TestClient) {
        let bad: Vec<&String> = c
            .errors
            .iter()
            .filter(|e| !e.contains("SessionInInvalidState"))
            .collect();
        assert!(bad.is_empty(), "{bad:?}");
    }

    fn ids(st: &StreamStat) -> Vec<ClientId> {
        st.clients.iter().map(|c| c.id).collect()
    }

    /// A publisher (1) and two players (2, 3) of `live/cam`, media flowing.
    fn three_clients() -> H {
        let mut h = H::new();
        h.publisher(1, "192.0.2.1", "cam");
        h.now += 500;
        h.player(2, "192.0.2.2", "cam");
        h.player(3, "192.0.2.3", "cam");
        h.now += 500;
        h.start(1, 1);
        h
    }

    #[test]
    fn stat_lists_the_publisher_first_then_players_with_flags_and_times() {
        let mut h = three_clients();
        h.now += 2000;
        let s = h.stat();
        assert_eq!(s.pid, PID);
        assert_eq!(s.module_version, env!("CARGO_PKG_VERSION"));
        assert_eq!(s.naccepted, 3);
        assert_eq!(
            s.workers,
            [WorkerInfo {
                pid: PID,
                connections: 3,
                execs: Vec::new(),
            }]
        );
        assert_eq!(s.servers.len(), 1);
        assert_eq!(s.servers[0].index, 0);
        let app = &s.servers[0].applications[0];
        assert_eq!((app.name.as_str(), app.live), ("live", true));
        let st = only_stream(&s);
        assert_eq!(st.name, "cam");
        assert_eq!(ids(st), [1, 2, 3]);
        assert!(st.publishing && st.active);
        // Published at 1_000_000, now 1_003_000.
        assert_eq!(st.time_ms, 3000);
        let (p, a) = (&st.clients[0], &st.clients[1]);
        assert!(p.publishing && p.active);
        assert!(!a.publishing && a.active);
        assert_eq!(p.address, "192.0.2.1");
        assert_eq!(a.address, "192.0.2.2");
        assert_eq!((p.time_ms, a.time_ms), (3000, 2500));
        assert_eq!(p.flashver.as_deref(), Some("WIN 23,0,0,207"));
        assert!(st
            .clients
            .iter()
            .all(|c| c.worker_pid == PID && c.avsync == 0));
        assert!(p.bytes_in > 300 && a.bytes_out > 300, "{p:?} {a:?}");
        assert!(st.bytes_in >= 300 && st.bytes_out > 2 * 300);
        assert_eq!(
            s.bytes_in,
            st.clients.iter().map(|c| c.bytes_in).sum::<u64>()
        );
        assert_eq!(
            s.bytes_out,
            st.clients.iter().map(|c| c.bytes_out).sum::<u64>()
        );
        assert_eq!(s.bw_in, 0, "first call measures nothing");
    }

    #[test]
    fn stat_reads_codec_details_from_real_sequence_headers_and_metadata() {
        let mut h = three_clients();
        let s = h.stat();
        let st = only_stream(&s);
        let v = st.video.as_ref().unwrap();
        assert_eq!((v.width, v.height), (640, 360));
        assert_eq!(v.codec, "H264");
        assert_eq!(v.profile.as_deref(), Some("High"));
        assert_eq!(v.level.as_deref(), Some("3.1"));
        assert_eq!(v.compat, Some(0));
        assert_eq!(v.frame_rate, 30.0);
        let a = st.audio.as_ref().unwrap();
        assert_eq!(a.codec, "AAC");
        assert_eq!(a.profile.as_deref(), Some("LC"));
        assert_eq!((a.channels, a.sample_rate), (Some(2), Some(48_000)));
    }

    #[test]
    fn tls_clients_show_version_and_sni_and_plain_ones_none() {
        use crate::server::TlsInfo;
        let mut h = three_clients();
        h.worker
            .set_client_tls(1, TlsInfo::new("TLSv1.3", Some("cam.example.com")));
        h.worker.set_client_tls(3, TlsInfo::new("TLSv1.2", None));
        // An unknown client: nothing happens.
        h.worker.set_client_tls(99, TlsInfo::new("TLSv1.3", None));
        let s = h.stat();
        let st = only_stream(&s);
        assert_eq!(ids(st), [1, 2, 3]);
        let tls: Vec<Option<ClientTls>> = st.clients.iter().map(|c| c.tls.clone()).collect();
        assert_eq!(
            tls,
            [
                Some(ClientTls {
                    version: "TLSv1.3".into(),
                    sni: Some("cam.example.com".into()),
                }),
                None,
                Some(ClientTls {
                    version: "TLSv1.2".into(),
                    sni: None,
                }),
            ]
        );
        // Through shared memory and into the JSON document.
        let back = StatSnapshot::decode(&s.encode()).unwrap();
        assert_eq!(back, s);
        let json = crate::stat::render_json(&back);
        assert!(json.contains(r#""tls":{"version":"TLSv1.3","sni":"cam.example.com"}"#));
        assert!(json.contains(r#""tls":{"version":"TLSv1.2","sni":null}"#));
        assert!(json.contains(r#""tls":null"#));
    }

    #[test]
    fn tls_info_drops_control_characters_and_bounds_lengths() {
        use crate::server::TlsInfo;
        let t = TlsInfo::new("TLSv1.3\n", Some("cam\r\n.example\u{7f}.com\0"));
        assert_eq!(t.version, "TLSv1.3");
        assert_eq!(t.sni.as_deref(), Some("cam.example.com"));
        assert_eq!(TlsInfo::new("TLSv1.2", Some("")).sni, None);
        assert_eq!(TlsInfo::new("TLSv1.2", Some("\u{1}\u{9b}")).sni, None);
        assert_eq!(TlsInfo::new("TLSv1.2", None).sni, None);
        let long = TlsInfo::new(&"v".repeat(100), Some(&"\u{e9}".repeat(300)));
        assert_eq!(long.version.len(), TlsInfo::MAX_VERSION_LEN);
        let sni = long.sni.unwrap();
        // Cut at a character boundary: 127 two-byte characters.
        assert_eq!(sni.len(), TlsInfo::MAX_SNI_LEN - 1);
        assert!(sni.chars().all(|c| c == '\u{e9}'));
    }

    #[test]
    fn access_log_shows_the_tls_of_a_client_and_dashes_for_a_plain_one() {
        use crate::server::TlsInfo;
        let mut h = H::new();
        h.server = server_with(
            &[
                (
                    "log_format",
                    &["tls", "$remote_addr|$ssl_protocol|$ssl_server_name"],
                ),
                ("access_log", &["logs/rtmp.log", "tls"]),
            ],
            &[],
        );
        h.connect(1, "192.0.2.1");
        h.worker.set_client_tls(
            1,
            TlsInfo::new("TLSv1.3", Some("cam.example.com\n1.2.3.4|x")),
        );
        h.connect(2, "192.0.2.2");
        h.connect(3, "192.0.2.3");
        h.worker.set_client_tls(3, TlsInfo::new("TLSv1.2", None));
        let mut lines = Vec::new();
        for id in [1, 2, 3] {
            let mut o = Outcome::default();
            h.worker.disconnect(id, h.now, &mut o);
            lines.extend(o.access.into_iter().map(|a| a.line));
        }
        assert_eq!(
            lines,
            [
                "192.0.2.1|TLSv1.3|cam.example.com1.2.3.4|x\n",
                "192.0.2.2|-|-\n",
                "192.0.2.3|TLSv1.2|-\n",
            ]
        );
    }

    #[test]
    fn stat_part_renders_as_xml_that_parses() {
        let mut h = three_clients();
        let s = h.stat();
        let xml = render_xml(&s, StatMask::ALL, None);
        let doc = roxmltree::Document::parse(&xml).unwrap();
        let stream = doc
            .descendants()
            .find(|n| n.has_tag_name("stream"))
            .unwrap();
        let child = |name: &str| {
            stream
                .children()
                .find(|n| n.has_tag_name(name))
                .and_then(|n| n.text())
                .map(str::to_string)
        };
        assert_eq!(child("name").as_deref(), Some("cam"));
        assert_eq!(child("nclients").as_deref(), Some("3"));
        let clients: Vec<_> = stream
            .children()
            .filter(|n| n.has_tag_name("client"))
            .collect();
        assert_eq!(clients.len(), 3);
        assert!(clients[0].children().any(|n| n.has_tag_name("publishing")));
        let width = doc.descendants().find(|n| n.has_tag_name("width")).unwrap();
        assert_eq!(width.text(), Some("640"));
    }

    #[test]
    fn bytes_grow_and_bandwidth_is_measured_over_at_least_a_second() {
        let mut h = three_clients();
        let first = h.stat();
        let st0 = only_stream(&first).clone();
        assert_eq!((st0.bw_in, st0.bw_out, st0.bw_video), (0, 0, 0));
        for i in 1..=10 {
            h.video(1, i * 40, video_frame(false, i, 1000));
            h.audio(1, i * 40, audio_frame(i));
        }
        h.now += 500;
        let early = h.stat();
        let st1 = only_stream(&early).clone();
        assert!(st1.bytes_in > st0.bytes_in + 10_000);
        assert!(st1.bytes_out > st0.bytes_out + 20_000);
        assert!(early.bytes_in > first.bytes_in && early.bytes_out > first.bytes_out);
        assert!(st1.clients[0].bytes_in > st0.clients[0].bytes_in);
        assert!(st1.clients[1].bytes_out > st0.clients[1].bytes_out);
        assert_eq!(st1.bw_in, 0, "half a second is too short to measure");
        h.now += 1500;
        let later = h.stat();
        let st2 = only_stream(&later);
        // Two seconds since the first reading.
        assert_eq!(st2.bw_in, (st2.bytes_in - st0.bytes_in) * 8 / 2);
        assert_eq!(st2.bw_out, (st2.bytes_out - st0.bytes_out) * 8 / 2);
        assert!(st2.bw_video > 0 && st2.bw_audio > 0);
        assert_eq!(st2.bw_video + st2.bw_audio, st2.bw_in);
        assert_eq!(later.bw_in, (later.bytes_in - first.bytes_in) * 8 / 2);
        assert_eq!(later.bw_out, (later.bytes_out - first.bytes_out) * 8 / 2);
        // Nothing moves for the next two seconds: the rate falls to 0.
        h.now += 2000;
        let idle = h.stat();
        assert_eq!((only_stream(&idle).bw_in, idle.bw_in), (0, 0));
    }

    #[test]
    fn parts_of_two_workers_merge_into_one_stream_and_survive_encoding() {
        let mut a = H::new();
        a.publisher(1, "192.0.2.1", "cam");
        a.player(2, "192.0.2.2", "cam");
        a.start(1, 1);
        let mut b = H::new();
        // Another worker's player of the same name waits (idle_streams) for its publisher.
        b.player(7, "192.0.2.7", "cam");
        let pa = a.worker.stat_part(a.now, 100);
        let pb = b.worker.stat_part(b.now, 200);
        assert!(!only_stream(&pb).publishing && only_stream(&pb).video.is_none());
        let (ea, eb) = (pa.encode(), pb.encode());
        let parts = vec![
            StatSnapshot::decode(&eb).unwrap(),
            StatSnapshot::decode(&ea).unwrap(),
        ];
        assert_eq!(parts[1], pa);
        let m = merge(parts);
        let st = only_stream(&m);
        assert_eq!(ids(st), [1, 7, 2]);
        assert!(st.publishing);
        assert_eq!(st.video.as_ref().unwrap().width, 640);
        assert_eq!(m.naccepted, 3);
        let pids: Vec<u32> = m.workers.iter().map(|w| w.pid).collect();
        assert_eq!(pids, [200, 100]);
        assert_eq!(st.clients[1].worker_pid, 200);
    }

    #[test]
    fn control_drop_of_a_subscriber_by_clientid_drops_exactly_it() {
        let mut h = three_clients();
        assert_eq!(h.control("drop/subscriber", "app=live&clientid=1"), 0);
        assert_eq!(h.control("drop/subscriber", "app=live&clientid=9"), 0);
        assert!(h.closes.is_empty());
        assert_eq!(h.control("drop/subscriber", "app=live&clientid=2"), 1);
        assert_eq!(
            h.closes,
            [(2, CloseMode::Now, "dropped by /control".to_string())]
        );
        assert!(h
            .logs
            .iter()
            .any(|l| l.client == Some(2) && l.level == LogLevel::Info));
        assert!(!h.is_open(2) && h.is_open(1) && h.is_open(3));
        let before = h.c(3).video().len();
        h.video(1, 40, video_frame(false, 2, 200));
        assert_eq!(h.c(3).video().len(), before + 1);
        assert_eq!(ids(only_stream(&h.stat())), [1, 3]);
    }

    #[test]
    fn control_drop_of_a_publisher_by_app_and_name() {
        let mut h = three_clients();
        h.publisher(4, "192.0.2.4", "other");
        assert_eq!(h.control("drop/publisher", "srv=1&app=live&name=cam"), 0);
        assert_eq!(h.control("drop/publisher", "app=vod&name=cam"), 0);
        assert_eq!(
            h.control("drop/publisher", "app=live&name=cam&addr=192.0.2.9"),
            0
        );
        assert_eq!(
            h.control("drop/publisher", "app=live&name=cam&addr=192.0.2.1"),
            1
        );
        assert!(!h.is_open(1));
        assert!(h.is_open(2) && h.is_open(3) && h.is_open(4));
        assert!(h
            .c(2)
            .user_controls()
            .contains(&UserControlEventType::StreamEof));
        let s = h.stat();
        assert!(stream(&s, "other").unwrap().publishing);
        assert!(!stream(&s, "cam").unwrap().publishing);
        // `client` selects everyone left on the stream.
        assert_eq!(h.control("drop/client", "name=cam"), 2);
    }

    #[test]
    fn control_redirect_moves_a_player_to_another_stream() {
        let mut h = H::new();
        h.publisher(1, "192.0.2.1", "cam1");
        h.publisher(2, "192.0.2.2", "cam2");
        h.player(3, "192.0.2.3", "cam1");
        h.start(1, 100);
        let key2 = h.start(2, 200);
        assert_eq!(h.c(3).video().len(), 2);
        assert_eq!(
            h.control("redirect/subscriber", "name=cam1&newname=cam2"),
            1
        );
        assert!(h.is_open(3));
        let codes = h.c(3).codes();
        let tail = &codes[codes.len() - 2..];
        assert_eq!(tail, [command::NS_PLAY_RESET, command::NS_PLAY_START]);
        // The cached start of cam2 follows: its keyframe, then its live frames only.
        let video = h.c(3).video();
        assert_eq!(video.len(), 4, "{:?}", h.c(3).media_kinds());
        assert_eq!(video[3].1, key2);
        h.video(1, 40, video_frame(false, 101, 300));
        let inter2 = video_frame(false, 201, 300);
        h.video(2, 40, inter2.clone());
        let video = h.c(3).video();
        assert_eq!(video.len(), 5);
        assert_eq!(video[4].1, inter2);
        assert_no_chunk_errors(h.c(3));
        let s = h.stat();
        assert_eq!(ids(stream(&s, "cam2").unwrap()), [2, 3]);
        assert_eq!(ids(stream(&s, "cam1").unwrap()), [1]);
        assert!(h.logs.iter().any(|l| l.client == Some(3)
            && l.text
                .contains("redirected by /control from \"live/cam1\" to \"cam2\"")));
    }

    #[test]
    fn redirect_finishes_a_message_the_player_was_half_way_through() {
        let mut h = H::new();
        h.publisher(1, "192.0.2.1", "cam1");
        h.publisher(2, "192.0.2.2", "cam2");
        h.player(3, "192.0.2.3", "cam1");
        h.start(1, 100);
        h.start(2, 200);
        // A large frame for the player, of which the socket takes only 100 bytes.
        let big = video_frame(false, 101, 20_000);
        let r = h
            .cm(1)
            .session()
            .publish_video_data(big.clone(), RtmpTimestamp::new(40), false);
        h.cm(1).absorb_one(r);
        let bytes = std::mem::take(&mut h.cm(1).to_server);
        let mut o = Outcome::default();
        h.worker.on_input(1, &bytes, h.now, &mut o);
        h.apply(o);
        let part = h.collect(3, 100);
        assert_eq!(part.len(), 100);
        h.cm(3).receive(&part);
        assert_eq!(
            h.control("redirect/subscriber", "clientid=3&newname=cam2"),
            1
        );
        let video = h.c(3).video();
        assert_no_chunk_errors(h.c(3));
        assert!(
            video.iter().any(|(_, d)| *d == big),
            "the cut frame arrives whole"
        );
        assert!(h.c(3).has_code(command::NS_PLAY_RESET));
    }

    #[test]
    fn control_redirect_republishes_a_publisher_under_the_new_name() {
        let mut h = H::new();
        h.publisher(1, "192.0.2.1", "cam");
        h.player(2, "192.0.2.2", "studio");
        h.start(1, 1);
        assert!(h.c(2).video().is_empty());
        let begins = |h: &H| {
            let uc = h.c(2).user_controls();
            uc.iter()
                .filter(|e| **e == UserControlEventType::StreamBegin)
                .count()
        };
        let before = begins(&h);
        assert_eq!(
            h.control("redirect/publisher", "app=live&name=cam&newname=studio"),
            1
        );
        assert!(h.is_open(1));
        assert_eq!(
            begins(&h),
            before + 1,
            "the waiting player hears the publisher start"
        );
        let inter = video_frame(false, 2, 300);
        h.video(1, 40, video_frame(true, 3, 300));
        h.video(1, 80, inter.clone());
        assert_eq!(h.c(2).video().last().unwrap().1, inter);
        let s = h.stat();
        assert!(stream(&s, "cam").is_none());
        let st = stream(&s, "studio").unwrap();
        assert!(st.publishing);
        assert_eq!(ids(st), [1, 2]);
        assert_no_chunk_errors(h.c(1));
    }

    #[test]
    fn redirect_to_a_name_already_published_closes_the_publisher() {
        let mut h = H::new();
        h.publisher(1, "192.0.2.1", "cam");
        h.publisher(2, "192.0.2.2", "taken");
        assert_eq!(h.control("redirect/publisher", "name=cam&newname=taken"), 1);
        assert!(!h.is_open(1) && h.is_open(2));
        assert!(h.c(1).has_code(command::NS_PUBLISH_BAD_NAME));
    }

    #[test]
    fn a_paused_player_is_still_listed_but_not_active() {
        let mut h = three_clients();
        let mut p = Vec::new();
        amf0::write_string(&mut p, "pause");
        amf0::write_number(&mut p, 0.0);
        amf0::write_null(&mut p);
        amf0::write_bool(&mut p, true);
        amf0::write_number(&mut p, 0.0);
        let mut m = bytes::BytesMut::new();
        crate::rtmp::chunk::encode_message(
            4096,
            20,
            0,
            crate::rtmp::chunk::MSG_COMMAND_AMF0,
            1,
            &p,
            &mut m,
        );
        let mut o = Outcome::default();
        h.worker.on_input(2, &m, h.now, &mut o);
        h.apply(o);
        h.pump();
        assert!(h.c(2).has_code("NetStream.Pause.Notify"));
        let s = h.stat();
        let st = only_stream(&s);
        assert_eq!(ids(st), [1, 3, 2]);
        assert!(!st.clients[2].active && st.clients[1].active);
        assert_eq!(h.control("drop/subscriber", "clientid=2"), 1);
    }

    #[test]
    fn record_requests_act_on_nothing_yet() {
        let mut h = three_clients();
        assert_eq!(h.control("record/start", "app=live&name=cam"), 0);
        assert_eq!(h.control("record/stop", "app=live&name=cam"), 0);
        assert!(h.closes.is_empty());
    }

    #[test]
    fn garbage_codec_headers_and_metadata_never_panic() {
        let key = StreamKey::new("live", "x");
        let mut state = 0x1234_5678_9abc_def1_u64;
        for i in 0..500 {
            let mut next = || {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state
            };
            let mut hub = Hub::new();
            hub.publish(&key, 1).unwrap();
            let mut junk = |first: &[u8]| {
                let mut b = first.to_vec();
                let len = (next() % 64) as usize;
                b.extend((0..len).map(|_| next() as u8));
                b
            };
            let (v, a, m) = if i % 2 == 0 {
                (junk(&[0x17, 0]), junk(&[0xaf, 0]), junk(&[2, 0, 10]))
            } else {
                let mut v = AVC_HEADER.to_vec();
                let at = 5 + (i % (AVC_HEADER.len() - 5));
                v[at] = i as u8;
                v.truncate(at + 1 + i % 7);
                (v, AAC_HEADER[..i % 7].to_vec(), junk(&[]))
            };
            hub.publisher_frame(&key, FrameKind::Data, 0, &Bytes::from(m), 4096);
            hub.publisher_frame(&key, FrameKind::Video, 0, &Bytes::from(v), 4096);
            hub.publisher_frame(&key, FrameKind::Audio, 0, &Bytes::from(a), 4096);
            if let Some(gop) = hub.gop(&key) {
                let _ = codec_meta(gop);
            }
        }
    }

    #[test]
    fn metadata_alone_describes_a_stream_without_sequence_headers() {
        let mut payload = Vec::new();
        amf0::write_string(&mut payload, "onMetaData");
        amf0::write_ecma_array_start(&mut payload, 5);
        for (k, v) in [
            ("width", 320.0),
            ("height", 240.0),
            ("framerate", 15.0),
            ("videocodecid", 4.0),
            ("audiocodecid", 2.0),
        ] {
            amf0::write_key(&mut payload, k);
            amf0::write_number(&mut payload, v);
        }
        amf0::write_key(&mut payload, "stereo");
        amf0::write_bool(&mut payload, false);
        amf0::write_object_end(&mut payload);
        let key = StreamKey::new("live", "x");
        let mut hub = Hub::new();
        hub.publish(&key, 1).unwrap();
        hub.publisher_frame(&key, FrameKind::Data, 0, &Bytes::from(payload), 4096);
        let (v, a) = codec_meta(hub.gop(&key).unwrap());
        let v = v.unwrap();
        assert_eq!((v.width, v.height, v.frame_rate), (320, 240, 15.0));
        assert_eq!(v.codec, "On2-VP6");
        let a = a.unwrap();
        assert_eq!((a.codec.as_str(), a.channels), ("MP3", Some(1)));
    }

    const HEVC_MAIN: &[u8] = include_bytes!("../media/testdata/hevc_main.hvcc");
    const HEVC_MAIN10: &[u8] = include_bytes!("../media/testdata/hevc_main10.hvcc");
    const AV1C: &[u8] = include_bytes!("../media/testdata/av1.av1c");
    const VPCC: &[u8] = include_bytes!("../media/testdata/vp9.vpcc");
    const VP9_KEY: &[u8] = include_bytes!("../media/testdata/vp9_key.head");
    const OPUS_HEAD: &[u8] = include_bytes!("../media/testdata/opus.head");
    const FLAC_INFO: &[u8] = include_bytes!("../media/testdata/flac.streaminfo");
    const AC3_FRAME: &[u8] = include_bytes!("../media/testdata/ac3.frame");
    const EAC3_FRAME: &[u8] = include_bytes!("../media/testdata/eac3.frame");

    /// An Enhanced RTMP message: the first byte, the FourCC, the body.
    fn ex(first: u8, fourcc: &[u8; 4], body: &[u8]) -> Bytes {
        let mut b = vec![first];
        b.extend_from_slice(fourcc);
        b.extend_from_slice(body);
        Bytes::from(b)
    }

    /// A video SequenceStart (keyframe, packet type 0).
    fn video_start(fourcc: &[u8; 4], record: &[u8]) -> Bytes {
        ex(0x90, fourcc, record)
    }

    /// An audio SequenceStart (SoundFormat 9, packet type 0).
    fn audio_start(fourcc: &[u8; 4], body: &[u8]) -> Bytes {
        ex(0x90, fourcc, body)
    }

    /// A video Metadata message (command frame, packet type 4) with ffmpeg's colorInfo.
    fn color_info_message(fourcc: &[u8; 4], transfer: Option<f64>, depth: Option<f64>) -> Bytes {
        let mut body = Vec::new();
        amf0::write_string(&mut body, "colorInfo");
        amf0::write_object_start(&mut body);
        amf0::write_key(&mut body, "colorConfig");
        amf0::write_object_start(&mut body);
        for (k, v) in [
            ("transferCharacteristics", transfer),
            ("bitDepth", depth),
            ("colorPrimaries", Some(9.0)),
            ("matrixCoefficients", Some(9.0)),
        ] {
            if let Some(v) = v {
                amf0::write_key(&mut body, k);
                amf0::write_number(&mut body, v);
            }
        }
        amf0::write_object_end(&mut body);
        amf0::write_key(&mut body, "hdrCll");
        amf0::write_object_start(&mut body);
        amf0::write_key(&mut body, "maxCLL");
        amf0::write_number(&mut body, 1000.0);
        amf0::write_object_end(&mut body);
        amf0::write_object_end(&mut body);
        ex(0xd4, fourcc, &body)
    }

    /// A stream fed `messages` (kind, payload) in order; its codec information.
    fn meta_of(messages: &[(FrameKind, Bytes)]) -> (Option<VideoMeta>, Option<AudioMeta>) {
        let key = StreamKey::new("live", "x");
        let mut hub = Hub::new();
        hub.publish(&key, 1).unwrap();
        for (i, (kind, m)) in messages.iter().enumerate() {
            hub.publisher_frame(&key, *kind, 40 * i as u32, m, 4096);
        }
        codec_meta(hub.gop(&key).unwrap())
    }

    #[test]
    fn stat_reads_enhanced_codec_details_from_real_records() {
        use FrameKind::{Audio, Video};
        // HEVC Main 10 + Opus, as ffmpeg 9 publishes them.
        let (v, a) = meta_of(&[
            (Video, video_start(b"hvc1", HEVC_MAIN10)),
            (Audio, audio_start(b"Opus", OPUS_HEAD)),
        ]);
        let v = v.unwrap();
        assert_eq!(v.codec, "HEVC");
        assert_eq!(v.profile.as_deref(), Some("Main 10"));
        assert_eq!(v.level.as_deref(), Some("2.0"));
        assert_eq!((v.width, v.height, v.bit_depth), (320, 240, Some(10)));
        assert_eq!((v.compat, v.hdr.as_deref()), (None, None));
        let a = a.unwrap();
        assert_eq!(a.codec, "Opus");
        assert_eq!((a.channels, a.sample_rate), (Some(1), Some(48_000)));

        let (v, _) = meta_of(&[(Video, video_start(b"hvc1", HEVC_MAIN))]);
        let v = v.unwrap();
        assert_eq!(v.profile.as_deref(), Some("Main"));
        assert_eq!(v.bit_depth, Some(8));

        // AV1 + FLAC.
        let (v, a) = meta_of(&[
            (Video, video_start(b"av01", AV1C)),
            (Audio, audio_start(b"fLaC", FLAC_INFO)),
        ]);
        let v = v.unwrap();
        assert_eq!(v.codec, "AV1");
        assert_eq!(v.profile.as_deref(), Some("Main"));
        assert_eq!(v.level.as_deref(), Some("2.0"));
        assert_eq!((v.width, v.height, v.bit_depth), (320, 240, Some(8)));
        let a = a.unwrap();
        assert_eq!(a.codec, "FLAC");
        assert_eq!((a.channels, a.sample_rate), (Some(1), Some(48_000)));

        // VP9 (its size from the first keyframe) + AC-3 (from its first cached frame).
        let (v, a) = meta_of(&[
            (Video, video_start(b"vp09", VPCC)),
            (Audio, ex(0x91, b"ac-3", AC3_FRAME)),
            (Video, ex(0x91, b"vp09", VP9_KEY)),
            (Audio, ex(0x91, b"ac-3", AC3_FRAME)),
        ]);
        let v = v.unwrap();
        assert_eq!(v.codec, "VP9");
        assert_eq!(v.profile.as_deref(), Some("Profile 0"));
        assert_eq!(v.level.as_deref(), Some("2.0"));
        assert_eq!((v.width, v.height, v.bit_depth), (320, 240, Some(8)));
        let a = a.unwrap();
        assert_eq!(a.codec, "AC3");
        assert_eq!((a.channels, a.sample_rate), (Some(1), Some(48_000)));

        // An audio-only E-AC-3 stream keeps its tail.
        let (v, a) = meta_of(&[(Audio, ex(0x91, b"ec-3", EAC3_FRAME))]);
        assert!(v.is_none());
        let a = a.unwrap();
        assert_eq!(a.codec, "EAC3");
        assert_eq!((a.channels, a.sample_rate), (Some(1), Some(48_000)));
    }

    #[test]
    fn enhanced_codecs_without_headers_or_frames_fall_back_to_metadata() {
        let mut payload = Vec::new();
        amf0::write_string(&mut payload, "onMetaData");
        amf0::write_ecma_array_start(&mut payload, 4);
        for (k, v) in [
            ("videocodecid", f64::from(u32::from_be_bytes(*b"hvc1"))),
            ("audiocodecid", f64::from(u32::from_be_bytes(*b"ac-3"))),
            ("audiosamplerate", 44_100.0),
            ("audiochannels", 6.0),
        ] {
            amf0::write_key(&mut payload, k);
            amf0::write_number(&mut payload, v);
        }
        amf0::write_object_end(&mut payload);
        let (v, a) = meta_of(&[(FrameKind::Data, Bytes::from(payload))]);
        assert_eq!(v.unwrap().codec, "HEVC");
        let a = a.unwrap();
        assert_eq!(a.codec, "AC3");
        assert_eq!((a.channels, a.sample_rate), (Some(6), Some(44_100)));
    }

    #[test]
    fn hdr_comes_from_color_info_or_the_vp9_record() {
        use FrameKind::Video;
        let hevc = || (Video, video_start(b"hvc1", HEVC_MAIN10));
        let key = || (Video, ex(0x91, b"hvc1", &[0, 0, 0, 0, 0, 0, 1, 0x26]));
        for (transfer, hdr) in [(16.0, Some("PQ")), (18.0, Some("HLG")), (1.0, None)] {
            // ffmpeg sends colorInfo once, before the first keyframe; later GOPs keep it.
            let (v, _) = meta_of(&[
                hevc(),
                (Video, color_info_message(b"hvc1", Some(transfer), None)),
                key(),
                key(),
            ]);
            let v = v.unwrap();
            assert_eq!(v.hdr.as_deref(), hdr, "transfer {transfer}");
            assert_eq!(v.bit_depth, Some(10));
        }
        // colorInfo of another codec says nothing about this one.
        let (v, _) = meta_of(&[
            hevc(),
            (Video, color_info_message(b"av01", Some(16.0), None)),
        ]);
        assert_eq!(v.unwrap().hdr, None);
        // Its bitDepth fills in where the record has none (VP9 without a readable record).
        let (v, _) = meta_of(&[
            (Video, video_start(b"vp09", &VPCC[..4])),
            (Video, color_info_message(b"vp09", Some(18.0), Some(10.0))),
        ]);
        let v = v.unwrap();
        assert_eq!((v.hdr.as_deref(), v.bit_depth), (Some("HLG"), Some(10)));
        // vpcC carries the transfer itself.
        let mut pq = VPCC.to_vec();
        pq[8] = 16;
        let (v, _) = meta_of(&[(Video, video_start(b"vp09", &pq))]);
        assert_eq!(v.unwrap().hdr.as_deref(), Some("PQ"));
    }

    #[test]
    fn other_video_tracks_of_a_multitrack_publisher_are_listed() {
        use FrameKind::Video;
        // Track 0 is legacy AVC; tracks 2 and 1 are HEVC and AV1 (OneTrack SequenceStart).
        let track = |id: u8, fourcc: &[u8; 4], record: &[u8]| {
            let mut b = vec![0x96, 0x00];
            b.extend_from_slice(fourcc);
            b.push(id);
            b.extend_from_slice(record);
            (Video, Bytes::from(b))
        };
        let (v, _) = meta_of(&[
            (Video, Bytes::from_static(AVC_HEADER)),
            track(2, b"hvc1", HEVC_MAIN),
            track(1, b"av01", AV1C),
            track(2, b"hvc1", HEVC_MAIN10),
            (Video, video_frame(true, 1, 64)),
        ]);
        let v = v.unwrap();
        assert_eq!((v.codec.as_str(), v.width, v.height), ("H264", 640, 360));
        let tracks: Vec<_> = v
            .tracks
            .iter()
            .map(|t| {
                (
                    t.id,
                    t.codec.as_str(),
                    t.width,
                    t.height,
                    t.profile.as_deref(),
                    t.level.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            tracks,
            [
                (1, "AV1", 320, 240, Some("Main"), Some("2.0")),
                (2, "HEVC", 320, 240, Some("Main 10"), Some("2.0")),
            ]
        );
        // Bounded: a publisher inventing tracks gets a few listed.
        let mut many = vec![(Video, Bytes::from_static(AVC_HEADER))];
        many.extend((1..=40u8).map(|id| track(id, b"hvc1", HEVC_MAIN)));
        let (v, _) = meta_of(&many);
        assert_eq!(v.unwrap().tracks.len(), crate::live::gop::MAX_EXTRA_TRACKS);
    }

    #[test]
    fn garbage_enhanced_records_never_panic() {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let videos: [(&[u8; 4], &[u8]); 4] = [
            (b"hvc1", HEVC_MAIN10),
            (b"av01", AV1C),
            (b"vp09", VPCC),
            (b"avc1", &AVC_HEADER[5..]),
        ];
        let audios: [(&[u8; 4], &[u8]); 4] = [
            (b"Opus", OPUS_HEAD),
            (b"fLaC", FLAC_INFO),
            (b"ac-3", AC3_FRAME),
            (b"ec-3", EAC3_FRAME),
        ];
        for i in 0..600usize {
            let mut cut = |record: &[u8]| {
                let mut r = record[..(next() as usize) % (record.len() + 1)].to_vec();
                if let Some(b) = r.get_mut((next() as usize) % (record.len() + 1)) {
                    *b = next() as u8;
                }
                r
            };
            let (vf, vr) = videos[i % 4];
            let (af, ar) = audios[(i / 4) % 4];
            let first = [0x90, 0x91, 0x96, 0xd4][(i / 16) % 4];
            let mut junk_meta = Vec::new();
            amf0::write_string(&mut junk_meta, "colorInfo");
            junk_meta.extend(cut(&color_info_message(vf, Some(16.0), Some(10.0))[5..]));
            let messages = [
                (FrameKind::Video, ex(first, vf, &cut(vr))),
                (FrameKind::Video, ex(0xd4, vf, &junk_meta)),
                (
                    FrameKind::Video,
                    Bytes::from(cut(&[0x96, 0, b'h', b'v', b'c', b'1', 3])),
                ),
                (FrameKind::Audio, ex(0x90 | (i % 2) as u8, af, &cut(ar))),
                (FrameKind::Video, ex(0x91, vf, &cut(VP9_KEY))),
                (FrameKind::Audio, ex(0x91, af, &cut(ar))),
            ];
            let _ = meta_of(&messages);
        }
    }
}
