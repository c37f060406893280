// Default mode: a worker thread per sandbox. V8 limits its heap (resourceLimits); memory outside the
// heap (Buffers, ArrayBuffers) is NOT limited, see docs/runtime.md. Cold start about 80 ms.
import { Worker } from 'node:worker_threads';
import type { FunctionName } from '../functions/types.js';
import { crashedError, outOfMemoryError } from './errors.js';
import type { FromSandbox, MemoryReport, SandboxInit, ToSandbox } from './protocol.js';
import { Sandbox } from './sandbox.js';

const ENTRY = new URL('./sandbox-worker-entry.js', import.meta.url);

export class WorkerSandbox extends Sandbox {
  private readonly worker: Worker;
  private readonly exited: Promise<void>;

  constructor(fn: FunctionName, memoryMb: number, modulePath: string, env: Record<string, string>) {
    super(fn, memoryMb);
    const init: SandboxInit = { modulePath, functionName: fn, memoryMb };
    this.worker = new Worker(ENTRY, {
      workerData: init,
      env,
      resourceLimits: { maxOldGenerationSizeMb: memoryMb },
      // A worker inherits the caller's node flags by default; a function's sandbox should not.
      execArgv: [],
    });
    this.worker.on('message', (m: FromSandbox) => this.onMessage(m));
    this.worker.on('error', (err: Error & { code?: string }) => {
      this.died(err.code === 'ERR_WORKER_OUT_OF_MEMORY'
        ? outOfMemoryError(fn, memoryMb, 'the JavaScript heap')
        : crashedError(fn, `died of an uncaught ${err.name}: ${err.message}`));
    });
    this.exited = new Promise((resolve) => this.worker.once('exit', (code) => {
      this.died(crashedError(fn, `exited with code ${code}`));
      resolve();
    }));
  }

  protected post(m: ToSandbox): void {
    this.worker.postMessage(m);
  }

  protected destroy(): void {
    this.dead = true;
    void this.worker.terminate();
  }

  protected hold(busy: boolean): void {
    if (busy) this.worker.ref();
    else this.worker.unref();
  }

  protected beginMeasure(): void {}

  protected endMeasure(reported: MemoryReport | undefined): number {
    return reported?.heapBytes ?? 0;
  }

  async close(): Promise<void> {
    this.worker.ref(); // so that the caller's event loop waits for the exit
    this.destroy();
    await this.exited;
  }
}
