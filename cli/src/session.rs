//! A connection to the gateway with the user's credentials: `PRFIX_TOKEN` (an access token or an API
//! key), or what `prfix login` saved, refreshed when it is about to expire.

use std::time::Duration;

use prfix_proto::agent::v1::agent_service_client::AgentServiceClient;
use prfix_proto::audit::v1::audit_service_client::AuditServiceClient;
use prfix_proto::auth::v1 as auth;
use prfix_proto::auth::v1::auth_service_client::AuthServiceClient;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use crate::credentials::{self, Credentials};
use crate::error::{CliError, CliResult};

/// Largest response the CLI accepts (a patch, a long task list).
const MAX_MESSAGE: usize = 64 * 1024 * 1024;

/// Adds the bearer token to every call.
#[derive(Clone)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request.metadata_mut().insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// A channel with credentials.
pub type Authed = InterceptedService<Channel, Bearer>;

/// A connection to the gateway.
pub struct Session {
    /// The gateway's URL.
    pub gateway: String,
    channel: Channel,
    bearer: Bearer,
}

/// Opens a channel to `gateway`; unreachable gateways are said in one line.
pub async fn connect(gateway: &str) -> CliResult<Channel> {
    let endpoint = Endpoint::from_shared(gateway.to_owned())
        .map_err(|_| CliError::new(format!("gateway address `{gateway}` is not a URL (e.g. http://127.0.0.1:8080)")))?
        .connect_timeout(Duration::from_secs(5));
    endpoint.connect().await.map_err(|_| {
        CliError::new(format!(
            "the gateway at {gateway} is unreachable; is prfix running there? (`prfix up` starts one)"
        ))
    })
}

fn bearer(token: &str) -> CliResult<Bearer> {
    let value = format!("Bearer {token}")
        .parse::<MetadataValue<Ascii>>()
        .map_err(|_| CliError::new("the token holds characters a header cannot carry; run `prfix login` again"))?;
    Ok(Bearer(Some(value)))
}

impl Session {
    /// A session without credentials (login, health).
    pub async fn anonymous(gateway: &str) -> CliResult<Self> {
        Ok(Self { gateway: gateway.to_owned(), channel: connect(gateway).await?, bearer: Bearer(None) })
    }

    /// A session with the user's credentials: `PRFIX_TOKEN`, else the saved ones (refreshed when
    /// needed, and saved again). `gateway` is the configured one; saved credentials carry their own.
    pub async fn open(gateway: &str) -> CliResult<Self> {
        if let Some(token) = std::env::var("PRFIX_TOKEN").ok().filter(|t| !t.trim().is_empty()) {
            return Ok(Self {
                gateway: gateway.to_owned(),
                channel: connect(gateway).await?,
                bearer: bearer(token.trim())?,
            });
        }
        let Some(mut saved) = credentials::load()? else {
            return Err(CliError::new("not logged in: run `prfix login` (or set PRFIX_TOKEN to a token or API key)"));
        };
        let channel = connect(&saved.gateway).await?;
        if let Some(key) = saved.api_key.clone() {
            return Ok(Self { gateway: saved.gateway, channel, bearer: bearer(&key)? });
        }
        if saved.needs_refresh(chrono::Utc::now().timestamp()) {
            saved = refresh(&channel, saved).await?;
        }
        let bearer = bearer(&saved.access_token)?;
        Ok(Self { gateway: saved.gateway, channel, bearer })
    }

    /// AgentService.
    pub fn agent(&self) -> AgentServiceClient<Authed> {
        AgentServiceClient::with_interceptor(self.channel.clone(), self.bearer.clone())
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE)
    }

    /// AuthService.
    pub fn auth(&self) -> AuthServiceClient<Authed> {
        AuthServiceClient::with_interceptor(self.channel.clone(), self.bearer.clone())
    }

    /// AuditService.
    pub fn audit(&self) -> AuditServiceClient<Authed> {
        AuditServiceClient::with_interceptor(self.channel.clone(), self.bearer.clone())
            .max_decoding_message_size(MAX_MESSAGE)
    }

    /// The raw channel (health checks).
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// Says a failed call in one line.
    pub fn fail(&self, what: &str, status: &tonic::Status) -> CliError {
        CliError::from_status(what, status, &self.gateway)
    }
}

/// Trades the refresh token for new tokens and saves them.
async fn refresh(channel: &Channel, saved: Credentials) -> CliResult<Credentials> {
    let Some(refresh_token) = saved.refresh_token.clone() else {
        return Err(CliError::new("your login expired: run `prfix login`"));
    };
    let mut client = AuthServiceClient::new(channel.clone());
    let response = client.refresh(auth::RefreshRequest { refresh_token }).await.map_err(|status| {
        if status.code() == tonic::Code::Unavailable {
            CliError::from_status("refreshing your login", &status, &saved.gateway)
        } else {
            CliError::new("your login expired or was revoked: run `prfix login`")
        }
    })?;
    let tokens = response.into_inner().tokens.ok_or_else(|| CliError::new("the gateway sent no tokens on refresh"))?;
    let updated = credentials_from(&saved.gateway, &saved.username, tokens);
    credentials::save(&updated)?;
    Ok(updated)
}

/// Credentials from a login or refresh answer.
pub fn credentials_from(gateway: &str, username: &str, tokens: auth::TokenPair) -> Credentials {
    Credentials {
        gateway: gateway.to_owned(),
        username: username.to_owned(),
        access_token: tokens.access_token,
        refresh_token: Some(tokens.refresh_token).filter(|t| !t.is_empty()),
        access_expires_at: tokens.access_token_expire_time.map_or(0, |t| t.seconds),
        api_key: None,
    }
}
