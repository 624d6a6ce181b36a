//! The retry policy: which delays, how many attempts. The loop that applies
//! it is [`super::Transport::retrying`], the only retry loop in the engine.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

/// Attempts per request by default. Six attempts with doubling delays span
/// about half a minute, long enough to ride out a registry restart or a load
/// balancer shuffling backends, short enough that a dead registry fails the
/// job promptly.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 6;
/// First backoff delay; doubled per retry.
pub const DEFAULT_INITIAL_DELAY: Duration = Duration::from_millis(500);
/// Backoff never waits longer than this between two attempts...
pub const DEFAULT_MAX_DELAY: Duration = Duration::from_secs(15);
/// ...unless the registry asked for longer with `Retry-After`, which we honour
/// up to this bound (a Docker Hub rate limit can ask for hours; failing is
/// better than hanging a job).
pub const DEFAULT_MAX_RETRY_AFTER: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub initial_delay: Duration,
    pub max_delay: Duration,
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            initial_delay: DEFAULT_INITIAL_DELAY,
            max_delay: DEFAULT_MAX_DELAY,
            max_retry_after: DEFAULT_MAX_RETRY_AFTER,
        }
    }
}

impl RetryPolicy {
    /// The delay before retry number `retry` (0-based): exponential, with
    /// "equal jitter" (a random point in the upper half) so that parallel
    /// copies hitting the same fault do not come back in lockstep.
    pub fn backoff(&self, retry: u32) -> Duration {
        let exp = self.initial_delay.saturating_mul(1u32 << retry.min(16)).min(self.max_delay);
        let half = exp / 2;
        half + half.mul_f64(jitter())
    }

    /// The delay to honour for a `Retry-After` the registry sent.
    pub fn retry_after(&self, asked: Duration) -> Duration {
        asked.min(self.max_retry_after)
    }
}

/// A number in [0, 1). Not cryptographic: it only spreads retries.
fn jitter() -> f64 {
    static STATE: AtomicU64 = AtomicU64::new(0);
    let seed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1);
    let mut x = STATE.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed) ^ seed;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    (x >> 11) as f64 / (1u64 << 53) as f64
}

/// Parses `Retry-After`: delay seconds or an HTTP date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy::default();
        for retry in 0..20 {
            let d = p.backoff(retry);
            let exp = p.initial_delay.saturating_mul(1 << retry.min(16)).min(p.max_delay);
            assert!(d >= exp / 2 && d <= exp, "retry {retry}: {d:?}");
        }
        assert!(p.backoff(30) <= p.max_delay);
        assert_eq!(p.retry_after(Duration::from_secs(3600)), p.max_retry_after);
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        let future = SystemTime::now() + Duration::from_secs(30);
        let d = parse_retry_after(&httpdate::fmt_http_date(future)).unwrap();
        assert!(d <= Duration::from_secs(30) && d >= Duration::from_secs(28), "{d:?}");
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon"), None);
    }
}
