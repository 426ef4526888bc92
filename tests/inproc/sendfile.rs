//! Zero-copy cache hits (issue 16): a stored blob goes to a plain-HTTP/1.1 client with
//! `sendfile(2)` (the response head through hyper, placeholders for the body), and every other
//! answer on the same connection is unaffected.
//!
//! These tests speak HTTP/1.1 on a raw socket, so that keep-alive and pipelining are exactly
//! what is written. They also pin hyper's writer: if an upgrade of hyper copied body buffers
//! (its "flatten" strategy) instead of handing each to the socket as its own slice, the
//! zero-copy socket refuses the write and these tests fail instead of clients getting wrong
//! bytes. `trustgate_sendfile_bytes_total` proves the path was taken (other tests of this binary
//! may add to it at the same time, so only lower bounds are asserted).

use std::path::Path;

use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::cache_fake::random_bytes;
use crate::inproc::app::TestApp;
use crate::inproc::fake_upstream::FakeUpstream;
use trustgate::config::Config;

const REPO: &str = "team/app";
/// Not a multiple of the 1 MiB placeholder chunk, nor of a page.
const LEN: usize = 3 * 1024 * 1024 + 12_345;

fn config(data: &Path, upstream: &str, extra_server: &str) -> Config {
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n{extra_server}[storage]\nmin_free = \"0\"\npath = {:?}\n[[upstream]]\nname = \"registry.local\"\nurl = {upstream:?}\ndefault = true\nconnect_timeout_secs = 2\nfirst_byte_timeout_secs = 10\nidle_timeout_secs = 20\n",
        data.display().to_string()
    );
    Config::from_toml(&text, &data.join("trustgate.toml")).expect("valid test config")
}

fn sha(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// A counter of the process's metrics (`name` without labels).
fn counter(name: &str) -> u64 {
    let text = trustgate::metrics::metrics()
        .encode(false)
        .expect("metrics");
    let prefix = format!("{name} ");
    text.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .map(|v| v.trim().parse().expect("counter value"))
        .unwrap_or(0)
}

fn sendfile_bytes() -> u64 {
    counter("trustgate_sendfile_bytes_total")
}

fn cold_chunks() -> u64 {
    counter("trustgate_sendfile_cold_chunks_total")
}

/// A running app with one blob stored (fetched once through it, so the store holds it).
struct Stored {
    app: TestApp,
    _fake: FakeUpstream,
    dir: tempfile::TempDir,
    blob: Vec<u8>,
    path: String,
}

async fn stored(extra_server: &str, seed: u64) -> Stored {
    let fake = FakeUpstream::start().await;
    let blob = random_bytes(LEN, seed);
    let digest = fake.add_blob(&blob);
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(config(dir.path(), &fake.base(), extra_server), None).await;
    let path = format!("/v2/{REPO}/blobs/{digest}");
    // The fill: a client that got every byte means the object is stored.
    let got = get_bytes(&crate::inproc::upstreams::client(), &app.url(&path)).await;
    assert_eq!(sha(&got), sha(&blob));
    Stored {
        app,
        _fake: fake,
        dir,
        blob,
        path,
    }
}

/// One HTTP/1.1 response read off a keep-alive connection.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

async fn read_answer(r: &mut BufReader<TcpStream>, head_request: bool) -> Answer {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let b = r.read_u8().await.expect("response head");
        head.push(b);
    }
    let text = String::from_utf8(head).unwrap();
    let mut lines = text.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap();
            (n.trim().to_string(), v.trim().to_string())
        })
        .collect();
    let mut a = Answer {
        status,
        headers,
        body: Vec::new(),
    };
    let len: usize = a
        .header("content-length")
        .expect("content-length")
        .parse()
        .unwrap();
    if !head_request {
        a.body = vec![0; len];
        r.read_exact(&mut a.body).await.expect("response body");
    }
    a
}

fn get(path: &str, extra: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nhost: test\r\n{extra}\r\n")
}

/// Sends one GET on a keep-alive connection and reads its answer.
async fn ask(c: &mut BufReader<TcpStream>, path: &str, extra: &str) -> Answer {
    c.get_mut()
        .write_all(get(path, extra).as_bytes())
        .await
        .unwrap();
    read_answer(c, false).await
}

async fn connect(app: &TestApp) -> BufReader<TcpStream> {
    BufReader::new(TcpStream::connect(app.host()).await.unwrap())
}

#[tokio::test]
async fn keep_alive_hits_ranges_and_other_answers_share_one_connection() {
    let s = stored("", 1).await;
    let before = sendfile_bytes();
    let mut c = connect(&s.app).await;
    for _ in 0..3 {
        let a = ask(&mut c, &s.path, "").await;
        assert_eq!(a.status, 200);
        assert_eq!(sha(&a.body), sha(&s.blob));
    }
    // Ranges: inside one chunk, across chunk boundaries, the tail.
    let ranges = [
        (0usize, 0usize),
        (100, 2_500_000),
        (1_048_575, 1_048_576),
        (LEN - 7, LEN - 1),
    ];
    for (start, end) in ranges {
        let range = format!("range: bytes={start}-{end}\r\n");
        let a = ask(&mut c, &s.path, &range).await;
        assert_eq!(a.status, 206, "{range}");
        assert_eq!(
            a.header("content-range"),
            Some(format!("bytes {start}-{end}/{LEN}").as_str())
        );
        assert_eq!(a.body, s.blob[start..=end], "{range}");
    }
    // An ordinary answer (the ping, an error) right after a zero-copy one, then another hit.
    let a = ask(&mut c, "/v2/", "").await;
    assert_eq!((a.status, a.body.as_slice()), (200, b"{}".as_slice()));
    let missing = format!("/v2/{REPO}/blobs/sha256:{}", "0".repeat(64));
    let a = ask(&mut c, &missing, "").await;
    assert_eq!(a.status, 404);
    c.get_mut()
        .write_all(format!("HEAD {} HTTP/1.1\r\nhost: test\r\n\r\n", s.path).as_bytes())
        .await
        .unwrap();
    let a = read_answer(&mut c, true).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.header("content-length"), Some(LEN.to_string().as_str()));
    let a = ask(&mut c, &s.path, "").await;
    assert_eq!(sha(&a.body), sha(&s.blob));

    let ranged: usize = ranges.iter().map(|(a, b)| b - a + 1).sum();
    let sent = sendfile_bytes() - before;
    assert!(
        sent >= (4 * LEN + ranged) as u64,
        "the hits went through sendfile: {sent} bytes counted"
    );
    s.app.shutdown().await;
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let s = stored("", 2).await;
    let mut c = connect(&s.app).await;
    let all = [
        get(&s.path, ""),
        get("/v2/", ""),
        get(&s.path, "range: bytes=5-1048580\r\n"),
        get(&s.path, ""),
    ]
    .concat();
    c.get_mut().write_all(all.as_bytes()).await.unwrap();
    let a = read_answer(&mut c, false).await;
    assert_eq!(sha(&a.body), sha(&s.blob));
    let a = read_answer(&mut c, false).await;
    assert_eq!(a.body, b"{}");
    let a = read_answer(&mut c, false).await;
    assert_eq!(a.status, 206);
    assert_eq!(a.body, s.blob[5..=1_048_580]);
    let a = read_answer(&mut c, false).await;
    assert_eq!(sha(&a.body), sha(&s.blob));
    s.app.shutdown().await;
}

#[tokio::test]
async fn a_client_that_leaves_mid_body_does_not_disturb_the_next() {
    let s = stored("", 3).await;
    for _ in 0..3 {
        let mut c = connect(&s.app).await;
        c.get_mut()
            .write_all(get(&s.path, "").as_bytes())
            .await
            .unwrap();
        let mut some = vec![0u8; 64 * 1024];
        c.read_exact(&mut some).await.unwrap();
        drop(c);
    }
    let mut c = connect(&s.app).await;
    let a = ask(&mut c, &s.path, "").await;
    assert_eq!(sha(&a.body), sha(&s.blob));
    s.app.shutdown().await;
}

#[tokio::test]
async fn http2_and_the_switched_off_path_copy_the_same_bytes() {
    let s = stored("", 4).await;
    let h2 = reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let resp = h2.get(s.app.url(&s.path)).send().await.unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    assert_eq!(sha(&resp.bytes().await.unwrap()), sha(&s.blob));
    let resp = h2
        .get(s.app.url(&s.path))
        .header("range", "bytes=10-2000000")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 206);
    assert_eq!(resp.bytes().await.unwrap(), s.blob[10..=2_000_000]);
    s.app.shutdown().await;

    let off = stored("sendfile = false\n", 5).await;
    let mut c = connect(&off.app).await;
    for _ in 0..2 {
        let a = ask(&mut c, &off.path, "").await;
        assert_eq!(sha(&a.body), sha(&off.blob));
    }
    off.app.shutdown().await;
}

#[tokio::test]
async fn tls_clients_get_the_copy_path_with_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (cert_pem, key_pem) = (cert.cert.pem(), cert.signing_key.serialize_pem());
    std::fs::write(dir.path().join("cert.pem"), &cert_pem).unwrap();
    std::fs::write(dir.path().join("key.pem"), &key_pem).unwrap();
    let tls = format!(
        "tls_cert = {:?}\ntls_key = {:?}\n",
        dir.path().join("cert.pem").display().to_string(),
        dir.path().join("key.pem").display().to_string()
    );
    let fake = FakeUpstream::start().await;
    let blob = random_bytes(LEN, 6);
    let digest = fake.add_blob(&blob);
    let data = tempfile::tempdir().unwrap();
    let app = TestApp::start(config(data.path(), &fake.base(), &tls), None).await;
    let port = app.host().rsplit(':').next().unwrap().to_string();
    let client = reqwest::Client::builder()
        .no_proxy()
        .tls_certs_only([reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap()])
        .resolve("localhost", format!("127.0.0.1:{port}").parse().unwrap())
        .build()
        .unwrap();
    let url = format!("https://localhost:{port}/v2/{REPO}/blobs/{digest}");
    // The fill, then two hits on one connection, one ranged.
    for _ in 0..2 {
        let got = get_bytes(&client, &url).await;
        assert_eq!(sha(&got), sha(&blob));
    }
    let resp = client
        .get(&url)
        .header("range", "bytes=1048000-1049000")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 206);
    assert_eq!(resp.bytes().await.unwrap(), blob[1_048_000..=1_049_000]);
    app.shutdown().await;
}

/// A stored file whose pages left the page cache is read and copied (sendfile would wait for
/// the disk on a runtime thread), with the same bytes.
#[tokio::test]
async fn a_blob_out_of_the_page_cache_is_copied_with_the_same_bytes() {
    let s = stored("", 7).await;
    let hex = sha(&s.blob);
    let file = s.dir.path().join("blobs/sha256").join(&hex[..2]).join(&hex);
    let f = std::fs::File::open(&file).expect("the stored object");
    // Drops this file's clean pages only (nothing else on the machine).
    rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::DontNeed).unwrap();
    let mut one = [0u8; 1];
    let evicted = rustix::io::preadv2(
        &f,
        &mut [std::io::IoSliceMut::new(&mut one)],
        0,
        rustix::io::ReadWriteFlags::NOWAIT,
    )
    .is_err();
    let before = cold_chunks();
    let mut c = connect(&s.app).await;
    let a = ask(&mut c, &s.path, "").await;
    assert_eq!(sha(&a.body), hex);
    if evicted {
        assert!(cold_chunks() > before, "the first chunk was read, not sent");
    }
    s.app.shutdown().await;
}

/// A whole GET's body.
async fn get_bytes(client: &reqwest::Client, url: &str) -> bytes::Bytes {
    client.get(url).send().await.unwrap().bytes().await.unwrap()
}
