//! Gossip validation, topic by topic: what each pure validator accepts, what it rejects (the
//! sender is to blame: penalised) and what it ignores (the sender may be honest). The
//! consensus topic's validator is [`Bft::check_gossip`]. What the handlers decide, and the
//! peer scores that follow, are shown over real swarms in [`net`].

use cairn_consensus::message::{PolkaCertificate, RoundCertificate, RoundCertificateKind, RoundVote};
use cairn_consensus::{
    ConsensusMessage, ConsensusParams, Engine, HEIGHTS_AHEAD_MAX, Proposal, SignedProposal, SignedVote,
};
use cairn_ledger::{
    Action, Block, BlockHeader, ChainParams, Commit, CommitSignature, FORMAT_VERSION, Genesis, GenesisAccount,
    GenesisProvider, JobOffer, JobStatus, Keypair, ResultClaim, SignedOffer, Tx, Validator, ValidatorSet, Vote,
    VoteKind,
};

use super::*;
use crate::bft::{Bft, GossipVerdict};
use crate::p2p::CONSENSUS_MESSAGE_BYTES_MAX;

mod net;

/// A chain of four validators (power 1 each), a funded client and a registered provider.
struct TestChain {
    genesis: Genesis,
    chain_id: Hash,
    validators: ValidatorSet,
    keys: Vec<Keypair>,
    client: Keypair,
    provider: Keypair,
}

impl TestChain {
    fn new() -> TestChain {
        let keys: Vec<Keypair> = (1..5).map(|i| Keypair::from_seed([i; 32])).collect();
        let client = Keypair::from_seed([10; 32]);
        let provider = Keypair::from_seed([20; 32]);
        let genesis = Genesis {
            version: FORMAT_VERSION,
            chain_name: "gossip".into(),
            genesis_time_ms: 0,
            validators: keys.iter().map(|k| Validator { address: k.public(), power: 1 }).collect(),
            accounts: vec![GenesisAccount { address: client.public(), balance: 1_000_000_000 }],
            providers: vec![GenesisProvider {
                address: provider.public(),
                price_per_fuel: 1,
                stake: 10_000,
                capacity: 10,
                region: String::new(),
            }],
            params: ChainParams::default(),
        };
        let chain_id = genesis.chain_id();
        let validators = genesis.validator_set().expect("validators");
        TestChain { genesis, chain_id, validators, keys, client, provider }
    }

    /// A transfer of 1 from `from` on this chain.
    fn transfer(&self, from: &Keypair, nonce: u64) -> Transaction {
        transfer_on(self.chain_id, from, nonce)
    }

    /// The client's offer (input `input_len` bytes), assignable at heights 1 and 2.
    fn offer(&self, nonce: u64, input_len: usize) -> SignedOffer {
        let offer = JobOffer {
            version: FORMAT_VERSION,
            chain_id: self.chain_id,
            client: self.client.public(),
            nonce,
            fee: 1,
            module_id: Hash::of(b"a module"),
            input: vec![7; input_len],
            fuel_limit: 1_000,
            max_price: 1,
            redundancy: 1,
            assignment_height: 0,
            deadline_height: 100,
            placement: cairn_ledger::Placement::Anywhere,
            input_blob: None,
        };
        offer.sign(&self.client)
    }

    /// The provider's result for `job_id`, its output `output_len` bytes.
    fn result(&self, job_id: Hash, output_len: usize) -> JobResult {
        let output = vec![1; output_len];
        let claim = ResultClaim {
            version: FORMAT_VERSION,
            job_id,
            module_id: Hash::of(b"a module"),
            input_hash: Hash::of(b"an input"),
            output_hash: Hash::of(&output),
            fuel_used: 10,
            status: JobStatus::Ok,
            provider: self.provider.public(),
        };
        JobResult::new(claim, output, &self.provider)
    }

    /// A commit of `block_hash` at `height` signed by `signers` on this chain.
    fn commit(&self, signers: &[usize], height: u64, block_hash: Hash) -> Commit {
        let keys: Vec<&Keypair> = signers.iter().map(|&i| &self.keys[i]).collect();
        signed_commit(&keys, self.chain_id, height, block_hash)
    }

    /// A block at `height` (its contents do not matter to gossip validation) by validator
    /// `proposer`; `salt` makes blocks of one height differ.
    fn block(&self, height: u64, proposer: usize, salt: u64) -> Block {
        let header = BlockHeader {
            version: FORMAT_VERSION,
            chain_id: self.chain_id,
            height,
            parent_hash: Hash::of(&(height - 1).to_be_bytes()),
            time_ms: salt,
            proposer: self.keys[proposer].public(),
            tx_root: cairn_ledger::merkle::root(&[]),
            receipt_root: Hash::ZERO,
            state_root: Hash::ZERO,
            last_commit_hash: Hash::of_borsh(&None::<Commit>),
            tx_count: 0,
            receipt_count: 0,
        };
        Block { header, txs: vec![], last_commit: None }
    }

    /// A signed vote of validator `by` at `height` and `round` (nil unless `block_hash`).
    fn vote(&self, by: usize, kind: VoteKind, height: u64, round: u32, block_hash: Option<Hash>) -> SignedVote {
        let vote = Vote {
            version: FORMAT_VERSION,
            chain_id: self.chain_id,
            kind,
            height,
            round,
            block_hash,
            validator: self.keys[by].public(),
        };
        SignedVote::sign(&self.keys[by], vote)
    }

    /// The index of the validator that proposes at `height`, `round`.
    fn proposer(&self, height: u64, round: u32) -> usize {
        let p = cairn_consensus::proposer(&self.validators, height, round);
        self.keys.iter().position(|k| k.public() == p).expect("a validator")
    }

    /// A proposal of `block_hash` at `height`, round 0, signed by validator `by`.
    fn proposal(&self, by: usize, height: u64, block_hash: Hash) -> Vec<u8> {
        let proposal = Proposal::new(self.chain_id, height, 0, block_hash, None, self.keys[by].public());
        ConsensusMessage::Proposal(SignedProposal::sign(&self.keys[by], proposal)).encode()
    }
}

fn transfer_on(chain_id: Hash, from: &Keypair, nonce: u64) -> Transaction {
    let action = Action::Transfer { to: Keypair::from_seed([30; 32]).public(), amount: 1 };
    let tx = Tx { version: FORMAT_VERSION, chain_id, sender: from.public(), nonce, fee: 1, action };
    Transaction::Account(tx.sign(from))
}

/// A commit of `block_hash` at `height` (round 0) signed by `signers`: quorum or not.
fn signed_commit(signers: &[&Keypair], chain_id: Hash, height: u64, block_hash: Hash) -> Commit {
    Commit::signed_by(signers, chain_id, height, 0, block_hash)
}

fn tx_batch_bytes(version: u8, txs: Vec<Transaction>) -> Vec<u8> {
    borsh::to_vec(&TxBatch { version, sent_ms: 1, txs }).expect("encodes")
}

fn result_batch_bytes(version: u8, results: Vec<JobResult>) -> Vec<u8> {
    borsh::to_vec(&ResultBatch { version, sent_ms: 1, results }).expect("encodes")
}

fn block_msg_bytes(version: u8, block: Block, commit: Commit) -> Vec<u8> {
    borsh::to_vec(&BlockMsg { version, block, commit }).expect("encodes")
}

fn announce_bytes(version: u8, module_id: Hash) -> Vec<u8> {
    borsh::to_vec(&ModuleAnnounce { version, module_id }).expect("encodes")
}

fn proposed_bytes(version: u8, block: Block) -> Vec<u8> {
    borsh::to_vec(&ProposedBlock { version, block }).expect("encodes")
}

/// Bytes that are not the encoding of anything: garbage, nothing, a valid encoding cut short
/// or followed by one more byte.
fn undecodable(valid: &[u8]) -> Vec<Vec<u8>> {
    let mut longer = valid.to_vec();
    longer.push(0);
    vec![b"garbage".to_vec(), Vec::new(), valid[..valid.len() - 1].to_vec(), longer]
}

/// The encoding of `make(n)` for the `n` that makes it exactly `len` bytes (the variable part
/// is a byte vector of length `n`).
fn of_length(len: usize, make: impl Fn(usize) -> Vec<u8>) -> Vec<u8> {
    let bytes = make(len - make(0).len());
    assert_eq!(bytes.len(), len);
    bytes
}

/// A batch of offers and account transactions is refused for being over its byte limit (one
/// byte over, not at it), undecodable, of another wire version, over the item limit (one item
/// over, not at it), or carrying a result or a resolution; an empty batch passes (there is
/// nothing in it to admit, so the handler ignores it).
#[test]
fn tx_batches_are_rejected_for_what_the_sender_could_have_checked() {
    let c = TestChain::new();
    let valid = tx_batch_bytes(WIRE_VERSION, vec![c.transfer(&c.client, 0), Transaction::Offer(c.offer(1, 10))]);
    assert_eq!(tx_batch(&valid).map(|b| b.txs.len()), Ok(2));
    assert_eq!(tx_batch(&tx_batch_bytes(WIRE_VERSION, vec![])).map(|b| b.txs.len()), Ok(0));

    let sized = |n| tx_batch_bytes(WIRE_VERSION, vec![Transaction::Offer(c.offer(0, n))]);
    assert!(tx_batch(&of_length(BATCH_MESSAGE_BYTES_MAX, sized)).is_ok(), "at the byte limit");
    assert_eq!(tx_batch(&of_length(BATCH_MESSAGE_BYTES_MAX + 1, sized)).err(), Some(Refused::Reject));

    let one = c.transfer(&c.client, 0);
    let many = |n: usize| vec![one.clone(); n];
    assert!(tx_batch(&tx_batch_bytes(WIRE_VERSION, many(BATCH_ITEMS_MAX))).is_ok(), "at the item limit");
    assert_eq!(tx_batch(&tx_batch_bytes(WIRE_VERSION, many(BATCH_ITEMS_MAX + 1))).err(), Some(Refused::Reject));

    for bytes in undecodable(&valid) {
        assert_eq!(tx_batch(&bytes).err(), Some(Refused::Reject), "undecodable {bytes:?}");
    }
    for version in [0, WIRE_VERSION + 1] {
        let bytes = tx_batch_bytes(version, vec![c.transfer(&c.client, 0)]);
        assert_eq!(tx_batch(&bytes).err(), Some(Refused::Reject), "version {version}");
    }
    let result = Transaction::Result(c.result(Hash::of(b"job"), 4));
    let resolve = Transaction::Resolve { job_id: Hash::of(b"job") };
    for tx in [result, resolve] {
        let bytes = tx_batch_bytes(WIRE_VERSION, vec![c.transfer(&c.client, 0), tx]);
        assert_eq!(tx_batch(&bytes).err(), Some(Refused::Reject), "not an offer or account transaction");
    }
}

/// A batch of results is refused for being over its byte limit (not at it), undecodable, of
/// another wire version, or over the item limit (not at it); an empty batch passes.
#[test]
fn result_batches_are_rejected_for_what_the_sender_could_have_checked() {
    let c = TestChain::new();
    let valid = result_batch_bytes(WIRE_VERSION, vec![c.result(Hash::of(b"a"), 3), c.result(Hash::of(b"b"), 0)]);
    assert_eq!(result_batch(&valid).map(|b| b.results.len()), Ok(2));
    assert_eq!(result_batch(&result_batch_bytes(WIRE_VERSION, vec![])).map(|b| b.results.len()), Ok(0));

    let sized = |n| result_batch_bytes(WIRE_VERSION, vec![c.result(Hash::of(b"a"), n)]);
    assert!(result_batch(&of_length(BATCH_MESSAGE_BYTES_MAX, sized)).is_ok(), "at the byte limit");
    assert_eq!(result_batch(&of_length(BATCH_MESSAGE_BYTES_MAX + 1, sized)).err(), Some(Refused::Reject));

    let one = c.result(Hash::of(b"a"), 1);
    let many = |n: usize| vec![one.clone(); n];
    assert!(result_batch(&result_batch_bytes(WIRE_VERSION, many(BATCH_ITEMS_MAX))).is_ok(), "at the item limit");
    let over = result_batch_bytes(WIRE_VERSION, many(BATCH_ITEMS_MAX + 1));
    assert_eq!(result_batch(&over).err(), Some(Refused::Reject));

    for bytes in undecodable(&valid) {
        assert_eq!(result_batch(&bytes).err(), Some(Refused::Reject), "undecodable {bytes:?}");
    }
    for version in [0, WIRE_VERSION + 1] {
        let bytes = result_batch_bytes(version, vec![one.clone()]);
        assert_eq!(result_batch(&bytes).err(), Some(Refused::Reject), "version {version}");
    }
}

/// A finalized block passes with a commit of more than 2/3 of the power for that very block
/// (of any height: stale and ahead are the handler's business) and is refused for being over
/// the byte limit (not at it), undecodable, of another wire version, or with a commit for
/// another block or height, forged, without quorum, from strangers, for another chain, not in
/// canonical order or of another format version.
/// The messages a node sends, written from borrowed parts, are byte for byte the documented
/// envelopes.
#[test]
fn messages_written_from_borrowed_parts_are_the_wire_envelopes() {
    let c = TestChain::new();
    let mut block = c.block(5, 0, 0);
    block.txs = vec![Transaction::Offer(c.offer(0, 40))];
    let block = restructured(block);
    let commit = c.commit(&[0, 1, 2], 5, block.hash());
    assert_eq!(block_message(&block, &commit), block_msg_bytes(WIRE_VERSION, block.clone(), commit));
    assert_eq!(proposal_message(&block), proposed_bytes(WIRE_VERSION, block));
}

#[test]
fn finalized_blocks_are_rejected_unless_their_commit_finalizes_them() {
    let c = TestChain::new();
    let check = |bytes: &[u8]| finalized_block(bytes, c.chain_id, &c.validators, 0).map(|m| m.block.header.height);
    let block = c.block(5, 0, 0);
    let hash = block.hash();
    let valid = block_msg_bytes(WIRE_VERSION, block.clone(), c.commit(&[0, 1, 2], 5, hash));
    assert_eq!(check(&valid), Ok(5));
    // At or below the head: ignored before any signature is checked (a forged one too).
    let mut forged = c.commit(&[0, 1, 2], 5, hash);
    forged.signatures[0].signature.0[0] ^= 1;
    for bytes in [valid.clone(), block_msg_bytes(WIRE_VERSION, block.clone(), forged)] {
        assert_eq!(finalized_block(&bytes, c.chain_id, &c.validators, 5).map(|_| ()), Err(Refused::Ignore));
    }
    // ... on its header alone: the rest is not even decoded.
    let header_then_junk = [&[WIRE_VERSION][..], &borsh::to_vec(&block.header).expect("encodes"), b"junk"].concat();
    assert_eq!(finalized_block(&header_then_junk, c.chain_id, &c.validators, 5).map(|_| ()), Err(Refused::Ignore));
    assert_eq!(check(&header_then_junk), Err(Refused::Reject), "above the head, decoded and refused");
    for height in [1, 1_000] {
        let b = c.block(height, 0, 0);
        let commit = c.commit(&[1, 2, 3], height, b.hash());
        assert_eq!(check(&block_msg_bytes(WIRE_VERSION, b, commit)), Ok(height), "any height passes here");
    }

    // A big block, signed: the limit is on the message's bytes.
    let sized = |n| {
        let mut b = block.clone();
        b.txs = vec![Transaction::Offer(c.offer(0, n))];
        let b = restructured(b);
        let commit = c.commit(&[0, 1, 2], 5, b.hash());
        block_msg_bytes(WIRE_VERSION, b, commit)
    };
    assert!(check(&of_length(GOSSIP_MESSAGE_BYTES_MAX, sized)).is_ok(), "at the byte limit");
    assert_eq!(check(&of_length(GOSSIP_MESSAGE_BYTES_MAX + 1, sized)), Err(Refused::Reject));

    for bytes in undecodable(&valid) {
        assert_eq!(check(&bytes), Err(Refused::Reject), "undecodable");
    }
    let version = block_msg_bytes(WIRE_VERSION + 1, block.clone(), c.commit(&[0, 1, 2], 5, hash));
    assert_eq!(check(&version), Err(Refused::Reject), "wire version");

    let stranger = Keypair::from_seed([99; 32]);
    let mut forged = c.commit(&[0, 1, 2], 5, hash);
    forged.signatures[1].signature.0[0] ^= 1;
    let mut unsorted = c.commit(&[0, 1, 2], 5, hash);
    unsorted.signatures.reverse();
    let mut commit_version = c.commit(&[0, 1, 2], 5, hash);
    commit_version.version = FORMAT_VERSION + 1;
    let bad_commits = [
        ("for another block", c.commit(&[0, 1, 2], 5, Hash::of(b"another block"))),
        ("for another height", c.commit(&[0, 1, 2], 6, hash)),
        ("forged", forged),
        ("two of four", c.commit(&[0, 3], 5, hash)),
        ("with a stranger", signed_commit(&[&c.keys[0], &c.keys[1], &stranger], c.chain_id, 5, hash)),
        ("for another chain", signed_commit(&[&c.keys[0], &c.keys[1], &c.keys[2]], Hash::of(b"x"), 5, hash)),
        ("unsorted", unsorted),
        ("commit version", commit_version),
    ];
    for (what, commit) in bad_commits {
        assert_eq!(check(&block_msg_bytes(WIRE_VERSION, block.clone(), commit)), Err(Refused::Reject), "{what}");
    }

    // The commit signs the header; transactions that are not the header's are refused.
    let mut swapped = block.clone();
    swapped.txs = vec![c.transfer(&c.keys[0], 0)];
    assert_eq!(swapped.hash(), hash, "the same header");
    let commit = c.commit(&[0, 1, 2], 5, hash);
    assert_eq!(check(&block_msg_bytes(WIRE_VERSION, swapped, commit)), Err(Refused::Reject), "another body");
}

/// A module announcement is refused for being over its byte limit, undecodable or of another
/// wire version.
#[test]
fn module_announcements_are_rejected_unless_well_formed() {
    let id = Hash::of(b"module");
    let valid = announce_bytes(WIRE_VERSION, id);
    assert_eq!(module_announce(&valid).map(|m| m.module_id), Ok(id));
    assert_eq!(module_announce(&[1; MODULE_ANNOUNCE_BYTES_MAX + 1]).err(), Some(Refused::Reject));
    for bytes in undecodable(&valid) {
        assert_eq!(module_announce(&bytes).err(), Some(Refused::Reject), "undecodable {bytes:?}");
    }
    for version in [0, WIRE_VERSION + 1] {
        assert_eq!(module_announce(&announce_bytes(version, id)).err(), Some(Refused::Reject), "version {version}");
    }
}

/// A proposed block is refused for being over the byte limit (not at it), undecodable, of
/// another wire version, of another chain or by a proposer that is not a validator; one of a
/// stored height or further ahead than the engine looks is only ignored (the sender may be
/// an honest node behind or ahead of this one).
#[test]
fn proposed_blocks_are_rejected_or_ignored() {
    let c = TestChain::new();
    let head = 7;
    let check = |bytes: &[u8]| proposed_block(bytes, c.chain_id, &c.validators, head).map(|m| m.block.header.height);
    let valid = proposed_bytes(WIRE_VERSION, c.block(head + 1, 1, 0));
    assert_eq!(check(&valid), Ok(head + 1));
    let last = head + 1 + HEIGHTS_AHEAD_MAX;
    assert_eq!(check(&proposed_bytes(WIRE_VERSION, c.block(last, 1, 0))), Ok(last));

    for height in [1, head, last + 1, u64::MAX] {
        assert_eq!(check(&proposed_bytes(WIRE_VERSION, c.block(height, 1, 0))), Err(Refused::Ignore), "{height}");
        // Judged on the header alone: the rest is not even decoded.
        let header = borsh::to_vec(&c.block(height, 1, 0).header).expect("encodes");
        let header_then_junk = [&[WIRE_VERSION][..], &header, b"junk"].concat();
        assert_eq!(check(&header_then_junk), Err(Refused::Ignore), "{height}");
    }

    let sized = |n| {
        let mut b = c.block(head + 1, 1, 0);
        b.txs = vec![Transaction::Offer(c.offer(0, n))];
        proposed_bytes(WIRE_VERSION, restructured(b))
    };
    assert!(check(&of_length(GOSSIP_MESSAGE_BYTES_MAX, sized)).is_ok(), "at the byte limit");
    assert_eq!(check(&of_length(GOSSIP_MESSAGE_BYTES_MAX + 1, sized)), Err(Refused::Reject));
    for bytes in undecodable(&valid) {
        assert_eq!(check(&bytes), Err(Refused::Reject), "undecodable");
    }
    let version = proposed_bytes(WIRE_VERSION + 1, c.block(head + 1, 1, 0));
    assert_eq!(check(&version), Err(Refused::Reject), "wire version");
    let mut other_chain = c.block(head + 1, 1, 0);
    other_chain.header.chain_id = Hash::of(b"another chain");
    assert_eq!(check(&proposed_bytes(WIRE_VERSION, other_chain)), Err(Refused::Reject), "another chain");
    let mut stranger = c.block(head + 1, 1, 0);
    stranger.header.proposer = Keypair::from_seed([99; 32]).public();
    assert_eq!(check(&proposed_bytes(WIRE_VERSION, stranger)), Err(Refused::Reject), "not a validator");
    // Rejections come before the height: a stale block from another chain is still the
    // sender's fault.
    let mut stale_other_chain = c.block(1, 1, 0);
    stale_other_chain.header.chain_id = Hash::of(b"another chain");
    assert_eq!(check(&proposed_bytes(WIRE_VERSION, stale_other_chain)), Err(Refused::Reject));
    // A proposal signs the header's hash: another body under the same header is refused
    // (it would pass for the proposed block and make validators vote nil).
    let mut swapped = c.block(head + 1, 1, 0);
    swapped.txs = vec![c.transfer(&c.keys[0], 0)];
    assert_eq!(check(&proposed_bytes(WIRE_VERSION, swapped)), Err(Refused::Reject), "another body");
}

/// `block` with its transaction count and root matching its transactions again.
fn restructured(mut block: Block) -> Block {
    block.header.tx_count = u32::try_from(block.txs.len()).expect("few");
    let leaves: Vec<Hash> = block.txs.iter().map(Transaction::leaf_hash).collect();
    block.header.tx_root = cairn_ledger::merkle::root(&leaves);
    block
}

/// A validator's consensus gossip check, with the engine not started (as on a node that
/// just started): what `bft`'s own tests leave out.
fn bft(c: &TestChain) -> Bft {
    Bft::new(
        Engine::new(c.keys[0].clone(), c.chain_id, c.validators.clone(), ConsensusParams::default()).expect("engine"),
    )
}

fn rejected(v: GossipVerdict) -> bool {
    matches!(v, GossipVerdict::Reject(_))
}

/// Consensus messages: another wire version, trailing bytes, nothing at all, or over the size
/// limit are rejected; so are a proposal from a validator that is not the round's proposer or
/// with a forged signature, and certificates without enough power, out of order, or a
/// precommit certificate holding a prevote. A valid polka, a valid skip certificate and the
/// round's proposal pass; the same proposal for a stored height or further ahead is ignored.
#[test]
fn consensus_messages_are_rejected_or_ignored() {
    let c = TestChain::new();
    let b = bft(&c);
    let head = 3;
    let (h, block) = (head + 1, Hash::of(b"block"));
    let check = |bytes: &[u8]| b.check_gossip(head, bytes);

    let proposer = c.proposer(h, 0);
    let proposal = c.proposal(proposer, h, block);
    assert!(matches!(check(&proposal), GossipVerdict::Accept(_)));
    let mut version = proposal.clone();
    version[0] = cairn_consensus::message::MESSAGE_VERSION + 1;
    assert!(rejected(check(&version)), "wire version");
    let mut longer = proposal.clone();
    longer.push(0);
    assert!(rejected(check(&longer)), "trailing bytes");
    assert!(rejected(check(&[])), "nothing");
    assert!(rejected(check(&proposal[..proposal.len() - 1])), "cut short");
    assert!(rejected(check(&vec![1; CONSENSUS_MESSAGE_BYTES_MAX + 1])), "over the size limit");

    let other = (proposer + 1) % c.keys.len();
    assert!(rejected(check(&c.proposal(other, h, block))), "not the round's proposer");
    let mut forged = proposal.clone();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    assert!(rejected(check(&forged)), "forged");

    // Certificates.
    let prevote_sigs = |signers: &[usize]| {
        let mut sigs: Vec<CommitSignature> = signers
            .iter()
            .map(|&i| {
                let v = c.vote(i, VoteKind::Prevote, h, 0, Some(block));
                CommitSignature { validator: v.vote.validator, signature: v.signature }
            })
            .collect();
        sigs.sort_by_key(|s| s.validator);
        sigs
    };
    let polka = |signatures| {
        ConsensusMessage::PolkaCertificate(PolkaCertificate { height: h, round: 0, block_hash: block, signatures })
            .encode()
    };
    assert!(matches!(check(&polka(prevote_sigs(&[0, 1, 2]))), GossipVerdict::Accept(_)));
    // Once verified, the same certificate sent again is dropped unchecked, even for a height
    // the engine has not reached (where it cannot tell it has one already).
    let mut remembering = bft(&c);
    let cert = polka(prevote_sigs(&[0, 1, 2]));
    let GossipVerdict::Accept(verified) = remembering.check_gossip(head, &cert) else { panic!("verified") };
    remembering.verified(&verified, &cert);
    assert!(matches!(remembering.check_gossip(head, &cert), GossipVerdict::Ignore));
    assert!(matches!(remembering.check_gossip(head, &polka(prevote_sigs(&[0, 1, 3]))), GossipVerdict::Accept(_)));
    assert!(rejected(check(&polka(prevote_sigs(&[0, 1])))), "a polka of two of four");
    let mut unsorted = prevote_sigs(&[0, 1, 2]);
    unsorted.reverse();
    assert!(rejected(check(&polka(unsorted))), "an unsorted polka");
    let round_votes = |kind: VoteKind, signers: &[usize]| {
        let mut votes: Vec<RoundVote> = signers
            .iter()
            .map(|&i| {
                let v = c.vote(i, kind, h, 1, None);
                RoundVote { kind, block_hash: None, validator: v.vote.validator, signature: v.signature }
            })
            .collect();
        votes.sort_by_key(|v| v.validator);
        votes
    };
    let round_cert = |kind, votes| {
        ConsensusMessage::RoundCertificate(RoundCertificate { height: h, round: 1, kind, votes }).encode()
    };
    let skip = RoundCertificateKind::Skip;
    assert!(matches!(check(&round_cert(skip, round_votes(VoteKind::Prevote, &[0, 1]))), GossipVerdict::Accept(_)));
    assert!(rejected(check(&round_cert(skip, round_votes(VoteKind::Prevote, &[3])))), "a skip of one of four");
    let precommit = RoundCertificateKind::Precommit;
    let mut mixed = round_votes(VoteKind::Precommit, &[0, 1]);
    mixed.extend(round_votes(VoteKind::Prevote, &[2]));
    mixed.sort_by_key(|v| v.validator);
    assert!(rejected(check(&round_cert(precommit, mixed))), "a precommit certificate with a prevote");

    // Not the sender's fault: a stored height, too far ahead (which tells this node it has
    // blocks to fetch).
    for height in [1, head] {
        let p = c.proposal(c.proposer(height, 0), height, block);
        assert!(matches!(check(&p), GossipVerdict::Ignore), "height {height}");
    }
    let far = head + 2 + HEIGHTS_AHEAD_MAX;
    let p = c.proposal(c.proposer(far, 0), far, block);
    assert!(matches!(check(&p), GossipVerdict::Ahead { height } if height == far));
    // But a signature that fails is the sender's own, however far ahead.
    let mut forged_far = p.clone();
    let last = forged_far.len() - 1;
    forged_far[last] ^= 1;
    assert!(rejected(check(&forged_far)), "forged, far ahead");
    let mut vote_far = c.vote(0, VoteKind::Prevote, far, 0, Some(block));
    assert!(matches!(check(&ConsensusMessage::Vote(vote_far.clone()).encode()), GossipVerdict::Ahead { .. }));
    vote_far.vote.round = 1;
    assert!(rejected(check(&ConsensusMessage::Vote(vote_far).encode())), "a vote whose signature fails, far ahead");
}

/// A gossip message's id covers its topic: the same bytes on two topics are two messages (so
/// junk on one topic cannot pass for a duplicate of a message on another), while the same
/// bytes on one topic from any publisher are one message.
#[test]
fn message_ids_tell_topics_apart() {
    let topics = Topics::new(&Hash::of(b"ids"));
    let message = |topic: &gossipsub::IdentTopic| gossipsub::Message {
        source: None,
        data: b"the same bytes".to_vec(),
        sequence_number: None,
        topic: topic.hash(),
    };
    let id = |m: gossipsub::Message| p2p::message_id(&m);
    assert_eq!(id(message(&topics.txs)), id(message(&topics.txs)), "one message on one topic");
    let ids: std::collections::HashSet<MessageId> =
        [&topics.txs, &topics.results, &topics.blocks, &topics.modules, &topics.consensus, &topics.proposals]
            .into_iter()
            .map(|t| id(message(t)))
            .collect();
    assert_eq!(ids.len(), 6, "a message on each topic");
}
