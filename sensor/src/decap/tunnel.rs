//! The tunnel context of a packet: every layer of encapsulation that was
//! peeled off, outermost first, in a fixed-size value that costs no
//! allocation on the packet path.
//!
//! From it come two identities: the *domain* (what separates address spaces:
//! VNIs, VLAN ids, ERSPAN sessions; part of the flow key) and the *vantage*
//! (which mirror session delivered the packet; used to recognise the same
//! packet delivered twice when both ends of a connection are mirrored).
//! Outer UDP ports are never part of either: AWS hashes them per direction.

use arrayvec::ArrayVec;
use nucleus_proto::{AwsGwlb, GeneveOption, TunnelLayer};
use std::hash::{BuildHasher, Hash, Hasher};
use std::net::IpAddr;

/// Hard upper bound on the layers kept per packet; the configured
/// `max_depth` may only lower it.
pub const MAX_TUNNEL_LAYERS: usize = 8;
/// GENEVE options kept per layer beyond the AWS ones (the rest are counted).
pub const MAX_GENEVE_OPTIONS: usize = 4;

/// Outer source and destination of a tunnel layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OuterAddrs {
    /// Outer source address.
    pub src: IpAddr,
    /// Outer destination address.
    pub dst: IpAddr,
}

/// AWS Gateway Load Balancer GENEVE options (class 0x0108).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct GwlbIds {
    /// Type 1: GWLB endpoint ENI id.
    pub endpoint_id: Option<u64>,
    /// Type 2: attachment id.
    pub attachment_id: Option<u64>,
    /// Type 3: flow cookie.
    pub flow_cookie: Option<u32>,
}

impl GwlbIds {
    /// True when at least one AWS option was present.
    pub fn is_present(&self) -> bool {
        self.endpoint_id.is_some() || self.attachment_id.is_some() || self.flow_cookie.is_some()
    }
}

/// One peeled layer, compact and `Copy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encap {
    /// VXLAN with its VNI.
    Vxlan {
        /// VXLAN network identifier.
        vni: u32,
        /// Outer IP addresses.
        outer: OuterAddrs,
    },
    /// GENEVE with its VNI and options.
    Geneve {
        /// Virtual network identifier.
        vni: u32,
        /// Outer IP addresses.
        outer: OuterAddrs,
        /// AWS GWLB options.
        gwlb: GwlbIds,
        /// Other options (class, type, data length in bytes).
        options: [(u16, u8, u16); MAX_GENEVE_OPTIONS],
        /// How many entries of `options` are used.
        option_count: u8,
    },
    /// 802.1Q / 802.1ad tag.
    Vlan {
        /// VLAN id.
        id: u16,
        /// Tag protocol identifier.
        tpid: u16,
    },
    /// MPLS label.
    Mpls {
        /// The label.
        label: u32,
    },
    /// GRE (not ERSPAN).
    Gre {
        /// Outer IP addresses.
        outer: OuterAddrs,
        /// Payload protocol type.
        protocol: u16,
        /// Key, when present.
        key: Option<u32>,
    },
    /// ERSPAN type I, II or III.
    Erspan {
        /// 1, 2 or 3.
        version: u8,
        /// Session id (types II and III).
        session_id: Option<u16>,
        /// Original VLAN (types II and III).
        vlan: Option<u16>,
        /// Outer IP addresses.
        outer: OuterAddrs,
    },
    /// IP in IP.
    IpInIp {
        /// Outer IP addresses.
        outer: OuterAddrs,
    },
    /// Teredo (IPv6 in UDP, RFC 4380).
    Teredo {
        /// Outer IP addresses.
        outer: OuterAddrs,
    },
    /// AYIYA (IP in UDP).
    Ayiya {
        /// Outer IP addresses.
        outer: OuterAddrs,
    },
    /// GTP-U (user plane of mobile networks).
    Gtp {
        /// Tunnel endpoint id (per direction, so not part of the domain).
        teid: u32,
        /// Outer IP addresses.
        outer: OuterAddrs,
    },
}

/// The identities a packet's tunnel context gives it (all 0 when the packet
/// was not encapsulated).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ContextIds {
    /// See [`TunnelContext::domain_hash`].
    pub domain: u64,
    /// See [`TunnelContext::domain_hash_without_vlans`].
    pub novlan_domain: u64,
    /// See [`TunnelContext::vantage_hash`].
    pub vantage: u64,
}

fn unordered(o: OuterAddrs) -> (IpAddr, IpAddr) {
    if o.src <= o.dst {
        (o.src, o.dst)
    } else {
        (o.dst, o.src)
    }
}

/// Hashes a value into the domain and, when it is kept apart (there are VLAN
/// tags), into the domain without VLANs.
#[inline]
fn hash_domains<H: Hasher>(value: impl Hash, domain: &mut H, novlan: &mut Option<H>) {
    value.hash(domain);
    if let Some(h) = novlan {
        value.hash(h);
    }
}

/// All layers of one packet, outermost first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TunnelContext {
    layers: ArrayVec<Encap, MAX_TUNNEL_LAYERS>,
}

impl TunnelContext {
    /// An empty context (a packet that was not encapsulated).
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets every layer, keeping the storage.
    pub fn clear(&mut self) {
        self.layers.clear();
    }

    /// Adds a layer; false when the context is full.
    pub fn push(&mut self, layer: Encap) -> bool {
        self.layers.try_push(layer).is_ok()
    }

    /// Number of layers.
    pub fn len(&self) -> usize {
        self.layers.len()
    }

    /// True when the packet was not encapsulated.
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }

    /// The layers, outermost first.
    pub fn layers(&self) -> &[Encap] {
        &self.layers
    }

    /// Hashes what separates address spaces: VNIs, VLAN ids, ERSPAN session
    /// and original VLAN. Never outer addresses, ports, MPLS labels (which are
    /// per direction) nor GWLB flow cookies (which are per flow).
    pub fn domain_hash<S: BuildHasher>(&self, hasher: &S) -> u64 {
        self.identities(hasher).domain
    }

    /// The domain without VLAN ids: what stays equal when a router answers
    /// on another VLAN of a trunk.
    pub fn domain_hash_without_vlans<S: BuildHasher>(&self, hasher: &S) -> u64 {
        self.identities(hasher).novlan_domain
    }

    /// Hashes which mirror session delivered the packet: the unordered pair of
    /// outer addresses of every IP tunnel layer (so both directions of an
    /// overlay between two tunnel endpoints are one vantage) and the VNIs.
    pub fn vantage_hash<S: BuildHasher>(&self, hasher: &S) -> u64 {
        self.identities(hasher).vantage
    }

    /// The three identities at once, in one pass over the layers (the flow
    /// table needs all three for every encapsulated packet).
    pub fn identities<S: BuildHasher>(&self, hasher: &S) -> ContextIds {
        if self.layers.is_empty() {
            return ContextIds::default();
        }
        let mut domain = hasher.build_hasher();
        // Without VLAN tags (the mirrored case) both domains hash the same
        // values: one hasher serves both.
        let mut novlan = self
            .layers
            .iter()
            .any(|l| matches!(l, Encap::Vlan { .. }))
            .then(|| hasher.build_hasher());
        let mut vantage = hasher.build_hasher();
        for layer in &self.layers {
            match *layer {
                Encap::Vxlan { vni, outer } => {
                    hash_domains((1u8, vni), &mut domain, &mut novlan);
                    vni.hash(&mut vantage);
                    unordered(outer).hash(&mut vantage);
                }
                Encap::Geneve { vni, outer, .. } => {
                    hash_domains((2u8, vni), &mut domain, &mut novlan);
                    vni.hash(&mut vantage);
                    unordered(outer).hash(&mut vantage);
                }
                Encap::Vlan { id, .. } => (3u8, id).hash(&mut domain),
                Encap::Erspan {
                    session_id,
                    vlan,
                    outer,
                    ..
                } => {
                    hash_domains((4u8, session_id, vlan), &mut domain, &mut novlan);
                    session_id.hash(&mut vantage);
                    unordered(outer).hash(&mut vantage);
                }
                Encap::Gre { outer, .. }
                | Encap::IpInIp { outer }
                | Encap::Teredo { outer }
                | Encap::Ayiya { outer }
                | Encap::Gtp { outer, .. } => {
                    unordered(outer).hash(&mut vantage);
                }
                Encap::Mpls { .. } => {}
            }
        }
        let domain = domain.finish() | 1;
        ContextIds {
            domain,
            novlan_domain: novlan.map_or(domain, |h| h.finish() | 1),
            vantage: vantage.finish() | 1,
        }
    }

    /// The record view of the layers.
    pub fn to_records(&self) -> Vec<TunnelLayer> {
        self.layers.iter().map(encap_to_record).collect()
    }
}

fn encap_to_record(layer: &Encap) -> TunnelLayer {
    match *layer {
        Encap::Vxlan { vni, outer } => TunnelLayer::Vxlan {
            vni,
            outer_src: outer.src,
            outer_dst: outer.dst,
        },
        Encap::Geneve {
            vni,
            outer,
            gwlb,
            options,
            option_count,
        } => TunnelLayer::Geneve {
            vni,
            outer_src: outer.src,
            outer_dst: outer.dst,
            aws_gwlb: gwlb.is_present().then(|| AwsGwlb {
                endpoint_id: gwlb.endpoint_id.map(|v| format!("vpce-{v:017x}")),
                attachment_id: gwlb.attachment_id.map(|v| format!("0x{v:016x}")),
                flow_cookie: gwlb.flow_cookie,
            }),
            options: options
                .iter()
                .take(usize::from(option_count))
                .map(|&(class, option_type, len)| GeneveOption {
                    class,
                    option_type,
                    len,
                })
                .collect(),
        },
        Encap::Vlan { id, tpid } => TunnelLayer::Vlan { id, tpid },
        Encap::Mpls { label } => TunnelLayer::Mpls { label },
        Encap::Gre {
            outer,
            protocol,
            key,
        } => TunnelLayer::Gre {
            outer_src: outer.src,
            outer_dst: outer.dst,
            protocol,
            key,
        },
        Encap::Erspan {
            version,
            session_id,
            vlan,
            outer,
        } => TunnelLayer::Erspan {
            version,
            session_id,
            vlan,
            outer_src: outer.src,
            outer_dst: outer.dst,
        },
        Encap::IpInIp { outer } => TunnelLayer::IpInIp {
            outer_src: outer.src,
            outer_dst: outer.dst,
        },
        Encap::Teredo { outer } => TunnelLayer::Teredo {
            outer_src: outer.src,
            outer_dst: outer.dst,
        },
        Encap::Ayiya { outer } => TunnelLayer::Ayiya {
            outer_src: outer.src,
            outer_dst: outer.dst,
        },
        Encap::Gtp { teid, outer } => TunnelLayer::Gtp {
            teid,
            outer_src: outer.src,
            outer_dst: outer.dst,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(a: &str, b: &str) -> OuterAddrs {
        OuterAddrs {
            src: a.parse().unwrap(),
            dst: b.parse().unwrap(),
        }
    }

    #[test]
    fn domain_ignores_outer_addresses_but_not_vni() {
        let s = foldhash::fast::FixedState::with_seed(7);
        let mut a = TunnelContext::new();
        a.push(Encap::Vxlan {
            vni: 5,
            outer: addrs("10.0.0.1", "10.0.0.9"),
        });
        let mut b = TunnelContext::new();
        b.push(Encap::Vxlan {
            vni: 5,
            outer: addrs("10.0.0.2", "10.0.0.9"),
        });
        let mut c = TunnelContext::new();
        c.push(Encap::Vxlan {
            vni: 6,
            outer: addrs("10.0.0.1", "10.0.0.9"),
        });
        assert_eq!(a.domain_hash(&s), b.domain_hash(&s));
        assert_ne!(a.domain_hash(&s), c.domain_hash(&s));
        assert_ne!(a.vantage_hash(&s), b.vantage_hash(&s));
        assert_eq!(TunnelContext::new().domain_hash(&s), 0);
    }

    #[test]
    fn identities_separate_vlans_sessions_and_vantages() {
        let s = foldhash::fast::FixedState::with_seed(7);
        let vxlan = Encap::Vxlan {
            vni: 9,
            outer: addrs("10.0.0.2", "10.0.0.1"),
        };
        let erspan = Encap::Erspan {
            version: 2,
            session_id: Some(3),
            vlan: Some(4),
            outer: addrs("10.0.0.3", "10.0.0.4"),
        };
        let mut tagged = TunnelContext::new();
        tagged.push(Encap::Vlan {
            id: 5,
            tpid: 0x8100,
        });
        tagged.push(vxlan);
        tagged.push(erspan);
        let mut untagged = TunnelContext::new();
        untagged.push(vxlan);
        untagged.push(erspan);
        let (t, u) = (tagged.identities(&s), untagged.identities(&s));
        // VLANs are part of the domain only; not of the VLAN-less domain or
        // of the vantage.
        assert_ne!(t.domain, u.domain);
        assert_eq!(t.novlan_domain, u.novlan_domain);
        assert_eq!(u.domain, u.novlan_domain);
        assert_eq!(t.vantage, u.vantage);
        // Another ERSPAN session is another domain and another vantage.
        let mut other = TunnelContext::new();
        other.push(vxlan);
        other.push(Encap::Erspan {
            version: 2,
            session_id: Some(8),
            vlan: Some(4),
            outer: addrs("10.0.0.3", "10.0.0.4"),
        });
        let o = other.identities(&s);
        assert_ne!(o.domain, u.domain);
        assert_ne!(o.vantage, u.vantage);
        assert_eq!(TunnelContext::new().identities(&s), ContextIds::default());
    }

    #[test]
    fn vantage_is_the_same_in_both_overlay_directions() {
        let s = foldhash::fast::FixedState::with_seed(7);
        let mut a = TunnelContext::new();
        a.push(Encap::Vxlan {
            vni: 5,
            outer: addrs("10.0.0.1", "10.0.0.2"),
        });
        let mut b = TunnelContext::new();
        b.push(Encap::Vxlan {
            vni: 5,
            outer: addrs("10.0.0.2", "10.0.0.1"),
        });
        assert_eq!(a.vantage_hash(&s), b.vantage_hash(&s));
    }

    #[test]
    fn gwlb_ids_render_as_aws_names_them() {
        let mut t = TunnelContext::new();
        t.push(Encap::Geneve {
            vni: 0,
            outer: addrs("10.0.0.1", "10.0.0.2"),
            gwlb: GwlbIds {
                endpoint_id: Some(0x0123_4567_89ab_cdef),
                attachment_id: Some(1),
                flow_cookie: Some(42),
            },
            options: [(0, 0, 0); MAX_GENEVE_OPTIONS],
            option_count: 0,
        });
        let json = serde_json::to_string(&t.to_records()).unwrap();
        assert!(
            json.contains(r#""endpoint_id":"vpce-00123456789abcdef""#),
            "{json}"
        );
        assert!(json.contains(r#""flow_cookie":42"#), "{json}");
    }
}
