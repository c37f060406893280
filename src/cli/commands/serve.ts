// scvmfs serve: the embedded HTTP server (the local CDN) over a store.
import { openStore } from '../../store/open-store.js';
import { serveStore } from '../../serve/http-server.js';
import { portNumber, storeOption } from '../options.js';
import type { Command } from 'commander';

export function register(program: Command): void {
  program.command('serve')
    .description('serve a repository over HTTP/1.1 as a web server or CDN would')
    .addOption(storeOption())
    .option('--host <address>', 'address to listen on', '127.0.0.1')
    .option('--port <n>', 'port (0 = any free port)', (v) => portNumber(v), 8000)
    .option('--base-path <path>', 'URL prefix, e.g. /cvmfs/sw.example.org', '')
    .option('--access-log', 'print one line per request')
    .action(async (o: { store: string; host: string; port: number; basePath: string; accessLog?: boolean }) => {
      const server = await serveStore(openStore(o.store), { host: o.host, port: o.port, basePath: o.basePath, log: o.accessLog ? (l) => console.log(l) : undefined });
      console.log(`serving ${o.store} at ${server.url}/`);
      const stop = async () => { await server.close(); process.exit(0); };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
    });
}
