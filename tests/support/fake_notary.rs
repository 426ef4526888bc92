//! THE fake Notary server: a plain-HTTP stand-in that serves a fixed set of metadata files
//! (captured from the real notary-server with [`capture`], or a recorded state directory read
//! with [`from_dir`]) and can be switched to another set while running (a server replaying
//! older metadata, one whose trust data was re-created) or taken down (503).
//!
//! It answers `GET /v2/<GUN>/_trust/tuf/<file>` from the current set: for any GUN, or only for
//! the GUN given to [`FakeNotary::with_token_auth`], which also puts the files behind Docker-style
//! token auth (401 + `Bearer realm="http://<addr>/token",service="notary-server",scope=…` until
//! the token from `/token` is presented; the scopes asked are recorded). A by-checksum request
//! (`<role>.<sha256 hex>.json`) is answered with `<role>.json` only when those bytes hash to the
//! requested checksum, as a real server's immutable by-checksum files would be. Anything else is
//! a 404 with Notary's `METADATA_NOT_FOUND` body (so an empty set is a server with no trust data at
//! all). HTTP/1.1 keep-alive, one thread per connection: a burst of many requests reuses a few
//! connections, as against a real server.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::Mutex;

use super::notary::NotaryServer;

/// Metadata files by name relative to `_trust/tuf/` (`root.json`, `targets/releases.json`, …).
pub type Files = BTreeMap<String, Vec<u8>>;

/// The metadata files of a repository as Docker reads them (`targets/releases.json` only when
/// the repository has that delegation).
pub const METADATA_FILES: [&str; 5] = [
    "root.json",
    "timestamp.json",
    "snapshot.json",
    "targets.json",
    "targets/releases.json",
];

/// The current metadata of `gun` on the real server: root, timestamp, snapshot, targets and
/// `targets/releases` when the repository has that delegation.
pub fn capture(server: &NotaryServer, gun: &str) -> Files {
    let mut files = Files::new();
    for name in METADATA_FILES {
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

/// Every file under `dir` (a recorded state of a golden scenario), by relative path.
pub fn from_dir(dir: &Path) -> Files {
    fn walk(root: &Path, dir: &Path, files: &mut Files) {
        for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                walk(root, &path, files);
            } else {
                let name = path.strip_prefix(root).expect("below root");
                files.insert(
                    name.to_string_lossy().into_owned(),
                    std::fs::read(&path).expect("read metadata"),
                );
            }
        }
    }
    let mut files = Files::new();
    walk(dir, dir, &mut files);
    files
}

/// The files of a repository built in code (`trust::testkit::TestRepo::build`), so a test can
/// serve metadata it has signed itself, broken in exactly the way it wants.
pub fn from_source(src: &trustgate::trust::MemorySource) -> Files {
    src.names()
        .filter_map(|n| Some((n.to_string(), src.get(n)?.clone())))
        .collect()
}

/// What the fake serves now.
struct State {
    /// `None`: down (503).
    files: Option<Files>,
    /// Only this GUN, behind token auth.
    token_gun: Option<String>,
    requests: Vec<String>,
    scopes: Vec<String>,
    /// Files answered with a body that never ends (TUF's endless-data attack), with the
    /// `Content-Length` declared for it (`None`: chunked, no length at all).
    endless: BTreeMap<String, Option<u64>>,
}

const TOKEN: &str = "notary-token";

pub struct FakeNotary {
    port: u16,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeNotary {
    /// Serves `files` for any GUN, without auth.
    pub fn start(files: Files) -> FakeNotary {
        Self::start_with(files, None)
    }

    /// Serves `files` for `gun` only, behind Docker-style token auth.
    pub fn with_token_auth(gun: &str, files: Files) -> FakeNotary {
        Self::start_with(files, Some(gun.to_string()))
    }

    fn start_with(files: Files, token_gun: Option<String>) -> FakeNotary {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind fake notary");
        let port = listener.local_addr().expect("addr").port();
        let state = Arc::new(Mutex::new(State {
            files: Some(files),
            token_gun,
            requests: Vec::new(),
            scopes: Vec::new(),
            endless: BTreeMap::new(),
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (state, stop) = (state.clone(), stop.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    if let Ok(stream) = stream {
                        let state = state.clone();
                        std::thread::spawn(move || serve_connection(stream, &state, port));
                    }
                }
            })
        };
        FakeNotary {
            port,
            state,
            stop,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Serve another set of files from now on.
    pub fn replace(&self, files: Files) {
        let mut st = self.state.lock();
        st.files = Some(files);
        st.endless.clear();
    }

    /// Answer 503 to every metadata request from now on (until [`FakeNotary::replace`]).
    pub fn take_down(&self) {
        self.state.lock().files = None;
    }

    /// From now on, answer `file` (e.g. `timestamp.json`, also when asked by checksum) 200 with
    /// a body that never ends: chunked with no length (`declared: None`), or under a
    /// `Content-Length` of `declared` bytes that is then streamed for as long as the client reads.
    /// Each response stops after [`ENDLESS_CAP`] bytes, so a client that never stops reading
    /// fails its test instead of filling the machine.
    pub fn serve_endless(&self, file: &str, declared: Option<u64>) {
        self.state.lock().endless.insert(file.to_string(), declared);
    }

    /// The request paths seen so far.
    pub fn requests(&self) -> Vec<String> {
        self.state.lock().requests.clone()
    }

    /// The scopes asked of the token endpoint.
    pub fn scopes(&self) -> Vec<String> {
        self.state.lock().scopes.clone()
    }
}

impl Drop for FakeNotary {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Requests on one connection until the client closes it (or is silent for 5 s).
fn serve_connection(mut stream: TcpStream, state: &Mutex<State>, port: u16) {
    if stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .is_err()
    {
        return;
    }
    let mut buf = Vec::new();
    while let Ok(true) = serve_one(&mut stream, &mut buf, state, port) {}
}

/// One request (a head: the GETs and HEADs asked here carry no body). `false` once the client
/// closed the connection.
fn serve_one(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    state: &Mutex<State>,
    port: u16,
) -> std::io::Result<bool> {
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Ok(false);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    buf.drain(..end);
    let mut lines = head.lines();
    let mut parts = lines.next().unwrap_or("").split(' ');
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    let authorized = lines.any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.eq_ignore_ascii_case("authorization") && v.trim() == format!("Bearer {TOKEN}")
        })
    });
    let endless = endless_for(&state.lock(), &target);
    if let Some(declared) = endless {
        state.lock().requests.push(target.clone());
        write_endless(stream, declared);
        return Ok(false);
    }
    let (status, headers, body) = answer(&mut state.lock(), &target, authorized, port);
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{headers}\r\n",
        body.len()
    )
    .into_bytes();
    if method != "HEAD" {
        out.extend_from_slice(&body);
    }
    stream.write_all(&out)?;
    stream.flush()?;
    Ok(true)
}

/// What one endless response sends at most: 256 MiB.
pub const ENDLESS_CAP: u64 = 256 << 20;

/// The endless answer for `target`, if its file is one (`Some(declared length)`).
fn endless_for(st: &State, target: &str) -> Option<Option<u64>> {
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    let (_, file) = path.strip_prefix("/v2/")?.split_once("/_trust/tuf/")?;
    if let Some(d) = st.endless.get(file) {
        return Some(*d);
    }
    // `<role>.<64 hex>.json` is `<role>.json` asked by checksum.
    let (role, hex) = file.strip_suffix(".json")?.rsplit_once('.')?;
    (hex.len() == 64)
        .then(|| st.endless.get(&format!("{role}.json")).copied())
        .flatten()
}

/// A body of JSON white space that never ends, until the client hangs up or [`ENDLESS_CAP`].
fn write_endless(stream: &mut TcpStream, declared: Option<u64>) {
    let head = match declared {
        Some(n) => format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {n}\r\n\r\n"),
        None => "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".to_string(),
    };
    if stream.write_all(head.as_bytes()).is_err() {
        return;
    }
    let piece = [b' '; 16 * 1024];
    let mut chunk = Vec::with_capacity(piece.len() + 16);
    match declared {
        Some(_) => chunk.extend_from_slice(&piece),
        None => {
            chunk.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
            chunk.extend_from_slice(&piece);
            chunk.extend_from_slice(b"\r\n");
        }
    }
    let mut sent = 0u64;
    while sent < ENDLESS_CAP {
        if stream.write_all(&chunk).is_err() {
            return;
        }
        sent += piece.len() as u64;
    }
}

const NOT_FOUND: &[u8] = br#"{"errors":[{"code":"METADATA_NOT_FOUND","message":"You have requested metadata that does not exist.","detail":{}}]}"#;

/// (status line, extra header lines, body) for one request.
fn answer(
    st: &mut State,
    target: &str,
    authorized: bool,
    port: u16,
) -> (&'static str, String, Vec<u8>) {
    st.requests.push(target.to_string());
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if path == "/v2/" || path == "/v2" {
        return ("200 OK", String::new(), b"{}".to_vec());
    }
    if let Some(gun) = st.token_gun.clone() {
        if path == "/token" {
            for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
                if k == "scope" {
                    st.scopes.push(v.into_owned());
                }
            }
            let token = format!(r#"{{"token":"{TOKEN}","expires_in":300}}"#);
            return ("200 OK", String::new(), token.into_bytes());
        }
        if !authorized {
            let challenge = format!(
                "WWW-Authenticate: Bearer realm=\"http://127.0.0.1:{port}/token\",service=\"notary-server\",scope=\"repository:{gun}:pull\"\r\n"
            );
            return (
                "401 Unauthorized",
                challenge,
                br#"{"errors":[{"code":"UNAUTHORIZED"}]}"#.to_vec(),
            );
        }
    }
    let file = path
        .strip_prefix("/v2/")
        .and_then(|rest| rest.split_once("/_trust/tuf/"))
        .filter(|(gun, _)| st.token_gun.as_deref().is_none_or(|g| g == *gun))
        .map(|(_, file)| file);
    let Some(file) = file else {
        return ("404 Not Found", String::new(), NOT_FOUND.to_vec());
    };
    let Some(files) = &st.files else {
        return ("503 Service Unavailable", String::new(), b"down".to_vec());
    };
    match lookup(files, file) {
        Some(b) => ("200 OK", String::new(), b),
        None => ("404 Not Found", String::new(), NOT_FOUND.to_vec()),
    }
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
