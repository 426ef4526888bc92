//! Trust anchoring like Notary's trust pinning (`notary:trustpinning/trustpin.go`):
//! pinned certificate IDs per GUN, else a CA for a GUN prefix, else trust on first use (TOFU),
//! which can be switched off.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::trust::keys::{self, PublicKey};

/// Trust pinning configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustPinning {
    /// GUN → accepted root certificate IDs. A root key matches when its key ID, the ID of its
    /// re-encoded certificate bundle (what Notary computes) or its canonical key ID is listed.
    #[serde(default)]
    pub certs: BTreeMap<String, Vec<String>>,
    /// GUN prefix → PEM of CA certificates; the root leaf must chain to one of them.
    #[serde(default)]
    pub ca: BTreeMap<String, String>,
    /// Trust on first use for GUNs matched by neither (Docker's default: on).
    #[serde(default = "default_true")]
    pub tofu: bool,
}

fn default_true() -> bool {
    true
}

impl Default for TrustPinning {
    fn default() -> Self {
        TrustPinning {
            certs: BTreeMap::new(),
            ca: BTreeMap::new(),
            tofu: true,
        }
    }
}

/// The check that applies to one GUN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PinCheck<'a> {
    Certs(&'a [String]),
    Ca(&'a str),
    Tofu,
}

impl TrustPinning {
    /// Which anchor applies (Notary: certs, else the longest matching CA prefix, else TOFU).
    /// `None` when TOFU is off, nothing matches and there is no previously trusted root.
    pub(crate) fn check_for(&self, gun: &str, first_bootstrap: bool) -> Option<PinCheck<'_>> {
        if let Some(ids) = self.certs.get(gun) {
            return Some(PinCheck::Certs(ids));
        }
        if let Some((_, ca)) = self
            .ca
            .iter()
            .filter(|(p, _)| gun.starts_with(p.as_str()))
            .max_by_key(|(p, _)| p.len())
        {
            return Some(PinCheck::Ca(ca));
        }
        if self.tofu || !first_bootstrap {
            return Some(PinCheck::Tofu);
        }
        None
    }
}

impl PinCheck<'_> {
    /// Whether a root key (already leaf-validated) satisfies this anchor.
    pub(crate) fn accepts(&self, key: &PublicKey, now: OffsetDateTime) -> Result<(), String> {
        match self {
            PinCheck::Tofu => Ok(()),
            PinCheck::Certs(ids) => {
                let reencoded =
                    keys::key_id(key.key_type(), &keys::pem_encode_certs(key.certificates()));
                let candidates = [key.id().to_string(), reencoded, key.canonical_id()];
                if ids.iter().any(|id| candidates.contains(id)) {
                    Ok(())
                } else {
                    Err(format!(
                        "root certificate {} is not one of the pinned certificates",
                        key.id()
                    ))
                }
            }
            PinCheck::Ca(pem) => {
                let cas =
                    keys::parse_pem_certs(pem.as_bytes()).map_err(|e| format!("pinned CA: {e}"))?;
                let certs = key.certificates();
                let leaf = certs.first().ok_or("root key has no certificate")?;
                chain_to_ca(leaf, &certs[1..], &cas, now)
            }
        }
    }
}

/// Walk leaf → intermediates (from the root key's bundle) → one of the pinned CAs.
fn chain_to_ca(
    leaf: &[u8],
    intermediates: &[Vec<u8>],
    cas: &[Vec<u8>],
    now: OffsetDateTime,
) -> Result<(), String> {
    let mut current: &[u8] = leaf;
    let mut last_err = String::from("no CA certificate matches the root certificate's issuer");
    for _depth in 0..=intermediates.len() {
        for ca in cas {
            match keys::cert_signed_by(current, ca, now) {
                Ok(()) => return Ok(()),
                Err(e) => last_err = e,
            }
        }
        let (_, issuer) = keys::cert_names(current).ok_or("bad certificate")?;
        let next = intermediates.iter().find(|i| {
            keys::cert_is_ca(i)
                && keys::cert_names(i).is_some_and(|(subject, _)| subject == issuer)
                && keys::cert_signed_by(current, i, now).is_ok()
        });
        match next {
            Some(n) => current = n,
            None => break,
        }
    }
    Err(format!(
        "root certificate does not chain to the pinned CA: {last_err}"
    ))
}
