//! The fuzz targets' seeds in `fuzz/seeds/<target>/`: one accepted input of each shape a
//! target decodes (every consensus message and WAL entry kind, every sync request and
//! answer, every transaction and action, the RPC methods' parameters in both forms, …),
//! signed by the keys of `docs/fixtures/linked/` so that the fuzzer starts from inputs that
//! reach the signature and proof checks. `scripts/fuzz.sh` adds the fixtures themselves.
//!
//! Regenerate with `cargo test -p cairn-wire --test fuzz_seeds -- --ignored write_fuzz_seeds`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use cairn_consensus::message::{PolkaCertificate, RoundCertificate, RoundCertificateKind, RoundVote};
use cairn_consensus::{ConsensusMessage, Proposal, SignedProposal, SignedVote, TimeoutKind, WalEntry};
use cairn_ledger::{
    Action, Block, Commit, CommitSignature, FORMAT_VERSION, Genesis, Hash, Keypair, SignedOffer, StateProof,
    Transaction, Tx, Vote, VoteKind,
};
use cairn_wire::{
    BlockMsg, ModuleAnnounce, ProposedBlock, ResultBatch, SyncRequest, SyncResponse, TxBatch, WIRE_VERSION, Wire,
};

const LINKED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/fixtures/linked");
const SEEDS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/seeds");

fn linked<T: serde::de::DeserializeOwned>(name: &str) -> T {
    let text = std::fs::read_to_string(format!("{LINKED}/{name}")).expect("a linked fixture");
    serde_json::from_str(&text).expect("the linked fixture parses")
}

/// The validators of the fixture chains (seeds 10..14), sorted by address.
fn validators() -> Vec<Keypair> {
    let mut keys: Vec<Keypair> = (10..14).map(|i| Keypair::from_seed([i; 32])).collect();
    keys.sort_by_key(Keypair::public);
    keys
}

/// Every seed: target, file name, bytes.
fn seeds() -> BTreeMap<(&'static str, &'static str), Vec<u8>> {
    let genesis: Genesis = linked("genesis.json");
    let chain_id = genesis.chain_id();
    let set = genesis.validator_set().expect("validators");
    let offer: SignedOffer = linked("offer.json");
    let block: Block = linked("block.json");
    let commit: Commit = linked("commit.json");
    let state_proof: StateProof = linked("state-proof.json");
    let result = block
        .txs
        .iter()
        .find_map(|tx| match tx {
            Transaction::Result(r) => Some(r.clone()),
            _ => None,
        })
        .expect("the linked block holds a result");
    let client = Keypair::from_seed([1; 32]);
    let provider = Keypair::from_seed([3; 32]);
    let vals = validators();
    let json = |v: &serde_json::Value| serde_json::to_vec(v).expect("encodes");
    let prefixed = |kind: u8, mut bytes: Vec<u8>| {
        bytes.insert(0, kind);
        bytes
    };

    let account = |nonce: u64, action: Action| {
        let tx = Tx { version: FORMAT_VERSION, chain_id, sender: client.public(), nonce, fee: 1, action };
        tx.sign(&client)
    };
    let actions = [
        ("transfer", Action::Transfer { to: provider.public(), amount: 5 }),
        ("register", Action::RegisterProvider { stake: 1_000, price_per_fuel: 1, capacity: 2, region: String::new() }),
        ("price", Action::UpdatePrice { price_per_fuel: 2 }),
        ("unbond", Action::Unbond { amount: 10 }),
        ("challenge", Action::Challenge { job_id: offer.job_id(), bond: 100 }),
        ("region", Action::UpdateRegion { region: "eu-west".into() }),
    ];
    let accounts: Vec<(&'static str, Transaction)> = actions
        .into_iter()
        .enumerate()
        .map(|(i, (name, action))| (name, Transaction::Account(account(i as u64 + 1, action))))
        .collect();

    let mut out: BTreeMap<(&'static str, &'static str), Vec<u8>> = BTreeMap::new();
    let mut add = |target: &'static str, name: &'static str, bytes: Vec<u8>| {
        assert!(out.insert((target, name), bytes).is_none(), "{target}/{name} twice");
    };

    // Transactions and results.
    add("transaction", "offer", borsh::to_vec(&Transaction::Offer(offer.clone())).expect("encodes"));
    add("transaction", "result", borsh::to_vec(&Transaction::Result(result.clone())).expect("encodes"));
    add("transaction", "resolve", borsh::to_vec(&Transaction::Resolve { job_id: offer.job_id() }).expect("encodes"));
    for (name, tx) in &accounts {
        add("transaction", name, borsh::to_vec(tx).expect("encodes"));
    }
    add("job_result", "result", borsh::to_vec(&result).expect("encodes"));
    let failed = cairn_ledger::JobResult::new(
        cairn_ledger::ResultClaim {
            status: cairn_ledger::JobStatus::Trap,
            output_hash: Hash::of(b"unreachable"),
            ..result.claim.clone()
        },
        b"unreachable".to_vec(),
        &provider,
    );
    add("job_result", "trap", borsh::to_vec(&failed).expect("encodes"));

    // Consensus messages: each kind, signed by the fixture validators.
    let vote = |key: &Keypair, kind: VoteKind, round: u32, block_hash: Option<Hash>| {
        let vote =
            Vote { version: FORMAT_VERSION, chain_id, kind, height: 2, round, block_hash, validator: key.public() };
        SignedVote::sign(key, vote)
    };
    let target = Hash::of(b"block 2");
    let propose = |round: u32, pol_round: Option<u32>| {
        let proposer = cairn_consensus::proposer(&set, 2, round);
        let key = vals.iter().find(|k| k.public() == proposer).expect("a validator proposes");
        SignedProposal::sign(key, Proposal::new(chain_id, 2, round, target, pol_round, proposer))
    };
    let polka = PolkaCertificate {
        height: 2,
        round: 0,
        block_hash: target,
        signatures: vals[..3]
            .iter()
            .map(|k| CommitSignature {
                validator: k.public(),
                signature: vote(k, VoteKind::Prevote, 0, Some(target)).signature,
            })
            .collect(),
    };
    let round_votes = |kind: RoundCertificateKind, n: usize, block_hash: Option<Hash>| RoundCertificate {
        height: 2,
        round: 1,
        kind,
        votes: vals[..n]
            .iter()
            .map(|k| RoundVote {
                kind: VoteKind::Precommit,
                block_hash,
                validator: k.public(),
                signature: vote(k, VoteKind::Precommit, 1, block_hash).signature,
            })
            .collect(),
    };
    let messages = [
        ("prevote-nil", ConsensusMessage::Vote(vote(&vals[0], VoteKind::Prevote, 0, None))),
        ("precommit", ConsensusMessage::Vote(vote(&vals[1], VoteKind::Precommit, 0, Some(target)))),
        ("proposal", ConsensusMessage::Proposal(propose(0, None))),
        ("proposal-pol", ConsensusMessage::Proposal(propose(3, Some(1)))),
        ("polka", ConsensusMessage::PolkaCertificate(polka)),
        ("round-precommit", ConsensusMessage::RoundCertificate(round_votes(RoundCertificateKind::Precommit, 3, None))),
        ("round-skip", ConsensusMessage::RoundCertificate(round_votes(RoundCertificateKind::Skip, 2, Some(target)))),
    ];
    for (name, msg) in &messages {
        msg.check(chain_id, &set).expect("a seed consensus message verifies");
        add("consensus_message", name, msg.encode());
    }
    add("wal_entry", "message", WalEntry::Message(messages[2].1.clone()).encode());
    add("wal_entry", "timeout", WalEntry::Timeout { kind: TimeoutKind::Prevote, round: 1 }.encode());
    let proposed = WalEntry::ProposedValue {
        height: 2,
        round: 0,
        valid_round: Some(0),
        proposer: cairn_consensus::proposer(&set, 2, 0),
        block_hash: target,
        valid: true,
    };
    add("wal_entry", "proposed", proposed.encode());

    // Gossip envelopes.
    let txs = std::iter::once(Transaction::Offer(offer.clone())).chain(accounts.iter().map(|(_, t)| t.clone()));
    add("tx_batch", "batch", TxBatch { version: WIRE_VERSION, sent_ms: 1, txs: txs.collect() }.encode());
    add(
        "result_batch",
        "batch",
        ResultBatch { version: WIRE_VERSION, sent_ms: 1, results: vec![result.clone(), failed] }.encode(),
    );
    add(
        "block_msg",
        "block-1",
        BlockMsg { version: WIRE_VERSION, block: block.clone(), commit: commit.clone() }.encode(),
    );
    add("proposed_block", "block-1", ProposedBlock { version: WIRE_VERSION, block: block.clone() }.encode());
    add("module_announce", "empty", ModuleAnnounce { version: WIRE_VERSION, module_id: Hash::of(b"") }.encode());

    // Sync.
    add("sync_request", "blocks", Wire::encode(&SyncRequest::Blocks { from: 1, max: 32 }).0);
    add("sync_request", "blob", Wire::encode(&SyncRequest::Blob(offer.offer.module_id)).0);
    add("sync_request", "proposed", Wire::encode(&SyncRequest::Proposed { height: 1, block_hash: block.hash() }).0);
    add("sync_response", "blocks", Wire::encode(&SyncResponse::Blocks(vec![(block.clone(), commit.clone())])).0);
    add("sync_response", "blob", Wire::encode(&SyncResponse::Blob(Some(b"\0asm\x01\0\0\0".to_vec()))).0);
    add("sync_response", "no-blob", Wire::encode(&SyncResponse::Blob(None)).0);
    add("sync_response", "error", Wire::encode(&SyncResponse::Error("busy; ask again shortly".into())).0);
    add("sync_response", "proposed", Wire::encode(&SyncResponse::Proposed(Some(Box::new(block.clone())))).0);

    // The JMT proof inside the linked state proof.
    add("state_proof_jmt", "linked", state_proof.proof.clone());

    // A key file.
    add("key_file", "client", client.to_json().into_bytes());

    // RPC parameters: the method byte, then the parameters, positional and named.
    let job_id = serde_json::to_value(offer.job_id()).expect("encodes");
    let offer_json = serde_json::to_value(&offer).expect("encodes");
    let tx_json =
        serde_json::to_value(account(1, Action::Transfer { to: provider.public(), amount: 5 })).expect("encodes");
    let address = serde_json::to_value(client.public()).expect("encodes");
    let params: [(&'static str, u8, serde_json::Value); 15] = [
        ("module_put", 0, serde_json::json!(["0061736d01000000"])),
        ("module_put-named", 0, serde_json::json!({"wasm_hex": "0061736d01000000"})),
        ("job_submit", 1, serde_json::json!([offer_json])),
        ("job_submit-named", 1, serde_json::json!({"offer": offer_json})),
        ("tx_submit", 2, serde_json::json!([tx_json])),
        ("tx_submit-named", 2, serde_json::json!({"tx": tx_json})),
        ("job_get", 3, serde_json::json!([job_id])),
        ("job_proof", 4, serde_json::json!([job_id, provider.public()])),
        ("job_proof-named", 4, serde_json::json!({"job_id": job_id, "provider": null})),
        ("chain_getBlock", 5, serde_json::json!([1])),
        ("chain_getBlock-named", 5, serde_json::json!({"height": 18446744073709551615u64})),
        ("account_get", 6, serde_json::json!([address])),
        ("account_get-named", 6, serde_json::json!({"address": address})),
        ("state_getProof", 7, serde_json::json!(["00"])),
        ("state_getProof-named", 7, serde_json::json!({"key_hex": "0301", "height": 1})),
    ];
    for (name, method, value) in &params {
        add("rpc_params", name, prefixed(*method, json(value)));
    }

    // The ledger's records in JSON: the kind byte, then the record.
    let records: [(&'static str, u8, serde_json::Value); 8] = [
        ("offer", 0, offer_json.clone()),
        ("tx", 1, tx_json.clone()),
        ("result", 2, serde_json::to_value(&result).expect("encodes")),
        ("transaction-offer", 3, serde_json::to_value(Transaction::Offer(offer.clone())).expect("encodes")),
        (
            "transaction-resolve",
            3,
            serde_json::to_value(Transaction::Resolve { job_id: offer.job_id() }).expect("encodes"),
        ),
        ("block", 4, serde_json::to_value(&block).expect("encodes")),
        ("commit", 5, serde_json::to_value(&commit).expect("encodes")),
        ("receipt", 6, serde_json::to_value(result.receipt()).expect("encodes")),
    ];
    for (name, kind, value) in &records {
        add("json_records", name, prefixed(*kind, json(value)));
    }
    out
}

fn path(target: &str, name: &str) -> PathBuf {
    PathBuf::from(SEEDS).join(target).join(name)
}

#[test]
fn fuzz_seeds_are_current() {
    let mut stale = Vec::new();
    for ((target, name), bytes) in seeds() {
        if std::fs::read(path(target, name)).ok().as_ref() != Some(&bytes) {
            stale.push(format!("{target}/{name}"));
        }
    }
    assert!(
        stale.is_empty(),
        "fuzz/seeds is out of date ({}); regenerate with \
         `cargo test -p cairn-wire --test fuzz_seeds -- --ignored write_fuzz_seeds`",
        stale.join(", ")
    );
}

#[test]
#[ignore = "writes fuzz/seeds"]
fn write_fuzz_seeds() {
    let seeds = seeds();
    let targets: std::collections::BTreeSet<&str> = seeds.keys().map(|(t, _)| *t).collect();
    for target in targets {
        let dir = PathBuf::from(SEEDS).join(target);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).expect("removes the old seeds");
        }
        std::fs::create_dir_all(&dir).expect("creates the seed directory");
    }
    for ((target, name), bytes) in seeds {
        std::fs::write(path(target, name), bytes).expect("writes a seed");
    }
}
