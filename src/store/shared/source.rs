//! Where a local fill's bytes come from when the shared tier is configured: the bucket if the
//! object is there; else the upstream, by exactly one replica of the fleet (the lease holder),
//! teed into the bucket; the other replicas wait for the object to appear and read it from the
//! bucket, or take the fill over once the holder's lease expired.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{Stream, TryStreamExt};
use object_store::path::Path as ObjPath;
use object_store::PutMode;
use tokio::time::Duration;

use super::lease::{now_ms, LeaseHandle, LeaseRecord};
use super::{SharedError, SharedStore};
use crate::body::BoxError;
use crate::metrics::metrics;
use crate::reference::Digest;

/// The body a fill reads.
pub type FillStream = Pin<Box<dyn Stream<Item = Result<Bytes, BoxError>> + Send>>;

/// How often a waiting replica looks for the object (and at the lease).
const WAIT_POLL: Duration = Duration::from_millis(250);
/// Attempts at claiming a lease whose state keeps changing under us before going upstream.
const CLAIM_ATTEMPTS: usize = 8;

/// The outcome of [`SharedStore::fetch_turn`].
#[derive(Debug)]
pub enum Turn {
    /// The object is in the bucket now: read it from there.
    Stored,
    /// This replica holds the lease: fetch, verify and store the object, then drop the handle.
    Mine(LeaseHandle),
    /// No lease (the store is down or slow, or the lease kept changing hands): fetch without one.
    Alone,
}

pub(super) enum Claim {
    Mine(LeaseHandle),
    Theirs {
        holder: String,
        advertise: Option<String>,
    },
}

impl SharedStore {
    /// The source of a local fill of `digest` (see the module comment). `start` is the
    /// upstream fetch, called at most once; its errors reach the fill unchanged (the proxy reads
    /// the upstream's status from them).
    pub async fn fill_source<F, Fut, S, E>(
        self: Arc<Self>,
        digest: Digest,
        expected_len: Option<u64>,
        media_type: Option<String>,
        start: F,
    ) -> Result<(Option<u64>, FillStream), BoxError>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<(Option<u64>, S), E>> + Send + 'static,
        S: Stream<Item = Result<Bytes, E>> + Send + Unpin + 'static,
        E: Into<BoxError> + Send + 'static,
    {
        let mut first_look = true;
        let mut attempts = 0;
        let outage = loop {
            match self.open(&digest, None).await {
                Ok(Some((meta, stream))) => {
                    metrics().shared_hit();
                    let resumed = resume_from_upstream(digest, stream, start);
                    let checked = self.checked(digest, resumed);
                    return Ok((Some(meta.size), Box::pin(checked)));
                }
                Ok(None) if first_look => metrics().shared_miss(),
                Ok(None) => {}
                Err(e) => break e,
            }
            first_look = false;
            attempts += 1;
            if attempts > CLAIM_ATTEMPTS {
                // A lease that keeps changing hands without the object appearing: fetch it
                // ourselves rather than wait on the fleet forever.
                tracing::warn!(%digest, "shared store: no replica completed this object; fetching it upstream without a lease");
                let (len, body) = start().await.map_err(Into::into)?;
                let tee = self.tee(digest, expected_len.or(len), media_type, None, body);
                return Ok((len, Box::pin(tee)));
            }
            match self.claim(&digest).await {
                Ok(Claim::Mine(lease)) => {
                    // The previous holder may have completed the object and released its lease
                    // between our look and our claim: look once more before going upstream.
                    if matches!(self.head(&digest).await, Ok(Some(_))) {
                        drop(lease);
                        continue;
                    }
                    let (len, body) = start().await.map_err(Into::into)?;
                    let tee = self.tee(digest, expected_len.or(len), media_type, Some(lease), body);
                    return Ok((len, Box::pin(tee)));
                }
                Ok(Claim::Theirs { holder, advertise }) => {
                    metrics().shared_lease_wait();
                    // Stream the running fill from its holder, when both sides peer.
                    if let (Some(peering), Some(at)) = (self.peering.get(), advertise.as_deref()) {
                        match peering.fetch(at, &digest).await {
                            Ok((len, body)) => {
                                metrics().shared_peer_stream();
                                tracing::info!(%digest, %holder, peer = at, "streaming the running fill from the replica that holds its lease");
                                return Ok((len, body));
                            }
                            Err(e) => {
                                tracing::info!(%digest, %holder, peer = at, error = %e, "the lease holder's peer endpoint did not answer; waiting for the object in the shared store");
                            }
                        }
                    }
                    tracing::debug!(%digest, %holder, "shared store: another replica is filling this object; waiting for it");
                    if let Err(e) = self.wait_for(&digest).await {
                        break e;
                    }
                }
                Err(e) => break e,
            }
        };
        // The store is down or slow: the pull goes on from the upstream, unstored.
        tracing::debug!(%digest, error = %outage, "shared store unavailable: filling from the upstream without storing");
        let (len, body) = start().await.map_err(Into::into)?;
        let body = body.map_err(Into::into);
        Ok((len, Box::pin(body)))
    }

    /// Whose turn it is to fetch the small object `digest` (a manifest by digest) from the
    /// upstream, for callers that fetch, verify and [`SharedStore::put_verified`] it themselves
    /// rather than stream it through [`SharedStore::fill_source`]. Same lease, same waiting and
    /// takeover as a blob fill; the waiters do not stream from the holder (a manifest is small:
    /// they read it from the bucket once it is there).
    pub async fn fetch_turn(self: &Arc<Self>, digest: &Digest) -> Turn {
        let mut first_look = true;
        for _ in 0..=CLAIM_ATTEMPTS {
            match self.head(digest).await {
                // Counted as a hit by the read from the bucket that follows.
                Ok(Some(_)) => return Turn::Stored,
                Ok(None) if first_look => metrics().shared_miss(),
                Ok(None) => {}
                Err(_) => return Turn::Alone,
            }
            first_look = false;
            match self.claim(digest).await {
                Ok(Claim::Mine(lease)) => {
                    // Completed and released between our look and our claim?
                    if matches!(self.head(digest).await, Ok(Some(_))) {
                        return Turn::Stored;
                    }
                    return Turn::Mine(lease);
                }
                Ok(Claim::Theirs { holder, .. }) => {
                    metrics().shared_lease_wait();
                    tracing::debug!(%digest, %holder, "shared store: another replica is fetching this manifest; waiting for it");
                    if self.wait_for(digest).await.is_err() {
                        return Turn::Alone;
                    }
                }
                Err(_) => return Turn::Alone,
            }
        }
        tracing::warn!(%digest, "shared store: no replica completed this object; fetching it upstream without a lease");
        Turn::Alone
    }

    /// The bucket's bytes of `digest`, hashed on the way: an object that does not hash to its
    /// name (written around trustgate, or damaged) is deleted from the bucket and logged, so the
    /// next request fetches it afresh. The local fill refuses the bytes either way (it hashes
    /// them too).
    fn checked(
        self: &Arc<Self>,
        digest: Digest,
        stream: super::SharedStream,
    ) -> impl Stream<Item = Result<Bytes, BoxError>> + Send + 'static {
        use sha2::Digest as _;
        let me = self.clone();
        let hasher = sha2::Sha256::new();
        futures_util::stream::unfold(Some((stream, hasher, me)), move |state| async move {
            let (mut stream, mut hasher, me) = state?;
            match futures_util::StreamExt::next(&mut stream).await {
                Some(Ok(chunk)) => {
                    hasher.update(&chunk);
                    Some((Ok(chunk), Some((stream, hasher, me))))
                }
                Some(Err(e)) => Some((Err(BoxError::from(e)), None)),
                None => {
                    let actual = Digest::from_bytes(hasher.finalize().into());
                    if actual == digest {
                        return None;
                    }
                    tracing::error!(%digest, %actual, store = %me.describe,
                            "shared store object does not hash to its name: deleting it (it is fetched again on the next request)");
                    let _ = me.delete_record(&me.content_key(&digest)).await;
                    Some((
                        Err(BoxError::from(format!(
                            "the shared store's copy of {digest} hashes to {actual}"
                        ))),
                        None,
                    ))
                }
            }
        })
    }

    /// Create-only claim of the fill lease of `digest`.
    async fn claim(self: &Arc<Self>, digest: &Digest) -> Result<Claim, SharedError> {
        self.claim_key(&self.lease_key(digest)).await
    }

    /// Create-only claim of the lease at `key`; takes over an expired (or unreadable) lease
    /// with a compare-and-swap on the version read.
    pub(super) async fn claim_key(self: &Arc<Self>, key: &ObjPath) -> Result<Claim, SharedError> {
        let key = key.clone();
        let ttl_ms = self.lease_ttl.as_millis() as u64;
        for _ in 0..CLAIM_ATTEMPTS {
            let rec =
                LeaseRecord::new(&self.holder, now_ms(), ttl_ms).advertising(self.advertise());
            if let Some(v) = self
                .put_versioned(&key, rec.encode(), PutMode::Create)
                .await?
            {
                return Ok(Claim::Mine(self.hold_lease(key, v)));
            }
            let Some(current) = self.read_record(&key).await? else {
                continue; // released between our put and our read: try again
            };
            let held = LeaseRecord::decode(&current.bytes);
            match held {
                Some(l) if !l.is_expired(now_ms()) => {
                    return Ok(Claim::Theirs {
                        holder: l.holder,
                        advertise: l.advertise,
                    })
                }
                _ => {
                    let rec = LeaseRecord::new(&self.holder, now_ms(), ttl_ms)
                        .advertising(self.advertise());
                    if let Some(v) = self
                        .put_versioned(&key, rec.encode(), PutMode::Update(current.version))
                        .await?
                    {
                        metrics().shared_lease_takeover();
                        let previous = held
                            .map(|l| l.holder)
                            .unwrap_or_else(|| "unreadable".into());
                        tracing::warn!(lease = %key, %previous, "shared store: lease expired; taking it over");
                        return Ok(Claim::Mine(self.hold_lease(key, v)));
                    }
                    // Another replica took it over first: look again.
                }
            }
        }
        Err(self.unavailable("the fill lease kept changing hands"))
    }

    /// Waits until the object is there, the lease is gone, or it expired (renewals move the
    /// expiry on). Returns so that the caller looks again.
    async fn wait_for(&self, digest: &Digest) -> Result<(), SharedError> {
        let key = self.lease_key(digest);
        loop {
            tokio::time::sleep(WAIT_POLL).await;
            if self.head(digest).await?.is_some() {
                return Ok(());
            }
            match self.read_record(&key).await? {
                Some(r)
                    if LeaseRecord::decode(&r.bytes).is_some_and(|l| !l.is_expired(now_ms())) => {}
                // Released (the holder failed) or expired (the holder died): claim it again.
                _ => return Ok(()),
            }
        }
    }
}

/// Where [`resume_from_upstream`] reads from.
enum Phase<F, S> {
    Bucket(super::SharedStream, F),
    /// The upstream's body, with the bytes still to skip (already passed on from the bucket).
    Upstream(S, u64),
    Done,
}

/// The bucket's bytes of `digest`; when that read breaks off (a sweep on another replica
/// deleted the object under a read the store did not finish, a lost connection), the rest comes
/// from the upstream: `start` fetches the body again and the bytes already passed on are
/// skipped. The local fill hashes the whole either way, so a wrong splice is refused there.
pub(super) fn resume_from_upstream<F, Fut, S, E>(
    digest: Digest,
    bucket: super::SharedStream,
    start: F,
) -> super::SharedStream
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = Result<(Option<u64>, S), E>> + Send + 'static,
    S: Stream<Item = Result<Bytes, E>> + Send + Unpin + 'static,
    E: Into<BoxError> + Send + 'static,
{
    use futures_util::StreamExt;
    let other = |e: E| std::io::Error::other(e.into());
    let state = (Phase::Bucket(bucket, start), 0u64);
    Box::pin(futures_util::stream::unfold(
        state,
        move |(mut phase, mut sent)| async move {
            loop {
                match phase {
                    Phase::Done => return None,
                    Phase::Bucket(mut s, start) => match s.next().await {
                        Some(Ok(c)) => {
                            sent += c.len() as u64;
                            return Some((Ok(c), (Phase::Bucket(s, start), sent)));
                        }
                        None => return None,
                        Some(Err(e)) => {
                            metrics().shared_error("read");
                            tracing::warn!(%digest, after_bytes = sent, error = %e,
                                "shared store: the object's read broke off (deleted by a sweep, or the store failed); fetching it again from the upstream");
                            match start().await {
                                Ok((_, body)) => phase = Phase::Upstream(body, sent),
                                Err(e) => return Some((Err(other(e)), (Phase::Done, sent))),
                            }
                        }
                    },
                    Phase::Upstream(mut body, skip) => match body.next().await {
                        Some(Ok(mut c)) => {
                            let n = skip.min(c.len() as u64);
                            let _ = c.split_to(n as usize);
                            let skip = skip - n;
                            if c.is_empty() {
                                phase = Phase::Upstream(body, skip);
                                continue;
                            }
                            return Some((Ok(c), (Phase::Upstream(body, skip), sent)));
                        }
                        Some(Err(e)) => return Some((Err(other(e)), (Phase::Done, sent))),
                        None if skip > 0 => {
                            let e = std::io::Error::other(format!(
                                "the upstream's {digest} is shorter than the bucket's"
                            ));
                            return Some((Err(e), (Phase::Done, sent)));
                        }
                        None => return None,
                    },
                }
            }
        },
    ))
}
