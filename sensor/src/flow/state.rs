//! The state kept per flow and the small types the table passes around:
//! per-direction counters, recent packet identities (to recognise copies
//! from a second mirror session), vantages, aliases.

use super::app::AppState;
use super::key::{Endpoint, FlowKey, PacketTuple};
use super::tcp_state::TcpConnection;
use crate::decap::tunnel::Encap;
use crate::metrics::{Counters, Drop};
use arrayvec::ArrayVec;
use std::sync::Arc;

/// Vantage points (mirror sessions) listed per flow.
pub(super) const MAX_VANTAGES: usize = 4;
/// Recent packet identities kept per flow to recognise copies.
pub(super) const RECENT: usize = 8;
/// Bytes of the transport layer that identify a packet.
pub(super) const FINGERPRINT_L4_BYTES: usize = 48;

#[derive(Debug, Clone, Copy, Default)]
pub(super) struct DirStats {
    pub(super) pkts: u64,
    pub(super) ip_bytes: u64,
    pub(super) payload_bytes: u64,
    pub(super) tcp_flags: u8,
    pub(super) truncated_bytes: u64,
}

#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Recent {
    pub(super) fingerprint: u64,
    pub(super) vantage: u64,
    pub(super) ts_us: i64,
}

/// What identifies one packet to the table.
#[derive(Debug, Clone, Copy)]
pub(super) struct Identity {
    pub(super) key: FlowKey,
    pub(super) tuple: PacketTuple,
    /// The domain without VLAN ids.
    pub(super) novlan_domain: u64,
    /// Hash of the packet's own content (0 when not encapsulated).
    pub(super) fingerprint: u64,
    /// Which mirror session delivered it (0 when not encapsulated).
    pub(super) vantage: u64,
    pub(super) ts_us: i64,
}

/// How a packet of an unknown key joined an existing flow.
pub(super) enum Adoption {
    /// It did not.
    None,
    /// A copy from a second mirror session: accounted, not counted again.
    Duplicate,
    /// The answer seen on another VLAN: process it as part of this flow.
    Alias(u32),
}

/// One tracked flow.
#[derive(Debug)]
pub(super) struct Flow {
    pub(super) key: FlowKey,
    /// Keys of the same connection in other domains (at most
    /// `MAX_VANTAGES - 1`; empty, so unallocated, for most flows).
    pub(super) aliases: Vec<FlowKey>,
    pub(super) proto: u8,
    pub(super) orig: Endpoint,
    pub(super) resp: Endpoint,
    /// `orig` is the key's `lo` endpoint: a packet comes from the
    /// originator exactly when its sender is on the same side of the key
    /// (`FlowKey::of_tuple`), one comparison of booleans instead of
    /// endpoints. Kept in step with `orig` wherever the roles change.
    pub(super) orig_is_lo: bool,
    /// Roles were swapped from the first packet's (Zeek's `^`).
    pub(super) flipped: bool,
    /// The domain without VLAN ids.
    pub(super) novlan_domain: u64,
    pub(super) first_us: i64,
    pub(super) last_us: i64,
    pub(super) dirs: [DirStats; 2],
    pub(super) tcp: Option<TcpConnection>,
    /// The layers the flow arrived in, shared with every flow that arrived
    /// in the same ones (one allocation per tunnel context, not per flow).
    pub(super) tunnel: Arc<[Encap]>,
    pub(super) vantages: ArrayVec<u64, MAX_VANTAGES>,
    pub(super) recent: [Recent; RECENT],
    pub(super) recent_next: usize,
    pub(super) duplicate_pkts: u64,
    /// The application layer: protocol, reassembly, dissector.
    pub(super) app: AppSlot,
    /// The protocol, once identified.
    pub(super) service: Option<&'static str>,
    /// Application records emitted so far.
    pub(super) app_seq: u64,
    /// The flow's uid and Community ID, computed at its first application
    /// record and reused by the others and by the flow record.
    pub(super) ident: Option<Box<(String, String)>>,
}

/// A flow's application layer.
#[derive(Debug, Default)]
pub(super) enum AppSlot {
    /// No payload seen yet.
    #[default]
    NotYet,
    /// Probing or dissecting.
    Active(Box<AppState>),
    /// Nothing more wanted (no protocol matched, the dissector is done, or
    /// dissection is off).
    Finished,
}

impl Flow {
    pub(super) fn is_copy(
        &self,
        fingerprint: u64,
        vantage: u64,
        ts_us: i64,
        window_us: i64,
    ) -> bool {
        self.recent.iter().any(|r| {
            r.fingerprint == fingerprint
                && r.vantage != vantage
                && r.vantage != 0
                && (ts_us - r.ts_us).abs() <= window_us
        })
    }

    pub(super) fn remember(&mut self, fingerprint: u64, vantage: u64, ts_us: i64) {
        self.recent[self.recent_next] = Recent {
            fingerprint,
            vantage,
            ts_us,
        };
        self.recent_next = (self.recent_next + 1) % RECENT;
    }

    pub(super) fn add_vantage(&mut self, vantage: u64, counters: &mut Counters) {
        if vantage != 0
            && !self.vantages.contains(&vantage)
            && self.vantages.try_push(vantage).is_err()
        {
            counters.drop_n(Drop::VantagesCap, 1);
        }
    }
}

/// A set of ports as a bitmap: one lookup, no hashing or list search.
#[derive(Debug, Clone)]
pub(crate) struct PortSet(Box<[u64; 1024]>);

impl PortSet {
    pub(crate) fn new(ports: &[u16]) -> Self {
        let mut bits = Box::new([0u64; 1024]);
        for &p in ports {
            bits[usize::from(p >> 6)] |= 1 << (p & 63);
        }
        Self(bits)
    }

    pub(crate) fn contains(&self, p: u16) -> bool {
        self.0[usize::from(p >> 6)] & (1 << (p & 63)) != 0
    }
}
