//! Errors of AWS calls: what AWS said (code, message, request id) or why no
//! answer came.
//!
//! Owns: [`AwsError`] and which errors are worth retrying. Does not: decide
//! how often to retry (the query client does) or what a refusal means for
//! enrollment (reconcile does).

/// Why an AWS call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AwsError {
    /// AWS answered with an error document.
    #[error("{action}: {code}: {message} (HTTP {status}, request id {request_id})")]
    Api {
        /// The operation (`CreateTrafficMirrorSession`).
        action: String,
        /// AWS's error code (`RequestLimitExceeded`).
        code: String,
        /// AWS's message.
        message: String,
        /// The request id AWS gave, for support cases ("" when absent).
        request_id: String,
        /// HTTP status of the answer.
        status: u16,
    },
    /// An HTTP error status without an AWS error document.
    #[error("{action}: HTTP {status} without an AWS error document")]
    Status {
        /// The operation.
        action: String,
        /// HTTP status.
        status: u16,
    },
    /// No answer: connection, TLS, timeout, or a body over the size cap.
    #[error("{action}: {reason}")]
    Transport {
        /// The operation (or `IMDS ...`).
        action: String,
        /// What went wrong.
        reason: String,
    },
    /// An answer that is not the document the operation returns.
    #[error("{action}: malformed response: {reason}")]
    Malformed {
        /// The operation.
        action: String,
        /// What is missing or wrong.
        reason: String,
    },
    /// No usable credentials, or the request could not be signed.
    #[error("credentials: {0}")]
    Credentials(String),
    /// A local problem: TLS setup, the state file.
    #[error("{0}")]
    Local(String),
}

/// Error codes AWS uses for throttling and transient server trouble.
const RETRYABLE_CODES: &[&str] = &[
    "RequestLimitExceeded",
    "Throttling",
    "ThrottlingException",
    "RequestThrottled",
    "RequestThrottledException",
    "InternalError",
    "InternalFailure",
    "ServiceUnavailable",
    "Unavailable",
];

impl AwsError {
    /// AWS's error code, when AWS answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            AwsError::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Throttling, a server error (5xx) or no answer at all: the same call
    /// may succeed later.
    pub fn is_retryable(&self) -> bool {
        match self {
            AwsError::Api { code, status, .. } => {
                RETRYABLE_CODES.contains(&code.as_str()) || *status >= 500
            }
            AwsError::Status { status, .. } => *status >= 500 || *status == 429,
            AwsError::Transport { .. } => true,
            AwsError::Malformed { .. } | AwsError::Credentials(_) | AwsError::Local(_) => false,
        }
    }

    /// Whether AWS throttled the call.
    pub fn is_throttling(&self) -> bool {
        self.code()
            .is_some_and(|c| c.contains("Throttl") || c == "RequestLimitExceeded")
    }
}

/// Reads an error document (`Response/Errors/Error` of EC2,
/// `ErrorResponse/Error` of SQS) into an [`AwsError::Api`]; `None` when the
/// body is not one.
pub(crate) fn from_document(action: &str, status: u16, body: &[u8]) -> Option<AwsError> {
    let root = super::xml::parse(body).ok()?;
    let error = if root.name == "Error" {
        &root
    } else {
        root.find("Error")?
    };
    let code = error.text_at("Code")?.to_string();
    let request_id = root
        .text_at("RequestID")
        .or_else(|| root.text_at("RequestId"))
        .or_else(|| root.find("RequestId").and_then(|e| e.text_at("")))
        .unwrap_or("")
        .to_string();
    Some(AwsError::Api {
        action: action.to_string(),
        code,
        message: error.text_at("Message").unwrap_or("").to_string(),
        request_id,
        status,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_ec2_and_sqs_error_documents() {
        let ec2 = br#"<?xml version="1.0" encoding="UTF-8"?>
<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message></Error></Errors><RequestID>ea966190-f9aa-478e-9ede-example</RequestID></Response>"#;
        let e = from_document("DescribeInstances", 503, ec2).unwrap();
        assert_eq!(e.code(), Some("RequestLimitExceeded"));
        assert!(e.is_retryable() && e.is_throttling());
        assert!(e.to_string().contains("ea966190-f9aa-478e-9ede-example"));

        let sqs = br#"<ErrorResponse><Error><Type>Sender</Type><Code>AWS.SimpleQueueService.NonExistentQueue</Code><Message>no queue</Message></Error><RequestId>42</RequestId></ErrorResponse>"#;
        let e = from_document("ReceiveMessage", 400, sqs).unwrap();
        assert_eq!(e.code(), Some("AWS.SimpleQueueService.NonExistentQueue"));
        assert!(!e.is_retryable());
        match e {
            AwsError::Api { request_id, .. } => assert_eq!(request_id, "42"),
            other => panic!("{other:?}"),
        }
        assert!(from_document("X", 500, b"<html>oops</html>").is_none());
    }

    #[test]
    fn refusals_are_not_retried() {
        let doc = br#"<Response><Errors><Error><Code>NetworkInterfaceNotSupported</Code><Message>m</Message></Error></Errors><RequestID>1</RequestID></Response>"#;
        let e = from_document("CreateTrafficMirrorSession", 400, doc).unwrap();
        assert!(!e.is_retryable());
    }
}
