//! The one crypto library of the binary: aws-lc-rs. TLS (the listener, the upstream and Notary
//! client) takes its rustls provider from [`tls_provider`]; signature checks of trust data call
//! `aws_lc_rs::signature` directly (`crate::trust::keys`, `crate::trust::signature`).

use std::sync::Arc;

use rustls::crypto::CryptoProvider;

/// The rustls provider every TLS config is built with, given explicitly rather than taken from
/// the process default: a config then never depends on what some other crate installed first,
/// and building one cannot panic because two providers were compiled in.
pub fn tls_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_provider_is_aws_lc_rs_with_its_default_suites() {
        let p = super::tls_provider();
        let ours: Vec<_> = p.cipher_suites.iter().map(|s| s.suite()).collect();
        let aws: Vec<_> = rustls::crypto::aws_lc_rs::DEFAULT_CIPHER_SUITES
            .iter()
            .map(|s| s.suite())
            .collect();
        assert_eq!(ours, aws);
    }
}
