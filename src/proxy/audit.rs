//! The audit trail: one line per trust decision, naming who asked (client, user, request id),
//! for what (image), the verdict and its reason, the signing role and the digest.
//!
//! Lines go to the `trustgate::audit` target at info level, so a log collector can route them
//! apart from the request log (`RUST_LOG=trustgate::audit=info` keeps only them).

use crate::api::context::RequestContext;
use crate::api::ApiError;
use crate::metrics::{metrics, Outcome, Reason};

/// What was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// One decision, as logged.
#[derive(Debug)]
pub struct Decision<'a> {
    pub verdict: Verdict,
    /// `gun:tag` or `gun@digest`.
    pub image: String,
    /// A short, bounded label (`signed`, `in_signed_closure`, `unsigned_tag`, `expired`, ...).
    pub reason: String,
    /// The full reason, for denials.
    pub message: Option<&'a str>,
    /// The role whose signature decided (`targets`, `targets/releases`).
    pub role: Option<&'a str>,
    pub digest: Option<String>,
}

/// The reason label of a trust refusal, or `None` when `e` is not one (an upstream outage, a
/// content-negotiation failure): those are not trust decisions.
pub fn trust_reason(e: &ApiError) -> Option<String> {
    e.detail
        .get("reason")
        .and_then(|r| r.as_str())
        .map(snake_case)
}

/// `NoTrustData` → `no_trust_data`.
fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Logs `d` with the current request's facts, and counts it in
/// `trustgate_trust_decisions_total`.
pub fn record(d: Decision<'_>) {
    let outcome = match d.verdict {
        Verdict::Allow => Outcome::Allow,
        Verdict::Deny => Outcome::Deny,
        Verdict::AuditWouldDeny => Outcome::AuditWouldDeny,
    };
    metrics().trust_decision(outcome, Reason::from_label(&d.reason));
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
    tracing::info!(
        target: "trustgate::audit",
        request_id,
        client = %client,
        user = %user,
        image = %d.image,
        verdict = d.verdict.as_str(),
        reason = %d.reason,
        role = d.role.unwrap_or("-"),
        digest = d.digest.as_deref().unwrap_or("-"),
        detail = d.message.unwrap_or("-"),
        "trust decision"
    );
}

/// Trusted content is being served.
pub fn allow(image: String, reason: &str, role: Option<&str>, digest: Option<String>) {
    record(Decision {
        verdict: Verdict::Allow,
        image,
        reason: reason.into(),
        message: None,
        role,
        digest,
    })
}

/// `e` ends the request: logged as a denial when it is a trust refusal (an upstream outage or
/// a content-negotiation failure is not a trust decision and is left to the request log).
pub fn refused(e: &ApiError, image: String, role: Option<&str>, digest: Option<String>) {
    if let Some(reason) = trust_reason(e) {
        record(Decision {
            verdict: Verdict::Deny,
            image,
            reason,
            message: Some(&e.message),
            role,
            digest,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ErrorCode;

    #[test]
    fn reasons_come_from_trust_refusals_only() {
        let refusal = ApiError::new(ErrorCode::Denied, "expired")
            .with_detail(serde_json::json!({"reason": "NoTrustData"}));
        assert_eq!(trust_reason(&refusal).as_deref(), Some("no_trust_data"));
        let outage = ApiError::new(ErrorCode::Unavailable, "upstream down");
        assert_eq!(trust_reason(&outage), None);
    }
}
