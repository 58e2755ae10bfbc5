//! RS256 signing keys: loaded from PEM (PKCS#8 or PKCS#1) or generated, each with a `kid` that is
//! its RFC 7638 thumbprint, and published as a JWKS.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::KeyPair as _;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::EncodingKey;
use serde::{Deserialize, Serialize};

/// Why a key could not be loaded or made.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The PEM text holds no RSA private key we can use.
    #[error("not an RSA private key in PEM (PKCS#8 or PKCS#1): {0}")]
    Pem(String),
    /// Key generation failed.
    #[error("RSA key generation failed")]
    Generate,
    /// A JWK is not an RSA signing key.
    #[error("unusable JWK: {0}")]
    Jwk(String),
}

/// A public key as a JWK (RFC 7517), RSA only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// Key type: "RSA".
    pub kty: String,
    /// Key id.
    pub kid: String,
    /// "RS256".
    #[serde(default)]
    pub alg: Option<String>,
    /// "sig".
    #[serde(rename = "use", default)]
    pub use_: Option<String>,
    /// Modulus, base64url.
    pub n: String,
    /// Exponent, base64url.
    pub e: String,
}

/// A JWK set, as served at `/.well-known/jwks.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwks {
    /// The keys.
    pub keys: Vec<Jwk>,
}

/// A private signing key.
#[derive(Clone)]
pub struct SigningKey {
    /// Key id (RFC 7638 thumbprint).
    pub kid: String,
    encoding: EncodingKey,
    jwk: Jwk,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").field("kid", &self.kid).finish_non_exhaustive()
    }
}

fn pem_body(pem: &str) -> Result<(String, Vec<u8>), KeyError> {
    let mut label = None;
    let mut body = String::new();
    for line in pem.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("-----BEGIN ") {
            label = Some(rest.trim_end_matches('-').to_owned());
        } else if line.starts_with("-----END ") {
            break;
        } else if label.is_some() {
            body.push_str(line);
        }
    }
    let label = label.ok_or_else(|| KeyError::Pem("no BEGIN line".to_owned()))?;
    let der = STANDARD.decode(body).map_err(|e| KeyError::Pem(e.to_string()))?;
    Ok((label, der))
}

fn thumbprint(n: &str, e: &str) -> String {
    // RFC 7638: the required members in lexicographic order, no whitespace.
    let canonical = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
    URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes()))
}

impl SigningKey {
    /// Generates a 2048-bit key; returns it and its PKCS#8 PEM (to keep on disk).
    pub fn generate() -> Result<(Self, String), KeyError> {
        let pair = KeyPair::generate(KeySize::Rsa2048).map_err(|_| KeyError::Generate)?;
        let der = pair.as_der().map_err(|_| KeyError::Generate)?;
        let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
        let body = STANDARD.encode(der.as_ref());
        for chunk in body.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(chunk).map_err(|_| KeyError::Generate)?);
            pem.push('\n');
        }
        pem.push_str("-----END PRIVATE KEY-----\n");
        Ok((Self::from_pem(&pem)?, pem))
    }

    /// Loads a key from PEM text (`PRIVATE KEY` or `RSA PRIVATE KEY`).
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        let (label, der) = pem_body(pem)?;
        let pair = match label.as_str() {
            "PRIVATE KEY" => KeyPair::from_pkcs8(&der),
            "RSA PRIVATE KEY" => KeyPair::from_der(&der),
            other => return Err(KeyError::Pem(format!("unexpected PEM label `{other}`"))),
        }
        .map_err(|e| KeyError::Pem(e.to_string()))?;
        if pair.public_modulus_len() < 256 {
            return Err(KeyError::Pem("RSA keys must have at least 2048 bits".to_owned()));
        }
        let public = pair.public_key();
        let n = URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero());
        let e = URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero());
        let kid = thumbprint(&n, &e);
        let encoding = EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(|e| KeyError::Pem(e.to_string()))?;
        let jwk =
            Jwk { kty: "RSA".into(), kid: kid.clone(), alg: Some("RS256".into()), use_: Some("sig".into()), n, e };
        Ok(Self { kid, encoding, jwk })
    }

    /// The public half.
    pub fn jwk(&self) -> &Jwk {
        &self.jwk
    }

    /// Signs `claims` as an access token (RS256, `typ: at+jwt`, this key's `kid`).
    pub fn sign(&self, claims: &crate::Claims) -> Result<String, jsonwebtoken::errors::Error> {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.typ = Some(crate::ACCESS_TOKEN_TYPE.to_owned());
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_reloads_with_the_same_kid_and_publishes_as_a_jwk() {
        let (key, pem) = SigningKey::generate().expect("generates");
        let again = SigningKey::from_pem(&pem).expect("reloads");
        assert_eq!(key.kid, again.kid);
        assert_eq!(key.jwk(), again.jwk());
        assert_eq!(key.jwk().e, "AQAB");
        assert_eq!(key.kid.len(), 43, "a base64url SHA-256");
    }

    #[test]
    fn garbage_pem_is_refused_with_a_reason() {
        assert!(SigningKey::from_pem("hello").is_err());
        let err = SigningKey::from_pem("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
            .expect_err("refused");
        assert!(err.to_string().contains("CERTIFICATE"), "{err}");
    }

    #[test]
    fn the_rfc_7638_thumbprint_example_matches() {
        // RFC 7638 section 3.1.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        assert_eq!(thumbprint(n, "AQAB"), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
    }
}
