// A named point inside a handler where the local runtime may kill the invocation on purpose (its
// `killAt` option), so tests can stop every function at every step that matters and check that a
// retry finishes the work. Outside the local runtime (on Lambda, or a direct call) it does nothing.
const HOOK = Symbol.for('scvmfs.runtime.checkpoint');

export async function checkpoint(name: string): Promise<void> {
  const hook = (globalThis as Record<symbol, unknown>)[HOOK];
  if (typeof hook === 'function') await (hook as (name: string) => Promise<void>)(name);
}
