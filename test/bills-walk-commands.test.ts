// check and replicate end with their bill, as every mutating command does: a one-line total, and the
// bill in --json; check over http(s) has no store to record in, so it only prints.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cliOk, cliRepo } from './helpers.js';
import { serveStore } from '../src/serve/http-server.js';
import { FsStore } from '../src/store/fs-store.js';

const FQRN = 'bills-walk.example.org';

test('check and replicate print their bill and record it; --json carries it', async () => {
  const { work, store, keys, src, pubkey: pub } = await cliRepo('bills-walk', FQRN, { initArgs: ['--no-ledger'] });
  writeFileSync(join(src, 'a.txt'), 'a\n');
  await cliOk(['publish', FQRN, src, '--store', store, '--keys', keys, '-q', '--no-ledger']);

  const check = await cliOk(['check', store, '--fqrn', FQRN, '--pubkey', pub, '-q', '--runtime', 'inline']);
  assert.match(check.stdout, /this check cost \$[0-9.]+ on aws-us-east-1/);
  const checkJson = JSON.parse((await cliOk(['check', store, '--fqrn', FQRN, '--pubkey', pub, '--json', '--runtime', 'inline'])).stdout);
  assert.equal(checkJson.bill.operation, 'check');
  assert.equal(checkJson.bill.ledger.recorded, true);

  const server = await serveStore(new FsStore(store));
  try {
    const overHttp = JSON.parse((await cliOk(['check', server.url, '--fqrn', FQRN, '--pubkey', pub, '--json', '--state-dir', join(work, 'state')])).stdout);
    assert.equal(overHttp.bill.ledger.recorded, false, 'nothing to record in over http(s)');
    const replica = join(work, 'replica');
    const rep = await cliOk(['replicate', server.url, '--fqrn', FQRN, '--pubkey', pub, '--store', replica]);
    assert.match(rep.stdout, /this replicate cost \$[0-9.]+ on aws-us-east-1/);
    const again = JSON.parse((await cliOk(['replicate', server.url, '--fqrn', FQRN, '--pubkey', pub, '--store', replica, '--json', '--pricing', 'cloudflare-r2'])).stdout);
    assert.equal(again.bill.operation, 'replicate');
    assert.match(again.bill.line, /cloudflare-r2/);
  } finally {
    await server.close();
  }
  const month = JSON.parse((await cliOk(['cost', store, '--json', '--by', 'operation'])).stdout);
  assert.ok(JSON.stringify(month).includes('check'), 'the ledger holds the check');
});
