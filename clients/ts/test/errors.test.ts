// The client's error tables against docs/RPC.md ("Errors": both code tables and the list of
// rules a refused transaction names) and the OpenRPC document's `components.errors`: a code or
// rule the docs add without a hint here fails this test.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

import { CairnRpcError, ERROR_CODES, TX_RULE_HINTS, hintFor } from '../src/index.ts';

const docs = new URL('../../../docs/', import.meta.url);
const rpcMd = readFileSync(new URL('RPC.md', docs), 'utf8');
const openrpc = JSON.parse(readFileSync(new URL('openrpc.json', docs), 'utf8')) as {
  components: { errors: Record<string, { code: number; data: { reason: string } }> };
};

/** The rows of RPC.md's error tables: each code with the reason in its second column (`—`: none). */
function documentedCodes(): Map<number, string | null> {
  const section = rpcMd.slice(rpcMd.indexOf('## Errors'), rpcMd.indexOf('## Limits'));
  const codes = new Map<number, string | null>();
  for (const line of section.split('\n')) {
    const m = /^\| (-3\d{4}(?:, -3\d{4})*) \| ([^|]+) \|/.exec(line);
    if (!m) continue;
    const reason = /`([a-z_]+)`/.exec(m[2]!)?.[1] ?? null;
    for (const c of m[1]!.split(', ')) codes.set(Number(c), reason);
  }
  return codes;
}

test("ERROR_CODES has exactly RPC.md's codes, with RPC.md's and the OpenRPC document's reasons", () => {
  const documented = documentedCodes();
  assert.ok(documented.size >= 20, `RPC.md's tables read: ${documented.size} codes`);
  assert.deepEqual(
    Object.keys(ERROR_CODES).map(Number).sort((a, b) => a - b),
    [...documented.keys()].sort((a, b) => a - b),
  );
  for (const [code, reason] of documented) {
    const info = ERROR_CODES[code]!;
    if (reason !== null) assert.equal(info.reason, reason, `${code}`);
    assert.ok(info.hint.length > 10 && info.meaning.length > 5, `${code} has a hint and a meaning`);
  }
  for (const [name, e] of Object.entries(openrpc.components.errors)) {
    assert.equal(ERROR_CODES[e.code]?.reason, e.data.reason, `components.errors.${name}`);
    assert.equal(name, e.data.reason);
  }
  // Every code of Cairn's range RPC.md names anywhere is in the table (the range's ends aside).
  for (const m of rpcMd.matchAll(/(?<!…)-330\d\d(?!…)/g)) assert.ok(Number(m[0]) in ERROR_CODES, m[0]);
  const reasons = Object.values(ERROR_CODES).map((i) => i.reason);
  assert.equal(new Set(reasons).size, reasons.length, 'reasons are unique');
});

test("TX_RULE_HINTS covers every rule RPC.md says a refused transaction names", () => {
  const start = rpcMd.indexOf('The rules a refused transaction reports');
  assert.ok(start > 0);
  // The rules are the names outside parentheses: a parenthesis explains the rule before it, and
  // may name a field (`input_blob`).
  const paragraph = rpcMd.slice(start, rpcMd.indexOf('\n\n', start)).replace(/\([^)]*\)/g, '');
  const rules = [...paragraph.matchAll(/`([a-z_]+)`/g)].map((m) => m[1]!).filter((r) => r !== 'reason');
  assert.ok(rules.length >= 25, `${rules.length} rules read`);
  assert.deepEqual([...rules].sort(), Object.keys(TX_RULE_HINTS).sort());
  for (const r of rules) assert.equal(hintFor(-33002, r), TX_RULE_HINTS[r]);
});

test('CairnRpcError: code, reason, message, retryAfterMs and hint from an error object', () => {
  const over = CairnRpcError.fromObject('job_submit', {
    code: -33008,
    message: 'too many requests from your address (1000/s); slow down and retry in 120 ms',
    data: { reason: 'overloaded', retry_after_ms: 120 },
  });
  assert.ok(over instanceof Error && over instanceof CairnRpcError);
  assert.equal(over.code, -33008);
  assert.equal(over.reason, 'overloaded');
  assert.equal(over.retryAfterMs, 120);
  assert.equal(over.method, 'job_submit');
  assert.match(over.message, /slow down/);
  assert.equal(over.hint, ERROR_CODES[-33008]!.hint);

  const rule = CairnRpcError.fromObject('tx_submit', { code: -33002, message: 'the fee must be at least 1', data: { reason: 'fee_below_minimum' } });
  assert.equal(rule.reason, 'fee_below_minimum');
  assert.equal(rule.retryAfterMs, undefined);
  assert.equal(rule.hint, TX_RULE_HINTS['fee_below_minimum']);

  // The library's own errors carry no data: the reason is the code's name.
  const lib = CairnRpcError.fromObject('nope', { code: -32601, message: 'Method not found' });
  assert.equal(lib.reason, 'method_not_found');
  assert.match(lib.hint, /no such method/);
  const unknown = CairnRpcError.fromObject('x', { code: -31999, message: 'new' });
  assert.equal(unknown.reason, 'unknown');
  assert.match(unknown.hint, /-31999/);
});
