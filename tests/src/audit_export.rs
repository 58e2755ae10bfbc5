//! The whole audit log as `prfix audit export` writes it, for tests that check what was stored.

use prfix_audit::export::{ExportLine, line_from_proto, read_jsonl};
use prfix_audit::jsonl::write_stream;
use prfix_proto::audit::v1 as audit;
use prfix_proto::audit::v1::audit_service_client::AuditServiceClient;

use crate::app::Authed;

/// The export file through `client` (which signs a checkpoint over the log first), as `prfix audit
/// export` writes it: in JSON lines rendered by the service.
pub async fn export_file(client: &AuditServiceClient<Authed>) -> Vec<u8> {
    let mut stream =
        client.clone().export_events(prfix_audit::jsonl::request(0, 0)).await.expect("export").into_inner();
    let mut file = Vec::new();
    write_stream(&mut stream, &mut file).await.expect("the export streams to its end");
    file
}

/// Every line of an export through `client`, as `prfix audit export` writes them.
pub async fn export_lines(client: &AuditServiceClient<Authed>) -> Vec<ExportLine> {
    let file = export_file(client).await;
    read_jsonl(std::str::from_utf8(&file).expect("the export is UTF-8")).expect("the export parses")
}

/// Every line of an export through `client` asked for as items (what clients from before JSON
/// lines read), each converted on this side.
pub async fn export_items(client: &AuditServiceClient<Authed>) -> Vec<ExportLine> {
    let mut stream =
        client.clone().export_events(audit::ExportEventsRequest::default()).await.expect("export").into_inner();
    let mut lines = Vec::new();
    while let Some(item) = stream.message().await.expect("the export streams to its end") {
        lines.push(line_from_proto(item).expect("a readable export item"));
    }
    lines
}
