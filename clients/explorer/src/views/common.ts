// What several pages show the same way: transactions, commit signers, and links.

import { type Block, type Commit, type Transaction, jobId, toHex } from '../../../ts/src/index.ts';
import { h, hash, num } from '../dom.ts';

export const link = {
  block: (height: bigint | number): string => `#/block/${height}`,
  job: (id: Uint8Array | string): string => `#/job/${typeof id === 'string' ? id : toHex(id)}`,
  account: (a: Uint8Array | string): string => `#/account/${typeof a === 'string' ? a : toHex(a)}`,
};

/** A height as a link to its block. */
export function heightLink(height: bigint): HTMLElement {
  return h('a', { href: link.block(height), class: 'height' }, `#${num(height)}`);
}

/** The job a transaction concerns, if any. */
export function txJob(tx: Transaction): Uint8Array | null {
  switch (tx.kind) {
    case 'offer':
      return jobId({ offer: tx.offer, signature: tx.signature });
    case 'result':
      return tx.claim.job_id;
    case 'resolve':
      return tx.job_id;
    case 'account':
      return tx.tx.action.kind === 'challenge' ? tx.tx.action.job_id : null;
  }
}

/** One line about a transaction: its kind, job, and who. */
export function txSummary(tx: Transaction): HTMLElement {
  const job = txJob(tx);
  const jobEl = job ? ['job ', hash(job, link.job(job))] : [];
  switch (tx.kind) {
    case 'offer':
      return h('span', null, h('span', { class: 'tag offer' }, 'offer'), ' ', jobEl, ' from ', hash(tx.offer.client, link.account(tx.offer.client)),
        ` fuel ≤ ${num(tx.offer.fuel_limit)}, ≤ ${num(tx.offer.max_price)}/fuel, ×${tx.offer.redundancy}`,
        tx.offer.input_blob ? [', input in blob ', hash(tx.offer.input_blob)] : null);
    case 'result':
      return h('span', null, h('span', { class: 'tag result' }, 'receipt'), ' ', jobEl, ' by ', hash(tx.claim.provider, link.account(tx.claim.provider)),
        ` ${tx.claim.status}, ${num(tx.claim.fuel_used)} fuel`, tx.output_in_blob ? ', output in a blob' : '');
    case 'resolve':
      return h('span', null, h('span', { class: 'tag resolve' }, 'resolve'), ' ', jobEl);
    case 'account': {
      const a = tx.tx.action;
      const what =
        a.kind === 'transfer' ? [` ${num(a.amount)} to `, hash(a.to, link.account(a.to))]
        : a.kind === 'register_provider' ? [` stake ${num(a.stake)}, ask ${num(a.price_per_fuel)}/fuel, capacity ${a.capacity}${a.region ? `, region ${a.region}` : ''}`]
        : a.kind === 'update_price' ? [` ask ${num(a.price_per_fuel)}/fuel`]
        : a.kind === 'update_region' ? [a.region ? ` region ${a.region}` : ' no region']
        : a.kind === 'unbond' ? [` ${num(a.amount)}`]
        : [' bond ', num(a.bond), ' on ', jobEl];
      return h('span', null, h('span', { class: 'tag account' }, a.kind.replace('_', ' ')), ' by ', hash(tx.tx.sender, link.account(tx.tx.sender)), what);
    }
  }
}

/** Receipts in a block: its result transactions (each becomes one receipt under `receipt_root`). */
export function receiptsOf(block: Block): Extract<Transaction, { kind: 'result' }>[] {
  return block.txs.filter((t): t is Extract<Transaction, { kind: 'result' }> => t.kind === 'result');
}

/** Who signed a commit, as addresses. */
export function signers(commit: Commit): string[] {
  return commit.signatures.map((s) => toHex(s.validator));
}
