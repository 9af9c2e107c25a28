// The chain: its genesis (name, time, chain id, parameters) and the node serving this page.

import type { App } from '../app.ts';
import { errorBox, facts, fill, h, hash, num, time } from '../dom.ts';

export function paramsPage(app: App, root: HTMLElement): () => void {
  const body = h('div', { id: 'params', 'data-state': 'loading' }, h('p', { class: 'muted' }, 'Loading…'));
  fill(root, h('h1', null, 'Chain parameters'), body);
  void (async () => {
    try {
      const [{ genesis, chainId }, info, health] = await Promise.all([app.genesis(), app.nodeInfo(), app.client.systemHealth()]);
      const p = genesis.params;
      const nodeChain = Array.from(info.chain_id, (b) => b.toString(16).padStart(2, '0')).join('');
      fill(
        body,
        facts([
          ['chain name', genesis.chain_name],
          ['chain id (H(borsh(genesis)))', hash(chainId)],
          ['genesis time', time(genesis.genesis_time_ms)],
          ['validators', String(genesis.validators.length)],
          ['genesis accounts', String(genesis.accounts.length)],
          ['genesis providers', String(genesis.providers.length)],
        ]),
        nodeChain !== chainId ? h('div', { class: 'error' }, `The node says its chain id is ${nodeChain}, but its genesis hashes to ${chainId}.`) : null,
        h('h2', null, 'Parameters'),
        facts(Object.entries(p).map(([k, v]) => [k, num(v as bigint | number)])),
        h('h2', null, 'This node'),
        facts([
          ['version', info.version],
          ['address', hash(info.address)],
          ['peer id', h('span', { class: 'mono' }, info.peer_id)],
          ['roles', [info.validator ? 'validator' : null, info.provider ? 'provider' : null].filter(Boolean).join(', ') || 'none'],
          ['peers', num(info.peers)],
          ['health', `${health.status}${health.reason ? ` (${health.reason})` : ''}, ${num(health.lag_blocks)} blocks behind its peers`],
          ['least fee', num(info.tx_fee_min)],
        ]),
      );
      body.setAttribute('data-state', 'ready');
    } catch (e) {
      fill(body, errorBox(e, 'Could not load the chain parameters.'));
      body.setAttribute('data-state', 'error');
    }
  })();
  return () => {};
}
