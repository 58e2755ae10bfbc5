//! `prfix forge check`: for each forge connection of the agent's settings (`[agent.forges.<name>]`
//! and its token or GitHub App key from the environment, read as the agent reads them), whether it
//! authenticates and which repositories it reaches, so an operator knows before a webhook arrives.

use std::path::Path;

use crate::error::{CliError, CliResult};

/// Most repositories printed per connection; the count is printed in full.
const MAX_PRINTED: usize = 50;

/// Checks every connection; fails (exit 1) when one does not authenticate.
pub async fn check(config: Option<&Path>) -> CliResult {
    let settings =
        prfix_agent::Settings::load(config).map_err(|e| CliError::new(format!("the agent's settings: {e}")))?;
    if settings.agent.forges.is_empty() {
        return Err(CliError::new(
            "no forge connection is configured: add [agent.forges.<name>] to the agent's settings (docs/forges.md)",
        ));
    }
    let forges = prfix_agent::forge::Forges::new(&settings)
        .map_err(|e| CliError::new(format!("the agent's forge connections: {e}")))?;
    let mut failed = Vec::new();
    for (name, connection) in forges.iter() {
        let kind = connection.forge.kind().name();
        let url = settings.agent.forges.get(name).map(|f| f.api_url.as_str()).unwrap_or_default();
        match connection.forge.reach().await {
            Ok(reach) => {
                println!(
                    "{name} ({kind}, {url}): authenticated as {}; reaches {} repositor{}",
                    reach.account,
                    reach.repositories.len(),
                    if reach.repositories.len() == 1 { "y" } else { "ies" }
                );
                for repository in reach.repositories.iter().take(MAX_PRINTED) {
                    println!("  {repository}");
                }
                if reach.repositories.len() > MAX_PRINTED {
                    println!("  … and {} more", reach.repositories.len() - MAX_PRINTED);
                }
            }
            Err(error) => {
                println!("{name} ({kind}, {url}): does not authenticate: {error}");
                failed.push(name.clone());
            }
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(CliError::found(format!("{} of the forge connections failed: {}", failed.len(), failed.join(", "))))
    }
}
