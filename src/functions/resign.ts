// The resign function: re-signs the whitelist before it expires (run on a schedule). It needs the master
// key, so it runs only where the owner chose to keep that key (a local keys directory or a secret).
import { loadKeys } from '../repo/keys-dir.js';
import { readHead, resignWhitelist } from '../repo/repository.js';
import { requiredEnv, storeFromEnv } from './env.js';
import type { Handler } from './types.js';

export interface ResignEvent {
  /** Validity in days, at most 30 (default 30). */
  days?: number;
}

export const handler: Handler<ResignEvent, { resigned: string; expiresInDays: number }> = async (event) => {
  const fqrn = requiredEnv('resign', 'SCVMFS_FQRN');
  const dir = requiredEnv('resign', 'SCVMFS_KEYS');
  const days = event?.days ?? 30;
  if (!Number.isInteger(days) || days < 1 || days > 30) throw new Error('whitelist validity must be 1 to 30 days');
  const store = storeFromEnv('resign');
  if (!(await readHead(store))) throw new Error(`no repository in ${store.description}`);
  const keys = await loadKeys(dir, fqrn, { need: ['master', 'repository'] });
  await resignWhitelist(store, fqrn, keys, new Date(), days);
  return { result: { resigned: fqrn, expiresInDays: days } };
};
