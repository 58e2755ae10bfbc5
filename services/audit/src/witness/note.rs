//! C2SP signed notes (c2sp.org/signed-note) read generically: the text, its signature lines, key
//! IDs and verifier keys of any signature type. The checkpoint signer in `crate::checkpoint` writes
//! notes; this module is what a witness and a verifier need to read notes signed by several keys of
//! different types (the log's Ed25519 key, 0x01; witnesses' cosignature keys, 0x04).

use aws_lc_rs::signature::{ED25519, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::merkle::Hash;

/// Signature type of plain Ed25519 note signatures (the log's checkpoints).
pub const ED25519_TYPE: u8 = 0x01;
/// Signature type of timestamped Ed25519 cosignatures (c2sp.org/tlog-cosignature).
pub const COSIGNATURE_TYPE: u8 = 0x04;
/// The most signature lines read from one note (the spec asks for at least 16).
pub const MAX_SIGNATURES: usize = 64;

/// Why a note, a checkpoint or a key cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteFormatError {
    /// The note is not text, blank line, signature lines.
    #[error("malformed note: {0}")]
    Note(String),
    /// The note text is not a checkpoint.
    #[error("malformed checkpoint: {0}")]
    Checkpoint(String),
    /// A verifier key is not `<name>+<hex key ID>+<base64(type || key)>`.
    #[error("verifier key `{key}`: {why}")]
    Key {
        /// The key as given.
        key: String,
        /// What is wrong with it.
        why: String,
    },
}

/// One signature line: `— <name> base64(key ID || signature)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureLine {
    /// The key name.
    pub name: String,
    /// The 4-byte key ID.
    pub key_id: [u8; 4],
    /// What follows the key ID.
    pub signature: Vec<u8>,
    /// The line as written, without its newline.
    pub line: String,
}

/// A note split into its text (with its final newline) and its signature lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// The signed text, ending in a newline.
    pub text: String,
    /// The signature lines, in order.
    pub signatures: Vec<SignatureLine>,
}

/// Reads one signature line (without its newline).
pub fn parse_signature_line(line: &str) -> Result<SignatureLine, NoteFormatError> {
    let bad = |why: &str| NoteFormatError::Note(format!("signature line `{line}`: {why}"));
    let rest = line.strip_prefix("\u{2014} ").ok_or_else(|| bad("does not start with an em dash and a space"))?;
    let (name, blob) = rest.split_once(' ').ok_or_else(|| bad("no space between key name and signature"))?;
    if name.is_empty() || name.contains('+') {
        return Err(bad("the key name is empty or holds a '+'"));
    }
    let blob = STANDARD.decode(blob).map_err(|_| bad("the signature is not base64"))?;
    if blob.len() < 5 {
        return Err(bad("the signature is shorter than a key ID"));
    }
    let mut key_id = [0u8; 4];
    key_id.copy_from_slice(&blob[..4]);
    Ok(SignatureLine { name: name.to_owned(), key_id, signature: blob[4..].to_vec(), line: line.to_owned() })
}

/// Splits a note at its last blank line and reads the signature lines after it.
pub fn parse(note: &str) -> Result<Note, NoteFormatError> {
    let bad = |why: &str| NoteFormatError::Note(why.to_owned());
    if note.chars().any(|c| c.is_ascii_control() && c != '\n') {
        return Err(bad("holds control characters other than newline"));
    }
    if !note.ends_with('\n') {
        return Err(bad("does not end with a newline"));
    }
    let split = note.rfind("\n\n").ok_or_else(|| bad("no blank line before the signatures"))?;
    let (text, signatures) = (&note[..=split], &note[split + 2..]);
    let lines: Vec<&str> = signatures.lines().collect();
    if lines.is_empty() {
        return Err(bad("no signature lines"));
    }
    if lines.len() > MAX_SIGNATURES {
        return Err(bad(&format!("more than {MAX_SIGNATURES} signatures")));
    }
    let signatures = lines.into_iter().map(parse_signature_line).collect::<Result<_, _>>()?;
    Ok(Note { text: text.to_owned(), signatures })
}

/// The first lines of a checkpoint's text (c2sp.org/tlog-checkpoint); extension lines may follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointBody {
    /// The log's origin line.
    pub origin: String,
    /// The tree size.
    pub size: u64,
    /// The root hash.
    pub root: Hash,
}

/// Reads a checkpoint's text: origin, decimal size without leading zeroes, base64 root hash.
pub fn parse_checkpoint(text: &str) -> Result<CheckpointBody, NoteFormatError> {
    let bad = |why: &str| NoteFormatError::Checkpoint(why.to_owned());
    let mut lines = text.lines();
    let (Some(origin), Some(size), Some(root)) = (lines.next(), lines.next(), lines.next()) else {
        return Err(bad("expected origin, size and root hash lines"));
    };
    if origin.is_empty() {
        return Err(bad("the origin line is empty"));
    }
    if size.is_empty() || !size.bytes().all(|b| b.is_ascii_digit()) || (size.len() > 1 && size.starts_with('0')) {
        return Err(bad("the size is not a decimal without leading zeroes"));
    }
    let size = size.parse().map_err(|_| bad("the size is too large"))?;
    let root = STANDARD
        .decode(root)
        .ok()
        .and_then(|b| Hash::try_from(b).ok())
        .ok_or_else(|| bad("the root hash is not 32 bytes of base64"))?;
    Ok(CheckpointBody { origin: origin.to_owned(), size, root })
}

/// `SHA-256(name || "\n" || type || public key)[:4]`.
pub fn key_id(name: &str, kind: u8, public: &[u8]) -> [u8; 4] {
    let mut input = Vec::with_capacity(name.len() + 2 + public.len());
    input.extend_from_slice(name.as_bytes());
    input.push(b'\n');
    input.push(kind);
    input.extend_from_slice(public);
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &input);
    let mut out = [0u8; 4];
    out.copy_from_slice(&digest.as_ref()[..4]);
    out
}

/// An Ed25519 verifier key of a given signature type: `<name>+<hex key ID>+<base64(type || key)>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vkey {
    /// The key name.
    pub name: String,
    /// The key ID, checked against the name, type and key.
    pub key_id: [u8; 4],
    /// The signature type byte.
    pub kind: u8,
    /// The 32-byte Ed25519 public key.
    pub public: Vec<u8>,
}

impl Vkey {
    /// Parses a verifier key and checks that it is an Ed25519 key of type `kind`.
    pub fn parse(text: &str, kind: u8) -> Result<Self, NoteFormatError> {
        let text = text.trim();
        let bad = |why: &str| NoteFormatError::Key { key: text.to_owned(), why: why.to_owned() };
        let mut parts = text.splitn(3, '+');
        let (Some(name), Some(id_hex), Some(key_b64)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad("expected <name>+<key ID>+<key>"));
        };
        if name.is_empty() || name.chars().any(char::is_whitespace) {
            return Err(bad("the name is empty or holds spaces"));
        }
        let decoded = STANDARD.decode(key_b64).map_err(|_| bad("the key is not base64"))?;
        let [found, public @ ..] = decoded.as_slice() else { return Err(bad("the key is empty")) };
        if *found != kind {
            return Err(bad(&format!("signature type 0x{found:02x}, expected 0x{kind:02x}")));
        }
        if public.len() != 32 {
            return Err(bad("an Ed25519 key has 32 bytes"));
        }
        let key_id = key_id(name, kind, public);
        if hex::encode(key_id) != id_hex.to_ascii_lowercase() {
            return Err(bad("the key ID does not match the name and key"));
        }
        Ok(Self { name: name.to_owned(), key_id, kind, public: public.to_vec() })
    }

    /// True when `line` claims to be by this key (same name and key ID).
    pub fn matches(&self, line: &SignatureLine) -> bool {
        line.name == self.name && line.key_id == self.key_id
    }

    /// Verifies an Ed25519 signature by this key over `message`.
    pub fn verify_ed25519(&self, message: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(&ED25519, &self.public).verify(message, signature).is_ok()
    }
}

impl std::fmt::Display for Vkey {
    /// The verifier key text, `<name>+<key ID hex>+<base64(type || key)>`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut encoded = vec![self.kind];
        encoded.extend_from_slice(&self.public);
        write!(f, "{}+{}+{}", self.name, hex::encode(self.key_id), STANDARD.encode(encoded))
    }
}

/// What the plain Ed25519 (0x01) signatures of `note` by `keys` say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signed {
    /// At least one line by a known key verifies and none by a known key fails.
    Verified,
    /// No line names a known key.
    NoKnownKey,
    /// A line by a known key does not verify (the note is malformed per signed-note).
    BadSignature,
}

/// Checks the plain Ed25519 signatures of `note` by `keys`, ignoring lines by other keys.
pub fn check_ed25519(note: &Note, keys: &[Vkey]) -> Signed {
    let mut verified = false;
    for line in &note.signatures {
        for key in keys.iter().filter(|k| k.kind == ED25519_TYPE && k.matches(line)) {
            if !key.verify_ed25519(note.text.as_bytes(), &line.signature) {
                return Signed::BadSignature;
            }
            verified = true;
        }
    }
    if verified { Signed::Verified } else { Signed::NoKnownKey }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of c2sp.org/signed-note ("Verifier keys", "Example").
    const SPEC_VKEY: &str = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k";
    const SPEC_NOTE: &str = "This is an example message.\n\n\u{2014} example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n";

    #[test]
    fn the_signed_note_spec_example_verifies_and_a_changed_text_does_not() {
        let key = Vkey::parse(SPEC_VKEY, ED25519_TYPE).expect("the spec's vkey parses");
        assert_eq!(hex::encode(key.key_id), "530d903a");
        assert_eq!(key.to_string(), SPEC_VKEY);
        let note = parse(SPEC_NOTE).expect("the spec's note parses");
        assert_eq!(note.text, "This is an example message.\n");
        assert_eq!(check_ed25519(&note, std::slice::from_ref(&key)), Signed::Verified);
        let changed = parse(&SPEC_NOTE.replace("example message", "exarnple message")).expect("parses");
        assert_eq!(check_ed25519(&changed, std::slice::from_ref(&key)), Signed::BadSignature);
        // A line by another key is ignored, so only it is no known key.
        let other = SPEC_NOTE.replace("example.com/foo ", "example.com/bar ");
        assert_eq!(check_ed25519(&parse(&other).expect("parses"), &[key]), Signed::NoKnownKey);
    }

    #[test]
    fn malformed_notes_and_keys_are_refused_with_the_reason() {
        assert!(parse("text\n\n").is_err(), "no signatures");
        assert!(parse("text\n\u{2014} a AAAAAAA=\n").is_err(), "no blank line");
        assert!(parse("te\rxt\n\n\u{2014} a AAAAAAAA\n").is_err(), "control character");
        assert!(Vkey::parse(SPEC_VKEY, COSIGNATURE_TYPE).is_err(), "wrong type");
        assert!(Vkey::parse(&SPEC_VKEY.replace("530d903a", "530d903b"), ED25519_TYPE).is_err(), "wrong ID");
        assert!(parse_checkpoint("o\n012\nAAAA\n").is_err(), "leading zero");
        let root = STANDARD.encode([1u8; 32]);
        assert_eq!(
            parse_checkpoint(&format!("o\n12\n{root}\next\n")).expect("extension lines are allowed"),
            CheckpointBody { origin: "o".into(), size: 12, root: [1u8; 32] }
        );
    }
}
