//! SvcParams of SVCB and HTTPS records in presentation format (RFC 9460
//! §7): `alpn=h2,h3`, `port=443`, `ipv4hint=`, `ipv6hint=`, `ech=<base64>`,
//! `mandatory=`, `no-default-alpn`, `keyN=<escaped bytes>`.
//!
//! Owns: one key and its value as text, and the checks of each known key's
//! value (a value that does not fit is a [`Malformed`] SvcParam). Input: a
//! key number and its value bytes. Output: text appended to a `String`.
//!
//! Does not: read the SvcPriority, the target or the key/length framing
//! (`rdata.rs`).

use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};

use super::encode::{push_base64, push_quoted};
use crate::dissect::dns::message::{Malformed, push_decimal3};

/// One SvcParam of SVCB/HTTPS (RFC 9460 §7).
pub(super) fn push_svc_param(out: &mut String, key: u16, v: &[u8]) -> Result<(), Malformed> {
    let bad = Malformed("rdata_bad_svcparam");
    match key {
        0 => {
            out.push_str("mandatory=");
            if v.is_empty() || !v.len().is_multiple_of(2) {
                return Err(bad);
            }
            let keys: Vec<String> = v
                .chunks(2)
                .map(|k| svc_key_name(u16::from_be_bytes([k[0], k[1]])))
                .collect();
            out.push_str(&keys.join(","));
        }
        1 => {
            out.push_str("alpn=");
            let mut rest = v;
            let mut first = true;
            if rest.is_empty() {
                return Err(bad);
            }
            while let Some((&len, tail)) = rest.split_first() {
                let id = tail.get(..usize::from(len)).ok_or(bad)?;
                if id.is_empty() {
                    return Err(bad);
                }
                if !first {
                    out.push(',');
                }
                first = false;
                for &b in id {
                    match b {
                        b',' | b'\\' => {
                            out.push('\\');
                            out.push(char::from(b));
                        }
                        0x21..=0x7e if b != b'"' => out.push(char::from(b)),
                        _ => {
                            out.push('\\');
                            push_decimal3(out, b);
                        }
                    }
                }
                rest = tail.get(usize::from(len)..).unwrap_or_default();
            }
        }
        2 => {
            if !v.is_empty() {
                return Err(bad);
            }
            out.push_str("no-default-alpn");
        }
        3 => {
            let port: [u8; 2] = v.try_into().map_err(|_| bad)?;
            write!(out, "port={}", u16::from_be_bytes(port)).ok();
        }
        4 => {
            if v.is_empty() || !v.len().is_multiple_of(4) {
                return Err(bad);
            }
            let addrs: Vec<String> = v
                .chunks(4)
                .map(|a| Ipv4Addr::new(a[0], a[1], a[2], a[3]).to_string())
                .collect();
            write!(out, "ipv4hint={}", addrs.join(",")).ok();
        }
        5 => {
            out.push_str("ech=");
            push_base64(out, v);
        }
        6 => {
            if v.is_empty() || !v.len().is_multiple_of(16) {
                return Err(bad);
            }
            let addrs: Vec<String> = v
                .chunks(16)
                .filter_map(|a| <[u8; 16]>::try_from(a).ok())
                .map(|a| Ipv6Addr::from(a).to_string())
                .collect();
            write!(out, "ipv6hint={}", addrs.join(",")).ok();
        }
        _ => {
            write!(out, "key{key}").ok();
            if !v.is_empty() {
                out.push('=');
                push_quoted(out, v);
            }
        }
    }
    Ok(())
}

fn svc_key_name(key: u16) -> String {
    match key {
        0 => "mandatory".into(),
        1 => "alpn".into(),
        2 => "no-default-alpn".into(),
        3 => "port".into(),
        4 => "ipv4hint".into(),
        5 => "ech".into(),
        6 => "ipv6hint".into(),
        k => format!("key{k}"),
    }
}
