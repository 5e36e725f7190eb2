//! Fast text forms of the JSON view's most frequent values: RFC 3339
//! timestamps and IP addresses.
//!
//! Owns: writing those values digit by digit into text buffers the thread
//! reuses, so that a record's serialisation neither allocates nor goes
//! through `core::fmt` for them (every record has one or two timestamps and
//! two addresses; `core::fmt` cost more than the rest of a flow record
//! together, about 2,500 instructions for one IPv6 address). Input: the
//! values. Output: `&str` views of the buffers, or serde calls. Does not:
//! change what is written: the text is exactly what
//! [`crate::format_rfc3339_micros`] and `Ipv4Addr`'s and `Ipv6Addr`'s
//! `Display` produce (tests compare them over every pattern that changes
//! the form).

use serde::Serializer;
use std::cell::Cell;
use std::net::{IpAddr, Ipv6Addr};

/// Length of `YYYY-MM-DDTHH:MM:SS.`: what all timestamps of one second share.
const SECOND_PREFIX_LEN: usize = 20;
/// Length of `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
const RFC3339_MICROS_LEN: usize = 27;

// The texts are built in `String`s kept by the thread between values: a
// `String` grown char by char needs no UTF-8 check, which on a stack
// buffer cost as much as writing the digits, and reusing it allocates
// nothing. Each is taken out of its cell while in use (so nothing can see
// it half-written) and put back after; one lost to a panic or to a thread
// being torn down is simply allocated again.
thread_local! {
    /// The text of the last timestamp this thread wrote and its second.
    /// Records are written in time order, so most timestamps share their
    /// second with the one before: the calendar arithmetic and the date and
    /// time digits are then done once per second, not per timestamp.
    static LAST_TIMESTAMP: Cell<(i64, String)> = const { Cell::new((0, String::new())) };
    /// Scratch text for addresses.
    static ADDRESS: Cell<String> = const { Cell::new(String::new()) };
}

/// Calls `f` with `micros` (since the epoch) as
/// `YYYY-MM-DDTHH:MM:SS.ffffffZ`: the text of
/// [`crate::format_rfc3339_micros`], which it calls for a year outside
/// 0..=9999 (such times come only from broken captures).
pub(crate) fn with_timestamp_text<R>(micros: i64, f: impl FnOnce(&str) -> R) -> R {
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000) as u32;
    let (mut second, mut text) = LAST_TIMESTAMP.try_with(Cell::take).unwrap_or_default();
    // An empty text (first use, or lost) never matches.
    if second != secs || text.len() != RFC3339_MICROS_LEN {
        text.clear();
        if !push_second(&mut text, secs) {
            return f(&crate::format_rfc3339_micros(micros));
        }
        second = secs;
    }
    text.truncate(SECOND_PREFIX_LEN);
    push_digits::<6>(&mut text, frac);
    text.push('Z');
    let result = f(&text);
    let _ = LAST_TIMESTAMP.try_with(|last| last.set((second, text)));
    result
}

/// Appends `YYYY-MM-DDTHH:MM:SS.` of the second `secs` since the epoch;
/// false (nothing appended) for a year outside 0..=9999.
fn push_second(text: &mut String, secs: i64) -> bool {
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400) as u32;
    let (y, m, d) = crate::civil_from_days(days);
    if !(0..=9999).contains(&y) {
        return false;
    }
    push_digits::<4>(text, y as u32);
    text.push('-');
    push_digits::<2>(text, m);
    text.push('-');
    push_digits::<2>(text, d);
    text.push('T');
    push_digits::<2>(text, sod / 3600);
    text.push(':');
    push_digits::<2>(text, (sod / 60) % 60);
    text.push(':');
    push_digits::<2>(text, sod % 60);
    text.push('.');
    true
}

/// Appends `v` as exactly `N` decimal digits, zero-padded (the callers'
/// values fit). A constant width and 32 bits keep it to a few
/// instructions a digit: every value is below 10^6, and 32-bit division by
/// ten is the cheaper one.
fn push_digits<const N: usize>(text: &mut String, mut v: u32) {
    let mut digits = [b'0'; N];
    for d in digits.iter_mut().rev() {
        *d = b'0' + (v % 10) as u8;
        v /= 10;
    }
    for d in digits {
        text.push(char::from(d));
    }
}

/// Serialises a timestamp (see [`with_timestamp_text`]).
pub(crate) fn serialize_timestamp<S: Serializer>(micros: i64, s: S) -> Result<S::Ok, S::Error> {
    with_timestamp_text(micros, |text| s.serialize_str(text))
}

/// Calls `f` with an address's text: exactly `Ipv4Addr`'s and `Ipv6Addr`'s
/// `Display` (RFC 5952 for IPv6), without `core::fmt`.
fn with_ip_text<R>(ip: &IpAddr, f: impl FnOnce(&str) -> R) -> R {
    let mut text = ADDRESS.try_with(Cell::take).unwrap_or_default();
    text.clear();
    match ip {
        IpAddr::V4(v4) => push_ipv4(&mut text, v4.octets()),
        IpAddr::V6(v6) => push_ipv6(&mut text, v6),
    }
    let result = f(&text);
    let _ = ADDRESS.try_with(|scratch| scratch.set(text));
    result
}

/// Appends `a.b.c.d`, each octet in decimal without leading zeros: the
/// text of `Ipv4Addr`'s `Display`, without `core::fmt`. Also used by the
/// sensor's DNS answers.
pub fn push_ipv4(text: &mut String, octets: [u8; 4]) {
    for (i, octet) in octets.into_iter().enumerate() {
        if i > 0 {
            text.push('.');
        }
        if octet >= 100 {
            text.push(char::from(b'0' + octet / 100));
        }
        if octet >= 10 {
            text.push(char::from(b'0' + (octet / 10) % 10));
        }
        text.push(char::from(b'0' + octet % 10));
    }
}

/// Appends an IPv6 address as `Ipv6Addr`'s `Display` writes it (RFC 5952):
/// IPv4-mapped as `::ffff:a.b.c.d`; else lowercase hex groups without
/// leading zeros, the first of the longest runs of two or more zero groups
/// written `::`. Also used by the sensor's DNS answers.
pub fn push_ipv6(text: &mut String, ip: &Ipv6Addr) {
    if let Some(v4) = ip.to_ipv4_mapped() {
        text.push_str("::ffff:");
        push_ipv4(text, v4.octets());
        return;
    }
    let groups = ip.segments();
    let (mut zeros_at, mut zeros_len) = (0, 0);
    let (mut run_at, mut run_len) = (0, 0);
    for (i, &group) in groups.iter().enumerate() {
        if group != 0 {
            run_len = 0;
            continue;
        }
        if run_len == 0 {
            run_at = i;
        }
        run_len += 1;
        if run_len > zeros_len {
            (zeros_at, zeros_len) = (run_at, run_len);
        }
    }
    if zeros_len < 2 {
        push_groups(text, &groups);
    } else {
        push_groups(text, &groups[..zeros_at]);
        text.push_str("::");
        push_groups(text, &groups[zeros_at + zeros_len..]);
    }
}

/// Appends groups in lowercase hexadecimal without leading zeros,
/// separated by `:`.
fn push_groups(text: &mut String, groups: &[u16]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, &group) in groups.iter().enumerate() {
        if i > 0 {
            text.push(':');
        }
        let width = (16 - group.leading_zeros()).div_ceil(4).max(1);
        for k in (0..width).rev() {
            text.push(char::from(HEX[usize::from((group >> (4 * k)) & 0xf)]));
        }
    }
}

/// Serialises an address as its usual text form (see [`with_ip_text`]).
/// For `#[serde(serialize_with)]` on address fields.
pub(crate) fn serialize_ip<S: Serializer>(ip: &IpAddr, s: S) -> Result<S::Ok, S::Error> {
    with_ip_text(ip, |text| s.serialize_str(text))
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
    fn ipv4_text_equals_display_for_every_octet_in_every_position() {
        for a in 0..=255u8 {
            for ip in [
                Ipv4Addr::new(a, 255 - a, a / 2, a.wrapping_mul(7)),
                Ipv4Addr::new(a.wrapping_mul(7), a, 255 - a, a / 2),
            ] {
                assert_eq!(json_ip(IpAddr::V4(ip)), format!("\"{ip}\""));
            }
        }
    }

    #[test]
    fn ipv6_text_equals_display_for_every_pattern_of_zero_groups() {
        // Which groups are zero decides where `::` goes; the values of the
        // others decide the hex widths.
        let values = [1u16, 0xf, 0x10, 0xab, 0x100, 0xfff, 0x1000, 0xffff];
        for zeros in 0u32..256 {
            for shift in 0..values.len() {
                let mut groups = [0u16; 8];
                for (i, g) in groups.iter_mut().enumerate() {
                    if zeros & (1 << i) == 0 {
                        *g = values[(i + shift) % values.len()];
                    }
                }
                let ip = IpAddr::V6(Ipv6Addr::from(groups));
                assert_eq!(json_ip(ip), format!("\"{ip}\""));
            }
        }
    }

    #[test]
    fn ipv4_mapped_and_compatible_ipv6_text_equals_display() {
        for v4 in [[0u8, 0, 0, 0], [0, 0, 0, 1], [10, 0, 0, 1], [255; 4]] {
            let v4 = Ipv4Addr::from(v4);
            for ip in [v4.to_ipv6_mapped(), v4.to_ipv6_compatible()] {
                assert_eq!(json_ip(IpAddr::V6(ip)), format!("\"{ip}\""));
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

    fn timestamp_text(t: i64) -> String {
        with_timestamp_text(t, str::to_owned)
    }

    #[test]
    fn timestamps_equal_the_formatted_string_across_the_calendar() {
        // Every seventh day of a leap-year cycle around 1970, 2000 and
        // 2100, at odd times of day, plus the ends of the four-digit range
        // and beyond them (the long form).
        let day_us = 86_400_000_000i64;
        let starts = [0i64, 946_684_800_000_000, 4_102_444_800_000_000];
        for start in starts {
            for day in (-800..800).step_by(7) {
                let t = start + day * day_us + 45_296_789_012;
                assert_eq!(timestamp_text(t), crate::format_rfc3339_micros(t));
            }
        }
        let last = 253_402_300_799_999_999;
        assert_eq!(timestamp_text(last), "9999-12-31T23:59:59.999999Z");
        let first = -62_167_219_200_000_000;
        assert_eq!(timestamp_text(first), "0000-01-01T00:00:00.000000Z");
        for t in [last + 1, first - 1, i64::MAX, i64::MIN] {
            assert_eq!(timestamp_text(t), crate::format_rfc3339_micros(t));
        }
    }

    #[test]
    fn timestamps_within_a_second_and_back_and_forth_equal_the_formatted_string() {
        // The second's text is kept between calls: every change of second,
        // forward, backward, out of range and back, must rebuild it.
        let last = 253_402_300_799_999_999;
        let base = 1_717_243_200_000_000i64; // 2024-06-01T12:00:00Z
        for t in [
            base,
            base + 1,
            base + 999_999,
            base + 1_000_000,
            base + 999_999,
            base - 1,
            -1,
            0,
            base - 1,
            last + 1,
            base - 1,
            last,
            last - 999_999,
            -62_167_219_200_000_001,
            0,
        ] {
            assert_eq!(timestamp_text(t), crate::format_rfc3339_micros(t), "{t}");
        }
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
