//! TLS to Postgres as hardened deployments configure it. The local test server runs with `ssl = on`
//! (Debian's default, with its own certificate); the tests read the server's certificate file to use
//! it as the trusted CA, as an operator would with a private CA.

use std::time::Duration;

use prfix_runtime::db::{self, DatabaseSettings};
use prfix_tests::TestDatabase;

async fn server_certificate() -> String {
    let admin = prfix_tests::db::admin_url();
    let (client, connection) = tokio_postgres::connect(&admin, tokio_postgres::NoTls).await.expect("admin connection");
    tokio::spawn(connection);
    let ssl: String = client.query_one("SHOW ssl", &[]).await.expect("show ssl").get(0);
    assert_eq!(ssl, "on", "these tests need the Postgres server at {admin} to run with ssl = on");
    client.query_one("SHOW ssl_cert_file", &[]).await.expect("show ssl_cert_file").get(0)
}

fn settings(url: String) -> DatabaseSettings {
    DatabaseSettings {
        url: secrecy::SecretString::from(url),
        schema: "scratch".into(),
        role: None,
        pool_size: 1,
        connect_timeout: Duration::from_secs(5),
    }
}

async fn session_uses_tls(settings: &DatabaseSettings) -> bool {
    let client = db::connect_owner(settings).await.expect("connects");
    client.query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[]).await.expect("pg_stat_ssl").get(0)
}

#[tokio::test]
async fn sslmode_require_encrypts_the_connection() {
    let db = TestDatabase::fresh();
    server_certificate().await;
    assert!(session_uses_tls(&settings(format!("{}?sslmode=require", db.url))).await);
    // And the pool, which the services use, as well.
    let pool = db::pool(&settings(format!("{}?sslmode=require", db.url))).expect("pool");
    let session = pool.get().await.expect("pooled session");
    let ssl: bool =
        session.query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[]).await.expect("ssl").get(0);
    assert!(ssl);
}

#[tokio::test]
async fn sslmode_verify_full_checks_the_certificate_and_the_host_name() {
    let db = TestDatabase::fresh();
    let cert = server_certificate().await;
    // The Debian certificate names `localhost`.
    let url = db.url.replacen("127.0.0.1", "localhost", 1);
    assert!(session_uses_tls(&settings(format!("{url}?sslmode=verify-full&sslrootcert={cert}"))).await);

    // The wrong CA: the public roots do not vouch for the server's certificate.
    let err = db::connect_owner(&settings(format!(
        "{url}?sslmode=verify-full&sslrootcert=/etc/ssl/certs/ca-certificates.crt"
    )))
    .await
    .expect_err("an untrusted certificate is refused");
    let text = prfix_runtime::error::chain(&err);
    assert!(text.to_lowercase().contains("certificate"), "{text}");

    // The right CA but another host name than the certificate's.
    let err = db::connect_owner(&settings(format!("{}?sslmode=verify-full&sslrootcert={cert}", db.url)))
        .await
        .expect_err("a host name mismatch is refused");
    let text = prfix_runtime::error::chain(&err);
    assert!(text.to_lowercase().contains("certificate"), "{text}");
}

#[tokio::test]
async fn a_missing_ca_file_is_named() {
    let db = TestDatabase::fresh();
    let err = db::connect_owner(&settings(format!("{}?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem", db.url)))
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
}
