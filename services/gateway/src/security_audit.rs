//! Security events of the gateway (logins, refreshes, logouts, user and key changes, denials),
//! appended to the audit log before the response goes out, with a service token of the gateway's
//! own. Until durable delivery exists, a failed append is logged as an error, never dropped
//! silently. Denials are aggregated per address first ([`prfix_auth::denials`]).

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use prfix_auth::{PrincipalKind, Role};
use prfix_proto::audit::v1 as pb;
use prfix_proto::audit::v1::audit_service_client::AuditServiceClient;
use tokio::sync::Mutex;
use tonic::transport::Channel;

use crate::auth::tokens::Issuer;

/// Lifetime of the gateway's own service token.
const SERVICE_TOKEN_TTL: Duration = Duration::from_secs(300);

/// The caller as the edge saw it; handlers find it in the request extensions.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    /// Client address.
    pub ip: String,
    /// The request id.
    pub request_id: String,
    /// The call's span in its W3C trace (the gateway starts a trace when the caller sent none).
    pub trace: Option<prfix_runtime::trace::TraceContext>,
}

impl ClientInfo {
    /// The call's trace id (empty without a trace).
    pub fn trace_id(&self) -> String {
        self.trace.map(|t| t.trace_id()).unwrap_or_default()
    }
}

/// One security event.
#[derive(Debug, Clone)]
pub struct SecurityEvent {
    /// Named action (`auth.login`) or the method path.
    pub action: String,
    /// Who acted (`anonymous` when unknown).
    pub actor: String,
    /// Their roles.
    pub roles: Vec<String>,
    /// What was acted on.
    pub resource: String,
    /// Outcome.
    pub result: pb::AuditResult,
    /// Why, for failures and denials.
    pub reason: String,
    /// Further facts of the event (a webhook's forge, delivery id, event, sender), in its metadata.
    pub details: Vec<(String, String)>,
}

impl SecurityEvent {
    /// An event; `reason` is empty for successes.
    pub fn new(
        action: &str,
        actor: &str,
        roles: Vec<String>,
        resource: String,
        result: pb::AuditResult,
        reason: &str,
    ) -> Self {
        Self {
            action: action.to_owned(),
            actor: actor.to_owned(),
            roles,
            resource,
            result,
            reason: reason.to_owned(),
            details: Vec::new(),
        }
    }

    /// The event with `key: value` in its metadata (an empty value is left out).
    pub fn with(mut self, key: &str, value: &str) -> Self {
        if !value.is_empty() {
            self.details.push((key.to_owned(), value.to_owned()));
        }
        self
    }
}

/// Appends security events.
#[derive(Clone)]
pub struct SecurityAudit {
    client: AuditServiceClient<Channel>,
    issuer: Arc<Issuer>,
    token: Arc<Mutex<Option<(String, i64)>>>,
}

impl SecurityAudit {
    /// Appends through `channel` (to the audit service) with tokens from `issuer`.
    pub fn new(channel: Channel, issuer: Arc<Issuer>) -> Self {
        Self { client: AuditServiceClient::new(channel), issuer, token: Arc::new(Mutex::new(None)) }
    }

    /// A service token of the gateway's own, cached until a minute before it expires.
    pub async fn service_token(&self) -> Result<String, String> {
        let mut cached = self.token.lock().await;
        let now = Utc::now().timestamp();
        if let Some((token, exp)) = cached.as_ref()
            && *exp - now > 60
        {
            return Ok(token.clone());
        }
        let (token, claims) = self.issuer.mint_for(
            prfix_auth::GATEWAY_SUBJECT,
            &[Role::Service],
            PrincipalKind::Service,
            None,
            SERVICE_TOKEN_TTL,
        )?;
        *cached = Some((token.clone(), claims.exp));
        Ok(token)
    }

    /// Appends `event`; a failure is logged as an error with the event's content.
    pub async fn record(&self, event: SecurityEvent, client: &ClientInfo) {
        let mut metadata = prost_types::Struct::default();
        if !event.reason.is_empty() {
            metadata.fields.insert(
                "reason".to_owned(),
                prost_types::Value { kind: Some(prost_types::value::Kind::StringValue(event.reason.clone())) },
            );
        }
        for (key, value) in &event.details {
            metadata.fields.insert(
                key.clone(),
                prost_types::Value { kind: Some(prost_types::value::Kind::StringValue(value.clone())) },
            );
        }
        let message = pb::AuditEvent {
            event_id: uuid::Uuid::new_v4().to_string(),
            time: Some(prfix_runtime::time::to_timestamp(Utc::now())),
            actor: Some(pb::Actor { subject: event.actor.clone(), roles: event.roles.clone() }),
            actor_ip: client.ip.clone(),
            action: event.action.clone(),
            resource: event.resource.clone(),
            result: event.result as i32,
            request_id: client.request_id.clone(),
            trace_id: client.trace_id(),
            metadata: Some(metadata),
            ..Default::default()
        };
        if let Err(error) = self.append(message, client.trace).await {
            tracing::error!(
                %error,
                action = %event.action,
                actor = %event.actor,
                result = ?event.result,
                ip = %client.ip,
                request_id = %client.request_id,
                "security event could not be appended to the audit log"
            );
        }
    }

    /// Appends `event` with the gateway's service token, in `trace` when given.
    async fn append(
        &self,
        event: pb::AuditEvent,
        trace: Option<prfix_runtime::trace::TraceContext>,
    ) -> Result<(), String> {
        let token = self.service_token().await?;
        let mut request = tonic::Request::new(pb::AppendRequest { event: Some(event) });
        request.set_timeout(Duration::from_secs(2));
        let value = format!("Bearer {token}").parse().map_err(|_| "token is not a header value".to_owned())?;
        request.metadata_mut().insert("authorization", value);
        // The audit service's span of the append joins the call's trace.
        if let Some(trace) = trace {
            trace.inject_metadata(request.metadata_mut());
        }
        self.client.clone().append(request).await.map(|_| ()).map_err(|s| format!("{}: {}", s.code(), s.message()))
    }
}

/// Denials seen at the edge (aggregated by [`prfix_auth::denials::Denials`]) go to the audit log
/// like the other security events.
#[tonic::async_trait]
impl prfix_auth::denials::DenialSink for SecurityAudit {
    async fn write(&self, events: Vec<pb::AuditEvent>) {
        for event in events {
            if let Err(error) = self.append(event.clone(), None).await {
                prfix_auth::denials::log_unwritten(&event, &error);
            }
        }
    }
}

#[tonic::async_trait]
impl prfix_runtime::outbox::TokenSource for SecurityAudit {
    async fn token(&self) -> Result<String, String> {
        self.service_token().await
    }
}
