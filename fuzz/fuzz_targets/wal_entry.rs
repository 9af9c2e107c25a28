//! A consensus write-ahead log entry (`WAL_VERSION || borsh(WalEntry)`, consensus/src/wal.rs):
//! `WalEntry::decode`, canonical.
#![no_main]

use cairn_consensus::WalEntry;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(entry) = WalEntry::decode(data) {
        let again = entry.encode();
        assert!(again == data, "accepted a non-canonical WAL entry {entry:?}");
    }
});
