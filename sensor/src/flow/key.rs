//! Flow keys: the tunnel domain and the inner 5-tuple, with the two
//! endpoints in a canonical order so both directions find one entry, and
//! the symmetric hash that steers both directions to one worker.

use crate::decap::{InnerPacket, Transport};
use crate::flow::community_id::icmp_ports;
use std::hash::{BuildHasher, Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

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
        let (sp, dp) = ports(p);
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

/// A packet's source and destination ports. ICMP types are mapped to
/// ports as Zeek and Community ID do, so an echo reply meets its request.
#[inline(always)]
fn ports(p: &InnerPacket<'_>) -> (u16, u16) {
    match p.transport {
        // A two-way type is keyed as (type, counterpart type), so a reply
        // (0, 8) meets its request (8, 0) once the endpoints are ordered.
        Transport::Icmp {
            icmp_type, code, ..
        } => {
            let (s, d, _one_way) = icmp_ports(p.proto, icmp_type, code);
            (s, d)
        }
        other => other.ports(),
    }
}

/// The key of a flow: domain, protocol and the endpoints in canonical order
/// (lower first, in `Endpoint`'s derived order), held as numbers: the table
/// builds, hashes and compares a key for every packet, and an address enum
/// costs a branch on its family and a copy of its bytes at each step. Its
/// `Hash` is the one a struct of (domain, proto, lo, hi) derives, which the
/// uid is made of.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct FlowKey {
    /// Tunnel domain hash (0 when not encapsulated).
    pub domain: u64,
    /// lo's port (bits 48-63), hi's port (bits 32-47), the IP protocol
    /// (bits 8-15), and whether lo's (bit 1) and hi's (bit 0) addresses are
    /// IPv6.
    meta: u64,
    /// lo's address as a number (an IPv4 address in the low 32 bits).
    lo_addr: u128,
    /// hi's address as a number.
    hi_addr: u128,
}

impl FlowKey {
    /// The key of a packet's tuple in a domain.
    #[inline]
    pub fn new(domain: u64, t: &PacketTuple) -> Self {
        Self::of_tuple(domain, t).0
    }

    /// The key of a packet's tuple in a domain, and whether the sender is
    /// its lo endpoint (`src <= dst`). IPv4 pairs (almost every packet)
    /// compare as one number each (address and port), which is the derived
    /// order without its dispatch on the address family.
    #[inline]
    pub fn of_tuple(domain: u64, t: &PacketTuple) -> (Self, bool) {
        Self::of_endpoints(domain, t.proto, t.src, t.dst)
    }

    /// [`Self::of_tuple`] of the packet's tuple, read from the packet: the
    /// per-packet path needs no [`PacketTuple`] copied out of it.
    #[inline]
    pub fn of_packet(domain: u64, p: &InnerPacket<'_>) -> (Self, bool) {
        let (sp, dp) = ports(p);
        let src = Endpoint {
            addr: p.src,
            port: sp,
        };
        let dst = Endpoint {
            addr: p.dst,
            port: dp,
        };
        Self::of_endpoints(domain, p.proto, src, dst)
    }

    #[inline(always)]
    fn of_endpoints(domain: u64, proto: u8, src: Endpoint, dst: Endpoint) -> (Self, bool) {
        let (src_v6, src_addr) = addr_parts(src.addr);
        let (dst_v6, dst_addr) = addr_parts(dst.addr);
        let (src, dst, sp, dp) = (src_addr, dst_addr, src.port, dst.port);
        let src_first = if !src_v6 && !dst_v6 {
            (src as u64) << 16 | u64::from(sp) <= (dst as u64) << 16 | u64::from(dp)
        } else {
            (src_v6, src, sp) <= (dst_v6, dst, dp)
        };
        let ((lo_v6, lo_addr, lo_port), (hi_v6, hi_addr, hi_port)) = if src_first {
            ((src_v6, src, sp), (dst_v6, dst, dp))
        } else {
            ((dst_v6, dst, dp), (src_v6, src, sp))
        };
        let key = Self {
            domain,
            meta: u64::from(lo_port) << 48
                | u64::from(hi_port) << 32
                | u64::from(proto) << 8
                | u64::from(lo_v6) << 1
                | u64::from(hi_v6),
            lo_addr,
            hi_addr,
        };
        (key, src_first)
    }

    /// IP protocol.
    pub fn proto(&self) -> u8 {
        (self.meta >> 8) as u8
    }

    /// Lower endpoint.
    pub fn lo(&self) -> Endpoint {
        endpoint(self.meta & 2 != 0, self.lo_addr, (self.meta >> 48) as u16)
    }

    /// Higher endpoint.
    pub fn hi(&self) -> Endpoint {
        endpoint(self.meta & 1 != 0, self.hi_addr, (self.meta >> 32) as u16)
    }

    /// The same tuple with no domain: what two mirror sessions of one
    /// connection have in common.
    pub fn without_domain(&self) -> TupleKey {
        TupleKey(Self { domain: 0, ..*self })
    }

    /// The key's hash for the flow index, asked for every packet.
    #[inline]
    pub fn index_hash<S: BuildHasher>(&self, hasher: &S) -> u64 {
        let mut h = hasher.build_hasher();
        self.write_words(&mut h);
        h.finish()
    }

    /// Feeds the key as its three 128-bit words (three multiplies with the
    /// table's hasher), where the derived `Hash` feeds a dozen small writes
    /// (enum tags, lengths, octets).
    #[inline]
    fn write_words<H: Hasher>(&self, h: &mut H) {
        h.write_u128(u128::from(self.domain) << 64 | u128::from(self.meta));
        h.write_u128(self.lo_addr);
        h.write_u128(self.hi_addr);
    }
}

/// A key without its domain ([`FlowKey::without_domain`]), hashed as the
/// flow index hashes keys: the table's own lookups need no particular hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TupleKey(FlowKey);

impl Hash for TupleKey {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.write_words(state);
    }
}

impl Hash for FlowKey {
    /// What `#[derive(Hash)]` on (domain, proto, lo, hi) feeds: the uid
    /// is made of it.
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.domain.hash(state);
        self.proto().hash(state);
        self.lo().hash(state);
        self.hi().hash(state);
    }
}

impl std::fmt::Debug for FlowKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowKey")
            .field("domain", &self.domain)
            .field("proto", &self.proto())
            .field("lo", &self.lo())
            .field("hi", &self.hi())
            .finish()
    }
}

/// An address's family (true: IPv6) and value as a number (IPv4 in the low
/// 32 bits); (family, number) orders as `IpAddr` does.
#[inline(always)]
fn addr_parts(a: IpAddr) -> (bool, u128) {
    match a {
        IpAddr::V4(v4) => (false, u128::from(v4.to_bits())),
        IpAddr::V6(v6) => (true, v6.to_bits()),
    }
}

/// The endpoint `addr_parts` and a port stand for.
#[inline]
fn endpoint(v6: bool, bits: u128, port: u16) -> Endpoint {
    let addr = if v6 {
        IpAddr::V6(Ipv6Addr::from_bits(bits))
    } else {
        IpAddr::V4(Ipv4Addr::from_bits(bits as u32))
    };
    Endpoint { addr, port }
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

    /// The key as it was before it was packed: its derived `Hash` is what
    /// the uid is made of.
    #[derive(Hash)]
    struct DerivedKey {
        domain: u64,
        proto: u8,
        lo: Endpoint,
        hi: Endpoint,
    }

    const CASES: [(&str, u16, &str, u16); 10] = [
        ("10.0.0.1", 80, "10.0.0.2", 1),
        ("10.0.0.2", 1, "10.0.0.1", 80),
        ("10.0.0.1", 80, "10.0.0.1", 79),
        ("10.0.0.1", 80, "10.0.0.1", 80),
        ("9.255.255.255", 9, "10.0.0.0", 8),
        ("10.0.0.1", 80, "::1", 80),
        ("::a00:1", 80, "10.0.0.1", 80),
        ("::ffff:10.0.0.1", 80, "10.0.0.1", 80),
        ("fd00::2", 80, "fd00::1", 81),
        ("fd00::1", 65535, "fd00::1", 0),
    ];

    #[test]
    fn keys_order_hash_and_compare_as_derived() {
        let s = FixedState::with_seed(1);
        for (a, ap, b, bp) in CASES {
            let t = tuple(a, ap, b, bp);
            let (key, src_first) = FlowKey::of_tuple(7, &t);
            assert_eq!(src_first, t.src <= t.dst, "{a}:{ap} {b}:{bp}");
            let (lo, hi) = if t.src <= t.dst {
                (t.src, t.dst)
            } else {
                (t.dst, t.src)
            };
            assert_eq!((key.lo(), key.hi(), key.proto()), (lo, hi, 6));
            let derived = DerivedKey {
                domain: 7,
                proto: 6,
                lo,
                hi,
            };
            assert_eq!(s.hash_one((key, 5i64)), s.hash_one((derived, 5i64)));
            for (c, cp, d, dp) in CASES {
                let other = FlowKey::new(7, &tuple(c, cp, d, dp));
                let same_endpoints = (other.lo(), other.hi()) == (lo, hi);
                assert_eq!(key == other, same_endpoints, "{a} {b} / {c} {d}");
            }
        }
    }

    #[test]
    fn both_directions_share_key_and_steering() {
        let s = FixedState::with_seed(1);
        let a = tuple("10.0.0.1", 40000, "10.0.0.2", 80);
        let b = tuple("10.0.0.2", 80, "10.0.0.1", 40000);
        assert_eq!(FlowKey::new(9, &a), FlowKey::new(9, &b));
        assert_ne!(FlowKey::new(9, &a), FlowKey::new(10, &a));
        assert_eq!(
            FlowKey::new(9, &a).without_domain(),
            FlowKey::new(10, &b).without_domain()
        );
        assert_ne!(
            FlowKey::new(9, &a).without_domain(),
            FlowKey::new(9, &tuple("10.0.0.1", 40001, "10.0.0.2", 80)).without_domain()
        );
        assert_eq!(steering_hash(&a, &s), steering_hash(&b, &s));
    }
}
