//! Tag lists, under each trust mode: under enforce, only the signed tags (sorted, paginated
//! here); otherwise the upstream's list, its pagination passed on.

use super::audit;
use super::{Fetching, Proxy, PullError, TagList, Target};
use crate::config::TrustMode;

/// The largest upstream tag list read.
const MAX_TAG_LIST_BYTES: u64 = 16 * 1024 * 1024;

impl Proxy {
    /// `GET /v2/<name>/tags/list`.
    pub(crate) async fn tags(
        &self,
        t: &Target<'_>,
        n: Option<usize>,
        last: Option<&str>,
    ) -> Result<TagList, PullError> {
        match t.policy.mode {
            // Digest verifiers sign digests, not tags: the upstream's list is only names, and
            // each pull of a name is verified.
            TrustMode::Enforce
                if matches!(
                    t.policy.signatures,
                    crate::policy::Signatures::Digest { .. }
                ) =>
            {
                self.upstream_tags(t, n, last).await
            }
            TrustMode::Enforce => self.signed_tags(t, n, last).await,
            TrustMode::Audit | TrustMode::Off => self.upstream_tags(t, n, last).await,
        }
    }

    async fn signed_tags(
        &self,
        t: &Target<'_>,
        n: Option<usize>,
        last: Option<&str>,
    ) -> Result<TagList, PullError> {
        let repo = self
            .signed_set(t, None)
            .await
            .inspect_err(|e| audit::refused(e, format!("{} (tag list)", t.gun), None, None))?;
        let mut names: Vec<String> = repo.signed_targets().into_iter().map(|t| t.name).collect();
        names.sort();
        names.dedup();
        Ok(page(names, n, last))
    }

    async fn upstream_tags(
        &self,
        t: &Target<'_>,
        n: Option<usize>,
        last: Option<&str>,
    ) -> Result<TagList, PullError> {
        let up = t.upstream;
        let n_u32 = n.map(|n| u32::try_from(n).unwrap_or(u32::MAX));
        let fail = |e| PullError::upstream(e, Fetching::Tags);
        let resp = up
            .client
            .tags(t.repository(), n_u32, last)
            .await
            .map_err(fail)?;
        let link = resp.header_str("link").map(str::to_string);
        let bytes = resp.bytes_limited(MAX_TAG_LIST_BYTES).await.map_err(fail)?;
        #[derive(serde::Deserialize)]
        struct Shape {
            tags: Option<Vec<String>>,
        }
        let list: Shape =
            serde_json::from_slice(&bytes).map_err(|source| PullError::UnreadableTagList {
                upstream: up.name().to_string(),
                source,
            })?;
        Ok(TagList {
            names: list.tags.unwrap_or_default(),
            next: link.as_deref().and_then(next_page_query),
        })
    }
}

/// The names after `last`, at most `n` of them.
fn page(names: Vec<String>, n: Option<usize>, last: Option<&str>) -> TagList {
    let after: Vec<String> = names
        .into_iter()
        .filter(|t| last.is_none_or(|l| t.as_str() > l))
        .collect();
    match n {
        Some(n) if after.len() > n => {
            let names: Vec<String> = after[..n].to_vec();
            let next = names.last().cloned().map(|l| (l, Some(n.to_string())));
            TagList { names, next }
        }
        _ => TagList {
            names: after,
            next: None,
        },
    }
}

/// `last` and `n` of the upstream's `Link: <...?last=x&n=y>; rel="next"`.
fn next_page_query(link: &str) -> Option<(String, Option<String>)> {
    if !link.contains("rel=\"next\"") && !link.contains("rel=next") {
        return None;
    }
    let start = link.find('<')? + 1;
    let end = start + link[start..].find('>')?;
    let target = &link[start..end];
    let query = target.split_once('?')?.1;
    let mut last = None;
    let mut n = None;
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        match &*k {
            "last" => last = Some(v.into_owned()),
            "n" => n = Some(v.into_owned()),
            _ => {}
        }
    }
    Some((last?, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_page_is_read_from_the_upstream_link() {
        assert_eq!(
            next_page_query("</v2/library/a/tags/list?last=b%2Bc&n=2>; rel=\"next\""),
            Some(("b+c".into(), Some("2".into())))
        );
        assert_eq!(next_page_query("</v2/x/tags/list?n=2>; rel=\"next\""), None);
        assert_eq!(
            next_page_query("</v2/x/tags/list?last=a>; rel=\"prev\""),
            None
        );
        assert_eq!(next_page_query("garbage"), None);
    }

    #[test]
    fn signed_tags_are_paged_here() {
        let names = || vec!["a".to_string(), "b".into(), "c".into()];
        let p = page(names(), Some(2), None);
        assert_eq!(p.names, ["a", "b"]);
        assert_eq!(p.next, Some(("b".into(), Some("2".into()))));
        let p = page(names(), Some(2), Some("b"));
        assert_eq!((p.names, p.next), (vec!["c".to_string()], None));
    }
}
