//! A fresh, uniquely named database per test, dropped when the test ends.

use secrecy::SecretString;
use tokio_postgres::NoTls;

/// The server tests create their databases on.
pub fn admin_url() -> String {
    std::env::var("PRFIX_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A database that exists only for one test.
pub struct TestDatabase {
    /// Its name (`prfix_test_<uuid>`).
    pub name: String,
    /// Its URL.
    pub url: String,
}

impl TestDatabase {
    /// A name and URL for a database that does not exist yet (the services create it, as they
    /// would on a fresh machine).
    pub fn fresh() -> Self {
        let name = format!("prfix_test_{}", uuid::Uuid::new_v4().simple());
        let admin = admin_url();
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(base, _)| base);
        Self { url: format!("{base}/{name}"), name }
    }

    /// The URL as the services' settings take it.
    pub fn secret_url(&self) -> SecretString {
        SecretString::from(self.url.clone())
    }

    /// A plain connection to the test database as the admin role, for assertions.
    pub async fn connect(&self) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(&self.url, NoTls).await.expect("test database is reachable");
        tokio::spawn(connection);
        client
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Drop is synchronous; a short-lived runtime on its own thread does the async work.
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            runtime.block_on(async move {
                if let Ok((client, connection)) = tokio_postgres::connect(&admin_url(), NoTls).await {
                    tokio::spawn(connection);
                    let _ = client.batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).await;
                }
            });
        })
        .join();
    }
}
