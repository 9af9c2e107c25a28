//! The sans-IO consensus engine: Malachite's core state machine behind Cairn's inputs and outputs.
//!
//! The caller feeds [`EngineInput`]s to [`Engine::handle`] and carries out the returned
//! [`EngineOutput`]s *in order*: a [`EngineOutput::WalAppend`] must be durable before any
//! output after it is acted on (that is what keeps a restarted validator from signing twice).

use std::collections::{BTreeMap, BTreeSet, HashSet};

use borsh::{BorshDeserialize, BorshSerialize};
use cairn_ledger::{Commit, CommitSignature, FORMAT_VERSION, Hash, Keypair, PublicKey, ValidatorSet};
use informalsystems_malachitebft_core_consensus as mc;
use informalsystems_malachitebft_core_types as mt;
use mc::{Effect, Input, LivenessMsg, LocallyProposedValue, Resumable, Resume, SignedConsensusMsg, State};
use mt::{Round, SigningProviderExt, ThresholdParams, Timeout};

use crate::context::{Address, BlockHash, CairnContext, CairnSigner, ConsensusValidators, Height, Sig};
use crate::message::{ConsensusMessage, MSignedProposal, MSignedVote, SignedProposal, SignedVote};
use crate::wal::{TimeoutKind, WalEntry};
use crate::{ConsensusError, Result};

/// Messages for heights further ahead than this are not buffered (the node should sync).
pub const HEIGHTS_AHEAD_MAX: u64 = 2;
/// Messages for rounds further ahead of the current one than this are ignored.
pub const ROUNDS_AHEAD_MAX: u32 = 64;
/// Proposals waiting for their block's validity, at most.
pub const AWAITING_PROPOSALS_MAX: usize = 64;
/// Verified signatures remembered (so the core does not verify them again), at most.
const VERIFIED_MAX: usize = 4096;
/// Heights of inputs Malachite buffers for later, at most.
const INPUT_QUEUE_HEIGHTS_MAX: usize = HEIGHTS_AHEAD_MAX as usize + 1;

/// Consensus timeouts (the `[consensus]` table of a node's config). A round's timeout is
/// `base + delta × round`, so rounds lengthen until the network is fast enough for one to
/// succeed.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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

/// What the engine is told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EngineInput {
    /// Start (or move on to) `height`: after a decision has been stored, or at startup when
    /// there is no WAL to replay.
    StartHeight {
        /// The height to decide next.
        height: u64,
    },
    /// A consensus message received from a peer (wire bytes, see [`ConsensusMessage`]).
    Message(Vec<u8>),
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
    /// durable before acting on any later output.
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
    /// A received message was refused (for peer scoring and logs).
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
    verified: HashSet<Sig>,
    certificates_logged: HashSet<Hash>,
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

fn message_of(msg: &SignedConsensusMsg<CairnContext>) -> ConsensusMessage {
    match msg {
        SignedConsensusMsg::Vote(v) => ConsensusMessage::Vote(v.into()),
        SignedConsensusMsg::Proposal(p) => ConsensusMessage::Proposal(p.into()),
    }
}

/// Builds Cairn's [`Commit`] from Malachite's certificate: same signatures, sorted by validator.
fn commit_of(cert: &mt::CommitCertificate<CairnContext>) -> Commit {
    let mut signatures: Vec<CommitSignature> = cert
        .commit_signatures
        .iter()
        .map(|s| CommitSignature { validator: s.address.0, signature: s.signature.into() })
        .collect();
    signatures.sort_by_key(|s| s.validator);
    signatures.dedup_by_key(|s| s.validator);
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
        if self.verified.contains(&msg.signature) {
            return true;
        }
        use mt::SigningProvider;
        let ok = match &msg.message {
            mc::ConsensusMsg::Vote(v) => self.signer.verify_signed_vote(v, &msg.signature, pk),
            mc::ConsensusMsg::Proposal(p) => self.signer.verify_signed_proposal(p, &msg.signature, pk),
        };
        if ok {
            self.remember_verified(msg.signature);
        }
        ok
    }

    fn remember_verified(&mut self, sig: Sig) {
        if self.verified.len() >= VERIFIED_MAX {
            self.verified.clear();
        }
        self.verified.insert(sig);
    }

    /// Records a received vote; reports equivocation; learns this validator's own votes
    /// (e.g. echoed back by peers after a restart) so it never signs a conflicting one.
    fn note_vote(&mut self, v: &SignedVote) {
        let vote = &v.vote;
        if vote.validator == self.address && vote.height == self.height {
            self.own_votes.entry((vote.round, vote.kind as u8)).or_insert_with(|| v.clone());
        }
        let key = (vote.height, vote.round, vote.kind as u8, vote.validator);
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
            verified: HashSet::new(),
            certificates_logged: HashSet::new(),
            replaying: None,
            replay_own_rounds: BTreeSet::new(),
            out: Vec::new(),
        };
        Ok(Engine { state, core })
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
    /// validation (accept or reject before forwarding).
    pub fn check_message(&self, bytes: &[u8]) -> Result<ConsensusMessage> {
        let msg = ConsensusMessage::decode(bytes)?;
        msg.check(self.core.ctx.chain_id(), &self.core.validators)?;
        Ok(msg)
    }

    /// Handles one input; returns what to do, in order.
    pub fn handle(&mut self, input: EngineInput) -> Vec<EngineOutput> {
        match input {
            EngineInput::StartHeight { height } => self.start_height(height),
            EngineInput::Message(bytes) => self.on_message(&bytes),
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
                        self.run(Input::Proposal(p.into()));
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
            let input = match entry {
                WalEntry::Message(ConsensusMessage::Vote(v)) => Input::Vote(v.into()),
                WalEntry::Message(ConsensusMessage::Proposal(p)) => Input::Proposal(p.into()),
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
        c.verified.clear();
        c.certificates_logged.clear();
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

    fn on_message(&mut self, bytes: &[u8]) {
        let msg = match ConsensusMessage::decode(bytes) {
            Ok(m) => m,
            Err(e) => return self.reject(e.to_string()),
        };
        let (height, round) = (msg.height(), msg.round());
        if self.core.height == 0 || height < self.core.height || height > self.core.height + HEIGHTS_AHEAD_MAX {
            return;
        }
        let current_round = if height == self.core.height { self.round().unwrap_or(0) } else { 0 };
        if round > current_round.saturating_add(ROUNDS_AHEAD_MAX) {
            return;
        }
        if let Err(e) = msg.check(self.core.ctx.chain_id(), &self.core.validators) {
            return self.reject(e.to_string());
        }
        match msg {
            ConsensusMessage::Vote(v) => {
                self.core.remember_verified(Sig::from(v.signature));
                self.core.note_vote(&v);
                self.run(Input::Vote(v.into()));
            }
            ConsensusMessage::Proposal(p) => {
                self.core.remember_verified(Sig::from(p.signature));
                // Only the first proposal of a round may make this node wait for a block: a
                // proposer signing many made-up blocks must not fill the waiting queue.
                let first = self.core.note_proposal(&p);
                let (h, r, block_hash) = (p.proposal.height, p.proposal.round, p.proposal.block_hash);
                match self.core.blocks.get(&(h, block_hash)) {
                    Some(true) => self.run(Input::Proposal(p.into())),
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
            ConsensusMessage::PolkaCertificate(ref c) => {
                if height != self.core.height {
                    return;
                }
                let cert: mt::PolkaCertificate<CairnContext> = c.clone().into();
                let th = ThresholdParams::default();
                if let Err(e) =
                    self.core.signer.verify_polka_certificate(&self.core.ctx, &cert, &self.core.mvalidators, th)
                {
                    return self.reject(format!("polka certificate: {e}"));
                }
                if self.log_certificate(bytes, msg) {
                    self.run(Input::PolkaCertificate(cert));
                }
            }
            ConsensusMessage::RoundCertificate(ref c) => {
                if height != self.core.height {
                    return;
                }
                let cert: mt::RoundCertificate<CairnContext> = c.clone().into();
                let th = ThresholdParams::default();
                if let Err(e) =
                    self.core.signer.verify_round_certificate(&self.core.ctx, &cert, &self.core.mvalidators, th)
                {
                    return self.reject(format!("round certificate: {e}"));
                }
                if self.log_certificate(bytes, msg) {
                    self.run(Input::RoundCertificate(cert));
                }
            }
        }
    }

    /// Appends a certificate to the WAL the first time it is seen at this height; false if seen.
    fn log_certificate(&mut self, bytes: &[u8], msg: ConsensusMessage) -> bool {
        if !self.core.certificates_logged.insert(Hash::of(bytes)) {
            return false;
        }
        self.core.wal_append(&WalEntry::Message(msg));
        true
    }
}
