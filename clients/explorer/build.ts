// Builds the explorer into node/explorer/ (index.html, explorer.js, explorer.css: the three
// files the node embeds and serves at /explorer/) and the TypeScript client's browser bundle
// into clients/ts/examples/browser/cairn-client.js. Both are committed, so the node and the
// example need no build step; `--check` rebuilds in memory and fails if any committed file
// differs by a byte, so a stale build cannot go unnoticed.
//
//   node build.ts            # write the files
//   node build.ts --check    # compare, write nothing
//
// Deterministic: a pinned esbuild, minified, no source maps, no timestamps or absolute paths.

import * as esbuild from 'esbuild';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, '../..');
const explorerOut = join(repo, 'node/explorer');
const browserOut = join(repo, 'clients/ts/examples/browser');

/** The explorer's bundle budget, gzipped (JavaScript and CSS together). */
export const EXPLORER_GZIP_BYTES_MAX = 200 * 1024;

/** What browsers the output must run in: ES2022 (top-level await, class fields, bigint). */
const TARGET = 'es2022';

const common: esbuild.BuildOptions = {
  bundle: true,
  write: false,
  minify: true,
  format: 'esm',
  platform: 'browser',
  target: TARGET,
  charset: 'utf8',
  legalComments: 'none',
  logLevel: 'silent',
};

/** Every output file: path → bytes. */
async function build(): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  const one = async (opts: esbuild.BuildOptions, path: string): Promise<void> => {
    const r = await esbuild.build({ ...common, ...opts, outfile: path });
    const files = r.outputFiles ?? [];
    if (files.length !== 1) throw new Error(`${path}: ${files.length} outputs, expected 1`);
    out.set(path, files[0]!.contents);
  };
  await one({ entryPoints: [join(here, 'src/main.ts')] }, join(explorerOut, 'explorer.js'));
  await one({ entryPoints: [join(here, 'src/explorer.css')] }, join(explorerOut, 'explorer.css'));
  out.set(join(explorerOut, 'index.html'), readFileSync(join(here, 'src/index.html')));
  // The client as a browser ESM module: `platform: browser` fails the build on any Node built-in.
  await one({ entryPoints: [join(repo, 'clients/ts/src/index.ts')] }, join(browserOut, 'cairn-client.js'));
  return out;
}

function same(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

const check = process.argv.includes('--check');
const files = await build();
const stale: string[] = [];
for (const [path, bytes] of files) {
  const rel = relative(repo, path);
  if (check) {
    let have: Uint8Array | null = null;
    try {
      have = readFileSync(path);
    } catch {
      // missing: stale
    }
    if (!have || !same(have, bytes)) stale.push(rel);
  } else {
    writeFileSync(path, bytes);
  }
  console.log(`${rel}: ${bytes.length} bytes, ${gzipSync(bytes, { level: 9 }).length} gzipped`);
}
const gz = ['explorer.js', 'explorer.css', 'index.html'].reduce((n, f) => n + gzipSync(files.get(join(explorerOut, f))!, { level: 9 }).length, 0);
console.log(`explorer total: ${gz} bytes gzipped (budget ${EXPLORER_GZIP_BYTES_MAX})`);
if (gz > EXPLORER_GZIP_BYTES_MAX) {
  console.error(`the explorer is ${gz} bytes gzipped, over its budget of ${EXPLORER_GZIP_BYTES_MAX}`);
  process.exit(1);
}
if (stale.length > 0) {
  console.error(`stale build: ${stale.join(', ')} differ from what the sources build; run \`npm run build\` in clients/explorer and commit the result`);
  process.exit(1);
}
if (check) console.log('the committed build is current');
