//! The ledger's records in JSON (RPC.md: what `job_submit` and `tx_submit` take, what
//! `chain_getBlock` answers; the linked fixtures' `.json`): decoded, round-tripped, then
//! checked as a node or client checks them. The first byte picks the record.
#![no_main]

use cairn_fuzz::{assert_json_round_trip, check_block, check_commit, check_result, check_transaction};
use cairn_ledger::{Block, Commit, ExecutionReceipt, JobResult, SignedOffer, SignedTx, Transaction};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&kind, json)) = data.split_first() else {
        return;
    };
    match kind % 7 {
        0 => {
            if let Ok(offer) = serde_json::from_slice::<SignedOffer>(json) {
                assert_json_round_trip(&offer);
                let _ = offer.verify();
            }
        }
        1 => {
            if let Ok(tx) = serde_json::from_slice::<SignedTx>(json) {
                assert_json_round_trip(&tx);
                let _ = tx.verify();
            }
        }
        2 => {
            if let Ok(result) = serde_json::from_slice::<JobResult>(json) {
                assert_json_round_trip(&result);
                check_result(&result);
            }
        }
        3 => {
            if let Ok(tx) = serde_json::from_slice::<Transaction>(json) {
                assert_json_round_trip(&tx);
                check_transaction(&tx);
            }
        }
        4 => {
            if let Ok(block) = serde_json::from_slice::<Block>(json) {
                assert_json_round_trip(&block);
                check_block(&block);
            }
        }
        5 => {
            if let Ok(commit) = serde_json::from_slice::<Commit>(json) {
                assert_json_round_trip(&commit);
                check_commit(&commit);
            }
        }
        _ => {
            if let Ok(receipt) = serde_json::from_slice::<ExecutionReceipt>(json) {
                assert_json_round_trip(&receipt);
                let _ = receipt.verify();
            }
        }
    }
});
