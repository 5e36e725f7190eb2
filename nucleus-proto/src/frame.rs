//! The framed byte stream between a sensor and a Nucleus (PROTOCOL.md).
//!
//! Owns: the 8-byte preamble (`NUCL`, protocol version, flags) each side
//! sends first, and frames of `[length u32 BE][type u8][payload]` whose
//! payload is one protobuf message (`Hello`, `Batch`, `Ack`, `Error`).
//! Inputs: bytes as they arrive, in pieces of any size. Outputs: typed
//! frames, or a typed error after which the stream is out of step and
//! must be closed. Does not: open batches (`crate::batch`) or do I/O.
//!
//! Hostile input: a frame's length is checked against the configured
//! maximum as soon as its 5-byte header is in, before its payload is
//! waited for, so a reader that drains frames after each read never holds
//! more than one maximum frame plus one read; nothing is allocated from a
//! declared length.

use crate::pb;
use prost::Message;

/// First bytes of each side's stream.
pub const MAGIC: [u8; 4] = *b"NUCL";
/// The framing version this build speaks.
pub const PROTOCOL_VERSION: u16 = 1;
/// Magic, version (u16 BE), flags (u16 BE, zero).
pub const PREAMBLE_LEN: usize = 8;
/// Length (u32 BE) and type (u8).
pub const HEADER_LEN: usize = 5;
/// The default largest frame payload: a batch of thousands of records
/// compresses to tens of kilobytes.
pub const DEFAULT_MAX_FRAME_BYTES: u32 = 16 << 20;

/// The type byte of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameType {
    /// `pb::Hello`.
    Hello = 1,
    /// `pb::Batch`.
    Batch = 2,
    /// `pb::Ack`.
    Ack = 3,
    /// `pb::Error`.
    Error = 4,
}

impl FrameType {
    fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            1 => Self::Hello,
            2 => Self::Batch,
            3 => Self::Ack,
            4 => Self::Error,
            _ => return None,
        })
    }
}

/// One decoded frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// Who is talking.
    Hello(pb::Hello),
    /// Records.
    Batch(pb::Batch),
    /// A batch is durably written.
    Ack(pb::Ack),
    /// The sender is closing, and why.
    Error(pb::Error),
}

impl Frame {
    /// The frame's type byte.
    pub fn frame_type(&self) -> FrameType {
        match self {
            Frame::Hello(_) => FrameType::Hello,
            Frame::Batch(_) => FrameType::Batch,
            Frame::Ack(_) => FrameType::Ack,
            Frame::Error(_) => FrameType::Error,
        }
    }

    fn payload_len(&self) -> usize {
        match self {
            Frame::Hello(m) => m.encoded_len(),
            Frame::Batch(m) => m.encoded_len(),
            Frame::Ack(m) => m.encoded_len(),
            Frame::Error(m) => m.encoded_len(),
        }
    }
}

/// Why a stream or a frame was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FrameError {
    /// The stream does not start with `NUCL`.
    #[error("not a Nucleus stream (bad magic)")]
    BadMagic,
    /// The peer speaks another framing version.
    #[error("unsupported protocol version {0} (this side speaks {PROTOCOL_VERSION})")]
    UnsupportedVersion(u16),
    /// A frame longer than the configured maximum.
    #[error("frame of {len} bytes is over the limit of {max}")]
    TooLarge {
        /// Declared payload length.
        len: u32,
        /// The limit.
        max: u32,
    },
    /// A type byte this build does not know.
    #[error("unknown frame type {0}")]
    UnknownType(u8),
    /// The payload is not the protobuf message its type says.
    #[error("malformed {frame_type:?} frame: {detail}")]
    Malformed {
        /// The frame's type.
        frame_type: FrameType,
        /// prost's description.
        detail: String,
    },
    /// An earlier error left the stream out of step.
    #[error("the stream failed earlier")]
    AfterError,
}

/// The preamble this side sends first.
pub fn preamble() -> [u8; PREAMBLE_LEN] {
    let mut p = [0u8; PREAMBLE_LEN];
    p[..4].copy_from_slice(&MAGIC);
    p[4..6].copy_from_slice(&PROTOCOL_VERSION.to_be_bytes());
    p
}

/// Checks a peer's preamble at the front of `buf`: `Ok(None)` until all 8
/// bytes are in, then the number of bytes it took. Flags are reserved:
/// nonzero ones are ignored, so a later version may use them for options an
/// older peer can do without.
pub fn read_preamble(buf: &[u8]) -> Result<Option<usize>, FrameError> {
    let magic_in = buf.len().min(MAGIC.len());
    if buf[..magic_in] != MAGIC[..magic_in] {
        return Err(FrameError::BadMagic);
    }
    let Some(p) = buf.get(..PREAMBLE_LEN) else {
        return Ok(None);
    };
    let version = u16::from_be_bytes([p[4], p[5]]);
    if version != PROTOCOL_VERSION {
        return Err(FrameError::UnsupportedVersion(version));
    }
    Ok(Some(PREAMBLE_LEN))
}

/// Appends `frame` to `out`; refuses one whose payload exceeds `max`.
pub fn encode(frame: &Frame, max: u32, out: &mut Vec<u8>) -> Result<(), FrameError> {
    let len = frame.payload_len();
    let len32 = u32::try_from(len).unwrap_or(u32::MAX);
    if len32 > max {
        return Err(FrameError::TooLarge { len: len32, max });
    }
    out.reserve(HEADER_LEN + len);
    out.extend_from_slice(&len32.to_be_bytes());
    out.push(frame.frame_type() as u8);
    match frame {
        Frame::Hello(m) => m.encode_raw(out),
        Frame::Batch(m) => m.encode_raw(out),
        Frame::Ack(m) => m.encode_raw(out),
        Frame::Error(m) => m.encode_raw(out),
    }
    Ok(())
}

/// Appends a frame of type `frame_type` whose payload is already encoded
/// (a spooled batch is kept as its protobuf bytes and sent as they are);
/// refuses a payload over `max`.
pub fn encode_raw(
    frame_type: FrameType,
    payload: &[u8],
    max: u32,
    out: &mut Vec<u8>,
) -> Result<(), FrameError> {
    let len32 = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    if len32 > max {
        return Err(FrameError::TooLarge { len: len32, max });
    }
    out.reserve(HEADER_LEN + payload.len());
    out.extend_from_slice(&len32.to_be_bytes());
    out.push(frame_type as u8);
    out.extend_from_slice(payload);
    Ok(())
}

/// Decodes the frame at the front of `buf`: `Ok(None)` until it is all in,
/// then the frame and the bytes it took. The length is checked against
/// `max` as soon as the header is in.
pub fn decode(buf: &[u8], max: u32) -> Result<Option<(Frame, usize)>, FrameError> {
    let Some(header) = buf.get(..HEADER_LEN) else {
        return Ok(None);
    };
    let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    let frame_type = FrameType::from_byte(header[4]).ok_or(FrameError::UnknownType(header[4]))?;
    let end = HEADER_LEN.saturating_add(len as usize);
    let Some(payload) = buf.get(HEADER_LEN..end) else {
        return Ok(None);
    };
    let malformed = |e: prost::DecodeError| FrameError::Malformed {
        frame_type,
        detail: e.to_string(),
    };
    let frame = match frame_type {
        FrameType::Hello => Frame::Hello(pb::Hello::decode(payload).map_err(malformed)?),
        FrameType::Batch => Frame::Batch(pb::Batch::decode(payload).map_err(malformed)?),
        FrameType::Ack => Frame::Ack(pb::Ack::decode(payload).map_err(malformed)?),
        FrameType::Error => Frame::Error(pb::Error::decode(payload).map_err(malformed)?),
    };
    Ok(Some((frame, end)))
}

/// A peer's stream read incrementally: the preamble, then frames. Push
/// the bytes of each read, then take frames until `None`.
#[derive(Debug)]
pub struct FrameReader {
    buf: Vec<u8>,
    start: usize,
    max_frame_bytes: u32,
    preamble_done: bool,
    failed: bool,
}

impl FrameReader {
    /// A reader that refuses frames over `max_frame_bytes`.
    pub fn new(max_frame_bytes: u32) -> Self {
        Self {
            buf: Vec::new(),
            start: 0,
            max_frame_bytes,
            preamble_done: false,
            failed: false,
        }
    }

    /// Appends bytes received from the peer.
    pub fn push(&mut self, data: &[u8]) {
        // Drop what was consumed before growing, so the buffer holds at
        // most the unconsumed tail plus this read.
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// Bytes received and not yet consumed.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// The next complete frame, `None` when more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        if self.failed {
            return Err(FrameError::AfterError);
        }
        let r = self.step();
        if r.is_err() {
            self.failed = true;
        }
        r
    }

    fn step(&mut self) -> Result<Option<Frame>, FrameError> {
        let pending = self.buf.get(self.start..).unwrap_or_default();
        if !self.preamble_done {
            match read_preamble(pending)? {
                None => return Ok(None),
                Some(n) => {
                    self.start += n;
                    self.preamble_done = true;
                }
            }
        }
        let pending = self.buf.get(self.start..).unwrap_or_default();
        match decode(pending, self.max_frame_bytes)? {
            None => Ok(None),
            Some((frame, n)) => {
                self.start += n;
                Ok(Some(frame))
            }
        }
    }
}

/// Pushes `data` through a [`FrameReader`] in pieces whose sizes come from
/// the data itself, and opens every batch under small limits: the fuzz
/// target's body, also replayed over its seed corpus in the tests. Returns
/// the frames decoded.
pub fn fuzz_input(data: &[u8]) -> usize {
    let Some((&split, rest)) = data.split_first() else {
        return 0;
    };
    let piece = usize::from(split % 64) + 1;
    let mut reader = FrameReader::new(1 << 20);
    let limits = crate::batch::BatchLimits {
        max_block_bytes: 1 << 20,
        max_records: 4096,
    };
    let mut frames = 0;
    for chunk in rest.chunks(piece) {
        reader.push(chunk);
        loop {
            match reader.next_frame() {
                Ok(Some(Frame::Batch(b))) => {
                    frames += 1;
                    // Opening may fail on hostile input; it must not panic.
                    let _ = crate::batch::open(&b, &limits);
                }
                Ok(Some(_)) => frames += 1,
                Ok(None) => break,
                Err(_) => return frames,
            }
        }
    }
    frames
}
