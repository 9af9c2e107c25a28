// What a peer needs beside the payloads to take part in Cairn's gossip (docs/WIRE.md): topic
// names, gossipsub message ids, peer ids of ed25519 keys, and the libp2p pubsub signature of a
// message's author.

import { bytesEqual, concat, toHex } from './borsh.ts';
import { H, ed25519Verify } from './verify.ts';

/** The six topic names, in docs/WIRE.md's order. */
export const TOPIC_NAMES = ['txs', 'results', 'blocks', 'modules', 'consensus', 'proposals'] as const;
export type TopicName = (typeof TOPIC_NAMES)[number];

/** `/cairn/<chain>/<name>/1`, `<chain>` the hex of the chain id's first 8 bytes. */
export function topic(chainId: Uint8Array, name: TopicName): string {
  return `/cairn/${toHex(chainId.subarray(0, 8))}/${name}/1`;
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
 * A gossip message's id (`p2p::message_id`): on this chain's consensus topic
 * `H(seqno u64 BE ‖ len(source) u64 BE ‖ source ‖ data)`, `source` the author's peer id bytes;
 * on every other topic `H(len(topic) u64 BE ‖ topic ‖ data)`.
 */
export function messageId(chainId: Uint8Array, msg: { topic: string; data: Uint8Array; seqno?: bigint | null; from?: Uint8Array | null }): Uint8Array {
  if (msg.topic === topic(chainId, 'consensus')) {
    const from = msg.from ?? new Uint8Array(0);
    return H(concat(u64be(msg.seqno ?? 0n), u64be(BigInt(from.length)), from, msg.data));
  }
  const t = new TextEncoder().encode(msg.topic);
  return H(concat(u64be(BigInt(t.length)), t, msg.data));
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

function varint(n: number): Uint8Array {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return Uint8Array.from(out);
}

function field(number: number, value: Uint8Array): Uint8Array {
  return concat(varint((number << 3) | 2), varint(value.length), value);
}

/**
 * What the author of a gossip message signs: `"libp2p-pubsub:" ‖ protobuf(Message)` with `from`
 * (1), `data` (2), `seqno` (3), `topic` (4), without `signature` (5) and `key` (6).
 */
export function pubsubSigningBytes(msg: { from: Uint8Array; data: Uint8Array; seqno: Uint8Array; topic: string }): Uint8Array {
  return concat(
    new TextEncoder().encode('libp2p-pubsub:'),
    field(1, msg.from),
    field(2, msg.data),
    field(3, msg.seqno),
    field(4, new TextEncoder().encode(msg.topic)),
  );
}

/** The author's signature of a gossip message, with the ed25519 key inlined in `from`. */
export function verifyPubsubSignature(msg: { from: Uint8Array; data: Uint8Array; seqno: Uint8Array; topic: string; signature: Uint8Array }): boolean {
  const key = publicKeyOfPeerId(msg.from);
  return key !== null && ed25519Verify(key, pubsubSigningBytes(msg), msg.signature);
}

/** The seqno's 8 bytes (u64 big-endian). */
export function seqnoBytes(seqno: bigint): Uint8Array {
  return u64be(seqno);
}
