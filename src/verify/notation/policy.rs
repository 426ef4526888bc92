//! Building a `kind = "notation"` verifier: from inline keys (`trust_store`, `tsa_roots`,
//! `trusted_identities`, `level`) or from the operator's own Notation files (`trust_policy =
//! "trustpolicy.json"` and `trust_store_dir`, the directory `notation cert add` fills:
//! `x509/{ca,signingAuthority,tsa}/<name>/*.pem|*.crt|*.cer|*.der`).
//!
//! A trust policy document holds several statements, each for some `registryScopes`
//! (`registry/repository`, or `"*"`); the statement for the image being pulled is chosen at
//! verification time, exactly as `notation verify` chooses it (an exact scope first, then the
//! wildcard).

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Deserialize;

use super::certs::TrustedIdentity;
use super::{
    verify_with, Action, Level, NotationAccepted, NotationEvidence, NotationRefusal,
    TargetManifest, TrustSet,
};
use crate::verify::config::VerifierConfig;

/// Why a verifier cannot be built (key, problem).
#[derive(Debug, thiserror::Error)]
#[error("{key}: {problem}")]
pub struct NotationConfigError {
    pub key: String,
    pub problem: String,
}

fn err(key: impl Into<String>, problem: impl Into<String>) -> NotationConfigError {
    NotationConfigError {
        key: key.into(),
        problem: problem.into(),
    }
}

/// A `kind = "notation"` verifier, built once.
pub struct NotationVerifier {
    name: String,
    /// `(registry scopes, trust set)`; inline configuration is one statement for `"*"`.
    statements: Vec<(Vec<String>, TrustSet)>,
}

impl fmt::Debug for NotationVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NotationVerifier")
            .field("name", &self.name)
            .field("statements", &self.statements.len())
            .finish_non_exhaustive()
    }
}

/// Certificates of a PEM or DER file (a file may hold several PEM certificates).
fn read_certs(file: &Path) -> Result<Vec<Vec<u8>>, String> {
    let bytes = std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let certs: Vec<Vec<u8>> = match pem::parse_many(&bytes) {
        Ok(blocks) if !blocks.is_empty() => blocks
            .into_iter()
            .filter(|b| b.tag() == "CERTIFICATE")
            .map(|b| b.into_contents())
            .collect(),
        _ => vec![bytes],
    };
    if certs.is_empty() {
        return Err(format!("{} holds no certificate", file.display()));
    }
    for c in &certs {
        super::certs::Cert::parse(c).map_err(|p| format!("{}: {p}", file.display()))?;
    }
    Ok(certs)
}

fn identities(
    key: &str,
    list: &[String],
) -> Result<Option<Vec<TrustedIdentity>>, NotationConfigError> {
    if list.is_empty() {
        return Err(err(key, "no trusted identity: list the signers' subjects (\"x509.subject: C=…, ST=…, O=…\") or \"*\""));
    }
    if list.iter().any(|i| i.trim() == "*") {
        if list.len() > 1 {
            return Err(err(
                key,
                "\"*\" must be the only trusted identity when used",
            ));
        }
        return Ok(None);
    }
    let parsed = list
        .iter()
        .enumerate()
        .map(|(i, t)| TrustedIdentity::parse(t).map_err(|p| err(format!("{key}[{i}]"), p)))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some((a, b)) = TrustedIdentity::overlapping(&parsed) {
        return Err(err(
            key,
            format!("{:?} overlaps with {:?} (every attribute of the first is in the second), as notation refuses", a.text, b.text),
        ));
    }
    Ok(Some(parsed))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PolicyDocument {
    version: String,
    trust_policies: Vec<Statement>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Statement {
    name: String,
    registry_scopes: Vec<String>,
    signature_verification: SignatureVerification,
    #[serde(default)]
    trust_stores: Vec<String>,
    #[serde(default)]
    trusted_identities: Vec<String>,
}

#[derive(Deserialize)]
struct SignatureVerification {
    level: Level,
    #[serde(default, rename = "override")]
    overrides: std::collections::BTreeMap<String, Action>,
    /// `verifyTimestamp` (`always` | `afterCertExpiry`): read, and `always` is what trustgate does.
    #[serde(default, rename = "verifyTimestamp")]
    _verify_timestamp: Option<String>,
}

impl NotationVerifier {
    pub fn from_config(config: &VerifierConfig, base: &Path) -> Result<Self, NotationConfigError> {
        let statements = match (&config.trust_policy, config.trust_store.is_empty()) {
            (Some(_), false) => {
                return Err(err(
                    "trust_policy",
                    "give either trust_policy (with trust_store_dir) or trust_store, not both",
                ))
            }
            (Some(policy), true) => {
                let dir = config.trust_store_dir.as_ref().ok_or_else(|| {
                    err("trust_store_dir", "trust_policy needs the Notation trust store directory (the one holding x509/)")
                })?;
                load_policy(&base.join(policy), &base.join(dir))?
            }
            (None, true) => {
                return Err(err(
                    "trust_store",
                    "a notation verifier needs trust_store (CA certificate files) or trust_policy with trust_store_dir",
                ))
            }
            (None, false) => {
                let mut ca = Vec::new();
                for (i, f) in config.trust_store.iter().enumerate() {
                    ca.extend(read_certs(&base.join(f)).map_err(|p| err(format!("trust_store[{i}]"), p))?);
                }
                let mut tsa = Vec::new();
                for (i, f) in config.tsa_roots.iter().enumerate() {
                    tsa.extend(read_certs(&base.join(f)).map_err(|p| err(format!("tsa_roots[{i}]"), p))?);
                }
                let level = config.level.unwrap_or(Level::Strict);
                vec![(
                    vec!["*".to_string()],
                    TrustSet {
                        name: config.name.clone(),
                        checks: level.checks(),
                        signing_authority: ca.clone(),
                        ca,
                        tsa,
                        identities: identities("trusted_identities", &config.trusted_identities)?,
                    },
                )]
            }
        };
        Ok(Self {
            name: config.name.clone(),
            statements,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Verifies one envelope for the manifest of `registry/repository` (the scope a trust
    /// policy statement names).
    pub fn verify(
        &self,
        evidence: &NotationEvidence,
        scope: &str,
        target: &TargetManifest<'_>,
        now: SystemTime,
    ) -> Result<NotationAccepted, NotationRefusal> {
        let set = self
            .statement(scope)
            .ok_or_else(|| NotationRefusal::NoStatement {
                verifier: self.name.clone(),
                scope: scope.to_string(),
            })?;
        let accepted = verify_with(&self.name, set, evidence, target, now)?;
        for l in &accepted.logged {
            tracing::warn!(verifier = %self.name, scope, problem = %l,
                "Notation check failed and only logged (the verification level does not enforce it)");
        }
        tracing::info!(verifier = %self.name, scope, signer = %accepted.signer,
            "Notation signature accepted; certificate revocation (OCSP/CRL) was not checked (trustgate never checks it: it needs the network)");
        Ok(accepted)
    }

    /// Whether the verifier accepts `scope` with no signature at all (level skip).
    pub fn skips(&self, scope: &str) -> bool {
        self.statement(scope).is_some_and(|s| s.checks.skip_all)
    }

    fn statement(&self, scope: &str) -> Option<&TrustSet> {
        self.statements
            .iter()
            .find(|(scopes, _)| scopes.iter().any(|s| s == scope))
            .or_else(|| {
                self.statements
                    .iter()
                    .find(|(scopes, _)| scopes.iter().any(|s| s == "*"))
            })
            .map(|(_, set)| set)
    }
}

/// The certificates of the trust store `<dir>/x509/<kind>/<name>/`.
fn load_store(dir: &Path, kind: &str, name: &str) -> Result<Vec<Vec<u8>>, String> {
    let path = dir.join("x509").join(kind).join(name);
    let entries = std::fs::read_dir(&path).map_err(|e| {
        format!(
            "trust store {kind}:{name} ({}) cannot be read: {e}",
            path.display()
        )
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        out.extend(read_certs(&f)?);
    }
    if out.is_empty() {
        return Err(format!(
            "trust store {kind}:{name} ({}) holds no certificate",
            path.display()
        ));
    }
    Ok(out)
}

fn load_policy(
    file: &Path,
    dir: &Path,
) -> Result<Vec<(Vec<String>, TrustSet)>, NotationConfigError> {
    let text = std::fs::read(file).map_err(|e| {
        err(
            "trust_policy",
            format!("cannot read {}: {e}", file.display()),
        )
    })?;
    let doc: PolicyDocument = serde_json::from_slice(&text).map_err(|e| {
        err(
            "trust_policy",
            format!("{} is not a Notation trust policy: {e}", file.display()),
        )
    })?;
    if doc.version != "1.0" {
        return Err(err(
            "trust_policy",
            format!("{}: version {:?} is not 1.0", file.display(), doc.version),
        ));
    }
    let mut out: Vec<(Vec<String>, TrustSet)> = Vec::new();
    for (i, s) in doc.trust_policies.into_iter().enumerate() {
        let key = format!(
            "trust_policy {}: trustPolicies[{i}] ({})",
            file.display(),
            s.name
        );
        if s.registry_scopes.is_empty() {
            return Err(err(key, "registryScopes is empty"));
        }
        for scope in &s.registry_scopes {
            if out.iter().any(|(scopes, _)| scopes.contains(scope)) {
                return Err(err(
                    key,
                    format!("registry scope {scope:?} is already in another statement"),
                ));
            }
        }
        let mut checks = s.signature_verification.level.checks();
        for (check, action) in &s.signature_verification.overrides {
            match check.as_str() {
                "authenticity" => checks.authenticity = *action,
                "authenticTimestamp" => checks.authentic_timestamp = *action,
                "expiry" => checks.expiry = *action,
                // Never checked (it needs the network); logged on every acceptance.
                "revocation" => {}
                other => {
                    return Err(err(
                        key,
                        format!("override of {other:?}: not a check that can be overridden"),
                    ))
                }
            }
        }
        let (mut ca, mut sa, mut tsa) = (Vec::new(), Vec::new(), Vec::new());
        for store in &s.trust_stores {
            let (kind, name) = store
                .split_once(':')
                .ok_or_else(|| err(&key, format!("trust store {store:?} is not <type>:<name>")))?;
            let certs = load_store(dir, kind, name).map_err(|p| err(&key, p))?;
            match kind {
                "ca" => ca.extend(certs),
                "signingAuthority" => sa.extend(certs),
                "tsa" => tsa.extend(certs),
                other => {
                    return Err(err(
                        &key,
                        format!("trust store type {other:?} is not ca, signingAuthority or tsa"),
                    ))
                }
            }
        }
        let skip = checks.skip_all;
        let ids = if skip {
            None
        } else {
            if ca.is_empty() && sa.is_empty() {
                return Err(err(
                    &key,
                    "trustStores names no ca or signingAuthority store",
                ));
            }
            identities(&format!("{key}: trustedIdentities"), &s.trusted_identities)?
        };
        out.push((
            s.registry_scopes,
            TrustSet {
                name: s.name,
                checks,
                ca,
                signing_authority: sa,
                tsa,
                identities: ids,
            },
        ));
    }
    if out.is_empty() {
        return Err(err(
            "trust_policy",
            format!("{} has no trust policy statement", file.display()),
        ));
    }
    Ok(out)
}
