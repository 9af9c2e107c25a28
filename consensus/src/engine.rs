//! The sans-IO consensus engine: Malachite's core state machine behind Cairn's inputs and outputs.
//!
//! The caller feeds [`EngineInput`]s to [`Engine::handle`] and carries out the returned
//! [`EngineOutput`]s *in order*: a [`EngineOutput::WalAppend`] must be durable before any
//! output after it is acted on beyond the caller's memory — timers may be set first, a restart
//! sets them again (that is what keeps a restarted validator from signing twice).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};

use borsh::{BorshDeserialize, BorshSerialize};
use cairn_ledger::{Commit, CommitSignature, Domain, FORMAT_VERSION, Hash, Keypair, PublicKey, ValidatorSet};
use informalsystems_malachitebft_core_consensus as mc;
use informalsystems_malachitebft_core_types as mt;
use mc::{Effect, Input, LivenessMsg, LocallyProposedValue, Resumable, Resume, SignedConsensusMsg, State};
use mt::{Round, SigningProviderExt, ThresholdParams, Timeout};

use crate::context::{Address, BlockHash, CairnContext, CairnSigner, ConsensusValidators, Height, Sig, signed_digest};
use crate::message::{
    ConsensusMessage, MSignedProposal, MSignedVote, RoundCertificateKind, SignedProposal, SignedVote, canonical,
};
use crate::wal::{TimeoutKind, WalEntry};
use crate::{ConsensusError, Result};

/// Messages for heights further ahead than this are not buffered (the node should sync).
pub const HEIGHTS_AHEAD_MAX: u64 = 2;
/// Messages for rounds further ahead of the current one than this are ignored.
pub const ROUNDS_AHEAD_MAX: u32 = 64;
/// Proposals waiting for their block's validity, at most.
pub const AWAITING_PROPOSALS_MAX: usize = 64;
/// Heights of inputs Malachite buffers for later, at most.
const INPUT_QUEUE_HEIGHTS_MAX: usize = HEIGHTS_AHEAD_MAX as usize + 1;

/// Consensus timeouts (the `[consensus]` table of a node's config). A round's timeout is
/// `base + delta × round`, so rounds lengthen until the network is fast enough for one to
/// succeed.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ConsensusParams {
    /// Waiting for the proposal in round 0.
    pub propose_timeout_ms: u64,
    /// Added to the propose timeout per round.
    pub propose_timeout_delta_ms: u64,
    /// Waiting for more prevotes once more than 2/3 prevoted for anything.
    pub prevote_timeout_ms: u64,
    /// Added to the prevote timeout per round.
    pub prevote_timeout_delta_ms: u64,
    /// Waiting for more precommits once more than 2/3 precommitted for anything.
    pub precommit_timeout_ms: u64,
    /// Added to the precommit timeout per round.
    pub precommit_timeout_delta_ms: u64,
    /// How often this validator re-sends its last votes while a round does not end.
    pub rebroadcast_timeout_ms: u64,
}

impl Default for ConsensusParams {
    fn default() -> Self {
        ConsensusParams {
            propose_timeout_ms: 1000,
            propose_timeout_delta_ms: 500,
            prevote_timeout_ms: 500,
            prevote_timeout_delta_ms: 250,
            precommit_timeout_ms: 500,
            precommit_timeout_delta_ms: 250,
            rebroadcast_timeout_ms: 2000,
        }
    }
}

impl ConsensusParams {
    /// The duration of `kind` in `round`.
    pub fn timeout_ms(&self, kind: TimeoutKind, round: u32) -> u64 {
        let (base, delta) = match kind {
            TimeoutKind::Propose => (self.propose_timeout_ms, self.propose_timeout_delta_ms),
            TimeoutKind::Prevote => (self.prevote_timeout_ms, self.prevote_timeout_delta_ms),
            TimeoutKind::Precommit => (self.precommit_timeout_ms, self.precommit_timeout_delta_ms),
            TimeoutKind::Rebroadcast => (self.rebroadcast_timeout_ms, 0),
        };
        base.saturating_add(delta.saturating_mul(u64::from(round)))
    }
}

/// Proof that a validator signed two different messages for the same height, round and step.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum Evidence {
    /// Two different votes of one kind in one round.
    ConflictingVotes {
        /// The vote seen first.
        first: SignedVote,
        /// The other one.
        second: SignedVote,
    },
    /// Two different proposals in one round.
    ConflictingProposals {
        /// The proposal seen first.
        first: SignedProposal,
        /// The other one.
        second: SignedProposal,
    },
}

impl Evidence {
    /// The validator that equivocated.
    pub fn offender(&self) -> PublicKey {
        match self {
            Evidence::ConflictingVotes { first, .. } => first.vote.validator,
            Evidence::ConflictingProposals { first, .. } => first.proposal.proposer,
        }
    }

    /// The height it happened at.
    pub fn height(&self) -> u64 {
        match self {
            Evidence::ConflictingVotes { first, .. } => first.vote.height,
            Evidence::ConflictingProposals { first, .. } => first.proposal.height,
        }
    }
}

/// A consensus message whose format, chain, signers and signatures have been checked by
/// [`Engine::verify_message`] (the only way to make one): fed as
/// [`EngineInput::Verified`], it is neither decoded nor verified again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedMessage {
    message: ConsensusMessage,
    chain_id: Hash,
}

impl VerifiedMessage {
    /// The message.
    pub fn message(&self) -> &ConsensusMessage {
        &self.message
    }

    /// The height it is for.
    pub fn height(&self) -> u64 {
        self.message.height()
    }

    /// The round it is for.
    pub fn round(&self) -> u32 {
        self.message.round()
    }
}

/// Counters of what the engine did with the messages it was given (for metrics and tests).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// ed25519 signatures verified: those of the messages [`Engine::verify_message`] let
    /// through, and those the core checked itself (cache misses).
    pub signatures_verified: u64,
    /// Messages handed to Malachite's core.
    pub messages_to_core: u64,
    /// Exact repeats of a vote or proposal already handed to the core, dropped before it.
    pub duplicates_dropped: u64,
}

/// What the engine is told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EngineInput {
    /// Start (or move on to) `height`: after a decision has been stored, or at startup when
    /// there is no WAL to replay.
    StartHeight {
        /// The height to decide next.
        height: u64,
    },
    /// A consensus message received from a peer (wire bytes, see [`ConsensusMessage`]):
    /// decoded and verified here. A node that validates gossip first feeds
    /// [`EngineInput::Verified`] instead, so nothing is checked twice.
    Message(Vec<u8>),
    /// A message received from a peer and already checked by [`Engine::verify_message`].
    Verified(VerifiedMessage),
    /// A timeout that [`EngineOutput::ScheduleTimeout`] asked for has elapsed.
    TimeoutElapsed {
        /// Its height.
        height: u64,
        /// Its round.
        round: u32,
        /// Its kind.
        kind: TimeoutKind,
    },
    /// The block this validator proposes, answering [`EngineOutput::RequestValue`]. The
    /// node must keep the block (to serve and apply it) before feeding this.
    ProposeValue {
        /// Height.
        height: u64,
        /// Round.
        round: u32,
        /// The block's hash.
        block_hash: Hash,
    },
    /// The node has (or cannot get) the block with this hash, and checked it: answers
    /// [`EngineOutput::NeedBlock`], or tells ahead of time.
    BlockValidity {
        /// Height.
        height: u64,
        /// The block's hash.
        block_hash: Hash,
        /// Whether the block is valid on top of the node's head.
        valid: bool,
    },
}

/// What the engine asks the node to do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EngineOutput {
    /// Append these bytes (a [`WalEntry`]) to the WAL of the current height and make them
    /// durable before acting on any later output beyond the caller's memory.
    WalAppend(Vec<u8>),
    /// Send this consensus message (wire bytes) to the other validators.
    Publish(Vec<u8>),
    /// Start a timer; when it fires, feed [`EngineInput::TimeoutElapsed`]. Replaces a timer
    /// with the same height, round and kind.
    ScheduleTimeout {
        /// Height.
        height: u64,
        /// Round.
        round: u32,
        /// Kind.
        kind: TimeoutKind,
        /// How long.
        duration_ms: u64,
    },
    /// Stop a timer.
    CancelTimeout {
        /// Height.
        height: u64,
        /// Round.
        round: u32,
        /// Kind.
        kind: TimeoutKind,
    },
    /// Stop every timer.
    CancelAllTimeouts,
    /// A round started (for logs and metrics).
    RoundStarted {
        /// Height.
        height: u64,
        /// Round.
        round: u32,
        /// Its proposer.
        proposer: PublicKey,
    },
    /// This validator proposes in this round: build a block and feed
    /// [`EngineInput::ProposeValue`] before `timeout_ms`.
    RequestValue {
        /// Height.
        height: u64,
        /// Round.
        round: u32,
        /// The propose timeout of the round.
        timeout_ms: u64,
    },
    /// A proposal names a block whose validity the engine does not know: fetch it if
    /// needed, check it, and feed [`EngineInput::BlockValidity`]. Until then the proposal waits.
    NeedBlock {
        /// Height.
        height: u64,
        /// Round.
        round: u32,
        /// The block's hash.
        block_hash: Hash,
        /// Who proposed it.
        proposer: PublicKey,
    },
    /// Gossip the block with this hash again (it was locked on or is re-proposed).
    RestreamBlock {
        /// Height.
        height: u64,
        /// Round.
        round: u32,
        /// The block's hash.
        block_hash: Hash,
    },
    /// The block is final: store it with its commit, then feed
    /// [`EngineInput::StartHeight`] for the next height.
    Decided {
        /// Height.
        height: u64,
        /// The round it was decided in.
        round: u32,
        /// The block's hash.
        block_hash: Hash,
        /// Its commit (precommits of more than 2/3 of the power), as blocks carry it.
        commit: Commit,
    },
    /// A validator signed two different messages for the same step: keep this for slashing.
    Equivocation(Box<Evidence>),
    /// A message fed as bytes ([`EngineInput::Message`]) was refused (for logs). It names no
    /// sender: a node that penalises senders checks messages itself, with
    /// [`Engine::verify_message`], where it knows who sent them.
    Rejected {
        /// Why.
        reason: String,
    },
    /// The core state machine reported an error (logged; should not happen).
    Fault {
        /// What.
        reason: String,
    },
}

/// Key of a validator's vote: height, round, kind (0 prevote, 1 precommit), validator.
type VoteKey = (u64, u32, u8, PublicKey);

fn vote_key(vote: &cairn_ledger::Vote) -> VoteKey {
    (vote.height, vote.round, vote.kind as u8, vote.validator)
}

/// Everything but Malachite's own state: answers the core's effects.
struct Core {
    ctx: CairnContext,
    signer: CairnSigner,
    key: Keypair,
    address: PublicKey,
    validators: ValidatorSet,
    mvalidators: ConsensusValidators,
    params: ConsensusParams,
    height: u64,
    /// This validator's signed votes at `height`, by (round, kind): never sign another.
    own_votes: BTreeMap<(u32, u8), SignedVote>,
    /// This validator's signed proposals at `height`, by round.
    own_proposals: BTreeMap<u32, SignedProposal>,
    seen_votes: BTreeMap<VoteKey, SignedVote>,
    seen_proposals: BTreeMap<(u64, u32), SignedProposal>,
    reported: BTreeSet<(VoteKey, bool)>,
    blocks: BTreeMap<(u64, Hash), bool>,
    awaiting: BTreeMap<(u64, u32, Hash), SignedProposal>,
    /// (height, round) whose first proposal has been handed to the core.
    proposals_fed: BTreeSet<(u64, u32)>,
    /// The certificates logged and handed to the core at `height`: one per (kind, round),
    /// kind 0 polka, 1 skip, 2 precommit.
    certificates_logged: BTreeSet<(u8, u32)>,
    stats: EngineStats,
    /// While replaying: the entries already in the WAL (not appended again).
    replaying: Option<HashSet<Vec<u8>>>,
    /// While replaying: rounds whose own proposed value is in the WAL (not requested again).
    replay_own_rounds: BTreeSet<u32>,
    out: Vec<EngineOutput>,
}

/// Cairn's consensus engine for one validator. See the crate docs.
pub struct Engine {
    state: State<CairnContext>,
    core: Core,
    /// Signatures verified by [`Engine::verify_message`] (which takes `&self`).
    checked_signatures: AtomicU64,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("address", &self.core.address)
            .field("height", &self.core.height)
            .field("round", &self.state.round())
            .finish()
    }
}

fn r32(round: Round) -> u32 {
    round.as_u32().unwrap_or(0)
}

fn kind_from(kind: mt::TimeoutKind) -> TimeoutKind {
    match kind {
        mt::TimeoutKind::Propose => TimeoutKind::Propose,
        mt::TimeoutKind::Prevote => TimeoutKind::Prevote,
        mt::TimeoutKind::Precommit => TimeoutKind::Precommit,
        mt::TimeoutKind::Rebroadcast => TimeoutKind::Rebroadcast,
    }
}

fn kind_to(kind: TimeoutKind) -> mt::TimeoutKind {
    match kind {
        TimeoutKind::Propose => mt::TimeoutKind::Propose,
        TimeoutKind::Prevote => mt::TimeoutKind::Prevote,
        TimeoutKind::Precommit => mt::TimeoutKind::Precommit,
        TimeoutKind::Rebroadcast => mt::TimeoutKind::Rebroadcast,
    }
}

/// A certificate's slot in `Core::certificates_logged`: (kind, round), kind 0 polka, 1 skip,
/// 2 precommit. `None` for a vote or proposal.
fn certificate_slot(msg: &ConsensusMessage) -> Option<(u8, u32)> {
    match msg {
        ConsensusMessage::PolkaCertificate(c) => Some((0, c.round)),
        ConsensusMessage::RoundCertificate(c) => match c.kind {
            RoundCertificateKind::Skip => Some((1, c.round)),
            RoundCertificateKind::Precommit => Some((2, c.round)),
        },
        ConsensusMessage::Vote(_) | ConsensusMessage::Proposal(_) => None,
    }
}

fn message_of(msg: &SignedConsensusMsg<CairnContext>) -> ConsensusMessage {
    match msg {
        SignedConsensusMsg::Vote(v) => ConsensusMessage::Vote(v.into()),
        SignedConsensusMsg::Proposal(p) => ConsensusMessage::Proposal(p.into()),
    }
}

/// Builds Cairn's [`Commit`] from Malachite's certificate: same signatures, sorted by validator.
fn commit_of(cert: &mt::CommitCertificate<CairnContext>) -> Commit {
    let signatures = canonical(
        cert.commit_signatures
            .iter()
            .map(|s| CommitSignature { validator: s.address.0, signature: s.signature.into() })
            .collect(),
        |s| s.validator,
    );
    Commit {
        version: FORMAT_VERSION,
        height: cert.height.0,
        round: r32(cert.round),
        block_hash: cert.value_id.0,
        signatures,
    }
}

impl Core {
    fn wal_append(&mut self, entry: &WalEntry) {
        let bytes = entry.encode();
        if self.replaying.as_ref().is_some_and(|logged| logged.contains(&bytes)) {
            return;
        }
        self.out.push(EngineOutput::WalAppend(bytes));
    }

    fn publish(&mut self, msg: &ConsensusMessage) {
        self.out.push(EngineOutput::Publish(msg.encode()));
    }

    fn sign_vote(&mut self, vote: crate::context::ConsensusVote) -> MSignedVote {
        let signed = self.sign_vote_once(vote);
        // The core checks this validator's own votes too: no need to verify what it signed.
        self.remember_vote(&(&signed).into());
        signed
    }

    fn sign_vote_once(&mut self, vote: crate::context::ConsensusVote) -> MSignedVote {
        let v = vote.vote().clone();
        if v.height == self.height {
            let slot = (v.round, v.kind as u8);
            if let Some(prev) = self.own_votes.get(&slot) {
                if prev.vote != v {
                    tracing::warn!(height = v.height, round = v.round, kind = ?v.kind,
                        "refusing to sign a vote that conflicts with one already signed; re-sending that one");
                }
                return prev.clone().into();
            }
            let signed = SignedVote::sign(&self.key, v);
            self.own_votes.insert(slot, signed.clone());
            return signed.into();
        }
        SignedVote::sign(&self.key, v).into()
    }

    fn sign_proposal(&mut self, proposal: crate::context::ConsensusProposal) -> MSignedProposal {
        let signed = self.sign_proposal_once(proposal);
        self.remember_proposal(&(&signed).into());
        signed
    }

    fn sign_proposal_once(&mut self, proposal: crate::context::ConsensusProposal) -> MSignedProposal {
        let p = proposal.proposal().clone();
        if p.height == self.height {
            if let Some(prev) = self.own_proposals.get(&p.round) {
                if prev.proposal != p {
                    tracing::warn!(
                        height = p.height,
                        round = p.round,
                        "refusing to sign a proposal that conflicts with one already signed; re-sending that one"
                    );
                }
                return prev.clone().into();
            }
            let signed = SignedProposal::sign(&self.key, p.clone());
            self.own_proposals.insert(p.round, signed.clone());
            return signed.into();
        }
        SignedProposal::sign(&self.key, p).into()
    }

    fn verify(
        &mut self,
        msg: &mt::SignedMessage<CairnContext, mc::ConsensusMsg<CairnContext>>,
        pk: &PublicKey,
    ) -> bool {
        use mt::SigningProvider;
        let (ok, digest) = match &msg.message {
            mc::ConsensusMsg::Vote(v) => {
                (self.signer.verify_signed_vote(v, &msg.signature, pk), signed_digest(Domain::Vote, v.vote()))
            }
            mc::ConsensusMsg::Proposal(p) => (
                self.signer.verify_signed_proposal(p, &msg.signature, pk),
                signed_digest(Domain::Proposal, p.proposal()),
            ),
        };
        if ok {
            self.signer.cache.insert(*pk, digest, msg.signature);
        }
        ok
    }

    /// Remembers the signatures of a message checked by [`Engine::verify_message`], so the
    /// core's own checks of them are cache hits.
    fn remember_verified(&mut self, msg: &ConsensusMessage) {
        match msg {
            ConsensusMessage::Vote(v) => self.remember_vote(v),
            ConsensusMessage::Proposal(p) => self.remember_proposal(p),
            ConsensusMessage::PolkaCertificate(_) | ConsensusMessage::RoundCertificate(_) => {
                for v in msg.certificate_votes(self.ctx.chain_id()) {
                    self.remember_vote(&v);
                }
            }
        }
    }

    fn remember_proposal(&mut self, p: &SignedProposal) {
        let digest = signed_digest(Domain::Proposal, &p.proposal);
        self.signer.cache.insert(p.proposal.proposer, digest, Sig::from(p.signature));
    }

    fn remember_vote(&mut self, v: &SignedVote) {
        let digest = signed_digest(Domain::Vote, &v.vote);
        self.signer.cache.insert(v.vote.validator, digest, Sig::from(v.signature));
    }

    /// Records a received vote; reports equivocation; learns this validator's own votes
    /// (e.g. echoed back by peers after a restart) so it never signs a conflicting one.
    /// [`Engine::is_further_equivocation`] of a vote.
    fn is_further_equivocation(&self, v: &SignedVote) -> bool {
        let key = vote_key(&v.vote);
        self.reported.contains(&(key, false)) && self.seen_votes.get(&key).is_some_and(|first| first.vote != v.vote)
    }

    fn note_vote(&mut self, v: &SignedVote) {
        let vote = &v.vote;
        if vote.validator == self.address && vote.height == self.height {
            self.own_votes.entry((vote.round, vote.kind as u8)).or_insert_with(|| v.clone());
        }
        let key = vote_key(vote);
        match self.seen_votes.get(&key) {
            None => {
                self.seen_votes.insert(key, v.clone());
            }
            Some(first) if first.vote != *vote => {
                if self.reported.insert((key, false)) {
                    let evidence = Evidence::ConflictingVotes { first: first.clone(), second: v.clone() };
                    self.out.push(EngineOutput::Equivocation(Box::new(evidence)));
                }
            }
            Some(_) => {}
        }
    }

    /// Records a proposal; returns whether it is the first (or the same as the first) for its
    /// height and round — a conflicting one is only evidence.
    fn note_proposal(&mut self, p: &SignedProposal) -> bool {
        let prop = &p.proposal;
        if prop.proposer == self.address && prop.height == self.height {
            self.own_proposals.entry(prop.round).or_insert_with(|| p.clone());
        }
        let key = (prop.height, prop.round);
        match self.seen_proposals.get(&key) {
            None => {
                self.seen_proposals.insert(key, p.clone());
                true
            }
            Some(first) if first.proposal != *prop => {
                if self.reported.insert(((prop.height, prop.round, 2, prop.proposer), true)) {
                    let evidence = Evidence::ConflictingProposals { first: first.clone(), second: p.clone() };
                    self.out.push(EngineOutput::Equivocation(Box::new(evidence)));
                }
                false
            }
            Some(_) => true,
        }
    }

    /// Answers one effect of the core. Each arm returns the resume value the effect expects.
    fn on_effect(&mut self, effect: Effect<CairnContext>) -> std::result::Result<Resume<CairnContext>, String> {
        let height = self.height;
        Ok(match effect {
            Effect::ResetTimeouts(r) => r.resume_with(()),
            Effect::CancelAllTimeouts(r) => {
                self.out.push(EngineOutput::CancelAllTimeouts);
                r.resume_with(())
            }
            Effect::CancelTimeout(t, r) => {
                self.out.push(EngineOutput::CancelTimeout { height, round: r32(t.round), kind: kind_from(t.kind) });
                r.resume_with(())
            }
            Effect::ScheduleTimeout(t, r) => {
                let (round, kind) = (r32(t.round), kind_from(t.kind));
                let duration_ms = self.params.timeout_ms(kind, round);
                self.out.push(EngineOutput::ScheduleTimeout { height, round, kind, duration_ms });
                r.resume_with(())
            }
            Effect::GetValidatorSet(_, r) => r.resume_with(Some(self.mvalidators.clone())),
            Effect::StartRound(h, round, proposer, _role, r) => {
                self.out.push(EngineOutput::RoundStarted { height: h.0, round: r32(round), proposer: proposer.0 });
                r.resume_with(())
            }
            Effect::PublishConsensusMsg(msg, r) => {
                self.publish(&message_of(&msg));
                r.resume_with(())
            }
            Effect::PublishLivenessMsg(msg, r) => {
                let msg = match &msg {
                    LivenessMsg::Vote(v) => ConsensusMessage::Vote(v.into()),
                    LivenessMsg::PolkaCertificate(c) => ConsensusMessage::PolkaCertificate(c.into()),
                    LivenessMsg::SkipRoundCertificate(c) => ConsensusMessage::RoundCertificate(c.into()),
                };
                self.publish(&msg);
                r.resume_with(())
            }
            Effect::RepublishVote(v, r) => {
                self.publish(&ConsensusMessage::Vote((&v).into()));
                r.resume_with(())
            }
            Effect::RepublishRoundCertificate(c, r) => {
                self.publish(&ConsensusMessage::RoundCertificate((&c).into()));
                r.resume_with(())
            }
            Effect::GetValue(h, round, _timeout, r) => {
                let round = r32(round);
                let logged = self.replaying.is_some() && self.replay_own_rounds.contains(&round);
                if !logged {
                    let timeout_ms = self.params.timeout_ms(TimeoutKind::Propose, round);
                    self.out.push(EngineOutput::RequestValue { height: h.0, round, timeout_ms });
                }
                r.resume_with(())
            }
            Effect::RestreamProposal(h, round, _valid_round, _proposer, id, r) => {
                self.out.push(EngineOutput::RestreamBlock { height: h.0, round: r32(round), block_hash: id.0 });
                r.resume_with(())
            }
            Effect::SyncValue(_, r) => r.resume_with(()),
            Effect::Decide(cert, _extensions, r) => {
                let commit = commit_of(&cert);
                self.out.push(EngineOutput::Decided {
                    height: commit.height,
                    round: commit.round,
                    block_hash: commit.block_hash,
                    commit,
                });
                r.resume_with(())
            }
            Effect::SignVote(vote, r) => r.resume_with(self.sign_vote(vote)),
            Effect::SignProposal(proposal, r) => r.resume_with(self.sign_proposal(proposal)),
            Effect::VerifySignature(msg, pk, r) => r.resume_with(self.verify(&msg, &pk)),
            Effect::VerifyCommitCertificate(cert, set, th, r) => {
                r.resume_with(self.signer.verify_commit_certificate(&self.ctx, &cert, &set, th))
            }
            Effect::VerifyPolkaCertificate(cert, set, th, r) => {
                r.resume_with(self.signer.verify_polka_certificate(&self.ctx, &cert, &set, th))
            }
            Effect::VerifyRoundCertificate(cert, set, th, r) => {
                r.resume_with(self.signer.verify_round_certificate(&self.ctx, &cert, &set, th))
            }
            Effect::WalAppend(entry, r) => {
                let entry = match &entry {
                    mc::WalEntry::ConsensusMsg(msg) => WalEntry::Message(message_of(msg)),
                    mc::WalEntry::Timeout(t) => WalEntry::Timeout { kind: kind_from(t.kind), round: r32(t.round) },
                    mc::WalEntry::ProposedValue(v) => WalEntry::ProposedValue {
                        height: v.height.0,
                        round: r32(v.round),
                        valid_round: v.valid_round.as_u32(),
                        proposer: v.proposer.0,
                        block_hash: v.value.0,
                        valid: v.validity.is_valid(),
                    },
                };
                self.wal_append(&entry);
                r.resume_with(())
            }
            Effect::ExtendVote(_, _, _, r) => r.resume_with(None),
            Effect::VerifyVoteExtension(_, _, _, _, _, r) => r.resume_with(Ok(())),
        })
    }
}

impl Engine {
    /// An engine for the validator `key` of chain `chain_id` with `validators`.
    pub fn new(key: Keypair, chain_id: Hash, validators: ValidatorSet, params: ConsensusParams) -> Result<Engine> {
        let address = key.public();
        if validators.power_of(&address).is_none() {
            return Err(ConsensusError::NotValidator(address));
        }
        let ctx = CairnContext::new(chain_id);
        let mvalidators = ConsensusValidators::from(&validators);
        let mparams = mc::Params {
            initial_height: Height(1),
            initial_validator_set: mvalidators.clone(),
            address: Address(address),
            threshold_params: ThresholdParams::default(),
            value_payload: mc::ValuePayload::ProposalOnly,
        };
        let state = State::new(ctx.clone(), mparams, INPUT_QUEUE_HEIGHTS_MAX);
        let core = Core {
            ctx,
            signer: CairnSigner::new(key.clone()),
            key,
            address,
            validators,
            mvalidators,
            params,
            height: 0,
            own_votes: BTreeMap::new(),
            own_proposals: BTreeMap::new(),
            seen_votes: BTreeMap::new(),
            seen_proposals: BTreeMap::new(),
            reported: BTreeSet::new(),
            blocks: BTreeMap::new(),
            awaiting: BTreeMap::new(),
            proposals_fed: BTreeSet::new(),
            certificates_logged: BTreeSet::new(),
            stats: EngineStats::default(),
            replaying: None,
            replay_own_rounds: BTreeSet::new(),
            out: Vec::new(),
        };
        Ok(Engine { state, core, checked_signatures: AtomicU64::new(0) })
    }

    /// This validator's address.
    pub fn address(&self) -> PublicKey {
        self.core.address
    }

    /// The height being decided (0 before [`EngineInput::StartHeight`] or [`Engine::replay`]).
    pub fn height(&self) -> u64 {
        self.core.height
    }

    /// The current round, once a height has started.
    pub fn round(&self) -> Option<u32> {
        self.state.round().as_u32()
    }

    /// The chain id.
    pub fn chain_id(&self) -> Hash {
        self.core.ctx.chain_id()
    }

    /// The validator set.
    pub fn validators(&self) -> &ValidatorSet {
        &self.core.validators
    }

    /// Decodes and checks a received message without changing any state: for gossip
    /// validation (accept or reject before forwarding). Feed the result as
    /// [`EngineInput::Verified`].
    pub fn check_message(&self, bytes: &[u8]) -> Result<VerifiedMessage> {
        self.verify_message(ConsensusMessage::decode(bytes)?)
    }

    /// Checks a decoded message without changing any state (see [`ConsensusMessage::check`]):
    /// run the cheap checks (its height, say) before this, since this verifies signatures.
    pub fn verify_message(&self, message: ConsensusMessage) -> Result<VerifiedMessage> {
        let chain_id = self.core.ctx.chain_id();
        let verified = message.check(chain_id, &self.core.validators)?;
        self.checked_signatures.fetch_add(verified as u64, Ordering::Relaxed);
        Ok(VerifiedMessage { message, chain_id })
    }

    /// Whether `msg` is an exact repeat of a vote, or of a round's first proposal, that the
    /// engine has already handed to the core: such a message is known valid (it is the same
    /// bytes as one verified before) and feeding it would change nothing, so gossip
    /// validation may pass it on without verifying or feeding it. Always false for
    /// certificates.
    pub fn is_repeat(&self, msg: &ConsensusMessage) -> bool {
        match msg {
            ConsensusMessage::Vote(v) => self.core.seen_votes.get(&vote_key(&v.vote)) == Some(v),
            ConsensusMessage::Proposal(p) => {
                let key = (p.proposal.height, p.proposal.round);
                self.core.seen_proposals.get(&key) == Some(p) && self.core.proposals_fed.contains(&key)
            }
            ConsensusMessage::PolkaCertificate(_) | ConsensusMessage::RoundCertificate(_) => false,
        }
    }

    /// Whether `msg` is a certificate of the engine's height of a kind and round it has one of
    /// already, which it would drop once verified. Its signatures (up to `VALIDATORS_MAX`)
    /// need not be checked: anyone can send a certificate again, as often as they like, under
    /// a new gossip message id.
    pub fn is_spent_certificate(&self, msg: &ConsensusMessage) -> bool {
        certificate_slot(msg)
            .is_some_and(|slot| msg.height() == self.core.height && self.core.certificates_logged.contains(&slot))
    }

    /// Whether `msg` is a vote of a validator already caught signing two votes for its height,
    /// round and kind (the evidence is reported), other than its first there: the engine drops
    /// it once verified, so its signature need not be checked. An equivocating validator could
    /// otherwise sign conflicting votes without end, each checked, logged and relayed.
    pub fn is_further_equivocation(&self, msg: &ConsensusMessage) -> bool {
        let ConsensusMessage::Vote(v) = msg else { return false };
        self.core.is_further_equivocation(v)
    }

    /// What the engine did with the messages it was given so far.
    pub fn stats(&self) -> EngineStats {
        EngineStats {
            signatures_verified: self.checked_signatures.load(Ordering::Relaxed) + self.core.signer.verifications(),
            ..self.core.stats
        }
    }

    /// Handles one input; returns what to do, in order.
    pub fn handle(&mut self, input: EngineInput) -> Vec<EngineOutput> {
        match input {
            EngineInput::StartHeight { height } => self.start_height(height),
            EngineInput::Message(bytes) => self.on_message(&bytes),
            EngineInput::Verified(msg) => self.on_verified(msg),
            EngineInput::TimeoutElapsed { height, round, kind } => {
                if height == self.core.height {
                    self.run(Input::TimeoutElapsed(Timeout::new(Round::new(round), kind_to(kind))));
                }
            }
            EngineInput::ProposeValue { height, round, block_hash } => {
                self.note_block(height, block_hash, true);
                if height == self.core.height {
                    let value = LocallyProposedValue::new(Height(height), Round::new(round), BlockHash(block_hash));
                    self.run(Input::Propose(value));
                }
            }
            EngineInput::BlockValidity { height, block_hash, valid } => {
                self.note_block(height, block_hash, valid);
                let ready: Vec<(u64, u32, Hash)> =
                    self.core.awaiting.keys().filter(|(h, _, b)| *h == height && *b == block_hash).copied().collect();
                for key in ready {
                    if let Some(p) = self.core.awaiting.remove(&key)
                        && valid
                    {
                        self.feed_proposal(p);
                    }
                }
            }
        }
        std::mem::take(&mut self.core.out)
    }

    /// Rebuilds the state of `height` after a restart from its WAL entries (in the order
    /// they were appended), on a fresh engine. Returns the outputs to carry out, as
    /// [`Engine::handle`] does: messages signed before the crash are published again
    /// (identical bytes), timers are scheduled, and only entries not already in the WAL are
    /// appended. Fails on an entry that does not decode (a corrupt WAL: do not start).
    pub fn replay(&mut self, height: u64, entries: &[Vec<u8>]) -> Result<Vec<EngineOutput>> {
        if self.core.height != 0 {
            return Err(ConsensusError::Invalid("replay needs a fresh engine".into()));
        }
        let decoded: Vec<WalEntry> = entries.iter().map(|e| WalEntry::decode(e)).collect::<Result<_>>()?;
        self.enter_height(height);
        // Learn every message this validator signed, so it signs nothing that conflicts.
        for entry in &decoded {
            match entry {
                WalEntry::Message(ConsensusMessage::Vote(v)) => self.core.note_vote(v),
                WalEntry::Message(ConsensusMessage::Proposal(p)) => {
                    self.core.note_proposal(p);
                    self.note_block(p.proposal.height, p.proposal.block_hash, true);
                }
                WalEntry::ProposedValue { height: h, round, proposer, block_hash, .. }
                    if *proposer == self.core.address =>
                {
                    self.core.replay_own_rounds.insert(*round);
                    self.note_block(*h, *block_hash, true);
                }
                _ => {}
            }
        }
        self.core.out.clear();
        self.core.replaying = Some(entries.iter().cloned().collect());
        self.run(Input::StartHeight(Height(height), self.core.mvalidators.clone()));
        for entry in decoded {
            if let WalEntry::Message(msg) = &entry {
                self.core.certificates_logged.extend(certificate_slot(msg));
            }
            let input = match entry {
                WalEntry::Message(ConsensusMessage::Vote(v)) => Input::Vote(v.into()),
                WalEntry::Message(ConsensusMessage::Proposal(p)) => {
                    let key = (p.proposal.height, p.proposal.round);
                    if self.core.seen_proposals.get(&key) == Some(&p) {
                        self.core.proposals_fed.insert(key);
                    }
                    Input::Proposal(p.into())
                }
                WalEntry::Message(ConsensusMessage::PolkaCertificate(c)) => Input::PolkaCertificate(c.into()),
                WalEntry::Message(ConsensusMessage::RoundCertificate(c)) => Input::RoundCertificate(c.into()),
                WalEntry::Timeout { kind, round } => {
                    Input::TimeoutElapsed(Timeout::new(Round::new(round), kind_to(kind)))
                }
                WalEntry::ProposedValue { height: h, round, valid_round, proposer, block_hash, valid } => {
                    if proposer == self.core.address {
                        Input::Propose(LocallyProposedValue::new(Height(h), Round::new(round), BlockHash(block_hash)))
                    } else {
                        let value = mc::ProposedValue {
                            height: Height(h),
                            round: Round::new(round),
                            valid_round: Round::from(valid_round),
                            proposer: Address(proposer),
                            value: BlockHash(block_hash),
                            validity: mt::Validity::from_bool(valid),
                        };
                        Input::ProposedValue(value, mt::ValueOrigin::Consensus)
                    }
                }
            };
            self.run(input);
        }
        self.core.replaying = None;
        self.core.replay_own_rounds.clear();
        Ok(std::mem::take(&mut self.core.out))
    }

    /// Feeds one input to Malachite's core and answers its effects.
    fn run(&mut self, input: Input<CairnContext>) {
        let state = &mut self.state;
        let core = &mut self.core;
        let result: std::result::Result<(), mc::Error<CairnContext>> =
            mc::process!(input: input, state: state, metrics: &(), with: effect => core.on_effect(effect));
        if let Err(e) = result {
            tracing::error!(error = %e, "consensus core error");
            core.out.push(EngineOutput::Fault { reason: e.to_string() });
        }
    }

    fn note_block(&mut self, height: u64, block_hash: Hash, valid: bool) {
        if height >= self.core.height && height <= self.core.height + HEIGHTS_AHEAD_MAX {
            self.core.blocks.insert((height, block_hash), valid);
        }
    }

    /// Forgets what belongs to heights below `height` and moves there (without telling the core).
    fn enter_height(&mut self, height: u64) {
        let c = &mut self.core;
        c.height = height;
        c.own_votes.clear();
        c.own_proposals.clear();
        c.certificates_logged.clear();
        c.proposals_fed.retain(|k| k.0 >= height);
        c.seen_votes.retain(|k, _| k.0 >= height);
        c.seen_proposals.retain(|k, _| k.0 >= height);
        c.reported.retain(|(k, _)| k.0 >= height);
        c.blocks.retain(|k, _| k.0 >= height);
        c.awaiting.retain(|k, _| k.0 >= height);
        // Votes and proposals of this height that arrived early become this height's own record.
        let own = c.address;
        for v in c.seen_votes.values().filter(|v| v.vote.height == height && v.vote.validator == own) {
            c.own_votes.entry((v.vote.round, v.vote.kind as u8)).or_insert_with(|| v.clone());
        }
        for p in c.seen_proposals.values().filter(|p| p.proposal.height == height && p.proposal.proposer == own) {
            c.own_proposals.entry(p.proposal.round).or_insert_with(|| p.clone());
        }
    }

    fn start_height(&mut self, height: u64) {
        if height <= self.core.height {
            // A height already started (or an older one): starting it again would drop its votes.
            return;
        }
        self.enter_height(height);
        self.run(Input::StartHeight(Height(height), self.core.mvalidators.clone()));
    }

    fn reject(&mut self, reason: String) {
        self.core.out.push(EngineOutput::Rejected { reason });
    }

    /// Whether a message is for a height and round the engine looks at (cheap: no signature).
    fn in_range(&self, height: u64, round: u32) -> bool {
        if self.core.height == 0 || height < self.core.height || height > self.core.height + HEIGHTS_AHEAD_MAX {
            return false;
        }
        self.round_in_range(height, round)
    }

    /// Whether `round` is at most [`ROUNDS_AHEAD_MAX`] ahead of the current round at `height`
    /// (of round 0 at a later height): the engine ignores a message of a later round, so gossip
    /// validation need not verify (or forward) it. Cheap: no signature.
    pub fn round_in_range(&self, height: u64, round: u32) -> bool {
        let current_round = if height == self.core.height { self.round().unwrap_or(0) } else { 0 };
        round <= current_round.saturating_add(ROUNDS_AHEAD_MAX)
    }

    fn on_message(&mut self, bytes: &[u8]) {
        let msg = match ConsensusMessage::decode(bytes) {
            Ok(m) => m,
            Err(e) => return self.reject(e.to_string()),
        };
        // Cheap checks first: nothing out of range is verified.
        if !self.in_range(msg.height(), msg.round()) {
            return;
        }
        match self.verify_message(msg) {
            Ok(verified) => self.on_verified(verified),
            Err(e) => self.reject(e.to_string()),
        }
    }

    fn on_verified(&mut self, verified: VerifiedMessage) {
        if verified.chain_id != self.core.ctx.chain_id() {
            return self.reject("a message verified for another chain".into());
        }
        let msg = verified.message;
        let (height, round) = (msg.height(), msg.round());
        if !self.in_range(height, round) {
            return;
        }
        // Each arm remembers the signatures it hands to the core (so the core's own checks are
        // cache hits), and only those: a repeat or a message that waits costs no hashing here.
        match msg {
            ConsensusMessage::Vote(v) => {
                // An exact repeat of the vote already handed to the core (gossip re-sends,
                // rebroadcasts) is dropped here: the core has it. Replay hands the logged
                // votes to the core directly, so the votes it notes are in the core too.
                if self.core.seen_votes.get(&vote_key(&v.vote)) == Some(&v) {
                    self.core.stats.duplicates_dropped += 1;
                    return;
                }
                // A third vote or more of a validator caught equivocating there: the evidence
                // is out, and the core has the two it needs.
                if self.core.is_further_equivocation(&v) {
                    self.core.stats.duplicates_dropped += 1;
                    return;
                }
                self.core.remember_vote(&v);
                self.core.note_vote(&v);
                self.core.stats.messages_to_core += 1;
                self.run(Input::Vote(v.into()));
            }
            ConsensusMessage::Proposal(p) => {
                // Only the first proposal of a round may make this node wait for a block: a
                // proposer signing many made-up blocks must not fill the waiting queue.
                let first = self.core.note_proposal(&p);
                let (h, r, block_hash) = (p.proposal.height, p.proposal.round, p.proposal.block_hash);
                match self.core.blocks.get(&(h, block_hash)) {
                    Some(true) => self.feed_proposal(p),
                    Some(false) => {}
                    None if !first => {}
                    None => {
                        let key = (h, r, block_hash);
                        if !self.core.awaiting.contains_key(&key) && self.core.awaiting.len() < AWAITING_PROPOSALS_MAX {
                            let proposer = p.proposal.proposer;
                            self.core.awaiting.insert(key, p);
                            self.core.out.push(EngineOutput::NeedBlock { height: h, round: r, block_hash, proposer });
                        }
                    }
                }
            }
            ConsensusMessage::PolkaCertificate(_) | ConsensusMessage::RoundCertificate(_) => {
                if height == self.core.height {
                    self.feed_certificate(msg);
                }
            }
        }
    }

    /// Hands a proposal to the core, unless it is an exact repeat of the round's first
    /// proposal, which the core already has (a conflicting one goes on: Malachite keeps the
    /// evidence).
    fn feed_proposal(&mut self, p: SignedProposal) {
        let key = (p.proposal.height, p.proposal.round);
        let is_first = self.core.seen_proposals.get(&key) == Some(&p);
        if is_first && !self.core.proposals_fed.insert(key) {
            self.core.stats.duplicates_dropped += 1;
            return;
        }
        self.core.remember_proposal(&p);
        self.core.stats.messages_to_core += 1;
        self.run(Input::Proposal(p.into()));
    }

    /// Appends a certificate to the WAL and hands it to the core if it is the first of its
    /// kind and round at this height (whatever its signers); a later one is dropped.
    fn feed_certificate(&mut self, msg: ConsensusMessage) {
        if !certificate_slot(&msg).is_some_and(|slot| self.core.certificates_logged.insert(slot)) {
            return;
        }
        let input = match &msg {
            ConsensusMessage::PolkaCertificate(c) => Input::PolkaCertificate(c.clone().into()),
            ConsensusMessage::RoundCertificate(c) => Input::RoundCertificate(c.clone().into()),
            ConsensusMessage::Vote(_) | ConsensusMessage::Proposal(_) => return,
        };
        self.core.remember_verified(&msg);
        self.core.wal_append(&WalEntry::Message(msg));
        self.core.stats.messages_to_core += 1;
        self.run(input);
    }
}

#[cfg(test)]
mod tests {
    use cairn_ledger::{Validator, Vote, VoteKind};

    use super::*;
    use crate::message::{PolkaCertificate, Proposal};

    const CHAIN: Hash = Hash([5; 32]);

    fn keys() -> (Vec<Keypair>, ValidatorSet) {
        let keys: Vec<Keypair> = (1..=4u8).map(|i| Keypair::from_seed([i; 32])).collect();
        let set =
            ValidatorSet::new(keys.iter().map(|k| Validator { address: k.public(), power: 1 }).collect()).expect("set");
        (keys, set)
    }

    fn key_of(keys: &[Keypair], who: PublicKey) -> Keypair {
        keys.iter().find(|k| k.public() == who).expect("a validator").clone()
    }

    /// An engine of a validator that does not propose height 1, round 0, started at height 1.
    fn follower(keys: &[Keypair], set: &ValidatorSet) -> Engine {
        let proposer = crate::proposer(set, 1, 0);
        let me = keys.iter().find(|k| k.public() != proposer).expect("a follower");
        let mut e = Engine::new(me.clone(), CHAIN, set.clone(), ConsensusParams::default()).expect("validator");
        e.handle(EngineInput::StartHeight { height: 1 });
        e
    }

    fn vote(key: &Keypair, kind: VoteKind, round: u32, block_hash: Option<Hash>) -> SignedVote {
        let vote = Vote {
            version: FORMAT_VERSION,
            chain_id: CHAIN,
            kind,
            height: 1,
            round,
            block_hash,
            validator: key.public(),
        };
        SignedVote::sign(key, vote)
    }

    fn proposal(keys: &[Keypair], set: &ValidatorSet, block_hash: Hash) -> SignedProposal {
        let who = crate::proposer(set, 1, 0);
        SignedProposal::sign(&key_of(keys, who), Proposal::new(CHAIN, 1, 0, block_hash, None, who))
    }

    fn wal_appends(out: &[EngineOutput]) -> usize {
        out.iter().filter(|o| matches!(o, EngineOutput::WalAppend(_))).count()
    }

    /// Gossip validation verifies; the engine, fed what it verified, verifies nothing again.
    #[test]
    fn a_message_verified_at_gossip_validation_is_neither_decoded_nor_verified_again() {
        let (keys, set) = keys();
        let mut e = follower(&keys, &set);
        let block = Hash::of(b"block");
        e.handle(EngineInput::BlockValidity { height: 1, block_hash: block, valid: true });
        let p = ConsensusMessage::Proposal(proposal(&keys, &set, block)).encode();
        let verified = e.check_message(&p).expect("a valid proposal");
        assert_eq!(e.stats().signatures_verified, 1);
        let out = e.handle(EngineInput::Verified(verified));
        assert!(out.iter().any(|o| matches!(o, EngineOutput::Publish(_))), "it prevotes for the block");
        assert_eq!(e.stats().signatures_verified, 1, "the core's check of the proposal is a cache hit");
        let me = e.address();
        for k in keys.iter().filter(|k| k.public() != me) {
            let v = ConsensusMessage::Vote(vote(k, VoteKind::Prevote, 0, Some(block))).encode();
            let before = e.stats().signatures_verified;
            let verified = e.check_message(&v).expect("a valid vote");
            e.handle(EngineInput::Verified(verified));
            assert_eq!(e.stats().signatures_verified, before + 1, "one verification per vote");
        }
        assert_eq!(e.stats().messages_to_core, 4);
    }

    /// The cache vouches for a signature only with the key and the exact message it signed.
    #[test]
    fn a_cached_signature_never_vouches_for_another_message_or_key() {
        let (keys, set) = keys();
        let mut e = follower(&keys, &set);
        let good = vote(&keys[1], VoteKind::Prevote, 0, Some(Hash::of(b"a")));
        let signed = |v: &SignedVote| {
            let m: MSignedVote = v.clone().into();
            m.map(mc::ConsensusMsg::Vote)
        };
        assert!(e.core.verify(&signed(&good), &keys[1].public()), "a valid vote verifies");
        // Its signature on another block, another round, or claimed by another validator.
        let mut forged = good.clone();
        forged.vote.block_hash = Some(Hash::of(b"b"));
        assert!(!e.core.verify(&signed(&forged), &keys[1].public()));
        let mut forged = good.clone();
        forged.vote.round = 1;
        assert!(!e.core.verify(&signed(&forged), &keys[1].public()));
        let mut forged = good.clone();
        forged.vote.validator = keys[2].public();
        assert!(!e.core.verify(&signed(&forged), &keys[2].public()));
        assert!(e.core.verify(&signed(&good), &keys[1].public()), "still a hit for the vote it signed");
    }

    /// Repeats of a vote or proposal the core already has are dropped before it; a
    /// conflicting vote still goes through (it is evidence).
    #[test]
    fn identical_votes_and_proposals_reach_the_core_once() {
        let (keys, set) = keys();
        let mut e = follower(&keys, &set);
        let block = Hash::of(b"block");
        e.handle(EngineInput::BlockValidity { height: 1, block_hash: block, valid: true });
        let p = ConsensusMessage::Proposal(proposal(&keys, &set, block)).encode();
        let first = e.handle(EngineInput::Message(p.clone()));
        assert!(wal_appends(&first) > 0, "the proposal is logged");
        let again = e.handle(EngineInput::Message(p));
        assert!(again.is_empty(), "a repeated proposal does nothing: {again:?}");
        let other = keys.iter().find(|k| k.public() != e.address()).expect("a peer");
        let v = ConsensusMessage::Vote(vote(other, VoteKind::Prevote, 0, Some(block))).encode();
        let first = e.handle(EngineInput::Message(v.clone()));
        assert_eq!(wal_appends(&first), 1, "the vote is logged");
        for _ in 0..3 {
            assert!(e.handle(EngineInput::Message(v.clone())).is_empty());
        }
        assert_eq!(e.stats().duplicates_dropped, 4);
        assert_eq!(e.stats().messages_to_core, 2);
        let conflicting = ConsensusMessage::Vote(vote(other, VoteKind::Prevote, 0, None));
        assert!(!e.is_further_equivocation(&conflicting), "not caught yet");
        let out = e.handle(EngineInput::Message(conflicting.encode()));
        assert!(out.iter().any(|o| matches!(o, EngineOutput::Equivocation(_))));
        assert_eq!(e.stats().messages_to_core, 3);
        // Caught: its further conflicting votes are dropped (and need no signature check); its
        // first stays a repeat, not an equivocation.
        let third = ConsensusMessage::Vote(vote(other, VoteKind::Prevote, 0, Some(Hash::of(b"another block"))));
        assert!(e.is_further_equivocation(&third) && e.is_further_equivocation(&conflicting));
        assert!(!e.is_further_equivocation(&ConsensusMessage::Vote(vote(other, VoteKind::Prevote, 0, Some(block)))));
        assert!(!e.is_further_equivocation(&ConsensusMessage::Vote(vote(other, VoteKind::Precommit, 0, None))));
        assert!(e.handle(EngineInput::Message(third.encode())).is_empty(), "dropped, not logged nor reported");
        assert_eq!(e.stats().messages_to_core, 3);
    }

    /// After a restart the votes replayed from the log are in the core: their repeats from
    /// peers are dropped, and the replay itself still re-sends this validator's own vote.
    #[test]
    fn after_a_replay_repeats_of_logged_votes_are_dropped_and_own_votes_resent() {
        let (keys, set) = keys();
        let mut e = follower(&keys, &set);
        let block = Hash::of(b"block");
        let mut log = Vec::new();
        let mut own = Vec::new();
        let mut collect = |out: Vec<EngineOutput>| {
            for o in out {
                match o {
                    EngineOutput::WalAppend(b) => log.push(b),
                    EngineOutput::Publish(b) => own.push(b),
                    _ => {}
                }
            }
        };
        collect(e.handle(EngineInput::BlockValidity { height: 1, block_hash: block, valid: true }));
        collect(e.handle(EngineInput::Message(ConsensusMessage::Proposal(proposal(&keys, &set, block)).encode())));
        let other = keys.iter().find(|k| k.public() != e.address()).expect("a peer").clone();
        let peer_vote = ConsensusMessage::Vote(vote(&other, VoteKind::Prevote, 0, Some(block))).encode();
        collect(e.handle(EngineInput::Message(peer_vote.clone())));
        assert_eq!(own.len(), 1, "one prevote sent");
        let me = key_of(&keys, e.address());
        drop(e);

        let mut restarted = Engine::new(me, CHAIN, set.clone(), ConsensusParams::default()).expect("validator");
        let out = restarted.replay(1, &log).expect("replays");
        let resent: Vec<&Vec<u8>> =
            out.iter().filter_map(|o| if let EngineOutput::Publish(b) = o { Some(b) } else { None }).collect();
        assert_eq!(resent, vec![&own[0]], "the replay re-sends the very same prevote");
        assert_eq!(wal_appends(&out), 0);
        let again = restarted.handle(EngineInput::Message(peer_vote));
        assert!(again.is_empty(), "the logged vote is in the core already: {again:?}");
        assert_eq!(restarted.stats().duplicates_dropped, 1);
    }

    fn polka(keys: &[Keypair], signers: &[usize], block: Hash) -> ConsensusMessage {
        let mut signatures: Vec<CommitSignature> = signers
            .iter()
            .map(|&i| {
                let v = vote(&keys[i], VoteKind::Prevote, 0, Some(block));
                CommitSignature { validator: v.vote.validator, signature: v.signature }
            })
            .collect();
        signatures.sort_by_key(|s| s.validator);
        ConsensusMessage::PolkaCertificate(PolkaCertificate { height: 1, round: 0, block_hash: block, signatures })
    }

    /// One certificate per kind and round is logged and handed to the core, whoever signed it;
    /// once it is, another of its kind and round is spent (its signatures need no check).
    #[test]
    fn one_certificate_per_round_is_logged() {
        let (keys, set) = keys();
        let mut e = follower(&keys, &set);
        let block = Hash::of(b"block");
        assert!(!e.is_spent_certificate(&polka(&keys, &[0, 1, 2], block)), "none logged yet");
        let first = e.handle(EngineInput::Message(polka(&keys, &[0, 1, 2], block).encode()));
        assert_eq!(wal_appends(&first), 1, "the certificate is logged");
        assert!(e.is_spent_certificate(&polka(&keys, &[0, 1, 2], block)), "the same again");
        assert!(e.is_spent_certificate(&polka(&keys, &[1, 2, 3], block)), "another of the round");
        assert!(!e.is_spent_certificate(&ConsensusMessage::Vote(vote(&keys[1], VoteKind::Prevote, 0, Some(block)))));
        let other_signers = e.handle(EngineInput::Message(polka(&keys, &[1, 2, 3], block).encode()));
        assert_eq!(wal_appends(&other_signers), 0, "a second certificate for the round is not: {other_signers:?}");
        assert!(!other_signers.iter().any(|o| matches!(o, EngineOutput::Rejected { .. })));
    }
}
