//! X.509 certificates of a TLS Certificate message, summarised as
//! [`nucleus_proto::Certificate`].
//!
//! Owns: reading the certificate list of a Certificate handshake message
//! (TLS 1.2 and older: a 3-byte list length, then 3-byte-length-prefixed
//! DER certificates) and turning each certificate into its summary:
//! subject and issuer as RFC 4514 strings in the form Zeek's x509.log
//! shows (OpenSSL's `XN_FLAG_RFC2253`: most specific RDN first, `,`
//! between RDNs, `+` within one, short attribute names, RFC 4514 escaping,
//! bytes above 0x7e escaped as `\XX`), DNS and IP SANs, the serial as
//! upper-case hex of its bytes (as OpenSSL prints it), validity as RFC 3339
//! UTC, key type and size, and the SHA-256 of the DER.
//!
//! Does not: validate chains, signatures or names, or keep the DER.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};

use nucleus_proto::Certificate;
use sha2::{Digest as _, Sha256};
use x509_parser::der_parser::asn1_rs::Tag;
use x509_parser::prelude::{FromDer as _, GeneralName, X509Certificate, X509Name};
use x509_parser::public_key::PublicKey;

/// Reads the certificate list of a Certificate message body (TLS 1.2 and
/// older). Certificates that do not parse are summarised by their SHA-256
/// alone. Returns `None` if the list framing is malformed.
pub fn parse_certificate_message(body: &[u8]) -> Option<Vec<Certificate>> {
    let len = u24(body.get(..3)?)?;
    let list = body.get(3..3usize.checked_add(len)?)?;
    let mut out = Vec::new();
    let mut rest = list;
    while !rest.is_empty() {
        let n = u24(rest.get(..3)?)?;
        let der = rest.get(3..3usize.checked_add(n)?)?;
        out.push(summarise(der));
        rest = rest.get(3 + n..)?;
    }
    Some(out)
}

fn u24(b: &[u8]) -> Option<usize> {
    let [a, b, c] = <[u8; 3]>::try_from(b).ok()?;
    Some(usize::from(a) << 16 | usize::from(b) << 8 | usize::from(c))
}

/// Summarises one DER certificate.
pub fn summarise(der: &[u8]) -> Certificate {
    let mut c = Certificate {
        sha256: hex_lower(&Sha256::digest(der)),
        ..Certificate::default()
    };
    let Ok((_, x)) = X509Certificate::from_der(der) else {
        return c;
    };
    c.subject = rfc4514(x.subject());
    c.issuer = rfc4514(x.issuer());
    c.serial = serial_hex(x.raw_serial());
    c.not_before = rfc3339(x.validity().not_before.timestamp());
    c.not_after = rfc3339(x.validity().not_after.timestamp());
    if let Ok(Some(san)) = x.subject_alternative_name() {
        for gn in &san.value.general_names {
            match gn {
                GeneralName::DNSName(d) => c.san_dns.push((*d).to_string()),
                GeneralName::IPAddress(b) => {
                    if let Some(ip) = ip_string(b) {
                        c.san_ip.push(ip);
                    }
                }
                _ => {}
            }
        }
    }
    let spki = x.public_key();
    let alg = spki.algorithm.algorithm.to_id_string();
    let (typ, bits) = match alg.as_str() {
        "1.2.840.113549.1.1.1" | "1.2.840.113549.1.1.10" => {
            let bits = match spki.parsed() {
                Ok(PublicKey::RSA(rsa)) => int_bits(rsa.modulus),
                _ => 0,
            };
            ("rsa", bits)
        }
        "1.2.840.10045.2.1" => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|o| o.to_id_string());
            let bits = curve.as_deref().and_then(curve_bits).unwrap_or_else(|| {
                spki.parsed()
                    .map(|k| u32::try_from(k.key_size()).unwrap_or(0))
                    .unwrap_or(0)
            });
            ("ecdsa", bits)
        }
        "1.2.840.10040.4.1" => {
            // DSA: the size of p, the first INTEGER of the parameters.
            let bits = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| dsa_p_bits(p.data))
                .unwrap_or(0);
            ("dsa", bits)
        }
        "1.3.101.112" => ("ed25519", 256),
        "1.3.101.113" => ("ed448", 456),
        other => {
            c.key_type = other.to_string();
            return c;
        }
    };
    c.key_type = typ.to_string();
    c.key_bits = bits;
    c
}

fn curve_bits(oid: &str) -> Option<u32> {
    Some(match oid {
        "1.2.840.10045.3.1.7" | "1.3.132.0.10" | "1.3.36.3.3.2.8.1.1.7" => 256,
        "1.3.132.0.34" | "1.3.36.3.3.2.8.1.1.11" => 384,
        "1.3.132.0.35" => 521,
        "1.3.132.0.33" => 224,
        "1.2.840.10045.3.1.1" => 192,
        "1.3.36.3.3.2.8.1.1.13" => 512,
        _ => return None,
    })
}

/// Bits of a big-endian unsigned integer (leading zeros ignored).
fn int_bits(b: &[u8]) -> u32 {
    let b = match b.iter().position(|x| *x != 0) {
        Some(i) => b.get(i..).unwrap_or_default(),
        None => return 0,
    };
    let Some(first) = b.first() else { return 0 };
    let len = u32::try_from(b.len()).unwrap_or(u32::MAX / 16);
    len.saturating_mul(8).saturating_sub(first.leading_zeros())
}

/// The bit size of p in DSA parameters (a SEQUENCE content of three
/// INTEGERs): reads the first INTEGER's TLV by hand.
fn dsa_p_bits(seq_content: &[u8]) -> Option<u32> {
    let (&tag, rest) = seq_content.split_first()?;
    if tag != 0x02 {
        return None;
    }
    let (&l0, rest) = rest.split_first()?;
    let (len, rest) = if l0 < 0x80 {
        (usize::from(l0), rest)
    } else {
        let n = usize::from(l0 & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let lb = rest.get(..n)?;
        let len = lb.iter().fold(0usize, |a, b| a << 8 | usize::from(*b));
        (len, rest.get(n..)?)
    };
    Some(int_bits(rest.get(..len)?))
}

/// The serial as OpenSSL prints it: upper-case hex of the integer's bytes,
/// without the sign-padding zero byte.
fn serial_hex(raw: &[u8]) -> String {
    let mut b = raw;
    while b.len() > 1 && b.first() == Some(&0) {
        b = b.get(1..).unwrap_or_default();
    }
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        let _ = write!(s, "{x:02X}");
    }
    s
}

fn hex_lower(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        let _ = write!(s, "{x:02x}");
    }
    s
}

fn ip_string(b: &[u8]) -> Option<String> {
    if let Ok(a) = <[u8; 4]>::try_from(b) {
        return Some(Ipv4Addr::from(a).to_string());
    }
    if let Ok(a) = <[u8; 16]>::try_from(b) {
        return Some(Ipv6Addr::from(a).to_string());
    }
    None
}

/// Seconds since the epoch as RFC 3339 UTC (`1970-01-01T00:00:00Z`).
pub fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let tod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        tod / 3600,
        tod % 3600 / 60,
        tod % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// OpenSSL's short name of a naming attribute, if it has one.
fn short_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.4" => "SN",
        "2.5.4.5" => "serialNumber",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "street",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.12" => "title",
        "2.5.4.13" => "description",
        "2.5.4.15" => "businessCategory",
        "2.5.4.17" => "postalCode",
        "2.5.4.41" => "name",
        "2.5.4.42" => "GN",
        "2.5.4.43" => "initials",
        "2.5.4.44" => "generationQualifier",
        "2.5.4.46" => "dnQualifier",
        "2.5.4.65" => "pseudonym",
        "2.5.4.97" => "organizationIdentifier",
        "0.9.2342.19200300.100.1.1" => "UID",
        "0.9.2342.19200300.100.1.25" => "DC",
        "1.2.840.113549.1.9.1" => "emailAddress",
        "1.2.840.113549.1.9.2" => "unstructuredName",
        "1.3.6.1.4.1.311.60.2.1.1" => "jurisdictionL",
        "1.3.6.1.4.1.311.60.2.1.2" => "jurisdictionST",
        "1.3.6.1.4.1.311.60.2.1.3" => "jurisdictionC",
        _ => return None,
    })
}

/// A distinguished name as OpenSSL's `X509_NAME_print_ex(XN_FLAG_RFC2253)`
/// writes it (the form of Zeek's x509.log).
pub fn rfc4514(name: &X509Name<'_>) -> String {
    let mut out = String::new();
    let rdns: Vec<_> = name.iter_rdn().collect();
    for (i, rdn) in rdns.iter().rev().enumerate() {
        if i > 0 {
            out.push(',');
        }
        for (j, atv) in rdn.iter().enumerate() {
            if j > 0 {
                out.push('+');
            }
            let oid = atv.attr_type().to_id_string();
            match short_name(&oid) {
                Some(sn) => out.push_str(sn),
                None => out.push_str(&oid),
            }
            out.push('=');
            let v = atv.attr_value();
            match decode_string(v.tag(), v.data) {
                Some(chars) => escape_into(&mut out, &chars),
                None => {
                    // Not a character string: `#` and the hex of its DER.
                    out.push('#');
                    let mut der = Vec::new();
                    der.push(u8::try_from(v.tag().0).unwrap_or(0));
                    push_der_len(&mut der, v.data.len());
                    der.extend_from_slice(v.data);
                    out.push_str(&hex_upper(&der));
                }
            }
        }
    }
    out
}

fn hex_upper(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        let _ = write!(s, "{x:02X}");
    }
    s
}

fn push_der_len(v: &mut Vec<u8>, n: usize) {
    if n < 0x80 {
        v.push(u8::try_from(n).unwrap_or(0));
    } else {
        let bytes = n.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        let rest = bytes.get(skip..).unwrap_or_default();
        v.push(0x80 | u8::try_from(rest.len()).unwrap_or(0));
        v.extend_from_slice(rest);
    }
}

/// The characters of a string-typed attribute value, or `None` for a
/// value that is not a character string.
fn decode_string(tag: Tag, data: &[u8]) -> Option<Vec<char>> {
    match tag {
        Tag::Utf8String => Some(String::from_utf8_lossy(data).chars().collect()),
        Tag::PrintableString
        | Tag::Ia5String
        | Tag::NumericString
        | Tag::VisibleString
        | Tag::T61String
        | Tag::GeneralString
        | Tag::VideotexString
        | Tag::GraphicString => Some(data.iter().map(|b| char::from(*b)).collect()),
        Tag::BmpString => Some(
            data.chunks(2)
                .map(|c| {
                    let v = c.iter().fold(0u32, |a, b| a << 8 | u32::from(*b));
                    char::from_u32(v).unwrap_or('\u{fffd}')
                })
                .collect(),
        ),
        Tag::UniversalString => Some(
            data.chunks(4)
                .map(|c| {
                    let v = c.iter().fold(0u32, |a, b| a << 8 | u32::from(*b));
                    char::from_u32(v).unwrap_or('\u{fffd}')
                })
                .collect(),
        ),
        _ => None,
    }
}

/// Appends `chars` escaped as OpenSSL's RFC 2253 mode does: special
/// characters get a backslash, a leading `#` or space and a trailing space
/// too; control characters and every UTF-8 byte above 0x7e are written as
/// `\XX`.
fn escape_into(out: &mut String, chars: &[char]) {
    let last = chars.len().saturating_sub(1);
    for (i, ch) in chars.iter().enumerate() {
        let c = *ch;
        if (c as u32) < 0x20 || (c as u32) >= 0x7f {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).as_bytes() {
                let _ = write!(out, "\\{b:02X}");
            }
            continue;
        }
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_and_serial_formats() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1378726355), "2013-09-09T11:32:35Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(serial_hex(&[0x02, 0x3a, 0x69]), "023A69");
        assert_eq!(serial_hex(&[0x00, 0x9f, 0x01]), "9F01");
        assert_eq!(serial_hex(&[0x00]), "00");
        assert_eq!(int_bits(&[0x00, 0x80, 0, 0]), 24);
        assert_eq!(int_bits(&[0x01, 0xff]), 9);
    }

    #[test]
    fn escaping() {
        let mut s = String::new();
        escape_into(&mut s, &" a,b+c\u{e9} ".chars().collect::<Vec<_>>());
        assert_eq!(s, "\\ a\\,b\\+c\\C3\\A9\\ ");
    }

    #[test]
    fn garbage_is_summarised_by_hash() {
        let c = summarise(b"not a certificate");
        assert_eq!(c.sha256.len(), 64);
        assert!(c.subject.is_empty());
        assert!(parse_certificate_message(&[0, 0, 5, 0, 0, 9]).is_none());
        assert_eq!(parse_certificate_message(&[0, 0, 0]), Some(vec![]));
    }
}
