//! Which trust rules apply to a repository: pure matching of `[[policy]]` globs against a GUN.
//!
//! Globs are matched against the GUN (`<upstream name>/<repository>`); `*` matches any run of
//! characters, `/` included, so `docker.io/library/*` covers every official image. When several
//! policies match, the most specific wins: an exact name beats any glob, and among globs the one
//! with more literal characters wins; on a tie the one written first.
//! Without a matching policy, repositories of an upstream that has a Notary server are enforced
//! (with trust on first use) and the others are served unchecked.

use std::collections::BTreeMap;

use crate::config::{PolicyConfig, TrustMode};
use crate::trust::{PublicKey, TrustPinning};

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

#[derive(Debug, Clone, Default)]
pub struct Policies {
    entries: Vec<PolicyConfig>,
}

impl Policies {
    pub fn new(entries: Vec<PolicyConfig>) -> Self {
        Self { entries }
    }

    pub fn for_gun(&self, gun: &str, upstream_has_notary: bool) -> Policy {
        let best = self
            .entries
            .iter()
            .enumerate()
            .filter_map(|(i, p)| {
                p.repositories
                    .iter()
                    .filter(|g| glob_match(g, gun))
                    .map(|g| specificity(g))
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
        let p = &self.entries[i];
        let mut pinning = TrustPinning {
            certs: BTreeMap::new(),
            ca: BTreeMap::new(),
            tofu: p.tofu,
        };
        if !p.root_cert_pems.is_empty() {
            let ids = p
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
        if let Some(ca) = &p.root_ca_pem {
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

/// Exact names rank above every glob; globs by their count of literal characters.
fn specificity(glob: &str) -> usize {
    if glob.contains('*') {
        glob.chars().filter(|c| *c != '*').count()
    } else {
        usize::MAX
    }
}

/// `*` matches any (possibly empty) run of characters; everything else matches itself.
pub fn glob_match(glob: &str, name: &str) -> bool {
    let parts: Vec<&str> = glob.split('*').collect();
    if parts.len() == 1 {
        return glob == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || !name[first.len()..].ends_with(last) {
        return false;
    }
    if name.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(pos) => rest = &rest[pos + mid.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn policy(globs: &[&str], mode: TrustMode) -> PolicyConfig {
        PolicyConfig {
            repositories: globs.iter().map(|s| s.to_string()).collect(),
            trust: mode,
            signers: vec![],
            root_certs: vec![],
            root_ca: None,
            tofu: true,
            require_signed_closure: true,
            root_cert_pems: vec![],
            root_ca_pem: None,
        }
    }

    #[test]
    fn globs() {
        assert!(glob_match(
            "docker.io/library/*",
            "docker.io/library/alpine"
        ));
        assert!(glob_match(
            "127.0.0.1:5101/team/*",
            "127.0.0.1:5101/team/sub/app"
        ));
        assert!(!glob_match(
            "127.0.0.1:5101/team/*",
            "127.0.0.1:5101/other/app"
        ));
        assert!(glob_match("*", "anything/at/all"));
        assert!(glob_match("a/*/c", "a/b/c"));
        assert!(!glob_match("a/*/c", "a/b/d"));
        assert!(glob_match("exact/name", "exact/name"));
        assert!(!glob_match("exact/name", "exact/name2"));
        assert!(!glob_match("ab*ba", "aba"));
    }

    #[test]
    fn the_most_specific_policy_wins() {
        let ps = Policies::new(vec![
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
        let ps = Policies::new(vec![]);
        assert_eq!(ps.for_gun("a.io/x", true).mode, TrustMode::Enforce);
        assert_eq!(ps.for_gun("a.io/x", false).mode, TrustMode::Off);
        assert!(ps.for_gun("a.io/x", true).pinning.tofu);
    }

    #[test]
    fn ties_go_to_the_first_entry() {
        let ps = Policies::new(vec![
            policy(&["a.io/x*"], TrustMode::Audit),
            policy(&["a.io/*y"], TrustMode::Off),
        ]);
        assert_eq!(ps.for_gun("a.io/xy", true).mode, TrustMode::Audit);
        assert_eq!(ps.for_gun("a.io/xy", true).from, Some(0));
    }

    #[test]
    fn tofu_switch_and_ca_reach_the_pinning() {
        let mut p = policy(&["a.io/*"], TrustMode::Enforce);
        p.tofu = false;
        p.root_ca_pem = Some("PEM".into());
        let got = Policies::new(vec![p]).for_gun("a.io/app", true);
        assert!(!got.pinning.tofu);
        assert_eq!(
            got.pinning.ca.get("a.io/app").map(String::as_str),
            Some("PEM")
        );
    }

    proptest! {
        #[test]
        fn a_glob_made_from_the_name_matches_it(name in "[a-z/.:0-9]{0,30}", cut in 0usize..30) {
            let cut = cut.min(name.len());
            let glob = format!("{}*", &name[..cut]);
            prop_assert!(glob_match(&glob, &name));
            prop_assert!(glob_match(&name, &name));
        }
    }
}
