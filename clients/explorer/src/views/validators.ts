// The validators: the genesis set with its powers, and how each did over the recent blocks —
// blocks proposed, and precommits in the commits that finalized them. A commit needs only more
// than 2/3 of the power, so a missing signature is a vote that did not make it into the commit
// (late or absent), not necessarily a fault.

import { toHex } from '../../../ts/src/index.ts';
import type { App } from '../app.ts';
import { errorBox, fill, h, hash, num, table } from '../dom.ts';
import { link } from './common.ts';

/** Blocks whose commits are counted. */
export const RECENT_BLOCKS = 50;

export function validatorsPage(app: App, root: HTMLElement): () => void {
  const body = h('div', { id: 'validators', 'data-state': 'loading' }, h('p', { class: 'muted' }, 'Loading…'));
  fill(root, h('h1', null, 'Validators'), body);
  const load = async (): Promise<void> => {
    try {
      const [{ genesis }, head] = await Promise.all([app.genesis(), app.currentHead()]);
      // The commit of block x is block x+1's last_commit: fetch one block more than counted.
      const top = head.height;
      const from = top > BigInt(RECENT_BLOCKS) ? top - BigInt(RECENT_BLOCKS) : 1n;
      const heights: bigint[] = [];
      for (let x = from; x <= top; x++) heights.push(x);
      const blocks = await Promise.all(heights.map((x) => app.block(x)));
      const signed = new Map<string, number>();
      const proposed = new Map<string, number>();
      let commits = 0;
      for (const b of blocks) {
        const p = toHex(b.header.proposer);
        proposed.set(p, (proposed.get(p) ?? 0) + 1);
        if (b.last_commit && b.header.height > from) {
          commits++;
          for (const s of b.last_commit.signatures) {
            const v = toHex(s.validator);
            signed.set(v, (signed.get(v) ?? 0) + 1);
          }
        }
      }
      let total = 0n;
      for (const v of genesis.validators) total += v.power;
      fill(
        body,
        h('p', { class: 'muted' }, `The genesis validator set. Proposed: of blocks #${num(from)}–#${num(top)}; signed and missed: of the ${commits} commits in them (a commit needs more than 2/3 of the power, so a missed precommit was late or absent, not necessarily a fault).`),
        table(
          ['address', 'power', 'share', 'proposed', 'signed', 'missed'],
          genesis.validators.map((v) => {
            const a = toHex(v.address);
            const s = signed.get(a) ?? 0;
            return [
              hash(v.address, link.account(v.address)),
              num(v.power),
              total > 0n ? `${((Number(v.power) / Number(total)) * 100).toFixed(1)} %` : '—',
              String(proposed.get(a) ?? 0),
              String(s),
              commits - s > 0 ? h('span', { class: 'warn' }, String(commits - s)) : '0',
            ];
          }),
        ),
      );
      body.setAttribute('data-state', 'ready');
    } catch (e) {
      fill(body, errorBox(e, 'Could not load the validators.'));
      body.setAttribute('data-state', 'error');
    }
  };
  void load();
  return () => {};
}
