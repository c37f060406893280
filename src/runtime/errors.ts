// Why an invocation failed, in the shapes Lambda reports them, so callers and tests can tell a bug in a
// handler (retrying will not help) from a limit or a kill (the sandbox is gone; a retry may succeed).
import type { ErrorJSON } from '../errors.js';
import type { FunctionName } from '../functions/types.js';

export type FailureKind =
  /** The handler threw or its promise rejected; the sandbox stays warm. */
  | 'error'
  /** The wall-clock limit passed; the sandbox was destroyed mid-flight. */
  | 'timeout'
  /** The heap limit (worker mode) or the RSS limit (strict mode) was exceeded; the sandbox was destroyed. */
  | 'out-of-memory'
  /** Fault injection stopped it (LocalRuntimeOptions.killAt); the sandbox was destroyed. */
  | 'killed'
  /** The sandbox died by itself: process.exit, an uncaught exception, an unhandled rejection. */
  | 'crashed'
  /** The module could not be loaded or exports no `handler`. */
  | 'init';

export class FunctionError extends Error {
  constructor(
    readonly kind: FailureKind,
    readonly fn: FunctionName,
    /** Lambda's errorType: the handler's error name, or Runtime.* / Sandbox.* for the runtime's own. */
    readonly errorType: string,
    message: string,
    /** The stack inside the sandbox, when the handler threw. */
    readonly sandboxStack?: string,
    /** The handler's own error (kind and code) when it threw one of ours. */
    readonly handlerError?: ErrorJSON,
  ) {
    super(`${fn}: ${message}`);
    this.name = 'FunctionError';
  }
}

/** The invocation was stopped on purpose by fault injection; like an async Lambda retry, try again. */
export class KilledError extends FunctionError {
  constructor(fn: FunctionName, message: string) {
    super('killed', fn, 'Sandbox.Killed', message);
    this.name = 'KilledError';
  }
}

export function timeoutError(fn: FunctionName, timeoutMs: number): FunctionError {
  return new FunctionError('timeout', fn, 'Sandbox.Timedout', `Task timed out after ${(timeoutMs / 1000).toFixed(2)} seconds`);
}

export function outOfMemoryError(fn: FunctionName, memoryMb: number, what: string): FunctionError {
  return new FunctionError('out-of-memory', fn, 'Runtime.OutOfMemory',
    `Runtime.OutOfMemory: ${what} exceeded the ${memoryMb} MB memory limit; the sandbox was killed`);
}

export function crashedError(fn: FunctionName, how: string): FunctionError {
  return new FunctionError('crashed', fn, 'Runtime.ExitError', `Runtime.ExitError: the sandbox ${how}`);
}
