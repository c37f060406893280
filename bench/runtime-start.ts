// node dist/bench/runtime-start.js: cold and warm invocation times of the local runtime, both modes,
// as seen by the caller (invoke() to answer) — the figures quoted in docs/runtime.md.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { LocalRuntime } from '../src/runtime/local.js';

const work = mkdtempSync(join(tmpdir(), 'scvmfs-rtbench-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));
const handler = join(work, 'echo.mjs');
writeFileSync(handler, 'export async function handler(event) { return { result: event }; }\n');

function stats(ms: number[]): string {
  const s = [...ms].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
  return `median ${q(0.5).toFixed(2)} ms, p90 ${q(0.9).toFixed(2)} ms (n=${s.length})`;
}

async function time(rt: LocalRuntime, n: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await rt.invoke('lease', { i });
    out.push(performance.now() - t0);
  }
  return out;
}

for (const mode of ['worker', 'strict'] as const) {
  const cold = new LocalRuntime({ mode, forceColdStart: true, modules: { lease: handler } });
  const coldMs = await time(cold, 30);
  const init = cold.report().lease!;
  await cold.close();
  const warm = new LocalRuntime({ mode, modules: { lease: handler } });
  await time(warm, 5);
  const warmMs = await time(warm, 300);
  await warm.close();
  console.log(`${mode.padEnd(6)} cold: ${stats(coldMs)}; handler time within it ${(init.totalDurationMs / init.invocations).toFixed(2)} ms mean`);
  console.log(`${mode.padEnd(6)} warm: ${stats(warmMs)}`);
}
