//! A connection to the gateway with the user's credentials: `PRFIX_TOKEN` (an access token or an API
//! key), or what `prfix login` saved, refreshed when it is about to expire.
//!
//! A login's access token lives minutes; a review on a CPU-only host can take longer. So the session
//! keeps the saved login and renews the token before each call once it nears its expiry (and once
//! more when the gateway still answers UNAUTHENTICATED), saving the new tokens, so a long wait
//! never ends with "run `prfix login`".

use std::future::Future;
use std::sync::{Arc, RwLock};
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

/// ` (profile NAME)` when a named profile is in use, for messages.
fn profile_said() -> String {
    credentials::profile().map(|p| format!(" (profile {p})")).unwrap_or_default()
}

/// ` --profile NAME` when a named profile is in use, for the commands messages suggest.
fn profile_flag() -> String {
    credentials::profile().map(|p| format!(" --profile {p}")).unwrap_or_default()
}

/// Largest response the CLI accepts (a patch, a long task list).
const MAX_MESSAGE: usize = 64 * 1024 * 1024;

/// Adds the bearer token to every call. Clones share the token, so clients made before a refresh
/// send the new one.
#[derive(Clone)]
pub struct Bearer(Arc<RwLock<Option<MetadataValue<Ascii>>>>);

impl Bearer {
    fn new(value: Option<MetadataValue<Ascii>>) -> Self {
        Self(Arc::new(RwLock::new(value)))
    }

    fn replace(&self, value: MetadataValue<Ascii>) {
        if let Ok(mut current) = self.0.write() {
            *current = Some(value);
        }
    }
}

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let value = self.0.read().ok().and_then(|value| value.clone());
        if let Some(value) = value {
            request.metadata_mut().insert("authorization", value);
        }
        Ok(request)
    }
}

/// A saved login the session renews: its credentials and, once the session has renewed them, the
/// lifetime the gateway gives its access tokens.
struct Login {
    credentials: Credentials,
    lifetime: Option<i64>,
}

/// A channel with credentials.
pub type Authed = InterceptedService<Channel, Bearer>;

/// A connection to the gateway.
pub struct Session {
    /// The gateway's URL.
    pub gateway: String,
    channel: Channel,
    bearer: Bearer,
    /// The saved login, when the token is one that can be refreshed (not `PRFIX_TOKEN`, not an API
    /// key). A lock, because a refresh token is good for one refresh only.
    login: Option<tokio::sync::Mutex<Login>>,
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

fn header(token: &str) -> CliResult<MetadataValue<Ascii>> {
    format!("Bearer {token}")
        .parse::<MetadataValue<Ascii>>()
        .map_err(|_| CliError::new("the token holds characters a header cannot carry; run `prfix login` again"))
}

fn bearer(token: &str) -> CliResult<Bearer> {
    Ok(Bearer::new(Some(header(token)?)))
}

/// Seconds before expiry at which a token of `lifetime` seconds is renewed: a minute, or a third
/// of the lifetime for tokens that live less than three minutes.
fn refresh_margin(lifetime: Option<i64>) -> i64 {
    match lifetime {
        Some(lifetime) if lifetime > 0 => (lifetime / 3).clamp(1, 60),
        _ => 60,
    }
}

impl Session {
    /// A session without credentials (login, health).
    pub async fn anonymous(gateway: &str) -> CliResult<Self> {
        Ok(Self {
            gateway: gateway.to_owned(),
            channel: connect(gateway).await?,
            bearer: Bearer::new(None),
            login: None,
        })
    }

    /// A session with the user's credentials: `PRFIX_TOKEN`, else the saved ones of the profile in
    /// use (refreshed when needed, and saved again). `gateway` is the one the command resolved
    /// ([`crate::config::resolve_gateway`]); saved credentials are sent only to the gateway they
    /// came from, never to another one named with `--gateway` or `PRFIX_GATEWAY`.
    pub async fn open(gateway: &str) -> CliResult<Self> {
        if let Some(token) = std::env::var("PRFIX_TOKEN").ok().filter(|t| !t.trim().is_empty()) {
            return Ok(Self {
                gateway: gateway.to_owned(),
                channel: connect(gateway).await?,
                bearer: bearer(token.trim())?,
                login: None,
            });
        }
        let Some(mut saved) = credentials::load()? else {
            return Err(CliError::new(format!(
                "not logged in{}: run `prfix login{}` (or set PRFIX_TOKEN to a token or API key)",
                profile_said(),
                profile_flag()
            )));
        };
        if saved.gateway.trim_end_matches('/') != gateway.trim_end_matches('/') {
            return Err(CliError::new(format!(
                "not logged in to {gateway}{}: the saved login is for {}; run `prfix login --gateway {gateway}` \
                 (add `--profile NAME` to keep both logins)",
                profile_said(),
                saved.gateway
            )));
        }
        let channel = connect(&saved.gateway).await?;
        if let Some(key) = saved.api_key.clone() {
            return Ok(Self { gateway: saved.gateway, channel, bearer: bearer(&key)?, login: None });
        }
        let mut lifetime = None;
        let now = chrono::Utc::now().timestamp();
        if saved.needs_refresh(now) {
            saved = refresh(&channel, saved).await?;
            lifetime = Some(saved.access_expires_at - now);
        }
        let bearer = bearer(&saved.access_token)?;
        let gateway = saved.gateway.clone();
        let login = Some(tokio::sync::Mutex::new(Login { credentials: saved, lifetime }));
        Ok(Self { gateway, channel, bearer, login })
    }

    /// Whether this session runs on the saved password login (not `PRFIX_TOKEN`, not an API key).
    pub fn uses_saved_login(&self) -> bool {
        self.login.is_some()
    }

    /// Renews the access token when it expires soon (or, with `force`, in any case: the gateway
    /// refused it), and sends the new one from then on. `Ok(false)` when there is nothing to renew
    /// (`PRFIX_TOKEN`, an API key) or it did not need renewing.
    pub async fn renew(&self, force: bool) -> Result<bool, RenewError> {
        let Some(login) = &self.login else {
            return Ok(false);
        };
        let mut login = login.lock().await;
        let now = chrono::Utc::now().timestamp();
        let margin = refresh_margin(login.lifetime);
        if !force && login.credentials.access_expires_at > now.saturating_add(margin) {
            return Ok(false);
        }
        // Another prfix of this user may have renewed the saved login meanwhile (which spent the
        // refresh token this session holds): take its tokens when they are newer and still good.
        if let Ok(Some(saved)) = credentials::load()
            && saved.gateway == login.credentials.gateway
            && saved.access_token != login.credentials.access_token
            && saved.access_expires_at > now.saturating_add(margin)
        {
            self.bearer.replace(header(&saved.access_token).map_err(|error| RenewError { error, unreachable: false })?);
            login.credentials = saved;
            return Ok(true);
        }
        let renewed = refresh(&self.channel, login.credentials.clone()).await?;
        self.bearer.replace(header(&renewed.access_token).map_err(|error| RenewError { error, unreachable: false })?);
        login.lifetime = Some(renewed.access_expires_at - now);
        login.credentials = renewed;
        Ok(true)
    }

    /// Calls the agent with a fresh token: renewed first when it expires soon, and the call made
    /// once more after a renewal when the gateway answers UNAUTHENTICATED. `what` names the call in
    /// the error.
    pub async fn call<T, F, Fut>(&self, what: &str, mut call: F) -> CliResult<T>
    where
        F: FnMut(AgentServiceClient<Authed>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        self.renew(false).await?;
        match call(self.agent()).await {
            Ok(response) => Ok(response.into_inner()),
            Err(status) if status.code() == tonic::Code::Unauthenticated && self.renew(true).await? => {
                call(self.agent()).await.map(tonic::Response::into_inner).map_err(|s| self.fail(what, &s))
            }
            Err(status) => Err(self.fail(what, &status)),
        }
    }

    /// Like [`Session::call`], but a RESOURCE_EXHAUSTED that carries the gateway's `retry-after-ms`
    /// (a rate limit, not a quota of active tasks) is waited out and the call made again, at most
    /// `MAX_RATE_LIMIT_WAITS` times, saying so on standard error: for commands that create many tasks
    /// in a row (`prfix eval`, the rounds of `prfix fix`).
    pub async fn call_patiently<T, F, Fut>(&self, what: &str, mut call: F) -> CliResult<T>
    where
        F: FnMut(AgentServiceClient<Authed>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let mut waits = 0;
        loop {
            self.renew(false).await?;
            let status = match call(self.agent()).await {
                Ok(response) => return Ok(response.into_inner()),
                Err(status) if status.code() == tonic::Code::Unauthenticated && self.renew(true).await? => {
                    match call(self.agent()).await {
                        Ok(response) => return Ok(response.into_inner()),
                        Err(status) => status,
                    }
                }
                Err(status) => status,
            };
            match rate_limit_wait(&status) {
                Some(wait) if waits < MAX_RATE_LIMIT_WAITS => {
                    waits += 1;
                    eprintln!(
                        "prfix: {what}: rate limited by the gateway; trying again in {:.1} s",
                        wait.as_secs_f64()
                    );
                    tokio::time::sleep(wait).await;
                }
                _ => return Err(self.fail(what, &status)),
            }
        }
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

/// Rate-limit waits [`Session::call_patiently`] takes before giving up.
const MAX_RATE_LIMIT_WAITS: u32 = 60;

/// How long a rate-limited call asks to wait (its `retry-after-ms`, at most a minute); `None` for
/// any other status.
pub fn rate_limit_wait(status: &tonic::Status) -> Option<std::time::Duration> {
    if status.code() != tonic::Code::ResourceExhausted {
        return None;
    }
    let ms: u64 = status.metadata().get("retry-after-ms")?.to_str().ok()?.parse().ok()?;
    Some(std::time::Duration::from_millis(ms.clamp(1, 60_000)))
}

/// Trades the refresh token for new tokens and saves them.
async fn refresh(channel: &Channel, saved: Credentials) -> Result<Credentials, RenewError> {
    let refused = |message: &str| RenewError { error: CliError::new(message), unreachable: false };
    let Some(refresh_token) = saved.refresh_token.clone() else {
        return Err(refused("your login expired: run `prfix login`"));
    };
    let mut client = AuthServiceClient::new(channel.clone());
    let response = client.refresh(auth::RefreshRequest { refresh_token }).await.map_err(|status| {
        if status.code() == tonic::Code::Unavailable {
            RenewError {
                error: CliError::from_status("refreshing your login", &status, &saved.gateway),
                unreachable: true,
            }
        } else {
            refused("your login expired or was revoked: run `prfix login`")
        }
    })?;
    let tokens = response.into_inner().tokens.ok_or_else(|| refused("the gateway sent no tokens on refresh"))?;
    let updated = credentials_from(&saved.gateway, &saved.username, tokens);
    credentials::save(&updated).map_err(|e| RenewError { error: e.into(), unreachable: false })?;
    Ok(updated)
}

/// Why an access token could not be renewed.
#[derive(Debug)]
pub struct RenewError {
    /// What to tell the user.
    pub error: CliError,
    /// The gateway could not be reached (worth trying again later), rather than refusing the login.
    pub unreachable: bool,
}

impl From<RenewError> for CliError {
    fn from(e: RenewError) -> Self {
        e.error
    }
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

#[cfg(test)]
mod tests {
    use super::refresh_margin;

    #[test]
    fn tokens_are_renewed_a_minute_early_or_a_third_of_a_short_lifetime_early() {
        assert_eq!(refresh_margin(None), 60);
        assert_eq!(refresh_margin(Some(900)), 60);
        assert_eq!(refresh_margin(Some(120)), 40);
        assert_eq!(refresh_margin(Some(20)), 6);
        assert_eq!(refresh_margin(Some(2)), 1);
        assert_eq!(refresh_margin(Some(0)), 60, "an unknown lifetime keeps the minute");
    }
}
