//! A scriptable, in-process fake upstream registry (hyper 1 on 127.0.0.1:0) for integration
//! tests, in `tests/support/inproc` (`inproc::fake_upstream::FakeUpstream::start().await`).
//!
//! It serves manifests, blobs and tags from in-memory maps, with optional Bearer token auth
//! (token endpoint at `/token` on the same server) or Basic auth; records every request
//! (method, URI, path, headers); counts requests per path and token requests; and can be
//! scripted per path to answer a fixed status, delay, drop the connection halfway through a
//! body, stall a body, or redirect. Blobs can be redirected (307) to another server's `/cdn/`
//! route, like Docker Hub's CDN. With [`FakeUpstream::enable_referrers`] it answers the OCI 1.1
//! referrers API (`/v2/<name>/referrers/<digest>[?artifactType=]`) from the manifests it holds
//! whose `subject` is the digest; without, that path is a 404 like the CNCF registry 2.8's.
#![allow(dead_code)]

use bytes::Bytes;
use futures_util::stream::{self, StreamExt};
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{HeaderMap, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::Duration;
use tokio::net::TcpListener;

pub type Body = UnsyncBoxBody<Bytes, std::io::Error>;

/// How the fake authenticates `/v2/…` requests.
#[derive(Clone, Debug, Default)]
pub enum Auth {
    /// Everything is open.
    #[default]
    None,
    /// Registry token flow: 401 + `Bearer realm="<base>/token",service=…,scope=…` until a token
    /// issued by `/token` whose scope covers the repository is presented.
    Bearer {
        service: String,
        /// `expires_in` in the token response (omitted when `None`).
        expires_in: Option<u64>,
        /// `issued_at` = now minus this (omitted when `None`).
        issued_ago: Option<Duration>,
        /// Basic credentials the token endpoint requires (anonymous tokens when `None`).
        credentials: Option<(String, String)>,
    },
    /// 401 + `Basic realm="fake"` unless these credentials are sent.
    Basic { username: String, password: String },
}

impl Auth {
    /// Anonymous bearer auth with the given service name and no `expires_in`.
    pub fn bearer(service: &str) -> Auth {
        Auth::Bearer {
            service: service.to_string(),
            expires_in: None,
            issued_ago: None,
            credentials: None,
        }
    }
}

/// A scripted answer for one path (any method), applied before normal routing.
#[derive(Clone, Debug)]
pub enum Behavior {
    /// Answer this status, headers and body.
    Status {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// Wait, then answer normally.
    Delay(Duration),
    /// Answer normally but declare the full `Content-Length`, send only `after` bytes of the body,
    /// then drop the connection.
    Truncate { after: usize },
    /// Answer normally but pause `stall` after `after` bytes of the body.
    Stall { after: usize, stall: Duration },
    /// Redirect with this status to `location`.
    Redirect { status: u16, location: String },
    /// 200 with these headers and a body that never ends (no `Content-Length`): `chunk`
    /// repeated for as long as the client reads.
    Endless {
        headers: Vec<(String, String)>,
        chunk: Vec<u8>,
    },
}

/// One recorded request.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: Method,
    /// As received: origin-form (`/v2/…?x`), or absolute-form when the fake acts as a proxy.
    pub uri: String,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
}

#[derive(Default)]
struct State {
    base: String,
    auth: Auth,
    /// (repo, reference) → (media type, bytes); stored under the tag and the digest.
    manifests: HashMap<(String, String), (String, Bytes)>,
    /// digest → bytes (served for any repository).
    blobs: HashMap<String, Bytes>,
    tags: BTreeMap<String, Vec<String>>,
    blob_redirect: Option<String>,
    scripts: HashMap<String, Behavior>,
    requests: Vec<Recorded>,
    counts: HashMap<String, usize>,
    token_requests: usize,
    /// token → granted scopes
    issued: HashMap<String, Vec<String>>,
    next_token: u64,
    /// Whether `/v2/<name>/referrers/<digest>` is answered.
    referrers_api: bool,
}

/// A running fake registry. Stops accepting connections when dropped.
pub struct FakeUpstream {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `sha256:<hex>` of some bytes.
pub fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

impl FakeUpstream {
    /// Start an open (no auth) fake on 127.0.0.1 with an ephemeral port.
    pub async fn start() -> FakeUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind fake");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(Mutex::new(State {
            base: format!("http://{addr}"),
            ..State::default()
        }));
        let st = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let st = st.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let st = st.clone();
                        async move { Ok::<_, Infallible>(handle(st, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), svc)
                        .await;
                });
            }
        });
        FakeUpstream { addr, state, task }
    }

    fn st(&self) -> parking_lot::MutexGuard<'_, State> {
        self.state.lock()
    }

    /// `http://127.0.0.1:<port>` (no trailing slash).
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The base as a URL (for `UpstreamSettings::url`).
    pub fn url(&self) -> url::Url {
        url::Url::parse(&self.base()).expect("fake url")
    }

    pub fn set_auth(&self, auth: Auth) {
        self.st().auth = auth;
    }

    /// Store a manifest under `reference` (tag) and under its digest; returns the digest.
    pub fn add_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> String {
        let d = digest(bytes);
        let v = (media_type.to_string(), Bytes::copy_from_slice(bytes));
        let mut st = self.st();
        st.manifests
            .insert((repo.into(), reference.into()), v.clone());
        st.manifests.insert((repo.into(), d.clone()), v);
        d
    }

    /// Store a blob (served for every repository); returns its digest.
    pub fn add_blob(&self, bytes: &[u8]) -> String {
        let d = digest(bytes);
        self.st()
            .blobs
            .insert(d.clone(), Bytes::copy_from_slice(bytes));
        d
    }

    /// Store a manifest under its digest only (no tag); returns the digest.
    pub fn add_untagged_manifest(&self, repo: &str, media_type: &str, bytes: &[u8]) -> String {
        let d = digest(bytes);
        self.st().manifests.insert(
            (repo.into(), d.clone()),
            (media_type.to_string(), Bytes::copy_from_slice(bytes)),
        );
        d
    }

    /// Answer the OCI 1.1 referrers API (off: 404, as registries without it do).
    pub fn enable_referrers(&self, on: bool) {
        self.st().referrers_api = on;
    }

    pub fn set_tags(&self, repo: &str, tags: &[&str]) {
        let mut t: Vec<String> = tags.iter().map(|s| s.to_string()).collect();
        t.sort();
        self.st().tags.insert(repo.into(), t);
    }

    /// Answer blob GET/HEAD with `307 Location: <base>/cdn/<digest>?sig=fake` (base of another
    /// fake, or this one for a same-origin redirect). `None` serves blobs directly.
    pub fn redirect_blobs_to(&self, base: Option<String>) {
        self.st().blob_redirect = base;
    }

    /// Script the answer for a path (exact match on the path, any method).
    pub fn script(&self, path: &str, behavior: Behavior) {
        self.st().scripts.insert(path.to_string(), behavior);
    }

    pub fn clear_script(&self, path: &str) {
        self.st().scripts.remove(path);
    }

    /// All requests so far, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.st().requests.clone()
    }

    /// Requests whose path is `path`.
    pub fn requests_to(&self, path: &str) -> Vec<Recorded> {
        self.st()
            .requests
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    /// Number of requests to `path`.
    pub fn count(&self, path: &str) -> usize {
        self.st().counts.get(path).copied().unwrap_or(0)
    }

    /// Number of requests the token endpoint served (successfully or not).
    pub fn token_requests(&self) -> usize {
        self.st().token_requests
    }

    /// Forget every issued token: presented tokens get `401 error="invalid_token"`.
    pub fn revoke_tokens(&self) {
        self.st().issued.clear();
    }
}

fn full(status: StatusCode, headers: &[(&str, String)], body: impl Into<Bytes>) -> Response<Body> {
    let body: Bytes = body.into();
    let mut r = Response::new(
        Full::new(body)
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *r.status_mut() = status;
    for (k, v) in headers {
        if let (Ok(k), Ok(v)) = (
            hyper::header::HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            r.headers_mut().append(k, v);
        }
    }
    r
}

fn oci_error(
    status: StatusCode,
    code: &str,
    message: &str,
    extra: &[(&str, String)],
) -> Response<Body> {
    let body = serde_json::json!({"errors":[{"code":code,"message":message,"detail":null}]});
    let mut h = vec![("Content-Type", "application/json".to_string())];
    h.extend(extra.iter().cloned());
    full(status, &h, body.to_string())
}

/// What a routed `/v2/…` path refers to.
enum Route {
    Ping,
    Manifest(String, String),
    Blob(String, String),
    Tags(String),
    Referrers(String, String),
    Unknown,
}

fn route(path: &str) -> Route {
    if path == "/v2/" || path == "/v2" {
        return Route::Ping;
    }
    let Some(rest) = path.strip_prefix("/v2/") else {
        return Route::Unknown;
    };
    if let Some(name) = rest.strip_suffix("/tags/list") {
        return Route::Tags(name.to_string());
    }
    if let Some(i) = rest.rfind("/referrers/") {
        return Route::Referrers(rest[..i].to_string(), rest[i + 11..].to_string());
    }
    if let Some(i) = rest.rfind("/manifests/") {
        return Route::Manifest(rest[..i].to_string(), rest[i + 11..].to_string());
    }
    if let Some(i) = rest.rfind("/blobs/") {
        return Route::Blob(rest[..i].to_string(), rest[i + 7..].to_string());
    }
    Route::Unknown
}

async fn handle(state: Arc<Mutex<State>>, req: Request<Incoming>) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().map(str::to_string);
    let headers = req.headers().clone();
    let script = {
        let mut st = state.lock();
        st.requests.push(Recorded {
            method: method.clone(),
            uri: req.uri().to_string(),
            path: path.clone(),
            query: query.clone(),
            headers: headers.clone(),
        });
        *st.counts.entry(path.clone()).or_default() += 1;
        st.scripts.get(&path).cloned()
    };
    let mut body_fault = None;
    match script {
        Some(Behavior::Status {
            status,
            headers: h,
            body,
        }) => {
            let h: Vec<(&str, String)> = h.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
            return full(
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                &h,
                body,
            );
        }
        Some(Behavior::Redirect { status, location }) => {
            return full(
                StatusCode::from_u16(status).unwrap_or(StatusCode::TEMPORARY_REDIRECT),
                &[("Location", location)],
                Bytes::new(),
            );
        }
        Some(Behavior::Endless { headers: h, chunk }) => {
            let chunk = Bytes::from(chunk);
            let frames = stream::repeat_with(move || Ok(Frame::data(chunk.clone())));
            let mut r = Response::new(BodyExt::boxed_unsync(StreamBody::new(frames)));
            for (k, v) in &h {
                if let (Ok(k), Ok(v)) = (
                    hyper::header::HeaderName::from_bytes(k.as_bytes()),
                    HeaderValue::from_str(v),
                ) {
                    r.headers_mut().append(k, v);
                }
            }
            return r;
        }
        Some(Behavior::Delay(d)) => tokio::time::sleep(d).await,
        Some(b @ (Behavior::Truncate { .. } | Behavior::Stall { .. })) => body_fault = Some(b),
        None => {}
    }
    let mut resp = respond(&state, &method, &path, query.as_deref(), &headers);
    resp.headers_mut().insert(
        "Docker-Distribution-API-Version",
        HeaderValue::from_static("registry/2.0"),
    );
    match body_fault {
        Some(fault) if method != Method::HEAD => apply_fault(resp, fault).await,
        _ => resp,
    }
}

async fn apply_fault(resp: Response<Body>, fault: Behavior) -> Response<Body> {
    let (parts, body) = resp.into_parts();
    let Ok(collected) = body.collect().await else {
        return Response::from_parts(
            parts,
            Full::new(Bytes::new())
                .map_err(|n| match n {})
                .boxed_unsync(),
        );
    };
    let bytes = collected.to_bytes();
    let frames: stream::BoxStream<'static, Result<Frame<Bytes>, std::io::Error>> = match fault {
        Behavior::Truncate { after } => {
            let head = bytes.slice(..after.min(bytes.len()));
            // Give hyper time to flush the headers and the first half before the abort.
            stream::once(async move { Ok(Frame::data(head)) })
                .chain(stream::once(async {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Err(std::io::Error::new(
                        std::io::ErrorKind::ConnectionAborted,
                        "fake upstream drops the connection",
                    ))
                }))
                .boxed()
        }
        Behavior::Stall { after, stall } => {
            let at = after.min(bytes.len());
            let head = bytes.slice(..at);
            let tail = bytes.slice(at..);
            stream::once(async move { Ok(Frame::data(head)) })
                .chain(stream::once(async move {
                    tokio::time::sleep(stall).await;
                    Ok(Frame::data(tail))
                }))
                .boxed()
        }
        _ => stream::iter(vec![Ok(Frame::data(bytes))]).boxed(),
    };
    Response::from_parts(parts, BodyExt::boxed_unsync(StreamBody::new(frames)))
}

fn respond(
    state: &Arc<Mutex<State>>,
    method: &Method,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Response<Body> {
    let mut st = state.lock();
    if path == "/token" {
        return token_endpoint(&mut st, query, headers);
    }
    if let Some(d) = path.strip_prefix("/cdn/") {
        return serve_blob(&st, method, d, headers);
    }
    let r = route(path);
    if let Some(denied) = check_auth(&st, &r, headers) {
        return denied;
    }
    match r {
        Route::Ping => full(
            StatusCode::OK,
            &[("Content-Type", "application/json".into())],
            "{}",
        ),
        Route::Manifest(repo, reference) => match st.manifests.get(&(repo, reference.clone())) {
            Some((mt, bytes)) => {
                let h = [
                    ("Content-Type", mt.clone()),
                    ("Docker-Content-Digest", digest(bytes)),
                    ("Etag", format!("\"{}\"", digest(bytes))),
                    ("Content-Length", bytes.len().to_string()),
                ];
                let body = if *method == Method::HEAD {
                    Bytes::new()
                } else {
                    bytes.clone()
                };
                full(StatusCode::OK, &h, body)
            }
            None => oci_error(
                StatusCode::NOT_FOUND,
                "MANIFEST_UNKNOWN",
                &format!("manifest unknown: {reference}"),
                &[],
            ),
        },
        Route::Blob(_repo, d) => {
            if let Some(base) = &st.blob_redirect {
                return full(
                    StatusCode::TEMPORARY_REDIRECT,
                    &[("Location", format!("{base}/cdn/{d}?sig=fake"))],
                    Bytes::new(),
                );
            }
            serve_blob(&st, method, &d, headers)
        }
        Route::Tags(repo) => tags(&st, &repo, query),
        Route::Referrers(repo, d) if st.referrers_api => referrers(&st, &repo, &d, query),
        Route::Referrers(..) => oci_error(StatusCode::NOT_FOUND, "NAME_UNKNOWN", "no route", &[]),
        Route::Unknown => oci_error(StatusCode::NOT_FOUND, "NAME_UNKNOWN", "no route", &[]),
    }
}

fn check_auth(st: &State, r: &Route, headers: &HeaderMap) -> Option<Response<Body>> {
    let presented = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let repo = match r {
        Route::Manifest(repo, _)
        | Route::Blob(repo, _)
        | Route::Tags(repo)
        | Route::Referrers(repo, _) => Some(repo.clone()),
        _ => None,
    };
    match &st.auth {
        Auth::None => None,
        Auth::Basic { username, password } => {
            use base64::Engine as _;
            let want = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))
            );
            if presented.as_deref() == Some(want.as_str()) {
                None
            } else {
                Some(oci_error(
                    StatusCode::UNAUTHORIZED,
                    "UNAUTHORIZED",
                    "authentication required",
                    &[("WWW-Authenticate", "Basic realm=\"fake registry\"".into())],
                ))
            }
        }
        Auth::Bearer { service, .. } => {
            let scope = repo.as_ref().map(|r| format!("repository:{r}:pull"));
            let token = presented.as_deref().and_then(|p| p.strip_prefix("Bearer "));
            let ok = token
                .and_then(|t| st.issued.get(t))
                .is_some_and(|granted| scope.as_ref().is_none_or(|s| granted.contains(s)));
            if ok {
                return None;
            }
            let mut ch = format!("Bearer realm=\"{}/token\",service=\"{service}\"", st.base);
            if let Some(s) = &scope {
                ch.push_str(&format!(",scope=\"{s}\""));
            }
            if token.is_some() {
                ch.push_str(",error=\"invalid_token\"");
            }
            Some(oci_error(
                StatusCode::UNAUTHORIZED,
                "UNAUTHORIZED",
                "authentication required",
                &[("WWW-Authenticate", ch)],
            ))
        }
    }
}

fn token_endpoint(st: &mut State, query: Option<&str>, headers: &HeaderMap) -> Response<Body> {
    st.token_requests += 1;
    let Auth::Bearer {
        expires_in,
        issued_ago,
        credentials,
        ..
    } = st.auth.clone()
    else {
        return oci_error(
            StatusCode::NOT_FOUND,
            "UNSUPPORTED",
            "no token service",
            &[],
        );
    };
    if let Some((u, p)) = credentials {
        use base64::Engine as _;
        let want = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
        );
        let got = headers.get("authorization").and_then(|v| v.to_str().ok());
        if got != Some(want.as_str()) {
            return full(
                StatusCode::UNAUTHORIZED,
                &[("Content-Type", "application/json".into())],
                r#"{"details":"incorrect username or password"}"#,
            );
        }
    }
    let scopes: Vec<String> = url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .filter(|(k, _)| k == "scope")
        .map(|(_, v)| v.into_owned())
        .collect();
    st.next_token += 1;
    let token = format!("fake-token-{}", st.next_token);
    st.issued.insert(token.clone(), scopes);
    let mut body = serde_json::json!({"token": token, "access_token": token});
    if let Some(e) = expires_in {
        body["expires_in"] = e.into();
    }
    if let Some(ago) = issued_ago {
        let at = time::OffsetDateTime::now_utc() - ago;
        if let Ok(s) = at.format(&time::format_description::well_known::Rfc3339) {
            body["issued_at"] = s.into();
        }
    }
    full(
        StatusCode::OK,
        &[("Content-Type", "application/json".into())],
        body.to_string(),
    )
}

/// Parse `bytes=a-b`, `bytes=a-`, `bytes=-n` against `len`: Some(Ok((start, end_inclusive))),
/// Some(Err(())) when unsatisfiable, None when absent or not understood (serve the whole blob).
fn parse_range(h: Option<&str>, len: u64) -> Option<Result<(u64, u64), ()>> {
    let spec = h?.trim().strip_prefix("bytes=")?;
    let (a, b) = spec.split_once('-')?;
    let (start, end) = if a.is_empty() {
        let n: u64 = b.parse().ok()?;
        if n == 0 {
            return Some(Err(()));
        }
        (len.saturating_sub(n), len.checked_sub(1)?)
    } else {
        let start: u64 = a.parse().ok()?;
        let end = if b.is_empty() {
            len.saturating_sub(1)
        } else {
            b.parse::<u64>().ok()?.min(len.saturating_sub(1))
        };
        (start, end)
    };
    if start >= len || start > end {
        return Some(Err(()));
    }
    Some(Ok((start, end)))
}

fn serve_blob(st: &State, method: &Method, d: &str, headers: &HeaderMap) -> Response<Body> {
    let Some(bytes) = st.blobs.get(d) else {
        return oci_error(
            StatusCode::NOT_FOUND,
            "BLOB_UNKNOWN",
            "blob unknown to registry",
            &[],
        );
    };
    let len = bytes.len() as u64;
    let range = headers.get("range").and_then(|v| v.to_str().ok());
    let mut h = vec![
        ("Content-Type", "application/octet-stream".to_string()),
        ("Docker-Content-Digest", d.to_string()),
        ("Accept-Ranges", "bytes".to_string()),
    ];
    let (status, body) = match parse_range(range, len) {
        Some(Err(())) => {
            h.push(("Content-Range", format!("bytes */{len}")));
            return full(StatusCode::RANGE_NOT_SATISFIABLE, &h, Bytes::new());
        }
        Some(Ok((s, e))) => {
            h.push(("Content-Range", format!("bytes {s}-{e}/{len}")));
            (
                StatusCode::PARTIAL_CONTENT,
                bytes.slice(s as usize..=e as usize),
            )
        }
        None => (StatusCode::OK, bytes.clone()),
    };
    h.push(("Content-Length", body.len().to_string()));
    let body = if *method == Method::HEAD {
        Bytes::new()
    } else {
        body
    };
    full(status, &h, body)
}

fn tags(st: &State, repo: &str, query: Option<&str>) -> Response<Body> {
    let Some(all) = st.tags.get(repo) else {
        return oci_error(
            StatusCode::NOT_FOUND,
            "NAME_UNKNOWN",
            "repository name not known to registry",
            &[],
        );
    };
    let q: HashMap<String, String> = url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .into_owned()
        .collect();
    let n: Option<usize> = q.get("n").and_then(|n| n.parse().ok());
    let after: Vec<&String> = all
        .iter()
        .filter(|t| q.get("last").is_none_or(|l| t.as_str() > l.as_str()))
        .collect();
    let page: Vec<&String> = after
        .iter()
        .take(n.unwrap_or(usize::MAX))
        .copied()
        .collect();
    let mut h = vec![("Content-Type", "application/json".to_string())];
    if let (Some(n), Some(last)) = (n, page.last()) {
        if after.len() > page.len() {
            h.push((
                "Link",
                format!("</v2/{repo}/tags/list?last={last}&n={n}>; rel=\"next\""),
            ));
        }
    }
    let body = serde_json::json!({"name": repo, "tags": page});
    full(StatusCode::OK, &h, body.to_string())
}

/// The referrers of `subject` in `repo`: every manifest held by digest whose `subject` names it
/// (OCI distribution-spec 1.1), `artifactType` from the manifest (or its config's media type).
fn referrers(st: &State, repo: &str, subject: &str, query: Option<&str>) -> Response<Body> {
    let want: Option<String> = url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .find(|(k, _)| k == "artifactType")
        .map(|(_, v)| v.into_owned());
    let mut entries: Vec<(String, serde_json::Value)> = Vec::new();
    for ((r, reference), (mt, bytes)) in &st.manifests {
        if r != repo || !reference.starts_with("sha256:") {
            continue;
        }
        let Ok(m) = serde_json::from_slice::<serde_json::Value>(bytes) else {
            continue;
        };
        if m["subject"]["digest"].as_str() != Some(subject) {
            continue;
        }
        let at = m["artifactType"]
            .as_str()
            .or(m["config"]["mediaType"].as_str())
            .unwrap_or("")
            .to_string();
        if want.as_ref().is_some_and(|w| *w != at) {
            continue;
        }
        let mut e = serde_json::json!({"mediaType": mt, "digest": reference, "size": bytes.len(), "artifactType": at});
        if let Some(a) = m.get("annotations") {
            e["annotations"] = a.clone();
        }
        entries.push((reference.clone(), e));
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let body = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": entries.into_iter().map(|(_, e)| e).collect::<Vec<_>>(),
    });
    let mut h = vec![(
        "Content-Type",
        "application/vnd.oci.image.index.v1+json".to_string(),
    )];
    if want.is_some() {
        h.push(("OCI-Filters-Applied", "artifactType".to_string()));
    }
    full(StatusCode::OK, &h, body.to_string())
}
