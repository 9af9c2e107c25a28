//! Stable JSON-RPC error codes. Each error's message says what happened and what to do, and
//! its `data.reason` says it for programs (EIP-1474 style): the code's name, or for a refused
//! transaction the rule it broke.
//!
//! Cairn's own codes are in -33001..=-33099, a range JSON-RPC leaves to applications and that
//! jsonrpsee (the server library) never emits, so a code always has one meaning. The codes
//! JSON-RPC and jsonrpsee emit themselves are listed in [`LIBRARY_CODES`].

use jsonrpsee::types::ErrorObjectOwned;
use jsonrpsee::types::error as lib;

/// Not found: unknown job, block, or module.
pub const NOT_FOUND: i32 = -33001;
/// Invalid transaction: breaks a chain rule (limits, deadline, chain id, duplicate).
pub const INVALID_TX: i32 = -33002;
/// Bad signature.
pub const BAD_SIGNATURE: i32 = -33003;
/// Insufficient balance for the fee plus the escrow or amount.
pub const INSUFFICIENT_BALANCE: i32 = -33004;
/// Wrong nonce.
pub const BAD_NONCE: i32 = -33005;
/// Invalid module: not wasm, or not the job ABI.
pub const INVALID_MODULE: i32 = -33006;
/// Not yet finalized: no proof yet.
pub const NOT_FINALIZED: i32 = -33007;
/// Overloaded: the node takes no new work now, or the caller is over its rate.
pub const OVERLOADED: i32 = -33008;
/// Module unknown: upload it with `module_put` first.
pub const MODULE_UNKNOWN: i32 = -33009;
/// Blob unknown: not stored on this node, and no holder answered; upload it with `blob_put`.
pub const BLOB_UNKNOWN: i32 = -33010;
/// Internal error: the node failed (JSON-RPC's own code).
pub const INTERNAL: i32 = jsonrpsee::types::error::INTERNAL_ERROR_CODE;
/// Invalid parameters: bad hex, wrong shape (JSON-RPC's own code).
pub const INVALID_PARAMS: i32 = jsonrpsee::types::error::INVALID_PARAMS_CODE;

/// Cairn's codes, with their `data.reason` and meaning.
pub const CAIRN_CODES: [(i32, &str, &str); 10] = [
    (NOT_FOUND, "not_found", "unknown job, block or module"),
    (INVALID_TX, "invalid_tx", "the transaction breaks a chain rule"),
    (BAD_SIGNATURE, "bad_signature", "a signature does not verify"),
    (INSUFFICIENT_BALANCE, "insufficient_balance", "the balance cannot cover the fee and escrow or amount"),
    (BAD_NONCE, "bad_nonce", "the nonce is not the account's next one or within its window"),
    (INVALID_MODULE, "invalid_module", "not wasm, or not the job ABI"),
    (NOT_FINALIZED, "not_finalized", "no finalized receipt yet"),
    (OVERLOADED, "overloaded", "the node takes no new work now, or the caller is over its rate"),
    (MODULE_UNKNOWN, "module_unknown", "the module is not stored on this node"),
    (BLOB_UNKNOWN, "blob_unknown", "the blob is not stored on this node and no holder sent it"),
];

/// The codes JSON-RPC and the server library emit themselves, with their `data.reason` when
/// Cairn answers them and their meaning.
pub const LIBRARY_CODES: [(i32, &str, &str); 13] = [
    (lib::PARSE_ERROR_CODE, "parse_error", "the request is not JSON"),
    (lib::INVALID_REQUEST_CODE, "invalid_request", "the request is not a JSON-RPC request"),
    (lib::METHOD_NOT_FOUND_CODE, "method_not_found", "no such method"),
    (INVALID_PARAMS, "invalid_params", "the parameters have the wrong shape or encoding"),
    (INTERNAL, "internal", "the node failed; see its log"),
    (lib::CALL_EXECUTION_FAILED_CODE, "call_failed", "the call failed (library)"),
    (lib::BATCHES_NOT_SUPPORTED_CODE, "batches_not_supported", "batch requests are off (library)"),
    (
        lib::TOO_MANY_SUBSCRIPTIONS_CODE,
        "too_many_subscriptions",
        "the connection holds its most subscriptions (library)",
    ),
    (lib::OVERSIZED_REQUEST_CODE, "request_too_large", "the request is larger than the node takes (library)"),
    (lib::OVERSIZED_RESPONSE_CODE, "response_too_large", "the answer would be larger than the node sends (library)"),
    (lib::SERVER_IS_BUSY_CODE, "server_busy", "the server is busy (library)"),
    (lib::TOO_BIG_BATCH_REQUEST_CODE, "batch_too_large", "the batch holds more calls than the node takes (library)"),
    (
        lib::TOO_BIG_BATCH_RESPONSE_CODE,
        "batch_response_too_large",
        "the batch's answers would be larger than the node sends (library)",
    ),
];

/// The name (`data.reason`) of a code, Cairn's or the library's.
pub fn code_name(code: i32) -> Option<&'static str> {
    CAIRN_CODES.iter().chain(LIBRARY_CODES.iter()).find(|(c, _, _)| *c == code).map(|(_, name, _)| *name)
}

/// An error with `code`, `message`, and `data: {reason}` (the code's name).
pub fn err(code: i32, message: impl Into<String>) -> ErrorObjectOwned {
    with_reason(code, message, code_name(code).unwrap_or("error"))
}

/// An error with `code`, `message`, and `data: {reason}`.
pub fn with_reason(code: i32, message: impl Into<String>, reason: &str) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(code, message.into(), Some(serde_json::json!({ "reason": reason })))
}

/// [`OVERLOADED`] with `data: {reason: "overloaded", retry_after_ms}`.
pub fn overloaded(message: impl Into<String>, retry_after_ms: u64) -> ErrorObjectOwned {
    let data = serde_json::json!({ "reason": "overloaded", "retry_after_ms": retry_after_ms });
    ErrorObjectOwned::owned(OVERLOADED, message.into(), Some(data))
}

/// The `data.reason` of an error object, if it has one.
pub fn reason_of(e: &ErrorObjectOwned) -> Option<String> {
    let data: serde_json::Value = serde_json::from_str(e.data()?.get()).ok()?;
    Some(data.get("reason")?.as_str()?.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cairn_codes_are_outside_every_range_the_library_uses() {
        for (code, name, _) in CAIRN_CODES {
            assert!((-33099..=-33001).contains(&code), "{name}: {code}");
            assert!(!LIBRARY_CODES.iter().any(|(c, _, _)| *c == code), "{name} clashes");
        }
        // Every code the library defines is listed.
        use jsonrpsee::types::error as lib;
        for code in [
            lib::PARSE_ERROR_CODE,
            lib::INVALID_REQUEST_CODE,
            lib::METHOD_NOT_FOUND_CODE,
            lib::INVALID_PARAMS_CODE,
            lib::INTERNAL_ERROR_CODE,
            lib::CALL_EXECUTION_FAILED_CODE,
            lib::BATCHES_NOT_SUPPORTED_CODE,
            lib::TOO_MANY_SUBSCRIPTIONS_CODE,
            lib::OVERSIZED_REQUEST_CODE,
            lib::OVERSIZED_RESPONSE_CODE,
            lib::SERVER_IS_BUSY_CODE,
            lib::TOO_BIG_BATCH_REQUEST_CODE,
            lib::TOO_BIG_BATCH_RESPONSE_CODE,
        ] {
            assert!(code_name(code).is_some(), "library code {code} is listed");
        }
        let names: std::collections::BTreeSet<_> =
            CAIRN_CODES.iter().chain(LIBRARY_CODES.iter()).map(|(_, n, _)| *n).collect();
        assert_eq!(names.len(), CAIRN_CODES.len() + LIBRARY_CODES.len(), "reasons are unique");
    }

    #[test]
    fn docs_rpc_md_lists_every_code_with_its_reason() {
        let doc = include_str!("../../docs/RPC.md");
        for (code, name, _) in CAIRN_CODES {
            assert!(doc.contains(&format!("| {code} | `{name}` |")), "RPC.md lists {code} `{name}`");
        }
        for (code, name, _) in LIBRARY_CODES {
            assert!(
                doc.contains(&format!("| {code}")) || doc.contains(&format!(", {code} |")),
                "RPC.md lists {code} ({name})"
            );
        }
    }

    #[test]
    fn errors_carry_their_reason() {
        assert_eq!(reason_of(&err(NOT_FOUND, "x")).as_deref(), Some("not_found"));
        assert_eq!(reason_of(&with_reason(INVALID_TX, "x", "fee_below_minimum")).as_deref(), Some("fee_below_minimum"));
        let o = overloaded("busy", 300);
        assert_eq!(reason_of(&o).as_deref(), Some("overloaded"));
        assert!(o.data().expect("data").get().contains("\"retry_after_ms\":300"));
    }
}
