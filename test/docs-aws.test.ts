// docs/aws.md's walkthrough (deploy → keys → first publish → client → rotate → destroy), run as written
// in one bash session. Only what needs a real account or a client host stands in: `npm run
// synth|deploy|destroy` run their real script with --dry-run (the real synthesis is test/deploy.test.ts),
// and a deploy is followed by saving a recorded outputs file, as `npm run deploy` does; the stack's
// bucket is a local directory; Lambda and Secrets Manager are recorded on 127.0.0.1; the account setup
// and the client host's commands are skipped, each with its reason. A command the test does not know
// fails it, so every command added to the walkthrough must be exercised here.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { startAwsRecorder, recordedEnv, RECORDED_REFUSAL } from './aws-recorder.js';
import { CLI, tempDir, TEST_SOURCE_DIR } from './helpers.js';
import { recordedOutputs, RECORDED_DOMAIN, REPO_ROOT, synthesized } from './synthesized.js';

const FQRN = 'repo.example.org';
const STACK = 'scvmfs-repo-example-org';
const SECTION = '## Deploy, publish, mount, rotate, tear down';

/** The walkthrough's commands, continuation lines joined, in order. */
function walkthroughCommands(): string[] {
  const doc = readFileSync(join(REPO_ROOT, 'docs', 'aws.md'), 'utf8');
  const start = doc.indexOf(`\n${SECTION}\n`);
  assert.ok(start >= 0, `docs/aws.md has the section ${SECTION}`);
  const end = doc.indexOf('\n## ', start + 1);
  const section = doc.slice(start, end < 0 ? undefined : end);
  const commands: string[] = [];
  for (const block of section.matchAll(/```bash\n([\s\S]*?)```/g)) {
    commands.push(...block[1]!.replace(/\\\n\s*/g, ' ').split('\n').map((l) => l.trim()).filter((l) => l !== ''));
  }
  return commands;
}

/** The first word a command line runs (an assignment's command substitution counts). */
function programOf(line: string): string {
  const m = /^[A-Z_]+=\$\((\S+)/.exec(line);
  return m ? m[1]! : line.split(/\s+/)[0]!;
}

test('every command of the docs/aws.md walkthrough runs, up to what needs an account or a client host', async () => {
  const commands = walkthroughCommands();
  const unknown = commands.filter((c) => !['npm', 'npx', 'sudo', 'cvmfs_config', 'scvmfs'].includes(programOf(c)));
  assert.deepEqual(unknown, [], 'commands this test does not know how to exercise');
  for (const step of ['npm run deploy', 'scvmfs aws put-keys', '--runtime aws --stack', 'scvmfs aws client-config', 'scvmfs rotate-key', 'npm run destroy']) {
    assert.ok(commands.some((c) => c.includes(step)), `the walkthrough has ${step}`);
  }

  const work = tempDir('docs-aws');
  const bin = join(work, 'bin');
  const home = join(work, 'home');
  const bucket = join(work, 'bucket');
  mkdirSync(bin);
  mkdirSync(join(home, 'software'), { recursive: true });
  writeFileSync(join(home, 'software', 'hello.txt'), 'hello\n');
  writeFileSync(join(bin, 'scvmfs'), `#!/bin/sh\nexec "${process.execPath}" "${CLI}" "$@"\n`);
  chmodSync(join(bin, 'scvmfs'), 0o755);
  // The synthesized stack's outputs as cdk deploy records them, for this repository, its bucket a directory.
  const outputs = JSON.parse(JSON.stringify(recordedOutputs(synthesized().template))
    .replaceAll('deploy.example.org', FQRN).replaceAll('deploy-example-org', 'repo-example-org'));
  outputs[STACK].StoreUrl = bucket;
  const outputsFile = join(work, `${STACK}.outputs.json`);
  writeFileSync(outputsFile, JSON.stringify(outputs));

  const statusFile = join(work, 'status');
  const skipped = join(work, 'skipped');
  writeFileSync(skipped, '');
  const script = [`source "${join(TEST_SOURCE_DIR, 'fixtures', 'docs-aws-shims.sh')}"`, `cd "${home}"`, ...commands.map((c, i) => `${c}\necho "${i} $?" >> "${statusFile}"`)].join('\n');
  const recorder = await startAwsRecorder();
  try {
    const r = await bash(script, recordedEnv(recorder, {
      PATH: `${bin}:${process.env.PATH}`, XDG_CONFIG_HOME: join(work, 'config'), ROOT: REPO_ROOT,
      RECORDED_OUTPUTS: outputsFile, SKIPPED: skipped,
    }));
    const statuses = new Map(readFileSync(statusFile, 'utf8').trim().split('\n').map((l) => l.split(' ').map(Number) as [number, number]));
    assert.equal(statuses.size, commands.length, `every command ran:\n${r.stderr}`);
    commands.forEach((c, i) => {
      // The publish through Lambda gets as far as Lambda: the recorder refuses it, as a real function could.
      const expected = c.includes('--runtime aws') ? 3 : 0;
      assert.equal(statuses.get(i), expected, `${c}\n${r.stderr}`);
    });
    assert.match(r.stderr, new RegExp(RECORDED_REFUSAL.message));

    assert.deepEqual(readFileSync(skipped, 'utf8').trim().split('\n').map((l) => l.replace(/:.*/, '')), [
      'npm ci', 'npx cdk bootstrap',
      `sudo cp repo.example.org.conf /etc/cvmfs/config.d/${FQRN}.conf`, `sudo cp keys/${FQRN}.pub /etc/cvmfs/keys/${FQRN}.pub`,
      `cvmfs_config probe ${FQRN}`,
    ]);
    // What reached the cloud: the keys twice (before and after the rotation), the publish's lease call.
    const puts = recorder.calls.filter((c) => c.operation === 'PutSecretValue');
    assert.deepEqual(puts.map((p) => p.body.SecretId), [`scvmfs/${FQRN}/repository-key`, `scvmfs/${FQRN}/repository-key`]);
    const [first, second] = puts.map((p) => JSON.parse(p.body.SecretString));
    assert.notEqual(first.crt, second.crt, 'the rotated certificate was stored');
    assert.equal(second.crt, readFileSync(join(home, 'keys', `${FQRN}.crt`), 'utf8'));
    const invokes = recorder.calls.filter((c) => c.operation === 'Invoke');
    assert.deepEqual(invokes.map((c) => c.functionName), [`${STACK}-lease`]);
    assert.match(readFileSync(join(home, `${FQRN}.conf`), 'utf8'), new RegExp(`^CVMFS_SERVER_URL=http://${RECORDED_DOMAIN}/@fqrn@$`, 'm'));
    // The deploy and destroy dry runs named the stack and the package step.
    assert.match(r.stderr, new RegExp(`cdk deploy .*--outputs-file \\S+${STACK}\\.outputs\\.json ${STACK}`));
    assert.match(r.stderr, new RegExp(`cdk destroy .*-c fqrn=${FQRN.replace(/\./g, '\\.')}.* ${STACK}`));
    assert.match(r.stderr, /package-lambda\.sh/);
  } finally {
    await recorder.close();
  }
});

/** Runs the session asynchronously: the recorder answers from this process meanwhile. */
function bash(script: string, env: NodeJS.ProcessEnv): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn('bash', ['-u', '-c', script], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}
