// A lying node for the tests: an HTTP and WebSocket proxy in front of a real node that serves
// the node's /explorer/ files unchanged and forwards JSON-RPC, but flips one byte of every
// receipt proof it answers (`job_proof`, `job_proofs`): the provider's signature. A page
// loaded through it must refuse the proofs.

import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocket, WebSocketServer } from 'ws';

/** The methods whose answers are receipt proofs. */
export const PROOF_METHODS = new Set(['job_proof', 'job_proofs']);

/** Flips the first byte of a proof's provider signature (JSON form), in place. */
export function tamperProof(proof: { receipt: { provider_signature: string } }): void {
  const s = proof.receipt.provider_signature;
  const flipped = (parseInt(s.slice(0, 2), 16) ^ 0x01).toString(16).padStart(2, '0');
  proof.receipt.provider_signature = flipped + s.slice(2);
}

export interface Proxy {
  /** `http://127.0.0.1:<port>`. */
  url: string;
  /** Proof answers tampered so far. */
  tampered: number;
  close(): Promise<void>;
}

/** Starts the proxy in front of the node at `nodeHttp` (`http://host:port`). */
export async function startTamperingProxy(nodeHttp: string): Promise<Proxy> {
  const nodeWs = nodeHttp.replace(/^http/, 'ws') + '/';
  const state = { tampered: 0 };
  const server: Server = createServer((req, res) => {
    const path = req.url ?? '/';
    if (req.method !== 'GET' || !path.startsWith('/explorer')) {
      res.writeHead(404).end('the test proxy serves /explorer/ and JSON-RPC over WebSocket only');
      return;
    }
    fetch(nodeHttp + path, { redirect: 'manual' }).then(
      async (r) => {
        const headers: Record<string, string> = {};
        for (const h of ['content-type', 'location', 'content-security-policy', 'cache-control']) {
          const v = r.headers.get(h);
          if (v !== null) headers[h] = v;
        }
        res.writeHead(r.status, headers).end(Buffer.from(await r.arrayBuffer()));
      },
      (e: Error) => res.writeHead(502).end(`the node did not answer: ${e.message}`),
    );
  });
  const wss = new WebSocketServer({ server });
  wss.on('connection', (client) => {
    const upstream = new WebSocket(nodeWs);
    const queued: string[] = [];
    const proofIds = new Set<unknown>();
    upstream.on('open', () => {
      for (const m of queued.splice(0)) upstream.send(m);
    });
    client.on('message', (data) => {
      const text = data.toString();
      try {
        const msg = JSON.parse(text) as { id?: unknown; method?: string };
        if (msg.method && PROOF_METHODS.has(msg.method)) proofIds.add(msg.id);
      } catch {
        // not JSON: the node answers it
      }
      if (upstream.readyState === WebSocket.OPEN) upstream.send(text);
      else queued.push(text);
    });
    upstream.on('message', (data) => {
      let text = data.toString();
      try {
        const msg = JSON.parse(text) as { id?: unknown; result?: unknown };
        if (msg.id !== undefined && proofIds.has(msg.id) && msg.result) {
          proofIds.delete(msg.id);
          const proofs = Array.isArray(msg.result) ? msg.result : [msg.result];
          for (const p of proofs) tamperProof(p as { receipt: { provider_signature: string } });
          state.tampered++;
          text = JSON.stringify(msg);
        }
      } catch {
        // forwarded as it came
      }
      client.send(text);
    });
    const closeBoth = (): void => {
      client.close();
      upstream.close();
    };
    client.on('close', closeBoth);
    upstream.on('close', closeBoth);
    upstream.on('error', closeBoth);
    client.on('error', closeBoth);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    get tampered() {
      return state.tampered;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const c of wss.clients) c.terminate();
        wss.close();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
