//! Recognising DNS by content: [`PROTOCOL`](super::PROTOCOL)'s probe,
//! also used to find the start of a message again after a TCP gap.
//!
//! Owns: the plausibility rules (header counts, known opcodes off the DNS
//! ports, questions that parse, a long name still arriving). Input: the
//! first bytes of a flow (UDP: a datagram; TCP: the stream with its length
//! prefix) and its ports. Output: a [`Probe`] verdict. Does not: read
//! messages for records (`message.rs`) or keep TCP framing state
//! (`tcp.rs`).

use super::message::{self, HEADER_LEN, Header};
use super::names;
use crate::dissect::{L4, Probe, ProbeInput};

/// Ports where a message with an unusual opcode, or a bare header, is
/// still taken for DNS (DNS, mDNS, LLMNR).
const DNS_PORTS: &[u16] = &[53, 5353, 5355];

/// Most questions a plausible message carries (real ones carry one).
const MAX_PROBE_QUESTIONS: u16 = 4;

pub(super) fn probe(input: &ProbeInput<'_>) -> Probe {
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
