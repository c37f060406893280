// scvmfs gc: garbage collection as a chain of bounded steps (functions/gc.ts, docs/gc.md).
import { resolve } from 'node:path';
import { Option, InvalidArgumentError, type Command } from 'commander';
import { DEFAULT_FENCE_WAIT_MS, DEFAULT_GRACE_MS, DEFAULT_SWEEP_WINDOW_MS, gcConfigFromEnv, type GcOptions, type GcResult } from '../../functions/gc.js';
import { runGcInline, runGcLocal, type GcRun } from '../../runtime/run-gc.js';
import { meterSum, meterSummary } from '../../store/metered-store.js';
import { openStore } from '../../store/open-store.js';
import { operationUsage, reportOperationBill, storageFromMeter, type BillOptions } from '../operation-bill.js';
import { openInvocationStore } from '../../store/open-store.js';
import { durationOption, formatDuration, noLedgerOption, positiveInt, pricingOption, printJson, storeOption } from '../options.js';
import { passThroughEnv } from '../options.js';
import { formatBytes } from '../progress.js';

/** A date (2026-11-01, or any ISO time) or a duration back from now (30d, 12h). */
export function keepSinceOption(v: string): number {
  if (/^\d{4}-\d{2}-\d{2}/.test(v)) {
    const t = Date.parse(v);
    if (Number.isNaN(t)) throw new InvalidArgumentError(`'${v}' is not a date`);
    return Math.floor(t / 1000);
  }
  return Math.floor((Date.now() - durationOption('--keep-since', 1, 100 * 365 * 86_400_000)(v)) / 1000);
}

interface GcCliOptions extends BillOptions {
  store: string; keys?: string; keepRevisions?: number; keepSince?: number; dryRun?: boolean; replica?: boolean;
  grace: number; fenceWait: number; sweepWindow: number; runtime: 'local' | 'inline'; fnMemory: number; fnTimeout: number; json?: boolean; list: number;
}

export function register(program: Command): void {
  program.command('gc')
    .description('delete what no kept revision needs: dropped revisions, aborted uploads, finished transactions')
    .argument('<fqrn>', 'repository name')
    .addOption(storeOption())
    .option('--keys <dir>', 'key directory (<fqrn>.key, .crt, .pub): gc publishes a revision without the dropped ones')
    .option('--keep-revisions <n>', 'keep the head and this many revisions in all', (v) => positiveInt(v, '--keep-revisions'))
    .option('--keep-since <date|duration>', 'keep revisions published since this date, or this long ago (e.g. 30d)', keepSinceOption)
    .option('--dry-run', 'list what would be deleted, delete nothing')
    .option('--replica', 'a replica: nothing is published (needs only --keys with <fqrn>.pub, or none)')
    .option('--grace <duration>', 'never delete unreferenced objects younger than this', durationOption('--grace', 0, 365 * 86_400_000), DEFAULT_GRACE_MS)
    .addOption(new Option('--fence-wait <duration>', 'wait between announcing deletions and the last mark (longer than a commit step)')
      .argParser(durationOption('--fence-wait', 0, 3_600_000)).default(DEFAULT_FENCE_WAIT_MS, formatDuration(DEFAULT_FENCE_WAIT_MS)))
    .addOption(new Option('--sweep-window <duration>', 'how long one deleting epoch may last after its wait')
      .argParser(durationOption('--sweep-window', 60_000, 3_600_000)).default(DEFAULT_SWEEP_WINDOW_MS, formatDuration(DEFAULT_SWEEP_WINDOW_MS)))
    .addOption(new Option('--runtime <where>', 'run the chain in function sandboxes (local) or in this process (inline)').choices(['local', 'inline']).default('local'))
    .option('--fn-memory <mb>', 'memory of each gc function invocation', (v) => positiveInt(v, '--fn-memory'), 128)
    .addOption(new Option('--fn-timeout <duration>', 'time limit of each gc function invocation')
      .argParser(durationOption('--fn-timeout', 1000, 900_000)).default(60_000, '1m'))
    .option('--list <n>', 'in a dry run, list at most this many keys', (v) => positiveInt(v, '--list'), 50)
    .option('--json', 'print the result and its bill as JSON')
    .addOption(pricingOption())
    .addOption(noLedgerOption())
    .action(async (fqrn: string, o: GcCliOptions) => {
      const options: GcOptions = {
        keepRevisions: o.keepRevisions, keepSince: o.keepSince, dryRun: o.dryRun, replica: o.replica,
        graceMs: o.grace, fenceWaitMs: o.fenceWait, sweepWindowMs: o.sweepWindow, listLimit: o.list,
      };
      const storeSpec = /^[a-z][a-z0-9+.-]*:\/\//i.test(o.store) ? o.store : resolve(o.store);
      const env: Record<string, string> = { SCVMFS_STORE: storeSpec, SCVMFS_FQRN: fqrn, ...(o.keys ? { SCVMFS_KEYS: resolve(o.keys) } : {}), ...passThroughEnv() };
      let run: GcRun;
      if (o.runtime === 'inline') {
        const saved = { ...process.env };
        Object.assign(process.env, env);
        try {
          const config = await gcConfigFromEnv();
          const { store, meter } = openInvocationStore(storeSpec, {});
          run = await runGcInline({ ...config, store }, options, { memoryMb: o.fnMemory, stepMs: o.fnTimeout });
          run = { ...run, requests: meter.snapshot() };
        } finally {
          process.env = saved;
        }
      } else {
        run = await runGcLocal(env, options, { memoryMb: o.fnMemory, timeoutMs: o.fnTimeout });
      }
      if (!o.json) printResult(fqrn, run);
      const inline = o.runtime === 'inline';
      const bill = await reportOperationBill(openStore(storeSpec), {
        operation: 'gc', fqrn, revision: run.result.gcRevision ?? run.result.headRevision,
        usage: operationUsage(inline ? { writer: run.requests } : { writer: meterSum([]), functionRequests: run.requests, functions: run.functions }),
        storage: { ...storageFromMeter(run.requests), bytesRemoved: run.result.deleted.bytes, objectsRemoved: run.result.deleted.objects },
      }, { ...o, ledger: o.ledger && !run.result.dryRun });
      if (o.json) printJson({ ...run.result, steps: run.steps, requests: run.requests, bill });
    });
}

function printResult(fqrn: string, run: GcRun): void {
  const r: GcResult = run.result;
  console.log(`${r.dryRun ? 'gc dry run' : 'gc'} of ${fqrn} (head revision ${r.headRevision}${r.gcRevision ? `, published revision ${r.gcRevision}` : ''})`);
  const list = (revs: number[]) => [...revs].sort((a, b) => a - b).join(', ') || 'none';
  console.log(`  revisions kept: ${list(r.revisionsKept)}; dropped: ${list(r.revisionsDropped)}`);
  if (r.tagsRemoved.length > 0) console.log(`  automatic tags removed with them: ${r.tagsRemoved.join(', ')}`);
  console.log(`  objects listed: ${r.listed}; marked (referenced by the kept revisions): ${r.marked}; unreferenced and old enough: ${r.candidates}`);
  if (r.dryRun) {
    console.log(`  would delete ${r.candidates} objects:`);
    for (const k of r.wouldDelete ?? []) console.log(`    ${k}`);
    if ((r.wouldDelete?.length ?? 0) < r.candidates) console.log(`    … and ${r.candidates - (r.wouldDelete?.length ?? 0)} more`);
  } else {
    console.log(`  deleted: ${r.deleted.objects} objects, ${formatBytes(r.deleted.bytes)}; finished transactions removed: ${r.transactionsRemoved}`);
  }
  console.log(`  ${run.steps} steps; ${meterSummary(run.requests)}`);
}

