//! Live capture: UDP tunnel sockets and batched receives.
//!
//! Owns: socket setup (SO_REUSEPORT, IPV6_V6ONLY, SO_RCVBUF and its
//! read-back, kernel receive timestamps, the kernel drop counter, the
//! destination address of each datagram, a receive timeout) and `recvmmsg`
//! into buffers allocated once. Input: an address to bind. Output:
//! [`Datagram`]s, each a view of one receive buffer with its peer, local
//! address, kernel time, real length and the socket's cumulative drop count.
//! Does not: decode the payload, or decide what a drop means (the receiver
//! counts). The batch buffers and the parsing of each datagram's control
//! messages are in `batch`.

use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::mem::size_of;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::time::Duration;

mod batch;
pub use batch::{Datagram, RecvBatch};

/// How long a blocking receive waits before returning empty, so receive
/// threads notice shutdown.
pub const RECEIVE_TIMEOUT: Duration = Duration::from_millis(100);

/// Control bytes per message: a timespec (32 with header), the u32 drop
/// counter (24) and an `in6_pktinfo` (40), rounded up.
const CONTROL_BYTES: usize = 128;

/// A bound UDP socket receiving one tunnel protocol.
#[derive(Debug)]
pub struct TunnelSocket {
    socket: Socket,
    local: SocketAddr,
    granted_rcvbuf_bytes: usize,
}

fn set_int_option(
    socket: &Socket,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: `value` lives across the call and its size is passed; the fd is
    // owned by `socket` and open.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&raw const value).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

impl TunnelSocket {
    /// Binds a UDP socket to `addr` with SO_REUSEPORT (so several receive
    /// threads can bind the same address), IPV6_V6ONLY on IPv6, the requested
    /// receive buffer, kernel timestamps, the kernel drop counter, the
    /// datagrams' destination address, and [`RECEIVE_TIMEOUT`].
    pub fn bind(addr: SocketAddr, rcvbuf_bytes: usize) -> io::Result<Self> {
        let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
        if addr.is_ipv6() {
            socket.set_only_v6(true)?;
        }
        socket.set_reuse_port(true)?;
        socket.set_recv_buffer_size(rcvbuf_bytes)?;
        if socket.recv_buffer_size()? < rcvbuf_bytes {
            // Privileged processes may exceed net.core.rmem_max; others get EPERM
            // and keep what SO_RCVBUF gave.
            let want = libc::c_int::try_from(rcvbuf_bytes).unwrap_or(libc::c_int::MAX);
            let _ = set_int_option(&socket, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, want);
        }
        socket.set_read_timeout(Some(RECEIVE_TIMEOUT))?;
        set_int_option(&socket, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, 1)?;
        set_int_option(&socket, libc::SOL_SOCKET, libc::SO_RXQ_OVFL, 1)?;
        if addr.is_ipv6() {
            set_int_option(&socket, libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO, 1)?;
        } else {
            set_int_option(&socket, libc::IPPROTO_IP, libc::IP_PKTINFO, 1)?;
        }
        socket.bind(&addr.into())?;
        let local = socket
            .local_addr()?
            .as_socket()
            .ok_or_else(|| io::Error::other("bound socket has no IP address"))?;
        let granted_rcvbuf_bytes = socket.recv_buffer_size()?;
        Ok(Self {
            socket,
            local,
            granted_rcvbuf_bytes,
        })
    }

    /// The address actually bound (the port chosen when 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// SO_RCVBUF as read back after setting it (Linux reports twice the
    /// value it accepted, capped by `net.core.rmem_max`).
    pub fn granted_rcvbuf_bytes(&self) -> usize {
        self.granted_rcvbuf_bytes
    }

    /// Receives up to `batch.capacity()` datagrams: waits for the first (at
    /// most [`RECEIVE_TIMEOUT`]), then takes what is already queued. Returns
    /// how many were received; 0 on timeout or interruption.
    pub fn recv_batch(&self, batch: &mut RecvBatch) -> io::Result<usize> {
        self.recv(batch, libc::MSG_WAITFORONE)
    }

    /// Like [`recv_batch`](Self::recv_batch) but never waits: 0 when
    /// nothing is queued.
    pub fn recv_batch_nowait(&self, batch: &mut RecvBatch) -> io::Result<usize> {
        self.recv(batch, libc::MSG_DONTWAIT)
    }

    /// Waits at most `timeout` for a datagram to be queued (ppoll, with
    /// microsecond resolution); true when one is. Lets a receiver that holds
    /// a partly filled batch hand it over on time instead of blocking for the
    /// whole receive timeout.
    pub fn wait_readable(&self, timeout: Duration) -> io::Result<bool> {
        let mut pfd = libc::pollfd {
            fd: self.socket.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ts = libc::timespec {
            tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
            tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
        };
        // SAFETY: `pfd` and `ts` are valid for the call; one descriptor; no
        // signal mask change (null).
        let n = unsafe { libc::ppoll(&mut pfd, 1, &ts, std::ptr::null()) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::Interrupted => Ok(false),
                _ => Err(e),
            };
        }
        Ok(n > 0 && pfd.revents & libc::POLLIN != 0)
    }

    /// The socket's descriptor, for waiting on several sockets at once.
    pub fn raw_fd(&self) -> std::os::fd::RawFd {
        self.socket.as_raw_fd()
    }

    /// Whether a datagram is queued (FIONREAD: the size of the next one;
    /// any other thread may ask). An error answers yes, the cautious
    /// answer for a caller that waits while one may be.
    pub fn has_queued(&self) -> bool {
        let mut next: libc::c_int = 0;
        // SAFETY: FIONREAD writes one int, which `next` is, alive across the
        // call.
        let rc = unsafe { libc::ioctl(self.socket.as_raw_fd(), libc::FIONREAD, &mut next) };
        rc != 0 || next != 0
    }

    /// The socket's cumulative drop counter now (the value SO_RXQ_OVFL
    /// stamps on each datagram as it is queued), read with SO_MEMINFO.
    /// Datagrams dropped after the last one received are only counted this
    /// way: no later datagram carries their count.
    pub fn kernel_drops(&self) -> io::Result<u32> {
        // SO_MEMINFO and the length of its array (SK_MEMINFO_VARS), from
        // the kernel's asm-generic/socket.h and sock_diag.h (libc has the
        // offsets, not these two).
        const SO_MEMINFO: libc::c_int = 55;
        const SK_MEMINFO_VARS: usize = 9;
        let mut info = [0u32; SK_MEMINFO_VARS];
        let mut len = size_of::<[u32; SK_MEMINFO_VARS]>() as libc::socklen_t;
        // SAFETY: `info` and `len` live across the call; `len` is the size of
        // `info`, which the kernel never writes past.
        let rc = unsafe {
            libc::getsockopt(
                self.socket.as_raw_fd(),
                libc::SOL_SOCKET,
                SO_MEMINFO,
                info.as_mut_ptr().cast(),
                &mut len,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        usize::try_from(libc::SK_MEMINFO_DROPS)
            .ok()
            .and_then(|i| info.get(i).copied())
            .ok_or_else(|| io::Error::other("SO_MEMINFO without a drop counter"))
    }

    fn recv(&self, batch: &mut RecvBatch, wait_flag: libc::c_int) -> io::Result<usize> {
        batch.prepare();
        batch.defaults = batch::DefaultAddrs::of_socket(self.local);
        let vlen = libc::c_uint::try_from(batch.headers.len()).unwrap_or(libc::c_uint::MAX);
        // MSG_TRUNC makes msg_len the datagram's real length even when it did
        // not fit the buffer.
        let flags = wait_flag | libc::MSG_TRUNC;
        // SAFETY: `new` pointed every header at buffers, iovecs, address and
        // control storage owned by `batch` (never resized, so never moved),
        // `prepare` restored the lengths the kernel may read; the batch
        // outlives the call and is not touched meanwhile; `vlen` is the
        // number of headers.
        let n = unsafe {
            libc::recvmmsg(
                self.socket.as_raw_fd(),
                batch.headers.as_mut_ptr(),
                vlen,
                flags as _,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock
                | io::ErrorKind::TimedOut
                | io::ErrorKind::Interrupted => {
                    batch.received = 0;
                    Ok(0)
                }
                _ => Err(e),
            };
        }
        batch.received = usize::try_from(n).unwrap_or(0);
        Ok(batch.received)
    }
}

/// Most sockets one thread waits on at once.
pub const MAX_WAIT_SOCKETS: usize = 16;

/// Waits at most `timeout` until one of `fds` (at most
/// [`MAX_WAIT_SOCKETS`]) has a datagram queued; returns a bit mask of the
/// readable ones (bit i for `fds[i]`), 0 on timeout.
pub fn wait_any_readable(fds: &[std::os::fd::RawFd], timeout: Duration) -> io::Result<u32> {
    let mut pfds: arrayvec::ArrayVec<libc::pollfd, MAX_WAIT_SOCKETS> = fds
        .iter()
        .take(MAX_WAIT_SOCKETS)
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let ts = libc::timespec {
        tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
    };
    let nfds = libc::nfds_t::try_from(pfds.len()).unwrap_or(0);
    // SAFETY: `pfds` holds `nfds` initialised entries and lives across the
    // call; `ts` is valid; the signal mask is left alone (null).
    let n = unsafe { libc::ppoll(pfds.as_mut_ptr(), nfds, &ts, std::ptr::null()) };
    if n < 0 {
        let e = io::Error::last_os_error();
        return match e.kind() {
            io::ErrorKind::Interrupted => Ok(0),
            _ => Err(e),
        };
    }
    Ok(pfds
        .iter()
        .enumerate()
        .filter(|(_, p)| p.revents & libc::POLLIN != 0)
        .fold(0u32, |m, (i, _)| m | (1 << i)))
}

#[cfg(test)]
mod tests {
    use super::batch::{CMSG_ALIGN, CMSG_HEADER, canonical_v6, read_control};
    use super::*;
    use std::net::UdpSocket;
    use std::net::{IpAddr, Ipv6Addr};

    fn bind_loopback(rcvbuf: usize) -> (TunnelSocket, UdpSocket) {
        let s = TunnelSocket::bind("127.0.0.1:0".parse().unwrap(), rcvbuf).unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.connect(s.local_addr()).unwrap();
        (s, tx)
    }

    #[test]
    fn one_call_receives_a_batch_with_peer_local_and_time() {
        let (s, tx) = bind_loopback(1 << 20);
        for i in 0..40u8 {
            tx.send(&[i; 100]).unwrap();
        }
        let mut b = RecvBatch::new(64, 9216);
        let mut got = Vec::new();
        // Loopback delivers synchronously; a few calls at most.
        for _ in 0..10 {
            let n = s.recv_batch(&mut b).unwrap();
            for d in b.datagrams().take(n) {
                got.push(d.payload[0]);
                assert_eq!(d.len, 100);
                assert!(!d.truncated);
                assert_eq!(d.peer_ip, tx.local_addr().unwrap().ip());
                assert_eq!(d.local_ip, IpAddr::from([127, 0, 0, 1]));
                let now_us = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_micros() as i64;
                let ts = d.ts_us.expect("kernel timestamp");
                assert!((now_us - ts).abs() < 60_000_000, "ts {ts} now {now_us}");
            }
            if got.len() == 40 {
                break;
            }
        }
        assert_eq!(got, (0..40).collect::<Vec<u8>>());
        assert!(b.datagrams().nth(40).is_none());
    }

    /// One control message as the kernel lays it out.
    fn cmsg(level: libc::c_int, kind: libc::c_int, data: &[u8]) -> Vec<u8> {
        let len = CMSG_HEADER + data.len();
        let mut m = vec![0u8; len.next_multiple_of(CMSG_ALIGN)];
        m[..size_of::<usize>()].copy_from_slice(&len.to_ne_bytes());
        let level_at = std::mem::offset_of!(libc::cmsghdr, cmsg_level);
        let type_at = std::mem::offset_of!(libc::cmsghdr, cmsg_type);
        m[level_at..level_at + 4].copy_from_slice(&level.to_ne_bytes());
        m[type_at..type_at + 4].copy_from_slice(&kind.to_ne_bytes());
        m[CMSG_HEADER..len].copy_from_slice(data);
        m
    }

    fn empty_datagram() -> Datagram<'static> {
        Datagram {
            payload: &[],
            len: 0,
            truncated: false,
            peer_ip: IpAddr::from([0, 0, 0, 0]),
            local_ip: IpAddr::from([0, 0, 0, 0]),
            ts_us: None,
            kernel_drops: None,
        }
    }

    #[test]
    fn control_messages_are_read_and_malformed_ones_end_the_walk() {
        let mut ts = Vec::new();
        ts.extend_from_slice(&(1_700_000_000 as libc::time_t).to_ne_bytes());
        ts.extend_from_slice(&(123_456_789 as libc::c_long).to_ne_bytes());
        let mut pktinfo = vec![0u8; size_of::<libc::in_pktinfo>()];
        let at = std::mem::offset_of!(libc::in_pktinfo, ipi_addr);
        pktinfo[at..at + 4].copy_from_slice(&[10, 1, 2, 3]);
        let mut c = cmsg(libc::SOL_SOCKET, libc::SCM_TIMESTAMPNS, &ts);
        c.extend(cmsg(
            libc::SOL_SOCKET,
            libc::SO_RXQ_OVFL,
            &7u32.to_ne_bytes(),
        ));
        c.extend(cmsg(libc::IPPROTO_IP, libc::IP_PKTINFO, &pktinfo));
        let mut d = empty_datagram();
        read_control(&c, &mut d);
        assert_eq!(d.ts_us, Some(1_700_000_000_123_456));
        assert_eq!(d.kernel_drops, Some(7));
        assert_eq!(d.local_ip, IpAddr::from([10, 1, 2, 3]));

        // A length of zero (it would never advance), a length past the end,
        // and a message too short for its type: nothing read, no panic.
        let mut zero = cmsg(libc::SOL_SOCKET, libc::SO_RXQ_OVFL, &7u32.to_ne_bytes());
        zero[..size_of::<usize>()].fill(0);
        let mut long = cmsg(libc::SOL_SOCKET, libc::SO_RXQ_OVFL, &7u32.to_ne_bytes());
        long[..size_of::<usize>()].copy_from_slice(&4096usize.to_ne_bytes());
        let short = cmsg(libc::SOL_SOCKET, libc::SCM_TIMESTAMPNS, &[1, 2, 3]);
        for bad in [zero, long, short, vec![1, 2, 3]] {
            let mut d = empty_datagram();
            read_control(&bad, &mut d);
            let unset = IpAddr::from([0, 0, 0, 0]);
            assert_eq!((d.ts_us, d.kernel_drops, d.local_ip), (None, None, unset));
        }
    }

    #[test]
    fn ipv6_addresses_are_canonical_as_the_standard_library_has_them() {
        for a in [
            "::ffff:10.1.2.3",
            "::1",
            "::",
            "2001:db8::ffff:0:1",
            "::fffe:1.2.3.4",
            "::1.2.3.4",
        ] {
            let v6: Ipv6Addr = a.parse().unwrap();
            assert_eq!(canonical_v6(v6.octets()), v6.to_canonical(), "{a}");
        }
    }

    #[test]
    fn first_call_takes_every_queued_datagram() {
        let (s, tx) = bind_loopback(1 << 20);
        for i in 0..48u8 {
            tx.send(&[i; 10]).unwrap();
        }
        let mut b = RecvBatch::new(32, 9216);
        assert_eq!(s.recv_batch(&mut b).unwrap(), 32);
        assert_eq!(s.recv_batch(&mut b).unwrap(), 16);
    }

    #[test]
    fn a_datagram_longer_than_the_buffer_is_flagged_with_its_real_length() {
        let (s, tx) = bind_loopback(1 << 20);
        tx.send(&[7u8; 1000]).unwrap();
        let mut b = RecvBatch::new(4, 64);
        assert_eq!(s.recv_batch(&mut b).unwrap(), 1);
        let d = b.datagrams().next().unwrap();
        assert!(d.truncated);
        assert_eq!(d.len, 1000);
        assert_eq!(d.payload, &[7u8; 64][..]);
    }

    #[test]
    fn kernel_drops_are_reported_cumulatively() {
        let (s, tx) = bind_loopback(4096);
        // Far more than a ~4.5 KiB buffer holds while nobody reads.
        for _ in 0..200 {
            tx.send(&[1u8; 1000]).unwrap();
        }
        let mut b = RecvBatch::new(64, 9216);
        let mut received = 0;
        loop {
            let n = s.recv_batch(&mut b).unwrap();
            if n == 0 {
                break;
            }
            received += n;
        }
        assert!((1..200).contains(&received));
        // Read directly, the counter already has the drops no received
        // datagram carried.
        assert_eq!(s.kernel_drops().unwrap(), (200 - received) as u32);
        // The kernel stamps the count on datagrams queued after the drops.
        tx.send(b"after").unwrap();
        assert_eq!(s.recv_batch(&mut b).unwrap(), 1);
        let d = b.datagrams().next().unwrap();
        assert_eq!(d.payload, b"after");
        assert_eq!(d.kernel_drops, Some((200 - received) as u32));
    }

    #[test]
    fn empty_queue_times_out_with_zero() {
        let (s, _tx) = bind_loopback(1 << 20);
        let mut b = RecvBatch::new(32, 9216);
        assert_eq!(s.recv_batch(&mut b).unwrap(), 0);
        assert!(b.is_empty());
        assert_eq!(s.recv_batch_nowait(&mut b).unwrap(), 0);
    }

    #[test]
    fn rcvbuf_is_read_back_and_reuseport_shares_the_port() {
        let a = TunnelSocket::bind("127.0.0.1:0".parse().unwrap(), 256 << 10).unwrap();
        // Linux reports twice what it accepted; never less than a minimum.
        assert!(a.granted_rcvbuf_bytes() >= 2048);
        let b = TunnelSocket::bind(a.local_addr(), 256 << 10).unwrap();
        assert_eq!(a.local_addr(), b.local_addr());
        let small = TunnelSocket::bind("127.0.0.1:0".parse().unwrap(), 4096).unwrap();
        assert!(small.granted_rcvbuf_bytes() < a.granted_rcvbuf_bytes());
    }

    #[test]
    fn ipv6_socket_receives_with_its_local_address() {
        let Ok(s) = TunnelSocket::bind("[::1]:0".parse().unwrap(), 1 << 20) else {
            return; // no IPv6 loopback in this environment
        };
        let tx = UdpSocket::bind("[::1]:0").unwrap();
        tx.send_to(b"hello", s.local_addr()).unwrap();
        let mut b = RecvBatch::new(32, 9216);
        assert_eq!(s.recv_batch(&mut b).unwrap(), 1);
        let d = b.datagrams().next().unwrap();
        assert_eq!(d.payload, b"hello");
        assert_eq!(d.local_ip, IpAddr::from(Ipv6Addr::LOCALHOST));
        assert_eq!(d.peer_ip, tx.local_addr().unwrap().ip());
    }
}
