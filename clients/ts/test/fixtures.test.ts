// Every test vector of docs/fixtures and docs/fixtures/linked, and the worked examples of
// docs/WIRE.md, docs/PROOFS.md and docs/STATE.md: decoded, re-encoded byte for byte, compared
// with their JSON form, and verified; tampered copies must not verify.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

import {
  Account,
  Block,
  type Codec,
  Commit,
  ConsensusData,
  Genesis,
  Job,
  ModuleAnnounce,
  ReceiptProof,
  SignedOffer,
  StateProof,
  SyncRequestPayload,
  SyncResponsePayload,
  Transaction,
  blockHash,
  chainId,
  decode,
  encode,
  fromHex,
  jobId,
  jobKey,
  messageId,
  consensusData,
  splitConsensusData,
  parseJson,
  peerIdBytes,
  publicKeyOfPeerId,
  receiptLeaf,
  stringifyJson,
  toHex,
  topic,
  txHash,
  txLeaf,
  verifyBlockMsg,
  verifyConsensusMessage,
  verifyFinalizedBlock,
  verifyOffer,
  verifyReceiptProof,
  verifyReceiptProofAsync,
  verifyStateProof,
  verifyTransaction,
} from '../src/index.ts';

const docs = new URL('../../../docs/', import.meta.url);
const read = (path: string): string => readFileSync(new URL(path, docs), 'utf8');
const json = (path: string): unknown => parseJson(read(path));
const hex = (path: string): Uint8Array => fromHex(read(path).trim());

/** Decodes the `.borsh.hex` of a fixture, re-encodes it, and checks its `.json` both ways. */
function roundTrip<T>(c: Codec<T>, base: string): T {
  const bytes = hex(`${base}.borsh.hex`);
  const value = decode(c, bytes);
  assert.equal(toHex(encode(c, value)), toHex(bytes), `${base}: re-encoded bytes`);
  const j = json(`${base}.json`);
  assert.deepEqual(parseJson(stringifyJson(c.toJson(value))), j, `${base}: JSON form of the decoded bytes`);
  assert.equal(toHex(encode(c, c.fromJson(j))), toHex(bytes), `${base}: borsh of the JSON`);
  return value;
}

const genesis = Genesis.fromJson(json('fixtures/genesis.json'));
const linkedGenesis = Genesis.fromJson(json('fixtures/linked/genesis.json'));

/** Flips one bit of the byte at `at` of a copy of `b`. */
function flip(b: Uint8Array, at = 5): Uint8Array {
  const c = b.slice();
  c[at] = c[at]! ^ 1;
  return c;
}

test('chain ids of the fixture genesis files', () => {
  assert.equal(toHex(chainId(genesis)), 'a4ce9efca52dbced2865aea085a73b479e9cc64598e517f323bd50a3d6ee7390');
  assert.equal(toHex(chainId(linkedGenesis)), '5b44e746d5abaa1bf75353fbe93b48763b571846d9eba7955d3c4aac2fb2d743');
  assert.deepEqual(parseJson(stringifyJson(Genesis.toJson(genesis))), json('fixtures/genesis.json'));
});

test('job-offer: decodes, re-encodes, verifies, has the documented job id', () => {
  const offer = roundTrip(SignedOffer, 'fixtures/job-offer');
  verifyOffer(offer);
  assert.equal(toHex(jobId(offer)), 'bcbf80f624810eee7c8dd5f6f3bad01a8a9088c63ef7d3669b198f671bac753d');
  assert.throws(() => verifyOffer({ ...offer, signature: flip(offer.signature) }), /bad signature/);
  assert.throws(() => verifyOffer({ ...offer, offer: { ...offer.offer, fee: offer.offer.fee + 1n } }), /bad signature/);
});

test('receipt-proof: decodes, re-encodes, verifies against fixtures/genesis.json', async () => {
  const proof = roundTrip(ReceiptProof, 'fixtures/receipt-proof');
  verifyReceiptProof(proof, genesis);
  assert.throws(() => verifyReceiptProof(proof, linkedGenesis), /another chain/);
  const tampered: [string, (p: ReceiptProof) => ReceiptProof][] = [
    ['fuel', (p) => ({ ...p, receipt: { ...p.receipt, claim: { ...p.receipt.claim, fuel_used: p.receipt.claim.fuel_used + 1n } } })],
    ['path', (p) => ({ ...p, path: { ...p.path, siblings: [...p.path.siblings, new Uint8Array(32)] } })],
    ['leaf count', (p) => ({ ...p, path: { ...p.path, leaf_count: p.path.leaf_count + 1 } })],
    ['state root', (p) => ({ ...p, header: { ...p.header, state_root: new Uint8Array(32) } })],
    ['commit round', (p) => ({ ...p, commit: { ...p.commit, round: p.commit.round + 1 } })],
    [
      'commit signature',
      (p) => ({
        ...p,
        commit: { ...p.commit, signatures: p.commit.signatures.map((s, i) => (i === 0 ? { ...s, signature: flip(s.signature) } : s)) },
      }),
    ],
    ['commit without a signer', (p) => ({ ...p, commit: { ...p.commit, signatures: p.commit.signatures.slice(1) } })],
    ['commit order', (p) => ({ ...p, commit: { ...p.commit, signatures: [...p.commit.signatures].reverse() } })],
  ];
  for (const [what, t] of tampered) assert.throws(() => verifyReceiptProof(t(proof), genesis), `tampered ${what}`);
  // The asynchronous form (signatures checked ahead where WebCrypto has Ed25519) gives the same verdicts.
  assert.deepEqual(await verifyReceiptProofAsync(proof, genesis), verifyReceiptProof(proof, genesis));
  for (const [what, t] of tampered) await assert.rejects(verifyReceiptProofAsync(t(proof), genesis), `tampered ${what}`);
});

test('linked fixtures: offer, block, commit, receipt proof and state proof of one job', () => {
  const offer = roundTrip(SignedOffer, 'fixtures/linked/offer');
  const block = roundTrip(Block, 'fixtures/linked/block');
  const commit = roundTrip(Commit, 'fixtures/linked/commit');
  const receipt = roundTrip(ReceiptProof, 'fixtures/linked/receipt-proof');
  const state = roundTrip(StateProof, 'fixtures/linked/state-proof');
  const chain = chainId(linkedGenesis);

  verifyOffer(offer, { chainId: chain });
  for (const tx of block.txs) verifyTransaction(tx, { chainId: chain });
  verifyFinalizedBlock(block, commit, linkedGenesis);
  verifyBlockMsg({ version: 1, block, commit }, linkedGenesis);
  assert.throws(() => verifyFinalizedBlock(block, commit, genesis), /another chain/);
  assert.equal(toHex(commit.block_hash), toHex(blockHash(block.header)));

  // The block holds the offer and its result; the receipt proof proves that result.
  const id = jobId(offer);
  assert.equal(block.txs[0]!.kind, 'offer');
  assert.equal(toHex(encode(Transaction, block.txs[0]!)), toHex(encode(Transaction, { kind: 'offer', ...offer })));
  const result = block.txs[1]!;
  assert.equal(result.kind, 'result');
  const verified = verifyReceiptProof(receipt, linkedGenesis);
  assert.equal(toHex(verified.jobId), toHex(id));
  assert.equal(toHex(encode(Block.fields.header, receipt.header)), toHex(encode(Block.fields.header, block.header)));
  if (result.kind === 'result') {
    assert.equal(toHex(receiptLeaf({ version: 1, claim: result.claim, provider_signature: result.signature })), toHex(block.header.receipt_root));
  }

  // The state proof proves the job's entry after block 1.
  const s = verifyStateProof(state, linkedGenesis);
  assert.equal(s.height, 1n);
  assert.equal(toHex(state.key), toHex(jobKey(id)));
  const job = decode(Job, s.value!);
  assert.equal(toHex(job.client), toHex(offer.offer.client));
  assert.equal(toHex(job.module_id), toHex(offer.offer.module_id));
  assert.equal(job.fuel_limit, offer.offer.fuel_limit);
  assert.equal(job.slots.length, 1);
  assert.equal(job.slots[0]!.delivery?.outcome.fuel_used, receipt.receipt.claim.fuel_used);
  assert.throws(() => verifyStateProof({ ...state, value: flip(state.value!, 40) }, linkedGenesis), /another value/);
  assert.throws(() => verifyStateProof({ ...state, value: null }, linkedGenesis), /absence/);
  assert.throws(() => verifyStateProof({ ...state, proof: flip(state.proof, 70) }, linkedGenesis));
  assert.throws(() => verifyStateProof({ ...state, proof: Uint8Array.of(...state.proof, 0) }, linkedGenesis), /decode/);
});

test('PROOFS.md worked example: an account transaction', () => {
  const doc = read('PROOFS.md');
  const section = doc.slice(doc.indexOf('### Worked example: an account transaction'));
  const block = section.slice(section.indexOf('```\n') + 4, section.indexOf('```', section.indexOf('```\n') + 4));
  const bytes = fromHex(
    block
      .split('\n')
      .filter((l) => l.trim())
      .map((l) => l.trim().split(/\s+/)[0])
      .join(''),
  );
  const tx = decode(Transaction, bytes);
  assert.equal(tx.kind, 'account');
  verifyTransaction(tx, { chainId: chainId(genesis) });
  assert.equal(toHex(txHash(tx)), '74f46e05ed539c4e0ca1c406349d953928c450f51a0531454db3dfd8c5cadeea');
  assert.equal(toHex(txLeaf(tx)), '9cb885abff5c9155bbaef3cdf5dbc75eff04bfd7b06aa5ad75943d0ad93eba82');
  // Its JSON form, as the page shows it.
  const j = section.slice(section.indexOf('```json\n') + 8, section.indexOf('```', section.indexOf('```json\n') + 8));
  assert.equal(toHex(encode(Transaction, Transaction.fromJson(parseJson(j)))), toHex(bytes));
});

test('STATE.md worked example: a proof of inclusion and two of absence', () => {
  const doc = read('STATE.md');
  const section = doc.slice(doc.indexOf('### Worked example'));
  const start = section.indexOf('```json\n') + 8;
  const proof = StateProof.fromJson(parseJson(section.slice(start, section.indexOf('```', start))));
  const v = verifyStateProof(proof, genesis);
  assert.equal(toHex(v.value!), '05000000000000000000000000000000');
  const account = decode(Account, v.value!);
  assert.deepEqual(account, { balance: 5n, nonce: 0n });
  const absent = [...section.matchAll(/^absent (\w+)\nproof {2}(\w+)$/gm)];
  assert.equal(absent.length, 2);
  for (const [, key, bytes] of absent) {
    const p = { ...proof, key: fromHex(key!), value: null, proof: fromHex(bytes!) };
    assert.equal(verifyStateProof(p, genesis).value, null);
    // The same proof does not prove any value for that key.
    assert.throws(() => verifyStateProof({ ...p, value: Uint8Array.of(0) }, genesis));
  }
});

/** The values of WIRE.md's worked example: each name's bytes, its lines' first words joined. */
function wireExample(): Map<string, string> {
  const doc = read('WIRE.md');
  const section = doc.slice(doc.indexOf('## Worked example'));
  const text = section.slice(section.indexOf('```text\n') + 8, section.indexOf('```', section.indexOf('```text\n') + 8));
  const values = new Map<string, string>();
  let name = '';
  for (const line of text.split('\n')) {
    const m = /^(\S.*?)\s+=\s+(\S+)/.exec(line);
    if (m) {
      name = m[1]!;
      values.set(name, m[2]!);
    } else if (/^\s+\S/.test(line) && name) {
      values.set(name, values.get(name)! + line.trim().split(/\s+/)[0]);
    } else {
      name = '';
    }
  }
  return values;
}

test('WIRE.md worked example: topics, an announcement, a vote, message ids, sync payloads', () => {
  const v = wireExample();
  const chain = chainId(genesis);
  assert.equal(toHex(chain), v.get('chain id'));
  assert.equal(topic(chain, 'modules'), v.get('topic modules'));
  assert.equal(topic(chain, 'consensus'), v.get('topic consensus'));

  const announce = fromHex(v.get('announce data')!);
  const a = decode(ModuleAnnounce, announce);
  assert.equal(toHex(a.module_id), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  assert.equal(toHex(messageId({ topic: topic(chain, 'modules'), data: announce })), v.get('announce message id'));

  // On the consensus topic: the consensus message, then its send number (u64 LE).
  const voteData = fromHex(v.get('vote data')!);
  const { message: voteBytes, send } = splitConsensusData(voteData);
  assert.equal(send, 1767225600000000000n);
  assert.equal(toHex(consensusData(voteBytes, send)), toHex(voteData));
  const vote = decode(ConsensusData, voteBytes);
  assert.equal(vote.kind, 'vote');
  verifyConsensusMessage(vote, genesis);
  assert.equal(toHex(encode(ConsensusData, vote)), toHex(voteBytes));
  assert.equal(voteBytes.length, 145);
  if (vote.kind === 'vote') {
    // A validator's peer id inlines its key.
    assert.equal(toHex(publicKeyOfPeerId(peerIdBytes(vote.vote.validator))!), toHex(vote.vote.validator));
    // A changed round is another vote: its signature no longer verifies.
    assert.throws(() => verifyConsensusMessage({ ...vote, vote: { ...vote.vote, round: 1 } }, genesis), /bad signature/);
  }
  assert.equal(toHex(messageId({ topic: topic(chain, 'consensus'), data: voteData })), v.get('vote message id'));
  assert.throws(() => splitConsensusData(voteData.subarray(0, 7)), /shorter than its send number/);

  const request = fromHex(v.get('sync request stream')!);
  assert.equal(request[0], 0x40 + request.length - 1, 'a CBOR byte string head');
  assert.deepEqual(decode(SyncRequestPayload, request.subarray(1)), { kind: 'blocks', from: 1n, max: 32 });
  const response = fromHex(v.get('sync response stream')!);
  assert.deepEqual(decode(SyncResponsePayload, response.subarray(1)), { kind: 'blob', bytes: null });

  // State sync (WIRE.md, SyncRequest tags 3 and 4, SyncResponse tags 4 and 5).
  assert.deepEqual(encode(SyncRequestPayload, { kind: 'snapshot' }), Uint8Array.of(1, 3));
  const chunkRequest = encode(SyncRequestPayload, { kind: 'state_chunk', height: 7n, start: new Uint8Array(32).fill(9), max: 2048 });
  assert.deepEqual(chunkRequest, Uint8Array.of(1, 4, 7, 0, 0, 0, 0, 0, 0, 0, ...new Uint8Array(32).fill(9), 0, 8, 0, 0));
  assert.deepEqual(decode(SyncResponsePayload, Uint8Array.of(1, 4, 0)), { kind: 'snapshot', head: null });
  assert.deepEqual(decode(SyncResponsePayload, Uint8Array.of(1, 5, 0)), { kind: 'state_chunk', chunk: null });
  const chunk = Uint8Array.of(1, 5, 1, 1, 0, 0, 0, 1, 0, 0, 0, 0xaa, 2, 0, 0, 0, 0xbb, 0xcc, 0, 0, 0, 0, 1);
  assert.deepEqual(decode(SyncResponsePayload, chunk), {
    kind: 'state_chunk',
    chunk: { entries: [{ key: Uint8Array.of(0xaa), value: Uint8Array.of(0xbb, 0xcc) }], proof: new Uint8Array(0), last: true },
  });
});

test('decoders refuse what the docs say they refuse', () => {
  const offer = hex('fixtures/job-offer.borsh.hex');
  assert.throws(() => decode(SignedOffer, Uint8Array.of(...offer, 0)), /trailing/);
  assert.throws(() => decode(SignedOffer, offer.subarray(0, offer.length - 1)), /unexpected end/);
  assert.throws(() => decode(Transaction, Uint8Array.of(4, ...new Uint8Array(32))), /unknown index/);
  const block = hex('fixtures/linked/block.borsh.hex');
  const badOption = block.slice();
  badOption[badOption.length - 1] = 2; // last_commit: None → 2
  assert.throws(() => decode(Block, badOption), /option byte/);
  assert.throws(() => SignedOffer.fromJson({ ...(json('fixtures/job-offer.json') as object), extra: 1 }), /unknown field/);
  const upper = read('fixtures/job-offer.json').replace('8a88e3dd', '8A88E3DD');
  assert.throws(() => SignedOffer.fromJson(parseJson(upper)), /hex/);
});

test('u64 values past 2^53 keep every digit through JSON', () => {
  const offer = SignedOffer.fromJson(json('fixtures/job-offer.json'));
  const big = { ...offer, offer: { ...offer.offer, max_price: 0xffffffffffffffffn, fee: 2n ** 53n + 1n } };
  const text = stringifyJson(SignedOffer.toJson(big));
  assert.match(text, /"max_price":18446744073709551615/);
  const back = SignedOffer.fromJson(parseJson(text));
  assert.equal(back.offer.max_price, 0xffffffffffffffffn);
  assert.equal(back.offer.fee, 2n ** 53n + 1n);
  assert.equal(toHex(encode(SignedOffer, back)), toHex(encode(SignedOffer, big)));
});
