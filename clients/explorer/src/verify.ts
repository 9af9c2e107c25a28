// Checks a job's receipt proofs in the browser with the TypeScript client's verifier
// (docs/PROOFS.md, "Verifying a proof"): the commit against the genesis validators, the
// provider's signature, the Merkle path to the block's receipt root. The genesis is the node's
// (`chain_genesis`) unless the user loads a genesis.json of their own: trusting the node for
// the genesis would let a lying node vouch for its own proofs.

import {
  Genesis,
  H,
  type ReceiptProof,
  type ResultInfo,
  bytesEqual,
  chainId,
  parseJson,
  toHex,
  validatorSet,
  verifyReceiptProofAsync,
} from '../../ts/src/index.ts';

/** The largest genesis.json a user may load (a genesis holds at most a few thousand entries). */
export const GENESIS_FILE_BYTES_MAX = 4 * 1024 * 1024;

/** A genesis and where it came from. */
export interface GenesisSource {
  genesis: Genesis;
  chainId: string;
  /** `the node's chain_genesis` or the file's name. */
  from: string;
}

/** Reads a genesis.json the user picked; throws with what is wrong. */
export async function genesisFromFile(file: File): Promise<GenesisSource> {
  if (file.size > GENESIS_FILE_BYTES_MAX) throw new Error(`${file.name} is ${file.size} bytes; a genesis.json is at most ${GENESIS_FILE_BYTES_MAX}`);
  let genesis: Genesis;
  try {
    genesis = Genesis.fromJson(parseJson(await file.text()));
  } catch (e) {
    throw new Error(`${file.name} is not a genesis.json: ${(e as Error).message}`);
  }
  return { genesis, chainId: toHex(chainId(genesis)), from: `the file ${file.name}` };
}

/**
 * The output a receipt of `provider` is checked against: the node's result's output when it is
 * that provider's and inline; when the result left it in a blob, the blob's bytes once fetched
 * (`fetched`, already checked against `output_hash`), else none (`null`: not checked, since an
 * empty inline `output` is not the output).
 */
export function outputToCheck(result: ResultInfo | null, provider: Uint8Array, fetched: Uint8Array | null): Uint8Array | null {
  if (!result || !bytesEqual(result.provider, provider)) return null;
  return result.output_in_blob ? fetched : result.output;
}

/** One proof's outcome. */
export type ProofOutcome =
  | { ok: true; provider: string; height: bigint; signers: number; validators: number; signedPower: bigint; totalPower: bigint; outputMatches: boolean | null }
  | { ok: false; provider: string; error: string };

/**
 * Verifies one receipt proof of `jobId` against `genesis`: `verifyReceiptProof` (its signatures
 * checked ahead by the browser's WebCrypto, `verifyReceiptProofAsync`), then that the
 * receipt is this job's, and (when the output is known) that its `output_hash` is H(output).
 */
export async function verifyOne(proof: ReceiptProof, jobId: string, genesis: Genesis, output: Uint8Array | null): Promise<ProofOutcome> {
  const provider = toHex(proof.receipt.claim.provider);
  try {
    const v = await verifyReceiptProofAsync(proof, genesis);
    if (toHex(v.jobId) !== jobId) throw new Error(`the proof is of job ${toHex(v.jobId)}, not of ${jobId}`);
    const set = validatorSet(genesis);
    let signedPower = 0n;
    for (const s of proof.commit.signatures) signedPower += set.power.get(toHex(s.validator)) ?? 0n;
    const outputMatches = output === null ? null : bytesEqual(H(output), proof.receipt.claim.output_hash);
    if (outputMatches === false) throw new Error('the receipt verified, but the output this node shows does not hash to its output_hash');
    return {
      ok: true,
      provider,
      height: v.height,
      signers: proof.commit.signatures.length,
      validators: genesis.validators.length,
      signedPower,
      totalPower: set.total,
      outputMatches,
    };
  } catch (e) {
    const err = e as Error;
    return { ok: false, provider, error: `${err.name}: ${err.message}` };
  }
}
