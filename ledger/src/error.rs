//! Errors of the ledger crate.

/// What can go wrong in the ledger: decoding, verification, and reading the state tree.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Bytes that should be hex are not, or have the wrong length.
    #[error("invalid {what} hex: {reason}")]
    Hex {
        /// What was being parsed.
        what: &'static str,
        /// Why it failed.
        reason: String,
    },
    /// Bytes that should be borsh for a type are not.
    #[error("cannot decode {what}: {reason}")]
    Decode {
        /// The type being decoded.
        what: &'static str,
        /// Why it failed.
        reason: String,
    },
    /// Something is larger than its limit.
    #[error("{what} is {size} bytes/items, more than the limit of {max}")]
    TooLarge {
        /// What was too large.
        what: &'static str,
        /// Its size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// A record carries a version this node does not know.
    #[error("unsupported {what} version {version}; this node understands version 1 — upgrade it")]
    Version {
        /// The record.
        what: &'static str,
        /// The version found.
        version: u8,
    },
    /// 32 bytes that are not an ed25519 public key.
    #[error("not a valid ed25519 public key")]
    BadPublicKey,
    /// A signature that does not verify.
    #[error("bad signature in domain {domain}: it was not made by this key over these bytes")]
    BadSignature {
        /// The signing domain.
        domain: String,
    },
    /// A commit without enough voting power.
    #[error("commit has {signed} of {total} voting power; more than 2/3 is needed")]
    NoQuorum {
        /// Power that signed.
        signed: u64,
        /// Total power.
        total: u64,
    },
    /// A record that is well-formed but breaks a rule.
    #[error("invalid: {0}")]
    Invalid(String),
    /// Arithmetic that would overflow.
    #[error("{0} overflows")]
    Overflow(&'static str),
    /// A receipt proof that does not hold.
    #[error("proof does not verify: {0}")]
    Proof(String),
    /// A key file that cannot be used.
    #[error("key file: {0}")]
    KeyFile(String),
    /// A genesis file that cannot be used.
    #[error("genesis: {0}")]
    Genesis(String),
    /// The state tree's storage (the [`TreeReader`](jmt::storage::TreeReader) an update is
    /// computed over) failed. Fatal for a node: stop and check the disk.
    #[error("storage: {0}")]
    Storage(String),
}

/// Result with the ledger's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Decodes borsh `bytes` as a `T`, refusing more than `bytes_max` bytes and trailing bytes.
pub fn decode<T: borsh::BorshDeserialize>(what: &'static str, bytes: &[u8], bytes_max: usize) -> Result<T> {
    if bytes.len() > bytes_max {
        return Err(Error::TooLarge { what, size: bytes.len(), max: bytes_max });
    }
    borsh::from_slice(bytes).map_err(|e| Error::Decode { what, reason: e.to_string() })
}
