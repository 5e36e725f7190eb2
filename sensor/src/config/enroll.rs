//! The `[enroll]` section: which instances the sensor enrolls in traffic
//! mirroring, toward which target, through which filter, and how it talks
//! to AWS.
//!
//! Owns: the keys of the section, their defaults and their checks. Does
//! not: call AWS (the `enroll` module does).
//!
//! Scope: an instance is in scope when it is in one of `vpc_ids` (empty:
//! any VPC) AND in one of `subnet_ids` (empty: any subnet) AND carries every
//! tag of `tags` AND, when `tags_any` is not empty, at least one tag of
//! `tags_any`. A tag value `"*"` matches any value of that key.

use super::forms;
use super::validate::Invalid;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// Enrollment modes.
pub const MODES: &[&str] = &["existing", "launches", "guardduty", "cleanup"];

/// How sessions get their VXLAN VNI.
pub const VNI_POLICIES: &[&str] = &["aws", "fixed"];

/// Largest `enrich_max_entries` (an entry is a few hundred bytes).
const MAX_ENRICH_ENTRIES: u64 = 10_000_000;
/// Most `enrich_tags` (AWS allows 50 tags per resource).
const MAX_ENRICH_TAGS: usize = 50;

/// Enrollment of instances in traffic mirroring.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EnrollConfig {
    /// Run the reconcile loop in `sensor run` (the `sensor enroll` commands
    /// work either way).
    pub enabled: bool,
    /// AWS region (`""`: this instance's region, from IMDS).
    pub region: String,
    /// EC2 and SQS endpoint URL (`""`: the regional AWS endpoints). Tests
    /// point it at an emulator; plain `http://` is accepted here only.
    pub endpoint: String,
    /// Instance metadata service (IMDSv2) for credentials, region and this
    /// instance's interface.
    pub imds_endpoint: String,
    /// VPCs in scope (empty: all).
    pub vpc_ids: Vec<String>,
    /// Subnets in scope (empty: all).
    pub subnet_ids: Vec<String>,
    /// Tags an instance must all carry (AND); `"*"` matches any value.
    pub tags: BTreeMap<String, String>,
    /// Tags of which an instance must carry at least one (OR), when not empty.
    pub tags_any: BTreeMap<String, String>,
    /// Tags that keep an instance out whatever else says (also out of
    /// GuardDuty-driven enrollment): the sensors themselves, whose traffic
    /// is mirrored traffic and must never be mirrored back to them.
    pub tags_exclude: BTreeMap<String, String>,
    /// Mirror every attached interface, not only the primary (device index 0).
    pub all_enis: bool,
    /// Existing traffic mirror target id; when empty the sensor
    /// creates one from `target_nlb_arn`, `target_gwlb_endpoint_id` or
    /// `target_this_eni` (exactly one) and reuses it.
    pub target_id: String,
    /// Network Load Balancer in front of the sensors.
    pub target_nlb_arn: String,
    /// Gateway Load Balancer endpoint (`vpce-…`).
    pub target_gwlb_endpoint_id: String,
    /// This instance's primary interface as the target (10 sources at most).
    pub target_this_eni: bool,
    /// Existing traffic mirror filter id; when empty the sensor
    /// creates an accept-all filter and reuses it.
    pub filter_id: String,
    /// The created filter also mirrors traffic to the Amazon DNS resolver.
    pub filter_amazon_dns: bool,
    /// Session number, 1-32766 (lower wins where sessions overlap); when the
    /// interface already has a session with it, the next free one above.
    pub session_number: u32,
    /// Bytes mirrored per packet, 1-8947 (0: whole packets).
    pub packet_length: u32,
    /// `aws` (AWS picks a VNI per session) or `fixed` (every session `vni`).
    pub vni_policy: String,
    /// The VNI of `vni_policy = "fixed"`, 0-16777215.
    pub vni: u32,
    /// Tag key marking what the sensor owns; it never changes anything
    /// without it.
    pub owner_tag_key: String,
    /// Value of the ownership tag; every sensor of one fleet uses the same.
    pub owner_tag_value: String,
    /// What runs: `existing` (backfill), `launches` and `guardduty` (queue
    /// events), `cleanup` (delete owned sessions no longer wanted).
    pub modes: Vec<String>,
    /// Plan and log, change nothing.
    pub dry_run: bool,
    /// SQS queue of EventBridge events (`""`: no event consumer).
    pub queue_url: String,
    /// Full reconcile pass interval in `sensor run`.
    #[serde(with = "forms::duration")]
    pub interval: Duration,
    /// AWS calls started per second at most.
    pub max_calls_per_second: u32,
    /// Items asked per page of a listing (5-1000).
    pub page_size: u32,
    /// Tries of one call on throttling or server errors, the first included.
    pub max_attempts: u32,
    /// First backoff; doubles per retry (jittered, at most 20 s).
    #[serde(with = "forms::duration")]
    pub backoff_base: Duration,
    /// One HTTP exchange with AWS ends after this long.
    #[serde(with = "forms::duration")]
    pub request_timeout: Duration,
    /// An interface AWS refused is tried again after this long.
    #[serde(with = "forms::duration")]
    pub refused_retry: Duration,
    /// Where refused interfaces are remembered across runs (`""`: memory only).
    pub state_file: String,
    /// Tag keys of an instance copied into the `vantage` of its flow
    /// records (when `sensor run` enrolls).
    pub enrich_tags: Vec<String>,
    /// Most entries of the inventory that enriches flow records (an
    /// interface's address, and its address with each session's VNI);
    /// interfaces past it are left out and counted. 0: no enrichment.
    pub enrich_max_entries: usize,
}

impl Default for EnrollConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            region: String::new(),
            endpoint: String::new(),
            imds_endpoint: "http://169.254.169.254".to_string(),
            vpc_ids: Vec::new(),
            subnet_ids: Vec::new(),
            tags: BTreeMap::new(),
            tags_any: BTreeMap::new(),
            tags_exclude: BTreeMap::from([(
                "mirror-sensor:role".to_string(),
                "sensor".to_string(),
            )]),
            all_enis: false,
            target_id: String::new(),
            target_nlb_arn: String::new(),
            target_gwlb_endpoint_id: String::new(),
            target_this_eni: false,
            filter_id: String::new(),
            filter_amazon_dns: true,
            session_number: 1,
            packet_length: 0,
            vni_policy: "aws".to_string(),
            vni: 0,
            owner_tag_key: "mirror-sensor:owner".to_string(),
            owner_tag_value: "mirror-sensor".to_string(),
            modes: vec!["existing".into(), "launches".into(), "cleanup".into()],
            dry_run: false,
            queue_url: String::new(),
            interval: Duration::from_secs(300),
            max_calls_per_second: 10,
            page_size: 1000,
            max_attempts: 6,
            backoff_base: Duration::from_millis(200),
            request_timeout: Duration::from_secs(30),
            refused_retry: Duration::from_secs(6 * 3600),
            state_file: String::new(),
            enrich_tags: vec!["Name".to_string()],
            enrich_max_entries: 262_144,
        }
    }
}

type Check = Result<(), Invalid>;

fn fail(key: &'static str, message: String) -> Check {
    Err(Invalid {
        section: "enroll",
        key,
        message,
    })
}

fn within(key: &'static str, v: u64, min: u64, max: u64) -> Check {
    if v < min || v > max {
        return fail(key, format!("{v} is outside {min}-{max}"));
    }
    Ok(())
}

fn ids(key: &'static str, list: &[String], prefix: &str) -> Check {
    match list.iter().find(|id| !id.starts_with(prefix)) {
        Some(bad) => fail(
            key,
            format!("{bad:?} is not an id starting with {prefix:?}"),
        ),
        None => Ok(()),
    }
}

fn url(key: &'static str, value: &str) -> Check {
    if value.is_empty() || value.starts_with("https://") || value.starts_with("http://") {
        Ok(())
    } else {
        fail(key, format!("{value:?} is not an http:// or https:// URL"))
    }
}

impl EnrollConfig {
    /// Whether `mode` (one of [`MODES`]) is on.
    pub fn mode(&self, mode: &str) -> bool {
        self.modes.iter().any(|m| m == mode)
    }

    /// The first broken rule of the section.
    pub fn check(&self) -> Check {
        url("endpoint", &self.endpoint)?;
        url("imds_endpoint", &self.imds_endpoint)?;
        url("queue_url", &self.queue_url)?;
        ids("vpc_ids", &self.vpc_ids, "vpc-")?;
        ids("subnet_ids", &self.subnet_ids, "subnet-")?;
        let target_sources = [
            !self.target_id.is_empty(),
            !self.target_nlb_arn.is_empty(),
            !self.target_gwlb_endpoint_id.is_empty(),
            self.target_this_eni,
        ];
        if target_sources.iter().filter(|s| **s).count() > 1 {
            return fail(
                "target_id",
                "set only one of target_id, target_nlb_arn, target_gwlb_endpoint_id, \
                 target_this_eni"
                    .to_string(),
            );
        }
        within("session_number", self.session_number.into(), 1, 32766)?;
        within("packet_length", self.packet_length.into(), 0, 8947)?;
        if !VNI_POLICIES.contains(&self.vni_policy.as_str()) {
            let m = format!("{:?}: one of {}", self.vni_policy, VNI_POLICIES.join(", "));
            return fail("vni_policy", m);
        }
        within("vni", self.vni.into(), 0, 16_777_215)?;
        if self.owner_tag_key.is_empty() || self.owner_tag_key.starts_with("aws:") {
            return fail(
                "owner_tag_key",
                "must be a non-empty tag key not starting with aws:".to_string(),
            );
        }
        if let Some(m) = self.modes.iter().find(|m| !MODES.contains(&m.as_str())) {
            return fail(
                "modes",
                format!("unknown mode {m:?}; modes: {}", MODES.join(", ")),
            );
        }
        within(
            "max_calls_per_second",
            self.max_calls_per_second.into(),
            1,
            1000,
        )?;
        within("page_size", self.page_size.into(), 5, 1000)?;
        within("max_attempts", self.max_attempts.into(), 1, 20)?;
        within(
            "enrich_max_entries",
            self.enrich_max_entries as u64,
            0,
            MAX_ENRICH_ENTRIES,
        )?;
        if let Some(bad) = self
            .enrich_tags
            .iter()
            .find(|k| k.is_empty() || k.len() > 128)
        {
            return fail(
                "enrich_tags",
                format!("{bad:?} is not a tag key (1-128 characters)"),
            );
        }
        if self.enrich_tags.len() > MAX_ENRICH_TAGS {
            let m = format!("{} keys; at most {MAX_ENRICH_TAGS}", self.enrich_tags.len());
            return fail("enrich_tags", m);
        }
        let day = Duration::from_secs(86_400);
        for (key, d, min) in [
            ("interval", self.interval, Duration::from_secs(1)),
            ("backoff_base", self.backoff_base, Duration::from_millis(1)),
            (
                "request_timeout",
                self.request_timeout,
                Duration::from_secs(1),
            ),
            ("refused_retry", self.refused_retry, Duration::from_secs(1)),
        ] {
            if d < min || d > day * 7 {
                let shown = forms::format_duration(d);
                return fail(key, format!("{shown} is outside {min:?} to 7 days"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{RunArgs, SensorConfig};

    fn load(text: &str, env: &[(&str, &str)]) -> Result<SensorConfig, String> {
        let dir = std::env::temp_dir().join(format!(
            "enroll-config-{}-{:x}",
            std::process::id(),
            text.len() * 31 + env.len()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("sensor.toml");
        std::fs::write(&path, text).unwrap();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let r = SensorConfig::from_sources(Some(&path), &env, &RunArgs::default())
            .map_err(|e| e.to_string());
        std::fs::remove_dir_all(&dir).unwrap();
        r
    }

    #[test]
    fn reads_scope_tables_and_lists() {
        let cfg = load(
            "[enroll]\nregion = \"eu-west-1\"\nvpc_ids = [\"vpc-1\"]\n\
             tags = { env = \"prod\", team = \"*\" }\n[enroll.tags_any]\nweb = \"1\"\n",
            &[("SENSOR_ENROLL_SUBNET_IDS", "subnet-1,subnet-2")],
        )
        .unwrap();
        let e = &cfg.enroll;
        assert_eq!(e.region, "eu-west-1");
        assert_eq!(e.tags.len(), 2);
        assert_eq!(e.tags_any["web"], "1");
        assert_eq!(e.subnet_ids, ["subnet-1", "subnet-2"]);
        assert_eq!(e.enrich_tags, ["Name"]);
        // The effective configuration renders and loads back the same.
        let again = load(&cfg.to_toml().unwrap(), &[]).unwrap();
        assert_eq!(again.enroll, cfg.enroll);
    }

    #[test]
    fn scope_tables_come_from_the_environment_as_key_value_pairs() {
        let cfg = load(
            "[enroll]\nregion = \"eu-west-1\"\ntags = { env = \"dev\" }\n",
            &[("SENSOR_ENROLL_TAGS", "env=prod, team = * ,")],
        )
        .unwrap();
        let tags: Vec<(&str, &str)> = cfg
            .enroll
            .tags
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(tags, [("env", "prod"), ("team", "*")]);
        let e = load("", &[("SENSOR_ENROLL_TAGS", "env")]).unwrap_err();
        assert!(
            e.contains("SENSOR_ENROLL_TAGS") && e.contains("is not key=value"),
            "{e}"
        );
    }

    #[test]
    fn refuses_bad_values_with_their_place() {
        let e = load("[enroll]\n\nmode = []\n", &[]).unwrap_err();
        assert!(e.contains(":3:1: unknown key `mode` in [enroll]"), "{e}");
        let e = load("[enroll]\nmodes = [\"backfill\"]\n", &[]).unwrap_err();
        assert!(
            e.contains(":2:1: enroll.modes: unknown mode \"backfill\""),
            "{e}"
        );
        let e = load("[enroll]\nvpc_ids = [\"subnet-1\"]\n", &[]).unwrap_err();
        assert!(e.contains("enroll.vpc_ids"), "{e}");
        let e = load(
            "[enroll]\ntarget_id = \"tmt-1\"\ntarget_this_eni = true\n",
            &[],
        )
        .unwrap_err();
        assert!(e.contains("set only one of"), "{e}");
        let e = load("[enroll]\npage_size = 2\n", &[]).unwrap_err();
        assert!(e.contains("enroll.page_size: 2 is outside 5-1000"), "{e}");
        let e = load("[enroll]\nendpoint = \"localhost:5000\"\n", &[]).unwrap_err();
        assert!(e.contains("enroll.endpoint"), "{e}");
        let e = load("[enroll]\nenrich_tags = [\"Name\", \"\"]\n", &[]).unwrap_err();
        assert!(e.contains(":2:1: enroll.enrich_tags"), "{e}");
        let e = load("[enroll]\nenrich_max_entries = 20000000\n", &[]).unwrap_err();
        assert!(e.contains("enroll.enrich_max_entries"), "{e}");
    }
}
