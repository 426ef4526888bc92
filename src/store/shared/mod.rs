//! The shared tier: an S3-compatible object store that every replica of a fleet reads and fills
//! (issue 14), behind each replica's local disk tier (see [`super::Content`]).
//!
//! Layout under the configured prefix (`s3://bucket/prefix`):
//! - `content/sha256/<hex>`: manifests, blobs and signature artifacts by digest, with their media
//!   type as the object's `Content-Type`. An object there was hashed and length-checked before
//!   its upload was completed ([`upload`]); incomplete multipart uploads are invisible.
//! - `leases/sha256/<hex>`: who is filling a digest right now ([`lease`]).
//! - `leases/sweep`: which replica enforces `max_size`/`max_age` right now ([`sweep`]).
//!
//! The bucket is trusted no more than an upstream: bytes read from it into the local tier are
//! hashed again by the local fill. Only ranged reads that a client asked for are passed through
//! without a hash (a slice cannot be checked), as the local tier serves its own files.
//!
//! Every request has a deadline (`timeout`); a store that fails or is slow is marked down for
//! `retry_after` ([`health`]) and pulls go on without it.
//!
//! Where other shared records join (trust pins and role versions, cosign/Notation verdicts, the
//! tag map): they are small JSON documents under their own key prefix, written with the two
//! conditional puts this module wraps, [`SharedStore::create_record`] (create-only: first writer
//! wins) and [`SharedStore::update_record`] (compare-and-swap on the ETag read with
//! [`SharedStore::read_record`]).

pub mod config;
mod health;
pub mod lease;
pub mod peer;
mod source;
pub mod sweep;
mod upload;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjPath;
use object_store::{
    Attribute, Attributes, ClientOptions, GetOptions, GetRange, ObjectStore, ObjectStoreExt,
    PutMode, PutOptions, PutPayload, RetryConfig, UpdateVersion,
};

pub use config::SharedStoreConfig;
pub use source::Turn;

use crate::metrics::metrics;
use crate::range::ByteRange;
use crate::reference::Digest;

/// A shared-store operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SharedError {
    /// The configuration cannot make a client (bad URL, region).
    #[error("storage.shared: {0}")]
    Config(String),
    /// The store is marked down, or this request failed or timed out: go on without it.
    #[error("shared store {store} unavailable: {reason}")]
    Unavailable { store: String, reason: String },
}

/// An object's size and media type.
#[derive(Debug, Clone)]
pub struct SharedMeta {
    pub size: u64,
    pub media_type: Option<String>,
}

/// A small record and the version a compare-and-swap must name.
#[derive(Debug, Clone)]
pub struct Record {
    pub bytes: Bytes,
    pub version: UpdateVersion,
}

/// The outcome of a conditional write of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    Done,
    /// Another replica got there first (exists already, or changed since it was read).
    Lost,
}

/// Bytes from the shared store.
pub type SharedStream = std::pin::Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

/// The shared tier. Shared as `Arc<SharedStore>`.
pub struct SharedStore {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    describe: String,
    holder: String,
    timeout: Duration,
    lease_ttl: Duration,
    health: health::Health,
    /// `[fleet]`: streaming running fills from their lease holders.
    peering: std::sync::OnceLock<peer::Peering>,
}

impl std::fmt::Debug for SharedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedStore")
            .field("store", &self.describe)
            .field("holder", &self.holder)
            .finish_non_exhaustive()
    }
}

/// Why a request failed, as the store's own error says it.
enum Failure {
    NotFound,
    /// Exists already, or its version changed (the conditional put lost).
    Conflict,
}

impl SharedStore {
    /// A client for `[storage.shared]`. Makes no request (see [`SharedStore::probe`]).
    pub fn from_config(cfg: &SharedStoreConfig) -> Result<Arc<Self>, SharedError> {
        let bu = cfg.bucket_url().map_err(SharedError::Config)?;
        let timeout = cfg.timeout.as_duration();
        let mut b = AmazonS3Builder::from_env()
            .with_bucket_name(&bu.bucket)
            .with_allow_http(cfg.allow_http)
            .with_client_options(
                ClientOptions::new()
                    .with_allow_http(cfg.allow_http)
                    .with_timeout(timeout)
                    .with_connect_timeout(timeout),
            )
            // A down store must be noticed within `timeout`, not after the crate's default of
            // ten retries over three minutes.
            .with_retry(RetryConfig {
                max_retries: 1,
                retry_timeout: timeout,
                ..RetryConfig::default()
            });
        if let Some(e) = &cfg.endpoint {
            b = b.with_endpoint(e);
        }
        if let Some(r) = &cfg.region {
            b = b.with_region(r);
        }
        let store = b.build().map_err(|e| SharedError::Config(e.to_string()))?;
        Ok(Arc::new(Self::with_store(
            Arc::new(store),
            &bu.prefix,
            &cfg.url,
            timeout,
            cfg.lease_ttl.as_duration(),
            cfg.retry_after.as_duration(),
        )))
    }

    /// The tests' fleet store: over one in-memory bucket shared by their "replicas", prefix
    /// `fleet`, a 5 s timeout, and the lease lifetime and retry pause the test needs.
    #[cfg(test)]
    pub fn in_memory_for_tests(
        mem: &Arc<object_store::memory::InMemory>,
        lease_ttl: Duration,
        retry_after: Duration,
    ) -> Arc<Self> {
        Arc::new(Self::with_store(
            mem.clone() as Arc<dyn ObjectStore>,
            "fleet",
            "memory://test",
            Duration::from_secs(5),
            lease_ttl,
            retry_after,
        ))
    }

    /// Over any object store (tests use `object_store::memory::InMemory`).
    pub fn with_store(
        store: Arc<dyn ObjectStore>,
        prefix: &str,
        describe: &str,
        timeout: Duration,
        lease_ttl: Duration,
        retry_after: Duration,
    ) -> Self {
        Self {
            store,
            prefix: prefix.trim_matches('/').to_string(),
            describe: describe.to_string(),
            holder: holder_id(),
            timeout,
            lease_ttl,
            health: health::Health::new(describe, retry_after),
            peering: std::sync::OnceLock::new(),
        }
    }

    /// `s3://bucket/prefix`, for logs.
    pub fn describe(&self) -> &str {
        &self.describe
    }

    /// Streams running fills from (and to) the other replicas' peer endpoints (`[fleet]`).
    pub fn set_peering(&self, peering: peer::Peering) {
        let _ = self.peering.set(peering);
    }

    fn advertise(&self) -> Option<&str> {
        self.peering.get().map(|p| p.advertise.as_str())
    }

    /// This replica's id in lease records.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Marks the store down, as a failed request does (tests of the fail-soft paths).
    #[cfg(test)]
    pub(crate) fn mark_down_for_tests(&self, reason: &str) {
        self.health.down(reason);
    }

    /// Why the store is not in use right now, for `/readyz`'s detail.
    pub fn problem(&self) -> Option<String> {
        self.health.problem()
    }

    fn key(&self, rest: &str) -> ObjPath {
        if self.prefix.is_empty() {
            ObjPath::from(rest)
        } else {
            ObjPath::from(format!("{}/{rest}", self.prefix))
        }
    }

    fn content_key(&self, d: &Digest) -> ObjPath {
        self.key(&format!("content/sha256/{}", d.hex()))
    }

    fn lease_key(&self, d: &Digest) -> ObjPath {
        self.key(&format!("leases/sha256/{}", d.hex()))
    }

    /// The key of a record (`rest` such as `trust/<gun>/root.json`).
    pub fn record_key(&self, rest: &str) -> ObjPath {
        self.key(rest)
    }

    fn unavailable(&self, reason: impl Into<String>) -> SharedError {
        SharedError::Unavailable {
            store: self.describe.clone(),
            reason: reason.into(),
        }
    }

    /// Runs one request with the deadline, keeping the health state: `Ok(Err(_))` for answers
    /// about the object itself (missing, conflict), `Err` when the store failed.
    async fn call<T, F>(&self, op: &'static str, f: F) -> Result<Result<T, Failure>, SharedError>
    where
        F: std::future::Future<Output = object_store::Result<T>>,
    {
        if !self.health.usable() {
            return Err(self.unavailable("marked down after an earlier failure"));
        }
        let res = match tokio::time::timeout(self.timeout, f).await {
            Ok(r) => r,
            Err(_) => {
                let reason = format!("{op} took longer than {} s", self.timeout.as_secs());
                metrics().shared_error(op);
                self.health.down(&reason);
                return Err(self.unavailable(reason));
            }
        };
        match res {
            Ok(v) => {
                self.health.up();
                Ok(Ok(v))
            }
            Err(object_store::Error::NotFound { .. }) => {
                self.health.up();
                Ok(Err(Failure::NotFound))
            }
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => {
                self.health.up();
                Ok(Err(Failure::Conflict))
            }
            Err(e) => {
                let reason = format!("{op}: {e}");
                metrics().shared_error(op);
                self.health.down(&reason);
                Err(self.unavailable(reason))
            }
        }
    }

    /// The object's size and media type, `None` if it is not there.
    pub async fn head(&self, d: &Digest) -> Result<Option<SharedMeta>, SharedError> {
        let key = self.content_key(d);
        let opts = GetOptions {
            head: true,
            ..GetOptions::default()
        };
        match self.call("head", self.store.get_opts(&key, opts)).await? {
            Ok(r) => Ok(Some(SharedMeta {
                size: r.meta.size,
                media_type: media_type(&r.attributes),
            })),
            Err(_) => Ok(None),
        }
    }

    /// The object (or the inclusive `range` of it) as a stream, with the object's size and media
    /// type; `None` if it is not there. Counts read bytes; a stream that breaks off ends in an
    /// error, never a clean end.
    pub async fn open(
        &self,
        d: &Digest,
        range: Option<ByteRange>,
    ) -> Result<Option<(SharedMeta, SharedStream)>, SharedError> {
        let key = self.content_key(d);
        let opts = GetOptions {
            range: range.map(|r| GetRange::Bounded(r.start..r.end.saturating_add(1))),
            ..GetOptions::default()
        };
        let r = match self.call("get", self.store.get_opts(&key, opts)).await? {
            Ok(r) => r,
            Err(_) => return Ok(None),
        };
        let meta = SharedMeta {
            size: r.meta.size,
            media_type: media_type(&r.attributes),
        };
        let stream = r
            .into_stream()
            .inspect_ok(|b| metrics().shared_bytes_read(b.len() as u64))
            .map_err(std::io::Error::other);
        Ok(Some((meta, Box::pin(stream))))
    }

    /// Stores verified bytes (manifests) create-only; already there is success.
    pub async fn put_verified(
        &self,
        d: &Digest,
        bytes: Bytes,
        media_type: Option<&str>,
    ) -> Result<(), SharedError> {
        let key = self.content_key(d);
        let len = bytes.len() as u64;
        let opts = PutOptions {
            mode: PutMode::Create,
            attributes: attributes(media_type),
            ..PutOptions::default()
        };
        let put = self.store.put_opts(&key, PutPayload::from(bytes), opts);
        if self.call("put", put).await?.is_ok() {
            metrics().shared_bytes_written(len);
        }
        Ok(())
    }

    /// Reads a record and the version to name in [`SharedStore::update_record`].
    pub async fn read_record(&self, key: &ObjPath) -> Result<Option<Record>, SharedError> {
        let r = match self
            .call("get", self.store.get_opts(key, GetOptions::default()))
            .await?
        {
            Ok(r) => r,
            Err(_) => return Ok(None),
        };
        let version = UpdateVersion {
            e_tag: r.meta.e_tag.clone(),
            version: r.meta.version.clone(),
        };
        let bytes = match self.call("get", r.bytes()).await? {
            Ok(b) => b,
            Err(_) => return Ok(None),
        };
        Ok(Some(Record { bytes, version }))
    }

    /// Create-only write of a record: `Lost` if it exists already.
    pub async fn create_record(
        &self,
        key: &ObjPath,
        bytes: Vec<u8>,
    ) -> Result<Written, SharedError> {
        self.put_record(key, bytes, PutMode::Create).await
    }

    /// Compare-and-swap: writes only if the record is still at `version`.
    pub async fn update_record(
        &self,
        key: &ObjPath,
        bytes: Vec<u8>,
        version: UpdateVersion,
    ) -> Result<Written, SharedError> {
        self.put_record(key, bytes, PutMode::Update(version)).await
    }

    async fn put_record(
        &self,
        key: &ObjPath,
        bytes: Vec<u8>,
        mode: PutMode,
    ) -> Result<Written, SharedError> {
        Ok(match self.put_versioned(key, bytes, mode).await? {
            Some(_) => Written::Done,
            None => Written::Lost,
        })
    }

    /// A conditional put: the new version, or `None` when the condition failed.
    async fn put_versioned(
        &self,
        key: &ObjPath,
        bytes: Vec<u8>,
        mode: PutMode,
    ) -> Result<Option<UpdateVersion>, SharedError> {
        let opts = PutOptions {
            mode,
            ..PutOptions::default()
        };
        let put = self.store.put_opts(key, PutPayload::from(bytes), opts);
        Ok(match self.call("put", put).await? {
            Ok(r) => Some(UpdateVersion {
                e_tag: r.e_tag,
                version: r.version,
            }),
            Err(_) => None,
        })
    }

    /// Deletes a record (missing is fine).
    pub async fn delete_record(&self, key: &ObjPath) -> Result<(), SharedError> {
        let _ = self.call("delete", self.store.delete(key)).await?;
        Ok(())
    }

    /// Keys under `prefix` (relative to the configured prefix), for `trust reset` and checks.
    pub async fn list_records(&self, prefix: &str) -> Result<Vec<ObjPath>, SharedError> {
        let p = self.key(prefix);
        let listed = self
            .store
            .list(Some(&p))
            .map_ok(|m| m.location)
            .try_collect();
        match self.call("list", listed).await? {
            Ok(v) => Ok(v),
            Err(_) => Ok(Vec::new()),
        }
    }

    /// Objects under `prefix` (relative to the configured prefix) with their size and
    /// `Last-Modified`: one LIST request per 1000 objects.
    pub(super) async fn list_meta(
        &self,
        prefix: &str,
    ) -> Result<Vec<object_store::ObjectMeta>, SharedError> {
        let listed = self.store.list(Some(&self.key(prefix))).try_collect();
        Ok(self.call("list", listed).await?.unwrap_or_default())
    }

    /// Writes, reads back and deletes one probe object: the bucket is reachable and writable
    /// with these credentials (`check-config`, `check-store`).
    pub async fn probe(&self) -> Result<(), SharedError> {
        let key = self.key(&format!("probes/{}", self.holder));
        let body = b"trustgate probe".to_vec();
        let put = self
            .store
            .put_opts(&key, PutPayload::from(body.clone()), PutOptions::default());
        self.call("put", put)
            .await?
            .map_err(|_| self.unavailable(format!("cannot write {key}")))?;
        let got = self
            .call("get", async { self.store.get(&key).await?.bytes().await })
            .await?
            .map_err(|_| self.unavailable(format!("cannot read back {key}")))?;
        if got.as_ref() != body.as_slice() {
            return Err(self.unavailable(format!("{key} read back other bytes than written")));
        }
        let _ = self.call("delete", self.store.delete(&key)).await?;
        Ok(())
    }

    /// Counts and checks objects under `content/`: each key names a digest, and when
    /// `rehash` each object hashes to it. Returns (objects, bytes, bad keys).
    pub async fn check_content(
        &self,
        rehash: bool,
    ) -> Result<(u64, u64, Vec<String>), SharedError> {
        let listed = self.list_meta("content/sha256").await?;
        let (mut n, mut bytes, mut bad) = (0u64, 0u64, Vec::new());
        for m in listed {
            n += 1;
            bytes += m.size;
            let name = m.location.filename().unwrap_or_default().to_string();
            let Ok(d) = Digest::parse(&format!("sha256:{name}")) else {
                bad.push(format!("{}: not a digest", m.location));
                continue;
            };
            if !rehash {
                continue;
            }
            use sha2::Digest as _;
            let mut h = sha2::Sha256::new();
            let Some((_, mut s)) = self.open(&d, None).await? else {
                continue;
            };
            let mut failed = false;
            while let Some(c) = s.next().await {
                match c {
                    Ok(c) => h.update(&c),
                    Err(e) => {
                        bad.push(format!("{}: read failed: {e}", m.location));
                        failed = true;
                        break;
                    }
                }
            }
            if !failed && Digest::from_bytes(h.finalize().into()) != d {
                bad.push(format!("{}: content does not hash to its name", m.location));
            }
        }
        Ok((n, bytes, bad))
    }
}

fn attributes(media_type: Option<&str>) -> Attributes {
    let mut a = Attributes::new();
    if let Some(t) = media_type {
        a.insert(Attribute::ContentType, t.to_string().into());
    }
    a
}

fn media_type(a: &Attributes) -> Option<String> {
    a.get(&Attribute::ContentType)
        .map(|v| v.as_ref().to_string())
        // S3 gives every object a type; the generic one says nothing about a manifest.
        .filter(|t| t != "binary/octet-stream" && t != "application/octet-stream")
}

/// This replica's name in leases: host name, process id and a random suffix (two processes
/// on one host, or a restarted one, never share an id).
fn holder_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .unwrap_or_else(|| "replica".into());
    let mut r = [0u8; 4];
    let _ = getrandom::fill(&mut r);
    format!("{host}-{}-{}", std::process::id(), hex::encode(r))
}

#[cfg(test)]
mod tests;
