//! The `prfix.options.v1.policy` of a method, read from its options like the gateway's policy
//! table does, for the security and roles of each operation.

use prost_reflect::{DescriptorPool, DynamicMessage, MethodDescriptor, ReflectMessage, Value};

/// The option that carries a method's policy.
const POLICY_EXTENSION: &str = "prfix.options.v1.policy";

/// What the document says about who may call a method.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Policy {
    /// Whether the method needs a policy at all; without one the gateway denies every call.
    pub(crate) declared: bool,
    /// Callable without credentials.
    pub(crate) public: bool,
    /// Authenticated by a forge's signature over the raw body (webhooks), not by a token.
    pub(crate) forge_signature: bool,
    /// The roles that may call it, as lowercase names (`admin`, `developer`).
    pub(crate) roles: Vec<String>,
}

impl Policy {
    /// The sentence for the operation's description.
    pub(crate) fn describe(&self) -> String {
        if !self.declared {
            "Roles: none (the method has no policy, so every call is denied).".to_owned()
        } else if self.forge_signature {
            "Public: no token; authenticated by the forge's signature over the raw body (webhooks).".to_owned()
        } else if self.public {
            "Public: no credentials needed.".to_owned()
        } else {
            format!("Roles: {}", self.roles.join(", "))
        }
    }
}

/// The policy of `method` (a default, undeclared one when it has none).
pub(crate) fn read(pool: &DescriptorPool, method: &MethodDescriptor) -> Policy {
    let Some(extension) = pool.get_extension_by_name(POLICY_EXTENSION) else { return Policy::default() };
    let options = method.options();
    if !options.has_extension(&extension) {
        return Policy::default();
    }
    let value = options.get_extension(&extension);
    let Some(policy) = value.as_message() else { return Policy::default() };
    Policy {
        declared: true,
        public: policy.get_field_by_name("public").and_then(|v| v.as_bool()).unwrap_or(false),
        forge_signature: policy.get_field_by_name("forge_signature").and_then(|v| v.as_bool()).unwrap_or(false),
        roles: roles(policy),
    }
}

/// The role names of a policy: `ROLE_ADMIN` becomes `admin`.
fn roles(policy: &DynamicMessage) -> Vec<String> {
    let Some(field) = policy.descriptor().get_field_by_name("roles") else { return Vec::new() };
    let Some(enumeration) = field.kind().as_enum().cloned() else { return Vec::new() };
    let Value::List(values) = policy.get_field(&field).into_owned() else { return Vec::new() };
    values
        .iter()
        .filter_map(Value::as_enum_number)
        .map(|number| match enumeration.get_value(number) {
            Some(value) => value.name().strip_prefix("ROLE_").unwrap_or(value.name()).to_ascii_lowercase(),
            None => number.to_string(),
        })
        .collect()
}
