//! The node's view of the chain: the store and the head (header, commit, state), and the one
//! way a block is executed and becomes final here.
//!
//! A block is executed once per node, whatever its path: [`Base::build`] (the proposer builds
//! it), [`Base::check`] (a validator checks a proposal) or [`Base::check_finalized`] (a block
//! received with its commit) each return an [`ExecutedBlock`] — the state after the block,
//! its changes, the state tree's update and the receipts — and a decision commits that very
//! execution ([`persist`], then [`Chain::advance`]): nothing is executed again. Executing
//! never touches the head: it works on a [`Base`], a snapshot that costs O(1) to take (the
//! state's maps are persistent) and can be sent to another thread.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use cairn_contracts::{
    BlockError, Executed, NextBlock, Position, Reexecute, SignatureCache, State, TxError, build_block, execute_block,
};
use cairn_ledger::state_tree::{MemoryTree, StateUpdate};
use cairn_ledger::{
    Block, BlockHeader, Commit, ExecutionReceipt, FORMAT_VERSION, Genesis, Hash, MerklePath, PublicKey, ReceiptProof,
    StateChange, Transaction, ValidatorSet,
};
use cairn_store::{BlockWrite, JobLocation, Store, StoreTree};

/// The head: the last finalized block's header and commit, and the state after it.
#[derive(Clone, Debug)]
pub struct Head {
    /// The header (`None` before the first block).
    pub header: Option<BlockHeader>,
    /// Its commit.
    pub commit: Option<Commit>,
    /// The state after it.
    pub state: State,
}

impl Head {
    /// The finalized height (0 before the first block).
    pub fn height(&self) -> u64 {
        self.header.as_ref().map_or(0, |h| h.height)
    }

    /// Where the next block goes.
    pub fn next_position(&self) -> Position {
        Position { height: self.height() + 1, parent_hash: self.header.as_ref().map_or(Hash::ZERO, BlockHeader::hash) }
    }
}

/// A block executed on top of a head, not yet final: everything a decision needs to make it
/// final without executing it again.
#[derive(Debug)]
pub struct ExecutedBlock {
    /// The block.
    pub block: Block,
    /// Its hash.
    pub hash: Hash,
    /// The state after it (its changes committed).
    pub state: State,
    /// Its changes, as store writes.
    pub changes: Vec<StateChange>,
    /// The state tree's update (version = the block's height).
    pub tree: StateUpdate,
    /// Receipts, and the jobs that expired or closed at its end.
    pub executed: Executed,
}

/// Why a block could not be executed here.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The block breaks a rule (its link, a transaction, a root): it is invalid everywhere.
    #[error("invalid block: {0}")]
    Invalid(String),
    /// It needs re-executions (challenges, disputes) this node has not run yet: not invalid,
    /// it may execute once they have.
    #[error("waits for the re-execution of {} job(s)", .0.len())]
    Pending(Vec<Hash>),
    /// This node failed (its store): not the block's fault, and fatal for the node.
    #[error("{0:#}")]
    Fault(anyhow::Error),
}

impl ExecError {
    /// A block error: storage faults apart from what the block breaks.
    fn of_block(e: BlockError, missing: &[Hash]) -> ExecError {
        match e {
            BlockError::Commitment(why) => ExecError::Fault(anyhow::anyhow!("state commitment: {why}")),
            BlockError::Tx { error: TxError::ReexecutionPending(_), .. } if !missing.is_empty() => {
                ExecError::Pending(missing.to_vec())
            }
            other => ExecError::Invalid(other.to_string()),
        }
    }
}

/// Re-executions by lookup, with the jobs asked for that had none (see `crate::verdicts`).
pub trait Lookup: Reexecute {
    /// The jobs asked for whose verdict was not there.
    fn missing(&self) -> &[Hash];
}

/// What executing a block on top of a head needs: a snapshot, cheap to take and to send to
/// another thread.
#[derive(Clone)]
pub struct Base {
    /// The chain id.
    pub chain_id: Hash,
    /// The validator set.
    pub validators: Arc<ValidatorSet>,
    /// The store (the state tree's previous version is read from it).
    pub store: Arc<Store>,
    /// The head to execute on.
    pub head: Head,
    /// Signatures this node verified.
    pub signatures: Arc<Mutex<SignatureCache>>,
}

impl Base {
    /// Builds the next block from `candidates`, in order, as `proposer`'s: the block and its
    /// execution, with the candidates left out and why.
    pub fn build(
        &self,
        proposer: PublicKey,
        candidates: Vec<Transaction>,
        time_ms: u64,
        exec: &mut dyn Lookup,
    ) -> Result<(ExecutedBlock, Vec<(Transaction, TxError)>), ExecError> {
        let at = self.head.next_position();
        let mut state = self.head.state.clone();
        let mut tree = StoreTree::new(&self.store);
        let next = NextBlock { at, proposer, time_ms, last_commit: self.head.commit.clone() };
        let mut sigs = &*self.signatures;
        let (block, executed, rejected) = build_block(&mut state, next, candidates, &mut tree, exec, &mut sigs)
            .map_err(|e| ExecError::of_block(e, exec.missing()))?;
        let update = tree.into_update().ok_or_else(|| ExecError::Fault(anyhow::anyhow!("no state tree update")))?;
        Ok((executed_block(block, state, update, executed), rejected))
    }

    /// Executes a proposed block on the head: its link (height, parent, the parent's commit)
    /// and every transaction and root.
    pub fn check(&self, block: Block, exec: &mut dyn Lookup) -> Result<ExecutedBlock, ExecError> {
        cairn_consensus::check_parent(self.chain_id, &self.validators, self.head.header.as_ref(), &block)
            .map_err(|e| ExecError::Invalid(e.to_string()))?;
        self.execute(block, exec)
    }

    /// Executes a finalized block received with its commit (the commit checked too).
    pub fn check_finalized(
        &self,
        block: Block,
        commit: &Commit,
        exec: &mut dyn Lookup,
    ) -> Result<ExecutedBlock, ExecError> {
        cairn_consensus::check_link(self.chain_id, &self.validators, self.head.header.as_ref(), &block, commit)
            .map_err(|e| ExecError::Invalid(e.to_string()))?;
        self.execute(block, exec)
    }

    fn execute(&self, block: Block, exec: &mut dyn Lookup) -> Result<ExecutedBlock, ExecError> {
        let at = self.head.next_position();
        let mut state = self.head.state.clone();
        let mut tree = StoreTree::new(&self.store);
        // The signatures gossip did not bring here verified, in batches first: execution then
        // finds every valid one in the cache (and verifies a bad one again, to name it).
        cairn_contracts::check_all(&self.signatures, &block.txs, state.params().output_bytes_max as usize);
        let mut sigs = &*self.signatures;
        let executed = execute_block(&mut state, at, &block, &mut tree, exec, &mut sigs)
            .map_err(|e| ExecError::of_block(e, exec.missing()))?;
        let update = tree.into_update().ok_or_else(|| ExecError::Fault(anyhow::anyhow!("no state tree update")))?;
        Ok(executed_block(block, state, update, executed))
    }
}

fn executed_block(block: Block, mut state: State, tree: StateUpdate, executed: Executed) -> ExecutedBlock {
    let changes = state.commit();
    ExecutedBlock { hash: block.hash(), block, state, changes, tree, executed }
}

/// What the job index keeps of a job the chain retired from the state (`JobLocation::retired`,
/// borsh): what `job_get` tells of it besides its offer, which is in the block at
/// `offer_height`.
#[derive(Clone, Debug, PartialEq, Eq, borsh::BorshSerialize, borsh::BorshDeserialize)]
pub struct RetiredJob {
    /// Its final phase.
    pub phase: cairn_contracts::JobPhase,
    /// What its providers were paid in all.
    pub paid: u64,
    /// Every provider assigned to it: the first ranked, then stand-ins.
    pub assigned: Vec<cairn_ledger::PublicKey>,
}

/// Writes an executed block with its commit to the store, in one synced batch: its
/// transactions, receipts, job index, state changes and state tree update.
pub fn persist(store: &Store, executed: &ExecutedBlock, commit: &Commit) -> anyhow::Result<()> {
    let block = &executed.block;
    let height = block.header.height;
    // What the block adds to each job's location: the store keeps it in a row of its own, so
    // nothing is read here.
    let mut jobs: BTreeMap<Hash, JobLocation> = BTreeMap::new();
    let mut receipt_index = 0u32;
    for tx in &block.txs {
        let Some(id) = tx.job_id() else { continue };
        // An offer is included once (its nonce is then spent).
        debug_assert!(!matches!(tx, Transaction::Offer(_)) || store.job(&id)?.is_none(), "job {id} offered twice");
        let loc = jobs.entry(id).or_default();
        match tx {
            Transaction::Offer(_) => loc.offer_height = Some(height),
            Transaction::Result(_) => {
                loc.receipts.push((height, receipt_index));
                receipt_index += 1;
            }
            Transaction::Account(_) | Transaction::Resolve { .. } => {}
        }
    }
    // Jobs the block retired from the state: what job_get tells of them goes to the job index.
    for (id, job) in &executed.executed.retired {
        let loc = jobs.entry(*id).or_default();
        let retired = RetiredJob { phase: job.phase, paid: job.paid, assigned: job.assignees().to_vec() };
        loc.retired = Some(borsh::to_vec(&retired).expect("borsh encoding into a Vec cannot fail"));
    }
    let jobs: Vec<(Hash, JobLocation)> = jobs.into_iter().collect();
    store
        .commit_block(BlockWrite {
            block,
            commit,
            receipts: &executed.executed.receipts,
            jobs: &jobs,
            state: &executed.changes,
            tree: &executed.tree,
        })
        .context("writing the block to the store")
}

/// The chain at this node: owned by the node's event loop alone.
pub struct Chain {
    /// The genesis.
    pub genesis: Arc<Genesis>,
    /// Its chain id.
    pub chain_id: Hash,
    /// The validator set.
    pub validators: Arc<ValidatorSet>,
    /// The block store.
    pub store: Arc<Store>,
    /// The head.
    pub head: Head,
    /// Transactions whose signatures this node verified (bounded): filled when they are
    /// verified (on the verifying threads) and by every block executed, so a transaction is
    /// verified once per node.
    pub signatures: Arc<Mutex<SignatureCache>>,
}

impl Chain {
    /// Opens the store at `path`, rebuilds the state, and checks it against the head's root.
    /// Keeps [`cairn_store::STATE_HISTORY_BLOCKS_DEFAULT`] versions of the state.
    pub fn open(genesis: Genesis, path: &Path) -> anyhow::Result<Chain> {
        Chain::open_with(genesis, path, cairn_store::STATE_HISTORY_BLOCKS_DEFAULT, cairn_store::StoreBudget::default())
    }

    /// [`Chain::open`], keeping `state_history_blocks` versions of the state tree, the store
    /// within `budget`.
    pub fn open_with(
        genesis: Genesis,
        path: &Path,
        state_history_blocks: u64,
        budget: cairn_store::StoreBudget,
    ) -> anyhow::Result<Chain> {
        let chain_id = genesis.chain_id();
        let validators = Arc::new(genesis.validator_set()?);
        let mut store = Store::open_with_budget(path, chain_id, budget)?;
        store.set_state_history(state_history_blocks);
        let store = Arc::new(store);
        let head = Chain::load_head(&genesis, &store, path, true)?;
        Ok(Chain {
            genesis: Arc::new(genesis),
            chain_id,
            validators,
            store,
            head,
            signatures: Arc::new(Mutex::new(SignatureCache::default())),
        })
    }

    /// Reads the head again from the store, after a state restored from peers was written into
    /// it: the restore checked every entry against the head's state root, so the root is not
    /// recomputed from the entries here (only the stored tree's is compared).
    pub fn reload(&mut self) -> anyhow::Result<()> {
        let path = self.store.path();
        self.head = Chain::load_head(&self.genesis, &self.store, &path, false)?;
        Ok(())
    }

    /// The head the store holds, its state rebuilt from the state tree's newest value rows
    /// ([`Store::state_entries`]) and checked against the head header's root — recomputed from
    /// the entries when `recompute_root` — (the genesis state is written first into a new
    /// store).
    fn load_head(genesis: &Genesis, store: &Arc<Store>, path: &Path, recompute_root: bool) -> anyhow::Result<Head> {
        let state = State::from_entries(genesis, &store.state_entries().map_err(|e| corrupt(path, e))?)
            .map_err(|e| corrupt(path, format!("rebuilding the state: {e}")))?;
        let height = store.head_height()?;
        if height == 0 && store.state_root(0)?.is_none() {
            cairn_store::init_store_genesis(store.as_ref(), state.entries())?;
        }
        let (header, commit) = if height == 0 {
            (None, None)
        } else {
            let header = store
                .header(height)
                .map_err(|e| corrupt(path, e))?
                .ok_or_else(|| corrupt(path, format!("block {height}, the head, is missing")))?;
            let commit = store
                .commit(height)
                .map_err(|e| corrupt(path, e))?
                .ok_or_else(|| corrupt(path, format!("the commit of block {height}, the head, is missing")))?;
            (Some(header), Some(commit))
        };
        // The state rebuilt from its table must be the state the head header commits to.
        let expected = match &header {
            Some(h) => h.state_root,
            None => store.state_root(0)?.context("genesis state root missing")?,
        };
        if (recompute_root && MemoryTree::root_of(&state.entries())? != expected)
            || store.state_root(height).map_err(|e| corrupt(path, e))? != Some(expected)
        {
            return Err(corrupt(path, format!("the stored state does not match block {height}'s state root")));
        }
        Ok(Head { header, commit, state })
    }

    /// The finalized height.
    pub fn height(&self) -> u64 {
        self.head.height()
    }

    /// The state after the head.
    pub fn state(&self) -> &State {
        &self.head.state
    }

    /// A snapshot to execute the next block on.
    pub fn base(&self) -> Base {
        Base {
            chain_id: self.chain_id,
            validators: self.validators.clone(),
            store: self.store.clone(),
            head: self.head.clone(),
            signatures: self.signatures.clone(),
        }
    }

    /// The head moves to `executed`, which [`persist`] wrote with `commit`.
    pub fn advance(&mut self, executed: &ExecutedBlock, commit: Commit) {
        debug_assert_eq!(executed.block.header.height, self.height() + 1, "blocks are final in order");
        self.head =
            Head { header: Some(executed.block.header.clone()), commit: Some(commit), state: executed.state.clone() };
    }
}

/// The finalized blocks from `from`, at most `max` and, past the first, at most `bytes_max`
/// encoded bytes in all (so an answer always fits the peer's response limit), up to `head`.
pub fn blocks_from(
    store: &Store,
    head: u64,
    from: u64,
    max: u32,
    bytes_max: usize,
) -> anyhow::Result<Vec<(Block, Commit)>> {
    let mut out = Vec::new();
    let mut bytes = 0usize;
    for h in from..from.saturating_add(u64::from(max)).min(head + 1) {
        let block = store.block(h)?.with_context(|| format!("block {h} missing"))?;
        let commit = store.commit(h)?.with_context(|| format!("commit {h} missing"))?;
        bytes += borsh::object_length(&block)? + borsh::object_length(&commit)?;
        if !out.is_empty() && bytes > bytes_max {
            break;
        }
        out.push((block, commit));
    }
    Ok(out)
}

/// A store found corrupt at startup: what is wrong, and how to recover.
fn corrupt(path: &Path, what: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!(
        "{what}: the database at {} is corrupt. To recover, stop the node, move that folder aside and start the node \
         again: it syncs every block from its peers (a validator only once the others have finalized a height past \
         its last one, so that it cannot vote twice at one height; a chain with no other node cannot be recovered \
         this way: restore the folder from a backup)",
        path.display()
    )
}

/// Builds the receipt proofs of a job from the store alone: one per receipt, in the order
/// included (a job with redundancy k has up to k).
pub fn proofs_from_store(store: &Store, job_id: &Hash) -> anyhow::Result<Vec<ReceiptProof>> {
    let Some(location) = store.job(job_id)? else { return Ok(Vec::new()) };
    location
        .receipts
        .iter()
        .map(|&(height, index)| {
            let receipts = store.receipts(height)?.with_context(|| format!("receipts of block {height} missing"))?;
            let header = store.header(height)?.with_context(|| format!("block {height} missing"))?;
            let commit = store.commit(height)?.with_context(|| format!("commit {height} missing"))?;
            let leaves: Vec<Hash> = receipts.iter().map(ExecutionReceipt::leaf_hash).collect();
            let path = MerklePath::new(&leaves, index as usize).context("receipt index out of range")?;
            let receipt = receipts[index as usize].clone();
            Ok(ReceiptProof { version: FORMAT_VERSION, receipt, path, header, commit })
        })
        .collect()
}

#[cfg(test)]
#[path = "chain_tests.rs"]
mod tests;
