//! The EC2 calls that change something: create and delete sessions,
//! targets and filters (with the filter's accept-all rules).
//!
//! Owns: their parameters (ClientToken, tags at creation) and the ids they
//! return. Does not: decide what to change (reconcile does).

use super::{Ec2, SessionSpec, TargetSpec, tag_params};
use crate::enroll::client::xml::Element;
use crate::enroll::client::{AwsError, Params};
use std::collections::BTreeMap;

impl Ec2<'_> {
    fn created_id(action: &str, root: &Element, path: &str) -> Result<String, AwsError> {
        root.text_at(path)
            .map(str::to_string)
            .ok_or_else(|| AwsError::Malformed {
                action: action.to_string(),
                reason: format!("no {path}"),
            })
    }

    /// Creates a session; returns its id and its VNI when the answer says.
    pub async fn create_session(&self, s: &SessionSpec) -> Result<(String, Option<u32>), AwsError> {
        let mut p = Params::new();
        p.set("NetworkInterfaceId", s.eni_id.as_str())
            .set("TrafficMirrorTargetId", s.target_id.as_str())
            .set("TrafficMirrorFilterId", s.filter_id.as_str())
            .set("SessionNumber", s.session_number.to_string())
            .set("ClientToken", s.client_token.as_str())
            .set("Description", s.description.as_str());
        if let Some(n) = s.packet_length {
            p.set("PacketLength", n.to_string());
        }
        if let Some(v) = s.vni {
            p.set("VirtualNetworkId", v.to_string());
        }
        tag_params(&mut p, "traffic-mirror-session", &s.tags);
        let action = "CreateTrafficMirrorSession";
        let root = self.call(action, &p).await?;
        let id = Self::created_id(action, &root, "trafficMirrorSession/trafficMirrorSessionId")?;
        let vni = root
            .text_at("trafficMirrorSession/virtualNetworkId")
            .and_then(|v| v.parse().ok());
        Ok((id, vni))
    }

    /// Deletes a session.
    pub async fn delete_session(&self, id: &str) -> Result<(), AwsError> {
        let mut p = Params::new();
        p.set("TrafficMirrorSessionId", id);
        self.call("DeleteTrafficMirrorSession", &p).await.map(drop)
    }

    /// Creates a target; returns its id.
    pub async fn create_target(
        &self,
        spec: &TargetSpec,
        client_token: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<String, AwsError> {
        let mut p = Params::new();
        match spec {
            TargetSpec::Nlb(arn) => p.set("NetworkLoadBalancerArn", arn.as_str()),
            TargetSpec::GwlbEndpoint(id) => p.set("GatewayLoadBalancerEndpointId", id.as_str()),
            TargetSpec::Eni(id) => p.set("NetworkInterfaceId", id.as_str()),
        };
        p.set("ClientToken", client_token)
            .set("Description", "mirror sensor");
        tag_params(&mut p, "traffic-mirror-target", tags);
        let action = "CreateTrafficMirrorTarget";
        let root = self.call(action, &p).await?;
        Self::created_id(action, &root, "trafficMirrorTarget/trafficMirrorTargetId")
    }

    /// Deletes a target.
    pub async fn delete_target(&self, id: &str) -> Result<(), AwsError> {
        let mut p = Params::new();
        p.set("TrafficMirrorTargetId", id);
        self.call("DeleteTrafficMirrorTarget", &p).await.map(drop)
    }

    /// Creates an accept-all filter (both directions, IPv4 and IPv6), with
    /// Amazon DNS traffic mirrored too when `amazon_dns`; returns its id.
    pub async fn create_accept_all_filter(
        &self,
        client_token: &str,
        amazon_dns: bool,
        tags: &BTreeMap<String, String>,
    ) -> Result<String, AwsError> {
        let mut p = Params::new();
        p.set("ClientToken", client_token)
            .set("Description", "mirror sensor: accept all");
        if amazon_dns {
            p.set("NetworkService.1", "amazon-dns");
        }
        tag_params(&mut p, "traffic-mirror-filter", tags);
        let action = "CreateTrafficMirrorFilter";
        let root = self.call(action, &p).await?;
        let id = Self::created_id(action, &root, "trafficMirrorFilter/trafficMirrorFilterId")?;
        let rules = [
            ("ingress", 100, "0.0.0.0/0"),
            ("ingress", 101, "::/0"),
            ("egress", 100, "0.0.0.0/0"),
            ("egress", 101, "::/0"),
        ];
        for (direction, number, cidr) in rules {
            let mut r = Params::new();
            r.set("TrafficMirrorFilterId", id.as_str())
                .set("TrafficDirection", direction)
                .set("RuleNumber", number.to_string())
                .set("RuleAction", "accept")
                .set("SourceCidrBlock", cidr)
                .set("DestinationCidrBlock", cidr)
                .set(
                    "ClientToken",
                    format!("{client_token}-{direction}-{number}"),
                );
            self.call("CreateTrafficMirrorFilterRule", &r).await?;
        }
        Ok(id)
    }

    /// Deletes a filter.
    pub async fn delete_filter(&self, id: &str) -> Result<(), AwsError> {
        let mut p = Params::new();
        p.set("TrafficMirrorFilterId", id);
        self.call("DeleteTrafficMirrorFilter", &p).await.map(drop)
    }
}
