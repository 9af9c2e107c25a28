//! The `blocks` gossip message (`BlockMsg`, WIRE.md): `BlockMsg::decode`, canonical, then what
//! validation checks: the commit is the block's, verifies, and the block is well formed.
#![no_main]

use cairn_fuzz::{assert_borsh_canonical, check_block, check_commit};
use cairn_wire::BlockMsg;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = BlockMsg::decode(data) {
        assert_borsh_canonical(data, &msg);
        assert!(msg.encode() == data);
        if msg.commit.block_hash == msg.block.hash() && msg.commit.height == msg.block.header.height {
            check_commit(&msg.commit);
        }
        check_block(&msg.block);
    }
});
