//! Re-probing a flow whose dissector answered [`Want::Reprobe`] (a tunnel
//! after HTTP CONNECT, TLS after STARTTLS, DTLS after STUN).
//!
//! Owns: dropping the old dissector, probing the bytes it hands over
//! ([`crate::dissect::Dissector::handover`]) before anything delivered
//! later, and the `dissect.max_upgrades` bound per flow. Input: the
//! reader of one flow at the moment of the answer. Output: the reader
//! probing again (or done past the bound). Does not: choose the protocol
//! (the reader's probing does) or keep anything of the old dissector.
//!
//! [`Want::Reprobe`]: crate::dissect::Want::Reprobe

use super::{Env, Phase, Reader};
use crate::dissect::{Context, Dissector};
use crate::flow::reassembly::Chunk;
use crate::packet::Direction;

impl Reader {
    /// Takes the old dissector and starts probing afresh, unless the flow
    /// used up its `max_upgrades` (then it is done: a stream that keeps
    /// announcing upgrades cannot make the probes run forever).
    fn restart(&mut self, env: &Env<'_>) -> Option<Box<dyn Dissector>> {
        let Phase::Active { dissector } = std::mem::replace(&mut self.phase, Phase::Done) else {
            return None;
        };
        if self.upgrades >= env.settings.max_upgrades {
            return None;
        }
        self.upgrades += 1;
        self.phase = Phase::Probing;
        self.excluded = 0;
        Some(dissector)
    }

    /// TCP: what follows is probed like a new stream, starting with the
    /// bytes the old dissector hands over (the originator's first: a
    /// client speaks first after STARTTLS). False when nothing more is
    /// wanted from the stream being delivered.
    pub(super) fn upgrade(&mut self, env: &Env<'_>, cx: &mut Context<'_>) -> bool {
        let Some(mut old) = self.restart(env) else {
            return false;
        };
        self.probe = [Vec::new(), Vec::new()];
        for dir in [Direction::Originator, Direction::Responder] {
            let bytes = old.handover(dir);
            if !bytes.is_empty() && !self.chunk(env, cx, dir, Chunk::Data(&bytes)) {
                return false;
            }
        }
        true
    }

    /// UDP: the datagrams the old dissector hands over are probed afresh,
    /// with a new allowance of `probe_datagrams`.
    pub(super) fn upgrade_datagrams(&mut self, env: &Env<'_>, cx: &mut Context<'_>) {
        let Some(mut old) = self.restart(env) else {
            return;
        };
        self.datagrams = 0;
        for dir in [Direction::Originator, Direction::Responder] {
            let bytes = old.handover(dir);
            if !bytes.is_empty() {
                self.datagram(env, cx, dir, &bytes);
            }
        }
    }
}
