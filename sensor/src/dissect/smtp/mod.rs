//! SMTP follower: reads an SMTP session (RFC 5321) only as far as a
//! STARTTLS (RFC 3207) and its `220` reply, then hands the rest of the
//! connection to the TLS probe (see [`super::starttls`]).
//!
//! Input: both directions of a TCP stream in order (originator = client).
//! Commands are counted so that, with pipelining, the reply to STARTTLS is
//! the one after the replies owed to earlier commands (the greeting is the
//! first reply). Output: no records; the flow's service is `smtp`.
//!
//! Does not: read mail. A mail transaction or authentication before any
//! STARTTLS (`MAIL`, `RCPT`, `DATA`, `BDAT`, `AUTH`), a refused STARTTLS,
//! or a reply line that is not `ddd[ -]...` ends the dissection.

#[cfg(test)]
mod tests;

use super::starttls::{Dialogue, Follower, Step, line, starts_with_ignore_case, word};
use super::{Dissector, L4, Limits, Probe, ProbeInput, Protocol, Transports};
use crate::packet::Direction;

/// The SMTP protocol (followed up to STARTTLS).
pub static PROTOCOL: Protocol = Protocol {
    name: "smtp",
    transports: Transports {
        tcp: true,
        udp: false,
    },
    ports: &[25, 587, 2525],
    probe,
    new,
};

/// Longest greeting line the probe reads (RFC 5321 §4.5.3.1.5: 512).
const MAX_GREETING: usize = 512;

/// The server's `220` greeting naming (E)SMTP in its first line, or a
/// client's `EHLO`/`HELO` when the greeting was not seen. FTP also greets
/// with `220`: the word SMTP tells them apart.
fn probe(input: &ProbeInput<'_>) -> Probe {
    if input.l4 != L4::Tcp {
        return Probe::NoMatch;
    }
    let d = input.data;
    if input.dir == Direction::Originator {
        if d.len() < 5 {
            return if [&b"EHLO "[..], b"HELO "]
                .iter()
                .any(|p| starts_with_ignore_case(p, d))
            {
                Probe::NeedMore
            } else {
                Probe::NoMatch
            };
        }
        return if starts_with_ignore_case(d, b"EHLO ") || starts_with_ignore_case(d, b"HELO ") {
            Probe::Match
        } else {
            Probe::NoMatch
        };
    }
    match super::starttls::probe_prefix(d, b"220") {
        Probe::Match => {}
        other => return other,
    }
    match d.get(3) {
        None => return Probe::NeedMore,
        Some(b' ' | b'-') => {}
        Some(_) => return Probe::NoMatch,
    }
    let head = d.get(..d.len().min(MAX_GREETING)).unwrap_or_default();
    let first = line(head).map(|(l, _)| l);
    let text = first.unwrap_or(head);
    if memchr::memmem::find(&text.to_ascii_uppercase(), b"SMTP").is_some() {
        Probe::Match
    } else if first.is_none() && head.len() < MAX_GREETING {
        Probe::NeedMore
    } else {
        Probe::NoMatch
    }
}

fn new(limits: &Limits, _l4: L4) -> Box<dyn Dissector> {
    Box::new(Follower::new(Smtp::default(), *limits))
}

/// One SMTP session's dialogue.
#[derive(Debug, Default)]
struct Smtp {
    /// The first unit was read (the greeting is owed only when the server
    /// spoke first).
    started: bool,
    /// Replies the server owes (the greeting, then one per command).
    owed: usize,
    /// Replies owed before the one to STARTTLS, once it was sent.
    before_starttls: Option<usize>,
}

impl Dialogue for Smtp {
    const TOO_LONG: &'static str = "line_too_long";

    fn step(&mut self, dir: Direction, buf: &[u8]) -> Step {
        let Some((text, n)) = line(buf) else {
            return Step::NeedMore;
        };
        if !self.started {
            self.started = true;
            self.owed = usize::from(dir == Direction::Responder);
        }
        match dir {
            Direction::Originator => self.command(text, n),
            Direction::Responder => self.reply(text, n),
        }
    }
}

impl Smtp {
    fn command(&mut self, text: &[u8], n: usize) -> Step {
        let verb = word(text).to_ascii_uppercase();
        match verb.as_slice() {
            b"STARTTLS" => {
                self.before_starttls = Some(self.owed);
                self.owed += 1;
                Step::Asked(n)
            }
            b"MAIL" | b"RCPT" | b"DATA" | b"BDAT" | b"AUTH" => Step::Done,
            _ => {
                self.owed = self.owed.saturating_add(1);
                Step::Read(n)
            }
        }
    }

    fn reply(&mut self, text: &[u8], n: usize) -> Step {
        let code = text.get(..3).filter(|c| c.iter().all(u8::is_ascii_digit));
        let Some(code) = code else {
            return Step::Malformed("malformed_reply");
        };
        match text.get(3) {
            None | Some(b' ') => {}
            // A continuation line of a multi-line reply.
            Some(b'-') => return Step::Read(n),
            Some(_) => return Step::Malformed("malformed_reply"),
        }
        match self.before_starttls {
            Some(0) if code == b"220" => Step::Accepted(n),
            Some(0) => Step::Done,
            before => {
                self.owed = self.owed.saturating_sub(1);
                self.before_starttls = before.map(|b| b - 1);
                Step::Read(n)
            }
        }
    }
}
