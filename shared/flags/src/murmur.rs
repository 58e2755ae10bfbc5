//! MurmurHash3 x86 32-bit, the hash every Unleash client uses to place a context in a rollout or a
//! variant, and the two normalisations the client specification defines on top of it.

/// The seed of rollout placement (`flexibleRollout`, gradual rollouts).
pub const ROLLOUT_SEED: u32 = 0;
/// The seed of variant placement (client specification 4.3 and later).
pub const VARIANT_SEED: u32 = 86_028_157;

/// MurmurHash3 x86_32 of `data` with `seed`.
pub fn murmur3_x86_32(data: &[u8], seed: u32) -> u32 {
    const C1: u32 = 0xcc9e_2d51;
    const C2: u32 = 0x1b87_3593;
    let mix = |k: u32| k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
    let mut h = seed;
    let chunks = data.chunks_exact(4);
    let tail = chunks.remainder();
    for chunk in chunks {
        let k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        h ^= mix(k);
        h = h.rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64);
    }
    let mut k = 0u32;
    if tail.len() >= 3 {
        k ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        k ^= u32::from(tail[1]) << 8;
    }
    if let Some(first) = tail.first() {
        k ^= u32::from(*first);
        h ^= mix(k);
    }
    // The length is mixed in modulo 2^32, as the reference implementation does.
    h ^= data.len() as u32;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// `murmur3("groupId:identifier", seed) % normalizer + 1`: a number from 1 to `normalizer` that is
/// the same for the same group and identifier everywhere.
pub fn normalized(identifier: &str, group_id: &str, normalizer: u32, seed: u32) -> u32 {
    let normalizer = normalizer.max(1);
    murmur3_x86_32(format!("{group_id}:{identifier}").as_bytes(), seed) % normalizer + 1
}

/// The rollout position (1 to 100) of `identifier` in `group_id`.
pub fn rollout_position(identifier: &str, group_id: &str) -> u32 {
    normalized(identifier, group_id, 100, ROLLOUT_SEED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_reference_vectors() {
        // From the reference implementation's test suite (smhasher's verification values).
        assert_eq!(murmur3_x86_32(b"", 0), 0);
        assert_eq!(murmur3_x86_32(b"", 1), 0x514e_28b7);
        assert_eq!(murmur3_x86_32(b"test", 0), 0xba6b_d213);
        assert_eq!(murmur3_x86_32(b"Hello, world!", 1234), 0xfaf6_cdb3);
        assert_eq!(murmur3_x86_32(b"The quick brown fox jumps over the lazy dog", 0), 0x2e4f_f723);
    }

    #[test]
    fn rollout_positions_match_the_unleash_clients() {
        // The values the Unleash Node client's tests pin for normalizedStrategyValue.
        assert_eq!(rollout_position("123", "gr1"), 73);
        assert_eq!(rollout_position("999", "groupX"), 25);
    }
}
