// Offers and account transactions built and signed as the Rust side builds and signs them
// (docs/PROOFS.md, "Record layouts" and "Signing domains"): a `JobOffer` signed by its client in
// `cairn/v1/job-offer`, a `Tx` with one `Action` signed by its sender in `cairn/v1/tx`. Ed25519
// signatures are deterministic, so the same record and key give the same bytes, signature and
// job id as `JobOffer::sign` and `Tx::sign` in Rust.

import { encode, toHex } from './borsh.ts';
import { type Key, signRecord } from './keys.ts';
import { type Action, FORMAT_VERSION, JobOffer, type Placement, type SignedOffer, type SignedTx, Tx } from './types.ts';
import { DOMAINS, H, jobId, txHash } from './verify.ts';

/** What an offer says, without its `version` (always 1 here). Integers as in `JobOffer`. */
export interface OfferFields {
  chain_id: Uint8Array;
  client: Uint8Array;
  nonce: bigint;
  fee: bigint;
  module_id: Uint8Array;
  input: Uint8Array;
  fuel_limit: bigint;
  max_price: bigint;
  redundancy: number;
  assignment_height: bigint;
  deadline_height: bigint;
  /** Where the job may run (default: anywhere). */
  placement?: Placement;
  /** The input as a blob stored on the node (`blob_put`), by id; `input` is then empty (default: none). */
  input_blob?: Uint8Array | null;
}

/** An unsigned offer of version 1. */
export function buildOffer(fields: OfferFields): JobOffer {
  return { version: FORMAT_VERSION, ...fields, placement: fields.placement ?? { kind: 'anywhere' }, input_blob: fields.input_blob ?? null };
}

/** Signs `offer` with `key` (which must be the offer's `client`). */
export function signOffer(offer: JobOffer, key: Key): SignedOffer {
  if (toHex(offer.client) !== key.address) throw new Error(`the offer's client is ${toHex(offer.client)}, the key is ${key.address}`);
  return { offer, signature: signRecord(key, DOMAINS.offer, encode(JobOffer, offer)) };
}

/** The job id the offer will have once signed by `key`: `H(borsh(signed offer))`. */
export function offerJobId(offer: JobOffer, key: Key): Uint8Array {
  return jobId(signOffer(offer, key));
}

/** What a transaction says, without its `version` (always 1 here). */
export interface TxFields {
  chain_id: Uint8Array;
  sender: Uint8Array;
  nonce: bigint;
  fee: bigint;
  action: Action;
}

/** An unsigned account transaction of version 1. */
export function buildTx(fields: TxFields): Tx {
  return { version: FORMAT_VERSION, ...fields };
}

/** Signs `tx` with `key` (which must be the transaction's `sender`). */
export function signTx(tx: Tx, key: Key): SignedTx {
  if (toHex(tx.sender) !== key.address) throw new Error(`the transaction's sender is ${toHex(tx.sender)}, the key is ${key.address}`);
  return { tx, signature: signRecord(key, DOMAINS.tx, encode(Tx, tx)) };
}

/** The hash `tx_submit` answers for a signed transaction: `H(0x02 ‖ borsh(signed tx))`. */
export function signedTxHash(tx: SignedTx): Uint8Array {
  return txHash({ kind: 'account', ...tx });
}

/** A module's id: `H(wasm)`. */
export function moduleId(wasm: Uint8Array): Uint8Array {
  return H(wasm);
}

/** A blob's id: `H(bytes)`. */
export function blobId(bytes: Uint8Array): Uint8Array {
  return H(bytes);
}

/** The `input_hash` a result of `offer` claims: its input blob's id, or `H(input)` (`JobOffer::input_hash`). */
export function inputHash(offer: JobOffer): Uint8Array {
  return offer.input_blob ?? H(offer.input);
}

/** Each `Action` variant, built from its fields (docs/PROOFS.md, the `Action` table). */
export const actions = {
  /** Index 0: pays `amount` to `to`. */
  transfer: (to: Uint8Array, amount: bigint): Action => ({ kind: 'transfer', to, amount }),
  /**
   * Index 1: registers the sender as a provider (or adds stake), with its ask, capacity and
   * region (`''`: none).
   */
  registerProvider: (stake: bigint, pricePerFuel: bigint, capacity: number, region = ''): Action => ({
    kind: 'register_provider',
    stake,
    price_per_fuel: pricePerFuel,
    capacity,
    region,
  }),
  /** Index 2: a provider's new ask per unit of fuel. */
  updatePrice: (pricePerFuel: bigint): Action => ({ kind: 'update_price', price_per_fuel: pricePerFuel }),
  /** Index 3: starts returning `amount` of a provider's stake (after `unbonding_blocks`). */
  unbond: (amount: bigint): Action => ({ kind: 'unbond', amount }),
  /** Index 4: challenges a job's result inside its challenge window, with a bond. */
  challenge: (jobId: Uint8Array, bond: bigint): Action => ({ kind: 'challenge', job_id: jobId, bond }),
  /** Index 5: a provider's new region (`''`: none). */
  updateRegion: (region: string): Action => ({ kind: 'update_region', region }),
} as const;
