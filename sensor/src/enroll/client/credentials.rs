//! AWS credentials: the standard environment variables, else the instance
//! role through IMDSv2, refreshed before they expire.
//!
//! Owns: where credentials come from and when to fetch them again; the
//! IMDSv2 session (PUT a token, GET with it), also used for the region and
//! this instance's primary ENI. Input: the process environment, the IMDS
//! address (configurable so tests use a local server). Output:
//! [`Credentials`]. Does not: read `~/.aws` files or assume roles.

use super::error::AwsError;
use super::http::{HttpClient, Target};
use std::time::{Duration, SystemTime};
use tokio::sync::Mutex;

/// Credentials are fetched again this long before they expire (AWS rotates
/// role credentials at least 5 minutes before `Expiration`).
const REFRESH_BEFORE: Duration = Duration::from_secs(300);
/// Lifetime asked for an IMDSv2 token.
const IMDS_TOKEN_TTL_SECONDS: u32 = 21_600;

/// One set of credentials.
#[derive(Clone, PartialEq)]
pub struct Credentials {
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
    /// Session token of temporary credentials.
    pub session_token: Option<String>,
    /// When they stop working (`None`: long-term keys).
    pub expires: Option<SystemTime>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret and the token never reach a log.
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// From `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and, when set,
    /// `AWS_SESSION_TOKEN` among `vars`; `None` unless both keys are set.
    pub fn from_vars(vars: impl Fn(&str) -> Option<String>) -> Option<Self> {
        let id = vars("AWS_ACCESS_KEY_ID").filter(|v| !v.is_empty())?;
        let secret = vars("AWS_SECRET_ACCESS_KEY").filter(|v| !v.is_empty())?;
        Some(Self {
            access_key_id: id,
            secret_access_key: secret,
            session_token: vars("AWS_SESSION_TOKEN").filter(|v| !v.is_empty()),
            expires: None,
        })
    }

    fn fresh(&self, now: SystemTime) -> bool {
        self.expires.is_none_or(|e| {
            e.duration_since(now)
                .is_ok_and(|left| left > REFRESH_BEFORE)
        })
    }
}

/// The instance metadata service (IMDSv2).
#[derive(Clone)]
pub struct Imds {
    http: HttpClient,
    base: String,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RoleCredentials {
    code: Option<String>,
    access_key_id: String,
    secret_access_key: String,
    token: Option<String>,
    expiration: Option<String>,
}

impl Imds {
    /// IMDS at `base` (`http://169.254.169.254` on EC2).
    pub fn new(http: HttpClient, base: &str) -> Self {
        Self {
            http,
            base: base.trim_end_matches('/').to_string(),
        }
    }

    fn fail(&self, what: &str, reason: String) -> AwsError {
        AwsError::Transport {
            action: format!("IMDS {what} at {}", self.base),
            reason,
        }
    }

    async fn token(&self) -> Result<String, AwsError> {
        let target = Target::parse(&format!("{}/latest/api/token", self.base))
            .map_err(|e| self.fail("token", e))?;
        let ttl = (
            "x-aws-ec2-metadata-token-ttl-seconds".to_string(),
            IMDS_TOKEN_TTL_SECONDS.to_string(),
        );
        let r = self
            .http
            .send("PUT", &target, &[ttl], Vec::new())
            .await
            .map_err(|e| self.fail("token", e))?;
        if r.status != 200 {
            return Err(self.fail("token", format!("HTTP {}", r.status)));
        }
        Ok(String::from_utf8_lossy(&r.body).trim().to_string())
    }

    /// GETs `path` (below `/latest/`) with a fresh IMDSv2 token.
    pub async fn get(&self, path: &str) -> Result<String, AwsError> {
        let token = self.token().await?;
        let target = Target::parse(&format!("{}/latest/{path}", self.base))
            .map_err(|e| self.fail(path, e))?;
        let header = ("x-aws-ec2-metadata-token".to_string(), token);
        let r = self
            .http
            .send("GET", &target, &[header], Vec::new())
            .await
            .map_err(|e| self.fail(path, e))?;
        if r.status != 200 {
            return Err(self.fail(path, format!("HTTP {}", r.status)));
        }
        Ok(String::from_utf8_lossy(&r.body).trim().to_string())
    }

    /// The credentials of the instance's role.
    pub async fn role_credentials(&self) -> Result<Credentials, AwsError> {
        let roles = self.get("meta-data/iam/security-credentials/").await?;
        let role = roles
            .lines()
            .next()
            .filter(|r| !r.is_empty())
            .ok_or_else(|| AwsError::Credentials("the instance has no IAM role".into()))?;
        let body = self
            .get(&format!("meta-data/iam/security-credentials/{role}"))
            .await?;
        let c: RoleCredentials = serde_json::from_str(&body)
            .map_err(|e| AwsError::Credentials(format!("IMDS role credentials: {e}")))?;
        if let Some(code) = c.code.filter(|c| c != "Success") {
            return Err(AwsError::Credentials(format!(
                "IMDS role credentials: {code}"
            )));
        }
        let expires = match c.expiration {
            Some(t) => Some(
                humantime::parse_rfc3339_weak(t.trim_end_matches('Z'))
                    .map_err(|e| AwsError::Credentials(format!("IMDS Expiration {t:?}: {e}")))?,
            ),
            None => None,
        };
        Ok(Credentials {
            access_key_id: c.access_key_id,
            secret_access_key: c.secret_access_key,
            session_token: c.token,
            expires,
        })
    }
}

/// Hands out current credentials, fetching them from IMDS when the
/// environment has none.
pub struct CredentialProvider {
    fixed: Option<Credentials>,
    imds: Imds,
    cached: Mutex<Option<Credentials>>,
}

impl CredentialProvider {
    /// Environment credentials when `env` has them, else IMDS at `imds`.
    pub fn new(env: Option<Credentials>, imds: Imds) -> Self {
        Self {
            fixed: env,
            imds,
            cached: Mutex::new(None),
        }
    }

    /// Where credentials come from, for `check-config` and logs.
    pub fn source(&self) -> &'static str {
        if self.fixed.is_some() {
            "environment"
        } else {
            "instance role (IMDSv2)"
        }
    }

    /// Current credentials; role credentials are fetched again when fewer
    /// than 5 minutes remain.
    pub async fn get(&self) -> Result<Credentials, AwsError> {
        if let Some(c) = &self.fixed {
            return Ok(c.clone());
        }
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref().filter(|c| c.fresh(SystemTime::now())) {
            return Ok(c.clone());
        }
        let c = self.imds.role_credentials().await?;
        *cached = Some(c.clone());
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_needs_both_keys() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert!(Credentials::from_vars(vars(&[("AWS_ACCESS_KEY_ID", "a")])).is_none());
        let c = Credentials::from_vars(vars(&[
            ("AWS_ACCESS_KEY_ID", "a"),
            ("AWS_SECRET_ACCESS_KEY", "s"),
            ("AWS_SESSION_TOKEN", ""),
        ]))
        .unwrap();
        assert_eq!(c.session_token, None);
        assert!(!format!("{c:?}").contains("\"s\""));
    }

    #[test]
    fn refreshes_five_minutes_before_expiry() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let mut c = Credentials {
            access_key_id: "a".into(),
            secret_access_key: "s".into(),
            session_token: None,
            expires: Some(now + Duration::from_secs(301)),
        };
        assert!(c.fresh(now));
        c.expires = Some(now + Duration::from_secs(299));
        assert!(!c.fresh(now));
        c.expires = Some(now - Duration::from_secs(1));
        assert!(!c.fresh(now));
    }
}
