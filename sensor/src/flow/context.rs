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
//! context misses on a large share of packets. The common context, one
//! VXLAN layer between IPv4 tunnel endpoints (AWS Traffic Mirroring), packs
//! exactly into one number: those are kept in a small two-way associative
//! table and found with two comparisons of numbers. Any other context is
//! compared with the last such one.

use crate::decap::tunnel::{ContextIds, Encap, OuterAddrs, TunnelContext};
use std::hash::BuildHasher;
use std::net::IpAddr;

/// Sets of the packed table (a power of two), two contexts each. Contexts
/// crowding one set only cost recomputations.
const SETS: usize = 64;

/// A packed context (0: none) and its identities.
type Packed = (u128, ContextIds);

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
            packed: Box::new([[(0, ContextIds::default()); 2]; SETS]),
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
        let mixed = (packed as u64 ^ (packed >> 64) as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
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

/// A single VXLAN layer between IPv4 endpoints as one number, never 0:
/// equal numbers are equal layers.
fn pack(layers: &[Encap]) -> Option<u128> {
    let [
        Encap::Vxlan {
            vni,
            outer:
                OuterAddrs {
                    src: IpAddr::V4(src),
                    dst: IpAddr::V4(dst),
                },
        },
    ] = layers
    else {
        return None;
    };
    Some(
        1 << 96
            | u128::from(*vni) << 64
            | u128::from(src.to_bits()) << 32
            | u128::from(dst.to_bits()),
    )
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
