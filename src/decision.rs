//! The refusal vocabulary: what trust policy decided ([`Verdict`]) and why ([`Reason`]).
//!
//! One word per reason, from [`Reason::as_str`]: it is the client's JSON `detail.reason`, the
//! audit line's `reason` and the `reason` label of `trustgate_trust_decisions_total` (issue 11).
//! The owning modules produce these values (`TrustFailure::reason`, the proxy for tamper and
//! closure refusals); nothing parses them back out of text.

/// What was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Trusted content was served.
    Allow,
    /// Nothing was served: trust could not be established.
    Deny,
    /// Audit mode: served unverified, but enforce would have refused.
    AuditWouldDeny,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
            Self::AuditWouldDeny => "audit_would_deny",
        }
    }
}

/// Why trust policy decided as it did: a fixed set, so it can be a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// A tag whose signed target was verified (and whose bytes matched it).
    Signed,
    /// A digest reachable from a signed tag.
    InSignedClosure,
    /// The signature service has no trust data for the repository (or none is configured, or
    /// an offline mirror holds none).
    NoTrustData,
    UnsignedTag,
    /// A signer role the policy requires did not sign the tag.
    SignerMissing,
    Expired,
    Rollback,
    BadSignature,
    RootMismatch,
    /// Trust data (or its persisted state) that cannot be read.
    Malformed,
    /// The signature service could not be reached and nothing verified could stand in.
    Fetch,
    /// A digest that no signed tag reaches.
    OutsideSignedClosure,
    /// Upstream bytes that are not what was signed.
    Tampered,
    /// Audit mode: the tag could not be checked for a reason that is not a trust verdict.
    Unverifiable,
    /// Digest verifiers (cosign): no signature of the digest was found.
    NoSignature,
    /// Digest verifiers (cosign): signatures were found, but not enough verifiers accepted one
    /// (wrong key, identity mismatch, log proof invalid, payload for another digest).
    SignatureRejected,
}

impl Reason {
    /// Every reason, for documentation and tests.
    pub const ALL: [Reason; 16] = [
        Self::Signed,
        Self::InSignedClosure,
        Self::NoTrustData,
        Self::UnsignedTag,
        Self::SignerMissing,
        Self::Expired,
        Self::Rollback,
        Self::BadSignature,
        Self::RootMismatch,
        Self::Malformed,
        Self::Fetch,
        Self::OutsideSignedClosure,
        Self::Tampered,
        Self::Unverifiable,
        Self::NoSignature,
        Self::SignatureRejected,
    ];

    /// The one spelling of this reason: JSON `detail.reason`, audit label and metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Signed => "signed",
            Self::InSignedClosure => "in_signed_closure",
            Self::NoTrustData => "no_trust_data",
            Self::UnsignedTag => "unsigned_tag",
            Self::SignerMissing => "signer_missing",
            Self::Expired => "expired",
            Self::Rollback => "rollback",
            Self::BadSignature => "bad_signature",
            Self::RootMismatch => "root_mismatch",
            Self::Malformed => "malformed",
            Self::Fetch => "fetch",
            Self::OutsideSignedClosure => "outside_signed_closure",
            Self::Tampered => "tampered",
            Self::Unverifiable => "unverifiable",
            Self::NoSignature => "no_signature",
            Self::SignatureRejected => "signature_rejected",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_a_bounded_set_of_plain_labels() {
        let names: std::collections::HashSet<&str> =
            Reason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(names.len(), Reason::ALL.len(), "names are distinct");
        for n in &names {
            assert!(
                n.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{n}"
            );
        }
    }
}
