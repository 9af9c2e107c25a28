// The explorer's entry: the header (chain, live head, connection, search), the navigation and
// the page of the current hash route. Pages are functions of (app, root, args) that render
// into root and return what stops their live updates.

import { CairnRpcError } from '../../ts/src/index.ts';
import { App, rpcUrl } from './app.ts';
import { fill, h, num } from './dom.ts';
import { parseRoute, searchTarget } from './router.ts';
import { accountPage } from './views/account.ts';
import { blockPage } from './views/block.ts';
import { blocksPage } from './views/blocks.ts';
import { jobPage } from './views/job.ts';
import { paramsPage } from './views/params.ts';
import { providersPage } from './views/providers.ts';
import { validatorsPage } from './views/validators.ts';

const app = new App(rpcUrl(location));
const main = document.getElementById('page')!;
const headEl = document.getElementById('head')!;
const connEl = document.getElementById('conn')!;
const chainEl = document.getElementById('chain')!;
const searchForm = document.getElementById('search') as HTMLFormElement;
const searchInput = document.getElementById('search-input') as HTMLInputElement;
const searchMsg = document.getElementById('search-msg')!;

let stopPage: () => void = () => {};

function route(): void {
  stopPage();
  const r = parseRoute(location.hash);
  for (const a of document.querySelectorAll('nav a')) a.classList.toggle('active', a.getAttribute('data-page') === r.page);
  switch (r.page) {
    case 'blocks':
      stopPage = blocksPage(app, main);
      break;
    case 'block':
      stopPage = blockPage(app, main, r.height);
      break;
    case 'job':
      stopPage = jobPage(app, main, r.id);
      break;
    case 'account':
      stopPage = accountPage(app, main, r.address);
      break;
    case 'providers':
      stopPage = providersPage(app, main);
      break;
    case 'validators':
      stopPage = validatorsPage(app, main);
      break;
    case 'params':
      stopPage = paramsPage(app, main);
      break;
    case 'unknown':
      fill(main, h('h1', null, 'No such page'), h('p', null, `Nothing at ${r.hash}. `, h('a', { href: '#/' }, 'Latest blocks')));
      stopPage = () => {};
  }
  window.scrollTo(0, 0);
}

searchForm.addEventListener('submit', (ev) => {
  ev.preventDefault();
  fill(searchMsg);
  const isJob = (id: string): Promise<boolean> =>
    app.client.jobGet(id).then(
      () => true,
      (e: unknown) => {
        if (e instanceof CairnRpcError && e.code === -33001) return false;
        throw e;
      },
    );
  searchTarget(searchInput.value, isJob).then(
    (target) => {
      if (target) location.hash = target;
      else fill(searchMsg, 'Search a block height, a job id or an address (64 hex digits).');
    },
    (e: Error) => fill(searchMsg, e.message),
  );
});

app.onHead((head) => {
  headEl.textContent = `#${num(head.height)}`;
  headEl.setAttribute('data-height', String(head.height));
});
app.onConnection(() => {
  connEl.textContent = app.connection === 'open' ? 'live' : app.connection;
  connEl.className = `conn ${app.connection}`;
});
app.startHeads((e) => {
  connEl.title = `live heads unavailable (${e.message}); polling chain_head`;
});
app.genesis().then(
  ({ genesis, chainId }) => {
    chainEl.textContent = genesis.chain_name;
    chainEl.title = `chain id ${chainId}`;
  },
  () => {},
);
window.addEventListener('hashchange', route);
route();
