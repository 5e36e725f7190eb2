//! TCP reassembly gives the streams Suricata's own tests expect: the
//! suricata-verify overlap and gap captures, decoded and reassembled one
//! direction at a time, deliver the bytes whose alert payloads those tests
//! check (`payload_printable`, where Suricata writes a gap as
//! `[N bytes missing]`).
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sensor::capture::read_capture;
use sensor::config::PipelineConfig;
use sensor::decap::{Transport, tcp_flags};
use sensor::flow::reassembly::{Budget, Chunk, Segment, Stats, Stream, StreamLimits};
use sensor::metrics::Counters;
use sensor::runtime::Frontend;

fn corpus() -> Option<PathBuf> {
    let dir = std::env::var_os("SENSOR_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus"));
    if dir.join("MANIFEST.tsv").exists() {
        Some(dir)
    } else {
        println!("skipping: corpus not found at {}", dir.display());
        None
    }
}

/// One direction, "src:port>dst:port", with what it delivered and counted.
#[derive(Default)]
struct Dir {
    stream: Stream,
    text: String,
    stats: Stats,
}

/// Reassembles every TCP direction of a capture (decapsulated and
/// defragmented as the sensor does) and flushes it at the end, as the flow
/// table does at flow timeout. Gaps are written the way Suricata prints
/// them in `payload_printable`. Asserts that every stream stays within
/// `limits`, and all of them within `budget`, at every step, and that the
/// budget is back to 0 at the end.
fn reassemble_within(path: &Path, limits: StreamLimits, budget: usize) -> BTreeMap<String, Dir> {
    let mut frontend = Frontend::new(&PipelineConfig::default());
    let mut budget = Budget::new(budget);
    let mut dirs: BTreeMap<String, Dir> = BTreeMap::new();
    read_capture(path, &mut Counters::default(), &mut |frame, _| {
        frontend.ingest(&frame, |p, _, _| {
            let Transport::Tcp {
                src_port,
                dst_port,
                seq,
                flags,
                payload,
                payload_len,
                ..
            } = p.transport
            else {
                return;
            };
            let key = format!("{}:{src_port}>{}:{dst_port}", p.src, p.dst);
            let d = dirs.entry(key).or_default();
            let seg = Segment {
                seq,
                syn: flags & tcp_flags::SYN != 0,
                fin: flags & tcp_flags::FIN != 0,
                rst: flags & tcp_flags::RST != 0,
                payload,
                claimed_len: payload_len,
            };
            let text = &mut d.text;
            d.stream
                .segment(&seg, &limits, &mut budget, &mut d.stats, &mut |c| {
                    push(text, c);
                    true
                });
            assert!(d.stream.held_bytes() <= limits.max_bytes);
            assert!(d.stream.held_segments() <= limits.max_segments);
            assert!(budget.used <= budget.cap);
        });
    })
    .expect("reading the capture");
    for d in dirs.values_mut() {
        let text = &mut d.text;
        d.stream.flush(&mut budget, &mut d.stats, &mut |c| {
            push(text, c);
            true
        });
        d.stream.stop(&mut budget);
    }
    assert_eq!(budget.used, 0, "budget left in use");
    dirs
}

/// [`reassemble_within`] the default caps.
fn reassemble(path: &Path) -> BTreeMap<String, Dir> {
    let limits = StreamLimits {
        max_bytes: 256 * 1024,
        max_segments: 512,
    };
    reassemble_within(path, limits, 128 << 20)
}

fn push(text: &mut String, c: Chunk<'_>) {
    match c {
        Chunk::Data(d) => text.push_str(&String::from_utf8_lossy(d)),
        Chunk::Gap(n) => text.push_str(&format!("[{n} bytes missing]")),
    }
}

const CLIENT: &str = "1.1.1.1:12345>2.2.2.2:8080";
const SERVER: &str = "2.2.2.2:8080>1.1.1.1:12345";

/// One suricata-verify test: its capture, and the stream each direction
/// must deliver. `checked` is a `payload_printable` value that the test's
/// `test.yaml` checks (so the expectation here stays tied to it).
struct Case {
    test: &'static str,
    pcap: &'static str,
    client: &'static str,
    server: &'static str,
    checked: Option<&'static str>,
    overlap_differing: u64,
}

const CASES: &[Case] = &[
    // "GOOD" then "EVIL" at the same sequence number, both in order: the
    // first copy is delivered. Suricata alerts on GOOD in the stream.
    Case {
        test: "eve-overlap-payload-01",
        pcap: "tcp-overlap.pcap",
        client: "GOOD",
        server: "",
        checked: Some("GOOD"),
        // Already delivered when "EVIL" arrives: not kept, not compared.
        overlap_differing: 0,
    },
    // "GOOD", then "XXX" over its last three bytes.
    Case {
        test: "eve-overlap-payload-04-partial-overlap",
        pcap: "tcp-overlap2.pcap",
        client: "GOOD",
        server: "",
        checked: Some("GOOD"),
        overlap_differing: 0,
    },
    // "VERY", four bytes never seen, "DATA": held until the flow ends,
    // then delivered after a gap.
    Case {
        test: "eve-overlap-payload-05-gap",
        pcap: "tcp-simple-gap2.pcap",
        client: "VERY[4 bytes missing]DATA",
        server: "",
        checked: Some("VERY[4 bytes missing]DATA"),
        overlap_differing: 0,
    },
    // The server sends "Please ", loses four bytes, sends "Me " and "In!";
    // the client resets with "Access Denied" on the RST.
    Case {
        test: "tcp-rst-unacked-stream-03-gap",
        pcap: "input.pcap",
        client: "Access Denied",
        server: "Please [4 bytes missing]Me In!",
        checked: None,
        overlap_differing: 0,
    },
];

#[test]
fn suricata_verify_overlap_and_gap_streams() {
    let Some(corpus) = corpus() else { return };
    for case in CASES {
        let rel = format!("OISF+suricata-verify/tests/{}", case.test);
        let pcap = corpus.join("pcaps").join(&rel).join(case.pcap);
        if let Some(checked) = case.checked {
            let yaml =
                std::fs::read_to_string(corpus.join("expected").join(&rel).join("test.yaml"))
                    .expect("reading test.yaml");
            assert!(
                yaml.contains(&format!("payload_printable: \"{checked}\"")),
                "{}: test.yaml no longer checks {checked:?}",
                case.test
            );
        }
        let dirs = reassemble(&pcap);
        let text = |k: &str| dirs.get(k).map_or("", |d| d.text.as_str());
        assert_eq!(text(CLIENT), case.client, "{}: client stream", case.test);
        assert_eq!(text(SERVER), case.server, "{}: server stream", case.test);
        let differing: u64 = dirs.values().map(|d| d.stats.overlap_differing).sum();
        assert_eq!(differing, case.overlap_differing, "{}", case.test);
    }
}

/// Zeek's `core/tcp/miss-end-data` test: the server's whole response (2902
/// bytes before its FIN) was not captured; Zeek reports it as one
/// `content_gap` of 2902 bytes at the stream's start. The stream delivers
/// that gap at the end of the flow.
#[test]
fn zeek_missing_end_data_is_one_gap() {
    let Some(corpus) = corpus() else { return };
    let out = std::fs::read_to_string(
        corpus.join("expected/zeek+zeek/testing/btest/Baseline/core.tcp.miss-end-data/out"),
    )
    .expect("reading the baseline");
    assert!(
        out.contains("resp_p=80/tcp, proto=6, ctx=[]], F, 1, 2902"),
        "{out}"
    );
    let dirs =
        reassemble(&corpus.join("pcaps/zeek+zeek/testing/btest/Traces/tcp/miss_end_data.pcap"));
    let client = &dirs["192.168.122.230:60648>77.238.160.184:80"];
    let server = &dirs["77.238.160.184:80>192.168.122.230:60648"];
    assert_eq!(server.text, "[2902 bytes missing]");
    assert_eq!(server.stats.gap_bytes, 2902);
    assert_eq!(client.text.len(), 538);
    assert!(
        client.text.starts_with("GET /6215/buddyicons/"),
        "{}",
        client.text
    );
    assert_eq!(client.stats.gap_bytes, 0);
}

/// Every TCP connection of the corpus's TCP captures, reassembled under
/// small caps and a small shared budget: the caps hold at every step, and
/// nothing is left held at the end.
#[test]
fn corpus_tcp_streams_keep_the_caps() {
    let Some(corpus) = corpus() else { return };
    let manifest = std::fs::read_to_string(corpus.join("MANIFEST.tsv")).expect("manifest");
    let small = StreamLimits {
        max_bytes: 4096,
        max_segments: 16,
    };
    let mut files = 0;
    let mut cap_hits = 0;
    for line in manifest.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        if cols.len() < 5 || !["tcp-reasm", "http", "ssh", "smb"].contains(&cols[0]) {
            continue;
        }
        let path = corpus.join("pcaps").join(cols[3]).join(cols[4]);
        let dirs = reassemble_within(&path, small, 16 * 1024);
        cap_hits += dirs
            .values()
            .map(|d| d.stats.stream_cap_hits + d.stats.budget_cap_hits)
            .sum::<u64>();
        files += 1;
    }
    assert!(files > 100, "{files} captures");
    // The small caps are really reached somewhere.
    assert!(cap_hits > 0);
}
