//! `prfix admin users ...` and `prfix admin keys ...`.

use clap::Subcommand;
use prfix_cli::commands::{admin, password};
use prfix_cli::error::CliResult;

use super::context::settings;

#[derive(Subcommand)]
pub enum AdminCommand {
    /// Users.
    #[command(subcommand)]
    Users(UsersCommand),
    /// API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
}

#[derive(Subcommand)]
pub enum UsersCommand {
    /// List users.
    List,
    /// Create a user; the password is read from standard input.
    Create {
        /// Login name.
        username: String,
        /// Roles, comma-separated: admin, developer, auditor, service.
        #[arg(long, default_value = "developer")]
        roles: String,
    },
    /// Disable a user (their tokens and keys stop working).
    Disable {
        /// Login name.
        username: String,
    },
    /// Enable a disabled user.
    Enable {
        /// Login name.
        username: String,
    },
    /// Set a user's password (their sessions end). Asked twice without echo on a terminal,
    /// otherwise read from the first line of standard input.
    SetPassword {
        /// Login name.
        username: String,
    },
}

#[derive(Subcommand)]
pub enum KeysCommand {
    /// List API keys.
    List {
        /// Include revoked keys.
        #[arg(long)]
        revoked: bool,
    },
    /// Create an API key and print its secret once.
    Create {
        /// A name for the key.
        name: String,
        /// Roles, comma-separated (at most those of the owner).
        #[arg(long, default_value = "developer")]
        roles: String,
        /// The user the key belongs to (admins; default: you).
        #[arg(long)]
        owner: Option<String>,
        /// Days until it expires.
        #[arg(long, value_name = "DAYS")]
        ttl_days: Option<u32>,
    },
    /// Revoke an API key.
    Revoke {
        /// The key id.
        key_id: String,
    },
}

impl AdminCommand {
    pub async fn run(self, gateway: Option<String>) -> CliResult {
        let gateway = settings(gateway)?.gateway;
        match self {
            AdminCommand::Users(command) => match command {
                UsersCommand::List => admin::users_list(&gateway).await,
                UsersCommand::Create { username, roles } => admin::users_create(&gateway, &username, &roles).await,
                UsersCommand::Disable { username } => admin::users_set_disabled(&gateway, &username, true).await,
                UsersCommand::Enable { username } => admin::users_set_disabled(&gateway, &username, false).await,
                UsersCommand::SetPassword { username } => password::set_password(&gateway, &username).await,
            },
            AdminCommand::Keys(command) => match command {
                KeysCommand::List { revoked } => admin::keys_list(&gateway, revoked).await,
                KeysCommand::Create { name, roles, owner, ttl_days } => {
                    admin::keys_create(&gateway, &name, &roles, owner, ttl_days).await
                }
                KeysCommand::Revoke { key_id } => admin::keys_revoke(&gateway, &key_id).await,
            },
        }
    }
}
