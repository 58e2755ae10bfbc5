//! Per-method policy, read from the `prfix.options.v1.policy` option of each method in the
//! descriptor set, so that adding a method needs no code here.

use std::collections::HashMap;

use prfix_proto::options::v1::MethodPolicy;
use prost_reflect::DescriptorPool;

use crate::claims::{Principal, Role};
use crate::verifier::AuthError;

/// Services every caller may reach: health for probes, reflection for tools.
const OPEN_SERVICES: &[&str] =
    &["grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"];

/// Why the table could not be built.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The descriptor set does not decode.
    #[error("descriptor set does not decode: {0}")]
    Descriptors(String),
    /// The policy extension is missing from the descriptor set.
    #[error("the descriptor set has no `prfix.options.v1.policy` extension")]
    NoExtension,
    /// A policy value does not decode.
    #[error("policy of {method} does not decode: {reason}")]
    Policy {
        /// The method.
        method: String,
        /// Why.
        reason: String,
    },
}

/// What the table says about a call.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Health and reflection: no credentials needed, no limits beyond the default.
    Open,
    /// A method of ours with its policy.
    Policy(MethodPolicy),
    /// A method of ours without a policy: denied.
    NoPolicy,
    /// Not a method of the API.
    Unknown,
}

/// Policies by gRPC path (`/package.Service/Method`).
#[derive(Debug, Clone, Default)]
pub struct PolicyTable {
    by_path: HashMap<String, Option<MethodPolicy>>,
    services: std::collections::HashSet<String>,
}

impl PolicyTable {
    /// Reads every method's policy from an encoded descriptor set.
    pub fn from_descriptor_set(bytes: &[u8]) -> Result<Self, PolicyError> {
        let pool = DescriptorPool::decode(bytes).map_err(|e| PolicyError::Descriptors(e.to_string()))?;
        let extension = pool.get_extension_by_name("prfix.options.v1.policy").ok_or(PolicyError::NoExtension)?;
        let mut by_path = HashMap::new();
        let mut services = std::collections::HashSet::new();
        for service in pool.services() {
            services.insert(service.full_name().to_owned());
            for method in service.methods() {
                let path = format!("/{}/{}", service.full_name(), method.name());
                let options = method.options();
                let policy = if options.has_extension(&extension) {
                    let value = options.get_extension(&extension);
                    let message = value.as_message().ok_or_else(|| PolicyError::Policy {
                        method: path.clone(),
                        reason: "not a message".to_owned(),
                    })?;
                    Some(
                        message
                            .transcode_to::<MethodPolicy>()
                            .map_err(|e| PolicyError::Policy { method: path.clone(), reason: e.to_string() })?,
                    )
                } else {
                    None
                };
                by_path.insert(path, policy);
            }
        }
        Ok(Self { by_path, services })
    }

    /// The table of the prfix API.
    pub fn prfix() -> Result<Self, PolicyError> {
        Self::from_descriptor_set(prfix_proto::FILE_DESCRIPTOR_SET)
    }

    /// What applies to `path`.
    pub fn decide(&self, path: &str) -> Decision {
        let service = path.trim_start_matches('/').split('/').next().unwrap_or("");
        if OPEN_SERVICES.contains(&service) {
            return Decision::Open;
        }
        match self.by_path.get(path) {
            Some(Some(policy)) => Decision::Policy(policy.clone()),
            Some(None) => Decision::NoPolicy,
            // A path under one of our services that names no method (odd spellings, methods of
            // another version) is denied rather than passed along unchecked.
            None if self.services.contains(service) => Decision::NoPolicy,
            None => Decision::Unknown,
        }
    }

    /// Every method path with its policy (for documentation and tests).
    pub fn iter(&self) -> impl Iterator<Item = (&str, Option<&MethodPolicy>)> {
        self.by_path.iter().map(|(k, v)| (k.as_str(), v.as_ref()))
    }
}

/// Whether a method with `policy` is served without credentials: public methods, and methods its
/// handler authenticates by a forge's signature (webhooks).
pub fn without_token(policy: &MethodPolicy) -> bool {
    policy.public || policy.forge_signature
}

/// Whether `principal` may call a method with `policy`. Unauthenticated callers of non-public
/// methods get `Missing`; authenticated callers without a listed role get `Forbidden`.
pub fn authorize(policy: &MethodPolicy, principal: Option<&Principal>) -> Result<(), AuthError> {
    if without_token(policy) {
        return Ok(());
    }
    let principal = principal.ok_or(AuthError::Missing)?;
    let allowed = policy.roles.iter().filter_map(|r| Role::from_proto(*r));
    if allowed.into_iter().any(|role| principal.has(role)) { Ok(()) } else { Err(AuthError::Forbidden) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prfix_proto::options::v1::RateLimitClass;

    #[test]
    fn every_method_of_the_api_declares_a_policy() {
        let table = PolicyTable::prfix().expect("table builds");
        let missing: Vec<_> = table.iter().filter(|(p, policy)| p.starts_with("/prfix.") && policy.is_none()).collect();
        assert!(missing.is_empty(), "methods without policy: {missing:?}");
        assert!(table.iter().count() >= 26);
    }

    #[test]
    fn policies_are_read_from_the_options() {
        let table = PolicyTable::prfix().expect("table builds");
        let Decision::Policy(login) = table.decide("/prfix.auth.v1.AuthService/Login") else {
            panic!("login has a policy")
        };
        assert!(login.public);
        assert_eq!(login.rate_limit, RateLimitClass::Strict as i32);
        let Decision::Policy(create) = table.decide("/prfix.agent.v1.AgentService/CreateReview") else { panic!() };
        assert!(!create.public && create.audit);
        assert_eq!(create.rate_limit, RateLimitClass::Expensive as i32);
        assert_eq!(table.decide("/grpc.health.v1.Health/Check"), Decision::Open);
        assert_eq!(table.decide("/nope.Nope/X"), Decision::Unknown);
        assert_eq!(table.decide("/prfix.agent.v1.AgentService/NoSuchMethod"), Decision::NoPolicy);
        assert_eq!(table.decide("/prfix.agent.v1.AgentService//GetTask"), Decision::NoPolicy);
    }

    #[test]
    fn roles_decide_and_no_principal_is_unauthenticated() {
        let table = PolicyTable::prfix().expect("table builds");
        let Decision::Policy(create_user) = table.decide("/prfix.auth.v1.AuthService/CreateUser") else { panic!() };
        let developer = Principal {
            subject: "dev".into(),
            roles: vec![Role::Developer],
            kind: crate::PrincipalKind::User,
            token_id: "j".into(),
            expires_at: 0,
            key_id: None,
            issued_at: 0,
        };
        assert!(matches!(authorize(&create_user, Some(&developer)), Err(AuthError::Forbidden)));
        assert!(matches!(authorize(&create_user, None), Err(AuthError::Missing)));
        let admin = Principal { roles: vec![Role::Admin], ..developer };
        assert!(authorize(&create_user, Some(&admin)).is_ok());
    }
}
