//! STUN follower: a UDP flow that starts with STUN (RFC 8489) connectivity
//! checks, as WebRTC's ICE does before DTLS on the same 5-tuple, is
//! followed until its first DTLS datagram, which is handed to a fresh
//! probe (the flow stage then identifies DTLS; see [`Want::Reprobe`]).
//!
//! Input: one datagram at a time. RFC 7983 §7 demultiplexes by the first
//! byte: 0-3 STUN, 20-63 DTLS, others (RTP, TURN channels) are ignored
//! here. Output: no records; the flow's service is `stun`.
//!
//! Does not: decode STUN attributes. Past `Limits::max_buffered_bytes` of
//! datagrams without DTLS, the flow is left alone (media keeps flowing
//! without a visible handshake).

#[cfg(test)]
mod tests;

use super::{Context, Dissector, L4, Limits, Probe, ProbeInput, Protocol, Transports, Want};
use crate::packet::Direction;

/// The STUN protocol (followed up to DTLS).
pub static PROTOCOL: Protocol = Protocol {
    name: "stun",
    transports: Transports {
        tcp: false,
        udp: true,
    },
    ports: &[3478],
    probe,
    new,
};

/// RFC 8489 §5.
const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];
const STUN_HEADER: usize = 20;

/// A STUN message: the two top bits clear, the magic cookie, and an
/// attribute length (a multiple of 4) that is the rest of the datagram.
fn is_stun(d: &[u8]) -> bool {
    let len = d
        .get(2..4)
        .map(|l| usize::from(u16::from_be_bytes([l[0], l[1]])));
    d.first().is_some_and(|b| b & 0xc0 == 0)
        && d.get(4..8) == Some(&MAGIC_COOKIE[..])
        && len.is_some_and(|l| l % 4 == 0 && l + STUN_HEADER == d.len())
}

fn probe(input: &ProbeInput<'_>) -> Probe {
    if input.l4 == L4::Udp && is_stun(input.data) {
        Probe::Match
    } else {
        Probe::NoMatch
    }
}

fn new(limits: &Limits, _l4: L4) -> Box<dyn Dissector> {
    Box::new(Stun {
        cap: limits.max_buffered_bytes,
        seen: 0,
        dtls: [Vec::new(), Vec::new()],
    })
}

/// One flow's follower.
#[derive(Debug)]
struct Stun {
    cap: usize,
    /// Bytes of datagrams read before DTLS.
    seen: usize,
    /// The first DTLS datagram, to hand over.
    dtls: [Vec<u8>; 2],
}

impl Dissector for Stun {
    fn data(&mut self, _cx: &mut Context<'_>, dir: Direction, data: &[u8]) -> Want {
        if data.first().is_some_and(|b| (20..=63).contains(b)) {
            self.dtls[dir as usize] = data.to_vec();
            return Want::Reprobe;
        }
        self.seen = self.seen.saturating_add(data.len());
        if self.seen > self.cap {
            Want::Done
        } else {
            Want::More
        }
    }

    fn gap(&mut self, _cx: &mut Context<'_>, _dir: Direction, _len: u64) -> Want {
        Want::More
    }

    fn close(&mut self, _cx: &mut Context<'_>) {}

    fn handover(&mut self, dir: Direction) -> Vec<u8> {
        std::mem::take(&mut self.dtls[dir as usize])
    }
}
