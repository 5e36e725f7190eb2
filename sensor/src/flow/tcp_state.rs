//! Interim TCP tracker (replaced by the Zeek-compatible one).
use crate::packet::Direction;

/// One TCP segment as the flow table sees it.
#[derive(Debug, Clone, Copy)]
pub struct TcpSegment {
    /// Flags byte.
    pub flags: u8,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgement number.
    pub ack: u32,
    /// Window.
    pub window: u16,
    /// Claimed payload length.
    pub payload_len: u32,
    /// Checksum verdict.
    pub checksum_ok: Option<bool>,
}

/// What the flow table must do after a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleChange {
    /// Keep roles.
    Keep,
    /// Swap originator and responder.
    Flip,
}

/// Interim tracker.
#[derive(Debug, Clone, Default)]
pub struct TcpConnection {
    bytes: [u64; 2],
    syn: [bool; 2],
    fin: [bool; 2],
    rst: bool,
}

impl TcpConnection {
    /// New tracker.
    pub fn new() -> Self {
        Self::default()
    }
    /// Feed a segment.
    pub fn on_segment(&mut self, dir: Direction, seg: &TcpSegment) -> RoleChange {
        let i = dir as usize;
        self.bytes[i] += u64::from(seg.payload_len);
        self.syn[i] |= seg.flags & 0x02 != 0;
        self.fin[i] |= seg.flags & 0x01 != 0;
        self.rst |= seg.flags & 0x04 != 0;
        RoleChange::Keep
    }
    /// State.
    pub fn conn_state(&self) -> &'static str {
        "OTH"
    }
    /// History.
    pub fn history(&self) -> &str {
        ""
    }
    /// Bytes.
    pub fn payload_bytes(&self, dir: Direction) -> u64 {
        self.bytes[dir as usize]
    }
    /// Missed.
    pub fn missed_bytes(&self) -> u64 {
        0
    }
    /// Closed.
    pub fn is_closed(&self) -> bool {
        self.rst || (self.fin[0] && self.fin[1])
    }
}
