//! The cosign simple-signing payload (`application/vnd.dev.cosign.simplesigning.v1+json`, the
//! layer of the `sha256-<hex>.sig` tag) and the two claims trustgate checks in it: the manifest
//! digest and the repository (`docker-reference`).
//!
//! Format: sigstore/cosign `specs/SIGNATURE_SPEC.md`:
//! `{"critical":{"identity":{"docker-reference":"…"},"image":{"docker-manifest-digest":"sha256:…"},
//! "type":"cosign container image signature"},"optional":{…}|null}`.

use serde::Deserialize;

use super::{CosignRefusal, Expected};

/// The only `critical.type` cosign (and containers/image's sigstore signer) writes.
pub const COSIGN_TYPE: &str = "cosign container image signature";

#[derive(Debug, Deserialize)]
struct Payload {
    critical: Critical,
    // `optional` is free-form (annotations the signer chose) and not part of the check.
}

#[derive(Debug, Deserialize)]
struct Critical {
    identity: Identity,
    image: Image,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Debug, Deserialize)]
struct Identity {
    #[serde(rename = "docker-reference")]
    docker_reference: String,
}

#[derive(Debug, Deserialize)]
struct Image {
    #[serde(rename = "docker-manifest-digest")]
    docker_manifest_digest: String,
}

/// The claims of a simple-signing payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub docker_reference: String,
    pub manifest_digest: String,
}

/// Parses the payload bytes (exactly as stored: the signature is over these bytes).
pub fn parse(bytes: &[u8]) -> Result<Claims, CosignRefusal> {
    let payload: Payload =
        serde_json::from_slice(bytes).map_err(|e| CosignRefusal::PayloadInvalid {
            problem: e.to_string(),
        })?;
    if payload.critical.kind != COSIGN_TYPE {
        return Err(CosignRefusal::PayloadType {
            found: payload.critical.kind,
        });
    }
    Ok(Claims {
        docker_reference: payload.critical.identity.docker_reference,
        manifest_digest: payload.critical.image.docker_manifest_digest,
    })
}

/// Checks the claims against what is being served: the digest always, the repository when
/// `check_reference` (off for images copied between registries with their signatures).
pub fn check(
    claims: &Claims,
    expected: &Expected<'_>,
    check_reference: bool,
) -> Result<(), CosignRefusal> {
    check_digest(&claims.manifest_digest, expected, DigestOf::Signature)?;
    if check_reference {
        check_repository(&claims.docker_reference, expected)?;
    }
    Ok(())
}

/// What carried a digest claim, for the refusal's wording.
#[derive(Debug, Clone, Copy)]
pub enum DigestOf {
    Signature,
    Bundle,
}

/// The signed digest must be the digest being served (compared as text: both are
/// `sha256:<64 lowercase hex>`; an uppercase or other-algorithm claim simply does not match).
pub fn check_digest(
    signed: &str,
    expected: &Expected<'_>,
    of: DigestOf,
) -> Result<(), CosignRefusal> {
    let want = expected.digest.to_string();
    if signed == want {
        return Ok(());
    }
    let signed = signed.to_string();
    Err(match of {
        DigestOf::Signature => CosignRefusal::DigestMismatch {
            signed,
            expected: want,
        },
        DigestOf::Bundle => CosignRefusal::BundleDigestMismatch {
            signed,
            expected: want,
        },
    })
}

fn check_repository(docker_reference: &str, expected: &Expected<'_>) -> Result<(), CosignRefusal> {
    let signed = normalise_reference(docker_reference);
    let want = normalise(expected.registry_host, expected.repository);
    if signed == want {
        return Ok(());
    }
    Err(CosignRefusal::RepositoryMismatch {
        signed: docker_reference.to_string(),
        expected: format!("{}/{}", expected.registry_host, expected.repository),
    })
}

/// `host/repository` in one spelling: Docker Hub's three host names become `docker.io`, its
/// official images gain `library/`, the host is lower-cased (host names are case-insensitive,
/// repository names are lower-case by the OCI grammar already).
fn normalise(host: &str, repository: &str) -> String {
    let host = host.to_ascii_lowercase();
    let host = match host.as_str() {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => "docker.io".to_string(),
        _ => host,
    };
    if host == "docker.io" && !repository.contains('/') {
        format!("docker.io/library/{repository}")
    } else {
        format!("{host}/{repository}")
    }
}

/// Splits a `docker-reference` into host and repository as the Docker reference grammar does:
/// the first component is a host only if it has a `.` or `:` or is `localhost`; otherwise the
/// reference is on Docker Hub. cosign writes the repository without tag or digest, but other
/// signers have written one, and it never changes which repository is named, so it is dropped.
fn normalise_reference(reference: &str) -> String {
    let without_digest = reference.split_once('@').map_or(reference, |(r, _)| r);
    let name = match without_digest.rfind(':') {
        Some(colon) if !without_digest[colon..].contains('/') => &without_digest[..colon],
        _ => without_digest,
    };
    match name.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            normalise(first, rest)
        }
        _ => normalise("docker.io", name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::Digest;

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    fn payload(reference: &str, digest: &str) -> Vec<u8> {
        format!(
            r#"{{"critical":{{"identity":{{"docker-reference":"{reference}"}},"image":{{"docker-manifest-digest":"{digest}"}},"type":"cosign container image signature"}},"optional":null}}"#
        )
        .into_bytes()
    }

    fn expect<'a>(host: &'a str, repo: &'a str, digest: &'a Digest) -> Expected<'a> {
        Expected {
            registry_host: host,
            repository: repo,
            digest,
        }
    }

    #[test]
    fn accepts_matching_claims() {
        let d = Digest::parse(D1).unwrap();
        let claims = parse(&payload("registry.example:5000/team/app", D1)).unwrap();
        check(
            &claims,
            &expect("registry.example:5000", "team/app", &d),
            true,
        )
        .unwrap();
    }

    #[test]
    fn refuses_other_digest_naming_both() {
        let d = Digest::parse(D1).unwrap();
        let claims = parse(&payload("r.example/app", D2)).unwrap();
        let err = check(&claims, &expect("r.example", "app", &d), true).unwrap_err();
        assert_eq!(err.to_string(), format!("signature is for {D2} not {D1}"));
    }

    #[test]
    fn refuses_other_repository_unless_relaxed() {
        let d = Digest::parse(D1).unwrap();
        let claims = parse(&payload("r.example/other", D1)).unwrap();
        let err = check(&claims, &expect("r.example", "app", &d), true).unwrap_err();
        assert_eq!(
            err.to_string(),
            "signature is for repository r.example/other, not r.example/app"
        );
        check(&claims, &expect("r.example", "app", &d), false).unwrap();
    }

    #[test]
    fn docker_hub_spellings_are_one_repository() {
        let d = Digest::parse(D1).unwrap();
        for signed in [
            "index.docker.io/library/alpine",
            "docker.io/library/alpine",
            "registry-1.docker.io/library/alpine",
            "docker.io/alpine",
            "alpine",
            "library/alpine",
            "index.docker.io/library/alpine:3.20",
        ] {
            let claims = parse(&payload(signed, D1)).unwrap();
            for (host, repo) in [
                ("index.docker.io", "library/alpine"),
                ("registry-1.docker.io", "library/alpine"),
                ("docker.io", "alpine"),
            ] {
                check(&claims, &expect(host, repo, &d), true)
                    .unwrap_or_else(|e| panic!("{signed} vs {host}/{repo}: {e}"));
            }
        }
    }

    #[test]
    fn a_port_is_not_a_tag_and_a_host_is_not_a_namespace() {
        let d = Digest::parse(D1).unwrap();
        let claims = parse(&payload("localhost:5000/app", D1)).unwrap();
        check(&claims, &expect("localhost:5000", "app", &d), true).unwrap();
        // `team/app` without a host is Docker Hub's team/app, not a registry called "team".
        let claims = parse(&payload("team/app", D1)).unwrap();
        assert!(check(&claims, &expect("team", "app", &d), true).is_err());
        check(&claims, &expect("index.docker.io", "team/app", &d), true).unwrap();
    }

    #[test]
    fn refuses_other_types_and_malformed_payloads() {
        let other = br#"{"critical":{"identity":{"docker-reference":"a"},"image":{"docker-manifest-digest":"sha256:00"},"type":"atomic container signature"}}"#;
        assert!(matches!(
            parse(other),
            Err(CosignRefusal::PayloadType { .. })
        ));
        assert!(matches!(
            parse(b"{\"critical\":{}}"),
            Err(CosignRefusal::PayloadInvalid { .. })
        ));
        assert!(matches!(
            parse(b"\xff"),
            Err(CosignRefusal::PayloadInvalid { .. })
        ));
    }
}
