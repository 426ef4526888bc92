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
//! Modules: [`canonical`] (§4), [`keys`] (§5), [`signature`] (§6), [`metadata`] (§3), [`pinning`],
//! [`update`] (§7), [`lookup`] (Docker's tag resolution), [`error`] (§8 messages), [`source`].

pub mod canonical;
pub mod error;
pub mod keys;
pub mod lookup;
pub mod metadata;
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
