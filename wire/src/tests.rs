//! Envelope layouts, limits, and what the decoders refuse.

use cairn_ledger::{FORMAT_VERSION, Keypair, Tx};

use super::*;

fn account_tx(nonce: u64) -> Transaction {
    let key = Keypair::from_seed([1; 32]);
    let tx = Tx {
        version: FORMAT_VERSION,
        chain_id: Hash::of(b"chain"),
        sender: key.public(),
        nonce,
        fee: 1,
        action: cairn_ledger::Action::Transfer { to: Keypair::from_seed([2; 32]).public(), amount: 5 },
    };
    Transaction::Account(tx.sign(&key))
}

#[test]
fn wire_round_trips_and_checks_its_version() {
    let w = Wire::encode(&SyncRequest::Blocks { from: 3, max: 7 });
    assert_eq!(w.0, vec![1, 0, 3, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0]);
    assert!(matches!(w.decode::<SyncRequest>("req"), Ok(SyncRequest::Blocks { from: 3, max: 7 })));
    let mut bad = w.clone();
    bad.0[0] = 2;
    assert!(matches!(bad.decode::<SyncRequest>("req"), Err(Error::Version { version: 2, .. })));
    assert!(Wire(vec![]).decode::<SyncRequest>("req").is_err());
    let mut long = w.clone();
    long.0.push(0);
    assert!(long.decode::<SyncRequest>("req").is_err(), "trailing bytes");
}

#[test]
fn a_sync_answer_refuses_what_its_encoder_never_writes() {
    // Blob(Option): the option byte is 0 or 1.
    assert_eq!(Wire::encode(&SyncResponse::Blob(None)).0, vec![1, 1, 0]);
    assert!(Wire(vec![1, 1, 2]).decode::<SyncResponse>("answer").is_err());
    // An unknown tag.
    assert!(Wire(vec![1, 4]).decode::<SyncResponse>("answer").is_err());
    // Error(String) that is not UTF-8.
    assert!(Wire(vec![1, 2, 1, 0, 0, 0, 0xff]).decode::<SyncResponse>("answer").is_err());
    // A count of blocks far larger than the bytes: refused without allocating for it.
    assert!(Wire(vec![1, 0, 0xff, 0xff, 0xff, 0xff]).decode::<SyncResponse>("answer").is_err());
}

#[test]
fn envelopes_round_trip_and_check_version_size_and_contents() {
    let batch = TxBatch { version: WIRE_VERSION, sent_ms: 9, txs: vec![account_tx(0), account_tx(1)] };
    let bytes = batch.encode();
    assert_eq!(TxBatch::decode(&bytes).expect("decodes"), batch);
    let mut other = bytes.clone();
    other[0] = 2;
    assert!(matches!(TxBatch::decode(&other), Err(Error::Version { version: 2, .. })));
    let mut long = bytes.clone();
    long.push(0);
    assert!(TxBatch::decode(&long).is_err(), "trailing bytes");
    assert!(TxBatch::decode(&[]).is_err());

    let resolve = TxBatch { version: WIRE_VERSION, sent_ms: 9, txs: vec![Transaction::Resolve { job_id: Hash::ZERO }] };
    assert!(matches!(TxBatch::decode(&resolve.encode()), Err(Error::Invalid(_))), "no Resolve on txs");
    let many = TxBatch { version: WIRE_VERSION, sent_ms: 0, txs: vec![account_tx(0); BATCH_ITEMS_MAX + 1] };
    assert!(matches!(TxBatch::decode(&many.encode()), Err(Error::TooLarge { .. })));
    assert!(matches!(TxBatch::decode(&vec![1; BATCH_MESSAGE_BYTES_MAX + 1]), Err(Error::TooLarge { .. })));

    let results = ResultBatch { version: WIRE_VERSION, sent_ms: 1, results: vec![] };
    assert_eq!(results.encode(), vec![1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(ResultBatch::decode(&results.encode()).expect("decodes"), results);

    let announce = ModuleAnnounce { version: WIRE_VERSION, module_id: Hash::of(b"") };
    assert_eq!(ModuleAnnounce::decode(&announce.encode()).expect("decodes"), announce);
    assert!(ModuleAnnounce::decode(&[1; MODULE_ANNOUNCE_BYTES_MAX + 1]).is_err());
}

/// The state sync requests and answers have the bytes WIRE.md gives (the TypeScript client's
/// fixtures test pins the same ones).
#[test]
fn state_sync_messages_have_their_documented_bytes() {
    assert_eq!(Wire::encode(&SyncRequest::Snapshot).0, [1, 3]);
    let chunk_request = Wire::encode(&SyncRequest::StateChunk { height: 7, start: [9; 32], max: 2048 }).0;
    assert_eq!(chunk_request, [&[1u8, 4, 7, 0, 0, 0, 0, 0, 0, 0][..], &[9; 32], &[0, 8, 0, 0]].concat());
    assert_eq!(Wire::encode(&SyncResponse::Snapshot(None)).0, [1, 4, 0]);
    assert_eq!(Wire::encode(&SyncResponse::StateChunk(None)).0, [1, 5, 0]);
    let chunk = StateChunk { entries: vec![(vec![0xaa], vec![0xbb, 0xcc])], proof: vec![], last: true };
    let bytes = Wire::encode(&SyncResponse::StateChunk(Some(chunk.clone()))).0;
    assert_eq!(bytes, [1, 5, 1, 1, 0, 0, 0, 1, 0, 0, 0, 0xaa, 2, 0, 0, 0, 0xbb, 0xcc, 0, 0, 0, 0, 1]);
    assert_eq!(
        Wire(bytes).decode::<SyncResponse>("sync response").expect("decodes"),
        SyncResponse::StateChunk(Some(chunk))
    );
}

#[test]
fn consensus_data_is_the_message_then_its_send_number() {
    let data = consensus_data(b"\x01vote", 0x0102_0304_0506_0708);
    assert_eq!(data, b"\x01vote\x08\x07\x06\x05\x04\x03\x02\x01", "the send number, u64 little-endian, last");
    assert_eq!(split_consensus_data(&data).expect("splits"), (&b"\x01vote"[..], 0x0102_0304_0506_0708));
    assert_eq!(split_consensus_data(&[0; CONSENSUS_SEND_BYTES]).expect("an empty message").0, b"");
    assert!(split_consensus_data(&[0; CONSENSUS_SEND_BYTES - 1]).is_err(), "shorter than a send number");
    let largest = vec![1; CONSENSUS_MESSAGE_BYTES_MAX + CONSENSUS_SEND_BYTES];
    assert_eq!(split_consensus_data(&largest).expect("the largest").0.len(), CONSENSUS_MESSAGE_BYTES_MAX);
    assert!(split_consensus_data(&[&largest[..], &[1]].concat()).is_err(), "a message over the limit");
}
