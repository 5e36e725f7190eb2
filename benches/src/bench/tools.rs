//! Finding the programs the benchmark runs: the sensor (built here with
//! cargo unless `SENSOR_BIN` names one), `ndpiReader` and `taskset`, and
//! describing the machine.

use std::env;
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The hint printed when `ndpiReader` is missing.
pub const NDPI_INSTALL_HINT: &str = "apt-get install -y libndpi-bin";
/// The hint printed when `taskset` is missing.
pub const TASKSET_INSTALL_HINT: &str = "apt-get install -y util-linux";

/// A program the benchmark needs that is not installed, with how to get it.
#[derive(Debug)]
pub struct MissingTool {
    /// The program's name.
    pub name: &'static str,
    /// The command that installs it.
    pub install_hint: &'static str,
}

impl std::fmt::Display for MissingTool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` not found on PATH; install it with: {}",
            self.name, self.install_hint
        )
    }
}

impl std::error::Error for MissingTool {}

/// The first executable called `name` on `PATH`.
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = env::var_os("PATH")?;
    env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path)
        .map(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// `ndpiReader`: `NDPI_READER` if set, else from `PATH`.
pub fn ndpi_reader() -> Result<PathBuf, MissingTool> {
    let missing = MissingTool {
        name: "ndpiReader",
        install_hint: NDPI_INSTALL_HINT,
    };
    match env::var_os("NDPI_READER") {
        Some(path) if is_executable(Path::new(&path)) => Ok(PathBuf::from(path)),
        Some(_) => Err(missing),
        None => find_on_path("ndpiReader").ok_or(missing),
    }
}

/// `taskset` from util-linux.
pub fn taskset() -> Result<PathBuf, MissingTool> {
    find_on_path("taskset").ok_or(MissingTool {
        name: "taskset",
        install_hint: TASKSET_INSTALL_HINT,
    })
}

/// The cargo that runs us (cargo sets `CARGO`), else `cargo` from `PATH`.
fn cargo() -> OsString {
    env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"))
}

/// The sensor binary: `SENSOR_BIN` if set; otherwise builds it with
/// `cargo build --release -p sensor --bin sensor` in `workspace_root`
/// (respecting `CARGO_TARGET_DIR` and cargo configuration) and returns
/// `<target dir>/release/sensor`.
pub fn sensor_binary(workspace_root: &Path) -> Result<PathBuf> {
    if let Some(path) = env::var_os("SENSOR_BIN") {
        let path = PathBuf::from(path);
        if !is_executable(&path) {
            bail!("SENSOR_BIN={} is not an executable file", path.display());
        }
        return Ok(path);
    }
    eprintln!("building the sensor: cargo build --release -p sensor --bin sensor");
    let status = Command::new(cargo())
        .args(["build", "--release", "-p", "sensor", "--bin", "sensor"])
        .current_dir(workspace_root)
        .status()
        .context("run cargo build")?;
    if !status.success() {
        bail!("cargo build --release -p sensor failed ({status})");
    }
    let binary = target_directory(workspace_root)?
        .join("release")
        .join("sensor");
    if !is_executable(&binary) {
        bail!(
            "built the sensor but found no binary at {}",
            binary.display()
        );
    }
    Ok(binary)
}

/// Cargo's target directory for the workspace, as `cargo metadata` says.
fn target_directory(workspace_root: &Path) -> Result<PathBuf> {
    let output = Command::new(cargo())
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(workspace_root)
        .output()
        .context("run cargo metadata")?;
    if !output.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let metadata: serde_json::Value =
        serde_json::from_slice(&output.stdout).context("parse cargo metadata")?;
    metadata["target_directory"]
        .as_str()
        .map(PathBuf::from)
        .context("cargo metadata has no target_directory")
}

/// The CPU model from /proc/cpuinfo (name, family, model, clock, whether
/// virtualised), how many CPUs this process may use, and the load average.
pub fn machine_description() -> String {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let value = |key: &str| {
        cpuinfo.lines().find_map(|line| {
            let (name, value) = line.split_once(':')?;
            (name.trim() == key).then(|| value.trim().to_string())
        })
    };
    let model = value("model name").unwrap_or_else(|| "unknown CPU".to_string());
    let family = value("cpu family").unwrap_or_default();
    let number = value("model").unwrap_or_default();
    let mhz = value("cpu MHz")
        .and_then(|mhz| mhz.parse::<f64>().ok())
        .unwrap_or(0.0);
    let virtualised = match value("flags") {
        Some(flags) if flags.split_whitespace().any(|flag| flag == "hypervisor") => {
            ", virtual machine"
        }
        _ => "",
    };
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let load = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    format!(
        "{model} (family {family}, model {number}, {mhz:.0} MHz{virtualised}), {cpus} CPUs available, load average {}",
        load.join(" ")
    )
}

/// A warning when the one-minute load average says the CPUs are busy,
/// which makes the figures noisy.
pub fn busy_machine_warning() -> Option<String> {
    let load: f64 = fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    (load > 0.5 * cpus as f64).then(|| {
        format!(
            "load average {load:.2} on {cpus} CPUs (a build just before counts too): \
             expect noisy figures; more --repetitions help"
        )
    })
}

/// The CPU to pin to: `wanted` if this machine has it, else the last one.
pub fn pick_core(wanted: usize) -> usize {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    wanted.min(cpus - 1)
}
