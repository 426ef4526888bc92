//! The hyper listener: accepts connections, routes each request, asks the proxy, and writes one
//! log line per request (and counts it in the metrics) when its body has been sent (or
//! abandoned).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpListener;

use tracing::Instrument;

use super::conn::{self, Activity, ActivityIo, HttpVersion};
use super::error::ApiError;
use super::proxy_protocol;
use super::route::{Endpoint, Routed};
use super::sendfile::{SendfileIo, Slot};
use super::tls::ReloadableTls;
use crate::metrics::{metrics, RouteKind};
use crate::proxy::Proxy;
use crate::request_context::{self as context, RequestContext};

pub use crate::body::{empty_body, full_body, stream_body, Body, BoxError};

/// Every response carries this header; Docker's daemon checks it on ping.
const API_VERSION: (&str, &str) = ("docker-distribution-api-version", "registry/2.0");

/// What the request handler needs besides the request itself, built once at start-up.
pub struct Frontend {
    pub proxy: Arc<Proxy>,
    /// Client authentication; `None` when `[auth]` names no htpasswd file (anyone may pull).
    pub auth: Option<Arc<crate::auth::Gate>>,
}

impl Frontend {
    /// A front end without client authentication.
    pub fn open(proxy: Arc<Proxy>) -> Self {
        Self { proxy, auth: None }
    }
}

/// Serves `proxy` without client authentication until `shutdown` completes, then stops
/// accepting and lets open connections finish.
pub async fn serve(
    listener: TcpListener,
    proxy: Arc<Proxy>,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    serve_frontend(listener, Arc::new(Frontend::open(proxy)), shutdown).await
}

/// Serves until `shutdown` completes, then stops accepting and lets open connections finish;
/// plain HTTP with the default limits of `[server]`.
pub async fn serve_frontend(
    listener: TcpListener,
    frontend: Arc<Frontend>,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    serve_with(listener, frontend, ListenOptions::default(), shutdown).await
}

/// How the listener treats connections: TLS and the limits of `[server]`.
#[derive(Clone)]
pub struct ListenOptions {
    /// HTTPS (and mTLS) when set; the config inside is swapped on reload.
    pub tls: Option<Arc<ReloadableTls>>,
    /// Connections served at once; further ones wait in the kernel's accept queue.
    pub max_connections: usize,
    /// Largest request head: HTTP/1 answers 431 above it, HTTP/2 refuses the stream.
    pub max_header_bytes: usize,
    /// Time for the TLS handshake plus the first bytes, and for every HTTP/1 request head.
    pub header_read_timeout: Duration,
    /// A connection with no byte read or written for this long is closed.
    pub idle_timeout: Duration,
    /// After `shutdown`: how long open connections get to finish before they are closed.
    pub shutdown_grace: Duration,
    /// Whose `X-Forwarded-For` names the client (`[server] trusted_proxies`).
    pub trusted_proxies: Arc<crate::api::forwarded::TrustedProxies>,
    /// Connections from `trusted_proxies` start with a PROXY protocol header.
    pub proxy_protocol: bool,
    /// Stored blobs go to plain-HTTP/1.1 clients with `sendfile(2)` (`[server] sendfile`).
    pub sendfile: bool,
}

impl ListenOptions {
    pub fn from_config(
        server: &crate::config::ServerConfig,
        tls: Option<Arc<ReloadableTls>>,
    ) -> Self {
        Self {
            tls,
            max_connections: server
                .max_connections
                .clamp(1, tokio::sync::Semaphore::MAX_PERMITS),
            max_header_bytes: usize::try_from(server.max_header_bytes).unwrap_or(usize::MAX),
            header_read_timeout: server.header_read_timeout(),
            idle_timeout: server.idle_timeout(),
            shutdown_grace: server.shutdown_grace(),
            // Validated with the configuration; an entry that does not parse was refused there.
            trusted_proxies: Arc::new(
                crate::api::forwarded::TrustedProxies::parse(&server.trusted_proxies)
                    .unwrap_or_default(),
            ),
            proxy_protocol: server.proxy_protocol,
            sendfile: server.sendfile,
        }
    }
}

impl Default for ListenOptions {
    /// Plain HTTP with the documented defaults of `[server]`.
    fn default() -> Self {
        Self::from_config(&crate::config::ServerConfig::default(), None)
    }
}

/// Serves until `shutdown` completes; then stops accepting (new connections are refused), lets
/// open connections finish their responses for up to `shutdown_grace`, and closes the rest.
pub async fn serve_with(
    listener: TcpListener,
    frontend: Arc<Frontend>,
    options: ListenOptions,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let options = Arc::new(options);
    let http = Arc::new(http_builders(&options));
    let permits = Arc::new(tokio::sync::Semaphore::new(options.max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        // A permit first: at max_connections, accepting waits and clients queue in the kernel.
        let next = async {
            let permit = permits.clone().acquire_owned().await;
            (permit, listener.accept().await)
        };
        tokio::select! {
            (permit, accepted) = next => {
                let Ok(permit) = permit else { break };
                let (stream, peer) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        // Out of file descriptors and similar: keep serving the others.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                // Watching starts now, so a connection still in its handshake when shutdown
                // begins is waited for too.
                let watcher = graceful.watcher();
                let (frontend, options, http) = (frontend.clone(), options.clone(), http.clone());
                connections.spawn(async move {
                    serve_connection(stream, peer, frontend, &options, &http, watcher).await;
                    drop(permit);
                });
            }
            // Reap finished connections so the set holds only open ones.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = &mut shutdown => break,
        }
    }
    drop(listener);
    let open = connections.len();
    if open > 0 {
        tracing::info!(
            connections = open,
            grace_secs = options.shutdown_grace.as_secs(),
            "waiting for open connections to finish"
        );
    }
    if tokio::time::timeout(options.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            connections = connections.len(),
            "shutdown grace is over; closing the connections still open"
        );
    }
    connections.abort_all();
    while connections.join_next().await.is_some() {}
    Ok(())
}

/// The HTTP settings every connection shares. hyper-util's `auto` builder is not used: the
/// version is chosen before hyper starts (see [`conn::sniff`]), and only hyper's own HTTP/1
/// builder has `max_header_size`.
struct HttpBuilders {
    h1: hyper::server::conn::http1::Builder,
    h2: hyper::server::conn::http2::Builder<TokioExecutor>,
}

fn http_builders(options: &ListenOptions) -> HttpBuilders {
    let mut h1 = hyper::server::conn::http1::Builder::new();
    h1.timer(TokioTimer::new())
        // hyper starts this timer whenever it waits for a request head, including between
        // keep-alive requests, and closes the connection when it fires.
        .header_read_timeout(options.header_read_timeout)
        // A larger head is answered 431 and the connection closed.
        .max_header_size(options.max_header_bytes)
        .max_buf_size(h1_max_buf_size(options.max_header_bytes))
        // The queue strategy: each body buffer reaches the socket as its own slice, never
        // copied into hyper's buffer. Zero-copy cache hits depend on it (`api::sendfile`).
        .writev(true);
    let mut h2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    h2.timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(options.max_header_bytes).unwrap_or(u32::MAX));
    HttpBuilders { h1, h2 }
}

/// hyper's `max_buf_size` for HTTP/1: the bound of a connection's read buffer *and* of the
/// response bytes it queues before writing to the socket. hyper's default (8 KiB + 100 × 4 KiB,
/// about 400 KiB) is what 16 clients of one cold blob each held on to (issue 16: peak RSS of a
/// fan-out); a head of `max_header_bytes` plus 8 KiB of slack (64 + 8 KiB by default) keeps
/// every head that is allowed readable and lets the kernel's socket buffer, not ours, hold the
/// bytes in flight to a slow reader.
fn h1_max_buf_size(max_header_bytes: usize) -> usize {
    max_header_bytes.saturating_add(H1_BUF_SLACK)
}

/// Room above the largest head in the HTTP/1 buffer (and hyper's smallest allowed buffer).
const H1_BUF_SLACK: usize = 8192;

/// One accepted connection: TLS handshake and HTTP version within `header_read_timeout`, then
/// HTTP until the client leaves, the connection idles out, or shutdown ends it.
async fn serve_connection(
    stream: tokio::net::TcpStream,
    peer: std::net::SocketAddr,
    frontend: Arc<Frontend>,
    options: &ListenOptions,
    http: &HttpBuilders,
    watcher: hyper_util::server::graceful::Watcher,
) {
    let activity = Activity::new();
    // Zero-copy blobs on plain connections only: under TLS the socket carries records.
    let slot = (options.tls.is_none() && options.sendfile).then(Slot::new);
    let io = ActivityIo::new(SendfileIo::new(stream, slot.clone()), activity.clone());
    let mut peer = peer;
    let setup = tokio::time::timeout(options.header_read_timeout, async {
        // A trusted balancer's PROXY header comes before TLS and HTTP (see `proxy_protocol`).
        let io = if options.proxy_protocol && options.trusted_proxies.trusts(peer.ip()) {
            let (client, io) = proxy_protocol::read_header(io).await.map_err(|e| {
                tracing::warn!(%peer, error = %e, "closed a connection from a trusted proxy that did not start with a valid PROXY protocol header");
                std::io::Error::new(std::io::ErrorKind::ConnectionAborted, e)
            })?;
            if let Some(c) = client {
                peer = c;
            }
            io
        } else {
            conn::Prefixed::new(bytes::Bytes::new(), io)
        };
        match &options.tls {
            None => conn::sniff(io)
                .await
                .map(|(v, io)| (v, Box::new(io) as Box<dyn ConnIo>)),
            Some(tls) => {
                let tls_stream = tls.acceptor().accept(io).await?;
                // ALPN decides when the client offered it; otherwise the bytes do.
                let version = match tls_stream.get_ref().1.alpn_protocol() {
                    Some(b"h2") => Some(HttpVersion::Http2),
                    Some(b"http/1.1") => Some(HttpVersion::Http1),
                    _ => None,
                };
                match version {
                    Some(v) => Ok((v, Box::new(tls_stream) as Box<dyn ConnIo>)),
                    None => conn::sniff(tls_stream)
                        .await
                        .map(|(v, io)| (v, Box::new(io) as Box<dyn ConnIo>)),
                }
            }
        }
    });
    let (version, io) = match setup.await {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                tracing::debug!(%peer, error = %e, "connection closed before a request");
            } else if options.tls.is_some() {
                tracing::info!(%peer, error = %e, "TLS handshake failed");
            } else {
                tracing::debug!(%peer, error = %e, "connection failed before a request");
            }
            return;
        }
        Err(_) => {
            tracing::info!(%peer, timeout_secs = options.header_read_timeout.as_secs(), "closed a connection that sent no request in time");
            return;
        }
    };
    let proxies = options.trusted_proxies.clone();
    // HTTP/2 frames its data: only HTTP/1 writes a body buffer as it is.
    let slot = slot.filter(|_| version == HttpVersion::Http1);
    let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
        if let Some(s) = &slot {
            req.extensions_mut().insert(s.clone());
        }
        let frontend = frontend.clone();
        // Behind a trusted load balancer the client is the one it names (issue 14).
        let client = proxies.client(peer, req.headers());
        async move { Ok::<_, Infallible>(handle(frontend, req, client).await) }
    });
    let io = TokioIo::new(io);
    let conn: Pin<Box<dyn Future<Output = Result<(), hyper::Error>> + Send>> = match version {
        HttpVersion::Http1 => Box::pin(watcher.watch(http.h1.serve_connection(io, service))),
        HttpVersion::Http2 => Box::pin(watcher.watch(http.h2.serve_connection(io, service))),
    };
    tokio::select! {
        result = conn => match result {
            // hyper's header_read_timeout: a slow (or slow-loris) client.
            Err(e) if e.is_timeout() => tracing::info!(
                %peer,
                timeout_secs = options.header_read_timeout.as_secs(),
                "closed a connection whose request head did not arrive in time"
            ),
            Err(e) => tracing::debug!(%peer, error = %e, "connection ended with an error"),
            Ok(()) => {}
        },
        _ = activity.idle_for(options.idle_timeout) => {
            tracing::debug!(%peer, idle_secs = options.idle_timeout.as_secs(), "closing an idle connection");
        }
    }
}

/// A plain or TLS connection, once its HTTP version is known.
trait ConnIo: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> ConnIo for T {}

/// The header that carries the request id to the client (and from a client that sets one).
const REQUEST_ID: &str = "x-request-id";

async fn handle(
    frontend: Arc<Frontend>,
    req: Request<Incoming>,
    peer: std::net::SocketAddr,
) -> Response<Body> {
    let id =
        context::accept_request_id(req.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()));
    // Every line logged while this request is served carries its id.
    let span = tracing::info_span!("request", id = %id);
    let mut response = handle_in_span(frontend, req, peer, id.clone(), span.clone())
        .instrument(span)
        .await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, v);
    }
    response
}

async fn handle_in_span(
    frontend: Arc<Frontend>,
    req: Request<Incoming>,
    peer: std::net::SocketAddr,
    id: String,
    span: tracing::Span,
) -> Response<Body> {
    let proxy = &frontend.proxy;
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().map(str::to_string);
    let zero_copy = req.extensions().get::<Slot>().cloned();
    let mut upstream = String::from("-");
    // Every request, the ping included, must log in when `[auth]` is on.
    let login = match &frontend.auth {
        Some(gate) => gate
            .authenticate(
                req.headers()
                    .get(header::AUTHORIZATION)
                    .map(HeaderValue::as_bytes),
                peer.ip(),
            )
            .await
            .map(Some)
            .map_err(|e| gate.refusal(&e)),
        None => Ok(None),
    };
    let user: Option<String> = login.as_ref().ok().cloned().flatten();
    let ctx = RequestContext {
        id,
        client: peer,
        user: user.clone(),
    };
    let routed = proxy.router().route(&method, &path, query.as_deref());
    // Known before the login is checked, so that the metrics count a refusal under its route.
    let route_kind = match &routed {
        Ok(Routed::Ping) => RouteKind::Ping,
        Ok(Routed::Content(route)) => match route.endpoint {
            Endpoint::Manifest(_) => RouteKind::Manifest,
            Endpoint::Blob(_) => RouteKind::Blob,
            Endpoint::Tags { .. } => RouteKind::Tags,
            Endpoint::Referrers { .. } => RouteKind::Referrers,
        },
        Err(_) => RouteKind::Other,
    };
    let result = match login.and(routed) {
        Ok(Routed::Ping) => Ok(ping()),
        Ok(Routed::Content(route)) => {
            upstream = proxy.upstream_name(&route).to_string();
            match may_pull(&frontend, user.as_deref(), &upstream, &route) {
                Ok(()) => ctx
                    .scope(proxy.handle(&method, &route, req.headers()))
                    .await
                    .map_err(|e| {
                        // Who failed and whether a retry may help: for the operator, not the
                        // client (whose answer `api::pull` makes from the same value).
                        tracing::debug!(origin = ?e.origin(), retryable = e.is_retryable(), error = %e, "pull failed");
                        ApiError::from(e)
                    })
                    .and_then(|pulled| super::pull::response(&method, &route, pulled, zero_copy.as_ref())),
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    };
    let mut response = match result {
        Ok(r) => r,
        Err(e) => {
            if e.status.is_client_error() || e.status.is_server_error() {
                tracing::info!(%method, %path, status = e.status.as_u16(), code = %e.code, reason = %e.message, "request refused");
            }
            error_response(&method, &e)
        }
    };
    response
        .headers_mut()
        .insert(API_VERSION.0, HeaderValue::from_static(API_VERSION.1));
    let status = response.status();
    let (parts, body) = response.into_parts();
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let head = method == Method::HEAD;
    let logged = LoggedBody {
        inner: body,
        bytes: 0,
        // hyper stops polling once Content-Length bytes are out, so "complete" is judged by
        // the count; a HEAD answer is complete by definition.
        expected: if head { Some(0) } else { declared },
        log: Some(RequestLog {
            method,
            path,
            route: route_kind,
            status,
            upstream,
            peer,
            user,
            started,
            span,
        }),
    };
    Response::from_parts(parts, logged.boxed_unsync())
}

/// `[[auth.access]]`: whether the logged-in user may pull from this repository (its GUN).
fn may_pull(
    frontend: &Frontend,
    user: Option<&str>,
    upstream: &str,
    route: &super::route::Route,
) -> Result<(), ApiError> {
    match (&frontend.auth, user) {
        (Some(gate), Some(user)) => gate
            .authorize(user, &format!("{upstream}/{}", route.repository))
            .map_err(|e| gate.refusal(&e)),
        _ => Ok(()),
    }
}

fn ping() -> Response<Body> {
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_LENGTH, 2)
        .body(full_body(Bytes::from_static(b"{}")))
        .unwrap_or_else(|_| Response::new(empty_body()))
}

/// The OCI error body with its status and headers. HEAD answers carry no body; their message
/// is in the log line above.
pub fn error_response(method: &Method, e: &ApiError) -> Response<Body> {
    let body = e.body();
    let mut b = Response::builder()
        .status(e.status)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_LENGTH, body.len());
    for (name, value) in &e.headers {
        if let Ok(v) = HeaderValue::from_str(value) {
            b = b.header(name, v);
        }
    }
    let body = if method == Method::HEAD {
        empty_body()
    } else {
        full_body(Bytes::from(body))
    };
    b.body(body).unwrap_or_else(|_| Response::new(empty_body()))
}

struct RequestLog {
    method: Method,
    path: String,
    route: RouteKind,
    status: StatusCode,
    upstream: String,
    peer: std::net::SocketAddr,
    user: Option<String>,
    started: Instant,
    /// The request's span: the line is written when hyper is done with the body, outside it.
    span: tracing::Span,
}

/// Counts the bytes of a response body and logs the request when the body is done or dropped
/// (a client that hangs up mid-blob is logged too, with the bytes it got).
struct LoggedBody {
    inner: Body,
    bytes: u64,
    expected: Option<u64>,
    log: Option<RequestLog>,
}

impl LoggedBody {
    fn finish(&mut self, complete: bool) {
        if let Some(l) = self.log.take() {
            let _in_request = l.span.enter();
            let elapsed = l.started.elapsed();
            metrics().request_done(l.route, &l.method, l.status.as_u16(), self.bytes, elapsed);
            tracing::info!(
                method = %l.method,
                path = %l.path,
                status = l.status.as_u16(),
                bytes = self.bytes,
                ms = elapsed.as_millis() as u64,
                upstream = %l.upstream,
                client = %l.peer,
                user = l.user.as_deref().unwrap_or("-"),
                complete,
                "request"
            );
        }
    }
}

impl HttpBody for LoggedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref() {
                    this.bytes += d.len() as u64;
                }
            }
            Poll::Ready(None) => this.finish(true),
            Poll::Ready(Some(Err(_))) => this.finish(false),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for LoggedBody {
    fn drop(&mut self) {
        // Empty bodies (HEAD, errors) may never be polled, and hyper stops polling a body once
        // its Content-Length is reached.
        let complete = self.inner.is_end_stream() || self.expected == Some(self.bytes);
        self.finish(complete);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn builders() -> (HttpBuilders, usize) {
        let options = ListenOptions::from_config(&crate::config::ServerConfig::default(), None);
        let max_header_bytes = options.max_header_bytes;
        (http_builders(&options), max_header_bytes)
    }

    /// A response body fed chunk by chunk through a channel of one slot, so the test sees when
    /// hyper stops asking for more.
    struct ChannelBody(tokio::sync::mpsc::Receiver<Bytes>);

    impl HttpBody for ChannelBody {
        type Data = Bytes;
        type Error = Infallible;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            self.0.poll_recv(cx).map(|c| c.map(|b| Ok(Frame::data(b))))
        }
    }

    #[test]
    fn the_buffer_holds_a_whole_head_of_the_largest_size() {
        assert_eq!(h1_max_buf_size(64 * 1024), 72 * 1024);
        assert_eq!(h1_max_buf_size(1 << 20), (1 << 20) + 8192);
        assert_eq!(h1_max_buf_size(usize::MAX), usize::MAX);
    }

    // Paused time: tokio moves the clock only when every task is idle, so a send that times
    // out means hyper has stopped pulling the body, whatever the machine's speed.
    #[tokio::test(start_paused = true)]
    async fn a_client_that_reads_nothing_pins_at_most_the_buffer_bound() {
        const PIPE: usize = 64 * 1024; // what the "socket" takes before it is full
        const CHUNK: usize = 16 * 1024;
        let (h, max_header_bytes) = builders();
        let bound = h1_max_buf_size(max_header_bytes);
        let (mut client, server) = tokio::io::duplex(PIPE);
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(1);
        let rx = Arc::new(parking_lot::Mutex::new(Some(rx)));
        let service = hyper::service::service_fn(move |_req: Request<Incoming>| {
            let body = rx.lock().take().map(ChannelBody);
            async move {
                match body {
                    Some(body) => Ok::<_, Infallible>(Response::new(body)),
                    None => panic!("one request only"),
                }
            }
        });
        let conn = tokio::spawn(h.h1.serve_connection(TokioIo::new(server), service));
        client
            .write_all(b"GET /v2/r/blobs/sha256:0 HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .unwrap();
        let mut taken = 0usize;
        loop {
            let sent = tokio::time::timeout(
                Duration::from_secs(60),
                tx.send(Bytes::from(vec![7; CHUNK])),
            )
            .await;
            match sent {
                Ok(r) => r.unwrap(),
                Err(_) => break, // hyper stopped asking: its buffer is full
            }
            taken += CHUNK;
            assert!(
                taken < 64 << 20,
                "hyper kept taking body bytes from a client that reads none"
            );
        }
        // What hyper holds = what it took, less what the pipe holds, plus at most the chunk in
        // the channel's slot and one chunk taken when the buffer was just under its bound.
        assert!(
            taken <= PIPE + bound + 2 * CHUNK,
            "took {taken} bytes: more than the pipe ({PIPE}) and the bound ({bound})"
        );
        assert!(taken >= bound, "took only {taken} bytes");
        // Reading resumes the flow.
        let mut buf = vec![0; PIPE];
        let n = client.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        drop(tx);
        drop(client);
        let _ = conn.await;
    }

    /// A request whose head is `head_bytes` long; the status line of the answer.
    async fn answer_to_a_head_of(head_bytes: usize) -> String {
        let (h, _) = builders();
        let (mut client, server) = tokio::io::duplex(1 << 20);
        let service = hyper::service::service_fn(|_req: Request<Incoming>| async {
            Ok::<_, Infallible>(Response::new(http_body_util::Empty::<Bytes>::new()))
        });
        let conn = tokio::spawn(h.h1.serve_connection(TokioIo::new(server), service));
        let start = b"GET /v2/ HTTP/1.1\r\nHost: t\r\nX-Pad: ";
        let end = b"\r\n\r\n";
        let mut head = start.to_vec();
        head.resize(head_bytes - end.len(), b'a');
        head.extend_from_slice(end);
        client.write_all(&head).await.unwrap();
        let mut buf = vec![0; 4096];
        let n = client.read(&mut buf).await.unwrap();
        drop(client);
        let _ = conn.await;
        String::from_utf8_lossy(&buf[..n])
            .lines()
            .next()
            .unwrap_or_default()
            .to_string()
    }

    #[tokio::test]
    async fn heads_up_to_max_header_bytes_are_still_read() {
        let (_, max_header_bytes) = builders();
        assert_eq!(
            answer_to_a_head_of(max_header_bytes - 64).await,
            "HTTP/1.1 200 OK"
        );
        assert_eq!(
            answer_to_a_head_of(max_header_bytes + 4096).await,
            "HTTP/1.1 431 Request Header Fields Too Large"
        );
    }
}
