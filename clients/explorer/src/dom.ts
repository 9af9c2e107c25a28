// Small DOM helpers: the explorer builds its pages with these and no framework, so that the
// bundle stays small and the page's behaviour is all in plain view.

import { toHex } from '../../ts/src/index.ts';

type Child = Node | string | number | bigint | null | undefined | false | Child[];
type Attrs = Record<string, string | number | boolean | ((ev: Event) => void) | undefined>;

/** An element: `h('a', {href: '#/block/3', class: 'x'}, 'text', child)`; `on…` attributes are listeners. */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs | null = null, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === undefined || v === false) continue;
    if (typeof v === 'function') el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el: Node, children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replaces `el`'s content. */
export function fill(el: Element, ...children: Child[]): void {
  el.replaceChildren();
  append(el, children);
}

/** Hex digits kept at each end of a shortened hash. */
export const HASH_SHOWN_DIGITS = 8;

/**
 * A hash or key, shortened (`1a2b3c4d…9f8e7d6c`), monospace, its full value on hover and
 * copied on click; a link when `href` is given.
 */
export function hash(value: Uint8Array | string, href?: string): HTMLElement {
  const full = typeof value === 'string' ? value : toHex(value);
  const short = full.length > 2 * HASH_SHOWN_DIGITS + 1 ? `${full.slice(0, HASH_SHOWN_DIGITS)}…${full.slice(-HASH_SHOWN_DIGITS)}` : full;
  const text = href ? h('a', { href, class: 'hash', title: full }, short) : h('span', { class: 'hash', title: full }, short);
  // The icon is drawn by CSS (two squares): no icon font or image to load.
  const copy = h('button', { class: 'copy', title: `copy ${full}`, 'aria-label': 'copy', type: 'button' });
  copy.addEventListener('click', () => {
    void copyText(full).then((ok) => {
      copy.classList.add(ok ? 'copied' : 'copy-failed');
      setTimeout(() => copy.classList.remove('copied', 'copy-failed'), COPIED_MARK_MS);
    });
  });
  return h('span', { class: 'hashwrap', 'data-full': full }, text, copy);
}

/** How long a copy button shows that it copied. */
const COPIED_MARK_MS = 1200;

async function copyText(text: string): Promise<boolean> {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    return false;
  }
}

/** A date from milliseconds since the epoch, in UTC (the chain's clock has no time zone). */
export function time(ms: bigint | number): string {
  const d = new Date(Number(ms));
  return `${d.toISOString().replace('T', ' ').replace('Z', '')} UTC`;
}

/** How long ago, coarse: for lists. */
export function ago(ms: bigint | number, now = Date.now()): string {
  const s = Math.max(0, Math.round((now - Number(ms)) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

/** A number with thin separators every three digits (u64s are bigints). */
export function num(v: bigint | number): string {
  return String(v).replace(/\B(?=(\d{3})+(?!\d))/g, '\u202f');
}

/** A two-column table of label → value. */
export function facts(rows: [string, Child][]): HTMLTableElement {
  return h('table', { class: 'facts' }, rows.map(([k, v]) => h('tr', null, h('th', null, k), h('td', null, v))));
}

/** A table with a header row. */
export function table(head: string[], rows: Child[][], attrs: Attrs = {}): HTMLTableElement {
  return h(
    'table',
    { class: 'list', ...attrs },
    h('thead', null, h('tr', null, head.map((x) => h('th', null, x)))),
    h('tbody', null, rows.map((r) => h('tr', null, r.map((c) => h('td', null, c))))),
  );
}

/** An error box with the message as it came (RPC errors carry what to do). */
export function errorBox(e: unknown, what: string): HTMLElement {
  const msg = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
  return h('div', { class: 'error', role: 'alert' }, h('strong', null, what), ' ', msg);
}

/** Bytes as UTF-8 text when they are printable, else as hex. */
export function bytesView(b: Uint8Array): HTMLElement {
  if (b.length === 0) return h('span', { class: 'muted' }, '(empty)');
  try {
    const text = new TextDecoder('utf-8', { fatal: true }).decode(b);
    // Control characters other than tab and newlines make text misleading: show hex instead.
    if (!/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/.test(text)) return h('pre', { class: 'output' }, text);
  } catch {
    // not UTF-8: hex below
  }
  return h('pre', { class: 'output mono' }, toHex(b));
}
