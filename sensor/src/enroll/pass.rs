//! One reconcile pass against AWS: read, plan, apply.
//!
//! Owns: the [`Enroller`] (client, configuration, remembered state), the
//! order of the changes (target and filter, deletes, creates, then unused
//! targets and filters), what a refusal means, and the [`PassReport`].
//! Input: the `[enroll]` configuration. Output: changes in AWS and a report.
//! Does not: schedule passes or read events (the loop does).

use super::client::credentials::{CredentialProvider, Credentials, Imds};
use super::client::http::HttpClient;
use super::client::{AwsError, CallPolicy, CallStats, QueryClient, Service};
use super::ec2::{Ec2, SessionSpec, TargetSpec};
use super::inventory::Inventory;
use super::reconcile::{self, Observed, Plan, Refusal, Resolved};
use super::state::EnrollState;
use crate::config::EnrollConfig;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

/// Largest answer read from AWS (a page of 1000 instances is a few MiB).
const MAX_RESPONSE_BYTES: usize = 64 << 20;

/// What a pass did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PassReport {
    /// Sessions created.
    pub created: usize,
    /// Sessions deleted.
    pub deleted: usize,
    /// Targets and filters created.
    pub resources_created: usize,
    /// Targets and filters deleted.
    pub resources_deleted: usize,
    /// Interfaces AWS refused this pass: (interface, code).
    pub refused: Vec<(String, String)>,
    /// Calls that failed for another reason (the next pass tries again).
    pub errors: Vec<String>,
    /// Sessions created, with a known VNI: (interface, VNI).
    pub created_vnis: Vec<(String, u32)>,
}

/// Whether AWS's answer to a create means "not this interface" (remember,
/// do not ask again every pass) rather than a passing trouble.
fn is_refusal(code: &str) -> bool {
    code != "RequestLimitExceeded"
        && (code.contains("NotSupported") || code.contains("LimitExceeded"))
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Enrollment against one region: the client and what it remembers.
pub struct Enroller {
    cfg: EnrollConfig,
    client: QueryClient,
    imds: Imds,
    ec2_url: String,
    state: EnrollState,
    state_file: Option<PathBuf>,
    inventory: Option<Arc<Inventory>>,
}

impl Enroller {
    /// Builds the client: credentials from the environment or IMDS, the
    /// region from the configuration or IMDS.
    pub async fn connect(cfg: &EnrollConfig) -> Result<Self, AwsError> {
        let http =
            HttpClient::new(cfg.request_timeout, MAX_RESPONSE_BYTES).map_err(AwsError::Local)?;
        let imds = Imds::new(http.clone(), &cfg.imds_endpoint);
        let env = Credentials::from_vars(|k| std::env::var(k).ok());
        let region = if cfg.region.is_empty() {
            imds.get("meta-data/placement/region").await?
        } else {
            cfg.region.clone()
        };
        let ec2_url = if cfg.endpoint.is_empty() {
            Service::Ec2.default_endpoint(&region)
        } else {
            cfg.endpoint.clone()
        };
        let policy = CallPolicy {
            max_attempts: cfg.max_attempts,
            backoff_base: cfg.backoff_base,
            max_calls_per_second: cfg.max_calls_per_second,
        };
        let credentials = CredentialProvider::new(env, imds.clone());
        let client = QueryClient::new(http, credentials, region, policy);
        let state_file = (!cfg.state_file.is_empty()).then(|| PathBuf::from(&cfg.state_file));
        let state = EnrollState::load(state_file.as_ref()).map_err(AwsError::Local)?;
        Ok(Self {
            cfg: cfg.clone(),
            client,
            imds,
            ec2_url,
            state,
            state_file,
            inventory: None,
        })
    }

    /// Refresh `inventory` with what each [`Self::pass`] lists.
    pub fn set_inventory(&mut self, inventory: Arc<Inventory>) {
        self.inventory = Some(inventory);
    }

    /// The Query client (SQS calls share its pacing and credentials).
    pub fn client(&self) -> &QueryClient {
        &self.client
    }

    /// Counters of the client.
    pub fn call_stats(&self) -> Arc<CallStats> {
        self.client.stats()
    }

    /// The configuration.
    pub fn config(&self) -> &EnrollConfig {
        &self.cfg
    }

    /// What is remembered.
    pub fn state(&self) -> &EnrollState {
        &self.state
    }

    /// Remembers an instance an event named (and saves the state).
    pub fn name_instance(&mut self, instance: &str, why: reconcile::Named) -> Result<(), String> {
        self.state.name(instance, why, unix(SystemTime::now()));
        self.state.save(self.state_file.as_ref())
    }

    fn ec2(&self) -> Ec2<'_> {
        Ec2::new(&self.client, self.ec2_url.clone(), self.cfg.page_size)
    }

    /// Reads what AWS holds.
    pub async fn observe(&self) -> Result<Observed, AwsError> {
        let ec2 = self.ec2();
        let mut instances = ec2.instances().await?;
        // GuardDuty may name instances the listing already has; the rest
        // are looked up by id (they may be out of the listed states).
        let flagged: Vec<String> = self
            .state
            .named
            .iter()
            .filter(|(id, (why, _))| {
                *why == reconcile::Named::GuardDuty && !instances.iter().any(|i| &i.id == *id)
            })
            .map(|(id, _)| id.clone())
            .collect();
        if self.cfg.mode("guardduty") && !flagged.is_empty() {
            let extra = ec2.instances_by_id(&flagged).await?;
            instances.extend(extra.into_iter().filter(|i| i.state != "terminated"));
        }
        let this_eni = if self.cfg.target_this_eni {
            let mac = self.imds.get("meta-data/mac").await?;
            let path = format!("meta-data/network/interfaces/macs/{mac}/interface-id");
            Some(self.imds.get(&path).await?)
        } else {
            None
        };
        Ok(Observed {
            instances,
            sessions: ec2.sessions().await?,
            targets: ec2.targets().await?,
            filters: ec2.filters().await?,
            this_eni,
        })
    }

    /// The plan for what `observed` shows.
    pub fn plan(&self, observed: &Observed) -> Result<Plan, String> {
        reconcile::plan(
            &self.cfg,
            observed,
            &self.state.named_now(),
            &self.state.refused,
            SystemTime::now(),
        )
    }

    fn owner_tags(&self) -> BTreeMap<String, String> {
        BTreeMap::from([(
            self.cfg.owner_tag_key.clone(),
            self.cfg.owner_tag_value.clone(),
        )])
    }

    /// Carries out `plan` (nothing when `dry_run`).
    pub async fn apply(&mut self, plan: &Plan) -> PassReport {
        let mut report = PassReport::default();
        if self.cfg.dry_run {
            return report;
        }
        let now = SystemTime::now();
        let owner = self.cfg.owner_tag_value.clone();
        let ec2 = self.ec2();
        let target_id = match &plan.target {
            Resolved::Existing(id) => id.clone(),
            Resolved::Create(spec) => {
                let key = match spec {
                    TargetSpec::Nlb(a) => a.as_str(),
                    TargetSpec::GwlbEndpoint(e) | TargetSpec::Eni(e) => e.as_str(),
                };
                let token = reconcile::client_token(&["target", &owner, key], now);
                match ec2.create_target(spec, &token, &self.owner_tags()).await {
                    Ok(id) => {
                        report.resources_created += 1;
                        id
                    }
                    Err(e) => {
                        report.errors.push(e.to_string());
                        return report;
                    }
                }
            }
        };
        let filter_id = match &plan.filter {
            Resolved::Existing(id) => id.clone(),
            Resolved::Create(()) => {
                let token = reconcile::client_token(&["filter", &owner], now);
                let dns = self.cfg.filter_amazon_dns;
                match ec2
                    .create_accept_all_filter(&token, dns, &self.owner_tags())
                    .await
                {
                    Ok(id) => {
                        report.resources_created += 1;
                        id
                    }
                    Err(e) => {
                        report.errors.push(e.to_string());
                        return report;
                    }
                }
            }
        };
        for d in &plan.deletes {
            match ec2.delete_session(&d.session_id).await {
                Ok(()) => report.deleted += 1,
                // Another sensor of the fleet deleted it first.
                Err(e) if e.code() == Some("InvalidTrafficMirrorSessionId.NotFound") => {}
                Err(e) => report.errors.push(e.to_string()),
            }
        }
        let mut refusals = Vec::new();
        for c in &plan.creates {
            let number = c.session_number.to_string();
            let spec = SessionSpec {
                eni_id: c.eni_id.clone(),
                target_id: target_id.clone(),
                filter_id: filter_id.clone(),
                session_number: c.session_number,
                packet_length: (self.cfg.packet_length > 0).then_some(self.cfg.packet_length),
                vni: (self.cfg.vni_policy == "fixed").then_some(self.cfg.vni),
                client_token: reconcile::client_token(&[&c.eni_id, &target_id, &number], now),
                tags: self.owner_tags(),
                description: format!("mirror sensor: {} ({})", c.instance_id, c.reason),
            };
            match ec2.create_session(&spec).await {
                Ok((_, vni)) => {
                    report.created += 1;
                    if let Some(vni) = vni.or(spec.vni) {
                        report.created_vnis.push((c.eni_id.clone(), vni));
                    }
                }
                Err(AwsError::Api { code, message, .. }) if is_refusal(&code) => {
                    report.refused.push((c.eni_id.clone(), code.clone()));
                    let at_unix = unix(now);
                    refusals.push((
                        c.eni_id.clone(),
                        Refusal {
                            code,
                            message,
                            at_unix,
                        },
                    ));
                }
                Err(e) => report.errors.push(e.to_string()),
            }
        }
        for t in &plan.delete_targets {
            match ec2.delete_target(t).await {
                Ok(()) => report.resources_deleted += 1,
                Err(e) => report.errors.push(e.to_string()),
            }
        }
        for f in &plan.delete_filters {
            match ec2.delete_filter(f).await {
                Ok(()) => report.resources_deleted += 1,
                Err(e) => report.errors.push(e.to_string()),
            }
        }
        // The plan's own limit skips are remembered like AWS's refusals.
        for s in plan.skips.iter().filter(|s| s.code == "eni_session_limit") {
            if !self.state.refused.contains_key(&s.eni_id) {
                let refusal = Refusal {
                    code: s.code.clone(),
                    message: s.detail.clone(),
                    at_unix: unix(now),
                };
                refusals.push((s.eni_id.clone(), refusal));
            }
        }
        let changed = !refusals.is_empty();
        for (eni, r) in refusals {
            self.state.refuse(&eni, r);
        }
        if changed && let Err(e) = self.state.save(self.state_file.as_ref()) {
            report.errors.push(e);
        }
        report
    }

    /// One full pass: observe, plan, apply, then refresh the inventory
    /// (when there is one) from what was listed and created.
    pub async fn pass(&mut self) -> Result<(Plan, PassReport), String> {
        let observed = self.observe().await.map_err(|e| e.to_string())?;
        let plan = self.plan(&observed)?;
        let report = self.apply(&plan).await;
        if let Some(inventory) = &self.inventory {
            let sessions: Vec<(String, u32)> = observed
                .sessions
                .iter()
                .filter_map(|s| Some((s.eni_id.clone(), s.vni?)))
                .chain(report.created_vnis.iter().cloned())
                .collect();
            let left_out = inventory.refresh(&observed.instances, &sessions);
            if left_out > 0 {
                eprintln!(
                    "sensor: enroll: enrich_max_entries reached: {left_out} interfaces left out \
                     of the inventory"
                );
            }
        }
        Ok((plan, report))
    }
}
