//! What one request is about, worked out once: its [`Upstream`], its GUN (`<upstream>/<repo>`,
//! the name trust data is signed for), the [`Policy`] that applies and the [`Route`].

use std::sync::Arc;

use crate::api::{Route, UpstreamId};
use crate::config::UpstreamConfig;
use crate::enforce::NotarySource;
use crate::policy::Policy;
use crate::trust::notary::NotaryClient;
use crate::upstream::RegistryClient;
use crate::verify::Subject;

/// One configured upstream: its configuration, its registry client, its Notary client (when
/// one is configured) and whether the mirror is offline.
pub struct Upstream {
    pub id: UpstreamId,
    pub config: UpstreamConfig,
    pub client: RegistryClient,
    pub notary: Option<NotaryClient>,
    /// `offline = true`: never asked; content and trust data come from the store only.
    pub offline: bool,
}

impl Upstream {
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Where its Notary v1 trust data comes from.
    pub fn notary_source(&self) -> NotarySource<'_> {
        NotarySource {
            upstream: &self.config.name,
            notary: self.notary.as_ref(),
            offline: self.offline,
        }
    }
}

/// The per-request facts every handler needs.
pub struct Target<'a> {
    pub upstream: &'a Upstream,
    /// `<upstream name>/<repository>`.
    pub gun: String,
    pub policy: Arc<Policy>,
    pub route: &'a Route,
}

impl Target<'_> {
    /// The repository as the upstream names it.
    pub fn repository(&self) -> &str {
        self.route.repository.as_str()
    }

    /// What the verifier seam is asked about.
    pub fn subject(&self) -> Subject<'_> {
        Subject {
            gun: &self.gun,
            repository: self.repository(),
            registry: &self.upstream.client,
            notary: self.upstream.notary_source(),
        }
    }

    /// The Notary server's `host[:port]`, for refusal details.
    pub fn notary_host(&self) -> Option<String> {
        self.upstream.notary.as_ref().map(|n| n.host().to_string())
    }
}
