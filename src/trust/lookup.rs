//! Tag lookup as Docker does it (`notary:client/client.go` GetTargetByName; `cli28:cli/command/image/trust.go`,
//! `notary:client/reader.go` GetTargetByName, `notary:tuf/tuf.go` WalkTargets).

use std::collections::{BTreeMap, VecDeque};

use serde_json::Value;

use crate::trust::error::TrustError;
use crate::trust::metadata::{FileMeta, RELEASES, TARGETS};
use crate::trust::update::{in_releases_subtree, SignerKey, VerifiedRepository, VerifiedRole};

/// A signed tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedTarget {
    /// Target name (the tag).
    pub name: String,
    /// sha256 of the manifest.
    pub sha256: [u8; 32],
    /// Manifest length in bytes.
    pub length: u64,
    /// Role whose file listed it.
    pub role: String,
    /// Keys whose valid signatures signed that role's file.
    pub key_ids: Vec<String>,
    /// The same keys with canonical IDs (for display).
    pub signers: Vec<SignerKey>,
    /// sha512 of the manifest, when listed.
    pub sha512: Option<[u8; 64]>,
    /// `custom` member, if any.
    pub custom: Option<Value>,
}

impl SignedTarget {
    /// `sha256:<hex>`, the digest Docker pulls by.
    pub fn digest(&self) -> String {
        format!("sha256:{}", hex::encode(self.sha256))
    }

    fn from_meta(
        name: &str,
        role: &VerifiedRole,
        meta: &FileMeta,
    ) -> Result<SignedTarget, TrustError> {
        let sha256 = meta
            .sha256()
            .ok_or_else(|| TrustError::NoSha256 { tag: name.into() })?;
        Ok(SignedTarget {
            name: name.into(),
            sha256,
            length: meta.length,
            role: role.name.clone(),
            key_ids: role.signers.iter().map(|s| s.key_id.clone()).collect(),
            signers: role.signers.clone(),
            sha512: meta.sha512,
            custom: meta.custom.clone(),
        })
    }
}

impl VerifiedRepository {
    /// Breadth-first over verified roles starting at `start`, skipping subtrees for which `skip`
    /// says so.
    fn bfs<'a>(&'a self, start: &str, skip: impl Fn(&str) -> bool) -> Vec<&'a VerifiedRole> {
        let mut out = Vec::new();
        let mut queue: VecDeque<&str> = VecDeque::from([start]);
        while let Some(name) = queue.pop_front() {
            if skip(name) {
                continue;
            }
            let Some(role) = self.role(name) else {
                continue;
            };
            out.push(role);
            queue.extend(role.delegations.iter().map(String::as_str));
        }
        out
    }

    /// Resolve `tag`: pass 1 `targets/releases` and its subtree, pass 2 `targets` and its other
    /// delegations; first hit wins. Docker only accepts hits in `targets/releases` or `targets`.
    /// With `required_signers`, each listed role must also have signed the same sha256 and length.
    pub fn lookup(
        &self,
        tag: &str,
        required_signers: Option<&[String]>,
    ) -> Result<SignedTarget, TrustError> {
        let order: Vec<&VerifiedRole> = self
            .bfs(RELEASES, |_| false)
            .into_iter()
            .chain(self.bfs(TARGETS, in_releases_subtree))
            .collect();
        let mut outside: Option<&str> = None;
        let mut hit = None;
        for role in order {
            let Some(meta) = role.targets.get(tag) else {
                continue;
            };
            if !role.covers(tag) {
                // Notary ignores targets outside a delegation's paths; remember why for the message.
                outside.get_or_insert(&role.name);
                continue;
            }
            hit = Some((role, meta));
            break;
        }
        let Some((role, meta)) = hit else {
            return Err(match outside {
                Some(r) => TrustError::OutsideDelegationPaths {
                    tag: tag.into(),
                    role: r.into(),
                },
                None => TrustError::UnsignedTag { tag: tag.into() },
            });
        };
        if role.name != RELEASES && role.name != TARGETS {
            return Err(TrustError::TagInOtherDelegation {
                tag: tag.into(),
                role: role.name.clone(),
            });
        }
        let found = SignedTarget::from_meta(tag, role, meta)?;
        for req in required_signers.unwrap_or(&[]) {
            let ok = self.role(req).is_some_and(|r| {
                r.covers(tag)
                    && r.targets.get(tag).is_some_and(|m| {
                        m.sha256() == Some(found.sha256) && m.length == found.length
                    })
            });
            if !ok {
                return Err(TrustError::RequiredSignerMissing {
                    tag: tag.into(),
                    role: req.clone(),
                });
            }
        }
        Ok(found)
    }

    /// All tags Docker would consider (`targets/releases` wins over `targets` per name), sorted by
    /// name. Targets without a sha256 are left out.
    pub fn signed_targets(&self) -> Vec<SignedTarget> {
        let mut out: BTreeMap<String, SignedTarget> = BTreeMap::new();
        for name in [RELEASES, TARGETS] {
            let Some(role) = self.role(name) else {
                continue;
            };
            for (tag, meta) in &role.targets {
                if out.contains_key(tag) || !role.covers(tag) {
                    continue;
                }
                if let Ok(t) = SignedTarget::from_meta(tag, role, meta) {
                    out.insert(tag.clone(), t);
                }
            }
        }
        out.into_values().collect()
    }
}
