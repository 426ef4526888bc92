//! Docker Content Trust (Notary v1 / TUF) verification.
//!
//! The verifier is pure: metadata bytes come in through [`MetadataSource`], the pinned
//! [`TrustState`] and the time are parameters, and the result is a [`VerifiedRepository`] (which
//! resolves tags) or a typed [`TrustError`]. No HTTP, disk or clock access happens here.
//!
//! ```text
//! update(source, gun, host, pinned, now, opts)
//!   root.json ── ValidateRoot (x509 leaf CN == GUN, validity, pinning/TOFU, old + own threshold,
//!   │             rotation through <v>.root.json)
//!   timestamp.json (≤ 1 MiB) ── snapshot.<sha256>.json ── targets.<sha256>.json ── delegations
//!   ⇒ VerifiedRepository { new_state, roles, expires } ── lookup(tag) ⇒ SignedTarget
//! ```
//!
//! Usage (the proxy persists `new_state` and hands it back next time):
//!
//! ```ignore
//! let repo = trust::update(&source, "docker.io/library/alpine", "notary.docker.io",
//!                          pinned.as_ref(), now, &VerifyOptions::default()).await?;
//! let target = repo.lookup("3.20", None)?;      // Docker's role order
//! store(repo.new_state);                        // serde JSON
//! ```
//!
//! Source references in this module: `notary:` is theupdateframework/notary (v0.7), `dgo:` is
//! docker/go (canonical JSON), `cli28:` is docker/cli at v28.
//!
//! Deviations from Notary, each on purpose (as read from `notary:client/tufclient.go`,
//! `notary:tuf/builder.go` and `notary:trustpinning/certs.go`):
//! - `root.json` is fetched on every update (Notary only when its cached root expired or the update
//!   failed); the root is still hash-checked against `snapshot.meta.root`.
//! - Root files are capped at 10 MiB (Notary: 100 MiB) and a rotation walks at most 100 versions.
//! - Invalid UTF-8 in metadata is rejected (Go substitutes U+FFFD); duplicate keys: last wins, as Go.
//! - Ed25519 uses strict verification; ECDSA keys must be P-256; the legacy `pycrypto-pkcs#1 pss`
//!   method is unsupported.
//! - Pinned certificate IDs match the key ID, the ID of the re-encoded certificate bundle (Notary's)
//!   or the canonical key ID.
//! - A byte-identical pinned root, and byte-identical files under it, are not re-verified
//!   cryptographically (their stored result is reused); everything else is checked each time.
//! - A tag a delegation lists outside its paths is ignored as in Notary, but when nothing else
//!   signs it the error says so ([`TrustError::OutsideDelegationPaths`]).
//! - `lookup(tag, Some(required))`: every required role must list the same sha256 and length for the
//!   tag (a trustgate policy option; Docker has none).
//!
//! Modules: [`canonical`] (the signed bytes), [`keys`] (key IDs, root certificates), [`signature`]
//! (signature methods, thresholds), [`metadata`] (the file formats), [`pinning`], [`mod@update`]
//! (the update algorithm), [`lookup`] (Docker's tag resolution), [`error`] (Docker's messages),
//! [`source`].

pub mod canonical;
pub mod error;
pub mod keys;
pub mod lookup;
pub mod metadata;
pub mod notary;
pub mod pinning;
pub mod signature;
pub mod source;
pub mod update;

#[cfg(any(test, feature = "testkit"))]
pub mod testkit;

pub use error::{TrustError, TrustErrorKind};
pub use keys::PublicKey;
pub use lookup::SignedTarget;
pub use pinning::TrustPinning;
pub use source::{FetchError, MemorySource, MetadataPath, MetadataSource};
pub use update::{
    go_time, update, SignerKey, StoredBytes, TrustState, VerifiedRepository, VerifiedRole,
    VerifyOptions,
};
