//! RFC 6962 / RFC 9162 Merkle trees over the audit log: tree heads, inclusion and consistency
//! proofs, and their verification. Leaf hash = SHA-256(0x00 || data); interior node =
//! SHA-256(0x01 || left || right); the empty tree's head is SHA-256 of nothing.
//!
//! Trees here are slices of leaf hashes (the log stores each event's leaf hash), so computing a
//! head is linear in the size; verification needs only the proof.

use sha2::{Digest, Sha256};

/// A SHA-256 value.
pub type Hash = [u8; 32];

/// The leaf hash of `data`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    h.finalize().into()
}

/// The hash of an interior node.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The head of the empty tree.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// The largest power of two smaller than `n` (n > 1).
fn split(n: u64) -> u64 {
    let mut k = 1;
    while k << 1 < n {
        k <<= 1;
    }
    k
}

/// Where tree computations get the heads of perfect subtrees: `perfect(start, size)` is the head
/// of the subtree over leaves `start..start + size`, where `size` is a power of two and `start` a
/// multiple of it. Every head and proof below is made of such subtrees (at most two per level),
/// so a store that keeps them (the log's stored subtree hashes) answers in O(log n) reads.
pub trait Subtrees {
    /// The head of the perfect subtree over `start..start + size`.
    fn perfect(&mut self, start: u64, size: u64) -> Hash;
}

/// Subtrees computed from the leaf hashes in memory.
pub struct Leaves<'a>(pub &'a [Hash]);

impl Subtrees for Leaves<'_> {
    fn perfect(&mut self, start: u64, size: u64) -> Hash {
        let from = usize::try_from(start).unwrap_or(usize::MAX).min(self.0.len());
        let to = usize::try_from(start.saturating_add(size)).unwrap_or(usize::MAX).min(self.0.len());
        root(&self.0[from..to])
    }
}

/// MTH: the head of the tree over `leaves` (leaf hashes).
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = usize::try_from(split(n as u64)).unwrap_or(n / 2);
            node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// MTH of leaves `start..start + n`, as the recursion of RFC 6962 meets it (`start` a multiple of
/// the power of two at or above `n`).
pub fn range_root(tree: &mut dyn Subtrees, start: u64, n: u64) -> Hash {
    if n == 0 {
        empty_root()
    } else if n.is_power_of_two() {
        tree.perfect(start, n)
    } else {
        let k = split(n);
        let left = tree.perfect(start, k);
        node_hash(&left, &range_root(tree, start + k, n - k))
    }
}

/// PATH: the inclusion proof of leaf `index` in the tree over `leaves`, from the leaf up.
/// `None` when the index is outside the tree.
pub fn inclusion_proof(index: usize, leaves: &[Hash]) -> Option<Vec<Hash>> {
    inclusion_proof_in(&mut Leaves(leaves), index as u64, leaves.len() as u64)
}

/// PATH of leaf `index` in the tree of the first `size` leaves of `tree`.
pub fn inclusion_proof_in(tree: &mut dyn Subtrees, index: u64, size: u64) -> Option<Vec<Hash>> {
    if index >= size {
        return None;
    }
    let mut proof = Vec::new();
    path(tree, index, 0, size, &mut proof);
    Some(proof)
}

fn path(tree: &mut dyn Subtrees, index: u64, start: u64, n: u64, out: &mut Vec<Hash>) {
    if n <= 1 {
        return;
    }
    let k = split(n);
    if index < k {
        path(tree, index, start, k, out);
        out.push(range_root(tree, start + k, n - k));
    } else {
        path(tree, index - k, start + k, n - k, out);
        out.push(tree.perfect(start, k));
    }
}

/// PROOF: the consistency proof from the tree of the first `first` leaves to the tree over all of
/// `leaves`. `None` unless 0 < first <= leaves.len().
pub fn consistency_proof(first: usize, leaves: &[Hash]) -> Option<Vec<Hash>> {
    consistency_proof_in(&mut Leaves(leaves), first as u64, leaves.len() as u64)
}

/// PROOF from the tree of the first `first` leaves of `tree` to the tree of its first `size`.
pub fn consistency_proof_in(tree: &mut dyn Subtrees, first: u64, size: u64) -> Option<Vec<Hash>> {
    if first == 0 || first > size {
        return None;
    }
    let mut proof = Vec::new();
    subproof(tree, first, 0, size, true, &mut proof);
    Some(proof)
}

fn subproof(tree: &mut dyn Subtrees, m: u64, start: u64, n: u64, complete: bool, out: &mut Vec<Hash>) {
    if m == n {
        if !complete {
            out.push(range_root(tree, start, n));
        }
        return;
    }
    let k = split(n);
    if m <= k {
        subproof(tree, m, start, k, complete, out);
        out.push(range_root(tree, start + k, n - k));
    } else {
        subproof(tree, m - k, start + k, n - k, false, out);
        out.push(tree.perfect(start, k));
    }
}

/// Verifies an inclusion proof (RFC 9162 section 2.1.3.2).
pub fn verify_inclusion(index: u64, size: u64, leaf: &Hash, proof: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut f, mut s) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if s == 0 {
            return false;
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    s == 0 && r == *root
}

/// Verifies a consistency proof between the heads of two tree sizes (RFC 9162 section 2.1.4.2).
pub fn verify_consistency(first: u64, second: u64, proof: &[Hash], first_root: &Hash, second_root: &Hash) -> bool {
    if first == 0 || first > second {
        return false;
    }
    if first == second {
        return proof.is_empty() && first_root == second_root;
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if first.is_power_of_two() {
        path.push(*first_root);
    }
    path.extend_from_slice(proof);
    let Some((start, rest)) = path.split_first() else { return false };
    let (mut f, mut s) = (first - 1, second - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let (mut fr, mut sr) = (*start, *start);
    for c in rest {
        if s == 0 {
            return false;
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    s == 0 && fr == *first_root && sr == *second_root
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(text: &str) -> Hash {
        let bytes = hex::decode(text).expect("hex");
        bytes.try_into().expect("32 bytes")
    }

    /// The eight inputs of the Certificate Transparency reference tests (RFC 6962 trees).
    fn reference_leaves() -> Vec<Hash> {
        ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"]
            .iter()
            .map(|d| leaf_hash(&hex::decode(d).expect("hex")))
            .collect()
    }

    /// Published heads of the trees of the first 0..=8 reference inputs.
    const ROOTS: [&str; 9] = [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    /// Published inclusion proofs: (zero-based leaf index, tree size, path).
    fn inclusion_vectors() -> Vec<(usize, usize, Vec<Hash>)> {
        vec![
            (
                0,
                8,
                vec![
                    h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
                    h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                    h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
                ],
            ),
            (
                5,
                8,
                vec![
                    h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
                    h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
                    h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
                ],
            ),
            (2, 3, vec![h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")]),
            (
                1,
                5,
                vec![
                    h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
                    h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                    h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
                ],
            ),
        ]
    }

    /// Published consistency proofs: (first size, second size, proof).
    fn consistency_vectors() -> Vec<(usize, usize, Vec<Hash>)> {
        vec![
            (1, 1, vec![]),
            (
                1,
                8,
                vec![
                    h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
                    h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                    h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
                ],
            ),
            (
                6,
                8,
                vec![
                    h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
                    h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
                    h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
                ],
            ),
            (
                2,
                5,
                vec![
                    h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                    h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
                ],
            ),
        ]
    }

    #[test]
    fn tree_heads_match_the_published_rfc_6962_values() {
        let leaves = reference_leaves();
        for (size, expected) in ROOTS.iter().enumerate() {
            assert_eq!(root(&leaves[..size]), h(expected), "size {size}");
        }
    }

    #[test]
    fn inclusion_proofs_match_the_published_vectors_and_verify() {
        let leaves = reference_leaves();
        for (index, size, expected) in inclusion_vectors() {
            let proof = inclusion_proof(index, &leaves[..size]).expect("in range");
            assert_eq!(proof, expected, "leaf {index} of {size}");
            assert!(verify_inclusion(index as u64, size as u64, &leaves[index], &proof, &h(ROOTS[size])));
        }
    }

    #[test]
    fn consistency_proofs_match_the_published_vectors_and_verify() {
        let leaves = reference_leaves();
        for (first, second, expected) in consistency_vectors() {
            let proof = consistency_proof(first, &leaves[..second]).expect("in range");
            assert_eq!(proof, expected, "{first} -> {second}");
            assert!(verify_consistency(first as u64, second as u64, &proof, &h(ROOTS[first]), &h(ROOTS[second])));
        }
    }

    #[test]
    fn corrupted_inclusion_proofs_are_rejected() {
        let leaves = reference_leaves();
        for (index, size, proof) in inclusion_vectors() {
            let (i, n, leaf, top) = (index as u64, size as u64, leaves[index], h(ROOTS[size]));
            assert!(!verify_inclusion(i + 1, n, &leaf, &proof, &top), "wrong index");
            // Another size, checked against that size's head: accepted exactly when the proof
            // happens to be that tree's proof too (then the leaf is in it), refused otherwise.
            for other in (index + 1..=leaves.len()).filter(|o| *o != size) {
                let accepted = verify_inclusion(i, other as u64, &leaf, &proof, &h(ROOTS[other]));
                let same = inclusion_proof(index, &leaves[..other]).as_deref() == Some(proof.as_slice());
                assert_eq!(accepted, same, "leaf {index}, proof for size {size} checked as size {other}");
            }
            assert!(!verify_inclusion(i, n, &leaf, &proof, &h(ROOTS[size - 1])), "another root");
            for node in 0..proof.len() {
                for bit in [0usize, 7, 100, 255] {
                    let mut bad = proof.clone();
                    bad[node][bit / 8] ^= 1 << (bit % 8);
                    assert!(!verify_inclusion(i, n, &leaf, &bad, &top), "bit {bit} of node {node}");
                }
                let mut removed = proof.clone();
                removed.remove(node);
                assert!(!verify_inclusion(i, n, &leaf, &removed, &top), "node {node} removed");
            }
            let mut added = proof.clone();
            added.push(leaves[0]);
            assert!(!verify_inclusion(i, n, &leaf, &added, &top), "node added");
            let mut flipped_leaf = leaf;
            flipped_leaf[0] ^= 1;
            assert!(!verify_inclusion(i, n, &flipped_leaf, &proof, &top), "another leaf");
        }
    }

    #[test]
    fn corrupted_consistency_proofs_are_rejected() {
        for (first, second, proof) in consistency_vectors().into_iter().filter(|(f, s, _)| f != s) {
            let (m, n, a, b) = (first as u64, second as u64, h(ROOTS[first]), h(ROOTS[second]));
            let leaves = reference_leaves();
            // Other sizes, checked against their own heads: accepted only where the proof is that
            // pair's proof too.
            for other in (1..=leaves.len()).filter(|o| *o != second && *o > first) {
                let accepted = verify_consistency(m, other as u64, &proof, &a, &h(ROOTS[other]));
                let same = consistency_proof(first, &leaves[..other]).as_deref() == Some(proof.as_slice());
                assert_eq!(accepted, same, "{first} -> {second} checked as {first} -> {other}");
            }
            for other in (1..second).filter(|o| *o != first) {
                let accepted = verify_consistency(other as u64, n, &proof, &h(ROOTS[other]), &b);
                let same = consistency_proof(other, &leaves[..second]).as_deref() == Some(proof.as_slice());
                assert_eq!(accepted, same, "{first} -> {second} checked as {other} -> {second}");
            }
            assert!(!verify_consistency(m, n, &proof, &b, &a), "roots swapped");
            for node in 0..proof.len() {
                for bit in [0usize, 9, 128, 255] {
                    let mut bad = proof.clone();
                    bad[node][bit / 8] ^= 1 << (bit % 8);
                    assert!(!verify_consistency(m, n, &bad, &a, &b), "bit {bit} of node {node}");
                }
                let mut removed = proof.clone();
                removed.remove(node);
                assert!(!verify_consistency(m, n, &removed, &a, &b), "node {node} removed");
            }
            let mut added = proof.clone();
            added.push(a);
            assert!(!verify_consistency(m, n, &added, &a, &b), "node added");
            assert!(!verify_consistency(m, n, &[], &a, &b), "empty proof");
        }
    }

    #[test]
    fn every_proof_of_every_small_tree_verifies() {
        let leaves: Vec<Hash> = (0u16..40).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        for n in 1..=leaves.len() {
            let tree = &leaves[..n];
            let top = root(tree);
            for (i, leaf) in tree.iter().enumerate() {
                let proof = inclusion_proof(i, tree).expect("in range");
                assert!(verify_inclusion(i as u64, n as u64, leaf, &proof, &top), "leaf {i} of {n}");
            }
            for m in 1..=n {
                let proof = consistency_proof(m, tree).expect("in range");
                assert!(verify_consistency(m as u64, n as u64, &proof, &root(&leaves[..m]), &top), "{m} -> {n}");
            }
        }
        assert!(inclusion_proof(3, &leaves[..3]).is_none());
        assert!(consistency_proof(0, &leaves[..3]).is_none());
    }
}
