// The package's entry point: what `import … from 'serverless-cvmfs'` gives a user's own code, used end to
// end (create, publish, read back verified) with nothing but the exported verbs.
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync, readFileSync, existsSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { tempDir } from './helpers.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

test('package.json names an entry point and types that the build produces', () => {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { main: string; types: string; exports: Record<string, { import: string; types: string }> };
  for (const f of [pkg.main, pkg.types, pkg.exports['.']!.import, pkg.exports['.']!.types]) {
    assert.ok(existsSync(join(root, f)), `${f} is missing from the build`);
  }
});

test('a user publishes and reads back a repository with the exported verbs alone', async () => {
  const lib = await import('serverless-cvmfs');
  for (const verb of ['initRepository', 'publishDirectory', 'ingestTarball', 'publishThroughChain', 'serveStore',
    'RepositoryReader', 'verifyRepository', 'openStore', 'loadOrCreateKeys', 'ScvmfsError', 'exitStatusOf']) {
    assert.equal(typeof (lib as Record<string, unknown>)[verb], 'function', `${verb} is exported`);
  }
  const work = tempDir('entry');
  const src = join(work, 'src');
  mkdirSync(join(src, 'bin'), { recursive: true });
  writeFileSync(join(src, 'bin', 'tool'), 'hello from the library\n');
  const fqrn = 'lib.example.org';
  const store = lib.openStore(join(work, 'store'));
  const { keys } = await lib.loadOrCreateKeys(join(work, 'keys'), fqrn);
  await lib.initRepository(store, { fqrn, keys });
  const summary = await lib.publishDirectory(store, src, { fqrn, keys, cacheDir: undefined });
  assert.equal(summary.revision, 2);
  const reader = await lib.RepositoryReader.open(lib.openSource(join(work, 'store')), { fqrn, publicKeys: [keys.masterPublicKeyPem] });
  assert.equal((await reader.readFile('/bin/tool')).toString(), 'hello from the library\n');
  const report = await lib.verifyRepository(reader);
  assert.equal(report.revision, 2);
});

test('an error keeps its kind and code across a JSON boundary, and the exit status follows the kind', async () => {
  const lib = await import('serverless-cvmfs');
  const err = new lib.RefusedError('untrusted-head', 'nope', { key: '.cvmfspublished' });
  const back = lib.errorFromJSON(JSON.parse(JSON.stringify(err)));
  assert.equal(back.kind, 'refused');
  assert.equal(back.code, 'untrusted-head');
  assert.deepEqual(back.data, { key: '.cvmfspublished' });
  assert.equal(lib.exitStatusOf(back), 3);
  assert.equal(lib.exitStatusOf(new lib.BusyError('lease-busy', 'held')), 4);
  assert.equal(lib.exitStatusOf(new TypeError('bug')), 70);
  assert.equal(lib.exitStatusOf(Object.assign(new Error('disk full'), { code: 'ENOSPC' })), 5);
});
