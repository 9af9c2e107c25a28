//! Building and executing blocks over the [`State`]. The state root is computed through a
//! [`StateCommitment`] (defined with the state tree in `cairn_ledger::state_tree`): the
//! node's persisted tree, or an in-memory one.

pub use cairn_ledger::state_tree::StateCommitment;
use cairn_ledger::{
    Block, BlockHeader, Commit, ExecutionReceipt, FORMAT_VERSION, Hash, Outcome, PublicKey, Transaction, merkle,
};

use crate::{Reexecute, SignatureCheck, State, TxError};

/// What executing a block produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Executed {
    /// The receipts, in transaction order.
    pub receipts: Vec<ExecutionReceipt>,
    /// Jobs that expired at the end of the block.
    pub expired: Vec<Hash>,
    /// Jobs that closed at their deadline at the end of the block with some of their results
    /// (completed or settled with them): final with this block, though it holds none of
    /// their result transactions.
    pub closed: Vec<Hash>,
    /// Jobs the block removed from the state ([`crate::JOB_RETENTION_BLOCKS`] after they reached a
    /// final phase), with their last entry.
    pub retired: Vec<(Hash, crate::Job)>,
}

impl Executed {
    /// A block's receipts and what its end closed.
    fn of(receipts: Vec<ExecutionReceipt>, closed: crate::Closed) -> Executed {
        Executed { receipts, expired: closed.expired, closed: closed.with_results, retired: closed.retired }
    }
}

/// Why a block is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    /// The block's own bytes are inconsistent.
    #[error("malformed block: {0}")]
    Malformed(String),
    /// A transaction in it does not apply.
    #[error("transaction {index} does not apply: {error}")]
    Tx {
        /// Its position.
        index: usize,
        /// Why.
        error: TxError,
    },
    /// A root in the header is not what execution produced.
    #[error("the header's {0} is not what executing the block gives")]
    Root(&'static str),
    /// The state commitment could not be computed (storage).
    #[error("state commitment: {0}")]
    Commitment(String),
}

/// The position of a block: its height and its parent's hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    /// Height of the new block.
    pub height: u64,
    /// Hash of its parent ([`Hash::ZERO`] at height 1).
    pub parent_hash: Hash,
}

/// What a proposer puts around the transactions of the block it builds.
#[derive(Clone, Debug)]
pub struct NextBlock {
    /// Where the block goes.
    pub at: Position,
    /// The proposing validator.
    pub proposer: PublicKey,
    /// The proposer's clock.
    pub time_ms: u64,
    /// The commit of the parent (`None` at height 1).
    pub last_commit: Option<Commit>,
}

/// A block built by [`build_block`], with what executing it produced and the candidates left
/// out (with the reason).
pub type Built = (Block, Executed, Vec<(Transaction, TxError)>);

/// Builds the next block from `candidates`, in order, skipping those that do not apply (they
/// are returned with the reason). Signatures are checked through `sigs` (a node passes its
/// cache, so candidates it verified on admission are not verified again). The state is left
/// with the block's changes uncommitted; on error it is rolled back.
pub fn build_block(
    state: &mut State,
    next: NextBlock,
    candidates: impl IntoIterator<Item = Transaction>,
    commitment: &mut impl StateCommitment,
    exec: &mut dyn Reexecute,
    sigs: &mut dyn SignatureCheck,
) -> Result<Built, BlockError> {
    let NextBlock { at, proposer, time_ms, last_commit } = next;
    let max = state.params().block_txs_max as usize;
    // Room for the header and the last commit, generously.
    let bytes_max = state.params().block_bytes_max.saturating_sub(cairn_ledger::genesis::BLOCK_OVERHEAD_BYTES) as usize;
    let mut bytes = 0usize;
    let mut txs = Vec::new();
    let mut receipts = Vec::new();
    let mut rejected = Vec::new();
    let mut exec = Budget { inner: exec, used: 0 };
    for tx in candidates {
        if txs.len() >= max {
            break;
        }
        let size = borsh::object_length(&tx).expect("borsh sizing cannot fail");
        if bytes + size > bytes_max {
            continue;
        }
        match state.apply_tx(&tx, at.height, &mut exec, sigs) {
            Ok(receipt) => {
                bytes += size;
                receipts.extend(receipt);
                txs.push(tx);
            }
            Err(e) => rejected.push((tx, e)),
        }
    }
    let closed = state.end_block_closing(at.height);
    let state_root = rolled_back_on_error(state, |state| {
        commitment.root_after(state.pending_changes(), at.height).map_err(BlockError::Commitment)
    })?;
    let tx_leaves: Vec<Hash> = txs.iter().map(Transaction::leaf_hash).collect();
    let receipt_leaves: Vec<Hash> = receipts.iter().map(ExecutionReceipt::leaf_hash).collect();
    let header = BlockHeader {
        version: FORMAT_VERSION,
        chain_id: state.chain_id(),
        height: at.height,
        parent_hash: at.parent_hash,
        time_ms,
        proposer,
        tx_root: merkle::root(&tx_leaves),
        receipt_root: merkle::root(&receipt_leaves),
        state_root,
        last_commit_hash: Hash::of_borsh(&last_commit),
        tx_count: u32::try_from(txs.len()).expect("bounded by block_txs_max"),
        receipt_count: u32::try_from(receipts.len()).expect("at most one per transaction"),
    };
    let executed = Executed::of(receipts, closed);
    Ok((Block { header, txs, last_commit }, executed, rejected))
}

/// Executes a block received from the network at position `at`, checking its structure,
/// every transaction and the roots. Signatures are checked through `sigs` (see
/// [`build_block`]). On success the state holds the block's changes, uncommitted; on error the
/// state is rolled back to where it was.
pub fn execute_block(
    state: &mut State,
    at: Position,
    block: &Block,
    commitment: &mut impl StateCommitment,
    exec: &mut dyn Reexecute,
    sigs: &mut dyn SignatureCheck,
) -> Result<Executed, BlockError> {
    rolled_back_on_error(state, |state| {
        let h = &block.header;
        // The cheap bounds first: a block too large is refused before its roots are hashed.
        if block.txs.len() > state.params().block_txs_max as usize {
            return Err(BlockError::Malformed("too many transactions".into()));
        }
        if borsh::object_length(block).expect("borsh sizing cannot fail") > state.params().block_bytes_max as usize {
            return Err(BlockError::Malformed("the block is larger than block_bytes_max".into()));
        }
        block.check_structure().map_err(|e| BlockError::Malformed(e.to_string()))?;
        if h.chain_id != state.chain_id() {
            return Err(BlockError::Malformed("the block is from another chain".into()));
        }
        if h.height != at.height || h.parent_hash != at.parent_hash {
            return Err(BlockError::Malformed(format!(
                "block {} with parent {} does not extend height {} / {}",
                h.height,
                h.parent_hash,
                at.height - 1,
                at.parent_hash
            )));
        }
        let mut receipts = Vec::new();
        let mut exec = Budget { inner: exec, used: 0 };
        for (index, tx) in block.txs.iter().enumerate() {
            let receipt =
                state.apply_tx(tx, h.height, &mut exec, sigs).map_err(|error| BlockError::Tx { index, error })?;
            receipts.extend(receipt);
        }
        let closed = state.end_block_closing(h.height);
        let leaves: Vec<Hash> = receipts.iter().map(ExecutionReceipt::leaf_hash).collect();
        if merkle::root(&leaves) != h.receipt_root || receipts.len() != h.receipt_count as usize {
            return Err(BlockError::Root("receipt_root"));
        }
        let root = commitment.root_after(state.pending_changes(), h.height).map_err(BlockError::Commitment)?;
        if root != h.state_root {
            return Err(BlockError::Root("state_root"));
        }
        Ok(Executed::of(receipts, closed))
    })
}

/// The most re-executions (challenges and disputes) one block may need. Every validator must
/// have run them all before it can vote for the block; validators run them ahead, when the
/// challenge or the disagreeing result arrives, but one block must not ask for more than a
/// bounded amount of that work at once. A block builder leaves the transactions past it for
/// the next blocks (`TxError::TooManyReexecutions`); a block that needs more is invalid.
pub const REEXECUTIONS_PER_BLOCK_MAX: usize = 8;

/// A [`Reexecute`] that counts: past [`REEXECUTIONS_PER_BLOCK_MAX`] it refuses, without
/// running anything.
struct Budget<'a> {
    inner: &'a mut dyn Reexecute,
    used: usize,
}

impl Reexecute for Budget<'_> {
    fn reexecute(&mut self, job_id: &Hash, job: &crate::Job) -> crate::Result<Outcome> {
        if self.used >= REEXECUTIONS_PER_BLOCK_MAX {
            return Err(TxError::TooManyReexecutions);
        }
        self.used += 1;
        self.inner.reexecute(job_id, job)
    }
}

/// Runs `f` on `state`, rolling the state back to its last commit if `f` fails.
fn rolled_back_on_error<T>(
    state: &mut State,
    f: impl FnOnce(&mut State) -> Result<T, BlockError>,
) -> Result<T, BlockError> {
    let result = f(state);
    if result.is_err() {
        state.rollback();
    }
    result
}

#[cfg(test)]
mod tests {
    use cairn_ledger::state_tree::MemoryTree;
    use cairn_ledger::{Action, ChainParams, Genesis, GenesisAccount, Keypair, Tx, Validator};

    use super::*;
    use crate::{NoReexecution, VerifyAlways};

    mod invalid;

    fn genesis(block_txs_max: u32) -> (Genesis, Keypair) {
        let key = Keypair::from_seed([5; 32]);
        let genesis = Genesis {
            version: FORMAT_VERSION,
            chain_name: "blocks".into(),
            genesis_time_ms: 0,
            validators: vec![Validator { address: key.public(), power: 1 }],
            accounts: vec![GenesisAccount { address: key.public(), balance: 1_000 }],
            providers: vec![],
            params: ChainParams { block_txs_max, ..ChainParams::default() },
        };
        (genesis, key)
    }

    fn transfer(genesis: &Genesis, key: &Keypair, nonce: u64) -> Transaction {
        let action = Action::Transfer { to: Keypair::from_seed([6; 32]).public(), amount: 1 };
        let tx =
            Tx { version: FORMAT_VERSION, chain_id: genesis.chain_id(), sender: key.public(), nonce, fee: 1, action };
        Transaction::Account(tx.sign(key))
    }

    fn tree_at_genesis(state: &State) -> MemoryTree {
        MemoryTree::with_genesis(&state.entries()).expect("genesis tree").0
    }

    #[test]
    fn a_block_over_the_bounds_is_refused_before_its_roots_are_checked() {
        let (genesis, key) = genesis(1);
        let mut state = State::from_genesis(&genesis).expect("genesis");
        let mut tree = tree_at_genesis(&state);
        let at = Position { height: 1, parent_hash: Hash::ZERO };
        let next = NextBlock { at, proposer: key.public(), time_ms: 1, last_commit: None };
        let txs = vec![transfer(&genesis, &key, 0), transfer(&genesis, &key, 1)];
        let (mut block, _, _) =
            build_block(&mut state, next, txs.clone(), &mut tree, &mut NoReexecution, &mut VerifyAlways)
                .expect("built");
        assert_eq!(block.txs.len(), 1, "the builder keeps to block_txs_max");
        state.rollback();
        // Two transactions with a tx_root that does not match them: the count is refused first.
        block.txs = txs;
        block.header.tx_count = 2;
        let mut tree = tree_at_genesis(&state);
        let err = execute_block(&mut state, at, &block, &mut tree, &mut NoReexecution, &mut VerifyAlways)
            .expect_err("too many");
        assert_eq!(err, BlockError::Malformed("too many transactions".into()));
    }

    #[test]
    fn the_changes_of_a_block_are_encoded_once_for_the_root_and_the_commit() {
        let (genesis, key) = genesis(10);
        let mut state = State::from_genesis(&genesis).expect("genesis");
        let mut tree = tree_at_genesis(&state);
        let at = Position { height: 1, parent_hash: Hash::ZERO };
        let next = NextBlock { at, proposer: key.public(), time_ms: 1, last_commit: None };
        build_block(
            &mut state,
            next,
            vec![transfer(&genesis, &key, 0)],
            &mut tree,
            &mut NoReexecution,
            &mut VerifyAlways,
        )
        .expect("built");
        let encoded = state.pending_changes().as_ptr();
        let changes = state.commit();
        assert_eq!(changes.as_ptr(), encoded, "commit hands over the encoding the root was computed from");
        assert!(state.pending_changes().is_empty());
    }
}
