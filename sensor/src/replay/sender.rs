//! The sending side of a replay: a pool of connected UDP sockets, one per
//! outer source port, and a batch of datagrams sent with `sendmmsg`.
//!
//! Owns: socket setup (distinct ephemeral ports, outer UDP checksum 0 with
//! `SO_NO_CHECK`, a send timeout so a send never blocks for long), the batch
//! buffer, and counting what was sent and what failed, by errno. Input:
//! datagram payloads appended to [`Batch::buffer`] with the socket index
//! each goes out of. Output: [`SendStats`]. Does not: encode or pace, or fail
//! a replay on a send error (errors are counted and the datagram dropped).
//!
//! Order: the batch is sent in the order it was filled, as runs of
//! consecutive datagrams for the same socket, so the two directions of a
//! connection (which use different sockets) keep their relative order.
//!
//! IPv6: a UDP datagram over IPv6 always carries a checksum here. RFC 8200
//! requires one; Linux can send zeros (`UDP_NO_CHECK6_TX`), but receivers
//! drop them unless they opt in with `UDP_NO_CHECK6_RX`, so a replay to
//! `::1` keeps the checksum.

use anyhow::Context;
use socket2::{Domain, Protocol, Socket, Type};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::time::Duration;

/// Longest one `sendmmsg` call may block on a full socket buffer before the
/// datagram is counted as `timed_out` and dropped.
const SEND_TIMEOUT: Duration = Duration::from_secs(1);
/// Bytes of datagram payload a batch holds before it is sent: room for a
/// full batch of jumbo frames and for at least one datagram of the largest
/// size.
const BATCH_BUFFER_BYTES: usize = 1 << 20;
/// Retries of a call interrupted by a signal before the datagram is
/// counted as failed.
const MAX_EINTR_RETRIES: u32 = 3;

/// Send failures by errno.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SendErrors {
    by_errno: BTreeMap<i32, u64>,
}

impl SendErrors {
    fn count(&mut self, errno: i32) {
        *self.by_errno.entry(errno).or_insert(0) += 1;
    }

    /// Datagrams that could not be sent.
    pub fn total(&self) -> u64 {
        self.by_errno.values().sum()
    }

    /// `(reason, count)` pairs, by errno.
    pub fn by_reason(&self) -> impl Iterator<Item = (String, u64)> + '_ {
        self.by_errno.iter().map(|(&e, &n)| (errno_name(e), n))
    }
}

/// A stable name for an errno seen when sending.
fn errno_name(errno: i32) -> String {
    let name = match errno {
        libc::ENOBUFS => "no_buffer_space",
        libc::ECONNREFUSED => "connection_refused",
        libc::EMSGSIZE => "message_too_long",
        libc::EAGAIN => "timed_out",
        libc::ENETUNREACH => "network_unreachable",
        libc::EHOSTUNREACH => "host_unreachable",
        libc::EPERM | libc::EACCES => "not_permitted",
        libc::EINTR => "interrupted",
        other => return format!("errno_{other}"),
    };
    name.to_string()
}

/// What was sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SendStats {
    /// Datagrams the kernel accepted.
    pub packets: u64,
    /// Their UDP payload bytes (outer IP and UDP headers not counted).
    pub bytes: u64,
    /// Datagrams that failed.
    pub errors: SendErrors,
}

/// Connected UDP sockets to one destination, each on its own ephemeral
/// port.
pub struct SocketPool {
    sockets: Vec<Socket>,
    ports: Vec<u16>,
    checksum_zero: bool,
}

impl SocketPool {
    /// Opens `count` sockets connected to `dst`.
    pub fn open(dst: SocketAddr, count: usize) -> anyhow::Result<Self> {
        Self::open_from(dst, None, count)
    }

    /// Opens `count` sockets connected to `dst`, sending from `source` (an
    /// address of this host) when given.
    pub fn open_from(
        dst: SocketAddr,
        source: Option<IpAddr>,
        count: usize,
    ) -> anyhow::Result<Self> {
        let local: SocketAddr = match source {
            Some(ip) => (ip, 0).into(),
            None if dst.is_ipv4() => (Ipv4Addr::UNSPECIFIED, 0).into(),
            None => (Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let mut sockets = Vec::with_capacity(count);
        let mut ports = Vec::with_capacity(count);
        let mut checksum_zero = dst.is_ipv4();
        for _ in 0..count.max(1) {
            let s = Socket::new(Domain::for_address(dst), Type::DGRAM, Some(Protocol::UDP))
                .context("creating a UDP socket")?;
            s.bind(&local.into())
                .with_context(|| format!("binding a UDP socket to {local}"))?;
            s.set_write_timeout(Some(SEND_TIMEOUT))
                .context("setting SO_SNDTIMEO")?;
            if dst.is_ipv4() && !set_no_check(&s) {
                checksum_zero = false;
            }
            s.connect(&dst.into())
                .with_context(|| format!("connecting a UDP socket to {dst}"))?;
            let port = s
                .local_addr()
                .ok()
                .and_then(|a| a.as_socket())
                .map_or(0, |a| a.port());
            sockets.push(s);
            ports.push(port);
        }
        Ok(Self {
            sockets,
            ports,
            checksum_zero,
        })
    }

    /// The local (outer source) port of each socket.
    pub fn ports(&self) -> &[u16] {
        &self.ports
    }

    /// True when every socket sends with outer UDP checksum 0.
    pub fn checksum_zero(&self) -> bool {
        self.checksum_zero
    }

    /// How many sockets.
    pub fn len(&self) -> usize {
        self.sockets.len()
    }

    /// True when the pool has no sockets (never, once opened).
    pub fn is_empty(&self) -> bool {
        self.sockets.is_empty()
    }
}

/// `SO_NO_CHECK` from asm-generic/socket.h (the value on x86 and Arm).
const SO_NO_CHECK: libc::c_int = 11;

/// Asks the kernel to send IPv4 UDP with checksum 0, as AWS does. Returns
/// false when the kernel refuses.
fn set_no_check(s: &Socket) -> bool {
    let one: libc::c_int = 1;
    // SAFETY: setsockopt on a socket this process owns, with a pointer to a
    // live c_int and its exact size; the kernel only reads it.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_NO_CHECK,
            (&one as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    rc == 0
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    offset: usize,
    len: usize,
    socket: usize,
}

/// Datagrams waiting to be sent, in order. Allocated once.
pub struct Batch {
    buffer: Vec<u8>,
    entries: Vec<Entry>,
    max_entries: usize,
    iovecs: Vec<libc::iovec>,
    headers: Vec<libc::mmsghdr>,
}

impl Batch {
    /// A batch of at most `max_entries` datagrams (at most 1024, the
    /// kernel's limit per `sendmmsg` call).
    pub fn new(max_entries: usize) -> Self {
        let max_entries = max_entries.clamp(1, 1024);
        let iovec = libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        };
        // SAFETY: mmsghdr is a plain C struct of integers and pointers for
        // which all zeros is valid (null pointers, zero lengths); it is only
        // passed to sendmmsg after its pointers are set.
        let header: libc::mmsghdr = unsafe { std::mem::zeroed() };
        Self {
            buffer: Vec::with_capacity(BATCH_BUFFER_BYTES),
            entries: Vec::with_capacity(max_entries),
            max_entries,
            iovecs: vec![iovec; max_entries],
            headers: vec![header; max_entries],
        }
    }

    /// True when a datagram of up to `bytes` bytes fits without sending
    /// first.
    pub fn has_room(&self, bytes: usize) -> bool {
        self.entries.len() < self.max_entries && self.buffer.len() + bytes <= self.buffer.capacity()
    }

    /// True when nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// True when the next datagram must wait for a send.
    pub fn is_full(&self) -> bool {
        self.entries.len() >= self.max_entries
    }

    /// The buffer to append the next datagram to; call [`Batch::commit`]
    /// with its length before it was appended.
    pub fn buffer(&mut self) -> &mut Vec<u8> {
        &mut self.buffer
    }

    /// Records the bytes appended since `start` as one datagram for
    /// `socket`.
    pub fn commit(&mut self, start: usize, socket: usize) {
        self.entries.push(Entry {
            offset: start,
            len: self.buffer.len().saturating_sub(start),
            socket,
        });
    }

    /// Sends everything waiting, counting successes and failures, and
    /// empties the batch.
    pub fn flush(&mut self, pool: &SocketPool, stats: &mut SendStats) {
        let mut at = 0;
        while at < self.entries.len() {
            let socket = self.entries[at].socket;
            let mut end = at + 1;
            while end < self.entries.len() && self.entries[end].socket == socket {
                end += 1;
            }
            match pool.sockets.get(socket) {
                Some(s) => self.send_run(s.as_raw_fd(), at, end, stats),
                None => {
                    for _ in at..end {
                        stats.errors.count(libc::EBADF);
                    }
                }
            }
            at = end;
        }
        self.entries.clear();
        self.buffer.clear();
    }

    /// Sends entries `start..end` on one socket. Each round either sends at
    /// least one datagram or drops one (counted), so it ends.
    fn send_run(&mut self, fd: i32, start: usize, end: usize, stats: &mut SendStats) {
        let base = self.buffer.as_ptr();
        for k in start..end {
            let e = self.entries[k];
            self.iovecs[k] = libc::iovec {
                // The kernel only reads the buffer; the cast to *mut is what
                // the C signature asks for. `offset` is within the buffer.
                iov_base: base.wrapping_add(e.offset) as *mut libc::c_void,
                iov_len: e.len,
            };
            let h = &mut self.headers[k];
            h.msg_hdr.msg_iov = &mut self.iovecs[k];
            h.msg_hdr.msg_iovlen = 1;
            h.msg_len = 0;
        }
        let mut at = start;
        let mut interrupted = 0;
        while at < end {
            let vlen = (end - at) as libc::c_uint;
            // SAFETY: `headers[at..end]` are initialised mmsghdrs whose
            // msg_iov points at `iovecs[k]`, each describing bytes inside
            // `buffer`; neither vector is touched until the call returns, and
            // `fd` is an open socket of the pool. No address is given (the
            // socket is connected).
            let sent = unsafe { libc::sendmmsg(fd, self.headers.as_mut_ptr().add(at), vlen, 0) };
            if sent > 0 {
                let sent = (sent as usize).min(end - at);
                for e in &self.entries[at..at + sent] {
                    stats.packets += 1;
                    stats.bytes += e.len as u64;
                }
                at += sent;
                interrupted = 0;
                continue;
            }
            let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
            if errno == libc::EINTR && interrupted < MAX_EINTR_RETRIES {
                interrupted += 1;
                continue;
            }
            stats.errors.count(errno);
            at += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    #[test]
    fn sockets_have_distinct_ports_and_zero_checksum_option() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let pool = SocketPool::open(rx.local_addr().unwrap(), 16).unwrap();
        let mut ports = pool.ports().to_vec();
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), 16);
        assert!(!ports.contains(&0));
        assert!(pool.checksum_zero(), "SO_NO_CHECK was refused");
    }

    #[test]
    fn batch_keeps_order_and_counts_bytes() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let pool = SocketPool::open(rx.local_addr().unwrap(), 3).unwrap();
        let mut batch = Batch::new(8);
        let mut stats = SendStats::default();
        for (i, socket) in [0usize, 0, 1, 2, 2, 0].into_iter().enumerate() {
            let start = batch.buffer().len();
            batch.buffer().extend_from_slice(&[i as u8; 10]);
            batch.commit(start, socket);
        }
        batch.flush(&pool, &mut stats);
        assert!(batch.is_empty());
        assert_eq!(
            (stats.packets, stats.bytes, stats.errors.total()),
            (6, 60, 0)
        );
        let mut buf = [0u8; 64];
        for i in 0..6u8 {
            let (n, from) = rx.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], &[i; 10]);
            let want = pool.ports()[[0usize, 0, 1, 2, 2, 0][usize::from(i)]];
            assert_eq!(from.port(), want);
        }
    }

    #[test]
    fn datagrams_leave_from_the_chosen_source_address() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let source: IpAddr = [127, 77, 1, 20].into();
        let pool = SocketPool::open_from(rx.local_addr().unwrap(), Some(source), 2).unwrap();
        let mut batch = Batch::new(4);
        let mut stats = SendStats::default();
        for socket in [0usize, 1] {
            let start = batch.buffer().len();
            batch.buffer().extend_from_slice(b"x");
            batch.commit(start, socket);
        }
        batch.flush(&pool, &mut stats);
        let mut buf = [0u8; 8];
        for _ in 0..2 {
            let (_, from) = rx.recv_from(&mut buf).unwrap();
            assert_eq!(from.ip(), source);
        }
        // An address this host does not have cannot be a source.
        let foreign: IpAddr = [192, 0, 2, 1].into();
        assert!(SocketPool::open_from(rx.local_addr().unwrap(), Some(foreign), 1).is_err());
    }

    #[test]
    fn refused_sends_are_counted_not_fatal() {
        // A port nobody listens on: the ICMP port unreachable of the first
        // datagram makes a later send on that socket fail.
        let dst = {
            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
            s.local_addr().unwrap()
        };
        let pool = SocketPool::open(dst, 1).unwrap();
        let mut batch = Batch::new(4);
        let mut stats = SendStats::default();
        for _ in 0..10 {
            for _ in 0..4 {
                let start = batch.buffer().len();
                batch.buffer().extend_from_slice(b"x");
                batch.commit(start, 0);
            }
            batch.flush(&pool, &mut stats);
        }
        assert_eq!(stats.packets + stats.errors.total(), 40);
        assert!(stats.errors.total() > 0);
        let reasons: Vec<_> = stats.errors.by_reason().collect();
        assert!(
            reasons.iter().any(|(r, _)| r == "connection_refused"),
            "{reasons:?}"
        );
    }
}
