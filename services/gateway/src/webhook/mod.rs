//! Forge webhooks: `POST /v1/forges/{forge}/webhook`, `prfix.forge.v1.WebhookService/Deliver`.
//!
//! The REST transcoder hands the body over as a `google.api.HttpBody`, byte for byte, with the
//! forge's `X-` headers as metadata; the edge lets the call through without a token (its policy is
//! `forge_signature`) and limits it by client address. Here, in this order, so that nothing from an
//! unproven sender is parsed or stored: the connection is looked up, the signature checked over the
//! raw bytes in constant time, the payload parsed, its repository checked against the connection's,
//! and the delivery id recorded (a delivery id seen before is acknowledged and ignored; the same id
//! with another body is refused). Every delivery, taken or refused, is audited before the answer.
//!
//! A new delivery that asks for a review (a pull request opened, reopened, marked ready or pushed
//! to; [`delivery::trigger`]) is handed to the agent at once with the gateway's service identity
//! (`AgentService/CreateForgeReview`, which only queues a task), so the answer stays well under a
//! second. When the agent cannot be reached, the delivery is forgotten again and refused with 503,
//! so that the forge's redelivery is not taken for a duplicate.

pub mod delivery;
mod review;
pub mod signature;
mod store;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use deadpool_postgres::Pool;
use prfix_proto::audit::v1::AuditResult;
use prfix_proto::forge::v1::webhook_service_server::WebhookService;
use prfix_proto::forge::v1::{DeliverRequest, DeliverResponse};
use prfix_proto::google::api::HttpBody;
use secrecy::{ExposeSecret, SecretString};
use tonic::{Request, Response, Status};

use crate::security_audit::{ClientInfo, SecurityAudit, SecurityEvent};
use crate::settings::{ForgeKind, Settings};
use signature::SignatureError;
use store::{NewDelivery, Recorded};

/// Audit action of a delivery taken (or acknowledged as a duplicate).
pub const RECEIVED: &str = "forge.webhook.received";
/// Audit action of a delivery refused.
pub const REFUSED: &str = "forge.webhook.refused";

/// One configured forge connection, with its secret.
struct Connection {
    kind: ForgeKind,
    secret: SecretString,
    repositories: BTreeSet<String>,
    review_drafts: bool,
}

/// The webhook service.
#[derive(Clone)]
pub struct WebhookApi {
    connections: Arc<BTreeMap<String, Connection>>,
    pool: Pool,
    audit: SecurityAudit,
    agent: review::AgentStarter,
}

/// Why a delivery is refused; each maps to one status (and so one HTTP status).
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// No connection of this name is configured.
    #[error("no forge connection `{0}` is configured at this gateway")]
    UnknownForge(String),
    /// The signature is missing or does not hold.
    #[error("{0}")]
    Signature(#[from] SignatureError),
    /// The delivery has no id header.
    #[error("the delivery has no {0} header")]
    NoDeliveryId(&'static str),
    /// The payload is not JSON.
    #[error("the payload is not JSON ({0}); configure the webhook's content type as application/json")]
    NotJson(String),
    /// The payload's repository is not one of the connection's.
    #[error("the repository `{0}` is not configured for this forge connection")]
    UnknownRepository(String),
    /// The delivery id was taken before with another body.
    #[error("delivery `{0}` was received before with a different body")]
    Replayed(String),
    /// The body is over the gateway's limit (refused at the edge, before it was read).
    #[error("{0}")]
    TooLarge(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// The agent could not be reached to queue the review; the delivery was not kept.
    #[error("the review could not be queued now ({0}); the delivery was not kept, send it again")]
    Agent(String),
}

impl WebhookError {
    /// Denied when the sender or its target is not one we take deliveries from, failed otherwise.
    fn audit_result(&self) -> AuditResult {
        match self {
            Self::UnknownForge(_) | Self::Signature(_) | Self::UnknownRepository(_) => AuditResult::Denied,
            Self::NoDeliveryId(_)
            | Self::NotJson(_)
            | Self::Replayed(_)
            | Self::TooLarge(_)
            | Self::Store(_)
            | Self::Agent(_) => AuditResult::Failure,
        }
    }

    /// The status the forge gets (a store failure opaque: the cause is logged).
    fn to_status(&self) -> Status {
        match self {
            Self::UnknownForge(_) | Self::UnknownRepository(_) => Status::not_found(self.to_string()),
            Self::Signature(_) => Status::unauthenticated(self.to_string()),
            Self::NoDeliveryId(_) | Self::NotJson(_) => Status::invalid_argument(self.to_string()),
            Self::Replayed(_) => Status::already_exists(self.to_string()),
            Self::TooLarge(_) => Status::out_of_range(self.to_string()),
            Self::Store(_) => Status::internal("the delivery could not be recorded; it may be sent again"),
            Self::Agent(_) => Status::unavailable(self.to_string()),
        }
    }
}

/// What is known of a delivery, for its audit record.
#[derive(Debug, Default)]
struct Seen {
    forge: String,
    delivery_id: String,
    event: String,
    repository: String,
    sender: String,
    /// The pull request and its head, when the delivery is about one.
    pull_request: String,
    /// The command of a comment, when it holds one.
    command: String,
    /// The review task it started, or why it started none.
    task_id: String,
    ignored: String,
}

impl WebhookApi {
    /// The service for the connections of `settings` (their secrets are checked by
    /// [`Settings::validate`]; a connection without one is left out, so it refuses every delivery).
    pub fn new(settings: &Settings, pool: Pool, audit: SecurityAudit, agent: tonic::transport::Channel) -> Self {
        let connections = settings
            .gateway
            .forges
            .iter()
            .filter_map(|(name, connection)| {
                let secret = settings.forge_webhook_secrets.get(name)?.clone();
                let repositories = connection.repositories.iter().cloned().collect();
                let review_drafts = connection.review_drafts;
                Some((name.clone(), Connection { kind: connection.kind, secret, repositories, review_drafts }))
            })
            .collect();
        let agent = review::AgentStarter::new(agent, audit.clone());
        Self { connections: Arc::new(connections), pool, audit, agent }
    }

    /// Takes one delivery, filling `seen` as it learns.
    async fn take(
        &self,
        forge: &str,
        headers: &http::HeaderMap,
        body: &HttpBody,
        seen: &mut Seen,
    ) -> Result<DeliverResponse, WebhookError> {
        let connection = self.connections.get(forge).ok_or_else(|| WebhookError::UnknownForge(forge.to_owned()))?;
        let kind = connection.kind;
        seen.delivery_id = delivery::delivery_id(kind, headers).unwrap_or_default();
        seen.event = delivery::event(kind, headers);
        signature::verify(kind, connection.secret.expose_secret().as_bytes(), headers, &body.data)?;
        let delivery_id = delivery::delivery_id(kind, headers)
            .ok_or(WebhookError::NoDeliveryId(delivery::delivery_id_headers(kind)[0]))?;
        let payload: serde_json::Value =
            serde_json::from_slice(&body.data).map_err(|e| WebhookError::NotJson(e.to_string()))?;
        let read = delivery::read(kind, &payload);
        seen.repository = read.repository.clone();
        seen.sender = read.sender.clone();
        if !connection.repositories.contains(&read.repository) {
            return Err(WebhookError::UnknownRepository(read.repository));
        }
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &body.data);
        let new = NewDelivery {
            forge,
            delivery_id: &delivery_id,
            body_sha256: digest.as_ref(),
            event: &seen.event,
            repository: &read.repository,
        };
        let duplicate = match store::record(&self.pool, &new).await? {
            Recorded::New => false,
            Recorded::Duplicate => true,
            Recorded::Replayed => return Err(WebhookError::Replayed(delivery_id)),
        };
        let mut response = DeliverResponse {
            delivery_id: delivery_id.clone(),
            duplicate,
            event: seen.event.clone(),
            repository: read.repository.clone(),
            task_id: String::new(),
            ignored: String::new(),
        };
        if duplicate {
            return Ok(response);
        }
        match delivery::trigger(kind, &seen.event, &read, connection.review_drafts) {
            delivery::Trigger::Nothing => {}
            delivery::Trigger::Ignored(reason) => response.ignored = reason,
            delivery::Trigger::Review(pull) => {
                seen.pull_request = format!("{}#{} {}", read.repository, pull.number, pull.head_sha);
                let message = review::AgentStarter::review(forge, &read, &pull, &delivery_id);
                self.queue(forge, &delivery_id, message, &mut response).await?;
            }
            delivery::Trigger::Command(command) => {
                seen.pull_request = format!("{}#{}", read.repository, command.comment.number);
                // A question can be long: the record keeps its start.
                seen.command = format!("/{} {}", command.name, command.argument).trim_end().chars().take(200).collect();
                let message = review::AgentStarter::command(forge, &read, &command, &delivery_id);
                self.queue(forge, &delivery_id, message, &mut response).await?;
            }
        }
        seen.task_id.clone_from(&response.task_id);
        seen.ignored.clone_from(&response.ignored);
        Ok(response)
    }

    /// Hands `message` to the agent, noting the task (or why there is none) in `response`; when
    /// the agent cannot be asked now, the delivery is forgotten so that its redelivery is taken.
    async fn queue(
        &self,
        forge: &str,
        delivery_id: &str,
        message: prfix_proto::agent::v1::CreateForgeReviewRequest,
        response: &mut DeliverResponse,
    ) -> Result<(), WebhookError> {
        match self.agent.start(message).await {
            Ok(review::Started::Queued(task_id)) => response.task_id = task_id,
            Ok(review::Started::Refused(reason)) => response.ignored = reason,
            Err(reason) => {
                if let Err(error) = store::forget(&self.pool, forge, delivery_id).await {
                    tracing::error!(%error, forge, delivery_id, "a delivery whose review was not queued could not be forgotten");
                }
                return Err(WebhookError::Agent(reason));
            }
        }
        Ok(())
    }

    /// Audits a delivery refused for its size (413) before its body was read (by its declared
    /// length at the edge, or while the transcoder read it): what its headers say of it, for the
    /// forge connection its path names. Requests to other paths are left alone.
    pub async fn refused_oversize(
        &self,
        path: &str,
        headers: &http::HeaderMap,
        extensions: &http::Extensions,
        detail: &str,
    ) {
        let Some(forge) = path.strip_prefix("/v1/forges/").and_then(|p| p.strip_suffix("/webhook")) else { return };
        if forge.contains('/') {
            return;
        }
        // Before the edge: the client as the edge would see it.
        let client = ClientInfo {
            ip: extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0.ip().to_string())
                .unwrap_or_default(),
            request_id: headers.get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned(),
            trace: prfix_runtime::trace::TraceContext::from_headers(headers),
        };
        let client = &client;
        let mut seen = Seen { forge: forge.chars().take(64).collect(), ..Seen::default() };
        if let Some(connection) = self.connections.get(forge) {
            seen.delivery_id = delivery::delivery_id(connection.kind, headers).unwrap_or_default();
            seen.event = delivery::event(connection.kind, headers);
        }
        let error = WebhookError::TooLarge(detail.to_owned());
        self.audit(&seen, Err(&error), client).await;
    }

    /// The audit record of a delivery.
    async fn audit(&self, seen: &Seen, outcome: Result<bool, &WebhookError>, client: &ClientInfo) {
        let (action, actor, result, reason) = match outcome {
            Ok(_) => (RECEIVED, format!("forge:{}", seen.forge), AuditResult::Success, String::new()),
            Err(error) => (REFUSED, "anonymous".to_owned(), error.audit_result(), error.to_string()),
        };
        let resource = if seen.repository.is_empty() {
            format!("forges/{}", seen.forge)
        } else {
            format!("forges/{}/repositories/{}", seen.forge, seen.repository)
        };
        let mut event = SecurityEvent::new(action, &actor, Vec::new(), resource, result, &reason);
        for (key, value) in [
            ("forge", seen.forge.as_str()),
            ("repository", &seen.repository),
            ("event", &seen.event),
            ("delivery_id", &seen.delivery_id),
            ("sender", &seen.sender),
            ("pull_request", &seen.pull_request),
            ("command", &seen.command),
            ("task_id", &seen.task_id),
            ("ignored", &seen.ignored),
        ] {
            event = event.with(key, value);
        }
        if let Ok(duplicate) = outcome {
            event = event.with("duplicate", if duplicate { "true" } else { "false" });
        }
        self.audit.record(event, client).await;
    }
}

#[tonic::async_trait]
impl WebhookService for WebhookApi {
    async fn deliver(&self, request: Request<DeliverRequest>) -> Result<Response<DeliverResponse>, Status> {
        let (metadata, extensions, message) = request.into_parts();
        let client = extensions.get::<ClientInfo>().cloned().unwrap_or_default();
        let headers = metadata.into_headers();
        let DeliverRequest { forge, body } = message;
        let body = body.unwrap_or_default();
        let mut seen = Seen { forge: forge.chars().take(64).collect(), ..Seen::default() };
        let outcome = self.take(&forge, &headers, &body, &mut seen).await;
        match &outcome {
            Ok(response) => self.audit(&seen, Ok(response.duplicate), &client).await,
            Err(error) => {
                if let WebhookError::Store(cause) = error {
                    tracing::error!(error = %cause, forge = %seen.forge, delivery_id = %seen.delivery_id, "webhook delivery failed");
                }
                self.audit(&seen, Err(error), &client).await;
            }
        }
        outcome.map(Response::new).map_err(|e| e.to_status())
    }
}
