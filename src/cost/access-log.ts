// Read demand observed in an access log: requests, bytes delivered, cache hits and the period covered.
// Two formats: `scvmfs serve --access-log` lines and CloudFront standard (access) logs.
import { RefusedError } from '../errors.js';

export interface ReadObservation {
  format: 'scvmfs-serve' | 'cloudfront';
  /** Requests in the log (every status). */
  requests: number;
  /** Body bytes sent to clients (HEAD answers send none). */
  bytes: number;
  /** Requests the CDN answered from its cache without asking the origin; undefined when the log cannot say. */
  hits?: number;
  /** From the first to the last request, when the log has times. */
  periodSeconds?: number;
  /** Lines that are neither requests nor comments (e.g. `error serving …`). */
  skipped: number;
}

// `${remoteAddress} ${method} ${url} ${status} ${content-length or -} ${ms}ms` (src/serve/http-server.ts).
const SERVE_LINE = /^(\S+) ([A-Z]+) (\S+) (\d{3}) (\d+|-) (\d+)ms$/;

/** `scvmfs serve --access-log` output. Its lines carry no time: the caller says how long it covers. */
export function parseServeLog(text: string): ReadObservation {
  const o: ReadObservation = { format: 'scvmfs-serve', requests: 0, bytes: 0, skipped: 0 };
  for (const raw of text.split('\n')) {
    const lineText = raw.trim();
    if (lineText === '') continue;
    const m = SERVE_LINE.exec(lineText);
    if (!m) { o.skipped++; continue; }
    o.requests++;
    if (m[2] !== 'HEAD' && m[5] !== '-') o.bytes += Number(m[5]);
  }
  if (o.requests === 0) throw new RefusedError('bad-access-log', 'the access log has no request lines of `scvmfs serve --access-log` (address method path status length time)');
  return o;
}

const CLOUDFRONT_DEFAULT_FIELDS = ['date', 'time', 'x-edge-location', 'sc-bytes', 'c-ip', 'cs-method', 'cs(Host)', 'cs-uri-stem', 'sc-status',
  'cs(Referer)', 'cs(User-Agent)', 'cs-uri-query', 'cs(Cookie)', 'x-edge-result-type'];

/**
 * A CloudFront standard log (tab-separated, `#Fields:` header). `Hit` counts as a cache hit; `RefreshHit`
 * (revalidated with the origin), `Miss` and errors as requests that reached the origin.
 */
export function parseCloudFrontLog(text: string): ReadObservation {
  let fields = CLOUDFRONT_DEFAULT_FIELDS;
  const o: ReadObservation = { format: 'cloudfront', requests: 0, bytes: 0, hits: 0, skipped: 0 };
  let first = Infinity;
  let last = -Infinity;
  for (const raw of text.split('\n')) {
    const lineText = raw.replace(/\r$/, '');
    if (lineText.trim() === '') continue;
    if (lineText.startsWith('#Fields:')) { fields = lineText.slice('#Fields:'.length).trim().split(/\s+/); continue; }
    if (lineText.startsWith('#')) continue;
    const cols = lineText.split('\t');
    const col = (name: string) => { const i = fields.indexOf(name); return i < 0 ? undefined : cols[i]; };
    const date = col('date');
    const time = col('time');
    const bytes = Number(col('sc-bytes'));
    const when = date && time ? Date.parse(`${date}T${time}Z`) : NaN;
    if (cols.length < Math.min(fields.length, 9) || !Number.isFinite(when) || !Number.isInteger(bytes)) { o.skipped++; continue; }
    o.requests++;
    o.bytes += bytes;
    if (col('x-edge-result-type') === 'Hit') o.hits!++;
    first = Math.min(first, when);
    last = Math.max(last, when);
  }
  if (o.requests === 0) throw new RefusedError('bad-access-log', 'the access log has no CloudFront standard log lines (tab-separated, date time x-edge-location sc-bytes …)');
  o.periodSeconds = Math.max(1, (last - first) / 1000);
  return o;
}

/** Either format, told apart by CloudFront's `#Version`/`#Fields` header or tab-separated lines. */
export function parseAccessLog(text: string): ReadObservation {
  return /^#(Version|Fields):/m.test(text) || /^\d{4}-\d{2}-\d{2}\t/m.test(text) ? parseCloudFrontLog(text) : parseServeLog(text);
}
