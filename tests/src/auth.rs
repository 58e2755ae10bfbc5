//! Credentials for tests: one signing key per test process (the gateway signs with it, the
//! services trust its JWKS file), tokens minted directly for any subject and roles, and an
//! interceptor that puts a bearer token on every call.

use std::path::PathBuf;
use std::sync::OnceLock;

use prfix_auth::{Claims, Jwks, PrincipalKind, Role, SigningKey};
use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;

/// The password the harness gives the bootstrap `admin`.
pub const ADMIN_PASSWORD: &str = "admin-password-for-tests";
/// The issuer and audience the harness configures.
pub const ISSUER: &str = "prfix";
/// The audience the harness configures.
pub const AUDIENCE: &str = "prfix-api";

/// The test process's signing key and where its files are.
pub struct TestKeys {
    /// The key.
    pub key: SigningKey,
    /// Its PEM file (the gateway's `signing_key_files`).
    pub pem_file: PathBuf,
    /// The JWKS file (the services' `auth_jwks_file`).
    pub jwks_file: PathBuf,
}

/// The key, generated on first use.
pub fn keys() -> &'static TestKeys {
    static KEYS: OnceLock<TestKeys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let (key, pem) = SigningKey::generate().expect("RSA key generation works");
        let dir = std::env::temp_dir().join(format!("prfix-test-keys-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("temp dir is writable");
        let pem_file = dir.join("signing-key.pem");
        std::fs::write(&pem_file, pem).expect("temp dir is writable");
        let jwks_file = dir.join("jwks.json");
        let jwks = Jwks { keys: vec![key.jwk().clone()] };
        std::fs::write(&jwks_file, serde_json::to_vec(&jwks).expect("serialises")).expect("temp dir is writable");
        TestKeys { key, pem_file, jwks_file }
    })
}

/// Claims valid now for `subject` with `roles`.
pub fn claims(subject: &str, roles: &[Role]) -> Claims {
    let now = chrono::Utc::now().timestamp();
    Claims {
        iss: ISSUER.to_owned(),
        aud: AUDIENCE.to_owned(),
        sub: subject.to_owned(),
        roles: roles.iter().map(|r| r.as_str().to_owned()).collect(),
        jti: uuid::Uuid::new_v4().to_string(),
        iat: now,
        nbf: now,
        exp: now + 600,
        kind: PrincipalKind::User,
        key: None,
    }
}

/// A valid access token for `subject` with `roles`, signed with the test key.
pub fn token(subject: &str, roles: &[Role]) -> String {
    keys().key.sign(&claims(subject, roles)).expect("signing works")
}

/// A token holding every role, for tests about something other than authorization.
pub fn operator_token() -> String {
    token("test-operator", &Role::ALL)
}

/// Puts `authorization: Bearer <token>` on every call.
#[derive(Clone)]
pub struct Bearer(pub Option<MetadataValue<tonic::metadata::Ascii>>);

impl Bearer {
    /// For `token` (no header when the token is not a valid header value).
    pub fn new(token: &str) -> Self {
        Self(format!("Bearer {token}").parse().ok())
    }
}

impl Interceptor for Bearer {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request.metadata_mut().insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// The test process's checkpoint signing key for the audit service: its PEM file and verifier key.
pub struct AuditKey {
    /// PKCS#8 PEM file (`audit.signing_key_file`).
    pub pem_file: PathBuf,
    /// The verifier key string (`<name>+<hash>+<key>`).
    pub verifier_key: String,
}

/// The audit key, generated on first use.
pub fn audit_key() -> &'static AuditKey {
    static KEY: OnceLock<AuditKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let (signer, der) =
            prfix_audit::checkpoint::Signer::generate("prfix-audit").expect("Ed25519 key generation works");
        let pem_file = keys().pem_file.with_file_name("audit-signing-key.pem");
        std::fs::write(&pem_file, prfix_audit::checkpoint::pkcs8_to_pem(&der)).expect("temp dir is writable");
        AuditKey { pem_file, verifier_key: signer.verifier_key() }
    })
}
