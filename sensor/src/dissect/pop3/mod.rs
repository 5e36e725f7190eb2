//! POP3 follower: reads a POP3 session (RFC 1939) only as far as an `STLS`
//! command (RFC 2595) and its `+OK`, then hands the rest of the connection
//! to the TLS probe (see [`super::starttls`]).
//!
//! Input: both directions of a TCP stream in order (originator = client),
//! line by line. Responses are matched to commands in order (the greeting
//! first); the multi-line responses of `CAPA`, `LIST`/`UIDL` without an
//! argument, `RETR` and `TOP` are skipped to their `.` line. Output: no
//! records; the flow's service is `pop3`.
//!
//! Does not: read mail. A login before any STLS (`USER`, `PASS`, `APOP`,
//! `AUTH`), a `-ERR` to STLS, a status line that is neither `+OK` nor
//! `-ERR`, or more than `Limits::max_pending_transactions` unanswered
//! commands ends the dissection.

#[cfg(test)]
mod tests;

use super::starttls::{Dialogue, Follower, Step, after_word, line, probe_prefix, word};
use super::{Dissector, L4, Limits, Probe, ProbeInput, Protocol, Transports};
use crate::packet::Direction;
use std::collections::VecDeque;

/// The POP3 protocol (followed up to STLS).
pub static PROTOCOL: Protocol = Protocol {
    name: "pop3",
    transports: Transports {
        tcp: true,
        udp: false,
    },
    ports: &[110],
    probe,
    new,
};

/// The server's `+OK` greeting (the server speaks first).
fn probe(input: &ProbeInput<'_>) -> Probe {
    if input.l4 != L4::Tcp || input.dir != Direction::Responder {
        return Probe::NoMatch;
    }
    match probe_prefix(input.data, b"+OK") {
        Probe::Match => match input.data.get(3) {
            None => Probe::NeedMore,
            Some(b' ' | b'\r' | b'\n') => Probe::Match,
            Some(_) => Probe::NoMatch,
        },
        other => other,
    }
}

fn new(limits: &Limits, _l4: L4) -> Box<dyn Dissector> {
    Box::new(Follower::new(
        Pop3 {
            max_pending: limits.max_pending_transactions,
            ..Pop3::default()
        },
        *limits,
    ))
}

/// A command awaiting its response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Awaited {
    Greeting,
    Single,
    MultiLine,
    Stls,
}

/// One POP3 session's dialogue.
#[derive(Debug, Default)]
struct Pop3 {
    started: bool,
    awaited: VecDeque<Awaited>,
    /// Inside a multi-line response, until its `.` line.
    in_body: bool,
    max_pending: usize,
}

impl Dialogue for Pop3 {
    const TOO_LONG: &'static str = "line_too_long";

    fn step(&mut self, dir: Direction, buf: &[u8]) -> Step {
        let Some((text, n)) = line(buf) else {
            return Step::NeedMore;
        };
        if !self.started {
            self.started = true;
            if dir == Direction::Responder {
                self.awaited.push_back(Awaited::Greeting);
            }
        }
        match dir {
            Direction::Originator => self.command(text, n),
            Direction::Responder => self.response(text, n),
        }
    }
}

impl Pop3 {
    fn command(&mut self, text: &[u8], n: usize) -> Step {
        let verb = word(text).to_ascii_uppercase();
        let has_arg = !after_word(text).is_empty();
        let awaited = match verb.as_slice() {
            b"STLS" => Awaited::Stls,
            b"USER" | b"PASS" | b"APOP" | b"AUTH" => return Step::Done,
            b"CAPA" | b"RETR" | b"TOP" => Awaited::MultiLine,
            b"LIST" | b"UIDL" if !has_arg => Awaited::MultiLine,
            _ => Awaited::Single,
        };
        if self.awaited.len() >= self.max_pending {
            return Step::Done;
        }
        self.awaited.push_back(awaited);
        if awaited == Awaited::Stls {
            Step::Asked(n)
        } else {
            Step::Read(n)
        }
    }

    fn response(&mut self, text: &[u8], n: usize) -> Step {
        if self.in_body {
            self.in_body = text != b".";
            return Step::Read(n);
        }
        let ok = word(text) == b"+OK";
        if !ok && word(text) != b"-ERR" {
            return Step::Malformed("malformed_response");
        }
        match (self.awaited.pop_front(), ok) {
            (Some(Awaited::Stls), true) => Step::Accepted(n),
            (Some(Awaited::Stls), false) => Step::Done,
            (Some(Awaited::MultiLine), true) => {
                self.in_body = true;
                Step::Read(n)
            }
            _ => Step::Read(n),
        }
    }
}
