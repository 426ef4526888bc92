//! Notary's TUF metadata as Notary writes it (`notary:tuf/data/{root,targets,snapshot,timestamp}.go`): the signed envelope and the Root,
//! Timestamp, Snapshot and Targets (incl. delegated targets) roles.
//!
//! The raw bytes of every file are kept by the caller and hashed as they came; only the `signed`
//! value is canonicalised (for signatures). Nothing is ever re-serialised for hashing.

use std::borrow::Cow;
use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::trust::canonical;
use crate::trust::keys::{KeyJson, PublicKey};
use crate::trust::signature::SignatureJson;

/// Base role names.
pub const ROOT: &str = "root";
/// Targets role.
pub const TARGETS: &str = "targets";
/// Snapshot role.
pub const SNAPSHOT: &str = "snapshot";
/// Timestamp role.
pub const TIMESTAMP: &str = "timestamp";
/// Docker's release delegation.
pub const RELEASES: &str = "targets/releases";

/// A parsed envelope: the `signed` member, its canonical bytes (what signatures cover) and the
/// signatures.
#[derive(Debug, Clone)]
pub struct Envelope<'a> {
    signed: SignedRepr<'a>,
    /// Canonical JSON of `signed` ([`crate::trust::canonical`]). Borrowed from the input when it was already canonical.
    pub canonical: Cow<'a, [u8]>,
    /// The `signatures` list.
    pub signatures: Vec<SignatureJson>,
}

#[derive(Debug, Clone)]
enum SignedRepr<'a> {
    /// The raw `signed` bytes, already canonical.
    Raw(&'a [u8]),
    /// A decoded value (input was not canonical).
    Value(Value),
}

impl Envelope<'_> {
    /// The `signed` member as a JSON value.
    pub fn signed_value(&self) -> Result<Value, String> {
        match &self.signed {
            SignedRepr::Raw(b) => serde_json::from_slice(b).map_err(|e| e.to_string()),
            SignedRepr::Value(v) => Ok(v.clone()),
        }
    }

    fn decode<T: serde::de::DeserializeOwned>(&self) -> Result<T, String> {
        match &self.signed {
            // Canonical bytes have no duplicate keys, so this is the same as decoding the value.
            SignedRepr::Raw(b) => serde_json::from_slice(b).map_err(|e| e.to_string()),
            SignedRepr::Value(v) => from_value(v.clone()),
        }
    }
}

/// Parse `{"signed": …, "signatures": […]}`. When Notary wrote `signed` canonically (always, in
/// practice) the wire bytes are used as the signed bytes without building a JSON tree; otherwise
/// the value is decoded and canonicalised ([`crate::trust::canonical`]).
pub fn parse_envelope(bytes: &[u8]) -> Result<Envelope<'_>, String> {
    if let Some((signed, sigs)) = canonical::split_envelope(bytes) {
        let raw = &bytes[signed];
        if raw.first() == Some(&b'{') {
            let signatures = match sigs.map(|r| &bytes[r]) {
                None | Some(b"null") => Vec::new(),
                Some(s) => {
                    serde_json::from_slice(s).map_err(|e| format!("bad \"signatures\": {e}"))?
                }
            };
            return Ok(Envelope {
                signed: SignedRepr::Raw(raw),
                canonical: Cow::Borrowed(raw),
                signatures,
            });
        }
    }
    let value = canonical::parse(bytes).map_err(|e| e.to_string())?;
    let Value::Object(mut obj) = value else {
        return Err("metadata is not a JSON object".into());
    };
    let signed = obj
        .remove("signed")
        .ok_or("metadata has no \"signed\" member")?;
    if !signed.is_object() {
        return Err("\"signed\" is not an object".into());
    }
    let signatures = match obj.remove("signatures") {
        None | Some(Value::Null) => Vec::new(),
        Some(v) => serde_json::from_value(v).map_err(|e| format!("bad \"signatures\": {e}"))?,
    };
    let canonical = canonical::canonicalize(&signed).map_err(|e| e.to_string())?;
    Ok(Envelope {
        signed: SignedRepr::Value(signed),
        canonical: Cow::Owned(canonical),
        signatures,
    })
}

/// Fields common to every role (`SignedCommon`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Common {
    /// `_type`.
    pub type_: String,
    /// `version` (≥ 1).
    pub version: u64,
    /// `expires`.
    pub expires: OffsetDateTime,
}

/// Hashes and length of a file (`FileMeta`). Hashes are raw digest bytes (base64 on the wire).
/// Only the algorithms Notary supports are kept (`sha256`, `sha512`); others are ignored, as in
/// Notary.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "FileMetaJson")]
pub struct FileMeta {
    /// Length in bytes.
    pub length: u64,
    /// sha256 digest, if listed.
    pub sha256: Option<[u8; 32]>,
    /// sha512 digest, if listed.
    pub sha512: Option<[u8; 64]>,
    /// The optional `custom` member.
    pub custom: Option<Value>,
}

impl FileMeta {
    /// The sha256 digest, when present.
    pub fn sha256(&self) -> Option<[u8; 32]> {
        self.sha256
    }
}

/// `hashes` decoded without intermediate allocations (10,000-target files are common).
#[derive(Default)]
struct HashesJson {
    sha256: Option<[u8; 32]>,
    sha512: Option<[u8; 64]>,
}

struct Digest64<const N: usize>([u8; N]);

impl<'de, const N: usize> Deserialize<'de> for Digest64<N> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<const N: usize>;
        impl<const N: usize> serde::de::Visitor<'_> for V<N> {
            type Value = Digest64<N>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "a base64 digest of {N} bytes")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                let mut buf = [0u8; 96];
                let n = B64
                    .decode_slice(v.as_bytes(), &mut buf)
                    .map_err(|e| E::custom(format!("hash is not base64: {e}")))?;
                if n != N {
                    return Err(E::custom(format!("hash has {n} bytes, expected {N}")));
                }
                let mut out = [0u8; N];
                out.copy_from_slice(&buf[..N]);
                Ok(Digest64(out))
            }
        }
        d.deserialize_str(V::<N>)
    }
}

impl<'de> Deserialize<'de> for HashesJson {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(rename_all = "lowercase")]
        enum Alg {
            Sha256,
            Sha512,
            #[serde(other)]
            Other,
        }
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = HashesJson;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a map of hashes")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<HashesJson, A::Error> {
                let mut h = HashesJson::default();
                while let Some(alg) = map.next_key::<Alg>()? {
                    match alg {
                        Alg::Sha256 => h.sha256 = Some(map.next_value::<Digest64<32>>()?.0),
                        Alg::Sha512 => h.sha512 = Some(map.next_value::<Digest64<64>>()?.0),
                        Alg::Other => {
                            map.next_value::<serde::de::IgnoredAny>()?;
                        }
                    }
                }
                Ok(h)
            }
        }
        d.deserialize_map(V)
    }
}

/// A role's keys and threshold in root, or a delegation in a targets file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleDef {
    /// Role name.
    pub name: String,
    /// Allowed key IDs.
    pub key_ids: Vec<String>,
    /// Threshold.
    pub threshold: u32,
    /// Path prefixes (delegations only; `[""]` = everything).
    pub paths: Vec<String>,
}

/// `root.json`.
#[derive(Debug, Clone)]
pub struct Root {
    /// Common fields.
    pub common: Common,
    /// Keys by the ID they are listed under.
    pub keys: BTreeMap<String, PublicKey>,
    /// The four base roles.
    pub roles: BTreeMap<String, RoleDef>,
}

/// `timestamp.json`.
#[derive(Debug, Clone)]
pub struct Timestamp {
    /// Common fields.
    pub common: Common,
    /// `meta.snapshot`.
    pub snapshot: FileMeta,
}

/// `snapshot.json`.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Common fields.
    pub common: Common,
    /// Role name → file meta.
    pub meta: BTreeMap<String, FileMeta>,
}

/// `targets.json` or a delegation file.
#[derive(Debug, Clone)]
pub struct Targets {
    /// Common fields.
    pub common: Common,
    /// Target name (the tag) → meta.
    pub targets: BTreeMap<String, FileMeta>,
    /// `delegations.keys`.
    pub delegation_keys: BTreeMap<String, PublicKey>,
    /// `delegations.roles`, in file order.
    pub delegations: Vec<RoleDef>,
}

#[derive(Deserialize)]
struct CommonJson {
    #[serde(rename = "_type")]
    type_: String,
    version: i64,
    expires: String,
}

#[derive(Deserialize)]
struct FileMetaJson {
    #[serde(default)]
    hashes: HashesJson,
    length: i64,
    #[serde(default)]
    custom: Option<Value>,
}

#[derive(Deserialize)]
struct RoleJson {
    #[serde(default)]
    name: String,
    #[serde(default)]
    keyids: Vec<String>,
    threshold: i64,
    #[serde(default)]
    paths: Vec<String>,
}

#[derive(Deserialize)]
struct RootJson {
    #[serde(rename = "_type")]
    type_: String,
    version: i64,
    expires: String,
    keys: BTreeMap<String, KeyJson>,
    roles: BTreeMap<String, RoleJson>,
}

#[derive(Deserialize)]
struct MetaJson {
    #[serde(rename = "_type")]
    type_: String,
    version: i64,
    expires: String,
    meta: BTreeMap<String, FileMeta>,
}

#[derive(Deserialize, Default)]
struct DelegationsJson {
    #[serde(default)]
    keys: BTreeMap<String, KeyJson>,
    #[serde(default)]
    roles: Vec<RoleJson>,
}

#[derive(Deserialize)]
struct TargetsJson {
    #[serde(rename = "_type")]
    type_: String,
    version: i64,
    expires: String,
    #[serde(default)]
    targets: BTreeMap<String, FileMeta>,
    #[serde(default)]
    delegations: DelegationsJson,
}

/// Parse an RFC 3339 time as Go's `time.Time` JSON (fractional seconds and any offset).
pub fn parse_time(s: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(s, &Rfc3339).map_err(|e| format!("bad time {s:?}: {e}"))
}

fn common(c: CommonJson, want: &str) -> Result<Common, String> {
    if c.type_ != want {
        return Err(format!("_type is {:?}, expected {want:?}", c.type_));
    }
    if c.version < 1 {
        return Err(format!("version {} is below 1", c.version));
    }
    Ok(Common {
        type_: c.type_,
        version: c.version as u64,
        expires: parse_time(&c.expires)?,
    })
}

impl TryFrom<FileMetaJson> for FileMeta {
    type Error = String;
    fn try_from(m: FileMetaJson) -> Result<FileMeta, String> {
        if m.length < 0 {
            return Err("negative length".into());
        }
        Ok(FileMeta {
            length: m.length as u64,
            sha256: m.hashes.sha256,
            sha512: m.hashes.sha512,
            custom: m.custom,
        })
    }
}

fn keys(k: BTreeMap<String, KeyJson>) -> Result<BTreeMap<String, PublicKey>, String> {
    k.into_iter()
        .map(|(id, j)| Ok((id, PublicKey::from_json(&j)?)))
        .collect()
}

fn role_def(name: String, r: RoleJson) -> Result<RoleDef, String> {
    if r.threshold < 1 || r.threshold > u32::MAX as i64 {
        return Err(format!("role {name} has invalid threshold {}", r.threshold));
    }
    Ok(RoleDef {
        name,
        key_ids: r.keyids,
        threshold: r.threshold as u32,
        paths: r.paths,
    })
}

fn from_value<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, String> {
    serde_json::from_value(v).map_err(|e| e.to_string())
}

impl Root {
    /// Parse and check structure: all four base roles, thresholds ≥ 1, key IDs present in `keys`.
    pub fn from_signed(v: Value) -> Result<Root, String> {
        Self::from_json(from_value(v)?)
    }

    /// Parse the `signed` member of an envelope.
    pub fn from_envelope(env: &Envelope<'_>) -> Result<Root, String> {
        Self::from_json(env.decode()?)
    }

    fn from_json(j: RootJson) -> Result<Root, String> {
        let common = common(
            CommonJson {
                type_: j.type_,
                version: j.version,
                expires: j.expires,
            },
            "Root",
        )?;
        let keys = keys(j.keys)?;
        let mut roles = BTreeMap::new();
        for (name, r) in j.roles {
            let def = role_def(name.clone(), r)?;
            if let Some(missing) = def.key_ids.iter().find(|k| !keys.contains_key(*k)) {
                return Err(format!(
                    "role {name} lists key {missing} which is not in keys"
                ));
            }
            roles.insert(name, def);
        }
        for base in [ROOT, TARGETS, SNAPSHOT, TIMESTAMP] {
            if !roles.contains_key(base) {
                return Err(format!("root does not define the {base} role"));
            }
        }
        Ok(Root {
            common,
            keys,
            roles,
        })
    }

    /// The role definition of a base role (present after parsing).
    pub fn role(&self, name: &str) -> Option<&RoleDef> {
        self.roles.get(name)
    }
}

impl Timestamp {
    /// Parse; `meta.snapshot` with sha256 is required.
    pub fn from_signed(v: Value) -> Result<Timestamp, String> {
        Self::from_json(from_value(v)?)
    }

    /// Parse the `signed` member of an envelope.
    pub fn from_envelope(env: &Envelope<'_>) -> Result<Timestamp, String> {
        Self::from_json(env.decode()?)
    }

    fn from_json(j: MetaJson) -> Result<Timestamp, String> {
        let common = common(
            CommonJson {
                type_: j.type_,
                version: j.version,
                expires: j.expires,
            },
            "Timestamp",
        )?;
        let mut meta = j.meta;
        let snapshot = meta
            .remove(SNAPSHOT)
            .ok_or("timestamp has no snapshot meta")?;
        // Other entries are ignored, as in Notary's isValidTimestampStructure.
        if snapshot.sha256().is_none() {
            return Err("timestamp's snapshot meta has no sha256".into());
        }
        Ok(Timestamp { common, snapshot })
    }
}

impl Snapshot {
    /// Parse; `root` and `targets` entries with sha256 are required.
    pub fn from_signed(v: Value) -> Result<Snapshot, String> {
        Self::from_json(from_value(v)?)
    }

    /// Parse the `signed` member of an envelope.
    pub fn from_envelope(env: &Envelope<'_>) -> Result<Snapshot, String> {
        Self::from_json(env.decode()?)
    }

    fn from_json(j: MetaJson) -> Result<Snapshot, String> {
        let common = common(
            CommonJson {
                type_: j.type_,
                version: j.version,
                expires: j.expires,
            },
            "Snapshot",
        )?;
        let meta = j.meta;
        for base in [ROOT, TARGETS] {
            match meta.get(base) {
                Some(m) if m.sha256().is_some() => {}
                _ => return Err(format!("snapshot has no sha256 meta for {base}")),
            }
        }
        Ok(Snapshot { common, meta })
    }
}

/// Notary's `IsDelegation`: `targets/…`, `^[-a-z0-9_/]+$`, < 256 bytes, already clean.
pub fn is_delegation_name(name: &str) -> bool {
    name.len() < 256
        && name.starts_with("targets/")
        && name
            .bytes()
            .all(|b| matches!(b, b'-' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'/'))
        && name.split('/').all(|seg| !seg.is_empty())
}

impl Targets {
    /// Parse a targets file of role `role`; delegations must be valid direct children.
    pub fn from_signed(v: Value, role: &str) -> Result<Targets, String> {
        Self::from_json(from_value(v)?, role)
    }

    /// Parse the `signed` member of an envelope of role `role`.
    pub fn from_envelope(env: &Envelope<'_>, role: &str) -> Result<Targets, String> {
        Self::from_json(env.decode()?, role)
    }

    fn from_json(j: TargetsJson, role: &str) -> Result<Targets, String> {
        let common = common(
            CommonJson {
                type_: j.type_,
                version: j.version,
                expires: j.expires,
            },
            "Targets",
        )?;
        let targets = j.targets;
        let delegation_keys = keys(j.delegations.keys)?;
        let mut delegations = Vec::with_capacity(j.delegations.roles.len());
        for r in j.delegations.roles {
            let name = r.name.clone();
            if !is_delegation_name(&name) || name.rsplit_once('/').map(|(p, _)| p) != Some(role) {
                return Err(format!("{name:?} is not a valid delegation of {role}"));
            }
            let def = role_def(name, r)?;
            if let Some(missing) = def
                .key_ids
                .iter()
                .find(|k| !delegation_keys.contains_key(*k))
            {
                return Err(format!(
                    "delegation {} lists key {missing} which is not in delegations.keys",
                    def.name
                ));
            }
            delegations.push(def);
        }
        Ok(Targets {
            common,
            targets,
            delegation_keys,
            delegations,
        })
    }
}

/// Why a hash check failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashFailure {
    /// Parent meta lists no supported hash.
    NoSupportedHash,
    /// `alg` did not match; expected digest in hex.
    Mismatch { alg: String, expected: String },
}

/// Every supported hash in `meta` must match (constant time); at least one must exist.
pub fn check_hashes(bytes: &[u8], meta: &FileMeta) -> Result<(), HashFailure> {
    if meta.sha256.is_none() && meta.sha512.is_none() {
        return Err(HashFailure::NoSupportedHash);
    }
    if let Some(want) = &meta.sha256 {
        if !bool::from(Sha256::digest(bytes)[..].ct_eq(&want[..])) {
            return Err(HashFailure::Mismatch {
                alg: "sha256".into(),
                expected: hex::encode(want),
            });
        }
    }
    if let Some(want) = &meta.sha512 {
        if !bool::from(Sha512::digest(bytes)[..].ct_eq(&want[..])) {
            return Err(HashFailure::Mismatch {
                alg: "sha512".into(),
                expected: hex::encode(want),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delegation_names() {
        assert!(is_delegation_name("targets/releases"));
        assert!(is_delegation_name("targets/a/b-c_d"));
        assert!(!is_delegation_name("targets/"));
        assert!(!is_delegation_name("targets//x"));
        assert!(!is_delegation_name("targets/X"));
        assert!(!is_delegation_name("other/x"));
    }

    #[test]
    fn go_times_parse() {
        assert!(parse_time("2116-07-03T17:56:36.027379879-05:00").is_ok());
        assert!(parse_time("2116-07-03T23:08:08.447842546Z").is_ok());
        assert!(parse_time("2030-01-01T00:00:00Z").is_ok());
    }

    #[test]
    fn envelope_requires_signed_object() {
        assert!(parse_envelope(b"{}").is_err());
        assert!(parse_envelope(br#"{"signed":1,"signatures":[]}"#).is_err());
        let e = parse_envelope(br#"{"signed":{"b":1,"a":2},"signatures":null}"#).unwrap();
        assert_eq!(&*e.canonical, br#"{"a":2,"b":1}"#);
        // Canonical input is used as is (fast path) and decodes the same.
        let e = parse_envelope(br#"{"signed":{"a":2,"b":1},"signatures":[]}"#).unwrap();
        assert!(matches!(e.canonical, Cow::Borrowed(_)));
        assert_eq!(e.signed_value().unwrap(), serde_json::json!({"a":2,"b":1}));
        assert!(e.signatures.is_empty());
    }

    fn root_json(roles: serde_json::Value) -> Value {
        serde_json::json!({"_type":"Root","expires":"2030-01-01T00:00:00Z","version":1,"consistent_snapshot":false,
            "keys":{"k":{"keytype":"ed25519","keyval":{"private":null,"public":"11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="}}},
            "roles": roles})
    }

    #[test]
    fn root_structure() {
        let r = |t: i64| serde_json::json!({"keyids":["k"],"threshold":t});
        let all = serde_json::json!({"root":r(1),"targets":r(1),"snapshot":r(1),"timestamp":r(1)});
        assert!(Root::from_signed(root_json(all)).is_ok());
        let missing = serde_json::json!({"root":r(1),"targets":r(1),"snapshot":r(1)});
        assert!(Root::from_signed(root_json(missing))
            .unwrap_err()
            .contains("timestamp"));
        let zero = serde_json::json!({"root":r(0),"targets":r(1),"snapshot":r(1),"timestamp":r(1)});
        assert!(Root::from_signed(root_json(zero))
            .unwrap_err()
            .contains("threshold"));
        let unknown_key = serde_json::json!({"root":{"keyids":["nope"],"threshold":1},"targets":r(1),"snapshot":r(1),"timestamp":r(1)});
        assert!(Root::from_signed(root_json(unknown_key))
            .unwrap_err()
            .contains("not in keys"));
        let mut wrong_type = root_json(all_roles());
        wrong_type["_type"] = "Targets".into();
        assert!(Root::from_signed(wrong_type).is_err());
    }

    fn all_roles() -> serde_json::Value {
        let r = serde_json::json!({"keyids":["k"],"threshold":1});
        serde_json::json!({"root":r,"targets":r,"snapshot":r,"timestamp":r})
    }

    #[test]
    fn targets_structure() {
        let t = |name: &str| {
            serde_json::json!({"_type":"Targets","expires":"2030-01-01T00:00:00Z","version":1,"targets":{},
            "delegations":{"keys":{},"roles":[{"name":name,"keyids":[],"threshold":1,"paths":[""]}]}})
        };
        assert!(Targets::from_signed(t("targets/releases"), "targets").is_ok());
        assert!(
            Targets::from_signed(t("targets/a/b"), "targets").is_err(),
            "not a direct child"
        );
        assert!(Targets::from_signed(t("targets/a/b"), "targets/a").is_ok());
        assert!(Targets::from_signed(t("targets/UP"), "targets").is_err());
        let bad_hash = serde_json::json!({"_type":"Targets","expires":"2030-01-01T00:00:00Z","version":1,
            "targets":{"latest":{"hashes":{"sha256":"AAAA"},"length":1}},"delegations":{"keys":{},"roles":[]}});
        assert!(Targets::from_signed(bad_hash, "targets").is_err());
        let neg = serde_json::json!({"_type":"Targets","expires":"2030-01-01T00:00:00Z","version":0,"targets":{}});
        assert!(Targets::from_signed(neg, "targets").is_err());
    }

    #[test]
    fn hash_checks() {
        let bytes = b"hello";
        let mut m = FileMeta {
            length: 5,
            sha256: None,
            sha512: None,
            custom: None,
        };
        assert_eq!(check_hashes(bytes, &m), Err(HashFailure::NoSupportedHash));
        m.sha256 = Some(Sha256::digest(bytes).into());
        assert_eq!(check_hashes(bytes, &m), Ok(()));
        m.sha512 = Some([0u8; 64]);
        assert!(
            matches!(check_hashes(bytes, &m), Err(HashFailure::Mismatch { alg, .. }) if alg == "sha512")
        );
    }
}
