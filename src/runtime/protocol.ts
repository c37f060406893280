// Messages between the runtime and a sandbox (worker thread or child process). Events and results
// travel as JSON text, as they do to and from Lambda, so a handler never sees what Lambda could not
// deliver (a Buffer, a Map, undefined in an array) and payload sizes are measured where Lambda measures them.
import type { ErrorJSON } from '../errors.js';

export interface InvokeMessage {
  type: 'invoke';
  id: number;
  requestId: string;
  /** JSON text of the event. */
  event: string;
  /** Date.now() at which the runtime kills the invocation; getRemainingTimeInMillis counts towards it. */
  deadline: number;
  /** Whether checkpoints must wait for the runtime's go-ahead (a kill is planned at one). */
  pauseAtCheckpoints: boolean;
}

export interface ContinueMessage {
  type: 'continue';
  id: number;
}

export type ToSandbox = InvokeMessage | ContinueMessage;

export interface MemoryReport {
  /** V8 heap committed plus memory held outside it, after the handler finished. */
  heapBytes: number;
}

export type FromSandbox =
  | { type: 'ready' }
  | { type: 'init-error'; errorType: string; errorMessage: string }
  | { type: 'checkpoint'; id: number; name: string }
  | { type: 'result'; id: number; payload: string; memory: MemoryReport }
  /** `error` is the handler's own ScvmfsError (kind and code), so it survives the boundary. */
  | { type: 'error'; id: number; errorType: string; errorMessage: string; stack?: string; error?: ErrorJSON; memory: MemoryReport };

/** What a sandbox is started with (worker data, or the child's first argument as JSON). */
export interface SandboxInit {
  modulePath: string;
  functionName: string;
  memoryMb: number;
}

/** The global through which src/functions/checkpoint.ts reaches the sandbox that runs it. */
export const CHECKPOINT_HOOK = Symbol.for('scvmfs.runtime.checkpoint');
