//! Fault injection in front of real servers (issue 15): proxies that run on the harness's tokio
//! runtime, listen on 127.0.0.1 with a port they pick, and stop when dropped.
//!
//! - [`HttpFaultProxy`]: a plain-HTTP/1.1 reverse proxy in front of one server (e.g. the
//!   notary-server, over TLS with its test CA). It counts requests by path and, on demand,
//!   answers 500, answers garbage, or refuses connections, so a test can both count what
//!   reaches the real server and make it misbehave.
//! - [`TrickleProxy`]: a TCP forwarder that, once switched to slow mode, passes the server's
//!   bytes to the client one per interval (an upstream answering at 1 byte/s), or, with
//!   [`TrickleProxy::trickle_blob_bodies`], sends the headers of blob GET answers at full speed
//!   and then their bodies a byte per interval.
//!
//! Both are minimal on purpose: the real servers behind them do the protocol work; the proxies
//! only add the one fault a case needs.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use super::http::runtime;

/// What [`HttpFaultProxy`] does with the next requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum HttpFault {
    /// Forward to the real server.
    Pass = 0,
    /// Answer `500 Internal Server Error` without asking the server.
    Status500 = 1,
    /// Answer 200 with bytes that are not what was asked for.
    Garbage = 2,
    /// Close each connection without answering (the server is gone).
    Refuse = 3,
}

impl HttpFault {
    fn from_u8(v: u8) -> HttpFault {
        match v {
            1 => HttpFault::Status500,
            2 => HttpFault::Garbage,
            3 => HttpFault::Refuse,
            _ => HttpFault::Pass,
        }
    }
}

struct HttpState {
    fault: AtomicU8,
    requests: parking_lot::Mutex<Vec<String>>,
    forwarded: AtomicU64,
}

/// A plain-HTTP reverse proxy in front of `target` (see the module comment).
pub struct HttpFaultProxy {
    port: u16,
    state: Arc<HttpState>,
    task: tokio::task::JoinHandle<()>,
}

impl HttpFaultProxy {
    /// Forward to `target` (`https://127.0.0.1:PORT`), trusting `ca_pem` when given.
    pub fn start(target: &str, ca_pem: Option<&Path>) -> HttpFaultProxy {
        let mut builder = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30));
        if let Some(ca) = ca_pem {
            let pem = std::fs::read(ca).expect("read CA");
            builder = builder.tls_certs_only([reqwest::Certificate::from_pem(&pem).expect("CA")]);
        }
        let client = builder.build().expect("proxy client");
        let state = Arc::new(HttpState {
            fault: AtomicU8::new(HttpFault::Pass as u8),
            requests: parking_lot::Mutex::new(Vec::new()),
            forwarded: AtomicU64::new(0),
        });
        let listener = runtime()
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .expect("bind fault proxy");
        let port = listener.local_addr().expect("addr").port();
        let target = target.trim_end_matches('/').to_string();
        let st = state.clone();
        let task = runtime().spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let (client, target, st) = (client.clone(), target.clone(), st.clone());
                tokio::spawn(async move {
                    let _ = serve_http(sock, &client, &target, &st).await;
                });
            }
        });
        HttpFaultProxy { port, state, task }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn set(&self, fault: HttpFault) {
        self.state.fault.store(fault as u8, Ordering::SeqCst);
    }

    /// Requests received (any fault), whose path contains `part`.
    pub fn count(&self, part: &str) -> usize {
        self.state
            .requests
            .lock()
            .iter()
            .filter(|p| p.contains(part))
            .count()
    }

    /// Requests received in all.
    pub fn total(&self) -> usize {
        self.state.requests.lock().len()
    }

    /// Requests that reached the real server.
    pub fn forwarded(&self) -> u64 {
        self.state.forwarded.load(Ordering::SeqCst)
    }
}

impl Drop for HttpFaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One connection: requests without bodies (GET/HEAD), keep-alive, each answered in full with
/// a `Content-Length`.
async fn serve_http(
    sock: TcpStream,
    client: &reqwest::Client,
    target: &str,
    st: &HttpState,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(sock);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let mut parts = line.split_whitespace();
        let (method, path) = match (parts.next(), parts.next()) {
            (Some(m), Some(p)) => (m.to_string(), p.to_string()),
            _ => return Ok(()),
        };
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).await? == 0 {
                return Ok(());
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        st.requests.lock().push(path.clone());
        let fault = HttpFault::from_u8(st.fault.load(Ordering::SeqCst));
        let (status, ctype, body): (u16, String, Vec<u8>) = match fault {
            HttpFault::Refuse => return Ok(()),
            HttpFault::Status500 => (500, "text/plain".into(), b"injected failure\n".to_vec()),
            HttpFault::Garbage => (
                200,
                "application/json".into(),
                b"{\"signed\": <<<this is not JSON\x00\xff".to_vec(),
            ),
            HttpFault::Pass => {
                let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap_or_default();
                let mut rb = client.request(m, format!("{target}{path}"));
                for (k, v) in &headers {
                    let lk = k.to_ascii_lowercase();
                    if lk != "host" && lk != "connection" && lk != "content-length" {
                        rb = rb.header(k, v);
                    }
                }
                match rb.send().await {
                    Ok(r) => {
                        st.forwarded.fetch_add(1, Ordering::SeqCst);
                        let status = r.status().as_u16();
                        let ctype = r
                            .headers()
                            .get("content-type")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("application/octet-stream")
                            .to_string();
                        let body = r.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
                        (status, ctype, body)
                    }
                    Err(_) => return Ok(()),
                }
            }
        };
        let head = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let sock = reader.get_mut();
        sock.write_all(head.as_bytes()).await?;
        if method != "HEAD" {
            sock.write_all(&body).await?;
        }
        sock.flush().await?;
    }
}

/// A TCP forwarder to `127.0.0.1:target_port`; see [`TrickleProxy::slow`].
pub struct TrickleProxy {
    port: u16,
    /// 0: full speed; otherwise the interval between server→client chunks, in ms.
    interval_ms: Arc<AtomicU64>,
    /// Bytes per chunk when slowed.
    chunk: Arc<AtomicU64>,
    /// 0: off; otherwise the interval (ms) between body bytes of blob GET answers, whose
    /// headers pass at full speed.
    body_ms: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

/// Where the end of a header block (`\r\n\r\n`) is in `buf`, carrying the last bytes seen in
/// `last` across reads: the index just past it.
fn headers_end(last: &mut u32, buf: &[u8]) -> Option<usize> {
    for (i, b) in buf.iter().enumerate() {
        *last = (*last << 8) | u32::from(*b);
        if *last == 0x0d0a_0d0a {
            return Some(i + 1);
        }
    }
    None
}

impl TrickleProxy {
    pub fn start(target_port: u16) -> TrickleProxy {
        let listener = runtime()
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .expect("bind trickle proxy");
        let port = listener.local_addr().expect("addr").port();
        let interval_ms = Arc::new(AtomicU64::new(0));
        let chunk = Arc::new(AtomicU64::new(1));
        let body_ms = Arc::new(AtomicU64::new(0));
        let (iv, ch, bm) = (interval_ms.clone(), chunk.clone(), body_ms.clone());
        let task = runtime().spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (iv, ch, bm) = (iv.clone(), ch.clone(), bm.clone());
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(("127.0.0.1", target_port)).await else {
                        return;
                    };
                    let (mut cr, mut cw) = client.into_split();
                    let (mut sr, mut sw) = server.into_split();
                    // Whether the request being answered on this connection is a blob GET
                    // (HTTP/1.1 without pipelining: one request at a time).
                    let blob_get = Arc::new(AtomicBool::new(false));
                    let seen = blob_get.clone();
                    let up = tokio::spawn(async move {
                        let mut buf = vec![0u8; 16 * 1024];
                        loop {
                            let n = match cr.read(&mut buf).await {
                                Ok(0) | Err(_) => break,
                                Ok(n) => n,
                            };
                            let line = String::from_utf8_lossy(&buf[..n.min(512)]);
                            let first = line.lines().next().unwrap_or("");
                            if first.ends_with("HTTP/1.1") || first.ends_with("HTTP/1.0") {
                                seen.store(
                                    first.starts_with("GET ") && first.contains("/blobs/"),
                                    Ordering::SeqCst,
                                );
                            }
                            if sw.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                        let _ = sw.shutdown().await;
                    });
                    let mut buf = vec![0u8; 16 * 1024];
                    // Body trickling: `last` scans for the end of the headers, `in_body` once
                    // past it on a blob GET answer.
                    let (mut last, mut in_body) = (0u32, false);
                    loop {
                        let n = match sr.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        let body_iv = bm.load(Ordering::SeqCst);
                        let mut i = 0;
                        if body_iv > 0 && !in_body && blob_get.load(Ordering::SeqCst) {
                            if let Some(end) = headers_end(&mut last, &buf[..n]) {
                                if cw.write_all(&buf[..end]).await.is_err() {
                                    up.abort();
                                    return;
                                }
                                i = end;
                                in_body = true;
                            }
                        }
                        while i < n {
                            let ms = if in_body && body_iv > 0 {
                                body_iv
                            } else {
                                iv.load(Ordering::SeqCst)
                            };
                            let step = if ms == 0 {
                                n - i
                            } else if in_body {
                                1
                            } else {
                                (ch.load(Ordering::SeqCst) as usize).clamp(1, n - i)
                            };
                            if cw.write_all(&buf[i..i + step]).await.is_err() {
                                up.abort();
                                return;
                            }
                            i += step;
                            if ms > 0 {
                                tokio::time::sleep(Duration::from_millis(ms)).await;
                            }
                        }
                    }
                    let _ = cw.shutdown().await;
                    up.abort();
                });
            }
        });
        TrickleProxy {
            port,
            interval_ms,
            chunk,
            body_ms,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// From now on, server bytes pass one per `interval` (new and open connections alike).
    pub fn slow(&self, interval: Duration) {
        self.throttle(1, interval);
    }

    /// From now on, server bytes pass `chunk` at a time, one chunk per `interval`.
    pub fn throttle(&self, chunk: usize, interval: Duration) {
        self.chunk.store(chunk.max(1) as u64, Ordering::SeqCst);
        self.interval_ms
            .store(interval.as_millis().max(1) as u64, Ordering::SeqCst);
    }

    /// From now on, answers to blob GETs send their headers at full speed, then their body
    /// one byte per `interval`: the upstream that stalls inside a body without ever going
    /// silent for long.
    pub fn trickle_blob_bodies(&self, interval: Duration) {
        self.body_ms
            .store(interval.as_millis().max(1) as u64, Ordering::SeqCst);
    }

    pub fn fast(&self) {
        self.interval_ms.store(0, Ordering::SeqCst);
        self.body_ms.store(0, Ordering::SeqCst);
    }
}

impl Drop for TrickleProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Peak and current resident memory of a process, from `/proc/PID/status` (KiB).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// The `q` quantile (0..=1) of `samples` (sorted in place); 0 for none.
pub fn quantile(samples: &mut [Duration], q: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    samples.sort();
    let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
    samples[i.min(samples.len() - 1)]
}
