//! Blocking HTTP for the harness (tests are plain `#[test]` functions; the async reqwest client
//! runs on one shared tokio runtime).

use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::proc::ChildGuard;

pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime")
    })
}

/// Every manifest media type, as a pulling client sends them.
pub const MANIFEST_ACCEPT: &str = "application/vnd.docker.distribution.manifest.v2+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.oci.image.index.v1+json";

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One request's options.
#[derive(Default, Clone)]
pub struct Req<'a> {
    pub method: Option<&'a str>,
    pub accept: Option<&'a str>,
    pub basic_auth: Option<(&'a str, &'a str)>,
    pub ca_pem: Option<&'a Path>,
    pub headers: Vec<(&'a str, &'a str)>,
    pub timeout: Option<Duration>,
}

/// Send one request; `Err` only for transport errors (connection refused, TLS, timeout).
pub fn request(url: &str, opts: &Req<'_>) -> Result<Response, String> {
    let mut builder = reqwest::Client::builder()
        .timeout(opts.timeout.unwrap_or(Duration::from_secs(30)))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy();
    if let Some(ca) = opts.ca_pem {
        let pem = std::fs::read(ca).map_err(|e| format!("read CA {}: {e}", ca.display()))?;
        let cert = reqwest::Certificate::from_pem(&pem).map_err(|e| format!("CA: {e}"))?;
        // Only the test CA: reqwest 0.13 would otherwise add the host's store (platform verifier).
        builder = builder.tls_certs_only([cert]);
    }
    let client = builder.build().map_err(|e| e.to_string())?;
    let method = reqwest::Method::from_bytes(opts.method.unwrap_or("GET").as_bytes())
        .map_err(|e| e.to_string())?;
    let mut rb = client.request(method, url);
    if let Some(a) = opts.accept {
        rb = rb.header("Accept", a);
    }
    if let Some((u, p)) = opts.basic_auth {
        rb = rb.basic_auth(u, Some(p));
    }
    for (k, v) in &opts.headers {
        rb = rb.header(*k, *v);
    }
    runtime().block_on(async move {
        let resp = rb.send().await.map_err(|e| format!("{e:?}"))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.map_err(|e| format!("{e:?}"))?.to_vec();
        Ok(Response {
            status,
            headers,
            body,
        })
    })
}

pub fn get(url: &str) -> Result<Response, String> {
    request(url, &Req::default())
}

/// Poll `url` until it answers `want_status`, failing fast (with the server's logs) if `server`
/// exits, and panicking after `timeout`.
pub fn wait_ready(
    url: &str,
    want_status: u16,
    opts: &Req<'_>,
    server: &mut ChildGuard,
    timeout: Duration,
) {
    let deadline = Instant::now() + timeout;
    let short = Req {
        timeout: Some(Duration::from_secs(2)),
        ..opts.clone()
    };
    loop {
        let last = match request(url, &short) {
            Ok(r) if r.status == want_status => return,
            Ok(r) => format!("status {} body {}", r.status, r.text()),
            Err(e) => e,
        };
        if !server.is_alive() {
            let status = server.try_status();
            panic!(
                "{} exited before {url} answered {want_status} (status {status:?}); last: {last}\n{}",
                server.name(),
                server.logs()
            );
        }
        if Instant::now() >= deadline {
            panic!(
                "{} did not answer {want_status} at {url} within {timeout:?}; last: {last}\n{}",
                server.name(),
                server.logs()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}
