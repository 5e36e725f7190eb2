//! The application layer of one flow: which protocol it speaks, its TCP
//! streams reassembled into that protocol's dissector, and the records the
//! dissector emits, given the flow's identity.
//!
//! Owns: probing ([`crate::dissect::REGISTRY`] order, port-hinted protocols
//! first; a protocol that rejects the content in either direction is not
//! asked again), the bytes kept while probing (`dissect.probe_bytes` per TCP
//! direction, `dissect.probe_datagrams` UDP datagrams), the two
//! [`Stream`]s of a TCP flow, and stopping everything once the dissector
//! needs nothing more (or no protocol matched): from then on the flow costs
//! only its accounting. Input: a flow's payload-bearing packets, in
//! packet-time order, from the flow table. Output: [`Emitted`] records in
//! [`AppShared`], which the table wraps with the flow's uid, 5-tuple and
//! Community ID. Does not: track TCP state or count the flow's bytes.
//!
//! The probes themselves are asked in `probe.rs`; re-probing after an
//! upgrade is `upgrade.rs`.

use super::reassembly::{Budget, Chunk, Segment, Stats, Stream, StreamLimits};
use crate::config::{DissectConfig, ReassemblyConfig};
use crate::dissect::{Context, Dissector, Emitted, L4, Limits, Protocol, Want, by_name};
use crate::packet::Direction;

/// The worker's dissection settings, fixed at start.
#[derive(Debug)]
struct Settings {
    protocols: Vec<&'static Protocol>,
    limits: Limits,
    stream: StreamLimits,
    probe_bytes: usize,
    probe_datagrams: u32,
    max_upgrades: u32,
}

/// Settings and scratch space shared by the flows of one worker.
#[derive(Debug)]
pub struct AppShared {
    settings: Settings,
    /// Out-of-order bytes held by every stream of the worker.
    pub budget: Budget,
    /// Reassembly counts since the caller last took them.
    pub stats: Stats,
    /// Records emitted by the last call, for the caller to take.
    pub emitted: Vec<Emitted>,
    /// Anomalies counted by the last call, for the caller to take.
    pub anomalies: Vec<&'static str>,
}

impl AppShared {
    /// The worker's settings.
    pub fn new(r: &ReassemblyConfig, d: &DissectConfig) -> Self {
        Self {
            settings: Settings {
                protocols: d.protocols.iter().filter_map(|n| by_name(n)).collect(),
                limits: Limits {
                    max_pending_transactions: d.max_pending_transactions,
                    max_buffered_bytes: d.max_buffered_bytes,
                },
                stream: StreamLimits {
                    max_bytes: r.max_stream_bytes,
                    max_segments: r.max_stream_segments,
                },
                probe_bytes: d.probe_bytes,
                probe_datagrams: d.probe_datagrams,
                max_upgrades: d.max_upgrades,
            },
            budget: Budget::new(r.max_bytes),
            stats: Stats::default(),
            emitted: Vec::new(),
            anomalies: Vec::new(),
        }
    }

    /// The same settings with `protocols` in place of the configured ones
    /// (tests of the framework with protocols of their own).
    #[cfg(test)]
    pub(crate) fn with_protocols(mut self, protocols: Vec<&'static Protocol>) -> Self {
        self.settings.protocols = protocols;
        self
    }

    /// True when some protocol is enabled for `l4`.
    pub fn wants(&self, l4: L4) -> bool {
        self.settings.protocols.iter().any(|p| supports(p, l4))
    }

    /// What one call works with, borrowed apart: the settings with the
    /// flow's ports and transport, the dissector context at `ts_us`, and the
    /// reassembly budget and counts.
    fn split(
        &mut self,
        ts_us: i64,
        ports: (u16, u16),
        l4: L4,
    ) -> (Env<'_>, Context<'_>, &mut Budget, &mut Stats) {
        let Self {
            settings,
            budget,
            stats,
            emitted,
            anomalies,
        } = self;
        let env = Env {
            settings,
            ports,
            l4,
        };
        let cx = Context {
            ts_us,
            out: emitted,
            anomalies,
        };
        (env, cx, budget, stats)
    }
}

fn supports(p: &Protocol, l4: L4) -> bool {
    match l4 {
        L4::Tcp => p.transports.tcp,
        L4::Udp => p.transports.udp,
    }
}

/// The application state of one flow.
#[derive(Debug)]
pub struct AppState {
    l4: L4,
    ports: (u16, u16),
    streams: [Stream; 2],
    reader: Reader,
}

#[derive(Debug)]
struct Reader {
    phase: Phase,
    /// Bytes of each TCP direction kept while probing.
    probe: [Vec<u8>; 2],
    /// UDP datagrams probed.
    datagrams: u32,
    /// Protocols (indexes into `AppShared::protocols`) that rejected the
    /// content.
    excluded: u64,
    /// The first protocol identified, kept after the dissector is done and
    /// across upgrades (the TLS after an SMTP STARTTLS leaves it `smtp`; the
    /// tls record of the same flow shows the upgrade).
    identified: Option<&'static str>,
    /// Times the flow was identified afresh after [`Want::Reprobe`].
    upgrades: u32,
}

#[derive(Debug)]
enum Phase {
    Probing,
    Active { dissector: Box<dyn Dissector> },
    Done,
}

/// What the flow table learns from one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing new.
    Continue,
    /// The flow's protocol is now known.
    Identified(&'static str),
    /// Nothing more is wanted from this flow: drop its state.
    Finished,
}

impl AppState {
    /// State for a new flow with these (originator, responder) ports.
    pub fn new(l4: L4, ports: (u16, u16)) -> Self {
        Self {
            l4,
            ports,
            streams: [Stream::new(), Stream::new()],
            reader: Reader {
                phase: Phase::Probing,
                probe: [Vec::new(), Vec::new()],
                datagrams: 0,
                excluded: 0,
                identified: None,
                upgrades: 0,
            },
        }
    }

    /// The roles of the flow were swapped: so are the streams and ports.
    pub fn flip(&mut self) {
        self.streams.swap(0, 1);
        self.reader.probe.swap(0, 1);
        self.ports = (self.ports.1, self.ports.0);
    }

    /// One TCP segment from `dir`.
    #[inline]
    pub fn tcp_segment(
        &mut self,
        sh: &mut AppShared,
        dir: Direction,
        seg: &Segment<'_>,
        ts_us: i64,
    ) -> Outcome {
        // Bytes already delivered, sent again, change nothing: the check is
        // inlined into the caller, so such a segment costs no call.
        if self.streams[dir as usize].is_behind(seg) {
            return Outcome::Continue;
        }
        self.deliver_segment(sh, dir, seg, ts_us)
    }

    /// [`AppState::tcp_segment`] for a segment that may bring something.
    #[inline(never)]
    fn deliver_segment(
        &mut self,
        sh: &mut AppShared,
        dir: Direction,
        seg: &Segment<'_>,
        ts_us: i64,
    ) -> Outcome {
        let before = self.reader.service();
        let (env, mut cx, budget, stats) = sh.split(ts_us, self.ports, self.l4);
        let Self {
            streams, reader, ..
        } = self;
        streams[dir as usize].segment(seg, &env.settings.stream, budget, stats, &mut |chunk| {
            reader.chunk(&env, &mut cx, dir, chunk)
        });
        self.settle(sh, before)
    }

    /// One UDP datagram's payload from `dir`.
    pub fn udp_datagram(
        &mut self,
        sh: &mut AppShared,
        dir: Direction,
        payload: &[u8],
        ts_us: i64,
    ) -> Outcome {
        let before = self.reader.service();
        let (env, mut cx, _, _) = sh.split(ts_us, self.ports, self.l4);
        self.reader.datagram(&env, &mut cx, dir, payload);
        self.settle(sh, before)
    }

    /// True when both directions of a TCP flow have been delivered up to
    /// their FINs with nothing held (see [`Stream::is_complete`]): the
    /// dissector has had every byte it will get.
    pub fn both_ways_complete(&self) -> bool {
        matches!(self.l4, L4::Tcp) && self.streams.iter().all(Stream::is_complete)
    }

    /// The flow ended: delivers what the streams hold, then closes the
    /// dissector. `ts_us` is the flow's last packet time.
    pub fn close(&mut self, sh: &mut AppShared, ts_us: i64) {
        let (env, mut cx, budget, stats) = sh.split(ts_us, self.ports, self.l4);
        let Self {
            streams, reader, ..
        } = self;
        for dir in [Direction::Originator, Direction::Responder] {
            streams[dir as usize].flush(budget, stats, &mut |chunk| {
                reader.chunk(&env, &mut cx, dir, chunk)
            });
        }
        if let Phase::Active { dissector, .. } = &mut reader.phase {
            dissector.close(&mut cx);
        }
        reader.phase = Phase::Done;
        for s in streams.iter_mut() {
            s.stop(budget);
        }
    }

    /// Releases what the streams hold (the state is about to be dropped
    /// without a close).
    pub fn release(&mut self, sh: &mut AppShared) {
        for s in self.streams.iter_mut() {
            s.stop(&mut sh.budget);
        }
    }

    /// What changed in this call. A flow identified and finished in the
    /// same call reports `Finished`; [`AppState::service`] still names it.
    fn settle(&mut self, sh: &mut AppShared, before: Option<&'static str>) -> Outcome {
        let now = self.reader.service();
        if matches!(self.reader.phase, Phase::Done) {
            self.release(sh);
            return Outcome::Finished;
        }
        match (before, now) {
            (None, Some(name)) => Outcome::Identified(name),
            _ => Outcome::Continue,
        }
    }

    /// The protocol, once identified (also after the dissector is done).
    pub fn service(&self) -> Option<&'static str> {
        self.reader.service()
    }
}

/// What a reader needs from the worker while a stream delivers.
struct Env<'a> {
    settings: &'a Settings,
    ports: (u16, u16),
    l4: L4,
}

impl Reader {
    fn service(&self) -> Option<&'static str> {
        self.identified
    }

    /// One chunk of `dir`'s TCP stream; false when nothing more is wanted.
    fn chunk(
        &mut self,
        env: &Env<'_>,
        cx: &mut Context<'_>,
        dir: Direction,
        chunk: Chunk<'_>,
    ) -> bool {
        match &mut self.phase {
            Phase::Done => false,
            Phase::Active { dissector, .. } => {
                let want = match chunk {
                    Chunk::Data(b) => dissector.data(cx, dir, b),
                    Chunk::Gap(n) => dissector.gap(cx, dir, n),
                };
                match want {
                    Want::More => true,
                    Want::Done => {
                        self.phase = Phase::Done;
                        false
                    }
                    Want::Reprobe => self.upgrade(env, cx),
                }
            }
            Phase::Probing => match chunk {
                // Bytes after a hole cannot be probed from a known start.
                Chunk::Gap(_) => {
                    self.probe[dir as usize].clear();
                    true
                }
                Chunk::Data(b) => self.probe_data(env, cx, dir, b),
            },
        }
    }

    /// One UDP datagram: probed while the protocol is unknown, then given
    /// to the dissector.
    fn datagram(&mut self, env: &Env<'_>, cx: &mut Context<'_>, dir: Direction, payload: &[u8]) {
        if matches!(self.phase, Phase::Probing) {
            self.datagrams += 1;
            if let Some(p) = self.identify(env, dir, payload) {
                self.start(p, env);
            } else if self.datagrams >= env.settings.probe_datagrams || self.all_excluded(env) {
                self.phase = Phase::Done;
            }
        }
        if let Phase::Active { dissector, .. } = &mut self.phase {
            match dissector.data(cx, dir, payload) {
                Want::More => {}
                Want::Done => self.phase = Phase::Done,
                Want::Reprobe => self.upgrade_datagrams(env, cx),
            }
        }
    }
}

mod probe;
#[cfg(test)]
mod tests;
mod upgrade;
