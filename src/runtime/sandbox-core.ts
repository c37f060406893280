// The inside of a sandbox, shared by the worker-thread and child-process entries: load the handler
// module once (Lambda's init phase), then serve invocations one at a time, as a Lambda sandbox does.
import { randomUUID } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import { isErrorJSON } from '../errors.js';
import type { FunctionContext, Handler } from '../functions/types.js';
import { CHECKPOINT_HOOK, type FromSandbox, type InvokeMessage, type MemoryReport, type SandboxInit, type ToSandbox } from './protocol.js';

interface Current {
  id: number;
  pause: boolean;
}

export async function serveSandbox(init: SandboxInit, send: (m: FromSandbox) => void, listen: (l: (m: ToSandbox) => void) => void): Promise<void> {
  let handler: Handler;
  try {
    const mod = await import(pathToFileURL(init.modulePath).href);
    if (typeof mod.handler !== 'function') {
      send({ type: 'init-error', errorType: 'Runtime.HandlerNotFound', errorMessage: `${init.modulePath} does not export a function named handler` });
      return;
    }
    handler = mod.handler;
  } catch (err) {
    send({ type: 'init-error', errorType: 'Runtime.ImportModuleError', errorMessage: `cannot load ${init.modulePath}: ${describe(err)}` });
    return;
  }

  let current: Current | undefined;
  const waiting = new Map<number, () => void>();
  (globalThis as Record<symbol, unknown>)[CHECKPOINT_HOOK] = (name: string): Promise<void> => {
    // Background work still running after the answer was sent belongs to no invocation.
    if (!current) return Promise.resolve();
    const { id, pause } = current;
    send({ type: 'checkpoint', id, name: String(name) });
    if (!pause) return Promise.resolve();
    return new Promise<void>((resolve) => waiting.set(id, resolve));
  };

  listen((m) => {
    if (m.type === 'continue') {
      const resume = waiting.get(m.id);
      waiting.delete(m.id);
      resume?.();
      return;
    }
    current = { id: m.id, pause: m.pauseAtCheckpoints };
    void invoke(handler, init, m).then((reply) => {
      current = undefined;
      send(reply);
    });
  });
  send({ type: 'ready' });
}

async function invoke(handler: Handler, init: SandboxInit, m: InvokeMessage): Promise<FromSandbox> {
  const context: FunctionContext = {
    awsRequestId: m.requestId || randomUUID(),
    functionName: init.functionName,
    memoryLimitInMB: init.memoryMb,
    getRemainingTimeInMillis: () => Math.max(0, m.deadline - Date.now()),
  };
  try {
    const result = await handler(JSON.parse(m.event), context);
    // Lambda answers `null` for a handler that returns nothing.
    const payload = result === undefined ? 'null' : JSON.stringify(result);
    return { type: 'result', id: m.id, payload, memory: memory() };
  } catch (err) {
    const e = err instanceof Error ? err : undefined;
    const json = (err as { toJSON?: () => unknown } | null)?.toJSON?.();
    return { type: 'error', id: m.id, errorType: e?.name ?? 'Error', errorMessage: describe(err), stack: e?.stack, error: isErrorJSON(json) ? json : undefined, memory: memory() };
  }
}

function memory(): MemoryReport {
  const m = process.memoryUsage();
  return { heapBytes: m.heapTotal + m.external };
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
