//! Community ID v1 (corelight/community-id-spec): a SHA-1 of the seed and
//! the ordered 5-tuple, rendered as `1:` plus base64 or hexadecimal.
//!
//! ICMP and ICMPv6 types map to "ports" as Zeek maps them: a type with a
//! counterpart (echo request and reply, ...) gets the counterpart as
//! destination port and the tuple is ordered like TCP's; a one-way type gets
//! its code as destination port and keeps its direction.
//!
//! Shared by the sensor (which writes the IDs) and the Nucleus's receiver
//! (which recomputes the IDs the wire leaves out, with the seed and
//! rendering a record block names).

use base64::Engine as _;
use sha1::{Digest, Sha1};
use std::net::IpAddr;

/// IANA protocol numbers that carry ports in the hash.
const TCP: u8 = 6;
const UDP: u8 = 17;
const SCTP: u8 = 132;
const ICMP: u8 = 1;
const ICMP6: u8 = 58;

/// The counterpart of an ICMPv4 type, after Zeek's `ICMP4_counterpart`.
fn icmp4_counterpart(t: u8) -> Option<u8> {
    Some(match t {
        8 => 0,
        0 => 8,
        13 => 14,
        14 => 13,
        15 => 16,
        16 => 15,
        10 => 9,
        9 => 10,
        17 => 18,
        18 => 17,
        _ => return None,
    })
}

/// The counterpart of an ICMPv6 type, after Zeek's `ICMP6_counterpart`.
fn icmp6_counterpart(t: u8) -> Option<u8> {
    Some(match t {
        128 => 129,
        129 => 128,
        130 => 131,
        131 => 130,
        133 => 134,
        134 => 133,
        135 => 136,
        136 => 135,
        139 => 140,
        140 => 139,
        144 => 145,
        145 => 144,
        _ => return None,
    })
}

/// Maps an ICMP type and code to (source port, destination port, one-way).
pub fn icmp_ports(proto: u8, icmp_type: u8, code: u8) -> (u16, u16, bool) {
    let counterpart = if proto == ICMP6 {
        icmp6_counterpart(icmp_type)
    } else {
        icmp4_counterpart(icmp_type)
    };
    match counterpart {
        Some(c) => (u16::from(icmp_type), u16::from(c), false),
        None => (u16::from(icmp_type), u16::from(code), true),
    }
}

/// Computes Community ID v1 strings with a fixed seed and rendering.
#[derive(Debug, Clone)]
pub struct CommunityId {
    seed: u16,
    base64: bool,
}

impl CommunityId {
    /// A calculator for the given seed and rendering.
    pub fn new(seed: u16, base64: bool) -> Self {
        Self { seed, base64 }
    }

    /// The seed hashed before the tuple.
    pub fn seed(&self) -> u16 {
        self.seed
    }

    /// True when IDs are rendered in base64 (the spec's default), false for
    /// hexadecimal.
    pub fn base64(&self) -> bool {
        self.base64
    }

    /// The ID of a packet or flow. For ICMP, `src_port` and `dst_port` are
    /// the type and code as they appear in the packet.
    pub fn compute(
        &self,
        src: IpAddr,
        dst: IpAddr,
        proto: u8,
        src_port: u16,
        dst_port: u16,
    ) -> String {
        let (sp, dp, one_way) = match proto {
            ICMP | ICMP6 => icmp_ports(proto, src_port as u8, dst_port as u8),
            _ => (src_port, dst_port, false),
        };
        let has_ports = matches!(proto, TCP | UDP | SCTP | ICMP | ICMP6);
        let (sp, dp) = if has_ports { (sp, dp) } else { (0, 0) };
        // IpAddr orders numerically within a family, which is the spec's
        // byte-wise order of network-byte-order addresses.
        let ordered = one_way || (src, sp) <= (dst, dp);
        let (a, b, ap, bp) = if ordered {
            (src, dst, sp, dp)
        } else {
            (dst, src, dp, sp)
        };
        // The whole input (at most seed 2 + two IPv6 addresses 32 + proto
        // and pad 2 + ports 4 = 40 bytes) is laid out in one stack buffer
        // and hashed in one call: one pass through the hasher's block
        // buffer instead of one per field.
        let mut input = [0u8; 40];
        let mut len = 0;
        let mut put = |bytes: &[u8]| {
            if let Some(slot) = input.get_mut(len..len + bytes.len()) {
                slot.copy_from_slice(bytes);
                len += bytes.len();
            }
        };
        put(&self.seed.to_be_bytes());
        put_addr(&mut put, a);
        put_addr(&mut put, b);
        put(&[proto, 0]);
        if has_ports {
            put(&ap.to_be_bytes());
            put(&bp.to_be_bytes());
        }
        let digest = Sha1::digest(&input[..len]);
        // Built in place: `1:` then the digest, no formatter.
        let mut s = String::with_capacity(if self.base64 { 30 } else { 42 });
        s.push_str("1:");
        if self.base64 {
            // Into a stack buffer: `encode_string` stages through a zeroed
            // 1 KiB buffer, ten times the work of the 28 characters here.
            let b64 = base64::engine::general_purpose::STANDARD;
            let mut text = [0u8; 28];
            if let Ok(n) = b64.encode_slice(digest, &mut text)
                && let Ok(t) = std::str::from_utf8(&text[..n])
            {
                s.push_str(t);
            } else {
                b64.encode_string(digest, &mut s);
            }
        } else {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            for byte in digest {
                for nibble in [byte >> 4, byte & 0xf] {
                    s.push(char::from(
                        HEX.get(usize::from(nibble)).copied().unwrap_or(b'0'),
                    ));
                }
            }
        }
        s
    }
}

fn put_addr(put: &mut impl FnMut(&[u8]), a: IpAddr) {
    match a {
        IpAddr::V4(v) => put(&v.octets()),
        IpAddr::V6(v) => put(&v.octets()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn spec_readme_examples() {
        let d = CommunityId::new(0, true);
        assert_eq!(
            d.compute(ip("1.2.3.4"), ip("5.6.7.8"), 6, 1122, 3344),
            "1:wCb3OG7yAFWelaUydu0D+125CLM="
        );
        assert_eq!(
            d.compute(ip("5.6.7.8"), ip("1.2.3.4"), 6, 3344, 1122),
            "1:wCb3OG7yAFWelaUydu0D+125CLM="
        );
        assert_eq!(
            d.compute(ip("1.2.3.4"), ip("5.6.7.8"), 1, 8, 0),
            "1:crodRHL2FEsHjbv3UkRrfbs4bZ0="
        );
        assert_eq!(
            d.compute(ip("5.6.7.8"), ip("1.2.3.4"), 1, 0, 0),
            "1:crodRHL2FEsHjbv3UkRrfbs4bZ0="
        );
        assert_eq!(
            d.compute(ip("1.2.3.4"), ip("5.6.7.8"), 1, 11, 0),
            "1:f/YiSyWqczrTgfUCZlBUnvHRcPk="
        );
        assert_eq!(
            d.compute(ip("1.2.3.4"), ip("5.6.7.8"), 46, 0, 0),
            "1:ikv3kmf89luf73WPz1jOs49S768="
        );
        let s1 = CommunityId::new(1, true);
        assert_eq!(
            s1.compute(ip("1.2.3.4"), ip("5.6.7.8"), 17, 1122, 3344),
            "1:OShq+iKDAMVouh/4bMxB9Sz4amw="
        );
        // IPv6 (the longest input, 40 bytes), both orders and both
        // renderings; values from an independent SHA-1 of the spec's layout.
        let s7 = CommunityId::new(7, true);
        assert_eq!(
            s7.compute(ip("fe80::1"), ip("2001:db8::2"), 6, 443, 51000),
            "1:+jTjLgZAtpNhs02fZVSMfGSgXS0="
        );
        assert_eq!(
            s7.compute(ip("2001:db8::2"), ip("fe80::1"), 6, 51000, 443),
            "1:+jTjLgZAtpNhs02fZVSMfGSgXS0="
        );
        assert_eq!(
            CommunityId::new(0, false).compute(ip("2001:db8::2"), ip("fe80::1"), 17, 53, 5353),
            "1:d786aad3d4613efea88ecbede5d69aea7d85d5db"
        );
        let hex = CommunityId::new(0, false);
        assert_eq!(
            hex.compute(ip("1.2.3.4"), ip("5.6.7.8"), 6, 1122, 3344),
            "1:c026f7386ef200559e95a53276ed03fb5db908b3"
        );
    }
}
