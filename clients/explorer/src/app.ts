// What every page shares: the node's client, the genesis (fetched once), a cache of finalized
// blocks (they never change, so a block is fetched once however many pages show it) and the
// live head.

import {
  type Block,
  CairnClient,
  type ConnectionEvent,
  type Genesis,
  type HeadInfo,
  type HeadSubscription,
  type NodeInfo,
  chainId,
  toHex,
} from '../../ts/src/index.ts';

/** Finalized blocks kept in memory; older ones are fetched again when shown again. */
export const BLOCK_CACHE_MAX = 512;

/** The node's RPC over WebSocket: `?rpc=ws://host:port` overrides it (the explorer's own node by default). */
export function rpcUrl(loc: Location): string {
  const given = new URLSearchParams(loc.search).get('rpc');
  if (given) return given;
  return `${loc.protocol === 'https:' ? 'wss' : 'ws'}://${loc.host}/`;
}

export class App {
  readonly client: CairnClient;
  head: HeadInfo | null = null;
  connection: ConnectionEvent['state'] = 'retrying';
  private genesisP: Promise<{ genesis: Genesis; chainId: string }> | null = null;
  private infoP: Promise<NodeInfo> | null = null;
  private readonly blocks = new Map<bigint, Promise<Block>>();
  private readonly headListeners = new Set<(head: HeadInfo) => void>();
  private readonly connListeners = new Set<() => void>();
  private heads: HeadSubscription | null = null;

  constructor(url: string) {
    this.client = new CairnClient(url, {
      onConnection: (ev) => {
        this.connection = ev.state;
        for (const f of this.connListeners) f();
      },
    });
  }

  /** Starts the live head (`chain_subscribeHeads`); falls back to polling `chain_head` on a node without it. */
  startHeads(onError: (e: Error) => void): void {
    this.heads = this.client.subscribeHeads({
      onHead: (head) => this.setHead(head),
      onError: (e) => {
        onError(e);
        this.pollHeads();
      },
    });
  }

  private pollHeads(): void {
    const tick = (): void => {
      this.client.chainHead().then(
        (head) => this.setHead(head),
        () => {},
      );
    };
    tick();
    setInterval(tick, HEAD_POLL_MS);
  }

  private setHead(head: HeadInfo): void {
    if (this.head !== null && head.height <= this.head.height) return;
    this.head = head;
    for (const f of this.headListeners) f(head);
  }

  /** Calls `f` with each new head until the returned function is called. */
  onHead(f: (head: HeadInfo) => void): () => void {
    this.headListeners.add(f);
    return () => this.headListeners.delete(f);
  }

  onConnection(f: () => void): () => void {
    this.connListeners.add(f);
    return () => this.connListeners.delete(f);
  }

  /** The head now: the live one, else asked. */
  async currentHead(): Promise<HeadInfo> {
    if (this.head) return this.head;
    const head = await this.client.chainHead();
    this.setHead(head);
    return this.head ?? head;
  }

  /** The genesis the node serves (`chain_genesis`), and its chain id. */
  genesis(): Promise<{ genesis: Genesis; chainId: string }> {
    this.genesisP ??= this.client.chainGenesis().then((genesis) => ({ genesis, chainId: toHex(chainId(genesis)) }));
    this.genesisP.catch(() => (this.genesisP = null));
    return this.genesisP;
  }

  nodeInfo(): Promise<NodeInfo> {
    this.infoP ??= this.client.nodeInfo();
    this.infoP.catch(() => (this.infoP = null));
    return this.infoP;
  }

  /** A finalized block, cached. */
  block(height: bigint): Promise<Block> {
    let p = this.blocks.get(height);
    if (!p) {
      p = this.client.chainGetBlock(height);
      p.catch(() => this.blocks.delete(height));
      this.blocks.set(height, p);
      if (this.blocks.size > BLOCK_CACHE_MAX) {
        const oldest = [...this.blocks.keys()].sort((a, b) => (a < b ? -1 : 1))[0]!;
        this.blocks.delete(oldest);
      }
    }
    return p;
  }

  close(): void {
    this.heads?.close();
    this.client.close();
  }
}

/** How often the head is asked when the node has no heads subscription. */
export const HEAD_POLL_MS = 1000;
