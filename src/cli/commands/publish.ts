// scvmfs publish: as the owner (directory to revision), or as a publisher through a lease and the commit chain.
import { Option, type Command } from 'commander';
import { readFileSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { type ChunkingParameters } from '../../format/chunker.js';
import { openMeteredStore, openStore } from '../../store/open-store.js';
import { meterSum, meterSummary, type MeterSnapshot } from '../../store/metered-store.js';
import { loadKeys } from '../../repo/keys-dir.js';
import { defaultCacheDir } from '../../repo/object-cache.js';
import { loadPublisherKey } from '../../repo/publishers.js';
import { publishThroughChain, type FunctionInvoker } from '../../publish/publish-changeset.js';
import { awsInvoker, localInvoker, type AwsInvoker, type LocalInvoker } from '../../runtime/invokers.js';
import { publishDirectory } from '../../publish/publish-directory.js';
import { RefusedError, UsageError } from '../../errors.js';
import type { FunctionName } from '../../functions/types.js';
import { deployedFunctionNames, resolveStack, type StackOutputs } from '../../runtime/stack-outputs.js';
import { formatBytes } from '../progress.js';
import { publishProgress } from '../publish-progress.js';
import type { PhaseProgress } from '../phase-progress.js';
import type { PublishProgress as PublishFigures } from '../../publish/progress.js';
import { parseChunkSizes, parseDuration, positiveInt, printJson, storeOption, maxWeightOption, minWeightOption, noAutocatalogsOption } from '../options.js';
import { passThroughEnv } from '../options.js';
import { billOptions, operationUsage, reportOperationBill, storedBy, type BillOptions } from '../operation-bill.js';
import { reportOwnerRevision } from '../owner-report.js';

type PublishOptions = BillOptions & { store: string; keys?: string; path: string; publisher?: string; runtime: string; fnTimeout: number; fnMemory: number; fnStrict?: boolean; fnNames?: string; functionNames?: Record<FunctionName, string>; region?: string; uploadVia: 'direct' | 'grants'; tag?: string; tagDescription?: string; checksum?: boolean; workers?: number; quiet?: boolean; maxWeight: number; minWeight: number; autocatalogs: boolean; xattrs: boolean; cache: string | false; chunkSizes?: ChunkingParameters; chunking: boolean; changed?: string[]; changedFrom?: string };

export function register(program: Command): void {
  billOptions(program.command('publish'))
    .description('make the repository (or --path within it) equal to a source directory')
    .argument('<fqrn>', 'repository name')
    .argument('<source-dir>', 'directory tree to publish')
    .addOption(storeOption({ orStack: true }))
    .option('--keys <dir>', 'key directory holding <fqrn>.key and <fqrn>.crt (where commits are signed)')
    .option('--publisher <keyfile>', 'publish as this publisher (<keys>/<name>.publisher) through a lease and the commit chain')
    .addOption(new Option('--runtime <where>', 'where the functions run (with --publisher)').choices(['local', 'aws']).default('local'))
    .addOption(new Option('--fn-timeout <duration>', 'wall-time limit per function invocation, e.g. 2s or 500ms').argParser(parseDuration).default(3000, '3s'))
    .option('--fn-memory <MB>', 'memory limit per function invocation', (v) => positiveInt(v, '--fn-memory'), 128)
    .option('--fn-strict', 'run each function in its own process with an RSS limit (catches off-heap memory)')
    .option('--stack <name>', 'with --runtime aws: the deployed stack (outputs saved by npm run deploy or --stack-outputs)')
    .option('--stack-outputs <file>', 'with --runtime aws: a `cdk deploy --outputs-file` JSON, read and saved for later --stack')
    .option('--fn-names <json>', 'deployed function names for --runtime aws without a stack, e.g. {"lease":"scvmfs-lease",…}')
    .addOption(new Option('--upload-via <how>', 'with --publisher: put data objects directly, or PUT them to URLs from the upload-grant function').choices(['direct', 'grants']).default('direct'))
    .option('--path <path>', 'repository sub-path to publish into', '/')
    .option('--tag <name>', 'name this revision')
    .option('--tag-description <text>', 'description of --tag')
    .option('--checksum', 'hash every file again instead of trusting size and mtime')
    .option('--changed <path>', 'compare only this path of the source (relative to it; repeatable): the rest is taken as unchanged',
      (v: string, prev: string[] | undefined) => [...(prev ?? []), v])
    .option('--changed-from <file>', 'like --changed, for each line of this file (- for standard input)')
    .option('--workers <n>', 'compression threads (default: all cores)', (v) => positiveInt(v, '--workers'))
    .addOption(maxWeightOption()).addOption(minWeightOption()).addOption(noAutocatalogsOption())
    .option('--no-xattrs', 'do not publish user.* extended attributes')
    .option('--chunk-sizes <min,avg,max>', 'content-defined chunking sizes in bytes (stock: 4194304,8388608,16777216)', parseChunkSizes)
    .option('--no-chunking', 'store every file as one object')
    .option('--cache <dir>', 'local copies of catalogs, so unchanged ones are not fetched again', defaultCacheDir())
    .option('--no-cache', 'fetch every catalog from the store')
    .option('-q, --quiet', 'no progress output')
    .action(async (fqrn: string, source: string, o: Omit<PublishOptions, 'store'> & { store?: string; stack?: string; stackOutputs?: string }) => {
      if (o.uploadVia === 'grants' && !o.publisher) throw new Error('--upload-via grants needs --publisher (upload grants belong to a lease)');
      const stack = o.stack || o.stackOutputs ? await stackForPublish(fqrn, o) : undefined;
      if (!o.store && !stack) throw new UsageError("required option '--store <url>' not specified (or --stack with --runtime aws)");
      const storeSpec = o.store ?? stack!.storeUrl;
      const { store, meter } = openMeteredStore(storeSpec);
      // With --json, standard output carries the one JSON document only.
      const out = o.json ? () => {} : (m: string) => console.log(m);
      const changed = changedPaths(o);
      if (changed && o.publisher) throw new UsageError('--changed and --changed-from work with --keys (the owner\'s publish) only');
      if (o.publisher) {
        const progress = publishProgress({ quiet: o.quiet, commitLabel: 'committing through the commit chain' });
        try {
          return await publishAsPublisher(fqrn, source, store, { ...o, store: storeSpec, functionNames: stack && deployedFunctionNames(stack), region: stack?.region }, progress, meter, out);
        } finally {
          progress.done();
        }
      }
      if (!o.keys) throw new Error('publish needs --keys (the repository key signs the commit), or --publisher');
      const keys = await loadKeys(o.keys, fqrn, { need: ['repository', 'anchor'] });
      const progress = publishProgress({ quiet: o.quiet });
      let summary;
      try {
        summary = await publishDirectory(store, source, {
          fqrn, keys, path: o.path, checksum: o.checksum, workers: o.workers,
          autocatalogs: o.autocatalogs && { maxWeight: o.maxWeight, minWeight: o.minWeight }, xattrs: o.xattrs ? undefined : null,
          cacheDir: o.cache || undefined, chunking: o.chunking ? o.chunkSizes : false, changed,
          tag: o.tag ? { name: o.tag, description: o.tagDescription } : undefined,
          onWarning: (m) => progress.log(`scvmfs: warning: ${m}`),
          onProgress: (p) => progress.update(p),
        });
      } finally {
        progress.done();
      }
      await reportOwnerRevision(summary, meter, store, o, {
        operation: 'publish', fqrn, noChange: `${summary.scanned} entries scanned`,
        head: [
          summary.tagOnly ? `no content change: revision ${summary.revision} of ${fqrn} has the same tree and adds tag '${o.tag}'`
            : `published ${fqrn} revision ${summary.revision}`,
          `  entries: ${summary.scanned} scanned, ${summary.added} added, ${summary.modified} changed, ${summary.removed} removed`,
          `  files: ${summary.filesCompressed} compressed, ${formatBytes(summary.bytesRead)} read, ${formatBytes(summary.bytesStored)} stored`,
        ],
      });
    });
}

/** The paths of --changed and of each line of --changed-from; undefined when neither is given. */
function changedPaths(o: { changed?: string[]; changedFrom?: string }): string[] | undefined {
  if (o.changed === undefined && o.changedFrom === undefined) return undefined;
  const listed = o.changedFrom === undefined ? []
    : readFileSync(o.changedFrom === '-' ? 0 : o.changedFrom, 'utf8').split('\n').filter((line) => line !== '');
  return [...(o.changed ?? []), ...listed];
}

async function publishAsPublisher(fqrn: string, source: string, store: ReturnType<typeof openStore>, o: PublishOptions,
  progress: PhaseProgress<PublishFigures>, meter: { snapshot(): MeterSnapshot }, out: (m: string) => void): Promise<void> {
  const keyFile = resolve(o.publisher!);
  const publisherKey = await loadPublisherKey(dirname(keyFile), basename(keyFile).replace(/\.publisher$/, ''));
  let functions: FunctionInvoker;
  let local: LocalInvoker | undefined;
  let aws: AwsInvoker | undefined;
  if (o.runtime === 'aws') {
    const functionNames = o.functionNames ?? (o.fnNames ? JSON.parse(o.fnNames) as Record<FunctionName, string> : undefined);
    if (!functionNames) throw new UsageError('--runtime aws needs --stack <name> (or --stack-outputs <cdk-outputs.json>), or --fn-names');
    functions = aws = awsInvoker({ functionNames, store, region: o.region });
  } else {
    if (!o.keys) throw new Error('--runtime local runs the commit function here: give --keys with <fqrn>.key, .crt and .pub');
    const storeSpec = /^[a-z][a-z0-9+.-]*:\/\//i.test(o.store) ? o.store : resolve(o.store);
    local = localInvoker({
      env: { SCVMFS_STORE: storeSpec, SCVMFS_FQRN: fqrn, SCVMFS_KEYS: resolve(o.keys), ...passThroughEnv() },
      limits: { timeoutMs: o.fnTimeout, memoryMb: o.fnMemory }, mode: o.fnStrict ? 'strict' : 'worker',
    });
    functions = local;
  }
  try {
    const summary = await publishThroughChain(store, source, {
      fqrn, publisher: publisherKey, path: o.path, functions, checksum: o.checksum, workers: o.workers, xattrs: o.xattrs ? undefined : null,
      uploadVia: o.uploadVia, cacheDir: o.cache || undefined, chunking: o.chunking ? o.chunkSizes : false,
      tag: o.tag ? { name: o.tag, description: o.tagDescription } : undefined,
      // The commit function balances the writer's path with these, within the bounds the owner allows.
      autocatalogs: o.autocatalogs && { maxWeight: o.maxWeight, minWeight: o.minWeight },
      onWarning: (m) => progress.log(`scvmfs: warning: ${m}`),
      onProgress: (m) => progress.log(m, o.json ? process.stderr : process.stdout),
      onCounts: (p) => progress.update(p),
    });
    progress.done();
    const writer = meter.snapshot();
    if (!summary.changed) {
      out(`no change: ${fqrn} stays at revision ${summary.revision}`);
    } else {
      if (summary.tagOnly) out(`no content change: revision ${summary.revision} of ${fqrn} has the same tree and adds tag '${o.tag}' (as '${publisherKey.name}')`);
      else out(`published ${fqrn}${o.path === '/' ? '' : o.path} revision ${summary.revision} as '${publisherKey.name}'`);
      out(`  entries: ${summary.stats.scanned} scanned, ${summary.stats.added} added, ${summary.stats.changed} changed, ${summary.stats.removed} removed`);
      out(`  changeset: ${summary.operations} operations in ${summary.parts} parts; commit: ${summary.slices} slices, ${summary.rebases} rebases (${summary.grafts} by graft)`);
      out(`  objects: ${summary.objectsUploaded} uploaded, ${summary.objectsAlreadyPresent} already present; ${formatBytes(summary.bytesRead)} read`);
      if (local) {
        for (const [fn, st] of Object.entries(local.report())) {
          if (st) out(`  function ${fn}: ${st.invocations} invocations, ${st.failures} failed, ${(st.totalDurationMs / 1000).toFixed(2)} s, peak ${st.peakMemoryMb.toFixed(0)} MB`);
        }
      }
      out(`  writer: ${meterSummary(writer)}`);
      if (summary.functionRequests) {
        out(`  functions: ${meterSummary(summary.functionRequests)}`);
        out(`  total: ${meterSummary(meterSum([writer, summary.functionRequests]))}`);
      }
      out(`  time: ${summary.seconds.toFixed(2)} s`);
    }
    // Everything the publish caused: the writer's requests (and its PUTs to granted URLs), every function
    // invocation's own requests and billed time, and the objects both sides stored.
    const fnRequests = summary.functionRequests;
    const bill = await reportOperationBill(store, {
      operation: 'publish', fqrn, publisher: publisherKey.name, revision: summary.revision,
      usage: operationUsage({
        writer, functionRequests: fnRequests, otherRequests: summary.urlPuts > 0 ? { conditionalPut: summary.urlPuts } : {},
        functions: local?.functionUsage() ?? aws?.functionUsage() ?? [], secretCalls: aws?.secretCalls() ?? 0,
      }),
      storage: storedBy(fnRequests ? [writer, fnRequests] : [writer], summary.storedOutside),
    }, o);
    if (o.json) printJson({ fqrn, publisher: publisherKey.name, ...summary, requests: { writer, functions: fnRequests ?? null }, functions: local?.report() ?? null, bill });
  } finally {
    await local?.close();
  }
}

/** The deployed stack of a `--runtime aws` publish, which must hold this repository. */
async function stackForPublish(fqrn: string, o: { stack?: string; stackOutputs?: string; runtime: string; publisher?: string }): Promise<StackOutputs> {
  if (o.runtime !== 'aws' || !o.publisher) throw new UsageError('--stack names the deployed functions: it goes with --publisher and --runtime aws');
  const stack = await resolveStack({ stackName: o.stack, outputsFile: o.stackOutputs });
  if (stack.fqrn !== fqrn) throw new RefusedError('wrong-stack', `stack ${stack.stackName} serves ${stack.fqrn}, not ${fqrn}`);
  return stack;
}
