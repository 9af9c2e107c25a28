//! [`Base::check`] on a real store: a proposal with any defect — in its link to the head
//! (height, parent, proposer, the parent's commit) or in its execution (roots, counts, chain,
//! version, a transaction that does not apply, the size limit) — is [`ExecError::Invalid`],
//! and a valid one passes, whichever quorum signed the parent's commit it carries.
//! [`Base::check_finalized`] also wants the block's own commit.

use cairn_contracts::NoReexecution;
use cairn_ledger::{Action, ChainParams, GenesisAccount, Keypair, Outcome, Signature, Tx, Validator};

use super::*;

/// Re-executions: none here (no challenge or dispute in these blocks).
struct NoVerdicts;

impl Reexecute for NoVerdicts {
    fn reexecute(&mut self, job_id: &Hash, job: &cairn_contracts::Job) -> cairn_contracts::Result<Outcome> {
        NoReexecution.reexecute(job_id, job)
    }
}

impl Lookup for NoVerdicts {
    fn missing(&self) -> &[Hash] {
        &[]
    }
}

/// The most transactions in a block on this chain (small, so a block over it is small too).
const BLOCK_TXS_MAX: u32 = 3;

/// A chain of four validators on a real store, with block 1 final (signed by validators 0, 1
/// and 2) and a valid proposal for block 2 (two transfers) built on it but not stored.
struct Fixture {
    _dir: tempfile::TempDir,
    chain: Chain,
    keys: Vec<Keypair>,
    client: Keypair,
    proposal: Block,
}

impl Fixture {
    fn new() -> Fixture {
        let keys: Vec<Keypair> = (1..5).map(|i| Keypair::from_seed([i; 32])).collect();
        let client = Keypair::from_seed([10; 32]);
        let genesis = Genesis {
            version: FORMAT_VERSION,
            chain_name: "checked proposals".into(),
            genesis_time_ms: 0,
            validators: keys.iter().map(|k| Validator { address: k.public(), power: 1 }).collect(),
            accounts: vec![GenesisAccount { address: client.public(), balance: 1_000_000 }],
            providers: vec![],
            params: ChainParams { block_txs_max: BLOCK_TXS_MAX, ..ChainParams::default() },
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let mut chain = Chain::open(genesis, &dir.path().join("db")).expect("chain");
        let chain_id = chain.chain_id;
        let transfer = |nonce| transfer(chain_id, &client, nonce);
        let (first, rejected) =
            chain.base().build(keys[0].public(), vec![transfer(0)], 1_000, &mut NoVerdicts).expect("block 1");
        assert!(rejected.is_empty() && first.block.txs.len() == 1);
        let commit = signed_commit(&[&keys[0], &keys[1], &keys[2]], chain.chain_id, 1, first.hash);
        persist(&chain.store, &first, &commit).expect("stored");
        chain.advance(&first, commit);
        let (second, rejected) = chain
            .base()
            .build(keys[1].public(), vec![transfer(1), transfer(2)], 2_000, &mut NoVerdicts)
            .expect("block 2");
        assert!(rejected.is_empty() && second.block.txs.len() == 2);
        Fixture { _dir: dir, chain, keys, client, proposal: second.block }
    }

    fn check(&self, block: &Block) -> Result<ExecutedBlock, ExecError> {
        self.chain.base().check(block.clone(), &mut NoVerdicts)
    }

    /// The proposal changed by `change`.
    fn changed(&self, change: impl FnOnce(&mut Block)) -> Block {
        let mut block = self.proposal.clone();
        change(&mut block);
        block
    }

    /// The proposal carrying `last_commit`, its header naming it (so only the commit is wrong).
    fn with_last_commit(&self, last_commit: Option<Commit>) -> Block {
        self.changed(|b| {
            b.header.last_commit_hash = Hash::of_borsh(&last_commit);
            b.last_commit = last_commit;
        })
    }

    /// `check` refuses `block` as invalid, for a reason that says `why`.
    fn invalid(&self, what: &str, block: &Block, why: &str) {
        match self.check(block) {
            Err(ExecError::Invalid(e)) => assert!(e.contains(why), "{what}: refused for another reason: {e}"),
            Err(e) => panic!("{what}: not invalid but {e}"),
            Ok(_) => panic!("{what}: passed the check"),
        }
    }

    fn parent_hash(&self) -> Hash {
        self.proposal.header.parent_hash
    }
}

fn transfer(chain_id: Hash, client: &Keypair, nonce: u64) -> Transaction {
    let action = Action::Transfer { to: Keypair::from_seed([11; 32]).public(), amount: 1 };
    let tx = Tx { version: FORMAT_VERSION, chain_id, sender: client.public(), nonce, fee: 1, action };
    Transaction::Account(tx.sign(client))
}

/// A commit of `block_hash` at `height` (round 0) signed by `signers`: quorum or not.
fn signed_commit(signers: &[&Keypair], chain_id: Hash, height: u64, block_hash: Hash) -> Commit {
    Commit::signed_by(signers, chain_id, height, 0, block_hash)
}

/// `block` with its transaction count and root matching its transactions again.
fn restructured(mut block: Block) -> Block {
    block.header.tx_count = u32::try_from(block.txs.len()).expect("few");
    let leaves: Vec<Hash> = block.txs.iter().map(Transaction::leaf_hash).collect();
    block.header.tx_root = cairn_ledger::merkle::root(&leaves);
    block
}

/// The valid proposal passes, and its execution is the one the proposer built (same state
/// root, same receipts): every refusal below is about the one defect it adds.
#[test]
fn a_valid_proposal_passes_the_check() {
    let f = Fixture::new();
    let executed = f.check(&f.proposal).expect("valid");
    assert_eq!(executed.hash, f.proposal.hash());
    assert_eq!(executed.state.account(&f.client.public()).nonce, 3);
    assert_eq!(f.chain.height(), 1, "checking moves nothing");
    assert_eq!(f.chain.state().account(&f.client.public()).nonce, 1);
}

/// The parent's commit a proposal carries may be any quorum's, not the one this node stored.
#[test]
fn a_proposal_carrying_another_quorums_commit_of_the_parent_passes() {
    let f = Fixture::new();
    let k = &f.keys;
    let other = signed_commit(&[&k[1], &k[2], &k[3]], f.chain.chain_id, 1, f.parent_hash());
    assert_ne!(Some(&other), f.proposal.last_commit.as_ref());
    assert!(f.check(&f.with_last_commit(Some(other))).is_ok());
}

/// A proposal that does not extend the head — another height, another parent — is invalid.
#[test]
fn a_proposal_that_does_not_extend_the_head_is_invalid() {
    let f = Fixture::new();
    for height in [1, 3] {
        f.invalid("height", &f.changed(|b| b.header.height = height), "does not follow the head");
    }
    f.invalid("parent", &f.changed(|b| b.header.parent_hash = Hash::of(b"x")), "does not follow the head");
    f.invalid("parent", &f.changed(|b| b.header.parent_hash = Hash::ZERO), "does not follow the head");
}

/// A proposal by a key that is not a validator is invalid.
#[test]
fn a_proposal_from_a_stranger_is_invalid() {
    let f = Fixture::new();
    let stranger = Keypair::from_seed([9; 32]).public();
    f.invalid("proposer", &f.changed(|b| b.header.proposer = stranger), "is not a validator");
}

/// A proposal whose parent's commit is missing, for another block or height, forged, or
/// without enough power is invalid.
#[test]
fn a_proposal_without_a_valid_commit_of_the_parent_is_invalid() {
    let f = Fixture::new();
    let (k, chain, parent) = (&f.keys, f.chain.chain_id, f.parent_hash());
    f.invalid("missing", &f.with_last_commit(None), "last_commit must be present");
    let other_block = signed_commit(&[&k[0], &k[1], &k[2]], chain, 1, Hash::of(b"a sibling"));
    f.invalid("another block", &f.with_last_commit(Some(other_block)), "not for the parent block");
    let other_height = signed_commit(&[&k[0], &k[1], &k[2]], chain, 2, parent);
    f.invalid("another height", &f.with_last_commit(Some(other_height)), "not for the parent block");
    let mut forged = signed_commit(&[&k[0], &k[1], &k[2]], chain, 1, parent);
    forged.signatures[2].signature = Signature([3; 64]);
    f.invalid("forged", &f.with_last_commit(Some(forged)), "bad signature");
    let two_of_four = signed_commit(&[&k[0], &k[3]], chain, 1, parent);
    f.invalid("two of four", &f.with_last_commit(Some(two_of_four)), "more than 2/3");
    let other_chain = signed_commit(&[&k[0], &k[1], &k[2]], Hash::of(b"elsewhere"), 1, parent);
    f.invalid("another chain", &f.with_last_commit(Some(other_chain)), "bad signature");
}

/// A valid commit of the parent swapped in without the header naming it is invalid: the
/// header commits to the very commit the block carries.
#[test]
fn a_last_commit_the_header_does_not_name_is_invalid() {
    let f = Fixture::new();
    let k = &f.keys;
    let other = signed_commit(&[&k[1], &k[2], &k[3]], f.chain.chain_id, 1, f.parent_hash());
    f.invalid("swapped commit", &f.changed(|b| b.last_commit = Some(other)), "last_commit_hash");
}

/// A proposal whose header does not match its execution — state root, receipt root or count,
/// transaction root or count — is invalid.
#[test]
fn a_proposal_whose_roots_or_counts_are_wrong_is_invalid() {
    let f = Fixture::new();
    f.invalid("state root", &f.changed(|b| b.header.state_root = Hash::of(b"s")), "state_root");
    f.invalid("receipt root", &f.changed(|b| b.header.receipt_root = Hash::of(b"r")), "receipt_root");
    f.invalid("receipt count", &f.changed(|b| b.header.receipt_count = 1), "receipt_root");
    f.invalid("tx root", &f.changed(|b| b.header.tx_root = Hash::of(b"t")), "tx_root");
    f.invalid("tx count", &f.changed(|b| b.header.tx_count = 1), "tx_count");
    f.invalid("a tx dropped", &f.changed(|b| b.txs.truncate(1)), "tx_count");
}

/// A proposal of another chain or format version is invalid.
#[test]
fn a_proposal_of_another_chain_or_version_is_invalid() {
    let f = Fixture::new();
    f.invalid("chain", &f.changed(|b| b.header.chain_id = Hash::of(b"other")), "another chain");
    f.invalid("version", &f.changed(|b| b.header.version = FORMAT_VERSION + 1), "version");
}

/// A proposal holding a transaction that does not apply (a nonce already used, a forged
/// signature) is invalid, even with its structure right.
#[test]
fn a_proposal_with_a_failing_transaction_is_invalid() {
    let f = Fixture::new();
    let used = transfer(f.chain.chain_id, &f.client, 0);
    f.invalid("nonce used", &restructured(f.changed(|b| b.txs.push(used))), "transaction 2 does not apply");
    let Transaction::Account(mut forged) = f.proposal.txs[0].clone() else { panic!("a transfer") };
    forged.signature = Signature([7; 64]);
    let block = restructured(f.changed(|b| b.txs[0] = Transaction::Account(forged)));
    f.invalid("forged", &block, "transaction 0 does not apply");
}

/// A proposal with more transactions than a block may hold is invalid.
#[test]
fn a_proposal_over_block_txs_max_is_invalid() {
    let f = Fixture::new();
    let more: Vec<Transaction> = (3..5).map(|n| transfer(f.chain.chain_id, &f.client, n)).collect();
    let block = restructured(f.changed(|b| b.txs.extend(more)));
    assert_eq!(block.txs.len(), BLOCK_TXS_MAX as usize + 1);
    f.invalid("too many", &block, "too many transactions");
}

/// A finalized block is checked like a proposal and, besides, its own commit must finalize it.
#[test]
fn a_finalized_block_needs_its_own_commit() {
    let f = Fixture::new();
    let (k, chain, hash) = (&f.keys, f.chain.chain_id, f.proposal.hash());
    let finalized = |commit: &Commit| f.chain.base().check_finalized(f.proposal.clone(), commit, &mut NoVerdicts);
    assert!(finalized(&signed_commit(&[&k[0], &k[2], &k[3]], chain, 2, hash)).is_ok());
    let refused = [
        ("another block", signed_commit(&[&k[0], &k[1], &k[2]], chain, 2, f.parent_hash())),
        ("another height", signed_commit(&[&k[0], &k[1], &k[2]], chain, 3, hash)),
        ("two of four", signed_commit(&[&k[0], &k[1]], chain, 2, hash)),
        ("another chain", signed_commit(&[&k[0], &k[1], &k[2]], Hash::of(b"x"), 2, hash)),
    ];
    for (what, commit) in refused {
        assert!(matches!(finalized(&commit), Err(ExecError::Invalid(_))), "{what}");
    }
    let bad_block = f.changed(|b| b.header.state_root = Hash::of(b"s"));
    let commit = signed_commit(&[&k[0], &k[1], &k[2]], chain, 2, bad_block.hash());
    let result = f.chain.base().check_finalized(bad_block, &commit, &mut NoVerdicts);
    assert!(matches!(result, Err(ExecError::Invalid(e)) if e.contains("state_root")), "a commit makes no block valid");
}
