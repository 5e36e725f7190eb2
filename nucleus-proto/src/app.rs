//! The protocol bodies of application records: DNS, HTTP, TLS (and DTLS),
//! QUIC and SSH, each flattened into an [`crate::AppRecord`] next to the
//! flow it belongs to.
//!
//! Owns: each protocol's fields and their JSON names (as Zeek's logs
//! where they overlap). Inputs: values the sensor's dissectors fill in.
//! Outputs: their JSON view (`serde`).
//!
//! Does not: parse protocols (the sensor's dissectors do), nor say how
//! records travel on the wire (`crate::convert`).

use crate::Mnemonic;
use serde::Serialize;

/// A DNS transaction: one query and its response, matched by transaction
/// id (field names as Zeek's `dns.log`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DnsRecord {
    /// DNS transaction id.
    pub trans_id: u16,
    /// Seconds from the query to the response, when both were seen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtt: Option<f64>,
    /// The name queried (presentation format, no trailing dot).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// The query class (1 = IN).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qclass: Option<u16>,
    /// The query type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qtype: Option<Mnemonic>,
    /// The operation code (`QUERY`, `NOTIFY`, `UPDATE`, ...), of the query
    /// (of the response when no query was seen).
    pub opcode: Mnemonic,
    /// The response code (`NOERROR`, `NXDOMAIN`, ...); absent with no
    /// response.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rcode: Option<Mnemonic>,
    /// Authoritative answer.
    pub aa: bool,
    /// Truncated.
    pub tc: bool,
    /// Recursion desired.
    pub rd: bool,
    /// Recursion available.
    pub ra: bool,
    /// The answer section of the response.
    pub answers: Vec<DnsAnswer>,
    /// A query with no response before the flow ended.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub unanswered: bool,
    /// A response with no query seen.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub unsolicited: bool,
}

/// One resource record of a DNS answer section.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DnsAnswer {
    /// Owner name.
    pub name: String,
    /// Record type.
    #[serde(rename = "type")]
    pub rtype: Mnemonic,
    /// Time to live, seconds.
    pub ttl: u32,
    /// The record's data in presentation format (an address, a name, the
    /// text of a TXT record, ...).
    pub data: String,
}

/// An HTTP/1.x transaction: one request and its response (field names as
/// Zeek's `http.log`). Bodies are measured, never kept.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct HttpRecord {
    /// Position of the request within the connection, from 1.
    pub trans_depth: u32,
    /// Request method.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// The Host header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The request target as sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// The HTTP version of the request (`1.1`), else of the response.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The User-Agent header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// The response's status code (the final one after `100 Continue`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
    /// The response's reason phrase.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_msg: Option<String>,
    /// Request body bytes (after removing chunked transfer coding).
    pub request_body_len: u64,
    /// Response body bytes (after removing chunked transfer coding).
    pub response_body_len: u64,
    /// The response's Content-Type header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// The `100 Continue` (or other 1xx) status seen before the final one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub info_code: Option<u16>,
}

/// A TLS handshake (field names as Zeek's `ssl.log` and `x509.log` where
/// they overlap).
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct TlsRecord {
    /// The negotiated version (`TLSv12`, `TLSv13`, ...), else the highest
    /// offered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Server name indication.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    /// ALPN protocols offered by the client.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub alpn: Vec<String>,
    /// ALPN protocol the server selected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alpn_selected: Option<String>,
    /// The cipher suite the server selected (IANA name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cipher: Option<String>,
    /// JA3 (MD5 of `ja3_string`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ja3: Option<String>,
    /// The JA3 string.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ja3_string: Option<String>,
    /// JA3S (MD5 of `ja3s_string`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ja3s: Option<String>,
    /// The JA3S string.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ja3s_string: Option<String>,
    /// JA4 (the TLS client fingerprint).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ja4: Option<String>,
    /// The session was resumed.
    pub resumed: bool,
    /// The certificate chain, leaf first, when visible (TLS 1.2 and older).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub certs: Vec<Certificate>,
    /// Both sides switched to encrypted records (ChangeCipherSpec or
    /// application data seen from each).
    pub established: bool,
    /// The server answered with a HelloRetryRequest (TLS 1.3).
    pub hello_retry_request: bool,
    /// JA3S of that HelloRetryRequest (`ja3s` is the final ServerHello's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hello_retry_ja3s: Option<String>,
    /// DTLS: JA3 of the client's first ClientHello when the server made it
    /// retry and the retried one (in `ja3`) differs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_hello_ja3: Option<String>,
    /// The ClientHello carried an encrypted_client_hello extension.
    pub ech: bool,
    /// The highest version the client offered (`TLSv13`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_version: Option<String>,
    /// Alerts seen, in order (at most 16 kept; `alerts_total` counts all).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub alerts: Vec<TlsAlert>,
    /// Number of alert records seen, readable or encrypted.
    #[serde(skip_serializing_if = "is_zero")]
    pub alerts_total: u32,
    /// Description of the last readable alert (as Zeek's `last_alert`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_alert: Option<String>,
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

/// A TLS alert record.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct TlsAlert {
    /// Who sent it: `client` or `server`.
    pub from: String,
    /// `warning`, `fatal`, `unknown-N`, or `encrypted` (sent after the
    /// switch to encrypted records: its content is not visible).
    pub level: String,
    /// The description (`handshake_failure`, ...), empty when encrypted.
    pub description: String,
}

/// One X.509 certificate of a chain.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct Certificate {
    /// Subject distinguished name (RFC 4514 string).
    pub subject: String,
    /// Issuer distinguished name.
    pub issuer: String,
    /// DNS subject alternative names.
    pub san_dns: Vec<String>,
    /// IP subject alternative names.
    pub san_ip: Vec<String>,
    /// Serial number, hexadecimal.
    pub serial: String,
    /// Start of validity, RFC 3339.
    pub not_before: String,
    /// End of validity, RFC 3339.
    pub not_after: String,
    /// Public key algorithm (`rsa`, `ecdsa`, `ed25519`, ...).
    pub key_type: String,
    /// Public key size in bits.
    pub key_bits: u32,
    /// SHA-256 of the DER certificate, hexadecimal.
    pub sha256: String,
}

/// A QUIC connection's Initial packets (decrypted).
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct QuicRecord {
    /// QUIC version (`1`, `2`, or the hexadecimal number).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Server name indication of the ClientHello.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    /// ALPN protocols offered.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub alpn: Vec<String>,
    /// JA3 of the ClientHello.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ja3: Option<String>,
    /// JA4 of the ClientHello (QUIC form).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ja4: Option<String>,
    /// Destination connection id of the client's first Initial, hexadecimal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dcid: Option<String>,
    /// Source connection id of the client's first Initial, hexadecimal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scid: Option<String>,
}

/// An SSH connection's banners and key exchange.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct SshRecord {
    /// The client's identification string.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_banner: Option<String>,
    /// The server's identification string.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_banner: Option<String>,
    /// HASSH of the client's KEXINIT.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hassh: Option<String>,
    /// HASSH-server of the server's KEXINIT.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hassh_server: Option<String>,
    /// The negotiated key exchange algorithm.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kex: Option<String>,
    /// The negotiated cipher (client to server).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cipher: Option<String>,
    /// The negotiated MAC (client to server).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// Protocol version of the banners: `2` (banners `2.0` or `1.99` on
    /// both sides) or `1` (either side speaks only SSH-1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<u8>,
    /// The string HASSH hashes: the client's
    /// `kex;enc_c2s;mac_c2s;comp_c2s` algorithm lists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hassh_string: Option<String>,
    /// The string HASSH-server hashes: the server's
    /// `kex;enc_s2c;mac_s2c;comp_s2c` algorithm lists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hassh_server_string: Option<String>,
    /// The negotiated server host key algorithm.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_key_alg: Option<String>,
    /// The negotiated compression (client to server).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compression: Option<String>,
}
