//! IRC follower: reads an IRC session (RFC 2812) only as far as a
//! `STARTTLS` command (IRCv3 tls extension) and its `670` reply, then hands
//! the rest of the connection to the TLS probe (see [`super::starttls`]).
//!
//! Input: both directions of a TCP stream in order (originator = client),
//! line by line; server lines may carry a `:prefix`. The probe takes a
//! client's first registration line or a server's first notice or numeric
//! reply. Output: no records;
//! the flow's service is `irc`.
//!
//! Does not: read channels or messages. Registration completing before
//! any STARTTLS (`001` from the server, or the client joining or sending
//! messages) or a `691` (STARTTLS failed) ends the dissection.

#[cfg(test)]
mod tests;

use super::starttls::{Dialogue, Follower, Step, after_word, line, probe_prefix, word};
use super::{Dissector, L4, Limits, Probe, ProbeInput, Protocol, Transports};
use crate::packet::Direction;

/// The IRC protocol (followed up to STARTTLS).
pub static PROTOCOL: Protocol = Protocol {
    name: "irc",
    transports: Transports {
        tcp: true,
        udp: false,
    },
    ports: &[6667, 6668, 6669],
    probe,
    new,
};

/// What an IRC client opens a connection with (capability negotiation,
/// registration, or the upgrade itself). `USER` and `PASS` are left out:
/// FTP and POP3 clients send them too.
const CLIENT_OPENINGS: [&[u8]; 3] = [b"CAP LS", b"NICK ", b"STARTTLS\r\n"];

/// Longest server prefix (`:name`) the probe looks through.
const MAX_PREFIX: usize = 64;

/// A client's registration or STARTTLS line, or a server's notice or
/// numeric reply (servers often greet with `:name NOTICE * :*** Looking up
/// your hostname`).
fn probe(input: &ProbeInput<'_>) -> Probe {
    if input.l4 != L4::Tcp {
        return Probe::NoMatch;
    }
    if input.dir == Direction::Responder {
        return probe_server(input.data);
    }
    let mut verdict = Probe::NoMatch;
    for opening in CLIENT_OPENINGS {
        match probe_prefix(input.data, opening) {
            Probe::Match => return Probe::Match,
            Probe::NeedMore => verdict = Probe::NeedMore,
            Probe::NoMatch => {}
        }
    }
    verdict
}

fn probe_server(d: &[u8]) -> Probe {
    match probe_prefix(d, b"NOTICE AUTH ") {
        Probe::NoMatch => {}
        other => return other,
    }
    if d.first().is_some_and(|b| *b != b':') {
        return Probe::NoMatch;
    }
    let head = d.get(..d.len().min(MAX_PREFIX)).unwrap_or_default();
    let Some(space) = memchr::memchr(b' ', head) else {
        return if head.len() < MAX_PREFIX {
            Probe::NeedMore
        } else {
            Probe::NoMatch
        };
    };
    let rest = d.get(space + 1..).unwrap_or_default();
    let numeric = |r: &[u8]| {
        r.get(..3).is_some_and(|c| c.iter().all(u8::is_ascii_digit)) && r.get(3) == Some(&b' ')
    };
    if rest.len() < 7 {
        Probe::NeedMore
    } else if rest.starts_with(b"NOTICE ") || numeric(rest) {
        Probe::Match
    } else {
        Probe::NoMatch
    }
}

fn new(limits: &Limits, _l4: L4) -> Box<dyn Dissector> {
    Box::new(Follower::new(Irc::default(), *limits))
}

/// One IRC session's dialogue.
#[derive(Debug, Default)]
struct Irc {
    asked: bool,
}

impl Dialogue for Irc {
    const TOO_LONG: &'static str = "line_too_long";

    fn step(&mut self, dir: Direction, buf: &[u8]) -> Step {
        let Some((text, n)) = line(buf) else {
            return Step::NeedMore;
        };
        // A server line may start with its `:prefix`.
        let text = if text.first() == Some(&b':') {
            after_word(text)
        } else {
            text
        };
        let command = word(text).to_ascii_uppercase();
        match (dir, command.as_slice()) {
            (Direction::Originator, b"STARTTLS") => {
                self.asked = true;
                Step::Asked(n)
            }
            (Direction::Originator, b"JOIN" | b"PRIVMSG" | b"NOTICE") => Step::Done,
            (Direction::Responder, b"670") if self.asked => Step::Accepted(n),
            (Direction::Responder, b"691" | b"001") => Step::Done,
            (Direction::Responder, []) => Step::Malformed("malformed_message"),
            _ => Step::Read(n),
        }
    }
}
