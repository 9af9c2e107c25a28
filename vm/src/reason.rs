//! The reason a job failed, as its output states it.
//!
//! For every status but `Ok`, a job's output is its reason: UTF-8 text of at most
//! [`REASON_BYTES_MAX`] bytes, built only from what every node computes the same way (the
//! kind of trap, the abort text, the limit hit, the validation rule broken), never from
//! addresses, timings or the compiler. It is part of the job ABI (`docs/JOB-ABI.md` §6):
//! receipts commit to it through the output hash, and re-executions compare it.

use wasmer::RuntimeError;
use wasmer::sys::vm::TrapCode;

use crate::{InternalError, VmError};

pub use cairn_ledger::REASON_BYTES_MAX;

/// `text`, cut to at most [`REASON_BYTES_MAX`] bytes at a character boundary.
pub(crate) fn bounded(mut text: String) -> String {
    if text.len() > REASON_BYTES_MAX {
        let mut end = REASON_BYTES_MAX;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// The reason of `InvalidModule`: the rule the module broke.
pub(crate) fn invalid_module(error: &VmError) -> String {
    bounded(error.to_string())
}

/// What a trap of compiled code says, by kind. Kinds that two correct compilers could tell
/// apart differently for the same instruction are one reason: a failed `call_indirect` is
/// one reason whether its index was out of the table, its element null or of another type.
/// A native stack overflow is never a job's reason: the stack units (`docs/FUEL.md` §4)
/// always stop a job first, so meeting one is a failure of this node.
pub(crate) fn trap_kind(error: RuntimeError) -> Result<&'static str, InternalError> {
    Ok(match error.to_trap() {
        Some(TrapCode::UnreachableCodeReached) => "unreachable executed",
        Some(TrapCode::HeapAccessOutOfBounds | TrapCode::HeapMisaligned) => "out-of-bounds memory access",
        Some(TrapCode::TableAccessOutOfBounds | TrapCode::IndirectCallToNull | TrapCode::BadSignature) => {
            "indirect call or table access failed (index out of the table, null element, or wrong type)"
        }
        Some(TrapCode::IntegerDivisionByZero) => "integer division by zero",
        Some(TrapCode::IntegerOverflow | TrapCode::BadConversionToInteger) => {
            "integer overflow (division, or conversion of a float out of range or NaN)"
        }
        Some(TrapCode::StackOverflow) => {
            return Err(InternalError::new("the native stack overflowed before the job's stack units ran out"));
        }
        // Atomics, exceptions and async are off: nothing reaches these.
        Some(
            TrapCode::UnalignedAtomic
            | TrapCode::UncaughtException
            | TrapCode::UninitializedExnRef
            | TrapCode::YieldOutsideAsyncContext,
        )
        | None => "trap",
    })
}
