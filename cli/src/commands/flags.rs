//! `prfix flags` (admins): the flags the agent sees, where each comes from, and its value for a
//! context.

use prfix_proto::agent::v1 as pb;

use crate::error::CliResult;
use crate::session::Session;

/// The context to evaluate the flags for.
pub struct FlagContext {
    /// `--user`.
    pub user: Option<String>,
    /// `--roles`, comma-separated.
    pub roles: Option<String>,
    /// `--repository`.
    pub repository: Option<String>,
    /// `--forge`.
    pub forge: Option<String>,
    /// `--model`.
    pub model: Option<String>,
}

/// Lists the flags as JSON lines (`json`) or a table.
pub async fn list(gateway: &str, context: FlagContext, json: bool) -> CliResult {
    let request = pb::ListFlagsRequest {
        user: context.user.unwrap_or_default(),
        roles: context
            .roles
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(str::to_owned)
            .collect(),
        repository: context.repository.unwrap_or_default(),
        forge: context.forge.unwrap_or_default(),
        model: context.model.unwrap_or_default(),
    };
    let session = Session::open(gateway).await?;
    let flags = session
        .call("listing flags", |mut agent| {
            let request = request.clone();
            async move { agent.list_flags(request).await }
        })
        .await?;
    if json {
        for f in &flags.flags {
            let line = serde_json::json!({
                "flag": f.flag, "source": f.source, "enabled": f.enabled, "variant": f.variant,
                "payload": f.payload, "description": f.description,
            });
            println!("{line}");
        }
        return Ok(());
    }
    println!("flags from {}", flags.provider);
    println!("{:<24}  {:<14}  {:<5}  {:<16}  {:<24}  what", "flag", "source", "on", "variant", "payload");
    for f in &flags.flags {
        println!(
            "{:<24}  {:<14}  {:<5}  {:<16}  {:<24}  {}",
            f.flag,
            f.source,
            if f.enabled { "yes" } else { "no" },
            f.variant,
            if f.payload.is_empty() { "-" } else { f.payload.as_str() },
            f.description
        );
    }
    Ok(())
}
