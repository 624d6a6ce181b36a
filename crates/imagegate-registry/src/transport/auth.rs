//! Registry authentication: `WWW-Authenticate` challenges, bearer tokens
//! cached by scope, and basic auth.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::Deserialize;

/// A token without `expires_in` is valid for 60 s (the distribution token
/// specification's default).
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(60);
/// Tokens are renewed this long before they expire, so a request never
/// starts with a token that dies in flight.
const TOKEN_RENEW_MARGIN: Duration = Duration::from_secs(10);

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
    #[serde(default)]
    expires_in: Option<u64>,
}

impl TokenAnswer {
    pub(crate) fn into_token(self) -> Option<CachedToken> {
        let value = self.token.or(self.access_token).filter(|t| !t.is_empty())?;
        let lifetime = self.expires_in.map(Duration::from_secs).unwrap_or(DEFAULT_TOKEN_LIFETIME);
        Some(CachedToken {
            value,
            renew_at: Instant::now() + lifetime.saturating_sub(TOKEN_RENEW_MARGIN),
        })
    }
}

#[derive(Clone)]
pub(crate) struct CachedToken {
    pub(crate) value: String,
    renew_at: Instant,
}

impl CachedToken {
    pub(crate) fn fresh(&self) -> bool {
        Instant::now() < self.renew_at
    }
}

/// Per-registry authentication state.
#[derive(Default)]
pub(crate) struct AuthState {
    pub(crate) challenge: std::sync::Mutex<Option<Challenge>>,
    /// Tokens by scope key; the async lock also keeps concurrent requests
    /// from fetching the same token at once.
    pub(crate) tokens: tokio::sync::Mutex<HashMap<String, CachedToken>>,
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
        assert_eq!(t.value, "t");
        assert!(!t.fresh(), "a token about to expire is renewed");
        let t: TokenAnswer = serde_json::from_str(r#"{"token":""}"#).unwrap();
        assert!(t.into_token().is_none());
    }
}
