//! Authentication and authorization shared by every prfix service: access-token claims and roles,
//! RS256 signing keys and their JWKS, one strict verifier, the per-method policy read from the
//! proto descriptors, and a tower layer that enforces both in front of a gRPC server.

#![forbid(unsafe_code)]

pub mod address_limit;
pub mod claims;
pub mod denials;
pub mod keys;
pub mod layer;
pub mod policy;
pub mod revocations;
pub mod verifier;

pub use claims::{Claims, GATEWAY_SUBJECT, Principal, PrincipalKind, Role};
pub use keys::{Jwk, Jwks, KeyError, SigningKey};
pub use layer::AuthLayer;
pub use policy::{Decision, PolicyTable};
pub use verifier::{AuthError, KeySource, Verifier, VerifierConfig};

/// The `typ` header of our access tokens (RFC 9068).
pub const ACCESS_TOKEN_TYPE: &str = "at+jwt";

use std::sync::Arc;
use std::time::Duration;

use prfix_runtime::settings::CommonSettings;

/// Why the verifier could not be set up from settings.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The JWKS file could not be read or parsed.
    #[error("auth_jwks_file {path}: {reason}")]
    JwksFile {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// The HTTP client for the JWKS could not be built.
    #[error("JWKS client: {0}")]
    Client(#[from] reqwest::Error),
    /// The policy table could not be read from the descriptors.
    #[error(transparent)]
    Policy(#[from] policy::PolicyError),
}

/// The verifier a service (agent, audit) builds from the shared settings: keys from
/// `auth_jwks_file` when set, else from `auth_jwks_url`; revocations from `revocations` (a
/// [`revocations::RevocationFeed`] in every service).
pub fn service_verifier(
    common: &CommonSettings,
    revocations: Option<Arc<dyn verifier::Revocations>>,
) -> Result<Verifier, SetupError> {
    let keys = match &common.auth_jwks_file {
        Some(path) => {
            let err = |reason: String| SetupError::JwksFile { path: path.display().to_string(), reason };
            let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
            KeySource::Static(serde_json::from_str(&text).map_err(|e| err(e.to_string()))?)
        }
        None => KeySource::Url {
            url: common.auth_jwks_url.clone(),
            cooldown: Duration::from_millis(common.auth_jwks_cooldown_ms),
        },
    };
    let config = VerifierConfig {
        issuer: common.auth_issuer.clone(),
        audience: common.auth_audience.clone(),
        leeway: Duration::from_secs(30),
        keys,
    };
    Ok(Verifier::new(config, revocations)?)
}

/// The auth layer a service puts in front of its gRPC server.
pub fn service_layer(
    common: &CommonSettings,
    revocations: Option<Arc<dyn verifier::Revocations>>,
) -> Result<AuthLayer, SetupError> {
    Ok(AuthLayer::new(Arc::new(service_verifier(common, revocations)?), Arc::new(PolicyTable::prfix()?)))
}
