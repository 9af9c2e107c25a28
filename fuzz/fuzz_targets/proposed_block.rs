//! The `proposals` gossip message (`ProposedBlock`, WIRE.md): `ProposedBlock::decode`,
//! canonical, then the block's structure checked.
#![no_main]

use cairn_fuzz::{assert_borsh_canonical, check_block};
use cairn_wire::ProposedBlock;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = ProposedBlock::decode(data) {
        assert_borsh_canonical(data, &msg);
        assert!(msg.encode() == data);
        for chain in cairn_fuzz::chains() {
            let _ = chain.validators.power_of(&msg.block.header.proposer);
        }
        check_block(&msg.block);
    }
});
