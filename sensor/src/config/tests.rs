//! Tests of loading, layering, validating and rendering the configuration.

use super::*;
use clap::Parser;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Writes `text` to a file of this test process's own.
fn file(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sensor-config-tests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn load(path: Option<&Path>, vars: &[(&str, &str)]) -> Result<SensorConfig, ConfigError> {
    SensorConfig::from_sources(path, &env(vars), &RunArgs::default())
}

fn load_text(name: &str, text: &str) -> Result<SensorConfig, ConfigError> {
    load(Some(&file(name, text)), &[])
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    run: RunArgs,
}

fn flags(list: &[&str]) -> RunArgs {
    Cli::try_parse_from(std::iter::once("sensor").chain(list.iter().copied()))
        .unwrap()
        .run
}

#[test]
fn no_file_no_env_no_flags_gives_the_defaults() {
    let cfg = load(None, &[]).unwrap();
    assert_eq!(cfg, SensorConfig::default());
    assert_eq!(cfg.live.listen_vxlan, vec![addr("0.0.0.0:4789")]);
    assert_eq!(cfg.live.listen_geneve, vec![addr("0.0.0.0:6081")]);
    assert_eq!(cfg.health.listen, addr("0.0.0.0:8080"));
    assert_eq!(cfg.output.json, "-");
    assert_eq!(cfg.live.drain, Duration::from_secs(10));
}

#[test]
fn flags_override_the_environment_which_overrides_the_file() {
    let path = file(
        "precedence.toml",
        "[live]\ndrain = \"20s\"\nworkers = 3\nrx_threads = 2\n\n[output]\njson = \"/var/log/a.json\"\n\n[flows]\nmax_flows = 10\n",
    );
    let vars = env(&[
        ("SENSOR_LIVE_DRAIN", "30s"),
        ("SENSOR_LIVE_WORKERS", "5"),
        ("SENSOR_FLOWS_MAX_FLOWS", "20"),
    ]);
    let args = flags(&["--drain", "40s", "--max-flows", "30"]);
    let cfg = SensorConfig::from_sources(Some(&path), &vars, &args).unwrap();
    assert_eq!(cfg.live.drain, Duration::from_secs(40), "flag beats env");
    assert_eq!(cfg.pipeline.flows.max_flows, 30, "flag beats env");
    assert_eq!(cfg.live.workers, 5, "env beats file");
    assert_eq!(cfg.live.rx_threads, 2, "file beats default");
    assert_eq!(cfg.output.json, "/var/log/a.json", "file beats default");
    // Flags not given leave the file and environment alone.
    let cfg = SensorConfig::from_sources(Some(&path), &vars, &flags(&[])).unwrap();
    assert_eq!(cfg.live.drain, Duration::from_secs(30));
    assert_eq!(cfg.output.json, "/var/log/a.json");
    assert_eq!(cfg.health.listen, addr("0.0.0.0:8080"));
}

#[test]
fn contract_flags_parse_with_their_names() {
    let args = flags(&[
        "--config",
        "/etc/sensor.toml",
        "--listen-vxlan",
        "127.0.0.1:14789",
        "--listen-vxlan",
        "[::1]:14789",
        "--listen-geneve",
        "127.0.0.1:16081",
        "--health",
        "127.0.0.1:18080",
        "--json",
        "-",
        "--drain",
        "250ms",
        "--rx-threads",
        "2",
        "--workers",
        "3",
        "--rcvbuf",
        "1048576",
        "--tcp-health",
        "127.0.0.1:10080",
    ]);
    assert_eq!(args.config.as_deref(), Some(Path::new("/etc/sensor.toml")));
    let cfg = SensorConfig::from_sources(None, &[], &args).unwrap();
    assert_eq!(
        cfg.live.listen_vxlan,
        vec![addr("127.0.0.1:14789"), addr("[::1]:14789")]
    );
    assert_eq!(cfg.live.listen_geneve, vec![addr("127.0.0.1:16081")]);
    assert_eq!(cfg.health.listen, addr("127.0.0.1:18080"));
    assert_eq!(cfg.health.tcp_listen, vec![addr("127.0.0.1:10080")]);
    assert_eq!(cfg.live.drain, Duration::from_millis(250));
    assert_eq!((cfg.live.rx_threads, cfg.live.workers), (2, 3));
    assert_eq!(cfg.live.rcvbuf_bytes, 1 << 20);
    assert!(
        Cli::try_parse_from(["sensor", "--drain", "ten seconds"]).is_err(),
        "bad durations are refused by the flag parser"
    );
    assert!(Cli::try_parse_from(["sensor", "--health", "localhost:80"]).is_err());
}

#[test]
fn tcp_health_follows_the_listen_addresses_unless_set() {
    let cfg = SensorConfig::from_sources(
        None,
        &[],
        &flags(&[
            "--listen-vxlan",
            "127.0.0.1:14789",
            "--listen-geneve",
            "[::1]:16081",
        ]),
    )
    .unwrap();
    assert_eq!(
        cfg.health.tcp_listen,
        vec![addr("127.0.0.1:14789"), addr("[::1]:16081")]
    );
    let cfg = SensorConfig::from_sources(None, &[], &flags(&["--no-tcp-health"])).unwrap();
    assert!(cfg.health.tcp_listen.is_empty());
    let cfg = load(None, &[("SENSOR_HEALTH_TCP_LISTEN", "0.0.0.0:80")]).unwrap();
    assert_eq!(cfg.health.tcp_listen, vec![addr("0.0.0.0:80")]);
}

#[test]
fn environment_lists_and_scalars_are_parsed_by_key_type() {
    let cfg = load(
        None,
        &[
            ("SENSOR_LIVE_LISTEN_VXLAN", "0.0.0.0:4789,[::]:4789"),
            ("SENSOR_HEALTH_LISTEN", "127.0.0.1:9000"),
            ("SENSOR_HEALTH_TCP_LISTEN", ""),
            ("SENSOR_HEALTH_MAX_DROP_RATIO", "0.5"),
            ("SENSOR_DECAP_VXLAN_PORTS", "4789, 4790"),
            ("SENSOR_COMMUNITY_ID_BASE64", "false"),
            ("SENSOR_OUTPUT_JSON", "/var/log/records.json"),
            ("SENSOR_BIN", "not a setting: ignored"),
            ("PATH", "/usr/bin"),
        ],
    )
    .unwrap();
    assert_eq!(
        cfg.live.listen_vxlan,
        vec![addr("0.0.0.0:4789"), addr("[::]:4789")]
    );
    assert_eq!(cfg.health.listen, addr("127.0.0.1:9000"));
    assert!(cfg.health.tcp_listen.is_empty());
    assert_eq!(cfg.health.max_drop_ratio, 0.5);
    assert_eq!(cfg.pipeline.decap.vxlan_ports, vec![4789, 4790]);
    assert!(!cfg.pipeline.community_id.base64);
    assert_eq!(cfg.output.json, "/var/log/records.json");
}

#[test]
fn unknown_environment_setting_is_refused_by_name() {
    let e = load(None, &[("SENSOR_LIVE_DRAINS", "5s")]).unwrap_err();
    let text = e.to_string();
    assert!(text.contains("SENSOR_LIVE_DRAINS"), "{text}");
    assert!(
        text.contains("SENSOR_LIVE_DRAIN,"),
        "lists the valid names: {text}"
    );
    let e = load(None, &[("SENSOR_COMMUNITY_ID_SALT", "1")]).unwrap_err();
    assert!(e.to_string().contains("SENSOR_COMMUNITY_ID_SALT"), "{e}");
}

#[test]
fn bad_environment_values_name_the_variable_and_key() {
    for (var, value, says) in [
        ("SENSOR_LIVE_DRAIN", "5 parsecs", "invalid duration"),
        ("SENSOR_HEALTH_LISTEN", "localhost:9000", "invalid address"),
        ("SENSOR_LIVE_WORKERS", "many", "not an integer"),
        ("SENSOR_LIVE_WORKERS", "0", "below the minimum 1"),
        ("SENSOR_DECAP_GENEVE_PORTS", "6081,99999", "u16"),
    ] {
        let e = load(None, &[(var, value)]).unwrap_err();
        let text = e.to_string();
        assert_eq!(
            e.location.as_deref(),
            Some(format!("environment variable {var}").as_str()),
            "{text}"
        );
        assert!(e.key.is_some(), "{text}");
        assert!(text.contains(says), "{text}");
    }
}

#[test]
fn unknown_key_names_file_line_column_key_and_valid_keys() {
    let e = load_text(
        "unknown-key.toml",
        "# comment\n[live]\ndrain = \"5s\"\nbatch_size = 64\n",
    )
    .unwrap_err();
    let text = e.to_string();
    assert!(text.contains("unknown-key.toml:4:1"), "{text}");
    assert!(text.contains("`batch_size`"), "{text}");
    assert!(text.contains("[live]"), "{text}");
    assert!(
        text.contains("batch_datagrams"),
        "lists the valid keys: {text}"
    );
    assert!(!text.contains('\n'), "one line: {text}");

    let e = load_text("unknown-section.toml", "[flow]\nmax_flows = 1\n").unwrap_err();
    let text = e.to_string();
    assert!(text.contains("unknown-section.toml:1:2"), "{text}");
    assert!(text.contains("[flow]") && text.contains("flows"), "{text}");
}

#[test]
fn bad_values_in_the_file_name_the_key_and_its_position() {
    for (text, at, key, says) in [
        (
            "[live]\ndrain = \"10 parsecs\"\n",
            ":2:9",
            "live.drain",
            "invalid duration",
        ),
        (
            "[live]\ndrain = 10\n",
            ":2:9",
            "live.drain",
            "expected a duration",
        ),
        (
            "[health]\nlisten = \"8080\"\n",
            ":2:10",
            "health.listen",
            "invalid address",
        ),
        (
            "[live]\nlisten_vxlan = [\"0.0.0.0:4789\", \"::4789\"]\n",
            ":2:33",
            "live.listen_vxlan",
            "invalid address",
        ),
        (
            "[flows]\nmax_flows = \"many\"\n",
            ":2:13",
            "flows.max_flows",
            "invalid type",
        ),
        (
            "[decap]\nvxlan_ports = [70000]\n",
            ":2:16",
            "decap.vxlan_ports",
            "u16",
        ),
        (
            "\n[live]\nbatch_datagrams = 16\n",
            ":3:1",
            "live.batch_datagrams",
            "minimum 32",
        ),
        (
            "[live]\nbuffer_bytes = 1500\n",
            ":2:1",
            "live.buffer_bytes",
            "minimum 9216",
        ),
        (
            "[live]\nrx_threads = 0\n",
            ":2:1",
            "live.rx_threads",
            "minimum 1",
        ),
        (
            "[live]\nworkers = 5000\n",
            ":2:1",
            "live.workers",
            "maximum 1024",
        ),
        (
            "[live]\nreorder_window = \"2s\"\n",
            ":2:1",
            "live.reorder_window",
            "longer than the maximum 1s",
        ),
        (
            "[live]\nreorder_max_batches = 0\n",
            ":2:1",
            "live.reorder_max_batches",
            "minimum 1",
        ),
        (
            "[decap]\nmax_depth = 9\n",
            ":2:1",
            "decap.max_depth",
            "maximum 8",
        ),
        (
            "[flows]\nmax_flows = 0\n",
            ":2:1",
            "flows.max_flows",
            "minimum 1",
        ),
        (
            "[flows]\nudp_timeout = \"0s\"\n",
            ":2:1",
            "flows.udp_timeout",
            "longer than 0s",
        ),
        (
            "[health]\nmax_drop_ratio = 1.5\n",
            ":2:1",
            "health.max_drop_ratio",
            "between 0 and 1",
        ),
        (
            "[decap]\ngeneve_ports = [0]\n",
            ":2:1",
            "decap.geneve_ports",
            "port 0",
        ),
        (
            "[health]\nlisten = \"0.0.0.0:0\"\n",
            ":2:1",
            "health.listen",
            "port 0",
        ),
        (
            "[output]\njson = \"/var/log/r.json\"\nkeep_files = 0\n",
            ":3:1",
            "output.keep_files",
            "minimum 1",
        ),
    ] {
        let e = load_text("bad-value.toml", text).unwrap_err();
        let msg = e.to_string();
        assert_eq!(e.key.as_deref(), Some(key), "{msg}");
        let location = e.location.clone().unwrap_or_default();
        assert!(location.ends_with(&format!("bad-value.toml{at}")), "{msg}");
        assert!(msg.contains(says), "{msg}");
        assert!(!msg.contains('\n'), "one line: {msg}");
    }
}

#[test]
fn keep_files_may_be_zero_when_not_rotating() {
    let cfg = load_text("stdout.toml", "[output]\nkeep_files = 0\n").unwrap();
    assert_eq!(cfg.output.keep_files, 0);
}

#[test]
fn syntax_errors_have_a_position() {
    let e = load_text("syntax.toml", "[live]\ndrain = \"5s\ndrain = 3\n").unwrap_err();
    assert!(
        e.location
            .as_deref()
            .unwrap_or("")
            .contains("syntax.toml:2:"),
        "{e}"
    );
}

#[test]
fn conflicting_addresses_are_refused() {
    let e =
        SensorConfig::from_sources(None, &[], &flags(&["--health", "0.0.0.0:4789"])).unwrap_err();
    assert_eq!(e.key.as_deref(), Some("health.tcp_listen"), "{e}");
    let e = load(None, &[("SENSOR_LIVE_LISTEN_GENEVE", "0.0.0.0:4789")]).unwrap_err();
    assert_eq!(e.key.as_deref(), Some("live.listen_geneve"), "{e}");
    // IPv4 and IPv6 wildcards on one port are two sockets (IPV6_V6ONLY).
    load(
        None,
        &[("SENSOR_LIVE_LISTEN_VXLAN", "0.0.0.0:4789,[::]:4789")],
    )
    .unwrap();
    let e = load(
        None,
        &[
            ("SENSOR_LIVE_LISTEN_VXLAN", ""),
            ("SENSOR_LIVE_LISTEN_GENEVE", ""),
        ],
    )
    .unwrap_err();
    assert!(e.to_string().contains("nothing would be received"), "{e}");
}

#[test]
fn check_config_output_loads_back_to_the_same_configuration() {
    let path = file(
        "roundtrip.toml",
        r#"
[decap]
vxlan_ports = [4789]
max_depth = 3
[flows]
tcp_timeout = "1h 30m"
duplicate_window = "0s"
sweep_interval = "250ms"
[community_id]
seed = 7
base64 = false
[live]
listen_vxlan = ["0.0.0.0:4789", "[::]:4789"]
listen_geneve = []
rx_threads = 3
drain = "1m 500ms"
[health]
listen = "[::1]:9000"
max_drop_ratio = 0.125
[output]
json = "/var/log/sensor/records.json"
rotate_bytes = 1000
"#,
    );
    let vars = env(&[("SENSOR_LIVE_WORKERS", "6")]);
    let cfg = SensorConfig::from_sources(Some(&path), &vars, &RunArgs::default()).unwrap();
    assert_eq!(cfg.live.workers, 6);
    let rendered = cfg.to_toml().unwrap();
    let again = load_text("rendered.toml", &rendered).unwrap();
    assert_eq!(again, cfg, "{rendered}");
    assert_eq!(again.to_toml().unwrap(), rendered);

    let out = check_config(&CheckConfigArgs { file: path }).unwrap();
    assert!(
        out.contains("[live]") && out.contains("listen_vxlan"),
        "{out}"
    );
}

#[test]
fn example_file_loads_to_the_defaults_and_mentions_every_key() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/sensor.toml");
    let cfg = load(Some(&path), &[]).unwrap();
    assert_eq!(cfg, SensorConfig::default());
    let text = std::fs::read_to_string(&path).unwrap();
    let defaults = toml::Table::try_from(SensorConfig::default()).unwrap();
    for (section, keys) in &defaults {
        assert!(text.contains(&format!("\n[{section}]\n")), "[{section}]");
        for key in keys.as_table().unwrap().keys() {
            let set = format!("\n{key} = ");
            let commented = format!("\n# {key} = ");
            assert!(
                text.contains(&set) || text.contains(&commented),
                "{section}.{key} is not in the example"
            );
        }
    }
}

#[test]
fn nucleus_flags_set_the_section_and_turn_default_json_off() {
    let args = flags(&[
        "--nucleus",
        "127.0.0.1:7443",
        "--nucleus-ca",
        "/etc/ca.pem",
        "--spool",
        "/var/spool/s",
    ]);
    let cfg = SensorConfig::from_sources(None, &[], &args).unwrap();
    assert_eq!(cfg.nucleus.address, "127.0.0.1:7443");
    assert_eq!(cfg.nucleus.ca, "/etc/ca.pem");
    assert_eq!(cfg.nucleus.spool, "/var/spool/s");
    assert_eq!(cfg.output.json, "", "no JSON unless asked for");
    // JSON asked for anywhere stays on.
    let mut with_json = args.clone();
    with_json.json = Some("/tmp/r.json".into());
    let cfg = SensorConfig::from_sources(None, &[], &with_json).unwrap();
    assert_eq!(cfg.output.json, "/tmp/r.json");
    let vars = env(&[("SENSOR_OUTPUT_JSON", "-")]);
    let cfg = SensorConfig::from_sources(None, &vars, &args).unwrap();
    assert_eq!(cfg.output.json, "-");
}

#[test]
fn nucleus_flags_that_need_each_other_are_refused_together() {
    let parse = |list: &[&str]| {
        Cli::try_parse_from(std::iter::once("sensor").chain(list.iter().copied())).map(|_| ())
    };
    assert!(
        parse(&["--nucleus", "h:1"]).is_err(),
        "--nucleus needs --nucleus-ca"
    );
    assert!(parse(&["--nucleus", "h:1", "--nucleus-ca", "c"]).is_ok());
    assert!(
        parse(&[
            "--nucleus",
            "h:1",
            "--nucleus-ca",
            "c",
            "--nucleus-cert",
            "x"
        ])
        .is_err()
    );
    assert!(
        parse(&[
            "--nucleus",
            "h:1",
            "--nucleus-ca",
            "c",
            "--nucleus-cert",
            "x",
            "--nucleus-key",
            "k"
        ])
        .is_ok()
    );
}

#[test]
fn nucleus_section_errors_name_the_key() {
    let e = load_text("n1.toml", "[nucleus]\naddress = \"10.0.0.1:7443\"\n").unwrap_err();
    assert_eq!(e.key.as_deref(), Some("nucleus.ca"), "{e}");
    let e = load_text("n2.toml", "[nucleus]\naddress = \"nohost\"\nca = \"c\"\n").unwrap_err();
    assert_eq!(e.key.as_deref(), Some("nucleus.address"), "{e}");
    let e = load_text("n3.toml", "[nucleus]\ncert = \"c.pem\"\n").unwrap_err();
    assert_eq!(e.key.as_deref(), Some("nucleus.key"), "{e}");
    let e = load_text("n4.toml", "[nucleus]\nfsync = \"sometimes\"\n").unwrap_err();
    assert_eq!(e.key.as_deref(), Some("nucleus.fsync"), "{e}");
    let e = load_text("n5.toml", "[output]\njson = \"\"\n").unwrap_err();
    assert_eq!(e.key.as_deref(), Some("output.json"), "{e}");
    assert!(e.message.contains("[nucleus] address"), "{e}");
    let ok = "[output]\njson = \"\"\n[nucleus]\naddress = \"[::1]:7443\"\nca = \"c\"\n";
    let cfg = load_text("n6.toml", ok).unwrap();
    assert!(cfg.nucleus.enabled());
    let e = load(None, &[("SENSOR_NUCLEUS_BATCH_RECORDS", "0")]).unwrap_err();
    assert_eq!(e.key.as_deref(), Some("nucleus.batch_records"), "{e}");
}
