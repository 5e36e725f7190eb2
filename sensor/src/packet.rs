//! Packet views shared by every stage: timestamps, directions, and the
//! decoded view of one mirrored packet (see `decap` for how it is built).

/// Which side of a flow sent a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// The side that opened the flow (sent its first packet, or the SYN).
    Originator,
    /// The other side.
    Responder,
}

impl Direction {
    /// The opposite direction.
    pub fn reverse(self) -> Self {
        match self {
            Direction::Originator => Direction::Responder,
            Direction::Responder => Direction::Originator,
        }
    }
}
