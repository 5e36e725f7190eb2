//! Users rely on the sensor surviving more traffic than it can take: replay
//! at full speed into a sensor with small queues and caps must not crash it,
//! every datagram sent must be either received or counted as dropped in
//! `/metrics` (never lost silently), and memory must stay bounded by the
//! configured caps.

// Test code: a failed expectation must stop the test with its message.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sensor_tests::live::{LiveOptions, LiveSensor, TempDir};
use sensor_tests::probe::Metrics;
use sensor_tests::replay::replay;
use sensor_tests::workspace_root;

/// Caps small enough that full-speed loopback overflows something.
const CONFIG: &str = "\
[live]
worker_queue_batches = 2
reorder_max_batches = 2
rcvbuf_bytes = 212992

[flows]
max_flows = 500
";

/// Resident memory allowed with those caps (generous: the binary, thread
/// stacks, receive buffers and 500 flows per worker need far less).
const RSS_LIMIT_KIB: u64 = 512 * 1024;
const LOOPS: &str = "100";

#[test]
fn full_speed_replay_counts_drops_and_stays_within_memory() {
    let capture = workspace_root().join("pcaps/aws-mirror/vxlan.pcap");
    let dir = TempDir::new("overload");
    let config = dir.join("sensor.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let options = LiveOptions {
        rx_threads: Some(2),
        workers: Some(2),
        drain: Duration::from_millis(500),
        config: Some(config),
        ..LiveOptions::default()
    };
    let mut sensor = LiveSensor::start_ready(&dir, &options);

    let peak_rss = AtomicU64::new(0);
    let done = AtomicBool::new(false);
    let sent = std::thread::scope(|scope| {
        scope.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                if let Some(rss) = sensor.rss_kib() {
                    peak_rss.fetch_max(rss, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        let run = replay(
            &[&capture],
            sensor.vxlan,
            &["--encap", "none", "--max", "--loop", LOOPS],
            Duration::from_secs(120),
        );
        done.store(true, Ordering::Relaxed);
        run.assert_success();
        run.sent_packets().unwrap_or_else(|| {
            panic!(
                "no packet count in the replay summary:\n{}{}",
                run.stdout, run.stderr
            )
        })
    });
    assert!(
        sensor.try_exit().is_none(),
        "the sensor died:\n{}",
        sensor.stderr()
    );
    let metrics = settled_metrics(&sensor);
    let peak_rss = peak_rss
        .load(Ordering::Relaxed)
        .max(sensor.rss_kib().unwrap_or(0));

    let received = metrics.sum("sensor_packets_total", &[("role", receiver_role(&metrics))]);
    let kernel_drops = metrics.sum(
        "sensor_drops_total",
        &[("reason", "kernel_socket_overflow")],
    );
    let all_drops = metrics.sum("sensor_drops_total", &[]);
    println!(
        "sent {sent}, received {received}, kernel drops {kernel_drops}, drops by reason {:?}, \
         reordering {:?}, peak RSS {} MiB",
        metrics.nonzero("sensor_drops_total"),
        metrics
            .nonzero("sensor_anomalies_total")
            .into_iter()
            .filter(|s| s.contains("packet_late") || s.contains("reorder_held_cap"))
            .collect::<Vec<_>>(),
        peak_rss / 1024
    );
    assert!(
        peak_rss < RSS_LIMIT_KIB,
        "peak RSS {} MiB over the {} MiB allowed by the caps",
        peak_rss / 1024,
        RSS_LIMIT_KIB / 1024
    );
    let accounted = received + kernel_drops;
    assert!(
        (accounted - sent as f64).abs() < 1.0,
        "{sent} datagrams sent but {received} received + {kernel_drops} counted as kernel drops"
    );
    if all_drops == 0.0 {
        println!("no drops: the sensor kept up with {sent} datagrams at full speed");
    }
    assert_eq!(
        sensor.get("/healthz").map(|r| r.0),
        Ok(200),
        "alive after the overload"
    );
    sensor.stop(options.drain, Duration::from_secs(30));
}

/// `/metrics` once two reads 200 ms apart agree on packets and drops (the
/// receivers may still be emptying their sockets when the replay ends).
fn settled_metrics(sensor: &LiveSensor) -> Metrics {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = sensor.metrics();
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let now = sensor.metrics();
        let key = |m: &Metrics| {
            (
                m.sum("sensor_packets_total", &[]),
                m.sum("sensor_drops_total", &[]),
            )
        };
        if key(&now) == key(&last) || Instant::now() > deadline {
            return now;
        }
        last = now;
    }
}

/// The `role` label value of receive threads in this sensor's metrics.
fn receiver_role(metrics: &Metrics) -> &str {
    metrics
        .samples
        .iter()
        .filter(|s| s.name == "sensor_packets_total")
        .flat_map(|s| s.labels.iter())
        .find(|(k, v)| k == "role" && (v.starts_with("rx") || v.starts_with("rec")))
        .map_or("receiver", |(_, v)| v.as_str())
}
