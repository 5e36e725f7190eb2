use super::*;
use crate::enroll::ec2::Eni;

fn eni(id: &str, ip: &str, device_index: u32) -> Eni {
    Eni {
        id: id.into(),
        device_index,
        private_ip: ip.into(),
        subnet_id: String::new(),
    }
}

fn instance(id: &str, vpc: &str, enis: Vec<Eni>) -> ec2::Instance {
    ec2::Instance {
        id: id.into(),
        state: "running".into(),
        vpc_id: vpc.into(),
        subnet_id: format!("subnet-{vpc}"),
        availability_zone: "us-east-1c".into(),
        tags: [
            ("Name".to_string(), format!("name-{id}")),
            ("team".to_string(), "blue".to_string()),
            ("secret".to_string(), "do-not-copy".to_string()),
        ]
        .into(),
        enis,
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn id(l: &Lookup) -> Option<(&str, &str, bool)> {
    match l {
        Lookup::Session(i) => Some((i.instance_id.as_str(), i.eni_id.as_str(), true)),
        Lookup::Address(i) => Some((i.instance_id.as_str(), i.eni_id.as_str(), false)),
        Lookup::Miss => None,
    }
}

fn tags() -> Vec<String> {
    vec!["Name".into(), "team".into(), "absent".into()]
}

#[test]
fn a_session_key_names_the_interface_with_its_instance_and_selected_tags() {
    let mut web = instance("i-web", "vpc-a", vec![eni("eni-w0", "10.0.0.5", 0)]);
    web.enis.push(Eni {
        subnet_id: "subnet-second".into(),
        ..eni("eni-w1", "10.0.1.5", 1)
    });
    let sessions = [("eni-w0".to_string(), 4242), ("eni-w1".to_string(), 7)];
    let t = InventoryTable::build(&[web], &sessions, &tags(), 100);
    let Lookup::Session(found) = t.lookup(ip("10.0.0.5"), 4242) else {
        panic!("no session hit");
    };
    assert_eq!(
        *found,
        Instance {
            instance_id: "i-web".into(),
            eni_id: "eni-w0".into(),
            vpc_id: "vpc-a".into(),
            subnet_id: "subnet-vpc-a".into(),
            availability_zone: "us-east-1c".into(),
            // Only the configured keys the instance has.
            tags: [
                ("Name".to_string(), "name-i-web".to_string()),
                ("team".to_string(), "blue".to_string()),
            ]
            .into(),
        }
    );
    // A secondary interface is its own vantage, in its own subnet.
    let Lookup::Session(second) = t.lookup(ip("10.0.1.5"), 7) else {
        panic!("no session hit for the second interface");
    };
    assert_eq!(
        (second.eni_id.as_str(), second.subnet_id.as_str()),
        ("eni-w1", "subnet-second")
    );
    // IPv4-mapped IPv6 (a dual-stack socket's view) is the same address.
    assert_eq!(
        id(&t.lookup(ip("::ffff:10.0.0.5"), 4242)),
        Some(("i-web", "eni-w0", true))
    );
    assert_eq!(t.len(), 4);
}

#[test]
fn the_address_alone_answers_only_when_one_interface_has_it() {
    // Two VPCs reuse 10.0.0.5; a third instance has 10.0.0.9 and no
    // session the pass knows of.
    let a = instance("i-a", "vpc-a", vec![eni("eni-a", "10.0.0.5", 0)]);
    let b = instance("i-b", "vpc-b", vec![eni("eni-b", "10.0.0.5", 0)]);
    let c = instance("i-c", "vpc-a", vec![eni("eni-c", "10.0.0.9", 0)]);
    let sessions = [("eni-a".to_string(), 100), ("eni-b".to_string(), 200)];
    let t = InventoryTable::build(&[a, b, c], &sessions, &tags(), 100);
    // The VNI tells the two 10.0.0.5 apart.
    assert_eq!(
        id(&t.lookup(ip("10.0.0.5"), 100)),
        Some(("i-a", "eni-a", true))
    );
    assert_eq!(
        id(&t.lookup(ip("10.0.0.5"), 200)),
        Some(("i-b", "eni-b", true))
    );
    // An unknown VNI from a shared address names neither.
    assert_eq!(t.lookup(ip("10.0.0.5"), 300), Lookup::Miss);
    // The VNI is not known, the address is unique: the fallback answers.
    assert_eq!(
        id(&t.lookup(ip("10.0.0.9"), 12345)),
        Some(("i-c", "eni-c", false))
    );
    assert_eq!(t.lookup(ip("10.9.9.9"), 100), Lookup::Miss);
}

#[test]
fn one_vni_for_every_session_over_reused_addresses_names_neither() {
    // vni_policy = "fixed" across VPCs that reuse addresses.
    let a = instance("i-a", "vpc-a", vec![eni("eni-a", "10.0.0.5", 0)]);
    let b = instance("i-b", "vpc-b", vec![eni("eni-b", "10.0.0.5", 0)]);
    let sessions = [("eni-a".to_string(), 1), ("eni-b".to_string(), 1)];
    let t = InventoryTable::build(&[a, b], &sessions, &tags(), 100);
    assert_eq!(t.lookup(ip("10.0.0.5"), 1), Lookup::Miss);
}

#[test]
fn the_cap_leaves_whole_interfaces_out_and_counts_them() {
    let instances: Vec<ec2::Instance> = (0..10)
        .map(|n| {
            instance(
                &format!("i-{n}"),
                "vpc-a",
                vec![eni(&format!("eni-{n}"), &format!("10.0.0.{n}"), 0)],
            )
        })
        .collect();
    // Each interface takes two entries: its address and its session.
    let sessions: Vec<(String, u32)> = (0..10).map(|n| (format!("eni-{n}"), 50 + n)).collect();
    let t = InventoryTable::build(&instances, &sessions, &tags(), 7);
    assert_eq!(t.len(), 6);
    assert_eq!(t.left_out(), 7);
    assert_eq!(
        id(&t.lookup(ip("10.0.0.2"), 52)),
        Some(("i-2", "eni-2", true))
    );
    // Left out whole: neither key of the fourth interface is there.
    assert_eq!(t.lookup(ip("10.0.0.3"), 53), Lookup::Miss);
    let none = InventoryTable::build(&instances, &sessions, &tags(), 0);
    assert!(none.is_empty());
    assert_eq!(none.left_out(), 10);
}

#[test]
fn interfaces_without_an_address_are_skipped() {
    let i = instance("i-x", "vpc-a", vec![eni("eni-x", "", 0)]);
    let t = InventoryTable::build(&[i], &[("eni-x".into(), 1)], &tags(), 10);
    assert!(t.is_empty());
    assert_eq!(t.left_out(), 0);
}

#[test]
fn a_refresh_replaces_every_entry_and_readers_keep_their_snapshot() {
    let inv = Inventory::new(tags(), 100);
    assert_eq!(inv.snapshot().lookup(ip("10.0.0.5"), 1), Lookup::Miss);
    let old = instance("i-old", "vpc-a", vec![eni("eni-old", "10.0.0.5", 0)]);
    let gone = instance("i-gone", "vpc-a", vec![eni("eni-gone", "10.0.0.6", 0)]);
    inv.refresh(&[old, gone], &[("eni-old".into(), 1)]);
    let before = inv.snapshot();
    // The address now belongs to a new instance (the old one terminated,
    // its address reused), and the other instance is gone.
    let new = instance("i-new", "vpc-a", vec![eni("eni-new", "10.0.0.5", 0)]);
    assert_eq!(inv.refresh(&[new], &[("eni-new".into(), 2)]), 0);
    let after = inv.snapshot();
    assert_eq!(
        id(&after.lookup(ip("10.0.0.5"), 2)),
        Some(("i-new", "eni-new", true))
    );
    // The stale session key is gone; the address falls back to the new owner.
    assert_eq!(
        id(&after.lookup(ip("10.0.0.5"), 1)),
        Some(("i-new", "eni-new", false))
    );
    assert_eq!(after.lookup(ip("10.0.0.6"), 1), Lookup::Miss);
    // A reader that took the table before the refresh still has it whole.
    assert_eq!(
        id(&before.lookup(ip("10.0.0.6"), 9)),
        Some(("i-gone", "eni-gone", false))
    );
    assert_eq!(inv.refreshes.load(Ordering::Relaxed), 2);
}
