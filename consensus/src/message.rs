//! The consensus wire format: signed proposals and votes, and the certificates that help
//! validators catch up on a round, as versioned borsh.
//!
//! ```text
//! message   = MESSAGE_VERSION (u8 = 1) || borsh(ConsensusMessage)
//! ConsensusMessage = 0 Vote(SignedVote) | 1 Proposal(SignedProposal)
//!                  | 2 PolkaCertificate | 3 RoundCertificate
//! ```
//!
//! A vote is signed as `Domain::Vote.message(&vote)` (`cairn/v1/vote`), a proposal as
//! `Domain::Proposal.message(&proposal)` (`cairn/v1/proposal`). Certificates carry only
//! signatures: each signed vote is rebuilt from the certificate's fields and the chain id.

use borsh::{BorshDeserialize, BorshSerialize};
use cairn_ledger::types::VALIDATORS_MAX;
use cairn_ledger::{
    CommitSignature, FORMAT_VERSION, Hash, Keypair, PublicKey, Signature, ValidatorSet, Vote, VoteKind,
};
use informalsystems_malachitebft_core_types as mt;
use mt::{NilOrVal, Round, SignedMessage};

use crate::context::{Address, BlockHash, CairnContext, ConsensusProposal, ConsensusVote, Height, Sig};
use crate::{ConsensusError, Result};

/// The version byte in front of every consensus message.
pub const MESSAGE_VERSION: u8 = 1;

/// The largest consensus message accepted (a certificate with [`VALIDATORS_MAX`] signatures
/// is about 36 KiB).
pub const MESSAGE_SIZE_MAX: usize = 64 * 1024;

/// A proposal: the block (by hash) that `proposer` proposes at `height` and `round`.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Proposal {
    /// Format version ([`FORMAT_VERSION`]).
    pub version: u8,
    /// The chain (genesis hash).
    pub chain_id: Hash,
    /// The height proposed for.
    pub height: u64,
    /// The round.
    pub round: u32,
    /// The proposed block's hash.
    pub block_hash: Hash,
    /// The round of the polka that made this block valid, when it is re-proposed (Tendermint's `validRound`).
    pub pol_round: Option<u32>,
    /// The proposer.
    pub proposer: PublicKey,
}

impl Proposal {
    /// A proposal in the current [`FORMAT_VERSION`]; `pol_round` is `None` unless the block
    /// is re-proposed on a polka.
    pub fn new(
        chain_id: Hash,
        height: u64,
        round: u32,
        block_hash: Hash,
        pol_round: Option<u32>,
        proposer: PublicKey,
    ) -> Proposal {
        Proposal { version: FORMAT_VERSION, chain_id, height, round, block_hash, pol_round, proposer }
    }
}

/// A vote with its signature.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct SignedVote {
    /// The vote.
    pub vote: Vote,
    /// `vote.validator`'s signature over `Domain::Vote.message(&vote)`.
    pub signature: Signature,
}

/// A proposal with its signature.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct SignedProposal {
    /// The proposal.
    pub proposal: Proposal,
    /// `proposal.proposer`'s signature over `Domain::Proposal.message(&proposal)`.
    pub signature: Signature,
}

/// Prevotes for one block from more than 2/3 of the voting power (a "polka").
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct PolkaCertificate {
    /// Height.
    pub height: u64,
    /// Round of the prevotes.
    pub round: u32,
    /// The block prevoted for.
    pub block_hash: Hash,
    /// Each validator's signature over its prevote.
    pub signatures: Vec<CommitSignature>,
}

/// Why a round certificate lets a validator move to another round.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
#[borsh(use_discriminant = true)]
pub enum RoundCertificateKind {
    /// Votes of more than 1/3 of the power in a higher round: skip to it.
    Skip = 0,
    /// Precommits of more than 2/3 of the power in this round: go to the next round.
    Precommit = 1,
}

/// One signed vote in a [`RoundCertificate`].
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct RoundVote {
    /// Prevote or precommit.
    pub kind: VoteKind,
    /// The block voted for, or `None` for nil.
    pub block_hash: Option<Hash>,
    /// The voter.
    pub validator: PublicKey,
    /// Its signature over the vote.
    pub signature: Signature,
}

/// Votes that justify entering a round.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct RoundCertificate {
    /// Height.
    pub height: u64,
    /// Round of the votes.
    pub round: u32,
    /// Skip or precommit certificate.
    pub kind: RoundCertificateKind,
    /// The votes.
    pub votes: Vec<RoundVote>,
}

/// A consensus message, as gossiped between validators.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum ConsensusMessage {
    /// A prevote or precommit.
    Vote(SignedVote),
    /// A proposal.
    Proposal(SignedProposal),
    /// A polka certificate.
    PolkaCertificate(PolkaCertificate),
    /// A round certificate.
    RoundCertificate(RoundCertificate),
}

impl ConsensusMessage {
    /// The bytes on the wire: [`MESSAGE_VERSION`] then borsh.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![MESSAGE_VERSION];
        borsh::to_writer(&mut out, self).expect("borsh encoding into a Vec cannot fail");
        out
    }

    /// Decodes wire bytes, within [`MESSAGE_SIZE_MAX`]. Checks only the format, not signatures.
    pub fn decode(bytes: &[u8]) -> Result<ConsensusMessage> {
        let (&version, body) = bytes.split_first().ok_or_else(|| ConsensusError::Decode("empty message".into()))?;
        if version != MESSAGE_VERSION {
            return Err(ConsensusError::Decode(format!("unsupported consensus message version {version}")));
        }
        let msg: ConsensusMessage = cairn_ledger::decode("consensus message", body, MESSAGE_SIZE_MAX)
            .map_err(|e| ConsensusError::Decode(e.to_string()))?;
        msg.check_canonical().map_err(|e| ConsensusError::Decode(e.to_string()))?;
        Ok(msg)
    }

    /// The format rules of certificates, checked without looking at any signature: at most
    /// [`VALIDATORS_MAX`] signatures, sorted by validator, each validator once. So one set of
    /// signatures has exactly one encoding, and a certificate cannot be re-permuted or padded
    /// into byte-different copies.
    pub fn check_canonical(&self) -> Result<()> {
        let signers: Vec<&PublicKey> = match self {
            ConsensusMessage::PolkaCertificate(c) => c.signatures.iter().map(|s| &s.validator).collect(),
            ConsensusMessage::RoundCertificate(c) => c.votes.iter().map(|v| &v.validator).collect(),
            ConsensusMessage::Vote(_) | ConsensusMessage::Proposal(_) => return Ok(()),
        };
        if signers.len() > VALIDATORS_MAX {
            return Err(ConsensusError::Invalid(format!("a certificate has at most {VALIDATORS_MAX} signatures")));
        }
        if signers.windows(2).any(|w| w[0] >= w[1]) {
            return Err(ConsensusError::Invalid(
                "certificate signatures must be sorted by validator, each validator once".into(),
            ));
        }
        Ok(())
    }

    /// The height the message is for.
    pub fn height(&self) -> u64 {
        match self {
            ConsensusMessage::Vote(v) => v.vote.height,
            ConsensusMessage::Proposal(p) => p.proposal.height,
            ConsensusMessage::PolkaCertificate(c) => c.height,
            ConsensusMessage::RoundCertificate(c) => c.height,
        }
    }

    /// The round the message is for.
    pub fn round(&self) -> u32 {
        match self {
            ConsensusMessage::Vote(v) => v.vote.round,
            ConsensusMessage::Proposal(p) => p.proposal.round,
            ConsensusMessage::PolkaCertificate(c) => c.round,
            ConsensusMessage::RoundCertificate(c) => c.round,
        }
    }

    /// Checks what can be checked without consensus state: the chain, the version, that the
    /// signer is a validator — for a proposal, this round's proposer — and that each signature
    /// verifies. A certificate must also be canonical ([`ConsensusMessage::check_canonical`])
    /// and carry enough voting power: more than 2/3 for a polka or a precommit round
    /// certificate (which holds only precommits), more than 1/3 for a skip certificate. Every
    /// cheap check runs before the first signature is verified. Returns how many signatures
    /// were verified.
    pub fn check(&self, chain_id: Hash, validators: &ValidatorSet) -> Result<usize> {
        let bad = |what: &str| ConsensusError::Invalid(what.to_string());
        match self {
            ConsensusMessage::Vote(v) => {
                if v.vote.version != FORMAT_VERSION || v.vote.chain_id != chain_id {
                    return Err(bad("vote for another chain or format version"));
                }
                if validators.power_of(&v.vote.validator).is_none() {
                    return Err(ConsensusError::NotValidator(v.vote.validator));
                }
                v.verify()?;
                Ok(1)
            }
            ConsensusMessage::Proposal(p) => {
                if p.proposal.version != FORMAT_VERSION || p.proposal.chain_id != chain_id {
                    return Err(bad("proposal for another chain or format version"));
                }
                if p.proposal.proposer != crate::context::proposer(validators, p.proposal.height, p.proposal.round) {
                    return Err(bad("proposal from a validator that is not this round's proposer"));
                }
                p.verify()?;
                Ok(1)
            }
            ConsensusMessage::PolkaCertificate(_) | ConsensusMessage::RoundCertificate(_) => {
                self.check_canonical()?;
                let votes = self.certificate_votes(chain_id);
                let mut signed_power: u64 = 0;
                for v in &votes {
                    let power =
                        validators.power_of(&v.vote.validator).ok_or(ConsensusError::NotValidator(v.vote.validator))?;
                    signed_power = signed_power.saturating_add(power);
                }
                let (signed, total) = (u128::from(signed_power), u128::from(validators.total_power()));
                let enough = match self {
                    ConsensusMessage::RoundCertificate(c) if c.kind == RoundCertificateKind::Skip => 3 * signed > total,
                    ConsensusMessage::RoundCertificate(c) => {
                        if c.votes.iter().any(|v| v.kind != VoteKind::Precommit) {
                            return Err(bad("a precommit round certificate holds only precommits"));
                        }
                        3 * signed > 2 * total
                    }
                    _ => 3 * signed > 2 * total,
                };
                if !enough {
                    return Err(bad("certificate without enough voting power"));
                }
                for v in &votes {
                    v.verify()?;
                }
                Ok(votes.len())
            }
        }
    }

    /// The signed votes a certificate is made of (none for a vote or proposal).
    pub fn certificate_votes(&self, chain_id: Hash) -> Vec<SignedVote> {
        let vote = |kind, height, round, block_hash, validator| Vote {
            version: FORMAT_VERSION,
            chain_id,
            kind,
            height,
            round,
            block_hash,
            validator,
        };
        match self {
            ConsensusMessage::PolkaCertificate(c) => c
                .signatures
                .iter()
                .map(|s| SignedVote {
                    vote: vote(VoteKind::Prevote, c.height, c.round, Some(c.block_hash), s.validator),
                    signature: s.signature,
                })
                .collect(),
            ConsensusMessage::RoundCertificate(c) => c
                .votes
                .iter()
                .map(|v| SignedVote {
                    vote: vote(v.kind, c.height, c.round, v.block_hash, v.validator),
                    signature: v.signature,
                })
                .collect(),
            _ => Vec::new(),
        }
    }
}

impl SignedVote {
    /// Signs `vote` with `key` (which should be `vote.validator`'s).
    pub fn sign(key: &Keypair, vote: Vote) -> SignedVote {
        let signature = key.sign(cairn_ledger::Domain::Vote, &vote);
        SignedVote { vote, signature }
    }

    /// Checks the signature.
    pub fn verify(&self) -> Result<()> {
        self.vote
            .validator
            .verify(cairn_ledger::Domain::Vote, &self.vote, &self.signature)
            .map_err(|e| ConsensusError::Invalid(e.to_string()))
    }
}

impl SignedProposal {
    /// Signs `proposal` with `key` (which should be `proposal.proposer`'s).
    pub fn sign(key: &Keypair, proposal: Proposal) -> SignedProposal {
        let signature = key.sign(cairn_ledger::Domain::Proposal, &proposal);
        SignedProposal { proposal, signature }
    }

    /// Checks the signature.
    pub fn verify(&self) -> Result<()> {
        self.proposal
            .proposer
            .verify(cairn_ledger::Domain::Proposal, &self.proposal, &self.signature)
            .map_err(|e| ConsensusError::Invalid(e.to_string()))
    }
}

// Conversions between the wire types and Malachite's.

pub(crate) type MSignedVote = SignedMessage<CairnContext, ConsensusVote>;
pub(crate) type MSignedProposal = SignedMessage<CairnContext, ConsensusProposal>;

impl From<&MSignedVote> for SignedVote {
    fn from(v: &MSignedVote) -> SignedVote {
        SignedVote { vote: v.message.vote().clone(), signature: v.signature.into() }
    }
}

impl From<SignedVote> for MSignedVote {
    fn from(v: SignedVote) -> MSignedVote {
        SignedMessage::new(ConsensusVote::new(v.vote), v.signature.into())
    }
}

impl From<&MSignedProposal> for SignedProposal {
    fn from(p: &MSignedProposal) -> SignedProposal {
        SignedProposal { proposal: p.message.proposal().clone(), signature: p.signature.into() }
    }
}

impl From<SignedProposal> for MSignedProposal {
    fn from(p: SignedProposal) -> MSignedProposal {
        SignedMessage::new(ConsensusProposal::new(p.proposal), p.signature.into())
    }
}

/// Sorts a certificate's (or commit's) signatures by validator and keeps one per validator
/// (the first Malachite listed): the only encoding [`ConsensusMessage::decode`] accepts.
pub(crate) fn canonical<T>(mut items: Vec<T>, validator: impl Fn(&T) -> PublicKey) -> Vec<T> {
    items.sort_by_key(&validator);
    items.dedup_by_key(|t| validator(t));
    items
}

fn round_u32(round: Round) -> u32 {
    round.as_u32().expect("certificates are for defined rounds")
}

impl From<&mt::PolkaCertificate<CairnContext>> for PolkaCertificate {
    fn from(c: &mt::PolkaCertificate<CairnContext>) -> Self {
        PolkaCertificate {
            height: c.height.0,
            round: round_u32(c.round),
            block_hash: c.value_id.0,
            signatures: canonical(
                c.polka_signatures
                    .iter()
                    .map(|s| CommitSignature { validator: s.address.0, signature: s.signature.into() })
                    .collect(),
                |s| s.validator,
            ),
        }
    }
}

impl From<PolkaCertificate> for mt::PolkaCertificate<CairnContext> {
    fn from(c: PolkaCertificate) -> Self {
        mt::PolkaCertificate {
            height: Height(c.height),
            round: Round::new(c.round),
            value_id: BlockHash(c.block_hash),
            polka_signatures: c
                .signatures
                .into_iter()
                .map(|s| mt::PolkaSignature::new(Address(s.validator), Sig::from(s.signature)))
                .collect(),
        }
    }
}

fn kind_of(t: mt::VoteType) -> VoteKind {
    match t {
        mt::VoteType::Prevote => VoteKind::Prevote,
        mt::VoteType::Precommit => VoteKind::Precommit,
    }
}

impl From<&mt::RoundCertificate<CairnContext>> for RoundCertificate {
    fn from(c: &mt::RoundCertificate<CairnContext>) -> Self {
        RoundCertificate {
            height: c.height.0,
            round: round_u32(c.round),
            kind: match c.cert_type {
                mt::RoundCertificateType::Skip => RoundCertificateKind::Skip,
                mt::RoundCertificateType::Precommit => RoundCertificateKind::Precommit,
            },
            votes: canonical(
                c.round_signatures
                    .iter()
                    .map(|s| RoundVote {
                        kind: kind_of(s.vote_type),
                        block_hash: match s.value_id {
                            NilOrVal::Val(h) => Some(h.0),
                            NilOrVal::Nil => None,
                        },
                        validator: s.address.0,
                        signature: s.signature.into(),
                    })
                    .collect(),
                |v| v.validator,
            ),
        }
    }
}

impl From<RoundCertificate> for mt::RoundCertificate<CairnContext> {
    fn from(c: RoundCertificate) -> Self {
        mt::RoundCertificate {
            height: Height(c.height),
            round: Round::new(c.round),
            cert_type: match c.kind {
                RoundCertificateKind::Skip => mt::RoundCertificateType::Skip,
                RoundCertificateKind::Precommit => mt::RoundCertificateType::Precommit,
            },
            round_signatures: c
                .votes
                .into_iter()
                .map(|v| {
                    mt::RoundSignature::new(
                        match v.kind {
                            VoteKind::Prevote => mt::VoteType::Prevote,
                            VoteKind::Precommit => mt::VoteType::Precommit,
                        },
                        match v.block_hash {
                            Some(h) => NilOrVal::Val(BlockHash(h)),
                            None => NilOrVal::Nil,
                        },
                        Address(v.validator),
                        Sig::from(v.signature),
                    )
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vote_message_has_pinned_bytes() {
        let key = Keypair::from_seed([7; 32]);
        let vote = Vote {
            version: FORMAT_VERSION,
            chain_id: Hash([1; 32]),
            kind: VoteKind::Prevote,
            height: 2,
            round: 3,
            block_hash: None,
            validator: key.public(),
        };
        let msg = ConsensusMessage::Vote(SignedVote::sign(&key, vote));
        let bytes = msg.encode();
        // version, tag, then the vote: version, chain id, kind, height, round, no block, validator.
        assert_eq!(&bytes[..4], &[MESSAGE_VERSION, 0, FORMAT_VERSION, 1]);
        assert_eq!(bytes.len(), 1 + 1 + (1 + 32 + 1 + 8 + 4 + 1 + 32) + 64);
        assert_eq!(ConsensusMessage::decode(&bytes).expect("decodes"), msg);
        assert!(ConsensusMessage::decode(&bytes[..bytes.len() - 1]).is_err());
        let mut other_version = bytes.clone();
        other_version[0] = 2;
        assert!(ConsensusMessage::decode(&other_version).is_err());
    }

    #[test]
    fn a_proposal_is_signed_in_its_own_domain() {
        let key = Keypair::from_seed([7; 32]);
        let p = Proposal::new(Hash::ZERO, 1, 0, Hash([9; 32]), None, key.public());
        let signed = SignedProposal::sign(&key, p.clone());
        assert!(signed.verify().is_ok());
        assert!(key.public().verify(cairn_ledger::Domain::Vote, &p, &signed.signature).is_err());
        assert_eq!(&cairn_ledger::Domain::Proposal.message(&p)[..18], b"cairn/v1/proposal\x00");
    }

    fn keys() -> (Vec<Keypair>, ValidatorSet) {
        let keys: Vec<Keypair> = (1..=4u8).map(|i| Keypair::from_seed([i; 32])).collect();
        let set =
            ValidatorSet::new(keys.iter().map(|k| cairn_ledger::Validator { address: k.public(), power: 1 }).collect())
                .expect("set");
        (keys, set)
    }

    fn prevote_signature(key: &Keypair, block_hash: Hash) -> CommitSignature {
        let vote = Vote {
            version: FORMAT_VERSION,
            chain_id: Hash::ZERO,
            kind: VoteKind::Prevote,
            height: 1,
            round: 0,
            block_hash: Some(block_hash),
            validator: key.public(),
        };
        let signed = SignedVote::sign(key, vote);
        CommitSignature { validator: key.public(), signature: signed.signature }
    }

    #[test]
    fn a_certificate_has_one_encoding() {
        let (keys, set) = keys();
        let block = Hash::of(b"block");
        let mut signatures: Vec<CommitSignature> = keys[..3].iter().map(|k| prevote_signature(k, block)).collect();
        signatures.sort_by_key(|s| s.validator);
        let cert = PolkaCertificate { height: 1, round: 0, block_hash: block, signatures };
        let good = ConsensusMessage::PolkaCertificate(cert.clone());
        assert_eq!(ConsensusMessage::decode(&good.encode()).expect("canonical"), good);
        assert_eq!(good.check(Hash::ZERO, &set).expect("valid"), 3);
        // The same signatures permuted, or one repeated: byte-different copies, refused.
        let mut permuted = cert.clone();
        permuted.signatures.swap(0, 2);
        assert!(ConsensusMessage::decode(&ConsensusMessage::PolkaCertificate(permuted).encode()).is_err());
        let mut padded = cert.clone();
        padded.signatures.push(padded.signatures[2].clone());
        assert!(ConsensusMessage::decode(&ConsensusMessage::PolkaCertificate(padded.clone()).encode()).is_err());
        assert!(ConsensusMessage::PolkaCertificate(padded).check(Hash::ZERO, &set).is_err());
        // What the node sends is built canonical from Malachite's certificate, whatever its order.
        let mut unsorted: mt::PolkaCertificate<CairnContext> = cert.clone().into();
        unsorted.polka_signatures.reverse();
        unsorted.polka_signatures.push(unsorted.polka_signatures[0].clone());
        assert_eq!(PolkaCertificate::from(&unsorted), cert);
    }

    #[test]
    fn a_certificate_without_enough_power_is_refused_before_any_signature_is_verified() {
        let (keys, set) = keys();
        let block = Hash::of(b"block");
        let mut signatures: Vec<CommitSignature> = keys[..2].iter().map(|k| prevote_signature(k, block)).collect();
        signatures.sort_by_key(|s| s.validator);
        signatures[0].signature = Signature([9; 64]);
        let two =
            ConsensusMessage::PolkaCertificate(PolkaCertificate { height: 1, round: 0, block_hash: block, signatures });
        let err = two.check(Hash::ZERO, &set).expect_err("2 of 4 is no polka");
        assert!(err.to_string().contains("enough voting power"), "{err}");
        // A precommit round certificate holds only precommits.
        let votes = keys[..3]
            .iter()
            .map(|k| {
                let s = prevote_signature(k, block);
                RoundVote {
                    kind: VoteKind::Prevote,
                    block_hash: Some(block),
                    validator: s.validator,
                    signature: s.signature,
                }
            })
            .collect::<Vec<_>>();
        let mut votes = votes;
        votes.sort_by_key(|v| v.validator);
        let precommit =
            RoundCertificate { height: 1, round: 0, kind: RoundCertificateKind::Precommit, votes: votes.clone() };
        assert!(ConsensusMessage::RoundCertificate(precommit).check(Hash::ZERO, &set).is_err());
        // Two prevotes are a skip certificate (more than 1/3).
        let skip =
            RoundCertificate { height: 1, round: 0, kind: RoundCertificateKind::Skip, votes: votes[..2].to_vec() };
        assert_eq!(ConsensusMessage::RoundCertificate(skip).check(Hash::ZERO, &set).expect("valid skip"), 2);
    }

    use proptest::strategy::Strategy as _;

    proptest::proptest! {
        /// Whatever order and repeats a certificate's signatures come in, exactly one
        /// encoding decodes — sorted by validator, each once — and the certificates the engine
        /// builds from Malachite's are always that one.
        #[test]
        fn only_the_canonical_order_of_a_certificate_decodes(
            order in proptest::strategy::Just((0..6usize).collect::<Vec<_>>()).prop_shuffle(),
            take in 1..=6usize,
            repeat in proptest::option::of((0..6usize, 0..7usize)),
        ) {
            let keys: Vec<Keypair> = (1..=6u8).map(|i| Keypair::from_seed([i; 32])).collect();
            let block = Hash::of(b"block");
            let mut signatures: Vec<CommitSignature> =
                order[..take].iter().map(|&i| prevote_signature(&keys[i], block)).collect();
            if let Some((from, at)) = repeat {
                let copy = signatures[from % signatures.len()].clone();
                signatures.insert(at.min(signatures.len()), copy);
            }
            let mut canonical = signatures.clone();
            canonical.sort_by_key(|s| s.validator);
            canonical.dedup_by_key(|s| s.validator);
            let cert = PolkaCertificate { height: 1, round: 0, block_hash: block, signatures: signatures.clone() };
            let decoded = ConsensusMessage::decode(&ConsensusMessage::PolkaCertificate(cert.clone()).encode());
            proptest::prop_assert_eq!(decoded.is_ok(), signatures == canonical);
            let built: mt::PolkaCertificate<CairnContext> = cert.into();
            proptest::prop_assert_eq!(PolkaCertificate::from(&built).signatures, canonical);
        }
    }
}
