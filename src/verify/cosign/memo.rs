//! Signature checks whose answer is already known: the trusted root's own certificate links,
//! checked once when the verifier is built, and repeats within one bundle's verification.
//!
//! Why: `sigstore-verify` re-does fixed work on every bundle. Profiling the first verification
//! of a real cosign v3 bundle (BENCHMARKS.md, "cosign verifier") showed most of its time in
//! ECDSA P-384 verifications, and two of its four P-384 checks do not depend on the bundle or
//! repeat one already made:
//! - the timestamp authority's chain (TSA leaf ← any intermediates ← root) comes from the
//!   trusted root alone, yet `sigstore-tsa` verifies its links for every RFC 3161 timestamp;
//! - the Fulcio chain is verified once per verified signing time (the TSA time and the Rekor
//!   integrated time), the same leaf signature each time; the Rekor SET is verified twice too.
//!
//! How: every signature check in the Sigstore crates (webpki's chain links included) goes
//! through `sigstore_crypto`'s process-wide [`CryptoProvider`]. trustgate installs [`Provider`],
//! which hands every operation to the crate's own aws-lc-rs provider (no crypto here) and, while
//! a [`Scope`] is active on the thread, answers "valid" without recomputing for an exact
//! `(scheme, key, message, signature)` that has verified before: in the verifier's prepared set
//! (trusted-root links, verified by aws-lc-rs at construction) or earlier in the same call.
//! Nothing is remembered across calls but the prepared set, so every bundle's own signatures
//! (leaf certificate, SCT, SET, checkpoint, artifact signature, timestamp) are computed for
//! every bundle; only results are reused, never checks skipped: validity windows, key usage,
//! chain building and every comparison still run each time. A failed check is never
//! remembered. Outside a scope (other callers of the Sigstore crates) the provider is aws-lc-rs
//! unchanged.
//!
//! Two more things are prepared per verifier rather than per check: the trusted root's ECDSA
//! keys (Rekor, CT logs, Fulcio and TSA certificates) are parsed once into aws-lc-rs
//! `ParsedPublicKey`s, the same verification minus decoding and validating the point for each
//! signature (five of a keyless bundle's six checks use such a key); and a remembered check
//! keeps its inputs whole and is matched by comparing them, not by hashing every checked
//! message.

use std::cell::RefCell;
use std::sync::{Arc, OnceLock};

use aws_lc_rs::digest::{Digest as LcDigest, SHA256, SHA384, SHA512};
use aws_lc_rs::signature::{
    EcdsaVerificationAlgorithm, ParsedPublicKey, ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA384_ASN1,
    ECDSA_P384_SHA256_ASN1, ECDSA_P384_SHA384_ASN1,
};
use sigstore_verify::crypto::{
    self as sigcrypto, CryptoProvider, HashContext, KeyAlgorithm, SigningKeyPair, SigningScheme,
};
use sigstore_verify::trust_root::TrustedRoot;
use sigstore_verify::types::HashAlgorithm;
use x509_parser::oid_registry::{
    Oid, OID_PKCS1_SHA256WITHRSA, OID_PKCS1_SHA384WITHRSA, OID_PKCS1_SHA512WITHRSA,
    OID_SIG_ECDSA_WITH_SHA256, OID_SIG_ECDSA_WITH_SHA384, OID_SIG_ED25519,
};
use x509_parser::prelude::{FromDer, SubjectPublicKeyInfo, X509Certificate};

/// One signature check that verified, its inputs kept whole: a later check is answered from
/// it only if every input is byte-for-byte the same. Comparing is cheaper than hashing
/// (profiled: SHA-256 over every checked message was a tenth of a verification's
/// instructions), and there are only a handful per call; the signature is compared first, as
/// it differs between almost any two checks.
#[derive(Debug)]
struct Check {
    kind: Kind,
    scheme: SigningScheme,
    key: Box<[u8]>,
    message: Box<[u8]>,
    signature: Box<[u8]>,
}

/// One signature check's inputs, as the provider receives them.
#[derive(Clone, Copy)]
struct Input<'a> {
    kind: Kind,
    scheme: SigningScheme,
    key: &'a [u8],
    message: &'a [u8],
    signature: &'a [u8],
}

impl Check {
    fn new(input: Input<'_>) -> Self {
        Self {
            kind: input.kind,
            scheme: input.scheme,
            key: input.key.into(),
            message: input.message.into(),
            signature: input.signature.into(),
        }
    }

    fn is(&self, input: Input<'_>) -> bool {
        *self.signature == *input.signature
            && self.kind == input.kind
            && self.scheme == input.scheme
            && *self.key == *input.key
            && *self.message == *input.message
    }
}

/// Whether `checks` holds exactly this check.
fn holds(checks: &[Check], input: Input<'_>) -> bool {
    checks.iter().any(|c| c.is(input))
}

/// What a verifier prepares once from its trusted root: the signature checks of the root's own
/// certificate chains that verified, and the root's ECDSA public keys parsed by aws-lc-rs.
#[derive(Debug, Default)]
pub struct Prepared {
    checks: Vec<Check>,
    keys: Vec<PreparedKey>,
}

/// A trusted-root ECDSA key (Rekor, CT log, Fulcio or TSA certificate key), parsed once for one
/// scheme: five of a keyless bundle's six signature checks are made with such keys, and
/// aws-lc-rs's `UnparsedPublicKey` would decode and check the point again for each.
struct PreparedKey {
    scheme: SigningScheme,
    /// The key as the Sigstore crates pass it to the provider: the uncompressed SEC1 point.
    raw: Box<[u8]>,
    parsed: ParsedPublicKey,
}

impl std::fmt::Debug for PreparedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedKey")
            .field("scheme", &self.scheme.name())
            .field("len", &self.raw.len())
            .finish_non_exhaustive()
    }
}

/// The ECDSA schemes a trusted-root key may be asked to verify, with aws-lc-rs's algorithm for
/// each (the same ASN.1-signature algorithms `sigstore_crypto`'s aws-lc-rs provider uses).
const ECDSA_SCHEMES: [(SigningScheme, &EcdsaVerificationAlgorithm); 4] = [
    (SigningScheme::EcdsaP256Sha256, &ECDSA_P256_SHA256_ASN1),
    (SigningScheme::EcdsaP256Sha384, &ECDSA_P256_SHA384_ASN1),
    (SigningScheme::EcdsaP384Sha256, &ECDSA_P384_SHA256_ASN1),
    (SigningScheme::EcdsaP384Sha384, &ECDSA_P384_SHA384_ASN1),
];

impl Prepared {
    /// Verifies (aws-lc-rs) every link of the trusted root's timestamp-authority chains (each
    /// certificate signed by the next one, as the file lists them, leaf first) and keeps those
    /// that hold. A link that does not parse or verify is simply not kept: the crate's own
    /// check then fails on it exactly as it would without this set.
    ///
    /// Fulcio chains are left out: `sigstore-verify` makes every Fulcio certificate a trust
    /// anchor, so their links are never checked per bundle and preparing them would be work
    /// for nothing.
    ///
    /// Also parses every ECDSA public key of the root (log keys, and the keys of the Fulcio and
    /// TSA certificates) once for each scheme its curve allows; a key that aws-lc-rs refuses
    /// is not kept and is parsed (and refused) per check as before.
    pub fn from_trusted_root(root: &TrustedRoot) -> Self {
        let mut checks = Vec::new();
        for tsa in &root.timestamp_authorities {
            for pair in tsa.cert_chain.certificates.windows(2) {
                let (child, issuer) = (pair[0].raw_bytes.as_bytes(), pair[1].raw_bytes.as_bytes());
                if let Some(check) = verified_link(child, issuer) {
                    checks.push(check);
                }
            }
        }
        let log_keys = root
            .tlogs
            .iter()
            .map(|log| &log.public_key)
            .chain(root.ctlogs.iter().map(|log| &log.public_key))
            .filter_map(|key| spki_key(key.raw_bytes.as_bytes()));
        let certificate_keys = root
            .certificate_authorities
            .iter()
            .flat_map(|ca| &ca.cert_chain.certificates)
            .chain(
                root.timestamp_authorities
                    .iter()
                    .flat_map(|tsa| &tsa.cert_chain.certificates),
            )
            .filter_map(|cert| certificate_key(cert.raw_bytes.as_bytes()));
        let mut keys: Vec<PreparedKey> = Vec::new();
        for raw in log_keys.chain(certificate_keys) {
            for (scheme, algorithm) in ECDSA_SCHEMES {
                let known = keys
                    .iter()
                    .any(|k| k.scheme == scheme && *k.raw == *raw.as_slice());
                if known {
                    continue;
                }
                if let Ok(parsed) = ParsedPublicKey::new(algorithm, &raw) {
                    keys.push(PreparedKey {
                        scheme,
                        raw: raw.clone().into_boxed_slice(),
                        parsed,
                    });
                }
            }
        }
        Self { checks, keys }
    }

    /// How many trusted-root links were verified and kept.
    pub fn len(&self) -> usize {
        self.checks.len()
    }

    /// How many (scheme, key) pairs of the trusted root were parsed ahead.
    pub fn parsed_keys(&self) -> usize {
        self.keys.len()
    }

    /// The root's key for this scheme, parsed ahead, if `key` is one.
    fn key(&self, scheme: SigningScheme, key: &[u8]) -> Option<&ParsedPublicKey> {
        self.keys
            .iter()
            .find(|k| k.scheme == scheme && *k.raw == *key)
            .map(|k| &k.parsed)
    }

    /// Whether no link was kept (no trusted root, or one without timestamp authorities).
    pub fn is_empty(&self) -> bool {
        self.checks.is_empty()
    }
}

/// The public key bits (for EC, the SEC1 point) of a DER SubjectPublicKeyInfo.
fn spki_key(der: &[u8]) -> Option<Vec<u8>> {
    let (_, spki) = SubjectPublicKeyInfo::from_der(der).ok()?;
    Some(spki.subject_public_key.data.to_vec())
}

/// The public key bits of a DER certificate.
fn certificate_key(der: &[u8]) -> Option<Vec<u8>> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    Some(cert.public_key().subject_public_key.data.to_vec())
}

/// The check webpki will ask the provider for when it verifies `child` with `issuer`'s key,
/// if it holds: the same scheme, key bits, TBS bytes and signature bits webpki passes.
fn verified_link(child: &[u8], issuer: &[u8]) -> Option<Check> {
    let (_, child) = X509Certificate::from_der(child).ok()?;
    let (_, issuer) = X509Certificate::from_der(issuer).ok()?;
    let key = issuer.public_key().subject_public_key.data.as_ref();
    let scheme = scheme_for(&child.signature_algorithm.algorithm, key)?;
    let message = child.tbs_certificate.as_ref();
    let signature = child.signature_value.data.as_ref();
    sigcrypto::validate_raw_public_key(scheme, key).ok()?;
    sigcrypto::aws_lc_provider()
        .verify_raw(scheme, key, message, signature)
        .ok()?;
    Some(Check::new(Input {
        kind: Kind::Raw,
        scheme,
        key,
        message,
        signature,
    }))
}

/// The scheme webpki's algorithm table maps a certificate signature to (ECDSA by curve, which
/// the uncompressed point's length gives; RSA PKCS#1; Ed25519).
fn scheme_for(signature_algorithm: &Oid<'_>, key: &[u8]) -> Option<SigningScheme> {
    let p256 = key.len() == 65;
    let p384 = key.len() == 97;
    Some(match signature_algorithm {
        a if *a == OID_SIG_ECDSA_WITH_SHA256 && p256 => SigningScheme::EcdsaP256Sha256,
        a if *a == OID_SIG_ECDSA_WITH_SHA384 && p256 => SigningScheme::EcdsaP256Sha384,
        a if *a == OID_SIG_ECDSA_WITH_SHA256 && p384 => SigningScheme::EcdsaP384Sha256,
        a if *a == OID_SIG_ECDSA_WITH_SHA384 && p384 => SigningScheme::EcdsaP384Sha384,
        a if *a == OID_PKCS1_SHA256WITHRSA => SigningScheme::RsaPkcs1Sha256,
        a if *a == OID_PKCS1_SHA384WITHRSA => SigningScheme::RsaPkcs1Sha384,
        a if *a == OID_PKCS1_SHA512WITHRSA => SigningScheme::RsaPkcs1Sha512,
        a if *a == OID_SIG_ED25519 => SigningScheme::Ed25519,
        _ => return None,
    })
}

/// Whether the message is the data itself or its digest (`verify_prehashed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Raw,
    Prehashed,
}

/// What the provider may answer from, on this thread, for the time of one verification.
struct Active {
    prepared: Arc<Prepared>,
    /// Checks that verified earlier in this call.
    seen: Vec<Check>,
    counts: Counts,
}

/// How the signature checks of one call were answered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Verified by aws-lc-rs in this call.
    pub computed: usize,
    /// Trusted-root links answered from the verifier's prepared set.
    pub from_prepared: usize,
    /// Repeats of a check this call already verified.
    pub from_call: usize,
}

thread_local! {
    static ACTIVE: RefCell<Option<Active>> = const { RefCell::new(None) };
}

/// One verification call: while it lives, the provider may reuse the prepared set and the
/// call's own earlier results. `sigstore-verify` is synchronous and runs on the calling thread,
/// so a thread-local scope covers exactly the call.
pub struct Scope {
    previous: Option<Active>,
}

impl Scope {
    /// Starts a call's scope (and makes sure trustgate's provider is the installed one).
    pub fn enter(prepared: &Arc<Prepared>) -> Self {
        install();
        let previous = ACTIVE.with(|a| {
            a.borrow_mut().replace(Active {
                prepared: Arc::clone(prepared),
                seen: Vec::new(),
                counts: Counts::default(),
            })
        });
        Self { previous }
    }

    /// How this call's signature checks were answered so far.
    pub fn counts(&self) -> Counts {
        ACTIVE.with(|a| a.borrow().as_ref().map(|a| a.counts).unwrap_or_default())
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        let previous = self.previous.take();
        ACTIVE.with(|a| *a.borrow_mut() = previous);
    }
}

/// trustgate's `sigstore_crypto` provider: aws-lc-rs (the crate's own provider) with the
/// reuse described in the module comment.
#[derive(Debug)]
pub struct Provider;

static PROVIDER: Provider = Provider;

/// Installs [`Provider`] as `sigstore_crypto`'s process-wide provider, once. If some other
/// provider was installed first, it stays, and verification is as correct, only without reuse.
pub fn install() -> bool {
    static INSTALLED: OnceLock<bool> = OnceLock::new();
    *INSTALLED.get_or_init(|| {
        let _ = sigcrypto::install_default_provider(&PROVIDER);
        sigcrypto::try_default_provider()
            .is_some_and(|p| std::ptr::addr_eq(p as *const dyn CryptoProvider, &PROVIDER))
    })
}

impl Provider {
    /// Verifies through aws-lc-rs unless the scope already knows the answer; remembers a
    /// success for the rest of the call. A trusted-root key the scope's verifier parsed ahead
    /// is used as parsed; any other key goes to the crate's aws-lc-rs provider.
    fn verify_with(&self, input: Input<'_>) -> sigcrypto::Result<()> {
        let prepared = ACTIVE.with(|a| a.borrow().as_ref().map(|a| Arc::clone(&a.prepared)));
        let Some(prepared) = prepared else {
            return verify_unprepared(input);
        };
        let known = ACTIVE.with(|a| {
            let mut a = a.borrow_mut();
            let Some(a) = a.as_mut() else { return false };
            if holds(&a.prepared.checks, input) {
                a.counts.from_prepared += 1;
                true
            } else if holds(&a.seen, input) {
                a.counts.from_call += 1;
                true
            } else {
                false
            }
        });
        if known {
            return Ok(());
        }
        match prepared.key(input.scheme, input.key) {
            Some(parsed) => verify_parsed(input, parsed)?,
            None => verify_unprepared(input)?,
        }
        ACTIVE.with(|a| {
            if let Some(a) = a.borrow_mut().as_mut() {
                a.counts.computed += 1;
                a.seen.push(Check::new(input));
            }
        });
        Ok(())
    }
}

/// The crate's own aws-lc-rs provider, which parses the key for this one check.
fn verify_unprepared(input: Input<'_>) -> sigcrypto::Result<()> {
    let Input {
        kind,
        scheme,
        key,
        message,
        signature,
    } = input;
    let provider = sigcrypto::aws_lc_provider();
    match kind {
        Kind::Raw => provider.verify_raw(scheme, key, message, signature),
        Kind::Prehashed => provider.verify_prehashed(scheme, key, message, signature),
    }
}

/// The same aws-lc-rs verification with a key parsed ahead, failing with the crate's own
/// errors.
fn verify_parsed(input: Input<'_>, key: &ParsedPublicKey) -> sigcrypto::Result<()> {
    let Input {
        kind,
        scheme,
        message,
        signature,
        ..
    } = input;
    let invalid = || sigcrypto::Error::Verification(format!("{} signature invalid", scheme.name()));
    match kind {
        Kind::Raw => key.verify_sig(message, signature).map_err(|_| invalid()),
        Kind::Prehashed => {
            let algorithm = match scheme.hash_algorithm() {
                Some(HashAlgorithm::Sha2256) => &SHA256,
                Some(HashAlgorithm::Sha2384) => &SHA384,
                Some(HashAlgorithm::Sha2512) => &SHA512,
                _ => {
                    return Err(sigcrypto::Error::UnsupportedAlgorithm(format!(
                        "Scheme {scheme:?} does not support prehashed mode"
                    )))
                }
            };
            let digest = LcDigest::import_less_safe(message, algorithm).map_err(|_| {
                sigcrypto::Error::Verification(format!(
                    "Failed to import digest: len={}, algo_expected_len={}",
                    message.len(),
                    algorithm.output_len()
                ))
            })?;
            key.verify_digest_sig(&digest, signature)
                .map_err(|_| invalid())
        }
    }
}

impl CryptoProvider for Provider {
    fn hash(&self, algorithm: HashAlgorithm) -> sigcrypto::Result<Box<dyn HashContext>> {
        sigcrypto::aws_lc_provider().hash(algorithm)
    }

    fn sha256(&self, data: &[u8]) -> [u8; 32] {
        sigcrypto::aws_lc_provider().sha256(data)
    }

    fn sha384(&self, data: &[u8]) -> [u8; 48] {
        sigcrypto::aws_lc_provider().sha384(data)
    }

    fn sha512(&self, data: &[u8]) -> [u8; 64] {
        sigcrypto::aws_lc_provider().sha512(data)
    }

    fn verify_raw(
        &self,
        scheme: SigningScheme,
        spki_pubkey_bytes: &[u8],
        data: &[u8],
        signature: &[u8],
    ) -> sigcrypto::Result<()> {
        self.verify_with(Input {
            kind: Kind::Raw,
            scheme,
            key: spki_pubkey_bytes,
            message: data,
            signature,
        })
    }

    fn verify_prehashed(
        &self,
        scheme: SigningScheme,
        spki_pubkey_bytes: &[u8],
        digest: &[u8],
        signature: &[u8],
    ) -> sigcrypto::Result<()> {
        self.verify_with(Input {
            kind: Kind::Prehashed,
            scheme,
            key: spki_pubkey_bytes,
            message: digest,
            signature,
        })
    }

    fn generate_key_pair(
        &self,
        algorithm: KeyAlgorithm,
    ) -> sigcrypto::Result<Box<dyn SigningKeyPair>> {
        sigcrypto::aws_lc_provider().generate_key_pair(algorithm)
    }

    fn key_pair_from_pkcs8_der(&self, pkcs8: &[u8]) -> sigcrypto::Result<Box<dyn SigningKeyPair>> {
        sigcrypto::aws_lc_provider().key_pair_from_pkcs8_der(pkcs8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest as _, Sha256};
    use sigstore_verify::types::{Artifact, Bundle, Sha256Hash};
    use sigstore_verify::VerificationPolicy;

    fn data(path: &str) -> Vec<u8> {
        std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/data/cosign/sigstore-rust")
                .join(path),
        )
        .unwrap()
    }

    fn production_root() -> TrustedRoot {
        let text = String::from_utf8(data("trusted_roots/production-embedded.json")).unwrap();
        TrustedRoot::from_json(&text).unwrap()
    }

    /// The real cosign v3 bundle (TSA timestamp and Rekor SET, so two signing times): of its
    /// nine signature checks, the TSA chain's link comes from the prepared set, the Fulcio
    /// leaf's second check and the SET's second check from the call, and the six signatures
    /// that belong to this bundle (TSA token, Fulcio leaf, SET, SCT, checkpoint, artifact) are
    /// computed.
    #[test]
    fn a_bundle_computes_its_own_signatures_and_reuses_the_roots() {
        assert!(install());
        let root = production_root();
        let prepared = Arc::new(Prepared::from_trusted_root(&root));
        assert_eq!(prepared.len(), 1, "the TSA chain: leaf ← root");
        let verifier = sigstore_verify::Verifier::new(&root).unwrap();
        let bundle = Bundle::from_json(
            &String::from_utf8(data("bundles/cosign-v3-blob.sigstore.json")).unwrap(),
        )
        .unwrap();
        let blob = data("bundles/cosign-v3-blob.txt");
        let digest = Sha256Hash::from(<[u8; 32]>::from(Sha256::digest(&blob)));
        for _ in 0..2 {
            let scope = Scope::enter(&prepared);
            verifier
                .verify(
                    Artifact::from(digest),
                    &bundle,
                    &VerificationPolicy::any_identity(),
                )
                .unwrap();
            assert_eq!(
                scope.counts(),
                Counts {
                    computed: 6,
                    from_prepared: 1,
                    from_call: 2
                },
                "a second call recomputes everything but the root's links"
            );
        }
    }

    /// Only an exact input that verified is answered: a changed signature or message is
    /// computed, and fails, even right after the genuine one verified in the same call.
    #[test]
    fn only_exact_verified_checks_are_reused() {
        use aws_lc_rs::rand::SystemRandom;
        use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
        assert!(install());
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let key =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref()).unwrap();
        let public = key.public_key().as_ref().to_vec();
        let signature = key.sign(&rng, b"message").unwrap().as_ref().to_vec();
        let scheme = SigningScheme::EcdsaP256Sha256;
        let provider = sigcrypto::default_provider();
        let scope = Scope::enter(&Arc::new(Prepared::default()));
        provider
            .verify_raw(scheme, &public, b"message", &signature)
            .unwrap();
        provider
            .verify_raw(scheme, &public, b"message", &signature)
            .unwrap();
        let mut forged = signature.clone();
        let last = forged.len() - 1;
        forged[last] ^= 1;
        assert!(provider
            .verify_raw(scheme, &public, b"message", &forged)
            .is_err());
        assert!(provider
            .verify_raw(scheme, &public, b"massage", &signature)
            .is_err());
        assert!(provider
            .verify_prehashed(scheme, &public, &Sha256::digest(b"message"), &forged)
            .is_err());
        assert_eq!(
            scope.counts(),
            Counts {
                computed: 1,
                from_prepared: 0,
                from_call: 1
            }
        );
        drop(scope);
        // Outside a scope nothing is remembered or answered.
        assert!(provider
            .verify_raw(scheme, &public, b"message", &forged)
            .is_err());
    }

    /// The production root's ECDSA keys are parsed ahead (Rekor, CT, Fulcio and TSA keys, each
    /// for the two schemes of its curve), and a check with a prepared key is still a real
    /// check: a signature that is not the key's is refused, and is not remembered.
    #[test]
    fn prepared_keys_still_refuse_a_wrong_signature() {
        assert!(install());
        let root = production_root();
        let prepared = Arc::new(Prepared::from_trusted_root(&root));
        assert!(prepared.parsed_keys() >= 4, "{}", prepared.parsed_keys());
        let rekor = spki_key(root.tlogs[0].public_key.raw_bytes.as_bytes()).unwrap();
        let scheme = SigningScheme::EcdsaP256Sha256;
        assert!(prepared.key(scheme, &rekor).is_some());
        // A well-formed ECDSA signature (r = s = 1) that Rekor's key did not make.
        let bogus = [0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01];
        let provider = sigcrypto::default_provider();
        let scope = Scope::enter(&prepared);
        for _ in 0..2 {
            assert!(provider
                .verify_raw(scheme, &rekor, b"checkpoint", &bogus)
                .is_err());
            assert!(provider
                .verify_prehashed(scheme, &rekor, &Sha256::digest(b"checkpoint"), &bogus)
                .is_err());
        }
        assert_eq!(scope.counts(), Counts::default());
    }

    /// A trusted root whose TSA chain is broken (the leaf's signature altered) prepares
    /// nothing, so the crate's own check meets the broken link.
    #[test]
    fn a_broken_root_link_is_not_prepared() {
        let mut root = production_root();
        let chain = &mut root.timestamp_authorities[0].cert_chain.certificates;
        let mut der = chain[0].raw_bytes.as_bytes().to_vec();
        let last = der.len() - 1;
        der[last] ^= 1;
        chain[0].raw_bytes = sigstore_verify::types::DerCertificate::new(der);
        assert!(Prepared::from_trusted_root(&root).is_empty());
    }
}
