//! The JA3, JA3S and JA4 fingerprints of parsed hellos.
//!
//! Owns: the fingerprint strings and hashes of [`ClientHello`] (JA3, JA4
//! and its raw form) and [`ServerHello`] (JA3S), and the MD5 helper the
//! other fingerprints share. Input: a parsed hello. Output: strings.
//!
//! Does not: parse hellos (`parse.rs`), nor compute any JA4+ variant
//! other than the JA4 client fingerprint.
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

use super::{ClientHello, EXT_ALPN, EXT_SERVER_NAME, ServerHello, is_grease};
use md5::{Digest as _, Md5};
use sha2::Sha256;
use std::fmt::Write as _;

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

impl ServerHello {
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
