//! Receive buffers for `recvmmsg`: the message headers, buffers and control
//! space of one batch, allocated once with their pointers set once, and the
//! per-datagram view read back from them (peer, local address, kernel time,
//! real length, the socket's drop count, parsed from the control messages).

use super::CONTROL_BYTES;
use std::mem::{size_of, zeroed};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// One received datagram, borrowed from a [`RecvBatch`].
#[derive(Debug, Clone, Copy)]
pub struct Datagram<'a> {
    /// The bytes that fit the buffer.
    pub payload: &'a [u8],
    /// The datagram's real length (above `payload.len()` when truncated).
    pub len: usize,
    /// The datagram did not fit the buffer (MSG_TRUNC).
    pub truncated: bool,
    /// Sender's address (the port is of no use to decapsulation); when the
    /// kernel gives none, the unspecified address of the socket's family.
    /// Both addresses are canonical: an IPv4-mapped IPv6 address reads as
    /// IPv4.
    pub peer_ip: IpAddr,
    /// The datagram's destination address (IP_PKTINFO / IPV6_PKTINFO); when
    /// the kernel gives none, the socket's own.
    pub local_ip: IpAddr,
    /// Kernel receive time, microseconds since the epoch (SO_TIMESTAMPNS).
    pub ts_us: Option<i64>,
    /// Datagrams the kernel dropped on this socket so far (SO_RXQ_OVFL,
    /// cumulative; present once the first drop happened).
    pub kernel_drops: Option<u32>,
}

/// Receive buffers, iovecs, headers, addresses and control storage for one
/// `recvmmsg` call, allocated once.
pub struct RecvBatch {
    buffer_bytes: usize,
    data: Vec<u8>,
    iovecs: Vec<libc::iovec>,
    names: Vec<libc::sockaddr_storage>,
    // Read field by field from bytes (`read_control`), so it needs no
    // alignment.
    control: Vec<u8>,
    pub(super) headers: Vec<libc::mmsghdr>,
    pub(super) received: usize,
    /// The addresses of a datagram the kernel says nothing about, set by
    /// the socket that filled the batch.
    pub(super) defaults: DefaultAddrs,
}

/// What a datagram's addresses read as when the kernel does not give them:
/// the unspecified address as the sender, the socket's own address as the
/// destination. Set once per receive call, so the per-datagram path only
/// overwrites what the kernel gives instead of choosing between values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct DefaultAddrs {
    pub(super) peer: IpAddr,
    pub(super) local: IpAddr,
}

impl DefaultAddrs {
    /// The defaults of a socket bound to `local`.
    pub(super) fn of_socket(local: std::net::SocketAddr) -> Self {
        let ip = local.ip();
        Self {
            peer: match ip {
                IpAddr::V4(_) => IpAddr::from([0, 0, 0, 0]),
                IpAddr::V6(_) => IpAddr::from([0u16; 8]),
            },
            local: ip.to_canonical(),
        }
    }
}

// SAFETY: the raw pointers inside the headers and iovecs only ever point
// into the batch's own heap storage, which moves with it.
unsafe impl Send for RecvBatch {}

impl RecvBatch {
    /// Storage for `datagrams` datagrams of at most `buffer_bytes` each.
    pub fn new(datagrams: usize, buffer_bytes: usize) -> Self {
        let datagrams = datagrams.max(1);
        let buffer_bytes = buffer_bytes.max(1);
        // SAFETY: these are plain C structs for which all-zero is a valid value.
        let zero_iov: libc::iovec = unsafe { zeroed() };
        // SAFETY: as above.
        let zero_name: libc::sockaddr_storage = unsafe { zeroed() };
        // SAFETY: as above.
        let zero_hdr: libc::mmsghdr = unsafe { zeroed() };
        let mut batch = Self {
            buffer_bytes,
            data: vec![0; datagrams * buffer_bytes],
            iovecs: vec![zero_iov; datagrams],
            names: vec![zero_name; datagrams],
            control: vec![0; datagrams * CONTROL_BYTES],
            headers: vec![zero_hdr; datagrams],
            received: 0,
            defaults: DefaultAddrs::of_socket((Ipv4Addr::UNSPECIFIED, 0).into()),
        };
        batch.point_headers();
        batch
    }

    /// Datagrams per call.
    pub fn capacity(&self) -> usize {
        self.headers.len()
    }

    /// Points every header at its buffer, iovec, address and control
    /// storage. Done once: the vectors are never resized, so their heap
    /// storage stays where it is when the batch moves, and the kernel does
    /// not write these pointers back.
    fn point_headers(&mut self) {
        let data = self.data.as_mut_ptr();
        let control = self.control.as_mut_ptr();
        for i in 0..self.headers.len() {
            // SAFETY: `i * buffer_bytes` and `i * CONTROL_BYTES` stay inside the
            // allocations sized for `headers.len()` entries in `new`.
            let (buf, ctl) = unsafe {
                (
                    data.add(i * self.buffer_bytes),
                    control.add(i * CONTROL_BYTES),
                )
            };
            self.iovecs[i] = libc::iovec {
                iov_base: buf.cast(),
                iov_len: self.buffer_bytes,
            };
            let h = &mut self.headers[i].msg_hdr;
            h.msg_name = (&raw mut self.names[i]).cast();
            h.msg_iov = &raw mut self.iovecs[i];
            h.msg_iovlen = 1;
            h.msg_control = ctl.cast();
        }
        self.prepare();
    }

    /// Restores the fields the kernel writes back (lengths and flags).
    pub(super) fn prepare(&mut self) {
        for m in &mut self.headers {
            let h = &mut m.msg_hdr;
            h.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_controllen = CONTROL_BYTES as _;
            h.msg_flags = 0;
            m.msg_len = 0;
        }
        self.received = 0;
    }

    /// Datagrams received by the last call.
    pub fn len(&self) -> usize {
        self.received
    }

    /// True when the last call received nothing.
    pub fn is_empty(&self) -> bool {
        self.received == 0
    }

    /// The datagrams of the last call, in order.
    #[inline(always)]
    pub fn datagrams(&self) -> impl Iterator<Item = Datagram<'_>> {
        let received = self.received.min(self.headers.len());
        self.headers[..received]
            .iter()
            .zip(&self.names)
            .zip(self.data.chunks_exact(self.buffer_bytes))
            .zip(self.control.chunks_exact(CONTROL_BYTES))
            .map(|(((h, name), buffer), control)| {
                datagram(h, name, buffer, control, &self.defaults)
            })
    }
}

/// The datagram the kernel wrote into one header, address, buffer and
/// control space.
#[inline(always)]
fn datagram<'a>(
    h: &libc::mmsghdr,
    name: &libc::sockaddr_storage,
    buffer: &'a [u8],
    control: &'a [u8],
    defaults: &DefaultAddrs,
) -> Datagram<'a> {
    let len = h.msg_len as usize;
    // size_t with glibc, socklen_t with other C libraries.
    #[allow(clippy::unnecessary_cast)]
    let control_len = (h.msg_hdr.msg_controllen as usize).min(control.len());
    let mut d = Datagram {
        payload: &buffer[..len.min(buffer.len())],
        len,
        truncated: h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 || len > buffer.len(),
        peer_ip: defaults.peer,
        local_ip: defaults.local,
        ts_us: None,
        kernel_drops: None,
    };
    read_sockaddr(name, h.msg_hdr.msg_namelen, &mut d.peer_ip);
    read_control(&control[..control_len], &mut d);
    d
}

/// Reads the sender's address into `peer` (left as it is for a family or
/// length it does not know).
#[inline(always)]
fn read_sockaddr(s: &libc::sockaddr_storage, len: libc::socklen_t, peer: &mut IpAddr) {
    let len = len as usize;
    match i32::from(s.ss_family) {
        libc::AF_INET if len >= size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family says the storage holds a sockaddr_in, and
            // sockaddr_storage is large and aligned enough for it.
            let a = unsafe { &*(&raw const *s).cast::<libc::sockaddr_in>() };
            *peer = IpAddr::V4(Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)));
        }
        libc::AF_INET6 if len >= size_of::<libc::sockaddr_in6>() => {
            // SAFETY: as above, for sockaddr_in6.
            let a = unsafe { &*(&raw const *s).cast::<libc::sockaddr_in6>() };
            *peer = canonical_v6(a.sin6_addr.s6_addr);
        }
        _ => {}
    }
}

/// The address `Ipv6Addr::to_canonical` gives (IPv4 for `::ffff:a.b.c.d`),
/// decided on the 128-bit value: the standard version's byte pattern makes
/// the compiler carry the sixteen bytes one by one through the receive loop.
pub(super) fn canonical_v6(octets: [u8; 16]) -> IpAddr {
    let bits = u128::from_be_bytes(octets);
    if bits >> 32 == 0xffff {
        IpAddr::V4(Ipv4Addr::from_bits(bits as u32))
    } else {
        IpAddr::V6(Ipv6Addr::from_bits(bits))
    }
}

/// Bytes of a `cmsghdr` (its length field, level and type) before the data,
/// and the alignment of each message (CMSG_ALIGN: that of `size_t`).
pub(super) const CMSG_ALIGN: usize = size_of::<usize>();
pub(super) const CMSG_HEADER: usize = size_of::<libc::cmsghdr>().next_multiple_of(CMSG_ALIGN);
/// Offsets of the level and type in a `cmsghdr`.
const LEVEL: usize = std::mem::offset_of!(libc::cmsghdr, cmsg_level);
const TYPE: usize = std::mem::offset_of!(libc::cmsghdr, cmsg_type);

/// A message header as the kernel writes it: the length of header and
/// data, the level and the type.
const fn cmsg_header(data_len: usize, level: libc::c_int, kind: libc::c_int) -> [u8; CMSG_HEADER] {
    let mut h = [0u8; CMSG_HEADER];
    let (len, level, kind) = (
        (CMSG_HEADER + data_len).to_ne_bytes(),
        level.to_ne_bytes(),
        kind.to_ne_bytes(),
    );
    let mut i = 0;
    while i < len.len() {
        h[i] = len[i];
        i += 1;
    }
    let mut i = 0;
    while i < level.len() {
        h[LEVEL + i] = level[i];
        h[TYPE + i] = kind[i];
        i += 1;
    }
    h
}

/// The two messages nearly every datagram carries, in the order the kernel
/// writes them (UDP: timestamp and drop counter, then the IP ones): the
/// timestamp, then, when no drop is counted, the IPv4 destination. Each is
/// recognised by its whole header at once and read at fixed offsets, which
/// is what the walk does for it in several times the instructions.
const TIMESTAMP: [u8; CMSG_HEADER] = cmsg_header(
    size_of::<libc::timespec>(),
    libc::SOL_SOCKET,
    libc::SCM_TIMESTAMPNS,
);
const TIMESTAMP_STEP: usize =
    (CMSG_HEADER + size_of::<libc::timespec>()).next_multiple_of(CMSG_ALIGN);
const PKTINFO: [u8; CMSG_HEADER] = cmsg_header(
    size_of::<libc::in_pktinfo>(),
    libc::IPPROTO_IP,
    libc::IP_PKTINFO,
);
const PKTINFO_STEP: usize =
    (CMSG_HEADER + size_of::<libc::in_pktinfo>()).next_multiple_of(CMSG_ALIGN);

/// Reads the control messages of one datagram (timestamp, drop counter,
/// destination address) from the bytes the kernel wrote: the usual first
/// messages at fixed offsets, then the walk for what remains.
#[inline(always)]
pub(super) fn read_control(mut c: &[u8], d: &mut Datagram<'_>) {
    if let Some((m, rest)) = c.split_first_chunk::<TIMESTAMP_STEP>()
        && m[..CMSG_HEADER] == TIMESTAMP
    {
        d.ts_us = Some(timestamp_us(&m[CMSG_HEADER..]));
        c = rest;
    }
    if let Some((m, rest)) = c.split_first_chunk::<PKTINFO_STEP>()
        && m[..CMSG_HEADER] == PKTINFO
    {
        d.local_ip = pktinfo_ip(&m[CMSG_HEADER..]);
        c = rest;
    }
    walk_control(c, d);
}

/// Reads control messages one by one. Field by field from the byte layout
/// of `cmsghdr` and its payloads, so no pointer casts and no alignment
/// matter; a message that does not fit ends the walk.
pub(super) fn walk_control(mut c: &[u8], d: &mut Datagram<'_>) {
    while let Some(h) = c.first_chunk::<CMSG_HEADER>() {
        let len = usize::from_ne_bytes(field(h, 0));
        let level = libc::c_int::from_ne_bytes(field(h, LEVEL));
        let kind = libc::c_int::from_ne_bytes(field(h, TYPE));
        // None too for a length below the header, which would never advance
        // (CMSG_NXTHDR stops there as well).
        let Some(data) = c.get(CMSG_HEADER..len) else {
            break;
        };
        match (level, kind) {
            (libc::SOL_SOCKET, libc::SCM_TIMESTAMPNS)
                if data.len() >= size_of::<libc::timespec>() =>
            {
                d.ts_us = Some(timestamp_us(data));
            }
            (libc::SOL_SOCKET, libc::SO_RXQ_OVFL) if data.len() >= size_of::<u32>() => {
                d.kernel_drops = Some(u32::from_ne_bytes(field(data, 0)));
            }
            (libc::IPPROTO_IP, libc::IP_PKTINFO) if data.len() >= size_of::<libc::in_pktinfo>() => {
                d.local_ip = pktinfo_ip(data);
            }
            (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO)
                if data.len() >= size_of::<libc::in6_pktinfo>() =>
            {
                const ADDR: usize = std::mem::offset_of!(libc::in6_pktinfo, ipi6_addr);
                let a: [u8; 16] = field(data, ADDR);
                d.local_ip = canonical_v6(a);
            }
            _ => {}
        }
        c = c.get(len.next_multiple_of(CMSG_ALIGN)..).unwrap_or(&[]);
    }
}

/// Microseconds since the epoch from a `timespec`.
#[inline(always)]
fn timestamp_us(data: &[u8]) -> i64 {
    const NSEC: usize = std::mem::offset_of!(libc::timespec, tv_nsec);
    let sec = libc::time_t::from_ne_bytes(field(data, 0));
    let nsec = libc::c_long::from_ne_bytes(field(data, NSEC));
    sec.saturating_mul(1_000_000).saturating_add(nsec / 1_000)
}

/// The destination address of an `in_pktinfo`.
#[inline(always)]
fn pktinfo_ip(data: &[u8]) -> IpAddr {
    const ADDR: usize = std::mem::offset_of!(libc::in_pktinfo, ipi_addr);
    let a: [u8; 4] = field(data, ADDR);
    IpAddr::V4(Ipv4Addr::from(a))
}

/// `N` bytes at `at` of a slice the caller has checked is long enough
/// (zeros otherwise, never a panic).
fn field<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    b.get(at..at + N)
        .and_then(|f| f.try_into().ok())
        .unwrap_or([0; N])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn datagram() -> Datagram<'static> {
        Datagram {
            payload: &[],
            len: 0,
            truncated: false,
            peer_ip: IpAddr::from([0, 0, 0, 0]),
            local_ip: IpAddr::from([9, 9, 9, 9]),
            ts_us: None,
            kernel_drops: None,
        }
    }

    /// One message of a kind the kernel writes (or a near miss): `which`
    /// picks level, type and data length, `bytes` fills the data.
    fn message(which: u8, bytes: &[u8]) -> Vec<u8> {
        let (level, kind, data_len) = match which % 7 {
            0 => (libc::SOL_SOCKET, libc::SCM_TIMESTAMPNS, 16),
            1 => (libc::IPPROTO_IP, libc::IP_PKTINFO, 12),
            2 => (libc::SOL_SOCKET, libc::SO_RXQ_OVFL, 4),
            3 => (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO, 20),
            // Too short for its type, and one nobody reads.
            4 => (libc::SOL_SOCKET, libc::SCM_TIMESTAMPNS, 8),
            5 => (libc::IPPROTO_IP, libc::IP_PKTINFO, 11),
            _ => (libc::SOL_SOCKET, libc::SCM_RIGHTS, 4),
        };
        let mut m = cmsg_header(data_len, level, kind).to_vec();
        m.extend((0..data_len).map(|i| bytes.get(i).copied().unwrap_or(0)));
        m.resize(m.len().next_multiple_of(CMSG_ALIGN), 0);
        m
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]
        /// The fixed-offset reading gives what the walk gives, whatever the
        /// messages, their order, a cut or a damaged byte.
        #[test]
        fn usual_messages_read_as_the_walk_reads_them(
            messages in proptest::collection::vec((any::<u8>(), proptest::collection::vec(any::<u8>(), 20)), 0..4),
            cut in proptest::option::of(0usize..160),
            damage in proptest::option::of((0usize..160, any::<u8>())),
        ) {
            let mut c: Vec<u8> = messages.iter().flat_map(|(w, b)| message(*w, b)).collect();
            if let Some(n) = cut {
                c.truncate(n);
            }
            if let Some((at, v)) = damage
                && let Some(b) = c.get_mut(at)
            {
                *b = v;
            }
            let (mut fast, mut walked) = (datagram(), datagram());
            read_control(&c, &mut fast);
            walk_control(&c, &mut walked);
            prop_assert_eq!(
                (fast.ts_us, fast.kernel_drops, fast.local_ip),
                (walked.ts_us, walked.kernel_drops, walked.local_ip)
            );
        }
    }

    #[test]
    fn the_usual_pair_is_read_at_fixed_offsets() {
        let mut ts = Vec::new();
        ts.extend_from_slice(&(1_700_000_000 as libc::time_t).to_ne_bytes());
        ts.extend_from_slice(&(5_000 as libc::c_long).to_ne_bytes());
        let mut info = [0u8; 12];
        info[8..].copy_from_slice(&[10, 0, 0, 7]);
        let mut c = message(0, &ts);
        c.extend(message(1, &info));
        assert_eq!(c.len(), TIMESTAMP_STEP + PKTINFO_STEP);
        let mut d = datagram();
        read_control(&c, &mut d);
        assert_eq!(d.ts_us, Some(1_700_000_000_000_005));
        assert_eq!(d.local_ip, IpAddr::from([10, 0, 0, 7]));
        assert_eq!(d.kernel_drops, None);
    }
}
