//! The EC2 operations enrollment makes, typed.
//!
//! Owns: the request parameters and response element names of each
//! operation, and paging through `nextToken`. Input: a [`QueryClient`].
//! Output: [`Instance`], [`MirrorSession`], [`MirrorTarget`],
//! [`MirrorFilter`] values and created ids. Does not: decide what to create
//! or delete (reconcile does).

use super::client::xml::Element;
use super::client::{AwsError, Params, QueryClient, Service};
use std::collections::BTreeMap;

mod change;

/// Every EC2 action the module calls; the IAM policy in deploy/ grants
/// exactly these.
pub const EC2_ACTIONS: &[&str] = &[
    "DescribeInstances",
    "DescribeTrafficMirrorSessions",
    "DescribeTrafficMirrorTargets",
    "DescribeTrafficMirrorFilters",
    "CreateTrafficMirrorSession",
    "DeleteTrafficMirrorSession",
    "CreateTrafficMirrorTarget",
    "DeleteTrafficMirrorTarget",
    "CreateTrafficMirrorFilter",
    "CreateTrafficMirrorFilterRule",
    "DeleteTrafficMirrorFilter",
];

/// Most pages read for one listing (at 1000 per page: a million items);
/// a server that keeps answering with a token is cut off here.
const MAX_PAGES: usize = 10_000;

/// A network interface attached to an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Eni {
    /// `eni-…`.
    pub id: String,
    /// Attachment device index (0: the primary interface).
    pub device_index: u32,
    /// Primary private IPv4 address (the outer source of mirrored packets).
    pub private_ip: String,
    /// Subnet of the interface.
    pub subnet_id: String,
}

/// An instance, as enrollment needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    /// `i-…`.
    pub id: String,
    /// `pending`, `running`, `stopping`, `stopped`, `shutting-down`, `terminated`.
    pub state: String,
    /// VPC of the instance.
    pub vpc_id: String,
    /// Subnet of the instance.
    pub subnet_id: String,
    /// Availability zone.
    pub availability_zone: String,
    /// Tags.
    pub tags: BTreeMap<String, String>,
    /// Attached interfaces.
    pub enis: Vec<Eni>,
}

/// A traffic mirror session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirrorSession {
    /// `tms-…`.
    pub id: String,
    /// Source interface.
    pub eni_id: String,
    /// `tmt-…`.
    pub target_id: String,
    /// `tmf-…`.
    pub filter_id: String,
    /// 1-32766; lower wins when sessions overlap.
    pub session_number: u32,
    /// VXLAN VNI of the session.
    pub vni: Option<u32>,
    /// Tags.
    pub tags: BTreeMap<String, String>,
}

/// A traffic mirror target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirrorTarget {
    /// `tmt-…`.
    pub id: String,
    /// Set for an NLB target.
    pub nlb_arn: Option<String>,
    /// Set for a GWLB endpoint target.
    pub gwlb_endpoint_id: Option<String>,
    /// Set for an ENI target.
    pub eni_id: Option<String>,
    /// Tags.
    pub tags: BTreeMap<String, String>,
}

/// A traffic mirror filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirrorFilter {
    /// `tmf-…`.
    pub id: String,
    /// Tags.
    pub tags: BTreeMap<String, String>,
}

/// What a new session is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSpec {
    /// Source interface.
    pub eni_id: String,
    /// Target id.
    pub target_id: String,
    /// Filter id.
    pub filter_id: String,
    /// Session number.
    pub session_number: u32,
    /// Bytes mirrored per packet (`None`: whole packets).
    pub packet_length: Option<u32>,
    /// VNI (`None`: AWS picks one).
    pub vni: Option<u32>,
    /// Idempotency token (up to 64 ASCII characters).
    pub client_token: String,
    /// Tags to put on the session (the ownership tag among them).
    pub tags: BTreeMap<String, String>,
    /// Free text shown in the console.
    pub description: String,
}

/// What a target is made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetSpec {
    /// A Network Load Balancer (ARN).
    Nlb(String),
    /// A Gateway Load Balancer endpoint (`vpce-…`).
    GwlbEndpoint(String),
    /// A network interface (`eni-…`).
    Eni(String),
}

/// Typed EC2 calls over a Query client.
pub struct Ec2<'a> {
    client: &'a QueryClient,
    url: String,
    page_size: u32,
}

fn tag_params(p: &mut Params, resource_type: &str, tags: &BTreeMap<String, String>) {
    if tags.is_empty() {
        return;
    }
    p.set("TagSpecification.1.ResourceType", resource_type);
    for (i, (k, v)) in tags.iter().enumerate() {
        p.set(format!("TagSpecification.1.Tag.{}.Key", i + 1), k);
        p.set(format!("TagSpecification.1.Tag.{}.Value", i + 1), v);
    }
}

fn parse_u32(e: &Element, path: &str) -> Option<u32> {
    e.text_at(path).and_then(|t| t.parse().ok())
}

fn text(e: &Element, path: &str) -> String {
    e.text_at(path).unwrap_or("").to_string()
}

fn instance(item: &Element) -> Instance {
    let enis = item
        .items("networkInterfaceSet")
        .filter_map(|n| {
            Some(Eni {
                id: n.text_at("networkInterfaceId")?.to_string(),
                device_index: parse_u32(n, "attachment/deviceIndex").unwrap_or(u32::MAX),
                private_ip: text(n, "privateIpAddress"),
                subnet_id: text(n, "subnetId"),
            })
        })
        .collect();
    Instance {
        id: text(item, "instanceId"),
        state: text(item, "instanceState/name"),
        vpc_id: text(item, "vpcId"),
        subnet_id: text(item, "subnetId"),
        availability_zone: text(item, "placement/availabilityZone"),
        tags: item.tags(),
        enis,
    }
}

impl<'a> Ec2<'a> {
    /// EC2 at `url`, listing `page_size` items per page (5-1000).
    pub fn new(client: &'a QueryClient, url: String, page_size: u32) -> Self {
        Self {
            client,
            url,
            page_size,
        }
    }

    pub(super) async fn call(&self, action: &str, params: &Params) -> Result<Element, AwsError> {
        // The list is what the IAM policy grants: a call missing from it
        // would fail in AWS, so it fails here first, in tests.
        if !EC2_ACTIONS.contains(&action) {
            return Err(AwsError::Malformed {
                action: action.to_string(),
                reason: "not in EC2_ACTIONS (deploy/iam/enroll-policy.json)".into(),
            });
        }
        self.client
            .call(Service::Ec2, &self.url, action, params)
            .await
    }

    /// Calls `action` page after page, handing each page's root to `each`.
    async fn paged(
        &self,
        action: &str,
        base: &Params,
        mut each: impl FnMut(&Element),
    ) -> Result<usize, AwsError> {
        let mut token: Option<String> = None;
        for page in 1..=MAX_PAGES {
            let mut p = base.clone();
            p.set("MaxResults", self.page_size.to_string());
            if let Some(t) = &token {
                p.set("NextToken", t.as_str());
            }
            let root = self.call(action, &p).await?;
            each(&root);
            token = root.text_at("nextToken").map(str::to_string);
            if token.is_none() {
                return Ok(page);
            }
        }
        Err(AwsError::Malformed {
            action: action.to_string(),
            reason: format!("still paging after {MAX_PAGES} pages"),
        })
    }

    /// Every instance not terminated or shutting down, over every page and
    /// every reservation.
    pub async fn instances(&self) -> Result<Vec<Instance>, AwsError> {
        let mut p = Params::new();
        p.filter(
            1,
            "instance-state-name",
            &["pending", "running", "stopping", "stopped"],
        );
        let mut out = Vec::new();
        self.paged("DescribeInstances", &p, |root| {
            for r in root.items("reservationSet") {
                out.extend(r.items("instancesSet").map(instance));
            }
        })
        .await?;
        Ok(out)
    }

    /// The named instances (GuardDuty findings), whatever their scope.
    pub async fn instances_by_id(&self, ids: &[String]) -> Result<Vec<Instance>, AwsError> {
        let mut out = Vec::new();
        for chunk in ids.chunks(100) {
            let mut p = Params::new();
            p.list("InstanceId", chunk);
            match self.call("DescribeInstances", &p).await {
                Ok(root) => {
                    for r in root.items("reservationSet") {
                        out.extend(r.items("instancesSet").map(instance));
                    }
                }
                // A finding may name an instance already gone.
                Err(e) if e.code() == Some("InvalidInstanceID.NotFound") => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Every traffic mirror session of the account and region.
    pub async fn sessions(&self) -> Result<Vec<MirrorSession>, AwsError> {
        let mut out = Vec::new();
        self.paged("DescribeTrafficMirrorSessions", &Params::new(), |root| {
            out.extend(root.items("trafficMirrorSessionSet").filter_map(|s| {
                Some(MirrorSession {
                    id: s.text_at("trafficMirrorSessionId")?.to_string(),
                    eni_id: text(s, "networkInterfaceId"),
                    target_id: text(s, "trafficMirrorTargetId"),
                    filter_id: text(s, "trafficMirrorFilterId"),
                    session_number: parse_u32(s, "sessionNumber").unwrap_or(0),
                    vni: parse_u32(s, "virtualNetworkId"),
                    tags: s.tags(),
                })
            }));
        })
        .await?;
        Ok(out)
    }

    /// Every traffic mirror target.
    pub async fn targets(&self) -> Result<Vec<MirrorTarget>, AwsError> {
        let mut out = Vec::new();
        self.paged("DescribeTrafficMirrorTargets", &Params::new(), |root| {
            out.extend(root.items("trafficMirrorTargetSet").filter_map(|t| {
                let opt = |path| t.text_at(path).map(str::to_string);
                Some(MirrorTarget {
                    id: t.text_at("trafficMirrorTargetId")?.to_string(),
                    nlb_arn: opt("networkLoadBalancerArn"),
                    gwlb_endpoint_id: opt("gatewayLoadBalancerEndpointId"),
                    eni_id: opt("networkInterfaceId"),
                    tags: t.tags(),
                })
            }));
        })
        .await?;
        Ok(out)
    }

    /// Every traffic mirror filter.
    pub async fn filters(&self) -> Result<Vec<MirrorFilter>, AwsError> {
        let mut out = Vec::new();
        self.paged("DescribeTrafficMirrorFilters", &Params::new(), |root| {
            out.extend(root.items("trafficMirrorFilterSet").filter_map(|f| {
                Some(MirrorFilter {
                    id: f.text_at("trafficMirrorFilterId")?.to_string(),
                    tags: f.tags(),
                })
            }));
        })
        .await?;
        Ok(out)
    }
}
