//! Users deploy the sensors with the CloudFormation stacks of
//! `deploy/cloudformation` and rely on them being accepted by AWS's own
//! linter, on the enrollment permissions being the one documented policy
//! (`deploy/iam/enroll-policy.json`), on the load balancer's settings
//! matching the sensor's (readiness path and port, deregistration delay =
//! drain period, within the unit's stop timeout), and on the user data the
//! instances get being a configuration the sensor accepts at boot.

// Test code: a failed expectation must stop the test with its message.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::Value;

use sensor_tests::boot_config::BootConfig;
use sensor_tests::cfn::{self, Stack};
use sensor_tests::workspace_root;

fn stack_path(name: &str) -> PathBuf {
    workspace_root().join("deploy/cloudformation").join(name)
}

const STACKS: [&str; 2] = ["nlb.yaml", "gwlb.yaml"];

#[test]
fn cfn_lint_accepts_both_stacks_without_errors_or_warnings() {
    let paths: Vec<PathBuf> = STACKS.iter().map(|s| stack_path(s)).collect();
    let refs: Vec<&std::path::Path> = paths.iter().map(PathBuf::as_path).collect();
    let (ok, output) = cfn::lint(&refs);
    assert!(
        ok && output.trim().is_empty(),
        "cfn-lint found problems:\n{output}"
    );
}

/// The statements of a policy as (Sid, sorted actions, condition keys).
fn statements(policy: &Value) -> Vec<(String, Vec<String>, Vec<String>)> {
    let list = policy["Statement"].as_array().expect("Statement list");
    list.iter()
        .map(|s| {
            let sid = s["Sid"]
                .as_str()
                .expect("every statement has a Sid")
                .to_string();
            assert_eq!(s["Effect"], "Allow", "{sid}: only Allow statements");
            let mut actions: Vec<String> = match &s["Action"] {
                Value::String(a) => vec![a.clone()],
                Value::Array(a) => a.iter().map(|v| v.as_str().unwrap().to_string()).collect(),
                other => panic!("{sid}: Action {other}"),
            };
            actions.sort();
            let mut conditions: Vec<String> = s["Condition"]
                .as_object()
                .map(|ops| {
                    ops.iter()
                        .flat_map(|(op, keys)| {
                            keys.as_object()
                                .unwrap()
                                .keys()
                                .map(move |k| format!("{op}:{k}"))
                        })
                        .collect()
                })
                .unwrap_or_default();
            conditions.sort();
            (sid, actions, conditions)
        })
        .collect()
}

fn policy_documents_in(template: &Value) -> Vec<(String, Value)> {
    let resources = template["Resources"].as_object().unwrap();
    resources
        .iter()
        .filter(|(_, r)| {
            matches!(
                r["Type"].as_str(),
                Some("AWS::IAM::ManagedPolicy" | "AWS::IAM::Policy")
            ) || r["Properties"]["Policies"].is_array()
        })
        .map(|(id, r)| (id.clone(), r["Properties"]["PolicyDocument"].clone()))
        .collect()
}

#[test]
fn each_stack_grants_enrollment_exactly_the_documented_policy_in_one_place() {
    let file = workspace_root().join("deploy/iam/enroll-policy.json");
    let documented: Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).expect("policy JSON");
    let expected = statements(&documented);
    for name in STACKS {
        let template = cfn::load(&stack_path(name));
        let policies = policy_documents_in(&template);
        assert_eq!(
            policies.len(),
            1,
            "{name}: the enrollment permissions live in one policy, found {policies:?}"
        );
        let (id, document) = &policies[0];
        assert_eq!(
            statements(document),
            expected,
            "{name}: {id} differs from deploy/iam/enroll-policy.json"
        );
        // The role of the instances carries that policy and nothing else.
        let stack = Stack::new(&template, &[]);
        let role = stack.render(&stack.resource("SensorRole")["Properties"]);
        assert_eq!(
            role["ManagedPolicyArns"],
            serde_json::json!([format!("{id}-id")]),
            "{name}"
        );
        assert!(role.get("Policies").is_none(), "{name}: no inline policies");
    }
    // Deleting and changing is only ever allowed on what the sensors own,
    // creating only with the ownership tag.
    let by_sid = |sid: &str| expected.iter().find(|s| s.0 == sid).unwrap().2.clone();
    assert_eq!(
        by_sid("ChangeOwned"),
        ["StringEquals:aws:ResourceTag/mirror-sensor:owner"]
    );
    assert_eq!(
        by_sid("CreateOwned"),
        ["StringEquals:aws:RequestTag/mirror-sensor:owner"]
    );
    let actions: BTreeSet<&str> = expected
        .iter()
        .flat_map(|s| s.1.iter().map(String::as_str))
        .collect();
    for action in &actions {
        assert!(
            action.starts_with("ec2:") || action.starts_with("sqs:"),
            "only EC2 and SQS calls: {action}"
        );
    }
}

/// `drain = "..."` of `[live]` in a configuration file, in seconds.
fn drain_seconds_of(toml_text: &str) -> u64 {
    let table: toml::Table = toml::from_str(toml_text).expect("TOML");
    let drain = table["live"]["drain"].as_str().expect("live.drain is set");
    drain
        .strip_suffix('s')
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("drain {drain} is not whole seconds"))
}

fn timeout_stop_seconds() -> u64 {
    let unit =
        std::fs::read_to_string(workspace_root().join("deploy/systemd/mirror-sensor.service"))
            .unwrap();
    let value = unit
        .lines()
        .find_map(|l| l.strip_prefix("TimeoutStopSec="))
        .expect("the unit sets TimeoutStopSec");
    value
        .trim_end_matches('s')
        .parse()
        .expect("TimeoutStopSec in seconds")
}

#[test]
fn load_balancer_settings_match_the_sensor() {
    let packaged = std::fs::read_to_string(sensor_tests::boot_config::packaged_config()).unwrap();
    let packaged_drain = drain_seconds_of(&packaged);
    let packaged_table: toml::Table = toml::from_str(&packaged).unwrap();
    let health_port: u16 = packaged_table["health"]["listen"]
        .as_str()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let stop_timeout = timeout_stop_seconds();
    for (name, protocol, port) in [("nlb.yaml", "UDP", 4789), ("gwlb.yaml", "GENEVE", 6081)] {
        let template = cfn::load(&stack_path(name));
        let parameters = &template["Parameters"];
        assert_eq!(
            parameters["DrainSeconds"]["Default"].as_u64(),
            Some(packaged_drain),
            "{name}: DrainSeconds defaults to the AMI's live.drain"
        );
        let max_drain = parameters["DrainSeconds"]["MaxValue"].as_u64().unwrap();
        assert!(
            max_drain < stop_timeout,
            "{name}: the longest drain ({max_drain} s) must end before systemd kills the sensor ({stop_timeout} s)"
        );
        assert_eq!(
            parameters["HealthPort"]["Default"].as_u64(),
            Some(u64::from(health_port))
        );

        let stack = Stack::new(&template, &[("DrainSeconds", "45"), ("HealthPort", "9090")]);
        let group = stack.render(&stack.resource("TargetGroup")["Properties"]);
        assert_eq!(group["Protocol"], protocol, "{name}");
        assert_eq!(group["Port"].as_u64(), Some(port), "{name}");
        assert_eq!(group["HealthCheckProtocol"], "HTTP", "{name}");
        assert_eq!(group["HealthCheckPath"], "/readyz", "{name}");
        assert_eq!(group["HealthCheckPort"], "9090", "{name}");
        assert_eq!(group["Matcher"]["HttpCode"], "200", "{name}");
        let attribute = |key: &str| {
            group["TargetGroupAttributes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["Key"] == key)
                .map(|a| a["Value"].clone())
        };
        assert_eq!(
            attribute("deregistration_delay.timeout_seconds"),
            Some(Value::String("45".into())),
            "{name}: deregistration delay = drain"
        );
        assert_eq!(attribute("stickiness.enabled"), Some("true".into()));
        let balancer = stack.render(&stack.resource("LoadBalancer")["Properties"]);
        assert!(
            balancer["LoadBalancerAttributes"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a["Key"] == "load_balancing.cross_zone.enabled" && a["Value"] == "true"),
            "{name}: cross-zone load balancing"
        );

        // The same drain and port reach the sensor through the user data.
        let user_data = rendered_user_data(&stack);
        assert!(user_data.contains("SENSOR_LIVE_DRAIN=45s\n"), "{user_data}");
        assert!(
            user_data.contains("SENSOR_HEALTH_LISTEN=0.0.0.0:9090\n"),
            "{user_data}"
        );
    }
}

fn rendered_user_data(stack: &Stack<'_>) -> String {
    let template = stack.resource("LaunchTemplate");
    stack.render_string(&template["Properties"]["LaunchTemplateData"]["UserData"])
}

#[test]
fn the_stacks_user_data_configures_the_sensor_at_boot() {
    for name in STACKS {
        let template = cfn::load(&stack_path(name));
        let stack = Stack::new(&template, &[("DrainSeconds", "30"), ("HealthPort", "8081")]);
        let user_data = rendered_user_data(&stack);
        let boot = BootConfig::run(Some(user_data.as_bytes()));
        assert!(boot.success, "{name}: boot step failed:\n{}", boot.log);
        let (ok, effective) = boot.effective_config();
        assert!(ok, "{name}: {effective}");
        assert!(effective.contains("drain = \"30s\""), "{effective}");
        assert!(
            effective.contains("listen = \"0.0.0.0:8081\""),
            "{effective}"
        );
        assert_eq!(
            boot.environment().get("SENSOR_ARGS").map(String::as_str),
            Some(""),
            "{name}: no Nucleus asked for, no extra flags"
        );
    }
}

/// A section the sensor's effective configuration has.
fn sensor_has_section(section: &str) -> bool {
    let output = std::process::Command::new(sensor_tests::sensor::sensor_bin())
        .args(["check-config", "/dev/null"])
        .output()
        .expect("run sensor check-config");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .any(|l| l.trim() == format!("[{section}]"))
}

#[test]
fn enrollment_settings_reach_the_sensor_or_refuse_to_boot_without_enrollment() {
    let template = cfn::load(&stack_path("nlb.yaml"));
    let stack = Stack::new(
        &template,
        &[
            ("EnrollmentEnabled", "true"),
            ("EnrollVpcIds", "vpc-0a1b2c3d,vpc-4e5f6a7b"),
            ("EnrollSubnetIds", ""),
            ("SessionNumber", "7"),
        ],
    );
    let user_data = rendered_user_data(&stack);
    for line in [
        "SENSOR_ENROLL_ENABLED=true".to_string(),
        // The policy lets the sensors delete only what carries this value.
        format!("SENSOR_ENROLL_OWNER_TAG_VALUE={}", cfn::STACK_NAME),
        format!("SENSOR_ENROLL_REGION={}", cfn::REGION),
        "SENSOR_ENROLL_TARGET_ID=MirrorTarget-id".to_string(),
        "SENSOR_ENROLL_FILTER_ID=MirrorFilter-id".to_string(),
        "SENSOR_ENROLL_SESSION_NUMBER=7".to_string(),
        format!(
            "SENSOR_ENROLL_QUEUE_URL=https://sqs.{}.amazonaws.com/{}/EventQueue-id",
            cfn::REGION,
            cfn::ACCOUNT_ID
        ),
        "SENSOR_ENROLL_VPC_IDS=vpc-0a1b2c3d,vpc-4e5f6a7b".to_string(),
    ] {
        assert!(
            user_data.lines().any(|l| l == line),
            "{line} in:\n{user_data}"
        );
    }
    assert!(
        !user_data.contains("SENSOR_ENROLL_SUBNET_IDS"),
        "an empty scope list is left out:\n{user_data}"
    );
    let boot = BootConfig::run(Some(user_data.as_bytes()));
    if sensor_has_section("enroll") {
        assert!(boot.success, "{}", boot.log);
        assert!(boot.effective_config().0);
    } else {
        // A sensor without enrollment would ignore SENSOR_ENROLL_*: the
        // instance must not come up pretending to enroll.
        assert!(!boot.success, "{}", boot.log);
        assert!(
            boot.log.contains("SENSOR_ENROLL_") && boot.log.contains("does not have"),
            "{}",
            boot.log
        );
        assert!(boot.file("sensor.toml").is_none());
    }
}

#[test]
fn the_event_queue_takes_only_this_stacks_rules_and_the_sensors_read_it() {
    for name in STACKS {
        let template = cfn::load(&stack_path(name));
        let stack = Stack::new(&template, &[]);
        let policy = stack.render(&stack.resource("EventQueuePolicy")["Properties"]);
        let statement = &policy["PolicyDocument"]["Statement"][0];
        assert_eq!(statement["Principal"]["Service"], "events.amazonaws.com");
        assert_eq!(statement["Action"], "sqs:SendMessage");
        assert_eq!(
            statement["Condition"]["ArnEquals"]["aws:SourceArn"],
            serde_json::json!(["InstanceStateRule.Arn", "GuardDutyFindingRule.Arn"])
        );
        for (rule, detail_type) in [
            (
                "InstanceStateRule",
                "EC2 Instance State-change Notification",
            ),
            ("GuardDutyFindingRule", "GuardDuty Finding"),
        ] {
            let r = stack.render(&stack.resource(rule)["Properties"]);
            assert_eq!(
                r["EventPattern"]["detail-type"],
                serde_json::json!([detail_type])
            );
            assert_eq!(r["Targets"][0]["Arn"], "EventQueue.Arn", "{name} {rule}");
        }
    }
}
