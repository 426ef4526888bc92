//! Keyless signer identities (`identities = [{ issuer = "…", subject_regex = "…" }]`): which
//! Fulcio certificates a verifier accepts, by the OIDC issuer and the subject (the certificate's
//! SAN: an email address or a URI).
//!
//! Like `cosign verify --certificate-identity[-regexp] --certificate-oidc-issuer[-regexp]`, both
//! halves are required: an identity that named only a subject would accept that subject from any
//! issuer, and anyone can get a certificate for any email address from a lax issuer. Regular
//! expressions are anchored here (cosign's Go `regexp.MatchString` is not, a classic trap:
//! `subject_regex = "alice@example.com"` would match `alice@example.com.evil`), so they must match
//! the whole value.

use regex::Regex;

use crate::verify::config::IdentityConfig;

use super::CosignConfigError;

/// An exact value or an anchored regular expression.
#[derive(Debug, Clone)]
enum Matcher {
    Exact(String),
    Regex(Regex),
}

impl Matcher {
    fn matches(&self, value: &str) -> bool {
        match self {
            Matcher::Exact(want) => want == value,
            Matcher::Regex(re) => re.is_match(value),
        }
    }

    /// From the exact and the regex keys of one half; exactly one must be given.
    fn from_config(
        index: usize,
        half: &str,
        exact: Option<&String>,
        regex: Option<&String>,
    ) -> Result<Self, CosignConfigError> {
        match (exact, regex) {
            (Some(value), None) => Ok(Matcher::Exact(value.clone())),
            (None, Some(pattern)) => {
                let anchored = format!("^(?:{pattern})$");
                Regex::new(&anchored)
                    .map(Matcher::Regex)
                    .map_err(|e| CosignConfigError {
                        key: format!("identities[{index}].{half}_regex"),
                        problem: format!("not a valid regular expression: {e}"),
                    })
            }
            (Some(_), Some(_)) => Err(CosignConfigError {
                key: format!("identities[{index}]"),
                problem: format!("give `{half}` or `{half}_regex`, not both"),
            }),
            (None, None) => Err(CosignConfigError {
                key: format!("identities[{index}]"),
                problem: format!(
                    "`{half}` or `{half}_regex` is required (an identity names both the OIDC \
                     issuer and the certificate subject)"
                ),
            }),
        }
    }
}

/// One accepted signer.
#[derive(Debug, Clone)]
pub struct Identity {
    issuer: Matcher,
    subject: Matcher,
}

impl Identity {
    pub fn from_config(index: usize, config: &IdentityConfig) -> Result<Self, CosignConfigError> {
        Ok(Self {
            issuer: Matcher::from_config(
                index,
                "issuer",
                config.issuer.as_ref(),
                config.issuer_regex.as_ref(),
            )?,
            subject: Matcher::from_config(
                index,
                "subject",
                config.subject.as_ref(),
                config.subject_regex.as_ref(),
            )?,
        })
    }

    pub fn matches(&self, subject: &str, issuer: &str) -> bool {
        self.subject.matches(subject) && self.issuer.matches(issuer)
    }
}

/// Which half failed, for the refusal: the subject when no identity names it (whatever the
/// issuer), otherwise the issuer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mismatch {
    Subject,
    Issuer,
}

/// Whether any identity accepts (subject, issuer); if none does, which half to blame.
pub fn check(identities: &[Identity], subject: &str, issuer: &str) -> Result<(), Mismatch> {
    if identities.iter().any(|id| id.matches(subject, issuer)) {
        return Ok(());
    }
    if identities.iter().any(|id| id.subject.matches(subject)) {
        Err(Mismatch::Issuer)
    } else {
        Err(Mismatch::Subject)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(issuer: &str, subject: Option<&str>, subject_regex: Option<&str>) -> IdentityConfig {
        IdentityConfig {
            issuer: Some(issuer.into()),
            issuer_regex: None,
            subject: subject.map(Into::into),
            subject_regex: subject_regex.map(Into::into),
        }
    }

    const GH: &str = "https://token.actions.githubusercontent.com";

    #[test]
    fn exact_identity_needs_both_halves() {
        let ids = [Identity::from_config(0, &id(GH, Some("a@example.com"), None)).unwrap()];
        assert_eq!(check(&ids, "a@example.com", GH), Ok(()));
        assert_eq!(
            check(&ids, "a@example.com", "https://accounts.google.com"),
            Err(Mismatch::Issuer)
        );
        assert_eq!(check(&ids, "b@example.com", GH), Err(Mismatch::Subject));
    }

    #[test]
    fn regexes_are_anchored_at_both_ends() {
        let re = r"https://github\.com/acme/[^/]+/\.github/workflows/release\.yml@refs/tags/v.*";
        let ids = [Identity::from_config(0, &id(GH, None, Some(re))).unwrap()];
        let good = "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.2";
        assert_eq!(check(&ids, good, GH), Ok(()));
        // A prefix or suffix around a matching value is not a match.
        assert!(check(&ids, &format!("https://evil.example/?{good}"), GH).is_err());
        let ids = [Identity::from_config(0, &id(GH, None, Some("alice@example\\.com"))).unwrap()];
        assert!(check(&ids, "alice@example.com.evil", GH).is_err());
        assert!(check(&ids, "xalice@example.com", GH).is_err());
        // Alternation is anchored as a whole, not only its first and last branch.
        let ids = [Identity::from_config(0, &id(GH, None, Some("a@x\\.com|b@x\\.com"))).unwrap()];
        assert!(check(&ids, "b@x.com", GH).is_ok());
        assert!(check(&ids, "a@x.com.evil", GH).is_err());
    }

    #[test]
    fn config_errors_name_the_key() {
        let err = Identity::from_config(2, &id(GH, None, Some("("))).unwrap_err();
        assert_eq!(err.key, "identities[2].subject_regex");
        let err = Identity::from_config(0, &id(GH, None, None)).unwrap_err();
        assert_eq!(err.key, "identities[0]");
        assert!(err
            .problem
            .contains("`subject` or `subject_regex` is required"));
        let err = Identity::from_config(1, &id(GH, Some("a"), Some("b"))).unwrap_err();
        assert!(err.problem.contains("not both"));
        let no_issuer = IdentityConfig {
            issuer: None,
            issuer_regex: None,
            subject: Some("a@example.com".into()),
            subject_regex: None,
        };
        let err = Identity::from_config(0, &no_issuer).unwrap_err();
        assert!(err
            .problem
            .contains("`issuer` or `issuer_regex` is required"));
    }
}
