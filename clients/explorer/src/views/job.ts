// A job: its timeline (accepted → executed → included → finalized, from `job_subscribe`, live),
// what `job_get` says (provider, fuel, price paid, output, why it waits or failed), and the
// "verify in this browser" action on its receipt proofs.

import { CairnRpcError, type JobEvent, type JobInfo, type JobStage, type ReceiptProof, isTerminalStage, toHex } from '../../../ts/src/index.ts';
import type { App } from '../app.ts';
import { bytesView, errorBox, facts, fill, h, hash, num, time } from '../dom.ts';
import { type GenesisSource, type ProofOutcome, genesisFromFile, verifyOne } from '../verify.ts';
import { heightLink, link } from './common.ts';

/** The stages of a job that goes well, in order. */
const HAPPY_STAGES: JobStage[] = ['accepted', 'executed', 'included', 'finalized'];

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
        ['output', r ? h('div', { id: 'job-output' }, bytesView(r.output)) : h('span', { class: 'muted' }, '—')],
      ]),
    );
    details.setAttribute('data-state', 'ready');
    renderVerify();
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
    const outcomes = await Promise.all(proofs.map((p) => verifyOne(p, id, source.genesis, info?.result && toHex(info.result.provider) === toHex(p.receipt.claim.provider) ? info.result.output : null)));
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
