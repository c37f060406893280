// Strict mode: a child process per sandbox, limited like Lambda limits a sandbox — by its total memory.
// V8's heap flag catches heap growth early; a watchdog reading VmRSS every 10 ms SIGKILLs the process
// above the limit, which also catches Buffers and other memory outside the heap. Cold start about 130 ms.
import { fork, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { FunctionName } from '../functions/types.js';
import { crashedError, outOfMemoryError } from './errors.js';
import type { FromSandbox, MemoryReport, SandboxInit, ToSandbox } from './protocol.js';
import { Sandbox } from './sandbox.js';

const ENTRY = fileURLToPath(new URL('./sandbox-process-entry.js', import.meta.url));
const WATCH_INTERVAL_MS = 10;
const MB = 1024 * 1024;

export class ProcessSandbox extends Sandbox {
  private readonly child: ChildProcess;
  private readonly exited: Promise<void>;
  private watchdog: NodeJS.Timeout | undefined;
  private peakRss = 0;

  constructor(fn: FunctionName, memoryMb: number, modulePath: string, env: Record<string, string>) {
    super(fn, memoryMb);
    const init: SandboxInit = { modulePath, functionName: fn, memoryMb };
    this.child = fork(ENTRY, [JSON.stringify(init)], {
      execArgv: [`--max-old-space-size=${memoryMb}`],
      env,
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.child.on('message', (m: FromSandbox) => this.onMessage(m));
    this.child.on('error', (err) => this.died(crashedError(fn, `could not be run: ${err.message}`)));
    this.exited = new Promise((resolve) => this.child.once('exit', (code, signal) => {
      this.stopWatchdog();
      this.died(signal === 'SIGABRT'
        // V8 aborts the process when the heap limit is reached.
        ? outOfMemoryError(fn, memoryMb, 'the JavaScript heap')
        : crashedError(fn, signal ? `was killed by ${signal}` : `exited with code ${code}`));
      resolve();
    }));
  }

  protected post(m: ToSandbox): void {
    if (this.child.connected) this.child.send(m);
  }

  protected destroy(): void {
    this.dead = true;
    this.stopWatchdog();
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }

  protected hold(busy: boolean): void {
    const channel = this.child.channel as unknown as { ref(): void; unref(): void } | null | undefined;
    if (busy) {
      this.child.ref();
      channel?.ref();
      this.startWatchdog();
    } else {
      this.child.unref();
      channel?.unref();
      this.stopWatchdog();
    }
  }

  protected beginMeasure(): void {
    this.peakRss = 0;
    this.sample();
  }

  protected endMeasure(_reported: MemoryReport | undefined): number {
    this.sample();
    return this.peakRss;
  }

  async close(): Promise<void> {
    this.child.ref(); // so that the caller's event loop waits for the exit
    this.destroy();
    await this.exited;
  }

  private startWatchdog(): void {
    if (!this.watchdog) this.watchdog = setInterval(() => this.sample(), WATCH_INTERVAL_MS);
  }

  private stopWatchdog(): void {
    if (this.watchdog) clearInterval(this.watchdog);
    this.watchdog = undefined;
  }

  /** Lambda kills a sandbox whose total memory passes the limit; so does this. */
  private sample(): void {
    if (this.dead || this.child.pid === undefined) return;
    const rss = readRss(this.child.pid);
    if (rss === undefined) return;
    this.peakRss = Math.max(this.peakRss, rss);
    if (rss > this.memoryMb * MB) {
      this.died(outOfMemoryError(this.fn, this.memoryMb, `resident memory (${Math.round(rss / MB)} MB)`));
      this.destroy();
    }
  }
}

function readRss(pid: number): number | undefined {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'latin1'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined; // already gone
  }
}
