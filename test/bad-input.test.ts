// Bad input gets a clear message and leaves the repository unchanged (its manifest bytes identical).
// These tests drive the real CLI, as a user would.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, copyFileSync, cpSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cliOk, runCli, tempDir } from './helpers.js';

const FQRN = 'bad.example.org';


/** A fresh repository with one publish, and the paths around it. */
async function repository(name: string) {
  const work = tempDir(name);
  const store = join(work, 'store');
  const keys = join(work, 'keys');
  const src = join(work, 'src');
  mkdirSync(join(src, 'dir'), { recursive: true });
  writeFileSync(join(src, 'dir/file'), 'content of a file\n');
  writeFileSync(join(src, 'top'), 'top\n');
  await cliOk(['init', FQRN, '--store', store, '--keys', keys]);
  await cliOk(['publish', FQRN, src, '--store', store, '--keys', keys, '-q']);
  const pub = join(keys, `${FQRN}.pub`);
  const manifest = () => readFileSync(join(store, '.cvmfspublished'));
  return { work, store, keys, src, pub, manifest, before: manifest() };
}

function verifyArgs(r: { store: string; pub: string }, ...extra: string[]): string[] {
  return ['verify', r.store, '--fqrn', FQRN, '--pubkey', r.pub, '--no-cache', ...extra];
}

function dataFiles(store: string): string[] {
  const out: string[] = [];
  for (const d of readdirSync(join(store, 'data'))) for (const f of readdirSync(join(store, 'data', d))) out.push(join(store, 'data', d, f));
  return out;
}

test('verify passes on a good repository and names a corrupted object', async () => {
  const r = await repository('corrupt');
  assert.match((await cliOk(verifyArgs(r))).stdout, /^OK bad\.example\.org revision 2/);
  const victim = dataFiles(r.store).find((f) => !/[CHX]$/.test(f) && statSync(f).size > 8)!;
  const bytes = readFileSync(victim);
  bytes[bytes.length - 1] ^= 0xff;
  writeFileSync(victim, bytes);
  const res = await runCli(verifyArgs(r));
  assert.notEqual(res.code, 0);
  const name = victim.slice(r.store.length + 1);
  assert.match(res.stderr, new RegExp(`corrupt object ${name}`));
  assert.ok(r.manifest().equals(r.before));
});

test('verify refuses a tampered manifest', async () => {
  const r = await repository('tamper');
  const text = r.before.toString('latin1').replace(/^S2$/m, 'S9');
  writeFileSync(join(r.store, '.cvmfspublished'), Buffer.from(text, 'latin1'));
  const res = await runCli(verifyArgs(r));
  assert.equal(res.code, 3);
  assert.match(res.stderr, /\.cvmfspublished: signature does not verify/);
});

test('verify refuses the wrong public key', async () => {
  const r = await repository('wrongkey');
  const other = await repository('otherkey');
  const res = await runCli(verifyArgs({ store: r.store, pub: other.pub }));
  assert.equal(res.code, 3);
  assert.match(res.stderr, /\.cvmfswhitelist: signature does not verify with the given public key/);
});

test('verify refuses an expired whitelist unless explicitly allowed', async () => {
  const r = await repository('expired');
  const { resignWhitelist } = await import('../src/repo/whitelist-signing.js');
  const { FsStore } = await import('../src/store/fs-store.js');
  const keys = {
    masterKeyPem: readFileSync(join(r.keys, `${FQRN}.masterkey`), 'utf8'),
    certificatePem: readFileSync(join(r.keys, `${FQRN}.crt`), 'utf8'),
  };
  await resignWhitelist(new FsStore(r.store), FQRN, keys, { now: new Date(Date.now() - 40 * 86400_000), days: 30 });
  const res = await runCli(verifyArgs(r));
  assert.equal(res.code, 3);
  assert.match(res.stderr, /\.cvmfswhitelist expired on/);
  await cliOk(verifyArgs(r, '--allow-expired-whitelist'));
  assert.ok(r.manifest().equals(r.before));
});

test('a publish with an unreadable file is refused and changes nothing', async (t) => {
  const r = await repository('unreadable');
  writeFileSync(join(r.src, 'dir/locked'), 'no');
  chmodSync(join(r.src, 'dir/locked'), 0o000);
  const args = ['publish', FQRN, r.src, '--store', r.store, '--keys', r.keys, '-q'];
  // root reads anything: without CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH it is held to the mode bits
  // like anyone, yet can still load dist/ wherever the clone sits (a mode-700 home or mktemp directory).
  const res = process.getuid?.() === 0 ? await runCli(args, { dropFileCapabilities: true }) : await runCli(args);
  t.diagnostic(res.stderr.trim());
  assert.equal(res.code, 3);
  assert.match(res.stderr, /cannot read .*dir\/locked: permission denied/);
  assert.ok(r.manifest().equals(r.before));
});


test('a publish signed with the wrong repository key is refused', async () => {
  const r = await repository('wrongrepokey');
  const other = await repository('otherrepokey');
  for (const ext of ['key', 'crt']) copyFileSync(join(other.keys, `${FQRN}.${ext}`), join(r.keys, `${FQRN}.${ext}`));
  writeFileSync(join(r.src, 'new'), 'new');
  const res = await runCli(['publish', FQRN, r.src, '--store', r.store, '--keys', r.keys, '-q']);
  assert.equal(res.code, 3);
  assert.match(res.stderr, /not the ones this repository's whitelist trusts/);
  assert.ok(r.manifest().equals(r.before));
});

test('a --path with .. is refused', async () => {
  const r = await repository('dotdot');
  const res = await runCli(['publish', FQRN, r.src, '--store', r.store, '--keys', r.keys, '--path', '/a/../../etc']);
  assert.equal(res.code, 3);
  assert.match(res.stderr, /contains '\.\.'/);
  assert.ok(r.manifest().equals(r.before));
});

test('init refuses to overwrite an existing repository', async () => {
  const r = await repository('reinit');
  const res = await runCli(['init', FQRN, '--store', r.store, '--keys', r.keys]);
  assert.equal(res.code, 3);
  assert.match(res.stderr, /already exists/);
  assert.ok(r.manifest().equals(r.before));
});

test('unknown options are refused with a usage message', async () => {
  const res = await runCli(['publish', FQRN, '/tmp', '--store', '/tmp/x', '--keys', '/tmp/y', '--frobnicate']);
  assert.notEqual(res.code, 0);
  assert.match(res.stderr, /unknown option '--frobnicate'/);
});

test('two publishes at the same time: one lands, the other is refused or lands after it, nothing half-applied', async () => {
  const r = await repository('concurrent');
  const srcA = join(r.work, 'srcA');
  const srcB = join(r.work, 'srcB');
  cpSync(r.src, srcA, { recursive: true });
  cpSync(r.src, srcB, { recursive: true });
  for (let i = 0; i < 300; i++) writeFileSync(join(srcA, `a${i}`), `a${i}`);
  for (let i = 0; i < 300; i++) writeFileSync(join(srcB, `b${i}`), `b${i}`);
  const [a, b] = await Promise.all([
    runCli(['publish', FQRN, srcA, '--store', r.store, '--keys', r.keys, '-q']),
    runCli(['publish', FQRN, srcB, '--store', r.store, '--keys', r.keys, '-q']),
  ]);
  const results = [a, b];
  const landed = results.filter((x) => x.code === 0);
  assert.ok(landed.length >= 1, `${a.stderr} ${b.stderr}`);
  for (const x of results.filter((y) => y.code !== 0)) assert.match(x.stderr, /another publish/);
  const head = (await cliOk(verifyArgs(r))).stdout;
  assert.match(head, new RegExp(`revision ${1 + landed.length + 1}:`));
  // The repository equals exactly one of the sources: whole publishes, never a mix.
  const ls = (await cliOk(['ls', r.store, '/', '--fqrn', FQRN, '--pubkey', r.pub, '--no-cache'])).stdout.split('\n').filter(Boolean);
  const hasA = ls.includes('a0');
  const hasB = ls.includes('b0');
  assert.ok(hasA !== hasB, 'exactly one source is the head');
  assert.equal(ls.length, 2 + 300 + 0);
});

test('a mistyped command or option is one line naming the nearest match, with the usage status', async () => {
  for (const [args, message] of [
    [['publsh', 'x'], /^scvmfs: unknown command 'publsh' \(Did you mean publish\?\)\n$/],
    // Even with a required option missing (--stroe was meant as --store), the typo is what is named.
    [['publish', 'x.example.org', '/tmp', '--stroe', '/tmp/s'], /^scvmfs: unknown option '--stroe' \(Did you mean --store\?\)\n$/],
    [['tag', 'add', 'x.example.org', 'v1', '--keys', '/k', '--stroe', '/s'], /^scvmfs: unknown option '--stroe' \(Did you mean --store\?\)\n$/],
    [['verify', '/tmp', '--fqrn', 'x.example.org'], /^scvmfs: required option '--pubkey <file\.\.\.>' not specified\n$/],
  ] as const) {
    const res = await runCli([...args]);
    assert.equal(res.code, 2, args.join(' '));
    assert.match(res.stderr, message);
  }
});
