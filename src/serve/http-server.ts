// The embedded "CDN": serves the public part of a store over HTTP the way the stock client and
// caching proxies expect (CernVM-FS spec §11). Control data is never reachable.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { pipeline } from 'node:stream/promises';
import { isPublicKey, RangeNotSatisfiableError, type ObjectStore, type ReadRange, type StreamResult } from '../store/object-store.js';

export interface ServeOptions {
  /** Interface to listen on; default 127.0.0.1. */
  host?: string;
  /** 0 (the default) picks a free port. */
  port?: number;
  /** URL path the repository appears under, e.g. '/cvmfs/example.org'. */
  basePath?: string;
  /** Receives one access-log line per request. */
  log?: (line: string) => void;
}

export interface RunningServer {
  /** Base URL of the repository, without trailing slash. */
  url: string;
  port: number;
  close(): Promise<void>;
}

export async function serveStore(store: ObjectStore, options: ServeOptions = {}): Promise<RunningServer> {
  const host = options.host ?? '127.0.0.1';
  const basePath = normaliseBasePath(options.basePath ?? '');
  const log = options.log;

  const server = http.createServer((req, res) => {
    const started = Date.now();
    if (log) {
      res.on('finish', () => {
        const length = res.getHeader('content-length') ?? '-';
        log(`${req.socket.remoteAddress} ${req.method} ${req.url} ${res.statusCode} ${length} ${Date.now() - started}ms`);
      });
    }
    handle(store, basePath, req, res).catch((err) => {
      log?.(`error serving ${req.url}: ${err instanceof Error ? err.message : String(err)}`);
      if (res.headersSent) res.destroy();
      else plain(res, 500, 'internal server error');
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const shownHost = host.includes(':') ? `[${host}]` : host;
  return {
    url: `http://${shownHost}:${port}${basePath}`,
    port,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        // Idle keep-alive sockets would otherwise hold close() open until they time out.
        server.closeAllConnections();
      }),
  };
}

function normaliseBasePath(basePath: string): string {
  const trimmed = basePath.replace(/\/+$/, '');
  return trimmed === '' || trimmed.startsWith('/') ? trimmed : `/${trimmed}`;
}

async function handle(store: ObjectStore, basePath: string, req: http.IncomingMessage, res: http.ServerResponse) {
  if (req.method !== 'GET' && req.method !== 'HEAD') return plain(res, 405, 'method not allowed');
  const key = keyOf(req.url ?? '', basePath);
  if (key === undefined) return plain(res, 400, 'bad request path');
  if (key === null || !isPublicKey(key)) return plain(res, 404, 'not found');

  const headers: http.OutgoingHttpHeaders = {
    'Content-Type': key.startsWith('.cvmfs') ? 'application/x-cvmfs' : 'application/octet-stream',
    'Cache-Control': key.startsWith('.cvmfs') ? 'public, max-age=61' : 'public, max-age=259200, immutable',
    'Accept-Ranges': 'bytes',
  };

  if (req.method === 'HEAD') {
    // RFC 7233 §3.1: Range is ignored for anything but GET.
    const info = await store.head(key);
    if (!info) return plain(res, 404, 'not found');
    res.writeHead(200, { ...headers, 'Content-Length': info.size, ETag: `"${info.etag}"`, 'Last-Modified': info.lastModified.toUTCString() });
    return res.end();
  }

  // Without evaluating If-Range we cannot know the client's copy is current, so send it whole.
  const range = req.headers['if-range'] === undefined ? parseRange(req.headers.range) : null;
  let result: StreamResult | null;
  try {
    result = await store.getStream(key, range ?? undefined);
  } catch (err) {
    if (!(err instanceof RangeNotSatisfiableError)) throw err;
    res.writeHead(416, { ...headers, 'Content-Range': `bytes */${err.size}`, 'Cache-Control': 'no-store', 'Content-Length': 0 });
    return res.end();
  }
  if (!result) return plain(res, 404, 'not found');

  headers['Content-Length'] = result.length;
  headers.ETag = `"${result.etag}"`;
  headers['Last-Modified'] = result.lastModified.toUTCString();
  if (range) {
    headers['Content-Range'] = `bytes ${result.start}-${result.start + result.length - 1}/${result.size}`;
    res.writeHead(206, headers);
  } else {
    res.writeHead(200, headers);
  }
  // Streamed with backpressure: memory per request is a buffer or two, whatever the object's size.
  await pipeline(result.body, res);
}

/**
 * The store key a request path names: null when it names nothing servable, undefined when the path
 * is malformed or tries to climb out (`..`, NUL, backslash, also percent-encoded).
 */
function keyOf(url: string, basePath: string): string | null | undefined {
  // Proxies may send the absolute form; only the path matters here.
  let rawPath = url.replace(/^[a-z][a-z0-9+.-]*:\/\/[^/]*/i, '');
  rawPath = rawPath.split(/[?#]/, 1)[0]!;
  if (!rawPath.startsWith(`${basePath}/`)) return null;
  let key: string;
  try {
    key = decodeURIComponent(rawPath.slice(basePath.length + 1));
  } catch {
    return undefined;
  }
  if (key.includes('..') || key.includes('\0') || key.includes('\\')) return undefined;
  return key === '' ? null : key;
}

/** Single `bytes=` ranges only; anything else (multi-range, malformed) is ignored, as RFC 7233 allows. */
function parseRange(header: string | undefined): ReadRange | null {
  const m = header === undefined ? null : /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (!m || (m[1] === '' && m[2] === '')) return null;
  if (m[1] === '') return { suffix: Number(m[2]) };
  const start = Number(m[1]);
  if (m[2] === '') return { start };
  const end = Number(m[2]);
  return end < start ? null : { start, end };
}

function plain(res: http.ServerResponse, status: number, message: string): void {
  const body = `${message}\n`;
  res.writeHead(status, {
    'Content-Type': 'text/plain; charset=utf-8',
    'Content-Length': Buffer.byteLength(body),
    // A missing manifest must not be remembered by a proxy once it is published.
    'Cache-Control': 'no-store',
    ...(status === 405 ? { Allow: 'GET, HEAD' } : {}),
  });
  res.end(body);
}
