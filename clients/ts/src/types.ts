// Cairn's records and messages, field by field, as docs/PROOFS.md ("Record layouts"),
// docs/WIRE.md ("Gossip messages", "/cairn/sync/1"), docs/CONSENSUS.md ("Messages") and
// docs/STATE.md (state values, state proofs) lay them out. Each is a codec (borsh bytes and
// JSON form) and a type of the same name.
//
// Integers: u8 and u32 are `number`, u64 is `bigint`. 32- and 64-byte values and byte strings
// are `Uint8Array`. An enum is an object with a `kind` (its JSON name) beside its fields.

import {
  type Infer,
  bool,
  bytes,
  enumOf,
  hash32,
  option,
  prefixed,
  sig64,
  sortedVec,
  string,
  struct,
  u32,
  u64,
  u8,
  u8Enum,
  vec,
  withDefault,
} from './borsh.ts';

/** `FORMAT_VERSION`: the `version` of every ledger record. */
export const FORMAT_VERSION = 1;
/** `WIRE_VERSION`: the first field of every gossip envelope and sync payload. */
export const WIRE_VERSION = 1;
/** `MESSAGE_VERSION`: the byte in front of every consensus message. */
export const MESSAGE_VERSION = 1;
/** `VALIDATORS_MAX`: signatures in a commit or a certificate. */
export const VALIDATORS_MAX = 256;
/**
 * `DATA_BLOB_BYTES_MAX`: the largest job data blob, an input an offer names (`input_blob`) or an
 * output a result leaves in a blob (`output_in_blob`): 4 MiB.
 */
export const DATA_BLOB_BYTES_MAX = 4 << 20;

// ---------------------------------------------------------------------------------------------
// Results and receipts

export const JobStatus = u8Enum('JobStatus', [
  'ok',
  'trap',
  'out_of_fuel',
  'memory_limit',
  'invalid_module',
  'output_too_large',
] as const);
export type JobStatus = Infer<typeof JobStatus>;

/** Signed by the provider in domain `cairn/v1/job-result`. */
export const ResultClaim = struct('ResultClaim', {
  version: u8,
  job_id: hash32,
  module_id: hash32,
  input_hash: hash32,
  output_hash: hash32,
  fuel_used: u64,
  status: JobStatus,
  provider: hash32,
});
export type ResultClaim = Infer<typeof ResultClaim>;

/**
 * What a provider gossips and a `Result` transaction carries. `output_in_blob` (not signed;
 * JSON: absent meaning false): the output is the blob named `claim.output_hash`, `output` is
 * empty and the status ok.
 */
export const JobResult = struct('JobResult', {
  claim: ResultClaim,
  signature: sig64,
  output: bytes,
  output_in_blob: withDefault(bool, false),
});
export type JobResult = Infer<typeof JobResult>;

export const ExecutionReceipt = struct('ExecutionReceipt', {
  version: u8,
  claim: ResultClaim,
  provider_signature: sig64,
});
export type ExecutionReceipt = Infer<typeof ExecutionReceipt>;

// ---------------------------------------------------------------------------------------------
// Offers and account transactions

/**
 * Where an offer's job may run: anywhere; providers in `regions` ranked first (`prefer`); or
 * only there (`only`). A region is 1 to 32 bytes of `a-z`, `0-9` and `-`.
 */
export const Placement = enumOf('Placement', {
  anywhere: { tag: 0, fields: {} },
  prefer: { tag: 1, fields: { regions: vec(string) } },
  only: { tag: 2, fields: { regions: vec(string) } },
});
export type Placement = Infer<typeof Placement>;

/**
 * Signed by the client in domain `cairn/v1/job-offer`. `input_blob` (JSON: a hex id, or null or
 * absent for none): the input as a blob, by its SHA-256; `input` is then empty, and the job's
 * `input_hash` is the blob's id (`inputHash`).
 */
export const JobOffer = struct('JobOffer', {
  version: u8,
  chain_id: hash32,
  client: hash32,
  nonce: u64,
  fee: u64,
  module_id: hash32,
  input: bytes,
  fuel_limit: u64,
  max_price: u64,
  redundancy: u8,
  assignment_height: u64,
  deadline_height: u64,
  placement: withDefault(Placement, { kind: 'anywhere' } as Placement),
  input_blob: option(hash32),
});
export type JobOffer = Infer<typeof JobOffer>;

export const SignedOffer = struct('SignedOffer', {
  offer: JobOffer,
  signature: sig64,
});
export type SignedOffer = Infer<typeof SignedOffer>;

export const Action = enumOf('Action', {
  transfer: { tag: 0, fields: { to: hash32, amount: u64 } },
  register_provider: { tag: 1, fields: { stake: u64, price_per_fuel: u64, capacity: u32, region: string } },
  update_price: { tag: 2, fields: { price_per_fuel: u64 } },
  unbond: { tag: 3, fields: { amount: u64 } },
  challenge: { tag: 4, fields: { job_id: hash32, bond: u64 } },
  update_region: { tag: 5, fields: { region: string } },
});
export type Action = Infer<typeof Action>;

/** An account's transaction, signed by its sender in domain `cairn/v1/tx`. */
export const Tx = struct('Tx', {
  version: u8,
  chain_id: hash32,
  sender: hash32,
  nonce: u64,
  fee: u64,
  action: Action,
});
export type Tx = Infer<typeof Tx>;

export const SignedTx = struct('SignedTx', {
  tx: Tx,
  signature: sig64,
});
export type SignedTx = Infer<typeof SignedTx>;

/** What a block orders. JSON: `{kind: "offer", offer, signature}`, `{kind: "result", claim, …}`, … */
export const Transaction = enumOf('Transaction', {
  offer: { tag: 0, fields: SignedOffer.fields },
  result: { tag: 1, fields: JobResult.fields },
  account: { tag: 2, fields: SignedTx.fields },
  resolve: { tag: 3, fields: { job_id: hash32 } },
});
export type Transaction = Infer<typeof Transaction>;

// ---------------------------------------------------------------------------------------------
// Blocks, votes, commits

export const MerklePath = struct('MerklePath', {
  index: u32,
  leaf_count: u32,
  siblings: vec(hash32),
});
export type MerklePath = Infer<typeof MerklePath>;

export const BlockHeader = struct('BlockHeader', {
  version: u8,
  chain_id: hash32,
  height: u64,
  parent_hash: hash32,
  time_ms: u64,
  proposer: hash32,
  tx_root: hash32,
  receipt_root: hash32,
  state_root: hash32,
  last_commit_hash: hash32,
  tx_count: u32,
  receipt_count: u32,
});
export type BlockHeader = Infer<typeof BlockHeader>;

export const VoteKind = u8Enum('VoteKind', ['prevote', 'precommit'] as const);
export type VoteKind = Infer<typeof VoteKind>;

/** Signed by a validator in domain `cairn/v1/vote`. `block_hash` null: a vote for nil. */
export const Vote = struct('Vote', {
  version: u8,
  chain_id: hash32,
  kind: VoteKind,
  height: u64,
  round: u32,
  block_hash: option(hash32),
  validator: hash32,
});
export type Vote = Infer<typeof Vote>;

export const CommitSignature = struct('CommitSignature', {
  validator: hash32,
  signature: sig64,
});
export type CommitSignature = Infer<typeof CommitSignature>;

/**
 * Precommits for one block. The signatures must be sorted by validator without repeats; that
 * is checked by `verifyCommit` (as `Commit::verify` does), not by decoding.
 */
export const Commit = struct('Commit', {
  version: u8,
  height: u64,
  round: u32,
  block_hash: hash32,
  signatures: vec(CommitSignature),
});
export type Commit = Infer<typeof Commit>;

export const Block = struct('Block', {
  header: BlockHeader,
  txs: vec(Transaction),
  last_commit: option(Commit),
});
export type Block = Infer<typeof Block>;

/** Signed by the proposer of a height and round in domain `cairn/v1/proposal`. */
export const Proposal = struct('Proposal', {
  version: u8,
  chain_id: hash32,
  height: u64,
  round: u32,
  block_hash: hash32,
  pol_round: option(u32),
  proposer: hash32,
});
export type Proposal = Infer<typeof Proposal>;

// ---------------------------------------------------------------------------------------------
// Proofs

export const ReceiptProof = struct('ReceiptProof', {
  version: u8,
  receipt: ExecutionReceipt,
  path: MerklePath,
  header: BlockHeader,
  commit: Commit,
});
export type ReceiptProof = Infer<typeof ReceiptProof>;

/** docs/STATE.md, "State proofs". `value` null: the key is absent. */
export const StateProof = struct('StateProof', {
  version: u8,
  key: bytes,
  value: option(bytes),
  proof: bytes,
  header: BlockHeader,
  commit: Commit,
});
export type StateProof = Infer<typeof StateProof>;

// ---------------------------------------------------------------------------------------------
// Genesis

export const GenesisValidator = struct('GenesisValidator', { address: hash32, power: u64 });
export const GenesisAccount = struct('GenesisAccount', { address: hash32, balance: u64 });
export const GenesisProvider = struct('GenesisProvider', {
  address: hash32,
  price_per_fuel: u64,
  stake: u64,
  capacity: u32,
  region: string,
});
export const Params = struct('Params', {
  assignment_window_blocks: u64,
  deadline_max_blocks: u64,
  input_bytes_max: u32,
  output_bytes_max: u32,
  fuel_limit_max: u64,
  block_txs_max: u32,
  block_bytes_max: u32,
  stake_min: u64,
  unbonding_blocks: u64,
  tx_fee_min: u64,
  delivery_blocks: u64,
  missed_deadline_penalty_bps: u32,
  challenge_window_blocks: u64,
  challenge_bond_min: u64,
  slash_bps: u32,
});
export type Params = Infer<typeof Params>;

/** The genesis: its JSON is `genesis.json`; the chain id is `H(borsh(genesis))`. */
export const Genesis = struct('Genesis', {
  version: u8,
  chain_name: string,
  genesis_time_ms: u64,
  validators: vec(GenesisValidator),
  accounts: vec(GenesisAccount),
  providers: vec(GenesisProvider),
  params: Params,
});
export type Genesis = Infer<typeof Genesis>;

// ---------------------------------------------------------------------------------------------
// Gossip messages (docs/WIRE.md): each topic's `data`

/** On `txs`: offers and account transactions (never results or resolutions). */
export const TxBatch = struct('TxBatch', {
  version: u8,
  sent_ms: u64,
  txs: vec(Transaction),
});
export type TxBatch = Infer<typeof TxBatch>;

/** On `results`. */
export const ResultBatch = struct('ResultBatch', {
  version: u8,
  sent_ms: u64,
  results: vec(JobResult),
});
export type ResultBatch = Infer<typeof ResultBatch>;

/** On `blocks`: a finalized block with the commit that finalized it. */
export const BlockMsg = struct('BlockMsg', {
  version: u8,
  block: Block,
  commit: Commit,
});
export type BlockMsg = Infer<typeof BlockMsg>;

/** On `proposals`: the block a consensus proposal names by hash. */
export const ProposedBlock = struct('ProposedBlock', {
  version: u8,
  block: Block,
});
export type ProposedBlock = Infer<typeof ProposedBlock>;

/** On `modules`: a module stored on the sender. */
export const ModuleAnnounce = struct('ModuleAnnounce', {
  version: u8,
  module_id: hash32,
});
export type ModuleAnnounce = Infer<typeof ModuleAnnounce>;

const CertificateSignature = struct('CertificateSignature', { validator: hash32, signature: sig64 });
const CertificateVote = struct('CertificateVote', {
  kind: VoteKind,
  block_hash: option(hash32),
  validator: hash32,
  signature: sig64,
});

/** A consensus message's body; certificates decode only when sorted by validator without repeats. */
export const ConsensusMessage = enumOf('ConsensusMessage', {
  vote: { tag: 0, fields: { vote: Vote, signature: sig64 } },
  proposal: { tag: 1, fields: { proposal: Proposal, signature: sig64 } },
  polka_certificate: {
    tag: 2,
    fields: {
      height: u64,
      round: u32,
      block_hash: hash32,
      signatures: sortedVec(CertificateSignature, (s) => s.validator, VALIDATORS_MAX),
    },
  },
  round_certificate: {
    tag: 3,
    fields: {
      height: u64,
      round: u32,
      // The wire's `kind` (0 skip, 1 precommit), renamed: `kind` names the variant here.
      cert_kind: u8Enum('RoundCertificateKind', ['skip', 'precommit'] as const),
      votes: sortedVec(CertificateVote, (v) => v.validator, VALIDATORS_MAX),
    },
  },
});
export type ConsensusMessage = Infer<typeof ConsensusMessage>;

/** A consensus message: `MESSAGE_VERSION (0x01) ‖ borsh(ConsensusMessage)` (on `consensus`, followed by its send number: `splitConsensusData`). */
export const ConsensusData = prefixed('ConsensusData', MESSAGE_VERSION, ConsensusMessage);

// ---------------------------------------------------------------------------------------------
// /cairn/sync/1 payloads (after the CBOR byte-string head and the WIRE_VERSION byte)

export const SyncRequest = enumOf('SyncRequest', {
  blocks: { tag: 0, fields: { from: u64, max: u32 } },
  blob: { tag: 1, fields: { id: hash32 } },
  proposed: { tag: 2, fields: { height: u64, block_hash: hash32 } },
  snapshot: { tag: 3, fields: {} },
  state_chunk: { tag: 4, fields: { height: u64, start: hash32, max: u32 } },
});
export type SyncRequest = Infer<typeof SyncRequest>;

const BlockWithCommit = struct('BlockWithCommit', { block: Block, commit: Commit });

/** One state entry of a chunk: the state key and its value. */
const StateEntry = struct('StateEntry', { key: bytes, value: bytes });

/**
 * A chunk of the state at a height (state sync): entries in the order of `sha256(key)`, the
 * borsh range proof of the last one, and whether it is the last chunk.
 */
export const StateChunk = struct('StateChunk', { entries: vec(StateEntry), proof: bytes, last: bool });
export type StateChunk = Infer<typeof StateChunk>;

export const SyncResponse = enumOf('SyncResponse', {
  blocks: { tag: 0, fields: { blocks: vec(BlockWithCommit) } },
  blob: { tag: 1, fields: { bytes: option(bytes) } },
  error: { tag: 2, fields: { message: string } },
  proposed: { tag: 3, fields: { block: option(Block) } },
  snapshot: { tag: 4, fields: { head: option(BlockWithCommit) } },
  state_chunk: { tag: 5, fields: { chunk: option(StateChunk) } },
});
export type SyncResponse = Infer<typeof SyncResponse>;

export const SyncRequestPayload = prefixed('SyncRequestPayload', WIRE_VERSION, SyncRequest);
export const SyncResponsePayload = prefixed('SyncResponsePayload', WIRE_VERSION, SyncResponse);

// ---------------------------------------------------------------------------------------------
// State entries (docs/STATE.md): keys and the borsh values under them

/** `0x01 ‖ address` → `Account`. */
export const Account = struct('Account', { balance: u64, nonce: u64 });
export type Account = Infer<typeof Account>;

const Unbonding = struct('Unbonding', { release_height: u64, amount: u64 });

/** `0x02 ‖ address` → `Provider`. */
export const Provider = struct('Provider', {
  price_per_fuel: u64,
  stake: u64,
  capacity: u32,
  active_jobs: u32,
  unbonding: vec(Unbonding),
  jobs_done: u64,
  slashes: u64,
  missed: u64,
  region: string,
});
export type Provider = Infer<typeof Provider>;

export const Outcome = struct('Outcome', { output_hash: hash32, fuel_used: u64, status: JobStatus });
const Delivery = struct('Delivery', { provider: hash32, outcome: Outcome, payment: u64 });
const Slot = struct('Slot', { holders: bytes, assigned_height: u64, delivery: option(Delivery) });
const Challenge = struct('Challenge', { challenger: hash32, bond: u64 });

export const JobPhase = u8Enum('JobPhase', [
  'open',
  'completed',
  'expired',
  'settled',
  'slashed',
  'challenged',
  'disputed',
] as const);

/** `0x03 ‖ job id` → `Job`. */
export const Job = struct('Job', {
  client: hash32,
  module_id: hash32,
  input_hash: hash32,
  fuel_limit: u64,
  max_price: u64,
  escrow: u64,
  deadline_height: u64,
  ranking: vec(hash32),
  slots: vec(Slot),
  next: u8,
  phase: JobPhase,
  verified: option(Outcome),
  forfeit: u64,
  paid: u64,
  settle_height: u64,
  challenge: option(Challenge),
});
export type Job = Infer<typeof Job>;

/** The state key of the last applied height (value: a u64). */
export const HEIGHT_KEY = Uint8Array.of(0x00);

export function accountKey(address: Uint8Array): Uint8Array {
  return Uint8Array.of(0x01, ...address);
}

export function providerKey(address: Uint8Array): Uint8Array {
  return Uint8Array.of(0x02, ...address);
}

export function jobKey(jobId: Uint8Array): Uint8Array {
  return Uint8Array.of(0x03, ...jobId);
}
