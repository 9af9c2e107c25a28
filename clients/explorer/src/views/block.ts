// A block: its header, its transactions and receipts, the commit it carries (of its parent) and
// the commit that finalized it (the next block's `last_commit`, once there is a next block).

import { type Commit, blockHash, toHex, validatorSet } from '../../../ts/src/index.ts';
import type { App } from '../app.ts';
import { errorBox, facts, fill, h, hash, num, table, time } from '../dom.ts';
import { heightLink, link, receiptsOf, txSummary } from './common.ts';

export function blockPage(app: App, root: HTMLElement, height: bigint): () => void {
  const body = h('div', { id: 'block', 'data-state': 'loading' }, h('p', { class: 'muted' }, 'Loading…'));
  fill(root, h('h1', null, `Block #${num(height)}`), body);
  let finalizedBy: HTMLElement | null = null;
  let stop = (): void => {};

  const showCommit = (commit: Commit | null, el: HTMLElement, power: Map<string, bigint> | null, total: bigint | null): void => {
    if (!commit) {
      fill(el, h('span', { class: 'muted' }, 'none (height 1 has no parent)'));
      return;
    }
    let signed = 0n;
    for (const s of commit.signatures) signed += power?.get(toHex(s.validator)) ?? 0n;
    fill(
      el,
      h('p', null, `height ${num(commit.height)}, round ${commit.round}, ${commit.signatures.length} signatures`,
        total !== null ? ` (power ${num(signed)} of ${num(total)})` : ''),
      h('ul', { class: 'signers' }, commit.signatures.map((s) => h('li', null, hash(s.validator, link.account(s.validator))))),
    );
  };

  void (async () => {
    try {
      const block = await app.block(height);
      const hd = block.header;
      const receipts = receiptsOf(block);
      const genesis = await app.genesis().catch(() => null);
      const set = genesis ? validatorSet(genesis.genesis) : null;
      const parentCommit = h('div');
      finalizedBy = h('div', { id: 'finalized-by' }, h('span', { class: 'muted' }, 'waiting for the next block…'));
      fill(
        body,
        facts([
          ['hash', hash(blockHash(hd))],
          ['time', time(hd.time_ms)],
          ['proposer', hash(hd.proposer, link.account(hd.proposer))],
          ['parent', hd.height > 1n ? h('span', null, heightLink(hd.height - 1n), ' ', hash(hd.parent_hash)) : hash(hd.parent_hash)],
          ['next', h('a', { href: link.block(hd.height + 1n) }, `#${num(hd.height + 1n)}`)],
          ['chain id', hash(hd.chain_id)],
          ['state root', hash(hd.state_root)],
          ['tx root', hash(hd.tx_root)],
          ['receipt root', hash(hd.receipt_root)],
          ['transactions', String(hd.tx_count)],
          ['receipts', String(hd.receipt_count)],
        ]),
        h('h2', null, `Transactions (${block.txs.length})`),
        block.txs.length === 0
          ? h('p', { class: 'muted' }, 'none')
          : table(['#', 'transaction'], block.txs.map((t, i) => [String(i), txSummary(t)])),
        h('h2', null, `Receipts (${receipts.length})`),
        receipts.length === 0
          ? h('p', { class: 'muted' }, 'none')
          : table(
              ['job', 'provider', 'status', 'fuel', 'output hash'],
              receipts.map((r) => [
                hash(r.claim.job_id, link.job(r.claim.job_id)),
                hash(r.claim.provider, link.account(r.claim.provider)),
                r.claim.status,
                num(r.claim.fuel_used),
                [hash(r.claim.output_hash), r.output_in_blob ? [' ', h('span', { class: 'tag blob', title: 'the output is this blob (blob_get)' }, 'blob')] : null],
              ]),
            ),
        h('h2', null, 'Finalized by (the commit in the next block)'),
        finalizedBy,
        h('h2', null, 'Commit of the parent (carried here)'),
        parentCommit,
      );
      showCommit(block.last_commit, parentCommit, set?.power ?? null, set?.total ?? null);
      body.setAttribute('data-state', 'ready');

      const tryNext = async (): Promise<boolean> => {
        const head = await app.currentHead();
        if (head.height <= height) return false;
        const next = await app.block(height + 1n);
        showCommit(next.last_commit, finalizedBy!, set?.power ?? null, set?.total ?? null);
        return true;
      };
      if (!(await tryNext())) {
        const off = app.onHead(() => {
          void tryNext().then((done) => done && off());
        });
        stop = off;
      }
    } catch (e) {
      fill(body, errorBox(e, `Could not load block ${height}.`));
      body.setAttribute('data-state', 'error');
    }
  })();
  return () => stop();
}
