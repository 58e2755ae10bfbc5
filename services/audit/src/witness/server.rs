//! The witness server (`prfix audit witness`): `POST /add-checkpoint` exactly as c2sp.org/tlog-witness
//! says, and `GET /<hex SHA-256 of the origin>/checkpoint` for monitors. Checking a request against the
//! stored state and persisting the new state happen under one lock, and the state is on disk before
//! the cosignature is answered, so two racing requests cannot roll the witness back and a crash
//! cannot make it forget what it cosigned.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tokio::sync::Mutex;

use crate::checkpoint::{pem_to_pkcs8, pkcs8_to_pem};
use crate::merkle::{self, Hash};
use crate::witness::cosignature::Cosigner;
use crate::witness::note::{self, ED25519_TYPE, Signed, Vkey};
use crate::witness::protocol::AddCheckpoint;
use crate::witness::state::{LogState, StateError, WitnessState};

/// The largest request body read (a checkpoint, 63 proof lines and some signatures fit many times).
pub const MAX_BODY: usize = 64 * 1024;

/// Why an `add-checkpoint` request is not cosigned; each maps to the status the spec names.
#[derive(Debug, thiserror::Error)]
pub enum AddError {
    /// 400: the body, note or checkpoint is malformed, or the old size is above the checkpoint's.
    #[error("bad request: {0}")]
    Malformed(String),
    /// 404: no log with this origin is configured.
    #[error("unknown log `{0}`")]
    UnknownLog(String),
    /// 403: no valid signature by a key trusted for the origin.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// 409: the old size is not the size this witness last cosigned (which is carried).
    #[error("the witness last cosigned size {0}")]
    Conflict(u64),
    /// 422: the checkpoint is not consistent with what this witness cosigned before.
    #[error("inconsistent: {0}")]
    Inconsistent(String),
    /// 500: the new state could not be stored, so nothing is cosigned.
    #[error(transparent)]
    State(#[from] StateError),
}

impl AddError {
    /// The HTTP status of this refusal.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Malformed(_) => StatusCode::BAD_REQUEST,
            Self::UnknownLog(_) => StatusCode::NOT_FOUND,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Inconsistent(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::State(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for AddError {
    fn into_response(self) -> Response {
        match self {
            Self::Conflict(size) => {
                (StatusCode::CONFLICT, [(header::CONTENT_TYPE, "text/x.tlog.size")], format!("{size}\n"))
                    .into_response()
            }
            Self::State(ref e) => {
                tracing::error!(error = %prfix_runtime::error::chain(e), "cannot store the witness state");
                (StatusCode::INTERNAL_SERVER_ERROR, "the witness could not store its state\n").into_response()
            }
            other => (other.status(), format!("{other}\n")).into_response(),
        }
    }
}

/// Why the witness could not start.
#[derive(Debug, thiserror::Error)]
pub enum WitnessError {
    /// The key file is missing, unreadable or not an Ed25519 PKCS#8 key.
    #[error("witness key {path}: {why}")]
    Key {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        why: String,
    },
    /// A `--log` value is not `ORIGIN=VERIFIERKEY`.
    #[error("log `{0}`: {1}")]
    Log(String, String),
    /// The state file could not be read.
    #[error(transparent)]
    State(#[from] StateError),
}

/// Reads the witness key (PEM PKCS#8) at `path`; with `generate`, creates it when missing (mode
/// 0600). Returns the cosigner and whether the key was generated now.
pub fn load_key(path: &Path, name: &str, generate: bool) -> Result<(Cosigner, bool), WitnessError> {
    let failed = |why: String| WitnessError::Key { path: path.to_owned(), why };
    if path.exists() {
        let pem = std::fs::read_to_string(path).map_err(|e| failed(e.to_string()))?;
        let der = pem_to_pkcs8(&pem).map_err(|e| failed(e.to_string()))?;
        return Ok((Cosigner::from_pkcs8(name, &der).map_err(|e| failed(e.to_string()))?, false));
    }
    if !generate {
        return Err(failed("does not exist (pass --generate-key to create it)".to_owned()));
    }
    let (cosigner, der) = Cosigner::generate(name).map_err(|e| failed(e.to_string()))?;
    prfix_runtime::binary::write_private(path, &pkcs8_to_pem(&der)).map_err(|e| failed(e.to_string()))?;
    Ok((cosigner, true))
}

/// Reads `ORIGIN=VERIFIERKEY` (the log's checkpoint key, type 0x01).
pub fn parse_log(arg: &str) -> Result<(String, Vkey), WitnessError> {
    let (origin, key) =
        arg.split_once('=').ok_or_else(|| WitnessError::Log(arg.to_owned(), "expected ORIGIN=VERIFIERKEY".into()))?;
    let key = Vkey::parse(key, ED25519_TYPE).map_err(|e| WitnessError::Log(arg.to_owned(), e.to_string()))?;
    Ok((origin.to_owned(), key))
}

/// A witness: its key, the logs it knows and their keys, and its state.
pub struct Witness {
    cosigner: Cosigner,
    logs: BTreeMap<String, Vec<Vkey>>,
    state_path: PathBuf,
    state: Mutex<WitnessState>,
}

impl Witness {
    /// A witness for `logs` (origin and a key trusted for it; an origin may come with several
    /// keys), with its state read from `state_path` (a missing file is a new witness).
    pub fn open(cosigner: Cosigner, logs: Vec<(String, Vkey)>, state_path: PathBuf) -> Result<Self, WitnessError> {
        let state = WitnessState::load(&state_path)?;
        let mut by_origin: BTreeMap<String, Vec<Vkey>> = BTreeMap::new();
        for (origin, key) in logs {
            by_origin.entry(origin).or_default().push(key);
        }
        Ok(Self { cosigner, logs: by_origin, state_path, state: Mutex::new(state) })
    }

    /// The witness's verifier key (`<name>+<key ID>+<base64(0x04 || key)>`).
    pub fn verifier_key(&self) -> String {
        self.cosigner.verifier_key()
    }

    /// Handles an `add-checkpoint` body; returns the cosignature lines to answer with.
    pub async fn add_checkpoint(&self, body: &[u8]) -> Result<String, AddError> {
        let body = std::str::from_utf8(body).map_err(|_| AddError::Malformed("the body is not UTF-8".into()))?;
        let request = AddCheckpoint::parse(body).map_err(AddError::Malformed)?;
        let note = note::parse(&request.checkpoint).map_err(|e| AddError::Malformed(e.to_string()))?;
        let checkpoint = note::parse_checkpoint(&note.text).map_err(|e| AddError::Malformed(e.to_string()))?;
        let origin = checkpoint.origin.clone();
        let keys = self.logs.get(&origin).ok_or_else(|| AddError::UnknownLog(origin.clone()))?;
        match note::check_ed25519(&note, keys) {
            Signed::Verified => {}
            Signed::NoKnownKey => {
                return Err(AddError::Forbidden(format!("no signature by a key trusted for `{origin}`")));
            }
            Signed::BadSignature => {
                return Err(AddError::Forbidden(format!(
                    "a signature by a key trusted for `{origin}` does not verify"
                )));
            }
        }
        if request.old > checkpoint.size {
            return Err(AddError::Malformed(format!(
                "the old size {} is larger than the checkpoint's size {}",
                request.old, checkpoint.size
            )));
        }
        // Checked and stored under one lock: see the module comment.
        let mut state = self.state.lock().await;
        let known = state.logs.get(&origin);
        let known_size = known.map_or(0, |k| k.size);
        if request.old != known_size {
            return Err(AddError::Conflict(known_size));
        }
        let refuse = |why: String| {
            tracing::warn!(origin = %origin, size = checkpoint.size, old = request.old, why = %why, "refused to cosign a checkpoint");
            AddError::Inconsistent(why)
        };
        if checkpoint.size == 0 && checkpoint.root != merkle::empty_root() {
            return Err(refuse("a checkpoint of size 0 must have the empty tree's root".into()));
        }
        match known {
            None => {
                if !request.proof.is_empty() {
                    return Err(refuse("a consistency proof from size 0 must be empty".into()));
                }
            }
            Some(known) => {
                let known_root: Hash = STANDARD
                    .decode(&known.root)
                    .ok()
                    .and_then(|b| Hash::try_from(b).ok())
                    .ok_or_else(|| refuse(format!("the stored root of `{origin}` is unreadable")))?;
                if request.old == 0 {
                    if !request.proof.is_empty() {
                        return Err(refuse("a consistency proof from size 0 must be empty".into()));
                    }
                } else if !merkle::verify_consistency(
                    request.old,
                    checkpoint.size,
                    &request.proof,
                    &known_root,
                    &checkpoint.root,
                ) {
                    return Err(refuse(format!(
                        "size {} is not consistent with size {} cosigned before",
                        checkpoint.size, request.old
                    )));
                }
            }
        }
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_secs().max(1));
        let line = self.cosigner.cosign(&note.text, now);
        let mut next = state.clone();
        let log_signatures: String = note
            .signatures
            .iter()
            .filter(|s| keys.iter().any(|k| k.matches(s)))
            .map(|s| format!("{}\n", s.line))
            .collect();
        next.logs.insert(
            origin.clone(),
            LogState {
                size: checkpoint.size,
                root: STANDARD.encode(checkpoint.root),
                checkpoint: format!("{}\n{log_signatures}{line}\n", note.text),
            },
        );
        next.save(&self.state_path)?;
        *state = next;
        tracing::info!(origin = %origin, size = checkpoint.size, "cosigned a checkpoint");
        Ok(format!("{line}\n"))
    }

    /// The newest checkpoint cosigned for the log whose origin hashes to `origin_hash` (hex SHA-256).
    pub async fn latest(&self, origin_hash: &str) -> Option<String> {
        let state = self.state.lock().await;
        state.logs.iter().find_map(|(origin, log)| {
            let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, origin.as_bytes());
            (hex::encode(digest.as_ref()) == origin_hash).then(|| log.checkpoint.clone())
        })
    }
}

/// The witness's HTTP routes.
pub fn router(witness: Arc<Witness>) -> Router {
    Router::new()
        .route("/add-checkpoint", post(add_checkpoint))
        .route("/{origin_hash}/checkpoint", get(latest))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(witness)
}

async fn add_checkpoint(State(witness): State<Arc<Witness>>, body: Bytes) -> Response {
    match witness.add_checkpoint(&body).await {
        Ok(lines) => (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], lines).into_response(),
        Err(refusal) => refusal.into_response(),
    }
}

async fn latest(State(witness): State<Arc<Witness>>, UrlPath(origin_hash): UrlPath<String>) -> Response {
    match witness.latest(&origin_hash).await {
        Some(note) => (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], note).into_response(),
        None => (StatusCode::NOT_FOUND, "this witness has cosigned no checkpoint of that log\n").into_response(),
    }
}

/// Serves `witness` on `listener` until `shutdown` is cancelled.
pub async fn serve(
    listener: tokio::net::TcpListener,
    witness: Arc<Witness>,
    shutdown: tokio_util::sync::CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router(witness)).with_graceful_shutdown(shutdown.cancelled_owned()).await
}

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;
