//! Cairn's [`Context`] for Malachite's core: the types the Tendermint state machine runs on.
//!
//! The value decided at each height is a block hash ([`BlockHash`]); blocks themselves travel
//! outside consensus (`ValuePayload::ProposalOnly`). Votes are Cairn's own [`Vote`] and are
//! signed as `Domain::Vote.message(&vote)`, so the precommits Malachite gathers into a
//! `CommitCertificate` are exactly the signatures of a Cairn [`Commit`](cairn_ledger::Commit).
//! Proposals are [`Proposal`]s signed in `Domain::Proposal`.

use std::collections::HashSet;
use std::fmt;

use cairn_ledger::{Domain, FORMAT_VERSION, Hash, Keypair, PublicKey, Signature, ValidatorSet, Vote, VoteKind};
use informalsystems_malachitebft_core_types as mt;
use mt::{NilOrVal, Round, SignedMessage};

use crate::message::Proposal;

/// A block height.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Height(pub u64);

impl fmt::Display for Height {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl mt::Height for Height {
    const ZERO: Self = Height(0);
    const INITIAL: Self = Height(1);

    fn increment_by(&self, n: u64) -> Self {
        Height(self.0.saturating_add(n))
    }

    fn decrement_by(&self, n: u64) -> Option<Self> {
        self.0.checked_sub(n).map(Height)
    }

    fn as_u64(&self) -> u64 {
        self.0
    }
}

/// A validator's address: its ed25519 public key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Address(pub PublicKey);

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl mt::Address for Address {}

/// The value consensus decides on, and its id: a block's hash.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlockHash(pub Hash);

impl fmt::Display for BlockHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.to_hex())
    }
}

impl mt::Value for BlockHash {
    type Id = BlockHash;

    fn id(&self) -> BlockHash {
        *self
    }
}

/// An ed25519 signature's bytes, ordered (Malachite keeps signatures in ordered sets).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Sig(pub [u8; 64]);

impl From<Signature> for Sig {
    fn from(s: Signature) -> Sig {
        Sig(s.0)
    }
}

impl From<Sig> for Signature {
    fn from(s: Sig) -> Signature {
        Signature(s.0)
    }
}

/// A signature of the wrong length.
#[derive(Debug)]
pub struct BadSignatureLength(pub usize);

impl fmt::Display for BadSignatureLength {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "an ed25519 signature has 64 bytes, not {}", self.0)
    }
}

/// The signing scheme: ed25519 with Cairn's domain-separated messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ed25519;

impl mt::SigningScheme for Ed25519 {
    type DecodingError = BadSignatureLength;
    type Signature = Sig;
    type PublicKey = PublicKey;
    type PrivateKey = Keypair;

    fn decode_signature(bytes: &[u8]) -> Result<Sig, BadSignatureLength> {
        <[u8; 64]>::try_from(bytes).map(Sig).map_err(|_| BadSignatureLength(bytes.len()))
    }

    fn encode_signature(signature: &Sig) -> Vec<u8> {
        signature.0.to_vec()
    }
}

/// A Cairn [`Vote`] as Malachite sees it (with its value and address at hand).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsensusVote {
    vote: Vote,
    value: NilOrVal<BlockHash>,
    address: Address,
}

impl ConsensusVote {
    /// Wraps a vote.
    pub fn new(vote: Vote) -> ConsensusVote {
        let value = match vote.block_hash {
            Some(h) => NilOrVal::Val(BlockHash(h)),
            None => NilOrVal::Nil,
        };
        let address = Address(vote.validator);
        ConsensusVote { vote, value, address }
    }

    /// The vote that is signed.
    pub fn vote(&self) -> &Vote {
        &self.vote
    }

    fn key(&self) -> (u64, u32, u8, Option<Hash>, PublicKey, u8, Hash) {
        let v = &self.vote;
        (v.height, v.round, v.kind as u8, v.block_hash, v.validator, v.version, v.chain_id)
    }
}

impl PartialOrd for ConsensusVote {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ConsensusVote {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key().cmp(&other.key())
    }
}

impl mt::Vote<CairnContext> for ConsensusVote {
    fn height(&self) -> Height {
        Height(self.vote.height)
    }

    fn round(&self) -> Round {
        Round::new(self.vote.round)
    }

    fn value(&self) -> &NilOrVal<BlockHash> {
        &self.value
    }

    fn take_value(self) -> NilOrVal<BlockHash> {
        self.value
    }

    fn vote_type(&self) -> mt::VoteType {
        match self.vote.kind {
            VoteKind::Prevote => mt::VoteType::Prevote,
            VoteKind::Precommit => mt::VoteType::Precommit,
        }
    }

    fn validator_address(&self) -> &Address {
        &self.address
    }

    fn extension(&self) -> Option<&SignedMessage<CairnContext, ()>> {
        None
    }

    fn take_extension(&mut self) -> Option<SignedMessage<CairnContext, ()>> {
        None
    }

    fn extend(self, _extension: SignedMessage<CairnContext, ()>) -> Self {
        // Cairn has no vote extensions: `ExtendVote` is always answered with `None`.
        self
    }
}

/// A Cairn [`Proposal`] as Malachite sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsensusProposal {
    proposal: Proposal,
    value: BlockHash,
    address: Address,
}

impl ConsensusProposal {
    /// Wraps a proposal.
    pub fn new(proposal: Proposal) -> ConsensusProposal {
        let value = BlockHash(proposal.block_hash);
        let address = Address(proposal.proposer);
        ConsensusProposal { proposal, value, address }
    }

    /// The proposal that is signed.
    pub fn proposal(&self) -> &Proposal {
        &self.proposal
    }
}

impl mt::Proposal<CairnContext> for ConsensusProposal {
    fn height(&self) -> Height {
        Height(self.proposal.height)
    }

    fn round(&self) -> Round {
        Round::new(self.proposal.round)
    }

    fn value(&self) -> &BlockHash {
        &self.value
    }

    fn take_value(self) -> BlockHash {
        self.value
    }

    fn pol_round(&self) -> Round {
        Round::from(self.proposal.pol_round)
    }

    fn validator_address(&self) -> &Address {
        &self.address
    }
}

/// Cairn sends no proposal parts (`ValuePayload::ProposalOnly`): this type has no values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NoParts {}

impl mt::ProposalPart<CairnContext> for NoParts {
    fn is_first(&self) -> bool {
        match *self {}
    }

    fn is_last(&self) -> bool {
        match *self {}
    }
}

/// A validator as Malachite sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsensusValidator {
    address: Address,
    power: u64,
}

impl mt::Validator<CairnContext> for ConsensusValidator {
    fn address(&self) -> &Address {
        &self.address
    }

    fn public_key(&self) -> &PublicKey {
        &self.address.0
    }

    fn voting_power(&self) -> u64 {
        self.power
    }
}

/// The validator set as Malachite sees it, in the canonical order of [`ValidatorSet`]
/// (power descending, then address ascending).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsensusValidators {
    validators: Vec<ConsensusValidator>,
    total: u64,
}

impl From<&ValidatorSet> for ConsensusValidators {
    fn from(set: &ValidatorSet) -> Self {
        let validators: Vec<ConsensusValidator> = set
            .validators()
            .iter()
            .map(|v| ConsensusValidator { address: Address(v.address), power: v.power })
            .collect();
        ConsensusValidators { validators, total: set.total_power() }
    }
}

impl mt::ValidatorSet<CairnContext> for ConsensusValidators {
    fn count(&self) -> usize {
        self.validators.len()
    }

    fn total_voting_power(&self) -> u64 {
        self.total
    }

    fn get_by_address(&self, address: &Address) -> Option<&ConsensusValidator> {
        self.validators.iter().find(|v| &v.address == address)
    }

    fn get_by_index(&self, index: usize) -> Option<&ConsensusValidator> {
        self.validators.get(index)
    }
}

/// The index, in canonical order, of the proposer for `height` and `round`.
///
/// Round 0 goes round-robin by power over heights: height `h` falls in slot `h mod total_power`
/// and the validator whose cumulative power range covers that slot proposes, so each validator
/// proposes a share of heights proportional to its power. Later rounds move to the next
/// validators in canonical order, so a proposer that is down is skipped after one round.
fn proposer_index(powers: impl Iterator<Item = u64> + Clone, height: u64, round: u32) -> usize {
    let count = powers.clone().count();
    let total: u64 = powers.clone().sum();
    if count == 0 || total == 0 {
        return 0;
    }
    let slot = height % total;
    let mut upper: u64 = 0;
    let mut base = count - 1;
    for (i, p) in powers.enumerate() {
        upper = upper.saturating_add(p);
        if slot < upper {
            base = i;
            break;
        }
    }
    // `count` is at most VALIDATORS_MAX, so these conversions and the sum cannot overflow.
    let step = usize::try_from(u64::from(round) % count as u64).expect("less than the validator count");
    (base + step) % count
}

/// The proposer of `height` and `round` in `validators` (see the crate docs for the rule).
pub fn proposer(validators: &ValidatorSet, height: u64, round: u32) -> PublicKey {
    let vs = validators.validators();
    vs[proposer_index(vs.iter().map(|v| v.power), height, round)].address
}

/// Cairn's Malachite context: the chain it signs for.
#[derive(Clone, Debug)]
pub struct CairnContext {
    chain_id: Hash,
}

impl CairnContext {
    /// A context for the chain `chain_id` (its genesis hash).
    pub fn new(chain_id: Hash) -> CairnContext {
        CairnContext { chain_id }
    }

    /// The chain id.
    pub fn chain_id(&self) -> Hash {
        self.chain_id
    }

    fn vote(
        &self,
        kind: VoteKind,
        height: Height,
        round: Round,
        value: NilOrVal<BlockHash>,
        a: Address,
    ) -> ConsensusVote {
        ConsensusVote::new(Vote {
            version: FORMAT_VERSION,
            chain_id: self.chain_id,
            kind,
            height: height.0,
            round: round.as_u32().expect("Malachite votes only in defined rounds"),
            block_hash: match value {
                NilOrVal::Val(h) => Some(h.0),
                NilOrVal::Nil => None,
            },
            validator: a.0,
        })
    }
}

impl mt::Context for CairnContext {
    type Address = Address;
    type Height = Height;
    type ProposalPart = NoParts;
    type Proposal = ConsensusProposal;
    type Validator = ConsensusValidator;
    type ValidatorSet = ConsensusValidators;
    type Value = BlockHash;
    type Vote = ConsensusVote;
    type Extension = ();
    type SigningScheme = Ed25519;

    fn select_proposer<'a>(
        &self,
        set: &'a ConsensusValidators,
        height: Height,
        round: Round,
    ) -> &'a ConsensusValidator {
        let round = round.as_u32().unwrap_or(0);
        &set.validators[proposer_index(set.validators.iter().map(|v| v.power), height.0, round)]
    }

    fn new_proposal(
        &self,
        height: Height,
        round: Round,
        value: BlockHash,
        pol_round: Round,
        a: Address,
    ) -> ConsensusProposal {
        ConsensusProposal::new(Proposal::new(
            self.chain_id,
            height.0,
            round.as_u32().expect("Malachite proposes only in defined rounds"),
            value.0,
            pol_round.as_u32(),
            a.0,
        ))
    }

    fn new_prevote(&self, height: Height, round: Round, value: NilOrVal<BlockHash>, a: Address) -> ConsensusVote {
        self.vote(VoteKind::Prevote, height, round, value, a)
    }

    fn new_precommit(&self, height: Height, round: Round, value: NilOrVal<BlockHash>, a: Address) -> ConsensusVote {
        self.vote(VoteKind::Precommit, height, round, value, a)
    }
}

/// Signatures verified so far remembered, at most (then the cache starts over).
pub const VERIFIED_SIGNATURES_MAX: usize = 4096;

/// The digest of the bytes a signature in `domain` covers: `sha256(domain message of body)`.
pub fn signed_digest<T: borsh::BorshSerialize>(domain: Domain, body: &T) -> Hash {
    Hash::of(&domain.message(body))
}

/// Signatures already verified, each remembered with the public key and the digest of the
/// exact bytes it covers, so that a hit vouches only for that key signing that message: a
/// valid signature copied onto another message (or claimed for another key) is a miss and is
/// verified — and refused — like any other. Bounded by [`VERIFIED_SIGNATURES_MAX`].
#[derive(Clone, Debug, Default)]
pub struct SignatureCache {
    entries: HashSet<(PublicKey, Hash, Sig)>,
}

impl SignatureCache {
    /// Whether `signature` by `key` over the bytes with `digest` was verified.
    pub fn contains(&self, key: &PublicKey, digest: &Hash, signature: &Sig) -> bool {
        self.entries.contains(&(*key, *digest, *signature))
    }

    /// Remembers a verified signature.
    pub fn insert(&mut self, key: PublicKey, digest: Hash, signature: Sig) {
        if self.entries.len() >= VERIFIED_SIGNATURES_MAX {
            self.entries.clear();
        }
        self.entries.insert((key, digest, signature));
    }

    /// How many signatures are remembered.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Signs with this validator's key and verifies others' signatures, in Cairn's domains.
/// Verification first looks in its [`SignatureCache`] (what this validator has already
/// verified, filled by the engine), so that each signature is checked once per node.
#[derive(Clone, Debug)]
pub struct CairnSigner {
    key: Keypair,
    /// Signatures already verified.
    pub cache: SignatureCache,
    /// Signatures verified here (cache misses), for statistics.
    verifications: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl CairnSigner {
    /// A signer with `key`.
    pub fn new(key: Keypair) -> CairnSigner {
        CairnSigner { key, cache: SignatureCache::default(), verifications: Default::default() }
    }

    /// How many signatures this signer verified itself (not found in its cache).
    pub fn verifications(&self) -> u64 {
        self.verifications.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn check<T: borsh::BorshSerialize>(&self, domain: Domain, body: &T, signature: &Sig, key: &PublicKey) -> bool {
        if self.cache.contains(key, &signed_digest(domain, body), signature) {
            return true;
        }
        self.verifications.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        key.verify(domain, body, &Signature::from(*signature)).is_ok()
    }
}

impl mt::SigningProvider<CairnContext> for CairnSigner {
    fn sign_vote(&self, vote: ConsensusVote) -> SignedMessage<CairnContext, ConsensusVote> {
        let signature = self.key.sign(Domain::Vote, vote.vote());
        SignedMessage::new(vote, signature.into())
    }

    fn verify_signed_vote(&self, vote: &ConsensusVote, signature: &Sig, public_key: &PublicKey) -> bool {
        self.check(Domain::Vote, vote.vote(), signature, public_key)
    }

    fn sign_proposal(&self, proposal: ConsensusProposal) -> SignedMessage<CairnContext, ConsensusProposal> {
        let signature = self.key.sign(Domain::Proposal, proposal.proposal());
        SignedMessage::new(proposal, signature.into())
    }

    fn verify_signed_proposal(&self, proposal: &ConsensusProposal, signature: &Sig, public_key: &PublicKey) -> bool {
        self.check(Domain::Proposal, proposal.proposal(), signature, public_key)
    }

    fn sign_proposal_part(&self, part: NoParts) -> SignedMessage<CairnContext, NoParts> {
        match part {}
    }

    fn verify_signed_proposal_part(&self, part: &NoParts, _: &Sig, _: &PublicKey) -> bool {
        match *part {}
    }

    fn sign_vote_extension(&self, extension: ()) -> SignedMessage<CairnContext, ()> {
        // Never called: Cairn answers `ExtendVote` with `None`. An all-zero signature never verifies.
        SignedMessage::new(extension, Sig([0; 64]))
    }

    fn verify_signed_vote_extension(&self, _: &(), _: &Sig, _: &PublicKey) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_by_power_is_deterministic_and_moves_on_each_round() {
        // Powers 2, 1, 1: over 4 heights the first validator proposes twice.
        let powers = [2u64, 1, 1];
        let picks: Vec<usize> = (0..8).map(|h| proposer_index(powers.iter().copied(), h, 0)).collect();
        assert_eq!(picks, vec![0, 0, 1, 2, 0, 0, 1, 2]);
        assert_eq!(proposer_index(powers.iter().copied(), 0, 1), 1);
        assert_eq!(proposer_index(powers.iter().copied(), 0, 3), 0);
        let equal = [1u64; 4];
        let picks: Vec<usize> = (0..4).map(|h| proposer_index(equal.iter().copied(), h, 0)).collect();
        assert_eq!(picks, vec![0, 1, 2, 3]);
    }
}
