// Serves a folder's files over HTTP on loopback for the browser tests (the browser example page
// is served this way: modules do not load from file://).

import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';

/** Content types of the files served; anything else is a 404. */
const TYPES: Record<string, string> = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css' };

/** Serves `dir` (only its top-level files, `/` as index.html) until `close()`. */
export async function serveFolder(dir: string): Promise<{ url: string; close(): void }> {
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const name = path === '/' ? 'index.html' : path.slice(1);
    const type = TYPES[name.slice(name.lastIndexOf('.'))];
    if (!type || name.includes('/')) return void res.writeHead(404).end();
    try {
      res.writeHead(200, { 'content-type': type }).end(readFileSync(join(dir, name)));
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`, close: () => server.close() };
}
