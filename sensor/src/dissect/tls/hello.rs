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
//! Fingerprint rules:
//! - JA3 (Salesforce): `version,ciphers,extensions,groups,point_formats`,
//!   decimal values joined by `-`, GREASE values (RFC 8701, `0x?a?a`)
//!   removed from ciphers, extensions and groups; `version` is the
//!   ClientHello's legacy version. JA3S: `version,cipher,extensions` of
//!   the ServerHello. The hash is the MD5 of the string, lower-case hex.
//! - JA4 (FoxIO's technical details of JA4): `a_b_c` where `a` is the
//!   transport (`t` TLS over TCP, `q` QUIC, `d` DTLS), the version (highest
//!   non-GREASE value of supported_versions, else the legacy version), `d`
//!   if the SNI extension is present else `i`, the counts of ciphers and
//!   extensions without GREASE (two digits, at most 99), and the first and
//!   last characters of the first ALPN value (`00` without one; the first
//!   and last hex digits of it when either end byte is not alphanumeric);
//!   `b` is the first 12 hex digits of the SHA-256 of the sorted cipher
//!   list (4-digit lower-case hex, comma separated); `c` the same of the
//!   sorted extension list without SNI (0x0000) and ALPN (0x0010), followed
//!   by `_` and the signature algorithms in their order when there are
//!   any. An empty list hashes to `000000000000`.

use md5::{Digest as _, Md5};
use sha2::Sha256;
use std::fmt::Write as _;

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

/// A cursor over a byte slice that never panics.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.buf.len() {
            return None;
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).and_then(|b| b.first().copied())
    }

    fn u16(&mut self) -> Option<u16> {
        let b = self.take(2)?;
        Some(u16::from_be_bytes([*b.first()?, *b.get(1)?]))
    }

    fn vec8(&mut self) -> Option<&'a [u8]> {
        let n = self.u8()?;
        self.take(usize::from(n))
    }

    fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }
}

fn u16_list(data: &[u8]) -> Vec<u16> {
    data.chunks_exact(2)
        .filter_map(|c| Some(u16::from_be_bytes([*c.first()?, *c.get(1)?])))
        .collect()
}

/// Reads an extensions block (the 2-byte length and the extensions). A
/// missing block (nothing left) is no extensions. A block whose length runs
/// past the message keeps the extensions that are complete.
fn parse_extensions(r: &mut Reader<'_>) -> Vec<Extension> {
    let mut out = Vec::new();
    if r.is_empty() {
        return out;
    }
    let Some(len) = r.u16() else {
        return out;
    };
    let avail = r.buf.len().min(usize::from(len));
    let mut ext = Reader::new(r.buf.get(..avail).unwrap_or_default());
    while let (Some(typ), Some(data)) = (ext.u16(), ext.vec16()) {
        out.push(Extension {
            typ,
            data: data.to_vec(),
        });
    }
    out
}

fn parse_sni(data: &[u8]) -> Option<String> {
    let mut r = Reader::new(data);
    let mut list = Reader::new(r.vec16()?);
    while !list.is_empty() {
        let typ = list.u8()?;
        let name = list.vec16()?;
        if typ == 0 {
            return Some(String::from_utf8_lossy(name).into_owned());
        }
    }
    None
}

fn parse_alpn_list(data: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut r = Reader::new(data);
    let Some(list) = r.vec16() else {
        return out;
    };
    let mut list = Reader::new(list);
    while let Some(name) = list.vec8() {
        out.push(name.to_vec());
    }
    out
}

/// Parses a ClientHello handshake body (the bytes after the 4-byte
/// handshake header). `None` if the fixed part (version, random, session
/// id, cipher suites, compression methods) is truncated or inconsistent;
/// a truncated extensions block keeps its complete extensions.
pub fn parse_client_hello(body: &[u8]) -> Option<ClientHello> {
    parse_client_hello_inner(body, false)
}

/// Parses a DTLS ClientHello body (as [`parse_client_hello`], with the
/// cookie after the session id).
pub fn parse_client_hello_dtls(body: &[u8]) -> Option<ClientHello> {
    parse_client_hello_inner(body, true)
}

fn parse_client_hello_inner(body: &[u8], dtls: bool) -> Option<ClientHello> {
    let mut r = Reader::new(body);
    let legacy_version = r.u16()?;
    r.take(32)?;
    let session_id = r.vec8()?;
    if session_id.len() > 32 {
        return None;
    }
    if dtls {
        r.vec8()?;
    }
    let ciphers = r.vec16()?;
    if ciphers.len() % 2 != 0 {
        return None;
    }
    let compression = r.vec8()?;
    let extensions = parse_extensions(&mut r);
    let mut ch = ClientHello {
        legacy_version,
        session_id: session_id.to_vec(),
        cipher_suites: u16_list(ciphers),
        compression_methods: compression.to_vec(),
        dtls,
        ..ClientHello::default()
    };
    for ext in &extensions {
        let d = ext.data.as_slice();
        match ext.typ {
            EXT_SERVER_NAME if ch.sni.is_none() => ch.sni = parse_sni(d),
            EXT_SUPPORTED_GROUPS => {
                ch.supported_groups = Reader::new(d).vec16().map(u16_list).unwrap_or_default();
            }
            EXT_EC_POINT_FORMATS => {
                ch.ec_point_formats = Reader::new(d)
                    .vec8()
                    .map(<[u8]>::to_vec)
                    .unwrap_or_default();
            }
            EXT_SIGNATURE_ALGORITHMS => {
                ch.signature_algorithms = Reader::new(d).vec16().map(u16_list).unwrap_or_default();
            }
            EXT_ALPN => ch.alpn = parse_alpn_list(d),
            EXT_SESSION_TICKET => {
                ch.session_ticket = true;
                ch.session_ticket_nonempty = !d.is_empty();
            }
            EXT_PRE_SHARED_KEY => ch.psk = true,
            EXT_SUPPORTED_VERSIONS => {
                ch.supported_versions = Reader::new(d).vec8().map(u16_list).unwrap_or_default();
            }
            EXT_ECH => ch.ech = true,
            _ => {}
        }
    }
    ch.extensions = extensions;
    Some(ch)
}

/// Parses a ServerHello handshake body (after the 4-byte handshake
/// header). `None` if the fixed part is truncated.
pub fn parse_server_hello(body: &[u8]) -> Option<ServerHello> {
    parse_server_hello_inner(body, false)
}

/// Parses a DTLS ServerHello body.
pub fn parse_server_hello_dtls(body: &[u8]) -> Option<ServerHello> {
    parse_server_hello_inner(body, true)
}

fn parse_server_hello_inner(body: &[u8], dtls: bool) -> Option<ServerHello> {
    let mut r = Reader::new(body);
    let legacy_version = r.u16()?;
    let random = r.take(32)?;
    let session_id = r.vec8()?;
    if session_id.len() > 32 {
        return None;
    }
    let cipher_suite = r.u16()?;
    let compression_method = r.u8()?;
    let extensions = parse_extensions(&mut r);
    let mut sh = ServerHello {
        legacy_version,
        session_id: session_id.to_vec(),
        cipher_suite,
        compression_method,
        hello_retry_request: random == HRR_RANDOM,
        dtls,
        ..ServerHello::default()
    };
    for ext in &extensions {
        let d = ext.data.as_slice();
        match ext.typ {
            EXT_SUPPORTED_VERSIONS => {
                sh.selected_version = Reader::new(d).u16();
            }
            EXT_ALPN => sh.alpn = parse_alpn_list(d).into_iter().next(),
            EXT_PRE_SHARED_KEY => sh.psk = true,
            EXT_SESSION_TICKET => sh.session_ticket = true,
            EXT_ECH => sh.ech = true,
            _ => {}
        }
    }
    sh.extensions = extensions;
    Some(sh)
}

fn join_dec<T: std::fmt::Display>(items: impl Iterator<Item = T>) -> String {
    let mut s = String::new();
    for (i, v) in items.enumerate() {
        if i > 0 {
            s.push('-');
        }
        let _ = write!(s, "{v}");
    }
    s
}

fn join_hex4(items: impl Iterator<Item = u16>) -> String {
    let mut s = String::new();
    for (i, v) in items.enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(s, "{v:04x}");
    }
    s
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// MD5 of `s`, lower-case hex (the JA3/JA3S hash).
pub fn md5_hex(s: &str) -> String {
    hex(&Md5::digest(s.as_bytes()))
}

/// The first 12 hex digits of the SHA-256 of `s`, or `000000000000` when
/// `s` is empty (JA4's `b` and `c` parts).
fn ja4_hash(s: &str) -> String {
    if s.is_empty() {
        return "000000000000".to_string();
    }
    let mut h = hex(&Sha256::digest(s.as_bytes()));
    h.truncate(12);
    h
}

/// JA4's two-character version code.
fn ja4_version(v: u16) -> &'static str {
    match v {
        0x0304 => "13",
        0x0303 => "12",
        0x0302 => "11",
        0x0301 => "10",
        0x0300 => "s3",
        0x0002 => "s2",
        0xfeff => "d1",
        0xfefd => "d2",
        0xfefc => "d3",
        _ => "00",
    }
}

/// JA4's two ALPN characters for the first ALPN value.
fn ja4_alpn(first: Option<&[u8]>) -> String {
    let Some(v) = first else {
        return "00".to_string();
    };
    let (Some(&a), Some(&z)) = (v.first(), v.last()) else {
        return "00".to_string();
    };
    if a.is_ascii_alphanumeric() && z.is_ascii_alphanumeric() {
        let mut s = String::with_capacity(2);
        s.push(char::from(a));
        s.push(char::from(z));
        s
    } else {
        let h = hex(v);
        let mut s = String::with_capacity(2);
        s.extend(h.chars().next());
        s.extend(h.chars().last());
        s
    }
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

    /// The JA3 string (`version,ciphers,extensions,groups,point_formats`).
    pub fn ja3_string(&self) -> String {
        format!(
            "{},{},{},{},{}",
            self.legacy_version,
            join_dec(self.cipher_suites.iter().filter(|v| !is_grease(**v))),
            join_dec(
                self.extensions
                    .iter()
                    .map(|e| e.typ)
                    .filter(|v| !is_grease(*v))
            ),
            join_dec(self.supported_groups.iter().filter(|v| !is_grease(**v))),
            join_dec(self.ec_point_formats.iter()),
        )
    }

    /// JA3: the MD5 of [`Self::ja3_string`], lower-case hex.
    pub fn ja3(&self) -> String {
        md5_hex(&self.ja3_string())
    }

    /// The JA4 client fingerprint; `quic` selects the QUIC form (`q`).
    /// DTLS hellos use `d`.
    pub fn ja4(&self, quic: bool) -> String {
        let (a, b, c) = self.ja4_parts(quic);
        format!("{a}_{}_{}", ja4_hash(&b), ja4_hash(&c))
    }

    /// The raw (unhashed, sorted) JA4, as JA4's `ja4_r`: useful to explain
    /// a difference.
    pub fn ja4_raw(&self, quic: bool) -> String {
        let (a, b, c) = self.ja4_parts(quic);
        format!("{a}_{b}_{c}")
    }

    fn ja4_parts(&self, quic: bool) -> (String, String, String) {
        let proto = if quic {
            'q'
        } else if self.dtls {
            'd'
        } else {
            't'
        };
        let mut ciphers: Vec<u16> = self
            .cipher_suites
            .iter()
            .copied()
            .filter(|v| !is_grease(*v))
            .collect();
        let exts: Vec<u16> = self
            .extensions
            .iter()
            .map(|e| e.typ)
            .filter(|v| !is_grease(*v))
            .collect();
        let has_sni = exts.contains(&EXT_SERVER_NAME);
        let a = format!(
            "{proto}{}{}{:02}{:02}{}",
            ja4_version(self.max_version()),
            if has_sni { 'd' } else { 'i' },
            ciphers.len().min(99),
            exts.len().min(99),
            ja4_alpn(self.alpn.first().map(Vec::as_slice)),
        );
        ciphers.sort_unstable();
        let b = join_hex4(ciphers.into_iter());
        let mut sorted: Vec<u16> = exts
            .into_iter()
            .filter(|t| *t != EXT_SERVER_NAME && *t != EXT_ALPN)
            .collect();
        sorted.sort_unstable();
        let mut c = join_hex4(sorted.into_iter());
        let sigs = join_hex4(
            self.signature_algorithms
                .iter()
                .copied()
                .filter(|v| !is_grease(*v)),
        );
        if !c.is_empty() && !sigs.is_empty() {
            c.push('_');
            c.push_str(&sigs);
        }
        (a, b, c)
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

    /// The JA3S string (`version,cipher,extensions`).
    pub fn ja3s_string(&self) -> String {
        format!(
            "{},{},{}",
            self.legacy_version,
            self.cipher_suite,
            join_dec(
                self.extensions
                    .iter()
                    .map(|e| e.typ)
                    .filter(|v| !is_grease(*v))
            ),
        )
    }

    /// JA3S: the MD5 of [`Self::ja3s_string`], lower-case hex.
    pub fn ja3s(&self) -> String {
        md5_hex(&self.ja3s_string())
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
