//! A whole server Worker: one client whose bytes (handshake, chunks, commands, media) come
//! from the input in arbitrary reads, with timer ticks at advancing times, its output drained
//! partially or fully; optionally a second client that plays the stream (a real ffmpeg play
//! session, fixed) so the fuzzed publisher's media fans out. Input: a configuration byte
//! (HLS, DASH, small chunk and message limits, idle publisher drop, second client), a slicing
//! byte, then the client's bytes.
#![no_main]

use std::collections::HashMap;
use std::io::IoSlice;
use std::rc::Rc;

use libfuzzer_sys::fuzz_target;
use nginx_rtmp_rs::conf::RtmpConf;
use nginx_rtmp_rs::live::ClientId;
use nginx_rtmp_rs::server::{AppConfig, Outcome, ServerConfig, Worker};
use nginx_rtmp_rs_fuzz::{slices, Rng};

/// The client half of a real `ffmpeg -i rtmp://.../live/stream` session.
const PLAYER: &[u8] = include_bytes!("../captures/ffmpeg-play.raw");

fn server(cfg: u8) -> Rc<ServerConfig> {
    let mut srv = RtmpConf::default();
    let mut app = RtmpConf::default();
    let set = |c: &mut RtmpConf, name: &str, args: &[&str]| {
        c.apply(name, args)
            .unwrap_or_else(|e| panic!("{name} {args:?}: {e}"));
    };
    set(&mut srv, "timeout", &["5s"]);
    set(&mut srv, "ping", &["2s"]);
    set(&mut srv, "ping_timeout", &["1s"]);
    if cfg & 1 != 0 {
        set(&mut srv, "max_message", &["64k"]);
        set(&mut srv, "max_streams", &["4"]);
        set(&mut srv, "chunk_size", &["128"]);
        set(&mut srv, "out_queue", &["16"]);
    }
    set(&mut app, "live", &["on"]);
    if cfg & 2 != 0 {
        set(&mut app, "hls", &["on"]);
        set(&mut app, "hls_path", &["/fuzz/hls"]);
        set(&mut app, "hls_fragment", &["200ms"]);
        set(&mut app, "hls_playlist_length", &["1s"]);
    }
    if cfg & 4 != 0 {
        set(&mut app, "dash", &["on"]);
        set(&mut app, "dash_path", &["/fuzz/dash"]);
        set(&mut app, "dash_fragment", &["200ms"]);
        set(&mut app, "dash_playlist_length", &["1s"]);
    }
    if cfg & 8 != 0 {
        set(&mut app, "drop_idle_publisher", &["1s"]);
    }
    if cfg & 16 != 0 {
        set(&mut app, "idle_streams", &["off"]);
        set(&mut app, "wait_key", &["on"]);
        set(&mut app, "wait_video", &["on"]);
    }
    if cfg & 32 != 0 {
        set(&mut app, "meta", &["copy"]);
        set(&mut app, "interleave", &["on"]);
        set(&mut app, "publish_notify", &["on"]);
        set(&mut app, "play_restart", &["on"]);
    }
    app.merge_from(&srv);
    Rc::new(ServerConfig::new(
        0,
        srv.resolve(),
        vec![AppConfig {
            name: "live".into(),
            settings: app.resolve(),
            recorders: Vec::new(),
        }],
    ))
}

struct Harness {
    worker: Worker,
    now: u64,
    /// Open clients and when each wants its next tick.
    next_tick: HashMap<ClientId, u64>,
    rng: Rng,
}

impl Harness {
    fn apply(&mut self, o: Outcome) {
        for (id, _, _) in o.close {
            if self.next_tick.remove(&id).is_some() {
                let mut more = Outcome::default();
                self.worker.disconnect(id, self.now, &mut more);
                self.apply(more);
            }
        }
    }

    fn input(&mut self, id: ClientId, bytes: &[u8]) {
        if !self.next_tick.contains_key(&id) {
            return;
        }
        let mut o = Outcome::default();
        self.worker.on_input(id, bytes, self.now, &mut o);
        self.apply(o);
    }

    /// Writes out part or all of what the worker has for `id`, like a socket would.
    fn drain(&mut self, id: ClientId) {
        for _ in 0..4 {
            let mut s = [IoSlice::new(&[]); 8];
            let n = self.worker.output_slices(id, &mut s);
            let total: usize = s[..n].iter().map(|s| s.len()).sum();
            if total == 0 {
                return;
            }
            let written = match self.rng.below(4) {
                0 => self.rng.below(total as u64 + 1) as usize,
                _ => total,
            };
            self.worker.advance(id, written);
        }
    }

    fn time_passes(&mut self, ms: u64) {
        self.now += ms;
        let due: Vec<ClientId> = self
            .next_tick
            .iter()
            .filter(|(_, at)| **at <= self.now)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            let mut o = Outcome::default();
            match self.worker.on_tick(id, self.now, &mut o) {
                Some(next) => {
                    if let Some(at) = self.next_tick.get_mut(&id) {
                        *at = self.now + next.max(1);
                    }
                }
                None => {
                    self.next_tick.remove(&id);
                    let mut more = Outcome::default();
                    self.worker.disconnect(id, self.now, &mut more);
                    self.apply(more);
                }
            }
            self.apply(o);
        }
        let mut o = Outcome::default();
        let _ = self.worker.on_housekeeping(self.now, &mut o);
        self.apply(o);
    }
}

fuzz_target!(|data: &[u8]| {
    let [cfg, seed, stream @ ..] = data else {
        return;
    };
    let server = server(*cfg);
    let mut h = Harness {
        worker: Worker::new(),
        now: 1_000_000,
        next_tick: HashMap::new(),
        rng: Rng::new(*seed),
    };
    let mut fill = |b: &mut [u8]| b.iter_mut().for_each(|x| *x = 0x33);
    let (publisher, player) = (1, 2);
    let first = h
        .worker
        .connect(publisher, None, server.clone(), h.now, &mut fill);
    h.next_tick.insert(publisher, h.now + first);
    let pieces = slices(stream, &mut h.rng, 8192);
    let mut player_pieces = if cfg & 64 != 0 {
        let first = h
            .worker
            .connect(player, None, server.clone(), h.now, &mut fill);
        h.next_tick.insert(player, h.now + first);
        PLAYER.chunks(1 + PLAYER.len() / 8).collect()
    } else {
        Vec::new()
    };
    for (i, piece) in pieces.iter().enumerate() {
        h.input(publisher, piece);
        h.drain(publisher);
        if i % 2 == 1 && !player_pieces.is_empty() {
            let p = player_pieces.remove(0);
            h.input(player, p);
        }
        h.drain(player);
        let ms = match h.rng.below(8) {
            0 => h.rng.below(3000),
            1..=3 => h.rng.below(50),
            _ => 0,
        };
        h.time_passes(ms);
    }
    for p in player_pieces {
        h.input(player, p);
    }
    // Quiet time: pings, timeouts, idle publisher drop, HLS/DASH cleanup.
    for _ in 0..8 {
        h.drain(publisher);
        h.drain(player);
        h.time_passes(1500);
    }
    let ids: Vec<ClientId> = h.next_tick.drain().map(|(id, _)| id).collect();
    for id in ids {
        let mut o = Outcome::default();
        h.worker.disconnect(id, h.now, &mut o);
    }
    h.time_passes(60_000);
    assert_eq!(h.worker.client_count(), 0);
});
