//! Test doubles for callback targets: a recording HTTP backend, a one-name DNS server and an
//! `openssl s_server` over a self-signed certificate. Everything listens on 127.0.0.1 only,
//! is bounded in time, and stops (threads joined, children killed by PID) when dropped.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How long the backend waits for a request's bytes once a connection is accepted.
const REQUEST_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest request head the backend reads.
const MAX_HEAD: usize = 64 * 1024;

/// One request the backend received.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// Query string (without `?`), as sent.
    pub query: String,
    pub body: String,
    /// Form fields: from the query (GET) or the `application/x-www-form-urlencoded` body (POST),
    /// in order, decoded.
    pub fields: Vec<(String, String)>,
    /// When the whole request had been read.
    pub at: Instant,
    /// Status the backend answered (`None`: held without an answer, `/slow`).
    pub status: Option<u16>,
}

impl Request {
    /// First value of form field `name`.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The `call` field (`publish`, `play_done`, ...), or "".
    pub fn call(&self) -> &str {
        self.field("call").unwrap_or("")
    }

    /// `field` parsed as an unsigned number.
    pub fn number(&self, name: &str) -> Option<u64> {
        self.field(name)?.parse().ok()
    }
}

struct State {
    requests: Mutex<Vec<Request>>,
    /// `/slow` connections, kept open (unanswered) until the backend is dropped.
    held: Mutex<Vec<TcpStream>>,
    stop: AtomicBool,
    /// `/update` answers 200 this many times, then 403.
    update_allowed: usize,
    updates: AtomicUsize,
}

/// A recording HTTP backend on 127.0.0.1 for `on_*` callbacks. Answers by path:
/// - `/allow` 204; `/deny` 403; `/rename` 302 with `Location: renamed`;
/// - `/auth` 204 if the form field `key` is `good`, else 403;
/// - `/slow` reads the request and never answers (the socket stays open until drop);
/// - `/update` 200 the first `update_allowed` times, then 403;
/// - anything else 404.
pub struct Backend {
    pub port: u16,
    state: Arc<State>,
    accept: Option<JoinHandle<()>>,
}

impl Backend {
    /// A backend whose `/update` allows once, then denies.
    pub fn start() -> Backend {
        Self::with_update_allowed(1)
    }

    pub fn with_update_allowed(update_allowed: usize) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind backend");
        let port = listener.local_addr().expect("backend addr").port();
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let state = Arc::new(State {
            requests: Mutex::new(Vec::new()),
            held: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            update_allowed,
            updates: AtomicUsize::new(0),
        });
        let accept = {
            let state = Arc::clone(&state);
            thread::spawn(move || accept_loop(listener, state))
        };
        Backend {
            port,
            state,
            accept: Some(accept),
        }
    }

    /// `http://127.0.0.1:<port><path>`, e.g. `backend.url("/allow")`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Request> {
        self.state
            .requests
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }

    /// Requests whose `call` field is `call`.
    pub fn calls(&self, call: &str) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.call() == call)
            .collect()
    }

    /// Waits (bounded) until at least `n` requests with `call` arrived; returns those there are.
    pub fn wait_calls(&self, call: &str, n: usize, timeout: Duration) -> Vec<Request> {
        self.wait_matching(|r| r.call() == call, n, timeout)
    }

    /// Waits (bounded) until at least `n` requests for `path` arrived; returns those there are.
    pub fn wait_path(&self, path: &str, n: usize, timeout: Duration) -> Vec<Request> {
        self.wait_matching(|r| r.path == path, n, timeout)
    }

    fn wait_matching(
        &self,
        pred: impl Fn(&Request) -> bool,
        n: usize,
        timeout: Duration,
    ) -> Vec<Request> {
        let deadline = Instant::now() + timeout;
        loop {
            let got: Vec<Request> = self.requests().into_iter().filter(|r| pred(r)).collect();
            if got.len() >= n || Instant::now() > deadline {
                return got;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits (bounded) until every `(call, n)` has at least `n` requests.
    pub fn wait_all(&self, wanted: &[(&str, usize)], timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let reqs = self.requests();
            let done = wanted
                .iter()
                .all(|(call, n)| reqs.iter().filter(|r| r.call() == *call).count() >= *n);
            if done {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// A one-line summary of what arrived, for failure messages.
    pub fn summary(&self) -> String {
        self.requests()
            .iter()
            .map(|r| format!("{} {} ({:?}) -> {:?}", r.method, r.path, r.call(), r.status))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        if let Ok(mut held) = self.state.held.lock() {
            for s in held.drain(..) {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
    }
}

fn accept_loop(listener: TcpListener, state: Arc<State>) {
    let mut workers: Vec<JoinHandle<()>> = Vec::new();
    while !state.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                let state = Arc::clone(&state);
                workers.push(thread::spawn(move || serve(stream, &state)));
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(10))
            }
            Err(_) => thread::sleep(Duration::from_millis(10)),
        }
        workers.retain(|w| !w.is_finished());
    }
    // Each worker is bounded by REQUEST_READ_TIMEOUT.
    for w in workers {
        let _ = w.join();
    }
}

fn serve(mut stream: TcpStream, state: &State) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(REQUEST_READ_TIMEOUT));
    let _ = stream.set_write_timeout(Some(REQUEST_READ_TIMEOUT));
    let Some(mut req) = read_request(&mut stream) else {
        return;
    };
    let answer: Option<(u16, &str, &str)> = match req.path.as_str() {
        "/allow" => Some((204, "No Content", "")),
        "/deny" => Some((403, "Forbidden", "")),
        "/rename" => Some((302, "Found", "Location: renamed\r\n")),
        "/auth" if req.field("key") == Some("good") => Some((204, "No Content", "")),
        "/auth" => Some((403, "Forbidden", "")),
        "/update" => {
            let n = state.updates.fetch_add(1, Ordering::SeqCst);
            if n < state.update_allowed {
                Some((200, "OK", ""))
            } else {
                Some((403, "Forbidden", ""))
            }
        }
        "/slow" => None,
        _ => Some((404, "Not Found", "")),
    };
    req.status = answer.map(|(code, _, _)| code);
    // Recorded before answering: once the module acts on the answer, the request is visible.
    if let Ok(mut r) = state.requests.lock() {
        r.push(req);
    }
    match answer {
        Some((code, reason, headers)) => {
            let text = format!(
                "HTTP/1.1 {code} {reason}\r\n{headers}Content-Length: 0\r\nConnection: close\r\n\r\n"
            );
            let _ = stream.write_all(text.as_bytes());
            let _ = stream.flush();
            let _ = stream.shutdown(Shutdown::Write);
        }
        None => {
            if let Ok(mut held) = state.held.lock() {
                held.push(stream);
            }
        }
    }
}

/// Reads one HTTP request (head, then a `Content-Length` body).
fn read_request(stream: &mut TcpStream) -> Option<Request> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(p) = find(&buf, b"\r\n\r\n") {
            break p;
        }
        if buf.len() > MAX_HEAD {
            return None;
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_string();
    let target = first.next()?.to_string();
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let length: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    body.truncate(length);
    let body = String::from_utf8_lossy(&body).into_owned();
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (target.clone(), String::new()),
    };
    let form = headers
        .get("content-type")
        .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    let fields = if method == "POST" && form {
        parse_form(&body)
    } else {
        parse_form(&query)
    };
    Some(Request {
        method,
        path,
        query,
        body,
        fields,
        at: Instant::now(),
        status: None,
    })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// `application/x-www-form-urlencoded`: `k=v&k2=v2`, `+` is a space, `%XX` a byte.
pub fn parse_form(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (form_decode(k), form_decode(v))
        })
        .collect()
}

pub fn form_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

// ---------------------------------------------------------------------------------------------
// DNS

/// One question the DNS server was asked.
#[derive(Debug, Clone)]
pub struct DnsQuery {
    /// Lower-case, without the trailing dot.
    pub name: String,
    /// 1 = A, 28 = AAAA.
    pub qtype: u16,
    pub at: Instant,
}

/// A DNS server on 127.0.0.1 (UDP) that knows one name: A queries for it get `addr`, other
/// types of it an empty answer, any other name NXDOMAIN. Records every question.
pub struct DnsServer {
    pub port: u16,
    queries: Arc<Mutex<Vec<DnsQuery>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl DnsServer {
    pub fn start(name: &str, addr: Ipv4Addr) -> DnsServer {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind DNS socket");
        let port = sock.local_addr().expect("DNS addr").port();
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .expect("DNS read timeout");
        let queries = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let queries = Arc::clone(&queries);
            let stop = Arc::clone(&stop);
            let name = name.to_ascii_lowercase();
            thread::spawn(move || {
                let mut buf = [0u8; 1500];
                while !stop.load(Ordering::SeqCst) {
                    let Ok((n, from)) = sock.recv_from(&mut buf) else {
                        continue;
                    };
                    let Some((q, reply)) = dns_answer(&buf[..n], &name, addr) else {
                        continue;
                    };
                    if let Ok(mut qs) = queries.lock() {
                        qs.push(q);
                    }
                    let _ = sock.send_to(&reply, from);
                }
            })
        };
        DnsServer {
            port,
            queries,
            stop,
            thread: Some(thread),
        }
    }

    pub fn queries(&self) -> Vec<DnsQuery> {
        self.queries.lock().map(|q| q.clone()).unwrap_or_default()
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Parses a query (one question, uncompressed name) and builds the reply.
fn dns_answer(q: &[u8], known: &str, addr: Ipv4Addr) -> Option<(DnsQuery, Vec<u8>)> {
    if q.len() < 12 || q[2] & 0x80 != 0 {
        return None;
    }
    let qdcount = u16::from_be_bytes([q[4], q[5]]);
    if qdcount < 1 {
        return None;
    }
    let mut i = 12;
    let mut labels = Vec::new();
    loop {
        let len = *q.get(i)? as usize;
        i += 1;
        if len == 0 {
            break;
        }
        if len & 0xc0 != 0 {
            return None;
        }
        labels.push(String::from_utf8_lossy(q.get(i..i + len)?).to_ascii_lowercase());
        i += len;
    }
    let qtype = u16::from_be_bytes([*q.get(i)?, *q.get(i + 1)?]);
    let question_end = i + 4;
    if q.len() < question_end {
        return None;
    }
    let name = labels.join(".");
    let found = name == known;
    let answer_a = found && qtype == 1;
    let rcode = if found { 0 } else { 3 };
    let mut r = Vec::with_capacity(question_end + 16);
    r.extend_from_slice(&q[0..2]);
    // QR, the query's opcode and RD, RA, rcode.
    r.push(0x80 | (q[2] & 0x79));
    r.push(0x80 | rcode);
    r.extend_from_slice(&[0, 1, 0, u8::from(answer_a), 0, 0, 0, 0]);
    r.extend_from_slice(&q[12..question_end]);
    if answer_a {
        // Name: pointer to the question's; type A, class IN, TTL 60, 4 bytes.
        r.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
        r.extend_from_slice(&addr.octets());
    }
    Some((
        DnsQuery {
            name,
            qtype,
            at: Instant::now(),
        },
        r,
    ))
}

// ---------------------------------------------------------------------------------------------
// TLS

/// A self-signed certificate for `name` (CN and subjectAltName DNS) made with the openssl CLI
/// in `dir`: returns (certificate, key) paths.
pub fn self_signed_cert(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let cert = dir.join(format!("{name}.crt.pem"));
    let key = dir.join(format!("{name}.key.pem"));
    let out = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .arg("-subj")
        .arg(format!("/CN={name}"))
        .arg("-addext")
        .arg(format!("subjectAltName=DNS:{name}"))
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdin(Stdio::null())
        .output()
        .expect("run openssl req (is openssl installed?)");
    assert!(
        out.status.success() && cert.is_file() && key.is_file(),
        "openssl req for {name} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, key)
}

/// `openssl s_server -www` on 127.0.0.1: answers any GET with `HTTP/1.0 200 ok`. Killed by
/// PID on drop.
pub struct TlsServer {
    pub port: u16,
    child: Option<Child>,
}

impl TlsServer {
    pub fn start(cert: &Path, key: &Path) -> TlsServer {
        let mut last = String::new();
        for _ in 0..3 {
            let port = super::free_port();
            let log = cert.with_extension(format!("s_server-{port}.log"));
            let err = fs::File::create(&log).expect("s_server log");
            let mut child = Command::new("openssl")
                .arg("s_server")
                .arg("-accept")
                .arg(format!("127.0.0.1:{port}"))
                .arg("-cert")
                .arg(cert)
                .arg("-key")
                .arg(key)
                .args(["-www", "-quiet"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(err)
                .spawn()
                .expect("spawn openssl s_server");
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let Ok(Some(st)) = child.try_wait() {
                    last = format!("s_server exited with {st}: {}", super::read_lossy(&log));
                    break;
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return TlsServer {
                        port,
                        child: Some(child),
                    };
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    last = format!("s_server did not listen on {port} within 10 s");
                    break;
                }
                thread::sleep(Duration::from_millis(25));
            }
        }
        panic!("openssl s_server could not start: {last}");
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
