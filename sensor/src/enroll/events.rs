//! What a queue message means: an EC2 state change or a GuardDuty finding,
//! as EventBridge delivers them to SQS (the event itself as the body, or
//! wrapped in an SNS notification).
//!
//! Owns: reading the event's type and instance id. Input: a message body.
//! Output: an [`Event`], or why the body is malformed. Does not: act on it.

use serde_json::Value;

/// What an event asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// An instance changed state (`pending`, `running`, `stopped`,
    /// `terminated`, ...).
    StateChange {
        /// `i-…`.
        instance_id: String,
        /// The new state.
        state: String,
    },
    /// GuardDuty reported a finding about an instance.
    Finding {
        /// `i-…`.
        instance_id: String,
    },
    /// A well-formed event of another kind (or a finding about no
    /// instance): nothing to do.
    Ignored(String),
}

/// Reads one message body.
pub fn parse(body: &str) -> Result<Event, String> {
    let v: Value = serde_json::from_str(body).map_err(|e| format!("not JSON: {e}"))?;
    // An SNS notification carries the event as a string in `Message`.
    if v.get("Type").and_then(Value::as_str) == Some("Notification") {
        let inner = v
            .get("Message")
            .and_then(Value::as_str)
            .ok_or("SNS notification without Message")?;
        return parse(inner);
    }
    let kind = v
        .get("detail-type")
        .and_then(Value::as_str)
        .ok_or("no detail-type: not an EventBridge event")?;
    let detail = v.get("detail").ok_or("no detail")?;
    let text = |x: Option<&Value>| x.and_then(Value::as_str).map(str::to_string);
    match kind {
        "EC2 Instance State-change Notification" => {
            let instance_id = text(detail.get("instance-id")).ok_or("no detail.instance-id")?;
            let state = text(detail.get("state")).ok_or("no detail.state")?;
            if !instance_id.starts_with("i-") {
                return Err(format!("instance id {instance_id:?}"));
            }
            Ok(Event::StateChange { instance_id, state })
        }
        "GuardDuty Finding" => match detail.pointer("/resource/instanceDetails/instanceId") {
            None | Some(Value::Null) => {
                Ok(Event::Ignored("GuardDuty finding about no instance".into()))
            }
            Some(Value::String(id)) if id.starts_with("i-") => Ok(Event::Finding {
                instance_id: id.clone(),
            }),
            Some(other) => Err(format!("instance id {other}")),
        },
        other => Ok(Event::Ignored(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_state_changes_and_findings() {
        let launch = r#"{"version":"0","id":"7bf73129","detail-type":"EC2 Instance State-change Notification",
            "source":"aws.ec2","account":"123456789012","time":"2026-11-22T09:00:00Z","region":"us-east-1",
            "resources":["arn:aws:ec2:us-east-1:123456789012:instance/i-0abc"],
            "detail":{"instance-id":"i-0abc","state":"running"}}"#;
        assert_eq!(
            parse(launch),
            Ok(Event::StateChange {
                instance_id: "i-0abc".into(),
                state: "running".into()
            })
        );
        let finding = r#"{"detail-type":"GuardDuty Finding","source":"aws.guardduty",
            "detail":{"type":"Recon:EC2/PortProbeUnprotectedPort",
            "resource":{"resourceType":"Instance","instanceDetails":{"instanceId":"i-0def"}}}}"#;
        assert_eq!(
            parse(finding),
            Ok(Event::Finding {
                instance_id: "i-0def".into()
            })
        );
        let sns = serde_json::json!({"Type": "Notification", "Message": finding}).to_string();
        assert_eq!(parse(&sns), parse(finding));
        let iam = r#"{"detail-type":"GuardDuty Finding","detail":{"resource":{"resourceType":"AccessKey"}}}"#;
        assert!(matches!(parse(iam), Ok(Event::Ignored(_))));
        let other = r#"{"detail-type":"AWS API Call via CloudTrail","detail":{}}"#;
        assert_eq!(
            parse(other),
            Ok(Event::Ignored("AWS API Call via CloudTrail".into()))
        );
    }

    #[test]
    fn malformed_bodies_are_errors() {
        for body in [
            "",
            "not json",
            "[]",
            r#"{"detail":{}}"#,
            r#"{"detail-type":"EC2 Instance State-change Notification","detail":{"state":"running"}}"#,
            r#"{"detail-type":"EC2 Instance State-change Notification","detail":{"instance-id":"x","state":"running"}}"#,
            r#"{"detail-type":"GuardDuty Finding","detail":{"resource":{"instanceDetails":{"instanceId":7}}}}"#,
            r#"{"Type":"Notification"}"#,
        ] {
            assert!(parse(body).is_err(), "{body}");
        }
    }
}
