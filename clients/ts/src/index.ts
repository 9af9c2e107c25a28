// Cairn's wire formats and proofs, written from docs/ (WIRE.md, PROOFS.md, STATE.md,
// CONSENSUS.md), and a client of a node's JSON-RPC API (RPC.md). Runs in Node 22 and in
// browsers; the file-system helpers are in `./node.ts` (`@cairn/client/node`).

export * from './borsh.ts';
export * from './types.ts';
export * from './verify.ts';
export * from './gossip.ts';
export * from './keys.ts';
export * from './sign.ts';
export * from './errors.ts';
export * from './rpc-types.ts';
export * from './transport.ts';
export * from './client.ts';
export * from './run.ts';
