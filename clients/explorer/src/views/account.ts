// An address: its account, and what else it is on this chain (a provider, a genesis validator).

import { toHex } from '../../../ts/src/index.ts';
import type { App } from '../app.ts';
import { errorBox, facts, fill, h, hash, num } from '../dom.ts';

export function accountPage(app: App, root: HTMLElement, address: string): () => void {
  const body = h('div', { id: 'account', 'data-state': 'loading' }, h('p', { class: 'muted' }, 'Loading…'));
  fill(root, h('h1', null, 'Address ', hash(address)), body);
  const load = async (): Promise<void> => {
    try {
      const [acct, providers, genesis] = await Promise.all([
        app.client.accountGet(address),
        app.client.providerList(),
        app.genesis().catch(() => null),
      ]);
      const provider = providers.find((p) => toHex(p.address) === address);
      const validator = genesis?.genesis.validators.find((v) => toHex(v.address) === address);
      fill(
        body,
        facts([
          ['balance', num(acct.balance)],
          ['nonce (at the head)', num(acct.nonce)],
          ['next nonce (with the mempool)', num(acct.next_nonce)],
          ['validator', validator ? `yes, power ${num(validator.power)}` : 'no'],
          ['provider', provider ? 'yes' : 'no'],
        ]),
        provider
          ? [
              h('h2', null, 'As a provider'),
              facts([
                ['stake', num(provider.stake)],
                ['ask', `${num(provider.price_per_fuel)} per fuel`],
                ['capacity', String(provider.capacity)],
                ['active jobs', String(provider.active_jobs)],
                ['unbonding', num(provider.unbonding)],
                ['eligible', provider.eligible ? 'yes' : 'no'],
              ]),
            ]
          : null,
      );
      body.setAttribute('data-state', 'ready');
    } catch (e) {
      fill(body, errorBox(e, 'Could not load the account.'));
      body.setAttribute('data-state', 'error');
    }
  };
  void load();
  return app.onHead(() => void load());
}
