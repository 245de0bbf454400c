//! HTTP callbacks from the worker's side: which `on_*` a session event triggers, the request it
//! carries, and what the session does with the answer. The glue performs the request (resolve,
//! connect, TLS, write, read the response head) and reports back with
//! [`Worker::on_call_done`]; until then a `connect`/`publish`/`play` stays pending in its
//! session, which holds the client's further input (bounded by `MAX_HELD_INPUT`).

use bytes::Bytes;

use super::{CloseMode, LogLevel, Outcome, Role, Worker};
use crate::conf::{HttpUrl, NotifyMethod, Settings};
use crate::live::ClientId;
use crate::notify::{
    self, build_request, check_client_args, verdict, Call, CallRequest, NotifyError, ResponseHead,
    Verdict,
};
use crate::rtmp::command::{self, StreamName};

/// One HTTP request for the glue to perform.
#[derive(Debug, Clone)]
pub struct NetCall {
    /// Handed back to [`Worker::on_call_done`].
    pub token: u64,
    pub url: HttpUrl,
    /// The complete request (head and body).
    pub request: Bytes,
    /// `netcall_timeout`: for the whole exchange (resolve, connect, TLS, response head).
    pub timeout_ms: u64,
    /// Largest response head accepted (`netcall_buffer`, raised to a sane minimum).
    pub head_limit: usize,
    /// `resolver` addresses (empty: names are resolved by the system when the worker starts).
    pub resolver: Vec<String>,
    pub resolver_timeout_ms: u64,
    /// What the call is about, for log lines: `on_publish for "live/cam1"`.
    pub label: String,
}

/// What waits on a call's answer.
#[derive(Debug, Clone)]
pub(super) enum Waiting {
    Connect,
    Publish {
        name: StreamName,
        kind: String,
    },
    Play {
        name: StreamName,
        /// `play`'s start (ms) and reset flag.
        start: f64,
        reset: bool,
    },
    Update,
    /// `*_done`, `disconnect`: the answer changes nothing.
    Nothing,
}

#[derive(Debug)]
pub(super) struct PendingCall {
    client: ClientId,
    call: Call,
    strict: bool,
    waiting: Waiting,
    label: String,
}

fn url_of(settings: &Settings, call: Call) -> Option<&HttpUrl> {
    let n = &settings.notify;
    match call {
        Call::Connect => n.on_connect.as_ref(),
        Call::Disconnect => n.on_disconnect.as_ref(),
        Call::Publish => n.on_publish.as_ref(),
        Call::Play => n.on_play.as_ref(),
        Call::PublishDone => n.on_publish_done.as_ref(),
        Call::PlayDone => n.on_play_done.as_ref(),
        Call::Done => n.on_done.as_ref(),
        Call::RecordDone => n.on_record_done.as_ref(),
        Call::Update => n.on_update.as_ref(),
    }
}

/// Hands the request for `req` to the glue and remembers what waits on its answer.
fn send_call(
    calls: &mut std::collections::HashMap<u64, PendingCall>,
    next_token: &mut u64,
    settings: &Settings,
    url: &HttpUrl,
    req: CallRequest,
    pending: PendingCall,
    outcome: &mut Outcome,
) {
    let n = &settings.notify;
    let method = match n.method {
        NotifyMethod::Get => notify::Method::Get,
        NotifyMethod::Post => notify::Method::Post,
    };
    let token = *next_token;
    *next_token += 1;
    outcome.calls.push(NetCall {
        token,
        request: Bytes::from(build_request(url, method, &req)),
        url: url.clone(),
        timeout_ms: n.netcall_timeout_ms.max(1),
        head_limit: usize::try_from(n.netcall_buffer).unwrap_or(usize::MAX),
        resolver: settings.net.resolver.clone(),
        resolver_timeout_ms: settings.net.resolver_timeout_ms,
        label: pending.label.clone(),
    });
    calls.insert(token, pending);
}

impl Worker {
    /// Starts `call` for client `id` if its application configures it. Returns whether a
    /// request went out (then `waiting` is resumed by [`Worker::on_call_done`]).
    pub(super) fn start_call(
        &mut self,
        id: ClientId,
        call: Call,
        name: Option<&StreamName>,
        extras: Vec<(String, String)>,
        waiting: Waiting,
        outcome: &mut Outcome,
    ) -> bool {
        let Some(client) = self.clients.get(&id) else {
            return false;
        };
        let settings = client.app_settings().unwrap_or(&client.server.settings);
        let Some(url) = url_of(settings, call) else {
            return false;
        };
        let mut args = name.map_or(client.connect_args.as_str(), |n| n.args.as_str());
        if let Err(e) = check_client_args(args) {
            outcome.log(
                LogLevel::Warn,
                id,
                format!("rtmp: on_{}: {e}", call.as_str()),
            );
            args = "";
        }
        let role = match (&client.role, call) {
            (Role::Publisher(_), Call::Update) => Some(notify::Role::Publisher),
            (Role::Player(_), Call::Update) => Some(notify::Role::Player),
            _ => None,
        };
        let stream = name.map_or(String::new(), |n| n.name.clone());
        let label = if stream.is_empty() {
            format!("on_{} for \"{}\"", call.as_str(), client.vars.app)
        } else {
            format!("on_{} for \"{}/{stream}\"", call.as_str(), client.vars.app)
        };
        let req = CallRequest {
            call,
            vars: client.vars.clone(),
            name: name.map(|n| n.name.clone()),
            extras,
            client_args: args.to_owned(),
            role,
        };
        let pending = PendingCall {
            client: id,
            call,
            strict: settings.notify.update_strict,
            waiting,
            label,
        };
        let token = &mut self.next_call_token;
        send_call(&mut self.calls, token, settings, url, req, pending, outcome);
        true
    }

    /// `on_record_done` for a recording of `name` published by `owner` (who may have left
    /// since: the call carries what the session said when it started publishing).
    pub(super) fn call_record_done(
        &mut self,
        owner: &super::record::RecordOwner,
        settings: &Settings,
        extras: Vec<(String, String)>,
        outcome: &mut Outcome,
    ) {
        let Some(url) = settings.notify.on_record_done.as_ref() else {
            return;
        };
        let mut args = owner.stream.args.as_str();
        if check_client_args(args).is_err() {
            args = "";
        }
        let req = CallRequest {
            call: Call::RecordDone,
            vars: owner.vars.clone(),
            name: Some(owner.stream.name.clone()),
            extras,
            client_args: args.to_owned(),
            role: None,
        };
        let pending = PendingCall {
            client: owner.client,
            call: Call::RecordDone,
            strict: false,
            waiting: Waiting::Nothing,
            label: format!(
                "on_record_done for \"{}/{}\"",
                owner.vars.app, owner.stream.name
            ),
        };
        let token = &mut self.next_call_token;
        send_call(&mut self.calls, token, settings, url, req, pending, outcome);
    }

    /// Notifications when a client stops publishing or playing `name`.
    pub(super) fn calls_for_end(
        &mut self,
        id: ClientId,
        was_publisher: bool,
        name: &StreamName,
        outcome: &mut Outcome,
    ) {
        let call = if was_publisher {
            Call::PublishDone
        } else {
            Call::PlayDone
        };
        self.start_call(id, call, Some(name), Vec::new(), Waiting::Nothing, outcome);
        self.start_call(
            id,
            Call::Done,
            Some(name),
            Vec::new(),
            Waiting::Nothing,
            outcome,
        );
    }

    /// The glue finished call `token`: `result` is the response head, or why there is none.
    pub fn on_call_done(
        &mut self,
        token: u64,
        result: Result<ResponseHead, NotifyError>,
        now_ms: u64,
        outcome: &mut Outcome,
    ) {
        let Some(p) = self.calls.remove(&token) else {
            return;
        };
        let v = verdict(result.as_ref(), p.strict, p.call);
        let answer = match &result {
            Ok(head) => format!("answered {}", head.status),
            Err(e) => e.to_string(),
        };
        let id = p.client;
        if p.call.is_notification() {
            if result.is_err() {
                outcome.log(LogLevel::Warn, id, format!("rtmp: {}: {answer}", p.label));
            }
            return;
        }
        if !self.clients.contains_key(&id) {
            return;
        }
        let level = if matches!(v, Verdict::Deny(_)) {
            LogLevel::Warn
        } else {
            LogLevel::Info
        };
        let decision = match &v {
            Verdict::Allow => "allowed".to_string(),
            Verdict::Rename(n) => format!("renamed to \"{n}\""),
            Verdict::Relay(u) => format!("relay to {u}"),
            Verdict::Deny(_) => "denied".to_string(),
        };
        outcome.log(level, id, format!("rtmp: {} {answer}: {decision}", p.label));
        match p.waiting {
            Waiting::Connect => self.connect_answered(id, &v, outcome),
            Waiting::Publish { name, kind } => match v {
                Verdict::Deny(_) => self.refuse_publish(
                    id,
                    command::NS_PUBLISH_DENIED,
                    "Publishing refused by on_publish.",
                    outcome,
                ),
                Verdict::Rename(new) => {
                    let renamed = renamed(&new, &name);
                    self.complete_publish(id, renamed, &kind, now_ms, outcome)
                }
                Verdict::Relay(url) => {
                    let name = self.relay_redirect(id, &url, name, outcome);
                    self.complete_publish(id, name, &kind, now_ms, outcome)
                }
                Verdict::Allow => self.complete_publish(id, name, &kind, now_ms, outcome),
            },
            Waiting::Play { name, start, reset } => match v {
                Verdict::Deny(_) => self.refuse_play(
                    id,
                    command::NS_PLAY_FAILED,
                    "Playing refused by on_play.",
                    outcome,
                ),
                Verdict::Rename(new) => {
                    let renamed = renamed(&new, &name);
                    self.complete_play(id, renamed, (start, reset), now_ms, outcome)
                }
                Verdict::Relay(url) => {
                    let name = self.relay_redirect(id, &url, name, outcome);
                    self.complete_play(id, name, (start, reset), now_ms, outcome)
                }
                Verdict::Allow => self.complete_play(id, name, (start, reset), now_ms, outcome),
            },
            Waiting::Update => {
                if let Verdict::Deny(_) = v {
                    outcome
                        .close
                        .push((id, CloseMode::Now, "on_update denied the session".into()));
                }
                return;
            }
            Waiting::Nothing => return,
        }
        // The session may have input queued behind the decision; its replies go out now.
        self.resume_session(id, now_ms, outcome);
        outcome.wake.push(id);
    }

    fn connect_answered(&mut self, id: ClientId, v: &Verdict, outcome: &mut Outcome) {
        let Some(client) = self.clients.get_mut(&id) else {
            return;
        };
        let refuse = |client: &mut super::Client, outcome: &mut Outcome, why: &str| {
            client.session.reject_connect(why);
            outcome
                .close
                .push((id, CloseMode::AfterFlush, "on_connect denied".into()));
        };
        match v {
            Verdict::Deny(_) => refuse(client, outcome, "Connection refused by on_connect."),
            // As in C: a 3xx Location names the application to use instead.
            Verdict::Rename(app) => {
                let app = app.trim_start_matches('/');
                let app = app.split('?').next().unwrap_or_default();
                match client.server.app(app) {
                    Some(index) => {
                        client.app = Some(index);
                        client.vars.app = app.to_owned();
                        client.session.accept_connect();
                    }
                    None => {
                        let text = format!(
                            "rtmp: on_connect moved the client to unknown application \"{app}\""
                        );
                        outcome.log(LogLevel::Warn, id, text);
                        refuse(client, outcome, "Application not found.");
                    }
                }
            }
            Verdict::Allow | Verdict::Relay(_) => client.session.accept_connect(),
        }
    }

    /// `on_update`: due for client `id`? Starts it and returns the delay to the next one.
    pub(super) fn update_due(
        &mut self,
        id: ClientId,
        now_ms: u64,
        outcome: &mut Outcome,
    ) -> Option<u64> {
        let client = self.clients.get_mut(&id)?;
        let due = client.next_update_ms?;
        let period = client.app_settings()?.notify.update_timeout_ms.max(1);
        if now_ms < due {
            return Some(due - now_ms);
        }
        client.next_update_ms = Some(now_ms.saturating_add(period));
        let name = client.stream.clone()?;
        let since = client.counters.role_since_ms;
        let timestamp = client.last_timestamp;
        // A slow callback never has two updates of one session in flight (as in C, where
        // the next one is scheduled from the answer).
        let pending = self
            .calls
            .values()
            .any(|p| p.client == id && p.call == Call::Update);
        if pending {
            return Some(period);
        }
        let extras = vec![
            (
                "time".to_string(),
                (now_ms.saturating_sub(since) / 1000).to_string(),
            ),
            ("timestamp".to_string(), timestamp.to_string()),
        ];
        self.start_call(
            id,
            Call::Update,
            Some(&name),
            extras,
            Waiting::Update,
            outcome,
        );
        Some(period)
    }
}

/// The stream a callback's `Location` renames to; the client's own `?args` are kept unless
/// the callback gave new ones.
impl Worker {
    /// An `on_publish`/`on_play` answer `3xx Location: rtmp://...`: the publish is pushed
    /// there, or the play pulled from there (the C module's remote redirect). With
    /// `notify_relay_redirect on`, the local name becomes the MD5 of the URL, in hex.
    fn relay_redirect(
        &mut self,
        id: ClientId,
        url: &str,
        name: StreamName,
        outcome: &mut Outcome,
    ) -> StreamName {
        let target = match crate::conf::parse_rtmp_url(url) {
            Ok(u) => crate::conf::RelayTarget::new(u),
            Err(why) => {
                let text = format!("rtmp: cannot relay to {url:?}: {why}; goes on locally");
                outcome.log(LogLevel::Warn, id, text);
                return name;
            }
        };
        let Some(client) = self.clients.get_mut(&id) else {
            return name;
        };
        client.redirect = Some(target);
        if !client
            .app_settings()
            .is_some_and(|s| s.notify.relay_redirect)
        {
            return name;
        }
        use md5::Digest;
        let digest = md5::Md5::digest(url.as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        StreamName {
            name: hex,
            args: name.args,
        }
    }
}

fn renamed(location: &str, old: &StreamName) -> StreamName {
    let mut name = StreamName::parse(location);
    if name.args.is_empty() {
        name.args = old.args.clone();
    }
    name
}

#[cfg(test)]
#[path = "notify_tests.rs"]
mod tests;
