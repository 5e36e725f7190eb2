//! SSH dissector: identification strings (banners) and the key exchange
//! init of both sides, up to the point where the connection is encrypted.
//!
//! Input: both directions of a TCP stream in order (originator = client).
//! Each side's banner line (CR LF or LF; a server may send other lines
//! first, RFC 4253 §4.2), then its unencrypted binary packets
//! (`packet_length`, `padding_length`, payload, padding) until its
//! SSH_MSG_KEXINIT. Output: one [`nucleus_proto::SshRecord`] per connection
//! with both banners, HASSH and HASSH-server (with the strings they hash)
//! and the negotiated key exchange, host key, cipher, MAC and compression
//! (client to server), emitted as soon as both KEXINITs are read, or at
//! close with what is known; then nothing more is wanted from the flow.
//!
//! Does not: decrypt anything, follow a second key exchange, decode SSH-1
//! packets (an SSH-1 banner ends that side), or keep more than
//! `Limits::max_buffered_bytes` of one side (a longer packet is counted as
//! an anomaly and ends that side).

pub mod kexinit;

#[cfg(test)]
mod tests;

use self::kexinit::{KexInit, md5_hex, negotiate};
use super::{
    AppEvent, Context, Dissector, L4, Limits, Probe, ProbeInput, Protocol, Transports, Want,
};
use crate::packet::Direction;
use nucleus_proto::SshRecord;

/// The SSH protocol.
pub static PROTOCOL: Protocol = Protocol {
    name: "ssh",
    transports: Transports {
        tcp: true,
        udp: false,
    },
    ports: &[22],
    probe,
    new,
};

/// Longest banner or pre-banner line read (RFC 4253 allows 255 bytes for
/// the banner; other lines are bounded here too, with slack).
const MAX_LINE: usize = 1024;
/// Bytes of other lines a side may send before its banner (servers greet
/// with long messages, even ASCII art).
const MAX_PRE_BANNER_BYTES: usize = 16 * 1024;
/// Binary packets a side may send before its KEXINIT (IGNORE, DEBUG...).
const MAX_PACKETS_BEFORE_KEXINIT: usize = 16;

/// The identification-string prefix.
const MAGIC: &[u8] = b"SSH-";

fn probe(input: &ProbeInput<'_>) -> Probe {
    let d = input.data;
    if d.starts_with(MAGIC) {
        return Probe::Match;
    }
    if d.len() < MAGIC.len() && MAGIC.starts_with(d) {
        return Probe::NeedMore;
    }
    // A server may send text lines before its banner: keep SSH a candidate
    // while the responder sends printable lines, decide on the banner.
    if input.dir == Direction::Responder
        && d.len() <= MAX_LINE * 4
        && d.iter()
            .all(|&b| b == b'\r' || b == b'\n' || b == b'\t' || (0x20..0x7f).contains(&b))
    {
        if d.windows(MAGIC.len() + 1)
            .any(|w| w.first() == Some(&b'\n') && w.get(1..) == Some(MAGIC))
        {
            return Probe::Match;
        }
        return Probe::NeedMore;
    }
    Probe::NoMatch
}

fn new(limits: &Limits, _l4: L4) -> Box<dyn Dissector> {
    Box::new(Ssh::new(*limits))
}

/// Where one side of the connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Reading lines until the `SSH-` banner.
    Banner,
    /// Reading binary packets until the KEXINIT.
    Packets,
    /// Nothing more to read from this side (KEXINIT read, SSH-1, given up).
    Finished,
}

/// One side's progress.
#[derive(Debug)]
struct Side {
    stage: Stage,
    buf: Vec<u8>,
    banner: Option<String>,
    /// `1` or `2`, from the banner's protocol version.
    version: Option<u8>,
    kexinit: Option<KexInit>,
    pre_banner_bytes: usize,
    packets: usize,
}

impl Side {
    fn new() -> Self {
        Self {
            stage: Stage::Banner,
            buf: Vec::new(),
            banner: None,
            version: None,
            kexinit: None,
            pre_banner_bytes: 0,
            packets: 0,
        }
    }

    /// Ends this side, counting `reason`.
    fn give_up(&mut self, cx: &mut Context<'_>, reason: &'static str) {
        cx.anomaly(reason);
        self.finish();
    }

    fn finish(&mut self) {
        self.stage = Stage::Finished;
        self.buf = Vec::new();
    }

    /// Takes `data`, buffering at most `max` bytes at a time.
    fn feed(&mut self, cx: &mut Context<'_>, mut data: &[u8], max: usize) {
        while !data.is_empty() && self.stage != Stage::Finished {
            let room = max.saturating_sub(self.buf.len());
            if room == 0 {
                self.give_up(cx, "buffer_limit");
                return;
            }
            let take = data.len().min(room);
            let (now, rest) = data.split_at(take);
            self.buf.extend_from_slice(now);
            data = rest;
            self.process(cx, max);
        }
    }

    /// Consumes every complete line or packet in the buffer.
    fn process(&mut self, cx: &mut Context<'_>, max: usize) {
        loop {
            let consumed = match self.stage {
                Stage::Finished => return,
                Stage::Banner => self.banner_line(cx),
                Stage::Packets => self.packet(cx, max),
            };
            match consumed {
                Some(n) if self.stage != Stage::Finished => {
                    self.buf.drain(..n.min(self.buf.len()));
                }
                _ => return,
            }
        }
    }

    /// Reads one line; returns the bytes consumed, `None` when incomplete.
    fn banner_line(&mut self, cx: &mut Context<'_>) -> Option<usize> {
        let Some(newline) = self.buf.iter().position(|&b| b == b'\n') else {
            if self.buf.len() > MAX_LINE {
                self.give_up(cx, "line_too_long");
            }
            return None;
        };
        if newline > MAX_LINE {
            self.give_up(cx, "line_too_long");
            return None;
        }
        let line = self.buf.get(..newline).unwrap_or_default();
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if let Some(rest) = line.strip_prefix(MAGIC) {
            let proto_version = rest.split(|&b| b == b'-').next().unwrap_or_default();
            self.banner = Some(String::from_utf8_lossy(line).into_owned());
            match proto_version {
                b"2.0" | b"1.99" => {
                    self.version = Some(2);
                    self.stage = Stage::Packets;
                }
                v if v.starts_with(b"1.") => {
                    self.version = Some(1);
                    self.finish();
                }
                _ => self.give_up(cx, "unknown_version"),
            }
        } else {
            self.pre_banner_bytes += newline + 1;
            if self.pre_banner_bytes > MAX_PRE_BANNER_BYTES {
                self.give_up(cx, "no_banner");
            }
        }
        Some(newline + 1)
    }

    /// Reads one binary packet; returns the bytes consumed, `None` when
    /// incomplete.
    fn packet(&mut self, cx: &mut Context<'_>, max: usize) -> Option<usize> {
        let length_bytes: [u8; 4] = self.buf.get(..4)?.try_into().ok()?;
        let packet_length = u32::from_be_bytes(length_bytes) as usize;
        let padding = usize::from(*self.buf.get(4)?);
        let total = packet_length.saturating_add(4);
        if packet_length < 2 || total > max {
            self.give_up(cx, "bad_packet_length");
            return None;
        }
        let Some(payload_len) = packet_length.checked_sub(padding + 1).filter(|&n| n > 0) else {
            self.give_up(cx, "bad_padding_length");
            return None;
        };
        if self.buf.len() < total {
            return None;
        }
        let payload = self.buf.get(5..5 + payload_len).unwrap_or_default();
        if payload.first() == Some(&kexinit::MSG_KEXINIT) {
            match KexInit::parse(payload) {
                Some(k) => {
                    self.kexinit = Some(k);
                    self.finish();
                }
                None => self.give_up(cx, "malformed_kexinit"),
            }
            return None;
        }
        self.packets += 1;
        if self.packets > MAX_PACKETS_BEFORE_KEXINIT {
            self.give_up(cx, "no_kexinit");
            return None;
        }
        Some(total)
    }
}

/// One SSH connection's dissector.
#[derive(Debug)]
pub struct Ssh {
    limits: Limits,
    /// Originator (client) first.
    sides: [Side; 2],
    start_ts: Option<i64>,
    emitted: bool,
}

impl Ssh {
    /// A dissector for one connection.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            sides: [Side::new(), Side::new()],
            start_ts: None,
            emitted: false,
        }
    }

    fn after_input(&mut self, cx: &mut Context<'_>) -> Want {
        if self.sides.iter().all(|s| s.stage == Stage::Finished) {
            self.emit(cx);
        }
        if self.emitted { Want::Done } else { Want::More }
    }

    fn emit(&mut self, cx: &mut Context<'_>) {
        if self.emitted {
            return;
        }
        self.emitted = true;
        let ts = self.start_ts.unwrap_or(cx.ts_us);
        cx.emit(ts, AppEvent::Ssh(self.record()));
    }

    /// The record of what both sides showed so far.
    pub fn record(&self) -> SshRecord {
        let [client, server] = &self.sides;
        let mut r = SshRecord {
            client_banner: client.banner.clone(),
            server_banner: server.banner.clone(),
            version: match (client.version, server.version) {
                (Some(1), _) | (_, Some(1)) => Some(1),
                (Some(v), _) | (None, Some(v)) => Some(v),
                (None, None) => None,
            },
            ..SshRecord::default()
        };
        if let Some(k) = &client.kexinit {
            let input = k.hassh_input();
            r.hassh = Some(md5_hex(&input));
            r.hassh_string = Some(String::from_utf8_lossy(&input).into_owned());
        }
        if let Some(k) = &server.kexinit {
            let input = k.hassh_server_input();
            r.hassh_server = Some(md5_hex(&input));
            r.hassh_server_string = Some(String::from_utf8_lossy(&input).into_owned());
        }
        if let (Some(c), Some(s)) = (&client.kexinit, &server.kexinit) {
            r.kex = negotiate(&c.kex, &s.kex);
            r.host_key_alg = negotiate(&c.host_key, &s.host_key);
            r.cipher = negotiate(&c.enc_c2s, &s.enc_c2s);
            r.mac = negotiate(&c.mac_c2s, &s.mac_c2s);
            r.compression = negotiate(&c.comp_c2s, &s.comp_c2s);
        }
        r
    }
}

impl Dissector for Ssh {
    fn data(&mut self, cx: &mut Context<'_>, dir: Direction, data: &[u8]) -> Want {
        if self.emitted {
            return Want::Done;
        }
        self.start_ts.get_or_insert(cx.ts_us);
        let max = self.limits.max_buffered_bytes;
        if let Some(side) = self.sides.get_mut(dir as usize) {
            side.feed(cx, data, max);
        }
        self.after_input(cx)
    }

    fn gap(&mut self, cx: &mut Context<'_>, dir: Direction, _len: u64) -> Want {
        if self.emitted {
            return Want::Done;
        }
        if let Some(side) = self.sides.get_mut(dir as usize)
            && side.stage != Stage::Finished
        {
            side.give_up(cx, "gap_before_kexinit");
        }
        self.after_input(cx)
    }

    fn close(&mut self, cx: &mut Context<'_>) {
        if !self.emitted && self.sides.iter().any(|s| s.banner.is_some()) {
            self.emit(cx);
        }
    }
}

/// Fuzzing entry point (also replayed by the tests): interprets `input` as
/// a sequence of calls on one dissector with small limits. Each call starts
/// with a control byte: `0xfe` is a gap in the originator's stream, `0xff`
/// in the responder's; otherwise bit 0 picks the direction and bits 1..7
/// the length of the chunk that follows. Returns the records emitted.
pub fn fuzz_input(input: &[u8]) -> usize {
    let limits = Limits {
        max_pending_transactions: 4,
        max_buffered_bytes: 4096,
    };
    let mut ssh = Ssh::new(limits);
    let mut out = Vec::new();
    let mut anomalies = Vec::new();
    let mut rest = input;
    let mut ts = 0;
    while let Some((&control, tail)) = rest.split_first() {
        ts += 1;
        let mut cx = Context {
            ts_us: ts,
            out: &mut out,
            anomalies: &mut anomalies,
        };
        let dir = if control & 1 == 0 {
            Direction::Originator
        } else {
            Direction::Responder
        };
        let want = if control >= 0xfe {
            rest = tail;
            ssh.gap(&mut cx, dir, 1)
        } else {
            let len = usize::from(control >> 1).min(tail.len());
            let (chunk, after) = tail.split_at(len);
            rest = after;
            ssh.data(&mut cx, dir, chunk)
        };
        if want == Want::Done {
            break;
        }
    }
    let mut cx = Context {
        ts_us: ts + 1,
        out: &mut out,
        anomalies: &mut anomalies,
    };
    ssh.close(&mut cx);
    out.len()
}
