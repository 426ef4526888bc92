//! The operator's listener (`[admin] listen`, by default `127.0.0.1:5001`), apart from the
//! registry API so that it can stay on a private address while clients reach the proxy:
//!
//! - `GET /metrics`: every [`crate::metrics`] series, in OpenMetrics text when the scraper asks
//!   for it (Prometheus does), else in the Prometheus text format 0.0.4;
//! - `GET /healthz`: `200 ok` while the process answers at all (liveness);
//! - `GET /readyz`: `200 ready` once the proxy is built from the configuration and the storage
//!   accepts writes (a probe file is created, fsynced and removed under `<storage>/tmp` at every
//!   call); otherwise `503` with one line per failed check, e.g.
//!   `storage /var/lib/trustgate not writable: Not a directory (os error 20)`.
//!
//!   With a shared store (`[storage.shared]`) that is down, `/readyz` stays `200` (pulls go on
//!   from the local tier and the upstream) and says so on a second line:
//!   `degraded: shared store s3://... unavailable (...): <why>`.
//!
//!   A local store that cannot keep content (issue 15) is degraded too, not unready: pulls are
//!   served unstored. The probe failing with ENOSPC, EDQUOT, EROFS or EIO, a disk fault seen by
//!   the last fill or put, or free space below `storage.min_free` that eviction cannot restore
//!   each give a line such as `degraded: store /var/lib/trustgate: disk full (...): pulls are
//!   served without being stored`. The line goes by itself once a write succeeds again (the
//!   next fill, or the probe here and the evictor's every 30 s).
//!
//!   An upstream registry or Notary server that stopped answering (its last request refused,
//!   timed out or answered 5xx) is a degraded line too, until it answers again: e.g.
//!   `degraded: Notary server of docker.io (https://notary.docker.io/): not answering for 12 s
//!   (40 failed requests, the last 0 s ago: ...): tags verified before are served from their
//!   pinned trust data until it expires; other signed pulls are refused`. The gateway stays
//!   ready: what it holds is still served, and its replicas depend on the same upstream.
//!
//! Anything else is a 404 (405 for another method on these paths). No authentication: bind it to
//! an address only operators reach.

use std::convert::Infallible;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use crate::metrics::{metrics, OPENMETRICS_CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE};

/// A storage probe that takes longer than this fails readiness (a hung disk or NFS mount).
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// One `/readyz` line for an upstream that is not answering, and what that means for pulls.
fn outage_line(
    client: &crate::upstream::AuthClient,
    o: &crate::upstream::reachability::Outage,
    now: tokio::time::Instant,
) -> String {
    let (who, meaning) = if client.is_notary() {
        (
            client.name().to_string(),
            "tags verified before are served from their pinned trust data until it expires; \
             other signed pulls are refused",
        )
    } else {
        (
            format!("upstream {}", client.name()),
            "content in the store is served; anything else from it cannot be pulled",
        )
    };
    format!(
        "{who} ({}): not answering for {} s ({} failed requests, the last {} s ago: {}): {meaning}",
        client.base_url(),
        now.saturating_duration_since(o.since).as_secs(),
        o.failures,
        now.saturating_duration_since(o.last_failure).as_secs(),
        o.last_error,
    )
}

/// What `/readyz` checks.
#[derive(Debug)]
pub struct Health {
    storage: PathBuf,
    /// Set once the proxy was built from the loaded configuration (store opened and indexed).
    started: AtomicBool,
    probes: AtomicU64,
    /// The fleet's shared store, when configured: its outage is reported, not fatal.
    shared: std::sync::OnceLock<Arc<crate::store::SharedStore>>,
    /// The local store: a disk that cannot keep content is reported, not fatal.
    store: std::sync::OnceLock<Arc<crate::store::Store>>,
    /// Every upstream's client: one not answering is reported, not fatal.
    upstreams: std::sync::OnceLock<Vec<crate::upstream::AuthClient>>,
}

/// What `/readyz` found: problems make it `503`, degraded lines ride along a `200`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Readiness {
    pub problems: Vec<String>,
    pub degraded: Vec<String>,
}

impl Health {
    pub fn new(storage: &Path) -> Self {
        Self {
            storage: storage.to_path_buf(),
            started: AtomicBool::new(false),
            probes: AtomicU64::new(0),
            shared: std::sync::OnceLock::new(),
            store: std::sync::OnceLock::new(),
            upstreams: std::sync::OnceLock::new(),
        }
    }

    /// Reports the upstreams that stop answering in `/readyz`.
    pub fn set_upstreams(&self, clients: Vec<crate::upstream::AuthClient>) {
        let _ = self.upstreams.set(clients);
    }

    /// Reports the local store's disk condition in `/readyz` (issue 15).
    pub fn set_store(&self, store: Arc<crate::store::Store>) {
        let _ = self.store.set(store);
    }

    /// Reports the shared store's state in `/readyz` (issue 14).
    pub fn set_shared(&self, shared: Arc<crate::store::SharedStore>) {
        let _ = self.shared.set(shared);
    }

    /// Why the service runs degraded (ready all the same), one line each.
    pub async fn degraded(&self) -> Vec<String> {
        self.readiness().await.degraded
    }

    /// The configuration is loaded and the proxy built from it: ready to serve, storage
    /// permitting.
    pub fn set_started(&self) {
        self.started.store(true, Ordering::Release);
    }

    /// Every readiness problem, one operator-readable line each; empty when ready.
    pub async fn problems(&self) -> Vec<String> {
        self.readiness().await.problems
    }

    /// The storage probe, then the store's own report and the shared store's.
    pub async fn readiness(&self) -> Readiness {
        let mut r = Readiness::default();
        if !self.started.load(Ordering::Acquire) {
            r.problems.push(format!(
                "starting: the store under {} is being opened",
                self.storage.display()
            ));
            return r;
        }
        let probe = self.probe().await;
        let store = match self.store.get() {
            Some(s) => s.degraded().await,
            None => None,
        };
        match probe {
            Ok(()) => r.degraded.extend(store),
            // The disk refuses writes but the gateway serves on, unstored.
            Err((e, true)) if self.store.get().is_some() => {
                r.degraded.push(store.unwrap_or(format!(
                    "store {} not writable ({e}): pulls are served without being stored",
                    self.storage.display()
                )))
            }
            Err((e, _)) => r.problems.push(e),
        }
        r.degraded
            .extend(self.shared.get().and_then(|s| s.problem()));
        let now = tokio::time::Instant::now();
        for c in self.upstreams.get().into_iter().flatten() {
            r.degraded
                .extend(c.outage().map(|o| outage_line(c, &o, now)));
        }
        r
    }

    /// Writes the probe file; on failure the line to report, and whether it is a disk fault
    /// the store serves through (full, quota, read-only, I/O error).
    async fn probe(&self) -> Result<(), (String, bool)> {
        let n = self.probes.fetch_add(1, Ordering::Relaxed);
        let probe = self
            .storage
            .join("tmp")
            .join(format!("readyz-{}-{n}", std::process::id()));
        let root = self.storage.display().to_string();
        let task = tokio::task::spawn_blocking(move || write_probe(&probe));
        match tokio::time::timeout(PROBE_TIMEOUT, task).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(e))) => {
                let fault = crate::store::Unstored::from_io_error(&e).is_some();
                Err((format!("storage {root} not writable: {e}"), fault))
            }
            Ok(Err(e)) => Err((format!("storage {root}: the probe failed: {e}"), false)),
            Err(_) => Err((
                format!(
                    "storage {root} not writable: a probe write did not finish within {} s",
                    PROBE_TIMEOUT.as_secs()
                ),
                false,
            )),
        }
    }
}

/// Create, write, fsync and remove one small file: what every fill does, in miniature.
fn write_probe(path: &Path) -> std::io::Result<()> {
    use std::io::Write;
    let result = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .and_then(|mut f| {
            f.write_all(b"trustgate readiness probe\n")?;
            f.sync_all()
        });
    let removed = std::fs::remove_file(path);
    result?;
    removed
}

/// Serves the admin endpoints until `shutdown` completes, then stops accepting and lets open
/// connections finish.
pub async fn serve(
    listener: TcpListener,
    health: Arc<Health>,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, "admin: accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let health = health.clone();
                let service = hyper::service::service_fn(move |req| {
                    let health = health.clone();
                    async move { Ok::<_, Infallible>(handle(&health, req).await) }
                });
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                let conn = builder.serve_connection(TokioIo::new(stream), service).into_owned();
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(%peer, error = %e, "admin connection ended with an error");
                    }
                });
            }
            _ = &mut shutdown => break,
        }
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

async fn handle(health: &Health, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    if !matches!(path, "/metrics" | "/healthz" | "/readyz") {
        return text(
            StatusCode::NOT_FOUND,
            "not found: try /metrics, /healthz or /readyz\n",
        );
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    match path {
        "/metrics" => {
            let openmetrics = wants_openmetrics(req.headers());
            match metrics().encode(openmetrics) {
                Ok(body) => {
                    let content_type = if openmetrics {
                        OPENMETRICS_CONTENT_TYPE
                    } else {
                        PROMETHEUS_CONTENT_TYPE
                    };
                    let mut r = Response::new(Full::new(Bytes::from(body)));
                    r.headers_mut()
                        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
                    r
                }
                Err(e) => text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &format!("cannot encode the metrics: {e}\n"),
                ),
            }
        }
        "/healthz" => text(StatusCode::OK, "ok\n"),
        _ => {
            let Readiness { problems, degraded } = health.readiness().await;
            if problems.is_empty() {
                if degraded.is_empty() {
                    text(StatusCode::OK, "ready\n")
                } else {
                    text(
                        StatusCode::OK,
                        &format!("ready\ndegraded: {}\n", degraded.join("\ndegraded: ")),
                    )
                }
            } else {
                tracing::warn!(problems = %problems.join("; "), "not ready");
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &format!("{}\n", problems.join("\n")),
                )
            }
        }
    }
}

/// Does the scraper's `Accept` name the OpenMetrics text format?
fn wants_openmetrics(headers: &http::HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"))
}

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn readiness_probes_the_storage_each_time() {
        let dir = tempfile::tempdir().unwrap();
        let storage = dir.path().join("data");
        std::fs::create_dir_all(storage.join("tmp")).unwrap();
        let h = Health::new(&storage);
        let p = h.problems().await;
        assert!(p.len() == 1 && p[0].starts_with("starting"), "{p:?}");
        h.set_started();
        assert_eq!(h.problems().await, Vec::<String>::new());
        assert_eq!(std::fs::read_dir(storage.join("tmp")).unwrap().count(), 0);

        // The storage folder replaced by a file (root is not stopped by permission bits).
        std::fs::rename(&storage, dir.path().join("away")).unwrap();
        std::fs::write(&storage, b"not a folder").unwrap();
        let p = h.problems().await;
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].starts_with(&format!("storage {} not writable: ", storage.display())),
            "{p:?}"
        );
        assert!(p[0].contains("Not a directory"), "{p:?}");

        std::fs::remove_file(&storage).unwrap();
        std::fs::rename(dir.path().join("away"), &storage).unwrap();
        assert_eq!(h.problems().await, Vec::<String>::new());
    }

    #[test]
    fn openmetrics_only_when_asked() {
        let mut h = http::HeaderMap::new();
        assert!(!wants_openmetrics(&h));
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static(
                "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
            ),
        );
        assert!(wants_openmetrics(&h));
    }
}
