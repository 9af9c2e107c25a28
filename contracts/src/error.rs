//! Why a transaction is refused.

use cairn_ledger::Hash;

/// Why a transaction cannot be applied. A refused transaction changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    /// The version or encoding is wrong, or the record breaks a rule of its format.
    #[error("{0}")]
    Invalid(cairn_ledger::Error),
    /// A signature does not verify (or the signer is not a valid public key).
    #[error("{0}")]
    BadSignature(cairn_ledger::Error),
    /// Only offers and account transactions are submitted: results come from providers over
    /// gossip, resolutions from block proposers.
    #[error(
        "only offers and account transactions are submitted: results come from providers over gossip, resolutions from block proposers"
    )]
    NotSubmittable,
    /// The offer names another chain.
    #[error("the offer is for another chain (its chain_id is not this genesis's)")]
    WrongChain,
    /// The account nonce does not match: a block needs the next one, the mempool one within
    /// `NONCE_WINDOW` of it.
    #[error(
        "nonce {got} is wrong: the account's next nonce is {expected}, and a pending transaction's may be at most \
         {window} past it (read next_nonce with account_get)",
        window = crate::NONCE_WINDOW - 1
    )]
    Nonce {
        /// The account's next nonce.
        expected: u64,
        /// The nonce given.
        got: u64,
    },
    /// The account cannot cover what the transaction spends (on top of what its other pending
    /// transactions spend, at admission).
    #[error(
        "balance {balance} cannot cover {escrow}: the fee plus an offer's escrow (fuel_limit × max_price × redundancy) or a transaction's amount, after the account's other pending transactions; lower them, wait for those to be included, or fund the account"
    )]
    InsufficientBalance {
        /// The account balance left after its other pending transactions.
        balance: u64,
        /// What is needed: the fee plus the escrow (an offer) or the amount (a transaction).
        escrow: u64,
    },
    /// A field is outside what the chain allows.
    #[error("{0}")]
    Limit(Limit),
    /// Fewer eligible providers than the redundancy asked for ask at most the offered price.
    #[error(
        "fewer than {needed} eligible providers ask at most {max_price} per unit of fuel; raise max_price or lower the redundancy"
    )]
    NoProvider {
        /// The offered price.
        max_price: u64,
        /// The providers needed (the offer's redundancy).
        needed: u8,
    },
    /// Fewer eligible providers than the redundancy asked for, in the regions an offer allows
    /// only, ask at most the offered price.
    #[error(
        "fewer than {needed} eligible providers in the offer's regions ask at most {max_price} per unit of fuel; prefer the regions instead of requiring them, raise max_price or lower the redundancy"
    )]
    NoProviderInRegions {
        /// The offered price.
        max_price: u64,
        /// The providers needed (the offer's redundancy).
        needed: u8,
    },
    /// The job already exists.
    #[error("job {0} already exists")]
    DuplicateJob(Hash),
    /// The job is unknown.
    #[error("job {0} is unknown on chain")]
    UnknownJob(Hash),
    /// The job is not open for results.
    #[error("job {0} is not open: it was completed or expired")]
    JobClosed(Hash),
    /// The provider is not assigned to the job.
    #[error("provider {0} is not assigned to this job")]
    NotAssigned(cairn_ledger::PublicKey),
    /// The slot the provider holds (or held) already has a result.
    #[error("the slot of provider {0} on this job already has a result")]
    SlotFilled(cairn_ledger::PublicKey),
    /// The job cannot be re-executed where this transaction is applied (a check without a
    /// sandbox): not the transaction's fault, it may apply where re-executions run.
    #[error("job {0} cannot be re-executed here")]
    ReexecutionUnavailable(Hash),
    /// The re-execution this transaction needs has not finished on this node yet (validators
    /// run them ahead of the blocks that need them): it may apply later.
    #[error("the re-execution of job {0} is not ready on this node yet")]
    ReexecutionPending(Hash),
    /// The block already holds `REEXECUTIONS_PER_BLOCK_MAX` re-executions: the transaction
    /// waits for a later block.
    #[error("the block already needs the most re-executions a block may need")]
    TooManyReexecutions,
    /// The result does not match the job.
    #[error("the result does not match the job: {0}")]
    Mismatch(&'static str),
    /// The sender is not a registered provider.
    #[error("{0} is not a registered provider; register with a stake first")]
    NotProvider(cairn_ledger::PublicKey),
    /// Arithmetic overflow.
    #[error("{0} overflows")]
    Overflow(&'static str),
}

/// A field outside what the chain allows, with the bound it broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Limit {
    /// The genesis balances and stakes add up to more than `u64::MAX`.
    #[error("genesis balances and stakes add up to more than u64::MAX")]
    GenesisSupply,
    /// The fee is below the chain's minimum.
    #[error("the fee must be at least {min}")]
    Fee {
        /// `tx_fee_min`.
        min: u64,
    },
    /// The redundancy is 0 or above `REDUNDANCY_MAX`.
    #[error("redundancy must be between 1 and {max}")]
    Redundancy {
        /// `REDUNDANCY_MAX`.
        max: u8,
    },
    /// The fuel limit is 0 or above the chain's maximum.
    #[error("fuel_limit must be between 1 and {max}")]
    FuelLimit {
        /// `fuel_limit_max`.
        max: u64,
    },
    /// The input is larger than the chain allows.
    #[error("input is larger than {max} bytes")]
    Input {
        /// `input_bytes_max`.
        max: u32,
    },
    /// An offer names an input blob and also carries an inline input.
    #[error("an offer with an input_blob carries no inline input")]
    InputAndBlob,
    /// The assignment height is not a finalized height inside the assignment window.
    #[error("assignment_height {got} must be a finalized height within {window} blocks of the head {head}")]
    AssignmentHeight {
        /// The offer's assignment height.
        got: u64,
        /// `assignment_window_blocks`.
        window: u64,
        /// The head's height.
        head: u64,
    },
    /// The deadline is in the past or too far ahead.
    #[error("deadline_height {got} must be between {min} and {max}")]
    Deadline {
        /// The offer's deadline height.
        got: u64,
        /// The height being built.
        min: u64,
        /// The latest deadline allowed.
        max: u64,
    },
    /// A provider's capacity is 0.
    #[error("a provider's capacity must be at least 1")]
    Capacity,
    /// The registry is full.
    #[error("at most {max} providers can be registered")]
    Providers {
        /// `PROVIDERS_MAX`.
        max: usize,
    },
    /// The stake would be below the chain's minimum.
    #[error("a provider's stake must be at least {min}")]
    Stake {
        /// `stake_min`.
        min: u64,
    },
    /// An unbonding of 0 or of more than the stake.
    #[error("unbond between 1 and the stake ({stake})")]
    Unbond {
        /// The provider's stake.
        stake: u64,
    },
    /// Too many unbondings in flight.
    #[error("at most {max} unbondings at once")]
    Unbondings {
        /// `UNBONDING_ENTRIES_MAX`.
        max: usize,
    },
    /// A challenge of a job that has no result inside its challenge window.
    #[error("only a job with a result inside its challenge window can be challenged")]
    NotChallengeable,
    /// A challenge bond below the chain's minimum.
    #[error("the bond must be at least {min}")]
    Bond {
        /// `challenge_bond_min`.
        min: u64,
    },
    /// A challenge after the job's window closed.
    #[error("the challenge window of this job has closed")]
    ChallengeWindowClosed,
    /// A resolution of a job that waits for none.
    #[error("job {0} waits for no re-execution")]
    NothingToResolve(Hash),
    /// A region's name is not one.
    #[error(
        "a region is 1 to {max} bytes of lowercase letters, digits and '-', starting and ending with a letter or a digit"
    )]
    Region {
        /// `REGION_BYTES_MAX`.
        max: usize,
    },
    /// An offer's placement names no region, too many, or one twice.
    #[error("a placement that prefers or requires regions names 1 to {max} distinct ones; use anywhere for none")]
    PlacementRegions {
        /// `PLACEMENT_REGIONS_MAX`.
        max: usize,
    },
}

impl TxError {
    /// Fewer eligible providers than `needed` at `max_price`: in the offer's regions if its
    /// placement allows those only.
    pub fn no_provider(max_price: u64, needed: u8, placement: &cairn_ledger::Placement) -> TxError {
        match placement {
            cairn_ledger::Placement::Only { .. } => TxError::NoProviderInRegions { max_price, needed },
            cairn_ledger::Placement::Anywhere | cairn_ledger::Placement::Prefer { .. } => {
                TxError::NoProvider { max_price, needed }
            }
        }
    }

    /// The rule broken, for programs (`data.reason` of an RPC error): stable snake_case.
    pub fn reason(&self) -> &'static str {
        match self {
            TxError::Invalid(_) => "invalid_encoding",
            TxError::BadSignature(_) => "bad_signature",
            TxError::NotSubmittable => "not_submittable",
            TxError::WrongChain => "wrong_chain",
            TxError::Nonce { .. } => "bad_nonce",
            TxError::InsufficientBalance { .. } => "insufficient_balance",
            TxError::Limit(limit) => limit.reason(),
            TxError::NoProvider { .. } => "no_eligible_provider",
            TxError::NoProviderInRegions { .. } => "no_eligible_provider_in_regions",
            TxError::DuplicateJob(_) => "duplicate_job",
            TxError::UnknownJob(_) => "unknown_job",
            TxError::JobClosed(_) => "job_closed",
            TxError::NotAssigned(_) => "not_assigned",
            TxError::SlotFilled(_) => "slot_filled",
            TxError::ReexecutionUnavailable(_) => "reexecution_unavailable",
            TxError::ReexecutionPending(_) => "reexecution_pending",
            TxError::TooManyReexecutions => "too_many_reexecutions",
            TxError::Mismatch(_) => "result_mismatch",
            TxError::NotProvider(_) => "not_a_provider",
            TxError::Overflow(_) => "overflow",
        }
    }
}

impl Limit {
    /// The bound broken, for programs: stable snake_case.
    pub fn reason(&self) -> &'static str {
        match self {
            Limit::GenesisSupply => "genesis_supply_overflow",
            Limit::Fee { .. } => "fee_below_minimum",
            Limit::Redundancy { .. } => "redundancy_out_of_range",
            Limit::FuelLimit { .. } => "fuel_limit_out_of_range",
            Limit::Input { .. } => "input_too_large",
            Limit::InputAndBlob => "input_and_input_blob",
            Limit::AssignmentHeight { .. } => "assignment_height_out_of_window",
            Limit::Deadline { .. } => "deadline_out_of_range",
            Limit::Capacity => "capacity_zero",
            Limit::Providers { .. } => "provider_registry_full",
            Limit::Stake { .. } => "stake_below_minimum",
            Limit::Unbond { .. } => "unbond_out_of_range",
            Limit::Unbondings { .. } => "too_many_unbondings",
            Limit::NotChallengeable => "not_challengeable",
            Limit::Bond { .. } => "bond_below_minimum",
            Limit::ChallengeWindowClosed => "challenge_window_closed",
            Limit::NothingToResolve(_) => "nothing_to_resolve",
            Limit::Region { .. } => "bad_region",
            Limit::PlacementRegions { .. } => "bad_placement",
        }
    }
}

/// Result with [`TxError`].
pub type Result<T, E = TxError> = std::result::Result<T, E>;

impl From<cairn_ledger::Error> for TxError {
    fn from(e: cairn_ledger::Error) -> Self {
        match e {
            cairn_ledger::Error::BadSignature { .. } | cairn_ledger::Error::BadPublicKey => TxError::BadSignature(e),
            cairn_ledger::Error::Overflow(what) => TxError::Overflow(what),
            e => TxError::Invalid(e),
        }
    }
}
