// Scale: a million entries publish in bounded memory into balanced catalogs, and an incremental publish
// costs the same number of catalog requests whatever the repository's size (design invariant 5).
import { LOCK_KEY } from '../src/repo/publish-lock.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { statfsSync, writeFileSync } from 'node:fs';
import { freemem, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { catalogRows, tempDir, TEST_SOURCE_DIR } from './helpers.js';
import { generateTree } from '../bench/generate-tree.js';
import { FsStore } from '../src/store/fs-store.js';
import type { ObjectStore, PutOptions, ReadRange } from '../src/store/object-store.js';
import { writeKeys } from '../src/repo/keys-dir.js';
import { generateRepositoryKeys } from '../src/format/keys.js';
import { initRepository } from '../src/repo/repository.js';
import { publishDirectory } from '../src/publish/publish-directory.js';
import { RepositoryReader } from '../src/client/reader.js';
import { verifyRepository } from '../src/client/verify.js';
import { DEFAULT_MAX_WEIGHT } from '../src/repo/catalog-balancer.js';

const FQRN = 'scale.example.org';

/**
 * Where the trees go: tmpfs when it and the machine's memory have room for them (about 5 GB for 1.1
 * million small files), since creating and deleting that many files on a disk is kernel CPU and
 * writeback that measures the disk, not the publish; else the usual temporary directory.
 */
function workBase(): string {
  const need = 8 * 1024 ** 3;
  try {
    const fs = statfsSync('/dev/shm');
    if (fs.bavail * fs.bsize >= need && freemem() >= need) return '/dev/shm';
  } catch {
    // No tmpfs here.
  }
  return tmpdir();
}
const BASE = workBase();
const run = promisify(execFile);

/** Counts requests by kind, and catalog reads and writes by their `C` suffix. */
class CountingStore implements ObjectStore {
  readonly counts = { get: 0, head: 0, put: 0, list: 0, delete: 0, catalogGet: 0, catalogPut: 0 };
  constructor(private readonly inner: ObjectStore) {}
  get description() { return this.inner.description; }
  get(key: string) { this.counts.get++; if (key.endsWith('C')) this.counts.catalogGet++; return this.inner.get(key); }
  getStream(key: string, range?: ReadRange) { this.counts.get++; return this.inner.getStream(key, range); }
  head(key: string) { this.counts.head++; return this.inner.head(key); }
  put(key: string, body: Uint8Array, o?: PutOptions) {
    // The publish lock's renewals come with time, not with the tree's size (one every 40 s of a publish).
    if (key === LOCK_KEY && o?.ifMatch) return this.inner.put(key, body, o);
    this.counts.put++;
    if (key.endsWith('C')) this.counts.catalogPut++;
    return this.inner.put(key, body, o);
  }
  list(prefix: string, o?: { after?: string; limit?: number }) { this.counts.list++; return this.inner.list(prefix, o); }
  delete(keys: string[]) { this.counts.delete++; return this.inner.delete(keys); }
}


interface Built {
  store: FsStore;
  src: string;
  keys: Awaited<ReturnType<typeof generateRepositoryKeys>>;
  catalogs: Map<string, number>;
  samples: string[];
  peakRssMb: number;
  cacheDir: string;
}

async function build(entries: number): Promise<Built> {
  const work = tempDir(`scale-${entries}`, BASE);
  const src = join(work, 'src');
  const tree = generateTree(src, entries, { distinctContents: 1000 });
  assert.equal(tree.entries, entries);
  const store = new FsStore(join(work, 'store'));
  const keysDir = join(work, 'keys');
  const keys = await generateRepositoryKeys(FQRN);
  await writeKeys(keysDir, FQRN, keys);
  await initRepository(store, { fqrn: FQRN, keys });
  const script = join(TEST_SOURCE_DIR, '..', 'dist', 'bench', 'publish-peak.js');
  const cacheDir = join(work, 'cache');
  // Its scratch catalogs go where the tree is.
  const { stdout } = await run(process.execPath, [script, store.root, keysDir, FQRN, src, cacheDir],
    { maxBuffer: 1 << 20, env: { ...process.env, TMPDIR: BASE } });
  const result = JSON.parse(stdout.trim().split('\n').pop()!) as { revision: number; peakRssMb: number };
  assert.equal(result.revision, 2);
  const reader = await RepositoryReader.open(store, { fqrn: FQRN, publicKeys: [keys.masterPublicKeyPem] });
  const catalogs = await catalogRows(store, reader.manifest.rootCatalog);
  reader.close();
  return { store, src, keys, catalogs, samples: tree.samples, peakRssMb: result.peakRssMb, cacheDir };
}

/**
 * Changes ten files inside one nested catalog and publishes with the writer's catalog cache; returns the
 * store requests it took. (A directory publish compares the whole tree, so without the cache it would
 * fetch every catalog of the published path once.)
 */
async function changeTenFiles(b: Built, mountpoint: string) {
  const files = b.samples.filter((s) => s.startsWith(`${mountpoint}/`));
  assert.ok(files.length > 0, `samples under ${mountpoint}`);
  const targets = Array.from({ length: 10 }, (_, i) => files[i % files.length]!.replace(/f(\d+)\.txt$/, (_, n) => `f${Number(n) + i}.txt`));
  for (const [i, t] of targets.entries()) writeFileSync(join(b.src, t), `changed ${i} at ${Date.now()}\n`);
  const counting = new CountingStore(b.store);
  const s = await publishDirectory(counting, b.src, { fqrn: FQRN, keys: b.keys, xattrs: null, cacheDir: b.cacheDir });
  assert.equal(s.modified, 10);
  return counting.counts;
}

test('a million entries publish with peak RSS under 700 MB into balanced catalogs; ten changes cost the same requests at 10^5 and 10^6', { timeout: 30 * 60_000 }, async () => {
  const big = await build(1_000_000);
  console.log(`# 10^6 entries in ${BASE}: peak RSS ${big.peakRssMb.toFixed(0)} MB, ${big.catalogs.size} catalogs`);
  // About 400 MB on a quiet machine (docs/performance.md); the margin is for GC timing under load.
  assert.ok(big.peakRssMb < 700, `peak RSS ${big.peakRssMb} MB`);
  assert.ok(big.catalogs.size > 1, 'split into nested catalogs');
  for (const [m, rows] of big.catalogs) assert.ok(rows <= DEFAULT_MAX_WEIGHT, `catalog ${m || '/'} has ${rows} rows`);
  const reader = await RepositoryReader.open(big.store, { fqrn: FQRN, publicKeys: [big.keys.masterPublicKeyPem] });
  const report = await verifyRepository(reader);
  // Every balanced catalog adds its two marker files, and its root entry is counted in both catalogs.
  assert.equal(report.entries, 1_000_001 + 3 * (big.catalogs.size - 1));
  reader.close();

  const small = await build(100_000);
  // The same kind of catalog in both: a nested catalog one level down that both repositories have.
  const candidates = [...big.catalogs.keys()].filter((m) => /^\/area\d$/.test(m) && small.catalogs.has(m));
  assert.ok(candidates.length > 0, 'an area catalog exists at both sizes');
  const mountpoint = candidates[0]!;
  const atBig = await changeTenFiles(big, mountpoint);
  const atSmall = await changeTenFiles(small, mountpoint);
  console.log(`# ten changes in ${mountpoint}: 10^5 ${JSON.stringify(atSmall)}; 10^6 ${JSON.stringify(atBig)}`);
  assert.equal(atBig.catalogGet, atSmall.catalogGet, 'catalog reads do not grow with the repository');
  assert.equal(atBig.catalogPut, atSmall.catalogPut, 'catalog writes do not grow with the repository');
  assert.equal(atBig.catalogPut, 2, 'the changed catalog and the root');
  assert.deepEqual(atBig, atSmall, 'every kind of request is the same');
});
