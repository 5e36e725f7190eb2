//! IPv4 and IPv6 fragment reassembly with caps.
//!
//! Owns: datagrams in progress, keyed by tunnel domain, addresses, protocol
//! and identification. Input: [`Fragment`]s and the packet clock. Output: a
//! rebuilt IP datagram (header and payload) to decode further. The range
//! bookkeeping is etherparse's `IpDefragBuf`; this module adds what the
//! etherparse pool lacks for hostile input: a global table cap, a per-source
//! cap, a buffered-bytes cap, a pieces-per-datagram cap and a timeout in
//! packet time. Every refusal is counted by reason. Overlapping pieces: the
//! later copy's bytes win (etherparse's rule).

use super::Fragment;
use crate::config::DefragConfig;
use crate::metrics::{Anomaly, Counters, Drop};
use etherparse::defrag::{IpDefragBuf, IpFragRange};
use etherparse::{IpFragOffset, IpNumber};
use foldhash::fast::FixedState;
use hashbrown::HashMap;
use std::net::IpAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct FragKey {
    domain: u64,
    src: IpAddr,
    dst: IpAddr,
    id: u32,
    proto: u8,
}

#[derive(Debug)]
struct InProgress {
    buf: IpDefragBuf,
    first_ts_us: i64,
    ipv4_header: Vec<u8>,
    pieces: u32,
    bytes: usize,
}

/// Reassembles fragments; one per worker.
#[derive(Debug)]
pub struct Defragmenter {
    cfg: DefragConfig,
    table: HashMap<FragKey, InProgress, FixedState>,
    per_source: HashMap<(u64, IpAddr), u32, FixedState>,
    buffered_bytes: usize,
    spare: Vec<(Vec<u8>, Vec<IpFragRange>)>,
}

impl Defragmenter {
    /// An empty reassembler with the given caps.
    pub fn new(cfg: DefragConfig) -> Self {
        Self {
            cfg,
            table: HashMap::with_hasher(FixedState::with_seed(0x6465_6672_6167)),
            per_source: HashMap::with_hasher(FixedState::with_seed(0x7372_6373)),
            buffered_bytes: 0,
            spare: Vec::new(),
        }
    }

    /// Datagrams in progress.
    pub fn in_progress(&self) -> usize {
        self.table.len()
    }

    /// Bytes held in datagrams in progress.
    pub fn buffered_bytes(&self) -> usize {
        self.buffered_bytes
    }

    /// Adds one piece. Returns the rebuilt datagram (an IP header and the
    /// whole payload) when this piece completed it; give the vector back with
    /// [`Defragmenter::recycle`] when done with it.
    pub fn push(
        &mut self,
        frag: &Fragment<'_>,
        domain: u64,
        now_us: i64,
        counters: &mut Counters,
    ) -> Option<Vec<u8>> {
        counters.fragments += 1;
        if frag.truncated {
            // A piece cut by the capture can never complete its datagram.
            counters.anomaly(Anomaly::FragmentInvalid);
            return None;
        }
        let key = FragKey {
            domain,
            src: frag.src,
            dst: frag.dst,
            id: frag.id,
            proto: frag.proto,
        };
        if !self.table.contains_key(&key) {
            if self.table.len() >= self.cfg.max_datagrams {
                counters.drop_n(Drop::DefragTableFull, 1);
                return None;
            }
            let n = self.per_source.entry((domain, frag.src)).or_insert(0);
            if *n >= self.cfg.max_datagrams_per_source {
                counters.drop_n(Drop::DefragPerSourceCap, 1);
                return None;
            }
            *n += 1;
            let (data, sections) = self.spare.pop().unwrap_or_default();
            self.table.insert(
                key,
                InProgress {
                    buf: IpDefragBuf::new(IpNumber(frag.proto), data, sections),
                    first_ts_us: now_us,
                    ipv4_header: Vec::new(),
                    pieces: 0,
                    bytes: 0,
                },
            );
        }
        if self.buffered_bytes + frag.payload.len() > self.cfg.max_bytes {
            counters.drop_n(Drop::DefragBytesCap, 1);
            return None;
        }
        let entry = self.table.get_mut(&key)?;
        if entry.pieces >= self.cfg.max_fragments_per_datagram {
            counters.drop_n(Drop::DefragFragmentsCap, 1);
            self.remove(&key);
            return None;
        }
        let Ok(offset) = IpFragOffset::try_new(frag.offset / 8) else {
            counters.anomaly(Anomaly::FragmentInvalid);
            return None;
        };
        if entry.buf.add(offset, frag.more, frag.payload).is_err() {
            counters.anomaly(Anomaly::FragmentInvalid);
            return None;
        }
        entry.pieces += 1;
        entry.bytes += frag.payload.len();
        self.buffered_bytes += frag.payload.len();
        if frag.offset == 0 && !frag.ipv4_header.is_empty() {
            entry.ipv4_header.clear();
            entry.ipv4_header.extend_from_slice(frag.ipv4_header);
        }
        if !entry.buf.is_complete() {
            return None;
        }
        let done = self.remove(&key)?;
        let (payload, sections) = done.buf.take_bufs();
        let out = rebuild(&key, &done.ipv4_header, &payload, counters);
        self.spare.push((payload, sections));
        if out.is_some() {
            counters.reassembled += 1;
        }
        out
    }

    /// Gives a rebuilt datagram's storage back (it is not reused for
    /// payloads, only freed; kept for symmetry with future pooling).
    pub fn recycle(&mut self, v: Vec<u8>) {
        drop(v);
    }

    /// Forgets datagrams older than `defrag.timeout` at packet time `now_us`.
    pub fn expire(&mut self, now_us: i64, counters: &mut Counters) {
        let timeout_us = i64::try_from(self.cfg.timeout.as_micros()).unwrap_or(i64::MAX);
        let old: Vec<FragKey> = self
            .table
            .iter()
            .filter(|(_, e)| now_us.saturating_sub(e.first_ts_us) >= timeout_us)
            .map(|(k, _)| *k)
            .collect();
        for k in old {
            counters.drop_n(Drop::DefragTimeout, 1);
            if let Some(e) = self.remove(&k) {
                let (data, sections) = e.buf.take_bufs();
                self.spare.push((data, sections));
            }
        }
        self.spare.truncate(16);
    }

    fn remove(&mut self, key: &FragKey) -> Option<InProgress> {
        let e = self.table.remove(key)?;
        self.buffered_bytes = self.buffered_bytes.saturating_sub(e.bytes);
        if let Some(n) = self.per_source.get_mut(&(key.domain, key.src)) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_source.remove(&(key.domain, key.src));
            }
        }
        Some(e)
    }
}

/// Builds an unfragmented IP datagram from the first piece's header (IPv4)
/// or a plain 40-byte header (IPv6) and the reassembled payload.
fn rebuild(
    key: &FragKey,
    v4_header: &[u8],
    payload: &[u8],
    counters: &mut Counters,
) -> Option<Vec<u8>> {
    match (key.src, key.dst) {
        (IpAddr::V4(_), IpAddr::V4(_)) => {
            if v4_header.len() < 20 {
                counters.anomaly(Anomaly::FragmentInvalid);
                return None;
            }
            let total = v4_header.len() + payload.len();
            let Ok(total16) = u16::try_from(total) else {
                counters.anomaly(Anomaly::FragmentTooBig);
                return None;
            };
            let mut out = Vec::with_capacity(total);
            out.extend_from_slice(v4_header);
            out[2..4].copy_from_slice(&total16.to_be_bytes());
            // Clear MF and the offset; keep DF.
            out[6] &= 0x40;
            out[7] = 0;
            out.extend_from_slice(payload);
            Some(out)
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let Ok(len16) = u16::try_from(payload.len()) else {
                counters.anomaly(Anomaly::FragmentTooBig);
                return None;
            };
            let mut out = Vec::with_capacity(40 + payload.len());
            out.extend_from_slice(&[0x60, 0, 0, 0]);
            out.extend_from_slice(&len16.to_be_bytes());
            out.push(key.proto);
            out.push(64);
            out.extend_from_slice(&s.octets());
            out.extend_from_slice(&d.octets());
            out.extend_from_slice(payload);
            Some(out)
        }
        _ => {
            counters.anomaly(Anomaly::FragmentInvalid);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn cfg() -> DefragConfig {
        DefragConfig {
            timeout: Duration::from_secs(30),
            max_datagrams: 4,
            max_datagrams_per_source: 2,
            max_bytes: 1 << 20,
            max_fragments_per_datagram: 8,
        }
    }

    fn v4_header() -> Vec<u8> {
        vec![
            0x45, 0, 0, 0, 0x12, 0x34, 0x20, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ]
    }

    fn frag<'a>(h: &'a [u8], offset: u16, more: bool, payload: &'a [u8], id: u32) -> Fragment<'a> {
        Fragment {
            src: "10.0.0.1".parse().unwrap(),
            dst: "10.0.0.2".parse().unwrap(),
            id,
            proto: 17,
            offset,
            more,
            ipv4_header: if offset == 0 { h } else { &[] },
            payload,
            truncated: false,
        }
    }

    #[test]
    fn reverse_order_pieces_rebuild_the_datagram() {
        let h = v4_header();
        let mut d = Defragmenter::new(cfg());
        let mut c = Counters::default();
        let a = [1u8; 16];
        let b = [2u8; 5];
        assert!(d.push(&frag(&h, 16, false, &b, 7), 0, 0, &mut c).is_none());
        let out = d.push(&frag(&h, 0, true, &a, 7), 0, 1, &mut c).unwrap();
        assert_eq!(out.len(), 20 + 21);
        assert_eq!(u16::from_be_bytes([out[2], out[3]]), 41);
        assert_eq!(out[6] & 0x3f, 0);
        assert_eq!(&out[20..36], &a);
        assert_eq!(d.in_progress(), 0);
        assert_eq!(d.buffered_bytes(), 0);
        assert_eq!(c.reassembled, 1);
    }

    #[test]
    fn caps_and_timeout_are_counted() {
        let h = v4_header();
        let mut d = Defragmenter::new(cfg());
        let mut c = Counters::default();
        let a = [0u8; 8];
        for id in 0..5 {
            d.push(&frag(&h, 0, true, &a, id), 0, 0, &mut c);
        }
        assert_eq!(d.in_progress(), 2);
        assert_eq!(c.drops[Drop::DefragPerSourceCap as usize], 3);
        d.expire(31_000_000, &mut c);
        assert_eq!(d.in_progress(), 0);
        assert_eq!(c.drops[Drop::DefragTimeout as usize], 2);
    }

    #[test]
    fn too_many_pieces_abandon_the_datagram() {
        let h = v4_header();
        let mut d = Defragmenter::new(cfg());
        let mut c = Counters::default();
        let a = [0u8; 8];
        for i in 0..10u16 {
            d.push(&frag(&h, 8 + i * 16, true, &a, 1), 0, 0, &mut c);
        }
        assert_eq!(c.drops[Drop::DefragFragmentsCap as usize], 1);
        assert!(d.in_progress() <= 1);
    }
}
