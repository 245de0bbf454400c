//! Recording from the worker's side: who a recording belongs to, what the worker does when
//! a file starts or ends (`record_notify` statuses, `on_record_done`, `exec_record_done`, a
//! log line), and `/control/record/start|stop`.

use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::{ClientId, LogLevel, LogLine, Outcome, Role, ServerConfig, Worker};
use crate::conf::Settings;
use crate::exec::{ExecKind, Vars};
use crate::live::StreamKey;
use crate::notify::SessionVars;
use crate::record::RecordEvent;
use crate::rtmp::command::{self, StreamName};

/// The publisher a stream's recordings belong to, as it was when it started publishing
/// (a recording may end after it left).
#[derive(Debug)]
pub struct RecordOwner {
    pub client: ClientId,
    pub server: Rc<ServerConfig>,
    pub app: usize,
    pub vars: SessionVars,
    pub stream: StreamName,
}

impl RecordOwner {
    /// The settings of recorder `name` of the owner's application.
    fn recorder(&self, name: &str) -> Option<&Settings> {
        self.server.apps.get(self.app)?.recorder(name)
    }
}

/// What `/control/record/start|stop` did on this worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordControl {
    /// No stream published here matched.
    NoStream,
    /// Matching streams have no such recorder (the C module: "Recorder not found").
    NoRecorder,
    /// The path of the file started or stopped, or `None` when there was nothing to do.
    Done(Option<PathBuf>),
}

impl Worker {
    /// A client started publishing `key` (`name` with its `?args`): its application's
    /// recorders join the stream's outputs.
    pub(super) fn start_recorders(
        &mut self,
        id: ClientId,
        key: &StreamKey,
        name: &StreamName,
        outcome: &mut Outcome,
    ) {
        let Some(client) = self.clients.get(&id) else {
            return;
        };
        let Some(app) = client.app else {
            return;
        };
        let server = client.server.clone();
        let Some(app_conf) = server.apps.get(app) else {
            return;
        };
        if app_conf.recorders().next().is_none() {
            return;
        }
        let owner = Rc::new(RecordOwner {
            client: id,
            server: server.clone(),
            app,
            vars: client.vars.clone(),
            stream: name.clone(),
        });
        self.outputs
            .add_recorders(key, app_conf.recorders(), owner, &mut outcome.logs);
        self.handle_record_events(outcome);
    }

    /// Acts on what recorders reported.
    pub(super) fn handle_record_events(&mut self, outcome: &mut Outcome) {
        for (owner, event) in self.outputs.take_record_events() {
            let (recorder, path) = match &event {
                RecordEvent::Started { recorder, path }
                | RecordEvent::Done { recorder, path, .. }
                | RecordEvent::Refused { recorder, path, .. } => (recorder.clone(), path.clone()),
            };
            let Some(settings) = owner.recorder(&recorder) else {
                continue;
            };
            let shown = format!("{}/{}", owner.vars.app, owner.stream.name);
            let label = if recorder.is_empty() {
                String::new()
            } else {
                format!(" (recorder \"{recorder}\")")
            };
            if let RecordEvent::Refused { why, .. } = &event {
                outcome.logs.push(LogLine {
                    level: LogLevel::Warn,
                    client: Some(owner.client),
                    text: format!("rtmp: record \"{shown}\"{label}: {}: {why}", path.display()),
                });
                continue;
            }
            let (code, text) = match &event {
                RecordEvent::Started { .. } => (
                    command::NS_RECORD_START,
                    format!(
                        "rtmp: record \"{shown}\"{label}: writing {}",
                        path.display()
                    ),
                ),
                RecordEvent::Done {
                    bytes, duration_ms, ..
                } => (
                    command::NS_RECORD_STOP,
                    format!(
                        "rtmp: record \"{shown}\"{label}: {} done, {bytes} bytes, {}.{:03} s",
                        path.display(),
                        duration_ms / 1000,
                        duration_ms % 1000
                    ),
                ),
                RecordEvent::Refused { .. } => continue,
            };
            outcome.logs.push(LogLine {
                level: LogLevel::Info,
                client: Some(owner.client),
                text,
            });
            if settings.record.notify {
                self.record_status(owner.client, code, &recorder, outcome);
            }
            if let RecordEvent::Done { .. } = event {
                let extras = vec![
                    ("recorder".to_string(), recorder.clone()),
                    ("path".to_string(), path.display().to_string()),
                ];
                self.call_record_done(&owner, settings, extras, outcome);
                let vars = record_vars(&owner, &recorder, &path);
                let specs = settings.exec.record_done.clone();
                let mut logs = Vec::new();
                self.execs.start(
                    ExecKind::RecordDone,
                    &crate::exec::Owner::Stream(StreamKey {
                        server: u32::try_from(owner.server.index).unwrap_or(u32::MAX),
                        app: owner.vars.app.clone(),
                        name: owner.stream.name.clone(),
                    }),
                    &specs,
                    &vars,
                    crate::exec::Supervision {
                        respawn_ms: None,
                        kill_signal: settings.exec.kill_signal,
                    },
                    &mut outcome.execs,
                    &mut logs,
                );
                super::exec::push_logs(outcome, logs);
            }
        }
    }

    /// `NetStream.Record.Start|Stop` to the publisher, if it is still publishing
    /// (`record_notify`; the description is the recorder's name, as in the C module).
    fn record_status(&mut self, id: ClientId, code: &str, recorder: &str, outcome: &mut Outcome) {
        let Some(c) = self.clients.get_mut(&id) else {
            return;
        };
        if !matches!(c.role, Role::Publisher(_)) {
            return;
        }
        let message = c.session.status_message("status", code, recorder);
        c.out.push_back(message);
        outcome.wake.push(id);
    }

    /// `/control/record/start|stop` for the streams `req` selects that are published here.
    pub fn record_control(
        &mut self,
        req: &crate::control::ControlRequest,
        recorder: &str,
        start: bool,
        now_ms: u64,
        outcome: &mut Outcome,
    ) -> RecordControl {
        let mut keys: Vec<StreamKey> = self
            .clients
            .iter()
            .filter_map(|(id, c)| match &c.role {
                Role::Publisher(key)
                    if req.selects(
                        c.server.index,
                        &key.app,
                        &key.name,
                        &c.vars.addr,
                        *id,
                        true,
                    ) =>
                {
                    Some(key.clone())
                }
                _ => None,
            })
            .collect();
        keys.sort_by(|a, b| (&a.app, &a.name).cmp(&(&b.app, &b.name)));
        let mut result = if keys.is_empty() {
            RecordControl::NoStream
        } else {
            RecordControl::NoRecorder
        };
        for key in keys {
            let Some(path) =
                self.outputs
                    .record_control(&key, recorder, start, now_ms, &mut outcome.logs)
            else {
                continue;
            };
            if !matches!(result, RecordControl::Done(Some(_))) {
                result = RecordControl::Done(path);
            }
        }
        self.handle_record_events(outcome);
        result
    }
}

/// What `/control/record/start|stop` does in another worker, answered from that worker's
/// latest `/stat` part (`parts`): stop names the file it is writing; start names the file it
/// will open, from `unix_ms` and the recorder's configuration (every worker has the same), or
/// nothing when that recorder is writing already.
pub fn remote_record_control(
    req: &crate::control::ControlRequest,
    recorder: &str,
    start: bool,
    parts: &[crate::stat::StatSnapshot],
    servers: &[Rc<ServerConfig>],
    unix_ms: u64,
    tz_offset_min: i32,
) -> RecordControl {
    let mut result = RecordControl::NoStream;
    for part in parts {
        for srv in &part.servers {
            for app in &srv.applications {
                for st in &app.streams {
                    let Some(publisher) = st.clients.iter().find(|c| c.publishing) else {
                        continue;
                    };
                    if !req.selects(
                        srv.index,
                        &app.name,
                        &st.name,
                        &publisher.address,
                        publisher.id,
                        true,
                    ) {
                        continue;
                    }
                    let conf = servers
                        .iter()
                        .find(|s| s.index == srv.index)
                        .and_then(|s| s.apps.iter().find(|a| a.name == app.name))
                        .and_then(|a| a.recorder(recorder));
                    let Some(conf) = conf else {
                        if result == RecordControl::NoStream {
                            result = RecordControl::NoRecorder;
                        }
                        continue;
                    };
                    let writing = st.recorders.iter().find(|r| r.name == recorder);
                    let path = match (start, writing) {
                        (false, Some(w)) => Some(PathBuf::from(&w.path)),
                        (true, None) => Some(crate::record::file_path(
                            &conf.record,
                            &st.name,
                            unix_ms,
                            tz_offset_min,
                        )),
                        _ => None,
                    };
                    if !matches!(result, RecordControl::Done(Some(_))) {
                        result = RecordControl::Done(path);
                    }
                }
            }
        }
    }
    result
}

/// The variables of `exec_record_done`: the publisher's, and the file's.
fn record_vars(owner: &RecordOwner, recorder: &str, path: &Path) -> Vars {
    let v = &owner.vars;
    let filename = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let basename = path
        .file_stem()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let dirname = path
        .parent()
        .map(|d| d.to_string_lossy().into_owned())
        .unwrap_or_default();
    Vars {
        app: v.app.clone(),
        name: owner.stream.name.clone(),
        addr: v.addr.clone(),
        flashver: v.flashver.clone(),
        swfurl: v.swfurl.clone(),
        tcurl: v.tcurl.clone(),
        pageurl: v.pageurl.clone(),
        args: owner.stream.args.clone(),
        recorder: recorder.to_string(),
        path: path.to_string_lossy().into_owned(),
        filename,
        basename,
        dirname,
    }
}
