// The client against the node's OpenRPC document (docs/openrpc.json, what `rpc.discover`
// serves): one client method per node method, no more and no fewer; each sends the params the
// document names (by name; `job_unsubscribe` by position); and each answer record the client
// decodes has exactly the fields of its schema, required ones required. A method or field the
// node adds fails this test until the client has it.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

import {
  AccountInfo,
  CairnClient,
  CairnRpcError,
  EstimateProblem,
  EstimateProvider,
  EvidenceInfo,
  Genesis,
  HeadInfo,
  Health,
  JOB_STAGES,
  JobEstimate,
  JobEvent,
  JobInfo,
  JobWaiting,
  NodeInfo,
  PendingOffer,
  ProviderInfo,
  RPC_METHODS,
  ReceiptProof,
  ResultInfo,
  SignedOffer,
  SignedTx,
  mayBeAbsent,
  parseJson,
  toHex,
} from '../src/index.ts';
import { FakeNode, until } from './fake-node.ts';

interface Param {
  name: string;
  required?: boolean;
}
interface Method {
  name: string;
  params: Param[];
  paramStructure?: string;
  result: { schema: unknown };
}
interface Schema {
  properties?: Record<string, unknown>;
  required?: string[];
  oneOf?: { const: string }[];
}
const docs = new URL('../../../docs/', import.meta.url);
const openrpc = JSON.parse(readFileSync(new URL('openrpc.json', docs), 'utf8')) as {
  methods: Method[];
  components: { schemas: Record<string, Schema> };
};

test("the client's methods are exactly the node's (docs/openrpc.json)", () => {
  const documented = openrpc.methods.map((m) => m.name).sort();
  assert.deepEqual(Object.keys(RPC_METHODS).sort(), documented);
  const client = new CairnClient('ws://127.0.0.1:1');
  for (const [rpc, method] of Object.entries(RPC_METHODS)) {
    assert.equal(typeof client[method], 'function', `${rpc}: CairnClient.${method}`);
  }
  client.close();
});

test('each method sends the params the document names, by name (job_unsubscribe by position)', async () => {
  const node = new FakeNode();
  const client = new CairnClient('ws://fake', { webSocket: node.factory, requestTimeoutMs: 2_000 });
  const id = 'ab'.repeat(32);
  const offer = SignedOffer.fromJson(parseJson(readFileSync(new URL('fixtures/job-offer.json', docs), 'utf8')));
  const tx = SignedTx.fromJson({
    tx: { version: 1, chain_id: id, sender: id, nonce: 1, fee: 1, action: { kind: 'unbond', amount: 5 } },
    signature: 'cd'.repeat(64),
  });
  // Every method, with and without its optional params: the fake node answers -32601 to all
  // but job_subscribe.
  const calls: [keyof typeof RPC_METHODS, () => Promise<unknown>][] = [
    ['rpc.discover', () => client.rpcDiscover()],
    ['module_put', () => client.modulePut(new Uint8Array([0, 0x61, 0x73, 0x6d]))],
    ['blob_put', () => client.blobPut(new Uint8Array([1, 2, 3]))],
    ['blob_get', () => client.blobGet(id)],
    ['job_submit', () => client.jobSubmit(offer)],
    ['job_estimate', () => client.jobEstimate(offer.offer, id)],
    ['tx_submit', () => client.txSubmit(tx)],
    ['provider_list', () => client.providerList()],
    ['job_get', () => client.jobGet(id)],
    ['job_proof', () => client.jobProof(id)],
    ['job_proof', () => client.jobProof(id, id)],
    ['job_proofs', () => client.jobProofs(id)],
    ['job_subscribe', async () => {
      const sub = client.jobSubscribe(id);
      await sub.ready;
      sub.close();
      await until(() => node.calls.some((c) => c.method === 'job_unsubscribe'), 1_000, 'job_unsubscribe');
    }],
    ['job_unsubscribe', () => client.jobUnsubscribe(12345n)],
    ['chain_head', () => client.chainHead()],
    ['chain_getBlock', () => client.chainGetBlock(7)],
    ['account_get', () => client.accountGet(id)],
    ['state_getProof', () => client.stateGetProof(new Uint8Array([1, 2]))],
    ['state_getProof', () => client.stateGetProof('0102', 3n)],
    ['node_info', () => client.nodeInfo()],
    ['consensus_evidence', () => client.consensusEvidence()],
    ['system_health', () => client.systemHealth()],
    ['chain_genesis', () => client.chainGenesis()],
    ['chain_subscribeHeads', async () => {
      const sub = client.subscribeHeads();
      try {
        await sub.ready;
      } finally {
        sub.close();
      }
    }],
    ['chain_unsubscribeHeads', () => client.chainUnsubscribeHeads(12345n)],
  ];
  for (const [name, call] of calls) {
    try {
      await call();
    } catch (e) {
      assert.ok(e instanceof CairnRpcError && e.code === -32601, `${name}: ${String(e)}`);
    }
  }
  client.close();
  const sent = new Map<string, unknown[]>();
  for (const c of node.calls) sent.set(c.method, [...(sent.get(c.method) ?? []), c.params]);
  for (const m of openrpc.methods) {
    const all = sent.get(m.name);
    assert.ok(all && all.length > 0, `${m.name} was called`);
    const names = m.params.map((p) => p.name);
    const required = m.params.filter((p) => p.required).map((p) => p.name);
    const seen = new Set<string>();
    for (const params of all) {
      if (Array.isArray(params)) {
        assert.notEqual(m.paramStructure, 'by-name', `${m.name} is called by position`);
        assert.ok(params.length >= required.length && params.length <= names.length, `${m.name}: ${params.length} params`);
        names.slice(0, params.length).forEach((n) => seen.add(n));
      } else {
        assert.notEqual(m.paramStructure, 'by-position', `${m.name} must be called by position`);
        const keys = Object.keys(params as object);
        for (const k of keys) assert.ok(names.includes(k), `${m.name}: param ${k} is not in the document`);
        for (const r of required) assert.ok(keys.includes(r), `${m.name}: required param ${r} sent`);
        keys.forEach((k) => seen.add(k));
      }
    }
    assert.deepEqual([...seen].sort(), [...names].sort(), `${m.name}: every param of the document is used`);
  }
});

test("each answer record has exactly its schema's fields (required ones required)", () => {
  const records = {
    HeadInfo,
    NodeInfo,
    AccountInfo,
    ProviderInfo,
    ResultInfo,
    JobEvent,
    JobInfo,
    PendingOffer,
    JobWaiting,
    EstimateProvider,
    EstimateProblem,
    JobEstimate,
    EvidenceInfo,
    Health,
  };
  const schemas = openrpc.components.schemas;
  for (const [name, codec] of Object.entries(records)) {
    const schema = schemas[name];
    assert.ok(schema?.properties, `schema ${name}`);
    assert.deepEqual(Object.keys(codec.fields).sort(), Object.keys(schema.properties).sort(), `${name}: fields`);
    // Optional: an Option (null when absent) or a field with a default (`output_in_blob`: false).
    const optional = Object.entries(codec.fields)
      .filter(([, c]) => mayBeAbsent(c))
      .map(([k]) => k);
    const notRequired = Object.keys(schema.properties).filter((k) => !(schema.required ?? []).includes(k));
    assert.deepEqual(optional.sort(), notRequired.sort(), `${name}: optional fields`);
  }
  assert.deepEqual(schemas['Readiness']!.oneOf!.map((o) => o.const), ['ready', 'syncing', 'not_ready']);
  assert.deepEqual(
    schemas['JobStage']!.oneOf!.map((o) => o.const),
    [...JOB_STAGES],
    'the stages, in order',
  );
  // Each method's result schema is one the client decodes (or a plain value).
  const decoded = new Set([...Object.keys(records), 'Hash', 'Block', 'ReceiptProof', 'StateProof', 'Genesis']);
  // `chain_genesis` answers the genesis file's record: the client's codec has exactly its fields.
  assert.deepEqual(Object.keys(Genesis.fields).sort(), Object.keys(schemas['Genesis']!.properties!).sort(), 'Genesis: fields');
  for (const m of openrpc.methods) {
    const ref = JSON.stringify(m.result.schema).match(/#\/components\/schemas\/(\w+)/)?.[1];
    if (ref) assert.ok(decoded.has(ref) || ref === 'SubscriptionId', `${m.name}: result ${ref}`);
  }
});

test('answers decode: a receipt proof, big u64s exact, unknown fields of info records ignored', async () => {
  const node = new FakeNode();
  const proofJson = parseJson(readFileSync(new URL('fixtures/receipt-proof.json', docs), 'utf8'));
  node.handlers['job_proof'] = () => proofJson;
  node.handlers['account_get'] = (p) => ({
    address: (p as { address: string }).address,
    balance: 2n ** 64n - 1n,
    nonce: 3,
    next_nonce: 4,
    a_field_from_a_newer_node: true,
  });
  const client = new CairnClient('ws://fake', { webSocket: node.factory });
  const proof = await client.jobProof('00'.repeat(32));
  assert.deepEqual(ReceiptProof.toJson(proof), ReceiptProof.toJson(ReceiptProof.fromJson(proofJson)));
  const acct = await client.accountGet(new Uint8Array(32).fill(9));
  assert.equal(acct.balance, 2n ** 64n - 1n);
  assert.equal(acct.next_nonce, 4n);
  assert.equal(toHex(acct.address), '09'.repeat(32));
  await assert.rejects(client.jobGet('XY'), /64 lowercase hex/);
  client.close();
});

test('HTTP calls: POSTed JSON-RPC, errors typed, a 429 is a retryable connection error', async () => {
  const seen: string[] = [];
  const fetch = async (url: string, init: { body: string }): Promise<{ ok: boolean; status: number; text(): Promise<string> }> => {
    seen.push(`${url} ${init.body}`);
    const req = JSON.parse(init.body) as { id: number; method: string };
    if (req.method === 'chain_head') {
      const body = `{"jsonrpc":"2.0","id":${req.id},"result":{"height":18446744073709551615,"hash":"${'11'.repeat(32)}","state_root":"${'22'.repeat(32)}","time_ms":5}}`;
      return { ok: true, status: 200, text: async () => body };
    }
    if (req.method === 'job_get') {
      const body = `{"jsonrpc":"2.0","id":${req.id},"error":{"code":-33001,"message":"unknown job","data":{"reason":"not_found"}}}`;
      return { ok: true, status: 200, text: async () => body };
    }
    return { ok: false, status: 429, text: async () => 'too many connections from your address (32); close some and retry' };
  };
  const client = new CairnClient('http://node:9944', { fetch });
  const head = await client.chainHead();
  assert.equal(head.height, 2n ** 64n - 1n);
  assert.match(seen[0]!, /^http:\/\/node:9944 \{"jsonrpc":"2.0","id":1,"method":"chain_head","params":\{\}\}$/);
  await assert.rejects(client.jobGet('00'.repeat(32)), (e: unknown) => e instanceof CairnRpcError && e.reason === 'not_found' && e.code === -33001);
  await assert.rejects(client.nodeInfo(), (e: unknown) => (e as { status?: number; retryable?: boolean }).status === 429 && (e as { retryable: boolean }).retryable);
  client.close();
});

test('heads: the current head first, then each newer one once, rising; chain_genesis decodes', async () => {
  const node = new FakeNode();
  const head = (height: number) => ({ height, hash: 'ab'.repeat(32), state_root: 'cd'.repeat(32), time_ms: 1_700_000_000_000 + height });
  node.handlers['chain_subscribeHeads'] = (_params, socket) => {
    // The head now, a repeat and an older one (a slow reader's race), then a skip ahead.
    queueMicrotask(() => {
      for (const h of [5, 5, 4, 6, 9]) socket.deliver({ jsonrpc: '2.0', method: 'chain_newHead', params: { subscription: 77, result: head(h) } });
    });
    return 77;
  };
  node.handlers['chain_unsubscribeHeads'] = () => true;
  const genesisJson = parseJson(readFileSync(new URL('fixtures/genesis.json', docs), 'utf8'));
  node.handlers['chain_genesis'] = () => genesisJson;
  const client = new CairnClient('ws://fake', { webSocket: node.factory, requestTimeoutMs: 2_000 });
  const seen: bigint[] = [];
  const sub = client.subscribeHeads({ onHead: (h) => seen.push(h.height) });
  await sub.ready;
  assert.equal((await sub.waitFor(9, 2_000)).height, 9n);
  assert.deepEqual(seen, [5n, 6n, 9n]);
  sub.close();
  await until(() => node.calls.some((c) => c.method === 'chain_unsubscribeHeads'), 1_000, 'chain_unsubscribeHeads');
  const genesis = await client.chainGenesis();
  assert.deepEqual(Genesis.toJson(genesis), Genesis.toJson(Genesis.fromJson(genesisJson)));
  client.close();
});
