//! SigV4 signing of a Query-protocol request with the `aws-sigv4` crate.
//!
//! Owns: turning credentials, region, service and a request into the
//! headers that authenticate it (`authorization`, `x-amz-date`,
//! `x-amz-security-token`). Does not: fetch credentials or send anything.

use super::credentials::Credentials;
use super::error::AwsError;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use std::time::SystemTime;

/// Adds the signature headers to `headers` (which must already hold every
/// header that is sent, `host` included).
pub fn sign_request(
    credentials: &Credentials,
    region: &str,
    service: &str,
    url: &str,
    headers: &mut Vec<(String, String)>,
    body: &[u8],
    now: SystemTime,
) -> Result<(), AwsError> {
    let fail = |e: &dyn std::fmt::Display| AwsError::Credentials(format!("signing: {e}"));
    let identity = aws_credential_types::Credentials::new(
        credentials.access_key_id.clone(),
        credentials.secret_access_key.clone(),
        credentials.session_token.clone(),
        credentials.expires,
        "mirror-sensor",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(now)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| fail(&e))?
        .into();
    let signable = SignableRequest::new(
        "POST",
        url,
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Bytes(body),
    )
    .map_err(|e| fail(&e))?;
    let (instructions, _signature) = sign(signable, &params).map_err(|e| fail(&e))?.into_parts();
    let (added, _params) = instructions.into_parts();
    for h in added {
        headers.push((h.name().to_string(), h.value().to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn signs_with_date_scope_and_token() {
        let creds = Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: Some("tok".into()),
            expires: None,
        };
        let mut headers = vec![
            (
                "host".to_string(),
                "ec2.us-east-1.amazonaws.com".to_string(),
            ),
            (
                "content-type".to_string(),
                "application/x-www-form-urlencoded; charset=utf-8".to_string(),
            ),
        ];
        // 2015-08-30T12:36:00Z, the date of AWS's published SigV4 examples.
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_440_938_160);
        let body = b"Action=DescribeInstances&Version=2016-11-15";
        sign_request(
            &creds,
            "us-east-1",
            "ec2",
            "https://ec2.us-east-1.amazonaws.com/",
            &mut headers,
            body,
            now,
        )
        .unwrap();
        let get = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        assert_eq!(get("x-amz-date").as_deref(), Some("20150830T123600Z"));
        assert_eq!(get("x-amz-security-token").as_deref(), Some("tok"));
        let auth = get("authorization").unwrap();
        assert!(
            auth.starts_with(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/ec2/aws4_request"
            ),
            "{auth}"
        );
        assert!(auth.contains("SignedHeaders=content-type;host;x-amz-date"));
        // Another body gives another signature.
        let mut other = headers[..2].to_vec();
        sign_request(
            &creds,
            "us-east-1",
            "ec2",
            "https://ec2.us-east-1.amazonaws.com/",
            &mut other,
            b"Action=DescribeVpcs&Version=2016-11-15",
            now,
        )
        .unwrap();
        let other_auth = other.iter().find(|(k, _)| k == "authorization").unwrap();
        assert_ne!(other_auth.1, auth);
    }
}
