// A keys directory laid out like /etc/cvmfs/keys: <fqrn>.masterkey, .pub, .key, .crt (spec §7.3).
import { createPublicKey } from 'node:crypto';
import { constants } from 'node:fs';
import { access, mkdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { assertKeyMatchesCertificate, certificatePublicKey } from '../format/certificate.js';
import { generateRepositoryKeys, publicKeyPemOf, type RepositoryKeys } from '../format/keys.js';

/** 'anchor': the master public key `.pub` itself (not derived), what writers check the head against. */
export type KeyRole = 'master' | 'repository' | 'anchor';

interface KeyFile { field: keyof RepositoryKeys; suffix: string; mode: number; role: KeyRole }

// Private keys stay owner-only; the public key and certificate are meant to be handed out.
const KEY_FILES: readonly KeyFile[] = [
  { field: 'masterKeyPem', suffix: 'masterkey', mode: 0o600, role: 'master' },
  { field: 'masterPublicKeyPem', suffix: 'pub', mode: 0o644, role: 'master' },
  { field: 'repositoryKeyPem', suffix: 'key', mode: 0o600, role: 'repository' },
  { field: 'certificatePem', suffix: 'crt', mode: 0o644, role: 'repository' },
];

export function keyFilePaths(dir: string, fqrn: string): Record<keyof RepositoryKeys, string> {
  if (fqrn === '' || fqrn.includes('/') || fqrn.startsWith('.')) {
    throw new Error(`invalid repository name for a key file: ${JSON.stringify(fqrn)}`);
  }
  return Object.fromEntries(KEY_FILES.map((f) => [f.field, join(dir, `${fqrn}.${f.suffix}`)])) as
    Record<keyof RepositoryKeys, string>;
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path, constants.F_OK);
    return true;
  } catch {
    return false;
  }
}

/** Writes all four files; refuses (before writing anything) if any exists unless `overwrite`. */
export async function writeKeys(
  dir: string, fqrn: string, keys: RepositoryKeys, opts: { overwrite?: boolean } = {},
): Promise<void> {
  const paths = keyFilePaths(dir, fqrn);
  await mkdir(dir, { recursive: true });
  if (!opts.overwrite) {
    const present: string[] = [];
    for (const f of KEY_FILES) if (await exists(paths[f.field])) present.push(paths[f.field]);
    if (present.length > 0) {
      throw new Error(`refusing to overwrite existing key files: ${present.join(', ')}`);
    }
  }
  for (const f of KEY_FILES) {
    // 'wx' closes the race with a concurrent writer between the check above and this write.
    await writeFile(paths[f.field], keys[f.field], { mode: f.mode, flag: opts.overwrite ? 'w' : 'wx' });
  }
}

type Needed<N extends KeyRole> =
  ('master' extends N ? Pick<RepositoryKeys, 'masterKeyPem' | 'masterPublicKeyPem'> : unknown)
  & ('repository' extends N ? Pick<RepositoryKeys, 'repositoryKeyPem' | 'certificatePem'> : unknown)
  & ('anchor' extends N ? Pick<RepositoryKeys, 'masterPublicKeyPem'> : unknown);
export type LoadedKeys<N extends KeyRole> = Partial<RepositoryKeys> & Needed<N>;

async function readIfPresent(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(`cannot read key file ${path}: ${(e as Error).message}`);
  }
}

/**
 * Loads what is present and insists on the roles in `need`: 'master' needs `.masterkey` (the `.pub` is
 * derived when absent and must match when present), 'repository' needs `.key` and `.crt`, which must
 * belong together, 'anchor' needs the `.pub` file.
 */
export async function loadKeys<N extends KeyRole>(
  dir: string, fqrn: string, opts: { need: N[] },
): Promise<LoadedKeys<N>> {
  const paths = keyFilePaths(dir, fqrn);
  const keys: Partial<RepositoryKeys> = {};
  for (const f of KEY_FILES) {
    const text = await readIfPresent(paths[f.field]);
    if (text !== undefined) keys[f.field] = text;
  }
  const need = new Set<KeyRole>(opts.need);
  if (need.has('anchor') && keys.masterPublicKeyPem === undefined) {
    throw new Error(`missing master public key file ${paths.masterPublicKeyPem}: it is the trust anchor every writer ` +
      'checks the repository against (copy it from where the repository was created)');
  }
  if (need.has('master')) {
    if (keys.masterKeyPem === undefined) {
      throw new Error(`missing master key file ${paths.masterKeyPem} (needed to sign the whitelist)`);
    }
    let derived: string;
    try {
      derived = publicKeyPemOf(keys.masterKeyPem);
    } catch (e) {
      throw new Error(`${paths.masterKeyPem} is not a readable PEM private key: ${(e as Error).message}`);
    }
    if (keys.masterPublicKeyPem === undefined) {
      keys.masterPublicKeyPem = derived;
    } else {
      let listed: string;
      try {
        listed = createPublicKey(keys.masterPublicKeyPem).export({ type: 'spki', format: 'pem' }).toString();
      } catch (e) {
        throw new Error(`${paths.masterPublicKeyPem} is not a readable PEM public key: ${(e as Error).message}`);
      }
      if (listed !== derived) throw new Error(`${paths.masterPublicKeyPem} is not the public key of ${paths.masterKeyPem}`);
    }
  }
  if (need.has('repository')) {
    for (const field of ['repositoryKeyPem', 'certificatePem'] as const) {
      if (keys[field] === undefined) {
        throw new Error(`missing ${field === 'certificatePem' ? 'certificate' : 'repository key'} file ${paths[field]}`
          + ' (needed to sign the manifest)');
      }
    }
    try {
      certificatePublicKey(keys.certificatePem!);
      assertKeyMatchesCertificate(keys.repositoryKeyPem!, keys.certificatePem!);
    } catch (e) {
      throw new Error(`${paths.repositoryKeyPem} / ${paths.certificatePem}: ${(e as Error).message}`);
    }
  }
  return keys as LoadedKeys<N>;
}

/**
 * Uses the complete key set in `dir`, or creates all four files when none exists. A partial set is
 * refused: silently replacing a lost master key would lock out every client that trusts the old `.pub`.
 */
export async function loadOrCreateKeys(dir: string, fqrn: string): Promise<{ keys: RepositoryKeys; created: boolean }> {
  const paths = keyFilePaths(dir, fqrn);
  const present: KeyFile[] = [];
  for (const f of KEY_FILES) if (await exists(paths[f.field])) present.push(f);
  if (present.length === 0) {
    const keys = await generateRepositoryKeys(fqrn);
    await writeKeys(dir, fqrn, keys);
    return { keys, created: true };
  }
  if (present.length < KEY_FILES.length) {
    const missing = KEY_FILES.filter((f) => !present.includes(f)).map((f) => paths[f.field]);
    throw new Error(`incomplete key set for ${fqrn} in ${dir}: missing ${missing.join(', ')}; `
      + 'restore the missing files (or move the remaining ones away to start over with new keys)');
  }
  const keys = await loadKeys(dir, fqrn, { need: ['master', 'repository'] });
  return { keys: keys as RepositoryKeys, created: false };
}

/** Names a retired pair may take in one second: the stamp alone, then `-2` … `-100`. */
const RETIRED_NAME_TRIES = 100;

/**
 * Writes the retired pair under the first free name `<stem>`, `<stem>-2`, …: created, never overwritten,
 * so no retired key is ever lost to a later one.
 */
async function keepRetiredPair(dir: string, stem: string, key: Buffer, crt: Buffer): Promise<ReturnType<typeof keyFilePaths>> {
  for (let n = 1; n <= RETIRED_NAME_TRIES; n++) {
    const paths = keyFilePaths(dir, n === 1 ? stem : `${stem}-${n}`);
    try {
      await writeFile(paths.repositoryKeyPem, key, { mode: 0o600, flag: 'wx' });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') continue;
      throw err;
    }
    try {
      await writeFile(paths.certificatePem, crt, { mode: 0o644, flag: 'wx' });
      return paths;
    } catch (err) {
      await unlink(paths.repositoryKeyPem);
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
  throw new Error(`cannot keep the retired key in ${dir}: ${stem}.key and ${RETIRED_NAME_TRIES - 1} numbered names after it exist`);
}

/** A UTC stamp for retired key file names: 20261201T093000Z. */
function stamp(d: Date): string {
  return d.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
}

/**
 * Key rotation in the keys directory: the current `.key`/`.crt` are kept as
 * `<fqrn>.retired-<UTC stamp>.key/.crt` (`-2`, `-3`, … after the stamp when a rotation in the same second
 * kept a pair already), then the new pair replaces them (each file written beside its target and renamed
 * into place). Returns the retired files' paths.
 */
export async function replaceRepositoryKey(dir: string, fqrn: string, next: { repositoryKeyPem: string; certificatePem: string },
  now: Date = new Date()): Promise<{ key: string; crt: string }> {
  const current = keyFilePaths(dir, fqrn);
  const retired = await keepRetiredPair(dir, `${fqrn}.retired-${stamp(now)}`,
    await readFile(current.repositoryKeyPem), await readFile(current.certificatePem));
  for (const [field, mode] of [['repositoryKeyPem', 0o600], ['certificatePem', 0o644]] as const) {
    const temp = `${current[field]}.new`;
    await writeFile(temp, next[field], { mode });
    await rename(temp, current[field]);
  }
  return { key: retired.repositoryKeyPem, crt: retired.certificatePem };
}
