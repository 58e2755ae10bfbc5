//! The flag handle the services hold: the flags a service sees now (from Unleash, the copy on disk or
//! the settings), evaluated for a context, counted in `/metrics`, and every change logged and handed
//! to the service's sink (the agent audits them).

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};

use prfix_runtime::settings::SettingsError;

use crate::context::Context;
use crate::evaluate::{Outcome, evaluate};
use crate::known::{Kind, known};
use crate::model::Feature;
use crate::settings::FlagSettings;

/// Distinct variant names counted per flag in `/metrics`; further ones count as `other`.
const MAX_VARIANT_LABELS: usize = 16;

/// Where a flag's definition came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The built-in safe default.
    Default,
    /// The settings file or the environment.
    Settings,
    /// Unleash, fetched by this process.
    Unleash,
    /// Unleash, as last fetched and kept on disk (Unleash has not answered since the start).
    UnleashBackup,
}

impl Source {
    /// The name shown by `prfix flags` and recorded on tasks.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Default => "default",
            Source::Settings => "settings",
            Source::Unleash => "unleash",
            Source::UnleashBackup => "unleash-backup",
        }
    }
}

/// A flag evaluated for one context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    /// The flag.
    pub flag: String,
    /// Whether it is on.
    pub enabled: bool,
    /// The variant (`disabled` when off or without variants).
    pub variant: String,
    /// The variant's payload value, if it has one.
    pub payload: Option<String>,
    /// Where the definition came from.
    pub source: Source,
}

impl Evaluation {
    fn from_outcome(flag: &str, outcome: Outcome, source: Source) -> Self {
        Self {
            flag: flag.to_owned(),
            enabled: outcome.enabled,
            variant: outcome.variant.clone(),
            payload: outcome.payload.map(|p| p.value),
            source,
        }
    }

    /// The value a variant flag chooses: the payload, else the variant's name; `None` when the flag
    /// is off or no variant applies (the service's own setting applies then).
    pub fn value(&self) -> Option<&str> {
        if !self.enabled || self.variant == crate::evaluate::DISABLED_VARIANT {
            return None;
        }
        Some(self.payload.as_deref().filter(|p| !p.is_empty()).unwrap_or(&self.variant))
    }
}

/// A flag whose definition changed.
#[derive(Debug, Clone, PartialEq)]
pub struct FlagChange {
    /// The flag.
    pub flag: String,
    /// The definition before (absent: the flag did not exist).
    pub before: Option<Feature>,
    /// The definition now.
    pub after: Option<Feature>,
    /// Where the definition now comes from.
    pub source: Source,
}

impl FlagChange {
    /// A definition as compact JSON, at most `max` characters, for logs and audit records.
    pub fn describe(feature: Option<&Feature>, max: usize) -> String {
        let text = feature.map_or_else(|| "absent".to_owned(), |f| serde_json::to_string(f).unwrap_or_default());
        text.chars().take(max).collect()
    }
}

/// Where a service sends the changes it sees (the agent writes audit records).
pub trait ChangeSink: Send + Sync {
    /// Called once per batch of changes, in order.
    fn changed(&self, changes: Vec<FlagChange>) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}

struct State {
    /// Definitions from the settings (with the defaults), and whether each was given.
    local: BTreeMap<String, (Feature, bool)>,
    /// Definitions from Unleash, and whether they came from the network or the disk.
    remote: Option<(BTreeMap<String, Feature>, Source)>,
    /// The `ETag` of the remote definitions.
    etag: Option<String>,
}

struct Inner {
    unleash: bool,
    app_name: String,
    environment: String,
    state: RwLock<State>,
    sink: Mutex<Option<Arc<dyn ChangeSink>>>,
    variant_labels: Mutex<BTreeMap<String, BTreeSet<String>>>,
}

/// The flags of one service; cheap to clone.
#[derive(Clone)]
pub struct Flags {
    inner: Arc<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Flags {
    /// Flags from `settings`, and from the copy on disk of Unleash's when Unleash is configured and a
    /// copy exists (a copy that cannot be read is logged and ignored: the settings serve then).
    pub fn new(settings: &FlagSettings) -> Result<Self, SettingsError> {
        let mut remote = None;
        let mut etag = None;
        if settings.uses_unleash() {
            match crate::unleash::Backup::read(&settings.backup_file) {
                Ok(Some(backup)) => {
                    tracing::info!(
                        file = %settings.backup_file.display(),
                        fetched_at = %backup.fetched_at,
                        flags = backup.features.len(),
                        "serving the flags last fetched from Unleash, kept on disk, until Unleash answers"
                    );
                    etag = backup.etag;
                    remote = Some((by_name(backup.features), Source::UnleashBackup));
                }
                Ok(None) => {
                    tracing::info!("no flags kept from Unleash yet: the settings' values serve until it answers")
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the flags kept from Unleash are unreadable; the settings' values serve until it answers")
                }
            }
        }
        let state = State { local: settings.features()?, remote, etag };
        Ok(Self {
            inner: Arc::new(Inner {
                unleash: settings.uses_unleash(),
                app_name: settings.unleash_app_name.clone(),
                environment: settings.unleash_environment.clone(),
                state: RwLock::new(state),
                sink: Mutex::new(None),
                variant_labels: Mutex::new(BTreeMap::new()),
            }),
        })
    }

    /// Where the flags come from: `unleash` when it is configured, else `settings`.
    pub fn provider(&self) -> &'static str {
        if self.inner.unleash { "unleash" } else { "settings" }
    }

    /// Sends the changes seen from now on to `sink` as well as to the log.
    pub fn set_sink(&self, sink: Arc<dyn ChangeSink>) {
        *lock(&self.inner.sink) = Some(sink);
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.inner.state.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The `ETag` of the flags from Unleash held now.
    pub fn etag(&self) -> Option<String> {
        self.read().etag.clone()
    }

    /// Evaluates `flag` for `context` without counting it (listings).
    pub fn peek(&self, flag: &str, context: &Context) -> Evaluation {
        let state = self.read();
        let (feature, source) = lookup(&state, flag);
        let outcome = evaluate(feature, &context.to_unleash(&self.inner.app_name, &self.inner.environment));
        Evaluation::from_outcome(flag, outcome, source)
    }

    /// Evaluates `flag` for `context` to decide what a task or call does, and counts it.
    pub fn evaluate(&self, flag: &str, context: &Context) -> Evaluation {
        let evaluation = self.peek(flag, context);
        let (flag_label, variant_label) = self.labels(&evaluation);
        prfix_runtime::metrics::METRICS
            .flag_evaluations
            .with_label_values(&[flag_label.as_str(), &variant_label])
            .inc();
        evaluation
    }

    /// Metric labels: known flags by name, switches as `on`/`off`, at most a few variant names.
    fn labels(&self, evaluation: &Evaluation) -> (String, String) {
        let Some(flag) = known(&evaluation.flag) else { return ("other".to_owned(), "other".to_owned()) };
        if flag.kind == Kind::Switch {
            return (flag.name.to_owned(), if evaluation.enabled { "on" } else { "off" }.to_owned());
        }
        let mut labels = lock(&self.inner.variant_labels);
        let seen = labels.entry(flag.name.to_owned()).or_default();
        if seen.contains(&evaluation.variant) || seen.len() < MAX_VARIANT_LABELS {
            seen.insert(evaluation.variant.clone());
            (flag.name.to_owned(), evaluation.variant.clone())
        } else {
            (flag.name.to_owned(), "other".to_owned())
        }
    }

    /// Every flag this service sees: the known ones and any others Unleash serves, by name.
    pub fn names(&self) -> Vec<String> {
        let state = self.read();
        let mut names: BTreeSet<String> = state.local.keys().cloned().collect();
        if let Some((remote, _)) = &state.remote {
            names.extend(remote.keys().cloned());
        }
        names.into_iter().collect()
    }

    /// Replaces the settings' definitions (a reload) and reports what changed.
    pub async fn replace_local(&self, settings: &FlagSettings) -> Result<(), SettingsError> {
        let local = settings.features()?;
        self.replace(|state| state.local = local).await;
        Ok(())
    }

    /// Replaces Unleash's definitions and reports what changed.
    pub async fn replace_remote(&self, features: Vec<Feature>, source: Source, etag: Option<String>) {
        let remote = by_name(features);
        self.replace(|state| {
            state.remote = Some((remote, source));
            state.etag = etag;
        })
        .await;
    }

    /// Marks the definitions held as confirmed by Unleash (a 304 after a start from the disk copy).
    pub fn confirm_remote(&self) {
        let mut state = self.inner.state.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((_, source)) = &mut state.remote {
            *source = Source::Unleash;
        }
    }

    async fn replace(&self, update: impl FnOnce(&mut State)) {
        let changes = {
            let mut state = self.inner.state.write().unwrap_or_else(std::sync::PoisonError::into_inner);
            let before = effective(&state);
            update(&mut state);
            let after = effective(&state);
            diff(&before, &after)
        };
        if changes.is_empty() {
            return;
        }
        for change in &changes {
            tracing::info!(
                flag = %change.flag,
                source = change.source.as_str(),
                before = %FlagChange::describe(change.before.as_ref(), 1000),
                after = %FlagChange::describe(change.after.as_ref(), 1000),
                "flag changed"
            );
        }
        let sink = lock(&self.inner.sink).clone();
        if let Some(sink) = sink {
            sink.changed(changes).await;
        }
    }
}

fn by_name(features: Vec<Feature>) -> BTreeMap<String, Feature> {
    features.into_iter().map(|f| (f.name.clone(), f)).collect()
}

/// A flag's definition and source: Unleash's when it has the flag, else the settings' (or default).
fn lookup<'a>(state: &'a State, flag: &str) -> (Option<&'a Feature>, Source) {
    if let Some((remote, source)) = &state.remote
        && let Some(feature) = remote.get(flag)
    {
        return (Some(feature), *source);
    }
    match state.local.get(flag) {
        Some((feature, true)) => (Some(feature), Source::Settings),
        Some((feature, false)) => (Some(feature), Source::Default),
        None => (None, Source::Default),
    }
}

fn effective(state: &State) -> BTreeMap<String, (Feature, Source)> {
    let mut names: BTreeSet<&String> = state.local.keys().collect();
    if let Some((remote, _)) = &state.remote {
        names.extend(remote.keys());
    }
    names
        .into_iter()
        .filter_map(|name| {
            let (feature, source) = lookup(state, name);
            feature.map(|f| (name.clone(), (f.clone(), source)))
        })
        .collect()
}

fn diff(before: &BTreeMap<String, (Feature, Source)>, after: &BTreeMap<String, (Feature, Source)>) -> Vec<FlagChange> {
    let names: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    names
        .into_iter()
        .filter_map(|name| {
            let old = before.get(name).map(|(f, _)| f);
            let new = after.get(name).map(|(f, _)| f);
            (old != new).then(|| FlagChange {
                flag: name.clone(),
                before: old.cloned(),
                after: new.cloned(),
                source: after.get(name).or(before.get(name)).map_or(Source::Default, |(_, s)| *s),
            })
        })
        .collect()
}
