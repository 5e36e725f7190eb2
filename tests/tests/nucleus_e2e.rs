//! Users rely on the export to the Nucleus delivering every record once,
//! whatever happens to the receiver or the sensor: the real `sensor` and
//! `nucleus` binaries, over TLS on loopback, with certificates made by
//! `scripts/nucleus-dev-certs` (the script the README gives).
//!
//! 1. `sensor pcap --nucleus` delivers exactly (byte for byte, per record
//!    type, as multisets) the records `sensor pcap --json` writes for the
//!    same captures, and a replay through `sensor run --nucleus` delivers
//!    the same records, times aside.
//! 2. The receiver stopped (SIGTERM) for 30 seconds in the middle of a
//!    replay into `sensor run --spool` and started again: nothing lost,
//!    nothing written twice.
//! 3. `sensor run --spool` killed (SIGKILL) with batches spooled while the
//!    receiver was away: `nucleus dump` lists them, and after a restart
//!    every one arrives, none twice.
//! 4. A spool segment damaged on disk: detected, counted, skipped; the good
//!    spooled records and new ones still arrive.
//! 5. A receiver certificate from an unknown CA, and a sensor without the
//!    client certificate a receiver requires, are refused with log lines
//!    naming the cause on both sides; the right certificate is accepted.
//!
//! The corpus tests skip with one line when the corpus is absent; 4 and 5
//! use the bundled AWS capture and always run.

// Test code: a failed expectation must stop the test with its message.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sensor_tests::corpus::corpus_or_skip;
use sensor_tests::jsonl::{all_lines, lines_by_type, minus, multiset_differences, repeated};
use sensor_tests::live::{LiveOptions, LiveSensor, TempDir, free_tcp_port};
use sensor_tests::nucleus::{
    DevCerts, Receiver, ReceiverOptions, dump, dump_run, output_records, sensor_command,
    spool_segments, stats_value, wait_until,
};
use sensor_tests::packets::{pcap_bytes, small_connection, vxlan_tcp};
use sensor_tests::records::{differences, normalize, parse_lines};
use sensor_tests::replay::replay;
use sensor_tests::sensor::run_pcap;
use sensor_tests::workspace_root;
use serde_json::{Value, json};

/// Small plain (Ethernet) corpus captures that give every record type the
/// wire carries: flows (TCP, UDP), DNS over UDP and TCP, HTTP, TLS, QUIC
/// and SSH. Short, with no pause near a flow timeout, no frame over 9216
/// bytes, so a replay gives the offline records (see live_equals_offline).
const CAPTURES: &[&str] = &[
    "zeek+zeek/testing/btest/Traces/http/get.pcap",
    "OISF+suricata-verify/tests/dns/dns-tcp-multirequest-buffer/dns-tcp-multirequest-buffer.pcap",
    "zeek+zeek/testing/btest/Traces/dns/mdns.pcap",
    "zeek+zeek/testing/btest/Traces/tls/ecdhe.pcap",
    "zeek+zeek/testing/btest/Traces/quic/chromium-115.0.5790.110-api-cirrus-com.pcap",
    "OISF+suricata-verify/tests/ssh-hassh-only/input.pcap",
];

/// The record types the captures must give (else the test proves less).
const TYPES: &[&str] = &["flow", "dns", "http", "tls", "quic", "ssh"];

/// The bundled capture (VXLAN from an AWS-style mirror), always present.
fn bundled_capture() -> PathBuf {
    workspace_root().join("pcaps/aws-mirror/vxlan.pcap")
}

/// The corpus captures, or `None` (after one "skipping" line).
fn corpus_captures() -> Option<Vec<PathBuf>> {
    let corpus = corpus_or_skip()?;
    Some(
        CAPTURES
            .iter()
            .map(|p| corpus.root.join("pcaps").join(p))
            .collect(),
    )
}

/// Settings that keep the tests quick: batches sealed within 200 ms, small
/// batches (many of them, so resends and skips have something to work on),
/// reconnection at least every second.
fn quick_env(batch_records: &str) -> Vec<(&'static str, String)> {
    vec![
        ("SENSOR_NUCLEUS_BATCH_AGE", "200ms".to_owned()),
        ("SENSOR_NUCLEUS_BATCH_RECORDS", batch_records.to_owned()),
        ("SENSOR_NUCLEUS_RECONNECT_MAX", "1s".to_owned()),
        ("SENSOR_NUCLEUS_DRAIN_TIMEOUT", "20s".to_owned()),
        ("SENSOR_NUCLEUS_ACK_TIMEOUT", "10s".to_owned()),
    ]
}

fn env_refs<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// `--nucleus ADDR --nucleus-ca CA`.
fn export_flags(to: SocketAddr, ca: &Path) -> Vec<String> {
    vec![
        "--nucleus".into(),
        to.to_string(),
        "--nucleus-ca".into(),
        ca.display().to_string(),
    ]
}

fn loopback_any_port() -> SocketAddr {
    (Ipv4Addr::LOCALHOST, 0).into()
}

fn start_receiver(dir: &TempDir, certs: &DevCerts, name: &str, listen: SocketAddr) -> Receiver {
    let options = ReceiverOptions {
        certs: certs.clone(),
        client_ca: None,
        out: dir.join(name),
        listen,
    };
    Receiver::start(&options, &dir.join(&format!("{name}.stderr")))
}

/// `sensor pcap FILES --json -`, grouped by record type.
fn offline_records(files: &[PathBuf]) -> BTreeMap<String, Vec<String>> {
    let paths: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let run = run_pcap(&paths, &[]);
    assert!(run.status.success(), "sensor pcap --json: {}", run.stderr);
    lines_by_type(&run.stdout)
}

/// What a live run of `file` replayed with `--encap vxlan --vni VNI` must
/// give, normalised: the offline records without their times, flows with
/// the replay's VXLAN layer in front.
fn expected_live(file: &Path, vni: u32) -> Vec<Value> {
    let run = run_pcap(&[file], &[]);
    assert!(
        run.status.success(),
        "sensor pcap {}: {}",
        file.display(),
        run.stderr
    );
    parse_lines(&run.stdout)
        .iter()
        .map(|r| normalize(r, &[json!({"type": "vxlan", "vni": vni})]))
        .collect()
}

/// Records as received, normalised like [`expected_live`].
fn normalized(by_type: &BTreeMap<String, Vec<String>>) -> Vec<Value> {
    parse_lines(&all_lines(by_type).join("\n"))
        .iter()
        .map(|r| normalize(r, &[]))
        .collect()
}

/// Replays `files` (each wrapped in VXLAN with its VNI from `first_vni`)
/// into `sensor` at `pps` packets per second.
fn replay_wrapped(files: &[PathBuf], to: SocketAddr, first_vni: u32, pps: u32) {
    for (i, file) in files.iter().enumerate() {
        let vni = (first_vni + i as u32).to_string();
        let pps = pps.to_string();
        let args = ["--encap", "vxlan", "--vni", &vni, "--pps", &pps];
        replay(&[file.as_path()], to, &args, Duration::from_secs(120)).assert_success();
    }
}

/// The normalised live expectation of `files` replayed by [`replay_wrapped`].
fn expected_wrapped(files: &[PathBuf], first_vni: u32) -> Vec<Value> {
    files
        .iter()
        .enumerate()
        .flat_map(|(i, f)| expected_live(f, first_vni + i as u32))
        .collect()
}

fn assert_same_records(expected: &[Value], actual: &[Value], what: &str) {
    let diff = differences(expected, actual);
    assert!(
        diff.is_empty(),
        "{what}: {} received vs {} expected; {} differences:\n{}",
        actual.len(),
        expected.len(),
        diff.len(),
        diff.iter().take(40).cloned().collect::<Vec<_>>().join("\n")
    );
}

fn assert_no_repeats(by_type: &BTreeMap<String, Vec<String>>, what: &str) {
    let twice = repeated(&all_lines(by_type));
    assert!(
        twice.is_empty(),
        "{what}: {} records written more than once:\n{}",
        twice.len(),
        twice
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

fn metric(sensor: &LiveSensor, name: &str) -> f64 {
    sensor.metrics().sum(name, &[])
}

/// A live sensor exporting to `to`, spooling in `spool` when given.
fn live_exporting(
    dir: &TempDir,
    certs: &DevCerts,
    to: SocketAddr,
    spool: Option<&Path>,
    env: &[(&'static str, String)],
) -> LiveSensor {
    let mut extra_args = export_flags(to, &certs.ca());
    if let Some(spool) = spool {
        extra_args.extend(["--spool".into(), spool.display().to_string()]);
    }
    let options = LiveOptions {
        rx_threads: Some(1),
        workers: Some(2),
        drain: Duration::from_millis(500),
        extra_args,
        env: env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect(),
        ..LiveOptions::default()
    };
    LiveSensor::start_ready(dir, &options)
}

#[test]
fn pcap_and_live_export_deliver_the_json_records() {
    let Some(files) = corpus_captures() else {
        return;
    };
    let dir = TempDir::new("nucleus-equal");
    let certs = DevCerts::make(&dir.join("certs"), "127.0.0.1");
    let expected = offline_records(&files);
    for kind in TYPES {
        assert!(
            expected.contains_key(*kind),
            "the captures gave no {kind} record offline"
        );
    }

    // Offline: the same files, to the receiver instead of JSON.
    let mut receiver = start_receiver(&dir, &certs, "offline", loopback_any_port());
    let mut args: Vec<String> = vec!["pcap".into()];
    args.extend(files.iter().map(|f| f.display().to_string()));
    args.extend(export_flags(receiver.addr, &certs.ca()));
    args.push("--stats".into());
    let env = quick_env("25");
    let run = sensor_command(&args, &env_refs(&env), Duration::from_secs(120));
    run.assert_success();
    assert!(
        run.stdout.is_empty(),
        "--nucleus alone writes no JSON: {}",
        run.stdout
    );
    let received = receiver.records();
    let diff = multiset_differences(&expected, &received);
    assert!(
        diff.is_empty(),
        "sensor pcap --nucleus vs --json:\n{}",
        diff.join("\n")
    );
    let total = all_lines(&expected).len() as u64;
    let stats = format!("{}\n{}", run.stderr, run.stdout);
    assert_eq!(
        stats_value(&stats, "export_records_acked"),
        Some(total),
        "{stats}"
    );
    assert!(
        stats_value(&stats, "export_batches_acked").is_some_and(|n| n > 1),
        "several batches: {stats}"
    );
    receiver.stop();

    // Live: replayed through `sensor run --nucleus`.
    let receiver = start_receiver(&dir, &certs, "live", loopback_any_port());
    let mut sensor = live_exporting(&dir, &certs, receiver.addr, None, &quick_env("25"));
    replay_wrapped(&files, sensor.vxlan, 200, 2000);
    sensor.stop(Duration::from_millis(500), Duration::from_secs(30));
    let received = receiver.records();
    assert_same_records(
        &expected_wrapped(&files, 200),
        &normalized(&received),
        "live",
    );
    // The sensor's own JSON (tee) and what the receiver wrote are the same
    // records, times included.
    let own = lines_by_type(&std::fs::read_to_string(&sensor.json).unwrap_or_default());
    let diff = multiset_differences(&own, &received);
    assert!(
        diff.is_empty(),
        "sensor run --json vs the receiver:\n{}",
        diff.join("\n")
    );
    println!(
        "{total} records delivered offline and {} live, equal to the JSON view",
        all_lines(&received).len()
    );
}

#[test]
fn a_receiver_away_for_30_seconds_loses_nothing_and_writes_nothing_twice() {
    let Some(files) = corpus_captures() else {
        return;
    };
    let dir = TempDir::new("nucleus-outage");
    let certs = DevCerts::make(&dir.join("certs"), "127.0.0.1");
    let mut receiver = start_receiver(&dir, &certs, "out", loopback_any_port());
    let port_addr = receiver.addr;
    let spool = dir.join("spool");
    let sensor = live_exporting(&dir, &certs, port_addr, Some(&spool), &quick_env("5"));

    // One paced replay of every capture (about 10 s) across the outage.
    let to = sensor.vxlan;
    let replay_files = files.clone();
    let replaying = std::thread::spawn(move || {
        let args = ["--encap", "vxlan", "--vni", "300", "--pps", "15"];
        let paths: Vec<&Path> = replay_files.iter().map(PathBuf::as_path).collect();
        replay(&paths, to, &args, Duration::from_secs(120)).assert_success();
    });
    assert!(
        wait_until(Duration::from_secs(30), || receiver.record_count() > 0),
        "no record reached the receiver before the outage\nsensor:\n{}",
        sensor.stderr()
    );
    receiver.stop();
    let stopped = Instant::now();
    let sealed_at_stop = metric(&sensor, "sensor_export_records_sealed_total");
    let received_before = receiver.record_count();

    // While it is away, records are sealed and held in the spool.
    let held = wait_until(Duration::from_secs(25), || {
        metric(&sensor, "sensor_export_records_sealed_total") > sealed_at_stop
            && metric(&sensor, "sensor_export_held_batches") > 0.0
            && !spool_segments(&spool).is_empty()
    });
    assert!(held, "nothing was spooled while the receiver was away");
    assert_eq!(metric(&sensor, "sensor_export_connected"), 0.0);
    std::thread::sleep(Duration::from_secs(30).saturating_sub(stopped.elapsed()));

    let receiver = start_receiver(&dir, &certs, "out", port_addr);
    replaying.join().expect("the replay thread");
    let mut sensor = sensor;
    let sensor_metrics = || {
        metric(&sensor, "sensor_export_held_batches") == 0.0
            && metric(&sensor, "sensor_export_connected") == 1.0
    };
    assert!(
        wait_until(Duration::from_secs(30), sensor_metrics),
        "the spool did not empty after the receiver came back\nsensor:\n{}",
        sensor.stderr()
    );
    assert!(metric(&sensor, "sensor_export_connects_total") >= 2.0);
    sensor.stop(Duration::from_millis(500), Duration::from_secs(30));

    let received = receiver.records();
    assert_no_repeats(&received, "after the outage");
    let own = lines_by_type(&std::fs::read_to_string(&sensor.json).unwrap_or_default());
    let diff = multiset_differences(&own, &received);
    assert!(
        diff.is_empty(),
        "sensor's JSON vs the receiver:\n{}",
        diff.join("\n")
    );
    let expected: Vec<Value> = files.iter().flat_map(|f| expected_live(f, 300)).collect();
    assert_same_records(&expected, &normalized(&received), "after the outage");
    println!(
        "{} records: {received_before} before the 30 s outage, the rest spooled and delivered once",
        all_lines(&received).len()
    );
}

#[test]
fn a_killed_sensor_delivers_its_spool_once_after_a_restart() {
    let Some(files) = corpus_captures() else {
        return;
    };
    let dir = TempDir::new("nucleus-kill");
    let certs = DevCerts::make(&dir.join("certs"), "127.0.0.1");
    let mut receiver = start_receiver(&dir, &certs, "out", loopback_any_port());
    let addr = receiver.addr;
    let spool = dir.join("spool");
    let env = quick_env("5");
    // The first capture is delivered; the rest (most of the records) are
    // spooled while the receiver is away.
    let (first, second) = files.split_at(1);

    let first_dir = TempDir::new("nucleus-kill-first");
    let mut sensor = live_exporting(&first_dir, &certs, addr, Some(&spool), &env);
    replay_wrapped(first, sensor.vxlan, 400, 2000);
    let delivered = wait_until(Duration::from_secs(30), || {
        let acked = metric(&sensor, "sensor_export_records_acked_total");
        acked > 0.0 && metric(&sensor, "sensor_export_held_batches") == 0.0
    });
    assert!(delivered, "the first captures were not delivered");
    receiver.stop();
    let before_kill = receiver.records();

    let sealed = metric(&sensor, "sensor_export_records_sealed_total");
    replay_wrapped(second, sensor.vxlan, 500, 2000);
    let spooled = wait_until(Duration::from_secs(30), || {
        metric(&sensor, "sensor_export_records_sealed_total") > sealed
            && metric(&sensor, "sensor_export_held_batches") > 0.0
    });
    assert!(spooled, "nothing was spooled while the receiver was away");
    sensor.signal("KILL");
    assert!(
        sensor.wait_exit(Duration::from_secs(10)).is_some(),
        "SIGKILL did not end it"
    );

    let segments = spool_segments(&spool);
    assert!(
        !segments.is_empty(),
        "no spool segment in {}",
        spool.display()
    );
    let mut in_spool: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for segment in &segments {
        for (kind, lines) in dump(segment) {
            in_spool.entry(kind).or_default().extend(lines);
        }
    }
    let waiting: Vec<String> = minus(&all_lines(&in_spool), &all_lines(&before_kill));
    // Batches already written may still be in the spool (acks are not
    // kept on disk): the restart sends them again, the receiver drops them.
    let written_and_spooled = all_lines(&in_spool).len() - waiting.len();
    assert!(
        !waiting.is_empty(),
        "nucleus dump lists no record that the receiver had not already written"
    );

    let receiver = start_receiver(&dir, &certs, "out", addr);
    let second_dir = TempDir::new("nucleus-kill-second");
    let mut sensor = live_exporting(&second_dir, &certs, addr, Some(&spool), &env);
    let emptied = wait_until(Duration::from_secs(30), || {
        metric(&sensor, "sensor_export_held_batches") == 0.0
            && metric(&sensor, "sensor_export_records_acked_total") > 0.0
    });
    assert!(
        emptied,
        "the restarted sensor did not deliver its spool\n{}",
        sensor.stderr()
    );
    sensor.stop(Duration::from_millis(500), Duration::from_secs(30));

    let received = receiver.records();
    assert_no_repeats(&received, "after the restart");
    let mut expected = all_lines(&before_kill);
    expected.extend(waiting.iter().cloned());
    expected.sort();
    let got = all_lines(&received);
    assert_eq!(
        minus(&expected, &got),
        Vec::<String>::new(),
        "spooled records that did not arrive"
    );
    assert_eq!(
        minus(&got, &expected),
        Vec::<String>::new(),
        "records that were neither delivered before the kill nor in the spool"
    );
    println!(
        "{} records delivered before SIGKILL, {} from the spool after the restart, none twice \
         ({written_and_spooled} were in the spool but already written)",
        all_lines(&before_kill).len(),
        waiting.len()
    );
}

#[test]
fn a_damaged_spool_segment_is_counted_and_skipped() {
    let dir = TempDir::new("nucleus-corrupt");
    let certs = DevCerts::make(&dir.join("certs"), "127.0.0.1");
    let spool = dir.join("spool");
    let capture = bundled_capture();
    let quick = quick_env("20");
    let env = env_refs(&quick);
    // Without a receiver, the first run gives up waiting after a second.
    let mut env_alone = env.clone();
    env_alone.retain(|(k, _)| *k != "SENSOR_NUCLEUS_DRAIN_TIMEOUT");
    env_alone.push(("SENSOR_NUCLEUS_DRAIN_TIMEOUT", "1s"));
    let pcap = |file: &Path, to: SocketAddr| -> Vec<String> {
        let mut args = vec!["pcap".into(), file.display().to_string()];
        args.extend(export_flags(to, &certs.ca()));
        args.extend([
            "--spool".into(),
            spool.display().to_string(),
            "--stats".into(),
        ]);
        args
    };

    // Nobody listens: every batch stays in the spool.
    let nowhere: SocketAddr = (Ipv4Addr::LOCALHOST, free_tcp_port()).into();
    let run = sensor_command(
        &pcap(&capture, nowhere),
        &env_alone,
        Duration::from_secs(120),
    );
    run.assert_success();
    let segments = spool_segments(&spool);
    let segment = segments
        .iter()
        .max_by_key(|s| std::fs::metadata(s).map_or(0, |m| m.len()))
        .unwrap_or_else(|| panic!("no spool segment after:\n{}", run.stderr))
        .clone();
    let pristine: Vec<String> = segments.iter().flat_map(|s| all_lines(&dump(s))).collect();
    assert_eq!(
        pristine.len(),
        all_lines(&offline_records(std::slice::from_ref(&capture))).len(),
        "the spool holds every record of the capture"
    );

    // Flip 16 bytes in the middle of the largest segment.
    let mut bytes = std::fs::read(&segment).expect("read the segment");
    let middle = bytes.len() / 2;
    for b in &mut bytes[middle..middle + 16] {
        *b ^= 0xa5;
    }
    std::fs::write(&segment, &bytes).expect("write the damaged segment");
    // `nucleus dump` says so, and lists the intact entries' records.
    let damaged = dump_run(&segment);
    assert!(
        !damaged.status.success(),
        "nucleus dump of a damaged segment must fail"
    );
    assert!(
        damaged.stderr.contains("damaged"),
        "dump stderr:\n{}",
        damaged.stderr
    );
    let mut intact: Vec<String> = all_lines(&lines_by_type(&damaged.stdout));
    for other in segments.iter().filter(|s| **s != segment) {
        intact.extend(all_lines(&dump(other)));
    }
    intact.sort();
    assert!(
        !intact.is_empty() && intact.len() < pristine.len(),
        "{} of {} records intact after the damage",
        intact.len(),
        pristine.len()
    );

    // A receiver now: the next run sends the good spooled batches and the
    // records of a new capture, and counts what it skipped.
    let receiver = start_receiver(&dir, &certs, "out", loopback_any_port());
    let fresh = dir.join("fresh.pcap");
    std::fs::write(&fresh, fresh_capture()).expect("write the new capture");
    let run = sensor_command(&pcap(&fresh, receiver.addr), &env, Duration::from_secs(120));
    run.assert_success();
    let stats = format!("{}\n{}", run.stderr, run.stdout);
    assert!(
        stats_value(&stats, "export_spool_corrupt_entries").is_some_and(|n| n > 0),
        "the damage was not counted:\n{stats}"
    );
    assert_eq!(
        stats_value(&stats, "export_held_batches"),
        Some(0),
        "{stats}"
    );

    let received = receiver.records();
    assert_no_repeats(&received, "after the damaged spool");
    let fresh_records = offline_records(&[fresh]);
    assert!(fresh_records.contains_key("flow") && fresh_records.contains_key("http"));
    let got = all_lines(&received);
    let new_missing = minus(&all_lines(&fresh_records), &got);
    assert!(
        new_missing.is_empty(),
        "{} new records missing",
        new_missing.len()
    );
    let mut from_spool = minus(&got, &all_lines(&fresh_records));
    from_spool.sort();
    assert_eq!(
        minus(&intact, &from_spool),
        Vec::<String>::new(),
        "intact spooled records that did not arrive"
    );
    assert_eq!(
        minus(&from_spool, &intact),
        Vec::<String>::new(),
        "records that were not in an intact spool entry"
    );
    // 16 bytes damage at most two entries of at most 20 records each.
    let lost = pristine.len() - from_spool.len();
    assert!(
        (1..=40).contains(&lost),
        "{lost} of {} spooled records did not arrive (damage hits one or two batches of 20)",
        pristine.len()
    );
    println!(
        "damaged segment: {} of {} spooled records delivered, {lost} skipped with the damage",
        from_spool.len(),
        pristine.len()
    );
}

/// A capture of one small HTTP connection between addresses no bundled
/// capture uses, so its records cannot be mistaken for spooled ones.
fn fresh_capture() -> Vec<u8> {
    let client = (Ipv4Addr::new(198, 18, 7, 1), 40_007);
    let server = (Ipv4Addr::new(198, 18, 7, 2), 80);
    let frames: Vec<(i64, Vec<u8>)> = small_connection(client, server)
        .iter()
        .enumerate()
        .map(|(i, (_, segment))| {
            // The VXLAN header's 8 bytes off: an Ethernet frame.
            let frame = vxlan_tcp(0, segment)[8..].to_vec();
            (1_700_000_000_000_000 + 1_000 * i as i64, frame)
        })
        .collect();
    pcap_bytes(&frames)
}

/// Runs `sensor pcap` (the bundled capture) toward `receiver` with `flags`
/// and no spool; a refused handshake leaves it failing after a short drain.
fn pcap_to(receiver: &Receiver, ca: &Path, flags: &[String]) -> sensor_tests::replay::ReplayRun {
    let mut args = vec!["pcap".into(), bundled_capture().display().to_string()];
    args.extend(export_flags(receiver.addr, ca));
    args.extend(flags.iter().cloned());
    let env = [
        ("SENSOR_NUCLEUS_DRAIN_TIMEOUT", "2s"),
        ("SENSOR_NUCLEUS_RECONNECT_MAX", "500ms"),
    ];
    sensor_command(&args, &env, Duration::from_secs(120))
}

#[test]
fn tls_refusals_name_their_cause_and_the_right_certificate_is_accepted() {
    let dir = TempDir::new("nucleus-tls");
    let certs = DevCerts::make(&dir.join("certs"), "127.0.0.1");
    let other = DevCerts::make(&dir.join("other"), "127.0.0.1");
    let refused = |run: &sensor_tests::replay::ReplayRun, sensor_says: &str| {
        assert!(
            !run.status.success(),
            "undeliverable records without a spool must fail"
        );
        assert!(
            run.stderr.contains(sensor_says),
            "the sensor does not say {sensor_says:?}:\n{}",
            run.stderr
        );
    };

    // The receiver's certificate comes from a CA the sensor does not trust.
    let mut stranger = start_receiver(&dir, &other, "stranger", loopback_any_port());
    let run = pcap_to(&stranger, &certs.ca(), &[]);
    refused(&run, "not signed by the configured CA");
    stranger.stop();
    assert!(
        stranger
            .stderr()
            .contains("does not trust this receiver's certificate"),
        "receiver:\n{}",
        stranger.stderr()
    );
    assert!(output_records(&stranger.out).is_empty());

    // Mutual TLS: the receiver requires a certificate of `certs`' CA.
    let options = ReceiverOptions {
        certs: certs.clone(),
        client_ca: Some(certs.ca()),
        out: dir.join("mtls"),
        listen: loopback_any_port(),
    };
    let stderr = dir.join("mtls.stderr");
    let mut strict = Receiver::start(&options, &stderr);
    let run = pcap_to(&strict, &certs.ca(), &[]);
    refused(&run, "requires a client certificate");
    assert!(
        wait_until(Duration::from_secs(5), || strict
            .stderr()
            .contains("presented no client certificate")),
        "receiver:\n{}",
        strict.stderr()
    );

    // A client certificate from another CA is refused too.
    let identity = |c: &DevCerts| -> Vec<String> {
        vec![
            "--nucleus-cert".into(),
            c.client_cert().display().to_string(),
            "--nucleus-key".into(),
            c.client_key().display().to_string(),
        ]
    };
    let run = pcap_to(&strict, &certs.ca(), &identity(&other));
    refused(&run, "refused this sensor's client certificate");
    assert!(
        wait_until(Duration::from_secs(5), || strict
            .stderr()
            .contains("not signed by a CA of --client-ca")),
        "receiver:\n{}",
        strict.stderr()
    );
    assert!(output_records(&strict.out).is_empty());

    // The right certificate: accepted, every record delivered.
    let run = pcap_to(&strict, &certs.ca(), &identity(&certs));
    run.assert_success();
    let expected = offline_records(&[bundled_capture()]);
    let diff = multiset_differences(&expected, &strict.records());
    assert!(
        diff.is_empty(),
        "with the client certificate:\n{}",
        diff.join("\n")
    );
    strict.stop();
}
