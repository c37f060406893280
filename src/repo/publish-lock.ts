// One owner publish at a time: a lock object in the control part, taken with a conditional create.
// The manifest compare-and-swap is what guarantees no lost update; the lock only turns a race that
// would fail at the end into a clear refusal at the start.
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

export class PublishLock {
  private etag: string;
  private timer: NodeJS.Timeout | null = null;
  private lost: Error | null = null;

  private constructor(private readonly store: ObjectStore, private record: LockRecord, etag: string, private readonly ttlMs: number) {
    this.etag = etag;
  }

  static async acquire(store: ObjectStore, holder: string, ttlMs = 120_000): Promise<PublishLock> {
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
      if (remaining > 0) throw new PublishLockedError(held, Math.ceil(remaining / 1000));
      // Expired: its holder died; take it over, unless someone else does so first.
      try {
        const { etag } = await store.put(LOCK_KEY, Buffer.from(JSON.stringify(record)), { ifMatch: current.etag });
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
