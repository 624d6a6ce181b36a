//! Registry authentication: `WWW-Authenticate` challenges, bearer tokens
//! cached by scope, basic auth, and the rules for where credentials may go.
//!
//! Credentials (Basic, bearer tokens) are attached only to requests whose
//! origin is the registry's own (see [`super::Transport::send_once`]). A
//! token realm is the one other place the password goes, under these rules:
//! - the realm is an absolute `http` or `https` URL with a host and no user
//!   information;
//! - an `https` realm on any host gets the credentials (token services often
//!   live on their own host, as Docker Hub's does);
//! - an `http` realm of an `https` registry is refused outright: it would
//!   downgrade the exchange to plain text;
//! - an `http` realm of a registry configured as plain HTTP gets the
//!   credentials only on the registry's own origin (scheme, host and port:
//!   plain HTTP already carries them there); anywhere else the token is
//!   asked for anonymously.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::AUTHORIZATION;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use url::Url;

use super::{scope_key, Scope, Transport};
use crate::error::{redact_url, Error, ErrorKind};
use crate::secret::Secret;

/// A token is kept at least this long: the distribution token
/// specification's default for an answer without `expires_in`, and the
/// floor the Docker clients put under a smaller one. A registry that says 0
/// or a negative number would otherwise make a token request of nearly every
/// request (seen with a hostile registry: 36 token requests where 4 do).
const MIN_TOKEN_LIFETIME: Duration = Duration::from_secs(60);
/// Tokens are renewed this long before they expire, so a request never
/// starts with a token that dies in flight.
const TOKEN_RENEW_MARGIN: Duration = Duration::from_secs(10);
/// Tokens are kept at most this long whatever `expires_in` says (a huge value
/// must not overflow a clock, and a day outlives any module run).
const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(86_400);
/// A token answer is a small JSON object; more than this is refused.
const MAX_TOKEN_ANSWER: usize = 64 * 1024;

/// What a registry asked for in its 401 answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Parses the first usable challenge of a `WWW-Authenticate` value.
pub(crate) fn parse_challenge(value: &str) -> Option<Challenge> {
    let value = value.trim();
    let (scheme, params) = value.split_once(char::is_whitespace).unwrap_or((value, ""));
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Some(Challenge::Basic),
        "bearer" => {
            let params = parse_params(params);
            Some(Challenge::Bearer {
                realm: params.get("realm")?.clone(),
                service: params.get("service").cloned(),
                scope: params.get("scope").cloned(),
            })
        }
        _ => None,
    }
}

/// `key="value",key2=value2`; quoted values may hold commas.
fn parse_params(s: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut chars = s.chars().peekable();
    loop {
        while matches!(chars.peek(), Some(c) if *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars
            .by_ref()
            .take_while(|c| *c != '=')
            .collect::<String>()
            .trim()
            .to_ascii_lowercase();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek() {
                if *c == ',' {
                    break;
                }
                value.push(*c);
                chars.next();
            }
            value = value.trim().to_string();
        }
        out.insert(key, value);
    }
    out
}

/// The token endpoint's answer. Docker Hub and distribution send `token`,
/// OAuth2 servers `access_token`; zuul-registry sends both.
#[derive(Deserialize)]
pub(crate) struct TokenAnswer {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    /// Any JSON value: a number (negative, fractional or huge as it may be)
    /// is clamped; anything else counts as absent, not as a broken answer.
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
}

impl TokenAnswer {
    pub(crate) fn into_token(self) -> Option<CachedToken> {
        let value = self.token.or(self.access_token).filter(|t| !t.is_empty())?;
        let lifetime = token_lifetime(self.expires_in.as_ref().and_then(serde_json::Value::as_f64));
        Some(CachedToken {
            value: Secret::new(value),
            renew_at: Instant::now() + lifetime.saturating_sub(TOKEN_RENEW_MARGIN),
        })
    }
}

/// How long a token is kept, from the `expires_in` a registry sent (if a
/// number): at least [`MIN_TOKEN_LIFETIME`], at most [`MAX_TOKEN_LIFETIME`].
fn token_lifetime(expires_in: Option<f64>) -> Duration {
    let seconds = expires_in
        .filter(|s| s.is_finite())
        .unwrap_or(0.0)
        .clamp(MIN_TOKEN_LIFETIME.as_secs_f64(), MAX_TOKEN_LIFETIME.as_secs_f64());
    Duration::from_secs_f64(seconds)
}

#[derive(Clone)]
pub(crate) struct CachedToken {
    pub(crate) value: Secret,
    renew_at: Instant,
}

impl CachedToken {
    pub(crate) fn fresh(&self) -> bool {
        Instant::now() < self.renew_at
    }
}

/// One scope's token. Its async lock is held while the token is fetched, so
/// concurrent requests for one scope fetch it once, and requests for other
/// scopes are not held up.
type TokenSlot = Arc<tokio::sync::Mutex<Option<CachedToken>>>;

/// Per-registry authentication state.
#[derive(Default)]
pub(crate) struct AuthState {
    pub(crate) challenge: std::sync::Mutex<Option<Challenge>>,
    tokens: std::sync::Mutex<HashMap<String, TokenSlot>>,
}

impl AuthState {
    fn slot(&self, key: &str) -> TokenSlot {
        self.tokens.lock().expect("token slots").entry(key.to_string()).or_default().clone()
    }
}

/// A scope a 401 challenge named, if it is a repository or registry scope
/// (zuul-registry names a bare level such as `write`, which is no scope a
/// token request may carry beside repository scopes).
pub(crate) fn challenge_scope(challenge: &Challenge) -> Option<String> {
    match challenge {
        Challenge::Bearer { scope: Some(s), .. } if s.starts_with("repository:") || s.starts_with("registry:") => {
            (s.len() <= 512 && !s.chars().any(char::is_control)).then(|| s.clone())
        }
        _ => None,
    }
}

impl Transport {
    /// Records how the registry wants to be authenticated.
    pub(super) fn learn(&self, challenge: Challenge) {
        *self.auth.challenge.lock().expect("auth lock") = Some(challenge);
    }

    /// Drops the cached token of a scope after the registry refused it
    /// (`used`, the header sent). A token another request has fetched since
    /// is kept, so concurrent refusals do not fetch the same scope twice.
    pub(super) async fn forget_token(&self, scope: &[Scope], extra: Option<&str>, used: &str) {
        let slot = self.auth.slot(&token_key(scope, extra));
        let mut token = slot.lock().await;
        if token.as_ref().is_some_and(|t| format!("Bearer {}", t.value.expose()) == used) {
            *token = None;
        }
    }

    /// The Authorization value for a request with `scope` (and a scope the
    /// registry's challenge named, `extra`), fetching a token if the
    /// registry uses bearer tokens. `None` until the registry has asked for
    /// authentication.
    pub(super) async fn authorization(&self, scope: &[Scope], extra: Option<&str>) -> Result<Option<String>, Error> {
        let challenge = self.auth.challenge.lock().expect("auth lock").clone();
        match challenge {
            None => Ok(None),
            Some(Challenge::Basic) => Ok(self.credential.as_ref().map(|c| c.basic_header())),
            Some(Challenge::Bearer {
                realm,
                service,
                scope: asked,
            }) => {
                let slot = self.auth.slot(&token_key(scope, extra));
                let mut token = slot.lock().await;
                if let Some(t) = token.as_ref().filter(|t| t.fresh()) {
                    return Ok(Some(format!("Bearer {}", t.value.expose())));
                }
                let fresh = self
                    .limits
                    .answer(
                        &redact_url(&realm),
                        self.fetch_token(&realm, service.as_deref(), scope, asked.as_deref(), extra),
                    )
                    .await?;
                let header = format!("Bearer {}", fresh.value.expose());
                *token = Some(fresh);
                Ok(Some(header))
            }
        }
    }

    /// Where a realm may be asked, and whether with the credentials.
    fn check_realm(&self, realm: &str) -> Result<(Url, bool), Error> {
        let refuse = |reason| {
            Error::new(ErrorKind::RealmRefused {
                registry: self.registry.clone(),
                realm: crate::error::untrusted_text(&redact_url(realm), 200),
                reason,
            })
        };
        let url = Url::parse(realm).map_err(|_| refuse("it is not an absolute URL"))?;
        if url.host_str().is_none() {
            return Err(refuse("it names no host"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(refuse("it carries user information"));
        }
        match (url.scheme(), self.base.scheme()) {
            ("https", _) => Ok((url, true)),
            ("http", "https") => Err(refuse(
                "an https registry may not send its credentials to a plain-HTTP token service",
            )),
            ("http", _) => {
                let own = url.origin() == self.base.origin();
                Ok((url, own))
            }
            _ => Err(refuse("only http and https realms are supported")),
        }
    }

    async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: &[Scope],
        asked: Option<&str>,
        extra: Option<&str>,
    ) -> Result<CachedToken, Error> {
        let (mut url, with_credentials) = self.check_realm(realm)?;
        {
            let mut q = url.query_pairs_mut();
            if let Some(s) = service {
                q.append_pair("service", s);
            }
            if scope.is_empty() && extra.is_none() {
                // Only a request without a repository uses the registry's own
                // scope; zuul-registry's is a bare level that is no valid
                // repository scope.
                if let Some(a) = asked {
                    q.append_pair("scope", a);
                }
            }
            for s in scope {
                q.append_pair("scope", &s.token_scope());
            }
            if let Some(e) = extra {
                q.append_pair("scope", e);
            }
        }
        let mut rb = self.client.get(url.clone());
        if let (Some(c), true) = (&self.credential, with_credentials) {
            rb = rb.header(AUTHORIZATION, c.basic_header());
        }
        let resp = rb.send().await.map_err(|e| self.transport_error(&url, e))?;
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(self.unauthorized(resp).await);
        }
        if !status.is_success() {
            return Err(self.status_error(&Method::GET, &url, resp).await);
        }
        let body = super::read_limited(resp, MAX_TOKEN_ANSWER).await.map_err(|e| match e {
            Some(e) => self.transport_error(&url, e),
            None => Error::new(ErrorKind::Protocol(format!(
                "token answer from {} is larger than {MAX_TOKEN_ANSWER} bytes",
                redact_url(url.as_str())
            ))),
        })?;
        let answer: TokenAnswer = serde_json::from_slice(&body).map_err(|e| {
            Error::new(ErrorKind::Protocol(format!(
                "token answer from {} is not JSON: {e}",
                redact_url(url.as_str())
            )))
        })?;
        answer.into_token().ok_or_else(|| {
            Error::new(ErrorKind::Protocol(format!(
                "token answer from {} holds no token",
                redact_url(url.as_str())
            )))
        })
    }
}

fn token_key(scope: &[Scope], extra: Option<&str>) -> String {
    match extra {
        Some(e) => format!("{} {e}", scope_key(scope)),
        None => scope_key(scope),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_challenges() {
        assert_eq!(parse_challenge(r#"Basic realm="Registry Realm""#), Some(Challenge::Basic));
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull,push""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/busybox:pull,push".into()),
            })
        );
        // zuul-registry: no service, a bare level as scope.
        assert_eq!(
            parse_challenge(r#"Bearer realm="https://127.0.0.1:1/auth/token",scope="write""#),
            Some(Challenge::Bearer {
                realm: "https://127.0.0.1:1/auth/token".into(),
                service: None,
                scope: Some("write".into()),
            })
        );
        assert_eq!(parse_challenge("Bearer service=x"), None);
        assert_eq!(parse_challenge("Negotiate abc"), None);
    }

    #[test]
    fn token_answers() {
        let t: TokenAnswer = serde_json::from_str(r#"{"access_token":"a","expires_in":300}"#).unwrap();
        assert!(t.into_token().unwrap().fresh());
        let t: TokenAnswer = serde_json::from_str(r#"{"token":"t","expires_in":5}"#).unwrap();
        let t = t.into_token().unwrap();
        assert_eq!(t.value.expose(), "t");
        assert!(t.fresh(), "a short lifetime is raised to the minimum, not refetched at once");
        let t: TokenAnswer = serde_json::from_str(r#"{"token":""}"#).unwrap();
        assert!(t.into_token().is_none());
        // A lifetime that would overflow the clock is capped, not a panic.
        let t: TokenAnswer = serde_json::from_str(r#"{"token":"big","expires_in":18446744073709551615}"#).unwrap();
        assert!(t.into_token().unwrap().fresh());
        assert_eq!(crate::secret::mask("x big y"), "x ******** y", "tokens are masked");
        // Zero, negative, fractional and non-numeric lifetimes are usable tokens.
        for answer in [
            r#"{"token":"z","expires_in":0}"#,
            r#"{"token":"n","expires_in":-30}"#,
            r#"{"token":"f","expires_in":0.5}"#,
            r#"{"token":"s","expires_in":"soon"}"#,
            r#"{"token":"u","expires_in":null}"#,
        ] {
            let t: TokenAnswer = serde_json::from_str(answer).unwrap();
            assert!(t.into_token().unwrap().fresh(), "{answer}");
        }
    }

    #[test]
    fn token_lifetimes_are_clamped() {
        assert_eq!(token_lifetime(None), MIN_TOKEN_LIFETIME);
        assert_eq!(token_lifetime(Some(-1.0)), MIN_TOKEN_LIFETIME);
        assert_eq!(token_lifetime(Some(f64::NAN)), MIN_TOKEN_LIFETIME);
        assert_eq!(token_lifetime(Some(300.0)), Duration::from_secs(300));
        assert_eq!(token_lifetime(Some(1e300)), MAX_TOKEN_LIFETIME);
    }
}
