//! `spawn_app()`: audit, agent and gateway in process on port 0, wired to each other, a fresh
//! database, a fresh Redis key prefix and a fake Ollama; typed clients reach them through the
//! gateway, as users do.

use std::net::SocketAddr;

use prfix_proto::agent::v1::agent_service_client::AgentServiceClient;
use prfix_proto::audit::v1::audit_service_client::AuditServiceClient;
use prfix_proto::auth::v1::auth_service_client::AuthServiceClient;
use tonic::service::interceptor::InterceptedService;

use crate::auth::{ADMIN_PASSWORD, Bearer, keys, operator_token};
use prfix_runtime::settings::{CommonSettings, LogFormat};
use prfix_runtime::shutdown::CancellationToken;
use secrecy::SecretString;
use tokio::task::JoinHandle;
use tonic::transport::Channel;
use tonic_health::pb::health_client::HealthClient;

use crate::db::TestDatabase;
use crate::fake_ollama::FakeOllama;

/// The loopback address on a port the OS picks.
pub const ANY_PORT: ([u8; 4], u16) = ([127, 0, 0, 1], 0);

/// A service running in the test process.
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: CancellationToken,
    handle: Option<JoinHandle<()>>,
}

impl Running {
    /// Kills the service as a crash would: its future is dropped mid-work, nothing is handed back.
    pub async fn kill(&mut self) {
        if let Some(handle) = self.handle.take() {
            handle.abort();
            let _ = handle.await;
        }
    }

    /// Stops the service (drain included) and waits until its listener is closed.
    pub async fn stop(&mut self) {
        self.stop.cancel();
        if let Some(handle) = self.handle.take() {
            let _ = handle.await;
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Runs a built service in the background: `serve` receives the token that stops it.
pub fn run<F, E>(addr: SocketAddr, serve: impl FnOnce(CancellationToken) -> F) -> Running
where
    F: std::future::Future<Output = Result<(), E>> + Send + 'static,
    E: std::error::Error + Send + 'static,
{
    let stop = CancellationToken::new();
    let future = serve(stop.clone());
    let handle = tokio::spawn(async move {
        if let Err(e) = future.await {
            panic!("service at {addr} failed: {}", prfix_runtime::error::chain(&e));
        }
    });
    Running { addr, stop, handle: Some(handle) }
}

/// The test Redis: `PRFIX_TEST_REDIS_URL`, `redis://127.0.0.1:6379` by default.
pub fn redis_url() -> String {
    std::env::var("PRFIX_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// Settings shared by the services of one test.
pub fn common_settings(db: &TestDatabase, redis_prefix: &str, ollama_url: &str) -> CommonSettings {
    CommonSettings {
        database_url: db.secret_url(),
        redis_url: Some(SecretString::from(redis_url())),
        redis_key_prefix: redis_prefix.to_owned(),
        ollama_url: ollama_url.to_owned(),
        log_format: LogFormat::Pretty,
        log_level: "warn".to_owned(),
        auth_jwks_file: Some(keys().jwks_file.clone()),
        ..CommonSettings::default()
    }
}

/// Audit settings on a free port.
pub fn audit_settings(common: &CommonSettings) -> prfix_audit::Settings {
    let mut s = prfix_audit::Settings { common: common.clone(), ..Default::default() };
    s.audit.listen = ANY_PORT.into();
    s.audit.admin_listen = ANY_PORT.into();
    s.audit.database_pool_size = 4;
    s.audit.signing_key_file = Some(crate::auth::audit_key().pem_file.clone());
    s
}

/// Agent settings on a free port.
pub fn agent_settings(common: &CommonSettings) -> prfix_agent::Settings {
    let mut s = prfix_agent::Settings { common: common.clone(), ..Default::default() };
    s.agent.listen = ANY_PORT.into();
    s.agent.admin_listen = ANY_PORT.into();
    s.agent.database_pool_size = 4;
    s
}

/// Gateway settings on a free port, forwarding to the given services.
pub fn gateway_settings(common: &CommonSettings, agent: SocketAddr, audit: SocketAddr) -> prfix_gateway::Settings {
    let mut s = prfix_gateway::Settings { common: common.clone(), ..Default::default() };
    s.gateway.listen = ANY_PORT.into();
    s.gateway.admin_listen = ANY_PORT.into();
    s.gateway.agent_url = format!("http://{agent}");
    s.gateway.audit_url = format!("http://{audit}");
    s.gateway.database_pool_size = 2;
    s.gateway.signing_key_files = vec![keys().pem_file.clone()];
    // Tests log in often from one address; the rate-limit tests set their own limits.
    s.gateway.limits.strict = prfix_gateway::ratelimit::Quota { per_minute: 6_000, burst: 200 };
    s.bootstrap_admin_password = Some(SecretString::from(ADMIN_PASSWORD));
    s
}

/// The admin (`/metrics`) addresses of the services.
#[derive(Debug, Clone, Copy)]
pub struct AdminAddrs {
    /// The gateway's.
    pub gateway: SocketAddr,
    /// The agent's.
    pub agent: SocketAddr,
    /// The audit service's.
    pub audit: SocketAddr,
}

/// The running system of one test.
pub struct TestApp {
    /// The gateway (the public endpoint).
    pub gateway: Running,
    /// The agent.
    pub agent: Running,
    /// The audit service.
    pub audit: Running,
    /// The fake Ollama the agent talks to.
    pub ollama: FakeOllama,
    /// The Redis key prefix of this test.
    pub redis_prefix: String,
    /// A channel to the gateway.
    pub channel: Channel,
    /// The shared settings the services were started with.
    pub common: CommonSettings,
    /// Where each service serves `/metrics`.
    pub admin: AdminAddrs,
    /// This test's database (declared last: dropped after the services stopped).
    pub db: TestDatabase,
}

/// A channel that sends a bearer token with every call.
pub type Authed = InterceptedService<Channel, Bearer>;

impl TestApp {
    /// AgentService through the gateway, as an operator holding every role.
    pub fn agent_client(&self) -> AgentServiceClient<Authed> {
        self.agent_client_as(&operator_token())
    }

    /// AgentService through the gateway with `token`.
    pub fn agent_client_as(&self, token: &str) -> AgentServiceClient<Authed> {
        AgentServiceClient::with_interceptor(self.channel.clone(), Bearer::new(token))
    }

    /// AuditService through the gateway, as an operator holding every role.
    pub fn audit_client(&self) -> AuditServiceClient<Authed> {
        self.audit_client_as(&operator_token())
    }

    /// AuditService through the gateway with `token`.
    pub fn audit_client_as(&self, token: &str) -> AuditServiceClient<Authed> {
        AuditServiceClient::with_interceptor(self.channel.clone(), Bearer::new(token))
    }

    /// AuthService with `token` (empty: no credentials).
    pub fn auth_client_as(&self, token: &str) -> AuthServiceClient<Authed> {
        AuthServiceClient::with_interceptor(self.channel.clone(), Bearer::new(token))
    }

    /// Logs in through the gateway and returns the access token.
    pub async fn login(
        &self,
        username: &str,
        password: &str,
    ) -> Result<prfix_proto::auth::v1::LoginResponse, tonic::Status> {
        let request =
            prfix_proto::auth::v1::LoginRequest { username: username.to_owned(), password: password.to_owned() };
        self.auth_client_as("").login(request).await.map(tonic::Response::into_inner)
    }

    /// The bootstrap admin's access token, by logging in.
    pub async fn admin_token(&self) -> String {
        let response = self.login("admin", ADMIN_PASSWORD).await.expect("the bootstrap admin logs in");
        response.tokens.expect("tokens").access_token
    }

    /// Creates a user (as the admin) and returns their access token, by logging in.
    pub async fn user_token(&self, username: &str, roles: &[prfix_auth::Role]) -> String {
        let admin = self.admin_token().await;
        let password = format!("{username}-password-123");
        self.auth_client_as(&admin)
            .create_user(prfix_proto::auth::v1::CreateUserRequest {
                username: username.to_owned(),
                password: password.clone(),
                roles: roles.iter().map(|r| r.to_proto() as i32).collect(),
            })
            .await
            .expect("the admin creates a user");
        self.login(username, &password).await.expect("the new user logs in").tokens.expect("tokens").access_token
    }

    /// Health through the gateway.
    pub fn health_client(&self) -> HealthClient<Channel> {
        HealthClient::new(self.channel.clone())
    }
}

/// A service credential as an operator provisions one: a `service` user `username` and an API key
/// of it named `<username>-audit`, made through `admin`; returns the key's secret.
pub async fn provision_service_key(mut admin: AuthServiceClient<Authed>, username: &str) -> String {
    use prfix_proto::auth::v1 as auth;
    let service = vec![prfix_proto::options::v1::Role::Service as i32];
    admin
        .create_user(auth::CreateUserRequest {
            username: username.to_owned(),
            password: format!("{username}-password-123"),
            roles: service.clone(),
        })
        .await
        .expect("the operator creates the service user");
    admin
        .create_api_key(auth::CreateApiKeyRequest {
            name: format!("{username}-audit"),
            roles: service,
            ttl: None,
            owner: username.to_owned(),
        })
        .await
        .expect("the operator creates the service user's API key")
        .into_inner()
        .secret
}

/// A channel to `addr` (connected lazily: the first call connects).
pub fn channel_to(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}")).expect("a socket address is a valid URI").connect_lazy()
}

/// Starts audit, agent and gateway against a fresh database, a fresh Redis prefix and a fake
/// Ollama.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Like [`spawn_app`], with the gateway's settings adjusted by `tweak`.
pub async fn spawn_app_with(tweak: impl FnOnce(&mut prfix_gateway::Settings)) -> TestApp {
    spawn_app_configured(tweak, |_| {}).await
}

/// Like [`spawn_app`], with the gateway's and the agent's settings adjusted.
pub async fn spawn_app_configured(
    tweak: impl FnOnce(&mut prfix_gateway::Settings),
    tweak_agent: impl FnOnce(&mut prfix_agent::Settings),
) -> TestApp {
    spawn_app_shared(|_| {}, tweak, tweak_agent).await
}

/// Like [`spawn_app_configured`], with the settings every service shares adjusted first.
pub async fn spawn_app_shared(
    tweak_common: impl FnOnce(&mut CommonSettings),
    tweak: impl FnOnce(&mut prfix_gateway::Settings),
    tweak_agent: impl FnOnce(&mut prfix_agent::Settings),
) -> TestApp {
    spawn_app_tuned(tweak_common, |_| {}, tweak, tweak_agent).await
}

/// Like [`spawn_app_shared`], with the audit service's settings adjusted too (the benches give
/// it its production pool size, [`prfix_audit::Settings::default`]'s, rather than the tests' small one).
pub async fn spawn_app_tuned(
    tweak_common: impl FnOnce(&mut CommonSettings),
    tweak_audit: impl FnOnce(&mut prfix_audit::Settings),
    tweak: impl FnOnce(&mut prfix_gateway::Settings),
    tweak_agent: impl FnOnce(&mut prfix_agent::Settings),
) -> TestApp {
    if let Ok(level) = std::env::var("PRFIX_TEST_LOG") {
        prfix_runtime::telemetry::init(LogFormat::Pretty, &level);
    }
    let db = TestDatabase::fresh();
    let ollama = FakeOllama::start().await;
    let redis_prefix = format!("prfix-test:{}:", uuid::Uuid::new_v4().simple());
    let mut common = common_settings(&db, &redis_prefix, &ollama.url());
    tweak_common(&mut common);

    let mut audit_config = audit_settings(&common);
    tweak_audit(&mut audit_config);
    let audit = prfix_audit::Application::build(audit_config).await.expect("audit service starts");
    let audit_admin = audit.admin_addr();
    let audit = run(audit.local_addr(), |stop| audit.run_until_stopped(stop));
    let mut agent_config = agent_settings(&common);
    tweak_agent(&mut agent_config);
    let agent = prfix_agent::Application::build(agent_config).await.expect("agent starts");
    let agent_admin = agent.admin_addr();
    let agent = run(agent.local_addr(), |stop| agent.run_until_stopped(stop));
    let mut settings = gateway_settings(&common, agent.addr, audit.addr);
    tweak(&mut settings);
    let gateway = prfix_gateway::Application::build(settings).await.expect("gateway starts");
    let gateway_admin = gateway.admin_addr();
    let gateway = run(gateway.local_addr(), |stop| gateway.run_until_stopped(stop));
    let channel = channel_to(gateway.addr);
    let admin = AdminAddrs { gateway: gateway_admin, agent: agent_admin, audit: audit_admin };
    TestApp { gateway, agent, audit, ollama, redis_prefix, channel, common, admin, db }
}

impl TestApp {
    /// Starts another agent replica on the same database and Ollama (not behind the gateway).
    pub async fn spawn_agent(&self, tweak: impl FnOnce(&mut prfix_agent::Settings)) -> Running {
        let mut settings = agent_settings(&self.common);
        tweak(&mut settings);
        let agent = prfix_agent::Application::build(settings).await.expect("another agent starts");
        run(agent.local_addr(), |stop| agent.run_until_stopped(stop))
    }

    /// Starts another gateway in front of the same services (a second replica).
    pub async fn spawn_gateway(&self, tweak: impl FnOnce(&mut prfix_gateway::Settings)) -> Running {
        let mut settings = gateway_settings(&self.common, self.agent.addr, self.audit.addr);
        tweak(&mut settings);
        let gateway = prfix_gateway::Application::build(settings).await.expect("second gateway starts");
        run(gateway.local_addr(), |stop| gateway.run_until_stopped(stop))
    }
}
