//! The identities of recently seen tunnel contexts.
//!
//! Owns: a small cache from a packet's tunnel layers to their identities
//! (domain, VLAN-less domain, vantage). Input: tunnel contexts. Output:
//! their [`ContextIds`], equal to what [`TunnelContext::identities`]
//! computes. Does not: define the identities (`decap::tunnel` does); it
//! only avoids recomputing them.
//!
//! Every encapsulated packet needs the three hashes of its layers. The
//! packets of a few mirror sessions interleave (and each direction of a
//! session has its own outer addresses), so remembering only the last
//! context misses on a large share of packets. The common contexts pack
//! into two numbers: one VXLAN layer between IPv4 tunnel endpoints (AWS
//! Traffic Mirroring to an NLB or an ENI), exactly; and the VXLAN packet a
//! Gateway Load Balancer wraps in GENEVE, IPv4 everywhere, without the
//! GENEVE options. Those options (the flow cookie, one per flow, among
//! them) do not enter the identities (see `TunnelContext::identities`), so
//! equal numbers are layers with equal identities. Packed contexts are kept
//! in a small two-way associative table and found with two comparisons of
//! numbers. Any other context is compared with the last such one.

use crate::decap::tunnel::{ContextIds, Encap, OuterAddrs, TunnelContext};
use std::hash::BuildHasher;
use std::net::IpAddr;

/// Sets of the packed table (a power of two), two contexts each. Contexts
/// crowding one set only cost recomputations.
const SETS: usize = 64;

/// A packed context ((0, 0): none).
type Key = (u128, u64);

/// A packed context and its identities.
type Packed = (Key, ContextIds);

/// Layers → identities (see the module documentation).
#[derive(Debug)]
pub(super) struct ContextCache {
    /// Packed contexts, two per set, the most recently added first.
    packed: Box<[[Packed; 2]; SETS]>,
    /// The last other context and its identities.
    other: (Vec<Encap>, ContextIds),
}

impl ContextCache {
    /// An empty cache.
    pub(super) fn new() -> Self {
        Self {
            packed: Box::new([[((0, 0), ContextIds::default()); 2]; SETS]),
            other: (Vec::new(), ContextIds::default()),
        }
    }

    /// The identities of `ctx` as `hasher` computes them. The cache keeps
    /// no hasher: its owner passes the same one on every call.
    #[inline]
    pub(super) fn identities<S: BuildHasher>(
        &mut self,
        ctx: &TunnelContext,
        hasher: &S,
    ) -> ContextIds {
        let Some(packed) = pack(ctx.layers()) else {
            return self.other_identities(ctx, hasher);
        };
        // Fibonacci hashing: the top bits of the product mix every field.
        let (wide, narrow) = packed;
        let mixed =
            (wide as u64 ^ (wide >> 64) as u64 ^ narrow).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let Some(set) = self
            .packed
            .get_mut((mixed >> (64 - SETS.trailing_zeros())) as usize)
        else {
            return ctx.identities(hasher);
        };
        match set {
            [(k, ids), _] | [_, (k, ids)] if *k == packed => *ids,
            _ => {
                let ids = ctx.identities(hasher);
                set[1] = set[0];
                set[0] = (packed, ids);
                ids
            }
        }
    }

    /// The identities of a context that does not pack.
    fn other_identities<S: BuildHasher>(&mut self, ctx: &TunnelContext, hasher: &S) -> ContextIds {
        let layers = ctx.layers();
        if layers.is_empty() {
            return ContextIds::default();
        }
        let (kept, ids) = &mut self.other;
        if kept.as_slice() != layers {
            *ids = ctx.identities(hasher);
            kept.clear();
            kept.extend_from_slice(layers);
        }
        *ids
    }
}

/// A single VXLAN layer between IPv4 endpoints, or GENEVE carrying such
/// a VXLAN layer between IPv4 endpoints (a GWLB's), as two numbers, never
/// both 0: equal numbers are layers with equal identities (see the module
/// documentation).
fn pack(layers: &[Encap]) -> Option<Key> {
    let v4 = |o: &OuterAddrs| match (o.src, o.dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            Some(u64::from(s.to_bits()) << 32 | u64::from(d.to_bits()))
        }
        _ => None,
    };
    match layers {
        [Encap::Vxlan { vni, outer }] => {
            Some((1 << 96 | u128::from(*vni) << 64 | u128::from(v4(outer)?), 0))
        }
        [
            Encap::Geneve {
                vni: geneve_vni,
                outer: geneve_outer,
                ..
            },
            Encap::Vxlan { vni, outer },
        ] => Some((
            u128::from(v4(geneve_outer)?) << 64 | u128::from(v4(outer)?),
            1 << 63 | u64::from(*geneve_vni) << 24 | u64::from(*vni),
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use foldhash::fast::FixedState;

    fn vxlan(vni: u32, src: &str, dst: &str) -> TunnelContext {
        let mut t = TunnelContext::new();
        t.push(Encap::Vxlan {
            vni,
            outer: OuterAddrs {
                src: src.parse().unwrap(),
                dst: dst.parse().unwrap(),
            },
        });
        t
    }

    /// A GWLB context: GENEVE (with its flow cookie) around VXLAN.
    fn gwlb(cookie: u32, geneve_src: &str, vni: u32) -> TunnelContext {
        let mut t = TunnelContext::new();
        t.push(Encap::Geneve {
            vni: 0,
            outer: OuterAddrs {
                src: geneve_src.parse().unwrap(),
                dst: "10.0.200.10".parse().unwrap(),
            },
            gwlb: crate::decap::tunnel::GwlbIds {
                endpoint_id: Some(1),
                attachment_id: Some(2),
                flow_cookie: Some(cookie),
            },
            options: Default::default(),
            option_count: 0,
        });
        t.push(Encap::Vxlan {
            vni,
            outer: OuterAddrs {
                src: "10.0.1.10".parse().unwrap(),
                dst: "10.0.2.20".parse().unwrap(),
            },
        });
        t
    }

    #[test]
    fn gwlb_contexts_share_an_entry_across_cookies_and_keep_their_identities() {
        let s = FixedState::with_seed(3);
        let mut cache = ContextCache::new();
        let contexts: Vec<TunnelContext> = (0..300u32)
            .map(|i| gwlb(i * 7919, &format!("10.0.64.{}", i % 3), 100 + i % 5))
            .collect();
        for _ in 0..2 {
            for c in &contexts {
                assert_eq!(cache.identities(c, &s), c.identities(&s));
            }
        }
        // Different cookies, one entry; different nodes or VNIs, others.
        assert_eq!(
            pack(gwlb(1, "10.0.64.1", 7).layers()),
            pack(gwlb(2, "10.0.64.1", 7).layers())
        );
        assert_ne!(
            pack(gwlb(1, "10.0.64.1", 7).layers()),
            pack(gwlb(1, "10.0.64.2", 7).layers())
        );
        assert_ne!(
            pack(gwlb(1, "10.0.64.1", 7).layers()),
            pack(gwlb(1, "10.0.64.1", 8).layers())
        );
        assert_ne!(
            pack(gwlb(1, "10.0.64.1", 7).layers()),
            pack(vxlan(7, "10.0.1.10", "10.0.2.20").layers())
        );
    }

    #[test]
    fn gives_what_the_context_computes_across_interleaved_sessions() {
        let s = FixedState::with_seed(3);
        let mut cache = ContextCache::new();
        let contexts: Vec<TunnelContext> = (0..200u32)
            .map(|i| vxlan(i % 7, &format!("10.0.{}.1", i % 13), "10.9.9.9"))
            .chain([TunnelContext::new()])
            .collect();
        let mut stacked = vxlan(1, "10.0.0.1", "10.0.0.2");
        stacked.push(Encap::Vlan {
            id: 7,
            tpid: 0x8100,
        });
        let contexts: Vec<TunnelContext> = contexts
            .into_iter()
            .chain([
                stacked,
                vxlan(1, "fd00::1", "fd00::2"),
                vxlan(1, "10.0.0.1", "10.0.0.2"),
            ])
            .collect();
        // Twice over, so later rounds answer from the slots.
        for _ in 0..2 {
            for c in &contexts {
                assert_eq!(cache.identities(c, &s), c.identities(&s));
            }
        }
    }
}
