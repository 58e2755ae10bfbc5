//! First start of the gateway: no default password anywhere; production refuses to start without
//! the secrets it needs, development generates them and says so.

use std::net::SocketAddr;

use prfix_tests::TestDatabase;
use prfix_tests::app::{common_settings, gateway_settings};

fn nowhere() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9))
}

#[tokio::test]
async fn production_without_a_bootstrap_password_refuses_to_start_and_says_what_to_set() {
    let db = TestDatabase::fresh();
    let common = common_settings(&db, "prfix-test-unused:", "http://127.0.0.1:9");
    let mut settings = gateway_settings(&common, nowhere(), nowhere());
    settings.bootstrap_admin_password = None;
    let err = prfix_gateway::Application::build(settings).await.err().expect("refused");
    let text = prfix_runtime::error::chain(&err);
    assert!(text.contains("PRFIX_BOOTSTRAP_ADMIN_PASSWORD"), "{text}");
}

#[tokio::test]
async fn production_without_a_signing_key_refuses_to_start_and_says_what_to_set() {
    let db = TestDatabase::fresh();
    let common = common_settings(&db, "prfix-test-unused:", "http://127.0.0.1:9");
    let mut settings = gateway_settings(&common, nowhere(), nowhere());
    settings.gateway.signing_key_files.clear();
    let err = prfix_gateway::Application::build(settings).await.err().expect("refused");
    let text = prfix_runtime::error::chain(&err);
    assert!(text.contains("signing_key_files") && text.contains("PRFIX_SIGNING_KEY"), "{text}");
}

#[tokio::test]
async fn development_mode_generates_a_private_key_and_an_admin_password_once() {
    let db = TestDatabase::fresh();
    let common = common_settings(&db, "prfix-test-unused:", "http://127.0.0.1:9");
    let data_dir = std::env::temp_dir().join(format!("prfix-dev-{}", uuid::Uuid::new_v4().simple()));
    let make = || {
        let mut settings = gateway_settings(&common, nowhere(), nowhere());
        settings.gateway.mode = prfix_gateway::Mode::Development;
        settings.gateway.signing_key_files.clear();
        settings.gateway.data_dir = data_dir.clone();
        settings.bootstrap_admin_password = None;
        settings
    };
    let first = prfix_gateway::Application::build(make()).await.expect("starts");
    let password = first.generated_admin_password().expect("a password is generated").to_owned();
    assert!(password.len() >= 20, "{password}");
    let key_file = data_dir.join("signing-key.pem");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).expect("key file exists").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the private key is readable by its owner only");
    }
    let kid = first.jwks().keys[0].kid.clone();
    drop(first);
    // The second start keeps the key and generates no new password: the admin exists.
    let second = prfix_gateway::Application::build(make()).await.expect("starts again");
    assert_eq!(second.generated_admin_password(), None);
    assert_eq!(second.jwks().keys[0].kid, kid);
}

#[tokio::test]
async fn the_audit_service_without_a_checkpoint_key_refuses_to_start_and_says_what_to_set() {
    let db = TestDatabase::fresh();
    let common = common_settings(&db, "prfix-test-unused:", "http://127.0.0.1:9");
    let mut settings = prfix_tests::app::audit_settings(&common);
    settings.audit.signing_key_file = None;
    let err = prfix_audit::Application::build(settings).await.err().expect("refused");
    let text = prfix_runtime::error::chain(&err);
    assert!(text.contains("PRFIX_AUDIT_SIGNING_KEY") && text.contains("audit.signing_key_file"), "{text}");
}
