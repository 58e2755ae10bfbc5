//! Signed checkpoints in the C2SP signed-note format (c2sp.org/signed-note, c2sp.org/tlog-checkpoint):
//!
//! ```text
//! <origin>
//! <tree size>
//! <base64 root hash>
//!
//! — <key name> <base64(key hash (4 bytes) || Ed25519 signature (64 bytes))>
//! ```
//!
//! The key hash is the first four bytes of SHA-256(key name || "\n" || 0x01 || public key). The
//! verifier key is written as `<name>+<key hash hex>+<base64(0x01 || public key)>`.

use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::merkle::Hash;

/// Why a key or a note is unusable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NoteError {
    /// The signing key could not be read.
    #[error("signing key: {0}")]
    Key(String),
    /// The verifier key string is malformed.
    #[error("verifier key: {0}")]
    VerifierKey(String),
    /// The note's text is not a checkpoint.
    #[error("malformed checkpoint: {0}")]
    Malformed(String),
    /// No signature by the expected key, or it does not verify.
    #[error("checkpoint signature does not verify with key `{0}`")]
    BadSignature(String),
}

fn key_hash(name: &str, public: &[u8]) -> [u8; 4] {
    let mut input = Vec::with_capacity(name.len() + 2 + public.len());
    input.extend_from_slice(name.as_bytes());
    input.push(b'\n');
    input.push(0x01);
    input.extend_from_slice(public);
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &input);
    let mut out = [0u8; 4];
    out.copy_from_slice(&digest.as_ref()[..4]);
    out
}

/// The body of a checkpoint note.
pub fn body(origin: &str, size: u64, root: &Hash) -> String {
    format!("{origin}\n{size}\n{}\n", STANDARD.encode(root))
}

/// An Ed25519 checkpoint signer.
pub struct Signer {
    name: String,
    pair: Ed25519KeyPair,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer").field("name", &self.name).finish_non_exhaustive()
    }
}

impl Signer {
    /// A signer named `name` with a PKCS#8 (v1 or v2) Ed25519 key.
    pub fn from_pkcs8(name: &str, pkcs8: &[u8]) -> Result<Self, NoteError> {
        if name.is_empty() || name.contains(['+', ' ', '\n']) {
            return Err(NoteError::Key(format!("key name `{name}` must be non-empty without '+', spaces or newlines")));
        }
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8)
            .or_else(|_| Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8))
            .map_err(|e| NoteError::Key(e.to_string()))?;
        Ok(Self { name: name.to_owned(), pair })
    }

    /// A new random key; returns the signer and its PKCS#8 bytes (to keep).
    pub fn generate(name: &str) -> Result<(Self, Vec<u8>), NoteError> {
        let document = Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new())
            .map_err(|e| NoteError::Key(e.to_string()))?;
        let bytes = document.as_ref().to_vec();
        Ok((Self::from_pkcs8(name, &bytes)?, bytes))
    }

    /// The verifier key string operators hand to `prfix audit verify`.
    pub fn verifier_key(&self) -> String {
        let public = self.pair.public_key().as_ref();
        let mut encoded = vec![0x01];
        encoded.extend_from_slice(public);
        format!("{}+{}+{}", self.name, hex::encode(key_hash(&self.name, public)), STANDARD.encode(encoded))
    }

    /// The signed note of a checkpoint.
    pub fn sign(&self, origin: &str, size: u64, root: &Hash) -> String {
        let body = body(origin, size, root);
        let signature = self.pair.sign(body.as_bytes());
        let mut blob = key_hash(&self.name, self.pair.public_key().as_ref()).to_vec();
        blob.extend_from_slice(signature.as_ref());
        format!("{body}\n\u{2014} {} {}\n", self.name, STANDARD.encode(blob))
    }
}

/// A parsed verifier key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifierKey {
    /// Key name.
    pub name: String,
    hash: [u8; 4],
    public: Vec<u8>,
}

impl VerifierKey {
    /// Parses `<name>+<hex key hash>+<base64(0x01 || key)>`.
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let bad = |why: &str| NoteError::VerifierKey(why.to_owned());
        let mut parts = text.trim().splitn(3, '+');
        let (Some(name), Some(hash_hex), Some(key_b64)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad("expected <name>+<key hash>+<key>"));
        };
        let decoded = STANDARD.decode(key_b64).map_err(|_| bad("the key is not base64"))?;
        let [0x01, public @ ..] = decoded.as_slice() else { return Err(bad("not an Ed25519 key (type byte 0x01)")) };
        if public.len() != 32 {
            return Err(bad("an Ed25519 key has 32 bytes"));
        }
        let hash = key_hash(name, public);
        if hex::encode(hash) != hash_hex.to_ascii_lowercase() {
            return Err(bad("the key hash does not match the name and key"));
        }
        Ok(Self { name: name.to_owned(), hash, public: public.to_vec() })
    }

    /// Verifies `note` and returns its origin, size and root.
    pub fn verify(&self, note: &str) -> Result<(String, u64, Hash), NoteError> {
        let malformed = |why: &str| NoteError::Malformed(why.to_owned());
        let (body, signatures) =
            note.split_once("\n\n").ok_or_else(|| malformed("no blank line before the signatures"))?;
        let body = format!("{body}\n");
        let mut lines = body.lines();
        let (Some(origin), Some(size), Some(root), None) = (lines.next(), lines.next(), lines.next(), lines.next())
        else {
            return Err(malformed("the body must be origin, size and root hash lines"));
        };
        let size: u64 = size.parse().map_err(|_| malformed("the size is not a number"))?;
        let root: Hash = STANDARD
            .decode(root)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| malformed("the root hash is not 32 bytes of base64"))?;
        for line in signatures.lines() {
            let Some(rest) = line.strip_prefix("\u{2014} ") else { continue };
            let Some((name, blob)) = rest.split_once(' ') else { continue };
            if name != self.name {
                continue;
            }
            let Ok(blob) = STANDARD.decode(blob) else { continue };
            if blob.len() != 68 || blob[..4] != self.hash {
                continue;
            }
            if UnparsedPublicKey::new(&ED25519, &self.public).verify(body.as_bytes(), &blob[4..]).is_ok() {
                return Ok((origin.to_owned(), size, root));
            }
        }
        Err(NoteError::BadSignature(self.name.clone()))
    }
}

/// PEM text of PKCS#8 key bytes (`PRIVATE KEY`).
pub fn pkcs8_to_pem(der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for chunk in body.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(chunk));
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    pem
}

/// PKCS#8 key bytes of PEM text (`PRIVATE KEY`).
pub fn pem_to_pkcs8(pem: &str) -> Result<Vec<u8>, NoteError> {
    let body: String = pem
        .lines()
        .map(str::trim)
        .skip_while(|l| *l != "-----BEGIN PRIVATE KEY-----")
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    if body.is_empty() {
        return Err(NoteError::Key("no `PRIVATE KEY` PEM block".to_owned()));
    }
    STANDARD.decode(body).map_err(|e| NoteError::Key(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_checkpoint_verifies_and_any_change_does_not() {
        let (signer, pkcs8) = Signer::generate("prfix-audit").expect("key");
        let key = VerifierKey::parse(&signer.verifier_key()).expect("verifier key");
        let root = [7u8; 32];
        let note = signer.sign("example.com/log", 42, &root);
        assert_eq!(key.verify(&note).expect("verifies"), ("example.com/log".to_owned(), 42, root));
        assert!(note.starts_with("example.com/log\n42\n"));
        let reloaded = Signer::from_pkcs8("prfix-audit", &pkcs8).expect("reloads");
        assert_eq!(reloaded.verifier_key(), signer.verifier_key());
        for tampered in [note.replace("\n42\n", "\n43\n"), note.replace("example.com", "exarnple.com")] {
            assert!(key.verify(&tampered).is_err(), "{tampered}");
        }
        let other = Signer::generate("prfix-audit").expect("key").0;
        assert_eq!(
            VerifierKey::parse(&other.verifier_key()).expect("key").verify(&note),
            Err(NoteError::BadSignature("prfix-audit".into()))
        );
        assert!(VerifierKey::parse("nope").is_err());
    }
}
