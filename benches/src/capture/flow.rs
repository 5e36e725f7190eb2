//! One flow as a time-ordered list of planned packets, and the rendering of
//! a plan into real headers and payload bytes.
//!
//! A flow is planned whole when it starts (causally: every reply is timed
//! from what it answers), sorted by time, and then drained one packet at a
//! time by the scheduler, which interleaves thousands of flows. Payloads are
//! not stored per packet: a TCP segment names a slice of one of the flow's
//! messages, rendered when the packet is written.

use std::collections::VecDeque;

use anyhow::Result;
use etherparse::{TcpHeader, TcpOptionElement};

use super::content::{Content, Message};
use super::topology::{Direction, Endpoints, Topology};
use super::wire::{CaptureWriter, OutgoingPacket, Transport};

/// TCP flag bits as they sit in the header's flags byte.
pub mod flags {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// PSH.
    pub const PSH: u8 = 0x08;
    /// ACK.
    pub const ACK: u8 = 0x10;
}

/// Which TCP options a segment carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpOptionsPlan {
    /// None (RST segments).
    None,
    /// NOP, NOP, timestamps: 12 bytes, on every segment after the handshake.
    Timestamps,
    /// Linux's SYN options: MSS, SACK permitted, timestamps, NOP, window
    /// scale 7.
    Syn {
        /// Announced maximum segment size.
        mss: u16,
    },
}

/// A byte range of one of the flow's messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamSlice {
    /// Index into [`Flow::messages`].
    pub message: u16,
    /// First byte within the message.
    pub offset: u32,
    /// Byte count.
    pub len: u16,
}

/// A planned TCP segment.
#[derive(Debug, Clone, Copy)]
pub struct TcpPlan {
    /// [`flags`] bits.
    pub flags: u8,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number (meaningful when ACK is set).
    pub ack: u32,
    /// Options to carry.
    pub options: TcpOptionsPlan,
    /// Payload, if any.
    pub payload: Option<StreamSlice>,
}

/// What a planned packet carries above IP.
#[derive(Debug, Clone, Copy)]
pub enum PlanBody {
    /// A TCP segment.
    Tcp(TcpPlan),
    /// A UDP datagram whose payload is [`Flow::datagrams`]`[index]`.
    Datagram(u16),
    /// An ICMP echo whose payload is [`Flow::datagrams`]`[payload]`.
    Echo {
        /// Request or reply.
        request: bool,
        /// Identifier.
        id: u16,
        /// Sequence number.
        seq: u16,
        /// Index of the payload in [`Flow::datagrams`].
        payload: u16,
    },
}

/// One packet of a flow's plan.
#[derive(Debug, Clone, Copy)]
pub struct PacketPlan {
    /// Capture time, nanoseconds after capture start.
    pub at_ns: u64,
    /// Who sends it.
    pub direction: Direction,
    /// Its contents.
    pub body: PlanBody,
}

/// Per-side TCP constants of one connection.
#[derive(Debug, Clone, Default)]
pub struct TcpConstants {
    /// Advertised window (scaled by 2^7), client then server.
    pub window: [u16; 2],
    /// Timestamp clock origin (ms), client then server.
    pub ts_origin: [u32; 2],
    /// Round-trip time seen from the vantage point, for TSecr.
    pub rtt_ns: u64,
}

/// A flow being written.
#[derive(Debug)]
pub struct Flow {
    /// Addresses and ports.
    pub endpoints: Endpoints,
    /// Packets still to write, in time order.
    pub plans: VecDeque<PacketPlan>,
    /// TCP stream contents, referenced by [`StreamSlice`].
    pub messages: Vec<Message>,
    /// UDP and ICMP payloads.
    pub datagrams: Vec<Vec<u8>>,
    /// TCP constants (unused by other kinds).
    pub tcp: TcpConstants,
    /// Next IPv4 identification per side (IPv6: unused).
    pub ip_id: [u16; 2],
}

impl Flow {
    /// A flow with no packets planned yet.
    pub fn new(endpoints: Endpoints) -> Self {
        Self {
            endpoints,
            plans: VecDeque::new(),
            messages: Vec::new(),
            datagrams: Vec::new(),
            tcp: TcpConstants::default(),
            ip_id: [0; 2],
        }
    }

    /// Sorts the plan by time; ties keep their causal (insertion) order.
    pub fn sort_plans(&mut self) {
        self.plans.make_contiguous().sort_by_key(|plan| plan.at_ns);
    }

    /// Time of the next packet, if any.
    pub fn next_at_ns(&self) -> Option<u64> {
        self.plans.front().map(|plan| plan.at_ns)
    }

    /// Writes the next planned packet; returns false when none is left.
    pub fn write_next(
        &mut self,
        topology: &Topology,
        content: &Content,
        scratch: &mut Vec<u8>,
        writer: &mut CaptureWriter,
    ) -> Result<bool> {
        let Some(plan) = self.plans.pop_front() else {
            return Ok(false);
        };
        let side = plan.direction.sender_index();
        let ip_id = self.ip_id[side];
        self.ip_id[side] = ip_id.wrapping_add(1);
        scratch.clear();
        let transport = match plan.body {
            PlanBody::Tcp(segment) => {
                if let Some(slice) = segment.payload {
                    content.render(&self.messages[usize::from(slice.message)], slice, scratch);
                }
                Transport::Tcp(self.tcp_header(plan.at_ns, plan.direction, &segment)?)
            }
            PlanBody::Datagram(index) => {
                scratch.extend_from_slice(&self.datagrams[usize::from(index)]);
                Transport::Udp
            }
            PlanBody::Echo {
                request,
                id,
                seq,
                payload,
            } => {
                scratch.extend_from_slice(&self.datagrams[usize::from(payload)]);
                Transport::Echo { request, id, seq }
            }
        };
        let packet = OutgoingPacket {
            at_ns: plan.at_ns,
            endpoints: &self.endpoints,
            direction: plan.direction,
            ip_id,
            transport,
            payload: scratch,
        };
        writer.write(topology, packet)?;
        Ok(true)
    }

    /// The full TCP header of a planned segment.
    fn tcp_header(&self, at_ns: u64, direction: Direction, segment: &TcpPlan) -> Result<TcpHeader> {
        let side = direction.sender_index();
        let peer = direction.reverse().sender_index();
        let (source_port, destination_port) = match direction {
            Direction::ToServer => (self.endpoints.client_port, self.endpoints.server_port),
            Direction::ToClient => (self.endpoints.server_port, self.endpoints.client_port),
        };
        let mut header = TcpHeader::new(
            source_port,
            destination_port,
            segment.seq,
            self.tcp.window[side],
        );
        let bits = segment.flags;
        header.fin = bits & flags::FIN != 0;
        header.syn = bits & flags::SYN != 0;
        header.rst = bits & flags::RST != 0;
        header.psh = bits & flags::PSH != 0;
        header.ack = bits & flags::ACK != 0;
        if header.ack {
            header.acknowledgment_number = segment.ack;
        }
        // TSval ticks in milliseconds from a per-host origin; TSecr echoes
        // the peer's clock as it was one round trip ago.
        let ts_value = self.tcp.ts_origin[side].wrapping_add((at_ns / 1_000_000) as u32);
        let ts_echo = self.tcp.ts_origin[peer]
            .wrapping_add((at_ns.saturating_sub(self.tcp.rtt_ns) / 1_000_000) as u32);
        let options: &[TcpOptionElement] = match segment.options {
            TcpOptionsPlan::None => &[],
            TcpOptionsPlan::Timestamps => &[
                TcpOptionElement::Noop,
                TcpOptionElement::Noop,
                TcpOptionElement::Timestamp(ts_value, ts_echo),
            ],
            TcpOptionsPlan::Syn { mss } => {
                // SYN/ACK echoes the client's TSval; the SYN has none to echo.
                let echo = if header.ack { ts_echo } else { 0 };
                header.window_size = 64240;
                &[
                    TcpOptionElement::MaximumSegmentSize(mss),
                    TcpOptionElement::SelectiveAcknowledgementPermitted,
                    TcpOptionElement::Timestamp(ts_value, echo),
                    TcpOptionElement::Noop,
                    TcpOptionElement::WindowScale(7),
                ]
            }
        };
        header
            .set_options(options)
            .map_err(|error| anyhow::anyhow!("TCP options: {error:?}"))?;
        Ok(header)
    }
}
