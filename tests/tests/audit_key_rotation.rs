//! Rotating the audit service's checkpoint signing key: checkpoints signed before the rotation keep
//! verifying with the old public key, those after with the new one, offline and in the service's own
//! `Verify` once the old key is listed in `audit.previous_verifier_keys`.

use prfix_audit::checkpoint::{Signer, VerifierKey, pkcs8_to_pem};
use prfix_audit::export::{ExportLine, verify};
use prfix_proto::audit::v1 as audit;
use prfix_proto::audit::v1::audit_service_client::AuditServiceClient;
use prfix_tests::app::{Authed, Running, audit_settings, channel_to, run};
use prfix_tests::auth::{Bearer, audit_key, operator_token};
use prfix_tests::spawn_app;

fn event(i: usize) -> audit::AuditEvent {
    audit::AuditEvent {
        event_id: uuid::Uuid::new_v4().to_string(),
        time: Some(prost_types::Timestamp { seconds: chrono::Utc::now().timestamp(), nanos: 0 }),
        actor: Some(audit::Actor { subject: "user".into(), roles: vec!["developer".into()] }),
        action: format!("demo.action{i}"),
        resource: format!("tasks/{i}"),
        result: audit::AuditResult::Success as i32,
        ..Default::default()
    }
}

async fn append(client: &mut AuditServiceClient<Authed>, range: std::ops::Range<usize>) {
    client.append_batch(audit::AppendBatchRequest { events: range.map(event).collect() }).await.expect("append");
}

async fn export(client: &mut AuditServiceClient<Authed>) -> Vec<ExportLine> {
    prfix_tests::audit_export::export_lines(client).await
}

/// An audit service on the test's database signing with `key_pem` as `key_name`, trusting
/// `previous` keys too.
async fn audit_service(
    common: &prfix_runtime::settings::CommonSettings,
    key_name: &str,
    key_pem: &std::path::Path,
    previous: Vec<String>,
) -> (Running, AuditServiceClient<Authed>) {
    let mut settings = audit_settings(common);
    settings.audit.key_name = key_name.to_owned();
    settings.audit.signing_key_file = Some(key_pem.to_path_buf());
    settings.audit.previous_verifier_keys = previous;
    let service = prfix_audit::Application::build(settings).await.expect("the audit service starts");
    let running = run(service.local_addr(), |stop| service.run_until_stopped(stop));
    let client = AuditServiceClient::with_interceptor(channel_to(running.addr), Bearer::new(&operator_token()));
    (running, client)
}

#[tokio::test]
async fn after_a_key_rotation_the_log_verifies_with_both_keys_offline_and_in_the_service() {
    let app = spawn_app().await;
    let old_key = VerifierKey::parse(&audit_key().verifier_key).expect("old verifier key");
    let mut before = app.audit_client();
    append(&mut before, 0..12).await;
    let first = export(&mut before).await;
    assert!(verify(&first, std::slice::from_ref(&old_key)).ok(), "the log verifies before the rotation");

    // The operator makes a new key and restarts the service with it under a new key name, listing
    // the old public key.
    let (signer, der) = Signer::generate("prfix-audit-2026").expect("a new Ed25519 key");
    let dir = tempfile::tempdir().expect("temp dir");
    let new_pem = dir.path().join("signing-key-2026.pem");
    std::fs::write(&new_pem, pkcs8_to_pem(&der)).expect("writable");
    let new_key = VerifierKey::parse(&signer.verifier_key()).expect("new verifier key");
    let mut old_service = app.audit;
    old_service.stop().await;
    let (_rotated, mut client) =
        audit_service(&app.common, "prfix-audit-2026", &new_pem, vec![audit_key().verifier_key.clone()]).await;
    append(&mut client, 12..20).await;
    let lines = export(&mut client).await;

    let with_both = verify(&lines, &[old_key.clone(), new_key.clone()]);
    assert!(with_both.ok(), "{:?}", with_both.problems);
    assert_eq!(with_both.events, 20);
    assert!(with_both.checkpoints >= 2, "checkpoints by each key: {}", with_both.checkpoints);
    for (only, missing) in [(&old_key, "prfix-audit-2026"), (&new_key, "prfix-audit")] {
        let report = verify(&lines, std::slice::from_ref(only));
        assert!(!report.ok(), "one key alone cannot verify checkpoints signed by the other");
        let messages: Vec<String> = report.problems.iter().map(ToString::to_string).collect();
        assert!(
            messages.iter().any(|m| m.contains("a checkpoint is refused") && !m.contains(&format!("`{missing}`"))),
            "{messages:?}"
        );
    }
    let checked = client.verify(audit::VerifyRequest::default()).await.expect("verify").into_inner();
    assert!(checked.ok, "the service trusts its previous key: {:?}", checked.problems);
    assert_eq!(checked.events_checked, 20);

    // Without the old key listed, the service says which checkpoints it cannot verify.
    let (_forgetful, mut client) = audit_service(&app.common, "prfix-audit-2026", &new_pem, Vec::new()).await;
    let checked = client.verify(audit::VerifyRequest::default()).await.expect("verify").into_inner();
    assert!(!checked.ok);
    assert!(checked.problems.iter().any(|p| p.message.contains("a checkpoint is refused")), "{:?}", checked.problems);
}

#[test]
fn a_malformed_previous_key_is_refused_at_start_naming_the_setting() {
    let mut settings = prfix_audit::Settings::default();
    settings.audit.previous_verifier_keys = vec!["prfix-audit+0000+not-a-key".into()];
    let error = settings.validate().expect_err("a bad key is refused").to_string();
    assert!(error.contains("audit.previous_verifier_keys"), "{error}");
}
