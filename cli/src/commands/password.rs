//! `prfix passwd` and `prfix admin users set-password`: reading passwords without echo on a terminal,
//! or from standard input for scripts, and sending them to the gateway.

use std::io::{BufRead, IsTerminal};

use prfix_proto::auth::v1 as auth;

use crate::credentials;
use crate::error::{CliError, CliResult};
use crate::session::{self, Session};

/// One line of standard input (without its line ending); an empty line or none is an error naming
/// `what`.
fn stdin_line(what: &str) -> CliResult<String> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).map_err(|e| CliError::new(format!("cannot read {what}: {e}")))?;
    let line = line.trim_end_matches(['\n', '\r']).to_owned();
    if line.is_empty() {
        return Err(CliError::new(format!("no {what} on standard input")));
    }
    Ok(line)
}

/// A password typed without echo after `prompt`.
fn prompt(prompt: &str) -> CliResult<String> {
    rpassword::prompt_password(prompt).map_err(|e| CliError::new(format!("cannot read the password: {e}")))
}

/// A new password: typed twice without echo on a terminal (both must match), else the next line of
/// standard input.
fn new_password(interactive: bool, for_whom: &str) -> CliResult<String> {
    if !interactive {
        return stdin_line("new password");
    }
    let first = prompt(&format!("new password for {for_whom}: "))?;
    let again = prompt(&format!("new password for {for_whom} again: "))?;
    if first != again {
        return Err(CliError::new("the two new passwords differ; nothing was changed"));
    }
    Ok(first)
}

/// Says a refused password change in one line.
fn refused(what: &str, status: &tonic::Status, session: &Session) -> CliError {
    match status.code() {
        tonic::Code::InvalidArgument | tonic::Code::PermissionDenied | tonic::Code::NotFound => {
            CliError::new(format!("{what}: {}; nothing was changed", status.message()))
        }
        _ => session.fail(what, status),
    }
}

/// `prfix passwd`: changes the caller's own password and keeps them logged in with the new tokens
/// the gateway sends (every other session of theirs ends).
pub async fn passwd(gateway: &str) -> CliResult {
    let session = Session::open(gateway).await?;
    let interactive = std::io::stdin().is_terminal();
    let current_password = if interactive { prompt("current password: ")? } else { stdin_line("current password")? };
    let new_password = new_password(interactive, "you")?;
    let response = session
        .auth()
        .change_password(auth::ChangePasswordRequest { current_password, new_password })
        .await
        .map_err(|s| refused("changing your password", &s, &session))?
        .into_inner();
    let tokens = response.tokens.ok_or_else(|| CliError::new("the gateway sent no tokens after the change"))?;
    match credentials::load()? {
        Some(saved) if session.uses_saved_login() && saved.api_key.is_none() && saved.gateway == session.gateway => {
            credentials::save(&session::credentials_from(&saved.gateway, &saved.username, tokens))?;
            println!("password changed; your other sessions ended (this login goes on)");
        }
        _ => println!("password changed; your sessions ended: run `prfix login` with the new password"),
    }
    Ok(())
}

/// `prfix admin users set-password USER`: sets another user's password (admins); their sessions end.
pub async fn set_password(gateway: &str, username: &str) -> CliResult {
    let interactive = std::io::stdin().is_terminal();
    let password = new_password(interactive, username)?;
    let session = Session::open(gateway).await?;
    session
        .auth()
        .update_user(auth::UpdateUserRequest {
            username: username.to_owned(),
            password,
            update_mask: Some(prost_types::FieldMask { paths: vec!["password".to_owned()] }),
            ..Default::default()
        })
        .await
        .map_err(|s| refused("setting the password", &s, &session))?;
    println!("user {username} has a new password; their sessions ended");
    Ok(())
}
