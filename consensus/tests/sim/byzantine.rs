//! Byzantine validators: what they do and the messages they make up.
//!
//! A Byzantine validator runs the engine like everyone else, and between `from_ms` and
//! `until_ms` (or to the end) also does what its [`Behaviour`]s say. It counts as faulty for
//! the whole run: nothing is checked about what it signs, and liveness is asked of the
//! honest validators only.

use std::collections::{BTreeMap, VecDeque};

use cairn_consensus::message::PolkaCertificate;
use cairn_consensus::{
    ConsensusMessage, HEIGHTS_AHEAD_MAX, Proposal, ROUNDS_AHEAD_MAX, SignedProposal, SignedVote, proposer,
};
use cairn_ledger::{
    Commit, CommitSignature, FORMAT_VERSION, Hash, Keypair, PublicKey, Signature, ValidatorSet, Vote, VoteKind,
};

use crate::blocks::Invalidity;
use crate::harness::Rng;

/// Bytes of filler after the tag of a [`JunkKind::Garbage`] message, at most.
pub const GARBAGE_BYTES_MAX: u64 = 200;
/// How many heights below its own a [`JunkKind::StaleHeight`] vote is, at most.
pub const STALE_HEIGHTS_MAX: u64 = 3;
/// How far past the last height a validator looks at a [`JunkKind::FarFutureHeight`] vote
/// is, at most.
pub const FAR_HEIGHTS_MAX: u64 = 1_000;
/// How far past the last round a validator looks at a [`JunkKind::FarFutureRound`] vote is,
/// at most.
pub const FAR_ROUNDS_MAX: u32 = 1_000;

/// One way of misbehaving.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Behaviour {
    /// As proposer: a block wrong in one way, each [`BadProposal`] in turn.
    InvalidProposals,
    /// As proposer: two different valid blocks, and a signed proposal for each; each peer
    /// gets one of the two proposals, or both.
    EquivocatingProposals,
    /// Every vote it signs twinned with a conflicting one (for the other block of an
    /// equivocating proposal where there is one, else for a block nobody has); each peer gets
    /// one of the two, or both.
    EquivocatingVotes,
    /// Sends peers malformed, forged, stale and far-future messages ([`JunkKind`]), and
    /// answers sync requests with forged decisions.
    Junk,
    /// Calls every block valid, and prevotes and precommits every invalid (or unavailable)
    /// block it sees proposed, its own included.
    VotesForInvalid,
}

/// A Byzantine validator's behaviour and when it shows.
#[derive(Clone, Debug)]
pub struct Byzantine {
    /// The validator.
    pub node: usize,
    /// What it does.
    pub behaviour: Behaviour,
    /// From when (virtual ms).
    pub from_ms: u64,
    /// Until when; `None`: to the end of the run (liveness must then hold despite it).
    pub until_ms: Option<u64>,
}

impl Byzantine {
    /// Whether the behaviour shows at `now_ms`.
    pub fn active(&self, now_ms: u64) -> bool {
        now_ms >= self.from_ms && self.until_ms.is_none_or(|u| now_ms < u)
    }
}

/// What a Byzantine proposer proposes instead of an honest block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BadProposal {
    /// A block that fails the honest check in exactly this way.
    Invalid(Invalidity),
    /// A hash of a block nobody has: honest validators keep asking for it and never vote.
    Withheld,
}

impl BadProposal {
    /// Every kind, in the order a Byzantine proposer goes through them.
    pub const ALL: [BadProposal; 9] = [
        BadProposal::Invalid(Invalidity::WrongHeight),
        BadProposal::Invalid(Invalidity::WrongParent),
        BadProposal::Invalid(Invalidity::WrongProposer),
        BadProposal::Invalid(Invalidity::TimeNotAfterParent),
        BadProposal::Invalid(Invalidity::TimeInFuture),
        BadProposal::Invalid(Invalidity::Oversized),
        BadProposal::Invalid(Invalidity::FailingTx),
        BadProposal::Invalid(Invalidity::WrongStateRoot),
        BadProposal::Withheld,
    ];
}

/// What an honest validator's gossip validation must do with a junk message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Refuse it: it does not decode.
    Rejected,
    /// Never accept it: refused once verified (or ignored, if out of the receiver's range).
    NotAccepted,
    /// Never refuse it (it is validly signed): ignored when out of the receiver's range, and
    /// then the engine, fed it directly, does nothing with it either.
    NotRejected,
}

/// A junk message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum JunkKind {
    /// The version byte, then an unknown message tag and random bytes.
    Garbage,
    /// A valid vote cut short.
    Truncated,
    /// A valid vote behind an unknown version byte.
    UnknownVersion,
    /// A polka certificate holding the same signature twice (not canonical).
    RepeatedSigner,
    /// A vote with one bit of its signature flipped.
    BadSignature,
    /// A vote naming an honest validator, signed with the Byzantine key.
    ForgedSigner,
    /// A vote signed for another chain.
    OtherChain,
    /// A proposal for a round this validator does not propose.
    NotProposer,
    /// A vote signed by a key outside the validator set.
    NotValidator,
    /// A polka certificate with only this validator's prevote (not enough power).
    WeakCertificate,
    /// A polka certificate naming every validator, all signatures but its own made up.
    ForgedCertificate,
    /// A signed vote for a height below its own.
    StaleHeight,
    /// A signed vote far past the heights a validator looks at.
    FarFutureHeight,
    /// A signed vote far past the rounds a validator looks at.
    FarFutureRound,
    /// A signed nil prevote for one of the next heights (buffered; asks for a sync).
    NearFutureHeight,
    /// A signed nil prevote for an earlier round of its height.
    StaleRound,
    /// A message it received before (anyone's), sent again.
    Replayed,
}

impl JunkKind {
    /// Every kind, in the order a junk peer goes through them.
    pub const ALL: [JunkKind; 17] = [
        JunkKind::Garbage,
        JunkKind::Truncated,
        JunkKind::UnknownVersion,
        JunkKind::RepeatedSigner,
        JunkKind::BadSignature,
        JunkKind::ForgedSigner,
        JunkKind::OtherChain,
        JunkKind::NotProposer,
        JunkKind::NotValidator,
        JunkKind::WeakCertificate,
        JunkKind::ForgedCertificate,
        JunkKind::StaleHeight,
        JunkKind::FarFutureHeight,
        JunkKind::FarFutureRound,
        JunkKind::NearFutureHeight,
        JunkKind::StaleRound,
        JunkKind::Replayed,
    ];

    /// What gossip validation must do with it.
    pub fn expect(self) -> Expect {
        match self {
            JunkKind::Garbage | JunkKind::Truncated | JunkKind::UnknownVersion | JunkKind::RepeatedSigner => {
                Expect::Rejected
            }
            JunkKind::BadSignature
            | JunkKind::ForgedSigner
            | JunkKind::OtherChain
            | JunkKind::NotProposer
            | JunkKind::NotValidator
            | JunkKind::WeakCertificate
            | JunkKind::ForgedCertificate => Expect::NotAccepted,
            JunkKind::StaleHeight
            | JunkKind::FarFutureHeight
            | JunkKind::FarFutureRound
            | JunkKind::NearFutureHeight
            | JunkKind::StaleRound
            | JunkKind::Replayed => Expect::NotRejected,
        }
    }
}

/// What a junk peer knows when it makes up a message.
pub struct JunkContext<'a> {
    /// Its key.
    pub key: &'a Keypair,
    /// A key outside the validator set.
    pub outsider: &'a Keypair,
    /// An honest validator to impersonate.
    pub victim: PublicKey,
    /// The chain.
    pub chain_id: Hash,
    /// The validator set.
    pub validators: &'a ValidatorSet,
    /// The height it is deciding.
    pub height: u64,
    /// Its current round there.
    pub round: u32,
    /// Messages it received lately.
    pub observed: &'a VecDeque<Vec<u8>>,
}

impl JunkContext<'_> {
    fn vote(&self, key: &Keypair, kind: VoteKind, height: u64, round: u32, block_hash: Option<Hash>) -> SignedVote {
        let vote = Vote {
            version: FORMAT_VERSION,
            chain_id: self.chain_id,
            kind,
            height,
            round,
            block_hash,
            validator: key.public(),
        };
        SignedVote::sign(key, vote)
    }

    fn made_up_block(&self, rng: &mut Rng) -> Hash {
        Hash::of_parts(&[b"junk-block", &rng.next_u64().to_le_bytes()])
    }

    /// A prevote of this validator at its height and round, for a block nobody has.
    fn own_prevote(&self, rng: &mut Rng) -> SignedVote {
        let block = self.made_up_block(rng);
        self.vote(self.key, VoteKind::Prevote, self.height, self.round, Some(block))
    }

    fn polka(&self, rng: &mut Rng, signatures: Vec<CommitSignature>) -> ConsensusMessage {
        let block_hash = self.made_up_block(rng);
        ConsensusMessage::PolkaCertificate(PolkaCertificate {
            height: self.height,
            round: self.round,
            block_hash,
            signatures,
        })
    }

    /// Makes up a message of `kind`, or `None` when there is none to make now (no height
    /// below, nothing received yet).
    pub fn make(&self, kind: JunkKind, rng: &mut Rng) -> Option<Vec<u8>> {
        let bytes = match kind {
            JunkKind::Garbage => {
                // Tags 0 to 3 are the four messages: any other never decodes.
                let mut b = vec![cairn_consensus::message::MESSAGE_VERSION, 4 + rng.below(252) as u8];
                b.extend((0..rng.below(GARBAGE_BYTES_MAX)).map(|_| rng.next_u64() as u8));
                b
            }
            JunkKind::Truncated => {
                let full = ConsensusMessage::Vote(self.own_prevote(rng)).encode();
                let keep = rng.range(1, full.len() as u64 - 1) as usize;
                full[..keep].to_vec()
            }
            JunkKind::UnknownVersion => {
                let mut b = ConsensusMessage::Vote(self.own_prevote(rng)).encode();
                b[0] = rng.range(2, 255) as u8;
                b
            }
            JunkKind::RepeatedSigner => {
                let v = self.own_prevote(rng);
                let s = CommitSignature { validator: self.key.public(), signature: v.signature };
                self.polka(rng, vec![s.clone(), s]).encode()
            }
            JunkKind::BadSignature => {
                let mut v = self.own_prevote(rng);
                v.signature.0[rng.below(64) as usize] ^= 1 << rng.below(8);
                ConsensusMessage::Vote(v).encode()
            }
            JunkKind::ForgedSigner => {
                let mut v = self.own_prevote(rng);
                v.vote.validator = self.victim;
                ConsensusMessage::Vote(v).encode()
            }
            JunkKind::OtherChain => {
                let mut vote = self.own_prevote(rng).vote;
                vote.chain_id = Hash::of_parts(&[b"another chain", &self.chain_id.0]);
                ConsensusMessage::Vote(SignedVote::sign(self.key, vote)).encode()
            }
            JunkKind::NotProposer => {
                let me = self.key.public();
                let n = self.validators.validators().len() as u32;
                let round = (self.round..self.round + n).find(|&r| proposer(self.validators, self.height, r) != me)?;
                let block_hash = self.made_up_block(rng);
                let p = Proposal::new(self.chain_id, self.height, round, block_hash, None, me);
                ConsensusMessage::Proposal(SignedProposal::sign(self.key, p)).encode()
            }
            JunkKind::NotValidator => {
                let block = self.made_up_block(rng);
                let v = self.vote(self.outsider, VoteKind::Precommit, self.height, self.round, Some(block));
                ConsensusMessage::Vote(v).encode()
            }
            JunkKind::WeakCertificate => {
                let block_hash = self.made_up_block(rng);
                let v = self.vote(self.key, VoteKind::Prevote, self.height, self.round, Some(block_hash));
                let s = CommitSignature { validator: self.key.public(), signature: v.signature };
                ConsensusMessage::PolkaCertificate(PolkaCertificate {
                    height: self.height,
                    round: self.round,
                    block_hash,
                    signatures: vec![s],
                })
                .encode()
            }
            JunkKind::ForgedCertificate => {
                let block_hash = self.made_up_block(rng);
                let own = self.vote(self.key, VoteKind::Prevote, self.height, self.round, Some(block_hash));
                let mut signatures: Vec<CommitSignature> = self
                    .validators
                    .validators()
                    .iter()
                    .map(|v| CommitSignature {
                        validator: v.address,
                        signature: if v.address == self.key.public() {
                            own.signature
                        } else {
                            Signature([rng.next_u64() as u8; 64])
                        },
                    })
                    .collect();
                signatures.sort_by_key(|s| s.validator);
                ConsensusMessage::PolkaCertificate(PolkaCertificate {
                    height: self.height,
                    round: self.round,
                    block_hash,
                    signatures,
                })
                .encode()
            }
            JunkKind::StaleHeight => {
                let below = rng.range(1, STALE_HEIGHTS_MAX);
                let height = self.height.checked_sub(below).filter(|&h| h >= 1)?;
                let block = self.made_up_block(rng);
                ConsensusMessage::Vote(self.vote(self.key, VoteKind::Precommit, height, 0, Some(block))).encode()
            }
            JunkKind::FarFutureHeight => {
                let height = self.height + HEIGHTS_AHEAD_MAX + rng.range(1, FAR_HEIGHTS_MAX);
                ConsensusMessage::Vote(self.vote(self.key, VoteKind::Prevote, height, 0, None)).encode()
            }
            JunkKind::FarFutureRound => {
                let round = self.round + ROUNDS_AHEAD_MAX + rng.range(1, u64::from(FAR_ROUNDS_MAX)) as u32;
                ConsensusMessage::Vote(self.vote(self.key, VoteKind::Prevote, self.height, round, None)).encode()
            }
            JunkKind::NearFutureHeight => {
                let height = self.height + rng.range(1, HEIGHTS_AHEAD_MAX);
                ConsensusMessage::Vote(self.vote(self.key, VoteKind::Prevote, height, 0, None)).encode()
            }
            JunkKind::StaleRound => {
                let round = self.round.checked_sub(1)?;
                let round = rng.below(u64::from(round) + 1) as u32;
                ConsensusMessage::Vote(self.vote(self.key, VoteKind::Prevote, self.height, round, None)).encode()
            }
            JunkKind::Replayed => {
                if self.observed.is_empty() {
                    return None;
                }
                self.observed[rng.below(self.observed.len() as u64) as usize].clone()
            }
        };
        Some(bytes)
    }
}

/// A junk peer's answer to a sync request from `from_height`: a decision that must not be
/// accepted. Every other answer claims a made-up block with only its own precommit; the
/// others take a real commit it holds and claim it for the height asked.
pub fn forged_sync(
    key: &Keypair,
    chain_id: Hash,
    from_height: u64,
    decided: &BTreeMap<u64, (Hash, Commit)>,
    relabel: bool,
) -> Vec<(u64, Hash, Commit)> {
    if relabel && let Some((_, (block_hash, commit))) = decided.iter().next_back() {
        let mut commit = commit.clone();
        commit.height = from_height;
        return vec![(from_height, *block_hash, commit)];
    }
    let block_hash = Hash::of_parts(&[b"forged-decision", &from_height.to_le_bytes()]);
    let vote = Vote {
        version: FORMAT_VERSION,
        chain_id,
        kind: VoteKind::Precommit,
        height: from_height,
        round: 0,
        block_hash: Some(block_hash),
        validator: key.public(),
    };
    let signed = SignedVote::sign(key, vote);
    let commit = Commit {
        version: FORMAT_VERSION,
        height: from_height,
        round: 0,
        block_hash,
        signatures: vec![CommitSignature { validator: key.public(), signature: signed.signature }],
    };
    vec![(from_height, block_hash, commit)]
}
