// Keys and signing, byte for byte against the Rust side: the key file of docs/PROOFS.md, the
// signed offers of docs/fixtures (`job-offer`) and docs/fixtures/linked (`offer`), the worked
// transfer of PROOFS.md, and every `Action` variant laid out as PROOFS.md's table says, each
// signature also checked against Node's own ed25519 (OpenSSL), an implementation independent of
// @noble/ed25519.

import assert from 'node:assert/strict';
import { createPrivateKey, sign as nodeSign } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

import { Point } from '@noble/ed25519';
import { sha512 } from '@noble/hashes/sha2.js';

import {
  type Action,
  DOMAINS,
  Genesis,
  JobOffer,
  SignedOffer,
  SignedTx,
  Transaction,
  Tx,
  actions,
  buildOffer,
  buildTx,
  bytesEqual,
  canonicalPoint,
  chainId,
  concat,
  decode,
  ed25519Verify,
  ed25519VerifyPortable,
  encode,
  fromHex,
  generateKey,
  jobId,
  keyFileJson,
  keyFromSeed,
  offerJobId,
  parseJson,
  parseKeyFile,
  signOffer,
  signTx,
  signedTxHash,
  signingBytes,
  stringifyJson,
  toHex,
  txLeaf,
  verifyOffer,
  verifyTx,
} from '../src/index.ts';
import { loadKeyFile, saveKeyFile } from '../src/node.ts';

const docs = new URL('../../../docs/', import.meta.url);
const read = (path: string): string => readFileSync(new URL(path, docs), 'utf8');

const seed1 = new Uint8Array(32).fill(1);
const key1 = keyFromSeed(seed1);

/** Node's (OpenSSL's) ed25519 signature of `msg` with `seed`. */
function opensslSign(seed: Uint8Array, msg: Uint8Array): Uint8Array {
  const key = keyFromSeed(seed);
  const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64url');
  const k = createPrivateKey({ key: { kty: 'OKP', crv: 'Ed25519', d: b64(seed), x: b64(key.publicKey) }, format: 'jwk' });
  return new Uint8Array(nodeSign(null, msg, k));
}

test('the key file of docs/PROOFS.md: read, written, refused when wrong', () => {
  const doc = read('PROOFS.md');
  const example = /### Key files[\s\S]*?```json\n([\s\S]*?)\n```/.exec(doc)?.[1];
  assert.ok(example, 'PROOFS.md has a key file example');
  const key = parseKeyFile(example);
  assert.equal(toHex(key.seed), '01'.repeat(32));
  assert.equal(key.address, '8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c');
  assert.equal(keyFileJson(key), example, 'written as Cairn writes it: two spaces, no trailing newline');

  const good = JSON.parse(example) as Record<string, unknown>;
  const refused = (o: unknown, why: RegExp): void => assert.throws(() => parseKeyFile(JSON.stringify(o)), why);
  refused({ ...good, extra: 1 }, /unknown field extra/);
  refused({ version: 1, secret_key: good['secret_key'] }, /missing field public_key/);
  refused({ ...good, version: 2 }, /unsupported version/);
  refused({ ...good, public_key: (good['public_key'] as string).toUpperCase() }, /hex/);
  refused({ ...good, public_key: `0x${good['public_key'] as string}`.slice(0, 64) }, /hex/);
  refused({ ...good, public_key: keyFromSeed(new Uint8Array(32).fill(2)).address }, /does not match/);
  assert.throws(() => parseKeyFile('not json'), /not JSON/);
});

test('keys: generated keys differ and survive a key file on disk (mode 0600, never overwritten)', async () => {
  const a = generateKey();
  const b = generateKey();
  assert.notEqual(a.address, b.address);
  assert.equal(keyFromSeed(a.seed).address, a.address);
  const dir = mkdtempSync(join(tmpdir(), 'cairn-key-'));
  try {
    const path = join(dir, 'key.json');
    await saveKeyFile(path, a);
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.equal((await loadKeyFile(path)).address, a.address);
    await assert.rejects(saveKeyFile(path, b), /EEXIST/);
    assert.equal((await loadKeyFile(path)).address, a.address);
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test('offers signed here are the fixtures byte for byte: signature and job id', () => {
  for (const [base, id] of [
    ['fixtures/job-offer', 'bcbf80f624810eee7c8dd5f6f3bad01a8a9088c63ef7d3669b198f671bac753d'],
    ['fixtures/linked/offer', null],
  ] as const) {
    const fixture = SignedOffer.fromJson(parseJson(read(`${base}.json`)));
    const { version, ...fields } = fixture.offer;
    assert.equal(version, 1);
    const signed = signOffer(buildOffer(fields), key1);
    assert.equal(toHex(encode(SignedOffer, signed)), read(`${base}.borsh.hex`).trim(), `${base}: the signed offer's bytes`);
    assert.equal(toHex(signed.signature), toHex(fixture.signature), `${base}: signature`);
    assert.equal(toHex(offerJobId(fixture.offer, key1)), toHex(jobId(fixture)), `${base}: job id`);
    if (id) assert.equal(toHex(jobId(signed)), id);
    const msg = signingBytes(DOMAINS.offer, encode(JobOffer, signed.offer));
    assert.equal(toHex(opensslSign(seed1, msg)), toHex(signed.signature), `${base}: OpenSSL agrees`);
    verifyOffer(signed);
  }
  // The linked offer is the one block 1 of the linked chain holds.
  const block = parseJson(read('fixtures/linked/block.json')) as { txs: unknown[] };
  const inBlock = Transaction.fromJson(block.txs[0]);
  assert.equal(inBlock.kind, 'offer');
  const linked = SignedOffer.fromJson(parseJson(read('fixtures/linked/offer.json')));
  assert.deepEqual(inBlock.kind === 'offer' && toHex(inBlock.signature), toHex(linked.signature));
  assert.throws(() => signOffer({ ...linked.offer, client: keyFromSeed(new Uint8Array(32).fill(2)).publicKey }, key1), /client/);
});

test("the worked transfer of docs/PROOFS.md: bytes, signature, hash and leaf", () => {
  const genesis = Genesis.fromJson(parseJson(read('fixtures/genesis.json')));
  const tx = buildTx({
    chain_id: chainId(genesis),
    sender: key1.publicKey,
    nonce: 1n,
    fee: 1n,
    action: actions.transfer(fromHex('8139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8fc9b394'), 5n),
  });
  const signed = signTx(tx, key1);
  // The example's lines, in order.
  const lines = /Worked example: an account transaction[\s\S]*?```\n([\s\S]*?)```/.exec(read('PROOFS.md'))?.[1];
  assert.ok(lines);
  const bytes = lines
    .trim()
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0]!)
    .join('');
  const asTransaction = encode(Transaction, { kind: 'account', ...signed });
  assert.equal(toHex(asTransaction), bytes);
  assert.equal(toHex(signed.signature), '2ad765d7eee7d2a02599888957ee36a65dc15214a775ea5b686cbade4da6297d1863f72d5e3f324da4b07cbbfa485ac0e37a8f28625f919e9720b001ee2be806');
  assert.equal(toHex(signedTxHash(signed)), '74f46e05ed539c4e0ca1c406349d953928c450f51a0531454db3dfd8c5cadeea');
  assert.equal(toHex(txLeaf({ kind: 'account', ...signed })), '9cb885abff5c9155bbaef3cdf5dbc75eff04bfd7b06aa5ad75943d0ad93eba82');
  // And its JSON form, as tx_submit takes it.
  const json = /The worked\s+example above, as a block's transaction:\n\n```json\n([\s\S]*?)\n```/.exec(read('PROOFS.md'))?.[1];
  assert.ok(json);
  const { kind, ...inner } = parseJson(json) as Record<string, unknown>;
  assert.equal(kind, 'account');
  assert.deepEqual(parseJson(JSON.stringify(SignedTx.toJson(signed))), inner);
});

test('every Action variant: laid out as PROOFS.md says, signed in cairn/v1/tx, verified, OpenSSL agrees', () => {
  const seed = new Uint8Array(32).fill(7);
  const key = keyFromSeed(seed);
  const chain = new Uint8Array(32).fill(0xc4);
  const job = new Uint8Array(32).fill(0x3e);
  const to = new Uint8Array(32).fill(0x81);
  const le64 = (v: bigint): string => {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, v, true);
    return toHex(b);
  };
  const le32 = (v: number): string => {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, v, true);
    return toHex(b);
  };
  const cases: [Action, string][] = [
    [actions.transfer(to, 5n), `00${toHex(to)}${le64(5n)}`],
    [actions.registerProvider(2_000n, 3n, 10), `01${le64(2_000n)}${le64(3n)}${le32(10)}${le32(0)}`],
    [actions.registerProvider(2_000n, 3n, 10, 'eu'), `01${le64(2_000n)}${le64(3n)}${le32(10)}${le32(2)}6575`],
    [actions.updatePrice(4n), `02${le64(4n)}`],
    [actions.unbond(2n ** 63n + 1n), `03${le64(2n ** 63n + 1n)}`],
    [actions.challenge(job, 100n), `04${toHex(job)}${le64(100n)}`],
    [actions.updateRegion('ap-1'), `05${le32(4)}${toHex(new TextEncoder().encode('ap-1'))}`],
  ];
  for (const [action, actionHex] of cases) {
    const tx = buildTx({ chain_id: chain, sender: key.publicKey, nonce: 9n, fee: 2n, action });
    const body = `01${toHex(chain)}${key.address}${le64(9n)}${le64(2n)}${actionHex}`;
    assert.equal(toHex(encode(Tx, tx)), body, `${action.kind}: the Tx's bytes`);
    const signed = signTx(tx, key);
    assert.equal(toHex(opensslSign(seed, signingBytes('cairn/v1/tx', encode(Tx, tx)))), toHex(signed.signature), `${action.kind}: OpenSSL agrees`);
    verifyTx(signed, { chainId: chain });
    assert.deepEqual(decode(SignedTx, encode(SignedTx, signed)), signed);
    assert.equal(toHex(encode(Transaction, { kind: 'account', ...signed })), `02${body}${toHex(signed.signature)}`);
    // The JSON form tx_submit takes, round trip.
    assert.deepEqual(SignedTx.fromJson(parseJson(stringifyJson(SignedTx.toJson(signed)))), signed);
    const tampered = { ...signed, tx: { ...tx, fee: 3n } };
    assert.throws(() => verifyTx(tampered), /bad signature/);
  }
  assert.throws(() => signTx(buildTx({ chain_id: chain, sender: to, nonce: 0n, fee: 1n, action: actions.unbond(1n) }), key), /sender/);
});

test('ed25519: the native fast path and the portable ZIP-215 rules give the same verdicts', () => {
  const key = keyFromSeed(new Uint8Array(32).fill(7));
  const p = 2n ** 255n - 19n;
  const le = (v: bigint): Uint8Array => Uint8Array.from({ length: 32 }, (_, i) => Number((v >> BigInt(8 * i)) & 0xffn));
  for (let i = 0; i < 200; i++) {
    const msg = new TextEncoder().encode(`message ${i}`);
    const sig = opensslSign(new Uint8Array(32).fill(7), msg);
    const cases: [Uint8Array, Uint8Array, Uint8Array][] = [[key.publicKey, msg, sig]];
    const flipped = sig.slice();
    flipped[i % 64]! ^= 1 << (i % 8);
    cases.push([key.publicKey, msg, flipped]);
    cases.push([key.publicKey, new TextEncoder().encode(`other ${i}`), sig]);
    const otherKey = key.publicKey.slice();
    otherKey[i % 32]! ^= 1;
    cases.push([otherKey, msg, sig]);
    for (const [a, m, s] of cases) {
      assert.equal(ed25519Verify(a, m, s), ed25519VerifyPortable(a, m, s), `case ${i}`);
    }
    assert.ok(ed25519Verify(key.publicKey, msg, sig));
  }
  // Encodings that are not their point's only one never reach the native path.
  assert.ok(canonicalPoint(key.publicKey));
  assert.ok(!canonicalPoint(le(p)), 'y = p');
  assert.ok(!canonicalPoint(le(p + 1n)), 'y = p + 1 (reads as 1)');
  const signedOne = le(1n);
  signedOne[31]! |= 0x80;
  assert.ok(canonicalPoint(le(1n)) && !canonicalPoint(signedOne), 'x = 0 with a sign bit');
});

test('ed25519: the cofactored equation and non-canonical encodings, as the node verifies (ZIP-215)', () => {
  // A key of order 8, R the identity (canonical, and read from y = p + 1), S = 0: the
  // cofactored equation holds for every message; the cofactorless one (OpenSSL's) for few.
  // The same vectors are pinned in ledger/src/keys.rs.
  const order8 = fromHex('c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a');
  const p = 2n ** 255n - 19n;
  const le = (v: bigint): Uint8Array => Uint8Array.from({ length: 32 }, (_, i) => Number((v >> BigInt(8 * i)) & 0xffn));
  let cofactorlessRefused = 0;
  for (let m = 0; m < 16; m++) {
    const msg = new TextEncoder().encode(`message ${m}`);
    for (const r of [le(1n), le(p + 1n)]) {
      const sig = concat(r, new Uint8Array(32));
      assert.ok(ed25519VerifyPortable(order8, msg, sig), `message ${m}`);
      assert.ok(ed25519Verify(order8, msg, sig), `message ${m}, native path first`);
    }
    const sB = Point.BASE.multiply(0n, false);
    const k = BigInt(`0x${toHex(sha512(concat(le(1n), order8, msg)).reverse())}`) % (2n ** 252n + 27742317777372353535851937790883648493n);
    if (!bytesEqual(sB.subtract(Point.fromBytes(order8, true).multiply(k, false)).toBytes(), le(1n))) cofactorlessRefused++;
  }
  assert.ok(cofactorlessRefused > 0, 'the rules differ from the cofactorless ones');
  // S unreduced, R off the curve (y = 2): refused.
  const unreduced = concat(le(1n), new Uint8Array(32).fill(0xff));
  assert.ok(!ed25519VerifyPortable(order8, new Uint8Array(), unreduced));
  assert.ok(!ed25519VerifyPortable(order8, new Uint8Array(), concat(le(2n), new Uint8Array(32))));
  assert.ok(!ed25519VerifyPortable(le(2n), new Uint8Array(), concat(le(1n), new Uint8Array(32))));
});
