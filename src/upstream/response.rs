//! [`UpstreamResponse`]: a successful (2xx) upstream answer whose body is read as a stream with
//! an idle timeout, a minimum rate and a length check.

use super::error::{TimeoutPhase, UpstreamError};
use super::rate::RateFloor;
use super::settings::Timeouts;
use crate::metrics::{metrics, UpstreamKind};
use bytes::{Bytes, BytesMut};
use futures_util::stream::{self, BoxStream, StreamExt};
use reqwest::header::{HeaderMap, CONTENT_LENGTH};
use reqwest::{Method, StatusCode};
use std::time::Duration;
use tokio::time::Instant;

/// A 2xx answer from an upstream (after auth and redirects). The body has not been read.
#[derive(Debug)]
pub struct UpstreamResponse {
    upstream: String,
    method: Method,
    timeouts: Timeouts,
    inner: reqwest::Response,
    /// Labels under which body errors are counted (`None`: not counted).
    counted: Option<(String, UpstreamKind)>,
}

/// The body of an [`UpstreamResponse`] as a stream of chunks. Ends with an error, never a clean
/// end, when the connection drops early, fewer bytes than `Content-Length` arrive, or nothing
/// arrives for the idle timeout, or a whole `min_rate` window brings fewer bytes than the floor.
pub type BodyStream = BoxStream<'static, Result<Bytes, UpstreamError>>;

impl UpstreamResponse {
    pub(crate) fn new(
        upstream: String,
        method: Method,
        timeouts: Timeouts,
        inner: reqwest::Response,
    ) -> Self {
        UpstreamResponse {
            upstream,
            method,
            timeouts,
            inner,
            counted: None,
        }
    }

    /// Count body errors in `trustgate_upstream_errors_total` under these labels.
    pub(crate) fn counted_as(mut self, upstream: &str, kind: UpstreamKind) -> Self {
        self.counted = Some((upstream.to_string(), kind));
        self
    }

    /// HTTP status (200, 206, …).
    pub fn status(&self) -> StatusCode {
        self.inner.status()
    }

    /// Response headers as the upstream sent them (of the last hop when redirected).
    pub fn headers(&self) -> &HeaderMap {
        self.inner.headers()
    }

    /// The URL that finally answered (after redirects). It may carry signatures in its query:
    /// do not log it whole.
    pub fn url(&self) -> &url::Url {
        self.inner.url()
    }

    /// `Content-Length` header, if present and valid (also for HEAD answers).
    pub fn content_length(&self) -> Option<u64> {
        header_content_length(self.inner.headers())
    }

    /// A header as text, if present and visible ASCII.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.inner.headers().get(name).and_then(|v| v.to_str().ok())
    }

    /// Stream the body. See [`BodyStream`].
    pub fn into_stream(self) -> BodyStream {
        let expected = if self.method == Method::HEAD
            || self.inner.status() == StatusCode::NO_CONTENT
            || self.inner.status() == StatusCode::NOT_MODIFIED
        {
            Some(0)
        } else {
            header_content_length(self.inner.headers())
        };
        let url = origin(self.inner.url());
        let counted = self.counted;
        let state = StreamState {
            upstream: self.upstream,
            url,
            idle: self.timeouts.idle,
            floor: RateFloor::start(self.timeouts.min_rate),
            min_rate: self.timeouts.min_rate.bytes_per_sec,
            expected,
            received: 0,
            inner: Some(self.inner),
        };
        stream::unfold(state, |mut st| async move {
            let mut resp = st.inner.take()?;
            // Silence left before the idle timeout; a rate window may end first.
            let mut idle_left = st.idle;
            loop {
                let limit = st
                    .floor
                    .as_ref()
                    .map_or(idle_left, |f| f.remaining().min(idle_left));
                let started = Instant::now();
                let next = tokio::time::timeout(limit, resp.chunk()).await;
                let waited = started.elapsed();
                let got = match &next {
                    Ok(Ok(Some(chunk))) => chunk.len() as u64,
                    _ => 0,
                };
                if let Some(err) = st.rate_waited(waited, got) {
                    return Some((Err(err), st));
                }
                match next {
                    Err(_) => {
                        // A rate window ended fast enough: keep waiting out the silence.
                        idle_left = idle_left.saturating_sub(waited);
                        if !idle_left.is_zero() {
                            continue;
                        }
                        let err = UpstreamError::Timeout {
                            upstream: st.upstream.clone(),
                            url: st.url.clone(),
                            phase: TimeoutPhase::Idle,
                            after_ms: duration_ms(st.idle),
                        };
                        return Some((Err(err), st));
                    }
                    Ok(Err(e)) => {
                        let err = UpstreamError::BodyInterrupted {
                            upstream: st.upstream.clone(),
                            reason: format!(
                                "after {} of {} bytes: {}",
                                st.received,
                                st.expected
                                    .map_or_else(|| "unknown".to_string(), |n| n.to_string()),
                                root_cause(&e)
                            ),
                        };
                        return Some((Err(err), st));
                    }
                    Ok(Ok(Some(chunk))) => {
                        st.received += chunk.len() as u64;
                        if let Some(n) = st.expected.filter(|n| st.received > *n) {
                            let err = UpstreamError::Protocol {
                                upstream: st.upstream.clone(),
                                reason: format!("body longer than its Content-Length of {n} bytes"),
                            };
                            return Some((Err(err), st));
                        }
                        st.inner = Some(resp);
                        return Some((Ok(chunk), st));
                    }
                    Ok(Ok(None)) => {
                        return match st.expected {
                            Some(n) if st.received < n => {
                                let err = UpstreamError::BodyInterrupted {
                                    upstream: st.upstream.clone(),
                                    reason: format!(
                                        "connection ended after {} of {n} bytes",
                                        st.received
                                    ),
                                };
                                Some((Err(err), st))
                            }
                            _ => None,
                        }
                    }
                }
            }
        })
        .inspect(move |item| {
            if let (Err(e), Some((upstream, kind))) = (item, &counted) {
                metrics().upstream_error(upstream, *kind, e.kind());
            }
        })
        .boxed()
    }

    /// Read the whole body, refusing (without reading) one whose `Content-Length` exceeds `max`
    /// and stopping as soon as more than `max` bytes arrive.
    pub async fn bytes_limited(self, max: u64) -> Result<Bytes, UpstreamError> {
        let upstream = self.upstream.clone();
        if self.content_length().is_some_and(|n| n > max) {
            return Err(UpstreamError::TooLarge {
                upstream,
                limit: max,
            });
        }
        let mut buf = BytesMut::new();
        let mut body = self.into_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            if (buf.len() + chunk.len()) as u64 > max {
                return Err(UpstreamError::TooLarge {
                    upstream,
                    limit: max,
                });
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(buf.freeze())
    }
}

struct StreamState {
    upstream: String,
    url: String,
    idle: Duration,
    /// The minimum rate of this body (`None`: off).
    floor: Option<RateFloor>,
    min_rate: u64,
    expected: Option<u64>,
    received: u64,
    inner: Option<reqwest::Response>,
}

impl StreamState {
    /// Account a wait of `waited` that brought `bytes`: the body as too slow when it completed
    /// a rate window with too few bytes.
    fn rate_waited(&mut self, waited: Duration, bytes: u64) -> Option<UpstreamError> {
        let slow = self.floor.as_mut()?.waited(waited, bytes).err()?;
        Some(UpstreamError::Timeout {
            upstream: self.upstream.clone(),
            url: self.url.clone(),
            phase: TimeoutPhase::BelowMinRate {
                received: slow.received,
                min_rate: self.min_rate,
            },
            after_ms: duration_ms(slow.window),
        })
    }
}

pub(crate) fn header_content_length(h: &HeaderMap) -> Option<u64> {
    h.get(CONTENT_LENGTH)?.to_str().ok()?.trim().parse().ok()
}

pub(crate) fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Scheme, host and port of a URL: safe to log (no path, no query, no userinfo).
pub(crate) fn origin(u: &url::Url) -> String {
    u.origin().ascii_serialization()
}

/// The innermost cause of an error chain ("Connection refused (os error 111)"), for
/// operator-readable messages.
pub(crate) fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut last: &(dyn std::error::Error + 'static) = e;
    while let Some(s) = last.source() {
        last = s;
    }
    // reqwest's outer text repeats the URL (which may carry signed query strings): use only the
    // innermost cause.
    let inner = last.to_string();
    if inner.is_empty() {
        "unknown error".to_string()
    } else {
        inner
    }
}
