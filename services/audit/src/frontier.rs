//! The frontier (compact range) of an RFC 6962 Merkle tree: the roots of the perfect subtrees that
//! make up the tree over the leaves so far, at most one per bit of the size. Appending a leaf and
//! taking the head cost O(log n) and need nothing else, so a log's head can be kept current as it
//! grows (the checkpointer) and checked in one pass over a stream (offline verification).

use crate::merkle::{self, Hash};

/// The frontier of a tree.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    /// Leaves so far.
    size: u64,
    /// Roots of the perfect subtrees, largest (leftmost) first, with their heights.
    nodes: Vec<(u32, Hash)>,
}

impl Frontier {
    /// The frontier of the empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// The frontier of the tree over `leaves`.
    pub fn of(leaves: &[Hash]) -> Self {
        let mut frontier = Self::new();
        for leaf in leaves {
            frontier.push(leaf);
        }
        frontier
    }

    /// The frontier of a tree of `size` leaves from its perfect subtrees (height, head), largest
    /// first: one per bit of `size`, as [`crate::tree::Reader::frontier`] reads them.
    pub fn from_parts(size: u64, nodes: Vec<(u32, Hash)>) -> Self {
        Self { size, nodes }
    }

    /// Leaves in the tree.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a leaf hash.
    pub fn push(&mut self, leaf: &Hash) {
        self.push_observed(leaf, |_, _, _| {});
    }

    /// Appends a leaf hash, telling `completed` of every perfect subtree above a leaf that it
    /// completes: (height, index among the subtrees of that height, head).
    pub fn push_observed(&mut self, leaf: &Hash, mut completed: impl FnMut(u32, u64, &Hash)) {
        self.size += 1;
        let mut node = (0u32, *leaf);
        // Two subtrees of one height next to each other become one a level up (the bits of the
        // size carrying).
        while let Some(&(height, left)) = self.nodes.last() {
            if height != node.0 {
                break;
            }
            self.nodes.pop();
            node = (height + 1, merkle::node_hash(&left, &node.1));
            completed(node.0, (self.size >> node.0) - 1, &node.1);
        }
        self.nodes.push(node);
    }

    /// MTH: the head of the tree, the subtrees folded from the right as RFC 6962 splits.
    pub fn root(&self) -> Hash {
        let mut nodes = self.nodes.iter().rev();
        let Some((_, last)) = nodes.next() else {
            return merkle::empty_root();
        };
        nodes.fold(*last, |right, (_, left)| merkle::node_hash(left, &right))
    }
}

/// The heads of a tree's prefixes at sizes asked for in advance, taken in one pass as the leaves
/// 1, 2, 3... arrive (checkpoints checked against a log without keeping its leaves). Leaves stop
/// counting at the first one out of place: prefixes past a gap do not exist.
#[derive(Debug, Clone, Default)]
pub struct PrefixRoots {
    frontier: Frontier,
    broken: bool,
    wanted: std::collections::BTreeSet<u64>,
    roots: std::collections::BTreeMap<u64, Hash>,
}

impl PrefixRoots {
    /// Collects the heads at `wanted` sizes.
    pub fn new(wanted: impl IntoIterator<Item = u64>) -> Self {
        Self { wanted: wanted.into_iter().collect(), ..Self::default() }
    }

    /// The leaf at `position` (1-based); anything but the next position ends the prefix.
    pub fn push(&mut self, position: i64, leaf: &Hash) {
        if self.broken || u64::try_from(position).ok() != Some(self.frontier.size() + 1) {
            self.broken = true;
            return;
        }
        self.frontier.push(leaf);
        if self.wanted.remove(&self.frontier.size()) {
            self.roots.insert(self.frontier.size(), self.frontier.root());
        }
    }

    /// Asks for the head at `size` as well, once the leaves are under way (a checkpoint read
    /// from a stream). False when the prefix already grew past `size` without taking its head:
    /// that head can no longer be had from the frontier.
    pub fn want(&mut self, size: u64) -> bool {
        if size == 0 || self.roots.contains_key(&size) {
            return true;
        }
        match size.cmp(&self.frontier.size()) {
            std::cmp::Ordering::Greater => {
                self.wanted.insert(size);
                true
            }
            std::cmp::Ordering::Equal => {
                self.roots.insert(size, self.frontier.root());
                true
            }
            _ => false,
        }
    }

    /// Leaves that arrived in order from position 1.
    pub fn size(&self) -> u64 {
        self.frontier.size()
    }

    /// Whether leaves 1..=size all arrived in order.
    pub fn has(&self, size: u64) -> bool {
        size <= self.frontier.size()
    }

    /// The head of the tree over leaves 1..=size, when they all arrived and the size was wanted
    /// (or is 0).
    pub fn root(&self, size: u64) -> Option<Hash> {
        if size == 0 {
            return Some(merkle::empty_root());
        }
        self.roots.get(&size).copied().filter(|_| self.has(size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_frontier_root_is_the_tree_head_at_every_size() {
        let leaves: Vec<Hash> = (0u32..70).map(|i| merkle::leaf_hash(&i.to_be_bytes())).collect();
        let mut frontier = Frontier::new();
        assert_eq!(frontier.root(), merkle::root(&[]));
        for (i, leaf) in leaves.iter().enumerate() {
            frontier.push(leaf);
            assert_eq!(frontier.size(), i as u64 + 1);
            assert_eq!(frontier.root(), merkle::root(&leaves[..=i]), "size {}", i + 1);
        }
        assert_eq!(Frontier::of(&leaves), frontier);
    }

    #[test]
    fn completed_subtrees_are_reported_with_their_position_and_head() {
        let leaves: Vec<Hash> = (0u32..40).map(|i| merkle::leaf_hash(&i.to_be_bytes())).collect();
        let mut frontier = Frontier::new();
        let mut seen = Vec::new();
        for leaf in &leaves {
            frontier.push_observed(leaf, |height, index, head| seen.push((height, index, *head)));
        }
        // 20 pairs, 10 of 4, 5 of 8, 2 of 16, 1 of 32.
        assert_eq!(seen.len(), 20 + 10 + 5 + 2 + 1);
        for (height, index, head) in seen {
            let size = 1usize << height;
            let start = usize::try_from(index).expect("small") * size;
            assert_eq!(head, merkle::root(&leaves[start..start + size]), "{height}/{index}");
        }
        let resumed =
            Frontier::from_parts(40, vec![(5, merkle::root(&leaves[..32])), (3, merkle::root(&leaves[32..]))]);
        assert_eq!(resumed, frontier);
    }

    #[test]
    fn prefix_roots_are_taken_at_wanted_sizes_and_end_at_a_gap() {
        let leaves: Vec<Hash> = (0u32..20).map(|i| merkle::leaf_hash(&i.to_be_bytes())).collect();
        let mut prefixes = PrefixRoots::new([3, 8, 15]);
        for (i, leaf) in leaves[..10].iter().enumerate() {
            prefixes.push(i as i64 + 1, leaf);
        }
        // Position 12 arrives after 10: 11 is missing.
        prefixes.push(12, &leaves[11]);
        prefixes.push(13, &leaves[12]);
        assert_eq!(prefixes.root(3), Some(merkle::root(&leaves[..3])));
        assert_eq!(prefixes.root(8), Some(merkle::root(&leaves[..8])));
        assert_eq!(prefixes.root(15), None);
        assert!(prefixes.has(10) && !prefixes.has(11));
    }
}
