//! `prfix tasks list|show|watch|cancel`, `prfix models`, `prfix status`.

use futures::StreamExt;
use prfix_proto::agent::v1 as pb;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use super::task_ref::{TaskRef, resolve};
use super::{describe_event, kind_name, state_name, time};
use crate::error::{CliError, CliResult};
use crate::report::Format;
use crate::session::Session;

/// Lists tasks, newest first.
pub async fn list(
    gateway: &str,
    state: Option<String>,
    limit: i32,
    all_pages: bool,
    eval_run: Option<String>,
) -> CliResult {
    let session = Session::open(gateway).await?;
    let state = match state.as_deref() {
        None => 0,
        Some(word) => pb::TaskState::from_str_name(&format!("TASK_STATE_{}", word.to_ascii_uppercase()))
            .map(|s| s as i32)
            .ok_or_else(|| {
                CliError::new(format!("state `{word}` is not one of queued, running, succeeded, failed, cancelled"))
            })?,
    };
    let mut page_token = String::new();
    println!("{:<36}  {:<8}  {:<9}  {:<19}  {:<12}  error", "task", "kind", "state", "created", "owner");
    loop {
        let page = session
            .agent()
            .list_tasks(pb::ListTasksRequest {
                page_size: limit,
                page_token,
                state,
                eval_run_id: eval_run.clone().unwrap_or_default(),
                ..Default::default()
            })
            .await
            .map_err(|s| session.fail("listing tasks", &s))?
            .into_inner();
        for t in &page.tasks {
            println!(
                "{:<36}  {:<8}  {:<9}  {:<19}  {:<12}  {}",
                t.task_id,
                kind_name(t.kind),
                state_name(t.state),
                time(t.create_time.as_ref()),
                t.owner,
                t.error.lines().next().unwrap_or_default()
            );
        }
        if !all_pages || page.next_page_token.is_empty() {
            return Ok(());
        }
        page_token = page.next_page_token;
    }
}

/// Shows one task and its result: its details, or with `format` its stored result rendered as the
/// command that made it printed it (no model call). `color` for the terminal format.
pub async fn show(gateway: &str, task: &TaskRef, format: Option<Format>, color: bool) -> CliResult {
    let session = Session::open(gateway).await?;
    let task_id = resolve(&session, task).await?;
    let task = session
        .call("reading the task", |mut agent| {
            let request = pb::GetTaskRequest { task_id: task_id.clone() };
            async move { agent.get_task(request).await }
        })
        .await?
        .task
        .ok_or_else(|| CliError::new("the gateway sent no task"))?;
    if let Some(format) = format {
        return super::show::print(&task, format, color && format == Format::Terminal);
    }
    println!("task      {}", task.task_id);
    println!("kind      {}", kind_name(task.kind));
    println!("state     {}", state_name(task.state));
    println!("owner     {}", task.owner);
    println!("created   {}", time(task.create_time.as_ref()));
    println!("started   {}", time(task.start_time.as_ref()));
    println!("ended     {}", time(task.end_time.as_ref()));
    println!("attempts  {}", task.attempts);
    if !task.error.is_empty() {
        println!("error     {}", crate::report::printable(&task.error));
    }
    let p = crate::report::printable;
    let pl = crate::report::printable_lines;
    match task.result.and_then(|r| r.result) {
        Some(pb::task_result::Result::Review(r)) => {
            println!(
                "findings  {} ({} re-anchored, {} dropped, {} secrets redacted)",
                r.findings.len(),
                r.reanchored_findings,
                r.dropped_findings,
                r.redactions
            );
            if let Some(warning) = crate::report::failed_parts_warning(&r.failed_parts) {
                println!("warning   {warning}:");
                for part in &r.failed_parts {
                    println!("  {}", p(&crate::report::failed_part_line(part)));
                }
            }
            for f in &r.findings {
                println!("  {}:{} {} {}", p(&f.path), f.line, crate::report::severity_name(f.severity), p(&f.title));
            }
        }
        Some(pb::task_result::Result::Describe(d)) => println!("title     {}\n\n{}", p(&d.title), pl(&d.summary)),
        Some(pb::task_result::Result::Fix(f)) => {
            println!("patch     {} files, {} attempts\n\n{}", f.files.len(), f.attempts, pl(&f.patch))
        }
        Some(pb::task_result::Result::Ask(a)) => println!("question  {}\n\n{}", p(&a.question), pl(&a.answer)),
        None => {}
    }
    Ok(())
}

/// Prints a task's events from the start until it ends.
pub async fn watch(gateway: &str, task: &TaskRef) -> CliResult {
    let session = Session::open(gateway).await?;
    let task_id = resolve(&session, task).await?;
    let mut stream = session
        .call("watching the task", |mut agent| {
            let request = pb::WatchTaskRequest { task_id: task_id.clone(), after_sequence: 0 };
            async move { agent.watch_task(request).await }
        })
        .await?;
    while let Some(item) = stream.next().await {
        let item = item.map_err(|s| session.fail("watching the task", &s))?;
        if let Some(event) = item.event {
            let at = event.time.as_ref().map(|t| time(Some(t))).unwrap_or_default();
            let text = describe_event(&event).unwrap_or_default();
            println!("{:>4}  {at}  {}", event.sequence, crate::report::printable(&text));
        }
    }
    Ok(())
}

/// Cancels a task.
pub async fn cancel(gateway: &str, task: &TaskRef) -> CliResult {
    let session = Session::open(gateway).await?;
    let task_id = resolve(&session, task).await?;
    let task = session
        .call("cancelling the task", |mut agent| {
            let request = pb::CancelTaskRequest { task_id: task_id.clone() };
            async move { agent.cancel_task(request).await }
        })
        .await?
        .task
        .ok_or_else(|| CliError::new("the gateway sent no task"))?;
    println!("task {} is {}", task.task_id, state_name(task.state));
    Ok(())
}

/// Lists the models of the Ollama endpoints.
pub async fn models(gateway: &str) -> CliResult {
    let session = Session::open(gateway).await?;
    let models = session
        .call("listing models", |mut agent| async move { agent.list_models(pb::ListModelsRequest {}).await })
        .await?;
    println!("{:<32}  {:<8}  {:<8}  {:>8}  {:<22}  endpoint", "model", "params", "quant", "size", "token ratio");
    for m in &models.models {
        println!(
            "{:<32}  {:<8}  {:<8}  {:>6.1}GB  {:<22}  {}",
            m.name,
            m.parameter_size,
            m.quantization_level,
            m.size_bytes as f64 / 1e9,
            token_ratio(m),
            m.endpoint
        );
    }
    for e in models.endpoints.iter().filter(|e| !e.reachable) {
        eprintln!("prfix: {} did not answer: {}", e.url, e.error);
    }
    Ok(())
}

/// The learned ratio of counted to estimated prompt tokens: `ratio 1.60 (12 answers)`, `-` before
/// the model's first answer.
pub fn token_ratio(model: &pb::Model) -> String {
    if model.token_ratio <= 0.0 || !model.token_ratio.is_finite() {
        return "-".to_owned();
    }
    let answers = if model.token_ratio_samples == 1 { "answer" } else { "answers" };
    format!("ratio {:.2} ({} {answers})", model.token_ratio, model.token_ratio_samples)
}

/// A component's health as `prfix status` prints it, and whether it is serving.
async fn health(session: &Session, service: &str) -> (String, bool) {
    let mut client = HealthClient::new(session.channel());
    match client.check(tonic_health::pb::HealthCheckRequest { service: service.to_owned() }).await {
        Ok(r) => match ServingStatus::try_from(r.into_inner().status) {
            Ok(ServingStatus::Serving) => ("serving".to_owned(), true),
            Ok(other) => (other.as_str_name().to_lowercase().replace('_', " "), false),
            Err(_) => ("unknown".to_owned(), false),
        },
        Err(s) => (format!("down ({})", s.message().lines().next().unwrap_or_default()), false),
    }
}

/// Health of the gateway, each service and each Ollama endpoint with its models. Exit code 1 when a
/// component is not serving (the gateway unreachable is an error: 2), so scripts and probes can
/// rely on it.
pub async fn status(gateway: &str) -> CliResult {
    let session = Session::anonymous(gateway).await?;
    let mut down = Vec::new();
    let (state, serving) = health(&session, "").await;
    println!("gateway  {gateway}  {state}");
    if !serving {
        down.push("gateway".to_owned());
    }
    for (name, service) in [("agent", prfix_proto::service_names::AGENT), ("audit", prfix_proto::service_names::AUDIT)]
    {
        let (state, serving) = health(&session, service).await;
        println!("{name:<8} {service}  {state}");
        if !serving {
            down.push(name.to_owned());
        }
    }
    match Session::open(gateway).await {
        Err(_) => println!("ollama   (log in to see the endpoints: `prfix login`)"),
        Ok(session) => match session.agent().list_models(pb::ListModelsRequest {}).await {
            Ok(r) => {
                let r = r.into_inner();
                for e in &r.endpoints {
                    let state = if e.reachable {
                        format!("up (version {}, {} running)", e.version, e.in_flight)
                    } else {
                        down.push(format!("ollama {}", e.url));
                        format!("down: {}", e.error)
                    };
                    println!("ollama   {}  {state}", e.url);
                    for m in r.models.iter().filter(|m| m.endpoint == e.url) {
                        println!("           {}", m.name);
                    }
                }
            }
            Err(s) => {
                // The agent could not say: its endpoints are unknown, which the agent's own line
                // above already counts when it is down.
                println!("ollama   {}", s.message().lines().next().unwrap_or_default());
            }
        },
    }
    if down.is_empty() { Ok(()) } else { Err(CliError::found(format!("not serving: {}", down.join(", ")))) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_ratio_shows_with_its_answers_or_a_dash_before_any() {
        let model = |ratio: f64, samples: i64| pb::Model {
            token_ratio: ratio,
            token_ratio_samples: samples,
            ..Default::default()
        };
        assert_eq!(token_ratio(&model(1.6, 12)), "ratio 1.60 (12 answers)");
        assert_eq!(token_ratio(&model(0.92, 1)), "ratio 0.92 (1 answer)");
        assert_eq!(token_ratio(&model(0.0, 0)), "-");
        assert_eq!(token_ratio(&model(f64::NAN, 3)), "-");
    }
}
