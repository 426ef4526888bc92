//! `[[verifier]]`: signature verifiers defined once by name and used by policies
//! (`[[policy]] verifiers = ["…"]`, `require = "any" | "all" | N`).
//!
//! These are the raw, deserialized tables. Each verifier kind builds its runtime value from them
//! (`crate::verify::cosign::CosignVerifier::from_config`), loading the files they name; that is
//! also what `trustgate check-config` runs, so a key file that cannot be read is reported with the
//! file, the key and the problem before a restart.

use std::path::PathBuf;

use serde::Deserialize;

/// One `[[verifier]]` table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifierConfig {
    /// How policies refer to this verifier.
    pub name: String,
    pub kind: VerifierKind,
    /// cosign keyed: PEM files of public keys (ECDSA P-256/P-384, RSA, Ed25519). A signature
    /// made by any of them is accepted.
    #[serde(default)]
    pub keys: Vec<PathBuf>,
    /// cosign keyless: the signer identities accepted (any one of them).
    #[serde(default)]
    pub identities: Vec<IdentityConfig>,
    /// cosign keyless: a Sigstore trusted-root file (Fulcio CAs, Rekor and CT log keys,
    /// timestamp authorities).
    pub trusted_root: Option<PathBuf>,
    /// Whether a transparency-log proof is required. Default: `require` for keyless, `skip`
    /// for keyed.
    pub transparency: Option<Transparency>,
    /// Whether the signed payload's `docker-reference` must name the repository being pulled.
    /// Off for images copied between registries with their signatures.
    #[serde(default = "default_true")]
    pub check_reference: bool,
    /// notation: certificate files (PEM or DER) trusted for signing (`notary.x509` and
    /// `notary.x509.signingAuthority`): root CAs, intermediates, or self-signed signing certificates.
    #[serde(default)]
    pub trust_store: Vec<PathBuf>,
    /// notation: TSA root certificates that verify RFC 3161 timestamp countersignatures.
    #[serde(default)]
    pub tsa_roots: Vec<PathBuf>,
    /// notation: `"x509.subject: C=…, ST=…, O=…, CN=…"` entries, or `["*"]`.
    #[serde(default)]
    pub trusted_identities: Vec<String>,
    /// notation: `strict` (default) | `permissive` | `audit` | `skip`.
    pub level: Option<crate::verify::notation::Level>,
    /// notation: a Notary Project trust policy document (`trustpolicy.json`) instead of the
    /// inline keys; needs `trust_store_dir`.
    pub trust_policy: Option<PathBuf>,
    /// notation: the Notation trust store directory (holding `x509/{ca,signingAuthority,tsa}/<name>/`).
    pub trust_store_dir: Option<PathBuf>,
}

fn default_true() -> bool {
    true
}

/// The kinds of `[[verifier]]`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VerifierKind {
    /// Sigstore cosign: keyed, or keyless (Fulcio certificate and Rekor log).
    #[default]
    Cosign,
    /// The Notary Project's Notation: X.509 certificate chains to the operator's trust store.
    Notation,
}

/// One accepted keyless signer: an OIDC issuer and a certificate subject (SAN), each given
/// exactly or as a regular expression (anchored: it must match the whole value). Both halves are
/// required (`issuer` or `issuer_regex`, and `subject` or `subject_regex`), as cosign requires
/// them: a subject alone would be accepted from any issuer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    pub issuer: Option<String>,
    pub issuer_regex: Option<String>,
    pub subject: Option<String>,
    pub subject_regex: Option<String>,
}

/// `transparency = "require" | "skip"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transparency {
    Require,
    Skip,
}
