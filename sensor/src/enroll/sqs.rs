//! The SQS calls of the event consumer: long-poll receive, delete.
//!
//! Owns: their Query-protocol parameters (API version 2012-11-05, sent to the
//! queue's URL) and reading the messages out of the answer. Does not: decide
//! what a message means (see `events`).

use super::client::{AwsError, Params, QueryClient, Service};

/// Every SQS action the module calls; the IAM policy grants exactly these.
pub const SQS_ACTIONS: &[&str] = &["ReceiveMessage", "DeleteMessage"];

/// One received message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// SQS's id.
    pub id: String,
    /// What deleting it takes.
    pub receipt_handle: String,
    /// The body (an EventBridge event, as JSON).
    pub body: String,
}

/// A queue.
pub struct Queue<'a> {
    client: &'a QueryClient,
    url: String,
}

fn listed(action: &str) -> Result<(), AwsError> {
    if SQS_ACTIONS.contains(&action) {
        Ok(())
    } else {
        Err(AwsError::Malformed {
            action: action.to_string(),
            reason: "not in SQS_ACTIONS (deploy/iam/enroll-policy.json)".into(),
        })
    }
}

impl<'a> Queue<'a> {
    /// The queue at `url`.
    pub fn new(client: &'a QueryClient, url: &str) -> Self {
        Self {
            client,
            url: url.to_string(),
        }
    }

    /// Waits up to `wait_seconds` (0-20) for up to `max` (1-10) messages.
    pub async fn receive(&self, wait_seconds: u32, max: u32) -> Result<Vec<Message>, AwsError> {
        let mut p = Params::new();
        p.set("QueueUrl", self.url.as_str())
            .set("MaxNumberOfMessages", max.clamp(1, 10).to_string())
            .set("WaitTimeSeconds", wait_seconds.min(20).to_string());
        listed("ReceiveMessage")?;
        let root = self
            .client
            .call(Service::Sqs, &self.url, "ReceiveMessage", &p)
            .await?;
        let result = root.child("ReceiveMessageResult");
        Ok(result
            .into_iter()
            .flat_map(|r| r.children_named("Message"))
            .filter_map(|m| {
                Some(Message {
                    id: m.text_at("MessageId").unwrap_or("").to_string(),
                    receipt_handle: m.text_at("ReceiptHandle")?.to_string(),
                    body: m.child("Body").map_or(String::new(), |b| b.text.clone()),
                })
            })
            .collect())
    }

    /// Deletes a handled message.
    pub async fn delete(&self, receipt_handle: &str) -> Result<(), AwsError> {
        let mut p = Params::new();
        p.set("QueueUrl", self.url.as_str())
            .set("ReceiptHandle", receipt_handle);
        listed("DeleteMessage")?;
        self.client
            .call(Service::Sqs, &self.url, "DeleteMessage", &p)
            .await
            .map(drop)
    }
}
