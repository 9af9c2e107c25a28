//! Cairn's block finality, sans-IO.
//!
//! A block is final when precommit [`Vote`](cairn_ledger::Vote)s for it from more than 2/3 of
//! the validator set's voting power are gathered into a [`Commit`](cairn_ledger::Commit). Two
//! ways produce one:
//!
//! - **BFT consensus** ([`Engine`]): Malachite's core Tendermint state machine
//!   (`informalsystems-malachitebft-core-consensus`), driven by Cairn's [`context`] (height,
//!   address, block hash as value, ed25519 signing over Cairn's own `Vote` bytes, round-robin
//!   proposer by power). The engine does no I/O: the node feeds it [`EngineInput`]s (messages,
//!   timeouts, the block it proposes, block validity) and carries out its [`EngineOutput`]s
//!   (publish, timers, write-ahead log, decisions, equivocation evidence). Its decisions are
//!   ordinary `Commit`s, so receipt proofs verify the same way whatever produced the commit.
//! - **A lone validator** ([`Signer::solo_commit`]): with one validator holding all the power,
//!   it finalizes a block alone, in exactly the same commit format.
//!
//! A node that validates gossip checks each message once with [`Engine::verify_message`]
//! (cheap checks first, then signatures) and feeds the [`VerifiedMessage`] it returns; the
//! engine neither decodes nor verifies it again, and drops exact repeats before the core.
//!
//! [`VoteCollector`] gathers precommits into a commit and [`check_link`] checks that a block
//! extends its parent. Wire and WAL formats are in [`message`] and [`wal`], and in
//! `docs/CONSENSUS.md`.
//!
//! ```
//! use cairn_consensus::{ConsensusParams, Engine, EngineInput, EngineOutput, Signer};
//! use cairn_ledger::{Hash, Keypair, Validator, ValidatorSet};
//! let key = Keypair::from_seed([1; 32]);
//! let set = ValidatorSet::new(vec![Validator { address: key.public(), power: 1 }]).unwrap();
//!
//! // A lone validator finalizes alone.
//! let signer = Signer::new(key.clone(), Hash::ZERO, set.clone()).unwrap();
//! let commit = signer.solo_commit(1, Hash::of(b"block")).unwrap();
//! assert!(commit.verify(Hash::ZERO, &set).is_ok());
//!
//! // The same through the consensus engine: it asks for a block, and decides it.
//! let mut engine = Engine::new(key, Hash::ZERO, set.clone(), ConsensusParams::default()).unwrap();
//! let out = engine.handle(EngineInput::StartHeight { height: 1 });
//! assert!(out.iter().any(|o| matches!(o, EngineOutput::RequestValue { height: 1, round: 0, .. })));
//! let block_hash = Hash::of(b"block");
//! let out = engine.handle(EngineInput::ProposeValue { height: 1, round: 0, block_hash });
//! let commit = out.iter().find_map(|o| match o {
//!     EngineOutput::Decided { commit, .. } => Some(commit.clone()),
//!     _ => None,
//! });
//! assert_eq!(commit.unwrap().verify(Hash::ZERO, &set).unwrap(), 1);
//! ```

mod commit;
pub mod context;
mod engine;
pub mod message;
pub mod wal;

use cairn_ledger::PublicKey;

pub use commit::{Signer, VoteCollector, check_link, check_parent};
pub use context::proposer;
pub use engine::{
    AWAITING_PROPOSALS_MAX, ConsensusParams, Engine, EngineInput, EngineOutput, EngineStats, Evidence,
    HEIGHTS_AHEAD_MAX, ROUNDS_AHEAD_MAX, VerifiedMessage,
};
pub use message::{ConsensusMessage, Proposal, SignedProposal, SignedVote};
pub use wal::{TimeoutKind, WalEntry};

/// Why a vote, commit or block link is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConsensusError {
    /// The key is not in the validator set.
    #[error("{0} is not a validator of this chain; use a key that genesis lists as validator")]
    NotValidator(PublicKey),
    /// The signatures gathered are not yet more than 2/3 of the voting power.
    #[error("{signed} of {total} voting power signed; more than 2/3 is needed")]
    NoQuorum {
        /// Power that signed.
        signed: u64,
        /// Total power.
        total: u64,
    },
    /// A vote for another height, round, block or kind than the collector's.
    #[error("vote does not match: {0}")]
    Mismatch(&'static str),
    /// A signature, commit or link that does not verify.
    #[error("{0}")]
    Invalid(String),
    /// Bytes that are not a consensus message or WAL entry of a supported version.
    #[error("cannot decode: {0}")]
    Decode(String),
}

/// Result with [`ConsensusError`].
pub type Result<T, E = ConsensusError> = std::result::Result<T, E>;
