// Shared test fixtures: the stock-server test vector, temporary directories.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ObjectReader } from '../src/store/object-store.js';
import type { ContentHash } from '../src/format/hash.js';
import { fetchCatalog } from '../src/repo/objects.js';

/** test/ in the source tree (tests run from dist/test, fixtures stay in test/fixtures). */
export const TEST_SOURCE_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'test');
export const VECTOR_DIR = join(TEST_SOURCE_DIR, 'fixtures', 'legacy_aufs_repo_21');
export const VECTOR_FQRN = 'legacy_aufs.cern.ch';

const made: string[] = [];
process.on('exit', () => { for (const dir of made) rmSync(dir, { recursive: true, force: true }); });

/** A temporary directory removed when the process exits. */
export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), `scvmfs-${prefix}-`));
  made.push(dir);
  return dir;
}

export interface Vector {
  /** The repository as the stock server stored it (served as-is). */
  repo: string;
  keys: string;
  fqrn: string;
}

export function extractVector(): Vector {
  const work = tempDir('vector');
  execFileSync('tar', ['xzf', join(VECTOR_DIR, 'legacy_aufs_repo.tar.gz'), '-C', work]);
  execFileSync('tar', ['xzf', join(VECTOR_DIR, 'keys.tar.gz'), '-C', work]);
  return { repo: join(work, 'srv/cvmfs', VECTOR_FQRN), keys: join(work, 'etc/cvmfs/keys'), fqrn: VECTOR_FQRN };
}

/** Rows of every catalog of the repository at `root`, by mountpoint. */
export async function catalogRows(store: ObjectReader, root: ContentHash): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  const visit = async (hash: ContentHash, mountpoint: string) => {
    const { db } = await fetchCatalog(store, hash);
    out.set(mountpoint, db.rowCount());
    const nested = db.nestedCatalogs();
    db.close();
    for (const n of nested) await visit(n.hash, n.path);
  };
  await visit(root, '');
  return out;
}
