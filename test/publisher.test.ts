// Publisher keys and the master-signed publisher policy: what it lets through and what it refuses.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { rsaKeyPair } from '../src/format/keys.js';
import { authorize, openPolicy, signPolicy, withPublisher, type PublisherPolicy } from '../src/format/publisher-policy.js';
import {
  canonicalJson, openSignedDocument, parseSignedDocument, serializeSignedDocument, signDocument, verifySignedDocument,
} from '../src/format/signed-document.js';
import { signLeaseRequest } from '../src/format/lease.js';
import { parsePublisherKeyFile } from '../src/format/publisher-key-file.js';
import { FsStore } from '../src/store/fs-store.js';
import { addPublisherToPolicy, loadPolicy, POLICY_KEY } from '../src/repo/publisher-policy.js';
import { cliOk, runCli, tempDir } from './helpers.js';

const FQRN = 'pub.example.org';


const keyPairs = Promise.all([rsaKeyPair(), rsaKeyPair(), rsaKeyPair()]);

async function samplePolicy(): Promise<{ policy: PublisherPolicy; master: { privateKey: string; publicKey: string }; other: { privateKey: string; publicKey: string } }> {
  const [master, alice, other] = await keyPairs;
  const policy = withPublisher({ fqrn: FQRN, version: 0, publishers: [] }, { name: 'alice', publicKeyPem: alice.publicKey, paths: ['/w1', 'w2/'] }, new Date(0));
  return { policy, master, other };
}

test('a policy signed with the master key verifies, also after re-serialising with other key order', async () => {
  const { policy, master } = await samplePolicy();
  const bytes = serializeSignedDocument(signPolicy(policy, master.privateKey));
  assert.deepEqual(openPolicy(bytes, FQRN, master.publicKey), policy);
  assert.deepEqual(policy.publishers[0].paths, ['/w1', '/w2']);
  // Same content, keys reordered and compact: the signature covers canonical bytes, not the layout.
  const doc = JSON.parse(bytes.toString()) as Record<string, unknown>;
  const reordered = JSON.stringify({ signature: doc.signature, body: { publishers: (doc.body as PublisherPolicy).publishers, version: 1, fqrn: FQRN }, keyId: doc.keyId, type: doc.type, format: doc.format });
  assert.deepEqual(openPolicy(reordered, FQRN, master.publicKey), policy);
  assert.equal(canonicalJson({ b: [1, 'x', null], a: { d: true, c: 2.5 } }), '{"a":{"c":2.5,"d":true},"b":[1,"x",null]}');
});

test('a forged policy is refused: tampered body, wrong signing key, wrong repository, wrong document type', async () => {
  const { policy, master, other } = await samplePolicy();
  const signed = signPolicy(policy, master.privateKey);

  const widened = structuredClone(signed);
  widened.body.publishers[0].paths = ['/'];
  assert.throws(() => openPolicy(serializeSignedDocument(widened), FQRN, master.publicKey), /signature of the scvmfs-publisher-policy does not verify/);

  const added = structuredClone(signed);
  added.body.version = 2;
  assert.throws(() => openPolicy(serializeSignedDocument(added), FQRN, master.publicKey), /does not verify/);

  // Signed by another key that claims to be the master key: the key id does not match the master key.
  const byOther = signPolicy(policy, other.privateKey);
  assert.throws(() => openPolicy(serializeSignedDocument(byOther), FQRN, master.publicKey), /signed by unknown key 'SHA256:[0-9a-f]{64}'.*expected the master key/);
  const impostor = { ...byOther, keyId: signed.keyId };
  assert.throws(() => openPolicy(serializeSignedDocument(impostor), FQRN, master.publicKey), /does not verify/);

  assert.throws(() => openPolicy(serializeSignedDocument(signed), 'other.example.org', master.publicKey), /is for pub\.example\.org, not for other\.example\.org/);

  // A document of another type signed by the same key is not a policy.
  const lease = signLeaseRequest({ name: 'alice', privateKeyPem: master.privateKey }, { fqrn: FQRN, path: '/w1', ttlSeconds: 10 });
  assert.throws(() => openPolicy(serializeSignedDocument(lease), FQRN, master.publicKey), /expected a signed 'scvmfs-publisher-policy', got a signed "scvmfs-lease-request"/);

  assert.throws(() => openPolicy('not json', FQRN, master.publicKey), /is not JSON/);
  assert.throws(() => openPolicy(JSON.stringify({ ...signed, extra: 1 }), FQRN, master.publicKey), /unknown fields: extra/);
  assert.throws(() => openPolicy(JSON.stringify({ ...signed, signature: '' }), FQRN, master.publicKey), /no base64 signature/);
});

test('signed documents refuse what JSON cannot carry and keys weaker than RSA-2048', async () => {
  const [master] = await keyPairs;
  assert.throws(() => signDocument('x-doc', { a: undefined }, master.privateKey, 'k'), /body\.a: a undefined cannot be signed/);
  assert.throws(() => signDocument('x-doc', { n: Infinity }, master.privateKey, 'k'), /Infinity is not a JSON number/);
  assert.throws(() => signDocument('x-doc', { d: new Date(0) }, master.privateKey, 'k'), /non-plain object/);
  assert.throws(() => signDocument('Bad Type', {}, master.privateKey, 'k'), /invalid document type/);
  const { generateKeyPairSync } = await import('node:crypto');
  const small = generateKeyPairSync('rsa', { modulusLength: 1024 });
  assert.throws(() => signDocument('x-doc', {}, small.privateKey, 'k'), /has 1024 bits; at least 2048/);
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  assert.throws(() => signDocument('x-doc', {}, ec.privateKey, 'k'), /an RSA key is needed/);
  const doc = signDocument('x-doc', { a: 1 }, master.privateKey, 'k');
  assert.equal(verifySignedDocument(doc, master.publicKey), true);
  assert.equal(verifySignedDocument({ ...doc, keyId: 'other' }, master.publicKey), false, 'the key id is signed too');
  assert.throws(() => openSignedDocument(doc, 'x-doc', () => undefined), /signed by unknown key 'k'/);
  assert.throws(() => parseSignedDocument(doc, 'y-doc'), /expected a signed 'y-doc'/);
});

test('authorize: a publisher writes only within its sub-paths, component-wise, and never through ..', async () => {
  const { policy } = await samplePolicy();
  for (const p of ['/w1', '/w1/', 'w1', '/w1/a/b', '//w1//deep/', '/w2/x']) assert.equal(authorize(policy, 'alice', p).name, 'alice', p);
  assert.throws(() => authorize(policy, 'alice', '/w10'), /may not write \/w10: its allowed paths are \/w1, \/w2/);
  assert.throws(() => authorize(policy, 'alice', '/w1x/a'), /may not write \/w1x\/a/);
  assert.throws(() => authorize(policy, 'alice', '/w'), /may not write \/w:/);
  assert.throws(() => authorize(policy, 'alice', '/'), /may not write \/:/);
  assert.throws(() => authorize(policy, 'alice', '/w1/../w3'), /invalid path: .*contains '\.\.'/);
  assert.throws(() => authorize(policy, 'alice', '/w1/./x'), /contains '\.'/);
  assert.throws(() => authorize(policy, 'alice', '/w1/\0'), /NUL/);
  assert.throws(() => authorize(policy, 'mallory', '/w1'), /publisher 'mallory' is not in the publisher policy/);
  const [, , other] = await keyPairs;
  const withRoot = withPublisher(policy, { name: 'root-writer', publicKeyPem: other.publicKey, paths: ['/'] }, new Date());
  for (const p of ['/', '/w10', '/any/where']) assert.equal(authorize(withRoot, 'root-writer', p).name, 'root-writer');
  assert.equal(withRoot.version, policy.version + 1);
});

test('two owners adding publishers at the same time both land (compare-and-swap)', async () => {
  const store = new FsStore(tempDir('policy-cas'));
  const [master, a, b] = await keyPairs;
  await Promise.all([
    addPublisherToPolicy(store, { fqrn: FQRN, masterKeyPem: master.privateKey, name: 'a', publicKeyPem: a.publicKey, paths: ['/a'] }),
    addPublisherToPolicy(store, { fqrn: FQRN, masterKeyPem: master.privateKey, name: 'b', publicKeyPem: b.publicKey, paths: ['/b'] }),
  ]);
  const loaded = await loadPolicy(store, FQRN, master.publicKey);
  assert.deepEqual(loaded?.policy.publishers.map((p) => p.name), ['a', 'b']);
  assert.equal(loaded?.policy.version, 2);
  await assert.rejects(addPublisherToPolicy(store, { fqrn: FQRN, masterKeyPem: master.privateKey, name: 'a', publicKeyPem: b.publicKey, paths: ['/a'] }),
    /publisher 'a' is already listed with another key/);
});

test('scvmfs publisher add/list/remove through the CLI; bad input changes nothing', { timeout: 60_000 }, async () => {
  const work = tempDir('publisher-cli');
  const store = join(work, 'store');
  const keys = join(work, 'keys');
  const common = ['--store', store, '--keys', keys];
  await cliOk(['init', FQRN, ...common]);

  const added = await cliOk(['publisher', 'add', FQRN, 'alice', '--path', '/w1', '--path', 'w2/', ...common]);
  assert.match(added.stdout, /created publisher key .*alice\.publisher \(SHA256:[0-9a-f]{64}\)/);
  assert.match(added.stdout, /publisher 'alice' may write \/w1, \/w2 in pub\.example\.org \(policy version 1\)/);
  const keyFile = join(keys, 'alice.publisher');
  assert.equal(statSync(keyFile).mode & 0o777, 0o600);
  const keyText = readFileSync(keyFile, 'utf8');
  const parsed = parsePublisherKeyFile(keyText, keyFile);
  assert.deepEqual([parsed.name, parsed.fqrn], ['alice', FQRN]);
  for (const secret of ['key', 'masterkey']) {
    const body = readFileSync(join(keys, `${FQRN}.${secret}`), 'utf8').split('\n')[1];
    assert.ok(!keyText.includes(body), `the publisher file must not contain the repository's ${secret}`);
  }
  const fingerprint = /\((SHA256:[0-9a-f]{64})\)/.exec(added.stdout)![1];

  // Adding again reuses the key and sets the paths.
  const again = await cliOk(['publisher', 'add', FQRN, 'alice', '--path', '/w3', ...common]);
  assert.match(again.stdout, new RegExp(`reused publisher key .*\\(${fingerprint}\\)`));
  assert.equal(readFileSync(keyFile, 'utf8'), keyText);
  await cliOk(['publisher', 'add', FQRN, 'bob', '--path', '/', ...common]);

  const listed = await cliOk(['publisher', 'list', FQRN, ...common]);
  assert.match(listed.stdout, /version 3/);
  assert.match(listed.stdout, new RegExp(`^alice\\t/w3\\t${fingerprint}\\t`, 'm'));
  assert.match(listed.stdout, /^bob\t\/\tSHA256:[0-9a-f]{64}\t/m);

  const before = readFileSync(join(store, POLICY_KEY));
  for (const [args, message] of [
    [['publisher', 'add', FQRN, '../evil', '--path', '/x', ...common], /invalid publisher name "\.\.\/evil"/],
    [['publisher', 'add', FQRN, 'carol', '--path', '/w1/../w2', ...common], /contains '\.\.'/],
    [['publisher', 'remove', FQRN, 'nobody', ...common], /publisher 'nobody' is not in the policy/],
    [['publisher', 'add', FQRN, 'dave', '--path', '/d', '--store', store, '--keys', join(work, 'nokeys')], /missing master key file/],
  ] as const) {
    const r = await runCli([...args]);
    assert.equal(r.code, 3, args.join(" "));
    assert.match(r.stderr, message);
  }
  assert.deepEqual(readFileSync(join(store, POLICY_KEY)), before, 'refused commands leave the policy as it was');
  assert.equal(existsSync(join(keys, 'carol.publisher')), false, 'a refused add writes no key file');
  assert.equal(existsSync(join(work, 'nokeys', 'dave.publisher')), false);

  const removed = await cliOk(['publisher', 'remove', FQRN, 'bob', ...common]);
  assert.match(removed.stdout, /publisher 'bob' removed from pub\.example\.org \(policy version 4\)/);
  const after = await cliOk(['publisher', 'list', FQRN, ...common]);
  assert.doesNotMatch(after.stdout, /^bob/m);
  assert.match(after.stdout, /^alice\t/m);

  // A policy tampered with in the store is refused by list, naming the problem.
  const tampered = readFileSync(join(store, POLICY_KEY), 'utf8').replace('"/w3"', '"/"');
  const { writeFileSync } = await import('node:fs');
  writeFileSync(join(store, POLICY_KEY), tampered);
  const refused = await runCli(['publisher', 'list', FQRN, ...common]);
  assert.equal(refused.code, 3);
  assert.match(refused.stderr, /publisher policy of pub\.example\.org refused: signature .* does not verify/);
});
