//! Enrollment: the sensor turns traffic mirroring on toward itself for the
//! instances in scope, and removes what it no longer needs.
//!
//! Owns: the EC2 and SQS Query-protocol client ([`client`]), the typed EC2
//! operations ([`ec2`]), the pure plan of a pass ([`reconcile`]), carrying
//! a pass out ([`pass`]), what is remembered between passes ([`state`]) and
//! the `sensor enroll` commands ([`cli`]), and in `sensor run` the loop
//! ([`background`]) fed by queue events ([`sqs`], [`events`]) and reporting
//! to `/metrics` and `/readyz` ([`status`]), and the inventory each pass
//! refreshes ([`inventory`]) from which flow records learn the workload
//! they were mirrored from ([`enrich`]). Input: the `[enroll]`
//! configuration and AWS. Output: mirror sessions (tagged with the
//! ownership tag), a plan or status table. Does not: touch a session,
//! target or filter without the ownership tag, or sit on the packet path.
//!
//! Several sensors may run passes at once: creates carry a ClientToken
//! derived from what they create (the same on every sensor), each pass
//! re-lists before planning, and duplicates that slip through are resolved
//! the same way by every sensor (the smallest session id stays).

pub mod background;
pub mod cli;
pub mod client;
pub mod desired;
pub mod ec2;
pub mod enrich;
pub mod events;
pub mod inventory;
pub mod pass;
pub mod reconcile;
pub mod sqs;
pub mod state;
pub mod status;

pub use pass::{Enroller, PassReport};

#[cfg(test)]
mod tests {
    /// deploy/iam/enroll-policy.json grants exactly the calls the module
    /// makes, plus `ec2:CreateTags`, which AWS checks for tags given at
    /// creation (the policy allows it for those creates only).
    #[test]
    fn the_iam_policy_grants_exactly_the_calls_made() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../deploy/iam/enroll-policy.json"
        );
        let policy: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let mut granted = std::collections::BTreeSet::new();
        for statement in policy["Statement"].as_array().unwrap() {
            assert_eq!(statement["Effect"], "Allow");
            match &statement["Action"] {
                serde_json::Value::String(a) => {
                    granted.insert(a.clone());
                }
                list => {
                    for a in list.as_array().unwrap() {
                        granted.insert(a.as_str().unwrap().to_string());
                    }
                }
            }
        }
        let mut made: std::collections::BTreeSet<String> = super::ec2::EC2_ACTIONS
            .iter()
            .map(|a| format!("ec2:{a}"))
            .chain(super::sqs::SQS_ACTIONS.iter().map(|a| format!("sqs:{a}")))
            .collect();
        made.insert("ec2:CreateTags".to_string());
        assert_eq!(granted, made);
    }
}
