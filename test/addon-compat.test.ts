// The Lambda package check reads a native addon's ELF requirements and refuses one that cannot load on
// the chosen Lambda runtime, before anything is deployed.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { addonProblems, lambdaTarget, readAddonRequirements } from '../infra/addon-compat.js';

const require = createRequire(import.meta.url);
const addonPath = join(dirname(require.resolve('better-sqlite3/package.json')), 'build', 'Release', 'better_sqlite3.node');
const arch = process.arch === 'arm64' ? 'arm64' : 'x86_64';

test('the addon this checkout built loads on the Node 20 Lambda runtime of its architecture', () => {
  const req = readAddonRequirements(readFileSync(addonPath));
  assert.equal(req.arch, arch);
  assert.equal(req.nodeModuleVersion, Number(process.versions.modules));
  assert.ok([...req.needs.keys()].includes('libc.so.6'), 'it names the C library it needs');
  assert.ok(req.needs.get('libc.so.6')!.some((v) => /^GLIBC_2\./.test(v)));
  assert.deepEqual(addonProblems(req, lambdaTarget(20, arch)), []);
});

test('an addon for another Node major or another architecture is refused, naming why', () => {
  const req = readAddonRequirements(readFileSync(addonPath));
  const node22 = addonProblems(req, lambdaTarget(22, arch));
  assert.equal(node22.length, 1);
  assert.match(node22[0]!, /NODE_MODULE_VERSION 115 \(Node 20\), nodejs22\.x .* needs 127 \(Node 22\)\. Build the package under Node 22: .*npm ci.*npm run synth -- -c lambdaRuntime=nodejs22\.x/);
  const other = addonProblems(req, lambdaTarget(20, arch === 'arm64' ? 'x86_64' : 'arm64'));
  assert.match(other.join('\n'), /built for .*, the functions run on/);
});

test('an addon built against a newer glibc than Amazon Linux 2023 is refused', () => {
  // The same addon with one required version renamed in its string table: GLIBC_2.34 becomes 2.39.
  const elf = Buffer.from(readFileSync(addonPath));
  const at = elf.indexOf('GLIBC_2.34\0', 0, 'latin1');
  assert.ok(at > 0, 'the addon requires GLIBC_2.34');
  elf.write('GLIBC_2.39', at, 'latin1');
  const problems = addonProblems(readAddonRequirements(elf), lambdaTarget(20, arch));
  assert.equal(problems.length, 1, problems.join('\n'));
  assert.match(problems[0]!, /libc\.so\.6 must provide GLIBC_2\.39, newer than the glibc 2\.34/);
});

test('a file that is not a 64-bit ELF is refused with a clear error', () => {
  assert.throws(() => readAddonRequirements(Buffer.from('#!/bin/sh\n'.padEnd(80))), /not an ELF file/);
});
