//! The receiver's TLS configuration: its certificate and key, and the CAs
//! a client certificate must chain to when mutual TLS is on. rustls with
//! the ring provider.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ServerConfig, WebPkiClientVerifier};

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("{}: reading certificates", path.display()))?;
    anyhow::ensure!(
        !certs.is_empty(),
        "{}: no certificate in the file",
        path.display()
    );
    Ok(certs)
}

/// The server configuration; `client_ca` turns on mutual TLS.
pub fn server_config(cert: &Path, key: &Path, client_ca: Option<&Path>) -> Result<ServerConfig> {
    let chain = certificates(cert)?;
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("{}: reading the private key", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for c in certificates(ca)? {
                roots
                    .add(c)
                    .with_context(|| format!("{}: a CA certificate", ca.display()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .context("client certificate verifier")?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    builder
        .with_single_cert(chain, key)
        .context("the receiver's certificate and key")
}

/// A failed handshake, said so an operator knows which side to fix.
pub fn explain(e: &std::io::Error) -> String {
    use rustls::{AlertDescription, CertificateError, Error};
    let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<Error>()) else {
        return e.to_string();
    };
    match tls {
        Error::NoCertificatesPresented => format!(
            "the sensor presented no client certificate, and this receiver requires one \
             (--client-ca; the sensor's --nucleus-cert and --nucleus-key): {tls}"
        ),
        // BadSignature: a CA of --client-ca has the issuer's name but did
        // not sign it (a CA made again under the same name).
        Error::InvalidCertificate(
            CertificateError::UnknownIssuer | CertificateError::BadSignature,
        ) => {
            format!("the sensor's client certificate is not signed by a CA of --client-ca: {tls}")
        }
        Error::InvalidCertificate(_) => {
            format!("the sensor's client certificate was refused: {tls}")
        }
        Error::AlertReceived(
            AlertDescription::UnknownCA
            | AlertDescription::BadCertificate
            | AlertDescription::CertificateUnknown
            | AlertDescription::DecryptError,
        ) => format!(
            "the sensor does not trust this receiver's certificate (is --tls-cert signed by the \
             CA the sensor has as --nucleus-ca, and does it name the address the sensor dials?): \
             {tls}"
        ),
        _ => tls.to_string(),
    }
}
