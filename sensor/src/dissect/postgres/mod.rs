//! PostgreSQL follower: a connection that opens with an SSLRequest (the
//! 8-byte message with code 80877103) and the server's `S` answer carries
//! TLS from the next byte; the rest of the connection goes to the TLS
//! probe (see [`super::starttls`]).
//!
//! Input: both directions of a TCP stream in order (originator = client).
//! Output: no records; the flow's service is `postgres`.
//!
//! Does not: read the PostgreSQL protocol itself. A connection that starts
//! with anything else is not probed as PostgreSQL; an `N` (or any other)
//! answer ends the dissection.

#[cfg(test)]
mod tests;

use super::starttls::{Dialogue, Follower, Step, probe_prefix};
use super::{Dissector, L4, Limits, Probe, ProbeInput, Protocol, Transports};
use crate::packet::Direction;

/// The PostgreSQL protocol (followed up to its TLS upgrade).
pub static PROTOCOL: Protocol = Protocol {
    name: "postgres",
    transports: Transports {
        tcp: true,
        udp: false,
    },
    ports: &[5432],
    probe,
    new,
};

/// Length 8, then the request code 1234 << 16 | 5679.
const SSL_REQUEST: &[u8] = &[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];

/// The client's SSLRequest.
fn probe(input: &ProbeInput<'_>) -> Probe {
    if input.l4 != L4::Tcp || input.dir != Direction::Originator {
        return Probe::NoMatch;
    }
    probe_prefix(input.data, SSL_REQUEST)
}

fn new(limits: &Limits, _l4: L4) -> Box<dyn Dissector> {
    Box::new(Follower::new(Postgres, *limits))
}

/// One connection's start.
#[derive(Debug)]
struct Postgres;

impl Dialogue for Postgres {
    const TOO_LONG: &'static str = "message_too_long";

    fn step(&mut self, dir: Direction, buf: &[u8]) -> Step {
        match dir {
            Direction::Originator => match probe_prefix(buf, SSL_REQUEST) {
                Probe::Match => Step::Asked(SSL_REQUEST.len()),
                Probe::NeedMore => Step::NeedMore,
                // A plaintext startup: nothing to follow.
                Probe::NoMatch => Step::Done,
            },
            Direction::Responder => match buf.first() {
                Some(b'S') => Step::Accepted(1),
                _ => Step::Done,
            },
        }
    }
}
