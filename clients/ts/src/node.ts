// Node-only helpers (file system): key files read and written as `cairn keys new` does. Import
// from `@cairn/client/node`; everything else in the package also runs in browsers.

import { readFile, writeFile } from 'node:fs/promises';

import { type Key, keyFileJson, parseKeyFile } from './keys.ts';

/** Reads a key file (docs/PROOFS.md, "Key files"): a node's `node-key.json`, a client's key. */
export async function loadKeyFile(path: string): Promise<Key> {
  return parseKeyFile(await readFile(path, 'utf8'));
}

/** Writes `key` to a new file as Cairn does: mode 0600, never over an existing file. */
export async function saveKeyFile(path: string, key: Key): Promise<void> {
  await writeFile(path, keyFileJson(key), { mode: 0o600, flag: 'wx' });
}
