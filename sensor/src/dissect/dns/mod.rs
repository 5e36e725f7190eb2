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
//!
//! Layout: this file holds the dissector and pairs queries with
//! responses; the probe is in `probe.rs`, the TCP framing in `tcp.rs`.

mod message;
mod names;
mod probe;
mod rdata;
mod tcp;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;

use nucleus_proto::DnsRecord;

use self::message::{Header, Message, Question};
use self::probe::probe;
use self::tcp::{Framing, TcpDir};
use super::{AppEvent, Context, Dissector, L4, Limits, Protocol, Transports, Want};
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
        self.tcp_gap(cx, dir, len)
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
    // A response repeats the query's name byte for byte, as a rule: the
    // plain comparison settles that case faster than the caseless one.
    a.qtype == b.qtype
        && a.qclass == b.qclass
        && (a.name.text == b.name.text || a.name.text.eq_ignore_ascii_case(&b.name.text))
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
