//! Reliability, bad input (issue 15): a protocol fuzzer against the running listener of the real
//! binary, in front of the real CNCF registry.
//!
//! Raw TCP with a seeded RNG (`TRUSTGATE_FUZZ_SEED`, printed in the result line), one class of
//! hostile input at a time, each for the time [`reliability::pick`] gives it: random methods,
//! paths and percent-encodings (invalid UTF-8, `%00`, overlong forms, `..`), header sizes and
//! counts past the configured limit, every `Range` form against a real blob, request smuggling
//! (`Transfer-Encoding` with `Content-Length`, duplicated lengths, `chunked, identity`,
//! obs-fold), slow-loris heads, and HTTP/2 (prior knowledge) stream floods and rapid resets.
//! After every class: no 500, the process alive, no panic in its log; at the end its resident
//! memory back near the idle level and a legitimate pull served byte for byte.

// These cases drive the real binary over real sockets and wait on it in wall-clock time with
// blocking calls (as tests/support does), so std's Instant and thread::sleep are right here;
// clippy.toml bans them where time is injected.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::image::{ImageSpec, Layout};
use support::registry::Registry;
use support::reliability;
use support::skopeo::Skopeo;
use support::trustgate::{Trustgate, TrustgateOptions, UpstreamConfig};
use support::TestDir;

const REPO: &str = "fuzz/app";
/// `[server] header_read_timeout`, seconds: a slow-loris head is cut after this.
const HEADER_TIMEOUT: u64 = 2;
/// `[server] max_header_bytes`.
const MAX_HEADER: usize = 16 * 1024;
/// How much idle resident memory may grow over the whole run (allocator slack, bounded caches).
const RSS_MARGIN_KIB: u64 = 32 * 1024;

/// splitmix64: a few lines of deterministic randomness, seeded per run, so a failing input can
/// be replayed from the seed in the report.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn pick<'a, T: ?Sized>(&mut self, items: &[&'a T]) -> &'a T {
        items[self.below(items.len())]
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

struct Rig {
    _dir: TestDir,
    _registry: Registry,
    tg: Trustgate,
    image: Layout,
    blob: String,
}

impl Rig {
    fn start() -> Rig {
        let dir = TestDir::new("rel-protocol");
        let registry = Registry::start(&dir.sub("registry"));
        let skopeo = Skopeo::new(&dir.sub("skopeo"));
        let image = Layout::image(&dir.sub("image"), &ImageSpec::small("fuzz", 2));
        image.push(&skopeo, &registry.host(), REPO, "v1", None);
        let tg = Trustgate::start(
            &dir.sub("trustgate"),
            TrustgateOptions {
                upstreams: vec![UpstreamConfig::default_for(&registry)],
                server_toml: format!(
                    "header_read_timeout = {HEADER_TIMEOUT}\nmax_header_bytes = {MAX_HEADER}\n"
                ),
                env: vec![("RUST_LOG".into(), "info".into())],
                ..Default::default()
            },
        );
        let blob = image.blob_digests()[0].clone();
        Rig {
            _dir: dir,
            _registry: registry,
            tg,
            image,
            blob,
        }
    }

    /// A legitimate pull: the manifest by tag and a blob by digest, byte for byte.
    fn legitimate_pull(&self) {
        let m = support::http::request(
            &format!("{}/v2/{REPO}/manifests/v1", self.tg.url()),
            &support::http::Req {
                accept: Some(self.image.media_type.as_str()),
                ..Default::default()
            },
        )
        .expect("manifest");
        assert_eq!(m.status, 200, "{}", m.text());
        assert_eq!(m.body, self.image.manifest);
        let b = support::http::get(&format!("{}/v2/{REPO}/blobs/{}", self.tg.url(), self.blob))
            .expect("blob");
        assert_eq!(b.status, 200);
        assert_eq!(support::http::sha256_digest(&b.body), self.blob);
    }

    /// After a class: alive, no panic logged.
    fn healthy(&mut self, class: &str) {
        assert!(self.tg.is_running(), "{class}: trustgate exited");
        let log = self.tg.stderr();
        assert!(
            !log.contains("panicked"),
            "{class}: a panic in the log:\n{log}"
        );
    }
}

/// Status codes seen in one raw exchange.
#[derive(Default)]
struct Tally {
    requests: usize,
    by_class: std::collections::BTreeMap<u16, usize>,
    /// Connections the server closed without an answer (a malformed head may be dropped).
    closed: usize,
}

impl Tally {
    fn add(&mut self, statuses: &[u16]) {
        self.requests += 1;
        if statuses.is_empty() {
            self.closed += 1;
        }
        for s in statuses {
            *self.by_class.entry(s / 100 * 100).or_default() += 1;
        }
    }
    fn summary(&self) -> String {
        let classes: Vec<String> = self
            .by_class
            .iter()
            .map(|(c, n)| format!("{}xx={n}", c / 100))
            .collect();
        format!(
            "{} sent, {} closed unanswered, {}",
            self.requests,
            self.closed,
            classes.join(" ")
        )
    }
}

/// Sends `bytes` on a new connection and reads until the server closes it (or 5 s of silence);
/// the status of every response seen.
fn exchange(port: u16, bytes: &[u8]) -> Vec<u16> {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        panic!("trustgate refused a connection");
    };
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // The server may answer (431, 400) and close before reading everything: not an error.
    let _ = s.write_all(bytes);
    let mut out = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    statuses(&out)
}

/// `HTTP/1.1 NNN` at the start of the stream or of a line.
fn statuses(out: &[u8]) -> Vec<u16> {
    let text = String::from_utf8_lossy(out);
    text.split("\r\n")
        .filter_map(|l| l.strip_prefix("HTTP/1.1 "))
        .filter_map(|l| l.get(..3)?.parse().ok())
        .collect()
}

fn assert_no_500(class: &str, statuses: &[u16], input: &[u8]) {
    assert!(
        !statuses.contains(&500),
        "{class}: 500 for {:?}",
        String::from_utf8_lossy(&input[..input.len().min(600)])
    );
}

/// Runs `make` on fresh inputs for `budget`; every exchange is checked for a 500.
fn run_class(
    rig: &mut Rig,
    rng: &mut Rng,
    class: &str,
    budget: Duration,
    mut make: impl FnMut(&mut Rng, &Rig) -> Vec<u8>,
) -> String {
    let mut tally = Tally::default();
    let end = Instant::now() + budget;
    while Instant::now() < end {
        let input = make(rng, rig);
        let got = exchange(rig.tg.port(), &input);
        assert_no_500(class, &got, &input);
        tally.add(&got);
    }
    rig.healthy(class);
    format!("{class}: {}", tally.summary())
}

const METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT", "get", "G ET",
    "GETT", "PRI", "X-CUSTOM", "", "\u{1}", "GET\0",
];

/// A path that the router may or may not accept.
fn random_path(rng: &mut Rng, rig: &Rig) -> String {
    let pieces: &[&str] = &[
        "v2",
        "fuzz",
        "app",
        "manifests",
        "blobs",
        "tags",
        "list",
        "uploads",
        "_catalog",
        "referrers",
        "..",
        ".",
        "",
        "%00",
        "%ff",
        "%c0%af",
        "%e0%80%af",
        "%2e%2e",
        "%2F",
        "%25",
        "v1",
        "latest",
        "sha256:",
        "a:b",
        "UPPER",
        "~",
        "%",
        "%zz",
        "\u{e9}",
    ];
    let mut p = String::from("/v2/");
    let n = 1 + rng.below(7);
    for i in 0..n {
        if i > 0 {
            p.push('/');
        }
        match rng.below(10) {
            0 => p.push_str(&rig.blob),
            1 => p.push_str(&"a".repeat(1 + rng.below(300))),
            2 => p.push_str(&format!("sha256:{}", "0".repeat(rng.below(70)))),
            _ => p.push_str(rng.pick(pieces)),
        }
    }
    if rng.chance(10) {
        p.push_str("?n=1&last=%ff");
    }
    p
}

fn request(method: &str, path: &str, headers: &[String], body: &[u8]) -> Vec<u8> {
    let mut r = format!("{method} {path} HTTP/1.1\r\nHost: fuzz\r\n").into_bytes();
    for h in headers {
        r.extend_from_slice(h.as_bytes());
        r.extend_from_slice(b"\r\n");
    }
    r.extend_from_slice(b"\r\n");
    r.extend_from_slice(body);
    r
}

fn range_value(rng: &mut Rng) -> String {
    let forms: &[&str] = &[
        "bytes=0-0",
        "bytes=0-",
        "bytes=-1",
        "bytes=-0",
        "bytes=5-3",
        "bytes=0-1,3-4",
        "bytes=0-0,0-0,0-0,0-0,0-0,0-0,0-0,0-0",
        "bytes=99999999999999999999-",
        "bytes=0-99999999999999999999",
        "bytes=-99999999999999999999",
        "bytes=18446744073709551615-18446744073709551615",
        "bytes=1-2-3",
        "bytes = 0-1",
        "bytes=",
        "bytes=a-b",
        "items=0-1",
        "bytes=0x10-",
        "bytes=+1-2",
        "bytes=-",
        ",",
    ];
    match rng.below(4) {
        0 => format!("bytes={}-{}", rng.below(100_000), rng.below(100_000)),
        1 => format!("bytes=-{}", rng.below(100_000)),
        _ => rng.pick(forms).to_string(),
    }
}

fn smuggle(rng: &mut Rng, _rig: &Rig) -> Vec<u8> {
    let inner = b"GET /v2/ HTTP/1.1\r\nHost: fuzz\r\n\r\n";
    let chunked = |body: &[u8]| {
        let mut b = format!("{:x}\r\n", body.len()).into_bytes();
        b.extend_from_slice(body);
        b.extend_from_slice(b"\r\n0\r\n\r\n");
        b
    };
    let method = rng.pick(&["GET", "POST", "PUT", "HEAD"]);
    let path = rng.pick(&[
        "/v2/",
        "/v2/fuzz/app/manifests/v1",
        "/v2/fuzz/app/blobs/uploads/",
    ]);
    let (headers, body): (Vec<String>, Vec<u8>) = match rng.below(8) {
        0 => (
            vec![
                "Content-Length: 4".into(),
                "Transfer-Encoding: chunked".into(),
            ],
            [chunked(b"abcd"), inner.to_vec()].concat(),
        ),
        1 => (
            vec![
                "Transfer-Encoding: chunked".into(),
                "Content-Length: 40".into(),
            ],
            [b"0\r\n\r\n".to_vec(), inner.to_vec()].concat(),
        ),
        2 => (
            vec!["Content-Length: 0".into(), "Content-Length: 30".into()],
            inner.to_vec(),
        ),
        3 => (
            vec!["Content-Length: 5, 5".into()],
            [b"hello".to_vec(), inner.to_vec()].concat(),
        ),
        4 => (
            vec!["Transfer-Encoding: chunked, identity".into()],
            [chunked(b"x"), inner.to_vec()].concat(),
        ),
        5 => (
            vec![
                "Transfer-Encoding:\r\n chunked".into(),
                "Content-Length: 3".into(),
            ],
            [b"0\r\n\r\n".to_vec(), inner.to_vec()].concat(),
        ),
        6 => (
            vec![
                "Transfer-Encoding: xchunked".into(),
                format!("Content-Length: {}", rng.below(100)),
            ],
            inner.to_vec(),
        ),
        _ => (
            vec![
                "Transfer-Encoding: chunked".into(),
                "Transfer-Encoding: identity".into(),
            ],
            [b"ffffffffffffffffff\r\n".to_vec(), inner.to_vec()].concat(),
        ),
    };
    request(method, path, &headers, &body)
}

/// Resident memory of `pid`, KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("/proc status")
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// Slow-loris: heads that trickle in, and connections that send nothing. Each must be closed by
/// the server once `header_read_timeout` has passed (the bound here is generous: it tells a
/// timeout from none at all).
fn slowloris(rig: &mut Rig, connections: usize) -> String {
    let port = rig.tg.port();
    let bound = Duration::from_secs(HEADER_TIMEOUT * 4 + 4);
    let handles: Vec<_> = (0..connections)
        .map(|i| {
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
                s.set_read_timeout(Some(Duration::from_millis(200)))
                    .unwrap();
                let start = Instant::now();
                let head = b"GET /v2/ HTTP/1.1\r\nHost: fuzz\r\nX-Slow: ";
                // Odd connections send nothing at all.
                let mut sent = if i % 2 == 0 { 0 } else { usize::MAX };
                let mut buf = [0u8; 1024];
                loop {
                    if start.elapsed() > bound {
                        return None;
                    }
                    if sent < usize::MAX {
                        let byte = head.get(sent).copied().unwrap_or(b'a');
                        if s.write_all(&[byte]).is_err() {
                            return Some(start.elapsed());
                        }
                        sent += 1;
                    }
                    match s.read(&mut buf) {
                        // Closed (possibly after a 408): the timeout fired.
                        Ok(0) => return Some(start.elapsed()),
                        Ok(_) => {}
                        Err(e)
                            if e.kind() == std::io::ErrorKind::WouldBlock
                                || e.kind() == std::io::ErrorKind::TimedOut => {}
                        Err(_) => return Some(start.elapsed()),
                    }
                }
            })
        })
        .collect();
    let mut closed = 0;
    for h in handles {
        let t = h.join().unwrap();
        assert!(
            t.is_some(),
            "slow-loris: a connection was still open after {bound:?} (header_read_timeout = {HEADER_TIMEOUT} s)"
        );
        closed += 1;
    }
    rig.healthy("slowloris");
    format!("slowloris: {closed}/{connections} trickling or silent connections closed by header_read_timeout")
}

/// HTTP/2 with prior knowledge (h2c): a flood of concurrent streams on one connection, then
/// rapid resets (a request and its RST_STREAM at once, CVE-2023-44487's pattern).
fn http2(rig: &mut Rig, streams: usize, resets: usize) -> String {
    let port = rig.tg.port();
    let path = format!("/v2/{REPO}/blobs/{}", rig.blob);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (ok, other, reset_sent, reset_outcome) = rt.block_on(async move {
        let uri = format!("http://127.0.0.1:{port}{path}");
        // Flood: every stream at once; the server's concurrency limit queues the rest.
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let (client, conn) = h2::client::handshake(tcp).await.expect("h2c handshake");
        let driver = tokio::spawn(conn);
        let mut tasks = Vec::new();
        for _ in 0..streams {
            let (client, uri) = (client.clone(), uri.clone());
            tasks.push(tokio::spawn(async move {
                let mut c = client.ready().await.ok()?;
                let req = http::Request::get(uri).body(()).unwrap();
                let (resp, _) = c.send_request(req, true).ok()?;
                let resp = tokio::time::timeout(Duration::from_secs(30), resp)
                    .await
                    .ok()?
                    .ok()?;
                let status = resp.status().as_u16();
                let mut body = resp.into_body();
                while let Some(chunk) = body.data().await {
                    let Ok(chunk) = chunk else { break };
                    let _ = body.flow_control().release_capacity(chunk.len());
                }
                Some(status)
            }));
        }
        let (mut ok, mut other) = (0usize, 0usize);
        for t in tasks {
            match t.await.unwrap() {
                Some(200) => ok += 1,
                Some(s) => {
                    assert_ne!(s, 500, "HTTP/2 flood: 500");
                    other += 1
                }
                None => other += 1,
            }
        }
        drop(client);
        driver.abort();

        // Rapid reset: open and cancel streams as fast as the connection lets us. The server
        // may end the connection (GOAWAY) when it sees the pattern; that is the defence.
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let (client, conn) = h2::client::handshake(tcp).await.expect("h2c handshake");
        let driver = tokio::spawn(conn);
        let mut sent = 0usize;
        for _ in 0..resets {
            let Ok(mut c) = client.clone().ready().await else {
                break;
            };
            let req = http::Request::get(uri.clone()).body(()).unwrap();
            let Ok((_resp, mut stream)) = c.send_request(req, false) else {
                break;
            };
            stream.send_reset(h2::Reason::CANCEL);
            sent += 1;
        }
        drop(client);
        let outcome = match tokio::time::timeout(Duration::from_secs(10), driver).await {
            Ok(Ok(Ok(()))) => "connection ended cleanly".to_string(),
            Ok(Ok(Err(e))) => format!("connection ended by the server ({e})"),
            Ok(Err(e)) => format!("driver failed ({e})"),
            Err(_) => "connection still open".to_string(),
        };
        (ok, other, sent, outcome)
    });
    rt.shutdown_timeout(Duration::from_secs(2));
    assert!(ok > 0, "HTTP/2 flood: no stream was served");
    rig.healthy("http2");
    format!(
        "http2 flood: {streams} streams, {ok} served 200, {other} refused or reset; rapid reset: {reset_sent} streams opened and cancelled, {reset_outcome}"
    )
}

#[test]
fn hostile_protocol_input_leaves_the_listener_serving() {
    let seed = std::env::var("TRUSTGATE_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x7275_7374_6761_7465_u64);
    let mut rng = Rng(seed);
    let mut rig = Rig::start();
    let budget = reliability::pick(Duration::from_secs(3), Duration::from_secs(60));
    let scale = if budget > Duration::from_secs(10) {
        10
    } else {
        1
    };

    // Warm up (connection pools, first fetches), then the idle level.
    for _ in 0..20 {
        rig.legitimate_pull();
    }
    std::thread::sleep(Duration::from_millis(500));
    let idle = rss_kib(rig.tg.pid());

    let mut figures = vec![format!("seed {seed}")];
    figures.push(run_class(
        &mut rig,
        &mut rng,
        "methods",
        budget,
        |rng, rig| {
            let m = rng.pick(METHODS);
            request(
                m,
                &random_path(rng, rig),
                &["Connection: close".into()],
                b"",
            )
        },
    ));
    figures.push(run_class(
        &mut rig,
        &mut rng,
        "paths",
        budget,
        |rng, rig| {
            let mut r = request(
                "GET",
                &random_path(rng, rig),
                &["Connection: close".into()],
                b"",
            );
            if rng.chance(20) {
                // Raw bytes in the target: invalid UTF-8, NUL, a control character.
                let at = 5 + rng.below(4);
                let junk: &[u8] =
                    rng.pick(&[&b"\xff\xfe"[..], b"\xc0\xaf", b"\x00", b"\x7f", b"\xe9"]);
                r.splice(at..at, junk.iter().copied());
            }
            r
        },
    ));
    figures.push(run_class(
        &mut rig,
        &mut rng,
        "headers",
        budget,
        |rng, rig| {
            let count = rng.below(300);
            let mut headers: Vec<String> = (0..count)
                .map(|i| {
                    let len = if rng.chance(5) {
                        rng.below(MAX_HEADER * 4)
                    } else {
                        rng.below(64)
                    };
                    let name = if rng.chance(5) {
                        "X Bad\u{1}".to_string()
                    } else {
                        format!("X-F{i}")
                    };
                    format!("{name}: {}", "v".repeat(len))
                })
                .collect();
            headers.push("Connection: close".into());
            request(
                "GET",
                &format!("/v2/{REPO}/blobs/{}", rig.blob),
                &headers,
                b"",
            )
        },
    ));
    figures.push(run_class(
        &mut rig,
        &mut rng,
        "range",
        budget,
        |rng, rig| {
            let mut headers = vec![
                format!("Range: {}", range_value(rng)),
                "Connection: close".into(),
            ];
            if rng.chance(15) {
                headers.push(format!("Range: {}", range_value(rng)));
            }
            if rng.chance(15) {
                headers.push("If-Range: \"nope\"".into());
            }
            let method = if rng.chance(20) { "HEAD" } else { "GET" };
            request(
                method,
                &format!("/v2/{REPO}/blobs/{}", rig.blob),
                &headers,
                b"",
            )
        },
    ));
    figures.push(run_class(&mut rig, &mut rng, "smuggling", budget, smuggle));
    figures.push(slowloris(&mut rig, 8 * scale));
    figures.push(http2(&mut rig, 300 * scale, 2000 * scale));

    // Memory back near idle, and a legitimate pull served.
    std::thread::sleep(Duration::from_secs(1));
    rig.legitimate_pull();
    let after = rss_kib(rig.tg.pid());
    assert!(
        after <= idle + RSS_MARGIN_KIB,
        "RSS grew from {idle} KiB to {after} KiB over the hostile input (margin {RSS_MARGIN_KIB} KiB)"
    );
    rig.healthy("end");
    figures.push(format!(
        "RSS idle {idle} KiB, after {after} KiB; legitimate pull served after"
    ));
    reliability::report("protocol", "protocol-fuzzer", &figures.join("; "));
}
