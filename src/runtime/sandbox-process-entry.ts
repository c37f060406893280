// Entry of a child-process sandbox (runtime/process-sandbox.ts forks it with the init as argv[2]).
import { serveSandbox } from './sandbox-core.js';
import type { FromSandbox, SandboxInit, ToSandbox } from './protocol.js';

if (!process.send) throw new Error('sandbox-process-entry must be forked with an IPC channel');
const init = JSON.parse(process.argv[2] ?? '') as SandboxInit;
const send = (m: FromSandbox): void => { process.send!(m); };
await serveSandbox(init, send, (l) => process.on('message', (m: ToSandbox) => l(m)));
// The runtime is gone (it crashed or closed without killing us): nothing will invoke this sandbox again.
process.on('disconnect', () => process.exit(0));
