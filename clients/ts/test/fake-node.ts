// A fake node behind fake WebSockets, for the unit tests: answers JSON-RPC calls with handlers
// the test sets, keeps each job's past events and sends them first on `job_subscribe` (as
// docs/RPC.md says a node does), and can drop every connection and refuse new ones for a while.
// Subscription ids are integers past 2^53 (jsonrpsee's random ones fit in 53 bits; these check
// that an id is kept exact whatever its size).

import { parseJson, stringifyJson } from '../src/index.ts';
import type { WebSocketLike } from '../src/index.ts';

/** A handler's error answer. */
export class RpcFault {
  readonly code: number;
  readonly message: string;
  readonly data: unknown;
  constructor(code: number, message: string, data?: unknown) {
    this.code = code;
    this.message = message;
    this.data = data;
  }
}

type Handler = (params: unknown, socket: FakeSocket) => unknown;

export class FakeSocket implements WebSocketLike {
  readyState = 0;
  onopen: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onclose: ((ev: { code?: number; reason?: string }) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  /** This connection's subscriptions: id → job id. */
  readonly subs = new Map<string, string>();
  private readonly node: FakeNode;

  constructor(node: FakeNode) {
    this.node = node;
  }

  send(data: string): void {
    if (this.readyState !== 1) throw new Error('not open');
    setTimeout(() => this.node.handle(this, data), 0);
  }

  close(): void {
    this.drop(1000, 'closed by client');
  }

  /** The connection breaks (as a network drop: code 1006). */
  drop(code = 1006, reason = ''): void {
    if (this.readyState === 3) return;
    this.readyState = 3;
    this.subs.clear();
    this.onclose?.({ code, reason });
  }

  deliver(msg: unknown): void {
    if (this.readyState !== 1) return;
    this.onmessage?.({ data: stringifyJson(msg) });
  }
}

export class FakeNode {
  readonly sockets: FakeSocket[] = [];
  readonly handlers: Record<string, Handler> = {};
  /** Every call received, in order. */
  readonly calls: { method: string; params: unknown }[] = [];
  /** Each job's events so far (JSON), sent first on subscribe. */
  readonly past = new Map<string, unknown[]>();
  /** While true, new connections fail at once. */
  refuse = false;
  /** Connection attempts refused. */
  refused = 0;
  private nextSub = 2n ** 60n;

  /** The factory to give the client as `webSocket`. */
  readonly factory = (_url: string): WebSocketLike => {
    const s = new FakeSocket(this);
    this.sockets.push(s);
    setTimeout(() => {
      if (this.refuse) {
        this.refused++;
        s.readyState = 3;
        s.onerror?.({ message: 'connection refused' });
        s.onclose?.({ code: 1006, reason: '' });
        return;
      }
      s.readyState = 1;
      s.onopen?.({});
    }, 1);
    return s;
  };

  constructor() {
    this.handlers['job_subscribe'] = (params, socket) => {
      const jobId = (params as { job_id: string }).job_id;
      const id = this.nextSub++;
      socket.subs.set(id.toString(), jobId);
      // The answer first, then the past events at once (the node's `pending.accept()` then sends).
      queueMicrotask(() => {
        for (const ev of this.past.get(jobId) ?? []) socket.deliver({ jsonrpc: '2.0', method: 'job_event', params: { subscription: id, result: ev } });
      });
      return id;
    };
    this.handlers['job_unsubscribe'] = (params, socket) => socket.subs.delete(String((params as unknown[])[0]));
  }

  /** Open connections. */
  get open(): FakeSocket[] {
    return this.sockets.filter((s) => s.readyState === 1);
  }

  handle(socket: FakeSocket, text: string): void {
    if (socket.readyState !== 1) return;
    const req = parseJson(text) as { id: number; method: string; params: unknown };
    this.calls.push({ method: req.method, params: req.params });
    const h = this.handlers[req.method];
    const reply = (body: Record<string, unknown>): void => {
      socket.deliver({ jsonrpc: '2.0', id: req.id, ...body });
    };
    if (!h) return reply({ error: { code: -32601, message: 'Method not found' } });
    try {
      const result = h(req.params, socket);
      reply({ result });
    } catch (e) {
      if (e instanceof RpcFault) reply({ error: { code: e.code, message: e.message, ...(e.data === undefined ? {} : { data: e.data }) } });
      else throw e;
    }
  }

  /** A job's event: kept, and sent to every open subscription of the job. */
  emit(jobId: string, ev: Record<string, unknown>): void {
    const list = this.past.get(jobId) ?? [];
    list.push(ev);
    this.past.set(jobId, list);
    this.notify(jobId, ev);
  }

  /** Sends `ev` to the job's open subscriptions without keeping it (a duplicate on the wire). */
  notify(jobId: string, ev: Record<string, unknown>): void {
    for (const s of this.open) {
      for (const [id, job] of s.subs) {
        if (job === jobId) s.deliver({ jsonrpc: '2.0', method: 'job_event', params: { subscription: BigInt(id), result: ev } });
      }
    }
  }

  /** Breaks every open connection. */
  dropAll(): void {
    for (const s of this.open) s.drop();
  }
}

/**
 * Answers the reads a client makes before it signs, as a node of a chain at height 0 would:
 * `node_info` (chain `chainIdHex`, least fee 1), `chain_head`, `chain_genesis` (`genesisJson`)
 * and `account_get` (every account funded, nonce 0).
 */
export function answerChainReads(node: FakeNode, chainIdHex: string, genesisJson: unknown): void {
  node.handlers['node_info'] = () => ({
    version: '0.1.0',
    chain_id: chainIdHex,
    chain_name: 'test-linked',
    address: '00'.repeat(32),
    peer_id: '12D3Koo',
    listen_addrs: [],
    validator: true,
    provider: false,
    peers: 0,
    height: 0,
    blocks_executed: 0,
    tx_fee_min: 1,
  });
  node.handlers['chain_head'] = () => ({ height: 0, hash: '00'.repeat(32), state_root: '00'.repeat(32), time_ms: 0 });
  node.handlers['chain_genesis'] = () => genesisJson;
  node.handlers['account_get'] = (p) => ({ address: (p as { address: string }).address, balance: 10_000_000, nonce: 0, next_nonce: 0 });
}

/** Resolves once `cond()` holds (checked every few ms), or rejects after `ms`. */
export async function until(cond: () => boolean, ms = 2_000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}
