// The scriptable output: ls --json (head and an old revision) and --version.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cliOk, runCli, TEST_SOURCE_DIR, tempDir } from './helpers.js';
import { FsStore } from '../src/store/fs-store.js';
import { loadOrCreateKeys } from '../src/repo/keys-dir.js';
import { initRepository } from '../src/repo/repository.js';
import { publishDirectory } from '../src/publish/publish-directory.js';

test('ls --json lists entries with type, mode, size, target and hash, at the head and at --revision', async () => {
  const work = tempDir('ls-json');
  const src = join(work, 'src');
  mkdirSync(join(src, 'd'), { recursive: true });
  writeFileSync(join(src, 'd/f'), 'abc');
  symlinkSync('d/f', join(src, 'l'));
  const store = new FsStore(join(work, 'store'));
  const fqrn = 'ls.example.org';
  const { keys } = await loadOrCreateKeys(join(work, 'keys'), fqrn);
  await initRepository(store, { fqrn, keys });
  await publishDirectory(store, src, { fqrn, keys });
  writeFileSync(join(src, 'd/g'), 'later');
  await publishDirectory(store, src, { fqrn, keys });
  const common = [join(work, 'store'), '--fqrn', fqrn, '--pubkey', join(work, 'keys', `${fqrn}.pub`), '--no-cache', '--json'];
  type E = { path: string; name: string; type: string; mode: string; size: number; target?: string; hash?: string; links: number };
  const top = JSON.parse((await cliOk(['ls', ...common])).stdout) as E[];
  assert.deepEqual(top.map((e) => [e.path, e.type]), [['/d', 'directory'], ['/l', 'symlink']]);
  assert.equal(top[1]!.target, 'd/f');
  const all = JSON.parse((await cliOk(['ls', ...common, '-R'])).stdout) as E[];
  assert.deepEqual(all.map((e) => e.path), ['/', '/d', '/d/f', '/d/g', '/l']);
  const f = all.find((e) => e.path === '/d/f')!;
  assert.equal(f.size, 3);
  assert.equal(f.type, 'file');
  assert.match(f.mode, /^0[0-7]{3}$/);
  assert.match(f.hash!, /^[0-9a-f]{40}$/);
  const old = JSON.parse((await cliOk(['ls', ...common.slice(0, 1), '/d', ...common.slice(1), '--revision', '2'])).stdout) as E[];
  assert.deepEqual(old.map((e) => e.path), ['/d/f']);
  const one = JSON.parse((await cliOk(['ls', ...common.slice(0, 1), '/d/f', ...common.slice(1)])).stdout) as E[];
  assert.deepEqual(one.map((e) => e.path), ['/d/f']);
});

test('scvmfs --version prints the package version', async () => {
  const pkg = JSON.parse(readFileSync(join(TEST_SOURCE_DIR, '..', 'package.json'), 'utf8')) as { version: string };
  assert.equal((await cliOk(['--version'])).stdout.trim(), pkg.version);
});

test('durations are parsed the same way by every option and help shows defaults in their unit', async () => {
  const { durationOption, formatDuration } = await import('../src/cli/options.js');
  const parse = durationOption('--x', 100, 30 * 86_400_000);
  assert.deepEqual(['500ms', '2s', '2', '90m', '36h', '7d'].map(parse), [500, 2000, 2000, 5_400_000, 129_600_000, 604_800_000]);
  assert.throws(() => parse('7 days'), /not a duration: a number and ms, s, m, h or d/);
  assert.throws(() => parse('50ms'), /--x must be between 100ms and 30d, got 50ms/);
  assert.deepEqual([3000, 604_800_000, 1500, 60_000].map(formatDuration), ['3s', '7d', '1500ms', '1m']);
  const publish = await runCli(['publish', '--help']);
  assert.match(publish.stdout, /--fn-timeout <duration>[\s\S]*\(default: 3s\)/);
  const rotate = await runCli(['rotate-key', '--help']);
  assert.match(rotate.stdout, /--overlap <duration>[\s\S]*\(default: 7d\)/);
});
