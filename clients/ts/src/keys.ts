// Ed25519 keys as Cairn uses them (docs/PROOFS.md, "Key files" and "Signing domains"): a key is
// a 32-byte RFC 8032 secret seed and its 32-byte public key, which is also the account's address.
// Key files are the JSON `{"version": 1, "secret_key": <hex>, "public_key": <hex>}` that
// `cairn keys new` writes and every node and command reads.
//
// Nothing here touches the file system: `parseKeyFile` and `keyFileJson` work on text (reading
// and writing files on Node is in `@cairn/client/node`).

import * as ed from '@noble/ed25519';
import { sha512 } from '@noble/hashes/sha2.js';

import { DecodeError, bytesEqual, fromHex, toHex } from './borsh.ts';
import { type Domain, signingBytes } from './verify.ts';

// @noble/ed25519's synchronous API needs a SHA-512: the one this package already uses.
if (!ed.hashes.sha512) ed.hashes.sha512 = sha512;

/** An ed25519 key pair. */
export interface Key {
  /** The 32-byte secret seed (RFC 8032's private key, not the 64-byte expanded key). */
  readonly seed: Uint8Array;
  /** The 32-byte public key: the account's address. */
  readonly publicKey: Uint8Array;
  /** The public key as 64 lowercase hex digits, as the RPC and the explorer show addresses. */
  readonly address: string;
}

/** The key of a 32-byte seed. */
export function keyFromSeed(seed: Uint8Array): Key {
  if (!(seed instanceof Uint8Array) || seed.length !== 32) throw new RangeError('an ed25519 seed is 32 bytes');
  const s = seed.slice();
  const publicKey = ed.getPublicKey(s);
  return Object.freeze({ seed: s, publicKey, address: toHex(publicKey) });
}

/** A new key from the platform's secure random generator (`crypto.getRandomValues`). */
export function generateKey(): Key {
  const c = (globalThis as { crypto?: { getRandomValues(b: Uint8Array): Uint8Array } }).crypto;
  if (!c?.getRandomValues) throw new Error('no crypto.getRandomValues on this platform: cannot generate a key');
  return keyFromSeed(c.getRandomValues(new Uint8Array(32)));
}

/** `KEY_FILE_VERSION`: the `version` of a key file. */
export const KEY_FILE_VERSION = 1;

/**
 * Reads a key file's text as a node does: exactly `version` (1), `secret_key` and `public_key`
 * (64 lowercase hex digits each), and the public key must be the seed's. Throws `DecodeError`.
 */
export function parseKeyFile(text: string): Key {
  let j: unknown;
  try {
    j = JSON.parse(text);
  } catch (e) {
    throw new DecodeError(`key file: not JSON (${(e as Error).message})`);
  }
  if (typeof j !== 'object' || j === null || Array.isArray(j)) throw new DecodeError('key file: expected a JSON object');
  const o = j as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (!['version', 'secret_key', 'public_key'].includes(k)) throw new DecodeError(`key file: unknown field ${k}`);
  }
  for (const k of ['version', 'secret_key', 'public_key']) {
    if (!(k in o)) throw new DecodeError(`key file: missing field ${k}`);
  }
  if (o['version'] !== KEY_FILE_VERSION) throw new DecodeError(`key file: unsupported version ${JSON.stringify(o['version'])}`);
  const hex32 = (name: string): Uint8Array => {
    const v = o[name];
    const b = fromHex(typeof v === 'string' ? v : '?');
    if (b.length !== 32) throw new DecodeError(`key file: ${name} must be 32 bytes`);
    return b;
  };
  const key = keyFromSeed(hex32('secret_key'));
  if (!bytesEqual(key.publicKey, hex32('public_key'))) throw new DecodeError('key file: public_key does not match secret_key');
  return key;
}

/** A key file's text, as `cairn keys new` writes it: two-space indentation, no trailing newline. */
export function keyFileJson(key: Key): string {
  return JSON.stringify({ version: KEY_FILE_VERSION, secret_key: toHex(key.seed), public_key: key.address }, null, 2);
}

/** Signs `record` (its borsh bytes) in `domain`: ed25519 over `domain ‖ 0x00 ‖ record`. */
export function signRecord(key: Key, domain: Domain, record: Uint8Array): Uint8Array {
  return ed.sign(signingBytes(domain, record), key.seed);
}
