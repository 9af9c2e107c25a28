//! The node's view of the chain: the store, the state at the head, and the two ways a block
//! becomes final here — proposed and committed by this validator, or received with its commit.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::{Context, bail};
use cairn_consensus::Signer;
use cairn_contracts::{
    BlockError, Executed, NextBlock, Position, Reexecute, SignatureCache, State, TxError, build_block, execute_block,
};
use cairn_ledger::state_tree::{MemoryTree, StateUpdate};
use cairn_ledger::{
    Block, BlockHeader, Commit, ExecutionReceipt, FORMAT_VERSION, Genesis, Hash, MerklePath, PublicKey, ReceiptProof,
    Transaction, ValidatorSet,
};
use cairn_store::{BlockWrite, JobLocation, Store, StoreTree};

/// A block that became final here.
#[derive(Debug)]
pub struct Finalized {
    /// The block.
    pub block: Block,
    /// Its commit.
    pub commit: Commit,
    /// What executing it produced.
    pub executed: Executed,
}

/// The chain at this node.
pub struct Chain {
    /// The genesis.
    pub genesis: Genesis,
    /// Its chain id.
    pub chain_id: Hash,
    /// The validator set.
    pub validators: ValidatorSet,
    /// The block store.
    pub store: Arc<Store>,
    /// The state after the head.
    pub state: State,
    /// The head's header (`None` before the first block).
    pub head: Option<BlockHeader>,
    /// The head's commit.
    pub head_commit: Option<Commit>,
    /// Transactions whose signatures this node verified (bounded): filled on admission to the
    /// mempool and by every block executed, consulted by block building and execution so a
    /// transaction is verified once per node. Shared behind a lock so admission and gossip
    /// validation can fill it without holding a lock on the chain while they verify.
    pub signatures: Arc<Mutex<SignatureCache>>,
}

impl Chain {
    /// Opens the store at `path`, rebuilds the state, and checks it against the head's root.
    /// Keeps [`cairn_store::STATE_HISTORY_BLOCKS_DEFAULT`] versions of the state.
    pub fn open(genesis: Genesis, path: &Path) -> anyhow::Result<Chain> {
        Chain::open_with_history(genesis, path, cairn_store::STATE_HISTORY_BLOCKS_DEFAULT)
    }

    /// [`Chain::open`], keeping `state_history_blocks` versions of the state tree (see
    /// [`Store::set_state_history`]).
    pub fn open_with_history(genesis: Genesis, path: &Path, state_history_blocks: u64) -> anyhow::Result<Chain> {
        let chain_id = genesis.chain_id();
        let validators = genesis.validator_set()?;
        let mut store = Store::open(path, chain_id)?;
        store.set_state_history(state_history_blocks);
        let store = Arc::new(store);
        let state = State::from_entries(&genesis, &store.state_entries()?)
            .map_err(|e| anyhow::anyhow!("rebuilding state from {}: {e}", path.display()))?;
        if store.state_root(0)?.is_none() {
            cairn_store::init_store_genesis(store.as_ref(), &state.entries())?;
        }
        let height = store.head_height()?;
        let (head, head_commit) = if height == 0 {
            (None, None)
        } else {
            let block = store.block(height)?.with_context(|| format!("block {height} missing from the store"))?;
            let commit = store.commit(height)?.with_context(|| format!("commit {height} missing from the store"))?;
            (Some(block.header), Some(commit))
        };
        // The state rebuilt from its table must be the state the head header commits to.
        let expected = match &head {
            Some(h) => h.state_root,
            None => store.state_root(0)?.context("genesis state root missing")?,
        };
        if MemoryTree::root_of(&state.entries())? != expected || store.state_root(height)? != Some(expected) {
            bail!(
                "the stored state does not match block {height}'s state root: the database at {} is corrupt",
                path.display()
            );
        }
        let signatures = Arc::new(Mutex::new(SignatureCache::default()));
        Ok(Chain { genesis, chain_id, validators, store, state, head, head_commit, signatures })
    }

    /// The finalized height (0 before the first block).
    pub fn height(&self) -> u64 {
        self.head.as_ref().map_or(0, |h| h.height)
    }

    /// Where the next block goes.
    pub fn next_position(&self) -> Position {
        Position { height: self.height() + 1, parent_hash: self.head.as_ref().map_or(Hash::ZERO, BlockHeader::hash) }
    }

    /// Builds the next block from `candidates`, finalizes it with this validator's commit and
    /// stores it. Returns it, with the candidates that did not apply.
    pub fn propose(
        &mut self,
        signer: &Signer,
        candidates: Vec<Transaction>,
        time_ms: u64,
        exec: &mut dyn Reexecute,
    ) -> anyhow::Result<(Finalized, Vec<(Transaction, TxError)>)> {
        let at = self.next_position();
        let mut tree = StoreTree::new(&self.store);
        let next = NextBlock { at, proposer: signer.address(), time_ms, last_commit: self.head_commit.clone() };
        let mut sigs = &*self.signatures;
        let (block, executed, rejected) = build_block(&mut self.state, next, candidates, &mut tree, exec, &mut sigs)?;
        let update = tree.into_update().context("the block's state update")?;
        let commit = match signer.solo_commit(at.height, block.hash()) {
            Ok(c) => c,
            Err(e) => {
                self.state.rollback();
                return Err(e.into());
            }
        };
        self.persist(&block, &commit, &executed.receipts, &update)?;
        Ok((Finalized { block, commit, executed }, rejected))
    }

    /// Builds the next block from `candidates` as `proposer`'s proposal, without finalizing it:
    /// the state is rolled back (the block becomes final only when consensus decides it).
    /// Returns it, with the candidates that did not apply.
    pub fn build_proposal(
        &mut self,
        proposer: PublicKey,
        candidates: Vec<Transaction>,
        time_ms: u64,
        exec: &mut dyn Reexecute,
    ) -> anyhow::Result<(Block, Vec<(Transaction, TxError)>)> {
        let at = self.next_position();
        let mut tree = StoreTree::new(&self.store);
        let next = NextBlock { at, proposer, time_ms, last_commit: self.head_commit.clone() };
        let mut sigs = &*self.signatures;
        let built = build_block(&mut self.state, next, candidates, &mut tree, exec, &mut sigs);
        self.state.rollback();
        let (block, _executed, rejected) = built?;
        Ok((block, rejected))
    }

    /// Checks a proposed block on top of the head without committing it: its link (height,
    /// parent, proposer, the parent's commit) and a full re-execution, rolled back.
    pub fn check_proposal(&mut self, block: &Block, exec: &mut dyn Reexecute) -> Result<(), String> {
        cairn_consensus::check_parent(self.chain_id, &self.validators, self.head.as_ref(), block)
            .map_err(|e| e.to_string())?;
        let at = self.next_position();
        let mut tree = StoreTree::new(&self.store);
        let mut sigs = &*self.signatures;
        let result = execute_block(&mut self.state, at, block, &mut tree, exec, &mut sigs);
        self.state.rollback();
        result.map(|_| ()).map_err(|e| e.to_string())
    }

    /// Checks and applies a finalized block received from a peer (the next one).
    pub fn apply(&mut self, block: Block, commit: Commit, exec: &mut dyn Reexecute) -> Result<Finalized, ApplyError> {
        cairn_consensus::check_link(self.chain_id, &self.validators, self.head.as_ref(), &block, &commit)
            .map_err(|e| ApplyError::Invalid(e.to_string()))?;
        let at = self.next_position();
        let mut tree = StoreTree::new(&self.store);
        let mut sigs = &*self.signatures;
        let executed =
            execute_block(&mut self.state, at, &block, &mut tree, exec, &mut sigs).map_err(ApplyError::Block)?;
        let update = tree.into_update().ok_or_else(|| ApplyError::Storage(anyhow::anyhow!("no state update")))?;
        self.persist(&block, &commit, &executed.receipts, &update).map_err(ApplyError::Storage)?;
        Ok(Finalized { block, commit, executed })
    }

    fn persist(
        &mut self,
        block: &Block,
        commit: &Commit,
        receipts: &[ExecutionReceipt],
        tree: &StateUpdate,
    ) -> anyhow::Result<()> {
        let height = block.header.height;
        let mut jobs: BTreeMap<Hash, JobLocation> = BTreeMap::new();
        let mut receipt_index = 0u32;
        for tx in &block.txs {
            let Some(id) = tx.job_id() else { continue };
            let loc = match jobs.entry(id) {
                Entry::Occupied(e) => e.into_mut(),
                Entry::Vacant(e) => e.insert(self.store.job(&id)?.unwrap_or_default()),
            };
            match tx {
                Transaction::Offer(_) => loc.offer_height = Some(height),
                Transaction::Result(_) => {
                    loc.receipt = Some((height, receipt_index));
                    receipt_index += 1;
                }
                Transaction::Account(_) | Transaction::Resolve { .. } => {}
            }
        }
        let jobs: Vec<(Hash, JobLocation)> = jobs.into_iter().collect();
        // The state's journal is committed only once the batch is on disk; a storage error is
        // fatal for the node (the caller stops), so the state is never ahead of the store.
        let changes = self.state.commit();
        self.store
            .commit_block(BlockWrite { block, commit, receipts, jobs: &jobs, state: &changes, tree })
            .context("writing the block to the store")?;
        self.head = Some(block.header.clone());
        self.head_commit = Some(commit.clone());
        Ok(())
    }

    /// The finalized blocks from `from`, at most `max` and, past the first, at most `bytes_max`
    /// encoded bytes in all (so an answer always fits the peer's response limit).
    pub fn blocks_from(&self, from: u64, max: u32, bytes_max: usize) -> anyhow::Result<Vec<(Block, Commit)>> {
        let mut out = Vec::new();
        let mut bytes = 0usize;
        for h in from..from.saturating_add(u64::from(max)).min(self.height() + 1) {
            let block = self.store.block(h)?.with_context(|| format!("block {h} missing"))?;
            let commit = self.store.commit(h)?.with_context(|| format!("commit {h} missing"))?;
            bytes += borsh::object_length(&block)? + borsh::object_length(&commit)?;
            if !out.is_empty() && bytes > bytes_max {
                break;
            }
            out.push((block, commit));
        }
        Ok(out)
    }
}

/// Builds a receipt proof from the store alone (no lock on the chain needed).
pub fn proof_from_store(store: &Store, job_id: &Hash) -> anyhow::Result<Option<ReceiptProof>> {
    let Some((height, index)) = store.job(job_id)?.and_then(|l| l.receipt) else { return Ok(None) };
    let receipts = store.receipts(height)?.with_context(|| format!("receipts of block {height} missing"))?;
    let header = store.block(height)?.with_context(|| format!("block {height} missing"))?.header;
    let commit = store.commit(height)?.with_context(|| format!("commit {height} missing"))?;
    let leaves: Vec<Hash> = receipts.iter().map(ExecutionReceipt::leaf_hash).collect();
    let path = MerklePath::new(&leaves, index as usize).context("receipt index out of range")?;
    let receipt = receipts[index as usize].clone();
    Ok(Some(ReceiptProof { version: FORMAT_VERSION, receipt, path, header, commit }))
}

/// Why a received block was not applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// Its link or commit does not verify.
    #[error("invalid block: {0}")]
    Invalid(String),
    /// Executing it failed.
    #[error("{0}")]
    Block(BlockError),
    /// The store failed: fatal.
    #[error("storage: {0:#}")]
    Storage(anyhow::Error),
}
