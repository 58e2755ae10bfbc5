//! Timestamped Ed25519 checkpoint cosignatures (c2sp.org/tlog-cosignature, `cosignature/v1`): a
//! witness signs `cosignature/v1\ntime <unix seconds>\n` followed by the checkpoint's text, and
//! writes `— <name> base64(key ID || timestamp (8 bytes, big-endian) || signature (64 bytes))`; the key
//! ID is computed with type byte 0x04. Also the offline check that an export's newest checkpoint is
//! cosigned by a quorum of trusted witnesses.

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::export::{ExportLine, Problem};
use crate::witness::note::{self, COSIGNATURE_TYPE, NoteFormatError, SignatureLine, Vkey};

/// The message a cosigner signs for checkpoint text `body` at `time`.
pub fn signed_message(body: &str, time: u64) -> String {
    format!("cosignature/v1\ntime {time}\n{body}")
}

/// A witness's cosigning key.
pub struct Cosigner {
    name: String,
    pair: Ed25519KeyPair,
}

impl std::fmt::Debug for Cosigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cosigner").field("name", &self.name).finish_non_exhaustive()
    }
}

impl Cosigner {
    /// A cosigner named `name` (a schema-less URL, by convention) with a PKCS#8 Ed25519 key.
    pub fn from_pkcs8(name: &str, pkcs8: &[u8]) -> Result<Self, NoteFormatError> {
        let bad = |why: String| NoteFormatError::Key { key: name.to_owned(), why };
        if name.is_empty() || name.contains('+') || name.chars().any(char::is_whitespace) {
            return Err(bad("the name must be non-empty without '+' or spaces".to_owned()));
        }
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8)
            .or_else(|_| Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8))
            .map_err(|e| bad(e.to_string()))?;
        Ok(Self { name: name.to_owned(), pair })
    }

    /// A new random key; returns the cosigner and its PKCS#8 bytes (to keep).
    pub fn generate(name: &str) -> Result<(Self, Vec<u8>), NoteFormatError> {
        let document = Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new())
            .map_err(|e| NoteFormatError::Key { key: name.to_owned(), why: e.to_string() })?;
        let bytes = document.as_ref().to_vec();
        Ok((Self::from_pkcs8(name, &bytes)?, bytes))
    }

    /// The cosigner's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The verifier key logs and verifiers are given: `<name>+<key ID hex>+<base64(0x04 || key)>`.
    pub fn verifier_key(&self) -> String {
        let public = self.pair.public_key().as_ref();
        let mut encoded = vec![COSIGNATURE_TYPE];
        encoded.extend_from_slice(public);
        format!(
            "{}+{}+{}",
            self.name,
            hex::encode(note::key_id(&self.name, COSIGNATURE_TYPE, public)),
            STANDARD.encode(encoded)
        )
    }

    /// The cosignature line (without its newline) over checkpoint text `body` at `time`.
    pub fn cosign(&self, body: &str, time: u64) -> String {
        let signature = self.pair.sign(signed_message(body, time).as_bytes());
        let mut blob = note::key_id(&self.name, COSIGNATURE_TYPE, self.pair.public_key().as_ref()).to_vec();
        blob.extend_from_slice(&time.to_be_bytes());
        blob.extend_from_slice(signature.as_ref());
        format!("\u{2014} {} {}", self.name, STANDARD.encode(blob))
    }
}

/// Why a cosignature line by a known witness key is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CosignatureError {
    /// Not key ID, 8-byte timestamp and a 64-byte signature.
    #[error("the cosignature by `{0}` is not a timestamp and an Ed25519 signature")]
    Malformed(String),
    /// The signature does not verify over the checkpoint.
    #[error("the cosignature by `{0}` does not verify over the checkpoint")]
    BadSignature(String),
}

/// A witness's verifier key (type 0x04).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CosignerKey(pub Vkey);

impl CosignerKey {
    /// Parses `<name>+<key ID hex>+<base64(0x04 || key)>`.
    pub fn parse(text: &str) -> Result<Self, NoteFormatError> {
        Vkey::parse(text, COSIGNATURE_TYPE).map(Self)
    }

    /// The witness's name.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// `Ok(None)` when `line` is not by this key; `Ok(Some(timestamp))` when it is and verifies over
    /// checkpoint text `body`; an error when it is by this key and does not verify.
    pub fn verify(&self, body: &str, line: &SignatureLine) -> Result<Option<u64>, CosignatureError> {
        if !self.0.matches(line) {
            return Ok(None);
        }
        let Some((time, signature)) = line.signature.split_first_chunk::<8>() else {
            return Err(CosignatureError::Malformed(self.0.name.clone()));
        };
        if signature.len() != 64 {
            return Err(CosignatureError::Malformed(self.0.name.clone()));
        }
        let time = u64::from_be_bytes(*time);
        if time == 0 || time > i64::MAX as u64 {
            return Err(CosignatureError::Malformed(self.0.name.clone()));
        }
        if !self.0.verify_ed25519(signed_message(body, time).as_bytes(), signature) {
            return Err(CosignatureError::BadSignature(self.0.name.clone()));
        }
        Ok(Some(time))
    }
}

impl std::fmt::Display for CosignerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Which of `keys` cosigned `note` (indexes into `keys`); a line by a known key that does not verify
/// is an error, lines by other keys are ignored.
pub fn cosigners(note_text: &str, keys: &[CosignerKey]) -> Result<Vec<usize>, String> {
    let parsed = note::parse(note_text).map_err(|e| e.to_string())?;
    let mut found = Vec::new();
    for line in &parsed.signatures {
        for (i, key) in keys.iter().enumerate() {
            if key.verify(&parsed.text, line).map_err(|e| e.to_string())?.is_some() && !found.contains(&i) {
                found.push(i);
            }
        }
    }
    Ok(found)
}

/// Checks that the newest checkpoint of an export is cosigned by at least `quorum` of the witness
/// `keys` (consistency between checkpoints is checked by `export::verify`, so the newest one vouches
/// for all before it). Returns the problems, empty when the quorum holds.
pub fn check_export(lines: &[ExportLine], keys: &[CosignerKey], quorum: usize) -> Vec<Problem> {
    let newest = lines
        .iter()
        .filter_map(|l| match l {
            ExportLine::Checkpoint { signed_note } => {
                let size = note::parse(signed_note).ok().and_then(|n| note::parse_checkpoint(&n.text).ok())?.size;
                Some((size, signed_note))
            }
            ExportLine::Event(_) => None,
        })
        .max_by_key(|(size, _)| *size);
    let problem = |size: Option<u64>, message: String| Problem { tree_size: size, message, ..Problem::default() };
    let Some((size, note_text)) = newest else {
        return vec![problem(None, "no checkpoint to check for witness cosignatures".to_owned())];
    };
    match cosigners(note_text, keys) {
        Err(why) => vec![problem(Some(size), why)],
        Ok(found) if found.len() >= quorum => Vec::new(),
        Ok(found) => {
            let missing: Vec<&str> =
                keys.iter().enumerate().filter(|(i, _)| !found.contains(i)).map(|(_, k)| k.name()).collect();
            vec![problem(
                Some(size),
                format!(
                    "the newest checkpoint is cosigned by {} of the {quorum} witnesses required (missing: {})",
                    found.len(),
                    missing.join(", ")
                ),
            )]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of c2sp.org/tlog-cosignature (its witness key is not published, so its key ID and
    /// timestamp are read, and the signed-message example is rebuilt from them).
    const SPEC_BODY: &str = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";
    const SPEC_COSIGNATURE: &str = "\u{2014} witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==";

    #[test]
    fn the_spec_cosignature_example_carries_its_timestamp_and_message() {
        let line = note::parse_signature_line(SPEC_COSIGNATURE).expect("parses");
        assert_eq!(line.name, "witness.example.com/w1");
        assert_eq!(line.signature.len(), 8 + 64);
        let time = u64::from_be_bytes(line.signature[..8].try_into().expect("8 bytes"));
        assert_eq!(time, 1_679_315_147);
        assert_eq!(
            signed_message(SPEC_BODY, time),
            "cosignature/v1\ntime 1679315147\nexample.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
        );
    }

    #[test]
    fn a_cosignature_round_trips_and_a_changed_checkpoint_or_time_does_not_verify() {
        let (cosigner, pkcs8) = Cosigner::generate("witness.example/w1").expect("key");
        let key = CosignerKey::parse(&cosigner.verifier_key()).expect("vkey");
        let reloaded = Cosigner::from_pkcs8("witness.example/w1", &pkcs8).expect("reloads");
        assert_eq!(reloaded.verifier_key(), cosigner.verifier_key());
        let line = note::parse_signature_line(&cosigner.cosign(SPEC_BODY, 1_700_000_000)).expect("parses");
        assert_eq!(key.verify(SPEC_BODY, &line), Ok(Some(1_700_000_000)));
        let changed = SPEC_BODY.replace("20852163", "20852164");
        assert!(matches!(key.verify(&changed, &line), Err(CosignatureError::BadSignature(_))));
        let mut later = line.clone();
        later.signature[7] ^= 1;
        assert!(key.verify(SPEC_BODY, &later).is_err());
        // A plain note key (type 0x01) is not a cosigner key.
        let (log, _) = crate::checkpoint::Signer::generate("witness.example/w1").expect("key");
        assert!(CosignerKey::parse(&log.verifier_key()).is_err());
        let other =
            CosignerKey::parse(&Cosigner::generate("witness.example/w1").expect("key").0.verifier_key()).expect("vkey");
        assert_eq!(other.verify(SPEC_BODY, &line), Ok(None));
    }

    #[test]
    fn an_export_needs_its_newest_checkpoint_cosigned_by_the_quorum() {
        let (w1, w2) = (Cosigner::generate("w1").expect("key").0, Cosigner::generate("w2").expect("key").0);
        let keys =
            [CosignerKey::parse(&w1.verifier_key()).expect("k"), CosignerKey::parse(&w2.verifier_key()).expect("k")];
        let (log, _) = crate::checkpoint::Signer::generate("log").expect("key");
        let old = log.sign("o", 1, &[1; 32]);
        let new = log.sign("o", 2, &[2; 32]);
        let body = |n: &str| n.split_once("\n\n").map(|(b, _)| format!("{b}\n")).expect("body");
        let cosigned = |n: &str, by: &[&Cosigner]| {
            by.iter().fold(n.to_owned(), |acc, w| format!("{acc}{}\n", w.cosign(&body(n), 1_700_000_000)))
        };
        let export = |notes: Vec<String>| -> Vec<ExportLine> {
            notes.into_iter().map(|signed_note| ExportLine::Checkpoint { signed_note }).collect()
        };
        let both = export(vec![cosigned(&old, &[&w1, &w2]), cosigned(&new, &[&w1, &w2])]);
        assert!(check_export(&both, &keys, 2).is_empty());
        let stale = export(vec![cosigned(&old, &[&w1, &w2]), cosigned(&new, &[&w1])]);
        let problems = check_export(&stale, &keys, 2);
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].tree_size, Some(2));
        assert!(problems[0].message.contains("1 of the 2") && problems[0].message.contains("w2"), "{problems:?}");
        assert!(check_export(&stale, &keys, 1).is_empty());
        // A forged line under a trusted key's name and ID is refused, not just left uncounted.
        let forged = cosigned(&new, &[&w1]).replace(&body(&new), &body(&log.sign("o", 2, &[3; 32])));
        assert!(!check_export(&export(vec![forged]), &keys, 1).is_empty());
    }
}
