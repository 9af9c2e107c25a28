//! The consensus write-ahead log's entries.
//!
//! ```text
//! entry = WAL_VERSION (u8 = 1) || borsh(WalEntry)
//! WalEntry = 0 Message(ConsensusMessage)      a proposal, vote or certificate, ours or received
//!          | 1 Timeout { kind u8, round u32 } a propose/prevote/precommit timeout that fired
//!          | 2 ProposedValue { .. }            a block hash this validator proposed
//! ```
//!
//! The log covers one height: the engine appends (through `EngineOutput::WalAppend`) every
//! input that changes its state, in the order it processes them, before anything that
//! follows is published. Replaying them into a fresh engine rebuilds the same state, and the
//! validator's own signed messages in the log keep it from ever signing a different one.

use borsh::{BorshDeserialize, BorshSerialize};
use cairn_ledger::{Hash, PublicKey};

use crate::message::{ConsensusMessage, MESSAGE_SIZE_MAX};
use crate::{ConsensusError, Result};

/// The version byte in front of every WAL entry.
pub const WAL_VERSION: u8 = 1;

/// The largest WAL entry body read back: a consensus message ([`MESSAGE_SIZE_MAX`]) and the
/// entry's own few bytes around it.
pub const WAL_ENTRY_SIZE_MAX: usize = MESSAGE_SIZE_MAX + 64;

/// A Tendermint timeout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, BorshSerialize, BorshDeserialize)]
#[borsh(use_discriminant = true)]
pub enum TimeoutKind {
    /// Waiting for the round's proposal.
    Propose = 0,
    /// Waiting for more prevotes after seeing prevotes of more than 2/3 for anything.
    Prevote = 1,
    /// Waiting for more precommits after seeing precommits of more than 2/3 for anything.
    Precommit = 2,
    /// Re-sending this validator's last votes (never logged: it changes no state).
    Rebroadcast = 3,
}

/// One WAL entry.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum WalEntry {
    /// A consensus message, ours or received, before it was applied.
    Message(ConsensusMessage),
    /// A timeout that elapsed.
    Timeout {
        /// Which.
        kind: TimeoutKind,
        /// Its round.
        round: u32,
    },
    /// A value proposed in a round (by this validator, in Cairn).
    ProposedValue {
        /// Height.
        height: u64,
        /// Round.
        round: u32,
        /// The polka round it was valid in, if any.
        valid_round: Option<u32>,
        /// The proposer.
        proposer: PublicKey,
        /// The block hash.
        block_hash: Hash,
        /// Whether the block was valid.
        valid: bool,
    },
}

impl WalEntry {
    /// The bytes to store: [`WAL_VERSION`] then borsh.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![WAL_VERSION];
        borsh::to_writer(&mut out, self).expect("borsh encoding into a Vec cannot fail");
        out
    }

    /// Decodes stored bytes.
    pub fn decode(bytes: &[u8]) -> Result<WalEntry> {
        let (&version, body) = bytes.split_first().ok_or_else(|| ConsensusError::Decode("empty WAL entry".into()))?;
        if version != WAL_VERSION {
            return Err(ConsensusError::Decode(format!("unsupported WAL entry version {version}")));
        }
        cairn_ledger::decode("WAL entry", body, WAL_ENTRY_SIZE_MAX).map_err(|e| ConsensusError::Decode(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timeout_entry_has_pinned_bytes() {
        let e = WalEntry::Timeout { kind: TimeoutKind::Prevote, round: 2 };
        assert_eq!(e.encode(), vec![WAL_VERSION, 1, 1, 2, 0, 0, 0]);
        assert_eq!(WalEntry::decode(&e.encode()).expect("decodes"), e);
        assert!(WalEntry::decode(&[2, 1, 1, 2, 0, 0, 0]).is_err());
    }
}
