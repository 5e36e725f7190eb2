use super::*;
use crate::enroll::ec2::Eni;
use std::time::Duration;

const T: &str = "tmt-0001";
const F: &str = "tmf-0001";

fn cfg() -> EnrollConfig {
    EnrollConfig {
        target_id: T.into(),
        filter_id: F.into(),
        ..EnrollConfig::default()
    }
}

fn instance(id: &str, vpc: &str, tags: &[(&str, &str)]) -> Instance {
    Instance {
        id: id.into(),
        state: "running".into(),
        vpc_id: vpc.into(),
        subnet_id: format!("subnet-{vpc}"),
        availability_zone: "us-east-1a".into(),
        tags: tags
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        // The secondary interface is listed first: order is not guaranteed.
        enis: vec![
            Eni {
                id: format!("eni-{id}-b"),
                device_index: 1,
                private_ip: "10.0.0.2".into(),
                subnet_id: String::new(),
            },
            Eni {
                id: format!("eni-{id}-a"),
                device_index: 0,
                private_ip: "10.0.0.1".into(),
                subnet_id: String::new(),
            },
        ],
    }
}

fn session(id: &str, eni: &str, number: u32, owner: bool) -> MirrorSession {
    let mut tags = BTreeMap::new();
    if owner {
        tags.insert("mirror-sensor:owner".into(), "mirror-sensor".into());
    }
    MirrorSession {
        id: id.into(),
        eni_id: eni.into(),
        target_id: T.into(),
        filter_id: F.into(),
        session_number: number,
        vni: None,
        tags,
    }
}

fn run(c: &EnrollConfig, o: &Observed) -> Plan {
    plan(c, o, &BTreeMap::new(), &BTreeMap::new(), SystemTime::now()).unwrap()
}

#[test]
fn primary_interface_of_running_instances_in_scope() {
    let mut c = cfg();
    c.vpc_ids = vec!["vpc-a".into()];
    let mut stopped = instance("i-3", "vpc-a", &[]);
    stopped.state = "stopped".into();
    let o = Observed {
        instances: vec![
            instance("i-1", "vpc-a", &[]),
            instance("i-2", "vpc-b", &[]),
            stopped,
        ],
        ..Observed::default()
    };
    let p = run(&c, &o);
    let enis: Vec<_> = p.creates.iter().map(|c| c.eni_id.as_str()).collect();
    assert_eq!(enis, ["eni-i-1-a"]);
    assert_eq!(p.creates[0].session_number, 1);
    c.all_enis = true;
    assert_eq!(run(&c, &o).creates.len(), 2);
}

#[test]
fn tags_combine_with_and_and_tags_any_with_or() {
    let mut c = cfg();
    c.tags = BTreeMap::from([("env".into(), "prod".into()), ("team".into(), "*".into())]);
    let both = instance("i-1", "v", &[("env", "prod"), ("team", "x")]);
    let one = instance("i-2", "v", &[("env", "prod")]);
    assert_eq!(out_of_scope(&c, &both), None);
    assert_eq!(
        out_of_scope(&c, &one).as_deref(),
        Some("tag team=* missing")
    );
    c.tags.clear();
    c.tags_any = BTreeMap::from([("a".into(), "1".into()), ("b".into(), "2".into())]);
    assert_eq!(out_of_scope(&c, &instance("i", "v", &[("b", "2")])), None);
    assert!(out_of_scope(&c, &instance("i", "v", &[("a", "2")])).is_some());
}

#[test]
fn owned_sessions_out_of_scope_are_deleted_foreign_ones_never() {
    let mut c = cfg();
    c.tags = BTreeMap::from([("mirror".into(), "yes".into())]);
    let o = Observed {
        instances: vec![
            instance("i-in", "v", &[("mirror", "yes")]),
            instance("i-out", "v", &[("mirror", "no")]),
        ],
        sessions: vec![
            session("tms-1", "eni-i-in-a", 1, true),
            session("tms-2", "eni-i-out-a", 1, true),
            session("tms-3", "eni-i-out-a", 2, false),
            session("tms-4", "eni-gone", 1, true),
            session("tms-5", "eni-gone", 2, false),
        ],
        ..Observed::default()
    };
    let p = run(&c, &o);
    assert!(p.creates.is_empty());
    let deleted: Vec<_> = p.deletes.iter().map(|d| d.session_id.as_str()).collect();
    assert_eq!(deleted, ["tms-4", "tms-2"]);
    assert!(
        p.deletes[1].reason.contains("left scope"),
        "{:?}",
        p.deletes
    );
    assert_eq!(p.deletes[0].reason, "source instance gone");
    assert_eq!(p.kept, 1);
    c.modes = vec!["existing".into()];
    assert!(run(&c, &o).deletes.is_empty(), "cleanup mode off");
}

#[test]
fn duplicates_keep_the_smallest_id_so_every_sensor_agrees() {
    let o = Observed {
        instances: vec![instance("i-1", "v", &[])],
        sessions: vec![
            session("tms-b", "eni-i-1-a", 1, true),
            session("tms-a", "eni-i-1-a", 2, true),
        ],
        ..Observed::default()
    };
    let p = run(&cfg(), &o);
    assert_eq!(p.deletes.len(), 1);
    assert_eq!(p.deletes[0].session_id, "tms-b");
    assert_eq!(p.deletes[0].reason, "duplicate");
    assert!(p.creates.is_empty());
}

#[test]
fn three_sessions_per_interface_and_free_session_numbers() {
    let mut o = Observed {
        instances: vec![instance("i-1", "v", &[]), instance("i-2", "v", &[])],
        sessions: vec![
            session("tms-1", "eni-i-1-a", 1, false),
            session("tms-2", "eni-i-1-a", 2, false),
            session("tms-3", "eni-i-1-a", 3, false),
            session("tms-4", "eni-i-2-a", 1, false),
        ],
        ..Observed::default()
    };
    let p = run(&cfg(), &o);
    assert_eq!(p.skips.len(), 1);
    assert_eq!(p.skips[0].code, "eni_session_limit");
    assert_eq!(p.creates.len(), 1);
    assert_eq!(p.creates[0].eni_id, "eni-i-2-a");
    assert_eq!(
        p.creates[0].session_number, 2,
        "1 is taken on that interface"
    );
    o.sessions.truncate(2);
    assert_eq!(run(&cfg(), &o).creates.len(), 2);
}

#[test]
fn refused_interfaces_wait_before_being_asked_again() {
    let o = Observed {
        instances: vec![instance("i-1", "v", &[])],
        ..Observed::default()
    };
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
    let refused = BTreeMap::from([(
        "eni-i-1-a".to_string(),
        Refusal {
            code: "NetworkInterfaceNotSupported".into(),
            message: "t1.micro".into(),
            at_unix: 1_000_000 - 60,
        },
    )]);
    let c = cfg();
    let p = plan(&c, &o, &BTreeMap::new(), &refused, now).unwrap();
    assert!(p.creates.is_empty());
    assert_eq!(p.skips[0].code, "NetworkInterfaceNotSupported");
    let later = now + c.refused_retry;
    let p = plan(&c, &o, &BTreeMap::new(), &refused, later).unwrap();
    assert_eq!(p.creates.len(), 1);
}

#[test]
fn sensors_are_never_mirrored_not_even_for_a_finding() {
    let mut c = cfg();
    c.modes = vec!["existing".into(), "guardduty".into(), "cleanup".into()];
    let sensor = instance("i-s", "vpc-a", &[("mirror-sensor:role", "sensor")]);
    assert_eq!(
        out_of_scope(&c, &sensor).as_deref(),
        Some("tag mirror-sensor:role=sensor excludes it")
    );
    let o = Observed {
        instances: vec![sensor, instance("i-w", "vpc-a", &[])],
        sessions: vec![session("tms-1", "eni-i-s-a", 1, true)],
        ..Observed::default()
    };
    let named = BTreeMap::from([("i-s".to_string(), Named::GuardDuty)]);
    let p = plan(&c, &o, &named, &BTreeMap::new(), SystemTime::now()).unwrap();
    // The workload is enrolled; the sensor is not, and the session an older
    // configuration gave it is removed.
    assert_eq!(p.creates.len(), 1);
    assert_eq!(p.deletes.len(), 1);
}

#[test]
fn guardduty_findings_enroll_out_of_scope_instances() {
    let mut c = cfg();
    c.vpc_ids = vec!["vpc-a".into()];
    c.modes = vec!["guardduty".into(), "cleanup".into()];
    let o = Observed {
        instances: vec![instance("i-1", "vpc-z", &[]), instance("i-2", "vpc-a", &[])],
        sessions: vec![session("tms-1", "eni-i-2-a", 1, true)],
        ..Observed::default()
    };
    let named = BTreeMap::from([("i-1".to_string(), Named::GuardDuty)]);
    let p = plan(&c, &o, &named, &BTreeMap::new(), SystemTime::now()).unwrap();
    assert_eq!(p.creates.len(), 1);
    assert_eq!(p.creates[0].reason, "guardduty finding");
    // Backfill is off, but the session of an instance in scope stays.
    assert!(p.deletes.is_empty());
    let launched = BTreeMap::from([("i-2".to_string(), Named::Launch)]);
    c.modes = vec!["launches".into()];
    let o2 = Observed {
        sessions: Vec::new(),
        ..o
    };
    let p = plan(&c, &o2, &launched, &BTreeMap::new(), SystemTime::now()).unwrap();
    assert_eq!(p.creates.len(), 1);
    assert_eq!(p.creates[0].reason, "launch event");
}

#[test]
fn created_targets_and_filters_are_reused_and_removed_when_unused() {
    let mut c = EnrollConfig {
        target_nlb_arn: "arn:aws:elasticloadbalancing:x:1:loadbalancer/net/n/1".into(),
        ..EnrollConfig::default()
    };
    let owner = BTreeMap::from([("mirror-sensor:owner".into(), "mirror-sensor".into())]);
    let nlb_target = |id: &str| MirrorTarget {
        id: id.into(),
        nlb_arn: Some(c.target_nlb_arn.clone()),
        gwlb_endpoint_id: None,
        eni_id: None,
        tags: owner.clone(),
    };
    let mut o = Observed::default();
    let p = run(&c, &o);
    assert_eq!(
        p.target,
        Resolved::Create(TargetSpec::Nlb(c.target_nlb_arn.clone()))
    );
    assert_eq!(p.filter, Resolved::Create(()));
    o.targets = vec![nlb_target("tmt-b"), nlb_target("tmt-a")];
    o.filters = vec![MirrorFilter {
        id: "tmf-x".into(),
        tags: owner.clone(),
    }];
    let p = run(&c, &o);
    assert_eq!(p.target, Resolved::Existing("tmt-a".into()));
    assert_eq!(p.filter, Resolved::Existing("tmf-x".into()));
    assert_eq!(p.delete_targets, ["tmt-b"]);
    assert!(p.delete_filters.is_empty());
    // A session (anyone's) still using a target keeps it.
    o.sessions = vec![MirrorSession {
        target_id: "tmt-b".into(),
        ..session("tms-9", "eni-x", 1, false)
    }];
    assert!(run(&c, &o).delete_targets.is_empty());
    c.target_nlb_arn.clear();
    assert!(
        plan(
            &c,
            &o,
            &BTreeMap::new(),
            &BTreeMap::new(),
            SystemTime::now()
        )
        .is_err()
    );
}

#[test]
fn client_tokens_are_stable_within_the_hour_and_fit() {
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(3600 * 1000);
    let a = client_token(&["eni-1", T, "1"], t0);
    assert_eq!(
        a,
        client_token(&["eni-1", T, "1"], t0 + Duration::from_secs(3599))
    );
    assert_ne!(a, client_token(&["eni-1", T, "2"], t0));
    assert_ne!(
        a,
        client_token(&["eni-1", T, "1"], t0 + Duration::from_secs(3600))
    );
    assert_eq!(a.len(), 48);
}

#[test]
fn an_interface_target_takes_ten_sources() {
    let c = EnrollConfig {
        target_this_eni: true,
        filter_id: F.into(),
        ..EnrollConfig::default()
    };
    let instances: Vec<Instance> = (0..12)
        .map(|n| instance(&format!("i-{n:02}"), "v", &[]))
        .collect();
    let mut o = Observed {
        instances,
        this_eni: Some("eni-sensor".into()),
        ..Observed::default()
    };
    let p = run(&c, &o);
    assert_eq!(
        p.target,
        Resolved::Create(TargetSpec::Eni("eni-sensor".into()))
    );
    assert_eq!(p.creates.len(), 10);
    assert_eq!(p.skips.len(), 2);
    assert!(p.skips.iter().all(|s| s.code == "target_source_limit"));
    // The target exists and four sources (one not ours) already use it.
    o.targets = vec![MirrorTarget {
        id: T.into(),
        nlb_arn: None,
        gwlb_endpoint_id: None,
        eni_id: Some("eni-sensor".into()),
        tags: BTreeMap::new(),
    }];
    o.sessions = (0..3)
        .map(|n| session(&format!("tms-{n}"), &format!("eni-i-{n:02}-a"), 1, true))
        .chain([session("tms-x", "eni-elsewhere", 1, false)])
        .collect();
    let p = run(&c, &o);
    assert_eq!(p.target, Resolved::Existing(T.into()));
    assert_eq!(p.creates.len(), 6);
    assert_eq!(p.skips.len(), 3);
    // NLB targets have no such limit.
    let nlb = EnrollConfig {
        target_id: T.into(),
        filter_id: F.into(),
        ..EnrollConfig::default()
    };
    o.targets[0].eni_id = None;
    assert_eq!(run(&nlb, &o).creates.len(), 9);
}
