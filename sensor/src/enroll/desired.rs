//! What is wanted: scope matching, ownership, the target and filter to
//! use, and the idempotency tokens of creates.
//!
//! Owns: the rules that say whether an instance is in scope, whether a
//! resource is the sensor's, which target and filter sessions point to, and
//! the ClientToken every sensor of a fleet derives alike. Input: the
//! configuration and what AWS holds. Output: answers, no changes. Does not:
//! compare wanted with present (reconcile does).

use super::ec2::{Instance, MirrorTarget, TargetSpec};
use super::reconcile::{Observed, Resolved};
use crate::config::EnrollConfig;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

/// ClientTokens change every this long, so that an interface that left and
/// came back is not answered with the session deleted earlier (AWS
/// remembers a token for a while).
const TOKEN_PERIOD: Duration = Duration::from_secs(3600);

fn tag_matches(tags: &BTreeMap<String, String>, key: &str, want: &str) -> bool {
    tags.get(key).is_some_and(|v| want == "*" || v == want)
}

/// Why `i` must never be mirrored (it carries a `tags_exclude` tag: a
/// sensor), or `None`.
pub fn excluded(cfg: &EnrollConfig, i: &Instance) -> Option<String> {
    cfg.tags_exclude
        .iter()
        .find(|(k, v)| tag_matches(&i.tags, k, v))
        .map(|(k, v)| format!("tag {k}={v} excludes it"))
}

/// Why `i` is out of scope, or `None` when it is in.
pub fn out_of_scope(cfg: &EnrollConfig, i: &Instance) -> Option<String> {
    if let Some(why) = excluded(cfg, i) {
        return Some(why);
    }
    if !cfg.vpc_ids.is_empty() && !cfg.vpc_ids.contains(&i.vpc_id) {
        return Some(format!("VPC {} not in scope", i.vpc_id));
    }
    if !cfg.subnet_ids.is_empty() && !cfg.subnet_ids.contains(&i.subnet_id) {
        return Some(format!("subnet {} not in scope", i.subnet_id));
    }
    if let Some((k, v)) = cfg.tags.iter().find(|(k, v)| !tag_matches(&i.tags, k, v)) {
        return Some(format!("tag {k}={v} missing"));
    }
    if !cfg.tags_any.is_empty() && !cfg.tags_any.iter().any(|(k, v)| tag_matches(&i.tags, k, v)) {
        return Some("none of tags_any".to_string());
    }
    None
}

/// Whether the ownership tag is on `tags`.
pub fn owned(cfg: &EnrollConfig, tags: &BTreeMap<String, String>) -> bool {
    tags.get(&cfg.owner_tag_key) == Some(&cfg.owner_tag_value)
}

/// The idempotency token of a create: the same for every sensor of the
/// fleet asking for the same thing within the same hour. 48 hex digits
/// leave room for suffixes within AWS's 64 characters.
pub fn client_token(parts: &[&str], now: SystemTime) -> String {
    use sha2::Digest;
    let period = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / TOKEN_PERIOD.as_secs());
    let mut h = sha2::Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    h.update(period.to_be_bytes());
    let digest = h.finalize();
    digest[..24].iter().map(|b| format!("{b:02x}")).collect()
}

/// The target sessions point to, from the configuration and what exists.
pub fn resolve_target(cfg: &EnrollConfig, o: &Observed) -> Result<Resolved<TargetSpec>, String> {
    let spec = if !cfg.target_id.is_empty() {
        return Ok(Resolved::Existing(cfg.target_id.clone()));
    } else if !cfg.target_nlb_arn.is_empty() {
        TargetSpec::Nlb(cfg.target_nlb_arn.clone())
    } else if !cfg.target_gwlb_endpoint_id.is_empty() {
        TargetSpec::GwlbEndpoint(cfg.target_gwlb_endpoint_id.clone())
    } else if cfg.target_this_eni {
        let eni = o
            .this_eni
            .clone()
            .ok_or("target_this_eni: this instance's interface is unknown")?;
        TargetSpec::Eni(eni)
    } else {
        return Err("no mirror target: set enroll.target_id, target_nlb_arn, \
                    target_gwlb_endpoint_id or target_this_eni"
            .to_string());
    };
    let same = |t: &&MirrorTarget| match &spec {
        TargetSpec::Nlb(a) => t.nlb_arn.as_ref() == Some(a),
        TargetSpec::GwlbEndpoint(e) => t.gwlb_endpoint_id.as_ref() == Some(e),
        TargetSpec::Eni(e) => t.eni_id.as_ref() == Some(e),
    };
    // An owned target first, so that every sensor of the fleet picks the
    // same; the smallest id breaks ties.
    let mut matching: Vec<&MirrorTarget> = o.targets.iter().filter(same).collect();
    matching.sort_by_key(|t| (!owned(cfg, &t.tags), t.id.clone()));
    Ok(match matching.first() {
        Some(t) => Resolved::Existing(t.id.clone()),
        None => Resolved::Create(spec),
    })
}

/// The filter sessions use.
pub fn resolve_filter(cfg: &EnrollConfig, o: &Observed) -> Resolved<()> {
    if !cfg.filter_id.is_empty() {
        return Resolved::Existing(cfg.filter_id.clone());
    }
    o.filters
        .iter()
        .filter(|f| owned(cfg, &f.tags))
        .map(|f| f.id.clone())
        .min()
        .map_or(Resolved::Create(()), Resolved::Existing)
}
