// Merging a nested catalog back into its parent keeps every hardlink group id unique in the merged
// catalog: the client maps a group to one inode per catalog, so two groups sharing an id would be
// served as one file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { linkSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from './helpers.js';
import { FsStore } from '../src/store/fs-store.js';
import { generateRepositoryKeys } from '../src/format/keys.js';
import { initRepository, readHead } from '../src/repo/repository.js';
import { fetchCatalog } from '../src/repo/objects.js';
import { publishDirectory } from '../src/publish/publish-directory.js';
import { RepositoryReader } from '../src/client/reader.js';
import { verifyRepository } from '../src/client/verify.js';

const FQRN = 'merge.example.org';

test('removing a .cvmfscatalog marker merges the catalog without two hardlink groups sharing an id', async () => {
  const work = tempDir('nested-merge');
  const store = new FsStore(join(work, 'store'));
  const keys = await generateRepositoryKeys(FQRN);
  await initRepository(store, { fqrn: FQRN, keys });
  const src = join(work, 'src');
  mkdirSync(join(src, 'a'), { recursive: true });
  mkdirSync(join(src, 'n/b'), { recursive: true });
  writeFileSync(join(src, 'a/f'), 'one\n');
  linkSync(join(src, 'a/f'), join(src, 'a/g'));
  writeFileSync(join(src, 'n/b/f'), 'two\n');
  linkSync(join(src, 'n/b/f'), join(src, 'n/b/g'));
  writeFileSync(join(src, 'n/.cvmfscatalog'), '');
  const publish = () => publishDirectory(store, src, { fqrn: FQRN, keys, xattrs: null, autocatalogs: false });
  await publish();
  rmSync(join(src, 'n/.cvmfscatalog'));
  await publish();

  const { db } = await fetchCatalog(store, (await readHead(store))!.manifest.rootCatalog);
  const groups = new Map<number, Set<string>>();
  for (const { path, entry } of db.walk()) {
    if (entry.hardlinkGroup === 0) continue;
    const dir = path.slice(0, path.lastIndexOf('/'));
    groups.set(entry.hardlinkGroup, (groups.get(entry.hardlinkGroup) ?? new Set()).add(dir));
  }
  db.close();
  assert.equal(groups.size, 2, 'two groups');
  for (const [group, dirs] of groups) assert.equal(dirs.size, 1, `group ${group} lies in one directory (${[...dirs].join(', ')})`);

  const reader = await RepositoryReader.open(store, { fqrn: FQRN, publicKeys: [keys.masterPublicKeyPem] });
  assert.equal((await reader.readFile('/n/b/g')).toString(), 'two\n');
  await verifyRepository(reader);
  reader.close();
  assert.equal((await publish()).changed, false, 'republishing the same tree changes nothing');
});
