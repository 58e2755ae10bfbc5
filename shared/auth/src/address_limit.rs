//! The limit on calls per client address that carry no credential or one that fails, checked before
//! any key is touched: a flood of bad tokens from one address costs, past the quota, a hash-map
//! lookup per call instead of an RSA verification (or an API-key lookup) and an audit append.
//!
//! Only failures draw from the quota (a GCRA per address, in process): callers whose credentials
//! verify are never slowed by it, but once an address has used its quota every call from it that
//! needs a credential checked is refused until the quota refills, since a good credential cannot be
//! told from a bad one without checking it. Memory is bounded: at most `max_addresses` addresses
//! are tracked apart, further ones share one bucket.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use prfix_runtime::ratelimit::{Denied, Quota};

/// The key of the bucket shared by addresses beyond the tracked ones.
const OTHER_ADDRESSES: &str = "*";
/// Least time between two sweeps of recovered buckets when the table is full.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Failed-credential budget per client address.
pub struct AddressLimiter {
    /// Time one failure takes to be forgiven.
    interval: Duration,
    /// Failures allowed at once.
    burst: u32,
    max_addresses: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Theoretical arrival time of each address's next failure.
    tats: HashMap<String, Instant>,
    last_sweep: Option<Instant>,
}

impl AddressLimiter {
    /// A limiter allowing `quota` failures per address, tracking at most `max_addresses` apart.
    pub fn new(quota: Quota, max_addresses: usize) -> Self {
        Self {
            interval: quota.interval(),
            burst: quota.burst.max(1),
            max_addresses: max_addresses.max(1),
            state: Mutex::default(),
        }
    }

    /// Whether a call from `address` may have its credential checked now.
    pub fn admit(&self, address: &str) -> Result<(), Denied> {
        self.admit_at(address, Instant::now())
    }

    /// Counts a call from `address` that had no credential or one that failed.
    pub fn failed(&self, address: &str) {
        self.failed_at(address, Instant::now());
    }

    /// [`Self::admit`] at `now`.
    pub fn admit_at(&self, address: &str, now: Instant) -> Result<(), Denied> {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let key = match state.tats.contains_key(address) {
            true => address,
            // An address not tracked while the table is full is counted in the shared bucket.
            false if state.tats.len() >= self.max_addresses => OTHER_ADDRESSES,
            false => return Ok(()),
        };
        let Some(tat) = state.tats.get(key) else { return Ok(()) };
        // After `burst` failures in a row the next one would be past the tolerance: refuse.
        let tolerance = self.interval * (self.burst - 1);
        let ahead = tat.saturating_duration_since(now);
        if ahead > tolerance {
            return Err(Denied { retry_after: ahead - tolerance, limit: self.burst });
        }
        Ok(())
    }

    /// [`Self::failed`] at `now`.
    pub fn failed_at(&self, address: &str, now: Instant) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if !state.tats.contains_key(address) && state.tats.len() >= self.max_addresses {
            let due = state.last_sweep.is_none_or(|last| now.saturating_duration_since(last) >= SWEEP_EVERY);
            if due {
                // Buckets that have refilled carry no state worth keeping.
                state.tats.retain(|_, tat| *tat > now);
                state.last_sweep = Some(now);
            }
        }
        let key = if state.tats.contains_key(address) || state.tats.len() < self.max_addresses {
            address
        } else {
            OTHER_ADDRESSES
        };
        let tat = state.tats.entry(key.to_owned()).or_insert(now);
        *tat = (*tat).max(now) + self.interval;
    }

    /// Addresses tracked apart now (for tests and metrics).
    pub fn tracked(&self) -> usize {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).tats.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(burst: u32, max: usize) -> AddressLimiter {
        AddressLimiter::new(Quota { per_minute: 60, burst }, max)
    }

    #[test]
    fn an_address_may_fail_burst_times_then_waits_for_its_quota_to_refill() {
        let limiter = limiter(3, 10);
        let start = Instant::now();
        for _ in 0..3 {
            assert!(limiter.admit_at("10.0.0.1", start).is_ok());
            limiter.failed_at("10.0.0.1", start);
        }
        let refused = limiter.admit_at("10.0.0.1", start).expect_err("the fourth is refused");
        assert_eq!(refused.retry_after, Duration::from_secs(1));
        assert!(limiter.admit_at("10.0.0.2", start).is_ok(), "another address is not affected");
        assert!(limiter.admit_at("10.0.0.1", start + Duration::from_secs(1)).is_ok(), "one failure forgiven");
    }

    #[test]
    fn calls_that_are_only_admitted_draw_nothing() {
        let limiter = limiter(1, 10);
        let now = Instant::now();
        for _ in 0..100 {
            assert!(limiter.admit_at("10.0.0.1", now).is_ok());
        }
    }

    #[test]
    fn addresses_beyond_the_cap_share_one_bucket_and_recovered_ones_are_forgotten() {
        let limiter = limiter(2, 2);
        let now = Instant::now();
        limiter.failed_at("a", now);
        limiter.failed_at("b", now);
        limiter.failed_at("c", now);
        limiter.failed_at("d", now);
        assert!(limiter.tracked() <= 3, "two addresses and the shared bucket");
        assert!(limiter.admit_at("e", now).is_err(), "c and d used the shared bucket");
        // Later, the recovered buckets are swept and new addresses tracked apart again.
        let later = now + Duration::from_secs(10);
        limiter.failed_at("f", later);
        assert!(limiter.admit_at("f", later).is_ok());
        assert!(limiter.tracked() <= 3);
    }
}
