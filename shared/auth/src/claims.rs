//! What an access token says, and the principal a verified token stands for.

use serde::{Deserialize, Serialize};

/// A role; what each may do is declared per method in the proto policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Manages users, keys and every task.
    Admin,
    /// Creates and reads their own tasks.
    Developer,
    /// Reads the audit log.
    Auditor,
    /// Internal service calls.
    Service,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 4] = [Role::Admin, Role::Developer, Role::Auditor, Role::Service];

    /// The name used in tokens, the database and the audit log.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Developer => "developer",
            Role::Auditor => "auditor",
            Role::Service => "service",
        }
    }

    /// The role of a name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == name)
    }

    /// The proto enum value.
    pub fn to_proto(self) -> prfix_proto::options::v1::Role {
        use prfix_proto::options::v1::Role as P;
        match self {
            Role::Admin => P::Admin,
            Role::Developer => P::Developer,
            Role::Auditor => P::Auditor,
            Role::Service => P::Service,
        }
    }

    /// The role of a proto enum value (`None` for UNSPECIFIED and unknown numbers).
    pub fn from_proto(value: i32) -> Option<Self> {
        use prfix_proto::options::v1::Role as P;
        match P::try_from(value).ok()? {
            P::Admin => Some(Role::Admin),
            P::Developer => Some(Role::Developer),
            P::Auditor => Some(Role::Auditor),
            P::Service => Some(Role::Service),
            P::Unspecified => None,
        }
    }
}

/// The subject of the gateway's own service tokens. Only the gateway mints tokens of kind
/// [`PrincipalKind::Service`] (logins mint `User`, API keys `ApiKey`), and user names cannot contain
/// `:`, so a principal with this subject and that kind is the gateway itself.
pub const GATEWAY_SUBJECT: &str = "service:gateway";

/// How a principal authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalKind {
    /// A user who logged in.
    User,
    /// An API key, exchanged at the gateway for a short-lived token.
    ApiKey,
    /// A service.
    Service,
}

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// Subject: the user name (for an API key, the name of the key's owner) or `service:<name>`.
    pub sub: String,
    /// Role names.
    pub roles: Vec<String>,
    /// Token id (for revocation).
    pub jti: String,
    /// Issued at (seconds since the epoch).
    pub iat: i64,
    /// Not before.
    pub nbf: i64,
    /// Expires at.
    pub exp: i64,
    /// How the subject authenticated.
    pub kind: PrincipalKind,
    /// The API key's id when `kind` is `api_key`: the credential that acted for the subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// The caller of a request, put into request extensions once its token is verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Subject.
    pub subject: String,
    /// Roles in force.
    pub roles: Vec<Role>,
    /// How it authenticated.
    pub kind: PrincipalKind,
    /// The token's id.
    pub token_id: String,
    /// When the token expires (seconds since the epoch).
    pub expires_at: i64,
    /// The API key's id when the principal authenticated with one (`kind` is `ApiKey`).
    pub key_id: Option<String>,
    /// When the token was issued (seconds since the epoch), for per-subject not-before checks.
    pub issued_at: i64,
}

impl Principal {
    /// Whether the principal holds `role`.
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// The credential that acted: `apikey:<id>` for an API key, else `token:<token id>`.
    pub fn credential(&self) -> String {
        match &self.key_id {
            Some(id) => format!("apikey:{id}"),
            None => format!("token:{}", self.token_id),
        }
    }

    /// Whether this is the gateway's own identity (subject [`GATEWAY_SUBJECT`] with a service token):
    /// the only appender of security actions (`auth.*`) to the audit log.
    pub fn is_gateway(&self) -> bool {
        self.subject == GATEWAY_SUBJECT && self.kind == PrincipalKind::Service && self.key_id.is_none()
    }

    /// Role names, for the audit log.
    pub fn role_names(&self) -> Vec<String> {
        self.roles.iter().map(|r| r.as_str().to_owned()).collect()
    }
}
