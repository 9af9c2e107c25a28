// Hash routes: #/ (latest blocks), #/block/12, #/job/<hex>, #/account/<hex>, #/providers,
// #/validators, #/params. The hash keeps every page a static file the node can embed.

export type Route =
  | { page: 'blocks' }
  | { page: 'block'; height: bigint }
  | { page: 'job'; id: string }
  | { page: 'account'; address: string }
  | { page: 'providers' }
  | { page: 'validators' }
  | { page: 'params' }
  | { page: 'unknown'; hash: string };

const HEX32 = /^[0-9a-f]{64}$/;

export function parseRoute(hash: string): Route {
  const parts = hash.replace(/^#\/?/, '').split('/').filter(Boolean);
  const [page, arg] = parts;
  if (!page) return { page: 'blocks' };
  if (page === 'block' && arg && /^\d{1,20}$/.test(arg)) return { page: 'block', height: BigInt(arg) };
  if (page === 'job' && arg && HEX32.test(arg.toLowerCase())) return { page: 'job', id: arg.toLowerCase() };
  if (page === 'account' && arg && HEX32.test(arg.toLowerCase())) return { page: 'account', address: arg.toLowerCase() };
  if (page === 'providers' || page === 'validators' || page === 'params' || page === 'blocks') return { page } as Route;
  return { page: 'unknown', hash };
}

/**
 * Where a search goes: a height (digits), or a 64-digit hex id — a job if the node knows one
 * with that id (`isJob`), else an address. Null: not a height or an id.
 */
export async function searchTarget(query: string, isJob: (id: string) => Promise<boolean>): Promise<string | null> {
  const q = query.trim().replace(/^#/, '').toLowerCase();
  if (/^\d{1,20}$/.test(q)) return `#/block/${BigInt(q)}`;
  if (HEX32.test(q)) return (await isJob(q)) ? `#/job/${q}` : `#/account/${q}`;
  return null;
}
