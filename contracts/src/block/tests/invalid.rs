//! Invalid blocks: [`execute_block`] refuses a block whose header does not match what its
//! transactions give (state root, receipt root and count, transaction root and count, last
//! commit hash), that sits elsewhere than where it is executed (height, parent), that belongs to
//! another chain or format version, that holds a transaction that does not apply, or that is
//! over the size limits — and leaves the state as it was.

use cairn_ledger::{JobOffer, Signature};

use super::*;

/// A valid first block of three transfers, with the state it executes on.
struct Fixture {
    genesis: Genesis,
    key: Keypair,
    state: State,
    at: Position,
    block: Block,
    executed: Executed,
}

fn genesis_with(params: ChainParams) -> (Genesis, Keypair) {
    let key = Keypair::from_seed([5; 32]);
    let genesis = Genesis {
        version: FORMAT_VERSION,
        chain_name: "invalid blocks".into(),
        genesis_time_ms: 0,
        validators: vec![Validator { address: key.public(), power: 1 }],
        accounts: vec![GenesisAccount { address: key.public(), balance: 1_000 }],
        providers: vec![],
        params,
    };
    (genesis, key)
}

impl Fixture {
    fn new() -> Fixture {
        Fixture::with(ChainParams::default())
    }

    fn with(params: ChainParams) -> Fixture {
        let (genesis, key) = genesis_with(params);
        let mut state = State::from_genesis(&genesis).expect("genesis");
        let mut tree = tree_at_genesis(&state);
        let at = Position { height: 1, parent_hash: Hash::ZERO };
        let next = NextBlock { at, proposer: key.public(), time_ms: 7, last_commit: None };
        let txs = (0..3).map(|n| transfer(&genesis, &key, n)).collect::<Vec<_>>();
        let (block, executed, rejected) =
            build_block(&mut state, next, txs, &mut tree, &mut NoReexecution, &mut VerifyAlways).expect("built");
        assert!(rejected.is_empty() && block.txs.len() == 3, "a valid block of three transfers");
        state.rollback();
        Fixture { genesis, key, state, at, block, executed }
    }

    /// Executes `block` at the fixture's position on the genesis state. A refused block must
    /// leave the state untouched; an executed one is rolled back for the next case.
    fn execute(&mut self, block: &Block) -> Result<Executed, BlockError> {
        self.execute_at(self.at, block)
    }

    fn execute_at(&mut self, at: Position, block: &Block) -> Result<Executed, BlockError> {
        let mut tree = tree_at_genesis(&self.state);
        let result = execute_block(&mut self.state, at, block, &mut tree, &mut NoReexecution, &mut VerifyAlways);
        if result.is_err() {
            assert!(self.state.pending_changes().is_empty(), "a refused block leaves no change behind");
            assert_eq!(self.state.account(&self.key.public()).nonce, 0, "nor any transaction applied");
        }
        self.state.rollback();
        result
    }

    /// The fixture's block changed by `change`.
    fn changed(&self, change: impl FnOnce(&mut Block)) -> Block {
        let mut block = self.block.clone();
        change(&mut block);
        block
    }
}

/// `block` with its transaction count and root made to match its transactions again, so that
/// only what the test changed elsewhere is wrong.
fn restructured(mut block: Block) -> Block {
    block.header.tx_count = u32::try_from(block.txs.len()).expect("few");
    let leaves: Vec<Hash> = block.txs.iter().map(Transaction::leaf_hash).collect();
    block.header.tx_root = merkle::root(&leaves);
    block
}

fn malformed(r: Result<Executed, BlockError>, why: &str) {
    match r {
        Err(BlockError::Malformed(e)) => assert!(e.contains(why), "refused for another reason: {e} (wanted: {why})"),
        other => panic!("wanted Malformed({why}), got {other:?}"),
    }
}

/// The block built for these tests executes, with what building it gave: the refusals below
/// are each about the one thing changed.
#[test]
fn the_block_as_built_executes() {
    let mut f = Fixture::new();
    let block = f.block.clone();
    assert_eq!(f.execute(&block), Ok(f.executed.clone()));
}

/// A header whose state root is not the state the transactions lead to is refused.
#[test]
fn a_wrong_state_root_is_refused() {
    let mut f = Fixture::new();
    let block = f.changed(|b| b.header.state_root = Hash::of(b"another state"));
    assert_eq!(f.execute(&block), Err(BlockError::Root("state_root")));
}

/// A header whose receipt root or receipt count is not what the transactions give is refused.
#[test]
fn a_wrong_receipt_root_or_count_is_refused() {
    let mut f = Fixture::new();
    let block = f.changed(|b| b.header.receipt_root = Hash::of(b"receipts"));
    assert_eq!(f.execute(&block), Err(BlockError::Root("receipt_root")));
    let block = f.changed(|b| b.header.receipt_count += 1);
    assert_eq!(f.execute(&block), Err(BlockError::Root("receipt_root")));
}

/// A header whose transaction root or count does not match the transactions is refused, and
/// so are transactions dropped, added or reordered under an unchanged header.
#[test]
fn a_wrong_tx_root_or_count_is_refused() {
    let mut f = Fixture::new();
    let block = f.changed(|b| b.header.tx_root = Hash::of(b"txs"));
    malformed(f.execute(&block), "tx_root");
    let block = f.changed(|b| b.header.tx_count = 2);
    malformed(f.execute(&block), "tx_count");
    let block = f.changed(|b| {
        b.txs.pop();
    });
    malformed(f.execute(&block), "tx_count");
    let block = f.changed(|b| b.txs.swap(0, 1));
    malformed(f.execute(&block), "tx_root");
    let extra = transfer(&f.genesis, &f.key, 3);
    let block = f.changed(|b| b.txs[2] = extra);
    malformed(f.execute(&block), "tx_root");
}

/// A header whose last commit hash is not its last commit's is refused (here a first block
/// that carries a commit it does not name).
#[test]
fn a_wrong_last_commit_hash_is_refused() {
    let mut f = Fixture::new();
    let block = f.changed(|b| b.header.last_commit_hash = Hash::of(b"a commit"));
    malformed(f.execute(&block), "last_commit_hash");
    let commit = Commit { version: FORMAT_VERSION, height: 0, round: 0, block_hash: Hash::ZERO, signatures: vec![] };
    let block = f.changed(|b| b.last_commit = Some(commit));
    malformed(f.execute(&block), "last_commit_hash");
}

/// A header of another format version is refused.
#[test]
fn a_header_of_another_version_is_refused() {
    let mut f = Fixture::new();
    let block = f.changed(|b| b.header.version = FORMAT_VERSION + 1);
    malformed(f.execute(&block), "version");
}

/// A block of another chain is refused, whatever else it gets right.
#[test]
fn a_block_of_another_chain_is_refused() {
    let mut f = Fixture::new();
    let block = f.changed(|b| b.header.chain_id = Hash::of(b"another chain"));
    malformed(f.execute(&block), "another chain");
}

/// A block that does not sit where it is executed — another height, another parent — is
/// refused, and a valid block executed at another position too.
#[test]
fn a_block_at_the_wrong_height_or_parent_is_refused() {
    let mut f = Fixture::new();
    for height in [0, 2] {
        let block = f.changed(|b| b.header.height = height);
        malformed(f.execute(&block), "does not extend");
    }
    let block = f.changed(|b| b.header.parent_hash = Hash::of(b"a parent"));
    malformed(f.execute(&block), "does not extend");
    let block = f.block.clone();
    malformed(f.execute_at(Position { height: 2, parent_hash: Hash::ZERO }, &block), "does not extend");
    malformed(f.execute_at(Position { height: 1, parent_hash: Hash::of(b"x") }, &block), "does not extend");
}

/// A block with a transaction that does not apply — a nonce out of order, a forged signature,
/// more than the balance — is refused, naming the transaction, even with its structure right.
#[test]
fn a_block_with_a_failing_transaction_is_refused() {
    let mut f = Fixture::new();
    let block = restructured(f.changed(|b| b.txs.swap(1, 2)));
    assert!(matches!(
        f.execute(&block),
        Err(BlockError::Tx { index: 1, error: TxError::Nonce { expected: 1, got: 2 } })
    ));
    let Transaction::Account(mut forged) = f.block.txs[2].clone() else { panic!("a transfer") };
    forged.signature = Signature([7; 64]);
    let block = restructured(f.changed(|b| b.txs[2] = Transaction::Account(forged)));
    assert!(matches!(f.execute(&block), Err(BlockError::Tx { index: 2, error: TxError::BadSignature(_) })));
    let action = Action::Transfer { to: Keypair::from_seed([6; 32]).public(), amount: 1_000 };
    let tx = Tx {
        version: FORMAT_VERSION,
        chain_id: f.genesis.chain_id(),
        sender: f.key.public(),
        nonce: 3,
        fee: 1,
        action,
    };
    let block = restructured(f.changed(|b| b.txs.push(Transaction::Account(tx.sign(&f.key)))));
    assert!(matches!(f.execute(&block), Err(BlockError::Tx { index: 3, error: TxError::InsufficientBalance { .. } })));
}

/// A block of `block_bytes_max` bytes passes the size check; one byte more is refused before
/// anything else is looked at.
#[test]
fn a_block_over_block_bytes_max_is_refused() {
    let params =
        ChainParams { block_bytes_max: cairn_ledger::genesis::BLOCK_OVERHEAD_BYTES + 4_096, ..ChainParams::default() };
    let mut f = Fixture::with(params.clone());
    let max = params.block_bytes_max as usize;
    // An offer (it does not apply: there is no provider) whose input fills the block exactly.
    let offer = |input_len: usize| {
        let offer = JobOffer {
            version: FORMAT_VERSION,
            chain_id: f.genesis.chain_id(),
            client: f.key.public(),
            nonce: 3,
            fee: 1,
            module_id: Hash::of(b"module"),
            input: vec![0; input_len],
            fuel_limit: 1,
            max_price: 1,
            redundancy: 1,
            assignment_height: 0,
            deadline_height: 10,
            placement: cairn_ledger::Placement::Anywhere,
            input_blob: None,
        };
        Transaction::Offer(offer.sign(&f.key))
    };
    let sized = |input_len: usize| restructured(f.changed(|b| b.txs.push(offer(input_len))));
    let len = |b: &Block| borsh::object_length(b).expect("sized");
    let short = max - len(&sized(0));
    let (at_max, over) = (sized(short), sized(short + 1));
    assert_eq!((len(&at_max), len(&over)), (max, max + 1));
    assert!(
        matches!(f.execute(&at_max), Err(BlockError::Tx { index: 3, .. })),
        "at the limit the block is executed (and its offer refused)"
    );
    malformed(f.execute(&over), "larger than block_bytes_max");
}

/// A block's time is the proposer's clock and informational (the header says so): execution
/// does not check it.
#[test]
fn the_block_time_is_not_checked() {
    let mut f = Fixture::new();
    for time_ms in [0, u64::MAX] {
        let block = f.changed(|b| b.header.time_ms = time_ms);
        assert!(f.execute(&block).is_ok());
    }
}
