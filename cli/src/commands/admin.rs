//! `prfix admin users|keys ...`.

use prfix_proto::auth::v1 as auth;
use prfix_proto::options::v1::Role;

use super::time;
use crate::error::{CliError, CliResult};
use crate::session::Session;

/// `admin,developer` as role numbers.
pub fn parse_roles(text: &str) -> CliResult<Vec<i32>> {
    text.split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(|r| {
            Role::from_str_name(&format!("ROLE_{}", r.to_ascii_uppercase()))
                .filter(|role| *role != Role::Unspecified)
                .map(|role| role as i32)
                .ok_or_else(|| CliError::new(format!("role `{r}` is not one of admin, developer, auditor, service")))
        })
        .collect()
}

fn role_names(roles: &[i32]) -> String {
    roles
        .iter()
        .map(|r| {
            Role::try_from(*r).map(|r| r.as_str_name().trim_start_matches("ROLE_").to_lowercase()).unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Lists users.
pub async fn users_list(gateway: &str) -> CliResult {
    let session = Session::open(gateway).await?;
    let users = session
        .auth()
        .list_users(auth::ListUsersRequest { page_size: 500, page_token: String::new() })
        .await
        .map_err(|s| session.fail("listing users", &s))?
        .into_inner();
    println!("{:<24}  {:<28}  {:<8}  last login", "user", "roles", "status");
    for u in &users.users {
        println!(
            "{:<24}  {:<28}  {:<8}  {}",
            u.username,
            role_names(&u.roles),
            if u.disabled { "disabled" } else { "active" },
            time(u.last_login_time.as_ref())
        );
    }
    Ok(())
}

/// Creates a user; the password comes from standard input.
pub async fn users_create(gateway: &str, username: &str, roles: &str) -> CliResult {
    let roles = parse_roles(roles)?;
    let mut password = String::new();
    std::io::stdin().read_line(&mut password).map_err(|e| CliError::new(format!("cannot read the password: {e}")))?;
    let password = password.trim_end_matches(['\n', '\r']).to_owned();
    if password.is_empty() {
        return Err(CliError::new(
            "no password on standard input (e.g. `echo \"$PW\" | prfix admin users create ...`)",
        ));
    }
    let session = Session::open(gateway).await?;
    session
        .auth()
        .create_user(auth::CreateUserRequest { username: username.to_owned(), password, roles })
        .await
        .map_err(|s| session.fail("creating the user", &s))?;
    println!("created user {username}");
    Ok(())
}

/// Enables or disables a user.
pub async fn users_set_disabled(gateway: &str, username: &str, disabled: bool) -> CliResult {
    let session = Session::open(gateway).await?;
    session
        .auth()
        .update_user(auth::UpdateUserRequest {
            username: username.to_owned(),
            disabled,
            update_mask: Some(prost_types::FieldMask { paths: vec!["disabled".to_owned()] }),
            ..Default::default()
        })
        .await
        .map_err(|s| session.fail("updating the user", &s))?;
    println!("user {username} is {}", if disabled { "disabled" } else { "enabled" });
    Ok(())
}

/// Lists API keys (the caller's; all for admins).
pub async fn keys_list(gateway: &str, include_revoked: bool) -> CliResult {
    let session = Session::open(gateway).await?;
    let keys = session
        .auth()
        .list_api_keys(auth::ListApiKeysRequest { page_size: 500, page_token: String::new(), include_revoked })
        .await
        .map_err(|s| session.fail("listing API keys", &s))?
        .into_inner();
    println!("{:<24}  {:<20}  {:<16}  {:<20}  {:<19}  revoked", "key", "name", "owner", "roles", "expires");
    for k in &keys.api_keys {
        println!(
            "{:<24}  {:<20}  {:<16}  {:<20}  {:<19}  {}",
            k.key_id,
            k.name,
            k.owner,
            role_names(&k.roles),
            time(k.expire_time.as_ref()),
            time(k.revoke_time.as_ref())
        );
    }
    Ok(())
}

/// Creates an API key and prints its secret once.
pub async fn keys_create(
    gateway: &str,
    name: &str,
    roles: &str,
    owner: Option<String>,
    ttl_days: Option<u32>,
) -> CliResult {
    let roles = parse_roles(roles)?;
    let session = Session::open(gateway).await?;
    let created = session
        .auth()
        .create_api_key(auth::CreateApiKeyRequest {
            name: name.to_owned(),
            roles,
            ttl: ttl_days.map(|d| prost_types::Duration { seconds: i64::from(d) * 86_400, nanos: 0 }),
            owner: owner.unwrap_or_default(),
        })
        .await
        .map_err(|s| session.fail("creating the API key", &s))?
        .into_inner();
    let id = created.api_key.map(|k| k.key_id).unwrap_or_default();
    eprintln!("created API key {id}; its secret is shown once:");
    println!("{}", created.secret);
    Ok(())
}

/// Revokes an API key.
pub async fn keys_revoke(gateway: &str, key_id: &str) -> CliResult {
    let session = Session::open(gateway).await?;
    session
        .auth()
        .revoke_api_key(auth::RevokeApiKeyRequest { key_id: key_id.to_owned() })
        .await
        .map_err(|s| session.fail("revoking the API key", &s))?;
    println!("revoked API key {key_id}");
    Ok(())
}
