// One owner publish at a time: a lock object in the control part, taken with a conditional create.
// The manifest compare-and-swap is what guarantees no lost update; the lock only turns a race that
// would fail at the end into a clear refusal at the start. A lock left by a process of this host that is
// no longer running (Ctrl-C, kill -9) is taken over at once instead of after its expiry.
import { BusyError } from '../errors.js';
import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import { CONTROL_PREFIX, PreconditionFailedError, type ObjectStore } from '../store/object-store.js';

export const LOCK_KEY = `${CONTROL_PREFIX}publish.lock`;

interface LockRecord {
  holder: string;
  host: string;
  pid: number;
  token: string;
  acquiredAt: string;
  expiresAt: string;
}

export class PublishLockedError extends BusyError {
  constructor(readonly record: LockRecord, readonly remainingSeconds: number) {
    super('publish-locked', `another publish holds the repository lock (${record.holder} on ${record.host}, pid ${record.pid}, ` +
      `since ${record.acquiredAt}); it expires in ${remainingSeconds} s if that publish died. Try again later.`);
    this.name = 'PublishLockedError';
  }
}

/** Whether process `pid` of this host exists (EPERM: it does, but belongs to another user). */
function processAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export class PublishLock {
  private etag: string;
  private timer: NodeJS.Timeout | null = null;
  private lost: Error | null = null;

  private constructor(private readonly store: ObjectStore, private record: LockRecord, etag: string, private readonly ttlMs: number) {
    this.etag = etag;
  }

  /**
   * `onTakeover` hears about a lock taken from a dead holder (its pid gone on this host, or expired), so
   * the caller can say so.
   */
  static async acquire(store: ObjectStore, holder: string, ttlMs = 120_000, onTakeover?: (message: string) => void): Promise<PublishLock> {
    const make = (): LockRecord => {
      const now = Date.now();
      return { holder, host: hostname(), pid: process.pid, token: randomUUID(), acquiredAt: new Date(now).toISOString(), expiresAt: new Date(now + ttlMs).toISOString() };
    };
    for (let attempt = 0; attempt < 3; attempt++) {
      const record = make();
      try {
        const { etag } = await store.put(LOCK_KEY, Buffer.from(JSON.stringify(record)), { ifNoneMatch: '*' });
        return new PublishLock(store, record, etag, ttlMs).startRenewing();
      } catch (err) {
        if (!(err instanceof PreconditionFailedError)) throw err;
      }
      const current = await store.get(LOCK_KEY);
      if (!current) continue;
      let held: LockRecord;
      try {
        held = JSON.parse(current.body.toString('utf8')) as LockRecord;
      } catch {
        held = { holder: 'unknown', host: 'unknown', pid: 0, token: '', acquiredAt: '?', expiresAt: new Date(0).toISOString() };
      }
      const remaining = Date.parse(held.expiresAt) - Date.now();
      const deadHere = held.host === hostname() && !processAlive(held.pid);
      if (remaining > 0 && !deadHere) throw new PublishLockedError(held, Math.ceil(remaining / 1000));
      // Its holder died; take it over, unless someone else does so first.
      try {
        const { etag } = await store.put(LOCK_KEY, Buffer.from(JSON.stringify(record)), { ifMatch: current.etag });
        onTakeover?.(deadHere
          ? `took over the publish lock of ${held.holder} (pid ${held.pid} on this host, ${held.host}), which is no longer running`
          : `took over the publish lock of ${held.holder} (pid ${held.pid} on ${held.host}), which expired at ${held.expiresAt}`);
        return new PublishLock(store, record, etag, ttlMs).startRenewing();
      } catch (err) {
        if (!(err instanceof PreconditionFailedError)) throw err;
      }
    }
    throw new Error('could not acquire the publish lock: it keeps changing hands');
  }

  private startRenewing(): this {
    this.timer = setInterval(() => { void this.renew(); }, Math.max(1000, this.ttlMs / 3));
    this.timer.unref();
    return this;
  }

  private async renew(): Promise<void> {
    const record = { ...this.record, expiresAt: new Date(Date.now() + this.ttlMs).toISOString() };
    try {
      const { etag } = await this.store.put(LOCK_KEY, Buffer.from(JSON.stringify(record)), { ifMatch: this.etag });
      this.etag = etag;
      this.record = record;
    } catch (err) {
      this.lost = new Error(`lost the publish lock: ${(err as Error).message}`);
    }
  }

  /** Throws if the lock was lost (taken over after expiry) while we worked. */
  check(): void {
    if (this.lost) throw this.lost;
  }

  async release(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    const current = await this.store.head(LOCK_KEY);
    if (current && current.etag === this.etag) await this.store.delete([LOCK_KEY]);
  }
}
