// The lease function, called as the runtimes call it (handler with env config) and with a given clock.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { rsaKeyPair } from '../src/format/keys.js';
import { signLeaseRequest, type LeaseRecord, type LeaseRequest, LEASE_REQUEST_TYPE } from '../src/format/lease.js';
import { signDocument, type SignedDocument } from '../src/format/signed-document.js';
import { handleLeaseEvent, handler, type LeaseConfig, type LeaseEvent, type LeaseResult } from '../src/functions/lease.js';
import type { FunctionContext } from '../src/functions/types.js';
import { writeKeys } from '../src/repo/keys-dir.js';
import { checkLease, LEASES_KEY } from '../src/repo/leases.js';
import { addPublisherToPolicy, POLICY_KEY } from '../src/repo/publisher-policy.js';
import { FsStore } from '../src/store/fs-store.js';
import { tempDir } from './helpers.js';

const FQRN = 'lease.example.org';
const pairs = Promise.all([rsaKeyPair(), rsaKeyPair(), rsaKeyPair(), rsaKeyPair(), rsaKeyPair()]);

interface Publisher { name: string; privateKeyPem: string }

/** A store with a policy: alice writes /w1 and /w2, carol /w1/sub, bob everything; mallory is not listed. */
async function setup(name: string) {
  const [master, alice, bob, carol, mallory] = await pairs;
  const root = tempDir(name);
  const storeDir = join(root, 'store');
  const keysDir = join(root, 'keys');
  const store = new FsStore(storeDir);
  // The function only needs <fqrn>.pub; the other files are there because writeKeys writes a full set.
  await writeKeys(keysDir, FQRN, { masterKeyPem: master.privateKey, masterPublicKeyPem: master.publicKey, repositoryKeyPem: 'unused', certificatePem: 'unused' });
  for (const [n, pair, paths] of [['alice', alice, ['/w1', '/w2']], ['bob', bob, ['/']], ['carol', carol, ['/w1/sub']]] as const) {
    await addPublisherToPolicy(store, { fqrn: FQRN, masterKeyPem: master.privateKey, name: n, publicKeyPem: pair.publicKey, paths });
  }
  const config: LeaseConfig = { store, fqrn: FQRN, masterPublicKeyPem: master.publicKey };
  const who = (n: string, p: { privateKey: string }): Publisher => ({ name: n, privateKeyPem: p.privateKey });
  return {
    store, storeDir, keysDir, config, master,
    alice: who('alice', alice), bob: who('bob', bob), carol: who('carol', carol), mallory: who('mallory', mallory),
    env: { SCVMFS_STORE: storeDir, SCVMFS_FQRN: FQRN, SCVMFS_KEYS: keysDir },
  };
}

const context: FunctionContext = { awsRequestId: 'test', functionName: 'lease', memoryLimitInMB: 128, getRemainingTimeInMillis: () => 10_000 };

async function invoke(env: Record<string, string>, event: LeaseEvent): Promise<LeaseResult> {
  const saved = { ...process.env };
  Object.assign(process.env, env);
  try {
    return (await handler(event, context)).result!;
  } finally {
    for (const k of Object.keys(env)) { if (saved[k] === undefined) delete process.env[k]; else process.env[k] = saved[k]; }
  }
}

function acquireEvent(p: Publisher, path: string, ttlSeconds = 60, now = new Date(), requestId?: string): LeaseEvent {
  return { action: 'acquire', request: signLeaseRequest(p, { fqrn: FQRN, path, ttlSeconds, now, requestId }) };
}

function granted(r: LeaseResult): LeaseRecord {
  assert.equal(r.status, 'ok', JSON.stringify(r));
  assert.ok('lease' in r);
  return r.lease;
}

test('a listed publisher gets a lease with a secret token; list shows it without the token', async () => {
  const s = await setup('lease-basic');
  const r = await invoke(s.env, acquireEvent(s.alice, '/w1', 120));
  const lease = granted(r);
  assert.equal(lease.publisher, 'alice');
  assert.equal(lease.path, '/w1');
  assert.match(lease.token, /^[A-Za-z0-9_-]{43}$/);
  assert.ok(Math.abs(Date.parse(lease.expiresAt) - Date.now() - 120_000) < 5000);
  const listed = await invoke(s.env, { action: 'list' });
  assert.ok('leases' in listed);
  assert.equal(listed.leases.length, 1);
  assert.equal(listed.leases[0].leaseId, lease.leaseId);
  assert.ok(!('token' in listed.leases[0]), 'list must not reveal tokens');
  assert.ok(listed.leases[0].secondsRemaining > 100);
});

test('overlapping paths are busy with holder, path and time remaining; disjoint siblings are not', async () => {
  const s = await setup('lease-overlap');
  const t0 = new Date();
  const held = granted(await handleLeaseEvent(acquireEvent(s.alice, '/w1', 100, t0), s.config, t0));
  const later = new Date(t0.getTime() + 40_000);
  for (const [who, path] of [[s.bob, '/'], [s.bob, '/w1'], [s.carol, '/w1/sub'], [s.bob, '/w1/sub/deeper']] as const) {
    const r = await handleLeaseEvent(acquireEvent(who, path, 60, later), s.config, later);
    assert.equal(r.status, 'busy', `${who.name} on ${path}`);
    assert.ok('holder' in r);
    assert.equal(r.message, `path ${path} is busy: publisher 'alice' holds lease ${held.leaseId} on /w1 for another 60 s`);
    assert.equal(r.holder.publisher, 'alice');
    assert.equal(r.holder.secondsRemaining, 60);
  }
  // Siblings, including the prefix trick /w10 next to /w1, are independent.
  granted(await handleLeaseEvent(acquireEvent(s.alice, '/w2', 60, later), s.config, later));
  granted(await handleLeaseEvent(acquireEvent(s.bob, '/w10', 60, later), s.config, later));
  granted(await handleLeaseEvent(acquireEvent(s.bob, '/w3/x', 60, later), s.config, later));
  const busyRoot = await handleLeaseEvent(acquireEvent(s.bob, '/', 60, later), s.config, later);
  assert.equal(busyRoot.status, 'busy');
});

test('renew extends, release frees the path, releasing twice is fine, a wrong token is refused', async () => {
  const s = await setup('lease-renew');
  const t0 = new Date();
  const lease = granted(await handleLeaseEvent(acquireEvent(s.alice, '/w1', 30, t0), s.config, t0));
  const t1 = new Date(t0.getTime() + 20_000);
  const renewed = granted(await handleLeaseEvent({ action: 'renew', leaseId: lease.leaseId, token: lease.token, ttlSeconds: 90 }, s.config, t1));
  assert.equal(renewed.expiresAt, new Date(t1.getTime() + 90_000).toISOString());
  // Past the original expiry the renewed lease still holds the path.
  const t2 = new Date(t0.getTime() + 60_000);
  assert.equal((await handleLeaseEvent(acquireEvent(s.bob, '/', 10, t2), s.config, t2)).status, 'busy');

  await assert.rejects(handleLeaseEvent({ action: 'renew', leaseId: lease.leaseId, token: 'x'.repeat(43) }, s.config, t2), /wrong token for lease/);
  await assert.rejects(handleLeaseEvent({ action: 'release', leaseId: lease.leaseId, token: lease.token.slice(1) }, s.config, t2), /wrong token/);
  await assert.rejects(handleLeaseEvent({ action: 'renew', leaseId: lease.leaseId, token: lease.token, ttlSeconds: 1e6 }, s.config, t2), /ttlSeconds must be a whole number from 1 to 7200/);

  assert.deepEqual(await handleLeaseEvent({ action: 'release', leaseId: lease.leaseId, token: lease.token }, s.config, t2), { status: 'ok', released: true });
  assert.deepEqual(await handleLeaseEvent({ action: 'release', leaseId: lease.leaseId, token: lease.token }, s.config, t2), { status: 'ok', released: false });
  granted(await handleLeaseEvent(acquireEvent(s.bob, '/', 10, t2), s.config, t2));
  await assert.rejects(handleLeaseEvent({ action: 'renew', leaseId: lease.leaseId, token: lease.token }, s.config, t2), (e: Error & { code?: string }) => e.code === 'not-found');
});

test('an expired lease blocks no one: it is taken over and does not linger; its holder can no longer use it', async () => {
  const s = await setup('lease-expiry');
  const t0 = new Date();
  const old = granted(await handleLeaseEvent(acquireEvent(s.alice, '/w1', 60, t0), s.config, t0));
  const t1 = new Date(t0.getTime() + 59_000);
  const busy = await handleLeaseEvent(acquireEvent(s.carol, '/w1/sub', 60, t1), s.config, t1);
  assert.equal(busy.status, 'busy');
  assert.match((busy as { message: string }).message, /for another 1 s$/);

  const t2 = new Date(t0.getTime() + 61_000);
  // Expired but not yet pruned: the commit function is told so, precisely.
  await assert.rejects(checkLease(s.store, old.leaseId, old.token, '/w1', t2), (e: Error & { code?: string }) =>
    e.code === 'expired' && /lease .* on \/w1 expired 1 s ago/.test(e.message));
  await assert.rejects(handleLeaseEvent({ action: 'renew', leaseId: old.leaseId, token: old.token }, s.config, t2), /expired 1 s ago/);

  const taken = await handleLeaseEvent(acquireEvent(s.carol, '/w1/sub', 60, t2), s.config, t2);
  const lease = granted(taken);
  assert.ok('tookOver' in taken);
  assert.deepEqual(taken.tookOver.map((l) => [l.leaseId, l.publisher, l.secondsRemaining]), [[old.leaseId, 'alice', 0]]);
  const table = JSON.parse((await s.store.get(LEASES_KEY))!.body.toString()) as { leases: LeaseRecord[] };
  assert.deepEqual(table.leases.map((l) => l.leaseId), [lease.leaseId], 'the expired lease is gone from the table');
  await assert.rejects(checkLease(s.store, old.leaseId, old.token, '/w1', t2), (e: Error & { code?: string }) => e.code === 'not-found');
});

test('checkLease: right lease, token and path pass; each failure says which', async () => {
  const s = await setup('lease-check');
  const now = new Date();
  const lease = granted(await handleLeaseEvent(acquireEvent(s.alice, '/w1', 60, now), s.config, now));
  assert.equal((await checkLease(s.store, lease.leaseId, lease.token, '/w1/a/b', now)).leaseId, lease.leaseId);
  assert.equal((await checkLease(s.store, lease.leaseId, lease.token, 'w1', now)).leaseId, lease.leaseId);
  const code = async (id: string, token: string, path: string) => {
    try { await checkLease(s.store, id, token, path, now); return 'ok'; } catch (e) { return (e as { code: string }).code; }
  };
  assert.equal(await code(lease.leaseId, lease.token, '/w10'), 'path-outside');
  assert.equal(await code(lease.leaseId, lease.token, '/'), 'path-outside');
  assert.equal(await code(lease.leaseId, lease.token, '/w1/../w2'), 'path-outside');
  assert.equal(await code(lease.leaseId, 'nope', '/w1'), 'wrong-token');
  assert.equal(await code('no-such-lease', lease.token, '/w1'), 'not-found');
});

test('the same acquire delivered twice returns the same lease; once released, that request is spent', async () => {
  const s = await setup('lease-redelivery');
  const event = acquireEvent(s.alice, '/w1', 60);
  const first = await invoke(s.env, event);
  const second = await invoke(s.env, event);
  assert.equal(granted(second).leaseId, granted(first).leaseId);
  assert.equal(granted(second).token, granted(first).token);
  assert.ok('repeated' in second && second.repeated);
  const lease = granted(first);
  await invoke(s.env, { action: 'release', leaseId: lease.leaseId, token: lease.token });
  await assert.rejects(invoke(s.env, event), /was already used for lease .* released or has expired; sign a new request/);
});

test('forged, altered, stale or out-of-scope requests are refused and write nothing', async () => {
  const s = await setup('lease-forged');
  const now = new Date();
  const refuse = async (event: LeaseEvent, message: RegExp) => {
    await assert.rejects(handleLeaseEvent(event, s.config, now), message);
    assert.equal(await s.store.head(LEASES_KEY), null, 'a refused request writes no lease table');
  };
  // mallory signs as alice with a key the policy does not list.
  await refuse(acquireEvent({ name: 'alice', privateKeyPem: s.mallory.privateKeyPem }, '/w1'), /signature of the scvmfs-lease-request does not verify with the key of 'alice'/);
  await refuse(acquireEvent(s.mallory, '/w1'), /signed by unknown key 'mallory'/);
  // alice's genuine request, altered in transit to a path she may not write.
  const altered = acquireEvent(s.alice, '/w1') as { action: 'acquire'; request: SignedDocument<LeaseRequest> };
  altered.request.body.path = '/w9';
  await refuse(altered, /does not verify/);
  // Signed by alice but naming bob inside.
  const body: LeaseRequest = { fqrn: FQRN, publisher: 'bob', path: '/', ttlSeconds: 60, requestId: 'req-00000001', issuedAt: now.toISOString() };
  await refuse({ action: 'acquire', request: signDocument(LEASE_REQUEST_TYPE, body, s.alice.privateKeyPem, 'alice') }, /names publisher 'bob' but is signed by 'alice'/);
  await refuse(acquireEvent(s.alice, '/w10'), /publisher 'alice' may not write \/w10: its allowed paths are \/w1, \/w2/);
  await refuse(acquireEvent(s.alice, '/'), /may not write \/:/);
  await refuse(acquireEvent(s.carol, '/w1'), /may not write \/w1:/);
  const dotdot = { ...body, publisher: 'alice', path: '/w1/../w3' };
  await refuse({ action: 'acquire', request: signDocument(LEASE_REQUEST_TYPE, dotdot, s.alice.privateKeyPem, 'alice') }, /contains '\.\.'/);
  await refuse(acquireEvent(s.alice, '/w1', 60, new Date(now.getTime() - 600_000)), /signed at .*, 600 s ago; requests are accepted for 300 s/);
  await refuse({ action: 'acquire', request: signLeaseRequest(s.alice, { fqrn: 'other.example.org', path: '/w1', ttlSeconds: 60 }) }, /is for other\.example\.org/);
  await refuse({ action: 'release', leaseId: 'x' } as unknown as LeaseEvent, /leaseId and token must be strings/);
  await refuse({ action: 'steal' } as unknown as LeaseEvent, /unknown lease action "steal"/);
  await refuse({ action: 'acquire', request: { hello: 1 } } as unknown as LeaseEvent, /format undefined, expected 'scvmfs-signed-document-1'/);

  // A policy widened in the store by someone without the master key is refused as a whole.
  const policy = (await s.store.get(POLICY_KEY))!.body.toString().replace('"/w1/sub"', '"/"');
  await s.store.put(POLICY_KEY, Buffer.from(policy));
  await refuse(acquireEvent(s.carol, '/'), /publisher policy of lease\.example\.org refused: signature .* does not verify/);
});

const RACER = `
import { pathToFileURL } from 'node:url';
const [moduleUrl, requestJson] = process.argv.slice(2);
const { handler } = await import(moduleUrl);
const event = JSON.parse(requestJson);
process.stdout.write('ready\\n');
process.stdin.once('data', async () => {
  try {
    const { result } = await handler(event, { awsRequestId: 'r', functionName: 'lease', memoryLimitInMB: 128, getRemainingTimeInMillis: () => 10000 });
    process.stdout.write(result.status + '\\n');
  } catch (err) {
    process.stdout.write('error ' + err.message + '\\n');
  }
  process.exit(0);
});
`;

test('8 processes acquiring the same path at once: exactly one wins, 7 are told it is busy', { timeout: 60_000 }, async () => {
  const s = await setup('lease-race');
  const script = join(s.storeDir, '..', 'racer.mjs');
  writeFileSync(script, RACER);
  const moduleUrl = new URL('../src/functions/lease.js', import.meta.url).href;
  const workers = Array.from({ length: 8 }, (_, i) => {
    const event = acquireEvent(i % 2 === 0 ? s.alice : s.bob, '/w1', 60);
    const child = spawn(process.execPath, [script, moduleUrl, JSON.stringify(event)], { stdio: ['pipe', 'pipe', 'inherit'], env: { ...process.env, ...s.env } });
    let out = '';
    const ready = new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (d) => { out += d; if (out.startsWith('ready\n')) resolve(); });
      child.on('exit', () => reject(new Error(`racer exited early: ${out}`)));
    });
    const done = new Promise<string>((resolve) => child.on('close', () => resolve(out.slice('ready\n'.length).trim())));
    return { child, ready, done };
  });
  await Promise.all(workers.map((w) => w.ready));
  for (const w of workers) w.child.stdin.end('go\n');
  const verdicts = await Promise.all(workers.map((w) => w.done));
  assert.equal(verdicts.filter((v) => v === 'ok').length, 1, verdicts.join(', '));
  assert.equal(verdicts.filter((v) => v === 'busy').length, 7, verdicts.join(', '));
  const table = JSON.parse((await s.store.get(LEASES_KEY))!.body.toString()) as { leases: LeaseRecord[] };
  assert.equal(table.leases.length, 1);
});
