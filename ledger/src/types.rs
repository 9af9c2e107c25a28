//! The signed, versioned records of Cairn: offers, results, receipts, transactions, blocks,
//! votes and commits.
//!
//! Every type here is encoded with borsh for hashing, signing, storage and gossip (its bytes are
//! pinned by the fixture tests in `tests.rs`), and with serde as JSON at the RPC edge.
//! Each top-level record starts with a `version` byte, currently [`FORMAT_VERSION`].

use borsh::{BorshDeserialize, BorshSerialize};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::hash::hex_bytes;
use crate::keys::{Domain, Keypair, PublicKey, Signature, SignatureBatch, SignatureSink, VerifyNow};
use crate::placement::Placement;
use crate::schema::HexBytes;
use crate::{Error, Hash, JobStatus, REASON_BYTES_MAX, Result};

/// The version byte every record of this format carries.
pub const FORMAT_VERSION: u8 = 1;

/// The largest job data blob: an input an offer names by hash ([`JobOffer::input_blob`]) or
/// an output a result leaves in a blob ([`JobResult::output_in_blob`]). A protocol constant:
/// a job whose output exceeds it ends `output_too_large` on every node. One blob travels as one
/// request-response message.
pub const DATA_BLOB_BYTES_MAX: usize = 4 << 20;

fn check_version(what: &'static str, version: u8) -> Result<()> {
    if version == FORMAT_VERSION { Ok(()) } else { Err(Error::Version { what, version }) }
}

/// A client's offer to pay for one execution of a module on an input.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JobOffer {
    /// Format version ([`FORMAT_VERSION`]).
    pub version: u8,
    /// The chain this offer is for (its genesis hash); prevents replay on another chain.
    pub chain_id: Hash,
    /// The paying client.
    pub client: PublicKey,
    /// The client's account nonce; offers of one client are applied in nonce order.
    pub nonce: u64,
    /// The fee, burned when the offer is included (on top of the escrow); at least the chain's
    /// `tx_fee_min`.
    pub fee: u64,
    /// SHA-256 of the module's wasm bytes.
    pub module_id: Hash,
    /// The input given to the job.
    #[serde(with = "hex_bytes")]
    #[schemars(with = "HexBytes")]
    pub input: Vec<u8>,
    /// The most fuel the job may use.
    pub fuel_limit: u64,
    /// The highest price per unit of fuel the client accepts.
    pub max_price: u64,
    /// How many providers must execute the job (k: the escrow covers k executions).
    pub redundancy: u8,
    /// A recent finalized height the client saw (freshness: the offer is refused once the head
    /// is more than `assignment_window_blocks` past it). The assignment itself is ranked from
    /// the provider registry when the offer is included.
    pub assignment_height: u64,
    /// The height after which an unexecuted job is refunded.
    pub deadline_height: u64,
    /// Where the job may run: which providers' regions are ranked first, or only ones allowed
    /// (absent in JSON: anywhere).
    #[serde(default)]
    pub placement: Placement,
    /// The input as a blob, by its SHA-256 (at most [`DATA_BLOB_BYTES_MAX`] bytes), instead of
    /// inline: `input` is then empty. Providers fetch it from any holder (absent in JSON: none).
    #[serde(default)]
    pub input_blob: Option<Hash>,
}

impl JobOffer {
    /// The escrow locked when the offer is included: `fuel_limit × max_price × redundancy`.
    pub fn escrow(&self) -> Result<u64> {
        self.fuel_limit
            .checked_mul(self.max_price)
            .and_then(|e| e.checked_mul(u64::from(self.redundancy)))
            .ok_or(Error::Overflow("escrow"))
    }

    /// SHA-256 of the input: the input blob's id, or the hash of the inline input.
    pub fn input_hash(&self) -> Hash {
        self.input_blob.unwrap_or_else(|| Hash::of(&self.input))
    }

    /// Signs the offer with the client's key.
    pub fn sign(self, key: &Keypair) -> SignedOffer {
        let signature = key.sign(Domain::JobOffer, &self);
        SignedOffer { offer: self, signature }
    }
}

/// A job offer with its client's signature. Its hash is the job id.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SignedOffer {
    /// The offer.
    pub offer: JobOffer,
    /// The client's signature over the offer in domain `cairn/v1/job-offer`.
    pub signature: Signature,
}

impl SignedOffer {
    /// `job_id = sha256(borsh(signed offer))`.
    pub fn job_id(&self) -> Hash {
        Hash::of_borsh(self)
    }

    /// Checks the version and the client's signature.
    pub fn verify(&self) -> Result<()> {
        self.verify_with(&mut VerifyNow)
    }

    /// [`SignedOffer::verify`], its signature checked by `sigs` (at once, or queued in a batch).
    pub fn verify_with<S: SignatureSink>(&self, sigs: &mut S) -> Result<()> {
        check_version("job offer", self.offer.version)?;
        sigs.check(&self.offer.client, Domain::JobOffer, &self.offer, &self.signature)
    }
}

/// What a provider signs about one execution: everything a receipt proves, except the output
/// bytes themselves (committed to by their hash).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResultClaim {
    /// Format version ([`FORMAT_VERSION`]).
    pub version: u8,
    /// The job (hash of the signed offer).
    pub job_id: Hash,
    /// The module that ran.
    pub module_id: Hash,
    /// SHA-256 of the input it ran on.
    pub input_hash: Hash,
    /// SHA-256 of the output (of the failure's reason unless the status is `ok`).
    pub output_hash: Hash,
    /// Fuel the execution used.
    pub fuel_used: u64,
    /// How the execution ended.
    pub status: JobStatus,
    /// The provider that executed it and signs this claim.
    pub provider: PublicKey,
}

/// A provider's signed result, with the output bytes. Gossiped on the results topic and
/// included in blocks as a transaction.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JobResult {
    /// The signed claim.
    pub claim: ResultClaim,
    /// The provider's signature over the claim in domain `cairn/v1/job-result`.
    pub signature: Signature,
    /// The output bytes; their hash is `claim.output_hash`. Empty when the output is in a blob.
    #[serde(with = "hex_bytes")]
    #[schemars(with = "HexBytes")]
    pub output: Vec<u8>,
    /// Whether the output is the blob named `claim.output_hash` (held by the provider and
    /// announced in the DHT) rather than `output`: for an `ok` output larger than the chain's
    /// `output_bytes_max`. Not signed: a node admits such a result only once it holds the blob
    /// (absent in JSON: false).
    #[serde(default)]
    pub output_in_blob: bool,
}

impl JobResult {
    /// Signs `claim` and attaches `output`.
    pub fn new(claim: ResultClaim, output: Vec<u8>, key: &Keypair) -> JobResult {
        let signature = key.sign(Domain::JobResult, &claim);
        JobResult { claim, signature, output, output_in_blob: false }
    }

    /// Signs `claim`, whose output is the blob named `claim.output_hash`.
    pub fn with_output_in_blob(claim: ResultClaim, key: &Keypair) -> JobResult {
        let signature = key.sign(Domain::JobResult, &claim);
        JobResult { claim, signature, output: Vec::new(), output_in_blob: true }
    }

    /// Checks the version, the provider's signature, the output's hash and size.
    pub fn verify(&self, output_bytes_max: usize) -> Result<()> {
        self.verify_with(output_bytes_max, &mut VerifyNow)
    }

    /// [`JobResult::verify`], its signature checked by `sigs` (at once, or queued in a batch).
    pub fn verify_with<S: SignatureSink>(&self, output_bytes_max: usize, sigs: &mut S) -> Result<()> {
        check_version("job result", self.claim.version)?;
        if self.output_in_blob {
            if !self.output.is_empty() || self.claim.status != JobStatus::Ok {
                return Err(Error::Invalid(
                    "a result whose output is in a blob has status ok and no inline output".into(),
                ));
            }
            return sigs.check(&self.claim.provider, Domain::JobResult, &self.claim, &self.signature);
        }
        if self.output.len() > output_bytes_max {
            return Err(Error::TooLarge { what: "job output", size: self.output.len(), max: output_bytes_max });
        }
        if self.claim.status != JobStatus::Ok
            && (self.output.len() > REASON_BYTES_MAX || std::str::from_utf8(&self.output).is_err())
        {
            return Err(Error::Invalid(format!(
                "a result whose status is not ok carries its reason as output: UTF-8 text of at most \
                 {REASON_BYTES_MAX} bytes"
            )));
        }
        if Hash::of(&self.output) != self.claim.output_hash {
            return Err(Error::Invalid("output does not match output_hash".into()));
        }
        sigs.check(&self.claim.provider, Domain::JobResult, &self.claim, &self.signature)
    }

    /// The receipt this result becomes once accepted in a block.
    pub fn receipt(&self) -> ExecutionReceipt {
        ExecutionReceipt { version: FORMAT_VERSION, claim: self.claim.clone(), provider_signature: self.signature }
    }
}

/// The record of one accepted execution: a leaf of its block's receipt root.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecutionReceipt {
    /// Format version ([`FORMAT_VERSION`]).
    pub version: u8,
    /// The provider's claim.
    pub claim: ResultClaim,
    /// The provider's signature over the claim.
    pub provider_signature: Signature,
}

impl ExecutionReceipt {
    /// Checks the version and the provider's signature.
    pub fn verify(&self) -> Result<()> {
        check_version("execution receipt", self.version)?;
        check_version("result claim", self.claim.version)?;
        self.claim.provider.verify(Domain::JobResult, &self.claim, &self.provider_signature)
    }

    /// The receipt's Merkle leaf hash: `sha256(0x00 || borsh(receipt))`.
    pub fn leaf_hash(&self) -> Hash {
        crate::merkle::leaf_hash(&borsh::to_vec(self).expect("borsh encoding into a Vec cannot fail"))
    }
}

/// What an account's transaction does.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Action {
    /// Moves `amount` from the sender to `to`.
    Transfer {
        /// The recipient.
        to: PublicKey,
        /// How much.
        amount: u64,
    },
    /// Registers the sender as a provider (or adds stake to its registration), with its
    /// standing ask, how many jobs it takes at once and its region.
    RegisterProvider {
        /// Stake moved from the balance (added to any existing stake).
        stake: u64,
        /// Price per unit of fuel.
        price_per_fuel: u64,
        /// Jobs it executes at once.
        capacity: u32,
        /// Where it runs (see `placement::check_region`), or empty for no region.
        region: String,
    },
    /// Changes the sender's standing ask.
    UpdatePrice {
        /// New price per unit of fuel.
        price_per_fuel: u64,
    },
    /// Starts withdrawing stake: it returns to the balance after the unbonding period.
    Unbond {
        /// How much stake.
        amount: u64,
    },
    /// Disputes a job's accepted result within its challenge window, posting a bond. The
    /// validators re-execute the job: a wrong result slashes its provider (to the challenger),
    /// a right one takes the bond (to the provider).
    Challenge {
        /// The job.
        job_id: Hash,
        /// The bond.
        bond: u64,
    },
    /// Changes the sender's declared region.
    UpdateRegion {
        /// Where it runs (see `placement::check_region`), or empty for no region.
        region: String,
    },
}

/// An account's transaction.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Tx {
    /// Format version ([`FORMAT_VERSION`]).
    pub version: u8,
    /// The chain (genesis hash).
    pub chain_id: Hash,
    /// The signing account.
    pub sender: PublicKey,
    /// The account's nonce (shared with its offers).
    pub nonce: u64,
    /// The fee, burned.
    pub fee: u64,
    /// What it does.
    pub action: Action,
}

impl Tx {
    /// Signs the transaction with the sender's key.
    pub fn sign(self, key: &Keypair) -> SignedTx {
        let signature = key.sign(Domain::Tx, &self);
        SignedTx { tx: self, signature }
    }
}

/// A transaction with its sender's signature.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SignedTx {
    /// The transaction.
    pub tx: Tx,
    /// The sender's signature in domain `cairn/v1/tx`.
    pub signature: Signature,
}

impl SignedTx {
    /// Checks the version and the sender's signature.
    pub fn verify(&self) -> Result<()> {
        self.verify_with(&mut VerifyNow)
    }

    /// [`SignedTx::verify`], its signature checked by `sigs` (at once, or queued in a batch).
    pub fn verify_with<S: SignatureSink>(&self, sigs: &mut S) -> Result<()> {
        check_version("transaction", self.tx.version)?;
        sigs.check(&self.tx.sender, Domain::Tx, &self.tx, &self.signature)
    }
}

/// A transaction: what blocks order.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Transaction {
    /// A client's job offer: locks its escrow.
    Offer(SignedOffer),
    /// A provider's result: becomes a receipt, pays the provider, refunds the rest.
    Result(JobResult),
    /// An account's transaction.
    Account(SignedTx),
    /// The settlement of a job's challenge or dispute by re-execution, added by the block's
    /// proposer once it has re-executed the job (every validator checks it the same way).
    /// Not signed, no fee, no nonce: it moves only what the job's own state dictates.
    Resolve {
        /// The job resolved.
        job_id: Hash,
    },
}

impl Transaction {
    /// `sha256(borsh(tx))`.
    pub fn hash(&self) -> Hash {
        Hash::of_borsh(self)
    }

    /// The transaction's Merkle leaf hash: `sha256(0x00 || borsh(tx))`.
    pub fn leaf_hash(&self) -> Hash {
        crate::merkle::leaf_hash(&borsh::to_vec(self).expect("borsh encoding into a Vec cannot fail"))
    }

    /// The job this transaction is about, if any.
    pub fn job_id(&self) -> Option<Hash> {
        match self {
            Transaction::Offer(o) => Some(o.job_id()),
            Transaction::Result(r) => Some(r.claim.job_id),
            Transaction::Account(t) => match t.tx.action {
                Action::Challenge { job_id, .. } => Some(job_id),
                _ => None,
            },
            Transaction::Resolve { job_id } => Some(*job_id),
        }
    }
}

/// A block header: commits to the block's transactions, receipts and the resulting state.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BlockHeader {
    /// Format version ([`FORMAT_VERSION`]).
    pub version: u8,
    /// The chain (genesis hash).
    pub chain_id: Hash,
    /// Height; the first block is 1.
    pub height: u64,
    /// Hash of the previous header ([`Hash::ZERO`] for height 1).
    pub parent_hash: Hash,
    /// Proposer's clock, milliseconds since the Unix epoch (informational).
    pub time_ms: u64,
    /// The validator that proposed the block.
    pub proposer: PublicKey,
    /// Merkle root of the transactions' leaf hashes, in block order.
    pub tx_root: Hash,
    /// Merkle root of the receipts' leaf hashes, in block order.
    pub receipt_root: Hash,
    /// Commitment to the whole state after this block.
    pub state_root: Hash,
    /// `sha256(borsh(last_commit))` of the block's `last_commit` (an `Option<Commit>`).
    pub last_commit_hash: Hash,
    /// Number of transactions.
    pub tx_count: u32,
    /// Number of receipts.
    pub receipt_count: u32,
}

impl BlockHeader {
    /// The block hash: `sha256(borsh(header))`.
    pub fn hash(&self) -> Hash {
        Hash::of_borsh(self)
    }
}

/// A block: its header, its transactions, and the commit that finalized its parent.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Block {
    /// The header.
    pub header: BlockHeader,
    /// The transactions, in execution order.
    pub txs: Vec<Transaction>,
    /// The commit of the parent block (`None` at height 1).
    pub last_commit: Option<Commit>,
}

impl Block {
    /// The block hash (its header's).
    pub fn hash(&self) -> Hash {
        self.header.hash()
    }

    /// Checks what the block's own bytes determine: version, counts, transaction root and the
    /// last-commit hash. Receipts and state are checked by re-execution.
    pub fn check_structure(&self) -> Result<()> {
        check_version("block header", self.header.version)?;
        if self.header.tx_count as usize != self.txs.len() {
            return Err(Error::Invalid("tx_count does not match the transactions".into()));
        }
        let leaves: Vec<Hash> = self.txs.iter().map(Transaction::leaf_hash).collect();
        if crate::merkle::root(&leaves) != self.header.tx_root {
            return Err(Error::Invalid("tx_root does not match the transactions".into()));
        }
        if Hash::of_borsh(&self.last_commit) != self.header.last_commit_hash {
            return Err(Error::Invalid("last_commit_hash does not match last_commit".into()));
        }
        Ok(())
    }
}

/// The kind of a consensus vote.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[borsh(use_discriminant = true)]
pub enum VoteKind {
    /// First-round vote of Tendermint.
    Prevote = 0,
    /// Second-round vote; a block is final with precommits of more than 2/3 of voting power.
    Precommit = 1,
}

/// A validator's vote. Only these fields are signed, so a vote can be rebuilt from a commit
/// signature and the commit's height, round and block hash.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vote {
    /// Format version ([`FORMAT_VERSION`]).
    pub version: u8,
    /// The chain (genesis hash).
    pub chain_id: Hash,
    /// Prevote or precommit.
    pub kind: VoteKind,
    /// The height voted on.
    pub height: u64,
    /// The consensus round.
    pub round: u32,
    /// The block voted for, or `None` for nil.
    pub block_hash: Option<Hash>,
    /// The voting validator.
    pub validator: PublicKey,
}

/// One validator's signature in a commit.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CommitSignature {
    /// The validator.
    pub validator: PublicKey,
    /// Its signature over the precommit `Vote { kind: Precommit, height, round, block_hash: Some(..) }`.
    pub signature: Signature,
}

/// Proof that a block is final: precommits for it from more than 2/3 of the voting power.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Commit {
    /// Format version ([`FORMAT_VERSION`]).
    pub version: u8,
    /// The height of the block.
    pub height: u64,
    /// The round in which it was decided.
    pub round: u32,
    /// The block's hash.
    pub block_hash: Hash,
    /// The precommit signatures, sorted by validator address, each validator at most once.
    pub signatures: Vec<CommitSignature>,
}

/// The most validators (and so commit signatures) a chain may have.
pub const VALIDATORS_MAX: usize = 256;

impl Commit {
    /// The commit of `block_hash` at `height` and `round` signed by each of `signers` (their
    /// precommits under `chain_id`), sorted by validator as [`Commit::verify`] wants — a
    /// quorum or not: the caller chooses the signers.
    pub fn signed_by(signers: &[&Keypair], chain_id: Hash, height: u64, round: u32, block_hash: Hash) -> Commit {
        let mut commit = Commit { version: FORMAT_VERSION, height, round, block_hash, signatures: Vec::new() };
        let mut signatures: Vec<CommitSignature> = signers
            .iter()
            .map(|k| CommitSignature {
                validator: k.public(),
                signature: k.sign(Domain::Vote, &commit.vote_of(chain_id, k.public())),
            })
            .collect();
        signatures.sort_by_key(|s| s.validator);
        commit.signatures = signatures;
        commit
    }

    /// The precommit vote that `validator` signed for this commit.
    pub fn vote_of(&self, chain_id: Hash, validator: PublicKey) -> Vote {
        Vote {
            version: FORMAT_VERSION,
            chain_id,
            kind: VoteKind::Precommit,
            height: self.height,
            round: self.round,
            block_hash: Some(self.block_hash),
            validator,
        }
    }

    /// Checks that more than 2/3 of `validators`' voting power signed a precommit for this
    /// commit's block. Returns the power that signed.
    ///
    /// The encoding is canonical — signatures sorted by validator, each validator once — so
    /// one set of signatures has exactly one valid commit. The cheap checks (count, order,
    /// membership, quorum) all run before the first signature is verified.
    pub fn verify(&self, chain_id: Hash, validators: &ValidatorSet) -> Result<u64> {
        check_version("commit", self.version)?;
        if self.signatures.len() > VALIDATORS_MAX {
            return Err(Error::TooLarge {
                what: "commit signatures",
                size: self.signatures.len(),
                max: VALIDATORS_MAX,
            });
        }
        let mut signed_power: u64 = 0;
        let mut last: Option<PublicKey> = None;
        for s in &self.signatures {
            if last.is_some_and(|l| l >= s.validator) {
                return Err(Error::Invalid("commit signatures must be sorted by validator, without repeats".into()));
            }
            last = Some(s.validator);
            let power = validators
                .power_of(&s.validator)
                .ok_or_else(|| Error::Invalid(format!("{} is not a validator", s.validator)))?;
            signed_power = signed_power.checked_add(power).ok_or(Error::Overflow("voting power"))?;
        }
        if !validators.is_quorum(signed_power) {
            return Err(Error::NoQuorum { signed: signed_power, total: validators.total_power() });
        }
        // One batch for all (ZIP-215: it passes exactly when each would); if it fails, one by
        // one, to name the first bad signature.
        let mut batch = SignatureBatch::new();
        for s in &self.signatures {
            batch.check(&s.validator, Domain::Vote, &self.vote_of(chain_id, s.validator), &s.signature)?;
        }
        if !batch.verify() {
            for s in &self.signatures {
                s.validator.verify(Domain::Vote, &self.vote_of(chain_id, s.validator), &s.signature)?;
            }
        }
        Ok(signed_power)
    }
}

/// A validator and its voting power.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Validator {
    /// Its address (public key).
    pub address: PublicKey,
    /// Its voting power.
    pub power: u64,
}

/// The validator set, in canonical order: power descending, then address ascending.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidatorSet {
    validators: Vec<Validator>,
}

impl ValidatorSet {
    /// Builds a set, sorting it canonically. Fails on duplicates, zero power or overflow.
    pub fn new(mut validators: Vec<Validator>) -> Result<ValidatorSet> {
        if validators.is_empty() || validators.len() > VALIDATORS_MAX {
            return Err(Error::Invalid(format!("a validator set has 1 to {VALIDATORS_MAX} validators")));
        }
        validators.sort_by(|a, b| b.power.cmp(&a.power).then(a.address.cmp(&b.address)));
        let mut total: u64 = 0;
        for (i, v) in validators.iter().enumerate() {
            if v.power == 0 {
                return Err(Error::Invalid(format!("validator {} has zero power", v.address)));
            }
            if validators[..i].iter().any(|w| w.address == v.address) {
                return Err(Error::Invalid(format!("validator {} is listed twice", v.address)));
            }
            total = total.checked_add(v.power).ok_or(Error::Overflow("total voting power"))?;
        }
        Ok(ValidatorSet { validators })
    }

    /// The validators in canonical order.
    pub fn validators(&self) -> &[Validator] {
        &self.validators
    }

    /// Sum of voting power.
    pub fn total_power(&self) -> u64 {
        self.validators.iter().map(|v| v.power).sum()
    }

    /// The power of `address`, if it is a validator.
    pub fn power_of(&self, address: &PublicKey) -> Option<u64> {
        self.validators.iter().find(|v| &v.address == address).map(|v| v.power)
    }

    /// Whether `power` is more than 2/3 of the total.
    pub fn is_quorum(&self, power: u64) -> bool {
        u128::from(power) * 3 > u128::from(self.total_power()) * 2
    }
}
