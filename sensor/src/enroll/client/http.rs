//! HTTP/1.1 requests for the AWS APIs and IMDS: HTTPS with rustls (ring,
//! Mozilla's roots from webpki-roots) for AWS, plain HTTP for IMDS and for
//! an endpoint override in tests.
//!
//! Owns: one request and its answer, with a timeout and a cap on the body.
//! Input: method, URL, headers, body. Output: status and body bytes. Does
//! not: sign, retry, or keep connections (a pass makes at most a few dozen
//! calls per second, so a connection per call costs little and never goes
//! stale between passes).

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::Request;
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// An answer: status and body.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// HTTP status code.
    pub status: u16,
    /// The body, at most the client's cap.
    pub body: Bytes,
}

/// Where a URL points.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// `https` or not.
    pub tls: bool,
    /// Host name or address (no brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// `host` or `host:port` as the Host header carries it.
    pub authority: String,
    /// Path and query (`/` when empty).
    pub path: String,
}

impl Target {
    /// Parses an `http://` or `https://` URL.
    pub fn parse(url: &str) -> Result<Self, String> {
        let uri: hyper::Uri = url.parse().map_err(|e| format!("URL {url:?}: {e}"))?;
        let tls = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(format!("URL {url:?}: scheme must be http or https")),
        };
        let authority = uri
            .authority()
            .ok_or_else(|| format!("URL {url:?}: no host"))?;
        let host = authority.host().trim_matches(['[', ']']).to_string();
        let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let path = uri
            .path_and_query()
            .map_or("/".to_string(), |p| p.as_str().to_string());
        Ok(Self {
            tls,
            host,
            port,
            authority: authority.as_str().to_string(),
            path: if path.is_empty() { "/".into() } else { path },
        })
    }
}

/// Sends requests; cheap to clone.
#[derive(Clone)]
pub struct HttpClient {
    tls: tokio_rustls::TlsConnector,
    timeout: Duration,
    max_body_bytes: usize,
}

impl HttpClient {
    /// A client whose requests end after `timeout` and whose answers are
    /// refused past `max_body_bytes`.
    pub fn new(timeout: Duration, max_body_bytes: usize) -> Result<Self, String> {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS configuration: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self {
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
            timeout,
            max_body_bytes,
        })
    }

    /// Sends one request and reads the whole answer.
    pub async fn send(
        &self,
        method: &str,
        target: &Target,
        headers: &[(String, String)],
        body: Vec<u8>,
    ) -> Result<HttpResponse, String> {
        match tokio::time::timeout(self.timeout, self.exchange(method, target, headers, body)).await
        {
            Ok(r) => r,
            Err(_) => Err(format!(
                "no answer from {} within {:?}",
                target.authority, self.timeout
            )),
        }
    }

    async fn exchange(
        &self,
        method: &str,
        target: &Target,
        headers: &[(String, String)],
        body: Vec<u8>,
    ) -> Result<HttpResponse, String> {
        let tcp = TcpStream::connect((target.host.as_str(), target.port))
            .await
            .map_err(|e| format!("connecting to {}: {e}", target.authority))?;
        let _ = tcp.set_nodelay(true);
        if !target.tls {
            return self.over(tcp, method, target, headers, body).await;
        }
        let name = rustls::pki_types::ServerName::try_from(target.host.clone())
            .map_err(|e| format!("TLS name {}: {e}", target.host))?;
        let tls = self
            .tls
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS with {}: {e}", target.authority))?;
        self.over(tls, method, target, headers, body).await
    }

    async fn over<S>(
        &self,
        stream: S,
        method: &str,
        target: &Target,
        headers: &[(String, String)],
        body: Vec<u8>,
    ) -> Result<HttpResponse, String>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("HTTP with {}: {e}", target.authority))?;
        // The connection task ends when the exchange is over (or fails).
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let mut request = Request::builder()
            .method(method)
            .uri(target.path.as_str())
            .header(hyper::header::HOST, target.authority.as_str());
        for (name, value) in headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| format!("building the request: {e}"))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("HTTP with {}: {e}", target.authority))?;
        let status = response.status().as_u16();
        let body = Limited::new(response.into_body(), self.max_body_bytes)
            .collect()
            .await
            .map_err(|e| format!("reading the answer of {}: {e}", target.authority))?
            .to_bytes();
        Ok(HttpResponse { status, body })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let t = Target::parse("https://ec2.eu-west-1.amazonaws.com").unwrap();
        assert!(t.tls && t.port == 443 && t.path == "/" && t.host == "ec2.eu-west-1.amazonaws.com");
        let t = Target::parse("http://127.0.0.1:5000/123456789012/q").unwrap();
        assert!(!t.tls && t.port == 5000 && t.path == "/123456789012/q");
        assert_eq!(t.authority, "127.0.0.1:5000");
        let t = Target::parse("http://[::1]:8/").unwrap();
        assert_eq!(t.host, "::1");
        assert!(Target::parse("ftp://x/").is_err());
        assert!(Target::parse("/relative").is_err());
    }
}
