// Shared test fixtures: the stock-server test vector, temporary directories, the CLI and a repository it made.
import { execFileSync, spawn } from 'node:child_process';
import assert from 'node:assert/strict';
import { rm, writeFile } from 'node:fs/promises';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ObjectReader } from '../src/store/object-store.js';
import type { ContentHash } from '../src/format/hash.js';
import { fetchCatalog } from '../src/repo/objects.js';

/** test/ in the source tree (tests run from dist/test, fixtures stay in test/fixtures). */
export const TEST_SOURCE_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'test');
export const VECTOR_DIR = join(TEST_SOURCE_DIR, 'fixtures', 'legacy_aufs_repo_21');
export const VECTOR_FQRN = 'legacy_aufs.cern.ch';

const made: string[] = [];
process.on('exit', () => { for (const dir of made) rmSync(dir, { recursive: true, force: true }); });

/** Every file under `root`, by its path relative to it, with a SHA-256 digest of its bytes. */
export function fileDigests(root: string): Map<string, string> {
  const out = new Map<string, string>();
  const visit = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) visit(p);
      else out.set(relative(root, p), createHash('sha256').update(readFileSync(p)).digest('hex'));
    }
  };
  visit(root);
  return out;
}

/** A temporary directory under `base`, removed when the process exits. */
export function tempDir(prefix: string, base = tmpdir()): string {
  const dir = mkdtempSync(join(base, `scvmfs-${prefix}-`));
  made.push(dir);
  return dir;
}

export interface Vector {
  /** The repository as the stock server stored it (served as-is). */
  repo: string;
  keys: string;
  fqrn: string;
}

export function extractVector(): Vector {
  const work = tempDir('vector');
  execFileSync('tar', ['xzf', join(VECTOR_DIR, 'legacy_aufs_repo.tar.gz'), '-C', work]);
  execFileSync('tar', ['xzf', join(VECTOR_DIR, 'keys.tar.gz'), '-C', work]);
  return { repo: join(work, 'srv/cvmfs', VECTOR_FQRN), keys: join(work, 'etc/cvmfs/keys'), fqrn: VECTOR_FQRN };
}

/** Rows of every catalog of the repository at `root`, by mountpoint. */
export async function catalogRows(store: ObjectReader, root: ContentHash): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  const visit = async (hash: ContentHash, mountpoint: string) => {
    const { db } = await fetchCatalog(store, hash);
    out.set(mountpoint, db.rowCount());
    const nested = db.nestedCatalogs();
    db.close();
    for (const n of nested) await visit(n.hash, n.path);
  };
  await visit(root, '');
  return out;
}

/** The built CLI (dist/src/cli/main.js). */
export const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', 'src', 'cli', 'main.js');

export interface CliRun { code: number | null; stdout: string; stderr: string }

/** Runs `scvmfs` as a user would, optionally as another uid/gid; never throws on a failing exit. */
export function runCli(args: string[], opts: { uid?: number; gid?: number; dropFileCapabilities?: boolean; env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<CliRun> {
  return new Promise((resolve) => {
    const { dropFileCapabilities, env, cwd, ...ids } = opts;
    // setpriv (util-linux) drops root's power to ignore file modes, for tests of unreadable input.
    const [cmd, argv] = dropFileCapabilities
      ? ['setpriv', ['--bounding-set=-dac_override,-dac_read_search', '--inh-caps=-all', process.execPath, CLI, ...args]]
      : [process.execPath, [CLI, ...args]];
    const child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'], env: env ?? process.env, cwd, ...ids });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Runs `scvmfs` and insists that it succeeds. */
export async function cliOk(args: string[]): Promise<CliRun> {
  const r = await runCli(args);
  assert.equal(r.code, 0, `scvmfs ${args.join(' ')} failed: ${r.stderr}`);
  return r;
}

/**
 * A repository made by `scvmfs init` (with `initArgs`) in a new work directory: its store (a directory
 * there unless given), key directory, and an empty source directory; each of `publishers` added with
 * the path /<name>.
 */
export async function cliRepo(name: string, fqrn: string, o: { store?: string; initArgs?: string[]; publishers?: string[] } = {}) {
  const work = tempDir(name);
  const store = o.store ?? join(work, 'store');
  const keys = join(work, 'keys');
  const src = join(work, 'src');
  mkdirSync(src, { recursive: true });
  await cliOk(['init', fqrn, '--store', store, '--keys', keys, ...(o.initArgs ?? [])]);
  for (const w of o.publishers ?? []) await cliOk(['publisher', 'add', fqrn, w, '--path', `/${w}`, '--store', store, '--keys', keys]);
  return { work, store, keys, src, pubkey: join(keys, `${fqrn}.pub`) };
}

/**
 * Writes `source` as a script, starts one process per argument list, lets them all print "ready", then
 * releases them at once with "go" on stdin; resolves what each printed after "ready".
 */
export async function raceProcesses(script: string, source: string, argLists: string[][]): Promise<string[]> {
  await writeFile(script, source);
  try {
    const workers = argLists.map((a) => {
      const child = spawn(process.execPath, [script, ...a], { stdio: ['pipe', 'pipe', 'inherit'] });
      let out = '';
      const ready = new Promise<void>((resolve, reject) => {
        child.stdout.on('data', (chunk) => {
          out += chunk;
          if (out.startsWith('ready\n')) resolve();
        });
        child.on('exit', () => reject(new Error(`worker exited before it was ready: ${out}`)));
      });
      const done = new Promise<string>((resolve) => child.on('close', () => resolve(out.slice('ready\n'.length).trim())));
      return { child, ready, done };
    });
    await Promise.all(workers.map((w) => w.ready));
    for (const w of workers) w.child.stdin.end('go\n');
    return await Promise.all(workers.map((w) => w.done));
  } finally {
    await rm(script, { force: true });
  }
}
