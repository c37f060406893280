// The ledger on the S3 server (Ceph radosgw): 8 writer processes and a reader racing on one bucket prefix,
// through the same store URL a user gives (retries and the settling of unanswered conditional writes).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { freshBucket } from './s3-env.js';
import { tempDir } from './helpers.js';
import { raceLedger } from './ledger-race.js';
import { openStore } from '../src/store/open-store.js';

const bucket = await freshBucket('ledger');

test('s3: 8 writer processes × 5 operations give 40 records, none lost or doubled, read consistently meanwhile', async () => {
  const url = bucket.url('repo');
  const { warnings, reads } = await raceLedger(url, tempDir('ledger-s3'), openStore(url));
  assert.ok(reads > 0);
  // Lost roll-up races only delay the roll-up; the records are written all the same.
  for (const w of warnings) assert.match(w, /rolling up the ledger failed/);
});
