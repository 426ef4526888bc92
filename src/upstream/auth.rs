//! [`AuthClient`]: one pooled HTTP client for one upstream that handles the registry
//! authentication dance (distribution `docs/content/spec/auth/token.md`) and redirects, shared by
//! the registry client and the Notary client (scope `repository:<GUN>:pull`).
//!
//! Flow for a request with a caller-supplied scope:
//! 1. If the upstream has challenged us before, attach credentials pre-emptively: a cached,
//!    unexpired Bearer token for `(realm, service, scope)`, or Basic credentials.
//! 2. On `401` with a `WWW-Authenticate` challenge: `Bearer` → get a token from the realm
//!    (`GET <realm>?service=…&scope=…`, Basic credentials if configured, anonymous otherwise),
//!    cache it for its lifetime and retry once; `Basic` → retry once with the credentials.
//!    A second 401 is returned as the upstream's error (codes passed through).
//! 3. Redirects (301/302/303/307/308, at most 10) are followed here, not by reqwest, so that
//!    `Authorization` is only ever sent to the upstream's own origin (OCI "API"; Docker Hub
//!    sends blobs from a CDN via 307).
//!
//! Token fetches for one key are single-flight: concurrent requests wait for the one fetch.

use super::challenge::{self, Scheme};
use super::error::{parse_error_body, TimeoutPhase, UpstreamError};
use super::reachability::{Change, Outage, Reachability};
use super::response::{duration_ms, origin, root_cause, UpstreamResponse};
use super::settings::{Timeouts, UpstreamRole, UpstreamSettings};
use crate::metrics::{metrics, UpstreamKind};
use base64::Engine as _;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, LOCATION, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::Duration;
use time::OffsetDateTime;
use tokio::time::Instant;
use url::Url;

/// Longest redirect chain followed (containerd uses 10: `core/remotes/docker/resolver.go`).
pub const MAX_REDIRECTS: usize = 10;
/// Largest error or token body read.
pub const MAX_SMALL_BODY: usize = 64 * 1024;
/// Token lifetime when the token service does not say (`expires_in` absent: distribution `docs/content/spec/auth/token.md`).
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(60);
/// Cached tokens are dropped this much before they expire (at most; 10 % of short lifetimes),
/// so a request does not arrive with a token that expires on the way.
pub const TOKEN_EXPIRY_MARGIN: Duration = Duration::from_secs(5);
/// Entries in the token cache above which expired ones are pruned.
const TOKEN_CACHE_PRUNE_AT: usize = 1024;

/// How long a freshly received token may be used (pure; `now` is the wall clock).
///
/// `expires_in` ≤ 0 or absent → 60 s. When `issued_at` is given and plausible (not in the future,
/// not older than the lifetime) the time already elapsed since issue is subtracted; an implausible
/// `issued_at` (clock skew between us and the token service) is ignored rather than making every
/// token look expired. Then a safety margin of min(5 s, 10 %) is taken off.
///
/// Deviation: distribution's Go client raises lifetimes below 60 s to 60 s; we honour shorter
/// lifetimes (refetching early is cheap, presenting an expired token costs a 401 round trip).
pub fn token_lifetime(
    expires_in: Option<f64>,
    issued_at: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> Duration {
    let lifetime = match expires_in {
        Some(s) if s.is_finite() && s > 0.0 => {
            Duration::try_from_secs_f64(s.min(1.0e9)).unwrap_or(DEFAULT_TOKEN_LIFETIME)
        }
        _ => DEFAULT_TOKEN_LIFETIME,
    };
    let elapsed = issued_at
        .map(|t| now - t)
        .filter(|e| !e.is_negative())
        .and_then(|e| Duration::try_from(e).ok())
        .filter(|e| *e <= lifetime)
        .unwrap_or(Duration::ZERO);
    let remaining = lifetime - elapsed;
    remaining.saturating_sub(TOKEN_EXPIRY_MARGIN.min(remaining / 10))
}

/// Cache key: tokens are valid for one realm, service and scope.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TokenKey {
    pub realm: String,
    pub service: Option<String>,
    pub scope: Option<String>,
}

/// A token and the instant (tokio clock) until which it may be used.
#[derive(Debug, Clone)]
pub struct CachedToken {
    pub token: String,
    pub expires_at: Instant,
}

impl CachedToken {
    pub fn is_valid_at(&self, now: Instant) -> bool {
        now < self.expires_at
    }
}

type Slot = Arc<tokio::sync::Mutex<Option<CachedToken>>>;

/// Token cache with one async lock per key (the lock is what makes fetches single-flight).
/// Time is a parameter of every query so that tests can inject instants.
#[derive(Debug, Default)]
pub struct TokenCache {
    slots: Mutex<HashMap<TokenKey, Slot>>,
}

impl TokenCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// The cached token for `key` if valid at `now`. Does not wait: while a fetch for the key is
    /// running this returns `None`.
    pub fn get(&self, key: &TokenKey, now: Instant) -> Option<String> {
        let slot = self.lock_slots().get(key).cloned()?;
        let token = slot
            .try_lock()
            .ok()?
            .as_ref()
            .filter(|t| t.is_valid_at(now))
            .map(|t| t.token.clone());
        token
    }

    /// Store a token (used by tests and by [`AuthClient`]).
    pub fn insert(&self, key: TokenKey, token: CachedToken) {
        let slot = self.slot(&key);
        if let Ok(mut g) = slot.try_lock() {
            *g = Some(token);
        };
    }

    /// Number of keys held.
    pub fn len(&self) -> usize {
        self.lock_slots().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drop entries that are expired at `now` and not being fetched.
    pub fn prune(&self, now: Instant) {
        self.lock_slots().retain(|_, slot| match slot.try_lock() {
            Ok(g) => g.as_ref().is_some_and(|t| t.is_valid_at(now)),
            Err(_) => true,
        });
    }

    fn slot(&self, key: &TokenKey) -> Slot {
        let mut slots = self.lock_slots();
        if let Some(s) = slots.get(key) {
            return s.clone();
        }
        let s: Slot = Arc::default();
        slots.insert(key.clone(), s.clone());
        s
    }

    fn lock_slots(&self) -> parking_lot::MutexGuard<'_, HashMap<TokenKey, Slot>> {
        self.slots.lock()
    }
}

/// What the upstream asked for the last time it challenged us.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Known {
    Bearer {
        realm: String,
        service: Option<String>,
    },
    Basic,
}

/// Which credential was attached to a request.
#[derive(Debug, Clone)]
enum Attached {
    None,
    Basic(HeaderValue),
    Bearer { token: String },
}

impl Attached {
    fn header(&self) -> Option<HeaderValue> {
        match self {
            Attached::None => None,
            Attached::Basic(h) => Some(h.clone()),
            Attached::Bearer { token, .. } => bearer_header(token).ok(),
        }
    }
}

/// A pooled, authenticating HTTP client for one upstream. Cheap to clone (shared state).
#[derive(Clone, Debug)]
pub struct AuthClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    name: String,
    base: Url,
    http: reqwest::Client,
    basic: Option<HeaderValue>,
    timeouts: Timeouts,
    known: Mutex<Option<Known>>,
    tokens: TokenCache,
    /// Labels of this upstream's metrics.
    metrics_name: String,
    kind: UpstreamKind,
    /// Whether it answers (for `/readyz`, the `upstream_up` gauge and the log).
    reachability: Reachability,
}

impl AuthClient {
    /// Build the client: rustls (aws-lc-rs) with the webpki roots plus `ca_pem`
    /// ([`super::tls::client_config`]), proxies from
    /// `HTTPS_PROXY`/`HTTP_PROXY`/`ALL_PROXY`/`NO_PROXY` (reqwest's default, kept on), no
    /// automatic redirects, pooled connections kept for `timeouts.idle`.
    pub fn new(settings: &UpstreamSettings) -> Result<Self, UpstreamError> {
        let config_err = |reason: String| UpstreamError::Config {
            upstream: settings.name.clone(),
            reason,
        };
        if !matches!(settings.url.scheme(), "http" | "https") {
            return Err(config_err(format!(
                "url {} must be http:// or https://",
                settings.url
            )));
        }
        let tls = super::tls::client_config(settings.ca_pem.as_deref()).map_err(config_err)?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(settings.timeouts.connect)
            .pool_idle_timeout(settings.timeouts.idle)
            .tcp_keepalive(Duration::from_secs(60))
            .user_agent(concat!("trustgate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| config_err(format!("cannot build the HTTP client: {e}")))?;
        let basic = match (&settings.username, &settings.password) {
            (Some(u), p) => {
                let raw = format!("{u}:{}", p.as_deref().unwrap_or(""));
                let enc = base64::engine::general_purpose::STANDARD.encode(raw);
                let mut h = HeaderValue::from_str(&format!("Basic {enc}"))
                    .map_err(|_| config_err("username is not a valid header value".into()))?;
                h.set_sensitive(true);
                Some(h)
            }
            (None, Some(_)) => {
                return Err(config_err("password given without username".to_string()))
            }
            (None, None) => None,
        };
        // Normalise the base so that joining "v2/…" keeps any path prefix.
        let mut base = settings.url.clone();
        if !base.path().ends_with('/') {
            let p = format!("{}/", base.path());
            base.set_path(&p);
        }
        let client = AuthClient {
            inner: Arc::new(Inner {
                name: settings.name.clone(),
                base,
                http,
                basic,
                timeouts: settings.timeouts,
                known: Mutex::new(None),
                tokens: TokenCache::new(),
                metrics_name: settings
                    .metrics_name
                    .clone()
                    .unwrap_or_else(|| settings.name.clone()),
                kind: match settings.role {
                    UpstreamRole::Registry => UpstreamKind::Registry,
                    UpstreamRole::Notary => UpstreamKind::Notary,
                },
                reachability: Reachability::default(),
            }),
        };
        metrics().upstream_up(&client.inner.metrics_name, client.inner.kind, true);
        Ok(client)
    }

    /// The upstream's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The base URL (always ending in `/`).
    pub fn base_url(&self) -> &Url {
        &self.inner.base
    }

    /// The token cache (read-only use: inspection in tests and metrics).
    pub fn token_cache(&self) -> &TokenCache {
        &self.inner.tokens
    }

    /// `GET <base>/<path>` with auth and redirects: the entry point for a Notary client
    /// (`path` = `v2/<GUN>/_trust/tuf/root.json`, `scope` = `repository:<GUN>:pull`).
    pub async fn get(
        &self,
        path: &str,
        scope: Option<&str>,
    ) -> Result<UpstreamResponse, UpstreamError> {
        let url = self.url_for(path)?;
        self.send(Method::GET, url, HeaderMap::new(), scope).await
    }

    /// `base` joined with a relative path such as `v2/library/alpine/manifests/latest`.
    pub fn url_for(&self, path: &str) -> Result<Url, UpstreamError> {
        self.inner
            .base
            .join(path.trim_start_matches('/'))
            .map_err(|e| UpstreamError::Protocol {
                upstream: self.inner.name.clone(),
                reason: format!("cannot build a URL for {path:?}: {e}"),
            })
    }

    /// Send a request to the upstream with authentication and redirects handled. `scope` is the
    /// token scope to ask for when challenged (`repository:<name>:pull`); `None` uses the
    /// challenge's own scope. Any `Authorization` in `headers` is ignored; credentials and tokens
    /// are only attached when `url` (or a redirect target) has the upstream's own origin. Only
    /// 2xx answers are `Ok`; everything else becomes an [`UpstreamError`].
    pub async fn send(
        &self,
        method: Method,
        url: Url,
        headers: HeaderMap,
        scope: Option<&str>,
    ) -> Result<UpstreamResponse, UpstreamError> {
        let sent = tokio::time::Instant::now();
        let result = self.send_uncounted(method, url, headers, scope).await;
        self.note_reachability(&result, sent);
        if let Err(e) = &result {
            let kind = match e {
                // Counted by `exchange`, which knows whether the token service was being asked.
                UpstreamError::Unreachable { .. } | UpstreamError::Timeout { .. } => None,
                UpstreamError::Auth { .. } => Some(UpstreamKind::Token),
                _ => Some(self.inner.kind),
            };
            if let Some(kind) = kind {
                metrics().upstream_error(&self.inner.metrics_name, kind, e.kind());
            }
        }
        result
    }

    /// The outage in progress, if the upstream is not answering.
    pub fn outage(&self) -> Option<Outage> {
        self.inner.reachability.outage()
    }

    /// Whether this is a Notary server's client (else a registry's).
    pub fn is_notary(&self) -> bool {
        self.inner.kind == UpstreamKind::Notary
    }

    /// Records whether the upstream answered; logs and sets the gauge when that changes.
    fn note_reachability(
        &self,
        result: &Result<UpstreamResponse, UpstreamError>,
        sent: tokio::time::Instant,
    ) {
        let r = &self.inner.reachability;
        let now = tokio::time::Instant::now();
        let change = match result {
            Err(e) if e.is_unreachable() => r.failed(e.to_string(), sent, now),
            _ => r.answered(now),
        };
        let (name, kind) = (&self.inner.name, self.inner.kind.as_str());
        let up = match change {
            Change::None => return,
            Change::WentDown => {
                if let Err(error) = result {
                    tracing::warn!(upstream = %name, kind, %error, "upstream down: not answering; said again when it answers");
                }
                false
            }
            Change::CameBack { lasted, failures } => {
                tracing::info!(upstream = %name, kind, down_ms = duration_ms(lasted), failures, "upstream answering again");
                true
            }
        };
        metrics().upstream_up(&self.inner.metrics_name, self.inner.kind, up);
    }

    async fn send_uncounted(
        &self,
        method: Method,
        url: Url,
        mut headers: HeaderMap,
        scope: Option<&str>,
    ) -> Result<UpstreamResponse, UpstreamError> {
        headers.remove(AUTHORIZATION);
        let (mut resp, attached) = self
            .send_authenticated(&method, &url, &headers, scope)
            .await?;
        let mut method = method;
        let mut current = url;
        let mut hops = 0;
        while is_redirect(resp.status()) {
            if hops == MAX_REDIRECTS {
                return Err(self.protocol(format!(
                    "more than {MAX_REDIRECTS} redirects, last to {}",
                    origin(&current)
                )));
            }
            hops += 1;
            let location = resp
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| {
                    self.protocol(format!("{} without a valid Location", resp.status()))
                })?;
            let next = current
                .join(location)
                .map_err(|e| self.protocol(format!("redirect to an invalid Location ({e})")))?;
            if !matches!(next.scheme(), "http" | "https") {
                return Err(self.protocol(format!("redirect to a {} URL", next.scheme())));
            }
            if resp.status() == StatusCode::SEE_OTHER && method != Method::HEAD {
                method = Method::GET;
            }
            // Authorization (Bearer token or Basic credentials) only goes to our upstream's own
            // origin; storage/CDN URLs are pre-signed and must not see it (OCI "API").
            let auth = if next.origin() == self.inner.base.origin() {
                attached.header()
            } else {
                None
            };
            tracing::debug!(upstream = %self.inner.name, to = %origin(&next), hop = hops, "following redirect");
            resp = self.execute(&method, &next, &headers, auth).await?;
            current = next;
        }
        if resp.status().is_success() {
            Ok(
                UpstreamResponse::new(self.inner.name.clone(), method, self.inner.timeouts, resp)
                    .counted_as(&self.inner.metrics_name, self.inner.kind),
            )
        } else {
            Err(self.status_error(resp, &method).await)
        }
    }

    async fn send_authenticated(
        &self,
        method: &Method,
        url: &Url,
        headers: &HeaderMap,
        scope: Option<&str>,
    ) -> Result<(reqwest::Response, Attached), UpstreamError> {
        if url.origin() != self.inner.base.origin() {
            // Not our upstream (e.g. a foreign layer URL): never any credentials.
            let resp = self.execute(method, url, headers, None).await?;
            return Ok((resp, Attached::None));
        }
        let known = self.known();
        let mut attached = match &known {
            Some(Known::Basic) => self
                .inner
                .basic
                .clone()
                .map_or(Attached::None, Attached::Basic),
            Some(Known::Bearer { realm, service }) => {
                let key = TokenKey {
                    realm: realm.clone(),
                    service: service.clone(),
                    scope: scope.map(str::to_string),
                };
                match self.inner.tokens.get(&key, Instant::now()) {
                    Some(token) => Attached::Bearer { token },
                    None if scope.is_some() => {
                        // Known Bearer upstream, no valid token for this scope yet: fetch first
                        // instead of wasting a round trip on a certain 401.
                        let token = self.bearer_token(&key, None).await?;
                        Attached::Bearer { token }
                    }
                    None => Attached::None,
                }
            }
            None => Attached::None,
        };
        let resp = self
            .execute(method, url, headers, attached.header())
            .await?;
        if resp.status() != StatusCode::UNAUTHORIZED {
            return Ok((resp, attached));
        }
        let challenges = challenge::parse_all(
            resp.headers()
                .get_all(reqwest::header::WWW_AUTHENTICATE)
                .iter()
                .filter_map(|v| v.to_str().ok()),
        );
        if let Some(b) = challenges.iter().find_map(|c| c.bearer()) {
            self.set_known(Known::Bearer {
                realm: b.realm.clone(),
                service: b.service.clone(),
            });
            let key = TokenKey {
                realm: b.realm.clone(),
                service: b.service.clone(),
                scope: scope.map(str::to_string).or(b.scope.clone()),
            };
            let stale = match &attached {
                Attached::Bearer { token, .. } => Some(token.as_str()),
                _ => None,
            };
            let token = self.bearer_token(&key, stale).await?;
            attached = Attached::Bearer { token };
        } else if challenges.iter().any(|c| c.scheme == Scheme::Basic) {
            self.set_known(Known::Basic);
            match (&self.inner.basic, &attached) {
                (Some(b), Attached::None | Attached::Bearer { .. }) => {
                    attached = Attached::Basic(b.clone())
                }
                // No credentials, or they were just refused: the 401 is the answer.
                _ => return Err(self.status_error(resp, method).await),
            }
        } else {
            return Err(self.status_error(resp, method).await);
        }
        drop(resp);
        let resp = self
            .execute(method, url, headers, attached.header())
            .await?;
        Ok((resp, attached))
    }

    /// A token for `key`: cached if valid (and not the one just refused), else fetched. One fetch
    /// per key at a time; waiters reuse its result.
    async fn bearer_token(
        &self,
        key: &TokenKey,
        refused: Option<&str>,
    ) -> Result<String, UpstreamError> {
        let tokens = &self.inner.tokens;
        if tokens.len() > TOKEN_CACHE_PRUNE_AT {
            tokens.prune(Instant::now());
        }
        let slot = tokens.slot(key);
        let mut guard = slot.lock().await;
        if let Some(t) = guard.as_ref() {
            if t.is_valid_at(Instant::now()) && Some(t.token.as_str()) != refused {
                return Ok(t.token.clone());
            }
        }
        *guard = None;
        let fresh = self.fetch_token(key).await?;
        let token = fresh.token.clone();
        *guard = Some(fresh);
        Ok(token)
    }

    async fn fetch_token(&self, key: &TokenKey) -> Result<CachedToken, UpstreamError> {
        let auth_err = |reason: String, status: Option<u16>| UpstreamError::Auth {
            upstream: self.inner.name.clone(),
            reason,
            status,
        };
        let mut url = Url::parse(&key.realm).map_err(|e| {
            auth_err(
                format!("token realm {:?} is not a URL: {e}", key.realm),
                None,
            )
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(auth_err(
                format!("token realm {} is not http(s)", origin(&url)),
                None,
            ));
        }
        let scopes: Vec<&str> = key
            .scope
            .as_deref()
            .map(|s| s.split(' ').filter(|s| !s.is_empty()).collect())
            .unwrap_or_default();
        if key.service.is_some() || !scopes.is_empty() {
            let mut q = url.query_pairs_mut();
            if let Some(s) = &key.service {
                q.append_pair("service", s);
            }
            for s in &scopes {
                q.append_pair("scope", s);
            }
        }
        let auth = self.inner.basic.clone();
        if auth.is_some() && url.scheme() == "http" && self.inner.base.scheme() == "https" {
            return Err(auth_err(
                format!(
                    "refusing to send credentials over plain http to the token service {}",
                    origin(&url)
                ),
                None,
            ));
        }
        let started = OffsetDateTime::now_utc();
        tracing::debug!(upstream = %self.inner.name, realm = %origin(&url), scope = ?key.scope, "fetching token");
        let resp = self
            .exchange(
                UpstreamKind::Token,
                &Method::GET,
                &url,
                &HeaderMap::new(),
                auth,
            )
            .await?;
        let status = resp.status();
        if status == StatusCode::TOO_MANY_REQUESTS {
            return Err(self.status_error(resp, &Method::GET).await);
        }
        let body = self.read_small(resp).await;
        if !status.is_success() {
            let (errors, text) = parse_error_body(&body);
            let detail = errors
                .first()
                .map(|e| format!("{}: {}", e.code, e.message))
                .or(text)
                .unwrap_or_default();
            let what = if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                "refused the credentials"
            } else {
                "failed"
            };
            return Err(auth_err(
                format!(
                    "token service {} {what} ({status}){}",
                    origin(&url),
                    if detail.is_empty() {
                        String::new()
                    } else {
                        format!(": {detail}")
                    }
                ),
                Some(status.as_u16()),
            ));
        }
        #[derive(serde::Deserialize)]
        struct TokenResponse {
            token: Option<String>,
            access_token: Option<String>,
            expires_in: Option<f64>,
            issued_at: Option<String>,
        }
        let tr: TokenResponse = serde_json::from_slice(&body).map_err(|e| {
            auth_err(
                format!("token service {} answered invalid JSON: {e}", origin(&url)),
                Some(status.as_u16()),
            )
        })?;
        let token = tr
            .token
            .filter(|t| !t.is_empty())
            .or(tr.access_token.filter(|t| !t.is_empty()))
            .ok_or_else(|| {
                auth_err(
                    format!("token service {} answered without a token", origin(&url)),
                    Some(status.as_u16()),
                )
            })?;
        bearer_header(&token).map_err(|_| {
            auth_err(
                "token service answered a token that is not a valid header value".to_string(),
                None,
            )
        })?;
        let issued_at = tr.issued_at.as_deref().and_then(|s| {
            OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
        });
        let lifetime = token_lifetime(tr.expires_in, issued_at, started);
        Ok(CachedToken {
            token,
            expires_at: Instant::now() + lifetime,
        })
    }

    /// One HTTP exchange up to the response headers, with the first-byte timeout.
    ///
    /// A GET/HEAD whose connection failed *after* it was established but before any answer
    /// (typically a pooled keep-alive connection the upstream had just closed) is tried once
    /// more on a fresh connection; connect failures and timeouts are not retried here.
    async fn execute(
        &self,
        method: &Method,
        url: &Url,
        headers: &HeaderMap,
        auth: Option<HeaderValue>,
    ) -> Result<reqwest::Response, UpstreamError> {
        self.exchange(self.inner.kind, method, url, headers, auth)
            .await
    }

    /// [`Self::execute`], timed to the response headers and counted under `kind` (the token
    /// service is asked through here too).
    async fn exchange(
        &self,
        kind: UpstreamKind,
        method: &Method,
        url: &Url,
        headers: &HeaderMap,
        auth: Option<HeaderValue>,
    ) -> Result<reqwest::Response, UpstreamError> {
        let started = Instant::now();
        let result = self.exchange_untimed(method, url, headers, auth).await;
        let m = metrics();
        m.upstream_latency(&self.inner.metrics_name, kind, started.elapsed());
        if let Err(e @ (UpstreamError::Unreachable { .. } | UpstreamError::Timeout { .. })) =
            &result
        {
            m.upstream_error(&self.inner.metrics_name, kind, e.kind());
        }
        result
    }

    async fn exchange_untimed(
        &self,
        method: &Method,
        url: &Url,
        headers: &HeaderMap,
        auth: Option<HeaderValue>,
    ) -> Result<reqwest::Response, UpstreamError> {
        let idempotent = *method == Method::GET || *method == Method::HEAD;
        let mut retried = false;
        loop {
            let mut req = self
                .inner
                .http
                .request(method.clone(), url.clone())
                .headers(headers.clone());
            if let Some(a) = &auth {
                req = req.header(AUTHORIZATION, a.clone());
            }
            let first_byte = self.inner.timeouts.first_byte;
            return match tokio::time::timeout(first_byte, req.send()).await {
                Err(_) => Err(UpstreamError::Timeout {
                    upstream: self.inner.name.clone(),
                    url: origin(url),
                    phase: TimeoutPhase::FirstByte,
                    after_ms: duration_ms(first_byte),
                }),
                Ok(Err(e)) if e.is_timeout() => Err(UpstreamError::Timeout {
                    upstream: self.inner.name.clone(),
                    url: origin(url),
                    phase: if e.is_connect() {
                        TimeoutPhase::Connect
                    } else {
                        TimeoutPhase::FirstByte
                    },
                    after_ms: duration_ms(if e.is_connect() {
                        self.inner.timeouts.connect
                    } else {
                        first_byte
                    }),
                }),
                Ok(Err(e)) if idempotent && !retried && !e.is_connect() => {
                    retried = true;
                    tracing::debug!(upstream = %self.inner.name, to = %origin(url), error = %root_cause(&e), "connection lost before the answer; retrying once");
                    continue;
                }
                Ok(Err(e)) => Err(UpstreamError::Unreachable {
                    upstream: self.inner.name.clone(),
                    url: origin(url),
                    reason: root_cause(&e),
                }),
                Ok(Ok(r)) => Ok(r),
            };
        }
    }

    /// Turn a non-2xx answer into [`UpstreamError::Status`], reading at most 64 KiB of body.
    async fn status_error(&self, resp: reqwest::Response, method: &Method) -> UpstreamError {
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.trim().to_string());
        let body = if *method == Method::HEAD {
            Vec::new()
        } else {
            self.read_small(resp).await
        };
        let (errors, text) = parse_error_body(&body);
        UpstreamError::Status {
            upstream: self.inner.name.clone(),
            status,
            errors,
            text,
            retry_after,
        }
    }

    /// Read up to [`MAX_SMALL_BODY`] bytes; errors and timeouts end the read (best effort).
    async fn read_small(&self, mut resp: reqwest::Response) -> Vec<u8> {
        let mut buf = Vec::new();
        while buf.len() < MAX_SMALL_BODY {
            match tokio::time::timeout(self.inner.timeouts.idle, resp.chunk()).await {
                Ok(Ok(Some(c))) => buf.extend_from_slice(&c),
                _ => break,
            }
        }
        buf.truncate(MAX_SMALL_BODY);
        buf
    }

    fn protocol(&self, reason: String) -> UpstreamError {
        UpstreamError::Protocol {
            upstream: self.inner.name.clone(),
            reason,
        }
    }

    fn known(&self) -> Option<Known> {
        self.inner.known.lock().clone()
    }

    fn set_known(&self, k: Known) {
        *self.inner.known.lock() = Some(k);
    }
}

fn bearer_header(token: &str) -> Result<HeaderValue, reqwest::header::InvalidHeaderValue> {
    let mut h = HeaderValue::from_str(&format!("Bearer {token}"))?;
    h.set_sensitive(true);
    Ok(h)
}

fn is_redirect(s: StatusCode) -> bool {
    matches!(s.as_u16(), 301 | 302 | 303 | 307 | 308)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-28 22:00:00 UTC);

    #[test]
    fn lifetime_defaults_and_margin() {
        assert_eq!(token_lifetime(None, None, NOW), Duration::from_secs(55));
        assert_eq!(
            token_lifetime(Some(0.0), None, NOW),
            Duration::from_secs(55)
        );
        assert_eq!(
            token_lifetime(Some(-5.0), None, NOW),
            Duration::from_secs(55)
        );
        assert_eq!(
            token_lifetime(Some(f64::NAN), None, NOW),
            Duration::from_secs(55)
        );
        assert_eq!(
            token_lifetime(Some(300.0), None, NOW),
            Duration::from_secs(295)
        );
        assert_eq!(
            token_lifetime(Some(10.0), None, NOW),
            Duration::from_secs(9)
        );
        assert_eq!(
            token_lifetime(Some(1.0), None, NOW),
            Duration::from_millis(900)
        );
        assert!(token_lifetime(Some(1e300), None, NOW) > Duration::from_secs(1_000_000));
    }

    #[test]
    fn lifetime_uses_plausible_issued_at() {
        let issued = NOW - time::Duration::seconds(100);
        assert_eq!(
            token_lifetime(Some(300.0), Some(issued), NOW),
            Duration::from_secs(195)
        );
        // Issued in the future (skew): ignored.
        let future = NOW + time::Duration::seconds(100);
        assert_eq!(
            token_lifetime(Some(300.0), Some(future), NOW),
            Duration::from_secs(295)
        );
        // Older than its lifetime (skew): ignored rather than "always expired".
        let ancient = NOW - time::Duration::hours(5);
        assert_eq!(
            token_lifetime(Some(300.0), Some(ancient), NOW),
            Duration::from_secs(295)
        );
    }

    #[test]
    fn cache_honours_expiry_with_injected_instants() {
        let cache = TokenCache::new();
        let key = TokenKey {
            realm: "https://auth/token".into(),
            service: Some("svc".into()),
            scope: Some("repository:a:pull".into()),
        };
        let t0 = Instant::now();
        cache.insert(
            key.clone(),
            CachedToken {
                token: "t1".into(),
                expires_at: t0 + Duration::from_secs(60),
            },
        );
        assert_eq!(cache.get(&key, t0).as_deref(), Some("t1"));
        assert_eq!(
            cache.get(&key, t0 + Duration::from_secs(59)).as_deref(),
            Some("t1")
        );
        assert_eq!(cache.get(&key, t0 + Duration::from_secs(60)), None);
        let other = TokenKey {
            scope: Some("repository:b:pull".into()),
            ..key.clone()
        };
        assert_eq!(cache.get(&other, t0), None);
        cache.prune(t0 + Duration::from_secs(61));
        assert!(cache.is_empty());
    }
}
