//! Cairn's state transition function: accounts, providers, job escrow, assignment, receipts
//! and settlement — pure functions over an in-memory [`State`].
//!
//! A block is applied transaction by transaction with [`State::apply_tx`]; each either applies
//! whole or fails with a [`TxError`] and changes nothing. [`State::end_block`] settles
//! completed jobs, replaces late providers and closes jobs past their deadline. Redundant
//! results that disagree are settled by re-execution through [`Reexecute`]. Signatures are
//! checked through a [`SignatureCheck`]: a node passes its [`SignatureCache`], so a transaction
//! it already verified (on admission to its mempool) is not verified again. Every change is
//! journaled, so a block can be rolled back ([`State::rollback`]) or committed
//! ([`State::commit`], which returns the changed entries for the store). The state root is
//! computed by the caller's [`StateCommitment`] (the node's Jellyfish Merkle Tree, in
//! `cairn-store`) from the changes. What a result states about an execution, compared between
//! providers and with a re-execution, is an [`Outcome`] (`cairn_ledger`'s, re-exported).
//!
//! ```
//! use cairn_contracts::State;
//! use cairn_ledger::{ChainParams, Genesis, FORMAT_VERSION, Keypair, Validator, GenesisAccount};
//! let v = Keypair::from_seed([1; 32]);
//! let genesis = Genesis {
//!     version: FORMAT_VERSION, chain_name: "doc".into(), genesis_time_ms: 0,
//!     validators: vec![Validator { address: v.public(), power: 1 }],
//!     accounts: vec![GenesisAccount { address: v.public(), balance: 5 }],
//!     providers: vec![], params: ChainParams::default(),
//! };
//! let state = State::from_genesis(&genesis).unwrap();
//! assert_eq!(state.account(&v.public()).balance, 5);
//! ```

pub mod block;
mod error;
pub mod signatures;
mod state;

pub use block::{
    BlockError, Built, Executed, NextBlock, Position, REEXECUTIONS_PER_BLOCK_MAX, StateCommitment, build_block,
    execute_block,
};
pub use cairn_ledger::Outcome;
pub use error::{Limit, Result, TxError};
pub use signatures::{
    BATCH_SIGNATURES_MAX, SIGNATURE_CACHE_ENTRIES_MAX, SignatureCache, SignatureCheck, VerifyAlways, check_all,
    verify_tx, verify_txs,
};
pub use state::{
    Account, Challenge, Closed, Delivery, JOB_RETENTION_BLOCKS, Job, JobPhase, LoadError, NONCE_WINDOW, NoReexecution,
    NonceRule, Provider, REDUNDANCY_MAX, Reexecute, Slot, State, StateKey, balance_needed,
};
