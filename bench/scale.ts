// Scale figures for `npm run bench`: a 10^6-entry publish (time, peak RSS, catalogs) in a process of its
// own, then ten changed files published into it (time, store requests), by the whole walk and by the
// walk scoped to the changed paths, alternately. SCVMFS_BENCH_ENTRIES overrides
// the size; SCVMFS_BENCH_SCALE=off skips it.
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateTree } from './generate-tree.js';
import { FsStore } from '../src/store/fs-store.js';
import { MeteredStore, meterSummary } from '../src/store/metered-store.js';
import { generateRepositoryKeys } from '../src/format/keys.js';
import { writeKeys } from '../src/repo/keys-dir.js';
import { initRepository } from '../src/repo/repository.js';
import { publishDirectory } from '../src/publish/publish-directory.js';

export async function scaleBench(work: string): Promise<void> {
  if (process.env.SCVMFS_BENCH_SCALE === 'off') {
    console.log('\nscale: skipped (SCVMFS_BENCH_SCALE=off)');
    return;
  }
  const entries = Number(process.env.SCVMFS_BENCH_ENTRIES ?? 1_000_000);
  const dir = join(work, 'scale');
  mkdirSync(dir, { recursive: true });
  const src = join(dir, 'src');
  let t = Date.now();
  const tree = generateTree(src, entries, { distinctContents: 1000 });
  console.log(`\nscale: generated ${tree.entries} entries (${tree.files} files, 1000 distinct contents) in ${((Date.now() - t) / 1000).toFixed(1)} s`);
  const fqrn = 'scale.example.org';
  const store = new FsStore(join(dir, 'store'));
  const keysDir = join(dir, 'keys');
  const keys = await generateRepositoryKeys(fqrn);
  await writeKeys(keysDir, fqrn, keys);
  await initRepository(store, { fqrn, keys });
  const cacheDir = join(dir, 'cache');
  const script = join(dirname(fileURLToPath(import.meta.url)), 'publish-peak.js');
  t = Date.now();
  const out = execFileSync(process.execPath, [script, store.root, keysDir, fqrn, src, cacheDir], { encoding: 'utf8' });
  const first = JSON.parse(out.trim().split('\n').pop()!) as { seconds: number; split: number; peakRssMb: number };
  console.log(`scale: first publish ${first.seconds.toFixed(1)} s (${(entries / first.seconds).toFixed(0)} entries/s), ` +
    `peak RSS ${first.peakRssMb.toFixed(0)} MB, ${first.split} catalogs split off by balancing`);

  // The same ten files changed again for each way of publishing them, alternately: the whole walk and
  // the walk scoped to the ten paths (--changed).
  const ten = tree.samples.slice(0, 10);
  for (let round = 0; round < 2; round++) {
    for (const scoped of [false, true]) {
      for (const [i, s] of ten.entries()) writeFileSync(join(src, s), `changed ${i} in round ${round}, ${scoped ? 'scoped' : 'plain'}\n`);
      const metered = new MeteredStore(store);
      const second = await publishDirectory(metered, src, { fqrn, keys, xattrs: null, cacheDir, changed: scoped ? ten.map((s) => s.slice(1)) : undefined });
      console.log(`scale: ten changed files, ${scoped ? '--changed (10 paths)' : 'whole walk'}: ${second.seconds.toFixed(1)} s, ` +
        `${second.scanned} entries compared, ${second.catalogsWritten} catalogs written; ${meterSummary(metered.snapshot())}`);
    }
  }
  execFileSync('rm', ['-rf', dir]);
}
