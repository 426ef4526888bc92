//! Prometheus metrics: one process-wide registry ([`metrics()`]) that every layer counts into
//! without threading a handle through each call, exposed by the admin listener (`GET /metrics`).
//!
//! Every label takes values from a small fixed set (route kinds, methods, status codes, reasons)
//! or from the configuration (upstream names): no digests, repository names or tags, so the
//! number of series stays bounded however many images are pulled.
//!
//! | series | type | labels |
//! |---|---|---|
//! | `trustgate_http_requests_total` | counter | `route`, `method`, `status` |
//! | `trustgate_http_request_duration_seconds` | histogram | `route` |
//! | `trustgate_http_response_bytes_total` | counter | `route` |
//! | `trustgate_cache_hits_total` / `trustgate_cache_misses_total` | counter | `content` |
//! | `trustgate_cache_evictions_total` / `trustgate_cache_evicted_bytes_total` | counter | |
//! | `trustgate_store_unstored_total` | counter | `reason` |
//! | `trustgate_singleflight_joined_total` | counter | `content` |
//! | `trustgate_singleflight_waiters` | gauge | |
//! | `trustgate_negative_cache_hits_total` | counter | |
//! | `trustgate_memory_entries` | gauge | |
//! | `trustgate_upstream_request_duration_seconds` | histogram | `upstream`, `kind` |
//! | `trustgate_upstream_errors_total` | counter | `upstream`, `kind`, `error` |
//! | `trustgate_upstream_up` | gauge | `upstream`, `kind` |
//! | `trustgate_trust_decisions_total` | counter | `outcome`, `reason` |
//! | `trustgate_trust_verify_duration_seconds` | histogram | `result` |
//! | `trustgate_shared_hits_total` / `trustgate_shared_misses_total` | counter | |
//! | `trustgate_shared_read_bytes_total` / `trustgate_shared_written_bytes_total` | counter | |
//! | `trustgate_shared_lease_waits_total` / `trustgate_shared_lease_takeovers_total` | counter | |
//! | `trustgate_shared_uploads_abandoned_total`, `trustgate_shared_peer_streams_total` | counter | |
//! | `trustgate_shared_errors_total` | counter | `op` |
//! | `trustgate_shared_store_up` | gauge | |
//! | `trustgate_signed_tag_moved_back_total` | counter | `upstream` |
//! | `trustgate_build_info` | info | `version` |
//! | `trustgate_process_start_time_seconds` | gauge | |
//!
//! Route kinds: `ping`, `manifest`, `blob`, `tags`, `referrers`, `other` (anything that did not route,
//! writes included). A request is counted when its body is done (or abandoned), with the bytes
//! it carried and the time from the request to that moment.
//!
//! Cache: a *hit* is content answered from the disk store or the memory manifest cache; a *miss*
//! is content that was not held (fetched upstream, or joined a fetch already running, or refused
//! by an offline mirror). `singleflight_joined` counts the misses that joined a running fetch
//! instead of starting one; `singleflight_waiters` is the number of blob readers attached to a
//! fill that is still running.
//!
//! Shared tier (`[storage.shared]`, issue 14): a *hit* is a local miss answered from the bucket,
//! a *miss* one that was not there (this replica or another then fetched it upstream); a *lease
//! wait* is a fill that found another replica filling the digest and waited for it, a
//! *takeover* one that replaced an expired lease (its holder died or stalled). `shared_store_up`
//! is 0 while the store is considered down (pulls go on without it).

use std::sync::atomic::AtomicU64;
use std::sync::OnceLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

use crate::decision::{Reason, Verdict};

/// The OpenMetrics text format, what Prometheus asks for first.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The classic Prometheus text format (0.0.4), for scrapers that do not ask for OpenMetrics.
pub const PROMETHEUS_CONTENT_TYPE: &str =
    prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The process-wide metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

/// What a client request was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteKind {
    Ping,
    Manifest,
    Blob,
    Tags,
    /// `/v2/<name>/referrers/<digest>`.
    Referrers,
    /// Did not route: unknown paths, bad names, writes.
    Other,
}

impl RouteKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ping => "ping",
            Self::Manifest => "manifest",
            Self::Blob => "blob",
            Self::Tags => "tags",
            Self::Referrers => "referrers",
            Self::Other => "other",
        }
    }
}

/// Cached content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContentKind {
    Manifest,
    Blob,
}

impl ContentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Manifest => "manifest",
            Self::Blob => "blob",
        }
    }
}

/// Who trustgate was talking to upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UpstreamKind {
    Registry,
    Notary,
    /// The token service a registry or Notary server sent us to.
    Token,
}

impl UpstreamKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Registry => "registry",
            Self::Notary => "notary",
            Self::Token => "token",
        }
    }
}

/// What went wrong upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UpstreamErrorKind {
    /// Refused connection, DNS or TLS failure, connection lost before an answer.
    Connect,
    /// Connect, first-byte or idle timeout.
    Timeout,
    Status4xx,
    Status5xx,
    /// The token service refused or failed without an HTTP status to class it by.
    Auth,
    /// Broken redirects, unreadable answers, bodies longer than announced or allowed.
    Protocol,
    /// The body stopped early.
    BodyInterrupted,
    /// Bytes that do not hash to the digest they were asked for (or not the announced length).
    DigestMismatch,
}

impl UpstreamErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Timeout => "timeout",
            Self::Status4xx => "status_4xx",
            Self::Status5xx => "status_5xx",
            Self::Auth => "auth",
            Self::Protocol => "protocol",
            Self::BodyInterrupted => "body_interrupted",
            Self::DigestMismatch => "digest_mismatch",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    method: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ContentLabels {
    content: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamLabels {
    upstream: String,
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamErrorLabels {
    upstream: String,
    kind: &'static str,
    error: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    outcome: &'static str,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VerifyLabels {
    result: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Seconds, from a millisecond to a minute: a cached manifest is well under a millisecond's
/// bucket, a cold blob fill or a slow Notary server up in the seconds.
const LATENCY_BUCKETS: [f64; 15] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// The registry and every metric in it. Cheap to update from any thread.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_duration: HistogramFamily<RouteLabels>,
    response_bytes: Family<RouteLabels, Counter>,
    cache_hits: Family<ContentLabels, Counter>,
    cache_misses: Family<ContentLabels, Counter>,
    evictions: Counter,
    evicted_bytes: Counter,
    joined: Family<ContentLabels, Counter>,
    waiters: Gauge,
    upstream_duration: HistogramFamily<UpstreamLabels>,
    upstream_errors: Family<UpstreamErrorLabels, Counter>,
    upstream_up: Family<UpstreamLabels, Gauge>,
    decisions: Family<DecisionLabels, Counter>,
    verify_duration: HistogramFamily<VerifyLabels>,
    shared: SharedTierMetrics,
    moved_back: Family<UpstreamOnlyLabels, Counter>,
    unstored: Family<UnstoredLabels, Counter>,
    negative_hits: Counter,
    memory_entries: Gauge,
    /// Zero-copy cache hits (issue 16).
    sendfile_bytes: Counter,
    sendfile_cold_chunks: Counter,
}

/// Why content was served without being stored (`crate::store` names the reasons).
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct UnstoredLabels {
    reason: &'static str,
}

/// The shared tier's series (issue 14).
#[derive(Default)]
struct SharedTierMetrics {
    hits: Counter,
    misses: Counter,
    read_bytes: Counter,
    written_bytes: Counter,
    lease_waits: Counter,
    takeovers: Counter,
    peer_streams: Counter,
    abandoned: Counter,
    errors: Family<SharedOpLabels, Counter>,
    up: Gauge,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct SharedOpLabels {
    op: &'static str,
}

/// Only the upstream's configured name.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamOnlyLabels {
    upstream: String,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh set of metrics (the process uses [`metrics()`]; tests make their own).
    pub fn new() -> Self {
        let m = Metrics {
            registry: Registry::with_prefix("trustgate"),
            requests: Family::default(),
            request_duration: Family::new_with_constructor(latency_histogram as fn() -> _),
            response_bytes: Family::default(),
            cache_hits: Family::default(),
            cache_misses: Family::default(),
            evictions: Counter::default(),
            evicted_bytes: Counter::default(),
            joined: Family::default(),
            waiters: Gauge::default(),
            memory_entries: Gauge::default(),
            upstream_duration: Family::new_with_constructor(latency_histogram as fn() -> _),
            upstream_errors: Family::default(),
            upstream_up: Family::default(),
            decisions: Family::default(),
            verify_duration: Family::new_with_constructor(latency_histogram as fn() -> _),
            shared: SharedTierMetrics::default(),
            moved_back: Family::default(),
            unstored: Family::default(),
            negative_hits: Counter::default(),
            sendfile_bytes: Counter::default(),
            sendfile_cold_chunks: Counter::default(),
        };
        // Series that dashboards divide by are there from the first scrape, at zero.
        for c in [ContentKind::Manifest, ContentKind::Blob] {
            let labels = ContentLabels {
                content: c.as_str(),
            };
            m.cache_hits.get_or_create_owned(&labels);
            m.cache_misses.get_or_create_owned(&labels);
            m.joined.get_or_create_owned(&labels);
        }
        m.register_all()
    }

    fn register_all(mut self) -> Self {
        let r = &mut self.registry;
        r.register(
            "http_requests",
            "Client requests answered, by route kind, method and status",
            self.requests.clone(),
        );
        r.register_with_unit(
            "http_request_duration",
            "Time from a client request to the end of its response body",
            Unit::Seconds,
            self.request_duration.clone(),
        );
        r.register_with_unit(
            "http_response",
            "Response body bytes sent to clients",
            Unit::Bytes,
            self.response_bytes.clone(),
        );
        r.register(
            "cache_hits",
            "Content answered from the disk store or the memory manifest cache",
            self.cache_hits.clone(),
        );
        r.register(
            "cache_misses",
            "Content that was not held and had to come from upstream",
            self.cache_misses.clone(),
        );
        r.register(
            "cache_evictions",
            "Objects removed from the store by the LRU evictor",
            self.evictions.clone(),
        );
        r.register_with_unit(
            "cache_evicted",
            "Bytes removed from the store by the LRU evictor",
            Unit::Bytes,
            self.evicted_bytes.clone(),
        );
        r.register(
            "store_unstored",
            "Content served to clients without being stored, by reason (disk full, below \
             storage.min_free, over max_size, read-only store, write error)",
            self.unstored.clone(),
        );
        r.register(
            "singleflight_joined",
            "Requests that joined an upstream fetch already running instead of starting one",
            self.joined.clone(),
        );
        r.register(
            "negative_cache_hits",
            "Lookups answered by a remembered \"no trust data\" ([trust] negative_ttl) instead of the Notary server",
            self.negative_hits.clone(),
        );
        r.register_with_unit(
            "sendfile",
            "Stored blob bytes sent to plain-HTTP/1.1 clients with sendfile(2), without a copy",
            Unit::Bytes,
            self.sendfile_bytes.clone(),
        );
        r.register(
            "sendfile_cold_chunks",
            "Stored blob chunks copied instead of sent with sendfile(2) because they were not in the page cache",
            self.sendfile_cold_chunks.clone(),
        );
        r.register(
            "singleflight_waiters",
            "Blob readers attached to a store fill that is still running",
            self.waiters.clone(),
        );
        r.register(
            "memory_entries",
            "Entries in the in-memory caches (remembered misses, memos, verified trust data) \
             after the last upkeep pass; back to its idle level once a flood of names expired",
            self.memory_entries.clone(),
        );
        r.register_with_unit(
            "upstream_request_duration",
            "Time to the response headers of each upstream HTTP exchange",
            Unit::Seconds,
            self.upstream_duration.clone(),
        );
        r.register(
            "upstream_errors",
            "Failed upstream requests, by upstream, kind of server and kind of error",
            self.upstream_errors.clone(),
        );
        r.register(
            "upstream_up",
            "1 while a registry or Notary server answers, 0 from a request it left unanswered \
             (refused, timed out, 5xx) until its next answer",
            self.upstream_up.clone(),
        );
        r.register(
            "trust_decisions",
            "Trust policy decisions, by outcome and reason",
            self.decisions.clone(),
        );
        r.register_with_unit(
            "trust_verify_duration",
            "Time of a full Notary fetch and verification of one repository, by result",
            Unit::Seconds,
            self.verify_duration.clone(),
        );
        let sh = &self.shared;
        for (name, help, c) in [
            (
                "shared_hits",
                "Local misses answered from the shared store",
                &sh.hits,
            ),
            (
                "shared_misses",
                "Local misses the shared store did not hold",
                &sh.misses,
            ),
            (
                "shared_read_bytes",
                "Bytes read from the shared store",
                &sh.read_bytes,
            ),
            (
                "shared_written_bytes",
                "Bytes of verified objects written to the shared store",
                &sh.written_bytes,
            ),
            (
                "shared_lease_waits",
                "Fills that waited for another replica holding the fill lease",
                &sh.lease_waits,
            ),
            (
                "shared_lease_takeovers",
                "Fills that took over an expired fill lease",
                &sh.takeovers,
            ),
            (
                "shared_peer_streams",
                "Fills streamed from the lease holder's peer endpoint",
                &sh.peer_streams,
            ),
            (
                "shared_uploads_abandoned",
                "Fills not stored in the shared store (store failed or slow, or bad bytes)",
                &sh.abandoned,
            ),
        ] {
            r.register(name, help, c.clone());
        }
        r.register(
            "shared_errors",
            "Shared store requests that failed or timed out, by operation",
            sh.errors.clone(),
        );
        r.register(
            "shared_store_up",
            "1 while the shared store is in use, 0 while it is considered down",
            sh.up.clone(),
        );
        r.register(
            "signed_tag_moved_back",
            "Tags under digest verifiers (cosign) seen resolving to an older signed digest than before",
            self.moved_back.clone(),
        );
        r.register(
            "build",
            "The running trustgate version",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        let start: Gauge<f64, AtomicU64> = Gauge::default();
        start.set(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0),
        );
        r.register_with_unit(
            "process_start_time",
            "When this process started, in seconds since the Unix epoch",
            Unit::Seconds,
            start,
        );
        self
    }

    /// The exposition text: OpenMetrics 1.0 when `openmetrics`, else Prometheus text 0.0.4.
    pub fn encode(&self, openmetrics: bool) -> Result<String, std::fmt::Error> {
        let mut out = String::with_capacity(16 * 1024);
        if openmetrics {
            prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        } else {
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)?;
        }
        Ok(out)
    }

    /// One client request, counted when its body is done.
    pub fn request_done(
        &self,
        route: RouteKind,
        method: &http::Method,
        status: u16,
        bytes: u64,
        elapsed: Duration,
    ) {
        let route = route.as_str();
        self.requests
            .get_or_create(&RequestLabels {
                route,
                method: method_label(method),
                status,
            })
            .inc();
        self.request_duration
            .get_or_create(&RouteLabels { route })
            .observe(elapsed.as_secs_f64());
        if bytes > 0 {
            self.response_bytes
                .get_or_create(&RouteLabels { route })
                .inc_by(bytes);
        }
    }

    pub fn cache_hit(&self, content: ContentKind) {
        self.cache_hits
            .get_or_create(&ContentLabels {
                content: content.as_str(),
            })
            .inc();
    }

    pub fn cache_miss(&self, content: ContentKind) {
        self.cache_misses
            .get_or_create(&ContentLabels {
                content: content.as_str(),
            })
            .inc();
    }

    /// The evictor removed one object of `bytes`.
    pub fn evicted(&self, bytes: u64) {
        self.evictions.inc();
        self.evicted_bytes.inc_by(bytes);
    }

    /// A fill or a put went on without the store: the content was served (still checked
    /// against its digest) but not kept. `reason` is one of a fixed set (`crate::store`).
    pub fn store_unstored(&self, reason: &'static str) {
        self.unstored
            .get_or_create(&UnstoredLabels { reason })
            .inc();
    }

    /// A request found an upstream fetch of the same content running and waited for it.
    pub fn singleflight_joined(&self, content: ContentKind) {
        self.joined
            .get_or_create(&ContentLabels {
                content: content.as_str(),
            })
            .inc();
    }

    /// Blob bytes that went from a store file to a client socket with `sendfile(2)`.
    pub fn sendfile_sent(&self, n: u64) {
        self.sendfile_bytes.inc_by(n);
    }

    /// A stored blob's chunk that was not in the page cache, read and copied instead of sent
    /// with `sendfile(2)` (which would wait for the disk on a runtime thread).
    pub fn sendfile_cold_chunk(&self) {
        self.sendfile_cold_chunks.inc();
    }

    /// A lookup was answered by a remembered "does not exist" (`[trust] negative_ttl`).
    pub fn negative_cache_hit(&self) {
        self.negative_hits.inc();
    }

    /// Counts one reader attached to a running fill until the guard is released or dropped.
    pub fn fill_waiter(&'static self) -> WaiterGuard {
        self.waiters.inc();
        WaiterGuard {
            gauge: Some(&self.waiters),
        }
    }

    /// One upstream HTTP exchange took `elapsed` to its response headers (or its failure).
    pub fn upstream_latency(&self, upstream: &str, kind: UpstreamKind, elapsed: Duration) {
        self.upstream_duration
            .get_or_create(&UpstreamLabels {
                upstream: upstream.to_string(),
                kind: kind.as_str(),
            })
            .observe(elapsed.as_secs_f64());
    }

    pub fn upstream_error(&self, upstream: &str, kind: UpstreamKind, error: UpstreamErrorKind) {
        self.upstream_errors
            .get_or_create(&UpstreamErrorLabels {
                upstream: upstream.to_string(),
                kind: kind.as_str(),
                error: error.as_str(),
            })
            .inc();
    }

    /// Entries left in the in-memory caches by an upkeep pass ([`crate::housekeeping`]).
    pub fn memory_entries(&self, entries: u64) {
        self.memory_entries
            .set(i64::try_from(entries).unwrap_or(i64::MAX));
    }

    /// Whether an upstream answers (see [`crate::upstream::reachability`]).
    pub fn upstream_up(&self, upstream: &str, kind: UpstreamKind, up: bool) {
        self.upstream_up
            .get_or_create(&UpstreamLabels {
                upstream: upstream.to_string(),
                kind: kind.as_str(),
            })
            .set(i64::from(up));
    }

    /// One trust policy decision. Called where the proxy decides (and by the audit log).
    pub fn trust_decision(&self, outcome: Verdict, reason: Reason) {
        self.decisions
            .get_or_create(&DecisionLabels {
                outcome: outcome.as_str(),
                reason: reason.as_str(),
            })
            .inc();
    }

    /// A tag under digest verifiers moved back to a digest it resolved to before (a registry
    /// may point a tag at any digest the key ever signed: cosign signs digests, not tags).
    pub fn signed_tag_moved_back(&self, upstream: &str) {
        self.moved_back
            .get_or_create(&UpstreamOnlyLabels {
                upstream: upstream.to_string(),
            })
            .inc();
    }

    /// A full fetch and verification of one repository's trust data; `failure` is `None` when
    /// it verified.
    pub fn verify_done(&self, failure: Option<Reason>, elapsed: Duration) {
        self.verify_duration
            .get_or_create(&VerifyLabels {
                result: failure.map_or("ok", Reason::as_str),
            })
            .observe(elapsed.as_secs_f64());
    }
}

/// The shared tier (issue 14).
impl Metrics {
    pub fn shared_hit(&self) {
        self.shared.hits.inc();
    }
    pub fn shared_miss(&self) {
        self.shared.misses.inc();
    }
    pub fn shared_bytes_read(&self, n: u64) {
        self.shared.read_bytes.inc_by(n);
    }
    pub fn shared_bytes_written(&self, n: u64) {
        self.shared.written_bytes.inc_by(n);
    }
    pub fn shared_lease_wait(&self) {
        self.shared.lease_waits.inc();
    }
    pub fn shared_lease_takeover(&self) {
        self.shared.takeovers.inc();
    }
    pub fn shared_peer_stream(&self) {
        self.shared.peer_streams.inc();
    }
    pub fn shared_upload_abandoned(&self) {
        self.shared.abandoned.inc();
    }
    pub fn shared_error(&self, op: &'static str) {
        self.shared
            .errors
            .get_or_create(&SharedOpLabels { op })
            .inc();
    }
    pub fn shared_store_up(&self, up: bool) {
        self.shared.up.set(i64::from(up));
    }
}

/// A method as a label: the standard ones by name, anything else `other`.
fn method_label(m: &http::Method) -> &'static str {
    match m.as_str() {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    }
}

/// Keeps `trustgate_singleflight_waiters` raised for one reader; see [`Metrics::fill_waiter`].
#[derive(Debug)]
pub struct WaiterGuard {
    gauge: Option<&'static Gauge>,
}

impl WaiterGuard {
    /// The fill this reader waits on has ended: it is no longer waiting.
    pub fn release(&mut self) {
        if let Some(g) = self.gauge.take() {
            g.dec();
        }
    }
}

impl Drop for WaiterGuard {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the sample `name{labels}` (labels in any order, all of them given).
    fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        text.lines().find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (n, rest) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.strip_suffix('}')?),
                None => (series, ""),
            };
            if n != name {
                return None;
            }
            let mut have: Vec<(&str, &str)> = rest
                .split(',')
                .filter(|p| !p.is_empty())
                .filter_map(|p| {
                    let (k, v) = p.split_once('=')?;
                    Some((k, v.trim_matches('"')))
                })
                .collect();
            let mut want = labels.to_vec();
            have.sort_unstable();
            want.sort_unstable();
            (have == want).then(|| value.parse().ok())?
        })
    }

    #[test]
    fn increments_show_in_both_formats() {
        let m = Metrics::new();
        m.request_done(
            RouteKind::Blob,
            &http::Method::GET,
            200,
            1234,
            Duration::from_millis(3),
        );
        m.request_done(
            RouteKind::Blob,
            &http::Method::GET,
            200,
            6,
            Duration::from_millis(3),
        );
        m.request_done(
            RouteKind::Other,
            &http::Method::from_bytes(b"BREW").unwrap(),
            405,
            0,
            Duration::ZERO,
        );
        m.cache_hit(ContentKind::Manifest);
        m.cache_miss(ContentKind::Blob);
        m.evicted(100);
        m.evicted(28);
        m.singleflight_joined(ContentKind::Blob);
        m.upstream_latency("docker.io", UpstreamKind::Notary, Duration::from_millis(20));
        m.upstream_error(
            "docker.io",
            UpstreamKind::Registry,
            UpstreamErrorKind::DigestMismatch,
        );
        m.trust_decision(Verdict::Deny, Reason::UnsignedTag);
        m.trust_decision(Verdict::Deny, Reason::UnsignedTag);
        m.verify_done(None, Duration::from_millis(40));
        m.verify_done(Some(Reason::Expired), Duration::from_millis(40));

        let om = m.encode(true).unwrap();
        assert!(om.ends_with("# EOF\n"), "{om}");
        let v = |name, labels: &[(&str, &str)]| sample(&om, name, labels);
        let blob_200 = [("route", "blob"), ("method", "GET"), ("status", "200")];
        assert_eq!(v("trustgate_http_requests_total", &blob_200), Some(2.0));
        let brew = [("route", "other"), ("method", "other"), ("status", "405")];
        assert_eq!(v("trustgate_http_requests_total", &brew), Some(1.0));
        assert_eq!(
            v("trustgate_http_response_bytes_total", &[("route", "blob")]),
            Some(1240.0)
        );
        assert_eq!(
            v(
                "trustgate_http_request_duration_seconds_count",
                &[("route", "blob")]
            ),
            Some(2.0)
        );
        let content = |c| [("content", c)];
        assert_eq!(
            v("trustgate_cache_hits_total", &content("manifest")),
            Some(1.0)
        );
        assert_eq!(
            v("trustgate_cache_misses_total", &content("blob")),
            Some(1.0)
        );
        assert_eq!(v("trustgate_cache_evictions_total", &[]), Some(2.0));
        assert_eq!(v("trustgate_cache_evicted_bytes_total", &[]), Some(128.0));
        assert_eq!(
            v("trustgate_singleflight_joined_total", &content("blob")),
            Some(1.0)
        );
        assert_eq!(
            v(
                "trustgate_upstream_request_duration_seconds_count",
                &[("upstream", "docker.io"), ("kind", "notary")]
            ),
            Some(1.0)
        );
        assert_eq!(
            v(
                "trustgate_upstream_errors_total",
                &[
                    ("upstream", "docker.io"),
                    ("kind", "registry"),
                    ("error", "digest_mismatch")
                ]
            ),
            Some(1.0)
        );
        assert_eq!(
            v(
                "trustgate_trust_decisions_total",
                &[("outcome", "deny"), ("reason", "unsigned_tag")]
            ),
            Some(2.0)
        );
        for result in ["ok", "expired"] {
            assert_eq!(
                v(
                    "trustgate_trust_verify_duration_seconds_count",
                    &[("result", result)]
                ),
                Some(1.0),
                "{result}"
            );
        }
        assert_eq!(
            v(
                "trustgate_build_info",
                &[("version", env!("CARGO_PKG_VERSION"))]
            ),
            Some(1.0)
        );
        assert!(v("trustgate_process_start_time_seconds", &[]).is_some_and(|t| t > 1.6e9));

        // The classic text format carries the same samples.
        let text = m.encode(false).unwrap();
        assert_eq!(
            sample(&text, "trustgate_http_requests_total", &blob_200),
            Some(2.0)
        );
        assert!(!text.contains("# EOF"));
    }

    #[test]
    fn waiter_gauge_follows_guards() {
        let m: &'static Metrics = Box::leak(Box::new(Metrics::new()));
        let gauge = |m: &Metrics| {
            sample(
                &m.encode(true).unwrap(),
                "trustgate_singleflight_waiters",
                &[],
            )
        };
        let mut a = m.fill_waiter();
        let b = m.fill_waiter();
        assert_eq!(gauge(m), Some(2.0));
        a.release();
        a.release();
        assert_eq!(gauge(m), Some(1.0));
        drop(b);
        drop(a);
        assert_eq!(gauge(m), Some(0.0));
    }

    #[test]
    fn methods_are_bounded() {
        assert_eq!(method_label(&http::Method::GET), "GET");
        assert_eq!(method_label(&http::Method::HEAD), "HEAD");
        assert_eq!(method_label(&http::Method::CONNECT), "other");
        assert_eq!(
            method_label(&http::Method::from_bytes(b"X-ANYTHING").unwrap()),
            "other"
        );
    }
}
