//! `sensor enroll` against moto (an EC2 emulator the project did not write),
//! through a fault-injecting proxy for what moto cannot do (see
//! `sensor_tests::aws_proxy`). The emulator is set up and inspected with
//! boto3, never with the sensor's own client.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use sensor_tests::aws_proxy::{FakeImds, Fault, FaultProxy};
use sensor_tests::moto::{MotoServer, enroll};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

const OWNER_KEY: &str = "mirror-sensor:owner";
const NLB: &str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/net/sensors/1";

fn call(service: &str, method: &str, args: Value) -> Value {
    json!({"service": service, "method": method, "args": args})
}

fn tag_spec(tags: &[(&str, &str)]) -> Value {
    let tags: Vec<Value> = tags
        .iter()
        .map(|(k, v)| json!({"Key": k, "Value": v}))
        .collect();
    json!([{"ResourceType": "instance", "Tags": tags}])
}

/// moto behind the proxy, with a VPC layout and a foreign target and filter.
struct World {
    moto: MotoServer,
    proxy: FaultProxy,
    vpcs: Vec<String>,
    subnets: Vec<(String, String)>,
    target: String,
    filter: String,
}

impl World {
    /// `vpcs` VPCs of two subnets each.
    fn new(vpcs: usize) -> Self {
        let moto = MotoServer::start();
        let proxy = FaultProxy::start(moto.addr);
        let created = moto.boto(&Value::Array(
            (0..vpcs)
                .map(|i| {
                    call(
                        "ec2",
                        "create_vpc",
                        json!({"CidrBlock": format!("10.{}.0.0/16", i + 1)}),
                    )
                })
                .chain([
                    call(
                        "ec2",
                        "create_traffic_mirror_target",
                        json!({"NetworkLoadBalancerArn": NLB}),
                    ),
                    call("ec2", "create_traffic_mirror_filter", json!({})),
                ])
                .collect(),
        ));
        let vpc_ids: Vec<String> = created[..vpcs]
            .iter()
            .map(|v| v["Vpc"]["VpcId"].as_str().unwrap().to_string())
            .collect();
        let target = created[vpcs]["TrafficMirrorTarget"]["TrafficMirrorTargetId"]
            .as_str()
            .unwrap()
            .to_string();
        let filter = created[vpcs + 1]["TrafficMirrorFilter"]["TrafficMirrorFilterId"]
            .as_str()
            .unwrap()
            .to_string();
        let subnet_calls: Vec<Value> = vpc_ids
            .iter()
            .enumerate()
            .flat_map(|(i, vpc)| {
                (0..2).map(move |s| {
                    let cidr = format!("10.{}.{}.0/24", i + 1, s + 1);
                    call(
                        "ec2",
                        "create_subnet",
                        json!({"VpcId": vpc, "CidrBlock": cidr}),
                    )
                })
            })
            .collect();
        let subnets = moto
            .boto(&Value::Array(subnet_calls))
            .iter()
            .map(|s| {
                let s = &s["Subnet"];
                (
                    s["VpcId"].as_str().unwrap().to_string(),
                    s["SubnetId"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        Self {
            moto,
            proxy,
            vpcs: vpc_ids,
            subnets,
            target,
            filter,
        }
    }

    /// Launches `count` instances in `subnet`, `per_reservation` per call.
    fn launch_calls(
        subnet: &str,
        count: usize,
        per_reservation: usize,
        tags: &[(&str, &str)],
    ) -> Vec<Value> {
        (0..count / per_reservation)
            .map(|_| {
                call(
                    "ec2",
                    "run_instances",
                    json!({"ImageId": "ami-12c6146b", "MinCount": per_reservation,
                           "MaxCount": per_reservation, "SubnetId": subnet,
                           "TagSpecifications": tag_spec(tags)}),
                )
            })
            .collect()
    }

    /// Launches `count` instances in the first subnet, `per_reservation`
    /// per call.
    fn launch(&self, count: usize, per_reservation: usize, tags: &[(&str, &str)]) {
        let subnet = &self.subnets[0].1;
        let calls = World::launch_calls(subnet, count, per_reservation, tags);
        self.moto.boto(&Value::Array(calls));
    }

    /// Every instance as moto describes it.
    fn instances(&self) -> Vec<Value> {
        let r = self.moto.boto(&json!([call(
            "ec2",
            "describe_instances",
            json!({"MaxResults": 1000})
        )]));
        r[0]["Reservations"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r["Instances"].as_array().unwrap().clone())
            .collect()
    }

    /// Every session as moto describes it.
    fn sessions(&self) -> Vec<Value> {
        let r = self.moto.boto(&json!([call(
            "ec2",
            "describe_traffic_mirror_sessions",
            json!({})
        )]));
        r[0]["TrafficMirrorSessions"].as_array().unwrap().clone()
    }

    /// A configuration file pointing at the proxy.
    fn config(&self, name: &str, extra: &str) -> PathBuf {
        let path = self.moto.dir().join(format!("{name}.toml"));
        let text = format!(
            "[enroll]\nregion = \"us-east-1\"\nendpoint = \"{}\"\nimds_endpoint = \"http://127.0.0.1:9\"\n\
             target_id = \"{}\"\nfilter_id = \"{}\"\nbackoff_base = \"10ms\"\n{extra}",
            self.proxy.endpoint, self.target, self.filter
        );
        // Fast unless the test bounds the rate itself.
        let text = if extra.contains("max_calls_per_second") {
            text
        } else {
            text + "max_calls_per_second = 200\n"
        };
        std::fs::write(&path, text).unwrap();
        path
    }
}

fn primary_eni(instance: &Value) -> String {
    instance["NetworkInterfaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["Attachment"]["DeviceIndex"] == 0)
        .and_then(|n| n["NetworkInterfaceId"].as_str())
        .unwrap()
        .to_string()
}

fn tag(instance: &Value, key: &str) -> Option<String> {
    instance["Tags"]
        .as_array()?
        .iter()
        .find(|t| t["Key"] == key)
        .and_then(|t| t["Value"].as_str())
        .map(str::to_string)
}

fn owned(session: &Value) -> bool {
    session["Tags"]
        .as_array()
        .is_some_and(|t| t.iter().any(|t| t["Key"] == OWNER_KEY))
}

/// Source interfaces of the owned sessions; fails on a duplicate.
fn owned_enis(sessions: &[Value]) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for s in sessions.iter().filter(|s| owned(s)) {
        let eni = s["NetworkInterfaceId"].as_str().unwrap().to_string();
        assert!(seen.insert(eni.clone()), "two owned sessions on {eni}");
    }
    seen
}

fn applied_nothing(stdout: &str) -> bool {
    stdout.contains(
        "applied: 0 created, 0 deleted, 0 targets/filters created, 0 deleted, 0 refused, 0 errors",
    )
}

#[test]
fn backfill_of_450_instances_pages_through_all_and_a_second_pass_changes_nothing() {
    let world = World::new(3);
    let tag_sets: [&[(&str, &str)]; 3] = [
        &[("env", "prod"), ("team", "a")],
        &[("env", "prod"), ("team", "b")],
        &[("env", "dev")],
    ];
    // 6 subnets x 3 tag sets x 25 instances, 5 per reservation: 90 reservations.
    let launches: Vec<Value> = world
        .subnets
        .iter()
        .flat_map(|(_, subnet)| {
            tag_sets
                .iter()
                .flat_map(move |tags| World::launch_calls(subnet, 25, 5, tags))
        })
        .collect();
    world.moto.boto(&Value::Array(launches));
    let all = world.instances();
    assert_eq!(all.len(), 450);

    // A secondary interface on one instance and five stopped instances in scope.
    let in_scope_vpcs = &world.vpcs[..2];
    let in_scope = |i: &Value| {
        in_scope_vpcs.iter().any(|v| i["VpcId"] == v.as_str())
            && tag(i, "env").as_deref() == Some("prod")
    };
    let scoped: Vec<&Value> = all.iter().filter(|i| in_scope(i)).collect();
    assert_eq!(scoped.len(), 200);
    let with_second = scoped[0];
    let stopped: Vec<&str> = scoped[1..6]
        .iter()
        .map(|i| i["InstanceId"].as_str().unwrap())
        .collect();
    let eni = world.moto.boto(&json!([call(
        "ec2",
        "create_network_interface",
        json!({"SubnetId": with_second["SubnetId"]})
    )]));
    let second_eni = eni[0]["NetworkInterface"]["NetworkInterfaceId"]
        .as_str()
        .unwrap()
        .to_string();
    world.moto.boto(&json!([
        call(
            "ec2",
            "attach_network_interface",
            json!({"NetworkInterfaceId": second_eni,
            "InstanceId": with_second["InstanceId"], "DeviceIndex": 1})
        ),
        call("ec2", "stop_instances", json!({"InstanceIds": stopped})),
    ]));

    let config = world.config(
        "backfill",
        &format!(
            "vpc_ids = [\"{}\", \"{}\"]\npage_size = 5\ntags = {{ env = \"prod\" }}\n",
            world.vpcs[0], world.vpcs[1]
        ),
    );
    let run = enroll("apply", &config, &[]);
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("applied: 195 created, 0 deleted"),
        "{}",
        run.stdout
    );

    let expected: BTreeSet<String> = scoped
        .iter()
        .filter(|i| !stopped.contains(&i["InstanceId"].as_str().unwrap()))
        .map(|i| primary_eni(i))
        .collect();
    let sessions = world.sessions();
    assert_eq!(owned_enis(&sessions), expected);
    assert!(!owned_enis(&sessions).contains(&second_eni));
    for s in &sessions {
        assert_eq!(s["TrafficMirrorTargetId"], world.target.as_str());
        assert_eq!(s["TrafficMirrorFilterId"], world.filter.as_str());
        assert_eq!(s["SessionNumber"], 1);
    }
    // 90 reservations at 5 per page: 18 pages, each after the first asked
    // with the token of the one before.
    let pages = world.proxy.calls("DescribeInstances");
    assert_eq!(pages.len(), 18);
    assert!(!pages[0].params.contains_key("NextToken"));
    assert!(
        pages[1..]
            .iter()
            .all(|p| p.params.contains_key("NextToken") && p.params["MaxResults"] == "5")
    );

    // A second pass finds nothing to do.
    let before: BTreeSet<String> = sessions
        .iter()
        .map(|s| s["TrafficMirrorSessionId"].to_string())
        .collect();
    world.proxy.clear_log();
    let again = enroll("apply", &config, &[]);
    assert_eq!(again.code, Some(0), "{}", again.stderr);
    assert!(applied_nothing(&again.stdout), "{}", again.stdout);
    assert!(world.proxy.calls("CreateTrafficMirrorSession").is_empty());
    let after: BTreeSet<String> = world
        .sessions()
        .iter()
        .map(|s| s["TrafficMirrorSessionId"].to_string())
        .collect();
    assert_eq!(before, after);
}

#[test]
fn two_sensors_interleaving_their_passes_create_each_session_once() {
    let world = World::new(1);
    world.launch(30, 5, &[("env", "prod")]);
    let config = world.config("fleet", "page_size = 5\n");
    // Neither sensor creates before both have listed everything.
    world.proxy.hold_creates_until_passes(2);
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| enroll("apply", &config, &[]));
        let b = s.spawn(|| enroll("apply", &config, &[]));
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_eq!(
        (a.code, b.code),
        (Some(0), Some(0)),
        "{}\n{}",
        a.stderr,
        b.stderr
    );
    // Both asked for all 30 sessions; the ClientToken made them one each.
    assert_eq!(world.proxy.calls("CreateTrafficMirrorSession").len(), 60);
    let tokens: BTreeSet<String> = world
        .proxy
        .calls("CreateTrafficMirrorSession")
        .iter()
        .map(|c| c.params["ClientToken"].clone())
        .collect();
    assert_eq!(tokens.len(), 30);
    let sessions = world.sessions();
    assert_eq!(sessions.len(), 30);
    assert_eq!(owned_enis(&sessions).len(), 30);
    // Interleaved again, now that everything exists: nothing changes.
    world.proxy.hold_creates_until_passes(0);
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| enroll("apply", &config, &[]));
        let b = s.spawn(|| enroll("apply", &config, &[]));
        (a.join().unwrap(), b.join().unwrap())
    });
    assert!(
        applied_nothing(&a.stdout) && applied_nothing(&b.stdout),
        "{}\n{}",
        a.stdout,
        b.stdout
    );
    assert_eq!(world.sessions().len(), 30);
}

#[test]
fn terminated_and_out_of_scope_instances_lose_their_session_and_foreign_ones_stay() {
    let world = World::new(1);
    world.launch(6, 3, &[("env", "prod")]);
    let instances = world.instances();
    let config = world.config("cleanup", "tags = { env = \"prod\" }\n");
    let first = enroll("apply", &config, &[]);
    assert!(
        first.stdout.contains("applied: 6 created"),
        "{}",
        first.stdout
    );

    let (gone, retagged, foreign_host) = (&instances[0], &instances[1], &instances[2]);
    let id = |i: &Value| i["InstanceId"].as_str().unwrap().to_string();
    // Sessions someone else made: on the instance leaving scope and on another.
    world.moto.boto(&json!([
        call("ec2", "create_traffic_mirror_session", json!({"NetworkInterfaceId": primary_eni(retagged),
            "TrafficMirrorTargetId": world.target, "TrafficMirrorFilterId": world.filter, "SessionNumber": 5})),
        call("ec2", "create_traffic_mirror_session", json!({"NetworkInterfaceId": primary_eni(foreign_host),
            "TrafficMirrorTargetId": world.target, "TrafficMirrorFilterId": world.filter, "SessionNumber": 6,
            "TagSpecifications": [{"ResourceType": "traffic-mirror-session", "Tags": [{"Key": "team", "Value": "netops"}]}]})),
        call("ec2", "terminate_instances", json!({"InstanceIds": [id(gone)]})),
        call("ec2", "create_tags", json!({"Resources": [id(retagged)], "Tags": [{"Key": "env", "Value": "dev"}]})),
    ]));
    let owned_session = |eni: &str| {
        world
            .sessions()
            .iter()
            .find(|s| owned(s) && s["NetworkInterfaceId"] == eni)
            .map(|s| s["TrafficMirrorSessionId"].as_str().unwrap().to_string())
    };
    let gone_session = owned_session(&primary_eni(gone)).unwrap();
    let retagged_session = owned_session(&primary_eni(retagged)).unwrap();

    let plan = enroll("plan", &config, &[]);
    assert_eq!(plan.code, Some(0), "{}", plan.stderr);
    let line = |needle: &str| {
        plan.stdout
            .lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle} not in the plan:\n{}", plan.stdout))
            .to_string()
    };
    assert!(
        line(&gone_session).starts_with("delete")
            && line(&gone_session).contains("source instance gone")
    );
    let r = line(&retagged_session);
    assert!(
        r.starts_with("delete") && r.contains("left scope") && r.contains("tag env=prod missing"),
        "{r}"
    );
    assert!(
        plan.stdout
            .contains("summary: 0 to create, 2 to delete, 0 skipped, 4 kept"),
        "{}",
        plan.stdout
    );
    assert_eq!(world.sessions().len(), 8, "plan changed something");

    // A dry run plans the same and changes nothing.
    let dry = world.config("dry", "tags = { env = \"prod\" }\ndry_run = true\n");
    world.proxy.clear_log();
    let dry_run = enroll("apply", &dry, &[]);
    assert!(
        dry_run.stdout.contains("dry run: nothing changed"),
        "{}",
        dry_run.stdout
    );
    assert!(dry_run.stdout.contains("2 to delete"), "{}", dry_run.stdout);
    assert!(world.proxy.calls("DeleteTrafficMirrorSession").is_empty());
    assert_eq!(world.sessions().len(), 8, "the dry run changed something");

    let apply = enroll("apply", &config, &[]);
    assert!(
        apply.stdout.contains("applied: 0 created, 2 deleted"),
        "{}",
        apply.stdout
    );
    let sessions = world.sessions();
    let ids: BTreeSet<&str> = sessions
        .iter()
        .map(|s| s["TrafficMirrorSessionId"].as_str().unwrap())
        .collect();
    assert!(!ids.contains(gone_session.as_str()) && !ids.contains(retagged_session.as_str()));
    assert_eq!(
        sessions.iter().filter(|s| !owned(s)).count(),
        2,
        "foreign sessions untouched"
    );
    assert_eq!(owned_enis(&sessions).len(), 4);
    let status = enroll("status", &config, &[]);
    assert!(
        status.stdout.contains(
            "owned sessions: 4 (tag mirror-sensor:owner=mirror-sensor; 6 sessions in the region)"
        ),
        "{}",
        status.stdout
    );
}

#[test]
fn throttling_is_retried_and_refused_interfaces_are_remembered_not_retried() {
    let world = World::new(1);
    world.launch(5, 5, &[("env", "prod")]);
    let instances = world.instances();
    let enis: Vec<String> = instances.iter().map(primary_eni).collect();
    // The third interface is full: three sessions of someone else's.
    let full: Vec<Value> = (1..=3)
        .map(|n| call("ec2", "create_traffic_mirror_session", json!({"NetworkInterfaceId": enis[2],
            "TrafficMirrorTargetId": world.target, "TrafficMirrorFilterId": world.filter, "SessionNumber": n})))
        .collect();
    world.moto.boto(&Value::Array(full));
    let fault = |action: &str, when: Option<(&str, &str)>, times, status, code: &str| Fault {
        action: action.into(),
        when: when.map(|(k, v)| (k.to_string(), v.to_string())),
        times,
        status,
        code: code.into(),
    };
    world.proxy.inject(fault(
        "DescribeInstances",
        None,
        3,
        503,
        "RequestLimitExceeded",
    ));
    world.proxy.inject(fault(
        "DescribeTrafficMirrorSessions",
        None,
        1,
        500,
        "InternalError",
    ));
    let eni = |i: usize| Some(("NetworkInterfaceId", enis[i].as_str()));
    world.proxy.inject(fault(
        "CreateTrafficMirrorSession",
        eni(0),
        99,
        400,
        "NetworkInterfaceNotSupported",
    ));
    world.proxy.inject(fault(
        "CreateTrafficMirrorSession",
        eni(1),
        99,
        400,
        "TrafficMirrorSessionLimitExceeded",
    ));
    world.proxy.inject(fault(
        "CreateTrafficMirrorSession",
        eni(3),
        2,
        503,
        "RequestLimitExceeded",
    ));
    let state = world.moto.dir().join("state.json");
    let config = world.config(
        "faults",
        &format!(
            "state_file = \"{}\"\nmax_calls_per_second = 20\n",
            state.display()
        ),
    );
    let run = enroll("apply", &config, &[]);
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("applied: 2 created, 0 deleted, 0 targets/filters created, 0 deleted, 2 refused, 0 errors"), "{}", run.stdout);
    assert!(run.stdout.contains(&format!(
        "refused: {}: NetworkInterfaceNotSupported",
        enis[0]
    )));
    assert!(
        run.stdout.contains("eni_session_limit: already 3 sessions"),
        "{}",
        run.stdout
    );
    // Throttled calls were repeated until they went through.
    let log = world.proxy.log();
    let statuses = |action: &str| -> Vec<u16> {
        log.iter()
            .filter(|l| l.action == action)
            .map(|l| l.status)
            .collect()
    };
    assert_eq!(statuses("DescribeInstances"), [503, 503, 503, 200]);
    assert_eq!(statuses("DescribeTrafficMirrorSessions"), [500, 200]);
    let creates_3: Vec<u16> = log
        .iter()
        .filter(|l| {
            l.action == "CreateTrafficMirrorSession" && l.params["NetworkInterfaceId"] == enis[3]
        })
        .map(|l| l.status)
        .collect();
    assert_eq!(creates_3, [503, 503, 200]);
    // At most max_calls_per_second calls started in any second.
    for (i, first) in log.iter().enumerate() {
        let within = log[i..]
            .iter()
            .filter(|l| l.at.duration_since(first.at) < Duration::from_secs(1))
            .count();
        assert!(within <= 22, "{within} calls within one second");
    }

    // The refusals are reported, and not asked again on the next pass.
    let status = enroll("status", &config, &[]);
    assert!(
        status.stdout.contains("refused interfaces: 3"),
        "{}",
        status.stdout
    );
    for (eni, code) in [
        (&enis[0], "NetworkInterfaceNotSupported"),
        (&enis[1], "TrafficMirrorSessionLimitExceeded"),
        (&enis[2], "eni_session_limit"),
    ] {
        assert!(
            status
                .stdout
                .lines()
                .any(|l| l.starts_with(eni.as_str()) && l.contains(code)),
            "{}",
            status.stdout
        );
    }
    world.proxy.clear_log();
    let again = enroll("apply", &config, &[]);
    assert!(applied_nothing(&again.stdout), "{}", again.stdout);
    assert!(world.proxy.calls("CreateTrafficMirrorSession").is_empty());
    assert!(
        again
            .stdout
            .contains("summary: 0 to create, 0 to delete, 3 skipped, 2 kept"),
        "{}",
        again.stdout
    );
}

#[test]
fn the_sensor_creates_its_target_and_filter_once_and_removes_them_when_unused() {
    let world = World::new(1);
    world.launch(2, 2, &[("app", "web")]);
    let path = world.moto.dir().join("own.toml");
    let write = |arn: &str| {
        std::fs::write(&path, format!(
            "[enroll]\nregion = \"us-east-1\"\nendpoint = \"{}\"\nimds_endpoint = \"http://127.0.0.1:9\"\n\
             target_nlb_arn = \"{arn}\"\nmax_calls_per_second = 200\n",
            world.proxy.endpoint)).unwrap();
    };
    let own_nlb = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/net/own/3";
    write(own_nlb);
    let plan = enroll("plan", &path, &[]);
    assert!(
        plan.stdout.contains("target: create (Nlb(")
            && plan.stdout.contains("filter: create (accept all)"),
        "{}",
        plan.stdout
    );
    let run = enroll("apply", &path, &[]);
    assert!(
        run.stdout
            .contains("applied: 2 created, 0 deleted, 2 targets/filters created"),
        "{}",
        run.stdout
    );
    let created_target = world.proxy.calls("CreateTrafficMirrorTarget");
    assert_eq!(created_target.len(), 1);
    assert_eq!(created_target[0].params["NetworkLoadBalancerArn"], own_nlb);
    assert_eq!(
        created_target[0].params["TagSpecification.1.Tag.1.Key"],
        OWNER_KEY
    );
    // Four accept-all rules (both directions, IPv4 and IPv6) on the new filter.
    let rules = world.proxy.calls("CreateTrafficMirrorFilterRule");
    let rule_set: BTreeSet<(String, String)> = rules
        .iter()
        .map(|r| {
            (
                r.params["TrafficDirection"].clone(),
                r.params["DestinationCidrBlock"].clone(),
            )
        })
        .collect();
    assert_eq!(rule_set.len(), 4);
    assert!(rules.iter().all(|r| r.params["RuleAction"] == "accept"));
    let filter_call = world.proxy.calls("CreateTrafficMirrorFilter");
    assert_eq!(
        filter_call[0]
            .params
            .get("NetworkService.1")
            .map(String::as_str),
        Some("amazon-dns")
    );

    // Reused, not created again.
    world.proxy.clear_log();
    let again = enroll("apply", &path, &[]);
    assert!(applied_nothing(&again.stdout), "{}", again.stdout);

    // Another NLB: sessions move to a new target and the old one is deleted.
    let old_target = world.sessions()[0]["TrafficMirrorTargetId"]
        .as_str()
        .unwrap()
        .to_string();
    write("arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/net/other/2");
    let moved = enroll("apply", &path, &[]);
    assert!(
        moved
            .stdout
            .contains("applied: 2 created, 2 deleted, 1 targets/filters created, 1 deleted"),
        "{}",
        moved.stdout
    );
    let deleted = world.proxy.calls("DeleteTrafficMirrorTarget");
    assert_eq!(deleted.len(), 1);
    assert_eq!(deleted[0].params["TrafficMirrorTargetId"], old_target);
    assert!(
        world.proxy.calls("DeleteTrafficMirrorFilter").is_empty(),
        "the filter is still used"
    );
    // The foreign target made by World::new is never deleted.
    assert!(
        world
            .proxy
            .calls("DeleteTrafficMirrorTarget")
            .iter()
            .all(|d| d.params["TrafficMirrorTargetId"] != world.target)
    );
}

#[test]
fn credentials_and_region_come_from_imdsv2_and_are_refreshed_before_expiry() {
    let world = World::new(1);
    world.launch(2, 2, &[("app", "web")]);
    let no_env: &[(&str, Option<&str>)] =
        &[("AWS_ACCESS_KEY_ID", None), ("AWS_SECRET_ACCESS_KEY", None)];
    let role = "/latest/meta-data/iam/security-credentials/sensor-role";
    for (expires_in, at_most_one_fetch) in [
        (Duration::from_secs(3600), true),
        (Duration::from_secs(120), false),
    ] {
        let imds = FakeImds::start(expires_in);
        let path = world.moto.dir().join("imds.toml");
        std::fs::write(&path, format!(
            "[enroll]\nendpoint = \"{}\"\nimds_endpoint = \"{}\"\ntarget_id = \"{}\"\nfilter_id = \"{}\"\n",
            world.proxy.endpoint, imds.endpoint, world.target, world.filter)).unwrap();
        let plan = enroll("plan", &path, no_env);
        assert_eq!(plan.code, Some(0), "{}\n{}", plan.stdout, plan.stderr);
        assert!(plan.stdout.contains("summary:"), "{}", plan.stdout);
        let log = imds.log();
        assert!(
            log.iter().all(|(m, _, token)| m == "PUT" || *token),
            "a GET without the IMDSv2 token: {log:?}"
        );
        assert!(
            log.iter()
                .any(|(_, p, _)| p == "/latest/meta-data/placement/region")
        );
        let fetches = log.iter().filter(|(_, p, _)| p == role).count();
        // A plan makes four listings: credentials fresh for an hour are
        // fetched once; credentials expiring within 5 minutes every time.
        if at_most_one_fetch {
            assert_eq!(fetches, 1, "{log:?}");
        } else {
            assert!(fetches >= 4, "{log:?}");
        }
    }
    // The calls were signed with the role's credentials and session token.
    let signed = world.proxy.calls("DescribeInstances");
    let head = signed.last().unwrap().head.to_ascii_lowercase();
    assert!(head.contains("x-amz-security-token: session"), "{head}");
    assert!(head.contains("credential=asiafake/"), "{head}");
}

/// Polls `/metrics` until `name` (with `labels`) reaches `at_least`.
fn wait_metric(
    sensor: &sensor_tests::live::LiveSensor,
    name: &str,
    labels: &[(&str, &str)],
    at_least: f64,
) -> f64 {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let v = sensor.metrics().sum(name, labels);
        if v >= at_least {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{name}{labels:?} stayed at {v} < {at_least}\n{}",
            sensor.stderr()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn queue_events_enroll_launches_and_guardduty_findings_at_once_in_sensor_run() {
    use sensor_tests::live::{LiveOptions, LiveSensor, TempDir};
    let world = World::new(1);
    let subnet = world.subnets[0].1.clone();
    world.launch(2, 2, &[("env", "prod")]);
    let queue = world.moto.boto(&json!([call(
        "sqs",
        "create_queue",
        json!({"QueueName": "enroll-events"})
    )]));
    let moto_queue = queue[0]["QueueUrl"].as_str().unwrap().to_string();
    // The sensor reaches the queue through the proxy, which logs its calls.
    let queue_url = moto_queue.replace(&world.moto.endpoint, &world.proxy.endpoint);
    let imds = FakeImds::start(Duration::from_secs(3600));
    let dir = TempDir::new("enroll-events");
    let config = dir.join("sensor.toml");
    std::fs::write(
        &config,
        format!(
            "[enroll]\nenabled = true\nendpoint = \"{}\"\nimds_endpoint = \"{}\"\ntarget_id = \"{}\"\n\
             filter_id = \"{}\"\ntags = {{ env = \"prod\" }}\nqueue_url = \"{queue_url}\"\ninterval = \"1h\"\n\
             modes = [\"existing\", \"launches\", \"guardduty\", \"cleanup\"]\nmax_calls_per_second = 100\n",
            world.proxy.endpoint, imds.endpoint, world.target, world.filter
        ),
    )
    .unwrap();
    let options = LiveOptions {
        config: Some(config),
        ..LiveOptions::default()
    };
    let mut sensor = LiveSensor::start_ready(&dir, &options);
    // The first pass enrolls the two instances in scope.
    wait_metric(&sensor, "sensor_enroll_passes_total", &[], 1.0);
    assert_eq!(
        sensor.metrics().sum("sensor_enroll_sessions_owned", &[]),
        2.0
    );
    let (_, ready) = sensor.get("/readyz").unwrap();
    assert!(ready.contains("enroll: ok (last pass"), "{ready}");

    // A launch in scope, and an instance out of scope that GuardDuty flags.
    let launched = world.moto.boto(&Value::Array(
        World::launch_calls(&subnet, 1, 1, &[("env", "prod")])
            .into_iter()
            .chain(World::launch_calls(&subnet, 1, 1, &[("env", "dev")]))
            .collect(),
    ));
    let id = |r: &Value| {
        r["Instances"][0]["InstanceId"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (launch, flagged) = (id(&launched[0]), id(&launched[1]));
    let eni = |r: &Value| {
        r["Instances"][0]["NetworkInterfaces"][0]["NetworkInterfaceId"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (launch_eni, flagged_eni) = (eni(&launched[0]), eni(&launched[1]));
    let state_change = json!({"version": "0", "id": "1", "detail-type": "EC2 Instance State-change Notification",
        "source": "aws.ec2", "account": "123456789012", "region": "us-east-1",
        "detail": {"instance-id": launch, "state": "running"}});
    let finding = json!({"version": "0", "id": "2", "detail-type": "GuardDuty Finding", "source": "aws.guardduty",
        "detail": {"type": "UnauthorizedAccess:EC2/SSHBruteForce",
                   "resource": {"resourceType": "Instance", "instanceDetails": {"instanceId": flagged}}}});
    let other = json!({"detail-type": "AWS API Call via CloudTrail", "detail": {}});
    let passes_before = sensor.metrics().sum("sensor_enroll_passes_total", &[]);
    let send = |body: String| {
        call(
            "sqs",
            "send_message",
            json!({"QueueUrl": moto_queue, "MessageBody": body}),
        )
    };
    world.moto.boto(&json!([
        send(state_change.to_string()),
        send("{not json".to_string()),
        send(finding.to_string()),
        send(other.to_string()),
    ]));
    // The periodic pass is an hour away: only the events can enroll them.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let enis = owned_enis(&world.sessions());
        if enis.contains(&launch_eni) && enis.contains(&flagged_eni) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no session for the events\n{}",
            sensor.stderr()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    wait_metric(
        &sensor,
        "sensor_enroll_events_total",
        &[("kind", "malformed")],
        1.0,
    );
    let m = sensor.metrics();
    for kind in ["launch", "finding", "ignored", "malformed"] {
        assert_eq!(
            m.sum("sensor_enroll_events_total", &[("kind", kind)]),
            1.0,
            "{kind}"
        );
    }
    let passes = m.sum("sensor_enroll_passes_total", &[]);
    assert!(
        passes > passes_before && passes <= passes_before + 4.0,
        "{passes_before} -> {passes}"
    );
    assert_eq!(m.sum("sensor_enroll_sessions_created_total", &[]), 4.0);
    assert!(m.sum("sensor_enroll_api_requests_total", &[]) > 0.0);
    // Every message was deleted after handling, the malformed one included.
    assert_eq!(world.proxy.calls("DeleteMessage").len(), 4);
    let attributes = world.moto.boto(&json!([call(
        "sqs",
        "get_queue_attributes",
        json!({"QueueUrl": moto_queue, "AttributeNames": ["All"]})
    )]));
    assert_eq!(
        attributes[0]["Attributes"]["ApproximateNumberOfMessages"],
        "0"
    );
    assert_eq!(
        attributes[0]["Attributes"]["ApproximateNumberOfMessagesNotVisible"],
        "0"
    );
    sensor.stop(Duration::from_millis(500), Duration::from_secs(20));
}

#[test]
fn an_unreachable_aws_api_leaves_the_sensor_ready_and_says_degraded() {
    use sensor_tests::live::{LiveOptions, LiveSensor, TempDir};
    let dir = TempDir::new("enroll-degraded");
    let config = dir.join("sensor.toml");
    let closed = sensor_tests::moto::free_port();
    std::fs::write(
        &config,
        format!(
            "[enroll]\nenabled = true\nregion = \"us-east-1\"\nendpoint = \"http://127.0.0.1:{closed}\"\n\
             imds_endpoint = \"http://127.0.0.1:{closed}\"\ntarget_id = \"tmt-1\"\nfilter_id = \"tmf-1\"\n\
             max_attempts = 1\n"
        ),
    )
    .unwrap();
    let options = LiveOptions {
        config: Some(config),
        ..LiveOptions::default()
    };
    let mut sensor = LiveSensor::start_ready(&dir, &options);
    wait_metric(&sensor, "sensor_enroll_failed_passes_total", &[], 1.0);
    let (status, body) = sensor.get("/readyz").unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("enroll: ok (degraded: AWS API unreachable"),
        "{body}"
    );
    sensor.stop(Duration::from_millis(500), Duration::from_secs(20));
}
