//! XMPP follower: reads an XMPP stream (RFC 6120, client-to-server and
//! server-to-server) only as far as the initiator's `<starttls/>` and the
//! receiver's `<proceed/>` (§5.4), then hands the rest of the connection
//! to the TLS probe (see [`super::starttls`]).
//!
//! Input: both directions of a TCP stream in order (originator =
//! initiating entity), read one XML tag at a time (character data before a
//! tag goes with it). Output: no records; the flow's service is `xmpp`.
//!
//! Does not: parse XML beyond tag names, or read stanzas. SASL
//! authentication before any STARTTLS (`<auth`) or a `<failure` answer to
//! STARTTLS ends the dissection.

#[cfg(test)]
mod tests;

use super::starttls::{Dialogue, Follower, Step};
use super::{Dissector, L4, Limits, Probe, ProbeInput, Protocol, Transports};
use crate::packet::Direction;

/// The XMPP protocol (followed up to STARTTLS).
pub static PROTOCOL: Protocol = Protocol {
    name: "xmpp",
    transports: Transports {
        tcp: true,
        udp: false,
    },
    ports: &[5222, 5269],
    probe,
    new,
};

const STREAM: &[u8] = b"<stream:stream";
const XML_DECL: &[u8] = b"<?xml";

/// A stream header, `<stream:stream`, optionally after an XML declaration,
/// from either side.
fn probe(input: &ProbeInput<'_>) -> Probe {
    if input.l4 != L4::Tcp {
        return Probe::NoMatch;
    }
    let d = input.data;
    let rest = match super::starttls::probe_prefix(d, XML_DECL) {
        Probe::NeedMore => return Probe::NeedMore,
        Probe::NoMatch => d,
        Probe::Match => match memchr::memmem::find(d, b"?>") {
            Some(end) => d.get(end + 2..).unwrap_or_default().trim_ascii_start(),
            None => return Probe::NeedMore,
        },
    };
    if rest.is_empty() {
        return Probe::NeedMore;
    }
    super::starttls::probe_prefix(rest, STREAM)
}

fn new(limits: &Limits, _l4: L4) -> Box<dyn Dissector> {
    Box::new(Follower::new(Xmpp::default(), *limits))
}

/// One XMPP stream's dialogue.
#[derive(Debug, Default)]
struct Xmpp {
    /// The initiator's `<starttls>` is open (not self-closed).
    starttls_open: bool,
    /// The receiver's `<proceed>` is open (not self-closed).
    proceed_open: bool,
}

/// The name of the tag at the end of `unit` and whether it closes itself.
fn tag(unit: &[u8]) -> Option<(&[u8], bool)> {
    let lt = memchr::memrchr(b'<', unit)?;
    let inner = unit.get(lt + 1..unit.len().checked_sub(1)?)?;
    // A closing tag's name starts with its '/'.
    let name_end = inner
        .iter()
        .skip(1)
        .position(|b| b.is_ascii_whitespace() || *b == b'/')
        .map_or(inner.len(), |i| i + 1);
    let name = inner.get(..name_end)?;
    Some((name, inner.ends_with(b"/")))
}

/// `name` without its namespace prefix.
fn local(name: &[u8]) -> &[u8] {
    match memchr::memchr(b':', name) {
        Some(i) => name.get(i + 1..).unwrap_or_default(),
        None => name,
    }
}

impl Dialogue for Xmpp {
    const TOO_LONG: &'static str = "tag_too_long";

    fn step(&mut self, dir: Direction, buf: &[u8]) -> Step {
        let Some(gt) = memchr::memchr(b'>', buf) else {
            return Step::NeedMore;
        };
        let n = gt + 1;
        let Some((name, closed)) = buf.get(..n).and_then(tag) else {
            return Step::Malformed("malformed_tag");
        };
        match dir {
            Direction::Originator => match name {
                b"starttls" if closed => Step::Asked(n),
                b"starttls" => {
                    self.starttls_open = true;
                    Step::Read(n)
                }
                b"/starttls" if self.starttls_open => Step::Asked(n),
                _ if local(name) == b"auth" => Step::Done,
                _ => Step::Read(n),
            },
            Direction::Responder => match name {
                b"proceed" if closed => Step::Accepted(n),
                b"proceed" => {
                    self.proceed_open = true;
                    Step::Read(n)
                }
                b"/proceed" if self.proceed_open => Step::Accepted(n),
                b"failure" => Step::Done,
                _ => Step::Read(n),
            },
        }
    }
}
