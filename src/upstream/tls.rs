//! The upstream client's TLS (registries and Notary servers): a rustls config built here and
//! handed to reqwest whole, so that the crypto provider is the binary's one (aws-lc-rs, given
//! explicitly) and the trusted roots are what the configuration says: Mozilla's roots
//! (webpki-roots, compiled in, as with reqwest 0.12) plus the upstream's `ca_pem`. reqwest 0.13
//! would otherwise use the host's store through the platform verifier.

use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

/// ALPN offered to upstreams, preferred first (what reqwest offers when it builds the config).
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// Client config trusting the webpki roots and every certificate of `ca_pem` (other PEM
/// sections are skipped). Errors name what is wrong with `ca_pem`.
pub fn client_config(ca_pem: Option<&[u8]>) -> Result<ClientConfig, String> {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(pem) = ca_pem {
        let certs = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("ca_pem is not a PEM bundle: {e}"))?;
        if certs.is_empty() {
            return Err("ca_pem holds no certificate".to_string());
        }
        for (i, c) in certs.into_iter().enumerate() {
            roots.add(c).map_err(|e| {
                format!("ca_pem certificate {} is not usable as a root: {e}", i + 1)
            })?;
        }
    }
    let mut config = ClientConfig::builder_with_provider(crate::crypto::tls_provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS versions: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webpki_roots_and_alpn_without_ca_pem() {
        let c = client_config(None).unwrap();
        assert_eq!(c.alpn_protocols, vec![b"h2".to_vec(), b"http/1.1".to_vec()]);
        assert!(c.enable_sni);
    }

    #[test]
    fn ca_pem_problems_are_named() {
        let e = client_config(Some(b"no pem here")).unwrap_err();
        assert_eq!(e, "ca_pem holds no certificate");
        let e = client_config(Some(
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        ))
        .unwrap_err();
        assert!(
            e.starts_with("ca_pem certificate 1 is not usable as a root"),
            "{e}"
        );
        let e = client_config(Some(b"-----BEGIN CERTIFICATE-----\nAAAA\n")).unwrap_err();
        assert!(e.starts_with("ca_pem is not a PEM bundle"), "{e}");
    }
}
