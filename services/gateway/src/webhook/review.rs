//! Handing a delivery's review to the agent: `AgentService/CreateForgeReview` with the gateway's
//! service token, straight to the agent (the edge is for outside callers). The call only queues a
//! task, so it is quick; it is bounded all the same so the forge gets its answer in time.

use std::time::Duration;

use prfix_proto::agent::v1 as pb;
use prfix_proto::agent::v1::agent_service_client::AgentServiceClient;
use tonic::transport::Channel;

use super::delivery::{Command, Payload, PullRequest};
use crate::security_audit::SecurityAudit;

/// The longest the agent may take to queue a review.
const QUEUE_TIMEOUT: Duration = Duration::from_secs(3);

/// What became of a review the delivery asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Started {
    /// Queued (or already queued for this head): the task's id.
    Queued(String),
    /// The agent refused it for good (its forge connection is missing, say): why. The delivery is
    /// kept: sending it again would be refused the same way.
    Refused(String),
}

/// Starts reviews at the agent.
#[derive(Clone)]
pub struct AgentStarter {
    client: AgentServiceClient<Channel>,
    audit: SecurityAudit,
}

impl AgentStarter {
    /// Calls the agent through `channel`, with the service token `audit` mints.
    pub fn new(channel: Channel, audit: SecurityAudit) -> Self {
        Self { client: AgentServiceClient::new(channel), audit }
    }

    /// The request that reviews `pull` of the delivery `read` on the connection `forge`.
    pub fn review(forge: &str, read: &Payload, pull: &PullRequest, delivery_id: &str) -> pb::CreateForgeReviewRequest {
        pb::CreateForgeReviewRequest {
            pull_request: Some(pb::ForgePullRequest {
                forge: forge.to_owned(),
                repository: read.repository.clone(),
                number: pull.number,
                head_sha: pull.head_sha.clone(),
                triggered_by: read.sender.clone(),
                author: pull.author.clone(),
                delivery_id: delivery_id.to_owned(),
            }),
            full: false,
            model: String::new(),
            command: None,
            coder_model: String::new(),
        }
    }

    /// The request that runs `command` of the delivery `read` on the connection `forge`.
    pub fn command(forge: &str, read: &Payload, command: &Command, delivery_id: &str) -> pb::CreateForgeReviewRequest {
        pb::CreateForgeReviewRequest {
            pull_request: Some(pb::ForgePullRequest {
                forge: forge.to_owned(),
                repository: read.repository.clone(),
                number: command.comment.number,
                head_sha: command.comment.head_sha.clone(),
                triggered_by: read.sender.clone(),
                author: command.comment.author.clone(),
                delivery_id: delivery_id.to_owned(),
            }),
            full: command.name == "review" && command.argument == "full",
            model: String::new(),
            command: Some(pb::ForgeCommand {
                name: command.name.clone(),
                argument: command.argument.clone(),
                comment_id: command.comment.id,
            }),
            coder_model: String::new(),
        }
    }

    /// Queues `message` at the agent; `Err` when the agent could not be asked now (the forge
    /// should send the delivery again).
    pub async fn start(&self, message: pb::CreateForgeReviewRequest) -> Result<Started, String> {
        let forge = message.pull_request.as_ref().map(|p| p.forge.clone()).unwrap_or_default();
        let token = self.audit.service_token().await?;
        let mut request = tonic::Request::new(message);
        request.set_timeout(QUEUE_TIMEOUT);
        let value =
            format!("Bearer {token}").parse().map_err(|_| "the service token is not a header value".to_owned())?;
        request.metadata_mut().insert("authorization", value);
        match tokio::time::timeout(QUEUE_TIMEOUT, self.client.clone().create_forge_review(request)).await {
            Ok(Ok(response)) => {
                let task = response.into_inner().task.map(|t| t.task_id).unwrap_or_default();
                Ok(Started::Queued(task))
            }
            Ok(Err(status)) => match status.code() {
                tonic::Code::InvalidArgument
                | tonic::Code::FailedPrecondition
                | tonic::Code::PermissionDenied
                | tonic::Code::NotFound => {
                    tracing::warn!(forge, code = ?status.code(), message = %status.message(), "the agent refused a forge review");
                    Ok(Started::Refused(format!("the agent did not queue a review: {}", status.message())))
                }
                code => Err(format!("the agent answered {code:?}: {}", status.message())),
            },
            Err(_) => Err(format!("the agent did not answer within {} s", QUEUE_TIMEOUT.as_secs())),
        }
    }
}
