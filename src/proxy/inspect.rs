//! Image references as a person types them (`alpine`, `127.0.0.1:5101/team/app:v1`,
//! `ghcr.io/o/r@sha256:…`): routed exactly as a pull would be, for `trustgate verify` (an
//! [`Inspection`] of the trust data) and `trustgate seed`. The text rendering is the CLI's.

use std::sync::Arc;

use http::Method;

use super::Proxy;
use crate::api::{ApiError, Endpoint, ErrorCode, Route, Routed};
use crate::reference::ManifestRef;
use crate::trust::{SignedTarget, VerifiedRepository};

/// What `trustgate verify` reports for one image.
pub struct Inspection {
    pub gun: String,
    pub repo: Arc<VerifiedRepository>,
    /// The requested tag's verdict, when a tag was named.
    pub tag: Option<(String, Result<SignedTarget, ApiError>)>,
}

impl Proxy {
    /// The route a pull of `image` takes; no tag means `latest`.
    pub fn route_image(&self, image: &str) -> Result<Route, ApiError> {
        let (name, reference) = match image.split_once('@') {
            Some((n, d)) => (n, d.to_string()),
            None => match image.rsplit_once(':') {
                Some((n, t)) if !t.contains('/') => (n, t.to_string()),
                _ => (image, "latest".to_string()),
            },
        };
        let probe = format!("/v2/{name}/manifests/{reference}");
        match self.router().route(&Method::GET, &probe, None)? {
            Routed::Content(r) => Ok(r),
            Routed::Ping => Err(ApiError::new(
                ErrorCode::NameInvalid,
                format!("{image}: not an image reference"),
            )),
        }
    }

    /// Verifies an image reference through the same routing, policy and trust path as a pull.
    /// Errors are as a client would see them.
    pub async fn inspect(&self, image: &str) -> Result<Inspection, ApiError> {
        if image.contains('@') {
            return Err(ApiError::new(ErrorCode::ManifestInvalid, format!(
                "{image}: a digest reference needs no trust lookup; name a tag (or no tag for all tags)")));
        }
        let route = self.route_image(image)?;
        let named_tag = image
            .rsplit_once(':')
            .filter(|(_, t)| !t.contains('/'))
            .map(|(_, t)| t);
        let t = self.target(&route);
        let tag = match &route.endpoint {
            Endpoint::Manifest(ManifestRef::Tag(parsed)) => named_tag.map(|name| (name, parsed)),
            _ => None,
        };
        let repo = self
            .signed_set(&t, tag.map(|(name, _)| name))
            .await
            .map_err(ApiError::from)?;
        let tag = match tag {
            Some((name, parsed)) => Some((
                name.to_string(),
                self.signed_tag(&t, parsed)
                    .await
                    .map_err(ApiError::from)
                    .and_then(|s| {
                        s.target.ok_or_else(|| {
                            ApiError::new(ErrorCode::Unknown, "not a Notary v1 target".to_string())
                        })
                    }),
            )),
            None => None,
        };
        Ok(Inspection {
            gun: t.gun.clone(),
            repo,
            tag,
        })
    }
}

/// What `trustgate verify` reports for a tag under digest verifiers (cosign): every signature
/// found for the tag's digest, what each verifier said about it, and the verdict.
pub struct SignatureReport {
    /// `<gun>:<tag>`.
    pub image: String,
    pub digest: crate::reference::Digest,
    /// The policy's verifiers and how many must accept.
    pub policy: String,
    pub signatures: Vec<SignatureLine>,
    /// Artifacts looked at and set aside.
    pub ignored: Vec<String>,
    /// The signers that decided, or why the digest is refused.
    pub verdict: Result<String, String>,
}

/// One signature and each verifier's check of it.
pub struct SignatureLine {
    /// Where it was found (`.sig tag sha256:… layer 0`, `referrer sha256:…`).
    pub location: String,
    /// `simple-signing` or `bundle`.
    pub kind: &'static str,
    /// (verifier, its check).
    pub checks: Vec<(String, Check)>,
}

/// One verifier's check of one signature: accepted with (signer, issuer), or the refusal.
pub type Check = Result<(String, Option<String>), String>;

impl Proxy {
    /// For an image whose policy uses digest verifiers: the signature report of its tag (`None`
    /// for Notary v1 policies, which [`Proxy::inspect`] reports).
    pub async fn inspect_signatures(
        &self,
        image: &str,
    ) -> Result<Option<SignatureReport>, ApiError> {
        let route = self.route_image(image)?;
        let t = self.target(&route);
        let crate::policy::Signatures::Digest { verifiers, need } = t.policy.signatures.clone()
        else {
            return Ok(None);
        };
        let (digest, label) = match &route.endpoint {
            Endpoint::Manifest(ManifestRef::Digest(d)) => (*d, format!("{}@{d}", t.gun)),
            Endpoint::Manifest(ManifestRef::Tag(tag)) => {
                let d = if t.upstream.offline {
                    self.tag_history
                        .last(t.upstream.name(), t.repository(), tag.as_str())
                        .ok_or_else(|| {
                            ApiError::new(
                                ErrorCode::ManifestUnknown,
                                format!(
                                    "{}:{tag}: the mirror is offline and never resolved this tag",
                                    t.gun
                                ),
                            )
                        })?
                } else {
                    self.upstream_digest_of_tag(&t, tag.as_str())
                        .await
                        .map_err(ApiError::from)?
                };
                (d, format!("{}:{tag}", t.gun))
            }
            _ => {
                return Err(ApiError::new(
                    ErrorCode::NameInvalid,
                    format!("{image}: not an image reference"),
                ))
            }
        };
        let (discovered, verdict) = self.decide_digest(&t, &digest, &verifiers, need).await;
        let now: std::time::SystemTime = self.trust().now().into();
        let expected = crate::verify::cosign::Expected {
            registry_host: t.upstream.name(),
            repository: t.repository(),
            digest: &digest,
        };
        // Notation signs the manifest's size and media type too.
        let notation = verifiers.iter().any(|n| {
            self.digest_verifiers
                .get(n)
                .is_some_and(|v| v.is_notation())
        });
        let facts = if notation {
            self.manifest_facts(&t, &digest).await.ok()
        } else {
            None
        };
        let facts = facts
            .as_ref()
            .map(|(size, media_type)| crate::verify::digest::ManifestFacts {
                size: *size,
                media_type: media_type.as_str(),
            });
        let mut signatures = Vec::new();
        let mut ignored = Vec::new();
        if let Some(d) = &discovered {
            ignored = d.ignored.clone();
            for f in &d.found {
                let checks = verifiers
                    .iter()
                    .map(|name| {
                        let outcome = match self.digest_verifiers.get(name) {
                            Some(v) => v
                                .verify(&f.evidence, &expected, facts, now)
                                .map(|a| (a.signer, a.issuer)),
                            None => Err("not configured".to_string()),
                        };
                        (name.clone(), outcome)
                    })
                    .collect();
                signatures.push(SignatureLine {
                    location: f.location.to_string(),
                    kind: f.evidence.kind(),
                    checks,
                });
            }
        }
        Ok(Some(SignatureReport {
            image: label,
            digest,
            policy: t.policy.signatures.describe(),
            signatures,
            ignored,
            verdict: verdict.map(|v| v.signers()).map_err(|e| e.to_string()),
        }))
    }
}
