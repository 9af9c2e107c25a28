// runJob and estimate against a fake node serving the linked fixtures' chain
// (docs/fixtures/linked: the client of seed 1 offers "hello" to the uppercase module; block 1
// holds the offer and its result; the receipt proof is signed by 3 of the 4 validators). The
// offer runJob builds from what the node says is the fixture's offer byte for byte, so the real
// proof verifies; tampered answers must be refused.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

import {
  CairnClient,
  CairnJobError,
  CairnRpcError,
  Genesis,
  type JobEvent,
  JobOffer,
  SignedOffer,
  VerifyError,
  estimate,
  keyFromSeed,
  moduleId,
  offerJobId,
  parseJson,
  runJob,
  stringifyJson,
  toHex,
} from '../src/index.ts';
import { FakeNode, RpcFault, answerChainReads } from './fake-node.ts';

const docs = new URL('../../../docs/', import.meta.url);
const json = (path: string): unknown => parseJson(readFileSync(new URL(path, docs), 'utf8'));
const genesis = Genesis.fromJson(json('fixtures/linked/genesis.json'));
const offerJson = json('fixtures/linked/offer.json') as { offer: Record<string, unknown> };
const offer = SignedOffer.fromJson(offerJson);
const proofJson = json('fixtures/linked/receipt-proof.json') as Record<string, unknown>;
const block = json('fixtures/linked/block.json') as { txs: Record<string, unknown>[] };
const resultTx = block.txs[1]!;
const JOB = '76fe5859d002ac0606e4be628f74f79cb546b6e1d064b60bcc09e23d88074c5b';
const MODULE = toHex(offer.offer.module_id);
const key = keyFromSeed(new Uint8Array(32).fill(1));
const spec = {
  module: { id: MODULE },
  input: 'hello',
  key,
  terms: { fuelLimit: 1_000_000, maxPrice: 1, deadlineBlocks: 100, redundancy: 1 },
};

interface Options {
  proof?: unknown;
  output?: string;
  end?: Record<string, unknown>;
  dropAfterAccepted?: boolean;
  /** The connection drops under job_submit: the offer arrives, its answer does not. */
  dropOnSubmit?: boolean;
  /** The connection drops under the first job_proof, before its answer. */
  dropOnProof?: boolean;
}

/** A node of the linked chain at height 0 that runs the fixture's job when it is submitted. */
function linkedNode(opts: Options = {}): FakeNode {
  const node = new FakeNode();
  const claim = resultTx['claim'] as Record<string, unknown>;
  const result = { provider: claim['provider'], status: 'ok', fuel_used: claim['fuel_used'], output_hash: claim['output_hash'], output: opts.output ?? resultTx['output'] };
  answerChainReads(node, toHex(offer.offer.chain_id), json('fixtures/linked/genesis.json'));
  let submits = 0;
  node.handlers['job_get'] = (p) => {
    if (submits === 0) throw new RpcFault(-33001, 'unknown job', { reason: 'not_found' });
    return { job_id: (p as { job_id: string }).job_id, stage: 'accepted', client: key.address, module_id: MODULE, fuel_limit: 1_000_000, max_price: 1, assigned: [] };
  };
  node.handlers['job_submit'] = (p, socket) => {
    if (submits++ > 0) throw new RpcFault(-33002, 'already pending', { reason: 'invalid_tx' });
    if (opts.dropOnSubmit) socket.drop(); // before its answer
    const submitted = (p as { offer: unknown }).offer;
    if (stringifyJson(submitted) !== stringifyJson(offerJson)) throw new RpcFault(-33003, 'not the fixture offer', { reason: 'bad_signature' });
    setTimeout(() => {
      node.emit(JOB, { job_id: JOB, stage: 'accepted' });
      if (opts.dropAfterAccepted) node.dropAll();
      if (opts.end) return node.emit(JOB, { job_id: JOB, ...opts.end });
      node.emit(JOB, { job_id: JOB, stage: 'executed', result });
      node.emit(JOB, { job_id: JOB, stage: 'included', result, height: 1 });
      node.emit(JOB, { job_id: JOB, stage: 'finalized', result, height: 1 });
    }, 5);
    return JOB;
  };
  let proofs = 0;
  node.handlers['job_proof'] = (p, socket) => {
    assert.deepEqual(p, { job_id: JOB, provider: claim['provider'] });
    if (opts.dropOnProof && proofs++ === 0) socket.drop();
    return opts.proof ?? proofJson;
  };
  return node;
}

const connect = (node: FakeNode): CairnClient =>
  new CairnClient('ws://fake', { webSocket: node.factory, reconnect: { initialDelayMs: 2, maxDelayMs: 5 } });

test('runJob: the offer is the fixture byte for byte, the proof verifies, the output is returned', async () => {
  const node = linkedNode();
  const c = connect(node);
  const seen: string[] = [];
  const run = await runJob(c, spec, { genesis, onEvent: (e: JobEvent) => seen.push(e.stage) });
  assert.equal(new TextDecoder().decode(run.output), 'HELLO');
  assert.equal(run.jobId, JOB);
  assert.equal(run.receipt.height, 1n);
  assert.deepEqual(seen, ['accepted', 'executed', 'included', 'finalized']);
  assert.equal(toHex(run.offer.signature), toHex(offer.signature));
  // Subscribed before submitting.
  const order = node.calls.map((x) => x.method).filter((m) => m === 'job_subscribe' || m === 'job_submit');
  assert.deepEqual(order, ['job_subscribe', 'job_submit']);
  c.close();
});

test('runJob survives a dropped connection: every stage once', async () => {
  const c = connect(linkedNode({ dropAfterAccepted: true }));
  const run = await runJob(c, spec, { genesis });
  assert.deepEqual(
    run.events.map((e) => e.stage),
    ['accepted', 'executed', 'included', 'finalized'],
  );
  assert.equal(run.resubscriptions, 1);
  c.close();
});

test('runJob: the connection drops under job_submit; the job is found on reconnection, not submitted twice', async () => {
  const node = linkedNode({ dropOnSubmit: true });
  const c = connect(node);
  const run = await runJob(c, spec, { genesis });
  assert.equal(new TextDecoder().decode(run.output), 'HELLO');
  const methods = node.calls.map((x) => x.method);
  assert.equal(methods.filter((m) => m === 'job_submit').length, 1);
  assert.ok(methods.includes('job_get'));
  c.close();
});

test('runJob: the connection drops under job_proof; the proof is asked again once reconnected', async () => {
  const node = linkedNode({ dropOnProof: true });
  const c = connect(node);
  const run = await runJob(c, spec, { genesis });
  assert.equal(new TextDecoder().decode(run.output), 'HELLO');
  assert.equal(node.calls.filter((x) => x.method === 'job_proof').length, 2);
  c.close();
});

test('runJob refuses a tampered proof, an output that is not the receipt’s, another chain', async () => {
  const sig = ((proofJson['commit'] as { signatures: { signature: string }[] }).signatures[0]!.signature);
  const badSig = JSON.parse(stringifyJson(proofJson)) as typeof proofJson;
  (badSig['commit'] as { signatures: { signature: string }[] }).signatures[0]!.signature = `${sig.slice(0, 10)}${sig[10] === '0' ? '1' : '0'}${sig.slice(11)}`;
  for (const [what, node, why] of [
    ['commit signature', linkedNode({ proof: badSig }), /bad signature/],
    ['output', linkedNode({ output: '48454c4c50' }), /do not hash/],
  ] as const) {
    const c = connect(node);
    await assert.rejects(runJob(c, spec, { genesis }), (e: unknown) => e instanceof VerifyError && why.test(e.message), what);
    c.close();
  }
  const other = Genesis.fromJson(json('fixtures/genesis.json'));
  const c = connect(linkedNode());
  await assert.rejects(runJob(c, spec, { genesis: other }), /serves chain/);
  c.close();
});

test('runJob: expired and dropped jobs are CairnJobErrors; a refused offer is a CairnRpcError', async () => {
  for (const [end, kind] of [
    [{ stage: 'expired', height: 100 }, 'expired'],
    [{ stage: 'dropped', reason: 'replaced by a transaction with a higher fee' }, 'dropped'],
  ] as const) {
    const c = connect(linkedNode({ end }));
    await assert.rejects(runJob(c, spec, { genesis }), (e: unknown) => e instanceof CairnJobError && e.kind === kind && e.jobId === JOB);
    c.close();
  }
  const c = connect(linkedNode());
  await assert.rejects(
    runJob(c, { ...spec, input: 'other' }, { genesis }),
    (e: unknown) => e instanceof CairnRpcError && e.reason === 'bad_signature' && e.code === -33003,
  );
  c.close();
});

test('estimate: signs locally for the job id, sends the offer unsigned, uploads the module when the node lacks it', async () => {
  const node = linkedNode();
  const wasm = new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]);
  let stored = false;
  node.handlers['module_put'] = (p) => {
    assert.equal((p as { wasm_hex: string }).wasm_hex, toHex(wasm));
    stored = true;
    return toHex(moduleId(wasm));
  };
  node.handlers['job_estimate'] = (p) => {
    if (!stored) throw new RpcFault(-33009, 'module unknown; upload it with module_put first', { reason: 'module_unknown' });
    const { offer: o, job_id } = p as { offer: unknown; job_id: string };
    const unsigned = JobOffer.fromJson(o);
    assert.equal(job_id, toHex(offerJobId(unsigned, key)));
    assert.equal(toHex(unsigned.module_id), toHex(moduleId(wasm)));
    return {
      job_id,
      height: 0,
      status: 'ok',
      fuel_used: 176,
      fuel_limit: 1_000_000,
      output_size_bytes: 5,
      escrow: 1_000_000,
      fee: 1,
      providers: [{ address: 'ed'.repeat(32), price_per_fuel: 1 }],
      cost: 176,
      refund: 999_824,
      admissible: true,
      problems: [],
    };
  };
  const c = connect(node);
  const e = await estimate(c, { ...spec, module: wasm });
  assert.equal(e.cost, 176n);
  assert.equal(e.admissible, true);
  assert.equal(toHex(e.job_id), toHex(offerJobId(e.offer, key)));
  assert.deepEqual(
    node.calls.map((x) => x.method).filter((m) => m.startsWith('job_') || m === 'module_put'),
    ['job_estimate', 'module_put', 'job_estimate'],
  );
  c.close();
});
