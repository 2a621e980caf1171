//! TLS to Scylla nodes: the system's trusted CAs (which honour `SSL_CERT_FILE`), plus a CA
//! file for clusters whose certificates a private CA issued.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use crate::error::{StoreError, StoreResult};

/// How to check the nodes' certificates.
#[derive(Debug, Clone, Default)]
pub struct ScyllaTls {
    /// PEM file of the CA(s) that issued the nodes' certificates, trusted besides the
    /// system's.
    pub ca_file: Option<PathBuf>,
}

impl ScyllaTls {
    /// A rustls client configuration trusting the system's CAs and `ca_file`.
    pub(super) fn client_config(&self) -> StoreResult<Arc<rustls::ClientConfig>> {
        let setup = |what: String| StoreError::Internal(format!("Scylla TLS: {what}"));
        let mut roots = RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(native.certs);
        if let Some(path) = &self.ca_file {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| setup(format!("cannot read {}: {e}", path.display())))?;
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| setup(format!("bad CA in {}: {e}", path.display())))?;
            }
        }
        if roots.is_empty() {
            return Err(setup(
                "no trusted CA (none on the system, no CA file)".into(),
            ));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| setup(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Arc::new(config))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_ca_file_is_a_clear_error_and_a_valid_one_is_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let missing = ScyllaTls {
            ca_file: Some(dir.path().join("missing.pem")),
        };
        let err = missing.client_config().unwrap_err().to_string();
        assert!(err.contains("missing.pem"), "{err}");

        // A PEM file with no certificate in it adds nothing, and says nothing wrong.
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let tls = ScyllaTls {
            ca_file: Some(empty),
        };
        let native = !rustls_native_certs::load_native_certs().certs.is_empty();
        assert_eq!(
            tls.client_config().is_ok(),
            native,
            "only the system's CAs remain"
        );
    }
}
