//! Precommit signing, vote collection and block links: the finality certificate ([`Commit`]).

use std::collections::BTreeMap;

use crate::{ConsensusError, Result};
use cairn_ledger::{
    Block, BlockHeader, Commit, CommitSignature, Domain, FORMAT_VERSION, Hash, Keypair, PublicKey, Signature,
    ValidatorSet, Vote, VoteKind,
};

/// A validator's signing key, bound to one chain and validator set.
#[derive(Debug, Clone)]
pub struct Signer {
    key: Keypair,
    chain_id: Hash,
    validators: ValidatorSet,
}

impl Signer {
    /// A signer for `key`, which must be in `validators`.
    pub fn new(key: Keypair, chain_id: Hash, validators: ValidatorSet) -> Result<Signer> {
        if validators.power_of(&key.public()).is_none() {
            return Err(ConsensusError::NotValidator(key.public()));
        }
        Ok(Signer { key, chain_id, validators })
    }

    /// This validator's address.
    pub fn address(&self) -> PublicKey {
        self.key.public()
    }

    /// The validator set.
    pub fn validators(&self) -> &ValidatorSet {
        &self.validators
    }

    /// Signs a precommit for `block_hash` at `height` and `round`.
    pub fn precommit(&self, height: u64, round: u32, block_hash: Hash) -> (Vote, Signature) {
        let vote = Vote {
            version: FORMAT_VERSION,
            chain_id: self.chain_id,
            kind: VoteKind::Precommit,
            height,
            round,
            block_hash: Some(block_hash),
            validator: self.address(),
        };
        let signature = self.key.sign(Domain::Vote, &vote);
        (vote, signature)
    }

    /// Finalizes a block with this validator's precommit alone (round 0). Succeeds only if this
    /// validator holds more than 2/3 of the voting power.
    pub fn solo_commit(&self, height: u64, block_hash: Hash) -> Result<Commit> {
        let mut collector = VoteCollector::new(self.chain_id, self.validators.clone(), height, 0, block_hash);
        let (vote, signature) = self.precommit(height, 0, block_hash);
        collector.add(&vote, signature)?;
        collector.commit()
    }
}

/// Gathers precommits for one block until they form a [`Commit`].
#[derive(Debug, Clone)]
pub struct VoteCollector {
    chain_id: Hash,
    validators: ValidatorSet,
    height: u64,
    round: u32,
    block_hash: Hash,
    signatures: BTreeMap<PublicKey, Signature>,
}

impl VoteCollector {
    /// A collector for precommits on `block_hash` at `height` and `round`.
    pub fn new(chain_id: Hash, validators: ValidatorSet, height: u64, round: u32, block_hash: Hash) -> Self {
        VoteCollector { chain_id, validators, height, round, block_hash, signatures: BTreeMap::new() }
    }

    /// Adds a signed precommit after checking it. A second vote from the same validator is
    /// ignored. Returns the voting power gathered so far.
    pub fn add(&mut self, vote: &Vote, signature: Signature) -> Result<u64> {
        if vote.kind != VoteKind::Precommit {
            return Err(ConsensusError::Mismatch("kind"));
        }
        if vote.chain_id != self.chain_id {
            return Err(ConsensusError::Mismatch("chain"));
        }
        if (vote.height, vote.round, vote.block_hash) != (self.height, self.round, Some(self.block_hash)) {
            return Err(ConsensusError::Mismatch("height, round or block"));
        }
        if self.validators.power_of(&vote.validator).is_none() {
            return Err(ConsensusError::NotValidator(vote.validator));
        }
        vote.validator.verify(Domain::Vote, vote, &signature).map_err(|e| ConsensusError::Invalid(e.to_string()))?;
        self.signatures.entry(vote.validator).or_insert(signature);
        Ok(self.power())
    }

    fn power(&self) -> u64 {
        self.signatures.keys().filter_map(|v| self.validators.power_of(v)).sum()
    }

    /// The commit, once more than 2/3 of the power has signed.
    pub fn commit(&self) -> Result<Commit> {
        let signed = self.power();
        if !self.validators.is_quorum(signed) {
            return Err(ConsensusError::NoQuorum { signed, total: self.validators.total_power() });
        }
        Ok(Commit {
            version: FORMAT_VERSION,
            height: self.height,
            round: self.round,
            block_hash: self.block_hash,
            signatures: self
                .signatures
                .iter()
                .map(|(validator, signature)| CommitSignature { validator: *validator, signature: *signature })
                .collect(),
        })
    }
}

/// Checks that `block` extends `parent` (`None` before the first block) on this chain: its
/// height and parent hash follow, its proposer is a validator, and its `last_commit` finalizes
/// the parent. Also checks `commit` finalizes `block` itself.
pub fn check_link(
    chain_id: Hash,
    validators: &ValidatorSet,
    parent: Option<&BlockHeader>,
    block: &Block,
    commit: &Commit,
) -> Result<()> {
    check_parent(chain_id, validators, parent, block)?;
    let h = &block.header;
    if commit.height != h.height || commit.block_hash != block.hash() {
        return Err(ConsensusError::Invalid("the commit is not for this block".into()));
    }
    commit.verify(chain_id, validators).map_err(|e| ConsensusError::Invalid(e.to_string()))?;
    Ok(())
}

/// Checks that `block` (finalized or only proposed) extends `parent` (`None` before the first
/// block): its height and parent hash follow, its proposer is a validator, and its
/// `last_commit` finalizes the parent.
pub fn check_parent(
    chain_id: Hash,
    validators: &ValidatorSet,
    parent: Option<&BlockHeader>,
    block: &Block,
) -> Result<()> {
    let h = &block.header;
    let (want_height, want_parent) = parent.map_or((1, Hash::ZERO), |p| (p.height + 1, p.hash()));
    if h.height != want_height || h.parent_hash != want_parent {
        return Err(ConsensusError::Invalid(format!(
            "block {} does not follow the head (expected height {want_height})",
            h.height
        )));
    }
    if validators.power_of(&h.proposer).is_none() {
        return Err(ConsensusError::NotValidator(h.proposer));
    }
    match (parent, &block.last_commit) {
        (None, None) => {}
        (Some(p), Some(last)) => {
            if last.height != p.height || last.block_hash != p.hash() {
                return Err(ConsensusError::Invalid("last_commit is not for the parent block".into()));
            }
            last.verify(chain_id, validators).map_err(|e| ConsensusError::Invalid(e.to_string()))?;
        }
        _ => return Err(ConsensusError::Invalid("last_commit must be present exactly after height 1".into())),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use cairn_ledger::Validator;

    use super::*;

    mod links;

    fn set(keys: &[Keypair]) -> ValidatorSet {
        ValidatorSet::new(keys.iter().map(|k| Validator { address: k.public(), power: 1 }).collect())
            .expect("valid set")
    }

    #[test]
    fn four_validators_need_three_precommits() {
        let keys: Vec<Keypair> = (1..5).map(|i| Keypair::from_seed([i; 32])).collect();
        let vs = set(&keys);
        let block = Hash::of(b"b");
        let mut c = VoteCollector::new(Hash::ZERO, vs.clone(), 5, 1, block);
        for (i, k) in keys.iter().take(3).enumerate() {
            assert!(c.commit().is_err(), "{i} votes are not a quorum");
            let s = Signer::new(k.clone(), Hash::ZERO, vs.clone()).expect("validator");
            let (v, sig) = s.precommit(5, 1, block);
            assert_eq!(c.add(&v, sig), Ok(i as u64 + 1));
            assert_eq!(c.add(&v, sig), Ok(i as u64 + 1), "a repeated vote counts once");
        }
        let commit = c.commit().expect("quorum");
        assert_eq!(commit.verify(Hash::ZERO, &vs).expect("valid commit"), 3);
        assert_eq!(commit.signatures.len(), 3);
    }

    #[test]
    fn a_lone_validator_without_quorum_cannot_finalize() {
        let keys: Vec<Keypair> = (1..3).map(|i| Keypair::from_seed([i; 32])).collect();
        let s = Signer::new(keys[0].clone(), Hash::ZERO, set(&keys)).expect("validator");
        assert!(matches!(s.solo_commit(1, Hash::ZERO), Err(ConsensusError::NoQuorum { signed: 1, total: 2 })));
        let stranger = Keypair::from_seed([9; 32]);
        assert!(Signer::new(stranger, Hash::ZERO, set(&keys)).is_err());
    }

    #[test]
    fn votes_for_something_else_are_refused() {
        let k = Keypair::from_seed([1; 32]);
        let vs = set(std::slice::from_ref(&k));
        let s = Signer::new(k, Hash::ZERO, vs.clone()).expect("validator");
        let mut c = VoteCollector::new(Hash::ZERO, vs, 2, 0, Hash::of(b"x"));
        let (v, sig) = s.precommit(2, 0, Hash::of(b"y"));
        assert!(c.add(&v, sig).is_err());
        let (mut v, sig) = s.precommit(2, 0, Hash::of(b"x"));
        assert!(c.add(&v, Signature([0; 64])).is_err());
        v.round = 1;
        assert!(c.add(&v, sig).is_err());
    }
}
