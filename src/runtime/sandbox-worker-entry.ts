// Entry of a worker-thread sandbox (runtime/worker-sandbox.ts starts it).
import { parentPort, workerData } from 'node:worker_threads';
import { serveSandbox } from './sandbox-core.js';
import type { SandboxInit, ToSandbox } from './protocol.js';

if (!parentPort) throw new Error('sandbox-worker-entry must run in a worker thread');
const port = parentPort;
await serveSandbox(workerData as SandboxInit, (m) => port.postMessage(m), (l) => port.on('message', (m: ToSandbox) => l(m)));
