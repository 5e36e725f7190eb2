//! A client of the AWS Query protocol (EC2, SQS): form-encoded POSTs,
//! SigV4-signed, answered with XML.
//!
//! Owns: encoding parameters (1-based lists), signing, sending, reading the
//! answer or the error document, retrying throttling and server errors with
//! jittered exponential backoff, and spacing calls to at most a configured
//! rate. Inputs: an action and its parameters. Output: the response's root
//! [`xml::Element`] or an [`AwsError`] with AWS's code and request id. Does
//! not: know what an operation means (see `ec2` and `sqs`).

pub mod credentials;
pub mod error;
pub mod http;
mod sign;
pub mod xml;

use credentials::CredentialProvider;
pub use error::AwsError;
use http::{HttpClient, Target};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};
use tokio::sync::Mutex;
use tokio::time::Instant;

/// RFC 3986 unreserved characters stay as they are; SigV4 and the Query
/// protocol expect everything else percent-encoded.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// The longest single wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(20);

/// The parameters of one call, in the order they were added.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// No parameters.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `name=value`.
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.0.push((name.into(), value.into()));
        self
    }

    /// Adds a list as `prefix.1=..&prefix.2=..` (the Query protocol counts
    /// from 1).
    pub fn list<S: AsRef<str>>(&mut self, prefix: &str, values: &[S]) -> &mut Self {
        for (i, v) in values.iter().enumerate() {
            self.set(format!("{prefix}.{}", i + 1), v.as_ref());
        }
        self
    }

    /// Adds filter number `n` (from 1): `Filter.n.Name` and its values.
    pub fn filter<S: AsRef<str>>(&mut self, n: usize, name: &str, values: &[S]) -> &mut Self {
        self.set(format!("Filter.{n}.Name"), name);
        self.list(&format!("Filter.{n}.Value"), values)
    }

    /// The value of `name`, if set.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The form body: `Action`, `Version`, then the parameters.
    pub fn encode(&self, action: &str, version: &str) -> String {
        let mut out = format!("Action={action}&Version={version}");
        for (k, v) in &self.0 {
            out.push('&');
            out.extend(utf8_percent_encode(k, QUERY_VALUE));
            out.push('=');
            out.extend(utf8_percent_encode(v, QUERY_VALUE));
        }
        out
    }
}

/// An AWS service spoken over the Query protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// EC2 (API version 2016-11-15).
    Ec2,
    /// SQS (API version 2012-11-05).
    Sqs,
}

impl Service {
    fn signing_name(self) -> &'static str {
        match self {
            Service::Ec2 => "ec2",
            Service::Sqs => "sqs",
        }
    }

    fn version(self) -> &'static str {
        match self {
            Service::Ec2 => "2016-11-15",
            Service::Sqs => "2012-11-05",
        }
    }

    /// The regional endpoint.
    pub fn default_endpoint(self, region: &str) -> String {
        format!("https://{}.{region}.amazonaws.com/", self.signing_name())
    }
}

/// Retry and pacing of calls.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CallPolicy {
    /// Tries per call, the first included.
    pub max_attempts: u32,
    /// Backoff before the second try; doubles per try, capped at 20 s, and
    /// each wait is drawn uniformly below it (full jitter).
    pub backoff_base: Duration,
    /// Calls started per second at most, over all callers of the client.
    pub max_calls_per_second: u32,
}

/// Counts of what the client did, for metrics and tests.
#[derive(Debug, Default)]
pub struct CallStats {
    /// HTTP requests sent (retries included).
    pub requests: AtomicU64,
    /// Answers that were throttling errors.
    pub throttled: AtomicU64,
    /// Attempts repeated after a retryable error.
    pub retries: AtomicU64,
}

/// Signs and sends Query-protocol calls; shared by reference.
pub struct QueryClient {
    http: HttpClient,
    credentials: CredentialProvider,
    region: String,
    policy: CallPolicy,
    next_slot: Mutex<Instant>,
    stats: Arc<CallStats>,
}

impl QueryClient {
    /// A client for `region`.
    pub fn new(
        http: HttpClient,
        credentials: CredentialProvider,
        region: String,
        policy: CallPolicy,
    ) -> Self {
        Self {
            http,
            credentials,
            region,
            policy,
            next_slot: Mutex::new(Instant::now()),
            stats: Arc::new(CallStats::default()),
        }
    }

    /// The counters of this client.
    pub fn stats(&self) -> Arc<CallStats> {
        Arc::clone(&self.stats)
    }

    /// The region calls are signed for.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// Where credentials come from.
    pub fn credential_source(&self) -> &'static str {
        self.credentials.source()
    }

    /// Calls `action` at `url`, retrying what may succeed later.
    pub async fn call(
        &self,
        service: Service,
        url: &str,
        action: &str,
        params: &Params,
    ) -> Result<xml::Element, AwsError> {
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            match self.call_once(service, url, action, params).await {
                Ok(root) => return Ok(root),
                Err(e) if e.is_retryable() && attempt < self.policy.max_attempts => {
                    if e.is_throttling() {
                        self.stats.throttled.fetch_add(1, Ordering::Relaxed);
                    }
                    self.stats.retries.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(backoff(self.policy.backoff_base, attempt)).await;
                }
                Err(e) => {
                    if e.is_throttling() {
                        self.stats.throttled.fetch_add(1, Ordering::Relaxed);
                    }
                    return Err(e);
                }
            }
        }
    }

    /// Waits for the next free slot of the rate bound.
    async fn pace(&self) {
        let rate = self.policy.max_calls_per_second.max(1);
        let spacing = Duration::from_secs(1) / rate;
        let start = {
            let mut next = self.next_slot.lock().await;
            let now = Instant::now();
            let start = (*next).max(now);
            *next = start + spacing;
            start
        };
        tokio::time::sleep_until(start).await;
    }

    async fn call_once(
        &self,
        service: Service,
        url: &str,
        action: &str,
        params: &Params,
    ) -> Result<xml::Element, AwsError> {
        let transport = |reason: String| AwsError::Transport {
            action: action.to_string(),
            reason,
        };
        let target = Target::parse(url).map_err(transport)?;
        let body = params.encode(action, service.version()).into_bytes();
        let mut headers = vec![
            ("host".to_string(), target.authority.clone()),
            (
                "content-type".to_string(),
                "application/x-www-form-urlencoded; charset=utf-8".to_string(),
            ),
        ];
        // Paced before signing, so a wait never ages the signature.
        self.pace().await;
        let credentials = self.credentials.get().await?;
        sign::sign_request(
            &credentials,
            &self.region,
            service.signing_name(),
            url,
            &mut headers,
            &body,
            SystemTime::now(),
        )?;
        // The HTTP layer sets Host itself.
        headers.retain(|(k, _)| k != "host");
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let response = self
            .http
            .send("POST", &target, &headers, body)
            .await
            .map_err(transport)?;
        if response.status >= 300 {
            return Err(
                error::from_document(action, response.status, &response.body).unwrap_or(
                    AwsError::Status {
                        action: action.to_string(),
                        status: response.status,
                    },
                ),
            );
        }
        xml::parse(&response.body).map_err(|reason| AwsError::Malformed {
            action: action.to_string(),
            reason,
        })
    }
}

/// The wait before try `attempt + 1`: uniform in `[0, min(20 s, base·2^(attempt-1))]`.
pub fn backoff(base: Duration, attempt: u32) -> Duration {
    let ceiling = base
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
        .min(MAX_BACKOFF);
    let mut bytes = [0u8; 4];
    // Without randomness the full ceiling is a safe (if synchronised) wait.
    let fraction =
        match ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes) {
            Ok(()) => f64::from(u32::from_le_bytes(bytes)) / f64::from(u32::MAX),
            Err(_) => 1.0,
        };
    ceiling.mul_f64(fraction)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_lists_from_one_and_escapes_values() {
        let mut p = Params::new();
        p.filter(1, "tag:team", &["a b", "x/y"])
            .list("InstanceId", &["i-1", "i-2"]);
        assert_eq!(
            p.encode("DescribeInstances", "2016-11-15"),
            "Action=DescribeInstances&Version=2016-11-15&Filter.1.Name=tag%3Ateam\
             &Filter.1.Value.1=a%20b&Filter.1.Value.2=x%2Fy&InstanceId.1=i-1&InstanceId.2=i-2"
        );
        assert_eq!(p.get("InstanceId.2"), Some("i-2"));
    }

    #[test]
    fn backoff_grows_is_jittered_and_capped() {
        let base = Duration::from_millis(100);
        for attempt in 1..40 {
            let ceiling = base
                .saturating_mul(1 << (attempt - 1).min(16))
                .min(MAX_BACKOFF);
            let d = backoff(base, attempt);
            assert!(d <= ceiling, "attempt {attempt}: {d:?} > {ceiling:?}");
        }
        let draws: std::collections::BTreeSet<_> =
            (0..20).map(|_| backoff(base, 5).as_nanos()).collect();
        assert!(draws.len() > 1, "no jitter");
    }
}
