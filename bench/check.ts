// `npm run bench:check`: check and gc of a generated repository (default 10^6 entries, 1,000 distinct
// contents; SCVMFS_BENCH_ENTRIES overrides) on the local runtime at 128 MB per invocation. Check, listing
// and --full; then a second revision with other contents in 1,000 files, and gc keeping one revision:
// entries/s, store requests, slices or steps, and the peak memory of one invocation.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateTree } from './generate-tree.js';
import { FsStore } from '../src/store/fs-store.js';
import { generateRepositoryKeys } from '../src/format/keys.js';
import { initRepository } from '../src/repo/repository.js';
import { publishDirectory } from '../src/publish/publish-directory.js';
import { meterSummary } from '../src/store/metered-store.js';
import { runCheck, type CheckReport } from '../src/runtime/check-run.js';
import { runGcLocal } from '../src/runtime/run-gc.js';
import { writeKeys } from '../src/repo/keys-dir.js';

const entries = Number(process.env.SCVMFS_BENCH_ENTRIES ?? 1_000_000);
const memoryMb = Number(process.env.SCVMFS_BENCH_MEMORY ?? 128);
const work = mkdtempSync(join(tmpdir(), 'scvmfs-bench-check-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));
process.env.SCVMFS_SCRATCH = work;

let t = Date.now();
const tree = generateTree(join(work, 'src'), entries, { distinctContents: 1000 });
console.log(`check bench: generated ${tree.entries} entries in ${((Date.now() - t) / 1000).toFixed(1)} s`);
const fqrn = 'scale.example.org';
const store = new FsStore(join(work, 'store'));
const keys = await generateRepositoryKeys(fqrn);
await initRepository(store, { fqrn, keys });
t = Date.now();
const published = await publishDirectory(store, join(work, 'src'), { fqrn, keys, xattrs: null });
console.log(`check bench: published in ${((Date.now() - t) / 1000).toFixed(1)} s (${published.catalogsSplit.length} catalogs split off)`);

function line(label: string, r: CheckReport): string {
  return `check bench: ${label}: ${r.catalogs} catalogs, ${r.entries} entries, ${r.objects} objects, ${r.listed} keys listed in ` +
    `${r.seconds.toFixed(1)} s (${Math.round(r.entries / r.seconds)} entries/s), ${r.slices} slices, ` +
    `peak ${r.peakMemoryMb?.toFixed(0)} MB per invocation (limit ${memoryMb} MB); ${meterSummary(r.requests)}`;
}

for (const full of [false, true]) {
  const report = await runCheck(store.root, { fqrn, publicKeys: [keys.masterPublicKeyPem], full, memoryMb, timeoutMs: 120_000 });
  if (report.problems.length > 0) throw new Error(`the generated repository has problems: ${JSON.stringify(report.problems.slice(0, 3))}`);
  console.log(line(full ? '--full' : 'listing', report));
}

// A second revision: 1,000 files get contents of their own, so the first revision's become garbage.
for (let i = 0; i < Math.min(1000, Math.floor(entries * 0.06)); i++) writeFileSync(join(work, 'src', 'flat', `file${i}`), `changed content ${i}\n`);
t = Date.now();
await publishDirectory(store, join(work, 'src'), { fqrn, keys, xattrs: null });
console.log(`gc bench: second revision (1,000 changed files) published in ${((Date.now() - t) / 1000).toFixed(1)} s`);
const keysDir = join(work, 'keys');
await writeKeys(keysDir, fqrn, keys);
t = Date.now();
const gc = await runGcLocal({ SCVMFS_STORE: store.root, SCVMFS_FQRN: fqrn, SCVMFS_KEYS: keysDir, SCVMFS_SCRATCH: work },
  { keepRevisions: 1, graceMs: 0, fenceWaitMs: 0 }, { memoryMb, timeoutMs: 120_000 });
const seconds = (Date.now() - t) / 1000;
const peak = gc.report?.gc?.peakMemoryMb;
console.log(`gc bench: ${tree.entries} entries marked in ${seconds.toFixed(1)} s (${Math.round(tree.entries / seconds)} entries/s), ` +
  `${gc.result.listed} keys listed, ${gc.result.deleted.objects} objects deleted (${gc.result.deleted.bytes} bytes), ${gc.steps} steps, ` +
  `peak ${peak?.toFixed(0)} MB per invocation (limit ${memoryMb} MB); ${meterSummary(gc.requests)}`);
