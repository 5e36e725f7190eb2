//! Plans the packets of one TCP connection with correct sequence and
//! acknowledgment numbers and causal timing.
//!
//! Time is the vantage point's: the monitored ENI. A packet that side `s`
//! sends in answer to one seen at time `t` is seen at
//! `t + 2 * delay_ns[s] + processing`, where `delay_ns[s]` is the one-way
//! delay between the vantage point and side `s` (near zero for the
//! monitored instance itself). Data goes in slow-start rounds: a burst of
//! `cwnd` segments at the sender's line rate, an ACK for every second
//! segment (RFC 1122 §4.2.3.2), and the next burst when the first ACK of
//! the round is back at the sender.

use super::content::Message;
use super::flow::{Flow, PacketPlan, PlanBody, StreamSlice, TcpOptionsPlan, TcpPlan, flags};
use super::rng::Rng;
use super::topology::Direction;

/// Initial congestion window in segments (RFC 6928).
const INITIAL_CWND: u32 = 10;
/// Largest burst in segments.
const MAX_CWND: u32 = 256;
/// Least time between two packets of one sender.
const MIN_SPACING_NS: u64 = 100;
/// Bytes a segment adds on the wire besides its payload (Ethernet, IPv4,
/// TCP with timestamps), for pacing.
const SEGMENT_OVERHEAD_BYTES: u64 = 14 + 20 + 32;

/// Network properties of one connection.
#[derive(Debug, Clone, Copy)]
pub struct TcpPath {
    /// One-way delay from the vantage point to the client, then the server.
    pub delay_ns: [u64; 2],
    /// The senders' line rate, for spacing segments of one burst.
    pub link_mbps: u64,
    /// Payload bytes per full segment (the MSS less 12 bytes of timestamps).
    pub segment_payload: u16,
}

/// Whether the receiver sends its own ACK for the last segment of a
/// message or lets the reply carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinalAck {
    /// A pure ACK follows the last segment.
    Pure,
    /// The receiver answers at once; its reply acknowledges the message.
    Piggyback,
}

/// Builds the plan of one connection into a [`Flow`].
pub struct TcpPlanner<'flow> {
    flow: &'flow mut Flow,
    path: TcpPath,
    /// Next sequence number per side (client, server).
    next_seq: [u32; 2],
    /// Congestion window per side, in segments.
    cwnd: [u32; 2],
    /// When each side last sent: a host's segments leave in the order it
    /// produced them.
    last_sent_ns: [u64; 2],
}

impl<'flow> TcpPlanner<'flow> {
    /// Starts planning with random initial sequence numbers.
    pub fn new(flow: &'flow mut Flow, path: TcpPath, rng: &mut Rng) -> Self {
        flow.tcp.rtt_ns = 2 * (path.delay_ns[0] + path.delay_ns[1]);
        Self {
            flow,
            path,
            next_seq: [rng.next_u32(), rng.next_u32()],
            cwnd: [INITIAL_CWND; 2],
            last_sent_ns: [0; 2],
        }
    }

    /// The time at the vantage point at which `side` (0 client, 1 server)
    /// answers a packet seen at `seen_ns`, after `processing_ns`.
    pub fn answer_at(&self, side: usize, seen_ns: u64, processing_ns: u64) -> u64 {
        seen_ns + 2 * self.path.delay_ns[side] + processing_ns
    }

    /// Stores a message of the connection's streams; returns its index
    /// for [`TcpPlanner::send`].
    pub fn add_message(&mut self, message: Message) -> u16 {
        self.flow.messages.push(message);
        (self.flow.messages.len() - 1) as u16
    }

    /// Plans a segment at `at_ns` or, if its sender has planned a later
    /// one already, right after that; returns the time used.
    fn push(&mut self, at_ns: u64, direction: Direction, segment: TcpPlan) -> u64 {
        let side = direction.sender_index();
        let at_ns = at_ns.max(self.last_sent_ns[side] + MIN_SPACING_NS);
        self.last_sent_ns[side] = at_ns;
        self.flow.plans.push_back(PacketPlan {
            at_ns,
            direction,
            body: PlanBody::Tcp(segment),
        });
        at_ns
    }

    /// A segment from `direction`'s sender at its current sequence number,
    /// acknowledging everything the other side has sent.
    fn control(&mut self, at_ns: u64, direction: Direction, bits: u8) -> u64 {
        let side = direction.sender_index();
        let options = if bits & flags::RST != 0 {
            TcpOptionsPlan::None
        } else {
            TcpOptionsPlan::Timestamps
        };
        let segment = TcpPlan {
            flags: bits,
            seq: self.next_seq[side],
            ack: self.next_seq[1 - side],
            options,
            payload: None,
        };
        let at_ns = self.push(at_ns, direction, segment);
        if bits & (flags::SYN | flags::FIN) != 0 {
            self.next_seq[side] = self.next_seq[side].wrapping_add(1);
        }
        at_ns
    }

    /// SYN, SYN/ACK, ACK from `start_ns`; returns when the last is seen.
    pub fn handshake(&mut self, rng: &mut Rng, start_ns: u64) -> u64 {
        let mss = self.path.segment_payload + 12;
        let syn = TcpPlan {
            flags: flags::SYN,
            seq: self.next_seq[0],
            ack: 0,
            options: TcpOptionsPlan::Syn { mss },
            payload: None,
        };
        let start_ns = self.push(start_ns, Direction::ToServer, syn);
        self.next_seq[0] = self.next_seq[0].wrapping_add(1);
        let syn_ack_at = self.answer_at(1, start_ns, rng.range(5_000, 40_000));
        let syn_ack = TcpPlan {
            flags: flags::SYN | flags::ACK,
            seq: self.next_seq[1],
            ack: self.next_seq[0],
            options: TcpOptionsPlan::Syn { mss },
            payload: None,
        };
        let syn_ack_at = self.push(syn_ack_at, Direction::ToClient, syn_ack);
        self.next_seq[1] = self.next_seq[1].wrapping_add(1);
        let ack_at = self.answer_at(0, syn_ack_at, rng.range(5_000, 30_000));
        self.control(ack_at, Direction::ToServer, flags::ACK)
    }

    /// A SYN answered by RST/ACK: nothing listens on the port.
    pub fn refused(&mut self, rng: &mut Rng, start_ns: u64) {
        let syn = TcpPlan {
            flags: flags::SYN,
            seq: self.next_seq[0],
            ack: 0,
            options: TcpOptionsPlan::Syn {
                mss: self.path.segment_payload + 12,
            },
            payload: None,
        };
        let start_ns = self.push(start_ns, Direction::ToServer, syn);
        self.next_seq[0] = self.next_seq[0].wrapping_add(1);
        let reset_at = self.answer_at(1, start_ns, rng.range(5_000, 20_000));
        let reset = TcpPlan {
            flags: flags::RST | flags::ACK,
            seq: 0,
            ack: self.next_seq[0],
            options: TcpOptionsPlan::None,
            payload: None,
        };
        self.push(reset_at, Direction::ToClient, reset);
    }

    /// Sends message `message` of the flow from `direction`'s sender,
    /// starting at `start_ns`. Returns when the last ACK is seen
    /// ([`FinalAck::Pure`]) or when the last segment is ([`FinalAck::Piggyback`]).
    pub fn send(
        &mut self,
        rng: &mut Rng,
        direction: Direction,
        message: u16,
        start_ns: u64,
        final_ack: FinalAck,
    ) -> u64 {
        let side = direction.sender_index();
        let receiver = 1 - side;
        let total = self.flow.messages[usize::from(message)].stream_len();
        let segment_payload = u32::from(self.path.segment_payload);
        let gap_ns = (u64::from(segment_payload) + SEGMENT_OVERHEAD_BYTES) * 8_000
            / self.path.link_mbps.max(1);
        let (mut offset, mut sent, mut round_start) = (0u32, 0u32, start_ns);
        let (mut last_segment_at, mut last_ack_at) = (start_ns, start_ns);
        while offset < total {
            let mut first_ack_at = None;
            // A round starts before the previous one is fully acked: keep
            // each to half the receiver's window (scale 2^7) so that what
            // is in flight never exceeds it.
            let window_segments =
                (u32::from(self.flow.tcp.window[receiver]) << 6) / segment_payload.max(1);
            for index in 0..u64::from(self.cwnd[side].min(window_segments.max(1))) {
                if offset >= total {
                    break;
                }
                let len = segment_payload.min(total - offset);
                let planned_ns = round_start + index * gap_ns;
                let last = offset + len == total;
                let segment = TcpPlan {
                    flags: flags::ACK | if last { flags::PSH } else { 0 },
                    seq: self.next_seq[side],
                    ack: self.next_seq[receiver],
                    options: TcpOptionsPlan::Timestamps,
                    payload: Some(StreamSlice {
                        message,
                        offset,
                        len: len as u16,
                    }),
                };
                let at_ns = self.push(planned_ns, direction, segment);
                self.next_seq[side] = self.next_seq[side].wrapping_add(len);
                (offset, sent, last_segment_at) = (offset + len, sent + 1, at_ns);
                let wants_ack = sent % 2 == 0 || last;
                if !wants_ack || (last && final_ack == FinalAck::Piggyback) {
                    continue;
                }
                // Every second segment is acked at once; a lone last one
                // waits for the delayed-ACK timer or the application.
                let ack_delay = if sent % 2 == 0 {
                    rng.range(8_000, 40_000)
                } else {
                    rng.range(40_000, 4_000_000)
                };
                let ack_at = self.answer_at(receiver, at_ns, ack_delay);
                let ack = TcpPlan {
                    flags: flags::ACK,
                    seq: self.next_seq[receiver],
                    ack: self.next_seq[side],
                    options: TcpOptionsPlan::Timestamps,
                    payload: None,
                };
                let ack_at = self.push(ack_at, direction.reverse(), ack);
                first_ack_at.get_or_insert(ack_at);
                last_ack_at = last_ack_at.max(ack_at);
            }
            let released = self.answer_at(side, first_ack_at.unwrap_or(last_segment_at), 2_000);
            round_start = released.max(last_segment_at + gap_ns);
            self.cwnd[side] = (self.cwnd[side] * 2).min(MAX_CWND);
        }
        match final_ack {
            FinalAck::Pure => last_ack_at.max(last_segment_at),
            FinalAck::Piggyback => last_segment_at,
        }
    }

    /// Orderly close started by `closer` at `start_ns`: FIN, the other
    /// side's FIN (with or without a separate ACK first), final ACK.
    pub fn close(&mut self, rng: &mut Rng, closer: Direction, start_ns: u64) -> u64 {
        let (closer_side, other_side) = (closer.sender_index(), closer.reverse().sender_index());
        let fin_at = self.control(start_ns, closer, flags::FIN | flags::ACK);
        let mut answer_at = self.answer_at(other_side, fin_at, rng.range(10_000, 60_000));
        if rng.chance(0.3) {
            answer_at = self.control(answer_at, closer.reverse(), flags::ACK);
            answer_at += rng.range(20_000, 2_000_000);
        }
        let answer_at = self.control(answer_at, closer.reverse(), flags::FIN | flags::ACK);
        let last_at = self.answer_at(closer_side, answer_at, rng.range(5_000, 30_000));
        self.control(last_at, closer, flags::ACK)
    }

    /// Abortive close: one RST (half the time with ACK) from `sender`.
    pub fn reset(&mut self, rng: &mut Rng, sender: Direction, at_ns: u64) {
        let bits = if rng.chance(0.5) {
            flags::RST | flags::ACK
        } else {
            flags::RST
        };
        self.control(at_ns, sender, bits);
    }
}
