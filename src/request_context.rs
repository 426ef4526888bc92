//! The facts of the request being served (its id, the client, the authenticated user), available
//! to every layer below the listener without threading them through each call: the audit line
//! of a trust decision names the client and user of the request that caused it.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// One client request.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// Sent back in `X-Request-Id` and carried by every log line of the request.
    pub id: String,
    pub client: SocketAddr,
    /// The user who logged in, when `[auth]` is on.
    pub user: Option<String>,
}

tokio::task_local! {
    static CURRENT: RequestContext;
}

impl RequestContext {
    /// Runs `f` with this context as the current one.
    pub async fn scope<F: Future>(self, f: F) -> F::Output {
        CURRENT.scope(self, f).await
    }

    /// The context of the request being served by this task, if any (none in `seed`, `verify`
    /// and background work).
    pub fn current() -> Option<RequestContext> {
        CURRENT.try_with(Clone::clone).ok()
    }
}

/// A request id unique within this process and unlikely to repeat across restarts: a random
/// per-process prefix and a counter (`3f9a12c0-000017`). Cheap enough for every request.
pub fn new_request_id() -> String {
    static PREFIX: OnceLock<u32> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = *PREFIX.get_or_init(process_nonce);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed) + 1;
    format!("{prefix:08x}-{n:06}")
}

/// 32 bits that differ between processes: the start time and the process id, hashed.
fn process_nonce() -> u32 {
    use sha2::{Digest, Sha256};
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let h = Sha256::digest(format!("{now}-{}", std::process::id()));
    u32::from_be_bytes([h[0], h[1], h[2], h[3]])
}

/// A client-supplied `X-Request-Id` is kept (so a request can be followed across a chain of
/// proxies) when it is short and plain; anything else is replaced by our own.
pub fn accept_request_id(supplied: Option<&str>) -> String {
    match supplied {
        Some(id)
            if !id.is_empty()
                && id.len() <= 64
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b)) =>
        {
            id.to_string()
        }
        _ => new_request_id(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_plain() {
        let a = new_request_id();
        let b = new_request_id();
        assert_ne!(a, b);
        assert_eq!(&a[..9], &b[..9], "same process prefix");
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit() || c == b'-'));
    }

    #[test]
    fn supplied_ids_are_kept_only_when_plain() {
        assert_eq!(accept_request_id(Some("abc-123_x.y:z")), "abc-123_x.y:z");
        for bad in ["", "a b", "a\"b", "é", &"x".repeat(65)] {
            assert_ne!(accept_request_id(Some(bad)), bad, "{bad:?}");
        }
        assert!(!accept_request_id(None).is_empty());
    }

    #[tokio::test]
    async fn context_is_visible_inside_its_scope_only() {
        assert!(RequestContext::current().is_none());
        let ctx = RequestContext {
            id: "r1".into(),
            client: "127.0.0.1:9".parse().unwrap(),
            user: Some("alice".into()),
        };
        let seen = ctx
            .scope(async { RequestContext::current().map(|c| (c.id, c.user)) })
            .await;
        assert_eq!(seen, Some(("r1".into(), Some("alice".into()))));
        assert!(RequestContext::current().is_none());
    }
}
