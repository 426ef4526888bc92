//! A plain-HTTP stand-in for a Notary server that serves a fixed set of metadata files — files
//! captured from the real notary-server ([`capture`]) — and can be switched to another set while
//! running: a server replaying older metadata (rollback), or one that lost its data.
//!
//! It answers `GET /v2/<GUN>/_trust/tuf/<file>` from the current set (any GUN). A by-checksum
//! request (`<role>.<sha256 hex>.json`) is answered with `<role>.json` only when those bytes hash
//! to the requested checksum, as a real server's immutable by-checksum files would be. Anything
//! else is a 404 with Notary's `METADATA_NOT_FOUND` body. One connection at a time,
//! `Connection: close`.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::notary::NotaryServer;

/// Metadata files by name relative to `_trust/tuf/` (`root.json`, `targets/releases.json`, …).
pub type Files = BTreeMap<String, Vec<u8>>;

/// The current metadata of `gun` on the real server: root, timestamp, snapshot, targets and
/// `targets/releases` when the repository has that delegation.
pub fn capture(server: &NotaryServer, gun: &str) -> Files {
    let mut files = Files::new();
    for name in [
        "root.json",
        "timestamp.json",
        "snapshot.json",
        "targets.json",
        "targets/releases.json",
    ] {
        let r = server.get_metadata(gun, name);
        match r.status {
            200 => {
                files.insert(name.to_string(), r.body);
            }
            404 if name == "targets/releases.json" => {}
            s => panic!("capture {gun}/{name}: status {s}: {}", r.text()),
        }
    }
    files
}

pub struct FakeNotary {
    port: u16,
    files: Arc<Mutex<Files>>,
    requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeNotary {
    pub fn start(files: Files) -> FakeNotary {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind fake notary");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().unwrap().port();
        let files = Arc::new(Mutex::new(files));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (files, requests, stop) = (files.clone(), requests.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let _ = serve_one(stream, &files, &requests);
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
            })
        };
        FakeNotary {
            port,
            files,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Serve another set of files from now on.
    pub fn replace(&self, files: Files) {
        *self.files.lock().unwrap() = files;
    }

    /// The request paths seen so far.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for FakeNotary {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve_one(
    mut stream: TcpStream,
    files: &Mutex<Files>,
    requests: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let mut parts = head.lines().next().unwrap_or("").split(' ');
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    requests.lock().unwrap().push(path.clone());
    let path = path.split('?').next().unwrap_or("");
    let body = if path == "/v2/" || path == "/v2" {
        Some(b"{}".to_vec())
    } else {
        path.strip_prefix("/v2/")
            .and_then(|rest| rest.split_once("/_trust/tuf/"))
            .and_then(|(_, file)| lookup(&files.lock().unwrap(), file))
    };
    let (status, body) = match body {
        Some(b) => ("200 OK", b),
        None => (
            "404 Not Found",
            br#"{"errors":[{"code":"METADATA_NOT_FOUND","message":"You have requested metadata that does not exist.","detail":{}}]}"#
                .to_vec(),
        ),
    };
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if method != "HEAD" {
        out.extend_from_slice(&body);
    }
    stream.write_all(&out)?;
    stream.flush()
}

fn lookup(files: &Files, file: &str) -> Option<Vec<u8>> {
    if let Some(b) = files.get(file) {
        return Some(b.clone());
    }
    // `<role>.<64 hex>.json` → `<role>.json` when the checksum matches.
    let stem = file.strip_suffix(".json")?;
    let (role, hex) = stem.rsplit_once('.')?;
    if hex.len() != 64 {
        return None;
    }
    let b = files.get(&format!("{role}.json"))?;
    (super::http::sha256_digest(b) == format!("sha256:{hex}")).then(|| b.clone())
}
