//! Errors of the store.

/// What can go wrong reading or writing the store. Every one of them is fatal for a node
/// that is applying a block: the state in memory must never get ahead of the disk.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database failed, or belongs to another chain. Stop and check the disk (or the
    /// data folder).
    #[error("storage: {0}")]
    Storage(String),
    /// The database holds data that does not decode: it is corrupt or from another version.
    #[error("corrupt database: {0}")]
    Corrupt(String),
    /// A write that does not fit what is stored (a block that does not follow the head, a
    /// state update for another version): a bug of the caller, nothing was written.
    #[error("invalid: {0}")]
    Invalid(String),
    /// Computing the state tree's update failed (reading the stored tree).
    #[error(transparent)]
    Ledger(#[from] cairn_ledger::Error),
}

/// Result with the store's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
