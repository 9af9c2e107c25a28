//! The parameters of the JSON-RPC methods (rpc/src/lib.rs, RPC.md), positional (an array) or
//! named (an object), decoded with the ledger's JSON decoders as the server does (jsonrpsee
//! parses each parameter with serde_json), then what the node does first with them (hex
//! decoding, signature checks). The first byte picks the method. Accepted parameters
//! round-trip in both forms, and hex parameters are canonical (lowercase, no prefix: what
//! `hex::encode` writes).
#![no_main]

use cairn_ledger::{Hash, PublicKey, SignedOffer, SignedTx};
use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// A positional parameter: absent is `null` (so only an `Option` may be left out).
fn positional<T: DeserializeOwned>(item: Option<Box<RawValue>>) -> Option<T> {
    match item {
        Some(raw) => serde_json::from_str(raw.get()).ok(),
        None => serde_json::from_str("null").ok(),
    }
}

macro_rules! method {
    ($name:ident { $($field:ident : $ty:ty),* }) => {
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        struct $name {
            $($field: $ty),*
        }

        impl $name {
            fn parse(text: &str) -> Option<$name> {
                if text.trim_start().starts_with('{') {
                    return serde_json::from_str(text).ok();
                }
                let items: Vec<Box<RawValue>> = serde_json::from_str(text).ok()?;
                let mut items = items.into_iter();
                Some($name { $($field: positional(items.next())?),* })
            }

            fn positional_json(&self) -> String {
                let items: Vec<String> =
                    vec![$(serde_json::to_string(&self.$field).expect("encodes")),*];
                format!("[{}]", items.join(","))
            }

            /// Parses; if accepted, both forms of the parameters decode to the same again.
            fn fuzz(text: &str) -> Option<$name> {
                let params = $name::parse(text)?;
                let named = serde_json::to_string(&params).expect("encodes");
                assert_eq!($name::parse(&named).as_ref(), Some(&params), "named form: {named}");
                let positional = params.positional_json();
                assert_eq!($name::parse(&positional).as_ref(), Some(&params), "positional form: {positional}");
                Some(params)
            }
        }
    };
}

method!(ModulePut { wasm_hex: String });
method!(JobSubmit { offer: SignedOffer });
method!(TxSubmit { tx: SignedTx });
// job_get, job_proofs, job_subscribe.
method!(ByJob { job_id: Hash });
method!(JobProof { job_id: Hash, provider: Option<PublicKey> });
method!(ChainGetBlock { height: u64 });
method!(AccountGet { address: PublicKey });
method!(StateGetProof { key_hex: String, height: Option<u64> });

/// `decode_hex`'s rule: what it accepts is what `hex::encode` writes.
fn check_hex(text: &str) {
    if let Ok(bytes) = cairn_ledger::decode_hex(text, "parameter") {
        assert_eq!(hex::encode(bytes), text, "accepted non-canonical hex");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&method, params)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(params) else {
        return;
    };
    match method % 8 {
        0 => {
            if let Some(p) = ModulePut::fuzz(text) {
                check_hex(&p.wasm_hex);
            }
        }
        1 => {
            if let Some(p) = JobSubmit::fuzz(text) {
                let _ = p.offer.verify();
                let _ = p.offer.job_id();
            }
        }
        2 => {
            if let Some(p) = TxSubmit::fuzz(text) {
                let _ = p.tx.verify();
            }
        }
        3 => {
            let _ = ByJob::fuzz(text);
        }
        4 => {
            let _ = JobProof::fuzz(text);
        }
        5 => {
            let _ = ChainGetBlock::fuzz(text);
        }
        6 => {
            let _ = AccountGet::fuzz(text);
        }
        _ => {
            if let Some(p) = StateGetProof::fuzz(text) {
                check_hex(&p.key_hex);
            }
        }
    }
});
