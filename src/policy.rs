//! Which trust rules apply to a repository: the `[[policy]]` section of the configuration
//! ([`PolicyConfig`], [`TrustMode`]) and pure matching of its globs against a GUN.
//!
//! Globs are matched against the GUN (`<upstream name>/<repository>`) by [`crate::glob`]. When
//! several policies match, the most specific wins: an exact name beats any glob, and among globs
//! the one with more literal characters wins; on a tie the one written first.
//! Without a matching policy, repositories of an upstream that has a Notary server are enforced
//! (with trust on first use) and the others are served unchecked.
//!
//! Which signatures decide (issue 12): a policy without `verifiers` (or with `verifiers =
//! ["notary"]`) uses the upstream's Notary v1 server, as before. Otherwise it names
//! `[[verifier]]` tables (cosign) and how many of them must accept a digest (`require = "any" |
//! "all" | N`): [`Signatures`]. `notary` is the reserved name of the implicit Notary v1
//! verifier; it signs tags where the others sign digests, so it is not mixed with them in one
//! policy.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::glob;
use crate::trust::{PublicKey, TrustPinning};

/// What to do with content-trust data for matching repositories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrustMode {
    /// Serve only what is signed.
    Enforce,
    /// Serve everything, but log and count what `enforce` would refuse.
    Audit,
    /// No trust checks (plain pull-through).
    Off,
}

/// `[[policy]]`: rules for the repositories its globs match (`<upstream name>/<repository>`,
/// i.e. the GUN). The most specific matching policy wins.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    pub repositories: Vec<String>,
    pub trust: TrustMode,
    /// Roles that must all have signed a tag (e.g. `["targets/releases"]`).
    #[serde(default)]
    pub signers: Vec<String>,
    /// PEM files of root certificates this repository's root must use.
    #[serde(default)]
    pub root_certs: Vec<PathBuf>,
    /// PEM file of a CA the repository's root certificate must chain to.
    pub root_ca: Option<PathBuf>,
    /// Trust the first root seen when nothing is pinned (Docker's behaviour).
    #[serde(default = "default_true")]
    pub tofu: bool,
    /// Serve digests only when reachable from a signed tag (index → manifests → config, layers).
    #[serde(default = "default_true")]
    pub require_signed_closure: bool,
    /// The verifiers whose signatures decide: `[[verifier]]` names, or `notary` (the upstream's
    /// Notary v1 server). Empty: Notary v1.
    #[serde(default)]
    pub verifiers: Vec<String>,
    /// How many of `verifiers` must accept a digest: `"any"` (the default), `"all"` or a number.
    pub require: Option<Require>,
}

/// The implicit verifier of every upstream with a Notary v1 server; no `[[verifier]]` may take
/// its name.
pub const NOTARY_VERIFIER: &str = "notary";

/// `require = "any" | "all" | N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawRequire")]
pub enum Require {
    Any,
    All,
    AtLeast(usize),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawRequire {
    Count(i64),
    Word(String),
}

impl TryFrom<RawRequire> for Require {
    type Error = String;
    fn try_from(raw: RawRequire) -> Result<Self, String> {
        match raw {
            RawRequire::Word(w) if w == "any" => Ok(Self::Any),
            RawRequire::Word(w) if w == "all" => Ok(Self::All),
            RawRequire::Word(w) => Err(format!(
                "{w:?} is not \"any\", \"all\" or a number of verifiers"
            )),
            RawRequire::Count(n) if n >= 1 => Ok(Self::AtLeast(n as usize)),
            RawRequire::Count(n) => Err(format!("must be at least 1, not {n}")),
        }
    }
}

impl Require {
    /// How many of `of` verifiers must accept.
    pub fn count(self, of: usize) -> usize {
        match self {
            Self::Any => 1,
            Self::All => of,
            Self::AtLeast(n) => n,
        }
    }
}

/// Which signatures decide for a repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signatures {
    /// Docker Content Trust: the upstream's Notary v1 server signs tags.
    NotaryV1,
    /// Verifiers that sign digests (cosign): `need` of `verifiers` must accept the digest.
    Digest { verifiers: Vec<String>, need: usize },
}

impl Signatures {
    /// A short label for logs and `trustgate verify`: `notary`, `cosign:any of acme, ops`.
    pub fn describe(&self) -> String {
        match self {
            Self::NotaryV1 => NOTARY_VERIFIER.to_string(),
            Self::Digest { verifiers, need } => {
                format!("{need} of [{}]", verifiers.join(", "))
            }
        }
    }
}

fn default_true() -> bool {
    true
}

impl PolicyConfig {
    /// The checks that need no file: at least one glob, each a usable one, and not both kinds of
    /// root pinning. Returns the key (relative to this entry, e.g. `repositories[1]`) and the
    /// problem.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if self.repositories.is_empty() {
            return Err(("repositories".into(), "must list at least one glob".into()));
        }
        for (j, g) in self.repositories.iter().enumerate() {
            if let Some(problem) = glob::problem(g) {
                return Err((format!("repositories[{j}]"), problem));
            }
        }
        if !self.root_certs.is_empty() && self.root_ca.is_some() {
            return Err((
                "root_ca".into(),
                "root_certs and root_ca are alternatives; set one of them".into(),
            ));
        }
        Ok(())
    }

    /// The checks of `verifiers` and `require` against the names `[[verifier]]` defines.
    pub fn validate_verifiers(&self, defined: &[&str]) -> Result<(), (String, String)> {
        for (j, v) in self.verifiers.iter().enumerate() {
            if v != NOTARY_VERIFIER && !defined.contains(&v.as_str()) {
                let known = if defined.is_empty() {
                    "none".to_string()
                } else {
                    defined.join(", ")
                };
                return Err((
                    format!("verifiers[{j}]"),
                    format!("unknown verifier {v:?}: no [[verifier]] has that name (defined: {known}; `{NOTARY_VERIFIER}` is the upstream's Notary v1 server)"),
                ));
            }
            if self.verifiers[..j].contains(v) {
                return Err((format!("verifiers[{j}]"), format!("{v:?} is listed twice")));
            }
        }
        let notary = self.verifiers.iter().any(|v| v == NOTARY_VERIFIER);
        if notary && self.verifiers.len() > 1 {
            return Err((
                "verifiers".into(),
                format!("`{NOTARY_VERIFIER}` (Notary v1 signs tags) cannot be combined with verifiers that sign digests in one policy; use separate policies"),
            ));
        }
        let digest = !self.verifiers.is_empty() && !notary;
        match self.require {
            Some(_) if self.verifiers.is_empty() => {
                return Err((
                    "require".into(),
                    "is set but verifiers is not; list the verifiers it counts".into(),
                ))
            }
            Some(Require::AtLeast(n)) if n > self.verifiers.len() => {
                return Err((
                    "require".into(),
                    format!(
                        "{n} verifiers must accept, but only {} {} listed",
                        self.verifiers.len(),
                        if self.verifiers.len() == 1 {
                            "is"
                        } else {
                            "are"
                        }
                    ),
                ))
            }
            _ => {}
        }
        if digest {
            let notary_only = [
                ("signers", !self.signers.is_empty()),
                ("root_certs", !self.root_certs.is_empty()),
                ("root_ca", self.root_ca.is_some()),
            ];
            if let Some((k, _)) = notary_only.iter().find(|(_, set)| *set) {
                return Err((
                    (*k).into(),
                    format!(
                        "applies to Notary v1 only, and this policy's verifiers are {:?}",
                        self.verifiers
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Which signatures decide (after validation).
    pub fn signatures(&self) -> Signatures {
        if self.verifiers.is_empty() || self.verifiers.iter().any(|v| v == NOTARY_VERIFIER) {
            return Signatures::NotaryV1;
        }
        Signatures::Digest {
            verifiers: self.verifiers.clone(),
            need: self
                .require
                .unwrap_or(Require::Any)
                .count(self.verifiers.len()),
        }
    }
}

/// The rules for one GUN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub mode: TrustMode,
    /// Roles that must all have signed a tag.
    pub signers: Vec<String>,
    pub pinning: TrustPinning,
    pub require_signed_closure: bool,
    /// Which signatures decide.
    pub signatures: Signatures,
    /// Which `[[policy]]` entry decided (for logs); `None` = the default.
    pub from: Option<usize>,
}

/// A `[[policy]]` file that cannot be used, printed as `policy[0].root_certs[1]: cannot read …`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("policy[{index}].{key}: {problem}")]
pub struct PolicyError {
    pub index: usize,
    pub key: String,
    pub problem: String,
}

/// One `[[policy]]` entry with the PEM texts of its pinned root certificates or CA.
#[derive(Debug, Clone)]
struct Entry {
    config: PolicyConfig,
    root_cert_pems: Vec<String>,
    root_ca_pem: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Policies {
    entries: Vec<Entry>,
}

impl Policies {
    /// The policies `[[policy]]` lists, with the PEM files they pin (`root_certs`, `root_ca`)
    /// read; `serve` and `check-config` both build them here.
    pub fn from_config(entries: &[PolicyConfig]) -> Result<Self, PolicyError> {
        let entries = entries
            .iter()
            .enumerate()
            .map(|(index, p)| {
                let fail = |key: String, problem: String| PolicyError {
                    index,
                    key,
                    problem,
                };
                let root_cert_pems = p
                    .root_certs
                    .iter()
                    .enumerate()
                    .map(|(j, path)| {
                        read_pem(path).map_err(|e| fail(format!("root_certs[{j}]"), e))
                    })
                    .collect::<Result<_, _>>()?;
                let root_ca_pem = p
                    .root_ca
                    .as_deref()
                    .map(|path| read_pem(path).map_err(|e| fail("root_ca".into(), e)))
                    .transpose()?;
                Ok(Entry {
                    config: p.clone(),
                    root_cert_pems,
                    root_ca_pem,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { entries })
    }

    pub fn for_gun(&self, gun: &str, upstream_has_notary: bool) -> Policy {
        let best = self
            .entries
            .iter()
            .enumerate()
            .filter_map(|(i, e)| {
                e.config
                    .repositories
                    .iter()
                    .filter(|g| glob::matches(g, gun))
                    .map(|g| glob::specificity(g))
                    .max()
                    .map(|s| (s, i))
            })
            // Highest specificity; on a tie the earliest entry (hence the reversed index).
            .max_by_key(|(s, i)| (*s, std::cmp::Reverse(*i)));
        let Some((_, i)) = best else {
            return Policy {
                mode: if upstream_has_notary {
                    TrustMode::Enforce
                } else {
                    TrustMode::Off
                },
                signers: Vec::new(),
                pinning: TrustPinning::default(),
                require_signed_closure: true,
                signatures: Signatures::NotaryV1,
                from: None,
            };
        };
        let entry = &self.entries[i];
        let p = &entry.config;
        let mut pinning = TrustPinning {
            certs: BTreeMap::new(),
            ca: BTreeMap::new(),
            tofu: p.tofu,
        };
        if !entry.root_cert_pems.is_empty() {
            let ids = entry
                .root_cert_pems
                .iter()
                .flat_map(|pem| {
                    // The pin names the certificate's public key (its canonical ID), whatever
                    // bytes the PEM file has; the verifier accepts either key type's ID.
                    ["ecdsa-x509", "rsa-x509"]
                        .map(|t| PublicKey::new(t, pem.as_bytes().to_vec()).canonical_id())
                })
                .collect();
            pinning.certs.insert(gun.to_string(), ids);
        }
        if let Some(ca) = &entry.root_ca_pem {
            pinning.ca.insert(gun.to_string(), ca.clone());
        }
        Policy {
            mode: p.trust,
            signers: p.signers.clone(),
            pinning,
            require_signed_closure: p.require_signed_closure,
            signatures: p.signatures(),
            from: Some(i),
        }
    }
}

/// A PEM file that must hold at least one certificate (the verifier parses it).
fn read_pem(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if !text.contains("-----BEGIN CERTIFICATE-----") {
        return Err(format!("{} holds no PEM certificate", path.display()));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(globs: &[&str], mode: TrustMode) -> PolicyConfig {
        PolicyConfig {
            repositories: globs.iter().map(|s| s.to_string()).collect(),
            trust: mode,
            signers: vec![],
            root_certs: vec![],
            root_ca: None,
            tofu: true,
            require_signed_closure: true,
            verifiers: vec![],
            require: None,
        }
    }

    fn policies(entries: Vec<PolicyConfig>) -> Policies {
        Policies::from_config(&entries).unwrap()
    }

    #[test]
    fn the_most_specific_policy_wins() {
        let ps = policies(vec![
            policy(&["docker.io/*"], TrustMode::Audit),
            policy(&["docker.io/library/*"], TrustMode::Off),
            policy(&["docker.io/library/alpine"], TrustMode::Enforce),
        ]);
        assert_eq!(
            ps.for_gun("docker.io/library/alpine", true).mode,
            TrustMode::Enforce
        );
        assert_eq!(
            ps.for_gun("docker.io/library/busybox", true).mode,
            TrustMode::Off
        );
        assert_eq!(
            ps.for_gun("docker.io/user/app", true).mode,
            TrustMode::Audit
        );
    }

    #[test]
    fn defaults_depend_on_whether_the_upstream_has_a_notary() {
        let ps = policies(vec![]);
        assert_eq!(ps.for_gun("a.io/x", true).mode, TrustMode::Enforce);
        assert_eq!(ps.for_gun("a.io/x", false).mode, TrustMode::Off);
        assert!(ps.for_gun("a.io/x", true).pinning.tofu);
    }

    #[test]
    fn ties_go_to_the_first_entry() {
        let ps = policies(vec![
            policy(&["a.io/x*"], TrustMode::Audit),
            policy(&["a.io/*y"], TrustMode::Off),
        ]);
        assert_eq!(ps.for_gun("a.io/xy", true).mode, TrustMode::Audit);
        assert_eq!(ps.for_gun("a.io/xy", true).from, Some(0));
    }

    #[test]
    fn tofu_switch_and_ca_reach_the_pinning() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        let pem = "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n";
        std::fs::write(&ca, pem).unwrap();
        let mut p = policy(&["a.io/*"], TrustMode::Enforce);
        p.tofu = false;
        p.root_ca = Some(ca);
        let got = policies(vec![p]).for_gun("a.io/app", true);
        assert!(!got.pinning.tofu);
        assert_eq!(
            got.pinning.ca.get("a.io/app").map(String::as_str),
            Some(pem)
        );
    }

    #[test]
    fn pinned_files_must_exist_and_hold_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key.pem");
        std::fs::write(&key, "-----BEGIN PRIVATE KEY-----\n").unwrap();
        let mut p = policy(&["a.io/*"], TrustMode::Enforce);
        p.root_certs = vec![key.clone()];
        let e =
            Policies::from_config(&[policy(&["b.io/*"], TrustMode::Off), p.clone()]).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "policy[1].root_certs[0]: {} holds no PEM certificate",
                key.display()
            )
        );
        p.root_certs = vec![];
        p.root_ca = Some(dir.path().join("missing.pem"));
        let e = Policies::from_config(&[p]).unwrap_err();
        assert!(
            e.to_string().starts_with("policy[0].root_ca: cannot read "),
            "{e}"
        );
    }

    #[test]
    fn verifiers_and_require_are_checked_against_the_defined_names() {
        let mut p = policy(&["a.io/*"], TrustMode::Enforce);
        assert_eq!(p.signatures(), Signatures::NotaryV1);
        p.verifiers = vec!["acme".into(), "ops".into()];
        let e = p.validate_verifiers(&["acme"]).unwrap_err();
        assert_eq!(e.0, "verifiers[1]");
        assert!(e.1.starts_with("unknown verifier \"ops\""), "{}", e.1);
        assert!(p.validate_verifiers(&["acme", "ops"]).is_ok());
        assert_eq!(
            p.signatures(),
            Signatures::Digest {
                verifiers: vec!["acme".into(), "ops".into()],
                need: 1
            }
        );
        p.require = Some(Require::AtLeast(3));
        let e = p.validate_verifiers(&["acme", "ops"]).unwrap_err();
        assert_eq!(
            e,
            (
                "require".to_string(),
                "3 verifiers must accept, but only 2 are listed".to_string()
            )
        );
        p.require = Some(Require::All);
        assert!(matches!(p.signatures(), Signatures::Digest { need: 2, .. }));
        p.verifiers = vec!["notary".into(), "acme".into()];
        assert_eq!(p.validate_verifiers(&["acme"]).unwrap_err().0, "verifiers");
        p.verifiers = vec!["acme".into(), "acme".into()];
        assert!(p
            .validate_verifiers(&["acme"])
            .unwrap_err()
            .1
            .contains("listed twice"));
        p.verifiers = vec!["notary".into()];
        p.require = None;
        assert!(p.validate_verifiers(&[]).is_ok());
        assert_eq!(p.signatures(), Signatures::NotaryV1);
        p.verifiers = vec![];
        p.require = Some(Require::Any);
        assert_eq!(p.validate_verifiers(&[]).unwrap_err().0, "require");
        p.require = None;
        p.verifiers = vec!["acme".into()];
        p.signers = vec!["targets/releases".into()];
        assert_eq!(p.validate_verifiers(&["acme"]).unwrap_err().0, "signers");
    }
}
