//! Verifiers that sign digests (cosign; Notation joins in issue 13): the named `[[verifier]]`
//! set, and the pure decision of whether the signatures found for a digest satisfy a policy's
//! `verifiers` and `require`.
//!
//! A verifier accepts a digest when ANY signature found is accepted by it; a policy accepts the
//! digest when at least `need` of its verifiers do. The refusal names what each verifier said
//! about the signatures it saw, so a client reads why (`signature not made by any key of
//! verifier acme-release`), and carries a [`Reason`] for the audit line and the metric.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use crate::decision::Reason;
use crate::reference::Digest;
use crate::verify::config::{VerifierConfig, VerifierKind};
use crate::verify::cosign::{Accepted, CosignConfigError, CosignVerifier, Expected};
use crate::verify::discovery::{DiscoveryError, Evidence, Found, Location};
use crate::verify::notation::{NotationConfigError, NotationVerifier, TargetManifest};

/// The `[[verifier]]` tables, built once.
#[derive(Debug, Default)]
pub struct DigestVerifiers {
    by_name: BTreeMap<String, Arc<DigestVerifier>>,
}

/// One `[[verifier]]`, of either kind. Built once and held in an `Arc`: the size difference
/// between the kinds costs nothing.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum DigestVerifier {
    Cosign(CosignVerifier),
    Notation(NotationVerifier),
}

/// The manifest being served, when the caller has read it: Notation signs its size and media
/// type too.
#[derive(Debug, Clone, Copy)]
pub struct ManifestFacts<'a> {
    pub size: u64,
    pub media_type: &'a str,
}

impl DigestVerifier {
    /// Verifies one signature of either kind; a verifier refuses the other kind's signatures.
    pub fn verify(
        &self,
        evidence: &Evidence,
        expected: &Expected<'_>,
        manifest: Option<ManifestFacts<'_>>,
        now: SystemTime,
    ) -> Result<Accepted, String> {
        match (self, evidence) {
            (Self::Cosign(v), Evidence::Cosign(e)) => {
                v.verify(e, expected, now).map_err(|r| r.to_string())
            }
            (Self::Notation(v), Evidence::Notation(e)) => {
                let target = TargetManifest {
                    digest: expected.digest,
                    size: manifest.map(|m| m.size),
                    media_type: manifest.map(|m| m.media_type),
                };
                let scope = format!("{}/{}", expected.registry_host, expected.repository);
                v.verify(e, &scope, &target, now)
                    .map(|a| Accepted {
                        signer: a.signer,
                        issuer: None,
                        signed_at: a.signed_at,
                    })
                    .map_err(|r| r.to_string())
            }
            (Self::Cosign(v), Evidence::Notation(_)) => Err(format!(
                "a Notation signature, and verifier {} accepts cosign signatures",
                v.name()
            )),
            (Self::Notation(v), Evidence::Cosign(_)) => Err(format!(
                "a cosign signature, and verifier {} accepts Notation signatures",
                v.name()
            )),
        }
    }

    /// A Notation verifier at level `skip` for this image: accepted with no signature at all.
    fn skips(&self, expected: &Expected<'_>) -> bool {
        match self {
            Self::Notation(v) => v.skips(&format!(
                "{}/{}",
                expected.registry_host, expected.repository
            )),
            Self::Cosign(_) => false,
        }
    }

    /// Whether this verifier reads Notation signatures (which sign the manifest's size and type).
    pub fn is_notation(&self) -> bool {
        matches!(self, Self::Notation(_))
    }
}

/// A key of the other kind's table (a Notation `trust_store` on a cosign verifier…): refused
/// rather than ignored, since the operator meant it to do something.
fn misplaced_key(t: &VerifierConfig) -> Option<&'static str> {
    let cosign = [
        ("keys", !t.keys.is_empty()),
        ("identities", !t.identities.is_empty()),
        ("trusted_root", t.trusted_root.is_some()),
        ("transparency", t.transparency.is_some()),
    ];
    let notation = [
        ("trust_store", !t.trust_store.is_empty()),
        ("tsa_roots", !t.tsa_roots.is_empty()),
        ("trusted_identities", !t.trusted_identities.is_empty()),
        ("level", t.level.is_some()),
        ("trust_policy", t.trust_policy.is_some()),
        ("trust_store_dir", t.trust_store_dir.is_some()),
    ];
    let other: &[(&'static str, bool)] = match t.kind {
        VerifierKind::Cosign => &notation,
        VerifierKind::Notation => &cosign,
    };
    other.iter().find(|(_, set)| *set).map(|(k, _)| *k)
}

/// Why a `[[verifier]]` table is refused.
#[derive(Debug, thiserror::Error)]
pub enum SetupProblem {
    #[error("{key}: only a kind = \"{kind}\" verifier takes this key")]
    Misplaced {
        key: &'static str,
        kind: &'static str,
    },
    #[error("{0}")]
    Cosign(#[from] CosignConfigError),
    #[error("{0}")]
    Notation(#[from] NotationConfigError),
}

/// A `[[verifier]]` that cannot be built, printed as `verifier[0].keys[1]: cannot read …`.
#[derive(Debug, thiserror::Error)]
#[error("verifier[{index}].{source}")]
pub struct VerifierSetupError {
    pub index: usize,
    #[source]
    pub source: SetupProblem,
}

impl DigestVerifiers {
    /// Builds every verifier, reading the files they name (relative to `base`).
    pub fn from_config(tables: &[VerifierConfig], base: &Path) -> Result<Self, VerifierSetupError> {
        let mut by_name = BTreeMap::new();
        for (index, t) in tables.iter().enumerate() {
            if let Some(key) = misplaced_key(t) {
                let other = match t.kind {
                    VerifierKind::Cosign => "notation",
                    VerifierKind::Notation => "cosign",
                };
                return Err(VerifierSetupError {
                    index,
                    source: SetupProblem::Misplaced { key, kind: other },
                });
            }
            let v = match t.kind {
                VerifierKind::Cosign => CosignVerifier::from_config(t, base)
                    .map(DigestVerifier::Cosign)
                    .map_err(|e| VerifierSetupError {
                        index,
                        source: e.into(),
                    })?,
                VerifierKind::Notation => NotationVerifier::from_config(t, base)
                    .map(DigestVerifier::Notation)
                    .map_err(|e| VerifierSetupError {
                        index,
                        source: e.into(),
                    })?,
            };
            by_name.insert(t.name.clone(), Arc::new(v));
        }
        Ok(Self { by_name })
    }

    pub fn get(&self, name: &str) -> Option<&Arc<DigestVerifier>> {
        self.by_name.get(name)
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

/// A signature one verifier accepted, and where it was found.
#[derive(Debug, Clone)]
pub struct Acceptance {
    pub verifier: String,
    pub accepted: Accepted,
    pub location: Location,
}

/// The verdict on a digest that passed.
#[derive(Debug, Clone)]
pub struct DigestVerdict {
    pub digest: Digest,
    /// One acceptance per verifier that accepted (at least `need`).
    pub accepted: Vec<Acceptance>,
}

impl DigestVerdict {
    /// Who signed, for the audit line: `acme:<signer>, ops:<signer>`.
    pub fn signers(&self) -> String {
        self.accepted
            .iter()
            .map(|a| format!("{}:{}", a.verifier, a.accepted.signer))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Why a digest is not accepted under a policy's digest verifiers.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DigestFailure {
    /// Nothing that looks like a cosign or Notation signature was found.
    #[error("no {kind} signature for {image}@{digest}{}", notes(ignored))]
    NoSignature {
        /// `cosign`, `Notation` or `cosign or Notation`: what the policy's verifiers read.
        kind: &'static str,
        image: String,
        digest: Digest,
        /// Artifacts looked at and set aside (another subject, no signature layer).
        ignored: Vec<String>,
    },
    /// Signatures were found, but fewer than `need` verifiers accepted one.
    #[error("{}", rejected_message(kind, image, digest, *need, accepted, refusals))]
    Rejected {
        kind: &'static str,
        image: String,
        digest: Digest,
        need: usize,
        /// The verifiers that accepted.
        accepted: Vec<String>,
        /// For each verifier that did not: why (its refusal of the first signature it saw).
        refusals: Vec<(String, String)>,
    },
    /// The signatures could not be read (the registry failed, or served something refused).
    #[error("{source}")]
    Discovery {
        #[source]
        source: DiscoveryError,
    },
    /// An offline mirror holds no record of the tag's digest.
    #[error("the mirror is offline (upstream {upstream} has offline = true) and {image} was never resolved through it; seed it while connected (trustgate seed)")]
    OfflineNoTag { upstream: String, image: String },
    /// A policy names a verifier that is not configured (cannot happen after validation).
    #[error("verifier {0:?} is not configured")]
    UnknownVerifier(String),
}

fn notes(ignored: &[String]) -> String {
    if ignored.is_empty() {
        String::new()
    } else {
        format!(" (set aside: {})", ignored.join("; "))
    }
}

fn rejected_message(
    kind: &str,
    image: &str,
    digest: &Digest,
    need: usize,
    accepted: &[String],
    refusals: &[(String, String)],
) -> String {
    let why = refusals
        .iter()
        .map(|(v, r)| format!("{v}: {r}"))
        .collect::<Vec<_>>()
        .join("; ");
    if accepted.is_empty() && need == 1 {
        format!("no {kind} signature of {image}@{digest} was accepted: {why}")
    } else {
        format!(
            "{need} verifiers must accept {image}@{digest}, {} did ({}): {why}",
            accepted.len(),
            if accepted.is_empty() {
                "none".to_string()
            } else {
                accepted.join(", ")
            }
        )
    }
}

impl DigestFailure {
    pub fn reason(&self) -> Reason {
        match self {
            Self::NoSignature { .. } | Self::OfflineNoTag { .. } => Reason::NoSignature,
            Self::Rejected { .. } => Reason::SignatureRejected,
            Self::Discovery { source } if source.is_fetch() => Reason::Fetch,
            Self::Discovery { .. } | Self::UnknownVerifier(_) => Reason::Malformed,
        }
    }
}

/// Decides a digest (pure): `need` of `verifiers` must each accept one of `found`. A Notation
/// verifier at level `skip` accepts without a signature.
#[allow(clippy::too_many_arguments)]
pub fn decide(
    verifiers: &[(&str, &DigestVerifier)],
    need: usize,
    found: &[Found],
    ignored: &[String],
    image: &str,
    expected: &Expected<'_>,
    manifest: Option<ManifestFacts<'_>>,
    now: SystemTime,
) -> Result<DigestVerdict, DigestFailure> {
    let notation = verifiers.iter().filter(|(_, v)| v.is_notation()).count();
    let kind = match notation {
        0 => "cosign",
        n if n == verifiers.len() => "Notation",
        _ => "cosign or Notation",
    };
    let skipping = verifiers.iter().filter(|(_, v)| v.skips(expected)).count();
    if found.is_empty() && skipping < need {
        return Err(DigestFailure::NoSignature {
            kind,
            image: image.to_string(),
            digest: *expected.digest,
            ignored: ignored.to_vec(),
        });
    }
    let mut accepted = Vec::new();
    let mut refusals = Vec::new();
    for (name, v) in verifiers {
        let mut first_refusal = None;
        let mut ok = None;
        if v.skips(expected) && found.is_empty() {
            accepted.push(Acceptance {
                verifier: name.to_string(),
                accepted: Accepted {
                    signer: "not verified (level skip)".into(),
                    issuer: None,
                    signed_at: None,
                },
                location: Location::NotNeeded,
            });
            continue;
        }
        for f in found {
            match v.verify(&f.evidence, expected, manifest, now) {
                Ok(a) => {
                    ok = Some(Acceptance {
                        verifier: name.to_string(),
                        accepted: a,
                        location: f.location.clone(),
                    });
                    break;
                }
                Err(r) => {
                    first_refusal.get_or_insert(r);
                }
            }
        }
        match ok {
            Some(a) => accepted.push(a),
            None => refusals.push((
                name.to_string(),
                first_refusal.unwrap_or_else(|| "no signature to check".into()),
            )),
        }
    }
    if accepted.len() >= need {
        return Ok(DigestVerdict {
            digest: *expected.digest,
            accepted,
        });
    }
    Err(DigestFailure::Rejected {
        kind,
        image: image.to_string(),
        digest: *expected.digest,
        need,
        accepted: accepted.into_iter().map(|a| a.verifier).collect(),
        refusals,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(c: char) -> Digest {
        Digest::parse(&format!("sha256:{}", c.to_string().repeat(64))).unwrap()
    }

    #[test]
    fn messages_say_what_each_verifier_said() {
        let e = DigestFailure::NoSignature {
            kind: "cosign",
            image: "r.io/a".into(),
            digest: d('a'),
            ignored: vec![],
        };
        assert_eq!(
            e.to_string(),
            format!("no cosign signature for r.io/a@{}", d('a'))
        );
        assert_eq!(e.reason(), Reason::NoSignature);
        let e = DigestFailure::Rejected {
            kind: "cosign",
            image: "r.io/a".into(),
            digest: d('a'),
            need: 1,
            accepted: vec![],
            refusals: vec![(
                "acme-release".into(),
                "signature not made by any key of verifier acme-release".into(),
            )],
        };
        assert_eq!(
            e.to_string(),
            format!("no cosign signature of r.io/a@{} was accepted: acme-release: signature not made by any key of verifier acme-release", d('a'))
        );
        let e = DigestFailure::Rejected {
            kind: "cosign",
            image: "r.io/a".into(),
            digest: d('a'),
            need: 2,
            accepted: vec!["ops".into()],
            refusals: vec![("acme".into(), "wrong key".into())],
        };
        assert_eq!(
            e.to_string(),
            format!(
                "2 verifiers must accept r.io/a@{}, 1 did (ops): acme: wrong key",
                d('a')
            )
        );
        assert_eq!(e.reason(), Reason::SignatureRejected);
    }

    #[test]
    fn nothing_found_is_no_signature_whatever_the_verifiers() {
        let digest = d('a');
        let expected = Expected {
            registry_host: "r.io",
            repository: "a",
            digest: &digest,
        };
        let e = decide(
            &[],
            1,
            &[],
            &["x".into()],
            "r.io/a",
            &expected,
            None,
            SystemTime::UNIX_EPOCH,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("no cosign signature for r.io/a@{digest} (set aside: x)")
        );
    }
}
