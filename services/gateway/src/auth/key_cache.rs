//! The tokens API keys were exchanged for, kept per presented key until shortly before they
//! expire: an API-key call then costs what a token call costs (a verification of the cached token)
//! instead of two key-table reads and an RSA signature.
//!
//! What stays true: an entry is found only by the SHA-256 of the whole presented key (secret
//! included), so a wrong secret never matches; every hit is verified again as any token is, with
//! the pushed revocations, so revoking the key (its not-before) or its owner (disabled, roles
//! changed) refuses the cached token at once, and the entry is dropped; an entry never outlives
//! the key's own expiry. The cache is bounded: when full, expired entries go, then all of them.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};

/// Most keys cached.
const CAPACITY: usize = 10_000;
/// An exchanged token is not handed out again in its last this-many seconds (verifiers downstream
/// must still accept it when the call reaches them).
const MARGIN_SECS: i64 = 60;

struct Entry {
    token: String,
    reuse_until: DateTime<Utc>,
}

/// Exchanged tokens by the hash of the presented key.
#[derive(Default)]
pub struct KeyTokens {
    entries: Mutex<HashMap<Vec<u8>, Entry>>,
}

fn id(presented: &str) -> Vec<u8> {
    super::sha256(presented.as_bytes())
}

impl KeyTokens {
    /// The token `presented` was exchanged for, if it is still to be reused (verify it before use).
    pub fn get(&self, presented: &str) -> Option<String> {
        let entries = self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        entries.get(&id(presented)).filter(|e| e.reuse_until > Utc::now()).map(|e| e.token.clone())
    }

    /// Remembers that `presented` was exchanged for `token`, which expires at `expires` (Unix
    /// seconds), for a key that expires at `key_expires`.
    pub fn put(&self, presented: &str, token: String, expires: i64, key_expires: Option<DateTime<Utc>>) {
        let Some(token_end) = DateTime::from_timestamp(expires - MARGIN_SECS, 0) else { return };
        let reuse_until = key_expires.map_or(token_end, |k| k.min(token_end));
        let now = Utc::now();
        if reuse_until <= now {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if entries.len() >= CAPACITY {
            entries.retain(|_, e| e.reuse_until > now);
            if entries.len() >= CAPACITY {
                entries.clear();
            }
        }
        entries.insert(id(presented), Entry { token, reuse_until });
    }

    /// Forgets what `presented` was exchanged for (its token was refused).
    pub fn drop_key(&self, presented: &str) {
        self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&id(presented));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_reused_for_its_exact_key_until_shortly_before_it_expires() {
        let cache = KeyTokens::default();
        let now = Utc::now().timestamp();
        cache.put("prfix_a_secret", "t1".into(), now + 300, None);
        assert_eq!(cache.get("prfix_a_secret").as_deref(), Some("t1"));
        assert_eq!(cache.get("prfix_a_secreT"), None, "another secret never matches");
        cache.put("prfix_b_secret", "t2".into(), now + MARGIN_SECS - 1, None);
        assert_eq!(cache.get("prfix_b_secret"), None, "too close to its expiry");
        let soon = DateTime::from_timestamp(now - 1, 0);
        cache.put("prfix_c_secret", "t3".into(), now + 300, soon);
        assert_eq!(cache.get("prfix_c_secret"), None, "never past the key's own expiry");
        cache.drop_key("prfix_a_secret");
        assert_eq!(cache.get("prfix_a_secret"), None);
    }
}
