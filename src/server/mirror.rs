//! Streams published in another worker process, played here: a pseudo-client publishes them
//! into this worker's hub (one copy of each message per worker, shared by all its players),
//! fed from the [`PublishRegistry`](super::PublishRegistry) the glue backs with shared memory.

use super::{Outcome, RemoteFrame, Worker, MIRROR_IDS};
use crate::live::{ClientId, FrameKind, StreamKey};

impl Worker {
    /// Publishes `key` here from another worker, if one publishes it: a joining player then
    /// starts at once from that stream's last keyframe. Returns whether it is now published.
    pub(super) fn follow_remote(
        &mut self,
        key: &StreamKey,
        player: ClientId,
        outcome: &mut Outcome,
    ) -> bool {
        if self.hub.is_publishing(key) {
            return true;
        }
        let Some(frames) = self.registry.as_mut().and_then(|r| r.follow(key)) else {
            return false;
        };
        let id = self.next_mirror_id;
        self.next_mirror_id = self.next_mirror_id.wrapping_add(1).max(MIRROR_IDS);
        let Ok(notices) = self.hub.publish(key, id) else {
            if let Some(r) = self.registry.as_mut() {
                r.unfollow(key);
            }
            return false;
        };
        // The player's server and application say how chunks are cut and what to cache.
        let client = self.clients.get(&player);
        let chunk_size = client.map_or(4096, |c| c.server.settings.core.chunk_size);
        if let Some(settings) = client.and_then(|c| c.app_settings()) {
            self.hub.set_start_cache(key, super::start_cache(settings));
        }
        self.mirrors.insert(key.clone(), (id, chunk_size));
        self.notify_players(key, notices, outcome);
        self.feed_mirror(key, chunk_size, &frames, outcome);
        true
    }

    fn feed_mirror(
        &mut self,
        key: &StreamKey,
        chunk_size: u32,
        frames: &[RemoteFrame],
        outcome: &mut Outcome,
    ) {
        for f in frames {
            if f.kind == FrameKind::Control {
                continue;
            }
            let woken = self
                .hub
                .publisher_frame(key, f.kind, f.timestamp, &f.payload, chunk_size);
            outcome.wake_media.extend_from_slice(woken);
        }
        self.refuse_unsupported_players(key, outcome);
    }

    /// Stops following `key` (its publisher left, or no player is left here).
    fn drop_mirror(&mut self, key: &StreamKey, outcome: &mut Outcome) {
        let Some((id, _)) = self.mirrors.remove(key) else {
            return;
        };
        if let Some(r) = self.registry.as_mut() {
            r.unfollow(key);
        }
        let notices = self.hub.unpublish(key, id);
        self.notify_players(key, notices, outcome);
    }

    /// Moves new messages of followed streams to their players, ends those whose publisher
    /// left, lets go of those nobody plays here any more, and follows streams local players
    /// wait for that another worker now publishes. Returns whether anything is followed or
    /// waited for (the glue then polls again soon).
    pub fn pump_remote(&mut self, outcome: &mut Outcome) -> bool {
        if self.registry.is_none() {
            return false;
        }
        let keys: Vec<(StreamKey, u32)> = self
            .mirrors
            .iter()
            .map(|(k, (_, chunk))| (k.clone(), *chunk))
            .collect();
        let mut frames = Vec::new();
        for (key, chunk_size) in keys {
            if self.hub.players_of(&key).next().is_none() {
                self.drop_mirror(&key, outcome);
                continue;
            }
            frames.clear();
            let ended = self
                .registry
                .as_mut()
                .is_some_and(|r| r.poll(&key, &mut frames));
            self.feed_mirror(&key, chunk_size, &frames, outcome);
            if ended {
                self.drop_mirror(&key, outcome);
            }
        }
        // Players waiting (idle_streams) for a stream nobody publishes in this worker.
        let waiting: Vec<(StreamKey, ClientId)> = self
            .hub
            .streams()
            .filter(|(_, s)| s.publisher.is_none() && s.players > 0)
            .filter_map(|(k, _)| self.hub.players_of(k).next().map(|(p, _)| (k.clone(), p)))
            .collect();
        let mut any_waiting = false;
        for (key, player) in waiting {
            if !self.follow_remote(&key, player, outcome) {
                any_waiting = true;
            }
        }
        any_waiting || !self.mirrors.is_empty()
    }
}

#[cfg(test)]
#[path = "mirror_tests.rs"]
mod tests;
