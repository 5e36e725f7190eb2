//! DNS over UDP and TCP: one record per query and its response.
//!
//! Owns: recognising DNS by content ([`PROTOCOL`]'s probe), framing TCP
//! messages (two-byte length prefix, several messages per connection,
//! messages split across segments, resynchronisation after a gap), and
//! pairing queries with responses by transaction id and question. Input:
//! one flow's payload from `flow::app` (UDP: a datagram per call; TCP: each
//! direction's reassembled stream, with gaps). Output: one
//! [`nucleus_proto::DnsRecord`] per query and its response, stamped with
//! the query's time; a query never answered is reported when the flow ends
//! (or when too many are pending) with `unanswered`; a response with no
//! pending query (including a second response to one query) is reported on
//! its own with `unsolicited`, at the response's time. Anomalies (malformed
//! messages, lost framing, caps reached) are counted by reason.
//!
//! Does not: read the wire format (`message.rs`), format record data
//! (`rdata.rs`), or name numbers (`names.rs`). Names keep the case they
//! were sent in.

mod message;
mod names;
mod rdata;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;

use nucleus_proto::DnsRecord;

use self::message::{HEADER_LEN, Header, Message, Question};
use super::{
    AppEvent, Context, Dissector, L4, Limits, Probe, ProbeInput, Protocol, Transports, Want,
};
use crate::packet::Direction;

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

/// Ports where a message with an unusual opcode, or a bare header, is
/// still taken for DNS (DNS, mDNS, LLMNR).
const DNS_PORTS: &[u16] = &[53, 5353, 5355];

/// Most questions a plausible message carries (real ones carry one).
const MAX_PROBE_QUESTIONS: u16 = 4;

fn probe(input: &ProbeInput<'_>) -> Probe {
    let on_dns_port = DNS_PORTS.contains(&input.ports.0) || DNS_PORTS.contains(&input.ports.1);
    match input.l4 {
        L4::Udp => {
            if plausible(input.data, true, on_dns_port) {
                Probe::Match
            } else if on_dns_port {
                // Junk on a DNS port: the next datagrams may still be DNS.
                Probe::NeedMore
            } else {
                Probe::NoMatch
            }
        }
        L4::Tcp => {
            let Some(len) = input.data.get(..2) else {
                return Probe::NeedMore;
            };
            let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
            if len < HEADER_LEN {
                return Probe::NoMatch;
            }
            let body = input.data.get(2..).unwrap_or_default();
            if body.len() < HEADER_LEN {
                return Probe::NeedMore;
            }
            let complete = body.len() >= len;
            let msg = body.get(..len).unwrap_or(body);
            if plausible(msg, complete, on_dns_port) {
                Probe::Match
            } else if !complete && header_plausible(msg, on_dns_port) {
                // The questions may end beyond what has arrived.
                Probe::NeedMore
            } else {
                Probe::NoMatch
            }
        }
    }
}

/// The header alone could start a DNS message.
fn header_plausible(msg: &[u8], on_dns_port: bool) -> bool {
    let Some(h) = Header::parse(msg) else {
        return false;
    };
    if !on_dns_port && !names::known_opcode(h.opcode) {
        return false;
    }
    if h.qdcount > MAX_PROBE_QUESTIONS {
        return false;
    }
    // Every record takes at least 11 bytes, every question 5: counts the
    // message cannot hold are not DNS (random bytes have huge counts).
    let min_len = HEADER_LEN
        + 5 * usize::from(h.qdcount)
        + 11 * (usize::from(h.ancount) + usize::from(h.nscount) + usize::from(h.arcount));
    if min_len > 65_535 {
        return false;
    }
    // A query carries a question (an empty one is seen only on DNS ports).
    if h.qdcount == 0 && !on_dns_port {
        return h.qr && h.ancount > 0;
    }
    true
}

/// `msg` (all of it when `complete`, else its beginning) looks like a DNS
/// message: a plausible header, and questions (and, when complete, every
/// record) that parse.
fn plausible(msg: &[u8], complete: bool, on_dns_port: bool) -> bool {
    if !header_plausible(msg, on_dns_port) {
        return false;
    }
    if complete {
        // Only the header and questions can make `parse` fail; an anomaly
        // in the records rules the message out off the DNS ports alone. On
        // them the questions decide, and the answers are not built twice
        // (the dissector parses the message again).
        if on_dns_port {
            message::check_questions(msg).is_ok()
        } else {
            message::parse(msg).is_ok_and(|m| m.anomalies.is_empty())
        }
    } else {
        match message::check_questions(msg) {
            Ok(_) => true,
            // A question name still running when the probe's bytes end:
            // a kilobyte of well-formed labels is DNS (random bytes fail
            // the label rules within a few labels).
            Err(message::Malformed("name_truncated")) => msg.len() >= MIN_LONG_NAME_PROBE,
            Err(_) => false,
        }
    }
}

/// Bytes of a message whose question name has not ended yet after which a
/// TCP probe accepts it.
const MIN_LONG_NAME_PROBE: usize = 1024;

fn new(limits: &Limits, l4: L4) -> Box<dyn Dissector> {
    Box::new(Dns {
        limits: *limits,
        l4,
        // Most flows carry one query at a time: room for one, not the four
        // a first push would reserve.
        pending: VecDeque::with_capacity(1),
        tcp: [TcpDir::default(), TcpDir::default()],
    })
}

/// A query waiting for its response.
#[derive(Debug)]
struct Pending {
    ts_us: i64,
    header: Header,
    question: Option<Question>,
}

/// Where a TCP direction stands in its stream of length-prefixed messages.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// At a message boundary, or inside a message being buffered.
    #[default]
    Aligned,
    /// Inside a message that is being skipped (too large, or partly lost):
    /// this many bytes remain.
    Skipping(usize),
    /// Framing was lost in a gap: the next data must start a plausible
    /// message to be read.
    Resync,
    /// Framing could not be recovered: the direction is ignored.
    Hopeless,
}

/// One TCP direction's framing state.
#[derive(Debug, Default)]
struct TcpDir {
    framing: Framing,
    /// The current message, length prefix included, as far as it arrived.
    buf: Vec<u8>,
}

/// The dissector of one flow.
#[derive(Debug)]
struct Dns {
    limits: Limits,
    l4: L4,
    /// Queries waiting for responses, oldest first.
    pending: VecDeque<Pending>,
    tcp: [TcpDir; 2],
}

impl Dissector for Dns {
    fn data(&mut self, cx: &mut Context<'_>, dir: Direction, data: &[u8]) -> Want {
        match self.l4 {
            L4::Udp => {
                self.message(cx, data);
                Want::More
            }
            L4::Tcp => self.tcp_data(cx, dir, data),
        }
    }

    fn gap(&mut self, cx: &mut Context<'_>, dir: Direction, len: u64) -> Want {
        if self.l4 == L4::Udp {
            return Want::More;
        }
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        let d = &mut self.tcp[dir as usize];
        d.framing = match d.framing {
            Framing::Hopeless => Framing::Hopeless,
            Framing::Resync => Framing::Resync,
            Framing::Skipping(n) if len < n => Framing::Skipping(n - len),
            Framing::Skipping(n) if len == n => Framing::Aligned,
            Framing::Skipping(_) => Framing::Resync,
            Framing::Aligned => match d.buf.get(..2) {
                Some(&[hi, lo]) => {
                    // Inside a message of known length: it is lost, but the
                    // next one starts where it ends.
                    cx.anomaly("message_lost_in_gap");
                    let total = 2 + usize::from(u16::from_be_bytes([hi, lo]));
                    let remaining = total.saturating_sub(d.buf.len());
                    d.buf.clear();
                    if len < remaining {
                        Framing::Skipping(remaining - len)
                    } else if len == remaining {
                        Framing::Aligned
                    } else {
                        Framing::Resync
                    }
                }
                _ => {
                    d.buf.clear();
                    Framing::Resync
                }
            },
        };
        self.want()
    }

    fn close(&mut self, cx: &mut Context<'_>) {
        for d in &self.tcp {
            if d.framing == Framing::Aligned && !d.buf.is_empty() {
                cx.anomaly("message_incomplete_at_close");
            }
        }
        while let Some(p) = self.pending.pop_front() {
            emit_unanswered(cx, p);
        }
    }
}

impl Dns {
    /// Done once neither TCP direction can be read any more.
    fn want(&self) -> Want {
        if self.tcp.iter().all(|d| d.framing == Framing::Hopeless) {
            Want::Done
        } else {
            Want::More
        }
    }

    fn tcp_data(&mut self, cx: &mut Context<'_>, dir: Direction, mut data: &[u8]) -> Want {
        let max = self.limits.max_buffered_bytes;
        while !data.is_empty() {
            let d = &mut self.tcp[dir as usize];
            match d.framing {
                Framing::Hopeless => break,
                Framing::Skipping(n) => {
                    let k = n.min(data.len());
                    data = data.get(k..).unwrap_or_default();
                    d.framing = if k == n {
                        Framing::Aligned
                    } else {
                        Framing::Skipping(n - k)
                    };
                }
                Framing::Resync => {
                    // The data after a gap is read only if it starts a
                    // plausible message; what it holds is judged as a probe
                    // would (the buffer keeps the start across calls).
                    let keep = data.len().min(max.saturating_sub(d.buf.len()));
                    d.buf
                        .extend_from_slice(data.get(..keep).unwrap_or_default());
                    let input = ProbeInput {
                        l4: L4::Tcp,
                        dir,
                        ports: (53, 53),
                        data: &d.buf,
                    };
                    match probe(&input) {
                        Probe::Match => {
                            d.framing = Framing::Aligned;
                            cx.anomaly("resynchronised_after_gap");
                            let buffered = std::mem::take(&mut d.buf);
                            let rest = data.get(keep..).unwrap_or_default();
                            self.tcp_data(cx, dir, &buffered);
                            return self.tcp_data(cx, dir, rest);
                        }
                        Probe::NeedMore if keep == data.len() && d.buf.len() < max => {}
                        _ => {
                            cx.anomaly("framing_lost");
                            d.buf = Vec::new();
                            d.framing = Framing::Hopeless;
                        }
                    }
                    break;
                }
                Framing::Aligned => {
                    // The length prefix first, then the message.
                    if d.buf.len() < 2 {
                        let k = (2 - d.buf.len()).min(data.len());
                        d.buf.extend_from_slice(data.get(..k).unwrap_or_default());
                        data = data.get(k..).unwrap_or_default();
                        if d.buf.len() < 2 {
                            break;
                        }
                    }
                    let len = match d.buf.get(..2) {
                        Some(&[hi, lo]) => usize::from(u16::from_be_bytes([hi, lo])),
                        _ => 0,
                    };
                    if len == 0 {
                        cx.anomaly("empty_tcp_message");
                        d.buf.clear();
                        continue;
                    }
                    if 2 + len > max {
                        cx.anomaly("message_over_buffer_cap");
                        d.buf.clear();
                        d.framing = Framing::Skipping(len);
                        continue;
                    }
                    let need = 2 + len - d.buf.len();
                    let k = need.min(data.len());
                    let chunk = data.get(..k).unwrap_or_default();
                    data = data.get(k..).unwrap_or_default();
                    if d.buf.len() == 2 && k == need {
                        // The whole message is in this chunk: no copy.
                        d.buf.clear();
                        self.message(cx, chunk);
                        continue;
                    }
                    d.buf.extend_from_slice(chunk);
                    if k == need {
                        let buf = std::mem::take(&mut d.buf);
                        self.message(cx, buf.get(2..).unwrap_or_default());
                        // Keep the allocation for the next message.
                        let d = &mut self.tcp[dir as usize];
                        d.buf = buf;
                        d.buf.clear();
                    }
                }
            }
        }
        self.want()
    }

    /// One whole message.
    fn message(&mut self, cx: &mut Context<'_>, bytes: &[u8]) {
        let m = match message::parse(bytes) {
            Ok(m) => m,
            Err(e) => {
                cx.anomaly(e.0);
                return;
            }
        };
        for &a in &m.anomalies {
            cx.anomaly(a);
        }
        if m.question.as_ref().is_some_and(|q| q.name.truncated) {
            cx.anomaly("name_too_long");
        }
        if m.header.qr {
            self.response(cx, m);
        } else {
            self.query(cx, m);
        }
    }

    fn query(&mut self, cx: &mut Context<'_>, m: Message) {
        if self.pending.len() >= self.limits.max_pending_transactions.max(1) {
            cx.anomaly("pending_transactions_cap");
            if let Some(oldest) = self.pending.pop_front() {
                emit_unanswered(cx, oldest);
            }
        }
        self.pending.push_back(Pending {
            ts_us: cx.ts_us,
            header: m.header,
            question: m.question,
        });
    }

    fn response(&mut self, cx: &mut Context<'_>, m: Message) {
        let index = self.pending.iter().position(|p| {
            p.header.id == m.header.id
                && match (&m.question, &p.question) {
                    (Some(a), Some(b)) => same_question(a, b),
                    // Without a question only the id links them; id 0 is
                    // what every multicast DNS message carries, so it
                    // links nothing.
                    (None, _) => m.header.id != 0,
                    (Some(_), None) => false,
                }
        });
        let rcode = Some(names::rcode(m.rcode()));
        let h = m.header;
        let record =
            |question: Option<Question>, opcode: u8, rd: bool, rtt: Option<f64>| DnsRecord {
                trans_id: h.id,
                rtt,
                qclass: question.as_ref().map(|q| q.qclass),
                qtype: question.as_ref().map(|q| names::rtype(q.qtype)),
                // The question is the record's now: its name moves, uncopied.
                query: question.map(|q| q.name.text),
                opcode: names::opcode(opcode),
                rcode,
                aa: h.aa,
                tc: h.tc,
                rd,
                ra: h.ra,
                answers: Vec::new(),
                unanswered: false,
                unsolicited: false,
            };
        match index.and_then(|i| self.pending.remove(i)) {
            Some(p) => {
                let rtt = Some((cx.ts_us - p.ts_us).max(0) as f64 / 1e6);
                let question = p.question.or(m.question);
                let mut r = record(question, p.header.opcode, p.header.rd, rtt);
                r.answers = m.answers;
                cx.emit(p.ts_us, AppEvent::Dns(r));
            }
            None => {
                let mut r = record(m.question, h.opcode, h.rd, None);
                if r.query.is_none() {
                    // A response with no question (a multicast DNS
                    // announcement): the name it answers for, as Zeek does.
                    r.query = m.answers.first().map(|a| a.name.clone());
                }
                r.answers = m.answers;
                r.unsolicited = true;
                let ts = cx.ts_us;
                cx.emit(ts, AppEvent::Dns(r));
            }
        }
    }
}

/// Same name (ASCII case-insensitively, as DNS compares names), type and
/// class.
fn same_question(a: &Question, b: &Question) -> bool {
    a.qtype == b.qtype && a.qclass == b.qclass && a.name.text.eq_ignore_ascii_case(&b.name.text)
}

fn emit_unanswered(cx: &mut Context<'_>, p: Pending) {
    let q = p.question;
    let r = DnsRecord {
        trans_id: p.header.id,
        rtt: None,
        qclass: q.as_ref().map(|q| q.qclass),
        qtype: q.as_ref().map(|q| names::rtype(q.qtype)),
        query: q.map(|q| q.name.text),
        opcode: names::opcode(p.header.opcode),
        rcode: None,
        aa: p.header.aa,
        tc: p.header.tc,
        rd: p.header.rd,
        ra: p.header.ra,
        answers: Vec::new(),
        unanswered: true,
        unsolicited: false,
    };
    cx.emit(p.ts_us, AppEvent::Dns(r));
}
