//! The compact wire forms of values whose text the receiver can rebuild:
//! uids, addresses, TCP flag letters, Zeek connection states. Each has a
//! canonical text form (the one the sensor writes) that packs into a number
//! or bytes and unpacks to the same text; any other text travels as text.

use super::ConvertError;
use crate::pb;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// Digits of a uid after its `C`.
const UID_DIGITS: usize = 18;
/// 62^18 < 2^108: the number fits in 14 bytes.
pub(super) const UID_PACKED_BYTES: usize = 14;

fn base62_digit(c: u8) -> Option<u128> {
    let d = match c {
        b'0'..=b'9' => c - b'0',
        b'A'..=b'Z' => c - b'A' + 10,
        b'a'..=b'z' => c - b'a' + 36,
        _ => return None,
    };
    Some(u128::from(d))
}

/// A uid of the sensor's form (`C` and 18 base-62 digits, least significant
/// first) as 14 big-endian bytes; `None` for any other text.
pub(super) fn pack_uid(uid: &str) -> Option<Vec<u8>> {
    let digits = uid.strip_prefix('C')?.as_bytes();
    if digits.len() != UID_DIGITS {
        return None;
    }
    let mut v: u128 = 0;
    for &c in digits.iter().rev() {
        v = v * 62 + base62_digit(c)?;
    }
    Some(v.to_be_bytes()[16 - UID_PACKED_BYTES..].to_vec())
}

/// The text of a packed uid.
pub(super) fn unpack_uid(packed: &[u8]) -> Result<String, ConvertError> {
    if packed.len() != UID_PACKED_BYTES {
        return Err(ConvertError::BadUid);
    }
    let mut be = [0u8; 16];
    be[16 - UID_PACKED_BYTES..].copy_from_slice(packed);
    let mut v = u128::from_be_bytes(be);
    let mut s = String::with_capacity(1 + UID_DIGITS);
    s.push('C');
    for _ in 0..UID_DIGITS {
        s.push(char::from(BASE62[(v % 62) as usize]));
        v /= 62;
    }
    // A number of 62^18 or more has no 18-digit form: it was not packed
    // from a uid.
    if v != 0 {
        return Err(ConvertError::BadUid);
    }
    Ok(s)
}

/// The (packed, text) fields of a uid.
pub(super) fn uid_fields(uid: &str) -> (Vec<u8>, String) {
    match pack_uid(uid) {
        Some(p) => (p, String::new()),
        None => (Vec::new(), uid.to_string()),
    }
}

/// The uid from its (packed, text) fields.
pub(super) fn uid_from_fields(packed: &[u8], text: String) -> Result<String, ConvertError> {
    if packed.is_empty() {
        Ok(text)
    } else {
        unpack_uid(packed)
    }
}

/// An address as 4 or 16 bytes in network order.
pub(super) fn ip_bytes(a: IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(v) => v.octets().to_vec(),
        IpAddr::V6(v) => v.octets().to_vec(),
    }
}

/// An address from 4 or 16 bytes.
pub(super) fn ip_from(field: &'static str, b: &[u8]) -> Result<IpAddr, ConvertError> {
    if let Ok(v4) = <[u8; 4]>::try_from(b) {
        Ok(IpAddr::V4(Ipv4Addr::from(v4)))
    } else if let Ok(v6) = <[u8; 16]>::try_from(b) {
        Ok(IpAddr::V6(Ipv6Addr::from(v6)))
    } else {
        Err(ConvertError::BadAddress {
            field,
            len: b.len(),
        })
    }
}

/// A narrower integer from a wire `uint32`/`uint64`.
pub(super) fn narrow<T: TryFrom<u64>>(
    field: &'static str,
    v: impl Into<u64>,
) -> Result<T, ConvertError> {
    let v = v.into();
    T::try_from(v).map_err(|_| ConvertError::OutOfRange { field, value: v })
}

/// TCP flag letters in the order the sensor writes them, with their bits.
const TCP_FLAG_LETTERS: [(u8, char); 8] = [
    (0x01, 'F'),
    (0x02, 'S'),
    (0x04, 'R'),
    (0x08, 'P'),
    (0x10, 'A'),
    (0x20, 'U'),
    (0x40, 'E'),
    (0x80, 'C'),
];

/// Flag letters as bits, when they are letters of `FSRPAUEC` in that order,
/// each once.
fn tcp_flags_bits(s: &str) -> Option<u32> {
    let mut bits = 0u32;
    let mut next = 0;
    for c in s.chars() {
        let i = TCP_FLAG_LETTERS[next..].iter().position(|&(_, l)| l == c)? + next;
        bits |= u32::from(TCP_FLAG_LETTERS[i].0);
        next = i + 1;
    }
    Some(bits)
}

fn tcp_flags_letters(bits: u32) -> Result<String, ConvertError> {
    if bits > 0xff {
        return Err(ConvertError::OutOfRange {
            field: "tcp_flags",
            value: u64::from(bits),
        });
    }
    Ok(TCP_FLAG_LETTERS
        .iter()
        .filter(|&&(bit, _)| bits & u32::from(bit) != 0)
        .map(|&(_, l)| l)
        .collect())
}

/// The (bits, text) fields of an optional flag string.
pub(super) fn tcp_flags_fields(s: Option<&str>) -> (Option<u32>, Option<String>) {
    match s {
        None => (None, None),
        Some(s) => match tcp_flags_bits(s) {
            Some(b) => (Some(b), None),
            None => (None, Some(s.to_string())),
        },
    }
}

/// The flag string from its (bits, text) fields.
pub(super) fn tcp_flags_from(
    bits: Option<u32>,
    text: Option<String>,
) -> Result<Option<String>, ConvertError> {
    match (text, bits) {
        (Some(t), _) => Ok(Some(t)),
        (None, Some(b)) => tcp_flags_letters(b).map(Some),
        (None, None) => Ok(None),
    }
}

/// Zeek's connection states in the order of `pb::ConnState` (from 1).
const CONN_STATES: [&str; 13] = [
    "S0", "S1", "SF", "REJ", "S2", "S3", "RSTO", "RSTR", "RSTOS0", "RSTRH", "SH", "SHR", "OTH",
];

/// The (enum, text) fields of a connection state.
pub(super) fn conn_state_fields(s: &str) -> (i32, String) {
    match CONN_STATES.iter().position(|&n| n == s) {
        Some(i) => (i as i32 + 1, String::new()),
        None => (pb::ConnState::Text as i32, s.to_string()),
    }
}

/// The connection state from its (enum, text) fields.
pub(super) fn conn_state_from(code: i32, text: String) -> Result<String, ConvertError> {
    if code == pb::ConnState::Text as i32 {
        return Ok(text);
    }
    usize::try_from(code - 1)
        .ok()
        .and_then(|i| CONN_STATES.get(i))
        .map(|s| (*s).to_string())
        .ok_or(ConvertError::OutOfRange {
            field: "conn_state",
            value: code as u64,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_packs_to_14_bytes_and_back() {
        for uid in [
            "C6pJMQX9tuiXhgKsXmh",
            "C000000000000000000",
            "Czzzzzzzzzzzzzzzzzz",
        ] {
            let p = pack_uid(uid).unwrap();
            assert_eq!(p.len(), 14);
            assert_eq!(unpack_uid(&p).unwrap(), uid);
        }
        for other in [
            "",
            "C",
            "Cabc",
            "D6pJMQX9tuiXhgKsXmh",
            "C6pJMQX9tuiXhgKsXm!",
            "C6pJMQX9tuiXhgKsXmhh",
        ] {
            assert_eq!(pack_uid(other), None, "{other}");
        }
        assert!(unpack_uid(&[0xff; 14]).is_err());
        assert!(unpack_uid(&[0; 13]).is_err());
    }

    #[test]
    fn tcp_flags_canonical_and_not() {
        assert_eq!(tcp_flags_fields(Some("FSPA")), (Some(0x1b), None));
        assert_eq!(tcp_flags_fields(Some("")), (Some(0), None));
        assert_eq!(tcp_flags_fields(Some("AF")), (None, Some("AF".into())));
        assert_eq!(tcp_flags_fields(Some("FF")), (None, Some("FF".into())));
        assert_eq!(
            tcp_flags_from(Some(0xff), None).unwrap().as_deref(),
            Some("FSRPAUEC")
        );
        assert!(tcp_flags_from(Some(0x100), None).is_err());
    }

    #[test]
    fn conn_states_by_number() {
        for s in CONN_STATES {
            let (c, t) = conn_state_fields(s);
            assert_eq!(conn_state_from(c, t).unwrap(), s);
        }
        assert_eq!(conn_state_fields("XX"), (0, "XX".into()));
        assert!(conn_state_from(14, String::new()).is_err());
        assert!(conn_state_from(-1, String::new()).is_err());
    }
}
