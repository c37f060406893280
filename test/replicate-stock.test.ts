// Stock interop both ways: the stock stratum 1 tool (`cvmfs_swissknife pull`, what `cvmfs_server snapshot`
// runs) replicates a repository of ours served by `scvmfs serve`, and the objects it re-compresses with
// its own zlib come out byte-identical to ours. Skips where the stock tools are not built.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { inflateSync } from 'node:zlib';
import { cliOk, extractVector, tempDir } from './helpers.js';
import { FsStore } from '../src/store/fs-store.js';
import { serveStore } from '../src/serve/http-server.js';
import { parseManifest } from '../src/format/manifest.js';
import { stockDeflate } from '../src/format/stock-deflate.js';
import { prepareObject } from '../src/format/zlib-object.js';

const run = promisify(execFile);
const FQRN = 'stockpull.example.org';
const TOOLS = '/work/shared/tools/stock-cvmfs';
const BUILD = process.env.CVMFS_BUILD_DIR ?? join(process.env.REFBUILD ?? '/var/tmp/stock-cvmfs', 'build');
const SWISSKNIFE = join(BUILD, 'cvmfs', 'cvmfs_swissknife');
const missing = existsSync(SWISSKNIFE) ? false
  : `the stock CernVM-FS tools are not built (no ${SWISSKNIFE}): build them with ${TOOLS}/build-cvmfs.sh (see ${TOOLS}/README.md)`;

function stockEnv(): NodeJS.ProcessEnv {
  const lib = ['cvmfs', 'cvmfs/crypto', 'cvmfs/util', 'cvmfs/network'].map((d) => join(BUILD, d)).join(':');
  return { ...process.env, LD_LIBRARY_PATH: `${lib}${process.env.LD_LIBRARY_PATH ? `:${process.env.LD_LIBRARY_PATH}` : ''}`, CVMFS_LIBRARY_PATH: join(BUILD, 'cvmfs') };
}

test('our certificate object is what stock zlib makes of it: the stock-made vector\'s certificate re-compresses to its own bytes', () => {
  const v = extractVector();
  const m = parseManifest(readFileSync(join(v.repo, '.cvmfspublished'))).manifest;
  const stored = readFileSync(join(v.repo, m.certificate.objectKey('X')));
  assert.ok(stockDeflate(inflateSync(stored)).equals(stored), 'stock zlib 1.2 bytes reproduced');
  const ours = prepareObject(m.certificate.algorithm, inflateSync(stored), 'X');
  assert.ok(ours.hash.equals(m.certificate), 'our writer names the certificate as the stock server did');
});

test('stock cvmfs_swissknife pull replicates our served repository; the replica passes stock check and scrub, and the re-compressed certificate keeps its bytes', { skip: missing }, async () => {
  const work = tempDir('stock-pull');
  const storeDir = join(work, 'store');
  const keysDir = join(work, 'keys');
  const src = join(work, 'src');
  mkdirSync(join(src, 'dir'), { recursive: true });
  for (let i = 0; i < 20; i++) writeFileSync(join(src, 'dir', `f${i}`), `file ${i}\n`.repeat(50 * i + 1));
  writeFileSync(join(src, 'dir', '.cvmfscatalog'), '');
  await cliOk(['init', FQRN, '--store', storeDir, '--keys', keysDir]);
  await cliOk(['publish', FQRN, src, '--store', storeDir, '--keys', keysDir, '-q', '--no-cache']);
  const pubkey = join(keysDir, `${FQRN}.pub`);
  const replica = join(work, 'replica');
  mkdirSync(join(replica, 'data', 'txn'), { recursive: true });
  for (let i = 0; i < 256; i++) mkdirSync(join(replica, 'data', i.toString(16).padStart(2, '0')), { recursive: true });
  const tmp = join(work, 'tmp');
  mkdirSync(tmp);
  const server = await serveStore(new FsStore(storeDir));
  const replicaServer = await serveStore(new FsStore(replica));
  try {
    const pull = await run(SWISSKNIFE, ['pull', '-m', FQRN, '-u', server.url, '-w', replicaServer.url, '-r', `local,${join(replica, 'data', 'txn')},${replica}`,
      '-x', tmp, '-k', pubkey, '-n', '4', '-t', '10', '-a', '2', '-R', join(work, 'reflog.chksum'), '-i'], { env: stockEnv() });
    assert.match(pull.stdout, /Serving revision 2/);
  } finally {
    await server.close();
    await replicaServer.close();
  }
  const m = parseManifest(readFileSync(join(storeDir, '.cvmfspublished'))).manifest;
  const key = m.certificate.objectKey('X');
  assert.ok(readFileSync(join(replica, key)).equals(readFileSync(join(storeDir, key))), 'the certificate stock pull re-compressed is byte-identical to ours');
  await run(SWISSKNIFE, ['scrub', '-r', join(replica, 'data')], { env: stockEnv() });
  // A stratum 1's reflog is its own (the manifest's Y names the source's): check it against pull's checksum,
  // as `cvmfs_server check` does on a stratum 1.
  await run(SWISSKNIFE, ['check', '-r', replica, '-c', '-t', tmp, '-R', join(work, 'reflog.chksum')], { env: stockEnv() });
  // And our verify reads the stock-made stratum 1, over HTTP.
  const served = await serveStore(new FsStore(replica));
  try {
    await cliOk(['verify', served.url, '--fqrn', FQRN, '--pubkey', pubkey]);
  } finally {
    await served.close();
  }
  // The stock client (through the helper's other checks: swissknife over HTTP, FUSE mount where possible).
  const verify = await run(join(TOOLS, 'verify-repo.sh'), [replica, FQRN, pubkey], { env: { ...process.env, CLIENTS: process.env.STOCK_CLIENTS ?? 'check fuse' } })
    .catch((err: { stdout?: string }) => ({ stdout: err.stdout ?? '' }));
  // The helper checks without pull's reflog checksum, so its swissknife checks meet the stratum 1's own
  // reflog under the source's Y hash (as on any stock stratum 1); every other check must pass.
  const failures = verify.stdout.split('\n').filter((l) => l.startsWith('FAIL') && !/unexpected content hash .* failed to verify reflog/.test(l));
  assert.deepEqual(failures, [], verify.stdout);
  if (!/^SKIP fuse/m.test(verify.stdout)) assert.match(verify.stdout, /^PASS fuse-read-all/m, 'the stock client mounted the stratum 1 and read every file');
});
