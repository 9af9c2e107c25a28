//! A signed job offer, borsh (`SignedOffer`, PROOFS.md "Record layouts"): canonical, then its
//! version and signature checked and its escrow computed; its JSON form round-trips.
#![no_main]

use cairn_fuzz::{assert_borsh_canonical, assert_json_round_trip};
use cairn_ledger::SignedOffer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(offer) = cairn_ledger::decode::<SignedOffer>("offer", data, cairn_wire::BATCH_MESSAGE_BYTES_MAX) {
        assert_borsh_canonical(data, &offer);
        let _ = offer.verify();
        let _ = offer.job_id();
        let _ = offer.offer.escrow();
        assert_json_round_trip(&offer);
    }
});
