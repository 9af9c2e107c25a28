//! A key file (`{"version":1,"secret_key":…,"public_key":…}`, ledger/src/keys.rs):
//! `Keypair::from_json`, then its JSON written again decodes to the same key and is stable.
#![no_main]

use cairn_ledger::Keypair;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(key) = Keypair::from_json(text) {
        let json = key.to_json();
        let back = Keypair::from_json(&json).expect("a written key file reads back");
        assert_eq!(back.secret_bytes(), key.secret_bytes());
        assert_eq!(back.public(), key.public());
        assert_eq!(back.to_json(), json);
    }
});
