// A job: its timeline (accepted → executed → included → finalized, from `job_subscribe`, live),
// what `job_get` says (provider, fuel, price paid, output, why it waits or failed), and the
// "verify in this browser" action on its receipt proofs. An output larger than the chain
// carries inline is a blob named by its output hash: fetched on demand (`blob_get`, checked
// against the hash), then shown and verified like an inline one.

import {
  CairnRpcError,
  type JobEvent,
  type JobInfo,
  type JobStage,
  type ReceiptProof,
  type ResultInfo,
  isTerminalStage,
  outputOf,
  toHex,
} from '../../../ts/src/index.ts';
import type { App } from '../app.ts';
import { bytesView, errorBox, facts, fill, h, hash, num, time } from '../dom.ts';
import { type GenesisSource, type ProofOutcome, genesisFromFile, outputToCheck, verifyOne } from '../verify.ts';
import { heightLink, link } from './common.ts';

/** The stages of a job that goes well, in order. */
const HAPPY_STAGES: JobStage[] = ['accepted', 'executed', 'included', 'finalized'];

/** The most bytes of a fetched output shown on the page (all of it can be downloaded). */
export const OUTPUT_SHOWN_BYTES_MAX = 64 * 1024;

/** An output left in a blob (by its hash, hex): not fetched yet, being fetched, fetched (and checked), or failed. */
type BlobOutput =
  | { state: 'idle' }
  | { state: 'fetching'; hash: string }
  | { state: 'fetched'; hash: string; bytes: Uint8Array; url: string }
  | { state: 'failed'; hash: string; error: unknown };

/** What the page knows of each stage. */
interface Seen {
  stage: JobStage;
  height: bigint | null;
  /** When this page received the event (the node sends past events first, so early ones are replays). */
  receivedMs: number;
  reason: string | null;
}

export function jobPage(app: App, root: HTMLElement, id: string): () => void {
  const timeline = h('ol', { id: 'timeline', class: 'timeline' });
  const details = h('div', { id: 'job-details', 'data-state': 'loading' }, h('p', { class: 'muted' }, 'Loading…'));
  const verifyBox = h('div', { id: 'verify' });
  fill(root, h('h1', null, 'Job ', hash(id)), h('h2', null, 'Timeline'), timeline, details, h('h2', null, 'Verify the receipt'), verifyBox);

  const seen = new Map<JobStage, Seen>();
  let info: JobInfo | null = null;
  let closed = false;
  let userGenesis: GenesisSource | null = null;
  let blobOutput: BlobOutput = { state: 'idle' };

  const renderTimeline = (): void => {
    const terminal = [...seen.keys()].find((s) => s === 'expired' || s === 'dropped');
    const stages: JobStage[] = terminal ? [...HAPPY_STAGES.filter((s) => seen.has(s)), terminal] : HAPPY_STAGES;
    const last = [...seen.keys()].pop() ?? info?.stage ?? null;
    timeline.setAttribute('data-stage', last ?? 'unknown');
    fill(
      timeline,
      stages.map((stage) => {
        const s = seen.get(stage);
        const done = s !== undefined || info?.stage === stage || (info !== null && rank(stage) >= 0 && rank(info.stage) >= rank(stage));
        return h(
          'li',
          { class: `step ${done ? 'done' : 'todo'} ${stage}`, 'data-stage': stage },
          h('span', { class: 'name' }, stage),
          s?.height != null ? h('span', { class: 'when' }, 'in ', heightLink(s.height), ' ', blockTime(app, s.height)) : null,
          s ? h('span', { class: 'when muted' }, `seen ${time(s.receivedMs)}`) : null,
          s?.reason ? h('div', { class: 'reason' }, s.reason) : null,
        );
      }),
    );
  };

  const renderDetails = (): void => {
    if (!info) return;
    const r = info.result;
    fill(
      details,
      info.reason ? h('div', { class: 'error', id: 'job-reason' }, h('strong', null, `${info.stage}:`), ' ', info.reason) : null,
      info.waiting ? h('div', { class: 'waiting', id: 'job-waiting' }, h('strong', null, `waiting (${info.waiting.reason}):`), ' ', info.waiting.message) : null,
      r && r.status !== 'ok' ? h('div', { class: 'error', id: 'job-failure' }, h('strong', null, `failed (${r.status}):`), ' ', r.reason ?? '') : null,
      facts([
        ['stage', h('span', { id: 'job-stage', class: `stage ${info.stage}` }, info.stage)],
        ['client', hash(info.client, link.account(info.client))],
        ['module', hash(info.module_id)],
        ['fuel limit', num(info.fuel_limit)],
        ['max price', `${num(info.max_price)} per fuel`],
        ['assigned', info.assigned.length ? h('span', null, info.assigned.map((a) => h('span', { class: 'item' }, hash(a, link.account(a))))) : h('span', { class: 'muted' }, 'nobody yet')],
        ['offer in block', info.offer_height != null ? heightLink(info.offer_height) : h('span', { class: 'muted' }, info.pending ? `pending in the mempool (nonce ${info.pending.nonce}, fee ${info.pending.fee}${info.pending.includable ? '' : ', behind a nonce gap'})` : '—')],
        ['receipt in block', info.receipt_height != null ? heightLink(info.receipt_height) : h('span', { class: 'muted' }, '—')],
        ['provider', r ? hash(r.provider, link.account(r.provider)) : h('span', { class: 'muted' }, '—')],
        ['status', r ? r.status : h('span', { class: 'muted' }, '—')],
        ['fuel used', r ? num(r.fuel_used) : h('span', { class: 'muted' }, '—')],
        ['price paid', info.paid != null ? num(info.paid) : h('span', { class: 'muted' }, 'not settled yet')],
        ['output hash', r ? hash(r.output_hash) : h('span', { class: 'muted' }, '—')],
        ['output', r ? outputView(r) : h('span', { class: 'muted' }, '—')],
      ]),
    );
    details.setAttribute('data-state', 'ready');
    renderVerify();
  };

  /** The state of the blob of `r`'s output (a result of another output hash starts over). */
  const blobOf = (r: ResultInfo): BlobOutput => (blobOutput.state !== 'idle' && blobOutput.hash === toHex(r.output_hash) ? blobOutput : { state: 'idle' });

  const outputView = (r: ResultInfo): HTMLElement => {
    if (!r.output_in_blob) return h('div', { id: 'job-output' }, bytesView(r.output));
    const blob = blobOf(r);
    const note = h('p', null, 'In a blob (larger than the chain carries inline), named by the output hash ', hash(r.output_hash));
    const box = h('div', { id: 'job-output', 'data-blob': blob.state }, note);
    if (blob.state === 'fetched') {
      const b = blob.bytes;
      const shown = b.length > OUTPUT_SHOWN_BYTES_MAX ? b.subarray(0, OUTPUT_SHOWN_BYTES_MAX) : b;
      box.append(
        h('p', null, `${num(b.length)} bytes, fetched with blob_get and checked against the output hash; `, h('a', { href: blob.url, download: `${id}.output` }, 'download'),
          shown.length < b.length ? ` (the first ${num(shown.length)} bytes shown)` : ''),
        bytesView(shown),
      );
      return box;
    }
    const outputHash = toHex(r.output_hash);
    const button = h('button', { type: 'button', id: 'job-output-fetch' }, 'Fetch the output (blob_get)');
    button.toggleAttribute('disabled', blob.state === 'fetching');
    button.addEventListener('click', () => {
      blobOutput = { state: 'fetching', hash: outputHash };
      renderDetails();
      outputOf(app.client, r).then(
        // A copy for the Blob: its parts must be over an ArrayBuffer.
        (bytes) => (blobOutput = { state: 'fetched', hash: outputHash, bytes, url: URL.createObjectURL(new Blob([bytes.slice()])) }),
        (error: unknown) => (blobOutput = { state: 'failed', hash: outputHash, error }),
      ).finally(renderDetails);
    });
    box.append(button);
    if (blob.state === 'fetching') box.append(h('span', { class: 'muted' }, ' fetching…'));
    if (blob.state === 'failed') box.append(errorBox(blob.error, 'Could not fetch the output.'));
    return box;
  };

  // --- verify -------------------------------------------------------------------------------
  const verifyResult = h('div', { id: 'verify-result', 'data-state': 'idle' });
  const genesisLabel = h('span', { class: 'muted' }, "the node's genesis (chain_genesis)");
  const fileInput = h('input', { type: 'file', accept: '.json,application/json', id: 'genesis-file' }) as HTMLInputElement;
  fileInput.addEventListener('change', () => {
    const f = fileInput.files?.[0];
    if (!f) return;
    genesisFromFile(f).then(
      (g) => {
        userGenesis = g;
        fill(genesisLabel, `${g.from} (chain id `, hash(g.chainId), ')');
      },
      (e: Error) => fill(genesisLabel, h('span', { class: 'error-inline' }, e.message)),
    );
  });
  const button = h('button', { type: 'button', id: 'verify-button', class: 'primary' }, 'Verify in this browser');
  button.addEventListener('click', () => void runVerify());

  const renderVerify = (): void => {
    if (verifyBox.childElementCount > 0) {
      button.toggleAttribute('disabled', !proofsExpected());
      return;
    }
    fill(
      verifyBox,
      h('p', null, 'Checks the receipt proof here, with no trust in this page’s node beyond the genesis: the commit’s signatures against the genesis validators, the provider’s signature and the Merkle path to the block’s receipt root.'),
      h('p', null, 'Genesis: ', genesisLabel, h('label', { class: 'file' }, ' or load your own genesis.json: ', fileInput)),
      button,
      verifyResult,
    );
    button.toggleAttribute('disabled', !proofsExpected());
  };
  const proofsExpected = (): boolean => info !== null && info.receipt_height != null;

  const runVerify = async (): Promise<void> => {
    verifyResult.setAttribute('data-state', 'running');
    fill(verifyResult, h('p', { class: 'muted' }, 'Verifying…'));
    let source: GenesisSource;
    let proofs: ReceiptProof[];
    try {
      source = userGenesis ?? { ...(await app.genesis()), from: "the node's chain_genesis" };
      proofs = await app.client.jobProofs(id);
    } catch (e) {
      verifyResult.setAttribute('data-state', 'failed');
      fill(verifyResult, errorBox(e, 'Could not fetch what to verify.'));
      return;
    }
    if (proofs.length === 0) {
      verifyResult.setAttribute('data-state', 'failed');
      fill(verifyResult, h('div', { class: 'error' }, 'No receipt of this job is final yet: nothing to verify.'));
      return;
    }
    const started = performance.now();
    const blob = info?.result ? blobOf(info.result) : null;
    const fetched = blob?.state === 'fetched' ? blob.bytes : null;
    const outcomes = await Promise.all(proofs.map((p) => verifyOne(p, id, source.genesis, outputToCheck(info?.result ?? null, p.receipt.claim.provider, fetched))));
    const ms = performance.now() - started;
    const allOk = outcomes.every((o) => o.ok);
    verifyResult.setAttribute('data-state', allOk ? 'verified' : 'failed');
    fill(
      verifyResult,
      h('p', null, 'Against chain id ', hash(source.chainId), ` from ${source.from}; ${proofs.length} proof${proofs.length === 1 ? '' : 's'} in ${ms.toFixed(1)} ms.`),
      outcomes.map((o) => outcomeView(o)),
    );
  };

  // --- data ---------------------------------------------------------------------------------
  const refresh = async (): Promise<void> => {
    try {
      info = await app.client.jobGet(id);
      renderDetails();
      renderTimeline();
    } catch (e) {
      if (e instanceof CairnRpcError && e.code === -33001) {
        fill(details, h('div', { class: 'error' }, `No job ${id} on this node: `, e.message));
      } else {
        fill(details, errorBox(e, 'Could not load the job.'));
      }
      details.setAttribute('data-state', 'error');
    }
  };

  renderTimeline();
  void refresh();
  const sub = app.client.jobSubscribe(id, {
    onEvent: (ev: JobEvent) => {
      seen.set(ev.stage, { stage: ev.stage, height: ev.height ?? null, receivedMs: Date.now(), reason: ev.reason ?? null });
      renderTimeline();
      if (!closed) void refresh();
    },
  });
  sub.done.catch(() => {});
  // Waiting reasons change with the chain: follow job_get while the job is open.
  const offHead = app.onHead(() => {
    if (info && !isTerminalStage(info.stage as JobStage)) void refresh();
  });
  return () => {
    closed = true;
    offHead();
    sub.close();
    if (blobOutput.state === 'fetched') URL.revokeObjectURL(blobOutput.url);
  };
}

function rank(s: JobStage | string): number {
  return HAPPY_STAGES.indexOf(s as JobStage);
}

function outcomeView(o: ProofOutcome): HTMLElement {
  if (o.ok) {
    return h(
      'div',
      { class: 'verified', 'data-outcome': 'verified' },
      h('strong', null, '✔ verified'),
      ` — receipt by `,
      hash(o.provider, link.account(o.provider)),
      ` in block `,
      heightLink(o.height),
      `, commit signed by ${o.signers} of ${o.validators} validators (power ${num(o.signedPower)} of ${num(o.totalPower)})`,
      o.outputMatches ? '; the output shown is the one the receipt commits to' : '',
    );
  }
  return h('div', { class: 'error', 'data-outcome': 'failed' }, h('strong', null, '✘ verification failed'), ' (receipt by ', hash(o.provider), '): ', h('span', { class: 'verify-error' }, o.error));
}

/** A block's time, filled in once fetched. */
function blockTime(app: App, height: bigint): HTMLElement {
  const el = h('span', { class: 'muted' });
  app.block(height).then(
    (b) => (el.textContent = `at ${time(b.header.time_ms)}`),
    () => {},
  );
  return el;
}
