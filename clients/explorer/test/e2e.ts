// The explorer end to end in headless Chromium against a real testnet (cli/tests/it/explorer.rs
// runs it): loaded from the node's /explorer/, the block list renders and follows the head; a
// job submitted here reaches "finalized" on its page, live; "verify in this browser" succeeds
// for the node's proof (against the node's genesis and against a genesis.json loaded from a
// file) and fails, with the verifier's exact message, for a wrong genesis and for the proof a
// lying proxy serves; the other pages render; search finds the job. Screenshots go to
// --artifacts. Then the browser example (clients/ts/examples/browser) runs a job and verifies
// it. The last line of stdout is a JSON summary.
//
//   node test/e2e.ts --rpc ws://127.0.0.1:<port> --genesis <testnet>/genesis.json \
//       --key <testnet>/client-key.json --module uppercase.wasm --artifacts <dir> \
//       [--chromium /usr/bin/chromium] [--timeout 150]

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import {
  CairnClient,
  actions,
  submitTx,
  Genesis,
  ReceiptProof,
  chainId,
  offerJobId,
  parseJson,
  prepareOffer,
  signOffer,
  toHex,
  verifyReceiptProof,
} from '../../ts/src/index.ts';
import { loadKeyFile } from '../../ts/src/node.ts';
import { startTamperingProxy, tamperProof } from './proxy.ts';
import { serveFolder } from './static.ts';

const here = dirname(fileURLToPath(import.meta.url));

const { values: args } = parseArgs({
  options: {
    rpc: { type: 'string' },
    genesis: { type: 'string' },
    key: { type: 'string' },
    module: { type: 'string' },
    artifacts: { type: 'string', default: 'explorer-artifacts' },
    chromium: { type: 'string', default: process.env['CAIRN_CHROMIUM'] ?? '/usr/bin/chromium' },
    timeout: { type: 'string', default: '150' },
  },
});
for (const k of ['rpc', 'genesis', 'key', 'module'] as const) if (!args[k]) throw new Error(`--${k} is required`);
// Chromium refuses to read an uploaded file whose path holds `..`: normalize every path.
for (const k of ['genesis', 'key', 'module', 'artifacts'] as const) args[k] = resolve(args[k]!);

/** How long one page may take to show what is awaited (a job's finalization included). */
const STEP_TIMEOUT_MS = 60_000;
/** The input of the test's job and the output the uppercase module gives. */
const INPUT = 'hello from the explorer';
const OUTPUT = INPUT.toUpperCase();

const wsUrl = args.rpc!;
const httpUrl = wsUrl.replace(/^ws/, 'http').replace(/\/$/, '');
const artifacts = args.artifacts!;
mkdirSync(artifacts, { recursive: true });
const summary: Record<string, unknown> = { ok: false };
const pageErrors: string[] = [];
/** Console errors, reported (a refused WebSocket during a reconnection logs one) but not failing. */
const consoleErrors: string[] = [];
const log = (...a: unknown[]): void => console.error('[explorer-e2e]', ...a);

const overall = setTimeout(() => {
  log(`no result within ${args.timeout} s`);
  console.log(JSON.stringify({ ...summary, ok: false, error: 'timeout' }));
  process.exit(1);
}, Number(args.timeout) * 1000);

async function shot(page: Page, name: string): Promise<void> {
  const path = join(artifacts, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  ((summary['screenshots'] ??= []) as string[]).push(path);
}

async function text(page: Page, selector: string): Promise<string> {
  return page.$eval(selector, (el) => (el as HTMLElement).innerText);
}

function check(cond: unknown, what: string): asserts cond {
  if (!cond) throw new Error(what);
}

/** Clicks "verify" and waits for its outcome: `verified` or `failed`, and the result's text. */
async function verifyOnPage(page: Page): Promise<{ state: string; text: string; errors: string[] }> {
  await page.waitForSelector('#verify-button:not([disabled])', { timeout: STEP_TIMEOUT_MS });
  await page.$eval('#verify-result', (el) => el.setAttribute('data-state', 'clicked'));
  await page.click('#verify-button');
  await page.waitForSelector('#verify-result[data-state="verified"], #verify-result[data-state="failed"]', { timeout: STEP_TIMEOUT_MS });
  const state = await page.$eval('#verify-result', (el) => el.getAttribute('data-state') ?? '');
  const errors = await page.$$eval('#verify-result .verify-error', (els) => els.map((e) => (e as HTMLElement).innerText));
  return { state, text: await text(page, '#verify-result'), errors };
}

async function newPage(browser: Browser): Promise<Page> {
  const page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 900 });
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  page.on('console', (m) => {
    if (m.type() === 'error') consoleErrors.push(m.text());
  });
  return page;
}

async function main(): Promise<void> {
  const genesisText = readFileSync(args.genesis!, 'utf8');
  const genesis = Genesis.fromJson(parseJson(genesisText));
  const chain = toHex(chainId(genesis));
  summary['chain_id'] = chain;
  const key = await loadKeyFile(args.key!);
  const client = new CairnClient(wsUrl);

  // GET /explorer redirects to /explorer/.
  const redirect = await fetch(`${httpUrl}/explorer`, { redirect: 'manual' });
  check(redirect.status >= 300 && redirect.status < 400 && redirect.headers.get('location')?.endsWith('/explorer/'), `GET /explorer answered ${redirect.status} ${redirect.headers.get('location')}`);

  const browser = await puppeteer.launch({
    executablePath: args.chromium!,
    headless: true,
    args: [...(process.getuid?.() === 0 ? ['--no-sandbox'] : []), '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run'],
  });
  try {
    const page = await newPage(browser);

    // 1. The explorer from the node's own /explorer/: an idle testnet may still be at its
    //    genesis (no blocks until there is something to include), so the list may be empty.
    await page.goto(`${httpUrl}/explorer/`, { waitUntil: 'domcontentloaded' });
    await page.waitForSelector('#block-list[data-state="ready"]', { timeout: STEP_TIMEOUT_MS });
    await page.waitForFunction(() => document.querySelector('#conn')?.textContent === 'live', { timeout: STEP_TIMEOUT_MS });
    await shot(page, 'blocks-at-start');

    // 2. A job: its page opened before it is submitted, followed to finalized, live.
    const wasm = new Uint8Array(readFileSync(args.module!));
    await client.modulePut(wasm);
    const offer = await prepareOffer(client, { module: wasm, input: INPUT, key });
    const jobId = toHex(offerJobId(offer, key));
    summary['job_id'] = jobId;
    await page.goto(`${httpUrl}/explorer/#/job/${jobId}`, { waitUntil: 'domcontentloaded' });
    await page.waitForSelector('#timeline');
    await client.jobSubmit(signOffer(offer, key));
    await page.waitForSelector('#timeline[data-stage="finalized"]', { timeout: STEP_TIMEOUT_MS });
    await page.waitForFunction(() => document.querySelector('#job-stage')?.textContent === 'finalized' && document.querySelector('#job-details')?.textContent?.includes('price paid'), { timeout: STEP_TIMEOUT_MS });
    const stagesDone = await page.$$eval('#timeline li.done', (els) => els.map((e) => e.getAttribute('data-stage')));
    check(JSON.stringify(stagesDone) === JSON.stringify(['accepted', 'executed', 'included', 'finalized']), `timeline: ${stagesDone}`);
    summary['timeline'] = stagesDone;
    const output = await text(page, '#job-output');
    check(output.includes(OUTPUT), `the job page shows output ${JSON.stringify(output)}`);

    // The block list now has blocks: a fresh page's first load to a rendered list, timed.
    const fresh = await newPage(browser);
    const t0 = performance.now();
    await fresh.goto(`${httpUrl}/explorer/`, { waitUntil: 'domcontentloaded' });
    await fresh.waitForSelector('#block-list[data-state="ready"] tbody tr', { timeout: STEP_TIMEOUT_MS });
    summary['first_load_ms'] = Math.round(performance.now() - t0);
    const rows = await fresh.$$eval('#block-list tbody tr', (r) => r.length);
    summary['block_rows'] = rows;
    await shot(fresh, 'blocks');
    // Live: a transfer makes a block, and the open list shows it without a reload.
    const firstHead = BigInt((await fresh.$eval('#block-list', (el) => el.getAttribute('data-head'))) ?? '0');
    await submitTx(client, key, actions.transfer(new Uint8Array(32).fill(7), 1n), { wait: false });
    await fresh.waitForFunction((h) => BigInt(document.querySelector('#block-list')?.getAttribute('data-head') ?? '0') > BigInt(h), { timeout: STEP_TIMEOUT_MS }, String(firstHead));
    summary['live_head'] = true;
    await fresh.close();

    // 3. Verify: the node's genesis.
    const honest = await verifyOnPage(page);
    check(honest.state === 'verified', `the honest proof did not verify: ${honest.text}`);
    check(honest.text.includes('verified') && honest.text.includes(chain.slice(0, 8)), `verify result: ${honest.text}`);
    summary['verified_text'] = honest.text;
    await shot(page, 'job-verified');

    // 4. Verify against a genesis.json the user loads, then against a wrong one.
    const input = await page.$('#genesis-file');
    check(input, 'no genesis file input');
    await (input as unknown as { uploadFile(p: string): Promise<void> }).uploadFile(args.genesis!);
    await page.waitForFunction(() => document.querySelector('#verify')?.textContent?.includes('the file genesis.json'), { timeout: STEP_TIMEOUT_MS });
    const fromFile = await verifyOnPage(page);
    check(fromFile.state === 'verified' && fromFile.text.includes('the file genesis.json'), `with the loaded genesis: ${fromFile.text}`);
    const wrongPath = join(artifacts, 'wrong-genesis.json');
    const wrong = JSON.parse(genesisText) as { chain_name: string };
    wrong.chain_name += '-not-this-one';
    writeFileSync(wrongPath, JSON.stringify(wrong, null, 2));
    await (input as unknown as { uploadFile(p: string): Promise<void> }).uploadFile(wrongPath);
    await page.waitForFunction(() => document.querySelector('#verify')?.textContent?.includes('wrong-genesis.json'), { timeout: STEP_TIMEOUT_MS });
    const wrongOutcome = await verifyOnPage(page);
    check(wrongOutcome.state === 'failed' && wrongOutcome.errors.length > 0, `with a wrong genesis: ${wrongOutcome.text}`);
    summary['wrong_genesis_error'] = wrongOutcome.errors[0];
    await shot(page, 'job-wrong-genesis');

    // 5. The other pages.
    const info = await client.jobGet(jobId);
    const receiptHeight = info.receipt_height!;
    await page.goto(`${httpUrl}/explorer/#/block/${receiptHeight}`, { waitUntil: 'domcontentloaded' });
    await page.waitForSelector('#block[data-state="ready"]', { timeout: STEP_TIMEOUT_MS });
    const blockText = await text(page, '#block');
    check(blockText.includes(jobId.slice(0, 8)), `block ${receiptHeight} does not show the job's receipt`);
    // The commit that finalized it: more than two thirds of the validators signed, each listed.
    const signers = await page.$$eval('#block .signers li', (r) => r.length);
    summary['block_signers'] = signers;
    check(signers * 3 > genesis.validators.length * 2, `block ${receiptHeight} lists ${signers} signers of ${genesis.validators.length} validators`);
    await page.waitForFunction(() => !document.querySelector('#finalized-by')?.textContent?.includes('waiting'), { timeout: STEP_TIMEOUT_MS });
    await shot(page, 'block');
    const providers = await client.providerList();
    await page.goto(`${httpUrl}/explorer/#/providers`);
    await page.waitForSelector('#providers[data-state="ready"]', { timeout: STEP_TIMEOUT_MS });
    const providerRows = await page.$$eval('#providers tbody tr', (r) => r.length);
    check(providerRows === providers.length, `providers: ${providerRows} rows, provider_list has ${providers.length}`);
    await shot(page, 'providers');
    await page.goto(`${httpUrl}/explorer/#/validators`);
    await page.waitForSelector('#validators[data-state="ready"]', { timeout: STEP_TIMEOUT_MS });
    check((await page.$$eval('#validators tbody tr', (r) => r.length)) === genesis.validators.length, 'validators: one row per genesis validator');
    await shot(page, 'validators');
    await page.goto(`${httpUrl}/explorer/#/params`);
    await page.waitForSelector('#params[data-state="ready"]', { timeout: STEP_TIMEOUT_MS });
    check((await text(page, '#params')).includes(genesis.chain_name), 'params: the chain name');
    await shot(page, 'params');
    await page.goto(`${httpUrl}/explorer/#/account/${key.address}`);
    await page.waitForSelector('#account[data-state="ready"]', { timeout: STEP_TIMEOUT_MS });
    await shot(page, 'account');
    // Search: the job id leads to the job, a height to its block.
    await page.goto(`${httpUrl}/explorer/#/`);
    await page.type('#search-input', jobId);
    await page.keyboard.press('Enter');
    await page.waitForFunction((id) => location.hash === `#/job/${id}`, { timeout: STEP_TIMEOUT_MS }, jobId);
    await page.$eval('#search-input', (el) => ((el as HTMLInputElement).value = ''));
    await page.type('#search-input', String(receiptHeight));
    await page.keyboard.press('Enter');
    await page.waitForFunction((h) => location.hash === `#/block/${h}`, { timeout: STEP_TIMEOUT_MS }, String(receiptHeight));
    summary['pages'] = ['blocks', 'job', 'block', 'providers', 'validators', 'params', 'account', 'search'];

    // 6. A lying node: the same page through the tampering proxy must refuse the proof, with
    //    the message the verifier gives for that tampered proof.
    const proofJson = (await client.call('job_proof', { job_id: jobId })) as { receipt: { provider_signature: string } };
    // Kept with the genesis for `bench.ts --proof … --genesis …`: a real proof of a testnet job.
    writeFileSync(join(artifacts, 'receipt-proof.json'), JSON.stringify(proofJson, null, 2));
    writeFileSync(join(artifacts, 'genesis.json'), genesisText);
    tamperProof(proofJson);
    let expected = '';
    try {
      verifyReceiptProof(ReceiptProof.fromJson(proofJson), genesis);
    } catch (e) {
      expected = `${(e as Error).name}: ${(e as Error).message}`;
    }
    check(expected !== '', 'the tampered proof verified in Node');
    const proxy = await startTamperingProxy(httpUrl);
    try {
      const lied = await newPage(browser);
      await lied.goto(`${proxy.url}/explorer/#/job/${jobId}`, { waitUntil: 'domcontentloaded' });
      await lied.waitForSelector('#timeline[data-stage="finalized"]', { timeout: STEP_TIMEOUT_MS });
      const outcome = await verifyOnPage(lied);
      await shot(lied, 'job-tampered');
      check(outcome.state === 'failed', `the tampered proof was not refused: ${outcome.text}`);
      check(outcome.errors[0] === expected, `the page says ${JSON.stringify(outcome.errors[0])}, the verifier ${JSON.stringify(expected)}`);
      check(proxy.tampered >= 1, 'the proxy tampered with nothing');
      summary['tampered_error'] = outcome.errors[0];
      await lied.close();
    } finally {
      await proxy.close();
    }

    // 7. The browser example (clients/ts/examples/browser) runs a job and verifies it, on the
    //    client's browser bundle.
    const example = await serveFolder(join(here, '../../ts/examples/browser'));
    try {
      const ex = await newPage(browser);
      await ex.goto(`${example.url}?rpc=${encodeURIComponent(wsUrl)}`, { waitUntil: 'domcontentloaded' });
      await ex.waitForFunction(() => document.querySelector('#node')?.textContent?.startsWith('Node '), { timeout: STEP_TIMEOUT_MS });
      await ((await ex.$('#key')) as unknown as { uploadFile(p: string): Promise<void> }).uploadFile(args.key!);
      await ((await ex.$('#module')) as unknown as { uploadFile(p: string): Promise<void> }).uploadFile(args.module!);
      await ex.click('button[type=submit]');
      await ex.waitForFunction(() => /verified in this browser|Error/.test(document.querySelector('#log')?.textContent ?? ''), { timeout: STEP_TIMEOUT_MS });
      const exLog = await text(ex, '#log');
      await shot(ex, 'browser-example');
      check(exLog.includes('receipt proof verified in this browser') && exLog.includes('HELLO FROM A BROWSER'), `the browser example: ${exLog}`);
      summary['browser_example'] = exLog.trim().split('\n');
      await ex.close();
    } finally {
      example.close();
    }

    check(pageErrors.length === 0, `errors in the page: ${pageErrors.join('; ')}`);
    summary['ok'] = true;
  } finally {
    summary['page_errors'] = pageErrors;
    summary['console_errors'] = consoleErrors;
    await browser.close();
    client.close();
  }
}

main().then(
  () => {
    clearTimeout(overall);
    console.log(JSON.stringify(summary));
  },
  (e: Error) => {
    clearTimeout(overall);
    log(e.stack ?? e.message);
    console.log(JSON.stringify({ ...summary, ok: false, error: e.message }));
    process.exit(1);
  },
);
