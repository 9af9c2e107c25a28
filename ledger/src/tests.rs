//! Format fixtures and proof tests.

use crate::*;

mod docs;

pub(crate) fn sample_offer(chain_id: Hash) -> JobOffer {
    JobOffer {
        version: FORMAT_VERSION,
        chain_id,
        client: Keypair::from_seed([1; 32]).public(),
        nonce: 0,
        fee: 1,
        module_id: Hash::of(b"module"),
        input: b"hello".to_vec(),
        fuel_limit: 1_000_000,
        max_price: 2,
        redundancy: 1,
        assignment_height: 0,
        deadline_height: 100,
        placement: Placement::Prefer { regions: vec!["eu-west".into()] },
        input_blob: None,
    }
}

fn genesis(validators: &[Keypair]) -> Genesis {
    Genesis {
        version: FORMAT_VERSION,
        chain_name: "test".into(),
        genesis_time_ms: 0,
        validators: validators.iter().map(|k| Validator { address: k.public(), power: 10 }).collect(),
        accounts: vec![],
        providers: vec![],
        params: ChainParams::default(),
    }
}

fn signed_commit(chain_id: Hash, header: &BlockHeader, signers: &[Keypair]) -> Commit {
    let signers: Vec<&Keypair> = signers.iter().collect();
    Commit::signed_by(&signers, chain_id, header.height, 0, header.hash())
}

/// A proof for the second of three receipts in a block finalized by 3 of 4 validators.
fn sample_proof() -> (ReceiptProof, Genesis) {
    let validators: Vec<Keypair> = (10..14).map(|i| Keypair::from_seed([i; 32])).collect();
    let genesis = genesis(&validators);
    let chain_id = genesis.chain_id();
    let provider = Keypair::from_seed([3; 32]);
    let receipts: Vec<ExecutionReceipt> = (0..3u8)
        .map(|i| {
            let output = vec![i; 4];
            let claim = ResultClaim {
                version: FORMAT_VERSION,
                job_id: Hash::of(&[i]),
                module_id: Hash::of(b"module"),
                input_hash: Hash::of(b"in"),
                output_hash: Hash::of(&output),
                fuel_used: 100 + u64::from(i),
                status: JobStatus::Ok,
                provider: provider.public(),
            };
            JobResult::new(claim, output, &provider).receipt()
        })
        .collect();
    let leaves: Vec<Hash> = receipts.iter().map(ExecutionReceipt::leaf_hash).collect();
    let header = BlockHeader {
        version: FORMAT_VERSION,
        chain_id,
        height: 7,
        parent_hash: Hash::of(b"parent"),
        time_ms: 1_700_000_000_000,
        proposer: validators[0].public(),
        tx_root: Hash::of(b"txs"),
        receipt_root: merkle::root(&leaves),
        state_root: Hash::of(b"state"),
        last_commit_hash: Hash::of(b"last"),
        tx_count: 3,
        receipt_count: 3,
    };
    let commit = signed_commit(chain_id, &header, &validators[..3]);
    let proof = ReceiptProof {
        version: FORMAT_VERSION,
        receipt: receipts[1].clone(),
        path: MerklePath::new(&leaves, 1).expect("in range"),
        header,
        commit,
    };
    (proof, genesis)
}

#[test]
fn a_valid_proof_verifies() {
    let (proof, genesis) = sample_proof();
    let v = proof.verify(&genesis).expect("valid proof");
    assert_eq!(v.height, 7);
    assert_eq!((v.signed_power, v.total_power), (30, 40));
}

#[test]
fn changing_any_byte_of_a_proof_breaks_it() {
    let (proof, genesis) = sample_proof();
    let bytes = borsh::to_vec(&proof).expect("encodes");
    let mut still_valid = 0;
    for i in 0..bytes.len() {
        let mut b = bytes.clone();
        b[i] ^= 0x01;
        let Ok(tampered) = borsh::from_slice::<ReceiptProof>(&b) else { continue };
        if tampered.verify(&genesis).is_ok() {
            still_valid += 1;
            eprintln!("flipping byte {i} kept the proof valid");
        }
    }
    assert_eq!(still_valid, 0, "every tampered byte must break verification");
}

#[test]
fn a_commit_without_quorum_or_from_strangers_fails() {
    let (mut proof, genesis) = sample_proof();
    let chain_id = genesis.chain_id();
    let validators: Vec<Keypair> = (10..14).map(|i| Keypair::from_seed([i; 32])).collect();
    proof.commit = signed_commit(chain_id, &proof.header, &validators[..2]);
    assert!(matches!(proof.verify(&genesis), Err(Error::NoQuorum { signed: 20, total: 40 })));
    let strangers: Vec<Keypair> = (50..53).map(|i| Keypair::from_seed([i; 32])).collect();
    proof.commit = signed_commit(chain_id, &proof.header, &strangers);
    assert!(proof.verify(&genesis).is_err());
    let mut other = genesis.clone();
    other.chain_name = "other".into();
    let (proof, _) = sample_proof();
    assert!(proof.verify(&other).is_err(), "a proof must not verify against another chain's genesis");
}

#[test]
fn a_commit_has_one_encoding_and_is_refused_by_cheap_checks_before_any_signature_is_verified() {
    let (proof, genesis) = sample_proof();
    let chain_id = genesis.chain_id();
    let set = genesis.validator_set().expect("set");
    let validators: Vec<Keypair> = (10..14).map(|i| Keypair::from_seed([i; 32])).collect();
    let good = signed_commit(chain_id, &proof.header, &validators);
    assert_eq!(good.verify(chain_id, &set).expect("valid"), 40);
    // The same signatures permuted, or one of them repeated, are byte-different copies: refused.
    let mut permuted = good.clone();
    permuted.signatures.swap(0, 3);
    assert!(matches!(permuted.verify(chain_id, &set), Err(Error::Invalid(_))));
    let mut padded = good.clone();
    padded.signatures.insert(1, padded.signatures[0].clone());
    assert!(matches!(padded.verify(chain_id, &set), Err(Error::Invalid(_))));
    // A bad first signature is never looked at when the order or the quorum is already wrong.
    let mut bad_and_repeated = padded.clone();
    bad_and_repeated.signatures[0].signature = Signature([7; 64]);
    assert!(matches!(bad_and_repeated.verify(chain_id, &set), Err(Error::Invalid(_))));
    let mut bad_without_quorum = signed_commit(chain_id, &proof.header, &validators[..2]);
    bad_without_quorum.signatures[0].signature = Signature([7; 64]);
    assert!(matches!(bad_without_quorum.verify(chain_id, &set), Err(Error::NoQuorum { signed: 20, total: 40 })));
    // With order and quorum right, the bad signature is what fails.
    let mut bad = good.clone();
    bad.signatures[0].signature = Signature([7; 64]);
    assert!(matches!(bad.verify(chain_id, &set), Err(Error::BadSignature { .. })));
}

#[test]
fn proof_json_round_trips() {
    let (proof, genesis) = sample_proof();
    let json = serde_json::to_string(&proof).expect("serializes");
    let back: ReceiptProof = serde_json::from_str(&json).expect("parses");
    assert_eq!(back, proof);
    back.verify(&genesis).expect("still valid");
}

/// Pins the bytes of every signed format: a change here changes every id and signature.
#[test]
fn format_fixtures_are_pinned() {
    let offer = sample_offer(Hash::of(b"chain"));
    let signed = sample_signed_offer();
    assert_eq!(Hash::of_borsh(&offer).to_hex(), OFFER_FIXTURE);
    assert_eq!(signed.job_id().to_hex(), JOB_ID_FIXTURE);
    let (proof, _) = sample_proof();
    assert_eq!(Hash::of_borsh(&proof).to_hex(), PROOF_FIXTURE);
    assert_eq!(borsh::to_vec(&JobStatus::ALL).expect("encodes"), vec![0, 1, 2, 3, 4, 5]);
}

const OFFER_FIXTURE: &str = "3e0cb50ee4c78afb16ec874eec803405408343ec3d1d9dcb27cf52049ad10e37";
const JOB_ID_FIXTURE: &str = "bcbf80f624810eee7c8dd5f6f3bad01a8a9088c63ef7d3669b198f671bac753d";
const PROOF_FIXTURE: &str = "157a911bb17398ab90d703197a7b0c9de51bdbfb37222903a1ce1d7520033ccf";

#[test]
fn oversized_and_trailing_bytes_are_refused() {
    let offer = sample_offer(Hash::ZERO);
    let bytes = borsh::to_vec(&offer).expect("encodes");
    assert!(decode::<JobOffer>("offer", &bytes, bytes.len() - 1).is_err());
    let mut trailing = bytes.clone();
    trailing.push(0);
    assert!(decode::<JobOffer>("offer", &trailing, 1 << 20).is_err());
    assert_eq!(decode::<JobOffer>("offer", &bytes, 1 << 20).expect("decodes"), offer);
    assert!(decode::<JobOffer>("offer", &[0xff; 40], 1 << 20).is_err());
}

const FIXTURE_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/fixtures");

/// The signed offer of the test vectors: the fixture offer, signed by its client.
fn sample_signed_offer() -> SignedOffer {
    sample_offer(Hash::of(b"chain")).sign(&Keypair::from_seed([1; 32]))
}

/// The proof, genesis and signed offer in `docs/fixtures` are test vectors for independent
/// implementations: they must stay byte-identical to what this code produces, and verify.
#[test]
fn documented_test_vectors_verify_and_are_current() {
    let (proof, genesis) = sample_proof();
    let read = |name: &str| {
        std::fs::read_to_string(format!("{FIXTURE_DIR}/{name}"))
            .unwrap_or_else(|e| panic!("docs/fixtures/{name}: {e}; regenerate with `cargo test -p cairn-ledger -- --ignored write_test_vectors`"))
    };
    let file_proof: ReceiptProof = serde_json::from_str(&read("receipt-proof.json")).expect("proof parses");
    let file_genesis: Genesis = serde_json::from_str(&read("genesis.json")).expect("genesis parses");
    assert_eq!(file_proof, proof);
    assert_eq!(file_genesis, genesis);
    file_proof.verify(&file_genesis).expect("the documented proof verifies");
    assert_eq!(read("receipt-proof.borsh.hex").trim(), hex::encode(borsh::to_vec(&proof).expect("encodes")));
    let offer = sample_signed_offer();
    let file_offer: SignedOffer = serde_json::from_str(&read("job-offer.json")).expect("offer parses");
    assert_eq!(file_offer, offer);
    file_offer.verify().expect("the documented offer's signature verifies");
    assert_eq!(read("job-offer.borsh.hex").trim(), hex::encode(borsh::to_vec(&offer).expect("encodes")));
    assert_eq!(file_offer.job_id().to_hex(), JOB_ID_FIXTURE);
}

/// Writes the test vectors (run deliberately, then review the diff).
#[test]
#[ignore = "writes docs/fixtures; run by hand when a format changes on purpose"]
fn write_test_vectors() {
    let (proof, genesis) = sample_proof();
    std::fs::create_dir_all(FIXTURE_DIR).expect("mkdir");
    let write = |name: &str, text: String| std::fs::write(format!("{FIXTURE_DIR}/{name}"), text).expect("write");
    write("receipt-proof.json", serde_json::to_string_pretty(&proof).expect("json") + "\n");
    write("genesis.json", serde_json::to_string_pretty(&genesis).expect("json") + "\n");
    write("receipt-proof.borsh.hex", hex::encode(borsh::to_vec(&proof).expect("encodes")) + "\n");
    let offer = sample_signed_offer();
    write("job-offer.json", serde_json::to_string_pretty(&offer).expect("json") + "\n");
    write("job-offer.borsh.hex", hex::encode(borsh::to_vec(&offer).expect("encodes")) + "\n");
}

#[test]
fn a_failed_result_carries_its_reason_as_bounded_utf8_output() {
    let provider = Keypair::from_seed([3; 32]);
    let result = |status: JobStatus, output: Vec<u8>| {
        let claim = ResultClaim {
            version: FORMAT_VERSION,
            job_id: Hash::of(b"job"),
            module_id: Hash::of(b"module"),
            input_hash: Hash::of(b"in"),
            output_hash: Hash::of(&output),
            fuel_used: 7,
            status,
            provider: provider.public(),
        };
        JobResult::new(claim, output, &provider)
    };
    let limit = 64 * 1024;
    let reason = b"`cairn_run` trapped: job aborted: bad input".to_vec();
    result(JobStatus::Trap, reason).verify(limit).expect("a reason is a valid output");
    result(JobStatus::OutOfFuel, vec![b'x'; REASON_BYTES_MAX]).verify(limit).expect("at the limit");
    for (why, output) in [("too long", vec![b'x'; REASON_BYTES_MAX + 1]), ("not UTF-8", vec![0xff, 0xfe])] {
        let error = result(JobStatus::Trap, output).verify(limit).expect_err(why);
        assert!(error.to_string().contains("its reason as output"), "{why}: {error}");
    }
    // An ok job's output is anything up to the chain's limit.
    result(JobStatus::Ok, vec![0xff; REASON_BYTES_MAX + 1]).verify(limit).expect("any bytes");
}

#[test]
fn every_json_input_follows_one_rule_lowercase_hex_and_exact_fields() {
    let h = Hash::of(b"x");
    let hex = h.to_hex();
    assert_eq!(Hash::from_hex(&hex).expect("lowercase"), h);
    for bad in [format!("0x{hex}"), hex.to_uppercase(), hex[..63].to_owned()] {
        assert!(Hash::from_hex(&bad).is_err(), "{bad} refused");
        assert!(serde_json::from_str::<Hash>(&format!("\"{bad}\"")).is_err(), "{bad} refused in JSON");
    }
    assert!(decode_hex("0xab", "x").is_err());
    assert!(decode_hex("AB", "x").is_err());
    assert_eq!(decode_hex("ab", "x").expect("lowercase"), vec![0xab]);

    // A receipt proof: exact field names, bytes as lowercase hex.
    let (proof, _) = sample_proof();
    let json = serde_json::to_value(&proof).expect("json");
    assert_eq!(serde_json::from_value::<ReceiptProof>(json.clone()).expect("round trip"), proof);
    let mut extra = json.clone();
    extra["unexpected"] = serde_json::json!(1);
    assert!(serde_json::from_value::<ReceiptProof>(extra).is_err(), "an unknown field is refused");
    let mut nested = json.clone();
    nested["receipt"]["claim"]["extra"] = serde_json::json!("x");
    assert!(serde_json::from_value::<ReceiptProof>(nested).is_err(), "an unknown nested field is refused");
    let mut upper = json;
    let output = upper["receipt"]["claim"]["output_hash"].as_str().expect("hash").to_uppercase();
    upper["receipt"]["claim"]["output_hash"] = serde_json::json!(output);
    assert!(serde_json::from_value::<ReceiptProof>(upper).is_err(), "uppercase hex is refused");

    // A key file too.
    let key = Keypair::from_seed([7; 32]);
    let mut file: serde_json::Value = serde_json::from_str(&key.to_json()).expect("json");
    assert!(Keypair::from_json(&file.to_string()).is_ok());
    file["comment"] = serde_json::json!("mine");
    assert!(Keypair::from_json(&file.to_string()).is_err(), "an unknown field in a key file is refused");
}

#[test]
fn genesis_params_beyond_what_gossip_carries_are_refused() {
    let validators = [Keypair::from_seed([10; 32])];
    let ok = genesis(&validators);
    assert!(ok.validate().is_ok());
    for (name, set) in [
        (
            "input_bytes_max",
            (|p: &mut ChainParams| p.input_bytes_max = PARAMS_INPUT_BYTES_LIMIT + 1) as fn(&mut ChainParams),
        ),
        ("output_bytes_max", |p: &mut ChainParams| p.output_bytes_max = PARAMS_OUTPUT_BYTES_LIMIT + 1),
        ("block_bytes_max", |p: &mut ChainParams| p.block_bytes_max = PARAMS_BLOCK_BYTES_LIMIT + 1),
    ] {
        let mut g = ok.clone();
        set(&mut g.params);
        let e = g.validate().expect_err("refused");
        assert!(e.to_string().contains(name), "{e}");
    }
    let mut at_limit = ok;
    at_limit.params.input_bytes_max = PARAMS_INPUT_BYTES_LIMIT;
    at_limit.params.block_bytes_max = PARAMS_BLOCK_BYTES_LIMIT;
    assert!(at_limit.validate().is_ok());
}
