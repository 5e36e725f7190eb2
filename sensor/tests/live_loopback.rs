//! The live data path over loopback: corpus captures' tunnel payloads sent
//! to `LiveSensor` sockets give the records `sensor pcap` gives for the same
//! files (times and outer addresses aside); shutdown loses no flow; a quiet
//! network still ends flows; bind errors name the address.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use sensor::capture::read_capture;
use sensor::config::{PipelineConfig, SensorConfig};
use sensor::decap::UdpTunnel;
use sensor::metrics::{Anomaly, Counters, LiveStats, ThreadRole};
use sensor::record::JsonLinesSink;
use sensor::runtime::live::LiveSensor;
use sensor::runtime::offline::run_files;
use serde_json::Value;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The corpus captures: `$SENSOR_CORPUS/pcaps`, default
/// `../shared/corpus/pcaps` beside the project; `None` (the test skips with
/// a message) when absent.
fn corpus_pcaps() -> Option<PathBuf> {
    let dir = std::env::var_os("SENSOR_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus"));
    if dir.join("MANIFEST.tsv").exists() {
        Some(dir.join("pcaps"))
    } else {
        println!("skipping: corpus not found at {}", dir.display());
        None
    }
}

fn temp_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sensor-live-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn config(output: &Path, rx_threads: usize, workers: usize) -> SensorConfig {
    let mut cfg = SensorConfig::default();
    cfg.live.listen_vxlan = vec!["127.0.0.1:0".parse().unwrap()];
    cfg.live.listen_geneve = vec!["127.0.0.1:0".parse().unwrap()];
    cfg.live.rx_threads = rx_threads;
    cfg.live.workers = workers;
    cfg.live.rcvbuf_bytes = 4 << 20;
    cfg.output.json = output.to_string_lossy().into_owned();
    cfg
}

fn addr_of(s: &LiveSensor, tunnel: UdpTunnel) -> SocketAddr {
    s.bound_addrs()
        .iter()
        .find(|(t, _)| *t == tunnel)
        .map(|(_, a)| *a)
        .unwrap()
}

/// Sum of what the threads of one role published.
fn totals(stats: &LiveStats, role: ThreadRole) -> Counters {
    let mut c = Counters::default();
    for t in stats
        .threads
        .lock()
        .unwrap()
        .iter()
        .filter(|t| t.role == role)
    {
        c.merge(&t.snapshot.lock().unwrap().counters);
    }
    c
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The UDP payloads of a capture's tunnel packets, with their tunnel.
fn tunnel_payloads(path: &Path) -> Vec<(UdpTunnel, Vec<u8>)> {
    let mut out = Vec::new();
    let mut other = 0;
    let mut counters = Counters::default();
    read_capture(path, &mut counters, &mut |frame, _| {
        let sliced = etherparse::SlicedPacket::from_ethernet(frame.data).unwrap();
        match sliced.transport {
            Some(etherparse::TransportSlice::Udp(u)) => {
                let tunnel = match u.destination_port() {
                    4789 => UdpTunnel::Vxlan,
                    6081 => UdpTunnel::Geneve,
                    _ => {
                        other += 1;
                        return;
                    }
                };
                out.push((tunnel, u.payload().to_vec()));
            }
            _ => other += 1,
        }
    })
    .unwrap();
    assert_eq!(
        other,
        0,
        "{} has packets that are not tunnelled",
        path.display()
    );
    out
}

/// Sends every datagram, pausing now and then so a small socket buffer
/// keeps up.
fn send_all(datagrams: &[(UdpTunnel, Vec<u8>)], vxlan: SocketAddr, geneve: SocketAddr) {
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    for (i, (tunnel, payload)) in datagrams.iter().enumerate() {
        let to = match tunnel {
            UdpTunnel::Vxlan => vxlan,
            UdpTunnel::Geneve => geneve,
        };
        tx.send_to(payload, to).unwrap();
        if i % 32 == 31 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

/// Records as JSON values without what differs by design between a file
/// and a socket: times, the uid (derived from the start time) and the
/// outer tunnel addresses.
fn comparable(text: &str) -> Vec<String> {
    let mut v: Vec<String> = text
        .lines()
        .map(|l| {
            let mut r: Value = serde_json::from_str(l).unwrap();
            let o = r.as_object_mut().unwrap();
            for k in ["ts", "end_ts", "duration", "uid", "rtt"] {
                o.remove(k);
            }
            // Application records have no tunnel list.
            if let Some(Value::Array(layers)) = o.get_mut("tunnel") {
                for layer in layers {
                    let l = layer.as_object_mut().unwrap();
                    l.remove("outer_src");
                    l.remove("outer_dst");
                }
            }
            r.to_string()
        })
        .collect();
    v.sort();
    v
}

fn offline_records(files: &[PathBuf]) -> Vec<String> {
    let mut buf = Vec::new();
    {
        let mut sink = JsonLinesSink::new(&mut buf);
        run_files(files, &PipelineConfig::default(), 1, &mut sink).unwrap();
    }
    comparable(std::str::from_utf8(&buf).unwrap())
}

fn live_equals_offline(file: &str, rx_threads: usize, workers: usize) {
    let Some(corpus) = corpus_pcaps() else { return };
    let path = corpus.join(file);
    let datagrams = tunnel_payloads(&path);
    let out = temp_path(&format!(
        "{}-{rx_threads}-{workers}.json",
        file.replace('/', "_")
    ));
    let _ = std::fs::remove_file(&out);
    let mut cfg = config(&out, rx_threads, workers);
    // Some captures were taken on hosts with segmentation offload (frames
    // up to 64 KiB): hold them whole, as a file does.
    cfg.live.buffer_bytes = 65_536;
    let sensor = LiveSensor::start(&cfg).unwrap();
    let stats = sensor.stats();
    send_all(
        &datagrams,
        addr_of(&sensor, UdpTunnel::Vxlan),
        addr_of(&sensor, UdpTunnel::Geneve),
    );
    wait_for("every datagram", || {
        totals(&stats, ThreadRole::Receiver).packets == datagrams.len() as u64
    });
    sensor.shutdown().unwrap();
    let rx = totals(&stats, ThreadRole::Receiver);
    assert_eq!(rx.total_drops(), 0, "{}", rx.drop_summary());
    let live = comparable(&std::fs::read_to_string(&out).unwrap());
    let offline = offline_records(&[path]);
    assert!(!offline.is_empty());
    assert_eq!(live, offline, "{file}");
    let workers_total = totals(&stats, ThreadRole::Worker);
    assert_eq!(workers_total.records, offline.len() as u64);
}

#[test]
fn live_records_equal_offline_records_for_corpus_captures() {
    for file in [
        "OISF+suricata-verify/tests/vxlan-decoder-03/vxlan.pcap",
        "zeek+zeek/testing/btest/Traces/tunnels/vxlan-encapsulated-http.pcap",
        "zeek+zeek/testing/btest/Traces/tunnels/vxlan-triple-v2.pcap",
        "zeek+zeek/testing/btest/Traces/tunnels/geneve-many-options.pcap",
        "zeek+zeek/testing/btest/Traces/tunnels/geneve-47101.pcap",
    ] {
        live_equals_offline(file, 1, 1);
    }
}

#[test]
fn several_receivers_and_workers_give_the_same_records() {
    live_equals_offline(
        "OISF+suricata-verify/tests/vxlan-decoder-03/vxlan.pcap",
        2,
        3,
    );
}

#[test]
fn datagrams_longer_than_the_buffer_are_decoded_as_far_as_they_go() {
    let Some(corpus) = corpus_pcaps() else { return };
    let path = corpus.join("zeek+zeek/testing/btest/Traces/tunnels/geneve-47101.pcap");
    let datagrams = tunnel_payloads(&path);
    let longest = datagrams.iter().map(|(_, p)| p.len()).max().unwrap();
    let out = temp_path("truncated.json");
    let _ = std::fs::remove_file(&out);
    let cfg = config(&out, 1, 1);
    assert!(longest > cfg.live.buffer_bytes);
    let sensor = LiveSensor::start(&cfg).unwrap();
    let stats = sensor.stats();
    let (vxlan, geneve) = (
        addr_of(&sensor, UdpTunnel::Vxlan),
        addr_of(&sensor, UdpTunnel::Geneve),
    );
    send_all(&datagrams, vxlan, geneve);
    wait_for("every datagram", || {
        totals(&stats, ThreadRole::Receiver).packets == datagrams.len() as u64
    });
    sensor.shutdown().unwrap();
    let rx = totals(&stats, ThreadRole::Receiver);
    let cut = datagrams
        .iter()
        .filter(|(_, p)| p.len() > cfg.live.buffer_bytes)
        .count();
    assert_eq!(
        rx.anomalies[Anomaly::DatagramTruncated as usize],
        cut as u64
    );
    assert!(totals(&stats, ThreadRole::Worker).truncated_bytes > 0);
    assert_eq!(
        rx.bytes,
        datagrams.iter().map(|(_, p)| p.len() as u64).sum::<u64>()
    );
    // The flow is still one flow with every packet.
    let text = std::fs::read_to_string(&out).unwrap();
    let records: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r["type"] == "flow")
        .collect();
    assert_eq!(records.len(), 1);
    assert_eq!(
        records[0]["orig_pkts"].as_u64().unwrap() + records[0]["resp_pkts"].as_u64().unwrap(),
        24
    );
    assert!(records[0]["truncated_bytes"].as_u64().unwrap() > 0);
}

/// A VXLAN payload (VNI 7) carrying a UDP packet between two inner hosts.
fn vxlan_udp(src_port: u16, reply: bool) -> Vec<u8> {
    let (a, b) = ([10, 1, 0, 1], [10, 1, 0, 2]);
    let builder = etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
    let builder = if reply {
        builder.ipv4(b, a, 64).udp(5353, src_port)
    } else {
        builder.ipv4(a, b, 64).udp(src_port, 5353)
    };
    let mut out = vec![0x08, 0, 0, 0, 0, 0, 7, 0];
    builder.write(&mut out, b"hello").unwrap();
    out
}

#[test]
fn shutdown_writes_a_record_for_every_flow_seen() {
    let out = temp_path("shutdown.json");
    let _ = std::fs::remove_file(&out);
    let sensor = LiveSensor::start(&config(&out, 2, 3)).unwrap();
    let stats = sensor.stats();
    let vxlan = addr_of(&sensor, UdpTunnel::Vxlan);
    let flows = 300u16;
    let mut datagrams = Vec::new();
    for i in 0..flows {
        datagrams.push((UdpTunnel::Vxlan, vxlan_udp(20_000 + i, false)));
        datagrams.push((UdpTunnel::Vxlan, vxlan_udp(20_000 + i, true)));
    }
    // Two senders, so SO_REUSEPORT spreads them over both receive sockets
    // (and the two directions of some flows arrive on different sockets).
    let (first, second) = datagrams.split_at(datagrams.len() / 2);
    send_all(first, vxlan, vxlan);
    send_all(second, vxlan, vxlan);
    // No waiting: what the sockets hold when shutdown starts is still read.
    sensor.shutdown().unwrap();
    let rx = totals(&stats, ThreadRole::Receiver);
    assert_eq!(rx.total_drops(), 0, "{}", rx.drop_summary());
    assert_eq!(rx.packets, datagrams.len() as u64);
    let text = std::fs::read_to_string(&out).unwrap();
    let records: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), usize::from(flows));
    for r in &records {
        assert_eq!(r["orig_pkts"], 1);
        assert_eq!(r["resp_pkts"], 1, "{r}");
    }
    let w = totals(&stats, ThreadRole::Worker);
    assert_eq!(
        (w.flows_created, w.records),
        (u64::from(flows), u64::from(flows))
    );
    assert!(stats.draining.load(std::sync::atomic::Ordering::Relaxed));
}

#[test]
fn a_quiet_network_still_ends_flows() {
    let out = temp_path("quiet.json");
    let _ = std::fs::remove_file(&out);
    let mut cfg = config(&out, 1, 1);
    cfg.pipeline.flows.udp_timeout = Duration::from_millis(300);
    cfg.pipeline.flows.sweep_interval = Duration::from_millis(100);
    let sensor = LiveSensor::start(&cfg).unwrap();
    let stats = sensor.stats();
    assert!(
        stats
            .sockets_bound
            .load(std::sync::atomic::Ordering::Relaxed)
    );
    let vxlan = addr_of(&sensor, UdpTunnel::Vxlan);
    send_all(
        &[(UdpTunnel::Vxlan, vxlan_udp(40_000, false))],
        vxlan,
        vxlan,
    );
    // The record is written (and flushed) with no further packet and no
    // shutdown.
    wait_for("the record of the idle flow", || {
        std::fs::read_to_string(&out).is_ok_and(|t| t.lines().count() == 1)
    });
    let w = totals(&stats, ThreadRole::Worker);
    assert_eq!(w.records, 1);
    sensor.shutdown().unwrap();
    assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 1);
}

#[test]
fn binding_a_taken_address_fails_naming_it() {
    let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let mut cfg = config(&temp_path("taken.json"), 1, 1);
    cfg.live.listen_vxlan = vec![addr];
    let err = LiveSensor::start(&cfg).err().expect("bind must fail");
    let msg = format!("{err:#}");
    assert!(msg.contains(&addr.to_string()), "{msg}");
    assert!(msg.contains("vxlan"), "{msg}");
}

#[test]
fn threads_register_and_publish() {
    let out = temp_path("threads.json");
    let sensor = LiveSensor::start(&config(&out, 2, 2)).unwrap();
    let stats = sensor.stats();
    let names: Vec<String> = stats
        .threads
        .lock()
        .unwrap()
        .iter()
        .map(|t| t.name.clone())
        .collect();
    for n in [
        "output",
        "worker-0",
        "worker-1",
        "rx-vxlan-0",
        "rx-vxlan-1",
        "rx-geneve-0",
        "rx-geneve-1",
    ] {
        assert!(names.iter().any(|x| x == n), "{n} missing from {names:?}");
    }
    assert!(
        stats
            .rcvbuf_bytes
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0
    );
    let vxlan = addr_of(&sensor, UdpTunnel::Vxlan);
    send_all(&[(UdpTunnel::Vxlan, vxlan_udp(1, false))], vxlan, vxlan);
    // Only one receiver and one worker see the packet.
    let seen = |prefix: &str| {
        stats.threads.lock().unwrap().iter().any(|t| {
            t.name.starts_with(prefix) && !t.snapshot.lock().unwrap().batch_size.is_empty()
        })
    };
    wait_for("batch histograms", || seen("rx-vxlan") && seen("worker"));
    let before = stats.threads.lock().unwrap()[0]
        .snapshot
        .lock()
        .unwrap()
        .heartbeat;
    // Idle threads keep publishing heartbeats.
    wait_for("a newer heartbeat", || {
        stats.threads.lock().unwrap()[0]
            .snapshot
            .lock()
            .unwrap()
            .heartbeat
            > before
    });
    sensor.shutdown().unwrap();
}
