// A minimal borsh reader and writer, and codecs built from them, as docs/PROOFS.md
// ("Primitives") and docs/WIRE.md ("Conventions") describe borsh: `u8` one byte; `u32`, `u64`
// little-endian; 32- and 64-byte values raw; `Vec<T>` and `String` a `u32` count then the items;
// `Option<T>` 0x00, or 0x01 then T; `bool` 0x00 or 0x01; an enum one `u8` index then the
// variant's fields; a struct its fields in order. No padding. A decoder refuses trailing bytes,
// an unknown index, an `Option` or `bool` byte other than 0 or 1, and a `String` that is not
// UTF-8.
//
// Each codec also maps a value to and from the JSON form of docs/PROOFS.md ("JSON form"):
// bytes as lowercase hex without `0x`, integers as numbers, records as objects with exactly
// their fields (an unknown one is refused, and a missing one unless it is an `Option`, read as
// null, or has a default: `withDefault`).

/** A decoding or JSON-reading error: the bytes or the JSON are not what the docs describe. */
export class DecodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DecodeError';
  }
}

const utf8Decoder = new TextDecoder('utf-8', { fatal: true });
const utf8Encoder = new TextEncoder();

/** Reads borsh values from a byte string, front to back. */
export class Reader {
  private offset = 0;
  private readonly bytes: Uint8Array;

  constructor(bytes: Uint8Array) {
    this.bytes = bytes;
  }

  /** Bytes not yet read. */
  get remaining(): number {
    return this.bytes.length - this.offset;
  }

  /** The next `n` bytes, raw (a fixed-size array: a hash, a key, a signature). */
  fixed(n: number): Uint8Array {
    if (n > this.remaining) {
      throw new DecodeError(`unexpected end: wanted ${n} bytes at offset ${this.offset}, ${this.remaining} left`);
    }
    const out = this.bytes.slice(this.offset, this.offset + n);
    this.offset += n;
    return out;
  }

  u8(): number {
    return this.fixed(1)[0]!;
  }

  u32(): number {
    const b = this.fixed(4);
    return new DataView(b.buffer, b.byteOffset, 4).getUint32(0, true);
  }

  u64(): bigint {
    const b = this.fixed(8);
    return new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0, true);
  }

  bool(): boolean {
    const b = this.u8();
    if (b > 1) throw new DecodeError(`bool byte ${b} is neither 0 nor 1`);
    return b === 1;
  }

  /** `Vec<u8>`: a u32 count, then the bytes. */
  bytesVec(): Uint8Array {
    return this.fixed(this.u32());
  }

  string(): string {
    const b = this.bytesVec();
    try {
      return utf8Decoder.decode(b);
    } catch {
      throw new DecodeError('string is not UTF-8');
    }
  }

  option<T>(item: (r: Reader) => T): T | null {
    const tag = this.u8();
    if (tag === 0) return null;
    if (tag === 1) return item(this);
    throw new DecodeError(`option byte ${tag} is neither 0 nor 1`);
  }

  vec<T>(item: (r: Reader) => T): T[] {
    const n = this.u32();
    // Each item takes at least one byte... except zero-sized ones, which borsh never has here.
    if (n > this.remaining) throw new DecodeError(`vec of ${n} items in ${this.remaining} bytes`);
    const out: T[] = [];
    for (let i = 0; i < n; i++) out.push(item(this));
    return out;
  }

  /** Refuses trailing bytes. */
  end(): void {
    if (this.remaining !== 0) throw new DecodeError(`${this.remaining} trailing bytes`);
  }
}

/** Writes borsh values, front to back. */
export class Writer {
  private chunks: Uint8Array[] = [];
  private length = 0;

  private push(b: Uint8Array): void {
    this.chunks.push(b);
    this.length += b.length;
  }

  fixed(b: Uint8Array, n?: number): void {
    if (n !== undefined && b.length !== n) throw new RangeError(`expected ${n} bytes, got ${b.length}`);
    this.push(b.slice());
  }

  u8(v: number): void {
    if (!Number.isInteger(v) || v < 0 || v > 0xff) throw new RangeError(`u8 out of range: ${v}`);
    this.push(Uint8Array.of(v));
  }

  u32(v: number): void {
    if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new RangeError(`u32 out of range: ${v}`);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, v, true);
    this.push(b);
  }

  u64(v: bigint): void {
    if (v < 0n || v > 0xffffffffffffffffn) throw new RangeError(`u64 out of range: ${v}`);
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, v, true);
    this.push(b);
  }

  bool(v: boolean): void {
    this.u8(v ? 1 : 0);
  }

  bytesVec(b: Uint8Array): void {
    this.u32(b.length);
    this.fixed(b);
  }

  string(s: string): void {
    this.bytesVec(utf8Encoder.encode(s));
  }

  option<T>(v: T | null, item: (w: Writer, v: T) => void): void {
    if (v === null) {
      this.u8(0);
    } else {
      this.u8(1);
      item(this, v);
    }
  }

  vec<T>(items: readonly T[], item: (w: Writer, v: T) => void): void {
    this.u32(items.length);
    for (const v of items) item(this, v);
  }

  toBytes(): Uint8Array {
    const out = new Uint8Array(this.length);
    let at = 0;
    for (const c of this.chunks) {
      out.set(c, at);
      at += c.length;
    }
    return out;
  }
}

// ---------------------------------------------------------------------------------------------
// Hex

/** Lowercase hex of `b`. */
export function toHex(b: Uint8Array): string {
  let s = '';
  for (const x of b) s += x.toString(16).padStart(2, '0');
  return s;
}

/** Bytes of lowercase hex `s` (no `0x`, even length); anything else is refused. */
export function fromHex(s: string): Uint8Array {
  if (typeof s !== 'string' || s.length % 2 !== 0 || !/^[0-9a-f]*$/.test(s)) {
    throw new DecodeError(`not lowercase hex of whole bytes: ${JSON.stringify(s).slice(0, 80)}`);
  }
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.slice(2 * i, 2 * i + 2), 16);
  return out;
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Bytewise order: negative if `a` sorts before `b`. */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  const w = new Writer();
  for (const p of parts) w.fixed(p);
  return w.toBytes();
}

// ---------------------------------------------------------------------------------------------
// JSON with integers beyond 2^53 kept exact

/**
 * `JSON.parse`, except that an integer too large for a `number` becomes a `bigint` (Cairn's
 * u64 fields can exceed 2^53). Needs `JSON.parse` source text access (Node 21+); without it,
 * large integers lose precision as with plain `JSON.parse`.
 */
export function parseJson(text: string): unknown {
  return JSON.parse(text, function (this: unknown, _key: string, value: unknown, context?: { source?: string }) {
    if (typeof value === 'number' && !Number.isSafeInteger(value) && context?.source && /^-?\d+$/.test(context.source)) {
      return BigInt(context.source);
    }
    return value;
  } as (this: unknown, key: string, value: unknown) => unknown);
}

/** `JSON.stringify` that writes a `bigint` as a plain JSON integer. */
export function stringifyJson(value: unknown, indent?: number): string {
  const marks = new Map<string, string>();
  let n = 0;
  const text = JSON.stringify(
    value,
    (_k, v: unknown) => {
      if (typeof v === 'bigint') {
        const mark = `\u0000bigint${n++}\u0000`;
        marks.set(mark, v.toString());
        return mark;
      }
      return v;
    },
    indent,
  );
  return text.replace(/"\\u0000bigint\d+\\u0000"/g, (m) => marks.get(JSON.parse(m) as string)!);
}

// ---------------------------------------------------------------------------------------------
// Codecs

/** A type's borsh encoding and JSON form. */
export interface Codec<T> {
  /** A short name for error messages. */
  readonly name: string;
  write(w: Writer, v: T): void;
  read(r: Reader): T;
  toJson(v: T): unknown;
  /** `path` names where in the JSON the value sits, for error messages. */
  fromJson(j: unknown, path?: string): T;
}

/** The value type of a codec. */
export type Infer<C> = C extends Codec<infer T> ? T : never;

/** The borsh bytes of `v`. */
export function encode<T>(c: Codec<T>, v: T): Uint8Array {
  const w = new Writer();
  c.write(w, v);
  return w.toBytes();
}

/** Decodes all of `bytes` as `c`: trailing bytes are refused. */
export function decode<T>(c: Codec<T>, bytes: Uint8Array): T {
  const r = new Reader(bytes);
  const v = c.read(r);
  r.end();
  return v;
}

function fail(path: string, what: string): never {
  throw new DecodeError(`${path || 'value'}: ${what}`);
}

function jsonInteger(j: unknown, path: string, max: bigint): bigint {
  let v: bigint;
  if (typeof j === 'bigint') v = j;
  else if (typeof j === 'number' && Number.isSafeInteger(j)) v = BigInt(j);
  else fail(path, `expected an integer, got ${JSON.stringify(j)}`);
  if (v < 0n || v > max) fail(path, `integer ${v} out of range`);
  return v;
}

export const u8: Codec<number> = {
  name: 'u8',
  write: (w, v) => w.u8(v),
  read: (r) => r.u8(),
  toJson: (v) => v,
  fromJson: (j, path = '') => Number(jsonInteger(j, path, 0xffn)),
};

export const u32: Codec<number> = {
  name: 'u32',
  write: (w, v) => w.u32(v),
  read: (r) => r.u32(),
  toJson: (v) => v,
  fromJson: (j, path = '') => Number(jsonInteger(j, path, 0xffffffffn)),
};

/** A u64, as a `bigint`; in JSON a number (a `bigint` past 2^53, see `parseJson`). */
export const u64: Codec<bigint> = {
  name: 'u64',
  write: (w, v) => w.u64(v),
  read: (r) => r.u64(),
  toJson: (v) => (v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v),
  fromJson: (j, path = '') => jsonInteger(j, path, 0xffffffffffffffffn),
};

export const bool: Codec<boolean> = {
  name: 'bool',
  write: (w, v) => w.bool(v),
  read: (r) => r.bool(),
  toJson: (v) => v,
  fromJson: (j, path = '') => (typeof j === 'boolean' ? j : fail(path, 'expected a boolean')),
};

export const string: Codec<string> = {
  name: 'string',
  write: (w, v) => w.string(v),
  read: (r) => r.string(),
  toJson: (v) => v,
  fromJson: (j, path = '') => (typeof j === 'string' ? j : fail(path, 'expected a string')),
};

/** `n` raw bytes (a 32-byte hash or key, a 64-byte signature); JSON: lowercase hex. */
export function fixed(n: number): Codec<Uint8Array> {
  return {
    name: `[u8; ${n}]`,
    write: (w, v) => w.fixed(v, n),
    read: (r) => r.fixed(n),
    toJson: (v) => toHex(v),
    fromJson: (j, path = '') => {
      const b = fromHex(typeof j === 'string' ? j : fail(path, 'expected a hex string'));
      if (b.length !== n) fail(path, `expected ${n} bytes, got ${b.length}`);
      return b;
    },
  };
}

/** A 32-byte hash or ed25519 public key. */
export const hash32 = fixed(32);
/** A 64-byte ed25519 signature. */
export const sig64 = fixed(64);

/** `Vec<u8>`: a u32 count then the bytes; JSON: lowercase hex. */
export const bytes: Codec<Uint8Array> = {
  name: 'Vec<u8>',
  write: (w, v) => w.bytesVec(v),
  read: (r) => r.bytesVec(),
  toJson: (v) => toHex(v),
  fromJson: (j, path = '') => fromHex(typeof j === 'string' ? j : fail(path, 'expected a hex string')),
};

/** `Option<T>`; JSON: `null` or the value. */
export function option<T>(c: Codec<T>): Codec<T | null> {
  return {
    name: `Option<${c.name}>`,
    write: (w, v) => w.option(v, (w2, x) => c.write(w2, x)),
    read: (r) => r.option((r2) => c.read(r2)),
    toJson: (v) => (v === null ? null : c.toJson(v)),
    fromJson: (j, path = '') => (j === null || j === undefined ? null : c.fromJson(j, path)),
  };
}

/**
 * `c`, whose field a record's JSON may leave out, meaning `value` (serde's `#[serde(default)]`,
 * for a field added after a record's first form: `JobResult.output_in_blob`). Borsh is `c`'s.
 */
export function withDefault<T>(c: Codec<T>, value: T): Codec<T> & { readonly jsonDefault: T } {
  return { ...c, jsonDefault: value, fromJson: (j, path = '') => (j === undefined ? value : c.fromJson(j, path)) };
}

/** Whether a record's JSON may leave out a field of codec `c`: an `Option` (null) or a `withDefault`. */
export function mayBeAbsent(c: Codec<unknown>): boolean {
  return c.name.startsWith('Option<') || 'jsonDefault' in c;
}

/** `Vec<T>`; JSON: an array. */
export function vec<T>(c: Codec<T>): Codec<T[]> {
  return {
    name: `Vec<${c.name}>`,
    write: (w, v) => w.vec(v, (w2, x) => c.write(w2, x)),
    read: (r) => r.vec((r2) => c.read(r2)),
    toJson: (v) => v.map((x) => c.toJson(x)),
    fromJson: (j, path = '') => {
      if (!Array.isArray(j)) fail(path, 'expected an array');
      return j.map((x, i) => c.fromJson(x, `${path}[${i}]`));
    },
  };
}

/**
 * A `Vec<T>` whose items must be sorted by `key` (bytewise, ascending) without repeats: the
 * certificates' and commits' signatures. Another order does not decode.
 */
export function sortedVec<T>(c: Codec<T>, key: (v: T) => Uint8Array, max: number): Codec<T[]> {
  const inner = vec(c);
  const check = (items: T[]): T[] => {
    if (items.length > max) throw new DecodeError(`${items.length} items, at most ${max}`);
    for (let i = 1; i < items.length; i++) {
      if (compareBytes(key(items[i - 1]!), key(items[i]!)) >= 0) {
        throw new DecodeError('items not sorted by validator without repeats');
      }
    }
    return items;
  };
  return { ...inner, read: (r) => check(inner.read(r)) };
}

/** A `u8` that stands for a name: `JobStatus`, a vote's `kind`. */
export function u8Enum<const N extends readonly string[]>(name: string, names: N): Codec<N[number]> {
  return {
    name,
    write: (w, v) => {
      const i = names.indexOf(v);
      if (i < 0) throw new RangeError(`${name}: unknown ${v}`);
      w.u8(i);
    },
    read: (r) => {
      const i = r.u8();
      if (i >= names.length) throw new DecodeError(`${name}: unknown index ${i}`);
      return names[i]!;
    },
    toJson: (v) => v,
    fromJson: (j, path = '') => {
      if (typeof j !== 'string' || !names.includes(j)) fail(path, `expected one of ${names.join(', ')}`);
      return j as N[number];
    },
  };
}

type Fields = Record<string, Codec<any>>;
type StructOf<F extends Fields> = { [K in keyof F]: Infer<F[K]> };

function readFields<F extends Fields>(fields: F, r: Reader): StructOf<F> {
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(fields)) out[k] = fields[k]!.read(r);
  return out as StructOf<F>;
}

function writeFields<F extends Fields>(fields: F, w: Writer, v: StructOf<F>): void {
  for (const k of Object.keys(fields)) fields[k]!.write(w, (v as Record<string, unknown>)[k]);
}

function fieldsToJson<F extends Fields>(fields: F, v: StructOf<F>, out: Record<string, unknown>): void {
  for (const k of Object.keys(fields)) out[k] = fields[k]!.toJson((v as Record<string, unknown>)[k]);
}

function fieldsFromJson<F extends Fields>(fields: F, j: Record<string, unknown>, path: string, extra: string[]): StructOf<F> {
  for (const k of Object.keys(j)) {
    if (!(k in fields) && !extra.includes(k)) fail(path, `unknown field ${k}`);
  }
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(fields)) {
    const c = fields[k]!;
    if (!(k in j) && !mayBeAbsent(c)) fail(path, `missing field ${k}`);
    out[k] = c.fromJson(j[k], path ? `${path}.${k}` : k);
  }
  return out as StructOf<F>;
}

function jsonObject(j: unknown, path: string): Record<string, unknown> {
  if (typeof j !== 'object' || j === null || Array.isArray(j)) fail(path, 'expected an object');
  return j as Record<string, unknown>;
}

/** A struct: its fields in the order given; JSON: an object with exactly those fields. */
export function struct<F extends Fields>(name: string, fields: F): Codec<StructOf<F>> & { fields: F } {
  return {
    name,
    fields,
    write: (w, v) => writeFields(fields, w, v),
    read: (r) => readFields(fields, r),
    toJson: (v) => {
      const out: Record<string, unknown> = {};
      fieldsToJson(fields, v, out);
      return out;
    },
    fromJson: (j, path = '') => fieldsFromJson(fields, jsonObject(j, path), path, []),
  };
}

/** One variant of an enum: its index and its fields (or the fields of the record it holds). */
export interface Variant<F extends Fields = Fields> {
  tag: number;
  fields: F;
}

type EnumOf<V extends Record<string, Variant>> = {
  [K in keyof V & string]: { kind: K } & StructOf<V[K]['fields']>;
}[keyof V & string];

/**
 * An enum: one `u8` index, then the variant's fields. In TypeScript and in JSON a value is one
 * object holding `kind` (the variant's JSON name) beside the variant's fields.
 */
export function enumOf<const V extends Record<string, Variant>>(name: string, variants: V): Codec<EnumOf<V>> & { variants: V } {
  const byTag = new Map<number, string>();
  for (const [k, v] of Object.entries(variants)) byTag.set(v.tag, k);
  const variantOf = (kind: unknown, path: string): Variant => {
    if (typeof kind !== 'string' || !(kind in variants)) fail(path, `${name}: unknown kind ${JSON.stringify(kind)}`);
    return variants[kind]!;
  };
  return {
    name,
    variants,
    write: (w, v) => {
      const variant = variantOf(v.kind, name);
      w.u8(variant.tag);
      writeFields(variant.fields, w, v as never);
    },
    read: (r) => {
      const tag = r.u8();
      const kind = byTag.get(tag);
      if (kind === undefined) throw new DecodeError(`${name}: unknown index ${tag}`);
      return { kind, ...readFields(variants[kind]!.fields, r) } as EnumOf<V>;
    },
    toJson: (v) => {
      const out: Record<string, unknown> = { kind: v.kind };
      fieldsToJson(variantOf(v.kind, name).fields, v as never, out);
      return out;
    },
    fromJson: (j, path = '') => {
      const o = jsonObject(j, path);
      const variant = variantOf(o['kind'], path ? `${path}.kind` : 'kind');
      return { kind: o['kind'], ...fieldsFromJson(variant.fields, o, path, ['kind']) } as EnumOf<V>;
    },
  };
}

/** A fixed leading byte (a version) in front of another codec: `0x01 ‖ borsh(…)`. */
export function prefixed<T>(name: string, prefix: number, c: Codec<T>): Codec<T> {
  return {
    ...c,
    name,
    write: (w, v) => {
      w.u8(prefix);
      c.write(w, v);
    },
    read: (r) => {
      const b = r.u8();
      if (b !== prefix) throw new DecodeError(`${name}: first byte ${b}, expected ${prefix}`);
      return c.read(r);
    },
  };
}
