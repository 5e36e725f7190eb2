//! `sensor replay` over loopback: captures built here are replayed to UDP
//! sockets bound here, and what arrives is checked byte by byte. Every
//! receive has a timeout, so a missing datagram fails the test instead of
//! hanging it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use clap::Parser;
use etherparse::{PacketBuilder, SlicedPacket, TransportSlice};
use pcap_file::DataLink;
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use sensor::capture::{RawFrame, read_capture};
use sensor::decap::headers::{parse_geneve, parse_vxlan};
use sensor::decap::tunnel::{Encap, OuterAddrs, TunnelContext};
use sensor::decap::{Decoded, Decoder, UdpTunnel};
use sensor::metrics::Counters;
use sensor::replay::{ReplayArgs, ReplaySummary, replay};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: ReplayArgs,
}

fn args(v: &[&str]) -> ReplayArgs {
    Cli::try_parse_from(std::iter::once("replay").chain(v.iter().copied()))
        .unwrap()
        .args
}

/// A capture file in the temp directory, removed on drop.
struct TempCapture(PathBuf);

impl TempCapture {
    fn new(name: &str, link: DataLink, frames: &[(Duration, Vec<u8>)]) -> Self {
        let path =
            std::env::temp_dir().join(format!("sensor-replay-{}-{name}.pcap", std::process::id()));
        let file = std::fs::File::create(&path).unwrap();
        let header = PcapHeader {
            datalink: link,
            ..PcapHeader::default()
        };
        let mut w = PcapWriter::with_header(file, header).unwrap();
        for (ts, data) in frames {
            w.write_packet(&PcapPacket::new(*ts, data.len() as u32, data))
                .unwrap();
        }
        Self(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempCapture {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn tcp(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, seq: u32, syn: bool) -> Vec<u8> {
    let mut b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4(src, dst, 64)
        .tcp(sport, dport, seq, 65000);
    if syn {
        b = b.syn();
    }
    let mut out = Vec::new();
    b.write(&mut out, format!("segment {seq}").as_bytes())
        .unwrap();
    out
}

/// A TCP conversation: `n` frames alternating client and server.
fn conversation(n: u32) -> Vec<(Duration, Vec<u8>)> {
    let (c, s) = ([10, 1, 0, 1], [10, 1, 0, 2]);
    (0..n)
        .map(|i| {
            let f = if i % 2 == 0 {
                tcp(c, 40_000, s, 80, i, i == 0)
            } else {
                tcp(s, 80, c, 40_000, i, i == 1)
            };
            (Duration::from_millis(1_700_000_000_000 + u64::from(i)), f)
        })
        .collect()
}

fn receiver() -> (UdpSocket, String) {
    let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
    rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let to = rx.local_addr().unwrap().to_string();
    (rx, to)
}

/// Receives `n` datagrams (each within 5 s) with their source addresses.
fn receive(rx: &UdpSocket, n: usize) -> Vec<(Vec<u8>, SocketAddr)> {
    let mut buf = vec![0u8; 65_536];
    (0..n)
        .map(|i| {
            let (len, from) = rx
                .recv_from(&mut buf)
                .unwrap_or_else(|e| panic!("datagram {i} of {n}: {e}"));
            (buf[..len].to_vec(), from)
        })
        .collect()
}

fn assert_nothing_more(rx: &UdpSocket) {
    rx.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = [0u8; 16];
    assert!(rx.recv_from(&mut buf).is_err(), "an unexpected datagram");
}

fn clean(s: &ReplaySummary, sent: u64) {
    assert_eq!(s.packets_sent, sent, "{}", s.render());
    assert_eq!(s.send_errors.total(), 0, "{}", s.render());
}

#[test]
fn vxlan_carries_each_frame_exactly_with_the_vni() {
    let frames = conversation(6);
    let cap = TempCapture::new("vxlan", DataLink::ETHERNET, &frames);
    let (rx, to) = receiver();
    let s = replay(&args(&[cap.path(), "--to", &to, "--vni", "777", "--max"])).unwrap();
    clean(&s, 6);
    assert!(s.checksum_zero);
    let got = receive(&rx, 6);
    for ((payload, _), (_, frame)) in got.iter().zip(&frames) {
        let (vx, inner) = parse_vxlan(payload).unwrap();
        assert_eq!(&payload[..4], &[0x08, 0, 0, 0], "I flag, reserved bits 0");
        assert_eq!(vx.vni, 777);
        assert_eq!(inner, &frame[..]);
    }
    assert_nothing_more(&rx);
}

#[test]
fn the_two_directions_come_from_different_source_ports_each_always_the_same() {
    let frames = conversation(40);
    let cap = TempCapture::new("ports", DataLink::ETHERNET, &frames);
    let (rx, to) = receiver();
    clean(
        &replay(&args(&[cap.path(), "--to", &to, "--max"])).unwrap(),
        40,
    );
    let got = receive(&rx, 40);
    let client: Vec<u16> = got.iter().step_by(2).map(|(_, a)| a.port()).collect();
    let server: Vec<u16> = got
        .iter()
        .skip(1)
        .step_by(2)
        .map(|(_, a)| a.port())
        .collect();
    assert!(client.iter().all(|p| *p == client[0]), "{client:?}");
    assert!(server.iter().all(|p| *p == server[0]), "{server:?}");
    assert_ne!(client[0], server[0]);
}

#[test]
fn raw_ip_captures_get_an_ethernet_header() {
    let frames: Vec<_> = conversation(2)
        .into_iter()
        .map(|(ts, f)| (ts, f[14..].to_vec()))
        .collect();
    let cap = TempCapture::new("rawip", DataLink::RAW, &frames);
    let (rx, to) = receiver();
    clean(
        &replay(&args(&[cap.path(), "--to", &to, "--max"])).unwrap(),
        2,
    );
    for ((payload, _), (_, ip)) in receive(&rx, 2).iter().zip(&frames) {
        let ether = &payload[8..];
        assert_eq!(&ether[12..14], &[0x08, 0x00]);
        assert_eq!(&ether[14..], &ip[..]);
    }
}

/// The outer UDP checksum is 0, read from a raw socket that sees the UDP
/// header as sent. Needs CAP_NET_RAW; without it the test says so and
/// relies on the unit test that SO_NO_CHECK is accepted.
#[test]
fn outer_udp_checksum_is_zero() {
    use socket2::{Domain, Protocol, Socket, Type};
    use std::io::Read;
    let mut raw = match Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::UDP)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("skipped: no raw socket ({e}); checksum 0 not observed on the wire");
            return;
        }
    };
    raw.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let frames = conversation(4);
    let cap = TempCapture::new("csum", DataLink::ETHERNET, &frames);
    let (rx, to) = receiver();
    let port = rx.local_addr().unwrap().port();
    clean(
        &replay(&args(&[cap.path(), "--to", &to, "--max"])).unwrap(),
        4,
    );
    let mut seen = 0;
    let mut buf = vec![0u8; 65_536];
    let deadline = Instant::now() + Duration::from_secs(5);
    while seen < 4 && Instant::now() < deadline {
        let Ok(n) = raw.read(&mut buf) else { break };
        let ihl = usize::from(buf[0] & 0x0f) * 4;
        let udp = &buf[ihl..n];
        if u16::from_be_bytes([udp[2], udp[3]]) == port {
            assert_eq!(&udp[6..8], &[0, 0], "outer UDP checksum");
            seen += 1;
        }
    }
    assert_eq!(seen, 4);
}

#[test]
fn gwlb_is_geneve_with_the_three_aws_options_around_vxlan() {
    let frames = conversation(2);
    let cap = TempCapture::new("gwlb", DataLink::ETHERNET, &frames);
    let (rx, to) = receiver();
    let s = replay(&args(&[
        cap.path(),
        "--to",
        &to,
        "--encap",
        "gwlb",
        "--vni",
        "9",
        "--max",
    ]))
    .unwrap();
    clean(&s, 2);
    let mut cookies = Vec::new();
    for ((payload, _), (_, frame)) in receive(&rx, 2).iter().zip(&frames) {
        let (g, inner) = parse_geneve(payload).unwrap();
        assert_eq!(g.protocol, 0x0800);
        assert!(g.gwlb.endpoint_id.is_some() && g.gwlb.attachment_id.is_some());
        cookies.push(g.gwlb.flow_cookie.unwrap());
        let ip = SlicedPacket::from_ip(inner).unwrap();
        let Some(TransportSlice::Udp(udp)) = ip.transport else {
            panic!("no inner UDP")
        };
        assert_eq!(udp.destination_port(), 4789);
        let (vx, ether) = parse_vxlan(udp.payload()).unwrap();
        assert_eq!(vx.vni, 9);
        assert_eq!(ether, &frame[..]);
        // And the sensor's live decoder reads the datagram to the inner TCP.
        let outer = OuterAddrs {
            src: "127.0.0.1".parse().unwrap(),
            dst: "127.0.0.1".parse().unwrap(),
        };
        let mut ctx = TunnelContext::new();
        let d = Decoder::new(Default::default());
        let got = d.decode_tunnel_payload(
            UdpTunnel::Geneve,
            outer,
            payload,
            &mut ctx,
            &mut Counters::default(),
        );
        assert!(matches!(got, Decoded::Packet(p) if p.proto == 6));
        assert!(matches!(ctx.layers()[1], Encap::Vxlan { vni: 9, .. }));
    }
    assert_eq!(cookies[0], cookies[1]);
}

fn corpus() -> PathBuf {
    std::env::var_os("SENSOR_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus"))
}

/// UDP payloads to a tunnel port, read independently of the replay code.
fn tunnel_payloads(path: &Path) -> (Vec<Vec<u8>>, u64) {
    let mut out = Vec::new();
    let mut frames = 0;
    read_capture(path, &mut Counters::default(), &mut |f: RawFrame<'_>, _| {
        frames += 1;
        if let Ok(p) = SlicedPacket::from_ethernet(f.data)
            && let Some(TransportSlice::Udp(u)) = p.transport
            && [4789, 8472, 6081].contains(&u.destination_port())
        {
            out.push(u.payload().to_vec());
        }
    })
    .unwrap();
    (out, frames)
}

#[test]
fn none_resends_the_tunnel_payloads_of_an_encapsulated_capture() {
    let path = corpus().join("pcaps/OISF+suricata-verify/tests/vxlan-decoder-03/vxlan.pcap");
    if !path.exists() {
        eprintln!("skipped: {} not found (set SENSOR_CORPUS)", path.display());
        return;
    }
    let (want, frames) = tunnel_payloads(&path);
    assert!(!want.is_empty());
    let (rx, to) = receiver();
    let s = replay(&args(&[
        path.to_str().unwrap(),
        "--to",
        &to,
        "--encap",
        "none",
        "--max",
    ]))
    .unwrap();
    clean(&s, want.len() as u64);
    assert_eq!(s.frames_read, frames);
    assert_eq!(s.skipped.total(), frames - want.len() as u64);
    let got: Vec<Vec<u8>> = receive(&rx, want.len())
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    assert_eq!(got, want);
    assert_nothing_more(&rx);
}

#[test]
fn pps_limits_the_rate_and_loop_repeats() {
    let frames = conversation(10);
    let cap = TempCapture::new("pps", DataLink::ETHERNET, &frames);
    let (rx, to) = receiver();
    // 100 packets at 200 pps: 99 intervals of 5 ms.
    let t = Instant::now();
    let s = replay(&args(&[
        cap.path(),
        "--to",
        &to,
        "--pps",
        "200",
        "--loop",
        "10",
    ]))
    .unwrap();
    let took = t.elapsed();
    clean(&s, 100);
    assert!(took >= Duration::from_millis(400), "{took:?}: not limited");
    assert!(took < Duration::from_secs(5), "{took:?}: far too slow");
    assert_eq!(receive(&rx, 100).len(), 100);
}

#[test]
fn speed_follows_timestamps_and_long_gaps_are_cut() {
    let frames: Vec<_> = conversation(4)
        .into_iter()
        .enumerate()
        .map(|(i, (_, f))| (Duration::from_millis(1_000_000 + 200 * i as u64), f))
        .collect();
    let cap = TempCapture::new("speed", DataLink::ETHERNET, &frames);
    let (rx, to) = receiver();
    // 600 ms of capture at 2x: about 300 ms.
    let t = Instant::now();
    clean(
        &replay(&args(&[cap.path(), "--to", &to, "--speed", "2"])).unwrap(),
        4,
    );
    let took = t.elapsed();
    assert!(took >= Duration::from_millis(250), "{took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    receive(&rx, 4);

    // An hour between two packets is cut to --max-gap.
    let gap = vec![
        (Duration::from_secs(1_000), frames[0].1.clone()),
        (Duration::from_secs(4_600), frames[1].1.clone()),
    ];
    let cap = TempCapture::new("gap", DataLink::ETHERNET, &gap);
    let t = Instant::now();
    clean(
        &replay(&args(&[cap.path(), "--to", &to, "--max-gap", "100ms"])).unwrap(),
        2,
    );
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    receive(&rx, 2);
}

#[test]
fn non_loopback_destinations_are_refused_without_sending() {
    let cap = TempCapture::new("refuse", DataLink::ETHERNET, &conversation(2));
    // 192.0.2.0/24 is TEST-NET-1: nothing is sent there (the replay refuses
    // before it opens a socket).
    for to in ["192.0.2.1:4789", "[2001:db8::1]:4789", "0.0.0.0:4789"] {
        let err = replay(&args(&[cap.path(), "--to", to])).unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("--allow-remote"), "{msg}");
    }
    // Loopback by name and anywhere in 127/8 is fine.
    let (rx, to) = receiver();
    let port = to.rsplit(':').next().unwrap();
    let local = format!("localhost:{port}");
    clean(
        &replay(&args(&[cap.path(), "--to", &local, "--max"])).unwrap(),
        2,
    );
    receive(&rx, 2);
}

#[test]
fn the_binary_refuses_remote_exits_1_on_send_errors_and_prints_a_summary() {
    let cap = TempCapture::new("bin", DataLink::ETHERNET, &conversation(4));
    let bin = env!("CARGO_BIN_EXE_sensor");
    let out = Command::new(bin)
        .args(["replay", cap.path(), "--to", "192.0.2.1:4789"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--allow-remote"));

    // Nothing listens on `closed`: the ICMP errors make later sends fail.
    let closed = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let out = Command::new(bin)
        .args(["replay", cap.path(), "--to", &closed.to_string(), "--max"])
        .args(["--source-ports", "1", "--loop", "20", "--batch", "1"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("send_errors_by_reason: connection_refused="),
        "{stderr}"
    );
    assert!(stderr.contains("packets_sent: "), "{stderr}");

    let (rx, to) = receiver();
    let out = Command::new(bin)
        .args(["replay", cap.path(), "--to", &to, "--max"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("packets_sent: 4\n"), "{stderr}");
    assert!(stderr.contains("send_errors: 0\n"), "{stderr}");
    receive(&rx, 4);
}

#[test]
fn ipv6_loopback_works_with_its_checksum() {
    let Ok(rx) = UdpSocket::bind("[::1]:0") else {
        eprintln!("skipped: no IPv6 loopback");
        return;
    };
    rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let to = rx.local_addr().unwrap().to_string();
    let frames = conversation(2);
    let cap = TempCapture::new("v6", DataLink::ETHERNET, &frames);
    let s = replay(&args(&[cap.path(), "--to", &to, "--max"])).unwrap();
    clean(&s, 2);
    // IPv6 UDP keeps its checksum (receivers drop zero checksums).
    assert!(!s.checksum_zero);
    for ((payload, from), (_, frame)) in receive(&rx, 2).iter().zip(&frames) {
        assert!(from.is_ipv6());
        assert_eq!(&payload[8..], &frame[..]);
    }
}
