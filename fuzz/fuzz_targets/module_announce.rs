//! The `modules` gossip message (`ModuleAnnounce`, WIRE.md): `ModuleAnnounce::decode`,
//! canonical.
#![no_main]

use cairn_fuzz::assert_borsh_canonical;
use cairn_wire::ModuleAnnounce;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = ModuleAnnounce::decode(data) {
        assert_borsh_canonical(data, &msg);
        assert!(msg.encode() == data);
    }
});
