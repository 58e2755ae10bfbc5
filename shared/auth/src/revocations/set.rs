//! The revocations a verifier holds in memory, and the rule that refuses a token by them.
//!
//! Times are whole seconds since the epoch, the unit of a token's `iat`. A not-before time `nb`
//! refuses every token with `iat < nb`. Writers set `nb` to the second *after* the change (see
//! [`not_before_after`]), so a token issued earlier in the same second as the change is refused too;
//! and the issuer never stamps a new token with an `iat` before its subject's or key's `nb` (see
//! [`RevocationSet::earliest_iat`]), so a login right after a disable and re-enable still works.

use std::collections::HashMap;

/// What a not-before time applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// A token's `sub` (a user, or the owner of an API key).
    Subject,
    /// A token's `key` claim (the API key it was exchanged for).
    ApiKey,
}

impl Scope {
    /// The name stored in `gateway.token_not_before.scope`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Subject => "subject",
            Scope::ApiKey => "api_key",
        }
    }

    /// The scope of a stored name.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "subject" => Some(Scope::Subject),
            "api_key" => Some(Scope::ApiKey),
            _ => None,
        }
    }
}

/// One revocation, as stored and as applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// One token (logout), until its own expiry.
    Token {
        /// The token's `jti`.
        jti: String,
        /// The token's `exp` (seconds since the epoch).
        expires_at: i64,
    },
    /// Every token of a subject or key issued before `not_before`.
    NotBefore {
        /// What `id` names.
        scope: Scope,
        /// The subject or key id.
        id: String,
        /// Seconds since the epoch; tokens with `iat` below it are refused.
        not_before: i64,
    },
}

/// The not-before time for a change made at `now_secs`: the next second boundary, so that tokens
/// issued in the same second as the change, before it, are refused as well.
pub fn not_before_after(now_secs: i64) -> i64 {
    now_secs.saturating_add(1)
}

/// Why a token was refused by its revocations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Its `jti` was revoked (logout).
    TokenRevoked,
    /// It was issued before its subject's not-before (user disabled, role removed, password changed).
    SubjectNotBefore,
    /// It was issued before its API key's not-before (key revoked).
    KeyNotBefore,
}

impl Refusal {
    /// A short reason for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::TokenRevoked => "token revoked",
            Refusal::SubjectNotBefore => "token issued before its subject's credentials changed",
            Refusal::KeyNotBefore => "token issued before its API key was revoked",
        }
    }
}

/// Revoked token ids and not-before times, with the store's version they are current to.
#[derive(Debug, Clone, Default)]
pub struct RevocationSet {
    version: i64,
    tokens: HashMap<String, i64>,
    subjects: HashMap<String, i64>,
    keys: HashMap<String, i64>,
}

impl RevocationSet {
    /// The store version this set includes every change up to.
    pub fn version(&self) -> i64 {
        self.version
    }

    /// Records that every change up to `version` is applied.
    pub fn set_version(&mut self, version: i64) {
        self.version = version;
    }

    /// Applies a change; applying one twice, or an older not-before after a newer one, changes
    /// nothing (not-before times only move forward).
    pub fn apply(&mut self, change: Change) {
        match change {
            Change::Token { jti, expires_at } => {
                self.tokens.insert(jti, expires_at);
            }
            Change::NotBefore { scope, id, not_before } => {
                let map = match scope {
                    Scope::Subject => &mut self.subjects,
                    Scope::ApiKey => &mut self.keys,
                };
                let entry = map.entry(id).or_insert(not_before);
                *entry = (*entry).max(not_before);
            }
        }
    }

    /// Forgets revoked tokens that expired before `horizon` (no verifier accepts them anyway).
    pub fn prune(&mut self, horizon: i64) {
        self.tokens.retain(|_, expires_at| *expires_at >= horizon);
    }

    /// Why a token with these claims must be refused, if it must.
    pub fn refusal(&self, jti: &str, subject: &str, key: Option<&str>, issued_at: i64) -> Option<Refusal> {
        if self.tokens.contains_key(jti) {
            return Some(Refusal::TokenRevoked);
        }
        if self.subjects.get(subject).is_some_and(|nb| issued_at < *nb) {
            return Some(Refusal::SubjectNotBefore);
        }
        if key.and_then(|k| self.keys.get(k)).is_some_and(|nb| issued_at < *nb) {
            return Some(Refusal::KeyNotBefore);
        }
        None
    }

    /// The earliest `iat` a new token for `subject` (and `key`) may carry so that it is not refused
    /// at birth: `now_secs`, or a not-before set within the current second.
    pub fn earliest_iat(&self, subject: &str, key: Option<&str>, now_secs: i64) -> i64 {
        let subject_nb = self.subjects.get(subject).copied().unwrap_or(i64::MIN);
        let key_nb = key.and_then(|k| self.keys.get(k)).copied().unwrap_or(i64::MIN);
        now_secs.max(subject_nb).max(key_nb)
    }

    /// How many entries the set holds (revoked tokens, subjects, keys).
    pub fn len(&self) -> usize {
        self.tokens.len() + self.subjects.len() + self.keys.len()
    }

    /// Whether the set holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disabled_at(set: &mut RevocationSet, subject: &str, now: i64) {
        set.apply(Change::NotBefore {
            scope: Scope::Subject,
            id: subject.to_owned(),
            not_before: not_before_after(now),
        });
    }

    #[test]
    fn a_token_issued_in_the_same_second_before_a_disable_is_refused() {
        let mut set = RevocationSet::default();
        // Issued at 100.2 (iat 100), the user disabled at 100.7.
        disabled_at(&mut set, "ann", 100);
        assert_eq!(set.refusal("j1", "ann", None, 100), Some(Refusal::SubjectNotBefore));
        assert_eq!(set.refusal("j0", "ann", None, 42), Some(Refusal::SubjectNotBefore));
    }

    #[test]
    fn a_new_login_in_the_same_second_after_re_enabling_is_accepted() {
        let mut set = RevocationSet::default();
        disabled_at(&mut set, "ann", 100);
        // Re-enabled and logged in again at 100.9: the issuer stamps iat 101, not 100.
        let iat = set.earliest_iat("ann", None, 100);
        assert_eq!(iat, 101);
        assert_eq!(set.refusal("j2", "ann", None, iat), None);
        // A later login is stamped with its own time.
        assert_eq!(set.earliest_iat("ann", None, 250), 250);
    }

    #[test]
    fn not_before_only_moves_forward_and_other_subjects_are_untouched() {
        let mut set = RevocationSet::default();
        disabled_at(&mut set, "ann", 200);
        disabled_at(&mut set, "ann", 100);
        assert_eq!(set.refusal("j", "ann", None, 150), Some(Refusal::SubjectNotBefore));
        assert_eq!(set.refusal("j", "bob", None, 150), None);
        assert_eq!(set.refusal("j", "ann", None, 201), None);
    }

    #[test]
    fn a_key_not_before_refuses_only_that_keys_tokens() {
        let mut set = RevocationSet::default();
        set.apply(Change::NotBefore { scope: Scope::ApiKey, id: "k1".to_owned(), not_before: 101 });
        assert_eq!(set.refusal("j", "ann", Some("k1"), 100), Some(Refusal::KeyNotBefore));
        assert_eq!(set.refusal("j", "ann", Some("k2"), 100), None);
        assert_eq!(set.refusal("j", "ann", None, 100), None);
        assert_eq!(set.earliest_iat("ann", Some("k1"), 100), 101);
    }

    #[test]
    fn revoked_token_ids_are_refused_until_pruned_after_expiry() {
        let mut set = RevocationSet::default();
        set.apply(Change::Token { jti: "j1".to_owned(), expires_at: 500 });
        assert_eq!(set.refusal("j1", "ann", None, 400), Some(Refusal::TokenRevoked));
        assert_eq!(set.refusal("j2", "ann", None, 400), None);
        set.prune(500);
        assert_eq!(set.refusal("j1", "ann", None, 400), Some(Refusal::TokenRevoked));
        set.prune(501);
        assert!(set.is_empty());
    }

    #[test]
    fn scopes_round_trip_through_their_stored_names() {
        for scope in [Scope::Subject, Scope::ApiKey] {
            assert_eq!(Scope::parse(scope.as_str()), Some(scope));
        }
        assert_eq!(Scope::parse("user"), None);
    }
}
