//! Which trust rules apply to a repository: the `[[policy]]` section of the configuration
//! ([`PolicyConfig`], [`TrustMode`]) and pure matching of its globs against a GUN.
//!
//! Globs are matched against the GUN (`<upstream name>/<repository>`) by [`crate::glob`]. When
//! several policies match, the most specific wins: an exact name beats any glob, and among globs
//! the one with more literal characters wins; on a tie the one written first.
//! Without a matching policy, repositories of an upstream that has a Notary server are enforced
//! (with trust on first use) and the others are served unchecked.

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
}

/// The rules for one GUN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub mode: TrustMode,
    /// Roles that must all have signed a tag.
    pub signers: Vec<String>,
    pub pinning: TrustPinning,
    pub require_signed_closure: bool,
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
}
