// Export throughput next to the store's own read limit on the same objects: every data object fetched,
// verified and inflated with the same parallelism and no writes. From the directory store, and over HTTP
// from it (serveStore, as a web server or a CDN would serve it). Run: node dist/bench/export.js
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { randomBytes } from 'node:crypto';
import { FsStore } from '../src/store/fs-store.js';
import type { ObjectReader } from '../src/store/object-store.js';
import { generateRepositoryKeys } from '../src/format/keys.js';
import { initRepository } from '../src/repo/repository.js';
import { publishDirectory } from '../src/publish/publish-directory.js';
import { serveStore } from '../src/serve/http-server.js';
import { HttpSource } from '../src/client/sources.js';
import { RepositoryReader } from '../src/client/reader.js';
import { exportTree } from '../src/client/export.js';
import { fetchObjectContent } from '../src/repo/objects.js';
import { FLAG, kindOfMode } from '../src/format/catalog-entry.js';
import type { ContentHash } from '../src/format/hash.js';

const PARALLEL = 16;
const work = mkdtempSync(join(tmpdir(), 'scvmfs-export-bench-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));

function tree(name: string, files: number, size: () => number): string {
  const root = join(work, name);
  for (let i = 0; i < files; i++) {
    const dir = join(root, `d${i % 100}`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, `f${i}`), Buffer.concat([randomBytes(size() >> 1), Buffer.alloc(size() >> 1, 97)]));
  }
  return root;
}

/** Every data object of the tree, fetched, verified and inflated, PARALLEL at a time: the read limit. */
async function readLimit(reader: RepositoryReader, source: ObjectReader): Promise<{ seconds: number; bytes: number }> {
  const objects: { hash: ContentHash; suffix: '' | 'P' }[] = [];
  for await (const { path, entry } of reader.walk('/')) {
    if (kindOfMode(entry.mode) !== 'file') continue;
    if (entry.extraFlags & FLAG.chunked) for (const c of await reader.chunkList(path, entry)) objects.push({ hash: c.hash, suffix: 'P' });
    else if (entry.hash) objects.push({ hash: entry.hash, suffix: '' });
  }
  const started = Date.now();
  let bytes = 0;
  let next = 0;
  await Promise.all(Array.from({ length: PARALLEL }, async () => {
    while (next < objects.length) {
      const o = objects[next++]!;
      const content = await fetchObjectContent(source, o.hash, o.suffix);
      bytes += content.length;
    }
  }));
  return { seconds: (Date.now() - started) / 1000, bytes };
}

const mb = (b: number, s: number) => `${(b / 2 ** 20 / s).toFixed(1)} MiB/s`;

for (const [label, files, size] of [['small files (5,000 × 1–8 KiB)', 5000, () => 1024 + Math.floor(Math.random() * 7168)], ['large files (4 × 32 MiB)', 4, () => 32 << 20]] as const) {
  const src = tree(label.split(' ')[0]!, files, size);
  const store = new FsStore(join(work, `${label.split(' ')[0]}-store`));
  const fqrn = 'bench.example.org';
  const keys = await generateRepositoryKeys(fqrn);
  await initRepository(store, { fqrn, keys });
  await publishDirectory(store, src, { fqrn, keys });
  const server = await serveStore(store, { port: 0 });
  for (const [via, source] of [['directory store', store], ['HTTP', new HttpSource(server.url)]] as const) {
    const reader = await RepositoryReader.open(source, { fqrn, publicKeys: [keys.masterPublicKeyPem] });
    // The limit is measured before and after the export and the faster run kept: the machine is shared.
    const before = await readLimit(reader, source);
    const dest = join(work, `out-${Math.random()}`);
    const s = await exportTree(reader, dest, { parallel: PARALLEL });
    const again = await exportTree(reader, dest, { parallel: PARALLEL });
    const after = await readLimit(reader, source);
    const limit = before.seconds < after.seconds ? before : after;
    console.log(`${label}, ${via}: read limit ${mb(limit.bytes, limit.seconds)} (${(files / limit.seconds).toFixed(0)} files/s); ` +
      `export ${mb(s.bytesFetched, s.seconds)} (${(s.files / s.seconds).toFixed(0)} files/s, ${(100 * limit.seconds / s.seconds).toFixed(0)}% of the limit); ` +
      `resumed export ${again.seconds.toFixed(2)} s, ${again.filesFetched} fetched`);
    reader.close();
    rmSync(dest, { recursive: true, force: true });
  }
  await server.close();
}
