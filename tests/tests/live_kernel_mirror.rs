//! Users rely on the sensor reading real mirrored traffic correctly. Here
//! the Linux kernel plays AWS Traffic Mirroring: a client and a server
//! namespace talk HTTP over a veth pair; the client's interface is mirrored
//! both ways (tc clsact, u32 match-all, mirred) into a kernel VXLAN device
//! whose remote is the sensor in a third namespace. tshark captures the
//! client interface plainly at the same time. The sensor's record of the
//! HTTP connection must equal (times aside) what `sensor pcap` makes of
//! tshark's capture, and agree with tshark's own reading of it: 5-tuple,
//! packets and IP bytes per direction, and SF (SYN, SYN-ACK, FIN both ways).
//! Its HTTP record must equal the offline one and carry tshark's method,
//! URI, Host, User-Agent and status, and the page's length.
//!
//! Needs root, `ip`, `tc`, tshark and python3; without root or namespaces
//! it prints one "skipping" line and passes.

// Test code: a failed expectation must stop the test with its message.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::process::Command;
use std::time::Duration;

use sensor_tests::live::{LiveOptions, LiveSensor, TempDir};
use sensor_tests::netns::{
    Background, CLIENT_IP, CLIENT_UNDERLAY_IP, MirrorLab, SENSOR_IP, SERVER_IP, netns_unavailable,
};
use sensor_tests::records::{field_differences, flows_only, normalize, parse_lines};
use sensor_tests::replay::run_bounded;
use sensor_tests::sensor::run_pcap;
use sensor_tests::tshark::require_tshark;
use serde_json::{Value, json};

const VNI: u32 = 4242;
const HTTP_PORT: u16 = 8000;

#[test]
fn kernel_mirrored_http_matches_a_plain_capture() {
    if let Some(why) = netns_unavailable() {
        println!("skipping: network namespaces unavailable: {why}");
        return;
    }
    let tshark = require_tshark();
    let dir = TempDir::new("kernel-mirror");
    let site = dir.join("site");
    std::fs::create_dir_all(&site).unwrap();
    std::fs::write(site.join("index.html"), "<html>".repeat(50)).unwrap();

    let lab = MirrorLab::build(4789, VNI).unwrap_or_else(|e| panic!("building the lab: {e}"));
    let options = LiveOptions {
        rx_threads: Some(1),
        workers: Some(1),
        drain: Duration::from_millis(500),
        bind_ip: SENSOR_IP.into(),
        vxlan_port: Some(4789),
        netns: Some(lab.sensor.name.clone()),
        ..LiveOptions::default()
    };
    // Declared after the lab, so dropped (killed) before its namespaces go.
    let mut sensor = LiveSensor::start_ready(&dir, &options);
    let server_command = lab.server.command(&[
        "sh",
        "-c",
        &format!(
            "exec python3 -u -m http.server {HTTP_PORT} --bind {SERVER_IP} --directory {} 1>&2",
            site.display()
        ),
    ]);
    let _server = Background::spawn_until(
        server_command,
        "http.server",
        "Serving HTTP",
        Duration::from_secs(15),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let plain = dir.join("plain.pcap");
    let tshark_command = {
        let mut c = lab.client.command(&[]);
        c.arg(&tshark)
            .args(["-n", "-i", &lab.client_if, "-w"])
            .arg(&plain)
            .args(["-a", "duration:60"]);
        c
    };
    let mut capture = Background::spawn_until(
        tshark_command,
        "tshark",
        "Capturing on",
        Duration::from_secs(20),
    )
    .unwrap_or_else(|e| panic!("{e}"));

    let mut get = lab.client.command(&[
        "python3",
        "-c",
        &format!(
            "import urllib.request; print(len(urllib.request.urlopen('http://{SERVER_IP}:{HTTP_PORT}/index.html', timeout=5).read()))"
        ),
    ]);
    get.env_remove("http_proxy").env_remove("HTTP_PROXY");
    let got = run_bounded(get, Duration::from_secs(20));
    got.assert_success();
    assert_eq!(got.stdout.trim(), "300", "the GET returned the page");
    // The last ACK and its mirrored copy are on the wire well within this.
    std::thread::sleep(Duration::from_millis(500));
    capture
        .stop("INT", Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{e}"));
    sensor.stop(options.drain, Duration::from_secs(15));

    let live = the_http_flow(&sensor.flow_records(), "sensor run");
    let offline_run = run_pcap(&[plain.as_path()], &[]);
    assert!(
        offline_run.status.success(),
        "sensor pcap: {}",
        offline_run.stderr
    );
    let offline = the_http_flow(&flows_only(parse_lines(&offline_run.stdout)), "sensor pcap");

    // The mirror's tunnel, as the kernel built it.
    let tunnel = &live["tunnel"][0];
    assert_eq!(tunnel["type"], "vxlan", "live tunnel: {}", live["tunnel"]);
    assert_eq!(tunnel["vni"], VNI, "live tunnel: {}", live["tunnel"]);
    assert_eq!(tunnel["outer_src"], CLIENT_UNDERLAY_IP.to_string());
    assert_eq!(tunnel["outer_dst"], SENSOR_IP.to_string());

    // Live equals offline on the plain capture, times aside.
    let diff = field_differences(
        &normalize(&offline, &[json!({"type": "vxlan", "vni": VNI})]),
        &normalize(&live, &[]),
    );
    assert!(
        diff.is_empty(),
        "live vs sensor pcap of tshark's capture:\n{}",
        diff.join("\n")
    );

    // And both agree with tshark's own reading of its capture.
    let reference = TsharkConnection::read(&tshark, &plain);
    let counted = |k: &str| live[k].as_u64().unwrap_or(u64::MAX);
    assert_eq!(live["src_ip"], CLIENT_IP.to_string());
    assert_eq!(live["dst_ip"], SERVER_IP.to_string());
    assert_eq!(live["dst_port"], HTTP_PORT);
    assert_eq!(counted("src_port"), reference.client_port, "client port");
    assert_eq!(
        (counted("orig_pkts"), counted("orig_ip_bytes")),
        reference.client,
        "client → server packets, IP bytes"
    );
    assert_eq!(
        (counted("resp_pkts"), counted("resp_ip_bytes")),
        reference.server,
        "server → client packets, IP bytes"
    );
    assert!(
        reference.complete,
        "tshark did not see SYN, SYN-ACK and FIN both ways: {reference:?}"
    );
    assert_eq!(
        live["conn_state"], "SF",
        "a complete, closed connection: {live}"
    );
    println!("live record matches the plain capture: {live}");

    // The HTTP transaction: one record live, equal to the offline one (times
    // aside), with what tshark reads from the plain capture.
    let live_http = the_http_transaction(&sensor.records(), "sensor run");
    let offline_http = the_http_transaction(&parse_lines(&offline_run.stdout), "sensor pcap");
    let diff = field_differences(&normalize(&offline_http, &[]), &normalize(&live_http, &[]));
    assert!(
        diff.is_empty(),
        "live vs offline HTTP record:\n{}",
        diff.join("\n")
    );
    assert_eq!(live["service"], "http", "the flow's service: {live}");
    assert_eq!(
        live_http["uid"], live["uid"],
        "the HTTP record names its flow"
    );
    let t = TsharkHttp::read(&tshark, &plain);
    assert_eq!(live_http["method"], t.method);
    assert_eq!(live_http["uri"], t.uri);
    assert_eq!(live_http["host"], t.host);
    assert_eq!(live_http["user_agent"], t.user_agent);
    assert_eq!(live_http["status_code"], t.status_code);
    assert_eq!(live_http["response_body_len"], 300, "the page's 300 bytes");
    assert_eq!(live_http["request_body_len"], 0);
    println!("live HTTP record matches tshark: {live_http}");
}

/// The one HTTP record of the client's connection.
fn the_http_transaction(records: &[Value], source: &str) -> Value {
    let ours: Vec<&Value> = records
        .iter()
        .filter(|r| r["type"] == "http" && r["dst_port"] == HTTP_PORT)
        .collect();
    assert_eq!(
        ours.len(),
        1,
        "{source}: expected one HTTP record, got {}:\n{}",
        ours.len(),
        records
            .iter()
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    );
    ours[0].clone()
}

/// tshark's reading of the HTTP request and response.
#[derive(Debug)]
struct TsharkHttp {
    method: String,
    uri: String,
    host: String,
    user_agent: String,
    status_code: u64,
}

impl TsharkHttp {
    fn read(tshark: &std::path::Path, file: &std::path::Path) -> Self {
        let output = Command::new(tshark)
            .args(["-n", "-r"])
            .arg(file)
            .args(["-Y", "http", "-T", "fields", "-E", "separator=|"])
            .args([
                "-e",
                "http.request.method",
                "-e",
                "http.request.uri",
                "-e",
                "http.host",
                "-e",
                "http.user_agent",
                "-e",
                "http.response.code",
            ])
            .output()
            .expect("run tshark");
        assert!(
            output.status.success(),
            "tshark: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split('|').collect()).collect();
        let request = rows
            .iter()
            .find(|r| r.first().is_some_and(|m| !m.is_empty()))
            .unwrap_or_else(|| panic!("tshark saw no HTTP request:\n{text}"));
        let response = rows
            .iter()
            .find(|r| r.get(4).is_some_and(|c| !c.is_empty()))
            .unwrap_or_else(|| panic!("tshark saw no HTTP response:\n{text}"));
        Self {
            method: request[0].to_owned(),
            uri: request[1].to_owned(),
            host: request[2].to_owned(),
            user_agent: request[3].to_owned(),
            status_code: response[4].parse().expect("http.response.code"),
        }
    }
}

/// The one record of the client's connection to the HTTP server.
fn the_http_flow(records: &[Value], source: &str) -> Value {
    let ours: Vec<&Value> = records
        .iter()
        .filter(|r| {
            r["proto"] == "tcp"
                && r["dst_port"] == HTTP_PORT
                && r["src_ip"] == CLIENT_IP.to_string()
        })
        .collect();
    assert_eq!(
        ours.len(),
        1,
        "{source}: expected one record of the HTTP connection, got {}:\n{}",
        ours.len(),
        records
            .iter()
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    );
    ours[0].clone()
}

/// tshark's reading of the HTTP connection in the plain capture.
#[derive(Debug)]
struct TsharkConnection {
    client_port: u64,
    /// (packets, sum of IP total lengths) client → server.
    client: (u64, u64),
    /// Same, server → client.
    server: (u64, u64),
    /// SYN from the client, SYN-ACK from the server, FIN both ways, no RST.
    complete: bool,
}

impl TsharkConnection {
    fn read(tshark: &std::path::Path, file: &std::path::Path) -> Self {
        let output = Command::new(tshark)
            .args(["-n", "-r"])
            .arg(file)
            .args(["-Y", &format!("tcp.port == {HTTP_PORT}"), "-T", "fields"])
            .args([
                "-e",
                "ip.src",
                "-e",
                "tcp.srcport",
                "-e",
                "ip.len",
                "-e",
                "tcp.flags",
            ])
            .output()
            .expect("run tshark");
        assert!(
            output.status.success(),
            "tshark: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let mut c = Self {
            client_port: 0,
            client: (0, 0),
            server: (0, 0),
            complete: false,
        };
        let (mut syn, mut syn_ack, mut fin_c, mut fin_s, mut rst) =
            (false, false, false, false, false);
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            let f: Vec<&str> = line.split('\t').collect();
            let [src, sport, len, flags] = f[..] else {
                continue;
            };
            let len: u64 = len.parse().expect("ip.len");
            let flags = u16::from_str_radix(flags.trim_start_matches("0x"), 16).expect("tcp.flags");
            let (fin, syn_bit, rst_bit, ack) = (
                flags & 1 != 0,
                flags & 2 != 0,
                flags & 4 != 0,
                flags & 16 != 0,
            );
            rst |= rst_bit;
            if src == CLIENT_IP.to_string() {
                c.client_port = sport.parse().expect("tcp.srcport");
                c.client.0 += 1;
                c.client.1 += len;
                syn |= syn_bit && !ack;
                fin_c |= fin;
            } else {
                c.server.0 += 1;
                c.server.1 += len;
                syn_ack |= syn_bit && ack;
                fin_s |= fin;
            }
        }
        c.complete = syn && syn_ack && fin_c && fin_s && !rst;
        c
    }
}
