// One error base for the whole library. Every error a user can meet carries a stable `code` and a `kind`;
// both survive worker-thread, child-process and Lambda boundaries (toJSON / errorFromJSON), and the CLI
// maps the kind to an exit status in one place (EXIT_STATUS), so scripts can tell "fix your input" from
// "try again later" from "the store is down".
//
// This module imports nothing: every layer may use it.

/** What the caller can do about it; each kind has its own exit status. */
export type ErrorKind =
  /** The command line itself is wrong: unknown command or option, bad option value. */
  | 'usage'
  /** The input or the repository state was refused: bad signature, foreign head, corrupt object, scope. */
  | 'refused'
  /** Someone else holds what is needed right now (a lease, the publish lock, a lost race): retry later. */
  | 'busy'
  /** The store or the network failed (5xx, timeouts, full disk); the repository is unchanged. */
  | 'store'
  /** A bug or an unexpected state; please report it. */
  | 'internal';

export const EXIT_STATUS: Readonly<Record<ErrorKind, number>> = {
  usage: 2,
  refused: 3,
  busy: 4,
  store: 5,
  internal: 70,
};

export interface ErrorJSON {
  name: string;
  kind: ErrorKind;
  code: string;
  message: string;
  data?: Record<string, unknown>;
}

export class ScvmfsError extends Error {
  constructor(
    readonly kind: ErrorKind,
    /** Stable, kebab-case, e.g. 'untrusted-head'; never reworded once published. */
    readonly code: string,
    message: string,
    readonly data?: Record<string, unknown>,
  ) {
    super(message);
    this.name = 'ScvmfsError';
  }

  toJSON(): ErrorJSON {
    return { name: this.name, kind: this.kind, code: this.code, message: this.message, ...(this.data ? { data: this.data } : {}) };
  }
}

/** Bad input or a repository state that must not be built on. */
export class RefusedError extends ScvmfsError {
  constructor(code: string, message: string, data?: Record<string, unknown>) {
    super('refused', code, message, data);
    this.name = 'RefusedError';
  }
}

/** Held by someone else right now; the same call may succeed later. */
export class BusyError extends ScvmfsError {
  constructor(code: string, message: string, data?: Record<string, unknown>) {
    super('busy', code, message, data);
    this.name = 'BusyError';
  }
}

export class UsageError extends ScvmfsError {
  constructor(message: string, code = 'usage') {
    super('usage', code, message);
    this.name = 'UsageError';
  }
}

const KINDS = new Set<ErrorKind>(['usage', 'refused', 'busy', 'store', 'internal']);

/** The JSON shape in an error's text, as it comes back from a sandbox or a Lambda errorMessage. */
export function isErrorJSON(x: unknown): x is ErrorJSON {
  const o = x as Partial<ErrorJSON> | null;
  return typeof o === 'object' && o !== null && typeof o.code === 'string' && typeof o.message === 'string' && KINDS.has(o.kind as ErrorKind);
}

/** Rebuilds an error that crossed a boundary; its kind and code are what they were on the other side. */
export function errorFromJSON(json: ErrorJSON): ScvmfsError {
  const err = new ScvmfsError(json.kind, json.code, json.message, json.data);
  err.name = json.name;
  return err;
}

/** The kind and code of any thrown value: ours as they are, anything else as internal. */
export function describeError(err: unknown): { kind: ErrorKind; code: string; message: string } {
  if (err instanceof ScvmfsError) return { kind: err.kind, code: err.code, message: err.message };
  // A function's failure carries the handler's own error; a chain's failure carries the function's.
  const carried = carriedError(err);
  if (carried) return { kind: carried.kind, code: carried.code, message: err instanceof Error ? err.message : carried.message };
  const e = err as { kind?: unknown; code?: unknown; message?: unknown } | null;
  if (e && typeof e.kind === 'string' && KINDS.has(e.kind as ErrorKind) && typeof e.code === 'string') {
    return { kind: e.kind as ErrorKind, code: e.code, message: String(e.message) };
  }
  const message = err instanceof Error ? err.message : String(err);
  // Node's own errors from the file system or the network are the store's or the input's.
  const sys = typeof e?.code === 'string' ? e.code : '';
  if (sys === 'ENOSPC' || sys === 'EDQUOT' || sys === 'EIO' || sys === 'EROFS') return { kind: 'store', code: sys.toLowerCase(), message };
  if (/^(ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH)$/.test(sys)) return { kind: 'store', code: 'network', message };
  if (sys === 'ENOENT' || sys === 'EACCES' || sys === 'EPERM' || sys === 'ENOTDIR' || sys === 'EISDIR') return { kind: 'refused', code: sys.toLowerCase(), message };
  // An SDK's service exception (it carries the HTTP metadata) is a store failure.
  if (err && typeof err === 'object' && '$metadata' in err) return { kind: 'store', code: 'store-failed', message };
  // A plain Error is one this code raised on purpose about its input; engine errors (TypeError,
  // RangeError, …) and anything else are bugs.
  if (err instanceof Error && Object.getPrototypeOf(err) === Error.prototype) return { kind: 'refused', code: 'refused', message };
  return { kind: 'internal', code: 'internal', message };
}

function carriedError(err: unknown, depth = 0): ErrorJSON | undefined {
  if (depth > 3 || typeof err !== 'object' || err === null) return undefined;
  const o = err as { handlerError?: unknown; cause?: unknown };
  if (isErrorJSON(o.handlerError)) return o.handlerError;
  if (o.cause instanceof ScvmfsError) return o.cause.toJSON();
  return carriedError(o.cause, depth + 1);
}

export function exitStatusOf(err: unknown): number {
  return EXIT_STATUS[describeError(err).kind];
}
