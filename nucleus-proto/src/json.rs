//! Allocation-free text forms of the JSON view's most frequent values:
//! RFC 3339 timestamps and IPv4 addresses.
//!
//! Owns: writing those values into stack buffers, digit by digit, so that a
//! record's serialisation does not allocate or go through `core::fmt` for
//! them (every record has one or two timestamps and two addresses; the
//! formatting machinery cost more than the rest of a flow record together).
//! Input: the values. Output: `&str` views of the stack buffers, or serde
//! calls. Does not: change what is written: the text is exactly what
//! [`crate::format_rfc3339_micros`] and `IpAddr`'s `Display` produce (tests
//! compare them over many values).

use serde::Serializer;
use std::net::IpAddr;

/// Length of `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
pub(crate) const RFC3339_MICROS_LEN: usize = 27;

/// Writes `micros` (since the epoch) as `YYYY-MM-DDTHH:MM:SS.ffffffZ` into
/// `out`; `None` for a year outside 0..=9999 (which the caller writes the
/// slow way: such times come only from broken captures).
pub(crate) fn rfc3339_micros(micros: i64, out: &mut [u8; RFC3339_MICROS_LEN]) -> Option<&str> {
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = crate::civil_from_days(days);
    if !(0..=9999).contains(&y) {
        return None;
    }
    digits(&mut out[0..4], y as u64);
    out[4] = b'-';
    digits(&mut out[5..7], u64::from(m));
    out[7] = b'-';
    digits(&mut out[8..10], u64::from(d));
    out[10] = b'T';
    digits(&mut out[11..13], (sod / 3600) as u64);
    out[13] = b':';
    digits(&mut out[14..16], ((sod / 60) % 60) as u64);
    out[16] = b':';
    digits(&mut out[17..19], (sod % 60) as u64);
    out[19] = b'.';
    digits(&mut out[20..26], frac as u64);
    out[26] = b'Z';
    // Only ASCII digits and separators were written.
    std::str::from_utf8(out).ok()
}

/// Writes `v` as exactly `out.len()` decimal digits, zero-padded (the
/// callers' values fit).
fn digits(out: &mut [u8], mut v: u64) {
    for b in out.iter_mut().rev() {
        *b = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

/// Serialises a timestamp (see [`rfc3339_micros`]).
pub(crate) fn serialize_timestamp<S: Serializer>(micros: i64, s: S) -> Result<S::Ok, S::Error> {
    let mut buf = [0u8; RFC3339_MICROS_LEN];
    match rfc3339_micros(micros, &mut buf) {
        Some(text) => s.serialize_str(text),
        None => s.serialize_str(&crate::format_rfc3339_micros(micros)),
    }
}

/// Serialises an address as its usual text form: IPv4 digit by digit,
/// IPv6 through `Display` (its zero compression is not worth repeating).
/// For `#[serde(serialize_with)]` on address fields.
pub(crate) fn serialize_ip<S: Serializer>(ip: &IpAddr, s: S) -> Result<S::Ok, S::Error> {
    match ip {
        IpAddr::V4(v4) => {
            let mut buf = [0u8; 15];
            let mut n = 0;
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    buf[n] = b'.';
                    n += 1;
                }
                let width = match octet {
                    0..=9 => 1,
                    10..=99 => 2,
                    _ => 3,
                };
                digits(&mut buf[n..n + width], u64::from(octet));
                n += width;
            }
            match std::str::from_utf8(&buf[..n]) {
                Ok(text) => s.serialize_str(text),
                Err(_) => s.collect_str(ip),
            }
        }
        IpAddr::V6(_) => s.collect_str(ip),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn json_ip(ip: IpAddr) -> String {
        let mut out = Vec::new();
        let mut ser = serde_json::Serializer::new(&mut out);
        serialize_ip(&ip, &mut ser).expect("serialise");
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn ipv4_text_equals_display_for_every_octet_width() {
        for a in [0u8, 1, 9, 10, 99, 100, 199, 255] {
            for b in [0u8, 7, 42, 250] {
                let ip = IpAddr::V4(Ipv4Addr::new(a, b, 255 - a, b / 2));
                assert_eq!(json_ip(ip), format!("\"{ip}\""));
            }
        }
    }

    #[test]
    fn ipv6_text_equals_display() {
        for ip in [
            Ipv6Addr::LOCALHOST,
            Ipv6Addr::UNSPECIFIED,
            "2001:db8::1".parse().expect("v6"),
            "::ffff:10.0.0.1".parse().expect("v6"),
        ] {
            assert_eq!(json_ip(IpAddr::V6(ip)), format!("\"{ip}\""));
        }
    }

    #[test]
    fn timestamps_equal_the_formatted_string_across_the_calendar() {
        let mut buf = [0u8; RFC3339_MICROS_LEN];
        // Every day of a leap-year cycle around 2000 and 2100, at odd times
        // of day, plus the ends of the four-digit range.
        let day_us = 86_400_000_000i64;
        let starts = [0i64, 946_684_800_000_000, 4_102_444_800_000_000];
        for start in starts {
            for day in (-800..800).step_by(7) {
                let t = start + day * day_us + 45_296_789_012;
                let fast = rfc3339_micros(t, &mut buf).map(str::to_owned);
                assert_eq!(
                    fast.as_deref(),
                    Some(crate::format_rfc3339_micros(t).as_str())
                );
            }
        }
        let last = 253_402_300_799_999_999; // 9999-12-31T23:59:59.999999Z
        assert_eq!(
            rfc3339_micros(last, &mut buf),
            Some("9999-12-31T23:59:59.999999Z")
        );
        assert_eq!(rfc3339_micros(last + 1, &mut buf), None);
        assert_eq!(rfc3339_micros(-62_167_219_200_000_001, &mut buf), None);
    }

    #[test]
    fn out_of_range_years_fall_back_to_the_long_form() {
        let mut out = Vec::new();
        let mut ser = serde_json::Serializer::new(&mut out);
        serialize_timestamp(i64::MAX, &mut ser).expect("serialise");
        let text = String::from_utf8(out).expect("utf-8");
        assert_eq!(
            text,
            format!("\"{}\"", crate::format_rfc3339_micros(i64::MAX))
        );
    }
}
