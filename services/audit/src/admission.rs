//! Who may append what, and when: the checks an event passes after it is well-formed and before it
//! is stored. The appender is the verified caller (never a field of the request), its event time
//! must be within the allowed clock skew of the receive time, security actions (`auth.*`) come only
//! from the gateway's own identity, and `audit.*` actions only from this service. A refused
//! security action is itself recorded, as an `audit.append_refused` event by this service.

use std::time::Duration;

use chrono::{DateTime, Utc};
use prfix_auth::Principal;
use prfix_runtime::error::{ErrorCode, ServiceError};
use uuid::Uuid;

use crate::canonical::time_text;
use crate::store::{Appender, NewEvent, Outcome};

/// Actions only the gateway's own identity may append (logins, refreshes, user and key changes).
pub const GATEWAY_ONLY_PREFIX: &str = "auth.";
/// Actions only this service appends (its records of refusals).
pub const SERVICE_ONLY_PREFIX: &str = "audit.";
/// The action of the record of a refused append.
pub const REFUSED_ACTION: &str = "audit.append_refused";
/// The appender subject of the events this service appends itself.
pub const SELF_SUBJECT: &str = "service:audit";
/// The appender credential of the events this service appends itself (it holds no token).
pub const SELF_CREDENTIAL: &str = "self";

/// Why an event is not admitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The event's time is too far from the receive time.
    #[error(
        "events[{index}].time {time} is {distance} s from the receive time {received}; the audit service accepts at most {max} s of clock skew"
    )]
    Skew {
        /// The event's place in its batch.
        index: usize,
        /// The event's time, as encoded.
        time: String,
        /// The receive time, as encoded.
        received: String,
        /// Whole seconds between them.
        distance: i64,
        /// The allowed skew in seconds.
        max: u64,
    },
    /// The appender may not append this action.
    #[error("events[{index}].action `{action}` may be appended only by {allowed}; the appender is `{subject}`")]
    Reserved {
        /// The event's place in its batch.
        index: usize,
        /// The refused action.
        action: String,
        /// Who may append it.
        allowed: &'static str,
        /// Who tried.
        subject: String,
    },
}

impl ServiceError for Refusal {
    fn code(&self) -> ErrorCode {
        match self {
            Refusal::Skew { .. } => ErrorCode::InvalidArgument,
            Refusal::Reserved { .. } => ErrorCode::PermissionDenied,
        }
    }
}

impl Refusal {
    /// Whether the refusal is itself recorded in the log (attempts to speak for another service are;
    /// clock trouble is the client's to fix and is not).
    pub fn is_audited(&self) -> bool {
        matches!(self, Refusal::Reserved { .. })
    }
}

/// The admission rules in force.
#[derive(Debug, Clone, Copy)]
pub struct Admission {
    /// Largest allowed distance between an event's time and its receive time.
    pub max_clock_skew: Duration,
}

impl Admission {
    /// Checks the event at `index` of a call by `principal` received at `received_at`.
    pub fn check(
        &self,
        principal: &Principal,
        event: &NewEvent,
        index: usize,
        received_at: DateTime<Utc>,
    ) -> Result<(), Refusal> {
        let reserved = |allowed: &'static str| Refusal::Reserved {
            index,
            action: event.action.clone(),
            allowed,
            subject: principal.subject.clone(),
        };
        if event.action.starts_with(GATEWAY_ONLY_PREFIX) && !principal.is_gateway() {
            return Err(reserved("the gateway's own identity (`service:gateway`, a service token)"));
        }
        if event.action.starts_with(SERVICE_ONLY_PREFIX) {
            return Err(reserved("the audit service itself"));
        }
        let distance = (event.occurred_at - received_at).abs();
        let max = self.max_clock_skew.as_secs();
        if distance > chrono::TimeDelta::seconds(i64::try_from(max).unwrap_or(i64::MAX)) {
            return Err(Refusal::Skew {
                index,
                time: time_text(event.occurred_at),
                received: time_text(received_at),
                distance: distance.num_seconds(),
                max,
            });
        }
        Ok(())
    }
}

/// The record of a refused append: the appender as actor, the refused action and event id and the
/// reason in its metadata; appended by this service.
pub fn refusal_record(
    principal: &Principal,
    refused: &NewEvent,
    refusal: &Refusal,
    received_at: DateTime<Utc>,
) -> (NewEvent, Appender) {
    let event = NewEvent {
        event_id: Uuid::new_v4(),
        occurred_at: received_at,
        actor_subject: principal.subject.clone(),
        actor_roles: principal.role_names(),
        actor_ip: String::new(),
        action: REFUSED_ACTION.to_owned(),
        resource: format!("events/{}", refused.event_id),
        outcome: Outcome::Denied,
        request_id: refused.request_id.clone(),
        trace_id: refused.trace_id.clone(),
        metadata: serde_json::json!({
            "refused_action": refused.action,
            "refused_actor": refused.actor_subject,
            "refused_event_id": refused.event_id.to_string(),
            "credential": principal.credential(),
            "reason": refusal.to_string(),
        }),
    };
    let appender = Appender { subject: SELF_SUBJECT.to_owned(), credential: SELF_CREDENTIAL.to_owned(), received_at };
    (event, appender)
}

#[cfg(test)]
mod tests {
    use prfix_auth::{PrincipalKind, Role};

    use super::*;

    fn principal(subject: &str, kind: PrincipalKind, key: Option<&str>) -> Principal {
        Principal {
            subject: subject.into(),
            roles: vec![Role::Service],
            kind,
            token_id: "t-1".into(),
            expires_at: 0,
            key_id: key.map(str::to_owned),
            issued_at: 0,
        }
    }

    fn event(action: &str, at: DateTime<Utc>) -> NewEvent {
        NewEvent {
            event_id: Uuid::nil(),
            occurred_at: at,
            actor_subject: "alice".into(),
            actor_roles: vec![],
            actor_ip: String::new(),
            action: action.into(),
            resource: String::new(),
            outcome: Outcome::Success,
            request_id: String::new(),
            trace_id: String::new(),
            metadata: serde_json::json!({}),
        }
    }

    const RULES: Admission = Admission { max_clock_skew: Duration::from_secs(300) };

    #[test]
    fn only_the_gateways_service_token_appends_auth_actions() {
        let now = Utc::now();
        let gateway = principal(prfix_auth::GATEWAY_SUBJECT, PrincipalKind::Service, None);
        assert_eq!(RULES.check(&gateway, &event("auth.login", now), 0, now), Ok(()));
        for other in [
            principal("ci-bot", PrincipalKind::ApiKey, Some("0a1b")),
            principal("ci-bot", PrincipalKind::User, None),
            // The name alone is not the identity: a user token or a key with that subject is refused.
            principal(prfix_auth::GATEWAY_SUBJECT, PrincipalKind::User, None),
            principal(prfix_auth::GATEWAY_SUBJECT, PrincipalKind::ApiKey, Some("0a1b")),
        ] {
            let refusal = RULES.check(&other, &event("auth.login", now), 2, now).expect_err("refused");
            assert_eq!(refusal.code(), ErrorCode::PermissionDenied);
            assert!(refusal.is_audited());
            assert!(refusal.to_string().contains("events[2].action `auth.login`"), "{refusal}");
        }
        let other = principal("ci-bot", PrincipalKind::ApiKey, Some("0a1b"));
        assert_eq!(RULES.check(&other, &event("agent.task.create.review", now), 0, now), Ok(()));
        assert!(RULES.check(&gateway, &event(REFUSED_ACTION, now), 0, now).is_err(), "audit.* is the service's own");
    }

    #[test]
    fn an_event_time_beyond_the_skew_is_refused_naming_both_times() {
        let now = DateTime::from_timestamp(1_796_400_000, 0).expect("valid");
        let caller = principal("ci-bot", PrincipalKind::ApiKey, Some("0a1b"));
        let at = |secs: i64| now + chrono::TimeDelta::seconds(secs);
        assert_eq!(RULES.check(&caller, &event("x", at(-300)), 0, now), Ok(()));
        assert_eq!(RULES.check(&caller, &event("x", at(300)), 0, now), Ok(()));
        let old = DateTime::from_timestamp(946_684_800, 0).expect("2000-01-01");
        let refusal = RULES.check(&caller, &event("x", old), 1, now).expect_err("backdated");
        assert_eq!(refusal.code(), ErrorCode::InvalidArgument);
        assert!(!refusal.is_audited());
        let text = refusal.to_string();
        assert!(text.contains("2000-01-01T00:00:00.000000Z") && text.contains(&time_text(now)), "{text}");
        assert!(RULES.check(&caller, &event("x", at(301)), 0, now).is_err(), "the future too");
    }
}
