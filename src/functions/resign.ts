// The resign function: re-signs the whitelist before it expires (run on a schedule). It needs the master
// key, so it runs only where the owner chose to keep that key (a local keys directory or a secret). It
// re-signs only over a head that verifies against that master key, and only for a certificate the
// current whitelist lists (see repo/whitelist-signing.ts).
import { loadKeys } from '../repo/keys-dir.js';
import { resignWhitelist } from '../repo/whitelist-signing.js';
import { requiredEnv, storeFromEnv } from './env.js';
import type { Handler } from './types.js';

export interface ResignEvent {
  /** Validity in days, at most 30 (default 30). */
  days?: number;
}

export interface ResignResult {
  resigned: string;
  expiresInDays: number;
  fingerprints: string[];
  dropped: string[];
  warnings: string[];
}

export const handler: Handler<ResignEvent, ResignResult> = async (event) => {
  const fqrn = requiredEnv('resign', 'SCVMFS_FQRN');
  const dir = requiredEnv('resign', 'SCVMFS_KEYS');
  const days = event?.days ?? 30;
  if (!Number.isInteger(days) || days < 1 || days > 30) throw new Error('whitelist validity must be 1 to 30 days');
  const store = storeFromEnv('resign');
  const keys = await loadKeys(dir, fqrn, { need: ['master', 'repository'] });
  const warnings: string[] = [];
  const outcome = await resignWhitelist(store, fqrn, keys, { days, onWarning: (m) => warnings.push(m) });
  return { result: { resigned: fqrn, expiresInDays: days, fingerprints: outcome.fingerprints, dropped: outcome.dropped, warnings } };
};
