//! `play http://host/path ...;`: the file is fetched whole into `play_temp_path` before it
//! plays, as the C module does (`GET <path>/<file>?addr=<client>&<args>`). This runs on a pool
//! thread of its own (see the glue's task batching), with blocking sockets bounded by
//! timeouts, so a slow origin delays only its own player. With `play_local_path`, the finished
//! file is moved there (a cache a local `play` location can list); otherwise it is unlinked
//! at once and lives while the player has it open.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::VodError;
use crate::conf::HttpUrl;

/// Longest wait for a connection to the origin.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest the origin may stay silent while sending.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest response head read.
const MAX_HEAD: usize = 16 * 1024;

/// Where a fetched file goes.
#[derive(Debug, Clone)]
pub struct FetchTo {
    /// `play_temp_path`.
    pub temp_dir: PathBuf,
    /// `play_local_path` (None: "").
    pub cache_dir: Option<PathBuf>,
}

/// Fetches `file_name` under `url` into a temporary file. `Ok(None)` when the origin has no
/// such file (404, or an empty body: the next location is tried); the open file and the path
/// it is known by otherwise.
pub fn fetch(
    url: &HttpUrl,
    file_name: &str,
    query: &str,
    to: &FetchTo,
) -> Result<Option<(File, PathBuf)>, VodError> {
    let remote = |why: String| VodError::Remote(format!("{}: {why}", url.url));
    let mut path = url.path.split('?').next().unwrap_or("/").to_owned();
    if !path.ends_with('/') {
        path.push('/');
    }
    let mut stream = connect(&url.host, url.port).map_err(|e| remote(e.to_string()))?;
    let request = format!(
        "GET {path}{file_name}?{query} HTTP/1.0\r\nHost: {}\r\nUser-Agent: nginx-rtmp-rs\r\n\
         Connection: close\r\n\r\n",
        host_header(&url.host, url.port)
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| remote(e.to_string()))?;
    let (status, length, body_start) = read_head(&mut stream).map_err(remote)?;
    if status == 404 {
        return Ok(None);
    }
    if status != 200 {
        return Err(remote(format!("HTTP status {status}")));
    }
    let (mut file, temp) = temp_file(&to.temp_dir)?;
    let copied = (|| -> Result<u64, String> {
        file.write_all(&body_start).map_err(|e| e.to_string())?;
        let mut total = body_start.len() as u64;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = stream.read(&mut buf).map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            file.write_all(buf.get(..n).unwrap_or_default())
                .map_err(|e| format!("writing {}: {e}", temp.display()))?;
            total += n as u64;
        }
        match length {
            Some(l) if l != total => Err(format!("got {total} of {l} bytes")),
            _ => Ok(total),
        }
    })();
    let copied = match copied {
        Ok(n) => n,
        Err(why) => {
            let _ = std::fs::remove_file(&temp);
            return Err(remote(why));
        }
    };
    if copied == 0 {
        let _ = std::fs::remove_file(&temp);
        return Ok(None);
    }
    if let Some(cache) = &to.cache_dir {
        let kept = cache.join(file_name);
        if std::fs::rename(&temp, &kept).is_ok() {
            return Ok(Some((file, kept)));
        }
    }
    // Not cached: the open file is all that is left of it.
    let _ = std::fs::remove_file(&temp);
    Ok(Some((file, temp)))
}

fn host_header(host: &str, port: u16) -> String {
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    if port == 80 {
        host
    } else {
        format!("{host}:{port}")
    }
}

fn connect(host: &str, port: u16) -> std::io::Result<TcpStream> {
    let mut last = std::io::Error::other("no address");
    for addr in (host, port).to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
            Ok(s) => {
                s.set_read_timeout(Some(IDLE_TIMEOUT))?;
                s.set_write_timeout(Some(IDLE_TIMEOUT))?;
                return Ok(s);
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Reads the response head: (status, Content-Length, the body bytes read with it).
fn read_head(stream: &mut TcpStream) -> Result<(u16, Option<u64>, Vec<u8>), String> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        if buf.len() > MAX_HEAD {
            return Err("response head too large".into());
        }
        let n = stream.read(&mut chunk).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed before the response head".into());
        }
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
    };
    let head = String::from_utf8_lossy(buf.get(..end).unwrap_or_default()).into_owned();
    let body = buf.get(end + 4..).unwrap_or_default().to_vec();
    parse_head(&head).map(|(status, length)| (status, length, body))
}

/// Status and Content-Length of a response head.
fn parse_head(head: &str) -> Result<(u16, Option<u64>), String> {
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.split(' ');
    let version = parts.next().unwrap_or_default();
    let status = parts.next().and_then(|s| s.parse::<u16>().ok());
    let Some(status) = status.filter(|_| version.starts_with("HTTP/")) else {
        return Err(format!(
            "bad status line {:?}",
            status_line.chars().take(80).collect::<String>()
        ));
    };
    let mut length = None;
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            if name.trim().eq_ignore_ascii_case("content-length") {
                length = value.trim().parse::<u64>().ok();
            } else if name.trim().eq_ignore_ascii_case("transfer-encoding") {
                // Not sent to HTTP/1.0 clients; refuse rather than store the framing.
                return Err("chunked response to an HTTP/1.0 request".into());
            }
        }
    }
    Ok((status, length))
}

/// A new file in `dir` only this process can read, named like the C module's.
fn temp_file(dir: &Path) -> Result<(File, PathBuf), VodError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!("nginx-rtmp-vod-{}-{n}", std::process::id()));
        match OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(f) => return Ok((f, path)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(VodError::Remote(format!(
                    "cannot create a file in {}: {e}",
                    dir.display()
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_heads() {
        assert_eq!(
            parse_head("HTTP/1.1 200 OK\r\nContent-Length: 12\r\nServer: x"),
            Ok((200, Some(12)))
        );
        assert_eq!(parse_head("HTTP/1.0 404 Not Found"), Ok((404, None)));
        assert!(parse_head("SSH-2.0-OpenSSH").is_err());
        assert!(parse_head("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked").is_err());
        assert_eq!(host_header("::1", 8080), "[::1]:8080");
        assert_eq!(host_header("example.com", 80), "example.com");
    }
}
