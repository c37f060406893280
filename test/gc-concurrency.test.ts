// Garbage collection never stops publishing and never leaves a revision pointing at an object it deleted.
// The hard case: a writer finds an object present (left over from a dropped revision) and skips its
// upload while gc sweeps that object. Each chain is run inside every checkpoint of the other, with
// double delivery, and 4 writers publish while gc runs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setupRepo, FQRN, type Repo } from './txn-helpers.js';
import { invoker } from './chain-invoker.js';
import { ageObjects, HOUR } from './gc-helpers.js';
import { loadPublisherKey } from '../src/repo/publishers.js';
import { publishThroughChain } from '../src/publish/publish-changeset.js';
import { runGcInline } from '../src/runtime/run-gc.js';
import { verifyAt } from '../src/client/verify.js';
import { prepareObject } from '../src/format/zlib-object.js';
import type { ObjectStore } from '../src/store/object-store.js';
import { FsStore } from '../src/store/fs-store.js';
import type { GcConfig } from '../src/functions/gc.js';

const SHARED = 'bytes that only a dropped revision holds, until a writer publishes them again\n';
const HOOK = Symbol.for('scvmfs.runtime.checkpoint');
const sharedKey = prepareObject('sha1', Buffer.from(SHARED), '').key;

/** alice publishes SHARED in revision 2 and removes it in revision 3; everything is made old. */
async function fixture(name: string): Promise<Repo & { storeDir: string; gcConfig: GcConfig }> {
  const s = await setupRepo(name, { alice: ['/a'], bob: ['/b'], carol: ['/c'], dave: ['/d'] });
  const alice = await loadPublisherKey(s.keysDir, 'alice');
  const src = join(s.work, 'alice');
  mkdirSync(src, { recursive: true });
  writeFileSync(join(src, 'shared.txt'), SHARED);
  writeFileSync(join(src, 'keep.txt'), 'alice keeps this\n');
  await publishThroughChain(s.store, src, { fqrn: FQRN, publisher: alice, path: '/a', functions: invoker(s.config) });
  writeFileSync(join(src, 'shared.txt'), 'something else now\n');
  await publishThroughChain(s.store, src, { fqrn: FQRN, publisher: alice, path: '/a', functions: invoker(s.config) });
  const storeDir = join(s.work, 'store');
  ageObjects(storeDir, 10 * 24 * HOUR);
  return { ...s, storeDir, gcConfig: { store: s.store, fqrn: FQRN, keys: s.config.keys } };
}

/** A copy of a fixture's store, so that each interleaving starts from the same repository without publishing it again. */
function copyOf(base: Fixture, label: string): Fixture {
  const storeDir = join(base.work, `store-${label}`);
  cpSync(base.storeDir, storeDir, { recursive: true, preserveTimestamps: true });
  const store = new FsStore(storeDir);
  return { ...base, store, storeDir, config: { ...base.config, store }, gcConfig: { ...base.gcConfig, store } };
}

type Fixture = Awaited<ReturnType<typeof fixture>>;

function bobTree(s: Repo, label: string): string {
  const dir = join(s.work, `bob-${label}`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'again.txt'), SHARED);
  writeFileSync(join(dir, 'own.txt'), `bob ${label}\n`);
  return dir;
}

const GC_OPTIONS = { keepRevisions: 1, graceMs: HOUR, fenceWaitMs: 0 };

async function checkRepository(s: Repo & { storeDir: string }, what: string): Promise<void> {
  await verifyAt(s.storeDir, { fqrn: FQRN, publicKeys: [s.keys.masterPublicKeyPem] }).catch((err) => {
    throw new Error(`${what}: ${(err as Error).message}`);
  });
}

/** Runs `inner` once, at the `at`-th checkpoint whose name `matches`, inside the outer chain. */
function atCheckpoint(at: number, matches: (name: string) => boolean, inner: () => Promise<void>): { ran: () => boolean; remove: () => void } {
  let seen = 0;
  let ran = false;
  let inside = false;
  (globalThis as Record<symbol, unknown>)[HOOK] = async (name: string) => {
    if (inside || ran || !matches(name)) return;
    if (seen++ !== at) return;
    inside = true;
    try {
      await inner();
      ran = true;
    } finally {
      inside = false;
    }
  };
  return { ran: () => ran, remove: () => { delete (globalThis as Record<symbol, unknown>)[HOOK]; } };
}

test('a whole gc inside every checkpoint of a commit whose writer skipped uploading an object only a dropped revision held: the publish lands and the object stays', async () => {
  const base = await fixture('gc-in-commit');
  for (let at = 0; ; at++) {
    const s = copyOf(base, `at-${at}`);
    const bob = await loadPublisherKey(s.keysDir, 'bob');
    const hook = atCheckpoint(at, (n) => !n.startsWith('gc-'), async () => { await runGcInline(s.gcConfig, GC_OPTIONS); });
    try {
      const out = await publishThroughChain(s.store, bobTree(s, String(at)), {
        fqrn: FQRN, publisher: bob, path: '/b', functions: invoker(s.config, { deliverTwice: at % 2 === 1 }),
      });
      assert.ok(out.revision > 3);
    } finally {
      hook.remove();
    }
    assert.ok(existsSync(join(s.storeDir, sharedKey)), `gc at commit checkpoint ${at}: the object bob's revision names exists`);
    await checkRepository(s, `gc at commit checkpoint ${at}`);
    if (!hook.ran()) break;
  }
});

test('a whole publish inside every checkpoint of a gc: the publish lands, the gc finishes, nothing the head names is gone', async () => {
  const base = await fixture('commit-in-gc');
  for (let at = 0; ; at++) {
    const s = copyOf(base, `at-${at}`);
    const bob = await loadPublisherKey(s.keysDir, 'bob');
    // The publish starts at the checkpoint and runs alongside the rest of the gc (a commit that meets the
    // gc deleting waits for it to end, so it cannot finish inside the gc's step).
    let publish: Promise<unknown> | undefined;
    const hook = atCheckpoint(at, (n) => n.startsWith('gc-'), async () => {
      publish = publishThroughChain(s.store, bobTree(s, String(at)), { fqrn: FQRN, publisher: bob, path: '/b', functions: invoker(s.config, { deliverTwice: at % 2 === 1 }) });
      // Let it get going before the gc's next step.
      await new Promise((r) => setTimeout(r, 200));
    });
    try {
      const gc = await runGcInline(s.gcConfig, { ...GC_OPTIONS, fenceWaitMs: 100 });
      assert.equal(gc.result.status, 'done');
      await publish;
    } finally {
      hook.remove();
    }
    if (!hook.ran()) break;
    assert.ok(existsSync(join(s.storeDir, sharedKey)), `publish at gc checkpoint ${at}: the object bob's revision names exists`);
    await checkRepository(s, `publish at gc checkpoint ${at}`);
  }
});

test('gc deletes the object after the writer found it present and before its changeset exists: the commit finds it missing and the writer uploads it again', async () => {
  const s = await fixture('gc-before-changeset');
  const bob = await loadPublisherKey(s.keysDir, 'bob');
  let gcRan = false;
  const said: string[] = [];
  // The writer's store: the first changeset write is where gc gets in.
  const writerStore = new Proxy(s.store, {
    get(target, prop, receiver) {
      if (prop === 'put') {
        return async (key: string, body: Uint8Array, opts?: unknown) => {
          if (!gcRan && /\/part-\d+\.json$/.test(key)) {
            gcRan = true;
            const gc = await runGcInline(s.gcConfig, GC_OPTIONS);
            assert.ok(gc.result.deleted.objects > 0);
            assert.equal(existsSync(join(s.storeDir, sharedKey)), false, 'gc collected the object the writer skipped');
          }
          return target.put(key, body, opts as never);
        };
      }
      return Reflect.get(target, prop, receiver);
    },
  }) as ObjectStore;
  const out = await publishThroughChain(writerStore, bobTree(s, 'late'), {
    fqrn: FQRN, publisher: bob, path: '/b', functions: invoker(s.config), onProgress: (m) => said.push(m), onWarning: (m) => said.push(m),
  });
  assert.ok(gcRan);
  assert.ok(out.revision > 3);
  assert.ok(existsSync(join(s.storeDir, sharedKey)), 'the writer uploaded it again');
  assert.ok(said.some((m) => /not in the store/.test(m)), `the writer says why it uploads again: ${said.join(' | ')}`);
  await checkRepository(s, 'after the repair');
});

test('4 writers publish while gc runs in a loop: all land, and nothing they name is lost', async () => {
  const s = await fixture('gc-four-writers');
  const writers = ['alice', 'bob', 'carol', 'dave'];
  let stop = false;
  let gcRuns = 0;
  const gcLoop = (async () => {
    while (!stop) {
      await runGcInline(s.gcConfig, { ...GC_OPTIONS, fenceWaitMs: 50 });
      gcRuns++;
    }
  })();
  const revisions: number[] = [];
  await Promise.all(writers.map(async (w) => {
    const key = await loadPublisherKey(s.keysDir, w);
    for (let round = 0; round < 3; round++) {
      const dir = join(s.work, `${w}-${round}`);
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'again.txt'), SHARED);
      writeFileSync(join(dir, `round-${round}.txt`), `${w} round ${round}\n`);
      const out = await publishThroughChain(s.store, dir, { fqrn: FQRN, publisher: key, path: `/${w[0]}`, functions: invoker(s.config) });
      revisions.push(out.revision);
    }
  }));
  stop = true;
  await gcLoop;
  assert.equal(revisions.length, 12);
  assert.ok(gcRuns >= 1);
  await checkRepository(s, 'after 4 writers and gc');
  // Each writer's last round is in the head, with its bytes.
  const reader = await s.open();
  try {
    for (const w of writers) assert.equal((await reader.readFile(`/${w[0]}/round-2.txt`)).toString(), `${w} round 2\n`);
  } finally {
    reader.close();
  }
  assert.ok(existsSync(join(s.storeDir, sharedKey)));
});
