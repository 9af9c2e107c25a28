// Runs a job end to end against a node and prints its verified output:
//
//   node examples/run-job.ts --rpc ws://127.0.0.1:9944 --genesis genesis.json \
//        --key client-key.json --module ../../examples/jobs/wasm/uppercase.wasm --input 'hello'
//
// The module is uploaded if the node lacks it; the offer is estimated first (what it would cost,
// and whether the node would admit it), then signed, submitted and followed to its finalized
// receipt, whose proof is verified against the genesis before the output is printed.

import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

import { CairnJobError, CairnRpcError, Genesis, estimate, parseJson, runJob, CairnClient } from '@cairn/client';
import { loadKeyFile } from '@cairn/client/node';

const { values } = parseArgs({
  options: {
    rpc: { type: 'string', default: 'ws://127.0.0.1:9944' },
    genesis: { type: 'string' },
    key: { type: 'string' },
    module: { type: 'string' },
    input: { type: 'string', default: 'hello from run-job.ts' },
    'fuel-limit': { type: 'string', default: '100000000' },
    'max-price': { type: 'string', default: '1' },
  },
});
if (!values.genesis || !values.key || !values.module) {
  console.error('usage: run-job.ts --rpc <url> --genesis <genesis.json> --key <key.json> --module <file.wasm> [--input <text>]');
  process.exit(2);
}

const genesis = Genesis.fromJson(parseJson(readFileSync(values.genesis, 'utf8')));
const key = await loadKeyFile(values.key);
const spec = {
  module: new Uint8Array(readFileSync(values.module)),
  input: values.input,
  key,
  terms: { fuelLimit: BigInt(values['fuel-limit']), maxPrice: BigInt(values['max-price']) },
};
const client = new CairnClient(values.rpc, {
  onConnection: (e) => e.state === 'retrying' && console.error(`connection lost; retrying in ${e.delayMs} ms`),
});

try {
  const est = await estimate(client, spec);
  console.error(`estimate: ${est.status}, ${est.fuel_used} fuel, cost ${est.cost} (escrow ${est.escrow}, fee ${est.fee})`);
  if (!est.admissible) {
    for (const p of est.problems) console.error(`  would be refused: ${p.reason}: ${p.message}`);
    process.exit(1);
  }
  const run = await runJob(client, spec, {
    genesis,
    onEvent: (ev) => console.error(`${ev.stage}${ev.height !== null ? ` at height ${ev.height}` : ''}`),
  });
  console.error(`job ${run.jobId}: receipt verified in block ${run.receipt.height} (${run.result.fuel_used} fuel)`);
  console.log(new TextDecoder().decode(run.output));
} catch (e) {
  if (e instanceof CairnRpcError) console.error(`the node refused: ${e.message} [${e.code} ${e.reason}]\nhint: ${e.hint}`);
  else if (e instanceof CairnJobError) console.error(`the job ${e.kind}: ${e.message}`);
  else console.error(e);
  process.exitCode = 1;
} finally {
  client.close();
}
