//! Binary Merkle trees over a block's transactions and receipts.
//!
//! Domain-separated SHA-256: a leaf is `H(0x00 || bytes)`, an inner node `H(0x01 || left || right)`.
//! A level with an odd number of nodes promotes its last node unchanged to the level above.
//! The root of an empty tree is [`Hash::ZERO`]. Roots and paths are computed with `rs_merkle`;
//! [`MerklePath::root_from`] is a direct implementation of the rule above (the one in
//! `docs/PROOFS.md`), tested to agree with `rs_merkle`.

use borsh::{BorshDeserialize, BorshSerialize};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::Hash;

/// `rs_merkle` hasher with Cairn's domain separation for inner nodes.
#[derive(Clone, Debug)]
pub struct CairnHasher;

impl rs_merkle::Hasher for CairnHasher {
    type Hash = [u8; 32];

    fn hash(data: &[u8]) -> [u8; 32] {
        Hash::of(data).0
    }

    fn concat_and_hash(left: &[u8; 32], right: Option<&[u8; 32]>) -> [u8; 32] {
        match right {
            Some(r) => node_hash(&Hash(*left), &Hash(*r)).0,
            None => *left,
        }
    }
}

/// `H(0x00 || bytes)`.
pub fn leaf_hash(bytes: &[u8]) -> Hash {
    Hash::of_parts(&[&[0x00], bytes])
}

/// `H(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    Hash::of_parts(&[&[0x01], &left.0, &right.0])
}

/// The Merkle root of `leaves` (already leaf-hashed).
pub fn root(leaves: &[Hash]) -> Hash {
    if leaves.is_empty() {
        return Hash::ZERO;
    }
    let raw: Vec<[u8; 32]> = leaves.iter().map(|h| h.0).collect();
    let tree = rs_merkle::MerkleTree::<CairnHasher>::from_leaves(&raw);
    Hash(tree.root().expect("a non-empty tree has a root"))
}

/// The inclusion path of one leaf.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MerklePath {
    /// The leaf's position, from 0.
    pub index: u32,
    /// The number of leaves in the tree.
    pub leaf_count: u32,
    /// The sibling hashes from the bottom level up, skipping levels where the node was promoted.
    pub siblings: Vec<Hash>,
}

/// The deepest tree a path may describe (2^32 leaves).
pub const PATH_SIBLINGS_MAX: usize = 32;

impl MerklePath {
    /// The path of leaf `index` among `leaves`. `None` if out of range.
    pub fn new(leaves: &[Hash], index: usize) -> Option<MerklePath> {
        if index >= leaves.len() {
            return None;
        }
        let raw: Vec<[u8; 32]> = leaves.iter().map(|h| h.0).collect();
        let tree = rs_merkle::MerkleTree::<CairnHasher>::from_leaves(&raw);
        let proof = tree.proof(&[index]);
        Some(MerklePath {
            index: u32::try_from(index).ok()?,
            leaf_count: u32::try_from(leaves.len()).ok()?,
            siblings: proof.proof_hashes().iter().map(|h| Hash(*h)).collect(),
        })
    }

    /// The root that `leaf` and this path lead to, or `None` if the path is malformed
    /// (index out of range, too many or too few siblings).
    pub fn root_from(&self, leaf: Hash) -> Option<Hash> {
        if self.index >= self.leaf_count || self.siblings.len() > PATH_SIBLINGS_MAX {
            return None;
        }
        let mut siblings = self.siblings.iter();
        let (mut index, mut width, mut hash) = (self.index, self.leaf_count, leaf);
        while width > 1 {
            if index % 2 == 1 {
                hash = node_hash(siblings.next()?, &hash);
            } else if index + 1 < width {
                hash = node_hash(&hash, siblings.next()?);
            } // else: the last node of an odd level is promoted unchanged.
            index /= 2;
            width = width.div_ceil(2);
        }
        if siblings.next().is_some() {
            return None;
        }
        Some(hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&(i as u64).to_le_bytes())).collect()
    }

    #[test]
    fn paths_agree_with_rs_merkle_for_every_shape() {
        for n in 1..=33 {
            let ls = leaves(n);
            let r = root(&ls);
            for i in 0..n {
                let path = MerklePath::new(&ls, i).expect("in range");
                assert_eq!(path.root_from(ls[i]), Some(r), "n={n} i={i}");
                let other = leaf_hash(b"not a leaf");
                assert_ne!(path.root_from(other), Some(r));
            }
        }
    }

    #[test]
    fn root_rule_is_pinned() {
        let ls = leaves(3);
        let expected = node_hash(&node_hash(&ls[0], &ls[1]), &ls[2]);
        assert_eq!(root(&ls), expected);
        assert_eq!(root(&[]), Hash::ZERO);
        assert_eq!(root(&ls[..1]), ls[0]);
    }

    #[test]
    fn malformed_paths_are_refused() {
        let ls = leaves(4);
        let mut p = MerklePath::new(&ls, 1).expect("in range");
        p.siblings.push(Hash::ZERO);
        assert_eq!(p.root_from(ls[1]), None);
        let mut p = MerklePath::new(&ls, 1).expect("in range");
        p.index = 4;
        assert_eq!(p.root_from(ls[1]), None);
    }
}
