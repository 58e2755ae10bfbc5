//! The forge's proof that a delivery is its own, checked over the raw body bytes in constant time
//! before anything reads them: GitHub's `X-Hub-Signature-256` (`sha256=` and the hex HMAC-SHA256
//! of the body), Gitea's `X-Gitea-Signature` and Forgejo's `X-Forgejo-Signature` (the hex
//! HMAC-SHA256), GitLab's `X-Gitlab-Token` (the secret itself).

use aws_lc_rs::{digest, hmac};
use http::HeaderMap;
use subtle::ConstantTimeEq;

use crate::settings::ForgeKind;

/// Why a delivery's signature does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The forge's signature header is absent.
    #[error("the delivery has no {0} header")]
    Missing(&'static str),
    /// The header is not a signature of the expected form.
    #[error("the {0} header is not a signature of the expected form")]
    Malformed(&'static str),
    /// The signature (or token) is not the connection's.
    #[error("the {0} header does not match the connection's webhook secret")]
    Mismatch(&'static str),
}

/// The headers carrying the signature of `kind`, in the order they are looked for.
fn signature_headers(kind: ForgeKind) -> &'static [&'static str] {
    match kind {
        ForgeKind::GitHub => &["X-Hub-Signature-256"],
        ForgeKind::GitLab => &["X-Gitlab-Token"],
        ForgeKind::Gitea => &["X-Gitea-Signature", "X-Forgejo-Signature"],
        ForgeKind::Forgejo => &["X-Forgejo-Signature", "X-Gitea-Signature"],
    }
}

/// Checks the delivery of a `kind` forge, `body` as received, against the connection's `secret`.
pub fn verify(kind: ForgeKind, secret: &[u8], headers: &HeaderMap, body: &[u8]) -> Result<(), SignatureError> {
    let names = signature_headers(kind);
    let found = names.iter().find_map(|name| headers.get(*name).map(|value| (*name, value.as_bytes())));
    let Some((name, value)) = found else {
        return Err(SignatureError::Missing(names[0]));
    };
    match kind {
        ForgeKind::GitLab => {
            // Digests of equal length, compared in constant time: neither the secret's bytes nor
            // its length can be found by timing.
            let sent = digest::digest(&digest::SHA256, value);
            let expected = digest::digest(&digest::SHA256, secret);
            if bool::from(sent.as_ref().ct_eq(expected.as_ref())) {
                Ok(())
            } else {
                Err(SignatureError::Mismatch(name))
            }
        }
        ForgeKind::GitHub | ForgeKind::Gitea | ForgeKind::Forgejo => {
            let hex_digest = match kind {
                ForgeKind::GitHub => value.strip_prefix(b"sha256=").ok_or(SignatureError::Malformed(name))?,
                _ => value,
            };
            let tag = hex::decode(hex_digest).map_err(|_| SignatureError::Malformed(name))?;
            let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
            // `hmac::verify` compares in constant time.
            hmac::verify(&key, body, &tag).map_err(|_| SignatureError::Mismatch(name))
        }
    }
}

/// The hex HMAC-SHA256 of `body` under `secret`, as GitHub and Gitea send it (tests and tools).
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    hex::encode(hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, secret), body).as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"It's a Secret to Everybody";

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().expect("header value"));
        }
        map
    }

    #[test]
    fn githubs_documented_example_signature_is_accepted() {
        // docs.github.com, "Validating webhook deliveries": the secret, payload and signature.
        let signature = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        let sent = headers(&[("x-hub-signature-256", signature)]);
        assert_eq!(verify(ForgeKind::GitHub, SECRET, &sent, b"Hello, World!"), Ok(()));
        assert_eq!(
            verify(ForgeKind::GitHub, SECRET, &sent, b"Hello, World?"),
            Err(SignatureError::Mismatch("X-Hub-Signature-256"))
        );
    }

    #[test]
    fn a_github_signature_without_its_prefix_or_in_bad_hex_is_malformed() {
        let bare = headers(&[("x-hub-signature-256", &sign(SECRET, b"x"))]);
        assert_eq!(
            verify(ForgeKind::GitHub, SECRET, &bare, b"x"),
            Err(SignatureError::Malformed("X-Hub-Signature-256"))
        );
        let bad = headers(&[("x-hub-signature-256", "sha256=zz")]);
        assert_eq!(
            verify(ForgeKind::GitHub, SECRET, &bad, b"x"),
            Err(SignatureError::Malformed("X-Hub-Signature-256"))
        );
    }

    #[test]
    fn gitea_and_forgejo_signatures_are_read_from_either_header() {
        let signature = sign(SECRET, b"{}");
        for name in ["x-gitea-signature", "x-forgejo-signature"] {
            let sent = headers(&[(name, &signature)]);
            assert_eq!(verify(ForgeKind::Gitea, SECRET, &sent, b"{}"), Ok(()));
            assert_eq!(verify(ForgeKind::Forgejo, SECRET, &sent, b"{}"), Ok(()));
        }
    }

    #[test]
    fn a_gitlab_token_must_be_the_secret() {
        let right = headers(&[("x-gitlab-token", "It's a Secret to Everybody")]);
        assert_eq!(verify(ForgeKind::GitLab, SECRET, &right, b"{}"), Ok(()));
        let wrong = headers(&[("x-gitlab-token", "It's a Secret")]);
        assert_eq!(verify(ForgeKind::GitLab, SECRET, &wrong, b"{}"), Err(SignatureError::Mismatch("X-Gitlab-Token")));
    }

    #[test]
    fn a_missing_signature_names_the_header_expected() {
        assert_eq!(
            verify(ForgeKind::GitHub, SECRET, &HeaderMap::new(), b"{}"),
            Err(SignatureError::Missing("X-Hub-Signature-256"))
        );
        assert_eq!(
            verify(ForgeKind::Gitea, SECRET, &HeaderMap::new(), b"{}"),
            Err(SignatureError::Missing("X-Gitea-Signature"))
        );
    }
}
