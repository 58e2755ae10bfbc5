//! Password hashing with argon2id at the OWASP minimum (m = 19456 KiB, t = 2, p = 1), off the async
//! threads and within a memory cap, so that a login flood is refused with RESOURCE_EXHAUSTED
//! instead of exhausting memory. Hashes are PHC strings.
//!
//! The cap (`password_hash_memory_mib`) buys a number of argon2 working areas of 19 MiB each,
//! allocated once and reused by every hash: as many hashes run at once as there are areas. Letting
//! argon2 allocate per hash instead grew the process by far more than the hashes in flight (the
//! allocator keeps freed 19 MiB areas in the arenas of the many blocking threads that ran them:
//! 50 MB became 534 MB in a login storm).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use argon2::{Algorithm, Argon2, Block, Params, Version};
use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

/// Memory cost in KiB.
pub const M_COST: u32 = 19_456;
/// Iterations.
pub const T_COST: u32 = 2;
/// Parallelism.
pub const P_COST: u32 = 1;
const OUTPUT_LEN: usize = 32;
/// Memory one hash takes, in MiB (19456 KiB).
pub const MIB_PER_HASH: usize = M_COST as usize / 1024;

/// The number of hashes at once that `memory_mib` allows (at least one).
pub fn concurrency_for(memory_mib: usize) -> usize {
    (memory_mib / MIB_PER_HASH).max(1)
}

/// An argon2 working area for `M_COST` (one block per KiB).
type Area = Vec<Block>;

/// Why hashing or verifying could not be done.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// Too many hashes in progress; try again later.
    #[error("too many logins in progress; try again shortly")]
    Busy,
    /// A stored hash is not a PHC argon2id string we understand.
    #[error("stored password hash is malformed: {0}")]
    Malformed(String),
    /// argon2 refused its input.
    #[error("argon2: {0}")]
    Argon2(String),
    /// The blocking task failed.
    #[error("password hashing task failed: {0}")]
    Task(String),
}

/// The hasher; cheap to clone.
#[derive(Clone)]
pub struct Passwords {
    /// One permit per working area: a holder is sure to find an area in `areas`.
    permits: Arc<Semaphore>,
    /// The working areas not in use.
    areas: Arc<Mutex<Vec<Area>>>,
    queue_wait: Duration,
    dummy: Arc<String>,
}

fn new_area() -> Area {
    vec![Block::default(); M_COST as usize]
}

fn argon2id(m: u32, t: u32, p: u32) -> Result<Argon2<'static>, PasswordError> {
    let params = Params::new(m, t, p, Some(OUTPUT_LEN)).map_err(|e| PasswordError::Argon2(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

fn hash_blocking(password: &[u8], area: &mut [Block]) -> Result<String, PasswordError> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let mut out = [0u8; OUTPUT_LEN];
    argon2id(M_COST, T_COST, P_COST)?
        .hash_password_into_with_memory(password, &salt, &mut out, area)
        .map_err(|e| PasswordError::Argon2(e.to_string()))?;
    Ok(format!(
        "$argon2id$v=19$m={M_COST},t={T_COST},p={P_COST}${}${}",
        STANDARD_NO_PAD.encode(salt),
        STANDARD_NO_PAD.encode(out)
    ))
}

fn verify_blocking(password: &[u8], phc: &str, area: &mut [Block]) -> Result<bool, PasswordError> {
    let malformed = |why: &str| PasswordError::Malformed(why.to_owned());
    let parts: Vec<&str> = phc.split('$').collect();
    let ["", "argon2id", "v=19", params, salt, hash] = parts.as_slice() else {
        return Err(malformed("not $argon2id$v=19$..."));
    };
    let mut m = None;
    let mut t = None;
    let mut p = None;
    for kv in params.split(',') {
        let (k, v) = kv.split_once('=').ok_or_else(|| malformed("parameter without ="))?;
        let v: u32 = v.parse().map_err(|_| malformed("parameter is not a number"))?;
        match k {
            "m" => m = Some(v),
            "t" => t = Some(v),
            "p" => p = Some(v),
            _ => return Err(malformed("unknown parameter")),
        }
    }
    let (Some(m), Some(t), Some(p)) = (m, t, p) else { return Err(malformed("missing m, t or p")) };
    // Hashes are only ever written with M_COST; a larger one would not fit the working area (and
    // a stored row must not make the gateway allocate what it says).
    if m > M_COST {
        return Err(malformed("memory cost above the gateway's"));
    }
    let salt = STANDARD_NO_PAD.decode(salt).map_err(|_| malformed("salt is not base64"))?;
    let expected = STANDARD_NO_PAD.decode(hash).map_err(|_| malformed("hash is not base64"))?;
    let params = Params::new(m, t, p, Some(expected.len())).map_err(|e| PasswordError::Argon2(e.to_string()))?;
    let mut out = vec![0u8; expected.len()];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into_with_memory(password, &salt, &mut out, area)
        .map_err(|e| PasswordError::Argon2(e.to_string()))?;
    Ok(bool::from(out.ct_eq(&expected)))
}

impl Passwords {
    /// A hasher within `memory_mib` of argon2 memory: [`concurrency_for`] hashes at once, each in
    /// a working area allocated here and reused; a caller waits at most `queue_wait` for a turn
    /// before getting [`PasswordError::Busy`].
    pub fn new(memory_mib: usize, queue_wait: Duration) -> Result<Self, PasswordError> {
        let mut areas: Vec<Area> = (0..concurrency_for(memory_mib)).map(|_| new_area()).collect();
        // The dummy hash makes "no such user" cost what "wrong password" costs.
        let mut random = [0u8; 24];
        rand::rng().fill_bytes(&mut random);
        let dummy = match areas.first_mut() {
            Some(area) => hash_blocking(&random, area)?,
            None => hash_blocking(&random, &mut new_area())?,
        };
        Ok(Self {
            permits: Arc::new(Semaphore::new(areas.len())),
            areas: Arc::new(Mutex::new(areas)),
            queue_wait,
            dummy: Arc::new(dummy),
        })
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut [Block]) -> Result<T, PasswordError> + Send + 'static,
    ) -> Result<T, PasswordError> {
        let permit = tokio::time::timeout(self.queue_wait, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| PasswordError::Busy)?
            .map_err(|_| PasswordError::Busy)?;
        // The permit travels with the work: a caller that goes away does not free the slot while
        // the hash still runs (which would let cancelled logins exceed the cap).
        let areas = self.areas.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            // A permit holder always finds an area; a fresh one would only stand in if an area
            // was lost to a panic, and it replaces it.
            let mut area = areas.lock().unwrap_or_else(PoisonError::into_inner).pop().unwrap_or_else(new_area);
            let result = work(&mut area);
            areas.lock().unwrap_or_else(PoisonError::into_inner).push(area);
            result
        })
        .await
        .map_err(|e| PasswordError::Task(e.to_string()))?
    }

    /// A PHC string for `password`.
    pub async fn hash(&self, password: &SecretString) -> Result<String, PasswordError> {
        let password = password.expose_secret().as_bytes().to_vec();
        self.run(move |area| hash_blocking(&password, area)).await
    }

    /// Whether `password` matches `stored`; with `None` (unknown user) a dummy hash is checked so
    /// that the answer takes as long, and is always false.
    pub async fn verify(&self, password: &SecretString, stored: Option<&str>) -> Result<bool, PasswordError> {
        let password = password.expose_secret().as_bytes().to_vec();
        let known = stored.is_some();
        let phc = stored.map_or_else(|| self.dummy.as_str().to_owned(), str::to_owned);
        let matched = self.run(move |area| verify_blocking(&password, &phc, area)).await?;
        Ok(known && matched)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rfc_9106_argon2id_test_vector_passes() {
        // RFC 9106 section 5.3: Argon2id, version 0x13.
        let params = argon2::ParamsBuilder::new()
            .m_cost(32)
            .t_cost(3)
            .p_cost(4)
            .output_len(32)
            .data(argon2::AssociatedData::new(&[0x04; 12]).expect("12 bytes fit"))
            .build()
            .expect("valid parameters");
        let secret = [0x03; 8];
        let argon = Argon2::new_with_secret(&secret, Algorithm::Argon2id, Version::V0x13, params).expect("secret fits");
        let mut tag = [0u8; 32];
        argon.hash_password_into(&[0x01; 32], &[0x02; 16], &mut tag).expect("hashes");
        assert_eq!(hex::encode(tag), "0d640df58d78766c08c037a34a8b53c9d01ef0452d75b65eb52520e96b01e659");
    }

    #[test]
    fn hashes_verify_and_are_salted() {
        let area = &mut new_area();
        let a = hash_blocking(b"correct horse", area).expect("hash");
        let b = hash_blocking(b"correct horse", area).expect("hash");
        assert_ne!(a, b, "a fresh salt each time");
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{a}");
        assert!(verify_blocking(b"correct horse", &a, area).expect("verifies"));
        assert!(!verify_blocking(b"wrong horse", &a, area).expect("verifies"));
        assert!(verify_blocking(b"x", "$bcrypt$nope", area).is_err());
        let bigger = a.replace("m=19456", "m=1048576");
        assert!(verify_blocking(b"correct horse", &bigger, area).is_err(), "no hash over the working area");
    }

    #[tokio::test]
    async fn a_flood_beyond_the_cap_is_refused_not_queued_forever() {
        let passwords = Passwords::new(MIB_PER_HASH, Duration::from_millis(1)).expect("hasher");
        let secret = SecretString::from("pw");
        let calls: Vec<_> = (0..6).map(|_| passwords.hash(&secret)).collect();
        let results = futures::future::join_all(calls).await;
        assert!(results.iter().any(|r| matches!(r, Err(PasswordError::Busy))), "some calls must be refused");
        assert!(results.iter().any(Result::is_ok), "some calls must succeed");
    }

    #[test]
    fn the_memory_cap_sets_how_many_hashes_run_at_once() {
        assert_eq!(concurrency_for(0), 1, "one hash at least");
        assert_eq!(concurrency_for(19), 1);
        assert_eq!(concurrency_for(40), 2);
        assert_eq!(concurrency_for(304), 16);
    }
}
