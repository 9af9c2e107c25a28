//! A `/cairn/sync/1` answer (`WIRE_VERSION || borsh(SyncResponse)`, the bytes inside the CBOR
//! byte string; WIRE.md): `Wire::decode`, canonical, then what the node checks of the blocks
//! and commits it carries, and a state chunk added to a restore (refused, never a panic).
#![no_main]

use cairn_fuzz::{check_block, check_commit};
use cairn_wire::{SyncResponse, Wire};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(response) = Wire(data.to_vec()).decode::<SyncResponse>("sync response") else {
        return;
    };
    let again = Wire::encode(&response).0;
    assert!(again == data, "accepted a non-canonical sync response {response:?}");
    match &response {
        SyncResponse::Blocks(blocks) => {
            for (block, commit) in blocks {
                if commit.block_hash == block.hash() && commit.height == block.header.height {
                    check_commit(commit);
                }
                check_block(block);
            }
        }
        SyncResponse::Proposed(Some(block)) => check_block(block),
        SyncResponse::Snapshot(Some(head)) => {
            let (block, commit) = &**head;
            check_block(block);
            check_commit(commit);
        }
        SyncResponse::StateChunk(Some(chunk)) => {
            // Against a root nobody can match: whatever the chunk, it is refused cleanly.
            let root = cairn_ledger::Hash::of(data);
            if let Ok(mut restore) = cairn_ledger::snapshot::StateRestore::new(7, root) {
                let _ = restore.add(chunk.clone());
            }
        }
        SyncResponse::Blob(_)
        | SyncResponse::Error(_)
        | SyncResponse::Proposed(None)
        | SyncResponse::Snapshot(None)
        | SyncResponse::StateChunk(None) => {}
    }
});
