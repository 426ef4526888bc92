//! The verifier seam: where the enforcement path asks "what is signed here?".
//!
//! The proxy's handlers (`proxy::manifests`, `proxy::blobs`, `proxy::tags`, `proxy::closure`)
//! ask a [`Verifier`] two questions about a [`Subject`] (the repository, its upstream registry
//! client and its Notary source) and nothing else:
//! - [`Verifier::resolve_tag`]: which digest (and, when signed, which length) a tag must serve,
//!   with the evidence that decided;
//! - [`Verifier::signed_set`]: every signed target of the repository, the roots of its signed
//!   closure (the manifests, children and blobs that may be served by digest).
//!
//! Today the one variant is [`Verifier::NotaryV1`]: Docker Content Trust, where the signed TUF
//! targets of the repository map each TAG to a (sha256, length), verified by
//! [`crate::enforce::TrustService`] (fetched from the Notary server, cached for `[trust]
//! refresh`, persisted, re-verified offline).
//!
//! How cosign joined (issue 12; Notation follows in 13): cosign signs DIGESTS, not tags. A
//! policy with `verifiers = [...]` ([`crate::policy::Signatures::Digest`]) does not go through
//! [`Verifier`]: `crate::proxy` (its `signed_digests.rs`) resolves the tag by asking the upstream
//! (HEAD), finds the digest's signatures with [`discovery`] (the OCI referrers API, the
//! `sha256-<hex>` fallback index, the `sha256-<hex>.sig` tag), read through the proxy so they are
//! checked by digest and kept in the store, and decides with [`digest::decide`]: `need` of the
//! policy's [`cosign::CosignVerifier`]s must each accept one signature. A digest's verdict is
//! cached (it cannot change for the same signatures and trust roots); the signed closure grows
//! from every verified digest instead of from a set of signed tags. The refusal is a
//! [`TrustFailure::Digest`] with its typed reason, so the client JSON, the audit line and the
//! metric are built as for Notary v1. `notary` is the implicit verifier name of Notary v1, which
//! stays this module's [`Verifier::NotaryV1`].
//!
//! How Notation joined (issue 13): exactly the same way. A `kind = "notation"` table builds a
//! [`notation::NotationVerifier`]; [`digest::DigestVerifier`] holds either kind, and each refuses
//! the other kind's signatures. Discovery reads Notation signature manifests' JWS
//! (`application/jose+json`) and COSE (`application/cose`) layers as
//! [`discovery::Evidence::Notation`], from the referrers API or the fallback tag. Because a
//! Notation payload signs the manifest's size and media type too, `signed_digests.rs` reads the
//! manifest (by digest, through the proxy) before deciding when a Notation verifier will look.

pub mod config;
pub mod cosign;
pub mod digest;
pub mod discovery;
pub mod notation;

use std::sync::Arc;

use crate::enforce::{NotarySource, TrustFailure, TrustService};
use crate::policy::Policy;
use crate::reference::{Digest, Tag};
use crate::trust::{SignedTarget, VerifiedRepository};
use crate::upstream::RegistryClient;

/// What a verifier is asked about: one repository, and where its signatures can be found.
#[derive(Clone, Copy)]
pub struct Subject<'a> {
    /// `<upstream name>/<repository>`: the name trust data is signed for.
    pub gun: &'a str,
    /// The repository as the upstream registry names it.
    pub repository: &'a str,
    /// The upstream registry: where digest-signing verifiers (cosign, Notation) resolve a tag
    /// and find the signatures of a digest (referrers API, `.sig` tags). Notary v1 needs none.
    pub registry: &'a RegistryClient,
    /// The upstream's Notary v1 server (or its stored trust data, offline).
    pub notary: NotarySource<'a>,
}

/// What a verifier established for a tag.
#[derive(Debug, Clone)]
pub struct SignedTag {
    /// The digest the tag must serve.
    pub digest: Digest,
    /// The signed length of the manifest, when the signature covers it (Notary v1 does).
    pub length: Option<u64>,
    /// The signing role or identity, for the audit line.
    pub signer: String,
    /// Notary v1: the verified trust data that decided; the signed closure is rebuilt when it
    /// changes. (A digest verifier's verdict never changes: its closure only grows.)
    pub basis: Option<Arc<VerifiedRepository>>,
    /// The Notary v1 target itself (for `trustgate verify`).
    pub target: Option<SignedTarget>,
}

/// A kind of signature verification the enforcement path can ask.
pub enum Verifier {
    /// Docker Content Trust: TUF metadata from a Notary v1 server.
    NotaryV1(TrustService),
}

impl Verifier {
    /// The Notary v1 trust service (persisted pins, `trustgate trust reset`).
    pub fn notary_v1(&self) -> &TrustService {
        match self {
            Self::NotaryV1(t) => t,
        }
    }

    /// Every signed target of the repository `gun`, verified now or no longer ago than the
    /// refresh interval.
    pub async fn signed_set(
        &self,
        subject: &Subject<'_>,
        policy: &Policy,
    ) -> Result<Arc<VerifiedRepository>, TrustFailure> {
        match self {
            Self::NotaryV1(t) => t.verified(&subject.notary, subject.gun, policy).await,
        }
    }

    /// The signed digest of `tag`, with the policy's required signers checked.
    pub async fn resolve_tag(
        &self,
        subject: &Subject<'_>,
        policy: &Policy,
        tag: &Tag,
    ) -> Result<SignedTag, TrustFailure> {
        match self {
            Self::NotaryV1(t) => {
                let basis = t.verified(&subject.notary, subject.gun, policy).await?;
                let signers = (!policy.signers.is_empty()).then_some(policy.signers.as_slice());
                let target = basis.lookup(tag.as_str(), signers)?;
                Ok(SignedTag {
                    digest: Digest::from_bytes(target.sha256),
                    length: Some(target.length),
                    signer: target.role.clone(),
                    basis: Some(basis),
                    target: Some(target),
                })
            }
        }
    }
}
