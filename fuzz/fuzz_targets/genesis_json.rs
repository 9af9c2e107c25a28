//! A genesis file (`genesis.json`, ledger/src/genesis.rs): decoded as `Genesis::load` does,
//! validated, round-tripped; the chain id and validator set computed.
#![no_main]

use cairn_fuzz::assert_json_round_trip;
use cairn_ledger::Genesis;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(genesis) = serde_json::from_str::<Genesis>(text) {
        assert_json_round_trip(&genesis);
        let _ = genesis.chain_id();
        if genesis.validate().is_ok() {
            let set = genesis.validator_set().expect("a valid genesis has a validator set");
            let _ = set.total_power();
        }
    }
});
