//! VOD players from the worker's side (`play dir ...;`): the file is opened and read on the
//! thread pool ([`crate::vod`]), a bounded batch at a time, and its messages are paced to the
//! player by their timestamps: at most the player's buffer length (`SetBufferLength`, else
//! `buflen`) plus [`VOD_LEAD_MS`] ahead of the playback clock, as the C module does, and
//! never more than [`MAX_VOD_QUEUED`] bytes waiting for a slow socket. `seek` and `pause`
//! act on the file; the end of the file sends `NetStream.Play.Complete`, Stream EOF and
//! `NetStream.Play.Stop`, and the connection stays open for another seek or play.

use std::path::PathBuf;

use bytes::BytesMut;

use super::{ClientId, CloseMode, LogLevel, Outcome, Role, Worker};
use crate::conf::{PlayEntry, Scheme};
use crate::live::{Frame, FrameKind, PlayerQueue, StreamKey};
use crate::record::flv::{TAG_AUDIO, TAG_VIDEO};
use crate::rtmp::command::{self, StreamName};
use crate::vod::http::FetchTo;
use crate::vod::{PlaySource, ReadEnd, VodDone, VodError, VodJob, VodMessage, VodOpen, VodReader};

/// How far ahead of the playback clock messages are sent, beyond the player's buffer.
pub const VOD_LEAD_MS: u32 = 1000;
/// Queued bytes a player may leave unsent before reads wait for it.
pub const MAX_VOD_QUEUED: usize = 1024 * 1024;
/// Shortest wait between two reads of one player (each read covers at least this much).
const MIN_READ_GAP_MS: u64 = 250;
/// Wait before looking again at a player whose queue is full.
const FULL_QUEUE_RETRY_MS: u64 = 100;

/// One VOD player's playback.
#[derive(Debug)]
pub(super) struct VodPlay {
    pub(super) queue: PlayerQueue,
    key: StreamKey,
    stream: StreamName,
    reset: bool,
    /// The file's reader while no job holds it.
    reader: Option<Box<VodReader>>,
    /// Current request; answers to older ones (before a seek) are dropped.
    serial: u64,
    in_flight: bool,
    opened: bool,
    /// The playback clock: media time `.0` was due at monotonic `.1`.
    clock: Option<(u32, u64)>,
    last_ts: u32,
    /// When the next read is due; None while one is in flight, paused, or at the end.
    next_read_ms: Option<u64>,
    paused: bool,
    at_end: bool,
    /// A seek asked for while a read was in flight.
    pending_seek: Option<u32>,
    /// Whether the application also plays live streams (a name not found is played live).
    live_fallback: bool,
    scratch: BytesMut,
}

impl VodPlay {
    /// How far the player may be sent: the clock's media time plus buffer and lead.
    fn allowed_until(&self, now_ms: u64, buffer_ms: u32) -> Option<u32> {
        let (ts, at) = self.clock?;
        let elapsed = u32::try_from(now_ms.saturating_sub(at)).unwrap_or(u32::MAX);
        Some(
            ts.saturating_add(elapsed)
                .saturating_add(buffer_ms)
                .saturating_add(VOD_LEAD_MS),
        )
    }
}

impl Worker {
    /// `play` in an application with `play` locations: looks for the file on the thread
    /// pool; the session waits for the answer. False when the application has no local
    /// location (the name is played live).
    pub(super) fn start_vod(
        &mut self,
        id: ClientId,
        key: StreamKey,
        stream: StreamName,
        (start, reset): (f64, bool),
        now_ms: u64,
        outcome: &mut Outcome,
    ) -> bool {
        let Some(client) = self.clients.get_mut(&id) else {
            return false;
        };
        let Some(settings) = client.app_settings() else {
            return false;
        };
        let play = &settings.play;
        let fetch_to = FetchTo {
            temp_dir: PathBuf::from(&play.temp_path),
            cache_dir: (!play.local_path.is_empty()).then(|| PathBuf::from(&play.local_path)),
        };
        let sources: Vec<PlaySource> = play
            .entries
            .iter()
            .filter_map(|e| match e {
                PlayEntry::Local(dir) => Some(PlaySource::Dir(PathBuf::from(dir))),
                PlayEntry::Http(url) if url.scheme == Scheme::Http => {
                    Some(PlaySource::Http(url.clone(), fetch_to.clone()))
                }
                PlayEntry::Http(_) => None,
            })
            .collect();
        if sources.is_empty() {
            return false;
        }
        let mut query = String::from("addr=");
        crate::notify::form_encode_into(&mut query, &client.vars.addr);
        if !stream.args.is_empty() {
            query.push('&');
            // As the client sent them, but never a byte that could end the request line.
            for c in stream.args.chars() {
                if c.is_ascii_graphic() && c != '#' {
                    query.push(c);
                } else {
                    let mut utf8 = [0u8; 4];
                    for b in c.encode_utf8(&mut utf8).bytes() {
                        query.push_str(&format!("%{b:02X}"));
                    }
                }
            }
        }
        let live_fallback = settings.live.live;
        let (container, file_name) = crate::vod::file_for(&stream.name);
        let buffer_ms = client.buffer_ms();
        let seek_ms = (start > 0.0).then(|| start.min(f64::from(u32::MAX)) as u32);
        client.vod = Some(VodPlay {
            queue: PlayerQueue::with_limits(usize::MAX, usize::MAX),
            key,
            stream,
            reset,
            reader: None,
            serial: 1,
            in_flight: false,
            opened: false,
            clock: None,
            last_ts: 0,
            next_read_ms: None,
            paused: false,
            at_end: false,
            pending_seek: None,
            live_fallback,
            scratch: BytesMut::new(),
        });
        let open = VodOpen {
            sources,
            file_name,
            container,
            query,
        };
        let job = VodJob {
            client: id,
            serial: 1,
            reader: None,
            open: Some(open),
            seek_ms,
            until_ms: None,
            span_ms: buffer_ms.saturating_add(VOD_LEAD_MS),
            max_bytes: crate::vod::MAX_READ_BYTES,
        };
        self.submit_vod(id, job, now_ms, outcome);
        true
    }

    fn submit_vod(&mut self, id: ClientId, job: VodJob, now_ms: u64, outcome: &mut Outcome) {
        if let Some(vod) = self.clients.get_mut(&id).and_then(|c| c.vod.as_mut()) {
            vod.in_flight = true;
            vod.next_read_ms = None;
        }
        if let Some(done) = self.outputs.submit_vod(job) {
            self.on_vod_done(done, now_ms, outcome);
        }
    }

    /// A VOD job came back from the thread pool.
    pub fn on_vod_done(&mut self, done: VodDone, now_ms: u64, outcome: &mut Outcome) {
        let VodDone {
            client: id,
            serial,
            reader,
            result,
        } = done;
        let Some(client) = self.clients.get_mut(&id) else {
            return;
        };
        let Some(vod) = client.vod.as_mut() else {
            return;
        };
        if reader.is_some() {
            vod.reader = reader;
        }
        vod.in_flight = false;
        if serial != vod.serial {
            // Read before a seek: its messages are stale.
            if let Some(to) = vod.pending_seek.take() {
                self.read_vod(id, Some(to), now_ms, outcome);
            }
            return;
        }
        let batch = match result {
            Ok(batch) => batch,
            Err(e) => {
                self.vod_failed(id, e, now_ms, outcome);
                return;
            }
        };
        if let Some(opened) = batch.opened {
            self.vod_opened(id, &opened, outcome);
        }
        let Some(client) = self.clients.get_mut(&id) else {
            return;
        };
        let chunk_size = client.server.settings.core.chunk_size;
        let buffer_ms = client.buffer_ms();
        let Some(vod) = client.vod.as_mut() else {
            return;
        };
        for m in &batch.messages {
            queue_message(vod, m, chunk_size);
        }
        if let Some(first) = batch.messages.first() {
            vod.clock.get_or_insert((first.timestamp, now_ms));
        }
        if let Some(last) = batch.messages.last() {
            vod.last_ts = last.timestamp;
        }
        match batch.end {
            ReadEnd::End => {
                vod.at_end = true;
                let s = &client.session;
                let complete = command::on_play_status(command::NS_PLAY_COMPLETE, vod.last_ts);
                let complete = crate::rtmp::chunk::encode_message_bytes(
                    chunk_size,
                    crate::rtmp::session::CSID_DATA,
                    0,
                    crate::rtmp::chunk::MSG_DATA_AMF0,
                    crate::rtmp::session::STREAM_ID,
                    &complete,
                );
                vod.queue.push_mandatory(Frame::control(complete));
                vod.queue
                    .push_mandatory(Frame::control(s.stream_event(false)));
                let stop = s.status_message("status", command::NS_PLAY_STOP, "Stopped.");
                vod.queue.push_mandatory(Frame::control(stop));
            }
            ReadEnd::Full => vod.next_read_ms = Some(now_ms),
            ReadEnd::Ahead(next) => {
                let allowed = vod.allowed_until(now_ms, buffer_ms).unwrap_or(next);
                let wait = u64::from(next.saturating_sub(allowed));
                vod.next_read_ms = Some(now_ms + wait.max(MIN_READ_GAP_MS));
            }
        }
        if vod.paused {
            vod.next_read_ms = None;
        }
        outcome.wake.push(id);
        if let Some(due) = vod.next_read_ms {
            outcome.retick.push((id, due.saturating_sub(now_ms).max(1)));
        }
    }

    /// The file opened: the player hears that playback starts.
    fn vod_opened(&mut self, id: ClientId, opened: &crate::vod::Opened, outcome: &mut Outcome) {
        let Some(client) = self.clients.get_mut(&id) else {
            return;
        };
        let chunk_size = client.server.settings.core.chunk_size;
        let Some(vod) = client.vod.as_mut() else {
            return;
        };
        if vod.opened {
            return;
        }
        vod.opened = true;
        client.session.accept_play(&vod.stream.name, vod.reset);
        let metadata = Frame::encode(
            FrameKind::Data,
            0,
            &opened.metadata,
            chunk_size,
            &mut vod.scratch,
        );
        vod.queue.push_mandatory(metadata);
        let (key, stream) = (vod.key.clone(), vod.stream.clone());
        client.collect_output();
        client.role = Role::Vod(key.clone());
        client.stream = Some(stream.clone());
        client.logged_stream = Some(stream.clone());
        client.played = true;
        let duration = opened.duration_ms as f64 / 1000.0;
        outcome.log(
            LogLevel::Info,
            id,
            format!(
                "rtmp: play \"{}/{}\" from {} ({duration:.1} s)",
                key.app,
                key.name,
                opened.path.display()
            ),
        );
        self.exec_event(id, crate::exec::ExecKind::Play, &key, &stream, outcome);
    }

    /// A job failed: before the file opened, the play is refused (or played live, when
    /// the name is no file and the application is live too); after, playback stops.
    fn vod_failed(&mut self, id: ClientId, error: VodError, now_ms: u64, outcome: &mut Outcome) {
        let Some(client) = self.clients.get_mut(&id) else {
            return;
        };
        let Some(vod) = client.vod.take() else {
            return;
        };
        let what = format!("\"{}/{}\"", vod.key.app, vod.key.name);
        if !vod.opened {
            if matches!(error, VodError::NotFound) && vod.live_fallback {
                self.join_live(id, vod.stream, vod.reset, now_ms, outcome);
                return;
            }
            let (level, code, text) = match &error {
                VodError::NotFound => (
                    LogLevel::Info,
                    command::NS_PLAY_STREAM_NOT_FOUND,
                    "Video on demand stream not found.",
                ),
                _ => (
                    LogLevel::Warn,
                    command::NS_PLAY_FAILED,
                    "Video on demand stream cannot be played.",
                ),
            };
            outcome.log(level, id, format!("rtmp: play {what} refused: {error}"));
            self.refuse_play(id, code, text, outcome);
            if let Some(c) = self.clients.get_mut(&id) {
                c.collect_output();
            }
            return;
        }
        outcome.log(
            LogLevel::Warn,
            id,
            format!("rtmp: play {what} stopped: {error}"),
        );
        let s = &client.session;
        let mut queue = vod.queue;
        queue.push_mandatory(Frame::control(s.stream_event(false)));
        let stop = s.status_message("error", command::NS_PLAY_FAILED, "Read error.");
        queue.push_mandatory(Frame::control(stop));
        // The queue goes out before the connection closes.
        client.vod = Some(VodPlay {
            queue,
            reader: None,
            at_end: true,
            ..vod
        });
        outcome
            .close
            .push((id, CloseMode::AfterFlush, "VOD read error".into()));
    }

    /// Timer: starts the next read when it is due. Returns the delay to the next one.
    pub(super) fn vod_tick(
        &mut self,
        id: ClientId,
        now_ms: u64,
        outcome: &mut Outcome,
    ) -> Option<u64> {
        let client = self.clients.get_mut(&id)?;
        let vod = client.vod.as_mut()?;
        let due = vod.next_read_ms?;
        if due > now_ms {
            return Some(due - now_ms);
        }
        if vod.queue.queued_bytes() > MAX_VOD_QUEUED {
            vod.next_read_ms = Some(now_ms + FULL_QUEUE_RETRY_MS);
            return Some(FULL_QUEUE_RETRY_MS);
        }
        self.read_vod(id, None, now_ms, outcome);
        None
    }

    /// Sends the reader for the next batch (after a seek to `seek_ms` when set).
    fn read_vod(&mut self, id: ClientId, seek_ms: Option<u32>, now_ms: u64, outcome: &mut Outcome) {
        let Some(client) = self.clients.get_mut(&id) else {
            return;
        };
        let buffer_ms = client.buffer_ms();
        let Some(vod) = client.vod.as_mut() else {
            return;
        };
        let Some(reader) = vod.reader.take() else {
            return;
        };
        let until_ms = if seek_ms.is_some() {
            None
        } else {
            vod.allowed_until(now_ms, buffer_ms)
        };
        let job = VodJob {
            client: id,
            serial: vod.serial,
            reader: Some(reader),
            open: None,
            seek_ms,
            until_ms,
            span_ms: buffer_ms.saturating_add(VOD_LEAD_MS),
            max_bytes: crate::vod::MAX_READ_BYTES,
        };
        self.submit_vod(id, job, now_ms, outcome);
    }

    /// `seek`: what is queued and not yet started is dropped, the player hears Stream EOF,
    /// `NetStream.Seek.Notify` and Stream Begin, then media from the keyframe before.
    pub(super) fn vod_seek(
        &mut self,
        id: ClientId,
        to_ms: u32,
        now_ms: u64,
        outcome: &mut Outcome,
    ) {
        let Some(client) = self.clients.get_mut(&id) else {
            return;
        };
        let Some(vod) = client.vod.as_mut() else {
            return;
        };
        if !vod.opened {
            return;
        }
        let text = format!(
            "rtmp: seek \"{}/{}\" to {to_ms} ms",
            vod.key.app, vod.key.name
        );
        outcome.log(LogLevel::Info, id, text);
        let mut queue = PlayerQueue::with_limits(usize::MAX, usize::MAX);
        if let Some(rest) = vod.queue.partial_head() {
            queue.push_mandatory(Frame::control(rest));
        }
        let s = &client.session;
        queue.push_mandatory(Frame::control(s.stream_event(false)));
        let notify = s.status_message("status", command::NS_SEEK_NOTIFY, "Seeking.");
        queue.push_mandatory(Frame::control(notify));
        queue.push_mandatory(Frame::control(s.stream_event(true)));
        vod.queue = queue;
        vod.serial += 1;
        vod.clock = None;
        vod.at_end = false;
        outcome.wake.push(id);
        if vod.in_flight {
            vod.pending_seek = Some(to_ms);
            return;
        }
        self.read_vod(id, Some(to_ms), now_ms, outcome);
    }

    /// `pause`: no more reads (what is queued still goes); on resume the clock restarts
    /// from the last message sent.
    pub(super) fn vod_pause(
        &mut self,
        id: ClientId,
        paused: bool,
        now_ms: u64,
        outcome: &mut Outcome,
    ) {
        let Some(vod) = self.clients.get_mut(&id).and_then(|c| c.vod.as_mut()) else {
            return;
        };
        if vod.paused == paused {
            return;
        }
        vod.paused = paused;
        if paused {
            vod.next_read_ms = None;
            return;
        }
        vod.clock = Some((vod.last_ts, now_ms));
        if !vod.in_flight && !vod.at_end {
            vod.next_read_ms = Some(now_ms);
            outcome.retick.push((id, 1));
        }
    }
}

/// Queues one message of the file for the player (the payload is shared, not copied).
fn queue_message(vod: &mut VodPlay, m: &VodMessage, chunk_size: u32) {
    let kind = match m.type_id {
        TAG_AUDIO => FrameKind::Audio,
        TAG_VIDEO => FrameKind::Video,
        _ => FrameKind::Data,
    };
    let frame = Frame::encode(kind, m.timestamp, &m.payload, chunk_size, &mut vod.scratch);
    vod.queue.push_mandatory(frame);
}
