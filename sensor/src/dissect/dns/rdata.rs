//! Resource record data in presentation format: the `data` of a DNS
//! answer.
//!
//! Owns: turning one record's RDATA into text. Input: the whole message
//! (names in RDATA may be compressed), the record type, and where its RDATA
//! lies. Output: a string, or a [`Malformed`] reason (the caller then shows
//! the data in the generic form). Does not: read the record's fixed part
//! (`message.rs`).
//!
//! Layout: this file reads each type's fields and lays them out; the byte
//! encodings (escaped strings, hex, base64, base32hex) are in
//! `rdata/encode.rs`, the DNSSEC fields (type bitmaps, times, salts) in
//! `rdata/dnssec.rs`, and the SVCB/HTTPS SvcParams in `rdata/svcb.rs`.
//!
//! The format is the zone-file presentation format of each type's RFC
//! (what `dig` prints), with two house rules: names have no trailing dot
//! (the root is `.`), and a type without a specific format, or whose data
//! does not fit its format, is shown in the generic form of RFC 3597
//! (`\# <length> <hex>`). Per type:
//!
//! - A, AAAA: the address (`192.0.2.1`, `2001:db8::1`).
//! - NS, CNAME, PTR, DNAME, MB, MD, MF, MG, MR: the name.
//! - MX: `<preference> <exchange>`; KX, RT, AFSDB likewise.
//! - SOA: `<mname> <rname> <serial> <refresh> <retry> <expire> <minimum>`.
//! - TXT, SPF: each character-string in double quotes, separated by one
//!   space (`"v=spf1 -all"`); `"` and `\` escaped with `\`, bytes outside
//!   printable ASCII as `\DDD`.
//! - HINFO: `"<cpu>" "<os>"`; MINFO, RP: two names.
//! - SRV: `<priority> <weight> <port> <target>`.
//! - NAPTR: `<order> <preference> "<flags>" "<services>" "<regexp>"
//!   <replacement>`.
//! - CAA: `<flags> <tag> "<value>"`.
//! - SSHFP: `<algorithm> <type> <HEX>`; TLSA, SMIMEA: `<usage> <selector>
//!   <matching> <HEX>`.
//! - DS, CDS: `<key tag> <algorithm> <digest type> <HEX>`.
//! - DNSKEY, CDNSKEY: `<flags> <protocol> <algorithm> <base64>`.
//! - RRSIG: `<type covered> <algorithm> <labels> <original ttl>
//!   <expiration> <inception> <key tag> <signer> <base64>`, times as
//!   `YYYYMMDDHHmmSS`.
//! - NSEC: `<next name> <types...>`; NSEC3: `<hash> <flags> <iterations>
//!   <salt hex or -> <next hashed owner, base32hex> <types...>`;
//!   NSEC3PARAM: `<hash> <flags> <iterations> <salt hex or ->`.
//! - SVCB, HTTPS: `<priority> <target> <key=value...>` (RFC 9460:
//!   `alpn=h2,h3`, `port=443`, `ipv4hint=`, `ipv6hint=`, `ech=<base64>`,
//!   `mandatory=`, `no-default-alpn`, `keyN=<escaped bytes>`).
//! - WKS: `<address> <protocol number> <port...>`.
//! - LOC: RFC 1876 (`52 22 23.000 N 4 53 32.000 E -2.00m 0.00m 10000.00m
//!   10.00m`).
//! - URI: `<priority> <weight> "<target>"`.
//! - Everything else (NULL, OPT, TSIG, TKEY, unknown types): `\# <len>
//!   <hex>`, `\# 0` when empty.

mod dnssec;
mod encode;
mod svcb;

use nucleus_proto::{push_ipv4, push_ipv6};
use std::fmt::Write as _;
use std::net::Ipv6Addr;

use super::message::{Malformed, read_name};
use dnssec::{push_salt, push_time, push_type_bitmaps, type_text};
use encode::{push_base32hex, push_base64, push_escaped, push_hex, push_quoted};
use svcb::push_svc_param;

/// The RDATA of one record of type `rtype`, at `start..start + len` of
/// `msg`, in presentation format.
pub fn present(msg: &[u8], rtype: u16, start: usize, len: usize) -> Result<String, Malformed> {
    let end = start + len;
    let rd = msg.get(start..end).ok_or(Malformed("rdata_truncated"))?;
    let mut r = Rd {
        msg,
        pos: start,
        end,
    };
    // Addresses, most answers, get their longest text's room at once (a
    // reserve on an empty string takes the growth path).
    match rtype {
        1 => {
            let b: [u8; 4] = rd.try_into().map_err(|_| Malformed("rdata_bad_length"))?;
            let mut out = String::with_capacity(15);
            push_ipv4(&mut out, b);
            return Ok(out);
        }
        28 => {
            let b: [u8; 16] = rd.try_into().map_err(|_| Malformed("rdata_bad_length"))?;
            let mut out = String::with_capacity(39);
            push_ipv6(&mut out, &Ipv6Addr::from(b));
            return Ok(out);
        }
        _ => {}
    }
    let mut out = String::new();
    match rtype {
        2 | 3 | 4 | 5 | 7 | 8 | 9 | 12 | 39 => {
            out = r.name()?;
        }
        6 => {
            let mname = r.name()?;
            let rname = r.name()?;
            write!(out, "{mname} {rname}").ok();
            for _ in 0..5 {
                write!(out, " {}", r.u32()?).ok();
            }
        }
        15 | 18 | 21 | 36 => {
            let pref = r.u16()?;
            let name = r.name()?;
            write!(out, "{pref} {name}").ok();
        }
        14 | 17 => {
            let a = r.name()?;
            let b = r.name()?;
            write!(out, "{a} {b}").ok();
        }
        16 | 99 => {
            if rd.is_empty() {
                // No character-string at all (RFC 1035 requires one).
                out.push_str("\"\"");
                return Ok(out);
            }
            let mut first = true;
            while r.pos < r.end {
                if !first {
                    out.push(' ');
                }
                first = false;
                let s = r.string()?;
                push_quoted(&mut out, s);
            }
        }
        13 => {
            let cpu = r.string()?;
            let os = r.string()?;
            push_quoted(&mut out, cpu);
            out.push(' ');
            push_quoted(&mut out, os);
        }
        33 => {
            let (prio, weight, port) = (r.u16()?, r.u16()?, r.u16()?);
            let target = r.name()?;
            write!(out, "{prio} {weight} {port} {target}").ok();
        }
        35 => {
            let (order, pref) = (r.u16()?, r.u16()?);
            write!(out, "{order} {pref}").ok();
            for _ in 0..3 {
                out.push(' ');
                let s = r.string()?;
                push_quoted(&mut out, s);
            }
            let replacement = r.name()?;
            write!(out, " {replacement}").ok();
        }
        257 => {
            let flags = r.u8()?;
            let tag_len = usize::from(r.u8()?);
            let tag = r.take(tag_len)?;
            let value = r.rest();
            write!(out, "{flags} ").ok();
            push_escaped(&mut out, tag);
            out.push(' ');
            push_quoted(&mut out, value);
        }
        44 => {
            let (alg, fp) = (r.u8()?, r.u8()?);
            write!(out, "{alg} {fp} ").ok();
            push_hex(&mut out, r.rest());
        }
        52 | 53 => {
            let (usage, selector, matching) = (r.u8()?, r.u8()?, r.u8()?);
            write!(out, "{usage} {selector} {matching} ").ok();
            push_hex(&mut out, r.rest());
        }
        43 | 59 | 32769 => {
            let (tag, alg, digest) = (r.u16()?, r.u8()?, r.u8()?);
            write!(out, "{tag} {alg} {digest} ").ok();
            push_hex(&mut out, r.rest());
        }
        48 | 60 | 25 => {
            let (flags, proto, alg) = (r.u16()?, r.u8()?, r.u8()?);
            write!(out, "{flags} {proto} {alg} ").ok();
            push_base64(&mut out, r.rest());
        }
        46 | 24 => {
            let covered = r.u16()?;
            let (alg, labels) = (r.u8()?, r.u8()?);
            let (orig_ttl, expiration, inception) = (r.u32()?, r.u32()?, r.u32()?);
            let tag = r.u16()?;
            // The signer's name is never compressed (RFC 4034 §3.1.7).
            let signer = r.name()?;
            write!(out, "{} {alg} {labels} {orig_ttl} ", type_text(covered)).ok();
            push_time(&mut out, expiration);
            out.push(' ');
            push_time(&mut out, inception);
            write!(out, " {tag} {signer} ").ok();
            push_base64(&mut out, r.rest());
        }
        47 => {
            let next = r.name()?;
            out.push_str(&next);
            push_type_bitmaps(&mut out, r.rest())?;
        }
        50 => {
            let (hash, flags, iterations) = (r.u8()?, r.u8()?, r.u16()?);
            let salt_len = usize::from(r.u8()?);
            let salt = r.take(salt_len)?;
            let hash_len = usize::from(r.u8()?);
            let next = r.take(hash_len)?;
            write!(out, "{hash} {flags} {iterations} ").ok();
            push_salt(&mut out, salt);
            out.push(' ');
            push_base32hex(&mut out, next);
            push_type_bitmaps(&mut out, r.rest())?;
        }
        51 => {
            let (hash, flags, iterations) = (r.u8()?, r.u8()?, r.u16()?);
            let salt_len = usize::from(r.u8()?);
            let salt = r.take(salt_len)?;
            write!(out, "{hash} {flags} {iterations} ").ok();
            push_salt(&mut out, salt);
        }
        64 | 65 => {
            let prio = r.u16()?;
            let target = r.name()?;
            write!(out, "{prio} {target}").ok();
            while r.pos < r.end {
                let key = r.u16()?;
                let len = usize::from(r.u16()?);
                let value = r.take(len)?;
                out.push(' ');
                push_svc_param(&mut out, key, value)?;
            }
        }
        11 => {
            let addr: [u8; 4] = r
                .take(4)?
                .try_into()
                .map_err(|_| Malformed("rdata_bad_length"))?;
            let proto = r.u8()?;
            push_ipv4(&mut out, addr);
            write!(out, " {proto}").ok();
            for (i, byte) in r.rest().iter().enumerate() {
                for bit in 0..8 {
                    if byte & (0x80 >> bit) != 0 {
                        write!(out, " {}", i * 8 + bit).ok();
                    }
                }
            }
        }
        29 => {
            if rd.len() != 16 || rd.first() != Some(&0) {
                return Err(Malformed("rdata_bad_loc"));
            }
            out = loc(&mut r)?;
        }
        256 => {
            let (prio, weight) = (r.u16()?, r.u16()?);
            write!(out, "{prio} {weight} ").ok();
            push_quoted(&mut out, r.rest());
        }
        _ => return Ok(generic(Some(rd))),
    }
    if r.pos != r.end {
        return Err(Malformed("rdata_bad_length"));
    }
    Ok(out)
}

/// The generic form of RFC 3597: `\# <length> <hex>` (`\# 0` when empty).
pub fn generic(rd: Option<&[u8]>) -> String {
    let rd = rd.unwrap_or_default();
    let mut out = format!("\\# {}", rd.len());
    if !rd.is_empty() {
        out.push(' ');
        push_hex(&mut out, rd);
    }
    out
}

/// A reader over one record's RDATA; reads never go past `end`.
struct Rd<'a> {
    msg: &'a [u8],
    pos: usize,
    end: usize,
}

impl<'a> Rd<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Malformed> {
        if self.pos + n > self.end {
            return Err(Malformed("rdata_truncated"));
        }
        let b = self
            .msg
            .get(self.pos..self.pos + n)
            .ok_or(Malformed("rdata_truncated"))?;
        self.pos += n;
        Ok(b)
    }

    fn rest(&mut self) -> &'a [u8] {
        let b = self.msg.get(self.pos..self.end).unwrap_or_default();
        self.pos = self.end;
        b
    }

    fn u8(&mut self) -> Result<u8, Malformed> {
        Ok(self.take(1)?.first().copied().unwrap_or(0))
    }

    fn u16(&mut self) -> Result<u16, Malformed> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, Malformed> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A `<character-string>`: a length octet and that many bytes.
    fn string(&mut self) -> Result<&'a [u8], Malformed> {
        let len = usize::from(self.u8()?);
        self.take(len)
    }

    /// A domain name starting inside the RDATA (it may point elsewhere).
    fn name(&mut self) -> Result<String, Malformed> {
        if self.pos >= self.end {
            return Err(Malformed("rdata_truncated"));
        }
        let (name, next) = read_name(self.msg, self.pos)?;
        if next > self.end {
            return Err(Malformed("rdata_truncated"));
        }
        self.pos = next;
        Ok(name.text)
    }
}

/// LOC (RFC 1876 §3) of a 16-byte version 0 RDATA.
fn loc(r: &mut Rd<'_>) -> Result<String, Malformed> {
    let _version = r.u8()?;
    let (size, horiz, vert) = (r.u8()?, r.u8()?, r.u8()?);
    let (lat, lon, alt) = (r.u32()?, r.u32()?, r.u32()?);
    let mut out = String::new();
    let angle = |out: &mut String, v: u32, pos: char, neg: char| {
        let (off, hemi) = if v >= 1 << 31 {
            (v - (1 << 31), pos)
        } else {
            ((1u32 << 31) - v, neg)
        };
        let (deg, rest) = (off / 3_600_000, off % 3_600_000);
        let (min, rest) = (rest / 60_000, rest % 60_000);
        write!(out, "{deg} {min} {}.{:03} {hemi}", rest / 1000, rest % 1000).ok();
    };
    angle(&mut out, lat, 'N', 'S');
    out.push(' ');
    angle(&mut out, lon, 'E', 'W');
    // Altitude: centimetres above 100 000 m below the WGS 84 spheroid.
    let alt_cm = i64::from(alt) - 10_000_000;
    let sign = if alt_cm < 0 { "-" } else { "" };
    write!(
        out,
        " {sign}{}.{:02}m",
        alt_cm.unsigned_abs() / 100,
        alt_cm.unsigned_abs() % 100
    )
    .ok();
    for p in [size, horiz, vert] {
        let (mantissa, exponent) = (u64::from(p >> 4), u32::from(p & 0x0f));
        if mantissa > 9 || exponent > 9 {
            return Err(Malformed("rdata_bad_loc"));
        }
        let cm = mantissa * 10u64.pow(exponent);
        write!(out, " {}.{:02}m", cm / 100, cm % 100).ok();
    }
    Ok(out)
}
