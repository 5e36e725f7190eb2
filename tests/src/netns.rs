//! Network namespaces for the kernel-mirroring test: a client and a server
//! joined by a veth pair, and a sensor namespace joined to the client by an
//! underlay veth pair. The client mirrors its HTTP interface both ways (tc
//! clsact, u32 match-all, mirred) into a kernel VXLAN device whose remote
//! is the sensor namespace, as AWS Traffic Mirroring would.
//!
//! Inputs: the VXLAN port and VNI. Outputs: a [`MirrorLab`] naming its
//! namespaces, interfaces and 198.18.0.0/15 addresses, and
//! [`Background`] processes started inside them. Everything is removed
//! when the guards drop, failed test or not. It needs root, `ip` and `tc`;
//! [`netns_unavailable`] says why not when they are missing.

use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// Client address on the HTTP link.
pub const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// Server address on the HTTP link.
pub const SERVER_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
/// Client address on the underlay (the outer source of the VXLAN packets).
pub const CLIENT_UNDERLAY_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);
/// Sensor address on the underlay.
pub const SENSOR_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 2);

/// Why namespaces cannot be used here (not root, no `ip`/`tc`, `ip netns
/// add` refused), or `None` when they can.
pub fn netns_unavailable() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("?");
    if uid != "0" {
        return Some(format!("not root (effective uid {uid})"));
    }
    for tool in ["ip", "tc"] {
        if Command::new(tool).arg("-V").output().is_err() {
            return Some(format!("`{tool}` not found"));
        }
    }
    // The probe namespace is deleted again when it drops.
    Netns::create("probe").err()
}

/// Runs a command; Err with its stderr when it fails.
pub fn run(args: &[&str]) -> Result<(), String> {
    let (program, rest) = args.split_first().ok_or("empty command")?;
    let output = Command::new(program)
        .args(rest)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{}: {e}", args.join(" ")))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`{}` failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// A unique short name (interface names are at most 15 bytes).
fn unique(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}{}x{n}", std::process::id() % 1_000_000)
}

/// A network namespace, deleted on drop.
#[derive(Debug)]
pub struct Netns {
    /// Its name for `ip netns`.
    pub name: String,
}

impl Netns {
    /// `ip netns add` a unique name starting with `e2e` and `role`.
    pub fn create(role: &str) -> Result<Self, String> {
        let name = unique(&format!("e2e{role}"));
        run(&["ip", "netns", "add", &name])?;
        let ns = Self { name };
        ns.exec(&["ip", "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Runs a command inside the namespace.
    pub fn exec(&self, args: &[&str]) -> Result<(), String> {
        let mut full = vec!["ip", "netns", "exec", &self.name];
        full.extend_from_slice(args);
        run(&full)
    }

    /// A command that runs `args` inside the namespace.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).args(args);
        c
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace destroys the veth ends and the VXLAN
        // device inside it (and with them the peers).
        let _ = run(&["ip", "netns", "del", &self.name]);
    }
}

/// Creates a veth pair with ends `a` in `ns_a` and `b` in `ns_b`, addresses
/// (/24) set and links up.
fn veth(
    ns_a: &Netns,
    a: (&str, Ipv4Addr),
    ns_b: &Netns,
    b: (&str, Ipv4Addr),
) -> Result<(), String> {
    run(&[
        "ip", "link", "add", a.0, "type", "veth", "peer", "name", b.0,
    ])?;
    for (ns, (name, ip)) in [(ns_a, a), (ns_b, b)] {
        run(&["ip", "link", "set", name, "netns", &ns.name])?;
        ns.exec(&["ip", "addr", "add", &format!("{ip}/24"), "dev", name])?;
        ns.exec(&["ip", "link", "set", name, "up"])?;
    }
    Ok(())
}

/// The three namespaces wired for mirroring. Drop order: the sensor,
/// server and client namespaces are deleted with the lab.
#[derive(Debug)]
pub struct MirrorLab {
    /// Runs the HTTP client and the mirror.
    pub client: Netns,
    /// Runs the HTTP server.
    pub server: Netns,
    /// Runs the sensor.
    pub sensor: Netns,
    /// The client's HTTP interface (the mirrored one).
    pub client_if: String,
}

impl MirrorLab {
    /// Builds the namespaces, links, VXLAN device and mirror filters.
    pub fn build(vxlan_port: u16, vni: u32) -> Result<Self, String> {
        let lab = Self {
            client: Netns::create("c")?,
            server: Netns::create("s")?,
            sensor: Netns::create("n")?,
            client_if: unique("hc"),
        };
        let server_if = unique("hs");
        let underlay_client = unique("uc");
        let underlay_sensor = unique("un");
        veth(
            &lab.client,
            (&lab.client_if, CLIENT_IP),
            &lab.server,
            (&server_if, SERVER_IP),
        )?;
        veth(
            &lab.client,
            (&underlay_client, CLIENT_UNDERLAY_IP),
            &lab.sensor,
            (&underlay_sensor, SENSOR_IP),
        )?;
        let (vni, port, remote) = (
            vni.to_string(),
            vxlan_port.to_string(),
            SENSOR_IP.to_string(),
        );
        let c = &lab.client;
        c.exec(&[
            "ip",
            "link",
            "add",
            "vx0",
            "type",
            "vxlan",
            "id",
            &vni,
            "remote",
            &remote,
            "dstport",
            &port,
            "dev",
            &underlay_client,
        ])?;
        c.exec(&["ip", "link", "set", "vx0", "up"])?;
        c.exec(&["tc", "qdisc", "add", "dev", &lab.client_if, "clsact"])?;
        for hook in ["ingress", "egress"] {
            c.exec(&[
                "tc",
                "filter",
                "add",
                "dev",
                &lab.client_if,
                hook,
                "protocol",
                "all",
                "u32",
                "match",
                "u32",
                "0",
                "0",
                "action",
                "mirred",
                "egress",
                "mirror",
                "dev",
                "vx0",
            ])?;
        }
        Ok(lab)
    }
}

/// A process the test started in the background, killed by PID on drop.
#[derive(Debug)]
pub struct Background {
    /// The child.
    pub child: Child,
    /// What it is, for messages.
    pub what: String,
}

impl Background {
    /// Starts `command` with stdout and stderr discarded.
    pub fn spawn(mut command: Command, what: &str) -> Result<Self, String> {
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("start {what}: {e}"))?;
        Ok(Self {
            child,
            what: what.to_owned(),
        })
    }

    /// Starts `command` and waits (up to `timeout`) for a line of its
    /// stderr containing `marker` (tshark's "Capturing on").
    pub fn spawn_until(
        mut command: Command,
        what: &str,
        marker: &str,
        timeout: Duration,
    ) -> Result<Self, String> {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("start {what}: {e}"))?;
        let stderr = child.stderr.take().ok_or("stderr is piped")?;
        let (tx, rx) = mpsc::channel();
        let marker = marker.to_owned();
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains(&marker) {
                    let _ = tx.send(Ok(()));
                }
                seen.push(line);
            }
            let _ = tx.send(Err(seen.join("\n")));
        });
        let background = Self {
            child,
            what: what.to_owned(),
        };
        match rx.recv_timeout(timeout) {
            Ok(Ok(())) => Ok(background),
            Ok(Err(stderr)) => Err(format!("{what} ended before it was ready:\n{stderr}")),
            Err(_) => Err(format!("{what} not ready within {timeout:?}")),
        }
    }

    /// Sends `signal` by PID and waits up to `timeout` for the exit.
    pub fn stop(&mut self, signal: &str, timeout: Duration) -> Result<(), String> {
        run(&["kill", "-s", signal, &self.child.id().to_string()])?;
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Ok(Some(_)) = self.child.try_wait() {
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                return Err(format!("{} did not exit after SIG{signal}", self.what));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
