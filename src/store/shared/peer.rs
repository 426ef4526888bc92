//! The fleet's internal peer endpoint (`[fleet]`, issue 14): a replica waiting on another's
//! fill lease streams the bytes from the holder instead of waiting for the whole object to
//! reach the bucket.
//!
//! The holder writes its `advertise` URL into the lease; a waiter asks
//! `GET <advertise>/fleet/v1/blobs/sha256:<hex>` with `Authorization: Bearer <secret>` (the same
//! secret on every replica, from `secret_file`) and gets the holder's running fill as it grows
//! (or the finished object). The waiter's local fill hashes those bytes like any others, and
//! does not upload them: the holder does. When the holder cannot be reached, the waiter falls
//! back to waiting for the object in the bucket. The endpoint listens on `[fleet] listen`,
//! never on the client listener, and answers 401 to anyone without the secret.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::TryStreamExt;
use http::{header, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde::Deserialize;
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;

use crate::body::{full_body, stream_body, Body, BoxError};
use crate::reference::Digest;
use crate::store::Store;

/// `[fleet]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetConfig {
    /// Where the peer endpoint listens (keep it on the replicas' private network).
    pub listen: SocketAddr,
    /// The URL other replicas reach this one's peer endpoint at: `http://10.0.3.7:5003`.
    pub advertise: url::Url,
    /// A file holding the secret every replica of the fleet shares (one line).
    pub secret_file: PathBuf,
}

impl FleetConfig {
    pub fn validate(&self) -> Result<(), (String, String)> {
        if !matches!(self.advertise.scheme(), "http" | "https") || self.advertise.host().is_none() {
            return Err((
                "advertise".into(),
                format!("{} is not an http(s) URL with a host", self.advertise),
            ));
        }
        Ok(())
    }

    /// The shared secret, trimmed; an empty or unreadable file is an error naming it.
    pub fn read_secret(&self) -> Result<String, String> {
        let text = std::fs::read_to_string(&self.secret_file)
            .map_err(|e| format!("fleet.secret_file {}: {e}", self.secret_file.display()))?;
        let secret = text.trim().to_string();
        if secret.len() < 16 {
            return Err(format!(
                "fleet.secret_file {}: the secret must be at least 16 characters",
                self.secret_file.display()
            ));
        }
        Ok(secret)
    }
}

/// What a replica needs to ask its peers.
#[derive(Clone)]
pub struct Peering {
    pub advertise: String,
    secret: String,
    client: reqwest::Client,
}

impl std::fmt::Debug for Peering {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peering")
            .field("advertise", &self.advertise)
            .finish_non_exhaustive()
    }
}

impl Peering {
    pub fn new(cfg: &FleetConfig, secret: String) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(std::time::Duration::from_secs(3))
            .build()
            .map_err(|e| format!("fleet: {e}"))?;
        Ok(Self {
            advertise: cfg.advertise.as_str().trim_end_matches('/').to_string(),
            secret,
            client,
        })
    }

    /// The holder's fill of `digest` at `advertise`: its length (if known) and bytes.
    pub async fn fetch(
        &self,
        advertise: &str,
        digest: &Digest,
    ) -> Result<(Option<u64>, super::source::FillStream), String> {
        let url = format!(
            "{}/fleet/v1/blobs/{digest}",
            advertise.trim_end_matches('/')
        );
        let resp = self
            .client
            .get(&url)
            .bearer_auth(&self.secret)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if resp.status() != reqwest::StatusCode::OK {
            return Err(format!("{url} answered {}", resp.status()));
        }
        let len = resp.content_length();
        let stream = resp.bytes_stream().map_err(BoxError::from);
        Ok((len, Box::pin(stream)))
    }
}

/// Serves the peer endpoint on `listener` until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    store: Arc<Store>,
    secret: String,
    shutdown: impl Future<Output = ()> + Send,
) {
    let secret = Arc::new(secret);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, peer)) = accepted else { continue };
                let (store, secret) = (store.clone(), secret.clone());
                let service = hyper::service::service_fn(move |req| {
                    let (store, secret) = (store.clone(), secret.clone());
                    async move { Ok::<_, Infallible>(handle(&store, &secret, req).await) }
                });
                tokio::spawn(async move {
                    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    if let Err(e) = builder.serve_connection(TokioIo::new(stream), service).await {
                        tracing::debug!(%peer, error = %e, "fleet peer connection ended with an error");
                    }
                });
            }
            _ = &mut shutdown => break,
        }
    }
}

fn answer(status: StatusCode, text: &str) -> Response<Body> {
    let mut r = Response::new(full_body(Bytes::from(format!("{text}\n"))));
    *r.status_mut() = status;
    r
}

async fn handle(store: &Arc<Store>, secret: &str, req: Request<Incoming>) -> Response<Body> {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !bool::from(presented.as_bytes().ct_eq(secret.as_bytes())) {
        return answer(StatusCode::UNAUTHORIZED, "the fleet secret is required");
    }
    let Some(d) = req
        .uri()
        .path()
        .strip_prefix("/fleet/v1/blobs/")
        .and_then(|d| Digest::parse(d).ok())
    else {
        return answer(StatusCode::NOT_FOUND, "not a fleet path");
    };
    // The running fill (what a waiting replica asks for), else the finished object.
    let Some(fill) = store.running_fill(&d).or_else(|| {
        store.contains(&d).then(|| {
            store.fill(d, None, None, || async {
                Err::<
                    (
                        Option<u64>,
                        futures_util::stream::Empty<Result<Bytes, std::io::Error>>,
                    ),
                    _,
                >(std::io::Error::other("not reached: the object is stored"))
            })
        })
    }) else {
        return answer(StatusCode::NOT_FOUND, "no fill of this digest here");
    };
    let total = match fill.total().await {
        Ok(t) => t,
        Err(e) => return answer(StatusCode::BAD_GATEWAY, &e.to_string()),
    };
    let mut r = Response::new(stream_body(fill.reader(None)));
    if let Some(t) = total {
        r.headers_mut()
            .insert(header::CONTENT_LENGTH, http::HeaderValue::from(t));
    }
    r
}
