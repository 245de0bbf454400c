//! nginx with several worker processes: [`Server::start`] always renders `worker_processes 1`.
//! [`Launch`] renders the same configuration with `worker_processes N`, optionally `reuseport`
//! on the HTTP listener (so each new HTTP connection lands on a random worker, as RTMP ones do
//! with `listen ... reuseport` in `rtmp{}`), and with an explicit nginx binary and module (the
//! C module beside ours in one test).

use super::*;

/// How to start nginx.
#[derive(Clone, Debug)]
pub struct Launch {
    pub workers: usize,
    /// `listen 127.0.0.1:{HTTP_PORT} reuseport;` instead of the plain listener.
    pub http_reuseport: bool,
    pub nginx: PathBuf,
    pub module: PathBuf,
}

impl Launch {
    /// The module under test (see [`nginx_bin`], [`module_path`]) with `workers` workers and
    /// `reuseport` on the HTTP listener.
    pub fn workers(workers: usize) -> Launch {
        Launch {
            workers,
            http_reuseport: true,
            nginx: nginx_bin(),
            module: module_path(),
        }
    }

    /// Starts nginx (retrying on a port race, like [`Server::start`]); the server is up when
    /// both ports accept and every worker has logged its start.
    pub fn start(&self, rtmp_block: &str, extra_http: &str) -> Server {
        self.start_edited(rtmp_block, extra_http, &|conf| conf)
    }

    /// [`Launch::start`] with the rendered configuration passed through `edit` first (e.g. to
    /// raise `worker_connections`).
    pub fn start_edited(
        &self,
        rtmp_block: &str,
        extra_http: &str,
        edit: &dyn Fn(String) -> String,
    ) -> Server {
        let mut last_err = String::new();
        for _attempt in 0..5 {
            match self.try_start(rtmp_block, extra_http, edit) {
                Ok(s) => return s,
                Err(StartError::PortTaken(log)) => last_err = log,
                Err(StartError::Failed(msg)) => panic!("{msg}"),
            }
        }
        panic!("nginx could not bind its ports after 5 attempts:\n{last_err}");
    }

    /// The configuration text [`Launch::start`] writes.
    pub fn render(
        &self,
        prefix: &Path,
        rtmp_block: &str,
        extra_http: &str,
        rtmp: u16,
        http: u16,
    ) -> String {
        let conf = render_conf(prefix, rtmp_block, extra_http, rtmp, http);
        let (_, rest) = conf.split_once('\n').expect("rendered conf has lines");
        let mut conf = format!("load_module {};\n{rest}", self.module.display());
        conf = conf.replacen(
            "worker_processes 1;",
            &format!("worker_processes {};", self.workers),
            1,
        );
        if self.http_reuseport {
            conf = conf.replacen(
                &format!("listen 127.0.0.1:{http};"),
                &format!("listen 127.0.0.1:{http} reuseport;"),
                1,
            );
        }
        conf
    }

    fn try_start(
        &self,
        rtmp_block: &str,
        extra_http: &str,
        edit: &dyn Fn(String) -> String,
    ) -> Result<Server, StartError> {
        let prefix = fresh_prefix();
        let rtmp_port = free_port();
        let mut http_port = free_port();
        while http_port == rtmp_port {
            http_port = free_port();
        }
        let conf = edit(self.render(&prefix, rtmp_block, extra_http, rtmp_port, http_port));
        let conf_path = prefix.join("conf/nginx.conf");
        fs::write(&conf_path, &conf).expect("write nginx.conf");
        let log_path = prefix.join("logs/error.log");
        let stdout = fs::File::create(prefix.join("logs/stdout.log")).expect("stdout log");
        let stderr = fs::File::create(prefix.join("logs/stderr.log")).expect("stderr log");
        let child = Command::new(&self.nginx)
            .arg("-p")
            .arg(&prefix)
            .arg("-c")
            .arg(&conf_path)
            .arg("-e")
            .arg(&log_path)
            .current_dir(&prefix)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .process_group(0)
            .spawn()
            .expect("spawn nginx");
        let mut server = Server {
            prefix,
            conf_path,
            rtmp_port,
            http_port,
            child: Some(child),
            stopped_status: None,
            stop_called: false,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = server.child_mut().try_wait().expect("try_wait") {
                server.child = None;
                server.stopped_status = Some(status);
                let log = server.all_logs();
                if log.contains("Address already in use") {
                    let _ = fs::remove_dir_all(&server.prefix);
                    return Err(StartError::PortTaken(log));
                }
                return Err(StartError::Failed(format!(
                    "nginx exited at startup with {status}; prefix {}\n--- config ---\n{conf}\n--- logs ---\n{log}",
                    server.prefix.display()
                )));
            }
            let started = server.error_log().matches("start worker process ").count();
            if started >= self.workers
                && TcpStream::connect(("127.0.0.1", rtmp_port)).is_ok()
                && TcpStream::connect(("127.0.0.1", http_port)).is_ok()
            {
                return Ok(server);
            }
            if Instant::now() > deadline {
                let log = server.all_logs();
                server.kill_group();
                return Err(StartError::Failed(format!(
                    "nginx ({} workers) did not come up within {START_TIMEOUT:?}; prefix {}\n\
                     --- config ---\n{conf}\n--- logs ---\n{log}",
                    self.workers,
                    server.prefix.display()
                )));
            }
            thread::sleep(Duration::from_millis(25));
        }
    }
}

/// How the master ended, once it has (`None` while it runs or if it was killed by the harness).
pub fn master_status(server: &mut Server) -> Option<ExitStatus> {
    if server.is_running() {
        None
    } else {
        server.stopped_status
    }
}

/// [`Server::finish`], and the master must have exited normally: `Server::stop` does not look at
/// how the master ended, so a master that crashes while reaping its workers would go unseen.
pub fn finish_checked(mut server: Server) {
    server.stop();
    let status = server.stopped_status;
    assert!(
        status.is_some_and(|s| s.success()),
        "the nginx master ended with {status:?} on stop; prefix {}\n{}",
        server.prefix.display(),
        server.error_log()
    );
    server.assert_clean_log();
}
