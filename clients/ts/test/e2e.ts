// The client end to end against a real testnet (run by cli/tests/it/ts_client.rs):
//
//   node test/e2e.ts --rpc ws://127.0.0.1:<port> --genesis <testnet>/genesis.json \
//                    --key <testnet>/client-key.json --module examples/jobs/wasm/uppercase.wasm
//
// 1. every read method against the node (`rpc.discover` must list exactly the client's methods);
// 2. `estimate`, then `runJob` with the module's bytes (the node lacks them: uploaded on
//    -33009), the output returned only once its receipt proof verified against the genesis;
//    then a job whose input and output (300 KiB each) travel as blobs;
// 3. the job challenged (an account transaction of kind `challenge`) inside its window;
// 4. tampered copies of the proof refused offline, and `runJob` refusing a node that serves one;
// 5. a job run through a TCP proxy whose connections are cut right after `accepted` and refused
//    until the job is final: the client reconnects with backoff, resubscribes, and delivers every
//    stage once, in order (compared with a fresh subscription's replay);
// 6. a transfer, then `register_provider`, `update_price` and `unbond`, each checked through a
//    state proof verified against the genesis.
//
// Prints one JSON summary line on stdout (`"ok": true` when everything held) and exits 0 only
// then; progress goes to stderr.

import { readFileSync } from 'node:fs';
import { type Server, type Socket, connect as tcpConnect, createServer } from 'node:net';

import {
  Account,
  CairnClient,
  CairnRpcError,
  type ConnectionEvent,
  Genesis,
  H,
  type JobEvent,
  type JobRun,
  Provider,
  RPC_METHODS,
  ReceiptProof,
  VerifyError,
  accountKey,
  actions,
  blockHash,
  bytesEqual,
  chainId,
  decode,
  estimate,
  generateKey,
  parseJson,
  providerKey,
  runJob,
  stringifyJson,
  toHex,
  verifyReceiptProof,
  verifyStateProof,
} from '../src/index.ts';
import { loadKeyFile } from '../src/node.ts';
import { submitTx } from '../src/run.ts';

// ---------------------------------------------------------------------------------------------
// Arguments and output

function parseArgs(argv: string[]): { rpc: string; genesis: string; key: string; module: string; timeoutS: number } {
  const out = { rpc: '', genesis: '', key: '', module: '', timeoutS: 120 };
  for (let i = 0; i < argv.length; i += 2) {
    const [a, v] = [argv[i], argv[i + 1]];
    if (v === undefined) throw new Error(`${a} needs a value`);
    if (a === '--rpc') out.rpc = v;
    else if (a === '--genesis') out.genesis = v;
    else if (a === '--key') out.key = v;
    else if (a === '--module') out.module = v;
    else if (a === '--timeout') out.timeoutS = Number(v);
    else throw new Error(`unknown argument ${a}`);
  }
  if (!out.rpc || !out.genesis || !out.key || !out.module) {
    throw new Error('usage: e2e.ts --rpc <ws url> --genesis <genesis.json> --key <client-key.json> --module <uppercase.wasm>');
  }
  return out;
}

const args = parseArgs(process.argv.slice(2));
const started = Date.now();
const log = (...m: unknown[]): void => console.error(`[ts-e2e ${((Date.now() - started) / 1000).toFixed(1)}s]`, ...m);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const text = (b: Uint8Array): string => new TextDecoder().decode(b);

function must(cond: unknown, what: string): asserts cond {
  if (!cond) throw new Error(what);
}

const summary: Record<string, unknown> = { ok: false };
const done = (ok: boolean, error?: unknown): never => {
  summary['ok'] = ok;
  if (error !== undefined) summary['error'] = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  summary['seconds'] = (Date.now() - started) / 1000;
  console.log(stringifyJson(summary));
  process.exit(ok ? 0 : 1);
};
setTimeout(() => done(false, `not done within ${args.timeoutS} s`), args.timeoutS * 1000).unref();

// ---------------------------------------------------------------------------------------------
// A TCP proxy whose connections can be cut, and new ones refused

class CutProxy {
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  refuse = false;
  accepted = 0;
  refused = 0;

  constructor(target: { host: string; port: number }) {
    this.server = createServer((client) => {
      if (this.refuse) {
        this.refused++;
        client.destroy();
        return;
      }
      this.accepted++;
      const upstream = tcpConnect(target.port, target.host);
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => {});
      }
      client.pipe(upstream);
      upstream.pipe(client);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
  }

  listen(): Promise<number> {
    return new Promise((resolve) => this.server.listen(0, '127.0.0.1', () => resolve((this.server.address() as { port: number }).port)));
  }

  /** Cuts every connection (both sides see it closed, as a network failure). */
  cut(): void {
    for (const s of this.sockets) s.destroy();
  }

  close(): void {
    this.cut();
    this.server.close();
  }
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const genesis = Genesis.fromJson(parseJson(readFileSync(args.genesis, 'utf8')));
  const chain = chainId(genesis);
  const key = await loadKeyFile(args.key);
  const wasm = new Uint8Array(readFileSync(args.module));
  const client = new CairnClient(args.rpc);
  summary['chain_id'] = toHex(chain);
  summary['client'] = key.address;

  // 1. Reads: every method the node serves is one the client has, and each answers.
  const discovered = (await client.rpcDiscover()) as { methods: { name: string }[] };
  const served = discovered.methods.map((m) => m.name).sort();
  must(stringifyJson(served) === stringifyJson(Object.keys(RPC_METHODS).sort()), `the node serves ${served.join(', ')}; the client has ${Object.keys(RPC_METHODS).sort().join(', ')}`);
  const info = await client.nodeInfo();
  must(bytesEqual(info.chain_id, chain), 'node_info: another chain');
  const head = await client.chainHead();
  const health = await client.systemHealth();
  const providers = await client.providerList();
  must(providers.some((p) => p.eligible), 'provider_list: an eligible provider');
  const evidence = await client.consensusEvidence();
  must(evidence.length === 0, 'consensus_evidence: none on an honest testnet');
  const account = await client.accountGet(key.publicKey);
  await client.jobGet('00'.repeat(32)).then(
    () => must(false, 'job_get of an unknown job answered'),
    (e: unknown) => must(e instanceof CairnRpcError && e.code === -33001 && e.reason === 'not_found' && e.hint.length > 0, `job_get: ${String(e)}`),
  );
  summary['reads'] = { methods: served.length, height: head.height, health: health.status, providers: providers.length, balance: account.balance };
  log('reads ok', served.length, 'methods');

  // 2. Estimate (uploads the module: the node does not have it yet), then a verified run.
  const input = 'hello from the ts client';
  const est = await estimate(client, { module: wasm, input, key });
  must(est.status === 'ok' && est.admissible && est.output_size_bytes === BigInt(input.length), `estimate: ${stringifyJson(est)}`);
  const stages1: string[] = [];
  const run1 = await runJob(client, { module: wasm, input, key }, { genesis, onEvent: (e) => stages1.push(e.stage) });
  must(text(run1.output) === input.toUpperCase(), `output ${text(run1.output)}`);
  must(bytesEqual(run1.proof.receipt.claim.output_hash, run1.result.output_hash), 'receipt output hash');
  // The block that finalized it, and the client's account proven at that height.
  const block = await client.chainGetBlock(run1.receipt.height);
  must(bytesEqual(blockHash(block.header), run1.receipt.blockHash), 'chain_getBlock: the block of the receipt');
  const acctProof = verifyStateProof(await client.stateGetProof(accountKey(key.publicKey), run1.receipt.height), genesis);
  must(acctProof.value !== null && acctProof.height === run1.receipt.height, 'state_getProof: the client account');
  must(decode(Account, acctProof.value).nonce <= (await client.accountGet(key.publicKey)).nonce, 'the proven nonce');
  summary['job'] = {
    job_id: run1.jobId,
    output: text(run1.output),
    stages: stages1,
    height: run1.receipt.height,
    fuel_used: run1.result.fuel_used,
    estimate_fuel: est.fuel_used,
    estimate_cost: est.cost,
  };
  log('job ok', run1.jobId, text(run1.output));

  // 2b. A job through blobs: 300 KiB of input, more than an offer carries inline, goes to the
  // node with blob_put; its output, more than a result carries inline, comes back from a blob.
  const big = 'cairn blobs '.repeat(25_600);
  const runBlob = await runJob(client, { module: { id: toHex(run1.proof.receipt.claim.module_id) }, input: big, key }, { genesis });
  must(runBlob.result.output_in_blob && runBlob.result.output.length === 0, 'the output came back in a blob');
  must(text(runBlob.output) === big.toUpperCase(), 'the blob output is the input in uppercase');
  must(bytesEqual(runBlob.proof.receipt.claim.input_hash, H(new TextEncoder().encode(big))), 'the receipt binds the input blob');
  must(bytesEqual(runBlob.proof.receipt.claim.output_hash, H(runBlob.output)), 'the receipt binds the output blob');
  summary['blob_job'] = {
    job_id: runBlob.jobId,
    input_bytes: big.length,
    output_bytes: runBlob.output.length,
    output_in_blob: runBlob.result.output_in_blob,
    output_hash: toHex(runBlob.result.output_hash),
  };
  log('blob job ok', runBlob.jobId);

  // 3. A challenge of that job, at once (its window is challenge_window_blocks from inclusion).
  let challenge: Record<string, unknown>;
  try {
    const t = await submitTx(client, key, actions.challenge(run1.receipt.jobId, genesis.params.challenge_bond_min), { timeoutMs: 30_000 });
    challenge = { included: true, hash: t.hash };
  } catch (e) {
    // The window may have closed on a slow machine: still a rule the node checked after the
    // signature verified, not a bad signature.
    must(e instanceof CairnRpcError && ['challenge_window_closed', 'not_challengeable'].includes(e.reason), `challenge: ${String(e)}`);
    challenge = { included: false, reason: e.reason };
  }
  summary['challenge'] = challenge;
  log('challenge', challenge);

  // 4. Tampered proofs are refused.
  const tamperings: [string, (p: ReceiptProof) => void][] = [
    ['receipt output_hash', (p) => void (p.receipt.claim.output_hash[0]! ^= 1)],
    ['receipt fuel_used', (p) => void (p.receipt.claim.fuel_used += 1n)],
    ['commit signature', (p) => void (p.commit.signatures[0]!.signature[7]! ^= 1)],
    ['commit without signatures', (p) => void (p.commit.signatures = [])],
    ['header state_root', (p) => void (p.header.state_root[0]! ^= 1)],
    ['path leaf_count', (p) => void (p.path.leaf_count += 1)],
  ];
  const tampered: Record<string, string> = {};
  for (const [what, change] of tamperings) {
    const copy = ReceiptProof.fromJson(parseJson(stringifyJson(ReceiptProof.toJson(run1.proof))));
    verifyReceiptProof(copy, genesis);
    change(copy);
    try {
      verifyReceiptProof(copy, genesis);
      tampered[what] = 'ACCEPTED';
    } catch (e) {
      must(e instanceof VerifyError, `${what}: ${String(e)}`);
      tampered[what] = e.message;
    }
  }
  must(Object.values(tampered).every((v) => v !== 'ACCEPTED'), `a tampered proof verified: ${stringifyJson(tampered)}`);
  class LyingClient extends CairnClient {
    override async jobProof(jobId: Uint8Array | string, provider?: Uint8Array | string): Promise<ReceiptProof> {
      const p = await super.jobProof(jobId, provider);
      p.receipt.claim.output_hash[0]! ^= 1;
      return p;
    }
  }
  const liar = new LyingClient(args.rpc);
  const refused = await runJob(liar, { module: { id: toHex(run1.proof.receipt.claim.module_id) }, input: 'tampered', key }, { genesis }).then(
    () => 'ACCEPTED',
    (e: unknown) => (e instanceof VerifyError ? e.message : `unexpected ${String(e)}`),
  );
  liar.close();
  must(refused !== 'ACCEPTED' && !refused.startsWith('unexpected'), `runJob with a tampered proof: ${refused}`);
  summary['tampered'] = { ...tampered, runJob: refused };
  log('tampered proofs refused');

  // 5. The WebSocket cut mid-subscription: nothing lost.
  const target = new URL(args.rpc.replace(/^ws/, 'http'));
  const proxy = new CutProxy({ host: target.hostname, port: Number(target.port) });
  const port = await proxy.listen();
  const conn: ConnectionEvent[] = [];
  const viaProxy = new CairnClient(`ws://127.0.0.1:${port}`, {
    reconnect: { initialDelayMs: 100, maxDelayMs: 800 },
    onConnection: (e) => conn.push(e),
  });
  // The cut happens as `accepted` is read. When this process was kept off the cores long
  // enough, the later stages reached it in the same read and are delivered before the cut is
  // seen: nothing was left to resume, so the attempt is made again with a new job.
  const attemptsMax = 4;
  let attempt = 0;
  let run3: JobRun;
  let stageAtReconnect = '';
  let seen3: string[] = [];
  for (;;) {
    attempt++;
    let outage: Promise<string> | null = null;
    const seen: string[] = [];
    const onEvent = (e: JobEvent): void => {
      seen.push(e.stage);
      if (e.stage !== 'accepted' || outage) return;
      const jobId = toHex(e.job_id);
      // Cut the connection and refuse new ones until the job is final, so that every later
      // stage happens while the client is away and must come from the node's replay.
      proxy.refuse = true;
      proxy.cut();
      outage = (async () => {
        const until = Date.now() + 30_000;
        let stage = '';
        while (Date.now() < until) {
          stage = (await client.jobGet(jobId)).stage;
          if (stage === 'finalized') break;
          await sleep(50);
        }
        await sleep(300); // a few refused reconnections
        proxy.refuse = false;
        return stage;
      })();
    };
    const input = `cut me off ${attempt}`;
    run3 = await runJob(viaProxy, { module: { id: toHex(run1.proof.receipt.claim.module_id) }, input, key }, { genesis, onEvent });
    stageAtReconnect = await (outage ?? Promise.resolve('no outage'));
    seen3 = seen;
    must(text(run3.output) === input.toUpperCase(), `output ${text(run3.output)}`);
    if (run3.resubscriptions >= 1 || attempt >= attemptsMax) break;
    log(`attempt ${attempt}: every stage was read before the cut; again with a new job`);
  }
  const stages3 = run3.events.map((e) => e.stage);
  must(stringifyJson(stages3) === stringifyJson(['accepted', 'executed', 'included', 'finalized']), `stages ${stages3.join(', ')}`);
  must(stringifyJson(seen3) === stringifyJson(stages3), 'onEvent saw each stage once');
  must(run3.resubscriptions >= 1, `resubscribed (${attempt} attempts)`);
  must(stageAtReconnect === 'finalized', `the job was ${stageAtReconnect} when the proxy let the client back`);
  // A fresh subscription's replay: the same stages, nothing more.
  const fresh = client.jobSubscribe(run3.jobId);
  await fresh.done;
  const replay = fresh.events.map((e) => e.stage);
  must(stringifyJson(replay) === stringifyJson(stages3), `a fresh subscription replays ${replay.join(', ')}`);
  const retries = conn.filter((e) => e.state === 'retrying').length;
  must(retries >= 1 && proxy.refused >= 1, 'reconnections were refused and retried');
  summary['resume'] = {
    job_id: run3.jobId,
    output: text(run3.output),
    stages: stages3,
    replayed_by_fresh_subscription: replay,
    resubscriptions: run3.resubscriptions,
    attempts: attempt,
    connections: conn.filter((e) => e.state === 'open').length,
    refused_reconnections: proxy.refused,
    retries,
    stage_while_disconnected: stageAtReconnect,
  };
  viaProxy.close();
  proxy.close();
  log('resume ok', summary['resume']);

  // 6. Account transactions: a transfer, then a provider's life (priced out of every job).
  const to = generateKey();
  const transfer = await submitTx(client, key, actions.transfer(to.publicKey, 12_345n), { timeoutMs: 30_000 });
  const toProof = verifyStateProof(await client.stateGetProof(accountKey(to.publicKey)), genesis);
  must(toProof.value !== null && decode(Account, toProof.value).balance === 12_345n, 'the transfer arrived (state proof)');
  must((await client.accountGet(to.publicKey)).balance === 12_345n, 'account_get of the recipient');
  summary['transfer'] = { hash: transfer.hash, to: to.address, amount: 12_345, proven_at: toProof.height };
  log('transfer ok', transfer.hash);

  // (Relative to what the chain held before: the script may run twice on one testnet.)
  const before = (await client.stateGetProof(providerKey(key.publicKey))).value;
  const prior = { stake: before === null ? 0n : decode(Provider, before).stake };
  const stake = genesis.params.stake_min;
  const txs: Record<string, string> = {};
  for (const [name, action] of [
    ['register_provider', actions.registerProvider(stake, 1_000_000_000n, 1)],
    ['update_price', actions.updatePrice(2_000_000_000n)],
    ['unbond', actions.unbond(1n)],
  ] as const) {
    txs[name] = (await submitTx(client, key, action, { timeoutMs: 30_000 })).hash;
  }
  const provProof = verifyStateProof(await client.stateGetProof(providerKey(key.publicKey)), genesis);
  must(provProof.value !== null, 'the client is a provider');
  const prov = decode(Provider, provProof.value);
  must(prov.price_per_fuel === 2_000_000_000n && prov.stake === prior.stake + stake - 1n && prov.unbonding.at(-1)?.amount === 1n && prov.unbonding.at(-1)!.release_height > provProof.height, `provider state ${stringifyJson(Provider.toJson(prov))}`);
  summary['actions'] = { ...txs, provider: Provider.toJson(prov) };
  log('provider transactions ok');
  client.close();
}

main().then(
  () => done(true),
  (e: unknown) => {
    log('FAILED', e);
    done(false, e);
  },
);
