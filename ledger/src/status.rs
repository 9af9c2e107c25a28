//! How a job's execution ended.

use borsh::{BorshDeserialize, BorshSerialize};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The longest reason a failed job's output may hold, in bytes. For every status but
/// [`JobStatus::Ok`] a job's output is the reason it failed: UTF-8 text of at most this
/// many bytes that every node computes the same way (`docs/JOB-ABI.md` §6), so receipts
/// commit to it and re-executions compare it.
pub const REASON_BYTES_MAX: usize = 1_280;

/// How a job's execution ended. Part of every signed result and receipt: the byte values
/// are frozen (`borsh` encodes the variant index as one byte, in declaration order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, BorshSerialize, BorshDeserialize)]
#[borsh(use_discriminant = true)]
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// `run` returned; the output is what it returned.
    Ok = 0,
    /// The guest trapped (unreachable, out-of-bounds access, division by zero, too deep a
    /// recursion, explicit abort). The output is the reason ([`REASON_BYTES_MAX`]).
    Trap = 1,
    /// The fuel limit was reached; `fuel_used` equals the limit. The output is the reason.
    OutOfFuel = 2,
    /// The guest needed more memory than the sandbox allows. The output is the reason.
    MemoryLimit = 3,
    /// The module failed validation or does not follow the job ABI. The output is the
    /// reason (the rule it broke) and no fuel is charged.
    InvalidModule = 4,
    /// The guest returned an output larger than allowed. The output is the reason.
    OutputTooLarge = 5,
}

impl JobStatus {
    /// Every status, in byte order.
    pub const ALL: [JobStatus; 6] = [
        JobStatus::Ok,
        JobStatus::Trap,
        JobStatus::OutOfFuel,
        JobStatus::MemoryLimit,
        JobStatus::InvalidModule,
        JobStatus::OutputTooLarge,
    ];

    /// The status's stable lowercase name, as used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Ok => "ok",
            JobStatus::Trap => "trap",
            JobStatus::OutOfFuel => "out_of_fuel",
            JobStatus::MemoryLimit => "memory_limit",
            JobStatus::InvalidModule => "invalid_module",
            JobStatus::OutputTooLarge => "output_too_large",
        }
    }
}

impl std::fmt::Display for JobStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
