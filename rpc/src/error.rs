//! Stable JSON-RPC error codes. Each error's message says what happened and what to do.
//!
//! | code | meaning |
//! |---|---|
//! | -32602 | invalid parameters (bad hex, wrong shape) — from JSON-RPC itself |
//! | -32001 | not found: unknown job, block, or module |
//! | -32002 | invalid transaction: breaks a chain rule (limits, deadline, chain id, duplicate) |
//! | -32003 | bad signature |
//! | -32004 | insufficient balance for the fee plus the escrow or amount |
//! | -32005 | wrong nonce |
//! | -32006 | invalid module: not wasm, or not the job ABI |
//! | -32007 | not yet finalized: no proof yet, retry after the `finalized` event |
//! | -32008 | overloaded: mempool or queue full, retry later |
//! | -32009 | module unknown: upload it with `module_put` first |
//! | -32603 | internal error: the node failed; see its log |

use jsonrpsee::types::ErrorObjectOwned;

/// Not found: unknown job, block, or module.
pub const NOT_FOUND: i32 = -32001;
/// Invalid transaction.
pub const INVALID_TX: i32 = -32002;
/// Bad signature.
pub const BAD_SIGNATURE: i32 = -32003;
/// Insufficient balance.
pub const INSUFFICIENT_BALANCE: i32 = -32004;
/// Wrong nonce.
pub const BAD_NONCE: i32 = -32005;
/// Invalid module.
pub const INVALID_MODULE: i32 = -32006;
/// Not yet finalized.
pub const NOT_FINALIZED: i32 = -32007;
/// Overloaded.
pub const OVERLOADED: i32 = -32008;
/// Module unknown.
pub const MODULE_UNKNOWN: i32 = -32009;
/// Internal error.
pub const INTERNAL: i32 = -32603;

/// An error object with `code` and `message`.
pub fn err(code: i32, message: impl Into<String>) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(code, message.into(), None::<()>)
}
