//! Flow keys: the tunnel domain and the inner 5-tuple, with the two
//! endpoints in a canonical order so both directions find one entry, and
//! the symmetric hash that steers both directions to one worker.

use crate::decap::{InnerPacket, Transport};
use crate::flow::community_id::icmp_ports;
use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;

/// One endpoint of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    /// Address.
    pub addr: IpAddr,
    /// Port (ICMP: the type, or the counterpart type / code).
    pub port: u16,
}

/// The packet's own view of its 5-tuple (source first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketTuple {
    /// IP protocol.
    pub proto: u8,
    /// Sender.
    pub src: Endpoint,
    /// Receiver.
    pub dst: Endpoint,
}

impl PacketTuple {
    /// Extracts the tuple of an inner packet. ICMP types are mapped to ports
    /// as Zeek and Community ID do, so an echo reply meets its request.
    #[inline]
    pub fn of(p: &InnerPacket<'_>) -> Self {
        let (sp, dp) = match p.transport {
            // A two-way type is keyed as (type, counterpart type), so a reply
            // (0, 8) meets its request (8, 0) once the endpoints are ordered.
            Transport::Icmp {
                icmp_type, code, ..
            } => {
                let (s, d, _one_way) = icmp_ports(p.proto, icmp_type, code);
                (s, d)
            }
            other => other.ports(),
        };
        Self {
            proto: p.proto,
            src: Endpoint {
                addr: p.src,
                port: sp,
            },
            dst: Endpoint {
                addr: p.dst,
                port: dp,
            },
        }
    }
}

impl PacketTuple {
    /// `src <= dst`, asked for every packet: IPv4 pairs (almost every
    /// packet) compare as numbers, which is the derived order of their
    /// octets and port without its dispatch on the address family. True
    /// exactly when the sender is the key's `lo` endpoint.
    #[inline]
    pub fn src_first(&self) -> bool {
        match (self.src.addr, self.dst.addr) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                (a.to_bits(), self.src.port) <= (b.to_bits(), self.dst.port)
            }
            _ => self.src <= self.dst,
        }
    }
}

/// The key of a flow: domain, protocol and the endpoints in canonical order
/// (lower first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// Tunnel domain hash (0 when not encapsulated).
    pub domain: u64,
    /// IP protocol.
    pub proto: u8,
    /// Lower endpoint.
    pub lo: Endpoint,
    /// Higher endpoint.
    pub hi: Endpoint,
}

impl FlowKey {
    /// The key of a packet's tuple in a domain.
    #[inline]
    pub fn new(domain: u64, t: &PacketTuple) -> Self {
        Self::ordered(domain, t, t.src_first())
    }

    /// [`Self::new`] for a caller that already knows `t.src_first()`.
    #[inline]
    pub fn ordered(domain: u64, t: &PacketTuple, src_first: bool) -> Self {
        let (lo, hi) = if src_first {
            (t.src, t.dst)
        } else {
            (t.dst, t.src)
        };
        Self {
            domain,
            proto: t.proto,
            lo,
            hi,
        }
    }

    /// The same tuple with no domain: what two mirror sessions of one
    /// connection have in common.
    pub fn without_domain(&self) -> Self {
        Self { domain: 0, ..*self }
    }

    /// The key's hash for the flow index, asked for every packet: the key
    /// packed into three 128-bit words (three multiplies), where the derived
    /// `Hash` feeds a dozen small writes (enum tags, lengths, octets). The
    /// derived `Hash` stays what the uid is made of. Equal keys hash equal;
    /// the few different keys packing alike (an IPv4 address and its
    /// IPv4-compatible IPv6 twin) only share a bucket.
    pub fn index_hash<S: BuildHasher>(&self, hasher: &S) -> u64 {
        let mut h = hasher.build_hasher();
        let rest = u128::from(self.domain) << 64
            | u128::from(self.proto) << 32
            | u128::from(self.lo.port) << 16
            | u128::from(self.hi.port);
        h.write_u128(rest);
        h.write_u128(addr_bits(self.lo.addr));
        h.write_u128(addr_bits(self.hi.addr));
        h.finish()
    }
}

/// An address as a number (IPv4 in the low 32 bits).
fn addr_bits(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(v4) => u128::from(v4.to_bits()),
        IpAddr::V6(v6) => v6.to_bits(),
    }
}

/// A hash equal for both directions of a tuple, independent of the tunnel
/// domain, so every copy of a connection (both directions, every mirror
/// session) meets in one worker.
pub fn steering_hash<S: BuildHasher>(t: &PacketTuple, hasher: &S) -> u64 {
    let (lo, hi) = if t.src <= t.dst {
        (t.src, t.dst)
    } else {
        (t.dst, t.src)
    };
    hasher.hash_one((t.proto, lo, hi))
}

#[cfg(test)]
mod tests {
    use super::*;
    use foldhash::fast::FixedState;

    fn tuple(a: &str, ap: u16, b: &str, bp: u16) -> PacketTuple {
        PacketTuple {
            proto: 6,
            src: Endpoint {
                addr: a.parse().unwrap(),
                port: ap,
            },
            dst: Endpoint {
                addr: b.parse().unwrap(),
                port: bp,
            },
        }
    }

    #[test]
    fn endpoints_order_as_derived() {
        let cases = [
            ("10.0.0.1", 80, "10.0.0.2", 1),
            ("10.0.0.2", 1, "10.0.0.1", 80),
            ("10.0.0.1", 80, "10.0.0.1", 79),
            ("10.0.0.1", 80, "10.0.0.1", 80),
            ("9.255.255.255", 9, "10.0.0.0", 8),
            ("10.0.0.1", 80, "::1", 80),
            ("fd00::2", 80, "fd00::1", 81),
        ];
        for (a, ap, b, bp) in cases {
            let t = tuple(a, ap, b, bp);
            assert_eq!(t.src_first(), t.src <= t.dst, "{a}:{ap} {b}:{bp}");
        }
    }

    #[test]
    fn both_directions_share_key_and_steering() {
        let s = FixedState::with_seed(1);
        let a = tuple("10.0.0.1", 40000, "10.0.0.2", 80);
        let b = tuple("10.0.0.2", 80, "10.0.0.1", 40000);
        assert_eq!(FlowKey::new(9, &a), FlowKey::new(9, &b));
        assert_ne!(FlowKey::new(9, &a), FlowKey::new(10, &a));
        assert_eq!(steering_hash(&a, &s), steering_hash(&b, &s));
    }
}
