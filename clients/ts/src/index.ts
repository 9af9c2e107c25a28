// Cairn's wire formats and proofs, written from docs/ (WIRE.md, PROOFS.md, STATE.md, CONSENSUS.md).

export * from './borsh.ts';
export * from './types.ts';
export * from './verify.ts';
export * from './gossip.ts';
