//! JSON shapes of the RPC's answers.

use cairn_ledger::hash::hex_bytes;
use cairn_ledger::schema::HexBytes;
use cairn_ledger::{Hash, JobStatus, PublicKey};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How far a job has come.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobStage {
    /// Checked and in the mempool, gossiped to the network.
    Accepted,
    /// A provider executed it and its signed result arrived.
    Executed,
    /// The result is in a block.
    Included,
    /// That block is finalized: a proof is available.
    Finalized,
    /// The deadline passed without a result; the escrow was refunded.
    Expired,
    /// The offer left the mempool without being included (replaced by a higher fee, its
    /// nonce used by another transaction, its deadline passed, refused by block building):
    /// nothing was paid or refunded; the event's `reason` says why.
    Dropped,
}

impl JobStage {
    /// Whether no event follows this one.
    pub fn is_terminal(self) -> bool {
        matches!(self, JobStage::Finalized | JobStage::Expired | JobStage::Dropped)
    }
}

/// A provider's result as the RPC shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ResultInfo {
    /// The executing provider.
    pub provider: PublicKey,
    /// How the execution ended.
    pub status: JobStatus,
    /// Fuel used.
    pub fuel_used: u64,
    /// SHA-256 of the output.
    pub output_hash: Hash,
    /// The output (hex): what the job returned, or for any other status than `ok` its
    /// reason as UTF-8 bytes.
    #[serde(with = "hex_bytes")]
    #[schemars(with = "HexBytes")]
    pub output: Vec<u8>,
    /// Why the job failed (the output as text), for any other status than `ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A job status event (the `job_subscribe` item).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct JobEvent {
    /// The job.
    pub job_id: Hash,
    /// The stage reached.
    pub stage: JobStage,
    /// The result, from `executed` on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<ResultInfo>,
    /// The block height, for `included`, `finalized` and `expired`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u64>,
    /// Why the offer was dropped (`dropped` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What a node knows of a job (`job_get`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct JobInfo {
    /// The job.
    pub job_id: Hash,
    /// The furthest stage this node has seen.
    pub stage: JobStage,
    /// The paying client.
    pub client: PublicKey,
    /// The module.
    pub module_id: Hash,
    /// The fuel limit.
    pub fuel_limit: u64,
    /// The highest price per unit of fuel.
    pub max_price: u64,
    /// The providers assigned to execute it.
    pub assigned: Vec<PublicKey>,
    /// The result, once executed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<ResultInfo>,
    /// Height of the block that included the offer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offer_height: Option<u64>,
    /// Height of the block that included the accepted result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt_height: Option<u64>,
    /// What the provider was paid (once completed on chain).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paid: Option<u64>,
    /// The offer's nonce and fee, while it is pending (a replacement or a cancellation uses
    /// the same nonce and a higher fee).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<PendingOffer>,
    /// Why the offer was dropped (stage `dropped` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The nonce and fee of a pending offer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PendingOffer {
    /// Its nonce.
    pub nonce: u64,
    /// Its fee.
    pub fee: u64,
    /// Whether every earlier nonce of the client is pending or on chain, so it can be included
    /// (and executed) now; an offer behind a gap waits.
    pub includable: bool,
}

/// The last finalized block (`chain_head`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct HeadInfo {
    /// Its height (0 before the first block).
    pub height: u64,
    /// Its hash.
    pub hash: Hash,
    /// The state root after it.
    pub state_root: Hash,
    /// Its time, milliseconds since the Unix epoch.
    pub time_ms: u64,
}

/// An account (`account_get`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AccountInfo {
    /// Its address.
    pub address: PublicKey,
    /// Balance at the head.
    pub balance: u64,
    /// The nonce its next transaction must carry at the head (finalized).
    pub nonce: u64,
    /// The nonce of its next transaction or offer, counting those still in this node's mempool.
    pub next_nonce: u64,
}

/// This node (`node_info`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct NodeInfo {
    /// The software version.
    pub version: String,
    /// The chain id (genesis hash).
    pub chain_id: Hash,
    /// The chain's name.
    pub chain_name: String,
    /// The node's key (account, provider or validator identity).
    pub address: PublicKey,
    /// Its libp2p peer id.
    pub peer_id: String,
    /// Addresses it listens on for peers, with `/p2p/<peer id>`.
    pub listen_addrs: Vec<String>,
    /// Whether it validates.
    pub validator: bool,
    /// Whether it executes jobs.
    pub provider: bool,
    /// Connected peers.
    pub peers: usize,
    /// Its finalized height.
    pub height: u64,
    /// Blocks it executed since it started — built, checked or applied, each at most once (a
    /// decided block's execution is committed, not repeated).
    pub blocks_executed: u64,
    /// The chain's least fee of a transaction or offer (genesis `tx_fee_min`): what clients pay
    /// when they choose no fee.
    pub tx_fee_min: u64,
}

/// A registered provider (`provider_list`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ProviderInfo {
    /// Its address.
    pub address: PublicKey,
    /// Its standing ask per unit of fuel.
    pub price_per_fuel: u64,
    /// Bonded stake.
    pub stake: u64,
    /// Jobs it takes at once.
    pub capacity: u32,
    /// Jobs assigned and not yet delivered.
    pub active_jobs: u32,
    /// Stake on its way back to the balance.
    pub unbonding: u64,
    /// Whether it can be assigned new jobs (stake and capacity; price is per offer).
    pub eligible: bool,
}

/// What a validator signed twice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EvidenceKind {
    /// Two different prevotes in one round.
    ConflictingPrevotes,
    /// Two different precommits in one round.
    ConflictingPrecommits,
    /// Two different proposals in one round.
    ConflictingProposals,
}

/// Evidence of equivocation kept by this validator (`consensus_evidence`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct EvidenceInfo {
    /// The validator that signed two different messages for one step.
    pub offender: PublicKey,
    /// The height it happened at.
    pub height: u64,
    /// The round.
    pub round: u32,
    /// What it signed twice.
    pub kind: EvidenceKind,
    /// `sha256` of the stored evidence (borsh of both signed messages).
    pub hash: Hash,
}
