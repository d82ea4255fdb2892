//! TLS client settings for rotor's connections to servers it is given (an IMAP server, a
//! PostgreSQL database): the platform's trusted certificates, plus those of a `ca_file`.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// The TLS client settings: the platform's roots (rustls-platform-verifier), plus the
/// certificates in `ca_file` (PEM) if set; server names and certificates always checked.
pub fn client_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let extra: Vec<CertificateDer<'static>> = match ca_file {
        None => Vec::new(),
        Some(file) => {
            let certs = CertificateDer::pem_file_iter(file)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|err| format!("cannot read `ca_file: {}`: {err}", file.display()))?;
            if certs.is_empty() {
                return Err(format!(
                    "`ca_file: {}` holds no PEM certificate",
                    file.display()
                ));
            }
            certs
        }
    };
    let verifier =
        rustls_platform_verifier::Verifier::new_with_extra_roots(extra, provider.clone())
            .map_err(|err| format!("cannot load the trusted certificates: {err}"))?;
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| format!("TLS: {err}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth())
}
