//! Enrichment end to end: `sensor run` enrolls instances that moto (an EC2
//! emulator the project did not write) describes, then a capture replayed
//! as those instances' mirror sessions would send it comes out as flow
//! records that name the instance, VPC, subnet, availability zone and tags
//! of their source interface.
//!
//! Addresses: AWS sends mirrored packets from the primary private IP of the
//! source interface. On loopback a sender can use any 127.0.0.0/8 address,
//! and moto accepts a VPC of 127.77.0.0/16 and instances with chosen private
//! IPs in it, so the replay (`--source-ip`, `--vni`) sends exactly what the
//! sessions of those instances would.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use sensor_tests::aws_proxy::FakeImds;
use sensor_tests::live::{LiveOptions, LiveSensor, TempDir};
use sensor_tests::moto::MotoServer;
use sensor_tests::replay::replay;
use sensor_tests::workspace_root;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const NLB: &str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/net/sensors/1";
/// The VNI the sensor's sessions get (`vni_policy = "fixed"`: moto only
/// reports a VNI that was asked for).
const VNI: u32 = 4242;

fn call(service: &str, method: &str, args: Value) -> Value {
    json!({"service": service, "method": method, "args": args})
}

fn launch(subnet: &str, ip: &str, tags: &[(&str, &str)]) -> Value {
    let tags: Vec<Value> = tags
        .iter()
        .map(|(k, v)| json!({"Key": k, "Value": v}))
        .collect();
    call(
        "ec2",
        "run_instances",
        json!({"ImageId": "ami-12c6146b", "MinCount": 1, "MaxCount": 1, "SubnetId": subnet,
               "PrivateIpAddress": ip,
               "TagSpecifications": [{"ResourceType": "instance", "Tags": tags}]}),
    )
}

/// What a flow record's `vantage` should be for a launched instance.
fn vantage(launched: &Value, tags: Value) -> Value {
    let i = &launched["Instances"][0];
    json!({
        "instance_id": i["InstanceId"],
        "eni_id": i["NetworkInterfaces"][0]["NetworkInterfaceId"],
        "vpc_id": i["VpcId"],
        "subnet_id": i["SubnetId"],
        "availability_zone": i["Placement"]["AvailabilityZone"],
        "tags": tags,
    })
}

/// The (outer source, VNI) of a flow record's VXLAN layer.
fn source(flow: &Value) -> (String, u64) {
    let layer = &flow["tunnel"][0];
    assert_eq!(layer["type"], "vxlan", "{flow}");
    (
        layer["outer_src"].as_str().unwrap().to_string(),
        layer["vni"].as_u64().unwrap(),
    )
}

/// Polls until the sensor has written flow records for every source in
/// `sources` and their number has stopped growing (every flow ended).
fn settled_flows(sensor: &LiveSensor, sources: &[(&str, u32)]) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut last = usize::MAX;
    let mut steady = 0;
    loop {
        let flows = sensor.flow_records();
        let seen: Vec<(String, u64)> = flows.iter().map(source).collect();
        let all = sources
            .iter()
            .all(|(ip, vni)| seen.contains(&(ip.to_string(), u64::from(*vni))));
        steady = if all && flows.len() == last {
            steady + 1
        } else {
            0
        };
        if steady >= 3 {
            return flows;
        }
        last = flows.len();
        assert!(
            Instant::now() < deadline,
            "flows of {sources:?} not all written: {} so far\n{}",
            flows.len(),
            sensor.stderr()
        );
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[test]
fn replayed_flows_carry_the_instance_of_their_source_interface() {
    let moto = MotoServer::start();
    // Two VPCs that reuse one range, so that one address is in both.
    let made = moto.boto(&json!([
        call("ec2", "create_vpc", json!({"CidrBlock": "127.77.0.0/16"})),
        call("ec2", "create_vpc", json!({"CidrBlock": "127.77.0.0/16"})),
        call(
            "ec2",
            "create_traffic_mirror_target",
            json!({"NetworkLoadBalancerArn": NLB})
        ),
        call("ec2", "create_traffic_mirror_filter", json!({})),
    ]));
    let vpc = |i: usize| made[i]["Vpc"]["VpcId"].as_str().unwrap().to_string();
    let target = made[2]["TrafficMirrorTarget"]["TrafficMirrorTargetId"]
        .as_str()
        .unwrap();
    let filter = made[3]["TrafficMirrorFilter"]["TrafficMirrorFilterId"]
        .as_str()
        .unwrap();
    let subnets = moto.boto(&json!([
        call(
            "ec2",
            "create_subnet",
            json!({"VpcId": vpc(0), "CidrBlock": "127.77.1.0/24", "AvailabilityZone": "us-east-1b"})
        ),
        call(
            "ec2",
            "create_subnet",
            json!({"VpcId": vpc(1), "CidrBlock": "127.77.1.0/24", "AvailabilityZone": "us-east-1c"})
        ),
    ]));
    let subnet = |i: usize| {
        subnets[i]["Subnet"]["SubnetId"]
            .as_str()
            .unwrap()
            .to_string()
    };
    // web is in scope (the sensor mirrors it); db and twin are not, so they
    // have no session: db's address is its own, twin's is web's, in the
    // other VPC.
    let launched = moto.boto(&json!([
        launch(
            &subnet(0),
            "127.77.1.20",
            &[("env", "prod"), ("Name", "web-1"), ("team", "blue")]
        ),
        launch(
            &subnet(0),
            "127.77.1.30",
            &[("env", "dev"), ("Name", "db-1")]
        ),
        launch(
            &subnet(1),
            "127.77.1.20",
            &[("env", "dev"), ("Name", "twin")]
        ),
    ]));
    let web = vantage(&launched[0], json!({"Name": "web-1", "env": "prod"}));
    let db = vantage(&launched[1], json!({"Name": "db-1", "env": "dev"}));

    // Credentials from an instance role, as on EC2 (the child's environment
    // has no AWS keys).
    let imds = FakeImds::start(Duration::from_secs(3600));
    let dir = TempDir::new("enrich");
    let config = dir.join("sensor.toml");
    std::fs::write(
        &config,
        format!(
            "[enroll]\nenabled = true\nregion = \"us-east-1\"\nendpoint = \"{}\"\n\
             imds_endpoint = \"{}\"\ntarget_id = \"{target}\"\nfilter_id = \"{filter}\"\n\
             tags = {{ env = \"prod\" }}\nvni_policy = \"fixed\"\nvni = {VNI}\ninterval = \"1h\"\n\
             max_calls_per_second = 100\nenrich_tags = [\"Name\", \"env\"]\n\
             [flows]\ntcp_timeout = \"2s\"\ntcp_closed_timeout = \"1s\"\ntcp_attempt_timeout = \"1s\"\n\
             udp_timeout = \"2s\"\nicmp_timeout = \"2s\"\nother_timeout = \"2s\"\n\
             # The same capture is replayed from several sources: they are\n\
             # distinct connections here, not copies from two sessions.\n\
             duplicate_window = \"0s\"\n",
            moto.endpoint, imds.endpoint
        ),
    )
    .unwrap();
    let options = LiveOptions {
        config: Some(config),
        ..LiveOptions::default()
    };
    let mut sensor = LiveSensor::start_ready(&dir, &options);
    let deadline = Instant::now() + Duration::from_secs(60);
    while sensor.metrics().sum("sensor_enrich_refreshes_total", &[]) < 1.0 {
        assert!(
            Instant::now() < deadline,
            "no inventory refresh\n{}",
            sensor.stderr()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The pass mirrored web alone, with the fixed VNI.
    let sessions = moto.boto(&json!([call(
        "ec2",
        "describe_traffic_mirror_sessions",
        json!({})
    )]));
    let sessions = sessions[0]["TrafficMirrorSessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    assert_eq!(sessions[0]["NetworkInterfaceId"], web["eni_id"]);
    assert_eq!(sessions[0]["VirtualNetworkId"], VNI);
    // web's address and its session; db's address; twin shares web's.
    assert_eq!(sensor.metrics().sum("sensor_enrich_entries", &[]), 3.0);

    let capture = workspace_root().join("pcaps/aws-mirror/plain.pcap");
    let sources: [(&str, u32); 4] = [
        // web's session.
        ("127.77.1.20", VNI),
        // db: no session the sensor knows, its address is its own.
        ("127.77.1.30", 99),
        // web's address with a VNI no session has: web or twin?
        ("127.77.1.20", 77),
        // Nobody's.
        ("127.77.9.9", VNI),
    ];
    for (ip, vni) in sources {
        let vni = vni.to_string();
        let run = replay(
            &[capture.as_path()],
            sensor.vxlan,
            &["--pps", "5000", "--vni", &vni, "--source-ip", ip],
            Duration::from_secs(60),
        );
        run.assert_success();
    }
    let flows = settled_flows(&sensor, &sources);
    let mut by_source: BTreeMap<(String, u64), Vec<&Value>> = BTreeMap::new();
    for f in &flows {
        by_source.entry(source(f)).or_default().push(f);
    }
    let group = |ip: &str, vni: u32| &by_source[&(ip.to_string(), u64::from(vni))];
    for f in group("127.77.1.20", VNI) {
        assert_eq!(f["vantage"], web, "{f}");
    }
    for f in group("127.77.1.30", 99) {
        assert_eq!(f["vantage"], db, "{f}");
    }
    for f in group("127.77.1.20", 77)
        .iter()
        .chain(group("127.77.9.9", VNI))
    {
        assert!(f.get("vantage").is_none(), "{f}");
    }
    let size = |ip: &str, vni: u32| group(ip, vni).len() as f64;
    assert!(size("127.77.1.20", VNI) > 10.0, "{by_source:?}");
    // Every flow record was looked up once, by its own result.
    let m = sensor.metrics();
    let lookups = |result: &str| m.sum("sensor_enrich_lookups_total", &[("result", result)]);
    assert_eq!(
        (lookups("session"), lookups("address"), lookups("miss")),
        (
            size("127.77.1.20", VNI),
            size("127.77.1.30", 99),
            size("127.77.1.20", 77) + size("127.77.9.9", VNI)
        )
    );
    sensor.stop(Duration::from_millis(500), Duration::from_secs(20));
}
