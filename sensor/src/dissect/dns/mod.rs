//! DNS dissector (being written: the skeleton registers the protocol and
//! recognises nothing yet).

use super::{Dissector, L4, Limits, Probe, ProbeInput, Protocol, Transports};

/// The DNS protocol.
pub static PROTOCOL: Protocol = Protocol {
    name: "dns",
    transports: Transports {
        tcp: true,
        udp: true,
    },
    ports: &[53],
    probe,
    new,
};

fn probe(_input: &ProbeInput<'_>) -> Probe {
    Probe::NoMatch
}

fn new(_limits: &Limits, _l4: L4) -> Box<dyn Dissector> {
    Box::new(Skeleton)
}

#[derive(Debug)]
struct Skeleton;

impl Dissector for Skeleton {
    fn data(
        &mut self,
        _cx: &mut super::Context<'_>,
        _dir: crate::packet::Direction,
        _data: &[u8],
    ) -> super::Want {
        super::Want::Done
    }

    fn gap(
        &mut self,
        _cx: &mut super::Context<'_>,
        _dir: crate::packet::Direction,
        _len: u64,
    ) -> super::Want {
        super::Want::Done
    }

    fn close(&mut self, _cx: &mut super::Context<'_>) {}
}
