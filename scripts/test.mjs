#!/usr/bin/env node
// `npm test`: build, make sure an S3 server is there (starting the local Ceph one unless S3_ENDPOINT is
// set already), run every test file, and stop the server again only if this script started it.
// `npm run test:unit` (--unit): the files that need no S3 server and are quick; nothing is installed or started.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const run = (cmd, args, opts = {}) => spawnSync(cmd, args, { cwd: root, stdio: 'inherit', ...opts });

const build = run('npx', ['tsc', '-p', 'tsconfig.json']);
if (build.status !== 0) process.exit(build.status ?? 1);

const unit = process.argv.includes('--unit');
const env = { ...process.env };
const isRoot = process.getuid?.() === 0;
const has = (tool) => spawnSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' }).status === 0;

// The xattr tests need getfattr/setfattr (Debian package attr); on a fresh machine install it as the
// S3 server's packages are installed, or say that those tests will be skipped.
if (!unit && !has('getfattr')) {
  if (isRoot && has('apt-get')) {
    console.error('test: installing the attr package (getfattr/setfattr) for the xattr tests');
    const env0 = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    run('sh', ['-c', 'apt-get update -qq && apt-get install -y -qq --no-install-recommends attr'], { env: env0, stdio: ['ignore', 'ignore', 'inherit'] });
  }
  if (!has('getfattr')) console.error('test: getfattr not installed (Debian package attr); the xattr tests will be skipped');
}
const readExports = (text) => { for (const m of text.matchAll(/^export (\w+)=(.*)$/gm)) env[m[1]] = m[2]; };
let startedS3 = false;
if (!unit && !env.S3_ENDPOINT) {
  // A gateway someone started earlier (npm run s3:start) is used and left running.
  const envFile = join(env.SCVMFS_S3_DIR || '/tmp/scvmfs-s3', 'env');
  if (existsSync(envFile)) {
    readExports(readFileSync(envFile, 'utf8'));
    const up = await fetch(env.S3_ENDPOINT).then(() => true, () => false);
    if (!up) delete env.S3_ENDPOINT;
  }
}
if (!unit && !env.S3_ENDPOINT) {
  const start = run('bash', [join(root, 'scripts/s3-start.sh')], { stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8' });
  if (start.status !== 0) {
    console.error('test: could not start the local S3 server (scripts/s3-start.sh); set S3_ENDPOINT and AWS_* to use another');
    process.exit(start.status ?? 1);
  }
  readExports(start.stdout);
  startedS3 = true;
}

const all = readdirSync(join(root, 'dist/test')).filter((f) => f.endsWith('.test.js')).sort().map((f) => join('dist/test', f));
// A unit run leaves out what needs the S3 server and the 10^6-entry scale test.
const needsS3 = (f) => /s3-env\.js/.test(readFileSync(join(root, f), 'utf8'));
// The longest files first (measured in a whole run, in seconds: scale 340, s3-serverless 170, serverless-
// publish 125, gc-concurrency 90, check 70, replicate 60, gc 60), so that no long file is left running
// alone at the end; run-tests.mjs keeps this order, which `node --test` would sort by name.
const LONGEST = ['scale', 's3-serverless', 'serverless-publish', 'gc-concurrency', 'check', 'replicate', 'gc', 'operation-bill']
  .map((n) => `${n}.test.js`);
const longestFirst = (f) => { const i = LONGEST.findIndex((l) => f.endsWith(`/${l}`)); return i < 0 ? LONGEST.length : i; };
const files = unit ? all.filter((f) => !needsS3(f) && !f.endsWith('scale.test.js')) : [...all].sort((a, b) => longestFirst(a) - longestFirst(b));
if (unit) console.error(`test: unit run, ${files.length} of ${all.length} files (no S3 server, no scale test)`);
const tests = run(process.execPath, [join(root, 'scripts/run-tests.mjs'), '2', ...files], { env });

if (startedS3) run('bash', [join(root, 'scripts/s3-stop.sh')], { stdio: ['ignore', 'inherit', 'inherit'] });
process.exit(tests.status ?? 1);
