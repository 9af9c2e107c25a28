// Typed errors of the client (docs/RPC.md, "Errors"). Every JSON-RPC error object a node answers
// becomes a `CairnRpcError` with its `code`, `reason` (`data.reason`: the code's name, or for a
// refused transaction the chain rule it broke), `message` (the node's: what happened and what
// to do), `retryAfterMs` (`data.retry_after_ms`, sent with -33008) and a `hint` from the tables
// below. A connection that fails, closes or times out is a `CairnConnectionError`.

/** One error code: its `data.reason` (its name), what it means, what to do. */
export interface ErrorCodeInfo {
  /** The code's name: `data.reason` when Cairn sends it (a refused transaction names its rule instead). */
  readonly reason: string;
  readonly meaning: string;
  /** What to do about it, for people. */
  readonly hint: string;
}

/**
 * Every code docs/RPC.md lists: Cairn's own (-33001…-33010) and those JSON-RPC and the server
 * library emit. The test `errors.test.ts` checks this table against RPC.md's error tables and
 * the OpenRPC document's `components.errors`.
 */
export const ERROR_CODES: Readonly<Record<number, ErrorCodeInfo>> = {
  [-33001]: {
    reason: 'not_found',
    meaning: 'unknown job, block or module',
    hint: 'Check the id or height: this node does not know it (a job it never saw, a block above its head).',
  },
  [-33002]: {
    reason: 'invalid_tx',
    meaning: 'the transaction breaks a chain rule',
    hint: 'The transaction breaks a chain rule: `reason` names it and the message says what to change.',
  },
  [-33003]: {
    reason: 'bad_signature',
    meaning: 'a signature does not verify',
    hint: "Sign `domain ‖ 0x00 ‖ borsh(record)` with the key of the record's client or sender, for this chain's id.",
  },
  [-33004]: {
    reason: 'insufficient_balance',
    meaning: 'the balance cannot cover the fee and escrow or amount',
    hint: "Lower the fee, the escrow (fuel_limit × max_price × redundancy) or the amount, or fund the account; the account's pending transactions count too.",
  },
  [-33005]: {
    reason: 'bad_nonce',
    meaning: "the nonce is not the account's next one or within its window",
    hint: "Use account_get's next_nonce (a nonce may be at most 63 past the account's next one).",
  },
  [-33006]: {
    reason: 'invalid_module',
    meaning: 'not wasm, or not the job ABI',
    hint: 'Upload a wasm module that follows docs/JOB-ABI.md; the message names the rule it breaks.',
  },
  [-33007]: {
    reason: 'not_finalized',
    meaning: 'no finalized receipt yet',
    hint: "No finalized receipt yet: wait for the job's `finalized` event, then ask again.",
  },
  [-33008]: {
    reason: 'overloaded',
    meaning: 'the node takes no new work now, or the caller is over its rate',
    hint: 'The node is busy or you are over your request rate: slow down and retry after retryAfterMs.',
  },
  [-33009]: {
    reason: 'module_unknown',
    meaning: 'the module is not stored on this node',
    hint: 'Upload the module with module_put first (runJob and estimate do when given its bytes).',
  },
  [-33010]: {
    reason: 'blob_unknown',
    meaning: 'the blob is not stored on this node and no holder sent it',
    hint: "Upload the offer's input blob with blob_put first (runJob and estimate do for an input over input_bytes_max), or check the id: no holder sent it within blob_get's wait.",
  },
  [-32700]: { reason: 'parse_error', meaning: 'the request is not JSON', hint: 'The request was not JSON: a client bug.' },
  [-32600]: {
    reason: 'invalid_request',
    meaning: 'the request is not a JSON-RPC request',
    hint: 'The request was not a JSON-RPC 2.0 request: a client bug.',
  },
  [-32601]: {
    reason: 'method_not_found',
    meaning: 'no such method',
    hint: 'The node serves no such method: check the name, or the node is of another version (rpc.discover lists its methods).',
  },
  [-32602]: {
    reason: 'invalid_params',
    meaning: 'the parameters have the wrong shape or encoding',
    hint: 'Parameters of the wrong shape or encoding: lowercase hex without 0x, exactly the documented fields; the message says which.',
  },
  [-32603]: { reason: 'internal', meaning: 'the node failed; see its log', hint: "The node failed: its operator should read its log; try again or another node." },
  [-32000]: { reason: 'call_failed', meaning: 'the call failed (library)', hint: 'The call failed in the server library; the message says why.' },
  [-32005]: { reason: 'batches_not_supported', meaning: 'batch requests are off (library)', hint: 'Send the calls one by one: this node takes no batches.' },
  [-32006]: {
    reason: 'too_many_subscriptions',
    meaning: 'the connection holds its most subscriptions (library)',
    hint: 'This connection holds its most subscriptions (rpc_subscriptions_per_connection_max): end some, or open another connection.',
  },
  [-32007]: {
    reason: 'request_too_large',
    meaning: 'the request is larger than the node takes (library)',
    hint: 'The request is larger than rpc_request_bytes_max: a smaller module or input.',
  },
  [-32008]: {
    reason: 'response_too_large',
    meaning: 'the answer would be larger than the node sends (library)',
    hint: 'The answer would be larger than rpc_response_bytes_max: ask for less at once.',
  },
  [-32009]: { reason: 'server_busy', meaning: 'the server is busy (library)', hint: 'The server is busy: retry shortly.' },
  [-32010]: {
    reason: 'batch_too_large',
    meaning: 'the batch holds more calls than the node takes (library)',
    hint: 'The batch holds too many calls: send fewer at once.',
  },
  [-32011]: {
    reason: 'batch_response_too_large',
    meaning: "the batch's answers would be larger than the node sends (library)",
    hint: "The batch's answers would be too large: send fewer calls at once.",
  },
};

/**
 * Hints for the rules a refused transaction names in `data.reason` (docs/RPC.md, "The rules a
 * refused transaction reports"): -33002 unless the code's own name.
 */
export const TX_RULE_HINTS: Readonly<Record<string, string>> = {
  invalid_encoding: 'The transaction does not decode as its record: check its fields and version (1).',
  not_submittable: 'Results and resolutions are not submitted: only offers (job_submit) and account transactions (tx_submit).',
  wrong_chain: "The chain id is not this node's: take chain_id from node_info (or H(borsh(genesis))).",
  fee_below_minimum: "Raise the fee to at least node_info's tx_fee_min.",
  redundancy_out_of_range: 'Choose a redundancy between 1 and the most the chain allows (the message says it).',
  fuel_limit_out_of_range: "Choose a fuel limit between 1 and the chain's fuel_limit_max.",
  input_too_large: "Send a smaller input: at most the chain's input_bytes_max inline; a larger one (up to 4 MiB) goes in a blob (blob_put) the offer names as its input_blob, as runJob does.",
  input_and_input_blob: 'An offer with an input_blob carries no inline input: leave input empty, or set input_blob to null.',
  assignment_height_out_of_window: "Set assignment_height to the head's height (chain_head): it must be within assignment_window_blocks of the head.",
  deadline_out_of_range: "Set deadline_height past the block being built and at most deadline_max_blocks ahead (the message gives the range).",
  capacity_zero: 'A provider takes at least one job at once: capacity ≥ 1.',
  provider_registry_full: 'The provider registry is full: no new provider can register now.',
  stake_below_minimum: "Stake at least the chain's stake_min.",
  unbond_out_of_range: "Unbond between 1 and the provider's stake.",
  too_many_unbondings: 'Too many unbondings are in flight: wait until some are released.',
  not_challengeable: 'Only a job with a result inside its challenge window can be challenged.',
  bond_below_minimum: "Bond at least the chain's challenge_bond_min.",
  challenge_window_closed: "The job's challenge window has closed: it can no longer be challenged.",
  no_eligible_provider: 'Too few providers have the least stake and ask at most max_price: raise max_price or lower the redundancy.',
  no_eligible_provider_in_regions: "Too few providers in the offer's regions ask at most max_price: prefer the regions instead of requiring them, raise max_price or lower the redundancy.",
  bad_region: "A region is 1 to 32 bytes of lowercase letters, digits and '-', starting and ending with a letter or a digit.",
  bad_placement: 'A placement that prefers or requires regions names 1 to 8 distinct ones: use anywhere for none.',
  duplicate_job: 'This job is already on chain: change the offer (nonce or input) for a new job.',
  unknown_job: 'The chain knows no such job: check the job id.',
  job_closed: 'The job is closed (settled, expired or slashed).',
  not_a_provider: 'The sender is not a registered provider: register_provider first.',
  overflow: 'An amount overflows (fuel_limit × max_price × redundancy, or a balance): use smaller numbers.',
  replacement_underpriced: 'A pending transaction has this nonce: a replacement needs a fee at least 10 % (and 1) higher; the message says how much.',
  bad_signature: ERROR_CODES[-33003]!.hint,
  insufficient_balance: ERROR_CODES[-33004]!.hint,
  bad_nonce: ERROR_CODES[-33005]!.hint,
};

/** The hint for an error of `code` whose `data.reason` is `reason` (a rule's hint first). */
export function hintFor(code: number, reason?: string): string {
  if (reason !== undefined && reason in TX_RULE_HINTS) return TX_RULE_HINTS[reason]!;
  return ERROR_CODES[code]?.hint ?? `JSON-RPC error ${code}: read the message.`;
}

/** A JSON-RPC error answered by the node. */
export class CairnRpcError extends Error {
  /** The JSON-RPC error code. */
  readonly code: number;
  /** `data.reason` (stable snake_case), else the code's name from `ERROR_CODES`, else `"unknown"`. */
  readonly reason: string;
  /** `data.retry_after_ms` when the node sent one (with -33008). */
  readonly retryAfterMs: number | undefined;
  /** What to do, from `ERROR_CODES` and `TX_RULE_HINTS`. */
  readonly hint: string;
  /** The error object's `data`, as sent. */
  readonly data: unknown;
  /** The method called. */
  readonly method: string;

  constructor(method: string, code: number, message: string, data?: unknown) {
    super(message);
    this.name = 'CairnRpcError';
    this.method = method;
    this.code = code;
    this.data = data;
    const d = typeof data === 'object' && data !== null ? (data as Record<string, unknown>) : {};
    this.reason = typeof d['reason'] === 'string' ? d['reason'] : (ERROR_CODES[code]?.reason ?? 'unknown');
    const retry = d['retry_after_ms'];
    this.retryAfterMs = typeof retry === 'number' ? retry : typeof retry === 'bigint' ? Number(retry) : undefined;
    this.hint = hintFor(code, typeof d['reason'] === 'string' ? d['reason'] : undefined);
  }

  /** Builds the error from a JSON-RPC error object (`{code, message, data?}`). */
  static fromObject(method: string, e: unknown): CairnRpcError {
    const o = typeof e === 'object' && e !== null ? (e as Record<string, unknown>) : {};
    const code = typeof o['code'] === 'number' ? o['code'] : Number(o['code'] ?? 0);
    const message = typeof o['message'] === 'string' ? o['message'] : 'error without a message';
    return new CairnRpcError(method, code, message, o['data']);
  }
}

/** The node could not be reached, the connection closed under a call, or a call timed out. */
export class CairnConnectionError extends Error {
  /** Whether trying again (later, or on another connection) may succeed. */
  readonly retryable: boolean;
  /** The HTTP status, when an HTTP answer was not a JSON-RPC one (429: too many connections). */
  readonly status: number | undefined;

  constructor(message: string, opts: { retryable?: boolean; status?: number; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'CairnConnectionError';
    this.retryable = opts.retryable ?? true;
    this.status = opts.status;
  }
}

/** A job that ended without a verified output: expired, dropped, failed, or timed out. */
export class CairnJobError extends Error {
  readonly jobId: string;
  /** `expired`, `dropped`, `failed` (a verified result whose status is not ok), or `timeout`. */
  readonly kind: 'expired' | 'dropped' | 'failed' | 'timeout';
  /** The node's reason (a drop), or the job's failure reason (a status other than ok). */
  readonly reason: string | undefined;
  /** The result's status, for `failed`. */
  readonly status: string | undefined;

  constructor(jobId: string, kind: CairnJobError['kind'], message: string, extra: { reason?: string; status?: string } = {}) {
    super(message);
    this.name = 'CairnJobError';
    this.jobId = jobId;
    this.kind = kind;
    this.reason = extra.reason;
    this.status = extra.status;
  }
}
