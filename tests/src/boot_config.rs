//! Running the AMI's boot-time configuration step
//! (`deploy/systemd/mirror-sensor-config`) against a fake metadata service,
//! with every path it writes moved into a temporary directory.
//!
//! Input: the user data the instance would have (or none). Output: a
//! [`BootConfig`] with the exit status, the log, and the files the step
//! wrote, read back. It uses the real sensor binary for validation, as the
//! AMI does; it does not start the sensor.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use crate::imds::{FakeImds, ImdsRequest};
use crate::live::TempDir;
use crate::sensor::sensor_bin;
use crate::workspace_root;

/// The script under test.
pub fn script() -> PathBuf {
    workspace_root().join("deploy/systemd/mirror-sensor-config")
}

/// The AMI's packaged default configuration.
pub fn packaged_config() -> PathBuf {
    workspace_root().join("deploy/ami/sensor.toml")
}

/// What one run of the step did.
#[derive(Debug)]
pub struct BootConfig {
    /// The step exited 0.
    pub success: bool,
    /// Its standard error (the journal on an instance).
    pub log: String,
    /// The runtime directory it wrote (`/run/mirror-sensor` on an instance).
    pub runtime_dir: PathBuf,
    /// The requests the metadata service saw.
    pub imds_requests: Vec<ImdsRequest>,
    /// Kept alive so the files stay readable.
    pub dir: TempDir,
}

impl BootConfig {
    /// Runs the step with `user_data` served by a fake IMDSv2.
    pub fn run(user_data: Option<&[u8]>) -> Self {
        let imds = FakeImds::start(user_data);
        let mut run = Self::run_against(&imds.url());
        run.imds_requests = imds.requests();
        run
    }

    /// Runs the step against the metadata service at `imds_url`.
    pub fn run_against(imds_url: &str) -> Self {
        let dir = TempDir::new("boot-config");
        let runtime_dir = dir.join("run");
        let mut command = Command::new("sh");
        command
            .arg(script())
            .env("MIRROR_SENSOR_IMDS", imds_url)
            .env("MIRROR_SENSOR_DEFAULT_CONFIG", packaged_config())
            .env("MIRROR_SENSOR_RUNTIME_DIR", &runtime_dir)
            .env("MIRROR_SENSOR_STATE_DIR", dir.join("state"))
            .env("MIRROR_SENSOR_BIN", sensor_bin());
        // On an instance systemd starts the step with a clean environment;
        // the test runner's SENSOR_* variables are not meant for it.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("SENSOR_") {
                command.env_remove(key);
            }
        }
        let output = command
            .output()
            .unwrap_or_else(|e| panic!("cannot run the boot configuration step: {e}"));
        Self {
            success: output.status.success(),
            log: String::from_utf8_lossy(&output.stderr).into_owned(),
            runtime_dir,
            imds_requests: Vec::new(),
            dir,
        }
    }

    /// A file the step wrote, if it did.
    pub fn file(&self, name: &str) -> Option<String> {
        std::fs::read_to_string(self.runtime_dir.join(name)).ok()
    }

    /// The configuration file the sensor will read; fails the test when the
    /// step wrote none.
    pub fn config_path(&self) -> PathBuf {
        let path = self.runtime_dir.join("sensor.toml");
        assert!(
            path.is_file(),
            "the step wrote no sensor.toml; log:\n{}",
            self.log
        );
        path
    }

    /// The `NAME=VALUE` lines of the environment file, by name.
    pub fn environment(&self) -> BTreeMap<String, String> {
        self.file("environment")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// `sensor check-config` on the written configuration with the written
    /// environment applied, as the unit runs the sensor: (success, stdout
    /// or the error).
    pub fn effective_config(&self) -> (bool, String) {
        let mut command = Command::new(sensor_bin());
        command.arg("check-config").arg(self.config_path());
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("SENSOR_") {
                command.env_remove(key);
            }
        }
        for (k, v) in self.environment() {
            if k != "SENSOR_ARGS" {
                command.env(k, v);
            }
        }
        let output = command.output().expect("run sensor check-config");
        let text = if output.status.success() {
            String::from_utf8_lossy(&output.stdout).into_owned()
        } else {
            String::from_utf8_lossy(&output.stderr).into_owned()
        };
        (output.status.success(), text)
    }
}
