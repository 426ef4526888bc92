//! Typed verifier errors. Every message is written for the person reading a `docker pull` failure
//! or the proxy log; the ones Docker users know carry Docker's words (`notary:client/errors.go`, `notary:tuf/signed/errors.go`).

use thiserror::Error;

/// Broad class of a [`TrustError`], for mapping to an HTTP status / metric label once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TrustErrorKind {
    /// The Notary server has no trust data for the repository at all.
    NoTrustData,
    /// The trust data is fine but the tag is not signed (by an acceptable role).
    UnsignedTag,
    /// Some metadata has expired.
    Expired,
    /// A role's version went backwards against the pinned state.
    Rollback,
    /// Signatures, thresholds, hashes or lengths do not check out.
    BadSignature,
    /// The root does not chain to what we trust (rotation failure, pinning, root certificates).
    RootMismatch,
    /// Metadata that could not be parsed or breaks Notary's structural rules.
    Malformed,
    /// Fetching metadata failed (the only kind where a retry can help).
    Fetch,
}

/// Why verification failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum TrustError {
    /// 404 on `root.json`: Docker's `remote trust data does not exist` (`cli28:cli/trust/trust.go`).
    #[error(
        "remote trust data does not exist for {gun}: {host} does not have trust data for {gun}"
    )]
    NoTrustData { gun: String, host: String },

    /// The tag is in no searched role (Docker's `ErrNoSuchTarget` text, passed through unwrapped).
    #[error("No valid trust data for {tag}")]
    UnsignedTag { tag: String },

    /// The tag is only signed by a delegation other than `targets/releases` / `targets`; Docker
    /// refuses those (`cli28:cli/command/image/trust.go`).
    #[error("No trust data for {tag}")]
    TagInOtherDelegation { tag: String, role: String },

    /// The tag is listed by a delegation, but outside the paths it was delegated.
    #[error("No valid trust data for {tag}: role {role} signed it outside its delegated paths")]
    OutsideDelegationPaths { tag: String, role: String },

    /// A caller-required signer role did not sign the same content for the tag.
    #[error("No valid trust data for {tag}: required signer {role} did not sign it")]
    RequiredSignerMissing { tag: String, role: String },

    /// The target has no sha256 hash (Docker's words).
    #[error("no valid hash, expecting sha256")]
    NoSha256 { tag: String },

    /// Metadata expired (Docker: `remote repository <GUN> out-of-date: <role> expired at <time>`).
    #[error("remote repository {gun} out-of-date: {role} expired at {expired_at}")]
    Expired {
        gun: String,
        role: String,
        expired_at: String,
    },

    /// A role's version is lower than the pinned one (Notary's ErrLowVersion).
    #[error("potential malicious behavior - trust data version is lower than expected for remote repository {gun}: {role} version {found} is lower than current version {current}")]
    Rollback {
        gun: String,
        role: String,
        found: u64,
        current: u64,
    },

    /// Not enough distinct keys of the role produced valid signatures (ErrRoleThreshold).
    #[error("potential malicious behavior - trust data has insufficient signatures for remote repository {gun}: valid signatures did not meet threshold for {role} ({valid} of {threshold})")]
    Threshold {
        gun: String,
        role: String,
        valid: usize,
        threshold: u32,
    },

    /// The file carries no signatures at all.
    #[error("potential malicious behavior - trust data has insufficient signatures for remote repository {gun}: tuf: data has no signatures ({role})")]
    NoSignatures { gun: String, role: String },

    /// Threshold not met and a signature used a method we do not support.
    #[error("trust data for remote repository {gun} cannot be verified: {role} is signed with unsupported signature method {method:?}")]
    UnsupportedMethod {
        gun: String,
        role: String,
        method: String,
    },

    /// Threshold not met and a role key has a type we do not support.
    #[error("trust data for remote repository {gun} cannot be verified: {role} key {key_id} has unsupported key type {key_type:?}")]
    UnsupportedKeyType {
        gun: String,
        role: String,
        key_id: String,
        key_type: String,
    },

    /// A signature names a role key whose content does not hash to that ID.
    #[error("potential malicious behavior - trust data mismatch for remote repository {gun}: key ID is not valid for key content ({role}, key {key_id})")]
    KeyIdMismatch {
        gun: String,
        role: String,
        key_id: String,
    },

    /// A file does not match the hash its parent recorded.
    #[error("potential malicious behavior - trust data mismatch for remote repository {gun}: {alg} checksum for {role} did not match: expected {expected}")]
    HashMismatch {
        gun: String,
        role: String,
        alg: String,
        expected: String,
    },

    /// A file does not have the length its parent recorded.
    #[error("potential malicious behavior - trust data mismatch for remote repository {gun}: length of {role} did not match: expected {expected} bytes, got {actual}")]
    LengthMismatch {
        gun: String,
        role: String,
        expected: u64,
        actual: u64,
    },

    /// A file is larger than we are willing to read.
    #[error("trust data for remote repository {gun} rejected: {role} is larger than the limit of {limit} bytes")]
    TooLarge {
        gun: String,
        role: String,
        limit: u64,
    },

    /// A role other than root is missing (404) on the server (Docker's words, ErrMetaNotFound).
    #[error("trust data missing for remote repository {gun} or remote repository not found: {role} trust data unavailable.  Has a notary repository been initialized?")]
    MissingMetadata { gun: String, role: String },

    /// Unparseable or structurally invalid metadata.
    #[error("malformed trust data for remote repository {gun}: {role}: {reason}")]
    Malformed {
        gun: String,
        role: String,
        reason: String,
    },

    /// The root's certificates are unusable (CN is not the GUN, expired, SHA-1, weak RSA...).
    #[error("potential malicious behavior - trust data mismatch for remote repository {gun}: could not validate the path to a trusted root: unable to retrieve valid leaf certificates ({reason})")]
    InvalidRootCertificate { gun: String, reason: String },

    /// The served root does not chain to the pinned root (key changed, e.g. trust data deleted and
    /// re-created). Distinct so that the proxy can tell an operator what to do.
    #[error("potential malicious behavior - trust data mismatch for remote repository {gun}: the repository's root key changed and the new root does not chain to the pinned root ({reason}); if this change is expected, an operator can re-pin with `trustgate trust reset {gun}`")]
    RootMismatch { gun: String, reason: String },

    /// The root certificate is not one of the pinned certificates / does not chain to the pinned CA.
    #[error("potential malicious behavior - trust data mismatch for remote repository {gun}: root certificate does not match trust pinning ({reason})")]
    PinMismatch { gun: String, reason: String },

    /// Trust on first use is off and nothing is pinned for this GUN.
    #[error("trust data for remote repository {gun} rejected: no pinned certificate or CA for {gun} and trust on first use is disabled")]
    NotPinned { gun: String },

    /// The pinned state handed back by the caller belongs to another GUN or is corrupt.
    #[error("pinned trust state is not usable for {gun}: {reason}")]
    BadPinnedState { gun: String, reason: String },

    /// The metadata source failed.
    #[error("error contacting notary server: fetching {path} for {gun}: {message}")]
    Fetch {
        gun: String,
        path: String,
        message: String,
    },
}

impl TrustError {
    /// The broad class of the error.
    pub fn kind(&self) -> TrustErrorKind {
        use TrustError::*;
        match self {
            NoTrustData { .. } | MissingMetadata { .. } => TrustErrorKind::NoTrustData,
            UnsignedTag { .. }
            | TagInOtherDelegation { .. }
            | OutsideDelegationPaths { .. }
            | RequiredSignerMissing { .. }
            | NoSha256 { .. } => TrustErrorKind::UnsignedTag,
            Expired { .. } => TrustErrorKind::Expired,
            Rollback { .. } => TrustErrorKind::Rollback,
            Threshold { .. }
            | NoSignatures { .. }
            | UnsupportedMethod { .. }
            | UnsupportedKeyType { .. }
            | KeyIdMismatch { .. }
            | HashMismatch { .. }
            | LengthMismatch { .. } => TrustErrorKind::BadSignature,
            InvalidRootCertificate { .. }
            | RootMismatch { .. }
            | PinMismatch { .. }
            | NotPinned { .. } => TrustErrorKind::RootMismatch,
            TooLarge { .. } | Malformed { .. } | BadPinnedState { .. } => TrustErrorKind::Malformed,
            Fetch { .. } => TrustErrorKind::Fetch,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_words() {
        let e = TrustError::NoTrustData {
            gun: "docker.io/library/foo".into(),
            host: "notary.docker.io".into(),
        };
        assert_eq!(
            e.to_string(),
            "remote trust data does not exist for docker.io/library/foo: notary.docker.io does not have trust data for docker.io/library/foo"
        );
        assert_eq!(
            TrustError::UnsignedTag { tag: "tag".into() }.to_string(),
            "No valid trust data for tag"
        );
        let e = TrustError::Expired {
            gun: "docker.io/library/foo".into(),
            role: "timestamp".into(),
            expired_at: "Sat Jan 1 00:00:00 UTC 2030".into(),
        };
        assert_eq!(
            e.to_string(),
            "remote repository docker.io/library/foo out-of-date: timestamp expired at Sat Jan 1 00:00:00 UTC 2030"
        );
        assert_eq!(e.kind(), TrustErrorKind::Expired);
    }
}
