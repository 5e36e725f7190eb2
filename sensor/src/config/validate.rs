//! Range and consistency checks of a loaded configuration.
//!
//! Owns: the rules every value must meet before a stage is built from it
//! (minimums the data path relies on, caps at least 1, timeouts above zero,
//! addresses that can all be bound at once). Input: a [`SensorConfig`].
//! Output: the first broken rule, naming its key. Does not: know where a value
//! came from (the loader adds the file position, variable or flag).

use super::SensorConfig;
use std::net::SocketAddr;
use std::time::Duration;

/// A broken rule: the key it concerns and what is wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{section}.{key}: {message}")]
pub struct Invalid {
    /// Section of the key (`live`).
    pub section: &'static str,
    /// Key within the section (`batch_datagrams`).
    pub key: &'static str,
    /// What is wrong, with the value and the accepted range.
    pub message: String,
}

/// Longest timeout accepted: a week of packet time (keeps every deadline
/// computation far from integer overflow).
const MAX_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 3600);
/// Longest drain: AWS's longest deregistration delay (3600 s).
const MAX_DRAIN: Duration = Duration::from_secs(3600);
/// Longest reorder window: held packets wait this long (memory and latency).
const MAX_REORDER_WINDOW: Duration = Duration::from_secs(1);
/// Most threads of one kind.
const MAX_THREADS: usize = 1024;
/// Most datagrams per recvmmsg call (the kernel's UIO_MAXIOV).
const MAX_BATCH: usize = 1024;
/// Largest useful receive buffer: the largest UDP payload fits in it.
const MAX_BUFFER_BYTES: usize = 65_536;

type Check = Result<(), Invalid>;

pub(super) fn fail(section: &'static str, key: &'static str, message: String) -> Check {
    Err(Invalid {
        section,
        key,
        message,
    })
}

pub(super) fn range(s: &'static str, k: &'static str, v: u64, min: u64, max: u64) -> Check {
    if v < min {
        fail(s, k, format!("{v} is below the minimum {min}"))
    } else if v > max {
        fail(s, k, format!("{v} is above the maximum {max}"))
    } else {
        Ok(())
    }
}

fn at_least(s: &'static str, k: &'static str, v: u64, min: u64) -> Check {
    range(s, k, v, min, u64::MAX)
}

pub(super) fn timeout(
    s: &'static str,
    k: &'static str,
    d: Duration,
    allow_zero: bool,
    max: Duration,
) -> Check {
    let shown = super::forms::format_duration(d);
    if d.is_zero() && !allow_zero {
        fail(s, k, "must be longer than 0s".to_string())
    } else if d > max {
        let max = super::forms::format_duration(max);
        fail(s, k, format!("{shown} is longer than the maximum {max}"))
    } else {
        Ok(())
    }
}

fn ports(s: &'static str, k: &'static str, list: &[u16]) -> Check {
    if list.contains(&0) {
        return fail(s, k, "port 0 is not a port".to_string());
    }
    Ok(())
}

/// Two binds of the same protocol collide: same address, or same port and
/// family with one of them the wildcard. (`0.0.0.0` and `[::]` do not
/// collide: the data path binds IPv6 sockets IPV6_V6ONLY.)
fn collide(a: &SocketAddr, b: &SocketAddr) -> bool {
    a == b
        || (a.port() == b.port()
            && a.is_ipv4() == b.is_ipv4()
            && (a.ip().is_unspecified() || b.ip().is_unspecified()))
}

fn addresses(s: &'static str, k: &'static str, list: &[SocketAddr]) -> Check {
    for (i, a) in list.iter().enumerate() {
        if a.port() == 0 {
            return fail(s, k, format!("{a}: port 0 is not allowed"));
        }
        if let Some(b) = list[..i].iter().find(|b| collide(a, b)) {
            return fail(s, k, format!("{a} overlaps {b}, listed before it"));
        }
    }
    Ok(())
}

fn no_overlap(
    s: &'static str,
    k: &'static str,
    list: &[SocketAddr],
    other: &[SocketAddr],
    other_key: &str,
) -> Check {
    for a in list {
        if let Some(b) = other.iter().find(|b| collide(a, b)) {
            return fail(s, k, format!("{a} overlaps {b} of {other_key}"));
        }
    }
    Ok(())
}

fn as_u64(v: usize) -> u64 {
    u64::try_from(v).unwrap_or(u64::MAX)
}

impl SensorConfig {
    /// Checks every value against its accepted range and the addresses
    /// against each other; the first broken rule names its key.
    pub fn validate(&self) -> Result<(), Invalid> {
        self.validate_pipeline()?;
        self.validate_live()?;
        self.validate_health()?;
        self.validate_output()?;
        self.enroll.check()?;
        self.nucleus.check()
    }

    fn validate_pipeline(&self) -> Check {
        let d = &self.pipeline.decap;
        ports("decap", "vxlan_ports", &d.vxlan_ports)?;
        ports("decap", "geneve_ports", &d.geneve_ports)?;
        ports("decap", "gre_udp_ports", &d.gre_udp_ports)?;
        if let Some(p) = d.geneve_ports.iter().find(|p| d.vxlan_ports.contains(p)) {
            return fail(
                "decap",
                "geneve_ports",
                format!("port {p} is also in vxlan_ports"),
            );
        }
        for p in &d.gre_udp_ports {
            if d.vxlan_ports.contains(p) || d.geneve_ports.contains(p) {
                let m = format!("port {p} is also in vxlan_ports or geneve_ports");
                return fail("decap", "gre_udp_ports", m);
            }
        }
        // The IP-in-UDP tunnels are only taken when their header reads
        // cleanly, so sharing a port is allowed, but port 0 is not.
        ports("decap", "teredo_ports", &d.teredo_ports)?;
        ports("decap", "ayiya_ports", &d.ayiya_ports)?;
        ports("decap", "gtp_u_ports", &d.gtp_u_ports)?;
        range("decap", "max_depth", as_u64(d.max_depth), 1, 8)?;

        let f = &self.pipeline.defrag;
        timeout("defrag", "timeout", f.timeout, false, MAX_TIMEOUT)?;
        at_least("defrag", "max_datagrams", as_u64(f.max_datagrams), 1)?;
        at_least(
            "defrag",
            "max_datagrams_per_source",
            u64::from(f.max_datagrams_per_source),
            1,
        )?;
        at_least("defrag", "max_bytes", as_u64(f.max_bytes), 1)?;
        at_least(
            "defrag",
            "max_fragments_per_datagram",
            u64::from(f.max_fragments_per_datagram),
            2,
        )?;

        let r = &self.pipeline.reassembly;
        at_least(
            "reassembly",
            "max_stream_bytes",
            as_u64(r.max_stream_bytes),
            1,
        )?;
        at_least(
            "reassembly",
            "max_stream_segments",
            as_u64(r.max_stream_segments),
            1,
        )?;
        at_least("reassembly", "max_bytes", as_u64(r.max_bytes), 1)?;

        let a = &self.pipeline.dissect;
        for name in &a.protocols {
            if crate::dissect::by_name(name).is_none() {
                let known: Vec<&str> = crate::dissect::REGISTRY.iter().map(|p| p.name).collect();
                let m = format!("unknown protocol {name:?} (known: {})", known.join(", "));
                return fail("dissect", "protocols", m);
            }
        }
        at_least(
            "dissect",
            "max_pending_transactions",
            as_u64(a.max_pending_transactions),
            1,
        )?;
        at_least(
            "dissect",
            "max_buffered_bytes",
            as_u64(a.max_buffered_bytes),
            512,
        )?;
        range("dissect", "probe_bytes", as_u64(a.probe_bytes), 16, 65_536)?;
        range(
            "dissect",
            "probe_datagrams",
            u64::from(a.probe_datagrams),
            1,
            64,
        )?;
        range("dissect", "max_upgrades", u64::from(a.max_upgrades), 0, 16)?;

        let t = &self.pipeline.flows;
        at_least("flows", "max_flows", as_u64(t.max_flows), 1)?;
        for (key, d) in [
            ("tcp_timeout", t.tcp_timeout),
            ("tcp_closed_timeout", t.tcp_closed_timeout),
            ("tcp_attempt_timeout", t.tcp_attempt_timeout),
            ("udp_timeout", t.udp_timeout),
            ("icmp_timeout", t.icmp_timeout),
            ("other_timeout", t.other_timeout),
            ("sweep_interval", t.sweep_interval),
        ] {
            timeout("flows", key, d, false, MAX_TIMEOUT)?;
        }
        // Zero turns duplicate recognition off.
        timeout(
            "flows",
            "duplicate_window",
            t.duplicate_window,
            true,
            MAX_TIMEOUT,
        )?;
        ports(
            "flows",
            "likely_server_ports_tcp",
            &t.likely_server_ports_tcp,
        )?;
        ports(
            "flows",
            "likely_server_ports_udp",
            &t.likely_server_ports_udp,
        )
    }

    fn validate_live(&self) -> Check {
        let l = &self.live;
        addresses("live", "listen_vxlan", &l.listen_vxlan)?;
        addresses("live", "listen_geneve", &l.listen_geneve)?;
        if l.listen_vxlan.is_empty() && l.listen_geneve.is_empty() {
            let m = "is empty, and so is live.listen_geneve: nothing would be received";
            return fail("live", "listen_vxlan", m.to_string());
        }
        no_overlap(
            "live",
            "listen_geneve",
            &l.listen_geneve,
            &l.listen_vxlan,
            "live.listen_vxlan",
        )?;
        range(
            "live",
            "rx_threads",
            as_u64(l.rx_threads),
            1,
            as_u64(MAX_THREADS),
        )?;
        range("live", "workers", as_u64(l.workers), 1, as_u64(MAX_THREADS))?;
        range(
            "live",
            "batch_datagrams",
            as_u64(l.batch_datagrams),
            32,
            as_u64(MAX_BATCH),
        )?;
        let max_buffer = as_u64(MAX_BUFFER_BYTES);
        range(
            "live",
            "buffer_bytes",
            as_u64(l.buffer_bytes),
            9216,
            max_buffer,
        )?;
        // setsockopt takes an int.
        let max_rcvbuf = u64::from(i32::MAX.unsigned_abs());
        range(
            "live",
            "rcvbuf_bytes",
            as_u64(l.rcvbuf_bytes),
            4096,
            max_rcvbuf,
        )?;
        at_least(
            "live",
            "worker_queue_batches",
            as_u64(l.worker_queue_batches),
            1,
        )?;
        timeout(
            "live",
            "reorder_window",
            l.reorder_window,
            true,
            MAX_REORDER_WINDOW,
        )?;
        at_least(
            "live",
            "reorder_max_batches",
            as_u64(l.reorder_max_batches),
            1,
        )?;
        timeout("live", "drain", l.drain, true, MAX_DRAIN)
    }

    fn validate_health(&self) -> Check {
        let h = &self.health;
        addresses("health", "listen", std::slice::from_ref(&h.listen))?;
        addresses("health", "tcp_listen", &h.tcp_listen)?;
        no_overlap(
            "health",
            "tcp_listen",
            &h.tcp_listen,
            std::slice::from_ref(&h.listen),
            "health.listen",
        )?;
        let r = h.max_drop_ratio;
        if !(0.0..=1.0).contains(&r) {
            return fail(
                "health",
                "max_drop_ratio",
                format!("{r} is not between 0 and 1"),
            );
        }
        timeout("health", "stall_after", h.stall_after, false, MAX_TIMEOUT)
    }

    fn validate_output(&self) -> Check {
        let o = &self.output;
        if o.json.trim().is_empty() && !self.nucleus.enabled() {
            let m = "is empty and no [nucleus] address is set: give a file path, or \"-\" for \
                     stdout"
                .to_string();
            return fail("output", "json", m);
        }
        if o.json != "-" && !o.json.is_empty() && o.rotate_bytes > 0 {
            at_least("output", "keep_files", as_u64(o.keep_files), 1)?;
        }
        at_least("output", "queue_records", as_u64(o.queue_records), 1)
    }
}
