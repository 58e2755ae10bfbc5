//! Keeping a service's flags current: fetching from Unleash every refresh interval (keeping the last
//! flags, in memory and on disk, while it fails), and re-reading the settings on SIGHUP.

use std::sync::Arc;
use std::time::Duration;

use prfix_runtime::settings::SettingsError;
use tokio_util::sync::CancellationToken;

use crate::flags::{Flags, Source};
use crate::settings::FlagSettings;
use crate::unleash::{Backup, Fetched, UnleashClient};

/// Re-reads the flag settings (the service's settings file and environment).
pub type Reload = Arc<dyn Fn() -> Result<FlagSettings, SettingsError> + Send + Sync>;

impl Flags {
    /// Keeps the flags current until `stop`: Unleash when `settings` configure it, and the settings
    /// again on each SIGHUP when `reload` is given. `instance` names this process to Unleash.
    pub async fn run(self, settings: FlagSettings, reload: Option<Reload>, instance: String, stop: CancellationToken) {
        let hangups = async {
            if let Some(reload) = reload {
                self.reload_on_hangup(reload, stop.clone()).await;
            }
        };
        let unleash = async {
            if settings.uses_unleash() {
                self.poll_unleash(&settings, &instance, stop.clone()).await;
            }
        };
        tokio::join!(hangups, unleash);
    }

    async fn reload_on_hangup(&self, reload: Reload, stop: CancellationToken) {
        let mut hangups = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(signal) => signal,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP: flag settings reload only at a restart");
                return;
            }
        };
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                received = hangups.recv() => if received.is_none() { return },
            }
            let reloaded = match reload() {
                Ok(settings) => self.replace_local(&settings).await,
                Err(e) => Err(e),
            };
            match reloaded {
                Ok(()) => tracing::info!("SIGHUP: flag settings reloaded"),
                Err(e) => tracing::error!(error = %e, "SIGHUP: flag settings not reloaded; the previous ones stay"),
            }
        }
    }

    async fn poll_unleash(&self, settings: &FlagSettings, instance: &str, stop: CancellationToken) {
        let Some(token) = settings.unleash_token.clone() else {
            tracing::error!("flags.unleash_url is set without a token: flags come from the settings");
            return;
        };
        let timeout = Duration::from_millis(settings.request_timeout_ms);
        let mut client =
            match UnleashClient::new(&settings.unleash_url, token, &settings.unleash_app_name, instance, timeout) {
                Ok(client) => client,
                Err(e) => {
                    tracing::error!(error = %e, "flags come from the settings");
                    return;
                }
            };
        client.set_etag(self.etag());
        let interval = Duration::from_millis(settings.refresh_interval_ms);
        let fetches = &prfix_runtime::metrics::METRICS.flag_fetches;
        let mut failing = false;
        loop {
            match client.fetch().await {
                Ok(Fetched::NotModified) => {
                    fetches.with_label_values(&["not_modified"]).inc();
                    self.confirm_remote();
                    failing = recovered(failing);
                }
                Ok(Fetched::Features { features, etag }) => {
                    fetches.with_label_values(&["changed"]).inc();
                    let backup = Backup {
                        url: client.url().to_owned(),
                        fetched_at: chrono::Utc::now(),
                        etag: etag.clone(),
                        features,
                    };
                    // The copy on disk first: a crash right after still restarts with these flags.
                    if let Err(e) = backup.write(&settings.backup_file) {
                        tracing::warn!(error = %e, "cannot keep the flags on disk; a restart during an outage would not have them");
                    }
                    self.replace_remote(backup.features, Source::Unleash, etag).await;
                    failing = recovered(failing);
                }
                Err(e) => {
                    fetches.with_label_values(&["error"]).inc();
                    if !failing {
                        tracing::warn!(error = %e, "cannot fetch the flags; serving the last ones known until Unleash answers");
                    } else {
                        tracing::debug!(error = %e, "cannot fetch the flags");
                    }
                    failing = true;
                }
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(interval) => {}
            }
        }
    }
}

fn recovered(failing: bool) -> bool {
    if failing {
        tracing::info!("Unleash answers again");
    }
    false
}
