//! Changing a password: a user's own (`ChangePassword`, given the current one) and an operator's reset
//! of a user who lost theirs (`prfix up --reset-admin-password`, `prfix-gateway
//! --reset-admin-password`). Both end every session of the user, through the user's not-before
//! (the revocation written in the same transaction as the new hash, which every verifier follows),
//! and both are audited.

use prfix_auth::PrincipalKind;
use prfix_proto::audit::v1::AuditResult;
use prfix_proto::auth::v1 as pb;
use prfix_runtime::error::to_status;
use secrecy::{ExposeSecret, SecretString};
use tonic::{Request, Response, Status};

use super::{AuthApi, check_password, client_of, password_status, principal_of};
use crate::security_audit::{ClientInfo, SecurityEvent};

/// Who reset a password, in the audit log, when an operator did it with local access to the
/// gateway's database rather than through the API.
pub const OPERATOR: &str = "operator";

impl AuthApi {
    /// `ChangePassword`: checks the current password, stores the new one, ends the caller's
    /// sessions, and answers with a new pair issued after the revocation so this session goes on.
    pub(super) async fn change_own_password(
        &self,
        request: Request<pb::ChangePasswordRequest>,
    ) -> Result<Response<pb::ChangePasswordResponse>, Status> {
        let client = client_of(&request);
        let principal = principal_of(&request)?;
        if principal.kind != PrincipalKind::User {
            return Err(Status::permission_denied(
                "only a user logged in with a password can change it (not an API key or a service)",
            ));
        }
        let pb::ChangePasswordRequest { current_password, new_password } = request.into_inner();
        let user = self
            .store
            .user(&principal.subject)
            .await
            .map_err(to_status)?
            .ok_or_else(|| Status::not_found(format!("user `{}` not found", principal.subject)))?;
        let matched = self
            .passwords
            .verify(&SecretString::from(current_password), Some(user.password_hash.as_str()))
            .await
            .map_err(password_status)?;
        let event = |result, reason: &str| {
            SecurityEvent::new(
                "auth.change_password",
                &principal.subject,
                principal.role_names(),
                format!("users/{}", principal.subject),
                result,
                reason,
            )
        };
        if !matched {
            // Counted with failed logins: this is a password guess too.
            if self.login_limits.failed(&principal.subject).await {
                tracing::warn!(user = %principal.subject, "failed password checks overflowed; the account is throttled");
            }
            self.event(&client, event(AuditResult::Failure, "the current password is wrong")).await;
            return Err(Status::permission_denied("the current password is wrong"));
        }
        check_password(&new_password)?;
        let hash = self.passwords.hash(&SecretString::from(new_password)).await.map_err(password_status)?;
        let (user, change) =
            self.store.update_user(&principal.subject, None, None, Some(hash.as_str())).await.map_err(to_status)?;
        self.revocations.apply_local(change.clone());
        wait_past(&change).await;
        let tokens = self.issue_pair(&user).await?;
        self.event(&client, event(AuditResult::Success, "")).await;
        Ok(Response::new(pb::ChangePasswordResponse { tokens: Some(tokens) }))
    }

    /// Sets `username`'s password (a generated one when `password` is `None`, returned to be shown
    /// once), enables the user, ends their sessions and records `auth.reset_password` by
    /// [`OPERATOR`]. For an operator with access to the gateway's settings who lost the admin
    /// password; never reachable through the API.
    pub async fn reset_password(&self, username: &str, password: Option<SecretString>) -> Result<String, Status> {
        let password = password.unwrap_or_else(|| SecretString::from(super::generated_password()));
        check_password(password.expose_secret())?;
        let hash = self.passwords.hash(&password).await.map_err(password_status)?;
        let (_, change) =
            self.store.update_user(username, None, Some(false), Some(hash.as_str())).await.map_err(to_status)?;
        self.revocations.apply_local(change);
        self.event(
            &ClientInfo { ip: "local".to_owned(), ..Default::default() },
            SecurityEvent::new(
                "auth.reset_password",
                OPERATOR,
                Vec::new(),
                format!("users/{username}"),
                AuditResult::Success,
                "",
            ),
        )
        .await;
        Ok(password.expose_secret().to_owned())
    }
}

/// Waits until tokens issued now are no longer refused by the not-before `change` set (it lies up to
/// a second ahead, so that tokens issued in the second of the change are refused).
async fn wait_past(change: &prfix_auth::revocations::Change) {
    if let prfix_auth::revocations::Change::NotBefore { not_before, .. } = change {
        let now = chrono::Utc::now();
        let wait_ms = not_before.saturating_mul(1000).saturating_sub(now.timestamp_millis());
        if wait_ms > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(wait_ms.unsigned_abs())).await;
        }
    }
}
