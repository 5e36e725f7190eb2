//! TLS ClientHello and ServerHello parsing, and the JA3, JA3S and JA4
//! fingerprints computed from them.
//!
//! Owns: [`parse_client_hello`] and [`parse_server_hello`], which read the
//! body of one handshake message (after its 4-byte header) into
//! [`ClientHello`] / [`ServerHello`], and the fingerprints
//! ([`ClientHello::ja3_string`], [`ClientHello::ja3`], [`ClientHello::ja4`],
//! [`ServerHello::ja3s_string`], [`ServerHello::ja3s`]). Shared by the TLS
//! dissector (TLS over TCP) and the QUIC dissector (the ClientHello carried
//! in CRYPTO frames). DTLS hellos are read by the `_dtls` variants (one more
//! field, the cookie).
//!
//! Does not: read records or reassemble handshake messages (the dissector
//! does), nor compute any JA4+ variant other than the JA4 client
//! fingerprint.
//!
//! Parsing is in `hello/parse.rs`, the fingerprints and their rules in
//! `hello/fingerprint.rs`; this file holds the parsed values and what
//! both read from them (versions, extension numbers, GREASE).

mod fingerprint;
mod parse;

pub use fingerprint::md5_hex;
pub use parse::{
    parse_client_hello, parse_client_hello_dtls, parse_server_hello, parse_server_hello_dtls,
    parse_sslv2_client_hello,
};

/// Extension type: server_name (RFC 6066).
pub const EXT_SERVER_NAME: u16 = 0x0000;
/// Extension type: supported_groups (RFC 8422, was elliptic_curves).
pub const EXT_SUPPORTED_GROUPS: u16 = 0x000a;
/// Extension type: ec_point_formats (RFC 8422).
pub const EXT_EC_POINT_FORMATS: u16 = 0x000b;
/// Extension type: signature_algorithms (RFC 8446).
pub const EXT_SIGNATURE_ALGORITHMS: u16 = 0x000d;
/// Extension type: application_layer_protocol_negotiation (RFC 7301).
pub const EXT_ALPN: u16 = 0x0010;
/// Extension type: session_ticket (RFC 5077).
pub const EXT_SESSION_TICKET: u16 = 0x0023;
/// Extension type: pre_shared_key (RFC 8446).
pub const EXT_PRE_SHARED_KEY: u16 = 0x0029;
/// Extension type: supported_versions (RFC 8446).
pub const EXT_SUPPORTED_VERSIONS: u16 = 0x002b;
/// Extension type: encrypted_client_hello (draft-ietf-tls-esni).
pub const EXT_ECH: u16 = 0xfe0d;

/// The `random` of a ServerHello that is a HelloRetryRequest (RFC 8446
/// 4.1.3: SHA-256 of "HelloRetryRequest").
pub const HRR_RANDOM: [u8; 32] = [
    0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,
    0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
];

/// True for the GREASE values of RFC 8701 (`0x0a0a`, `0x1a1a`, ...,
/// `0xfafa`).
pub fn is_grease(v: u16) -> bool {
    (v & 0x0f0f) == 0x0a0a && (v >> 8) == (v & 0xff)
}

/// One extension of a hello: its type and its raw data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extension {
    /// Extension type.
    pub typ: u16,
    /// Extension data (without the type and length).
    pub data: Vec<u8>,
}

/// A parsed ClientHello.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClientHello {
    /// `legacy_version` (`client_version` before TLS 1.3).
    pub legacy_version: u16,
    /// Legacy session id.
    pub session_id: Vec<u8>,
    /// Offered cipher suites, in order, GREASE included.
    pub cipher_suites: Vec<u16>,
    /// Offered compression methods.
    pub compression_methods: Vec<u8>,
    /// Extensions in order, GREASE included.
    pub extensions: Vec<Extension>,
    /// supported_versions, in order, GREASE included (empty without the
    /// extension).
    pub supported_versions: Vec<u16>,
    /// The first host_name of server_name.
    pub sni: Option<String>,
    /// ALPN protocol names offered, in order (raw bytes).
    pub alpn: Vec<Vec<u8>>,
    /// supported_groups, in order, GREASE included.
    pub supported_groups: Vec<u16>,
    /// ec_point_formats, in order.
    pub ec_point_formats: Vec<u8>,
    /// signature_algorithms, in order, GREASE included.
    pub signature_algorithms: Vec<u16>,
    /// An encrypted_client_hello extension is present.
    pub ech: bool,
    /// A pre_shared_key extension is present (TLS 1.3 resumption attempt).
    pub psk: bool,
    /// A session_ticket extension is present.
    pub session_ticket: bool,
    /// The session_ticket extension carries a ticket (TLS 1.2 resumption
    /// attempt).
    pub session_ticket_nonempty: bool,
    /// The hello was a DTLS one (parsed by [`parse_client_hello_dtls`]).
    pub dtls: bool,
    /// The hello was in the SSLv2 format (parsed by
    /// [`parse_sslv2_client_hello`]): no extensions, no fingerprints.
    pub sslv2: bool,
}

/// A parsed ServerHello (or HelloRetryRequest).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServerHello {
    /// `legacy_version` (`server_version` before TLS 1.3).
    pub legacy_version: u16,
    /// Legacy session id (echo).
    pub session_id: Vec<u8>,
    /// The selected cipher suite.
    pub cipher_suite: u16,
    /// The selected compression method.
    pub compression_method: u8,
    /// Extensions in order.
    pub extensions: Vec<Extension>,
    /// The version selected by supported_versions, if present.
    pub selected_version: Option<u16>,
    /// The selected ALPN protocol (raw bytes).
    pub alpn: Option<Vec<u8>>,
    /// This is a HelloRetryRequest (TLS 1.3).
    pub hello_retry_request: bool,
    /// A pre_shared_key extension is present (the server accepted a PSK).
    pub psk: bool,
    /// A session_ticket extension is present (the server will send a new
    /// ticket).
    pub session_ticket: bool,
    /// An encrypted_client_hello extension is present (retry configs).
    pub ech: bool,
    /// The hello was a DTLS one.
    pub dtls: bool,
}

impl ClientHello {
    /// The ALPN protocols offered, as text (invalid UTF-8 replaced).
    pub fn alpn_strings(&self) -> Vec<String> {
        self.alpn
            .iter()
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect()
    }

    /// The highest version offered: the highest non-GREASE value of
    /// supported_versions if there is one, else the legacy version.
    pub fn max_version(&self) -> u16 {
        let best = self
            .supported_versions
            .iter()
            .copied()
            .filter(|v| !is_grease(*v))
            .max_by_key(|v| version_rank(*v));
        best.unwrap_or(self.legacy_version)
    }
}

/// Orders versions from oldest to newest (DTLS numbers count down).
fn version_rank(v: u16) -> u32 {
    match v {
        0xfeff => 0x0302,
        0xfefd => 0x0303,
        0xfefc => 0x0304,
        other => u32::from(other),
    }
}

impl ServerHello {
    /// The negotiated version: supported_versions' if present, else the
    /// legacy version.
    pub fn version(&self) -> u16 {
        self.selected_version.unwrap_or(self.legacy_version)
    }

    /// The selected ALPN protocol as text.
    pub fn alpn_string(&self) -> Option<String> {
        self.alpn
            .as_ref()
            .map(|a| String::from_utf8_lossy(a).into_owned())
    }
}

/// The name of a protocol version as Zeek writes it (`TLSv12`, `TLSv13`,
/// `SSLv3`, `DTLSv12`, ...), or `unknown-N` (decimal).
pub fn version_name(v: u16) -> String {
    match v {
        0x0002 => "SSLv2".to_string(),
        0x0300 => "SSLv3".to_string(),
        0x0301 => "TLSv10".to_string(),
        0x0302 => "TLSv11".to_string(),
        0x0303 => "TLSv12".to_string(),
        0x0304 => "TLSv13".to_string(),
        0xfeff => "DTLSv10".to_string(),
        0xfefd => "DTLSv12".to_string(),
        0xfefc => "DTLSv13".to_string(),
        0x7f00..=0x7fff => format!("TLSv13-draft{}", v & 0xff),
        other => format!("unknown-{other}"),
    }
}

#[cfg(test)]
mod tests;
