//! `prfix.auth.v1.AuthService`, served by the gateway: passwords, tokens, users and API keys.

pub mod api_keys;
pub mod key_cache;
pub mod login_limits;
pub mod password_change;
pub mod passwords;
pub mod revoke;
pub mod store;
pub mod tokens;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use prfix_auth::{Principal, PrincipalKind, Role};
use prfix_proto::audit::v1::AuditResult;
use prfix_proto::auth::v1 as pb;
use prfix_proto::auth::v1::auth_service_server::AuthService;
use prfix_runtime::error::to_status;
use prfix_runtime::time::to_timestamp;
use rand::RngCore;
use secrecy::SecretString;
use tonic::{Request, Response, Status};

use crate::ratelimit::Limiter;
use crate::security_audit::{ClientInfo, SecurityAudit, SecurityEvent};
use passwords::{PasswordError, Passwords};
use store::{Spend, Store, UserRow};
use tokens::Issuer;

/// Shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 12;

/// Everything AuthService needs.
#[derive(Clone)]
pub struct AuthApi {
    /// Users, tokens, keys.
    pub store: Store,
    /// Password hashing.
    pub passwords: Passwords,
    /// Token signing.
    pub issuer: Arc<Issuer>,
    /// The revocations every verifier here consults; changes made here are applied to it at once.
    pub revocations: Arc<prfix_auth::revocations::RevocationFeed>,
    /// Security events.
    pub audit: SecurityAudit,
    /// Rate limits.
    pub limiter: Arc<Limiter>,
    /// Login limits by (user, address) and by account (`login_limits`).
    pub login_limits: Arc<login_limits::LoginLimits>,
    /// Refresh-token lifetime.
    pub refresh_ttl: Duration,
}

fn password_status(e: PasswordError) -> Status {
    match e {
        PasswordError::Busy => Status::resource_exhausted(e.to_string()),
        other => {
            tracing::error!(error = %other, "password hashing failed");
            Status::internal("internal error; the service log has the details")
        }
    }
}

fn client_of<T>(request: &Request<T>) -> ClientInfo {
    request.extensions().get::<ClientInfo>().cloned().unwrap_or_default()
}

fn principal_of<T>(request: &Request<T>) -> Result<Principal, Status> {
    request
        .extensions()
        .get::<Principal>()
        .cloned()
        .ok_or_else(|| Status::unauthenticated("invalid or missing credentials"))
}

/// Role names of proto roles; refuses unknown and unspecified values.
pub fn role_names(roles: &[i32]) -> Result<Vec<String>, Status> {
    let mut names = Vec::new();
    for value in roles {
        let role = Role::from_proto(*value)
            .ok_or_else(|| Status::invalid_argument(format!("roles: {value} is not a role")))?;
        if !names.iter().any(|n: &String| n == role.as_str()) {
            names.push(role.as_str().to_owned());
        }
    }
    Ok(names)
}

fn roles_of(names: &[String]) -> Vec<Role> {
    names.iter().filter_map(|n| Role::parse(n)).collect()
}

fn proto_roles(names: &[String]) -> Vec<i32> {
    roles_of(names).into_iter().map(|r| r.to_proto() as i32).collect()
}

fn user_message(user: &UserRow) -> pb::User {
    pb::User {
        username: user.username.clone(),
        roles: proto_roles(&user.roles),
        disabled: user.disabled,
        create_time: Some(to_timestamp(user.created_at)),
        update_time: Some(to_timestamp(user.updated_at)),
        last_login_time: user.last_login_at.map(to_timestamp),
    }
}

fn valid_username(name: &str) -> bool {
    (3..=64).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'))
}

fn check_password(password: &str) -> Result<(), Status> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(Status::invalid_argument(format!("password must have at least {MIN_PASSWORD_CHARS} characters")));
    }
    if password.len() > 1024 {
        return Err(Status::invalid_argument("password must have at most 1024 bytes"));
    }
    Ok(())
}

/// A random token and its SHA-256, for storage.
fn random_secret() -> (String, Vec<u8>) {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = URL_SAFE_NO_PAD.encode(bytes);
    let hash = sha256(token.as_bytes());
    (token, hash)
}

/// A new random password (24 URL-safe characters), for a bootstrap admin or a reset.
pub fn generated_password() -> String {
    let mut bytes = [0u8; 18];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data).as_ref().to_vec()
}

impl AuthApi {
    async fn event(&self, client: &ClientInfo, event: SecurityEvent) {
        self.audit.record(event, client).await;
    }

    fn mint_access(&self, user: &UserRow) -> Result<(String, i64), Status> {
        let roles = roles_of(&user.roles);
        let (access, claims) = self.issuer.mint(&user.username, &roles, PrincipalKind::User).map_err(|e| {
            tracing::error!(error = %e, "cannot sign an access token");
            Status::internal("internal error; the service log has the details")
        })?;
        Ok((access, claims.exp))
    }

    fn pair(access: String, access_exp: i64, refresh: String, refresh_expires: chrono::DateTime<Utc>) -> pb::TokenPair {
        pb::TokenPair {
            access_token: access,
            token_type: "Bearer".to_owned(),
            access_token_expire_time: Some(prost_types::Timestamp { seconds: access_exp, nanos: 0 }),
            refresh_token: refresh,
            refresh_token_expire_time: Some(to_timestamp(refresh_expires)),
        }
    }

    /// Tokens for a fresh login: a new refresh family whose absolute expiry starts now.
    async fn issue_pair(&self, user: &UserRow) -> Result<pb::TokenPair, Status> {
        let (access, access_exp) = self.mint_access(user)?;
        let (refresh, hash) = random_secret();
        let refresh_expires =
            Utc::now() + chrono::Duration::from_std(self.refresh_ttl).unwrap_or(chrono::Duration::days(7));
        self.store
            .insert_refresh(&hash, uuid::Uuid::new_v4(), &user.username, refresh_expires)
            .await
            .map_err(to_status)?;
        Ok(Self::pair(access, access_exp, refresh, refresh_expires))
    }

    /// Checks an API key presented as a bearer credential and returns its principal.
    pub async fn authenticate_api_key(&self, presented: &str) -> Result<api_keys::KeyHolder, prfix_auth::AuthError> {
        api_keys::authenticate(&self.store, presented).await
    }
}

#[tonic::async_trait]
impl AuthService for AuthApi {
    async fn login(&self, request: Request<pb::LoginRequest>) -> Result<Response<pb::LoginResponse>, Status> {
        let client = client_of(&request);
        let pb::LoginRequest { username, password } = request.into_inner();
        // The edge limited the address; here (user, address) and the account's failures
        // (`login_limits`). Names that cannot exist take no bucket.
        if !valid_username(&username) {
            let secret = SecretString::from(password);
            let _ = self.passwords.verify(&secret, None).await.map_err(password_status)?;
            return Err(Status::unauthenticated("invalid user name or password"));
        }
        if let Err(refusal) = self.login_limits.admit(&username, &client.ip).await {
            self.event(
                &client,
                SecurityEvent::new(
                    "auth.login",
                    &username,
                    vec![],
                    format!("users/{username}"),
                    AuditResult::Denied,
                    refusal.reason(),
                ),
            )
            .await;
            return Err(refusal.denied().into_status());
        }
        let user = self.store.user(&username).await.map_err(to_status)?;
        let secret = SecretString::from(password);
        let matched = self
            .passwords
            .verify(&secret, user.as_ref().map(|u| u.password_hash.as_str()))
            .await
            .map_err(password_status)?;
        let user = match user {
            Some(user) if matched && !user.disabled => user,
            _ => {
                // Password guessing shows here; which of name, password or disabled account failed
                // stays out of the labels as it stays out of the answer.
                prfix_runtime::metrics::METRICS.auth_failures.with_label_values(&["LoginFailed"]).inc();
                if self.login_limits.failed(&username).await {
                    tracing::warn!(user = %username, "failed logins overflowed; the account is throttled");
                }
                self.event(
                    &client,
                    SecurityEvent::new(
                        "auth.login",
                        &username,
                        vec![],
                        format!("users/{username}"),
                        AuditResult::Failure,
                        "invalid user name or password",
                    ),
                )
                .await;
                return Err(Status::unauthenticated("invalid user name or password"));
            }
        };
        let tokens = self.issue_pair(&user).await?;
        if let Err(error) = self.store.touch_login(&user.username).await {
            tracing::warn!(%error, "cannot record the login time");
        }
        self.event(
            &client,
            SecurityEvent::new(
                "auth.login",
                &user.username,
                user.roles.clone(),
                format!("users/{}", user.username),
                AuditResult::Success,
                "",
            ),
        )
        .await;
        Ok(Response::new(pb::LoginResponse { tokens: Some(tokens), user: Some(user_message(&user)) }))
    }

    async fn refresh(&self, request: Request<pb::RefreshRequest>) -> Result<Response<pb::RefreshResponse>, Status> {
        let client = client_of(&request);
        let pb::RefreshRequest { refresh_token } = request.into_inner();
        let hash = sha256(refresh_token.as_bytes());
        let refused = || Status::unauthenticated("invalid or expired refresh token");
        let (next, next_hash) = random_secret();
        match self.store.rotate_refresh(&hash, &next_hash).await.map_err(to_status)? {
            Spend::Ok { user, expires_at } => {
                let (access, access_exp) = self.mint_access(&user)?;
                let username = user.username.clone();
                self.event(
                    &client,
                    SecurityEvent::new(
                        "auth.refresh",
                        &username,
                        user.roles.clone(),
                        format!("users/{username}"),
                        AuditResult::Success,
                        "",
                    ),
                )
                .await;
                Ok(Response::new(pb::RefreshResponse {
                    tokens: Some(Self::pair(access, access_exp, next, expires_at)),
                }))
            }
            Spend::Disabled { username } => {
                self.event(
                    &client,
                    SecurityEvent::new(
                        "auth.refresh",
                        &username,
                        vec![],
                        format!("users/{username}"),
                        AuditResult::Denied,
                        "user disabled",
                    ),
                )
                .await;
                Err(refused())
            }
            Spend::Reused { family, username } => {
                let reason = format!("reuse of a spent refresh token; family {family} revoked");
                self.event(
                    &client,
                    SecurityEvent::new(
                        "auth.refresh",
                        &username,
                        vec![],
                        format!("users/{username}"),
                        AuditResult::Denied,
                        &reason,
                    ),
                )
                .await;
                Err(refused())
            }
            Spend::Expired | Spend::Unknown => {
                self.event(
                    &client,
                    SecurityEvent::new(
                        "auth.refresh",
                        "anonymous",
                        vec![],
                        String::new(),
                        AuditResult::Failure,
                        "unknown or expired refresh token",
                    ),
                )
                .await;
                Err(refused())
            }
        }
    }

    async fn logout(&self, request: Request<pb::LogoutRequest>) -> Result<Response<pb::LogoutResponse>, Status> {
        let client = client_of(&request);
        let principal = principal_of(&request)?;
        let pb::LogoutRequest { refresh_token } = request.into_inner();
        // Recorded in Postgres before the answer: a logout that is not recorded is not a logout.
        let change = self.store.revoke_token(&principal.token_id, principal.expires_at).await.map_err(to_status)?;
        self.revocations.apply_local(change);
        if !refresh_token.is_empty() {
            self.store.revoke_family_of(&sha256(refresh_token.as_bytes())).await.map_err(to_status)?;
        }
        self.event(
            &client,
            SecurityEvent::new(
                "auth.logout",
                &principal.subject,
                principal.role_names(),
                format!("users/{}", principal.subject),
                AuditResult::Success,
                "",
            ),
        )
        .await;
        Ok(Response::new(pb::LogoutResponse {}))
    }

    async fn who_am_i(&self, request: Request<pb::WhoAmIRequest>) -> Result<Response<pb::WhoAmIResponse>, Status> {
        let principal = principal_of(&request)?;
        let kind = match principal.kind {
            PrincipalKind::User => pb::PrincipalKind::User,
            PrincipalKind::ApiKey => pb::PrincipalKind::ApiKey,
            PrincipalKind::Service => pb::PrincipalKind::Service,
        };
        Ok(Response::new(pb::WhoAmIResponse {
            subject: principal.subject.clone(),
            roles: principal.roles.iter().map(|r| r.to_proto() as i32).collect(),
            kind: kind as i32,
            expire_time: Some(prost_types::Timestamp { seconds: principal.expires_at, nanos: 0 }),
            api_key_id: principal.key_id.clone().unwrap_or_default(),
        }))
    }

    async fn change_password(
        &self,
        request: Request<pb::ChangePasswordRequest>,
    ) -> Result<Response<pb::ChangePasswordResponse>, Status> {
        self.change_own_password(request).await
    }

    async fn create_user(
        &self,
        request: Request<pb::CreateUserRequest>,
    ) -> Result<Response<pb::CreateUserResponse>, Status> {
        let client = client_of(&request);
        let admin = principal_of(&request)?;
        let pb::CreateUserRequest { username, password, roles } = request.into_inner();
        if !valid_username(&username) {
            return Err(Status::invalid_argument("username must be 3 to 64 characters of a-z, 0-9, '.', '_' and '-'"));
        }
        check_password(&password)?;
        let roles = role_names(&roles)?;
        if roles.is_empty() {
            return Err(Status::invalid_argument("roles must name at least one role"));
        }
        let hash = self.passwords.hash(&SecretString::from(password)).await.map_err(password_status)?;
        let user = self.store.create_user(&username, &hash, &roles).await.map_err(to_status)?;
        self.event(
            &client,
            SecurityEvent::new(
                "auth.create_user",
                &admin.subject,
                admin.role_names(),
                format!("users/{username}"),
                AuditResult::Success,
                "",
            ),
        )
        .await;
        Ok(Response::new(pb::CreateUserResponse { user: Some(user_message(&user)) }))
    }

    async fn list_users(
        &self,
        request: Request<pb::ListUsersRequest>,
    ) -> Result<Response<pb::ListUsersResponse>, Status> {
        let pb::ListUsersRequest { page_size, page_token } = request.into_inner();
        if page_size < 0 {
            return Err(Status::invalid_argument("page_size must not be negative"));
        }
        let size = if page_size == 0 { 50 } else { page_size.min(500) } as usize;
        let after = if page_token.is_empty() {
            String::new()
        } else {
            String::from_utf8(
                URL_SAFE_NO_PAD
                    .decode(&page_token)
                    .map_err(|_| Status::invalid_argument("page_token is not a token this service issued"))?,
            )
            .map_err(|_| Status::invalid_argument("page_token is not a token this service issued"))?
        };
        let mut users = self.store.users(&after, size as i64 + 1).await.map_err(to_status)?;
        let next_page_token = if users.len() > size {
            users.truncate(size);
            users.last().map(|u| URL_SAFE_NO_PAD.encode(&u.username)).unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(pb::ListUsersResponse { users: users.iter().map(user_message).collect(), next_page_token }))
    }

    async fn update_user(
        &self,
        request: Request<pb::UpdateUserRequest>,
    ) -> Result<Response<pb::UpdateUserResponse>, Status> {
        let client = client_of(&request);
        let admin = principal_of(&request)?;
        let pb::UpdateUserRequest { username, roles, disabled, password, update_mask } = request.into_inner();
        let paths = update_mask.map(|m| m.paths).unwrap_or_default();
        if paths.is_empty() {
            return Err(Status::invalid_argument("update_mask must name at least one of roles, disabled, password"));
        }
        let mut new_roles = None;
        let mut new_disabled = None;
        let mut new_hash = None;
        for path in &paths {
            match path.as_str() {
                "roles" => {
                    let names = role_names(&roles)?;
                    if names.is_empty() {
                        return Err(Status::invalid_argument("roles must name at least one role"));
                    }
                    new_roles = Some(names);
                }
                "disabled" => new_disabled = Some(disabled),
                "password" => {
                    check_password(&password)?;
                    new_hash = Some(
                        self.passwords.hash(&SecretString::from(password.clone())).await.map_err(password_status)?,
                    );
                }
                other => return Err(Status::invalid_argument(format!("update_mask: `{other}` cannot be changed"))),
            }
        }
        // New password, roles or status: sessions started under the old ones end, their refresh
        // tokens and (through the user's not-before) their access tokens, at every verifier.
        let (user, change) = self
            .store
            .update_user(&username, new_roles.as_deref(), new_disabled, new_hash.as_deref())
            .await
            .map_err(to_status)?;
        self.revocations.apply_local(change);
        self.event(
            &client,
            SecurityEvent::new(
                "auth.update_user",
                &admin.subject,
                admin.role_names(),
                format!("users/{username}"),
                AuditResult::Success,
                &paths.join(","),
            ),
        )
        .await;
        Ok(Response::new(pb::UpdateUserResponse { user: Some(user_message(&user)) }))
    }

    async fn create_api_key(
        &self,
        request: Request<pb::CreateApiKeyRequest>,
    ) -> Result<Response<pb::CreateApiKeyResponse>, Status> {
        let client = client_of(&request);
        let admin = principal_of(&request)?;
        let pb::CreateApiKeyRequest { name, roles, ttl, owner } = request.into_inner();
        let (record, secret) = api_keys::create(&self.store, &admin, &name, &roles, ttl, &owner).await?;
        self.event(
            &client,
            SecurityEvent::new(
                "auth.create_api_key",
                &admin.subject,
                admin.role_names(),
                format!("api-keys/{}", record.key_id),
                AuditResult::Success,
                "",
            ),
        )
        .await;
        Ok(Response::new(pb::CreateApiKeyResponse { api_key: Some(record), secret }))
    }

    async fn list_api_keys(
        &self,
        request: Request<pb::ListApiKeysRequest>,
    ) -> Result<Response<pb::ListApiKeysResponse>, Status> {
        let pb::ListApiKeysRequest { page_size, page_token, include_revoked } = request.into_inner();
        let (api_keys, next_page_token) = api_keys::list(&self.store, page_size, &page_token, include_revoked).await?;
        Ok(Response::new(pb::ListApiKeysResponse { api_keys, next_page_token }))
    }

    async fn revoke_api_key(
        &self,
        request: Request<pb::RevokeApiKeyRequest>,
    ) -> Result<Response<pb::RevokeApiKeyResponse>, Status> {
        let client = client_of(&request);
        let admin = principal_of(&request)?;
        let pb::RevokeApiKeyRequest { key_id } = request.into_inner();
        let (row, change) = self.store.revoke_api_key(&key_id).await.map_err(to_status)?;
        self.revocations.apply_local(change);
        self.event(
            &client,
            SecurityEvent::new(
                "auth.revoke_api_key",
                &admin.subject,
                admin.role_names(),
                format!("api-keys/{key_id}"),
                AuditResult::Success,
                "",
            ),
        )
        .await;
        Ok(Response::new(pb::RevokeApiKeyResponse { api_key: Some(api_keys::to_proto(&row)) }))
    }
}
