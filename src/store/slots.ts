// At most `limit` async operations at once, the rest queued in order: requests in flight to a store.
export class Slots {
  private active = 0;
  private readonly waiting: (() => void)[] = [];
  /** What `start` began and has not ended. */
  private readonly started = new Set<Promise<void>>();
  private failure: unknown;

  constructor(private readonly limit: number) {
    if (!Number.isInteger(limit) || limit < 1) throw new Error(`concurrency must be a positive integer, got ${limit}`);
  }

  async run<T>(fn: () => Promise<T>): Promise<T> {
    const release = await this.acquire();
    try {
      return await fn();
    } finally {
      release();
    }
  }

  /** Takes a slot until the returned function is called (once; later calls do nothing). */
  async acquire(): Promise<() => void> {
    if (this.active >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.active++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.active--;
      this.waiting.shift()?.();
    };
  }

  /**
   * Starts `fn` once a slot is free and returns without waiting for it to end: a window of reads that
   * runs ahead of the caller, which waits only while the window is full. A failure is kept: `settled`, and
   * any later `start`, throw it.
   */
  async start(fn: () => Promise<unknown>): Promise<void> {
    if (this.failure !== undefined) throw this.failure;
    const release = await this.acquire();
    const done = (async () => {
      try {
        await fn();
      } catch (err) {
        this.failure ??= err;
      } finally {
        release();
      }
    })();
    this.started.add(done);
    void done.then(() => this.started.delete(done));
  }

  /** Waits until everything `start` began has ended; then throws the first failure among them, if any. */
  async settled(): Promise<void> {
    while (this.started.size > 0) await Promise.all(this.started);
    if (this.failure !== undefined) throw this.failure;
  }
}
