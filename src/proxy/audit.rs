//! The audit trail: one line per trust decision, naming who asked (client, user, request id),
//! for what (image), the verdict and its reason, the signing role and the digest; each decision
//! is also counted in `trustgate_trust_decisions_total`, under the same reason label.
//!
//! Lines go to the `trustgate::audit` target at info level, so a log collector can route them
//! apart from the request log (`RUST_LOG=trustgate::audit=info` keeps only them).

use crate::decision::{Reason, Verdict};
use crate::metrics::metrics;
use crate::reference::Digest;
use crate::request_context::RequestContext;

use super::PullError;

/// One decision, as logged.
#[derive(Debug)]
pub struct Decision<'a> {
    pub verdict: Verdict,
    /// `gun:tag` or `gun@digest`.
    pub image: String,
    pub reason: Reason,
    /// The full reason, for denials.
    pub message: Option<String>,
    /// The role whose signature decided (`targets`, `targets/releases`).
    pub role: Option<&'a str>,
    pub digest: Option<&'a Digest>,
}

impl<'a> Decision<'a> {
    /// The denial `e` stands for, or `None` when `e` is not a trust decision (an upstream outage
    /// or a content-negotiation failure is left to the request log).
    pub fn denial(
        e: &PullError,
        image: String,
        role: Option<&'a str>,
        digest: Option<&'a Digest>,
    ) -> Option<Self> {
        Some(Self {
            verdict: Verdict::Deny,
            image,
            reason: e.reason()?,
            message: Some(e.to_string()),
            role,
            digest,
        })
    }
}

/// Logs `d` with the current request's facts, and counts it in
/// `trustgate_trust_decisions_total`.
pub fn record(d: Decision<'_>) {
    metrics().trust_decision(d.verdict, d.reason);
    let ctx = RequestContext::current();
    let client = ctx
        .as_ref()
        .map(|c| c.client.to_string())
        .unwrap_or_else(|| "-".into());
    let user = ctx
        .as_ref()
        .and_then(|c| c.user.clone())
        .unwrap_or_else(|| "-".into());
    let request_id = ctx.as_ref().map(|c| c.id.as_str()).unwrap_or("-");
    let digest = d.digest.map(|x| x.to_string());
    tracing::info!(
        target: "trustgate::audit",
        request_id,
        client = %client,
        user = %user,
        image = %d.image,
        verdict = d.verdict.as_str(),
        reason = d.reason.as_str(),
        role = d.role.unwrap_or("-"),
        digest = digest.as_deref().unwrap_or("-"),
        detail = d.message.as_deref().unwrap_or("-"),
        "trust decision"
    );
}

/// Trusted content is being served.
pub fn allow(image: String, reason: Reason, role: Option<&str>, digest: Option<&Digest>) {
    record(Decision {
        verdict: Verdict::Allow,
        image,
        reason,
        message: None,
        role,
        digest,
    })
}

/// `e` ends the request: logged as a denial when it is a trust refusal.
pub fn refused(e: &PullError, image: String, role: Option<&str>, digest: Option<&Digest>) {
    if let Some(d) = Decision::denial(e, image, role, digest) {
        record(d)
    }
}
