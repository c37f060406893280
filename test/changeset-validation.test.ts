// The commit function refuses, before applying anything, every operation whose rows `verify` or the
// stock client would not accept, and parts too large to read: hand-crafted signed changesets, each
// committed through the commit chain, each refused by name with the manifest unchanged.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from './helpers.js';
import { invoker } from './chain-invoker.js';
import { FsStore } from '../src/store/fs-store.js';
import { writeKeys } from '../src/repo/keys-dir.js';
import { generateRepositoryKeys } from '../src/format/keys.js';
import { FLAG, S_IFDIR, S_IFLNK, S_IFREG } from '../src/format/catalog-entry.js';
import {
  CHANGESET_PART_TYPE, CHANGESET_TYPE, MAX_OPS_PER_PART, partDigest, txnKeys, type ChangesetHeader, type WireEntry,
} from '../src/format/changeset.js';
import { MAX_PART_BYTES, operationProblem } from '../src/format/changeset-validation.js';
import { serializeSignedDocument, signDocument } from '../src/format/signed-document.js';
import { signLeaseRequest } from '../src/format/lease.js';
import { initRepository, readHead } from '../src/repo/repository.js';
import { addPublisher, loadPublisherKey } from '../src/repo/publishers.js';
import { publishThroughChain } from '../src/publish/publish-changeset.js';
import { handleLeaseEvent } from '../src/functions/lease.js';
import { handleAbortEvent } from '../src/functions/abort.js';
import type { CommitConfig } from '../src/functions/commit.js';
import type { ChunkingParameters } from '../src/format/chunker.js';
import { RepositoryReader } from '../src/client/reader.js';
import { verifyRepository } from '../src/client/verify.js';

const FQRN = 'validate.example.org';
const CHUNK_HASH = 'a'.repeat(40);

async function setup() {
  const work = tempDir('changeset-validation');
  const store = new FsStore(join(work, 'store'));
  const keysDir = join(work, 'keys');
  const keys = await generateRepositoryKeys(FQRN);
  await writeKeys(keysDir, FQRN, keys);
  await initRepository(store, { fqrn: FQRN, keys });
  await addPublisher(store, { keysDir, fqrn: FQRN, name: 'w1', paths: ['/w1'] });
  const config: CommitConfig = {
    store, fqrn: FQRN, autocatalogs: false,
    keys: { repositoryKeyPem: keys.repositoryKeyPem, certificatePem: keys.certificatePem, masterPublicKeyPem: keys.masterPublicKeyPem },
  };
  const publisher = await loadPublisherKey(keysDir, 'w1');
  const src = join(work, 'src');
  mkdirSync(join(src, 'sub'), { recursive: true });
  writeFileSync(join(src, 'f'), 'content of f\n');
  const publish = (chunking?: ChunkingParameters) =>
    publishThroughChain(store, src, { fqrn: FQRN, publisher, path: '/w1', functions: invoker(config), xattrs: null, chunking });
  await publish();
  const open = () => RepositoryReader.open(store, { fqrn: FQRN, publicKeys: [keys.masterPublicKeyPem] });
  const reader = await open();
  const fileHash = (await reader.stat('/w1/f'))!.hash!.toHex();
  reader.close();

  /** Signs `parts` (lists of operations, or raw bytes) as one changeset and runs the commit chain on it. */
  const commit = async (parts: (unknown[] | Buffer)[], headerBytes?: (header: ChangesetHeader) => Buffer) => {
    const lease = await handleLeaseEvent({ action: 'acquire', request: signLeaseRequest(publisher, { fqrn: FQRN, path: '/w1', ttlSeconds: 60 }) },
      { store, fqrn: FQRN, masterPublicKeyPem: keys.masterPublicKeyPem }, new Date());
    assert.equal(lease.status, 'ok');
    const { leaseId, token } = (lease as { lease: { leaseId: string; token: string } }).lease;
    const txnId = `test-${randomBytes(6).toString('hex')}`;
    const digests: string[] = [];
    for (const [index, ops] of parts.entries()) {
      const bytes = Buffer.isBuffer(ops) ? ops
        : serializeSignedDocument(signDocument(CHANGESET_PART_TYPE, { fqrn: FQRN, txnId, index, ops }, publisher.privateKeyPem, publisher.name));
      await store.put(txnKeys(txnId).part(index), bytes);
      digests.push(partDigest(bytes));
    }
    const header: ChangesetHeader = { fqrn: FQRN, txnId, publisher: publisher.name, leaseId, path: '/w1', parts: digests, createdAt: new Date().toISOString() };
    await store.put(txnKeys(txnId).header, headerBytes?.(header)
      ?? serializeSignedDocument(signDocument(CHANGESET_TYPE, header, publisher.privateKeyPem, publisher.name)));
    try {
      return await invoker(config).runChain('commit', { txnId, leaseId, token });
    } finally {
      // What the writer does when its commit fails: drop the transaction and its lease.
      await handleAbortEvent({ txnId, leaseId, token }, store);
    }
  };
  const sign = (header: ChangesetHeader) => serializeSignedDocument(signDocument(CHANGESET_TYPE, header, publisher.privateKeyPem, publisher.name));
  return { work, src, store, fileHash, commit, publish, open, sign };
}

function fileEntry(name: string, hash: string | null, over: Partial<WireEntry> = {}): WireEntry {
  return {
    name, mode: S_IFREG | 0o644, size: 13, mtime: 1_700_000_000, mtimeNs: 0, uid: 1000, gid: 1000, hash, symlink: '',
    linkcount: 1, extraFlags: 0, compression: 'zlib', chunkAlgorithm: null, xattr: null, ...over,
  };
}

interface BadCase { what: string; op: (hash: string) => unknown; error: RegExp; path?: string }

const upsert = (path: string, entry: WireEntry, more: object = {}) => ({ op: 'upsert', path, entry, ...more });
const chunkedEntry = (over: Partial<WireEntry> = {}) => fileEntry('x', null, { extraFlags: FLAG.chunked, chunkAlgorithm: 'sha1', size: 10, ...over });

const BAD: BadCase[] = [
  { what: 'a regular file with no hash', op: () => upsert('/w1/x', fileEntry('x', null)), error: /regular file has no content hash/ },
  { what: 'a chunked file whose size disagrees with its chunks', op: () => upsert('/w1/x', chunkedEntry({ size: 11 }), { chunks: [{ offset: 0, size: 10, hash: CHUNK_HASH }] }), error: /chunks cover 10 bytes, but size is 11/ },
  { what: 'chunks that are not contiguous', op: () => upsert('/w1/x', chunkedEntry({ size: 20 }), { chunks: [{ offset: 0, size: 10, hash: CHUNK_HASH }, { offset: 11, size: 9, hash: CHUNK_HASH }] }), error: /chunk 1 starts at 11, expected 10/ },
  { what: 'a chunked flag with no chunks', op: () => upsert('/w1/x', chunkedEntry()), error: /chunked file has no chunks/ },
  { what: 'chunks on a file not flagged chunked', op: (h) => upsert('/w1/x', fileEntry('x', h, { size: 10 }), { chunks: [{ offset: 0, size: 10, hash: CHUNK_HASH }] }), error: /chunk list on a file not flagged chunked/ },
  { what: 'an empty name', op: (h) => upsert('/w1/x', fileEntry('', h)), error: /name is empty/ },
  { what: "the name '.'", op: (h) => upsert('/w1/x', fileEntry('.', h)), error: /name is '\.'/ },
  { what: "the name '..'", op: (h) => upsert('/w1/x', fileEntry('..', h)), error: /name is '\.\.'/ },
  { what: "a name containing '/'", op: (h) => upsert('/w1/x', fileEntry('a/b', h)), error: /contains '\/'/ },
  { what: 'a name containing NUL', op: (h) => upsert('/w1/x', fileEntry('a\0b', h)), error: /NUL byte/ },
  { what: 'a name longer than 255 bytes', op: (h) => upsert('/w1/x', fileEntry('é'.repeat(128), h)), error: /longer than 255 bytes/ },
  { what: 'a name that is not valid UTF-8 (a lone surrogate)', op: (h) => upsert('/w1/x', fileEntry('a\ud800', h)), error: /not valid UTF-8/ },
  { what: 'a path through ..', path: '/w1/../b', op: (h) => upsert('/w1/../b', fileEntry('b', h)), error: /contains '\.\.'/ },
  { what: 'a path with a NUL byte', path: '/w1/a\0', op: (h) => upsert('/w1/a\0', fileEntry('a\0', h)), error: /NUL/ },
  { what: 'a path that is not canonical', path: '/w1//x', op: (h) => upsert('/w1//x', fileEntry('x', h)), error: /not in canonical form/ },
  { what: 'a path outside the changeset', path: '/w2/x', op: (h) => upsert('/w2/x', fileEntry('x', h)), error: /outside the changeset's path '\/w1'/ },
  { what: 'a name that differs from the last component of its path', op: (h) => upsert('/w1/x', fileEntry('y', h)), error: /entry name 'y' is not the last component/ },
  { what: 'a hardlink named ../../b/f', op: (h) => upsert('/w1/x', fileEntry('x', h, { linkcount: 2 }), { links: [{ path: '/w1/x2', name: '../../b/f' }] }), error: /link 0: name '\.\.\/\.\.\/b\/f' contains '\/'/ },
  { what: 'a hardlink whose name is not its path', op: (h) => upsert('/w1/x', fileEntry('x', h, { linkcount: 2 }), { links: [{ path: '/w1/x2', name: 'x3' }] }), error: /link 0 name 'x3' is not the last component/ },
  { what: 'a hardlink in another directory', op: (h) => upsert('/w1/x', fileEntry('x', h, { linkcount: 2 }), { links: [{ path: '/w1/sub/x2', name: 'x2' }] }), error: /not in the directory of '\/w1\/x'/ },
  { what: 'a hardlink outside the changeset', op: (h) => upsert('/w1/x', fileEntry('x', h, { linkcount: 2 }), { links: [{ path: '/w2/x2', name: 'x2' }] }), error: /link 0: lies outside/ },
  { what: 'a hardlink group naming its file twice', op: (h) => upsert('/w1/x', fileEntry('x', h, { linkcount: 2 }), { links: [{ path: '/w1/x', name: 'x' }] }), error: /names the group twice/ },
  { what: 'a linkcount that disagrees with the links', op: (h) => upsert('/w1/x', fileEntry('x', h, { linkcount: 3 }), { links: [{ path: '/w1/x2', name: 'x2' }] }), error: /linkcount 3 is not 1 \+ 1/ },
  { what: 'hardlinks on a directory', op: () => upsert('/w1/d', { ...fileEntry('d', null), mode: S_IFDIR | 0o755, size: 4096, linkcount: 2 }, { links: [{ path: '/w1/d2', name: 'd2' }] }), path: '/w1/d', error: /only regular files form hardlink groups/ },
  { what: 'the external flag', op: (h) => upsert('/w1/x', fileEntry('x', h, { extraFlags: FLAG.external })), error: /flags external may not be set/ },
  { what: 'the hidden flag', op: (h) => upsert('/w1/x', fileEntry('x', h, { extraFlags: FLAG.hidden })), error: /flags hidden may not be set/ },
  { what: 'the bind-mountpoint flag', op: () => upsert('/w1/d', { ...fileEntry('d', null), mode: S_IFDIR | 0o755, size: 4096, linkcount: 2, extraFlags: FLAG.bindMountpoint }), path: '/w1/d', error: /flags bindMountpoint may not be set/ },
  { what: 'the mountpoint flag', op: () => upsert('/w1/d', { ...fileEntry('d', null), mode: S_IFDIR | 0o755, size: 4096, linkcount: 2, extraFlags: FLAG.nestedMountpoint }), path: '/w1/d', error: /flags nestedMountpoint may not be set/ },
  { what: 'the nested-root flag', op: () => upsert('/w1/d', { ...fileEntry('d', null), mode: S_IFDIR | 0o755, size: 4096, linkcount: 2, extraFlags: FLAG.nestedRoot }), path: '/w1/d', error: /flags nestedRoot may not be set/ },
  { what: 'a content hash on a symlink', op: (h) => upsert('/w1/x', fileEntry('x', h, { mode: S_IFLNK | 0o777, symlink: 'f', size: 1 })), error: /only regular files carry a content hash/ },
  { what: 'a symlink whose size is not its target length', op: () => upsert('/w1/x', fileEntry('x', null, { mode: S_IFLNK | 0o777, symlink: 'f', size: 5 })), error: /not the target's length 1/ },
  { what: 'a mode that is no file type', op: (h) => upsert('/w1/x', fileEntry('x', h, { mode: 0o644 })), error: /mode 420 is not a file type/ },
  { what: 'an xattr blob that does not decode', op: (h) => upsert('/w1/x', fileEntry('x', h, { xattr: Buffer.from([1, 1, 5, 5]).toString('base64') })), error: /xattr blob: .*ends inside entry 1/ },
  { what: 'an unknown operation', op: () => ({ op: 'chmod', path: '/w1/x' }), error: /unknown operation "chmod"/ },
  { what: 'unknown fields on an operation', op: () => ({ op: 'remove', path: '/w1/x', recursive: true }), error: /unknown fields: recursive/ },
];

test('the commit function refuses every operation verify would not accept, naming part, index and path; the manifest stays and the writer publishes on', async (t) => {
  const s = await setup();
  const before = (await readHead(s.store))!.bytes;
  const good = upsert('/w1/ok', fileEntry('ok', s.fileHash));
  for (const c of BAD) {
    await t.test(`refuses ${c.what}`, async () => {
      const path = c.path ?? '/w1/x';
      await assert.rejects(s.commit([[good, c.op(s.fileHash)]]), (err: Error & { code?: string; data?: Record<string, unknown> }) => {
        assert.equal(err.code, 'invalid-operation', err.message);
        assert.ok(err.message.startsWith(`changeset part 0, operation 1 ('${path}'): `), err.message);
        assert.match(err.message, c.error);
        assert.deepEqual(err.data, { part: 0, index: 1, path });
        return true;
      });
      assert.ok((await readHead(s.store))!.bytes.equals(before), 'manifest unchanged');
    });
  }
  // The same rules pass what the writer really sends.
  assert.equal(operationProblem(good, '/w1'), null);

  // The writer's own publishes still work, and the repository verifies.
  writeFileSync(join(s.src, 'g'), 'later\n');
  const later = await s.publish();
  assert.equal(later.changed, true);
  const reader = await s.open();
  assert.equal((await reader.readFile('/w1/g')).toString(), 'later\n');
  assert.equal(await reader.stat('/w1/ok'), null, 'nothing of the refused changesets landed');
  await verifyRepository(reader);
  reader.close();
});

test('a part over the operation limit, or over the byte limit, is refused before its operations are parsed or applied', async () => {
  const s = await setup();
  const before = (await readHead(s.store))!.bytes;
  const many = Array.from({ length: MAX_OPS_PER_PART + 1 }, (_, i) => upsert(`/w1/n${i}`, fileEntry(`n${i}`, s.fileHash)));
  await assert.rejects(s.commit([many]), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'invalid-changeset-part');
    assert.match(err.message, new RegExp(`changeset part 0: has ${MAX_OPS_PER_PART + 1} operations; at most ${MAX_OPS_PER_PART}`));
    return true;
  });
  assert.ok((await readHead(s.store))!.bytes.equals(before));

  // Not even JSON: had it been parsed, the error would say so; the size alone refuses it.
  const huge = Buffer.alloc(MAX_PART_BYTES + 1, 'x');
  await assert.rejects(s.commit([[upsert('/w1/ok', fileEntry('ok', s.fileHash))], huge]), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'invalid-changeset-part');
    assert.match(err.message, new RegExp(`changeset part 1: is ${MAX_PART_BYTES + 1} bytes; at most ${MAX_PART_BYTES}`));
    return true;
  });
  assert.ok((await readHead(s.store))!.bytes.equals(before));

  // A bad operation in a later part is refused too: nothing of the good first part lands.
  await assert.rejects(s.commit([[upsert('/w1/ok', fileEntry('ok', s.fileHash))], [upsert('/w1/y', fileEntry('y', null))]]),
    /changeset part 1, operation 0 \('\/w1\/y'\): regular file has no content hash/);
  assert.ok((await readHead(s.store))!.bytes.equals(before));
  writeFileSync(join(s.src, 'g'), 'later\n');
  assert.equal((await s.publish()).changed, true);
});

test('a metadata-only change of a chunked file goes through the chain with its chunk list', async () => {
  const s = await setup();
  const big = randomBytes(50_000);
  writeFileSync(join(s.src, 'big'), big);
  await s.publish({ minSize: 4096, avgSize: 8192, maxSize: 16384 });
  chmodSync(join(s.src, 'big'), 0o600);
  const changed = await s.publish({ minSize: 4096, avgSize: 8192, maxSize: 16384 });
  assert.equal(changed.filesCompressed, 0, 'only metadata changed');
  const reader = await s.open();
  const entry = (await reader.stat('/w1/big'))!;
  assert.ok(entry.extraFlags & FLAG.chunked);
  assert.equal(entry.mode & 0o777, 0o600);
  assert.ok((await reader.readFile('/w1/big')).equals(big));
  await verifyRepository(reader);
  reader.close();
});

test('a changeset header over the size limit is refused before it is read, and one whose parts are not digests is refused', async () => {
  const s = await setup();
  const before = (await readHead(s.store))!.bytes;
  const ops = [upsert('/w1/ok', fileEntry('ok', s.fileHash))];
  // Two MiB of padding in a validly signed header: its size alone refuses it.
  await assert.rejects(s.commit([ops], (h) => s.sign({ ...h, createdAt: 'x'.repeat(2 * 1024 * 1024) })),
    (err: Error & { code?: string }) => err.code === 'invalid-changeset-header' && /is \d+ bytes; at most 1048576 are read/.test(err.message));
  assert.ok((await readHead(s.store))!.bytes.equals(before));
  await assert.rejects(s.commit([ops], (h) => s.sign({ ...h, parts: [{ nested: 'object' }] as unknown as string[] })),
    (err: Error & { code?: string }) => err.code === 'invalid-changeset-header' && /parts must be a list of part digests/.test(err.message));
  assert.ok((await readHead(s.store))!.bytes.equals(before));
});
