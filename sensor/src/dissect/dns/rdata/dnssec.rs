//! DNSSEC fields in presentation format: type numbers (RRSIG's type
//! covered, NSEC and NSEC3 type bitmaps), RRSIG times and NSEC3 salts.
//!
//! Owns: the RFC 4034 §4.1.2 type bitmap (windows of at most 32 bytes), the
//! `YYYYMMDDHHmmSS` UTC time of RFC 4034 §3.2, and a type number as its
//! mnemonic or `TYPE<n>` (RFC 3597). Input: fields already cut from one
//! record's RDATA. Output: text appended to a `String`, or a [`Malformed`]
//! bitmap.
//!
//! Does not: read the rest of the record (`rdata.rs`).

use std::fmt::Write as _;

use super::encode::push_hex;
use crate::dissect::dns::message::Malformed;
use crate::dissect::dns::names;

pub(super) fn type_text(t: u16) -> String {
    names::rtype_name(t).map_or_else(|| format!("TYPE{t}"), str::to_owned)
}

pub(super) fn push_salt(out: &mut String, salt: &[u8]) {
    if salt.is_empty() {
        out.push('-');
    } else {
        push_hex(out, salt);
    }
}

/// The type bitmaps of NSEC and NSEC3 (RFC 4034 §4.1.2), each type with a
/// leading space.
pub(super) fn push_type_bitmaps(out: &mut String, mut b: &[u8]) -> Result<(), Malformed> {
    while !b.is_empty() {
        let (&window, &len) = match b {
            [w, l, ..] => (w, l),
            _ => return Err(Malformed("rdata_bad_bitmap")),
        };
        let len = usize::from(len);
        if len == 0 || len > 32 {
            return Err(Malformed("rdata_bad_bitmap"));
        }
        let map = b.get(2..2 + len).ok_or(Malformed("rdata_bad_bitmap"))?;
        for (i, byte) in map.iter().enumerate() {
            for bit in 0..8u16 {
                if byte & (0x80 >> bit) != 0 {
                    let t = u16::from(window) * 256 + (i as u16) * 8 + bit;
                    out.push(' ');
                    out.push_str(&type_text(t));
                }
            }
        }
        b = b.get(2 + len..).unwrap_or_default();
    }
    Ok(())
}

/// `YYYYMMDDHHmmSS` (UTC) of seconds since the epoch.
pub(super) fn push_time(out: &mut String, secs: u32) {
    let days = i64::from(secs / 86_400);
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    write!(
        out,
        "{year:04}{month:02}{day:02}{:02}{:02}{:02}",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
    .ok();
}
