// `node dist/infra/check-addon.js <addon.node> <node-major> <x86_64|arm64>`: the package step's early
// refusal of a native addon that the chosen Lambda runtime could not load (exit 1, with every reason).
import { readFileSync } from 'node:fs';
import { addonProblems, lambdaTarget, readAddonRequirements } from './addon-compat.js';

const [path, major, arch] = process.argv.slice(2);
if (!path || !major || (arch !== 'x86_64' && arch !== 'arm64')) {
  console.error('usage: check-addon <addon.node> <node-major> <x86_64|arm64>');
  process.exit(2);
}
const target = lambdaTarget(Number(major), arch);
const problems = addonProblems(readAddonRequirements(readFileSync(path)), target);
if (problems.length > 0) {
  console.error(`package-lambda: ${path} cannot load on ${target.name}:`);
  for (const p of problems) console.error(`  - ${p}`);
  process.exit(1);
}
console.log(`package-lambda: ${path} loads on ${target.name}`);
