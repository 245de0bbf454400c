//! The `exec` family, pure: which commands run for which event, each command's argv with the C
//! module's variables substituted inside each word (never through a shell, so a stream name or
//! a client's `?args` can never add an argument or run a command), the shell-like redirects
//! (`>file`, `2>>file`, `2>&1`, `<file`) as plain data, and the lifetime of every process this
//! worker runs: started, killed, respawned after `respawn_timeout`. The glue
//! (`src/nginx/exec.rs`) forks, signals and reaps; it reports each start and exit back here.

use std::collections::BTreeMap;

use crate::conf::ExecSpec;
use crate::live::StreamKey;

/// A process this worker runs (or waits to respawn), unique for the worker's life.
pub type ExecId = u64;

/// Shortest respawn delay: `respawn_timeout 0` restarts a failing command at most this often
/// instead of in a tight loop on the event loop.
pub const MIN_RESPAWN_MS: u64 = 100;
/// Longest line of a child's output copied to the error log (the rest of the line is cut).
pub const MAX_OUTPUT_LINE: usize = 512;
/// Longest argument after substitution.
pub const MAX_ARG_LEN: usize = 64 * 1024;

/// What a command is run for (the directive's name in log lines).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecKind {
    /// `exec` / `exec_push`: while the stream is published; killed on unpublish.
    Push,
    /// `exec_static`: while the worker runs.
    Static,
    /// Event commands, fire and forget.
    Publish,
    PublishDone,
    Play,
    PlayDone,
    /// `exec_record_done`: a recording is finished.
    RecordDone,
    /// `exec_pull`: while a stream nobody publishes has players (the command is expected to
    /// publish it).
    Pull,
}

impl ExecKind {
    pub fn directive(self) -> &'static str {
        match self {
            ExecKind::Push => "exec_push",
            ExecKind::Static => "exec_static",
            ExecKind::Publish => "exec_publish",
            ExecKind::PublishDone => "exec_publish_done",
            ExecKind::Play => "exec_play",
            ExecKind::PlayDone => "exec_play_done",
            ExecKind::RecordDone => "exec_record_done",
            ExecKind::Pull => "exec_pull",
        }
    }

    /// Supervised: killed when its owner ends and respawned when it dies before.
    pub fn managed(self) -> bool {
        matches!(self, ExecKind::Push | ExecKind::Static | ExecKind::Pull)
    }
}

/// Values of the variables of one session (`$app $name $addr $flashver $swfurl $tcurl
/// $pageurl $args`), and of a finished recording for `exec_record_done` (`$recorder $path
/// $filename $basename $dirname`; empty otherwise).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Vars {
    pub app: String,
    pub name: String,
    pub addr: String,
    pub flashver: String,
    pub swfurl: String,
    pub tcurl: String,
    pub pageurl: String,
    pub args: String,
    pub recorder: String,
    /// The recording's full path, its file name, that name without its extension, and its
    /// directory.
    pub path: String,
    pub filename: String,
    pub basename: String,
    pub dirname: String,
}

impl Vars {
    /// A variable's value; None for an unknown name (which expands to nothing).
    pub fn get(&self, var: &str) -> Option<&str> {
        Some(match var {
            "app" => &self.app,
            "name" => &self.name,
            "addr" => &self.addr,
            "flashver" => &self.flashver,
            "swfurl" => &self.swfurl,
            "tcurl" => &self.tcurl,
            "pageurl" => &self.pageurl,
            "args" => &self.args,
            "recorder" => &self.recorder,
            "path" => &self.path,
            "filename" => &self.filename,
            "basename" => &self.basename,
            "dirname" => &self.dirname,
            _ => return None,
        })
    }
}

/// Substitutes variables in one word the way the C module's `ngx_rtmp_eval` does: `$` followed
/// by ASCII letters names a variable (so `$name_hi` is `$name` then `_hi`), `${name}` names one
/// inside other letters, `\c` is a literal `c`, an unknown variable expands to nothing. Values
/// are inserted as they are: they stay inside this one word.
pub fn expand(template: &str, vars: &Vars) -> String {
    let mut out = String::with_capacity(template.len());
    let mut chars = template.char_indices().peekable();
    let lookup = |name: &str, out: &mut String| {
        if let Some(v) = vars.get(name) {
            out.push_str(v);
        }
    };
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                if let Some((_, next)) = chars.next() {
                    out.push(next);
                }
            }
            '$' => {
                let start = i + 1;
                if chars.peek().is_some_and(|&(_, c)| c == '{') {
                    chars.next();
                    let mut end = None;
                    for (j, c) in chars.by_ref() {
                        if c == '}' {
                            end = Some(j);
                            break;
                        }
                    }
                    // An unclosed `${` swallows the rest of the word, as in the C module.
                    if let Some(name) = end.and_then(|e| template.get(start + 1..e)) {
                        lookup(name, &mut out);
                    }
                } else {
                    let mut end = start;
                    while let Some(&(j, c)) = chars.peek() {
                        if !c.is_ascii_alphabetic() {
                            break;
                        }
                        end = j + 1;
                        chars.next();
                    }
                    if let Some(name) = template.get(start..end) {
                        lookup(name, &mut out);
                    }
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// How a redirect opens its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// `<file`
    Read,
    /// `>file`: created or truncated.
    Truncate,
    /// `>>file`: created or appended to.
    Append,
}

/// One redirect of a command's file descriptors, applied in the child in the order written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redirect {
    /// `[fd]>path`, `[fd]>>path`, `[fd]<path`.
    Open {
        fd: i32,
        path: String,
        mode: OpenMode,
    },
    /// `fd>&from` (`2>&1`): `fd` becomes a copy of `from`.
    Dup { fd: i32, from: i32 },
}

/// Largest file descriptor a redirect may name.
pub const MAX_REDIRECT_FD: i32 = 255;

/// A redirect written as one word of the directive (`>f`, `2>>f`, `<f`, `2>&1`); None for
/// an ordinary argument. The template word decides, before any substitution, so a value
/// (a stream name, `?args`) can never turn an argument into a redirect.
fn parse_redirect(word: &str) -> Option<(i32, OpenMode, Result<i32, &str>)> {
    let digits = word.bytes().take_while(u8::is_ascii_digit).count();
    let (num, rest) = word.split_at_checked(digits)?;
    let (default_fd, mode, target) = if let Some(t) = rest.strip_prefix(">>") {
        (1, OpenMode::Append, t)
    } else if let Some(t) = rest.strip_prefix('>') {
        (1, OpenMode::Truncate, t)
    } else if let Some(t) = rest.strip_prefix('<') {
        (0, OpenMode::Read, t)
    } else {
        return None;
    };
    let fd = if num.is_empty() {
        default_fd
    } else {
        num.parse::<i32>()
            .ok()
            .filter(|fd| *fd <= MAX_REDIRECT_FD)?
    };
    let target = match target.strip_prefix('&') {
        Some(from) => Ok(from
            .parse::<i32>()
            .ok()
            .filter(|f| (0..=MAX_REDIRECT_FD).contains(f))?),
        None => Err(target),
    };
    Some((fd, mode, target))
}

/// Whether a redirect's file name, after substitution, is acceptable: values substituted into
/// it may not add directories (`/`) or climb out of one (`..`), nor hold a NUL.
fn redirect_path(template: &str, vars: &Vars) -> Result<String, String> {
    // Each variable's value is checked on its own: the template's own slashes are the
    // operator's choice.
    let mut probe = vars.clone();
    for v in [
        &mut probe.app,
        &mut probe.name,
        &mut probe.addr,
        &mut probe.flashver,
        &mut probe.swfurl,
        &mut probe.tcurl,
        &mut probe.pageurl,
        &mut probe.args,
    ] {
        if v.contains('/') || v.contains('\0') || v.contains("..") {
            *v = "\u{1}".to_string();
        }
    }
    let path = expand(template, &probe);
    if path.contains('\u{1}') {
        return Err(format!(
            "redirect \"{template}\" refused: a substituted value holds '/', '..' or NUL"
        ));
    }
    if path.is_empty() {
        return Err(format!("redirect \"{template}\" names no file"));
    }
    Ok(path)
}

/// A command ready to run: the program (never substituted, as in the C module), its arguments
/// after substitution, and its redirects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandLine {
    pub program: String,
    pub args: Vec<String>,
    pub redirects: Vec<Redirect>,
}

impl CommandLine {
    /// The command for log lines: words separated by spaces, each cut and escaped so a value
    /// can neither forge a log line nor grow it without bound.
    pub fn display(&self) -> String {
        const MAX_SHOWN: usize = 400;
        let mut s = String::new();
        for w in std::iter::once(&self.program).chain(&self.args) {
            if !s.is_empty() {
                s.push(' ');
            }
            for c in w.chars() {
                if s.len() >= MAX_SHOWN {
                    s.push_str("...");
                    return s;
                }
                if c.is_control() {
                    s.extend(c.escape_default());
                } else {
                    s.push(c);
                }
            }
        }
        s
    }
}

/// Builds the command of one `exec*` line for a session's variables. Redirects that cannot be
/// used are left out, each with a message in `problems`. Err when an argument cannot be passed
/// (a NUL byte, or longer than [`MAX_ARG_LEN`]).
pub fn build(
    spec: &ExecSpec,
    vars: &Vars,
    problems: &mut Vec<String>,
) -> Result<CommandLine, String> {
    let mut args = Vec::with_capacity(spec.args.len());
    let mut redirects = Vec::new();
    for word in &spec.args {
        match parse_redirect(word) {
            Some((fd, _, Ok(from))) => redirects.push(Redirect::Dup { fd, from }),
            Some((fd, mode, Err(template))) => match redirect_path(template, vars) {
                Ok(path) => redirects.push(Redirect::Open { fd, path, mode }),
                Err(e) => problems.push(e),
            },
            None => {
                let arg = expand(word, vars);
                if arg.contains('\0') {
                    return Err(format!("argument \"{word}\" would hold a NUL byte"));
                }
                if arg.len() > MAX_ARG_LEN {
                    return Err(format!(
                        "argument \"{word}\" would be {} bytes (max {MAX_ARG_LEN})",
                        arg.len()
                    ));
                }
                args.push(arg);
            }
        }
    }
    if spec.cmd.is_empty() || spec.cmd.contains('\0') {
        return Err("no command".to_string());
    }
    Ok(CommandLine {
        program: spec.cmd.clone(),
        args,
        redirects,
    })
}

/// `exec_options on`: a line with `name=` filters runs only for those stream names.
pub fn applies(spec: &ExecSpec, name: &str) -> bool {
    spec.names.is_empty() || spec.names.iter().any(|n| n == name)
}

/// How a process ended, as the glue saw it when it reaped it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Code(i32),
    Signal(i32),
    /// Reaped by someone else (its status is lost).
    Unknown,
}

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitStatus::Code(c) => write!(f, "exited with code {c}"),
            // Not nginx's "exited on signal": that wording means a crashed nginx process.
            ExitStatus::Signal(s) => write!(f, "was killed by signal {s}"),
            ExitStatus::Unknown => write!(f, "exited"),
        }
    }
}

/// What the glue must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecAction {
    /// Start `command`; answer with [`Execs::started`] or [`Execs::failed`]. `kill_signal` is
    /// also sent by the kernel if the worker dies first (managed commands only).
    Start {
        id: ExecId,
        kind: ExecKind,
        command: CommandLine,
        kill_signal: Option<i32>,
    },
    /// Send `signal` to the process (and its process group).
    Kill { id: ExecId, signal: i32 },
}

/// Who a managed process belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    Stream(StreamKey),
    /// `exec_pull` commands of a stream (apart from its publisher's `exec_push`).
    Pulling(StreamKey),
    Static,
    /// Event commands: nobody (never killed, never respawned).
    Event,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Start asked of the glue; no pid yet.
    Starting,
    Running(i32),
    /// Killed; waiting for its exit.
    Stopping(i32),
    /// Dead; started again at this time.
    Waiting(u64),
}

#[derive(Debug, Clone)]
struct Proc {
    owner: Owner,
    kind: ExecKind,
    command: CommandLine,
    kill_signal: i32,
    /// Respawn delay (None: `respawn off`).
    respawn_ms: Option<u64>,
    state: State,
    restarts: u32,
}

/// One process as /stat and tests see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecInfo {
    pub id: ExecId,
    pub kind: ExecKind,
    pub owner: Owner,
    pub pid: Option<i32>,
    pub command: String,
    pub restarts: u32,
}

/// Settings of a group of managed commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Supervision {
    /// None: not respawned.
    pub respawn_ms: Option<u64>,
    pub kill_signal: i32,
}

/// Every process of one worker and what it is waiting for.
#[derive(Debug, Default)]
pub struct Execs {
    procs: BTreeMap<ExecId, Proc>,
    next_id: ExecId,
}

/// One line for the error log (`[notice]` unless `warn`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecLog {
    pub warn: bool,
    pub text: String,
}

fn notice(logs: &mut Vec<ExecLog>, text: String) {
    logs.push(ExecLog { warn: false, text });
}

fn warn(logs: &mut Vec<ExecLog>, text: String) {
    logs.push(ExecLog { warn: true, text });
}

impl Execs {
    /// Starts each of `specs` that applies to `vars.name`; managed ones are supervised for
    /// `owner` with `sup`.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        &mut self,
        kind: ExecKind,
        owner: &Owner,
        specs: &[ExecSpec],
        vars: &Vars,
        sup: Supervision,
        actions: &mut Vec<ExecAction>,
        logs: &mut Vec<ExecLog>,
    ) {
        for spec in specs {
            if !vars.name.is_empty() && !applies(spec, &vars.name) {
                continue;
            }
            let mut problems = Vec::new();
            let built = build(spec, vars, &mut problems);
            for p in problems {
                warn(logs, format!("exec: {}: {p}", kind.directive()));
            }
            let command = match built {
                Ok(c) => c,
                Err(e) => {
                    warn(
                        logs,
                        format!(
                            "exec: {} \"{}\" not started: {e}",
                            kind.directive(),
                            spec.cmd
                        ),
                    );
                    continue;
                }
            };
            let id = self.next_id;
            self.next_id += 1;
            let managed = kind.managed();
            let proc = Proc {
                owner: if managed { owner.clone() } else { Owner::Event },
                kind,
                command: command.clone(),
                kill_signal: sup.kill_signal,
                respawn_ms: if managed {
                    sup.respawn_ms.map(|ms| ms.max(MIN_RESPAWN_MS))
                } else {
                    None
                },
                state: State::Starting,
                restarts: 0,
            };
            self.procs.insert(id, proc);
            actions.push(ExecAction::Start {
                id,
                kind,
                command,
                kill_signal: managed.then_some(sup.kill_signal),
            });
        }
    }

    /// The glue started process `id` as `pid`.
    pub fn started(&mut self, id: ExecId, pid: i32, logs: &mut Vec<ExecLog>) {
        let Some(p) = self.procs.get_mut(&id) else {
            return;
        };
        let again = if p.restarts > 0 {
            format!(" (respawn {})", p.restarts)
        } else {
            String::new()
        };
        notice(
            logs,
            format!(
                "exec: {} started pid {pid}{again}: {}",
                p.kind.directive(),
                p.command.display()
            ),
        );
        p.state = match p.state {
            // Stopped before the start came back: kill it at once.
            State::Stopping(_) => State::Stopping(pid),
            _ => State::Running(pid),
        };
    }

    /// Whether `id` was stopped while starting (the glue kills it right away).
    pub fn stopping(&self, id: ExecId) -> Option<i32> {
        match self.procs.get(&id)?.state {
            State::Stopping(_) => Some(self.procs.get(&id)?.kill_signal),
            _ => None,
        }
    }

    /// Process `id` could not be started (`error`); handled like an exit.
    pub fn failed(&mut self, id: ExecId, error: &str, now_ms: u64, logs: &mut Vec<ExecLog>) {
        let Some(p) = self.procs.get(&id) else {
            return;
        };
        warn(
            logs,
            format!(
                "exec: {} could not start \"{}\": {error}",
                p.kind.directive(),
                p.command.program
            ),
        );
        self.ended(id, now_ms, None, logs);
    }

    /// Process `id` ended with `status`.
    pub fn exited(&mut self, id: ExecId, status: ExitStatus, now_ms: u64, logs: &mut Vec<ExecLog>) {
        self.ended(id, now_ms, Some(status), logs);
    }

    fn ended(
        &mut self,
        id: ExecId,
        now_ms: u64,
        status: Option<ExitStatus>,
        logs: &mut Vec<ExecLog>,
    ) {
        let Some(p) = self.procs.get_mut(&id) else {
            return;
        };
        let what = match (p.state, status) {
            (State::Running(pid) | State::Stopping(pid), Some(s)) => {
                format!("exec: {} pid {pid} {s}", p.kind.directive())
            }
            _ => String::new(),
        };
        let respawn = match (p.state, p.respawn_ms) {
            (State::Stopping(_), _) | (_, None) => None,
            (_, Some(ms)) => Some(ms),
        };
        match respawn {
            Some(ms) => {
                p.state = State::Waiting(now_ms.saturating_add(ms));
                if !what.is_empty() {
                    notice(logs, format!("{what}; respawning in {ms} ms"));
                }
            }
            None => {
                if !what.is_empty() {
                    notice(logs, what);
                }
                self.procs.remove(&id);
            }
        }
    }

    /// Kills (or forgets, when waiting to respawn) the managed processes of `owner`.
    pub fn stop(&mut self, owner: &Owner, actions: &mut Vec<ExecAction>, logs: &mut Vec<ExecLog>) {
        let ids: Vec<ExecId> = self
            .procs
            .iter()
            .filter(|(_, p)| &p.owner == owner)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.stop_one(id, actions, logs);
        }
    }

    /// Kills every managed process (the worker is exiting).
    pub fn stop_all(&mut self, actions: &mut Vec<ExecAction>, logs: &mut Vec<ExecLog>) {
        let ids: Vec<ExecId> = self
            .procs
            .iter()
            .filter(|(_, p)| p.owner != Owner::Event)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.stop_one(id, actions, logs);
        }
    }

    fn stop_one(&mut self, id: ExecId, actions: &mut Vec<ExecAction>, logs: &mut Vec<ExecLog>) {
        let Some(p) = self.procs.get_mut(&id) else {
            return;
        };
        match p.state {
            State::Running(pid) => {
                notice(
                    logs,
                    format!(
                        "exec: {} killing pid {pid} with signal {}: {}",
                        p.kind.directive(),
                        p.kill_signal,
                        p.command.display()
                    ),
                );
                p.state = State::Stopping(pid);
                actions.push(ExecAction::Kill {
                    id,
                    signal: p.kill_signal,
                });
            }
            State::Starting => p.state = State::Stopping(0),
            State::Stopping(_) => {}
            State::Waiting(_) => {
                self.procs.remove(&id);
            }
        }
    }

    /// Starts again what is due; returns the delay until the next respawn.
    pub fn respawn_due(
        &mut self,
        now_ms: u64,
        actions: &mut Vec<ExecAction>,
        logs: &mut Vec<ExecLog>,
    ) -> Option<u64> {
        for (id, p) in self.procs.iter_mut() {
            if let State::Waiting(due) = p.state {
                if due <= now_ms {
                    p.state = State::Starting;
                    p.restarts = p.restarts.saturating_add(1);
                    notice(
                        logs,
                        format!(
                            "exec: {} respawning: {}",
                            p.kind.directive(),
                            p.command.display()
                        ),
                    );
                    actions.push(ExecAction::Start {
                        id: *id,
                        kind: p.kind,
                        command: p.command.clone(),
                        kill_signal: Some(p.kill_signal),
                    });
                }
            }
        }
        self.next_due(now_ms)
    }

    /// Delay until the next respawn is due.
    pub fn next_due(&self, now_ms: u64) -> Option<u64> {
        self.procs
            .values()
            .filter_map(|p| match p.state {
                State::Waiting(due) => Some(due.saturating_sub(now_ms)),
                _ => None,
            })
            .min()
    }

    /// Every process, for /stat and tests.
    pub fn list(&self) -> Vec<ExecInfo> {
        self.procs
            .iter()
            .map(|(id, p)| ExecInfo {
                id: *id,
                kind: p.kind,
                owner: p.owner.clone(),
                pid: match p.state {
                    State::Running(pid) | State::Stopping(pid) if pid > 0 => Some(pid),
                    _ => None,
                },
                command: p.command.display(),
                restarts: p.restarts,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vars {
        Vars {
            app: "live".into(),
            name: "cam1".into(),
            addr: "127.0.0.1".into(),
            flashver: "FMLE/3.0".into(),
            swfurl: String::new(),
            tcurl: "rtmp://localhost/live".into(),
            pageurl: String::new(),
            args: "token=a b;rm -rf /".into(),
            ..Vars::default()
        }
    }

    fn spec(cmd: &str, args: &[&str]) -> ExecSpec {
        ExecSpec {
            cmd: cmd.into(),
            args: args.iter().map(|s| s.to_string()).collect(),
            names: vec![],
        }
    }

    #[test]
    fn expand_follows_the_c_modules_rules() {
        let v = vars();
        assert_eq!(expand("$name", &v), "cam1");
        // `$name_hi` is `$name` then `_hi` (only letters name a variable).
        assert_eq!(expand("$name_hi", &v), "cam1_hi");
        assert_eq!(expand("${name}hi", &v), "cam1hi");
        assert_eq!(expand("${name}_720p", &v), "cam1_720p");
        assert_eq!(
            expand("rtmp://127.0.0.1/hls/$name", &v),
            "rtmp://127.0.0.1/hls/cam1"
        );
        assert_eq!(expand("$app/$name", &v), "live/cam1");
        assert_eq!(expand("$unknown-x", &v), "-x");
        assert_eq!(expand("\\$name", &v), "$name");
        assert_eq!(expand("a$", &v), "a");
        assert_eq!(expand("${name", &v), "");
        assert_eq!(expand("$name1", &v), "cam11");
        assert_eq!(expand("$addr:$flashver", &v), "127.0.0.1:FMLE/3.0");
        assert_eq!(expand("é$nameé", &v), "écam1é");
    }

    #[test]
    fn values_stay_inside_their_word() {
        let mut problems = vec![];
        let c = build(
            &spec("/bin/echo", &["--args=$args", "$name"]),
            &vars(),
            &mut problems,
        )
        .unwrap();
        assert_eq!(c.program, "/bin/echo");
        assert_eq!(c.args, vec!["--args=token=a b;rm -rf /", "cam1"]);
        assert!(c.redirects.is_empty());
    }

    #[test]
    fn a_value_never_becomes_a_redirect() {
        let mut v = vars();
        v.args = ">/tmp/pwned".into();
        v.name = "2>&1".into();
        let mut problems = vec![];
        let c = build(&spec("x", &["$args", "$name"]), &v, &mut problems).unwrap();
        assert_eq!(c.args, vec![">/tmp/pwned", "2>&1"]);
        assert!(c.redirects.is_empty());
    }

    #[test]
    fn redirects_are_parsed_from_the_written_word() {
        let mut problems = vec![];
        let c = build(
            &spec(
                "ffmpeg",
                &[
                    "-i",
                    "x",
                    "2>>/var/log/ff-$name.log",
                    ">/dev/null",
                    "2>&1",
                    "<in",
                    "3>f",
                ],
            ),
            &vars(),
            &mut problems,
        )
        .unwrap();
        assert_eq!(c.args, vec!["-i", "x"]);
        assert_eq!(
            c.redirects,
            vec![
                Redirect::Open {
                    fd: 2,
                    path: "/var/log/ff-cam1.log".into(),
                    mode: OpenMode::Append
                },
                Redirect::Open {
                    fd: 1,
                    path: "/dev/null".into(),
                    mode: OpenMode::Truncate
                },
                Redirect::Dup { fd: 2, from: 1 },
                Redirect::Open {
                    fd: 0,
                    path: "in".into(),
                    mode: OpenMode::Read
                },
                Redirect::Open {
                    fd: 3,
                    path: "f".into(),
                    mode: OpenMode::Truncate
                },
            ]
        );
        assert!(problems.is_empty());
        // Not redirects: a number alone, a word with '>' inside, an out-of-range fd.
        let c = build(&spec("x", &["12", "a>b", "999>f"]), &vars(), &mut problems).unwrap();
        assert_eq!(c.args, vec!["12", "a>b", "999>f"]);
    }

    #[test]
    fn a_value_cannot_move_a_redirect_elsewhere() {
        let mut v = vars();
        v.args = "../../etc/passwd".into();
        let mut problems = vec![];
        let c = build(&spec("x", &[">/tmp/log-$args"]), &v, &mut problems).unwrap();
        assert!(c.redirects.is_empty());
        assert_eq!(problems.len(), 1, "{problems:?}");
        v.args = "a/b".into();
        let c = build(&spec("x", &[">>/tmp/$args.log"]), &v, &mut problems).unwrap();
        assert!(c.redirects.is_empty());
        // The template's own directories are fine.
        let c = build(&spec("x", &[">/tmp/x/$name.log"]), &v, &mut problems).unwrap();
        assert_eq!(c.redirects.len(), 1);
    }

    #[test]
    fn nul_and_oversized_arguments_refuse_the_command() {
        let mut v = vars();
        v.args = "a\0b".into();
        let mut problems = vec![];
        assert!(build(&spec("x", &["$args"]), &v, &mut problems).is_err());
        v.args = "a".repeat(MAX_ARG_LEN + 1);
        assert!(build(&spec("x", &["$args"]), &v, &mut problems).is_err());
    }

    #[test]
    fn display_escapes_control_characters_and_is_bounded() {
        let c = CommandLine {
            program: "x".into(),
            args: vec!["a\nb".into(), "c".repeat(1000)],
            redirects: vec![],
        };
        let d = c.display();
        assert!(d.starts_with("x a\\nb c"));
        assert!(d.len() < 420);
    }

    #[test]
    fn name_filters_apply_with_exec_options() {
        let mut s = spec("x", &[]);
        assert!(applies(&s, "any"));
        s.names = vec!["cam1".into()];
        assert!(applies(&s, "cam1"));
        assert!(!applies(&s, "cam2"));
    }

    const SUP: Supervision = Supervision {
        respawn_ms: Some(5000),
        kill_signal: 9,
    };

    fn key() -> Owner {
        Owner::Stream(StreamKey::new("live", "cam1"))
    }

    #[test]
    fn push_runs_until_stopped_and_is_killed() {
        let mut e = Execs::default();
        let (mut a, mut l) = (vec![], vec![]);
        let specs = [spec("ffmpeg", &["-i", "$name"])];
        e.start(ExecKind::Push, &key(), &specs, &vars(), SUP, &mut a, &mut l);
        let [ExecAction::Start {
            id,
            command,
            kill_signal,
            ..
        }] = a.as_slice()
        else {
            panic!("{a:?}")
        };
        assert_eq!(command.args, vec!["-i", "cam1"]);
        assert_eq!(*kill_signal, Some(9));
        let id = *id;
        e.started(id, 4242, &mut l);
        assert!(l.last().unwrap().text.contains("started pid 4242"));
        a.clear();
        e.stop(&key(), &mut a, &mut l);
        assert_eq!(a, vec![ExecAction::Kill { id, signal: 9 }]);
        // Killed: its exit is logged, it is not respawned.
        e.exited(id, ExitStatus::Signal(9), 1000, &mut l);
        assert!(l.last().unwrap().text.contains("killed by signal 9"));
        assert!(e.list().is_empty());
        assert_eq!(e.next_due(1000), None);
    }

    #[test]
    fn a_dead_push_is_respawned_after_the_timeout_while_published() {
        let mut e = Execs::default();
        let (mut a, mut l) = (vec![], vec![]);
        e.start(
            ExecKind::Push,
            &key(),
            &[spec("x", &[])],
            &vars(),
            SUP,
            &mut a,
            &mut l,
        );
        e.started(0, 10, &mut l);
        e.exited(0, ExitStatus::Code(1), 1000, &mut l);
        assert!(l.last().unwrap().text.contains("respawning in 5000 ms"));
        assert_eq!(e.next_due(1000), Some(5000));
        a.clear();
        assert_eq!(e.respawn_due(5999, &mut a, &mut l), Some(1));
        assert!(a.is_empty());
        assert_eq!(e.respawn_due(6000, &mut a, &mut l), None);
        assert!(matches!(a.as_slice(), [ExecAction::Start { id: 0, .. }]));
        e.started(0, 11, &mut l);
        assert_eq!(e.list()[0].restarts, 1);
        assert_eq!(e.list()[0].pid, Some(11));
        // Unpublished while waiting to respawn: forgotten, nothing to kill.
        e.exited(0, ExitStatus::Code(1), 7000, &mut l);
        a.clear();
        e.stop(&key(), &mut a, &mut l);
        assert!(a.is_empty());
        assert!(e.list().is_empty());
    }

    #[test]
    fn respawn_off_and_a_floor_on_the_timeout() {
        let mut e = Execs::default();
        let (mut a, mut l) = (vec![], vec![]);
        let off = Supervision {
            respawn_ms: None,
            kill_signal: 15,
        };
        e.start(
            ExecKind::Push,
            &key(),
            &[spec("x", &[])],
            &vars(),
            off,
            &mut a,
            &mut l,
        );
        e.started(0, 10, &mut l);
        e.exited(0, ExitStatus::Code(0), 1000, &mut l);
        assert!(e.list().is_empty());
        let zero = Supervision {
            respawn_ms: Some(0),
            kill_signal: 15,
        };
        e.start(
            ExecKind::Push,
            &key(),
            &[spec("x", &[])],
            &vars(),
            zero,
            &mut a,
            &mut l,
        );
        e.failed(1, "No such file", 1000, &mut l);
        assert_eq!(e.next_due(1000), Some(MIN_RESPAWN_MS));
    }

    #[test]
    fn event_commands_are_never_killed_or_respawned() {
        let mut e = Execs::default();
        let (mut a, mut l) = (vec![], vec![]);
        e.start(
            ExecKind::Publish,
            &key(),
            &[spec("x", &[])],
            &vars(),
            SUP,
            &mut a,
            &mut l,
        );
        assert!(matches!(
            a.as_slice(),
            [ExecAction::Start {
                kill_signal: None,
                ..
            }]
        ));
        e.started(0, 10, &mut l);
        a.clear();
        e.stop(&key(), &mut a, &mut l);
        e.stop_all(&mut a, &mut l);
        assert!(a.is_empty());
        e.exited(0, ExitStatus::Code(0), 5, &mut l);
        assert!(e.list().is_empty());
        assert_eq!(e.next_due(5), None);
    }

    #[test]
    fn stopped_while_starting_is_killed_once_started() {
        let mut e = Execs::default();
        let (mut a, mut l) = (vec![], vec![]);
        e.start(
            ExecKind::Push,
            &key(),
            &[spec("x", &[])],
            &vars(),
            SUP,
            &mut a,
            &mut l,
        );
        a.clear();
        e.stop(&key(), &mut a, &mut l);
        assert!(a.is_empty());
        e.started(0, 77, &mut l);
        assert_eq!(e.stopping(0), Some(9));
        e.exited(0, ExitStatus::Signal(9), 10, &mut l);
        assert!(e.list().is_empty());
    }

    #[test]
    fn filters_choose_commands_by_stream_name() {
        let mut e = Execs::default();
        let (mut a, mut l) = (vec![], vec![]);
        let mut only_other = spec("x", &[]);
        only_other.names = vec!["other".into()];
        e.start(
            ExecKind::Push,
            &key(),
            &[only_other],
            &vars(),
            SUP,
            &mut a,
            &mut l,
        );
        assert!(a.is_empty());
    }

    #[test]
    fn static_commands_stop_with_the_worker() {
        let mut e = Execs::default();
        let (mut a, mut l) = (vec![], vec![]);
        let no_name = Vars::default();
        e.start(
            ExecKind::Static,
            &Owner::Static,
            &[spec("x", &[])],
            &no_name,
            SUP,
            &mut a,
            &mut l,
        );
        e.start(
            ExecKind::Push,
            &key(),
            &[spec("y", &[])],
            &vars(),
            SUP,
            &mut a,
            &mut l,
        );
        e.started(0, 1, &mut l);
        e.started(1, 2, &mut l);
        a.clear();
        e.stop_all(&mut a, &mut l);
        assert_eq!(a.len(), 2);
    }
}
