//! The gRPC face of the agent: converts messages, calls the task store and Ollama, maps errors.

use std::pin::Pin;
use std::time::Instant;

use base64::Engine;
use deadpool_postgres::Pool;
use futures::Stream;
use prfix_proto::agent::v1 as pb;
use prfix_proto::agent::v1::agent_service_server::AgentService;
use prfix_proto::prost::Message;
use prfix_runtime::error::to_status;
use prfix_runtime::time::to_timestamp;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::ollama::Ollama;
use crate::tasks::{self, TaskError, TaskFilter, TaskRow};

const DEFAULT_PAGE: i32 = 50;
const MAX_PAGE: i32 = 500;

/// The AgentService implementation.
pub struct AgentApi {
    pool: Pool,
    ollama: Ollama,
}

impl AgentApi {
    /// Serves tasks from `pool` and models from `ollama`.
    pub fn new(pool: Pool, ollama: Ollama) -> Self {
        Self { pool, ollama }
    }
}

fn invalid(msg: impl Into<String>) -> Status {
    to_status(TaskError::Invalid(msg.into()))
}

fn parse_task_id(id: &str) -> Result<Uuid, Status> {
    Uuid::parse_str(id).map_err(|_| invalid(format!("task_id must be a UUID, got `{id}`")))
}

fn to_proto(row: TaskRow) -> Result<pb::Task, Status> {
    let result = row
        .result
        .as_deref()
        .map(pb::TaskResult::decode)
        .transpose()
        .map_err(|e| Status::internal(format!("stored result of task {} does not decode: {e}", row.task_id)))?;
    Ok(pb::Task {
        task_id: row.task_id.to_string(),
        kind: i32::from(row.kind),
        state: i32::from(row.state),
        owner: row.owner,
        create_time: Some(to_timestamp(row.created_at)),
        start_time: row.started_at.map(to_timestamp),
        end_time: row.ended_at.map(to_timestamp),
        error: row.error,
        attempts: row.attempts,
        result,
    })
}

fn encode_page_token(row: &TaskRow) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!(
        "{}|{}",
        row.created_at.timestamp_micros(),
        row.task_id
    ))
}

fn decode_page_token(token: &str) -> Result<Option<(chrono::DateTime<chrono::Utc>, Uuid)>, Status> {
    if token.is_empty() {
        return Ok(None);
    }
    let refused = || invalid("page_token is not a token this service issued");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token).map_err(|_| refused())?;
    let text = String::from_utf8(bytes).map_err(|_| refused())?;
    let (micros, id) = text.split_once('|').ok_or_else(refused)?;
    let micros: i64 = micros.parse().map_err(|_| refused())?;
    let time = chrono::DateTime::from_timestamp_micros(micros).ok_or_else(refused)?;
    Ok(Some((time, Uuid::parse_str(id).map_err(|_| refused())?)))
}

fn not_yet(what: &str) -> Status {
    Status::unimplemented(format!("{what} is not built yet: it arrives with the review and fix engine (issue 5)"))
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchTaskResponse, Status>> + Send>>;

#[tonic::async_trait]
impl AgentService for AgentApi {
    async fn create_review(
        &self,
        _request: Request<pb::CreateReviewRequest>,
    ) -> Result<Response<pb::CreateReviewResponse>, Status> {
        Err(not_yet("CreateReview"))
    }

    async fn create_describe(
        &self,
        _request: Request<pb::CreateDescribeRequest>,
    ) -> Result<Response<pb::CreateDescribeResponse>, Status> {
        Err(not_yet("CreateDescribe"))
    }

    async fn create_fix(
        &self,
        _request: Request<pb::CreateFixRequest>,
    ) -> Result<Response<pb::CreateFixResponse>, Status> {
        Err(not_yet("CreateFix"))
    }

    async fn get_task(&self, request: Request<pb::GetTaskRequest>) -> Result<Response<pb::GetTaskResponse>, Status> {
        let pb::GetTaskRequest { task_id } = request.into_inner();
        let row = tasks::get(&self.pool, parse_task_id(&task_id)?).await.map_err(to_status)?;
        Ok(Response::new(pb::GetTaskResponse { task: Some(to_proto(row)?) }))
    }

    async fn list_tasks(
        &self,
        request: Request<pb::ListTasksRequest>,
    ) -> Result<Response<pb::ListTasksResponse>, Status> {
        let pb::ListTasksRequest { page_size, page_token, state, kind, owner } = request.into_inner();
        if page_size < 0 {
            return Err(invalid("page_size must not be negative"));
        }
        let page_size = if page_size == 0 { DEFAULT_PAGE } else { page_size.min(MAX_PAGE) };
        let state = match pb::TaskState::try_from(state) {
            Ok(pb::TaskState::Unspecified) => None,
            Ok(s) => Some(s as i16),
            Err(_) => return Err(invalid(format!("state {state} is not a known TaskState"))),
        };
        let kind = match pb::TaskKind::try_from(kind) {
            Ok(pb::TaskKind::Unspecified) => None,
            Ok(k) => Some(k as i16),
            Err(_) => return Err(invalid(format!("kind {kind} is not a known TaskKind"))),
        };
        let filter = TaskFilter { state, kind, owner: Some(owner).filter(|o| !o.is_empty()) };
        let before = decode_page_token(&page_token)?;
        let mut rows = tasks::list(&self.pool, &filter, before, i64::from(page_size) + 1).await.map_err(to_status)?;
        let next_page_token = if rows.len() > page_size as usize {
            rows.truncate(page_size as usize);
            rows.last().map(encode_page_token).unwrap_or_default()
        } else {
            String::new()
        };
        let tasks = rows.into_iter().map(to_proto).collect::<Result<Vec<_>, _>>()?;
        Ok(Response::new(pb::ListTasksResponse { tasks, next_page_token }))
    }

    type WatchTaskStream = WatchStream;

    async fn watch_task(
        &self,
        _request: Request<pb::WatchTaskRequest>,
    ) -> Result<Response<Self::WatchTaskStream>, Status> {
        Err(not_yet("WatchTask"))
    }

    async fn cancel_task(
        &self,
        _request: Request<pb::CancelTaskRequest>,
    ) -> Result<Response<pb::CancelTaskResponse>, Status> {
        Err(not_yet("CancelTask"))
    }

    async fn list_models(
        &self,
        _request: Request<pb::ListModelsRequest>,
    ) -> Result<Response<pb::ListModelsResponse>, Status> {
        let started = Instant::now();
        let models = self.ollama.all_models().await.map_err(to_status)?;
        let latency = prost_types::Duration::try_from(started.elapsed()).ok();
        let models = models
            .into_iter()
            .map(|m| pb::Model {
                name: m.name,
                endpoint: m.endpoint,
                size_bytes: m.size,
                family: m.family,
                parameter_size: m.parameter_size,
                quantization_level: m.quantization_level,
                digest: m.digest,
                modify_time: m.modified_at.map(to_timestamp),
            })
            .collect();
        Ok(Response::new(pb::ListModelsResponse { models, latency }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_page_tokens_round_trip() {
        let row = TaskRow {
            task_id: Uuid::new_v4(),
            kind: 1,
            state: 1,
            owner: "a".into(),
            result: None,
            error: String::new(),
            attempts: 0,
            created_at: chrono::DateTime::from_timestamp_micros(1_700_000_000_123_456).expect("valid"),
            started_at: None,
            ended_at: None,
        };
        let decoded = decode_page_token(&encode_page_token(&row)).expect("decodes").expect("some");
        assert_eq!(decoded, (row.created_at, row.task_id));
        assert!(decode_page_token("garbage!").is_err());
    }
}
