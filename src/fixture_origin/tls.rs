//! TLS for the fixture origin: a certificate and key from PEM files, and
//! which protocols ALPN offers (HTTP/2 and HTTP/1.1, or HTTP/1.1 only), so
//! tests and fault runs can fetch over HTTPS and HTTP/2 as from a CDN.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// What the origin's ALPN offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alpn {
    /// `h2`, then `http/1.1`: clients that speak HTTP/2 get it.
    H2AndHttp1,
    /// `http/1.1` only.
    Http1,
}

/// A server TLS configuration for the origin.
#[derive(Clone)]
pub struct Tls {
    pub(super) config: Arc<rustls::ServerConfig>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("alpn", &self.config.alpn_protocols)
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// Serves the certificate chain in `cert` (PEM) with the key in `key`.
    ///
    /// # Errors
    /// A message when a file cannot be read or does not hold a usable
    /// certificate and key.
    pub fn from_files(cert: &Path, key: &Path, alpn: Alpn) -> Result<Tls, String> {
        let certs = CertificateDer::pem_file_iter(cert)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("{}: {e}", cert.display()))?;
        let key =
            PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| e.to_string())?;
        config.alpn_protocols = match alpn {
            Alpn::H2AndHttp1 => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
            Alpn::Http1 => vec![b"http/1.1".to_vec()],
        };
        Ok(Tls {
            config: Arc::new(config),
        })
    }
}
