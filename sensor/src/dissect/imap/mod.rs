//! IMAP follower: reads an IMAP session (RFC 9051) only as far as a
//! `STARTTLS` command and its tagged `OK`, then hands the rest of the
//! connection to the TLS probe (see [`super::starttls`]).
//!
//! Input: both directions of a TCP stream in order (originator = client),
//! line by line. The reply to STARTTLS is the server's line carrying the
//! command's tag, so pipelined commands need no counting. Output: no
//! records; the flow's service is `imap`.
//!
//! Does not: read mailboxes or literals. A login before any STARTTLS
//! (`LOGIN`, `AUTHENTICATE`) or a tagged `NO`/`BAD` to STARTTLS ends the
//! dissection.

#[cfg(test)]
mod tests;

use super::starttls::{Dialogue, Follower, Step, after_word, line, probe_prefix, word};
use super::{Dissector, L4, Limits, Probe, ProbeInput, Protocol, Transports};
use crate::packet::Direction;

/// The IMAP protocol (followed up to STARTTLS).
pub static PROTOCOL: Protocol = Protocol {
    name: "imap",
    transports: Transports {
        tcp: true,
        udp: false,
    },
    ports: &[143],
    probe,
    new,
};

/// Longest tag kept (RFC 9051 tags are short atoms).
const MAX_TAG: usize = 64;

/// The server's untagged `* OK ` greeting (the server speaks first).
fn probe(input: &ProbeInput<'_>) -> Probe {
    if input.l4 != L4::Tcp || input.dir != Direction::Responder {
        return Probe::NoMatch;
    }
    probe_prefix(input.data, b"* OK ")
}

fn new(limits: &Limits, _l4: L4) -> Box<dyn Dissector> {
    Box::new(Follower::new(Imap::default(), *limits))
}

/// One IMAP session's dialogue.
#[derive(Debug, Default)]
struct Imap {
    /// The tag of the STARTTLS command, once sent.
    starttls_tag: Option<Vec<u8>>,
}

impl Dialogue for Imap {
    const TOO_LONG: &'static str = "line_too_long";

    fn step(&mut self, dir: Direction, buf: &[u8]) -> Step {
        let Some((text, n)) = line(buf) else {
            return Step::NeedMore;
        };
        match dir {
            Direction::Originator => self.command(text, n),
            Direction::Responder => self.response(text, n),
        }
    }
}

impl Imap {
    fn command(&mut self, text: &[u8], n: usize) -> Step {
        let tag = word(text);
        let command = word(after_word(text)).to_ascii_uppercase();
        if tag.is_empty() || tag.len() > MAX_TAG {
            return Step::Malformed("malformed_command");
        }
        match command.as_slice() {
            b"STARTTLS" => {
                self.starttls_tag = Some(tag.to_vec());
                Step::Asked(n)
            }
            b"LOGIN" | b"AUTHENTICATE" => Step::Done,
            _ => Step::Read(n),
        }
    }

    fn response(&mut self, text: &[u8], n: usize) -> Step {
        if text.is_empty() {
            return Step::Malformed("malformed_response");
        }
        let tag = word(text);
        if self.starttls_tag.as_deref() != Some(tag) {
            // Untagged data, continuation requests, earlier commands.
            return Step::Read(n);
        }
        if word(after_word(text)).eq_ignore_ascii_case(b"OK") {
            Step::Accepted(n)
        } else {
            Step::Done
        }
    }
}
