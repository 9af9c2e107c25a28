//! A `/cairn/sync/1` answer (`WIRE_VERSION || borsh(SyncResponse)`, the bytes inside the CBOR
//! byte string; WIRE.md): `Wire::decode`, canonical, then what the node checks of the blocks
//! and commits it carries.
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
        SyncResponse::Blob(_) | SyncResponse::Error(_) | SyncResponse::Proposed(None) => {}
    }
});
