// Measures what the explorer's users wait for:
//   - receipt-proof verification with the TypeScript client (`verifyReceiptProof`), per proof,
//     in Node and in headless Chromium (the browser bundle clients/ts/examples/browser/
//     cairn-client.js; there also `verifyReceiptProofAsync`, what the explorer runs: its
//     signatures checked by WebCrypto first, none cached), median and p99 over many runs;
//   - the explorer's first load to a rendered block list, in fresh browser contexts, when a
//     node is given (--rpc);
//   - the explorer's size, gzipped.
//
//   node bench.ts [--proof p.json --genesis g.json] [--rpc ws://127.0.0.1:<port>] [--chromium /usr/bin/chromium]
//
// The proof defaults to docs/fixtures/linked/receipt-proof.json (a real proof of a 4-validator
// chain, its commit signed by 3: four Ed25519 verifications). Prints a JSON report.

import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { gzipSync } from 'node:zlib';
import puppeteer from 'puppeteer-core';
import { Genesis, ReceiptProof, parseJson, verifyReceiptProof } from '../ts/src/index.ts';

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, '../..');
const { values: args } = parseArgs({
  options: {
    proof: { type: 'string', default: join(repo, 'docs/fixtures/linked/receipt-proof.json') },
    genesis: { type: 'string', default: join(repo, 'docs/fixtures/linked/genesis.json') },
    rpc: { type: 'string' },
    chromium: { type: 'string', default: process.env['CAIRN_CHROMIUM'] ?? '/usr/bin/chromium' },
  },
});

/** Verifications timed, after the warm-up ones (the JIT and noble's tables settle first). */
const ITERATIONS = 2000;
const WARMUP = 200;
/** Fresh loads of the explorer timed. */
const FIRST_LOADS = 10;
/** The targets: per proof in Node and in the browser, the first load, the bundle. */
const TARGETS = { node_ms: 2, chromium_ms: 5, first_load_ms: 1000, gzip_bytes: 200 * 1024 };

function stats(samples: number[]): { median: number; p99: number; min: number; n: number } {
  const s = [...samples].sort((a, b) => a - b);
  const at = (q: number): number => s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
  const r = (x: number): number => Math.round(x * 1000) / 1000;
  return { median: r(at(0.5)), p99: r(at(0.99)), min: r(s[0]!), n: s.length };
}

const proofText = readFileSync(args.proof!, 'utf8');
const genesisText = readFileSync(args.genesis!, 'utf8');

function benchNode(): ReturnType<typeof stats> {
  const proof = ReceiptProof.fromJson(parseJson(proofText));
  const genesis = Genesis.fromJson(parseJson(genesisText));
  const samples: number[] = [];
  for (let i = 0; i < WARMUP + ITERATIONS; i++) {
    const t = performance.now();
    verifyReceiptProof(proof, genesis);
    if (i >= WARMUP) samples.push(performance.now() - t);
  }
  return stats(samples);
}

/** The in-page benchmark: the same loop, in the browser, on the browser bundle. */
const PAGE = `<!doctype html><meta charset="utf-8"><script type="module">
const c = await import('./cairn-client.js');
const proof = c.ReceiptProof.fromJson(c.parseJson(await (await fetch('./proof.json')).text()));
const genesis = c.Genesis.fromJson(c.parseJson(await (await fetch('./genesis.json')).text()));
const samples = [];
for (let i = 0; i < ${WARMUP + ITERATIONS}; i++) {
  const t = performance.now();
  c.verifyReceiptProof(proof, genesis);
  if (i >= ${WARMUP}) samples.push(performance.now() - t);
}
// What the explorer runs: the signatures checked first by WebCrypto, none of them cached.
const asyncSamples = [];
for (let i = 0; i < ${WARMUP + ITERATIONS}; i++) {
  c.clearPreverified();
  const t = performance.now();
  await c.verifyReceiptProofAsync(proof, genesis);
  if (i >= ${WARMUP}) asyncSamples.push(performance.now() - t);
}
window.benchResult = { samples, asyncSamples, isolated: crossOriginIsolated };
</script>`;

async function benchChromium(): Promise<{
  verify: ReturnType<typeof stats>;
  verifyAsync: ReturnType<typeof stats>;
  isolated: boolean;
  firstLoad: ReturnType<typeof stats> | null;
}> {
  const files: Record<string, [string, string | Buffer]> = {
    '/': ['text/html', PAGE],
    '/cairn-client.js': ['text/javascript', readFileSync(join(repo, 'clients/ts/examples/browser/cairn-client.js'))],
    '/proof.json': ['application/json', proofText],
    '/genesis.json': ['application/json', genesisText],
  };
  // Cross-origin isolation gives performance.now() 5 µs resolution instead of 100 µs.
  const server = createServer((req, res) => {
    const f = files[req.url ?? ''];
    if (!f) return void res.writeHead(404).end();
    res.writeHead(200, { 'content-type': f[0], 'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp' }).end(f[1]);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  const browser = await puppeteer.launch({
    executablePath: args.chromium!,
    headless: true,
    args: [...(process.getuid?.() === 0 ? ['--no-sandbox'] : []), '--disable-gpu', '--disable-dev-shm-usage'],
  });
  try {
    const page = await browser.newPage();
    await page.goto(url);
    await page.waitForFunction('window.benchResult', { timeout: 120_000 });
    const r = (await page.evaluate('window.benchResult')) as { samples: number[]; asyncSamples: number[]; isolated: boolean };
    let firstLoad: ReturnType<typeof stats> | null = null;
    if (args.rpc) {
      const explorer = `${args.rpc.replace(/^ws/, 'http').replace(/\/$/, '')}/explorer/`;
      const loads: number[] = [];
      for (let i = 0; i < FIRST_LOADS; i++) {
        const ctx = await browser.createBrowserContext();
        const p = await ctx.newPage();
        const t = performance.now();
        await p.goto(explorer, { waitUntil: 'domcontentloaded' });
        await p.waitForSelector('#block-list[data-state="ready"] tbody tr', { timeout: 30_000 });
        loads.push(performance.now() - t);
        await ctx.close();
      }
      firstLoad = stats(loads);
    }
    return { verify: stats(r.samples), verifyAsync: stats(r.asyncSamples), isolated: r.isolated, firstLoad };
  } finally {
    await browser.close();
    server.close();
  }
}

const gzip = ['explorer.js', 'explorer.css', 'index.html'].reduce(
  (n, f) => n + gzipSync(readFileSync(join(repo, 'node/explorer', f)), { level: 9 }).length,
  0,
);
const node = benchNode();
const chromium = await benchChromium();
const report = {
  proof: args.proof,
  commit_signatures: ReceiptProof.fromJson(parseJson(proofText)).commit.signatures.length,
  verify_node_ms: node,
  verify_chromium_ms: { ...chromium.verify, timer_resolution: chromium.isolated ? '5 µs (cross-origin isolated)' : '100 µs' },
  verify_chromium_async_ms: chromium.verifyAsync,
  explorer_first_load_ms: chromium.firstLoad,
  explorer_gzip_bytes: gzip,
  targets: TARGETS,
  met: {
    node: node.median <= TARGETS.node_ms,
    chromium: chromium.verifyAsync.median <= TARGETS.chromium_ms,
    first_load: chromium.firstLoad ? chromium.firstLoad.median <= TARGETS.first_load_ms : null,
    gzip: gzip <= TARGETS.gzip_bytes,
  },
};
console.log(JSON.stringify(report, null, 2));
