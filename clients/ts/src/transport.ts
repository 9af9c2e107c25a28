// JSON-RPC 2.0 over HTTP (`fetch`) and over WebSocket (the platform's `WebSocket`: Node 22's
// global or a browser's), as docs/RPC.md serves it: one port for both. Answers are parsed with
// `parseJson`, so u64s past 2^53 stay exact (subscription ids too, whatever their size).
//
// The WebSocket transport reconnects: when the connection drops, calls in flight fail with a
// `CairnConnectionError` (the caller decides whether a call may be repeated), and while
// subscriptions are open it reconnects with exponential backoff and subscribes them again; the
// subscriber sees `onResubscribed` and the node's replay of past events (a job's are sent first).

import { parseJson, stringifyJson } from './borsh.ts';
import { CairnConnectionError, CairnRpcError } from './errors.ts';

/** The part of the WebSocket API the client uses (the WHATWG one, as in browsers and Node 22). */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code?: number; reason?: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
}

/** Opens a WebSocket to `url`. The default uses the global `WebSocket`. */
export type WebSocketFactory = (url: string) => WebSocketLike;

/** A way to send calls to a node. */
export interface Transport {
  /** Sends one call and resolves with its `result`; rejects with `CairnRpcError` or `CairnConnectionError`. */
  request(method: string, params: unknown): Promise<unknown>;
  close(): void;
}

export interface ReconnectOptions {
  /** The first wait after a drop (default 100 ms); each failed try doubles it. */
  initialDelayMs?: number;
  /** The longest wait between tries (default 5,000 ms). */
  maxDelayMs?: number;
  /** Failed tries in a row before giving up and failing the subscriptions (default: never give up). */
  maxAttempts?: number;
}

/** What a WebSocket transport reports about its connection. */
export type ConnectionEvent =
  | { state: 'open'; connection: number }
  | { state: 'closed'; connection: number; code?: number; reason?: string }
  | { state: 'retrying'; attempt: number; delayMs: number; error: Error }
  | { state: 'failed'; error: Error };

export interface TransportOptions {
  /** How long a call may take, connecting included (default 60,000 ms). */
  requestTimeoutMs?: number;
  reconnect?: ReconnectOptions;
  /** Opens WebSockets (default: the global `WebSocket`; tests pass a fake). */
  webSocket?: WebSocketFactory;
  /** The `fetch` of HTTP calls (default: the global one). */
  fetch?: (url: string, init: { method: string; headers: Record<string, string>; body: string; signal?: AbortSignal }) => Promise<{
    ok: boolean;
    status: number;
    text(): Promise<string>;
  }>;
  /** Told when the WebSocket opens, closes, retries or gives up. */
  onConnection?: (ev: ConnectionEvent) => void;
}

export const DEFAULT_REQUEST_TIMEOUT_MS = 60_000;

/**
 * The wait before reconnection try `attempt` (1, 2, …): `initialDelayMs × 2^(attempt−1)`, at most
 * `maxDelayMs`, times a random factor in [0.5, 1) so that many clients do not retry in step.
 */
export function backoffDelay(attempt: number, opts: ReconnectOptions = {}, random: () => number = Math.random): number {
  const initial = opts.initialDelayMs ?? 100;
  const max = opts.maxDelayMs ?? 5_000;
  const base = Math.min(max, initial * 2 ** Math.max(0, Math.min(attempt - 1, 30)));
  return Math.round(base * (0.5 + 0.5 * random()));
}

function defaultWebSocket(url: string): WebSocketLike {
  const WS = (globalThis as { WebSocket?: new (url: string) => WebSocketLike }).WebSocket;
  if (!WS) throw new CairnConnectionError('no global WebSocket here (Node 22 or a browser has one): pass `webSocket`', { retryable: false });
  return new WS(url);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Reads one JSON-RPC answer: its result, or a `CairnRpcError`. */
function answer(method: string, msg: Record<string, unknown>): unknown {
  if ('error' in msg && msg['error'] !== undefined && msg['error'] !== null) throw CairnRpcError.fromObject(method, msg['error']);
  if (!('result' in msg)) throw new CairnConnectionError(`${method}: the answer holds neither result nor error`, { retryable: false });
  return msg['result'];
}

// ---------------------------------------------------------------------------------------------
// HTTP

/** One-shot calls over HTTP POST. No subscriptions. */
export class HttpTransport implements Transport {
  private nextId = 1;
  private readonly url: string;
  private readonly opts: TransportOptions;

  constructor(url: string, opts: TransportOptions = {}) {
    this.url = url;
    this.opts = opts;
  }

  async request(method: string, params: unknown): Promise<unknown> {
    const f = this.opts.fetch ?? (globalThis as { fetch?: TransportOptions['fetch'] }).fetch;
    if (!f) throw new CairnConnectionError('no global fetch here: pass `fetch`', { retryable: false });
    const body = stringifyJson({ jsonrpc: '2.0', id: this.nextId++, method, params });
    const timeout = this.opts.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    let res: Awaited<ReturnType<NonNullable<TransportOptions['fetch']>>>;
    let text: string;
    try {
      res = await f(this.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
        signal: AbortSignal.timeout(timeout),
      });
      text = await res.text();
    } catch (e) {
      throw new CairnConnectionError(`${method}: cannot reach ${this.url}: ${(e as Error).message}`, { cause: e });
    }
    let msg: unknown;
    try {
      msg = parseJson(text);
    } catch {
      // The node's connection limits answer HTTP 429 with a plain-text body.
      throw new CairnConnectionError(`${method}: HTTP ${res.status}: ${text.slice(0, 200)}`, {
        status: res.status,
        retryable: res.status === 429 || res.status >= 500,
      });
    }
    if (typeof msg !== 'object' || msg === null) throw new CairnConnectionError(`${method}: not a JSON-RPC answer`, { retryable: false });
    return answer(method, msg as Record<string, unknown>);
  }

  close(): void {}
}

// ---------------------------------------------------------------------------------------------
// WebSocket

/** What to subscribe to, and how the node ends it. */
export interface SubscriptionSpec {
  /** The subscribe method (`job_subscribe`). */
  subscribe: string;
  /** Its params, sent again on every resubscription. */
  params: unknown;
  /** The method of its notifications (`job_event`). */
  notification: string;
  /** The unsubscribe method (`job_unsubscribe`, params by position). */
  unsubscribe: string;
}

export interface SubscriptionHandlers {
  /** Each notification's `result`, in the order received. */
  onItem(result: unknown): void;
  /** The subscription cannot go on (refused, or the transport gave up or was closed); no item follows. */
  onError(e: Error): void;
  /** Subscribed: the first time (`resumed` false) and after each reconnection (`resumed` true). */
  onSubscribed?(info: { resumed: boolean; connection: number }): void;
  /** The connection carrying it dropped; the transport reconnects and resubscribes. */
  onDisconnected?(e: Error): void;
}

/** A subscription held by a `WsTransport`. */
export interface TransportSubscription {
  /** Ends it (sends the unsubscribe call unless `quiet`). */
  close(quiet?: boolean): void;
}

interface Pending {
  method: string;
  settle(msg: Record<string, unknown> | null, err?: Error): void;
}

interface SubState {
  spec: SubscriptionSpec;
  handlers: SubscriptionHandlers;
  /** The node's id on the current connection. */
  serverId: string | null;
  rawId: unknown;
  subscribedOnce: boolean;
  ended: boolean;
}

/** Calls and subscriptions over one WebSocket, reconnected with backoff while subscriptions are open. */
export class WsTransport implements Transport {
  private readonly url: string;
  private readonly opts: TransportOptions;
  private socket: WebSocketLike | null = null;
  private opening: Promise<WebSocketLike> | null = null;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly subs = new Set<SubState>();
  private readonly byServerId = new Map<string, SubState>();
  private closedByUser = false;
  /** Connections opened so far. */
  connections = 0;

  constructor(url: string, opts: TransportOptions = {}) {
    this.url = url;
    this.opts = opts;
  }

  /** Whether a connection is open now. */
  get connected(): boolean {
    return this.socket !== null;
  }

  request(method: string, params: unknown): Promise<unknown> {
    const timeoutMs = this.opts.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    return new Promise((resolve, reject) => {
      let done = false;
      let id = 0;
      const timer = setTimeout(() => {
        if (done) return;
        done = true;
        this.pending.delete(id);
        reject(new CairnConnectionError(`${method}: no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      const finish = (f: () => void): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        f();
      };
      const go = (): void => {
        this.connect().then(
          (socket) => {
            if (done) return;
            // Dropped since: nothing was sent yet, so wait for the next connection.
            if (this.socket !== socket) return go();
            id = this.send(socket, method, params, {
              method,
              settle: (msg, err) =>
                finish(() => {
                  if (err || !msg) return reject(err ?? new CairnConnectionError(`${method}: no answer`));
                  try {
                    resolve(answer(method, msg));
                  } catch (e) {
                    reject(e);
                  }
                }),
            });
          },
          (e: unknown) => finish(() => reject(e)),
        );
      };
      go();
    });
  }

  /**
   * Subscribes now and after every reconnection, until `close()`, an error answer, or the
   * transport gives up. Items are delivered as the node sends them: de-duplicating what a
   * resubscription replays is the subscriber's part (see `JobSubscription`).
   */
  subscribe(spec: SubscriptionSpec, handlers: SubscriptionHandlers): TransportSubscription {
    if (this.closedByUser) throw new CairnConnectionError('the client is closed', { retryable: false });
    const sub: SubState = { spec, handlers, serverId: null, rawId: null, subscribedOnce: false, ended: false };
    this.subs.add(sub);
    if (this.socket) this.subscribeOn(this.socket, sub);
    else this.connect().catch(() => {}); // failures reach the subscription through `fail`
    return {
      close: (quiet = false) => {
        if (sub.ended) return;
        this.endSub(sub);
        if (!quiet && sub.serverId !== null && this.socket) {
          const socket = this.socket;
          this.send(socket, spec.unsubscribe, [sub.rawId], { method: spec.unsubscribe, settle: () => {} });
        }
      },
    };
  }

  /** Closes the connection for good: calls in flight fail, subscriptions end with an error. */
  close(): void {
    this.closedByUser = true;
    const e = new CairnConnectionError('the client was closed', { retryable: false });
    for (const sub of [...this.subs]) this.failSub(sub, e);
    this.rejectPending(e);
    const s = this.socket;
    this.socket = null;
    if (s) {
      s.onclose = s.onerror = s.onmessage = s.onopen = null;
      try {
        s.close(1000, 'client closed');
      } catch {
        // already closing
      }
    }
  }

  /** The open socket, or a new one; retries with backoff while subscriptions wait for it. */
  private connect(): Promise<WebSocketLike> {
    if (this.closedByUser) return Promise.reject(new CairnConnectionError('the client is closed', { retryable: false }));
    if (this.socket) return Promise.resolve(this.socket);
    if (!this.opening) {
      this.opening = this.openWithRetries().finally(() => {
        this.opening = null;
      });
    }
    return this.opening;
  }

  private async openWithRetries(): Promise<WebSocketLike> {
    const maxAttempts = this.opts.reconnect?.maxAttempts ?? Number.POSITIVE_INFINITY;
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.openOnce();
      } catch (e) {
        const err = e instanceof Error ? e : new Error(String(e));
        if (this.closedByUser) throw err;
        // Calls alone do not keep retrying: they fail now (their caller may retry); open
        // subscriptions keep the transport trying.
        if (this.subs.size === 0 || attempt >= maxAttempts) {
          this.opts.onConnection?.({ state: 'failed', error: err });
          const wrapped = err instanceof CairnConnectionError ? err : new CairnConnectionError(err.message, { cause: err });
          for (const sub of [...this.subs]) this.failSub(sub, wrapped);
          throw wrapped;
        }
        const delayMs = backoffDelay(attempt, this.opts.reconnect);
        this.opts.onConnection?.({ state: 'retrying', attempt, delayMs, error: err });
        await sleep(delayMs);
        if (this.closedByUser) throw new CairnConnectionError('the client was closed', { retryable: false });
      }
    }
  }

  private openOnce(): Promise<WebSocketLike> {
    return new Promise((resolve, reject) => {
      let socket: WebSocketLike;
      try {
        socket = (this.opts.webSocket ?? defaultWebSocket)(this.url);
      } catch (e) {
        reject(e instanceof CairnConnectionError ? e : new CairnConnectionError(`cannot open ${this.url}: ${(e as Error).message}`, { cause: e }));
        return;
      }
      let opened = false;
      socket.onopen = () => {
        opened = true;
        this.socket = socket;
        const connection = ++this.connections;
        socket.onmessage = (ev) => this.onMessage(socket, ev.data);
        socket.onclose = (ev) => this.onDrop(socket, ev.code, ev.reason);
        socket.onerror = () => {
          // A close event follows an error; `onDrop` handles both.
        };
        this.opts.onConnection?.({ state: 'open', connection });
        for (const sub of this.subs) this.subscribeOn(socket, sub);
        resolve(socket);
      };
      const failed = (why: string): void => {
        if (opened) return;
        opened = true;
        socket.onopen = socket.onclose = socket.onerror = null;
        reject(new CairnConnectionError(`cannot connect to ${this.url}: ${why}`));
      };
      socket.onerror = (ev) => failed((ev as { message?: string })?.message ?? 'connection error');
      socket.onclose = (ev) => failed(`closed (${ev.code ?? '?'}${ev.reason ? ` ${ev.reason}` : ''})`);
    });
  }

  private onDrop(socket: WebSocketLike, code?: number, reason?: string): void {
    if (this.socket !== socket) return;
    this.socket = null;
    this.byServerId.clear();
    const e = new CairnConnectionError(`the connection to ${this.url} closed (${code ?? '?'}${reason ? ` ${reason}` : ''})`);
    this.opts.onConnection?.({ state: 'closed', connection: this.connections, code, reason });
    this.rejectPending(e);
    for (const sub of this.subs) {
      sub.serverId = null;
      sub.handlers.onDisconnected?.(e);
    }
    if (this.subs.size > 0 && !this.closedByUser) {
      // Reconnects (with backoff) and resubscribes; gives up only after `maxAttempts`.
      this.connect().catch(() => {});
    }
  }

  /** Fails every call waiting for an answer, each with an error naming its method. */
  private rejectPending(e: CairnConnectionError): void {
    const all = [...this.pending.values()];
    this.pending.clear();
    for (const p of all) p.settle(null, new CairnConnectionError(`${p.method}: ${e.message}`, { retryable: e.retryable, cause: e }));
  }

  private send(socket: WebSocketLike, method: string, params: unknown, p: Pending): number {
    const id = this.nextId++;
    if (socket.readyState !== 1) {
      // Closing: a WebSocket drops what is sent now without a word.
      p.settle(null, new CairnConnectionError(`${method}: the connection to ${this.url} is closing`));
      return id;
    }
    this.pending.set(id, p);
    try {
      socket.send(stringifyJson({ jsonrpc: '2.0', id, method, params }));
    } catch (e) {
      this.pending.delete(id);
      p.settle(null, new CairnConnectionError(`${method}: cannot send: ${(e as Error).message}`, { cause: e }));
    }
    return id;
  }

  private subscribeOn(socket: WebSocketLike, sub: SubState): void {
    if (sub.ended) return;
    const { spec } = sub;
    this.send(socket, spec.subscribe, spec.params, {
      method: spec.subscribe,
      // Runs synchronously as the answer is read, before any later message of the socket: the
      // node's first notifications follow its answer at once.
      settle: (msg, err) => {
        if (sub.ended || this.socket !== socket) return;
        if (err || !msg) return; // the connection dropped: resubscribed on the next one
        let id: unknown;
        try {
          id = answer(spec.subscribe, msg);
        } catch (e) {
          const rpc = e as CairnRpcError;
          if (rpc instanceof CairnRpcError && rpc.code === -33008) {
            // Over the rate or busy: subscribe again after the node's hint.
            setTimeout(() => this.socket === socket && this.subscribeOn(socket, sub), rpc.retryAfterMs ?? 1_000);
            return;
          }
          this.failSub(sub, e as Error);
          return;
        }
        sub.rawId = id;
        sub.serverId = String(id);
        this.byServerId.set(sub.serverId, sub);
        const resumed = sub.subscribedOnce;
        sub.subscribedOnce = true;
        sub.handlers.onSubscribed?.({ resumed, connection: this.connections });
      },
    });
  }

  private endSub(sub: SubState): void {
    sub.ended = true;
    this.subs.delete(sub);
    if (sub.serverId !== null) this.byServerId.delete(sub.serverId);
  }

  private failSub(sub: SubState, e: Error): void {
    if (sub.ended) return;
    this.endSub(sub);
    sub.handlers.onError(e);
  }

  private onMessage(socket: WebSocketLike, data: unknown): void {
    if (this.socket !== socket) return;
    let msg: unknown;
    try {
      msg = parseJson(typeof data === 'string' ? data : new TextDecoder().decode(data as Uint8Array));
    } catch {
      return; // not JSON: nothing a client can answer
    }
    for (const m of Array.isArray(msg) ? msg : [msg]) {
      if (typeof m !== 'object' || m === null) continue;
      const o = m as Record<string, unknown>;
      if (typeof o['method'] === 'string') {
        this.onNotification(o['method'], o['params']);
        continue;
      }
      const id = typeof o['id'] === 'number' ? o['id'] : Number(o['id']);
      const p = this.pending.get(id);
      if (!p) continue;
      this.pending.delete(id);
      p.settle(o);
    }
  }

  private onNotification(method: string, params: unknown): void {
    if (typeof params !== 'object' || params === null) return;
    const p = params as Record<string, unknown>;
    const sub = this.byServerId.get(String(p['subscription']));
    if (!sub || sub.spec.notification !== method) return;
    if ('error' in p && p['error'] !== undefined) {
      this.failSub(sub, CairnRpcError.fromObject(sub.spec.subscribe, p['error']));
      return;
    }
    sub.handlers.onItem(p['result']);
  }
}
