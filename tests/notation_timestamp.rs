//! RFC 3161 timestamp countersignatures on Notation signatures (issue 13), with a TSA made in
//! code (`support::notation::TestTsa`) rather than only notation-go's golden envelopes: each
//! case builds its own token, puts it where Notation does (the JWS or COSE unprotected header,
//! `io.cncf.notary.timestampSignature`) and asserts its own outcome through trustgate's
//! verifier (`NotationVerifier`, as configured by a `kind = "notation"` verifier).

mod support;

use std::path::Path;
use std::time::SystemTime;

use bytes::Bytes;
use support::notation::{NotationSigner, TestTsa};
use trustgate::reference::Digest;
use trustgate::verify::config::{VerifierConfig, VerifierKind};
use trustgate::verify::notation::envelope::EnvelopeFormat;
use trustgate::verify::notation::{
    Level, NotationAccepted, NotationEvidence, NotationRefusal, NotationVerifier, TargetManifest,
};

const MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
const SIZE: usize = 1234;

fn at((y, m, d): (i32, u8, u8)) -> SystemTime {
    time::Date::from_calendar_date(y, time::Month::try_from(m).unwrap(), d)
        .unwrap()
        .midnight()
        .assume_utc()
        .into()
}

/// The verification time: after the short-lived leaves below expired.
const NOW: (i32, u8, u8) = (2026, 11, 30);
/// A leaf valid from 2021 to 2024 only: expired now.
const LEAF_FROM: (i32, u8, u8) = (2021, 1, 1);
const LEAF_UNTIL: (i32, u8, u8) = (2024, 1, 1);
/// A time inside the leaf's validity.
const WHILE_VALID: (i32, u8, u8) = (2023, 6, 1);

fn digest() -> Digest {
    Digest::parse(&format!("sha256:{}", "cd".repeat(32))).unwrap()
}

struct Case {
    signer: NotationSigner,
    tsa: TestTsa,
    dir: tempfile::TempDir,
}

impl Case {
    fn new() -> Self {
        Self {
            signer: NotationSigner::generate_valid("Acme", "release", LEAF_FROM, LEAF_UNTIL),
            tsa: TestTsa::generate("Acme TSA"),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// A verifier trusting the signer's CA and `tsa_root` as TSA root.
    fn verifier_with(&self, tsa_root: &Path, level: Level) -> NotationVerifier {
        let config = VerifierConfig {
            name: "acme-notation".into(),
            kind: VerifierKind::Notation,
            trust_store: vec![self.signer.write_root(self.dir.path(), "ca")],
            tsa_roots: vec![tsa_root.to_path_buf()],
            trusted_identities: vec![self.signer.identity.clone()],
            level: Some(level),
            ..Default::default()
        };
        NotationVerifier::from_config(&config, self.dir.path()).unwrap()
    }

    fn verifier(&self, level: Level) -> NotationVerifier {
        self.verifier_with(&self.tsa.write_root(self.dir.path(), "tsa"), level)
    }

    /// The signature in `format`, countersigned by `stamp` (given the signature value).
    fn envelope(
        &self,
        format: EnvelopeFormat,
        stamp: &dyn Fn(&[u8]) -> Vec<u8>,
    ) -> NotationEvidence {
        let d = digest().to_string();
        let bytes = match format {
            EnvelopeFormat::Jws => self
                .signer
                .sign_jws_stamped(MEDIA_TYPE, &d, SIZE, Some(stamp)),
            EnvelopeFormat::Cose => {
                self.signer
                    .sign_cose_stamped(MEDIA_TYPE, &d, SIZE, Some(stamp))
            }
        };
        NotationEvidence {
            format,
            envelope: Bytes::from(bytes),
        }
    }
}

fn check(v: &NotationVerifier, ev: &NotationEvidence) -> Result<NotationAccepted, NotationRefusal> {
    let d = digest();
    let target = TargetManifest {
        digest: &d,
        size: Some(SIZE as u64),
        media_type: Some(MEDIA_TYPE),
    };
    v.verify(ev, "registry.local/app", &target, at(NOW))
}

const FORMATS: [EnvelopeFormat; 2] = [EnvelopeFormat::Jws, EnvelopeFormat::Cose];

#[test]
fn expired_leaf_is_accepted_at_the_timestamps_time() {
    let c = Case::new();
    let v = c.verifier(Level::Strict);
    for format in FORMATS {
        let ev = c.envelope(format, &|sig| c.tsa.token(sig, WHILE_VALID));
        let a = check(&v, &ev).unwrap_or_else(|e| panic!("{format:?}: {e}"));
        assert_eq!(a.signed_at, Some(at(WHILE_VALID)), "{format:?}");
        assert!(a.logged.is_empty(), "{format:?}: {:?}", a.logged);
    }
}

#[test]
fn expired_leaf_without_a_timestamp_is_refused() {
    // The control for the case above: the same leaf, no countersignature.
    let c = Case::new();
    let d = digest().to_string();
    let ev = NotationEvidence {
        format: EnvelopeFormat::Jws,
        envelope: Bytes::from(c.signer.sign_jws(MEDIA_TYPE, &d, SIZE)),
    };
    let e = check(&c.verifier(Level::Strict), &ev).unwrap_err();
    assert!(
        matches!(&e, NotationRefusal::NotValidAtSigningTime(d) if d.contains("no timestamp countersignature")),
        "{e}"
    );
}

#[test]
fn token_from_a_tsa_not_in_the_trust_store_is_refused() {
    let c = Case::new();
    let stranger = TestTsa::generate("Stranger TSA");
    let v = c.verifier(Level::Strict);
    for format in FORMATS {
        let ev = c.envelope(format, &|sig| stranger.token(sig, WHILE_VALID));
        let e = check(&v, &ev).unwrap_err();
        assert!(
            matches!(&e, NotationRefusal::TimestampInvalid(d)
                if d.contains("CN=Stranger TSA") && d.contains("does not chain to a TSA root of the trust store")),
            "{format:?}: {e}"
        );
    }
}

#[test]
fn token_whose_message_imprint_covers_another_signature_is_refused() {
    let c = Case::new();
    let v = c.verifier(Level::Strict);
    for format in FORMATS {
        let ev = c.envelope(format, &|_| c.tsa.token(b"another signature", WHILE_VALID));
        let e = check(&v, &ev).unwrap_err();
        assert_eq!(
            e,
            NotationRefusal::TimestampInvalid(
                "its message imprint is not the hash of this signature".into()
            ),
            "{format:?}"
        );
    }
}

#[test]
fn tsa_certificate_without_the_time_stamping_eku_is_refused() {
    let c = Case::new();
    let no_eku = TestTsa::without_eku("Code Signer");
    let v = c.verifier_with(&no_eku.write_root(c.dir.path(), "no-eku"), Level::Strict);
    let ev = c.envelope(EnvelopeFormat::Jws, &|sig| no_eku.token(sig, WHILE_VALID));
    let e = check(&v, &ev).unwrap_err();
    assert!(
        matches!(&e, NotationRefusal::TimestampInvalid(d)
            if d.contains("CN=Code Signer") && d.contains("is not for time stamping")),
        "{e}"
    );
}

#[test]
fn timestamp_outside_the_leafs_validity_is_refused() {
    let c = Case::new();
    let v = c.verifier(Level::Strict);
    // After the leaf expired, and before it was issued.
    for (when, text) in [((2025, 3, 1), "2025-03-01"), ((2020, 6, 1), "2020-06-01")] {
        let ev = c.envelope(EnvelopeFormat::Jws, &|sig| c.tsa.token(sig, when));
        let e = check(&v, &ev).unwrap_err();
        assert!(
            matches!(&e, NotationRefusal::NotValidAtSigningTime(d)
                if d.contains(&format!("(timestamp {text}T00:00:00Z)"))),
            "{text}: {e}"
        );
    }
}

/// The trust-policy specification's table: an authentic-timestamp failure is enforced by
/// `strict`, only logged by `permissive` and `audit`, not looked at by `skip`.
#[test]
fn a_bad_timestamp_is_enforced_or_logged_as_the_level_says() {
    let c = Case::new();
    let ev = c.envelope(EnvelopeFormat::Jws, &|_| {
        c.tsa.token(b"another signature", WHILE_VALID)
    });
    let want = "Notation timestamp countersignature invalid: its message imprint is not the hash of this signature";

    let e = check(&c.verifier(Level::Strict), &ev).unwrap_err();
    assert_eq!(e.to_string(), want);
    for level in [Level::Permissive, Level::Audit] {
        let a = check(&c.verifier(level), &ev).unwrap_or_else(|e| panic!("{level:?}: {e}"));
        assert_eq!(a.logged, vec![want.to_string()], "{level:?}");
        assert!(a.signer.contains("CN=release"), "{level:?}: {}", a.signer);
    }
    let a = check(&c.verifier(Level::Skip), &ev).unwrap();
    assert!(
        a.logged.is_empty() && a.signer.contains("level skip"),
        "{a:?}"
    );
}
