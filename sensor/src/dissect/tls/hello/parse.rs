//! Reading ClientHello and ServerHello bodies (TLS, DTLS, and the SSLv2
//! ClientHello format) into [`ClientHello`] and [`ServerHello`].
//!
//! Owns: a cursor that never panics, the fixed fields of each hello, the
//! extensions block (kept whole, in order) and the extensions whose
//! content the sensor reports (SNI, ALPN, groups, point formats,
//! signature algorithms, supported_versions, and the presence of
//! session_ticket, pre_shared_key and encrypted_client_hello). Input: one
//! handshake message body, after its 4-byte header (for SSLv2, from the
//! message type). Output: the parsed hello, or `None` when its fixed part
//! is truncated or inconsistent.
//!
//! Does not: compute fingerprints (`fingerprint.rs`) or read records and
//! handshake headers (the dissectors do).

use super::{
    ClientHello, EXT_ALPN, EXT_EC_POINT_FORMATS, EXT_ECH, EXT_PRE_SHARED_KEY, EXT_SERVER_NAME,
    EXT_SESSION_TICKET, EXT_SIGNATURE_ALGORITHMS, EXT_SUPPORTED_GROUPS, EXT_SUPPORTED_VERSIONS,
    Extension, HRR_RANDOM, ServerHello,
};

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

/// Parses an SSLv2-format ClientHello (RFC 6101 appendix E.2, as old
/// clients send to reach SSLv3/TLS servers): `msg` starts at the message
/// type (1). Cipher specs whose first byte is 0 are the TLS cipher suites.
pub fn parse_sslv2_client_hello(msg: &[u8]) -> Option<ClientHello> {
    let mut r = Reader::new(msg);
    if r.u8()? != 1 {
        return None;
    }
    let legacy_version = r.u16()?;
    let specs_len = r.u16()?;
    let sid_len = r.u16()?;
    let challenge_len = r.u16()?;
    let specs = r.take(usize::from(specs_len))?;
    if specs.len() % 3 != 0 {
        return None;
    }
    let session_id = r.take(usize::from(sid_len))?;
    r.take(usize::from(challenge_len))?;
    let cipher_suites = specs
        .chunks_exact(3)
        .filter_map(|c| match c {
            [0, a, b] => Some(u16::from_be_bytes([*a, *b])),
            _ => None,
        })
        .collect();
    Some(ClientHello {
        legacy_version,
        session_id: session_id.to_vec(),
        cipher_suites,
        sslv2: true,
        ..ClientHello::default()
    })
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
    // TLS 1.3 drafts before 22 had neither session id nor compression.
    let early_draft = (0x7f00..0x7f16).contains(&legacy_version);
    let session_id = if early_draft { &[][..] } else { r.vec8()? };
    if session_id.len() > 32 {
        return None;
    }
    let cipher_suite = r.u16()?;
    let compression_method = if early_draft { 0 } else { r.u8()? };
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
