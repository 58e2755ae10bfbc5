//! Stored tasks as the API shows them, and the page tokens of `ListTasks`.

use base64::Engine as _;
use prfix_proto::agent::v1 as pb;
use prfix_proto::prost::Message;
use prfix_runtime::time::to_timestamp;
use tonic::Status;
use uuid::Uuid;

use super::invalid;
use crate::tasks::TaskRow;

pub(super) fn to_proto(row: TaskRow) -> Result<pb::Task, Status> {
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
        api_key_id: row.api_key_id.unwrap_or_default(),
        eval_run_id: row.eval_run_id.unwrap_or_default(),
        create_time: Some(to_timestamp(row.created_at)),
        start_time: row.started_at.map(to_timestamp),
        end_time: row.ended_at.map(to_timestamp),
        error: row.error,
        attempts: row.attempts,
        result,
        flags: row.flags.to_proto(),
        forge_pull_request: row.forge,
        diff: String::new(),
    })
}

pub(super) fn encode_page_token(row: &TaskRow) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!(
        "{}|{}",
        row.created_at.timestamp_micros(),
        row.task_id
    ))
}

pub(super) fn decode_page_token(token: &str) -> Result<Option<(chrono::DateTime<chrono::Utc>, Uuid)>, Status> {
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
