// The home page: the latest blocks, live. Each row: height, time, hash, proposer, transactions,
// receipts, and how many validators signed its commit (the next block's `last_commit`).

import { type Block, blockHash, toHex } from '../../../ts/src/index.ts';
import type { App } from '../app.ts';
import { ago, errorBox, fill, h, hash, table } from '../dom.ts';
import { heightLink, link, receiptsOf } from './common.ts';

/** Blocks in the list. */
export const BLOCKS_SHOWN = 20;

export function blocksPage(app: App, root: HTMLElement): () => void {
  const list = h('div', { id: 'block-list', 'data-state': 'loading' }, h('p', { class: 'muted' }, 'Loading blocks…'));
  fill(root, h('h1', null, 'Latest blocks'), list);
  let rendering = false;
  let again = false;

  const render = async (): Promise<void> => {
    if (rendering) {
      again = true;
      return;
    }
    rendering = true;
    try {
      const head = await app.currentHead();
      const top = head.height;
      if (top === 0n) {
        // An idle chain makes no blocks (docs/CONSENSUS.md): the first transaction wakes it.
        fill(list, h('p', { class: 'muted', id: 'no-blocks' }, 'No blocks yet: the chain is at its genesis, and makes blocks once there is something to include.'));
        list.setAttribute('data-state', 'ready');
        list.setAttribute('data-head', '0');
        return;
      }
      const bottom = top > BigInt(BLOCKS_SHOWN) ? top - BigInt(BLOCKS_SHOWN) + 1n : 1n;
      const heights: bigint[] = [];
      for (let x = top; x >= bottom; x--) heights.push(x);
      const blocks = await Promise.all(heights.map((x) => app.block(x)));
      const byHeight = new Map<bigint, Block>(blocks.map((b) => [b.header.height, b]));
      const rows = blocks.map((b) => {
        const next = byHeight.get(b.header.height + 1n);
        const signed = next?.last_commit ? String(next.last_commit.signatures.length) : h('span', { class: 'muted', title: 'its commit is in the next block' }, 'pending');
        return [
          heightLink(b.header.height),
          h('span', { title: new Date(Number(b.header.time_ms)).toISOString() }, ago(b.header.time_ms)),
          hash(blockHashHex(b), link.block(b.header.height)),
          hash(b.header.proposer, link.account(b.header.proposer)),
          String(b.header.tx_count),
          String(receiptsOf(b).length),
          signed,
        ];
      });
      fill(list, table(['height', 'time', 'hash', 'proposer', 'txs', 'receipts', 'commit signers'], rows, { class: 'list blocks' }));
      list.setAttribute('data-state', 'ready');
      list.setAttribute('data-head', String(top));
    } catch (e) {
      fill(list, errorBox(e, 'Could not load the blocks.'));
      list.setAttribute('data-state', 'error');
    } finally {
      rendering = false;
      if (again) {
        again = false;
        void render();
      }
    }
  };
  void render();
  return app.onHead(() => void render());
}

function blockHashHex(b: Block): string {
  return toHex(blockHash(b.header));
}
