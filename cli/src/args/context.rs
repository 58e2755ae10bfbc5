//! What a command runs against: the configuration (with the repository's `.prfix.toml` as of the
//! change's base where there is a checkout) and the gateway it talks to.

use prfix_cli::error::{CliError, CliResult};
use prfix_cli::{config, git};

/// The checkout of the current directory and the configuration. The repository's `.prfix.toml`
/// is read as of the base of the change (`--base`, else the default branch) where there is one, so
/// the change under review cannot loosen its own review (ignore everything, lower `fail_on`).
pub fn repository(gateway: Option<String>, base: Option<&str>) -> CliResult<(config::Config, git::Checkout)> {
    let cwd = std::env::current_dir().map_err(|e| CliError::new(format!("cannot read the current directory: {e}")))?;
    let checkout = git::Checkout::discover(&cwd)?;
    let target = match base {
        Some(b) => Some(b.to_owned()),
        None => checkout.default_branch().ok(),
    };
    let at_base = target.as_deref().and_then(|t| {
        let rev = checkout.merge_base(t, "HEAD").ok()?;
        Some((t.to_owned(), rev))
    });
    let mut config = match at_base {
        Some((name, rev)) => {
            let output = std::process::Command::new("git")
                .args(["show", &format!("{rev}:.prfix.toml")])
                .current_dir(checkout.root())
                .output()
                .map_err(|e| CliError::new(format!("cannot run git: {e}")))?;
            let text = output.status.success().then(|| String::from_utf8_lossy(&output.stdout).into_owned());
            let local = std::fs::read_to_string(checkout.root().join(".prfix.toml")).ok();
            if local.is_some() && local != text {
                eprintln!(
                    "prfix: using .prfix.toml as of {name}; this checkout's changes to it take effect once they are merged"
                );
            }
            let shown = std::path::PathBuf::from(format!("{name}:.prfix.toml"));
            config::load_with_repo_text(text.as_deref().map(|t| (t, shown.as_path())))?
        }
        None => config::load(Some(checkout.root()))?,
    };
    config.gateway = gateway_for(gateway.as_deref(), &config);
    Ok((config, checkout))
}

/// The configuration without a repository (commands that need none).
pub fn settings(gateway: Option<String>) -> CliResult<config::Config> {
    let root = std::env::current_dir().ok().and_then(|cwd| git::Checkout::discover(&cwd).ok());
    let mut config = config::load(root.as_ref().map(|c| c.root()))?;
    config.gateway = gateway_for(gateway.as_deref(), &config);
    Ok(config)
}

/// The gateway of this command ([`config::resolve_gateway`]): `--gateway`/`PRFIX_GATEWAY`, else the
/// profile's saved login's, else the configured one. A damaged credentials file is said by the
/// command that reads it, not here.
pub fn gateway_for(explicit: Option<&str>, config: &config::Config) -> String {
    let saved = prfix_cli::credentials::load().ok().flatten().map(|c| c.gateway);
    config::resolve_gateway(explicit, saved.as_deref(), &config.gateway)
}
