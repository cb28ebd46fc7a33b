//! The apiserver's refusals, as the client reports them, and their mapping
//! into tenure's errors.

use tenure_core::Error;

use crate::api::Status;

/// Why a request to the apiserver failed.
///
/// No variant ever holds the bearer token: messages come from the
/// apiserver's `Status` or from the transport, neither of which repeats it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ApiError {
    /// 409: a precondition (`resourceVersion`) failed, or a create found the
    /// name taken. Nothing was changed.
    #[error("409 Conflict: the object was changed or already exists")]
    Conflict,
    /// 404 where an object had to exist.
    #[error("404 Not Found")]
    NotFound,
    /// 410 or a watch `ERROR` event with code 410: the resource version is
    /// older than the apiserver keeps; list again and watch from there.
    #[error("410 Gone: the resource version is too old; list again")]
    Gone,
    /// 401: the token is not accepted (expired, revoked, wrong cluster).
    #[error("401 Unauthorized: the apiserver refused the bearer token: {0}")]
    Unauthorized(String),
    /// 403: the token's user lacks the RBAC rights for this request.
    #[error("403 Forbidden: the token's user lacks RBAC rights: {0}")]
    Forbidden(String),
    /// 422: the object breaks a validation rule.
    #[error("422 Unprocessable Entity: {0}")]
    Invalid(String),
    /// The apiserver could not be reached or answered in time, answered 429
    /// or 5xx: retrying later may succeed.
    #[error("apiserver unavailable: {0}")]
    Unavailable(String),
    /// Any other answer, with its status code (0 when it came in a watch
    /// event without one), or an answer that could not be decoded.
    #[error("apiserver answered {0}: {1}")]
    Other(u16, String),
}

impl ApiError {
    /// The error an answer with HTTP status `code` and body `body` stands for.
    pub(crate) fn from_answer(code: u16, body: &[u8]) -> Self {
        let message = match serde_json::from_slice::<Status>(body) {
            Ok(status) if !status.message.is_empty() => status.message,
            _ => {
                let text = String::from_utf8_lossy(body);
                let text = text.trim();
                let mut shown: String = text.chars().take(300).collect();
                if shown.len() < text.len() {
                    shown.push('…');
                }
                shown
            }
        };
        Self::from_code(code, message)
    }

    /// The error a watch `ERROR` event's `Status` stands for.
    pub(crate) fn from_status(status: &Status) -> Self {
        Self::from_code(status.code, status.message.clone())
    }

    fn from_code(code: u16, message: String) -> Self {
        match code {
            401 => ApiError::Unauthorized(message),
            403 => ApiError::Forbidden(message),
            404 => ApiError::NotFound,
            409 => ApiError::Conflict,
            410 => ApiError::Gone,
            422 => ApiError::Invalid(message),
            429 | 500..=599 => ApiError::Unavailable(format!("{code}: {message}")),
            _ => ApiError::Other(code, message),
        }
    }

    /// Whether a precondition failed or the name was taken (409).
    pub(crate) fn is_conflict(&self) -> bool {
        matches!(self, ApiError::Conflict)
    }

    /// Whether the object was not there (404).
    pub(crate) fn is_not_found(&self) -> bool {
        matches!(self, ApiError::NotFound)
    }

    /// Whether a watch must start over from a fresh list (410).
    pub(crate) fn is_gone(&self) -> bool {
        matches!(self, ApiError::Gone)
    }

    /// Whether retrying later may succeed.
    pub(crate) fn is_retryable(&self) -> bool {
        matches!(self, ApiError::Unavailable(_) | ApiError::Gone)
    }
}

impl From<ApiError> for Error {
    /// Unreachable, 429 and 5xx become [`Error::Unavailable`] (retryable),
    /// 422 [`Error::InvalidInput`]; the rest — refused token, missing RBAC
    /// rights, unexpected conflicts — [`Error::Backend`], which retrying will
    /// not fix. The `ApiError` stays in the chain as `source`.
    fn from(e: ApiError) -> Self {
        match &e {
            ApiError::Unavailable(_) | ApiError::Gone => Error::Unavailable {
                message: format!("kubernetes: {e}"),
                source: Some(Box::new(e)),
            },
            ApiError::Invalid(message) => Error::InvalidInput {
                field: "object",
                value: String::new(),
                rule: format!("the apiserver rejected it: {message}"),
            },
            ApiError::Unauthorized(_) | ApiError::Forbidden(_) => Error::Backend {
                message: format!(
                    "kubernetes: {e} (check the token and the RBAC role bound to its user)"
                ),
                source: Some(Box::new(e)),
            },
            ApiError::Conflict | ApiError::NotFound | ApiError::Other(..) => Error::Backend {
                message: format!("kubernetes: {e}"),
                source: Some(Box::new(e)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_map_to_typed_errors() {
        let status = |code: u16, reason: &str| {
            format!(
                r#"{{"kind":"Status","apiVersion":"v1","metadata":{{}},"status":"Failure","message":"m{code}","reason":"{reason}","code":{code}}}"#
            )
        };
        let e = |code| ApiError::from_answer(code, status(code, "R").as_bytes());
        assert!(e(409).is_conflict());
        assert!(e(404).is_not_found());
        assert!(e(410).is_gone());
        assert_eq!(e(401), ApiError::Unauthorized("m401".into()));
        assert_eq!(e(403), ApiError::Forbidden("m403".into()));
        assert_eq!(e(422), ApiError::Invalid("m422".into()));
        assert_eq!(e(503), ApiError::Unavailable("503: m503".into()));
        assert_eq!(e(429), ApiError::Unavailable("429: m429".into()));
        assert_eq!(e(400), ApiError::Other(400, "m400".into()));
        assert_eq!(
            ApiError::from_answer(502, b"<html>bad gateway</html>\n"),
            ApiError::Unavailable("502: <html>bad gateway</html>".into())
        );
    }

    #[test]
    fn tenure_errors_say_what_to_do_and_whether_to_retry() {
        let forbidden: Error = ApiError::Forbidden("leases is forbidden".into()).into();
        assert!(matches!(&forbidden, Error::Backend { message, .. } if message.contains("RBAC")));
        assert!(!forbidden.is_retryable());
        let unauthorized: Error = ApiError::Unauthorized("Unauthorized".into()).into();
        assert!(unauthorized.to_string().contains("token"), "{unauthorized}");
        assert!(!unauthorized.is_retryable());
        let unavailable: Error = ApiError::Unavailable("connection refused".into()).into();
        assert!(unavailable.is_retryable());
        let invalid: Error = ApiError::Invalid("spec.x: Invalid value".into()).into();
        assert!(matches!(
            invalid,
            Error::InvalidInput {
                field: "object",
                ..
            }
        ));
        let conflict: Error = ApiError::Conflict.into();
        assert!(!conflict.is_retryable());
    }
}
