// The page's script: plain ES modules, no build step. `cairn-client.js` is the browser bundle
// of clients/ts/src (built by `npm run build` in clients/explorer, committed).
import { CairnClient, Genesis, chainId, parseJson, parseKeyFile, runJob, toHex } from './cairn-client.js';

const rpc = new URLSearchParams(location.search).get('rpc');
const $ = (id) => document.getElementById(id);
const log = (line, cls) => {
  const span = document.createElement('span');
  if (cls) span.className = cls;
  span.textContent = `${line}\n`;
  $('log').append(span);
};

if (!rpc) {
  $('node').textContent = 'Give the node’s RPC URL as a query parameter: ?rpc=ws://127.0.0.1:9944';
} else {
  const client = new CairnClient(rpc);
  client.nodeInfo().then(
    (info) => ($('node').textContent = `Node ${toHex(info.address).slice(0, 12)}… of chain ${info.chain_name}, at height ${info.height}.`),
    (e) => ($('node').textContent = `Cannot reach ${rpc}: ${e.message}`),
  );

  $('job').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    $('log').textContent = '';
    try {
      const key = parseKeyFile(await $('key').files[0].text());
      const module = new Uint8Array(await $('module').files[0].arrayBuffer());
      const genesisFile = $('genesis').files[0];
      // A genesis of your own is stronger: the node's own genesis lets it vouch for itself.
      const genesis = genesisFile ? Genesis.fromJson(parseJson(await genesisFile.text())) : await client.chainGenesis();
      log(`verifying against chain id ${toHex(chainId(genesis))} (${genesisFile ? genesisFile.name : 'the node’s chain_genesis'})`);
      const run = await runJob(client, { module, input: $('input').value, key }, {
        genesis,
        onEvent: (e) => log(`${e.stage}${e.height !== undefined && e.height !== null ? ` at height ${e.height}` : ''}`),
      });
      log(`job ${run.jobId}`);
      log(`output: ${new TextDecoder().decode(run.output)}`);
      log('receipt proof verified in this browser', 'ok');
    } catch (e) {
      log(`${e.name}: ${e.message}`, 'bad');
    }
  });
}
