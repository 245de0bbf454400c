//! HTTP-FLV players (`flv_live on;`): an http request becomes a client of the worker with no
//! RTMP traffic of its own. It takes the RTMP `play` path from `on_play` on (allow/deny,
//! callbacks, the live fan-out, other workers' streams, `/stat`, `/control drop`), gets its
//! media as FLV tags built around the same shared payloads as RTMP players, and its answer
//! (the HTTP status) is what the glue sends.

use std::net::IpAddr;
use std::rc::Rc;

use super::{CloseMode, Outcome, Role, ServerConfig, Worker};
use crate::live::ClientId;
use crate::rtmp::command::StreamName;
use crate::rtmp::ertmp::Caps;

/// What nginx-http-flv-module reports as the `flashver` of its HTTP-FLV players: it marks
/// them in `/stat` and in callbacks.
pub const FLASHVER: &str = "flv_live 1.1";

/// The HTTP side of a client that plays over HTTP-FLV.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct HttpFlv {
    /// HTTP/1.1 chunked transfer encoding (else the body ends when the connection closes).
    pub chunked: bool,
    /// The answer once decided: 200 (streaming), or why not (400, 403, 404, 415).
    pub status: Option<u16>,
}

/// One HTTP-FLV request, as the glue read it.
#[derive(Debug, Clone)]
pub struct HttpFlvPlay {
    /// The `server{}` that serves it (see [`pick_server`]).
    pub server: Rc<ServerConfig>,
    pub app: String,
    pub stream: String,
    /// The whole query string: callbacks get it as the client's arguments (stream keys), as
    /// nginx-http-flv-module passes it.
    pub args: String,
    pub peer: Option<IpAddr>,
    /// `http://host/app`, as nginx-http-flv-module sets it.
    pub tc_url: String,
    /// The request's `Referer`, if any.
    pub page_url: String,
    pub chunked: bool,
}

/// What the glue does with an HTTP-FLV request now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpFlvAnswer {
    /// `on_play` is being asked: hold the request.
    Wait,
    /// Send 200 and stream the client's queue.
    Stream,
    /// Answer with this status (the client is forgotten).
    Refuse(u16),
}

/// The `server{}` an HTTP-FLV request plays from: the one listening on `port`, else the
/// first (nginx-http-flv-module picks by port and defaults to 1935; with one `server{}`
/// both agree).
pub fn pick_server(servers: &[Rc<ServerConfig>], port: Option<u16>) -> Option<Rc<ServerConfig>> {
    match port {
        None => servers.first().cloned(),
        Some(p) => servers.iter().find(|s| s.ports.contains(&p)).cloned(),
    }
}

impl Worker {
    /// An HTTP-FLV request for `req.stream` in `req.app` by client `id` (the glue's number
    /// for the request, unique among this worker's clients). Unknown application: 404, and
    /// no client is made. Else the client plays as an RTMP `play` would (start 0, as
    /// nginx-http-flv-module): [`HttpFlvAnswer::Wait`] while `on_play` is asked; the glue
    /// then hears about it through `outcome.wake`/`outcome.close` and asks
    /// [`Worker::http_flv_answer`].
    pub fn http_flv_play(
        &mut self,
        id: ClientId,
        req: HttpFlvPlay,
        now_ms: u64,
        outcome: &mut Outcome,
    ) -> HttpFlvAnswer {
        let Some(app) = req.server.app(&req.app) else {
            outcome.log(
                super::LogLevel::Warn,
                id,
                format!(
                    "flv: play refused: application \"{}\" not found",
                    crate::rtmp::command::escape_for_log(&req.app)
                ),
            );
            return HttpFlvAnswer::Refuse(404);
        };
        let mut no_random = |_: &mut [u8]| {};
        self.connect(id, req.peer, req.server.clone(), now_ms, &mut no_random);
        let Some(client) = self.clients.get_mut(&id) else {
            return HttpFlvAnswer::Refuse(500);
        };
        client.app = Some(app);
        client.vars.app = req.app.clone();
        client.vars.flashver = FLASHVER.to_string();
        client.vars.tcurl = req.tc_url;
        client.vars.pageurl = req.page_url;
        client.caps = Caps::LEGACY;
        client.http = Some(HttpFlv {
            chunked: req.chunked,
            status: None,
        });
        let name = StreamName {
            name: req.stream,
            args: req.args,
        };
        self.on_play(id, name, (0.0, 0.0, false), now_ms, outcome);
        self.http_flv_answer(id)
    }

    /// Where HTTP-FLV client `id` stands (see [`Worker::http_flv_play`]). A refused client
    /// is forgotten here.
    pub fn http_flv_answer(&mut self, id: ClientId) -> HttpFlvAnswer {
        let status = match self.clients.get(&id).and_then(|c| c.http) {
            None => return HttpFlvAnswer::Refuse(500),
            Some(h) => h.status,
        };
        match status {
            None => HttpFlvAnswer::Wait,
            Some(200)
                if matches!(
                    self.clients.get(&id).map(|c| &c.role),
                    Some(Role::Player(_))
                ) =>
            {
                HttpFlvAnswer::Stream
            }
            Some(code) => {
                let code = if code == 200 { 500 } else { code };
                self.hub.stop_play(id);
                self.clients.remove(&id);
                HttpFlvAnswer::Refuse(code)
            }
        }
    }

    /// Timer work of HTTP-FLV player `id` (its `on_update`, as an RTMP player's; never the
    /// RTMP session's pings, which have no place in an FLV body): when to come back.
    pub fn http_flv_tick(
        &mut self,
        id: ClientId,
        now_ms: u64,
        outcome: &mut Outcome,
    ) -> Option<u64> {
        self.clients.get(&id)?.http?;
        self.update_due(id, now_ms, outcome)
    }

    /// Whether HTTP-FLV client `id`'s tags are framed for chunked transfer encoding.
    pub fn http_flv_chunked(&self, id: ClientId) -> Option<bool> {
        self.clients
            .get(&id)
            .and_then(|c| c.http)
            .map(|h| h.chunked)
    }

    /// Sets the HTTP answer of client `id` (an HTTP-FLV player) unless one is set.
    pub(super) fn http_answer(&mut self, id: ClientId, status: u16) {
        if let Some(h) = self.clients.get_mut(&id).and_then(|c| c.http.as_mut()) {
            h.status.get_or_insert(status);
        }
    }

    /// Ends the body of HTTP-FLV player `id` after what is queued (with the last chunk of a
    /// chunked response).
    pub(super) fn end_http_body(&mut self, id: ClientId, why: &str, outcome: &mut Outcome) {
        let Some(h) = self.clients.get(&id).and_then(|c| c.http) else {
            return;
        };
        if h.chunked {
            let last = bytes::Bytes::from_static(crate::live::httpflv::LAST_CHUNK);
            self.hub.enqueue_control(id, last);
        }
        outcome
            .close
            .push((id, CloseMode::AfterFlush, why.to_string()));
        outcome.wake.push(id);
    }
}
