//! Job data as blobs on a live testnet: an input larger than a chain carries inline goes in as
//! a blob the offer names, the output larger than a result carries inline comes back as a blob
//! the receipt commits to, and anyone can fetch both by hash from any node.

use cairn_ledger::{DATA_BLOB_BYTES_MAX, Hash};
use cairn_rpc::client::{self, OfferTerms};
use cairn_rpc::{CairnApiClient, error};

use crate::support::{TIMEOUT, code_of, start_custom, uppercase_module};

/// `len` bytes of lowercase text with digits (the uppercase job turns only the letters).
fn text(len: usize) -> Vec<u8> {
    (0..len).map(|i| b"abcdefghijklmnopqrstuvwxyz0123456789"[i % 36]).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_blob_goes_into_a_job_and_its_output_comes_back_as_a_blob_the_receipt_binds() {
    // One validator (the client's node) and two providers.
    let net = start_custom(1, 2, 0, |_| {}).await;
    let c = net.rpc(0).await;
    let params = c.chain_genesis().await.expect("genesis").params;
    let module_id = c.module_put(hex::encode(uppercase_module())).await.expect("module_put");
    let key = &net.client_key;

    // 1 MiB: four times what an offer carries inline, sixteen times a result's.
    let input = text(1 << 20);
    assert!(input.len() > params.input_bytes_max as usize && input.len() > params.output_bytes_max as usize);
    let expected = input.to_ascii_uppercase();
    let blob = c.blob_put(hex::encode(&input)).await.expect("blob_put");
    assert_eq!(blob, Hash::of(&input), "a blob is named by its SHA-256");

    // An offer naming a blob this node does not hold is refused before anything is locked; one
    // carrying both an inline input and a blob breaks a chain rule.
    let missing = Hash::of(b"never uploaded");
    let terms = |input_blob| OfferTerms { fuel_limit: 200_000_000, input_blob, ..OfferTerms::default() };
    let offer = client::sign_offer(&c, key, module_id, Vec::new(), terms(Some(missing)), None).await.expect("sign");
    assert_eq!(code_of(&c.job_submit(offer).await.expect_err("unknown blob")), Some(error::BLOB_UNKNOWN));
    let offer = client::sign_offer(&c, key, module_id, b"x".to_vec(), terms(Some(blob)), None).await.expect("sign");
    let refused = c.job_submit(offer).await.expect_err("input and input_blob");
    assert_eq!(code_of(&refused), Some(error::INVALID_TX), "{refused}");
    assert!(refused.to_string().contains("input_blob"), "{refused}");

    // An estimate runs on the blob as the provider will.
    let unsigned =
        client::build_offer(&c, key.public(), module_id, Vec::new(), terms(Some(blob)), None).await.expect("offer");
    let estimate = client::estimate(&c, key, unsigned).await.expect("job_estimate");
    assert_eq!(estimate.status, cairn_ledger::JobStatus::Ok, "{estimate:?}");
    assert_eq!(estimate.output_size_bytes, expected.len() as u64);

    // The job runs on the blob, and its output comes back as a blob.
    let offer = client::sign_offer(&c, key, module_id, Vec::new(), terms(Some(blob)), None).await.expect("sign");
    let run =
        client::run_to_finality(&c, offer, TIMEOUT, |_| {}).await.unwrap_or_else(|e| panic!("{e:#}\n{}", net.logs()));
    assert_eq!(run.result.status, cairn_ledger::JobStatus::Ok, "{:?}", run.result.reason);
    assert!(run.result.output_in_blob && run.result.output.is_empty(), "the output is left in a blob");
    assert_eq!(run.result.output_hash, Hash::of(&expected));
    // The node that took the result holds the output (it admitted the result only then).
    assert_eq!(client::output_of(&c, &run.result).await.expect("output"), expected);

    // The receipt proof verifies offline and binds both blobs' hashes.
    let verified = run.proof.verify(&net.genesis).expect("the proof verifies");
    assert_eq!(verified.job_id, run.job_id);
    assert_eq!(run.proof.receipt.claim.input_hash, blob);
    assert_eq!(run.proof.receipt.claim.output_hash, Hash::of(&expected));

    // Every node serves both blobs by hash: the provider that did not run the job too.
    let other = if run.result.provider == net.provider_key(1) { 2 } else { 1 };
    let o = net.rpc(other).await;
    let got =
        cairn_ledger::decode_hex(&o.blob_get(run.result.output_hash).await.expect("blob_get"), "blob").expect("hex");
    assert_eq!(got, expected);
    let got = cairn_ledger::decode_hex(&o.blob_get(blob).await.expect("blob_get"), "blob").expect("hex");
    assert_eq!(Hash::of(&got), blob);

    // Bad blobs: over the limit, refused; unknown everywhere, `blob_unknown` once the wait ends.
    let too_large = c.blob_put(hex::encode(vec![0u8; DATA_BLOB_BYTES_MAX + 1])).await.expect_err("too large");
    assert_eq!(code_of(&too_large), Some(error::INVALID_PARAMS), "{too_large}");
    assert_eq!(code_of(&c.blob_get(missing).await.expect_err("unknown")), Some(error::BLOB_UNKNOWN));

    // The CLI does the same by itself for an input file over the inline limit.
    let dir = net.t.dir.join("blob-cli");
    std::fs::create_dir_all(&dir).expect("dir");
    let (wasm, data, out) = (dir.join("uppercase.wasm"), dir.join("in.txt"), dir.join("out.txt"));
    std::fs::write(&wasm, uppercase_module()).expect("write");
    let input = text(700 << 10);
    std::fs::write(&data, &input).expect("write");
    let key_file = net.t.dir.join("client-key.json");
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
        .current_dir(&dir)
        .args(["job", "run", wasm.to_str().expect("utf-8"), "--input-file", data.to_str().expect("utf-8")])
        .args(["--fuel-limit", "200000000", "--output-file", out.to_str().expect("utf-8")])
        .args(["--key", key_file.to_str().expect("utf-8"), "--rpc", &net.t.rpc_url(0)])
        .output()
        .expect("cairn runs");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{}\n{stdout}\n{}", String::from_utf8_lossy(&run.stderr), net.logs());
    assert!(stdout.contains("a blob, sha256"), "{stdout}");
    assert_eq!(std::fs::read(&out).expect("the output file"), input.to_ascii_uppercase());
}
