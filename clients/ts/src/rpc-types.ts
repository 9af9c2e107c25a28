// The RPC's own answers (docs/RPC.md's table; their JSON Schemas are under
// `components.schemas` of docs/openrpc.json): what `node_info`, `chain_head`, `account_get`,
// `job_get`, `job_subscribe`'s events, `job_estimate`, `provider_list` and
// `consensus_evidence` answer. Hashes and keys become `Uint8Array`, u64s `bigint`, names stay
// strings.
//
// Unlike the ledger's records (exact fields: they are hashed and signed), these are read
// leniently: a field a newer node adds is ignored, so an older client keeps working.

import { type Codec, type Infer, bool, bytes, hash32, option, string, struct, u32, u64, u8Enum, vec, withDefault } from './borsh.ts';
import { JobStatus } from './types.ts';

type Fields = Record<string, Codec<any>>;

/** A struct codec whose JSON reading ignores fields it does not know. */
function info<F extends Fields>(name: string, fields: F): ReturnType<typeof struct<F>> {
  const c = struct(name, fields);
  return {
    ...c,
    fromJson: (j, path = '') => {
      if (typeof j !== 'object' || j === null || Array.isArray(j)) return c.fromJson(j, path);
      const known: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(j)) if (k in fields) known[k] = v;
      return c.fromJson(known, path);
    },
  };
}

/** A string the node names (a stage, a reason): new names from a newer node pass through. */
const name: Codec<string> = string;

/** How far a job has come, in order; `expired` and `dropped` end it as `finalized` does. */
export const JOB_STAGES = ['accepted', 'executed', 'included', 'finalized', 'expired', 'dropped'] as const;
export const JobStage = u8Enum('JobStage', JOB_STAGES);
export type JobStage = Infer<typeof JobStage>;

/** Whether no event follows one of this stage. */
export function isTerminalStage(stage: JobStage): boolean {
  return stage === 'finalized' || stage === 'expired' || stage === 'dropped';
}

/** `chain_head`. */
export const HeadInfo = info('HeadInfo', { height: u64, hash: hash32, state_root: hash32, time_ms: u64 });
export type HeadInfo = Infer<typeof HeadInfo>;

/** `node_info`. */
export const NodeInfo = info('NodeInfo', {
  version: string,
  chain_id: hash32,
  chain_name: string,
  address: hash32,
  peer_id: string,
  listen_addrs: vec(string),
  validator: bool,
  provider: bool,
  peers: u64,
  height: u64,
  blocks_executed: u64,
  tx_fee_min: u64,
});
export type NodeInfo = Infer<typeof NodeInfo>;

/** `account_get`: `nonce` at the head, `next_nonce` counting this node's mempool. */
export const AccountInfo = info('AccountInfo', { address: hash32, balance: u64, nonce: u64, next_nonce: u64 });
export type AccountInfo = Infer<typeof AccountInfo>;

/** `provider_list`'s items. */
export const ProviderInfo = info('ProviderInfo', {
  address: hash32,
  price_per_fuel: u64,
  stake: u64,
  capacity: u32,
  active_jobs: u32,
  unbonding: u64,
  eligible: bool,
  jobs_done: u64,
  slashes: u64,
  missed: u64,
  region: string,
});
export type ProviderInfo = Infer<typeof ProviderInfo>;

/**
 * A provider's result as the RPC shows it (`reason`: the output as text, unless ok).
 * `output_in_blob` (sent only when true): the output is the blob named `output_hash` and
 * `output` is empty; `blob_get` it (`outputOf` in run.ts does, and checks it).
 */
export const ResultInfo = info('ResultInfo', {
  provider: hash32,
  status: JobStatus,
  fuel_used: u64,
  output_hash: hash32,
  output: bytes,
  output_in_blob: withDefault(bool, false),
  reason: option(string),
});
export type ResultInfo = Infer<typeof ResultInfo>;

/** A `job_event` notification's `result`. */
export const JobEvent = info('JobEvent', {
  job_id: hash32,
  stage: JobStage,
  result: option(ResultInfo),
  height: option(u64),
  reason: option(string),
});
export type JobEvent = Infer<typeof JobEvent>;

export const PendingOffer = info('PendingOffer', { nonce: u64, fee: u64, includable: bool });
export type PendingOffer = Infer<typeof PendingOffer>;

/** `job_get`'s `waiting`: `reason` one of docs/RPC.md's "Why a job waits" names. */
export const JobWaiting = info('JobWaiting', { reason: name, message: string });
export type JobWaiting = Infer<typeof JobWaiting>;

/** `job_get`. */
export const JobInfo = info('JobInfo', {
  job_id: hash32,
  stage: JobStage,
  client: hash32,
  module_id: hash32,
  fuel_limit: u64,
  max_price: u64,
  assigned: vec(hash32),
  result: option(ResultInfo),
  offer_height: option(u64),
  receipt_height: option(u64),
  paid: option(u64),
  pending: option(PendingOffer),
  reason: option(string),
  waiting: option(JobWaiting),
});
export type JobInfo = Infer<typeof JobInfo>;

export const EstimateProvider = info('EstimateProvider', { address: hash32, price_per_fuel: u64 });
export type EstimateProvider = Infer<typeof EstimateProvider>;

export const EstimateProblem = info('EstimateProblem', { reason: name, message: string });
export type EstimateProblem = Infer<typeof EstimateProblem>;

/** `job_estimate`: what running the offer now would give and cost. */
export const JobEstimate = info('JobEstimate', {
  job_id: hash32,
  height: u64,
  status: JobStatus,
  fuel_used: u64,
  fuel_limit: u64,
  output_size_bytes: u64,
  reason: option(string),
  escrow: u64,
  fee: u64,
  providers: vec(EstimateProvider),
  cost: u64,
  refund: u64,
  admissible: bool,
  problems: vec(EstimateProblem),
});
export type JobEstimate = Infer<typeof JobEstimate>;

/** `system_health`: `status` is `ready`, `syncing` (`reason` says how far behind) or `not_ready` (no peer). */
export const Health = info('Health', {
  status: name,
  head_height: u64,
  peer_height: u64,
  lag_blocks: u64,
  peers: u64,
  reason: option(string),
});
export type Health = Infer<typeof Health>;

/** `consensus_evidence`'s items; `kind`: `conflicting_prevotes`, `conflicting_precommits`, `conflicting_proposals`. */
export const EvidenceInfo = info('EvidenceInfo', { offender: hash32, height: u64, round: u32, kind: name, hash: hash32 });
export type EvidenceInfo = Infer<typeof EvidenceInfo>;
