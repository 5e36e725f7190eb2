//! What the STARTTLS followers (SMTP, IMAP, POP3, XMPP, LDAP, PostgreSQL,
//! IRC) share: a dissector, [`Follower`], that reads a plaintext protocol only
//! as far as needed to see an upgrade to TLS accepted, then answers
//! [`Want::Reprobe`] so the flow stage identifies the rest afresh (and the
//! TLS dissector reads it); and the line helpers of the text protocols.
//!
//! Input: both directions of a TCP stream in order. Each protocol supplies
//! a [`Dialogue`]: given the unread bytes of one direction, it reads one
//! unit (a line, an XML tag, a BER message, ...) and says what it meant
//! ([`Step`]). The follower holds the client's bytes sent after its
//! upgrade command until the server answers, and on acceptance hands over
//! exactly the bytes after the command (client) and after the positive
//! reply (server) through [`Dissector::handover`].
//!
//! Output: no records; the flow's `service` names the plaintext protocol
//! and the TLS that follows gets its own `tls` record. Anomalies (counted
//! under the protocol): a malformed unit (the dialogue cannot be followed)
//! and a unit longer than `Limits::max_buffered_bytes`. A refused upgrade,
//! a session that goes on without one (mail, login), a gap, or
//! `Limits::max_buffered_bytes` of plaintext in one direction without an
//! upgrade end the dissection quietly ([`Want::Done`]): bulk plaintext
//! costs nothing.
//!
//! Does not: report the plaintext protocol's content, or follow a session
//! after a refused upgrade.

use super::{Context, Dissector, Limits, Want};
use crate::packet::Direction;

/// What one unit of a direction meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// A unit of this many bytes (at least one) was read; go on.
    Read(usize),
    /// The unit is incomplete: wait for more bytes.
    NeedMore,
    /// The client asked for the upgrade with a unit of this many bytes;
    /// what it sends after it belongs to TLS.
    Asked(usize),
    /// The server accepted with a unit of this many bytes; TLS starts
    /// right after it in both directions.
    Accepted(usize),
    /// Nothing more to follow (refused, or the session went on without an
    /// upgrade).
    Done,
    /// The unit breaks the protocol: counted under this reason, then done.
    Malformed(&'static str),
}

/// One plaintext protocol's reading of its units.
pub trait Dialogue: Send + std::fmt::Debug {
    /// Anomaly reason for a unit longer than `Limits::max_buffered_bytes`.
    const TOO_LONG: &'static str;

    /// Reads the unit at the start of `buf` (unread bytes of `dir`, never
    /// empty).
    fn step(&mut self, dir: Direction, buf: &[u8]) -> Step;
}

/// Where the follower is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Following,
    /// The client asked; its further bytes are held for TLS.
    Asked,
    Upgraded,
    Done,
}

/// A dissector that follows a plaintext protocol up to its upgrade.
#[derive(Debug)]
pub struct Follower<D> {
    dialogue: D,
    limits: Limits,
    phase: Phase,
    /// Unread bytes of each direction (an incomplete unit); after the
    /// upgrade, the bytes handed over.
    unread: [Vec<u8>; 2],
    /// Plaintext bytes read so far in each direction.
    read: [usize; 2],
}

impl<D: Dialogue> Follower<D> {
    /// A follower of one connection.
    pub fn new(dialogue: D, limits: Limits) -> Self {
        Self {
            dialogue,
            limits,
            phase: Phase::Following,
            unread: [Vec::new(), Vec::new()],
            read: [0, 0],
        }
    }

    fn done(&mut self) -> Want {
        self.phase = Phase::Done;
        self.unread = [Vec::new(), Vec::new()];
        Want::Done
    }

    /// Reads the units of `bytes` (after what was unread) of `dir`.
    fn follow(&mut self, cx: &mut Context<'_>, dir: Direction, bytes: &[u8]) -> Want {
        let d = dir as usize;
        let cap = self.limits.max_buffered_bytes;
        let mut buf = std::mem::take(&mut self.unread[d]);
        buf.extend_from_slice(bytes);
        let mut at = 0;
        while let Some(rest) = buf.get(at..).filter(|r| !r.is_empty()) {
            match self.dialogue.step(dir, rest) {
                Step::Read(n) if n > 0 => at += n,
                Step::Read(_) | Step::NeedMore => break,
                Step::Asked(n) => {
                    // Held for TLS: the client's bytes after its command.
                    self.phase = Phase::Asked;
                    self.unread[d] = buf.get(at + n..).unwrap_or_default().to_vec();
                    return self.held_within_cap();
                }
                Step::Accepted(n) => {
                    self.phase = Phase::Upgraded;
                    self.unread[d] = buf.get(at + n..).unwrap_or_default().to_vec();
                    return Want::Reprobe;
                }
                Step::Done => return self.done(),
                Step::Malformed(reason) => {
                    cx.anomaly(reason);
                    return self.done();
                }
            }
        }
        self.read[d] = self.read[d].saturating_add(at);
        buf.drain(..at.min(buf.len()));
        if buf.len() > cap {
            cx.anomaly(D::TOO_LONG);
            return self.done();
        }
        if self.read[d] > cap {
            // No upgrade in the first bytes of the session: none is coming.
            return self.done();
        }
        self.unread[d] = buf;
        Want::More
    }

    fn held_within_cap(&mut self) -> Want {
        if self.unread[Direction::Originator as usize].len() > self.limits.max_buffered_bytes {
            return self.done();
        }
        Want::More
    }
}

impl<D: Dialogue> Dissector for Follower<D> {
    fn data(&mut self, cx: &mut Context<'_>, dir: Direction, data: &[u8]) -> Want {
        match (self.phase, dir) {
            (Phase::Done, _) => Want::Done,
            (Phase::Upgraded, _) => Want::Reprobe,
            (Phase::Asked, Direction::Originator) => {
                self.unread[dir as usize].extend_from_slice(data);
                self.held_within_cap()
            }
            _ => self.follow(cx, dir, data),
        }
    }

    fn gap(&mut self, _cx: &mut Context<'_>, _dir: Direction, _len: u64) -> Want {
        // The units' boundaries are lost.
        self.done()
    }

    fn close(&mut self, _cx: &mut Context<'_>) {}

    fn handover(&mut self, dir: Direction) -> Vec<u8> {
        if self.phase == Phase::Upgraded {
            std::mem::take(&mut self.unread[dir as usize])
        } else {
            Vec::new()
        }
    }
}

/// The first line of `buf`: its text without CR LF (or LF), and its length
/// with them; `None` while the line is incomplete.
pub fn line(buf: &[u8]) -> Option<(&[u8], usize)> {
    let nl = memchr::memchr(b'\n', buf)?;
    let text = buf.get(..nl)?;
    Some((text.strip_suffix(b"\r").unwrap_or(text), nl + 1))
}

/// The first space-separated word of `line`.
pub fn word(line: &[u8]) -> &[u8] {
    line.split(|b| *b == b' ').next().unwrap_or_default()
}

/// `line` without its first word and the space after it.
pub fn after_word(line: &[u8]) -> &[u8] {
    match memchr::memchr(b' ', line) {
        Some(i) => line.get(i + 1..).unwrap_or_default(),
        None => &[],
    }
}

/// True when `data` starts with `prefix`, ASCII case ignored.
pub fn starts_with_ignore_case(data: &[u8], prefix: &[u8]) -> bool {
    data.get(..prefix.len())
        .is_some_and(|d| d.eq_ignore_ascii_case(prefix))
}

/// The probe's verdict on `data` that must start with `prefix`: a match
/// once it does, more wanted while it is a prefix of it.
pub fn probe_prefix(data: &[u8], prefix: &[u8]) -> super::Probe {
    let n = data.len().min(prefix.len());
    if data.get(..n) != prefix.get(..n) {
        super::Probe::NoMatch
    } else if n < prefix.len() {
        super::Probe::NeedMore
    } else {
        super::Probe::Match
    }
}

#[cfg(test)]
pub(crate) mod testutil {
    //! Drives a follower the way the flow stage does and shows what it did.

    use super::*;
    use crate::dissect::{L4, Probe, ProbeInput};

    /// The client's side.
    pub const O: Direction = Direction::Originator;
    /// The server's side.
    pub const R: Direction = Direction::Responder;

    /// What `probe` says of `data` sent by `dir` on a TCP connection from
    /// port 40000 to `server_port`.
    pub fn probe_tcp(
        probe: fn(&ProbeInput<'_>) -> Probe,
        server_port: u16,
        dir: Direction,
        data: &[u8],
    ) -> Probe {
        probe(&ProbeInput {
            l4: L4::Tcp,
            dir,
            ports: (40000, server_port),
            data,
        })
    }

    /// What one call answered, with the anomalies so far.
    pub struct Run {
        pub want: Want,
        pub anomalies: Vec<&'static str>,
    }

    /// Feeds `calls` in order; stops at the first answer other than
    /// `More`.
    pub fn feed(d: &mut dyn Dissector, calls: &[(Direction, &[u8])]) -> Run {
        let mut out = Vec::new();
        let mut anomalies = Vec::new();
        let mut want = Want::More;
        for (dir, bytes) in calls {
            let mut cx = Context {
                ts_us: 1,
                out: &mut out,
                anomalies: &mut anomalies,
            };
            want = d.data(&mut cx, *dir, bytes);
            if want != Want::More {
                break;
            }
        }
        assert!(out.is_empty(), "followers emit no records");
        Run { want, anomalies }
    }

    /// Feeds each call split into single bytes.
    pub fn feed_bytewise(d: &mut dyn Dissector, calls: &[(Direction, &[u8])]) -> Run {
        let split: Vec<(Direction, &[u8])> = calls
            .iter()
            .flat_map(|(dir, b)| b.chunks(1).map(move |c| (*dir, c)))
            .collect();
        feed(d, &split)
    }

    /// Small limits for tests.
    pub fn limits() -> Limits {
        Limits {
            max_pending_transactions: 8,
            max_buffered_bytes: 1024,
        }
    }
}
