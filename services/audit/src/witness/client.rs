//! The log's side of c2sp.org/tlog-witness: submit a checkpoint with a consistency proof from the
//! size the witness last cosigned, and check that what comes back is a cosignature by the witness's
//! key over that checkpoint.

use std::time::Duration;

use crate::merkle::Hash;
use crate::witness::cosignature::CosignerKey;
use crate::witness::note;
use crate::witness::protocol::AddCheckpoint;

/// A cosignature received from a witness.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cosignature {
    /// The signature line, without its newline.
    pub line: String,
    /// The witness's timestamp (Unix seconds).
    pub time: u64,
}

/// Why a witness did not cosign.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// 409: the witness last cosigned another size (carried); submit again from that size.
    #[error("the witness last cosigned size {0}")]
    Conflict(u64),
    /// Any other refusal, with the witness's status and message.
    #[error("the witness refused ({status}): {message}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The body, shortened.
        message: String,
    },
    /// The witness could not be reached or did not answer in time.
    #[error("the witness is unreachable: {0}")]
    Unreachable(String),
    /// The answer is not a valid cosignature by the witness's key over the checkpoint.
    #[error("the witness's answer is not its cosignature: {0}")]
    BadCosignature(String),
}

/// A configured witness.
#[derive(Debug, Clone)]
pub struct WitnessClient {
    url: String,
    key: CosignerKey,
    http: reqwest::Client,
}

impl WitnessClient {
    /// A client for the witness whose submission prefix is `url` (without `/add-checkpoint`) and
    /// whose cosignatures verify with `key`; each request gives up after `timeout`.
    pub fn new(url: &str, key: CosignerKey, timeout: Duration) -> Result<Self, SubmitError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(|e| SubmitError::Unreachable(e.to_string()))?;
        Ok(Self { url: url.trim_end_matches('/').to_owned(), key, http })
    }

    /// The witness's key.
    pub fn key(&self) -> &CosignerKey {
        &self.key
    }

    /// The witness's submission prefix.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Submits `checkpoint` (a signed note) with the consistency `proof` from `old`.
    pub async fn add_checkpoint(&self, old: u64, proof: &[Hash], checkpoint: &str) -> Result<Cosignature, SubmitError> {
        let body = AddCheckpoint { old, proof: proof.to_vec(), checkpoint: checkpoint.to_owned() }.to_body();
        let response = self
            .http
            .post(format!("{}/add-checkpoint", self.url))
            .header(reqwest::header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(body)
            .send()
            .await
            .map_err(|e| SubmitError::Unreachable(prfix_runtime::error::chain(&e)))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| SubmitError::Unreachable(prfix_runtime::error::chain(&e)))?;
        if status == reqwest::StatusCode::CONFLICT {
            return text
                .trim_end_matches('\n')
                .parse()
                .map(SubmitError::Conflict)
                .map_err(|_| SubmitError::BadCosignature(format!("409 with a body that is not a size: `{text}`")))
                .and_then(Err);
        }
        if !status.is_success() {
            let message: String = text.trim().chars().take(300).collect();
            return Err(SubmitError::Refused { status: status.as_u16(), message });
        }
        let parsed = note::parse(checkpoint).map_err(|e| SubmitError::BadCosignature(e.to_string()))?;
        for line in text.lines() {
            let Ok(signature) = note::parse_signature_line(line) else { continue };
            match self.key.verify(&parsed.text, &signature) {
                Ok(Some(time)) => return Ok(Cosignature { line: line.to_owned(), time }),
                Ok(None) => {}
                Err(e) => return Err(SubmitError::BadCosignature(e.to_string())),
            }
        }
        Err(SubmitError::BadCosignature(format!("no line by `{}` in the answer", self.key.name())))
    }
}
