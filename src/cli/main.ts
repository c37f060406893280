#!/usr/bin/env node
// scvmfs: the command-line front. Parsing, progress and exit codes only; the work is in the library.
import { Command, CommanderError } from 'commander';
import { readFileSync } from 'node:fs';
import { describeError, EXIT_STATUS } from '../errors.js';
import { register as registerInit } from './commands/init.js';
import { register as registerPublish } from './commands/publish.js';
import { register as registerIngest } from './commands/ingest.js';
import { register as registerPublisher } from './commands/publisher.js';
import { register as registerLease } from './commands/lease.js';
import { register as registerAbort } from './commands/abort.js';
import { register as registerTag } from './commands/tag.js';
import { register as registerRollback } from './commands/rollback.js';
import { register as registerResign } from './commands/resign.js';
import { register as registerRotateKey } from './commands/rotate-key.js';
import { register as registerServe } from './commands/serve.js';
import { register as registerLs } from './commands/ls.js';
import { register as registerCat } from './commands/cat.js';
import { register as registerVerify } from './commands/verify.js';
import { register as registerCheck } from './commands/check.js';
import { register as registerInfo } from './commands/info.js';
import { register as registerCatalogs } from './commands/catalogs.js';
import { register as registerDiff } from './commands/diff.js';
import { register as registerExport } from './commands/export.js';
import { register as registerCost } from './commands/cost.js';
import { register as registerGc } from './commands/gc.js';
import { register as registerAws } from './commands/aws.js';
import { register as registerReplicate } from './commands/replicate.js';

// The package's own version, read next to the build (dist/src/cli → package.json).
const packageJson = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };

let parseError: string | undefined;

const program = new Command('scvmfs')
  .version(packageJson.version, '-V, --version', 'print the version and exit')
  .description('Publish CernVM-FS repositories into object storage and read them back verified')
  .exitOverride()
  // Options belong to the command they follow, so a subcommand may reuse its parent's option names
  // (scvmfs cost <store> --json, scvmfs cost project <store> --json).
  .enablePositionalOptions()
  // A parse error is one line, with commander's nearest match folded in ("did you mean --store?"); it is
  // printed once parsing has ended, so that a better message can replace it (see below).
  .configureOutput({ outputError: (s) => { parseError = `scvmfs: ${s.replace(/^error: /, '').replace(/\s*\n\s*/g, ' ').trim()}\n`; } });

// Commands in their own modules (src/cli/commands/<verb>.ts), each exporting register(program); help lists them in this order.
registerInit(program);
registerPublish(program);
registerIngest(program);
registerPublisher(program);
registerLease(program);
registerAbort(program);
registerTag(program);
registerRollback(program);
registerResign(program);
registerRotateKey(program);
registerServe(program);
registerLs(program);
registerCat(program);
registerVerify(program);
registerCheck(program);
registerInfo(program);
registerCatalogs(program);
registerDiff(program);
registerExport(program);
registerCost(program);
registerGc(program);
registerAws(program);
registerReplicate(program);

program.parseAsync(process.argv).catch((err: unknown) => {
  if (err instanceof CommanderError) {
    // Commander reports a missing required option before an unknown one, but `--stroe` for `--store`
    // is the mistake to point at: name the unknown option, with its nearest match, instead.
    if (err.code === 'commander.missingMandatoryOptionValue') reportUnknownOption(process.argv.slice(2));
    if (parseError) process.stderr.write(parseError);
    // Help and --version end here too, with status 0.
    process.exitCode = err.exitCode === 0 ? 0 : EXIT_STATUS.usage;
    return;
  }
  const { kind, message } = describeError(err);
  console.error(`scvmfs: error: ${message}`);
  if (kind === 'internal' && err instanceof Error && process.env.SCVMFS_DEBUG) console.error(err.stack);
  process.exitCode = EXIT_STATUS[kind];
});

/** Finds the command `args` names and, if they hold an option it does not know, lets it say so. */
function reportUnknownOption(args: string[]): void {
  let command: Command = program;
  let at = 0;
  for (; at < args.length; at++) {
    const sub = command.commands.find((c) => c.name() === args[at] || c.aliases().includes(args[at]!));
    if (!sub) break;
    command = sub;
  }
  const { unknown } = command.parseOptions(args.slice(at));
  const flag = unknown.find((a) => a.startsWith('--'));
  if (!flag) return;
  try {
    (command as unknown as { unknownOption(flag: string): void }).unknownOption(flag.split('=')[0]!);
  } catch (e) {
    if (!(e instanceof CommanderError)) throw e;
  }
}
