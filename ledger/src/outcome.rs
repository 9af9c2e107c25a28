//! What an execution's result states: the digest every provider's result, every re-execution
//! and every dispute compares.

use borsh::{BorshDeserialize, BorshSerialize};

use crate::{Hash, JobStatus, ResultClaim};

/// The outcome of running a job, reduced to what a result claims and a receipt commits to:
/// compared between the providers of a job and with a re-execution.
///
/// Part of the chain state (a job's deliveries and its verified outcome): its borsh encoding
/// is frozen — the output hash (32 bytes), the fuel used (u64 little-endian), the status (one
/// byte).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, BorshSerialize, BorshDeserialize)]
pub struct Outcome {
    /// SHA-256 of the output (for any status but `Ok`, of the reason).
    pub output_hash: Hash,
    /// Fuel consumed.
    pub fuel_used: u64,
    /// How the run ended.
    pub status: JobStatus,
}

impl Outcome {
    /// The outcome a result claims.
    pub fn of(claim: &ResultClaim) -> Outcome {
        Outcome { output_hash: claim.output_hash, fuel_used: claim.fuel_used, status: claim.status }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_encoding_is_hash_then_fuel_then_status() {
        let outcome = Outcome { output_hash: Hash([7; 32]), fuel_used: 0x0102, status: JobStatus::OutOfFuel };
        let mut expected = vec![7; 32];
        expected.extend_from_slice(&0x0102u64.to_le_bytes());
        expected.push(2);
        assert_eq!(borsh::to_vec(&outcome).expect("encodes"), expected);
    }
}
