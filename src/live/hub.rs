//! The live fan-out of one worker process: who publishes what, which players watch it, and
//! moving each publisher message into every player's queue.
//!
//! "Which streams exist and who publishes them" lives in [`Registry`], apart from "this
//! worker's players, caches and counters", so the registry can later move to shared memory
//! for many workers without touching the fan-out.

use std::collections::HashMap;
use std::fmt;

use bytes::{Bytes, BytesMut};
use thiserror::Error;

use super::frame::{ClientId, Delivery, Frame, FrameKind};
use super::gop::GopCache;
use super::queue::{PlayerQueue, DEFAULT_OUT_QUEUE};
use crate::media::flv;
use crate::rtmp::ertmp::{Caps, ExTag, Wire};

/// The `chunk_size` directive's default: the chunk size players are told to expect.
pub const DEFAULT_CHUNK_SIZE: u32 = 4096;

/// Errors of the live fan-out.
#[derive(Debug, Error)]
pub enum LiveError {
    #[error("live: stream \"{0}\" is already being published")]
    AlreadyPublishing(StreamKey),
    #[error("live: stream \"{0}\" not found")]
    StreamNotFound(StreamKey),
    /// The player cannot take the stream's main track (see [`Refusal`]).
    #[error("live: stream \"{key}\": {why}")]
    Unsupported { key: StreamKey, why: String },
}

/// A live stream's name. Application names compare exactly (as the C module does); `server`
/// tells apart same-named applications of different `server{}` blocks.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StreamKey {
    pub server: u32,
    pub app: String,
    pub name: String,
}

impl StreamKey {
    pub fn new(app: impl Into<String>, name: impl Into<String>) -> Self {
        Self::in_server(0, app, name)
    }

    pub fn in_server(server: u32, app: impl Into<String>, name: impl Into<String>) -> Self {
        StreamKey {
            server,
            app: app.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for StreamKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.app, self.name)
    }
}

/// Which streams are published and by whom. Kept apart from the per-worker fan-out state so
/// it can move to shared memory when streams must be visible to every worker.
#[derive(Debug, Default)]
pub struct Registry {
    publishers: HashMap<StreamKey, ClientId>,
}

impl Registry {
    pub fn publisher(&self, key: &StreamKey) -> Option<ClientId> {
        self.publishers.get(key).copied()
    }

    fn claim(&mut self, key: &StreamKey, publisher: ClientId) -> Result<(), LiveError> {
        if self.publishers.contains_key(key) {
            return Err(LiveError::AlreadyPublishing(key.clone()));
        }
        self.publishers.insert(key.clone(), publisher);
        Ok(())
    }

    /// Releases `key` if `publisher` holds it.
    fn release(&mut self, key: &StreamKey, publisher: ClientId) -> bool {
        if self.publisher(key) == Some(publisher) {
            self.publishers.remove(key);
            true
        } else {
            false
        }
    }

    pub fn len(&self) -> usize {
        self.publishers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.publishers.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&StreamKey, ClientId)> {
        self.publishers.iter().map(|(k, v)| (k, *v))
    }
}

/// Per-player settings from the application's config.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlayerOptions {
    /// Start video at a keyframe (`wait_key`; on by default in the C module's code).
    pub wait_key: bool,
    /// Hold audio back until the player's first video frame (`wait_video`).
    pub wait_video: bool,
    /// Accept players on streams nobody publishes, and keep them when the publisher leaves
    /// (`idle_streams`).
    pub idle_streams: bool,
    /// Message bound of the player's queue (`out_queue`).
    pub out_queue: usize,
    /// The chunk size this player was told (`chunk_size`); joining messages are encoded with
    /// it. Must equal the one passed to [`Hub::publisher_frame`].
    pub chunk_size: u32,
    /// What the player announced about Enhanced RTMP in `connect`: which messages it may get.
    pub caps: Caps,
    /// RTMP chunks or HTTP-FLV tags (framed once per stream and form, payloads shared).
    pub delivery: Delivery,
}

impl Default for PlayerOptions {
    fn default() -> Self {
        PlayerOptions {
            wait_key: true,
            wait_video: false,
            idle_streams: true,
            out_queue: DEFAULT_OUT_QUEUE,
            chunk_size: DEFAULT_CHUNK_SIZE,
            caps: Caps::LEGACY,
            delivery: Delivery::Rtmp,
        }
    }
}

/// What the glue must tell a player after a publisher event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlayerNotice {
    /// A publisher started on the stream this player waits for (send Play.Start /
    /// PublishNotify); its frames follow.
    PublisherStarted,
    /// The publisher left; the player stays and waits (send UnpublishNotify / Play.Stop).
    PublisherLeft,
    /// The publisher left and `idle_streams` is off: close the player's connection.
    Drop,
}

/// Result of [`Hub::play`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlayJoin {
    /// Someone publishes the stream now (else the player waits for a publisher).
    pub live: bool,
    /// The player's queue is not empty: post a write event.
    pub woken: bool,
}

/// Counters of one stream on this worker (for /stat).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamStats {
    pub publisher: Option<ClientId>,
    pub bytes_in: u64,
    pub frames_in: u64,
    pub audio_frames: u64,
    pub video_frames: u64,
    pub players: usize,
    pub cached_frames: usize,
    pub cached_bytes: usize,
}

/// Counters of one player (for /stat).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlayerStats {
    pub playing: bool,
    pub bytes_out: u64,
    pub dropped: u64,
    pub queued_messages: usize,
    pub queued_bytes: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PlayerState {
    /// No publisher yet (or it left); nothing is delivered.
    Waiting,
    Playing,
    /// Publisher left with `idle_streams` off: the glue is closing the connection.
    Detached,
    /// The stream's main track is in a form the player did not announce: the glue tells it
    /// and closes the connection; nothing more is delivered.
    Refused,
}

/// What one player does with one message, given what it announced in `connect`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pick {
    Take,
    /// Leave this message out (a track or an extension the player cannot read).
    Skip,
    /// The player cannot read the stream's main track: it has nothing to play.
    Refuse(ExTag),
}

/// Decides for one player from the message's precomputed [`Wire`] (never re-parses).
/// Enhanced messages the player did not announce never reach it. The main track decides
/// between leaving a message out and refusing the player: its video (sequence start or coded
/// frames; multitrack messages never count), or the coded audio of a stream without video.
/// `has_video`: the stream has shown video.
pub fn pick(caps: &Caps, kind: FrameKind, wire: &Wire, has_video: bool) -> Pick {
    let Some(t) = wire.enhanced() else {
        return Pick::Take;
    };
    if caps.takes(wire) {
        return Pick::Take;
    }
    // A stream's first audio header may come before its video one: audio decides only by
    // coded frames.
    let main = !t.multitrack
        && match kind {
            FrameKind::Video => t.start || t.coded,
            FrameKind::Audio => t.coded && !has_video,
            FrameKind::Data | FrameKind::Control => false,
        };
    if main {
        Pick::Refuse(*t)
    } else {
        Pick::Skip
    }
}

#[derive(Debug)]
struct Player {
    key: StreamKey,
    opts: PlayerOptions,
    queue: PlayerQueue,
    state: PlayerState,
    /// Video has started for this player (a keyframe, or any frame without `wait_key`).
    video_started: bool,
}

impl Player {
    /// Applies `wait_key` and `wait_video`; true when the frame goes to this player.
    fn admit(&mut self, f: &Frame) -> bool {
        if f.sequence_header {
            return true;
        }
        match f.kind {
            FrameKind::Video => {
                if !self.video_started {
                    if f.keyframe || !self.opts.wait_key {
                        self.video_started = true;
                    } else {
                        return false;
                    }
                }
                true
            }
            FrameKind::Audio => self.video_started || !self.opts.wait_video,
            FrameKind::Data | FrameKind::Control => true,
        }
    }

    /// Queues a live frame; Ok(true) when the queue went from empty to non-empty, Err when
    /// the player must be refused (it is then marked so and gets nothing more).
    fn deliver(&mut self, f: &Frame, has_video: bool) -> Result<bool, ExTag> {
        if self.state != PlayerState::Playing {
            return Ok(false);
        }
        match pick(&self.opts.caps, f.kind, &f.wire, has_video) {
            Pick::Take => {}
            Pick::Skip => return Ok(false),
            Pick::Refuse(t) => {
                self.state = PlayerState::Refused;
                return Err(t);
            }
        }
        if !self.admit(f) {
            return Ok(false);
        }
        let was_empty = self.queue.is_empty();
        if f.is_mandatory() {
            self.queue.push_mandatory(f.clone());
        } else {
            self.queue.push_media(f.clone());
        }
        Ok(was_empty && !self.queue.is_empty())
    }

    /// Queues the cached start of a stream: metadata at timestamp 0 (ffmpeg's FLV reader
    /// takes `onMetaData` at any other timestamp for a subtitle stream), codec headers
    /// re-encoded at the first cached frame's timestamp, then the cached frames (shared).
    /// Filtered like live messages ([`pick`]); Err when the player must be refused.
    fn start_from_cache(&mut self, gop: &GopCache, scratch: &mut BytesMut) -> Result<(), ExTag> {
        let ts = gop.start_timestamp();
        let cs = self.opts.chunk_size;
        let caps = self.opts.caps;
        let has_video = gop.has_video();
        let headers = [
            (FrameKind::Data, gop.metadata(), Wire::Legacy),
            (
                FrameKind::Video,
                gop.video_header(),
                gop.video_header_wire(),
            ),
            (
                FrameKind::Audio,
                gop.audio_header(),
                gop.audio_header_wire(),
            ),
        ];
        // Decide before queueing anything, so a refused player gets only its refusal.
        for (kind, payload, wire) in headers {
            if payload.is_none() {
                continue;
            }
            if let Pick::Refuse(t) = pick(&caps, kind, &wire, has_video) {
                return Err(t);
            }
        }
        for f in gop.frames() {
            if let Pick::Refuse(t) = pick(&caps, f.kind, &f.wire, has_video) {
                return Err(t);
            }
        }
        for (kind, payload, wire) in headers {
            let Some(payload) = payload else { continue };
            if pick(&caps, kind, &wire, has_video) != Pick::Take {
                continue;
            }
            let at = if kind == FrameKind::Data { 0 } else { ts };
            let mut f = Frame::encode(kind, at, payload, cs, scratch);
            f.sequence_header = kind != FrameKind::Data;
            f.wire = wire;
            self.queue
                .push_burst(f.for_delivery(self.opts.delivery, scratch));
        }
        for f in gop.frames() {
            if pick(&caps, f.kind, &f.wire, has_video) == Pick::Take && self.admit(f) {
                self.queue
                    .push_burst(f.for_delivery(self.opts.delivery, scratch));
            }
        }
        Ok(())
    }

    fn stats(&self) -> PlayerStats {
        PlayerStats {
            playing: self.state == PlayerState::Playing,
            bytes_out: self.queue.bytes_out(),
            dropped: self.queue.dropped(),
            queued_messages: self.queue.len(),
            queued_bytes: self.queue.queued_bytes(),
        }
    }
}

/// This worker's view of one stream.
#[derive(Debug, Default)]
struct LocalStream {
    players: Vec<ClientId>,
    gop: GopCache,
    bytes_in: u64,
    frames_in: u64,
    audio_frames: u64,
    video_frames: u64,
}

impl LocalStream {
    fn reset_for_publisher(&mut self) {
        self.gop.clear();
        self.bytes_in = 0;
        self.frames_in = 0;
        self.audio_frames = 0;
        self.video_frames = 0;
    }

    fn count(&mut self, kind: FrameKind, len: usize) {
        self.bytes_in = self.bytes_in.saturating_add(len as u64);
        self.frames_in = self.frames_in.saturating_add(1);
        match kind {
            FrameKind::Audio => self.audio_frames = self.audio_frames.saturating_add(1),
            FrameKind::Video => self.video_frames = self.video_frames.saturating_add(1),
            _ => {}
        }
    }
}

/// What the fan-out needs to know about a publisher message, from one parse of its header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Class {
    pub keyframe: bool,
    pub sequence_header: bool,
    /// Legacy or Enhanced RTMP header: which players may take it.
    pub wire: Wire,
}

/// Keyframe and sequence-header flags and the header form of a publisher message.
/// Multitrack messages are forwarded as plain frames: only the main track decides where
/// players can start.
pub fn classify(kind: FrameKind, payload: &[u8]) -> Class {
    match kind {
        FrameKind::Video => {
            let tag = flv::parse_video(payload).ok();
            let main = tag.filter(|t| t.multitrack.is_none());
            Class {
                keyframe: main.is_some_and(|t| t.is_keyframe()),
                sequence_header: main.is_some_and(|t| t.is_sequence_header()),
                wire: Wire::of_video(payload, tag.as_ref()),
            }
        }
        FrameKind::Audio => {
            let tag = flv::parse_audio(payload).ok();
            Class {
                keyframe: false,
                sequence_header: tag
                    .filter(|t| t.multitrack.is_none())
                    .is_some_and(|t| t.is_sequence_header()),
                wire: Wire::of_audio(payload, tag.as_ref()),
            }
        }
        FrameKind::Data | FrameKind::Control => Class::default(),
    }
}

/// The live fan-out of one worker process (single-threaded, like the worker).
#[derive(Debug, Default)]
pub struct Hub {
    registry: Registry,
    streams: HashMap<StreamKey, LocalStream>,
    players: HashMap<ClientId, Player>,
    /// Encoding buffer frames are split off from (see [`super::frame::ENCODE_BLOCK`]).
    scratch: BytesMut,
    /// Reused result buffer of [`Hub::publisher_frame`].
    woken: Vec<ClientId>,
    /// Players [`Hub::publisher_frame`] refused, with why (see [`Hub::take_refused`]).
    refused: Vec<(ClientId, String)>,
}

impl Hub {
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts publishing `key`. Players waiting for it are returned with
    /// [`PlayerNotice::PublisherStarted`].
    pub fn publish(
        &mut self,
        key: &StreamKey,
        publisher: ClientId,
    ) -> Result<Vec<(ClientId, PlayerNotice)>, LiveError> {
        self.registry.claim(key, publisher)?;
        let stream = self.streams.entry(key.clone()).or_default();
        stream.reset_for_publisher();
        let mut notices = Vec::new();
        for id in &stream.players {
            if let Some(p) = self.players.get_mut(id) {
                if p.state == PlayerState::Waiting {
                    p.state = PlayerState::Playing;
                    p.video_started = false;
                    p.queue.reset_skip();
                    notices.push((*id, PlayerNotice::PublisherStarted));
                }
            }
        }
        Ok(notices)
    }

    /// Sets what `key`'s start cache may hold (the publishing application's `gop_cache`).
    pub fn set_start_cache(&mut self, key: &StreamKey, limits: super::gop::StartCache) {
        if let Some(stream) = self.streams.get_mut(key) {
            stream.gop.set_limits(limits);
        }
    }

    /// Ends `publisher`'s publishing of `key` (ignored if it does not publish it). Returns
    /// what to tell each player.
    pub fn unpublish(
        &mut self,
        key: &StreamKey,
        publisher: ClientId,
    ) -> Vec<(ClientId, PlayerNotice)> {
        let mut notices = Vec::new();
        if !self.registry.release(key, publisher) {
            return notices;
        }
        let Some(stream) = self.streams.get_mut(key) else {
            return notices;
        };
        stream.gop.clear();
        let players = &mut self.players;
        stream.players.retain(|id| {
            let Some(p) = players.get_mut(id) else {
                return false;
            };
            if p.state == PlayerState::Refused {
                // Being closed by the glue: nothing more to tell it.
                return true;
            }
            p.video_started = false;
            if p.opts.idle_streams {
                p.state = PlayerState::Waiting;
                notices.push((*id, PlayerNotice::PublisherLeft));
                true
            } else {
                p.state = PlayerState::Detached;
                notices.push((*id, PlayerNotice::Drop));
                false
            }
        });
        if stream.players.is_empty() {
            self.streams.remove(key);
        }
        notices
    }

    /// Adds a player of `key`. `prelude` (status messages the glue built) is queued first;
    /// when the stream is live, the cached start follows (metadata, codec headers, the GOP).
    /// A client that already plays something is moved.
    pub fn play(
        &mut self,
        key: StreamKey,
        player: ClientId,
        opts: PlayerOptions,
        prelude: impl IntoIterator<Item = Bytes>,
    ) -> Result<PlayJoin, LiveError> {
        let live = self.registry.publisher(&key).is_some();
        if !live && !opts.idle_streams {
            return Err(LiveError::StreamNotFound(key));
        }
        let mut p = Player {
            key: key.clone(),
            opts,
            queue: PlayerQueue::new(opts.out_queue),
            state: PlayerState::Waiting,
            video_started: false,
        };
        for b in prelude {
            p.queue.push_mandatory(Frame::control(b));
        }
        if live {
            if let Some(stream) = self.streams.get(&key) {
                if let Err(t) = p.start_from_cache(&stream.gop, &mut self.scratch) {
                    let why = opts.caps.refusal(&t);
                    return Err(LiveError::Unsupported { key, why });
                }
            }
            p.state = PlayerState::Playing;
        }
        self.stop_play(player);
        self.streams.entry(key).or_default().players.push(player);
        let woken = !p.queue.is_empty();
        self.players.insert(player, p);
        Ok(PlayJoin { live, woken })
    }

    /// Removes a player (idempotent). Returns whether it existed.
    pub fn stop_play(&mut self, player: ClientId) -> bool {
        let Some(p) = self.players.remove(&player) else {
            return false;
        };
        if let Some(stream) = self.streams.get_mut(&p.key) {
            stream.players.retain(|id| *id != player);
            if stream.players.is_empty() && self.registry.publisher(&p.key).is_none() {
                self.streams.remove(&p.key);
            }
        }
        true
    }

    /// Fans one publisher message out: encodes it once, updates the stream's start cache and
    /// queues it for every player. Returns the players whose queue went from empty to
    /// non-empty (post a write event for them). Messages of streams nobody publishes, empty
    /// media messages and `Control` are ignored.
    pub fn publisher_frame(
        &mut self,
        key: &StreamKey,
        kind: FrameKind,
        timestamp: u32,
        payload: &Bytes,
        chunk_size: u32,
    ) -> &[ClientId] {
        self.woken.clear();
        if kind == FrameKind::Control
            || payload.is_empty()
            || self.registry.publisher(key).is_none()
        {
            return &self.woken;
        }
        let Some(stream) = self.streams.get_mut(key) else {
            return &self.woken;
        };
        let class = classify(kind, payload);
        let mut frame = Frame::encode(kind, timestamp, payload, chunk_size, &mut self.scratch);
        frame.keyframe = class.keyframe;
        frame.sequence_header = class.sequence_header;
        frame.wire = class.wire;
        stream.count(kind, payload.len());
        stream.gop.update(&frame, payload);
        let has_video = stream.gop.has_video();
        // HTTP-FLV players' form of this frame, made once per form on first need.
        let (mut flv_plain, mut flv_chunked) = (None, None);
        for id in &stream.players {
            if let Some(p) = self.players.get_mut(id) {
                let form = match p.opts.delivery {
                    Delivery::Rtmp => &frame,
                    Delivery::Flv { chunked } => {
                        let slot = if chunked {
                            &mut flv_chunked
                        } else {
                            &mut flv_plain
                        };
                        slot.get_or_insert_with(|| frame.to_flv(chunked, &mut self.scratch))
                    }
                };
                match p.deliver(form, has_video) {
                    Ok(true) => self.woken.push(*id),
                    Ok(false) => {}
                    Err(t) => self.refused.push((*id, p.opts.caps.refusal(&t))),
                }
            }
        }
        &self.woken
    }

    /// Players refused since the last call because the stream's main track is in a form they
    /// did not announce, with why ("stream is HEVC (hvc1); ..."). They get nothing more: the
    /// glue sends them `NetStream.Play.Failed` and closes them.
    pub fn take_refused(&mut self) -> Vec<(ClientId, String)> {
        std::mem::take(&mut self.refused)
    }

    /// Queues a message the glue built for one player (status, user control). Returns true
    /// when the queue went from empty to non-empty.
    pub fn enqueue_control(&mut self, player: ClientId, chunked: Bytes) -> bool {
        let Some(p) = self.players.get_mut(&player) else {
            return false;
        };
        let was_empty = p.queue.is_empty();
        p.queue.push_mandatory(Frame::control(chunked));
        was_empty && !p.queue.is_empty()
    }

    pub fn queue(&self, player: ClientId) -> Option<&PlayerQueue> {
        self.players.get(&player).map(|p| &p.queue)
    }

    pub fn queue_mut(&mut self, player: ClientId) -> Option<&mut PlayerQueue> {
        self.players.get_mut(&player).map(|p| &mut p.queue)
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn is_publishing(&self, key: &StreamKey) -> bool {
        self.registry.publisher(key).is_some()
    }

    /// The start cache of a stream present on this worker.
    pub fn gop(&self, key: &StreamKey) -> Option<&GopCache> {
        self.streams.get(key).map(|s| &s.gop)
    }

    pub fn stream_stats(&self, key: &StreamKey) -> Option<StreamStats> {
        self.streams.get(key).map(|s| self.stats_of(key, s))
    }

    /// Every stream this worker knows (published here or watched here).
    pub fn streams(&self) -> impl Iterator<Item = (&StreamKey, StreamStats)> + '_ {
        self.streams.iter().map(|(k, s)| (k, self.stats_of(k, s)))
    }

    fn stats_of(&self, key: &StreamKey, s: &LocalStream) -> StreamStats {
        StreamStats {
            publisher: self.registry.publisher(key),
            bytes_in: s.bytes_in,
            frames_in: s.frames_in,
            audio_frames: s.audio_frames,
            video_frames: s.video_frames,
            players: s.players.len(),
            cached_frames: s.gop.len(),
            cached_bytes: s.gop.bytes(),
        }
    }

    pub fn player_stats(&self, player: ClientId) -> Option<PlayerStats> {
        self.players.get(&player).map(Player::stats)
    }

    /// The players of a stream with their counters.
    pub fn players_of<'a>(
        &'a self,
        key: &StreamKey,
    ) -> impl Iterator<Item = (ClientId, PlayerStats)> + 'a {
        let ids: &'a [ClientId] = self.streams.get(key).map_or(&[], |s| &s.players);
        ids.iter()
            .filter_map(|id| self.players.get(id).map(|p| (*id, p.stats())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::IoSlice;

    const CS: u32 = 4096;
    const META: &[u8] = b"\x02\x00\x0aonMetaData\x08\x00\x00\x00\x00";
    const AVC_HEADER: &[u8] = &[0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1f, 0xff];
    const AAC_HEADER: &[u8] = &[0xaf, 0, 0x12, 0x10];
    const KEY: &[u8] = &[0x17, 1, 0, 0, 0, 0, 0, 0, 1, 0x65];
    const INTER: &[u8] = &[0x27, 1, 0, 0, 0, 0, 0, 0, 1, 0x41];
    const AAC: &[u8] = &[0xaf, 1, 0x21, 0x10];

    fn key() -> StreamKey {
        StreamKey::new("live", "cam")
    }

    fn opts() -> PlayerOptions {
        PlayerOptions {
            chunk_size: CS,
            ..PlayerOptions::default()
        }
    }

    fn send(hub: &mut Hub, kind: FrameKind, ts: u32, payload: &[u8]) -> Vec<ClientId> {
        hub.publisher_frame(&key(), kind, ts, &Bytes::copy_from_slice(payload), CS)
            .to_vec()
    }

    /// A publisher that sent metadata, headers and two GOPs.
    fn live_hub() -> Hub {
        let mut hub = Hub::new();
        hub.publish(&key(), 1).unwrap();
        send(&mut hub, FrameKind::Data, 0, META);
        send(&mut hub, FrameKind::Video, 0, AVC_HEADER);
        send(&mut hub, FrameKind::Audio, 0, AAC_HEADER);
        send(&mut hub, FrameKind::Video, 0, KEY);
        send(&mut hub, FrameKind::Audio, 20, AAC);
        send(&mut hub, FrameKind::Video, 40, INTER);
        send(&mut hub, FrameKind::Video, 1000, KEY);
        send(&mut hub, FrameKind::Audio, 1010, AAC);
        send(&mut hub, FrameKind::Video, 1040, INTER);
        hub
    }

    fn queued(hub: &Hub, player: ClientId) -> Vec<(FrameKind, u32, bool, bool)> {
        hub.queue(player)
            .unwrap()
            .iter()
            .map(|f| (f.kind, f.timestamp, f.keyframe, f.sequence_header))
            .collect()
    }

    /// The timestamp field of the type-0 header in an encoded message.
    fn wire_timestamp(f: &Frame) -> u32 {
        let w = f.wire_bytes();
        u32::from_be_bytes([0, w[1], w[2], w[3]])
    }

    fn drain(hub: &mut Hub, player: ClientId) {
        let q = hub.queue_mut(player).unwrap();
        let n = q.queued_bytes();
        q.advance(n);
    }

    #[test]
    fn new_player_gets_metadata_headers_and_gop_from_the_keyframe() {
        let mut hub = live_hub();
        let join = hub.play(key(), 10, opts(), []).unwrap();
        assert_eq!(
            join,
            PlayJoin {
                live: true,
                woken: true
            }
        );
        use FrameKind::*;
        assert_eq!(
            queued(&hub, 10),
            [
                (Data, 0, false, false),
                (Video, 1000, false, true),
                (Audio, 1000, false, true),
                (Video, 1000, true, false),
                (Audio, 1010, false, false),
                (Video, 1040, false, false),
            ]
        );
        let q = hub.queue(10).unwrap();
        let wire: Vec<u32> = q.iter().map(wire_timestamp).collect();
        assert!(wire.windows(2).all(|w| w[0] <= w[1]), "{wire:?}");
        // The re-encoded header carries the payload unchanged.
        let vh = q.iter().nth(1).unwrap();
        assert_eq!(&vh.wire_bytes()[12..], AVC_HEADER);
        assert_eq!(vh.wire_bytes()[0], 7);
    }

    /// The bytes an HTTP-FLV player's queue holds, in order.
    fn flv_body(hub: &Hub, player: ClientId) -> Vec<u8> {
        hub.queue(player)
            .unwrap()
            .iter()
            .flat_map(|f| f.wire_bytes().to_vec())
            .collect()
    }

    /// (type, timestamp, payload) of every FLV tag in `body` (after a 13-byte file header).
    fn flv_tags(body: &[u8]) -> Vec<(u8, u32, Vec<u8>)> {
        assert_eq!(&body[..3], b"FLV");
        let mut at = 13;
        let mut tags = Vec::new();
        while at < body.len() {
            let len = u32::from_be_bytes([0, body[at + 1], body[at + 2], body[at + 3]]) as usize;
            let ts = u32::from_be_bytes([body[at + 7], body[at + 4], body[at + 5], body[at + 6]]);
            tags.push((body[at], ts, body[at + 11..at + 11 + len].to_vec()));
            let prev = &body[at + 11 + len..at + 15 + len];
            assert_eq!(prev, &(11 + len as u32).to_be_bytes());
            at += 15 + len;
        }
        tags
    }

    #[test]
    fn flv_players_get_the_cached_start_and_live_tags_around_shared_payloads() {
        let mut hub = live_hub();
        let flv = PlayerOptions {
            delivery: Delivery::Flv { chunked: false },
            ..opts()
        };
        let header = crate::live::httpflv::file_header(true, true, false);
        hub.play(key(), 7, flv, [header]).unwrap();
        hub.play(key(), 8, opts(), std::iter::empty()).unwrap();
        let payload = Bytes::copy_from_slice(INTER);
        hub.publisher_frame(&key(), FrameKind::Video, 1080, &payload, CS);
        let tags = flv_tags(&flv_body(&hub, 7));
        let summary: Vec<(u8, u32)> = tags.iter().map(|(t, ts, _)| (*t, *ts)).collect();
        // Metadata at 0, headers at the GOP's start, the GOP from its keyframe, then live.
        assert_eq!(
            summary,
            [
                (18, 0),
                (9, 1000),
                (8, 1000),
                (9, 1000),
                (8, 1010),
                (9, 1040),
                (9, 1080)
            ]
        );
        assert_eq!(tags[0].2, META);
        assert_eq!(tags[1].2, AVC_HEADER);
        assert_eq!(tags[3].2, KEY);
        // The live frame's payload is the publisher's buffer in both players' queues.
        let last = |id| {
            hub.queue(id)
                .unwrap()
                .iter()
                .last()
                .unwrap()
                .payload
                .as_ptr()
        };
        assert_eq!(last(7), payload.as_ptr());
        assert_eq!(last(8), payload.as_ptr());
        // The RTMP player's queue is unchanged by the FLV one.
        assert_eq!(queued(&hub, 8).len(), 7);
    }

    #[test]
    fn chunked_and_plain_flv_players_share_one_view_per_form() {
        let mut hub = live_hub();
        for (id, chunked) in [(7, true), (8, true), (9, false)] {
            let o = PlayerOptions {
                delivery: Delivery::Flv { chunked },
                ..opts()
            };
            hub.play(key(), id, o, std::iter::empty()).unwrap();
        }
        send(&mut hub, FrameKind::Audio, 1050, AAC);
        let head = |id| {
            let f = hub.queue(id).unwrap().iter().last().unwrap().clone();
            f.wire_bytes()
        };
        assert!(head(7).starts_with(b"13\r\n\x08"));
        assert_eq!(head(7), head(8));
        assert_eq!(head(9)[0], 8);
        assert_eq!(head(9).len(), 11 + AAC.len() + 4);
    }

    #[test]
    fn frames_are_shared_between_players_without_copies() {
        let mut hub = live_hub();
        hub.play(key(), 10, opts(), []).unwrap();
        hub.play(key(), 11, opts(), []).unwrap();
        let woken = send(&mut hub, FrameKind::Video, 1080, INTER);
        assert!(woken.is_empty(), "queues were not empty");
        let last = |id| {
            hub.queue(id)
                .unwrap()
                .iter()
                .last()
                .unwrap()
                .payload
                .clone()
        };
        assert_eq!(last(10).as_ptr(), last(11).as_ptr());
        // Cached frames handed to a joining player are the cache's own bytes too.
        let cached = hub
            .gop(&key())
            .unwrap()
            .frames()
            .next()
            .unwrap()
            .payload
            .as_ptr();
        let joined = hub
            .queue(10)
            .unwrap()
            .iter()
            .nth(3)
            .unwrap()
            .payload
            .as_ptr();
        assert_eq!(cached, joined);
    }

    #[test]
    fn woken_lists_players_whose_queue_was_empty() {
        let mut hub = live_hub();
        hub.play(key(), 10, opts(), []).unwrap();
        hub.play(key(), 11, opts(), []).unwrap();
        drain(&mut hub, 10);
        assert_eq!(send(&mut hub, FrameKind::Audio, 1050, AAC), [10]);
        assert!(send(&mut hub, FrameKind::Audio, 1060, AAC).is_empty());
    }

    #[test]
    fn slow_player_skips_to_next_keyframe_and_others_are_unaffected() {
        let mut hub = live_hub();
        let small = PlayerOptions {
            out_queue: 8,
            ..opts()
        };
        hub.play(key(), 10, small, []).unwrap();
        hub.play(key(), 11, small, []).unwrap();
        drain(&mut hub, 10);
        drain(&mut hub, 11);
        let mut fast_got = 0;
        for i in 0..20u32 {
            send(&mut hub, FrameKind::Video, 1100 + i * 40, INTER);
            fast_got += hub.queue(10).unwrap().len();
            drain(&mut hub, 10);
        }
        assert_eq!(fast_got, 20, "the fast player got every frame");
        let slow = hub.queue(11).unwrap();
        assert!(slow.is_skipping());
        assert!(slow.dropped() > 0);
        assert!(slow.len() <= 8);
        send(&mut hub, FrameKind::Video, 2000, KEY);
        let slow = hub.queue(11).unwrap();
        assert!(!slow.is_skipping());
        assert!(slow.iter().last().unwrap().keyframe);
        assert_eq!(hub.player_stats(11).unwrap().dropped, slow.dropped());
        assert_eq!(hub.player_stats(10).unwrap().dropped, 0);
    }

    #[test]
    fn wait_key_starts_video_at_a_keyframe_when_nothing_is_cached() {
        let mut hub = Hub::new();
        hub.publish(&key(), 1).unwrap();
        send(&mut hub, FrameKind::Video, 0, AVC_HEADER);
        send(&mut hub, FrameKind::Video, 0, INTER); // no keyframe yet: nothing cached
        hub.play(key(), 10, opts(), []).unwrap();
        hub.play(
            key(),
            11,
            PlayerOptions {
                wait_key: false,
                ..opts()
            },
            [],
        )
        .unwrap();
        send(&mut hub, FrameKind::Video, 40, INTER);
        send(&mut hub, FrameKind::Audio, 50, AAC);
        send(&mut hub, FrameKind::Video, 80, KEY);
        use FrameKind::*;
        assert_eq!(
            queued(&hub, 10),
            [
                (Video, 0, false, true),
                (Audio, 50, false, false),
                (Video, 80, true, false)
            ]
        );
        assert_eq!(
            queued(&hub, 11),
            [
                (Video, 0, false, true),
                (Video, 40, false, false),
                (Audio, 50, false, false),
                (Video, 80, true, false)
            ]
        );
    }

    #[test]
    fn wait_video_holds_audio_until_the_first_video_frame() {
        let mut hub = Hub::new();
        hub.publish(&key(), 1).unwrap();
        let o = PlayerOptions {
            wait_video: true,
            ..opts()
        };
        hub.play(key(), 10, o, []).unwrap();
        send(&mut hub, FrameKind::Audio, 0, AAC_HEADER);
        send(&mut hub, FrameKind::Audio, 10, AAC);
        send(&mut hub, FrameKind::Video, 20, INTER);
        send(&mut hub, FrameKind::Audio, 30, AAC);
        send(&mut hub, FrameKind::Video, 40, KEY);
        send(&mut hub, FrameKind::Audio, 50, AAC);
        use FrameKind::*;
        assert_eq!(
            queued(&hub, 10),
            [
                (Audio, 0, false, true),
                (Video, 40, true, false),
                (Audio, 50, false, false)
            ]
        );
    }

    #[test]
    fn idle_streams_off_refuses_players_and_drops_them_when_the_publisher_leaves() {
        let mut hub = Hub::new();
        let strict = PlayerOptions {
            idle_streams: false,
            ..opts()
        };
        assert!(matches!(
            hub.play(key(), 10, strict, []),
            Err(LiveError::StreamNotFound(_))
        ));
        assert!(hub.queue(10).is_none());
        hub.publish(&key(), 1).unwrap();
        assert!(hub.play(key(), 10, strict, []).unwrap().live);
        hub.play(key(), 11, opts(), []).unwrap();
        let notices = hub.unpublish(&key(), 1);
        assert!(notices.contains(&(10, PlayerNotice::Drop)));
        assert!(notices.contains(&(11, PlayerNotice::PublisherLeft)));
        // The dropped player receives nothing from the next publisher.
        let started = hub.publish(&key(), 2).unwrap();
        assert_eq!(started, [(11, PlayerNotice::PublisherStarted)]);
        send(&mut hub, FrameKind::Audio, 0, AAC);
        assert!(hub.queue(10).unwrap().is_empty());
        assert_eq!(hub.queue(11).unwrap().len(), 1);
        assert!(hub.stop_play(10));
        assert!(!hub.stop_play(10));
    }

    #[test]
    fn duplicate_publish_is_refused() {
        let mut hub = Hub::new();
        hub.publish(&key(), 1).unwrap();
        assert!(matches!(
            hub.publish(&key(), 2),
            Err(LiveError::AlreadyPublishing(_))
        ));
        assert!(hub.publish(&key(), 1).is_err());
        assert_eq!(hub.registry().publisher(&key()), Some(1));
        // Another app with the same stream name is another stream.
        hub.publish(&StreamKey::new("live2", "cam"), 2).unwrap();
        hub.publish(&StreamKey::in_server(1, "live", "cam"), 3)
            .unwrap();
        assert_eq!(hub.registry().len(), 3);
    }

    #[test]
    fn unpublish_by_someone_else_is_ignored() {
        let mut hub = live_hub();
        hub.play(key(), 10, opts(), []).unwrap();
        assert!(hub.unpublish(&key(), 99).is_empty());
        assert!(hub.is_publishing(&key()));
    }

    #[test]
    fn waiting_player_starts_when_a_publisher_arrives() {
        let mut hub = Hub::new();
        let join = hub.play(key(), 10, opts(), []).unwrap();
        assert_eq!(
            join,
            PlayJoin {
                live: false,
                woken: false
            }
        );
        send(&mut hub, FrameKind::Audio, 0, AAC); // nobody publishes: ignored
        assert!(hub.queue(10).unwrap().is_empty());
        assert_eq!(
            hub.publish(&key(), 1).unwrap(),
            [(10, PlayerNotice::PublisherStarted)]
        );
        send(&mut hub, FrameKind::Video, 0, AVC_HEADER);
        assert_eq!(
            send(&mut hub, FrameKind::Video, 0, KEY),
            Vec::<ClientId>::new()
        );
        assert_eq!(hub.queue(10).unwrap().len(), 2);
        // Publisher leaves: the player waits again and the cache is gone.
        assert_eq!(
            hub.unpublish(&key(), 1),
            [(10, PlayerNotice::PublisherLeft)]
        );
        assert!(hub.gop(&key()).unwrap().is_empty());
        assert!(hub.gop(&key()).unwrap().video_header().is_none());
    }

    #[test]
    fn audio_only_stream_joins_with_recent_audio() {
        let mut hub = Hub::new();
        hub.publish(&key(), 1).unwrap();
        send(&mut hub, FrameKind::Audio, 0, AAC_HEADER);
        for i in 0..100 {
            send(&mut hub, FrameKind::Audio, i * 23, AAC);
        }
        hub.play(key(), 10, opts(), []).unwrap();
        let q = queued(&hub, 10);
        assert_eq!(q[0], (FrameKind::Audio, q[1].1, false, true));
        assert!(q.len() > 40, "about a second of audio: {}", q.len());
        assert_eq!(q.last().unwrap().1, 99 * 23);
    }

    #[test]
    fn prelude_goes_before_the_cached_start() {
        let mut hub = live_hub();
        let status = Bytes::from_static(b"onStatus Play.Start");
        hub.play(key(), 10, opts(), [status.clone()]).unwrap();
        let q = hub.queue(10).unwrap();
        assert_eq!(q.iter().next().unwrap().wire_bytes(), status);
        assert_eq!(q.len(), 7);
        assert!(!hub.enqueue_control(10, Bytes::from_static(b"x")));
        drain(&mut hub, 10);
        assert!(hub.enqueue_control(10, Bytes::from_static(b"x")));
        assert!(!hub.enqueue_control(99, Bytes::from_static(b"x")));
    }

    #[test]
    fn multitrack_keyframes_do_not_restart_the_cache() {
        let mut hub = live_hub();
        // Enhanced multitrack, OneTrack CodedFramesX hvc1 track 1, keyframe.
        let mt = [0x96, 0x03, b'h', b'v', b'c', b'1', 1, 0xaa];
        send(&mut hub, FrameKind::Video, 1080, &mt);
        let g = hub.gop(&key()).unwrap();
        assert_eq!(g.frames().next().unwrap().timestamp, 1000);
        assert_eq!(g.len(), 4);
    }

    // Enhanced RTMP payloads: HEVC sequence start, keyframe (CodedFrames), inter frame
    // (CodedFramesX), HDR metadata; Opus sequence start and frame; multitrack HEVC.
    const HEVC_HEADER: &[u8] = &[0x90, b'h', b'v', b'c', b'1', 1, 2, 3];
    const HEVC_KEY: &[u8] = &[0x91, b'h', b'v', b'c', b'1', 0, 0, 0, 0x26];
    const HEVC_INTER: &[u8] = &[0xa3, b'h', b'v', b'c', b'1', 0x02];
    const HEVC_META: &[u8] = &[0xd4, b'h', b'v', b'c', b'1', 2, 0, 9];
    const OPUS_HEADER: &[u8] = &[0x90, b'O', b'p', b'u', b's', 1];
    const OPUS: &[u8] = &[0x91, b'O', b'p', b'u', b's', 7];
    const MULTITRACK: &[u8] = &[0x96, 0x03, b'h', b'v', b'c', b'1', 1, 0xaa];

    fn announced(list: &[&str], caps_ex: f64) -> Caps {
        use crate::rtmp::amf0::Amf0Value as A;
        let list = list.iter().map(|s| A::String(s.to_string())).collect();
        Caps::from_connect(&A::Object(vec![
            ("fourCcList".into(), A::StrictArray(list)),
            ("capsEx".into(), A::Number(caps_ex)),
        ]))
    }

    fn with_caps(caps: Caps) -> PlayerOptions {
        PlayerOptions { caps, ..opts() }
    }

    /// The first payload bytes of every media message queued for `player`.
    fn queued_heads(hub: &Hub, player: ClientId) -> Vec<u8> {
        hub.queue(player)
            .unwrap()
            .iter()
            .filter(|f| matches!(f.kind, FrameKind::Audio | FrameKind::Video))
            .map(|f| f.payload[0])
            .collect()
    }

    fn no_enhanced_bytes(hub: &Hub, player: ClientId) {
        for f in hub.queue(player).unwrap().iter() {
            match f.kind {
                FrameKind::Video => assert_eq!(f.payload[0] & 0x80, 0, "{f:?}"),
                FrameKind::Audio => assert_ne!(f.payload[0] >> 4, 9, "{f:?}"),
                _ => {}
            }
        }
    }

    /// HEVC over E-RTMP with legacy AAC, one GOP.
    fn hevc_hub() -> Hub {
        let mut hub = Hub::new();
        hub.publish(&key(), 1).unwrap();
        send(&mut hub, FrameKind::Data, 0, META);
        send(&mut hub, FrameKind::Video, 0, HEVC_HEADER);
        send(&mut hub, FrameKind::Audio, 0, AAC_HEADER);
        send(&mut hub, FrameKind::Video, 0, HEVC_META);
        send(&mut hub, FrameKind::Video, 0, HEVC_KEY);
        send(&mut hub, FrameKind::Audio, 20, AAC);
        send(&mut hub, FrameKind::Video, 40, HEVC_INTER);
        hub
    }

    #[test]
    fn pick_follows_what_the_player_announced_and_the_main_track() {
        let w = |kind, payload: &[u8]| classify(kind, payload).wire;
        let legacy = Caps::LEGACY;
        let hevc = announced(&["hvc1"], 0.0);
        let all = Caps::FORWARD_ALL;
        use FrameKind::*;
        // Legacy messages go to everyone.
        for c in [&legacy, &hevc, &all] {
            assert_eq!(pick(c, Video, &w(Video, KEY), true), Pick::Take);
            assert_eq!(pick(c, Audio, &w(Audio, AAC), true), Pick::Take);
            assert_eq!(pick(c, Data, &w(Data, META), true), Pick::Take);
        }
        // Enhanced main video that a player cannot read leaves it with nothing to play.
        for p in [HEVC_HEADER, HEVC_KEY, HEVC_INTER] {
            assert!(matches!(
                pick(&legacy, Video, &w(Video, p), true),
                Pick::Refuse(t) if t.fourcc == crate::media::flv::FourCc::HVC1
            ));
            assert_eq!(pick(&hevc, Video, &w(Video, p), true), Pick::Take);
        }
        // Not media (HDR metadata), another track, or audio beside video: left out.
        assert_eq!(pick(&legacy, Video, &w(Video, HEVC_META), true), Pick::Skip);
        assert_eq!(pick(&hevc, Video, &w(Video, MULTITRACK), true), Pick::Skip);
        assert_eq!(pick(&hevc, Audio, &w(Audio, OPUS), true), Pick::Skip);
        assert_eq!(
            pick(&legacy, Audio, &w(Audio, OPUS_HEADER), false),
            Pick::Skip
        );
        // Audio is the main track of a stream without video.
        assert!(matches!(
            pick(&hevc, Audio, &w(Audio, OPUS), false),
            Pick::Refuse(_)
        ));
        let mt = announced(&["hvc1"], 2.0);
        assert_eq!(pick(&mt, Video, &w(Video, MULTITRACK), true), Pick::Take);
        assert_eq!(pick(&all, Video, &w(Video, MULTITRACK), true), Pick::Take);
        assert_eq!(pick(&all, Audio, &w(Audio, OPUS), false), Pick::Take);
    }

    #[test]
    fn a_legacy_player_waiting_for_an_hevc_stream_is_refused_with_nothing_enhanced_sent() {
        let mut hub = Hub::new();
        hub.play(key(), 10, opts(), []).unwrap();
        hub.play(key(), 11, with_caps(announced(&["hvc1"], 0.0)), [])
            .unwrap();
        hub.publish(&key(), 1).unwrap();
        send(&mut hub, FrameKind::Data, 0, META);
        assert!(hub.take_refused().is_empty());
        send(&mut hub, FrameKind::Video, 0, HEVC_HEADER);
        assert_eq!(
            hub.take_refused(),
            [(
                10,
                "stream is HEVC (hvc1); this player did not announce Enhanced RTMP support"
                    .to_string()
            )]
        );
        // Refused once; it gets nothing more, not even legacy audio.
        let before = hub.queue(10).unwrap().len();
        send(&mut hub, FrameKind::Audio, 0, AAC_HEADER);
        send(&mut hub, FrameKind::Video, 0, HEVC_KEY);
        assert!(hub.take_refused().is_empty());
        assert_eq!(hub.queue(10).unwrap().len(), before);
        no_enhanced_bytes(&hub, 10);
        assert_eq!(queued_heads(&hub, 11), [0x90, 0xaf, 0x91]);
        // A publisher leaving does not revive the refused player.
        assert_eq!(
            hub.unpublish(&key(), 1),
            [(11, PlayerNotice::PublisherLeft)]
        );
        assert!(hub.publish(&key(), 2).unwrap() == [(11, PlayerNotice::PublisherStarted)]);
    }

    #[test]
    fn a_legacy_player_joining_an_hevc_stream_is_refused_from_the_cache() {
        let mut hub = hevc_hub();
        match hub.play(key(), 10, opts(), []) {
            Err(LiveError::Unsupported { why, .. }) => {
                assert!(why.starts_with("stream is HEVC (hvc1);"), "{why}")
            }
            other => panic!("{other:?}"),
        }
        assert!(hub.queue(10).is_none());
        // An E-RTMP player of the same stream joins with the cached start, shared.
        hub.play(key(), 11, with_caps(announced(&["hvc1"], 0.0)), [])
            .unwrap();
        assert_eq!(queued_heads(&hub, 11), [0x90, 0xaf, 0x91, 0xaf, 0xa3]);
        let cached = hub
            .gop(&key())
            .unwrap()
            .frames()
            .next()
            .unwrap()
            .payload
            .as_ptr();
        let joined = hub
            .queue(11)
            .unwrap()
            .iter()
            .nth(3)
            .unwrap()
            .payload
            .as_ptr();
        assert_eq!(cached, joined);
    }

    #[test]
    fn players_get_the_enhanced_codecs_they_announced_from_one_shared_copy() {
        let mut hub = Hub::new();
        hub.publish(&key(), 1).unwrap();
        send(&mut hub, FrameKind::Video, 0, AVC_HEADER);
        send(&mut hub, FrameKind::Audio, 0, OPUS_HEADER);
        send(&mut hub, FrameKind::Video, 0, KEY);
        hub.play(key(), 10, opts(), []).unwrap();
        hub.play(key(), 11, with_caps(announced(&["Opus"], 0.0)), [])
            .unwrap();
        hub.play(key(), 12, with_caps(Caps::FORWARD_ALL), [])
            .unwrap();
        send(&mut hub, FrameKind::Audio, 20, OPUS);
        send(&mut hub, FrameKind::Video, 40, INTER);
        send(&mut hub, FrameKind::Video, 40, MULTITRACK);
        assert!(hub.take_refused().is_empty());
        // Legacy: H.264 only (the stream's video is readable, so Opus is just left out).
        assert_eq!(queued_heads(&hub, 10), [0x17, 0x17, 0x27]);
        no_enhanced_bytes(&hub, 10);
        // Opus announced, multitrack not.
        assert_eq!(queued_heads(&hub, 11), [0x17, 0x90, 0x17, 0x91, 0x27]);
        // A relay takes everything.
        assert_eq!(queued_heads(&hub, 12), [0x17, 0x90, 0x17, 0x91, 0x27, 0x96]);
        let last_opus = |id| {
            hub.queue(id)
                .unwrap()
                .iter()
                .find(|f| f.payload[..] == *OPUS)
                .unwrap()
                .payload
                .as_ptr()
        };
        assert_eq!(last_opus(11), last_opus(12));
    }

    #[test]
    fn an_audio_only_enhanced_stream_refuses_players_without_its_codec() {
        let mut hub = Hub::new();
        hub.publish(&key(), 1).unwrap();
        hub.play(key(), 10, opts(), []).unwrap();
        hub.play(key(), 11, with_caps(announced(&["fLaC"], 0.0)), [])
            .unwrap();
        send(&mut hub, FrameKind::Audio, 0, OPUS_HEADER);
        assert!(hub.take_refused().is_empty(), "video may still come");
        send(&mut hub, FrameKind::Audio, 20, OPUS);
        let refused = hub.take_refused();
        assert_eq!(refused.len(), 2);
        assert!(refused.iter().any(|(id, why)| *id == 11
            && why == "stream is Opus (Opus); this player did not announce support for it"));
        no_enhanced_bytes(&hub, 10);
        no_enhanced_bytes(&hub, 11);
    }

    #[test]
    fn stop_play_forgets_streams_nobody_uses() {
        let mut hub = Hub::new();
        hub.play(key(), 10, opts(), []).unwrap();
        assert_eq!(hub.streams().count(), 1);
        hub.stop_play(10);
        assert_eq!(hub.streams().count(), 0);
        let mut hub = live_hub();
        hub.play(key(), 10, opts(), []).unwrap();
        // Playing another stream moves the player.
        hub.play(StreamKey::new("live", "other"), 10, opts(), [])
            .unwrap();
        assert_eq!(hub.stream_stats(&key()).unwrap().players, 0);
        assert_eq!(hub.players_of(&StreamKey::new("live", "other")).count(), 1);
        hub.unpublish(&key(), 1);
        assert!(hub.stream_stats(&key()).is_none());
    }

    #[test]
    fn stream_and_player_counters() {
        let mut hub = live_hub();
        let s = hub.stream_stats(&key()).unwrap();
        assert_eq!(s.publisher, Some(1));
        assert_eq!(s.frames_in, 9);
        assert_eq!(s.video_frames, 5);
        assert_eq!(s.audio_frames, 3);
        let expected_in = META.len()
            + AVC_HEADER.len()
            + AAC_HEADER.len()
            + 2 * KEY.len()
            + 2 * INTER.len()
            + 2 * AAC.len();
        assert_eq!(s.bytes_in, expected_in as u64);
        assert_eq!(s.cached_frames, 3);
        hub.play(key(), 10, opts(), []).unwrap();
        let total = hub.queue(10).unwrap().queued_bytes();
        let q = hub.queue_mut(10).unwrap();
        let mut slices = [IoSlice::new(&[]); 4];
        let n = q.io_slices(&mut slices);
        assert_eq!(n, 4);
        let first_two = slices[0].len() + slices[1].len() + 3;
        q.advance(first_two);
        let st = hub.player_stats(10).unwrap();
        assert_eq!(st.bytes_out, first_two as u64);
        assert_eq!(st.queued_bytes, total - first_two);
        assert!(st.playing);
    }

    #[test]
    fn empty_and_unparsable_messages_do_not_break_the_fan_out() {
        let mut hub = live_hub();
        hub.play(key(), 10, opts(), []).unwrap();
        let before = hub.queue(10).unwrap().len();
        send(&mut hub, FrameKind::Video, 1100, &[]);
        send(&mut hub, FrameKind::Control, 1100, b"x");
        assert_eq!(hub.queue(10).unwrap().len(), before);
        hub.play(key(), 11, with_caps(Caps::FORWARD_ALL), [])
            .unwrap();
        let relayed = hub.queue(11).unwrap().len();
        // Unparsable legacy headers pass; unparsable enhanced ones only go to players that
        // take any codec (a legacy player never gets an enhanced first byte).
        send(&mut hub, FrameKind::Video, 1100, &[0x0f]);
        send(&mut hub, FrameKind::Audio, 1100, &[0xaf]);
        send(&mut hub, FrameKind::Video, 1100, &[0xff]);
        send(&mut hub, FrameKind::Audio, 1100, &[0x9f]);
        assert!(hub.take_refused().is_empty());
        assert_eq!(hub.queue(10).unwrap().len(), before + 2);
        assert_eq!(hub.queue(11).unwrap().len(), relayed + 4);
    }
}
