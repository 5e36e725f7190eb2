//! The TLS probe: whether the first bytes of a TCP stream are TLS.
//!
//! Owns: the content test behind [`super::PROTOCOL`]'s probe, a handshake
//! record header (`0x16 0x03 0x00..=0x04`, a plausible length) whose first
//! message is a ClientHello or ServerHello with a TLS 1.x body version, or
//! an SSLv2-format ClientHello. Input: the first bytes of one direction.
//! Output: [`Probe`] (`NeedMore` while a check lacks its bytes).
//!
//! Does not: parse the hello (the dissector does once it runs) or keep any
//! state.

use super::{CT_HANDSHAKE, HS_CLIENT_HELLO, HS_SERVER_HELLO, MAX_RECORD};
use crate::dissect::{L4, Probe, ProbeInput};

pub(super) fn probe(input: &ProbeInput<'_>) -> Probe {
    if input.l4 != L4::Tcp {
        return Probe::NoMatch;
    }
    probe_bytes(input.data)
}

/// One step of [`probe_bytes`]: a test of the first bytes.
type Check = fn(&[u8]) -> bool;

/// The content test of [`probe`]: a handshake record whose first message
/// is a ClientHello or ServerHello with a TLS 1.x body version.
pub(super) fn probe_bytes(d: &[u8]) -> Probe {
    if d.first().is_some_and(|b| b & 0x80 != 0) {
        return probe_sslv2(d);
    }
    // Checks each byte as far as it is available.
    let checks: [(usize, Check); 5] = [
        (1, |d| d.first() == Some(&CT_HANDSHAKE)),
        (3, |d| {
            d.get(1) == Some(&3) && d.get(2).is_some_and(|v| *v <= 4)
        }),
        (5, |d| {
            let len = be16(d, 3);
            len.is_some_and(|l| (4..=MAX_RECORD).contains(&usize::from(l)))
        }),
        (6, |d| {
            matches!(d.get(5), Some(&HS_CLIENT_HELLO) | Some(&HS_SERVER_HELLO))
        }),
        (11, |d| {
            // Handshake length at least a minimal hello, body version 3.x.
            let hl = d
                .get(6..9)
                .map(|b| b.iter().fold(0usize, |a, x| a << 8 | usize::from(*x)));
            hl.is_some_and(|l| l >= 38)
                && d.get(9) == Some(&3)
                && d.get(10).is_some_and(|v| *v <= 4)
        }),
    ];
    for (need, check) in checks {
        if d.len() < need {
            return Probe::NeedMore;
        }
        if !check(d) {
            return Probe::NoMatch;
        }
    }
    Probe::Match
}

/// An SSLv2-format ClientHello: 2-byte length with the top bit set, type
/// 1, version 2.0 or 3.x, cipher specs a multiple of 3 bytes.
fn probe_sslv2(d: &[u8]) -> Probe {
    if d.len() < 11 {
        return Probe::NeedMore;
    }
    let len = be16(d, 0).map_or(0, |v| usize::from(v & 0x7fff));
    let specs = be16(d, 5).map_or(0, usize::from);
    let ok = d.get(2) == Some(&1)
        && matches!(
            (d.get(3), d.get(4)),
            (Some(0), Some(2)) | (Some(3), Some(0..=4))
        )
        && specs > 0
        && specs.is_multiple_of(3)
        && len >= 9 + specs;
    if ok { Probe::Match } else { Probe::NoMatch }
}

fn be16(d: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*d.get(at)?, *d.get(at + 1)?]))
}
