//! Operators rely on `live.huge_pages` doing what it says: by default the
//! running sensor has transparent huge pages disabled for its whole process
//! (the kernel says so in /proc/PID/status), `/metrics` reports the state
//! the kernel applied, and the setting turns them back on.

// Test code: a failed expectation must stop the test with its message.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use sensor_tests::live::{LiveOptions, LiveSensor, TempDir};

fn check(env: Vec<(String, String)>, expected: u64) {
    let dir = TempDir::new("huge-pages");
    let options = LiveOptions {
        env,
        ..LiveOptions::default()
    };
    let mut sensor = LiveSensor::start_ready(&dir, &options);
    let metrics = sensor.metrics();
    assert!(
        metrics.has("sensor_transparent_huge_pages"),
        "/metrics has no sensor_transparent_huge_pages"
    );
    let metric = metrics.sum("sensor_transparent_huge_pages", &[]);
    // `THP_enabled` is 0 once PR_SET_THP_DISABLE is set.
    let kernel = sensor.status_field("THP_enabled");
    sensor.stop(options.drain, std::time::Duration::from_secs(10));
    assert_eq!(metric, expected as f64, "sensor_transparent_huge_pages");
    // Kernels before 5.0 do not show the flag; the metric is then all there is.
    if let Some(kernel) = kernel {
        assert_eq!(kernel, expected, "THP_enabled in /proc/PID/status");
    }
}

#[test]
fn huge_pages_are_off_by_default_and_on_when_configured() {
    check(Vec::new(), 0);
    check(
        vec![("SENSOR_LIVE_HUGE_PAGES".to_owned(), "true".to_owned())],
        1,
    );
}
