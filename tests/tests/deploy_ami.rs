//! Users run the sensor from the AMI built by `deploy/ami`, and rely on it:
//! systemd accepts the hardened unit; the sysctl file lets the kernel grant
//! the receive buffer the packaged configuration asks for; the Packer
//! template is well-formed and installs every deployed file; the boot step
//! turns the instance's user data into the sensor's configuration, or
//! refuses to start the sensor with something else than was asked; and the
//! release binary started with the packaged configuration becomes ready.

// Test code: a failed expectation must stop the test with its message.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use sensor_tests::boot_config::{BootConfig, packaged_config};
use sensor_tests::imds::TOKEN;
use sensor_tests::live::{LiveOptions, LiveSensor, TempDir, free_tcp_port};
use sensor_tests::sensor::sensor_bin;
use sensor_tests::workspace_root;

fn deploy(path: &str) -> PathBuf {
    workspace_root().join("deploy").join(path)
}

/// The units with their programs pointed at this checkout, so that
/// `systemd-analyze verify` can check that they exist and are executable.
fn units_for_verify(dir: &TempDir) -> Vec<PathBuf> {
    let rewrites = [
        (
            "/usr/local/bin/sensor ",
            format!("{} ", sensor_bin().display()),
        ),
        (
            "/usr/local/bin/mirror-sensor-config",
            deploy("systemd/mirror-sensor-config").display().to_string(),
        ),
    ];
    ["mirror-sensor.service", "mirror-sensor-config.service"]
        .iter()
        .map(|name| {
            let mut text = std::fs::read_to_string(deploy(&format!("systemd/{name}"))).unwrap();
            for (from, to) in &rewrites {
                text = text.replace(from, to);
            }
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap();
            path
        })
        .collect()
}

#[test]
fn systemd_accepts_the_units_and_rates_the_service_hardened() {
    let dir = TempDir::new("units");
    let units = units_for_verify(&dir);
    let output = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(&units)
        .output()
        .expect("run systemd-analyze (systemd)");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // Unknown keys and bad values are only warnings to verify: none allowed.
    assert!(
        output.status.success() && said.trim().is_empty(),
        "systemd-analyze verify:\n{said}"
    );

    // An exposure of 2.0 or less is what systemd calls "OK" for a network
    // service that must keep its network access.
    let security = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--threshold=20"])
        .arg(&units[0])
        .output()
        .expect("run systemd-analyze security");
    assert!(
        security.status.success(),
        "exposure above 2.0:\n{}",
        String::from_utf8_lossy(&security.stdout)
    );

    let unit = std::fs::read_to_string(&units[0]).unwrap();
    for setting in [
        "User=sensor",
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=\n",
        "ProtectSystem=strict",
        "Restart=on-failure",
    ] {
        assert!(unit.contains(setting), "the unit sets {setting:?}");
    }
}

/// `key = value` lines of a sysctl file.
fn sysctl_value(text: &str, key: &str) -> u64 {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .find(|(k, _)| k.trim() == key)
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("the sysctl file sets {key}"))
}

#[test]
fn the_sysctl_file_grants_the_receive_buffer_the_packaged_configuration_asks_for() {
    let sysctl = std::fs::read_to_string(deploy("systemd/90-mirror-sensor.conf")).unwrap();
    let output = Command::new(sensor_bin())
        .arg("check-config")
        .arg(packaged_config())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let effective: toml::Table = toml::from_str(&String::from_utf8_lossy(&output.stdout)).unwrap();
    let requested = effective["live"]["rcvbuf_bytes"].as_integer().unwrap() as u64;
    // Linux caps SO_RCVBUF at rmem_max, then doubles it.
    assert!(
        sysctl_value(&sysctl, "net.core.rmem_max") * 2 >= requested,
        "rmem_max too small for rcvbuf_bytes {requested}"
    );
    assert!(sysctl_value(&sysctl, "net.core.netdev_max_backlog") > 1000);
}

fn packer(args: &[&str]) -> (bool, String) {
    let mut command = Command::new("packer");
    command
        .args(args)
        .current_dir(workspace_root())
        .env("CHECKPOINT_DISABLE", "1");
    // Validation must not depend on an AWS account.
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("AWS_") {
            command.env_remove(key);
        }
    }
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run packer (scripts/test installs it): {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn packer_validates_the_template_and_it_installs_every_deployed_file() {
    let template = "deploy/ami/mirror-sensor.pkr.hcl";
    let (ok, said) = packer(&["fmt", "-check", "-diff", template]);
    assert!(ok, "packer fmt -check:\n{said}");
    let binary = format!("sensor_binary={}", sensor_bin().display());
    let (ok, said) = packer(&["validate", "-var", &binary, template]);
    assert!(ok, "packer validate:\n{said}");
    // Validation checks that every uploaded file exists: a missing one fails.
    let (ok, _) = packer(&[
        "validate",
        "-var",
        "sensor_binary=/nonexistent/sensor",
        template,
    ]);
    assert!(!ok, "packer validate must check the uploaded files");

    let text = std::fs::read_to_string(workspace_root().join(template)).unwrap();
    for (file, installed_as) in [
        ("sensor.toml", "/etc/mirror-sensor/sensor.toml"),
        (
            "mirror-sensor.service",
            "/etc/systemd/system/mirror-sensor.service",
        ),
        (
            "mirror-sensor-config.service",
            "/etc/systemd/system/mirror-sensor-config.service",
        ),
        (
            "mirror-sensor-config",
            "/usr/local/bin/mirror-sensor-config",
        ),
        (
            "90-mirror-sensor.conf",
            "/etc/sysctl.d/90-mirror-sensor.conf",
        ),
        (
            "mirror-sensor.sysusers",
            "/etc/sysusers.d/mirror-sensor.conf",
        ),
        ("sensor", "/usr/local/bin/sensor"),
    ] {
        assert!(
            text.lines()
                .any(|l| l.contains("install ") && l.contains(&format!(" {file} {installed_as}"))),
            "the template installs {file} as {installed_as}"
        );
    }
    // Every file of deploy/systemd is uploaded.
    for entry in std::fs::read_dir(deploy("systemd")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            text.contains(&format!("\"${{path.root}}/../systemd/{name}\"")),
            "the template uploads deploy/systemd/{name}"
        );
    }
    // The unit runs what the template installs, with what the boot step writes.
    let unit = std::fs::read_to_string(deploy("systemd/mirror-sensor.service")).unwrap();
    assert!(unit.contains(
        "ExecStart=/usr/local/bin/sensor run --config /run/mirror-sensor/sensor.toml $SENSOR_ARGS"
    ));
}

#[test]
fn without_user_data_the_packaged_configuration_is_used() {
    let boot = BootConfig::run(None);
    assert!(boot.success, "{}", boot.log);
    assert_eq!(
        boot.file("sensor.toml").unwrap(),
        std::fs::read_to_string(packaged_config()).unwrap()
    );
    assert_eq!(boot.file("environment").unwrap(), "SENSOR_ARGS=\n");
    // IMDSv2: a token first, then the user data with it.
    let requests = boot.imds_requests.clone();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert_eq!(
        (requests[0].method.as_str(), requests[0].path.as_str()),
        ("PUT", "/latest/api/token")
    );
    assert_eq!(requests[1].path, "/latest/user-data");
    assert!(
        requests[1].with_token,
        "the user data is read with the token {TOKEN}"
    );

    let empty = BootConfig::run(Some(b"\n# nothing here\n\n"));
    assert!(empty.success, "{}", empty.log);
    assert_eq!(empty.file("sensor.toml"), boot.file("sensor.toml"));
}

#[test]
fn key_value_user_data_overrides_the_packaged_configuration() {
    // Written on Windows: CRLF line ends.
    let boot = BootConfig::run(Some(
        b"# settings\r\nSENSOR_LIVE_DRAIN=2m\r\nSENSOR_LIVE_LISTEN_VXLAN=0.0.0.0:4789,[::]:4789\r\n",
    ));
    assert!(boot.success, "{}", boot.log);
    let env = boot.environment();
    assert_eq!(env["SENSOR_LIVE_DRAIN"], "2m");
    let (ok, effective) = boot.effective_config();
    assert!(ok, "{effective}");
    assert!(effective.contains("drain = \"2m\""), "{effective}");
    assert!(effective.contains("\"[::]:4789\""), "{effective}");
    // The packaged file's own choices stay.
    assert!(
        effective.contains("/var/log/mirror-sensor/records.json"),
        "{effective}"
    );
}

#[test]
fn toml_user_data_replaces_the_packaged_configuration() {
    let config = b"[live]\ndrain = \"20s\"\n\n[output]\njson = \"/var/log/mirror-sensor/r.json\"\n";
    let boot = BootConfig::run(Some(config));
    assert!(boot.success, "{}", boot.log);
    assert_eq!(boot.file("sensor.toml").unwrap().as_bytes(), config);
    let (ok, effective) = boot.effective_config();
    assert!(ok && effective.contains("drain = \"20s\""), "{effective}");
}

#[test]
fn user_data_the_sensor_would_not_run_with_fails_the_boot_step() {
    let cases: [(&[u8], &str); 8] = [
        (b"[live]\ndrian = \"5s\"\n", "unknown key"),
        (b"SENSOR_LIVE_DRAIN=forever\n", "refuses"),
        (b"SENSOR_LIVE_DRIAN=5s\n", "refuses"),
        (b"SENSOR_LIVE_DRAIN=5s\nSENSOR_LIVE_DRAIN=6s\n", "twice"),
        (b"SENSOR_LIVE_DRAIN=5s; rm -rf /\n", "may hold"),
        (b"PATH=/tmp\n", "unknown key PATH"),
        (b"SENSOR_LIVE_DRAIN=10m\n", "longer than 300s"),
        (b"NUCLEUS_ADDR=nucleus.example:7000\n", "go together"),
    ];
    for (user_data, why) in cases {
        let boot = BootConfig::run(Some(user_data));
        let shown = String::from_utf8_lossy(user_data);
        assert!(!boot.success, "accepted {shown:?}");
        assert!(
            boot.log.contains(why),
            "{shown:?}: expected {why:?} in:\n{}",
            boot.log
        );
        assert!(
            boot.file("sensor.toml").is_none() && boot.file("environment").is_none(),
            "{shown:?}: nothing is written for the sensor"
        );
    }
}

#[test]
fn nucleus_user_data_adds_the_exporter_flags_when_the_sensor_has_them() {
    let ca = b"-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n";
    let encoded = Command::new("base64")
        .args(["-w", "0"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(ca)?;
            child.wait_with_output()
        })
        .unwrap();
    let b64 = String::from_utf8(encoded.stdout).unwrap();
    let user_data = format!("NUCLEUS_ADDR=nucleus.example:7000\nNUCLEUS_CA_PEM_B64={b64}\n");
    let boot = BootConfig::run(Some(user_data.as_bytes()));
    let help = Command::new(sensor_bin())
        .args(["run", "--help"])
        .output()
        .unwrap();
    if String::from_utf8_lossy(&help.stdout).contains("--nucleus-ca") {
        assert!(boot.success, "{}", boot.log);
        assert_eq!(boot.file("nucleus-ca.pem").unwrap().as_bytes(), ca);
        let args = &boot.environment()["SENSOR_ARGS"];
        assert!(
            args.starts_with("--nucleus nucleus.example:7000 --nucleus-ca "),
            "{args}"
        );
    } else {
        assert!(!boot.success, "{}", boot.log);
        assert!(boot.log.contains("no --nucleus flag"), "{}", boot.log);
    }
}

#[test]
fn an_unreachable_metadata_service_fails_the_boot_step() {
    // A port nobody listens on: refused at once (curl retries a few times).
    let url = format!("http://127.0.0.1:{}", free_tcp_port());
    let boot = BootConfig::run_against(&url);
    assert!(!boot.success);
    assert!(boot.log.contains("IMDSv2 token"), "{}", boot.log);
    assert!(boot.file("sensor.toml").is_none());
}

#[test]
fn the_release_binary_with_the_boot_configuration_becomes_ready() {
    let boot = BootConfig::run(None);
    assert!(boot.success, "{}", boot.log);
    let dir = TempDir::new("ami-ready");
    // Loopback ports and a temporary record file instead of the instance's
    // (flags override the file); the receive buffer is whatever this
    // machine's rmem_max grants.
    let options = LiveOptions {
        rx_threads: None,
        workers: None,
        drain: Duration::from_millis(500),
        config: Some(boot.config_path()),
        ..LiveOptions::default()
    };
    let mut sensor = LiveSensor::start_ready(&dir, &options);
    assert_eq!(sensor.get("/healthz").map(|r| r.0), Ok(200));
    let metrics = sensor.get("/metrics").unwrap();
    assert_eq!(metrics.0, 200);
    assert!(metrics.1.contains("sensor_ready"), "{}", metrics.1);
    sensor.stop(options.drain, Duration::from_secs(10));
    assert!(
        Path::new(&sensor.json).exists(),
        "records go where the flags said, not to the instance's path"
    );
}

#[test]
fn records_reach_a_nucleus_through_the_boot_configuration() {
    // The walk's last step on one machine: user data naming a Nucleus and
    // its CA, the boot step, the sensor started as the unit starts it
    // (packaged configuration plus SENSOR_ARGS), traffic, and the records
    // at the receiver, equal to the sensor's own JSON copy.
    use sensor_tests::jsonl::{lines_by_type, multiset_differences};
    use sensor_tests::nucleus::{DevCerts, Receiver, ReceiverOptions, wait_until};
    use sensor_tests::replay::replay;

    let dir = TempDir::new("ami-nucleus");
    let certs = DevCerts::make(&dir.join("certs"), "127.0.0.1");
    let mut receiver = Receiver::start(
        &ReceiverOptions {
            certs: certs.clone(),
            client_ca: None,
            out: dir.join("nucleus-out"),
            listen: "127.0.0.1:0".parse().unwrap(),
        },
        &dir.join("nucleus.stderr"),
    );
    let ca = std::fs::read(certs.ca()).unwrap();
    let b64 = Command::new("base64")
        .args(["-w", "0"])
        .arg(certs.ca())
        .output()
        .unwrap();
    let b64 = String::from_utf8(b64.stdout).unwrap();
    let user_data = format!("NUCLEUS_ADDR={}\nNUCLEUS_CA_PEM_B64={b64}\n", receiver.addr);
    let boot = BootConfig::run(Some(user_data.as_bytes()));
    assert!(boot.success, "{}", boot.log);
    assert_eq!(boot.file("nucleus-ca.pem").unwrap().as_bytes(), ca);
    let args: Vec<String> = boot.environment()["SENSOR_ARGS"]
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let options = LiveOptions {
        rx_threads: Some(1),
        workers: Some(1),
        drain: Duration::from_millis(500),
        config: Some(boot.config_path()),
        extra_args: args,
        ..LiveOptions::default()
    };
    let mut sensor = LiveSensor::start_ready(&dir, &options);
    let capture = workspace_root().join("pcaps/aws-mirror/vxlan.pcap");
    let replay_args = ["--encap", "none", "--pps", "2000"];
    replay(
        &[capture.as_path()],
        sensor.vxlan,
        &replay_args,
        Duration::from_secs(60),
    )
    .assert_success();
    sensor.stop(options.drain, Duration::from_secs(40));
    let local = lines_by_type(&std::fs::read_to_string(&sensor.json).unwrap());
    assert!(!local.is_empty(), "the sensor wrote no records");
    let delivered = wait_until(Duration::from_secs(10), || receiver.records() == local);
    let diff = multiset_differences(&local, &receiver.records());
    assert!(
        delivered && diff.is_empty(),
        "the Nucleus got other records than the sensor wrote:\n{}\nsensor: {}\nnucleus: {}",
        diff.join("\n"),
        sensor.stderr(),
        receiver.stderr()
    );
    // The spool is the state directory's, as on an instance.
    assert!(boot.dir.join("state/spool").is_dir());
    receiver.stop();
}
