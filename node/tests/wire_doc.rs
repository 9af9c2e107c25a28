//! The worked example of `docs/WIRE.md`, recomputed from the code: topic names, a gossip
//! message and its id on an ordinary topic, a consensus vote with its send number and its id
//! on the consensus topic, and the bytes of a `/cairn/sync/1` request and answer on their stream. If a layout
//! changes, this fails and says which value of the document is no longer true.

use std::collections::HashMap;

use cairn_consensus::{ConsensusMessage, SignedVote};
use cairn_ledger::{FORMAT_VERSION, Genesis, Hash, Keypair, Vote, VoteKind};
use cairn_node::p2p::{self, ModuleAnnounce, SyncRequest, SyncResponse, Topics, WIRE_VERSION, Wire};
use libp2p::StreamProtocol;
use libp2p::gossipsub;
use libp2p::request_response::Codec as _;
use sha2::{Digest, Sha256};

const WIRE_MD: &str = include_str!("../../docs/WIRE.md");
const GENESIS: &str = include_str!("../../docs/fixtures/genesis.json");

/// The values of the worked example: the first ```text block after the heading
/// `## Worked example`. A value starts on a line `name = first-word  comment` and goes on
/// over the indented lines after it (their first word each); the words are concatenated.
fn example() -> HashMap<String, String> {
    let section = WIRE_MD.split("\n## Worked example").nth(1).expect("WIRE.md has a section `## Worked example`");
    let block = section.split("```text\n").nth(1).and_then(|b| b.split("\n```").next()).expect("a ```text block");
    let mut values: HashMap<String, String> = HashMap::new();
    let mut current: Option<String> = None;
    for line in block.lines() {
        if let Some((name, rest)) = line.split_once(" = ")
            && !line.starts_with(' ')
        {
            let name = name.trim().to_string();
            let word = rest.split_whitespace().next().unwrap_or_default().to_string();
            values.insert(name.clone(), word);
            current = Some(name);
        } else if line.starts_with(' ')
            && let Some(name) = &current
            && let Some(word) = line.split_whitespace().next()
        {
            values.get_mut(name).expect("started").push_str(word);
        } else {
            current = None;
        }
    }
    values
}

/// Compares a documented value with the computed one; every difference is listed at the end.
fn check(values: &HashMap<String, String>, wrong: &mut Vec<String>, name: &str, computed: &str) {
    if values.get(name).map(String::as_str) != Some(computed) {
        wrong.push(format!("{name} = {computed}"));
    }
}

#[test]
fn the_worked_example_of_wire_md_is_what_the_code_does() {
    let values = example();
    let mut wrong = Vec::new();
    let genesis: Genesis = serde_json::from_str(GENESIS).expect("docs/fixtures/genesis.json parses");
    let chain_id = genesis.chain_id();
    check(&values, &mut wrong, "chain id", &chain_id.to_hex());
    let topics = Topics::new(&chain_id);
    check(&values, &mut wrong, "topic modules", topics.modules.hash().as_str());
    check(&values, &mut wrong, "topic consensus", topics.consensus.hash().as_str());

    // A module announcement on `modules`, and its message id: H(u64 BE topic length ‖ topic ‖ data).
    let announce = ModuleAnnounce { version: WIRE_VERSION, module_id: Hash::of(b"") };
    let data = borsh::to_vec(&announce).expect("encodes");
    check(&values, &mut wrong, "announce data", &hex::encode(&data));
    let topic = topics.modules.hash().as_str().as_bytes().to_vec();
    let mut preimage = (topic.len() as u64).to_be_bytes().to_vec();
    preimage.extend_from_slice(&topic);
    preimage.extend_from_slice(&data);
    check(&values, &mut wrong, "announce id preimage", &hex::encode(&preimage));
    let key = Keypair::from_seed([10; 32]);
    // Gossip is not signed: no author, sequence number or signature.
    let message = |topic: gossipsub::TopicHash, data: Vec<u8>| gossipsub::Message {
        source: None,
        data,
        sequence_number: None,
        topic,
    };
    let id = p2p::message_id(&message(topics.modules.hash(), data.clone()));
    assert_eq!(id.0, Sha256::digest(&preimage).to_vec(), "the id is the hash of the preimage");
    check(&values, &mut wrong, "announce message id", &hex::encode(&id.0));

    // A prevote for nil by a validator of the fixture genesis, on `consensus` with its send
    // number, and its id: the same rule.
    let vote = Vote {
        version: FORMAT_VERSION,
        chain_id,
        kind: VoteKind::Prevote,
        height: 1,
        round: 0,
        block_hash: None,
        validator: key.public(),
    };
    assert!(genesis.validator_set().expect("set").power_of(&key.public()).is_some(), "a validator");
    let vote = ConsensusMessage::Vote(SignedVote::sign(&key, vote)).encode();
    let send: u64 = 1_767_225_600_000_000_000;
    let data = p2p::consensus_data(&vote, send);
    assert_eq!(data, [&vote[..], &send.to_le_bytes()].concat(), "the message, then the send number");
    check(&values, &mut wrong, "vote data", &hex::encode(&data));
    let topic = topics.consensus.hash().as_str().as_bytes().to_vec();
    let mut preimage = (topic.len() as u64).to_be_bytes().to_vec();
    preimage.extend_from_slice(&topic);
    preimage.extend_from_slice(&data);
    check(&values, &mut wrong, "vote id preimage", &hex::encode(&preimage));
    let id = p2p::message_id(&message(topics.consensus.hash(), data));
    assert_eq!(id.0, Sha256::digest(&preimage).to_vec(), "the id is the hash of the preimage");
    check(&values, &mut wrong, "vote message id", &hex::encode(&id.0));

    // `/cairn/sync/1`: what the requester writes on its stream, and what the answerer writes.
    let protocol = StreamProtocol::new("/cairn/sync/1");
    let mut codec = libp2p::request_response::cbor::codec::Codec::<Wire, Wire>::default();
    let request = Wire::encode(&SyncRequest::Blocks { from: 1, max: 32 });
    let mut stream = futures::io::Cursor::new(Vec::new());
    futures::executor::block_on(codec.write_request(&protocol, &mut stream, request)).expect("writes");
    check(&values, &mut wrong, "sync request stream", &hex::encode(stream.get_ref()));
    let response = Wire::encode(&SyncResponse::Blob(None));
    let mut stream = futures::io::Cursor::new(Vec::new());
    futures::executor::block_on(codec.write_response(&protocol, &mut stream, response)).expect("writes");
    check(&values, &mut wrong, "sync response stream", &hex::encode(stream.get_ref()));
    assert!(wrong.is_empty(), "WIRE.md's worked example is out of date; the code gives:\n{}", wrong.join("\n"));
}
