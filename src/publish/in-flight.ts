// Work started without waiting for it (files compressing while the walk or the tar read goes on), at
// most `limit` at once so that queued work cannot grow memory, with the first failure kept so that the
// producer stops at its next step and the caller rethrows it once everything has settled.

/** Files whose compression may run behind the walk: bounds memory, not parallelism. */
export const FILES_IN_FLIGHT = 2048;

export class InFlight {
  private readonly running = new Set<Promise<void>>();
  private readonly waiting: (() => void)[] = [];
  private failed = false;
  private failure: unknown;

  constructor(private readonly limit: number) {}

  /** Rethrows the first failure of tracked work, if any. */
  check(): void {
    if (this.failed) throw this.failure;
  }

  /** Resolves once fewer than `limit` pieces of work are running. */
  async slot(): Promise<void> {
    // A queue of waiters woken one per finished piece: racing all running promises would attach a
    // handler to each of them on every call, which costs time and memory per file at 2,048 in flight.
    while (this.running.size >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
  }

  /** Tracks `work`; its rejection becomes the failure (the first one wins). The result never rejects. */
  track(work: Promise<void>): Promise<void> {
    const done: Promise<void> = work
      .catch((err) => {
        if (!this.failed) {
          this.failed = true;
          this.failure = err;
        }
      })
      .finally(() => {
        this.running.delete(done);
        this.waiting.shift()?.();
      });
    this.running.add(done);
    return done;
  }

  /** Waits until nothing runs, failed or not (cleaning up after an error elsewhere). */
  async settled(): Promise<void> {
    while (this.running.size > 0) await Promise.allSettled([...this.running]);
  }

  /** Waits until nothing runs, then rethrows the first failure. */
  async drain(): Promise<void> {
    await this.settled();
    this.check();
  }
}
