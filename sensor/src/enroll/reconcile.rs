//! The plan of a pass: what to create and delete so that the sessions the
//! sensor owns match the instances in scope.
//!
//! Owns: scope matching, choosing the interfaces, the per-interface limit
//! and session numbers, duplicates, which owned targets and filters are
//! unused, and the deterministic ClientToken. Input: what AWS holds
//! ([`Observed`]), the configuration, remembered refusals, the time. Output:
//! a [`Plan`]. Does not: call AWS; it is a pure function, so every rule is
//! tested without a network.
//!
//! Rules: an interface is wanted when its instance is `running` and in
//! scope (mode `existing`, or named by a launch event with mode `launches`)
//! or named by a GuardDuty finding (mode `guardduty`, whatever the scope).
//! An owned session is kept while its instance exists (not terminated) and
//! is in scope or flagged; otherwise, and for duplicates or a session toward
//! another target or filter, it is deleted (mode `cleanup`). A session
//! without the ownership tag is never deleted nor counted as ours.

pub use super::desired::{
    client_token, excluded, out_of_scope, owned, resolve_filter, resolve_target,
};
use super::ec2::{Instance, MirrorFilter, MirrorSession, MirrorTarget, TargetSpec};
use crate::config::EnrollConfig;
use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

/// AWS allows this many sessions per source interface.
pub const SESSIONS_PER_ENI: usize = 3;
/// AWS allows this many source interfaces per interface target (NLB and
/// GWLB endpoint targets take any number).
pub const SOURCES_PER_ENI_TARGET: usize = 10;
/// Highest session number.
const MAX_SESSION_NUMBER: u32 = 32_766;

/// Why an instance was named by an event.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Named {
    /// An EC2 state-change notification.
    Launch,
    /// A GuardDuty finding.
    GuardDuty,
}

/// A refusal AWS gave for an interface, remembered so it is not asked again
/// every pass.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Refusal {
    /// AWS's error code (or `eni_session_limit` when the sensor saw the
    /// interface full).
    pub code: String,
    /// AWS's message.
    pub message: String,
    /// Seconds since the Unix epoch.
    pub at_unix: u64,
}

/// What AWS holds, as one pass read it.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// Instances that are not terminated.
    pub instances: Vec<Instance>,
    /// Every session of the account and region (owned or not).
    pub sessions: Vec<MirrorSession>,
    /// Every target.
    pub targets: Vec<MirrorTarget>,
    /// Every filter.
    pub filters: Vec<MirrorFilter>,
    /// This instance's primary interface, when the target is this ENI.
    pub this_eni: Option<String>,
}

/// An existing resource, or one the pass creates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved<T> {
    /// Use this id.
    Existing(String),
    /// Create it first.
    Create(T),
}

impl<T> Resolved<T> {
    /// The id, or `(new)`.
    pub fn shown(&self) -> &str {
        match self {
            Resolved::Existing(id) => id,
            Resolved::Create(_) => "(new)",
        }
    }
}

/// A session to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateSession {
    /// Source interface.
    pub eni_id: String,
    /// Its instance.
    pub instance_id: String,
    /// The number it gets.
    pub session_number: u32,
    /// `in scope`, `launch event`, `guardduty finding`.
    pub reason: &'static str,
}

/// An owned session to delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteSession {
    /// `tms-…`.
    pub session_id: String,
    /// Its source interface.
    pub eni_id: String,
    /// Why.
    pub reason: String,
}

/// An interface that is wanted but gets no session this pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skip {
    /// Source interface.
    pub eni_id: String,
    /// Its instance.
    pub instance_id: String,
    /// A code (`eni_session_limit`, or AWS's earlier refusal code).
    pub code: String,
    /// Details.
    pub detail: String,
}

/// Everything one pass changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The target sessions point to.
    pub target: Resolved<TargetSpec>,
    /// The filter sessions use.
    pub filter: Resolved<()>,
    /// Sessions to delete (done before the creates, which may need the room).
    pub deletes: Vec<DeleteSession>,
    /// Sessions to create.
    pub creates: Vec<CreateSession>,
    /// Wanted interfaces left alone, and why.
    pub skips: Vec<Skip>,
    /// Owned targets nothing uses any more.
    pub delete_targets: Vec<String>,
    /// Owned filters nothing uses any more.
    pub delete_filters: Vec<String>,
    /// Owned sessions that stay as they are.
    pub kept: usize,
}

impl Plan {
    /// Whether the pass changes nothing.
    pub fn is_empty(&self) -> bool {
        matches!(self.target, Resolved::Existing(_))
            && matches!(self.filter, Resolved::Existing(_))
            && self.deletes.is_empty()
            && self.creates.is_empty()
            && self.delete_targets.is_empty()
            && self.delete_filters.is_empty()
    }
}

/// The plan of one pass. `named` holds instances events pointed at,
/// `refused` interfaces AWS refused earlier.
pub fn plan(
    cfg: &EnrollConfig,
    o: &Observed,
    named: &BTreeMap<String, Named>,
    refused: &BTreeMap<String, Refusal>,
    now: SystemTime,
) -> Result<Plan, String> {
    let target = resolve_target(cfg, o)?;
    let filter = resolve_filter(cfg, o);
    let cleanup = cfg.mode("cleanup");

    // Interfaces to keep (and why they are wanted) or the reason they are not.
    let mut keep: BTreeMap<&str, (&Instance, Option<&'static str>)> = BTreeMap::new();
    let mut unwanted: BTreeMap<&str, String> = BTreeMap::new();
    for i in &o.instances {
        let flagged = cfg.mode("guardduty")
            && named.get(&i.id) == Some(&Named::GuardDuty)
            && excluded(cfg, i).is_none();
        let scope = out_of_scope(cfg, i);
        let mut enis: Vec<_> = i
            .enis
            .iter()
            .filter(|e| cfg.all_enis || e.device_index == 0)
            .collect();
        enis.sort_by_key(|e| (e.device_index, e.id.clone()));
        if scope.is_some() && !flagged {
            for e in &i.enis {
                let why = scope.clone().unwrap_or_default();
                unwanted.insert(&e.id, format!("{}: {why}", i.id));
            }
            continue;
        }
        let reason = if i.state != "running" {
            None
        } else if flagged {
            Some("guardduty finding")
        } else if cfg.mode("existing") {
            Some("in scope")
        } else if cfg.mode("launches") && named.contains_key(&i.id) {
            Some("launch event")
        } else {
            None
        };
        for e in &i.enis {
            if !enis.iter().any(|chosen| chosen.id == e.id) {
                let why = format!("{}: secondary interface (all_enis is off)", i.id);
                unwanted.insert(&e.id, why);
            }
        }
        for e in enis {
            keep.insert(&e.id, (i, reason));
        }
    }

    let target_id = match &target {
        Resolved::Existing(id) => Some(id.as_str()),
        Resolved::Create(_) => None,
    };
    let filter_id = match &filter {
        Resolved::Existing(id) => Some(id.as_str()),
        Resolved::Create(()) => None,
    };
    let mut by_eni: BTreeMap<&str, Vec<&MirrorSession>> = BTreeMap::new();
    for s in &o.sessions {
        by_eni.entry(&s.eni_id).or_default().push(s);
    }

    let mut deletes = Vec::new();
    let mut satisfied: BTreeSet<&str> = BTreeSet::new();
    let mut kept = 0;
    for (eni, sessions) in &by_eni {
        let mut ours: Vec<&&MirrorSession> =
            sessions.iter().filter(|s| owned(cfg, &s.tags)).collect();
        ours.sort_by(|a, b| a.id.cmp(&b.id));
        for s in ours {
            let current =
                Some(s.target_id.as_str()) == target_id && Some(s.filter_id.as_str()) == filter_id;
            let reason = if !keep.contains_key(eni) {
                Some(
                    unwanted
                        .get(eni)
                        .map_or("source instance gone".to_string(), |w| {
                            format!("left scope ({w})")
                        }),
                )
            } else if !current {
                Some("target or filter changed".to_string())
            } else if satisfied.contains(eni) {
                Some("duplicate".to_string())
            } else {
                satisfied.insert(eni);
                None
            };
            match reason {
                Some(reason) if cleanup => deletes.push(DeleteSession {
                    session_id: s.id.clone(),
                    eni_id: s.eni_id.clone(),
                    reason,
                }),
                _ => kept += 1,
            }
        }
    }
    let deleted: BTreeSet<&str> = deletes.iter().map(|d| d.session_id.as_str()).collect();

    // Room left on an interface target, counted over every session using it.
    let eni_target = match &target {
        Resolved::Create(spec) => matches!(spec, TargetSpec::Eni(_)),
        Resolved::Existing(id) => o.targets.iter().any(|t| &t.id == id && t.eni_id.is_some()),
    };
    let mut target_room = eni_target.then(|| {
        let used = o
            .sessions
            .iter()
            .filter(|s| Some(s.target_id.as_str()) == target_id && !deleted.contains(s.id.as_str()))
            .count();
        SOURCES_PER_ENI_TARGET.saturating_sub(used)
    });
    let mut creates = Vec::new();
    let mut skips = Vec::new();
    for (eni, (instance, reason)) in &keep {
        let Some(reason) = reason else { continue };
        if satisfied.contains(eni) {
            continue;
        }
        let skip = |code: &str, detail: String| Skip {
            eni_id: eni.to_string(),
            instance_id: instance.id.clone(),
            code: code.to_string(),
            detail,
        };
        if let Some(r) = refused.get(*eni) {
            let retry_at = r.at_unix.saturating_add(cfg.refused_retry.as_secs());
            let now_unix = now
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            if now_unix < retry_at {
                skips.push(skip(&r.code, format!("refused earlier: {}", r.message)));
                continue;
            }
        }
        let remaining: Vec<&&MirrorSession> = by_eni
            .get(eni)
            .into_iter()
            .flatten()
            .filter(|s| !deleted.contains(s.id.as_str()))
            .collect();
        if remaining.len() >= SESSIONS_PER_ENI {
            let detail = format!("already {} sessions (AWS allows 3)", remaining.len());
            skips.push(skip("eni_session_limit", detail));
            continue;
        }
        let used: BTreeSet<u32> = remaining.iter().map(|s| s.session_number).collect();
        let Some(number) = (cfg.session_number..=MAX_SESSION_NUMBER).find(|n| !used.contains(n))
        else {
            skips.push(skip("no_free_session_number", String::new()));
            continue;
        };
        if let Some(room) = target_room.as_mut() {
            if *room == 0 {
                let detail = format!("the interface target takes {SOURCES_PER_ENI_TARGET} sources");
                skips.push(skip("target_source_limit", detail));
                continue;
            }
            *room -= 1;
        }
        creates.push(CreateSession {
            eni_id: eni.to_string(),
            instance_id: instance.id.clone(),
            session_number: number,
            reason,
        });
    }

    // Targets and filters still referenced once the deletes are done.
    let remaining = o
        .sessions
        .iter()
        .filter(|s| !deleted.contains(s.id.as_str()));
    let (used_targets, used_filters): (BTreeSet<&str>, BTreeSet<&str>) = remaining
        .map(|s| (s.target_id.as_str(), s.filter_id.as_str()))
        .unzip();
    let delete_targets = o
        .targets
        .iter()
        .filter(|t| cleanup && owned(cfg, &t.tags))
        .filter(|t| Some(t.id.as_str()) != target_id && !used_targets.contains(t.id.as_str()))
        .map(|t| t.id.clone())
        .collect();
    let delete_filters = o
        .filters
        .iter()
        .filter(|f| cleanup && owned(cfg, &f.tags))
        .filter(|f| Some(f.id.as_str()) != filter_id && !used_filters.contains(f.id.as_str()))
        .map(|f| f.id.clone())
        .collect();
    Ok(Plan {
        target,
        filter,
        deletes,
        creates,
        skips,
        delete_targets,
        delete_filters,
        kept,
    })
}

#[cfg(test)]
#[path = "reconcile_tests.rs"]
mod tests;
