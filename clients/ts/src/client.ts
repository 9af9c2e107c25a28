// A typed client of a node's JSON-RPC API: one method per method of docs/openrpc.json (the
// test `client.test.ts` checks the list against it, params included), over WebSocket or HTTP.
//
//   const client = new CairnClient('ws://127.0.0.1:9944');     // calls and subscriptions on one WebSocket
//   const client = new CairnClient('http://127.0.0.1:9944');   // calls over HTTP; subscriptions open a WebSocket
//
// Records come back decoded (`Uint8Array` for hashes and keys, `bigint` for u64s), see
// rpc-types.ts and types.ts; errors are `CairnRpcError` or `CairnConnectionError`.

import { bytes, hash32 as hash, toHex, vec } from './borsh.ts';
import { CairnConnectionError } from './errors.ts';
import {
  AccountInfo,
  EvidenceInfo,
  HeadInfo,
  Health,
  JOB_STAGES,
  JobEstimate,
  JobEvent,
  JobInfo,
  type JobStage,
  NodeInfo,
  ProviderInfo,
  isTerminalStage,
} from './rpc-types.ts';
import {
  HttpTransport,
  type Transport,
  type TransportOptions,
  type TransportSubscription,
  WsTransport,
} from './transport.ts';
import { Block, Genesis, JobOffer, ReceiptProof, SignedOffer, SignedTx, StateProof } from './types.ts';

/** A 32-byte id or key, as bytes or as 64 lowercase hex digits. */
export type HashLike = Uint8Array | string;

function hex32(v: HashLike, what: string): string {
  const s = typeof v === 'string' ? v : toHex(v);
  if (!/^[0-9a-f]{64}$/.test(s)) throw new TypeError(`${what} must be 32 bytes (64 lowercase hex digits)`);
  return s;
}

function hexBytes(v: Uint8Array | string): string {
  return typeof v === 'string' ? v : toHex(v);
}

export interface ClientOptions extends TransportOptions {
  /**
   * `ws`: calls and subscriptions over one WebSocket; `http`: calls over HTTP POST,
   * subscriptions over a WebSocket to the same host and port. Default: by the URL's scheme
   * (`ws://`/`wss://` or `http://`/`https://`; a bare `host:port` is `ws`).
   */
  transport?: 'ws' | 'http';
}

/** The client's method for each method of docs/openrpc.json (checked by `client.test.ts`). */
export const RPC_METHODS = {
  'rpc.discover': 'rpcDiscover',
  module_put: 'modulePut',
  blob_put: 'blobPut',
  blob_get: 'blobGet',
  job_submit: 'jobSubmit',
  job_estimate: 'jobEstimate',
  tx_submit: 'txSubmit',
  provider_list: 'providerList',
  job_get: 'jobGet',
  job_proof: 'jobProof',
  job_proofs: 'jobProofs',
  job_subscribe: 'jobSubscribe',
  job_unsubscribe: 'jobUnsubscribe',
  chain_head: 'chainHead',
  chain_getBlock: 'chainGetBlock',
  account_get: 'accountGet',
  state_getProof: 'stateGetProof',
  node_info: 'nodeInfo',
  consensus_evidence: 'consensusEvidence',
  system_health: 'systemHealth',
  chain_genesis: 'chainGenesis',
  chain_subscribeHeads: 'subscribeHeads',
  chain_unsubscribeHeads: 'chainUnsubscribeHeads',
} as const satisfies Record<string, keyof CairnClient>;

export type RpcMethod = keyof typeof RPC_METHODS;

/** A node's RPC. */
export class CairnClient {
  readonly url: string;
  /** Where calls go. */
  readonly transport: Transport;
  private ws: WsTransport | null;
  private readonly wsUrl: string;
  private readonly opts: ClientOptions;

  constructor(url: string, opts: ClientOptions = {}) {
    const full = url.includes('://') ? url : `ws://${url}`;
    const scheme = full.slice(0, full.indexOf('://'));
    const kind = opts.transport ?? (scheme === 'http' || scheme === 'https' ? 'http' : 'ws');
    this.url = full;
    this.opts = opts;
    this.wsUrl = full.replace(/^http(s?):\/\//, 'ws$1://');
    const httpUrl = full.replace(/^ws(s?):\/\//, 'http$1://');
    this.ws = kind === 'ws' ? new WsTransport(this.wsUrl, opts) : null;
    this.transport = this.ws ?? new HttpTransport(httpUrl, opts);
  }

  /** The WebSocket transport (subscriptions), opened on first use. */
  webSocket(): WsTransport {
    this.ws ??= new WsTransport(this.wsUrl, this.opts);
    return this.ws;
  }

  /** Closes the WebSocket, if any: calls in flight fail, subscriptions end. */
  close(): void {
    this.ws?.close();
    if (this.transport !== this.ws) this.transport.close();
  }

  /** Any method, params by name (or by position as an array); the raw JSON `result`. */
  async call(method: string, params: Record<string, unknown> | unknown[] = {}): Promise<unknown> {
    return this.transport.request(method, params);
  }

  private async get<T>(c: { fromJson(j: unknown, path?: string): T }, method: RpcMethod, params: Record<string, unknown> | unknown[] = {}): Promise<T> {
    return c.fromJson(await this.call(method, params), method);
  }

  // -------------------------------------------------------------------------------------------
  // One method per RPC method, in docs/RPC.md's order.

  /** `rpc.discover`: the node's OpenRPC document (as parsed JSON). */
  async rpcDiscover(): Promise<unknown> {
    return this.call('rpc.discover');
  }

  /** `module_put`: stores a wasm module on the node (validated and compiled); answers its id `H(wasm)`. */
  async modulePut(wasm: Uint8Array | string): Promise<Uint8Array> {
    return this.get(hash, 'module_put', { wasm_hex: hexBytes(wasm) });
  }

  /**
   * `blob_put`: stores a job data blob (at most `DATA_BLOB_BYTES_MAX`, 4 MiB) on the node;
   * answers its id `H(bytes)`, which an offer names as its `input_blob`.
   */
  async blobPut(data: Uint8Array | string): Promise<Uint8Array> {
    return this.get(hash, 'blob_put', { bytes_hex: hexBytes(data) });
  }

  /**
   * `blob_get`: a blob's bytes by id (an input blob, or an output a result left in a blob: its
   * `output_hash`), which the node fetches from its holders for up to 10 s if it lacks it
   * (-33010 `blob_unknown` if none sent it). Not checked against the id here: `outputOf` does.
   */
  async blobGet(id: HashLike): Promise<Uint8Array> {
    return this.get(bytes, 'blob_get', { id: hex32(id, 'id') });
  }

  /** `job_submit`: submits a signed offer; answers its job id. */
  async jobSubmit(offer: SignedOffer): Promise<Uint8Array> {
    return this.get(hash, 'job_submit', { offer: SignedOffer.toJson(offer) });
  }

  /**
   * `job_estimate`: runs the unsigned `offer` in the node's sandbox and says what it would cost
   * and whether it would be admitted; `jobId` is the id it will have once signed (see
   * `estimate` in run.ts, which computes it).
   */
  async jobEstimate(offer: JobOffer, jobId: HashLike): Promise<JobEstimate> {
    return this.get(JobEstimate, 'job_estimate', { offer: JobOffer.toJson(offer), job_id: hex32(jobId, 'job_id') });
  }

  /** `tx_submit`: submits a signed account transaction; answers its hash `H(0x02 ‖ borsh(tx))`. */
  async txSubmit(tx: SignedTx): Promise<Uint8Array> {
    return this.get(hash, 'tx_submit', { tx: SignedTx.toJson(tx) });
  }

  /** `provider_list`: the registered providers. */
  async providerList(): Promise<ProviderInfo[]> {
    return this.get(vec(ProviderInfo), 'provider_list');
  }

  /** `job_get`: what the node knows of a job. */
  async jobGet(jobId: HashLike): Promise<JobInfo> {
    return this.get(JobInfo, 'job_get', { job_id: hex32(jobId, 'job_id') });
  }

  /**
   * `job_proof`: the receipt proof of a finalized job (of `provider`'s result when given; a job
   * with several receipts needs it). Verify it with `verifyReceiptProof`.
   */
  async jobProof(jobId: HashLike, provider?: HashLike): Promise<ReceiptProof> {
    const params: Record<string, unknown> = { job_id: hex32(jobId, 'job_id') };
    if (provider !== undefined) params['provider'] = hex32(provider, 'provider');
    return this.get(ReceiptProof, 'job_proof', params);
  }

  /** `job_proofs`: every receipt proof of a job, one per accepted result (empty while none is final). */
  async jobProofs(jobId: HashLike): Promise<ReceiptProof[]> {
    return this.get(vec(ReceiptProof), 'job_proofs', { job_id: hex32(jobId, 'job_id') });
  }

  /**
   * `job_subscribe`: a job's events, each stage once and in order, across reconnections (see
   * `JobSubscription`). Subscribe before submitting so that no event is missed.
   */
  jobSubscribe(jobId: HashLike, opts: JobSubscriptionOptions = {}): JobSubscription {
    return new JobSubscription(this.webSocket(), hex32(jobId, 'job_id'), opts);
  }

  /**
   * `job_unsubscribe`: ends a subscription of the current WebSocket connection by its raw id
   * (params by position). `JobSubscription.close()` does this for you.
   */
  async jobUnsubscribe(subscription: number | bigint | string): Promise<boolean> {
    const r = await this.webSocket().request('job_unsubscribe', [subscription]);
    return r === true;
  }

  /** `chain_head`: the last finalized block. */
  async chainHead(): Promise<HeadInfo> {
    return this.get(HeadInfo, 'chain_head');
  }

  /** `chain_getBlock`: the finalized block at `height` (its commit is the next block's `last_commit`). */
  async chainGetBlock(height: bigint | number): Promise<Block> {
    return this.get(Block, 'chain_getBlock', { height: BigInt(height) });
  }

  /** `account_get`: balance, nonce at the head, and `next_nonce` counting the node's mempool. */
  async accountGet(address: HashLike): Promise<AccountInfo> {
    return this.get(AccountInfo, 'account_get', { address: hex32(address, 'address') });
  }

  /**
   * `state_getProof`: a state proof of `key` (docs/STATE.md: `accountKey`, `providerKey`,
   * `jobKey`, `HEIGHT_KEY`) at `height` (default: the head). Verify with `verifyStateProof`.
   */
  async stateGetProof(key: Uint8Array | string, height?: bigint | number): Promise<StateProof> {
    const params: Record<string, unknown> = { key_hex: hexBytes(key) };
    if (height !== undefined) params['height'] = BigInt(height);
    return this.get(StateProof, 'state_getProof', params);
  }

  /** `node_info`: the node, its chain and the chain's least fee. */
  async nodeInfo(): Promise<NodeInfo> {
    return this.get(NodeInfo, 'node_info');
  }

  /** `consensus_evidence`: equivocation this validator kept, oldest first. */
  async consensusEvidence(): Promise<EvidenceInfo[]> {
    return this.get(vec(EvidenceInfo), 'consensus_evidence');
  }

  /** `system_health`: whether the node is caught up with its peers (`GET /ready`'s facts). */
  async systemHealth(): Promise<Health> {
    return this.get(Health, 'system_health');
  }

  /**
   * `chain_genesis`: the genesis the node runs (genesis.json's content). Verifying against it
   * trusts this node; a genesis obtained elsewhere (its chain id checked) is stronger.
   */
  async chainGenesis(): Promise<Genesis> {
    return this.get(Genesis, 'chain_genesis');
  }

  /**
   * `chain_subscribeHeads`: the head now, then each new finalized head (heights may be skipped
   * when the reader is slow: always the latest), across reconnections. See `HeadSubscription`.
   */
  subscribeHeads(opts: HeadSubscriptionOptions = {}): HeadSubscription {
    return new HeadSubscription(this.webSocket(), opts);
  }

  /**
   * `chain_unsubscribeHeads`: ends a heads subscription of the current WebSocket connection by
   * its raw id (params by position). `HeadSubscription.close()` does this for you.
   */
  async chainUnsubscribeHeads(subscription: number | bigint | string): Promise<boolean> {
    const r = await this.webSocket().request('chain_unsubscribeHeads', [subscription]);
    return r === true;
  }
}

// ---------------------------------------------------------------------------------------------
// Head subscriptions

export interface HeadSubscriptionOptions {
  /** Called with each head newer than the last one passed (a resubscription's replay is dropped). */
  onHead?: (head: HeadInfo) => void;
  /** Called once if the subscription cannot go on (refused, or the transport gave up). */
  onError?: (e: Error) => void;
  /** Called when the connection dropped (`resubscribed` false) and when the subscription is back (true). */
  onReconnect?: (info: { resubscribed: boolean; error?: Error }) => void;
}

/**
 * Finalized heads from `chain_subscribeHeads`, each height at most once and rising: after a
 * reconnection the node sends its current head first, which is passed only if it is new.
 */
export class HeadSubscription {
  /** The last head passed. */
  latest: HeadInfo | null = null;
  /** Resolves once the node has answered the first subscribe call (rejects if refused). */
  readonly ready: Promise<void>;

  private readonly handle: TransportSubscription;
  private closed = false;
  private waiters: { resolve(): void }[] = [];
  private error: Error | null = null;

  constructor(transport: WsTransport, opts: HeadSubscriptionOptions = {}) {
    let readyResolve!: () => void;
    let readyReject!: (e: Error) => void;
    this.ready = new Promise((res, rej) => {
      readyResolve = res;
      readyReject = rej;
    });
    this.ready.catch(() => {});
    this.handle = transport.subscribe(
      { subscribe: 'chain_subscribeHeads', params: {}, notification: 'chain_newHead', unsubscribe: 'chain_unsubscribeHeads' },
      {
        onItem: (raw) => {
          let head: HeadInfo;
          try {
            head = HeadInfo.fromJson(raw, 'chain_newHead');
          } catch (e) {
            this.fail(e as Error, opts, readyReject);
            return;
          }
          if (this.latest !== null && head.height <= this.latest.height) return;
          this.latest = head;
          opts.onHead?.(head);
          this.wake();
        },
        onError: (e) => this.fail(e, opts, readyReject),
        onSubscribed: ({ resumed }) => {
          if (resumed) opts.onReconnect?.({ resubscribed: true });
          readyResolve();
        },
        onDisconnected: (e) => opts.onReconnect?.({ resubscribed: false, error: e }),
      },
    );
  }

  /** Ends the subscription (unsubscribes on the node). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.handle.close();
    this.wake();
  }

  /** Waits until a head of at least `height` has arrived; throws after `timeoutMs` or on failure. */
  async waitFor(height: bigint | number, timeoutMs: number): Promise<HeadInfo> {
    const want = BigInt(height);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.latest !== null && this.latest.height >= want) return this.latest;
      if (this.error) throw this.error;
      if (this.closed) throw new CairnConnectionError('the heads subscription is closed', { retryable: false });
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new CairnConnectionError(`no head of height ${want} within ${timeoutMs} ms (last: ${this.latest?.height ?? 'none'})`);
      }
      await new Promise<void>((resolve) => {
        this.waiters.push({ resolve });
        setTimeout(resolve, left);
      });
    }
  }

  private fail(e: Error, opts: HeadSubscriptionOptions, readyReject: (e: Error) => void): void {
    if (this.closed) return;
    this.closed = true;
    this.error = e;
    this.handle.close(true);
    readyReject(e);
    opts.onError?.(e);
    this.wake();
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const x of w) x.resolve();
  }
}

// ---------------------------------------------------------------------------------------------
// Job subscriptions: resume and de-duplicate

/** Each stage's place in a job's life (docs/RPC.md: `accepted` … `finalized`, or `expired`, `dropped`). */
export function stageRank(stage: JobStage): number {
  return JOB_STAGES.indexOf(stage);
}

/**
 * Passes each stage of a job once, in order: an event whose stage is not past the last one
 * passed is dropped. A node sends a job's past events first on (re)subscribe, so after a
 * reconnection it replays what was already delivered (dropped here) and what happened while
 * disconnected (passed, in order). A stage the node no longer knows is not invented.
 */
export class StageFilter {
  private last = -1;

  /** Whether `ev` is new: its stage after every stage passed so far. */
  accept(ev: { stage: JobStage }): boolean {
    const r = stageRank(ev.stage);
    if (r <= this.last) return false;
    this.last = r;
    return true;
  }

  /** The last stage passed. */
  get stage(): JobStage | null {
    return this.last < 0 ? null : JOB_STAGES[this.last]!;
  }
}

export interface JobSubscriptionOptions {
  /** Called with each new event, each stage once, in order. */
  onEvent?: (ev: JobEvent) => void;
  /** Called when the connection dropped (`resubscribed` false) and when the subscription is back (true). */
  onReconnect?: (info: { resubscribed: boolean; error?: Error }) => void;
}

/**
 * A job's events from `job_subscribe`, across reconnections: when the WebSocket drops, the
 * transport reconnects with backoff and subscribes again; the node replays the job's past
 * events and `StageFilter` delivers each stage once, in order. Ends after `finalized`,
 * `expired` or `dropped`.
 *
 * Read it with `onEvent`, with `next()`/`until()`, or with `for await (const ev of sub)`.
 */
export class JobSubscription implements AsyncIterable<JobEvent> {
  readonly jobId: string;
  /** Every event delivered, in order. */
  readonly events: JobEvent[] = [];
  /** Events received and dropped as already delivered (replays after a reconnection). */
  duplicates = 0;
  /** Times the subscription was made again after its connection dropped. */
  resubscriptions = 0;
  /** Resolves once the node has answered the first `job_subscribe` (rejects if refused). */
  readonly ready: Promise<void>;
  /** Resolves with the last event (`finalized`, `expired` or `dropped`); rejects if the subscription fails. */
  readonly done: Promise<JobEvent>;

  private readonly filter = new StageFilter();
  private readonly handle: TransportSubscription;
  private read = 0;
  private waiters: { resolve(): void }[] = [];
  private error: Error | null = null;
  private finished = false;
  private readyResolve!: () => void;
  private readyReject!: (e: Error) => void;
  private doneResolve!: (ev: JobEvent) => void;
  private doneReject!: (e: Error) => void;

  constructor(transport: WsTransport, jobId: string, opts: JobSubscriptionOptions = {}) {
    this.jobId = jobId;
    this.ready = new Promise((res, rej) => {
      this.readyResolve = res;
      this.readyReject = rej;
    });
    this.done = new Promise((res, rej) => {
      this.doneResolve = res;
      this.doneReject = rej;
    });
    // Callers may await only one of them.
    this.ready.catch(() => {});
    this.done.catch(() => {});
    this.handle = transport.subscribe(
      { subscribe: 'job_subscribe', params: { job_id: jobId }, notification: 'job_event', unsubscribe: 'job_unsubscribe' },
      {
        onItem: (raw) => {
          let ev: JobEvent;
          try {
            ev = JobEvent.fromJson(raw, 'job_event');
          } catch (e) {
            this.fail(e as Error);
            return;
          }
          if (toHex(ev.job_id) !== jobId) return;
          if (!this.filter.accept(ev)) {
            this.duplicates++;
            return;
          }
          this.events.push(ev);
          opts.onEvent?.(ev);
          this.wake();
          if (isTerminalStage(ev.stage)) {
            this.finished = true;
            // The node ends the subscription after its last event: nothing to unsubscribe.
            this.handle.close(true);
            this.doneResolve(ev);
            this.wake();
          }
        },
        onError: (e) => this.fail(e),
        onSubscribed: ({ resumed }) => {
          if (resumed) {
            this.resubscriptions++;
            opts.onReconnect?.({ resubscribed: true });
          }
          this.readyResolve();
        },
        onDisconnected: (e) => opts.onReconnect?.({ resubscribed: false, error: e }),
      },
    );
  }

  /** The last stage delivered. */
  get stage(): JobStage | null {
    return this.filter.stage;
  }

  /** Ends the subscription (unsubscribes on the node). */
  close(): void {
    if (this.finished) return;
    this.finished = true;
    this.handle.close();
    this.doneReject(new CairnConnectionError(`subscription to job ${this.jobId} closed before its last event`, { retryable: false }));
    this.wake();
  }

  private fail(e: Error): void {
    if (this.finished) return;
    this.finished = true;
    this.error = e;
    this.handle.close(true);
    this.readyReject(e);
    this.doneReject(e);
    this.wake();
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const x of w) x.resolve();
  }

  /** The next event not yet read, or null once the subscription is over; throws on failure or after `timeoutMs`. */
  async next(timeoutMs?: number): Promise<JobEvent | null> {
    const deadline = timeoutMs === undefined ? undefined : Date.now() + timeoutMs;
    for (;;) {
      if (this.read < this.events.length) return this.events[this.read++]!;
      if (this.error) throw this.error;
      if (this.finished) return null;
      const left = deadline === undefined ? undefined : deadline - Date.now();
      if (left !== undefined && left <= 0) {
        throw new CairnConnectionError(`no event of job ${this.jobId} within ${timeoutMs} ms (last: ${this.stage ?? 'none'})`);
      }
      await new Promise<void>((resolve) => {
        const waiter = { resolve };
        this.waiters.push(waiter);
        if (left !== undefined) setTimeout(resolve, left);
      });
    }
  }

  async *[Symbol.asyncIterator](): AsyncIterator<JobEvent> {
    for (;;) {
      const ev = await this.next();
      if (ev === null) return;
      yield ev;
    }
  }
}

