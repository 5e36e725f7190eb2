//! Probing: finding which protocol a flow speaks from its first bytes.
//!
//! Owns: asking the enabled protocols' probes in turn (port-hinted ones
//! first, each one that rejects the content excluded for the flow), the
//! bytes of each TCP direction kept while a probe needs more (up to
//! `dissect.probe_bytes`), giving up when every protocol rejected the
//! content or the kept bytes ran out, and starting the matched protocol's
//! dissector with what was probed (the other direction's kept bytes first).
//! Input: a flow's reader while it is probing, with a chunk of a TCP
//! stream or a UDP datagram. Output: the reader active with a dissector,
//! still probing, or done. Does not: count UDP datagrams against
//! `dissect.probe_datagrams` or feed an active dissector (`app/mod.rs`
//! does), or re-probe after an upgrade (`upgrade.rs`).

use super::{Env, Phase, Reader, supports};
use crate::dissect::{Context, Probe, ProbeInput, Protocol};
use crate::flow::reassembly::Chunk;
use crate::packet::Direction;

impl Reader {
    pub(super) fn all_excluded(&self, env: &Env<'_>) -> bool {
        env.settings
            .protocols
            .iter()
            .enumerate()
            .all(|(i, p)| !supports(p, env.l4) || self.excluded & (1 << i) != 0)
    }

    /// Probes `data` of `dir` with every protocol not yet excluded, the
    /// port-hinted ones first; the first match wins.
    pub(super) fn identify(
        &mut self,
        env: &Env<'_>,
        dir: Direction,
        data: &[u8],
    ) -> Option<&'static Protocol> {
        let input = ProbeInput {
            l4: env.l4,
            dir,
            ports: env.ports,
            data,
        };
        let hinted =
            |p: &Protocol| p.ports.contains(&env.ports.0) || p.ports.contains(&env.ports.1);
        for pass_hinted in [true, false] {
            for (i, p) in env.settings.protocols.iter().enumerate() {
                if hinted(p) != pass_hinted || !supports(p, env.l4) || self.excluded & (1 << i) != 0
                {
                    continue;
                }
                match (p.probe)(&input) {
                    Probe::Match => return Some(p),
                    Probe::NoMatch => self.excluded |= 1 << i,
                    Probe::NeedMore => {}
                }
            }
        }
        None
    }

    pub(super) fn start(&mut self, protocol: &'static Protocol, env: &Env<'_>) {
        self.identified.get_or_insert(protocol.name);
        self.phase = Phase::Active {
            dissector: (protocol.new)(&env.settings.limits, env.l4),
        };
    }

    pub(super) fn probe_data(
        &mut self,
        env: &Env<'_>,
        cx: &mut Context<'_>,
        dir: Direction,
        b: &[u8],
    ) -> bool {
        let d = dir as usize;
        // Without earlier bytes the chunk is probed where it lies; bytes
        // are copied only when a probe needs more of them.
        let kept = self.probe[d].len();
        let room = env.settings.probe_bytes.saturating_sub(kept);
        let matched = if kept == 0 {
            self.identify(env, dir, b)
        } else {
            let take = b.len().min(room);
            self.probe[d].extend_from_slice(&b[..take]);
            let buf = std::mem::take(&mut self.probe[d]);
            let m = self.identify(env, dir, &buf);
            self.probe[d] = buf;
            m
        };
        match matched {
            Some(p) => {
                self.start(p, env);
                // The dissector reads what was probed: what the other
                // direction sent before this chunk (a request the probe could
                // not judge before its response arrived), then this
                // direction's kept bytes and the chunk.
                let mine = std::mem::take(&mut self.probe[d]);
                let other = std::mem::take(&mut self.probe[1 - d]);
                let rest = if kept == 0 {
                    b
                } else {
                    &b[b.len().min(room)..]
                };
                let feed: [(Direction, &[u8]); 3] =
                    [(dir.reverse(), &other), (dir, &mine), (dir, rest)];
                for (fd, bytes) in feed {
                    if bytes.is_empty() {
                        continue;
                    }
                    if !self.chunk(env, cx, fd, Chunk::Data(bytes)) {
                        return false;
                    }
                }
                true
            }
            None if self.all_excluded(env) => {
                self.phase = Phase::Done;
                false
            }
            None => {
                if kept == 0 {
                    let take = b.len().min(env.settings.probe_bytes);
                    self.probe[d].extend_from_slice(&b[..take]);
                }
                if self.probe[d].len() >= env.settings.probe_bytes {
                    // Undecided after every byte it may keep.
                    self.phase = Phase::Done;
                    return false;
                }
                true
            }
        }
    }
}
