// A job's life from the client's side, as `cairn job run` lives it (rpc/src/client.rs): build the
// offer from what the node says (chain id, head, next nonce, least fee), sign it, subscribe,
// submit (uploading the module if the node lacks it), wait for `finalized`, then fetch the
// receipt proof and verify it offline against the genesis — the output is returned only if the
// proof verifies and the receipt's output hash is the hash of the output bytes. An input larger
// than the chain carries inline goes into a blob on the node first (`place_input`), and an
// output a provider left in a blob is fetched by its hash (`output_of`).

import { bytesEqual, fromHex, toHex } from './borsh.ts';
import type { CairnClient, HashLike, JobSubscription } from './client.ts';
import { CairnConnectionError, CairnJobError, CairnRpcError } from './errors.ts';
import type { Key } from './keys.ts';
import type { JobEstimate, JobEvent, ResultInfo } from './rpc-types.ts';
import { buildOffer, buildTx, inputHash, moduleId as moduleIdOf, offerJobId, signOffer, signTx, signedTxHash } from './sign.ts';
import { type Action, DATA_BLOB_BYTES_MAX, type Genesis, type JobOffer, type Placement, type ReceiptProof, type SignedOffer, type SignedTx, type Tx } from './types.ts';
import { H, type VerifiedReceipt, VerifyError, chainId, jobId as jobIdOf, verifyReceiptProof } from './verify.ts';

/** An offer's economic terms; each has the default `cairn job run` uses. */
export interface OfferTerms {
  /** The most fuel the job may use (default 100,000,000). */
  fuelLimit?: bigint | number;
  /** The highest price per unit of fuel (default 1). */
  maxPrice?: bigint | number;
  /** Blocks from the head to the deadline (default 200). */
  deadlineBlocks?: bigint | number;
  /** How many providers execute it (default 1); the escrow covers each. */
  redundancy?: number;
  /** The fee, burned when included (default: `node_info`'s `tx_fee_min`). */
  fee?: bigint | number;
  /** The nonce (default: `account_get`'s `next_nonce`, counting the node's mempool). */
  nonce?: bigint | number;
  /** Where the job may run (default anywhere): `{kind: 'prefer' | 'only', regions: [...]}`. */
  placement?: Placement;
  /**
   * The input as a blob already stored on the node (`blobPut`), by id: the offer's
   * `input_blob`, the spec's `input` then empty. Without it, an input larger than the chain's
   * `input_bytes_max` is put into a blob by itself (`placeInput`).
   */
  inputBlob?: HashLike;
}

/** A job: its module (the wasm bytes, or the id of a module the node stores), its input, who pays. */
export interface JobSpec {
  /** The wasm bytes (uploaded if the node lacks them), or `{id}` of a module already stored. */
  module: Uint8Array | { id: HashLike };
  /**
   * The input bytes (a string is sent as UTF-8): up to the chain's `input_bytes_max` inline,
   * up to `DATA_BLOB_BYTES_MAX` (4 MiB) through a blob; empty when `terms.inputBlob` names it.
   */
  input: Uint8Array | string;
  /** The client's key: signs the offer and pays. */
  key: Key;
  terms?: OfferTerms;
}

const utf8 = new TextEncoder();

function inputBytes(input: Uint8Array | string): Uint8Array {
  return typeof input === 'string' ? utf8.encode(input) : input;
}

function hashBytes(v: HashLike): Uint8Array {
  return typeof v === 'string' ? fromHex(v) : v;
}

function moduleIdOfSpec(m: JobSpec['module']): Uint8Array {
  if (m instanceof Uint8Array) return moduleIdOf(m);
  return hashBytes(m.id);
}

/**
 * How many blocks before the head it read an offer names as its `assignment_height` (as
 * rpc/src/client.rs's `ASSIGNMENT_LAG_BLOCKS`): a job's providers learn a block after the
 * validators that decide it, and hold an offer naming a block they have not applied until
 * they have.
 */
export const ASSIGNMENT_LAG_BLOCKS = 1n;

/**
 * The unsigned offer of `spec` for the chain the node serves, assigned at the block before its
 * head (`ASSIGNMENT_LAG_BLOCKS`), with the deadline `deadlineBlocks` after the head: as
 * rpc/src/client.rs's `build_offer`. The input goes in as
 * given (see `placeInput` for one larger than the chain carries inline).
 */
export async function prepareOffer(client: CairnClient, spec: JobSpec): Promise<JobOffer> {
  const t = spec.terms ?? {};
  const [info, head] = await Promise.all([client.nodeInfo(), client.chainHead()]);
  const nonce = t.nonce !== undefined ? BigInt(t.nonce) : (await client.accountGet(spec.key.publicKey)).next_nonce;
  return buildOffer({
    chain_id: info.chain_id,
    client: spec.key.publicKey,
    nonce,
    fee: t.fee !== undefined ? BigInt(t.fee) : info.tx_fee_min,
    module_id: moduleIdOfSpec(spec.module),
    input: inputBytes(spec.input),
    fuel_limit: BigInt(t.fuelLimit ?? 100_000_000n),
    max_price: BigInt(t.maxPrice ?? 1n),
    redundancy: t.redundancy ?? 1,
    assignment_height: head.height > ASSIGNMENT_LAG_BLOCKS ? head.height - ASSIGNMENT_LAG_BLOCKS : 0n,
    deadline_height: head.height + BigInt(t.deadlineBlocks ?? 200n),
    placement: t.placement ?? { kind: 'anywhere' },
    input_blob: t.inputBlob !== undefined ? hashBytes(t.inputBlob) : null,
  });
}

/**
 * `spec` with its input placed as rpc/src/client.rs's `place_input` places it: inline if it
 * fits the chain's `input_bytes_max` (from `genesis`, else asked with `chain_genesis`), else
 * stored on the node as a blob (`blob_put`, at most `DATA_BLOB_BYTES_MAX`) that the offer names
 * in `terms.inputBlob`, its inline input then empty. A spec that names an input blob already
 * must carry no inline input (the chain refuses both: `input_and_input_blob`).
 */
export async function placeInput(client: CairnClient, spec: JobSpec, genesis?: Genesis): Promise<JobSpec & { input: Uint8Array }> {
  const input = inputBytes(spec.input);
  if (spec.terms?.inputBlob !== undefined) {
    if (input.length > 0) throw new Error('an offer with an input_blob carries no inline input: give an empty input with terms.inputBlob');
    return { ...spec, input };
  }
  if (input.length === 0) return { ...spec, input };
  const inlineMax = (genesis ?? (await client.chainGenesis())).params.input_bytes_max;
  if (input.length <= inlineMax) return { ...spec, input };
  if (input.length > DATA_BLOB_BYTES_MAX) throw new Error(`the input is ${input.length} bytes, over the largest blob of ${DATA_BLOB_BYTES_MAX} bytes`);
  const id = await client.blobPut(input);
  if (!bytesEqual(id, H(input))) throw new VerifyError(`blob_put answered ${toHex(id)}, H(input) is ${toHex(H(input))}`);
  return { ...spec, input: new Uint8Array(0), terms: { ...spec.terms, inputBlob: id } };
}

/**
 * A result's output bytes, as rpc/src/client.rs's `output_of`: inline, or (`output_in_blob`)
 * the blob named `output_hash`, fetched with `blob_get` (asked again when the connection drops
 * under it or the node is busy, within `timeoutMs`, default 60,000 ms). Either way the bytes
 * must hash to `output_hash`.
 */
export async function outputOf(client: CairnClient, result: ResultInfo, opts: { timeoutMs?: number } = {}): Promise<Uint8Array> {
  if (!result.output_in_blob) {
    check(bytesEqual(H(result.output), result.output_hash), "the output bytes do not hash to the result's output_hash");
    return result.output;
  }
  const bytes = await fetchBlob(client, result.output_hash, Date.now() + (opts.timeoutMs ?? 60_000));
  check(bytesEqual(H(bytes), result.output_hash), `the node sent a blob that does not hash to the output_hash ${toHex(result.output_hash)}`);
  return bytes;
}

/** Calls `f`; if the node does not store the module and its bytes are at hand, uploads them and calls again. */
async function withModule<T>(client: CairnClient, module: JobSpec['module'], f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (e) {
    if (!(e instanceof CairnRpcError && e.reason === 'module_unknown' && module instanceof Uint8Array)) throw e;
    const id = await client.modulePut(module);
    if (!bytesEqual(id, moduleIdOf(module))) throw new VerifyError(`module_put answered ${toHex(id)}, H(wasm) is ${toHex(moduleIdOf(module))}`);
    return f();
  }
}

/** What `estimate` answers: the node's estimate, and the offer and job id it was made for. */
export interface Estimate extends JobEstimate {
  offer: JobOffer;
}

/**
 * `job_estimate` of `spec` (docs/RPC.md, "Estimates"): builds the offer, signs it locally only
 * to learn its job id (signing is deterministic: the same offer signed again to submit it has
 * the same id), and sends the offer unsigned, so that the node cannot submit it. Uploads the
 * module first if the node lacks it and its bytes are given, and an input larger than the chain
 * carries inline as a blob (`placeInput`: the chain's limit from `opts.genesis`, else from
 * `chain_genesis`).
 */
export async function estimate(client: CairnClient, spec: JobSpec, opts: { genesis?: Genesis } = {}): Promise<Estimate> {
  const offer = await prepareOffer(client, await placeInput(client, spec, opts.genesis));
  const id = offerJobId(offer, spec.key);
  const e = await withModule(client, spec.module, () => client.jobEstimate(offer, id));
  return { ...e, offer };
}

export interface RunOptions {
  /** The chain's genesis: the proof is verified against it, and the node must serve its chain. */
  genesis: Genesis;
  /** How long the whole run may take (default 120,000 ms). */
  timeoutMs?: number;
  /** Each event of the job, each stage once, in order (across reconnections). */
  onEvent?: (ev: JobEvent) => void;
  /** The WebSocket dropped (`resubscribed` false) or the subscription is back (true). */
  onReconnect?: (info: { resubscribed: boolean; error?: Error }) => void;
  /** Called with the subscription once made (to watch it, or for tests). */
  onSubscribed?: (sub: JobSubscription) => void;
}

/** A job run to a verified output. */
export interface JobRun {
  /** The job id (hex). */
  jobId: string;
  /**
   * The output bytes: their hash is the verified receipt's `output_hash` (fetched with
   * `blob_get` when the provider left them in a blob: `result.output_in_blob`).
   */
  output: Uint8Array;
  /** The result as the node reported it. */
  result: ResultInfo;
  /** The receipt proof, verified against the genesis. */
  proof: ReceiptProof;
  /** What the proof showed: the job id, the height and hash of the block that finalized it. */
  receipt: VerifiedReceipt;
  /** The signed offer submitted. */
  offer: SignedOffer;
  /** The events delivered, each stage once, in order. */
  events: JobEvent[];
  /** Times the subscription was resumed after its connection dropped. */
  resubscriptions: number;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function check(cond: boolean, what: string): asserts cond {
  if (!cond) throw new VerifyError(what);
}

/**
 * Runs a job end to end and returns its output only once verified: the node must serve the
 * genesis' chain; the module is uploaded if the node lacks it; an input larger than the chain's
 * `input_bytes_max` is stored on the node as a blob the offer names (`placeInput`); the offer
 * is signed with `spec.key`, subscribed to, submitted, and followed to `finalized` (across
 * reconnections); then the receipt proof of the result is fetched and verified offline against
 * the genesis (`verifyReceiptProof`), and its claim must be this job's, module's, input's and
 * provider's, with `output_hash = H(output)` for the output bytes the node sent (an output left
 * in a blob is fetched by that hash with `blob_get`, and checked against it). With redundancy
 * k ≥ 2, every receipt proof of the job is verified and all ok receipts must agree on the
 * output.
 *
 * Throws `CairnJobError` if the job expired, was dropped, failed (a verified status other than
 * ok: `reason` says why) or timed out; `VerifyError` if anything does not verify; `CairnRpcError`
 * if the node refused the offer.
 */
export async function runJob(client: CairnClient, spec: JobSpec, opts: RunOptions): Promise<JobRun> {
  const timeoutMs = opts.timeoutMs ?? 120_000;
  const deadline = Date.now() + timeoutMs;
  const chain = chainId(opts.genesis);
  const info = await client.nodeInfo();
  check(bytesEqual(info.chain_id, chain), `the node serves chain ${toHex(info.chain_id)}, the genesis is of chain ${toHex(chain)}`);

  const offer = signOffer(await prepareOffer(client, await placeInput(client, spec, opts.genesis)), spec.key);
  const id = jobIdOf(offer);
  const jobId = toHex(id);

  const sub = client.jobSubscribe(id, {
    ...(opts.onEvent ? { onEvent: opts.onEvent } : {}),
    ...(opts.onReconnect ? { onReconnect: opts.onReconnect } : {}),
  });
  opts.onSubscribed?.(sub);
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await sub.ready;
    await submitOffer(client, spec.module, offer, id, deadline);

    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new CairnJobError(jobId, 'timeout', `job ${jobId} not final within ${timeoutMs} ms (last stage: ${sub.stage ?? 'none'})`)),
        Math.max(0, deadline - Date.now()),
      );
    });
    const last = await Promise.race([sub.done, timeout]);
    if (last.stage === 'expired') throw new CairnJobError(jobId, 'expired', `job ${jobId} expired: no provider delivered a result before its deadline`);
    if (last.stage === 'dropped') {
      throw new CairnJobError(jobId, 'dropped', `job ${jobId} was dropped: ${last.reason ?? 'no reason given'}`, last.reason ? { reason: last.reason } : {});
    }

    // The result: the finalized event carries it (else the node's job_get).
    const result = [...sub.events].reverse().find((e) => e.result)?.result ?? (await client.jobGet(id)).result;
    check(result !== null, `job ${jobId} finalized without a result`);

    const proof = await fetchProof(client, id, result.provider, deadline);
    const receipt = verifyReceiptProof(proof, opts.genesis);
    const claim = proof.receipt.claim;
    check(bytesEqual(claim.job_id, id), "the receipt is another job's");
    check(bytesEqual(claim.module_id, offer.offer.module_id), "the receipt is another module's");
    check(bytesEqual(claim.input_hash, inputHash(offer.offer)), "the receipt is another input's");
    check(bytesEqual(claim.provider, result.provider), "the receipt is another provider's");
    check(claim.status === result.status, `the receipt's status is ${claim.status}, the node reported ${result.status}`);
    check(bytesEqual(claim.output_hash, result.output_hash), "the receipt's output hash is not the result's");
    if (result.output_in_blob) {
      check(claim.status === 'ok' && result.output.length === 0, 'a result whose output is in a blob has status ok and no inline output');
    } else {
      check(bytesEqual(H(result.output), claim.output_hash), "the output bytes do not hash to the receipt's output_hash");
    }

    if (offer.offer.redundancy > 1) {
      for (const p of await client.jobProofs(id)) {
        verifyReceiptProof(p, opts.genesis);
        check(bytesEqual(p.receipt.claim.job_id, id), "a receipt is another job's");
        if (p.receipt.claim.status === 'ok' && claim.status === 'ok') {
          check(bytesEqual(p.receipt.claim.output_hash, claim.output_hash), `providers disagree on the output of job ${jobId}`);
        }
      }
    }
    if (claim.status !== 'ok') {
      const reason = result.reason ?? new TextDecoder().decode(result.output);
      throw new CairnJobError(jobId, 'failed', `job ${jobId} failed (${claim.status}): ${reason}`, { reason, status: claim.status });
    }
    const output = await outputOf(client, result, { timeoutMs: Math.max(0, deadline - Date.now()) });
    return { jobId, output, result, proof, receipt, offer, events: [...sub.events], resubscriptions: sub.resubscriptions };
  } finally {
    if (timer !== undefined) clearTimeout(timer);
    sub.close();
  }
}

/**
 * Submits the offer, uploading the module first if the node lacks it. If the connection drops
 * under the call, asks the node (once reconnected) whether the job arrived, and submits again if
 * not: an offer is never submitted twice knowingly.
 */
async function submitOffer(client: CairnClient, module: JobSpec['module'], offer: SignedOffer, id: Uint8Array, deadline: number): Promise<void> {
  const submit = async (): Promise<void> => {
    const answered = await withModule(client, module, () => client.jobSubmit(offer));
    check(bytesEqual(answered, id), `the node answered job id ${toHex(answered)}, expected ${toHex(id)}`);
  };
  try {
    await submit();
  } catch (e) {
    if (!(e instanceof CairnConnectionError && e.retryable)) throw e;
    for (;;) {
      try {
        await client.jobGet(id);
        return; // it arrived
      } catch (err) {
        if (err instanceof CairnRpcError && err.reason === 'not_found') return submit();
        if (!(err instanceof CairnConnectionError && err.retryable) || Date.now() > deadline) throw err;
        await sleep(200);
      }
    }
  }
}

/**
 * The receipt proof, asked again while the node has no finalized receipt yet, or when the
 * connection drops under the call (a read: asking twice is harmless), until the deadline.
 */
async function fetchProof(client: CairnClient, id: Uint8Array, provider: Uint8Array, deadline: number): Promise<ReceiptProof> {
  for (let wait = 50; ; wait = Math.min(wait * 2, 1_000)) {
    try {
      return await client.jobProof(id, provider);
    } catch (e) {
      const retry = (e instanceof CairnRpcError && e.reason === 'not_finalized') || (e instanceof CairnConnectionError && e.retryable);
      if (!retry || Date.now() + wait > deadline) throw e;
      await sleep(wait);
    }
  }
}

/**
 * A blob's bytes (`blob_get`), asked again when the connection drops under the call or the node
 * is busy (a read: asking twice is harmless), until the deadline.
 */
async function fetchBlob(client: CairnClient, id: Uint8Array, deadline: number): Promise<Uint8Array> {
  for (let wait = 50; ; wait = Math.min(wait * 2, 1_000)) {
    try {
      return await client.blobGet(id);
    } catch (e) {
      const busy = e instanceof CairnRpcError && e.reason === 'overloaded';
      const retry = busy || (e instanceof CairnConnectionError && e.retryable);
      const pause = busy ? Math.max(wait, (e as CairnRpcError).retryAfterMs ?? 0) : wait;
      if (!retry || Date.now() + pause > deadline) throw e;
      await sleep(pause);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Account transactions

export interface TxOptions {
  /** The fee (default: `node_info`'s `tx_fee_min`). */
  fee?: bigint | number;
  /** The nonce (default: `account_get`'s `next_nonce`). */
  nonce?: bigint | number;
}

/** The unsigned transaction of `action` by `sender` for the chain the node serves. */
export async function prepareTx(client: CairnClient, sender: HashLike, action: Action, opts: TxOptions = {}): Promise<Tx> {
  const info = await client.nodeInfo();
  const senderBytes = typeof sender === 'string' ? fromHex(sender) : sender;
  const nonce = opts.nonce !== undefined ? BigInt(opts.nonce) : (await client.accountGet(senderBytes)).next_nonce;
  return buildTx({ chain_id: info.chain_id, sender: senderBytes, nonce, fee: opts.fee !== undefined ? BigInt(opts.fee) : info.tx_fee_min, action });
}

export interface SubmitTxOptions extends TxOptions {
  /** Wait until a finalized block holds it (the sender's nonce moved past it); default true. */
  wait?: boolean;
  /** How long to wait (default 60,000 ms). */
  timeoutMs?: number;
}

/** A submitted transaction. */
export interface SubmittedTx {
  /** Its hash, as `tx_submit` answered it (checked against `H(0x02 ‖ borsh(tx))`). */
  hash: string;
  tx: SignedTx;
}

/**
 * Builds, signs and submits an account transaction, and (by default) waits until it is in a
 * finalized block: as rpc/src/client.rs's `sign_tx` and `submit_tx`.
 */
export async function submitTx(client: CairnClient, key: Key, action: Action, opts: SubmitTxOptions = {}): Promise<SubmittedTx> {
  const tx = signTx(await prepareTx(client, key.publicKey, action, opts), key);
  const answered = await client.txSubmit(tx);
  check(bytesEqual(answered, signedTxHash(tx)), `tx_submit answered ${toHex(answered)}, the transaction's hash is ${toHex(signedTxHash(tx))}`);
  const hash = toHex(answered);
  if (opts.wait ?? true) {
    const timeoutMs = opts.timeoutMs ?? 60_000;
    const deadline = Date.now() + timeoutMs;
    while ((await client.accountGet(key.publicKey)).nonce <= tx.tx.nonce) {
      if (Date.now() > deadline) throw new CairnConnectionError(`transaction ${hash} not finalized within ${timeoutMs} ms`);
      await sleep(50);
    }
  }
  return { hash, tx };
}
