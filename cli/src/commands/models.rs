//! `prfix models pull NAME`: pulls a model onto one of the agent's Ollama endpoints through the
//! gateway (admins; audited there), printing Ollama's progress: each status once, and a layer's
//! download in whole percents.

use futures::StreamExt;
use prfix_proto::agent::v1 as pb;

use crate::error::{CliError, CliResult};
use crate::session::Session;

/// Pulls `name` onto `endpoint` (the agent's first when `None`) and prints the progress.
pub async fn pull(gateway: &str, name: &str, endpoint: Option<String>) -> CliResult {
    let session = Session::open(gateway).await?;
    let what = format!("pulling {name}");
    let mut stream = session
        .call(&what, |mut agent| {
            let request =
                pb::PullModelRequest { name: name.to_owned(), endpoint: endpoint.clone().unwrap_or_default() };
            async move { agent.pull_model(request).await }
        })
        .await?;
    let mut last_line = String::new();
    let mut finished = false;
    while let Some(step) = stream.next().await {
        let step = step.map_err(|s| session.fail(&what, &s))?;
        let line = if step.total_bytes > 0 {
            let percent = step.completed_bytes.saturating_mul(100) / step.total_bytes;
            format!("{} {percent}% of {:.1} GB", step.status, step.total_bytes as f64 / 1e9)
        } else {
            step.status.clone()
        };
        if line != last_line {
            println!("{}", crate::report::printable(&line));
            last_line = line;
        }
        if step.status == "success" {
            finished = true;
            println!("{name} is on {}", step.endpoint);
        }
    }
    if !finished {
        return Err(CliError::new(format!("{what}: the stream ended before Ollama said success")));
    }
    Ok(())
}
