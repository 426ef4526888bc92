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
#[derive(Debug, Clone, Deserialize)]
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
}

fn default_true() -> bool {
    true
}

/// The kinds of `[[verifier]]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VerifierKind {
    /// Sigstore cosign: keyed, or keyless (Fulcio certificate and Rekor log).
    Cosign,
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
