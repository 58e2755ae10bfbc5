//! When to send a forge call again, and after how long.
//!
//! A forge says "too many requests" in several ways: HTTP 429; GitHub's 403 with `Retry-After`, with
//! `X-RateLimit-Remaining: 0` (the primary limit, reset at `X-RateLimit-Reset`), or with a message
//! about a secondary rate limit; GitLab's `RateLimit-*` headers. Gateways in front of a forge answer
//! 502/503/504 while it restarts. Those are tried again, up to [`RetryPolicy::max_tries`] sends in
//! all, after the wait the forge asked for (plus a little jitter so parallel jobs do not come back
//! at the same instant), or after a jittered exponential backoff when it named none. A wait longer
//! than [`RetryPolicy::max_wait`] is not slept through: the call fails saying how long the forge
//! wanted.

use std::time::{Duration, SystemTime};

use reqwest::header::HeaderMap;

/// How often and how patiently calls are tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Sends of one call in all (at least 1).
    pub max_tries: u32,
    /// The first backoff when the forge names no wait; doubled on each further try.
    pub base_delay: Duration,
    /// The wait after a secondary rate limit that names no wait (GitHub asks for at least a minute).
    pub secondary_wait: Duration,
    /// The longest single wait; a forge asking for more fails the call instead.
    pub max_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_tries: 5,
            base_delay: Duration::from_secs(1),
            secondary_wait: Duration::from_secs(60),
            max_wait: Duration::from_secs(300),
        }
    }
}

/// An answer worth trying again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Passing {
    /// The wait the forge asked for, if it named one.
    pub wait: Option<Duration>,
    /// A GitHub secondary rate limit that named no wait: GitHub asks for at least a minute.
    pub secondary: bool,
    /// `rate-limited (HTTP 403: ...)` or `failing (HTTP 503: ...)`, for the error after the last try.
    pub reason: String,
}

/// Whether an answer is a rate limit or a passing failure, and how long the forge asks to wait.
/// `message` is the forge's message from the body; `now` the current time (for reset times).
pub fn classify(status: u16, headers: &HeaderMap, message: &str, now: SystemTime) -> Option<Passing> {
    let retry_after = header(headers, "retry-after").and_then(|v| retry_after(v, now));
    let remaining = header(headers, "x-ratelimit-remaining").or_else(|| header(headers, "ratelimit-remaining"));
    let exhausted = remaining.is_some_and(|r| r.trim() == "0");
    let reset = header(headers, "x-ratelimit-reset")
        .or_else(|| header(headers, "ratelimit-reset"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|epoch| until(epoch, now));
    let lower = message.to_ascii_lowercase();
    let secondary = lower.contains("secondary rate limit") || lower.contains("abuse detection");
    let limited =
        status == 429 || (status == 403 && (retry_after.is_some() || exhausted || lower.contains("rate limit")));
    if limited {
        let wait = retry_after.or(if exhausted { reset } else { None });
        let reason = format!("rate-limited (HTTP {status}: {message})");
        return Some(Passing { wait, secondary: secondary && wait.is_none(), reason });
    }
    if matches!(status, 502..=504) {
        let reason = format!("failing (HTTP {status}: {message})");
        return Some(Passing { wait: retry_after, secondary: false, reason });
    }
    None
}

impl RetryPolicy {
    /// The wait before try `next` (2 for the first retry) after `passing`, jittered; `Err` with the
    /// wait asked for when it exceeds [`RetryPolicy::max_wait`].
    pub fn wait(&self, passing: &Passing, next: u32) -> Result<Duration, Duration> {
        let asked = match passing.wait {
            Some(wait) => wait,
            None if passing.secondary => self.secondary_wait,
            None => self.base_delay.saturating_mul(1u32 << next.saturating_sub(2).min(10)),
        };
        if asked > self.max_wait {
            return Err(asked);
        }
        // Up to a tenth more (at most a second): parallel jobs limited together do not all return at
        // the same instant.
        let spread = (asked / 10).min(Duration::from_secs(1));
        let jitter = if spread.is_zero() { Duration::ZERO } else { spread.mul_f64(rand::random::<f64>()) };
        Ok(asked + jitter)
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// `Retry-After`: seconds, or an HTTP date.
fn retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The time from `now` to the Unix time `epoch` (zero when past), plus a second: resets are whole
/// seconds and the limit lifts at the end of the one named.
fn until(epoch: u64, now: SystemTime) -> Duration {
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(epoch);
    at.duration_since(now).unwrap_or(Duration::ZERO) + Duration::from_secs(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().expect("a header value"));
        }
        map
    }

    const NOW: u64 = 1_800_000_000;

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(NOW)
    }

    #[test]
    fn retry_after_and_reset_headers_name_the_wait() {
        let p = classify(403, &headers(&[("retry-after", "7")]), "You have exceeded a secondary rate limit", now());
        assert_eq!(p.expect("limited").wait, Some(Duration::from_secs(7)));
        let reset = (NOW + 30).to_string();
        let p = classify(403, &headers(&[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", &reset)]), "x", now());
        assert_eq!(p.expect("limited").wait, Some(Duration::from_secs(31)));
        let p = classify(429, &headers(&[("ratelimit-remaining", "0"), ("ratelimit-reset", &reset)]), "", now());
        assert_eq!(p.expect("limited").wait, Some(Duration::from_secs(31)));
        let date = httpdate::fmt_http_date(now() + Duration::from_secs(12));
        let p = classify(503, &headers(&[("retry-after", &date)]), "", now());
        assert_eq!(p.expect("passing").wait, Some(Duration::from_secs(12)));
    }

    #[test]
    fn a_plain_refusal_is_not_retried() {
        assert_eq!(classify(403, &headers(&[]), "Resource not accessible by integration", now()), None);
        assert_eq!(classify(403, &headers(&[("x-ratelimit-remaining", "12")]), "Forbidden", now()), None);
        assert_eq!(classify(422, &headers(&[("retry-after", "1")]), "Unprocessable", now()), None);
        assert_eq!(classify(404, &headers(&[]), "Not Found", now()), None);
    }

    #[test]
    fn waits_grow_are_jittered_and_bounded() {
        let policy = RetryPolicy {
            max_tries: 5,
            base_delay: Duration::from_millis(100),
            secondary_wait: Duration::from_secs(60),
            max_wait: Duration::from_secs(90),
        };
        let unnamed = Passing { wait: None, secondary: false, reason: "failing (HTTP 502: x)".to_owned() };
        for (next, base) in [(2, 100), (3, 200), (4, 400)] {
            let wait = policy.wait(&unnamed, next).expect("short");
            let base = Duration::from_millis(base);
            assert!(wait >= base && wait <= base + base / 10, "{wait:?} for try {next}");
        }
        let secondary =
            classify(403, &headers(&[]), "You have exceeded a secondary rate limit", now()).expect("limited");
        assert!(policy.wait(&secondary, 2).expect("a minute") >= Duration::from_secs(60));
        let long =
            Passing { wait: Some(Duration::from_secs(3600)), secondary: false, reason: "rate-limited".to_owned() };
        assert_eq!(policy.wait(&long, 2), Err(Duration::from_secs(3600)));
    }
}
