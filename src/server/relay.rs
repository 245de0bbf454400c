//! The worker's `push` relays: one per published stream and push line, started by the worker
//! that holds the publisher (so exactly one per server, whatever the number of workers). A
//! relay is a player of the stream's live fan-out under a pseudo-client id: it starts at the
//! cached start (metadata, codec headers, the GOP) and its queue is bounded like a player's
//! (dropping to the next keyframe when the target is slow), so a slow or dead target never
//! delays local players or other targets. The glue (`src/nginx/relay.rs`) owns the sockets and
//! timers and reports back here.

use std::collections::{HashMap, VecDeque};
use std::io::IoSlice;

use bytes::Bytes;

use super::{LogLevel, LogLine, Outcome, Worker};
use crate::control::ControlRequest;
use crate::live::{ClientId, Hub, PlayerOptions, StreamKey};
use crate::relay::{Progress, RelayClient, RelaySpec};

/// Pseudo-client ids of push connections (far above nginx's connection numbers, below the
/// ids of followed streams).
pub const RELAY_IDS: ClientId = 1 << 61;
/// Message bound of a relay's queue (its byte bound is a player's, 4 MB): a few seconds of a
/// typical stream, beyond which the relay drops to the next keyframe.
pub const RELAY_QUEUE_MESSAGES: usize = 2048;
/// How long connecting, the handshake and the command sequence may take.
pub const RELAY_SETUP_TIMEOUT_MS: u64 = 10_000;

/// What the glue must do for a relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayAction {
    /// Open a TCP connection (then call [`Worker::on_relay_connected`]).
    Connect {
        id: ClientId,
        host: String,
        port: u16,
        /// TLS (`rtmps://`), with the target's host name for SNI and verification.
        tls: bool,
        /// `resolver` arguments (empty: the addresses found when the configuration was read).
        resolver: Vec<String>,
        resolver_timeout_ms: u64,
        /// Connect, handshake and `publish` must be done within this.
        timeout_ms: u64,
    },
    /// Call [`Worker::on_relay_retry`] after this delay.
    Retry { id: ClientId, delay_ms: u64 },
    /// The stream is over: write what is queued (the goodbye), close, cancel any retry, then
    /// call [`Worker::on_relay_closed`].
    Close { id: ClientId },
}

/// Bytes a relay connection writes before (or instead of) a live queue: its handshake and
/// commands, the rest of a message cut short, a goodbye; written in order from an offset.
#[derive(Default)]
pub(super) struct OutBuf {
    pieces: VecDeque<Bytes>,
    offset: usize,
}

impl OutBuf {
    pub(super) fn push(&mut self, b: Bytes) {
        self.pieces.push_back(b);
    }

    pub(super) fn extend(&mut self, bs: impl IntoIterator<Item = Bytes>) {
        self.pieces.extend(bs);
    }

    pub(super) fn clear(&mut self) {
        self.pieces.clear();
        self.offset = 0;
    }

    pub(super) fn is_empty(&self) -> bool {
        self.pieces.is_empty()
    }

    /// The unwritten bytes as slices for a vectored write; returns how many were filled.
    pub(super) fn io_slices<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        for (i, bytes) in self.pieces.iter().enumerate() {
            let Some(slot) = dst.get_mut(n) else {
                return n;
            };
            let start = if i == 0 { self.offset } else { 0 };
            *slot = IoSlice::new(bytes.get(start..).unwrap_or_default());
            n += 1;
        }
        n
    }

    /// `written` bytes of what [`OutBuf::io_slices`] gave went out.
    pub(super) fn advance(&mut self, mut written: usize) {
        while written > 0 {
            let Some(front) = self.pieces.front() else {
                return;
            };
            let left = front.len().saturating_sub(self.offset);
            if written >= left {
                written -= left;
                self.pieces.pop_front();
                self.offset = 0;
            } else {
                self.offset += written;
                written = 0;
            }
        }
    }
}

struct Relay {
    key: StreamKey,
    spec: RelaySpec,
    chunk_size: u32,
    reconnect_ms: u64,
    /// Connections that failed since the last one that reached `publish`.
    failures: u32,
    /// Connections that failed or were lost since the push started (for `/stat`).
    reconnects: u64,
    resolver: Vec<String>,
    resolver_timeout_ms: u64,
    /// `timeout` of the publisher's server: how long a publishing push may write nothing
    /// while it has something to write.
    stall_ms: u64,
    client: Option<RelayClient>,
    /// Our own output before the relay joins the fan-out (handshake, commands) and after it
    /// left (the rest of a partly written message, the goodbye).
    out: OutBuf,
    joined: bool,
    skipping: bool,
    closing: bool,
    /// When the push started (the publish).
    since_ms: u64,
    /// Bytes to and from the target (all connections), counted in the worker's totals too.
    counters: super::stat::ClientCounters,
}

/// The connection relay `id` (a push or a pull) opens to `spec`'s server.
pub(super) fn connect_action(
    id: ClientId,
    spec: &RelaySpec,
    resolver: &[String],
    resolver_timeout_ms: u64,
) -> RelayAction {
    RelayAction::Connect {
        id,
        host: spec.host.clone(),
        port: spec.port,
        tls: spec.tls,
        resolver: resolver.to_vec(),
        resolver_timeout_ms,
        timeout_ms: RELAY_SETUP_TIMEOUT_MS,
    }
}

impl Relay {
    fn connect_action(&self, id: ClientId) -> RelayAction {
        connect_action(id, &self.spec, &self.resolver, self.resolver_timeout_ms)
    }

    fn label(&self) -> String {
        format!(
            "push of \"{}/{}\" to {}",
            self.key.app, self.key.name, self.spec.url
        )
    }
}

/// Every relay of one worker.
#[derive(Default)]
pub(super) struct Relays {
    map: HashMap<ClientId, Relay>,
    /// `pull`s (see `pull.rs`), under ids of the same range.
    pub(super) pulls: HashMap<ClientId, super::pull::Pull>,
    pub(super) next_id: ClientId,
}

fn log(outcome: &mut Outcome, level: LogLevel, text: String) {
    outcome.logs.push(LogLine {
        level,
        client: None,
        text,
    });
}

/// After new media: one warning when a relay's queue starts dropping to the next keyframe
/// (its target is too slow), one notice when it caught up.
pub(super) fn check_skips(
    relays: &mut Relays,
    hub: &Hub,
    key: &StreamKey,
    logs: &mut Vec<LogLine>,
) {
    for (id, r) in relays.map.iter_mut() {
        if !r.joined || r.key != *key {
            continue;
        }
        let skipping = hub.queue(*id).is_some_and(|q| q.is_skipping());
        if skipping != r.skipping {
            r.skipping = skipping;
            let text = if skipping {
                format!(
                    "relay: {} is behind; dropping media up to the next keyframe",
                    r.label()
                )
            } else {
                format!("relay: {} caught up", r.label())
            };
            logs.push(LogLine {
                level: if skipping {
                    LogLevel::Warn
                } else {
                    LogLevel::Notice
                },
                client: None,
                text,
            });
        }
    }
}

/// The pushes of `key` for `/stat`: one client each, addressed by its URL, active while the
/// target accepts the stream; bytes and dropped frames are its queue's.
pub(super) fn stat_clients(
    relays: &Relays,
    hub: &Hub,
    key: &StreamKey,
    now_ms: u64,
    pid: u32,
) -> Vec<crate::stat::ClientStat> {
    let mut ids: Vec<ClientId> = relays
        .map
        .iter()
        .filter(|(_, r)| r.key == *key && !r.closing)
        .map(|(id, _)| *id)
        .collect();
    ids.sort_unstable();
    ids.iter()
        .filter_map(|id| {
            let r = relays.map.get(id)?;
            let player = hub.player_stats(*id);
            Some(crate::stat::ClientStat {
                id: *id,
                address: r.spec.url.clone(),
                time_ms: now_ms.saturating_sub(r.since_ms),
                flashver: Some(r.spec.flash_ver.clone()),
                pageurl: r.spec.page_url.clone(),
                swfurl: r.spec.swf_url.clone(),
                dropped: player.map_or(0, |p| p.dropped),
                avsync: 0,
                timestamp: 0,
                publishing: false,
                active: r.joined,
                worker_pid: pid,
                bytes_in: r.counters.bytes_in,
                bytes_out: r.counters.bytes_out,
                tls: None,
                relay: Some(crate::stat::RelayStat {
                    reconnects: r.reconnects,
                }),
            })
        })
        .collect()
}

impl Worker {
    /// Client `id` just started publishing `key`: one relay per matching `push` line.
    pub(super) fn start_relays(
        &mut self,
        id: ClientId,
        key: &StreamKey,
        now_ms: u64,
        outcome: &mut Outcome,
    ) {
        let redirect = self.clients.get_mut(&id).and_then(|c| c.redirect.take());
        let Some(client) = self.clients.get(&id) else {
            return;
        };
        let Some(settings) = client.app_settings() else {
            return;
        };
        if settings.relay.pushes.is_empty() && redirect.is_none() {
            return;
        }
        let chunk_size = client.server.settings.core.chunk_size;
        let relay = &settings.relay;
        for t in relay.pushes.iter().chain(redirect.as_ref()) {
            let Some(spec) = RelaySpec::for_stream(t, &key.app, &key.name) else {
                continue;
            };
            let rid = RELAY_IDS + self.relays.next_id;
            self.relays.next_id += 1;
            let r = Relay {
                key: key.clone(),
                spec,
                chunk_size,
                reconnect_ms: relay.push_reconnect_ms.max(1),
                failures: 0,
                reconnects: 0,
                resolver: settings.net.resolver.clone(),
                resolver_timeout_ms: settings.net.resolver_timeout_ms,
                stall_ms: client.server.settings.core.timeout_ms.max(1),
                client: None,
                out: OutBuf::default(),
                joined: false,
                skipping: false,
                closing: false,
                since_ms: now_ms,
                counters: Default::default(),
            };
            log(
                outcome,
                LogLevel::Info,
                format!(
                    "relay: {} as \"{}/{}\" starts",
                    r.label(),
                    r.spec.app,
                    r.spec.name
                ),
            );
            outcome.relays.push(r.connect_action(rid));
            self.relays.map.insert(rid, r);
        }
    }

    /// `key` is no longer published: every relay of it says goodbye and closes.
    pub(super) fn stop_relays(&mut self, key: &StreamKey, outcome: &mut Outcome) {
        let ids: Vec<ClientId> = self
            .relays
            .map
            .iter()
            .filter(|(_, r)| r.key == *key && !r.closing)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.stop_relay(id, outcome);
        }
    }

    /// Relay `id` says goodbye and closes, for good (no reconnect).
    fn stop_relay(&mut self, id: ClientId, outcome: &mut Outcome) {
        // What the queue still holds goes out before the goodbye (the last frames of the
        // stream, the rest of a partly written message first).
        let mut rest = Vec::new();
        if let Some(q) = self.hub.queue(id) {
            let partial = q.partial_head();
            let skip = usize::from(partial.is_some());
            rest.extend(partial);
            rest.extend(q.iter().skip(skip).map(|f| f.bytes_from(0)));
        }
        self.hub.stop_play(id);
        let Some(r) = self.relays.map.get_mut(&id) else {
            return;
        };
        r.closing = true;
        r.joined = false;
        r.out.extend(rest);
        if let Some(bye) = r.client.as_mut().and_then(|c| c.goodbye()) {
            r.out.push(bye);
        }
        outcome.relays.push(RelayAction::Close { id });
    }

    /// `/control/drop` on this worker's pushes: those `req` selects (as players of their stream,
    /// addressed by their URL, as `/stat` lists them) stop for the rest of the publish.
    /// Returns how many.
    pub(super) fn drop_relays(&mut self, req: &ControlRequest, outcome: &mut Outcome) -> usize {
        let mut ids: Vec<ClientId> = self
            .relays
            .map
            .iter()
            .filter(|(id, r)| {
                let k = &r.key;
                !r.closing
                    && req.selects(k.server as usize, &k.app, &k.name, &r.spec.url, **id, false)
            })
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        for &id in &ids {
            if let Some(r) = self.relays.map.get(&id) {
                let text = format!("relay: {} dropped by /control", r.label());
                log(outcome, LogLevel::Info, text);
            }
            self.stop_relay(id, outcome);
        }
        ids.len()
    }

    /// The TCP connection of relay `id` is up: the handshake starts. False when the relay is
    /// gone (close the connection).
    pub fn on_relay_connected(&mut self, id: ClientId, now_ms: u64) -> bool {
        if self.is_pull(id) {
            return self.pull_connected(id, now_ms);
        }
        let Some(r) = self.relays.map.get_mut(&id) else {
            return false;
        };
        if r.closing {
            return false;
        }
        let mut client = RelayClient::new(
            r.spec.clone(),
            r.chunk_size,
            now_ms as u32,
            &mut *self.random,
        );
        r.out.clear();
        r.out.extend(client.take_output());
        r.client = Some(client);
        true
    }

    /// Bytes from the target of relay `id`. An error ends the connection (the glue closes it
    /// and calls [`Worker::on_relay_closed`] with the text).
    pub fn on_relay_input(
        &mut self,
        id: ClientId,
        data: &[u8],
        outcome: &mut Outcome,
    ) -> Result<(), String> {
        if self.is_pull(id) {
            let now_ms = self.wall_clock.0;
            return self.pull_input(id, data, now_ms, outcome);
        }
        let Some(r) = self.relays.map.get_mut(&id) else {
            return Err("relay is gone".into());
        };
        self.counters.received(&mut r.counters, data.len());
        let Some(client) = r.client.as_mut() else {
            return Ok(());
        };
        let progress = client.feed(data).map_err(|e| e.to_string())?;
        let reply = client.take_output();
        if let Some(b) = reply {
            if r.joined {
                self.hub.enqueue_control(id, b);
            } else {
                r.out.push(b);
            }
        }
        if progress == Progress::Publishing && !r.closing {
            let opts = PlayerOptions {
                wait_key: true,
                wait_video: false,
                idle_streams: false,
                out_queue: RELAY_QUEUE_MESSAGES,
                chunk_size: r.chunk_size,
                // The other end is a server: everything goes unchanged (E-RTMP included).
                caps: crate::rtmp::ertmp::Caps::FORWARD_ALL,
                delivery: crate::live::Delivery::Rtmp,
            };
            self.hub
                .play(r.key.clone(), id, opts, [])
                .map_err(|e| e.to_string())?;
            r.joined = true;
            r.failures = 0;
            r.skipping = false;
            log(
                outcome,
                LogLevel::Notice,
                format!("relay: {} is publishing", r.label()),
            );
        }
        Ok(())
    }

    /// What relay `id` has to write: its own output, then (once publishing) its live queue.
    pub fn relay_output_slices<'a>(&'a self, id: ClientId, dst: &mut [IoSlice<'a>]) -> usize {
        if self.is_pull(id) {
            return self.pull_output_slices(id, dst);
        }
        let Some(r) = self.relays.map.get(&id) else {
            return 0;
        };
        if !r.out.is_empty() {
            return r.out.io_slices(dst);
        }
        self.hub.queue(id).map_or(0, |q| q.io_slices(dst))
    }

    /// `written` bytes of what [`Worker::relay_output_slices`] returned went out.
    pub fn relay_advance(&mut self, id: ClientId, written: usize) {
        if self.is_pull(id) {
            self.pull_advance(id, written);
            return;
        }
        let Some(r) = self.relays.map.get_mut(&id) else {
            return;
        };
        self.counters.sent(&mut r.counters, written);
        if !r.out.is_empty() {
            r.out.advance(written);
            return;
        }
        if let Some(q) = self.hub.queue_mut(id) {
            q.advance(written);
        }
    }

    /// The connection of relay `id` ended (failure, target closed, or the [`RelayAction::Close`]
    /// asked for). While the stream is published, one warning and a retry: after
    /// `push_reconnect`, then twice as long after each failure in a row (see
    /// [`reconnect_delay_ms`]).
    pub fn on_relay_closed(&mut self, id: ClientId, reason: &str, outcome: &mut Outcome) {
        if self.is_pull(id) {
            let now_ms = self.wall_clock.0;
            self.pull_closed(id, reason, now_ms, outcome);
            return;
        }
        let Some(r) = self.relays.map.get_mut(&id) else {
            return;
        };
        if r.closing {
            let text = format!("relay: {} ended", r.label());
            self.relays.map.remove(&id);
            log(outcome, LogLevel::Info, text);
            return;
        }
        if r.joined {
            self.hub.stop_play(id);
        }
        r.joined = false;
        r.client = None;
        r.out.clear();
        r.failures = r.failures.saturating_add(1);
        r.reconnects += 1;
        let delay_ms = reconnect_delay_ms(r.reconnect_ms, r.failures);
        log(
            outcome,
            LogLevel::Warn,
            format!(
                "relay: {} failed: {reason}; reconnecting in {delay_ms} ms",
                r.label(),
            ),
        );
        outcome.relays.push(RelayAction::Retry { id, delay_ms });
    }

    /// The `push_reconnect` delay of relay `id` passed.
    pub fn on_relay_retry(&mut self, id: ClientId, outcome: &mut Outcome) {
        if self.is_pull(id) {
            let now_ms = self.wall_clock.0;
            self.pull_timer(id, now_ms, outcome);
            return;
        }
        if let Some(r) = self.relays.map.get(&id).filter(|r| !r.closing) {
            outcome.relays.push(r.connect_action(id));
        }
    }

    /// Whether relay `id` is past `publish` (its setup timeout no longer applies).
    pub fn relay_is_publishing(&self, id: ClientId) -> bool {
        self.relays.map.get(&id).is_some_and(|r| r.joined) || self.pull_is_playing(id)
    }

    /// How long relay `id`, once publishing, may be unable to write before it is dropped (and
    /// retried): the publisher's `timeout`. None before it publishes.
    pub fn relay_stall_timeout_ms(&self, id: ClientId) -> Option<u64> {
        self.relays
            .map
            .get(&id)
            .filter(|r| r.joined)
            .map(|r| r.stall_ms)
    }

    /// Relays of this worker (for tests and logs).
    pub fn relay_count(&self) -> usize {
        self.relays.map.len() + self.relays.pulls.len()
    }
}

/// The longest wait between reconnects of a target that keeps failing (unless
/// `push_reconnect` is longer).
pub const MAX_RECONNECT_MS: u64 = 60_000;

/// The wait before reconnecting after `failures` failed connections in a row: `push_reconnect`
/// the first time (the C module's fixed delay), doubling each time, up to
/// [`MAX_RECONNECT_MS`]. A target that is down (or refuses our key) is not hammered, and one
/// that comes back is tried again within a minute.
pub fn reconnect_delay_ms(base_ms: u64, failures: u32) -> u64 {
    let doublings = failures.saturating_sub(1).min(16);
    base_ms
        .saturating_mul(1 << doublings)
        .min(MAX_RECONNECT_MS.max(base_ms))
}

#[cfg(test)]
#[path = "relay_tests.rs"]
mod tests;
