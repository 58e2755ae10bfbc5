//! Tokens of the shared bucket (Redis) taken ahead of use, so that a busy key does not cost a
//! Redis round trip per call.
//!
//! A replica that needs a token for a key asks the shared bucket for several at once and spends
//! the rest on the key's next calls, as long as they come within [`LEASE_TTL`]. Every token spent
//! was first taken from the shared bucket, so all replicas together never admit more than the
//! limit; what a replica holds unspent when another one is refused is the price (at most
//! [`most`] - 1 tokens per replica and key, a tenth of the burst), and tokens left when a lease
//! expires are lost, as if spent. A lease starts at one token and doubles each time the key spends
//! the whole lease within its lifetime (as TCP's slow start grows its window), and halves when
//! tokens expire unspent: a key that calls rarely costs one token per call, as without leases.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long leased tokens stay usable.
pub const LEASE_TTL: Duration = Duration::from_secs(1);
/// Most tokens in one lease.
const MAX_LEASE: u32 = 64;
/// Most keys holding a lease (when full, expired ones go, then all: a lease lost is only a
/// round trip more).
const CAPACITY: usize = 100_000;

/// The largest lease for a quota with `burst`: a tenth of it (at most 64), so that what the
/// replicas hold unspent stays a small part of the limit; 1 (no lease) below a burst of 20.
pub fn most(burst: u32) -> u32 {
    (burst / 10).clamp(1, MAX_LEASE)
}

struct Lease {
    /// Tokens taken and not spent.
    left: u32,
    /// Tokens asked for when it was taken.
    size: u32,
    /// When it was taken.
    taken: Instant,
}

impl Lease {
    fn live(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.taken) < LEASE_TTL
    }
}

/// The leases of one limit class, by key.
#[derive(Default)]
pub struct Leases {
    by_key: Mutex<HashMap<String, Lease>>,
}

impl Leases {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Lease>> {
        self.by_key.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Spends one leased token of `key`, if it holds one still usable.
    pub fn take(&self, key: &str, now: Instant) -> bool {
        let mut map = self.map();
        match map.get_mut(key) {
            Some(lease) if lease.left > 0 && lease.live(now) => {
                lease.left -= 1;
                true
            }
            _ => false,
        }
    }

    /// How many tokens to ask the shared bucket for, at most `most`: twice the last lease when the
    /// key spent it within its lifetime, half of it when tokens of it expired, else as many.
    pub fn wanted(&self, key: &str, most: u32, now: Instant) -> u32 {
        let map = self.map();
        let size = match map.get(key) {
            None => 1,
            Some(lease) if lease.left == 0 && lease.live(now) => lease.size.saturating_mul(2),
            Some(lease) if lease.left > 0 && !lease.live(now) => lease.size / 2,
            Some(lease) => lease.size,
        };
        size.clamp(1, most)
    }

    /// Records that `granted` tokens (of `asked`) were taken for `key`, one of which the caller
    /// spends now (only for quotas that lease: [`most`] above 1).
    pub fn granted(&self, key: &str, asked: u32, granted: u32, now: Instant) {
        let mut map = self.map();
        if map.len() >= CAPACITY && !map.contains_key(key) {
            map.retain(|_, lease| lease.live(now));
            if map.len() >= CAPACITY {
                map.clear();
            }
        }
        let spare = granted.saturating_sub(1);
        match map.get_mut(key) {
            Some(lease) => {
                // Concurrent calls of one key may each have taken a lease: what is left of the one
                // held (if still usable) is kept with the new one.
                lease.left = if lease.live(now) { lease.left.saturating_add(spare) } else { spare };
                lease.size = asked;
                lease.taken = now;
            }
            None => {
                map.insert(key.to_owned(), Lease { left: spare, size: asked, taken: now });
            }
        }
    }

    /// Forgets leases that expired.
    pub fn prune(&self, now: Instant) {
        let mut map = self.map();
        map.retain(|_, lease| lease.live(now));
        map.shrink_to_fit();
    }

    /// Whether no key holds a lease.
    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.map().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_bursts_are_not_leased_and_large_ones_a_tenth_at_most_64() {
        assert_eq!(most(5), 1);
        assert_eq!(most(19), 1);
        assert_eq!(most(100), 10);
        assert_eq!(most(1_000_000), 64);
        let leases = Leases::default();
        let now = Instant::now();
        leases.granted("k", 1, 1, now);
        assert_eq!(leases.wanted("k", 1, now), 1, "a quota that does not lease asks for one token");
        assert!(!leases.take("k", now), "the one token was spent by the call that took it");
    }

    #[test]
    fn a_lease_spent_within_its_lifetime_doubles_up_to_the_most_and_is_spent_one_token_a_call() {
        let leases = Leases::default();
        let now = Instant::now();
        assert_eq!(leases.wanted("k", 8, now), 1, "a key not seen starts at one token");
        let mut sizes = Vec::new();
        let mut calls_from_lease = 0;
        for _ in 0..40 {
            if leases.take("k", now) {
                calls_from_lease += 1;
                continue;
            }
            let asked = leases.wanted("k", 8, now);
            sizes.push(asked);
            leases.granted("k", asked, asked, now);
        }
        assert_eq!(sizes, [1, 2, 4, 8, 8, 8, 8, 8], "{sizes:?}");
        assert_eq!(calls_from_lease, 40 - sizes.len());
        // Another key has its own.
        assert!(!leases.take("other", now));
    }

    #[test]
    fn tokens_expire_with_their_lease_which_then_halves_and_a_partial_grant_is_kept_as_given() {
        let leases = Leases::default();
        let now = Instant::now();
        leases.granted("k", 8, 8, now);
        assert!(leases.take("k", now));
        let later = now + LEASE_TTL;
        assert!(!leases.take("k", later), "expired tokens are not spent");
        assert_eq!(leases.wanted("k", 8, later), 4, "tokens expired unspent: half the lease");
        // The bucket had only 3 left: two are kept for the next calls.
        leases.granted("k", 4, 3, later);
        assert!(leases.take("k", later));
        assert!(leases.take("k", later));
        assert!(!leases.take("k", later));
        leases.prune(later + LEASE_TTL);
        assert!(leases.is_empty());
    }

    #[test]
    fn concurrent_grants_of_one_key_add_up() {
        let leases = Leases::default();
        let now = Instant::now();
        leases.granted("k", 4, 4, now);
        leases.granted("k", 4, 4, now);
        let spent = (0..10).filter(|_| leases.take("k", now)).count();
        assert_eq!(spent, 6, "3 spare tokens of each grant");
    }
}
