//! `prfix login`, `prfix logout`, `prfix whoami`.

use std::io::{BufRead, IsTerminal, Write};

use prfix_proto::auth::v1 as auth;

use crate::credentials::{self, Credentials};
use crate::error::{CliError, CliResult};
use crate::session::{self, Session};

/// How `prfix login` gets its secret.
pub struct LoginArgs {
    /// The gateway.
    pub gateway: String,
    /// User name (prompted when missing on a terminal).
    pub username: Option<String>,
    /// Read the password from standard input instead of prompting.
    pub password_stdin: bool,
    /// An API key instead of a password (CI).
    pub api_key: Option<String>,
}

fn read_stdin_line(what: &str) -> CliResult<String> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).map_err(|e| CliError::new(format!("cannot read {what}: {e}")))?;
    let line = line.trim_end_matches(['\n', '\r']).to_owned();
    if line.is_empty() {
        return Err(CliError::new(format!("no {what} on standard input")));
    }
    Ok(line)
}

fn role_names(roles: &[i32]) -> String {
    let names: Vec<String> = roles
        .iter()
        .map(|r| {
            prfix_proto::options::v1::Role::try_from(*r)
                .map(|r| r.as_str_name().trim_start_matches("ROLE_").to_lowercase())
                .unwrap_or_else(|_| r.to_string())
        })
        .collect();
    if names.is_empty() { "no roles".to_owned() } else { names.join(", ") }
}

/// Logs in and keeps the tokens (0600) in the user's config directory.
pub async fn login(args: LoginArgs) -> CliResult {
    let anonymous = Session::anonymous(&args.gateway).await?;
    if let Some(key) = args.api_key {
        let key = if key == "-" { read_stdin_line("API key")? } else { key };
        let mut client = prfix_proto::auth::v1::auth_service_client::AuthServiceClient::with_interceptor(
            anonymous.channel(),
            bearer_for(&key)?,
        );
        let me = client
            .who_am_i(auth::WhoAmIRequest {})
            .await
            .map_err(|s| CliError::from_status("the API key was refused", &s, &args.gateway))?
            .into_inner();
        credentials::save(&Credentials {
            gateway: args.gateway.clone(),
            username: me.subject.clone(),
            access_token: String::new(),
            refresh_token: None,
            access_expires_at: 0,
            api_key: Some(key),
        })?;
        println!("logged in to {} as {} with an API key ({})", args.gateway, me.subject, role_names(&me.roles));
        return Ok(());
    }
    let interactive = std::io::stdin().is_terminal();
    let username = match args.username {
        Some(u) => u,
        None if interactive => {
            eprint!("user name: ");
            let _ = std::io::stderr().flush();
            read_stdin_line("user name")?
        }
        None => return Err(CliError::new("no user name: pass --username (or --api-key for CI)")),
    };
    let password = if args.password_stdin || !interactive {
        read_stdin_line("password")?
    } else {
        rpassword::prompt_password(format!("password for {username}: "))
            .map_err(|e| CliError::new(format!("cannot read the password: {e}")))?
    };
    let response = anonymous
        .auth()
        .login(auth::LoginRequest { username: username.clone(), password })
        .await
        .map_err(|s| match s.code() {
            tonic::Code::Unauthenticated => CliError::new("login refused: wrong user name or password"),
            _ => anonymous.fail("login", &s),
        })?
        .into_inner();
    let tokens = response.tokens.ok_or_else(|| CliError::new("the gateway sent no tokens"))?;
    credentials::save(&session::credentials_from(&args.gateway, &username, tokens))?;
    let roles = response.user.map(|u| role_names(&u.roles)).unwrap_or_default();
    println!("logged in to {} as {username} ({roles})", args.gateway);
    Ok(())
}

fn bearer_for(token: &str) -> CliResult<impl tonic::service::Interceptor + Clone + use<>> {
    let value: tonic::metadata::MetadataValue<tonic::metadata::Ascii> = format!("Bearer {token}")
        .parse()
        .map_err(|_| CliError::new("the API key holds characters a header cannot carry"))?;
    Ok(move |mut request: tonic::Request<()>| {
        request.metadata_mut().insert("authorization", value.clone());
        Ok(request)
    })
}

/// Revokes the session at the gateway (best effort) and forgets the tokens.
pub async fn logout() -> CliResult {
    let Some(saved) = credentials::load()? else {
        println!("not logged in");
        return Ok(());
    };
    if let Some(refresh_token) = saved.refresh_token.clone()
        && let Ok(session) = Session::open(&saved.gateway).await
        && let Err(status) = session.auth().logout(auth::LogoutRequest { refresh_token }).await
    {
        eprintln!(
            "prfix: the gateway did not confirm the logout ({}); the tokens are forgotten here",
            status.message()
        );
    }
    credentials::delete()?;
    println!("logged out of {}", saved.gateway);
    Ok(())
}

/// Who the gateway takes the caller for. When the gateway cannot be reached, the saved login is
/// shown instead, saying that it is what was saved and not confirmed (and the exit code is 2).
pub async fn whoami(gateway: &str) -> CliResult {
    if let Err(unreachable) = session::connect(gateway).await {
        let saved = credentials::load()?.filter(|c| c.gateway.trim_end_matches('/') == gateway.trim_end_matches('/'));
        let Some(saved) = saved else {
            return Err(unreachable);
        };
        let how = if saved.api_key.is_some() { "an API key" } else { "a password login" };
        let profile = credentials::profile().map(|p| format!(", profile {p}")).unwrap_or_default();
        println!(
            "{} via {how} at {} (saved login{profile}; not confirmed: the gateway is down)",
            saved.username, saved.gateway
        );
        return Err(CliError::new(format!(
            "the gateway at {gateway} is unreachable: the identity above is the saved login, not checked by the gateway"
        )));
    }
    let session = Session::open(gateway).await?;
    let me =
        session.auth().who_am_i(auth::WhoAmIRequest {}).await.map_err(|s| session.fail("whoami", &s))?.into_inner();
    let kind = auth::PrincipalKind::try_from(me.kind)
        .map(|k| k.as_str_name().trim_start_matches("PRINCIPAL_KIND_").to_lowercase().replace('_', " "))
        .unwrap_or_default();
    let expires = me
        .expire_time
        .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, 0))
        .map(|t| format!(", expires {}", t.format("%Y-%m-%d %H:%M:%S UTC")))
        .unwrap_or_default();
    println!("{} ({}) via {kind} at {}{expires}", me.subject, role_names(&me.roles), session.gateway);
    Ok(())
}

/// `prfix profiles`: every saved login, its gateway and user; `*` marks the profile in use.
pub fn profiles() -> CliResult {
    let all = credentials::all_profiles()?;
    if all.is_empty() {
        println!("no saved login: run `prfix login` (add `--profile NAME` to keep several)");
        return Ok(());
    }
    let current = credentials::profile();
    println!("  {:<20}  {:<40}  user", "profile", "gateway");
    for (name, saved) in &all {
        let mark = if name.as_deref() == current { '*' } else { ' ' };
        let how = if saved.api_key.is_some() { " (API key)" } else { "" };
        println!(
            "{mark} {:<20}  {:<40}  {}{how}",
            name.as_deref().unwrap_or("(default)"),
            saved.gateway,
            saved.username
        );
    }
    Ok(())
}
