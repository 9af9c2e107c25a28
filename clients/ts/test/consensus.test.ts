// Consensus messages built and signed here with the keys of docs/fixtures/genesis.json's
// validators (seeds 0x0a…0x0d, the first of which docs/WIRE.md's worked example names), then
// checked as docs/CONSENSUS.md and docs/WIRE.md say a node checks them.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

import * as ed from '@noble/ed25519';
import { sha512 } from '@noble/hashes/sha2.js';

import {
  ConsensusData,
  type ConsensusMessage,
  Genesis,
  Proposal,
  Vote,
  type VoteKind,
  chainId,
  compareBytes,
  decode,
  encode,
  parseJson,
  proposerOf,
  signingBytes,
  toHex,
  validatorSet,
  verifyConsensusMessage,
} from '../src/index.ts';

ed.hashes.sha512 = sha512;

const genesis = Genesis.fromJson(parseJson(readFileSync(new URL('../../../docs/fixtures/genesis.json', import.meta.url), 'utf8')));
const chain = chainId(genesis);
const keys = [10, 11, 12, 13]
  .map((b) => {
    const seed = new Uint8Array(32).fill(b);
    return { seed, address: ed.getPublicKey(seed) };
  })
  .sort((a, b) => compareBytes(a.address, b.address));
const blockHash = new Uint8Array(32).fill(7);

test('the seeds are the genesis validators', () => {
  const set = validatorSet(genesis);
  for (const k of keys) assert.ok(set.power.has(toHex(k.address)));
});

function vote(k: (typeof keys)[number], kind: VoteKind, hash: Uint8Array | null, height = 5n, round = 2): { vote: Vote; signature: Uint8Array } {
  const v: Vote = { version: 1, chain_id: chain, kind, height, round, block_hash: hash, validator: k.address };
  return { vote: v, signature: ed.sign(signingBytes('cairn/v1/vote', encode(Vote, v)), k.seed) };
}

/** Encodes and decodes the message as it travels, then verifies it. */
function check(m: ConsensusMessage): void {
  const data = encode(ConsensusData, m);
  assert.equal(data[0], 1, 'MESSAGE_VERSION first');
  verifyConsensusMessage(decode(ConsensusData, data), genesis);
}

test('polka certificates: more than 2/3 of the power, sorted, every signature', () => {
  const sigs = (n: number) =>
    keys.slice(0, n).map((k) => ({ validator: k.address, signature: vote(k, 'prevote', blockHash).signature }));
  check({ kind: 'polka_certificate', height: 5n, round: 2, block_hash: blockHash, signatures: sigs(3) });
  assert.throws(() => check({ kind: 'polka_certificate', height: 5n, round: 2, block_hash: blockHash, signatures: sigs(2) }), /2\/3/);
  assert.throws(() => check({ kind: 'polka_certificate', height: 5n, round: 3, block_hash: blockHash, signatures: sigs(3) }), /bad signature/);
  // Another order does not decode.
  const unsorted = encode(ConsensusData, { kind: 'polka_certificate', height: 5n, round: 2, block_hash: blockHash, signatures: sigs(3).reverse() });
  assert.throws(() => decode(ConsensusData, unsorted), /sorted/);
});

test('round certificates: skip above 1/3, precommit above 2/3 and only precommits', () => {
  const votes = (kinds: VoteKind[]) =>
    kinds.map((kind, i) => {
      const k = keys[i]!;
      const hash = i === 0 ? null : blockHash;
      return { kind, block_hash: hash, validator: k.address, signature: vote(k, kind, hash).signature };
    });
  check({ kind: 'round_certificate', height: 5n, round: 2, cert_kind: 'skip', votes: votes(['prevote', 'precommit']) });
  assert.throws(() => check({ kind: 'round_certificate', height: 5n, round: 2, cert_kind: 'skip', votes: votes(['prevote']) }), /1\/3/);
  check({ kind: 'round_certificate', height: 5n, round: 2, cert_kind: 'precommit', votes: votes(['precommit', 'precommit', 'precommit']) });
  assert.throws(
    () => check({ kind: 'round_certificate', height: 5n, round: 2, cert_kind: 'precommit', votes: votes(['precommit', 'prevote', 'precommit']) }),
    /prevote/,
  );
});

test('proposals: only the round’s proposer, in domain cairn/v1/proposal', () => {
  const set = validatorSet(genesis);
  for (const [height, round] of [
    [1n, 0],
    [12n, 0],
    [12n, 3],
    [39n, 1],
  ] as const) {
    const proposer = proposerOf(set, height, round);
    const p: Proposal = { version: 1, chain_id: chain, height, round, block_hash: blockHash, pol_round: null, proposer };
    const k = keys.find((x) => toHex(x.address) === toHex(proposer))!;
    check({ kind: 'proposal', proposal: p, signature: ed.sign(signingBytes('cairn/v1/proposal', encode(Proposal, p)), k.seed) });
    const other = keys.find((x) => toHex(x.address) !== toHex(proposer))!;
    const q = { ...p, proposer: other.address };
    const signed = ed.sign(signingBytes('cairn/v1/proposal', encode(Proposal, q)), other.seed);
    assert.throws(() => check({ kind: 'proposal', proposal: q, signature: signed }), /not the proposer/);
  }
  // Equal powers: heights 1–9 fall in the first validator's slot (0–9), in canonical order.
  assert.equal(toHex(proposerOf(set, 1n, 0)), toHex(set.canonical[0]!.address));
  assert.equal(toHex(proposerOf(set, 10n, 0)), toHex(set.canonical[1]!.address));
  assert.equal(toHex(proposerOf(set, 10n, 3)), toHex(set.canonical[0]!.address));
});

test('votes: signed by a validator of this chain', () => {
  check({ kind: 'vote', ...vote(keys[0]!, 'precommit', blockHash) });
  const stranger = new Uint8Array(32).fill(99);
  const v: Vote = { version: 1, chain_id: chain, kind: 'prevote', height: 1n, round: 0, block_hash: null, validator: ed.getPublicKey(stranger) };
  const s = ed.sign(signingBytes('cairn/v1/vote', encode(Vote, v)), stranger);
  assert.throws(() => check({ kind: 'vote', vote: v, signature: s }), /not a validator/);
  const other = { ...vote(keys[1]!, 'prevote', null) };
  assert.throws(() => check({ kind: 'vote', vote: { ...other.vote, chain_id: new Uint8Array(32) }, signature: other.signature }), /another chain/);
});
