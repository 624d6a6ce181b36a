//! One error type for the engine. It keeps what a person needs to act: the
//! method and a redacted URL, the status, the registry's own error codes, a
//! capped body, and how many times the request was retried.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

/// How much of a registry's error body we keep.
const MAX_BODY: usize = 512;
/// Entries of a registry's `errors` list kept, and characters of each field:
/// enough to act on, too little to flood a log.
const MAX_ERROR_ENTRIES: usize = 5;
const MAX_ERROR_FIELD: usize = 200;

/// Text a registry sent, fit for a message: known secrets masked, at most
/// `max` characters of it, control characters (terminal escapes, newlines)
/// shown as escapes ([`crate::log::escape_controls`]).
pub fn untrusted_text(text: &str, max: usize) -> String {
    let masked = crate::secret::mask(text);
    let kept: String = masked.chars().take(max).collect();
    let mut out = crate::log::escape_controls(&kept).into_owned();
    if masked.chars().nth(max).is_some() {
        out.push('…');
    }
    out
}

/// One entry of the registry's `{"errors": [...]}` answer.
#[derive(Debug, Clone, Deserialize)]
pub struct RegistryErrorDetail {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
}

/// What went wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    #[error("invalid image reference '{input}': {reason}")]
    InvalidReference { input: String, reason: &'static str },
    #[error("invalid digest '{input}': {reason}")]
    InvalidDigest { input: String, reason: &'static str },
    #[error("{method} {url} answered {status}{}", describe_registry(.errors, .body))]
    Registry {
        method: &'static str,
        url: String,
        status: u16,
        errors: Vec<RegistryErrorDetail>,
        body: String,
        retry_after: Option<Duration>,
    },
    #[error("authentication to {registry} failed: {detail}")]
    Unauthorized { registry: String, detail: String },
    #[error("cannot reach {url}: {detail}")]
    Connection { url: String, detail: String },
    #[error("{url}: no answer within {secs} seconds")]
    Timeout { url: String, secs: u64 },
    #[error("the source stream of blob {digest} broke off after {received} bytes: {detail}")]
    SourceInterrupted { digest: String, received: u64, detail: String },
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch { what: String, expected: String, actual: String },
    #[error("size mismatch for {what}: expected {expected} bytes, got {actual}")]
    SizeMismatch { what: String, expected: u64, actual: u64 },
    #[error("{reference} not found{}", .detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    NotFound { reference: String, detail: Option<String> },
    #[error("invalid manifest {reference}: {reason}")]
    InvalidManifest { reference: String, reason: String },
    #[error("unsupported manifest media type '{media_type}' for {reference}")]
    UnsupportedMediaType { reference: String, media_type: String },
    #[error("credentials: {0}")]
    Credentials(String),
    #[error("TLS with {registry} failed: {detail}")]
    Tls { registry: String, detail: String },
    #[error("{registry} pointed a request at {url}, which is not its own origin {own}; refused, so that its credentials go nowhere else")]
    ForeignUrl { registry: String, url: String, own: String },
    #[error("{origin} redirected to {url}, another origin; refused, so that the answer comes only from {origin}")]
    Redirected { origin: String, url: String },
    #[error("refusing the token realm {realm} of {registry}: {reason}")]
    RealmRefused {
        registry: String,
        realm: String,
        reason: &'static str,
    },
    #[error(
        "{what}: only {received} bytes moved in {window_secs} s, less than the {min_bytes} bytes per {window_secs} s a transfer must make"
    )]
    Stalled {
        what: String,
        received: u64,
        window_secs: u64,
        min_bytes: u64,
    },
    #[error("{url} asked to wait {asked_secs} s before trying again (Retry-After), longer than the {max_secs} s imagegate waits at most; try again later")]
    WaitTooLong { url: String, asked_secs: u64, max_secs: u64 },
    #[error("tag pages of {registry}: {detail}")]
    Pagination { registry: String, detail: String },
    #[error("{path} {reason}; refusing to read it")]
    UnsafeFile { path: String, reason: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Protocol(String),
    /// A tag no longer points where the plan (or a record) saw it: another
    /// writer moved it.
    #[error("{registry} accepted {digest} but does not serve it where it was written: {detail}")]
    NotServed { registry: String, digest: String, detail: String },
    #[error("{tag} changed underneath: expected {expected}, found {found}")]
    TagMoved { tag: String, expected: String, found: String },
    /// A stop was asked for (Ctrl-C) before `what` was done.
    #[error("{what}: stopped, as asked (interrupted)")]
    Interrupted { what: String },
    /// One call would point one tag at two different images.
    #[error("{tag} would receive two different images: {first} and {second}; nothing was written")]
    Conflict { tag: String, first: String, second: String },
}

fn describe_registry(errors: &[RegistryErrorDetail], body: &str) -> String {
    if !errors.is_empty() {
        let parts: Vec<String> = errors
            .iter()
            .map(|e| {
                if e.message.is_empty() {
                    e.code.clone()
                } else {
                    format!("{}: {}", e.code, e.message)
                }
            })
            .collect();
        format!(" ({})", parts.join("; "))
    } else if !body.trim().is_empty() {
        format!(" ({})", body.trim().replace('\n', " "))
    } else {
        String::new()
    }
}

/// An engine error with the number of retries spent before giving up.
#[derive(Debug)]
pub struct Error {
    kind: Box<ErrorKind>,
    retries: u32,
}

impl Error {
    pub fn new(kind: ErrorKind) -> Self {
        Self {
            kind: Box::new(kind),
            retries: 0,
        }
    }

    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    pub fn retries(&self) -> u32 {
        self.retries
    }

    pub(crate) fn with_retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// The HTTP status, for registry answers.
    pub fn status(&self) -> Option<u16> {
        match &*self.kind {
            ErrorKind::Registry { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether the registry reported one of these error codes.
    pub fn has_code(&self, code: &str) -> bool {
        matches!(&*self.kind, ErrorKind::Registry { errors, .. } if errors.iter().any(|e| e.code == code))
    }

    /// Whether trying again may succeed: connection trouble, timeouts, a
    /// broken source stream, and the statuses registries use for overload.
    pub fn is_temporary(&self) -> bool {
        match &*self.kind {
            ErrorKind::Connection { .. } | ErrorKind::Timeout { .. } | ErrorKind::SourceInterrupted { .. } | ErrorKind::Stalled { .. } => {
                true
            }
            ErrorKind::Registry { status, .. } => matches!(status, 408 | 429 | 500 | 502 | 503 | 504),
            _ => false,
        }
    }

    /// The delay the registry asked for with `Retry-After`.
    pub fn retry_after(&self) -> Option<Duration> {
        match &*self.kind {
            ErrorKind::Registry { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    pub(crate) fn registry(method: &'static str, url: &str, status: u16, body: &str, retry_after: Option<Duration>) -> Self {
        #[derive(Deserialize)]
        struct Body {
            #[serde(default)]
            errors: Vec<RegistryErrorDetail>,
        }
        // Masked before anything is cut or parsed, so that a registry that
        // echoes the request's Authorization cannot get part of it printed.
        let body = crate::secret::mask(body);
        let errors = serde_json::from_str::<Body>(&body)
            .map(|b| b.errors)
            .unwrap_or_default()
            .into_iter()
            .take(MAX_ERROR_ENTRIES)
            .map(|e| RegistryErrorDetail {
                code: untrusted_text(&e.code, MAX_ERROR_FIELD),
                message: untrusted_text(&e.message, MAX_ERROR_FIELD),
            })
            .collect();
        let mut capped = untrusted_text(&body, MAX_BODY);
        // HTML error pages say nothing useful in one line.
        if capped.trim_start().starts_with('<') {
            capped.clear();
        }
        Self::new(ErrorKind::Registry {
            method,
            url: redact_url(url),
            status,
            errors,
            body: capped,
            retry_after,
        })
    }

    pub(crate) fn io(path: impl fmt::Display, source: std::io::Error) -> Self {
        Self::new(ErrorKind::Io {
            path: path.to_string(),
            source,
        })
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kind)?;
        if self.retries > 0 {
            write!(f, " (after {} retries)", self.retries)?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.kind.source()
    }
}

impl From<ErrorKind> for Error {
    fn from(kind: ErrorKind) -> Self {
        Self::new(kind)
    }
}

/// A URL fit for messages: no user info, no query string (upload locations
/// carry opaque state there, and pre-signed storage URLs carry signatures).
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            let had_query = u.query().is_some();
            u.set_query(None);
            let mut s = u.to_string();
            if had_query {
                s.push_str("?…");
            }
            s
        }
        Err(_) => url.split('?').next().unwrap_or_default().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_errors_are_parsed_and_classified() {
        let e = Error::registry(
            "GET",
            "https://u:p@r.example/v2/a/manifests/x?_state=abc",
            404,
            r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{}}]}"#,
            None,
        );
        let s = e.to_string();
        assert!(s.contains("MANIFEST_UNKNOWN: manifest unknown"), "{s}");
        assert!(!s.contains("u:p") && !s.contains("_state"), "{s}");
        assert!(e.has_code("MANIFEST_UNKNOWN"));
        assert!(!e.is_temporary());
        let e = Error::registry("PUT", "http://r/v2/", 503, "busy", Some(Duration::from_secs(2)));
        assert!(e.is_temporary());
        assert_eq!(e.retry_after(), Some(Duration::from_secs(2)));
        assert!(e.with_retries(3).to_string().ends_with("(after 3 retries)"));
    }
}
