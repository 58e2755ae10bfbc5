//! The log's Merkle tree as stored: the leaf hashes in `events` and, every 8th level, the heads of
//! the complete subtrees above them in `subtrees` (a row per 256 leaves, per 65,536, per 2^24...),
//! as Trillian Tessera's tiles keep them. Any head or proof is made of O(log n) perfect subtrees
//! (`merkle::Subtrees`), and each of those is read as one stored row or folded from at most 255
//! stored hashes one stride down, so proofs and heads cost about the same at 1,000 events and at
//! 10,000,000. The checkpointer writes the rows as the subtrees complete (`Reader::frontier`, then
//! [`store_subtrees`]); a subtree not stored yet (a log from before this table) is folded from the
//! level below, down to the leaves, and the checkpointer stores what it had to fold.

use std::collections::HashMap;

use deadpool_postgres::Object as Client;
use futures::future::BoxFuture;
use tokio_postgres::types::Type;

use crate::frontier::Frontier;
use crate::merkle::{self, Hash, Subtrees};
use crate::store::AuditError;

/// Levels between stored subtree heads.
pub const STRIDE: u32 = 8;

/// Most missing subtrees folded from one read of the level below (256 x 256 leaves at level 8).
const FOLD_RUN: usize = 256;

/// A stored (or storable) subtree head: the subtree of `2^level` leaves numbered `index` from 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Node {
    /// Its height: a multiple of [`STRIDE`].
    pub level: u32,
    /// Its position among the subtrees of its height.
    pub index: u64,
    /// Its head.
    pub hash: Hash,
}

/// Notes which perfect subtrees a computation reads (answering with zeros).
#[derive(Default)]
struct Recorder(Vec<(u64, u64)>);

impl Subtrees for Recorder {
    fn perfect(&mut self, start: u64, size: u64) -> Hash {
        self.0.push((start, size));
        [0u8; 32]
    }
}

/// Answers from the subtrees read.
struct Known {
    heads: HashMap<(u64, u64), Hash>,
    missing: bool,
}

impl Subtrees for Known {
    fn perfect(&mut self, start: u64, size: u64) -> Hash {
        self.heads.get(&(start, size)).copied().unwrap_or_else(|| {
            self.missing = true;
            [0u8; 32]
        })
    }
}

/// Reads of the stored tree through one connection; what had to be folded because its row was not
/// stored yet is kept in `folded` (for the checkpointer to store once it has checked it).
pub struct Reader<'a> {
    client: &'a Client,
    /// Subtree heads computed from the level below because they were not stored.
    pub folded: Vec<Node>,
    /// Heads and leaves read ahead in one query, by (level, index); level 0 holds leaf hashes.
    read: HashMap<(u32, u64), Hash>,
}

impl<'a> Reader<'a> {
    /// A reader on `client`.
    pub fn new(client: &'a Client) -> Self {
        Self { client, folded: Vec::new(), read: HashMap::new() }
    }

    /// Runs `computation` over the stored tree: once to learn which subtrees it reads, then again
    /// with those read.
    pub async fn compute<T>(&mut self, computation: impl Fn(&mut dyn Subtrees) -> T) -> Result<T, AuditError> {
        let mut recorder = Recorder::default();
        computation(&mut recorder);
        let mut wanted = recorder.0;
        wanted.sort_unstable();
        wanted.dedup();
        self.read_ahead(&wanted).await?;
        let mut heads = HashMap::with_capacity(wanted.len());
        for (start, size) in wanted {
            let level = size.trailing_zeros();
            let index = start >> level;
            let hash = self.nodes(level, index, 1).await?;
            if let Some(hash) = hash.first() {
                heads.insert((start, size), *hash);
            }
        }
        let mut known = Known { heads, missing: false };
        let out = computation(&mut known);
        if known.missing {
            return Err(AuditError::Invalid("a subtree of the log could not be read".to_owned()));
        }
        Ok(out)
    }

    /// Reads, in one query, the stored rows the perfect subtrees `wanted` (start, size) are made of:
    /// each one's row when its height is a stored level, else the rows of the stored level below it
    /// (leaves at the bottom). What is not there (not stored yet) is folded later as usual.
    async fn read_ahead(&mut self, wanted: &[(u64, u64)]) -> Result<(), AuditError> {
        let (mut levels, mut los, mut his) = (Vec::new(), Vec::new(), Vec::new());
        let (mut leaves_lo, mut leaves_hi) = (Vec::new(), Vec::new());
        for &(start, size) in wanted {
            let level = size.trailing_zeros();
            let base = level - level % STRIDE;
            let per = 1u64 << (level - base);
            let from = (start >> level) * per;
            if base == 0 {
                // Sequences from + 1..=from + per.
                leaves_lo.push(index_i64(from)?);
                leaves_hi.push(index_i64(from + per)?);
            } else {
                levels.push(level_i16(base)?);
                los.push(index_i64(from)?);
                his.push(index_i64(from + per)?);
            }
        }
        // OFFSET 0 keeps each range its own index scan (a lateral subquery the planner cannot pull
        // up). The statement is planned at each call, with the arrays it is given and the tables'
        // sizes now (one round trip all the same), not once with the sizes they had when the
        // connection first used it.
        let rows = self
            .client
            .query_typed(
                "SELECT s.level::int4, s.index, s.hash
                   FROM unnest($1::int2[], $2::bigint[], $3::bigint[]) AS r(level, lo, hi)
                   CROSS JOIN LATERAL (SELECT level, index, hash FROM subtrees
                                        WHERE level = r.level AND index >= r.lo AND index < r.hi OFFSET 0) s
                 UNION ALL
                 SELECT 0, e.sequence - 1, e.leaf_hash
                   FROM unnest($4::bigint[], $5::bigint[]) AS l(lo, hi)
                   CROSS JOIN LATERAL (SELECT sequence, leaf_hash FROM events
                                        WHERE sequence > l.lo AND sequence <= l.hi OFFSET 0) e",
                &[
                    (&levels, Type::INT2_ARRAY),
                    (&los, Type::INT8_ARRAY),
                    (&his, Type::INT8_ARRAY),
                    (&leaves_lo, Type::INT8_ARRAY),
                    (&leaves_hi, Type::INT8_ARRAY),
                ],
            )
            .await?;
        for row in &rows {
            let (level, index, bytes): (i32, i64, Vec<u8>) = (row.get(0), row.get(1), row.get(2));
            let hash: Hash = bytes
                .try_into()
                .map_err(|_| AuditError::Invalid(format!("stored hash {level}/{index} is not 32 bytes")))?;
            if let (Ok(level), Ok(index)) = (u32::try_from(level), u64::try_from(index)) {
                self.read.insert((level, index), hash);
            }
        }
        Ok(())
    }

    /// `count` hashes at `level` from `from` when all were read ahead.
    fn read_already(&self, level: u32, from: u64, count: u64) -> Option<Vec<Hash>> {
        (from..from + count).map(|index| self.read.get(&(level, index)).copied()).collect()
    }

    /// The heads of `count` consecutive perfect subtrees of height `level` from `from`.
    fn nodes(&mut self, level: u32, from: u64, count: u64) -> BoxFuture<'_, Result<Vec<Hash>, AuditError>> {
        Box::pin(async move {
            if level.is_multiple_of(STRIDE)
                && let Some(hashes) = self.read_already(level, from, count)
            {
                return Ok(hashes);
            }
            if level == 0 {
                return leaves(self.client, from, count).await;
            }
            let base = level - level % STRIDE;
            if base == level {
                return self.stored(level, from, count).await;
            }
            let per = 1u64 << (level - base);
            let below = self.nodes(base, from * per, count * per).await?;
            Ok(below.chunks(usize::try_from(per).unwrap_or(usize::MAX)).map(merkle::root).collect())
        })
    }

    /// Heads at a stored level, folding those not stored from the stored level below.
    async fn stored(&mut self, level: u32, from: u64, count: u64) -> Result<Vec<Hash>, AuditError> {
        let (level_i, from_i, to_i) = (level_i16(level)?, index_i64(from)?, index_i64(from + count)?);
        // Planned at each call, as `read_ahead` is: the table grows with the log.
        let rows = self
            .client
            .query_typed(
                "SELECT index, hash FROM subtrees WHERE level = $1 AND index >= $2 AND index < $3 ORDER BY index",
                &[(&level_i, Type::INT2), (&from_i, Type::INT8), (&to_i, Type::INT8)],
            )
            .await?;
        let mut out: Vec<Option<Hash>> = vec![None; usize::try_from(count).unwrap_or(0)];
        for row in &rows {
            let index: i64 = row.get(0);
            let bytes: Vec<u8> = row.get(1);
            let hash: Hash = bytes
                .try_into()
                .map_err(|_| AuditError::Invalid(format!("stored subtree {level}/{index} is not 32 bytes")))?;
            if let Some(slot) = usize::try_from(index - from_i).ok().and_then(|i| out.get_mut(i)) {
                *slot = Some(hash);
            }
        }
        let per = 1u64 << STRIDE;
        let mut done = Vec::with_capacity(out.len());
        let mut i = 0;
        while i < out.len() {
            if let Some(hash) = out[i] {
                done.push(hash);
                i += 1;
                continue;
            }
            // A run of subtrees not stored: folded from the level below in one read.
            let run = out[i..].iter().take_while(|h| h.is_none()).take(FOLD_RUN).count();
            let first = from + i as u64;
            let below = self.nodes(level - STRIDE, first * per, run as u64 * per).await?;
            for (j, chunk) in below.chunks(usize::try_from(per).unwrap_or(usize::MAX)).enumerate() {
                let hash = merkle::root(chunk);
                self.folded.push(Node { level, index: first + j as u64, hash });
                done.push(hash);
            }
            i += run;
        }
        Ok(done)
    }

    /// The head of the tree of the first `size` leaves.
    pub async fn root(&mut self, size: u64) -> Result<Hash, AuditError> {
        self.compute(|tree| merkle::range_root(tree, 0, size)).await
    }

    /// The frontier of the tree of the first `size` leaves: its perfect subtrees, largest first.
    pub async fn frontier(&mut self, size: u64) -> Result<Frontier, AuditError> {
        let parts = decomposition(size);
        let heads =
            self.compute(|tree| parts.iter().map(|&(start, n)| tree.perfect(start, n)).collect::<Vec<_>>()).await?;
        let nodes = parts.iter().zip(heads).map(|(&(_, n), hash)| (n.trailing_zeros(), hash)).collect();
        Ok(Frontier::from_parts(size, nodes))
    }

    /// The leaf hash of `index` (from 0) and its inclusion proof in the tree of `size`.
    pub async fn inclusion_proof(&mut self, index: u64, size: u64) -> Result<(Hash, Vec<Hash>), AuditError> {
        let (leaf, proof) =
            self.compute(|tree| (tree.perfect(index, 1), merkle::inclusion_proof_in(tree, index, size))).await?;
        let proof =
            proof.ok_or_else(|| AuditError::Invalid(format!("leaf {index} is not in the tree of size {size}")))?;
        Ok((leaf, proof))
    }

    /// The consistency proof from the tree of `first` to the tree of `size`.
    pub async fn consistency_proof(&mut self, first: u64, size: u64) -> Result<Vec<Hash>, AuditError> {
        self.compute(|tree| merkle::consistency_proof_in(tree, first, size))
            .await?
            .ok_or_else(|| AuditError::Invalid(format!("no consistency proof from size {first} to size {size}")))
    }
}

/// The perfect subtrees (start, size) a tree of `size` leaves is made of, largest first.
fn decomposition(size: u64) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut start = 0;
    for bit in (0..64).rev() {
        let n = 1u64 << bit;
        if size & n != 0 {
            out.push((start, n));
            start += n;
        }
    }
    out
}

fn level_i16(level: u32) -> Result<i16, AuditError> {
    i16::try_from(level).map_err(|_| AuditError::Invalid(format!("tree level {level} is out of range")))
}

fn index_i64(index: u64) -> Result<i64, AuditError> {
    i64::try_from(index).map_err(|_| AuditError::Invalid(format!("tree position {index} is out of range")))
}

/// Leaf hashes of the leaves `from..from + count` (sequences `from + 1..=from + count`).
pub async fn leaves(client: &Client, from: u64, count: u64) -> Result<Vec<Hash>, AuditError> {
    let (after, last) = (index_i64(from)?, index_i64(from + count)?);
    let rows = client
        .query(
            "SELECT leaf_hash FROM events WHERE sequence > $1 AND sequence <= $2 ORDER BY sequence",
            &[&after, &last],
        )
        .await?;
    if rows.len() as u64 != count {
        return Err(AuditError::Invalid(format!(
            "the log has {} events in {}..={last}; it must have {count}",
            rows.len(),
            after + 1
        )));
    }
    rows.iter()
        .map(|r| {
            let bytes: Vec<u8> = r.get(0);
            bytes.try_into().map_err(|_| AuditError::Invalid("a stored leaf hash is not 32 bytes".to_owned()))
        })
        .collect()
}

/// Stores subtree heads (those already stored are kept as they are).
pub async fn store_subtrees(client: &Client, nodes: &[Node]) -> Result<(), AuditError> {
    if nodes.is_empty() {
        return Ok(());
    }
    let levels = nodes.iter().map(|n| level_i16(n.level)).collect::<Result<Vec<i16>, _>>()?;
    let indexes = nodes.iter().map(|n| index_i64(n.index)).collect::<Result<Vec<i64>, _>>()?;
    let hashes: Vec<&[u8]> = nodes.iter().map(|n| n.hash.as_slice()).collect();
    client
        .execute(
            "INSERT INTO subtrees (level, index, hash)
             SELECT * FROM unnest($1::int2[], $2::bigint[], $3::bytea[])
             ON CONFLICT (level, index) DO NOTHING",
            &[&levels, &indexes, &hashes],
        )
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::decomposition;

    #[test]
    fn a_tree_is_made_of_the_perfect_subtrees_of_the_bits_of_its_size() {
        assert_eq!(decomposition(0), vec![]);
        assert_eq!(decomposition(1), vec![(0, 1)]);
        assert_eq!(decomposition(13), vec![(0, 8), (8, 4), (12, 1)]);
        assert_eq!(decomposition(256), vec![(0, 256)]);
    }
}
