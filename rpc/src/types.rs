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
    /// reason as UTF-8 bytes. Empty when the output is in a blob.
    #[serde(with = "hex_bytes")]
    #[schemars(with = "HexBytes")]
    pub output: Vec<u8>,
    /// Whether the output is the blob named `output_hash` (larger than the chain carries
    /// inline): `blob_get` it from any node (absent: false).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub output_in_blob: bool,
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
    /// Why nobody has delivered a result yet, while the job has none and is neither closed nor
    /// dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<JobWaiting>,
}

/// Why a job without a result is waiting (`job_get`'s `waiting`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct JobWaiting {
    /// What it waits for, for programs.
    pub reason: WaitingReason,
    /// The same for people: the providers, nonces and heights concerned, and what to do.
    pub message: String,
}

/// What a job without a result waits for (stable snake_case names). The first that applies,
/// in this order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WaitingReason {
    /// Its deadline is the head or before: a pending offer can no longer be included (it is
    /// dropped), a job on chain expires with the next block unless a result is in it.
    DeadlinePassed,
    /// A pending offer: fewer providers than its redundancy have the chain's least stake and ask
    /// at most its `max_price`; block building refuses it. Raise `max_price` (a replacement
    /// with a higher fee) or lower the redundancy.
    NoEligibleProvider,
    /// A pending offer: enough providers by stake and price, but too few of them have capacity
    /// left (assigned jobs not yet delivered); block building refuses it until some deliver.
    ProvidersAtCapacity,
    /// A pending offer behind a nonce gap: an earlier nonce of its client (the message says
    /// which) has not reached this node; it is neither included nor executed until it does.
    WaitingForNonce,
    /// This node is an assigned provider and does not have the module yet: it is fetching it
    /// from its peers.
    ModuleUnknownToProvider,
    /// The normal case: providers are assigned and running it, or should be (the message says
    /// who, and for a job on chain since when).
    Assigned,
}

impl WaitingReason {
    /// Every reason, in the order they are considered.
    pub const ALL: [WaitingReason; 6] = [
        WaitingReason::DeadlinePassed,
        WaitingReason::NoEligibleProvider,
        WaitingReason::ProvidersAtCapacity,
        WaitingReason::WaitingForNonce,
        WaitingReason::ModuleUnknownToProvider,
        WaitingReason::Assigned,
    ];

    /// Its stable name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            WaitingReason::DeadlinePassed => "deadline_passed",
            WaitingReason::NoEligibleProvider => "no_eligible_provider",
            WaitingReason::ProvidersAtCapacity => "providers_at_capacity",
            WaitingReason::WaitingForNonce => "waiting_for_nonce",
            WaitingReason::ModuleUnknownToProvider => "module_unknown_to_provider",
            WaitingReason::Assigned => "assigned",
        }
    }
}

impl std::fmt::Display for WaitingReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What running an offer now would give and cost (`job_estimate`). Nothing was signed or
/// submitted; the output itself is not returned.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct JobEstimate {
    /// The job id it was estimated for (as given).
    pub job_id: Hash,
    /// The finalized height whose state priced and checked it.
    pub height: u64,
    /// How the run ended.
    pub status: JobStatus,
    /// Fuel the run used (the fuel it ran with, when out of fuel).
    pub fuel_used: u64,
    /// The fuel it ran with: the offer's `fuel_limit`, at most the chain's `fuel_limit_max`.
    pub fuel_limit: u64,
    /// The size of the output: what the job returned, or for any other status than `ok` its
    /// reason.
    pub output_size_bytes: u64,
    /// Why the job failed, for any other status than `ok` (UTF-8, at most 1,280 bytes, as a
    /// result carries it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What the offer locks when included: `fuel_limit × max_price × redundancy` (`u64::MAX`
    /// when that overflows: problem `overflow`).
    pub escrow: u64,
    /// The offer's fee, burned when it is included (on top of the escrow).
    pub fee: u64,
    /// The providers it would be assigned at this height (the first `redundancy` ranked for the
    /// job id), each with what it would be paid per unit of fuel. Fewer than the redundancy
    /// when fewer are eligible.
    pub providers: Vec<EstimateProvider>,
    /// What the providers would be paid in all: `fuel_used × min(ask, max_price)`, summed over
    /// `providers`.
    pub cost: u64,
    /// What would return to the client when the job settles: `escrow − cost`.
    pub refund: u64,
    /// Whether this node would admit the offer now (once signed): `problems` is empty.
    pub admissible: bool,
    /// Why it would not: each rule the offer breaks (the chain's rules are checked in order and
    /// stop at the first, so fix it and estimate again), or that the node is overloaded.
    pub problems: Vec<EstimateProblem>,
}

/// A provider an estimated job would be assigned to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct EstimateProvider {
    /// Its address.
    pub address: PublicKey,
    /// What it would be paid per unit of fuel: its ask, at most the offer's `max_price`.
    pub price_per_fuel: u64,
}

/// Why an estimated offer would not be admitted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct EstimateProblem {
    /// The rule, as a refusal's `data.reason` names it (`insufficient_balance`, `bad_nonce`,
    /// `fee_below_minimum`, `no_eligible_provider`, `overloaded`, …).
    pub reason: String,
    /// What is wrong and what to do, as the refusal's message says it.
    pub message: String,
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
    /// Its results that were paid (each counted when its job settled with it).
    pub jobs_done: u64,
    /// Times it was slashed for a result proven wrong.
    pub slashes: u64,
    /// Job slots it held past their deadline without delivering (each cost a penalty).
    pub missed: u64,
    /// Where it runs (its declared region), or empty for none.
    pub region: String,
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

/// Whether a node can serve ([`Health::status`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Readiness {
    /// Caught up with its peers (`GET /ready`: 200).
    Ready,
    /// Behind its peers, applying the blocks it missed (206).
    Syncing,
    /// Cut off: no peer, on a chain where it cannot finalize or learn blocks alone (503).
    NotReady,
}

/// A node's health: `system_health`'s answer, and `GET /ready`'s body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Health {
    /// Whether it can serve.
    pub status: Readiness,
    /// Height of its last finalized block.
    pub head_height: u64,
    /// The highest finalized height its peers showed it (a gossiped block with its commit, or
    /// blocks a sync answer linked to its head).
    pub peer_height: u64,
    /// Blocks it is behind: `peer_height − head_height`, or 0.
    pub lag_blocks: u64,
    /// Connected peers.
    pub peers: u64,
    /// Why, when not ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}
