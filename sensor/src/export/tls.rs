//! The exporter's TLS client: the Nucleus's certificate is verified against
//! the configured CA (never the system roots: a Nucleus is the operator's
//! own service), and the sensor presents its certificate when configured
//! (mutual TLS). rustls with the ring provider.
//!
//! Owns: reading the PEM files (with errors naming them), the client
//! configuration, the server name, and turning handshake failures into
//! sentences that name the cause. Does not: connect.

use anyhow::{Context, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use std::path::Path;
use std::sync::Arc;

fn certificates(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("{}: reading {what}", path.display()))?;
    anyhow::ensure!(
        !certs.is_empty(),
        "{}: no certificate in the file ({what})",
        path.display()
    );
    Ok(certs)
}

/// The client configuration: trust `ca`, present `identity` (certificate
/// chain and key files) when given.
pub fn client_config(ca: &Path, identity: Option<(&Path, &Path)>) -> Result<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for c in certificates(ca, "the Nucleus CA (nucleus.ca)")? {
        roots
            .add(c)
            .with_context(|| format!("{}: a CA certificate", ca.display()))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_root_certificates(roots);
    match identity {
        None => Ok(builder.with_no_client_auth()),
        Some((cert, key)) => {
            let chain = certificates(cert, "the sensor's certificate (nucleus.cert)")?;
            let key = PrivateKeyDer::from_pem_file(key).with_context(|| {
                format!("{}: reading the private key (nucleus.key)", key.display())
            })?;
            builder
                .with_client_auth_cert(chain, key)
                .context("the sensor's certificate and key do not go together")
        }
    }
}

/// The name the Nucleus's certificate must carry: `server_name`, else the
/// host of the address (an IP address is matched against IP SANs).
pub fn server_name(server_name: &str, host: &str) -> Result<ServerName<'static>> {
    let name = if server_name.is_empty() {
        host
    } else {
        server_name
    };
    ServerName::try_from(name.to_string())
        .with_context(|| format!("{name:?} is not a DNS name or IP address"))
}

/// A handshake or session error, said so an operator knows what to fix.
pub fn explain(e: &std::io::Error) -> String {
    let inner = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>());
    let Some(tls) = inner else {
        return e.to_string();
    };
    use rustls::{AlertDescription, CertificateError, Error};
    match tls {
        // BadSignature: a configured CA has the issuer's name but did not
        // sign it (a CA made again under the same name).
        Error::InvalidCertificate(
            CertificateError::UnknownIssuer | CertificateError::BadSignature,
        ) => format!(
            "the Nucleus's certificate is not signed by the configured CA (nucleus.ca, \
             --nucleus-ca): {tls}"
        ),
        Error::InvalidCertificate(CertificateError::NotValidForName)
        | Error::InvalidCertificate(CertificateError::NotValidForNameContext { .. }) => format!(
            "the Nucleus's certificate does not name the address dialled (set \
             nucleus.server_name to the name it carries): {tls}"
        ),
        Error::InvalidCertificate(_) => {
            format!("the Nucleus's certificate was refused: {tls}")
        }
        Error::AlertReceived(AlertDescription::CertificateRequired) => format!(
            "the Nucleus requires a client certificate (mutual TLS) and none is configured \
             (nucleus.cert and nucleus.key, --nucleus-cert and --nucleus-key): {tls}"
        ),
        Error::AlertReceived(
            AlertDescription::UnknownCA
            | AlertDescription::BadCertificate
            | AlertDescription::CertificateUnknown
            | AlertDescription::DecryptError
            | AlertDescription::AccessDenied,
        ) => format!("the Nucleus refused this sensor's client certificate: {tls}"),
        _ => format!("TLS: {tls}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_name_falls_back_to_the_host_and_accepts_ip_addresses() {
        assert_eq!(
            server_name("", "127.0.0.1").unwrap(),
            ServerName::try_from("127.0.0.1").unwrap()
        );
        assert_eq!(
            server_name("nucleus.internal", "10.0.0.5").unwrap(),
            ServerName::try_from("nucleus.internal").unwrap()
        );
        assert!(server_name("", "bad name!").is_err());
    }

    #[test]
    fn missing_files_are_named_in_the_error() {
        let e = client_config(Path::new("/nonexistent/ca.pem"), None).unwrap_err();
        assert!(format!("{e:#}").contains("/nonexistent/ca.pem"), "{e:#}");
    }

    #[test]
    fn unknown_issuer_and_required_certificate_are_explained() {
        let unknown = std::io::Error::other(rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer,
        ));
        assert!(explain(&unknown).contains("not signed by the configured CA"));
        let same_name = std::io::Error::other(rustls::Error::InvalidCertificate(
            rustls::CertificateError::BadSignature,
        ));
        assert!(explain(&same_name).contains("not signed by the configured CA"));
        let required = std::io::Error::other(rustls::Error::AlertReceived(
            rustls::AlertDescription::CertificateRequired,
        ));
        assert!(explain(&required).contains("requires a client certificate"));
    }
}
