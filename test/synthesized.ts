// `npm run synth` run as a user would, from a fresh copy of the checkout (sources only: no dist/, no
// build/, node_modules linked as `npm ci` left it), with no network. The template is shared by the
// test files that read it: the first one synthesizes, under a lock, into a directory named after the
// sources and the options, and the others wait for it.
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const SYNTH_FQRN = 'deploy.example.org';
export const SYNTH_STACK = 'scvmfs-deploy-example-org';
/** The options of the shared synthesis: every optional piece on, so that every resource is there. */
export const SYNTH_CONTEXT = ['fqrn=deploy.example.org', 'masterKeyInAccount=true', 'scheduleResign=true', 'resignEveryDays=5', 'commitMemoryMB=2048'];

/** The files a clone of this checkout holds (tracked, and new ones not ignored). */
function sourceFiles(): string[] {
  return execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard', '-z'], { cwd: REPO_ROOT, encoding: 'utf8' })
    .split('\0').filter((f) => f !== '' && existsSync(join(REPO_ROOT, f)) && statSync(join(REPO_ROOT, f)).isFile());
}

/** A fresh copy of the checkout's sources with node_modules linked in; what `npm ci` leaves. */
export function freshCheckout(into: string): string {
  for (const f of sourceFiles()) {
    mkdirSync(dirname(join(into, f)), { recursive: true });
    cpSync(join(REPO_ROOT, f), join(into, f));
  }
  symlinkSync(join(REPO_ROOT, 'node_modules'), join(into, 'node_modules'));
  return into;
}

export interface NpmRun { status: number | null; stdout: string; stderr: string }

/**
 * `npm run <script> -- <args>` in `checkout` without a network (a network namespace of its own, when
 * this machine lets us make one) and without AWS credentials in the environment.
 */
export function npmRun(checkout: string, script: string, args: string[]): NpmRun {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^(AWS_|CDK_|S3_ENDPOINT)/.test(k)) env[k] = v;
  const isolated = spawnSync('unshare', ['-rn', 'true']).status === 0;
  const argv = ['npm', 'run', '--silent', script, '--', ...args];
  const r = spawnSync(isolated ? 'unshare' : argv[0]!, isolated ? ['-rn', ...argv] : argv.slice(1), {
    cwd: checkout, env, encoding: 'utf8', maxBuffer: 64 << 20,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

export interface Synthesized {
  /** The cloud assembly directory (cdk.out). */
  outDir: string;
  template: any;
  templatePath: string;
  run: NpmRun;
}

/** The shared synthesis of SYNTH_CONTEXT (made once per state of the sources). */
export function synthesized(): Synthesized {
  const hash = createHash('sha256').update(JSON.stringify(SYNTH_CONTEXT));
  // What the template and the package are made of (tests and docs are not).
  const inputs = sourceFiles().filter((f) => /^(src|infra|scripts)\//.test(f) || ['package.json', 'package-lock.json', 'cdk.json', 'tsconfig.json'].includes(f));
  for (const f of inputs.sort()) hash.update(f).update(readFileSync(join(REPO_ROOT, f)));
  const key = hash.digest('hex').slice(0, 16);
  const base = join(tmpdir(), `scvmfs-synth-${key}`);
  const done = join(base, 'done.json');
  const lock = `${base}.lock`;
  const deadline = Date.now() + 10 * 60_000;
  while (!existsSync(done)) {
    try {
      mkdirSync(lock);
    } catch {
      // Another test file is synthesizing; a lock older than the longest synthesis was left by a crash.
      if (Date.now() - statSync(lock, { throwIfNoEntry: false })!.mtimeMs > 10 * 60_000) rmSync(lock, { recursive: true, force: true });
      if (Date.now() > deadline) throw new Error(`waited 10 minutes for the synthesis in ${base}`);
      execFileSync('sleep', ['1']);
      continue;
    }
    try {
      // Only the newest synthesis is kept.
      for (const old of readdirSync(tmpdir()).filter((d) => d.startsWith('scvmfs-synth-') && !d.startsWith(`scvmfs-synth-${key}`))) {
        rmSync(join(tmpdir(), old), { recursive: true, force: true });
      }
      rmSync(base, { recursive: true, force: true });
      const checkout = freshCheckout(join(base, 'checkout'));
      const run = npmRun(checkout, 'synth', [...SYNTH_CONTEXT.flatMap((c) => ['-c', c]), '--output', join(base, 'cdk.out')]);
      if (run.status !== 0) throw new Error(`npm run synth failed (${run.status}):\n${run.stderr}\n${run.stdout}`);
      // The copy is not needed any more: the assembly holds the staged package.
      rmSync(checkout, { recursive: true, force: true });
      writeFileSync(done, JSON.stringify(run));
    } finally {
      rmSync(lock, { recursive: true, force: true });
    }
  }
  const outDir = join(base, 'cdk.out');
  const templatePath = join(outDir, `${SYNTH_STACK}.template.json`);
  return { outDir, templatePath, template: JSON.parse(readFileSync(templatePath, 'utf8')), run: JSON.parse(readFileSync(done, 'utf8')) };
}

export const RECORDED_BUCKET = 'scvmfs-deploy-example-org-repository22e53bbd-x1y2z3';
export const RECORDED_DOMAIN = 'd1a2b3c4d5e6f7.cloudfront.net';

/**
 * What `cdk deploy --outputs-file` writes for the synthesized stack: every output of the template, its
 * intrinsic functions resolved as CloudFormation would for one bucket and distribution. `overrides`
 * replaces values (a test points StoreUrl at a local directory).
 */
export function recordedOutputs(template: any, overrides: Record<string, string> = {}): Record<string, Record<string, string>> {
  const resources = template.Resources as Record<string, any>;
  const resolve = (v: any): string => {
    if (typeof v === 'string') return v;
    // A secret's name output is spelled as pieces of its ARN; CloudFormation gives back its Name.
    const secret = Object.entries(resources).find(([id, r]) => r.Type === 'AWS::SecretsManager::Secret' && JSON.stringify(v).includes(`"Ref":"${id}"`));
    if (secret) return secret[1].Properties.Name;
    if (v['Fn::Join']) return (v['Fn::Join'][1] as any[]).map(resolve).join(v['Fn::Join'][0]);
    if (v.Ref && resources[v.Ref]?.Type === 'AWS::S3::Bucket') return RECORDED_BUCKET;
    if (v['Fn::GetAtt']?.[1] === 'DomainName') return RECORDED_DOMAIN;
    if (v.Ref === 'AWS::Region') return 'us-east-1';
    throw new Error(`no recorded value for ${JSON.stringify(v)}`);
  };
  const values = Object.fromEntries(Object.entries(template.Outputs as Record<string, any>).map(([k, o]) => [k, resolve(o.Value)]));
  return { [SYNTH_STACK]: { ...values, ...overrides } };
}
