//! Why a transaction is refused.

use cairn_ledger::Hash;

/// Why a transaction cannot be applied. A refused transaction changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    /// The version or encoding is wrong.
    #[error("{0}")]
    Invalid(String),
    /// A signature does not verify (or the signer is not a valid public key).
    #[error("{0}")]
    BadSignature(String),
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
    Limit(String),
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
    /// The job could not be re-executed here (module or offer missing, sandbox failure): a
    /// failure of this node, not of the transaction, which may apply later.
    #[error("cannot re-execute the job: {0}")]
    Reexecution(String),
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

/// Result with [`TxError`].
pub type Result<T, E = TxError> = std::result::Result<T, E>;

impl From<cairn_ledger::Error> for TxError {
    fn from(e: cairn_ledger::Error) -> Self {
        match e {
            cairn_ledger::Error::BadSignature { .. } | cairn_ledger::Error::BadPublicKey => {
                TxError::BadSignature(e.to_string())
            }
            cairn_ledger::Error::Overflow(what) => TxError::Overflow(what),
            _ => TxError::Invalid(e.to_string()),
        }
    }
}
