//! The listener in operation, against the real binary: HTTPS with a test CA (reqwest, a raw
//! rustls client, skopeo; ALPN), certificate reload on SIGHUP, mTLS, the connection limits and
//! timeouts of `[server]`, and graceful shutdown on SIGTERM during a blob download.
//!
//! Certificates are made here with rcgen. Timing is never asserted: where a timeout must fire,
//! the test waits for its effect (the server closing the connection) with a generous bound, and
//! the configured timeout is set well apart from the other ones so that only it can explain
//! what is seen.
// The interop harness drives real processes (registry, notary-server, dockerd, the trustgate
// binary) and waits on them in wall-clock time with blocking calls, so std's Instant and
// thread::sleep are right here; clippy.toml bans them where time is injected.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod support;

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use support::http::{self, sha256_digest, Req};
use support::image::{random_bytes, ImageSpec, Layout};
use support::proc;
use support::registry::Registry;
use support::skopeo::{assert_same_tree, Skopeo};
use support::trustgate::{Trustgate, TrustgateOptions, UpstreamConfig};
use support::TestDir;

// ---------------------------------------------------------------------------------------------
// Test PKI

/// A CA made for one test.
struct TestCa {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    pem: String,
    der: CertificateDer<'static>,
}

/// A certificate and its key, as PEM (for files) and DER (for the rustls client).
struct Leaf {
    cert_pem: String,
    key_pem: String,
    cert_der: CertificateDer<'static>,
    key_der: Vec<u8>,
}

impl Leaf {
    fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()))
    }
}

impl TestCa {
    fn new(name: &str) -> TestCa {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).unwrap();
        TestCa {
            pem: cert.pem(),
            der: cert.der().clone(),
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    /// A server certificate for 127.0.0.1 and localhost with this serial number.
    fn server(&self, serial: u64) -> Leaf {
        self.leaf(
            vec!["localhost".into(), "127.0.0.1".into()],
            "trustgate test server",
            serial,
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        )
    }

    /// A client certificate (CN = `name`).
    fn client(&self, name: &str) -> Leaf {
        self.leaf(
            Vec::new(),
            name,
            1000,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        )
    }

    fn leaf(
        &self,
        sans: Vec<String>,
        cn: &str,
        serial: u64,
        usage: rcgen::ExtendedKeyUsagePurpose,
    ) -> Leaf {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(sans).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params.serial_number = Some(rcgen::SerialNumber::from(serial));
        params.extended_key_usages = vec![usage];
        params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_der: cert.der().clone(),
            key_der: key.serialize_der(),
        }
    }
}

/// The TLS files trustgate reads, under one folder.
struct TlsDir {
    dir: PathBuf,
}

impl TlsDir {
    fn new(dir: PathBuf, ca: &TestCa, server: &Leaf) -> TlsDir {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("ca.pem"), &ca.pem).unwrap();
        let t = TlsDir { dir };
        t.install(server);
        t
    }

    fn cert(&self) -> PathBuf {
        self.dir.join("cert.pem")
    }
    fn key(&self) -> PathBuf {
        self.dir.join("key.pem")
    }
    fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// Replace the certificate and key, as an operator renewing them would (write + rename).
    fn install(&self, leaf: &Leaf) {
        for (path, text) in [(self.cert(), &leaf.cert_pem), (self.key(), &leaf.key_pem)] {
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, text).unwrap();
            std::fs::rename(&tmp, &path).unwrap();
        }
    }

    /// `[server]` keys for these files.
    fn server_toml(&self, extra: &str) -> String {
        format!(
            "tls_cert = \"{}\"\ntls_key = \"{}\"\n{extra}",
            self.cert().display(),
            self.key().display()
        )
    }
}

// ---------------------------------------------------------------------------------------------
// A blocking rustls client and raw HTTP/1.1

type TlsStream = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

fn client_config(
    roots: &[&CertificateDer<'static>],
    client: Option<&Leaf>,
    alpn: &[&[u8]],
) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut store = rustls::RootCertStore::empty();
    for r in roots {
        store.add((*r).clone()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(store);
    let mut config = match client {
        Some(leaf) => builder
            .with_client_auth_cert(vec![leaf.cert_der.clone()], leaf.key())
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// TCP connect and a complete TLS handshake (as a client sees it: with TLS 1.3 a refused
/// client certificate only shows on the first read).
fn tls_connect(port: u16, config: Arc<rustls::ClientConfig>) -> io::Result<TlsStream> {
    let sock = TcpStream::connect(("127.0.0.1", port))?;
    sock.set_read_timeout(Some(Duration::from_secs(30)))?;
    let name = ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(config, name).map_err(io::Error::other)?;
    let mut s = rustls::StreamOwned::new(conn, sock);
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock)?;
    }
    Ok(s)
}

/// The certificate the server presented.
fn served_cert(s: &TlsStream) -> CertificateDer<'static> {
    s.conn.peer_certificates().expect("a server certificate")[0].clone()
}

struct RawResponse {
    status: u16,
    head: String,
    body: Vec<u8>,
}

/// Reads a response head (byte by byte; heads are small).
fn read_head(s: &mut impl Read) -> io::Result<(u16, String)> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "closed after {:?} of a response head",
                    String::from_utf8_lossy(&head)
                ),
            ));
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok((status, head))
}

fn content_length(head: &str) -> Option<usize> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse().ok())
            .flatten()
    })
}

/// One keep-alive `GET` on an open connection (plain or TLS), body by Content-Length.
fn get(s: &mut (impl Read + Write), path: &str) -> io::Result<RawResponse> {
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n")?;
    s.flush()?;
    read_response(s)
}

fn read_response(s: &mut impl Read) -> io::Result<RawResponse> {
    let (status, head) = read_head(s)?;
    let len = content_length(&head).unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body)?;
    Ok(RawResponse { status, head, body })
}

/// Waits up to `within` for the server to close `sock` (a read returns 0 or fails with
/// something other than a timeout). Bytes the server sent before closing are returned too.
fn wait_closed(sock: &mut TcpStream, within: Duration) -> (bool, Vec<u8>) {
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match sock.read(&mut buf) {
            Ok(0) => return (true, got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if is_timeout(&e) => {}
            Err(_) => return (true, got),
        }
    }
    (false, got)
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// A trustgate without upstreams: `/v2/` answers 200, which is all the limit tests need.
fn start_bare(dir: &Path, server_toml: String) -> Trustgate {
    Trustgate::start(
        dir,
        TrustgateOptions {
            server_toml,
            ..Default::default()
        },
    )
}

// ---------------------------------------------------------------------------------------------
// TLS

#[test]
fn https_serves_the_configured_chain_to_reqwest_rustls_and_skopeo() {
    let t = TestDir::new("ops-tls");
    let reg = Registry::start(&t.sub("registry"));
    let skopeo = Skopeo::new(&t.sub("skopeo"));
    let image = Layout::image(&t.sub("img"), &ImageSpec::small("tls", 2));
    image.push(&skopeo, &reg.host(), "demo/app", "v1", None);

    let ca = TestCa::new("trustgate test CA");
    let server = ca.server(1);
    let tls = TlsDir::new(t.sub("tls"), &ca, &server);
    let tg = Trustgate::start(
        &t.sub("trustgate"),
        TrustgateOptions {
            upstreams: vec![UpstreamConfig::default_for(&reg)],
            server_toml: tls.server_toml(""),
            ..Default::default()
        },
    );
    let port = tg.port();

    // reqwest (rustls) with the test CA, by IP and by name.
    for host in ["127.0.0.1", "localhost"] {
        let r = http::request(
            &format!("https://{host}:{port}/v2/"),
            &Req {
                ca_pem: Some(&tls.ca()),
                ..Default::default()
            },
        )
        .unwrap_or_else(|e| panic!("https://{host}:{port}/v2/: {e}\n{}", tg.logs()));
        assert_eq!(r.status, 200, "{}", r.text());
    }
    // Without the CA the chain is unknown: nothing falls back to something weaker.
    let e = http::get(&format!("https://127.0.0.1:{port}/v2/"))
        .expect_err("the test CA is not a public root");
    assert!(e.to_lowercase().contains("certificate"), "{e}");

    // ALPN: HTTP/2 when offered, HTTP/1.1 otherwise; the served leaf is the configured one.
    let h2 = tls_connect(port, client_config(&[&ca.der], None, &[b"h2", b"http/1.1"])).unwrap();
    assert_eq!(h2.conn.alpn_protocol(), Some(&b"h2"[..]));
    drop(h2);
    let mut h1 = tls_connect(port, client_config(&[&ca.der], None, &[b"http/1.1"])).unwrap();
    assert_eq!(h1.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
    assert_eq!(served_cert(&h1), server.cert_der);
    let r = get(&mut h1, "/v2/").unwrap();
    assert_eq!(
        (r.status, r.body.as_slice()),
        (200, &b"{}"[..]),
        "{}",
        r.head
    );
    // No ALPN at all: the request bytes decide (HTTP/1.1 here).
    let mut bare = tls_connect(port, client_config(&[&ca.der], None, &[])).unwrap();
    assert_eq!(get(&mut bare, "/v2/").unwrap().status, 200);

    // Plain HTTP on the HTTPS port gets no HTTP answer.
    let mut plain = TcpStream::connect(("127.0.0.1", port)).unwrap();
    plain
        .write_all(b"GET /v2/ HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let (closed, got) = wait_closed(&mut plain, Duration::from_secs(30));
    assert!(closed, "a plain-HTTP client was kept open");
    assert!(
        !got.starts_with(b"HTTP/"),
        "{}",
        String::from_utf8_lossy(&got)
    );

    // skopeo with the CA in its cert dir pulls the image byte for byte, TLS verified.
    let certs = t.sub("skopeo-certs");
    std::fs::write(certs.join("ca.crt"), &ca.pem).unwrap();
    let out_dir = t.sub("pulled");
    let out = skopeo.run(&[
        "copy",
        "--src-tls-verify=true",
        "--src-cert-dir",
        certs.to_str().unwrap(),
        &format!("docker://127.0.0.1:{port}/demo/app:v1"),
        &format!("dir:{}", out_dir.display()),
    ]);
    assert!(out.success(), "{out}\n{}", tg.logs());
    assert_same_tree(&image.dir, &out_dir);
    // And without the CA it refuses the server.
    let no_ca = t.sub("skopeo-no-certs");
    let out = skopeo.run(&[
        "inspect",
        "--tls-verify=true",
        "--cert-dir",
        no_ca.to_str().unwrap(),
        &format!("docker://127.0.0.1:{port}/demo/app:v1"),
    ]);
    out.assert_failure();
    assert!(
        out.stderr.contains("certificate"),
        "expected a certificate error: {out}"
    );
}

#[test]
fn sighup_serves_the_renewed_certificate_to_new_connections_and_keeps_open_ones() {
    let t = TestDir::new("ops-reload");
    let ca = TestCa::new("trustgate test CA");
    let (old, new) = (ca.server(1), ca.server(2));
    let tls = TlsDir::new(t.sub("tls"), &ca, &old);
    // Timeouts far beyond the test, so the open connection can only be closed by a reload.
    let tg = start_bare(
        &t.sub("trustgate"),
        tls.server_toml("header_read_timeout = 300\nidle_timeout = 300\n"),
    );
    let port = tg.port();
    let config = client_config(&[&ca.der], None, &[b"http/1.1"]);

    let mut open = tls_connect(port, config.clone()).unwrap();
    assert_eq!(served_cert(&open), old.cert_der);
    assert_eq!(get(&mut open, "/v2/").unwrap().status, 200);

    tls.install(&new);
    proc::signal(tg.pid(), "HUP");
    let renewed = proc::wait_until(Duration::from_secs(20), || {
        tls_connect(port, config.clone())
            .map(|s| served_cert(&s) == new.cert_der)
            .unwrap_or(false)
    });
    assert!(
        renewed,
        "new connections still get the old certificate\n{}",
        tg.logs()
    );
    // The connection opened before the reload still works, on its old session.
    assert_eq!(served_cert(&open), old.cert_der);
    let r = get(&mut open, "/v2/").unwrap();
    assert_eq!(r.status, 200, "{}", r.head);

    // A reload that fails keeps the live certificate and says which file is wrong.
    std::fs::write(tls.key(), "not a key\n").unwrap();
    proc::signal(tg.pid(), "HUP");
    let logged = proc::wait_until(Duration::from_secs(20), || {
        tg.log().contains("reload failed")
    });
    assert!(logged, "no reload error logged\n{}", tg.logs());
    let log = tg.log();
    let line = log
        .lines()
        .find(|l| l.contains("reload failed"))
        .unwrap_or_default();
    assert!(
        line.contains(&format!("server.tls_key: {}", tls.key().display())),
        "{line}"
    );
    let s = tls_connect(port, config.clone()).unwrap();
    assert_eq!(served_cert(&s), new.cert_der);
    assert_eq!(get(&mut open, "/v2/").unwrap().status, 200);
}

#[test]
fn mtls_admits_only_clients_with_a_certificate_from_the_client_ca() {
    let t = TestDir::new("ops-mtls");
    let reg = Registry::start(&t.sub("registry"));
    let skopeo = Skopeo::new(&t.sub("skopeo"));
    let image = Layout::image(&t.sub("img"), &ImageSpec::small("mtls", 1));
    image.push(&skopeo, &reg.host(), "demo/app", "v1", None);

    let ca = TestCa::new("trustgate test CA");
    let clients = TestCa::new("trustgate clients CA");
    let stranger_ca = TestCa::new("someone else's CA");
    let tls = TlsDir::new(t.sub("tls"), &ca, &ca.server(1));
    let clients_pem = t.sub("tls").join("clients.pem");
    std::fs::write(&clients_pem, &clients.pem).unwrap();
    let tg = Trustgate::start(
        &t.sub("trustgate"),
        TrustgateOptions {
            upstreams: vec![UpstreamConfig::default_for(&reg)],
            server_toml: tls.server_toml(&format!("client_ca = \"{}\"\n", clients_pem.display())),
            ..Default::default()
        },
    );
    let port = tg.port();
    let ci = clients.client("ci-bot");
    let stranger = stranger_ca.client("ci-bot");

    // The refusal as the client sees it: with TLS 1.3 the client's side of the handshake ends
    // before the server has checked its certificate, so the server's alert arrives on the
    // first read.
    let refused = |client: Option<&Leaf>| -> String {
        let config = client_config(&[&ca.der], client, &[b"http/1.1"]);
        let mut s = match tls_connect(port, config) {
            Ok(s) => s,
            Err(e) => return e.to_string(),
        };
        let mut byte = [0u8; 1];
        match s.read(&mut byte) {
            Err(e) if is_timeout(&e) => panic!("the server accepted the handshake"),
            Err(e) => e.to_string(),
            Ok(n) => panic!("the server sent data ({n} bytes) to an unauthenticated client"),
        }
    };
    let e = refused(None);
    eprintln!("without a client certificate: {e}");
    assert!(e.to_lowercase().contains("certificate"), "{e}");
    let e = refused(Some(&stranger));
    eprintln!("with a certificate of another CA: {e}");
    assert!(
        e.to_lowercase().contains("certificate") || e.contains("UnknownCA"),
        "{e}"
    );
    let mut ok = tls_connect(port, client_config(&[&ca.der], Some(&ci), &[b"http/1.1"])).unwrap();
    let r = get(&mut ok, "/v2/").unwrap();
    assert_eq!(r.status, 200, "{}", r.head);

    // skopeo: the cert dir's client.cert/client.key are presented; without them, refused.
    let certs = t.sub("skopeo-certs");
    std::fs::write(certs.join("ca.crt"), &ca.pem).unwrap();
    let image_ref = format!("docker://127.0.0.1:{port}/demo/app:v1");
    let inspect = |dir: &Path| {
        skopeo.run(&[
            "inspect",
            "--raw",
            "--tls-verify=true",
            "--cert-dir",
            dir.to_str().unwrap(),
            &image_ref,
        ])
    };
    inspect(&certs).assert_failure();
    std::fs::write(certs.join("client.cert"), &ci.cert_pem).unwrap();
    std::fs::write(certs.join("client.key"), &ci.key_pem).unwrap();
    let out = inspect(&certs);
    assert!(out.success(), "{out}\n{}", tg.logs());
    assert_eq!(out.stdout.as_bytes(), image.manifest.as_slice());
}

#[test]
fn check_config_loads_the_tls_files_and_names_the_bad_one() {
    let t = TestDir::new("ops-check");
    let ca = TestCa::new("trustgate test CA");
    let tls = TlsDir::new(t.sub("tls"), &ca, &ca.server(1));
    let config = t.path().join("trustgate.toml");
    let write_config = |extra: &str| {
        std::fs::write(
            &config,
            format!(
                "[server]\nlisten = \"127.0.0.1:5443\"\n{}\n",
                tls.server_toml(extra)
            ),
        )
        .unwrap();
    };
    let check = || {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_trustgate"));
        cmd.arg("check-config").arg(&config);
        proc::run(cmd, Duration::from_secs(30), &t.sub("cli"))
    };

    write_config("");
    let out = check();
    assert!(out.success(), "{out}");
    assert!(
        out.stdout.contains("listening on 127.0.0.1:5443 (HTTPS)"),
        "{out}"
    );

    // A key that parses but belongs to another certificate.
    std::fs::write(tls.key(), ca.server(2).key_pem).unwrap();
    let out = check();
    out.assert_failure();
    assert!(
        out.stderr.contains(&format!(
            "{}: server.tls_key: {}: does not belong to the first certificate of {}",
            config.display(),
            tls.key().display(),
            tls.cert().display()
        )),
        "{out}"
    );

    // A client CA file that holds a key instead of certificates.
    tls.install(&ca.server(3));
    let bogus_ca = t.path().join("tls/clients.pem");
    std::fs::write(&bogus_ca, ca.server(4).key_pem).unwrap();
    write_config(&format!("client_ca = \"{}\"\n", bogus_ca.display()));
    let out = check();
    out.assert_failure();
    // config.rs's quick check (a PEM certificate must be in it) answers first, in the same form.
    assert!(
        out.stderr
            .contains(&format!("server.client_ca: {}", bogus_ca.display())),
        "{out}"
    );
}

// ---------------------------------------------------------------------------------------------
// Limits and timeouts

#[test]
fn a_request_head_trickled_byte_by_byte_is_cut_at_header_read_timeout() {
    let t = TestDir::new("ops-loris");
    let tg = start_bare(
        &t.sub("trustgate"),
        "header_read_timeout = 2\nidle_timeout = 300\n".into(),
    );
    let port = tg.port();

    // One byte a second, never finishing the head: every byte is activity, so only the header
    // timeout can end this.
    let mut sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let head = b"GET /v2/ HTTP/1.1\r\nHost: localhost\r\nX-Slow: ";
    let mut got = Vec::new();
    let mut closed = false;
    // Bounded well below hyper's own default (30 s), so the configured 2 s is what is seen.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut buf = [0u8; 1024];
    for byte in head.iter().chain(std::iter::repeat(&b'a')) {
        if Instant::now() > deadline {
            break;
        }
        if sock.write_all(&[*byte]).is_err() {
            closed = true;
            break;
        }
        match sock.read(&mut buf) {
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if is_timeout(&e) => {}
            Err(_) => {
                closed = true;
                break;
            }
        }
    }
    assert!(
        closed,
        "a trickled request head was never cut\n{}",
        tg.logs()
    );
    assert!(
        !got.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&got)
    );

    // A client that connects and sends nothing is dropped too (before hyper has a request to
    // time: trustgate's own first-bytes deadline).
    let mut silent = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let (closed, _) = wait_closed(&mut silent, Duration::from_secs(20));
    assert!(closed, "a silent connection was kept\n{}", tg.logs());

    // The server goes on serving.
    let mut fine = TcpStream::connect(("127.0.0.1", port)).unwrap();
    assert_eq!(get(&mut fine, "/v2/").unwrap().status, 200);
}

#[test]
fn a_tls_client_that_never_says_hello_is_dropped() {
    let t = TestDir::new("ops-hello");
    let ca = TestCa::new("trustgate test CA");
    let tls = TlsDir::new(t.sub("tls"), &ca, &ca.server(1));
    let tg = start_bare(
        &t.sub("trustgate"),
        tls.server_toml("header_read_timeout = 2\nidle_timeout = 300\n"),
    );
    let mut sock = TcpStream::connect(("127.0.0.1", tg.port())).unwrap();
    let (closed, _) = wait_closed(&mut sock, Duration::from_secs(20));
    assert!(
        closed,
        "a connection without ClientHello was kept\n{}",
        tg.logs()
    );
    // A client that does say hello is served.
    let mut ok = tls_connect(tg.port(), client_config(&[&ca.der], None, &[b"http/1.1"])).unwrap();
    assert_eq!(get(&mut ok, "/v2/").unwrap().status, 200);
}

#[test]
fn quiet_connections_are_closed_after_idle_timeout() {
    let t = TestDir::new("ops-idle");
    let ca = TestCa::new("trustgate test CA");
    let tls = TlsDir::new(t.sub("tls"), &ca, &ca.server(1));
    // header_read_timeout (which hyper also applies between keep-alive requests) is far longer,
    // so a close seen within the bound below is the idle timeout's.
    let tg = start_bare(
        &t.sub("trustgate"),
        tls.server_toml("header_read_timeout = 600\nidle_timeout = 2\n"),
    );
    let port = tg.port();

    // HTTP/1.1 keep-alive after one request.
    let mut h1 = tls_connect(port, client_config(&[&ca.der], None, &[b"http/1.1"])).unwrap();
    assert_eq!(get(&mut h1, "/v2/").unwrap().status, 200);
    let (closed, _) = wait_closed(&mut h1.sock, Duration::from_secs(120));
    assert!(
        closed,
        "an idle HTTP/1.1 connection was kept\n{}",
        tg.logs()
    );

    // HTTP/2 (ALPN) that never sends its preface: hyper has no timeout of its own for this.
    let mut h2 = tls_connect(port, client_config(&[&ca.der], None, &[b"h2"])).unwrap();
    assert_eq!(h2.conn.alpn_protocol(), Some(&b"h2"[..]));
    let (closed, _) = wait_closed(&mut h2.sock, Duration::from_secs(120));
    assert!(closed, "an idle HTTP/2 connection was kept\n{}", tg.logs());
}

#[test]
fn an_oversized_request_head_gets_431_and_others_are_still_served() {
    let t = TestDir::new("ops-431");
    let tg = start_bare(&t.sub("trustgate"), "max_header_bytes = \"8KiB\"\n".into());
    let port = tg.port();

    let mut big = TcpStream::connect(("127.0.0.1", port)).unwrap();
    big.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let filler = "a".repeat(16 * 1024);
    // The server may answer and close before all of it is written.
    let _ = write!(
        big,
        "GET /v2/ HTTP/1.1\r\nHost: localhost\r\nX-Big: {filler}\r\n\r\n"
    );
    match read_head(&mut big) {
        Ok((status, head)) => assert_eq!(status, 431, "{head}"),
        // Closed without an answer: also a refusal.
        Err(e) => eprintln!("connection closed without a status line: {e}"),
    }
    if let Ok((status, _)) = read_head(&mut big) {
        panic!("the connection went on after the 431: {status}");
    }

    // A head under the limit, on a new connection, is served.
    let mut fine = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let r = get(&mut fine, &format!("/v2/?pad={}", "b".repeat(4000))).unwrap();
    assert_eq!(r.status, 200, "{}", r.head);
}

#[test]
fn at_max_connections_a_new_connection_waits_for_a_free_slot() {
    let t = TestDir::new("ops-maxconn");
    let tg = start_bare(
        &t.sub("trustgate"),
        "max_connections = 1\nheader_read_timeout = 300\nidle_timeout = 300\n".into(),
    );
    let port = tg.port();

    let mut first = TcpStream::connect(("127.0.0.1", port)).unwrap();
    first
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    assert_eq!(get(&mut first, "/v2/").unwrap().status, 200);

    // The kernel completes the TCP handshake, but trustgate does not accept it yet.
    let mut second = TcpStream::connect(("127.0.0.1", port)).unwrap();
    second
        .write_all(b"GET /v2/ HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    second
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let mut byte = [0u8; 1];
    match second.read(&mut byte) {
        Err(e) if is_timeout(&e) => {}
        other => panic!("the second connection was served while the first was open: {other:?}"),
    }
    // The first is still served meanwhile.
    assert_eq!(get(&mut first, "/v2/").unwrap().status, 200);

    drop(first);
    second
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let r = read_response(&mut second).unwrap();
    assert_eq!(r.status, 200, "{}", r.head);
}

// ---------------------------------------------------------------------------------------------
// Graceful shutdown

/// A one-layer image whose layer is `size` raw random bytes (an uncompressed OCI layer that
/// skopeo copies as is), in a skopeo `dir:` layout. Returns the layer's digest.
fn raw_image(dir: &Path, size: usize) -> String {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("version"), "Directory Transport Version: 1.1\n").unwrap();
    let write = |bytes: &[u8]| {
        let d = sha256_digest(bytes);
        std::fs::write(dir.join(d.trim_start_matches("sha256:")), bytes).unwrap();
        d
    };
    let layer = random_bytes(size, 64);
    let layer_d = write(&layer);
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [layer_d]},
    }))
    .unwrap();
    let config_d = write(&config);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": config.len(), "digest": config_d},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "size": layer.len(), "digest": layer_d}],
    }))
    .unwrap();
    std::fs::write(dir.join("manifest.json"), &manifest).unwrap();
    layer_d
}

/// Starts `GET /v2/demo/big/blobs/DIGEST` and returns the socket once the response head is in.
fn start_download(port: u16, digest: &str) -> (TcpStream, usize) {
    let mut sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    write!(
        sock,
        "GET /v2/demo/big/blobs/{digest} HTTP/1.1\r\nHost: localhost\r\n\r\n"
    )
    .unwrap();
    let (status, head) = read_head(&mut sock).unwrap();
    assert_eq!(status, 200, "{head}");
    let len = content_length(&head).unwrap_or_else(|| panic!("no Content-Length: {head}"));
    (sock, len)
}

#[test]
fn sigterm_finishes_a_download_in_progress_refuses_new_connections_and_exits_0() {
    const SIZE: usize = 32 << 20;
    let t = TestDir::new("ops-sigterm");
    let reg = Registry::start(&t.sub("registry"));
    let skopeo = Skopeo::new(&t.sub("skopeo"));
    let layout = t.sub("img");
    let digest = raw_image(&layout, SIZE);
    skopeo
        .push_dir(
            &layout,
            &format!("docker://{}/demo/big:v1", reg.host()),
            false,
            None,
        )
        .assert_success();

    // idle_timeout is shorter than the download: a client that keeps reading is never cut.
    let mut tg = Trustgate::start(
        &t.sub("trustgate"),
        TrustgateOptions {
            upstreams: vec![UpstreamConfig::default_for(&reg)],
            server_toml: "idle_timeout = 2\nshutdown_grace = 300\n".into(),
            ..Default::default()
        },
    );
    let port = tg.port();

    // A client reading about 8 MiB/s, so the download takes several seconds.
    let progress = Arc::new(AtomicUsize::new(0));
    let reader = std::thread::spawn({
        let progress = progress.clone();
        let digest = digest.clone();
        move || -> io::Result<Vec<u8>> {
            let (mut sock, len) = start_download(port, &digest);
            let mut body = Vec::with_capacity(len);
            let mut buf = vec![0u8; 64 << 10];
            while body.len() < len {
                let want = buf.len().min(len - body.len());
                let n = sock.read(&mut buf[..want])?;
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&buf[..n]);
                progress.store(body.len(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(8));
            }
            Ok(body)
        }
    });
    assert!(
        proc::wait_until(Duration::from_secs(120), || {
            progress.load(Ordering::Relaxed) >= 2 << 20
        }),
        "the download did not start\n{}",
        tg.logs()
    );
    proc::signal(tg.pid(), "TERM");

    // New connections are refused while the download goes on.
    let refused = proc::wait_until(Duration::from_secs(30), || {
        TcpStream::connect(("127.0.0.1", port)).is_err()
    });
    assert!(
        refused,
        "trustgate still accepts after SIGTERM\n{}",
        tg.logs()
    );
    assert!(
        progress.load(Ordering::Relaxed) < SIZE,
        "the download ended before new connections were refused; the test proves nothing"
    );

    let body = reader.join().unwrap().unwrap_or_else(|e| {
        panic!("the download was cut: {e}\n{}", tg.logs());
    });
    assert_eq!(body.len(), SIZE, "{}", tg.logs());
    assert_eq!(sha256_digest(&body), digest);
    let status = tg.wait_exit(Duration::from_secs(60));
    assert!(
        status.is_some_and(|s| s.success()),
        "exit status {status:?}\n{}",
        tg.logs()
    );

    // After the grace, connections still open are closed and trustgate exits 0 anyway: a
    // client that stops reading holds its response open forever otherwise.
    let mut tg = Trustgate::start(
        &t.sub("trustgate-grace"),
        TrustgateOptions {
            upstreams: vec![UpstreamConfig::default_for(&reg)],
            server_toml: "idle_timeout = 600\nshutdown_grace = 1\n".into(),
            ..Default::default()
        },
    );
    let (mut stalled, len) = start_download(tg.port(), &digest);
    proc::signal(tg.pid(), "TERM");
    let status = tg.wait_exit(Duration::from_secs(60));
    assert!(
        status.is_some_and(|s| s.success()),
        "exit status {status:?}\n{}",
        tg.logs()
    );
    let mut rest = Vec::new();
    let _ = stalled.read_to_end(&mut rest);
    assert!(rest.len() < len, "the stalled download was not cut");
}
