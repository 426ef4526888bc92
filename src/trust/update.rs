//! The update algorithm (`notary:client/tufclient.go`, `notary:tuf/builder.go`): root → timestamp → snapshot → targets → delegations, with
//! trust pinning, root rotation, rollback and expiry checks. Pure: the only input channel is the
//! [`MetadataSource`] trait; time is a parameter.
//!
//! Deviation from Notary, on purpose: Notary only downloads `root.json` when its cached root has
//! expired or the update fails; we fetch `root.json` on every update. That costs one request (which
//! servers cache for 5 minutes) and notices a rotated or replaced root at once. The root we end up
//! with is then hash-checked against `snapshot.meta.root` exactly as in Notary.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use crate::trust::error::TrustError;
use crate::trust::keys::{self, PublicKey};
use crate::trust::metadata::{
    self, Envelope, FileMeta, HashFailure, Root, Snapshot, Targets, Timestamp,
};
use crate::trust::metadata::{RELEASES, ROOT, SNAPSHOT, TARGETS, TIMESTAMP};
use crate::trust::pinning::TrustPinning;
use crate::trust::signature::{check_threshold, RoleKeys, ThresholdFailure};
use crate::trust::source::{FetchError, MemorySource, MetadataPath, MetadataSource};

/// `timestamp.json` size limit (Notary `MaxTimestampSize`).
pub const MAX_TIMESTAMP_SIZE: u64 = 1 << 20;
/// `root.json` size limit. Notary allows 100 MiB (`MaxDownloadSize`); a root with a few
/// certificates is a few KiB, so we cap at 10 MiB.
pub const MAX_ROOT_SIZE: u64 = 10 << 20;
/// Upper bound on the length a (signed) parent may announce for snapshot/targets/delegations;
/// the file must then be exactly that long.
pub const MAX_METADATA_SIZE: u64 = 100 << 20;
/// Most root versions we walk through in one rotation (bounds what a hostile server can make us
/// download: at most this many files of at most [`MAX_ROOT_SIZE`]). Notary has no bound.
pub const MAX_ROOT_ROTATIONS: u64 = 100;

/// Options for [`update`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyOptions {
    /// Trust anchors and TOFU switch.
    pub pinning: TrustPinning,
    /// Offline mirrors: accept an expired timestamp and snapshot for this long after they expired
    /// (signatures, hashes and the expiry of root, targets and delegations are still checked).
    pub expired_grace_for_timestamp_snapshot: Option<Duration>,
}

/// Bytes serialised as a base64 string in the persisted state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StoredBytes(pub Vec<u8>);

impl Serialize for StoredBytes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&B64.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for StoredBytes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        B64.decode(s.as_bytes())
            .map(StoredBytes)
            .map_err(serde::de::Error::custom)
    }
}

/// What the caller persists between updates: the pinned root and the highest version seen per role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustState {
    /// The repository.
    pub gun: String,
    /// Raw bytes of the trusted `root.json`.
    pub root: StoredBytes,
    /// Role → highest verified version (rollback protection).
    pub versions: BTreeMap<String, u64>,
    /// Last verified bytes per role (`timestamp`, `snapshot`, `targets`, delegations), so an offline
    /// caller can re-verify with [`TrustState::offline_source`].
    #[serde(default)]
    pub metadata: BTreeMap<String, StoredBytes>,
    /// Role → key IDs whose signatures were valid over the stored bytes.
    #[serde(default)]
    pub signers: BTreeMap<String, Vec<String>>,
}

impl TrustState {
    /// A source serving the stored files (root and last verified metadata).
    pub fn offline_source(&self) -> MemorySource {
        let mut m = MemorySource::new();
        m.insert("root.json", self.root.0.clone());
        for (role, b) in &self.metadata {
            m.insert(format!("{role}.json"), b.0.clone());
        }
        m
    }
}

/// A key that signed a role, with the ID `docker trust inspect` shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignerKey {
    /// Key ID as used in signatures.
    pub key_id: String,
    /// Canonical key ID (differs for x509 keys).
    pub canonical_id: String,
}

/// A verified targets role.
#[derive(Debug, Clone)]
pub struct VerifiedRole {
    /// Role name.
    pub name: String,
    /// Version.
    pub version: u64,
    /// Expiry.
    pub expires: OffsetDateTime,
    /// Keys with a valid signature over the file.
    pub signers: Vec<SignerKey>,
    /// Effective path prefixes (restricted by the parents); `None` = everything (`targets`).
    pub paths: Option<Vec<String>>,
    /// Targets as listed in the file (lookups apply `paths`).
    pub targets: BTreeMap<String, FileMeta>,
    /// Delegations declared by this role, in file order.
    pub delegations: Vec<String>,
}

impl VerifiedRole {
    /// Whether `name` is inside this role's paths.
    pub fn covers(&self, name: &str) -> bool {
        match &self.paths {
            None => true,
            Some(ps) => ps.iter().any(|p| name.starts_with(p.as_str())),
        }
    }
}

/// Result of a successful [`update`].
#[derive(Debug, Clone)]
pub struct VerifiedRepository {
    /// The repository.
    pub gun: String,
    /// State to persist and hand back next time.
    pub new_state: TrustState,
    /// Earliest expiry of the verified chain: do not cache the verdict longer.
    pub expires: OffsetDateTime,
    /// Root version.
    pub root_version: u64,
    /// Keys that signed root.
    pub root_signers: Vec<SignerKey>,
    /// Verified targets roles in verification order (`targets` first).
    pub roles: Vec<VerifiedRole>,
}

impl VerifiedRepository {
    /// A verified role by name.
    pub fn role(&self, name: &str) -> Option<&VerifiedRole> {
        self.roles.iter().find(|r| r.name == name)
    }
}

/// Format like Go's `"Mon Jan 2 15:04:05 MST 2006"` (in UTC).
pub fn go_time(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let wd = &t.weekday().to_string()[..3];
    let mo = &t.month().to_string()[..3];
    format!(
        "{wd} {mo} {} {:02}:{:02}:{:02} UTC {}",
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.year()
    )
}

pub(crate) fn go_time_unix(secs: i64) -> String {
    OffsetDateTime::from_unix_timestamp(secs)
        .map(go_time)
        .unwrap_or_else(|_| secs.to_string())
}

struct Ctx<'a, S> {
    source: &'a S,
    gun: &'a str,
    host: &'a str,
    now: OffsetDateTime,
    opts: &'a VerifyOptions,
}

enum RootFailure {
    Rotation(String),
    Other(TrustError),
}

impl From<TrustError> for RootFailure {
    fn from(e: TrustError) -> Self {
        RootFailure::Other(e)
    }
}

impl<S: MetadataSource> Ctx<'_, S> {
    fn malformed(&self, role: &str, reason: impl Into<String>) -> TrustError {
        TrustError::Malformed {
            gun: self.gun.into(),
            role: role.into(),
            reason: reason.into(),
        }
    }

    fn threshold_err(&self, role: &str, threshold: u32, f: ThresholdFailure) -> TrustError {
        let (gun, role) = (self.gun.to_string(), role.to_string());
        match f {
            ThresholdFailure::NoSignatures => TrustError::NoSignatures { gun, role },
            ThresholdFailure::BadThreshold => TrustError::Malformed {
                gun,
                role,
                reason: "threshold below 1".into(),
            },
            ThresholdFailure::KeyIdMismatch(key_id) => {
                TrustError::KeyIdMismatch { gun, role, key_id }
            }
            ThresholdFailure::UnsupportedMethod(method) => {
                TrustError::UnsupportedMethod { gun, role, method }
            }
            ThresholdFailure::UnsupportedKeyType { key_id, key_type } => {
                TrustError::UnsupportedKeyType {
                    gun,
                    role,
                    key_id,
                    key_type,
                }
            }
            ThresholdFailure::Threshold { valid } => TrustError::Threshold {
                gun,
                role,
                valid,
                threshold,
            },
        }
    }

    async fn fetch(&self, path: MetadataPath, max_len: u64) -> Result<Vec<u8>, TrustError> {
        let role = path.role().to_string();
        match self.source.fetch(&path, max_len).await {
            Ok(b) if b.len() as u64 > max_len => Err(TrustError::TooLarge {
                gun: self.gun.into(),
                role,
                limit: max_len,
            }),
            Ok(b) => Ok(b),
            // A 404 on any root file means the repository has no trust data (Notary LoadTUFRepo).
            Err(FetchError::NotFound) if role == ROOT => Err(TrustError::NoTrustData {
                gun: self.gun.into(),
                host: self.host.into(),
            }),
            Err(FetchError::NotFound) => Err(TrustError::MissingMetadata {
                gun: self.gun.into(),
                role,
            }),
            Err(FetchError::TooLarge { limit }) => Err(TrustError::TooLarge {
                gun: self.gun.into(),
                role,
                limit,
            }),
            Err(FetchError::Other { message }) => Err(TrustError::Fetch {
                gun: self.gun.into(),
                path: path.file_name(),
                message,
            }),
        }
    }

    /// Fetch a file whose length and hashes the (verified) parent announced.
    async fn fetch_checked(&self, role: &str, meta: &FileMeta) -> Result<Vec<u8>, TrustError> {
        if meta.length > MAX_METADATA_SIZE {
            return Err(TrustError::TooLarge {
                gun: self.gun.into(),
                role: role.into(),
                limit: MAX_METADATA_SIZE,
            });
        }
        let sha = meta
            .sha256()
            .ok_or_else(|| self.malformed(role, "parent meta has no sha256"))?;
        let path = MetadataPath::ByHash {
            role: role.into(),
            sha256: hex::encode(sha),
        };
        let bytes = self.fetch(path, meta.length).await?;
        self.check_file(role, &bytes, meta)?;
        Ok(bytes)
    }

    fn check_file(&self, role: &str, bytes: &[u8], meta: &FileMeta) -> Result<(), TrustError> {
        if bytes.len() as u64 != meta.length {
            return Err(TrustError::LengthMismatch {
                gun: self.gun.into(),
                role: role.into(),
                expected: meta.length,
                actual: bytes.len() as u64,
            });
        }
        metadata::check_hashes(bytes, meta).map_err(|f| match f {
            HashFailure::NoSupportedHash => {
                self.malformed(role, "no supported hash in parent meta")
            }
            HashFailure::Mismatch { alg, expected } => TrustError::HashMismatch {
                gun: self.gun.into(),
                role: role.into(),
                alg,
                expected,
            },
        })
    }

    fn envelope<'b>(&self, role: &str, bytes: &'b [u8]) -> Result<Envelope<'b>, TrustError> {
        metadata::parse_envelope(bytes).map_err(|e| self.malformed(role, e))
    }

    fn verify_sigs(
        &self,
        role: &str,
        env: &Envelope<'_>,
        key_ids: &[String],
        keys: &BTreeMap<String, PublicKey>,
        threshold: u32,
    ) -> Result<Vec<SignerKey>, TrustError> {
        let rk = RoleKeys {
            role,
            key_ids,
            keys,
            threshold,
        };
        let ids = check_threshold(&rk, &env.canonical, &env.signatures)
            .map_err(|f| self.threshold_err(role, threshold, f))?;
        Ok(signer_keys(&ids, keys))
    }

    /// Signature check, or reuse of the stored result: when the root is byte-identical to the
    /// pinned one, and the file and (for delegations) its parent are byte-identical to what was
    /// verified last time, the same keys sign the same bytes, so the stored signer list is the
    /// answer. Steady-state re-verification then costs no public-key operations. Hashes, parsing,
    /// versions and expiry are still checked in full.
    #[allow(clippy::too_many_arguments)]
    fn verify_or_reuse(
        &self,
        reuse: Option<&Vec<String>>,
        role: &str,
        env: &Envelope<'_>,
        key_ids: &[String],
        keys: &BTreeMap<String, PublicKey>,
        threshold: u32,
    ) -> Result<Vec<SignerKey>, TrustError> {
        match reuse {
            Some(ids)
                if ids.len() >= threshold as usize && ids.iter().all(|id| key_ids.contains(id)) =>
            {
                Ok(signer_keys(ids, keys))
            }
            _ => self.verify_sigs(role, env, key_ids, keys, threshold),
        }
    }

    /// Signatures of a base role (timestamp, snapshot, targets) against the keys and threshold
    /// the root gives it.
    fn verify_base_role(
        &self,
        root: &Root,
        role: &str,
        env: &Envelope<'_>,
        reuse: Option<&Vec<String>>,
    ) -> Result<Vec<SignerKey>, TrustError> {
        let (ids, thr) = base_role(root, role);
        self.verify_or_reuse(reuse, role, env, ids, &root.keys, thr)
    }

    fn check_version(
        &self,
        role: &str,
        found: u64,
        pinned: Option<&TrustState>,
    ) -> Result<(), TrustError> {
        let current = pinned
            .and_then(|s| s.versions.get(role))
            .copied()
            .unwrap_or(0);
        // Equal is allowed (Notary: version >= minVersion).
        if found < current {
            return Err(TrustError::Rollback {
                gun: self.gun.into(),
                role: role.into(),
                found,
                current,
            });
        }
        Ok(())
    }

    fn check_expiry(
        &self,
        role: &str,
        expires: OffsetDateTime,
        grace: Option<Duration>,
    ) -> Result<(), TrustError> {
        if expires >= self.now {
            return Ok(());
        }
        if let Some(g) = grace {
            // checked_add: a hostile `expires` near the end of time must not overflow.
            if expires.checked_add(g).is_some_and(|end| self.now <= end) {
                tracing::warn!(gun = self.gun, role, expired_at = %go_time(expires), "accepting expired metadata within the configured grace period");
                return Ok(());
            }
        }
        Err(TrustError::Expired {
            gun: self.gun.into(),
            role: role.into(),
            expired_at: go_time(expires),
        })
    }

    /// `ValidateRoot` (`notary:trustpinning/certs.go`). Returns the keys that validly signed the new root.
    fn validate_root(
        &self,
        prev: Option<&Root>,
        env: &Envelope<'_>,
        new: &Root,
        check_cert_expiry: bool,
        unchanged: bool,
    ) -> Result<Vec<SignerKey>, RootFailure> {
        let gun = self.gun;
        let role = new
            .role(ROOT)
            .ok_or_else(|| self.malformed(ROOT, "no root role"))?;
        // a/b: usable leaf certificates of the new root.
        let mut leaves = BTreeMap::new();
        let mut first_reason = None;
        for id in &role.key_ids {
            let Some(k) = new.keys.get(id) else { continue };
            match keys::check_root_leaf(k, gun, self.now, check_cert_expiry) {
                Ok(()) => {
                    leaves.insert(id.clone(), k.clone());
                }
                Err(e) => {
                    first_reason.get_or_insert(e);
                }
            }
        }
        if leaves.is_empty() {
            let reason = first_reason.unwrap_or_else(|| "root role has no keys".into());
            return Err(TrustError::InvalidRootCertificate {
                gun: gun.into(),
                reason,
            }
            .into());
        }
        // c: the previous root's threshold, with its certificates (expiry not checked). When the
        // served root is byte-for-byte the pinned one, its signatures were verified when it was
        // pinned and cannot have changed: only the certificate checks (a/b, d) are repeated.
        if let (Some(prev), false) = (prev, unchanged) {
            let prole = prev
                .role(ROOT)
                .ok_or_else(|| self.malformed(ROOT, "pinned root has no root role"))?;
            let pkeys: BTreeMap<String, PublicKey> = prole
                .key_ids
                .iter()
                .filter_map(|id| prev.keys.get(id).map(|k| (id.clone(), k.clone())))
                .filter(|(_, k)| keys::check_root_leaf(k, gun, self.now, false).is_ok())
                .collect();
            let rk = RoleKeys {
                role: ROOT,
                key_ids: &prole.key_ids,
                keys: &pkeys,
                threshold: prole.threshold,
            };
            if let Err(f) = check_threshold(&rk, &env.canonical, &env.signatures) {
                return Err(RootFailure::Rotation(format!(
                    "failed to validate data with current trusted certificates ({f:?})"
                )));
            }
        }
        // d: trust pinning.
        let Some(check) = self.opts.pinning.check_for(gun, prev.is_none()) else {
            return Err(TrustError::NotPinned { gun: gun.into() }.into());
        };
        let mut pin_reason = None;
        leaves.retain(|_, k| match check.accepts(k, self.now) {
            Ok(()) => true,
            Err(e) => {
                pin_reason.get_or_insert(e);
                false
            }
        });
        if leaves.is_empty() {
            let reason = pin_reason.unwrap_or_default();
            return Err(TrustError::PinMismatch {
                gun: gun.into(),
                reason,
            }
            .into());
        }
        // e: the new root's own threshold over the surviving certificates.
        if unchanged {
            let signed_by: Vec<String> = env
                .signatures
                .iter()
                .map(|sig| sig.keyid.clone())
                .filter(|id| leaves.contains_key(id))
                .collect();
            return Ok(signer_keys(&signed_by, &leaves));
        }
        Ok(self.verify_sigs(ROOT, env, &role.key_ids, &leaves, role.threshold)?)
    }

    async fn update(&self, pinned: Option<&TrustState>) -> Result<VerifiedRepository, TrustError> {
        let gun = self.gun;
        // The trusted previous root (expiry ignored; it was fully validated when it was pinned).
        let trusted = match pinned {
            None => None,
            Some(st) => {
                let bad = |reason: String| TrustError::BadPinnedState {
                    gun: gun.into(),
                    reason,
                };
                if st.gun != gun {
                    return Err(bad(format!("state belongs to {}", st.gun)));
                }
                let env = metadata::parse_envelope(&st.root.0).map_err(bad)?;
                let root = Root::from_envelope(&env).map_err(bad)?;
                Some(root)
            }
        };

        // 1. root
        let root_bytes = self.fetch(MetadataPath::Root, MAX_ROOT_SIZE).await?;
        let root_env = self.envelope(ROOT, &root_bytes)?;
        let root = Root::from_envelope(&root_env).map_err(|e| self.malformed(ROOT, e))?;
        let unchanged = pinned.is_some_and(|st| st.root.0 == root_bytes);
        let root_signers =
            match self.validate_root(trusted.as_ref(), &root_env, &root, true, unchanged) {
                Ok(s) => s,
                Err(RootFailure::Other(e)) => return Err(e),
                Err(RootFailure::Rotation(reason)) => {
                    let Some(prev) = trusted.as_ref() else {
                        return Err(self.malformed(ROOT, reason));
                    };
                    self.rotate(prev, &root_env, &root, reason).await?
                }
            };
        self.check_version(ROOT, root.common.version, pinned)?;
        // Whether `role`'s bytes are what was verified last time under this same root.
        let reusable = |role: &str, bytes: &[u8]| -> Option<&Vec<String>> {
            let st = pinned.filter(|_| unchanged)?;
            (st.metadata.get(role)?.0 == bytes)
                .then(|| st.signers.get(role))
                .flatten()
        };
        let mut new_signers: BTreeMap<String, Vec<String>> = BTreeMap::new();
        self.check_expiry(ROOT, root.common.expires, None)?;
        let mut expires = root.common.expires;

        // 2. timestamp
        let ts_bytes = match self
            .fetch(MetadataPath::Timestamp, MAX_TIMESTAMP_SIZE)
            .await
        {
            Ok(b) => b,
            // Notary (`tufclient.go` downloadTimestamp): on 404 or a transport/server failure, fall
            // back to the cached timestamp, which is then verified like a fresh one (signatures,
            // version, expiry).
            Err(e @ (TrustError::MissingMetadata { .. } | TrustError::Fetch { .. })) => {
                match pinned.and_then(|st| st.metadata.get(TIMESTAMP)) {
                    Some(cached) => {
                        tracing::warn!(gun, error = %e, "Error while downloading remote metadata, using cached timestamp - this might not be the latest version available remotely");
                        cached.0.clone()
                    }
                    None => return Err(e),
                }
            }
            Err(e) => return Err(e),
        };
        let ts_env = self.envelope(TIMESTAMP, &ts_bytes)?;
        let signers =
            self.verify_base_role(&root, TIMESTAMP, &ts_env, reusable(TIMESTAMP, &ts_bytes))?;
        new_signers.insert(TIMESTAMP.into(), key_ids_of(&signers));
        let ts = Timestamp::from_envelope(&ts_env).map_err(|e| self.malformed(TIMESTAMP, e))?;
        self.check_version(TIMESTAMP, ts.common.version, pinned)?;
        let grace = self.opts.expired_grace_for_timestamp_snapshot;
        self.check_expiry(TIMESTAMP, ts.common.expires, grace)?;
        expires = expires.min(ts.common.expires);

        // 3. snapshot
        let snap_bytes = self.fetch_checked(SNAPSHOT, &ts.snapshot).await?;
        let snap_env = self.envelope(SNAPSHOT, &snap_bytes)?;
        let signers =
            self.verify_base_role(&root, SNAPSHOT, &snap_env, reusable(SNAPSHOT, &snap_bytes))?;
        new_signers.insert(SNAPSHOT.into(), key_ids_of(&signers));
        let snap = Snapshot::from_envelope(&snap_env).map_err(|e| self.malformed(SNAPSHOT, e))?;
        self.check_version(SNAPSHOT, snap.common.version, pinned)?;
        self.check_expiry(SNAPSHOT, snap.common.expires, grace)?;
        expires = expires.min(snap.common.expires);
        // The root we use must be the one the snapshot describes.
        if let Some(m) = snap.meta.get(ROOT) {
            self.check_file(ROOT, &root_bytes, m)?;
        }

        // 4. targets
        let tmeta = snap
            .meta
            .get(TARGETS)
            .ok_or_else(|| self.malformed(SNAPSHOT, "no targets meta"))?;
        let t_bytes = self.fetch_checked(TARGETS, tmeta).await?;
        let t_env = self.envelope(TARGETS, &t_bytes)?;
        let t_reuse = reusable(TARGETS, &t_bytes);
        let signers = self.verify_base_role(&root, TARGETS, &t_env, t_reuse)?;
        new_signers.insert(TARGETS.into(), key_ids_of(&signers));
        let targets =
            Targets::from_envelope(&t_env, TARGETS).map_err(|e| self.malformed(TARGETS, e))?;
        self.check_version(TARGETS, targets.common.version, pinned)?;
        self.check_expiry(TARGETS, targets.common.expires, None)?;
        expires = expires.min(targets.common.expires);

        let mut new_versions: BTreeMap<String, u64> =
            pinned.map(|s| s.versions.clone()).unwrap_or_default();
        let mut set_version = |role: &str, v: u64| {
            let e = new_versions.entry(role.to_string()).or_insert(v);
            *e = (*e).max(v);
        };
        set_version(ROOT, root.common.version);
        set_version(TIMESTAMP, ts.common.version);
        set_version(SNAPSHOT, snap.common.version);
        set_version(TARGETS, targets.common.version);
        let mut stored = BTreeMap::new();
        stored.insert(TIMESTAMP.to_string(), StoredBytes(ts_bytes));
        stored.insert(SNAPSHOT.to_string(), StoredBytes(snap_bytes));
        stored.insert(TARGETS.to_string(), StoredBytes(t_bytes));

        // 5. delegations, depth first (children before siblings), only roles listed in snapshot.
        let mut targets = targets;
        let mut roles = vec![verified_role(TARGETS, &mut targets, signers, None)];
        let mut parsed: Vec<Targets> = vec![targets];
        // Per parsed file: whether it was byte-identical to the last verified copy (see verify_or_reuse).
        let mut same_as_before: Vec<bool> = vec![t_reuse.is_some()];
        // (index of the parent in `parsed`, delegation role definition)
        let mut stack: Vec<(usize, usize)> = (0..parsed[0].delegations.len())
            .rev()
            .map(|i| (0, i))
            .collect();
        while let Some((pi, di)) = stack.pop() {
            let def = parsed[pi].delegations[di].clone();
            let name = def.name.clone();
            let Some(meta) = snap.meta.get(&name) else {
                tracing::debug!(gun, role = %name, "delegation not in snapshot; skipped");
                continue;
            };
            let bytes = self.fetch_checked(&name, meta).await?;
            let env = self.envelope(&name, &bytes)?;
            let reuse = if same_as_before[pi] {
                reusable(&name, &bytes)
            } else {
                None
            };
            let is_same = reuse.is_some();
            let signers = match self.verify_or_reuse(
                reuse,
                &name,
                &env,
                &def.key_ids,
                &parsed[pi].delegation_keys,
                def.threshold,
            ) {
                Ok(s) => s,
                Err(
                    e @ (TrustError::Threshold { .. }
                    | TrustError::NoSignatures { .. }
                    | TrustError::UnsupportedMethod { .. }
                    | TrustError::UnsupportedKeyType { .. }),
                ) => {
                    tracing::warn!(gun, role = %name, error = %e, "dropping delegation");
                    continue;
                }
                Err(e) => return Err(e),
            };
            let mut t =
                Targets::from_envelope(&env, &name).map_err(|e| self.malformed(&name, e))?;
            self.check_version(&name, t.common.version, pinned)?;
            if let Err(e) = self.check_expiry(&name, t.common.expires, None) {
                tracing::warn!(gun, role = %name, error = %e, "dropping delegation");
                continue;
            }
            expires = expires.min(t.common.expires);
            // RestrictDelegationPathPrefixes: keep child paths inside one of the parent's.
            // roles[pi] is the parent (roles and parsed are pushed together).
            let paths: Vec<String> = def
                .paths
                .iter()
                .filter(|p| roles[pi].covers(p))
                .cloned()
                .collect();
            set_version(&name, t.common.version);
            stored.insert(name.clone(), StoredBytes(bytes));
            new_signers.insert(
                name.clone(),
                signers.iter().map(|k| k.key_id.clone()).collect(),
            );
            roles.push(verified_role(&name, &mut t, signers, Some(paths)));
            let idx = parsed.len();
            stack.extend((0..t.delegations.len()).rev().map(|i| (idx, i)));
            parsed.push(t);
            same_as_before.push(is_same);
        }

        Ok(VerifiedRepository {
            gun: gun.into(),
            new_state: TrustState {
                gun: gun.into(),
                root: StoredBytes(root_bytes),
                versions: new_versions,
                metadata: stored,
                signers: new_signers,
            },
            expires,
            root_version: root.common.version,
            root_signers,
            roles,
        })
    }

    /// Root rotation: walk `<v>.root.json` from the trusted version + 1, each validated against its
    /// predecessor (expiry allowed), then the newest against the last one.
    async fn rotate(
        &self,
        prev: &Root,
        env: &Envelope<'_>,
        new: &Root,
        reason: String,
    ) -> Result<Vec<SignerKey>, TrustError> {
        let mismatch = |reason: String| TrustError::RootMismatch {
            gun: self.gun.into(),
            reason,
        };
        let (from, to) = (prev.common.version, new.common.version);
        if to < from {
            // Not signed by the pinned root's keys, so not an older version of the pinned root
            // (that verifies and then fails the version check as a rollback): a different root,
            // typically trust data deleted and re-created, which restarts at version 1 or 2.
            // Notary validates the root's keys before its version, too.
            return Err(mismatch(format!(
                "{reason}; its version {to} is also lower than the pinned version {from}"
            )));
        }
        if to <= from + 1 {
            return Err(mismatch(reason));
        }
        if to - from > MAX_ROOT_ROTATIONS {
            return Err(mismatch(format!(
                "too many root versions between {from} and {to}"
            )));
        }
        let mut cur = prev.clone();
        for v in from + 1..to {
            let bytes = match self
                .fetch(MetadataPath::RootVersion(v), MAX_ROOT_SIZE)
                .await
            {
                Err(TrustError::NoTrustData { .. }) => {
                    return Err(mismatch(format!(
                        "{reason}; {v}.root.json is not available to rotate through"
                    )))
                }
                r => r?,
            };
            let venv = self.envelope(ROOT, &bytes)?;
            let vroot = Root::from_envelope(&venv).map_err(|e| self.malformed(ROOT, e))?;
            if vroot.common.version != v {
                return Err(self.malformed(
                    ROOT,
                    format!("{v}.root.json has version {}", vroot.common.version),
                ));
            }
            match self.validate_root(Some(&cur), &venv, &vroot, false, false) {
                Ok(_) => cur = vroot,
                Err(RootFailure::Rotation(r)) => {
                    return Err(mismatch(format!("root version {v}: {r}")))
                }
                Err(RootFailure::Other(e)) => return Err(e),
            }
        }
        match self.validate_root(Some(&cur), env, new, true, false) {
            Ok(s) => Ok(s),
            Err(RootFailure::Rotation(r)) => Err(mismatch(format!("root version {to}: {r}"))),
            Err(RootFailure::Other(e)) => Err(e),
        }
    }
}

fn base_role<'r>(root: &'r Root, name: &str) -> (&'r [String], u32) {
    // Root::from_signed guarantees the four base roles exist.
    root.role(name)
        .map(|r| (r.key_ids.as_slice(), r.threshold))
        .unwrap_or((&[], 1))
}

fn key_ids_of(signers: &[SignerKey]) -> Vec<String> {
    signers.iter().map(|k| k.key_id.clone()).collect()
}

fn signer_keys(ids: &[String], keys: &BTreeMap<String, PublicKey>) -> Vec<SignerKey> {
    ids.iter()
        .map(|id| SignerKey {
            key_id: id.clone(),
            canonical_id: keys
                .get(id)
                .map(PublicKey::canonical_id)
                .unwrap_or_else(|| id.clone()),
        })
        .collect()
}

fn verified_role(
    name: &str,
    t: &mut Targets,
    signers: Vec<SignerKey>,
    paths: Option<Vec<String>>,
) -> VerifiedRole {
    VerifiedRole {
        name: name.into(),
        version: t.common.version,
        expires: t.common.expires,
        signers,
        paths,
        // Moved out: the parsed file is only kept for its delegation keys and roles.
        targets: std::mem::take(&mut t.targets),
        delegations: t.delegations.iter().map(|d| d.name.clone()).collect(),
    }
}

/// Run the update algorithm for `gun` against `source`.
///
/// `host` is the Notary server's `host[:port]` (for the no-trust-data message); `pinned` is the
/// state returned by the previous successful update (`None` = first contact: pinning/TOFU decide);
/// `now` is the time every expiry is checked against.
pub async fn update<S: MetadataSource>(
    source: &S,
    gun: &str,
    host: &str,
    pinned: Option<&TrustState>,
    now: OffsetDateTime,
    opts: &VerifyOptions,
) -> Result<VerifiedRepository, TrustError> {
    let ctx = Ctx {
        source,
        gun,
        host,
        now,
        opts,
    };
    ctx.update(pinned).await
}

/// Whether `name` is `targets/releases` or inside its subtree.
pub(crate) fn in_releases_subtree(name: &str) -> bool {
    name == RELEASES
        || name
            .strip_prefix(RELEASES)
            .is_some_and(|r| r.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn go_time_format() {
        assert_eq!(
            go_time(datetime!(2030-01-01 00:00:00 UTC)),
            "Tue Jan 1 00:00:00 UTC 2030"
        );
        assert_eq!(
            go_time(datetime!(2116-07-03 17:56:36 -5)),
            "Fri Jul 3 22:56:36 UTC 2116"
        );
    }

    #[test]
    fn releases_subtree() {
        assert!(in_releases_subtree("targets/releases"));
        assert!(in_releases_subtree("targets/releases/x"));
        assert!(!in_releases_subtree("targets/releasesx"));
    }
}
