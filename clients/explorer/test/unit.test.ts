// The explorer's logic that needs no browser: hash routes, search, and the verify action's
// verdicts on docs/fixtures' real receipt proof (honest, tampered, another genesis, another job,
// an output that is not the receipt's, an output left in a blob before and after it is fetched).

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import test from 'node:test';
import { Genesis, ReceiptProof, type ResultInfo, parseJson, toHex } from '../../ts/src/index.ts';
import { parseRoute, searchTarget } from '../src/router.ts';
import { type ProofOutcome, outputToCheck, verifyOne } from '../src/verify.ts';
import { tamperProof } from './proxy.ts';

const fixtures = new URL('../../../docs/fixtures/linked/', import.meta.url);
const proofJson = () => parseJson(readFileSync(new URL('receipt-proof.json', fixtures), 'utf8')) as { receipt: { provider_signature: string } };
const genesis = Genesis.fromJson(parseJson(readFileSync(new URL('genesis.json', fixtures), 'utf8')));
const proof = ReceiptProof.fromJson(proofJson());
const jobId = toHex(proof.receipt.claim.job_id);
const show = (o: ProofOutcome): string => (o.ok ? `verified at ${o.height}` : o.error);

test('hash routes', () => {
  const id = 'ab'.repeat(32);
  assert.deepEqual(parseRoute(''), { page: 'blocks' });
  assert.deepEqual(parseRoute('#/'), { page: 'blocks' });
  assert.deepEqual(parseRoute('#/block/12'), { page: 'block', height: 12n });
  assert.deepEqual(parseRoute(`#/job/${id}`), { page: 'job', id });
  assert.deepEqual(parseRoute(`#/account/${id.toUpperCase()}`), { page: 'account', address: id });
  assert.deepEqual(parseRoute('#/providers'), { page: 'providers' });
  assert.deepEqual(parseRoute('#/validators'), { page: 'validators' });
  assert.deepEqual(parseRoute('#/params'), { page: 'params' });
  assert.equal(parseRoute('#/block/x').page, 'unknown');
  assert.equal(parseRoute('#/job/abc').page, 'unknown');
});

test('search: a height, a job id the node knows, else an address', async () => {
  const id = 'cd'.repeat(32);
  assert.equal(await searchTarget(' 42 ', async () => false), '#/block/42');
  assert.equal(await searchTarget('#7', async () => false), '#/block/7');
  assert.equal(await searchTarget(id, async () => true), `#/job/${id}`);
  assert.equal(await searchTarget(id.toUpperCase(), async () => false), `#/account/${id}`);
  assert.equal(await searchTarget('hello', async () => true), null);
});

test('verify: the fixture proof verifies, with its height and signers', async () => {
  const o = await verifyOne(proof, jobId, genesis, null);
  assert.ok(o.ok, show(o));
  assert.equal(o.height, proof.header.height);
  assert.equal(o.signers, proof.commit.signatures.length);
  assert.equal(o.validators, genesis.validators.length);
  assert.ok(3n * o.signedPower > 2n * o.totalPower);
});

test('verify: a tampered proof, another genesis, another job, a wrong output each fail with the reason', async () => {
  const t = proofJson();
  tamperProof(t);
  const tampered = await verifyOne(ReceiptProof.fromJson(t), jobId, genesis, null);
  assert.ok(!tampered.ok && tampered.error.startsWith('VerifyError: receipt: bad signature'), show(tampered));
  const other = Genesis.fromJson({ ...(Genesis.toJson(genesis) as object), chain_name: 'another chain' });
  const wrongChain = await verifyOne(proof, jobId, other, null);
  assert.ok(!wrongChain.ok && wrongChain.error.startsWith('VerifyError: '), show(wrongChain));
  const wrongJob = await verifyOne(proof, 'ee'.repeat(32), genesis, null);
  assert.ok(!wrongJob.ok && wrongJob.error.includes('not of'), show(wrongJob));
  const wrongOutput = await verifyOne(proof, jobId, genesis, new TextEncoder().encode('not the output'));
  assert.ok(!wrongOutput.ok && wrongOutput.error.includes('output_hash'), show(wrongOutput));
});

test('verify: an output left in a blob is checked only once fetched; another provider\'s result is not checked', async () => {
  const claim = proof.receipt.claim;
  const output = new TextEncoder().encode('HELLO');
  const inline: ResultInfo = { provider: claim.provider, status: 'ok', fuel_used: claim.fuel_used, output_hash: claim.output_hash, output, output_in_blob: false, reason: null };
  const inBlob: ResultInfo = { ...inline, output: new Uint8Array(0), output_in_blob: true };
  assert.equal(outputToCheck(inline, claim.provider, null), output);
  assert.equal(outputToCheck(inBlob, claim.provider, null), null, 'the empty inline output is not the output');
  assert.equal(outputToCheck(inBlob, claim.provider, output), output);
  assert.equal(outputToCheck(inline, new Uint8Array(32).fill(1), null), null);
  assert.equal(outputToCheck(null, claim.provider, output), null);
  const before = await verifyOne(proof, jobId, genesis, outputToCheck(inBlob, claim.provider, null));
  assert.ok(before.ok && before.outputMatches === null, show(before));
  const fetched = await verifyOne(proof, jobId, genesis, outputToCheck(inBlob, claim.provider, output));
  assert.ok(fetched.ok && fetched.outputMatches === true, show(fetched));
  const wrong = await verifyOne(proof, jobId, genesis, outputToCheck(inBlob, claim.provider, new TextEncoder().encode('HELLP')));
  assert.ok(!wrong.ok && wrong.error.includes('output_hash'), show(wrong));
});
