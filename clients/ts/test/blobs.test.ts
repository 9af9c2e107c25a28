// Job data blobs (docs/PROOFS.md, "Record layouts"; docs/RPC.md, `blob_put` and `blob_get`): an
// offer that names its input blob and a result that leaves its output in a blob, laid out byte
// for byte as PROOFS.md's tables say and read from their JSON forms, and verified as the Rust
// side verifies them; then `runJob`, `estimate` and `outputOf` through blobs against a fake
// node of the linked fixtures' chain, whose receipt proofs are built and signed here with the
// linked genesis' keys (validators: seeds 10…13; provider: seed 3; client: seed 1), so that
// each run's proof verifies as a real one does.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

import {
  CairnClient,
  CairnRpcError,
  DATA_BLOB_BYTES_MAX,
  DOMAINS,
  DecodeError,
  ExecutionReceipt,
  Genesis,
  JobOffer,
  JobResult,
  ReceiptProof,
  ResultBatch,
  ResultClaim,
  ResultInfo,
  SignedOffer,
  Transaction,
  Vote,
  VerifyError,
  blockHash,
  buildOffer,
  chainId,
  compareBytes,
  decode,
  encode,
  estimate,
  fromHex,
  H,
  inputHash,
  jobId,
  keyFromSeed,
  outputOf,
  parseJson,
  receiptLeaf,
  runJob,
  signOffer,
  signRecord,
  toHex,
  validatorSet,
  verifyJobResult,
  verifyOffer,
  verifyResultBatch,
} from '../src/index.ts';
import { FakeNode, RpcFault, answerChainReads } from './fake-node.ts';

const docs = new URL('../../../docs/', import.meta.url);
const read = (path: string): string => readFileSync(new URL(path, docs), 'utf8');
const json = (path: string): unknown => parseJson(read(path));

const le32 = (v: number): string => {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, v, true);
  return toHex(b);
};
const le64 = (v: bigint): string => {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, v, true);
  return toHex(b);
};
const utf8 = new TextEncoder();
/** `n` bytes of a pattern, so that a misplaced byte shows. */
const pattern = (n: number, step: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (i * step) % 251);

const clientKey = keyFromSeed(new Uint8Array(32).fill(1));
const providerKey = keyFromSeed(new Uint8Array(32).fill(3));
const validatorKeys = [10, 11, 12, 13].map((b) => keyFromSeed(new Uint8Array(32).fill(b))).sort((a, b) => compareBytes(a.publicKey, b.publicKey));
const genesis = Genesis.fromJson(json('fixtures/linked/genesis.json'));
const chain = chainId(genesis);

// ---------------------------------------------------------------------------------------------
// Records

test('an offer with an input blob: laid out as PROOFS.md says (Option<32 bytes> last), JSON, signed; its input_hash is the blob id', () => {
  const fixture = SignedOffer.fromJson(json('fixtures/job-offer.json'));
  const o = fixture.offer;
  // The fixture (the Rust side's bytes) has no blob: its offer ends with the Option's 0 byte.
  const offerHex = toHex(encode(JobOffer, o));
  assert.equal(read('fixtures/job-offer.borsh.hex').trim(), `${offerHex}${toHex(fixture.signature)}`);
  assert.equal(o.input_blob, null);
  assert.ok(offerHex.endsWith('00'));

  const input = utf8.encode('hello');
  const id = H(input);
  const withBlob: JobOffer = { ...o, input: new Uint8Array(0), input_blob: id };
  assert.equal(o.placement.kind, 'prefer');
  const placement = `01${le32(1)}${le32(7)}${toHex(utf8.encode('eu-west'))}`;
  const expected =
    `01${toHex(o.chain_id)}${toHex(o.client)}${le64(o.nonce)}${le64(o.fee)}${toHex(o.module_id)}` +
    `${le32(0)}${le64(o.fuel_limit)}${le64(o.max_price)}${toHex(Uint8Array.of(o.redundancy))}` +
    `${le64(o.assignment_height)}${le64(o.deadline_height)}${placement}01${toHex(id)}`;
  const bytes = encode(JobOffer, withBlob);
  assert.equal(toHex(bytes), expected);
  assert.equal(toHex(encode(JobOffer, { ...withBlob, input_blob: null })), expected.slice(0, -66) + '00');
  assert.deepEqual(decode(JobOffer, bytes), withBlob);
  // An Option byte other than 0 or 1, and a blob id cut short, do not decode.
  assert.throws(() => decode(JobOffer, fromHex(`${expected.slice(0, -66)}02${toHex(id)}`)), DecodeError);
  assert.throws(() => decode(JobOffer, bytes.slice(0, -1)), DecodeError);

  // JSON: the id as hex; null or absent for none.
  const j = JobOffer.toJson(withBlob) as Record<string, unknown>;
  assert.equal(j['input_blob'], toHex(id));
  assert.equal(j['input'], '');
  assert.deepEqual(JobOffer.fromJson(j), withBlob);
  const fixtureJson = (json('fixtures/job-offer.json') as { offer: Record<string, unknown> }).offer;
  assert.equal(fixtureJson['input_blob'], null, 'the Rust side writes null');
  const { input_blob: _, ...absent } = fixtureJson;
  assert.deepEqual(JobOffer.fromJson(absent), o);
  // An absent placement is anywhere, as serde's default reads it.
  const { placement: ___, ...anywhere } = absent;
  assert.deepEqual(JobOffer.fromJson(anywhere), { ...o, placement: { kind: 'anywhere' } });
  assert.throws(() => JobOffer.fromJson({ ...j, input_blob: 'ab'.repeat(31) }), /input_blob: expected 32 bytes/);

  // Signed as the Rust side signs: the blob id is signed; buildOffer's default is none.
  const { version: __, ...fields } = withBlob;
  const signed = signOffer(buildOffer(fields), clientKey);
  verifyOffer(signed);
  assert.throws(() => verifyOffer({ ...signed, offer: { ...signed.offer, input_blob: H(utf8.encode('other')) } }), /bad signature/);
  assert.equal(buildOffer({ ...fields, input_blob: undefined }).input_blob, null);
  assert.notEqual(toHex(jobId(signed)), toHex(jobId(fixture)));
  assert.equal(toHex(encode(Transaction, { kind: 'offer', ...signed })), `00${toHex(encode(SignedOffer, signed))}`);
  // The input's hash is the same inline or in a blob: the blob's id is H(bytes).
  assert.equal(toHex(inputHash(withBlob)), toHex(id));
  assert.equal(toHex(inputHash(o)), toHex(id));
  assert.equal(toHex(inputHash({ ...withBlob, input_blob: new Uint8Array(32).fill(9) })), '09'.repeat(32));
});

test('a result whose output is in a blob: one bool byte after output, not signed; verified as JobResult::verify', () => {
  const block = json('fixtures/linked/block.json') as { txs: Record<string, unknown>[] };
  const tx = Transaction.fromJson(block.txs[1]);
  assert.equal(tx.kind, 'result');
  if (tx.kind !== 'result') return;
  const { kind: _, ...inline } = tx;
  assert.equal(inline.output_in_blob, false);
  // The Rust side's bytes: claim, signature, output, then the bool (0).
  const claimHex = toHex(encode(ResultClaim, inline.claim));
  const inlineHex = `${claimHex}${toHex(inline.signature)}${le32(inline.output.length)}${toHex(inline.output)}00`;
  assert.equal(toHex(encode(JobResult, inline)), inlineHex);
  assert.ok(read('fixtures/linked/block.borsh.hex').includes(`01${inlineHex}`), "the block's bytes hold the result transaction");

  const blob: JobResult = { ...inline, output: new Uint8Array(0), output_in_blob: true };
  const blobHex = `${claimHex}${toHex(inline.signature)}${le32(0)}01`;
  assert.equal(toHex(encode(JobResult, blob)), blobHex);
  assert.deepEqual(decode(JobResult, fromHex(blobHex)), blob);
  assert.equal(toHex(encode(Transaction, { kind: 'result', ...blob })), `01${blobHex}`);
  assert.throws(() => decode(JobResult, fromHex(`${blobHex.slice(0, -2)}02`)), /bool byte 2/);
  assert.throws(() => decode(JobResult, fromHex(blobHex.slice(0, -2))), DecodeError);

  // JSON: always written; absent reads as false.
  const j = JobResult.toJson(blob) as Record<string, unknown>;
  assert.equal(j['output_in_blob'], true);
  assert.equal(j['output'], '');
  assert.deepEqual(JobResult.fromJson(j), blob);
  const { kind: __, output_in_blob: ___, ...absent } = block.txs[1]!;
  assert.deepEqual(JobResult.fromJson(absent), inline);
  assert.throws(() => JobResult.fromJson({ ...j, output_in_blob: 1 }), /expected a boolean/);

  // Verified: the signature covers the claim only, so the same signature holds; the blob form
  // has status ok and no inline output, and may stand for more than output_bytes_max.
  verifyJobResult(inline, { outputBytesMax: genesis.params.output_bytes_max });
  verifyJobResult(blob, { outputBytesMax: 0 });
  assert.throws(() => verifyJobResult({ ...blob, output: inline.output }), /status ok and no inline output/);
  assert.throws(() => verifyJobResult({ ...inline, output: new Uint8Array(0) }), /H\(output\)/);
  const trap = { ...inline.claim, status: 'trap' as const };
  const trapped: JobResult = { claim: trap, signature: signRecord(providerKey, DOMAINS.result, encode(ResultClaim, trap)), output: new Uint8Array(0), output_in_blob: true };
  assert.throws(() => verifyJobResult(trapped), /status ok and no inline output/);
  assert.throws(() => verifyJobResult({ ...blob, claim: { ...blob.claim, fuel_used: 177n } }), /bad signature/);
  const batch = { version: 1, sent_ms: 5n, results: [inline, blob] };
  assert.deepEqual(decode(ResultBatch, encode(ResultBatch, batch)), batch);
  verifyResultBatch(batch, genesis);

  // The RPC's form: sent only when true.
  const info = { provider: toHex(inline.claim.provider), status: 'ok', fuel_used: 176, output_hash: toHex(inline.claim.output_hash), output: '' };
  assert.equal(ResultInfo.fromJson(info).output_in_blob, false);
  assert.equal(ResultInfo.fromJson({ ...info, output_in_blob: true }).output_in_blob, true);
});

// ---------------------------------------------------------------------------------------------
// runJob, estimate and outputOf through blobs

test('the keys here are the linked genesis: its validators and its provider', () => {
  const set = validatorSet(genesis);
  assert.equal(set.power.size, validatorKeys.length);
  for (const k of validatorKeys) assert.ok(set.power.has(k.address));
  assert.deepEqual(genesis.providers.map((p) => toHex(p.address)), [providerKey.address]);
  assert.ok(genesis.accounts.some((a) => toHex(a.address) === clientKey.address));
});

const fixtureProof = ReceiptProof.fromJson(json('fixtures/linked/receipt-proof.json'));
const MODULE = toHex(fixtureProof.receipt.claim.module_id);

/**
 * The receipt proof of `claim`, signed by the provider, alone in a block like the fixture's at
 * height 1, and committed by three of the four validators (more than 2/3 of the power).
 */
function proofOf(claim: ResultClaim): ReceiptProof {
  const receipt: ExecutionReceipt = { version: 1, claim, provider_signature: signRecord(providerKey, DOMAINS.result, encode(ResultClaim, claim)) };
  const header = { ...fixtureProof.header, receipt_root: receiptLeaf(receipt), receipt_count: 1 };
  const hash = blockHash(header);
  const signatures = validatorKeys.slice(0, 3).map((v) => {
    const vote: Vote = { version: 1, chain_id: chain, kind: 'precommit', height: header.height, round: 0, block_hash: hash, validator: v.publicKey };
    return { validator: v.publicKey, signature: signRecord(v, DOMAINS.vote, encode(Vote, vote)) };
  });
  return { version: 1, receipt, path: { index: 0, leaf_count: 1, siblings: [] }, header, commit: { version: 1, height: header.height, round: 0, block_hash: hash, signatures } };
}

interface BlobNodeOptions {
  /** What `blob_get` answers instead of a stored blob's bytes (hex). */
  blobAnswer?: (id: string, stored: string | undefined) => string;
}

/**
 * A node of the linked chain that keeps blobs (`blob_put`, `blob_get`), admits an offer as a
 * node does (its input inline within `input_bytes_max`, or its input blob stored here), and
 * "runs" it to `output`: the provider leaves an output over `output_bytes_max` in a blob, and
 * the job is finalized with a receipt proof built by `proofOf`.
 */
function blobNode(output: Uint8Array, opts: BlobNodeOptions = {}): { node: FakeNode; blobs: Map<string, string> } {
  const node = new FakeNode();
  const blobs = new Map<string, string>();
  const proofs = new Map<string, unknown>();
  answerChainReads(node, toHex(chain), json('fixtures/linked/genesis.json'));
  node.handlers['blob_put'] = (p) => {
    const hex = (p as { bytes_hex: string }).bytes_hex;
    if (hex.length / 2 > DATA_BLOB_BYTES_MAX) throw new RpcFault(-32602, 'a blob is at most 4194304 bytes', { reason: 'invalid_params' });
    const id = toHex(H(fromHex(hex)));
    blobs.set(id, hex);
    return id;
  };
  node.handlers['blob_get'] = (p) => {
    const id = (p as { id: string }).id;
    const stored = blobs.get(id);
    if (opts.blobAnswer) return opts.blobAnswer(id, stored);
    if (stored === undefined) throw new RpcFault(-33010, 'the blob is not stored on this node and no holder sent it', { reason: 'blob_unknown' });
    return stored;
  };
  const admit = (offer: JobOffer): void => {
    if (offer.input_blob !== null && offer.input.length > 0) {
      throw new RpcFault(-33002, 'an offer with an input_blob carries no inline input', { reason: 'input_and_input_blob' });
    }
    if (offer.input.length > genesis.params.input_bytes_max) throw new RpcFault(-33002, 'input too large', { reason: 'input_too_large' });
    if (offer.input_blob !== null && !blobs.has(toHex(offer.input_blob))) {
      throw new RpcFault(-33010, 'the blob is not stored on this node and no holder sent it', { reason: 'blob_unknown' });
    }
  };
  node.handlers['job_estimate'] = (p) => {
    const { offer, job_id } = p as { offer: unknown; job_id: string };
    admit(JobOffer.fromJson(offer));
    const fields = { height: 0, status: 'ok', fuel_used: 176, fuel_limit: 1_000_000, output_size_bytes: output.length, escrow: 1_000_000, fee: 1 };
    return { job_id, ...fields, providers: [{ address: providerKey.address, price_per_fuel: 1 }], cost: 176, refund: 999_824, admissible: true, problems: [] };
  };
  node.handlers['job_submit'] = (p) => {
    const offer = SignedOffer.fromJson((p as { offer: unknown }).offer);
    verifyOffer(offer, { chainId: chain });
    admit(offer.offer);
    const id = jobId(offer);
    const outputHash = H(output);
    const inBlob = output.length > genesis.params.output_bytes_max;
    if (inBlob) blobs.set(toHex(outputHash), toHex(output));
    const claim: ResultClaim = {
      version: 1,
      job_id: id,
      module_id: offer.offer.module_id,
      input_hash: inputHash(offer.offer),
      output_hash: outputHash,
      fuel_used: 176n,
      status: 'ok',
      provider: providerKey.publicKey,
    };
    proofs.set(toHex(id), ReceiptProof.toJson(proofOf(claim)));
    const result = {
      provider: providerKey.address,
      status: 'ok',
      fuel_used: 176,
      output_hash: toHex(outputHash),
      output: inBlob ? '' : toHex(output),
      ...(inBlob ? { output_in_blob: true } : {}),
    };
    const job = toHex(id);
    setTimeout(() => {
      node.emit(job, { job_id: job, stage: 'accepted' });
      node.emit(job, { job_id: job, stage: 'executed', result });
      node.emit(job, { job_id: job, stage: 'included', result, height: 1 });
      node.emit(job, { job_id: job, stage: 'finalized', result, height: 1 });
    }, 5);
    return job;
  };
  node.handlers['job_proof'] = (p) => {
    const proof = proofs.get((p as { job_id: string }).job_id);
    if (proof === undefined) throw new RpcFault(-33001, 'unknown job', { reason: 'not_found' });
    return proof;
  };
  return { node, blobs };
}

const connect = (node: FakeNode): CairnClient => new CairnClient('ws://fake', { webSocket: node.factory, reconnect: { initialDelayMs: 2, maxDelayMs: 5 } });
const terms = { fuelLimit: 1_000_000, maxPrice: 1, deadlineBlocks: 100 };
const methods = (node: FakeNode): string[] => node.calls.map((c) => c.method);

test('runJob: an input over input_bytes_max goes into a blob, an output over output_bytes_max comes back from one; both checked', async () => {
  const input = pattern(genesis.params.input_bytes_max + 1, 7);
  const output = pattern(genesis.params.output_bytes_max * 2, 13);
  const { node } = blobNode(output);
  const c = connect(node);
  const run = await runJob(c, { module: { id: MODULE }, input, key: clientKey, terms }, { genesis });
  // The input went into a blob (once, before the offer), the offer names it and carries none inline.
  const puts = node.calls.filter((x) => x.method === 'blob_put');
  assert.equal(puts.length, 1);
  assert.equal((puts[0]!.params as { bytes_hex: string }).bytes_hex, toHex(input));
  assert.ok(methods(node).indexOf('blob_put') < methods(node).indexOf('job_submit'));
  assert.equal(run.offer.offer.input.length, 0);
  assert.equal(toHex(run.offer.offer.input_blob!), toHex(H(input)));
  assert.equal(toHex(run.proof.receipt.claim.input_hash), toHex(H(input)));
  // The output came from its blob, by the receipt's output hash.
  assert.equal(run.result.output_in_blob, true);
  assert.equal(run.result.output.length, 0);
  assert.deepEqual(run.output, output);
  assert.deepEqual(
    node.calls.filter((x) => x.method === 'blob_get').map((x) => x.params),
    [{ id: toHex(H(output)) }],
  );
  assert.ok(!methods(node).includes('chain_genesis'), "the chain's limit is the given genesis'");
  c.close();

  // Small ones stay inline: no blob either way.
  const small = blobNode(utf8.encode('HELLO'));
  const c2 = connect(small.node);
  const run2 = await runJob(c2, { module: { id: MODULE }, input: 'hello', key: clientKey, terms }, { genesis });
  assert.equal(new TextDecoder().decode(run2.output), 'HELLO');
  assert.equal(run2.offer.offer.input_blob, null);
  assert.equal(run2.result.output_in_blob, false);
  assert.ok(!methods(small.node).some((m) => m.startsWith('blob_')));
  c2.close();
});

test('runJob: an explicit inputBlob; an inline input beside it, an input over 4 MiB, a blob that is not the output, a missing blob are refused', async () => {
  const input = pattern(1_000, 3);
  const output = pattern(genesis.params.output_bytes_max + 1, 5);
  const { node } = blobNode(output);
  const c = connect(node);
  const id = await c.blobPut(input);
  assert.equal(toHex(id), toHex(H(input)));
  const run = await runJob(c, { module: { id: MODULE }, input: '', key: clientKey, terms: { ...terms, inputBlob: toHex(id) } }, { genesis });
  assert.equal(toHex(run.offer.offer.input_blob!), toHex(id));
  assert.equal(toHex(run.receipt.jobId), run.jobId);
  assert.deepEqual(run.output, output);
  assert.equal(node.calls.filter((x) => x.method === 'blob_put').length, 1, 'the test put it; runJob did not');

  await assert.rejects(
    runJob(c, { module: { id: MODULE }, input: 'x', key: clientKey, terms: { ...terms, inputBlob: id } }, { genesis }),
    /carries no inline input/,
  );
  await assert.rejects(
    runJob(c, { module: { id: MODULE }, input: new Uint8Array(DATA_BLOB_BYTES_MAX + 1), key: clientKey, terms }, { genesis }),
    /over the largest blob of 4194304 bytes/,
  );
  // A blob id the node does not hold: the node refuses the offer.
  await assert.rejects(
    runJob(c, { module: { id: MODULE }, input: '', key: clientKey, terms: { ...terms, inputBlob: 'ee'.repeat(32) } }, { genesis }),
    (e: unknown) => e instanceof CairnRpcError && e.reason === 'blob_unknown' && e.code === -33010 && /blob_put/.test(e.hint),
  );
  assert.equal(node.calls.filter((x) => x.method === 'job_submit').length, 2, 'nothing refused here was submitted');
  c.close();

  // A node that sends other bytes than the output's blob, or none.
  for (const [answer, why] of [
    [(_id: string, stored: string | undefined) => `${stored!.slice(0, -2)}${stored!.endsWith('00') ? '01' : '00'}`, (e: unknown) => e instanceof VerifyError && /does not hash/.test(e.message)],
    [() => {
      throw new RpcFault(-33010, 'the blob is not stored on this node and no holder sent it', { reason: 'blob_unknown' });
    }, (e: unknown) => e instanceof CairnRpcError && e.reason === 'blob_unknown'],
  ] as const) {
    const bad = blobNode(output, { blobAnswer: answer });
    const c2 = connect(bad.node);
    await assert.rejects(runJob(c2, { module: { id: MODULE }, input: 'hello', key: clientKey, terms }, { genesis }), why);
    c2.close();
  }
});

test('estimate: a large input is put into a blob first (the limit from chain_genesis unless a genesis is given)', async () => {
  const input = pattern(genesis.params.input_bytes_max + 10, 11);
  const { node, blobs } = blobNode(utf8.encode('HELLO'));
  const c = connect(node);
  const e = await estimate(c, { module: { id: MODULE }, input, key: clientKey, terms });
  assert.equal(e.offer.input.length, 0);
  assert.equal(toHex(e.offer.input_blob!), toHex(H(input)));
  assert.ok(blobs.has(toHex(H(input))));
  assert.deepEqual(methods(node).filter((m) => m !== 'node_info' && m !== 'chain_head' && m !== 'account_get'), ['chain_genesis', 'blob_put', 'job_estimate']);
  const before = node.calls.length;
  await estimate(c, { module: { id: MODULE }, input, key: clientKey, terms }, { genesis });
  assert.ok(!node.calls.slice(before).some((x) => x.method === 'chain_genesis'));
  // No input, nothing to place: no limit asked.
  const before2 = node.calls.length;
  await estimate(c, { module: { id: MODULE }, input: '', key: clientKey, terms });
  assert.ok(!node.calls.slice(before2).some((x) => x.method === 'chain_genesis' || x.method === 'blob_put'));
  c.close();
});

test('outputOf: inline or from its blob, checked; asked again while the node is busy', async () => {
  const output = pattern(5_000, 17);
  const hash = H(output);
  let calls = 0;
  const { node } = blobNode(output, {
    blobAnswer: () => {
      if (calls++ === 0) throw new RpcFault(-33008, 'too many blob_get calls wait at once', { reason: 'overloaded', retry_after_ms: 5 });
      return toHex(output);
    },
  });
  const c = connect(node);
  const result: ResultInfo = { provider: providerKey.publicKey, status: 'ok', fuel_used: 1n, output_hash: hash, output: new Uint8Array(0), output_in_blob: true, reason: null };
  assert.deepEqual(await outputOf(c, result), output);
  assert.equal(calls, 2);
  assert.deepEqual(await outputOf(c, { ...result, output, output_in_blob: false }), output);
  assert.equal(calls, 2, 'an inline output asks nothing');
  await assert.rejects(outputOf(c, { ...result, output: output.slice(1), output_in_blob: false }), /do not hash/);
  c.close();
});
