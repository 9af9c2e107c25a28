// A live peer of a Cairn testnet, written against docs/ alone: joins the gossip of real node
// processes over libp2p (TCP, Noise, Yamux, identify, ping, gossipsub as docs/WIRE.md sets
// them), subscribes to every topic of the chain, decodes and verifies messages on each with this
// package's decoders, then reads the node's JSON-RPC: one finalized block (its commit checked
// against the genesis, its header hash, its body), state proofs of an account and of an absent
// key against that block's state root, and the receipt proof of a result it saw gossiped.
//
//   node test/live-peer.ts --genesis <genesis.json> --rpc <url> --p2p <multiaddr> [--p2p …]
//                          [--timeout <seconds>] [--topics txs,results,…]
//
// Prints JSON lines on stdout: `{"event":"ready",…}` once subscribed and connected (traffic
// can start), then `{"event":"summary",…}`. Exits 0 only if every topic carried at least one
// message, every message decoded and verified, and every RPC check passed.

import { readFileSync } from 'node:fs';

import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import { type GossipSub, type Message, TopicValidatorResult, gossipsub } from '@libp2p/gossipsub';
import { identify } from '@libp2p/identify';
import type { PeerId } from '@libp2p/interface';
import { ping } from '@libp2p/ping';
import { tcp } from '@libp2p/tcp';
import { multiaddr } from '@multiformats/multiaddr';
import { createLibp2p } from 'libp2p';

import {
  Account,
  Block,
  BlockHeader,
  BlockMsg,
  ConsensusData,
  Genesis,
  type JobResult,
  ModuleAnnounce,
  ProposedBlock,
  ReceiptProof,
  ResultBatch,
  StateProof,
  TOPIC_NAMES,
  type TopicName,
  TxBatch,
  accountKey,
  blockHash,
  bytesEqual,
  chainId,
  decode,
  encode,
  messageId,
  parseJson,
  receiptOf,
  splitConsensusData,
  stringifyJson,
  toHex,
  topicName,
  topics,
  H,
  verifyBlockMsg,
  verifyConsensusMessage,
  verifyFinalizedBlock,
  verifyModuleAnnounce,
  verifyProposedBlock,
  verifyReceiptProof,
  verifyResultBatch,
  verifyStateProof,
  verifyTxBatch,
  checkBlockWellFormed,
} from '../src/index.ts';

// ---------------------------------------------------------------------------------------------
// Arguments

function parseArgs(argv: string[]): { genesis: string; rpc: string; p2p: string[]; timeoutS: number; topics: TopicName[] } {
  const out = { genesis: '', rpc: '', p2p: [] as string[], timeoutS: 45, topics: [...TOPIC_NAMES] as TopicName[] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = argv[i + 1];
    if (v === undefined) throw new Error(`${a} needs a value`);
    i++;
    if (a === '--genesis') out.genesis = v;
    else if (a === '--rpc') out.rpc = v;
    else if (a === '--p2p') out.p2p.push(v);
    else if (a === '--timeout') out.timeoutS = Number(v);
    else if (a === '--topics') out.topics = v.split(',') as TopicName[];
    else throw new Error(`unknown argument ${a}`);
  }
  if (!out.genesis || !out.rpc || out.p2p.length === 0) {
    throw new Error('usage: live-peer.ts --genesis <genesis.json> --rpc <url> --p2p <multiaddr> [--p2p …] [--timeout s]');
  }
  return out;
}

const args = parseArgs(process.argv.slice(2));
const started = Date.now();
const elapsed = (): number => (Date.now() - started) / 1000;
const log = (...m: unknown[]): void => console.error(`[live-peer ${elapsed().toFixed(1)}s]`, ...m);
const emit = (o: object): void => console.log(stringifyJson(o));

const genesis = Genesis.fromJson(parseJson(readFileSync(args.genesis, 'utf8')));
const chain = chainId(genesis);
const topicOf = topics(chain);

// ---------------------------------------------------------------------------------------------
// What was seen on each topic

interface TopicReport {
  topic: string;
  messages: number;
  verified: number;
  failed: number;
  errors: string[];
  /** A short account of what verified: kinds, heights, ids. */
  seen: string[];
}

const reports = Object.fromEntries(
  args.topics.map((n) => [n, { topic: topicOf[n], messages: 0, verified: 0, failed: 0, errors: [], seen: [] } as TopicReport]),
) as Record<TopicName, TopicReport>;

/** Gossiped blocks by height (hex of their hash), to compare with what RPC serves. */
const gossipedBlocks = new Map<bigint, string>();
/** Results seen gossiped, by job id (hex). */
const gossipedResults = new Map<string, JobResult>();
/** Verified proposals' (height, block hash), and proposed blocks' — a proposal vouches for a block. */
const proposalsSeen = new Set<string>();
const proposedBlocksSeen = new Set<string>();

function note(r: TopicReport, what: string): void {
  if (r.seen.length < 8 && !r.seen.includes(what)) r.seen.push(what);
}

/** Decodes and verifies one gossip message; throws what failed. */
function handle(name: TopicName, data: Uint8Array, r: TopicReport): void {
  switch (name) {
    case 'txs': {
      const b = decode(TxBatch, data);
      verifyTxBatch(b, genesis);
      for (const t of b.txs) note(r, t.kind);
      return;
    }
    case 'results': {
      const b = decode(ResultBatch, data);
      verifyResultBatch(b, genesis);
      for (const res of b.results) {
        gossipedResults.set(toHex(res.claim.job_id), res);
        note(r, `result ${res.claim.status} fuel ${res.claim.fuel_used}`);
      }
      return;
    }
    case 'blocks': {
      const m = decode(BlockMsg, data);
      verifyBlockMsg(m, genesis);
      gossipedBlocks.set(m.block.header.height, toHex(blockHash(m.block.header)));
      note(r, `height ${m.block.header.height} txs ${m.block.txs.length} signers ${m.commit.signatures.length}`);
      return;
    }
    case 'modules': {
      if (data.length > 64) throw new Error(`ModuleAnnounce of ${data.length} bytes`);
      const m = decode(ModuleAnnounce, data);
      verifyModuleAnnounce(m);
      note(r, `module ${toHex(m.module_id).slice(0, 16)}`);
      return;
    }
    case 'consensus': {
      const { message } = splitConsensusData(data);
      if (message.length > 65537) throw new Error(`consensus message of ${message.length} bytes`);
      const m = decode(ConsensusData, message);
      verifyConsensusMessage(m, genesis, chain);
      if (m.kind === 'vote') note(r, `${m.vote.kind}${m.vote.block_hash ? '' : ' nil'}`);
      else if (m.kind === 'proposal') {
        proposalsSeen.add(`${m.proposal.height}:${toHex(m.proposal.block_hash)}`);
        note(r, 'proposal');
      } else note(r, m.kind);
      return;
    }
    case 'proposals': {
      const m = decode(ProposedBlock, data);
      verifyProposedBlock(m, genesis);
      proposedBlocksSeen.add(`${m.block.header.height}:${toHex(blockHash(m.block.header))}`);
      note(r, `proposed height ${m.block.header.height} txs ${m.block.txs.length}`);
      return;
    }
  }
}

/** Checks the gossipsub envelope as docs/WIRE.md says a node does, then the payload. */
function validate(msg: Message): TopicValidatorResult {
  const name = topicName(chain, msg.topic);
  const r = name ? reports[name] : undefined;
  if (!name || !r) return TopicValidatorResult.Ignore;
  r.messages++;
  try {
    // StrictNoSign already drops a message with an author, a sequence number or a signature.
    if (msg.type !== 'unsigned') throw new Error('a signed gossip message');
    handle(name, msg.data, r);
    r.verified++;
    return TopicValidatorResult.Accept;
  } catch (e) {
    r.failed++;
    if (r.errors.length < 5) r.errors.push(String((e as Error).message ?? e));
    log(`${name}: ${(e as Error).message}`);
    return TopicValidatorResult.Reject;
  }
}

// ---------------------------------------------------------------------------------------------
// libp2p

const node = await createLibp2p({
  addresses: { listen: [] },
  transports: [tcp()],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  connectionGater: { denyDialMultiaddr: () => false },
  services: {
    identify: identify(),
    ping: ping(),
    pubsub: gossipsub({
      // docs/WIRE.md, Gossipsub: unsigned messages, Cairn's message ids.
      globalSignaturePolicy: 'StrictNoSign',
      msgIdFn: (msg: Message) => messageId({ topic: msg.topic, data: msg.data }),
      fallbackToFloodsub: false,
      floodPublish: true,
      doPX: false,
      D: 3,
      Dlo: 1,
      Dhi: 6,
      Dout: 1,
      Dlazy: 6,
      heartbeatInterval: 700,
      seenTTL: 60_000,
      mcacheLength: 5,
      mcacheGossip: 3,
      pruneBackoff: 60_000,
      maxInboundDataLength: 10 * 1024 * 1024,
      emitSelf: false,
    }),
  },
});
const pubsub = node.services.pubsub as GossipSub;

for (const name of args.topics) {
  pubsub.topicValidators.set(topicOf[name], (_peer: PeerId, msg: Message) => validate(msg));
  pubsub.subscribe(topicOf[name]);
}

const deadline = started + args.timeoutS * 1000;
const sleep = (ms: number): Promise<void> => new Promise((res) => setTimeout(res, ms));

const peers: string[] = [];
for (const a of args.p2p) {
  const conn = await node.dial(multiaddr(a), { signal: AbortSignal.timeout(10_000) });
  peers.push(conn.remotePeer.toString());
  log(`connected to ${conn.remotePeer.toString()} at ${a}`);
}

// Ready once every peer told us its subscriptions (each subscribes at least to `blocks`), and
// a heartbeat later, so that they have ours too: a node sends what it publishes to the peers it
// knows subscribe (flood publish), and announces a module only once.
while (Date.now() < deadline) {
  const subscribed = new Set(pubsub.getSubscribers(topicOf.blocks).map((p) => p.toString()));
  if (peers.every((p) => subscribed.has(p))) break;
  await sleep(50);
}
await sleep(700);
emit({ event: 'ready', peer_id: node.peerId.toString(), chain_id: toHex(chain), topics: args.topics.map((n) => topicOf[n]), peers });

const allSeen = (): boolean => args.topics.every((n) => reports[n].verified > 0);
while (!allSeen() && Date.now() < deadline) await sleep(100);
log(allSeen() ? 'a verified message on every topic' : 'timed out waiting for messages');

// ---------------------------------------------------------------------------------------------
// JSON-RPC

const rpcUrl = args.rpc.replace(/^ws(s?):\/\//, 'http$1://');
let rpcId = 0;
async function rpc(method: string, params: unknown[] | Record<string, unknown>): Promise<unknown> {
  const res = await fetch(rpcUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: stringifyJson({ jsonrpc: '2.0', id: ++rpcId, method, params }),
    signal: AbortSignal.timeout(10_000),
  });
  const body = parseJson(await res.text()) as { result?: unknown; error?: { code: number; message: string; data?: unknown } };
  if (body.error) {
    const data = body.error.data === undefined ? '' : ` ${stringifyJson(body.error.data)}`;
    throw new Error(`${method}: ${body.error.code} ${body.error.message}${data}`);
  }
  return body.result;
}

interface Check {
  name: string;
  ok: boolean;
  detail: string;
}
const checks: Check[] = [];
async function checkStep(name: string, f: () => Promise<string>): Promise<void> {
  try {
    checks.push({ name, ok: true, detail: await f() });
  } catch (e) {
    checks.push({ name, ok: false, detail: String((e as Error).message ?? e) });
    log(`${name}: ${(e as Error).message}`);
  }
}

function must(cond: boolean, what: string): asserts cond {
  if (!cond) throw new Error(what);
}

await checkStep('node_info chain id', async () => {
  const info = (await rpc('node_info', [])) as { chain_id: string };
  must(info.chain_id === toHex(chain), `node's chain id ${info.chain_id} ≠ H(borsh(genesis)) ${toHex(chain)}`);
  return info.chain_id;
});

// A finalized block h whose commit is the `last_commit` of block h + 1.
let block: Block | null = null;
await checkStep('chain_getBlock: a finalized block, its commit against the genesis', async () => {
  let head = 0n;
  while (Date.now() < deadline + 5_000) {
    head = BigInt(((await rpc('chain_head', [])) as { height: number }).height);
    if (head >= 2n) break;
    await sleep(100);
  }
  must(head >= 2n, `head ${head}: no block with a successor`);
  const h = head - 1n;
  const b = Block.fromJson(await rpc('chain_getBlock', [Number(h)]));
  const next = Block.fromJson(await rpc('chain_getBlock', [Number(h + 1n)]));
  must(b.header.height === h && next.header.height === h + 1n, 'heights asked for');
  must(next.last_commit !== null, `block ${h + 1n} has no last_commit`);
  verifyFinalizedBlock(b, next.last_commit, genesis);
  checkBlockWellFormed(next);
  must(bytesEqual(next.header.parent_hash, blockHash(b.header)), `block ${h + 1n}'s parent_hash is not H(header ${h})`);
  block = b;
  return `height ${h} hash ${toHex(blockHash(b.header))} txs ${b.txs.length} signers ${next.last_commit.signatures.length}`;
});

await checkStep('gossiped blocks are the blocks RPC serves', async () => {
  must(!args.topics.includes('blocks') || gossipedBlocks.size > 0, 'no block gossiped');
  for (const [h, hash] of gossipedBlocks) {
    const b = Block.fromJson(await rpc('chain_getBlock', [Number(h)]));
    must(toHex(blockHash(b.header)) === hash, `height ${h}: gossiped ${hash}, RPC ${toHex(blockHash(b.header))}`);
  }
  return `${gossipedBlocks.size} blocks`;
});

await checkStep('proposed blocks are vouched for by verified proposals', async () => {
  if (!args.topics.includes('proposals')) return 'not subscribed';
  const vouched = [...proposedBlocksSeen].filter((k) => proposalsSeen.has(k));
  must(vouched.length > 0 || proposedBlocksSeen.size === 0, 'no proposed block named by a proposal seen');
  return `${vouched.length} of ${proposedBlocksSeen.size}`;
});

async function stateProof(key: Uint8Array, at: Block): Promise<{ value: Uint8Array | null }> {
  const p = StateProof.fromJson(await rpc('state_getProof', [toHex(key), Number(at.header.height)]));
  const v = verifyStateProof(p, genesis);
  must(bytesEqual(encode(BlockHeader, p.header), encode(BlockHeader, at.header)), "the proof's header is not the block's");
  must(bytesEqual(v.stateRoot, at.header.state_root), "not the block's state root");
  return v;
}

await checkStep('state_getProof: an account, against the block’s state root', async () => {
  must(block !== null, 'no block');
  const address = genesis.accounts[0]?.address;
  must(address !== undefined, 'no account in genesis');
  const v = await stateProof(accountKey(address), block);
  must(v.value !== null, 'the account is absent');
  const a = decode(Account, v.value);
  return `account ${toHex(address).slice(0, 16)}… balance ${a.balance} nonce ${a.nonce} at height ${block.header.height}`;
});

await checkStep('state_getProof: an absent key, against the block’s state root', async () => {
  must(block !== null, 'no block');
  const key = accountKey(H(new TextEncoder().encode('nobody')));
  const v = await stateProof(key, block);
  must(v.value === null, 'the key is present');
  return `key ${toHex(key).slice(0, 18)}… absent at height ${block.header.height}`;
});

await checkStep('job_proof: the receipt of a gossiped result', async () => {
  if (!args.topics.includes('results')) return 'not subscribed';
  const [id, result] = [...gossipedResults][0] ?? [];
  must(id !== undefined && result !== undefined, 'no result gossiped');
  let last = '';
  while (Date.now() < deadline + 10_000) {
    try {
      // By name: positional `[job_id]` without the optional `provider` is refused (-32602
      // "No more params") by the node's server, though RPC.md and openrpc.json mark it optional.
      const p = ReceiptProof.fromJson(await rpc('job_proof', { job_id: id }));
      const v = verifyReceiptProof(p, genesis);
      must(bytesEqual(encode(ReceiptProof.fields.receipt, p.receipt), encode(ReceiptProof.fields.receipt, receiptOf(result))), 'the receipt is not the gossiped result');
      return `job ${id.slice(0, 16)}… at height ${v.height}`;
    } catch (e) {
      last = (e as Error).message;
      if (!/-3300[17]/.test(last)) throw e; // not found / not finalized yet: wait
      await sleep(200);
    }
  }
  throw new Error(`no final receipt: ${last}`);
});

// ---------------------------------------------------------------------------------------------
// Summary

const topicsOk = args.topics.every((n) => reports[n].verified > 0 && reports[n].failed === 0);
const ok = topicsOk && checks.every((c) => c.ok);
emit({
  event: 'summary',
  ok,
  chain_id: toHex(chain),
  peer_id: node.peerId.toString(),
  elapsed_s: Number(elapsed().toFixed(2)),
  topics: reports,
  rpc: checks,
});
await Promise.race([node.stop(), sleep(2000)]);
process.exit(ok ? 0 : 1);
