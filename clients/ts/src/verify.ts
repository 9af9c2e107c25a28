// Hashes, signatures, commits, blocks, receipt proofs and state proofs, checked as
// docs/PROOFS.md ("Primitives", "Identifiers and hashes", "The Merkle tree", "Verifying a
// proof"), docs/STATE.md ("Verifying a state proof", "The state tree", "Proof bytes"),
// docs/CONSENSUS.md and docs/WIRE.md ("Validation before relaying") say.
//
// Every `verify…` function throws a `VerifyError` saying what failed, and returns normally
// (possibly with what it proved) when everything holds.

import { Point } from '@noble/ed25519';
import { sha256, sha512 } from '@noble/hashes/sha2.js';

import { DecodeError, Reader, bytesEqual, compareBytes, concat, encode, option, toHex } from './borsh.ts';
import {
  Block,
  BlockHeader,
  type BlockMsg,
  Commit,
  type ConsensusMessage,
  ExecutionReceipt,
  FORMAT_VERSION,
  Genesis,
  JobOffer,
  type JobResult,
  type ModuleAnnounce,
  Proposal,
  type ProposedBlock,
  type ReceiptProof,
  ResultClaim,
  type ResultBatch,
  SignedOffer,
  type SignedTx,
  type StateProof,
  Transaction,
  Tx,
  type TxBatch,
  VALIDATORS_MAX,
  Vote,
  WIRE_VERSION,
} from './types.ts';

export class VerifyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'VerifyError';
  }
}

function check(cond: boolean, what: string): asserts cond {
  if (!cond) throw new VerifyError(what);
}

// ---------------------------------------------------------------------------------------------
// Hashes

/** H: SHA-256. */
export function H(...parts: Uint8Array[]): Uint8Array {
  return sha256(parts.length === 1 ? parts[0]! : concat(...parts));
}

const ZERO_HASH = new Uint8Array(32);

/** The chain id: `H(borsh(genesis))`, the lists in file order. */
export function chainId(genesis: Genesis): Uint8Array {
  return H(encode(Genesis, genesis));
}

/** A block's hash: `H(borsh(header))`. */
export function blockHash(header: BlockHeader): Uint8Array {
  return H(encode(BlockHeader, header));
}

/** A job's id: `H(borsh(signed offer))`, signature included, without a `Transaction` index. */
export function jobId(offer: SignedOffer): Uint8Array {
  return H(encode(SignedOffer, offer));
}

/** A transaction's hash: `H(borsh(Transaction))`, its index byte included. */
export function txHash(tx: Transaction): Uint8Array {
  return H(encode(Transaction, tx));
}

/** A transaction's Merkle leaf: `H(0x00 ‖ borsh(Transaction))`. */
export function txLeaf(tx: Transaction): Uint8Array {
  return H(Uint8Array.of(0), encode(Transaction, tx));
}

/** A receipt's Merkle leaf: `H(0x00 ‖ borsh(ExecutionReceipt))`. */
export function receiptLeaf(receipt: ExecutionReceipt): Uint8Array {
  return H(Uint8Array.of(0), encode(ExecutionReceipt, receipt));
}

/** `last_commit_hash`: `H(borsh(Option<Commit>))`. */
export function lastCommitHash(lastCommit: Commit | null): Uint8Array {
  return H(encode(option(Commit), lastCommit));
}

/** The receipt of an accepted result: `{version: 1, claim, provider_signature: signature}`. */
export function receiptOf(result: JobResult): ExecutionReceipt {
  return { version: FORMAT_VERSION, claim: result.claim, provider_signature: result.signature };
}

function inner(left: Uint8Array, right: Uint8Array): Uint8Array {
  return H(Uint8Array.of(1), left, right);
}

/**
 * The Merkle root of `leaves` (already hashed): pairs left to right, an odd last node carried
 * up unchanged; one leaf is its own root; no leaves, 32 zero bytes.
 */
export function merkleRoot(leaves: readonly Uint8Array[]): Uint8Array {
  if (leaves.length === 0) return ZERO_HASH.slice();
  let level = leaves.slice();
  while (level.length > 1) {
    const next: Uint8Array[] = [];
    for (let i = 0; i < level.length; i += 2) {
      next.push(i + 1 < level.length ? inner(level[i]!, level[i + 1]!) : level[i]!);
    }
    level = next;
  }
  return level[0]!;
}

/** The root computed from a leaf and its path; throws if the path is malformed. */
export function rootFromPath(leaf: Uint8Array, path: { index: number; leaf_count: number; siblings: Uint8Array[] }): Uint8Array {
  let i = path.index;
  let n = path.leaf_count;
  check(i < n, `path index ${i} ≥ leaf count ${n}`);
  let h = leaf;
  let s = 0;
  const next = (): Uint8Array => {
    check(s < path.siblings.length, 'path: a sibling is needed and none is left');
    return path.siblings[s++]!;
  };
  while (n > 1) {
    if (i % 2 === 1) h = inner(next(), h);
    else if (i + 1 < n) h = inner(h, next());
    i = Math.floor(i / 2);
    n = Math.floor((n + 1) / 2);
  }
  check(s === path.siblings.length, 'path: siblings remain at the end');
  return h;
}

// ---------------------------------------------------------------------------------------------
// Signatures

/** The signing domains: a signature covers `tag ‖ 0x00 ‖ borsh(record)`. */
export const DOMAINS = {
  offer: 'cairn/v1/job-offer',
  result: 'cairn/v1/job-result',
  tx: 'cairn/v1/tx',
  vote: 'cairn/v1/vote',
  proposal: 'cairn/v1/proposal',
} as const;
export type Domain = (typeof DOMAINS)[keyof typeof DOMAINS];

/** The bytes a signature in `domain` over `record` (its borsh bytes) covers. */
export function signingBytes(domain: Domain, record: Uint8Array): Uint8Array {
  return concat(new TextEncoder().encode(domain), Uint8Array.of(0), record);
}

const L = 2n ** 252n + 27742317777372353535851937790883648493n;

function leToBigint(b: Uint8Array): bigint {
  let v = 0n;
  for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]!);
  return v;
}

/**
 * ed25519 verification under the ZIP-215 rules Cairn uses (docs/PROOFS.md, "Signing domains"):
 * the public key `A` and `R` must decode to curve points, non-canonical encodings accepted;
 * `S` must be reduced; and `[8][S]B = [8]R + [8][k]A`, `k = SHA-512(R ‖ A ‖ message)`, must
 * hold (the cofactored equation).
 *
 * Under Node, a signature whose `A` and `R` are canonical encodings (and `S` reduced) is first
 * checked by Node's own Ed25519 (OpenSSL: the cofactorless equation `[S]B = R + [k]A`, ten
 * times faster); a "valid" there is final, since whatever satisfies it satisfies the
 * cofactored one. Everything else — a non-canonical encoding, or an "invalid", which the
 * cofactored equation may still accept — is decided by the code here.
 */
export function ed25519Verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (collecting !== null) {
    // A dry run of `preverified`: note what would be checked.
    collecting.push([publicKey, message, signature]);
    return true;
  }
  if (publicKey.length !== 32 || signature.length !== 64) return false;
  const fast =
    nativeEligible(publicKey, signature) &&
    (nativeVerify(publicKey, message, signature) || preverified.has(signatureId(publicKey, message, signature)));
  return fast || ed25519VerifyPortable(publicKey, message, signature);
}

/** Whether a signature may be decided by a native verifier: `S` reduced, `A` and `R` canonical. */
function nativeEligible(publicKey: Uint8Array, signature: Uint8Array): boolean {
  return (
    leToBigint(signature.subarray(32, 64)) < L && canonicalPoint(publicKey) && canonicalPoint(signature.subarray(0, 32))
  );
}

/** What [`preverify`] uses of WebCrypto's `crypto.subtle`. */
type Subtle = {
  importKey(format: 'raw', key: Uint8Array, algorithm: { name: string }, extractable: boolean, usages: string[]): Promise<unknown>;
  verify(algorithm: { name: string }, key: unknown, signature: Uint8Array, data: Uint8Array): Promise<boolean>;
};

/** Signatures the browser's WebCrypto found valid ([`preverify`]), by [`signatureId`]; at most this many. */
export const PREVERIFIED_MAX = 4096;
const preverified = new Set<string>();
/** While [`preverify`] dry-runs a check: the signatures it would verify. */
let collecting: [Uint8Array, Uint8Array, Uint8Array][] | null = null;

function signatureId(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): string {
  return toHex(sha256(concat(publicKey, signature, message)));
}

/** Forgets the signatures [`preverify`] checked (benchmarks measure a first check). */
export function clearPreverified(): void {
  preverified.clear();
}

/**
 * Checks ahead, with the platform's asynchronous WebCrypto Ed25519 (browsers have no
 * synchronous native one), the signatures `check` will verify — found by running it once with
 * every signature taken as valid — so that running `check` afterwards finds them decided. As
 * with Node's verifier, only canonical encodings are taken from WebCrypto, and only its
 * "valid"; the rest is left to the TypeScript rules. A no-op without WebCrypto Ed25519 (or
 * under Node, whose synchronous verifier is used directly).
 */
export async function preverify(check: () => unknown): Promise<void> {
  const subtle = (globalThis as { crypto?: { subtle?: Subtle } }).crypto?.subtle;
  if (subtle === undefined || nodeCrypto !== undefined) return;
  collecting = [];
  let found: [Uint8Array, Uint8Array, Uint8Array][];
  try {
    check();
  } catch {
    // The dry run only lists signatures; the real run says what fails.
  } finally {
    found = collecting;
    collecting = null;
  }
  await Promise.all(
    found.map(async ([publicKey, message, signature]) => {
      if (publicKey.length !== 32 || signature.length !== 64 || !nativeEligible(publicKey, signature)) return;
      try {
        const key = await subtle.importKey('raw', new Uint8Array(publicKey), { name: 'Ed25519' }, false, ['verify']);
        if (await subtle.verify({ name: 'Ed25519' }, key, new Uint8Array(signature), new Uint8Array(message))) {
          if (preverified.size >= PREVERIFIED_MAX) preverified.delete(preverified.values().next().value!);
          preverified.add(signatureId(publicKey, message, signature));
        }
      } catch {
        // No Ed25519 in this WebCrypto: the TypeScript rules decide.
      }
    }),
  );
}

/** [`ed25519Verify`] in TypeScript alone (what a browser runs): the ZIP-215 rules, step by step. */
export function ed25519VerifyPortable(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (publicKey.length !== 32 || signature.length !== 64) return false;
  const rBytes = signature.subarray(0, 32);
  const s = leToBigint(signature.subarray(32, 64));
  if (s >= L) return false;
  let A: Point;
  let R: Point;
  try {
    // Decoding as ZIP-215 (and curve25519-dalek's `decompress`): y taken mod p, a sign bit on
    // x = 0 accepted.
    A = Point.fromBytes(publicKey, true);
    R = Point.fromBytes(rBytes, true);
  } catch {
    return false;
  }
  const k = leToBigint(sha512(concat(rBytes, publicKey, message))) % L;
  const sB = Point.BASE.multiply(s, false);
  const kA = A.multiply(k, false);
  // [8]([S]B − [k]A − R) = 0
  return sB.subtract(kA).subtract(R).clearCofactor().is0();
}

const P = 2n ** 255n - 19n;

/**
 * Whether a point encoding is the one encoding its point has: `y < p`, and no sign bit on
 * `x = 0` (the points with `y = ±1`). Only such encodings go to the native verifier.
 */
export function canonicalPoint(encoding: Uint8Array): boolean {
  const signBit = (encoding[31]! & 0x80) !== 0;
  const y = leToBigint(encoding) & ((1n << 255n) - 1n);
  return y < P && !(signBit && (y === 1n || y === P - 1n));
}

/** Node's `crypto` module, when running under Node (≥ 22.3); `undefined` in a browser. */
type NodeCrypto = {
  createPublicKey(key: { key: Uint8Array; format: 'der'; type: 'spki' }): unknown;
  verify(algorithm: null, data: Uint8Array, key: unknown, signature: Uint8Array): boolean;
};
const nodeCrypto: NodeCrypto | undefined = (() => {
  try {
    const proc = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
    return proc?.getBuiltinModule?.('node:crypto') as NodeCrypto | undefined;
  } catch {
    return undefined;
  }
})();

/** The DER header of an Ed25519 public key (SubjectPublicKeyInfo, RFC 8410), before its 32 bytes. */
const SPKI_ED25519 = Uint8Array.of(0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00);
/** Public keys kept in Node's form, at most (validators and providers recur across proofs). */
export const NATIVE_KEYS_MAX = 1024;
const nativeKeys = new Map<string, unknown>();

/** Node's Ed25519 verification; `false` when unavailable (or it fails). */
function nativeVerify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (nodeCrypto === undefined) return false;
  try {
    const id = toHex(publicKey);
    let key = nativeKeys.get(id);
    if (key === undefined) {
      key = nodeCrypto.createPublicKey({ key: concat(SPKI_ED25519, publicKey), format: 'der', type: 'spki' });
      if (nativeKeys.size >= NATIVE_KEYS_MAX) nativeKeys.delete(nativeKeys.keys().next().value!);
      nativeKeys.set(id, key);
    }
    return nodeCrypto.verify(null, message, key, signature);
  } catch {
    return false;
  }
}

/** Checks a signature in `domain` over `record` by `signer`. */
export function verifySigned(domain: Domain, record: Uint8Array, signer: Uint8Array, signature: Uint8Array, what: string): void {
  check(ed25519Verify(signer, signingBytes(domain, record), signature), `${what}: bad signature (domain ${domain})`);
}

// ---------------------------------------------------------------------------------------------
// Transactions

export interface TxContext {
  /** This chain's id; when given, offers and account transactions must name it. */
  chainId?: Uint8Array;
  /** The chain's `output_bytes_max`; when given, results' outputs must fit it. */
  outputBytesMax?: number;
}

/** An offer: version 1, the client's signature in `cairn/v1/job-offer` (and this chain's id). */
export function verifyOffer(o: SignedOffer, ctx: TxContext = {}): void {
  check(o.offer.version === FORMAT_VERSION, `offer version ${o.offer.version}`);
  if (ctx.chainId) check(bytesEqual(o.offer.chain_id, ctx.chainId), 'offer for another chain');
  verifySigned(DOMAINS.offer, encode(JobOffer, o.offer), o.offer.client, o.signature, 'offer');
}

/** An account transaction: version 1, the sender's signature in `cairn/v1/tx`. */
export function verifyTx(t: SignedTx, ctx: TxContext = {}): void {
  check(t.tx.version === FORMAT_VERSION, `tx version ${t.tx.version}`);
  if (ctx.chainId) check(bytesEqual(t.tx.chain_id, ctx.chainId), 'transaction for another chain');
  verifySigned(DOMAINS.tx, encode(Tx, t.tx), t.tx.sender, t.signature, 'transaction');
}

/** The most bytes of a failure's reason (the output of a job whose status is not ok). */
export const FAILURE_REASON_BYTES_MAX = 1280;

/**
 * A result: `claim.version` 1; `output` within `output_bytes_max`; unless ok, UTF-8 of at most
 * 1,280 bytes; `H(output) = claim.output_hash`; the provider's signature in `cairn/v1/job-result`.
 * A result whose output is in a blob (`output_in_blob`) has status ok and an empty `output`
 * (the blob, named `claim.output_hash`, is not at hand here: only its signature is checked).
 */
export function verifyJobResult(r: JobResult, ctx: TxContext = {}): void {
  check(r.claim.version === FORMAT_VERSION, `claim version ${r.claim.version}`);
  if (r.output_in_blob) {
    check(r.output.length === 0 && r.claim.status === 'ok', 'a result whose output is in a blob has status ok and no inline output');
    verifySigned(DOMAINS.result, encode(ResultClaim, r.claim), r.claim.provider, r.signature, 'result');
    return;
  }
  if (ctx.outputBytesMax !== undefined) check(r.output.length <= ctx.outputBytesMax, 'output over output_bytes_max');
  if (r.claim.status !== 'ok') {
    check(r.output.length <= FAILURE_REASON_BYTES_MAX, 'failure reason over 1,280 bytes');
    try {
      new TextDecoder('utf-8', { fatal: true }).decode(r.output);
    } catch {
      throw new VerifyError('failure reason is not UTF-8');
    }
  }
  check(bytesEqual(H(r.output), r.claim.output_hash), 'H(output) ≠ claim.output_hash');
  verifySigned(DOMAINS.result, encode(ResultClaim, r.claim), r.claim.provider, r.signature, 'result');
}

/** Any transaction's signature (a `resolve` has none). */
export function verifyTransaction(t: Transaction, ctx: TxContext = {}): void {
  switch (t.kind) {
    case 'offer':
      return verifyOffer(t, ctx);
    case 'account':
      return verifyTx(t, ctx);
    case 'result':
      return verifyJobResult(t, ctx);
    case 'resolve':
      return;
  }
}

// ---------------------------------------------------------------------------------------------
// Validators, commits, blocks

/** The genesis validator set: powers by address, the total, and the canonical order. */
export interface ValidatorSet {
  power: Map<string, bigint>;
  total: bigint;
  /** Canonical order: power descending, then address ascending (bytewise). */
  canonical: { address: Uint8Array; power: bigint }[];
}

export function validatorSet(genesis: Genesis): ValidatorSet {
  const power = new Map<string, bigint>();
  let total = 0n;
  for (const v of genesis.validators) {
    power.set(toHex(v.address), v.power);
    total += v.power;
  }
  const canonical = genesis.validators
    .map((v) => ({ address: v.address, power: v.power }))
    .sort((a, b) => (a.power !== b.power ? (a.power > b.power ? -1 : 1) : compareBytes(a.address, b.address)));
  return { power, total, canonical };
}

/**
 * The proposer of `height` and `round` (docs/CONSENSUS.md, "Context"): at round 0 the
 * validator whose cumulative power range, in canonical order, covers `height mod total`; at
 * round r, the r-th next validator in canonical order.
 */
export function proposerOf(set: ValidatorSet, height: bigint, round: number): Uint8Array {
  const slot = height % set.total;
  let start = 0n;
  let index = 0;
  for (let i = 0; i < set.canonical.length; i++) {
    const end = start + set.canonical[i]!.power;
    if (slot >= start && slot < end) {
      index = i;
      break;
    }
    start = end;
  }
  return set.canonical[(index + round) % set.canonical.length]!.address;
}

/** What signatures of the genesis validators add up to. */
function signedPower(set: ValidatorSet, signers: Uint8Array[], what: string): bigint {
  check(signers.length <= VALIDATORS_MAX, `${what}: ${signers.length} signatures, at most ${VALIDATORS_MAX}`);
  let signed = 0n;
  for (let i = 0; i < signers.length; i++) {
    if (i > 0) check(compareBytes(signers[i - 1]!, signers[i]!) < 0, `${what}: signatures not sorted by validator without repeats`);
    const p = set.power.get(toHex(signers[i]!));
    check(p !== undefined, `${what}: signer ${toHex(signers[i]!)} is not a validator`);
    signed += p;
  }
  return signed;
}

/**
 * A commit (docs/PROOFS.md, "Verifying a proof", step 4): version 1; at most 256 signatures,
 * sorted by validator without repeats, each a genesis validator; more than 2/3 of the power;
 * then every precommit signature over
 * `Vote { 1, chain_id, precommit, commit.height, commit.round, Some(commit.block_hash), validator }`.
 */
export function verifyCommit(commit: Commit, genesis: Genesis, chain: Uint8Array = chainId(genesis)): void {
  check(commit.version === FORMAT_VERSION, `commit version ${commit.version}`);
  const set = validatorSet(genesis);
  const signed = signedPower(
    set,
    commit.signatures.map((s) => s.validator),
    'commit',
  );
  check(3n * signed > 2n * set.total, `commit: signed power ${signed} of ${set.total} is not more than 2/3`);
  for (const s of commit.signatures) {
    const vote: Vote = {
      version: FORMAT_VERSION,
      chain_id: chain,
      kind: 'precommit',
      height: commit.height,
      round: commit.round,
      block_hash: commit.block_hash,
      validator: s.validator,
    };
    verifySigned(DOMAINS.vote, encode(Vote, vote), s.validator, s.signature, `commit signature of ${toHex(s.validator)}`);
  }
}

/** A block is well formed: `tx_count`, `tx_root` and `last_commit_hash` match its body; version 1. */
export function checkBlockWellFormed(block: Block): void {
  const h = block.header;
  check(h.version === FORMAT_VERSION, `header version ${h.version}`);
  check(h.tx_count === block.txs.length, `tx_count ${h.tx_count} ≠ ${block.txs.length} transactions`);
  check(bytesEqual(h.tx_root, merkleRoot(block.txs.map(txLeaf))), 'tx_root does not match the transactions');
  check(bytesEqual(h.last_commit_hash, lastCommitHash(block.last_commit)), 'last_commit_hash does not match last_commit');
}

/** `commit` finalizes `header` (steps 2–4 of "Verifying a proof"). */
export function verifyHeaderCommit(header: BlockHeader, commit: Commit, genesis: Genesis, chain: Uint8Array = chainId(genesis)): void {
  check(bytesEqual(header.chain_id, chain), 'header for another chain');
  check(commit.height === header.height, `commit height ${commit.height} ≠ header height ${header.height}`);
  check(bytesEqual(commit.block_hash, blockHash(header)), 'commit.block_hash ≠ H(borsh(header))');
  verifyCommit(commit, genesis, chain);
}

export interface BlockCheckOptions {
  /** Also verify every transaction's signature (default true). */
  transactions?: boolean;
}

/**
 * A finalized block with its commit: the commit finalizes the header, the block is well
 * formed, its `last_commit` (if any) is a valid commit of height − 1, and (by default) every
 * transaction's signature verifies.
 */
export function verifyFinalizedBlock(block: Block, commit: Commit, genesis: Genesis, opts: BlockCheckOptions = {}): void {
  const chain = chainId(genesis);
  verifyHeaderCommit(block.header, commit, genesis, chain);
  checkBlockWellFormed(block);
  if (block.header.height > 1n) {
    check(block.last_commit !== null, 'no last_commit after height 1');
    check(block.last_commit.height === block.header.height - 1n, 'last_commit is not of the parent height');
    check(bytesEqual(block.last_commit.block_hash, block.header.parent_hash), 'last_commit is not of the parent');
    verifyCommit(block.last_commit, genesis, chain);
  } else {
    check(block.last_commit === null, 'a last_commit at height 1');
    check(bytesEqual(block.header.parent_hash, ZERO_HASH), 'parent_hash at height 1 is not zero');
  }
  if (opts.transactions ?? true) {
    const ctx = { chainId: chain, outputBytesMax: genesis.params.output_bytes_max };
    block.txs.forEach((t, i) => {
      try {
        verifyTransaction(t, ctx);
      } catch (e) {
        throw new VerifyError(`transaction ${i} (${t.kind}): ${(e as Error).message}`);
      }
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Receipt proofs

/** What a verified receipt proof shows. */
export interface VerifiedReceipt {
  jobId: Uint8Array;
  height: bigint;
  blockHash: Uint8Array;
}

/** docs/PROOFS.md, "Verifying a proof", steps 1–6. */
export function verifyReceiptProof(p: ReceiptProof, genesis: Genesis): VerifiedReceipt {
  check(p.version === FORMAT_VERSION, `proof version ${p.version}`);
  check(p.receipt.version === FORMAT_VERSION, `receipt version ${p.receipt.version}`);
  check(p.receipt.claim.version === FORMAT_VERSION, `claim version ${p.receipt.claim.version}`);
  check(p.header.version === FORMAT_VERSION, `header version ${p.header.version}`);
  verifyHeaderCommit(p.header, p.commit, genesis);
  const claim = p.receipt.claim;
  verifySigned(DOMAINS.result, encode(ResultClaim, claim), claim.provider, p.receipt.provider_signature, 'receipt');
  check(p.path.leaf_count === p.header.receipt_count, 'path.leaf_count ≠ header.receipt_count');
  const root = rootFromPath(receiptLeaf(p.receipt), p.path);
  check(bytesEqual(root, p.header.receipt_root), 'the receipt is not under header.receipt_root');
  return { jobId: claim.job_id, height: p.header.height, blockHash: p.commit.block_hash };
}

/**
 * [`verifyReceiptProof`], its signatures checked first by the platform's WebCrypto where it
 * has Ed25519 ([`preverify`]: browsers); the same verdicts, faster in a page.
 */
export async function verifyReceiptProofAsync(p: ReceiptProof, genesis: Genesis): Promise<VerifiedReceipt> {
  await preverify(() => verifyReceiptProof(p, genesis));
  return verifyReceiptProof(p, genesis);
}

// ---------------------------------------------------------------------------------------------
// State proofs (the binary sparse Merkle tree of docs/STATE.md)

/** The placeholder of an empty subtree: the ASCII of `SPARSE_MERKLE_PLACEHOLDER_HASH__`. */
export const SPARSE_MERKLE_PLACEHOLDER = new TextEncoder().encode('SPARSE_MERKLE_PLACEHOLDER_HASH__');
const LEAF_PREFIX = new TextEncoder().encode('JMT::LeafNode');
const INTERNAL_PREFIX = new TextEncoder().encode('JMT::IntrnalNode');
/** The most bytes of a state proof's `proof`. */
export const STATE_PROOF_BYTES_MAX = 16384;

export function jmtLeaf(keyHash: Uint8Array, valueHash: Uint8Array): Uint8Array {
  return H(LEAF_PREFIX, keyHash, valueHash);
}

export function jmtInternal(left: Uint8Array, right: Uint8Array): Uint8Array {
  return H(INTERNAL_PREFIX, left, right);
}

export type JmtSibling =
  | { kind: 'empty' }
  | { kind: 'internal'; left: Uint8Array; right: Uint8Array }
  | { kind: 'leaf'; keyHash: Uint8Array; valueHash: Uint8Array };

export interface JmtProof {
  leaf: { keyHash: Uint8Array; valueHash: Uint8Array } | null;
  /** The lowest first: the leaf's (or empty position's) own sibling first, the root's child last. */
  siblings: JmtSibling[];
}

/** Decodes `proof` bytes ("Proof bytes"): exactly, at most 256 siblings. */
export function decodeJmtProof(bytes: Uint8Array): JmtProof {
  const r = new Reader(bytes);
  const leaf = r.option((r2) => ({ keyHash: r2.fixed(32), valueHash: r2.fixed(32) }));
  const n = r.u32();
  if (n > 256) throw new DecodeError(`${n} siblings, at most 256`);
  const siblings: JmtSibling[] = [];
  for (let i = 0; i < n; i++) {
    const tag = r.u8();
    if (tag === 0) siblings.push({ kind: 'empty' });
    else if (tag === 1) siblings.push({ kind: 'internal', left: r.fixed(32), right: r.fixed(32) });
    else if (tag === 2) siblings.push({ kind: 'leaf', keyHash: r.fixed(32), valueHash: r.fixed(32) });
    else throw new DecodeError(`sibling tag ${tag}`);
  }
  r.end();
  return { leaf, siblings };
}

function siblingHash(s: JmtSibling): Uint8Array {
  switch (s.kind) {
    case 'empty':
      return SPARSE_MERKLE_PLACEHOLDER;
    case 'internal':
      return jmtInternal(s.left, s.right);
    case 'leaf':
      return jmtLeaf(s.keyHash, s.valueHash);
  }
}

/** Bit `d` of a key hash, the most significant bit of the first byte first. */
function bit(k: Uint8Array, d: number): number {
  return (k[d >> 3]! >> (7 - (d & 7))) & 1;
}

/**
 * The root a tree proof leads to from `key` and `value` (null: absent), after checking the leaf
 * against the claim ("The proof's check", steps 1–3).
 */
export function jmtRoot(key: Uint8Array, value: Uint8Array | null, proofBytes: Uint8Array): Uint8Array {
  check(proofBytes.length <= STATE_PROOF_BYTES_MAX, `proof of ${proofBytes.length} bytes, at most ${STATE_PROOF_BYTES_MAX}`);
  let proof: JmtProof;
  try {
    proof = decodeJmtProof(proofBytes);
  } catch (e) {
    throw new VerifyError(`proof does not decode: ${(e as Error).message}`);
  }
  const kh = H(key);
  const n = proof.siblings.length;
  if (value !== null) {
    check(proof.leaf !== null, 'inclusion: no leaf');
    check(bytesEqual(proof.leaf.keyHash, kh), 'inclusion: the leaf is another key');
    check(bytesEqual(proof.leaf.valueHash, H(value)), 'inclusion: the leaf holds another value');
  } else if (proof.leaf !== null) {
    check(!bytesEqual(proof.leaf.keyHash, kh), 'absence: the leaf is the key');
    for (let d = 0; d < n; d++) check(bit(proof.leaf.keyHash, d) === bit(kh, d), 'absence: the leaf is not where the key would be');
  }
  let h = proof.leaf ? jmtLeaf(proof.leaf.keyHash, proof.leaf.valueHash) : SPARSE_MERKLE_PLACEHOLDER;
  for (let i = 0; i < n; i++) {
    const s = siblingHash(proof.siblings[i]!);
    const d = n - 1 - i;
    h = bit(kh, d) === 1 ? jmtInternal(s, h) : jmtInternal(h, s);
  }
  return h;
}

/** What a verified state proof shows: `value` (null: absent) under `key` after `height`. */
export interface VerifiedState {
  key: Uint8Array;
  value: Uint8Array | null;
  height: bigint;
  stateRoot: Uint8Array;
}

/** docs/STATE.md, "Verifying a state proof". */
export function verifyStateProof(p: StateProof, genesis: Genesis): VerifiedState {
  check(p.version === FORMAT_VERSION, `state proof version ${p.version}`);
  verifyHeaderCommit(p.header, p.commit, genesis);
  const root = jmtRoot(p.key, p.value, p.proof);
  check(bytesEqual(root, p.header.state_root), 'the proof does not lead to header.state_root');
  return { key: p.key, value: p.value, height: p.header.height, stateRoot: p.header.state_root };
}

// ---------------------------------------------------------------------------------------------
// Consensus messages

/**
 * A consensus message (docs/CONSENSUS.md "Checking a message once", docs/WIRE.md "consensus"):
 * versions and chain; the signer a validator (a proposal's, this round's proposer); a
 * certificate's signers validators with enough power (more than 2/3 for a polka or a precommit
 * round certificate, which holds only precommits; more than 1/3 for a skip); then every signature.
 */
export function verifyConsensusMessage(m: ConsensusMessage, genesis: Genesis, chain: Uint8Array = chainId(genesis)): void {
  const set = validatorSet(genesis);
  switch (m.kind) {
    case 'vote': {
      check(m.vote.version === FORMAT_VERSION, `vote version ${m.vote.version}`);
      check(bytesEqual(m.vote.chain_id, chain), 'vote for another chain');
      check(set.power.has(toHex(m.vote.validator)), 'voter is not a validator');
      verifySigned(DOMAINS.vote, encode(Vote, m.vote), m.vote.validator, m.signature, 'vote');
      return;
    }
    case 'proposal': {
      const p = m.proposal;
      check(p.version === FORMAT_VERSION, `proposal version ${p.version}`);
      check(bytesEqual(p.chain_id, chain), 'proposal for another chain');
      const expected = proposerOf(set, p.height, p.round);
      check(
        bytesEqual(p.proposer, expected),
        `proposer ${toHex(p.proposer)} is not the proposer of height ${p.height} round ${p.round} (${toHex(expected)})`,
      );
      verifySigned(DOMAINS.proposal, encode(Proposal, p), p.proposer, m.signature, 'proposal');
      return;
    }
    case 'polka_certificate': {
      const signed = signedPower(
        set,
        m.signatures.map((s) => s.validator),
        'polka certificate',
      );
      check(3n * signed > 2n * set.total, 'polka certificate: not more than 2/3 of the power');
      for (const s of m.signatures) {
        const vote: Vote = {
          version: FORMAT_VERSION,
          chain_id: chain,
          kind: 'prevote',
          height: m.height,
          round: m.round,
          block_hash: m.block_hash,
          validator: s.validator,
        };
        verifySigned(DOMAINS.vote, encode(Vote, vote), s.validator, s.signature, 'polka certificate');
      }
      return;
    }
    case 'round_certificate': {
      const signed = signedPower(
        set,
        m.votes.map((v) => v.validator),
        'round certificate',
      );
      const precommit = m.cert_kind === 'precommit';
      if (precommit) {
        check(
          m.votes.every((v) => v.kind === 'precommit'),
          'precommit round certificate holds a prevote',
        );
        check(3n * signed > 2n * set.total, 'precommit round certificate: not more than 2/3 of the power');
      } else {
        check(3n * signed > set.total, 'skip round certificate: not more than 1/3 of the power');
      }
      for (const v of m.votes) {
        const vote: Vote = {
          version: FORMAT_VERSION,
          chain_id: chain,
          kind: v.kind,
          height: m.height,
          round: m.round,
          block_hash: v.block_hash,
          validator: v.validator,
        };
        verifySigned(DOMAINS.vote, encode(Vote, vote), v.validator, v.signature, 'round certificate');
      }
      return;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Gossip envelopes: what docs/WIRE.md's "reject" rows check, and the signatures inside

/** `TxBatch` on `txs`: version 1, at most 1,000 offers and account transactions, each signed. */
export function verifyTxBatch(b: TxBatch, genesis: Genesis): void {
  check(b.version === WIRE_VERSION, `TxBatch version ${b.version}`);
  check(b.txs.length <= 1000, `${b.txs.length} transactions, at most 1,000`);
  const chain = chainId(genesis);
  b.txs.forEach((t, i) => {
    check(t.kind === 'offer' || t.kind === 'account', `transaction ${i} is a ${t.kind}`);
    try {
      verifyTransaction(t, { chainId: chain });
    } catch (e) {
      throw new VerifyError(`transaction ${i} (${t.kind}): ${(e as Error).message}`);
    }
  });
}

/** `ResultBatch` on `results`: version 1, at most 1,000 results, each verified. */
export function verifyResultBatch(b: ResultBatch, genesis: Genesis): void {
  check(b.version === WIRE_VERSION, `ResultBatch version ${b.version}`);
  check(b.results.length <= 1000, `${b.results.length} results, at most 1,000`);
  b.results.forEach((r, i) => {
    try {
      verifyJobResult(r, { outputBytesMax: genesis.params.output_bytes_max });
    } catch (e) {
      throw new VerifyError(`result ${i}: ${(e as Error).message}`);
    }
  });
}

/** `BlockMsg` on `blocks`: version 1, a finalized block and its commit. */
export function verifyBlockMsg(m: BlockMsg, genesis: Genesis, opts: BlockCheckOptions = {}): void {
  check(m.version === WIRE_VERSION, `BlockMsg version ${m.version}`);
  verifyFinalizedBlock(m.block, m.commit, genesis, opts);
}

/**
 * `ProposedBlock` on `proposals`: version 1, this chain, its proposer a validator, well formed.
 * Not signed as a whole: a verified proposal naming `H(borsh(header))` vouches for it.
 */
export function verifyProposedBlock(m: ProposedBlock, genesis: Genesis): void {
  check(m.version === WIRE_VERSION, `ProposedBlock version ${m.version}`);
  const chain = chainId(genesis);
  check(bytesEqual(m.block.header.chain_id, chain), 'proposed block for another chain');
  check(validatorSet(genesis).power.has(toHex(m.block.header.proposer)), 'proposed block by a non-validator');
  checkBlockWellFormed(m.block);
}

/** `ModuleAnnounce` on `modules`: version 1 (the module itself is `H(wasm)` = `module_id`). */
export function verifyModuleAnnounce(m: ModuleAnnounce): void {
  check(m.version === WIRE_VERSION, `ModuleAnnounce version ${m.version}`);
}
