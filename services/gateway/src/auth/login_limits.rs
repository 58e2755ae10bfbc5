//! Login limits that stop password guessing without letting a guesser lock the owner out.
//!
//! Three limits stand in front of a password check (docs/security.md, "Login limits"):
//! - by address: the edge's `strict` class, for every public credential call;
//! - by (user name, address): [`LoginLimits::pair`], so one address cannot keep guessing one
//!   account, and its refusals touch no one else;
//! - by account, counting failures only, as OWASP asks (the counter belongs to the account, not
//!   to an address, or guessing from many addresses would go unnoticed): when more than
//!   [`LoginLimits::account_failures`] allows have failed, the account is throttled for
//!   [`LoginLimits::throttle_secs`]. While throttled, each address gets one attempt per
//!   [`LoginLimits::throttled_pair`] period for it, so spreading a guess over many addresses
//!   gains little, while an address that has not tried this account lately (the owner on a new
//!   network) is always let through to the password check: a correct password is never refused
//!   because of someone else's guesses.
//!
//! The buckets live in the shared limiter (Redis when configured, so every replica counts the
//! same failures); the throttled mark is kept per replica, and any replica whose failure
//! overflows the shared account bucket sets it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use prfix_runtime::ratelimit::{Class, Denied, GivenQuota, Limiter, Limits, Quota};
use prfix_runtime::redis::Redis;
use serde::Deserialize;

/// The login limits' settings (`[gateway.login_limits]`); a quota given in part keeps the rest of
/// its default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginLimitSettings {
    /// Attempts at one user name from one address.
    pub pair: Quota,
    /// Failed logins of one account, from anywhere, before it is throttled.
    pub account_failures: Quota,
    /// Attempts at a throttled account from one address.
    pub throttled_pair: Quota,
    /// How long an account stays throttled after its failures overflowed, in seconds.
    pub throttle_secs: u64,
}

impl<'de> Deserialize<'de> for LoginLimitSettings {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Default, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        struct Given {
            pair: GivenQuota,
            account_failures: GivenQuota,
            throttled_pair: GivenQuota,
            throttle_secs: Option<u64>,
        }
        let given = Given::deserialize(deserializer)?;
        let base = LoginLimitSettings::default();
        Ok(LoginLimitSettings {
            pair: given.pair.or(base.pair),
            account_failures: given.account_failures.or(base.account_failures),
            throttled_pair: given.throttled_pair.or(base.throttled_pair),
            throttle_secs: given.throttle_secs.unwrap_or(base.throttle_secs),
        })
    }
}

impl Default for LoginLimitSettings {
    fn default() -> Self {
        Self {
            pair: Quota { per_minute: 10, burst: 5 },
            account_failures: Quota { per_minute: 2, burst: 20 },
            throttled_pair: Quota { per_minute: 1, burst: 1 },
            throttle_secs: 900,
        }
    }
}

/// Most throttled accounts remembered at once (beyond, the oldest marks are dropped first).
const MAX_THROTTLED: usize = 10_000;

/// The login limits of one gateway replica.
pub struct LoginLimits {
    /// Buckets: `strict` holds the pair quota, `expensive` the account failures, `default` the
    /// throttled pair quota (the classes only name the buckets here).
    limiter: Limiter,
    throttle: Duration,
    /// Throttled accounts and until when.
    throttled: Mutex<HashMap<String, Instant>>,
}

/// Why a login attempt is refused before its password is checked.
#[derive(Debug, Clone, Copy)]
pub enum LoginRefusal {
    /// This address tried this user name too often.
    Pair(Denied),
    /// The account is throttled and this address already tried it lately.
    Throttled(Denied),
}

impl LoginRefusal {
    /// The wait, for the caller.
    pub fn denied(self) -> Denied {
        match self {
            LoginRefusal::Pair(denied) | LoginRefusal::Throttled(denied) => denied,
        }
    }

    /// The reason in the audit log.
    pub fn reason(self) -> &'static str {
        match self {
            LoginRefusal::Pair(_) => "rate limited: too many attempts at this user from this address",
            LoginRefusal::Throttled(_) => "rate limited: the account is throttled after failed logins",
        }
    }
}

impl LoginLimits {
    /// Limits with `settings`, shared through `redis` when given.
    pub fn new(settings: LoginLimitSettings, redis: Option<Redis>) -> Arc<Self> {
        let limits = Limits {
            strict: settings.pair,
            expensive: settings.account_failures,
            default: settings.throttled_pair,
            internal: settings.throttled_pair,
        };
        let this = Arc::new(Self {
            limiter: Limiter::new(limits, redis),
            throttle: Duration::from_secs(settings.throttle_secs),
            throttled: Mutex::new(HashMap::new()),
        });
        // Buckets of addresses seen once must not stay in memory: pruned every minute for as
        // long as the limits are in use.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let weak = Arc::downgrade(&this);
            runtime.spawn(async move {
                let mut every = tokio::time::interval(Duration::from_secs(60));
                loop {
                    every.tick().await;
                    let Some(limits) = weak.upgrade() else { return };
                    limits.prune();
                }
            });
        }
        this
    }

    /// Forgets full buckets and expired marks.
    pub fn prune(&self) {
        self.limiter.prune();
        let now = Instant::now();
        self.throttled.lock().unwrap_or_else(PoisonError::into_inner).retain(|_, until| *until > now);
    }

    fn is_throttled(&self, username: &str) -> bool {
        let throttled = self.throttled.lock().unwrap_or_else(PoisonError::into_inner);
        throttled.get(username).is_some_and(|until| *until > Instant::now())
    }

    /// Admits or refuses an attempt at `username` from `address`, before the password is checked.
    /// Both per-address buckets are always spent, so that an address that tried before the
    /// account was throttled counts as having tried.
    pub async fn admit(&self, username: &str, address: &str) -> Result<(), LoginRefusal> {
        let pair = self.limiter.check(Class::Strict, &format!("login-pair:{username}@{address}")).await;
        let slow = self.limiter.check(Class::Default, &format!("login-throttled:{username}@{address}")).await;
        pair.map_err(LoginRefusal::Pair)?;
        if self.is_throttled(username) {
            slow.map_err(LoginRefusal::Throttled)?;
        }
        Ok(())
    }

    /// Counts a failed password for `username`; returns true when this failure throttled the
    /// account.
    pub async fn failed(&self, username: &str) -> bool {
        if self.limiter.check(Class::Expensive, &format!("login-failures:{username}")).await.is_ok() {
            return false;
        }
        let mut throttled = self.throttled.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        let newly = throttled.get(username).is_none_or(|until| *until <= now);
        if throttled.len() >= MAX_THROTTLED && newly {
            throttled.retain(|_, until| *until > now);
            if throttled.len() >= MAX_THROTTLED
                && let Some(oldest) = throttled.iter().min_by_key(|(_, until)| **until).map(|(k, _)| k.clone())
            {
                throttled.remove(&oldest);
            }
        }
        throttled.insert(username.to_owned(), now + self.throttle);
        newly
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Arc<LoginLimits> {
        LoginLimits::new(
            LoginLimitSettings {
                pair: Quota { per_minute: 1, burst: 3 },
                account_failures: Quota { per_minute: 1, burst: 4 },
                throttled_pair: Quota { per_minute: 1, burst: 1 },
                throttle_secs: 900,
            },
            None,
        )
    }

    #[tokio::test]
    async fn one_address_is_limited_at_one_user_without_touching_other_addresses() {
        let limits = limits();
        for _ in 0..3 {
            assert!(limits.admit("admin", "10.0.0.9").await.is_ok());
        }
        assert!(matches!(limits.admit("admin", "10.0.0.9").await, Err(LoginRefusal::Pair(_))));
        assert!(limits.admit("admin", "10.0.0.1").await.is_ok(), "the owner's address is untouched");
        assert!(limits.admit("alice", "10.0.0.9").await.is_ok(), "other users are untouched");
    }

    #[tokio::test]
    async fn a_throttled_account_admits_each_address_once_and_new_addresses_always() {
        let limits = limits();
        // Failures from four addresses fill the account's bucket; the fifth throttles it.
        for address in ["10.0.1.1", "10.0.1.2", "10.0.1.3", "10.0.1.4"] {
            assert!(limits.admit("admin", address).await.is_ok());
            assert!(!limits.failed("admin").await);
        }
        assert!(limits.admit("admin", "10.0.1.5").await.is_ok());
        assert!(limits.failed("admin").await, "the failure over the bucket throttles the account");
        // An address that tried lately gets no more attempts, although its pair bucket has room.
        assert!(matches!(limits.admit("admin", "10.0.1.1").await, Err(LoginRefusal::Throttled(_))));
        // A new address is still let through to the password check.
        assert!(limits.admit("admin", "10.0.2.1").await.is_ok());
        // Other accounts are not throttled.
        assert!(limits.admit("alice", "10.0.1.1").await.is_ok());
    }
}
