//! TLS between the gateway and the services behind it, with client certificates (mutual TLS):
//! with it configured, the services refuse plain text and clients without a certificate from the
//! internal CA, and the gateway still reaches them.

use std::path::{Path, PathBuf};

use prfix_auth::Role;
use prfix_proto::agent::v1 as agent;
use prfix_proto::audit::v1 as audit;
use prfix_tests::app::{agent_settings, audit_settings, channel_to, common_settings, gateway_settings, run};
use prfix_tests::auth::{Bearer, token};
use prfix_tests::{FakeOllama, TestDatabase};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

struct Pki {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("temp dir is writable");
    path
}

/// An internal CA and one certificate (for `localhost`) that serves and authenticates as client.
fn pki() -> Pki {
    let dir = std::env::temp_dir().join(format!("prfix-pki-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("key")).expect("CA");
    let leaf_key = KeyPair::generate().expect("key");
    let leaf =
        CertificateParams::new(vec!["localhost".to_owned()]).expect("params").signed_by(&leaf_key, &ca).expect("cert");
    Pki {
        ca: write(&dir, "ca.pem", &ca.pem()),
        cert: write(&dir, "service.pem", &leaf.pem()),
        key: write(&dir, "service-key.pem", &leaf_key.serialize_pem()),
    }
}

#[tokio::test]
async fn the_gateway_reaches_services_over_mutual_tls_and_nothing_else_does() {
    let pki = pki();
    let db = TestDatabase::fresh();
    let ollama = FakeOllama::start().await;
    let mut common = common_settings(&db, &format!("prfix-test:{}:", uuid::Uuid::new_v4().simple()), &ollama.url());
    common.internal_tls_ca_file = Some(pki.ca.clone());
    common.internal_tls_cert_file = Some(pki.cert.clone());
    common.internal_tls_key_file = Some(pki.key.clone());
    common.internal_tls_require_client_cert = true;

    let audit_app = prfix_audit::Application::build(audit_settings(&common)).await.expect("audit starts");
    let audit = run(audit_app.local_addr(), |stop| audit_app.run_until_stopped(stop));
    let agent_app = prfix_agent::Application::build(agent_settings(&common)).await.expect("agent starts");
    let agent = run(agent_app.local_addr(), |stop| agent_app.run_until_stopped(stop));
    let mut settings = gateway_settings(&common, agent.addr, audit.addr);
    settings.gateway.agent_url = format!("https://localhost:{}", agent.addr.port());
    settings.gateway.audit_url = format!("https://localhost:{}", audit.addr.port());
    let gateway_app = prfix_gateway::Application::build(settings).await.expect("gateway starts");
    let gateway = run(gateway_app.local_addr(), |stop| gateway_app.run_until_stopped(stop));

    let operator = token("operator", &Role::ALL);
    let through = channel_to(gateway.addr);
    prfix_proto::agent::v1::agent_service_client::AgentServiceClient::with_interceptor(
        through.clone(),
        Bearer::new(&operator),
    )
    .list_tasks(agent::ListTasksRequest::default())
    .await
    .expect("the gateway reaches the agent over mutual TLS");
    let events = prfix_proto::audit::v1::audit_service_client::AuditServiceClient::with_interceptor(
        through,
        Bearer::new(&operator),
    )
    .list_events(audit::ListEventsRequest::default())
    .await
    .expect("the gateway reaches the audit service over mutual TLS");
    let _ = events.into_inner();

    // Plain text to the service: refused at the transport.
    let plain = prfix_proto::agent::v1::agent_service_client::AgentServiceClient::with_interceptor(
        channel_to(agent.addr),
        Bearer::new(&operator),
    )
    .list_tasks(agent::ListTasksRequest::default())
    .await;
    assert!(plain.is_err(), "a plain-text call must not reach the agent");

    // TLS that trusts the CA but shows no client certificate: refused too.
    let anonymous_tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(std::fs::read(&pki.ca).expect("ca")))
        .domain_name("localhost");
    let channel = tonic::transport::Channel::from_shared(format!("https://localhost:{}", agent.addr.port()))
        .expect("uri")
        .tls_config(anonymous_tls)
        .expect("tls config")
        .connect()
        .await;
    let refused = match channel {
        Err(_) => true,
        Ok(channel) => prfix_proto::agent::v1::agent_service_client::AgentServiceClient::with_interceptor(
            channel,
            Bearer::new(&operator),
        )
        .list_tasks(agent::ListTasksRequest::default())
        .await
        .is_err(),
    };
    assert!(refused, "a client without a certificate from the internal CA must be refused");
    drop((gateway, agent, audit));
}
