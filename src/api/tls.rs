//! The listener's TLS: `server.tls_cert`, `server.tls_key` and `server.client_ca` loaded from PEM
//! files into one rustls `ServerConfig`, which [`ReloadableTls::reload`] replaces whole (SIGHUP).
//!
//! A handshake takes the config current when the connection was accepted, so after a reload new
//! connections get the new certificate while open ones keep the session they negotiated. A reload
//! that fails keeps the previous config: a typo in a renewed file must not take the listener down.
//!
//! Loading is a pure function of the file bytes ([`build`]) wrapped by one that reads the files
//! ([`TlsFiles::load`]); `serve` and `trustgate check-config` ([`crate::check`]) both load them
//! through [`TlsFiles::from_config`] and [`TlsFiles::load`], so the check runs exactly the checks
//! `serve` runs. The configuration layer itself only checks that the keys come in pairs.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::config::ServerConfig;

/// ALPN protocols offered, preferred first: HTTP/2, then HTTP/1.1 (docker, containerd and
/// skopeo all speak both).
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// Sessions kept server-side for TLS 1.2 clients that resume by session ID rather than by
/// ticket (rustls' default is 256). A few hundred bytes each; nginx's `shared:SSL:10m` holds
/// about 40,000, but with tickets on most clients never need this cache.
const SESSION_CACHE_ENTRIES: usize = 4096;

/// A TLS file that cannot be used: the configuration key, the file and the problem, printed as
/// `server.tls_key: /etc/trustgate/key.pem: no private key found`, or
/// `server.tls_cert: cannot read /etc/trustgate/cert.pem: No such file or directory` (the shape
/// of the configuration's own "cannot read" lines).
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{key}: cannot read {}: {source}", path.display())]
    Read {
        key: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{key}: {}: {problem}", path.display())]
    Invalid {
        key: &'static str,
        path: PathBuf,
        problem: String,
    },
}

impl TlsError {
    /// The configuration key of the file: `server.tls_cert`, `server.tls_key` or
    /// `server.client_ca`.
    pub fn key(&self) -> &'static str {
        match self {
            TlsError::Read { key, .. } | TlsError::Invalid { key, .. } => key,
        }
    }

    pub fn path(&self) -> &Path {
        match self {
            TlsError::Read { path, .. } | TlsError::Invalid { path, .. } => path,
        }
    }
}

const CERT_KEY: &str = "server.tls_cert";
const KEY_KEY: &str = "server.tls_key";
const CA_KEY: &str = "server.client_ca";

/// Where the TLS material lives, as configured in `[server]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
}

/// What a successful load produced: the rustls config and a line for the log.
pub struct Loaded {
    pub config: Arc<rustls::ServerConfig>,
    /// e.g. `CN=gate.example, serial 1a2b…, valid until 2026-01-01 00:00:00 UTC; client certificates required`.
    pub summary: String,
}

impl TlsFiles {
    /// The files `[server]` names; `None` when the listener speaks plain HTTP.
    pub fn from_config(server: &ServerConfig) -> Option<TlsFiles> {
        match (&server.tls_cert, &server.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: server.client_ca.clone(),
            }),
            _ => None,
        }
    }

    /// Reads and checks every file: the chain parses, the key parses and matches the chain's
    /// first certificate, the client CA bundle holds usable certificates.
    pub fn load(&self) -> Result<Loaded, TlsError> {
        let cert = read(CERT_KEY, &self.cert)?;
        let key = read(KEY_KEY, &self.key)?;
        let ca = match &self.client_ca {
            Some(path) => Some(read(CA_KEY, path)?),
            None => None,
        };
        build(
            Pem {
                path: &self.cert,
                bytes: &cert,
            },
            Pem {
                path: &self.key,
                bytes: &key,
            },
            ca.as_ref()
                .zip(self.client_ca.as_ref())
                .map(|(b, p)| Pem { path: p, bytes: b }),
        )
    }
}

/// The bytes of one PEM file and its path (for messages).
#[derive(Clone, Copy)]
pub struct Pem<'a> {
    pub path: &'a Path,
    pub bytes: &'a [u8],
}

fn read(key: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        key,
        path: path.to_path_buf(),
        source,
    })
}

fn provider() -> Arc<CryptoProvider> {
    crate::crypto::tls_provider()
}

/// Builds the server config from the file contents. Pure: no I/O.
pub fn build(cert: Pem<'_>, key: Pem<'_>, client_ca: Option<Pem<'_>>) -> Result<Loaded, TlsError> {
    let fail = |k: &'static str, path: &Path, problem: String| TlsError::Invalid {
        key: k,
        path: path.to_path_buf(),
        problem,
    };
    let chain = parse_certs(cert.bytes).map_err(|p| fail(CERT_KEY, cert.path, p))?;
    let private = parse_key(key.bytes).map_err(|p| fail(KEY_KEY, key.path, p))?;
    let provider = provider();
    let signing = provider
        .key_provider
        .load_private_key(private)
        .map_err(|e| fail(KEY_KEY, key.path, format!("not a usable private key: {e}")))?;
    let certified = rustls::sign::CertifiedKey::new(chain.clone(), signing);
    match certified.keys_match() {
        Ok(()) => {}
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            return Err(fail(
                KEY_KEY,
                key.path,
                format!(
                    "does not belong to the first certificate of {} (tls_cert)",
                    cert.path.display()
                ),
            ))
        }
        // A key type whose public half rustls cannot derive: the handshake will tell.
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(e) => {
            return Err(fail(
                CERT_KEY,
                cert.path,
                format!("the first certificate cannot be used: {e}"),
            ))
        }
    }
    let summary_cert = describe_leaf(&chain[0]);

    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| fail(CERT_KEY, cert.path, format!("TLS setup failed: {e}")))?;
    let (builder, mtls) = match client_ca {
        None => (builder.with_no_client_auth(), ""),
        Some(ca) => {
            let certs = parse_certs(ca.bytes).map_err(|p| fail(CA_KEY, ca.path, p))?;
            let mut roots = RootCertStore::empty();
            for (i, c) in certs.into_iter().enumerate() {
                roots.add(c).map_err(|e| {
                    fail(
                        CA_KEY,
                        ca.path,
                        format!("certificate {} is not a usable CA: {e}", i + 1),
                    )
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| fail(CA_KEY, ca.path, format!("cannot verify clients: {e}")))?;
            (
                builder.with_client_cert_verifier(verifier),
                "; client certificates required",
            )
        }
    };
    let mut config =
        builder.with_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(certified)));
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    // Session resumption as a TLS gateway (nginx's `ssl_session_cache` plus
    // `ssl_session_tickets on`) offers it: a returning client skips the certificate signature
    // and its own chain check. Stateless tickets (TLS 1.3 and 1.2), encrypted with keys the
    // aws-lc-rs ticketer makes and rotates itself, never written anywhere; and a bounded cache
    // for session IDs. Both are new with each load, so a reload (a new certificate) also ends
    // resumption of sessions made under the old one.
    config.session_storage = rustls::server::ServerSessionMemoryCache::new(SESSION_CACHE_ENTRIES);
    config.ticketer = rustls::crypto::aws_lc_rs::Ticketer::new()
        .map_err(|e| fail(CERT_KEY, cert.path, format!("TLS session tickets: {e}")))?;
    Ok(Loaded {
        config: Arc::new(config),
        summary: format!("{summary_cert}{mtls}"),
    })
}

/// Every certificate of a PEM bundle (other PEM sections, e.g. a key, are skipped).
fn parse_certs(bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not valid PEM: {}", pem_problem(&e)))?;
    if certs.is_empty() {
        return Err("no certificate found (expected -----BEGIN CERTIFICATE-----)".into());
    }
    Ok(certs)
}

/// The first private key of a PEM file: PKCS#8, PKCS#1 (RSA) or SEC1 (EC).
fn parse_key(bytes: &[u8]) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_slice(bytes).map_err(|e| match e {
        pem::Error::NoItemsFound => "no private key found (expected -----BEGIN PRIVATE KEY-----, \
             -----BEGIN RSA PRIVATE KEY----- or -----BEGIN EC PRIVATE KEY-----)"
            .to_string(),
        e => format!("not valid PEM: {}", pem_problem(&e)),
    })
}

fn pem_problem(e: &pem::Error) -> String {
    match e {
        pem::Error::IllegalSectionStart { line } => {
            format!("bad section start {:?}", String::from_utf8_lossy(line))
        }
        pem::Error::MissingSectionEnd { end_marker } => {
            format!("missing {:?}", String::from_utf8_lossy(end_marker))
        }
        e => e.to_string(),
    }
}

/// Subject, serial and expiry of the served certificate, for the log lines of load and reload
/// (so an operator can see which certificate is live). Certificates x509-parser cannot read
/// are still served; rustls decides.
fn describe_leaf(der: &CertificateDer<'_>) -> String {
    use x509_parser::prelude::{FromDer, X509Certificate};
    match X509Certificate::from_der(der.as_ref()) {
        Ok((_, c)) => format!(
            "{}, serial {}, valid until {}",
            c.subject(),
            c.raw_serial_as_string().replace(':', ""),
            c.validity().not_after
        ),
        Err(_) => "certificate not readable by the summary".into(),
    }
}

/// The live TLS config, swapped whole by [`ReloadableTls::reload`].
pub struct ReloadableTls {
    files: TlsFiles,
    current: RwLock<Arc<rustls::ServerConfig>>,
}

impl ReloadableTls {
    /// Loads the files once; the error names the key and the file.
    pub fn load(files: TlsFiles) -> Result<(Self, String), TlsError> {
        let loaded = files.load()?;
        Ok((
            Self {
                files,
                current: RwLock::new(loaded.config),
            },
            loaded.summary,
        ))
    }

    /// Re-reads the files. On success new handshakes use them and the summary is returned; on
    /// failure the previous config stays in use.
    pub fn reload(&self) -> Result<String, TlsError> {
        let loaded = self.files.load()?;
        *self.current.write() = loaded.config;
        Ok(loaded.summary)
    }

    /// An acceptor for one new connection, with the config current now.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.current.read().clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Material {
        ca_pem: String,
        cert_pem: String,
        key_pem: String,
        other_key_pem: String,
    }

    fn material() -> Material {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();
        Material {
            ca_pem: ca.pem(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            other_key_pem: rcgen::KeyPair::generate().unwrap().serialize_pem(),
        }
    }

    fn pem<'a>(path: &'a str, text: &'a str) -> Pem<'a> {
        Pem {
            path: Path::new(path),
            bytes: text.as_bytes(),
        }
    }

    fn err(cert: &str, key: &str, ca: Option<&str>) -> String {
        match build(
            pem("/c.pem", cert),
            pem("/k.pem", key),
            ca.map(|c| pem("/ca.pem", c)),
        ) {
            Ok(_) => panic!("expected an error"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_matching_pair_loads_and_offers_h2_and_http1() {
        let m = material();
        let loaded = build(pem("/c.pem", &m.cert_pem), pem("/k.pem", &m.key_pem), None).unwrap();
        assert_eq!(
            loaded.config.alpn_protocols,
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
        assert!(loaded.summary.contains("serial"), "{}", loaded.summary);
        let with_ca = build(
            pem("/c.pem", &m.cert_pem),
            pem("/k.pem", &m.key_pem),
            Some(pem("/ca.pem", &m.ca_pem)),
        )
        .unwrap();
        assert!(with_ca.summary.ends_with("client certificates required"));
    }

    /// Moves TLS records between a client and a server in memory until neither has more to say.
    fn exchange(client: &mut rustls::ClientConnection, server: &mut rustls::ServerConnection) {
        loop {
            let mut to_server = Vec::new();
            while client.wants_write() {
                client.write_tls(&mut to_server).unwrap();
            }
            let mut to_client = Vec::new();
            let mut rd = &to_server[..];
            while !rd.is_empty() {
                server.read_tls(&mut rd).unwrap();
                server.process_new_packets().unwrap();
            }
            while server.wants_write() {
                server.write_tls(&mut to_client).unwrap();
            }
            let mut rd = &to_client[..];
            while !rd.is_empty() {
                client.read_tls(&mut rd).unwrap();
                client.process_new_packets().unwrap();
            }
            if to_server.is_empty() && to_client.is_empty() {
                return;
            }
        }
    }

    /// Two connections of one client, one after the other: the kind of the second handshake.
    fn second_handshake(
        server: &Arc<rustls::ServerConfig>,
        ca_pem: &str,
        version: &'static rustls::SupportedProtocolVersion,
    ) -> rustls::HandshakeKind {
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
            .unwrap();
        let client = Arc::new(
            rustls::ClientConfig::builder_with_provider(provider())
                .with_protocol_versions(&[version])
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth(),
        );
        let mut kind = None;
        for _ in 0..2 {
            let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
            let mut c = rustls::ClientConnection::new(client.clone(), name).unwrap();
            let mut s = rustls::ServerConnection::new(server.clone()).unwrap();
            exchange(&mut c, &mut s);
            assert!(!c.is_handshaking() && !s.is_handshaking());
            assert_eq!(c.protocol_version(), Some(version.version));
            kind = s.handshake_kind();
        }
        kind.unwrap()
    }

    #[test]
    fn a_returning_client_resumes_its_session_with_tls13_and_tls12() {
        let m = material();
        let loaded = build(pem("/c.pem", &m.cert_pem), pem("/k.pem", &m.key_pem), None).unwrap();
        assert!(loaded.config.ticketer.enabled());
        for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
            assert_eq!(
                second_handshake(&loaded.config, &m.ca_pem, version),
                rustls::HandshakeKind::Resumed,
                "{version:?}"
            );
        }
        // A reload (a new config) does not resume sessions of the old one.
        let reloaded = build(pem("/c.pem", &m.cert_pem), pem("/k.pem", &m.key_pem), None).unwrap();
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(m.ca_pem.as_bytes()).unwrap())
            .unwrap();
        let client = Arc::new(
            rustls::ClientConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth(),
        );
        let mut kinds = Vec::new();
        for server in [&loaded.config, &reloaded.config] {
            let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
            let mut c = rustls::ClientConnection::new(client.clone(), name).unwrap();
            let mut s = rustls::ServerConnection::new(server.clone()).unwrap();
            exchange(&mut c, &mut s);
            kinds.push(s.handshake_kind().unwrap());
        }
        assert_eq!(kinds, [rustls::HandshakeKind::Full; 2]);
    }

    #[test]
    fn a_file_without_a_key_names_the_key_and_file() {
        let m = material();
        // The certificate file given as the key: PEM, but no key in it.
        assert_eq!(
            err(&m.cert_pem, &m.cert_pem, None),
            "server.tls_key: /k.pem: no private key found (expected -----BEGIN PRIVATE KEY-----, \
             -----BEGIN RSA PRIVATE KEY----- or -----BEGIN EC PRIVATE KEY-----)"
        );
    }

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let m = material();
        let e = err(&m.cert_pem, &m.other_key_pem, None);
        assert!(
            e.starts_with(
                "server.tls_key: /k.pem: does not belong to the first certificate of /c.pem"
            ),
            "{e}"
        );
    }

    #[test]
    fn a_cert_file_without_certificates_is_refused() {
        let m = material();
        let e = err(&m.key_pem, &m.key_pem, None);
        assert!(
            e.starts_with("server.tls_cert: /c.pem: no certificate found"),
            "{e}"
        );
    }

    #[test]
    fn broken_pem_and_garbage_der_are_reported() {
        let m = material();
        let truncated = &m.cert_pem[..m.cert_pem.len() - 30];
        let e = err(truncated, &m.key_pem, None);
        assert!(
            e.starts_with("server.tls_cert: /c.pem: not valid PEM"),
            "{e}"
        );
        let garbage = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let e = err(garbage, &m.key_pem, None);
        assert!(
            e.starts_with("server.tls_cert: /c.pem: the first certificate cannot be used"),
            "{e}"
        );
        let bad_key = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        let e = err(&m.cert_pem, bad_key, None);
        assert!(
            e.starts_with("server.tls_key: /k.pem: not a usable private key"),
            "{e}"
        );
    }

    #[test]
    fn client_ca_problems_name_client_ca() {
        let m = material();
        let e = err(&m.cert_pem, &m.key_pem, Some(&m.key_pem));
        assert!(
            e.starts_with("server.client_ca: /ca.pem: no certificate found"),
            "{e}"
        );
        let garbage = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let e = err(&m.cert_pem, &m.key_pem, Some(garbage));
        assert!(
            e.starts_with("server.client_ca: /ca.pem: certificate 1 is not a usable CA"),
            "{e}"
        );
    }

    #[test]
    fn reload_swaps_and_a_failed_reload_keeps_the_old_config() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        let m = material();
        std::fs::write(&cert, &m.cert_pem).unwrap();
        std::fs::write(&key, &m.key_pem).unwrap();
        let files = TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: None,
        };
        let (tls, _) = ReloadableTls::load(files).unwrap();
        let before = tls.current.read().clone();

        std::fs::write(&key, "not a key").unwrap();
        let e = tls.reload().unwrap_err();
        assert_eq!(e.key(), "server.tls_key");
        assert_eq!(e.path(), key);
        assert!(Arc::ptr_eq(&before, &tls.current.read()));

        let m2 = material();
        std::fs::write(&cert, &m2.cert_pem).unwrap();
        std::fs::write(&key, &m2.key_pem).unwrap();
        tls.reload().unwrap();
        assert!(!Arc::ptr_eq(&before, &tls.current.read()));

        std::fs::remove_file(&cert).unwrap();
        let e = tls.reload().unwrap_err().to_string();
        assert!(
            e.starts_with(&format!(
                "server.tls_cert: cannot read {}: ",
                cert.display()
            )),
            "{e}"
        );
    }
}
