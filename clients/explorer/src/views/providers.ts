// The providers, as `provider_list` gives them: region, stake, ask, capacity and the chain's
// counts of each provider's paid results, slashes and missed deadlines.

import type { App } from '../app.ts';
import { errorBox, fill, h, hash, num, table } from '../dom.ts';
import { link } from './common.ts';

export function providersPage(app: App, root: HTMLElement): () => void {
  const body = h('div', { id: 'providers', 'data-state': 'loading' }, h('p', { class: 'muted' }, 'Loading…'));
  fill(
    root,
    h('h1', null, 'Providers'),
    h('p', { class: 'muted' }, 'From provider_list at the head. The region is what the provider declared (offers may prefer or require regions). Jobs done counts results paid; slashes, results proven wrong; missed, slots held past a deadline without a result. Its balance is on its account page.'),
    body,
  );
  const load = async (): Promise<void> => {
    try {
      const list = await app.client.providerList();
      fill(
        body,
        list.length === 0
          ? h('p', null, 'No provider is registered.')
          : table(
              ['address', 'region', 'stake', 'ask per fuel', 'capacity', 'active jobs', 'jobs done', 'slashes', 'missed', 'unbonding', 'eligible'],
              list.map((p) => [
                hash(p.address, link.account(p.address)),
                p.region === '' ? h('span', { class: 'muted' }, 'none') : p.region,
                num(p.stake),
                num(p.price_per_fuel),
                String(p.capacity),
                String(p.active_jobs),
                num(p.jobs_done),
                p.slashes === 0n ? '0' : h('span', { class: 'warn' }, num(p.slashes)),
                p.missed === 0n ? '0' : h('span', { class: 'warn' }, num(p.missed)),
                num(p.unbonding),
                p.eligible ? 'yes' : h('span', { class: 'warn' }, 'no'),
              ]),
            ),
      );
      body.setAttribute('data-state', 'ready');
    } catch (e) {
      fill(body, errorBox(e, 'Could not load the providers.'));
      body.setAttribute('data-state', 'error');
    }
  };
  void load();
  return app.onHead(() => void load());
}
