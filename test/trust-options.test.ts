// --fqrn, --pubkey and --allow-expired-whitelist are declared and read once (cli/options.ts trustOptions,
// readTrust) for the readers, verify, check and replicate: the same refusals everywhere.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { runCli, tempDir } from './helpers.js';

test('verify, check, replicate and ls refuse an unreadable --pubkey with the same message and status 3, and a missing one with status 2', async () => {
  const work = tempDir('trust');
  const key = join(work, 'absent.pub');
  for (const args of [['verify', work], ['check', work], ['replicate', work, '--store', join(work, 'replica')], ['ls', work, '/']]) {
    const unreadable = await runCli([...args, '--fqrn', 'x.example.org', '--pubkey', key]);
    assert.equal(unreadable.code, 3, `${args[0]}: ${unreadable.stderr}`);
    assert.equal(unreadable.stderr, `scvmfs: error: cannot read public key ${key}: ENOENT: no such file or directory, open '${key}'\n`, args[0]);
    const missing = await runCli([...args, '--fqrn', 'x.example.org']);
    assert.equal(missing.code, 2, args[0]);
    assert.equal(missing.stderr, "scvmfs: required option '--pubkey <file...>' not specified\n", args[0]);
  }
});
