//! LDAP follower: a connection whose client opens with the StartTLS
//! extended operation (RFC 4511 §4.14, OID 1.3.6.1.4.1.1466.20037) and
//! whose server answers it with an ExtendedResponse of resultCode success
//! carries TLS from the next byte; the rest of the connection goes to the
//! TLS probe (see [`super::starttls`]).
//!
//! Input: both directions of a TCP stream in order (originator = client),
//! read one BER-encoded LDAPMessage at a time (definite lengths only, as
//! RFC 4511 §5.1 requires). Output: no records; the flow's service is
//! `ldap`.
//!
//! Does not: decode LDAP operations. A connection that starts with another
//! operation is not probed as LDAP (the sensor only follows LDAP to its
//! upgrade); a non-success result ends the dissection.

#[cfg(test)]
mod tests;

use super::starttls::{Dialogue, Follower, Step};
use super::{Dissector, L4, Limits, Probe, ProbeInput, Protocol, Transports};
use crate::packet::Direction;

/// The LDAP protocol (followed up to StartTLS).
pub static PROTOCOL: Protocol = Protocol {
    name: "ldap",
    transports: Transports {
        tcp: true,
        udp: false,
    },
    ports: &[389, 3268],
    probe,
    new,
};

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const ENUMERATED: u8 = 0x0a;
/// [APPLICATION 23] ExtendedRequest, constructed.
const EXTENDED_REQUEST: u8 = 0x77;
/// [APPLICATION 24] ExtendedResponse, constructed.
const EXTENDED_RESPONSE: u8 = 0x78;
/// requestName [0], primitive.
const REQUEST_NAME: u8 = 0x80;
const START_TLS_OID: &[u8] = b"1.3.6.1.4.1.1466.20037";

/// A BER element at the start of `d`: its tag, where its content starts,
/// and the content's length. `Err` for a length this reader rejects
/// (indefinite, or over four bytes), `Ok(None)` while incomplete.
#[allow(clippy::type_complexity)]
fn element(d: &[u8]) -> Result<Option<(u8, usize, usize)>, ()> {
    let (Some(&tag), Some(&first)) = (d.first(), d.get(1)) else {
        return Ok(None);
    };
    if first < 0x80 {
        return Ok(Some((tag, 2, usize::from(first))));
    }
    let n = usize::from(first & 0x7f);
    if n == 0 || n > 4 {
        return Err(());
    }
    let Some(bytes) = d.get(2..2 + n) else {
        return Ok(None);
    };
    let len = bytes.iter().fold(0usize, |a, b| a << 8 | usize::from(*b));
    Ok(Some((tag, 2 + n, len)))
}

/// The messageID and the protocolOp element (tag, content) of a whole
/// LDAPMessage's content.
fn message_parts(content: &[u8]) -> Option<(&[u8], u8, &[u8])> {
    let (tag, at, len) = element(content).ok()??;
    if tag != INTEGER || !(1..=4).contains(&len) {
        return None;
    }
    let id = content.get(at..at + len)?;
    let rest = content.get(at + len..)?;
    let (op, op_at, op_len) = element(rest).ok()??;
    Some((id, op, rest.get(op_at..op_at + op_len)?))
}

/// True when an ExtendedRequest's content names StartTLS.
fn names_start_tls(request: &[u8]) -> bool {
    matches!(element(request), Ok(Some((REQUEST_NAME, at, len)))
        if request.get(at..at + len) == Some(START_TLS_OID))
}

/// The client's first LDAPMessage is a StartTLS ExtendedRequest.
fn probe(input: &ProbeInput<'_>) -> Probe {
    if input.l4 != L4::Tcp || input.dir != Direction::Originator {
        return Probe::NoMatch;
    }
    let d = input.data;
    match element(d) {
        Err(()) => Probe::NoMatch,
        Ok(None) if d.first().is_none_or(|t| *t == SEQUENCE) => Probe::NeedMore,
        Ok(None) => Probe::NoMatch,
        Ok(Some((tag, at, len))) => {
            // StartTLS with a short messageID takes about 31 bytes.
            if tag != SEQUENCE || !(24..=64).contains(&len) {
                return Probe::NoMatch;
            }
            let Some(content) = d.get(at..at + len) else {
                return Probe::NeedMore;
            };
            match message_parts(content) {
                Some((_, EXTENDED_REQUEST, req)) if names_start_tls(req) => Probe::Match,
                _ => Probe::NoMatch,
            }
        }
    }
}

fn new(limits: &Limits, _l4: L4) -> Box<dyn Dissector> {
    Box::new(Follower::new(
        Ldap {
            cap: limits.max_buffered_bytes,
            start_tls_id: None,
        },
        *limits,
    ))
}

/// One connection's dialogue.
#[derive(Debug)]
struct Ldap {
    /// Longest message read.
    cap: usize,
    /// The messageID of the StartTLS request.
    start_tls_id: Option<Vec<u8>>,
}

impl Dialogue for Ldap {
    const TOO_LONG: &'static str = "message_too_long";

    fn step(&mut self, dir: Direction, buf: &[u8]) -> Step {
        let (at, len) = match element(buf) {
            Err(()) => return Step::Malformed("malformed_message"),
            Ok(None) => return Step::NeedMore,
            Ok(Some((SEQUENCE, at, len))) => (at, len),
            Ok(Some(_)) => return Step::Malformed("malformed_message"),
        };
        if len > self.cap {
            return Step::Malformed(Self::TOO_LONG);
        }
        let Some(content) = buf.get(at..at + len) else {
            return Step::NeedMore;
        };
        let n = at + len;
        let Some((id, op, body)) = message_parts(content) else {
            return Step::Malformed("malformed_message");
        };
        match (dir, op) {
            (Direction::Originator, EXTENDED_REQUEST) if names_start_tls(body) => {
                self.start_tls_id = Some(id.to_vec());
                Step::Asked(n)
            }
            (Direction::Responder, EXTENDED_RESPONSE)
                if self.start_tls_id.as_deref() == Some(id) =>
            {
                // LDAPResult starts with resultCode; 0 is success.
                match element(body) {
                    Ok(Some((ENUMERATED, rat, 1))) if body.get(rat) == Some(&0) => {
                        Step::Accepted(n)
                    }
                    _ => Step::Done,
                }
            }
            _ => Step::Read(n),
        }
    }
}
