// What a peer needs beside the payloads to take part in Cairn's gossip (docs/WIRE.md): topic
// names, gossipsub message ids, the send number after a consensus message, and peer ids of
// ed25519 keys. Gossip is not signed (libp2p's `StrictNoSign`): every payload carries its own
// signatures.

import { bytesEqual, concat, toHex } from './borsh.ts';
import { H } from './verify.ts';

/** The six topic names, in docs/WIRE.md's order. */
export const TOPIC_NAMES = ['txs', 'results', 'blocks', 'modules', 'consensus', 'proposals'] as const;
export type TopicName = (typeof TOPIC_NAMES)[number];

/** `/cairn/<chain>/<name>/2`, `<chain>` the hex of the chain id's first 8 bytes. */
export function topic(chainId: Uint8Array, name: TopicName): string {
  return `/cairn/${toHex(chainId.subarray(0, 8))}/${name}/2`;
}

/** Every topic of the chain, by name. */
export function topics(chainId: Uint8Array): Record<TopicName, string> {
  const out = {} as Record<TopicName, string>;
  for (const n of TOPIC_NAMES) out[n] = topic(chainId, n);
  return out;
}

/** The name of one of this chain's topics, or null. */
export function topicName(chainId: Uint8Array, t: string): TopicName | null {
  for (const n of TOPIC_NAMES) if (topic(chainId, n) === t) return n;
  return null;
}

function u64be(v: bigint): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, v, false);
  return b;
}

/**
 * A gossip message's id (`p2p::message_id`), on every topic: `H(len(topic) u64 BE ‖ topic ‖ data)`.
 */
export function messageId(msg: { topic: string; data: Uint8Array }): Uint8Array {
  const t = new TextEncoder().encode(msg.topic);
  return H(concat(u64be(BigInt(t.length)), t, msg.data));
}

/** The bytes after a consensus message on the consensus topic: its publisher's send number. */
export const CONSENSUS_SEND_BYTES = 8;

/**
 * The `data` of a gossip message on the consensus topic (`p2p::consensus_data`): the consensus
 * message's bytes, then `send`, a u64 little-endian that the publisher changes with every
 * message, so that a validator's re-sends of its votes are new gossip messages.
 */
export function consensusData(message: Uint8Array, send: bigint): Uint8Array {
  const b = new Uint8Array(CONSENSUS_SEND_BYTES);
  new DataView(b.buffer).setBigUint64(0, BigInt.asUintN(64, send), true);
  return concat(message, b);
}

/** The consensus message and send number of a consensus topic's `data`; throws if it is shorter than the send number. */
export function splitConsensusData(data: Uint8Array): { message: Uint8Array; send: bigint } {
  const at = data.length - CONSENSUS_SEND_BYTES;
  if (at < 0) throw new Error(`consensus data of ${data.length} bytes, shorter than its send number`);
  const send = new DataView(data.buffer, data.byteOffset + at, CONSENSUS_SEND_BYTES).getBigUint64(0, true);
  return { message: data.subarray(0, at), send };
}

const PEER_ID_PREFIX = Uint8Array.of(0x00, 0x24, 0x08, 0x01, 0x12, 0x20);

/** The peer id bytes of an ed25519 public key: `00 24 08 01 12 20 ‖ key` (38 bytes). */
export function peerIdBytes(publicKey: Uint8Array): Uint8Array {
  return concat(PEER_ID_PREFIX, publicKey);
}

/** The ed25519 key inlined in a peer id, or null if it is not an ed25519 identity peer id. */
export function publicKeyOfPeerId(peerId: Uint8Array): Uint8Array | null {
  if (peerId.length !== 38 || !bytesEqual(peerId.subarray(0, 6), PEER_ID_PREFIX)) return null;
  return peerId.slice(6);
}

const BASE58 = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz';

/** base58btc, the text form of a peer id (`12D3KooW…`). */
export function base58btc(b: Uint8Array): string {
  let n = 0n;
  for (const x of b) n = (n << 8n) | BigInt(x);
  let s = '';
  while (n > 0n) {
    s = BASE58[Number(n % 58n)] + s;
    n /= 58n;
  }
  for (const x of b) {
    if (x !== 0) break;
    s = '1' + s;
  }
  return s;
}
