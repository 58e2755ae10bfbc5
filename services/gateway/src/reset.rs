//! `prfix-gateway --reset-admin-password`: the lost-password procedure of a gateway run on its own.
//!
//! It runs beside the serving gateways, with their settings, and needs what they need to change a
//! user: the database (the new hash and the revocation that ends the user's sessions, which the
//! running gateways and services hear through LISTEN/NOTIFY), the signing keys (the token that
//! appends the audit event) and the audit service. It binds no port.

use std::ffi::OsString;
use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use prfix_auth::revocations::RevocationFeed;
use secrecy::SecretString;

use crate::Settings;
use crate::auth::AuthApi;
use crate::auth::passwords::Passwords;
use crate::auth::store::Store;
use crate::auth::tokens::Issuer;
use crate::ratelimit::Limiter;
use crate::security_audit::SecurityAudit;
use crate::startup::{StartupError, channel, load_keys};

/// The command line of the reset mode.
#[derive(Parser)]
#[command(name = "prfix-gateway", about = "Reset the password of a gateway's user `admin` and end its sessions.")]
struct Args {
    /// TOML configuration file (also `PRFIX_CONFIG`): the settings the gateways run with.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Set a generated password (printed once) on `admin`, enable it, and end its sessions.
    #[arg(long, required = true)]
    reset_admin_password: bool,
    /// Read the new password from standard input instead of generating one.
    #[arg(long)]
    password_stdin: bool,
}

/// Whether `args` asks for the reset mode.
pub fn requested(args: &[OsString]) -> bool {
    args.iter().any(|a| a == "--reset-admin-password")
}

/// Runs the reset mode: 0 with the new password on standard output (when generated), 1 when the reset
/// failed, 2 for bad settings or arguments.
pub async fn main(args: Vec<OsString>) -> ExitCode {
    let args = Args::parse_from(args);
    let settings = match Settings::load(args.config.as_deref()) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("prfix-gateway: {e}");
            return ExitCode::from(2);
        }
    };
    prfix_runtime::telemetry::init(settings.common.log_format, &settings.common.log_level);
    let password = if args.password_stdin {
        let mut line = String::new();
        if let Err(e) = std::io::stdin().lock().read_line(&mut line) {
            eprintln!("prfix-gateway: cannot read the password from standard input: {e}");
            return ExitCode::from(2);
        }
        Some(SecretString::from(line.trim_end_matches(['\n', '\r']).to_owned()))
    } else {
        None
    };
    let generated = password.is_none();
    match reset_admin_password(settings, password).await {
        Ok(password) => {
            if generated {
                println!("{password}");
                eprintln!("prfix-gateway: `admin` has a new password (above, shown once); its sessions ended");
            } else {
                eprintln!("prfix-gateway: `admin` has the new password; its sessions ended");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("prfix-gateway: cannot reset the admin password: {}", prfix_runtime::error::chain(&e));
            ExitCode::FAILURE
        }
    }
}

/// Sets `admin`'s password with `settings` (generated when `password` is `None`) and returns it.
pub async fn reset_admin_password(settings: Settings, password: Option<SecretString>) -> Result<String, StartupError> {
    let (pool, _) = prfix_runtime::db::prepare(&settings.database(), crate::MIGRATIONS).await?;
    let redis = prfix_runtime::redis::connect(&settings.common).await?;
    let revocations = RevocationFeed::start(
        settings.database(),
        Duration::from_millis(settings.common.auth_revocations_max_staleness_ms),
    );
    let issuer = Arc::new(
        Issuer::new(
            load_keys(&settings)?,
            settings.common.auth_issuer.clone(),
            settings.common.auth_audience.clone(),
            Duration::from_secs(settings.gateway.access_token_ttl_secs),
        )
        .with_revocations(revocations.clone()),
    );
    let connect_timeout = Duration::from_millis(settings.gateway.upstream_connect_timeout_ms);
    let audit_channel = channel(&settings.gateway.audit_url, connect_timeout, &settings.common)?;
    let auth = AuthApi {
        store: Store::new(pool),
        passwords: Passwords::new(
            settings.gateway.password_hash_memory_mib,
            Duration::from_millis(settings.gateway.password_hash_queue_ms),
        )
        .map_err(|e| StartupError::Bootstrap(e.to_string()))?,
        issuer: issuer.clone(),
        revocations,
        audit: SecurityAudit::new(audit_channel, issuer),
        limiter: Arc::new(Limiter::new(settings.gateway.limits, redis.clone())),
        login_limits: crate::auth::login_limits::LoginLimits::new(settings.gateway.login_limits, redis),
        refresh_ttl: Duration::from_secs(settings.gateway.refresh_token_ttl_secs),
    };
    auth.reset_password("admin", password).await.map_err(|status| StartupError::Bootstrap(status.message().to_owned()))
}
