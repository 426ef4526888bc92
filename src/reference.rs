//! Repository names, tags and digests, validated by the OCI distribution grammar.
//!
//! Everything that reaches an upstream or the disk has passed through these types first, so a
//! path such as `../../etc` or an upper-case name never gets further than the front door.
//! Grammar: opencontainers/distribution-spec `spec.md`, "Pulling manifests".

use std::fmt;

/// Longest repository name we accept. The OCI spec lets registries limit it; clients commonly cap
/// `host/name` at 255 characters, so the repository part can never usefully be longer.
pub const MAX_NAME_LEN: usize = 255;

/// Why a name, tag or digest was rejected. The text is shown to the client verbatim.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("invalid repository name {0:?}: must match [a-z0-9]+((.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((.|_|__|-+)[a-z0-9]+)*)*")]
    NameInvalid(String),
    #[error(
        "invalid repository name: {len} characters is longer than the limit of {MAX_NAME_LEN}"
    )]
    NameTooLong { len: usize },
    #[error("invalid tag {0:?}: must match [a-zA-Z0-9_][a-zA-Z0-9._-]{{0,127}}")]
    TagInvalid(String),
    #[error("unsupported digest algorithm in {0:?}: only sha256 is accepted")]
    DigestAlgorithm(String),
    #[error("invalid digest {0:?}: sha256 digests are 64 lower-case hexadecimal characters")]
    DigestInvalid(String),
}

/// A validated repository name such as `library/alpine` or `team/app`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepoName(String);

impl RepoName {
    pub fn parse(s: &str) -> Result<Self, ReferenceError> {
        if s.len() > MAX_NAME_LEN {
            return Err(ReferenceError::NameTooLong { len: s.len() });
        }
        if s.is_empty() || !s.split('/').all(is_path_component) {
            return Err(ReferenceError::NameInvalid(s.to_string()));
        }
        Ok(Self(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Number of `/`-separated components.
    pub fn components(&self) -> usize {
        self.0.split('/').count()
    }

    /// Docker Hub's rule: a single-component name lives under `library/`.
    pub fn with_library_prefix(&self) -> Self {
        if self.components() == 1 {
            Self(format!("library/{}", self.0))
        } else {
            self.clone()
        }
    }
}

impl fmt::Display for RepoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn is_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    let mut i = 0;
    // Leading run of alphanumerics (at least one).
    let run = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && alnum(b[*i]) {
            *i += 1;
        }
        *i > start
    };
    if !run(&mut i) {
        return false;
    }
    while i < b.len() {
        // A separator: `.`, `_`, `__` or one or more `-`.
        match b[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if i < b.len() && b[i] == b'_' {
                    i += 1;
                }
            }
            b'-' => {
                while i < b.len() && b[i] == b'-' {
                    i += 1;
                }
            }
            _ => return false,
        }
        if !run(&mut i) {
            return false;
        }
    }
    true
}

/// A validated tag.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(String);

impl Tag {
    pub fn parse(s: &str) -> Result<Self, ReferenceError> {
        let b = s.as_bytes();
        let first_ok = b
            .first()
            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_');
        let rest_ok = b[1.min(b.len())..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'));
        if first_ok && rest_ok && b.len() <= 128 {
            Ok(Self(s.to_string()))
        } else {
            Err(ReferenceError::TagInvalid(s.to_string()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A sha256 content digest. Only sha256 is accepted: it is what Notary signs, and what every
/// registry in the field uses; anything else is refused rather than passed on unverified.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest([u8; 32]);

impl Digest {
    pub fn parse(s: &str) -> Result<Self, ReferenceError> {
        let Some((alg, hex_part)) = s.split_once(':') else {
            return Err(ReferenceError::DigestInvalid(s.to_string()));
        };
        // The OCI grammar for an algorithm name: [a-z0-9]+([+._-][a-z0-9]+)*
        let alg_ok = !alg.is_empty()
            && alg
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"+._-".contains(&c));
        if !alg_ok {
            return Err(ReferenceError::DigestInvalid(s.to_string()));
        }
        if alg != "sha256" {
            return Err(ReferenceError::DigestAlgorithm(s.to_string()));
        }
        let lower_hex = hex_part
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c));
        if hex_part.len() != 64 || !lower_hex {
            return Err(ReferenceError::DigestInvalid(s.to_string()));
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(hex_part, &mut out)
            .map_err(|_| ReferenceError::DigestInvalid(s.to_string()))?;
        Ok(Self(out))
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The digest of `data`.
    pub fn of(data: &[u8]) -> Self {
        use sha2::Digest as _;
        Self(sha2::Sha256::digest(data).into())
    }

    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", hex::encode(self.0))
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// What a manifest request names: a tag, or content by digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ManifestRef {
    Tag(Tag),
    Digest(Digest),
}

impl ManifestRef {
    /// A reference containing `:` is a digest; anything else must be a tag.
    pub fn parse(s: &str) -> Result<Self, ReferenceError> {
        if s.contains(':') {
            Digest::parse(s).map(Self::Digest)
        } else {
            Tag::parse(s).map(Self::Tag)
        }
    }
}

impl fmt::Display for ManifestRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tag(t) => t.fmt(f),
            Self::Digest(d) => d.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_follow_the_oci_grammar() {
        for ok in [
            "a",
            "alpine",
            "library/alpine",
            "a.b_c__d--e/f-g",
            "team/sub/app",
            "0/1",
        ] {
            assert!(RepoName::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "..", "a/../b", "A", "Alpine", "/a", "a/", "a//b", "a___b", "-a", "a-", "a.", ".a",
            "a b", "a:b", "a@b", "é",
        ] {
            assert!(RepoName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn overlong_names_are_refused_with_their_length() {
        let long = "a".repeat(MAX_NAME_LEN + 1);
        assert_eq!(
            RepoName::parse(&long),
            Err(ReferenceError::NameTooLong { len: 256 })
        );
        assert!(RepoName::parse(&"a".repeat(MAX_NAME_LEN)).is_ok());
    }

    #[test]
    fn library_prefix_only_for_single_component_names() {
        let p = |s: &str| RepoName::parse(s).unwrap().with_library_prefix();
        assert_eq!(p("alpine").as_str(), "library/alpine");
        assert_eq!(p("user/app").as_str(), "user/app");
    }

    #[test]
    fn tags_follow_the_oci_grammar() {
        for ok in ["latest", "v1.2.3", "_x", "A-b_c.d", &"a".repeat(128)] {
            assert!(Tag::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".x", "-x", "a/b", "a b", &"a".repeat(129), "ä"] {
            assert!(Tag::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn digests_are_sha256_lower_hex() {
        let hex64 = "a".repeat(64);
        assert!(Digest::parse(&format!("sha256:{hex64}")).is_ok());
        assert!(matches!(
            Digest::parse(&format!("sha512:{}", "a".repeat(128))),
            Err(ReferenceError::DigestAlgorithm(_))
        ));
        for bad in [
            format!("sha256:{}", "A".repeat(64)),
            format!("sha256:{}", "a".repeat(63)),
            format!("sha256:{}", "g".repeat(64)),
            "sha256:".to_string(),
            format!("SHA256:{hex64}"),
            format!(":{hex64}"),
        ] {
            assert!(
                matches!(Digest::parse(&bad), Err(ReferenceError::DigestInvalid(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn manifest_references_are_tags_or_digests() {
        assert!(matches!(
            ManifestRef::parse("latest"),
            Ok(ManifestRef::Tag(_))
        ));
        let d = format!("sha256:{}", "0".repeat(64));
        assert_eq!(ManifestRef::parse(&d).unwrap().to_string(), d);
        assert!(ManifestRef::parse("md5:abc").is_err());
    }

    proptest! {
        #[test]
        fn generated_valid_names_parse_and_round_trip(
            name in "[a-z0-9]{1,8}((\\.|_|__|-{1,3})[a-z0-9]{1,8}){0,3}(/[a-z0-9]{1,8}((\\.|_|__|-{1,3})[a-z0-9]{1,8}){0,3}){0,4}"
        ) {
            let parsed = RepoName::parse(&name).unwrap();
            prop_assert_eq!(parsed.as_str(), name.as_str());
        }

        #[test]
        fn arbitrary_strings_never_panic(s in ".{0,300}") {
            let _ = RepoName::parse(&s);
            let _ = Tag::parse(&s);
            let _ = Digest::parse(&s);
            let _ = ManifestRef::parse(&s);
        }

        #[test]
        fn accepted_names_never_contain_traversal_or_upper_case(s in "[a-zA-Z0-9._/-]{1,40}") {
            if let Ok(n) = RepoName::parse(&s) {
                prop_assert!(!n.as_str().contains(".."));
                prop_assert!(!n.as_str().starts_with('/'));
                prop_assert!(!n.as_str().bytes().any(|c| c.is_ascii_uppercase()));
            }
        }

        #[test]
        fn digest_display_round_trips(bytes in proptest::array::uniform32(any::<u8>())) {
            let d = Digest::from_bytes(bytes);
            prop_assert_eq!(Digest::parse(&d.to_string()).unwrap(), d);
        }
    }
}
