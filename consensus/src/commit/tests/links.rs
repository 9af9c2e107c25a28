//! Invalid block links: [`check_parent`] and [`check_link`] refuse a block for each field that
//! does not follow its parent (height, parent hash, proposer, the parent's commit) and a commit
//! that does not finalize the block itself (another block, another height, forged, not enough
//! power, another chain, not canonical).

use super::*;

/// The chain of these tests.
fn chain() -> Hash {
    Hash::of(b"links")
}

/// Four validators of power 1: three sign a quorum, two do not.
fn keys() -> Vec<Keypair> {
    (1..5).map(|i| Keypair::from_seed([i; 32])).collect()
}

/// A commit of `block_hash` at `height` (round 0) signed by `signers`: quorum or not.
fn signed_commit(signers: &[&Keypair], chain_id: Hash, height: u64, block_hash: Hash) -> Commit {
    Commit::signed_by(signers, chain_id, height, 0, block_hash)
}

/// A quorum commit (three of four) of `block_hash` at `height` on [`chain`].
fn quorum_commit(keys: &[Keypair], height: u64, block_hash: Hash) -> Commit {
    signed_commit(&[&keys[0], &keys[1], &keys[2]], chain(), height, block_hash)
}

fn header(height: u64, parent_hash: Hash, proposer: PublicKey) -> BlockHeader {
    BlockHeader {
        version: FORMAT_VERSION,
        chain_id: chain(),
        height,
        parent_hash,
        time_ms: 1_000 + height,
        proposer,
        tx_root: Hash::ZERO,
        receipt_root: Hash::ZERO,
        state_root: Hash::of(&height.to_be_bytes()),
        last_commit_hash: Hash::ZERO,
        tx_count: 0,
        receipt_count: 0,
    }
}

/// A parent at height 5 and a block at height 6 that extends it, with the parent's commit,
/// and the block's own commit.
struct Link {
    keys: Vec<Keypair>,
    validators: ValidatorSet,
    parent: BlockHeader,
    block: Block,
    commit: Commit,
}

impl Link {
    fn new() -> Link {
        let keys = keys();
        let validators = set(&keys);
        let parent = header(5, Hash::of(b"grandparent"), keys[3].public());
        let last_commit = quorum_commit(&keys, 5, parent.hash());
        let block =
            Block { header: header(6, parent.hash(), keys[1].public()), txs: vec![], last_commit: Some(last_commit) };
        let commit = quorum_commit(&keys, 6, block.hash());
        Link { keys, validators, parent, block, commit }
    }

    fn check_parent(&self, block: &Block) -> Result<()> {
        check_parent(chain(), &self.validators, Some(&self.parent), block)
    }

    /// `block` with its own commit re-signed for it, so only the field under test is wrong.
    fn check_link(&self, block: &Block) -> Result<()> {
        let commit = quorum_commit(&self.keys, block.header.height, block.hash());
        check_link(chain(), &self.validators, Some(&self.parent), block, &commit)
    }

    fn with_last_commit(&self, last_commit: Option<Commit>) -> Block {
        Block { last_commit, ..self.block.clone() }
    }
}

/// `r` is a refusal whose reason says `why`.
fn invalid(r: Result<()>, why: &str) {
    assert_invalid("", r, why);
}

fn assert_invalid(case: &str, r: Result<()>, why: &str) {
    match r {
        Err(ConsensusError::Invalid(e)) => {
            assert!(e.contains(why), "{case}: refused for another reason: {e} (wanted: {why})");
        }
        other => panic!("{case}: wanted Invalid({why}), got {other:?}"),
    }
}

/// The link built for these tests is valid: otherwise every refusal below would prove
/// nothing. The first block (no parent, no last commit) is valid too.
#[test]
fn a_block_that_extends_its_parent_passes_both_checks() {
    let l = Link::new();
    assert_eq!(l.check_parent(&l.block), Ok(()));
    assert_eq!(check_link(chain(), &l.validators, Some(&l.parent), &l.block, &l.commit), Ok(()));
    let first = Block { header: header(1, Hash::ZERO, l.keys[0].public()), txs: vec![], last_commit: None };
    let commit = quorum_commit(&l.keys, 1, first.hash());
    assert_eq!(check_parent(chain(), &l.validators, None, &first), Ok(()));
    assert_eq!(check_link(chain(), &l.validators, None, &first, &commit), Ok(()));
}

/// A block whose height is not its parent's + 1 is refused, below or above, and so is a
/// first block at any height but 1.
#[test]
fn a_block_at_the_wrong_height_is_refused() {
    let l = Link::new();
    for height in [0, 5, 7, u64::MAX] {
        let mut block = l.block.clone();
        block.header.height = height;
        invalid(l.check_parent(&block), "does not follow the head");
        invalid(l.check_link(&block), "does not follow the head");
    }
    let mut first = Block { header: header(2, Hash::ZERO, l.keys[0].public()), txs: vec![], last_commit: None };
    invalid(check_parent(chain(), &l.validators, None, &first), "does not follow the head");
    first.header.height = 0;
    invalid(check_parent(chain(), &l.validators, None, &first), "does not follow the head");
}

/// A block that names another parent (the grandparent, zero, anything) is refused; so is a
/// first block whose parent hash is not zero.
#[test]
fn a_block_with_the_wrong_parent_hash_is_refused() {
    let l = Link::new();
    for parent_hash in [Hash::ZERO, l.parent.parent_hash, Hash::of(b"elsewhere")] {
        let mut block = l.block.clone();
        block.header.parent_hash = parent_hash;
        invalid(l.check_parent(&block), "does not follow the head");
        invalid(l.check_link(&block), "does not follow the head");
    }
    let first = Block { header: header(1, Hash::of(b"x"), l.keys[0].public()), txs: vec![], last_commit: None };
    invalid(check_parent(chain(), &l.validators, None, &first), "does not follow the head");
}

/// A block proposed by a key that is not a validator is refused.
#[test]
fn a_block_from_a_proposer_that_is_not_a_validator_is_refused() {
    let l = Link::new();
    let stranger = Keypair::from_seed([9; 32]).public();
    let mut block = l.block.clone();
    block.header.proposer = stranger;
    assert_eq!(l.check_parent(&block), Err(ConsensusError::NotValidator(stranger)));
    assert_eq!(l.check_link(&block), Err(ConsensusError::NotValidator(stranger)));
}

/// After height 1 a block must carry its parent's commit; at height 1 it must not carry one.
#[test]
fn a_missing_or_unexpected_last_commit_is_refused() {
    let l = Link::new();
    invalid(l.check_parent(&l.with_last_commit(None)), "last_commit must be present exactly after height 1");
    invalid(l.check_link(&l.with_last_commit(None)), "last_commit must be present exactly after height 1");
    let first = Block {
        header: header(1, Hash::ZERO, l.keys[0].public()),
        txs: vec![],
        last_commit: Some(quorum_commit(&l.keys, 0, Hash::ZERO)),
    };
    invalid(check_parent(chain(), &l.validators, None, &first), "last_commit must be present exactly after height 1");
}

/// A last commit validly signed, but for another block or another height than the parent's,
/// does not finalize the parent.
#[test]
fn a_last_commit_for_another_block_or_height_is_refused() {
    let l = Link::new();
    let other_block = quorum_commit(&l.keys, 5, Hash::of(b"a sibling of the parent"));
    invalid(l.check_parent(&l.with_last_commit(Some(other_block))), "last_commit is not for the parent block");
    let other_height = quorum_commit(&l.keys, 4, l.parent.hash());
    invalid(l.check_parent(&l.with_last_commit(Some(other_height))), "last_commit is not for the parent block");
    // The block's own commit is not its parent's.
    let own = l.commit.clone();
    invalid(l.check_parent(&l.with_last_commit(Some(own))), "last_commit is not for the parent block");
}

/// A last commit for the parent that does not verify is refused: a forged signature, a
/// signer that is not a validator, too little power, signatures for another chain, out of
/// order or repeated, another format version.
#[test]
fn a_forged_or_insufficient_last_commit_is_refused() {
    let l = Link::new();
    let (p, k) = (l.parent.hash(), &l.keys);
    let mut forged = quorum_commit(k, 5, p);
    forged.signatures[1].signature.0[0] ^= 1;
    let stranger = Keypair::from_seed([9; 32]);
    let with_stranger = signed_commit(&[&k[0], &k[1], &stranger], chain(), 5, p);
    let two_of_four = signed_commit(&[&k[0], &k[1]], chain(), 5, p);
    let other_chain = signed_commit(&[&k[0], &k[1], &k[2]], Hash::of(b"another chain"), 5, p);
    let mut unsorted = quorum_commit(k, 5, p);
    unsorted.signatures.swap(0, 2);
    let mut repeated = two_of_four.clone();
    repeated.signatures.push(repeated.signatures[1].clone());
    let mut version = quorum_commit(k, 5, p);
    version.version = FORMAT_VERSION + 1;
    let cases = [
        ("a forged signature", forged, "bad signature"),
        ("a signer that is not a validator", with_stranger, "is not a validator"),
        ("two of four validators", two_of_four, "more than 2/3"),
        ("signed for another chain", other_chain, "bad signature"),
        ("unsorted signatures", unsorted, "sorted by validator"),
        ("a repeated signature", repeated, "sorted by validator"),
        ("another format version", version, "version"),
    ];
    for (what, last_commit, why) in cases {
        let block = l.with_last_commit(Some(last_commit));
        assert_invalid(what, l.check_parent(&block), why);
        assert_invalid(what, l.check_link(&block), why);
    }
}

/// `check_link` also wants the block's own commit to finalize that very block: a commit for
/// another block or height, forged, without quorum or for another chain is refused, even
/// though the link to the parent is fine.
#[test]
fn a_commit_that_does_not_finalize_the_block_itself_is_refused() {
    let l = Link::new();
    let (b, k) = (l.block.hash(), &l.keys);
    let link = |commit: &Commit| check_link(chain(), &l.validators, Some(&l.parent), &l.block, commit);
    invalid(link(&quorum_commit(k, 6, Hash::of(b"another block"))), "the commit is not for this block");
    invalid(link(&quorum_commit(k, 7, b)), "the commit is not for this block");
    // The parent's commit is not the block's.
    invalid(link(l.block.last_commit.as_ref().expect("a last commit")), "the commit is not for this block");
    let mut forged = l.commit.clone();
    forged.signatures[0].signature.0[0] ^= 1;
    invalid(link(&forged), "bad signature");
    let two_of_four = signed_commit(&[&k[2], &k[3]], chain(), 6, b);
    invalid(link(&two_of_four), "more than 2/3");
    let other_chain = signed_commit(&[&k[0], &k[1], &k[2]], Hash::of(b"another chain"), 6, b);
    invalid(link(&other_chain), "bad signature");
    // The same commit for the right block passes: the refusals above are about the commit.
    assert_eq!(link(&l.commit), Ok(()));
}
