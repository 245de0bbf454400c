//! The worker's `pull` relays: a player asks for a stream nobody publishes, the application
//! has a `pull` line for it, and this worker claims the name in the shared registry (as a
//! publisher would, so exactly one worker of the server pulls it) and publishes what the origin
//! sends under a pseudo-client id: local players, players of other workers (through the shared
//! zone) and the file outputs (HLS, DASH) get it like any published stream. The pull ends when
//! the stream has no player left in any worker; while the origin is unreachable the stream
//! stays claimed and players wait, and timestamps continue across reconnects.

use std::io::IoSlice;
use std::rc::Rc;

use super::relay::{reconnect_delay_ms, OutBuf, RelayAction, RELAY_IDS};
use super::{LogLevel, LogLine, Outcome, ServerConfig, Worker};
use crate::live::{ClientId, FrameKind, StreamKey};
use crate::relay::{Progress, RelayClient, RelaySpec};
use crate::rtmp::chunk;

/// How often an active pull looks whether its stream still has players (in any worker).
pub const PULL_IDLE_CHECK_MS: u64 = 1000;

pub(super) struct Pull {
    key: StreamKey,
    spec: RelaySpec,
    server: Rc<ServerConfig>,
    reconnect_ms: u64,
    failures: u32,
    reconnects: u64,
    resolver: Vec<String>,
    resolver_timeout_ms: u64,
    /// How long the origin may send nothing once playing (the server's `timeout`).
    read_timeout_ms: u64,
    /// `static`: pulled whether or not anyone plays it.
    is_static: bool,
    /// `relay_buffer`, announced to the origin.
    buffer_ms: u32,
    /// With `session_relay on`: the player whose session the pull lives for.
    session: Option<ClientId>,
    client: Option<RelayClient>,
    /// A connection is open or being opened.
    connected: bool,
    playing: bool,
    closing: bool,
    out: OutBuf,
    since_ms: u64,
    counters: super::stat::ClientCounters,
    /// Timestamps continue across reconnects: what is added to this connection's, once its
    /// first message set it, and the last timestamp published.
    ts_shift: Option<u32>,
    last_ts: Option<u32>,
}

impl Pull {
    fn label(&self) -> String {
        format!(
            "pull of \"{}/{}\" from {}",
            self.key.app, self.key.name, self.spec.url
        )
    }

    fn connect_action(&self, id: ClientId) -> RelayAction {
        super::relay::connect_action(id, &self.spec, &self.resolver, self.resolver_timeout_ms)
    }

    /// The published timestamp of an origin timestamp: unchanged on the first connection,
    /// continuing from the last one after a reconnect.
    fn rebase(&mut self, ts: u32) -> u32 {
        let shift = *self.ts_shift.get_or_insert_with(|| match self.last_ts {
            None => 0,
            Some(last) => last.wrapping_add(1).wrapping_sub(ts),
        });
        let out = ts.wrapping_add(shift);
        self.last_ts = Some(out);
        out
    }
}

fn log(outcome: &mut Outcome, level: LogLevel, text: String) {
    outcome.logs.push(LogLine {
        level,
        client: None,
        text,
    });
}

impl Worker {
    /// A player of `player`'s application wants `key`, which no worker publishes: pulls it
    /// when a `pull` line applies. True when the stream is now published here (by the pull).
    pub(super) fn start_pull(
        &mut self,
        player: ClientId,
        key: &StreamKey,
        now_ms: u64,
        outcome: &mut Outcome,
    ) -> bool {
        let Some(client) = self.clients.get(&player) else {
            return false;
        };
        let (server, Some(app)) = (client.server.clone(), client.app) else {
            return false;
        };
        let Some(settings) = server.apps.get(app).map(|a| &a.settings) else {
            return false;
        };
        // An `on_play` redirect to an rtmp:// URL comes first.
        let redirect = self
            .clients
            .get_mut(&player)
            .and_then(|c| c.redirect.take());
        let spec = redirect
            .iter()
            .chain(settings.relay.pulls.iter().filter(|t| !t.static_pull))
            .find_map(|t| RelaySpec::for_stream(t, &key.app, &key.name));
        let Some(spec) = spec else {
            return false;
        };
        if !self.open_pull(&server, app, key, spec, false, now_ms, outcome) {
            return false;
        }
        if settings.relay.session_relay {
            let id = self.hub.registry().publisher(key);
            if let Some(p) = id.and_then(|id| self.relays.pulls.get_mut(&id)) {
                p.session = Some(player);
            }
        }
        true
    }

    /// `static` pulls (once a second, in every worker): each one nobody publishes is
    /// claimed and pulled here; the shared registry lets exactly one worker have it.
    pub fn keep_static_pulls(
        &mut self,
        servers: &[Rc<ServerConfig>],
        now_ms: u64,
        outcome: &mut Outcome,
    ) {
        for server in servers {
            for (app, conf) in server.apps.iter().enumerate() {
                for t in conf.settings.relay.pulls.iter().filter(|t| t.static_pull) {
                    // The local name: `name=`, else the remote one.
                    let local = t.name.clone().or_else(|| t.play_path.clone());
                    let Some(local) = local.or_else(|| t.url.play_path.clone()) else {
                        continue;
                    };
                    let key = StreamKey::in_server(server.index as u32, conf.name.clone(), &local);
                    if self.hub.is_publishing(&key) {
                        continue;
                    }
                    if let Some(spec) = RelaySpec::for_stream(t, &conf.name, &local) {
                        self.open_pull(server, app, &key, spec, true, now_ms, outcome);
                    }
                }
            }
        }
    }

    /// A worker shutting down (reload, quit) lets its `static` pulls go, so the new workers
    /// take them over.
    pub fn stop_static_pulls(&mut self, now_ms: u64, outcome: &mut Outcome) {
        let ids: Vec<ClientId> = self
            .relays
            .pulls
            .iter()
            .filter(|(_, p)| p.is_static && !p.closing)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.end_pull(id, "the worker is shutting down", now_ms, outcome);
        }
    }

    /// Claims `key` and starts pulling it from `spec`. True when the stream is now published
    /// here.
    #[allow(clippy::too_many_arguments)]
    fn open_pull(
        &mut self,
        server: &Rc<ServerConfig>,
        app: usize,
        key: &StreamKey,
        spec: RelaySpec,
        is_static: bool,
        now_ms: u64,
        outcome: &mut Outcome,
    ) -> bool {
        let Some(settings) = server.apps.get(app).map(|a| &a.settings) else {
            return false;
        };
        if self.hub.is_publishing(key) || self.registry.as_mut().is_some_and(|r| !r.claim(key)) {
            return false;
        }
        let id = RELAY_IDS + self.relays.next_id;
        self.relays.next_id += 1;
        let Ok(notices) = self.hub.publish(key, id) else {
            if let Some(r) = self.registry.as_mut() {
                r.release(key);
            }
            return false;
        };
        self.hub.set_start_cache(key, super::start_cache(settings));
        self.outputs
            .publish(key, settings, now_ms, &mut *self.random);
        let pull = Pull {
            key: key.clone(),
            spec,
            server: server.clone(),
            reconnect_ms: settings.relay.pull_reconnect_ms.max(1),
            failures: 0,
            reconnects: 0,
            resolver: settings.net.resolver.clone(),
            resolver_timeout_ms: settings.net.resolver_timeout_ms,
            read_timeout_ms: server.settings.core.timeout_ms.max(1),
            is_static,
            buffer_ms: u32::try_from(settings.relay.buffer_ms).unwrap_or(u32::MAX),
            session: None,
            client: None,
            connected: true,
            playing: false,
            closing: false,
            out: OutBuf::default(),
            since_ms: now_ms,
            counters: Default::default(),
            ts_shift: None,
            last_ts: None,
        };
        let text = format!(
            "relay: {} as \"{}/{}\" starts",
            pull.label(),
            pull.spec.app,
            pull.spec.name
        );
        log(outcome, LogLevel::Info, text);
        outcome.relays.push(pull.connect_action(id));
        self.relays.pulls.insert(id, pull);
        self.notify_players(key, notices, outcome);
        true
    }

    /// `/control/drop/publisher` (or `client`) on this worker's pulls, as the publishers of
    /// their streams addressed by their URL: those `req` selects stop (a later player starts
    /// the stream again). Returns how many.
    pub(super) fn drop_pulls(
        &mut self,
        req: &crate::control::ControlRequest,
        now_ms: u64,
        outcome: &mut Outcome,
    ) -> usize {
        let mut ids: Vec<ClientId> = self
            .relays
            .pulls
            .iter()
            .filter(|(id, p)| {
                let k = &p.key;
                !p.closing
                    && req.selects(k.server as usize, &k.app, &k.name, &p.spec.url, **id, true)
            })
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        for &id in &ids {
            self.end_pull(id, "dropped by /control", now_ms, outcome);
        }
        ids.len()
    }

    /// Whether `id` is a pull of this worker.
    pub(super) fn is_pull(&self, id: ClientId) -> bool {
        self.relays.pulls.contains_key(&id)
    }

    /// Whether pull `id` has nobody left to pull for: no player of its stream here, and no
    /// other worker following it.
    fn pull_idle(&self, id: ClientId) -> bool {
        let Some(p) = self.relays.pulls.get(&id) else {
            return false;
        };
        !p.is_static
            && self.hub.players_of(&p.key).next().is_none()
            && !self.registry.as_ref().is_some_and(|r| r.followed(&p.key))
    }

    /// Player `player` of `key` left: the stream's pull ends when it was the last one, or
    /// the one it was started for (`session_relay on`).
    pub(super) fn check_pull_of(
        &mut self,
        player: ClientId,
        key: &StreamKey,
        now_ms: u64,
        outcome: &mut Outcome,
    ) {
        let publisher = self.hub.registry().publisher(key);
        let Some(id) = publisher.filter(|id| self.is_pull(*id)) else {
            return;
        };
        if self.pull_idle(id) {
            self.end_pull(id, "no player left", now_ms, outcome);
        } else if self.relays.pulls.get(&id).and_then(|p| p.session) == Some(player) {
            self.end_pull(id, "its player left (session_relay)", now_ms, outcome);
        }
    }

    /// Ends pull `id`: its stream is unpublished and the connection closes.
    fn end_pull(&mut self, id: ClientId, why: &str, now_ms: u64, outcome: &mut Outcome) {
        let Some(p) = self.relays.pulls.get_mut(&id) else {
            return;
        };
        if p.closing {
            return;
        }
        p.closing = true;
        let key = p.key.clone();
        let text = format!("relay: {} stops: {why}", p.label());
        log(outcome, LogLevel::Info, text);
        outcome.relays.push(RelayAction::Close { id });
        let notices = self.hub.unpublish(&key, id);
        if let Some(r) = self.registry.as_mut() {
            r.release(&key);
        }
        self.outputs.unpublish(&key, now_ms, &mut outcome.logs);
        self.handle_record_events(outcome);
        self.notify_players(&key, notices, outcome);
    }

    pub(super) fn pull_connected(&mut self, id: ClientId, now_ms: u64) -> bool {
        let Some(p) = self.relays.pulls.get_mut(&id) else {
            return false;
        };
        if p.closing {
            return false;
        }
        let max_message = u32::try_from(p.server.settings.core.max_message).unwrap_or(u32::MAX);
        let mut client = RelayClient::pull(
            p.spec.clone(),
            max_message,
            p.buffer_ms,
            now_ms as u32,
            &mut *self.random,
        );
        p.out.clear();
        p.out.extend(client.take_output());
        p.client = Some(client);
        p.ts_shift = None;
        true
    }

    pub(super) fn pull_input(
        &mut self,
        id: ClientId,
        data: &[u8],
        now_ms: u64,
        outcome: &mut Outcome,
    ) -> Result<(), String> {
        let Some(p) = self.relays.pulls.get_mut(&id) else {
            return Err("relay is gone".into());
        };
        self.counters.received(&mut p.counters, data.len());
        let Some(client) = p.client.as_mut() else {
            return Ok(());
        };
        let progress = client.feed(data).map_err(|e| e.to_string())?;
        p.out.extend(client.take_output());
        let media = client.take_media();
        if progress == Progress::Playing {
            p.playing = true;
            p.failures = 0;
            log(
                outcome,
                LogLevel::Notice,
                format!("relay: {} is playing", p.label()),
            );
            outcome.relays.push(RelayAction::Retry {
                id,
                delay_ms: PULL_IDLE_CHECK_MS,
            });
        }
        if p.closing || media.is_empty() {
            return Ok(());
        }
        let key = p.key.clone();
        let chunk_size = p.server.settings.core.chunk_size;
        let mut rebased = Vec::with_capacity(media.len());
        for m in media {
            let kind = match m.type_id {
                chunk::MSG_AUDIO => FrameKind::Audio,
                chunk::MSG_VIDEO => FrameKind::Video,
                _ => FrameKind::Data,
            };
            let ts = if kind == FrameKind::Data {
                0
            } else {
                p.rebase(m.timestamp)
            };
            rebased.push((kind, ts, m.payload));
        }
        for (kind, ts, payload) in rebased {
            self.feed_stream(&key, kind, ts, &payload, chunk_size, now_ms, outcome);
        }
        Ok(())
    }

    pub(super) fn pull_output_slices<'a>(&'a self, id: ClientId, dst: &mut [IoSlice<'a>]) -> usize {
        self.relays
            .pulls
            .get(&id)
            .map_or(0, |p| p.out.io_slices(dst))
    }

    pub(super) fn pull_advance(&mut self, id: ClientId, written: usize) {
        let Some(p) = self.relays.pulls.get_mut(&id) else {
            return;
        };
        self.counters.sent(&mut p.counters, written);
        p.out.advance(written);
    }

    /// The connection of pull `id` ended: for good when the pull is over, else a warning and a
    /// reconnect (after `pull_reconnect`, doubling while it keeps failing) while the stream
    /// still has players.
    pub(super) fn pull_closed(
        &mut self,
        id: ClientId,
        reason: &str,
        now_ms: u64,
        outcome: &mut Outcome,
    ) {
        let Some(p) = self.relays.pulls.get_mut(&id) else {
            return;
        };
        if p.closing {
            let text = format!("relay: {} ended", p.label());
            self.relays.pulls.remove(&id);
            log(outcome, LogLevel::Info, text);
            return;
        }
        p.connected = false;
        p.playing = false;
        p.client = None;
        p.out.clear();
        p.failures = p.failures.saturating_add(1);
        p.reconnects += 1;
        let delay_ms = reconnect_delay_ms(p.reconnect_ms, p.failures);
        let text = format!(
            "relay: {} failed: {reason}; reconnecting in {delay_ms} ms",
            p.label()
        );
        if self.pull_idle(id) {
            self.end_pull(id, "no player left", now_ms, outcome);
            return;
        }
        log(outcome, LogLevel::Warn, text);
        outcome.relays.push(RelayAction::Retry { id, delay_ms });
    }

    /// Pull `id`'s timer: it ends without players; else it reconnects when its connection
    /// is down, and looks again later.
    pub(super) fn pull_timer(&mut self, id: ClientId, now_ms: u64, outcome: &mut Outcome) {
        let Some(p) = self.relays.pulls.get(&id) else {
            return;
        };
        if p.closing {
            return;
        }
        if self.pull_idle(id) {
            self.end_pull(id, "no player left", now_ms, outcome);
            return;
        }
        let Some(p) = self.relays.pulls.get_mut(&id) else {
            return;
        };
        if p.connected {
            outcome.relays.push(RelayAction::Retry {
                id,
                delay_ms: PULL_IDLE_CHECK_MS,
            });
        } else {
            p.connected = true;
            outcome.relays.push(p.connect_action(id));
        }
    }

    pub(super) fn pull_is_playing(&self, id: ClientId) -> bool {
        self.relays.pulls.get(&id).is_some_and(|p| p.playing)
    }

    /// How long pull `id`, once playing, may receive nothing before it reconnects.
    pub fn relay_read_timeout_ms(&self, id: ClientId) -> Option<u64> {
        self.relays
            .pulls
            .get(&id)
            .filter(|p| p.playing && !p.closing)
            .map(|p| p.read_timeout_ms)
    }
}

/// Pull `id` as its stream's publisher in `/stat` (with when it started), if it is one.
pub(super) fn stat_client(
    relays: &super::relay::Relays,
    id: ClientId,
    active: bool,
    now_ms: u64,
    pid: u32,
) -> Option<(crate::stat::ClientStat, u64)> {
    let p = relays.pulls.get(&id)?;
    let stat = crate::stat::ClientStat {
        id,
        address: p.spec.url.clone(),
        time_ms: now_ms.saturating_sub(p.since_ms),
        flashver: Some(p.spec.flash_ver.clone()),
        pageurl: p.spec.page_url.clone(),
        swfurl: p.spec.swf_url.clone(),
        dropped: 0,
        avsync: 0,
        timestamp: u64::from(p.last_ts.unwrap_or(0)),
        publishing: true,
        active: active && p.playing,
        worker_pid: pid,
        bytes_in: p.counters.bytes_in,
        bytes_out: p.counters.bytes_out,
        tls: None,
        relay: Some(crate::stat::RelayStat {
            reconnects: p.reconnects,
        }),
    };
    Some((stat, p.since_ms))
}

impl Worker {
    /// Tells the other workers whether `key`, published here, has players here (an
    /// `exec_pull` of another worker keeps running while it has).
    pub(super) fn note_local_players(&mut self, key: &StreamKey) {
        if !self.hub.is_publishing(key) || self.mirrors.contains_key(key) {
            return;
        }
        let any = self.hub.players_of(key).next().is_some();
        if let Some(r) = self.registry.as_mut() {
            r.set_local_players(key, any);
        }
    }

    /// `exec_pull`: a player waits for `key`, which nobody publishes: its commands start
    /// (once per server: the worker that claims `key`'s pull name runs them), expected to
    /// publish it; they stop when no worker has a player of it any more.
    pub(super) fn start_exec_pull(
        &mut self,
        player: ClientId,
        key: &StreamKey,
        stream: &crate::rtmp::command::StreamName,
        outcome: &mut Outcome,
    ) {
        if self.exec_pulls.contains_key(key) {
            return;
        }
        let Some(client) = self.clients.get(&player) else {
            return;
        };
        let Some(settings) = client.app_settings() else {
            return;
        };
        if settings.exec.pull.is_empty() {
            return;
        }
        // Control characters are never part of an application name: no stream has this one.
        let lock =
            StreamKey::in_server(key.server, format!("{}\u{1}exec_pull", key.app), &key.name);
        if self.registry.as_mut().is_some_and(|r| !r.claim(&lock)) {
            return;
        }
        let ex = &settings.exec;
        let sup = crate::exec::Supervision {
            respawn_ms: ex.respawn.then_some(ex.respawn_timeout_ms),
            kill_signal: ex.kill_signal,
        };
        let vars = super::exec::vars_of(client, stream);
        let specs = ex.pull.clone();
        let mut logs = Vec::new();
        self.execs.start(
            crate::exec::ExecKind::Pull,
            &crate::exec::Owner::Pulling(key.clone()),
            &specs,
            &vars,
            sup,
            &mut outcome.execs,
            &mut logs,
        );
        super::exec::push_logs(outcome, logs);
        self.exec_pulls.insert(key.clone(), lock);
    }

    /// Stops the `exec_pull` commands of streams no worker has a player of any more.
    pub fn check_exec_pulls(&mut self, outcome: &mut Outcome) {
        let idle: Vec<StreamKey> = self
            .exec_pulls
            .keys()
            .filter(|k| {
                self.hub.players_of(k).next().is_none()
                    && !self.registry.as_ref().is_some_and(|r| r.watched(k))
            })
            .cloned()
            .collect();
        for key in idle {
            let Some(lock) = self.exec_pulls.remove(&key) else {
                continue;
            };
            let mut logs = Vec::new();
            let owner = crate::exec::Owner::Pulling(key.clone());
            self.execs.stop(&owner, &mut outcome.execs, &mut logs);
            super::exec::push_logs(outcome, logs);
            if let Some(r) = self.registry.as_mut() {
                r.release(&lock);
            }
        }
    }
}
