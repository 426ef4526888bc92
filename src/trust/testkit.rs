//! Test support: deterministic keys, self-made X.509 root certificates and complete signed Notary
//! repositories that a test can change in exactly one place. Compiled for unit tests and with the
//! `testkit` feature (integration tests, benches, fuzz); never in a normal build.
//!
//! Keys and signatures come from aws-lc-rs, the verifier's own library: what they prove is the
//! metadata logic, while the signature checks themselves are pinned against independently made
//! vectors (Python's `cryptography`, the real `notary`; see the tests of `trust::signature` and
//! scripts/notary-golden). ECDSA and RSA-PSS signatures are randomised by aws-lc; `memo_sign`
//! makes a repository built twice in one process come out byte-identical all the same.
//!
//! Certificates are built here with a small DER writer (no extra dependency). The RSA key below was
//! made once with `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048` (test use only).
// Test support builds its own inputs: a failure here is a broken test, not bad input.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::future::Future;

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::signature::{self as alg, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde_json::{json, Value};
use sha2::{Digest, Sha256, Sha512};
use time::macros::datetime;
use time::OffsetDateTime;

use crate::trust::keys;
use crate::trust::{
    update, MemorySource, TrustError, TrustState, VerifiedRepository, VerifyOptions,
};

/// The fixed clock tests verify at.
pub const NOW: OffsetDateTime = datetime!(2030-06-01 00:00 UTC);
/// Default metadata expiry.
pub const EXPIRES: OffsetDateTime = datetime!(2100-01-01 00:00 UTC);
/// Notary host used in messages.
pub const HOST: &str = "notary.test";

pub(crate) const RSA_PEM: &str = "
-----BEGIN PRIVATE KEY-----
MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQDpti42vI+v3F1D
df2KeAYKmRD9TIlhv3diTqhlWSzSMX3GFMyBBxfisZsl52XY6+/lKZ7UmBHCWZe8
vx6XzQH5mpVcLI5haCYoupyfbHLjdNj8oHNSrVnw6LVEhcIBx5uM5uXjUSWySvWn
MZ0Ebf3/uV+ENyTbbCCE6g+XlZcSSgSFWvXPif6zrTNH6ITGww7rTqkOZjiQhpIG
iTI4gJhsY1ToEokGeDQGMegK6loXlgA4V1TQ7Vtx0mNQMzhg8A+CM8iest7XNWxA
T6HSqje0AZ9wpiWR7iEPbNdYyhWU05X2154waySPjqPWRThPAJ0l+KcU9mZORHTC
6gL53kg3AgMBAAECggEAA+qxXuoiv6rCHAr9Lcs8fARRXD1idrM+bUpY2MykIKhY
WEUpoZFHMt27y5Mo33giHsVndl6kuuIaKz1KEPc27Oz3Sy0qpwfsznVE113PlcTz
4f/6ZCH9m45QLg7Oeo3S1eCvbPODiI0TDYiaU2RYg7xNP9UAwXX6xt95VWwEtSIP
j/FiKCTK42Qbp9y/dFdxnqd4rzamSq9yPPESxIt6YssL7Ia9rUktAGk5dyQkpKr+
WEus0exzhvoi0dmEDubTLM0k3YVgpemA43b5NL9TFC3SRmr5/oXs+gBDgS3kkysV
nczVyNMlRF4PxyLpY+wuOIcgqzCNmOEWMeyMj4Ly2QKBgQD6JyLXqpVwRmwu16Aw
5TTk5EHAm68fuOjFnvKr2Se+5JZTb69WFHICdqA37n8gdMJTJ3VuITWVdqSALc6h
68A6AdVCMfxm20MlJAqn6z4RsIFRy7SllUXQ8otgm/X5wDi/ZLYqQ8fVKrFYMaw6
MS9pcRjG02nacOBMl4LFOvo9PQKBgQDvLKnWdz6XPbTY7+qiGPl3xp8MVpcMGaOk
sMfFyBkoP5m3X17g5RVupYDvWJEwlwZAYhFEZouJ0wM0BD9Q+uywX5X/jJaTL+NU
U2LjII8SyKH+fyAs5NMBbSjm0uDoYhYcNglPLUuSonn4J22YOKTOOqi+2gJ0//X4
YrP3kwfagwKBgFwqIyo2jUyKhb1UcI7TRAO5HYirU4BqjkiRYXNzVLN+YOxoz771
VXQW5Lz2wBvjKN2eQiPLVIS267DWL7V0uKQmnL4A0K/MxRZgCxUHFR1LXLoYRXxk
XQ647iUwERZtffr2Ti+QPYYKbsDBvGTMTl2Y77oBlpSG1f0iLWohaqU5AoGBALTy
h3OYN6RYrO/LYypL1sEFZeMBx7kB1MqObDV4E4Bdzb/ryW5AIpzZXdi2mvG18KbZ
CtNC+aLGIBBEflqX3GX7ixIRnQGyIzzy8UeApH3DiLtwFjmgzPqxSVaIiFuHic7C
Gvzp+djwT3Ks8b9Oa3ES9AOgEGfQFplao2lUtYZdAoGBAKcasywrVXgkQFjRGQ+e
PDGocDAl+Y1yrURJzBBHwGIao1kxnisHV9uOY2LN3NAUzbNNhLNeAmr0m+YufN16
w/bn7KoGp19wccPJV+XYQDNgurmmTHO9TcmU2BKuvJWWltNZxu9uzbqyxKbPqFnM
1FhIjV8x6gnxGaVXaXHr3yBL
-----END PRIVATE KEY-----
";

/// Private half of a test key.
#[derive(Clone)]
pub enum Signer {
    /// Ed25519.
    Ed25519(Box<Ed25519KeyPair>),
    /// ECDSA P-256.
    P256(P256Key),
    /// RSA (signs with `rsapss` unless the method is overridden).
    Rsa(Box<RsaKeyPair>),
}

/// An ECDSA P-256 private key: aws-lc-rs binds a key pair to one signature encoding, so there
/// is one for Notary's raw `r‖s` and one for the DER signatures of certificates.
#[derive(Clone)]
pub struct P256Key {
    fixed: EcdsaKeyPair,
    asn1: EcdsaKeyPair,
}

impl P256Key {
    /// DER SubjectPublicKeyInfo of the public key.
    pub fn spki(&self) -> Vec<u8> {
        self.fixed
            .public_key()
            .as_der()
            .expect("spki")
            .as_ref()
            .to_vec()
    }
}

/// A key pair as metadata knows it.
#[derive(Clone)]
pub struct TestKey {
    /// Private key.
    pub signer: Signer,
    /// `keytype`.
    pub key_type: String,
    /// Decoded `keyval.public`.
    pub public: Vec<u8>,
    /// Method used when signing (`None` = the natural one).
    pub method: Option<String>,
}

impl std::fmt::Debug for TestKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TestKey({} {})", self.key_type, self.id())
    }
}

/// The P-256 key with scalar `0x11` followed by 31 bytes `seed` (below the group order).
pub fn p256_key(seed: u8) -> P256Key {
    let mut scalar = [seed.max(1); 32];
    scalar[0] = 0x11;
    // RFC 5915 ECPrivateKey: version 1, the scalar, the curve (prime256v1); aws-lc computes the
    // public point.
    let p256_oid = [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    let ec_private_key = seq(&[
        der(0x02, &[1]),
        der(0x04, &scalar),
        der(0xa0, &der(0x06, &p256_oid)),
    ]);
    let pair = |a| EcdsaKeyPair::from_private_key_der(a, &ec_private_key).expect("P-256 key");
    P256Key {
        fixed: pair(&alg::ECDSA_P256_SHA256_FIXED_SIGNING),
        asn1: pair(&alg::ECDSA_P256_SHA256_ASN1_SIGNING),
    }
}

/// A raw `r‖s` ECDSA signature re-encoded as DER (`ECDSA-Sig-Value`), for tests that check it is
/// refused where Notary expects raw.
pub fn ecdsa_raw_to_der(raw: &[u8]) -> Vec<u8> {
    let int = |b: &[u8]| {
        let mut v: Vec<u8> = b.iter().copied().skip_while(|x| *x == 0).collect();
        if v.first().is_none_or(|x| x & 0x80 != 0) {
            v.insert(0, 0);
        }
        der(0x02, &v)
    };
    let (r, s) = raw.split_at(raw.len() / 2);
    seq(&[int(r), int(s)])
}

impl TestKey {
    /// Ed25519 key from a seed byte.
    pub fn ed25519(seed: u8) -> TestKey {
        let sk = Ed25519KeyPair::from_seed_unchecked(&[seed; 32]).expect("ed25519 seed");
        let public = sk.public_key().as_ref().to_vec();
        TestKey {
            signer: Signer::Ed25519(Box::new(sk)),
            key_type: keys::ED25519.into(),
            public,
            method: None,
        }
    }

    /// ECDSA P-256 key (`ecdsa`, PKIX public key) from a seed byte.
    pub fn ecdsa(seed: u8) -> TestKey {
        let sk = p256_key(seed);
        let public = sk.spki();
        TestKey {
            signer: Signer::P256(sk),
            key_type: keys::ECDSA.into(),
            public,
            method: None,
        }
    }

    /// The fixed RSA-2048 key (`rsa`).
    pub fn rsa() -> TestKey {
        let pkcs8 = pem::parse(RSA_PEM.trim()).expect("test RSA key PEM");
        let sk = RsaKeyPair::from_pkcs8(pkcs8.contents()).expect("test RSA key");
        let public = sk.public_key().as_der().expect("spki").as_ref().to_vec();
        TestKey {
            signer: Signer::Rsa(Box::new(sk)),
            key_type: keys::RSA.into(),
            public,
            method: None,
        }
    }

    /// A self-signed `ecdsa-x509` root key like Notary generates (CN = `cn`).
    pub fn root_cert(
        seed: u8,
        cn: &str,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> TestKey {
        let sk = p256_key(seed);
        let der = make_cert(
            &sk.spki(),
            cn,
            cn,
            &sk,
            not_before,
            not_after,
            false,
            seed as u64,
        );
        TestKey::x509(sk, &[der])
    }

    /// An `ecdsa-x509` key over a certificate bundle (leaf first) for private key `sk`.
    pub fn x509(sk: P256Key, certs: &[Vec<u8>]) -> TestKey {
        let public = keys::pem_encode_certs(certs);
        TestKey {
            signer: Signer::P256(sk),
            key_type: keys::ECDSA_X509.into(),
            public,
            method: None,
        }
    }

    /// The same key, signing with another method name.
    pub fn with_method(mut self, method: &str) -> TestKey {
        self.method = Some(method.into());
        self
    }

    /// The same private key, but declared with another key type string.
    pub fn with_key_type(mut self, key_type: &str) -> TestKey {
        self.key_type = key_type.into();
        self
    }

    /// Notary key ID.
    pub fn id(&self) -> String {
        keys::key_id(&self.key_type, &self.public)
    }

    /// The metadata key object.
    pub fn key_json(&self) -> Value {
        json!({"keytype": self.key_type, "keyval": {"private": null, "public": B64.encode(&self.public)}})
    }

    /// Sign `msg`; returns (method, signature bytes).
    pub fn sign(&self, msg: &[u8]) -> (String, Vec<u8>) {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let (natural, sig) = match &self.signer {
            Signer::Ed25519(k) => ("eddsa", k.sign(msg).as_ref().to_vec()),
            Signer::P256(k) => (
                "ecdsa",
                memo_sign(&k.spki(), "ecdsa", msg, || {
                    k.fixed
                        .sign(&rng, msg)
                        .expect("ecdsa sign")
                        .as_ref()
                        .to_vec()
                }),
            ),
            Signer::Rsa(k) => {
                let pkcs1 = self.method.as_deref() == Some("rsapkcs1v15");
                let (name, encoding): (_, &'static dyn alg::RsaEncoding) = if pkcs1 {
                    ("rsapkcs1v15", &alg::RSA_PKCS1_SHA256)
                } else {
                    ("rsapss", &alg::RSA_PSS_SHA256)
                };
                let sig = memo_sign(&self.public, name, msg, || {
                    let mut sig = vec![0u8; k.public_modulus_len()];
                    k.sign(encoding, &rng, msg, &mut sig).expect("rsa sign");
                    sig
                });
                (name, sig)
            }
        };
        (self.method.clone().unwrap_or_else(|| natural.into()), sig)
    }
}

/// ECDSA and RSA-PSS signatures from aws-lc-rs are randomised, but tests rebuild a repository and
/// expect what they did not change to come out byte-identical: a role's envelope, and a root
/// certificate (whose bytes are the root key, so its key ID). So each (public key, scheme,
/// message) is signed once per process and the signature reused, which gives the determinism
/// RFC 6979 signers had.
fn memo_sign(
    public: &[u8],
    scheme: &'static str,
    msg: &[u8],
    sign: impl FnOnce() -> Vec<u8>,
) -> Vec<u8> {
    type Memo = BTreeMap<(Vec<u8>, &'static str, [u8; 32]), Vec<u8>>;
    static MEMO: parking_lot::Mutex<Memo> = parking_lot::const_mutex(BTreeMap::new());
    let key = (public.to_vec(), scheme, Sha256::digest(msg).into());
    if let Some(sig) = MEMO.lock().get(&key) {
        return sig.clone();
    }
    let sig = sign();
    MEMO.lock().entry(key).or_insert(sig).clone()
}

// ---- a minimal DER writer for certificates ----

pub(crate) fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = content.len();
    if n < 128 {
        out.push(n as u8);
    } else {
        let bytes: Vec<u8> = n
            .to_be_bytes()
            .iter()
            .copied()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

pub(crate) fn seq(parts: &[Vec<u8>]) -> Vec<u8> {
    der(0x30, &parts.concat())
}

fn name(cn: &str) -> Vec<u8> {
    let atv = seq(&[der(0x06, &[0x55, 0x04, 0x03]), der(0x0c, cn.as_bytes())]);
    seq(&[der(0x31, &atv)])
}

fn der_time(t: OffsetDateTime) -> Vec<u8> {
    let t = t.to_offset(time::UtcOffset::UTC);
    let (y, mo, d, h, mi, s) = (
        t.year(),
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
    );
    if (1950..2050).contains(&y) {
        der(
            0x17,
            format!("{:02}{mo:02}{d:02}{h:02}{mi:02}{s:02}Z", y % 100).as_bytes(),
        )
    } else {
        der(
            0x18,
            format!("{y:04}{mo:02}{d:02}{h:02}{mi:02}{s:02}Z").as_bytes(),
        )
    }
}

/// Build an X.509 v3 certificate signed with ECDSA-SHA256 by `issuer_key`.
#[allow(clippy::too_many_arguments)]
pub fn make_cert(
    spki: &[u8],
    subject_cn: &str,
    issuer_cn: &str,
    issuer_key: &P256Key,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    is_ca: bool,
    serial: u64,
) -> Vec<u8> {
    let alg = seq(&[der(0x06, &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02])]);
    let mut serial_bytes = vec![0u8];
    serial_bytes.extend(serial.max(1).to_be_bytes());
    let mut tbs_parts = vec![
        der(0xa0, &der(0x02, &[2])),
        der(0x02, &serial_bytes),
        alg.clone(),
        name(issuer_cn),
        seq(&[der_time(not_before), der_time(not_after)]),
        name(subject_cn),
        spki.to_vec(),
    ];
    if is_ca {
        let bc = seq(&[
            der(0x06, &[0x55, 0x1d, 0x13]),
            der(0x01, &[0xff]),
            der(0x04, &seq(&[der(0x01, &[0xff])])),
        ]);
        tbs_parts.push(der(0xa3, &seq(&[bc])));
    }
    let tbs = seq(&tbs_parts);
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let sig = memo_sign(&issuer_key.spki(), "ecdsa-der", &tbs, || {
        issuer_key
            .asn1
            .sign(&rng, &tbs)
            .expect("ecdsa sign")
            .as_ref()
            .to_vec()
    });
    let mut bits = vec![0u8];
    bits.extend_from_slice(&sig);
    seq(&[tbs, alg, der(0x03, &bits)])
}

/// A CA and a leaf it signed: returns (CA PEM, leaf `ecdsa-x509` key).
pub fn ca_and_leaf(ca_seed: u8, leaf_seed: u8, gun: &str) -> (String, TestKey) {
    let ca_sk = p256_key(ca_seed);
    let ca = make_cert(
        &ca_sk.spki(),
        "Test CA",
        "Test CA",
        &ca_sk,
        datetime!(2020-01-01 0:00 UTC),
        datetime!(2120-01-01 0:00 UTC),
        true,
        99,
    );
    let leaf_sk = p256_key(leaf_seed);
    let leaf = make_cert(
        &leaf_sk.spki(),
        gun,
        "Test CA",
        &ca_sk,
        datetime!(2020-01-01 0:00 UTC),
        datetime!(2120-01-01 0:00 UTC),
        false,
        100,
    );
    let ca_pem = String::from_utf8(keys::pem_encode_certs(&[ca])).expect("pem is ascii");
    (ca_pem, TestKey::x509(leaf_sk, &[leaf]))
}

// ---- repositories ----

/// Keys, threshold, version and expiry of one role.
#[derive(Clone, Debug)]
pub struct RoleSpec {
    /// Keys listed for the role.
    pub keys: Vec<TestKey>,
    /// Threshold written into the metadata.
    pub threshold: u32,
    /// Version.
    pub version: u64,
    /// Expiry.
    pub expires: OffsetDateTime,
    /// Keys that actually sign (`None` = `keys`).
    pub signers: Option<Vec<TestKey>>,
}

impl RoleSpec {
    /// One key, threshold 1, version 1, default expiry.
    pub fn new(key: TestKey) -> RoleSpec {
        RoleSpec {
            keys: vec![key],
            threshold: 1,
            version: 1,
            expires: EXPIRES,
            signers: None,
        }
    }

    fn signing_keys(&self) -> &[TestKey] {
        self.signers.as_deref().unwrap_or(&self.keys)
    }
}

/// A delegation (`targets/…`); its parent is derived from the name.
#[derive(Clone, Debug)]
pub struct DelegationSpec {
    /// Role name.
    pub name: String,
    /// Keys/threshold/version/expiry.
    pub role: RoleSpec,
    /// Paths as declared by the parent.
    pub paths: Vec<String>,
    /// Tag → manifest bytes.
    pub targets: BTreeMap<String, Vec<u8>>,
}

/// A complete repository.
#[derive(Clone, Debug)]
pub struct TestRepo {
    /// GUN.
    pub gun: String,
    /// Root role (x509 keys).
    pub root: RoleSpec,
    /// Extra keys signing root (e.g. the previous root key during rotation).
    pub extra_root_signers: Vec<TestKey>,
    /// Targets role.
    pub targets: RoleSpec,
    /// Snapshot role.
    pub snapshot: RoleSpec,
    /// Timestamp role.
    pub timestamp: RoleSpec,
    /// Tag → manifest bytes in `targets`.
    pub target_files: BTreeMap<String, Vec<u8>>,
    /// Delegations.
    pub delegations: Vec<DelegationSpec>,
}

/// A point where [`TestRepo::build_with`] lets a test change what is produced.
pub enum Stage<'a> {
    /// The `signed` value of `role` before it is signed.
    Signed(&'a str, &'a mut Value),
    /// The envelope bytes of `role` after signing, before parents hash them.
    Bytes(&'a str, &'a mut Vec<u8>),
}

/// Sign `signed` with `signers` into envelope bytes.
pub fn envelope(signed: &Value, signers: &[TestKey]) -> Vec<u8> {
    let msg = crate::trust::canonical::canonicalize(signed).expect("canonical");
    let sigs: Vec<Value> = signers
        .iter()
        .map(|k| {
            let (method, sig) = k.sign(&msg);
            json!({"keyid": k.id(), "method": method, "sig": B64.encode(sig)})
        })
        .collect();
    serde_json::to_vec(&json!({"signed": signed, "signatures": sigs})).expect("json")
}

fn time_str(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .expect("format")
}

/// Docker writes only sha256 for tags (`cli28:cli/trust/trust_push.go`).
fn target_meta(bytes: &[u8]) -> Value {
    json!({"hashes": {"sha256": B64.encode(Sha256::digest(bytes))}, "length": bytes.len()})
}

/// Notary writes sha256 and sha512 for metadata files.
fn file_meta(bytes: &[u8]) -> Value {
    json!({"hashes": {"sha256": B64.encode(Sha256::digest(bytes)), "sha512": B64.encode(Sha512::digest(bytes))}, "length": bytes.len()})
}

fn keys_and_role(keys: &mut serde_json::Map<String, Value>, role: &RoleSpec) -> Value {
    for k in &role.keys {
        keys.insert(k.id(), k.key_json());
    }
    json!({"keyids": role.keys.iter().map(TestKey::id).collect::<Vec<_>>(), "threshold": role.threshold})
}

impl TestRepo {
    /// Root cert (seed 1, CN = GUN, valid 2020–2120), targets ecdsa(2), snapshot ecdsa(3),
    /// timestamp ed25519(4); tag `latest` in targets.
    pub fn new(gun: &str) -> TestRepo {
        let root = TestKey::root_cert(
            1,
            gun,
            datetime!(2020-01-01 0:00 UTC),
            datetime!(2120-01-01 0:00 UTC),
        );
        TestRepo {
            gun: gun.into(),
            root: RoleSpec::new(root),
            extra_root_signers: Vec::new(),
            targets: RoleSpec::new(TestKey::ecdsa(2)),
            snapshot: RoleSpec::new(TestKey::ecdsa(3)),
            timestamp: RoleSpec::new(TestKey::ed25519(4)),
            target_files: [("latest".to_string(), b"manifest-latest".to_vec())]
                .into_iter()
                .collect(),
            delegations: Vec::new(),
        }
    }

    /// Add `targets/releases` (ecdsa(5), paths `[""]`) signing tag `v1`.
    pub fn with_releases(mut self) -> TestRepo {
        self.delegations.push(DelegationSpec {
            name: "targets/releases".into(),
            role: RoleSpec::new(TestKey::ecdsa(5)),
            paths: vec![String::new()],
            targets: [("v1".to_string(), b"manifest-v1".to_vec())]
                .into_iter()
                .collect(),
        });
        self
    }

    /// The delegation called `name`.
    pub fn delegation_mut(&mut self, name: &str) -> &mut DelegationSpec {
        self.delegations
            .iter_mut()
            .find(|d| d.name == name)
            .expect("no such delegation")
    }

    /// Build all files.
    pub fn build(&self) -> MemorySource {
        self.build_with(|_| {})
    }

    /// Build all files, letting `edit` change each `signed` value before signing and each file
    /// after signing (before its parent records its hash).
    pub fn build_with(&self, mut edit: impl FnMut(Stage<'_>)) -> MemorySource {
        let mut out = MemorySource::new();
        let mut finish = |role: &str,
                          mut signed: Value,
                          signers: &[TestKey],
                          out: &mut MemorySource|
         -> Vec<u8> {
            edit(Stage::Signed(role, &mut signed));
            let mut bytes = envelope(&signed, signers);
            edit(Stage::Bytes(role, &mut bytes));
            out.insert(format!("{role}.json"), bytes.clone());
            bytes
        };
        // root
        let mut keys = serde_json::Map::new();
        let mut roles = serde_json::Map::new();
        for (name, spec) in [
            ("root", &self.root),
            ("targets", &self.targets),
            ("snapshot", &self.snapshot),
            ("timestamp", &self.timestamp),
        ] {
            let r = keys_and_role(&mut keys, spec);
            roles.insert(name.into(), r);
        }
        let root = json!({"_type": "Root", "consistent_snapshot": false, "expires": time_str(self.root.expires),
            "keys": keys, "roles": roles, "version": self.root.version});
        let mut root_signers = self.root.signing_keys().to_vec();
        root_signers.extend(self.extra_root_signers.iter().cloned());
        let root_bytes = finish("root", root, &root_signers, &mut out);
        let mut snap_meta = serde_json::Map::new();
        snap_meta.insert("root".into(), file_meta(&root_bytes));
        // targets files, children before parents is not needed: parents only declare keys/paths.
        #[allow(clippy::type_complexity)]
        let mut files: Vec<(String, &RoleSpec, &BTreeMap<String, Vec<u8>>)> =
            vec![("targets".into(), &self.targets, &self.target_files)];
        for d in &self.delegations {
            files.push((d.name.clone(), &d.role, &d.targets));
        }
        for (name, spec, tfiles) in files {
            let targets: serde_json::Map<String, Value> = tfiles
                .iter()
                .map(|(t, b)| (t.clone(), target_meta(b)))
                .collect();
            let mut dkeys = serde_json::Map::new();
            let mut droles = Vec::new();
            for d in self
                .delegations
                .iter()
                .filter(|d| d.name.rsplit_once('/').map(|(p, _)| p) == Some(name.as_str()))
            {
                let mut r = keys_and_role(&mut dkeys, &d.role);
                r["name"] = json!(d.name);
                r["paths"] = json!(d.paths);
                droles.push(r);
            }
            let signed = json!({"_type": "Targets", "delegations": {"keys": dkeys, "roles": droles},
                "expires": time_str(spec.expires), "targets": targets, "version": spec.version});
            let bytes = finish(&name, signed, spec.signing_keys(), &mut out);
            snap_meta.insert(name, file_meta(&bytes));
        }
        let snapshot = json!({"_type": "Snapshot", "expires": time_str(self.snapshot.expires), "meta": snap_meta, "version": self.snapshot.version});
        let snap_bytes = finish("snapshot", snapshot, self.snapshot.signing_keys(), &mut out);
        let ts = json!({"_type": "Timestamp", "expires": time_str(self.timestamp.expires),
            "meta": {"snapshot": file_meta(&snap_bytes)}, "version": self.timestamp.version});
        finish("timestamp", ts, self.timestamp.signing_keys(), &mut out);
        out
    }
}

/// Drive a future whose source answers immediately (no runtime needed).
pub fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    struct Noop;
    impl std::task::Wake for Noop {
        fn wake(self: std::sync::Arc<Self>) {}
    }
    let waker = std::task::Waker::from(std::sync::Arc::new(Noop));
    let mut cx = std::task::Context::from_waker(&waker);
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::yield_now();
    }
}

/// Verify `source` for `gun` at [`NOW`] with default options (TOFU).
pub fn verify(
    source: &MemorySource,
    gun: &str,
    pinned: Option<&TrustState>,
) -> Result<VerifiedRepository, TrustError> {
    verify_opts(source, gun, pinned, NOW, &VerifyOptions::default())
}

/// Verify with explicit time and options.
pub fn verify_opts(
    source: &MemorySource,
    gun: &str,
    pinned: Option<&TrustState>,
    now: OffsetDateTime,
    opts: &VerifyOptions,
) -> Result<VerifiedRepository, TrustError> {
    block_on(update(source, gun, HOST, pinned, now, opts))
}
