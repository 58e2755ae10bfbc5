//! The whole audit log as `prfix audit export` writes it, for tests that check what was stored.

use prfix_audit::export::{ExportLine, line_from_proto};
use prfix_proto::audit::v1 as audit;
use prfix_proto::audit::v1::audit_service_client::AuditServiceClient;

use crate::app::Authed;

/// Every line of an export through `client` (which signs a checkpoint over the log first), as
/// `prfix audit export` reads the stream.
pub async fn export_lines(client: &AuditServiceClient<Authed>) -> Vec<ExportLine> {
    let mut stream =
        client.clone().export_events(audit::ExportEventsRequest::default()).await.expect("export").into_inner();
    let mut lines = Vec::new();
    while let Some(item) = stream.message().await.expect("the export streams to its end") {
        lines.push(line_from_proto(item).expect("a readable export item"));
    }
    lines
}
