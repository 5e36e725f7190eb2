//! DNS over TCP framing (RFC 1035 §4.2.2, RFC 7766): each message behind
//! a two-byte length prefix, several per connection, split across segments
//! as the stream arrives, and resynchronised after a gap.
//!
//! Owns: each direction's framing state and buffer (bounded by
//! `max_buffered_bytes`; a longer message is skipped), and what a gap does
//! to it. Input: one direction's reassembled stream and its gaps. Output:
//! whole messages, handed to the dissector one at a time, and anomalies for
//! what was lost. Does not: read a message (`message.rs`), decide what
//! starts one after a gap (`probe.rs`), or pair queries with responses
//! (`mod.rs`).

use super::Dns;
use super::probe::probe;
use crate::dissect::{Context, L4, Probe, ProbeInput, Want};
use crate::packet::Direction;

/// Where a TCP direction stands in its stream of length-prefixed messages.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
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
pub(super) struct TcpDir {
    pub(super) framing: Framing,
    /// The current message, length prefix included, as far as it arrived.
    pub(super) buf: Vec<u8>,
}

impl Dns {
    /// A gap in one TCP direction: how much of the framing survives it.
    pub(super) fn tcp_gap(&mut self, cx: &mut Context<'_>, dir: Direction, len: u64) -> Want {
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

    /// Done once neither TCP direction can be read any more.
    fn want(&self) -> Want {
        if self.tcp.iter().all(|d| d.framing == Framing::Hopeless) {
            Want::Done
        } else {
            Want::More
        }
    }

    pub(super) fn tcp_data(
        &mut self,
        cx: &mut Context<'_>,
        dir: Direction,
        mut data: &[u8],
    ) -> Want {
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
}
