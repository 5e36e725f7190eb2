//! The configuration as a user meets it through the binary: `sensor
//! check-config` prints a configuration that loads back to itself and exits 0,
//! refuses a bad file with one line naming FILE:LINE:COLUMN and exits 2, and
//! `sensor pcap --config` applies the file's pipeline sections under its flags.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn sensor(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sensor"));
    cmd.args(args);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("SENSOR_") {
            cmd.env_remove(name);
        }
    }
    cmd.envs(env.iter().copied()).output().unwrap()
}

fn file(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sensor-config-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn check_config_prints_a_configuration_that_loads_back_to_itself() {
    let path = file(
        "good.toml",
        "[live]\ndrain = \"2m\"\nlisten_vxlan = [\"0.0.0.0:4789\", \"[::]:4789\"]\n",
    );
    let out = sensor(
        &["check-config", path.to_str().unwrap()],
        &[("SENSOR_HEALTH_LISTEN", "127.0.0.1:9000")],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let printed = text(&out.stdout);
    assert!(printed.contains("drain = \"2m\""), "{printed}");
    assert!(
        printed.contains("listen = \"127.0.0.1:9000\""),
        "env applied: {printed}"
    );

    let again = file("printed.toml", &printed);
    let out = sensor(&["check-config", again.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), printed);
}

#[test]
fn check_config_refuses_a_bad_file_with_one_positioned_line() {
    let path = file("bad.toml", "[live]\ndrain = \"10s\"\nbatch_size = 64\n");
    let out = sensor(&["check-config", path.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("bad.toml:3:1") && err.contains("batch_size"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn pcap_uses_the_pipeline_sections_of_the_file_under_its_flags() {
    let capture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../pcaps/aws-mirror/plain.pcap");
    let capture = capture.to_str().unwrap();
    let community_ids = |out: Output| -> Vec<String> {
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        text(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| v.get("community_id")?.as_str().map(str::to_string))
            .collect()
    };
    let default = community_ids(sensor(&["pcap", capture, "--json", "-"], &[]));
    assert!(!default.is_empty());
    let cfg = file("hex.toml", "[community_id]\nbase64 = false\nseed = 5\n");
    let cfg = cfg.to_str().unwrap();
    let hex = community_ids(sensor(
        &["pcap", "--config", cfg, capture, "--json", "-"],
        &[],
    ));
    assert_eq!(hex.len(), default.len());
    assert_ne!(hex, default, "the file's [community_id] applies");
    let seed0 = community_ids(sensor(
        &[
            "pcap",
            "--config",
            cfg,
            capture,
            "--json",
            "-",
            "--community-id-seed",
            "0",
        ],
        &[("SENSOR_COMMUNITY_ID_BASE64", "true")],
    ));
    assert_eq!(seed0, default, "environment and flag override the file");

    let bad = file("zero.toml", "[flows]\nmax_flows = 0\n");
    let out = sensor(&["pcap", "--config", bad.to_str().unwrap(), capture], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("flows.max_flows"));
}
