//! Rate limits by class (from the method policy), keyed by principal, or by client address for
//! anonymous calls; the gateway and the services behind it apply the same ones. A governor
//! limiter in process always applies; with Redis, a GCRA kept in Redis (one atomic script on
//! Redis's clock) makes every replica share one limit; a busy key takes several of its tokens at
//! a time and spends them over its next calls ([`leases`]), so that it does not cost a round trip
//! per call. When Redis fails, the local limiter alone decides (never "unlimited") until Redis
//! answers again, with a log line and a counter.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::redis::Redis;
use fred::prelude::LuaInterface;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota as GovernorQuota, RateLimiter};
use prfix_proto::options::v1::RateLimitClass;
use serde::Deserialize;
use tonic::Status;

mod leases;

/// GCRA: the key holds the theoretical arrival time (µs, Redis clock); ARGV[1] is the interval in
/// µs. Takes up to ARGV[3] tokens (1 when absent), as many as the bucket holds, and returns
/// {taken, wait_us}: {0, wait} when not even one is there.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = interval * tonumber(ARGV[2])
local wanted = tonumber(ARGV[3] or '1')
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local fit = math.floor((now + tolerance - tat) / interval)
if fit < 1 then
  return {0, tat + interval - tolerance - now}
end
local taken = math.min(wanted, fit)
local new_tat = tat + taken * interval
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil((new_tat - now) / 1000) + 1000)
return {taken, 0}
";

/// A limit class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// Ordinary calls.
    Default,
    /// Task creation.
    Expensive,
    /// Credential checks.
    Strict,
    /// Service-to-service calls.
    Internal,
}

impl Class {
    /// The class of a policy's `rate_limit` value.
    pub fn from_proto(value: i32) -> Self {
        match RateLimitClass::try_from(value) {
            Ok(RateLimitClass::Expensive) => Class::Expensive,
            Ok(RateLimitClass::Strict) => Class::Strict,
            Ok(RateLimitClass::Internal) => Class::Internal,
            _ => Class::Default,
        }
    }

    /// The name in keys and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Class::Default => "default",
            Class::Expensive => "expensive",
            Class::Strict => "strict",
            Class::Internal => "internal",
        }
    }
}

/// A quota: a sustained rate and a burst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quota {
    /// Calls per minute, sustained (1 to [`MAX_PER_MINUTE`]).
    pub per_minute: u32,
    /// Calls allowed at once.
    pub burst: u32,
}

/// The fastest sustained rate a quota may have: one call a microsecond, the resolution of the
/// shared bucket in Redis.
pub const MAX_PER_MINUTE: u32 = 60_000_000;
/// The largest burst a quota may have: the shared bucket's arithmetic (Lua doubles, in
/// microseconds) stays exact up to it at any rate.
pub const MAX_BURST: u32 = 100_000_000;

impl Quota {
    /// The time one call takes from the bucket, to the nanosecond (a rate that does not divide a
    /// minute into whole milliseconds is kept exactly, not rounded).
    pub fn interval(self) -> Duration {
        Duration::from_nanos(60_000_000_000 / u64::from(self.per_minute.max(1)))
    }

    /// [`Self::interval`] in whole microseconds, rounded up (the shared bucket is never looser than
    /// the quota), as the shared bucket counts it.
    fn interval_us(self) -> u64 {
        60_000_000u64.div_ceil(u64::from(self.per_minute.max(1)))
    }

    /// Why the quota cannot be applied as written, if it cannot.
    pub fn problem(self) -> Option<String> {
        if self.per_minute == 0 || self.per_minute > MAX_PER_MINUTE {
            return Some(format!("per_minute is {}; it must be 1 to {MAX_PER_MINUTE}", self.per_minute));
        }
        if self.burst == 0 || self.burst > MAX_BURST {
            return Some(format!("burst is {}; it must be 1 to {MAX_BURST}", self.burst));
        }
        None
    }

    /// [`Self::problem`] as the settings error of the quota at `key`.
    pub fn check(self, key: &'static str) -> Result<(), crate::settings::SettingsError> {
        match self.problem() {
            Some(reason) => Err(crate::settings::SettingsError::Invalid { key, reason }),
            None => Ok(()),
        }
    }
}

/// A quota as a settings file or the environment gives it: either field may be left out, and is
/// then the quota's default ([`GivenQuota::or`]), so that `PRFIX_..._BURST` alone changes the burst.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GivenQuota {
    /// Calls per minute, when given.
    pub per_minute: Option<u32>,
    /// The burst, when given.
    pub burst: Option<u32>,
}

impl GivenQuota {
    /// The quota with what was not given taken from `default`.
    pub fn or(self, default: Quota) -> Quota {
        Quota { per_minute: self.per_minute.unwrap_or(default.per_minute), burst: self.burst.unwrap_or(default.burst) }
    }
}

/// The quotas of every class (`[gateway.limits]` at the gateway).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Ordinary calls.
    pub default: Quota,
    /// Task creation.
    pub expensive: Quota,
    /// Login and refresh.
    pub strict: Quota,
    /// Service calls.
    pub internal: Quota,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            default: Quota { per_minute: 1_200, burst: 100 },
            expensive: Quota { per_minute: 30, burst: 10 },
            strict: Quota { per_minute: 10, burst: 5 },
            internal: Quota { per_minute: 60_000, burst: 1_000 },
        }
    }
}

impl<'de> Deserialize<'de> for Limits {
    /// Each class, and each field of it, not given keeps its default.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Default, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        struct Given {
            default: GivenQuota,
            expensive: GivenQuota,
            strict: GivenQuota,
            internal: GivenQuota,
        }
        let given = Given::deserialize(deserializer)?;
        let base = Limits::default();
        Ok(Limits {
            default: given.default.or(base.default),
            expensive: given.expensive.or(base.expensive),
            strict: given.strict.or(base.strict),
            internal: given.internal.or(base.internal),
        })
    }
}

impl Limits {
    /// Checks every class's quota; `keys` name the settings of the default, expensive, strict and
    /// internal quotas, in that order, in the error.
    pub fn check(&self, keys: [&'static str; 4]) -> Result<(), crate::settings::SettingsError> {
        let classes = [Class::Default, Class::Expensive, Class::Strict, Class::Internal];
        classes.into_iter().zip(keys).try_for_each(|(class, key)| self.quota(class).check(key))
    }

    fn quota(&self, class: Class) -> Quota {
        match class {
            Class::Default => self.default,
            Class::Expensive => self.expensive,
            Class::Strict => self.strict,
            Class::Internal => self.internal,
        }
    }
}

/// A refusal, with how long to wait.
#[derive(Debug, Clone, Copy)]
pub struct Denied {
    /// Time until a call would be admitted.
    pub retry_after: Duration,
    /// The burst of the quota that refused (for the `RateLimit` header).
    pub limit: u32,
}

impl Denied {
    /// Seconds to wait, rounded up (at least 1).
    pub fn retry_after_secs(self) -> u64 {
        u64::try_from(self.retry_after.as_millis().max(1).div_ceil(1000)).unwrap_or(u64::MAX)
    }

    /// RESOURCE_EXHAUSTED with the wait in the trailers (`retry-after` seconds, `retry-after-ms`).
    pub fn into_status(self) -> Status {
        let mut status = Status::resource_exhausted("rate limit exceeded; retry later");
        let ms = self.retry_after.as_millis().max(1);
        let secs = ms.div_ceil(1000);
        if let Ok(v) = secs.to_string().parse() {
            status.metadata_mut().insert("retry-after", v);
        }
        if let Ok(v) = ms.to_string().parse() {
            status.metadata_mut().insert("retry-after-ms", v);
        }
        status
    }
}

/// The limiter of one process (a gateway, or a service at its own port).
pub struct Limiter {
    limits: Limits,
    local: HashMap<Class, DefaultKeyedRateLimiter<String>>,
    /// Tokens taken from the shared bucket ahead of use, by class (see [`leases`]).
    leases: HashMap<Class, leases::Leases>,
    redis: Option<Redis>,
    /// The service whose port applies these limits (`None`: the gateway), in the Redis key, so
    /// that a call counted by the gateway is not counted twice in one bucket by the service
    /// behind it.
    scope: Option<&'static str>,
    /// Calls decided locally because Redis failed (exported as a metric later).
    pub redis_fallbacks: AtomicU64,
    /// The SHA-1 Redis gave the GCRA script when it was loaded: calls send it (EVALSHA), not the
    /// script; loaded again when Redis has forgotten it (restart, SCRIPT FLUSH).
    gcra_sha: std::sync::Mutex<Option<String>>,
}

impl Limiter {
    /// A limiter with `limits`, shared through `redis` when given.
    pub fn new(limits: Limits, redis: Option<Redis>) -> Self {
        Self::build(limits, redis, None)
    }

    /// The limiter of the service `scope` at its own port: its buckets are its own, apart from
    /// the gateway's (every call through the gateway is counted by both).
    pub fn scoped(scope: &'static str, limits: Limits, redis: Option<Redis>) -> Self {
        Self::build(limits, redis, Some(scope))
    }

    fn build(limits: Limits, redis: Option<Redis>, scope: Option<&'static str>) -> Self {
        let mut local = HashMap::new();
        let mut leased = HashMap::new();
        for class in [Class::Default, Class::Expensive, Class::Strict, Class::Internal] {
            let quota = limits.quota(class);
            let burst = NonZeroU32::new(quota.burst.max(1)).unwrap_or(NonZeroU32::MIN);
            let governor_quota = GovernorQuota::with_period(quota.interval())
                .unwrap_or_else(|| GovernorQuota::per_second(NonZeroU32::MIN))
                .allow_burst(burst);
            local.insert(class, RateLimiter::keyed(governor_quota));
            leased.insert(class, leases::Leases::default());
        }
        Self {
            limits,
            local,
            leases: leased,
            redis,
            scope,
            redis_fallbacks: AtomicU64::new(0),
            gcra_sha: std::sync::Mutex::new(None),
        }
    }

    /// Forgets local buckets that are full again, so keys seen once do not stay in memory.
    pub fn prune(&self) {
        for limiter in self.local.values() {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        let now = Instant::now();
        for leases in self.leases.values() {
            leases.prune(now);
        }
    }

    /// Runs the GCRA script by its hash, loading it first when Redis does not have it.
    async fn gcra(&self, redis: &Redis, key: String, args: Vec<String>) -> Result<Vec<i64>, fred::error::Error> {
        let known = self.gcra_sha.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        if let Some(sha) = known {
            match redis.client.evalsha::<Vec<i64>, _, _, _>(sha, vec![key.clone()], args.clone()).await {
                Err(e) if e.details().contains("NOSCRIPT") => {}
                answer => return answer,
            }
        }
        let sha: String = redis.client.script_load(GCRA).await?;
        *self.gcra_sha.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(sha.clone());
        redis.client.evalsha::<Vec<i64>, _, _, _>(sha, vec![key], args).await
    }

    /// Admits or refuses one call of `class` for `key`.
    pub async fn check(&self, class: Class, key: &str) -> Result<(), Denied> {
        if let Some(limiter) = self.local.get(&class)
            && let Err(not_until) = limiter.check_key(&key.to_owned())
        {
            let limit = self.limits.quota(class).burst;
            return Err(Denied { retry_after: not_until.wait_time_from(DefaultClock::default().now()), limit });
        }
        let Some(redis) = &self.redis else { return Ok(()) };
        let quota = self.limits.quota(class);
        let most = leases::most(quota.burst);
        let leases = self.leases.get(&class).filter(|_| most > 1);
        let now = Instant::now();
        if leases.is_some_and(|l| l.take(key, now)) {
            return Ok(());
        }
        let wanted = leases.map_or(1, |l| l.wanted(key, most, now));
        let redis_key = match self.scope {
            // `us`: the bucket counts microseconds (its times in milliseconds, as kept before, would
            // read as far in the past, and the other way round as far in the future).
            Some(scope) => redis.key(&format!("ratelimit:us:{scope}:{}:{key}", class.name())),
            None => redis.key(&format!("ratelimit:us:{}:{key}", class.name())),
        };
        let args = vec![quota.interval_us().to_string(), quota.burst.max(1).to_string(), wanted.to_string()];
        let call = self.gcra(redis, redis_key, args);
        // Redis failing leaves the local decision above standing: limited, never unlimited.
        match redis.call(call).await {
            Ok(answer) => match answer.as_slice() {
                [0, wait, ..] => Err(Denied {
                    retry_after: Duration::from_micros(u64::try_from(*wait).unwrap_or(1)),
                    limit: quota.burst,
                }),
                [taken, ..] => {
                    if let Some(leases) = leases {
                        leases.granted(key, wanted, u32::try_from(*taken).unwrap_or(1), now);
                    }
                    Ok(())
                }
                [] => Ok(()),
            },
            Err(_) => {
                self.redis_fallbacks.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits_with_default(default: Quota) -> Limits {
        Limits { default, ..Limits::default() }
    }

    #[test]
    fn a_quota_takes_its_interval_to_the_nanosecond_and_not_rounded_to_milliseconds() {
        let interval = |per_minute| Quota { per_minute, burst: 1 }.interval();
        assert_eq!(interval(1_200), Duration::from_millis(50));
        assert_eq!(interval(7_000), Duration::from_nanos(8_571_428));
        assert_eq!(interval(600_000), Duration::from_micros(100));
        assert_eq!(interval(MAX_PER_MINUTE), Duration::from_micros(1));
        assert_eq!(Quota { per_minute: 600_000, burst: 1 }.interval_us(), 100);
        // Rounded up: the shared bucket is never looser than the quota.
        assert_eq!(Quota { per_minute: 7_000, burst: 1 }.interval_us(), 8_572);
        assert_eq!(Quota { per_minute: 40_000_000, burst: 1 }.interval_us(), 2);
        assert_eq!(Quota { per_minute: MAX_PER_MINUTE, burst: 1 }.interval_us(), 1);
    }

    #[test]
    fn quotas_that_cannot_be_applied_as_written_are_named_with_the_reason() {
        assert_eq!(Quota { per_minute: MAX_PER_MINUTE, burst: 1 }.problem(), None);
        let too_fast = Quota { per_minute: MAX_PER_MINUTE + 1, burst: 1 }.problem().expect("refused");
        assert!(too_fast.contains("60000001") && too_fast.contains("1 to 60000000"), "{too_fast}");
        assert!(Quota { per_minute: 0, burst: 1 }.problem().is_some());
        assert!(Quota { per_minute: 1, burst: 0 }.problem().expect("refused").contains("burst is 0"));
        assert!(Quota { per_minute: 1, burst: MAX_BURST + 1 }.problem().is_some());
        assert_eq!(Quota { per_minute: 1, burst: MAX_BURST }.problem(), None);
        let keys = ["l.default", "l.expensive", "l.strict", "l.internal"];
        assert!(Limits::default().check(keys).is_ok());
        let bad = Limits { strict: Quota { per_minute: 0, burst: 5 }, ..Limits::default() };
        match bad.check(keys) {
            Err(crate::settings::SettingsError::Invalid { key, reason }) => {
                assert_eq!(key, "l.strict");
                assert!(reason.contains("per_minute is 0"), "{reason}");
            }
            other => panic!("expected the strict quota refused, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_quota_faster_than_one_call_a_millisecond_refills_faster_than_that_in_process() {
        // 600,000 a minute: one call every 100 µs. Rounded to whole milliseconds, it was one a
        // millisecond, and a refusal asked to wait up to 1 ms.
        let limiter = Limiter::new(limits_with_default(Quota { per_minute: 600_000, burst: 1 }), None);
        let mut refusal = None;
        for _ in 0..10_000 {
            if let Err(denied) = limiter.check(Class::Default, "k").await {
                refusal = Some(denied);
                break;
            }
        }
        let refusal = refusal.expect("back-to-back calls over a burst of 1 are refused");
        assert!(refusal.retry_after <= Duration::from_micros(100), "waits {:?}", refusal.retry_after);
    }
}
