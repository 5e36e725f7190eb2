//! The ceiling of the live benchmark: a bare `recvmmsg` drain of UDP
//! sockets set up as the sensor sets up its tunnel sockets, counting
//! datagrams and doing nothing else with them.
//!
//! Socket setup copied from the sensor's `capture::socket`: SO_REUSEPORT
//! (one socket per thread, all on one address), the requested SO_RCVBUF
//! (SO_RCVBUFFORCE when the kernel grants less), a 100 ms receive timeout,
//! SO_TIMESTAMPNS, SO_RXQ_OVFL and IP_PKTINFO (so the kernel builds the same
//! control messages), `recvmmsg` with MSG_WAITFORONE | MSG_TRUNC into
//! buffers allocated once (batch x buffer bytes, 128 control bytes each).
//! Input: address, threads, batch, buffer and SO_RCVBUF sizes, CPUs to run
//! on. Output: the running count of datagrams received. It does not decode
//! anything.

use std::io;
use std::mem::size_of;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};
use socket2::{Domain, Protocol, Socket, Type};

/// Control bytes per message, as the sensor reserves.
const CONTROL_BYTES: usize = 128;

/// How the drain receives.
#[derive(Debug, Clone)]
pub struct DrainSetup {
    /// Receive threads (one SO_REUSEPORT socket each).
    pub threads: usize,
    /// Datagrams per `recvmmsg`.
    pub batch: usize,
    /// Bytes per receive buffer.
    pub buffer_bytes: usize,
    /// Requested SO_RCVBUF.
    pub rcvbuf_bytes: usize,
    /// CPUs the receive threads may run on (empty: any).
    pub cpus: Vec<usize>,
}

/// Running drain threads.
#[derive(Debug)]
pub struct Drain {
    /// The address every socket is bound to.
    pub addr: SocketAddr,
    /// SO_RCVBUF as read back from the first socket.
    pub granted_rcvbuf_bytes: usize,
    received: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    paused: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Drain {
    /// Binds `setup.threads` sockets to `ip` on one free port and starts a
    /// receive thread on each.
    pub fn start(ip: std::net::IpAddr, setup: &DrainSetup) -> Result<Self> {
        Self::start_with(ip, setup, false)
    }

    /// Like [`Drain::start`], but the threads do not read their sockets
    /// until [`Drain::release`]: datagrams pile up in the socket buffers
    /// (the backlog measure).
    pub fn start_paused(ip: std::net::IpAddr, setup: &DrainSetup) -> Result<Self> {
        Self::start_with(ip, setup, true)
    }

    /// Lets paused threads start reading.
    pub fn release(&self) {
        self.paused.store(false, Ordering::Release);
    }

    fn start_with(ip: std::net::IpAddr, setup: &DrainSetup, paused: bool) -> Result<Self> {
        let first = bind(SocketAddr::new(ip, 0), setup.rcvbuf_bytes)?;
        let addr = first
            .local_addr()?
            .as_socket()
            .context("bound socket has no address")?;
        let granted_rcvbuf_bytes = first.recv_buffer_size()?;
        let mut sockets = vec![first];
        for _ in 1..setup.threads.max(1) {
            sockets.push(bind(addr, setup.rcvbuf_bytes)?);
        }
        let received = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let paused = Arc::new(AtomicBool::new(paused));
        let threads = sockets
            .into_iter()
            .enumerate()
            .map(|(i, socket)| {
                let (received, stop, setup) = (received.clone(), stop.clone(), setup.clone());
                let paused = paused.clone();
                std::thread::Builder::new()
                    .name(format!("drain-{i}"))
                    .spawn(move || {
                        pin_to(&setup.cpus);
                        while paused.load(Ordering::Acquire) && !stop.load(Ordering::Relaxed) {
                            std::thread::sleep(Duration::from_micros(200));
                        }
                        receive_loop(&socket, &setup, &received, &stop);
                    })
                    .context("spawn a drain thread")
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            addr,
            granted_rcvbuf_bytes,
            received,
            stop,
            paused,
            threads,
        })
    }

    /// Datagrams received so far.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// Stops and joins the threads (within the 100 ms receive timeout).
    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
    }
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

fn bind(addr: SocketAddr, rcvbuf_bytes: usize) -> Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_port(true)?;
    socket.set_recv_buffer_size(rcvbuf_bytes)?;
    if socket.recv_buffer_size()? < rcvbuf_bytes {
        let want = libc::c_int::try_from(rcvbuf_bytes).unwrap_or(libc::c_int::MAX);
        let _ = set_int_option(&socket, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, want);
    }
    socket.set_read_timeout(Some(Duration::from_millis(100)))?;
    set_int_option(&socket, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, 1)?;
    set_int_option(&socket, libc::SOL_SOCKET, libc::SO_RXQ_OVFL, 1)?;
    if addr.is_ipv6() {
        set_int_option(&socket, libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO, 1)?;
    } else {
        set_int_option(&socket, libc::IPPROTO_IP, libc::IP_PKTINFO, 1)?;
    }
    socket
        .bind(&addr.into())
        .with_context(|| format!("bind {addr}"))?;
    Ok(socket)
}

/// Restricts the calling thread to `cpus` (no-op when empty).
pub fn pin_to(cpus: &[usize]) {
    if cpus.is_empty() {
        return;
    }
    // SAFETY: cpu_set_t is plain data; zeroed is its empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &cpu in cpus {
        // SAFETY: CPU_SET writes a bit inside `set` (ids beyond its size are
        // ignored by the macro's bounds check).
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    // SAFETY: `set` is a valid cpu_set_t of the size passed; pid 0 is the
    // calling thread.
    let rc = unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) };
    if rc != 0 {
        eprintln!("live-bench: warning: pinning a drain thread to {cpus:?} failed");
    }
}

fn receive_loop(socket: &Socket, setup: &DrainSetup, received: &AtomicU64, stop: &AtomicBool) {
    let batch = setup.batch.max(1);
    let mut buffers = vec![0u8; batch * setup.buffer_bytes];
    let mut control = vec![0u8; batch * CONTROL_BYTES];
    // SAFETY: iovec, sockaddr_storage and mmsghdr are plain data; zeroed is
    // a valid value of each.
    let mut iovecs: Vec<libc::iovec> = (0..batch).map(|_| unsafe { std::mem::zeroed() }).collect();
    let mut names: Vec<libc::sockaddr_storage> =
        (0..batch).map(|_| unsafe { std::mem::zeroed() }).collect();
    let mut headers: Vec<libc::mmsghdr> =
        (0..batch).map(|_| unsafe { std::mem::zeroed() }).collect();
    let vlen = libc::c_uint::try_from(batch).unwrap_or(libc::c_uint::MAX);
    while !stop.load(Ordering::Relaxed) {
        for i in 0..batch {
            iovecs[i].iov_base = buffers[i * setup.buffer_bytes..].as_mut_ptr().cast();
            iovecs[i].iov_len = setup.buffer_bytes;
            let h = &mut headers[i].msg_hdr;
            h.msg_name = (&raw mut names[i]).cast();
            h.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_iov = &raw mut iovecs[i];
            h.msg_iovlen = 1;
            h.msg_control = control[i * CONTROL_BYTES..].as_mut_ptr().cast();
            h.msg_controllen = CONTROL_BYTES as _;
            h.msg_flags = 0;
        }
        // SAFETY: every header points at buffers, iovecs, names and control
        // storage owned by this function, alive and untouched during the
        // call; `vlen` is the number of headers.
        let n = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                headers.as_mut_ptr(),
                vlen,
                (libc::MSG_WAITFORONE | libc::MSG_TRUNC) as _,
                std::ptr::null_mut(),
            )
        };
        if n > 0 {
            received.fetch_add(n as u64, Ordering::Relaxed);
        }
    }
}
