// Tags and rollback: added, moved, listed and removed as cvmfs_server tag does; rollback to a tag makes
// its tree the head again and removes the tags of later revisions; refusals change nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cliOk, extractVector, runCli, tempDir } from './helpers.js';
import { FsStore } from '../src/store/fs-store.js';
import { loadOrCreateKeys } from '../src/repo/keys-dir.js';
import { initRepository, readHead } from '../src/repo/repository.js';
import { publishDirectory } from '../src/publish/publish-directory.js';
import { addTag, removeTags } from '../src/repo/tags.js';
import { rollbackToTag } from '../src/repo/rollback.js';
import { findRevision } from '../src/repo/revisions.js';
import { RepositoryReader } from '../src/client/reader.js';
import { verifyRepository } from '../src/client/verify.js';
import type { RepositoryKeys } from '../src/format/keys.js';

const FQRN = 'tags.example.org';

async function setup() {
  const work = tempDir('tags');
  const storeDir = join(work, 'store');
  const keysDir = join(work, 'keys');
  const store = new FsStore(storeDir);
  const { keys } = await loadOrCreateKeys(keysDir, FQRN);
  await initRepository(store, { fqrn: FQRN, keys });
  const src = join(work, 'src');
  mkdirSync(join(src, 'sub'), { recursive: true });
  let clock = Date.parse('2026-01-01T00:00:00Z');
  const now = () => new Date(clock += 60_000);
  const publish = async (files: Record<string, string>, tag?: string) => {
    for (const [p, c] of Object.entries(files)) writeFileSync(join(src, p), c);
    return publishDirectory(store, src, { fqrn: FQRN, keys, now, tag: tag ? { name: tag } : undefined });
  };
  const open = (at?: { revision: number } | { tag: string }) =>
    RepositoryReader.open(store, { fqrn: FQRN, publicKeys: [keys.masterPublicKeyPem], at });
  const manifestBytes = () => readFileSync(join(storeDir, '.cvmfspublished'));
  return { work, storeDir, keysDir, store, keys: keys as RepositoryKeys, src, now, publish, open, manifestBytes };
}

test('tags: added on the head and on an old revision, moved, removed, and read back through the reader', async () => {
  const r = await setup();
  await r.publish({ 'a.txt': 'one' });                       // revision 2
  await r.publish({ 'a.txt': 'two' });                       // revision 3
  const added = await addTag(r.store, { fqrn: FQRN, keys: r.keys, name: 'old', description: 'first content', target: { revision: 2 }, now: r.now() });
  assert.equal(added.tag.revision, 2);
  assert.equal(added.manifest.revision, 4, 'a tag edit is a revision');
  const onHead = await addTag(r.store, { fqrn: FQRN, keys: r.keys, name: 'current', now: r.now() });
  assert.equal(onHead.tag.revision, 5);
  assert.ok(onHead.tag.hash.equals(onHead.manifest.rootCatalog));

  let reader = await r.open();
  const tags = await reader.tags();
  const byName = new Map(tags.map((t) => [t.name, t]));
  assert.equal(byName.get('old')?.revision, 2);
  assert.equal(byName.get('old')?.description, 'first content');
  assert.equal(byName.get('current')?.revision, 5);
  assert.equal(byName.get('trunk')?.revision, 5);
  assert.equal(byName.get('trunk-previous')?.revision, 4);
  reader.close();
  // The old revision reads through the tag and through its number.
  for (const at of [{ tag: 'old' }, { revision: 2 }]) {
    const old = await r.open(at);
    assert.equal(old.revision, 2);
    assert.equal((await old.readFile('/a.txt')).toString(), 'one');
    old.close();
  }

  // Refusals leave the manifest bytes as they were.
  const before = r.manifestBytes();
  await assert.rejects(addTag(r.store, { fqrn: FQRN, keys: r.keys, name: 'old' }), /already exists/);
  await assert.rejects(addTag(r.store, { fqrn: FQRN, keys: r.keys, name: 'trunk' }), /reserved/);
  await assert.rejects(addTag(r.store, { fqrn: FQRN, keys: r.keys, name: 'has space' }), /blanks/);
  await assert.rejects(addTag(r.store, { fqrn: FQRN, keys: r.keys, name: 'x', target: { revision: 99 } }), /does not exist/);
  await assert.rejects(addTag(r.store, { fqrn: FQRN, keys: r.keys, name: 'old', target: { revision: 2 } }), /already names/);
  await assert.rejects(removeTags(r.store, { fqrn: FQRN, keys: r.keys, names: ['old', 'nope'] }), /no tag 'nope'/);
  await assert.rejects(removeTags(r.store, { fqrn: FQRN, keys: r.keys, names: ['trunk-previous'] }), /undo tag/);
  assert.ok(r.manifestBytes().equals(before), 'a refused tag edit changed the manifest');

  // Moving a tag (explicit target) keeps its description.
  const moved = await addTag(r.store, { fqrn: FQRN, keys: r.keys, name: 'old', target: { revision: 3 }, now: r.now() });
  assert.equal(moved.movedFrom?.revision, 2);
  assert.equal(moved.tag.revision, 3);
  assert.equal(moved.tag.description, 'first content');

  const removed = await removeTags(r.store, { fqrn: FQRN, keys: r.keys, names: ['old', 'current'], now: r.now() });
  assert.deepEqual(removed.removed.map((t) => t.name).sort(), ['current', 'old']);
  reader = await r.open();
  assert.deepEqual((await reader.tags()).filter((t) => t.name === 'old' || t.name === 'current'), []);
  await verifyRepository(reader);
  reader.close();
});

test('a publish that changes nothing but asks for --tag makes a revision with the same tree and the tag', async () => {
  const r = await setup();
  const first = await r.publish({ 'a.txt': 'one' });
  const again = await r.publish({}, 'release-1');
  assert.ok(again.changed);
  assert.equal(again.tagOnly, true);
  assert.equal(again.revision, first.revision + 1);
  const reader = await r.open({ tag: 'release-1' });
  assert.equal(reader.revision, again.revision);
  assert.equal((await reader.readFile('/a.txt')).toString(), 'one');
  reader.close();
  const quiet = await r.publish({});
  assert.equal(quiet.changed, false, 'without a tag a no-change publish still makes no revision');
});

test('rollback to v1: the head reads v1 byte for byte at a higher revision, later tags are gone, v1 names the new head', async () => {
  const r = await setup();
  await r.publish({ 'a.txt': 'version one', 'sub/b.txt': 'b1' }, 'v1');
  const v1 = await r.open({ tag: 'v1' });
  const v1Root = v1.rootHash;
  v1.close();
  rmSync(join(r.src, 'sub/b.txt'));
  await r.publish({ 'a.txt': 'version two', 'c.txt': 'new' }, 'v2');
  await r.publish({ 'a.txt': 'version three' }, 'v3');
  const head = (await readHead(r.store))!.manifest;

  const before = r.manifestBytes();
  await assert.rejects(rollbackToTag(r.store, { fqrn: FQRN, keys: r.keys, tag: 'nope' }), /no tag 'nope'/);
  await assert.rejects(rollbackToTag(r.store, { fqrn: FQRN, keys: r.keys, tag: 'v3' }), /current head/);
  assert.ok(r.manifestBytes().equals(before));

  const done = await rollbackToTag(r.store, { fqrn: FQRN, keys: r.keys, tag: 'v1', now: r.now() });
  assert.equal(done.manifest.revision, head.revision + 1);
  assert.deepEqual(done.removed.map((t) => t.name).filter((n) => !n.startsWith('generic-')).sort(), ['v2', 'v3']);

  const reader = await r.open();
  assert.equal(reader.revision, head.revision + 1);
  assert.equal((await reader.readFile('/a.txt')).toString(), 'version one');
  assert.equal((await reader.readFile('/sub/b.txt')).toString(), 'b1');
  assert.equal(await reader.stat('/c.txt'), null);
  // The tree is v1's: every nested catalog reference and row is the same (only the root is re-stamped).
  const old = await reader.atRoot(v1Root);
  const rows = async (x: RepositoryReader) => { const out: string[] = []; for await (const w of x.walk('/')) out.push(JSON.stringify({ ...w, entry: { ...w.entry, hash: w.entry.hash?.toHex() } })); return out; };
  assert.deepEqual(await rows(reader), await rows(old));
  old.close();
  const tags = new Map((await reader.tags()).map((t) => [t.name, t]));
  assert.equal(tags.get('v1')?.revision, done.manifest.revision, 'v1 names the new head, as in stock rollback');
  assert.ok(!tags.has('v2') && !tags.has('v3'), 'tags of later revisions are removed');
  assert.ok(!tags.has('trunk-previous'), 'a named rollback leaves no anonymous undo target');
  assert.equal(tags.get('trunk')?.revision, done.manifest.revision);
  assert.ok(![...tags.values()].some((t) => t.revision > 2 && t.revision < done.manifest.revision), 'no tag names a rolled-back revision');
  const report = await verifyRepository(reader);
  assert.equal(report.revision, done.manifest.revision);
  reader.close();
});

test('CLI: tag add/list/info/remove and rollback, with --json parsed', async () => {
  const r = await setup();
  await r.publish({ 'a.txt': 'one' });
  const common = ['--fqrn', FQRN, '--pubkey', join(r.keysDir, `${FQRN}.pub`), '--no-cache'];
  await cliOk(['tag', 'add', FQRN, 'first', '--store', r.storeDir, '--keys', r.keysDir, '-m', 'the first one']);
  await r.publish({ 'a.txt': 'two' });
  const list = JSON.parse((await cliOk(['tag', 'list', r.storeDir, ...common, '--json'])).stdout) as { name: string; revision: number; root: string; size: number; timestamp: number; date: string; description: string }[];
  const first = list.find((t) => t.name === 'first')!;
  assert.equal(first.description, 'the first one');
  assert.equal(first.revision, 3);
  assert.match(first.root, /^[0-9a-f]{40}$/);
  assert.ok(first.size > 0);
  assert.equal(first.date, new Date(first.timestamp * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z'));
  const table = (await cliOk(['tag', 'list', r.storeDir, ...common])).stdout;
  assert.match(table, /^NAME\s+REVISION\s+ROOT\s+SIZE\s+DATE\s+DESCRIPTION/);
  assert.match(table, /first\s+3\s+[0-9a-f]{40}/);
  const info = JSON.parse((await cliOk(['tag', 'info', r.storeDir, 'first', ...common, '--json'])).stdout) as { name: string; revision: number };
  assert.deepEqual(info, first);

  const before = r.manifestBytes();
  const bad = await runCli(['rollback', FQRN, '--tag', 'missing', '--store', r.storeDir, '--keys', r.keysDir]);
  assert.equal(bad.code, 3, 'an unknown tag is refused input');
  assert.match(bad.stderr, /no tag 'missing'/);
  assert.ok(r.manifestBytes().equals(before));
  const rolled = await cliOk(['rollback', FQRN, '--tag', 'first', '--store', r.storeDir, '--keys', r.keysDir]);
  assert.match(rolled.stdout, /rolled tags.example.org back to 'first': revision 5/);
  const cat = await cliOk(['cat', r.storeDir, '/a.txt', ...common]);
  assert.equal(cat.stdout, 'one');
  const catOld = await cliOk(['cat', r.storeDir, '/a.txt', ...common, '--revision', '4']);
  assert.equal(catOld.stdout, 'two');
  await cliOk(['tag', 'remove', FQRN, 'first', '--store', r.storeDir, '--keys', r.keysDir]);
  const after = JSON.parse((await cliOk(['tag', 'list', r.storeDir, ...common, '--json'])).stdout) as { name: string }[];
  assert.ok(!after.some((t) => t.name === 'first'));
});

test('an old revision no tag names is found through the previous_revision chain; the stock vector lists its tags', async () => {
  const r = await setup();
  await r.publish({ 'a.txt': 'one' });
  await r.publish({ 'a.txt': 'two' });
  await r.publish({ 'a.txt': 'three' });
  const head = (await readHead(r.store))!.manifest;
  const viaChain = await findRevision(r.store, head, 3, []);
  const viaTags = await findRevision(r.store, head, 3);
  assert.ok(viaChain.hash.equals(viaTags.hash));
  assert.equal(viaChain.revision, 3);
  await assert.rejects(findRevision(r.store, head, 0, []), /does not exist/);

  const v = extractVector();
  const tags = JSON.parse((await cliOk(['tag', 'list', v.repo, '--fqrn', v.fqrn, '--pubkey', join(v.keys, `${v.fqrn}.pub`), '--allow-expired-whitelist', '--no-cache', '--json'])).stdout) as { name: string; revision: number }[];
  assert.ok(tags.some((t) => t.name === 'trunk' && t.revision === 2), JSON.stringify(tags));
  const old = await cliOk(['ls', v.repo, '--fqrn', v.fqrn, '--pubkey', join(v.keys, `${v.fqrn}.pub`), '--allow-expired-whitelist', '--no-cache', '--revision', '1', '--json']);
  assert.ok(Array.isArray(JSON.parse(old.stdout)));
});

test('CLI: publish --tag with nothing to publish says it only adds the tag', async () => {
  const r = await setup();
  writeFileSync(join(r.src, 'a.txt'), 'one');
  await cliOk(['publish', FQRN, r.src, '--store', r.storeDir, '--keys', r.keysDir, '--no-cache', '-q']);
  const tagged = await cliOk(['publish', FQRN, r.src, '--store', r.storeDir, '--keys', r.keysDir, '--no-cache', '-q', '--tag', 'rel-1']);
  assert.match(tagged.stdout, /no content change: revision 3 of tags\.example\.org has the same tree and adds tag 'rel-1'/);
  const reader = await r.open({ tag: 'rel-1' });
  assert.equal(reader.revision, 3);
  reader.close();
  const before = r.manifestBytes();
  const again = await runCli(['publish', FQRN, r.src, '--store', r.storeDir, '--keys', r.keysDir, '--no-cache', '-q', '--tag', 'rel-1']);
  assert.equal(again.code, 3);
  assert.match(again.stderr, /tag 'rel-1' already exists/);
  assert.ok(r.manifestBytes().equals(before), 'a refused tag changed the manifest');
});
