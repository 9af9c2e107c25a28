// `job_subscribe` across dropped connections, with a fake node behind fake WebSockets: events
// before and after a drop, the node's replay of past events on resubscription, and duplicates
// on the wire — each stage is delivered once, in order, and none is lost.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  CairnClient,
  CairnConnectionError,
  type ConnectionEvent,
  type JobEvent,
  StageFilter,
  backoffDelay,
} from '../src/index.ts';
import { FakeNode, until } from './fake-node.ts';

const JOB = '5a'.repeat(32);
const result = {
  provider: '33'.repeat(32),
  status: 'ok',
  fuel_used: 1234,
  output_hash: '185f8db32271fe25f561a6fc938b2e264306ec304eda518007d1764826381969',
  output: '48454c4c4f',
};
const ev = (stage: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({ job_id: JOB, stage, ...extra });
const stages = (evs: JobEvent[]): string[] => evs.map((e) => e.stage);

function client(node: FakeNode, onConnection?: (e: ConnectionEvent) => void, maxAttempts?: number): CairnClient {
  return new CairnClient('ws://fake:9944', {
    webSocket: node.factory,
    requestTimeoutMs: 1_000,
    reconnect: { initialDelayMs: 2, maxDelayMs: 10, ...(maxAttempts ? { maxAttempts } : {}) },
    ...(onConnection ? { onConnection } : {}),
  });
}

test('StageFilter: each stage once, in order; a stage behind the last one is dropped', () => {
  const f = new StageFilter();
  const seq = ['accepted', 'accepted', 'executed', 'accepted', 'executed', 'included', 'finalized', 'finalized'] as const;
  assert.deepEqual(
    seq.filter((stage) => f.accept({ stage })),
    ['accepted', 'executed', 'included', 'finalized'],
  );
  assert.equal(f.stage, 'finalized');
  const g = new StageFilter();
  assert.equal(g.stage, null);
  assert.ok(g.accept({ stage: 'included' }), 'a stage may be skipped (the node did not know it)');
  assert.ok(!g.accept({ stage: 'executed' }));
});

test('backoff: doubles from the initial delay up to the most, jittered in [0.5, 1)', () => {
  const opts = { initialDelayMs: 100, maxDelayMs: 1_000 };
  assert.deepEqual(
    [1, 2, 3, 4, 5, 50].map((a) => backoffDelay(a, opts, () => 0.999999)),
    [100, 200, 400, 800, 1_000, 1_000],
  );
  assert.equal(backoffDelay(3, opts, () => 0), 200);
});

test('a drop mid-subscription: reconnected with backoff, resubscribed, missed events replayed, duplicates removed', async () => {
  const node = new FakeNode();
  const conn: ConnectionEvent[] = [];
  const c = client(node, (e) => conn.push(e));
  const seen: JobEvent[] = [];
  const reconnects: boolean[] = [];
  const sub = c.jobSubscribe(JOB, { onEvent: (e) => seen.push(e), onReconnect: (i) => reconnects.push(i.resubscribed) });
  await sub.ready;

  node.emit(JOB, ev('accepted'));
  node.notify(JOB, ev('accepted')); // the same event twice on the wire
  node.emit(JOB, ev('executed', { result }));
  await until(() => seen.length === 2, 1_000, 'two events');

  // The connection breaks; the node refuses connections for a while, and meanwhile the job
  // moves on: `included` happens while no connection is open.
  node.refuse = true;
  node.dropAll();
  node.emit(JOB, ev('included', { result, height: 7 }));
  await until(() => node.refused >= 3, 2_000, 'three refused reconnections');
  assert.equal(seen.length, 2, 'nothing delivered while disconnected');
  node.refuse = false;

  await until(() => sub.resubscriptions === 1, 2_000, 'the resubscription');
  node.emit(JOB, ev('finalized', { result, height: 7 }));
  const last = await sub.done;

  assert.equal(last.stage, 'finalized');
  assert.deepEqual(stages(seen), ['accepted', 'executed', 'included', 'finalized']);
  assert.deepEqual(stages(sub.events), stages(seen));
  assert.equal(seen[2]!.height, 7n);
  assert.equal(new TextDecoder().decode(seen[3]!.result!.output), 'HELLO');
  // One duplicate on the wire, then the replay of accepted and executed.
  assert.equal(sub.duplicates, 3);
  assert.deepEqual(reconnects, [false, true]);
  // Every subscribe carried the job id; two connections opened; retries backed off.
  const subscribes = node.calls.filter((x) => x.method === 'job_subscribe');
  assert.equal(subscribes.length, 2);
  assert.ok(subscribes.every((x) => (x.params as { job_id: string }).job_id === JOB));
  assert.equal(conn.filter((e) => e.state === 'open').length, 2);
  const retries = conn.filter((e): e is Extract<ConnectionEvent, { state: 'retrying' }> => e.state === 'retrying');
  assert.ok(retries.length >= 3);
  assert.deepEqual(
    retries.slice(0, 3).map((r) => r.attempt),
    [1, 2, 3],
  );
  // Ended by the node after `finalized`: not unsubscribed.
  assert.equal(node.calls.filter((x) => x.method === 'job_unsubscribe').length, 0);
  c.close();
});

test('events are read in order by next() and for await, also when the node replays everything at once', async () => {
  const node = new FakeNode();
  node.emit(JOB, ev('accepted'));
  node.emit(JOB, ev('executed', { result }));
  const c = client(node);
  const sub = c.jobSubscribe(JOB);
  // The past events arrive in the same task as the subscribe answer: none is lost.
  assert.equal((await sub.next(1_000))?.stage, 'accepted');
  assert.equal((await sub.next(1_000))?.stage, 'executed');
  await assert.rejects(sub.next(20), CairnConnectionError);
  node.dropAll();
  await until(() => sub.resubscriptions === 1, 2_000, 'the resubscription');
  node.emit(JOB, ev('included', { result, height: 2 }));
  node.emit(JOB, ev('finalized', { result, height: 2 }));
  const rest: string[] = [];
  for await (const e of sub) rest.push(e.stage);
  assert.deepEqual(rest, ['included', 'finalized']);
  assert.equal(await sub.next(), null);
  c.close();
});

test('calls in flight when the connection drops fail as connection errors; the next call reconnects', async () => {
  const node = new FakeNode();
  const c = client(node);
  // The node drops the connection instead of answering.
  node.handlers['job_get'] = (_p, socket) => {
    socket.drop();
    return null;
  };
  await assert.rejects(c.jobGet(JOB), (e: unknown) => e instanceof CairnConnectionError && e.retryable);
  node.handlers['provider_list'] = () => [];
  assert.deepEqual(await c.providerList(), []);
  assert.equal(node.sockets.length, 2);
  c.close();
});

test('a transport that gives up fails the subscription; close() ends it', async () => {
  const node = new FakeNode();
  const c = client(node, undefined, 3);
  const sub = c.jobSubscribe(JOB);
  await sub.ready;
  node.refuse = true;
  node.dropAll();
  await assert.rejects(sub.done, CairnConnectionError);
  assert.equal(node.refused, 3);
  c.close();

  const node2 = new FakeNode();
  const c2 = client(node2);
  const sub2 = c2.jobSubscribe(JOB);
  await sub2.ready;
  sub2.close();
  await assert.rejects(sub2.done, /closed before its last event/);
  await until(() => node2.calls.some((x) => x.method === 'job_unsubscribe'), 1_000, 'job_unsubscribe');
  const unsub = node2.calls.find((x) => x.method === 'job_unsubscribe')!;
  assert.ok(Array.isArray(unsub.params) && typeof unsub.params[0] === 'bigint' && unsub.params[0] > 2n ** 53n, 'the exact big id, by position');
  c2.close();
});
