//! The worker's `exec*` commands: which start on publish, unpublish, play and stop, with the
//! session's variables; the processes themselves are the glue's (see [`crate::exec`]).

use super::{Client, LogLevel, LogLine, Outcome, Worker};
use crate::conf::ExecSpec;
use crate::exec::{ExecId, ExecInfo, ExecKind, ExecLog, ExitStatus, Owner, Supervision, Vars};
use crate::live::StreamKey;
use crate::rtmp::command::StreamName;

/// `exec_static` lines and how they are supervised (from the `rtmp{}` level, as in the C
/// module, where `respawn_timeout` and `exec_kill_signal` are main-level settings).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StaticExecs {
    pub specs: Vec<ExecSpec>,
    pub respawn_ms: u64,
    pub kill_signal: i32,
}

pub(super) fn vars_of(client: &Client, stream: &StreamName) -> Vars {
    let v = &client.vars;
    Vars {
        app: v.app.clone(),
        name: stream.name.clone(),
        addr: v.addr.clone(),
        flashver: v.flashver.clone(),
        swfurl: v.swfurl.clone(),
        tcurl: v.tcurl.clone(),
        pageurl: v.pageurl.clone(),
        args: stream.args.clone(),
        ..Vars::default()
    }
}

pub(super) fn push_logs(outcome: &mut Outcome, logs: Vec<ExecLog>) {
    for l in logs {
        outcome.logs.push(LogLine {
            level: if l.warn {
                LogLevel::Warn
            } else {
                LogLevel::Notice
            },
            client: None,
            text: l.text,
        });
    }
}

/// What the glue reports about a process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecReport {
    Started(i32),
    Failed(String),
    Exited(ExitStatus),
}

impl Worker {
    /// Runs the event commands of `kind` (and, for a publish, starts the stream's `exec_push`
    /// commands) for client `id`, which publishes or plays `stream` as `key`.
    pub(super) fn exec_event(
        &mut self,
        id: u64,
        kind: ExecKind,
        key: &StreamKey,
        stream: &StreamName,
        outcome: &mut Outcome,
    ) {
        let Some(client) = self.clients.get(&id) else {
            return;
        };
        let Some(settings) = client.app_settings() else {
            return;
        };
        let ex = &settings.exec;
        let specs = match kind {
            ExecKind::Publish => &ex.publish,
            ExecKind::PublishDone => &ex.publish_done,
            ExecKind::Play => &ex.play,
            ExecKind::PlayDone => &ex.play_done,
            ExecKind::Push | ExecKind::Static | ExecKind::RecordDone | ExecKind::Pull => return,
        };
        let sup = Supervision {
            respawn_ms: ex.respawn.then_some(ex.respawn_timeout_ms),
            kill_signal: ex.kill_signal,
        };
        let vars = vars_of(client, stream);
        let owner = Owner::Stream(key.clone());
        let mut logs = Vec::new();
        self.execs.start(
            kind,
            &owner,
            specs,
            &vars,
            sup,
            &mut outcome.execs,
            &mut logs,
        );
        match kind {
            // As the C module: the publish commands, then the stream's own.
            ExecKind::Publish => self.execs.start(
                ExecKind::Push,
                &owner,
                &ex.push,
                &vars,
                sup,
                &mut outcome.execs,
                &mut logs,
            ),
            ExecKind::PublishDone => self.execs.stop(&owner, &mut outcome.execs, &mut logs),
            _ => {}
        }
        push_logs(outcome, logs);
    }

    /// Starts the `exec_static` commands (the glue calls this in one worker only).
    pub fn start_static_execs(&mut self, statics: &StaticExecs, outcome: &mut Outcome) {
        let sup = Supervision {
            // The C module respawns static commands whatever `respawn` says.
            respawn_ms: Some(statics.respawn_ms),
            kill_signal: statics.kill_signal,
        };
        let mut logs = Vec::new();
        self.execs.start(
            ExecKind::Static,
            &Owner::Static,
            &statics.specs,
            &Vars::default(),
            sup,
            &mut outcome.execs,
            &mut logs,
        );
        push_logs(outcome, logs);
    }

    /// Kills the `exec_static` commands (the worker is shutting down gracefully).
    pub fn stop_static_execs(&mut self, outcome: &mut Outcome) {
        let mut logs = Vec::new();
        self.execs
            .stop(&Owner::Static, &mut outcome.execs, &mut logs);
        push_logs(outcome, logs);
    }

    /// Kills every supervised command (the worker exits).
    pub fn stop_all_execs(&mut self, outcome: &mut Outcome) {
        let mut logs = Vec::new();
        self.execs.stop_all(&mut outcome.execs, &mut logs);
        push_logs(outcome, logs);
    }

    /// The glue's news about process `id`. Returns the signal to send at once when the process
    /// was stopped while it was being started.
    pub fn on_exec_report(
        &mut self,
        id: ExecId,
        report: ExecReport,
        now_ms: u64,
        outcome: &mut Outcome,
    ) -> Option<i32> {
        let mut logs = Vec::new();
        let mut kill = None;
        match report {
            ExecReport::Started(pid) => {
                self.execs.started(id, pid, &mut logs);
                kill = self.execs.stopping(id);
            }
            ExecReport::Failed(e) => self.execs.failed(id, &e, now_ms, &mut logs),
            ExecReport::Exited(status) => self.execs.exited(id, status, now_ms, &mut logs),
        }
        push_logs(outcome, logs);
        kill
    }

    /// Respawns what is due; returns the delay until the next call.
    pub fn on_exec_timer(&mut self, now_ms: u64, outcome: &mut Outcome) -> Option<u64> {
        let mut logs = Vec::new();
        let next = self
            .execs
            .respawn_due(now_ms, &mut outcome.execs, &mut logs);
        push_logs(outcome, logs);
        next
    }

    /// Delay until a respawn is due.
    pub fn exec_next_due(&self, now_ms: u64) -> Option<u64> {
        self.execs.next_due(now_ms)
    }

    /// This worker's processes.
    pub fn exec_list(&self) -> Vec<ExecInfo> {
        self.execs.list()
    }
}
